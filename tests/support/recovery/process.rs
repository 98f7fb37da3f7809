//! `breakwater run` as child processes: a deployment (config, group, logs) and its instances, SIGKILLed, SIGTERMed and restarted.

#[allow(unused_imports)]
use super::*;

/// A private broker with the input and snapshots topics created (the job
/// creates the others), and a config file for `breakwater run` and
/// `breakwater replay` alike.
pub struct Deployment {
    pub broker: Broker,
    pub dir: tempfile::TempDir,
    pub group: String,
    pub partitions: i32,
    config: PathBuf,
    started: AtomicUsize,
}

/// A failing test (or any, with `BREAKWATER_TEST_KEEP` set) leaves its directory (config, logs, oracle files and
/// the topics read back) for a look afterwards.
impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("BREAKWATER_TEST_KEEP").is_some() {
            if let Ok(empty) = tempfile::tempdir() {
                let dir = std::mem::replace(&mut self.dir, empty);
                eprintln!("kept the test's files in {}", dir.keep().display());
            }
        }
    }
}

impl Deployment {
    /// `slo`: the SLO part of the file; `kafka`: more `kafka:` keys, one
    /// `key: value` line each (e.g. `timers: event_time`).
    pub fn new(slo: &str, partitions: i32, kafka: &[&str]) -> Deployment {
        let broker = Broker::start();
        broker.create_topic(EVENTS, partitions, false);
        broker.create_topic(SNAPSHOTS, partitions, true);
        let dir = tempfile::tempdir().expect("temp dir");
        let group = harness::unique_group("recovery");
        // Any free port: instances run side by side.
        let mut yaml = format!(
            "{slo}\nhttp: {{listen: \"127.0.0.1:0\"}}\nkafka:\n  brokers: \"{}\"\n  group_id: {group}\n  partitions: {partitions}\n  \
             consumer_properties: {{session.timeout.ms: 2000, heartbeat.interval.ms: 500}}\n",
            broker.bootstrap()
        );
        for line in kafka {
            writeln!(yaml, "  {line}").unwrap();
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write the config");
        Deployment {
            broker,
            dir,
            group,
            partitions,
            config,
            started: AtomicUsize::new(0),
        }
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    pub fn all_partitions(&self) -> BTreeSet<i32> {
        (0..self.partitions).collect()
    }

    /// Starts `breakwater run --config FILE`, its log in a file of its own.
    /// Does not wait for anything.
    pub fn start(&self, name: &str) -> Instance {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let name = format!("{n:02}-{name}");
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start breakwater run");
        Instance {
            name,
            child,
            log,
            exit: None,
        }
    }

    /// Starts an instance and waits until it owns every input partition
    /// (the only member of its group, once a killed one's session expired).
    pub fn start_alone(&self, name: &str) -> Instance {
        let mut instance = self.start(name);
        let all = self.all_partitions();
        instance.wait_owns("every input partition", |owned| *owned == all);
        instance
    }
}

/// A `breakwater run` process; SIGKILLed on drop if still running.
pub struct Instance {
    pub name: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's log so far (stderr), without terminal colours.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "--- {} (last {} lines) ---\n{}",
            self.name,
            lines,
            all[from..].join("\n")
        )
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// The input partitions the process owns now, per its log: "partition
    /// assigned" lines add, "partition revoked" lines remove.
    pub fn owned(&self) -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for line in self.log().lines() {
            let Some(p) = field(line, "partition") else {
                continue;
            };
            if line.contains("partition assigned") {
                owned.insert(p as i32);
            } else if line.contains("partition revoked") {
                owned.remove(&(p as i32));
            }
        }
        owned
    }

    /// `(partition, agents)` of every "agents restored" line, in order.
    pub fn restores(&self) -> Vec<(i32, u64)> {
        self.log()
            .lines()
            .filter(|l| l.contains("partition assigned") && l.contains("agents restored"))
            .filter_map(|l| Some((field(l, "partition")? as i32, field(l, "agents")? as u64)))
            .collect()
    }

    /// Waits until `cond` holds for the partitions it owns; panics if the
    /// process exits first or at [`PROCESS_TIMEOUT`].
    pub fn wait_owns(&mut self, what: &str, cond: impl Fn(&BTreeSet<i32>) -> bool) {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            if cond(&self.owned()) {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) while waiting until it owns {what}\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} does not own {what} after {PROCESS_TIMEOUT:?} (owns {:?})\n{}",
                self.name,
                self.owned(),
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with its log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status})\n{}", self.name, self.log_tail(80));
        }
    }

    /// SIGKILL, then reaps the process. Panics if it had already exited
    /// (a crash the test did not cause).
    pub fn kill(mut self) -> String {
        self.assert_running();
        self.child.kill().expect("SIGKILL");
        self.exit = Some(self.child.wait().expect("wait"));
        self.log()
    }

    /// SIGTERM (a graceful stop: final checkpoint, commit, leave the
    /// group); waits for the exit and insists that it is a success.
    pub fn terminate(mut self) -> String {
        self.assert_running();
        let pid = self.pid().to_string();
        let sent = Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {PROCESS_TIMEOUT:?} of SIGTERM\n{}",
                self.name,
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM\n{}",
            self.name,
            self.log_tail(80)
        );
        self.log()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until two running instances split the partitions between them:
/// each owns some, none is owned twice, and together they own all.
pub fn wait_split(a: &mut Instance, b: &mut Instance, all: &BTreeSet<i32>) {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        let (oa, ob) = (a.owned(), b.owned());
        let union: BTreeSet<i32> = oa.union(&ob).copied().collect();
        if !oa.is_empty() && !ob.is_empty() && oa.is_disjoint(&ob) && union == *all {
            return;
        }
        a.assert_running();
        b.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} ({oa:?}) and {} ({ob:?}) do not split {all:?} after {PROCESS_TIMEOUT:?}\n{}\n{}",
            a.name,
            b.name,
            a.log_tail(40),
            b.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number after ` name=` in a log line.
pub(crate) fn field(line: &str, name: &str) -> Option<i64> {
    let pat = format!(" {name}=");
    let at = line.find(&pat)? + pat.len();
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

pub(crate) fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

//! The `breakwater` binary as operators run it: [`Setup`] writes a config
//! for a test broker and starts `breakwater run` processes ([`Job`], killed
//! on drop); [`get`] and [`post`] call a job's HTTP API.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::kafka::{self as harness, Broker};

/// Bound on every wait for a job.
pub const TIMEOUT: Duration = Duration::from_secs(30);
pub const BIN: &str = env!("CARGO_BIN_EXE_breakwater");

/// A config file for `broker`, with `extra` YAML appended under `kafka:`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub group: String,
}

impl Setup {
    pub fn new(broker: &Broker, slo: &str, extra_kafka: &str) -> Setup {
        Self::for_brokers(&broker.bootstrap(), slo, extra_kafka)
    }

    /// [`Setup::new`] for any `bootstrap.servers` (e.g. one nothing listens on).
    pub fn for_brokers(bootstrap: &str, slo: &str, extra_kafka: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let group = harness::unique_group("cli");
        // HTTP on any free port: tests run side by side.
        let yaml = format!(
            "{slo}\nhttp: {{listen: \"127.0.0.1:0\"}}\nkafka:\n  brokers: \"{bootstrap}\"\n  group_id: {group}\n  partitions: 3\n  \
             snapshot_interval: 1s\n  properties: {{session.timeout.ms: 2000, heartbeat.interval.ms: 500}}\n{extra_kafka}"
        );
        std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
        Setup { dir, group }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Starts `breakwater run`, its stderr in a file of the temp dir.
    pub fn start(&self, name: &str) -> Job {
        self.start_with(name, &[], &[])
    }

    /// [`Setup::start`] with more arguments and environment variables:
    /// returns once topics exist (the job creates them) and the group has
    /// given the job its partitions.
    pub fn start_with(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Job {
        let mut job = self.spawn_with(name, args, env);
        job.wait_for_log("partition assigned");
        job
    }

    /// [`Setup::start_with`] without waiting for anything.
    pub fn spawn_with(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Job {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(self.config())
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start breakwater run");
        Job { child, log }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .expect("run the breakwater CLI")
    }
}

pub struct Job {
    pub child: Child,
    log: PathBuf,
}

impl Job {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the job's log contains `needle`; panics if the job exits
    /// first or at [`TIMEOUT`].
    pub fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.log().contains(needle) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none(),
                "the job exited ({exited:?}):\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; waits for the exit and returns the `records:` count of the
    /// job's closing summary.
    pub fn terminate(mut self) -> u64 {
        let pid = self.child.id().to_string();
        Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh", &pid])
            .status()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert!(status.success(), "exit {status} after SIGTERM:\n{log}");
        let at = log
            .find("records: ")
            .unwrap_or_else(|| panic!("no summary:\n{log}"));
        let digits: String = log[at + 9..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address the job's HTTP server bound (`http.listen: 127.0.0.1:0`).
pub fn http_addr(job: &Job) -> String {
    let log = job.log();
    let line = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .unwrap_or_else(|| panic!("no HTTP server in the log:\n{log}"));
    let at = line.find("addr=").expect("addr field") + 5;
    line[at..].split_whitespace().next().unwrap().to_string()
}

/// What a job's HTTP server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The media type, without parameters (`text/plain`), if any.
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: String,
}

/// `method path` on the job at `addr`, with a bearer token and a JSON body
/// if given.
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(TIMEOUT))
            .build(),
    );
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(body.unwrap_or_default().to_string())
        .expect("a request");
    let mut r = agent
        .run(req)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let header = |name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type =
        header("content-type").map(|c| c.split(';').next().unwrap_or_default().trim().to_string());
    let www_authenticate = header("www-authenticate");
    Reply {
        status: r.status().as_u16(),
        content_type,
        www_authenticate,
        body: r.body_mut().read_to_string().unwrap(),
    }
}

pub fn post(addr: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let r = call(addr, "POST", path, token, Some(body));
    (r.status, r.body)
}

pub fn get(addr: &str, path: &str) -> (u16, String) {
    let r = call(addr, "GET", path, None, None);
    (r.status, r.body)
}

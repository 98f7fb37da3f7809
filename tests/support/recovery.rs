//! Pieces of the recovery tests (tests/kafka_recovery.rs): `breakwater run`
//! as child processes that are SIGKILLed, SIGTERMed and restarted; a seeded
//! workload produced to partitions the test chooses; the `breakwater replay`
//! oracle run over each input partition alone; and the output topics read
//! back to their end and compared with the oracle.
//!
//! Everything here goes through the real binary and a real broker (Tansu):
//! nothing of the job runs in the test process.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};
use serde_json::{json, Value};

use super::job::{assigned, poll_into};
use super::kafka::{self as harness, Broker, Record, TestContext};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_breakwater");

/// The job's default topic names (the tests keep them).
pub const EVENTS: &str = "agent.task.events";
pub const SNAPSHOTS: &str = "agent.budget.snapshots";
pub const BREAKER: &str = "agent.breaker.state";
pub const ALERTS: &str = "agent.alerts";

/// Snapshot headers (the job's contract, see processor/src/kafka/restore.rs).
pub const STATE_HEADER: &str = "breakwater.state";
pub const POSITION_HEADER: &str = "breakwater.position";
pub const RESTORE_MARKER_HEADER: &str = "breakwater.restore-marker";
pub const RESTORE_MARKER_PREFIX: &str = "__breakwater.restore.";
/// Header naming the instance that produced an output record.
pub const INSTANCE_HEADER: &str = "breakwater.instance";

/// Keys of the markers [`read_to_end`] writes; never an agent id.
const END_MARKER_PREFIX: &str = "__breakwater-test.end.";

/// Bound on waiting for a process to start, own partitions or stop.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(45);
/// Bound on waiting for the job to have processed everything produced.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------- randomness

/// SplitMix64 of `x`: a stateless, well-mixed hash.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded generator (SplitMix64), for kill points and delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

// ------------------------------------------------------------------ workload

/// One input event and the partition the test puts it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub partition: i32,
    pub agent: String,
    pub id: String,
    /// The event as JSON (the job's input and the oracle's input line).
    pub json: String,
}

/// The kinds of agent in a [`Workload`], by failure behaviour.
pub const KINDS: [&str; 4] = ["healthy", "bursty", "flaky", "broken"];

/// A seeded stream of events for `agents` agents over `partitions` input
/// partitions. Agent `i` is `<kind>-<i>` and lives in partition
/// `i % partitions`; kinds rotate so that every partition holds every kind:
/// - `healthy`: 1 % failures, budget HEALTHY;
/// - `bursty`: 2 % failures with two bursts of 90 % (the first with slow
///   tasks too): its breaker opens, half-opens and closes again;
/// - `flaky`: 12 %: its budget is exhausted (`circuit_break` in
///   [`CHAOS_SLO`]);
/// - `broken`: 45 %: its breaker opens over and over, cooldown doubling.
///
/// Events go round-robin over the agents, `spacing_ms` of event time apart
/// (synthetic timestamps from `t0`), so every partition's stream time is
/// increasing and the whole run is deterministic in event time. A few
/// TIMEOUT and UNAVAILABLE outcomes are mixed in.
pub struct Workload {
    pub seed: u64,
    pub agents: Vec<String>,
    pub partitions: i32,
    pub t0: i64,
    pub spacing_ms: i64,
    /// Every regular event, in the order they are produced.
    pub regular: Vec<Planned>,
}

impl Workload {
    pub fn new(seed: u64, agents: usize, partitions: i32, n: usize, t0: i64) -> Workload {
        let names: Vec<String> = (0..agents)
            .map(|i| {
                let kind = KINDS[(i / partitions as usize) % KINDS.len()];
                format!("{kind}-{i:02}")
            })
            .collect();
        let spacing_ms = 1000;
        let regular = (0..n)
            .map(|k| {
                let i = k % agents;
                let j = k / agents; // the agent's own event number
                let kind = (i / partitions as usize) % KINDS.len();
                let h = mix(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
                let in_burst = (40..60).contains(&j) || (120..135).contains(&j);
                let p_fail = match kind {
                    0 => 0.01,
                    1 if in_burst => 0.9,
                    1 => 0.02,
                    2 => 0.12,
                    _ => 0.45,
                };
                let r = (h % 10_000) as f64 / 10_000.0;
                let outcome = match (h >> 50) % 100 {
                    0 => "TIMEOUT",
                    1 => "UNAVAILABLE",
                    _ if r < p_fail => "FAILURE",
                    _ => "SUCCESS",
                };
                let slow = kind == 1 && (40..60).contains(&j) && (h >> 40).is_multiple_of(3);
                let latency = if slow { 45_000 } else { 800 + (h >> 20) % 2000 };
                let id = format!("e{k}");
                let e = json!({
                    "event_id": id,
                    "agent_id": names[i],
                    "timestamp": t0 + k as i64 * spacing_ms,
                    "outcome": outcome,
                    "latency_ms": latency,
                    "tool_calls": 1 + (h >> 30) % 5,
                });
                Planned {
                    partition: (i % partitions as usize) as i32,
                    agent: names[i].clone(),
                    id,
                    json: e.to_string(),
                }
            })
            .collect();
        Workload {
            seed,
            agents: names,
            partitions,
            t0,
            spacing_ms,
            regular,
        }
    }

    /// The input partition of `agent`.
    pub fn partition_of(&self, agent: &str) -> i32 {
        let i = self
            .agents
            .iter()
            .position(|a| a == agent)
            .unwrap_or_else(|| panic!("{agent} is no agent of the workload"));
        (i % self.partitions as usize) as i32
    }

    /// One last event per agent, all at the same event time, a minute after
    /// every regular event: produced last, they bring every partition's
    /// stream time to the same final instant, so that each agent's last
    /// snapshot and the oracle's final snapshot describe the same moment
    /// (the live job snapshots an agent when it changes, at its
    /// partition's stream time then, not at the end of the input).
    pub fn ticks(&self) -> Vec<Planned> {
        let t_end = self.t0 + self.regular.len() as i64 * self.spacing_ms + 60_000;
        self.agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let id = format!("tick-{agent}");
                let e = json!({
                    "event_id": id, "agent_id": agent, "timestamp": t_end,
                    "outcome": "SUCCESS", "latency_ms": 900, "tool_calls": 1,
                });
                Planned {
                    partition: (i % self.partitions as usize) as i32,
                    agent: agent.clone(),
                    id,
                    json: e.to_string(),
                }
            })
            .collect()
    }
}

/// An SLO file under which a [`Workload`] opens breakers (failure rate and
/// latency), half-opens them on timers, closes them on probes, doubles
/// cooldowns, exhausts budgets (with budget trips for `flaky-*`), and fires
/// and resolves alerts of most rules.
pub const CHAOS_SLO: &str = r#"
defaults:
  task_success_rate: 0.95
  window: 24h
  breaker:
    failure_threshold: 0.3
    cooldown_seconds: 60
    max_cooldown_seconds: 240
    min_calls: 6
    window: 5m
    half_open_probes: 2
  alerts:
    min_tasks: 10
  burn_rate:
    min_tasks: 10
agents:
  "flaky-*":
    on_budget_exhausted: circuit_break
"#;

// ---------------------------------------------------------------- deployment

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
        let mut yaml = format!(
            "{slo}\nkafka:\n  brokers: \"{}\"\n  group_id: {group}\n  partitions: {partitions}\n  \
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
fn field(line: &str, name: &str) -> Option<i64> {
    let pat = format!(" {name}=");
    let at = line.find(&pat)? + pat.len();
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

fn strip_ansi(s: &str) -> String {
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

// ----------------------------------------------------------------- producing

/// Counts acknowledgements and keeps delivery errors.
#[derive(Clone, Default)]
pub struct Acks {
    delivered: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Acks {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        TestContext.log(level, facility, message);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, m)) => self
                .errors
                .lock()
                .unwrap()
                .push(format!("partition {}: {e}", m.partition())),
        }
    }
}

/// An idempotent producer writing [`Planned`] events to their partitions
/// of the events topic, in order.
pub struct PartitionProducer {
    producer: BaseProducer<Acks>,
    acks: Acks,
    sent: usize,
}

impl PartitionProducer {
    pub fn new(bootstrap: &str) -> PartitionProducer {
        let acks = Acks::default();
        let producer = harness::client_config(bootstrap)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create_with_context(acks.clone())
            .expect("producer");
        PartitionProducer {
            producer,
            acks,
            sent: 0,
        }
    }

    /// Sends `events` and waits until every one is acknowledged.
    pub fn send(&mut self, events: &[Planned]) {
        for e in events {
            let mut record = BaseRecord::to(EVENTS)
                .partition(e.partition)
                .key(e.agent.as_bytes())
                .payload(e.json.as_bytes());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(20));
                    }
                    Err((e, _)) => panic!("produce to {EVENTS}: {e}"),
                }
            }
            self.sent += 1;
            self.producer.poll(Duration::ZERO);
        }
        self.producer
            .flush(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("flush to {EVENTS}: {e}"));
        let errors = self.acks.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "produce errors: {:?}",
            &errors[..errors.len().min(5)]
        );
        let delivered = self.acks.delivered.load(Ordering::SeqCst);
        assert_eq!(
            delivered, self.sent,
            "delivered {delivered} of {} events",
            self.sent
        );
    }
}

/// Produces `events` to their partitions at once (acknowledged on return).
pub fn produce_planned(bootstrap: &str, events: &[Planned]) {
    PartitionProducer::new(bootstrap).send(events)
}

/// A thread producing a list of events in chunks, with a pause after each,
/// until the list ends or it is stopped.
pub struct ContinuousProducer {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl ContinuousProducer {
    pub fn start(
        bootstrap: &str,
        events: Vec<Planned>,
        chunk: usize,
        pause: Duration,
    ) -> ContinuousProducer {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicUsize::new(0));
        let (s, p, b) = (stop.clone(), produced.clone(), bootstrap.to_string());
        let handle = std::thread::spawn(move || {
            let mut producer = PartitionProducer::new(&b);
            for c in events.chunks(chunk) {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                producer.send(c);
                p.fetch_add(c.len(), Ordering::SeqCst);
                std::thread::sleep(pause);
            }
        });
        ContinuousProducer {
            stop,
            produced,
            handle: Some(handle),
        }
    }

    /// Events produced and acknowledged so far.
    pub fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events are produced.
    pub fn wait_produced(&self, n: usize) {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        while self.produced() < n {
            assert!(
                !self.handle.as_ref().unwrap().is_finished() || self.produced() >= n,
                "the producer stopped after {} events, short of {n}",
                self.produced()
            );
            assert!(
                Instant::now() < deadline,
                "produced {} of {n}",
                self.produced()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the whole list has been produced.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops after the current chunk; returns how many events were produced
    /// (a prefix of the list). Propagates a panic of the producer thread.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.produced()
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads the events topic back and returns the offset of every planned
/// event (same index), after checking that each landed once, in its
/// planned partition, and that each partition holds its events in the
/// planned order — the order the oracle replays them in.
pub fn offsets_of(bootstrap: &str, events: &[Planned]) -> Vec<i64> {
    let consumer = assigned(bootstrap, EVENTS);
    let mut seen = Vec::new();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while seen.len() < events.len() {
        assert!(
            Instant::now() < deadline,
            "read back {} of {} events",
            seen.len(),
            events.len()
        );
        poll_into(&consumer, &mut seen);
    }
    let mut at: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for r in &seen {
        let v: Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default())
            .expect("an event we produced");
        let id = v["event_id"].as_str().expect("event_id").to_string();
        at.entry(id).or_default().push((r.partition, r.offset));
    }
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    events
        .iter()
        .map(|e| {
            let places = at.get(&e.id).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(
                places.len(),
                1,
                "event {} is on the topic at {places:?}",
                e.id
            );
            let (partition, offset) = places[0];
            assert_eq!(
                partition, e.partition,
                "event {} in the wrong partition",
                e.id
            );
            let prev = last.insert(partition, offset);
            assert!(
                prev.is_none_or(|p| p < offset),
                "event {} at offset {offset} of partition {partition}, after offset {prev:?}",
                e.id
            );
            offset
        })
        .collect()
}

/// Each agent's last input offset, from [`offsets_of`].
pub fn last_offsets(events: &[Planned], offsets: &[i64]) -> BTreeMap<String, i64> {
    let mut last = BTreeMap::new();
    for (e, &o) in events.iter().zip(offsets) {
        last.insert(e.agent.clone(), o);
    }
    last
}

// -------------------------------------------------------------------- oracle

/// What one uninterrupted pass gives for one agent.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub transitions: Vec<Value>,
    pub alerts: Vec<Value>,
    /// The final budget snapshot.
    pub last: Option<Value>,
}

/// Runs `breakwater replay` with the deployment's config over each input
/// partition's events alone (in offset order) and gathers each agent's
/// transitions, alerts and final snapshot. `type` tags are removed.
pub fn oracle(
    config: &Path,
    dir: &Path,
    events: &[Planned],
    partitions: i32,
) -> BTreeMap<String, History> {
    let mut out: BTreeMap<String, History> = BTreeMap::new();
    for p in 0..partitions {
        let input = dir.join(format!("oracle-input-{p}.jsonl"));
        let lines: String = events
            .iter()
            .filter(|e| e.partition == p)
            .map(|e| format!("{}\n", e.json))
            .collect();
        std::fs::write(&input, lines).expect("write the oracle input");
        let output = dir.join(format!("oracle-output-{p}.jsonl"));
        let run = Command::new(BIN)
            .args(["replay", "--config"])
            .arg(config)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .env_remove("RUST_LOG")
            .output()
            .expect("run breakwater replay");
        assert!(
            run.status.success(),
            "breakwater replay failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&output).expect("replay output");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: Value = serde_json::from_str(line).expect("replay writes JSON lines");
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            strip(&mut v, &["type"]);
            let agent = v["agent_id"].as_str().expect("agent_id").to_string();
            let h = out.entry(agent).or_default();
            match kind.as_str() {
                "breaker_transition" => h.transitions.push(v),
                "alert" => h.alerts.push(v),
                "budget_snapshot" if v["trigger"] == "FINAL" => h.last = Some(v),
                "budget_snapshot" => {}
                other => panic!("replay wrote a record of type {other:?}"),
            }
        }
    }
    out
}

/// Removes `keys` from a JSON object.
pub fn strip(v: &mut Value, keys: &[&str]) {
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    strip(&mut v, keys);
    v
}

// ------------------------------------------------------------- reading back

/// Every record of `topic`, from the beginning to its end as of the call.
/// Tansu's high watermarks lag, so the end is found as the job's restorer
/// finds it: a marker is written to each partition and each partition is
/// read until its marker. Markers are left out of the result. Call it when
/// no instance is running, so the end is the end.
pub fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Record> {
    static MARKERS: AtomicUsize = AtomicUsize::new(0);
    let consumer = assigned(bootstrap, topic);
    let partitions = consumer
        .fetch_metadata(Some(topic), PROCESS_TIMEOUT)
        .expect("metadata")
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len()) as i32;
    assert!(partitions > 0, "topic {topic} has no partitions");
    let marker = format!(
        "{END_MARKER_PREFIX}{}.{}",
        std::process::id(),
        MARKERS.fetch_add(1, Ordering::Relaxed)
    );
    let acks = Acks::default();
    let producer: BaseProducer<Acks> = harness::client_config(bootstrap)
        .create_with_context(acks.clone())
        .expect("producer");
    for p in 0..partitions {
        let headers = OwnedHeaders::new().insert(Header {
            key: "breakwater-test.end-marker",
            value: Some("1"),
        });
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(p)
                    .key(marker.as_bytes())
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send an end marker");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush the end markers");
    assert_eq!(
        acks.delivered.load(Ordering::SeqCst),
        partitions as usize,
        "end markers acknowledged"
    );

    let mut seen = Vec::new();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while ended.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic}: end markers of partitions {ended:?} of {partitions} seen after {} records",
            seen.len()
        );
        let before = seen.len();
        poll_into(&consumer, &mut seen);
        if seen.len() > before {
            let r: &Record = &seen[before];
            if r.key.as_deref() == Some(marker.as_bytes()) {
                ended.insert(r.partition);
            }
        }
    }
    seen.retain(|r| {
        !r.key
            .as_deref()
            .is_some_and(|k| k.starts_with(END_MARKER_PREFIX.as_bytes()))
    });
    seen.sort_by_key(|r| (r.partition, r.offset));
    seen
}

/// A budget snapshot the job wrote, with its headers' input position.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub agent: String,
    pub position: i64,
    pub partition: i32,
    pub offset: i64,
    pub json: Value,
}

/// The snapshots among the records of the snapshots topic. Restore markers
/// are skipped (after checking they look like markers). Every other record
/// must be a snapshot with both headers: a problem is reported otherwise.
pub fn snapshots(records: &[Record], problems: &mut Vec<String>) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for r in records {
        let key = r.key_str();
        if key.starts_with(RESTORE_MARKER_PREFIX) {
            if r.payload.is_some() || r.header(RESTORE_MARKER_HEADER).is_none() {
                problems.push(format!(
                    "restore marker {key} at {}:{} has a payload or lacks the {RESTORE_MARKER_HEADER} header",
                    r.partition, r.offset
                ));
            }
            continue;
        }
        let position = r
            .header(POSITION_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.parse::<i64>().ok());
        let (Some(position), Some(_)) = (position, r.header(STATE_HEADER)) else {
            problems.push(format!(
                "snapshot of {key} at {}:{} lacks a {POSITION_HEADER} or {STATE_HEADER} header",
                r.partition, r.offset
            ));
            continue;
        };
        let json: Value = match serde_json::from_slice(r.payload.as_deref().unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "snapshot at {}:{} is no JSON: {e}",
                    r.partition, r.offset
                ));
                continue;
            }
        };
        if json["agent_id"] != key {
            problems.push(format!(
                "snapshot keyed {key} at {}:{} is of {}",
                r.partition, r.offset, json["agent_id"]
            ));
        }
        out.push(Snapshot {
            agent: key.to_string(),
            position,
            partition: r.partition,
            offset: r.offset,
            json,
        });
    }
    out
}

/// Per agent, the snapshot with the highest input position; among equal
/// positions the one written last (a status-change snapshot written in the
/// middle of a batch carries the position of the whole batch; the
/// checkpoint's snapshot after it shows the state at that position).
pub fn latest_by_position(snaps: &[Snapshot]) -> BTreeMap<String, Snapshot> {
    let mut latest: BTreeMap<String, Snapshot> = BTreeMap::new();
    for s in snaps {
        let newer = latest
            .get(&s.agent)
            .is_none_or(|l| (s.position, s.offset) > (l.position, l.offset));
        if newer {
            latest.insert(s.agent.clone(), s.clone());
        }
    }
    latest
}

/// Follows the snapshots topic while the job runs: the highest input
/// position seen per agent.
pub struct SnapshotWatch {
    consumer: harness::TestConsumer,
    seen: Vec<Record>,
    pub positions: BTreeMap<String, i64>,
    /// Snapshot records seen (markers excluded).
    pub count: usize,
    /// `(agent, partition)` of every snapshot seen.
    pub partitions: BTreeSet<(String, i32)>,
    /// Snapshots seen per producing instance (its `breakwater.instance`
    /// header: host and pid).
    pub by_instance: BTreeMap<String, usize>,
}

impl SnapshotWatch {
    pub fn new(bootstrap: &str) -> SnapshotWatch {
        SnapshotWatch {
            consumer: assigned(bootstrap, SNAPSHOTS),
            seen: Vec::new(),
            positions: BTreeMap::new(),
            count: 0,
            partitions: BTreeSet::new(),
            by_instance: BTreeMap::new(),
        }
    }

    /// Takes what has arrived (polls at most ~100 ms).
    pub fn poll(&mut self) {
        poll_into(&self.consumer, &mut self.seen);
        for r in self.seen.drain(..) {
            let key = r.key_str().to_string();
            if key.starts_with(RESTORE_MARKER_PREFIX) || key.starts_with(END_MARKER_PREFIX) {
                continue;
            }
            self.count += 1;
            self.partitions.insert((key.clone(), r.partition));
            if let Some(i) = r.header(INSTANCE_HEADER) {
                *self
                    .by_instance
                    .entry(String::from_utf8_lossy(i).into_owned())
                    .or_default() += 1;
            }
            let position = r
                .header(POSITION_HEADER)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.parse::<i64>().ok());
            if let Some(p) = position {
                let e = self.positions.entry(key).or_insert(p);
                *e = (*e).max(p);
            }
        }
    }

    /// Snapshots seen from the process `instance` (by its pid).
    pub fn from(&self, instance: &Instance) -> usize {
        self.count_from_pid(instance.pid())
    }

    /// Snapshots seen from the process with id `pid`.
    pub fn count_from_pid(&self, pid: u32) -> usize {
        let suffix = format!("-{pid}");
        self.by_instance
            .iter()
            .filter(|(k, _)| k.ends_with(&suffix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Waits until `instance` has written a snapshot; panics if it exits
    /// first, or after `timeout`.
    pub fn wait_from(&mut self, instance: &mut Instance, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.from(instance) == 0 {
            instance.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} wrote no snapshot within {timeout:?}\n{}",
                instance.name,
                instance.log_tail(40)
            );
            self.poll();
        }
    }

    /// Polls for about `d`.
    pub fn poll_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.poll();
        }
    }

    /// Waits until every agent has a snapshot at (or past) its last input
    /// offset: the running `instances` have processed all the input. Fails
    /// at once if one of them exits, and at [`CATCH_UP_TIMEOUT`] with their
    /// logs.
    pub fn wait_caught_up(
        &mut self,
        last: &BTreeMap<String, i64>,
        instances: &mut [&mut Instance],
    ) {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let behind: Vec<_> = last
                .iter()
                .filter(|(a, o)| self.positions.get(*a).is_none_or(|p| p < o))
                .collect();
            if behind.is_empty() {
                return;
            }
            for i in instances.iter_mut() {
                i.assert_running();
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = instances.iter().map(|i| i.log_tail(40)).collect();
                panic!(
                    "after {CATCH_UP_TIMEOUT:?}, {} agents have no snapshot at their last input offset, e.g. {:?} (latest snapshot positions: {:?})\n{}",
                    behind.len(),
                    &behind[..behind.len().min(5)],
                    behind
                        .iter()
                        .take(5)
                        .map(|(a, _)| self.positions.get(*a))
                        .collect::<Vec<_>>(),
                    logs.join("\n")
                );
            }
            self.poll();
        }
    }
}

// ---------------------------------------------------------------- comparing

/// An output topic's records per agent with repeats dropped.
#[derive(Debug, Default)]
pub struct Deduped {
    /// Per agent, the records in topic order, each `(agent, seq)` once.
    pub by_agent: BTreeMap<String, Vec<Value>>,
    pub records: usize,
    pub duplicates: usize,
}

/// Drops repeats by `(agent, seq)`. A repeat must be byte-identical to the
/// first record with its seq, and every record seen for the first time
/// must have a higher seq than all before it for its agent: otherwise a
/// problem is reported.
pub fn dedup(topic: &str, records: &[Record], problems: &mut Vec<String>) -> Deduped {
    let mut first: BTreeMap<(String, i64), (&[u8], i32, i64)> = BTreeMap::new();
    let mut out = Deduped {
        records: records.len(),
        ..Deduped::default()
    };
    for r in records {
        let payload = r.payload.as_deref().unwrap_or_default();
        let v: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "{topic} {}:{} is no JSON: {e}",
                    r.partition, r.offset
                ));
                continue;
            }
        };
        let agent = r.key_str().to_string();
        if v["agent_id"] != agent.as_str() {
            problems.push(format!(
                "{topic} {}:{} keyed {agent} is of {}",
                r.partition, r.offset, v["agent_id"]
            ));
        }
        let Some(seq) = v["seq"].as_i64() else {
            problems.push(format!("{topic} {}:{} has no seq", r.partition, r.offset));
            continue;
        };
        match first.get(&(agent.clone(), seq)) {
            Some((earlier, p, o)) => {
                out.duplicates += 1;
                if *earlier != payload {
                    problems.push(format!(
                        "{topic}: {agent} seq {seq} at {}:{} differs from the record with that seq at {p}:{o}:\n  first:  {}\n  repeat: {}",
                        r.partition,
                        r.offset,
                        String::from_utf8_lossy(earlier),
                        String::from_utf8_lossy(payload)
                    ));
                }
            }
            None => {
                let list = out.by_agent.entry(agent.clone()).or_default();
                if let Some(prev) = list.last().and_then(|p| p["seq"].as_i64()) {
                    if seq <= prev {
                        problems.push(format!(
                            "{topic}: {agent} seq {seq} at {}:{} is new but follows seq {prev}",
                            r.partition, r.offset
                        ));
                    }
                }
                list.push(v);
                first.insert((agent, seq), (payload, r.partition, r.offset));
            }
        }
    }
    out
}

/// The outcome of comparing a run's topics with the oracle.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    pub snapshots: usize,
    pub transitions: usize,
    pub duplicate_transitions: usize,
    pub alerts: usize,
    pub duplicate_alerts: usize,
}

impl Verdict {
    /// Panics listing the problems (at most 25), if there are any.
    pub fn assert_ok(&self, context: &str) {
        if self.problems.is_empty() {
            return;
        }
        let shown: Vec<&str> = self.problems.iter().take(25).map(String::as_str).collect();
        panic!(
            "{} problems comparing the run with the oracle ({context}):\n- {}\n{}",
            self.problems.len(),
            shown.join("\n- "),
            context
        );
    }
}

/// Fields of a budget snapshot that depend on how the input was cut into
/// runs, not on the input: `trigger` (why it was written: PERIODIC at a
/// checkpoint or FINAL at a stop, where the oracle's last is FINAL) and
/// `seq` (the agent's counter over all its records, snapshots included:
/// the live job writes a snapshot per checkpoint, which replay does not).
/// Every other field — event time, window bounds, counts, budget, status,
/// recommendation, burn rates, breaker, metrics, violations, firing alerts —
/// is defined by the input and must equal the oracle's.
pub const SNAPSHOT_RUN_FIELDS: [&str; 2] = ["seq", "trigger"];

/// Transitions and alerts carry the agent's `seq`, which also counts the
/// agent's snapshots: the live job writes more of those than replay (one
/// per checkpoint), so its seqs are larger; they must still be strictly
/// increasing, and a repeat must carry the seq of what it repeats. Every
/// other field must equal the oracle's.
pub const OUTPUT_RUN_FIELDS: [&str; 1] = ["seq"];

/// Compares what the run left on the snapshots, breaker and alerts topics
/// (read to their end) with the oracle:
/// - every agent's latest snapshot (highest position) is at or past its
///   last input offset and equals the oracle's final snapshot, but for
///   [`SNAPSHOT_RUN_FIELDS`];
/// - every snapshot of an agent is in the snapshots partition numbered like
///   the agent's input partition;
/// - per agent, the transitions and the alerts, repeats dropped by seq,
///   equal the oracle's one for one and in order, but for
///   [`OUTPUT_RUN_FIELDS`]: none missing, none extra, none different.
pub fn compare(
    d: &Deployment,
    oracle: &BTreeMap<String, History>,
    partition_of: impl Fn(&str) -> i32,
    last: &BTreeMap<String, i64>,
) -> Verdict {
    let bootstrap = d.bootstrap();
    let mut problems = Vec::new();
    let read = |topic: &str| {
        let records = read_to_end(&bootstrap, topic);
        dump(&d.dir.path().join(format!("{topic}.jsonl")), &records);
        records
    };
    let (s, t, a) = (read(SNAPSHOTS), read(BREAKER), read(ALERTS));
    // Record-level problems (malformed records, repeats that differ) are
    // listed after the per-agent ones, which say more.
    let mut records = Vec::new();
    let snaps = snapshots(&s, &mut records);
    let transitions = dedup(BREAKER, &t, &mut records);
    let alerts = dedup(ALERTS, &a, &mut records);

    for s in &snaps {
        let expected = partition_of(&s.agent);
        if s.partition != expected {
            problems.push(format!(
                "a snapshot of {} (input partition {expected}) is in snapshots partition {} at offset {}",
                s.agent, s.partition, s.offset
            ));
        }
    }
    let latest = latest_by_position(&snaps);
    let agents: BTreeSet<&String> = oracle
        .keys()
        .chain(latest.keys())
        .chain(transitions.by_agent.keys())
        .chain(alerts.by_agent.keys())
        .collect();
    for agent in agents {
        let h = oracle.get(agent).cloned().unwrap_or_default();
        match (latest.get(agent), &h.last) {
            (None, None) => {}
            (None, Some(_)) => problems.push(format!("{agent}: no snapshot on {SNAPSHOTS}")),
            (Some(_), None) => problems.push(format!(
                "{agent}: snapshots of an agent the oracle does not know"
            )),
            (Some(live), Some(want)) => {
                if let Some(&l) = last.get(agent) {
                    if live.position < l {
                        problems.push(format!(
                            "{agent}: latest snapshot at position {} < last input offset {l}",
                            live.position
                        ));
                    }
                }
                let (got, want) = (
                    without(&live.json, &SNAPSHOT_RUN_FIELDS),
                    without(want, &SNAPSHOT_RUN_FIELDS),
                );
                if got != want {
                    problems.push(format!(
                        "{agent}: latest snapshot (position {}, {}:{}) differs from the oracle's final one in {}",
                        live.position,
                        live.partition,
                        live.offset,
                        diff_fields(&got, &want)
                    ));
                }
            }
        }
        compare_list(
            &mut problems,
            agent,
            "transitions",
            transitions.by_agent.get(agent),
            &h.transitions,
        );
        compare_list(
            &mut problems,
            agent,
            "alerts",
            alerts.by_agent.get(agent),
            &h.alerts,
        );
    }
    problems.extend(records);
    Verdict {
        problems,
        snapshots: snaps.len(),
        transitions: transitions.records,
        duplicate_transitions: transitions.duplicates,
        alerts: alerts.records,
        duplicate_alerts: alerts.duplicates,
    }
}

/// Writes records as JSON lines (partition, offset, key, position header,
/// instance header, payload) for a look after a failure.
fn dump(path: &Path, records: &[Record]) {
    let text: String = records
        .iter()
        .map(|r| {
            let header = |h: &str| r.header(h).map(|v| String::from_utf8_lossy(v).into_owned());
            let payload = r
                .payload
                .as_deref()
                .map(|p| serde_json::from_slice::<Value>(p).unwrap_or(Value::Null));
            format!(
                "{}\n",
                json!({
                    "partition": r.partition, "offset": r.offset, "key": r.key_str(),
                    "position": header(POSITION_HEADER), "instance": header(INSTANCE_HEADER),
                    "payload": payload,
                })
            )
        })
        .collect();
    let _ = std::fs::write(path, text);
}

fn compare_list(
    problems: &mut Vec<String>,
    agent: &str,
    what: &str,
    got: Option<&Vec<Value>>,
    want: &[Value],
) {
    let got: Vec<Value> = got
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| without(v, &OUTPUT_RUN_FIELDS))
        .collect();
    let want: Vec<Value> = want
        .iter()
        .map(|v| without(v, &OUTPUT_RUN_FIELDS))
        .collect();
    if got == want {
        return;
    }
    let i = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
    problems.push(format!(
        "{agent}: {} {what} (repeats dropped) where the oracle has {}; first difference at #{i}:\n  got:    {}\n  oracle: {}",
        got.len(),
        want.len(),
        got.get(i).map_or("(none)".to_string(), Value::to_string),
        want.get(i).map_or("(none)".to_string(), Value::to_string),
    ));
}

/// The top-level fields in which two JSON objects differ, with both values.
fn diff_fields(got: &Value, want: &Value) -> String {
    let (Some(g), Some(w)) = (got.as_object(), want.as_object()) else {
        return format!("{got} vs {want}");
    };
    let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
    keys.into_iter()
        .filter(|k| g.get(*k) != w.get(*k))
        .map(|k| {
            format!(
                "`{k}`: got {} / oracle {}",
                g.get(k).map_or("(absent)".into(), Value::to_string),
                w.get(k).map_or("(absent)".into(), Value::to_string)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

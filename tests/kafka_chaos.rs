//! `breakwater chaos` end to end on a real broker (Tansu): the mixed
//! scenario (every fault kind) is produced to the events topic, the
//! `breakwater` job runs on it with event-time timers, and `chaos report
//! --json` must find every fault within a bound, see each recover, find no
//! false positive, and agree with the job's budgets.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::kafka::{self as harness, Broker};

const BIN: &str = env!("CARGO_BIN_EXE_breakwater");
/// Bound on the job processing the whole stream.
const CATCH_UP: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// scenarios/slo.yaml with the test broker's `kafka:` section.
fn config(dir: &Path, broker: &Broker) -> PathBuf {
    let slo = std::fs::read_to_string(repo().join("scenarios/slo.yaml")).unwrap();
    let kafka = format!(
        "kafka:\n  brokers: \"{}\"\n  group_id: {}\n  partitions: 3\n  snapshot_interval: 1s\n  \
         timers: event_time\n  properties: {{session.timeout.ms: 2000, heartbeat.interval.ms: 500}}\n",
        broker.bootstrap(),
        harness::unique_group("chaos")
    );
    assert!(
        slo.contains("kafka:\n  timers: event_time\n"),
        "slo.yaml's kafka section changed"
    );
    let yaml = slo.replace("kafka:\n  timers: event_time\n", &kafka);
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn cli(args: &[&str], config: &Path) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run breakwater");
    assert!(
        out.status.success(),
        "breakwater {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Job(Child, PathBuf);

impl Job {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn report(config: &Path, manifest: &Path, scenario: &Path) -> Value {
    let out = cli(
        &[
            "chaos",
            "report",
            "--json",
            "--manifest",
            manifest.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
        ],
        config,
    );
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

#[test]
fn mixed_scenario_every_fault_caught_and_recovered_no_false_positives_budgets_match() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker);
    let scenario = repo().join("scenarios/mixed.yaml");
    let manifest = dir.path().join("manifest.json");

    let log = dir.path().join("job.log");
    let mut job = Job(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start breakwater run"),
        log,
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    while !job.log().contains("partition assigned") {
        assert!(
            job.0.try_wait().unwrap().is_none(),
            "the job exited:\n{}",
            job.log()
        );
        assert!(Instant::now() < deadline, "no assignment:\n{}", job.log());
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = cli(
        &[
            "chaos",
            "--scenario",
            scenario.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--as-fast-as-possible",
        ],
        &config,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("7 faults injected"), "{said}");

    // The report is final once every agent's latest snapshot covers its last event.
    let deadline = Instant::now() + CATCH_UP;
    let r = loop {
        let r = report(&config, &manifest, &scenario);
        let b = &r["budgets"];
        if b["covered"] == b["agents"] && b["agents"].as_u64() > Some(0) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not catch up: {b}\n{}",
            job.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    drop(job);

    let pretty = serde_json::to_string_pretty(&r).unwrap();
    let faults = r["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 7, "{pretty}");
    for f in faults {
        let what = format!("{} {}", f["agent_id"], f["kind"]);
        assert_eq!(f["detected"], true, "{what} not detected:\n{pretty}");
        let delay = f["delay_seconds"].as_f64().unwrap();
        assert!(
            delay <= 300.0,
            "{what}: detected {delay} s after onset:\n{pretty}"
        );
        assert!(f["delay_events"].as_u64().unwrap() >= 1, "{what}");
        assert_eq!(f["recovered"], true, "{what} did not recover:\n{pretty}");
        if f["breaker_opened"] == true {
            assert_eq!(
                f["half_opened_after_end"], true,
                "{what}: HALF_OPEN before CLOSED"
            );
        }
        match f["kind"].as_str().unwrap() {
            "tool_failures" | "latency" | "delegation_loop" => {
                assert_eq!(f["breaker_opened"], true, "{what}:\n{pretty}");
            }
            _ => {}
        }
    }
    assert_eq!(r["summary"]["false_positives"], 0, "{pretty}");
    assert_eq!(r["summary"]["budgets_match"], true, "{pretty}");
    assert_eq!(r["budgets"]["matched"], r["budgets"]["agents"], "{pretty}");
    assert_eq!(r["agents"], 19);
}

#[test]
fn scenario_to_file_is_byte_identical_for_a_seed_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = repo().join("scenarios/tool-failures.yaml");
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let status = Command::new(BIN)
            .args(["chaos", "--scenario"])
            .arg(&scenario)
            .arg("--output")
            .arg(&out)
            .arg("--manifest")
            .arg(dir.path().join(format!("{name}.manifest")))
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(out).unwrap()
    };
    let a = run("a.jsonl", &[]);
    let b = run("b.jsonl", &[]);
    assert!(!a.is_empty());
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, run("c.jsonl", &["--seed", "8"]));
    let big = run("d.jsonl", &["--agents", "60"]);
    assert!(big.len() > 3 * a.len(), "--agents scales the fleet");

    // The file is `replay` input; the report over replay's output.
    let outputs = dir.path().join("a.out");
    let status = Command::new(BIN)
        .args(["replay", "--config"])
        .arg(repo().join("scenarios/slo.yaml"))
        .arg("--input")
        .arg(dir.path().join("a.jsonl"))
        .arg("--output")
        .arg(&outputs)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(BIN)
        .args(["chaos", "report", "--json", "--manifest"])
        .arg(dir.path().join("a.jsonl.manifest"))
        .arg("--events")
        .arg(dir.path().join("a.jsonl"))
        .arg("--outputs")
        .arg(&outputs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["summary"]["detected"], 2, "{r}");
    assert_eq!(r["summary"]["recovered"], 2, "{r}");
    assert_eq!(r["summary"]["false_positives"], 0, "{r}");
    assert_eq!(r["summary"]["budgets_match"], true, "{r}");
}

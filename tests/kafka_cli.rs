//! The `breakwater` binary against a real broker (Tansu): `run` stopped by
//! SIGTERM mid-stream and restarted, `breaker` and `declare` as operators
//! use them, and events produced by another client stack (Python
//! confluent-kafka + fastavro).

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use support::cli::{get, http_addr, post, Setup, BIN, TIMEOUT};
use support::kafka::{self as harness, Broker, Record};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn event(id: &str, agent: &str, t: i64, outcome: &str) -> (String, String) {
    let e = json!({"event_id": id, "agent_id": agent, "timestamp": t, "outcome": outcome, "latency_ms": 900});
    (agent.to_string(), e.to_string())
}

/// Sum over the partitions of `topic` of the group's committed offsets.
fn committed(broker: &Broker, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = harness::consumer_config(&broker.bootstrap(), group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    c.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

/// Reads `topic` from the beginning until `cond` holds for some record.
fn until(broker: &Broker, topic: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let consumer = harness::subscribed(&broker.bootstrap(), &harness::unique_group("until"), topic);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what} on {topic}");
        let got: Vec<Record> = harness::poll_records(&consumer, 1, left);
        let v: Value = serde_json::from_slice(got[0].payload.as_deref().unwrap_or_default())
            .unwrap_or(Value::Null);
        if cond(&v) {
            return v;
        }
    }
}

#[test]
fn sigterm_mid_stream_then_restart_resumes_from_the_committed_offsets() {
    let broker = Broker::start();
    let setup = Setup::new(&broker, "defaults: {breaker: {min_calls: 1000000}}", "");
    let topic = "agent.task.events";
    let t = now_ms() - 600_000;
    let all: Vec<_> = (0..3000)
        .map(|i| {
            event(
                &format!("e{i}"),
                &format!("agent-{}", i % 10),
                t + i,
                "SUCCESS",
            )
        })
        .collect();

    let first = setup.start("first");
    // Half the stream while the job runs, then SIGTERM, then the rest.
    broker.produce(topic, &all[..1500]);
    until(
        &broker,
        "agent.budget.snapshots",
        "a first snapshot",
        |_| true,
    );
    let n1 = first.terminate();
    assert!(n1 > 0 && n1 <= 1500, "the first run read {n1}");
    assert_eq!(
        committed(&broker, &setup.group, topic, 3),
        n1 as i64,
        "it committed what it read"
    );
    broker.produce(topic, &all[1500..]);

    let second = setup.start("second");
    let deadline = Instant::now() + TIMEOUT;
    while committed(&broker, &setup.group, topic, 3) < 3000 {
        assert!(
            Instant::now() < deadline,
            "the restart did not catch up:\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let n2 = second.terminate();
    assert_eq!(
        n1 + n2,
        3000,
        "each record read once across the restart ({n1} + {n2})"
    );
}

#[test]
fn operators_force_a_breaker_open_and_declare_accuracy_from_the_command_line() {
    let broker = Broker::start();
    let setup = Setup::new(&broker, "", "");
    let job = setup.start("job");
    let t = now_ms();
    let events: Vec<_> = (0..30)
        .map(|i| event(&format!("e{i}"), "research-agent", t + i, "SUCCESS"))
        .collect();
    broker.produce("agent.task.events", &events);
    until(
        &broker,
        "agent.budget.snapshots",
        "the agent's snapshot",
        |v| v["agent_id"] == "research-agent",
    );

    let out = setup.cli(&[
        "breaker",
        "--agent",
        "research-agent",
        "force-open",
        "--operator",
        "alice",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = until(
        &broker,
        "agent.breaker.state",
        "the forced transition",
        |_| true,
    );
    assert_eq!(
        (t["state"].as_str(), t["reason"].as_str()),
        (Some("FORCED_OPEN"), Some("OPERATOR"))
    );

    // An invalid declaration is refused and nothing is published.
    let bad = setup.cli(&[
        "declare",
        "--agent",
        "research-agent",
        "--version",
        "1.2.0",
        "--valid-for-days",
        "90",
        "--method",
        "suite_v3",
        "task_completion=1.5",
    ]);
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(
        why.contains("task_completion") && why.contains("nothing published"),
        "{why}"
    );
    let good = setup.cli(&[
        "declare",
        "--agent",
        "research-agent",
        "--version",
        "1.2.0",
        "--supersedes",
        "1.1.0",
        "--valid-for-days",
        "90",
        "--method",
        "suite_v3",
        "task_completion=0.97",
        "policy_compliance=0.999",
    ]);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let decl = harness::consume(
        &broker.bootstrap(),
        "agent.accuracy.declarations",
        1,
        TIMEOUT,
    );
    let first: Value = serde_json::from_slice(decl[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        first["version"], "1.2.0",
        "the refused one never reached the topic"
    );

    // The job puts it in force: the next snapshot of the agent shows it.
    let more: Vec<_> = (30..40)
        .map(|i| event(&format!("e{i}"), "research-agent", now_ms() + i, "SUCCESS"))
        .collect();
    broker.produce("agent.task.events", &more);
    let snap = until(
        &broker,
        "agent.budget.snapshots",
        "a snapshot with the declaration",
        |v| v["accuracy"]["version"] == "1.2.0",
    );
    assert_eq!(snap["accuracy"]["declared"]["task_completion"], 0.97);
    job.terminate();
}

/// The Python script producing Confluent-framed Avro with the standard stack.
const PRODUCER: &str = r#"
import io, json, struct, sys, time, fastavro
from confluent_kafka import Producer
bootstrap, topic, schema_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
schema = fastavro.parse_schema(json.load(open(schema_path)))
p = Producer({"bootstrap.servers": bootstrap})
now = int(time.time() * 1000)
for i in range(n):
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", 1))
    fastavro.schemaless_writer(buf, schema, {
        "event_id": f"py-{i}", "agent_id": "py-agent", "task_id": f"t{i}", "timestamp": now + i,
        "outcome": "FAILURE" if i % 4 == 0 else "SUCCESS", "latency_ms": 1500, "tool_calls": 4,
        "hallucination": False, "evals": [{"category": "factual_retrieval", "passed": True}],
    })
    p.produce(topic, key=b"py-agent", value=buf.getvalue())
assert p.flush(30) == 0
"#;

#[test]
fn events_from_python_confluent_kafka_and_fastavro_are_counted() {
    let broker = Broker::start();
    let setup = Setup::new(
        &broker,
        "defaults: {breaker: {min_calls: 1000000}}",
        "  wire: {input: {default_schema_id: 1}}\n",
    );
    let job = setup.start("job");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/task_event.avsc");
    let mut script = tempfile::NamedTempFile::new().unwrap();
    script.write_all(PRODUCER.as_bytes()).unwrap();
    let out = Command::new(support::python::python())
        .arg(script.path())
        .args([&broker.bootstrap(), "agent.task.events"])
        .arg(&schema)
        .arg("40")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let snap = until(
        &broker,
        "agent.budget.snapshots",
        "all 40 Python events",
        |v| v["agent_id"] == "py-agent" && v["tasks"] == 40,
    );
    assert_eq!(snap["failed"], 10);
    assert_eq!(snap["metrics"]["eval_pass_rates"]["factual_retrieval"], 1.0);
    assert_eq!(snap["metrics"]["hallucination_rate"], 0.0);
    job.terminate();
}

#[test]
fn a_wrong_kafka_setting_fails_at_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kafka: {partitions: 0}",
            "kafka.partitions: 0 is not allowed",
        ),
        (
            "kafka: {snapshot_interval: soon}",
            "kafka.snapshot_interval",
        ),
        (
            "kafka: {wire: {output: {format: xml}}}",
            "kafka.wire.output.format",
        ),
        (
            "kafka: {topics: {alerts: agent.task.events}}",
            "kafka.topics.alerts",
        ),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--brokers", "127.0.0.1:1", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{yaml} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{yaml}: {err}");
    }
}

/// `/healthz`, `/readyz` and `/metrics` of a running job: ready once it
/// owns its partitions, and the Prometheus exposition counts the events it
/// processed, in the text format (every sample line is `name{labels} value`).
#[test]
fn the_job_serves_probes_and_prometheus_metrics() {
    let broker = Broker::start();
    let setup = Setup::new(&broker, "defaults: {breaker: {min_calls: 1000000}}", "");
    let job = setup.start("http");
    let addr = http_addr(&job);
    assert_eq!(get(&addr, "/healthz").0, 200);
    let deadline = Instant::now() + TIMEOUT;
    while get(&addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", job.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let t = now_ms();
    let events: Vec<_> = (0..25)
        .map(|i| {
            let e = json!({"event_id": format!("m{i}"), "agent_id": "metrics-agent", "timestamp": t + i,
                "outcome": "SUCCESS", "latency_ms": 900, "tool_calls": 3, "hallucination": false});
            ("metrics-agent".to_string(), e.to_string())
        })
        .collect();
    harness::produce(&broker.bootstrap(), "agent.task.events", &events);
    harness::produce(
        &broker.bootstrap(),
        "agent.task.events",
        &[("metrics-agent", "not an event")],
    );
    let counted = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("breakwater_events_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let metrics = loop {
        let (status, text) = get(&addr, "/metrics");
        assert_eq!(status, 200);
        // The agent gauges are set at each snapshot interval (1 s here).
        if counted(&text) == Some(25.0)
            && text.contains("breakwater_agent_tasks{agent=\"metrics-agent\"} 25")
            && text.contains("breakwater_dead_letters_total{")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "events not in /metrics:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        assert!(series.starts_with("breakwater_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(
        metrics.contains("breakwater_agents{breaker_state=\"CLOSED\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("breakwater_agent_circuit_state{agent=\"metrics-agent\",state=\"CLOSED\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("breakwater_agent_task_success_ratio{agent=\"metrics-agent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE breakwater_events_total counter"),
        "{metrics}"
    );
    // The agents this instance owns.
    let (status, body) = get(&addr, "/agents/metrics-agent");
    assert_eq!(status, 200, "{body}");
    let agent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(agent["tasks"], 25, "{agent}");
    assert_eq!(agent["task_success_rate"], 1.0, "{agent}");
    assert_eq!(agent["budget_status"], "HEALTHY", "{agent}");
    assert_eq!(agent["circuit_state"], "CLOSED", "{agent}");
    assert_eq!(agent["retry_at"], Value::Null, "{agent}");
    assert!(agent["recommendation"].is_string(), "{agent}");
    // No token configured: operator commands over HTTP are off.
    let (status, body) = post(
        &addr,
        "/agents/metrics-agent/breaker",
        Some("whatever-token-1234"),
        r#"{"command":"force_open"}"#,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = get(&addr, "/agents/nobody");
    assert_eq!(status, 404, "{body}");
    let missing: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(missing["owned_partitions"], json!([0, 1, 2]), "{missing}");
    let list = |q: &str| -> Value {
        let (status, body) = get(&addr, &format!("/agents{q}"));
        assert_eq!(status, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let closed = list("?state=CLOSED&status=HEALTHY&limit=10");
    assert_eq!(closed["total"], 1, "{closed}");
    assert_eq!(closed["agents"][0]["agent_id"], "metrics-agent", "{closed}");
    assert_eq!(closed["next_offset"], Value::Null, "{closed}");
    assert_eq!(list("?status=EXHAUSTED")["total"], 0);
    assert_eq!(list("?state=OPEN")["agents"], json!([]));
    assert_eq!(get(&addr, "/agents?status=BROKEN").0, 400);
    assert_eq!(get(&addr, "/agents?limit=0").0, 400);

    // Processor health: a delegation loop opens a breaker at once, which
    // gives the processing-latency histogram an observation.
    let looping = json!({"event_id": "loop-1", "agent_id": "looping-agent", "timestamp": t + 100,
        "outcome": "SUCCESS", "latency_ms": 100, "tool_calls": 1, "delegation_depth": 9});
    harness::produce(
        &broker.bootstrap(),
        "agent.task.events",
        &[("looping-agent", looping.to_string())],
    );
    let metrics = loop {
        let (status, text) = get(&addr, "/metrics");
        assert_eq!(status, 200);
        let unmet = unmet_health_conditions(&text);
        if unmet.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline + TIMEOUT,
            "{unmet:?} not in /metrics:\n{text}\n{}",
            job.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("# TYPE breakwater_processing_latency_seconds histogram"),
        "{metrics}"
    );

    // deploy/grafana uses only metrics the job exports.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/breakwater.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut used = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("breakwater_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    assert!(used.len() > 15, "{used:?}");
    let exported: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<_> = used
        .iter()
        .filter(|n| {
            // A histogram's series: `# TYPE` names the histogram.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !exported.contains(n.as_str()) && !exported.contains(base)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the job does not export: {missing:?}\n{metrics}"
    );

    // Prometheus' own linter on the exposition, and a real server scraping it.
    let (ok, lint) =
        support::prometheus::promtool(Path::new("."), &["check", "metrics"], Some(&metrics));
    assert!(ok, "promtool check metrics:\n{lint}\n{metrics}");
    let prometheus = support::prometheus::Prometheus::start(&addr);
    prometheus.wait_for(
        "breakwater_agent_tasks{agent=\"metrics-agent\"}",
        TIMEOUT,
        |r| r[0]["value"][1] == "25",
    );
    prometheus.wait_for("breakwater_events_total", TIMEOUT, |r| {
        r[0]["value"][1] == "26"
    });
    assert_eq!(job.terminate(), 27);
}

/// What the processor-health metrics of
/// `the_job_serves_probes_and_prometheus_metrics` do not show yet, after 27
/// input records (one bad) and one breaker opened by a delegation loop.
fn unmet_health_conditions(text: &str) -> Vec<&'static str> {
    let v = |series: &str| value(text, series);
    let at_least_one = |series: &str| v(series).is_some_and(|n| n >= 1.0);
    // Everything here happens within seconds of being produced.
    let mean_below_30s = |histogram: &str| {
        let sum = v(&format!("{histogram}_sum"));
        let count = v(&format!("{histogram}_count"));
        matches!((sum, count), (Some(s), Some(c)) if c >= 1.0 && s / c < 30.0)
    };
    let lag = |p: i32| {
        v(&format!(
            "breakwater_consumer_lag_records{{partition=\"{p}\"}}"
        ))
    };
    [
        (
            "a transition acknowledged",
            mean_below_30s("breakwater_processing_latency_seconds"),
        ),
        (
            "every record read",
            v("breakwater_input_records_total") == Some(27.0),
        ),
        (
            "decode timed",
            at_least_one("breakwater_decode_duration_seconds_count"),
        ),
        ("batch age", mean_below_30s("breakwater_input_age_seconds")),
        (
            "checkpoints timed",
            at_least_one("breakwater_checkpoint_duration_seconds_count"),
        ),
        (
            "both agents snapshotted",
            v("breakwater_snapshot_records_total{trigger=\"PERIODIC\"}").is_some_and(|n| n >= 2.0),
        ),
        (
            "every partition caught up",
            (0..3).all(|p| lag(p) == Some(0.0)),
        ),
        (
            "queue gauges",
            v("breakwater_consumer_queue_records").is_some()
                && v("breakwater_producer_queue_records").is_some(),
        ),
        (
            "burn rates",
            v("breakwater_agent_burn_rate{agent=\"metrics-agent\",window=\"1h\"}") == Some(0.0)
                && v("breakwater_agent_window_tasks{agent=\"metrics-agent\",window=\"24h\"}")
                    == Some(25.0)
                && v("breakwater_agent_burn_rate{agent=\"looping-agent\",window=\"5m\"}").is_some(),
        ),
        (
            "nothing late",
            v("breakwater_events_skipped_total{reason=\"late\"}") == Some(0.0),
        ),
    ]
    .into_iter()
    .filter(|&(_, ok)| !ok)
    .map(|(what, _)| what)
    .collect()
}

/// The value of the exposition line for exactly `series`, if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// `--log-format json`: every log line is a JSON object; the first says
/// what the job runs with, secrets masked.
#[test]
fn json_logs_start_with_the_effective_config_and_no_secrets() {
    let broker = Broker::start();
    let setup = Setup::new(&broker, "", "");
    let job = setup.start_with(
        "json",
        &["--log-format", "json"],
        &[("BREAKWATER_KAFKA_SSL_KEY_PASSWORD", "hunter2")],
    );
    let log = job.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let banner = lines
        .iter()
        .find(|l| l["fields"]["message"] == "breakwater run starting")
        .unwrap_or_else(|| panic!("no start-up banner:\n{log}"));
    let f = &banner["fields"];
    assert_eq!(f["group"], setup.group.as_str(), "{banner}");
    assert_eq!(f["events"], "agent.task.events", "{banner}");
    assert_eq!(f["timers"], "WallClock", "{banner}");
    assert!(
        f["properties"]
            .as_str()
            .unwrap()
            .contains("ssl.key.password=*****"),
        "{banner}"
    );
    assert!(!log.contains("hunter2"), "a secret reached the log:\n{log}");
    assert!(lines.iter().any(|l| l["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("partition assigned"))));
    job.terminate();
}

/// `POST /agents/{id}/breaker` with the configured bearer token goes
/// through the commands topic: the owner applies it and publishes the
/// transition with reason OPERATOR. Without the token, or with another, it
/// is refused and nothing is published.
#[test]
fn operators_force_a_breaker_open_over_http_with_a_bearer_token() {
    const TOKEN: &str = "s3cret-token-for-tests";
    let broker = Broker::start();
    let setup = Setup::new(&broker, "", "");
    let job = setup.start_with("ops", &[], &[("BREAKWATER_HTTP_TOKEN", TOKEN)]);
    let addr = http_addr(&job);
    harness::produce(
        &broker.bootstrap(),
        "agent.task.events",
        &[event("o1", "ops-agent", now_ms(), "SUCCESS")],
    );
    let deadline = Instant::now() + TIMEOUT;
    while get(&addr, "/agents/ops-agent").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "agent never tracked:\n{}",
            job.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let path = "/agents/ops-agent/breaker";
    let open = r#"{"command":"force_open","operator":"alice"}"#;
    assert_eq!(post(&addr, path, None, open).0, 401);
    assert_eq!(post(&addr, path, Some("not-the-token-at-all"), open).0, 401);
    assert_eq!(
        post(&addr, path, Some(TOKEN), r#"{"command":"explode"}"#).0,
        400
    );
    let (status, body) = post(&addr, path, Some(TOKEN), open);
    assert_eq!(status, 202, "{body}");
    let t = until(&broker, "agent.breaker.state", "the forced open", |v| {
        v["agent_id"] == "ops-agent" && v["state"] == "FORCED_OPEN"
    });
    assert_eq!(t["reason"], "OPERATOR", "{t}");
    let (_, body) = get(&addr, "/agents/ops-agent");
    let agent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(agent["circuit_state"], "FORCED_OPEN", "{agent}");
    assert!(!job.log().contains(TOKEN), "the token reached the log");
    job.terminate();
}

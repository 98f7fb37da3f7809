//! `breakwater run` against a real broker (Tansu): the job consumes task
//! events and publishes breaker transitions, alerts, snapshots and dead
//! letters. Each test gets its own broker; the job runs in-process on a
//! thread and is stopped gracefully at the end.

mod support;

use breakwater::decode::encode_avro_datum;
use breakwater::decode::framing::confluent_header;
use breakwater::event::{Outcome, TaskEvent};
use breakwater::kafka::dead_letter::{REASON_HEADER, SOURCE_OFFSET_HEADER};
use breakwater::kafka::JobStatus;
use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use support::job::{assigned, event, json_of, now_ms, poll_into, RunningJob, Watch, TIMEOUT};
use support::kafka::{Broker, Record};

#[test]
fn the_spec_worked_example_end_to_end() {
    let broker = Broker::start();
    // Breaker out of the way: this is about the budget.
    let job = RunningJob::start(
        &broker.bootstrap(),
        "defaults: {breaker: {min_calls: 1000000}}",
    );
    let t0 = now_ms() - 3_600_000;
    let events: Vec<_> = (0..1000)
        .map(|i| {
            let outcome = if i % 50 < 3 { "FAILURE" } else { "SUCCESS" };
            event(&format!("e{i}"), "research-agent", t0 + i * 1000, outcome)
        })
        .collect();
    broker.produce(&job.settings.topics.events, &events);
    job.wait_until("1000 events counted", |s| JobStatus::get(&s.events) == 1000);

    let mut snaps = Watch::new(&broker.bootstrap(), &job.settings.topics.snapshots);
    let seen = snaps.until("a snapshot of all 1000 tasks", |rs| {
        rs.iter().any(|r| json_of(r)["tasks"] == 1000)
    });
    let s = json_of(
        seen.iter()
            .rev()
            .find(|r| json_of(r)["tasks"] == 1000)
            .unwrap(),
    );
    assert_eq!(s["failed"], 60);
    assert_eq!(s["remaining_percent"], -20.0);
    assert_eq!(s["status"], "EXHAUSTED");
    assert_eq!(
        s["recommendation"],
        "Throttle agent — error budget depleted"
    );
    let r = seen.iter().find(|r| json_of(r)["tasks"] == 1000).unwrap();
    assert_eq!(r.key_str(), "research-agent");
    assert_eq!(
        r.header("breakwater.schema"),
        Some(&b"io.breakwater.BudgetSnapshot"[..])
    );
    // What a restore needs: the engine state and the input offset it reflects.
    assert!(r.header("breakwater.state").is_some_and(|s| !s.is_empty()));
    assert_eq!(r.header("breakwater.position"), Some(&b"999"[..]));

    let summary = job.stop();
    assert_eq!(summary.events, 1000);
    assert_eq!(summary.dead_letters, 0);
}

#[test]
fn a_breaker_opens_half_opens_on_the_wall_clock_and_closes_on_probes() {
    let broker = Broker::start();
    let job = RunningJob::start(
        &broker.bootstrap(),
        "defaults: {breaker: {min_calls: 20, failure_threshold: 0.5, cooldown_seconds: 1, half_open_probes: 3}}",
    );
    let topic = job.settings.topics.events.clone();
    let t = now_ms();
    let burst: Vec<_> = (0..30)
        .map(|i| event(&format!("f{i}"), "flaky-agent", t + i, "FAILURE"))
        .collect();
    broker.produce(&topic, &burst);

    let mut transitions = Watch::new(&broker.bootstrap(), &job.settings.topics.breaker_state);
    let states = |rs: &[Record]| -> Vec<String> {
        rs.iter()
            .map(|r| json_of(r)["state"].as_str().unwrap().to_string())
            .collect()
    };
    // No more traffic: the cooldown elapses on the wall clock alone.
    let seen = transitions.until("OPEN then HALF_OPEN", |rs| {
        states(rs) == ["OPEN", "HALF_OPEN"]
    });
    let open = json_of(&seen[0]);
    assert_eq!(open["reason"], "FAILURE_RATE");
    assert_eq!(
        open["window_tasks"], 20,
        "it opens as soon as min_calls is reached"
    );
    assert_eq!(open["window_failed"], 20);
    assert_eq!(json_of(&seen[1])["reason"], "COOLDOWN_ELAPSED");
    assert_eq!(seen[0].key_str(), "flaky-agent");

    let t = now_ms();
    let probes: Vec<_> = (0..3)
        .map(|i| event(&format!("p{i}"), "flaky-agent", t + i, "SUCCESS"))
        .collect();
    broker.produce(&topic, &probes);
    let seen = transitions.until("CLOSED after the probes", |rs| states(rs).len() == 3);
    let closed = json_of(&seen[2]);
    assert_eq!(
        (closed["state"].as_str(), closed["reason"].as_str()),
        (Some("CLOSED"), Some("PROBES_PASSED"))
    );
    let seqs: Vec<i64> = seen
        .iter()
        .map(|r| json_of(r)["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    job.stop();
}

#[test]
fn garbage_goes_to_the_dead_letter_topic_while_good_events_flow() {
    let broker = Broker::start();
    // Confluent schema id 1 is the bundled task event schema.
    let job = RunningJob::start_with(
        &broker.bootstrap(),
        "{}",
        "wire: {input: {default_schema_id: 1}}",
    );
    let topic = job.settings.topics.events.clone();
    let t = now_ms();
    let mut avro = confluent_header(1).to_vec();
    avro.extend(encode_avro_datum(&TaskEvent::new(
        "v",
        "agent-a",
        t,
        Outcome::Success,
    )));
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..100 {
        let (k, v) = event(&format!("g{i}"), "agent-a", t + i, "SUCCESS");
        records.push((k, v.into_bytes()));
    }
    let mut wrong_id = avro.clone();
    wrong_id[4] = 99;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("agent-a", vec![0x7f, 0x00, 0xff, 0x13]),
        ("agent-a", avro[..avro.len() - 3].to_vec()),
        ("agent-a", wrong_id),
        ("agent-a", b"{\"event_id\": \"x\", \"timestamp\": 1".to_vec()),
        ("agent-a", br#"{"event_id":"y","timestamp":1700000000000,"outcome":"SUCCESS"}"#.to_vec()),
        ("agent-a", br#"{"event_id":"z","agent_id":"a","timestamp":1700000000000,"outcome":"MAYBE"}"#.to_vec()),
        ("agent-a", br#"{"event_id":"w","agent_id":"a","timestamp":1700000000000,"outcome":"SUCCESS","latency_ms":-5}"#.to_vec()),
    ];
    for (i, (k, v)) in garbage.iter().enumerate() {
        records.insert(5 + i * 14, (k.to_string(), v.clone()));
    }
    records.push(("agent-a".into(), avro.clone())); // a good Avro event
    broker.produce(&topic, &records);
    job.wait_until("every record handled", |s| {
        JobStatus::get(&s.records) == 108
    });
    job.wait_until("101 events counted", |s| JobStatus::get(&s.events) == 101);

    let mut dlq = Watch::new(&broker.bootstrap(), &job.settings.topics.dead_letter);
    let seen = dlq.until("7 dead letters", |rs| rs.len() == 7).to_vec();
    for (r, (_, bytes)) in seen.iter().zip(&garbage) {
        assert_eq!(
            r.payload.as_deref(),
            Some(&bytes[..]),
            "the record goes unchanged"
        );
        assert!(r.header(SOURCE_OFFSET_HEADER).is_some());
    }
    let reasons: Vec<String> = seen
        .iter()
        .map(|r| String::from_utf8_lossy(r.header(REASON_HEADER).unwrap()).into_owned())
        .collect();
    assert!(reasons[0].contains("0x7f"), "{reasons:?}");
    assert!(reasons[1].contains("truncated"), "{reasons:?}");
    assert!(reasons[2].contains("schema id 99"), "{reasons:?}");
    assert!(reasons[4].contains("agent_id"), "{reasons:?}");
    assert!(reasons[5].contains("MAYBE"), "{reasons:?}");
    assert!(reasons[6].contains("latency_ms"), "{reasons:?}");
    let summary = job.stop();
    assert_eq!((summary.events, summary.dead_letters), (101, 7));
}

/// A job that takes over partitions restores their agents from the
/// snapshots topic before it reports ready, and goes on counting from
/// their state: an agent with 10 events before the restart has 11 after
/// one more, not 1.
#[test]
fn a_restarted_job_restores_its_agents_before_it_reports_ready() {
    let broker = Broker::start();
    let slo = "defaults: {breaker: {min_calls: 1000000}}";
    let first = RunningJob::start(&broker.bootstrap(), slo);
    assert!(first.control.is_ready(), "owns its partitions, restored");
    let settings = first.settings.clone();
    let agents = ["agent-a", "agent-b", "agent-c"];
    let t0 = now_ms() - 60_000;
    let before: Vec<_> = (0..10)
        .flat_map(|i| agents.map(|a| event(&format!("{a}-{i}"), a, t0 + i, "SUCCESS")))
        .collect();
    broker.produce(&settings.topics.events, &before);
    first.wait_until("30 events counted", |s| JobStatus::get(&s.events) == 30);
    first.stop();

    let second = RunningJob::spawn(settings.clone(), slo);
    assert!(
        !second.control.is_ready(),
        "not ready before it owns restored partitions"
    );
    second.wait_until("ready with the agents restored", |s| {
        s.ready.load(std::sync::atomic::Ordering::Relaxed)
            && JobStatus::get(&s.restored_agents) == 3
    });
    let after: Vec<_> = agents
        .map(|a| event(&format!("{a}-after"), a, t0 + 100, "SUCCESS"))
        .to_vec();
    broker.produce(&settings.topics.events, &after);
    second.wait_until("3 more events counted", |s| JobStatus::get(&s.events) == 3);
    let summary = second.stop();
    assert_eq!(summary.events, 3, "nothing counted twice: {summary:?}");

    let mut snaps = Watch::new(&broker.bootstrap(), &settings.topics.snapshots);
    snaps.until("every agent's snapshot with 11 tasks", |rs| {
        agents.iter().all(|a| {
            rs.iter()
                .any(|r| r.key_str() == *a && json_of(r)["tasks"] == 11)
        })
    });
}

/// `kafka.processing_threads` changes how fast, never what: the same input
/// run by a job with one thread and by one with two gives the same breaker
/// transitions and alerts, record for record, and the same last snapshot
/// of every agent. Timers on event time, so nothing depends on the wall
/// clock; the input is all there before the jobs start, so their batches
/// are big and span the partitions, and the two-thread job must have run
/// some side by side.
#[test]
fn processing_threads_change_nothing_but_speed() {
    const AGENTS: i64 = 60;
    const PER_AGENT: i64 = 100;
    let broker = Broker::start();
    let t0 = now_ms() - 3 * 3_600_000;
    let mut events = Vec::new();
    for j in 0..PER_AGENT {
        for i in 0..AGENTS {
            // Every third agent fails for a while (its breaker opens, its
            // budget burns, alerts fire), then recovers; the rest fail
            // now and then.
            let failing = (i % 3 == 0 && (30..55).contains(&j)) || (i + j) % 25 == 0;
            let outcome = if failing { "FAILURE" } else { "SUCCESS" };
            events.push(event(
                &format!("e{i}-{j}"),
                &format!("agent-{i}"),
                t0 + j * 10_000 + i,
                outcome,
            ));
        }
    }
    let topic = breakwater::config::Topics::default().events;
    broker.create_topic(&topic, 3, false);
    broker.produce(&topic, &events);

    let run = |threads: usize| {
        let extra = format!(
            "processing_threads: {threads}\ntimers: event_time\ntopics: \
             {{breaker_state: t{threads}.breaker, alerts: t{threads}.alerts, \
             snapshots: t{threads}.snapshots, dead_letter: t{threads}.dlq}}"
        );
        let job = RunningJob::start_with(&broker.bootstrap(), "{}", &extra);
        let n = events.len() as u64;
        job.wait_until("every event counted", |s| JobStatus::get(&s.events) == n);
        let t = job.settings.topics.clone();
        let status = job.control.status.clone();
        // Stopped gracefully: every output is acknowledged, and counted.
        let sent = job.stop().outputs;
        let parallel = JobStatus::get(&status.parallel_turns);
        let topics = [t.breaker_state, t.alerts, t.snapshots];
        let consumers: Vec<_> = topics
            .iter()
            .map(|t| assigned(&broker.bootstrap(), t))
            .collect();
        let mut seen: Vec<Vec<Record>> = vec![Vec::new(); topics.len()];
        // Restore markers on the snapshots topic are not outputs.
        let outputs = |seen: &[Vec<Record>]| {
            seen.iter()
                .flatten()
                .filter(|r| r.header("breakwater.schema").is_some())
                .count() as u64
        };
        let deadline = Instant::now() + TIMEOUT;
        while outputs(&seen) < sent {
            assert!(
                Instant::now() < deadline,
                "{threads} thread(s): read {} of the {sent} outputs",
                outputs(&seen)
            );
            // Each consumer while it has records: a poll that finds none
            // waits 100 ms.
            for (c, s) in consumers.iter().zip(&mut seen) {
                let mut before = usize::MAX;
                while s.len() != before {
                    before = s.len();
                    poll_into(c, s);
                }
            }
        }
        let [transitions, alerts, snapshots] = seen.try_into().unwrap();
        (
            parallel,
            by_agent(&transitions),
            by_agent(&alerts),
            last_states(&snapshots),
        )
    };
    let (serial_turns, transitions, alerts, states) = run(1);
    let (parallel_turns, transitions2, alerts2, states2) = run(2);

    assert_eq!(serial_turns, 0, "one thread never runs side by side");
    assert!(
        parallel_turns > 0,
        "two threads never ran a batch side by side"
    );
    let opened = transitions
        .values()
        .flatten()
        .filter(|t| t.contains("\"state\":\"OPEN\""))
        .count();
    assert!(
        opened > 0 && !alerts.is_empty(),
        "the input must open breakers and fire alerts"
    );
    assert_eq!(transitions, transitions2, "breaker transitions");
    assert_eq!(alerts, alerts2, "alerts");
    assert_eq!(states.len(), AGENTS as usize);
    assert_eq!(states, states2, "last snapshots");
}

/// Each agent's output payloads, in order.
fn by_agent(records: &[Record]) -> BTreeMap<String, Vec<String>> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records {
        all.entry(r.key_str().to_string())
            .or_default()
            .push(r.payload_str().to_string());
    }
    all
}

/// Each agent's last snapshot, without its trigger (which checkpoint wrote
/// it depends on the wall clock), and its status-change snapshots, which
/// the engine writes as the events arrive.
fn last_states(records: &[Record]) -> BTreeMap<String, (Value, Vec<Value>)> {
    let mut all: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.header("breakwater.schema").is_some())
    {
        let mut v = json_of(r);
        let trigger = v.as_object_mut().unwrap().remove("trigger");
        let entry = all.entry(r.key_str().to_string()).or_default();
        if trigger.as_ref().and_then(Value::as_str) == Some("STATUS_CHANGE") {
            entry.1.push(v.clone());
        }
        entry.0 = v;
    }
    all
}

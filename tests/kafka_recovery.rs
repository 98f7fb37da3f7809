//! Exact recovery and scale-out of `breakwater run` (issue 4, SPEC §9), on a
//! real broker (Tansu) with real processes: SIGKILLed and restarted over and
//! over, a second instance killed under load, instances restarted one at a
//! time under continuous input, and an OPEN breaker carried across a
//! restart. After all of that, every agent's counts, budget, breaker history
//! and alerts must equal one uninterrupted pass over the input:
//! `breakwater replay` over each input partition alone is the oracle (with
//! `kafka.timers: event_time` the job's timers run on each partition's
//! stream time, as replay's do, so the two must agree exactly).
//!
//! The pieces (processes, workload, oracle, reading the topics back and the
//! comparison) are in `support/recovery.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::job::{assigned, now_ms};
use support::recovery::{
    compare, last_offsets, offsets_of, oracle, produce_planned, wait_split, ContinuousProducer,
    Deployment, History, Instance, Planned, Rng, SnapshotWatch, Workload, BREAKER, CHAOS_SLO,
    INSTANCE_HEADER, SNAPSHOTS, STATE_HEADER,
};

/// Synthetic event time of the first event: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// The job settings of the exactness tests: timers on event time, a
/// checkpoint every 500 ms.
const EVENT_TIME: [&str; 2] = ["timers: event_time", "snapshot_interval: 500ms"];

/// The seed of the kill points: `default`, or `$BREAKWATER_TEST_SEED` to
/// explore others (decimal or 0x-prefixed hex).
fn seed(default: u64) -> u64 {
    match std::env::var("BREAKWATER_TEST_SEED") {
        Ok(s) if !s.is_empty() => s
            .strip_prefix("0x")
            .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
            .expect("BREAKWATER_TEST_SEED: a number"),
        _ => default,
    }
}

/// Fails unless the oracle shows the workload doing what the tests are
/// about: breakers opening, half-opening and closing again, budgets
/// exhausted and healthy, alerts firing and resolving. Otherwise "equal to
/// the oracle" would prove little.
fn assert_eventful(oracle: &BTreeMap<String, History>) {
    let transitions: Vec<&Value> = oracle.values().flat_map(|h| &h.transitions).collect();
    for state in ["OPEN", "HALF_OPEN", "CLOSED"] {
        assert!(
            transitions.iter().any(|t| t["state"] == state),
            "the workload never moves a breaker to {state}"
        );
    }
    let alerts: Vec<&Value> = oracle.values().flat_map(|h| &h.alerts).collect();
    for status in ["FIRING", "RESOLVED"] {
        assert!(
            alerts.iter().any(|a| a["status"] == status),
            "the workload never has an alert {status}"
        );
    }
    let statuses: BTreeSet<&str> = oracle
        .values()
        .filter_map(|h| h.last.as_ref()?["status"].as_str())
        .collect();
    assert!(
        statuses.contains("EXHAUSTED") && statuses.contains("HEALTHY"),
        "final budget statuses {statuses:?}: want EXHAUSTED and HEALTHY agents"
    );
}

/// Reads back the offsets of everything produced (`events`, in order),
/// then waits until every agent has a snapshot at its last input offset:
/// the running `instances` have processed all the input. Returns each
/// agent's last input offset.
fn catch_up(
    d: &Deployment,
    events: &[Planned],
    watch: &mut SnapshotWatch,
    instances: &mut [&mut Instance],
) -> BTreeMap<String, i64> {
    let offsets = offsets_of(&d.bootstrap(), events);
    let last = last_offsets(events, &offsets);
    watch.wait_caught_up(&last, instances);
    last
}

/// Crash test: the job is SIGKILLed at 11 seeded random points while the
/// input arrives in chunks, restarted each time, then left to finish. Each
/// agent's counts, budget, burn rates, breaker and metrics (its latest
/// snapshot), its breaker transitions and its alerts (repeats dropped by
/// seq) must equal one uninterrupted replay; a repeated output must be
/// byte-identical to the first with its seq. Proves that restore plus
/// skipping by position counts each event exactly once with no help from
/// Kafka transactions, and that outputs lost or repeated around a crash
/// are re-emitted identically.
#[test]
fn crash_and_restart_ten_times_counts_exactly() {
    const KILLS: usize = 11;
    let d = Deployment::new(CHAOS_SLO, 3, &EVENT_TIME);
    let w = Workload::new(11, 24, 3, 4800, T0);
    let mut events = w.regular.clone();
    events.extend(w.ticks());
    let want = oracle(d.config(), d.dir.path(), &events, 3);
    assert_eventful(&want);

    let chunks: Vec<&[Planned]> = w.regular.chunks(w.regular.len() / (KILLS + 1)).collect();
    let seed = seed(0x5EED_0004);
    let mut rng = Rng::new(seed);
    let mut watch = SnapshotWatch::new(&d.bootstrap());
    let mut kills = Vec::new();
    for (cycle, chunk) in chunks.iter().take(KILLS).enumerate() {
        let started = Instant::now();
        let mut instance = d.start_alone(&format!("crash{cycle}"));
        let restart_ms = started.elapsed().as_millis();
        produce_planned(&d.bootstrap(), chunk);
        let produced = Instant::now();
        // Half of the kills at a random point of the chunk's processing,
        // half soon after the run wrote its first snapshot: a status change
        // written between checkpoints, or a checkpoint in progress.
        let strategy = if rng.range(0, 2) == 0 {
            std::thread::sleep(Duration::from_millis(rng.range(50, 800)));
            "random"
        } else {
            watch.wait_from(&mut instance, Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
            "after a snapshot"
        };
        let at_ms = produced.elapsed().as_millis();
        let pid = instance.pid();
        instance.kill();
        watch.poll_for(Duration::from_millis(50));
        kills.push(format!(
            "owned its partitions after {restart_ms} ms, killed {at_ms} ms after the chunk ({strategy}) \
             having written {} snapshots (seen)",
            watch.count_from_pid(pid)
        ));
    }
    eprintln!("seed {seed:#x}; kills:\n  {}", kills.join("\n  "));

    let mut last_run = d.start_alone("final");
    for chunk in &chunks[KILLS..] {
        produce_planned(&d.bootstrap(), chunk);
    }
    produce_planned(&d.bootstrap(), &w.ticks());
    let last = catch_up(&d, &events, &mut watch, &mut [&mut last_run]);
    let restored: u64 = last_run.restores().iter().map(|(_, n)| n).sum();
    last_run.terminate();
    assert!(restored > 0, "the last run restored no agent");

    let verdict = compare(&d, &want, |a| w.partition_of(a), &last);
    eprintln!(
        "{} snapshots; {} transitions ({} repeats); {} alerts ({} repeats)",
        verdict.snapshots,
        verdict.transitions,
        verdict.duplicate_transitions,
        verdict.alerts,
        verdict.duplicate_alerts
    );
    verdict.assert_ok(&format!("seed {seed:#x}, kills:\n  {}", kills.join("\n  ")));
}

/// Scale-out test: two instances in one group split a 6-partition topic;
/// while events arrive continuously one of them is SIGKILLed once it has
/// snapshotted agents of its partitions; the other takes its partitions
/// over, restores their agents from the snapshots topic and carries on.
/// The final counts and histories equal the oracle.
#[test]
fn scale_out_then_failover() {
    let d = Deployment::new(CHAOS_SLO, 6, &EVENT_TIME);
    let w = Workload::new(22, 36, 6, 6000, T0);
    let all = d.all_partitions();

    let mut a = d.start_alone("a");
    let mut b = d.start("b");
    wait_split(&mut a, &mut b, &all);
    let b_owned = b.owned();

    let mut watch = SnapshotWatch::new(&d.bootstrap());
    let producer = ContinuousProducer::start(
        &d.bootstrap(),
        w.regular.clone(),
        100,
        Duration::from_millis(60),
    );
    // B has done work worth restoring: agents of each of its partitions
    // have snapshots.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b_owned
        .iter()
        .all(|p| watch.partitions.iter().any(|(_, q)| q == p))
    {
        b.assert_running();
        assert!(
            Instant::now() < deadline,
            "no snapshots from all of b's partitions {b_owned:?}\n{}",
            b.log_tail(40)
        );
        watch.poll();
    }
    assert!(
        !producer.is_finished(),
        "the input ended before the kill: nothing to fail over under load"
    );
    let produced_at_kill = producer.produced();
    b.kill();

    a.wait_owns("b's partitions too", |owned| *owned == all);
    let took_over: Vec<(i32, u64)> = a
        .restores()
        .into_iter()
        .filter(|(p, n)| b_owned.contains(p) && *n > 0)
        .collect();
    assert!(
        !took_over.is_empty(),
        "a restored no agents of b's partitions {b_owned:?}: {:?}\n{}",
        a.restores(),
        a.log_tail(40)
    );
    let produced = producer.stop();
    assert!(
        produced > produced_at_kill,
        "nothing was produced after the kill"
    );
    let mut events = w.regular[..produced].to_vec();
    produce_planned(&d.bootstrap(), &w.ticks());
    events.extend(w.ticks());
    let last = catch_up(&d, &events, &mut watch, &mut [&mut a]);
    a.terminate();

    let want = oracle(d.config(), d.dir.path(), &events, 6);
    assert_eventful(&want);
    let verdict = compare(&d, &want, |x| w.partition_of(x), &last);
    eprintln!(
        "{produced} events ({produced_at_kill} before the kill); a took over {took_over:?}; {} transitions ({} repeats)",
        verdict.transitions, verdict.duplicate_transitions
    );
    verdict.assert_ok(&format!("logs in {}", d.dir.path().display()));
}

/// Rolling restart: two instances, a producer writing all along; A is
/// stopped (SIGTERM) and started again, then B. Every partition moves at
/// least once (revoked: checkpointed and committed; assigned: restored).
/// No gap: each agent's transitions and alerts, repeats dropped, are the
/// oracle's one for one, with nothing missing in between, and the final
/// counts are exact.
#[test]
fn rolling_restart_under_load() {
    let d = Deployment::new(CHAOS_SLO, 6, &EVENT_TIME);
    let w = Workload::new(33, 36, 6, 40_000, T0);
    let all = d.all_partitions();

    let mut a = d.start_alone("a");
    let mut b = d.start("b");
    wait_split(&mut a, &mut b, &all);
    let mut watch = SnapshotWatch::new(&d.bootstrap());
    let producer = ContinuousProducer::start(
        &d.bootstrap(),
        w.regular.clone(),
        60,
        Duration::from_millis(50),
    );
    producer.wait_produced(600);

    // A: stop, B takes everything, A comes back and takes its share.
    a.terminate();
    b.wait_owns("every partition once a left", |owned| *owned == all);
    let mut a2 = d.start("a2");
    wait_split(&mut a2, &mut b, &all);
    assert!(
        a2.restores().iter().any(|&(_, n)| n > 0),
        "a2 restored no agents: {:?}",
        a2.restores()
    );
    let mid = producer.produced();
    producer.wait_produced(mid + 600);

    // Then B.
    b.terminate();
    a2.wait_owns("every partition once b left", |owned| *owned == all);
    let mut b2 = d.start("b2");
    wait_split(&mut a2, &mut b2, &all);
    assert!(
        b2.restores().iter().any(|&(_, n)| n > 0),
        "b2 restored no agents: {:?}",
        b2.restores()
    );
    let mid = producer.produced();
    producer.wait_produced(mid + 600);

    let produced = producer.stop();
    assert!(
        produced < w.regular.len(),
        "the input ran out during the restarts"
    );
    let mut events = w.regular[..produced].to_vec();
    produce_planned(&d.bootstrap(), &w.ticks());
    events.extend(w.ticks());
    let last = catch_up(&d, &events, &mut watch, &mut [&mut a2, &mut b2]);
    a2.terminate();
    b2.terminate();

    let want = oracle(d.config(), d.dir.path(), &events, 6);
    assert_eventful(&want);
    let verdict = compare(&d, &want, |x| w.partition_of(x), &last);
    eprintln!(
        "{produced} events; {} transitions ({} repeats); {} alerts ({} repeats)",
        verdict.transitions,
        verdict.duplicate_transitions,
        verdict.alerts,
        verdict.duplicate_alerts
    );
    verdict.assert_ok(&format!("logs in {}", d.dir.path().display()));
}

/// An OPEN breaker restored after a crash half-opens at its original
/// retry time: wall-clock timers (the default), an agent's failures open
/// its breaker with a 12 s cooldown, the job is SIGKILLed once a checkpoint
/// has saved the agent OPEN, and a new process, with no further event for
/// that agent, moves it to HALF_OPEN on time: `event_time` equal to the
/// OPEN transition's `retry_at`, produced (Kafka timestamp) no earlier than
/// it and at most a few seconds after, by the new process.
#[test]
fn an_open_breaker_half_opens_at_its_original_retry_time_after_a_restart() {
    const COOLDOWN_MS: i64 = 12_000;
    let slo = format!(
        "defaults:\n  breaker: {{failure_threshold: 0.5, min_calls: 5, cooldown_seconds: {}, \
         window: 5m, half_open_probes: 2}}\n",
        COOLDOWN_MS / 1000
    );
    let d = Deployment::new(&slo, 3, &["snapshot_interval: 500ms"]);
    let first = d.start_alone("first");

    let agent = "timer-agent";
    let t = now_ms();
    let burst: Vec<Planned> = (0..8)
        .map(|i| {
            let (_, json) = support::job::event(&format!("f{i}"), agent, t + i, "FAILURE");
            Planned {
                partition: 1,
                agent: agent.into(),
                id: format!("f{i}"),
                json,
            }
        })
        .collect();
    produce_planned(&d.bootstrap(), &burst);

    let mut breaker = TimedWatch::new(&d.bootstrap(), BREAKER);
    let open = breaker.until("the OPEN transition", |v| {
        v["agent_id"] == agent && v["state"] == "OPEN"
    });
    let retry_at = open.json["retry_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("OPEN without retry_at: {}", open.json));
    assert_eq!(
        open.json["cooldown_ms"], COOLDOWN_MS,
        "the base cooldown: {}",
        open.json
    );

    // A checkpoint has saved the agent OPEN, with its engine state.
    let mut snapshots = TimedWatch::new(&d.bootstrap(), SNAPSHOTS);
    let saved = snapshots.until("a snapshot of the agent OPEN", |v| {
        v["agent_id"] == agent && v["breaker"]["state"] == "OPEN"
    });
    assert!(
        saved.record.header(STATE_HEADER).is_some(),
        "the OPEN snapshot carries no engine state"
    );
    assert_eq!(saved.json["breaker"]["retry_at"], retry_at);
    first.kill();

    let mut second = d.start_alone("second");
    let owned_at = now_ms();
    assert!(
        owned_at < retry_at - 1_000,
        "too slow to test: the restarted job owned its partitions only {} ms before the retry time\n{}",
        retry_at - owned_at,
        second.log_tail(30)
    );
    assert!(
        second.restores().iter().any(|&(p, n)| p == 1 && n == 1),
        "the agent's partition was not restored with one agent: {:?}",
        second.restores()
    );

    let half = breaker.until("the HALF_OPEN transition", |v| {
        v["agent_id"] == agent && v["state"] == "HALF_OPEN"
    });
    second.assert_running();
    assert_eq!(
        (&half.json["previous_state"], &half.json["reason"]),
        (&Value::from("OPEN"), &Value::from("COOLDOWN_ELAPSED")),
        "{}",
        half.json
    );
    assert_eq!(
        half.json["event_time"], retry_at,
        "HALF_OPEN at the original retry time: {}",
        half.json
    );
    let produced_at = half.timestamp.expect("a Kafka timestamp");
    assert!(
        produced_at >= retry_at,
        "half-opened {} ms before the retry time",
        retry_at - produced_at
    );
    assert!(
        half.arrived_ms <= retry_at + 3_000,
        "half-opened {} ms after the retry time (a cooldown restarted at restore would be ~{} ms late)",
        half.arrived_ms - retry_at,
        COOLDOWN_MS - (retry_at - owned_at)
    );
    assert_ne!(
        half.record.header(INSTANCE_HEADER),
        open.record.header(INSTANCE_HEADER),
        "the HALF_OPEN came from the restarted process"
    );
    // Nothing else happened to the breaker in between.
    let states: Vec<String> = breaker
        .seen
        .iter()
        .filter(|r| r.json["agent_id"] == agent)
        .map(|r| r.json["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(states, ["OPEN", "HALF_OPEN"], "the agent's transitions");
    second.terminate();
}

/// A record of an output topic, with its Kafka timestamp and when this
/// test saw it (wall clock, ms).
struct Timed {
    record: support::kafka::Record,
    json: Value,
    timestamp: Option<i64>,
    arrived_ms: i64,
}

/// Reads a topic from the beginning, keeping every record with its times.
struct TimedWatch {
    consumer: support::kafka::TestConsumer,
    seen: Vec<Timed>,
}

impl TimedWatch {
    fn new(bootstrap: &str, topic: &str) -> TimedWatch {
        TimedWatch {
            consumer: assigned(bootstrap, topic),
            seen: Vec::new(),
        }
    }

    /// The first record (seen before or now) whose JSON satisfies `cond`;
    /// panics after 30 s.
    fn until(&mut self, what: &str, cond: impl Fn(&Value) -> bool) -> Timed {
        use rdkafka::message::{Headers as _, Message as _};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(t) = self.seen.iter().find(|t| cond(&t.json)) {
                return Timed {
                    record: t.record.clone(),
                    json: t.json.clone(),
                    timestamp: t.timestamp,
                    arrived_ms: t.arrived_ms,
                };
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {:?}",
                self.seen.iter().map(|t| &t.json).collect::<Vec<_>>()
            );
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(50)) {
                let record = support::kafka::Record {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let json =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null);
                self.seen.push(Timed {
                    record,
                    json,
                    timestamp: m.timestamp().to_millis(),
                    arrived_ms: now_ms(),
                });
            }
        }
    }
}

//! Exact recovery: an engine rebuilt from exported agent states and fed the
//! input again from an older offset produces what one uninterrupted run
//! does, agent by agent, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use breakwater::config::SloConfig;
use breakwater::engine::breaker::StateName;
use breakwater::engine::{Clock, Engine, EngineOptions, RestoreError, STATE_FORMAT};
use breakwater::event::{Eval, Outcome, TaskEvent, TimestampMs};
use breakwater::output::{Output, SnapshotTrigger};

#[path = "engine_restore/stream.rs"]
mod stream;

use stream::{feed, items, step, Item};

const T0: TimestampMs = 1_796_083_200_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// Small windows and thresholds, so that a few hundred events trip
/// breakers, slide windows, burn budgets and fire every kind of alert; two
/// SLO shapes (the glob has other windows and trips on its budget).
const CONFIG: &str = r#"
defaults:
  window: 2h
  breaker: {min_calls: 4, window: 2m, cooldown_seconds: 30, max_cooldown_seconds: 240,
            half_open_probes: 2, failure_threshold: 0.3, latency_threshold_ms: 20000}
  alerts: {min_tasks: 4}
  burn_rate:
    min_tasks: 3
    rules:
      - {severity: critical, factor: 5, long: 30m, short: 5m}
      - {severity: warning, factor: 1, long: 2h, short: 30m}
  accuracy: {min_samples: 3}
agents:
  "agent-1*": {window: 1h, on_budget_exhausted: circuit_break, breaker: {window: 5m}}
"#;

fn config() -> Arc<SloConfig> {
    Arc::new(SloConfig::from_yaml_str(CONFIG).expect("valid test config"))
}

/// The periodic snapshot of a checkpoint, as outputs.
fn snapshots(engine: &mut Engine, out: &mut Vec<Output>) {
    for s in engine.take_changed_snapshots() {
        out.push(Output::BudgetSnapshot(Box::new(s)));
    }
}

fn by_agent(out: &[Output]) -> BTreeMap<String, Vec<&Output>> {
    let mut m: BTreeMap<String, Vec<&Output>> = BTreeMap::new();
    for o in out {
        m.entry(o.agent_id().to_string()).or_default().push(o);
    }
    m
}

/// Ends a run: every timer fires, then a final snapshot of every agent.
fn finish(engine: &mut Engine, end: TimestampMs, out: &mut Vec<Output>) {
    engine.advance_to(end, out);
    for s in engine.final_snapshots() {
        out.push(Output::BudgetSnapshot(Box::new(s)));
    }
}

fn exports(engine: &Engine) -> BTreeMap<String, Vec<u8>> {
    engine
        .agent_ids()
        .map(|id| (id.to_string(), engine.export_agent(id).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A: one pass over the whole stream. B: the same up to a split point,
    /// checkpointing like the shell. C: a fresh engine restored from B's
    /// latest state of each agent (or of every agent at the split), fed the
    /// stream again from an older offset. C's outputs from the split on
    /// are A's, agent by agent, and so are the final states, byte for byte.
    #[test]
    fn restored_engine_continues_exactly(
        steps in prop::collection::vec(step(), 1..400),
        split in 0.0f64..=1.0,
        rewind in 0.0f64..=1.0,
        export_all in any::<bool>(),
        sizes in prop::collection::vec(1usize..12, 1..4),
    ) {
        let items = items(steps);
        let n = items.len();
        let s = ((n as f64 * split) as usize).min(n);
        let r = ((s as f64 * (1.0 - rewind)) as usize).min(s);
        let end = match items.iter().rev().find_map(|i| match i { Item::Event(e) => Some(e.timestamp), _ => None }) {
            Some(t) => t.max(T0) + 3 * 24 * HOUR,
            None => T0 + 3 * 24 * HOUR,
        };

        // A: uninterrupted, with a checkpoint at the split like B's.
        let mut a = Engine::new(config());
        let mut out_a = Vec::new();
        feed(&mut a, &items, 0, s, 0, &sizes, &mut out_a, &mut snapshots);
        snapshots(&mut a, &mut out_a);
        let at_split = out_a.len();
        feed(&mut a, &items, s, n, 0, &[7, 1, 3], &mut out_a, &mut snapshots);
        finish(&mut a, end, &mut out_a);

        // B: the prefix, keeping the latest exported state of each agent.
        let mut b = Engine::new(config());
        let mut out_b = Vec::new();
        let mut saved: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut checkpoint = |e: &mut Engine, out: &mut Vec<Output>| {
            for (snap, state) in e.take_changed_states() {
                saved.insert(snap.agent_id.clone(), state);
                out.push(Output::BudgetSnapshot(Box::new(snap)));
            }
        };
        feed(&mut b, &items, 0, s, 0, &[5, 2], &mut out_b, &mut checkpoint);
        checkpoint(&mut b, &mut out_b);
        prop_assert_eq!(&out_b[..], &out_a[..at_split], "batching changes nothing");
        if export_all {
            saved = exports(&b);
        }
        prop_assert_eq!(saved.keys().collect::<Vec<_>>(), b.agent_ids().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());

        // C: restored, re-reading from offset r ≤ s.
        let mut c = Engine::new(config());
        for (id, state) in &saved {
            c.restore_agent(id, state).unwrap();
            // Alone in an engine (whose clock no other state moved on).
            let mut alone = Engine::new(config());
            alone.restore_agent(id, state).unwrap();
            prop_assert_eq!(&alone.export_agent(id).unwrap(), state, "export ∘ restore is the identity");
        }
        let mut out_c = Vec::new();
        feed(&mut c, &items, r, n, s, &sizes, &mut out_c, &mut snapshots);
        let replayed = items[r..s].iter().filter(|i| matches!(i, Item::Event(_))).count();
        prop_assert_eq!(c.stats().replayed, replayed as u64);
        finish(&mut c, end, &mut out_c);

        let (after_a, after_c) = (by_agent(&out_a[at_split..]), by_agent(&out_c));
        prop_assert_eq!(after_a.keys().collect::<Vec<_>>(), after_c.keys().collect::<Vec<_>>());
        for (agent, outs) in &after_a {
            prop_assert_eq!(outs, &after_c[agent], "outputs of {} after the split", agent);
        }
        prop_assert_eq!(exports(&a), exports(&c));
        for id in a.agent_ids() {
            prop_assert_eq!(a.position(id), c.position(id));
        }
    }

    /// Dormancy is invisible: an engine whose idle agents fall dormant
    /// (kept as their exported state, woken by what next needs them) gives
    /// the outputs, checkpointed states, final snapshots and exports of one
    /// that keeps every agent awake, byte for byte. At a threshold of 0
    /// every agent falls asleep at every clock move and wakes for each of
    /// its events, timers, commands and snapshots.
    #[test]
    fn dormancy_changes_no_output(
        steps in prop::collection::vec(step(), 1..400),
        after in prop_oneof![Just(0i64), 1i64..20 * MIN],
        sizes in prop::collection::vec(1usize..12, 1..4),
    ) {
        let items = items(steps);
        let end = items.iter().rev().find_map(|i| match i { Item::Event(e) => Some(e.timestamp), _ => None })
            .unwrap_or(T0).max(T0) + 3 * 24 * HOUR;
        let run = |dormant_after_ms: Option<i64>| {
            let options = EngineOptions { dormant_after_ms, min_awake_agents: 0, ..EngineOptions::default() };
            let mut e = Engine::with_options(config(), options);
            let mut out = Vec::new();
            let mut states = Vec::new();
            let mut checkpoint = |e: &mut Engine, out: &mut Vec<Output>| {
                for (snap, state) in e.take_changed_states() {
                    states.push((snap.agent_id.clone(), state));
                    out.push(Output::BudgetSnapshot(Box::new(snap)));
                }
                for id in e.agent_ids().map(str::to_string).collect::<Vec<_>>() {
                    states.push((id.clone(), e.export_agent(&id).unwrap()));
                }
            };
            feed(&mut e, &items, 0, items.len(), 0, &sizes, &mut out, &mut checkpoint);
            e.advance_to(end, &mut out);
            let asleep = e.dormant_agents();
            for s in e.final_snapshots() {
                out.push(Output::BudgetSnapshot(Box::new(s)));
            }
            let positions: Vec<_> = e.agent_ids().map(|id| e.position(id)).collect();
            let asleep_after = e.dormant_agents();
            (out, states, exports(&e), positions, asleep, e.len(), asleep_after)
        };
        let awake = run(None);
        let dormant = run(Some(after));
        prop_assert_eq!(awake.4, 0, "nothing sleeps with dormancy off");
        if after == 0 {
            prop_assert_eq!(dormant.4, dormant.5, "at 0, every agent sleeps once the clock moves");
            prop_assert_eq!(dormant.6, dormant.5, "and the final snapshots put them back to sleep");
        }
        prop_assert_eq!(&dormant.0, &awake.0, "outputs");
        prop_assert_eq!(&dormant.1, &awake.1, "checkpointed and exported states");
        prop_assert_eq!(&dormant.2, &awake.2, "final exports");
        prop_assert_eq!(&dormant.3, &awake.3, "positions");
    }

    /// Arbitrary bytes, and every truncation of a real state, are refused
    /// or restored: never a panic.
    #[test]
    fn no_bytes_panic_restore(
        steps in prop::collection::vec(step(), 1..60),
        noise in prop::collection::vec(any::<u8>(), 0..300),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut a = Engine::new(config());
        let mut out = Vec::new();
        let items = items(steps);
        feed(&mut a, &items, 0, items.len(), 0, &[4], &mut out, &mut snapshots);
        let mut c = Engine::new(config());
        let _ = c.restore_agent("x", &noise);
        let mut framed = vec![STATE_FORMAT];
        framed.extend_from_slice(&noise);
        let _ = c.restore_agent("x", &framed);
        for (id, state) in exports(&a) {
            for cut in 0..state.len() {
                prop_assert!(c.restore_agent(&id, &state[..cut]).is_err());
            }
            let mut flipped = state.clone();
            flipped[flip.index(state.len())] ^= 0x5a;
            let _ = c.restore_agent(&id, &flipped);
        }
    }
}

fn event(id: &str, agent: &str, t: TimestampMs, outcome: Outcome) -> TaskEvent {
    let mut e = TaskEvent::new(id, agent, t, outcome);
    e.latency_ms = 1_500;
    e.tool_calls = 4;
    e
}

#[test]
fn open_breaker_half_opens_at_its_original_retry_time_after_restore() {
    let mut a = Engine::new(config());
    let mut out = Vec::new();
    let events: Vec<TaskEvent> = (0..6)
        .map(|i| event(&format!("e{i}"), "search", T0 + i * 1_000, Outcome::Failure))
        .collect();
    let offsets: Vec<i64> = (0..6).collect();
    a.process_batch_at(&events, &offsets, Clock::EventTime, &mut out);
    let opened = out
        .iter()
        .find_map(|o| match o {
            Output::BreakerTransition(t) if t.state == StateName::Open => Some(t.clone()),
            _ => None,
        })
        .expect("4 failures in a row open the breaker");
    let retry = opened.retry_at.unwrap();
    let state = a.export_agent("search").unwrap();

    let mut c = Engine::new(config());
    c.restore_agent("search", &state).unwrap();
    assert_eq!(c.agent("search").unwrap().breaker().retry_at(), Some(retry));
    assert!(
        c.take_changed_snapshots().is_empty(),
        "a restored agent is unchanged"
    );
    let mut after = Vec::new();
    c.advance_to(retry - 1, &mut after);
    assert!(after.is_empty(), "nothing before the retry time: {after:?}");
    c.advance_to(retry, &mut after);
    let mut expected = Vec::new();
    a.advance_to(retry, &mut expected);
    assert_eq!(after, expected);
    match &after[..] {
        [Output::BreakerTransition(t)] => {
            assert_eq!(
                (t.state, t.previous_state),
                (StateName::HalfOpen, StateName::Open)
            );
            assert_eq!(t.event_time, retry);
            assert!(t.seq > opened.seq, "the sequence carries on");
        }
        other => panic!("expected one HALF_OPEN transition, got {other:?}"),
    }
}

#[test]
fn restore_refuses_a_state_whose_slo_windows_changed() {
    let mut a = Engine::new(config());
    let mut out = Vec::new();
    a.process(&event("e1", "search", T0, Outcome::Success), &mut out);
    let state = a.export_agent("search").unwrap();
    let narrower = CONFIG.replace("window: 2h", "window: 3h");
    let mut c = Engine::new(Arc::new(SloConfig::from_yaml_str(&narrower).unwrap()));
    let err = c.restore_agent("search", &state).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::SloChanged {
                what: "window_ms",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the agent's SLO changed shape since its state was saved: window_ms was 7200000, is now 10800000"
    );
    assert!(c.is_empty(), "nothing restored");
    // Thresholds are not part of the shape: they may change.
    let stricter = CONFIG.replace("failure_threshold: 0.3", "failure_threshold: 0.1");
    let mut d = Engine::new(Arc::new(SloConfig::from_yaml_str(&stricter).unwrap()));
    d.restore_agent("search", &state).unwrap();
    let mut bad = state.clone();
    bad[0] = STATE_FORMAT + 1;
    assert!(matches!(
        d.restore_agent("search", &bad),
        Err(RestoreError::UnknownFormat { .. })
    ));
}

/// Encoded size of one agent after `n` events, one every `every_ms`.
fn size_after(n: i64, every_ms: i64) -> usize {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let mut out = Vec::new();
    let outcomes = [Outcome::Success, Outcome::Success, Outcome::Failure];
    let events: Vec<TaskEvent> = (0..n)
        .map(|i| {
            let mut e = event(
                &format!("{:032x}", i * 7919),
                "research-agent",
                T0 + i * every_ms,
                if i % 97 == 0 {
                    outcomes[2]
                } else {
                    outcomes[0]
                },
            );
            e.latency_ms = 200 + (i as u64 * 7_919) % 20_000;
            e.hallucination = Some(i % 50 == 0);
            if i % 2 == 0 {
                e.evals.push(Eval {
                    category: ["factual_retrieval", "calculation"][i as usize % 4 / 2].into(),
                    passed: i % 31 != 0,
                });
            }
            e
        })
        .collect();
    let offsets: Vec<i64> = (0..n).collect();
    for (e, o) in events.chunks(4096).zip(offsets.chunks(4096)) {
        engine.process_batch_at(e, o, Clock::EventTime, &mut out);
        out.clear();
    }
    engine.snapshot("research-agent", SnapshotTrigger::Periodic);
    engine.export_agent("research-agent").unwrap().len()
}

#[test]
fn states_are_compact() {
    let ten = size_after(10, 1_000);
    assert!(ten < 1024, "10 events: {ten} bytes");
    let day = size_after(86_400, 1_000);
    assert!(day < 16 * 1024, "a day at 1 event/s: {day} bytes");
    println!("state bytes: 10 events {ten}, 24 h at 1 event/s {day}");
}

#[test]
fn skipped_events_still_move_the_event_time_clock() {
    // Exported on the held clock, which stayed at the first event's time.
    let events: Vec<TaskEvent> = (0..5)
        .map(|i| event(&format!("e{i}"), "search", T0 + i * MIN, Outcome::Success))
        .collect();
    let offsets: Vec<i64> = (10..15).collect();
    let mut a = Engine::new(config());
    let mut out = Vec::new();
    assert_eq!(
        a.process_batch_at(&events, &offsets, Clock::Held, &mut out),
        5
    );
    assert_eq!(a.clock(), T0);
    let mut c = Engine::new(config());
    c.restore_agent("search", &a.export_agent("search").unwrap())
        .unwrap();
    assert_eq!(
        c.process_batch_at(&events, &offsets, Clock::EventTime, &mut out),
        0
    );
    assert_eq!((c.stats().replayed, c.stats().events), (5, 0));
    assert_eq!(
        c.clock(),
        T0 + 4 * MIN,
        "the clock passed through every event's time"
    );
    assert_eq!(c.position("search"), Some(14));
}

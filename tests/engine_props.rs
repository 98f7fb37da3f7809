//! Properties of the engine over arbitrary input: windows agree with a naive
//! recomputation, replay is deterministic, and nothing panics.

use std::sync::Arc;

use proptest::prelude::*;

use breakwater::config::SloConfig;
use breakwater::decode::decode_json;
use breakwater::engine::counts::{TaskBucket, TaskCounts};
use breakwater::engine::window::SlidingWindow;
use breakwater::engine::Engine;
use breakwater::event::{Eval, Outcome, TaskEvent, MAX_LATENCY_MS, MAX_TIMESTAMP};
use breakwater::output::Output;

const T0: i64 = 1_796_083_200_000;

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Success),
        2 => Just(Outcome::Failure),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Unavailable),
    ]
}

/// (gap to previous event in ms, may be negative for out-of-order, outcome)
fn steps(max_gap: i64, len: usize) -> impl Strategy<Value = Vec<(i64, Outcome)>> {
    prop::collection::vec((-max_gap / 4..max_gap, outcome()), 1..len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The window holds exactly the events whose bucket is among the last N,
    /// which is every event younger than W − w and none older than W.
    #[test]
    fn window_counts_equal_a_naive_recount(
        window_s in 10i64..7_200,
        buckets in 1u32..=64,
        steps in steps(120_000, 300),
    ) {
        let window_ms = window_s * 1000;
        let mut w: SlidingWindow<TaskBucket> = SlidingWindow::new(window_ms, buckets);
        let width = w.bucket_width_ms();
        let mut t = T0;
        let mut head = i64::MIN;
        let mut kept: Vec<(i64, Outcome)> = Vec::new();
        for (gap, outcome) in steps {
            t += gap;
            let mut e = TaskEvent::new("x", "a", t, outcome);
            e.latency_ms = 1;
            let accepted = w.record(t, |b, total| {
                b.add(&e);
                total.add(&e);
            });
            head = head.max(t);
            let oldest_bucket = head.div_euclid(width) - buckets as i64 + 1;
            prop_assert_eq!(accepted, t.div_euclid(width) >= oldest_bucket);
            if accepted {
                kept.push((t, outcome));
            }
            let inside: Vec<_> = kept.iter().filter(|(ts, _)| ts.div_euclid(width) >= oldest_bucket).collect();
            let tasks = inside.iter().filter(|(_, o)| o.is_task()).count() as u64;
            let failed = inside.iter().filter(|(_, o)| o.is_failed()).count() as u64;
            prop_assert_eq!(*w.total(), TaskCounts { tasks, failed });
            // The documented error bound: exact for events younger than W − w,
            // and nothing older than W survives.
            for (ts, _) in &kept {
                let age = head - ts;
                if age < window_ms - width { prop_assert!(ts.div_euclid(width) >= oldest_bucket); }
                if age >= buckets as i64 * width { prop_assert!(ts.div_euclid(width) < oldest_bucket); }
            }
        }
    }

    /// Budget-window metrics through the engine equal a recount over the raw events.
    #[test]
    fn engine_metrics_equal_a_naive_recount(steps in steps(20 * 60_000, 300)) {
        let mut engine = Engine::new(Arc::new(SloConfig::default()));
        let mut out = Vec::new();
        let width = 24 * 3_600_000 / 48;
        let mut t = T0;
        let mut accepted: Vec<TaskEvent> = Vec::new();
        let mut head = i64::MIN;
        for (i, (gap, outcome)) in steps.into_iter().enumerate() {
            t += gap;
            let mut e = TaskEvent::new(format!("e{i}"), "a", t, outcome);
            e.tool_calls = (i % 7) as u32;
            e.latency_ms = 10 * i as u64;
            engine.advance_to(t, &mut out);
            let oldest = head.max(t).div_euclid(width) - 47;
            if t.div_euclid(width) >= oldest {
                accepted.push(e.clone());
            }
            engine.process(&e, &mut out);
            head = head.max(t);
        }
        let now = engine.clock();
        let oldest = now.div_euclid(width) - 47;
        let inside: Vec<_> = accepted.iter().filter(|e| e.timestamp.div_euclid(width) >= oldest).collect();
        let m = engine.metrics("a").unwrap();
        let tasks: Vec<_> = inside.iter().filter(|e| e.outcome.is_task()).collect();
        prop_assert_eq!(m.tasks, tasks.len() as i64);
        prop_assert_eq!(m.attempts, inside.len() as i64);
        prop_assert_eq!(m.failed, tasks.iter().filter(|e| e.outcome.is_failed()).count() as i64);
        let calls: u64 = tasks.iter().map(|e| e.tool_calls as u64).sum();
        let expect_avg = if tasks.is_empty() { None } else { Some(calls as f64 / tasks.len() as f64) };
        prop_assert_eq!(m.avg_tool_calls, expect_avg);
    }

    /// The same input gives the same output, byte for byte.
    #[test]
    fn replay_is_deterministic(events in prop::collection::vec(any_event(), 1..200)) {
        let run = || {
            let mut engine = Engine::new(Arc::new(SloConfig::default()));
            let mut out = Vec::new();
            for e in &events {
                engine.advance_to(e.timestamp, &mut out);
                engine.process(e, &mut out);
            }
            for s in engine.final_snapshots() {
                out.push(Output::BudgetSnapshot(Box::new(s)));
            }
            out.iter().map(|o| serde_json::to_string(o).unwrap()).collect::<Vec<_>>().join("\n")
        };
        prop_assert_eq!(run(), run());
    }

    /// No valid event, in any order, with any values, panics the engine.
    #[test]
    fn no_event_panics_the_engine(events in prop::collection::vec(any_event(), 1..100), extreme in any::<bool>()) {
        let mut engine = Engine::new(Arc::new(SloConfig::default()));
        let mut out = Vec::new();
        for mut e in events {
            if extreme {
                e.timestamp = if e.timestamp % 2 == 0 { 0 } else { MAX_TIMESTAMP };
                e.latency_ms = MAX_LATENCY_MS;
            }
            prop_assert!(e.validate().is_ok());
            engine.advance_to(e.timestamp, &mut out);
            engine.process(&e, &mut out);
        }
        engine.advance_to(MAX_TIMESTAMP, &mut out);
        let _ = engine.final_snapshots();
    }

    /// Arbitrary bytes never panic the JSON decoder: they decode or are refused.
    #[test]
    fn no_bytes_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_json(&bytes);
    }
}

fn any_event() -> impl Strategy<Value = TaskEvent> {
    (
        0u8..8,               // agent
        0i64..3 * 86_400_000, // time offset
        outcome(),
        0u64..120_000, // latency
        0u32..40,      // tool calls
        0u32..6,       // delegation depth … up to loops
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::collection::vec(("[a-c]", any::<bool>()), 0..3),
        0u16..500, // event id space (repeats are duplicates)
    )
        .prop_map(
            |(agent, dt, outcome, latency, calls, depth, hall, intent, evals, id)| {
                let mut e = TaskEvent::new(
                    format!("id{id}"),
                    format!("agent-{agent}"),
                    T0 + dt,
                    outcome,
                );
                e.latency_ms = latency;
                e.tool_calls = calls;
                e.policy_violations = calls / 7;
                e.delegation_depth = depth * 2;
                e.hallucination = hall;
                e.intent_met = intent;
                e.evals = evals
                    .into_iter()
                    .map(|(category, passed)| Eval { category, passed })
                    .collect();
                e
            },
        )
}

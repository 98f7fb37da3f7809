//! The benches' realistic task event, shared by the end-to-end bench and
//! the processing-threads bench so both measure the same traffic.
//! Included with `#[path = "support/events.rs"] mod events;` beside
//! `support/rng.rs` as `mod rng`.

use breakwater::event::{Eval, Outcome, TaskEvent, TimestampMs};

use super::rng::{uuid, Rng};

/// A realistic event: 1.5 % FAILURE, 0.4 % TIMEOUT, latency 0.1–10 s, one
/// eval on half of the tasks, model and tokens.
pub fn event(rng: &mut Rng, seq: u64, agent: String, t: TimestampMs) -> TaskEvent {
    let r = rng.next_u64();
    let outcome = match r % 1000 {
        0..=14 => Outcome::Failure,
        15..=18 => Outcome::Timeout,
        _ => Outcome::Success,
    };
    let id = uuid(r, seq, seq);
    let mut e = TaskEvent::new(id, agent, t, outcome);
    e.latency_ms = if outcome == Outcome::Timeout {
        60_000
    } else {
        100 + (r >> 8) % 10_000
    };
    e.tool_calls = 1 + ((r >> 20) % 20) as u32;
    e.hallucination = Some((r >> 28).is_multiple_of(100));
    e.intent_met = Some(!(r >> 36).is_multiple_of(50));
    if (r >> 44).is_multiple_of(2) {
        e.evals = vec![Eval {
            category: "accuracy".into(),
            passed: !(r >> 46).is_multiple_of(33),
        }];
    }
    e.model = Some("gpt-4o-2024-08-06".into());
    e.tokens_in = Some(1_000 + (r >> 50) % 8_000);
    e.tokens_out = Some(100 + (r >> 40) % 2_000);
    if outcome != Outcome::Success {
        e.error_type = Some("ToolError".into());
    }
    e
}

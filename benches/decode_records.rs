//! The records of the decode benches (`decode.rs`, `decode_min.rs`): 1 024
//! task events of one shape, varied like a real stream (ids, agents,
//! latencies and outcomes), and the job's codec for a wire format.

#[path = "support/rng.rs"]
mod rng;

use breakwater::config::KafkaSettings;
use breakwater::decode::framing::confluent_header;
use breakwater::event::{Eval, Outcome, TaskEvent};
use breakwater::kafka::codec::Codec;
use rng::{uuid, Rng};

pub const RECORDS: usize = 1024;

/// `typical`: UUID ids, one eval, model, tokens, cost (~170 B of Avro);
/// otherwise the required fields only.
pub fn events(typical: bool) -> Vec<TaskEvent> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    (0..RECORDS)
        .map(|i| {
            let r = next();
            let id = uuid(r, i as u64, next() & 0xffff_ffff_ffff);
            let outcome = match r % 100 {
                0 | 1 => Outcome::Failure,
                2 => Outcome::Timeout,
                _ => Outcome::Success,
            };
            let agent = format!("agent-{}", r % 10_000);
            let t = 1_796_083_200_000 + i as i64 * 17;
            let mut e = TaskEvent::new(id, agent, t, outcome);
            e.latency_ms = 100 + r % 20_000;
            e.tool_calls = 1 + (r % 20) as u32;
            if typical {
                e.task_id = format!("task-{}", r % 1_000_000);
                e.hallucination = Some(r.is_multiple_of(97));
                e.intent_met = Some(!r.is_multiple_of(53));
                e.delegation_depth = (r % 3) as u32;
                e.evals = vec![Eval {
                    category: "accuracy".into(),
                    passed: !r.is_multiple_of(33),
                }];
                e.model = Some("gpt-4o-2024-08-06".into());
                e.tokens_in = Some(1_000 + r % 8_000);
                e.tokens_out = Some(100 + r % 2_000);
                e.cost_usd = Some((r % 10_000) as f64 / 100_000.0);
                if outcome != Outcome::Success {
                    e.error_type = Some("ToolError".into());
                }
            }
            e
        })
        .collect()
}

/// `datum` behind Confluent framing with schema id 1 (the id `codec` gives
/// the bundled schema).
pub fn confluent(datum: &[u8]) -> Vec<u8> {
    let mut v = confluent_header(1).to_vec();
    v.extend_from_slice(datum);
    v
}

/// The job's codec for `kafka.wire.input.format: <format>`, schema id 1.
pub fn codec(format: &str) -> Codec {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&format!(
        "wire:\n  input:\n    format: {format}\n    default_schema_id: 1\n"
    ))
    .unwrap();
    let settings = KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap();
    Codec::from_settings(&settings).unwrap()
}

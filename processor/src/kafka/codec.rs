//! Bytes on the topics ↔ the engine's types, for the job: the input
//! decoder and the output encoder, with the headers that name what a record
//! holds.

use crate::decode::{decode_json, DecodeError};
use crate::event::TaskEvent;
use crate::output::Output;

/// Record header naming the record's schema (`io.breakwater.BreakerTransition`, …).
pub const SCHEMA_HEADER: &str = "breakwater.schema";
/// Record header naming the instance that produced the record.
pub const INSTANCE_HEADER: &str = "breakwater.instance";
/// Record header with the payload's media type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// Decodes input records and encodes output records.
#[derive(Debug, Default)]
pub struct Codec {}

impl Codec {
    /// One input record's value as a task event, or why not.
    pub fn decode(&mut self, payload: &[u8]) -> Result<TaskEvent, DecodeError> {
        decode_json(payload)
    }

    /// One output record's value and its content type.
    pub fn encode(&self, output: &Output) -> (Vec<u8>, &'static str) {
        let bytes = match output {
            Output::BreakerTransition(t) => serde_json::to_vec(t),
            Output::Alert(a) => serde_json::to_vec(a),
            Output::BudgetSnapshot(s) => serde_json::to_vec(s),
        }
        .expect("output records serialize to JSON");
        (bytes, "application/json")
    }
}

/// The Avro full name of an output record's schema.
pub fn schema_name(output: &Output) -> &'static str {
    match output {
        Output::BreakerTransition(_) => "io.breakwater.BreakerTransition",
        Output::Alert(_) => "io.breakwater.AlertEvent",
        Output::BudgetSnapshot(_) => "io.breakwater.BudgetSnapshot",
    }
}

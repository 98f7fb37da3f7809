//! Wire formats into [`TaskEvent`]s, or a reason why not (SPEC §2).
//!
//! Two formats, one set of rules: [`decode_json`] reads one JSON object,
//! [`event_from_avro_value`] reads an Avro record resolved against
//! `schemas/task_event.avsc`. Both fill the same raw record, so defaults,
//! range checks and [`TaskEvent::validate`] are applied identically.
//!
//! Every failure is a [`DecodeError`] whose message is fit for a dead-letter
//! header: it says what is wrong, not just that something is.

mod avro;
mod json;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::{Eval, InvalidEvent, Outcome, TaskEvent, TimestampMs};

pub use avro::{
    decode_avro_datum, encode_avro_datum, event_from_avro_value, read_avro_container,
    write_avro_container, AvroDatumDecoder, AvroSchemas,
};
pub use json::{decode_json, timestamp_ms};

/// Why bytes did not become a [`TaskEvent`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, truncated JSON, or JSON of the wrong shape; the message
    /// carries the line and column.
    #[error("{0}")]
    Json(String),
    /// Not Avro for the given schema: truncated, corrupt, or a writer schema
    /// that cannot be read as a task event.
    #[error("invalid Avro: {0}")]
    Avro(String),
    /// Well-formed, but not a valid task event.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
}

/// A record as it came off the wire, before defaults and range checks.
///
/// Numbers are `i64` so that a negative count becomes our `OutOfRange` (which
/// names the field) rather than a serde type error. Timestamp and outcome are
/// parsed where they are read, straight from the borrowed input; their errors
/// are kept as values so that they surface as [`InvalidEvent`]s.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a task event JSON object")]
pub(crate) struct RawEvent {
    event_id: Option<String>,
    agent_id: Option<String>,
    task_id: Option<String>,
    #[serde(deserialize_with = "json::timestamp")]
    timestamp: Option<Result<TimestampMs, InvalidEvent>>,
    #[serde(deserialize_with = "json::outcome")]
    outcome: Option<Result<Outcome, InvalidEvent>>,
    latency_ms: Option<i64>,
    tool_calls: Option<i64>,
    policy_violations: Option<i64>,
    hallucination: Option<bool>,
    intent_met: Option<bool>,
    delegation_depth: Option<i64>,
    #[serde(deserialize_with = "json::null_as_default")]
    evals: Vec<Eval>,
    error_type: Option<String>,
    model: Option<String>,
    tokens_in: Option<i64>,
    tokens_out: Option<i64>,
    cost_usd: Option<f64>,
    #[serde(deserialize_with = "json::null_as_default")]
    attributes: BTreeMap<String, String>,
}

// Avro `int` is 32-bit signed: capping JSON at the same bound means an event
// accepted from JSON can always be re-encoded as Avro.
const INT_ALLOWED: &str = "an integer from 0 to 2147483647";
const LONG_ALLOWED: &str = "an integer >= 0";

impl RawEvent {
    /// Applies the defaults and range checks of SPEC §2, then
    /// [`TaskEvent::validate`].
    pub(crate) fn into_event(self) -> Result<TaskEvent, InvalidEvent> {
        use InvalidEvent::MissingField;
        let event_id = self.event_id.ok_or(MissingField("event_id"))?;
        let agent_id = self.agent_id.ok_or(MissingField("agent_id"))?;
        let timestamp = self.timestamp.ok_or(MissingField("timestamp"))??;
        let outcome = self.outcome.ok_or(MissingField("outcome"))??;
        let latency_ms = self.latency_ms.ok_or(MissingField("latency_ms"))?;
        let event = TaskEvent {
            task_id: self.task_id.unwrap_or_else(|| event_id.clone()),
            event_id,
            agent_id,
            timestamp,
            outcome,
            latency_ms: non_negative("latency_ms", latency_ms)?,
            tool_calls: int("tool_calls", self.tool_calls)?,
            policy_violations: int("policy_violations", self.policy_violations)?,
            hallucination: self.hallucination,
            intent_met: self.intent_met,
            delegation_depth: int("delegation_depth", self.delegation_depth)?,
            evals: self.evals,
            error_type: self.error_type,
            model: self.model,
            tokens_in: self
                .tokens_in
                .map(|v| non_negative("tokens_in", v))
                .transpose()?,
            tokens_out: self
                .tokens_out
                .map(|v| non_negative("tokens_out", v))
                .transpose()?,
            cost_usd: self.cost_usd,
            attributes: self.attributes,
        };
        event.validate()?;
        Ok(event)
    }
}

fn out_of_range(field: &'static str, value: i64, allowed: &'static str) -> InvalidEvent {
    InvalidEvent::OutOfRange {
        field,
        value: value.to_string(),
        allowed,
    }
}

fn non_negative(field: &'static str, value: i64) -> Result<u64, InvalidEvent> {
    u64::try_from(value).map_err(|_| out_of_range(field, value, LONG_ALLOWED))
}

/// An Avro-`int`-sized count; absent means 0.
fn int(field: &'static str, value: Option<i64>) -> Result<u32, InvalidEvent> {
    let value = value.unwrap_or(0);
    u32::try_from(value)
        .ok()
        .filter(|&v| v <= i32::MAX.unsigned_abs())
        .ok_or_else(|| out_of_range(field, value, INT_ALLOWED))
}

//! Wire formats into [`TaskEvent`]s, or a reason why not (SPEC §2).
//!
//! Two encodings, one set of rules: [`decode_json`] reads one JSON object,
//! [`event_from_avro_value`] (and the hand-written reader of the bundled
//! schema's datums) reads an Avro record resolved against
//! `schemas/task_event.avsc`. Both fill the same raw record, so defaults,
//! range checks and [`TaskEvent::validate`] are applied identically.
//!
//! On a Kafka topic the value of a record is one of three framings, told
//! apart by [`Framing::detect`] ([`framing`]): Confluent Schema Registry
//! framing, Avro single-object encoding, or JSON. [`RecordDecoder`] is the
//! entry point for the job: built once from the `input` settings, it finds
//! the writer schema of each record ([`WriterSchemas`]: by schema id from a
//! registry or from files, by fingerprint) and decodes it.
//!
//! Every failure is a [`DecodeError`] whose message is fit for a dead-letter
//! header: it says what is wrong, not just that something is.

mod avro;
mod datum;
mod fingerprint;
pub mod framing;
mod json;
mod record;
mod spares;
mod writer_schemas;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::{Eval, InvalidEvent, Outcome, TaskEvent, TimestampMs};

pub use avro::{
    decode_avro_datum, encode_avro_datum, event_from_avro_value, read_avro_container,
    write_avro_container, AvroDatumDecoder, AvroSchemas,
};
pub use fingerprint::{canonical_form, schema_fingerprint};
pub use framing::Framing;
pub use json::{decode_json, timestamp_ms};
pub use record::RecordDecoder;
pub use spares::empty_event;
pub use writer_schemas::WriterSchemas;

/// Why bytes did not become a [`TaskEvent`].
///
/// The `Display` text is the dead-letter reason; [`DecodeError::kind`] is a
/// short stable name for metrics labels, and [`DecodeError::is_transient`]
/// tells a record that is bad from one that could not be decided now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, truncated JSON, or JSON of the wrong shape; the message
    /// carries the line and column.
    #[error("{0}")]
    Json(String),
    /// Not Avro for its writer schema: truncated (`truncated Avro datum
    /// after field `latency_ms``), corrupt, or with bytes left over. The
    /// message is complete (it says "Avro").
    #[error("{0}")]
    Avro(String),
    /// Well-formed, but not a valid task event.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// The first bytes are none of the accepted framings, or a framing's
    /// header is cut short, e.g. `record starts with byte 0x7f: not
    /// Confluent Avro (0x00), single-object Avro (0xC3 0x01) or JSON`.
    #[error("{0}")]
    Framing(String),
    /// A Confluent-framed record names a schema id we cannot get a schema
    /// for: the registry does not have it, or (without a registry) the
    /// configuration does not list it.
    #[error("schema id {id} is not registered: {reason}")]
    UnknownSchemaId { id: u32, reason: String },
    /// A single-object record's writer schema fingerprint matches no schema
    /// we know. The message shows the fingerprint as written (the 8 bytes
    /// after `0xC3 0x01`, in hex), as fastavro and Java print it.
    #[error(
        "single-object Avro with writer schema fingerprint {} (as written): no known schema \
         has it ({known} known: the bundled task_event.avsc, input.schema_ids, \
         input.schema_files and schemas learned from the registry)",
        fingerprint_hex(*.fingerprint)
    )]
    UnknownFingerprint { fingerprint: u64, known: usize },
    /// The schema registry could not be asked, or gave an unusable answer
    /// (timeout, connection refused, HTTP 5xx, 401/403). Says nothing about
    /// the record: see [`DecodeError::is_transient`].
    #[error("schema registry: {0}")]
    Registry(String),
    /// The writer schema is known but data written with it cannot be read
    /// as a task event (e.g. `latency_ms` written as a string), or it is not
    /// an Avro schema at all. `writer` says which schema (`id 42`,
    /// `fingerprint 0x…`, a file).
    #[error("writer schema {writer} cannot be read as a task event: {reason}")]
    IncompatibleSchema { writer: String, reason: String },
}

/// A fingerprint as single-object encoding writes it: 8 bytes little-endian,
/// in hex.
pub fn fingerprint_hex(fingerprint: u64) -> String {
    fingerprint
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl DecodeError {
    /// A short, stable name for the kind of failure, for metrics labels and
    /// a dead-letter `kind` header: `json`, `avro`, `invalid`, `framing`,
    /// `unknown_schema`, `registry`, `incompatible_schema`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "json",
            DecodeError::Avro(_) => "avro",
            DecodeError::Invalid(_) => "invalid",
            DecodeError::Framing(_) => "framing",
            DecodeError::UnknownSchemaId { .. } | DecodeError::UnknownFingerprint { .. } => {
                "unknown_schema"
            }
            DecodeError::Registry(_) => "registry",
            DecodeError::IncompatibleSchema { .. } => "incompatible_schema",
        }
    }

    /// Whether the failure says nothing about the record itself: the schema
    /// registry could not be reached or refused us. Such a record should be
    /// retried later (pause, back off), not dead-lettered; the decoder does
    /// not ask the registry again before its back-off has passed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DecodeError::Registry(_))
    }
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
        let mut event = TaskEvent {
            task_id: self.task_id.unwrap_or_else(|| event_id.clone()),
            event_id,
            agent_id,
            timestamp,
            outcome,
            latency_ms: 0,
            tool_calls: 0,
            policy_violations: 0,
            hallucination: self.hallucination,
            intent_met: self.intent_met,
            delegation_depth: 0,
            evals: self.evals,
            error_type: self.error_type,
            model: self.model,
            tokens_in: None,
            tokens_out: None,
            cost_usd: self.cost_usd,
            attributes: self.attributes,
        };
        Counts {
            latency_ms,
            tool_calls: self.tool_calls,
            policy_violations: self.policy_violations,
            delegation_depth: self.delegation_depth,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
        }
        .check_into(&mut event)?;
        event.validate()?;
        Ok(event)
    }
}

/// The numbers of a record as read (`i64`, so that a negative one is ours
/// to refuse by name), before their range checks. Shared by [`RawEvent`]
/// and the Avro reader that fills an event in place, so both check in the
/// same order and give the same first error.
pub(crate) struct Counts {
    pub(crate) latency_ms: i64,
    /// `None` (absent) means 0, as for the other two counts.
    pub(crate) tool_calls: Option<i64>,
    pub(crate) policy_violations: Option<i64>,
    pub(crate) delegation_depth: Option<i64>,
    pub(crate) tokens_in: Option<i64>,
    pub(crate) tokens_out: Option<i64>,
}

impl Counts {
    /// Range-checks the numbers into `event`'s fields; the first bad one
    /// is the error.
    #[inline(always)]
    pub(crate) fn check_into(self, event: &mut TaskEvent) -> Result<(), InvalidEvent> {
        event.latency_ms = non_negative("latency_ms", self.latency_ms)?;
        event.tool_calls = int("tool_calls", self.tool_calls)?;
        event.policy_violations = int("policy_violations", self.policy_violations)?;
        event.delegation_depth = int("delegation_depth", self.delegation_depth)?;
        event.tokens_in = self
            .tokens_in
            .map(|v| non_negative("tokens_in", v))
            .transpose()?;
        event.tokens_out = self
            .tokens_out
            .map(|v| non_negative("tokens_out", v))
            .transpose()?;
        Ok(())
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

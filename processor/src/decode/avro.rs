//! Avro: raw datums (the body of a Confluent-framed Kafka record) and object
//! container files, against `schemas/task_event.avsc` as the reader schema.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::OnceLock;

use apache_avro::schema::{Names, NamesRef, ResolvedSchema, SchemaKind};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroResult, GenericSingleObjectReader, Reader, Schema, Writer};

use super::fingerprint::{canonical_form, schema_fingerprint};
use super::spares::Spares;
use super::{datum, DecodeError, RawEvent};
use crate::event::{Eval, InvalidEvent, Outcome, TaskEvent};

/// The Avro schemas the processor reads with (reader schemas).
#[derive(Debug)]
pub struct AvroSchemas {
    task_event: Schema,
}

impl AvroSchemas {
    /// `schemas/task_event.avsc` as JSON text, e.g. to register it with a
    /// schema registry.
    pub const TASK_EVENT_JSON: &'static str = include_str!("../../../schemas/task_event.avsc");

    /// The parsed task event schema, parsed once.
    pub fn task_event() -> &'static Schema {
        static SCHEMAS: OnceLock<AvroSchemas> = OnceLock::new();
        &SCHEMAS
            .get_or_init(|| AvroSchemas {
                task_event: Schema::parse_str(Self::TASK_EVENT_JSON)
                    .expect("schemas/task_event.avsc parses (a unit test checks it)"),
            })
            .task_event
    }

    /// The Rabin fingerprint of the task event schema's Parsing Canonical
    /// Form: the single-object header of records written with it.
    pub fn task_event_fingerprint() -> u64 {
        static FINGERPRINT: OnceLock<u64> = OnceLock::new();
        *FINGERPRINT.get_or_init(|| schema_fingerprint(Self::task_event()))
    }
}

/// Decodes raw Avro datums written with one writer schema.
///
/// Building it checks compatibility with the bundled reader schema and
/// prepares resolution once; keep one per writer schema (per schema id or
/// fingerprint, as [`WriterSchemas`](super::WriterSchemas) does) rather than
/// calling [`decode_avro_datum`] per record.
///
/// A writer schema with the bundled schema's Parsing Canonical Form (the
/// same fields, types and order; docs, defaults and logical types aside) is
/// read by a hand-written reader straight into the event. Any other is read
/// with apache-avro and resolved against the bundled schema: fields the
/// writer lacks take the reader's defaults, fields it added are skipped.
pub struct AvroDatumDecoder {
    fingerprint: u64,
    resolving: Option<Resolving>,
}

impl std::fmt::Debug for AvroDatumDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDatumDecoder")
            .field("fingerprint", &super::fingerprint_hex(self.fingerprint))
            .field("resolving", &self.resolving.is_some())
            .finish()
    }
}

/// The apache-avro path, owning its writer schema.
struct Resolving {
    writer: Schema,
    /// The named types in `writer`, for walking datums.
    names: Names,
    // A single-object reader with an empty header is a raw datum reader that
    // owns its (resolved) schema; it does no resolution itself.
    reader: GenericSingleObjectReader,
}

impl AvroDatumDecoder {
    /// Fails if data written with `writer_schema` cannot be read as a task
    /// event; the error calls the schema `given`.
    pub fn new(writer_schema: &Schema) -> Result<Self, DecodeError> {
        Self::named(writer_schema, "given")
    }

    /// As [`AvroDatumDecoder::new`]; `writer` names the schema in errors
    /// (`id 42`, a configuration key and file).
    pub fn named(writer_schema: &Schema, writer: &str) -> Result<Self, DecodeError> {
        let ours = AvroSchemas::task_event();
        let canonical = if std::ptr::eq(writer_schema, ours) {
            None
        } else {
            Some(canonical_form(writer_schema))
        };
        if canonical
            .as_ref()
            .is_none_or(|c| c == datum::TASK_EVENT_CANONICAL_FORM)
        {
            return Ok(AvroDatumDecoder {
                fingerprint: AvroSchemas::task_event_fingerprint(),
                resolving: None,
            });
        }
        check_compatible(writer_schema, ours).map_err(|reason| {
            DecodeError::IncompatibleSchema {
                writer: writer.to_string(),
                reason,
            }
        })?;
        Self::resolving(
            writer_schema.clone(),
            schema_fingerprint(writer_schema),
            writer,
        )
    }

    /// The apache-avro path, without a compatibility check (tests use it
    /// on the bundled schema to hold the hand-written reader to it).
    pub(crate) fn resolving(
        writer_schema: Schema,
        fingerprint: u64,
        writer: &str,
    ) -> Result<Self, DecodeError> {
        let unusable = |e: apache_avro::Error| DecodeError::IncompatibleSchema {
            writer: writer.to_string(),
            reason: shorten(e.to_string()),
        };
        let names = ResolvedSchema::try_from(&writer_schema)
            .map_err(unusable)?
            .get_names()
            .iter()
            .map(|(name, schema)| (name.clone(), (*schema).clone()))
            .collect();
        let reader = GenericSingleObjectReader::builder()
            .schema(writer_schema.clone())
            .header(Vec::new())
            .build()
            .map_err(unusable)?;
        Ok(AvroDatumDecoder {
            fingerprint,
            resolving: Some(Resolving {
                writer: writer_schema,
                names,
                reader,
            }),
        })
    }

    /// The CRC-64-AVRO (Rabin) fingerprint of the writer schema's Parsing
    /// Canonical Form, as single-object encoding carries it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Decodes one datum; the whole of `bytes` must be the one record.
    pub fn decode(&self, bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
        let Some(r) = &self.resolving else {
            return datum::read_task_event(bytes);
        };
        r.decode(bytes)
    }

    /// As [`decode`](Self::decode), into `event`: in place for the bundled
    /// schema's canonical form (no allocation once `event`'s strings are
    /// big enough), by assignment for other writer schemas.
    pub(crate) fn decode_into(
        &self,
        bytes: &[u8],
        event: &mut TaskEvent,
        spares: &mut Spares,
    ) -> Result<(), DecodeError> {
        match &self.resolving {
            None => datum::read_task_event_into(bytes, event, spares),
            Some(r) => {
                *event = r.decode(bytes)?;
                Ok(())
            }
        }
    }
}

impl Resolving {
    fn decode(&self, bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
        // Walk the datum first (no allocation): apache-avro 0.22 reads a
        // string cut short as null instead of failing, and its messages do
        // not say where a datum breaks.
        if let Some(error) = datum::diagnose(&self.writer, &self.names, bytes) {
            return Err(error);
        }
        let mut rest = bytes;
        let value = self
            .reader
            .read_value(&mut rest)
            .and_then(|v| v.resolve_with_names(AvroSchemas::task_event(), reader_names()))
            .map_err(avro_error)?;
        if !rest.is_empty() {
            return Err(datum::left_over(rest.len()));
        }
        event_from_avro_value(value)
    }
}

/// Names in the bundled schema, for resolving values against it.
fn reader_names() -> &'static NamesRef<'static> {
    static NAMES: OnceLock<ResolvedSchema<'static>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            ResolvedSchema::try_from(AvroSchemas::task_event())
                .expect("the bundled schema resolves")
        })
        .get_names()
}

/// Decodes one raw Avro datum (no framing) written with `writer_schema`,
/// resolved against [`AvroSchemas::task_event`].
pub fn decode_avro_datum(bytes: &[u8], writer_schema: &Schema) -> Result<TaskEvent, DecodeError> {
    if std::ptr::eq(writer_schema, AvroSchemas::task_event()) {
        return datum::read_task_event(bytes);
    }
    AvroDatumDecoder::new(writer_schema)?.decode(bytes)
}

/// Encodes `event` as a raw Avro datum (no framing) with [`AvroSchemas::task_event`].
///
/// Counts beyond the Avro `int`/`long` range (only possible for events built
/// in code, never for decoded ones) are saturated.
pub fn encode_avro_datum(event: &TaskEvent) -> Vec<u8> {
    static WRITER: OnceLock<GenericDatumWriter<'static>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            GenericDatumWriter::builder(AvroSchemas::task_event())
                .build()
                .expect("the task event schema resolves")
        })
        .write_value_to_vec(to_avro_value(event))
        .expect("a TaskEvent value always matches the task event schema")
}

/// Reads an Avro object container file of task events, whatever compatible
/// schema it was written with.
///
/// A record that is not a valid event yields an `Err` and reading goes on; a
/// corrupt block yields an `Err` and ends the iteration.
pub fn read_avro_container<R: Read>(
    reader: R,
) -> Result<impl Iterator<Item = Result<TaskEvent, DecodeError>>, DecodeError> {
    let ours = AvroSchemas::task_event();
    let reader = Reader::builder(reader)
        .reader_schema(ours)
        .build()
        .map_err(avro_error)?;
    // Up front, so an incompatible file fails once rather than on its first record.
    if reader.writer_schema() != ours {
        check_compatible(reader.writer_schema(), ours).map_err(|reason| {
            DecodeError::IncompatibleSchema {
                writer: "of the container file".to_string(),
                reason,
            }
        })?;
    }
    Ok(reader.map(|value| value.map_err(avro_error).and_then(event_from_avro_value)))
}

/// Writes `events` as an Avro object container file with the task event
/// schema; returns the inner writer. For tests and generators.
pub fn write_avro_container<W: Write>(events: &[TaskEvent], w: W) -> AvroResult<W> {
    let mut writer = Writer::new(AvroSchemas::task_event(), w)?;
    for event in events {
        writer.append_value(to_avro_value(event))?;
    }
    writer.into_inner()
}

/// Converts a decoded Avro record into a validated [`TaskEvent`].
///
/// The record should already be resolved against [`AvroSchemas::task_event`]
/// (the reader functions here do that), so that fields an older writer lacked
/// carry the reader defaults. Fields this version does not know are ignored.
pub fn event_from_avro_value(value: Value) -> Result<TaskEvent, DecodeError> {
    let Value::Record(fields) = value else {
        return Err(type_error("(record)", "TaskEvent record", &value));
    };
    let mut raw = RawEvent::default();
    for (name, value) in fields {
        let value = unwrap_union(value);
        match name.as_str() {
            "event_id" => raw.event_id = string("event_id", value)?,
            "agent_id" => raw.agent_id = string("agent_id", value)?,
            "task_id" => raw.task_id = string("task_id", value)?,
            "timestamp" => raw.timestamp = long("timestamp", value)?.map(Ok),
            "outcome" => raw.outcome = outcome(value)?,
            "latency_ms" => raw.latency_ms = long("latency_ms", value)?,
            "tool_calls" => raw.tool_calls = long("tool_calls", value)?,
            "policy_violations" => raw.policy_violations = long("policy_violations", value)?,
            "hallucination" => raw.hallucination = boolean("hallucination", value)?,
            "intent_met" => raw.intent_met = boolean("intent_met", value)?,
            "delegation_depth" => raw.delegation_depth = long("delegation_depth", value)?,
            "evals" => raw.evals = evals(value)?,
            "error_type" => raw.error_type = string("error_type", value)?,
            "model" => raw.model = string("model", value)?,
            "tokens_in" => raw.tokens_in = long("tokens_in", value)?,
            "tokens_out" => raw.tokens_out = long("tokens_out", value)?,
            "cost_usd" => raw.cost_usd = double("cost_usd", value)?,
            "attributes" => raw.attributes = attributes(value)?,
            _ => {}
        }
    }
    Ok(raw.into_event()?)
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

fn type_error(field: &str, expected: &str, found: &Value) -> DecodeError {
    let found = SchemaKind::from(found);
    DecodeError::Avro(format!(
        "invalid Avro: field `{field}`: expected {expected}, found {found:?}"
    ))
}

fn string(field: &str, value: Value) -> Result<Option<String>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(type_error(field, "string", &other)),
    }
}

fn long(field: &str, value: Value) -> Result<Option<i64>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::Long(n) | Value::TimestampMillis(n) => Ok(Some(n)),
        Value::Int(n) => Ok(Some(n.into())),
        other => Err(type_error(field, "long", &other)),
    }
}

fn boolean(field: &str, value: Value) -> Result<Option<bool>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        other => Err(type_error(field, "boolean", &other)),
    }
}

fn double(field: &str, value: Value) -> Result<Option<f64>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::Double(x) => Ok(Some(x)),
        Value::Float(x) => Ok(Some(x.into())),
        other => Err(type_error(field, "double", &other)),
    }
}

type Checked<T> = Result<T, InvalidEvent>;

fn outcome(value: Value) -> Result<Option<Checked<Outcome>>, DecodeError> {
    let symbol = match value {
        Value::Null => return Ok(None),
        Value::Enum(_, symbol) | Value::String(symbol) => symbol,
        other => return Err(type_error("outcome", "enum Outcome", &other)),
    };
    let parsed = Outcome::parse(&symbol);
    Ok(Some(parsed.ok_or(InvalidEvent::UnknownOutcome(symbol))))
}

fn evals(value: Value) -> Result<Vec<Eval>, DecodeError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(type_error("evals", "array", &other)),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Record(fields) = item else {
                return Err(type_error("evals", "array of Eval records", &item));
            };
            let (mut category, mut passed) = (None, None);
            for (name, value) in fields {
                match name.as_str() {
                    "category" => category = string("evals.category", unwrap_union(value))?,
                    "passed" => passed = boolean("evals.passed", unwrap_union(value))?,
                    _ => {}
                }
            }
            Ok(Eval {
                category: category.ok_or(InvalidEvent::MissingField("evals.category"))?,
                passed: passed.ok_or(InvalidEvent::MissingField("evals.passed"))?,
            })
        })
        .collect()
}

fn attributes(value: Value) -> Result<BTreeMap<String, String>, DecodeError> {
    let entries = match value {
        Value::Null => return Ok(Default::default()),
        Value::Map(entries) => entries,
        other => return Err(type_error("attributes", "map<string>", &other)),
    };
    entries
        .into_iter()
        .map(|(k, v)| match unwrap_union(v) {
            Value::String(s) => Ok((k, s)),
            other => Err(type_error("attributes", "map<string>", &other)),
        })
        .collect()
}

fn to_avro_value(e: &TaskEvent) -> Value {
    fn long(n: u64) -> Value {
        Value::Long(i64::try_from(n).unwrap_or(i64::MAX))
    }
    fn int(n: u32) -> Value {
        Value::Int(i32::try_from(n).unwrap_or(i32::MAX))
    }
    // Every optional field is ["null", T]: branch 0 is null, 1 the value.
    fn optional<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(f(v))),
        }
    }
    let evals = e.evals.iter().map(|ev| {
        Value::Record(vec![
            ("category".into(), Value::String(ev.category.clone())),
            ("passed".into(), Value::Boolean(ev.passed)),
        ])
    });
    let attributes: HashMap<String, Value> = e
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Record(vec![
        ("event_id".into(), Value::String(e.event_id.clone())),
        ("agent_id".into(), Value::String(e.agent_id.clone())),
        ("task_id".into(), Value::String(e.task_id.clone())),
        ("timestamp".into(), Value::TimestampMillis(e.timestamp)),
        // The enum's symbols are declared in the same order as `Outcome`.
        (
            "outcome".into(),
            Value::Enum(e.outcome as u32, e.outcome.as_str().into()),
        ),
        ("latency_ms".into(), long(e.latency_ms)),
        ("tool_calls".into(), int(e.tool_calls)),
        ("policy_violations".into(), int(e.policy_violations)),
        (
            "hallucination".into(),
            optional(e.hallucination, Value::Boolean),
        ),
        ("intent_met".into(), optional(e.intent_met, Value::Boolean)),
        ("delegation_depth".into(), int(e.delegation_depth)),
        ("evals".into(), Value::Array(evals.collect())),
        (
            "error_type".into(),
            optional(e.error_type.clone(), Value::String),
        ),
        ("model".into(), optional(e.model.clone(), Value::String)),
        ("tokens_in".into(), optional(e.tokens_in, long)),
        ("tokens_out".into(), optional(e.tokens_out, long)),
        ("cost_usd".into(), optional(e.cost_usd, Value::Double)),
        ("attributes".into(), Value::Map(attributes)),
    ])
}

/// Whether data written with `writer` can be read with `reader`; if not, why.
fn check_compatible(writer: &Schema, reader: &Schema) -> Result<(), String> {
    SchemaCompatibility::can_read(writer, reader)
        .map(drop)
        .map_err(|e| shorten(e.to_string()))
}

// Resolution errors print whole schemas and values; a dead-letter header
// needs the gist, not kilobytes.
const MAX_MESSAGE: usize = 300;

fn avro_error(e: apache_avro::Error) -> DecodeError {
    DecodeError::Avro(format!("invalid Avro: {}", shorten(e.to_string())))
}

fn shorten(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> TaskEvent {
        let mut e = TaskEvent::new(id, "research-agent", 1_795_867_200_000, Outcome::Timeout);
        e.task_id = format!("task-{id}");
        e.latency_ms = 30_000;
        e.tool_calls = 5;
        e.policy_violations = 2;
        e.hallucination = Some(true);
        e.delegation_depth = 1;
        e.evals = vec![Eval {
            category: "factual_retrieval".into(),
            passed: false,
        }];
        e.error_type = Some("tool_timeout".into());
        e.model = Some("gpt-x".into());
        e.tokens_in = Some(1200);
        e.cost_usd = Some(0.25);
        e.attributes.insert("region".into(), "eu".into());
        e
    }

    /// Our schema edited as JSON: a stand-in for another producer's version.
    fn schema_variant(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> Schema {
        let mut json: serde_json::Value =
            serde_json::from_str(AvroSchemas::TASK_EVENT_JSON).unwrap();
        edit(json["fields"].as_array_mut().unwrap());
        Schema::parse(&json).unwrap()
    }

    fn record_fields(value: Value) -> Vec<(String, Value)> {
        match value {
            Value::Record(fields) => fields,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn schema_matches_the_domain_type() {
        let Schema::Record(record) = AvroSchemas::task_event() else {
            panic!("not a record");
        };
        assert_eq!(record.name.fullname(None), "io.breakwater.TaskEvent");
        assert_eq!(record.fields.len(), 18);
        let outcome = &record.fields[record.lookup["outcome"]].schema;
        let Schema::Enum(outcome) = outcome else {
            panic!("outcome is not an enum");
        };
        for o in [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Timeout,
            Outcome::Unavailable,
        ] {
            assert_eq!(outcome.symbols[o as usize], o.as_str());
        }
    }

    #[test]
    fn datum_round_trip() {
        let ours = AvroSchemas::task_event();
        for e in [
            sample("e-1"),
            TaskEvent::new("e-2", "a", 0, Outcome::Success),
        ] {
            let bytes = encode_avro_datum(&e);
            assert_eq!(decode_avro_datum(&bytes, ours).unwrap(), e);
            // A separately parsed copy of our schema takes the uncached path.
            let copy = Schema::parse_str(AvroSchemas::TASK_EVENT_JSON).unwrap();
            assert_eq!(decode_avro_datum(&bytes, &copy).unwrap(), e);
        }
    }

    #[test]
    fn container_round_trip_with_an_invalid_record() {
        let ours = AvroSchemas::task_event();
        let mut writer = Writer::new(ours, Vec::new()).unwrap();
        writer.append_value(to_avro_value(&sample("e-1"))).unwrap();
        // The schema allows a negative long; only our validation refuses it.
        let mut bad = record_fields(to_avro_value(&sample("e-2")));
        bad.iter_mut().find(|(n, _)| n == "latency_ms").unwrap().1 = Value::Long(-5);
        writer.append_value(Value::Record(bad)).unwrap();
        writer.append_value(to_avro_value(&sample("e-3"))).unwrap();
        let bytes = writer.into_inner().unwrap();

        let read: Vec<_> = read_avro_container(bytes.as_slice()).unwrap().collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].as_ref().unwrap(), &sample("e-1"));
        assert_eq!(
            read[1].as_ref().unwrap_err().to_string(),
            "field `latency_ms` has value -5: allowed is an integer >= 0"
        );
        assert_eq!(read[2].as_ref().unwrap(), &sample("e-3"));

        let events = [sample("e-4"), sample("e-5")];
        let bytes = write_avro_container(&events, Vec::new()).unwrap();
        let read: Vec<_> = read_avro_container(bytes.as_slice()).unwrap().collect();
        assert_eq!(
            read.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            events
        );
    }

    #[test]
    fn older_writer_schema_takes_reader_defaults() {
        const DROPPED: [&str; 4] = ["evals", "attributes", "cost_usd", "tool_calls"];
        let old = schema_variant(|fields| {
            fields.retain(|f| !DROPPED.contains(&f["name"].as_str().unwrap()));
        });
        let mut value = record_fields(to_avro_value(&sample("e-1")));
        value.retain(|(name, _)| !DROPPED.contains(&name.as_str()));
        // tool_calls defaults to 0, so the violations must go too.
        value
            .iter_mut()
            .find(|(n, _)| n == "policy_violations")
            .unwrap()
            .1 = Value::Int(0);
        let value = Value::Record(value);

        let mut expected = sample("e-1");
        expected.evals.clear();
        expected.attributes.clear();
        expected.cost_usd = None;
        expected.tool_calls = 0;
        expected.policy_violations = 0;

        let mut bytes = Vec::new();
        GenericDatumWriter::builder(&old)
            .build()
            .unwrap()
            .write_value_ref(&mut bytes, &value)
            .unwrap();
        assert_eq!(decode_avro_datum(&bytes, &old).unwrap(), expected);

        let mut writer = Writer::new(&old, Vec::new()).unwrap();
        writer.append_value_ref(&value).unwrap();
        let file = writer.into_inner().unwrap();
        let read: Vec<_> = read_avro_container(file.as_slice()).unwrap().collect();
        assert_eq!(
            read.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [expected]
        );
    }

    #[test]
    fn newer_writer_schema_with_an_extra_field() {
        let newer = schema_variant(|fields| {
            fields.push(serde_json::json!(
                {"name": "region", "type": "string", "default": "eu"}
            ));
        });
        let mut value = record_fields(to_avro_value(&sample("e-1")));
        value.push(("region".into(), Value::String("us-east".into())));
        let bytes = GenericDatumWriter::builder(&newer)
            .build()
            .unwrap()
            .write_value_to_vec(Value::Record(value))
            .unwrap();
        assert_eq!(decode_avro_datum(&bytes, &newer).unwrap(), sample("e-1"));
    }

    #[test]
    fn incompatible_writer_schema_is_refused_up_front() {
        let no_event_id = schema_variant(|fields| fields.retain(|f| f["name"] != "event_id"));
        let err = AvroDatumDecoder::new(&no_event_id).err().unwrap();
        assert_eq!(
            err.to_string(),
            "writer schema given cannot be read as a task event: Incompatible schemata! \
             Field 'event_id' in reader schema must have a default value"
        );
        assert_eq!(err.kind(), "incompatible_schema");
    }

    #[test]
    fn truncated_or_padded_datums_are_errors() {
        let ours = AvroSchemas::task_event();
        let bytes = encode_avro_datum(&sample("e-1"));
        for end in 0..bytes.len() {
            let err = decode_avro_datum(&bytes[..end], ours).unwrap_err();
            assert!(matches!(err, DecodeError::Avro(_)), "{end}: {err}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        let err = decode_avro_datum(&padded, ours).unwrap_err();
        assert!(err.to_string().contains("1 bytes left over"), "{err}");
    }

    #[test]
    fn truncated_container_is_an_error_not_a_panic() {
        let bytes = write_avro_container(&[sample("e-1"), sample("e-2")], Vec::new()).unwrap();
        for end in [0, 3, 20, bytes.len() / 2, bytes.len() - 1] {
            let ok = match read_avro_container(&bytes[..end]) {
                Err(_) => false,
                Ok(events) => events.collect::<Result<Vec<_>, _>>().is_ok(),
            };
            assert!(!ok, "prefix of {end} bytes read as complete");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let ours = AvroSchemas::task_event();
        assert!(decode_avro_datum(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", ours).is_err());
        assert!(read_avro_container(&b"not an avro file"[..]).is_err());
        // A few bytes claiming a 400 MB event_id: an error, not an abort.
        let mut huge = Vec::new();
        let mut n: u64 = 400_000_000 << 1;
        while n >= 0x80 {
            huge.push((n as u8) | 0x80);
            n >>= 7;
        }
        huge.push(n as u8);
        assert!(decode_avro_datum(&huge, ours).is_err());
        let err = event_from_avro_value(Value::Long(3)).unwrap_err();
        assert!(
            err.to_string().contains("expected TaskEvent record"),
            "{err}"
        );
    }

    /// The hand-written reader of the bundled schema and apache-avro's
    /// reader agree, on whole datums and on every truncation of them (the
    /// datum walk before apache-avro's reader reports truncations).
    #[test]
    fn the_hand_written_reader_agrees_with_apache_avro() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        use crate::event::{MAX_LATENCY_MS, MAX_TIMESTAMP};

        let ours = AvroSchemas::task_event();
        let generic = AvroDatumDecoder::resolving(ours.clone(), 0, "bundled").unwrap();
        let text = "[a-zé😀 ]{0,12}";
        let strategy = (
            (
                text,
                text,
                0..=MAX_TIMESTAMP,
                0..4u32,
                0..=MAX_LATENCY_MS,
                0..40u32,
            ),
            (
                proptest::option::of(any::<bool>()),
                proptest::collection::vec((text, any::<bool>()), 0..4),
                proptest::option::of(text),
                proptest::option::of(0..=i64::MAX as u64),
                proptest::option::of(0.0..1e6f64),
                proptest::collection::btree_map(text, text, 0..4),
                proptest::option::of(text),
                proptest::option::of(any::<bool>()),
            ),
        );
        let whole = std::cell::Cell::new(0);
        // One slot for every case and truncation, as the job reuses its
        // slots: each decode into it must equal a fresh one.
        let slot = std::cell::RefCell::new(crate::decode::empty_event());
        let spares = std::cell::RefCell::new(Spares::default());
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &strategy,
                |((id, agent, ts, outcome, latency, calls), rest)| {
                    let (hallucination, evals, model, tokens, cost, attributes, error, intent) =
                        rest;
                    let outcome = [
                        Outcome::Success,
                        Outcome::Failure,
                        Outcome::Timeout,
                        Outcome::Unavailable,
                    ][outcome as usize];
                    let mut e = TaskEvent::new(id, agent, ts, outcome);
                    e.latency_ms = latency;
                    e.tool_calls = calls;
                    e.policy_violations = calls / 2;
                    e.hallucination = hallucination;
                    e.evals = evals
                        .into_iter()
                        .map(|(category, passed)| Eval { category, passed })
                        .collect();
                    e.model = model;
                    e.tokens_in = tokens;
                    e.cost_usd = cost;
                    e.attributes = attributes;
                    e.error_type = error;
                    e.intent_met = intent;
                    let bytes = encode_avro_datum(&e);
                    for end in (0..=bytes.len()).rev() {
                        let fast = datum::read_task_event(&bytes[..end]);
                        let slow = generic.decode(&bytes[..end]);
                        let mut slot = slot.borrow_mut();
                        let into = datum::read_task_event_into(
                            &bytes[..end],
                            &mut slot,
                            &mut spares.borrow_mut(),
                        );
                        match (&fast, into) {
                            (Ok(a), Ok(())) => prop_assert_eq!(a, &*slot),
                            (Err(a), Err(b)) => prop_assert_eq!(a, &b),
                            (a, b) => prop_assert!(false, "{end}: {a:?} vs {b:?} into"),
                        }
                        match (&fast, &slow) {
                            (Ok(a), Ok(b)) => {
                                prop_assert_eq!(a, b);
                                prop_assert!(end == bytes.len() && a == &e);
                                whole.set(whole.get() + 1);
                            }
                            (Err(a), Err(b)) => prop_assert_eq!(a, b),
                            _ => prop_assert!(false, "{end}: {fast:?} vs {slow:?}"),
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
        assert!(
            whole.get() > 200,
            "only {} valid events decoded",
            whole.get()
        );
    }
}

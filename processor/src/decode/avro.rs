//! Avro: raw datums (the body of a Confluent-framed Kafka record) and object
//! container files, against `schemas/task_event.avsc` as the reader schema.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::SchemaKind;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroResult, Reader, Schema, Writer};

use super::{DecodeError, RawEvent};
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
}

/// Decodes raw Avro datums written with one writer schema.
///
/// Building it resolves the schemas and checks compatibility once; keep one
/// per writer schema (per schema registry id) rather than calling
/// [`decode_avro_datum`] per record.
pub struct AvroDatumDecoder<'s> {
    reader: GenericDatumReader<'s>,
}

impl<'s> AvroDatumDecoder<'s> {
    /// Fails if data written with `writer_schema` cannot be read as a task event.
    pub fn new(writer_schema: &'s Schema) -> Result<Self, DecodeError> {
        let ours = AvroSchemas::task_event();
        // Resolution rebuilds every value; skip it when nothing would change.
        let reader_schema = (writer_schema != ours).then_some(ours);
        if let Some(ours) = reader_schema {
            check_compatible(writer_schema, ours)?;
        }
        let reader = GenericDatumReader::builder(writer_schema)
            .maybe_reader_schema(reader_schema)
            .build()
            .map_err(avro_error)?;
        Ok(AvroDatumDecoder { reader })
    }

    /// Decodes one datum; the whole of `bytes` must be the one record.
    pub fn decode(&self, bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
        let mut rest = bytes;
        let value = self.reader.read_value(&mut rest).map_err(avro_error)?;
        if !rest.is_empty() {
            // Almost always a wrong writer schema (e.g. a wrong registry id).
            return Err(DecodeError::Avro(format!(
                "{} bytes left over after the record: wrong writer schema?",
                rest.len()
            )));
        }
        event_from_avro_value(value)
    }
}

/// Decodes one raw Avro datum (no framing) written with `writer_schema`,
/// resolved against [`AvroSchemas::task_event`].
pub fn decode_avro_datum(bytes: &[u8], writer_schema: &Schema) -> Result<TaskEvent, DecodeError> {
    if std::ptr::eq(writer_schema, AvroSchemas::task_event()) {
        static OURS: OnceLock<AvroDatumDecoder<'static>> = OnceLock::new();
        let ours = OURS.get_or_init(|| {
            AvroDatumDecoder::new(AvroSchemas::task_event()).expect("a schema reads itself")
        });
        return ours.decode(bytes);
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
        check_compatible(reader.writer_schema(), ours)?;
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
        "field `{field}`: expected {expected}, found {found:?}"
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

fn check_compatible(writer: &Schema, reader: &Schema) -> Result<(), DecodeError> {
    SchemaCompatibility::can_read(writer, reader)
        .map(drop)
        .map_err(|e| {
            DecodeError::Avro(format!("writer schema cannot be read as a task event: {e}"))
        })
}

// Resolution errors print whole schemas and values; a dead-letter header
// needs the gist, not kilobytes.
const MAX_MESSAGE: usize = 300;

fn avro_error(e: apache_avro::Error) -> DecodeError {
    let mut message = e.to_string();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    DecodeError::Avro(message)
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
        assert!(
            err.to_string()
                .starts_with("invalid Avro: writer schema cannot"),
            "{err}"
        );
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
}

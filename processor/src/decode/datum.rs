//! Avro binary datums read by hand.
//!
//! Two readers share one byte cursor and one way of saying what is wrong:
//!
//! - [`read_task_event`] reads a datum written with the bundled schema (or
//!   any schema with the same Parsing Canonical Form — the common case)
//!   straight into the raw event: no `Value` tree, no allocation but the
//!   event's own strings and collections. It must follow
//!   `schemas/task_event.avsc` field by field; a test pins the canonical form
//!   it was written for, another checks it against apache-avro's reader.
//! - [`diagnose`] walks a datum against any writer schema without building
//!   anything, to say where a datum that apache-avro refused goes wrong.
//!
//! Both name the top-level field: `truncated Avro datum after field
//! `latency_ms``, `invalid Avro: field `outcome`: enum index 7 is out of
//! range (4 symbols)`.

use std::collections::BTreeMap;

use std::borrow::Borrow;
use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, NamespaceRef, UuidSchema};
use apache_avro::Schema;

use super::{DecodeError, RawEvent};
use crate::event::{Eval, Outcome, TaskEvent};

/// The bundled schema's Parsing Canonical Form, as [`read_task_event`]
/// reads it.
pub(super) const TASK_EVENT_CANONICAL_FORM: &str = concat!(
    r#"{"name":"io.breakwater.TaskEvent","type":"record","fields":["#,
    r#"{"name":"event_id","type":"string"},"#,
    r#"{"name":"agent_id","type":"string"},"#,
    r#"{"name":"task_id","type":"string"},"#,
    r#"{"name":"timestamp","type":"long"},"#,
    r#"{"name":"outcome","type":{"name":"io.breakwater.Outcome","type":"enum","#,
    r#""symbols":["SUCCESS","FAILURE","TIMEOUT","UNAVAILABLE"]}},"#,
    r#"{"name":"latency_ms","type":"long"},"#,
    r#"{"name":"tool_calls","type":"int"},"#,
    r#"{"name":"policy_violations","type":"int"},"#,
    r#"{"name":"hallucination","type":["null","boolean"]},"#,
    r#"{"name":"intent_met","type":["null","boolean"]},"#,
    r#"{"name":"delegation_depth","type":"int"},"#,
    r#"{"name":"evals","type":{"type":"array","items":{"name":"io.breakwater.Eval","#,
    r#""type":"record","fields":[{"name":"category","type":"string"},"#,
    r#"{"name":"passed","type":"boolean"}]}}},"#,
    r#"{"name":"error_type","type":["null","string"]},"#,
    r#"{"name":"model","type":["null","string"]},"#,
    r#"{"name":"tokens_in","type":["null","long"]},"#,
    r#"{"name":"tokens_out","type":["null","long"]},"#,
    r#"{"name":"cost_usd","type":["null","double"]},"#,
    r#"{"name":"attributes","type":{"type":"map","values":"string"}}]}"#,
);

/// The `Outcome` enum's symbols in schema order.
const OUTCOMES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::Failure,
    Outcome::Timeout,
    Outcome::Unavailable,
];

/// Deeper nesting than this (only possible with a recursive writer schema)
/// is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Why reading stopped.
enum Fault {
    /// The bytes ran out.
    Eof,
    /// The bytes cannot be this schema's, for the reason given.
    Bad(String),
}

type Read<T> = Result<T, Fault>;

/// A position in a datum, and the top-level field being read.
struct Cursor<'a, 'n> {
    empty: bool,
    rest: &'a [u8],
    /// The field being read.
    field: &'n str,
    /// The last field read completely.
    done: Option<&'n str>,
}

impl<'a, 'n> Cursor<'a, 'n> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor {
            empty: bytes.is_empty(),
            rest: bytes,
            field: "",
            done: None,
        }
    }

    fn field<T>(&mut self, name: &'n str, read: impl FnOnce(&mut Self) -> Read<T>) -> Read<T> {
        self.field = name;
        let value = read(self)?;
        self.done = Some(name);
        Ok(value)
    }

    /// The error for `fault` at the current position.
    fn error(&self, fault: Fault) -> DecodeError {
        DecodeError::Avro(match fault {
            Fault::Eof => match self.done {
                _ if self.empty => "truncated Avro datum: it is empty".to_string(),
                Some(done) => format!("truncated Avro datum after field `{done}`"),
                None => format!("truncated Avro datum in its first field `{}`", self.field),
            },
            Fault::Bad(why) => format!("invalid Avro: field `{}`: {why}", self.field),
        })
    }

    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.rest.len() {
            return Err(Fault::Eof);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Read<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(Fault::Eof)?;
        self.rest = rest;
        Ok(b)
    }

    /// A zigzag varint.
    fn long(&mut self) -> Read<i64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(Fault::Bad("a varint overflows 64 bits".into()));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err(Fault::Bad("a varint is longer than 10 bytes".into()))
    }

    fn int(&mut self) -> Read<i32> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| Fault::Bad(format!("int {n} is out of range")))
    }

    fn boolean(&mut self) -> Read<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Fault::Bad(format!(
                "boolean byte {b:#04x} is neither 0 nor 1"
            ))),
        }
    }

    fn double(&mut self) -> Read<f64> {
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn length(&mut self) -> Read<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Fault::Bad(format!("negative length {n}")))
    }

    fn bytes(&mut self) -> Read<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    fn str(&mut self) -> Read<&'a str> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|e| Fault::Bad(format!("string is not UTF-8 ({e})")))
    }

    fn string(&mut self) -> Read<String> {
        self.str().map(str::to_owned)
    }

    /// A union's branch index, checked against its number of branches.
    fn branch(&mut self, branches: usize) -> Read<usize> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| {
                Fault::Bad(format!(
                    "union branch {n} does not exist ({branches} branches)"
                ))
            })
    }

    /// `["null", T]`: `None` for branch 0.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Read<T>) -> Read<Option<T>> {
        match self.branch(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }

    /// Reads the blocks of an array or map, `item` once per item.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self)?;
            }
        }
    }

    fn enum_index(&mut self, symbols: usize) -> Read<usize> {
        let n = self.int()?;
        usize::try_from(n)
            .ok()
            .filter(|&i| i < symbols)
            .ok_or_else(|| {
                Fault::Bad(format!(
                    "enum index {n} is out of range ({symbols} symbols)"
                ))
            })
    }
}

/// Reads one task event datum written with the bundled schema's canonical
/// form; the whole of `bytes` must be the one record.
pub(super) fn read_task_event(bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
    let mut c = Cursor::new(bytes);
    let raw = task_event(&mut c).map_err(|f| c.error(f))?;
    if !c.rest.is_empty() {
        return Err(left_over(c.rest.len()));
    }
    Ok(raw.into_event()?)
}

/// Bytes after a complete record: almost always a wrong writer schema.
pub(super) fn left_over(n: usize) -> DecodeError {
    DecodeError::Avro(format!(
        "invalid Avro: {n} bytes left over after the record: wrong writer schema?"
    ))
}

fn task_event(c: &mut Cursor<'_, 'static>) -> Read<RawEvent> {
    let count = |c: &mut Cursor| c.int().map(|n| Some(i64::from(n)));
    let long = |c: &mut Cursor| c.long().map(Some);
    Ok(RawEvent {
        event_id: c.field("event_id", Cursor::string).map(Some)?,
        agent_id: c.field("agent_id", Cursor::string).map(Some)?,
        task_id: c.field("task_id", Cursor::string).map(Some)?,
        timestamp: c.field("timestamp", |c| c.long().map(|t| Some(Ok(t))))?,
        outcome: c.field("outcome", |c| {
            let i = c.enum_index(OUTCOMES.len())?;
            Ok(Some(Ok(OUTCOMES[i])))
        })?,
        latency_ms: c.field("latency_ms", long)?,
        tool_calls: c.field("tool_calls", count)?,
        policy_violations: c.field("policy_violations", count)?,
        hallucination: c.field("hallucination", |c| c.optional(Cursor::boolean))?,
        intent_met: c.field("intent_met", |c| c.optional(Cursor::boolean))?,
        delegation_depth: c.field("delegation_depth", count)?,
        evals: c.field("evals", |c| {
            let mut evals = Vec::new();
            c.blocks(|c| {
                let category = c.string()?;
                let passed = c.boolean()?;
                evals.push(Eval { category, passed });
                Ok(())
            })?;
            Ok(evals)
        })?,
        error_type: c.field("error_type", |c| c.optional(Cursor::string))?,
        model: c.field("model", |c| c.optional(Cursor::string))?,
        tokens_in: c.field("tokens_in", |c| c.optional(Cursor::long))?,
        tokens_out: c.field("tokens_out", |c| c.optional(Cursor::long))?,
        cost_usd: c.field("cost_usd", |c| c.optional(Cursor::double))?,
        attributes: c.field("attributes", |c| {
            let mut attributes = BTreeMap::new();
            c.blocks(|c| {
                let key = c.string()?;
                let value = c.string()?;
                attributes.insert(key, value);
                Ok(())
            })?;
            Ok(attributes)
        })?,
    })
}

/// Walks `bytes` as a datum of `writer` and says where it goes wrong:
/// truncated (after which field), a bad union branch, enum index, boolean or
/// length, bytes left over. `None` if the walk finds nothing wrong.
pub(super) fn diagnose<S: Borrow<Schema>>(
    writer: &Schema,
    names: &HashMap<Name, S>,
    bytes: &[u8],
) -> Option<DecodeError> {
    let mut c = Cursor::new(bytes);
    let walked = match writer {
        Schema::Record(record) => {
            let namespace = record.name.namespace();
            record
                .fields
                .iter()
                .try_for_each(|f| c.field(&f.name, |c| skip(c, &f.schema, names, namespace, 0)))
        }
        other => skip(&mut c, other, names, None, 0),
    };
    match walked {
        Err(fault) => Some(c.error(fault)),
        Ok(()) if !c.rest.is_empty() => Some(left_over(c.rest.len())),
        Ok(()) => None,
    }
}

fn skip<S: Borrow<Schema>>(
    c: &mut Cursor<'_, '_>,
    schema: &Schema,
    names: &HashMap<Name, S>,
    namespace: NamespaceRef<'_>,
    depth: usize,
) -> Read<()> {
    if depth > MAX_DEPTH {
        return Err(Fault::Bad(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let depth = depth + 1;
    match schema {
        Schema::Null => Ok(()),
        Schema::Boolean => c.boolean().map(drop),
        Schema::Int | Schema::Date | Schema::TimeMillis => c.int().map(drop),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => c.long().map(drop),
        Schema::Float => c.take(4).map(drop),
        Schema::Double => c.take(8).map(drop),
        Schema::String | Schema::Uuid(UuidSchema::String) => c.str().map(drop),
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => c.bytes().map(drop),
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => c.bytes().map(drop),
            InnerDecimalSchema::Fixed(f) => c.take(f.size).map(drop),
        },
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            c.take(f.size).map(drop)
        }
        Schema::Enum(e) => c.enum_index(e.symbols.len()).map(drop),
        Schema::Array(a) => c.blocks(|c| skip(c, &a.items, names, namespace, depth)),
        Schema::Map(m) => c.blocks(|c| {
            c.str()?;
            skip(c, &m.types, names, namespace, depth)
        }),
        Schema::Union(u) => {
            let variants = u.variants();
            let i = c.branch(variants.len())?;
            skip(c, &variants[i], names, namespace, depth)
        }
        Schema::Record(r) => {
            let name = r.name.fully_qualified_name(namespace);
            for f in &r.fields {
                skip(c, &f.schema, names, name.namespace(), depth)?;
            }
            Ok(())
        }
        Schema::Ref { name } => {
            let name = name.fully_qualified_name(namespace);
            match names.get(name.as_ref()) {
                Some(schema) => skip(c, schema.borrow(), names, name.namespace(), depth),
                None => Err(Fault::Bad(format!("the schema names no type {name}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::schema::ResolvedSchema;

    use super::*;
    use crate::decode::{encode_avro_datum, AvroSchemas};

    fn sample() -> TaskEvent {
        let mut e = TaskEvent::new("e-1", "research-agent", 1_795_867_200_000, Outcome::Timeout);
        e.latency_ms = 30_000;
        e.tool_calls = 5;
        e.policy_violations = 2;
        e.hallucination = Some(false);
        e.evals = vec![
            Eval {
                category: "factual_retrieval".into(),
                passed: true,
            },
            Eval {
                category: "tone".into(),
                passed: false,
            },
        ];
        e.model = Some("gpt-x".into());
        e.tokens_out = Some(77);
        e.cost_usd = Some(0.5);
        e.attributes.insert("region".into(), "eu".into());
        e.attributes.insert("tier".into(), "gold".into());
        e
    }

    fn avro_message(bytes: &[u8]) -> String {
        match read_task_event(bytes) {
            Err(e @ DecodeError::Avro(_)) => e.to_string(),
            other => panic!("expected an Avro error, got {other:?}"),
        }
    }

    #[test]
    fn written_for_the_bundled_schema() {
        assert_eq!(
            crate::decode::canonical_form(AvroSchemas::task_event()),
            TASK_EVENT_CANONICAL_FORM,
            "schemas/task_event.avsc changed: update read_task_event to match, then this constant"
        );
        let Schema::Record(record) = AvroSchemas::task_event() else {
            panic!("not a record")
        };
        let Schema::Enum(outcome) = &record.fields[record.lookup["outcome"]].schema else {
            panic!("outcome is not an enum")
        };
        let symbols: Vec<&str> = OUTCOMES.iter().map(|o| o.as_str()).collect();
        assert_eq!(outcome.symbols, symbols);
    }

    #[test]
    fn round_trip() {
        for e in [sample(), TaskEvent::new("e-2", "a", 0, Outcome::Success)] {
            assert_eq!(read_task_event(&encode_avro_datum(&e)).unwrap(), e);
        }
    }

    #[test]
    fn truncation_names_the_last_complete_field() {
        let bytes = encode_avro_datum(&sample());
        assert_eq!(avro_message(&[]), "truncated Avro datum: it is empty");
        assert_eq!(
            avro_message(&bytes[..2]),
            "truncated Avro datum in its first field `event_id`"
        );
        // event_id "e-1" (4 bytes), agent_id "research-agent" (15), task_id
        // "e-1" (4), timestamp (6), outcome (1), latency_ms (3) = 33 bytes.
        assert_eq!(
            avro_message(&bytes[..33]),
            "truncated Avro datum after field `latency_ms`"
        );
        for end in 0..bytes.len() {
            let message = avro_message(&bytes[..end]);
            assert!(
                message.starts_with("truncated Avro datum"),
                "{end}: {message}"
            );
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(
            avro_message(&padded),
            "invalid Avro: 2 bytes left over after the record: wrong writer schema?"
        );
    }

    #[test]
    fn corrupt_values_name_their_field() {
        let e = TaskEvent::new("e", "a", 0, Outcome::Success);
        let bytes = encode_avro_datum(&e);
        // event_id (2), agent_id (2), task_id (2), timestamp (1), then outcome.
        let mut bad = bytes.clone();
        bad[7] = 14; // zigzag 7
        assert_eq!(
            avro_message(&bad),
            "invalid Avro: field `outcome`: enum index 7 is out of range (4 symbols)"
        );
        // latency_ms (1), tool_calls (1), policy_violations (1), hallucination.
        let mut bad = bytes.clone();
        bad[11] = 4;
        assert_eq!(
            avro_message(&bad),
            "invalid Avro: field `hallucination`: union branch 2 does not exist (2 branches)"
        );
        let mut bad = bytes.clone();
        bad[0] = 3; // zigzag -2
        assert_eq!(
            avro_message(&bad),
            "invalid Avro: field `event_id`: negative length -2"
        );
        let mut bad = bytes.clone();
        bad[1] = 0xff;
        assert!(
            avro_message(&bad).starts_with("invalid Avro: field `event_id`: string is not UTF-8")
        );
        let mut bad = bytes;
        // latency_ms is byte 8, tool_calls 9: 2^34 - 1, zigzag-encoded.
        bad[9..14].copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            avro_message(&bad),
            "invalid Avro: field `tool_calls`: int 17179869183 is out of range"
        );
        let overlong = [0xffu8; 11];
        assert_eq!(
            avro_message(&overlong),
            "invalid Avro: field `event_id`: a varint overflows 64 bits"
        );
    }

    #[test]
    fn diagnosis_agrees_with_the_reader_on_the_bundled_schema() {
        let schema = AvroSchemas::task_event();
        let resolved = ResolvedSchema::try_from(schema).unwrap();
        let bytes = encode_avro_datum(&sample());
        assert!(diagnose(schema, resolved.get_names(), &bytes).is_none());
        for end in 0..bytes.len() {
            let d = diagnose(schema, resolved.get_names(), &bytes[..end]).unwrap();
            assert_eq!(d, read_task_event(&bytes[..end]).unwrap_err(), "{end}");
        }
        let mut padded = bytes;
        padded.push(0);
        assert_eq!(
            diagnose(schema, resolved.get_names(), &padded),
            Some(left_over(1))
        );
    }
}

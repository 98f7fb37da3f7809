//! Avro binary datums read by hand.
//!
//! Two readers share one byte cursor and one way of saying what is wrong:
//!
//! - [`read_task_event_into`] reads a datum written with the bundled schema
//!   (or any schema with the same Parsing Canonical Form — the common case)
//!   straight into a reused event: no `Value` tree, no intermediate record,
//!   and no allocation once the event's strings are big enough. It must follow
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

use super::spares::{empty_event, set, Spares};
use super::{Counts, DecodeError};
use crate::event::{Outcome, TaskEvent};

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
    /// The bytes cannot be this schema's, for the reason given. Boxed: a
    /// fault one pointer wide keeps every `Read<i64>` in two registers
    /// (a `Box<str>` is two pointers; the extra allocation is on the error
    /// path only).
    #[allow(clippy::box_collection)]
    Bad(Box<String>),
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

// The reader of one event is some fifty calls of these small methods: out
// of line (as codegen left `long`, `str` and `field` with a plain hint),
// calls and results passed through memory were half of its time in a
// profile, hence `inline(always)` on the hot ones.
impl<'a, 'n> Cursor<'a, 'n> {
    #[inline]
    fn new(bytes: &'a [u8]) -> Self {
        Cursor {
            empty: bytes.is_empty(),
            rest: bytes,
            field: "",
            done: None,
        }
    }

    #[inline(always)]
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

    #[inline(always)]
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.rest.len() {
            return Err(Fault::Eof);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    #[inline(always)]
    fn byte(&mut self) -> Read<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(Fault::Eof)?;
        self.rest = rest;
        Ok(b)
    }

    /// A zigzag varint. Most here are one or two bytes (lengths, counts,
    /// indexes, small numbers), a timestamp six: one byte is settled by one
    /// test, up to eight by one load and a few shifts, the rest by a loop.
    #[inline(always)]
    fn long(&mut self) -> Read<i64> {
        if let Some(&b) = self.rest.first() {
            if b < 0x80 {
                self.rest = &self.rest[1..];
                return Ok(zigzag(u64::from(b)));
            }
        }
        if let Some(&word) = self.rest.first_chunk::<8>() {
            let word = u64::from_le_bytes(word);
            // The high bit of a varint's last byte is clear.
            let ends = !word & 0x8080_8080_8080_8080;
            if ends != 0 {
                let bits = ends.trailing_zeros() + 1; // through the last byte
                let n = (bits / 8) as usize;
                self.rest = &self.rest[n..];
                return Ok(zigzag(squeeze(word & (u64::MAX >> (64 - bits)))));
            }
        }
        self.long_slow()
    }

    /// [`long`](Self::long) for varints longer than eight bytes or near the
    /// end of the datum: a byte at a time.
    #[inline(never)]
    fn long_slow(&mut self) -> Read<i64> {
        let mut n: u64 = 0;
        for (i, &b) in self.rest.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return Err(Fault::Bad(Box::new("a varint overflows 64 bits".into())));
            }
            n |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(zigzag(n));
            }
        }
        // Fewer than 10 bytes, and the last says more follow (10 bytes
        // always end above: the 10th may only be 0 or 1).
        Err(Fault::Eof)
    }

    #[inline(always)]
    fn int(&mut self) -> Read<i32> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| Fault::Bad(format!("int {n} is out of range").into()))
    }

    /// An `int` count, as `Counts` holds it.
    #[inline(always)]
    fn count(&mut self) -> Read<Option<i64>> {
        self.int().map(|n| Some(i64::from(n)))
    }

    #[inline(always)]
    fn boolean(&mut self) -> Read<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Fault::Bad(
                format!("boolean byte {b:#04x} is neither 0 nor 1").into(),
            )),
        }
    }

    #[inline(always)]
    fn double(&mut self) -> Read<f64> {
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    #[inline(always)]
    fn length(&mut self) -> Read<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Fault::Bad(format!("negative length {n}").into()))
    }

    #[inline(always)]
    fn bytes(&mut self) -> Read<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    #[inline(always)]
    fn str(&mut self) -> Read<&'a str> {
        let bytes = self.bytes()?;
        // Ids, names and categories are short and ASCII: `is_ascii`
        // settles those faster than the general validator, which takes the
        // rest.
        if is_ascii(bytes) {
            // SAFETY: every byte is ASCII, so `bytes` is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes)
            .map_err(|e| Fault::Bad(format!("string is not UTF-8 ({e})").into()))
    }

    #[inline]
    fn string(&mut self) -> Read<String> {
        self.str().map(str::to_owned)
    }

    /// A union's branch index, checked against its number of branches.
    #[inline(always)]
    fn branch(&mut self, branches: usize) -> Read<usize> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| {
                Fault::Bad(format!("union branch {n} does not exist ({branches} branches)").into())
            })
    }

    /// Whether a `["null", T]` has its value (branch 1), which follows.
    #[inline(always)]
    fn present(&mut self) -> Read<bool> {
        Ok(self.branch(2)? == 1)
    }

    /// Reads the blocks of an array or map, `item` once per item.
    #[inline(always)]
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        loop {
            let count = self.block()?;
            if count == 0 {
                return Ok(());
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// The number of items in the next block of an array or map; 0 ends
    /// it.
    #[inline(always)]
    fn block(&mut self) -> Read<u64> {
        let count = self.long()?;
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            self.long()?;
        }
        Ok(count.unsigned_abs())
    }

    #[inline(always)]
    fn enum_index(&mut self, symbols: usize) -> Read<usize> {
        let n = self.int()?;
        usize::try_from(n)
            .ok()
            .filter(|&i| i < symbols)
            .ok_or_else(|| {
                Fault::Bad(format!("enum index {n} is out of range ({symbols} symbols)").into())
            })
    }
}

/// Whether every byte is ASCII, for the short strings of an event: a few
/// (overlapping) word loads OR-ed together. (An OR over the bytes, which
/// the compiler vectorizes, spent most of its time in loop set-up and a
/// tail of 4-byte steps at these lengths.)
#[inline(always)]
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => (bytes[0] | bytes[n / 2] | bytes[n - 1]) < 0x80,
        4..=7 => (half(0) | half(n - 4)) & 0x8080_8080 == 0,
        8..=16 => (word(0) | word(n - 8)) & HIGH == 0,
        _ => {
            let (words, _) = bytes.as_chunks::<8>();
            let all = words
                .iter()
                .fold(word(n - 8), |acc, w| acc | u64::from_le_bytes(*w));
            all & HIGH == 0
        }
    }
}

/// A zigzag-encoded varint's value.
#[inline(always)]
fn zigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

/// The 7-bit groups of a varint of at most eight bytes, little-endian in
/// `word` (bytes past its end zero), put together: the groups are joined
/// in pairs, then quads, then all eight.
#[inline(always)]
fn squeeze(word: u64) -> u64 {
    let x = word & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
}

/// Reads one task event datum written with the bundled schema's canonical
/// form; the whole of `bytes` must be the one record.
pub(super) fn read_task_event(bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
    let mut event = empty_event();
    read_task_event_into(bytes, &mut event, &mut Spares::default())?;
    Ok(event)
}

/// As [`read_task_event`], into `event`: every field is overwritten, its
/// strings and collections keep their allocations (see [`Spares`]). After
/// an error `event` holds a mix of old and new fields.
pub(super) fn read_task_event_into(
    bytes: &[u8],
    event: &mut TaskEvent,
    spares: &mut Spares,
) -> Result<(), DecodeError> {
    let mut c = Cursor::new(bytes);
    let counts = fill(&mut c, event, spares).map_err(|f| c.error(f))?;
    if !c.rest.is_empty() {
        return Err(left_over(c.rest.len()));
    }
    // The same checks, in the same order, as `RawEvent::into_event`.
    counts.check_into(event)?;
    event.validate()?;
    Ok(())
}

/// Bytes after a complete record: almost always a wrong writer schema.
pub(super) fn left_over(n: usize) -> DecodeError {
    DecodeError::Avro(format!(
        "invalid Avro: {n} bytes left over after the record: wrong writer schema?"
    ))
}

/// `field!(c, "name", read)`: the value of the expression `read` (which
/// reads from `c`, `?` and all) as field `name`, so that an error names
/// the field. A macro rather than [`Cursor::field`] and a closure: the
/// closures of the reader below stayed out of line (behind
/// `FnOnce::call_once` shims), a fifth of its time in a profile.
macro_rules! field {
    ($c:ident, $name:literal, $read:expr) => {{
        $c.field = $name;
        let value = $read;
        $c.done = Some($name);
        value
    }};
}

/// `optional!(c, read)`: a `["null", T]` union, `None` or `Some` of the
/// expression `read`. A macro for the same reason as `field!`.
macro_rules! optional {
    ($c:ident, $read:expr) => {
        if $c.present()? {
            Some($read)
        } else {
            None
        }
    };
}

/// Reads the fields into `e` in schema order; the numbers that need a range
/// check are returned as read.
#[inline(always)]
fn fill(c: &mut Cursor<'_, 'static>, e: &mut TaskEvent, spares: &mut Spares) -> Read<Counts> {
    field!(c, "event_id", set(&mut e.event_id, c.str()?));
    field!(c, "agent_id", set(&mut e.agent_id, c.str()?));
    field!(c, "task_id", set(&mut e.task_id, c.str()?));
    e.timestamp = field!(c, "timestamp", c.long()?);
    e.outcome = field!(c, "outcome", OUTCOMES[c.enum_index(OUTCOMES.len())?]);
    let latency_ms = field!(c, "latency_ms", c.long()?);
    let tool_calls = field!(c, "tool_calls", c.count()?);
    let policy_violations = field!(c, "policy_violations", c.count()?);
    e.hallucination = field!(c, "hallucination", optional!(c, c.boolean()?));
    e.intent_met = field!(c, "intent_met", optional!(c, c.boolean()?));
    let delegation_depth = field!(c, "delegation_depth", c.count()?);
    field!(c, "evals", {
        // `blocks` spelled out: its closure stayed out of line.
        let mut n = 0;
        loop {
            let count = c.block()?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                let category = c.str()?;
                let passed = c.boolean()?;
                spares.set_eval(&mut e.evals, n, category, passed);
                n += 1;
            }
        }
        spares.truncate_evals(&mut e.evals, n);
    });
    field!(c, "error_type", {
        let value = optional!(c, c.str()?);
        spares.set_optional(&mut e.error_type, value);
    });
    field!(c, "model", {
        let value = optional!(c, c.str()?);
        spares.set_optional(&mut e.model, value);
    });
    let tokens_in = field!(c, "tokens_in", optional!(c, c.long()?));
    let tokens_out = field!(c, "tokens_out", optional!(c, c.long()?));
    e.cost_usd = field!(c, "cost_usd", optional!(c, c.double()?));
    field!(c, "attributes", {
        // No attributes at all (a single 0, the empty map), common enough
        // to skip the map's walk.
        if c.rest.first() == Some(&0) && e.attributes.is_empty() {
            c.rest = &c.rest[1..];
        } else {
            attributes(c, &mut e.attributes)?;
        }
    });
    Ok(Counts {
        latency_ms,
        tool_calls,
        policy_violations,
        delegation_depth,
        tokens_in,
        tokens_out,
    })
}

/// Overwrites the map's values in place when the datum has exactly the
/// map's keys in the map's (sorted) order, as our encoder writes them and
/// as a producer with a steady set of attributes will; otherwise reads the
/// map again from the start and rebuilds it.
fn attributes(c: &mut Cursor<'_, '_>, map: &mut BTreeMap<String, String>) -> Read<()> {
    let start = c.rest;
    let mut same = true;
    let mut existing = map.iter_mut();
    let read = c.blocks(|c| {
        let key = c.str()?;
        let value = c.str()?;
        match existing.next() {
            Some((k, v)) if same && k == key => set(v, value),
            _ => same = false,
        }
        Ok(())
    });
    if read.is_ok() && same && existing.next().is_none() {
        return Ok(());
    }
    c.rest = start;
    map.clear();
    c.blocks(|c| {
        let key = c.string()?;
        let value = c.string()?;
        map.insert(key, value);
        Ok(())
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
        return Err(Fault::Bad(
            format!("nested deeper than {MAX_DEPTH} levels").into(),
        ));
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
                None => Err(Fault::Bad(
                    format!("the schema names no type {name}").into(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::schema::ResolvedSchema;

    use super::*;
    use crate::decode::{encode_avro_datum, AvroSchemas};
    use crate::event::Eval;

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

    /// Events of every shape, long ones before short ones: what a slot
    /// held before must not show through.
    fn shapes() -> Vec<TaskEvent> {
        let mut long = sample();
        long.intent_met = Some(true);
        long.error_type = Some("ToolError".into());
        long.tokens_in = Some(1_000);
        long.delegation_depth = 3;
        long.task_id = "task-with-a-much-longer-id-than-the-event".into();
        long.evals.push(Eval {
            category: "safety".into(),
            passed: true,
        });
        let mut other_keys = sample();
        other_keys.attributes.clear();
        other_keys.attributes.insert("zone".into(), "b".into());
        let mut same_keys = sample();
        same_keys
            .attributes
            .insert("region".into(), "us-east-1".into());
        let mut one_eval = sample();
        one_eval.evals.truncate(1);
        one_eval.evals[0].passed = false;
        vec![
            long.clone(),
            TaskEvent::new("e-2", "a", 0, Outcome::Success),
            sample(),
            same_keys,
            other_keys,
            long,
            one_eval,
            TaskEvent::new("an-event-id", "b", 7, Outcome::Unavailable),
        ]
    }

    #[test]
    fn a_reused_slot_holds_exactly_what_a_fresh_decode_gives() {
        let mut slot = empty_event();
        let mut spares = Spares::default();
        for round in 0..2 {
            for (i, e) in shapes().iter().enumerate() {
                let bytes = encode_avro_datum(e);
                read_task_event_into(&bytes, &mut slot, &mut spares).unwrap();
                assert_eq!(&slot, e, "round {round}, event {i}");
                assert_eq!(read_task_event(&bytes).unwrap(), slot);
            }
        }
    }

    #[test]
    fn a_slot_after_an_error_is_refilled_whole() {
        let mut slot = empty_event();
        let mut spares = Spares::default();
        let events = shapes();
        for (e, next) in events.iter().zip(events.iter().skip(1)) {
            let bytes = encode_avro_datum(e);
            for end in 0..bytes.len() {
                let fresh = read_task_event(&bytes[..end]).unwrap_err();
                let into = read_task_event_into(&bytes[..end], &mut slot, &mut spares);
                assert_eq!(into.unwrap_err(), fresh, "{end}");
            }
            read_task_event_into(&encode_avro_datum(next), &mut slot, &mut spares).unwrap();
            assert_eq!(&slot, next);
        }
    }

    #[test]
    fn invalid_events_give_the_same_error_in_place() {
        let mut bad = Vec::new();
        let mut e = sample();
        e.policy_violations = 9;
        bad.push(e);
        let mut e = sample();
        e.agent_id.clear();
        bad.push(e);
        let mut e = sample();
        e.latency_ms = crate::event::MAX_LATENCY_MS + 1;
        bad.push(e);
        let mut e = sample();
        e.cost_usd = Some(-1.0);
        bad.push(e);
        let mut e = sample();
        e.evals[1].category.clear();
        bad.push(e);
        let mut slot = sample();
        for e in &bad {
            let bytes = encode_avro_datum(e);
            let fresh = read_task_event(&bytes).unwrap_err();
            assert!(matches!(fresh, DecodeError::Invalid(_)), "{fresh}");
            let into = read_task_event_into(&bytes, &mut slot, &mut Spares::default());
            assert_eq!(into.unwrap_err(), fresh);
        }
        // A negative count (possible in Avro, not in a TaskEvent).
        let mut bytes = encode_avro_datum(&TaskEvent::new("e", "a", 0, Outcome::Success));
        bytes[9] = 1; // tool_calls (byte 9) = zigzag -1
        let fresh = read_task_event(&bytes).unwrap_err();
        assert_eq!(
            fresh.to_string(),
            "field `tool_calls` has value -1: allowed is an integer from 0 to 2147483647"
        );
        let into = read_task_event_into(&bytes, &mut slot, &mut Spares::default());
        assert_eq!(into.unwrap_err(), fresh);
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
    fn ascii_of_every_length_and_position() {
        for n in 0..80 {
            let mut bytes = vec![b'a'; n];
            assert!(is_ascii(&bytes), "{n}");
            for i in 0..n {
                bytes[i] = 0x80;
                assert!(!is_ascii(&bytes), "{n}, {i}");
                bytes[i] = b'a';
            }
        }
    }

    /// Every varint length, at the end of the datum and before more bytes
    /// (the one-byte, eight-byte-word and byte-at-a-time paths of `long`).
    #[test]
    fn varints_of_every_length() {
        let mut values = vec![0, 1, -1, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1];
        for shift in 1..63 {
            let p = 1i64 << shift;
            values.extend([p, p - 1, p + 1, -p, -p - 1, -p + 1]);
        }
        for v in values {
            let mut zz = ((v << 1) ^ (v >> 63)) as u64;
            let mut bytes = Vec::new();
            while zz >= 0x80 {
                bytes.push((zz as u8) | 0x80);
                zz >>= 7;
            }
            bytes.push(zz as u8);
            let len = bytes.len();
            for padding in [0, 1, 7, 9] {
                let mut padded = bytes.clone();
                padded.resize(len + padding, 0xff);
                let mut c = Cursor::new(&padded);
                assert!(matches!(c.long(), Ok(n) if n == v), "{v} + {padding}");
                assert_eq!(c.rest.len(), padding, "{v} + {padding}");
            }
            // Cut short: the bytes run out whichever path reads it.
            let mut c = Cursor::new(&bytes[..len - 1]);
            assert!(matches!(c.long(), Err(Fault::Eof)), "{v} cut");
        }
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

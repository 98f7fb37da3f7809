//! JSON: one object per record, with the Avro schema's field names.

use std::fmt;

use chrono::DateTime;
use serde::de::{Deserialize, Deserializer, Error, Unexpected, Visitor};
use serde_json::error::Category;

use super::{DecodeError, RawEvent};
use crate::event::{InvalidEvent, Outcome, TaskEvent, TimestampMs, MAX_TIMESTAMP};

/// Decodes one JSON object into a validated [`TaskEvent`].
///
/// Required: `event_id`, `agent_id`, `timestamp`, `outcome`, `latency_ms`.
/// `task_id` defaults to `event_id`; `tool_calls`, `policy_violations` and
/// `delegation_depth` to 0; `evals` and `attributes` to empty. Optional fields
/// may be absent or null. Unknown fields are ignored, so producers can add
/// fields before the processor knows them. `timestamp` is epoch milliseconds
/// or an RFC 3339 date-time.
///
/// ```
/// use breakwater::decode::decode_json;
///
/// let e = decode_json(br#"{"event_id": "e-1", "agent_id": "research-agent",
///     "timestamp": "2026-11-28T12:00:00Z", "outcome": "SUCCESS",
///     "latency_ms": 840, "tool_calls": 3}"#).unwrap();
/// assert_eq!(e.timestamp, 1_795_867_200_000);
/// assert_eq!(e.task_id, "e-1");
///
/// let err = decode_json(br#"{"event_id": "e-2", "agent_id": "a", "timestamp": 0,
///     "outcome": "SUCCESS", "latency_ms": -5}"#).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "field `latency_ms` has value -5: allowed is an integer >= 0"
/// );
/// ```
pub fn decode_json(bytes: &[u8]) -> Result<TaskEvent, DecodeError> {
    // One UTF-8 check of the whole record (word-at-a-time over ASCII) is
    // cheaper than serde_json's check of every string. A record that is not
    // UTF-8 goes the checking way, for the same error and position.
    let raw: RawEvent = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
    .map_err(json_error)?;
    Ok(raw.into_event()?)
}

fn json_error(e: serde_json::Error) -> DecodeError {
    let what = match e.classify() {
        Category::Eof => "truncated JSON",
        Category::Data => "JSON does not match the task event schema",
        Category::Syntax | Category::Io => "invalid JSON",
    };
    let full = e.to_string();
    if e.line() == 0 {
        return DecodeError::Json(format!("{what}: {full}"));
    }
    // serde_json appends the position; move it to the front, where a reader
    // of a dead-letter header looks first.
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&position).unwrap_or(&full);
    DecodeError::Json(format!("{what}{position}: {message}"))
}

/// `null` reads as absent; a bad value is kept as an [`InvalidEvent`].
pub(super) fn timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Result<TimestampMs, InvalidEvent>>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<Result<TimestampMs, InvalidEvent>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("epoch milliseconds or an RFC 3339 date-time")
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Ok(v)))
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            let bad = || InvalidEvent::BadTimestamp(v.to_string());
            Ok(Some(i64::try_from(v).map_err(|_| bad())))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Err(InvalidEvent::BadTimestamp(v.to_string()))))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            let ms = DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| InvalidEvent::BadTimestamp(v.to_owned()));
            Ok(Some(ms))
        }
    }
    d.deserialize_any(V)
}

/// A required timestamp outside a task event, for
/// `#[serde(deserialize_with = "breakwater::decode::timestamp_ms")]` (e.g. an
/// accuracy declaration's `published_at`).
///
/// Same rules as a task event's `timestamp`: epoch milliseconds or an RFC
/// 3339 date-time, from 1970-01-01 to 9999-12-31. Unlike there, `null`, an
/// unparseable value or one out of range is an error of the deserializer, so
/// the caller's error names the position (and, with `serde_path_to_error`, the
/// field). Serialization is untouched: the value is epoch milliseconds.
///
/// ```
/// use breakwater::decode::timestamp_ms;
/// let ms = |json: &str| timestamp_ms(&mut serde_json::Deserializer::from_str(json));
/// assert_eq!(ms(r#""2026-11-28T12:00:00+01:00""#).unwrap(), 1_795_863_600_000);
/// assert_eq!(ms("1795863600000").unwrap(), 1_795_863_600_000);
/// assert!(ms(r#""yesterday""#).unwrap_err().to_string().starts_with("bad timestamp"));
/// assert!(ms("null").is_err());
/// assert!(ms("-1").is_err());
/// ```
pub fn timestamp_ms<'de, D: Deserializer<'de>>(d: D) -> Result<TimestampMs, D::Error> {
    const EXPECTED: &str = "epoch milliseconds or an RFC 3339 date-time";
    let ms = timestamp(d)?
        .ok_or_else(|| D::Error::invalid_type(Unexpected::Unit, &EXPECTED))?
        .map_err(D::Error::custom)?;
    if !(0..=MAX_TIMESTAMP).contains(&ms) {
        return Err(D::Error::custom(format!(
            "timestamp {ms} is out of range: allowed is epoch milliseconds \
             from 1970-01-01 to 9999-12-31"
        )));
    }
    Ok(ms)
}

/// `null` reads as absent; an unknown symbol is kept as an [`InvalidEvent`].
pub(super) fn outcome<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Result<Outcome, InvalidEvent>>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<Result<Outcome, InvalidEvent>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("one of SUCCESS, FAILURE, TIMEOUT, UNAVAILABLE")
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            let unknown = || InvalidEvent::UnknownOutcome(v.to_owned());
            Ok(Some(Outcome::parse(v).ok_or_else(unknown)))
        }
    }
    d.deserialize_any(V)
}

/// For collections: `null` reads as empty.
pub(super) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fields: &str) -> String {
        format!(
            r#"{{"event_id": "e-1", "agent_id": "research-agent", "outcome": "SUCCESS",
                "timestamp": 1700000000000, "latency_ms": 840{fields}}}"#
        )
    }

    fn invalid(json: &str) -> InvalidEvent {
        match decode_json(json.as_bytes()) {
            Err(DecodeError::Invalid(e)) => e,
            other => panic!("expected an invalid event, got {other:?}"),
        }
    }

    fn json_error_message(bytes: &[u8]) -> String {
        match decode_json(bytes) {
            Err(e @ DecodeError::Json(_)) => e.to_string(),
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }

    #[test]
    fn full_event_with_epoch_ms() {
        let e = decode_json(
            event(
                r#", "task_id": "t-9", "tool_calls": 4, "policy_violations": 1,
                "hallucination": false, "intent_met": null, "delegation_depth": 2,
                "evals": [{"category": "factual_retrieval", "passed": true}],
                "error_type": null, "model": "gpt-x", "tokens_in": 1200,
                "tokens_out": 300, "cost_usd": 0.012,
                "attributes": {"region": "eu", "tier": "gold"},
                "added_by_a_newer_producer": {"nested": [1, 2]}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(e.timestamp, 1_700_000_000_000);
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(
            (e.latency_ms, e.tool_calls, e.policy_violations),
            (840, 4, 1)
        );
        assert_eq!(e.task_id, "t-9");
        assert_eq!((e.hallucination, e.intent_met), (Some(false), None));
        assert_eq!(e.delegation_depth, 2);
        assert_eq!(e.evals.len(), 1);
        assert!(e.evals[0].passed);
        assert_eq!(e.model.as_deref(), Some("gpt-x"));
        assert_eq!((e.tokens_in, e.tokens_out), (Some(1200), Some(300)));
        assert_eq!(e.cost_usd, Some(0.012));
        assert_eq!(e.attributes["tier"], "gold");
    }

    #[test]
    fn defaults_for_absent_and_null_fields() {
        let e = decode_json(event(r#", "evals": null, "attributes": null"#).as_bytes()).unwrap();
        assert_eq!(e.task_id, "e-1");
        assert_eq!(
            (e.tool_calls, e.policy_violations, e.delegation_depth),
            (0, 0, 0)
        );
        assert!(e.evals.is_empty() && e.attributes.is_empty());
        assert_eq!(
            (e.hallucination, e.tokens_in, e.cost_usd),
            (None, None, None)
        );
    }

    #[test]
    fn rfc3339_timestamps() {
        let at = |ts: &str| {
            let json = event("").replace("1700000000000", &format!("{ts:?}"));
            decode_json(json.as_bytes()).unwrap().timestamp
        };
        assert_eq!(at("2026-11-28T12:00:00Z"), 1_795_867_200_000);
        assert_eq!(at("2026-11-28T12:00:00+01:00"), 1_795_863_600_000);
        assert_eq!(at("2026-11-28T12:00:00.250-00:30"), 1_795_869_000_250);
    }

    #[test]
    fn bad_timestamps() {
        for ts in [
            r#""yesterday""#,
            r#""2026-11-28 noon""#,
            "1.5",
            "18446744073709551615",
        ] {
            let json = event("").replace("1700000000000", ts);
            assert!(
                matches!(invalid(&json), InvalidEvent::BadTimestamp(_)),
                "{ts}"
            );
        }
    }

    #[test]
    fn timestamp_ms_reads_like_an_event_timestamp_but_refuses_what_it_cannot_use() {
        let ms = |json: &str| timestamp_ms(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(ms("1795867200000").unwrap(), 1_795_867_200_000);
        assert_eq!(ms(r#""2026-11-28T12:00:00Z""#).unwrap(), 1_795_867_200_000);
        assert_eq!(
            ms(r#""2026-11-28T12:00:00.250-00:30""#).unwrap(),
            1_795_869_000_250
        );
        for (json, reason) in [
            ("null", "invalid type: null"),
            (r#""yesterday""#, "bad timestamp \"yesterday\""),
            ("1.5", "bad timestamp \"1.5\""),
            ("18446744073709551615", "bad timestamp"),
            ("-1", "timestamp -1 is out of range"),
            (r#""0000-01-01T00:00:00Z""#, "is out of range"),
            ("[1]", "invalid type: sequence"),
        ] {
            let err = ms(json).unwrap_err().to_string();
            assert!(err.contains(reason), "{json}: {err}");
        }
    }

    #[test]
    fn missing_required_fields() {
        for field in ["event_id", "agent_id", "timestamp", "outcome", "latency_ms"] {
            let mut v: serde_json::Value = serde_json::from_str(&event("")).unwrap();
            v.as_object_mut().unwrap().remove(field);
            assert_eq!(invalid(&v.to_string()), InvalidEvent::MissingField(field));
            // null counts as missing, not as a type error
            v[field] = serde_json::Value::Null;
            assert_eq!(invalid(&v.to_string()), InvalidEvent::MissingField(field));
        }
    }

    #[test]
    fn negative_counts_name_the_field() {
        let err = decode_json(event("").replace("840", "-5").as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `latency_ms` has value -5: allowed is an integer >= 0"
        );
        for field in [
            "tool_calls",
            "policy_violations",
            "delegation_depth",
            "tokens_in",
        ] {
            let e = invalid(&event(&format!(r#", "{field}": -1"#)));
            assert!(
                matches!(e, InvalidEvent::OutOfRange { field: f, .. } if f == field),
                "{e:?}"
            );
        }
        let e = invalid(&event(r#", "tool_calls": 2147483648"#));
        assert!(matches!(
            e,
            InvalidEvent::OutOfRange {
                field: "tool_calls",
                ..
            }
        ));
    }

    #[test]
    fn unknown_outcome() {
        let e = invalid(&event("").replace("SUCCESS", "success"));
        assert_eq!(e, InvalidEvent::UnknownOutcome("success".into()));
    }

    #[test]
    fn violations_exceeding_calls() {
        let e = invalid(&event(r#", "tool_calls": 2, "policy_violations": 3"#));
        assert_eq!(
            e,
            InvalidEvent::ViolationsExceedCalls {
                policy_violations: 3,
                tool_calls: 2
            }
        );
    }

    #[test]
    fn domain_validation_runs() {
        let e = invalid(&event("").replace("research-agent", ""));
        assert_eq!(e, InvalidEvent::EmptyField("agent_id"));
    }

    #[test]
    fn garbage_bytes() {
        let msg = json_error_message(b"\xff\x00not json");
        assert!(
            msg.starts_with("invalid JSON at line 1 column 1: "),
            "{msg}"
        );
        let msg = json_error_message(b"[1, 2]");
        assert!(msg.starts_with("JSON does not match"), "{msg}");
        let msg = json_error_message(b"42");
        assert!(msg.contains("expected a task event JSON object"), "{msg}");
    }

    #[test]
    fn truncated_json() {
        let full = event("");
        let msg = json_error_message(&full.as_bytes()[..40]);
        assert!(msg.starts_with("truncated JSON at line"), "{msg}");
        assert!(matches!(decode_json(b""), Err(DecodeError::Json(_))));
    }

    #[test]
    fn wrong_types_are_json_errors_with_position() {
        let msg = json_error_message(event(r#", "tool_calls": "3""#).as_bytes());
        assert!(
            msg.starts_with("JSON does not match the task event schema at line 2"),
            "{msg}"
        );
        assert!(msg.contains("invalid type: string \"3\""), "{msg}");
    }
}

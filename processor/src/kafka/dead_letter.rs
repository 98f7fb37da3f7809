//! Dead letters: an input record that is not a valid task event goes to the
//! dead-letter topic unchanged (same key, same bytes), with headers saying
//! why and where it came from, so it can be inspected and replayed.

use super::codec::INSTANCE_HEADER;
use super::collector::OutRecord;
use crate::decode::DecodeError;

/// Header with the human-readable reason.
pub const REASON_HEADER: &str = "breakwater.dlq.reason";
/// Header with the kind of failure (see [`kind`]).
pub const KIND_HEADER: &str = "breakwater.dlq.kind";
pub const SOURCE_TOPIC_HEADER: &str = "breakwater.dlq.source.topic";
pub const SOURCE_PARTITION_HEADER: &str = "breakwater.dlq.source.partition";
pub const SOURCE_OFFSET_HEADER: &str = "breakwater.dlq.source.offset";

/// Where a refused record was read.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The dead letter for `payload`, refused for `error`.
///
/// ```
/// use breakwater::decode::decode_json;
/// use breakwater::kafka::dead_letter::{dead_letter, Source, REASON_HEADER};
/// let bad = br#"{"event_id":"e1","timestamp":1,"outcome":"SUCCESS"}"#;
/// let err = decode_json(bad).unwrap_err();
/// let src = Source { topic: "agent.task.events", partition: 2, offset: 41 };
/// let r = dead_letter("agent.task.events.dlq", Some(&b"a1"[..]), bad, &err, src, "i1");
/// assert_eq!(r.payload.as_deref(), Some(&bad[..]));
/// let reason = &r.headers.iter().find(|(k, _)| *k == REASON_HEADER).unwrap().1;
/// assert!(String::from_utf8_lossy(reason).contains("agent_id"));
/// ```
pub fn dead_letter(
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    error: &DecodeError,
    source: Source<'_>,
    instance: &str,
) -> OutRecord {
    OutRecord {
        topic: topic.to_string(),
        partition: None,
        // Unchanged, even when it is not UTF-8.
        key: key.map(<[u8]>::to_vec),
        payload: Some(payload.to_vec()),
        headers: vec![
            (REASON_HEADER, error.to_string().into_bytes()),
            (KIND_HEADER, kind(error).as_bytes().to_vec()),
            (SOURCE_TOPIC_HEADER, source.topic.as_bytes().to_vec()),
            (
                SOURCE_PARTITION_HEADER,
                source.partition.to_string().into_bytes(),
            ),
            (SOURCE_OFFSET_HEADER, source.offset.to_string().into_bytes()),
            (INSTANCE_HEADER, instance.as_bytes().to_vec()),
        ],
        source_ms: None,
    }
}

/// A short, stable name for the failure, for the header and metrics labels.
pub fn kind(error: &DecodeError) -> &'static str {
    error.kind()
}

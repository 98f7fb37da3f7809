//! The newest record per key on the compacted output topics (snapshots,
//! breaker state), kept until the broker acknowledges it.
//!
//! On a compacted topic the last record of a key is the one that counts:
//! routers read an agent's breaker state from it, and compaction keeps only
//! it of an agent's snapshots. A record the producer gave up on is sent
//! again when it fails, which can be after a newer record of the same key
//! went out: alone, the resent one would land last and bury the newer
//! state. So when the collector resends a record whose key has a newer
//! one, it sends that newest one again right after it. Consumers already
//! tell repeats apart (per-agent sequence numbers; a restore keeps the
//! highest position).

use std::collections::HashMap;
use std::sync::Arc;

use super::collector::OutRecord;

/// Newest unacknowledged record per (compacted topic, key), by send order.
#[derive(Debug, Default)]
pub struct Newest {
    /// Compacted topic → key → (send sequence number, record).
    /// The record is shared with the producer's handle on it: tracking a
    /// snapshot copies no bytes but its key.
    by_topic: HashMap<String, ByKey>,
}

/// Key → (send sequence number, record) of one compacted topic.
type ByKey = HashMap<Vec<u8>, (u64, Arc<OutRecord>)>;

impl Newest {
    /// Tracks the records of these topics; others pass untracked.
    pub fn new(topics: impl IntoIterator<Item = String>) -> Self {
        Newest {
            by_topic: topics.into_iter().map(|t| (t, HashMap::new())).collect(),
        }
    }

    /// `record` was handed to the producer as send number `seq`.
    pub fn sent(&mut self, seq: u64, record: &Arc<OutRecord>) {
        if let (Some(keys), Some(key)) = (self.by_topic.get_mut(&record.topic), &record.key) {
            match keys.get_mut(key.as_slice()) {
                Some(entry) => *entry = (seq, Arc::clone(record)),
                None => {
                    keys.insert(key.clone(), (seq, Arc::clone(record)));
                }
            }
        }
    }

    /// The broker acknowledged send number `seq`: if it is its key's
    /// newest, nothing is left to protect for that key.
    pub fn acked(&mut self, seq: u64, record: &OutRecord) {
        if let (Some(keys), Some(key)) = (self.by_topic.get_mut(&record.topic), &record.key) {
            if keys.get(key).is_some_and(|(newest, _)| *newest == seq) {
                keys.remove(key);
            }
        }
    }

    /// For a record being sent again (first sent as `seq`): the newer
    /// record of its key, to send right after it.
    pub fn newer_than(&self, seq: u64, record: &OutRecord) -> Option<Arc<OutRecord>> {
        let keys = self.by_topic.get(&record.topic)?;
        let (newest, r) = keys.get(record.key.as_ref()?)?;
        (*newest > seq).then(|| Arc::clone(r))
    }

    /// Keys with a newest record not yet acknowledged.
    #[cfg(test)]
    pub fn keys_tracked(&self) -> usize {
        self.by_topic.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, key: &str, payload: &str) -> Arc<OutRecord> {
        Arc::new(OutRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(payload.as_bytes().to_vec()),
            headers: Vec::new(),
            source_ms: None,
        })
    }

    #[test]
    fn a_resent_record_is_followed_by_its_keys_newest_until_that_is_acknowledged() {
        let mut n = Newest::new(["snapshots".to_string()]);
        let old = record("snapshots", "a", "tasks=1");
        let new = record("snapshots", "a", "tasks=12");
        n.sent(1, &old);
        n.sent(2, &new);
        n.sent(3, &record("snapshots", "b", "other key"));
        assert_eq!(
            n.newer_than(1, &old),
            Some(new.clone()),
            "old resent: new after it"
        );
        assert_eq!(
            n.newer_than(2, &new),
            None,
            "the newest itself has nothing newer"
        );
        n.acked(1, &old);
        assert_eq!(
            n.keys_tracked(),
            2,
            "an older record's ack leaves the newest tracked"
        );
        n.acked(2, &new);
        assert_eq!(n.newer_than(1, &old), None);
        assert_eq!(n.keys_tracked(), 1);
    }

    #[test]
    fn other_topics_and_keyless_records_are_not_tracked() {
        let mut n = Newest::new(["snapshots".to_string()]);
        let alert = record("alerts", "a", "x");
        n.sent(1, &alert);
        n.sent(2, &record("alerts", "a", "y"));
        assert_eq!(
            n.newer_than(1, &alert),
            None,
            "alerts are not compacted: each one counts"
        );
        let mut keyless = OutRecord::clone(&record("snapshots", "a", "x"));
        keyless.key = None;
        n.sent(3, &Arc::new(keyless));
        assert_eq!(n.keys_tracked(), 0);
    }
}

//! Processor-health metrics that need more than a counter increment:
//! consumer lag from librdkafka's statistics, snapshot writes per trigger,
//! and which input record an output is attributed to for the processing
//! latency histogram. Everything here runs per batch, per output or per
//! statistics interval, never per event (see [`super::catalog`] for the
//! help texts).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::statistics::{Partition, Statistics};

use crate::event::{TaskEvent, TimestampMs};
use crate::output::SnapshotTrigger;

/// Records of `p` not yet read by the job: the partition's end (the last
/// stable offset under `read_committed`, librdkafka's default, else the
/// high watermark) minus the consumer's position. The position is the
/// offset after the last record handed to the job, or, before any was,
/// where fetching starts (the committed offset, else the log start, as
/// `auto.offset.reset=earliest`). `None` for a partition that is not being
/// fetched (not assigned, or still looking up its offset) or whose offsets
/// are not known yet. Never negative: a broker whose watermark trails what
/// it already served (Tansu's can) means no lag.
///
/// librdkafka's own `consumer_lag` is not used: it counts from the
/// committed offset, which this job moves only at checkpoints.
pub fn partition_lag(p: &Partition) -> Option<i64> {
    if p.partition < 0 || p.fetch_state != "active" {
        return None;
    }
    let end = [p.ls_offset, p.hi_offset].into_iter().find(|&o| o >= 0)?;
    let position = [p.app_offset, p.committed_offset, p.lo_offset]
        .into_iter()
        .find(|&o| o >= 0)?;
    Some((end - position).max(0))
}

/// Sets the consumer-lag gauge of each assigned partition of `topic`, and
/// the consumer's fetched-but-not-taken record count, from the group
/// consumer's statistics.
pub fn publish_consumer_stats(stats: &Statistics, topic: &str) {
    let Some(t) = stats.topics.get(topic) else {
        return;
    };
    let mut queued = 0;
    for p in t.partitions.values() {
        let Some(lag) = partition_lag(p) else {
            continue;
        };
        queued += p.fetchq_cnt.max(0);
        metrics::gauge!("breakwater_consumer_lag_records", "partition" => p.partition.to_string())
            .set(lag as f64);
    }
    metrics::gauge!("breakwater_consumer_queue_records").set(queued as f64);
}

/// Snapshot records handed to the producer, counted locally and added to
/// the counter once per trigger: a checkpoint may write a snapshot for
/// every agent, and a labelled counter lookup per record would cost more
/// than the count.
#[derive(Default)]
pub struct SnapshotWrites([u64; 3]);

impl SnapshotWrites {
    pub fn add(&mut self, trigger: SnapshotTrigger) {
        let i = match trigger {
            SnapshotTrigger::StatusChange => 0,
            SnapshotTrigger::Periodic => 1,
            SnapshotTrigger::Final => 2,
        };
        self.0[i] += 1;
    }

    /// Adds the counts to `breakwater_snapshot_records_total`.
    pub fn publish(self) {
        for (trigger, n) in [
            SnapshotTrigger::StatusChange,
            SnapshotTrigger::Periodic,
            SnapshotTrigger::Final,
        ]
        .into_iter()
        .zip(self.0)
        .filter(|&(_, n)| n > 0)
        {
            metrics::counter!("breakwater_snapshot_records_total", "trigger" => trigger_label(trigger))
                .increment(n);
        }
    }
}

/// The trigger as it appears in snapshot records (and in the label).
pub fn trigger_label(t: SnapshotTrigger) -> &'static str {
    match t {
        SnapshotTrigger::StatusChange => "STATUS_CHANGE",
        SnapshotTrigger::Periodic => "PERIODIC",
        SnapshotTrigger::Final => "FINAL",
    }
}

/// For each agent of a partition's batch, the Kafka timestamp of its
/// newest record: what a transition or alert of that agent in this batch
/// is attributed to. The engine does not say which event caused an output,
/// and all of an agent's events in a batch are processed in the same turn,
/// so the attribution is off by at most that agent's spread of records in
/// one batch (and errs on the short side). Built only for batches that
/// produced such outputs.
///
/// ```
/// use breakwater::event::{Outcome, TaskEvent};
/// use breakwater::kafka::health::newest_record_by_agent;
///
/// let evs = [
///     TaskEvent::new("e1", "a", 1, Outcome::Success),
///     TaskEvent::new("e2", "b", 2, Outcome::Success),
///     TaskEvent::new("e3", "a", 3, Outcome::Success),
/// ];
/// let by_agent = newest_record_by_agent(&evs, &[Some(10), None, Some(30)], &["a", "b"]);
/// assert_eq!(by_agent.get("a"), Some(&30));
/// assert_eq!(by_agent.get("b"), None, "a record without a timestamp");
/// ```
///
/// Only the agents in `of` are looked for: the few with a transition or an
/// alert in this batch. A map of every agent of a 10 000-event batch cost
/// ~4 % of the job's CPU; a binary search of `of` per record, string
/// compare after string compare, still ~3 % when many agents alert; a
/// hash set of `of` is one hash and probe per record.
pub fn newest_record_by_agent<'a>(
    events: &'a [TaskEvent],
    stamps: &[Option<TimestampMs>],
    of: &[&str],
) -> NewestByAgent<'a> {
    let wanted: HashSet<&str, ahash::RandomState> = of.iter().copied().collect();
    let mut newest = NewestByAgent::with_capacity_and_hasher(of.len(), Default::default());
    for (e, &ts) in events.iter().zip(stamps) {
        if let Some(ts) = ts.filter(|_| wanted.contains(e.agent_id.as_str())) {
            let at = newest.entry(e.agent_id.as_str()).or_insert(ts);
            *at = (*at).max(ts);
        }
    }
    newest
}

/// Per agent, the Kafka timestamp a transition or alert is attributed to
/// (see [`newest_record_by_agent`]).
pub type NewestByAgent<'a> = HashMap<&'a str, TimestampMs, ahash::RandomState>;

/// Seconds from `from_ms` to `to_ms`, zero if the clocks disagree (a
/// producer's clock ahead of ours).
pub fn seconds_between(from_ms: TimestampMs, to_ms: TimestampMs) -> f64 {
    Duration::from_millis(to_ms.saturating_sub(from_ms).max(0) as u64).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fetched partition whose offsets librdkafka does not know yet.
    fn unknown() -> Partition {
        Partition {
            fetch_state: "active".into(),
            app_offset: -1001,
            committed_offset: -1001,
            lo_offset: -1,
            hi_offset: -1,
            ls_offset: -1,
            consumer_lag: -1,
            ..Partition::default()
        }
    }

    #[test]
    fn lag_counts_from_the_position_not_the_last_commit() {
        let p = Partition {
            app_offset: 90,
            committed_offset: 50,
            ls_offset: 100,
            hi_offset: 100,
            consumer_lag: 50,
            ..unknown()
        };
        assert_eq!(partition_lag(&p), Some(10));
    }

    #[test]
    fn before_any_record_the_position_is_the_committed_offset_or_the_log_start() {
        let committed = Partition {
            committed_offset: 40,
            lo_offset: 0,
            hi_offset: 100,
            ..unknown()
        };
        assert_eq!(partition_lag(&committed), Some(60));
        let fresh = Partition {
            lo_offset: 20,
            hi_offset: 100,
            ..unknown()
        };
        assert_eq!(partition_lag(&fresh), Some(80));
    }

    #[test]
    fn unknown_offsets_and_partitions_not_fetched_have_no_lag() {
        let no_end = Partition {
            app_offset: 5,
            ..unknown()
        };
        assert_eq!(partition_lag(&no_end), None);
        let fetched = Partition {
            app_offset: 5,
            hi_offset: 10,
            ..unknown()
        };
        assert_eq!(partition_lag(&fetched), Some(5));
        let stopped = Partition {
            fetch_state: "stopped".into(),
            ..fetched.clone()
        };
        assert_eq!(partition_lag(&stopped), None);
        let internal = Partition {
            partition: -1,
            ..fetched.clone()
        };
        assert_eq!(partition_lag(&internal), None);
        let trailing = Partition {
            app_offset: 12,
            ..fetched
        };
        assert_eq!(partition_lag(&trailing), Some(0), "a watermark behind");
    }

    #[test]
    fn snapshot_writes_are_counted_per_trigger() {
        let mut w = SnapshotWrites::default();
        w.add(SnapshotTrigger::Periodic);
        w.add(SnapshotTrigger::Periodic);
        w.add(SnapshotTrigger::Final);
        assert_eq!(w.0, [0, 2, 1]);
    }
}

//! Stream tasks (Kafka Streams' word): one engine per assigned input
//! partition, restored from the snapshots topic when the group assigns the
//! partition and checkpointed when it is revoked, so an agent's state lives
//! exactly where its events arrive and moves with its partition.
//!
//! The group's rebalance callbacks run inside `poll`, on the job's thread,
//! between batches. They lock the [`Stream`] the job loop works on (the loop
//! never holds it while polling): a revoked task is checkpointed — its
//! changed agents snapshotted, every output acknowledged, its offset
//! committed — before the partition goes, and an assigned one is restored
//! before any of its records is processed.
//!
//! The default assignor is cooperative-sticky: a rebalance moves only the
//! partitions that change owner, and the others keep flowing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::client::Observed;
use super::stream::{clock_of_metadata, Emitted, Stream};
use crate::engine::Engine;
use crate::event::TimestampMs;
use crate::output::Output;

/// One assigned partition's engine and progress.
pub struct StreamTask {
    pub engine: Engine,
    /// Unique per assignment: a record polled before a revoke and
    /// re-assignment must not be applied to the new task.
    pub epoch: u64,
    /// Agents already checked against the declaration and command tables.
    pub known_agents: usize,
    /// One past the last input record processed, if any was.
    pub next_offset: Option<i64>,
    /// The offset last committed by this task.
    pub committed: Option<i64>,
    /// A turn's outputs, and the records made of them, kept from turn to
    /// turn so that their buffers are allocated once: fresh ones each
    /// batch cost ~4 % of the job's CPU in page faults as they grew.
    pub(crate) outputs: Vec<Output>,
    pub(crate) emitted: Emitted,
}

impl StreamTask {
    /// The offset to commit, if it moved since the last commit.
    pub fn commit_due(&self) -> Option<i64> {
        self.next_offset.filter(|&n| Some(n) != self.committed)
    }
}

/// The group member's context: keeps the [`Stream`]'s tasks in step with
/// the group.
pub struct GroupContext {
    pub observed: Observed,
    pub events_topic: String,
    pub stream: Arc<Mutex<Stream>>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.observed.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.observed.error(error, reason);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`, served by
    /// `poll` on the job's thread): the consumer-lag gauges.
    fn stats(&self, statistics: Statistics) {
        super::health::publish_consumer_stats(&statistics, &self.events_topic);
    }
}

impl GroupContext {
    fn partitions(&self, rebalance: &Rebalance<'_>) -> Vec<i32> {
        let tpl = match rebalance {
            Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) => tpl,
            Rebalance::Error(_) => return Vec::new(),
        };
        tpl.elements_for_topic(&self.events_topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl GroupContext {
    /// Each partition's stream time at its committed offset, from the
    /// commit metadata the checkpoints write. A partition never committed
    /// (or whose lookup fails, logged) has none: its engine starts at the
    /// earliest time, as in a first run.
    fn committed_clocks(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &[i32],
    ) -> BTreeMap<i32, TimestampMs> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition(&self.events_topic, p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(30)) {
            Ok(committed) => committed
                .elements_for_topic(&self.events_topic)
                .iter()
                .filter_map(|e| Some((e.partition(), clock_of_metadata(e.metadata())?)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the committed offsets' stream time");
                BTreeMap::new()
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            let partitions = self.partitions(rebalance);
            let lost = consumer.assignment_lost();
            let mut stream = self.stream.lock().expect("stream lock");
            stream.revoke(consumer, &partitions, lost);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => {
                let partitions = self.partitions(rebalance);
                let clocks = self.committed_clocks(consumer, &partitions);
                let mut stream = self.stream.lock().expect("stream lock");
                stream.assign(&partitions, &clocks);
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

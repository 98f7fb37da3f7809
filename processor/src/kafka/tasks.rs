//! Stream tasks (Kafka Streams' word): one engine per assigned input
//! partition, created when the group assigns the partition and dropped when
//! it is revoked, so an agent's state lives exactly where its events arrive.
//!
//! The group's rebalance callbacks run inside `poll`, on the job's thread,
//! between batches: the job flushes and commits at the end of every batch,
//! so a revoked task never holds unacknowledged output or uncommitted work
//! the next owner would miss.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use super::client::Observed;
use crate::config::SloConfig;
use crate::engine::Engine;

/// One assigned partition's engine and progress.
pub struct StreamTask {
    pub engine: Engine,
    /// Unique per assignment: a record polled before a revoke and
    /// re-assignment must not be applied to the new task.
    pub epoch: u64,
    /// Agents already checked against the declaration and command tables.
    pub known_agents: usize,
}

/// The partitions this member owns.
#[derive(Default)]
pub struct Assignment {
    pub tasks: BTreeMap<i32, StreamTask>,
    next_epoch: u64,
    /// Rebalances seen, for logs and tests.
    pub rebalances: u64,
}

impl Assignment {
    /// The epoch of `partition`'s task, if assigned.
    pub fn epoch(&self, partition: i32) -> Option<u64> {
        self.tasks.get(&partition).map(|t| t.epoch)
    }
}

/// The group member's context: keeps [`Assignment`] in step with the group.
pub struct GroupContext {
    pub observed: Observed,
    pub events_topic: String,
    pub slo: Arc<SloConfig>,
    pub assignment: Arc<Mutex<Assignment>>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.observed.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.observed.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut a = self.assignment.lock().expect("assignment lock");
            for e in tpl.elements_for_topic(&self.events_topic) {
                if a.tasks.remove(&e.partition()).is_some() {
                    tracing::info!(partition = e.partition(), "partition revoked; task closed");
                }
            }
            a.rebalances += 1;
            metrics::gauge!("breakwater_assigned_partitions").set(a.tasks.len() as f64);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut a = self.assignment.lock().expect("assignment lock");
                for e in tpl.elements_for_topic(&self.events_topic) {
                    let epoch = a.next_epoch;
                    a.next_epoch += 1;
                    a.tasks.entry(e.partition()).or_insert_with(|| StreamTask {
                        engine: Engine::new(self.slo.clone()),
                        epoch,
                        known_agents: 0,
                    });
                    tracing::info!(partition = e.partition(), "partition assigned; task opened");
                }
                a.rebalances += 1;
                metrics::gauge!("breakwater_assigned_partitions").set(a.tasks.len() as f64);
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

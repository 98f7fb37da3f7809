//! Restoring a partition's agents from the snapshots topic (Kafka Streams'
//! changelog restore).
//!
//! Every budget snapshot the job writes carries, in headers, the agent's
//! whole engine state and the input offset that state reflects, and goes to
//! the snapshots topic's partition with the number of its input partition.
//! So the state of input partition `p` is snapshots partition `p`, read
//! from the beginning: per agent, the state with the highest input offset
//! wins (not the last written, so that a late write from a previous owner
//! that lost the partition can never roll an agent back).
//!
//! Where does the partition end? Kafka's high watermark would say, but not
//! every Kafka-compatible broker reports it right (Tansu does not), so the
//! restorer first writes a marker to the partition — a tombstone under a
//! key unique to this restore — and reads until it sees it. Everything
//! written to the partition before the marker was acknowledged is then
//! known to have been read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::Observed;
use super::collector::{OutRecord, RecordCollector};
use super::JobError;
use crate::config::SloConfig;
use crate::engine::Engine;
use crate::event::TimestampMs;

/// Header with an agent's encoded engine state (see `Engine::export_agent`).
pub const STATE_HEADER: &str = "breakwater.state";
/// Header with the input offset the state reflects, as decimal text.
pub const POSITION_HEADER: &str = "breakwater.position";
/// Header that marks a restore marker (its key says whose).
pub const MARKER_HEADER: &str = "breakwater.restore-marker";
/// Keys of restore markers start with this; no agent id may.
pub const MARKER_KEY_PREFIX: &str = "__breakwater.restore.";

/// One agent's latest restorable state in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAgent {
    pub agent_id: String,
    pub position: i64,
    pub state: Vec<u8>,
}

/// What a restore read, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    pub records: u64,
    pub bytes: u64,
    pub agents: u64,
}

/// Reads partitions of the snapshots topic with its own consumer, which
/// joins no group and commits nothing.
pub struct Restorer {
    consumer: BaseConsumer<Observed>,
    topic: String,
}

impl Restorer {
    pub fn new(consumer: BaseConsumer<Observed>, topic: &str) -> Self {
        Restorer {
            consumer,
            topic: topic.to_string(),
        }
    }

    /// The latest state of every agent saved in each of `partitions`, in
    /// the order the agents first appear there (so a restore is
    /// deterministic). The partitions are read together, so restoring a
    /// whole assignment costs one pass. `marker` makes the marker keys
    /// unique (instance and assignment). `stopped` is checked while
    /// waiting, so a shutdown is not held up.
    pub fn read(
        &self,
        partitions: &[i32],
        marker: &str,
        collector: &mut RecordCollector,
        stopped: &dyn Fn() -> bool,
    ) -> Result<(BTreeMap<i32, Vec<SavedAgent>>, RestoreReport), JobError> {
        let mut tpl = TopicPartitionList::new();
        let mut pending: HashMap<i32, String> = HashMap::new();
        for &p in partitions {
            let key = format!("{MARKER_KEY_PREFIX}{marker}.{p}");
            collector.send(OutRecord {
                topic: self.topic.clone(),
                partition: Some(p),
                key: Some(key.as_bytes().to_vec()),
                payload: None,
                headers: vec![(MARKER_HEADER, b"1".to_vec())],
                source_ms: None,
            })?;
            pending.insert(p, key);
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                .map_err(|e| JobError::kafka("restoring: building the assignment", e))?;
        }
        collector.flush()?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| JobError::kafka("restoring: assigning the snapshots partitions", e))?;
        let result = self.read_to_markers(pending, stopped);
        let _ = self.consumer.unassign();
        result
    }

    fn read_to_markers(
        &self,
        mut pending: HashMap<i32, String>,
        stopped: &dyn Fn() -> bool,
    ) -> Result<(BTreeMap<i32, Vec<SavedAgent>>, RestoreReport), JobError> {
        let mut parts: HashMap<i32, Partition> = HashMap::new();
        let mut report = RestoreReport::default();
        let mut warned = Instant::now();
        while !pending.is_empty() {
            let Some(m) = self.consumer.poll(Duration::from_millis(200)) else {
                if stopped() {
                    return Err(JobError::Aborted);
                }
                if warned.elapsed() > Duration::from_secs(10) {
                    tracing::warn!(
                        topic = %self.topic,
                        records = report.records,
                        waiting_for = ?pending.keys().collect::<Vec<_>>(),
                        "restore still waiting for the end of snapshots partitions"
                    );
                    warned = Instant::now();
                }
                continue;
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "restore: consumer error");
                    continue;
                }
            };
            let p = m.partition();
            if !pending.contains_key(&p) {
                continue; // already read to its marker
            }
            report.records += 1;
            let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if key.starts_with(MARKER_KEY_PREFIX) {
                if pending.get(&p).is_some_and(|k| k == key) {
                    pending.remove(&p);
                }
                continue;
            }
            let part = parts.entry(p).or_default();
            let Some(headers) = m.headers() else {
                if m.payload().is_none() {
                    part.latest.remove(key); // an agent deleted by an operator
                }
                continue;
            };
            let mut state = None;
            let mut position = None;
            for h in headers.iter() {
                match (h.key, h.value) {
                    (STATE_HEADER, Some(v)) => state = Some(v),
                    (POSITION_HEADER, Some(v)) => {
                        position = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok())
                    }
                    _ => {}
                }
            }
            let (Some(state), Some(position)) = (state, position) else {
                continue; // a snapshot for dashboards only
            };
            report.bytes += state.len() as u64;
            part.keep(key, position, state);
        }
        let mut saved = BTreeMap::new();
        for (p, part) in parts {
            let agents = part.into_saved();
            report.agents += agents.len() as u64;
            saved.insert(p, agents);
        }
        Ok((saved, report))
    }
}

/// What one partition's records say so far.
#[derive(Default)]
struct Partition {
    order: Vec<String>,
    latest: HashMap<String, (i64, Vec<u8>)>,
}

impl Partition {
    /// Keeps `state` if it is the agent's highest position so far (the
    /// later record on a tie).
    fn keep(&mut self, key: &str, position: i64, state: &[u8]) {
        match self.latest.get_mut(key) {
            Some((p, s)) => {
                if position >= *p {
                    *p = position;
                    s.clear();
                    s.extend_from_slice(state);
                }
            }
            None => {
                self.order.push(key.to_string());
                self.latest
                    .insert(key.to_string(), (position, state.to_vec()));
            }
        }
    }

    fn into_saved(mut self) -> Vec<SavedAgent> {
        self.order
            .into_iter()
            .filter_map(|id| {
                let (position, state) = self.latest.remove(&id)?;
                Some(SavedAgent {
                    agent_id: id,
                    position,
                    state,
                })
            })
            .collect()
    }
}

/// One engine per partition of `partitions`, with the agents `saved` holds
/// for it restored and its clock at `clocks`' entry (the stream time at
/// the committed offset; the earliest time when there is none); each on
/// its own thread (engines share nothing).
pub fn rebuild(
    slo: &Arc<SloConfig>,
    partitions: &[i32],
    saved: &mut BTreeMap<i32, Vec<SavedAgent>>,
    clocks: &BTreeMap<i32, TimestampMs>,
) -> Vec<(i32, Engine)> {
    let jobs: Vec<(i32, Vec<SavedAgent>, TimestampMs)> = partitions
        .iter()
        .map(|&p| {
            let clock = clocks.get(&p).copied().unwrap_or(TimestampMs::MIN);
            (p, saved.remove(&p).unwrap_or_default(), clock)
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(p, agents, clock)| {
                scope.spawn(move || (p, rebuild_one(slo.clone(), &agents, clock)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("restore thread"))
            .collect()
    })
}

fn rebuild_one(slo: Arc<SloConfig>, agents: &[SavedAgent], clock: TimestampMs) -> Engine {
    let mut engine = Engine::new(slo);
    let states = agents
        .iter()
        .map(|a| (a.agent_id.as_str(), a.state.as_slice()));
    for (agent, e) in engine.rebuild(states, clock) {
        // E.g. its SLO's windows changed since: it starts afresh, and
        // re-reads only what is after the committed offset.
        metrics::counter!("breakwater_restore_failures_total").increment(1);
        tracing::warn!(%agent, error = %e, "agent state not restored; starting it fresh");
    }
    engine
}

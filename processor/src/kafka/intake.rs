//! The intake: each record is decoded the moment the poll loop takes it,
//! straight from the consumer's buffer into an event slot of its task's
//! batch, kept from turn to turn ([`Slots`]), so a good record is never
//! copied, its event allocates nothing once the slots are warm, and the
//! stream lock is not taken per record.
//!
//! Rebalance callbacks run inside `poll` and change the tasks, so a record
//! is filed under the epoch its partition's task had when the record was
//! taken; [`Stream::process`] drops what a revoke made stale. Only a
//! record that does not decode keeps its key and bytes, for the dead-letter
//! topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{BorrowedMessage, Message};

use super::codec::InputDecoder;
use super::job::Control;
use super::stream::Stream;
use super::JobError;
use crate::decode::{empty_event, DecodeError};
use crate::event::{TaskEvent, TimestampMs};

/// One turn's input, grouped by task. Kept from turn to turn, so that its
/// buffers (10 000 events at full load) are allocated once.
#[derive(Default)]
pub struct Batch {
    records: u64,
    /// By (partition, epoch). A few: one per owned partition, and a
    /// partition re-assigned while the batch was taken has two.
    parts: Vec<PartitionBatch>,
}

/// One task's records in a batch.
pub struct PartitionBatch {
    pub partition: i32,
    pub epoch: u64,
    /// Decoded events, with their input offsets and Kafka timestamps.
    pub events: Slots,
    pub offsets: Vec<i64>,
    pub stamps: Vec<Option<TimestampMs>>,
    /// Records that did not decode, for the dead-letter topic.
    pub refused: Vec<Refused>,
    /// One past the last record taken, decoded or not.
    pub next_offset: Option<i64>,
}

/// A batch's events, decoded into slots that outlive the batch: clearing
/// keeps every slot with its strings, so that the next turn decodes into
/// them again rather than allocating (see [`InputDecoder::decode_into`]).
/// Reads as the slice of the events decoded this turn.
///
/// The slots are kept until the batch is dropped at the job's end: each
/// task batch as many as its largest turn, at most `kafka.max_batch`
/// (10 000 events, a few MB).
#[derive(Default)]
pub struct Slots {
    slots: Vec<TaskEvent>,
    len: usize,
}

impl Slots {
    /// The slot after the events: to decode into, then [`Slots::commit`].
    fn next(&mut self) -> &mut TaskEvent {
        if self.len == self.slots.len() {
            self.slots.push(empty_event());
        }
        &mut self.slots[self.len]
    }

    /// Counts the slot [`Slots::next`] gave as an event.
    fn commit(&mut self) {
        debug_assert!(self.len < self.slots.len());
        self.len += 1;
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl std::ops::Deref for Slots {
    type Target = [TaskEvent];

    fn deref(&self) -> &[TaskEvent] {
        &self.slots[..self.len]
    }
}

/// An input record that is not a valid task event, as it was read.
pub struct Refused {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub error: DecodeError,
}

impl Batch {
    /// Records taken, decoded or not.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The tasks' records, empty ones included.
    pub fn parts(&self) -> &[PartitionBatch] {
        &self.parts
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.records = 0;
        for p in &mut self.parts {
            p.events.clear();
            p.offsets.clear();
            p.stamps.clear();
            p.refused.clear();
            p.next_offset = None;
        }
    }

    /// The records of the task (`partition`, `epoch`): its own, or an
    /// empty one re-labelled, or a new one.
    fn part(&mut self, partition: i32, epoch: u64) -> &mut PartitionBatch {
        let i = match self
            .parts
            .iter()
            .position(|p| (p.partition, p.epoch) == (partition, epoch))
        {
            Some(i) => i,
            None => match self.parts.iter().position(|p| p.next_offset.is_none()) {
                Some(i) => {
                    self.parts[i].partition = partition;
                    self.parts[i].epoch = epoch;
                    i
                }
                None => {
                    self.parts.push(PartitionBatch::new(partition, epoch));
                    self.parts.len() - 1
                }
            },
        };
        &mut self.parts[i]
    }
}

impl PartitionBatch {
    fn new(partition: i32, epoch: u64) -> Self {
        PartitionBatch {
            partition,
            epoch,
            events: Slots::default(),
            offsets: Vec::new(),
            stamps: Vec::new(),
            refused: Vec::new(),
            next_offset: None,
        }
    }
}

/// Each task's epoch, as the poll loop sees it without locking the stream
/// for every record: read again only after a rebalance callback changed
/// the tasks (the stream counts those changes).
struct TaskEpochs {
    changes: Arc<AtomicU64>,
    seen: Option<u64>,
    epochs: Vec<(i32, u64)>,
}

impl TaskEpochs {
    /// The epoch of `partition`'s task now, if it has one.
    fn get(&mut self, stream: &Mutex<Stream>, partition: i32) -> Option<u64> {
        let changes = self.changes.load(Ordering::Acquire);
        if self.seen != Some(changes) {
            self.epochs = stream.lock().expect("stream lock").epochs();
            self.seen = Some(changes);
        }
        self.epochs
            .iter()
            .find(|&&(p, _)| p == partition)
            .map(|&(_, epoch)| epoch)
    }
}

/// Decodes records as they are taken and files them in a [`Batch`].
pub struct Intake {
    decoder: InputDecoder,
    epochs: TaskEpochs,
}

impl Intake {
    pub fn new(decoder: InputDecoder, stream: &Mutex<Stream>) -> Self {
        let changes = stream.lock().expect("stream lock").task_changes();
        Intake {
            decoder,
            epochs: TaskEpochs {
                changes,
                seen: None,
                epochs: Vec::new(),
            },
        }
    }

    /// Files `m` under its task, decoded, or refused with its key and bytes.
    /// A record of a partition this instance has no task for is dropped,
    /// as its new owner reads it. Fails only when the job stops while the
    /// schema registry is unreachable.
    pub fn take(
        &mut self,
        m: &BorrowedMessage<'_>,
        stream: &Mutex<Stream>,
        batch: &mut Batch,
        control: &Control,
    ) -> Result<(), JobError> {
        let partition = m.partition();
        let Some(epoch) = self.epochs.get(stream, partition) else {
            return Ok(());
        };
        let payload = m.payload().unwrap_or_default();
        let part = batch.part(partition, epoch);
        let decoded = decode(&mut self.decoder, control, payload, part.events.next())?;
        let offset = m.offset();
        part.next_offset = Some(offset + 1);
        match decoded {
            Ok(()) => {
                part.events.commit();
                part.offsets.push(offset);
                part.stamps.push(m.timestamp().to_millis());
            }
            Err(error) => part.refused.push(Refused {
                offset,
                key: m.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                error,
            }),
        }
        batch.records += 1;
        Ok(())
    }
}

/// Decodes a record; while the schema registry is unreachable (which says
/// nothing about the record) waits and tries again rather than
/// dead-lettering a good record.
fn decode(
    decoder: &mut InputDecoder,
    control: &Control,
    payload: &[u8],
    slot: &mut TaskEvent,
) -> Result<Result<(), DecodeError>, JobError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match decoder.decode_into(payload, slot) {
            Err(e) if e.is_transient() => {
                metrics::counter!("breakwater_registry_unavailable_total").increment(1);
                tracing::warn!(error = %e, "cannot decode yet: retrying in {backoff:?}");
                if control.is_stopped() {
                    return Err(JobError::RegistryUnavailable(e.to_string()));
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            decoded => return Ok(decoded),
        }
    }
}

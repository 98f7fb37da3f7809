//! The stream processing of one instance: its tasks, and the output side
//! they share. The job loop feeds it batches; the rebalance callbacks
//! assign (restore) and revoke (checkpoint) its tasks.
//!
//! A batch's tasks run on the processing threads ([`super::workers`]):
//! each task's events through its engine and what they caused encoded
//! into records ([`RecordEncoder`]), side by side; the records are then
//! handed to the collector on the job's thread, task after task in batch
//! order, as one thread would have. A checkpoint's snapshots are encoded
//! the same way.
//!
//! **Checkpoints make recovery exact without transactions.** Every
//! snapshot interval (and before a partition is revoked, and at a graceful
//! stop) a checkpoint snapshots every changed agent — public snapshot in
//! the value, engine state and input position in headers — and commits
//! each partition's input offset once the broker has acknowledged every
//! output produced up to then (the snapshots included). After a crash the
//! new owner restores the agents from their snapshots and re-reads input
//! from the committed offset; each agent skips the events its restored
//! state already reflects, so every event is counted exactly once. Outputs
//! produced between the last checkpoint and the crash may be produced
//! again: they carry the same sequence numbers.
//!
//! The periodic checkpoint does not stop the processing loop to wait for
//! the acknowledgements: it sends the snapshots, closes an epoch of the
//! collector ([`super::acks`]) and notes the offsets; the loop goes on, and
//! [`Stream::commit_acknowledged`] commits them on the first turn at which
//! the epoch (and every earlier one) is acknowledged. A record the broker
//! does not acknowledge thus holds the commit, not the input. The revoke
//! and the graceful stop wait (`flush`), since they must commit before
//! they return.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::codec::{OutputEncoder, CONTENT_TYPE_HEADER, INSTANCE_HEADER, SCHEMA_HEADER};
use super::collector::{OutRecord, RecordCollector};
use super::dead_letter::{dead_letter, kind, Source};
use super::gauges;
use super::health::{self, NewestByAgent, SnapshotWrites};
use super::intake::{Batch, PartitionBatch, Refused};
use super::job::{Control, JobStatus};
use super::restore::{rebuild, Restorer, POSITION_HEADER, STATE_HEADER};
use super::tables::{TableUpdate, Tables};
use super::tasks::{GroupContext, StreamTask};
use super::workers::Workers;
use super::JobError;
use crate::config::{SeriesBudget, SloConfig, TimerClock, Topics};
use crate::decode::DecodeError;
use crate::engine::query::{AgentStatus, AgentSummary};
use crate::engine::{Clock, Engine, EngineStats};
use crate::event::TimestampMs;
use crate::output::{Output, SnapshotTrigger};

/// How outputs become records: encoded, keyed, given headers. Read-only,
/// so the processing threads share it (see [`super::workers`]).
pub struct RecordEncoder {
    pub topics: Topics,
    pub instance: String,
    pub encoder: OutputEncoder,
}

/// Records made from outputs, waiting to be sent in order.
#[derive(Default)]
pub(crate) struct Emitted {
    records: Vec<OutRecord>,
    snapshots: SnapshotWrites,
}

impl RecordEncoder {
    /// Turns what `engine` (the task of `partition`) produced into records.
    /// Budget snapshots carry the agent's engine state and input position,
    /// and go to the snapshots partition numbered like the input partition.
    /// `newest` gives, per agent, the Kafka timestamp a transition or alert
    /// is attributed to (see [`health::newest_record_by_agent`]).
    fn encode(
        &self,
        partition: i32,
        engine: &Engine,
        out: &mut Vec<Output>,
        newest: Option<&NewestByAgent>,
        into: &mut Emitted,
    ) -> Result<(), JobError> {
        into.records.reserve(out.len());
        for o in out.drain(..) {
            let encoded = self.encoder.encode(&o)?;
            let mut record = OutRecord {
                topic: String::new(),
                partition: None,
                key: Some(o.agent_id().as_bytes().to_vec()),
                payload: Some(encoded.payload),
                headers: vec![
                    (SCHEMA_HEADER, encoded.schema_name.as_bytes().to_vec()),
                    (INSTANCE_HEADER, self.instance.as_bytes().to_vec()),
                    (
                        CONTENT_TYPE_HEADER,
                        encoded.content_type.as_bytes().to_vec(),
                    ),
                ],
                source_ms: None,
            };
            record.topic = match &o {
                Output::BreakerTransition(t) => {
                    tracing::info!(
                        agent = %t.agent_id, seq = t.seq, state = t.state.as_str(),
                        previous = t.previous_state.as_str(), reason = ?t.reason,
                        retry_at = ?t.retry_at, "breaker transition"
                    );
                    record.source_ms = newest.and_then(|m| m.get(t.agent_id.as_str()).copied());
                    self.topics.breaker_state.clone()
                }
                Output::Alert(a) => {
                    tracing::info!(
                        agent = %a.agent_id, seq = a.seq, alert = %a.alert_id, rule = %a.rule,
                        status = ?a.status, severity = ?a.severity, value = ?a.value,
                        threshold = a.threshold, "alert"
                    );
                    record.source_ms = newest.and_then(|m| m.get(a.agent_id.as_str()).copied());
                    self.topics.alerts.clone()
                }
                Output::BudgetSnapshot(s) => {
                    into.snapshots.add(s.trigger);
                    record.partition = Some(partition);
                    if let (Some(state), Some(position)) = (
                        engine.export_agent(&s.agent_id),
                        engine.position(&s.agent_id),
                    ) {
                        record.headers.push((STATE_HEADER, state));
                        record
                            .headers
                            .push((POSITION_HEADER, position.to_string().into_bytes()));
                    }
                    self.topics.snapshots.clone()
                }
            };
            into.records.push(record);
        }
        Ok(())
    }
}

/// Where outputs go: made into records, handed to the collector.
pub struct Sink {
    pub records: RecordEncoder,
    pub collector: RecordCollector,
}

impl Sink {
    /// Encodes and sends what `engine` (the task of `partition`) produced
    /// (see [`RecordEncoder::encode`]).
    fn emit(
        &mut self,
        partition: i32,
        engine: &Engine,
        out: &mut Vec<Output>,
        status: &JobStatus,
        newest: Option<&NewestByAgent>,
    ) -> Result<(), JobError> {
        let mut emitted = Emitted::default();
        self.records
            .encode(partition, engine, out, newest, &mut emitted)?;
        self.send(&mut emitted, status)
    }

    /// Hands encoded records to the collector, in their order, leaving
    /// `emitted` empty (its buffer kept).
    fn send(&mut self, emitted: &mut Emitted, status: &JobStatus) -> Result<(), JobError> {
        JobStatus::add(&status.outputs, emitted.records.len() as u64);
        std::mem::take(&mut emitted.snapshots).publish();
        for record in emitted.records.drain(..) {
            self.collector.send(record)?;
        }
        Ok(())
    }
}

/// The tasks of this instance and everything they write with.
pub struct Stream {
    pub sink: Sink,
    restorer: Restorer,
    control: Control,
    slo: Arc<SloConfig>,
    timers: TimerClock,
    tasks: BTreeMap<i32, StreamTask>,
    /// Run a turn's tasks side by side (`kafka.processing_threads`).
    workers: Workers,
    next_epoch: u64,
    /// Counts changes of `tasks` (assign, revoke), so the poll loop knows
    /// when the epochs it read are out of date.
    task_changes: Arc<AtomicU64>,
    /// Random per run, for restore marker keys.
    run_id: u64,
    out: Vec<Output>,
    /// A commit failed: the next turn tries again, even with no new input.
    commit_failed: bool,
    /// Periodic checkpoints whose outputs are not all acknowledged yet,
    /// oldest first.
    awaiting: VecDeque<PendingCommit>,
    /// An error in a rebalance callback, which cannot return one: the job
    /// loop picks it up after `poll`.
    failed: Option<JobError>,
    bad_input: BadInputWarnings,
}

impl Stream {
    pub fn new(
        sink: Sink,
        restorer: Restorer,
        control: Control,
        slo: Arc<SloConfig>,
        timers: TimerClock,
        workers: Workers,
    ) -> Self {
        Stream {
            sink,
            restorer,
            control,
            slo,
            timers,
            tasks: BTreeMap::new(),
            workers,
            next_epoch: 0,
            task_changes: Arc::default(),
            run_id: random_u64(),
            out: Vec::new(),
            commit_failed: false,
            awaiting: VecDeque::new(),
            failed: None,
            bad_input: BadInputWarnings::default(),
        }
    }

    /// Each assigned partition's task epoch.
    pub fn epochs(&self) -> Vec<(i32, u64)> {
        self.tasks.iter().map(|(&p, t)| (p, t.epoch)).collect()
    }

    /// The count of task changes (assignments and revocations): when it
    /// moves, [`Stream::epochs`] may have changed.
    pub fn task_changes(&self) -> Arc<AtomicU64> {
        self.task_changes.clone()
    }

    fn tasks_changed(&self) {
        self.task_changes.fetch_add(1, Ordering::Release);
    }

    pub fn partitions(&self) -> usize {
        self.tasks.len()
    }

    /// An error a rebalance callback ran into, once.
    pub fn take_failure(&mut self) -> Option<JobError> {
        self.failed.take()
    }

    pub fn commit_failed(&self) -> bool {
        self.commit_failed
    }

    /// Applies table updates, the batch and (on the wall clock) the timers.
    /// Records taken for a task that has been revoked since are dropped:
    /// its next owner reads them again.
    pub fn process(
        &mut self,
        batch: &Batch,
        updates: &[TableUpdate],
        tables: &Tables,
        now: TimestampMs,
    ) -> Result<(), JobError> {
        let wall = self.timers == TimerClock::WallClock;
        for (&p, task) in self.tasks.iter_mut() {
            if wall {
                task.engine.advance_to(now, &mut self.out);
            }
            for u in updates {
                apply(&mut task.engine, u, false, &mut self.out);
            }
            self.sink
                .emit(p, &task.engine, &mut self.out, &self.control.status, None)?;
        }
        if batch.is_empty() {
            return self.sink.collector.poll();
        }
        let status = self.control.status.clone();
        JobStatus::add(&status.records, batch.records());
        metrics::counter!("breakwater_input_records_total").increment(batch.records());
        // A task revoked (and maybe re-assigned) since its records were
        // taken is not current: they are dropped, its next owner reads them.
        let mut tasks: BTreeMap<i32, &mut StreamTask> =
            self.tasks.iter_mut().map(|(&p, t)| (p, t)).collect();
        let mut turns: Vec<TaskTurn> = Vec::with_capacity(tasks.len());
        for part in batch.parts() {
            if tasks
                .get(&part.partition)
                .is_some_and(|t| t.epoch == part.epoch)
            {
                let task = tasks.remove(&part.partition).expect("just found");
                turns.push(TaskTurn {
                    part,
                    task,
                    result: Ok(()),
                });
            }
        }
        // Dead letters go before the engines' outputs, as when decoding
        // happened here.
        for t in &turns {
            for r in &t.part.refused {
                refuse(
                    &mut self.sink,
                    &mut self.bad_input,
                    &status,
                    t.part.partition,
                    r,
                )?;
            }
        }
        let clock = if wall { Clock::Held } else { Clock::EventTime };
        let records = &self.sink.records;
        let parallel = self.workers.each(
            &mut turns,
            |t| t.part.events.len(),
            |t| t.result = t.run(clock, tables, records, &status),
        );
        if parallel {
            JobStatus::add(&status.parallel_turns, 1);
            metrics::counter!("breakwater_parallel_turns_total").increment(1);
        }
        for t in turns {
            t.result?;
            self.sink.send(&mut t.task.emitted, &status)?;
        }
        self.sink.collector.poll()
    }

    /// Snapshots the changed agents of `partitions` (all when `None`),
    /// waits for every output to be acknowledged, then commits their input
    /// offsets. Returns whether the commit went through (a failed one is
    /// retried by the next checkpoint; nothing is lost meanwhile, the
    /// input is only read again). For a revoke and a graceful stop, which
    /// must not return before; the periodic checkpoint is
    /// [`Stream::begin_checkpoint`].
    pub fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        partitions: Option<&[i32]>,
        trigger: SnapshotTrigger,
        now: TimestampMs,
    ) -> Result<bool, JobError> {
        let started = Instant::now();
        let due = self.snapshot(partitions, trigger, now)?;
        self.sink.collector.flush()?;
        let committed = self.commit(consumer, &due)?;
        if committed {
            metrics::histogram!("breakwater_checkpoint_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            if partitions.is_none() {
                // Every output is acknowledged and every task committed at
                // least as far as any waiting checkpoint would.
                self.awaiting.clear();
            }
        }
        Ok(committed)
    }

    /// The periodic checkpoint, without waiting: snapshots the changed
    /// agents of every task, and notes each task's offset to commit once
    /// the broker has acknowledged every output sent up to now (see
    /// [`Stream::commit_acknowledged`]).
    pub fn begin_checkpoint(&mut self, now: TimestampMs) -> Result<(), JobError> {
        let offsets = self.snapshot(None, SnapshotTrigger::Periodic, now)?;
        let mark = self.sink.collector.mark();
        self.awaiting.push_back(PendingCommit {
            mark,
            offsets,
            started: Instant::now(),
        });
        // The retry of a failed commit is this checkpoint.
        self.commit_failed = false;
        Ok(())
    }

    /// Commits the newest waiting checkpoint whose outputs are all
    /// acknowledged (as of the delivery reports served so far), which
    /// covers the older ones. A failed commit makes the next turn
    /// checkpoint again, as [`Stream::checkpoint`] does.
    pub fn commit_acknowledged(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
    ) -> Result<(), JobError> {
        let collector = &self.sink.collector;
        let ready = self
            .awaiting
            .iter()
            .take_while(|c| collector.acked_through(c.mark))
            .count();
        // The older ready ones leave with the drain: the newest covers them.
        let Some(newest) = self.awaiting.drain(..ready).next_back() else {
            return Ok(());
        };
        if self.commit(consumer, &newest.offsets)? {
            metrics::histogram!("breakwater_checkpoint_duration_seconds")
                .record(newest.started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Sends snapshots of the changed agents of `partitions` (all when
    /// `None`), and returns each one's offset to commit, if it moved.
    fn snapshot(
        &mut self,
        partitions: Option<&[i32]>,
        trigger: SnapshotTrigger,
        now: TimestampMs,
    ) -> Result<Vec<DueOffset>, JobError> {
        let wall = self.timers == TimerClock::WallClock;
        let mut turns: Vec<(i32, &mut StreamTask, Result<(), JobError>)> = self
            .tasks
            .iter_mut()
            .filter(|(p, _)| partitions.is_none_or(|ps| ps.contains(p)))
            .map(|(&p, task)| (p, task, Ok(())))
            .collect();
        let records = &self.sink.records;
        // Encoding every changed agent's snapshot is most of a checkpoint.
        self.workers.each(
            &mut turns,
            |(_, task, _)| task.engine.len(),
            |(p, task, result)| {
                let mut out = std::mem::take(&mut task.outputs);
                if wall {
                    task.engine.advance_to(now, &mut out);
                }
                for mut s in task.engine.take_changed_snapshots() {
                    s.trigger = trigger;
                    out.push(Output::BudgetSnapshot(Box::new(s)));
                }
                *result = records.encode(*p, &task.engine, &mut out, None, &mut task.emitted);
                out.clear();
                task.outputs = out;
            },
        );
        let mut due = Vec::new();
        for (p, task, result) in turns {
            result?;
            self.sink.send(&mut task.emitted, &self.control.status)?;
            if let Some(offset) = task.commit_due() {
                due.push(DueOffset {
                    partition: p,
                    task_epoch: task.epoch,
                    offset,
                    // The stream time at this offset, for the engine a
                    // restore rebuilds (Kafka Streams keeps it here too).
                    metadata: clock_metadata(task.engine.clock()),
                });
            }
        }
        Ok(due)
    }

    /// Commits `due` (synchronously) for the tasks that still own their
    /// partition and have not committed that far yet. Returns whether the
    /// commit went through; a failure is counted and makes the next turn
    /// checkpoint again.
    fn commit(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        due: &[DueOffset],
    ) -> Result<bool, JobError> {
        // A partition revoked since (and maybe assigned again) was
        // committed by its revoke; an older offset would move it back.
        let current: Vec<&DueOffset> = due
            .iter()
            .filter(|d| {
                self.tasks.get(&d.partition).is_some_and(|t| {
                    t.epoch == d.task_epoch && t.committed.is_none_or(|c| d.offset > c)
                })
            })
            .collect();
        if current.is_empty() {
            self.commit_failed = false;
            return Ok(true);
        }
        let mut tpl = TopicPartitionList::new();
        for d in &current {
            let mut elem = tpl.add_partition(&self.sink.records.topics.events, d.partition);
            elem.set_offset(Offset::Offset(d.offset))
                .map_err(|e| JobError::kafka("building the commit", e))?;
            elem.set_metadata(d.metadata.as_str());
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for d in current {
                    if let Some(t) = self.tasks.get_mut(&d.partition) {
                        t.committed = Some(d.offset);
                    }
                }
                JobStatus::add(&self.control.status.commits, 1);
                self.commit_failed = false;
                Ok(true)
            }
            Err(e) => {
                metrics::counter!("breakwater_commit_failures_total").increment(1);
                JobStatus::add(&self.control.status.commit_failures, 1);
                tracing::warn!(error = %e, "committing input offsets failed; will retry");
                self.commit_failed = true;
                Ok(false)
            }
        }
    }

    /// The status view of an agent this instance owns.
    pub fn agent_status(&mut self, agent_id: &str) -> Option<AgentStatus> {
        self.tasks
            .values_mut()
            .find_map(|t| t.engine.agent_status(agent_id))
    }

    /// Every agent this instance owns.
    pub fn agent_summaries(&self) -> Vec<AgentSummary> {
        self.tasks
            .values()
            .flat_map(|t| t.engine.agent_summaries())
            .collect()
    }

    pub fn owned_partitions(&self) -> Vec<i32> {
        self.tasks.keys().copied().collect()
    }

    /// Sets the agent SRE gauges from every owned engine (see [`gauges`]).
    /// Every gauge is set on each call, so the exporter's idle timeout only
    /// drops series of agents that left the exported set.
    pub fn publish_gauges(&mut self, budget: &SeriesBudget) {
        metrics::gauge!("breakwater_assigned_partitions").set(self.tasks.len() as f64);
        let ready = if self.control.is_ready() { 1.0 } else { 0.0 };
        metrics::gauge!("breakwater_ready").set(ready);
        let mut engines: Vec<&mut Engine> =
            self.tasks.values_mut().map(|t| &mut t.engine).collect();
        gauges::publish(&mut engines, budget);
    }

    /// The last checkpoint of a graceful stop: retried until it commits or
    /// the job is aborted (second signal or shutdown deadline).
    pub fn final_checkpoint(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        now: impl Fn() -> TimestampMs,
    ) -> Result<(), JobError> {
        let mut backoff = Duration::from_millis(100);
        while !self.checkpoint(consumer, None, SnapshotTrigger::Final, now())? {
            if self.control.is_aborted() {
                return Err(JobError::Uncommitted);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        Ok(())
    }

    /// Partitions leave: checkpoint their tasks, then drop them. When the
    /// assignment was lost (the member was dropped from the group) the
    /// commit fails, but the snapshots still land and keep the next owner
    /// from counting anything twice.
    pub fn revoke(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        partitions: &[i32],
        lost: bool,
    ) {
        if self.failed.is_none() {
            let now = super::job::wall_ms();
            match self.checkpoint(consumer, Some(partitions), SnapshotTrigger::Final, now) {
                Ok(true) => {}
                Ok(false) if lost => tracing::info!(
                    ?partitions,
                    "assignment lost: the next owner re-reads from the last committed offsets"
                ),
                Ok(false) => {}
                Err(e) => self.failed = Some(e),
            }
        }
        for p in partitions {
            if self.tasks.remove(p).is_some() {
                self.tasks_changed();
                tracing::info!(partition = p, "partition revoked; task closed");
            }
        }
        metrics::counter!("breakwater_rebalances_total").increment(1);
        metrics::gauge!("breakwater_assigned_partitions").set(self.tasks.len() as f64);
    }

    /// Partitions arrive: restore their agents from the snapshots topic
    /// before any of their input is processed. The snapshots partitions are
    /// read in one pass; each partition's engine is rebuilt on its own
    /// thread (engines share nothing).
    ///
    /// `clocks` holds each partition's stream time at its committed offset
    /// (from the commit's metadata), where the re-read resumes.
    pub fn assign(&mut self, partitions: &[i32], clocks: &BTreeMap<i32, TimestampMs>) {
        let status = self.control.status.clone();
        let new: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.tasks.contains_key(p))
            .collect();
        if self.failed.is_none() && !new.is_empty() {
            status.ready.store(false, Ordering::Relaxed);
            status.restoring.store(new.len() as u64, Ordering::Relaxed);
            let started = std::time::Instant::now();
            match self.restore(&new, clocks) {
                Ok(tasks) => {
                    let secs = started.elapsed().as_secs_f64();
                    metrics::histogram!("breakwater_restore_duration_seconds").record(secs);
                    for (p, task) in tasks {
                        let agents = task.engine.len();
                        JobStatus::add(&status.restored_agents, agents as u64);
                        let stream_time = clocks.get(&p);
                        tracing::info!(
                            partition = p,
                            agents,
                            ?stream_time,
                            seconds = secs,
                            "partition assigned; agents restored"
                        );
                        self.tasks.insert(p, task);
                        self.tasks_changed();
                    }
                }
                Err(e) => self.failed = Some(e),
            }
            status.restoring.store(0, Ordering::Relaxed);
        }
        status.ready.store(self.failed.is_none(), Ordering::Relaxed);
        metrics::gauge!("breakwater_assigned_partitions").set(self.tasks.len() as f64);
    }

    fn restore(
        &mut self,
        partitions: &[i32],
        clocks: &BTreeMap<i32, TimestampMs>,
    ) -> Result<Vec<(i32, StreamTask)>, JobError> {
        let first_epoch = self.next_epoch;
        self.next_epoch += partitions.len() as u64;
        // Unique across runs too: an instance id (host and pid) repeats,
        // e.g. pid 1 in containers, and an old run's marker must not end
        // this restore early.
        let marker = format!(
            "{}.{:016x}.{first_epoch}",
            self.sink.records.instance, self.run_id
        );
        let control = self.control.clone();
        let (mut saved, report) =
            self.restorer
                .read(partitions, &marker, &mut self.sink.collector, &|| {
                    control.is_aborted()
                })?;
        tracing::debug!(
            records = report.records,
            bytes = report.bytes,
            agents = report.agents,
            "snapshots read"
        );
        let engines = rebuild(&self.slo, partitions, &mut saved, clocks);
        Ok(engines
            .into_iter()
            .enumerate()
            .map(|(i, (p, engine))| {
                let task = StreamTask {
                    known_agents: engine.len(),
                    engine,
                    epoch: first_epoch + i as u64,
                    next_offset: None,
                    committed: None,
                    outputs: Vec::new(),
                    emitted: Emitted::default(),
                };
                (p, task)
            })
            .collect())
    }
}

/// Sends a record that did not decode to the dead-letter topic.
fn refuse(
    sink: &mut Sink,
    warnings: &mut BadInputWarnings,
    status: &JobStatus,
    partition: i32,
    r: &Refused,
) -> Result<(), JobError> {
    let source = Source {
        topic: &sink.records.topics.events,
        partition,
        offset: r.offset,
    };
    metrics::counter!("breakwater_dead_letters_total", "kind" => kind(&r.error)).increment(1);
    JobStatus::add(&status.dead_letters, 1);
    warnings.warn(&r.error, partition, r.offset);
    let rec = dead_letter(
        &sink.records.topics.dead_letter,
        r.key.as_deref(),
        &r.payload,
        &r.error,
        source,
        &sink.records.instance,
    );
    sink.collector.send(rec)
}

/// One current task's share of a turn: run on a processing thread, its
/// records sent afterwards on the job's thread, in batch order.
struct TaskTurn<'a> {
    part: &'a PartitionBatch,
    task: &'a mut StreamTask,
    result: Result<(), JobError>,
}

impl TaskTurn<'_> {
    /// Runs the task's events through its engine and encodes what they
    /// caused into the task's [`Emitted`].
    fn run(
        &mut self,
        clock: Clock,
        tables: &Tables,
        records: &RecordEncoder,
        status: &JobStatus,
    ) -> Result<(), JobError> {
        let (b, task) = (self.part, &mut *self.task);
        if b.next_offset.is_some() {
            task.next_offset = b.next_offset;
        }
        if b.events.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut task.outputs);
        let before = task.engine.stats();
        let counted = task
            .engine
            .process_batch_at(&b.events, &b.offsets, clock, &mut out);
        let after = task.engine.stats();
        let replayed = after.replayed - before.replayed;
        JobStatus::add(&status.events, counted as u64);
        JobStatus::add(&status.replayed, replayed);
        metrics::counter!("breakwater_events_total").increment(counted as u64);
        metrics::counter!("breakwater_events_replayed_total").increment(replayed);
        record_skipped(before, after);
        record_age(&b.stamps);
        new_agents(task, tables, &mut out);
        let newest = newest_of_caused(&out, b);
        let encoded = records.encode(
            b.partition,
            &task.engine,
            &mut out,
            newest.as_ref(),
            &mut task.emitted,
        );
        out.clear();
        task.outputs = out;
        encoded
    }
}

/// A task's input offset a checkpoint commits, with the stream time there.
struct DueOffset {
    partition: i32,
    /// The task it was taken from: a task assigned since must not get it.
    task_epoch: u64,
    offset: i64,
    metadata: String,
}

/// A periodic checkpoint waiting for the acknowledgement of every output
/// sent up to the collector's `mark`.
struct PendingCommit {
    mark: u64,
    offsets: Vec<DueOffset>,
    started: Instant,
}

/// Per agent with a transition or an alert in `out`, the Kafka timestamp
/// of its newest record in `b` (see [`health::newest_record_by_agent`]);
/// `None` when `out` holds neither, as most batches' outputs do.
fn newest_of_caused<'a>(out: &[Output], b: &'a PartitionBatch) -> Option<NewestByAgent<'a>> {
    let caused: Vec<&str> = out
        .iter()
        .filter(|o| !matches!(o, Output::BudgetSnapshot(_)))
        .map(Output::agent_id)
        .collect();
    if caused.is_empty() {
        return None;
    }
    Some(health::newest_record_by_agent(
        &b.events, &b.stamps, &caused,
    ))
}

/// Counts the events the engine did not count, from its stats before and
/// after a batch.
fn record_skipped(before: EngineStats, after: EngineStats) {
    for (reason, n) in [
        ("duplicate", after.duplicates - before.duplicates),
        ("late", after.late - before.late),
    ] {
        if n > 0 {
            metrics::counter!("breakwater_events_skipped_total", "reason" => reason).increment(n);
        }
    }
}

/// The age of a batch's newest record now that it is processed.
fn record_age(stamps: &[Option<TimestampMs>]) {
    if let Some(&newest) = stamps.iter().flatten().max() {
        let secs = health::seconds_between(newest, super::job::wall_ms());
        metrics::histogram!("breakwater_input_age_seconds").record(secs);
    }
}

/// Warnings about bad input, at most one per interval: a producer sending
/// garbage must not flood the logs (every record is still counted and
/// dead-lettered with its reason).
#[derive(Default)]
struct BadInputWarnings {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl BadInputWarnings {
    const EVERY: Duration = Duration::from_secs(10);

    fn warn(&mut self, err: &DecodeError, partition: i32, offset: i64) {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            partition, offset, kind = err.kind(), error = %err,
            suppressed = self.suppressed,
            "input record dead-lettered (one warning per 10 s; `suppressed` counts the others)"
        );
        self.last = Some(std::time::Instant::now());
        self.suppressed = 0;
    }
}

/// A random number from the standard library's per-process hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

const CLOCK_METADATA: &str = "breakwater/1 clock=";

/// The offset commit metadata recording the stream time `clock`.
pub fn clock_metadata(clock: TimestampMs) -> String {
    format!("{CLOCK_METADATA}{clock}")
}

/// The stream time in a commit's metadata, if it is ours.
///
/// ```
/// use breakwater::kafka::stream::{clock_metadata, clock_of_metadata};
/// assert_eq!(clock_of_metadata(&clock_metadata(1_700_000_000_000)), Some(1_700_000_000_000));
/// assert_eq!(clock_of_metadata(""), None);
/// ```
pub fn clock_of_metadata(metadata: &str) -> Option<TimestampMs> {
    metadata.strip_prefix(CLOCK_METADATA)?.parse().ok()
}

/// Applies a table update to `engine` if the agent is local there, or
/// unconditionally when `new_agent` says it just became local.
fn apply(engine: &mut Engine, u: &TableUpdate, new_agent: bool, out: &mut Vec<Output>) {
    let agent = match u {
        TableUpdate::Declared(d) => &d.agent_id,
        TableUpdate::Command(c) => &c.agent_id,
    };
    if !new_agent && !engine.contains(agent) {
        return;
    }
    match u {
        TableUpdate::Declared(d) => {
            if let Err(e) = engine.declare(d.clone(), out) {
                tracing::debug!(agent = %d.agent_id, version = %d.version, "declaration not applied: {e}");
            }
        }
        TableUpdate::Command(c) => {
            if engine.command(&c.agent_id, c.command, out) {
                tracing::info!(agent = %c.agent_id, command = ?c.command, operator = ?c.operator, "operator command applied");
            }
        }
    }
}

/// Gives agents first seen in this batch what the tables hold for them
/// (restored agents already carry it in their state).
fn new_agents(task: &mut StreamTask, tables: &Tables, out: &mut Vec<Output>) {
    let ids: Vec<String> = task
        .engine
        .agent_ids()
        .skip(task.known_agents)
        .map(str::to_string)
        .collect();
    task.known_agents += ids.len();
    for id in ids {
        for u in tables.for_new_agent(&id) {
            apply(&mut task.engine, &u, true, out);
        }
    }
}

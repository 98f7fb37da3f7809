//! The consume → process → produce → commit loop.
//!
//! Each turn: take a batch of records (waiting at most `poll_interval` for
//! the first), decode them (dead-lettering what does not decode), run each
//! partition's events through its engine on the wall clock, fire the
//! engines' timers (so a breaker half-opens on time with no traffic),
//! write periodic snapshots, then wait until the broker has acknowledged
//! every output and only then commit the batch's offsets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseProducer;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{client_config, redacted, ClientHealth, Observed, Role};
use super::codec::{Codec, CONTENT_TYPE_HEADER, INSTANCE_HEADER, SCHEMA_HEADER};
use super::collector::{Delivery, OutRecord, RecordCollector};
use super::dead_letter::{dead_letter, kind, Source};
use super::tables::{TableUpdate, Tables};
use super::tasks::{Assignment, GroupContext, StreamTask};
use super::topics::ensure_topics;
use super::JobError;
use crate::config::{KafkaSettings, SloConfig, Topics};
use crate::decode::DecodeError;
use crate::engine::{Clock, Engine};
use crate::event::{TaskEvent, TimestampMs};
use crate::output::{Output, SnapshotTrigger};

/// Live counters of a running job, for tests, logs and the HTTP API.
#[derive(Debug, Default)]
pub struct JobStatus {
    /// Input records read (good and bad).
    pub records: AtomicU64,
    /// Events counted by an engine.
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub outputs: AtomicU64,
    /// Batches whose offsets were committed.
    pub commits: AtomicU64,
    /// Partitions currently owned.
    pub partitions: AtomicU64,
    /// Errors reported by the Kafka clients.
    pub client_errors: AtomicU64,
}

impl JobStatus {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// How to stop a running job, and what it is doing.
#[derive(Debug, Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    pub status: Arc<JobStatus>,
}

impl Control {
    pub fn new() -> Self {
        Self::default()
    }

    /// Graceful stop: no more fetching; the current batch is finished,
    /// flushed and committed; changed agents get a snapshot.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Give up waiting for acknowledgements (a second signal): nothing more
    /// is committed, so the next run re-reads the input of unacked outputs.
    pub fn abort(&self) {
        self.stop();
        self.abort.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a run did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSummary {
    pub records: u64,
    pub events: u64,
    pub dead_letters: u64,
    pub outputs: u64,
    pub commits: u64,
}

/// One record taken from the consumer, with the task epoch it belongs to.
struct Polled {
    partition: i32,
    offset: i64,
    epoch: u64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The wall clock, the only clock the live job reads.
fn wall_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as TimestampMs)
}

/// A name for this process in headers and client ids: host and pid.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// Runs the job until `control` stops it; returns what it did.
pub fn run(
    settings: &KafkaSettings,
    slo: Arc<SloConfig>,
    control: &Control,
) -> Result<JobSummary, JobError> {
    let instance = instance_id();
    let mut codec = Codec::from_settings(settings)?;
    let health = Arc::new(ClientHealth::default());
    let observed = |name| Observed {
        health: health.clone(),
        name,
    };

    let admin_config = client_config(settings, Role::Admin, &instance);
    let admin: AdminClient<Observed> = create(
        "creating the admin client",
        admin_config.create_with_context(observed("admin")),
    )?;
    let report = ensure_topics(&admin, settings)?;
    tracing::info!(created = ?report.created, existing = ?report.existing, "topics ready");
    for w in &report.warnings {
        tracing::warn!("{w}");
    }

    let producer_config = client_config(settings, Role::Producer, &instance);
    tracing::info!(config = %redacted(&producer_config), "producer");
    let producer: BaseProducer<Delivery> = create(
        "creating the producer",
        producer_config.create_with_context(Delivery::new(observed("producer"))),
    )?;
    let mut collector = RecordCollector::new(producer, control.abort.clone());

    let assignment = Arc::new(Mutex::new(Assignment::default()));
    let group_config = client_config(settings, Role::Group, &instance);
    tracing::info!(config = %redacted(&group_config), "consumer");
    let consumer: BaseConsumer<GroupContext> = create(
        "creating the consumer",
        group_config.create_with_context(GroupContext {
            observed: observed("consumer"),
            events_topic: settings.topics.events.clone(),
            slo: slo.clone(),
            assignment: assignment.clone(),
        }),
    )?;
    create(
        "subscribing",
        consumer.subscribe(&[&settings.topics.events]),
    )?;

    let table_consumer: BaseConsumer<Observed> = create(
        "creating the table consumer",
        client_config(settings, Role::Table, &instance).create_with_context(observed("tables")),
    )?;
    let mut tables = Tables::open(
        table_consumer,
        &settings.topics.declarations,
        &settings.topics.commands,
        wall_ms(),
    )?;

    let mut turn = Turn {
        topics: &settings.topics,
        instance: &instance,
        codec: &mut codec,
        collector: &mut collector,
        control,
        status: &control.status,
        out: Vec::new(),
    };
    let mut next_snapshot = wall_ms() + settings.snapshot_interval_ms;
    let wait = Duration::from_millis(settings.poll_interval_ms as u64);
    while !control.is_stopped() {
        let batch = poll_batch(
            &consumer,
            &assignment,
            settings.max_batch,
            wait,
            &control.status,
        );
        let now = wall_ms();
        let mut a = assignment.lock().expect("assignment lock");
        let owned = a.tasks.len() as u64;
        control.status.partitions.store(owned, Ordering::Relaxed);
        let updates = tables.poll();
        let offsets = turn.process(&mut a, batch, &updates, &tables, now)?;
        if now >= next_snapshot {
            turn.snapshots(&mut a, now, SnapshotTrigger::Periodic)?;
            next_snapshot = now + settings.snapshot_interval_ms;
        }
        drop(a);
        turn.commit(&consumer, offsets, CommitMode::Async)?;
        control
            .status
            .client_errors
            .store(health.errors(), Ordering::Relaxed);
    }

    // Graceful stop: what is pending is flushed; changed agents get a
    // snapshot so a restart loses nothing of their state.
    let mut a = assignment.lock().expect("assignment lock");
    turn.snapshots(&mut a, wall_ms(), SnapshotTrigger::Final)?;
    drop(a);
    turn.commit(&consumer, BTreeMap::new(), CommitMode::Sync)?;
    consumer.unsubscribe();
    let s = &control.status;
    Ok(JobSummary {
        records: JobStatus::get(&s.records),
        events: JobStatus::get(&s.events),
        dead_letters: JobStatus::get(&s.dead_letters),
        outputs: JobStatus::get(&s.outputs),
        commits: JobStatus::get(&s.commits),
    })
}

fn create<T>(what: &'static str, r: rdkafka::error::KafkaResult<T>) -> Result<T, JobError> {
    r.map_err(|e| JobError::kafka(what, e))
}

/// Takes up to `max` records, waiting at most `wait` for the first. Rebalance
/// callbacks run inside `poll`, so each record is tagged with the epoch of
/// its partition's task as of the moment it was taken.
fn poll_batch(
    consumer: &BaseConsumer<GroupContext>,
    assignment: &Mutex<Assignment>,
    max: usize,
    wait: Duration,
    status: &JobStatus,
) -> Vec<Polled> {
    let mut batch = Vec::new();
    let mut timeout = wait;
    while batch.len() < max {
        let Some(result) = consumer.poll(timeout) else {
            break;
        };
        timeout = Duration::ZERO;
        match result {
            Ok(m) => {
                let epoch = assignment
                    .lock()
                    .expect("assignment lock")
                    .epoch(m.partition());
                if let Some(epoch) = epoch {
                    batch.push(Polled {
                        partition: m.partition(),
                        offset: m.offset(),
                        epoch,
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    });
                }
            }
            Err(e) => {
                JobStatus::add(&status.client_errors, 1);
                metrics::counter!("breakwater_consumer_errors_total").increment(1);
                tracing::warn!(error = %e, "consumer error");
                break;
            }
        }
    }
    batch
}

/// Everything one turn of the loop works with.
struct Turn<'a> {
    topics: &'a Topics,
    instance: &'a str,
    codec: &'a mut Codec,
    collector: &'a mut RecordCollector,
    control: &'a Control,
    status: &'a JobStatus,
    out: Vec<Output>,
}

impl Turn<'_> {
    /// Applies table updates, the batch and the timers; returns the next
    /// offset to commit per partition.
    fn process(
        &mut self,
        a: &mut Assignment,
        batch: Vec<Polled>,
        updates: &[TableUpdate],
        tables: &Tables,
        now: TimestampMs,
    ) -> Result<BTreeMap<i32, i64>, JobError> {
        for task in a.tasks.values_mut() {
            task.engine.advance_to(now, &mut self.out);
            for u in updates {
                apply(&mut task.engine, u, false, &mut self.out);
            }
        }
        let mut events: BTreeMap<i32, Vec<TaskEvent>> = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        JobStatus::add(&self.status.records, batch.len() as u64);
        for r in batch {
            if a.epoch(r.partition) != Some(r.epoch) {
                continue; // revoked (and maybe re-assigned) since it was taken
            }
            offsets.insert(r.partition, r.offset + 1);
            match self.decode(&r.payload)? {
                Ok(e) => events.entry(r.partition).or_default().push(e),
                Err(err) => {
                    let source = Source {
                        topic: &self.topics.events,
                        partition: r.partition,
                        offset: r.offset,
                    };
                    metrics::counter!("breakwater_dead_letters_total", "kind" => kind(&err))
                        .increment(1);
                    JobStatus::add(&self.status.dead_letters, 1);
                    let dl = &self.topics.dead_letter;
                    let rec = dead_letter(
                        dl,
                        r.key.as_deref(),
                        &r.payload,
                        &err,
                        source,
                        self.instance,
                    );
                    self.collector.send(rec)?;
                }
            }
        }
        for (p, evs) in events {
            let task = a.tasks.get_mut(&p).expect("checked above");
            let counted = task.engine.process_batch(&evs, Clock::Held, &mut self.out);
            JobStatus::add(&self.status.events, counted as u64);
            metrics::counter!("breakwater_events_total").increment(counted as u64);
            new_agents(task, tables, &mut self.out);
        }
        self.emit()?;
        Ok(offsets)
    }

    /// Decodes a record; while the schema registry is unreachable (which
    /// says nothing about the record) waits and tries again rather than
    /// dead-lettering a good record.
    fn decode(&mut self, payload: &[u8]) -> Result<Result<TaskEvent, DecodeError>, JobError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.codec.decode(payload) {
                Err(e) if e.is_transient() => {
                    metrics::counter!("breakwater_registry_unavailable_total").increment(1);
                    tracing::warn!(error = %e, "cannot decode yet: retrying in {backoff:?}");
                    if self.control.is_stopped() {
                        return Err(JobError::RegistryUnavailable(e.to_string()));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                decoded => return Ok(decoded),
            }
        }
    }

    /// Snapshots of the agents that changed since the last ones.
    fn snapshots(
        &mut self,
        a: &mut Assignment,
        now: TimestampMs,
        _trigger: SnapshotTrigger,
    ) -> Result<(), JobError> {
        for task in a.tasks.values_mut() {
            task.engine.advance_to(now, &mut self.out);
            for s in task.engine.take_changed_snapshots() {
                self.out.push(Output::BudgetSnapshot(Box::new(s)));
            }
        }
        self.emit()
    }

    /// Sends what the engines produced.
    fn emit(&mut self) -> Result<(), JobError> {
        let n = self.out.len() as u64;
        for o in self.out.drain(..) {
            let topic = match &o {
                Output::BreakerTransition(_) => &self.topics.breaker_state,
                Output::Alert(_) => &self.topics.alerts,
                Output::BudgetSnapshot(_) => &self.topics.snapshots,
            };
            let encoded = self.codec.encode(&o)?;
            let record = OutRecord {
                topic: topic.clone(),
                key: Some(o.agent_id().to_string()),
                payload: encoded.payload,
                headers: vec![
                    (SCHEMA_HEADER, encoded.schema_name.as_bytes().to_vec()),
                    (INSTANCE_HEADER, self.instance.as_bytes().to_vec()),
                    (
                        CONTENT_TYPE_HEADER,
                        encoded.content_type.as_bytes().to_vec(),
                    ),
                ],
            };
            self.collector.send(record)?;
        }
        JobStatus::add(&self.status.outputs, n);
        Ok(())
    }

    /// Waits for every output to be acknowledged, then commits `offsets`.
    fn commit(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        offsets: BTreeMap<i32, i64>,
        mode: CommitMode,
    ) -> Result<(), JobError> {
        self.collector.flush()?;
        if offsets.is_empty() {
            if matches!(mode, CommitMode::Sync) {
                // Whatever async commits are still in flight.
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
            }
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, next) in offsets {
            tpl.add_partition_offset(&self.topics.events, p, Offset::Offset(next))
                .map_err(|e| JobError::kafka("building the commit", e))?;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // A partition revoked since: its new owner re-reads the records.
            tracing::warn!(error = %e, "storing offsets");
        }
        match consumer.commit_consumer_state(mode) {
            Ok(()) => JobStatus::add(&self.status.commits, 1),
            // Nothing stored (e.g. all revoked) is not a failure; a failed
            // async commit is covered by the next one.
            Err(e) => tracing::warn!(error = %e, "committing offsets"),
        }
        Ok(())
    }
}

/// Applies a table update to `engine` if the agent is local there, or
/// unconditionally when `new_agent` says it just became local.
fn apply(engine: &mut Engine, u: &TableUpdate, new_agent: bool, out: &mut Vec<Output>) {
    let agent = match u {
        TableUpdate::Declared(d) => &d.agent_id,
        TableUpdate::Command(c) => &c.agent_id,
    };
    if !new_agent && engine.agent(agent).is_none() {
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

/// Gives agents that became local in this batch what the tables hold for them.
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

//! The consume → process → produce → checkpoint loop.
//!
//! Each turn: take a batch of records (waiting at most `poll_interval` for
//! the first), decode them (dead-lettering what does not decode), run each
//! partition's events through its engine (partitions side by side on the
//! processing threads, see [`super::workers`]), fire the engines' timers (on the
//! wall clock, so a breaker half-opens on time with no traffic) and send
//! the outputs. Every `snapshot_interval` a checkpoint snapshots the
//! changed agents and notes the input offsets; they are committed on the
//! first turn at which the broker has acknowledged every output sent up to
//! the checkpoint, and not before (see [`super::stream`]). The loop does
//! not wait for the acknowledgements meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;

use super::client::{client_config, redacted, ClientHealth, Observed, Role};
use super::codec::{Codec, InputDecoder};
use super::collector::{Delivery, RecordCollector};
use super::intake::{Batch, Intake};
use super::restore::Restorer;
use super::stream::{RecordEncoder, Sink, Stream};
use super::tables::Tables;
use super::tasks::GroupContext;
use super::topics::ensure_topics;
use super::workers::Workers;
use super::JobError;
use crate::config::{KafkaSettings, SloConfig};
use crate::event::TimestampMs;

/// Live counters of a running job, for tests, logs and the HTTP API.
#[derive(Debug, Default)]
pub struct JobStatus {
    /// Input records read (good and bad).
    pub records: AtomicU64,
    /// Events counted by an engine.
    pub events: AtomicU64,
    /// Batches whose partitions ran side by side on the processing threads.
    pub parallel_turns: AtomicU64,
    pub dead_letters: AtomicU64,
    pub outputs: AtomicU64,
    /// Batches whose offsets were committed.
    pub commits: AtomicU64,
    /// Partitions currently owned.
    pub partitions: AtomicU64,
    /// Errors reported by the Kafka clients.
    pub client_errors: AtomicU64,
    /// Checkpoint commits that failed (and were retried).
    pub commit_failures: AtomicU64,
    /// Input events skipped because a restored agent already reflected them.
    pub replayed: AtomicU64,
    /// Agents restored from the snapshots topic.
    pub restored_agents: AtomicU64,
    /// Assigned partitions whose agents are still being restored.
    pub restoring: AtomicU64,
    /// Assigned and restored: what `/readyz` reports.
    pub ready: AtomicBool,
}

impl JobStatus {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
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
    /// The running job's agents, for the HTTP API.
    pub query: super::query::StateQuery,
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

    pub fn is_aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Whether the instance owns its partitions with their state restored.
    pub fn is_ready(&self) -> bool {
        self.status.ready.load(Ordering::Relaxed)
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

/// The wall clock, the only clock the live job reads.
pub(crate) fn wall_ms() -> TimestampMs {
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
    let Codec { input, output } = Codec::from_settings(settings)?;
    let health = Arc::new(ClientHealth::default());
    let observed = |name| {
        // Present at zero from the start, so dashboards and rates see it.
        metrics::counter!("breakwater_kafka_client_errors_total", "client" => name).increment(0);
        Observed {
            health: health.clone(),
            name,
        }
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
    // The admin client lives on, until the job returns, to answer "who owns
    // this agent?" (the HTTP 404).
    let directory = Arc::new(super::owners::Directory::new(admin, settings));
    control.query.attach_locator(directory.locator());

    let producer_config = client_config(settings, Role::Producer, &instance);
    tracing::info!(config = %redacted(&producer_config), "producer");
    let producer: BaseProducer<Delivery> = create(
        "creating the producer",
        producer_config.create_with_context(Delivery::new(observed("producer"))),
    )?;
    let restore_consumer: BaseConsumer<Observed> = create(
        "creating the restore consumer",
        client_config(settings, Role::Restore, &instance).create_with_context(observed("restore")),
    )?;
    let sink = Sink {
        records: RecordEncoder {
            topics: settings.topics.clone(),
            instance: instance.clone(),
            encoder: output,
        },
        collector: RecordCollector::new(producer, control.abort.clone()).latest_wins([
            settings.topics.snapshots.clone(),
            settings.topics.breaker_state.clone(),
        ]),
    };
    let workers = Workers::new(settings.processing_threads)?;
    tracing::info!(threads = workers.threads(), "processing threads");
    let stream = Arc::new(Mutex::new(Stream::new(
        sink,
        Restorer::new(restore_consumer, &settings.topics.snapshots),
        control.clone(),
        slo,
        settings.timers,
        workers,
    )));

    control.query.attach(stream.clone());
    let group_config = client_config(settings, Role::Group, &instance);
    tracing::info!(config = %redacted(&group_config), "consumer");
    let consumer: BaseConsumer<GroupContext> = create(
        "creating the consumer",
        group_config.create_with_context(GroupContext {
            observed: observed("consumer"),
            events_topic: settings.topics.events.clone(),
            stream: stream.clone(),
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

    let result = run_loop(
        settings,
        &consumer,
        &stream,
        input,
        &mut tables,
        &health,
        control,
    );
    // Leaving the group runs the revoke callback, which checkpoints again
    // (a no-op after the final checkpoint) and must find the stream unlocked.
    consumer.unsubscribe();
    result?;
    let s = &control.status;
    Ok(JobSummary {
        records: JobStatus::get(&s.records),
        events: JobStatus::get(&s.events),
        dead_letters: JobStatus::get(&s.dead_letters),
        outputs: JobStatus::get(&s.outputs),
        commits: JobStatus::get(&s.commits),
    })
}

fn run_loop(
    settings: &KafkaSettings,
    consumer: &BaseConsumer<GroupContext>,
    stream: &Mutex<Stream>,
    decoder: InputDecoder,
    tables: &mut Tables,
    health: &ClientHealth,
    control: &Control,
) -> Result<(), JobError> {
    let mut next_checkpoint = wall_ms() + settings.snapshot_interval_ms;
    let polling = Polling {
        consumer,
        stream,
        max: settings.max_batch,
        wait: Duration::from_millis(settings.poll_interval_ms as u64),
        health,
        control,
    };
    let mut intake = Intake::new(decoder, stream);
    let mut batch = Batch::default();
    while !control.is_stopped() {
        polling.poll_batch(&mut intake, &mut batch)?;
        let now = wall_ms();
        let mut s = stream.lock().expect("stream lock");
        if let Some(e) = s.take_failure() {
            return Err(e);
        }
        control
            .status
            .partitions
            .store(s.partitions() as u64, Ordering::Relaxed);
        let updates = tables.poll();
        s.process(&batch, &updates, tables, now)?;
        // Every turn: a call into librdkafka, no request, and the queue
        // that grows first when the broker is slow to acknowledge outputs.
        let queued = s.sink.collector.in_flight();
        metrics::gauge!("breakwater_producer_queue_records").set(f64::from(queued));
        if now >= next_checkpoint || s.commit_failed() {
            s.begin_checkpoint(now)?;
            s.publish_gauges(&settings.series);
            next_checkpoint = now + settings.snapshot_interval_ms;
        }
        s.commit_acknowledged(consumer)?;
        control
            .status
            .client_errors
            .store(health.errors(), Ordering::Relaxed);
    }
    // Graceful stop: changed agents get a snapshot, every output is
    // acknowledged and the input is committed, or the job says it is not.
    let mut s = stream.lock().expect("stream lock");
    s.final_checkpoint(consumer, wall_ms)?;
    control
        .status
        .client_errors
        .store(health.errors(), Ordering::Relaxed);
    Ok(())
}

fn create<T>(what: &'static str, r: rdkafka::error::KafkaResult<T>) -> Result<T, JobError> {
    r.map_err(|e| JobError::kafka(what, e))
}

/// What the poll loop reads from and reports to.
struct Polling<'a> {
    consumer: &'a BaseConsumer<GroupContext>,
    stream: &'a Mutex<Stream>,
    max: usize,
    wait: Duration,
    health: &'a ClientHealth,
    control: &'a Control,
}

impl Polling<'_> {
    /// Refills `batch` with up to `max` records, waiting at most `wait` for
    /// the first, each decoded as it is taken (see [`super::intake`]).
    /// Rebalance callbacks run inside `poll` and lock the stream, so it is
    /// not held here.
    fn poll_batch(&self, intake: &mut Intake, batch: &mut Batch) -> Result<(), JobError> {
        batch.clear();
        let mut taken = 0;
        let mut timeout = self.wait;
        // From the first record on: the wait for it is not decoding.
        let mut decoding: Option<Instant> = None;
        while taken < self.max {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            match result {
                Ok(m) => {
                    decoding.get_or_insert_with(Instant::now);
                    intake.take(&m, self.stream, batch, self.control)?;
                    taken += 1;
                }
                Err(e) => {
                    self.health.record();
                    metrics::counter!("breakwater_consumer_errors_total").increment(1);
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
            }
        }
        if let Some(started) = decoding {
            metrics::histogram!("breakwater_decode_duration_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

//! `breakwater run` in-process for the job tests: [`RunningJob`] runs the
//! job on its own thread against a broker (Tansu or a [`mock_cluster`]),
//! stopped gracefully or aborted on drop; [`Watch`] reads an output topic
//! until a condition holds.
//!
//! [`mock_cluster`]: super::kafka::mock_cluster

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use breakwater::config::{KafkaSettings, SloConfig};
use breakwater::kafka::{self, Control, JobError, JobStatus, JobSummary};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::kafka::{self as harness, Record, TestConsumer};

/// Bound on every wait for the job or an output.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A job on its own thread, stopped gracefully by [`RunningJob::stop`], or
/// aborted on drop.
pub struct RunningJob {
    pub control: Control,
    handle: Option<JoinHandle<Result<JobSummary, JobError>>>,
    pub settings: KafkaSettings,
}

impl RunningJob {
    /// Starts a job on `bootstrap` with the SLO config `slo_yaml` and waits
    /// until it owns input partitions.
    pub fn start(bootstrap: &str, slo_yaml: &str) -> RunningJob {
        Self::start_with(bootstrap, slo_yaml, "")
    }

    /// `extra_kafka`: more keys of the `kafka:` section, as YAML lines
    /// (see [`job_settings`]).
    pub fn start_with(bootstrap: &str, slo_yaml: &str, extra_kafka: &str) -> RunningJob {
        Self::start_settings(job_settings(bootstrap, extra_kafka), slo_yaml)
    }

    /// [`RunningJob::spawn`], then waits until the job owns input partitions.
    pub fn start_settings(settings: KafkaSettings, slo_yaml: &str) -> RunningJob {
        let job = Self::spawn(settings, slo_yaml);
        job.wait_until("the job owns the input partitions", |s| {
            JobStatus::get(&s.partitions) > 0
        });
        job
    }

    /// Runs the job with `settings` and the SLO config `slo_yaml`, without
    /// waiting for anything.
    pub fn spawn(mut settings: KafkaSettings, slo_yaml: &str) -> RunningJob {
        let slo = SloConfig::from_yaml_str(slo_yaml).expect("test SLO config");
        // librdkafka's debug contexts for the job's clients too (their lines
        // reach the job's log: `RUST_LOG=debug`).
        if let Ok(debug) = std::env::var("BREAKWATER_KAFKA_DEBUG") {
            settings.properties.insert("debug".into(), debug);
        }
        let control = Control::new();
        let (s, c) = (settings.clone(), control.clone());
        let handle = std::thread::spawn(move || kafka::run(&s, Arc::new(slo), &c));
        RunningJob {
            control,
            handle: Some(handle),
            settings,
        }
    }

    pub fn status(&self) -> &JobStatus {
        &self.control.status
    }

    /// Waits for a condition on the job's counters; panics if the job
    /// stops first (see [`RunningJob::join`] for why) or at [`TIMEOUT`].
    pub fn wait_until(&self, what: &str, cond: impl Fn(&JobStatus) -> bool) {
        self.wait_until_for(what, TIMEOUT, cond)
    }

    /// [`RunningJob::wait_until`] with another bound.
    pub fn wait_until_for(&self, what: &str, timeout: Duration, cond: impl Fn(&JobStatus) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self.status()) {
            if let Some(h) = &self.handle {
                assert!(!h.is_finished(), "the job stopped while waiting for {what}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the job's thread has returned.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The job's result once it has stopped by itself (e.g. failed to start).
    pub fn join(mut self) -> Result<JobSummary, JobError> {
        let h = self.handle.take().unwrap();
        h.join().expect("job thread")
    }

    /// Graceful stop; panics if the job failed.
    pub fn stop(mut self) -> JobSummary {
        self.control.stop();
        let h = self.handle.take().unwrap();
        h.join().expect("job thread").expect("job result")
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        self.control.abort();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The job's settings for `bootstrap`: a group of its own, 3 partitions,
/// snapshots every second, and the session timeout that suits the broker
/// (see [`harness::consumer_config`]): 2000 ms on Tansu, 6000 ms on a mock
/// cluster, whose groups need more than 3000 ms. `extra_kafka`: more keys
/// of the `kafka:` section, as YAML lines.
pub fn job_settings(bootstrap: &str, extra_kafka: &str) -> KafkaSettings {
    let session_timeout_ms = if harness::is_mock(bootstrap) {
        6000
    } else {
        2000
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(&format!(
        r#"
brokers: "{bootstrap}"
group_id: {}
partitions: 3
snapshot_interval: 1s
consumer_properties:
  session.timeout.ms: {session_timeout_ms}
  heartbeat.interval.ms: 500
{extra_kafka}
"#,
        harness::unique_group("job")
    ))
    .unwrap();
    KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap()
}

/// Reads a topic from the beginning, keeping what it has seen, until a
/// condition on everything seen so far holds.
pub struct Watch {
    consumer: TestConsumer,
    pub seen: Vec<Record>,
}

impl Watch {
    pub fn new(bootstrap: &str, topic: &str) -> Watch {
        Watch {
            consumer: assigned(bootstrap, topic),
            seen: Vec::new(),
        }
    }

    pub fn until(&mut self, what: &str, cond: impl Fn(&[Record]) -> bool) -> &[Record] {
        self.until_for(what, TIMEOUT, cond)
    }

    /// [`Watch::until`] with another bound.
    pub fn until_for(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&[Record]) -> bool,
    ) -> &[Record] {
        let deadline = Instant::now() + timeout;
        while !cond(&self.seen) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {} records: {:?}",
                self.seen.len(),
                self.seen
                    .iter()
                    .map(Record::payload_str)
                    .collect::<Vec<_>>()
            );
            poll_into(&self.consumer, &mut self.seen);
        }
        &self.seen
    }
}

/// Polls once (up to 100 ms) and keeps the record, if any; consumer errors
/// (a broker going away) are skipped: the consumer retries by itself.
pub fn poll_into<C: ConsumerContext>(c: &BaseConsumer<C>, seen: &mut Vec<Record>) {
    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
        seen.push(Record {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            partition: m.partition(),
            offset: m.offset(),
        });
    }
}

/// A record's JSON value; `null` for a tombstone (the snapshots topic holds
/// restore markers, see processor/src/kafka/restore.rs).
pub fn json_of(r: &Record) -> Value {
    match r.payload.as_deref() {
        None => Value::Null,
        Some(p) => serde_json::from_slice(p).expect("JSON output"),
    }
}

/// A JSON task event keyed by its agent: `(key, value)`.
pub fn event(id: &str, agent: &str, t: i64, outcome: &str) -> (String, String) {
    let e = json!({
        "event_id": id, "agent_id": agent, "timestamp": t, "outcome": outcome,
        "latency_ms": 1200, "tool_calls": 3,
    });
    (agent.to_string(), e.to_string())
}

/// Per partition of `topic`: the offset `group` has committed (`None` if
/// nothing) and the end offset (high watermark).
pub fn committed_and_end(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Vec<(i32, Option<i64>, i64)> {
    let consumer: TestConsumer = harness::consumer_config(bootstrap, group)
        .create_with_context(harness::TestContext)
        .expect("consumer");
    let partitions = partitions(&consumer, topic);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    (0..partitions)
        .map(|p| {
            let (_, end) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks");
            let offset = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            (p, offset, end)
        })
        .collect()
}

/// A consumer of every partition of `topic` from the beginning, in no
/// group (assigned, so there is no group join to wait for: a mock
/// cluster's first join takes 3 s).
pub fn assigned(bootstrap: &str, topic: &str) -> TestConsumer {
    let consumer: TestConsumer =
        harness::consumer_config(bootstrap, &harness::unique_group("assigned"))
            .create_with_context(harness::TestContext)
            .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions(&consumer, topic) {
        // Offset 0, not `Beginning`: every test topic is fresh and never
        // truncated, and once (1 run in many) a read from `Beginning` on
        // Tansu started a partition at offset 7, its first batch unseen.
        tpl.add_partition_offset(topic, p, Offset::Offset(0))
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

fn partitions<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str) -> i32 {
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len()) as i32
}

/// Every record of `topic`, read from the beginning up to its end offsets
/// as they are now. Not on Tansu, whose high watermarks lag.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let total: i64 = committed_and_end(bootstrap, &harness::unique_group("ends"), topic)
        .iter()
        .map(|(_, _, end)| end)
        .sum();
    harness::poll_records(&assigned(bootstrap, topic), total as usize, TIMEOUT)
}

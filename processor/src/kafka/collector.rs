//! The record collector (Kafka Streams' word): every output record goes
//! through it. The job commits input offsets only once the broker has
//! acknowledged every output produced before them, never before: that is
//! what makes delivery at-least-once. Two ways to know:
//! [`RecordCollector::flush`] blocks until every record sent so far is
//! acknowledged (a revoke, a graceful stop); [`RecordCollector::mark`]
//! closes an epoch and [`RecordCollector::acked_through`] says, without
//! waiting, when all of it is (the periodic checkpoint, see
//! [`super::acks`]). A record the producer gives up on (after librdkafka's
//! own retries), or refuses at once for a reason that may pass (e.g. a
//! topic the broker just denied), is sent again, in its epoch, until it is
//! acknowledged or the job is stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::acks::Unacked;
use super::client::Observed;
use super::newest::Newest;
use super::JobError;

/// One record to publish, owned so it can be sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub topic: String,
    /// Set for records that must land in one partition (an agent's
    /// snapshot goes to its input partition's number, so a restore reads
    /// one partition); otherwise the producer's partitioner picks by key.
    pub partition: Option<i32>,
    /// The agent id for outputs; a dead letter keeps its input's key, if any.
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// For a breaker transition or alert: the Kafka timestamp (epoch ms)
    /// of the input record it is attributed to, so its acknowledgement
    /// records the processing latency (see [`super::health`]).
    pub source_ms: Option<i64>,
}

/// A record handed to the producer, with the epoch it was first sent in
/// and its send number (see [`super::newest`]). The record is shared with
/// the newest-record table and borrowed by the producer call, so a
/// checkpoint's thousands of snapshots are not copied on their way out
/// (librdkafka makes the one copy it needs).
pub struct Tracked {
    record: Arc<OutRecord>,
    epoch: u64,
    seq: u64,
}

/// Producer context: counts acknowledgements and keeps failed records.
pub struct Delivery {
    observed: Observed,
    failed: Mutex<Vec<(Tracked, KafkaError)>>,
    unacked: Mutex<Unacked>,
    newest: Mutex<Newest>,
}

impl ClientContext for Delivery {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.observed.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.observed.error(error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<Tracked>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracked: Box<Tracked>) {
        let record = &tracked.record;
        match result {
            Ok(_) => {
                self.unacked.lock().expect("acks lock").acked(tracked.epoch);
                (self.newest.lock().expect("newest lock")).acked(tracked.seq, record);
                metrics::counter!("breakwater_output_records_total", "topic" => record.topic.clone())
                    .increment(1);
                if let Some(from) = record.source_ms {
                    let secs = super::health::seconds_between(from, super::job::wall_ms());
                    metrics::histogram!("breakwater_processing_latency_seconds").record(secs);
                }
            }
            Err((e, _)) => {
                metrics::counter!("breakwater_output_delivery_failures_total").increment(1);
                self.failed
                    .lock()
                    .expect("delivery lock")
                    .push((*tracked, e.clone()));
            }
        }
    }
}

impl Delivery {
    pub fn new(observed: Observed) -> Self {
        Delivery {
            observed,
            failed: Mutex::new(Vec::new()),
            unacked: Mutex::default(),
            newest: Mutex::default(),
        }
    }

    fn take_failed(&self) -> Vec<(Tracked, KafkaError)> {
        std::mem::take(&mut *self.failed.lock().expect("delivery lock"))
    }
}

/// Sends output records and waits for their acknowledgement.
pub struct RecordCollector {
    producer: BaseProducer<Delivery>,
    /// Set when the job must give up waiting (a second signal, or the
    /// shutdown deadline): records not yet acknowledged are then left to
    /// the next run, which re-reads their input because nothing was committed.
    abort: Arc<AtomicBool>,
    /// The epoch records sent now belong to (see [`super::acks`]).
    epoch: u64,
    /// Send number of the next record (see [`super::newest`]).
    seq: u64,
}

/// Time between attempts to resend records the producer gave up on.
const RESEND_BACKOFF: Duration = Duration::from_millis(500);

impl RecordCollector {
    pub fn new(producer: BaseProducer<Delivery>, abort: Arc<AtomicBool>) -> Self {
        RecordCollector {
            producer,
            abort,
            epoch: 0,
            seq: 0,
        }
    }

    /// On these (compacted) topics the last record of a key must be its
    /// newest: a record sent again after a newer one of its key is
    /// followed by that newer one (see [`super::newest`]).
    pub fn latest_wins(self, topics: impl IntoIterator<Item = String>) -> Self {
        *self.producer.context().newest.lock().expect("newest lock") = Newest::new(topics);
        self
    }

    pub fn producer(&self) -> &BaseProducer<Delivery> {
        &self.producer
    }

    /// Queues a record in the current epoch; waits (serving delivery
    /// reports) while the producer's queue is full.
    pub fn send(&mut self, record: OutRecord) -> Result<(), JobError> {
        self.send_shared(Arc::new(record))
    }

    fn send_shared(&mut self, record: Arc<OutRecord>) -> Result<(), JobError> {
        self.unacked().sent(self.epoch);
        self.seq += 1;
        let context = self.producer.context();
        (context.newest.lock().expect("newest lock")).sent(self.seq, &record);
        self.enqueue(Box::new(Tracked {
            record,
            epoch: self.epoch,
            seq: self.seq,
        }))
    }

    /// Sends again a record the producer gave up on, in its epoch, and
    /// after it its key's newest record if that is newer.
    fn resend(&mut self, tracked: Tracked) -> Result<(), JobError> {
        let context = self.producer.context();
        let newer =
            (context.newest.lock().expect("newest lock")).newer_than(tracked.seq, &tracked.record);
        self.enqueue(Box::new(tracked))?;
        match newer {
            Some(record) => self.send_shared(record),
            None => Ok(()),
        }
    }

    fn unacked(&self) -> std::sync::MutexGuard<'_, Unacked> {
        self.producer.context().unacked.lock().expect("acks lock")
    }

    /// Hands a record (new, or sent again in its epoch) to the producer.
    fn enqueue(&mut self, mut tracked: Box<Tracked>) -> Result<(), JobError> {
        loop {
            // Borrowed from this handle while `tracked` moves into the
            // producer call as its delivery opaque.
            let record = Arc::clone(&tracked.record);
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut base = BaseRecord::with_opaque_to(&record.topic, tracked).headers(headers);
            if let Some(p) = &record.payload {
                base = base.payload(p);
            }
            if let Some(k) = &record.key {
                base = base.key(k.as_slice());
            }
            if let Some(p) = record.partition {
                base = base.partition(p);
            }
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    tracked = rec.delivery_opaque;
                    self.producer.poll(Duration::from_millis(50));
                    if self.abort.load(Ordering::Relaxed) {
                        return Err(JobError::Aborted);
                    }
                }
                Err((e, rec)) if can_succeed_later(&e) => {
                    // Refused before it left, e.g. for a topic the broker
                    // just denied (librdkafka remembers that until its next
                    // metadata refresh): like a record the producer gave up
                    // on, kept for `flush` to send again.
                    metrics::counter!("breakwater_output_delivery_failures_total").increment(1);
                    self.producer
                        .context()
                        .failed
                        .lock()
                        .expect("delivery lock")
                        .push((*rec.delivery_opaque, e));
                    return Ok(());
                }
                Err((e, _)) => return Err(JobError::kafka("producing an output record", e)),
            }
        }
    }

    /// Serves delivery reports without waiting, and sends again the records
    /// the producer gave up on: between flushes, so that failures do not
    /// pile up until the next checkpoint.
    pub fn poll(&mut self) -> Result<(), JobError> {
        self.producer.poll(Duration::ZERO);
        let failed = self.producer.context().take_failed();
        if !failed.is_empty() {
            tracing::warn!(
                records = failed.len(),
                error = %failed[0].1,
                "output records were not acknowledged; sending them again"
            );
        }
        for (tracked, _) in failed {
            self.resend(tracked)?;
        }
        Ok(())
    }

    /// Blocks until every record sent so far is acknowledged, resending
    /// those the producer gave up on. Fails only if the job is aborted
    /// first: then the caller must not commit.
    pub fn flush(&mut self) -> Result<(), JobError> {
        let mut warned = Instant::now();
        loop {
            // Waits for the in-flight ones; failures land in `failed`.
            while self.producer.flush(Duration::from_millis(500)).is_err() {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(JobError::Aborted);
                }
                if warned.elapsed() > Duration::from_secs(10) {
                    tracing::warn!(
                        in_flight = self.producer.in_flight_count(),
                        "still waiting for the broker to acknowledge output records"
                    );
                    warned = Instant::now();
                }
            }
            let failed = self.producer.context().take_failed();
            if failed.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                records = failed.len(),
                error = %failed[0].1,
                "output records were not acknowledged; sending them again"
            );
            if self.abort.load(Ordering::Relaxed) {
                return Err(JobError::Aborted);
            }
            std::thread::sleep(RESEND_BACKOFF);
            for (tracked, _) in failed {
                self.resend(tracked)?;
            }
        }
    }

    /// Records in the producer's queue: not yet sent, in flight, or
    /// acknowledged with the report not yet served.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Closes the current epoch and returns it: every record sent so far
    /// is in it or an earlier one, every record sent from now on in a
    /// later one. [`RecordCollector::acked_through`] then says when the
    /// broker has acknowledged all of them, without waiting.
    pub fn mark(&mut self) -> u64 {
        let closed = self.epoch;
        self.epoch += 1;
        closed
    }

    /// Whether every record sent up to `mark` (a value [`RecordCollector::mark`]
    /// returned) is acknowledged, as of the delivery reports served so far
    /// (by [`RecordCollector::poll`] or a wait).
    pub fn acked_through(&self, mark: u64) -> bool {
        self.unacked().acked_through(mark)
    }

    /// Records sent and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.unacked().total()
    }
}

/// Whether a record the producer refused at once may be accepted later.
/// Not when the producer is dead (a fatal error: only a new one can send)
/// or the record itself is unsendable (too large, invalid).
fn can_succeed_later(e: &KafkaError) -> bool {
    !matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidArgument
        ) | None
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::ClientConfig;

    fn record(key: &str) -> OutRecord {
        OutRecord {
            topic: "out".into(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: Vec::new(),
            source_ms: None,
        }
    }

    /// A collector producing to `topic` (created, one partition) on `cluster`.
    fn collector_on<C: ClientContext>(
        cluster: &MockCluster<'_, C>,
        topic: &str,
        properties: &[(&str, &str)],
    ) -> RecordCollector {
        cluster.create_topic(topic, 1, 1).expect("topic");
        let observed = Observed {
            health: Arc::default(),
            name: "test",
        };
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        for (k, v) in properties {
            config.set(*k, *v);
        }
        let producer: BaseProducer<Delivery> = config
            .create_with_context(Delivery::new(observed))
            .expect("producer");
        RecordCollector::new(producer, Arc::default())
    }

    /// Serves delivery reports (without sending failed records again)
    /// until `done`, for at most 30 s.
    fn serve_until(c: &RecordCollector, what: &str, done: impl Fn(&RecordCollector) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(c) {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            c.producer.poll(Duration::from_millis(20));
        }
    }

    /// The periodic checkpoint commits once its epoch is acknowledged: a
    /// record the producer gave up on keeps its epoch, and that epoch and
    /// every later one stay unacknowledged until the record is sent again
    /// and acknowledged.
    #[test]
    fn a_failed_delivery_holds_its_epoch_and_the_later_ones_until_acknowledged() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        let mut c = collector_on(&cluster, "out", &[("message.timeout.ms", "300")]);

        c.send(record("a")).unwrap();
        let first = c.mark();
        assert!(!c.acked_through(first), "not acknowledged before a report");
        serve_until(&c, "the first epoch acknowledged", |c| {
            c.acked_through(first)
        });

        cluster.broker_down(1).unwrap();
        c.send(record("b")).unwrap();
        let held = c.mark();
        c.send(record("c")).unwrap();
        let later = c.mark();
        serve_until(&c, "the producer gives up on both", |c| {
            c.producer.context().failed.lock().unwrap().len() == 2
        });
        assert!(c.acked_through(first));
        assert!(!c.acked_through(held) && !c.acked_through(later));
        assert_eq!(c.unacknowledged(), 2);

        // Sent again while the broker is still down: still held.
        c.poll().unwrap();
        assert!(!c.acked_through(held));
        cluster.broker_up(1).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.acked_through(later) {
            assert!(Instant::now() < deadline, "never acknowledged");
            c.producer.poll(Duration::from_millis(20));
            c.poll().unwrap();
        }
        assert_eq!(c.unacknowledged(), 0);
    }

    /// A record sent again after a newer one of its key went out must not
    /// land last on a compacted topic: the newest is sent again after it.
    #[test]
    fn a_resent_snapshot_does_not_bury_a_newer_one_of_its_key() {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Message, Offset, TopicPartitionList};

        let cluster = MockCluster::new(1).expect("mock cluster");
        let props = [
            ("message.timeout.ms", "2000"),
            ("reconnect.backoff.max.ms", "100"),
        ];
        let mut c = collector_on(&cluster, "snap", &props).latest_wins(["snap".into()]);
        let snapshot = |payload: &str| OutRecord {
            topic: "snap".into(),
            payload: Some(payload.as_bytes().to_vec()),
            ..record("a")
        };

        cluster.broker_down(1).unwrap();
        c.send(snapshot("old")).unwrap();
        serve_until(&c, "the producer gives up on the old one", |c| {
            c.producer.context().failed.lock().unwrap().len() == 1
        });
        // The newer one is queued before the old one is sent again.
        c.send(snapshot("new")).unwrap();
        cluster.broker_up(1).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.unacknowledged() > 0 {
            assert!(Instant::now() < deadline, "never acknowledged");
            c.producer.poll(Duration::from_millis(20));
            c.poll().unwrap();
        }

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "read-back")
            .create()
            .expect("consumer");
        let (_, end) = consumer
            .fetch_watermarks("snap", 0, Duration::from_secs(10))
            .expect("watermarks");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("snap", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut payloads = Vec::new();
        while (payloads.len() as i64) < end {
            assert!(
                Instant::now() < deadline,
                "topic not read back: {payloads:?}"
            );
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.expect("a record");
                payloads.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
            }
        }
        assert_eq!(
            payloads.last().map(String::as_str),
            Some("new"),
            "{payloads:?}"
        );
        assert!(
            payloads.contains(&"old".to_string()),
            "the old one was sent too"
        );
    }

    #[test]
    fn refusals_that_may_pass_are_sent_again_and_the_others_stop_the_job() {
        let refused = |code| can_succeed_later(&KafkaError::MessageProduction(code));
        assert!(refused(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(refused(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(!refused(RDKafkaErrorCode::Fatal), "the producer is dead");
        assert!(!refused(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!refused(RDKafkaErrorCode::InvalidArgument));
    }
}

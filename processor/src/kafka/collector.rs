//! The record collector (Kafka Streams' word): every output record goes
//! through it, and [`RecordCollector::flush`] returns only once the broker
//! has acknowledged all of them. The job commits input offsets after a
//! successful flush, never before: that is what makes delivery
//! at-least-once. A record the producer gives up on (after librdkafka's own
//! retries), or refuses at once for a reason that may pass (e.g. a topic
//! the broker just denied), is sent again until it is acknowledged or the
//! job is stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::client::Observed;
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

/// Producer context: counts acknowledgements and keeps failed records.
pub struct Delivery {
    observed: Observed,
    failed: Mutex<Vec<(OutRecord, KafkaError)>>,
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
    type DeliveryOpaque = Box<OutRecord>;

    fn delivery(&self, result: &DeliveryResult<'_>, record: Box<OutRecord>) {
        match result {
            Ok(_) => {
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
                    .push((*record, e.clone()));
            }
        }
    }
}

impl Delivery {
    pub fn new(observed: Observed) -> Self {
        Delivery {
            observed,
            failed: Mutex::new(Vec::new()),
        }
    }
}

/// Sends output records and waits for their acknowledgement.
pub struct RecordCollector {
    producer: BaseProducer<Delivery>,
    /// Set when the job must give up waiting (a second signal, or the
    /// shutdown deadline): records not yet acknowledged are then left to
    /// the next run, which re-reads their input because nothing was committed.
    abort: Arc<AtomicBool>,
    /// Records sent since the last successful flush.
    pending: usize,
}

/// Time between attempts to resend records the producer gave up on.
const RESEND_BACKOFF: Duration = Duration::from_millis(500);

impl RecordCollector {
    pub fn new(producer: BaseProducer<Delivery>, abort: Arc<AtomicBool>) -> Self {
        RecordCollector {
            producer,
            abort,
            pending: 0,
        }
    }

    pub fn producer(&self) -> &BaseProducer<Delivery> {
        &self.producer
    }

    /// Queues a record; waits (serving delivery reports) while the
    /// producer's queue is full.
    pub fn send(&mut self, record: OutRecord) -> Result<(), JobError> {
        let mut record = Box::new(record);
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let topic = record.topic.clone();
            let key = record.key.clone();
            let payload = std::mem::take(&mut record.payload);
            let copy = payload.clone();
            record.payload = payload;
            let partition = record.partition;
            let mut base = BaseRecord::with_opaque_to(&topic, record).headers(headers);
            if let Some(p) = &copy {
                base = base.payload(p);
            }
            if let Some(k) = &key {
                base = base.key(k.as_slice());
            }
            if let Some(p) = partition {
                base = base.partition(p);
            }
            match self.producer.send(base) {
                Ok(()) => {
                    self.pending += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    record = rec.delivery_opaque;
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
                    self.pending += 1;
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
        let failed = std::mem::take(&mut *self.producer.context().failed.lock().expect("lock"));
        if !failed.is_empty() {
            tracing::warn!(
                records = failed.len(),
                error = %failed[0].1,
                "output records were not acknowledged; sending them again"
            );
        }
        for (record, _) in failed {
            self.pending -= 1;
            self.send(record)?;
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
            let failed = std::mem::take(&mut *self.producer.context().failed.lock().expect("lock"));
            if failed.is_empty() {
                self.pending = 0;
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
            for (record, _) in failed {
                self.send(record)?;
            }
        }
    }

    /// Records in the producer's queue: not yet sent, in flight, or
    /// acknowledged with the report not yet served.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Records sent since the last successful flush.
    pub fn pending(&self) -> usize {
        self.pending
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

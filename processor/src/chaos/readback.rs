//! The output topics read back to their end, for the report.
//!
//! High watermarks cannot be trusted on every broker (Tansu reports an older
//! offset), so the end is found the way the job's restorer finds it: a
//! marker record (a tombstone with a unique key) is written to every
//! partition, and each partition is read until its marker. Tombstones
//! (restore markers, these markers) are skipped. Outputs must be JSON
//! (`kafka.wire.output.format: json`, the default).
//!
//! ```no_run
//! use breakwater::config::KafkaSettings;
//! let settings = KafkaSettings::from_section(None, std::env::vars()).unwrap();
//! let outputs = breakwater::chaos::readback::read_outputs(&settings, std::time::Duration::from_secs(60)).unwrap();
//! println!("{} transitions", outputs.transitions.len());
//! ```

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use crate::config::KafkaSettings;
use crate::kafka::client::{client_config, Role};

use super::Outputs;

/// Keys of the end markers; never an agent id.
pub const END_MARKER_PREFIX: &str = "__breakwater.chaos-end.";

/// Why the outputs could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist or has no partitions")]
    NoTopic(String),
    #[error("{topic}: the end markers of {missing} partitions did not arrive within {timeout:?}")]
    Timeout {
        topic: String,
        missing: usize,
        timeout: Duration,
    },
    #[error("{topic} {partition}:{offset}: not a JSON output record: {reason}")]
    Decode {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// Reads the breaker-state, alerts and snapshots topics to their end.
pub fn read_outputs(settings: &KafkaSettings, timeout: Duration) -> Result<Outputs, ReadbackError> {
    let t = &settings.topics;
    Ok(Outputs {
        transitions: read_topic(settings, &t.breaker_state, timeout)?,
        alerts: read_topic(settings, &t.alerts, timeout)?,
        snapshots: read_topic(settings, &t.snapshots, timeout)?,
    })
}

/// Every non-tombstone record of `topic`, decoded as JSON, in partition order.
pub fn read_topic<T: DeserializeOwned>(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<T>, ReadbackError> {
    let instance = format!("chaos-report-{}", std::process::id());
    let consumer: BaseConsumer = client_config(settings, Role::Restore, &instance).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|m| m.name() == topic)
        .map_or(0, |m| m.partitions().len()) as i32;
    if partitions == 0 {
        return Err(ReadbackError::NoTopic(topic.to_string()));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let marker = format!("{END_MARKER_PREFIX}{}.{nanos}", std::process::id());
    let producer: BaseProducer = client_config(settings, Role::Producer, &instance).create()?;
    for p in 0..partitions {
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(p)
                    .key(marker.as_bytes()),
            )
            .map_err(|(e, _)| e)?;
    }
    producer.flush(timeout)?;

    let mut out = Vec::new();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    while ended.len() < partitions as usize {
        if Instant::now() > deadline {
            return Err(ReadbackError::Timeout {
                topic: topic.to_string(),
                missing: partitions as usize - ended.len(),
                timeout,
            });
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        if m.key() == Some(marker.as_bytes()) {
            ended.insert(m.partition());
            continue;
        }
        let Some(payload) = m.payload() else {
            continue; // tombstones: restore markers, other reports' markers
        };
        let value = serde_json::from_slice(payload).map_err(|e| ReadbackError::Decode {
            topic: topic.to_string(),
            partition: m.partition(),
            offset: m.offset(),
            reason: e.to_string(),
        })?;
        out.push(value);
    }
    Ok(out)
}

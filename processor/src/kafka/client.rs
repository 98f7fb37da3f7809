//! librdkafka clients as the job needs them: configured from
//! [`KafkaSettings`], with the job's safety defaults, and with librdkafka's
//! logs and errors routed to `tracing` and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

use crate::config::{is_secret, KafkaSettings};

/// What a client is for; decides the defaults it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The consumer-group member reading task events.
    Group,
    /// A consumer of a whole topic with no group (the tables).
    Table,
    /// Reads snapshots partitions to their end on assignment, as fast as
    /// the broker serves them.
    Restore,
    Producer,
    Admin,
}

/// Client errors librdkafka reported (broker down, request failures, …),
/// shared by every client of a job.
#[derive(Debug, Default)]
pub struct ClientHealth {
    errors: AtomicU64,
}

impl ClientHealth {
    /// Errors reported so far by any client of the job.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Counts an error the job saw itself (e.g. one `poll` returned).
    pub fn record(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Routes librdkafka's logs to `tracing` and counts its errors.
#[derive(Clone)]
pub struct Observed {
    pub health: Arc<ClientHealth>,
    /// The client's role in logs and metric labels.
    pub name: &'static str,
}

impl ClientContext for Observed {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let client = self.name;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(client, fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(client, fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(client, fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(client, fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.health.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("breakwater_kafka_client_errors_total", "client" => self.name)
            .increment(1);
        tracing::warn!(client = self.name, %error, "kafka client error: {reason}");
    }

    /// Only the group consumer's statistics are used (see
    /// [`super::health`]); a `statistics.interval.ms` set for every client
    /// must not make the others log theirs.
    fn stats_raw(&self, _statistics: &[u8]) {}
}

/// A table consumer joins no group: nothing to do on rebalances.
impl ConsumerContext for Observed {}

/// The configuration of one client. The job's defaults come first so that
/// any of them can be overridden from the file or the environment, except
/// the few that correctness rests on (offsets are committed by the job only
/// after the outputs are acknowledged).
pub fn client_config(settings: &KafkaSettings, role: Role, instance: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", format!("breakwater-{instance}"));
    match role {
        Role::Restore => {
            c.set("auto.offset.reset", "earliest");
            c.set("enable.partition.eof", "false");
            // Big fetches, and no waiting for more data: the partitions are
            // read once, to a marker that is already there.
            c.set("fetch.wait.max.ms", "10");
            c.set("max.partition.fetch.bytes", "16777216");
            c.set("fetch.max.bytes", "67108864");
            c.set("queued.max.messages.kbytes", "262144");
            // Past those limits, fetch again after 10 ms, not librdkafka's
            // 1 s: the restore drains its queue far faster than that (see
            // the group consumer below).
            c.set("fetch.queue.backoff.ms", "10");
        }
        Role::Group | Role::Table => {
            c.set("auto.offset.reset", "earliest");
            c.set("enable.partition.eof", "false");
            // Incremental rebalances: only partitions that change owner stop.
            c.set("partition.assignment.strategy", "cooperative-sticky");
            if role == Role::Group {
                // How long a fetch may wait at the broker for data. A broker
                // that does not answer a waiting fetch as soon as records
                // arrive (Tansu 0.6, by measurement) adds up to all of it to
                // every breaker transition: librdkafka's 500 ms made a median of
                // ~145 ms from produce to transition at light load, 10 ms
                // made it ~14 ms (benches/RESULTS.md §2 "Latency"). On
                // Kafka, which answers as soon as data is there, the cost is
                // more empty fetches while a partition is idle.
                c.set("fetch.wait.max.ms", "10");
                // How long librdkafka stops fetching a partition whose local
                // queue is past `queued.min.messages`. Its 1 s default starves
                // a consumer that does real work per record: the job drains
                // the queue in well under a second, then waits for the
                // backoff to run out. With 10 ms the job read 190–255 k
                // events/s instead of 130 k, and was idle no more (benches/
                // RESULTS.md §2 "fetch backoff"). A full queue is rechecked
                // every 10 ms: no request is sent while it stays full.
                c.set("fetch.queue.backoff.ms", "10");
                // The consumer-lag gauges come from librdkafka's statistics
                // (no extra requests). At the checkpoint cadence, like the
                // other gauges, so the exporter's idle timeout (three
                // snapshot intervals) never drops them between updates.
                let every = settings.snapshot_interval_ms.max(1_000);
                c.set("statistics.interval.ms", every.to_string());
            }
        }
        Role::Producer => {
            c.set("enable.idempotence", "true");
            c.set("linger.ms", "5");
            c.set("compression.type", "lz4");
        }
        Role::Admin => {}
    }
    for (k, v) in
        settings.client_properties(matches!(role, Role::Group | Role::Table | Role::Restore))
    {
        c.set(k, v);
    }
    match role {
        Role::Group => {
            c.set("group.id", &settings.group_id);
            c.set("enable.auto.commit", "false");
            c.set("enable.auto.offset.store", "false");
        }
        Role::Table | Role::Restore => {
            // Never joins or commits: a table is read whole by every instance.
            c.set(
                "group.id",
                format!("{}-tables-{instance}", settings.group_id),
            );
            c.set("enable.auto.commit", "false");
        }
        Role::Producer | Role::Admin => {}
    }
    // Warnings and errors, unless librdkafka's `debug` contexts were asked
    // for (e.g. BREAKWATER_KAFKA_DEBUG=cgrp,broker): then their lines too.
    let debug = c.get("debug").is_some_and(|d| !d.is_empty());
    c.set_log_level(if debug {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Warning
    });
    c
}

/// The properties of a client config with secrets masked, for the start-up log.
pub fn redacted(c: &ClientConfig) -> String {
    let map = c.config_map();
    let mut pairs: Vec<_> = map.iter().collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stay_with_the_job_whatever_the_file_says() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            "properties: {enable.auto.commit: true, sasl.password: hunter2, linger.ms: 20}",
        )
        .unwrap();
        let s = KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap();
        let group = client_config(&s, Role::Group, "i1");
        assert_eq!(group.get("enable.auto.commit"), Some("false"));
        assert_eq!(group.get("group.id"), Some("breakwater"));
        let producer = client_config(&s, Role::Producer, "i1");
        assert_eq!(
            producer.get("linger.ms"),
            Some("20"),
            "the file wins over our default"
        );
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        let log = redacted(&producer);
        assert!(
            log.contains("sasl.password=***") && !log.contains("hunter2"),
            "{log}"
        );
    }

    #[test]
    fn the_group_consumer_waits_briefly_for_data_unless_told_otherwise() {
        let s = KafkaSettings::from_section(None, Vec::new()).unwrap();
        let group = client_config(&s, Role::Group, "i1");
        assert_eq!(group.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(group.get("fetch.queue.backoff.ms"), Some("10"));
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            "consumer_properties: {fetch.wait.max.ms: 200, fetch.queue.backoff.ms: 1000}",
        )
        .unwrap();
        let s = KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap();
        let group = client_config(&s, Role::Group, "i1");
        assert_eq!(group.get("fetch.wait.max.ms"), Some("200"), "the file wins");
        assert_eq!(group.get("fetch.queue.backoff.ms"), Some("1000"));
    }

    #[test]
    fn debug_contexts_lower_the_log_level() {
        let s = KafkaSettings::from_section(None, Vec::new()).unwrap();
        let quiet = client_config(&s, Role::Group, "i1");
        assert!(matches!(quiet.log_level, RDKafkaLogLevel::Warning));
        let yaml: serde_yaml::Value = serde_yaml::from_str("properties: {debug: cgrp}").unwrap();
        let s = KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap();
        let debug = client_config(&s, Role::Group, "i1");
        assert!(matches!(debug.log_level, RDKafkaLogLevel::Debug));
    }
}

//! The `kafka:` section of the config file: where `breakwater run` reads
//! and writes, and any librdkafka property.
//!
//! Precedence, lowest first: built-in defaults, the file, environment
//! variables `BREAKWATER_KAFKA_<PROPERTY>` (a librdkafka property with dots
//! as underscores, e.g. `BREAKWATER_KAFKA_SASL_PASSWORD`), then command-line
//! flags (`--brokers`). The prefix is ours, not a bare `KAFKA_`, so that a
//! machine's unrelated `KAFKA_HOME` or `KAFKA_OPTS` never reaches the client.
//!
//! ```
//! use breakwater::config::KafkaSettings;
//! let yaml: serde_yaml::Value = serde_yaml::from_str(r#"
//! brokers: "kafka-1:9092,kafka-2:9092"
//! group_id: breakwater-prod
//! properties:
//!   security.protocol: SASL_SSL
//!   sasl.mechanism: SCRAM-SHA-512
//! "#).unwrap();
//! let env = [("BREAKWATER_KAFKA_SASL_PASSWORD".to_string(), "s3cret".to_string())];
//! let k = KafkaSettings::from_section(Some(&yaml), env).unwrap();
//! assert_eq!(k.topics.events, "agent.task.events");
//! assert_eq!(k.properties["sasl.password"], "s3cret");
//! assert_eq!(k.snapshot_interval_ms, 10_000);
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use serde::Deserialize;

use super::file::ConfigError;
use super::raw::{RawDuration, DURATION};
use super::wire::WireSettings;

/// Environment variables with this prefix set librdkafka properties.
pub const ENV_PREFIX: &str = "BREAKWATER_KAFKA_";

/// Topic names; every one has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Agent task events, keyed by agent id (input).
    pub events: String,
    /// Breaker transitions, keyed by agent id; compacted (for routers).
    pub breaker_state: String,
    /// Alerts FIRING / RESOLVED, keyed by agent id.
    pub alerts: String,
    /// Budget snapshots, keyed by agent id; compacted.
    pub snapshots: String,
    /// Input records that could not be decoded, with the reason in headers.
    pub dead_letter: String,
    /// Accuracy declarations, keyed by agent id, read as a table.
    pub declarations: String,
    /// Operator commands for breakers, keyed by agent id, read as a table.
    pub commands: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            events: "agent.task.events".into(),
            breaker_state: "agent.breaker.state".into(),
            alerts: "agent.alerts".into(),
            snapshots: "agent.budget.snapshots".into(),
            dead_letter: "agent.task.events.dlq".into(),
            declarations: "agent.accuracy.declarations".into(),
            commands: "agent.breaker.commands".into(),
        }
    }
}

impl Topics {
    /// Every topic with whether it is compacted, in a fixed order.
    pub fn all(&self) -> [(&str, bool); 7] {
        [
            (&self.events, false),
            (&self.breaker_state, true),
            (&self.alerts, false),
            (&self.snapshots, true),
            (&self.dead_letter, false),
            (&self.declarations, true),
            (&self.commands, false),
        ]
    }
}

/// How missing topics are created at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCreation {
    pub partitions: i32,
    pub replication_factor: i32,
}

/// The resolved `kafka:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub group_id: String,
    pub topics: Topics,
    pub create: TopicCreation,
    /// How often snapshots of agents that changed are written.
    pub snapshot_interval_ms: i64,
    /// Most records taken from the consumer per batch.
    pub max_batch: usize,
    /// Threads that run a batch's partitions side by side (each partition
    /// has its own engine); `None`: one per core (`kafka.processing_threads`).
    pub processing_threads: Option<NonZeroUsize>,
    /// Longest wait for the first record of a batch; also the tick on
    /// which wall-clock timers fire when no record arrives.
    pub poll_interval_ms: i64,
    /// librdkafka properties for every client (file, then environment).
    pub properties: BTreeMap<String, String>,
    /// Extra properties for the consumers only, then for the producer only.
    pub consumer_properties: BTreeMap<String, String>,
    pub producer_properties: BTreeMap<String, String>,
    /// Input and output encodings, schema registry (`kafka.wire`).
    pub wire: WireSettings,
    /// Which clock fires the engines' timers (`kafka.timers`).
    pub timers: TimerClock,
    /// Which agents get their own metric series; set from the `http:`
    /// section (see [`super::HttpSettings`]).
    pub series: super::SeriesBudget,
}

/// The clock that fires breaker cooldowns, alert re-evaluation and
/// declaration expiry in the live job (Flink's processing time vs event time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerClock {
    /// The wall clock: an OPEN breaker half-opens on time even when its
    /// agent sends nothing. What a live fleet wants.
    #[default]
    WallClock,
    /// Each partition's stream time (the latest event time seen): the job
    /// then gives exactly what `breakwater replay` gives for the same
    /// partition, whenever and however often it is run. For backfills.
    EventTime,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<String>,
    group_id: Option<String>,
    topics: Option<Topics>,
    partitions: Option<i64>,
    replication_factor: Option<i64>,
    snapshot_interval: Option<RawDuration>,
    max_batch: Option<i64>,
    processing_threads: Option<i64>,
    poll_interval: Option<RawDuration>,
    properties: Option<BTreeMap<String, Scalar>>,
    consumer_properties: Option<BTreeMap<String, Scalar>>,
    producer_properties: Option<BTreeMap<String, Scalar>>,
    wire: Option<serde_yaml::Value>,
    timers: Option<String>,
}

/// A property value as YAML writes it: `2000`, `true` or `"SASL_SSL"`.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a string, number or boolean")]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn properties(raw: Option<BTreeMap<String, Scalar>>) -> BTreeMap<String, String> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.text()))
        .collect()
}

fn invalid(key: &str, value: impl std::fmt::Display, allowed: &str) -> ConfigError {
    ConfigError::invalid(format!("kafka.{key}"), value, allowed)
}

impl KafkaSettings {
    /// Resolves the section (absent = all defaults) and the environment
    /// (pass `std::env::vars()`).
    pub fn from_section(
        section: Option<&serde_yaml::Value>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let raw: RawKafka = match section {
            None | Some(serde_yaml::Value::Null) => RawKafka::default(),
            Some(v) => serde_path_to_error::deserialize(v.clone())
                .map_err(|e| ConfigError::from_serde(e).under("kafka"))?,
        };
        let duration = |key: &str, d: Option<RawDuration>, default: i64| match d {
            None => Ok(default),
            Some(d) => d
                .millis()
                .ok_or_else(|| invalid(key, d.as_written(), DURATION)),
        };
        let positive = |key: &str, v: Option<i64>, default: i64, max: i64| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(invalid(key, n, &format!("a whole number from 1 to {max}"))),
        };
        let group_id = raw.group_id.unwrap_or_else(|| "breakwater".into());
        if group_id.trim().is_empty() {
            return Err(invalid("group_id", "\"\"", "a non-empty consumer group id"));
        }
        let topics = raw.topics.unwrap_or_default();
        check_topics(&topics)?;
        let mut settings = KafkaSettings {
            brokers: raw.brokers.unwrap_or_else(|| "localhost:9092".into()),
            group_id,
            topics,
            create: TopicCreation {
                partitions: positive("partitions", raw.partitions, 6, 10_000)? as i32,
                replication_factor: positive("replication_factor", raw.replication_factor, 1, 32)?
                    as i32,
            },
            snapshot_interval_ms: duration("snapshot_interval", raw.snapshot_interval, 10_000)?,
            max_batch: positive("max_batch", raw.max_batch, 10_000, 1_000_000)? as usize,
            processing_threads: match raw.processing_threads {
                None => None,
                Some(n) => {
                    NonZeroUsize::new(positive("processing_threads", Some(n), 1, 256)? as usize)
                }
            },
            poll_interval_ms: duration("poll_interval", raw.poll_interval, 100)?,
            properties: properties(raw.properties),
            consumer_properties: properties(raw.consumer_properties),
            producer_properties: properties(raw.producer_properties),
            wire: WireSettings::from_section(raw.wire.as_ref(), "kafka.wire")?,
            series: super::SeriesBudget::default(),
            timers: match raw.timers.as_deref() {
                None | Some("wall_clock") => TimerClock::WallClock,
                Some("event_time") => TimerClock::EventTime,
                Some(other) => {
                    return Err(invalid(
                        "timers",
                        format!("{other:?}"),
                        "wall_clock or event_time",
                    ))
                }
            },
        };
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                if rest.is_empty() {
                    continue;
                }
                let property = rest.to_ascii_lowercase().replace('_', ".");
                settings.properties.insert(property, value);
            }
        }
        if let Some(b) = settings.properties.remove("bootstrap.servers") {
            settings.brokers = b;
        }
        if settings.brokers.trim().is_empty() {
            return Err(invalid("brokers", "\"\"", "host:port[,host:port…]"));
        }
        Ok(settings)
    }

    /// Properties for a client: the common ones, then the role's own.
    pub fn client_properties(&self, consumer: bool) -> BTreeMap<String, String> {
        let mut all = self.properties.clone();
        let own = if consumer {
            &self.consumer_properties
        } else {
            &self.producer_properties
        };
        all.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.insert("bootstrap.servers".into(), self.brokers.clone());
        all
    }
}

/// Whether a property's value must not be logged.
pub fn is_secret(property: &str) -> bool {
    ["password", "secret", "key.pem", "sasl.jaas"]
        .iter()
        .any(|s| property.contains(s))
}

fn check_topics(t: &Topics) -> Result<(), ConfigError> {
    let named = [
        ("events", &t.events),
        ("breaker_state", &t.breaker_state),
        ("alerts", &t.alerts),
        ("snapshots", &t.snapshots),
        ("dead_letter", &t.dead_letter),
        ("declarations", &t.declarations),
        ("commands", &t.commands),
    ];
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    for (i, (key, name)) in named.iter().enumerate() {
        if name.is_empty() || name.len() > 249 || !name.chars().all(legal) {
            return Err(invalid(
                &format!("topics.{key}"),
                format!("{name:?}"),
                "a Kafka topic name: 1 to 249 of [a-zA-Z0-9._-]",
            ));
        }
        if let Some((other, _)) = named[..i].iter().find(|(_, n)| n == name) {
            return Err(invalid(
                &format!("topics.{key}"),
                format!("{name:?}"),
                &format!("a topic other than topics.{other}'s"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<KafkaSettings, ConfigError> {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        KafkaSettings::from_section(Some(&v), Vec::new())
    }

    #[test]
    fn defaults_without_a_section() {
        let k = KafkaSettings::from_section(None, Vec::new()).unwrap();
        assert_eq!(k.brokers, "localhost:9092");
        assert_eq!(k.group_id, "breakwater");
        assert_eq!(k.topics, Topics::default());
        assert_eq!((k.create.partitions, k.create.replication_factor), (6, 1));
        assert_eq!((k.snapshot_interval_ms, k.poll_interval_ms), (10_000, 100));
        assert_eq!(k.timers, TimerClock::WallClock);
        assert_eq!(k.processing_threads, None);
    }

    #[test]
    fn errors_name_the_key_the_value_and_what_is_allowed() {
        let e = section("snapshot_interval: -5s").unwrap_err().to_string();
        assert!(
            e.contains("kafka.snapshot_interval") && e.contains("-5s"),
            "{e}"
        );
        let e = section("partitions: 0").unwrap_err().to_string();
        assert!(e.contains("kafka.partitions: 0 is not allowed"), "{e}");
        let e = section("topics: {alerts: agent.task.events}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kafka.topics.alerts") && e.contains("topics.events"),
            "{e}"
        );
        let e = section("topics: {events: 'no spaces'}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.topics.events"), "{e}");
        let e = section("timers: stream").unwrap_err().to_string();
        assert!(
            e.contains("kafka.timers") && e.contains("stream") && e.contains("event_time"),
            "{e}"
        );
        assert_eq!(
            section("timers: event_time").unwrap().timers,
            TimerClock::EventTime
        );
        let e = section("processing_threads: 0").unwrap_err().to_string();
        assert!(
            e.contains("kafka.processing_threads: 0") && e.contains("from 1 to 256"),
            "{e}"
        );
        assert_eq!(
            section("processing_threads: 3").unwrap().processing_threads,
            NonZeroUsize::new(3)
        );
        let e = section("brokerz: x").unwrap_err().to_string();
        assert!(e.contains("kafka") && e.contains("brokerz"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_bootstrap_servers_overrides_brokers() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "properties: {session.timeout.ms: 45000, enable.idempotence: true}",
        )
        .unwrap();
        let env = [
            (
                "BREAKWATER_KAFKA_SESSION_TIMEOUT_MS".to_string(),
                "2000".to_string(),
            ),
            (
                "BREAKWATER_KAFKA_BOOTSTRAP_SERVERS".to_string(),
                "b:1".to_string(),
            ),
            ("KAFKA_HOME".to_string(), "/opt/kafka".to_string()),
        ];
        let k = KafkaSettings::from_section(Some(&v), env).unwrap();
        assert_eq!(k.properties["session.timeout.ms"], "2000");
        assert_eq!(k.properties["enable.idempotence"], "true");
        assert_eq!(k.brokers, "b:1");
        assert!(!k.properties.contains_key("home"));
        assert_eq!(k.client_properties(true)["bootstrap.servers"], "b:1");
    }

    /// The `kafka:` example in the README loads as written.
    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```yaml\nkafka:")
            .expect("the README's kafka example")
            + 8;
        let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
        let file: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let k = KafkaSettings::from_section(file.get("kafka"), Vec::new()).unwrap();
        assert_eq!(k.brokers, "kafka-1:9092,kafka-2:9092");
        assert_eq!(k.create.replication_factor, 3);
        assert_eq!(k.properties["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(k.topics, Topics::default());
    }
}

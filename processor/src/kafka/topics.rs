//! Topics at start-up: create the missing ones (never rely on broker
//! auto-creation, which would pick its own partition count and no
//! compaction), then check the configuration of the ones that exist.

use std::time::Duration;

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;

use super::JobError;
use crate::config::KafkaSettings;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What start-up found and did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopicReport {
    pub created: Vec<String>,
    pub existing: Vec<String>,
    /// Problems that do not stop the job, e.g. a state topic that is not
    /// compacted (it grows without bound, and restores get slower).
    pub warnings: Vec<String>,
}

/// Creates every missing topic with the configured partitions, compacted
/// where routers or restores read it as a table.
pub fn ensure_topics<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    settings: &KafkaSettings,
) -> Result<TopicReport, JobError> {
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let replication = settings.create.replication_factor;
    let new: Vec<NewTopic> = settings
        .topics
        .all()
        .into_iter()
        .map(|(name, compacted)| {
            let t = NewTopic::new(
                name,
                settings.create.partitions,
                TopicReplication::Fixed(replication),
            );
            if compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let results = block_on(admin.create_topics(&new, &opts))
        .map_err(|e| JobError::kafka("creating topics", e))?;
    let mut report = TopicReport::default();
    for r in results {
        match r {
            Ok(name) => report.created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => report.existing.push(name),
            Err((name, code)) => {
                return Err(JobError::Topic {
                    topic: name,
                    reason: format!("could not be created: {code}"),
                })
            }
        }
    }
    check_compaction(admin, settings, &opts, &mut report);
    Ok(report)
}

/// Warns about an existing state topic whose `cleanup.policy` is not
/// `compact`. A broker that cannot describe configs only earns a warning.
fn check_compaction<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    settings: &KafkaSettings,
    opts: &AdminOptions,
    report: &mut TopicReport,
) {
    let compacted: Vec<&str> = settings
        .topics
        .all()
        .into_iter()
        .filter(|(name, c)| *c && report.existing.iter().any(|e| e == name))
        .map(|(name, _)| name)
        .collect();
    if compacted.is_empty() {
        return;
    }
    let specs: Vec<ResourceSpecifier> = compacted
        .iter()
        .map(|t| ResourceSpecifier::Topic(t))
        .collect();
    match block_on(admin.describe_configs(&specs, opts)) {
        Ok(results) => {
            for (topic, r) in compacted.iter().zip(results) {
                let policy = r
                    .ok()
                    .and_then(|c| c.get("cleanup.policy").and_then(|e| e.value.clone()));
                match policy {
                    Some(p) if p.contains("compact") => {}
                    Some(p) => report.warnings.push(format!(
                        "topic {topic} has cleanup.policy={p}; it is read as a table and should be compact"
                    )),
                    None => report.warnings.push(format!(
                        "topic {topic}: the broker did not report its cleanup.policy"
                    )),
                }
            }
        }
        Err(e) => report
            .warnings
            .push(format!("could not describe topic configs: {e}")),
    }
}

/// Partition count of `topic`, from the cluster's metadata.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<usize, JobError> {
    let md = consumer
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|e| JobError::kafka("fetching metadata", e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| JobError::Topic {
            topic: topic.to_string(),
            reason: "is not in the cluster's metadata".into(),
        })?;
    if let Some(e) = t.error() {
        return Err(JobError::Topic {
            topic: topic.to_string(),
            reason: format!("metadata error: {e:?}"),
        });
    }
    Ok(t.partitions().len())
}

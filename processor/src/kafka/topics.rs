//! Topics at start-up: create the missing ones (never rely on broker
//! auto-creation, which would pick its own partition count and no
//! compaction), then check the configuration of the ones that exist.

use std::time::Duration;

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::bindings::rd_kafka_controllerid;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

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
///
/// Topics the cluster's metadata already lists are used as they are, so a
/// cluster whose topics are made by its operators (or that does not serve
/// the admin API, like librdkafka's mock cluster) needs no admin request.
/// A topic whose creation fails for another reason than existing already
/// is looked up again: if it exists after all it is used, with a warning;
/// if not, start-up fails naming it.
pub fn ensure_topics<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    settings: &KafkaSettings,
) -> Result<TopicReport, JobError> {
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let md = admin
        .inner()
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .map_err(|e| JobError::kafka("fetching metadata", e))?;
    let mut report = TopicReport::default();
    let mut missing = Vec::new();
    for (name, compacted) in settings.topics.all() {
        if exists(&md, name) {
            report.existing.push(name.to_string());
        } else {
            missing.push((name, compacted));
        }
    }
    let admin_api = controller(admin, &md);
    if let Some((first, _)) = missing.first() {
        if let Err(why) = &admin_api {
            return Err(JobError::Topic {
                topic: first.to_string(),
                reason: format!("does not exist and cannot be created: {why}"),
            });
        }
        create(admin, settings, &missing, &opts, &mut report)?;
    }
    check_state_partitions(admin, settings)?;
    match admin_api {
        Ok(()) => check_compaction(admin, settings, &opts, &mut report),
        Err(why) => report
            .warnings
            .push(format!("topic configs (cleanup.policy) not checked: {why}")),
    }
    Ok(report)
}

/// Whether the metadata lists `topic` with its partitions.
fn exists(md: &Metadata, topic: &str) -> bool {
    md.topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty())
}

/// Whether admin requests (CreateTopics, DescribeConfigs) can be served:
/// librdkafka sends them to the controller the metadata names, and waits
/// for it until the request times out (a minute) if that is no broker of
/// the cluster — as on librdkafka's mock cluster, whose metadata names
/// controller 0 and brokers from 1. A controller the metadata does not
/// name at all (-1) is left for the request itself to find.
fn controller<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    md: &Metadata,
) -> Result<(), String> {
    // SAFETY: the handle is valid while `admin` lives; with a zero timeout
    // the call only reads the metadata librdkafka has cached (just
    // refreshed by the caller).
    let id = unsafe { rd_kafka_controllerid(admin.inner().native_ptr(), 0) };
    if id == -1 || md.brokers().iter().any(|b| b.id() == id) {
        Ok(())
    } else {
        Err(format!(
            "the cluster's metadata names a controller (id {id}) that is none of its brokers, so admin requests cannot be served"
        ))
    }
}

/// Creates `missing` topics (name, compacted); see [`ensure_topics`].
fn create<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    settings: &KafkaSettings,
    missing: &[(&str, bool)],
    opts: &AdminOptions,
    report: &mut TopicReport,
) -> Result<(), JobError> {
    let replication = settings.create.replication_factor;
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|&(name, compacted)| {
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
    // Topics whose creation failed for another reason than existing
    // already, and why.
    let mut failed: Vec<(String, String)> = Vec::new();
    match block_on(admin.create_topics(&new, opts)) {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(name) => report.created.push(name),
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => report.existing.push(name),
                    Err((name, code)) => failed.push((name, code.to_string())),
                }
            }
        }
        Err(e) => failed.extend(
            missing
                .iter()
                .map(|(name, _)| (name.to_string(), e.to_string())),
        ),
    }
    if failed.is_empty() {
        return Ok(());
    }
    // Made meanwhile by someone else, or the broker refused the request
    // while the topic is there?
    let md = admin
        .inner()
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .map_err(|e| JobError::Topic {
            topic: failed[0].0.clone(),
            reason: format!(
                "could not be created ({}), and the cluster's metadata could not be read: {e}",
                failed[0].1
            ),
        })?;
    for (name, why) in failed {
        if !exists(&md, &name) {
            return Err(JobError::Topic {
                topic: name,
                reason: format!("does not exist and could not be created: {why}"),
            });
        }
        report.warnings.push(format!(
            "topic {name} could not be created ({why}) but exists: using it as it is"
        ));
        report.existing.push(name);
    }
    Ok(())
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

/// An input partition's agents are snapshotted to the snapshots partition
/// with the same number (and restored from it), so the snapshots topic
/// needs at least as many partitions as the events topic.
fn check_state_partitions<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    settings: &KafkaSettings,
) -> Result<(), JobError> {
    let md = admin
        .inner()
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .map_err(|e| JobError::kafka("fetching metadata", e))?;
    let count = |name: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == name)
            .map_or(0, |t| t.partitions().len())
    };
    let (events, snapshots) = (
        count(&settings.topics.events),
        count(&settings.topics.snapshots),
    );
    if snapshots < events {
        return Err(JobError::Topic {
            topic: settings.topics.snapshots.clone(),
            reason: format!(
                "has {snapshots} partitions but {} has {events}: the snapshots topic needs at least as many partitions as the events topic (each input partition's agents are saved in the snapshots partition of the same number)",
                settings.topics.events
            ),
        });
    }
    Ok(())
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

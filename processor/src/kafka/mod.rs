//! `breakwater run`: the engine as a Kafka job. The imperative shell around
//! the pure engine — clients, topics, the consume → process → produce →
//! commit loop, tables, dead letters — and nothing the engine decides.
//!
//! Delivery is at-least-once for outputs and exactly-once for counts:
//! input offsets are committed only after every output the records caused,
//! and a snapshot of every agent they changed, have been acknowledged by
//! the broker (see [`stream`]); a restored agent skips the input its state
//! already reflects; outputs carry per-agent sequence numbers so consumers
//! drop repeats after a crash.

pub mod acks;
pub mod catalog;
pub mod client;
pub mod codec;
pub mod collector;
pub mod dead_letter;
pub mod gauges;
pub mod health;
pub mod intake;
pub mod job;
pub mod newest;
pub mod owners;
pub mod partitioner;
pub mod query;
pub mod restore;
pub mod stream;
pub mod tables;
pub mod tasks;
pub mod topics;
pub mod workers;

use rdkafka::error::KafkaError;

pub use job::{run, Control, JobStatus, JobSummary};
pub use tables::OperatorCommand;

/// Why the job stopped with an error, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A Kafka call failed; `what` says which.
    #[error("{what}: {source}")]
    Kafka {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    /// A topic is missing, misconfigured or could not be created.
    #[error("topic {topic} {reason}")]
    Topic { topic: String, reason: String },
    /// The job was told to give up before outputs were acknowledged; input
    /// offsets were not committed, so the next run re-reads that input.
    #[error("aborted before every output was acknowledged; uncommitted input will be re-read")]
    Aborted,
    /// The codec could not be set up (schema files, registering output
    /// schemas) or an output could not be encoded.
    #[error("wire format: {0}")]
    Codec(String),
    /// Stopped while the schema registry was unreachable: the batch was
    /// not committed and will be re-read.
    /// A graceful stop gave up (deadline or second signal) before the
    /// input offsets were committed: the next run re-reads that input and
    /// its restored agents skip what they already counted.
    #[error("stopped before the input offsets could be committed; the next run re-reads uncommitted input")]
    Uncommitted,
    #[error("stopped while the schema registry was unavailable ({0}); uncommitted input will be re-read")]
    RegistryUnavailable(String),
    /// The processing threads could not be started.
    #[error("starting the processing threads: {0}")]
    Threads(String),
}

impl JobError {
    pub(crate) fn kafka(what: &'static str, source: KafkaError) -> Self {
        JobError::Kafka { what, source }
    }
}

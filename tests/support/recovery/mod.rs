//! Pieces of the recovery tests (tests/kafka_recovery.rs): `breakwater run`
//! as child processes that are SIGKILLed, SIGTERMed and restarted; a seeded
//! workload produced to partitions the test chooses; the `breakwater replay`
//! oracle run over each input partition alone; and the output topics read
//! back to their end and compared with the oracle.
//!
//! Everything here goes through the real binary and a real broker (Tansu):
//! nothing of the job runs in the test process.

// Each test binary uses a different part.
#![allow(unused_imports)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};
use serde_json::{json, Value};

use super::job::{assigned, poll_into};
use super::kafka::{self as harness, Broker, Record, TestContext};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_breakwater");

/// The job's default topic names (the tests keep them).
pub const EVENTS: &str = "agent.task.events";
pub const SNAPSHOTS: &str = "agent.budget.snapshots";
pub const BREAKER: &str = "agent.breaker.state";
pub const ALERTS: &str = "agent.alerts";

/// Snapshot headers (the job's contract, see processor/src/kafka/restore.rs).
pub const STATE_HEADER: &str = "breakwater.state";
pub const POSITION_HEADER: &str = "breakwater.position";
pub const RESTORE_MARKER_HEADER: &str = "breakwater.restore-marker";
pub const RESTORE_MARKER_PREFIX: &str = "__breakwater.restore.";
/// Header naming the instance that produced an output record.
pub const INSTANCE_HEADER: &str = "breakwater.instance";

/// Keys of the markers [`read_to_end`] writes; never an agent id.
const END_MARKER_PREFIX: &str = "__breakwater-test.end.";

/// Bound on waiting for a process to start, own partitions or stop.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(45);
/// Bound on waiting for the job to have processed everything produced.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(90);

mod workload;
pub use workload::*;
mod process;
pub use process::*;
mod produce;
pub use produce::*;
mod oracle;
pub use oracle::*;
mod readback;
pub use readback::*;
mod compare;
pub use compare::*;

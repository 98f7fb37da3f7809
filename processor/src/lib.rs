//! Breakwater: SLOs, error budgets, circuit breakers, alerts and accuracy
//! declarations for fleets of AI agents, computed from task telemetry.
//!
//! The crate is laid out along the data flow:
//!
//! - [`event`]: the validated input record (SPEC §2);
//! - [`decode`]: wire formats (JSON lines, Avro; Confluent and single-object
//!   framing) into events, or a reason why not;
//! - [`config`]: the SLO file, resolved per agent;
//! - [`engine`]: the pure, deterministic core — windows, SLO metrics, error
//!   budget, circuit breaker, alerts, accuracy. No I/O, no clock reads: time is
//!   passed in;
//! - [`output`]: the typed records the engine emits (breaker transitions,
//!   alerts, budget snapshots) and their JSON form;
//! - [`encode`]: output records to bytes (JSON, or Avro with Confluent or
//!   single-object framing), with the headers that name them;
//! - [`registry`]: a blocking client for a Confluent-compatible schema registry;
//! - [`replay`]: the engine over a file, with timers on stream time;
//! - [`generate`]: a seeded generator of realistic agent traffic;
//! - [`chaos`]: scenario files, fault manifests and the chaos report.

pub mod chaos;
pub mod config;
pub mod decode;
pub mod encode;
pub mod engine;
pub mod event;
pub mod generate;
pub mod http;
pub mod kafka;
pub mod output;
pub mod registry;
pub mod replay;

//! The records the engine emits. Each has an Avro schema in `schemas/` and a
//! JSON form (serde, field order as declared, so output is byte-stable).
//!
//! Every record carries the agent's `seq`: one counter per agent across all
//! its records, strictly increasing, so a consumer can drop a repeat or a
//! stale record by keeping the highest `seq` it has seen per agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Severity;
use crate::engine::alert::AlertStatus;
use crate::engine::breaker::{Reason, StateName};
use crate::engine::budget::BudgetStatus;
use crate::event::TimestampMs;

/// Avro has no unsigned types: counters go out as `long`. Saturates, though
/// no real counter comes near 2^63.
pub(crate) fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Small counts and depths go out as Avro `int`.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A breaker state change, for the compacted breaker-state topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerTransition {
    pub agent_id: String,
    pub seq: i64,
    pub state: StateName,
    pub previous_state: StateName,
    pub reason: Reason,
    /// failed / tasks over the breaker window; null with no task.
    pub failure_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub window_tasks: i64,
    pub window_failed: i64,
    /// When an OPEN breaker will half-open.
    pub retry_at: Option<TimestampMs>,
    /// The cooldown that produced `retry_at`.
    pub cooldown_ms: Option<i64>,
    /// Event time of the cause, or the cooldown's due time.
    pub event_time: TimestampMs,
}

/// An alert starting, changing severity, or ending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable for one episode: FIRING, escalations and RESOLVED share it.
    pub alert_id: String,
    pub agent_id: String,
    pub seq: i64,
    pub rule: String,
    pub status: AlertStatus,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: f64,
    /// The window the value is computed over, e.g. `24h`.
    pub window: String,
    pub started_at: TimestampMs,
    pub event_time: TimestampMs,
}

/// Why a snapshot was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotTrigger {
    /// The budget status changed.
    StatusChange,
    /// Written on the periodic schedule for an agent that changed.
    Periodic,
    /// The end of a replay, or a shutdown.
    Final,
}

/// Burn rate over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnRate {
    pub window: String,
    pub window_ms: i64,
    pub burn_rate: Option<f64>,
    pub tasks: i64,
}

/// The SLO the snapshot was computed against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloSummary {
    /// `defaults`, an exact agent id, or the glob that matched.
    pub source: String,
    pub task_success_rate: f64,
    pub max_tool_calls_per_task: f64,
    pub max_latency_ms: i64,
    pub max_error_rate: f64,
    pub min_availability: f64,
    pub window_ms: i64,
    pub on_budget_exhausted: String,
    pub max_delegation_depth: i32,
}

/// The breaker as of the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerView {
    pub state: StateName,
    pub retry_at: Option<TimestampMs>,
    pub time_until_retry: Option<f64>,
    pub circuit_opens_24h: i32,
    pub failure_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub window_tasks: i64,
    pub window_failed: i64,
}

/// The seed's AgentMetrics view (SPEC §3, §11) over the budget window. A rate
/// whose denominator is 0 is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMetrics {
    pub agent_id: String,
    pub tasks: i64,
    pub attempts: i64,
    pub failed: i64,
    pub task_success_rate: Option<f64>,
    pub availability: Option<f64>,
    pub avg_tool_calls: Option<f64>,
    pub policy_violation_rate: Option<f64>,
    pub hallucination_rate: Option<f64>,
    pub intent_miss_rate: Option<f64>,
    pub delegation_depth_avg: Option<f64>,
    pub delegation_depth_max: Option<i32>,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<i64>,
    pub p95_latency_ms: Option<i64>,
    pub p99_latency_ms: Option<i64>,
    /// Eval category → pass rate.
    pub eval_pass_rates: BTreeMap<String, Option<f64>>,
    pub error_budget_remaining: f64,
    pub circuit_state: StateName,
    pub circuit_opens_24h: i32,
    pub time_until_retry: Option<f64>,
}

/// Declared against measured accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyView {
    pub version: String,
    pub expires_at: TimestampMs,
    pub expired: bool,
    pub declared: BTreeMap<String, f64>,
    pub measured: BTreeMap<String, Option<f64>>,
    pub samples: BTreeMap<String, i64>,
}

/// The budget and everything around it, for the compacted snapshots topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    pub agent_id: String,
    pub seq: i64,
    pub trigger: SnapshotTrigger,
    /// The time the snapshot describes (the engine clock).
    pub event_time: TimestampMs,
    pub slo: SloSummary,
    /// First millisecond still inside the budget window.
    pub window_start: TimestampMs,
    pub window_end: TimestampMs,
    pub tasks: i64,
    pub failed: i64,
    pub consumed: f64,
    pub remaining_percent: f64,
    pub status: BudgetStatus,
    pub recommendation: String,
    pub burn_rates: Vec<BurnRate>,
    pub breaker: BreakerView,
    pub metrics: AgentMetrics,
    /// SLO objectives currently missed (`task_success_rate`, `availability`, …).
    pub slo_violations: Vec<String>,
    /// Rules firing now.
    pub firing_alerts: Vec<String>,
    pub accuracy: Option<AccuracyView>,
}

/// Anything the engine emits, tagged with `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    BreakerTransition(BreakerTransition),
    Alert(AlertEvent),
    BudgetSnapshot(Box<BudgetSnapshot>),
}

impl Output {
    pub fn agent_id(&self) -> &str {
        match self {
            Output::BreakerTransition(t) => &t.agent_id,
            Output::Alert(a) => &a.agent_id,
            Output::BudgetSnapshot(s) => &s.agent_id,
        }
    }

    pub fn seq(&self) -> i64 {
        match self {
            Output::BreakerTransition(t) => t.seq,
            Output::Alert(a) => a.seq,
            Output::BudgetSnapshot(s) => s.seq,
        }
    }
}

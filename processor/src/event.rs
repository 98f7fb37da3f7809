//! The input: one agent task event per finished task (SPEC §2).
//!
//! [`TaskEvent`] is the validated domain type the engine consumes. Decoders
//! (`crate::decode`) turn wire records into it and refuse anything that would
//! make a window lie: a negative latency, more blocked tool calls than calls,
//! an empty agent id. A `TaskEvent` that exists is therefore always valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Epoch milliseconds (UTC). Event time for events, stream or wall time for timers.
pub type TimestampMs = i64;

/// 9999-12-31T23:59:59.999Z: later timestamps are refused, which keeps all
/// window and timer arithmetic far from overflow.
pub const MAX_TIMESTAMP: TimestampMs = 253_402_300_799_999;

/// 30 days: a longer task is a clock bug, and the bound keeps per-window
/// latency sums far from overflow.
pub const MAX_LATENCY_MS: u64 = 30 * 86_400_000;

/// How a task ended.
///
/// ```
/// use breakwater::event::Outcome;
/// assert!(Outcome::Timeout.is_failed());
/// assert!(!Outcome::Unavailable.is_task());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
    /// The agent could not take the task: an attempt, not a task.
    Unavailable,
}

impl Outcome {
    /// SUCCESS, FAILURE and TIMEOUT are tasks; UNAVAILABLE is only an attempt.
    pub fn is_task(self) -> bool {
        !matches!(self, Outcome::Unavailable)
    }

    /// FAILURE and TIMEOUT count against the error budget.
    pub fn is_failed(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Timeout)
    }

    /// The wire spelling, as in the Avro enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Failure => "FAILURE",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Unavailable => "UNAVAILABLE",
        }
    }

    /// Parses the wire spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "SUCCESS" => Outcome::Success,
            "FAILURE" => Outcome::Failure,
            "TIMEOUT" => Outcome::Timeout,
            "UNAVAILABLE" => Outcome::Unavailable,
            _ => return None,
        })
    }
}

/// One per-category evaluation result, e.g. `factual_retrieval` passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eval {
    pub category: String,
    pub passed: bool,
}

/// A validated agent task event.
///
/// ```
/// use breakwater::event::{Outcome, TaskEvent};
/// let e = TaskEvent::new("e-1", "research-agent", 1_700_000_000_000, Outcome::Success);
/// assert_eq!(e.agent_id, "research-agent");
/// assert_eq!(e.tool_calls, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub event_id: String,
    pub agent_id: String,
    pub task_id: String,
    /// Event time: when the task finished.
    pub timestamp: TimestampMs,
    pub outcome: Outcome,
    pub latency_ms: u64,
    /// Tool calls attempted, blocked ones included.
    pub tool_calls: u32,
    /// Of `tool_calls`, those blocked by governance (never more than `tool_calls`).
    pub policy_violations: u32,
    /// `None`: not evaluated.
    pub hallucination: Option<bool>,
    /// `None`: not evaluated.
    pub intent_met: Option<bool>,
    pub delegation_depth: u32,
    pub evals: Vec<Eval>,
    pub error_type: Option<String>,
    pub model: Option<String>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cost_usd: Option<f64>,
    pub attributes: BTreeMap<String, String>,
}

impl TaskEvent {
    /// A minimal event; the other fields start empty. Handy in tests and generators.
    pub fn new(
        event_id: impl Into<String>,
        agent_id: impl Into<String>,
        timestamp: TimestampMs,
        outcome: Outcome,
    ) -> Self {
        let event_id = event_id.into();
        TaskEvent {
            task_id: event_id.clone(),
            event_id,
            agent_id: agent_id.into(),
            timestamp,
            outcome,
            latency_ms: 0,
            tool_calls: 0,
            policy_violations: 0,
            hallucination: None,
            intent_met: None,
            delegation_depth: 0,
            evals: Vec::new(),
            error_type: None,
            model: None,
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Checks the invariants a decoder cannot express in types alone.
    /// (`inline`: the Avro reader's time per event is a few dozen
    /// nanoseconds, a call and its spills are a visible part of it.)
    #[inline]
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        if !(0..=MAX_TIMESTAMP).contains(&self.timestamp) {
            return Err(InvalidEvent::OutOfRange {
                field: "timestamp",
                value: self.timestamp.to_string(),
                allowed: "epoch milliseconds from 1970-01-01 to 9999-12-31",
            });
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(InvalidEvent::OutOfRange {
                field: "latency_ms",
                value: self.latency_ms.to_string(),
                allowed: "0 to 2592000000 (30 days)",
            });
        }
        if self.agent_id.is_empty() {
            return Err(InvalidEvent::EmptyField("agent_id"));
        }
        if self.event_id.is_empty() {
            return Err(InvalidEvent::EmptyField("event_id"));
        }
        if self.policy_violations > self.tool_calls {
            return Err(InvalidEvent::ViolationsExceedCalls {
                policy_violations: self.policy_violations,
                tool_calls: self.tool_calls,
            });
        }
        if let Some(c) = self.cost_usd {
            if !c.is_finite() || c < 0.0 {
                return Err(InvalidEvent::OutOfRange {
                    field: "cost_usd",
                    value: c.to_string(),
                    allowed: "a finite number >= 0",
                });
            }
        }
        if self.evals.iter().any(|e| e.category.is_empty()) {
            return Err(InvalidEvent::EmptyField("evals.category"));
        }
        Ok(())
    }
}

/// Why a record is not a valid task event. The message is what goes into the
/// dead-letter header and the replay error line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` must not be empty")]
    EmptyField(&'static str),
    #[error("field `{field}` has value {value}: allowed is {allowed}")]
    OutOfRange {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("policy_violations ({policy_violations}) exceeds tool_calls ({tool_calls})")]
    ViolationsExceedCalls {
        policy_violations: u32,
        tool_calls: u32,
    },
    #[error("unknown outcome {0:?}: allowed are SUCCESS, FAILURE, TIMEOUT, UNAVAILABLE")]
    UnknownOutcome(String),
    #[error("bad timestamp {0:?}: expected epoch milliseconds or an RFC 3339 date-time")]
    BadTimestamp(String),
}

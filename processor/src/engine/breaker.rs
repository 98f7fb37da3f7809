//! The per-agent circuit breaker (SPEC §6), as a pure state machine.
//!
//! Vocabulary follows resilience4j: CLOSED lets work through, OPEN rejects it
//! until a cooldown elapses, HALF_OPEN lets a few probe tasks decide, and the
//! operator states FORCED_OPEN and DISABLED hold until an operator moves them.
//!
//! Decisions this module makes where the SPEC is silent:
//! - A HALF_OPEN probe passes when the task succeeded, took no longer than
//!   `latency_threshold_ms` and did not loop; an UNAVAILABLE attempt fails it
//!   (the agent could not even take the task).
//! - The BUDGET_EXHAUSTED trip is armed once per exhaustion: after it fires,
//!   probes can close the breaker even while the budget is still exhausted,
//!   and it re-arms only when the budget leaves EXHAUSTED. Otherwise a
//!   circuit_break agent would flap open every cooldown for a whole day.
//! - Like the error_budget_remaining alert, the BUDGET_EXHAUSTED trip waits
//!   until the budget window holds `alerts.min_tasks` tasks: one failure in
//!   the first twenty tasks of a day exhausts a 95 % budget on paper, but it
//!   is no reason to cut an agent off.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::counts::{BreakerBucket, BreakerCounts};
use super::window::{SlidingWindow, BREAKER_BUCKETS};
use crate::config::BreakerConfig;
use crate::event::{Outcome, TaskEvent, TimestampMs};

const DAY_MS: i64 = 24 * 3_600_000;
/// Bound on remembered open times; with the minimum cooldown of 1 s an agent
/// could in theory open more often, so the count saturates here.
pub(crate) const MAX_REMEMBERED_OPENS: usize = 1024;

/// The breaker's state; data that only makes sense in one state lives in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerState {
    Closed,
    Open { retry_at: TimestampMs },
    HalfOpen { probes_passed: u32 },
    ForcedOpen,
    Disabled,
}

impl BreakerState {
    pub fn name(self) -> StateName {
        match self {
            BreakerState::Closed => StateName::Closed,
            BreakerState::Open { .. } => StateName::Open,
            BreakerState::HalfOpen { .. } => StateName::HalfOpen,
            BreakerState::ForcedOpen => StateName::ForcedOpen,
            BreakerState::Disabled => StateName::Disabled,
        }
    }
}

/// The state as routers see it on the breaker-state topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateName {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

impl StateName {
    pub const ALL: [StateName; 5] = [
        StateName::Closed,
        StateName::Open,
        StateName::HalfOpen,
        StateName::ForcedOpen,
        StateName::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Closed => "CLOSED",
            StateName::Open => "OPEN",
            StateName::HalfOpen => "HALF_OPEN",
            StateName::ForcedOpen => "FORCED_OPEN",
            StateName::Disabled => "DISABLED",
        }
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    FailureRate,
    Latency,
    DelegationLoop,
    BudgetExhausted,
    CooldownElapsed,
    ProbesPassed,
    ProbeFailed,
    Operator,
}

/// An operator command (arrives on the commands topic in `breakwater run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Hold OPEN until an operator says otherwise.
    ForceOpen,
    /// Back to CLOSED, keeping the window's counts.
    ForceClose,
    /// Never trip; let all work through.
    Disable,
    /// Back to CLOSED with a fresh window and the base cooldown.
    Reset,
}

/// One state change, before the agent layer adds the window's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub from: StateName,
    pub to: StateName,
    pub reason: Reason,
    /// Event time of the cause, or the timer's due time.
    pub at: TimestampMs,
    pub retry_at: Option<TimestampMs>,
    pub cooldown_ms: Option<i64>,
}

/// What the breaker needs from its surroundings when an event arrives.
#[derive(Debug, Clone, Copy)]
pub struct EventContext {
    /// The timer clock now (stream time in replay, wall time live): retry
    /// times count from it, so an event that arrives late cannot schedule a
    /// retry in the past.
    pub clock: TimestampMs,
    pub max_delegation_depth: u32,
    /// The budget is EXHAUSTED and the SLO's action is circuit_break.
    pub budget_trip: bool,
}

/// The circuit breaker of one agent.
///
/// ```
/// use breakwater::config::Slo;
/// use breakwater::engine::breaker::{CircuitBreaker, EventContext, StateName};
/// use breakwater::event::{Outcome, TaskEvent};
///
/// let cfg = Slo::default().breaker;
/// let mut b = CircuitBreaker::new(&cfg);
/// let ctx = EventContext { clock: 0, max_delegation_depth: 5, budget_trip: false };
/// let mut loopy = TaskEvent::new("e1", "a", 0, Outcome::Success);
/// loopy.delegation_depth = 9;
/// let t = b.on_event(&cfg, &loopy, ctx).unwrap();
/// assert_eq!(t.to, StateName::Open);
/// assert_eq!(t.retry_at, Some(300_000));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    // pub(crate) for the state codec (`engine::state`).
    pub(crate) state: BreakerState,
    pub(crate) window: SlidingWindow<BreakerBucket>,
    /// Consecutive re-opens from HALF_OPEN: the cooldown is doubled this many times.
    pub(crate) cooldown_level: u32,
    /// Times the breaker went into OPEN, oldest first, pruned past 24 h.
    pub(crate) opens: VecDeque<TimestampMs>,
    pub(crate) budget_trip_armed: bool,
}

impl CircuitBreaker {
    pub fn new(cfg: &BreakerConfig) -> Self {
        CircuitBreaker {
            state: BreakerState::Closed,
            window: SlidingWindow::new(cfg.window_ms, BREAKER_BUCKETS),
            cooldown_level: 0,
            opens: VecDeque::new(),
            budget_trip_armed: true,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The breaker window's counts.
    pub fn counts(&self) -> &BreakerCounts {
        self.window.total()
    }

    pub fn window(&self) -> &SlidingWindow<BreakerBucket> {
        &self.window
    }

    /// Moves the breaker window's end to `now` (for queries).
    pub fn advance_window(&mut self, now: TimestampMs) {
        self.window.advance(now);
    }

    /// When an OPEN breaker will half-open.
    pub fn retry_at(&self) -> Option<TimestampMs> {
        match self.state {
            BreakerState::Open { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// Seconds until the breaker half-opens; `None` unless OPEN.
    pub fn time_until_retry(&self, now: TimestampMs) -> Option<f64> {
        self.retry_at()
            .map(|r| r.saturating_sub(now).max(0) as f64 / 1000.0)
    }

    /// Transitions into OPEN during the 24 h before `now`.
    pub fn opens_24h(&self, now: TimestampMs) -> u32 {
        let since = now.saturating_sub(DAY_MS);
        self.opens.iter().filter(|&&t| t > since).count() as u32
    }

    /// When the window's counts or `circuit_opens_24h` next change with no
    /// new event: the oldest bucket sliding out, or the oldest open turning
    /// 24 h old.
    pub fn next_change(&self) -> Option<TimestampMs> {
        let open = self.opens.front().map(|&t| t.saturating_add(DAY_MS));
        [self.window.next_expiry(), open]
            .into_iter()
            .flatten()
            .min()
    }

    /// Forgets open times older than 24 h before `now`.
    pub fn prune_opens(&mut self, now: TimestampMs) {
        let before = now.saturating_sub(DAY_MS);
        while self.opens.front().is_some_and(|&t| t <= before) {
            self.opens.pop_front();
        }
    }

    /// Counts the event and applies the trip or probe rules.
    pub fn on_event(
        &mut self,
        cfg: &BreakerConfig,
        e: &TaskEvent,
        ctx: EventContext,
    ) -> Option<Transition> {
        if !ctx.budget_trip {
            self.budget_trip_armed = true;
        }
        let recorded = self.window.record(e.timestamp, |b, total| {
            b.add(e, ctx.max_delegation_depth);
            total.add(e, ctx.max_delegation_depth);
        });
        let looped = e.delegation_depth > ctx.max_delegation_depth;
        match self.state {
            BreakerState::Closed => {
                let reason = if looped {
                    Some(Reason::DelegationLoop)
                } else if recorded {
                    self.rate_trip(cfg)
                } else {
                    None
                };
                let reason = reason.or_else(|| {
                    (ctx.budget_trip && self.budget_trip_armed).then_some(Reason::BudgetExhausted)
                });
                if reason == Some(Reason::BudgetExhausted) {
                    self.budget_trip_armed = false;
                }
                reason.map(|r| self.open(cfg, r, e.timestamp, ctx.clock))
            }
            BreakerState::HalfOpen { probes_passed } => {
                let passed = e.outcome == Outcome::Success
                    && e.latency_ms <= cfg.latency_threshold_ms
                    && !looped;
                if !passed {
                    self.cooldown_level = self.cooldown_level.saturating_add(1);
                    return Some(self.open(cfg, Reason::ProbeFailed, e.timestamp, ctx.clock));
                }
                let probes_passed = probes_passed + 1;
                if probes_passed < cfg.half_open_probes {
                    self.state = BreakerState::HalfOpen { probes_passed };
                    return None;
                }
                self.cooldown_level = 0;
                self.window.clear();
                Some(self.set(BreakerState::Closed, Reason::ProbesPassed, e.timestamp))
            }
            BreakerState::Open { .. } | BreakerState::ForcedOpen | BreakerState::Disabled => None,
        }
    }

    fn rate_trip(&self, cfg: &BreakerConfig) -> Option<Reason> {
        let c = self.window.total();
        if c.tasks < cfg.min_calls as u64 {
            return None;
        }
        if c.failure_rate().is_some_and(|r| r >= cfg.failure_threshold) {
            Some(Reason::FailureRate)
        } else if c
            .avg_latency_ms()
            .is_some_and(|l| l > cfg.latency_threshold_ms as f64)
        {
            Some(Reason::Latency)
        } else {
            None
        }
    }

    /// Fires the cooldown timer: OPEN → HALF_OPEN once `now` reaches retry_at.
    pub fn on_timer(&mut self, now: TimestampMs) -> Option<Transition> {
        match self.state {
            BreakerState::Open { retry_at } if now >= retry_at => Some(self.set(
                BreakerState::HalfOpen { probes_passed: 0 },
                Reason::CooldownElapsed,
                retry_at,
            )),
            _ => None,
        }
    }

    /// Applies an operator command; `None` when it changes nothing.
    pub fn command(&mut self, cmd: Command, now: TimestampMs) -> Option<Transition> {
        let target = match cmd {
            Command::ForceOpen => BreakerState::ForcedOpen,
            Command::Disable => BreakerState::Disabled,
            Command::ForceClose => BreakerState::Closed,
            Command::Reset => {
                self.window.clear();
                self.cooldown_level = 0;
                self.budget_trip_armed = true;
                BreakerState::Closed
            }
        };
        (self.state != target).then(|| self.set(target, Reason::Operator, now))
    }

    fn open(
        &mut self,
        cfg: &BreakerConfig,
        reason: Reason,
        at: TimestampMs,
        clock: TimestampMs,
    ) -> Transition {
        let cooldown_ms = cooldown_for(cfg, self.cooldown_level);
        let retry_at = at.max(clock) + cooldown_ms;
        if self.opens.len() == MAX_REMEMBERED_OPENS {
            self.opens.pop_front();
        }
        self.opens.push_back(at);
        let mut t = self.set(BreakerState::Open { retry_at }, reason, at);
        t.cooldown_ms = Some(cooldown_ms);
        t
    }

    fn set(&mut self, to: BreakerState, reason: Reason, at: TimestampMs) -> Transition {
        let from = self.state.name();
        self.state = to;
        Transition {
            from,
            to: to.name(),
            reason,
            at,
            retry_at: self.retry_at(),
            cooldown_ms: None,
        }
    }
}

/// base × 2^level, capped at the maximum.
///
/// ```
/// let cfg = breakwater::config::Slo::default().breaker; // 300 s, max 3600 s
/// assert_eq!(breakwater::engine::breaker::cooldown_for(&cfg, 0), 300_000);
/// assert_eq!(breakwater::engine::breaker::cooldown_for(&cfg, 3), 2_400_000);
/// assert_eq!(breakwater::engine::breaker::cooldown_for(&cfg, 4), 3_600_000);
/// ```
pub fn cooldown_for(cfg: &BreakerConfig, level: u32) -> i64 {
    let factor = 1i64.checked_shl(level.min(62)).unwrap_or(i64::MAX);
    cfg.cooldown_ms
        .saturating_mul(factor)
        .min(cfg.max_cooldown_ms)
}

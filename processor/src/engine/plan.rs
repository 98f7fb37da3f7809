//! What an SLO implies for the shape of an agent's state, worked out once per
//! SLO rather than once per agent or per event.

use super::alert::{Rule, Trigger};
use super::tail::TailKeys;
use crate::config::{Direction, Slo};

/// The rules with a fixed place in every evaluation, in the order their
/// alerts are emitted; [`SloPlan::fixed`] holds their triggers in this order.
pub(crate) const FIXED_RULES: [Rule; 8] = [
    Rule::TaskSuccessRate,
    Rule::AvgToolCalls,
    Rule::ErrorBudgetRemaining,
    Rule::CircuitOpens24h,
    Rule::PolicyViolationRate,
    Rule::HallucinationRate,
    Rule::P99LatencyMs,
    Rule::Availability,
];

/// Where a burn-rate rule reads its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRef {
    /// The budget window itself (its metrics counts).
    Budget,
    /// One of the agent's dedicated burn-rate windows.
    Burn(u8),
}

/// The burn-rate windows an SLO needs, shared by all agents on that SLO.
///
/// ```
/// use breakwater::config::Slo;
/// use breakwater::engine::plan::{SloPlan, WindowRef};
/// let plan = SloPlan::new(&Slo::default());
/// // 1h/5m, 6h/30m and 24h/6h: the 24 h window is the budget window itself.
/// assert_eq!(plan.burn_windows, vec![3_600_000, 300_000, 21_600_000, 1_800_000]);
/// assert_eq!(plan.rule_windows[2], (WindowRef::Budget, WindowRef::Burn(2)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SloPlan {
    /// Distinct window lengths, in first-use order, other than the budget window.
    pub burn_windows: Vec<i64>,
    /// Per burn-rate rule: (long, short).
    pub rule_windows: Vec<(WindowRef, WindowRef)>,
    /// The p99 latency rule's thresholds as sketch bins.
    pub(crate) p99: TailKeys,
    /// The triggers of [`FIXED_RULES`], in that order.
    pub(crate) fixed: [Trigger; 8],
}

impl SloPlan {
    pub fn new(slo: &Slo) -> Self {
        let mut burn_windows = Vec::new();
        let mut place = |ms: i64| {
            if ms == slo.window_ms {
                return WindowRef::Budget;
            }
            let i = burn_windows
                .iter()
                .position(|&w| w == ms)
                .unwrap_or_else(|| {
                    burn_windows.push(ms);
                    burn_windows.len() - 1
                });
            WindowRef::Burn(i as u8)
        };
        let rule_windows = slo
            .burn_rate
            .rules
            .iter()
            .map(|r| (place(r.long_ms), place(r.short_ms)))
            .collect();
        SloPlan {
            burn_windows,
            rule_windows,
            p99: TailKeys::new(&slo.alerts.p99_latency_ms),
            fixed: FIXED_RULES.map(|rule| fixed_trigger(slo, rule)),
        }
    }
}

/// The trigger of one of [`FIXED_RULES`] under `slo`.
fn fixed_trigger(slo: &Slo, rule: Rule) -> Trigger {
    let a = &slo.alerts;
    let (thresholds, dir) = match rule {
        Rule::TaskSuccessRate => (a.task_success_rate, Direction::Below),
        Rule::AvgToolCalls => (a.avg_tool_calls, Direction::Above),
        Rule::ErrorBudgetRemaining => (a.error_budget_remaining, Direction::Below),
        Rule::CircuitOpens24h => (a.circuit_opens_24h, Direction::Above),
        Rule::PolicyViolationRate => (a.policy_violation_rate, Direction::Above),
        Rule::HallucinationRate => (a.hallucination_rate, Direction::Above),
        Rule::P99LatencyMs => (a.p99_latency_ms, Direction::Above),
        Rule::Availability => (a.availability, Direction::Below),
        _ => unreachable!("{rule:?} is not a fixed rule"),
    };
    Trigger::new(thresholds, dir)
}

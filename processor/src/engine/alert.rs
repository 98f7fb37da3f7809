//! Alert rules and their deduplication (SPEC §7).
//!
//! Each rule is evaluated to a wanted severity (or none). An [`AlertBook`]
//! remembers what is currently firing per rule and turns changes into
//! events: nothing → severity is FIRING, severity → other severity is a new
//! FIRING event with the same alert id (an escalation is never swallowed),
//! severity → nothing is RESOLVED. The same wanted state twice emits nothing.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{Direction, Severity, Thresholds};
use crate::event::TimestampMs;

/// Which rule an alert comes from. Numbers index into the agent's SLO
/// (burn-rate rules) or the engine's category names (accuracy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    TaskSuccessRate,
    AvgToolCalls,
    ErrorBudgetRemaining,
    CircuitOpens24h,
    PolicyViolationRate,
    HallucinationRate,
    P99LatencyMs,
    Availability,
    BurnRate(u8),
    DelegationLoop,
    AccuracyBelowDeclaration(u16),
    AccuracyDeclarationExpired,
}

impl Rule {
    /// The rule's fixed name, for the rules that have one.
    pub fn fixed_name(self) -> Option<&'static str> {
        Some(match self {
            Rule::TaskSuccessRate => "task_success_rate",
            Rule::AvgToolCalls => "avg_tool_calls",
            Rule::ErrorBudgetRemaining => "error_budget_remaining",
            Rule::CircuitOpens24h => "circuit_opens_24h",
            Rule::PolicyViolationRate => "policy_violation_rate",
            Rule::HallucinationRate => "hallucination_rate",
            Rule::P99LatencyMs => "p99_latency_ms",
            Rule::Availability => "availability",
            Rule::DelegationLoop => "delegation_loop",
            Rule::AccuracyDeclarationExpired => "accuracy_declaration_expired",
            Rule::BurnRate(_) | Rule::AccuracyBelowDeclaration(_) => return None,
        })
    }
}

/// What a rule wants right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wanted {
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: f64,
}

/// The severity a value earns against a warning/critical pair; critical wins.
///
/// ```
/// use breakwater::config::{Direction, Severity, Thresholds};
/// use breakwater::engine::alert::level;
/// let t = Thresholds { warning: Some(0.95), critical: Some(0.90) };
/// assert_eq!(level(0.97, &t, Direction::Below), None);
/// assert_eq!(level(0.93, &t, Direction::Below).unwrap().severity, Severity::Warning);
/// assert_eq!(level(0.80, &t, Direction::Below).unwrap().severity, Severity::Critical);
/// ```
pub fn level(value: f64, t: &Thresholds, dir: Direction) -> Option<Wanted> {
    let crosses = |thr: f64| match dir {
        Direction::Below => value < thr,
        Direction::Above => value > thr,
    };
    let hit = |severity, thr: Option<f64>| {
        thr.filter(|&x| crosses(x)).map(|threshold| Wanted {
            severity,
            value: Some(value),
            threshold,
        })
    };
    hit(Severity::Critical, t.critical).or_else(|| hit(Severity::Warning, t.warning))
}

/// A rule's thresholds with the value where its first severity starts,
/// worked out once per SLO: a healthy agent's evaluation of the rule is
/// then one comparison instead of [`level`]'s walk over both severities.
///
/// ```
/// use breakwater::config::{Direction, Severity, Thresholds};
/// use breakwater::engine::alert::Trigger;
/// let t = Trigger::new(Thresholds { warning: Some(0.95), critical: Some(0.90) }, Direction::Below);
/// assert!(!t.reached(0.97));
/// assert!(t.reached(0.93));
/// assert_eq!(t.level(0.80).unwrap().severity, Severity::Critical);
/// // No threshold at all: nothing is ever reached.
/// let off = Trigger::new(Thresholds { warning: None, critical: None }, Direction::Above);
/// assert!(!off.reached(f64::MAX));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trigger {
    thresholds: Thresholds,
    dir: Direction,
    /// The least severe threshold present (the highest for `Below`, the
    /// lowest for `Above`); NaN when none is, which no comparison reaches.
    first: f64,
}

impl Trigger {
    pub fn new(thresholds: Thresholds, dir: Direction) -> Self {
        let present = [thresholds.warning, thresholds.critical]
            .into_iter()
            .flatten();
        let first = match dir {
            Direction::Below => present.reduce(f64::max),
            Direction::Above => present.reduce(f64::min),
        };
        Trigger {
            thresholds,
            dir,
            first: first.unwrap_or(f64::NAN),
        }
    }

    /// Whether `value` earns some severity: `level(value).is_some()`.
    #[inline]
    pub fn reached(&self, value: f64) -> bool {
        match self.dir {
            Direction::Below => value < self.first,
            Direction::Above => value > self.first,
        }
    }

    /// The severity `value` earns, as [`level`] gives it.
    #[inline]
    pub fn level(&self, value: f64) -> Option<Wanted> {
        if !self.reached(value) {
            return None;
        }
        level(value, &self.thresholds, self.dir)
    }
}

/// Whether an alert event starts/changes an alert or ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// An alert currently firing for one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub rule: Rule,
    pub severity: Severity,
    pub threshold: f64,
    pub started_at: TimestampMs,
    pub alert_id: u64,
}

/// A change to report.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub rule: Rule,
    pub status: AlertStatus,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: f64,
    pub started_at: TimestampMs,
    pub alert_id: u64,
}

/// The alerts firing for one agent. Empty (and allocation-free) for a healthy agent.
///
/// ```
/// use breakwater::config::Severity;
/// use breakwater::engine::alert::{AlertBook, AlertStatus, Rule, Wanted};
/// let mut book = AlertBook::default();
/// let warn = Wanted { severity: Severity::Warning, value: Some(0.93), threshold: 0.95 };
/// let c = book.reconcile("a", "task_success_rate", Rule::TaskSuccessRate, Some(0.93), Some(warn), 1).unwrap();
/// assert_eq!(c.status, AlertStatus::Firing);
/// assert!(book.reconcile("a", "task_success_rate", Rule::TaskSuccessRate, Some(0.93), Some(warn), 2).is_none());
/// let r = book.reconcile("a", "task_success_rate", Rule::TaskSuccessRate, Some(0.97), None, 3).unwrap();
/// assert_eq!((r.status, r.alert_id), (AlertStatus::Resolved, c.alert_id));
/// ```
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    /// pub(crate) for the state codec (`engine::state`).
    pub(crate) active: Vec<ActiveAlert>,
}

impl AlertBook {
    pub fn active(&self) -> &[ActiveAlert] {
        &self.active
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn is_firing(&self, rule: Rule) -> bool {
        self.active.iter().any(|a| a.rule == rule)
    }

    /// The severity `rule` fires at, if it fires.
    pub fn severity(&self, rule: Rule) -> Option<Severity> {
        self.active
            .iter()
            .find(|a| a.rule == rule)
            .map(|a| a.severity)
    }

    /// Brings `rule` to `wanted`, returning the event to emit, if any.
    /// `value` is the rule's current value (reported when it resolves);
    /// `rule_name` and `agent_id` only feed the alert id of a new alert.
    pub fn reconcile(
        &mut self,
        agent_id: &str,
        rule_name: &str,
        rule: Rule,
        value: Option<f64>,
        wanted: Option<Wanted>,
        now: TimestampMs,
    ) -> Option<AlertChange> {
        let pos = self.active.iter().position(|a| a.rule == rule);
        match (pos, wanted) {
            (None, None) => None,
            (None, Some(w)) => {
                let alert = ActiveAlert {
                    rule,
                    severity: w.severity,
                    threshold: w.threshold,
                    started_at: now,
                    alert_id: alert_id(agent_id, rule_name, now),
                };
                let change = fired(&alert, w.value);
                self.active.push(alert);
                Some(change)
            }
            (Some(i), Some(w)) => {
                let a = &mut self.active[i];
                if a.severity == w.severity {
                    return None;
                }
                a.severity = w.severity;
                a.threshold = w.threshold;
                Some(fired(a, w.value))
            }
            (Some(i), None) => {
                let a = self.active.swap_remove(i);
                // swap_remove keeps this O(1); restore rule order for stable output.
                self.active.sort_unstable_by_key(|x| x.rule);
                Some(AlertChange {
                    rule,
                    status: AlertStatus::Resolved,
                    severity: a.severity,
                    value,
                    threshold: a.threshold,
                    started_at: a.started_at,
                    alert_id: a.alert_id,
                })
            }
        }
    }
}

fn fired(a: &ActiveAlert, value: Option<f64>) -> AlertChange {
    AlertChange {
        rule: a.rule,
        status: AlertStatus::Firing,
        severity: a.severity,
        value,
        threshold: a.threshold,
        started_at: a.started_at,
        alert_id: a.alert_id,
    }
}

/// A stable id for one alert episode: the same agent, rule and start time
/// give the same id on every run and every instance.
pub fn alert_id(agent_id: &str, rule_name: &str, started_at: TimestampMs) -> u64 {
    let key = format!("{agent_id}\u{0}{rule_name}\u{0}{started_at}");
    xxh3_64(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn threshold() -> impl Strategy<Value = Option<f64>> {
        prop::option::of(prop_oneof![-10.0f64..110.0, Just(0.0), Just(1.0)])
    }

    proptest! {
        /// The trigger's shortcut is exactly `level`, for any pair of
        /// thresholds (either or both off, in either order) and direction.
        #[test]
        fn a_trigger_agrees_with_level(
            warning in threshold(),
            critical in threshold(),
            below in any::<bool>(),
            value in prop_oneof![-20.0f64..120.0, Just(0.0), Just(1.0)],
        ) {
            let t = Thresholds { warning, critical };
            let dir = if below { Direction::Below } else { Direction::Above };
            let trigger = Trigger::new(t, dir);
            let expected = level(value, &t, dir);
            prop_assert_eq!(trigger.reached(value), expected.is_some());
            prop_assert_eq!(trigger.level(value), expected);
            // On a threshold itself, as rates often are.
            for x in [warning, critical].into_iter().flatten() {
                prop_assert_eq!(trigger.level(x), level(x, &t, dir));
            }
        }
    }
}

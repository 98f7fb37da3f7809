//! The resolved SLO of one agent (SPEC §4): every field filled, every value
//! already validated. The engine never sees a partial or unchecked SLO.

use serde::Serialize;

/// What to recommend (and, for `CircuitBreak`, do) when the budget is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    Throttle,
    Degrade,
    CircuitBreak,
}

impl BudgetAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetAction::Throttle => "throttle",
            BudgetAction::Degrade => "degrade",
            BudgetAction::CircuitBreak => "circuit_break",
        }
    }
}

/// Circuit breaker settings (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerConfig {
    /// Trip when failed/tasks in the breaker window is at least this.
    pub failure_threshold: f64,
    /// Trip when the window's average latency is above this.
    pub latency_threshold_ms: u64,
    pub cooldown_ms: i64,
    pub max_cooldown_ms: i64,
    /// The window must hold at least this many tasks before rates can trip it.
    pub min_calls: u32,
    pub window_ms: i64,
    pub half_open_probes: u32,
}

/// Which way a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Fires when the value is below the threshold.
    Below,
    /// Fires when the value is above the threshold.
    Above,
}

/// A warning/critical pair; either side may be switched off (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
}

/// Alert thresholds of SPEC §7, overridable per SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertConfig {
    /// Rate rules stay silent while the budget window holds fewer tasks.
    pub min_tasks: u32,
    pub task_success_rate: Thresholds,
    pub avg_tool_calls: Thresholds,
    pub error_budget_remaining: Thresholds,
    pub circuit_opens_24h: Thresholds,
    pub policy_violation_rate: Thresholds,
    pub hallucination_rate: Thresholds,
    /// Default: warning at the SLO's `max_latency_ms`.
    pub p99_latency_ms: Thresholds,
    /// Default: warning below the SLO's `min_availability`.
    pub availability: Thresholds,
}

/// Severity of an alert.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One multi-window burn-rate rule: fires when the burn rate over both the
/// long and the short window exceeds `factor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRateRule {
    /// Rule name as it appears in alerts, e.g. `burn_rate_1h_5m`.
    pub name: String,
    pub severity: Severity,
    pub factor: f64,
    pub long_ms: i64,
    pub short_ms: i64,
}

/// Burn-rate alerting (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRateConfig {
    /// The long window must hold at least this many tasks.
    pub min_tasks: u32,
    pub rules: Vec<BurnRateRule>,
}

/// Accuracy-declaration checking (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyConfig {
    /// A measured value needs this many samples before it can alert.
    pub min_samples: u32,
    pub severity: Severity,
}

/// The SLO of one agent, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    /// Which config entry produced it: `defaults`, an exact id or a glob.
    pub source: String,
    /// Objective for task_success_rate, in [0, 1).
    pub task_success_rate: f64,
    pub max_tool_calls_per_task: f64,
    pub max_latency_ms: u64,
    /// policy_violation_rate above it violates.
    pub max_error_rate: f64,
    pub min_availability: f64,
    /// The rolling error-budget window.
    pub window_ms: i64,
    pub on_budget_exhausted: BudgetAction,
    /// A task deeper than this is a delegation loop.
    pub max_delegation_depth: u32,
    pub breaker: BreakerConfig,
    pub alerts: AlertConfig,
    pub burn_rate: BurnRateConfig,
    pub accuracy: AccuracyConfig,
}

impl Slo {
    /// The error budget as parts per billion of tasks (objective 0.95 → 50 000 000).
    ///
    /// Integer parts keep the SPEC's worked example exact in floating point:
    /// 0.95, 1000 tasks, 60 failed gives −20 %, not −19.999999999999996 %.
    ///
    /// ```
    /// let slo = breakwater::config::Slo::default();
    /// assert_eq!(slo.budget_ppb(), 50_000_000);
    /// ```
    pub fn budget_ppb(&self) -> u64 {
        // `f64::round` is a libm call on baseline x86-64 (no SSE4.1), and
        // this runs several times per event. For x ≥ 0, `x − trunc(x)` is
        // exact, so this rounds half away from zero exactly as `round`
        // does; a negative x (a rate outside [0, 1], refused at load)
        // clamps to 0 either way. Through `i64`, not `u64`: x ≤ 10⁹ fits,
        // and both conversions are then one instruction each where the
        // unsigned ones branch around the sign bit.
        let x = self.task_success_rate * 1e9;
        let whole = (x as i64).max(0);
        let rounded = whole + i64::from(x - whole as f64 >= 0.5);
        1_000_000_000 - rounded as u64
    }
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

impl Default for Slo {
    /// The seed's numbers (SPEC §4, §6, §7).
    fn default() -> Self {
        let window_ms = 24 * HOUR;
        Slo {
            source: "defaults".to_string(),
            task_success_rate: 0.95,
            max_tool_calls_per_task: 10.0,
            max_latency_ms: 30_000,
            max_error_rate: 0.02,
            min_availability: 0.99,
            window_ms,
            on_budget_exhausted: BudgetAction::Throttle,
            max_delegation_depth: 5,
            breaker: BreakerConfig {
                failure_threshold: 0.05,
                latency_threshold_ms: 30_000,
                cooldown_ms: 300_000,
                max_cooldown_ms: 3_600_000,
                min_calls: 20,
                window_ms: 5 * MINUTE,
                half_open_probes: 5,
            },
            alerts: AlertConfig {
                min_tasks: 20,
                task_success_rate: Thresholds {
                    warning: Some(0.95),
                    critical: Some(0.90),
                },
                avg_tool_calls: Thresholds {
                    warning: Some(15.0),
                    critical: Some(25.0),
                },
                error_budget_remaining: Thresholds {
                    warning: Some(25.0),
                    critical: Some(10.0),
                },
                circuit_opens_24h: Thresholds {
                    warning: Some(3.0),
                    critical: Some(10.0),
                },
                policy_violation_rate: Thresholds {
                    warning: Some(0.05),
                    critical: Some(0.15),
                },
                hallucination_rate: Thresholds {
                    warning: Some(0.05),
                    critical: Some(0.10),
                },
                p99_latency_ms: Thresholds {
                    warning: Some(30_000.0),
                    critical: None,
                },
                availability: Thresholds {
                    warning: Some(0.99),
                    critical: None,
                },
            },
            burn_rate: BurnRateConfig {
                min_tasks: 20,
                rules: default_burn_rules(window_ms),
            },
            accuracy: AccuracyConfig {
                min_samples: 50,
                severity: Severity::Warning,
            },
        }
    }
}

/// The Google SRE workbook's three rules for a 30-day budget, fitted to a
/// budget window of `window_ms`: the page windows (1h/5m, 6h/30m) are kept as
/// they are, and the ticket rule's 3-day long window is clamped to the budget
/// window (a window longer than the budget's own says nothing new).
///
/// ```
/// let rules = breakwater::config::default_burn_rules(24 * 3_600_000);
/// assert_eq!(rules[2].long_ms, 24 * 3_600_000);
/// assert_eq!(rules[0].factor, 14.4);
/// ```
pub fn default_burn_rules(window_ms: i64) -> Vec<BurnRateRule> {
    let rule = |severity, factor, long_ms: i64, short_ms: i64| BurnRateRule {
        name: format!(
            "burn_rate_{}_{}",
            duration_label(long_ms),
            duration_label(short_ms)
        ),
        severity,
        factor,
        long_ms,
        short_ms,
    };
    let ticket_long = (72 * HOUR).min(window_ms);
    vec![
        rule(Severity::Critical, 14.4, HOUR, 5 * MINUTE),
        rule(Severity::Critical, 6.0, 6 * HOUR, 30 * MINUTE),
        rule(
            Severity::Warning,
            1.0,
            ticket_long,
            (6 * HOUR).min(ticket_long),
        ),
    ]
}

/// A short human label for a duration: `5m`, `1h`, `24h`, `90s`, `3d`.
///
/// ```
/// assert_eq!(breakwater::config::duration_label(300_000), "5m");
/// assert_eq!(breakwater::config::duration_label(86_400_000), "24h");
/// ```
pub fn duration_label(ms: i64) -> String {
    const DAY: i64 = 24 * HOUR;
    if ms % DAY == 0 && ms >= 2 * DAY {
        format!("{}d", ms / DAY)
    } else if ms % HOUR == 0 && ms > 0 {
        format!("{}h", ms / HOUR)
    } else if ms % MINUTE == 0 && ms > 0 {
        format!("{}m", ms / MINUTE)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Slo;

    proptest! {
        /// The hand-rolled rounding agrees with `f64::round` on every
        /// objective a config can hold, including the halfway cases.
        #[test]
        fn budget_ppb_rounds_as_round_does(
            rate in prop_oneof![0.0f64..=1.0, (0u64..=2_000_000_000).prop_map(|h| h as f64 / 2e9)],
        ) {
            let slo = Slo { task_success_rate: rate, ..Slo::default() };
            let expected = 1_000_000_000 - (rate * 1e9).round() as u64;
            prop_assert_eq!(slo.budget_ppb(), expected);
        }
    }

    #[test]
    fn budget_ppb_at_the_edges() {
        for (rate, ppb) in [
            (0.0, 1_000_000_000),
            (1.0, 0),
            (0.95, 50_000_000),
            (0.999, 1_000_000),
        ] {
            let slo = Slo {
                task_success_rate: rate,
                ..Slo::default()
            };
            assert_eq!(slo.budget_ppb(), ppb, "rate {rate}");
        }
    }
}

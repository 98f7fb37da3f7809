//! From a layered [`RawSlo`] to a checked [`Slo`]: the built-in defaults fill
//! what no layer set, derived defaults are computed, and every value is
//! range-checked under its dotted key. Checking the layered result rather than
//! each layer is what lets a constraint between two keys
//! (`max_cooldown_seconds >= cooldown_seconds`) hold whichever layers the two
//! came from, and lets derived defaults follow the entry's own values.

use std::fmt::Display;

use super::file::{ConfigError, Res};
use super::raw::{
    Level, RawAction, RawAlerts, RawBreaker, RawBurnRate, RawDuration, RawSlo, RawThresholds,
    DURATION,
};
use super::slo::*;

/// What a number may be.
#[derive(Clone, Copy)]
enum Range {
    /// An objective: [0, 1).
    Objective,
    Rate,
    Positive,
    NonNegative,
    /// error_budget_remaining, in percent: may go negative.
    AtMost100,
}

impl Range {
    fn allows(self, v: f64) -> bool {
        v.is_finite()
            && match self {
                Range::Objective => (0.0..1.0).contains(&v),
                Range::Rate => (0.0..=1.0).contains(&v),
                Range::Positive => v > 0.0,
                Range::NonNegative => v >= 0.0,
                Range::AtMost100 => v <= 100.0,
            }
    }

    fn allowed(self) -> &'static str {
        match self {
            Range::Objective => "a rate in [0, 1) (an objective of 1 leaves no error budget)",
            Range::Rate => "a rate in [0, 1]",
            Range::Positive => "a finite number > 0",
            Range::NonNegative => "a finite number >= 0",
            Range::AtMost100 => "a finite percentage <= 100",
        }
    }
}

/// Converts the values of one entry, naming keys under `prefix`.
pub(super) struct Check<'a> {
    pub(super) prefix: &'a str,
}

impl Check<'_> {
    fn invalid(&self, field: &str, value: impl Display, allowed: impl Display) -> ConfigError {
        ConfigError::invalid(format!("{}.{field}", self.prefix), value, allowed)
    }

    fn ensure<T: Display>(&self, field: &str, v: T, ok: bool, allowed: &str) -> Res<T> {
        if ok {
            Ok(v)
        } else {
            Err(self.invalid(field, v, allowed))
        }
    }

    fn number(&self, field: &str, v: f64, range: Range) -> Res<f64> {
        self.ensure(field, v, range.allows(v), range.allowed())
    }

    fn at_least_one(&self, field: &str, v: Option<u32>, default: u32) -> Res<u32> {
        let v = v.unwrap_or(default);
        self.ensure(field, v, v >= 1, "an integer >= 1")
    }

    fn duration(&self, field: &str, v: Option<&RawDuration>, default: i64) -> Res<i64> {
        match v {
            None => Ok(default),
            Some(d) => d.millis().ok_or_else(|| self.invalid(field, d, DURATION)),
        }
    }

    fn seconds(&self, field: &str, v: Option<u64>, default_ms: i64) -> Res<i64> {
        let Some(s) = v else { return Ok(default_ms) };
        let ms = s.checked_mul(1000).and_then(|ms| i64::try_from(ms).ok());
        ms.filter(|&ms| ms > 0)
            .ok_or_else(|| self.invalid(field, s, "a whole number of seconds >= 1"))
    }

    fn thresholds(
        &self,
        field: &str,
        raw: Option<RawThresholds>,
        default: Thresholds,
        range: Range,
    ) -> Res<Thresholds> {
        let raw = raw.unwrap_or_default();
        let side = |name: &str, v: Option<Level>, default: Option<f64>| match v {
            None => Ok(default),
            Some(Level::Off) => Ok(None),
            Some(Level::At(x)) => self.number(&format!("{field}.{name}"), x, range).map(Some),
        };
        Ok(Thresholds {
            warning: side("warning", raw.warning, default.warning)?,
            critical: side("critical", raw.critical, default.critical)?,
        })
    }

    /// Built-in defaults (with the derived ones) under `raw`, checked.
    pub(super) fn slo(&self, raw: RawSlo, source: &str) -> Res<Slo> {
        let d = Slo::default();
        macro_rules! number {
            ($field:ident, $range:ident) => {
                self.number(
                    stringify!($field),
                    raw.$field.unwrap_or(d.$field),
                    Range::$range,
                )?
            };
        }
        let max_latency_ms = raw.max_latency_ms.unwrap_or(d.max_latency_ms);
        let min_availability = number!(min_availability, Rate);
        let window_ms = self.duration("window", raw.window.as_ref(), d.window_ms)?;
        let alerts = raw.alerts.unwrap_or_default();
        let accuracy = raw.accuracy.unwrap_or_default();
        Ok(Slo {
            source: source.to_string(),
            task_success_rate: number!(task_success_rate, Objective),
            max_tool_calls_per_task: number!(max_tool_calls_per_task, Positive),
            max_latency_ms,
            max_error_rate: number!(max_error_rate, Rate),
            min_availability,
            window_ms,
            on_budget_exhausted: match raw.on_budget_exhausted {
                None => d.on_budget_exhausted,
                Some(RawAction::Throttle) => BudgetAction::Throttle,
                Some(RawAction::Degrade) => BudgetAction::Degrade,
                Some(RawAction::CircuitBreak) => BudgetAction::CircuitBreak,
            },
            max_delegation_depth: raw.max_delegation_depth.unwrap_or(d.max_delegation_depth),
            breaker: self.breaker(raw.breaker.unwrap_or_default(), d.breaker)?,
            alerts: self.alerts(alerts, d.alerts, max_latency_ms, min_availability)?,
            burn_rate: self.burn_rate(raw.burn_rate.unwrap_or_default(), d.burn_rate, window_ms)?,
            accuracy: AccuracyConfig {
                min_samples: accuracy.min_samples.unwrap_or(d.accuracy.min_samples),
                severity: accuracy.severity.map_or(d.accuracy.severity, Into::into),
            },
        })
    }

    fn breaker(&self, raw: RawBreaker, d: BreakerConfig) -> Res<BreakerConfig> {
        let cooldown = raw.cooldown_seconds;
        let cooldown_ms = self.seconds("breaker.cooldown_seconds", cooldown, d.cooldown_ms)?;
        let max_field = "breaker.max_cooldown_seconds";
        let max_cooldown_ms =
            self.seconds(max_field, raw.max_cooldown_seconds, d.max_cooldown_ms)?;
        if max_cooldown_ms < cooldown_ms {
            let at_least = cooldown_ms / 1000;
            let allowed = format!("a whole number of seconds >= cooldown_seconds ({at_least})");
            return Err(self.invalid(max_field, max_cooldown_ms / 1000, allowed));
        }
        let failure_threshold = raw.failure_threshold.unwrap_or(d.failure_threshold);
        let probes = raw.half_open_probes;
        Ok(BreakerConfig {
            failure_threshold: self.number(
                "breaker.failure_threshold",
                failure_threshold,
                Range::Rate,
            )?,
            latency_threshold_ms: raw.latency_threshold_ms.unwrap_or(d.latency_threshold_ms),
            cooldown_ms,
            max_cooldown_ms,
            min_calls: self.at_least_one("breaker.min_calls", raw.min_calls, d.min_calls)?,
            window_ms: self.duration("breaker.window", raw.window.as_ref(), d.window_ms)?,
            half_open_probes: self.at_least_one(
                "breaker.half_open_probes",
                probes,
                d.half_open_probes,
            )?,
        })
    }

    /// Alert rules; `p99_latency_ms` and `availability` default to warning
    /// at the SLO's own `max_latency_ms` and `min_availability`.
    fn alerts(
        &self,
        raw: RawAlerts,
        d: AlertConfig,
        max_latency_ms: u64,
        min_availability: f64,
    ) -> Res<AlertConfig> {
        macro_rules! rule {
            ($name:ident, $default:expr, $range:ident) => {
                self.thresholds(
                    concat!("alerts.", stringify!($name)),
                    raw.$name,
                    $default,
                    Range::$range,
                )?
            };
        }
        let derived = |warning| Thresholds {
            warning: Some(warning),
            critical: None,
        };
        Ok(AlertConfig {
            min_tasks: raw.min_tasks.unwrap_or(d.min_tasks),
            task_success_rate: rule!(task_success_rate, d.task_success_rate, Rate),
            avg_tool_calls: rule!(avg_tool_calls, d.avg_tool_calls, NonNegative),
            error_budget_remaining: rule!(
                error_budget_remaining,
                d.error_budget_remaining,
                AtMost100
            ),
            circuit_opens_24h: rule!(circuit_opens_24h, d.circuit_opens_24h, NonNegative),
            policy_violation_rate: rule!(policy_violation_rate, d.policy_violation_rate, Rate),
            hallucination_rate: rule!(hallucination_rate, d.hallucination_rate, Rate),
            p99_latency_ms: rule!(p99_latency_ms, derived(max_latency_ms as f64), NonNegative),
            availability: rule!(availability, derived(min_availability), Rate),
        })
    }

    /// Burn-rate rules: given ones replace the defaults wholesale.
    fn burn_rate(
        &self,
        raw: RawBurnRate,
        d: BurnRateConfig,
        window_ms: i64,
    ) -> Res<BurnRateConfig> {
        let min_tasks = raw.min_tasks.unwrap_or(d.min_tasks);
        let Some(raw_rules) = raw.rules else {
            return Ok(BurnRateConfig {
                min_tasks,
                rules: default_burn_rules(window_ms),
            });
        };
        let mut rules: Vec<BurnRateRule> = Vec::with_capacity(raw_rules.len());
        for (i, rule) in raw_rules.into_iter().enumerate() {
            let at = |field: &str| format!("burn_rate.rules[{i}].{field}");
            let factor = self.number(&at("factor"), rule.factor, Range::Positive)?;
            let long_ms = self.duration(&at("long"), Some(&rule.long), 0)?;
            let short_ms = self.duration(&at("short"), Some(&rule.short), 0)?;
            if long_ms < short_ms {
                return Err(self.invalid(
                    &at("long"),
                    rule.long,
                    format_args!("a duration >= short ({})", rule.short),
                ));
            }
            let label = || {
                format!(
                    "burn_rate_{}_{}",
                    duration_label(long_ms),
                    duration_label(short_ms)
                )
            };
            let name = rule.name.unwrap_or_else(label);
            if name.is_empty() || rules.iter().any(|r| r.name == name) {
                return Err(self.invalid(
                    &at("name"),
                    format_args!("{name:?}"),
                    "a non-empty name unique among the rules",
                ));
            }
            let severity = rule.severity.into();
            rules.push(BurnRateRule {
                name,
                severity,
                factor,
                long_ms,
                short_ms,
            });
        }
        Ok(BurnRateConfig { min_tasks, rules })
    }
}

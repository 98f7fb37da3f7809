//! The SLO file as written, and how its layers combine. Every key is
//! optional so that layering can tell a key left out (inherited) from a key
//! given; unknown keys are refused. Values are only parsed here: range checks
//! wait until the layers are combined (see `validate`).

use std::collections::HashSet;
use std::fmt::{self, Display};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::slo::Severity;

/// The file as written: every key optional, unknown keys refused.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `defaults`, `agents`, `engine`, `kafka`, `http`"
)]
pub(super) struct RawFile {
    pub(super) defaults: Option<RawSlo>,
    pub(super) agents: Option<RawAgents>,
    pub(super) engine: Option<serde_yaml::Value>,
    pub(super) kafka: Option<serde_yaml::Value>,
    pub(super) http: Option<serde_yaml::Value>,
}

/// `defaults` and every agent entry.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of SLO settings")]
pub(super) struct RawSlo {
    pub(super) task_success_rate: Option<f64>,
    pub(super) max_tool_calls_per_task: Option<f64>,
    pub(super) max_latency_ms: Option<u64>,
    pub(super) max_error_rate: Option<f64>,
    pub(super) min_availability: Option<f64>,
    pub(super) window: Option<RawDuration>,
    pub(super) on_budget_exhausted: Option<RawAction>,
    pub(super) max_delegation_depth: Option<u32>,
    pub(super) breaker: Option<RawBreaker>,
    pub(super) alerts: Option<RawAlerts>,
    pub(super) burn_rate: Option<RawBurnRate>,
    pub(super) accuracy: Option<RawAccuracy>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of breaker settings")]
pub(super) struct RawBreaker {
    pub(super) failure_threshold: Option<f64>,
    pub(super) latency_threshold_ms: Option<u64>,
    pub(super) cooldown_seconds: Option<u64>,
    pub(super) max_cooldown_seconds: Option<u64>,
    pub(super) min_calls: Option<u32>,
    pub(super) window: Option<RawDuration>,
    pub(super) half_open_probes: Option<u32>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of alert rules")]
pub(super) struct RawAlerts {
    pub(super) min_tasks: Option<u32>,
    pub(super) task_success_rate: Option<RawThresholds>,
    pub(super) avg_tool_calls: Option<RawThresholds>,
    pub(super) error_budget_remaining: Option<RawThresholds>,
    pub(super) circuit_opens_24h: Option<RawThresholds>,
    pub(super) policy_violation_rate: Option<RawThresholds>,
    pub(super) hallucination_rate: Option<RawThresholds>,
    pub(super) p99_latency_ms: Option<RawThresholds>,
    pub(super) availability: Option<RawThresholds>,
}

/// `{warning: X, critical: Y}`: absent = inherited, `null` = switched off.
#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping like {warning: X, critical: Y}"
)]
pub(super) struct RawThresholds {
    #[serde(default, deserialize_with = "level")]
    pub(super) warning: Option<Level>,
    #[serde(default, deserialize_with = "level")]
    pub(super) critical: Option<Level>,
}

#[derive(Clone, Copy)]
pub(super) enum Level {
    Off,
    At(f64),
}

fn level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Level>, D::Error> {
    Ok(Some(
        Option::<f64>::deserialize(d)?.map_or(Level::Off, Level::At),
    ))
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping with `min_tasks`, `rules`")]
pub(super) struct RawBurnRate {
    pub(super) min_tasks: Option<u32>,
    pub(super) rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a burn-rate rule like {severity: critical, factor: 14.4, long: 1h, short: 5m}"
)]
pub(super) struct RawRule {
    /// Default: `burn_rate_<long>_<short>`, as the built-in rules are named.
    pub(super) name: Option<String>,
    pub(super) severity: RawSeverity,
    pub(super) factor: f64,
    pub(super) long: RawDuration,
    pub(super) short: RawDuration,
}

#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `min_samples`, `severity`"
)]
pub(super) struct RawAccuracy {
    pub(super) min_samples: Option<u32>,
    pub(super) severity: Option<RawSeverity>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawAction {
    Throttle,
    Degrade,
    CircuitBreak,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawSeverity {
    Warning,
    Critical,
}

impl From<RawSeverity> for Severity {
    fn from(s: RawSeverity) -> Self {
        match s {
            RawSeverity::Warning => Severity::Warning,
            RawSeverity::Critical => Severity::Critical,
        }
    }
}

/// A duration as written: humantime text (`"5m"`) or whole seconds (`300`).
/// Checked when converted, so the error can name the key.
#[derive(Clone)]
pub(super) enum RawDuration {
    Text(String),
    Seconds(i128),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) const DURATION: &str =
    "a positive duration such as \"5m\", \"24h\", \"1d\" or a whole number of seconds";

impl RawDuration {
    /// The value as the file wrote it, for error messages.
    pub(super) fn as_written(&self) -> String {
        match self {
            RawDuration::Text(t) => format!("{t:?}"),
            RawDuration::Seconds(s) => s.to_string(),
        }
    }

    /// Milliseconds, if positive and representable.
    pub(super) fn millis(&self) -> Option<i64> {
        let ms: i128 = match self {
            RawDuration::Seconds(s) => s.checked_mul(1000)?,
            RawDuration::Text(t) => match t.trim().parse::<i128>() {
                Ok(s) => s.checked_mul(1000)?,
                Err(_) => humantime::parse_duration(t.trim())
                    .ok()?
                    .as_millis()
                    .try_into()
                    .ok()?,
            },
        };
        i64::try_from(ms).ok().filter(|&ms| ms > 0)
    }
}

impl Display for RawDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RawDuration::Text(t) => write!(f, "{t:?}"),
            RawDuration::Seconds(s) => write!(f, "{s}"),
        }
    }
}

/// `agents:` in file order; a key given twice is refused.
#[derive(Clone, Default)]
pub(super) struct RawAgents(pub(super) Vec<(String, RawSlo)>);

impl<'de> Deserialize<'de> for RawAgents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAgents;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping from agent id or glob to SLO overrides")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAgents, A::Error> {
                let (mut seen, mut out) = (HashSet::new(), Vec::new());
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate agent key {key:?}: each agent id or glob may appear once"
                        )));
                    }
                    out.push((key, map.next_value()?));
                }
                Ok(RawAgents(out))
            }
        }
        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------- layering

/// `base.layer(top)`: field by field, what `top` sets wins.
pub(super) trait Layer {
    fn layer(self, top: Self) -> Self;
}

impl<T: Layer> Layer for Option<T> {
    fn layer(self, top: Self) -> Self {
        match (self, top) {
            (Some(base), Some(top)) => Some(base.layer(top)),
            (base, top) => top.or(base),
        }
    }
}

/// Leaves: the top value replaces the base one (a rule list replaces wholesale).
macro_rules! replace_layer {
    ($($ty:ty),*) => {$(
        impl Layer for $ty {
            fn layer(self, top: Self) -> Self {
                top
            }
        }
    )*};
}
replace_layer! { f64, u32, u64, RawDuration, RawAction, RawSeverity, Level, Vec<RawRule> }

/// Structs: every field layered on its own.
macro_rules! struct_layer {
    ($($ty:ident { $($field:ident),* })*) => {$(
        impl Layer for $ty {
            fn layer(self, top: Self) -> Self {
                $ty { $($field: self.$field.layer(top.$field)),* }
            }
        }
    )*};
}
struct_layer! {
    RawSlo {
        task_success_rate, max_tool_calls_per_task, max_latency_ms, max_error_rate,
        min_availability, window, on_budget_exhausted, max_delegation_depth, breaker, alerts,
        burn_rate, accuracy
    }
    RawBreaker {
        failure_threshold, latency_threshold_ms, cooldown_seconds, max_cooldown_seconds,
        min_calls, window, half_open_probes
    }
    RawAlerts {
        min_tasks, task_success_rate, avg_tool_calls, error_budget_remaining, circuit_opens_24h,
        policy_violation_rate, hallucination_rate, p99_latency_ms, availability
    }
    RawThresholds { warning, critical }
    RawBurnRate { min_tasks, rules }
    RawAccuracy { min_samples, severity }
}

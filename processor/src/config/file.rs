//! Loading the SLO file: parse into all-optional "raw" structs, layer them
//! (built-in defaults ← `defaults` ← agent entry), convert to [`Slo`] and
//! validate, all at load time. Afterwards [`SloConfig::resolve`] only matches.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display, Write as _};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::slo::*;

/// Why an SLO file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read SLO config {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not the expected shape: an unknown key, a wrong type, an
    /// unknown enum value. `key` is the dotted path (`""` for the document).
    #[error("{}{}{message}", location(.file, .line, .column), key_prefix(.key))]
    Parse {
        file: Option<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        key: String,
        message: String,
    },
    /// Well-formed, but a value is out of range, e.g.
    /// `defaults.task_success_rate: 1.5 is not allowed: expected a rate in [0, 1)`.
    #[error("{}{key}: {value} is not allowed: expected {allowed}", location(.file, &None, &None))]
    Invalid {
        file: Option<PathBuf>,
        /// Full dotted path, e.g. `agents."finance-*".breaker.window`.
        key: String,
        /// The refused value as written (strings quoted).
        value: String,
        /// What would have been accepted.
        allowed: String,
    },
}

fn location(file: &Option<PathBuf>, line: &Option<usize>, column: &Option<usize>) -> String {
    match (file, line, column) {
        (Some(f), Some(l), Some(c)) => format!("{}:{l}:{c}: ", f.display()),
        (Some(f), _, _) => format!("{}: ", f.display()),
        (None, Some(l), Some(c)) => format!("line {l} column {c}: "),
        (None, _, _) => String::new(),
    }
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl ConfigError {
    fn in_file(mut self, path: &Path) -> Self {
        if let ConfigError::Parse { file, .. } | ConfigError::Invalid { file, .. } = &mut self {
            *file = Some(path.to_path_buf());
        }
        self
    }

    fn from_serde(err: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let key = dotted(err.path());
        let inner = err.inner();
        let (line, column) = match inner.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        // serde_yaml decorates its message as "<its path>: <message> at line L
        // column C"; we report both more precisely, so keep the bare message.
        let mut message = inner.to_string();
        if let (Some(l), Some(c)) = (line, column) {
            let suffix = format!(" at line {l} column {c}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        let plain = err.path().to_string();
        if let Some((head, rest)) = message.split_once(": ") {
            let is_path = plain == head
                || plain
                    .strip_prefix(head)
                    .is_some_and(|r| r.starts_with(['.', '[']));
            if is_path {
                message = rest.to_string();
            }
        }
        let file = None;
        ConfigError::Parse {
            file,
            line,
            column,
            key,
            message,
        }
    }
}

/// The dotted key of a serde path, with agent keys quoted: `agents."fin-*".window`.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut under_agents = false;
    for (i, segment) in path.iter().enumerate() {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if i > 0 {
                    out.push('.');
                }
                if i == 1 && under_agents {
                    let _ = write!(out, "{key:?}");
                } else {
                    out.push_str(key);
                }
                under_agents = i == 0 && key == "agents";
            }
            Segment::Unknown => out.push_str(if i > 0 { ".?" } else { "?" }),
        }
    }
    out
}

fn agent_path(key: &str) -> String {
    format!("agents.{key:?}")
}

// ---------------------------------------------------------------- raw file

/// The file as written: every key optional, unknown keys refused.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `defaults`, `agents`, `kafka`, `http`"
)]
struct RawFile {
    defaults: Option<RawSlo>,
    agents: Option<RawAgents>,
    kafka: Option<serde_yaml::Value>,
    http: Option<serde_yaml::Value>,
}

/// `defaults` and every agent entry.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of SLO settings")]
struct RawSlo {
    task_success_rate: Option<f64>,
    max_tool_calls_per_task: Option<f64>,
    max_latency_ms: Option<u64>,
    max_error_rate: Option<f64>,
    min_availability: Option<f64>,
    window: Option<RawDuration>,
    on_budget_exhausted: Option<RawAction>,
    max_delegation_depth: Option<u32>,
    breaker: Option<RawBreaker>,
    alerts: Option<RawAlerts>,
    burn_rate: Option<RawBurnRate>,
    accuracy: Option<RawAccuracy>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of breaker settings")]
struct RawBreaker {
    failure_threshold: Option<f64>,
    latency_threshold_ms: Option<u64>,
    cooldown_seconds: Option<u64>,
    max_cooldown_seconds: Option<u64>,
    min_calls: Option<u32>,
    window: Option<RawDuration>,
    half_open_probes: Option<u32>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, expecting = "a mapping of alert rules")]
struct RawAlerts {
    min_tasks: Option<u32>,
    task_success_rate: Option<RawThresholds>,
    avg_tool_calls: Option<RawThresholds>,
    error_budget_remaining: Option<RawThresholds>,
    circuit_opens_24h: Option<RawThresholds>,
    policy_violation_rate: Option<RawThresholds>,
    hallucination_rate: Option<RawThresholds>,
    p99_latency_ms: Option<RawThresholds>,
    availability: Option<RawThresholds>,
}

/// `{warning: X, critical: Y}`: absent = inherited, `null` = switched off.
#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping like {warning: X, critical: Y}"
)]
struct RawThresholds {
    #[serde(default, deserialize_with = "level")]
    warning: Option<Level>,
    #[serde(default, deserialize_with = "level")]
    critical: Option<Level>,
}

#[derive(Clone, Copy)]
enum Level {
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
struct RawBurnRate {
    min_tasks: Option<u32>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a burn-rate rule like {severity: critical, factor: 14.4, long: 1h, short: 5m}"
)]
struct RawRule {
    /// Default: `burn_rate_<long>_<short>`, as the built-in rules are named.
    name: Option<String>,
    severity: RawSeverity,
    factor: f64,
    long: RawDuration,
    short: RawDuration,
}

#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `min_samples`, `severity`"
)]
struct RawAccuracy {
    min_samples: Option<u32>,
    severity: Option<RawSeverity>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawAction {
    Throttle,
    Degrade,
    CircuitBreak,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawSeverity {
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
enum RawDuration {
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

const DURATION: &str =
    "a positive duration such as \"5m\", \"24h\", \"1d\" or a whole number of seconds";

impl RawDuration {
    /// Milliseconds, if positive and representable.
    fn millis(&self) -> Option<i64> {
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
struct RawAgents(Vec<(String, RawSlo)>);

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
trait Layer {
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

// ---------------------------------------------------------------- checking

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

/// Conversion results.
type Res<T> = Result<T, ConfigError>;

fn invalid(key: String, value: impl Display, allowed: impl Display) -> ConfigError {
    let (value, allowed) = (value.to_string(), allowed.to_string());
    ConfigError::Invalid {
        file: None,
        key,
        value,
        allowed,
    }
}

/// Converts the values of one entry, naming keys under `prefix`.
struct Check<'a> {
    prefix: &'a str,
}

impl Check<'_> {
    fn invalid(&self, field: &str, value: impl Display, allowed: impl Display) -> ConfigError {
        invalid(format!("{}.{field}", self.prefix), value, allowed)
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
    fn slo(&self, raw: RawSlo, source: &str) -> Res<Slo> {
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

// ---------------------------------------------------------------- matching

/// Does an agent key use glob syntax (`*`, `?`, `[...]`, `{a,b}`, `\`)?
fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '[', '{', '\\'])
}

/// Characters of `pattern` that must appear literally in a match: everything
/// but `*`, `?`, classes `[...]`, and the braces and commas of `{a,b}`
/// (letters inside alternatives count, summed over the alternatives).
fn literal_chars(pattern: &str) -> usize {
    let (mut count, mut braces) = (0, 0usize);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => {}
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            ',' if braces > 0 => {}
            '\\' => count += usize::from(chars.next().is_some()),
            '[' => {
                // `]` right after `[`, `[!` or `[^` is a member, not the end.
                let mut first = true;
                for c in chars.by_ref() {
                    if c == ']' && !first {
                        break;
                    }
                    first = first && (c == '!' || c == '^');
                }
            }
            _ => count += 1,
        }
    }
    count
}

/// The SLO file, resolved: one validated [`Slo`] per entry, and a matcher
/// from agent ids to entries.
///
/// Matching ([`SloConfig::resolve`]): an agent key without glob syntax is an
/// exact id and always wins. Otherwise, among the glob keys (`*`, `?`,
/// `[...]`, `{a,b}`, via `globset`) that match, the most specific wins: the one
/// with the most literal characters (see below); a tie goes to the longer
/// pattern, then to the lexicographically smallest. An id that nothing matches
/// gets `defaults`. Literal characters are all but `*`, `?`, classes `[...]`
/// and the braces and commas of `{a,b}`, so `finance-*` (8) beats `fin*` (3)
/// beats `*` (0).
///
/// ```
/// use breakwater::config::{BudgetAction, SloConfig, SloId};
///
/// let config = SloConfig::from_yaml_str(
///     r#"
/// defaults:
///   task_success_rate: 0.99
/// agents:
///   "finance-*":
///     on_budget_exhausted: circuit_break
/// "#,
/// )?;
/// let slo = config.slo(config.resolve("finance-payments"));
/// assert_eq!(slo.source, "finance-*");
/// assert_eq!(slo.on_budget_exhausted, BudgetAction::CircuitBreak);
/// assert_eq!(slo.task_success_rate, 0.99); // from `defaults`
/// assert_eq!(config.resolve("search"), SloId(0)); // `defaults` itself
/// # Ok::<(), breakwater::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SloConfig {
    /// Index 0 is `defaults`, then the agent entries in file order.
    slos: Vec<Slo>,
    exact: HashMap<String, SloId>,
    /// Glob keys, added most specific first: the lowest match index wins.
    globs: GlobSet,
    glob_ids: Vec<SloId>,
    /// The `kafka:` section, not interpreted here.
    pub kafka: Option<serde_yaml::Value>,
    /// The `http:` section, not interpreted here.
    pub http: Option<serde_yaml::Value>,
}

/// Index of a resolved SLO in [`SloConfig::slos`]; `SloId(0)` is `defaults`.
///
/// Serialized as the bare number. It is an index into one loaded file: state
/// saved with it is only meaningful against the same agent entries in the same order.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SloId(pub u32);

impl Default for SloConfig {
    /// The built-in seed defaults and no agent entries.
    fn default() -> Self {
        SloConfig {
            slos: vec![Slo::default()],
            exact: HashMap::new(),
            globs: GlobSet::empty(),
            glob_ids: Vec::new(),
            kafka: None,
            http: None,
        }
    }
}

impl SloConfig {
    /// Parses, layers and validates an SLO file's text.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(yaml);
        let raw: RawFile = serde_path_to_error::deserialize(de).map_err(ConfigError::from_serde)?;
        Self::from_raw(raw)
    }

    /// Reads and parses an SLO file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text).map_err(|e| e.in_file(path))
    }

    fn from_raw(raw: RawFile) -> Res<Self> {
        let defaults = raw.defaults.unwrap_or_default();
        let mut slos = vec![Check { prefix: "defaults" }.slo(defaults.clone(), "defaults")?];
        let (mut exact, mut globs) = (HashMap::new(), Vec::new());
        for (key, entry) in raw.agents.unwrap_or_default().0 {
            let prefix = agent_path(&key);
            let id = SloId(u32::try_from(slos.len()).expect("fewer than 2^32 agent entries"));
            if key.is_empty() {
                return Err(invalid(prefix, "\"\"", "a non-empty agent id or glob"));
            }
            if is_glob(&key) {
                let glob = Glob::new(&key).map_err(|e| {
                    invalid(
                        prefix.clone(),
                        format_args!("{key:?}"),
                        format_args!("a valid glob ({})", e.kind()),
                    )
                })?;
                globs.push((key.clone(), glob, id));
            } else {
                exact.insert(key.clone(), id);
            }
            slos.push(Check { prefix: &prefix }.slo(defaults.clone().layer(entry), &key)?);
        }
        // Most literal characters, then longest, then smallest pattern first.
        globs.sort_by_cached_key(|(key, _, _)| {
            (
                Reverse(literal_chars(key)),
                Reverse(key.chars().count()),
                key.clone(),
            )
        });
        let mut builder = GlobSetBuilder::new();
        for (_, glob, _) in &globs {
            builder.add(glob.clone());
        }
        let set = builder.build().map_err(|e| {
            invalid(
                "agents".into(),
                "(the glob keys)",
                format_args!("globs that compile together ({e})"),
            )
        })?;
        Ok(SloConfig {
            slos,
            exact,
            globs: set,
            glob_ids: globs.into_iter().map(|(_, _, id)| id).collect(),
            kafka: raw.kafka,
            http: raw.http,
        })
    }

    /// The entry that governs `agent_id`: its exact key, else the most
    /// specific matching glob, else `defaults` (`SloId(0)`). See [`SloConfig`].
    /// Only matching happens here; every `Slo` was resolved at load.
    pub fn resolve(&self, agent_id: &str) -> SloId {
        if let Some(&id) = self.exact.get(agent_id) {
            return id;
        }
        if self.globs.is_empty() {
            return SloId(0);
        }
        // Ascending indices; the set was built most specific first.
        self.globs
            .matches(agent_id)
            .first()
            .map_or(SloId(0), |&i| self.glob_ids[i])
    }

    /// The resolved SLO of an entry.
    ///
    /// # Panics
    /// If `id` did not come from this config.
    pub fn slo(&self, id: SloId) -> &Slo {
        &self.slos[id.0 as usize]
    }

    /// Every resolved SLO: index 0 is `defaults`, then the agent entries in
    /// file order.
    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
defaults:
  task_success_rate: 0.95
  max_tool_calls_per_task: 10
  max_latency_ms: 30000
  max_error_rate: 0.02
  min_availability: 0.99
  window: 24h
  on_budget_exhausted: throttle      # throttle | degrade | circuit_break
  max_delegation_depth: 5
  breaker:
    failure_threshold: 0.05
    latency_threshold_ms: 30000
    cooldown_seconds: 300
    max_cooldown_seconds: 3600
    min_calls: 20
    window: 5m
    half_open_probes: 5
  alerts:
    min_tasks: 20
    task_success_rate: {warning: 0.95, critical: 0.90}
    avg_tool_calls: {warning: 15, critical: 25}
    error_budget_remaining: {warning: 25, critical: 10}
    circuit_opens_24h: {warning: 3, critical: 10}
    policy_violation_rate: {warning: 0.05, critical: 0.15}
    hallucination_rate: {warning: 0.05, critical: 0.10}
    p99_latency_ms: {warning: 30000, critical: null}
    availability: {warning: 0.99, critical: null}
  burn_rate:
    min_tasks: 20
    rules:
      - {name: fast, severity: critical, factor: 14.4, long: 1h, short: 5m}
  accuracy:
    min_samples: 50
    severity: warning
agents:
  "finance-*":
    on_budget_exhausted: circuit_break
  "research-agent":
    max_tool_calls_per_task: 20
    breaker:
      min_calls: 50
"#;

    fn load(yaml: &str) -> SloConfig {
        SloConfig::from_yaml_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn slo_of<'a>(config: &'a SloConfig, agent: &str) -> &'a Slo {
        config.slo(config.resolve(agent))
    }

    /// The error message, asserting it contains every one of `parts`.
    #[track_caller]
    fn fails(yaml: &str, parts: &[&str]) -> String {
        let message = match SloConfig::from_yaml_str(yaml) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => e.to_string(),
        };
        for part in parts {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
        message
    }

    #[test]
    fn example_loads_and_resolves() {
        let config = load(EXAMPLE);
        assert_eq!(config.slos().len(), 3);
        assert_eq!(config.slos()[1].source, "finance-*");
        assert_eq!(config.slos()[2].source, "research-agent");

        let finance = slo_of(&config, "finance-payments");
        assert_eq!(finance.on_budget_exhausted, BudgetAction::CircuitBreak);
        assert_eq!(finance.task_success_rate, 0.95);

        let research = slo_of(&config, "research-agent");
        assert_eq!(research.max_tool_calls_per_task, 20.0);
        assert_eq!(research.breaker.min_calls, 50);
        let defaults = Slo::default();
        let expected_breaker = BreakerConfig {
            min_calls: 50,
            ..defaults.breaker.clone()
        };
        assert_eq!(research.breaker, expected_breaker);
        assert_eq!(research.burn_rate.rules.len(), 1);
        assert_eq!(research.burn_rate.rules[0].name, "fast");

        assert_eq!(config.resolve("other"), SloId(0));
        let other = slo_of(&config, "other");
        assert_eq!(other.source, "defaults");
        // The example's defaults are the seed's numbers, except the one rule.
        let seed_rules = Slo {
            burn_rate: other.burn_rate.clone(),
            ..Slo::default()
        };
        assert_eq!(*other, seed_rules);
        let rule = &other.burn_rate.rules[0];
        assert_eq!((rule.severity, rule.factor), (Severity::Critical, 14.4));
        assert_eq!((rule.long_ms, rule.short_ms), (3_600_000, 300_000));
    }

    #[test]
    fn empty_file_is_the_builtin_default() {
        for yaml in ["", "# nothing\n", "defaults:\nagents:\n", "{}"] {
            let config = load(yaml);
            assert_eq!(config.slos(), SloConfig::default().slos());
            assert_eq!(config.slos(), &[Slo::default()]);
        }
        // An entry with nothing under it is the defaults under its own name.
        let config = load("agents:\n  a:\n");
        let expected = Slo {
            source: "a".into(),
            ..Slo::default()
        };
        assert_eq!(config.slos()[1], expected);
    }

    #[test]
    fn kafka_and_http_are_kept_opaque() {
        let config = load("kafka: {brokers: [a, b]}\nhttp: {listen: ':8080'}\n");
        let kafka = config.kafka.expect("kafka");
        assert_eq!(kafka["brokers"][1].as_str(), Some("b"));
        assert_eq!(config.http.expect("http")["listen"].as_str(), Some(":8080"));
        assert!(SloConfig::default().kafka.is_none());
    }

    #[test]
    fn exact_beats_glob() {
        let config = load(
            "agents:\n  'research-*': {max_latency_ms: 1}\n  '*': {max_latency_ms: 2}\n  research-agent: {max_latency_ms: 3}\n",
        );
        assert_eq!(slo_of(&config, "research-agent").source, "research-agent");
        assert_eq!(slo_of(&config, "research-agent").max_latency_ms, 3);
        assert_eq!(slo_of(&config, "research-other").source, "research-*");
        assert_eq!(slo_of(&config, "x").source, "*");
    }

    #[test]
    fn more_specific_glob_wins_in_any_order() {
        let orders = [
            ["*", "fin*", "finance-*"],
            ["finance-*", "fin*", "*"],
            ["fin*", "*", "finance-*"],
        ];
        for order in orders {
            let yaml: String = order.iter().map(|k| format!("  {k:?}: {{}}\n")).collect();
            let config = load(&format!("agents:\n{yaml}"));
            assert_eq!(slo_of(&config, "finance-payments").source, "finance-*");
            assert_eq!(slo_of(&config, "fintech").source, "fin*");
            assert_eq!(slo_of(&config, "search").source, "*");
        }
    }

    #[test]
    fn glob_ties_go_to_longer_then_smaller_pattern() {
        // Two literals each: `ab**` is longer than `ab*`; `a*b` < `ab*`.
        let config = load("agents:\n  'ab*': {}\n  'a*b': {}\n");
        assert_eq!(slo_of(&config, "abb").source, "a*b");
        let config = load("agents:\n  'ab*': {}\n  'ab**': {}\n");
        assert_eq!(slo_of(&config, "abc").source, "ab**");
        // Classes and `?` are wildcards: `a[bc]d?` has 2 literals, `a*d` too.
        assert_eq!(literal_chars("a[bc]d?"), 2);
        assert_eq!(literal_chars("[]x]y\\*{p,q}"), 4);
        let config = load("agents:\n  'a[bc]d?': {}\n  'ab*': {}\n  'abd*': {}\n");
        assert_eq!(slo_of(&config, "abdx").source, "abd*");
        assert_eq!(slo_of(&config, "acdx").source, "a[bc]d?");
    }

    #[test]
    fn window_override_recomputes_default_burn_rules() {
        let config = load("agents:\n  short: {window: 2h}\n  secs: {window: 7200}\n");
        let slo = slo_of(&config, "short");
        assert_eq!(slo.window_ms, 7_200_000);
        assert_eq!(slo.burn_rate.rules, default_burn_rules(7_200_000));
        assert_eq!(slo.burn_rate.rules[2].long_ms, 7_200_000);
        assert_eq!(slo_of(&config, "secs").burn_rate.rules, slo.burn_rate.rules);
        assert_eq!(
            slo_of(&config, "other").burn_rate.rules,
            default_burn_rules(86_400_000)
        );

        // Rules given in `defaults` are inherited as they are.
        let config = load(
            "defaults:\n  burn_rate:\n    rules: [{severity: warning, factor: 2, long: 6h, short: 30m}]\nagents:\n  a: {window: 2h}\n",
        );
        let rules = &slo_of(&config, "a").burn_rate.rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name, "burn_rate_6h_30m");
        assert_eq!(rules[0].severity, Severity::Warning);
    }

    #[test]
    fn derived_alert_defaults_follow_the_agent() {
        let config =
            load("defaults: {min_availability: 0.9}\nagents:\n  slow: {max_latency_ms: 60000}\n");
        let slow = slo_of(&config, "slow");
        assert_eq!(
            slow.alerts.p99_latency_ms,
            Thresholds {
                warning: Some(60_000.0),
                critical: None
            }
        );
        assert_eq!(
            slow.alerts.availability,
            Thresholds {
                warning: Some(0.9),
                critical: None
            }
        );
        assert_eq!(
            slo_of(&config, "x").alerts.p99_latency_ms.warning,
            Some(30_000.0)
        );

        // Given explicitly in `defaults`, it no longer follows max_latency_ms.
        let config =
            load("defaults:\n  alerts: {p99_latency_ms: {warning: 5000}}\nagents:\n  slow: {max_latency_ms: 60000}\n");
        assert_eq!(
            slo_of(&config, "slow").alerts.p99_latency_ms.warning,
            Some(5000.0)
        );
    }

    #[test]
    fn alert_sides_layer_separately_and_null_switches_off() {
        let config = load(
            "defaults:\n  alerts: {avg_tool_calls: {warning: 12}}\nagents:\n  a:\n    alerts: {avg_tool_calls: {critical: null}, availability: {critical: 0.5}}\n",
        );
        let a = slo_of(&config, "a");
        assert_eq!(
            a.alerts.avg_tool_calls,
            Thresholds {
                warning: Some(12.0),
                critical: None
            }
        );
        assert_eq!(
            a.alerts.availability,
            Thresholds {
                warning: Some(0.99),
                critical: Some(0.5)
            }
        );
        let d = slo_of(&config, "b");
        assert_eq!(
            d.alerts.avg_tool_calls,
            Thresholds {
                warning: Some(12.0),
                critical: Some(25.0)
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        fails(
            "defautls: {}\n",
            &[
                "line 1 column 1",
                "defautls",
                "unknown field `defautls`",
                "`defaults`",
            ],
        );
        fails(
            "defaults:\n  windw: 5m\n",
            &["defaults.windw: unknown field `windw`", "`window`"],
        );
        fails(
            "defaults:\n  breaker:\n    cooldown: 5\n",
            &[
                "line 3 column 5",
                "defaults.breaker.cooldown: unknown field `cooldown`",
                "`cooldown_seconds`",
            ],
        );
        fails(
            "agents:\n  \"finance-*\":\n    breaker: {windoe: 5m}\n",
            &[
                r#"agents."finance-*".breaker.windoe: unknown field `windoe`"#,
                "`window`",
            ],
        );
        fails(
            "defaults:\n  alerts: {availability: {warn: 1}}\n",
            &[
                "defaults.alerts.availability.warn: unknown field `warn`",
                "`warning`",
            ],
        );
        fails(
            "defaults:\n  burn_rate: {rules: [{factor: 1, long: 1h, short: 5m, sev: warning}]}\n",
            &[
                "defaults.burn_rate.rules[0].sev: unknown field `sev`",
                "`severity`",
            ],
        );
    }

    #[test]
    fn wrong_types_and_enum_values_are_refused() {
        fails(
            "defaults: {on_budget_exhausted: panic}\n",
            &[
                "defaults.on_budget_exhausted",
                "unknown variant `panic`",
                "`throttle`",
                "`circuit_break`",
            ],
        );
        fails(
            "agents:\n  a: {accuracy: {severity: CRITICAL}}\n",
            &[r#"agents."a".accuracy.severity"#, "`CRITICAL`", "`warning`"],
        );
        fails(
            "defaults: {max_latency_ms: fast}\n",
            &["defaults.max_latency_ms", "\"fast\"", "u64"],
        );
        fails(
            "defaults: {breaker: {min_calls: -1}}\n",
            &["defaults.breaker.min_calls", "-1", "u32"],
        );
        fails(
            "defaults: {window: 1.5}\n",
            &["defaults.window", "1.5", "a positive duration"],
        );
        fails(
            "agents: [a, b]\n",
            &["agents", "sequence", "mapping from agent id"],
        );
        fails(
            "agents:\n  a: {}\n  a: {}\n",
            &["agents", "duplicate agent key \"a\""],
        );
        fails("defaults: [1\n", &["line"]);
    }

    #[test]
    fn rates_are_range_checked() {
        fails(
            "defaults:\n  task_success_rate: 1.5\n",
            &["defaults.task_success_rate: 1.5 is not allowed: expected a rate in [0, 1)"],
        );
        fails(
            "defaults: {task_success_rate: 1}\n",
            &["defaults.task_success_rate: 1 is not allowed", "[0, 1)"],
        );
        fails(
            "defaults: {max_error_rate: -0.1}\n",
            &["defaults.max_error_rate: -0.1", "[0, 1]"],
        );
        fails(
            "defaults: {min_availability: .nan}\n",
            &["defaults.min_availability: NaN", "[0, 1]"],
        );
        fails(
            "agents:\n  'finance-*': {breaker: {failure_threshold: 1.5}}\n",
            &[
                r#"agents."finance-*".breaker.failure_threshold: 1.5"#,
                "[0, 1]",
            ],
        );
        fails(
            "defaults: {alerts: {hallucination_rate: {critical: 2}}}\n",
            &["defaults.alerts.hallucination_rate.critical: 2", "[0, 1]"],
        );
        fails(
            "defaults: {alerts: {error_budget_remaining: {warning: 101}}}\n",
            &[
                "defaults.alerts.error_budget_remaining.warning: 101",
                "<= 100",
            ],
        );
        load(
            "defaults: {alerts: {error_budget_remaining: {critical: -50}}, task_success_rate: 0}\n",
        );
        fails(
            "defaults: {max_tool_calls_per_task: 0}\n",
            &["defaults.max_tool_calls_per_task: 0", "> 0"],
        );
        fails(
            "defaults: {breaker: {half_open_probes: 0}}\n",
            &["defaults.breaker.half_open_probes: 0", ">= 1"],
        );
        fails(
            "agents: {a: {breaker: {min_calls: 0}}}\n",
            &[r#"agents."a".breaker.min_calls: 0"#, ">= 1"],
        );
    }

    #[test]
    fn durations_are_checked() {
        let cases = [
            ("\"5x\"", "\"5x\""),
            ("-5m", "\"-5m\""),
            ("-300", "-300"),
            ("0", "0"),
            ("0s", "\"0s\""),
            ("10us", "\"10us\""),
        ];
        for (written, shown) in cases {
            fails(
                &format!("agents:\n  \"finance-*\":\n    breaker: {{window: {written}}}\n"),
                &[
                    &format!(r#"agents."finance-*".breaker.window: {shown} is not allowed"#),
                    "a positive duration",
                ],
            );
        }
        let config =
            load("defaults: {window: 1d, breaker: {window: 90s}}\nagents: {a: {window: '3600'}}\n");
        assert_eq!(config.slos()[0].window_ms, 86_400_000);
        assert_eq!(config.slos()[0].breaker.window_ms, 90_000);
        assert_eq!(config.slos()[1].window_ms, 3_600_000);
        fails(
            "defaults: {window: 5x}\n",
            &["defaults.window: \"5x\" is not allowed", "\"24h\""],
        );
    }

    #[test]
    fn burn_rules_are_checked() {
        let rules = |r: &str| format!("defaults:\n  burn_rate:\n    rules: [{r}]\n");
        fails(
            &rules("{severity: critical, factor: 2, long: 5m, short: 1h}"),
            &["defaults.burn_rate.rules[0].long: \"5m\" is not allowed: expected a duration >= short (\"1h\")"],
        );
        fails(
            &rules("{severity: critical, factor: 0, long: 1h, short: 5m}"),
            &["defaults.burn_rate.rules[0].factor: 0", "> 0"],
        );
        fails(
            &rules("{severity: critical, long: 1h, short: 5m}"),
            &["defaults.burn_rate.rules[0]: missing field `factor`"],
        );
        fails(
            &rules("{severity: critical, factor: 1, long: 1h, short: 5m}, {severity: warning, factor: 2, long: 1h, short: 5m}"),
            &["rules[1].name: \"burn_rate_1h_5m\"", "unique"],
        );
        let config = load(&rules(
            "{severity: warning, factor: 1, long: 3d, short: 6h}",
        ));
        assert_eq!(config.slos()[0].burn_rate.rules[0].name, "burn_rate_3d_6h");
        let config = load(&rules(""));
        assert!(config.slos()[0].burn_rate.rules.is_empty());
    }

    #[test]
    fn cooldowns_are_checked() {
        fails(
            "defaults:\n  breaker: {cooldown_seconds: 600, max_cooldown_seconds: 300}\n",
            &[
                "defaults.breaker.max_cooldown_seconds: 300 is not allowed",
                ">= cooldown_seconds (600)",
            ],
        );
        // A cooldown above the inherited max is refused too.
        fails(
            "agents:\n  a: {breaker: {cooldown_seconds: 7200}}\n",
            &[r#"agents."a".breaker.max_cooldown_seconds: 3600"#, "(7200)"],
        );
        fails(
            "defaults: {breaker: {cooldown_seconds: 0}}\n",
            &["defaults.breaker.cooldown_seconds: 0", ">= 1"],
        );
        fails(
            "defaults: {breaker: {cooldown_seconds: -5}}\n",
            &["defaults.breaker.cooldown_seconds", "-5"],
        );
        let config =
            load("defaults: {breaker: {cooldown_seconds: 10, max_cooldown_seconds: 10}}\n");
        assert_eq!(
            (
                config.slos()[0].breaker.cooldown_ms,
                config.slos()[0].breaker.max_cooldown_ms
            ),
            (10_000, 10_000)
        );
    }

    #[test]
    fn bad_agent_keys_are_refused() {
        fails(
            "agents:\n  'fin[': {}\n",
            &[r#"agents."fin[": "fin[" is not allowed: expected a valid glob"#],
        );
        fails(
            "agents:\n  '': {}\n",
            &[r#"agents."": "" is not allowed"#, "non-empty"],
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir =
            std::env::temp_dir().join(format!("breakwater-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad_key = dir.join("bad_key.yaml");
        std::fs::write(&bad_key, "defaults:\n  breaker:\n    foo: 1\n").unwrap();
        let message = SloConfig::load(&bad_key).unwrap_err().to_string();
        let expected = format!(
            "{}:3:5: defaults.breaker.foo: unknown field `foo`",
            bad_key.display()
        );
        assert!(message.starts_with(&expected), "{message}");

        let bad_value = dir.join("bad_value.yaml");
        std::fs::write(&bad_value, "defaults: {task_success_rate: 1.5}\n").unwrap();
        let message = SloConfig::load(&bad_value).unwrap_err().to_string();
        assert!(message.starts_with(&format!(
            "{}: defaults.task_success_rate: 1.5",
            bad_value.display()
        )));

        let good = dir.join("good.yaml");
        std::fs::write(&good, EXAMPLE).unwrap();
        assert_eq!(SloConfig::load(&good).unwrap().slos().len(), 3);

        let missing = dir.join("missing.yaml");
        let err = SloConfig::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
        assert!(err.to_string().contains("missing.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

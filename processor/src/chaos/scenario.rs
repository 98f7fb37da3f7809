//! Chaos scenario files: agent groups and the faults injected on them.
//!
//! ```yaml
//! seed: 7
//! duration: 30m
//! start: 2026-12-01T00:00:00Z      # optional
//! groups:
//!   - {prefix: support-agent, count: 8, profile: support}
//!   - {prefix: research-agent, count: 4, profile: research, rate: 6}   # tasks/min
//! faults:
//!   - {agents: [support-agent-1], kind: tool_failures, from: 5m, for: 10m, rate: 0.5}
//! ```
//!
//! Unknown keys and bad values are refused, naming the key, the value and
//! what is allowed. [`ChaosScenario::resolve`] turns the file into the
//! generator's [`Scenario`] and a [`Manifest`] of the faults, agent by agent.

use std::path::Path;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::event::TimestampMs;
use crate::generate::{Fault, FaultKind, Fleet, Profile, Scenario, FINANCE, RESEARCH, SUPPORT};

/// Start of a scenario written to a file when neither the file nor the
/// command line gives one: 2026-12-01T00:00:00Z.
pub const DEFAULT_START: TimestampMs = 1_796_083_200_000;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not YAML, or a key that does not belong (serde names the key and the
    /// keys allowed there).
    #[error("{0}")]
    Parse(String),
    #[error("`{key}`: {value:?} is not allowed; expected {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
}

fn invalid(key: impl Into<String>, value: impl ToString, allowed: &str) -> ScenarioError {
    ScenarioError::Invalid {
        key: key.into(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// The scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    seed: u64,
    duration: String,
    #[serde(default)]
    start: Option<String>,
    groups: Vec<RawGroup>,
    #[serde(default)]
    faults: Vec<FaultSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    prefix: String,
    count: usize,
    profile: String,
    /// Tasks per minute per agent (default: the profile's).
    #[serde(default)]
    rate: Option<f64>,
}

/// One fault as written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Agent ids or globs (`support-agent-*`).
    pub agents: Vec<String>,
    /// `tool_failures`, `latency`, `policy_violations`, `hallucinations`,
    /// `tool_call_inflation`, `delegation_loop` or `unavailable`.
    pub kind: String,
    /// Onset after the scenario start, e.g. `10m`.
    pub from: String,
    /// How long it lasts, e.g. `5m`.
    #[serde(rename = "for")]
    pub lasts: String,
    /// Failure, violation or hallucination rate in (0, 1].
    #[serde(default)]
    pub rate: Option<f64>,
    /// Latency added to every task (`latency`).
    #[serde(default)]
    pub added_ms: Option<u64>,
    /// Mean tool calls per task during the fault (`tool_call_inflation`).
    #[serde(default)]
    pub tool_calls: Option<f64>,
    /// Delegation depth of every task (`delegation_loop`).
    #[serde(default)]
    pub depth: Option<u32>,
}

/// The fault kinds, as spelled in scenario files and manifests.
pub const KINDS: &[&str] = &[
    "tool_failures",
    "latency",
    "policy_violations",
    "hallucinations",
    "tool_call_inflation",
    "delegation_loop",
    "unavailable",
];

const PROFILES: &str = "research, support or finance";

/// A validated scenario file.
///
/// ```
/// use breakwater::chaos::ChaosScenario;
/// let s = ChaosScenario::from_yaml_str(r#"
/// seed: 1
/// duration: 20m
/// groups: [{prefix: support-agent, count: 3, profile: support}]
/// faults: [{agents: [support-agent-0], kind: tool_failures, from: 5m, for: 5m, rate: 0.5}]
/// "#).unwrap();
/// let (scenario, manifest) = s.resolve(None, None);
/// assert_eq!(manifest.faults.len(), 1);
/// assert_eq!(manifest.faults[0].agent_id, "support-agent-0");
/// assert!(scenario.events().count() > 100);
/// ```
#[derive(Debug, Clone)]
pub struct ChaosScenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub duration_ms: i64,
    pub start: Option<TimestampMs>,
    groups: Vec<Group>,
    faults: Vec<CheckedFault>,
}

#[derive(Debug, Clone)]
struct Group {
    prefix: String,
    count: usize,
    profile: Profile,
}

#[derive(Debug, Clone)]
struct CheckedFault {
    matchers: Vec<(String, GlobMatcher)>,
    kind: &'static str,
    start_ms: i64,
    end_ms: i64,
    rate: f64,
    added_ms: u64,
    tool_calls: f64,
    depth: u32,
}

/// Ground truth of one injected fault on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFault {
    pub agent_id: String,
    pub kind: String,
    /// Event time of the onset and of the end (exclusive).
    pub start: TimestampMs,
    pub end: TimestampMs,
    /// The kind's parameter: rate, added ms, mean tool calls or depth.
    pub value: f64,
}

/// What was injected, written by `breakwater chaos --manifest` for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub scenario: String,
    pub seed: u64,
    pub start: TimestampMs,
    pub duration_ms: i64,
    /// Every agent of the scenario, in generator order.
    pub agents: Vec<String>,
    pub faults: Vec<ManifestFault>,
}

fn duration(key: &str, s: &str) -> Result<i64, ScenarioError> {
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| invalid(key, s, "a duration like 90s, 10m or 1h"))
}

fn profile(key: &str, name: &str) -> Result<Profile, ScenarioError> {
    match name {
        "research" => Ok(RESEARCH),
        "support" => Ok(SUPPORT),
        "finance" => Ok(FINANCE),
        _ => Err(invalid(key, name, PROFILES)),
    }
}

impl ChaosScenario {
    /// Reads and validates a scenario file; its stem is the default name.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut s = Self::from_yaml_str(&text)?;
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        Ok(s)
    }

    /// Parses and validates a scenario.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ScenarioError> {
        let de = serde_yaml::Deserializer::from_str(yaml);
        let raw: RawScenario = serde_path_to_error::deserialize(de)
            .map_err(|e| ScenarioError::Parse(e.into_inner().to_string()))?;
        let duration_ms = duration("duration", &raw.duration)?;
        if duration_ms <= 0 {
            return Err(invalid("duration", &raw.duration, "a positive duration"));
        }
        let start = match &raw.start {
            None => None,
            Some(s) => Some(parse_start(s)?),
        };
        if raw.groups.is_empty() {
            return Err(invalid("groups", "[]", "at least one group"));
        }
        let mut groups = Vec::new();
        for (i, g) in raw.groups.iter().enumerate() {
            let key = |k: &str| format!("groups[{i}].{k}");
            let mut p = profile(&key("profile"), &g.profile)?;
            if g.count == 0 {
                return Err(invalid(key("count"), g.count, "at least 1"));
            }
            if g.prefix.is_empty() || g.prefix.contains(char::is_whitespace) {
                return Err(invalid(key("prefix"), &g.prefix, "a non-empty id prefix"));
            }
            if let Some(r) = g.rate {
                if !(r > 0.0 && r <= 6000.0) {
                    return Err(invalid(key("rate"), r, "tasks per minute in (0, 6000]"));
                }
                p.tasks_per_minute = r;
            }
            groups.push(Group {
                prefix: g.prefix.clone(),
                count: g.count,
                profile: p,
            });
        }
        let mut faults = Vec::new();
        for (i, f) in raw.faults.iter().enumerate() {
            faults.push(check_fault(i, f, duration_ms)?);
        }
        Ok(ChaosScenario {
            name: raw.name.unwrap_or_default(),
            description: raw.description,
            seed: raw.seed,
            duration_ms,
            start,
            groups,
            faults,
        })
    }

    /// Number of agents as written.
    pub fn agent_count(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The generator's scenario and the manifest. `start` overrides the
    /// file's (else [`DEFAULT_START`]); `agents` scales every group so the
    /// fleet has about that many agents (each group keeps at least one).
    pub fn resolve(
        &self,
        start: Option<TimestampMs>,
        agents: Option<usize>,
    ) -> (Scenario, Manifest) {
        let start = start.or(self.start).unwrap_or(DEFAULT_START);
        let counts = match agents {
            Some(n) => scaled_counts(&self.groups, n),
            None => self.groups.iter().map(|g| g.count).collect(),
        };
        let fleets: Vec<Fleet> = self
            .groups
            .iter()
            .zip(counts)
            .map(|(g, count)| Fleet {
                prefix: g.prefix.clone(),
                count,
                profile: g.profile.clone(),
            })
            .collect();
        let mut ids = Vec::new();
        let mut faults = Vec::new();
        let mut truth = Vec::new();
        for f in &fleets {
            for n in 0..f.count {
                let id = format!("{}-{n}", f.prefix);
                for c in &self.faults {
                    if !c.matchers.iter().any(|(_, m)| m.is_match(&id)) {
                        continue;
                    }
                    let (kind, value) = c.kind_for(&f.profile);
                    faults.push(Fault {
                        agent_id: id.clone(),
                        kind,
                        start_ms: c.start_ms,
                        end_ms: c.end_ms,
                    });
                    truth.push(ManifestFault {
                        agent_id: id.clone(),
                        kind: c.kind.to_string(),
                        start: start + c.start_ms,
                        end: start + c.end_ms,
                        value,
                    });
                }
                ids.push(id);
            }
        }
        let scenario = Scenario {
            seed: self.seed,
            start,
            duration_ms: self.duration_ms,
            fleets,
            faults,
        };
        let manifest = Manifest {
            scenario: self.name.clone(),
            seed: self.seed,
            start,
            duration_ms: self.duration_ms,
            agents: ids,
            faults: truth,
        };
        (scenario, manifest)
    }
}

/// Group sizes scaled to `n` agents in all, in the file's proportions: the
/// remainder goes to the first groups, and every group keeps at least one.
fn scaled_counts(groups: &[Group], n: usize) -> Vec<usize> {
    let total: usize = groups.iter().map(|g| g.count).sum();
    let mut counts: Vec<usize> = groups
        .iter()
        .map(|g| (g.count as u128 * n as u128 / total as u128) as usize)
        .collect();
    let mut left = n.saturating_sub(counts.iter().sum());
    for c in counts.iter_mut() {
        if left == 0 {
            break;
        }
        *c += 1;
        left -= 1;
    }
    counts.iter().map(|&c| c.max(1)).collect()
}

impl CheckedFault {
    fn kind_for(&self, p: &Profile) -> (FaultKind, f64) {
        match self.kind {
            "tool_failures" => (FaultKind::ToolFailures { rate: self.rate }, self.rate),
            "latency" => (
                FaultKind::AddedLatency { ms: self.added_ms },
                self.added_ms as f64,
            ),
            "policy_violations" => (FaultKind::PolicyViolations { rate: self.rate }, self.rate),
            "hallucinations" => (FaultKind::Hallucinations { rate: self.rate }, self.rate),
            "tool_call_inflation" => (
                FaultKind::ToolCallInflation {
                    factor: self.tool_calls / p.tool_calls_mean,
                },
                self.tool_calls,
            ),
            "delegation_loop" => (
                FaultKind::DelegationLoop { depth: self.depth },
                self.depth as f64,
            ),
            _ => (FaultKind::Unavailable, 1.0),
        }
    }
}

fn parse_start(s: &str) -> Result<TimestampMs, ScenarioError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339(s).map_err(|_| {
        invalid(
            "start",
            s,
            "an RFC 3339 time (2026-12-01T00:00:00Z) or epoch ms",
        )
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| invalid("start", s, "a time after 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| invalid("start", s, "a time before 2262"))
}

fn check_fault(i: usize, f: &FaultSpec, duration_ms: i64) -> Result<CheckedFault, ScenarioError> {
    let key = |k: &str| format!("faults[{i}].{k}");
    let kind = KINDS
        .iter()
        .copied()
        .find(|k| *k == f.kind)
        .ok_or_else(|| invalid(key("kind"), &f.kind, &KINDS.join(", ")))?;
    if f.agents.is_empty() {
        return Err(invalid(
            key("agents"),
            "[]",
            "at least one agent id or glob",
        ));
    }
    let mut matchers = Vec::new();
    for a in &f.agents {
        let g =
            Glob::new(a).map_err(|e| invalid(key("agents"), a, &format!("an id or glob ({e})")))?;
        matchers.push((a.clone(), g.compile_matcher()));
    }
    let start_ms = duration(&key("from"), &f.from)?;
    let lasts = duration(&key("for"), &f.lasts)?;
    if lasts <= 0 {
        return Err(invalid(key("for"), &f.lasts, "a positive duration"));
    }
    if start_ms + lasts > duration_ms {
        return Err(invalid(
            key("for"),
            &f.lasts,
            "a fault that ends within the scenario's duration",
        ));
    }
    // Each kind takes its own parameter, with a default; any other is refused.
    let (param, allowed): (&str, &[&str]) = match kind {
        "tool_failures" | "policy_violations" | "hallucinations" => ("rate", &["rate"]),
        "latency" => ("added_ms", &["added_ms"]),
        "tool_call_inflation" => ("tool_calls", &["tool_calls"]),
        "delegation_loop" => ("depth", &["depth"]),
        _ => ("", &[]),
    };
    let given = [
        ("rate", f.rate.is_some()),
        ("added_ms", f.added_ms.is_some()),
        ("tool_calls", f.tool_calls.is_some()),
        ("depth", f.depth.is_some()),
    ];
    for (name, set) in given {
        if set && !allowed.contains(&name) {
            let what = if param.is_empty() {
                format!("no parameter for kind {kind}")
            } else {
                format!("only `{param}` for kind {kind}")
            };
            return Err(invalid(key(name), "set", &what));
        }
    }
    let default_rate = match kind {
        "tool_failures" => 0.5,
        _ => 0.3,
    };
    let rate = f.rate.unwrap_or(default_rate);
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(invalid(key("rate"), rate, "a rate in (0, 1]"));
    }
    let added_ms = f.added_ms.unwrap_or(5_000);
    if added_ms == 0 || added_ms > 3_600_000 {
        return Err(invalid(key("added_ms"), added_ms, "1 to 3600000"));
    }
    let tool_calls = f.tool_calls.unwrap_or(15.0);
    if !(tool_calls > 0.0 && tool_calls <= 1000.0) {
        return Err(invalid(
            key("tool_calls"),
            tool_calls,
            "a mean in (0, 1000]",
        ));
    }
    let depth = f.depth.unwrap_or(8);
    if depth == 0 || depth > 1000 {
        return Err(invalid(key("depth"), depth, "1 to 1000"));
    }
    Ok(CheckedFault {
        matchers,
        kind,
        start_ms,
        end_ms: start_ms + lasts,
        rate,
        added_ms,
        tool_calls,
        depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "seed: 3\nduration: 20m\ngroups: [{prefix: s, count: 4, profile: support}]\n";

    fn err(yaml: &str) -> String {
        ChaosScenario::from_yaml_str(yaml).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_are_refused_with_the_allowed_ones() {
        let e = err(&format!("{BASE}colour: red\n"));
        assert!(e.contains("colour") && e.contains("groups"), "{e}");
        let e = err(&format!(
            "{BASE}faults: [{{agents: [s-0], kind: latency, from: 1m, for: 1m, ms: 5}}]\n"
        ));
        assert!(e.contains("ms") && e.contains("added_ms"), "{e}");
    }

    #[test]
    fn bad_values_name_key_value_and_allowed() {
        let e = err(&format!(
            "{BASE}faults: [{{agents: [s-0], kind: meltdown, from: 1m, for: 1m}}]\n"
        ));
        assert!(
            e.contains("faults[0].kind") && e.contains("meltdown") && e.contains("tool_failures"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}faults: [{{agents: [s-0], kind: tool_failures, from: 1m, for: 1m, rate: 1.5}}]\n"
        ));
        assert!(e.contains("faults[0].rate") && e.contains("1.5"), "{e}");
        let e = err(&format!(
            "{BASE}faults: [{{agents: [s-0], kind: latency, from: 1m, for: 1m, rate: 0.5}}]\n"
        ));
        assert!(
            e.contains("faults[0].rate") && e.contains("added_ms"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}faults: [{{agents: [s-0], kind: unavailable, from: 15m, for: 10m}}]\n"
        ));
        assert!(e.contains("faults[0].for"), "{e}");
        let e = err("seed: 1\nduration: soon\ngroups: [{prefix: s, count: 1, profile: support}]\n");
        assert!(e.contains("`duration`") && e.contains("soon"), "{e}");
        let e = err("seed: 1\nduration: 1m\ngroups: [{prefix: s, count: 1, profile: chef}]\n");
        assert!(
            e.contains("groups[0].profile") && e.contains("research"),
            "{e}"
        );
    }

    #[test]
    fn globs_pick_agents_and_scaling_keeps_them() {
        let s = ChaosScenario::from_yaml_str(&format!(
            "{BASE}faults: [{{agents: [\"s-[02]\"], kind: hallucinations, from: 1m, for: 2m}}]\n"
        ))
        .unwrap();
        let (_, m) = s.resolve(Some(0), None);
        let ids: Vec<_> = m.faults.iter().map(|f| f.agent_id.as_str()).collect();
        assert_eq!(ids, ["s-0", "s-2"]);
        assert_eq!((m.faults[0].start, m.faults[0].end), (60_000, 180_000));
        let (sc, m) = s.resolve(Some(0), Some(40));
        assert_eq!(m.agents.len(), 40);
        assert_eq!(sc.fleets[0].count, 40);
        let three = ChaosScenario::from_yaml_str(
            "seed: 1\nduration: 1m\ngroups: [{prefix: a, count: 2, profile: support}, \
             {prefix: b, count: 1, profile: research}, {prefix: c, count: 1, profile: finance}]\n",
        )
        .unwrap();
        assert_eq!(three.resolve(None, Some(1001)).1.agents.len(), 1001);
        assert_eq!(
            three.resolve(None, Some(1)).1.agents.len(),
            3,
            "one each at least"
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        let s = ChaosScenario::from_yaml_str(&format!(
            "{BASE}faults: [{{agents: [s-1], kind: tool_failures, from: 5m, for: 5m}}]\n"
        ))
        .unwrap();
        let bytes = |s: &ChaosScenario| {
            let (sc, _) = s.resolve(None, None);
            let mut out = Vec::new();
            for e in sc.events() {
                serde_json::to_writer(&mut out, &e).unwrap();
                out.push(b'\n');
            }
            out
        };
        let (a, b) = (bytes(&s), bytes(&s));
        assert!(!a.is_empty());
        assert_eq!(a, b);
        let mut other = s.clone();
        other.seed += 1;
        assert_ne!(a, bytes(&other));
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut kinds = std::collections::BTreeSet::new();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") && p.file_name().unwrap() != "slo.yaml" {
                let s = ChaosScenario::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let (_, m) = s.resolve(None, None);
                assert!(!m.faults.is_empty(), "{}", p.display());
                assert!(m.agents.len() <= 100, "{}: small by default", p.display());
                kinds.extend(m.faults.iter().map(|f| f.kind.clone()));
                n += 1;
            }
        }
        assert!(n >= 5);
        assert_eq!(kinds.len(), KINDS.len(), "every kind shipped: {kinds:?}");
    }
}

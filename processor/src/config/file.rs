//! The loaded SLO file and why a file is refused. Loading parses into
//! all-optional raw structs (`raw`), layers them (built-in defaults ←
//! `defaults` ← agent entry), converts each entry to a checked [`Slo`]
//! (`validate`) and indexes the agent keys (`matcher`), all at load time.
//! Afterwards [`SloConfig::resolve`] only matches.

use std::fmt::{Display, Write as _};
use std::path::{Path, PathBuf};

use super::engine::EngineSettings;
use super::matcher::{Matcher, MatcherBuilder};
use super::raw::{Layer, RawFile};
use super::slo::Slo;
use super::validate::Check;

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
    /// A well-formed value out of range, at the full dotted `key`.
    pub(super) fn invalid(key: String, value: impl Display, allowed: impl Display) -> Self {
        let (value, allowed) = (value.to_string(), allowed.to_string());
        ConfigError::Invalid {
            file: None,
            key,
            value,
            allowed,
        }
    }

    /// The same error for a document nested under `section` of the file.
    pub(super) fn under(mut self, section: &str) -> Self {
        if let ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } = &mut self {
            *key = if key.is_empty() {
                section.to_string()
            } else {
                format!("{section}.{key}")
            };
        }
        self
    }

    fn in_file(mut self, path: &Path) -> Self {
        if let ConfigError::Parse { file, .. } | ConfigError::Invalid { file, .. } = &mut self {
            *file = Some(path.to_path_buf());
        }
        self
    }

    pub(super) fn from_serde(err: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
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

/// Loading results.
pub(super) type Res<T> = Result<T, ConfigError>;

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

/// The key of an agent entry, quoted as [`dotted`] quotes it in parse errors,
/// so both kinds of error name an entry the same way.
pub(super) fn agent_path(key: &str) -> String {
    format!("agents.{key:?}")
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
    matcher: Matcher,
    /// The `engine:` section.
    pub engine: EngineSettings,
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
            matcher: Matcher::default(),
            engine: EngineSettings::default(),
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
        let mut matcher = MatcherBuilder::default();
        for (key, entry) in raw.agents.unwrap_or_default().0 {
            let prefix = agent_path(&key);
            let id = SloId(u32::try_from(slos.len()).expect("fewer than 2^32 agent entries"));
            matcher.add(&key, id)?;
            slos.push(Check { prefix: &prefix }.slo(defaults.clone().layer(entry), &key)?);
        }
        Ok(SloConfig {
            slos,
            matcher: matcher.build()?,
            engine: EngineSettings::from_section(raw.engine.as_ref())?,
            kafka: raw.kafka,
            http: raw.http,
        })
    }

    /// The entry that governs `agent_id`: its exact key, else the most
    /// specific matching glob, else `defaults` (`SloId(0)`). See [`SloConfig`].
    /// Only matching happens here; every `Slo` was resolved at load.
    pub fn resolve(&self, agent_id: &str) -> SloId {
        self.matcher.resolve(agent_id).unwrap_or(SloId(0))
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

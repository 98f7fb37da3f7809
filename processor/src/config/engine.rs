//! The `engine:` section: how the engine holds its agents, the same for
//! every SLO. Resolved when the file is loaded, so a bad value stops
//! `replay` and `run` at start-up.
//!
//! ```
//! use breakwater::config::SloConfig;
//! let c = SloConfig::from_yaml_str("engine: {dormant_after: 30m, min_awake_agents: 0}").unwrap();
//! assert_eq!(c.engine.dormant_after_ms, Some(1_800_000));
//! assert_eq!(c.engine.min_awake_agents, 0);
//! let off = SloConfig::from_yaml_str("engine: {dormant_after: off}").unwrap();
//! assert_eq!(off.engine.dormant_after_ms, None);
//! let e = SloConfig::from_yaml_str("engine: {dormant_after: soon}").unwrap_err().to_string();
//! assert!(e.contains("engine.dormant_after") && e.contains("soon") && e.contains("off"), "{e}");
//! ```

use serde::Deserialize;

use super::file::ConfigError;
use super::raw::{RawDuration, DURATION};

/// Default of [`EngineSettings::dormant_after_ms`]: five minutes, the
/// default breaker window, so an agent falls dormant once that window has
/// emptied. An agent with a task every few minutes stays awake; in a fleet
/// of quiet agents, idle for an hour between tasks, most are dormant.
pub const DEFAULT_DORMANT_AFTER_MS: i64 = 300_000;

/// Default of [`EngineSettings::min_awake_agents`].
pub const DEFAULT_MIN_AWAKE_AGENTS: usize = 10_000;

/// The resolved `engine:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// An agent untouched for this long (engine clock) is kept as its
    /// exported state until next needed; `None` (`off`) keeps every agent
    /// awake. Changes no output: only memory, and the cost of an agent's
    /// first event after a quiet spell (a few µs).
    pub dormant_after_ms: Option<i64>,
    /// No agent falls dormant while at most this many (per engine, i.e.
    /// per input partition) are awake: a small fleet stays in memory whole.
    pub min_awake_agents: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            dormant_after_ms: Some(DEFAULT_DORMANT_AFTER_MS),
            min_awake_agents: DEFAULT_MIN_AWAKE_AGENTS,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    dormant_after: Option<RawDuration>,
    min_awake_agents: Option<i64>,
}

impl EngineSettings {
    /// Resolves the section (absent = all defaults).
    pub(super) fn from_section(section: Option<&serde_yaml::Value>) -> Result<Self, ConfigError> {
        let raw: RawEngine = match section {
            None | Some(serde_yaml::Value::Null) => RawEngine::default(),
            Some(v) => serde_path_to_error::deserialize(v.clone())
                .map_err(|e| ConfigError::from_serde(e).under("engine"))?,
        };
        let defaults = EngineSettings::default();
        let dormant_after_ms = match raw.dormant_after {
            None => defaults.dormant_after_ms,
            Some(RawDuration::Text(t)) if t.trim() == "off" => None,
            Some(d) => Some(d.millis().ok_or_else(|| {
                ConfigError::invalid(
                    "engine.dormant_after".to_string(),
                    d.as_written(),
                    format!("{DURATION}, or off"),
                )
            })?),
        };
        let min_awake_agents = match raw.min_awake_agents {
            None => defaults.min_awake_agents,
            Some(n) if (0..=100_000_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::invalid(
                    "engine.min_awake_agents".to_string(),
                    n,
                    "a whole number from 0 to 100000000",
                ))
            }
        };
        Ok(EngineSettings {
            dormant_after_ms,
            min_awake_agents,
        })
    }
}

//! The SLO configuration file, resolved per agent.
//!
//! # Why layered
//!
//! Most agents share one SLO and a few differ in one or two numbers, so the
//! file states each difference once. Every key is optional everywhere, and the
//! SLO an agent gets is built field by field, nested sections included:
//! the built-in defaults (the seed's numbers, [`Slo::default`]), under the
//! file's `defaults` section, under the matched agent entry. An alert rule
//! given as `{warning: X}` overrides only the warning side; `null` switches a
//! side off. Some defaults are derived from the layered result rather than
//! fixed: the `p99_latency_ms` alert warns at the SLO's `max_latency_ms`, the
//! `availability` alert at its `min_availability`, and the burn-rate rules are
//! [`default_burn_rules`] of its `window`, unless given somewhere.
//!
//! Everything is layered, converted and validated when the file is loaded,
//! once for `defaults` and once per agent entry, so a bad value is refused at
//! start-up with its dotted key (`agents."finance-*".breaker.window`), the
//! value and what is allowed, and the engine only ever sees a complete,
//! checked [`Slo`].
//!
//! # How matching works
//!
//! Agent keys are exact ids or globs (`*`, `?`, `[...]`). An exact key always
//! wins; among matching globs the most specific wins (most literal
//! characters, then the longer pattern, then the lexicographically smallest);
//! an agent nothing matches gets `defaults`. [`SloConfig::resolve`] does only
//! this matching — a hash lookup, then one pass of a glob set — and returns an
//! [`SloId`] into [`SloConfig::slos`].

mod engine;
mod file;
mod http;
mod kafka;
mod matcher;
mod raw;
mod slo;
#[cfg(test)]
mod tests;
mod validate;
mod wire;

pub use engine::{EngineSettings, DEFAULT_DORMANT_AFTER_MS, DEFAULT_MIN_AWAKE_AGENTS};
pub use file::{ConfigError, SloConfig, SloId};
pub use http::{HttpSettings, SeriesBudget, DEFAULT_LISTEN};
pub use kafka::{is_secret, KafkaSettings, TimerClock, TopicCreation, Topics, ENV_PREFIX};
pub use slo::*;
pub use wire::{
    InputFormat, InputSettings, OutputFormat, OutputSchemaIds, OutputSettings, RegistrySettings,
    SchemaFile, WireConfig, WireSettings,
};

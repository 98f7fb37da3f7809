//! Wire formats of `breakwater run`: how input record values are decoded,
//! how output records are encoded, and the schema registry both may use.
//! The job embeds this section (as `kafka.wire`); every key is optional.
//!
//! ```yaml
//! input:
//!   format: auto                  # auto | confluent | single-object | json
//!   # Writer schemas by Confluent schema id, when no registry is set:
//!   default_schema_id: 1          # the id of the bundled schemas/task_event.avsc
//!   schema_ids:                   # more ids, each an .avsc file
//!     7: /etc/breakwater/task_event_v2.avsc
//!   schema_files:                 # writer schemas known by fingerprint only
//!     - /etc/breakwater/task_event_v0.avsc
//! output:
//!   format: confluent             # json | confluent | single-object
//!   schema_ids:                   # confluent: ids of the output schemas;
//!     breaker_transition: 11      # with a registry, a missing one is
//!     alert: 12                   # registered under subject <topic>-value
//!     budget_snapshot: 13
//! ```
//!
//! or, with a schema registry (the only source of ids then):
//!
//! ```yaml
//! input:
//!   format: confluent
//! output:
//!   format: confluent
//! registry:
//!   url: https://schema-registry:8081
//!   basic_auth: "user:password"   # Confluent's basic.auth.user.info
//!   timeout: 5s                   # per request, connecting included
//!   negative_cache_size: 10000    # failed schema ids remembered ...
//!   negative_cache_ttl: 5m        # ... for this long
//! ```
//!
//! Schema files are read and parsed when the section is resolved, so a
//! missing or malformed file is refused at start-up under its key. Relative
//! paths are relative to the working directory.
//!
//! ```
//! use breakwater::config::{InputFormat, OutputFormat, WireSettings};
//! let yaml: serde_yaml::Value = serde_yaml::from_str(
//!     "{input: {format: confluent}, registry: {url: 'http://registry:8081/'}}",
//! ).unwrap();
//! let wire = WireSettings::from_section(Some(&yaml), "kafka.wire").unwrap();
//! assert_eq!(wire.input.format, InputFormat::Confluent);
//! assert_eq!(wire.output.format, OutputFormat::Json);
//! let registry = wire.registry.unwrap();
//! assert_eq!(registry.url, "http://registry:8081");
//! assert_eq!(registry.timeout.as_secs(), 5);
//!
//! let bad: serde_yaml::Value = serde_yaml::from_str("{registry: {url: registry:8081}}").unwrap();
//! let err = WireSettings::from_section(Some(&bad), "kafka.wire").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "kafka.wire.registry.url: \"registry:8081\" is not allowed: \
//!      expected an http:// or https:// URL"
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;

use super::file::ConfigError;
use super::raw::{RawDuration, DURATION};

/// How input record values are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Told apart by the first bytes: `0x00` Confluent, `0xC3 0x01`
    /// single-object, `{` or whitespace JSON.
    #[default]
    Auto,
    /// Confluent Schema Registry framing: `0x00`, 4-byte big-endian schema
    /// id, Avro binary datum.
    Confluent,
    /// Avro single-object encoding: `0xC3 0x01`, 8-byte little-endian
    /// CRC-64-AVRO fingerprint of the writer schema, Avro binary datum.
    SingleObject,
    /// One JSON object with the Avro schema's field names.
    Json,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Auto => "auto",
            InputFormat::Confluent => "confluent",
            InputFormat::SingleObject => "single-object",
            InputFormat::Json => "json",
        })
    }
}

/// How output records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One JSON object with the Avro schema's field names.
    #[default]
    Json,
    /// Avro binary with Confluent Schema Registry framing.
    Confluent,
    /// Avro binary with single-object framing (schema fingerprint).
    SingleObject,
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Json => "json",
            OutputFormat::Confluent => "confluent",
            OutputFormat::SingleObject => "single-object",
        })
    }
}

/// The section as written. Deserialize it (e.g. as a field of another
/// section: unknown keys are refused with their path), then
/// [`WireConfig::resolve`] it.
#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `input`, `output`, `registry`"
)]
pub struct WireConfig {
    input: Option<RawInput>,
    output: Option<RawOutput>,
    registry: Option<RawRegistry>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `format`, `default_schema_id`, `schema_ids`, `schema_files`"
)]
struct RawInput {
    format: Option<InputFormat>,
    default_schema_id: Option<i64>,
    schema_ids: Option<BTreeMap<i64, PathBuf>>,
    schema_files: Option<Vec<PathBuf>>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `format`, `schema_ids`"
)]
struct RawOutput {
    format: Option<OutputFormat>,
    schema_ids: Option<RawOutputIds>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `breaker_transition`, `alert`, `budget_snapshot`"
)]
struct RawOutputIds {
    breaker_transition: Option<i64>,
    alert: Option<i64>,
    budget_snapshot: Option<i64>,
}

#[derive(Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `url`, `basic_auth`, `timeout`, `negative_cache_size`, \
                 `negative_cache_ttl`"
)]
struct RawRegistry {
    url: String,
    basic_auth: Option<String>,
    timeout: Option<RawDuration>,
    negative_cache_size: Option<i64>,
    negative_cache_ttl: Option<RawDuration>,
}

/// The resolved section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireSettings {
    pub input: InputSettings,
    pub output: OutputSettings,
    /// `None`: no schema registry; schema ids come from the configuration.
    pub registry: Option<RegistrySettings>,
}

/// How input record values are decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputSettings {
    pub format: InputFormat,
    /// Without a registry: the Confluent schema id under which the bundled
    /// `schemas/task_event.avsc` is known.
    pub default_schema_id: Option<u32>,
    /// Without a registry: writer schemas by Confluent schema id. They are
    /// known by fingerprint too (single-object).
    pub schema_ids: BTreeMap<u32, SchemaFile>,
    /// Writer schemas known by fingerprint only (single-object).
    pub schema_files: Vec<SchemaFile>,
}

/// An Avro schema read from a file named in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// The dotted key that named it, e.g. `kafka.wire.input.schema_ids.7`.
    pub key: String,
    pub path: PathBuf,
    pub schema: Schema,
}

/// How output records are encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputSettings {
    pub format: OutputFormat,
    pub schema_ids: OutputSchemaIds,
}

/// Confluent schema ids of the output records; a missing one is registered
/// with the registry at start-up (subject `<topic>-value`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputSchemaIds {
    pub breaker_transition: Option<u32>,
    pub alert: Option<u32>,
    pub budget_snapshot: Option<u32>,
}

/// A Confluent-compatible schema registry.
#[derive(Clone, PartialEq)]
pub struct RegistrySettings {
    /// Base URL without a trailing slash, e.g. `https://registry:8081`.
    pub url: String,
    /// `user:password` for HTTP basic authentication (Confluent's
    /// `basic.auth.user.info`). Never printed.
    pub basic_auth: Option<String>,
    /// Longest wait for one registry request, connecting included.
    pub timeout: Duration,
    /// Most schema ids remembered as failed (unknown, incompatible); the
    /// oldest is forgotten first.
    pub negative_cache_size: usize,
    /// How long a failed schema id is remembered before the registry is
    /// asked again.
    pub negative_cache_ttl: Duration,
}

impl fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("negative_cache_size", &self.negative_cache_size)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .finish()
    }
}

impl RegistrySettings {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        RegistrySettings {
            url: url.into().trim_end_matches('/').to_string(),
            basic_auth: None,
            timeout: Duration::from_secs(5),
            negative_cache_size: 10_000,
            negative_cache_ttl: Duration::from_secs(300),
        }
    }
}

const SCHEMA_ID: &str = "a schema id from 0 to 2147483647";

/// Checks values, naming keys under a prefix.
struct Keys<'a> {
    prefix: &'a str,
}

impl Keys<'_> {
    fn key(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    fn invalid(
        &self,
        field: &str,
        value: impl fmt::Display,
        allowed: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::invalid(self.key(field), value, allowed)
    }

    fn schema_id(&self, field: &str, id: i64) -> Result<u32, ConfigError> {
        u32::try_from(id)
            .ok()
            .filter(|&id| id <= i32::MAX.unsigned_abs())
            .ok_or_else(|| self.invalid(field, id, SCHEMA_ID))
    }

    fn duration(
        &self,
        field: &str,
        d: Option<RawDuration>,
        default: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(d) = d else { return Ok(default) };
        let ms = d
            .millis()
            .ok_or_else(|| self.invalid(field, d.as_written(), DURATION))?;
        let duration = Duration::from_millis(ms.unsigned_abs());
        if duration > max {
            let allowed = format!("a duration up to {}", humantime::format_duration(max));
            return Err(self.invalid(field, d.as_written(), allowed));
        }
        Ok(duration)
    }

    fn schema_file(&self, field: &str, path: PathBuf) -> Result<SchemaFile, ConfigError> {
        let key = self.key(field);
        let shown = format!("{:?}", path.display().to_string());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::invalid(
                key.clone(),
                &shown,
                format!("a readable Avro schema file ({e})"),
            )
        })?;
        let schema = Schema::parse_str(&text).map_err(|e| {
            ConfigError::invalid(
                key.clone(),
                &shown,
                format!("a file holding an Avro schema ({e})"),
            )
        })?;
        Ok(SchemaFile { key, path, schema })
    }
}

impl WireConfig {
    /// Checks every value and reads the schema files. `key` is the dotted
    /// key of the section in its file (e.g. `kafka.wire`; `""` at the top),
    /// so that errors name the full key, the value and what is allowed.
    pub fn resolve(self, key: &str) -> Result<WireSettings, ConfigError> {
        let keys = Keys { prefix: key };
        let registry = self.registry.map(|r| registry(&keys, r)).transpose()?;
        let input = input(&keys, self.input.unwrap_or_default(), registry.is_some())?;
        let output = output(&keys, self.output.unwrap_or_default(), registry.is_some())?;
        Ok(WireSettings {
            input,
            output,
            registry,
        })
    }
}

impl WireSettings {
    /// Resolves the section from YAML (absent or null = all defaults); `key`
    /// as for [`WireConfig::resolve`].
    pub fn from_section(
        section: Option<&serde_yaml::Value>,
        key: &str,
    ) -> Result<Self, ConfigError> {
        let raw: WireConfig = match section {
            None | Some(serde_yaml::Value::Null) => WireConfig::default(),
            Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                let e = ConfigError::from_serde(e);
                if key.is_empty() {
                    e
                } else {
                    e.under(key)
                }
            })?,
        };
        raw.resolve(key)
    }
}

fn registry(keys: &Keys, raw: RawRegistry) -> Result<RegistrySettings, ConfigError> {
    let url = raw.url.trim();
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if !host
        .is_some_and(|h| !h.trim_end_matches('/').is_empty() && !h.contains(char::is_whitespace))
    {
        return Err(keys.invalid(
            "registry.url",
            format_args!("{:?}", raw.url),
            "an http:// or https:// URL",
        ));
    }
    let mut settings = RegistrySettings::new(url);
    if let Some(auth) = raw.basic_auth {
        if !auth.contains(':') {
            // The value is a secret: never echo it.
            return Err(keys.invalid(
                "registry.basic_auth",
                "(a value without `:`)",
                "\"user:password\"",
            ));
        }
        settings.basic_auth = Some(auth);
    }
    settings.timeout = keys.duration(
        "registry.timeout",
        raw.timeout,
        settings.timeout,
        Duration::from_secs(600),
    )?;
    if let Some(n) = raw.negative_cache_size {
        settings.negative_cache_size = usize::try_from(n)
            .ok()
            .filter(|n| (1..=10_000_000).contains(n))
            .ok_or_else(|| {
                keys.invalid(
                    "registry.negative_cache_size",
                    n,
                    "a whole number from 1 to 10000000",
                )
            })?;
    }
    settings.negative_cache_ttl = keys.duration(
        "registry.negative_cache_ttl",
        raw.negative_cache_ttl,
        settings.negative_cache_ttl,
        Duration::from_secs(7 * 86_400),
    )?;
    Ok(settings)
}

fn input(keys: &Keys, raw: RawInput, has_registry: bool) -> Result<InputSettings, ConfigError> {
    let format = raw.format.unwrap_or_default();
    let default_schema_id = raw
        .default_schema_id
        .map(|id| keys.schema_id("input.default_schema_id", id))
        .transpose()?;
    let mut schema_ids = BTreeMap::new();
    for (id, path) in raw.schema_ids.unwrap_or_default() {
        let field = format!("input.schema_ids.{id}");
        let id = keys.schema_id(&field, id)?;
        if default_schema_id == Some(id) {
            return Err(keys.invalid(
                &field,
                format_args!("{:?}", path.display().to_string()),
                format_args!(
                    "an id other than input.default_schema_id ({id}), which is the bundled schema's"
                ),
            ));
        }
        schema_ids.insert(id, keys.schema_file(&field, path)?);
    }
    let schema_files = raw
        .schema_files
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, path)| keys.schema_file(&format!("input.schema_files[{i}]"), path))
        .collect::<Result<_, _>>()?;
    if has_registry && (default_schema_id.is_some() || !schema_ids.is_empty()) {
        let field = if default_schema_id.is_some() {
            "input.default_schema_id"
        } else {
            "input.schema_ids"
        };
        let value = match default_schema_id {
            Some(id) => id.to_string(),
            None => format!("({} ids)", schema_ids.len()),
        };
        return Err(keys.invalid(
            field,
            value,
            "no schema ids with registry.url set: the registry is the authority on ids",
        ));
    }
    if format == InputFormat::Confluent
        && !has_registry
        && default_schema_id.is_none()
        && schema_ids.is_empty()
    {
        return Err(keys.invalid(
            "input.default_schema_id",
            "(not set)",
            "a schema id: with input.format confluent and no registry.url, Confluent \
             records need input.default_schema_id or input.schema_ids",
        ));
    }
    Ok(InputSettings {
        format,
        default_schema_id,
        schema_ids,
        schema_files,
    })
}

fn output(keys: &Keys, raw: RawOutput, has_registry: bool) -> Result<OutputSettings, ConfigError> {
    let format = raw.format.unwrap_or_default();
    let raw_ids = raw.schema_ids.unwrap_or_default();
    let id = |name: &str, v: Option<i64>| {
        v.map(|id| keys.schema_id(&format!("output.schema_ids.{name}"), id))
            .transpose()
    };
    let schema_ids = OutputSchemaIds {
        breaker_transition: id("breaker_transition", raw_ids.breaker_transition)?,
        alert: id("alert", raw_ids.alert)?,
        budget_snapshot: id("budget_snapshot", raw_ids.budget_snapshot)?,
    };
    if format == OutputFormat::Confluent && !has_registry {
        let missing = [
            ("breaker_transition", schema_ids.breaker_transition),
            ("alert", schema_ids.alert),
            ("budget_snapshot", schema_ids.budget_snapshot),
        ]
        .into_iter()
        .find(|(_, id)| id.is_none());
        if let Some((name, _)) = missing {
            return Err(keys.invalid(
                &format!("output.schema_ids.{name}"),
                "(not set)",
                "a schema id: with output.format confluent and no registry.url, every \
                 output record type needs its schema id",
            ));
        }
    }
    Ok(OutputSettings { format, schema_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK_EVENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/task_event.avsc");

    fn wire(yaml: &str) -> Result<WireSettings, ConfigError> {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        WireSettings::from_section(Some(&v), "kafka.wire")
    }

    fn refused(yaml: &str) -> String {
        match wire(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_without_a_section() {
        let w = WireSettings::from_section(None, "kafka.wire").unwrap();
        assert_eq!(w, WireSettings::default());
        assert_eq!(w.input.format, InputFormat::Auto);
        assert_eq!(w.output.format, OutputFormat::Json);
        assert!(w.registry.is_none());
        let r = wire("registry: {url: 'https://r:8081'}")
            .unwrap()
            .registry
            .unwrap();
        assert_eq!(r, RegistrySettings::new("https://r:8081"));
        assert_eq!(r.timeout, Duration::from_secs(5));
        assert_eq!(r.negative_cache_size, 10_000);
        assert_eq!(r.negative_cache_ttl, Duration::from_secs(300));
        assert_eq!(r.basic_auth, None);
    }

    #[test]
    fn everything_given() {
        let w = wire(&format!(
            "input: {{format: single-object, default_schema_id: 1,
                     schema_ids: {{7: '{TASK_EVENT}'}}, schema_files: ['{TASK_EVENT}']}}
output: {{format: confluent,
         schema_ids: {{breaker_transition: 11, alert: 12, budget_snapshot: 13}}}}"
        ))
        .unwrap();
        assert_eq!(w.input.format, InputFormat::SingleObject);
        assert_eq!(w.input.default_schema_id, Some(1));
        assert_eq!(w.input.schema_ids[&7].key, "kafka.wire.input.schema_ids.7");
        assert_eq!(
            w.input.schema_files[0].key,
            "kafka.wire.input.schema_files[0]"
        );
        assert_eq!(
            w.output.schema_ids,
            OutputSchemaIds {
                breaker_transition: Some(11),
                alert: Some(12),
                budget_snapshot: Some(13)
            }
        );
        let r = wire(
            "registry: {url: 'http://r/', basic_auth: 'u:p:w', timeout: 250ms,
                        negative_cache_size: 5, negative_cache_ttl: 1h}",
        )
        .unwrap()
        .registry
        .unwrap();
        assert_eq!(r.url, "http://r");
        assert_eq!(r.basic_auth.as_deref(), Some("u:p:w"));
        assert_eq!(r.timeout, Duration::from_millis(250));
        assert_eq!(r.negative_cache_size, 5);
        assert_eq!(r.negative_cache_ttl, Duration::from_secs(3600));
        assert!(!format!("{r:?}").contains("u:p:w"), "{r:?}");
    }

    #[test]
    fn refusals_name_the_key_the_value_and_what_is_allowed() {
        let cases: &[(&str, &[&str])] = &[
            (
                "input: {format: avro}",
                &["kafka.wire.input.format", "unknown variant `avro`", "`auto`", "`single-object`"],
            ),
            ("input: {formt: json}", &["kafka.wire.input.formt", "unknown field"]),
            ("registri: {}", &["kafka.wire.registri", "unknown field", "`registry`"]),
            (
                "output: {format: avro}",
                &["kafka.wire.output.format", "unknown variant `avro`", "`confluent`"],
            ),
            (
                "input: {default_schema_id: -1}",
                &["kafka.wire.input.default_schema_id: -1 is not allowed: expected a schema id from 0 to 2147483647"],
            ),
            (
                "input: {schema_ids: {4294967296: x.avsc}}",
                &["kafka.wire.input.schema_ids.4294967296: 4294967296 is not allowed"],
            ),
            (
                "input: {schema_ids: {3: /nonexistent/x.avsc}}",
                &[
                    "kafka.wire.input.schema_ids.3: \"/nonexistent/x.avsc\" is not allowed: \
                     expected a readable Avro schema file (",
                ],
            ),
            (
                "input: {format: confluent}",
                &["kafka.wire.input.default_schema_id: (not set) is not allowed", "registry.url"],
            ),
            (
                "registry: {url: 'http://r'}\ninput: {default_schema_id: 1}",
                &["kafka.wire.input.default_schema_id: 1 is not allowed", "the registry is the authority"],
            ),
            (
                "registry: {url: ftp://r}",
                &["kafka.wire.registry.url: \"ftp://r\" is not allowed: expected an http:// or https:// URL"],
            ),
            ("registry: {timeout: 5s}", &["kafka.wire.registry", "missing field `url`"]),
            (
                "registry: {url: 'http://r', basic_auth: secret}",
                &["kafka.wire.registry.basic_auth: (a value without `:`) is not allowed: expected \"user:password\""],
            ),
            (
                "registry: {url: 'http://r', timeout: soon}",
                &["kafka.wire.registry.timeout: \"soon\" is not allowed: expected a positive duration"],
            ),
            (
                "registry: {url: 'http://r', timeout: 1h}",
                &["kafka.wire.registry.timeout: \"1h\" is not allowed: expected a duration up to 10m"],
            ),
            (
                "registry: {url: 'http://r', negative_cache_size: 0}",
                &["kafka.wire.registry.negative_cache_size: 0 is not allowed: expected a whole number from 1"],
            ),
            (
                "output: {format: confluent, schema_ids: {breaker_transition: 1, alert: 2}}",
                &["kafka.wire.output.schema_ids.budget_snapshot: (not set) is not allowed", "no registry.url"],
            ),
            (
                "output: {schema_ids: {alerts: 2}}",
                &["kafka.wire.output.schema_ids.alerts", "unknown field", "`alert`"],
            ),
        ];
        for (yaml, wanted) in cases {
            let e = refused(yaml);
            for w in *wanted {
                assert!(e.contains(w), "{yaml}\n  gave: {e}\n  wanted: {w}");
            }
        }
        let e = refused("registry: {url: 'http://r', basic_auth: secret}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_schema_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.avsc");
        std::fs::write(
            &path,
            r#"{"type": "record", "name": "X", "fields": [{"name": "a"}]}"#,
        )
        .unwrap();
        let e = refused(&format!("input: {{schema_files: ['{}']}}", path.display()));
        assert!(
            e.contains("kafka.wire.input.schema_files[0]: \"")
                && e.contains("expected a file holding an Avro schema ("),
            "{e}"
        );
    }

    #[test]
    fn registry_auth_and_confluent_output_without_ids() {
        // With a registry, missing output ids are registered at start-up.
        let w = wire("registry: {url: 'http://r'}\noutput: {format: confluent}").unwrap();
        assert_eq!(w.output.schema_ids, OutputSchemaIds::default());
        // At the top of a file, keys have no prefix.
        let v: serde_yaml::Value = serde_yaml::from_str("input: {format: xml}").unwrap();
        let e = WireSettings::from_section(Some(&v), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("input.format: unknown variant `xml`"), "{e}");
    }

    /// The YAML examples in the module documentation load as written (with
    /// the bundled schema standing in for the example files).
    #[test]
    fn the_documented_examples_load() {
        let source = include_str!("wire.rs");
        let docs: String = source
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
            .collect();
        let examples: Vec<&str> = docs
            .split("```yaml\n")
            .skip(1)
            .map(|block| &block[..block.find("```").unwrap()])
            .collect();
        assert_eq!(examples.len(), 2);
        let files = examples[0]
            .replace("/etc/breakwater/task_event_v2.avsc", TASK_EVENT)
            .replace("/etc/breakwater/task_event_v0.avsc", TASK_EVENT);
        let w = wire(&files).unwrap();
        assert_eq!(w.input.default_schema_id, Some(1));
        assert_eq!(w.output.schema_ids.alert, Some(12));
        let w = wire(examples[1]).unwrap();
        assert_eq!(
            w.registry.unwrap().basic_auth.as_deref(),
            Some("user:password")
        );
    }
}

//! The `http:` section of the config file: where `breakwater run` serves
//! `/metrics`, `/healthz` and `/readyz`.
//!
//! The server binds 127.0.0.1 unless told otherwise, so a default install
//! exposes nothing beyond the host.
//!
//! ```
//! use breakwater::config::HttpSettings;
//! let yaml: serde_yaml::Value = serde_yaml::from_str("listen: 0.0.0.0:9464").unwrap();
//! let h = HttpSettings::from_section(Some(&yaml)).unwrap();
//! assert_eq!(h.listen.unwrap().port(), 9464);
//! assert_eq!(HttpSettings::from_section(None).unwrap().listen.unwrap().to_string(), "127.0.0.1:9464");
//! ```

use std::net::SocketAddr;

use serde::Deserialize;

use super::file::ConfigError;

/// The port Breakwater serves on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// The resolved `http:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `None` when the section says `listen: off`.
    pub listen: Option<SocketAddr>,
    /// Which agents get their own `/metrics` series.
    pub series: SeriesBudget,
    /// Bearer token that `POST /agents/{id}/breaker` requires; `None`
    /// disables operator commands over HTTP. `BREAKWATER_HTTP_TOKEN` wins
    /// over the file (keep secrets out of config files).
    pub token: Option<String>,
}

/// Which agents get per-agent Prometheus series (`agent` label): every
/// agent whose breaker is not CLOSED or whose budget is not HEALTHY, the
/// `always` list, then the busiest, up to `max_agent_series` per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesBudget {
    pub max_agents: usize,
    pub allow: Vec<String>,
}

impl Default for SeriesBudget {
    fn default() -> Self {
        SeriesBudget {
            max_agents: 500,
            allow: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    max_agent_series: Option<i64>,
    always_export_agents: Option<Vec<String>>,
    token: Option<String>,
}

impl HttpSettings {
    /// Resolves the section (absent = all defaults).
    pub fn from_section(section: Option<&serde_yaml::Value>) -> Result<Self, ConfigError> {
        let raw: RawHttp = match section {
            None | Some(serde_yaml::Value::Null) => RawHttp::default(),
            Some(v) => serde_path_to_error::deserialize(v.clone())
                .map_err(|e| ConfigError::from_serde(e).under("http"))?,
        };
        let listen = match raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN) {
            "off" => None,
            text => Some(text.parse().map_err(|_| {
                ConfigError::invalid(
                    "http.listen".to_string(),
                    format!("{text:?}"),
                    "an address and port such as 127.0.0.1:9464 or 0.0.0.0:9464, or off",
                )
            })?),
        };
        let max_agents = match raw.max_agent_series {
            None => SeriesBudget::default().max_agents,
            Some(n) if (0..=100_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::invalid(
                    "http.max_agent_series".to_string(),
                    n,
                    "a whole number from 0 to 100000",
                ))
            }
        };
        let series = SeriesBudget {
            max_agents,
            allow: raw.always_export_agents.unwrap_or_default(),
        };
        let token = std::env::var("BREAKWATER_HTTP_TOKEN")
            .ok()
            .or(raw.token)
            .filter(|t| !t.is_empty());
        if token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::invalid(
                "http.token".to_string(),
                "(hidden)",
                "a token of at least 16 characters",
            ));
        }
        Ok(HttpSettings {
            listen,
            series,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_listen_address_names_the_key_the_value_and_what_is_allowed() {
        let v: serde_yaml::Value = serde_yaml::from_str("listen: localhost").unwrap();
        let e = HttpSettings::from_section(Some(&v))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.listen") && e.contains("localhost") && e.contains("0.0.0.0:9464"),
            "{e}"
        );
        let v: serde_yaml::Value = serde_yaml::from_str("port: 1").unwrap();
        let e = HttpSettings::from_section(Some(&v))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http") && e.contains("port"), "{e}");
        let v: serde_yaml::Value = serde_yaml::from_str("listen: off").unwrap();
        assert_eq!(HttpSettings::from_section(Some(&v)).unwrap().listen, None);
    }
}

//! A client for a Confluent-compatible schema registry: the writer schema of
//! an id (input) and the id of our output schemas (registering them).
//!
//! Two calls, both blocking, both bounded by `registry.timeout`:
//!
//! - `GET {url}/schemas/ids/{id}` → `{"schema": "<avsc>"}`;
//! - `POST {url}/subjects/{subject}/versions` with `{"schema": "<avsc>"}` →
//!   `{"id": N}` (registering a schema the subject already has returns its
//!   existing id).
//!
//! Calls are rare: decoders cache what they learn per schema id
//! ([`crate::decode::WriterSchemas`]), so only the first record of a new id
//! waits for one round trip (up to the timeout), and the encoder registers
//! its three schemas once at start-up. HTTP basic authentication
//! (`user:password`) is sent when configured; `https://` URLs use rustls
//! with the Mozilla root certificates; `HTTPS_PROXY`/`NO_PROXY` are honoured.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::config::RegistrySettings;

/// Content types the registry speaks (Confluent's, then plain JSON).
const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// HTTP 404: the registry does not have the schema (or subject).
    #[error("registry answered {status}{}", detail(.message))]
    NotFound { status: u16, message: String },
    /// Another HTTP 4xx: 401/403 (credentials), 409 (incompatible with the
    /// subject's compatibility rules), 422 (schema refused).
    #[error("{request}: registry answered {status}{}", detail(.message))]
    Refused {
        request: String,
        status: u16,
        message: String,
    },
    /// No usable answer: connection refused, DNS, TLS, timeout, HTTP 5xx.
    #[error("{request}: {reason}")]
    Unavailable { request: String, reason: String },
    /// A 2xx answer without what we asked for.
    #[error("{request}: unexpected answer: {reason}")]
    BadAnswer { request: String, reason: String },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// A schema as the registry returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredSchema {
    /// The schema text (an `.avsc` document for Avro).
    pub schema: String,
    /// `AVRO` (also when absent), `JSON` or `PROTOBUF`.
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
}

impl RegisteredSchema {
    /// Whether the registry holds it as an Avro schema.
    pub fn is_avro(&self) -> bool {
        self.schema_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("AVRO"))
    }
}

#[derive(Deserialize)]
struct RegisteredId {
    id: i64,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// A schema registry client. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct SchemaRegistry {
    settings: RegistrySettings,
    agent: ureq::Agent,
    /// `Basic …`, built once.
    authorization: Option<String>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// A client for `settings.url`; connects on first use.
    pub fn new(settings: &RegistrySettings) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
            .build();
        SchemaRegistry {
            settings: settings.clone(),
            agent: config.into(),
            authorization: settings
                .basic_auth
                .as_deref()
                .map(|auth| format!("Basic {}", base64(auth.as_bytes()))),
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// The schema registered under `id`. Blocks for one round trip.
    pub fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.settings.url);
        let request = format!("GET {url}");
        let body = self.answer(&request, self.with_auth(self.agent.get(&url)).call())?;
        serde_json::from_str(&body).map_err(|e| RegistryError::BadAnswer {
            request,
            reason: format!("not {{\"schema\": \"...\"}}: {e}"),
        })
    }

    /// Registers the Avro `schema` under `subject` (a no-op returning the
    /// existing id if the subject already has it) and returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!(
            "{}/subjects/{}/versions",
            self.settings.url,
            percent_encode(subject)
        );
        let request = format!("POST {url}");
        let body = serde_json::json!({ "schema": schema }).to_string();
        let call = self
            .with_auth(self.agent.post(&url))
            .header("Content-Type", CONTENT_TYPE)
            .send(body);
        let answer = self.answer(&request, call)?;
        let id = serde_json::from_str::<RegisteredId>(&answer)
            .map_err(|e| format!("not {{\"id\": N}}: {e}"))
            .and_then(|r| {
                u32::try_from(r.id).map_err(|_| format!("schema id {} out of range", r.id))
            });
        id.map_err(|reason| RegistryError::BadAnswer { request, reason })
    }

    fn with_auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request.header("Accept", ACCEPT);
        match &self.authorization {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        }
    }

    /// The body of a 2xx answer, or the error.
    fn answer(
        &self,
        request: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, RegistryError> {
        let unavailable = |reason: String| RegistryError::Unavailable {
            request: request.to_string(),
            reason,
        };
        let mut response = result.map_err(|e| unavailable(self.transport_error(e)))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| {
                unavailable(format!(
                    "reading the {status} answer: {}",
                    self.transport_error(e)
                ))
            })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = error_message(&body);
        match status {
            404 => Err(RegistryError::NotFound { status, message }),
            400..=499 => Err(RegistryError::Refused {
                request: request.to_string(),
                status,
                message,
            }),
            _ => Err(unavailable(format!(
                "registry answered {status}{}",
                detail(&message)
            ))),
        }
    }

    fn transport_error(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!(
                "no answer within {} (registry.timeout)",
                humantime::format_duration(round_ms(self.settings.timeout))
            ),
            other => other.to_string(),
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The registry's `{"error_code": 40403, "message": "Schema not found"}`,
/// or the start of whatever else it said.
fn error_message(body: &str) -> String {
    if let Ok(ErrorBody {
        error_code,
        message: Some(message),
    }) = serde_json::from_str::<ErrorBody>(body)
    {
        return match error_code {
            Some(code) => format!("error {code}: {message}"),
            None => message,
        };
    }
    let body = body.trim();
    let mut end = body.len().min(200);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for the basic auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pa$$w0rd", "dXNlcjpwYSQkdzByZA=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(percent_encode("agent.alerts-value"), "agent.alerts-value");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(r#"{"error_code": 40403, "message": "Schema 42 not found"}"#),
            "error 40403: Schema 42 not found"
        );
        assert_eq!(
            error_message(" <html>Bad gateway</html>\n"),
            "<html>Bad gateway</html>"
        );
        assert_eq!(error_message(""), "");
        let e = RegistryError::NotFound {
            status: 404,
            message: "error 40403: Schema 42 not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "registry answered 404 (error 40403: Schema 42 not found)"
        );
    }

    #[test]
    fn schema_types() {
        let avro: RegisteredSchema = serde_json::from_str(r#"{"schema": "\"long\""}"#).unwrap();
        assert!(avro.is_avro());
        let proto: RegisteredSchema =
            serde_json::from_str(r#"{"schema": "syntax = ...", "schemaType": "PROTOBUF"}"#)
                .unwrap();
        assert!(!proto.is_avro());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let mut settings = RegistrySettings::new("http://r");
        settings.basic_auth = Some("me:s3cret".into());
        let registry = SchemaRegistry::new(&settings);
        assert_eq!(
            registry.authorization.as_deref(),
            Some("Basic bWU6czNjcmV0")
        );
        let debug = format!("{registry:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("bWU6"),
            "{debug}"
        );
    }
}

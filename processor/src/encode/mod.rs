//! Output records to bytes, in the configured `output.format`:
//!
//! - `json`: one JSON object with the schema's field names (the record
//!   itself, without the `type` tag replay prints: each topic holds one
//!   record type);
//! - `confluent`: Avro binary with Confluent framing (`0x00`, 4-byte
//!   big-endian schema id). Ids come from `output.schema_ids`, or are
//!   registered with the schema registry at start-up under subject
//!   `<topic>-value`;
//! - `single-object`: Avro binary with single-object framing (`0xC3 0x01`,
//!   the schema's 8-byte little-endian Rabin fingerprint).
//!
//! Each encoded record comes with the values of the headers the job
//! attaches: the schema's full name and the content type.

mod schemas;

use apache_avro::writer::datum::GenericDatumWriter;

use crate::config::{OutputFormat, OutputSettings, Topics, WireSettings};
use crate::decode::framing::{confluent_header, single_object_header};
use crate::decode::schema_fingerprint;
use crate::output::Output;
use crate::registry::{RegistryError, SchemaRegistry};

pub use schemas::OutputKind;

/// Content type of `json` output.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Content type of `confluent` output: Avro binary, Confluent framing.
pub const CONFLUENT_AVRO_CONTENT_TYPE: &str = "application/vnd.confluent.avro";
/// Content type of `single-object` output: Avro single-object encoding.
pub const SINGLE_OBJECT_AVRO_CONTENT_TYPE: &str = "application/vnd.apache.avro.single-object";

/// One output record, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The record value.
    pub payload: Vec<u8>,
    pub kind: OutputKind,
    /// For a schema header: the Avro full name, e.g.
    /// `io.breakwater.BreakerTransition` (also for JSON).
    pub schema_name: &'static str,
    /// For a content-type header.
    pub content_type: &'static str,
}

/// Why the encoder could not be set up, or a record not encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Registering an output schema failed.
    #[error("registering {schema} under subject {subject}: {error}")]
    Registry {
        schema: &'static str,
        subject: String,
        error: RegistryError,
    },
    /// `confluent` output without the schema's id and without a registry.
    #[error(
        "output.schema_ids.{key} is not set and no schema registry is configured to \
         register {schema}"
    )]
    MissingSchemaId {
        key: &'static str,
        schema: &'static str,
    },
    /// A record that does not fit its schema (a bug: tests prove they fit),
    /// or a schema apache-avro cannot write with.
    #[error("encoding {schema} as {format}: {reason}")]
    Record {
        schema: &'static str,
        format: OutputFormat,
        reason: String,
    },
}

/// Encodes output records; built once from the settings.
///
/// ```
/// use breakwater::config::{OutputFormat, OutputSettings, Topics};
/// use breakwater::encode::{Encoder, OutputKind};
///
/// let settings = OutputSettings { format: OutputFormat::SingleObject, ..Default::default() };
/// let encoder = Encoder::new(&settings, None, &Topics::default()).unwrap();
/// assert_eq!(encoder.header(OutputKind::Alert)[..2], [0xC3, 0x01]);
/// ```
pub struct Encoder {
    format: OutputFormat,
    /// Per [`OutputKind`]: the framing header and the datum writer.
    kinds: Vec<KindEncoder>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<Option<u32>> = self.kinds.iter().map(|k| k.schema_id).collect();
        f.debug_struct("Encoder")
            .field("format", &self.format)
            .field("schema_ids", &ids)
            .finish()
    }
}

struct KindEncoder {
    header: Vec<u8>,
    schema_id: Option<u32>,
    writer: GenericDatumWriter<'static>,
}

impl Encoder {
    /// An encoder for `settings`. For `confluent` output, schemas without a
    /// configured id are registered with `registry` (one blocking request
    /// each) under subject `<topic>-value`, topics from `topics`.
    pub fn new(
        settings: &OutputSettings,
        registry: Option<&SchemaRegistry>,
        topics: &Topics,
    ) -> Result<Self, EncodeError> {
        let mut kinds = Vec::with_capacity(OutputKind::ALL.len());
        for kind in OutputKind::ALL {
            let schema = kind.schema();
            let (header, schema_id) = match settings.format {
                OutputFormat::Json => (Vec::new(), None),
                OutputFormat::SingleObject => (
                    single_object_header(schema_fingerprint(schema)).to_vec(),
                    None,
                ),
                OutputFormat::Confluent => {
                    let id = match (configured_id(settings, kind), registry) {
                        (Some(id), _) => id,
                        (None, Some(registry)) => {
                            let subject = kind.subject(topics);
                            registry
                                .register(&subject, kind.schema_json())
                                .map_err(|error| EncodeError::Registry {
                                    schema: kind.schema_name(),
                                    subject,
                                    error,
                                })?
                        }
                        (None, None) => {
                            return Err(EncodeError::MissingSchemaId {
                                key: kind.config_key(),
                                schema: kind.schema_name(),
                            })
                        }
                    };
                    (confluent_header(id).to_vec(), Some(id))
                }
            };
            let writer =
                GenericDatumWriter::builder(schema)
                    .build()
                    .map_err(|e| EncodeError::Record {
                        schema: kind.schema_name(),
                        format: settings.format,
                        reason: e.to_string(),
                    })?;
            kinds.push(KindEncoder {
                header,
                schema_id,
                writer,
            });
        }
        Ok(Encoder {
            format: settings.format,
            kinds,
        })
    }

    /// An encoder for the `output` and `registry` settings of `wire`.
    pub fn from_settings(wire: &WireSettings, topics: &Topics) -> Result<Self, EncodeError> {
        let registry = wire.registry.as_ref().map(SchemaRegistry::new);
        Self::new(&wire.output, registry.as_ref(), topics)
    }

    /// The configured output format.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The Confluent schema id records of `kind` carry (`confluent` only).
    pub fn schema_id(&self, kind: OutputKind) -> Option<u32> {
        self.kinds[kind.index()].schema_id
    }

    /// The framing header records of `kind` start with (empty for JSON).
    pub fn header(&self, kind: OutputKind) -> &[u8] {
        &self.kinds[kind.index()].header
    }

    /// The content type of every record.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            OutputFormat::Json => JSON_CONTENT_TYPE,
            OutputFormat::Confluent => CONFLUENT_AVRO_CONTENT_TYPE,
            OutputFormat::SingleObject => SINGLE_OBJECT_AVRO_CONTENT_TYPE,
        }
    }

    /// Encodes one output record.
    pub fn encode(&self, output: &Output) -> Result<Encoded, EncodeError> {
        let kind = OutputKind::of(output);
        let payload = match self.format {
            OutputFormat::Json => match output {
                Output::BreakerTransition(t) => serde_json::to_vec(t),
                Output::Alert(a) => serde_json::to_vec(a),
                Output::BudgetSnapshot(s) => serde_json::to_vec(s),
            }
            .map_err(|e| EncodeError::Record {
                schema: kind.schema_name(),
                format: self.format,
                reason: e.to_string(),
            })?,
            OutputFormat::Confluent | OutputFormat::SingleObject => {
                let k = &self.kinds[kind.index()];
                let mut payload = Vec::with_capacity(256);
                payload.extend_from_slice(&k.header);
                match output {
                    Output::BreakerTransition(t) => k.writer.write_ser(&mut payload, t),
                    Output::Alert(a) => k.writer.write_ser(&mut payload, a),
                    Output::BudgetSnapshot(s) => k.writer.write_ser(&mut payload, s.as_ref()),
                }
                .map_err(|e| EncodeError::Record {
                    schema: kind.schema_name(),
                    format: self.format,
                    reason: e.to_string(),
                })?;
                payload
            }
        };
        Ok(Encoded {
            payload,
            kind,
            schema_name: kind.schema_name(),
            content_type: self.content_type(),
        })
    }
}

fn configured_id(settings: &OutputSettings, kind: OutputKind) -> Option<u32> {
    let ids = &settings.schema_ids;
    match kind {
        OutputKind::BreakerTransition => ids.breaker_transition,
        OutputKind::Alert => ids.alert,
        OutputKind::BudgetSnapshot => ids.budget_snapshot,
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;

    use super::*;
    use crate::config::{OutputSchemaIds, Severity};
    use crate::decode::Framing;
    use crate::engine::alert::AlertStatus;
    use crate::output::AlertEvent;

    fn alert() -> Output {
        Output::Alert(AlertEvent {
            alert_id: "a-1".into(),
            agent_id: "research-agent".into(),
            seq: 7,
            rule: "task_success_rate".into(),
            status: AlertStatus::Firing,
            severity: Severity::Critical,
            value: Some(0.8),
            threshold: 0.9,
            window: "24h".into(),
            started_at: 1_000,
            event_time: 2_000,
        })
    }

    fn settings(format: OutputFormat) -> OutputSettings {
        OutputSettings {
            format,
            schema_ids: OutputSchemaIds {
                breaker_transition: Some(1),
                alert: Some(2),
                budget_snapshot: Some(3),
            },
        }
    }

    fn read_back(kind: OutputKind, datum: &[u8]) -> AlertEvent {
        let reader = GenericDatumReader::builder(kind.schema()).build().unwrap();
        let mut rest = datum;
        let value = reader.read_value(&mut rest).unwrap();
        assert!(rest.is_empty());
        apache_avro::from_value(&value).unwrap()
    }

    #[test]
    fn every_format_round_trips() {
        let topics = Topics::default();
        let Output::Alert(expected) = alert() else {
            unreachable!()
        };

        let json = Encoder::new(&settings(OutputFormat::Json), None, &topics).unwrap();
        let e = json.encode(&alert()).unwrap();
        assert_eq!(
            (e.content_type, e.schema_name),
            ("application/json", "io.breakwater.AlertEvent")
        );
        assert_eq!(
            serde_json::from_slice::<AlertEvent>(&e.payload).unwrap(),
            expected
        );
        assert!(!String::from_utf8(e.payload).unwrap().contains("\"type\""));

        let confluent = Encoder::new(&settings(OutputFormat::Confluent), None, &topics).unwrap();
        let e = confluent.encode(&alert()).unwrap();
        assert_eq!(e.content_type, CONFLUENT_AVRO_CONTENT_TYPE);
        assert_eq!(confluent.schema_id(OutputKind::Alert), Some(2));
        let Framing::Confluent { schema_id, datum } = Framing::detect(&e.payload).unwrap() else {
            panic!("not Confluent framing")
        };
        assert_eq!(schema_id, 2);
        assert_eq!(read_back(OutputKind::Alert, datum), expected);

        let single = Encoder::new(&settings(OutputFormat::SingleObject), None, &topics).unwrap();
        let e = single.encode(&alert()).unwrap();
        assert_eq!(e.content_type, SINGLE_OBJECT_AVRO_CONTENT_TYPE);
        let Framing::SingleObject { fingerprint, datum } = Framing::detect(&e.payload).unwrap()
        else {
            panic!("not single-object framing")
        };
        assert_eq!(fingerprint, schema_fingerprint(OutputKind::Alert.schema()));
        assert_eq!(read_back(OutputKind::Alert, datum), expected);
        assert_eq!(single.schema_id(OutputKind::Alert), None);
    }

    #[test]
    fn an_encoder_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Encoder>();
    }

    #[test]
    fn confluent_without_ids_or_registry_is_refused() {
        let mut s = settings(OutputFormat::Confluent);
        s.schema_ids.budget_snapshot = None;
        let e = Encoder::new(&s, None, &Topics::default()).err().unwrap();
        assert_eq!(
            e.to_string(),
            "output.schema_ids.budget_snapshot is not set and no schema registry is \
             configured to register io.breakwater.BudgetSnapshot"
        );
    }
}

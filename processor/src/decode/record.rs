//! The value of a Kafka record into a task event: framing, writer schema,
//! datum.

use crate::config::{InputFormat, InputSettings, WireSettings};
use crate::event::TaskEvent;
use crate::registry::SchemaRegistry;

use super::spares::Spares;
use super::{decode_json, DecodeError, Framing, WriterSchemas};

/// Decodes the values of input records, in the configured `input.format`.
///
/// Build one per consumer from the settings and keep it: it caches a
/// prepared decoder per writer schema. Per record it splits the framing
/// (borrowing, no copy), finds the writer schema's decoder (a hash lookup;
/// none for the common case of the same id as the previous record) and
/// reads the datum; with the bundled schema's canonical form that allocates
/// nothing but the event itself.
///
/// With a schema registry, the first record of an id not seen before
/// blocks for one registry request, at most `registry.timeout`. Call it
/// where blocking for that long is acceptable (a consumer thread, or
/// `spawn_blocking` in async code). A [`DecodeError`] with
/// [`is_transient`](DecodeError::is_transient) means the registry could not
/// be asked: retry the record later rather than dead-letter it.
///
/// ```
/// use breakwater::config::InputSettings;
/// use breakwater::decode::{encode_avro_datum, RecordDecoder};
/// use breakwater::event::{Outcome, TaskEvent};
///
/// let input = InputSettings { default_schema_id: Some(1), ..InputSettings::default() };
/// let mut decoder = RecordDecoder::new(&input, None).unwrap();
/// let event = TaskEvent::new("e-1", "research-agent", 1_795_867_200_000, Outcome::Success);
/// let mut value = vec![0, 0, 0, 0, 1]; // Confluent framing, schema id 1
/// value.extend(encode_avro_datum(&event));
/// assert_eq!(decoder.decode(&value).unwrap(), event);
///
/// value[4] = 42;
/// assert!(decoder.decode(&value).unwrap_err().to_string().starts_with(
///     "schema id 42 is not registered: no schema registry is configured"
/// ));
/// ```
#[derive(Debug)]
pub struct RecordDecoder {
    format: InputFormat,
    schemas: WriterSchemas,
    /// Strings kept from events decoded into (see [`RecordDecoder::decode_into`]).
    spares: Spares,
}

impl RecordDecoder {
    /// A decoder for `input`, asking `registry` for schema ids if given.
    /// Fails if a configured schema file cannot be read as a task event.
    pub fn new(
        input: &InputSettings,
        registry: Option<SchemaRegistry>,
    ) -> Result<Self, DecodeError> {
        Ok(RecordDecoder {
            format: input.format,
            schemas: WriterSchemas::new(input, registry)?,
            spares: Spares::default(),
        })
    }

    /// A decoder for the `input` and `registry` settings of `wire`.
    pub fn from_settings(wire: &WireSettings) -> Result<Self, DecodeError> {
        Self::new(&wire.input, wire.registry.as_ref().map(SchemaRegistry::new))
    }

    /// The configured input format.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The writer schemas known so far.
    pub fn schemas(&self) -> &WriterSchemas {
        &self.schemas
    }

    /// One record value as a validated task event, or why not.
    pub fn decode(&mut self, value: &[u8]) -> Result<TaskEvent, DecodeError> {
        match Framing::parse(value, self.format)? {
            Framing::Confluent { schema_id, datum } => self.schemas.by_id(schema_id)?.decode(datum),
            Framing::SingleObject { fingerprint, datum } => {
                self.schemas.by_fingerprint(fingerprint)?.decode(datum)
            }
            Framing::Json(json) => decode_json(json),
        }
    }

    /// As [`decode`](Self::decode), into `event`, for a caller that keeps
    /// its events and decodes into them again and again: every field is
    /// overwritten. Avro of the bundled schema's canonical form is read in
    /// place: once `event`'s strings are big enough, this allocates
    /// nothing. Other writer schemas and JSON decode a new event and
    /// assign it. After an error `event` holds a mix of old and new
    /// fields: decode into it again, or discard it.
    ///
    /// ```
    /// use breakwater::config::InputSettings;
    /// use breakwater::decode::{empty_event, encode_avro_datum, RecordDecoder};
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let input = InputSettings { default_schema_id: Some(1), ..InputSettings::default() };
    /// let mut decoder = RecordDecoder::new(&input, None).unwrap();
    /// let mut slot = empty_event();
    /// for id in ["e-1", "e-2"] {
    ///     let event = TaskEvent::new(id, "research-agent", 1_795_867_200_000, Outcome::Success);
    ///     let mut value = vec![0, 0, 0, 0, 1]; // Confluent framing, schema id 1
    ///     value.extend(encode_avro_datum(&event));
    ///     decoder.decode_into(&value, &mut slot).unwrap();
    ///     assert_eq!(slot, event);
    /// }
    /// ```
    pub fn decode_into(&mut self, value: &[u8], event: &mut TaskEvent) -> Result<(), DecodeError> {
        match Framing::parse(value, self.format)? {
            Framing::Confluent { schema_id, datum } => {
                self.schemas
                    .by_id(schema_id)?
                    .decode_into(datum, event, &mut self.spares)
            }
            Framing::SingleObject { fingerprint, datum } => self
                .schemas
                .by_fingerprint(fingerprint)?
                .decode_into(datum, event, &mut self.spares),
            Framing::Json(json) => {
                *event = decode_json(json)?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoder_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<RecordDecoder>();
    }
}

//! Bytes on the topics ↔ the engine's types, for the job: the input
//! decoder and the output encoder (formats and schema registry from
//! `kafka.wire`), and the headers that name what a record holds.
//!
//! The two halves live apart in the job: the poll loop decodes each record
//! as it takes it, without the stream lock, and the [`Sink`] encodes
//! outputs under it.
//!
//! [`Sink`]: super::stream::Sink

use super::JobError;
use crate::config::KafkaSettings;
use crate::decode::{DecodeError, RecordDecoder};
use crate::encode::{Encoded, Encoder};
use crate::event::TaskEvent;
use crate::output::Output;

/// Record header naming the record's schema (`io.breakwater.BreakerTransition`, …).
pub const SCHEMA_HEADER: &str = "breakwater.schema";
/// Record header naming the instance that produced the record.
pub const INSTANCE_HEADER: &str = "breakwater.instance";
/// Record header with the payload's media type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// Decodes input records and encodes output records.
pub struct Codec {
    pub input: InputDecoder,
    pub output: OutputEncoder,
}

/// The input half of a [`Codec`].
pub struct InputDecoder(RecordDecoder);

/// The output half of a [`Codec`].
pub struct OutputEncoder(Encoder);

impl Codec {
    /// Built once at start-up: reads schema files and, for Confluent
    /// output without configured ids, registers the output schemas.
    pub fn from_settings(settings: &KafkaSettings) -> Result<Self, JobError> {
        let decoder = RecordDecoder::from_settings(&settings.wire)
            .map_err(|e| JobError::Codec(format!("input: {e}")))?;
        let encoder = Encoder::from_settings(&settings.wire, &settings.topics)
            .map_err(|e| JobError::Codec(e.to_string()))?;
        Ok(Codec {
            input: InputDecoder(decoder),
            output: OutputEncoder(encoder),
        })
    }

    /// See [`InputDecoder::decode`].
    pub fn decode(&mut self, payload: &[u8]) -> Result<TaskEvent, DecodeError> {
        self.input.decode(payload)
    }

    /// See [`InputDecoder::decode_into`].
    pub fn decode_into(
        &mut self,
        payload: &[u8],
        event: &mut TaskEvent,
    ) -> Result<(), DecodeError> {
        self.input.decode_into(payload, event)
    }

    /// See [`OutputEncoder::encode`].
    pub fn encode(&self, output: &Output) -> Result<Encoded, JobError> {
        self.output.encode(output)
    }
}

impl InputDecoder {
    /// One input record's value as a task event, or why not. A transient
    /// error (the registry is unreachable) says nothing about the record.
    pub fn decode(&mut self, payload: &[u8]) -> Result<TaskEvent, DecodeError> {
        self.0.decode(payload)
    }

    /// As [`decode`](Self::decode), into a reused `event` (see
    /// [`RecordDecoder::decode_into`]): the job's path, which allocates
    /// nothing for a good Avro record once its slot has held one like it.
    pub fn decode_into(
        &mut self,
        payload: &[u8],
        event: &mut TaskEvent,
    ) -> Result<(), DecodeError> {
        self.0.decode_into(payload, event)
    }
}

impl OutputEncoder {
    /// One output record's value, schema name and content type.
    pub fn encode(&self, output: &Output) -> Result<Encoded, JobError> {
        self.0
            .encode(output)
            .map_err(|e| JobError::Codec(e.to_string()))
    }
}

//! The framings of a Kafka record value: which bytes say what follows.
//!
//! - Confluent Schema Registry: `0x00`, the schema id as 4 bytes big-endian,
//!   then the Avro binary datum.
//! - Avro single-object encoding: `0xC3 0x01`, the CRC-64-AVRO (Rabin)
//!   fingerprint of the writer schema's Parsing Canonical Form as 8 bytes
//!   little-endian, then the Avro binary datum.
//! - JSON: one object, starting with `{` (possibly after whitespace).
//!
//! Parsing borrows: the datum is a slice of the record value, nothing is
//! copied.

use crate::config::InputFormat;

use super::DecodeError;

/// The first byte of a Confluent-framed record.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Magic byte, 4-byte schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;
/// The first two bytes of a single-object-encoded record.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
/// Marker, 8-byte fingerprint.
pub const SINGLE_OBJECT_HEADER_LEN: usize = 10;

const EXPECTED: &str = "Confluent Avro (0x00), single-object Avro (0xC3 0x01) or JSON";

/// A record value split into its framing and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing<'a> {
    /// Confluent framing: the writer schema is registry id `schema_id`.
    Confluent { schema_id: u32, datum: &'a [u8] },
    /// Single-object encoding: the writer schema has this Rabin fingerprint
    /// (the 8 header bytes read as a little-endian `u64`).
    SingleObject { fingerprint: u64, datum: &'a [u8] },
    /// JSON text (the whole value).
    Json(&'a [u8]),
}

impl<'a> Framing<'a> {
    /// Tells the framing by the first bytes (`input.format: auto`): `0x00`
    /// Confluent, `0xC3 0x01` single-object, `{` or whitespace JSON.
    ///
    /// ```
    /// use breakwater::decode::Framing;
    /// assert_eq!(
    ///     Framing::detect(&[0, 0, 0, 0, 42, 2]).unwrap(),
    ///     Framing::Confluent { schema_id: 42, datum: &[2] },
    /// );
    /// assert_eq!(Framing::detect(b" {}").unwrap(), Framing::Json(b" {}"));
    /// assert_eq!(
    ///     Framing::detect(b"\x7fELF").unwrap_err().to_string(),
    ///     "record starts with byte 0x7f: not Confluent Avro (0x00), \
    ///      single-object Avro (0xC3 0x01) or JSON",
    /// );
    /// ```
    pub fn detect(value: &'a [u8]) -> Result<Self, DecodeError> {
        match value {
            [] => Err(DecodeError::Framing(format!(
                "empty record value: expected {EXPECTED}"
            ))),
            [CONFLUENT_MAGIC, ..] => Self::confluent(value),
            [0xC3, 0x01, ..] => Self::single_object(value),
            [0xC3] => Self::single_object(value),
            [0xC3, second, ..] => Err(DecodeError::Framing(format!(
                "record starts with bytes 0xc3 {second:#04x}: not {EXPECTED}"
            ))),
            [b'{' | b' ' | b'\t' | b'\n' | b'\r', ..] => Ok(Framing::Json(value)),
            [first, ..] => Err(DecodeError::Framing(format!(
                "record starts with byte {first:#04x}: not {EXPECTED}"
            ))),
        }
    }

    /// Splits `value` as `format` says: [`Framing::detect`] for `auto`; a
    /// forced format refuses any other framing.
    #[inline]
    pub fn parse(value: &'a [u8], format: InputFormat) -> Result<Self, DecodeError> {
        match format {
            InputFormat::Auto => Self::detect(value),
            InputFormat::Confluent => Self::confluent(value),
            InputFormat::SingleObject => Self::single_object(value),
            InputFormat::Json => Ok(Framing::Json(value)),
        }
    }

    /// A Confluent-framed value.
    #[inline]
    pub fn confluent(value: &'a [u8]) -> Result<Self, DecodeError> {
        match value {
            [CONFLUENT_MAGIC, a, b, c, d, datum @ ..] => Ok(Framing::Confluent {
                schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
                datum,
            }),
            _ => Err(not_confluent(value)),
        }
    }

    /// A single-object-encoded value.
    pub fn single_object(value: &'a [u8]) -> Result<Self, DecodeError> {
        match value {
            [0xC3, 0x01, f0, f1, f2, f3, f4, f5, f6, f7, datum @ ..] => Ok(Framing::SingleObject {
                fingerprint: u64::from_le_bytes([*f0, *f1, *f2, *f3, *f4, *f5, *f6, *f7]),
                datum,
            }),
            [0xC3, 0x01, ..] | [0xC3] => Err(DecodeError::Framing(format!(
                "single-object Avro record of {} bytes: shorter than its \
                 {SINGLE_OBJECT_HEADER_LEN}-byte header (0xC3 0x01, 8-byte schema fingerprint)",
                value.len()
            ))),
            _ => Err(not_the_forced_format(
                value,
                "the single-object marker 0xC3 0x01",
                "single-object",
            )),
        }
    }
}

/// Why `value` is not Confluent-framed (out of line: the job's path inlines
/// [`Framing::confluent`]).
#[cold]
fn not_confluent(value: &[u8]) -> DecodeError {
    match value {
        [CONFLUENT_MAGIC, ..] => DecodeError::Framing(format!(
            "Confluent Avro record of {} bytes: shorter than its {CONFLUENT_HEADER_LEN}-byte \
             header (magic byte 0x00, 4-byte schema id)",
            value.len()
        )),
        _ => not_the_forced_format(value, "the Confluent magic byte 0x00", "confluent"),
    }
}

fn not_the_forced_format(value: &[u8], marker: &str, format: &str) -> DecodeError {
    let Some(&first) = value.first() else {
        return DecodeError::Framing(format!(
            "empty record value: expected {marker} (input.format is {format})"
        ));
    };
    let looks_like = match Framing::detect(value) {
        Ok(Framing::Confluent { .. }) => "; it looks like Confluent Avro",
        Ok(Framing::SingleObject { .. }) => "; it looks like single-object Avro",
        Ok(Framing::Json(_)) => "; it looks like JSON",
        Err(_) => "",
    };
    DecodeError::Framing(format!(
        "record starts with byte {first:#04x}, not {marker} (input.format is {format}{looks_like})"
    ))
}

/// The 5-byte Confluent header for `schema_id`.
pub fn confluent_header(schema_id: u32) -> [u8; CONFLUENT_HEADER_LEN] {
    let [a, b, c, d] = schema_id.to_be_bytes();
    [CONFLUENT_MAGIC, a, b, c, d]
}

/// The 10-byte single-object header for a writer schema `fingerprint`.
pub fn single_object_header(fingerprint: u64) -> [u8; SINGLE_OBJECT_HEADER_LEN] {
    let mut header = [0; SINGLE_OBJECT_HEADER_LEN];
    header[..2].copy_from_slice(&SINGLE_OBJECT_MAGIC);
    header[2..].copy_from_slice(&fingerprint.to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_error(value: &[u8], format: InputFormat) -> String {
        match Framing::parse(value, format) {
            Err(e @ DecodeError::Framing(_)) => e.to_string(),
            other => panic!("{value:?} as {format}: {other:?}"),
        }
    }

    #[test]
    fn headers_round_trip() {
        let mut value = confluent_header(0x0102_0304).to_vec();
        value.extend_from_slice(b"datum");
        assert_eq!(
            Framing::detect(&value).unwrap(),
            Framing::Confluent {
                schema_id: 0x0102_0304,
                datum: b"datum"
            }
        );
        assert_eq!(&value[..5], &[0, 1, 2, 3, 4]);

        let mut value = single_object_header(0x1122_3344_5566_7788).to_vec();
        value.extend_from_slice(b"x");
        assert_eq!(&value[..4], &[0xC3, 0x01, 0x88, 0x77]);
        assert_eq!(
            Framing::detect(&value).unwrap(),
            Framing::SingleObject {
                fingerprint: 0x1122_3344_5566_7788,
                datum: b"x"
            }
        );
        // An empty datum is a framing's business no more: the Avro reader
        // says it is truncated.
        assert_eq!(
            Framing::detect(&[0, 0, 0, 0, 1]).unwrap(),
            Framing::Confluent {
                schema_id: 1,
                datum: &[]
            }
        );
    }

    #[test]
    fn auto_detection() {
        for json in [&b"{}"[..], b"\n{", b" \t{", b"\r\n{}"] {
            assert_eq!(Framing::detect(json).unwrap(), Framing::Json(json));
        }
        assert_eq!(
            framing_error(b"\x7f", InputFormat::Auto),
            "record starts with byte 0x7f: not Confluent Avro (0x00), single-object Avro \
             (0xC3 0x01) or JSON"
        );
        assert_eq!(
            framing_error(b"[1]", InputFormat::Auto),
            "record starts with byte 0x5b: not Confluent Avro (0x00), single-object Avro \
             (0xC3 0x01) or JSON"
        );
        assert_eq!(
            framing_error(b"\xc3\x02abcdefgh", InputFormat::Auto),
            "record starts with bytes 0xc3 0x02: not Confluent Avro (0x00), single-object \
             Avro (0xC3 0x01) or JSON"
        );
        assert_eq!(
            framing_error(b"", InputFormat::Auto),
            "empty record value: expected Confluent Avro (0x00), single-object Avro \
             (0xC3 0x01) or JSON"
        );
    }

    #[test]
    fn short_headers() {
        assert_eq!(
            framing_error(&[0, 0, 1], InputFormat::Auto),
            "Confluent Avro record of 3 bytes: shorter than its 5-byte header (magic byte \
             0x00, 4-byte schema id)"
        );
        assert_eq!(
            framing_error(&[0xC3, 0x01, 1, 2], InputFormat::Auto),
            "single-object Avro record of 4 bytes: shorter than its 10-byte header (0xC3 \
             0x01, 8-byte schema fingerprint)"
        );
        assert!(framing_error(&[0xC3], InputFormat::Auto).contains("of 1 bytes"));
    }

    #[test]
    fn forced_formats_refuse_the_others() {
        assert_eq!(
            framing_error(b"{\"a\": 1}", InputFormat::Confluent),
            "record starts with byte 0x7b, not the Confluent magic byte 0x00 (input.format \
             is confluent; it looks like JSON)"
        );
        assert_eq!(
            framing_error(&[0, 0, 0, 0, 1, 2], InputFormat::SingleObject),
            "record starts with byte 0x00, not the single-object marker 0xC3 0x01 \
             (input.format is single-object; it looks like Confluent Avro)"
        );
        assert_eq!(
            framing_error(&single_object_header(7), InputFormat::Confluent),
            "record starts with byte 0xc3, not the Confluent magic byte 0x00 (input.format \
             is confluent; it looks like single-object Avro)"
        );
        assert_eq!(
            framing_error(b"\x01", InputFormat::Confluent),
            "record starts with byte 0x01, not the Confluent magic byte 0x00 (input.format \
             is confluent)"
        );
        assert!(framing_error(b"", InputFormat::SingleObject).starts_with("empty record value"));
        // Forced JSON hands anything to the JSON reader.
        assert_eq!(
            Framing::parse(&[0, 1], InputFormat::Json).unwrap(),
            Framing::Json(&[0, 1])
        );
    }
}

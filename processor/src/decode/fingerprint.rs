//! Schema fingerprints as single-object encoding carries them: the
//! CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form.
//!
//! apache-avro 0.22's `Schema::canonical_form` writes a primitive that has a
//! logical type as `{"type":"long"}`, where the specification's
//! [PRIMITIVES] rule (and Java, fastavro, avro-python) write `"long"`; its
//! fingerprints of schemas with `timestamp-millis` fields — ours — therefore
//! differ from everyone else's. [`canonical_form`] corrects that, and
//! [`schema_fingerprint`] is computed from the corrected form. A test pins
//! the fingerprint of `schemas/task_event.avsc` that fastavro computes.

use apache_avro::Schema;

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of `schema`, as the Avro specification
/// defines it.
pub fn canonical_form(schema: &Schema) -> String {
    let mut form = schema.canonical_form();
    // Safe as text: in a canonical form the only strings are names, symbols
    // and type names, none of which can hold `{`, `}` or `"`.
    if form.contains(r#"{"type":""#) {
        for p in PRIMITIVES {
            form = form.replace(&format!(r#"{{"type":"{p}"}}"#), &format!(r#""{p}""#));
        }
    }
    form
}

/// The CRC-64-AVRO (Rabin) fingerprint of `schema`'s Parsing Canonical
/// Form, as a number; single-object encoding writes it little-endian.
pub fn schema_fingerprint(schema: &Schema) -> u64 {
    rabin(canonical_form(schema).as_bytes())
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The 64-bit Rabin fingerprint of the Avro specification.
pub fn rabin(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

#[cfg(test)]
mod tests {
    use apache_avro::rabin::Rabin;

    use super::*;
    use crate::decode::AvroSchemas;

    #[test]
    fn rabin_matches_apache_avro_on_text_without_logical_types() {
        // apache-avro's own test vector: "hello world" → 60335ba6d0415528 (LE).
        assert_eq!(
            rabin(b"hello world").to_le_bytes(),
            [0x60, 0x33, 0x5b, 0xa6, 0xd0, 0x41, 0x55, 0x28]
        );
        let plain = Schema::parse_str(
            r#"{"type": "record", "name": "a.R", "fields": [
                {"name": "x", "type": "long"}, {"name": "y", "type": ["null", "string"]}]}"#,
        )
        .unwrap();
        let theirs = plain.fingerprint::<Rabin>().bytes;
        assert_eq!(schema_fingerprint(&plain).to_le_bytes().to_vec(), theirs);
        assert_eq!(canonical_form(&plain), plain.canonical_form());
    }

    #[test]
    fn logical_types_reduce_to_their_primitive() {
        let s = Schema::parse_str(
            r#"{"type": "record", "name": "R", "namespace": "n", "doc": "d", "fields": [
                {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "d", "type": {"type": "int", "logicalType": "date"}},
                {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "a", "type": {"type": "array", "items":
                    {"type": "long", "logicalType": "timestamp-micros"}}, "default": []}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&s),
            r#"{"name":"n.R","type":"record","fields":[{"name":"t","type":"long"},"#.to_owned()
                + r#"{"name":"d","type":"int"},{"name":"u","type":"string"},"#
                + r#"{"name":"a","type":{"type":"array","items":"long"}}]}"#
        );
    }

    #[test]
    fn the_task_event_fingerprint_is_fastavros() {
        // fastavro 1.13.1: fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO").
        let fingerprint = schema_fingerprint(AvroSchemas::task_event());
        assert_eq!(
            crate::decode::fingerprint_hex(fingerprint),
            "4bf0d11be0188bfa"
        );
    }
}

//! The wire formats of `breakwater run`: input record values (Confluent
//! framing, single-object encoding, JSON) into task events, output records
//! into bytes, and the schema registry both use.
//!
//! The registry here is a fake: a small HTTP server on 127.0.0.1 serving
//! canned answers and recording every request. Interoperability with the
//! standard Python stack (fastavro) runs with `$BREAKWATER_PYTHON`, else
//! with a venv that tests/interop/python-env.sh creates on first use.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::json;
use support::python::python;

use breakwater::config::{
    InputFormat, InputSettings, OutputFormat, OutputSchemaIds, OutputSettings, RegistrySettings,
    SchemaFile, Severity, Topics, WireSettings,
};
use breakwater::decode::framing::{confluent_header, single_object_header};
use breakwater::decode::{
    encode_avro_datum, schema_fingerprint, AvroSchemas, DecodeError, Framing, RecordDecoder,
};
use breakwater::encode::{Encoder, OutputKind};
use breakwater::engine::alert::AlertStatus;
use breakwater::engine::breaker::{Reason, StateName};
use breakwater::event::{Eval, Outcome, TaskEvent};
use breakwater::output::{AlertEvent, BreakerTransition, Output};
use breakwater::registry::SchemaRegistry;

// ---------------------------------------------------------------- helpers

fn event(id: &str) -> TaskEvent {
    let mut e = TaskEvent::new(id, "research-agent", 1_795_867_200_000, Outcome::Failure);
    e.task_id = format!("task-{id}");
    e.latency_ms = 12_500;
    e.tool_calls = 7;
    e.policy_violations = 1;
    e.hallucination = Some(false);
    e.intent_met = Some(true);
    e.delegation_depth = 2;
    e.evals = vec![Eval {
        category: "factual_retrieval".into(),
        passed: false,
    }];
    e.error_type = Some("tool_timeout".into());
    e.model = Some("gpt-x".into());
    e.tokens_in = Some(1200);
    e.tokens_out = Some(300);
    e.cost_usd = Some(0.012);
    e.attributes.insert("region".into(), "eu".into());
    e
}

fn with_header(header: &[u8], datum: &[u8]) -> Vec<u8> {
    let mut value = header.to_vec();
    value.extend_from_slice(datum);
    value
}

fn confluent(id: u32, e: &TaskEvent) -> Vec<u8> {
    with_header(&confluent_header(id), &encode_avro_datum(e))
}

fn single_object(e: &TaskEvent) -> Vec<u8> {
    let fingerprint = schema_fingerprint(AvroSchemas::task_event());
    with_header(&single_object_header(fingerprint), &encode_avro_datum(e))
}

fn json_of(e: &TaskEvent) -> Vec<u8> {
    serde_json::to_vec(e).unwrap()
}

fn input(format: InputFormat) -> InputSettings {
    InputSettings {
        format,
        default_schema_id: Some(1),
        ..InputSettings::default()
    }
}

fn decoder(format: InputFormat) -> RecordDecoder {
    RecordDecoder::new(&input(format), None).unwrap()
}

/// Decodes `value` with [`RecordDecoder::decode`] and into `slot` (which
/// holds whatever it held before), checks that both give the same, and
/// returns it.
fn decode_both(
    d: &mut RecordDecoder,
    slot: &mut TaskEvent,
    value: &[u8],
) -> Result<TaskEvent, DecodeError> {
    let owned = d.decode(value);
    let into = d.decode_into(value, slot);
    match (&owned, into) {
        (Ok(e), Ok(())) => assert_eq!(e, slot),
        (Err(a), Err(b)) => assert_eq!(a, &b),
        (a, b) => panic!("decode gave {a:?}, decode_into {b:?}"),
    }
    owned
}

fn message(r: Result<TaskEvent, DecodeError>) -> String {
    r.expect_err("expected a decode error").to_string()
}

/// The bundled schema as JSON, edited: another producer's version of it.
fn variant_json(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> String {
    let mut schema: serde_json::Value = serde_json::from_str(AvroSchemas::TASK_EVENT_JSON).unwrap();
    edit(schema["fields"].as_array_mut().unwrap());
    schema.to_string()
}

/// The fields of `e` as an Avro record of the bundled schema.
fn record_fields(e: &TaskEvent) -> Vec<(String, Value)> {
    let reader = GenericDatumReader::builder(AvroSchemas::task_event())
        .build()
        .unwrap();
    match reader.read_value(&mut &encode_avro_datum(e)[..]).unwrap() {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

fn datum(schema: &Schema, fields: Vec<(String, Value)>) -> Vec<u8> {
    GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap()
}

/// A newer producer: one more field, with a default.
fn newer_schema() -> String {
    variant_json(|f| {
        f.push(json!({"name": "region", "type": "string", "default": "eu"}));
    })
}

fn newer_datum(e: &TaskEvent) -> Vec<u8> {
    let schema = Schema::parse_str(&newer_schema()).unwrap();
    let mut fields = record_fields(e);
    fields.push(("region".into(), Value::String("us-east".into())));
    datum(&schema, fields)
}

/// An older producer: without fields that have a default in our schema.
const DROPPED: [&str; 3] = ["attributes", "cost_usd", "evals"];

fn older_schema() -> String {
    variant_json(|f| f.retain(|f| !DROPPED.contains(&f["name"].as_str().unwrap())))
}

fn older_datum(e: &TaskEvent) -> Vec<u8> {
    let schema = Schema::parse_str(&older_schema()).unwrap();
    let mut fields = record_fields(e);
    fields.retain(|(name, _)| !DROPPED.contains(&name.as_str()));
    datum(&schema, fields)
}

/// What an older producer's event reads as: the reader's defaults.
fn as_older(e: &TaskEvent) -> TaskEvent {
    let mut e = e.clone();
    e.attributes.clear();
    e.cost_usd = None;
    e.evals.clear();
    e
}

/// Incompatible: `latency_ms` written as a string.
fn incompatible_schema() -> String {
    variant_json(|f| {
        let latency = f.iter_mut().find(|f| f["name"] == "latency_ms").unwrap();
        latency["type"] = json!("string");
    })
}

fn schema_file(dir: &Path, name: &str, key: &str, text: &str) -> SchemaFile {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    SchemaFile {
        key: key.to_string(),
        path,
        schema: Schema::parse_str(text).unwrap(),
    }
}

// ------------------------------------------------------- a fake registry

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

fn answer(status: u16, body: impl Into<String>) -> Answer {
    Answer {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

/// A tiny HTTP/1.1 server: one request per connection, every request kept.
struct FakeRegistry {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeRegistry {
    fn start(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, handler) = (Arc::clone(&seen), Arc::clone(&handler));
                thread::spawn(move || serve(stream, &seen, handler.as_ref()));
            }
        });
        FakeRegistry { url, requests }
    }

    /// Answers `GET /schemas/ids/{id}` from `schemas`, 404 otherwise.
    fn with_schemas(schemas: &[(u32, String)]) -> Self {
        let schemas: HashMap<String, String> = schemas
            .iter()
            .map(|(id, schema)| (format!("/schemas/ids/{id}"), schema.clone()))
            .collect();
        Self::start(move |r| match schemas.get(&r.path) {
            Some(schema) if r.method == "GET" => {
                answer(200, json!({ "schema": schema }).to_string())
            }
            _ => answer(
                404,
                r#"{"error_code": 40403, "message": "Schema not found"}"#,
            ),
        })
    }

    fn settings(&self) -> RegistrySettings {
        let mut s = RegistrySettings::new(self.url.clone());
        s.timeout = Duration::from_secs(5);
        s
    }

    fn client(&self) -> SchemaRegistry {
        SchemaRegistry::new(&self.settings())
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    seen.lock().unwrap().push(request.clone());
    let a = handler(&request);
    thread::sleep(a.delay);
    let response = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        a.status,
        a.body.len(),
        a.body
    );
    let _ = reader.into_inner().write_all(response.as_bytes());
}

// -------------------------------------------------- framings, round trips

#[test]
fn every_framing_round_trips_in_auto_mode() {
    let mut d = decoder(InputFormat::Auto);
    // Every decode below also goes into this one slot, as the job reuses
    // its slots: long events and short ones in turn.
    let mut slot = event("stale");
    let mut both = |d: &mut RecordDecoder, value: &[u8]| decode_both(d, &mut slot, value);
    let e = event("e-1");
    let minimal = TaskEvent::new("e-2", "a", 0, Outcome::Success);
    assert_eq!(both(&mut d, &confluent(1, &e)).unwrap(), e);
    assert_eq!(both(&mut d, &confluent(1, &minimal)).unwrap(), minimal);
    assert_eq!(both(&mut d, &single_object(&e)).unwrap(), e);
    assert_eq!(both(&mut d, &json_of(&e)).unwrap(), e);
    assert_eq!(both(&mut d, &json_of(&minimal)).unwrap(), minimal);
    let pretty = serde_json::to_vec_pretty(&e).unwrap();
    assert_eq!(
        both(&mut d, &[b"\n  ".as_slice(), &pretty].concat()).unwrap(),
        e
    );
    assert_eq!(both(&mut d, &single_object(&minimal)).unwrap(), minimal);
    assert_eq!(d.format(), InputFormat::Auto);
    // Many records, one writer schema: one decoder.
    for i in 0..100 {
        let e = event(&format!("e-{i}"));
        assert_eq!(both(&mut d, &confluent(1, &e)).unwrap(), e);
    }
    assert_eq!(d.schemas().len(), 1);
}

#[test]
fn forced_formats_read_their_own_framing_and_refuse_the_others() {
    let e = event("e-1");
    let (c, s, j) = (confluent(1, &e), single_object(&e), json_of(&e));
    let mut forced = decoder(InputFormat::Confluent);
    assert_eq!(forced.decode(&c).unwrap(), e);
    assert_eq!(
        message(forced.decode(&j)),
        "record starts with byte 0x7b, not the Confluent magic byte 0x00 (input.format is \
         confluent; it looks like JSON)"
    );
    assert!(message(forced.decode(&s)).contains("it looks like single-object Avro"));

    let mut forced = decoder(InputFormat::SingleObject);
    assert_eq!(forced.decode(&s).unwrap(), e);
    assert_eq!(
        message(forced.decode(&c)),
        "record starts with byte 0x00, not the single-object marker 0xC3 0x01 (input.format \
         is single-object; it looks like Confluent Avro)"
    );

    let mut forced = decoder(InputFormat::Json);
    assert_eq!(forced.decode(&j).unwrap(), e);
    assert!(message(forced.decode(&c)).starts_with("invalid JSON at line 1 column 1"));
}

#[test]
fn every_failure_says_what_is_wrong() {
    let mut d = decoder(InputFormat::Auto);
    let e = event("e-1");
    let bytes = encode_avro_datum(&e);
    // event_id "e-1" (4 bytes), agent_id "research-agent" (15), task_id
    // "task-e-1" (9), timestamp (6), outcome (1), latency_ms (3) = 38 bytes.
    let truncated = with_header(&confluent_header(1), &bytes[..38]);
    let mut padded = confluent(1, &e);
    padded.push(0);
    let mut negative = event("e-1");
    negative.latency_ms = 0;
    let mut negative = confluent(1, &negative);
    // latency_ms follows 35 bytes (and the 5-byte header): 0 → -5.
    assert_eq!(negative[5 + 35], 0);
    negative[5 + 35] = 9;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"\x7fELF".to_vec(),
            "framing",
            "record starts with byte 0x7f: not Confluent Avro (0x00), single-object Avro \
             (0xC3 0x01) or JSON",
        ),
        (
            Vec::new(),
            "framing",
            "empty record value: expected Confluent Avro (0x00), single-object Avro (0xC3 \
             0x01) or JSON",
        ),
        (
            vec![0, 0, 0],
            "framing",
            "Confluent Avro record of 3 bytes: shorter than its 5-byte header (magic byte \
             0x00, 4-byte schema id)",
        ),
        (
            truncated,
            "avro",
            "truncated Avro datum after field `latency_ms`",
        ),
        (
            confluent_header(1).to_vec(),
            "avro",
            "truncated Avro datum: it is empty",
        ),
        (
            padded,
            "avro",
            "invalid Avro: 1 bytes left over after the record: wrong writer schema?",
        ),
        (
            negative,
            "invalid",
            "field `latency_ms` has value -5: allowed is an integer >= 0",
        ),
        (
            confluent(42, &e),
            "unknown_schema",
            "schema id 42 is not registered: no schema registry is configured, and neither \
             input.schema_ids nor input.default_schema_id names it (known ids: 1)",
        ),
        (
            with_header(&single_object_header(0xdead_beef), &bytes),
            "unknown_schema",
            "single-object Avro with writer schema fingerprint efbeadde00000000 (as written): \
             no known schema has it (1 known: the bundled task_event.avsc, input.schema_ids, \
             input.schema_files and schemas learned from the registry)",
        ),
        (
            br#"{"event_id": "e-1", "timestamp": 0, "outcome": "SUCCESS", "latency_ms": 1}"#
                .to_vec(),
            "invalid",
            "missing required field `agent_id`",
        ),
        (
            br#"{"event_id": "e-1", "agent_id": 7}"#.to_vec(),
            "json",
            "JSON does not match the task event schema at line 1 column 33: invalid type: \
             integer `7`, expected a string",
        ),
        (
            br#"{"event_id": "e-1", "#.to_vec(),
            "json",
            "truncated JSON at line 1 column 20: EOF while parsing a value",
        ),
    ];
    let mut slot = event("stale");
    for (bytes, kind, wanted) in cases {
        let err = decode_both(&mut d, &mut slot, &bytes).expect_err(wanted);
        assert_eq!(err.to_string(), wanted, "{bytes:?}");
        assert_eq!(err.kind(), kind, "{wanted}");
        assert!(!err.is_transient(), "{wanted}");
    }
}

// ------------------------------------------------------- schema evolution

#[test]
fn compatible_writer_schemas_from_files_decode_by_id_and_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let newer = schema_file(
        dir.path(),
        "newer.avsc",
        "input.schema_ids.7",
        &newer_schema(),
    );
    let older = schema_file(
        dir.path(),
        "older.avsc",
        "input.schema_files[0]",
        &older_schema(),
    );
    let newer_fp = schema_fingerprint(&newer.schema);
    let older_fp = schema_fingerprint(&older.schema);
    let settings = InputSettings {
        format: InputFormat::Auto,
        default_schema_id: Some(1),
        schema_ids: [(7, newer)].into(),
        schema_files: vec![older],
    };
    let mut d = RecordDecoder::new(&settings, None).unwrap();
    assert_eq!(d.schemas().len(), 3);
    let mut slot = TaskEvent::new("stale", "a", 0, Outcome::Success);
    let mut both = |d: &mut RecordDecoder, value: &[u8]| decode_both(d, &mut slot, value);
    let e = event("e-1");
    // A newer producer's extra field is skipped.
    let newer_bytes = newer_datum(&e);
    assert_eq!(
        both(&mut d, &with_header(&confluent_header(7), &newer_bytes)).unwrap(),
        e
    );
    assert_eq!(
        both(
            &mut d,
            &with_header(&single_object_header(newer_fp), &newer_bytes)
        )
        .unwrap(),
        e
    );
    // An older producer's missing fields take the reader's defaults.
    let older_bytes = older_datum(&e);
    assert_eq!(
        both(
            &mut d,
            &with_header(&single_object_header(older_fp), &older_bytes)
        )
        .unwrap(),
        as_older(&e)
    );
    // Schema evolution keeps naming the field where a datum breaks.
    let cut = with_header(&confluent_header(7), &newer_bytes[..newer_bytes.len() - 3]);
    assert_eq!(
        message(both(&mut d, &cut)),
        "truncated Avro datum after field `attributes`"
    );
}

#[test]
fn an_incompatible_writer_schema_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = schema_file(
        dir.path(),
        "bad.avsc",
        "kafka.wire.input.schema_files[0]",
        &incompatible_schema(),
    );
    let settings = InputSettings {
        schema_files: vec![bad],
        ..InputSettings::default()
    };
    let err = RecordDecoder::new(&settings, None).err().unwrap();
    assert_eq!(err.kind(), "incompatible_schema");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "writer schema kafka.wire.input.schema_files[0] ({}) cannot be read as a task \
             event: ",
            dir.path().join("bad.avsc").display()
        )) && text.contains("latency_ms"),
        "{text}"
    );
}

#[test]
fn a_schema_differing_only_in_docs_and_defaults_shares_the_bundled_decoder() {
    let doc_only = variant_json(|f| {
        for field in f.iter_mut() {
            field["doc"] = json!("reworded");
        }
    });
    let registry = FakeRegistry::with_schemas(&[(5, doc_only)]);
    let mut d = RecordDecoder::new(&InputSettings::default(), Some(registry.client())).unwrap();
    let e = event("e-1");
    assert_eq!(d.decode(&confluent(5, &e)).unwrap(), e);
    assert_eq!(d.schemas().len(), 1, "same canonical form, same decoder");
}

// ------------------------------------------------------------- registry

#[test]
fn a_registry_schema_is_fetched_once_then_cached() {
    let registry = FakeRegistry::with_schemas(&[(7, newer_schema()), (8, older_schema())]);
    let mut d = RecordDecoder::new(&InputSettings::default(), Some(registry.client())).unwrap();
    let e = event("e-1");
    let newer = with_header(&confluent_header(7), &newer_datum(&e));
    let older = with_header(&confluent_header(8), &older_datum(&e));
    for _ in 0..50 {
        assert_eq!(d.decode(&newer).unwrap(), e);
        assert_eq!(d.decode(&older).unwrap(), as_older(&e));
    }
    let requests = registry.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/schemas/ids/7", "/schemas/ids/8"]);
    assert!(requests[0].headers["accept"].contains("application/vnd.schemaregistry.v1+json"));
    assert!(!requests[0].headers.contains_key("authorization"));
    // Learned schemas are known by fingerprint too.
    let fp = schema_fingerprint(&Schema::parse_str(&newer_schema()).unwrap());
    let single = with_header(&single_object_header(fp), &newer_datum(&e));
    assert_eq!(d.decode(&single).unwrap(), e);
    assert_eq!(registry.count(), 2);
}

#[test]
fn an_id_the_registry_lacks_is_unknown_and_remembered_for_the_ttl() {
    let registry = FakeRegistry::with_schemas(&[]);
    let mut settings = registry.settings();
    settings.negative_cache_ttl = Duration::from_millis(300);
    let mut d = RecordDecoder::new(
        &InputSettings::default(),
        Some(SchemaRegistry::new(&settings)),
    )
    .unwrap();
    let record = confluent(42, &event("e-1"));
    for _ in 0..20 {
        let err = d.decode(&record).unwrap_err();
        assert_eq!(
            err.to_string(),
            "schema id 42 is not registered: registry answered 404 (error 40403: Schema not found)"
        );
        assert_eq!(err.kind(), "unknown_schema");
        assert!(!err.is_transient());
    }
    assert_eq!(registry.count(), 1);
    thread::sleep(Duration::from_millis(350));
    d.decode(&record).unwrap_err();
    assert_eq!(registry.count(), 2, "asked again after the TTL");
}

#[test]
fn a_flood_of_garbage_ids_asks_once_per_id_and_the_cache_stays_bounded() {
    let registry = FakeRegistry::with_schemas(&[]);
    let mut settings = registry.settings();
    settings.negative_cache_size = 3;
    let mut d = RecordDecoder::new(
        &InputSettings::default(),
        Some(SchemaRegistry::new(&settings)),
    )
    .unwrap();
    let e = event("e-1");
    for round in 0..3 {
        for id in 100..110 {
            d.decode(&confluent(id, &e)).unwrap_err();
        }
        // Ten ids, three remembered: each round asks about all ten again...
        assert_eq!(registry.count(), 10 * (round + 1));
    }
    // ...but a repeated id among the last three is not asked about.
    for _ in 0..10 {
        d.decode(&confluent(109, &e)).unwrap_err();
    }
    assert_eq!(registry.count(), 30);
}

#[test]
fn an_incompatible_or_unusable_registry_schema_is_refused_and_remembered() {
    let registry = FakeRegistry::start(|r| match r.path.as_str() {
        "/schemas/ids/3" => answer(200, json!({ "schema": incompatible_schema() }).to_string()),
        "/schemas/ids/4" => answer(
            200,
            json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}).to_string(),
        ),
        "/schemas/ids/5" => answer(200, json!({"schema": "{\"type\": \"recrod\"}"}).to_string()),
        _ => answer(404, ""),
    });
    let mut d = RecordDecoder::new(&InputSettings::default(), Some(registry.client())).unwrap();
    let e = event("e-1");
    let err = d.decode(&confluent(3, &e)).unwrap_err();
    assert_eq!(err.kind(), "incompatible_schema");
    assert!(
        err.to_string()
            .starts_with("writer schema id 3 cannot be read as a task event: ")
            && err.to_string().contains("latency_ms"),
        "{err}"
    );
    assert_eq!(
        message(d.decode(&confluent(4, &e))),
        "writer schema id 4 cannot be read as a task event: it is a PROTOBUF schema, not Avro"
    );
    assert!(message(d.decode(&confluent(5, &e))).starts_with(
        "writer schema id 5 cannot be read as a task event: the registry's schema does not parse"
    ));
    for id in [3, 4, 5] {
        d.decode(&confluent(id, &e)).unwrap_err();
    }
    assert_eq!(registry.count(), 3, "failures are remembered");
}

#[test]
fn a_registry_timeout_is_transient_and_backs_off() {
    let registry = FakeRegistry::start(|_| Answer {
        delay: Duration::from_secs(3),
        ..answer(
            200,
            json!({ "schema": AvroSchemas::TASK_EVENT_JSON }).to_string(),
        )
    });
    let mut settings = registry.settings();
    settings.timeout = Duration::from_millis(300);
    let mut d = RecordDecoder::new(
        &InputSettings::default(),
        Some(SchemaRegistry::new(&settings)),
    )
    .unwrap();
    let record = confluent(9, &event("e-1"));
    let started = Instant::now();
    let err = d.decode(&record).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient());
    assert_eq!(err.kind(), "registry");
    assert_eq!(
        err.to_string(),
        format!(
            "schema registry: GET {}/schemas/ids/9: no answer within 300ms (registry.timeout)",
            registry.url
        )
    );
    // While backing off, records of unknown ids fail at once.
    let started = Instant::now();
    let err = d.decode(&confluent(10, &event("e-2"))).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(err.is_transient());
    assert!(
        err.to_string().ends_with("(not asking again for 1s)"),
        "{err}"
    );
    assert_eq!(registry.count(), 1);
    thread::sleep(Duration::from_millis(1100));
    d.decode(&record).unwrap_err();
    assert_eq!(registry.count(), 2, "asked again after the back-off");
}

#[test]
fn an_unreachable_or_failing_registry_is_transient() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut d = RecordDecoder::new(
        &InputSettings::default(),
        Some(SchemaRegistry::new(&RegistrySettings::new(url.clone()))),
    )
    .unwrap();
    let err = d.decode(&confluent(1, &event("e-1"))).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("schema registry: GET {url}/schemas/ids/1: ")),
        "{err}"
    );

    for (status, body, wanted) in [
        (
            503,
            "upstream down",
            "registry answered 503 (upstream down)",
        ),
        (
            401,
            r#"{"error_code": 40101, "message": "Unauthorized"}"#,
            "registry answered 401 (error 40101: Unauthorized)",
        ),
    ] {
        let registry = FakeRegistry::start(move |_| answer(status, body));
        let mut d = RecordDecoder::new(&InputSettings::default(), Some(registry.client())).unwrap();
        let err = d.decode(&confluent(1, &event("e-1"))).unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "schema registry: GET {}/schemas/ids/1: {wanted}",
                registry.url
            )
        );
    }
}

#[test]
fn basic_auth_is_sent() {
    let registry = FakeRegistry::with_schemas(&[(1, AvroSchemas::TASK_EVENT_JSON.to_string())]);
    let mut settings = registry.settings();
    settings.basic_auth = Some("breakwater:s3cr:et".into());
    let mut d = RecordDecoder::new(
        &InputSettings::default(),
        Some(SchemaRegistry::new(&settings)),
    )
    .unwrap();
    let e = event("e-1");
    assert_eq!(d.decode(&confluent(1, &e)).unwrap(), e);
    let requests = registry.requests();
    // base64("breakwater:s3cr:et")
    assert_eq!(
        requests[0].headers["authorization"],
        "Basic YnJlYWt3YXRlcjpzM2NyOmV0"
    );
}

// ------------------------------------------------------------- outputs

fn transition() -> Output {
    Output::BreakerTransition(BreakerTransition {
        agent_id: "research-agent".into(),
        seq: 5,
        state: StateName::Open,
        previous_state: StateName::Closed,
        reason: Reason::FailureRate,
        failure_rate: Some(0.25),
        avg_latency_ms: Some(1200.5),
        window_tasks: 40,
        window_failed: 10,
        retry_at: Some(1_796_085_967_293),
        cooldown_ms: Some(300_000),
        event_time: 1_796_085_667_293,
    })
}

fn alert() -> Output {
    Output::Alert(AlertEvent {
        alert_id: "research-agent/task_success_rate/1".into(),
        agent_id: "research-agent".into(),
        seq: 6,
        rule: "task_success_rate".into(),
        status: AlertStatus::Firing,
        severity: Severity::Critical,
        value: None,
        threshold: 0.9,
        window: "24h".into(),
        started_at: 1_000,
        event_time: 2_000,
    })
}

/// Decodes an Avro datum of `kind` back into its Rust type via apache-avro.
fn read_output(kind: OutputKind, datum: &[u8]) -> Output {
    let reader = GenericDatumReader::builder(kind.schema()).build().unwrap();
    let mut rest = datum;
    let value = reader.read_value(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes left after {kind:?}");
    match kind {
        OutputKind::BreakerTransition => {
            Output::BreakerTransition(apache_avro::from_value(&value).unwrap())
        }
        OutputKind::Alert => Output::Alert(apache_avro::from_value(&value).unwrap()),
        OutputKind::BudgetSnapshot => {
            Output::BudgetSnapshot(Box::new(apache_avro::from_value(&value).unwrap()))
        }
    }
}

#[test]
fn outputs_encode_in_every_format_with_their_headers() {
    let topics = Topics::default();
    let ids = OutputSchemaIds {
        breaker_transition: Some(11),
        alert: Some(12),
        budget_snapshot: Some(13),
    };
    for format in [
        OutputFormat::Json,
        OutputFormat::Confluent,
        OutputFormat::SingleObject,
    ] {
        let settings = OutputSettings {
            format,
            schema_ids: ids,
        };
        let encoder = Encoder::new(&settings, None, &topics).unwrap();
        assert_eq!(encoder.format(), format);
        for (output, id) in [(transition(), 11), (alert(), 12)] {
            let kind = OutputKind::of(&output);
            let e = encoder.encode(&output).unwrap();
            assert_eq!(e.kind, kind);
            assert_eq!(e.schema_name, kind.schema_name());
            let back = match format {
                OutputFormat::Json => {
                    assert_eq!(e.content_type, "application/json");
                    let json: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
                    let tagged = serde_json::to_value(&output).unwrap();
                    let mut expected = tagged.as_object().unwrap().clone();
                    expected.remove("type");
                    assert_eq!(json, serde_json::Value::Object(expected));
                    continue;
                }
                OutputFormat::Confluent => {
                    assert_eq!(e.content_type, "application/vnd.confluent.avro");
                    let Framing::Confluent { schema_id, datum } =
                        Framing::detect(&e.payload).unwrap()
                    else {
                        panic!("{format}: not Confluent-framed");
                    };
                    assert_eq!(schema_id, id);
                    read_output(kind, datum)
                }
                OutputFormat::SingleObject => {
                    assert_eq!(e.content_type, "application/vnd.apache.avro.single-object");
                    let Framing::SingleObject { fingerprint, datum } =
                        Framing::detect(&e.payload).unwrap()
                    else {
                        panic!("{format}: not single-object");
                    };
                    assert_eq!(fingerprint, schema_fingerprint(kind.schema()));
                    read_output(kind, datum)
                }
            };
            assert_eq!(back, output, "{format}");
        }
    }
    assert_eq!(
        OutputKind::of(&alert()).schema_name(),
        "io.breakwater.AlertEvent"
    );
    assert_eq!(
        OutputKind::of(&transition()).schema_name(),
        "io.breakwater.BreakerTransition"
    );
}

#[test]
fn output_schemas_are_registered_under_topic_value_subjects() {
    let registry = FakeRegistry::start(|r| {
        let id = match r.path.as_str() {
            "/subjects/agent.breaker.state-value/versions" => 21,
            "/subjects/agent.alerts-value/versions" => 22,
            "/subjects/agent.budget.snapshots-value/versions" => 23,
            _ => return answer(404, ""),
        };
        answer(200, json!({ "id": id }).to_string())
    });
    let mut settings = registry.settings();
    settings.basic_auth = Some("u:p".into());
    let client = SchemaRegistry::new(&settings);
    let output = OutputSettings {
        format: OutputFormat::Confluent,
        // A configured id is used as is, not registered.
        schema_ids: OutputSchemaIds {
            budget_snapshot: Some(99),
            ..OutputSchemaIds::default()
        },
    };
    let encoder = Encoder::new(&output, Some(&client), &Topics::default()).unwrap();
    assert_eq!(encoder.schema_id(OutputKind::BreakerTransition), Some(21));
    assert_eq!(encoder.schema_id(OutputKind::Alert), Some(22));
    assert_eq!(encoder.schema_id(OutputKind::BudgetSnapshot), Some(99));
    let requests = registry.requests();
    assert_eq!(requests.len(), 2);
    for (r, kind) in requests
        .iter()
        .zip([OutputKind::BreakerTransition, OutputKind::Alert])
    {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.headers["content-type"],
            "application/vnd.schemaregistry.v1+json"
        );
        assert_eq!(r.headers["authorization"], "Basic dTpw");
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body, json!({ "schema": kind.schema_json() }));
    }
    let e = encoder.encode(&alert()).unwrap();
    assert_eq!(&e.payload[..5], &[0, 0, 0, 0, 22]);
}

#[test]
fn a_refused_registration_is_a_clear_startup_error() {
    let registry = FakeRegistry::start(|_| {
        answer(
            409,
            r#"{"error_code": 409, "message": "Schema being registered is incompatible with an earlier schema"}"#,
        )
    });
    let output = OutputSettings {
        format: OutputFormat::Confluent,
        schema_ids: OutputSchemaIds::default(),
    };
    let err = Encoder::new(&output, Some(&registry.client()), &Topics::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "registering io.breakwater.BreakerTransition under subject \
             agent.breaker.state-value: POST {}/subjects/agent.breaker.state-value/versions: \
             registry answered 409 (error 409: Schema being registered is incompatible with \
             an earlier schema)",
            registry.url
        )
    );
}

#[test]
fn the_wire_section_builds_the_decoder_and_the_encoder() {
    let registry = FakeRegistry::start(|r| match r.path.as_str() {
        "/schemas/ids/7" => answer(200, json!({ "schema": newer_schema() }).to_string()),
        p if p.starts_with("/subjects/") => answer(200, r#"{"id": 31}"#),
        _ => answer(404, ""),
    });
    let yaml: serde_yaml::Value = serde_yaml::from_str(&format!(
        "{{input: {{format: confluent}}, output: {{format: confluent}},
           registry: {{url: '{}/', basic_auth: 'a:b', timeout: 2s}}}}",
        registry.url
    ))
    .unwrap();
    let wire = WireSettings::from_section(Some(&yaml), "kafka.wire").unwrap();
    let mut d = RecordDecoder::from_settings(&wire).unwrap();
    let e = event("e-1");
    assert_eq!(
        d.decode(&with_header(&confluent_header(7), &newer_datum(&e)))
            .unwrap(),
        e
    );
    let encoder = Encoder::from_settings(&wire, &Topics::default()).unwrap();
    assert_eq!(encoder.schema_id(OutputKind::Alert), Some(31));
    assert_eq!(registry.count(), 4);
}

// ------------------------------------------------------ interoperability

/// Writes task events the way Python producers do: fastavro's
/// schemaless_writer, Confluent framing by hand, single-object framing with
/// fastavro's CRC-64-AVRO fingerprint of the Parsing Canonical Form. Also
/// reads our single-object output with fastavro.
const PYTHON: &str = r#"
import io, json, struct, sys
import fastavro

out, schemas_dir, alert_path = sys.argv[1], sys.argv[2], sys.argv[3]

def load(name):
    with open(f"{schemas_dir}/{name}") as f:
        return json.load(f)

def fingerprint(schema):
    try:
        from fastavro.schema import fingerprint as fp, to_parsing_canonical_form
        return bytes.fromhex(fp(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    except ImportError:
        from fastavro.schema import to_parsing_canonical_form
        empty = 0xc15d213aa4d7a795
        table = []
        for i in range(256):
            f = i
            for _ in range(8):
                f = (f >> 1) ^ (empty & -(f & 1))
            table.append(f & 0xffffffffffffffff)
        f = empty
        for b in to_parsing_canonical_form(schema).encode():
            f = (f >> 8) ^ table[(f ^ b) & 0xff]
        return f.to_bytes(8, "little")

def datum(schema, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()

event = {
    "event_id": "py-1", "agent_id": "support-agent", "task_id": "t-1",
    "timestamp": 1795867200000, "outcome": "TIMEOUT", "latency_ms": 30000,
    "tool_calls": 4, "policy_violations": 1, "hallucination": None, "intent_met": False,
    "delegation_depth": 1, "evals": [{"category": "tone", "passed": True}],
    "error_type": "tool_timeout", "model": "gpt-x", "tokens_in": 10, "tokens_out": None,
    "cost_usd": 0.5, "attributes": {"région": "eu"},
}
ours = load("task_event.avsc")
with open(f"{out}/confluent.bin", "wb") as f:
    f.write(b"\x00" + struct.pack(">I", 7) + datum(ours, event))
with open(f"{out}/single_object.bin", "wb") as f:
    f.write(b"\xc3\x01" + fingerprint(ours) + datum(ours, event))

newer = json.loads(json.dumps(ours))
newer["fields"].append({"name": "tenant", "type": "string", "default": "none"})
newer["fields"] = [f for f in newer["fields"] if f["name"] != "cost_usd"]
with open(f"{out}/newer.avsc", "w") as f:
    json.dump(newer, f)
newer_event = dict(event, tenant="acme")
del newer_event["cost_usd"]
with open(f"{out}/newer_single_object.bin", "wb") as f:
    f.write(b"\xc3\x01" + fingerprint(newer) + datum(newer, newer_event))

alert_schema = load("alert.avsc")
with open(alert_path, "rb") as f:
    payload = f.read()
assert payload[:2] == b"\xc3\x01", payload[:2]
assert payload[2:10] == fingerprint(alert_schema), (payload[2:10].hex(), fingerprint(alert_schema).hex())
alert = fastavro.schemaless_reader(io.BytesIO(payload[10:]), fastavro.parse_schema(alert_schema))
print(json.dumps({"alert_id": alert["alert_id"], "seq": alert["seq"], "status": alert["status"]}))
"#;

#[test]
fn records_written_by_python_fastavro_decode_and_ours_read_in_python() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let schemas_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");

    let encoder = Encoder::new(
        &OutputSettings {
            format: OutputFormat::SingleObject,
            ..OutputSettings::default()
        },
        None,
        &Topics::default(),
    )
    .unwrap();
    let alert_path = dir.path().join("alert.bin");
    std::fs::write(&alert_path, encoder.encode(&alert()).unwrap().payload).unwrap();

    let run = Command::new(&python)
        .arg("-c")
        .arg(PYTHON)
        .arg(dir.path())
        .arg(&schemas_dir)
        .arg(&alert_path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        run.status.success(),
        "{} failed:\n{}",
        python.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let read_back: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        read_back,
        json!({"alert_id": "research-agent/task_success_rate/1", "seq": 6, "status": "FIRING"})
    );

    let mut expected = TaskEvent::new("py-1", "support-agent", 1_795_867_200_000, Outcome::Timeout);
    expected.task_id = "t-1".into();
    expected.latency_ms = 30_000;
    expected.tool_calls = 4;
    expected.policy_violations = 1;
    expected.intent_met = Some(false);
    expected.delegation_depth = 1;
    expected.evals = vec![Eval {
        category: "tone".into(),
        passed: true,
    }];
    expected.error_type = Some("tool_timeout".into());
    expected.model = Some("gpt-x".into());
    expected.tokens_in = Some(10);
    expected.cost_usd = Some(0.5);
    expected.attributes.insert("région".into(), "eu".into());

    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let newer_text = std::fs::read_to_string(dir.path().join("newer.avsc")).unwrap();
    let newer = schema_file(
        dir.path(),
        "newer.avsc",
        "input.schema_files[0]",
        &newer_text,
    );
    let settings = InputSettings {
        format: InputFormat::Auto,
        default_schema_id: None,
        schema_ids: [(
            7,
            SchemaFile {
                key: "input.schema_ids.7".into(),
                path: schemas_dir.join("task_event.avsc"),
                schema: AvroSchemas::task_event().clone(),
            },
        )]
        .into(),
        schema_files: vec![newer],
    };
    let mut d = RecordDecoder::new(&settings, None).unwrap();
    assert_eq!(d.decode(&read("confluent.bin")).unwrap(), expected);
    assert_eq!(d.decode(&read("single_object.bin")).unwrap(), expected);
    let mut without_cost = expected.clone();
    without_cost.cost_usd = None;
    assert_eq!(
        d.decode(&read("newer_single_object.bin")).unwrap(),
        without_cost
    );
}

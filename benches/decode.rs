//! Decoding one input record value into a `TaskEvent`, through the path the
//! Kafka job uses: `kafka::codec::Codec::decode_into` (framing detection,
//! writer schema lookup by id, datum reader, defaults and validation, into
//! an event slot reused from turn to turn), beside the owned
//! `Codec::decode`.
//!
//! Cases, each on 1 024 distinct records decoded round-robin (ids, agents,
//! latencies and outcomes vary, so branch predictors see a realistic mix):
//!
//! - `avro_confluent_into`: **the job's path**. Confluent framing (`0x00`,
//!   schema id 1) + Avro datum of the bundled schema,
//!   `kafka.wire.input.format: confluent`, read by the hand-written datum
//!   reader (`decode/datum.rs`) in place into one reused slot.
//! - `avro_confluent_into_batch`: the same into 10 000 slots in turn (a
//!   full batch at the default `max_batch`), as the intake files them:
//!   each slot is cold in cache when it is refilled.
//! - `avro_confluent`: the same records through the owned `Codec::decode`
//!   (a new `TaskEvent` per record, dropped after).
//! - `avro_single_object(_into)`: single-object framing (`0xC3 0x01` +
//!   fingerprint).
//! - `json_auto(_into)`: the JSON text of the same events, `format: auto`
//!   (the default: the first byte tells the framing).
//! - `apache_avro_datum`: the same datum read by `apache-avro` 0.22
//!   (`GenericDatumReader::read_value` into a `Value`, then `event_from_avro_value`), the
//!   reader the job would use without the hand-written one. Baseline only.
//! - `apache_avro_value_only`: `read_value` alone (no conversion).
//! - `owned_event_clone_floor`: `TaskEvent::clone` of the decoded event, the
//!   allocations (and frees) any decoder into a new `TaskEvent` pays.
//!
//! Two event shapes: `typical` (UUID ids, one eval, model, tokens, cost,
//! ~170 B of Avro) and `minimal` (required fields only).
//!
//! Run: `cargo bench --bench decode`.

use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use breakwater::decode::{empty_event, encode_avro_datum, event_from_avro_value, AvroSchemas};
use breakwater::event::TaskEvent;
use breakwater::kafka::codec::Codec;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "decode_records.rs"]
mod records;
use records::{codec, confluent, events, RECORDS};

/// Slots of a full batch at the default `kafka.max_batch`.
const BATCH: usize = 10_000;

fn bench(c: &mut Criterion) {
    for (shape, typical) in [("typical", true), ("minimal", false)] {
        let events = events(typical);
        let datums: Vec<Vec<u8>> = events.iter().map(encode_avro_datum).collect();
        let confluent: Vec<Vec<u8>> = datums.iter().map(|d| confluent(d)).collect();
        let single: Vec<Vec<u8>> = datums
            .iter()
            .map(|d| {
                let mut v = vec![0xC3, 0x01];
                v.extend_from_slice(&AvroSchemas::task_event_fingerprint().to_le_bytes());
                v.extend_from_slice(d);
                v
            })
            .collect();
        let json: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() / v.len();
        println!(
            "decode/{shape}: avg bytes: confluent avro {}, single-object {}, json {}",
            avg(&confluent),
            avg(&single),
            avg(&json)
        );

        // Sanity: every path gives back the events.
        let mut avro = codec("confluent");
        let mut auto = codec("auto");
        let mut slot = empty_event();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(&avro.decode(&confluent[i]).unwrap(), e);
            avro.decode_into(&confluent[i], &mut slot).unwrap();
            assert_eq!(&slot, e);
            assert_eq!(&auto.decode(&single[i]).unwrap(), e);
            auto.decode_into(&single[i], &mut slot).unwrap();
            assert_eq!(&slot, e);
            let j = auto.decode(&json[i]).unwrap();
            assert_eq!(j.event_id, e.event_id);
            assert_eq!(j.latency_ms, e.latency_ms);
            auto.decode_into(&json[i], &mut slot).unwrap();
            assert_eq!(slot, j);
        }

        let mut g = c.benchmark_group(format!("decode/{shape}"));
        g.throughput(Throughput::Elements(1));
        // The job's path: into a slot that held other records before.
        let mut run_into = |name: &str, records: &[Vec<u8>], codec: &mut Codec| {
            let mut i = 0;
            let mut slot = empty_event();
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = (i + 1) % RECORDS;
                    codec
                        .decode_into(black_box(&records[i]), black_box(&mut slot))
                        .unwrap();
                })
            });
        };
        run_into("avro_confluent_into", &confluent, &mut avro);
        run_into("avro_single_object_into", &single, &mut auto);
        run_into("json_auto_into", &json, &mut auto);
        let mut slots: Vec<TaskEvent> = (0..BATCH).map(|_| empty_event()).collect();
        let (mut i, mut j) = (0, 0);
        g.bench_function("avro_confluent_into_batch", |b| {
            b.iter(|| {
                i = (i + 1) % RECORDS;
                j = (j + 1) % BATCH;
                avro.decode_into(black_box(&confluent[i]), &mut slots[j])
                    .unwrap();
            })
        });
        let mut run = |name: &str, records: &[Vec<u8>], codec: &mut Codec| {
            let mut i = 0;
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = (i + 1) % RECORDS;
                    black_box(codec.decode(black_box(&records[i])).unwrap())
                })
            });
        };
        run("avro_confluent", &confluent, &mut avro);
        run("avro_single_object", &single, &mut auto);
        run("json_auto", &json, &mut auto);
        // The reader built once (schema names resolved once), as a job would.
        let reader = GenericDatumReader::builder(AvroSchemas::task_event())
            .build()
            .unwrap();
        let mut i = 0;
        g.bench_function("apache_avro_datum", |b| {
            b.iter(|| {
                i = (i + 1) % RECORDS;
                let mut bytes = black_box(&datums[i][..]);
                let value = reader.read_value(&mut bytes).unwrap();
                black_box(event_from_avro_value(value).unwrap())
            })
        });
        g.bench_function("apache_avro_value_only", |b| {
            b.iter(|| {
                i = (i + 1) % RECORDS;
                let mut bytes = black_box(&datums[i][..]);
                black_box(reader.read_value(&mut bytes).unwrap())
            })
        });
        // The floor of any decoder that returns an owned `TaskEvent`: its
        // allocations and frees alone (a clone: same strings, same `Vec`).
        g.bench_function("owned_event_clone_floor", |b| {
            b.iter(|| {
                i = (i + 1) % RECORDS;
                black_box(black_box(&events[i]).clone())
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

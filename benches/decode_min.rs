//! The job's Avro decode path (`Codec::decode_into`, Confluent framing,
//! one reused slot) timed by the **minimum** per-event time over many
//! rounds of the 1 024 records of `decode.rs`: on a machine shared with
//! other work, a round that was not descheduled or slowed by the other
//! vCPU is the robust figure, where criterion's medians swing ±50 %.
//!
//! Run: `cargo bench --bench decode_min` (4 000 rounds per shape), or
//! `cargo bench --bench decode_min -- 400` for another number of rounds.
//! Prints the minimum, the 10th percentile and the median per event.

use std::hint::black_box;
use std::time::Instant;

use breakwater::decode::{empty_event, encode_avro_datum};

#[path = "decode_records.rs"]
mod records;
use records::{codec, confluent, events, RECORDS};

fn main() {
    // `cargo bench` adds `--bench`; the first number is the rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(4000)
        .max(1);
    for (shape, typical) in [("typical", true), ("minimal", false)] {
        let events = events(typical);
        let records: Vec<Vec<u8>> = events
            .iter()
            .map(|e| confluent(&encode_avro_datum(e)))
            .collect();
        let mut codec = codec("confluent");
        let mut slot = empty_event();
        for (r, e) in records.iter().zip(&events) {
            codec.decode_into(r, &mut slot).unwrap();
            assert_eq!(&slot, e);
        }
        let mut times: Vec<f64> = (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for r in &records {
                    codec
                        .decode_into(black_box(r), black_box(&mut slot))
                        .unwrap();
                }
                t.elapsed().as_nanos() as f64 / RECORDS as f64
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "decode_min/{shape}/avro_confluent_into: min {:.1} ns, p10 {:.1} ns, median {:.1} ns \
             per event ({rounds} rounds of {RECORDS})",
            times[0],
            times[rounds / 10],
            times[rounds / 2]
        );
    }
}

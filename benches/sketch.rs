//! Micro-benchmark of `LatencySketch`, the latency DDSketch of the engine.
//!
//! Latencies are log-normal (median 2.5 s, σ 0.9, clamped to 100 ms–60 s, as
//! in `benches/engine.rs`), from a fixed seed. The cases mirror what the
//! engine does with a sliding window of 12 sketch buckets (24 h → 2 h):
//!
//! - `add_pair`: per event, `bucket.add(ms)` and `total.add(ms)`; every 42
//!   events (≈ 500 per agent per day / 12 buckets) the oldest bucket expires:
//!   it is subtracted from the total and cleared for reuse (amortised here);
//! - `refill_bucket`: `clear()` then 42 adds on the same sketch (a window
//!   slot reset for reuse), per add;
//! - `fill_fresh_bucket`: 42 adds into a new, empty sketch (a bucket built
//!   from nothing, then dropped), per add;
//! - `subtract_2h_bucket`: a 42-value bucket subtracted from a total of 12
//!   such buckets;
//! - `clear_2h_bucket`: resetting a 42-value bucket (batches of 16 clones,
//!   so the data is warm as in `add_pair`);
//! - `quantile_p99` / `quantile_p50`: on a total of 100 000 values.
//!
//! Run: `cargo bench -p breakwater --bench sketch`.

#[path = "support/rng.rs"]
mod rng;

use std::hint::black_box;

use breakwater::engine::sketch::LatencySketch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rng::Rng;

const PER_BUCKET: usize = 42;
const BUCKETS: usize = 12;

/// Deterministic log-normal latencies (SplitMix64 + Box–Muller).
fn latencies(n: usize) -> Vec<u64> {
    let mut rng = Rng(0x5EED);
    // Uniform in (0, 1].
    let mut next = move || rng.unit() + f64::EPSILON;
    (0..n)
        .map(|_| {
            let normal = (-2.0 * next().ln()).sqrt() * (std::f64::consts::TAU * next()).cos();
            (2_500.0 * (0.9 * normal).exp()).clamp(100.0, 60_000.0) as u64
        })
        .collect()
}

fn sketch_of(values: &[u64]) -> LatencySketch {
    let mut s = LatencySketch::new();
    values.iter().for_each(|&v| s.add(v));
    s
}

fn bench(c: &mut Criterion) {
    let values = latencies(1 << 17);
    let mask = values.len() - 1;
    let mut g = c.benchmark_group("sketch");

    g.throughput(Throughput::Elements(1));
    g.bench_function("add_pair", |b| {
        let mut ring: Vec<LatencySketch> = (0..BUCKETS).map(|_| LatencySketch::new()).collect();
        let mut total = LatencySketch::new();
        let mut k = 0usize;
        b.iter(|| {
            let slot = (k / PER_BUCKET) % BUCKETS;
            if k.is_multiple_of(PER_BUCKET) {
                total.subtract(&ring[slot]);
                ring[slot].clear();
            }
            let v = black_box(values[k & mask]);
            ring[slot].add(v);
            total.add(v);
            k += 1;
        });
        black_box(&total);
    });

    g.throughput(Throughput::Elements(PER_BUCKET as u64));
    g.bench_function("refill_bucket", |b| {
        let mut s = LatencySketch::new();
        let mut k = 0usize;
        b.iter(|| {
            s.clear();
            for _ in 0..PER_BUCKET {
                s.add(black_box(values[k & mask]));
                k += 1;
            }
            black_box(&s);
        });
    });
    g.bench_function("fill_fresh_bucket", |b| {
        let mut k = 0usize;
        b.iter(|| {
            let mut s = LatencySketch::new();
            for _ in 0..PER_BUCKET {
                s.add(black_box(values[k & mask]));
                k += 1;
            }
            s
        });
    });

    let buckets: Vec<LatencySketch> = values[..BUCKETS * PER_BUCKET]
        .chunks(PER_BUCKET)
        .map(sketch_of)
        .collect();
    let mut window = LatencySketch::new();
    buckets.iter().for_each(|b| window.merge(b));
    g.throughput(Throughput::Elements(1));
    g.bench_function("subtract_2h_bucket", |b| {
        b.iter_batched_ref(
            || window.clone(),
            |w| w.subtract(black_box(&buckets[0])),
            BatchSize::NumIterations(16),
        );
    });
    g.bench_function("clear_2h_bucket", |b| {
        b.iter_batched_ref(
            || buckets[0].clone(),
            |s| s.clear(),
            BatchSize::NumIterations(16),
        );
    });

    let big = sketch_of(&values[..100_000]);
    g.bench_function("quantile_p99", |b| {
        b.iter(|| black_box(&big).quantile(black_box(0.99)));
    });
    g.bench_function("quantile_p50", |b| {
        b.iter(|| black_box(&big).quantile(black_box(0.5)));
    });
    g.finish();

    eprintln!(
        "heap bytes: 42-value bucket {}, total of 12 buckets {}, total of 1e5 values {}; \
         size_of::<LatencySketch>() = {}",
        buckets[0].heap_bytes(),
        window.heap_bytes(),
        big.heap_bytes(),
        std::mem::size_of::<LatencySketch>(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

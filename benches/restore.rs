//! Benchmark of agent state export and restore (`Engine::export_agent`,
//! `Engine::restore_agent`): what a checkpoint costs per changed agent, and
//! how long a partition takes to come back after a crash or a rebalance.
//!
//! Agents are built from a day of event time at three rates: 20 events a
//! day (the 1M-agent fleet of `benches/engine.rs`), 500 a day (its 10k
//! fleet) and one a second. The bench prints their encoded sizes, times
//! export and restore per agent with Criterion (restore into a fresh
//! engine, under distinct ids, so the id map grows as in a real restore),
//! and times restoring 1 000 000 agents of 20 events a day into one engine
//! (decode and insert; the states are already in memory), beside creating
//! as many agents from one event each. Those two report CPU time too: in a
//! fresh process much of the restore's wall time is the kernel handing out
//! the agents' memory (about 8 KiB each, mostly their windows' rings),
//! which the creation after it then reuses.
//!
//! Run: `cargo bench --bench restore`. `BREAKWATER_BENCH_RESTORE_AGENTS=N`
//! changes the size of the big restore (default 1 000 000).

#[path = "support/rng.rs"]
mod rng;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::config::SloConfig;
use breakwater::engine::{Clock, Engine};
use breakwater::event::{Eval, Outcome, TaskEvent, TimestampMs};
use breakwater::output::SnapshotTrigger;
use criterion::{Criterion, Throughput};
use rng::Rng;

/// 2026-12-01T00:00:00Z.
const START: TimestampMs = 1_796_083_200_000;
const DAY_MS: i64 = 86_400_000;

/// One task of the mix of `benches/engine.rs`: ~2 % failed, log-normal-ish
/// latency around 2.5 s, a few tool calls, half with one of three evals.
fn task(rng: &mut Rng, id: u64, agent: &str, t: TimestampMs) -> TaskEvent {
    let r = rng.unit();
    let outcome = if r < 0.003 {
        Outcome::Unavailable
    } else if r < 0.007 {
        Outcome::Timeout
    } else if r < 0.022 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    let mut e = TaskEvent::new(format!("{:032x}", rng.next_u64() ^ id), agent, t, outcome);
    // exp(N(0, 0.9)) from a sum of uniforms: no libm needed for realism.
    let normal = (0..4).map(|_| rng.unit()).sum::<f64>() * 1.7 - 3.4;
    e.latency_ms = (2_500.0 * (0.9 * normal).exp()).clamp(100.0, 60_000.0) as u64;
    e.tool_calls = 1 + (rng.unit() * 12.0) as u32;
    e.policy_violations = u32::from(rng.unit() < 0.005);
    if rng.unit() < 0.8 {
        e.hallucination = Some(rng.unit() < 0.01);
    }
    if rng.unit() < 0.5 {
        e.intent_met = Some(rng.unit() > 0.02);
    }
    e.delegation_depth = (rng.unit() * 3.0) as u32;
    if rng.unit() < 0.5 {
        let c =
            ["answer_relevance", "factual_retrieval", "calculation"][(rng.unit() * 3.0) as usize];
        e.evals.push(Eval {
            category: c.to_string(),
            passed: rng.unit() > 0.03,
        });
    }
    e
}

/// `agents` agents after one day at `per_day` events each, exported at the
/// end of the day (after a periodic snapshot, as a checkpoint does).
fn states(agents: u64, per_day: u64, seed: u64) -> Vec<Vec<u8>> {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let total = agents * per_day;
    let ids: Vec<String> = (0..agents).map(|a| format!("agent-{a}")).collect();
    let mut batch = Vec::with_capacity(4096);
    let mut offsets = Vec::with_capacity(4096);
    for k in 0..total {
        let t = START + (i128::from(k) * i128::from(DAY_MS) / i128::from(total)) as i64;
        batch.push(task(&mut rng, k, &ids[(k % agents) as usize], t));
        offsets.push(k as i64);
        if batch.len() == 4096 || k + 1 == total {
            engine.process_batch_at(&batch, &offsets, Clock::EventTime, &mut out);
            out.clear();
            batch.clear();
            offsets.clear();
        }
    }
    engine.advance_to(START + DAY_MS, &mut out);
    ids.iter()
        .map(|id| {
            engine.snapshot(id, SnapshotTrigger::Periodic);
            engine.export_agent(id).expect("agent exists")
        })
        .collect()
}

fn sizes(label: &str, states: &[Vec<u8>]) {
    let mut lens: Vec<usize> = states.iter().map(Vec::len).collect();
    lens.sort_unstable();
    let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    println!(
        "[{label}] state bytes per agent: mean {mean:.0}, min {}, median {}, max {} ({} agents)",
        lens[0],
        lens[lens.len() / 2],
        lens[lens.len() - 1],
        lens.len()
    );
}

/// User and system CPU seconds of this process so far (`/proc/self/stat`).
fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i].parse::<f64>().expect("ticks") / 100.0;
    (ticks(11), ticks(12))
}

/// Runs `f`, returning its wall time, its (user, system) CPU time and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, (f64, f64), T) {
    let (u0, s0) = cpu_secs();
    let t0 = Instant::now();
    let value = f();
    let took = t0.elapsed();
    let (u1, s1) = cpu_secs();
    (took, (u1 - u0, s1 - s0), value)
}

/// An engine holding `ids`, each created by one event.
fn create_many(ids: &[String]) -> Engine {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let (mut out, mut batch) = (Vec::new(), Vec::with_capacity(4096));
    let mut rng = Rng(7);
    for (k, id) in ids.iter().enumerate() {
        batch.push(task(&mut rng, k as u64, id, START + k as i64));
        if batch.len() == 4096 || k + 1 == ids.len() {
            engine.process_batch(&batch, Clock::EventTime, &mut out);
            out.clear();
            batch.clear();
        }
    }
    engine
}

/// Restores `n` agents named `agent-{k}`, cycling through `states`, into a
/// fresh engine; returns the time taken and the engine.
fn restore_many(states: &[Vec<u8>], ids: &[String], n: usize) -> (Duration, Engine) {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let t0 = Instant::now();
    for (k, id) in ids.iter().enumerate().take(n) {
        engine
            .restore_agent(id, &states[k % states.len()])
            .expect("restores");
    }
    (t0.elapsed(), engine)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    // `cargo test --benches` runs a smoke version: few agents, short runs.
    let scale = if full { 1 } else { 20 };
    let profiles = [
        ("20_per_day", 2_000 / scale, 20),
        ("500_per_day", 2_000 / scale, 500),
        ("1_per_second", 8 / scale.min(8), 86_400 / scale),
    ];
    let mut built = Vec::new();
    for (label, agents, per_day) in profiles {
        let s = states(agents, per_day, 0xB4EA_C0A7 ^ per_day);
        sizes(label, &s);
        built.push((label, s));
    }
    let n: usize = std::env::var("BREAKWATER_BENCH_RESTORE_AGENTS")
        .map(|v| v.replace('_', "").parse().expect("agent count"))
        .unwrap_or(if full { 1_000_000 } else { 2_000 });
    // Enough distinct ids for the big restore and each Criterion batch.
    let ids: Vec<String> = (0..n.max(100_000)).map(|k| format!("agent-{k}")).collect();

    for (label, states) in &built {
        let mut group = criterion.benchmark_group(format!("restore/{label}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(if full { 1000 } else { 50 }))
            .measurement_time(Duration::from_millis(if full { 4000 } else { 100 }));
        let (_, engine) = restore_many(states, &ids, states.len());
        let mut buf = Vec::with_capacity(64 * 1024);
        group.bench_function("export_agent_into", |b| {
            let mut k = 0usize;
            b.iter(|| {
                buf.clear();
                k = (k + 1) % states.len();
                black_box(engine.export_agent_into(&ids[k], &mut buf))
            })
        });
        group.bench_function("restore_agent", |b| {
            b.iter_custom(|iters| {
                let mut left = iters as usize;
                let mut busy = Duration::ZERO;
                while left > 0 {
                    // Fresh engines of up to 100k agents: the id map grows as in a restore.
                    let n = left.min(100_000);
                    busy += restore_many(states, &ids, n).0;
                    left -= n;
                }
                busy
            })
        });
        group.finish();
    }

    let (label, states) = &built[0];
    let bytes: usize = (0..n).map(|k| states[k % states.len()].len()).sum();
    let (took, cpu, engine) = timed(|| restore_many(states, &ids, n).1);
    assert_eq!(engine.len(), n);
    drop(engine);
    println!(
        "[{label}] restored {n} agents ({:.1} MiB of state) in {:.2} s = {:.0} ns/agent \
         (CPU: user {:.2} s, system {:.2} s)",
        bytes as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        took.as_nanos() as f64 / n as f64,
        cpu.0,
        cpu.1,
    );
    // For scale: the same number of agents created by one event each.
    let (took, cpu, engine) = timed(|| create_many(&ids[..n]));
    drop(engine);
    println!(
        "[for scale] created {n} agents from one event each in {:.2} s \
         (CPU: user {:.2} s, system {:.2} s; in the memory the restore freed)",
        took.as_secs_f64(),
        cpu.0,
        cpu.1,
    );
    criterion.final_summary();
}

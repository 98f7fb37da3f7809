//! Benchmark of the engine alone: events/s in steady state and memory per agent.
//!
//! For each fleet size (10 000 and 1 000 000 agents by default):
//!
//! 1. **Build and memory.** A fresh engine takes one day of event time of a
//!    realistic stream (500 events per agent at 10k agents, 20 at 1M; every
//!    agent is seen in the first pass, then agents are drawn uniformly at
//!    random). The resident-set growth of the process over that build
//!    (`/proc/self/statm`, resident pages × 4096), divided by the number of
//!    agents, is the reported bytes per agent; a counting global allocator
//!    gives the live heap bytes beside it.
//! 2. **Throughput.** Criterion times, per event,
//!    `advance_to(e.timestamp); process(&e); out.clear()` on that same warm
//!    engine, continuing the stream at the same event-time rate, so windows
//!    slide and timers fire as they would in production. The engine is never
//!    rebuilt between iterations; events are restamped (agent, id, time) in
//!    chunks outside the timed region.
//!
//! Each build has a wall-clock budget (180 s; `BREAKWATER_BENCH_BUILD_SECS`,
//! 0 for none) so the whole bench stays within a few minutes on a slow
//! machine; a build cut short is labelled `_partial_build`.
//!
//! Run: `cargo bench --bench engine`. Environment knobs:
//! - `BREAKWATER_BENCH_AGENTS=10000,1000000`: fleet sizes (any count; other
//!   sizes get the settings of the nearer default);
//! - `BREAKWATER_BENCH_EVENTS_PER_DAY=N`: events per agent per day for those;
//! - `BREAKWATER_BENCH_BUILD_SECS=S`: the build budget above;
//! - `BREAKWATER_BENCH_REEVALUATE_MS=MS`: a what-if on the engine's
//!   re-evaluation interval (`EngineOptions::reevaluate_every_ms`, default 60 s).
//! - `BREAKWATER_BENCH_DORMANT_AFTER_MS=MS|off`: when idle agents fall
//!   dormant (`EngineOptions::dormant_after_ms`, default 5 min; `off`
//!   keeps every agent awake).

#[path = "support/rng.rs"]
mod rng;

use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::config::SloConfig;
use breakwater::engine::budget::BudgetStatus;
use breakwater::engine::{Clock, Engine, EngineOptions};
use breakwater::event::{Eval, Outcome, TaskEvent, TimestampMs};
use breakwater::output::Output;
use criterion::{Criterion, Throughput};
use rng::{mix, Rng};

// ---------------------------------------------------------------------------
// Heap accounting: a pass-through allocator that counts live bytes while on.

struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Relaxed) {
        LIVE_BYTES.fetch_add(delta, Relaxed);
    }
}

/// The allocator the `breakwater` binary uses, so the engine is measured
/// on the heap it runs on.
const UNDER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: every call is forwarded unchanged to the binary's allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { UNDER.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { UNDER.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { UNDER.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { UNDER.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Resident set size of this process, in bytes (statm's resident pages × 4096).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field");
    pages * 4096
}

// ---------------------------------------------------------------------------
// The event stream.

/// 2026-12-01T00:00:00Z.
const START: TimestampMs = 1_796_083_200_000;
const DAY_MS: i64 = 86_400_000;
/// Distinct event templates (outcome, latency, tool calls, ...), reused cyclically.
const TEMPLATES: usize = 1 << 16;
/// Events restamped, then processed, per timed block.
const CHUNK: usize = 4096;
const EVAL_CATEGORIES: [&str; 3] = ["answer_relevance", "factual_retrieval", "calculation"];

/// One task's content, before it is given an agent, an id and a time.
///
/// Mix: 1.5 % FAILURE, 0.4 % TIMEOUT, 0.3 % UNAVAILABLE, the rest SUCCESS;
/// latency log-normal (median 2.5 s, σ 0.9) clamped to 100 ms–60 s (timeouts
/// at 60 s); 1–20 tool calls (mean ≈ 7.7), 0.1 % of calls blocked; a
/// hallucination verdict on 80 % of tasks (1 % positive), intent on 50 %
/// (2 % missed); 0 or 1 eval (of 3 categories, 97 % pass); delegation depth 0–2.
fn template(rng: &mut Rng, n: usize) -> TaskEvent {
    let mut e = TaskEvent::new(
        String::with_capacity(40),
        String::with_capacity(24),
        START,
        Outcome::Success,
    );
    e.task_id = format!("task-{n:06}");
    e.model = Some("gpt-4o".into());
    let r = rng.unit();
    e.outcome = if r < 0.003 {
        Outcome::Unavailable
    } else if r < 0.007 {
        Outcome::Timeout
    } else if r < 0.022 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    if e.outcome == Outcome::Unavailable {
        e.error_type = Some("unavailable".into());
        return e;
    }
    e.latency_ms = match e.outcome {
        Outcome::Timeout => 60_000,
        _ => (2_500.0 * (0.9 * rng.normal()).exp()).clamp(100.0, 60_000.0) as u64,
    };
    match e.outcome {
        Outcome::Failure => e.error_type = Some("tool_error".into()),
        Outcome::Timeout => e.error_type = Some("timeout".into()),
        _ => {}
    }
    let u = rng.unit();
    e.tool_calls = (1 + (20.0 * u * u) as u32).min(20);
    e.policy_violations = (0..e.tool_calls).filter(|_| rng.chance(0.001)).count() as u32;
    if rng.chance(0.8) {
        e.hallucination = Some(rng.chance(0.01));
    }
    if rng.chance(0.5) {
        e.intent_met = Some(!rng.chance(0.02));
    }
    e.delegation_depth = rng.below(3) as u32;
    if rng.chance(0.5) {
        let category = EVAL_CATEGORIES[rng.below(EVAL_CATEGORIES.len() as u64) as usize];
        e.evals.push(Eval {
            category: category.to_string(),
            passed: e.outcome == Outcome::Success && !rng.chance(0.03),
        });
    }
    e.tokens_in = Some(200 + 150 * u64::from(e.tool_calls));
    e.tokens_out = Some(100 + rng.below(400));
    e
}

/// An endless, seeded stream over `agents` agents at `per_day` events per
/// agent per day of event time: event `k` is at `START + k·day / (agents·per_day)`,
/// goes to agent `k` for the first `agents` events (so every agent exists)
/// and to a uniformly random agent after that.
struct Stream {
    agents: u64,
    per_day: u64,
    next: u64,
    rng: Rng,
    templates: Vec<TaskEvent>,
    cursor: usize,
}

impl Stream {
    fn new(agents: u64, per_day: u64, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let templates: Vec<TaskEvent> = (0..TEMPLATES).map(|n| template(&mut rng, n)).collect();
        let mut s = Stream {
            agents,
            per_day,
            next: 0,
            rng,
            templates,
            cursor: 0,
        };
        // Stamp every template once so their strings have their final capacity.
        for i in 0..TEMPLATES / CHUNK {
            let events = s.chunk(CHUNK);
            assert!(events.iter().all(|e| e.validate().is_ok()), "chunk {i}");
        }
        s.next = 0;
        s.cursor = 0;
        s
    }

    fn timestamp(&self, k: u64) -> TimestampMs {
        let per_ms = i128::from(self.agents * self.per_day);
        START + (i128::from(k) * i128::from(DAY_MS) / per_ms) as i64
    }

    /// Restamps and returns the next `n` (≤ CHUNK) events.
    fn chunk(&mut self, n: usize) -> &[TaskEvent] {
        debug_assert!(n <= CHUNK);
        if self.cursor + n > self.templates.len() {
            self.cursor = 0;
        }
        let start = self.cursor;
        for i in start..start + n {
            let k = self.next;
            self.next += 1;
            let agent = if k < self.agents {
                k
            } else {
                self.rng.below(self.agents)
            };
            let t = self.timestamp(k);
            let e = &mut self.templates[i];
            e.timestamp = t;
            e.agent_id.clear();
            write!(e.agent_id, "agent-{agent}").unwrap();
            // A UUID-shaped event id (36 chars), unique per event.
            let (a, b) = (mix(k ^ 0x5EED), mix(!k));
            e.event_id.clear();
            write!(
                e.event_id,
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xFFFF,
                a & 0xFFF,
                b >> 48,
                b & 0xFFFF_FFFF_FFFF
            )
            .unwrap();
        }
        self.cursor += n;
        &self.templates[start..start + n]
    }
}

// ---------------------------------------------------------------------------
// A warm engine and the stream that feeds it.

struct Scale {
    agents: u64,
    /// Events per agent over the first day (the build), which also sets the
    /// event-time rate of the measured stream.
    per_day: u64,
    label: String,
    sample_size: usize,
    warm_up: Duration,
    measurement: Duration,
}

struct Memory {
    rss_bytes: u64,
    heap_bytes: i64,
    build_events: u64,
    build_secs: f64,
    /// Event time the build reached, in hours after the start.
    build_hours: f64,
    /// False when the build hit its wall-clock budget before the day ended.
    complete: bool,
}

struct Fleet {
    engine: Engine,
    out: Vec<Output>,
    stream: Stream,
    /// Input offsets of the next chunk, for `Mode::BatchAt`.
    offsets: Vec<i64>,
}

/// The measured work, per event.
/// How events are handed to the engine.
#[derive(Clone, Copy)]
enum Mode {
    /// `advance_to(e.timestamp); process(&e)` one event at a time.
    PerEvent,
    /// `process_batch(chunk, Clock::EventTime)`, as the Kafka shell does
    /// with each polled batch: the same calls, with the next events' state
    /// prefetched.
    Batch,
    /// `process_batch_at(chunk, offsets, Clock::EventTime)`: `Batch` with
    /// input offsets, each agent checking and moving its position.
    BatchAt,
}

#[inline(never)]
fn run(
    engine: &mut Engine,
    out: &mut Vec<Output>,
    events: &[TaskEvent],
    offsets: &[i64],
    mode: Mode,
) {
    match mode {
        Mode::PerEvent => {
            for e in events {
                engine.advance_to(e.timestamp, out);
                black_box(engine.process(e, out));
                out.clear();
            }
        }
        Mode::Batch => {
            black_box(engine.process_batch(events, Clock::EventTime, out));
            out.clear();
        }
        Mode::BatchAt => {
            black_box(engine.process_batch_at(events, offsets, Clock::EventTime, out));
            out.clear();
        }
    }
}

impl Fleet {
    /// Builds the engine over one day of event time (or as much of it as the
    /// wall-clock `budget` allows), measuring its memory.
    fn build(scale: &Scale, budget: Option<Duration>) -> (Fleet, Memory) {
        let mut stream = Stream::new(scale.agents, scale.per_day, 0xB4EA_C0A7 ^ scale.agents);
        let mut out: Vec<Output> = Vec::with_capacity(4096);
        let config = Arc::new(SloConfig::default());
        let total = scale.agents * scale.per_day;

        let rss_before = rss_bytes();
        LIVE_BYTES.store(0, Relaxed);
        COUNTING.store(true, Relaxed);
        let mut engine = Engine::with_options(config, engine_options());
        let mut busy = Duration::ZERO;
        let mut done = 0u64;
        let deadline = budget.map(|b| Instant::now() + b);
        // The first pass (one event per agent) always completes.
        while done < total && (done < scale.agents || deadline.is_none_or(|d| Instant::now() < d)) {
            let n = (total - done).min(CHUNK as u64) as usize;
            let events = stream.chunk(n);
            let t0 = Instant::now();
            run(&mut engine, &mut out, events, &[], Mode::Batch);
            busy += t0.elapsed();
            done += n as u64;
        }
        COUNTING.store(false, Relaxed);
        let heap_bytes = LIVE_BYTES.load(Relaxed) as i64;
        let rss_bytes = rss_bytes().saturating_sub(rss_before);

        assert_eq!(engine.len() as u64, scale.agents, "every agent exists");
        let stats = engine.stats();
        assert_eq!((stats.duplicates, stats.late), (0, 0));
        let memory = Memory {
            rss_bytes,
            heap_bytes,
            build_events: done,
            build_secs: busy.as_secs_f64(),
            build_hours: (engine.clock() - START) as f64 / 3_600_000.0,
            complete: done == total,
        };
        (
            Fleet {
                engine,
                out,
                stream,
                offsets: Vec::with_capacity(CHUNK),
            },
            memory,
        )
    }

    /// Processes `iters` more events; returns the time spent in the engine only.
    fn timed(&mut self, iters: u64, mode: Mode) -> Duration {
        let mut left = iters;
        let mut busy = Duration::ZERO;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            let first = self.stream.next as i64;
            let events = self.stream.chunk(n);
            self.offsets.clear();
            self.offsets.extend(first..first + n as i64);
            let t0 = Instant::now();
            run(&mut self.engine, &mut self.out, events, &self.offsets, mode);
            busy += t0.elapsed();
            left -= n as u64;
        }
        busy
    }

    /// Per-event time of `chunks` more `process_batch` chunks, each timed
    /// alone: the fastest chunks are the ones no other process slowed
    /// down, so the minimum and low percentiles compare two builds on a
    /// shared, noisy machine better than a mean does.
    fn chunk_spread(&mut self, label: &str, chunks: usize) {
        let mut per_event: Vec<f64> = (0..chunks)
            .map(|_| self.timed(CHUNK as u64, Mode::Batch).as_nanos() as f64 / CHUNK as f64)
            .collect();
        per_event.sort_by(f64::total_cmp);
        let at = |q: f64| per_event[((per_event.len() - 1) as f64 * q) as usize];
        println!(
            "[{label}] process_batch per event, {chunks} chunks of {CHUNK} timed one by one: \
             min {:.0} ns, p10 {:.0} ns, median {:.0} ns",
            at(0.0),
            at(0.1),
            at(0.5),
        );
    }

    /// What the engine did, to read the throughput figure against.
    fn report(&self, label: &str) {
        let s = self.engine.stats();
        let per_k = |x: u64| 1000.0 * x as f64 / s.events.max(1) as f64;
        let (mut watched, mut not_healthy) = (0u64, 0u64);
        for (_, a) in self.engine.briefs() {
            let unhealthy = a.status != BudgetStatus::Healthy;
            not_healthy += unhealthy as u64;
            watched += (unhealthy || a.alerts_firing > 0) as u64;
        }
        let sim_h = (self.engine.clock() - START) as f64 / 3_600_000.0;
        println!(
            "[{label}] after {} events ({sim_h:.1} h of event time): \
             per 1000 events {:.2} alerts, {:.2} breaker transitions, {:.2} snapshots; \
             agents not HEALTHY {:.1} %, with something firing or not HEALTHY \
             (re-evaluated every {} s of engine clock) {:.1} %; duplicates {}, late {}; \
             dormant agents woken {:.1} per 1000 events, {:.1} % dormant now",
            s.events,
            per_k(s.alerts),
            per_k(s.transitions),
            per_k(s.snapshots),
            100.0 * not_healthy as f64 / self.engine.len() as f64,
            engine_options().reevaluate_every_ms / 1000,
            100.0 * watched as f64 / self.engine.len() as f64,
            s.duplicates,
            s.late,
            per_k(s.woken),
            100.0 * self.engine.dormant_agents() as f64 / self.engine.len() as f64,
        );
    }
}

/// The engine's defaults, unless `BREAKWATER_BENCH_REEVALUATE_MS` overrides
/// the re-evaluation interval (a what-if: the default is 60 s).
fn engine_options() -> EngineOptions {
    let mut options = EngineOptions::default();
    if let Ok(v) = std::env::var("BREAKWATER_BENCH_REEVALUATE_MS") {
        options.reevaluate_every_ms = v.parse().expect("milliseconds");
    }
    if let Ok(v) = std::env::var("BREAKWATER_BENCH_DORMANT_AFTER_MS") {
        options.dormant_after_ms = match v.as_str() {
            "off" => None,
            ms => Some(ms.parse().expect("milliseconds or `off`")),
        };
    }
    options
}

/// Wall-clock budget of each build: `BREAKWATER_BENCH_BUILD_SECS` (default
/// 180; 0 for none), so a slow machine still finishes the bench in minutes.
/// The full day at 1M agents takes about 71 s here.
fn build_budget() -> Option<Duration> {
    let secs: u64 = std::env::var("BREAKWATER_BENCH_BUILD_SECS")
        .map(|v| v.parse().expect("seconds"))
        .unwrap_or(180);
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn scales(full: bool) -> Vec<Scale> {
    let all = if full {
        vec![
            Scale {
                agents: 10_000,
                per_day: 500,
                label: "10k_agents".into(),
                sample_size: 20,
                warm_up: Duration::from_secs(2),
                measurement: Duration::from_secs(10),
            },
            Scale {
                agents: 1_000_000,
                per_day: 20,
                label: "1M_agents".into(),
                sample_size: 10,
                warm_up: Duration::from_secs(2),
                measurement: Duration::from_secs(20),
            },
        ]
    } else {
        // `cargo test --benches`: a smoke run.
        vec![Scale {
            agents: 1_000,
            per_day: 20,
            label: "1k_agents_smoke".into(),
            sample_size: 10,
            warm_up: Duration::from_millis(100),
            measurement: Duration::from_millis(200),
        }]
    };
    let Ok(list) = std::env::var("BREAKWATER_BENCH_AGENTS") else {
        return all;
    };
    if !full {
        return all;
    }
    // Other sizes (for a scaling curve) get the settings of the nearest default.
    let per_day = std::env::var("BREAKWATER_BENCH_EVENTS_PER_DAY")
        .ok()
        .map(|v| v.parse::<u64>().expect("events per agent per day"));
    list.split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse::<u64>()
                .expect("agent count")
        })
        .map(|agents| {
            let base = if agents <= 100_000 { &all[0] } else { &all[1] };
            let per_day = per_day.unwrap_or(base.per_day);
            Scale {
                agents,
                per_day,
                label: if (agents, per_day) == (base.agents, base.per_day) {
                    base.label.clone()
                } else {
                    format!("{agents}_agents_{per_day}_per_day")
                },
                ..*base
            }
        })
        .collect()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    let scales = scales(full);

    // Memory first, for every size, before anything else has grown the heap;
    // the fleets stay alive so no build reuses memory another one freed.
    let mut fleets = Vec::new();
    let mut labels = Vec::new();
    for scale in &scales {
        let (fleet, m) = Fleet::build(scale, if full { build_budget() } else { None });
        let mut label = scale.label.clone();
        if !m.complete {
            label.push_str("_partial_build");
            println!(
                "[{label}] WARNING: the build hit its {} s wall-clock budget after {} of {} events \
                 ({:.1} of 24 h of event time): memory and throughput below are for that \
                 partial day. BREAKWATER_BENCH_BUILD_SECS=0 builds the whole day.",
                build_budget().map_or(0, |b| b.as_secs()),
                m.build_events,
                scale.agents * scale.per_day,
                m.build_hours,
            );
        }
        println!(
            "[{label}] memory after {:.1} events/agent over {:.1} h of event time: \
             RSS delta {:.1} MiB = {:.0} bytes/agent; live heap {:.0} bytes/agent; \
             size_of::<Agent>() = {} bytes; build {:.2} M events/s ({} events incl. agent creation); \
             dormant at the end {} ({:.1} %, after {:?} ms idle), {} wakes",
            m.build_events as f64 / scale.agents as f64,
            m.build_hours,
            m.rss_bytes as f64 / (1 << 20) as f64,
            m.rss_bytes as f64 / scale.agents as f64,
            m.heap_bytes as f64 / scale.agents as f64,
            std::mem::size_of::<breakwater::engine::agent::Agent>(),
            m.build_events as f64 / m.build_secs / 1e6,
            m.build_events,
            fleet.engine.dormant_agents(),
            100.0 * fleet.engine.dormant_agents() as f64 / scale.agents as f64,
            engine_options().dormant_after_ms,
            fleet.engine.stats().woken,
        );
        let mut fleet = fleet;
        // A checkpoint's periodic snapshot, then another right after (no
        // agent changed in between): what finding the changed agents costs.
        let t0 = Instant::now();
        let changed = fleet.engine.take_changed_snapshots().len();
        let first = t0.elapsed();
        let t0 = Instant::now();
        let again = fleet.engine.take_changed_snapshots().len();
        let second = t0.elapsed();
        println!(
            "[{label}] periodic snapshot after the build: {changed} changed agents in {:.1} ms; \
             right after, {again} in {:.3} ms",
            first.as_secs_f64() * 1e3,
            second.as_secs_f64() * 1e3,
        );
        fleets.push(fleet);
        labels.push(label);
    }

    for ((scale, fleet), label) in scales.iter().zip(&mut fleets).zip(&labels) {
        let mut group = criterion.benchmark_group(format!("engine/{label}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(scale.sample_size)
            .warm_up_time(scale.warm_up)
            .measurement_time(scale.measurement);
        group.bench_function("advance_to+process", |b| {
            b.iter_custom(|iters| fleet.timed(iters, Mode::PerEvent))
        });
        group.bench_function("process_batch", |b| {
            b.iter_custom(|iters| fleet.timed(iters, Mode::Batch))
        });
        group.bench_function("process_batch_at", |b| {
            b.iter_custom(|iters| fleet.timed(iters, Mode::BatchAt))
        });
        group.finish();
        fleet.chunk_spread(label, if full { 200 } else { 5 });
        fleet.report(label);
    }

    criterion.final_summary();
}

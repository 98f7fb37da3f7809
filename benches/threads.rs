//! The processing threads (`kafka.processing_threads`) without Kafka: one
//! engine per input partition, as the job keeps them, and turns of
//! `max_batch` (10 000) events run through them by
//! `breakwater::kafka::workers::Workers::each`, on one thread and on two.
//! What an instance's engines take per second as it gets cores, which the
//! end-to-end bench cannot show on a 2-core machine that also runs the
//! broker (benches/RESULTS.md §2).
//!
//! Events: the end-to-end bench's (`support/events.rs`), 10 000 agents
//! (`BREAKWATER_BENCH_THREADS_AGENTS`) at 500 a day each, spread over 6 partitions (`BREAKWATER_BENCH_THREADS_PARTITIONS`)
//! by agent, event time moving forward turn after turn; each fleet first
//! takes 6 h of event time untimed. Both fleets see the same events.
//!
//! Run: `cargo bench --bench threads` (`cargo test --bench threads`: a
//! smoke run with 1 000 agents).

#[path = "support/env.rs"]
mod env;
#[path = "support/events.rs"]
mod events;
#[path = "support/rng.rs"]
mod rng;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::config::SloConfig;
use breakwater::engine::{Clock, Engine};
use breakwater::event::{TaskEvent, TimestampMs};
use breakwater::kafka::workers::Workers;
use breakwater::output::Output;
use criterion::{Criterion, Throughput};
use env::env_u64;
use events::event;
use rng::{mix, Rng};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START: TimestampMs = 1_796_083_200_000;
const DAY_MS: i64 = 86_400_000;
const PER_DAY: u64 = 500;
/// Events per turn: the job's default `kafka.max_batch`.
const TURN: usize = 10_000;

/// One partition's engine and the buffers of its share of a turn.
struct Task {
    engine: Engine,
    events: Vec<TaskEvent>,
    offsets: Vec<i64>,
    len: usize,
    next_offset: i64,
    out: Vec<Output>,
}

/// An instance's engines, fed turn after turn from one seeded stream.
struct Instance {
    tasks: Vec<Task>,
    agents: u64,
    rng: Rng,
    next: u64,
}

impl Instance {
    fn new(agents: u64, partitions: usize) -> Self {
        let config = Arc::new(SloConfig::default());
        Instance {
            tasks: (0..partitions)
                .map(|_| Task {
                    engine: Engine::new(config.clone()),
                    events: Vec::new(),
                    offsets: Vec::new(),
                    len: 0,
                    next_offset: 0,
                    out: Vec::new(),
                })
                .collect(),
            agents,
            rng: Rng(0x7EAD_5EED),
            next: 0,
        }
    }

    /// Files the next turn's events under their agents' partitions, in
    /// place of last turn's (untimed: only the engines are timed).
    fn fill_turn(&mut self) {
        for t in &mut self.tasks {
            t.len = 0;
        }
        let step = DAY_MS as f64 / (self.agents * PER_DAY) as f64;
        for _ in 0..TURN {
            let k = self.next;
            self.next += 1;
            let agent = if k < self.agents {
                k
            } else {
                self.rng.below(self.agents)
            };
            let t = START + (k as f64 * step) as i64;
            let partition = (mix(agent) % self.tasks.len() as u64) as usize;
            let e = event(&mut self.rng, k, format!("agent-{agent:07}"), t);
            let task = &mut self.tasks[partition];
            if task.len == task.events.len() {
                task.events.push(e);
                task.offsets.push(0);
            } else {
                task.events[task.len] = e;
            }
            task.offsets[task.len] = task.next_offset;
            task.next_offset += 1;
            task.len += 1;
        }
    }

    /// Runs the filed turn through the engines; the time it took.
    fn run_turn(&mut self, workers: &Workers) -> Duration {
        let started = Instant::now();
        workers.each(
            &mut self.tasks,
            |t| t.len,
            |t| {
                t.engine.process_batch_at(
                    &t.events[..t.len],
                    &t.offsets[..t.len],
                    Clock::EventTime,
                    &mut t.out,
                );
                t.out.clear();
            },
        );
        started.elapsed()
    }

    /// `iters` turns, timing only the engines.
    fn timed(&mut self, iters: u64, workers: &Workers) -> Duration {
        (0..iters)
            .map(|_| {
                self.fill_turn();
                self.run_turn(workers)
            })
            .sum()
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let agents = env_u64(
        "BREAKWATER_BENCH_THREADS_AGENTS",
        if full { 10_000 } else { 1_000 },
    );
    let partitions = env_u64("BREAKWATER_BENCH_THREADS_PARTITIONS", 6) as usize;
    let mut criterion = Criterion::default().configure_from_args();
    let counts = [1usize, 2];
    let mut fleets: Vec<(usize, Workers, Instance)> = counts
        .iter()
        .map(|&n| {
            let workers = Workers::new(NonZeroUsize::new(n)).expect("threads");
            let mut instance = Instance::new(agents, partitions);
            // Six hours of event time, so windows and sketches hold data.
            let build = (agents * PER_DAY / 4) as usize / TURN;
            for _ in 0..build.max(1) {
                instance.fill_turn();
                instance.run_turn(&workers);
            }
            (n, workers, instance)
        })
        .collect();
    let label = format!("threads/{agents}_agents_{partitions}_partitions");
    let mut group = criterion.benchmark_group(&label);
    group
        .throughput(Throughput::Elements(TURN as u64))
        .sample_size(if full { 20 } else { 10 })
        .measurement_time(Duration::from_secs(if full { 10 } else { 1 }));
    for (n, workers, instance) in &mut fleets {
        group.bench_function(format!("{n}_thread"), |b| {
            b.iter_custom(|iters| instance.timed(iters, workers))
        });
    }
    group.finish();
    criterion.final_summary();
}

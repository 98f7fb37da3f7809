//! End to end through a real broker (Tansu, started like the tests do), in
//! one run:
//!
//! 1. **Setup** (not timed): N JSON task events (default 1 000 000,
//!    10 000 agents) produced into a 6-partition input topic, keyed by agent.
//! 2. **(a) Bare consumer**: an rdkafka `BaseConsumer` in a fresh group that
//!    only reads the topic to the end (count known) and touches each
//!    payload. The ceiling: what the broker and librdkafka deliver here.
//! 3. **(b) Breakwater**: `breakwater::kafka::run` in-process (as
//!    `tests/support/job.rs` does), `SloConfig::default()`, a fresh group,
//!    consuming the same topic (decode, engine, outputs to the output
//!    topics, commits) until `control.status.events` = N.
//!    Rates are from the first record received to the last (group join
//!    excluded; "incl. join" rates are printed too). Ratio = (b)/(a).
//!    `BREAKWATER_BENCH_E2E_ROUNDS=R` repeats (a),(b) R times (fresh groups).
//! 4. **(c) Latency**: a second job (min_calls 5, failure_threshold 0.5) on
//!    a second input topic; a paced producer sends healthy background
//!    traffic at half of the max rate measured in (b) and, every 20 ms, a
//!    burst of 5 FAILURE events for a fresh agent; a consumer of
//!    `agent.breaker.state` notes when each probe agent's OPEN transition
//!    arrives. Latency = arrival − the moment the 5th (tripping) event was
//!    handed to the producer; p50/p90/p99/max over the probes.
//! 5. **(d) Memory**: VmRSS before and after one engine takes 1 M agents ×
//!    20 events (one day of event time); bytes per agent.
//!
//! Run: `cargo bench --bench e2e` (`cargo test --bench e2e`: a smoke run
//! with 20 000 events, 3 s of latency probes, 10 000 agents). Knobs:
//! `BREAKWATER_BENCH_E2E_EVENTS` (default 1000000),
//! `BREAKWATER_BENCH_E2E_AGENTS` (10000),
//! `BREAKWATER_BENCH_E2E_ROUNDS` (1), `BREAKWATER_BENCH_E2E_LATENCY_SECS`
//! (20; 0 skips (c)), `BREAKWATER_BENCH_E2E_MEM_AGENTS` (1000000; 0 skips
//! (d)), `BREAKWATER_BENCH_E2E_LATENCY_RATE` (background events/s of (c);
//! default half of (b)'s rate), `BREAKWATER_BENCH_E2E_FETCH_WAIT_MS` (the
//! job consumer's `fetch.wait.max.ms`; default the job's, 10 ms),
//! `BREAKWATER_BENCH_E2E_THREADS` (the jobs' `kafka.processing_threads`;
//! default the job's, one per core), `BREAKWATER_BENCH_E2E_MAX_BATCH`
//! (the jobs' `kafka.max_batch`; default the job's, 10 000),
//! `BREAKWATER_BENCH_E2E_FORMAT` (`json`, the default, or `avro`: the
//! input of (a),(b) as Avro with Confluent framing, schema id 1 = the
//! bundled schema; (c) stays JSON). Needs `TANSU_BIN` or
//! `deploy/tansu/install.sh`.

#[path = "support/env.rs"]
mod env;
#[path = "support/events.rs"]
mod events;
#[path = "../tests/support/kafka.rs"]
#[allow(dead_code)]
mod kafka;
#[path = "support/rng.rs"]
mod rng;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakwater::config::{KafkaSettings, SloConfig};
use breakwater::engine::{Clock, Engine};
use breakwater::event::{Outcome, TaskEvent, TimestampMs};
use breakwater::kafka::client::{client_config, Role};
use breakwater::kafka::{self as job, Control, JobStatus};
use env::env_u64;
use events::event;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rng::Rng;

// The job runs in this process: give it the `breakwater` binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 6;
const INPUT: &str = "bench.task.events";
const LATENCY_INPUT: &str = "bench.latency.events";
const BREAKER_TOPIC: &str = "agent.breaker.state";

fn wall_ms() -> TimestampMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as TimestampMs
}

fn producer(bootstrap: &str, linger_ms: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms)
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn send(producer: &BaseProducer, topic: &str, key: &str, payload: &[u8]) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                producer.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Seconds from start to the first record, from the first to the last,
/// and from the middle one (`n / 2`) to the last.
struct Timing {
    to_first: f64,
    first_to_last: f64,
    second_half: f64,
}

impl Timing {
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.first_to_last
    }
    /// The sustained rate: over the second half of the records, once the
    /// job's state for every agent exists and its buffers are warm (the
    /// first half pays for allocating and first-touching them).
    fn rate_second_half(&self, n: u64) -> f64 {
        (n - n / 2) as f64 / self.second_half
    }
    fn rate_incl_join(&self, n: u64) -> f64 {
        n as f64 / (self.to_first + self.first_to_last)
    }
}

/// (a): a bare consumer in a fresh group reads `n` records. It fetches as
/// the job's group consumer does (`processor/src/kafka/client.rs`): with
/// librdkafka's 1 s `fetch.queue.backoff.ms` its rate swung from 0.25 to
/// 1.3 M events/s between runs, depending on whether its queue ever passed
/// `queued.min.messages`; the baseline is the fastest plain reader.
fn bare_consumer(bootstrap: &str, n: u64) -> Timing {
    let job = client_config(&job_settings(bootstrap, INPUT), Role::Group, "bench");
    let mut config = kafka::consumer_config(bootstrap, &kafka::unique_group("bare"));
    config.set("enable.partition.eof", "false");
    for fetch in ["fetch.wait.max.ms", "fetch.queue.backoff.ms"] {
        config.set(fetch, job.get(fetch).expect("the job sets it"));
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let t0 = Instant::now();
    consumer.subscribe(&[INPUT]).expect("subscribe");
    let mut count = 0u64;
    let mut bytes = 0usize;
    let mut first = None;
    let mut half = None;
    while count < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                bytes += m.payload().map_or(0, <[u8]>::len);
                count += 1;
                if count == n / 2 {
                    half = Some(Instant::now());
                }
            }
            Some(Err(e)) => eprintln!("bare consumer: {e}"),
            None => assert!(
                t0.elapsed() < Duration::from_secs(600),
                "bare consumer stuck at {count}"
            ),
        }
    }
    let end = Instant::now();
    let first = first.unwrap();
    std::hint::black_box(bytes);
    Timing {
        to_first: (first - t0).as_secs_f64(),
        first_to_last: (end - first).as_secs_f64(),
        second_half: (end - half.unwrap_or(first)).as_secs_f64(),
    }
}

/// Whether (a),(b) read Avro (Confluent framing, schema id 1) or JSON.
fn avro_input() -> bool {
    match std::env::var("BREAKWATER_BENCH_E2E_FORMAT").as_deref() {
        Err(_) | Ok("json") => false,
        Ok("avro") => true,
        Ok(other) => panic!("BREAKWATER_BENCH_E2E_FORMAT is {other:?}: allowed are json, avro"),
    }
}

/// One input record value of (a),(b).
fn encode(e: &TaskEvent, avro: bool) -> Vec<u8> {
    if avro {
        let mut v = breakwater::decode::framing::confluent_header(1).to_vec();
        v.extend(breakwater::decode::encode_avro_datum(e));
        v
    } else {
        serde_json::to_vec(e).unwrap()
    }
}

fn job_settings(bootstrap: &str, input: &str) -> KafkaSettings {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&format!(
        r#"
brokers: "{bootstrap}"
group_id: {}
partitions: {PARTITIONS}
topics:
  events: {input}
  snapshots: {}
wire:
  input: {{format: auto, default_schema_id: 1}}
{}consumer_properties:
  session.timeout.ms: 2000
  heartbeat.interval.ms: 500
{}
"#,
        kafka::unique_group("job"),
        // A snapshots topic per job: a fresh group must start from nothing,
        // not restore an earlier round's agents (and skip their events).
        kafka::unique_group("bench.snapshots"),
        std::env::var("BREAKWATER_BENCH_E2E_THREADS")
            .map(|n| format!("processing_threads: {n}\n"))
            .unwrap_or_default()
            + &std::env::var("BREAKWATER_BENCH_E2E_MAX_BATCH")
                .map(|n| format!("max_batch: {n}\n"))
                .unwrap_or_default(),
        std::env::var("BREAKWATER_BENCH_E2E_FETCH_WAIT_MS")
            .map(|ms| format!("  fetch.wait.max.ms: {ms}"))
            .unwrap_or_default()
    ))
    .unwrap();
    KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap()
}

fn spawn_job(
    settings: KafkaSettings,
    slo: SloConfig,
) -> (
    Control,
    std::thread::JoinHandle<Result<job::JobSummary, job::JobError>>,
) {
    let control = Control::new();
    let c = control.clone();
    let handle = std::thread::spawn(move || job::run(&settings, Arc::new(slo), &c));
    (control, handle)
}

/// (b): the job in a fresh group counts `n` events.
fn breakwater_job(bootstrap: &str, n: u64) -> (Timing, u64) {
    let (control, handle) = spawn_job(job_settings(bootstrap, INPUT), SloConfig::default());
    let t0 = Instant::now();
    let status = &control.status;
    let mut first = None;
    let mut half = None;
    loop {
        assert!(!handle.is_finished(), "the job stopped: {status:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "job stuck: {status:?}"
        );
        if first.is_none() && JobStatus::get(&status.records) > 0 {
            first = Some(Instant::now());
        }
        let events = JobStatus::get(&status.events);
        if half.is_none() && events >= n / 2 {
            half = Some(Instant::now());
        }
        if events >= n {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let end = Instant::now();
    let outputs = JobStatus::get(&status.outputs);
    let dead = JobStatus::get(&status.dead_letters);
    assert_eq!(dead, 0, "no dead letters");
    control.stop();
    handle.join().expect("job thread").expect("job result");
    let first = first.unwrap();
    (
        Timing {
            to_first: (first - t0).as_secs_f64(),
            first_to_last: (end - first).as_secs_f64(),
            second_half: (end - half.unwrap_or(first)).as_secs_f64(),
        },
        outputs,
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Latency {
    probes: usize,
    opened: usize,
    background_rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// (c): produce → OPEN transition received, at `rate` events/s of background.
fn latency(broker: &kafka::Broker, rate: f64, secs: u64) -> Latency {
    let bootstrap = broker.bootstrap();
    broker.create_topic(LATENCY_INPUT, PARTITIONS, false);
    let slo = SloConfig::from_yaml_str(
        "defaults: {breaker: {min_calls: 5, failure_threshold: 0.5, cooldown_seconds: 3600}}",
    )
    .expect("latency SLO config");
    let (control, handle) = spawn_job(job_settings(&bootstrap, LATENCY_INPUT), slo);
    let t0 = Instant::now();
    while !control.is_ready() {
        assert!(!handle.is_finished(), "latency job stopped");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "latency job not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The watcher: every partition of the breaker topic from the beginning,
    // keeping only probe agents' OPEN transitions.
    let base = Instant::now();
    let watcher: BaseConsumer = kafka::consumer_config(&bootstrap, &kafka::unique_group("watch"))
        .set("fetch.wait.max.ms", "5")
        .set("enable.partition.eof", "false")
        .create()
        .expect("watcher");
    let md = watcher
        .fetch_metadata(Some(BREAKER_TOPIC), Duration::from_secs(10))
        .expect("metadata");
    let parts = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(BREAKER_TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    // The probes' tripping events on the input topic too: the broker's own
    // produce → consume time, to split the total.
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(LATENCY_INPUT, p, Offset::Beginning)
            .unwrap();
    }
    watcher.assign(&tpl).expect("assign");
    let arrivals: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let inputs: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let watch = {
        let (arrivals, inputs, done) = (arrivals.clone(), inputs.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = watcher.poll(Duration::from_millis(20)) {
                    let at = base.elapsed();
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    if !key.starts_with("probe-") {
                        continue;
                    }
                    let v: serde_json::Value =
                        serde_json::from_slice(m.payload().unwrap_or(b"null")).unwrap();
                    if m.topic() == LATENCY_INPUT {
                        if v["event_id"].as_str().is_some_and(|id| id.ends_with("-4")) {
                            inputs.lock().unwrap().entry(key.to_string()).or_insert(at);
                        }
                    } else if v["state"] == "OPEN" {
                        arrivals
                            .lock()
                            .unwrap()
                            .entry(key.to_string())
                            .or_insert(at);
                    }
                }
            }
        })
    };

    // The paced producers: background in 1 ms ticks, a probe every 20 ms.
    // Two of them: with one at linger 1 ms (as before), ~1 000 produce
    // requests a second kept Tansu busy on this 2-core box and the broker
    // alone took seconds at 2 000 events/s; the background now goes in
    // 20 ms batches and only the probes are sent at once.
    let prober = producer(&bootstrap, "0");
    let producer = producer(&bootstrap, "20");
    let mut rng = Rng(7);
    let mut sent: Vec<(String, Duration)> = Vec::new();
    let mut background = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tick = 0u64;
    let per_ms = rate / 1000.0;
    while Instant::now() < end {
        let tick_at = start + Duration::from_millis(tick);
        if let Some(wait) = tick_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let due = ((tick + 1) as f64 * per_ms) as u64;
        while background < due {
            let agent = format!("bg-{}", rng.next_u64() % 10_000);
            let mut e = event(&mut rng, background, agent, wall_ms());
            e.outcome = Outcome::Success;
            e.error_type = None;
            e.latency_ms = e.latency_ms.min(10_000);
            send(
                &producer,
                LATENCY_INPUT,
                &e.agent_id.clone(),
                &serde_json::to_vec(&e).unwrap(),
            );
            background += 1;
        }
        if tick.is_multiple_of(20) {
            let agent = format!("probe-{}", tick / 20);
            for k in 0..5 {
                let mut e = event(&mut rng, k, agent.clone(), wall_ms());
                e.event_id = format!("{agent}-{k}");
                e.outcome = Outcome::Failure;
                e.latency_ms = 500;
                let payload = serde_json::to_vec(&e).unwrap();
                if k == 4 {
                    sent.push((agent.clone(), base.elapsed()));
                }
                send(&prober, LATENCY_INPUT, &agent, &payload);
            }
        }
        producer.poll(Duration::ZERO);
        prober.poll(Duration::ZERO);
        tick += 1;
    }
    let produced_secs = start.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(30)).expect("flush");
    prober.flush(Duration::from_secs(30)).expect("flush");
    // Let the last transitions arrive.
    let wait_from = Instant::now();
    while arrivals.lock().unwrap().len() < sent.len()
        && wait_from.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    watch.join().unwrap();
    control.stop();
    handle.join().expect("job thread").expect("latency job");

    let arrivals = arrivals.lock().unwrap();
    // The first second is warm-up (connections, first fetches).
    let warm = Duration::from_secs(1) + sent.first().map_or(Duration::ZERO, |s| s.1);
    let mut ms: Vec<f64> = sent
        .iter()
        .filter(|(_, t)| *t >= warm)
        .filter_map(|(a, t)| {
            arrivals
                .get(a)
                .map(|r| (r.saturating_sub(*t)).as_secs_f64() * 1e3)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let inputs = inputs.lock().unwrap();
    let mut broker_ms: Vec<f64> = sent
        .iter()
        .filter(|(_, t)| *t >= warm)
        .filter_map(|(a, t)| {
            inputs
                .get(a)
                .map(|r| (r.saturating_sub(*t)).as_secs_f64() * 1e3)
        })
        .collect();
    broker_ms.sort_by(f64::total_cmp);
    println!(
        "(c) broker alone (produce -> the tripping event read back from the input topic by a \
         consumer with fetch.wait.max.ms 5): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
        percentile(&broker_ms, 0.5),
        percentile(&broker_ms, 0.9),
        percentile(&broker_ms, 0.99)
    );
    let probes = sent.iter().filter(|(_, t)| *t >= warm).count();
    Latency {
        probes,
        opened: ms.len(),
        background_rate: background as f64 / produced_secs,
        p50: percentile(&ms, 0.50),
        p90: percentile(&ms, 0.90),
        p99: percentile(&ms, 0.99),
        max: ms.last().copied().unwrap_or(f64::NAN),
    }
}

/// CPU seconds (user + system) of this process and of its children (the
/// Tansu broker), from /proc.
fn cpu_secs() -> (f64, f64) {
    let tick = 100.0; // USER_HZ
    let parse = |stat: &str| -> Option<(i64, f64)> {
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ppid = f.get(1)?.parse().ok()?;
        let ut: f64 = f.get(11)?.parse().ok()?;
        let st: f64 = f.get(12)?.parse().ok()?;
        Some((ppid, (ut + st) / tick))
    };
    let me = std::process::id() as i64;
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse(&s))
        .map_or(0.0, |(_, c)| c);
    let mut children = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            if let Some((ppid, c)) = parse(&stat) {
                if ppid == me {
                    children += c;
                }
            }
        }
    }
    (own, children)
}

fn vm_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// (d): RSS of one engine with `agents` agents after 20 events each over a day.
fn memory(agents: u64) -> (u64, u64, f64) {
    const PER_AGENT: u64 = 20;
    const DAY_MS: i64 = 86_400_000;
    let start: TimestampMs = 1_796_083_200_000;
    let mut rng = Rng(11);
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let mut out = Vec::new();
    let mut chunk = Vec::with_capacity(4096);
    let total = agents * PER_AGENT;
    let before = vm_rss_bytes();
    let t0 = Instant::now();
    for k in 0..total {
        // Every agent once in the first pass, then uniformly at random.
        let a = if k < agents {
            k
        } else {
            rng.next_u64() % agents
        };
        let t = start + (k as i64 * DAY_MS) / total as i64;
        chunk.push(event(&mut rng, k, format!("agent-{a}"), t));
        if chunk.len() == 4096 || k + 1 == total {
            engine.process_batch(&chunk, Clock::EventTime, &mut out);
            out.clear();
            chunk.clear();
        }
    }
    let after = vm_rss_bytes();
    assert_eq!(engine.len() as u64, agents);
    let secs = t0.elapsed().as_secs_f64();
    drop(engine);
    (before, after, secs)
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`)
    // a small smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let scale = |big: u64, small: u64| if full { big } else { small };
    let n = env_u64("BREAKWATER_BENCH_E2E_EVENTS", scale(1_000_000, 20_000));
    let agents = env_u64("BREAKWATER_BENCH_E2E_AGENTS", 10_000);
    let rounds = env_u64("BREAKWATER_BENCH_E2E_ROUNDS", 1).max(1);
    let latency_secs = env_u64("BREAKWATER_BENCH_E2E_LATENCY_SECS", scale(20, 3));
    let mem_agents = env_u64("BREAKWATER_BENCH_E2E_MEM_AGENTS", scale(1_000_000, 10_000));

    let broker = kafka::Broker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic(INPUT, PARTITIONS, false);

    // Setup: N events, wall-clock timestamps over the last hour.
    let t0 = Instant::now();
    let p = producer(&bootstrap, "20");
    let mut rng = Rng(1);
    let now = wall_ms();
    let mut bytes = 0usize;
    let avro = avro_input();
    for k in 0..n {
        let agent = format!("agent-{}", rng.next_u64() % agents);
        let t = now - 3_600_000 + (k as i64 * 3_600_000) / n as i64;
        let e = event(&mut rng, k, agent, t);
        let payload = encode(&e, avro);
        bytes += payload.len();
        send(&p, INPUT, &e.agent_id, &payload);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    drop(p);
    println!(
        "setup: produced {n} {} events ({agents} agents, {PARTITIONS} partitions, avg {} B, lz4) in {:.1} s",
        if avro { "Avro (Confluent framing)" } else { "JSON" },
        bytes / n as usize,
        t0.elapsed().as_secs_f64()
    );

    let mut best_job = 0f64;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let (c0, k0) = cpu_secs();
        let w0 = Instant::now();
        let a = bare_consumer(&bootstrap, n);
        let (c1, k1) = cpu_secs();
        let wa = w0.elapsed().as_secs_f64();
        println!(
            "round {round} (a) bare consumer: {:.0} events/s ({:.2} s first→last; second half {:.0}/s; {:.0}/s incl. join {:.2} s)",
            a.rate(n),
            a.first_to_last,
            a.rate_second_half(n),
            a.rate_incl_join(n),
            a.to_first
        );
        let w1 = Instant::now();
        let (b, outputs) = breakwater_job(&bootstrap, n);
        let (c2, k2) = cpu_secs();
        let wb = w1.elapsed().as_secs_f64();
        println!(
            "round {round} CPU: (a) wall {wa:.2} s, bench process {:.2} s, broker {:.2} s; \
             (b) wall {wb:.2} s, bench process (job) {:.2} s, broker {:.2} s",
            c1 - c0,
            k1 - k0,
            c2 - c1,
            k2 - k1
        );
        println!(
            "round {round} (b) breakwater run: {:.0} events/s ({:.2} s first→last; second half {:.0}/s; {:.0}/s incl. join {:.2} s), {outputs} output records",
            b.rate(n),
            b.first_to_last,
            b.rate_second_half(n),
            b.rate_incl_join(n),
            b.to_first
        );
        println!(
            "round {round} ratio (b)/(a): {:.1} % (second half {:.1} %; incl. join {:.1} %)",
            100.0 * b.rate(n) / a.rate(n),
            100.0 * b.rate_second_half(n) / a.rate_second_half(n),
            100.0 * b.rate_incl_join(n) / a.rate_incl_join(n)
        );
        best_job = best_job.max(b.rate(n));
        rows.push((
            a.rate(n),
            b.rate(n),
            100.0 * b.rate_second_half(n) / a.rate_second_half(n),
        ));
    }

    let lat = (latency_secs > 0).then(|| {
        let rate = match env_u64("BREAKWATER_BENCH_E2E_LATENCY_RATE", 0) {
            0 => best_job / 2.0,
            r => r as f64,
        };
        let l = latency(&broker, rate, latency_secs);
        println!(
            "(c) latency at {:.0} events/s background (target {rate:.0}), {} probes, {} opened: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.background_rate, l.probes, l.opened, l.p50, l.p90, l.p99, l.max
        );
        l
    });
    drop(broker);

    let mem = (mem_agents > 0).then(|| {
        let (before, after, secs) = memory(mem_agents);
        println!(
            "(d) memory: {mem_agents} agents x 20 events (built in {secs:.1} s): VmRSS {:.2} GiB → {:.2} GiB, {:.0} bytes per agent",
            before as f64 / (1u64 << 30) as f64,
            after as f64 / (1u64 << 30) as f64,
            (after - before) as f64 / mem_agents as f64
        );
        (before, after)
    });

    println!("\n===== e2e report =====");
    println!(
        "events {n}, agents {agents}, partitions {PARTITIONS}, {} input",
        if avro_input() { "Avro" } else { "JSON" }
    );
    for (i, (a, b, half)) in rows.iter().enumerate() {
        println!(
            "round {}: bare consumer {a:.0}/s | breakwater {b:.0}/s | ratio {:.1} %, second half {half:.1} % (target >= 90 %)",
            i + 1,
            100.0 * b / a
        );
    }
    if let Some(l) = lat {
        println!(
            "latency produce -> OPEN at {:.0} ev/s: p50 {:.1} ms p99 {:.1} ms (target p99 <= 50 ms), {}/{} probes opened",
            l.background_rate, l.p50, l.p99, l.opened, l.probes
        );
    }
    if let Some((before, after)) = mem {
        println!(
            "memory {mem_agents} agents: +{:.2} GiB RSS, {:.0} B/agent (target <= 2 GiB)",
            (after - before) as f64 / (1u64 << 30) as f64,
            (after - before) as f64 / mem_agents as f64
        );
    }
}

//! End-to-end restore through a real broker: how long an instance takes to
//! get its agents back when it is assigned partitions (start, failover,
//! rebalance). Everything `breakwater run` does on assignment is timed:
//! writing the restore marker, reading the snapshots partitions to it with
//! librdkafka (keeping the highest position per agent), decoding the
//! engine states and inserting the agents.
//!
//! Setup (not timed): a Tansu broker on a free port (`TANSU_BIN`, or the
//! one `deploy/tansu/install.sh` installs), a 6-partition snapshots topic
//! holding one checkpoint record per agent (public snapshot as the value,
//! state and position headers), the states being those of agents after a
//! day at 20 events each (`benches/restore.rs`' 1 M-agent fleet), cycled
//! over 2 000 templates under distinct agent ids.
//!
//! Run: `cargo bench --bench restore_kafka`
//! (`BREAKWATER_BENCH_RESTORE_AGENTS=N`, default 1 000 000).

#[path = "../tests/support/kafka.rs"]
#[allow(dead_code)]
mod kafka;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::config::{KafkaSettings, SloConfig};
use breakwater::engine::{Clock, Engine};
use breakwater::event::{Outcome, TaskEvent, TimestampMs};
use breakwater::kafka::client::{client_config, ClientHealth, Observed, Role};
use breakwater::kafka::collector::{Delivery, RecordCollector};
use breakwater::kafka::restore::{rebuild, Restorer, POSITION_HEADER, STATE_HEADER};
use breakwater::output::SnapshotTrigger;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 6;
const TEMPLATES: u64 = 2_000;
const START: TimestampMs = 1_796_083_200_000;
const DAY_MS: i64 = 86_400_000;

/// `TEMPLATES` agents after a day at 20 events each: (state, public snapshot JSON).
fn templates() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let mut out = Vec::new();
    let per_day = 20;
    let total = TEMPLATES * per_day;
    let mut events = Vec::new();
    let mut offsets = Vec::new();
    for k in 0..total {
        let t = START + (k as i64 * DAY_MS) / total as i64;
        let outcome = if k % 37 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let mut e = TaskEvent::new(format!("e{k}"), format!("t{}", k % TEMPLATES), t, outcome);
        e.latency_ms = 500 + (k * 7919) % 9_000;
        e.tool_calls = 1 + (k % 9) as u32;
        events.push(e);
        offsets.push(k as i64);
    }
    engine.process_batch_at(&events, &offsets, Clock::EventTime, &mut out);
    engine.advance_to(START + DAY_MS, &mut out);
    (0..TEMPLATES)
        .map(|i| {
            let id = format!("t{i}");
            let snap = engine.snapshot(&id, SnapshotTrigger::Periodic).unwrap();
            (
                engine.export_agent(&id).unwrap(),
                serde_json::to_vec(&snap).unwrap(),
            )
        })
        .collect()
}

fn main() {
    let agents: u64 = std::env::var("BREAKWATER_BENCH_RESTORE_AGENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let broker = kafka::Broker::start();
    let topic = "agent.budget.snapshots";
    broker.create_topic(topic, PARTITIONS, true);

    let templates = templates();
    let state_bytes: usize = templates.iter().map(|(s, _)| s.len()).sum();
    let value_bytes: usize = templates.iter().map(|(_, v)| v.len()).sum();
    println!(
        "restore_kafka: {agents} agents, {PARTITIONS} partitions; per agent: state {} B, snapshot value {} B",
        state_bytes / templates.len(),
        value_bytes / templates.len()
    );

    let t0 = Instant::now();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for k in 0..agents {
        let (state, value) = &templates[(k % TEMPLATES) as usize];
        let key = format!("agent-{k}");
        let position = (k / PARTITIONS as u64).to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: STATE_HEADER,
                value: Some(state),
            })
            .insert(Header {
                key: POSITION_HEADER,
                value: Some(&position),
            });
        let mut record = BaseRecord::to(topic)
            .partition((k % PARTITIONS as u64) as i32)
            .key(&key)
            .payload(value)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    println!(
        "setup: produced {agents} snapshot records in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&format!("brokers: \"{}\"", broker.bootstrap())).unwrap();
    let settings = KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap();
    let health = Arc::new(ClientHealth::default());
    let observed = |name| Observed {
        health: health.clone(),
        name,
    };
    let out_producer: BaseProducer<Delivery> = client_config(&settings, Role::Producer, "bench")
        .create_with_context(Delivery::new(observed("producer")))
        .unwrap();
    let mut collector = RecordCollector::new(out_producer, Arc::new(AtomicBool::new(false)));
    let restorer = Restorer::new(
        client_config(&settings, Role::Restore, "bench")
            .create_with_context(observed("restore"))
            .unwrap(),
        topic,
    );

    let config = Arc::new(SloConfig::default());
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    if std::env::var_os("WARM").is_some() {
        let t = Instant::now();
        restorer
            .read(&partitions, "warm", &mut collector, &|| false)
            .unwrap();
        eprintln!("cold read {:.2}", t.elapsed().as_secs_f64());
    }
    let t0 = Instant::now();
    let (mut saved, report) = restorer
        .read(&partitions, "bench", &mut collector, &|| false)
        .expect("read the snapshots partitions");
    let read_secs = t0.elapsed().as_secs_f64();
    let bytes = report.bytes;
    let engines = rebuild(&config, &partitions, &mut saved, &Default::default());
    let restored: usize = engines.iter().map(|(_, e)| e.len()).sum();
    let total = t0.elapsed().as_secs_f64();
    assert_eq!(restored as u64, agents, "every agent restored");
    println!(
        "restore: {restored} agents in {total:.2} s ({:.0} agents/s): reading {read_secs:.2} s ({:.0} MB of state), decoding and inserting ({PARTITIONS} engines, one thread each) {:.2} s",
        restored as f64 / total,
        bytes as f64 / 1e6,
        total - read_secs
    );
}

//! The Kafka test harness works: a real broker (Tansu) per test, topics,
//! keyed produce and consume, consumer-group commits, and librdkafka's mock
//! cluster with fault injection. Needs the Tansu binary: `$TANSU_BIN`, or
//! deploy/tansu/install.sh (which the harness runs when it is missing).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use support::kafka::{self, Broker, Record};

const TIMEOUT: Duration = Duration::from_secs(20);

/// `n` records over `keys` keys, round robin: key `agent-K`, payload
/// `agent-K:SEQ` with SEQ counting that key's records from 0.
fn keyed_batch(n: usize, keys: usize) -> Vec<(String, String)> {
    let mut next = vec![0usize; keys];
    (0..n)
        .map(|i| {
            let k = i % keys;
            let seq = next[k];
            next[k] += 1;
            (format!("agent-{k}"), format!("agent-{k}:{seq}"))
        })
        .collect()
}

/// Per key, the sequence numbers in the order they were consumed; asserts
/// that each key stayed on one partition and that offsets increase.
fn seqs_by_key(records: &[Record]) -> BTreeMap<String, Vec<usize>> {
    let mut partition_of = BTreeMap::new();
    let mut last_offset = BTreeMap::new();
    let mut seqs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in records {
        let key = r.key_str().to_owned();
        let (payload_key, seq) = r.payload_str().rsplit_once(':').expect("payload KEY:SEQ");
        assert_eq!(payload_key, key, "payload of {r:?}");
        let p = *partition_of.entry(key.clone()).or_insert(r.partition);
        assert_eq!(p, r.partition, "key {key} on two partitions");
        if let Some(prev) = last_offset.insert(r.partition, r.offset) {
            assert!(
                r.offset > prev,
                "partition {} went from offset {prev} to {}",
                r.partition,
                r.offset
            );
        }
        seqs.entry(key).or_default().push(seq.parse().expect("SEQ"));
    }
    seqs
}

#[test]
fn keyed_records_round_trip_in_order_per_key() {
    let broker = Broker::start();
    broker.create_topic("events", 3, false);
    broker.create_topic("snapshots", 1, true);

    let batch = keyed_batch(1000, 17);
    broker.produce("events", &batch);
    let records = broker.consume("events", 1000, TIMEOUT);
    assert_eq!(records.len(), 1000);

    let distinct: BTreeSet<_> = records.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(distinct.len(), 1000, "duplicate (partition, offset)");
    let partitions: BTreeSet<_> = records.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions,
        BTreeSet::from([0, 1, 2]),
        "17 keys should spread over 3 partitions"
    );

    let seqs = seqs_by_key(&records);
    assert_eq!(seqs.len(), 17);
    for (key, seqs) in &seqs {
        let k: usize = key["agent-".len()..].parse().unwrap();
        let expected = (1000 - k).div_ceil(17);
        assert_eq!(
            *seqs,
            (0..expected).collect::<Vec<_>>(),
            "{key}: out of order or missing"
        );
    }

    // The compacted topic takes keyed records too (Tansu never compacts).
    broker.produce("snapshots", &[("agent-0", "v1"), ("agent-0", "v2")]);
    let snapshots = broker.consume("snapshots", 2, TIMEOUT);
    let values: Vec<_> = snapshots.iter().map(Record::payload_str).collect();
    assert_eq!(values, ["v1", "v2"]);
}

#[test]
fn a_restarted_group_member_resumes_from_the_committed_offsets() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("input", 2, false);

    let batch = keyed_batch(300, 5);
    let seq_headers: Vec<_> = (0..batch.len())
        .map(|i| {
            let value = i.to_string();
            OwnedHeaders::new().insert(Header {
                key: "i",
                value: Some(&value),
            })
        })
        .collect();
    kafka::produce_with_headers(
        &bootstrap,
        "input",
        batch
            .iter()
            .zip(seq_headers)
            .map(|((k, p), h)| (k.as_bytes(), p.as_bytes(), h)),
    );

    let group = kafka::unique_group("resume");
    // The first member handles 120 records, commits exactly those, stops.
    let (first, committed) = {
        let consumer = kafka::subscribed(&bootstrap, &group, "input");
        let first = kafka::poll_records(&consumer, 120, TIMEOUT);
        let mut next = BTreeMap::new();
        for r in &first {
            next.insert(r.partition, r.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (&partition, &offset) in &next {
            offsets
                .add_partition_offset("input", partition, Offset::Offset(offset))
                .unwrap();
        }
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
        (first, next)
    };

    // Its replacement starts where the commits say and reads the rest.
    let consumer = kafka::subscribed(&bootstrap, &group, "input");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("input", 0);
    partitions.add_partition("input", 1);
    let stored = consumer
        .committed_offsets(partitions, TIMEOUT)
        .expect("committed offsets");
    for (&partition, &offset) in &committed {
        let elem = stored.find_partition("input", partition).unwrap();
        assert_eq!(
            elem.offset(),
            Offset::Offset(offset),
            "committed offset of partition {partition}"
        );
    }
    let rest = kafka::poll_records(&consumer, 180, TIMEOUT);
    for (&partition, &offset) in &committed {
        let start = rest
            .iter()
            .find(|r| r.partition == partition)
            .map(|r| r.offset);
        assert!(
            start.is_none_or(|s| s == offset),
            "partition {partition} resumed at {start:?}, not {offset}"
        );
    }

    let all: Vec<Record> = first.into_iter().chain(rest).collect();
    let distinct: BTreeSet<_> = all.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(
        distinct.len(),
        300,
        "records were skipped or repeated across the restart"
    );
    let indices: BTreeSet<usize> = all
        .iter()
        .map(|r| {
            std::str::from_utf8(r.header("i").expect("header i"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(indices, (0..300).collect(), "headers lost");
    for seqs in seqs_by_key(&all).values() {
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "per-key order broken: {seqs:?}"
        );
    }
}

#[test]
fn mock_cluster_delivers_through_injected_produce_errors() {
    let (cluster, bootstrap) = kafka::mock_cluster(3);
    cluster
        .create_topic("mock-events", 4, 3)
        .expect("create topic");
    // The first two Produce requests fail with retriable errors; the
    // idempotent producer retries them without reordering.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let batch = keyed_batch(200, 7);
    kafka::produce(&bootstrap, "mock-events", &batch);
    let records = kafka::consume(&bootstrap, "mock-events", 200, TIMEOUT);
    for (key, seqs) in seqs_by_key(&records) {
        let k: usize = key["agent-".len()..].parse().unwrap();
        assert_eq!(
            seqs,
            (0..(200 - k).div_ceil(7)).collect::<Vec<_>>(),
            "{key}"
        );
    }
}

//! Reading the output topics back to their end, and the snapshots with their input positions.

#[allow(unused_imports)]
use super::*;

/// Every record of `topic`, from the beginning to its end as of the call.
/// Tansu's high watermarks lag, so the end is found as the job's restorer
/// finds it: a marker is written to each partition and each partition is
/// read until its marker. Markers are left out of the result. Call it when
/// no instance is running, so the end is the end.
pub fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Record> {
    static MARKERS: AtomicUsize = AtomicUsize::new(0);
    let consumer = assigned(bootstrap, topic);
    let partitions = consumer
        .fetch_metadata(Some(topic), PROCESS_TIMEOUT)
        .expect("metadata")
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len()) as i32;
    assert!(partitions > 0, "topic {topic} has no partitions");
    let marker = format!(
        "{END_MARKER_PREFIX}{}.{}",
        std::process::id(),
        MARKERS.fetch_add(1, Ordering::Relaxed)
    );
    let acks = Acks::default();
    let producer: BaseProducer<Acks> = harness::client_config(bootstrap)
        .create_with_context(acks.clone())
        .expect("producer");
    for p in 0..partitions {
        let headers = OwnedHeaders::new().insert(Header {
            key: "breakwater-test.end-marker",
            value: Some("1"),
        });
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(p)
                    .key(marker.as_bytes())
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send an end marker");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush the end markers");
    assert_eq!(
        acks.delivered.load(Ordering::SeqCst),
        partitions as usize,
        "end markers acknowledged"
    );

    let mut seen = Vec::new();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while ended.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic}: end markers of partitions {ended:?} of {partitions} seen after {} records",
            seen.len()
        );
        let before = seen.len();
        poll_into(&consumer, &mut seen);
        if seen.len() > before {
            let r: &Record = &seen[before];
            if r.key.as_deref() == Some(marker.as_bytes()) {
                ended.insert(r.partition);
            }
        }
    }
    seen.retain(|r| {
        !r.key
            .as_deref()
            .is_some_and(|k| k.starts_with(END_MARKER_PREFIX.as_bytes()))
    });
    seen.sort_by_key(|r| (r.partition, r.offset));
    seen
}

/// A budget snapshot the job wrote, with its headers' input position.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub agent: String,
    pub position: i64,
    pub partition: i32,
    pub offset: i64,
    pub json: Value,
}

/// The snapshots among the records of the snapshots topic. Restore markers
/// are skipped (after checking they look like markers). Every other record
/// must be a snapshot with both headers: a problem is reported otherwise.
pub fn snapshots(records: &[Record], problems: &mut Vec<String>) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for r in records {
        let key = r.key_str();
        if key.starts_with(RESTORE_MARKER_PREFIX) {
            if r.payload.is_some() || r.header(RESTORE_MARKER_HEADER).is_none() {
                problems.push(format!(
                    "restore marker {key} at {}:{} has a payload or lacks the {RESTORE_MARKER_HEADER} header",
                    r.partition, r.offset
                ));
            }
            continue;
        }
        let position = r
            .header(POSITION_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.parse::<i64>().ok());
        let (Some(position), Some(_)) = (position, r.header(STATE_HEADER)) else {
            problems.push(format!(
                "snapshot of {key} at {}:{} lacks a {POSITION_HEADER} or {STATE_HEADER} header",
                r.partition, r.offset
            ));
            continue;
        };
        let json: Value = match serde_json::from_slice(r.payload.as_deref().unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "snapshot at {}:{} is no JSON: {e}",
                    r.partition, r.offset
                ));
                continue;
            }
        };
        if json["agent_id"] != key {
            problems.push(format!(
                "snapshot keyed {key} at {}:{} is of {}",
                r.partition, r.offset, json["agent_id"]
            ));
        }
        out.push(Snapshot {
            agent: key.to_string(),
            position,
            partition: r.partition,
            offset: r.offset,
            json,
        });
    }
    out
}

/// Per agent, the snapshot with the highest input position; among equal
/// positions the one written last (a status-change snapshot written in the
/// middle of a batch carries the position of the whole batch; the
/// checkpoint's snapshot after it shows the state at that position).
pub fn latest_by_position(snaps: &[Snapshot]) -> BTreeMap<String, Snapshot> {
    let mut latest: BTreeMap<String, Snapshot> = BTreeMap::new();
    for s in snaps {
        let newer = latest
            .get(&s.agent)
            .is_none_or(|l| (s.position, s.offset) > (l.position, l.offset));
        if newer {
            latest.insert(s.agent.clone(), s.clone());
        }
    }
    latest
}

/// Follows the snapshots topic while the job runs: the highest input
/// position seen per agent.
pub struct SnapshotWatch {
    consumer: harness::TestConsumer,
    seen: Vec<Record>,
    pub positions: BTreeMap<String, i64>,
    /// Snapshot records seen (markers excluded).
    pub count: usize,
    /// `(agent, partition)` of every snapshot seen.
    pub partitions: BTreeSet<(String, i32)>,
    /// Snapshots seen per producing instance (its `breakwater.instance`
    /// header: host and pid).
    pub by_instance: BTreeMap<String, usize>,
}

impl SnapshotWatch {
    pub fn new(bootstrap: &str) -> SnapshotWatch {
        SnapshotWatch {
            consumer: assigned(bootstrap, SNAPSHOTS),
            seen: Vec::new(),
            positions: BTreeMap::new(),
            count: 0,
            partitions: BTreeSet::new(),
            by_instance: BTreeMap::new(),
        }
    }

    /// Takes what has arrived (polls at most ~100 ms).
    pub fn poll(&mut self) {
        poll_into(&self.consumer, &mut self.seen);
        for r in self.seen.drain(..) {
            let key = r.key_str().to_string();
            if key.starts_with(RESTORE_MARKER_PREFIX) || key.starts_with(END_MARKER_PREFIX) {
                continue;
            }
            self.count += 1;
            self.partitions.insert((key.clone(), r.partition));
            if let Some(i) = r.header(INSTANCE_HEADER) {
                *self
                    .by_instance
                    .entry(String::from_utf8_lossy(i).into_owned())
                    .or_default() += 1;
            }
            let position = r
                .header(POSITION_HEADER)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.parse::<i64>().ok());
            if let Some(p) = position {
                let e = self.positions.entry(key).or_insert(p);
                *e = (*e).max(p);
            }
        }
    }

    /// Snapshots seen from the process `instance` (by its pid).
    pub fn from(&self, instance: &Instance) -> usize {
        self.count_from_pid(instance.pid())
    }

    /// Snapshots seen from the process with id `pid`.
    pub fn count_from_pid(&self, pid: u32) -> usize {
        let suffix = format!("-{pid}");
        self.by_instance
            .iter()
            .filter(|(k, _)| k.ends_with(&suffix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Waits until `instance` has written a snapshot; panics if it exits
    /// first, or after `timeout`.
    pub fn wait_from(&mut self, instance: &mut Instance, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.from(instance) == 0 {
            instance.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} wrote no snapshot within {timeout:?}\n{}",
                instance.name,
                instance.log_tail(40)
            );
            self.poll();
        }
    }

    /// Polls for about `d`.
    pub fn poll_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.poll();
        }
    }

    /// Waits until every agent has a snapshot at (or past) its last input
    /// offset: the running `instances` have processed all the input. Fails
    /// at once if one of them exits, and at [`CATCH_UP_TIMEOUT`] with their
    /// logs.
    pub fn wait_caught_up(
        &mut self,
        last: &BTreeMap<String, i64>,
        instances: &mut [&mut Instance],
    ) {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let behind: Vec<_> = last
                .iter()
                .filter(|(a, o)| self.positions.get(*a).is_none_or(|p| p < o))
                .collect();
            if behind.is_empty() {
                return;
            }
            for i in instances.iter_mut() {
                i.assert_running();
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = instances.iter().map(|i| i.log_tail(40)).collect();
                panic!(
                    "after {CATCH_UP_TIMEOUT:?}, {} agents have no snapshot at their last input offset, e.g. {:?} (latest snapshot positions: {:?})\n{}",
                    behind.len(),
                    &behind[..behind.len().min(5)],
                    behind
                        .iter()
                        .take(5)
                        .map(|(a, _)| self.positions.get(*a))
                        .collect::<Vec<_>>(),
                    logs.join("\n")
                );
            }
            self.poll();
        }
    }
}

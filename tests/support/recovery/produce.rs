//! Producing the planned events to the partitions the test chose, at once or continuously.

#[allow(unused_imports)]
use super::*;

/// Counts acknowledgements and keeps delivery errors.
#[derive(Clone, Default)]
pub struct Acks {
    pub(crate) delivered: Arc<AtomicUsize>,
    pub(crate) errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Acks {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        TestContext.log(level, facility, message);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, m)) => self
                .errors
                .lock()
                .unwrap()
                .push(format!("partition {}: {e}", m.partition())),
        }
    }
}

/// An idempotent producer writing [`Planned`] events to their partitions
/// of the events topic, in order.
pub struct PartitionProducer {
    producer: BaseProducer<Acks>,
    acks: Acks,
    sent: usize,
}

impl PartitionProducer {
    pub fn new(bootstrap: &str) -> PartitionProducer {
        let acks = Acks::default();
        let producer = harness::client_config(bootstrap)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create_with_context(acks.clone())
            .expect("producer");
        PartitionProducer {
            producer,
            acks,
            sent: 0,
        }
    }

    /// Sends `events` and waits until every one is acknowledged.
    pub fn send(&mut self, events: &[Planned]) {
        for e in events {
            let mut record = BaseRecord::to(EVENTS)
                .partition(e.partition)
                .key(e.agent.as_bytes())
                .payload(e.json.as_bytes());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(20));
                    }
                    Err((e, _)) => panic!("produce to {EVENTS}: {e}"),
                }
            }
            self.sent += 1;
            self.producer.poll(Duration::ZERO);
        }
        self.producer
            .flush(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("flush to {EVENTS}: {e}"));
        let errors = self.acks.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "produce errors: {:?}",
            &errors[..errors.len().min(5)]
        );
        let delivered = self.acks.delivered.load(Ordering::SeqCst);
        assert_eq!(
            delivered, self.sent,
            "delivered {delivered} of {} events",
            self.sent
        );
    }
}

/// Produces `events` to their partitions at once (acknowledged on return).
pub fn produce_planned(bootstrap: &str, events: &[Planned]) {
    PartitionProducer::new(bootstrap).send(events)
}

/// A thread producing a list of events in chunks, with a pause after each,
/// until the list ends or it is stopped.
pub struct ContinuousProducer {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl ContinuousProducer {
    pub fn start(
        bootstrap: &str,
        events: Vec<Planned>,
        chunk: usize,
        pause: Duration,
    ) -> ContinuousProducer {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicUsize::new(0));
        let (s, p, b) = (stop.clone(), produced.clone(), bootstrap.to_string());
        let handle = std::thread::spawn(move || {
            let mut producer = PartitionProducer::new(&b);
            for c in events.chunks(chunk) {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                producer.send(c);
                p.fetch_add(c.len(), Ordering::SeqCst);
                std::thread::sleep(pause);
            }
        });
        ContinuousProducer {
            stop,
            produced,
            handle: Some(handle),
        }
    }

    /// Events produced and acknowledged so far.
    pub fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events are produced.
    pub fn wait_produced(&self, n: usize) {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        while self.produced() < n {
            assert!(
                !self.handle.as_ref().unwrap().is_finished() || self.produced() >= n,
                "the producer stopped after {} events, short of {n}",
                self.produced()
            );
            assert!(
                Instant::now() < deadline,
                "produced {} of {n}",
                self.produced()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the whole list has been produced.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops after the current chunk; returns how many events were produced
    /// (a prefix of the list). Propagates a panic of the producer thread.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.produced()
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads the events topic back and returns the offset of every planned
/// event (same index), after checking that each landed once, in its
/// planned partition, and that each partition holds its events in the
/// planned order — the order the oracle replays them in.
pub fn offsets_of(bootstrap: &str, events: &[Planned]) -> Vec<i64> {
    let consumer = assigned(bootstrap, EVENTS);
    let mut seen = Vec::new();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while seen.len() < events.len() {
        assert!(
            Instant::now() < deadline,
            "read back {} of {} events",
            seen.len(),
            events.len()
        );
        poll_into(&consumer, &mut seen);
    }
    let mut at: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for r in &seen {
        let v: Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default())
            .expect("an event we produced");
        let id = v["event_id"].as_str().expect("event_id").to_string();
        at.entry(id).or_default().push((r.partition, r.offset));
    }
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    events
        .iter()
        .map(|e| {
            let places = at.get(&e.id).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(
                places.len(),
                1,
                "event {} is on the topic at {places:?}",
                e.id
            );
            let (partition, offset) = places[0];
            assert_eq!(
                partition, e.partition,
                "event {} in the wrong partition",
                e.id
            );
            let prev = last.insert(partition, offset);
            assert!(
                prev.is_none_or(|p| p < offset),
                "event {} at offset {offset} of partition {partition}, after offset {prev:?}",
                e.id
            );
            offset
        })
        .collect()
}

/// Each agent's last input offset, from [`offsets_of`].
pub fn last_offsets(events: &[Planned], offsets: &[i64]) -> BTreeMap<String, i64> {
    let mut last = BTreeMap::new();
    for (e, &o) in events.iter().zip(offsets) {
        last.insert(e.agent.clone(), o);
    }
    last
}

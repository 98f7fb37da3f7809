//! A real Kafka-compatible broker for integration tests, and rdkafka helpers.
//!
//! [`Broker::start`] runs a private Tansu broker (memory storage) on a free
//! loopback port and stops it on drop; every test gets its own. The binary is
//! `$TANSU_BIN`, else the one `deploy/tansu/install.sh` puts in
//! `${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}/tansu-0.6.0/tansu`; when
//! neither exists the script is run, once for all tests and processes.
//!
//! The produce/consume helpers take bootstrap servers, so they serve Tansu
//! and librdkafka's in-process [`MockCluster`] (see [`mock_cluster`]) alike.
//!
//! Tansu's quirks these helpers account for (see shared/kafka/NOTES.md):
//! it holds each JoinGroup for about half of `session.timeout.ms`, so
//! consumers here use 2000 ms (6000 ms on the mock, which needs more than
//! 3000: see [`consumer_config`]); it reports stale high watermarks, so
//! consumption counts records rather than reading to the end; producing to an
//! unknown topic auto-creates it with 4 partitions, so create topics first.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Headers, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, Producer, ProducerContext,
};
use rdkafka::{ClientConfig, ClientContext, Message};

/// The Tansu version `deploy/tansu/install.sh` installs.
pub const TANSU_VERSION: &str = "0.6.0";

/// How long a broker may take to accept connections and answer metadata.
/// It usually takes ~20 ms; the bound is for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker may take to exit after SIGTERM (Tansu takes 1–2 s)
/// before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bound on one metadata, admin or flush call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One record as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).expect("key is UTF-8")
    }

    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(self.payload.as_deref().unwrap_or_default()).expect("payload is UTF-8")
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A Tansu broker process on 127.0.0.1, with memory storage. Stopped on drop.
pub struct Broker {
    child: Option<Child>,
    bootstrap: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free port and returns once it accepts TCP
    /// connections and answers a metadata request as the broker it is (its
    /// own cluster id, advertising its own port). Panics if it can't.
    pub fn start() -> Broker {
        let bin = tansu_bin();
        let mut failures = Vec::new();
        // A port picked free can be taken before Tansu binds it (Tansu then
        // exits): try another.
        for _ in 0..3 {
            match Broker::try_start(&bin) {
                Ok(broker) => return broker,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "Tansu ({}) did not start:\n{}",
            bin.display(),
            failures.join("\n---\n")
        );
    }

    fn try_start(bin: &Path) -> Result<Broker, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let cluster_id = format!(
            "breakwater-test-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let log = dir.path().join("tansu.log");
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .arg("broker")
            .args(["--listener-url", &url])
            // Without it Tansu sends clients to localhost:9092.
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .args(["--cluster-id", &cluster_id])
            // Tansu reads its options from these too: the arguments win,
            // but an inherited OTLP endpoint would be exported to.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut broker = Broker {
            child: Some(child),
            bootstrap: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        // On error the broker is dropped here, which stops the process.
        broker.wait_ready(port, &cluster_id)?;
        Ok(broker)
    }

    /// Polls until the broker serves, the process exits, or the deadline.
    fn wait_ready(&mut self, port: u16, cluster_id: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut client: Option<BaseProducer<TestContext>> = None;
        let mut last = String::from("no TCP connection yet");
        loop {
            if let Some(status) = self.child_status() {
                return Err(format!(
                    "Tansu exited ({status}) before serving:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "Tansu did not serve within {START_TIMEOUT:?} ({last}):\n{}",
                    self.log_tail()
                ));
            }
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Err(e) => last = format!("TCP connect: {e}"),
                Ok(_) => {
                    let client = match &client {
                        Some(client) => client,
                        None => client.insert(
                            client_config(&self.bootstrap)
                                .create_with_context(TestContext)
                                .map_err(|e| format!("rdkafka client: {e}"))?,
                        ),
                    };
                    match check_metadata(client, port, cluster_id) {
                        // Still ours, and still running?
                        Ok(()) if self.child_status().is_none() => return Ok(()),
                        Ok(()) => {}
                        Err(e) => last = e,
                    }
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// The broker's stdout and stderr, for a failing test's message.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates a topic with `partitions` partitions (replication 1), and
    /// waits until its metadata shows every partition with a leader.
    /// `compacted` sets `cleanup.policy=compact` (Tansu accepts it but never
    /// compacts).
    pub fn create_topic(&self, name: &str, partitions: i32, compacted: bool) {
        let admin: AdminClient<TestContext> = client_config(&self.bootstrap)
            .create_with_context(TestContext)
            .expect("admin client");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        if compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let options = AdminOptions::new()
            .request_timeout(Some(CALL_TIMEOUT))
            .operation_timeout(Some(CALL_TIMEOUT));
        let results = block_on(admin.create_topics([&topic], &options))
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("create topic {topic}: {code}");
            }
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let metadata = admin.inner().fetch_metadata(Some(name), CALL_TIMEOUT);
            let ready = metadata.as_ref().is_ok_and(|m| {
                m.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0)
                })
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} has no {partitions} led partitions in metadata after {CALL_TIMEOUT:?}: {:?}",
                metadata.map(|m| m
                    .topics()
                    .iter()
                    .map(|t| (t.name().to_owned(), t.partitions().len(), t.error()))
                    .collect::<Vec<_>>())
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// See [`produce`].
    pub fn produce<K: AsRef<[u8]>, P: AsRef<[u8]>>(&self, topic: &str, records: &[(K, P)]) {
        produce(&self.bootstrap, topic, records)
    }

    /// See [`consume`].
    pub fn consume(&self, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
        consume(&self.bootstrap, topic, n, timeout)
    }

    fn child_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }
}

impl Drop for Broker {
    /// SIGTERM, then SIGKILL if the broker has not exited within
    /// [`STOP_GRACE`]; SIGKILL at once when the test is panicking (unwinding
    /// runs this too). A test process killed outright leaves the broker
    /// running (no PR_SET_PDEATHSIG without libc); Ctrl-C reaches it as part
    /// of the terminal's process group.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if !thread::panicking() {
            // The shell's builtin: no libc in this crate, no procps needed.
            let terminated = Command::new("sh")
                .args(["-c", "kill -TERM \"$1\"", "sh", &child.id().to_string()])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + STOP_GRACE;
            while terminated && Instant::now() < deadline {
                match child.try_wait() {
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                    _ => return,
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// librdkafka's in-process mock cluster with `brokers` brokers, and its
/// bootstrap servers. For fault injection (`request_errors`, `broker_down`,
/// `broker_round_trip_time`, ...). Topics are made with its `create_topic`
/// (the admin API is not supported by the mock). Consumer groups on it need
/// `session.timeout.ms` above 3000: [`consumer_config`] sees to that.
pub fn mock_cluster(brokers: i32) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(brokers).expect("mock cluster");
    let bootstrap = cluster.bootstrap_servers();
    mock_bootstraps().lock().unwrap().push(bootstrap.clone());
    (cluster, bootstrap)
}

fn mock_bootstraps() -> &'static Mutex<Vec<String>> {
    static MOCKS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    MOCKS.get_or_init(Mutex::default)
}

/// Whether `bootstrap` is a [`mock_cluster`]'s.
pub fn is_mock(bootstrap: &str) -> bool {
    mock_bootstraps()
        .lock()
        .unwrap()
        .iter()
        .any(|b| b == bootstrap)
}

/// The path of the Tansu binary, installing it (once, under a lock) when
/// `$TANSU_BIN` is unset and the tools cache lacks it.
pub fn tansu_bin() -> PathBuf {
    if let Some(bin) = env::var_os("TANSU_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "TANSU_BIN={} is not a file", bin.display());
        return bin;
    }
    let tools = tools_dir();
    let bin = tools.join(format!("tansu-{TANSU_VERSION}")).join("tansu");
    if bin.is_file() {
        return bin;
    }
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install(&tools, &bin))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn tools_dir() -> PathBuf {
    match env::var_os("BREAKWATER_TOOLS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = env::var_os("HOME").expect("HOME or BREAKWATER_TOOLS must be set");
            PathBuf::from(home).join(".cache").join("breakwater")
        }
    }
}

/// Runs deploy/tansu/install.sh under an exclusive file lock, so that test
/// processes running at once (e.g. under nextest) install it once.
fn install(tools: &Path, bin: &Path) -> Result<PathBuf, String> {
    fs::create_dir_all(tools).map_err(|e| format!("{}: {e}", tools.display()))?;
    let lock_path = tools.join(".tansu-install.lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if bin.is_file() {
        return Ok(bin.to_owned());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tansu/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("BREAKWATER_TOOLS", tools)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); install Tansu with it or set TANSU_BIN",
            script.display(),
            out.status
        ));
    }
    let printed = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if printed.is_file() {
        Ok(printed)
    } else {
        Err(format!(
            "{} printed {printed:?}, which is no file",
            script.display()
        ))
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn check_metadata(
    client: &BaseProducer<TestContext>,
    port: u16,
    cluster_id: &str,
) -> Result<(), String> {
    let metadata = client
        .client()
        .fetch_metadata(None, Duration::from_secs(2))
        .map_err(|e| format!("metadata: {e}"))?;
    let advertised: Vec<_> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    if advertised != [format!("127.0.0.1:{port}")] {
        return Err(format!(
            "metadata advertises {advertised:?}, not 127.0.0.1:{port}"
        ));
    }
    match client.client().fetch_cluster_id(Duration::from_secs(2)) {
        Some(id) if id == cluster_id => Ok(()),
        other => Err(format!(
            "cluster id {other:?}, expected {cluster_id}: another process's broker?"
        )),
    }
}

/// `bootstrap.servers`, and librdkafka's `debug` contexts from
/// `$BREAKWATER_KAFKA_DEBUG` (e.g. `cgrp,fetch`) to diagnose a test (its log
/// reaches stderr through [`TestContext`]).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    // Without a `log` logger rdkafka passes on errors only.
    config.set_log_level(RDKafkaLogLevel::Warning);
    if let Some(debug) = env::var("BREAKWATER_KAFKA_DEBUG")
        .ok()
        .filter(|d| !d.is_empty())
    {
        config
            .set("debug", debug)
            .set_log_level(RDKafkaLogLevel::Debug);
    }
    config
}

/// A consumer's settings: group `group`, from the earliest offset when the
/// group has none, no auto commit, heartbeats every 500 ms, and a session
/// timeout that suits the broker:
/// - Tansu: 2000 ms. Tansu holds each JoinGroup for about half the session
///   timeout (~22 s with librdkafka's default of 45 s).
/// - a [`mock_cluster`] (recognised by its bootstrap servers): 6000 ms. The
///   mock holds a new group's first join for 3 s (its initial rebalance
///   delay) and a member whose session is shorter never joins.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let session_timeout_ms = if is_mock(bootstrap) { "6000" } else { "2000" };
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", session_timeout_ms)
        .set("heartbeat.interval.ms", "500");
    config
}

/// The helpers' clients' context: librdkafka's log lines (warnings and
/// errors, or the `$BREAKWATER_KAFKA_DEBUG` contexts) go to stderr, which
/// the test harness shows for a failing test.
#[derive(Clone, Copy, Default)]
pub struct TestContext;

impl ClientContext for TestContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        eprintln!("rdkafka {level:?} {facility}: {message}");
    }
}

impl ConsumerContext for TestContext {}

impl ProducerContext for TestContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

pub type TestConsumer = BaseConsumer<TestContext>;

/// A consumer in `group`, subscribed to `topic`.
pub fn subscribed(bootstrap: &str, group: &str, topic: &str) -> TestConsumer {
    let consumer: TestConsumer = consumer_config(bootstrap, group)
        .create_with_context(TestContext)
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// A group id no other consumer in this process uses.
pub fn unique_group(prefix: &str) -> String {
    static GROUPS: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        GROUPS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `consumer` until it has returned `n` records; panics at `timeout`
/// with what it got, or on a consumer error. Records come in poll order,
/// which is offset order within a partition.
pub fn poll_records<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    n: usize,
    timeout: Duration,
) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    let mut records = Vec::with_capacity(n);
    while records.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {n} records within {timeout:?}; last: {:?}",
            records.len(),
            records.last()
        );
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            Some(Ok(message)) => records.push(Record {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                partition: message.partition(),
                offset: message.offset(),
            }),
            Some(Err(e)) => panic!("consumer error after {} records: {e}", records.len()),
        }
    }
    records
}

/// The first `n` records of `topic`, read from the beginning by a consumer
/// in a fresh group; panics at `timeout`. (It returns once it has `n`: it
/// does not prove there are no more.)
pub fn consume(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
    let consumer = subscribed(bootstrap, &unique_group("consume"), topic);
    poll_records(&consumer, n, timeout)
}

/// Produces `(key, payload)` records in order and waits until every one is
/// delivered (acknowledged by all in-sync replicas); panics otherwise.
pub fn produce<K: AsRef<[u8]>, P: AsRef<[u8]>>(bootstrap: &str, topic: &str, records: &[(K, P)]) {
    produce_with_headers(
        bootstrap,
        topic,
        records
            .iter()
            .map(|(k, p)| (k.as_ref(), p.as_ref(), OwnedHeaders::new())),
    )
}

/// Like [`produce`], each record with its headers.
pub fn produce_with_headers<'a>(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (&'a [u8], &'a [u8], OwnedHeaders)>,
) {
    let context = Deliveries::default();
    // Idempotent: retries keep each partition's order and add no duplicates.
    let producer: BaseProducer<Deliveries> = client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create_with_context(context.clone())
        .expect("producer");
    let mut sent = 0usize;
    for (key, payload, headers) in records {
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("flush to {topic}: {e}"));
    let errors = context.errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {sent} records to {topic} failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let delivered = context.delivered.load(Ordering::SeqCst);
    assert_eq!(
        delivered, sent,
        "delivered {delivered} of {sent} records to {topic}"
    );
}

/// Counts deliveries and keeps delivery errors.
#[derive(Clone, Default)]
struct Deliveries {
    delivered: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        TestContext.log(level, facility, message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, message)) => self
                .errors
                .lock()
                .unwrap()
                .push(format!("partition {}: {e}", message.partition())),
        }
    }
}

/// Runs a future to completion on this thread. rdkafka's admin futures are
/// completed by rdkafka's own threads, so no async runtime is needed.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

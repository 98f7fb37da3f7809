//! `breakwater run` under network faults, on librdkafka's in-process mock
//! cluster (see `support::kafka::mock_cluster`): brokers going down and
//! coming back, requests failing, slow round trips. In each, the job must
//! retry, lose nothing, count every event once, commit exactly the input it
//! has handled, and report the problem in its status and metrics.
//!
//! Each test gets its own mock cluster, with the job's seven topics made on
//! it beforehand (the mock serves no admin API), and runs the job
//! in-process. A mock consumer group's first join takes 3 s (its initial
//! rebalance delay), so every test takes at least that.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use breakwater::config::KafkaSettings;
use breakwater::kafka::topics::ensure_topics;
use breakwater::kafka::{JobError, JobStatus, JobSummary};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use rdkafka::admin::AdminClient;
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::job::{
    committed_and_end, event, job_settings, json_of, now_ms, read_topic, RunningJob, Watch,
};
use support::kafka::{self as harness, Record};

/// Partitions of every topic in these tests.
const PARTITIONS: i32 = 3;

type Mock = MockCluster<'static, DefaultProducerContext>;

/// A mock cluster of `brokers` brokers with the job's seven topics (default
/// names), and its bootstrap servers.
fn cluster_with_topics(brokers: i32) -> (Mock, String) {
    let (cluster, bootstrap) = harness::mock_cluster(brokers);
    for (name, _) in default_settings(&bootstrap).topics.all() {
        cluster
            .create_topic(name, PARTITIONS, 1)
            .unwrap_or_else(|e| panic!("create {name} on the mock: {e}"));
    }
    (cluster, bootstrap)
}

fn default_settings(bootstrap: &str) -> KafkaSettings {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&format!("brokers: \"{bootstrap}\"")).unwrap();
    KafkaSettings::from_section(Some(&yaml), Vec::new()).unwrap()
}

/// `per_agent` SUCCESS events for each of `agents`, ids prefixed `tag`.
fn successes(tag: &str, agents: &[&str], per_agent: usize) -> Vec<(String, String)> {
    let t = now_ms();
    (0..per_agent)
        .flat_map(|i| {
            agents
                .iter()
                .map(move |a| event(&format!("{tag}-{a}-{i}"), a, t + i as i64, "SUCCESS"))
        })
        .collect()
}

/// What must hold once the job has stopped, whatever the faults were:
/// - every event was counted once: `summary.events` is the number produced
///   (the engine drops re-delivered ones by event id), and each agent's
///   latest budget snapshot covers exactly the events produced for it, none
///   more at any time;
/// - the group's committed offsets are the end offsets of the input: all of
///   it was handled and nothing is left to re-read.
fn assert_all_counted_once(
    bootstrap: &str,
    summary: &JobSummary,
    settings: &KafkaSettings,
    produced: &BTreeMap<&str, u64>,
) {
    let total: u64 = produced.values().sum();
    assert_eq!(summary.events, total, "{summary:?}");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");

    let snapshots = read_topic(bootstrap, &settings.topics.snapshots);
    let mut latest: HashMap<String, u64> = HashMap::new();
    // Tombstones are restore markers (see kafka/restore.rs), not snapshots.
    for r in snapshots.iter().filter(|r| r.payload.is_some()) {
        let s = json_of(r);
        let tasks = s["tasks"].as_u64().expect("tasks");
        let agent = r.key_str().to_string();
        let expected = produced.get(agent.as_str()).copied();
        assert!(
            expected.is_some_and(|n| tasks <= n),
            "snapshot of {agent} with {tasks} tasks; produced {expected:?}"
        );
        latest.insert(agent, tasks);
    }
    for (agent, n) in produced {
        assert_eq!(
            latest.get(*agent),
            Some(n),
            "the latest snapshot of {agent} covers all its events"
        );
    }

    for (p, committed, end) in
        committed_and_end(bootstrap, &settings.group_id, &settings.topics.events)
    {
        assert_eq!(
            committed.unwrap_or(0),
            end,
            "partition {p}: the group committed everything it read"
        );
    }
}

/// Breaker transitions on the breaker topic, as `(agent, state, reason)`.
fn transitions(records: &[Record]) -> Vec<(String, String, String)> {
    records
        .iter()
        .map(|r| {
            let t = json_of(r);
            (
                r.key_str().to_string(),
                t["state"].as_str().unwrap().to_string(),
                t["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// --- metrics: a recorder for this test binary ------------------------------

/// Counters by name (labels summed), installed once as the global
/// `metrics` recorder of this test binary. Tests run in parallel in one
/// process, so a test only asserts that a counter grew.
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

struct CountingRecorder(&'static Counters);

impl Recorder for CountingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.0 .0.lock().unwrap();
        Counter::from_arc(map.entry(key.name().to_string()).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<&'static Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        // The job's log, for a failing test: `RUST_LOG=info cargo test ...`.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_test_writer()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .try_init();
        }
        let c: &'static Counters = Box::leak(Box::default());
        metrics::set_global_recorder(CountingRecorder(c))
            .expect("no other metrics recorder in this test binary");
        c
    })
}

/// The value of counter `name`, summed over its labels.
fn counter(name: &str) -> u64 {
    counters()
        .0
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

// --- the tests ---------------------------------------------------------------

/// The mock serves no admin API (its metadata names controller 0, none of
/// its brokers): the job uses the topics that exist, with a warning that
/// their configs were not checked, and refuses to start, naming the topic,
/// when one is missing — at once, not after an admin request's time-out.
#[test]
fn start_up_on_a_cluster_without_the_admin_api() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let settings = default_settings(&bootstrap);
    let admin: AdminClient<harness::TestContext> = harness::client_config(&bootstrap)
        .create_with_context(harness::TestContext)
        .expect("admin client");
    let report = ensure_topics(&admin, &settings).expect("all topics exist");
    assert!(report.created.is_empty(), "{report:?}");
    assert_eq!(report.existing.len(), 7, "{report:?}");
    assert!(
        report.warnings.iter().any(|w| w.contains("not checked")),
        "{report:?}"
    );
    drop(cluster);

    let (cluster, bootstrap) = harness::mock_cluster(1);
    let mut settings = default_settings(&bootstrap);
    settings.topics.alerts = "not.made".into();
    for (name, _) in settings.topics.all() {
        if name != "not.made" {
            cluster.create_topic(name, PARTITIONS, 1).unwrap();
        }
    }
    let admin: AdminClient<harness::TestContext> = harness::client_config(&bootstrap)
        .create_with_context(harness::TestContext)
        .expect("admin client");
    let started = Instant::now();
    match ensure_topics(&admin, &settings) {
        Err(JobError::Topic { topic, reason }) => {
            assert_eq!(topic, "not.made");
            assert!(reason.contains("cannot be created"), "{reason}");
        }
        other => panic!("expected a topic error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The only broker goes down for 2 s and comes back. Events produced
/// meanwhile wait in the test's producer; the job's clients lose their
/// connections, report it, reconnect, and the job carries on.
#[test]
fn every_broker_down_then_up() {
    counters();
    let client_errors_before = counter("breakwater_kafka_client_errors_total");
    let (cluster, bootstrap) = cluster_with_topics(1);
    let mut settings = job_settings(&bootstrap, "");
    // librdkafka backs off reconnecting up to 10 s (reconnect.backoff.max.ms),
    // so even a 2 s outage can keep the group coordinator unreachable for
    // longer than the 6 s session the other mock tests use; the member then
    // loses its partitions (see `an_outage_longer_than_the_session_...`).
    // 15 s rides that out, as production's default of 45 s would.
    settings
        .consumer_properties
        .insert("session.timeout.ms".into(), "15000".into());
    let job = RunningJob::start_settings(settings, "defaults: {breaker: {min_calls: 1000000}}");
    let topic = job.settings.topics.events.clone();
    let agents = ["agent-a", "agent-b", "agent-c"];
    harness::produce(&bootstrap, &topic, &successes("before", &agents, 10));
    job.wait_until("the first 30 events counted", |s| {
        JobStatus::get(&s.events) == 30
    });

    cluster.broker_down(-1).unwrap();
    let (b, t) = (bootstrap.clone(), topic.clone());
    let producer = std::thread::spawn(move || {
        harness::produce(&b, &t, &successes("during", &agents, 10));
    });
    // The outage: long enough for every client of the job to lose its
    // connections and report it.
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_up(-1).unwrap();
    producer
        .join()
        .expect("the events produced during the outage");

    job.wait_until("all 60 events counted", |s| JobStatus::get(&s.events) == 60);
    job.wait_until("the outage reported", |s| {
        JobStatus::get(&s.client_errors) > 0
    });
    let settings = job.settings.clone();
    let summary = job.stop();
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &agents.iter().map(|a| (*a, 20)).collect(),
    );
    assert!(
        counter("breakwater_kafka_client_errors_total") > client_errors_before,
        "breakwater_kafka_client_errors_total counted the outage"
    );
}

/// The broker that leads the output topics goes down for ~3 s while the
/// broker of the input and of the group stays up. The job reads a burst
/// that opens a breaker: it commits nothing until the transition is
/// acknowledged (it reads on meanwhile, see
/// `a_checkpoint_waiting_for_acks_holds_the_commit_not_the_input`). Its
/// producer gives up on the record after `message.timeout.ms` (1.5 s here);
/// the job sends it again until the broker is back, and counts it. The
/// transition is then on its topic exactly once. (Whether librdkafka also
/// reports the lost connection through its error callback depends on the
/// moment: the delivery failures are the report asserted here.)
#[test]
fn the_output_broker_down_holds_the_commit_until_outputs_are_acked() {
    counters();
    let failures_before = counter("breakwater_output_delivery_failures_total");
    let (cluster, bootstrap, job) = steady_job_with_outputs_on_broker_2("1500");
    let topic = job.settings.topics.events.clone();
    job.wait_until("10 events counted and committed", |s| {
        JobStatus::get(&s.events) == 10 && JobStatus::get(&s.commits) > 0
    });
    // The job is idle once steady's snapshot is on its topic.
    Watch::new(&bootstrap, &job.settings.topics.snapshots)
        .until("steady's snapshot", |rs| !rs.is_empty());

    cluster.broker_down(2).unwrap();
    let outputs = JobStatus::get(&job.status().outputs);
    let t0 = now_ms();
    let burst: Vec<_> = (0..12)
        .map(|i| event(&format!("f{i}"), "flaky", t0 + i, "FAILURE"))
        .collect();
    harness::produce(&bootstrap, &topic, &burst);
    job.wait_until("the breaker's transition sent", |s| {
        JobStatus::get(&s.outputs) > outputs
    });
    // The transition waits for broker 2, and so does the commit of the
    // batch that caused it. Broker 2 stays down until the producer gives
    // up on the transition (after 1.5 s): nothing is committed till then.
    let commits = JobStatus::get(&job.status().commits);
    harness::produce(&bootstrap, &topic, &successes("held", &["steady"], 5));
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter("breakwater_output_delivery_failures_total") == failures_before {
        assert!(
            Instant::now() < deadline,
            "the producer never gave up on the transition"
        );
        assert_eq!(
            JobStatus::get(&job.status().commits),
            commits,
            "committed before the outputs were acknowledged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        JobStatus::get(&job.status().commits),
        commits,
        "committed before the outputs were acknowledged"
    );
    cluster.broker_up(2).unwrap();
    job.wait_until("everything counted and committed", |s| {
        JobStatus::get(&s.events) == 27 && JobStatus::get(&s.commits) > commits
    });

    let settings = job.settings.clone();
    let summary = job.stop();
    let breaker = read_topic(&bootstrap, &settings.topics.breaker_state);
    assert_eq!(
        transitions(&breaker),
        [("flaky".into(), "OPEN".into(), "FAILURE_RATE".into())]
    );
    assert_eq!(json_of(&breaker[0])["window_tasks"], 10);
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("steady", 15), ("flaky", 12)].into_iter().collect(),
    );
    assert!(
        counter("breakwater_output_delivery_failures_total") > failures_before,
        "the records the producer gave up on were counted"
    );
}

/// A job on a two-broker mock cluster with its outputs on broker 2 (see
/// [`outputs_on_broker_2`]), a producer giving up after
/// `message_timeout_ms`, a breaker that opens at 50 % failures of 10
/// tasks, and 10 successes of agent `steady` produced to its input.
fn steady_job_with_outputs_on_broker_2(message_timeout_ms: &str) -> (Mock, String, RunningJob) {
    let (cluster, bootstrap) = cluster_with_topics(2);
    let mut settings = job_settings(&bootstrap, "");
    settings
        .producer_properties
        .insert("message.timeout.ms".into(), message_timeout_ms.into());
    outputs_on_broker_2(&cluster, &settings);
    let job = RunningJob::start_settings(
        settings,
        "defaults: {breaker: {min_calls: 10, failure_threshold: 0.5, cooldown_seconds: 600}}",
    );
    let topic = &job.settings.topics.events;
    harness::produce(&bootstrap, topic, &successes("before", &["steady"], 10));
    (cluster, bootstrap, job)
}

/// Broker 1 leads the input and the group, broker 2 every output topic.
fn outputs_on_broker_2(cluster: &Mock, settings: &KafkaSettings) {
    let t = &settings.topics;
    for p in 0..PARTITIONS {
        for topic in [&t.events, &t.declarations, &t.commands] {
            cluster.partition_leader(topic, p, Some(1)).unwrap();
        }
        for topic in [&t.breaker_state, &t.alerts, &t.snapshots, &t.dead_letter] {
            cluster.partition_leader(topic, p, Some(2)).unwrap();
        }
    }
    cluster
        .coordinator(MockCoordinator::Group(settings.group_id.clone()), 1)
        .unwrap();
}

/// The periodic checkpoint does not stop the job to wait for the broker's
/// acknowledgements. With the broker of the output topics down, a burst
/// opens `first`'s breaker; the checkpoints that follow (every second)
/// cannot commit while its transition is unacknowledged, and the job reads
/// on meanwhile: a second burst opens `second`'s breaker and its transition
/// is sent. Nothing is committed until broker 2 is back and every output is
/// acknowledged; then the input is committed to its end, each transition is
/// on its topic once and every event was counted once.
#[test]
fn a_checkpoint_waiting_for_acks_holds_the_commit_not_the_input() {
    counters();
    let (cluster, bootstrap, job) = steady_job_with_outputs_on_broker_2("1000");
    let topic = job.settings.topics.events.clone();
    job.wait_until("10 events counted", |s| JobStatus::get(&s.events) == 10);
    wait_committed_to_end(&bootstrap, &job.settings);

    cluster.broker_down(2).unwrap();
    let commits = JobStatus::get(&job.status().commits);
    let held = |s: &JobStatus| {
        assert_eq!(
            JobStatus::get(&s.commits),
            commits,
            "committed before the outputs were acknowledged"
        );
    };
    let burst = |agent: &str| -> Vec<_> {
        let t0 = now_ms();
        (0..12)
            .map(|i| event(&format!("{agent}-{i}"), agent, t0 + i, "FAILURE"))
            .collect()
    };
    let outputs = JobStatus::get(&job.status().outputs);
    harness::produce(&bootstrap, &topic, &burst("first"));
    job.wait_until("first's transition sent", |s| {
        held(s);
        JobStatus::get(&s.events) == 22 && JobStatus::get(&s.outputs) > outputs
    });
    // The producer gives up on first's outputs after its 1 s message
    // timeout and they are sent again; checkpoints (every second) have
    // begun with them outstanding by then, and none may commit. (Resent
    // after the checkpoint's newer snapshot of first, a stale snapshot must
    // not end up last on the topic: checked at the end.)
    let failures = counter("breakwater_output_delivery_failures_total");
    job.wait_until("the producer gave up on first's outputs once", |s| {
        held(s);
        counter("breakwater_output_delivery_failures_total") > failures
    });
    let outputs = JobStatus::get(&job.status().outputs);
    harness::produce(&bootstrap, &topic, &burst("second"));
    job.wait_until("second's breaker opened while the commit is held", |s| {
        held(s);
        JobStatus::get(&s.events) == 34 && JobStatus::get(&s.outputs) > outputs
    });

    cluster.broker_up(2).unwrap();
    job.wait_until("committed once the outputs are acknowledged", |s| {
        JobStatus::get(&s.commits) > commits
    });
    wait_committed_to_end(&bootstrap, &job.settings);
    let settings = job.settings.clone();
    let summary = job.stop();
    let mut opened = transitions(&read_topic(&bootstrap, &settings.topics.breaker_state));
    opened.sort();
    assert_eq!(
        opened,
        [
            ("first".into(), "OPEN".into(), "FAILURE_RATE".into()),
            ("second".into(), "OPEN".into(), "FAILURE_RATE".into())
        ]
    );
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("steady", 10), ("first", 12), ("second", 12)]
            .into_iter()
            .collect(),
    );
}

/// Input for the request-error tests: 30 failures of `flaky` (its breaker
/// opens at the 20th with the SLO below) and 20 successes of `steady`.
fn flaky_and_steady() -> Vec<(String, String)> {
    let t0 = now_ms();
    let mut input: Vec<_> = (0..30)
        .map(|i| event(&format!("f{i}"), "flaky", t0 + i, "FAILURE"))
        .collect();
    input.extend(successes("ok", &["steady"], 20));
    input
}

const FLAKY_SLO: &str =
    "defaults: {breaker: {min_calls: 20, failure_threshold: 0.5, cooldown_seconds: 600}}";

/// Produce and Fetch requests fail with errors the clients retry by
/// themselves. The breaker transition the input causes is published once,
/// and the input is committed.
#[test]
fn retriable_produce_and_fetch_errors() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let settings = job_settings(&bootstrap, "");
    // The input is there before the job starts, so that the job's own
    // requests are the first to meet the errors.
    harness::produce(&bootstrap, &settings.topics.events, &flaky_and_steady());
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );

    let job = RunningJob::start_settings(settings, FLAKY_SLO);
    job.wait_until("all 50 events counted", |s| JobStatus::get(&s.events) == 50);
    let settings = job.settings.clone();
    let summary = job.stop();

    let breaker = read_topic(&bootstrap, &settings.topics.breaker_state);
    assert_eq!(
        transitions(&breaker),
        [("flaky".into(), "OPEN".into(), "FAILURE_RATE".into())]
    );
    let open = json_of(&breaker[0]);
    assert_eq!(
        (
            open["window_tasks"].as_u64(),
            open["window_failed"].as_u64()
        ),
        (Some(20), Some(20))
    );
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("flaky", 30), ("steady", 20)].into_iter().collect(),
    );
}

/// The job's group commits input offsets once per batch that has records,
/// asynchronously; this waits until the group has committed up to the end.
fn wait_committed_to_end(bootstrap: &str, settings: &KafkaSettings) {
    let deadline = Instant::now() + support::job::TIMEOUT;
    loop {
        let offsets = committed_and_end(bootstrap, &settings.group_id, &settings.topics.events);
        if offsets.iter().all(|(_, c, end)| c.unwrap_or(0) == *end) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not committed to the end: {offsets:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// OffsetCommit requests fail with errors that leave the coordinator where
/// it is (a time-out, the coordinator still loading): librdkafka retries
/// them, the next batch's commit covers one that failed for good, and the
/// group is committed to the end while the job runs.
#[test]
fn offset_commit_errors_are_retried() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let job = RunningJob::start(&bootstrap, FLAKY_SLO);
    let topic = job.settings.topics.events.clone();
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    // Three batches, a commit each, and retries of those that failed.
    for (i, batch) in ["one", "two", "three"].into_iter().enumerate() {
        let commits = JobStatus::get(&job.status().commits);
        harness::produce(&bootstrap, &topic, &successes(batch, &["steady"], 10));
        job.wait_until("the batch counted and its commit sent", |s| {
            JobStatus::get(&s.events) == 10 * (i as u64 + 1) && JobStatus::get(&s.commits) > commits
        });
    }
    wait_committed_to_end(&bootstrap, &job.settings);
    let settings = job.settings.clone();
    let summary = job.stop();
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("steady", 30)].into_iter().collect(),
    );
}

/// The last batch's commit times out, and so does the final commit of a
/// graceful stop, each after librdkafka's own retries; a few more attempts
/// would get through. A graceful stop must still end with the input
/// committed — or at least say that it is not.
#[test]
fn a_graceful_stop_commits_even_after_commit_errors() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let job = RunningJob::start(&bootstrap, FLAKY_SLO);
    let topic = job.settings.topics.events.clone();
    harness::produce(&bootstrap, &topic, &successes("one", &["steady"], 10));
    job.wait_until("the first batch counted", |s| {
        JobStatus::get(&s.events) == 10
    });
    wait_committed_to_end(&bootstrap, &job.settings);

    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 6],
    );
    harness::produce(&bootstrap, &topic, &successes("two", &["steady"], 10));
    job.wait_until("the second batch counted and a commit of it failed", |s| {
        JobStatus::get(&s.events) == 20 && JobStatus::get(&s.commit_failures) > 0
    });
    let settings = job.settings.clone();
    let summary = job.stop();
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("steady", 20)].into_iter().collect(),
    );
}

/// A produce request is denied (topic authorization, which librdkafka then
/// remembers for the topic until its next metadata refresh, refusing new
/// records at once): the job keeps the records, counts the failure, and
/// sends them again until they are acknowledged. Each output is published
/// once and the input is committed.
#[test]
fn a_denied_produce_request_is_sent_again() {
    counters();
    let failures_before = counter("breakwater_output_delivery_failures_total");
    let (cluster, bootstrap) = cluster_with_topics(1);
    let settings = job_settings(&bootstrap, "");
    harness::produce(&bootstrap, &settings.topics.events, &flaky_and_steady());
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        ],
    );
    let job = RunningJob::start_settings(settings, FLAKY_SLO);
    job.wait_until("all 50 events counted", |s| JobStatus::get(&s.events) == 50);
    let settings = job.settings.clone();
    let summary = job.stop();

    let breaker = read_topic(&bootstrap, &settings.topics.breaker_state);
    assert_eq!(
        transitions(&breaker),
        [("flaky".into(), "OPEN".into(), "FAILURE_RATE".into())]
    );
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("flaky", 30), ("steady", 20)].into_iter().collect(),
    );
    assert!(
        counter("breakwater_output_delivery_failures_total") > failures_before,
        "the denied records were counted"
    );
}

/// Every request to the broker takes 500 ms more, from after the job has
/// joined its group until it has stopped: the job is slower, and as correct.
#[test]
fn high_round_trip_time() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let job = RunningJob::start(&bootstrap, FLAKY_SLO);
    cluster
        .broker_round_trip_time(-1, Duration::from_millis(500))
        .unwrap();
    let started = Instant::now();
    let topic = job.settings.topics.events.clone();
    let mut input = flaky_and_steady();
    input.extend(successes("ok", &["steady-2"], 10));
    harness::produce(&bootstrap, &topic, &input);
    job.wait_until("all 60 events counted", |s| JobStatus::get(&s.events) == 60);
    let settings = job.settings.clone();
    let summary = job.stop();
    let took = started.elapsed();
    // Produce, fetch, produce outputs, commit, leave: a round trip each at least.
    assert!(took > Duration::from_secs(2), "{took:?}");
    cluster.broker_round_trip_time(-1, Duration::ZERO).unwrap();

    let breaker = read_topic(&bootstrap, &settings.topics.breaker_state);
    assert_eq!(
        transitions(&breaker),
        [("flaky".into(), "OPEN".into(), "FAILURE_RATE".into())]
    );
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &[("flaky", 30), ("steady", 20), ("steady-2", 10)]
            .into_iter()
            .collect(),
    );
}

/// All brokers down for longer than the session timeout (6 s): the group
/// drops the member, which gives up its partitions and gets them back once
/// the brokers are up. The agents' state must survive that.
#[test]
fn an_outage_longer_than_the_session_timeout_keeps_agent_state() {
    counters();
    let (cluster, bootstrap) = cluster_with_topics(1);
    let job = RunningJob::start(&bootstrap, "defaults: {breaker: {min_calls: 1000000}}");
    let topic = job.settings.topics.events.clone();
    let agents = ["agent-a", "agent-b", "agent-c"];
    harness::produce(&bootstrap, &topic, &successes("before", &agents, 10));
    job.wait_until("the first 30 events counted and committed", |s| {
        JobStatus::get(&s.events) == 30 && JobStatus::get(&s.commits) > 0
    });
    cluster.broker_down(-1).unwrap();
    // Longer than the 6 s session timeout: the member is dropped.
    std::thread::sleep(Duration::from_secs(8));
    cluster.broker_up(-1).unwrap();
    harness::produce(&bootstrap, &topic, &successes("after", &agents, 10));
    job.wait_until("the partitions owned again and 60 events counted", |s| {
        JobStatus::get(&s.partitions) == 3 && JobStatus::get(&s.events) >= 60
    });
    let settings = job.settings.clone();
    let summary = job.stop();
    assert_all_counted_once(
        &bootstrap,
        &summary,
        &settings,
        &agents.iter().map(|a| (*a, 20)).collect(),
    );
}

//! The HTTP API against its OpenAPI document (deploy/http/openapi.yaml):
//! the document is valid OpenAPI 3.1 (openapi-spec-validator), lists
//! exactly the routes the server has, and every live response of a real
//! job — each operation, error cases included — has a documented status,
//! media type and a body matching that response's schema. And the 404 of
//! an agent owned elsewhere names its partition (computed as librdkafka's
//! partitioners do) and the group member that owns it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakwater::kafka::partitioner::Partitioner;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};
use serde_json::{json, Value};
use support::cli::{call, http_addr, Job, Reply, Setup, TIMEOUT};
use support::kafka::{self as harness, Broker};

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/http/openapi.yaml");
const TOKEN: &str = "an-operator-token-for-tests";

/// The OpenAPI document, and which (method, path, status) the test saw.
struct Api {
    doc: Value,
    seen: Mutex<BTreeSet<(String, String, String)>>,
}

impl Api {
    fn load() -> Api {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(DOCUMENT).unwrap()).unwrap();
        Api {
            doc: serde_json::to_value(yaml).unwrap(),
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Every documented operation as (METHOD, path template).
    fn operations(&self) -> BTreeSet<(String, String)> {
        let methods = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for m in methods.iter().filter(|m| item.get(**m).is_some()) {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
        ops
    }

    /// Every documented (METHOD, path template, status).
    fn responses(&self) -> BTreeSet<(String, String, String)> {
        let mut all = BTreeSet::new();
        for (method, path) in self.operations() {
            let op = &self.doc["paths"][&path][method.to_lowercase()];
            for status in op["responses"].as_object().unwrap().keys() {
                all.insert((method.clone(), path.clone(), status.clone()));
            }
        }
        all
    }

    /// Follows a local `$ref` (`#/components/...`) if `v` is one.
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.strip_prefix('#').expect("a local $ref"))
                .unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => v,
        }
    }

    /// Checks `reply` to `method template` against the document: the
    /// status is documented for the operation, the media type is the
    /// response's, and the body matches its schema. Returns the body as
    /// JSON (a string for text/plain).
    fn check(&self, method: &str, template: &str, reply: &Reply) -> Value {
        let what = format!("{method} {template} → {}: {}", reply.status, reply.body);
        let op = self.doc["paths"][template]
            .get(method.to_lowercase())
            .unwrap_or_else(|| panic!("undocumented operation: {what}"));
        let status = reply.status.to_string();
        let response = self.deref(
            op["responses"]
                .get(&status)
                .unwrap_or_else(|| panic!("undocumented status: {what}")),
        );
        let media = reply.content_type.as_deref().expect("a content type");
        let schema = response["content"]
            .get(media)
            .unwrap_or_else(|| panic!("undocumented media type {media}: {what}"))["schema"]
            .clone();
        let body = if media == "application/json" {
            serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("not JSON ({e}): {what}"))
        } else {
            Value::String(reply.body.clone())
        };
        if let Err(e) = self.validator(&schema).validate(&body) {
            panic!("the body does not match the documented schema: {e}\n{what}");
        }
        // The one documented header: the challenge of a 401.
        for name in response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            assert_eq!(name, "WWW-Authenticate", "a header this test does not read");
            let want = &response["headers"][name]["schema"]["const"];
            assert_eq!(
                reply.www_authenticate.as_deref(),
                want.as_str(),
                "header {name}: {what}"
            );
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.into(), template.into(), status));
        body
    }

    /// A validator of `schema` whose `#/components/...` references resolve
    /// in the document: the document itself is the root resource, with the
    /// schema's keywords added at the top (its other top-level keys are not
    /// JSON Schema keywords and are ignored).
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = self.doc.clone();
        let top = root.as_object_mut().unwrap();
        for (k, v) in schema.as_object().unwrap() {
            top.insert(k.clone(), v.clone());
        }
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
    }

    /// [`call`], then [`Api::check`].
    fn call(
        &self,
        addr: &str,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let reply = call(addr, method, path, token, body);
        (reply.status, self.check(method, template, &reply))
    }
}

#[test]
fn the_document_is_valid_openapi_3_1_and_the_validator_can_say_no() {
    let python = support::python::openapi_python();
    let validate = |path: &Path| {
        Command::new(&python)
            .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
            .arg(path)
            .output()
            .expect("running openapi-spec-validator")
    };
    let out = validate(Path::new(DOCUMENT));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A dangling $ref must be refused, or the check above proves nothing.
    let broken = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    let text = std::fs::read_to_string(DOCUMENT).unwrap().replace(
        "#/components/schemas/AgentPage\"",
        "#/components/schemas/NoSuchPage\"",
    );
    std::fs::write(broken.path(), text).unwrap();
    assert!(!validate(broken.path()).status.success());
}

#[test]
fn the_document_lists_exactly_the_routes_the_server_has() {
    let api = Api::load();
    let served: BTreeSet<(String, String)> = breakwater::http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = api.operations();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
}

#[test]
fn the_schemas_refuse_bodies_that_drift_from_them() {
    let api = Api::load();
    let schema = json!({"$ref": "#/components/schemas/AgentPage"});
    let v = api.validator(&schema);
    let page = json!({"agents": [{"agent_id": "a", "budget_status": "HEALTHY",
        "circuit_state": "CLOSED", "window_tasks": 3}], "total": 1, "offset": 0, "next_offset": null});
    assert!(v.is_valid(&page));
    let mut extra = page.clone();
    extra["agents"][0]["surprise"] = json!(1);
    assert!(!v.is_valid(&extra), "an undocumented field");
    let mut state = page.clone();
    state["agents"][0]["circuit_state"] = json!("AJAR");
    assert!(!v.is_valid(&state), "an undocumented state");
    let mut missing = page;
    missing.as_object_mut().unwrap().remove("next_offset");
    assert!(!v.is_valid(&missing), "a missing field");
}

/// Waits until `GET path` answers `status`.
fn wait_status(addr: &str, path: &str, status: u16, job: &Job) {
    let deadline = Instant::now() + TIMEOUT;
    while call(addr, "GET", path, None, None).status != status {
        assert!(
            Instant::now() < deadline,
            "{path} never answered {status}:\n{}",
            job.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(agent: &str, n: usize, outcome: &str) -> Vec<(String, String)> {
    let t = support::job::now_ms();
    (0..n)
        .map(|i| {
            let e = json!({"event_id": format!("{agent}-{i}"), "agent_id": agent, "timestamp": t + i as i64,
                "outcome": outcome, "latency_ms": 900, "tool_calls": 3, "hallucination": false});
            (agent.to_string(), e.to_string())
        })
        .collect()
}

/// A job on a real broker (token set), and two whose broker is unreachable
/// (so their stream never starts): every documented operation is called,
/// with its error cases, and every response checked against the document.
/// Every documented response is seen except those the test cannot provoke.
#[test]
fn every_live_response_matches_the_document() {
    let api = Api::load();
    let broker = Broker::start();
    let setup = Setup::new(&broker, "", "");
    let job = setup.start_with("api", &[], &[("BREAKWATER_HTTP_TOKEN", TOKEN)]);
    let addr = http_addr(&job);
    wait_status(&addr, "/readyz", 200, &job);
    harness::produce(
        &broker.bootstrap(),
        "agent.task.events",
        &events("api-agent", 20, "SUCCESS"),
    );
    wait_status(&addr, "/agents/api-agent", 200, &job);

    let get = |template: &str, path: &str| api.call(&addr, "GET", template, path, None, None);
    let (_, text) = get("/metrics", "/metrics");
    assert!(
        text.as_str().unwrap().contains("breakwater_events_total"),
        "{text}"
    );
    assert_eq!(get("/healthz", "/healthz").0, 200);
    assert_eq!(get("/readyz", "/readyz").0, 200);

    let (status, agent) = get("/agents/{id}", "/agents/api-agent");
    assert_eq!(status, 200);
    assert_eq!(
        (agent["tasks"].as_i64(), agent["circuit_state"].as_str()),
        (Some(20), Some("CLOSED")),
        "{agent}"
    );
    let (status, page) = get("/agents", "/agents");
    assert_eq!((status, page["total"].as_i64()), (200, Some(1)), "{page}");
    let (_, page) = get(
        "/agents",
        "/agents?status=HEALTHY&state=CLOSED&offset=0&limit=1",
    );
    assert_eq!(page["agents"][0]["agent_id"], "api-agent", "{page}");
    for bad in [
        "?status=BROKEN",
        "?state=AJAR",
        "?limit=0",
        "?limit=1001",
        "?offset=-1",
        "?colour=red",
    ] {
        let (status, body) = get("/agents", &format!("/agents{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // One instance owns every partition: an unknown agent's partition is
    // its own, and the broker (or not) says so.
    let (status, missing) = get("/agents/{id}", "/agents/nobody");
    assert_eq!(status, 404);
    let p = Partitioner::Crc32.partition(b"nobody", 3);
    assert_eq!(missing["partition"], p, "{missing}");
    assert_eq!(missing["partitioner"], "consistent_random", "{missing}");
    assert_eq!(missing["owned_partitions"], json!([0, 1, 2]), "{missing}");
    if !missing["owner"].is_null() {
        assert_eq!(missing["owner"]["this_instance"], true, "{missing}");
    }

    let path = "/agents/api-agent/breaker";
    let template = "/agents/{id}/breaker";
    let post = |token: Option<&str>, body: &str| {
        let reply = call(&addr, "POST", path, token, Some(body));
        (reply.status, api.check("POST", template, &reply), reply)
    };
    let open = r#"{"command":"force_open","operator":"alice"}"#;
    let (status, _, reply) = post(None, open);
    assert_eq!(status, 401);
    assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));
    assert_eq!(post(Some("not-the-token-at-all"), open).0, 401);
    assert_eq!(post(Some(TOKEN), r#"{"command":"explode"}"#).0, 400);
    assert_eq!(post(Some(TOKEN), "not json").0, 400);
    assert_eq!(post(Some(TOKEN), r#"{"command":"reset","extra":1}"#).0, 400);
    let (status, accepted, _) = post(Some(TOKEN), open);
    assert_eq!(status, 202);
    assert_eq!(accepted["sent"]["operator"], "alice", "{accepted}");
    let (status, anonymous, _) = post(Some(TOKEN), r#"{"command":"force_open"}"#);
    assert_eq!(
        (status, &anonymous["sent"]["operator"]),
        (202, &Value::Null)
    );
    // The owner applies it: the agent shows FORCED_OPEN, in a filtered list too.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, page) = get("/agents", "/agents?state=FORCED_OPEN");
        if page["total"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never FORCED_OPEN: {page}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, agent) = get("/agents/{id}", "/agents/api-agent");
    assert_eq!(agent["circuit_state"], "FORCED_OPEN", "{agent}");

    // Nothing beyond the document: other methods on its paths are 405,
    // other paths 404 with no body.
    for (method, template) in api.operations() {
        let concrete = template.replace("{id}", "api-agent");
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if other != method && !api.operations().contains(&(other.into(), template.clone())) {
                let r = call(&addr, other, &concrete, Some(TOKEN), Some("{}"));
                assert_eq!(r.status, 405, "{other} {concrete}: {r:?}");
            }
        }
    }
    for path in [
        "/",
        "/agents/a/b",
        "/agents/api-agent/breaker/x",
        "/metrics/x",
    ] {
        let r = call(&addr, "GET", path, None, None);
        assert_eq!((r.status, r.body.as_str()), (404, ""), "{path}");
    }
    job.terminate();

    // Nothing listens on port 1: the job serves HTTP but never starts its
    // stream (it gives up after the metadata timeout, well after this).
    let nowhere = "127.0.0.1:1";
    let off = Setup::for_brokers(nowhere, "", "");
    let mut not_running = off.spawn_with("not-running", &[], &[]);
    not_running.wait_for_log("serving /metrics");
    let addr = http_addr(&not_running);
    let get = |template: &str, path: &str| api.call(&addr, "GET", template, path, None, None);
    assert_eq!(get("/healthz", "/healthz").0, 200);
    assert_eq!(get("/readyz", "/readyz").0, 503);
    assert_eq!(get("/agents", "/agents").0, 503);
    assert_eq!(get("/agents/{id}", "/agents/api-agent").0, 503);
    let r = call(&addr, "POST", path, Some(TOKEN), Some(open));
    assert_eq!(
        (
            r.status,
            api.check("POST", template, &r)["error"].is_string()
        ),
        (403, true)
    );
    drop(not_running);

    // With a token, a command the broker never acknowledges is a 502.
    let timeout = "  producer_properties: {message.timeout.ms: 1000}\n";
    let off = Setup::for_brokers(nowhere, "", timeout);
    let mut unacked = off.spawn_with("unacked", &[], &[("BREAKWATER_HTTP_TOKEN", TOKEN)]);
    unacked.wait_for_log("serving /metrics");
    let r = call(&http_addr(&unacked), "POST", path, Some(TOKEN), Some(open));
    assert_eq!(r.status, 502, "{r:?}");
    api.check("POST", template, &r);
    drop(unacked);

    // Every documented response was seen but these, which need the process
    // in a state it only passes through (no recorder, exiting) or a panic.
    let unreachable: BTreeSet<(String, String, String)> = [
        ("GET", "/metrics", "404"),
        ("GET", "/healthz", "503"),
        ("POST", "/agents/{id}/breaker", "500"),
    ]
    .iter()
    .map(|(m, p, s)| (m.to_string(), p.to_string(), s.to_string()))
    .collect();
    let seen = api.seen.lock().unwrap().clone();
    let unseen: Vec<_> = api
        .responses()
        .difference(&seen)
        .filter(|r| !unreachable.contains(r))
        .cloned()
        .collect();
    assert!(unseen.is_empty(), "documented but never seen: {unseen:?}");
}

/// Delivery reports of a test producer: (key, partition).
#[derive(Clone, Default)]
struct Landed(Arc<Mutex<Vec<(String, i32)>>>);

impl ClientContext for Landed {}

impl ProducerContext for Landed {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let m = result.as_ref().expect("delivered");
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        self.0.lock().unwrap().push((key, m.partition()));
    }
}

/// The partition Breakwater computes for a key is the one librdkafka's
/// producer puts it in, for each keyed partitioner (default, Java's, Go's).
#[test]
fn the_computed_partition_is_where_librdkafka_produces_the_key() {
    let broker = Broker::start();
    for (i, property) in [None, Some("murmur2_random"), Some("fnv1a_random")]
        .into_iter()
        .enumerate()
    {
        let topic = format!("keys-{i}");
        broker.create_topic(&topic, 7, false);
        let landed = Landed::default();
        let mut config = harness::client_config(&broker.bootstrap());
        if let Some(p) = property {
            config.set("partitioner", p);
        }
        let producer: BaseProducer<Landed> = config.create_with_context(landed.clone()).unwrap();
        let keys: Vec<String> = (0..200).map(|k| format!("agent-{k}")).collect();
        for k in &keys {
            producer
                .send(BaseRecord::to(&topic).key(k).payload("x"))
                .unwrap();
        }
        producer.flush(TIMEOUT).unwrap();
        let partitioner = Partitioner::from_property(property).unwrap();
        let landed = landed.0.lock().unwrap().clone();
        assert_eq!(landed.len(), keys.len());
        let spread: BTreeSet<i32> = landed.iter().map(|(_, p)| *p).collect();
        assert_eq!(
            spread.len(),
            7,
            "{property:?}: 200 keys use every partition"
        );
        for (key, partition) in landed {
            assert_eq!(
                partitioner.partition(key.as_bytes(), 7),
                partition,
                "{property:?}: {key}"
            );
        }
    }
}

/// The partitions each of `jobs` owns, from the 404 of an unknown agent.
fn owned(jobs: &[(&Job, String)]) -> Vec<Vec<i64>> {
    jobs.iter()
        .map(|(_, addr)| {
            let r = call(addr, "GET", "/agents/nobody", None, None);
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            v["owned_partitions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// Two instances in one group: asked about an agent the other owns, an
/// instance answers 404 with the agent's partition (and the member that
/// owns it, where the broker can tell), and the owner of that partition
/// tracks the agent: the partition computed for the key is the one the
/// events went to.
#[test]
fn an_agent_on_another_instance_is_located_by_partition_and_owner() {
    let api = Api::load();
    let broker = Broker::start();
    let setup = Setup::new(&broker, "", "");
    let first = setup.start("first");
    let second = setup.start("second");
    let jobs = [(&first, http_addr(&first)), (&second, http_addr(&second))];
    let deadline = Instant::now() + TIMEOUT;
    let split = loop {
        let split = owned(&jobs);
        let all: BTreeSet<i64> = split.iter().flatten().copied().collect();
        let ready = jobs
            .iter()
            .all(|(_, a)| call(a, "GET", "/readyz", None, None).status == 200);
        if ready
            && split.iter().all(|p| !p.is_empty())
            && all.len() == 3
            && split[0].len() + split[1].len() == 3
        {
            break split;
        }
        assert!(
            Instant::now() < deadline,
            "the group never split the partitions: {split:?}\n{}\n{}",
            first.log(),
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // An agent of each partition (librdkafka's default partitioner).
    let agents: Vec<String> = (0..3)
        .map(|p| {
            (0..)
                .map(|i| format!("agent-{i}"))
                .find(|a| Partitioner::Crc32.partition(a.as_bytes(), 3) == p)
                .unwrap()
        })
        .collect();
    let records: Vec<_> = agents
        .iter()
        .flat_map(|a| events(a, 3, "SUCCESS"))
        .collect();
    harness::produce(&broker.bootstrap(), "agent.task.events", &records);

    for (p, agent) in agents.iter().enumerate() {
        let o = usize::from(!split[0].contains(&(p as i64)));
        let (owner, other) = (&jobs[o], &jobs[1 - o]);
        let path = format!("/agents/{agent}");
        wait_status(&owner.1, &path, 200, owner.0);
        let (status, body) = api.call(&other.1, "GET", "/agents/{id}", &path, None, None);
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["partition"], p, "{body}");
        assert_eq!(body["partitions"], 3, "{body}");
        // Tansu 0.6 lists no groups (ListGroups) and describes groups
        // without members (DescribeGroups): there the owner is unknown, and
        // the 404 says why. A broker that describes the group names the
        // owner; choosing it from the assignments is unit-tested in
        // kafka::owners.
        let member = &body["owner"];
        if member.is_null() {
            let why = body["owner_unknown"].as_str().unwrap_or_default();
            assert!(why.contains(&setup.group), "{body}");
        } else {
            let pid = owner.0.child.id();
            let client_id = member["client_id"].as_str().unwrap();
            assert!(
                client_id.starts_with("breakwater-") && client_id.ends_with(&format!("-{pid}")),
                "owner {client_id}, expected pid {pid}: {body}"
            );
            assert_eq!(member["this_instance"], false, "{body}");
        }
        assert!(
            body["error"].as_str().unwrap().contains("another instance"),
            "{body}"
        );
    }
    first.terminate();
    second.terminate();
}

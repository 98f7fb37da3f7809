//! Every record the engine emits conforms to its Avro schema in `schemas/`.
//!
//! For real records (the demo scenario through the engine, with an accuracy
//! declaration and operator commands so that every union branch and most
//! enum symbols occur), each check goes: serde → `apache_avro::to_value` →
//! a field-by-field walk against the schema (which names the offending field
//! when something does not fit) → `Value::validate` → `Value::resolve` →
//! binary encoding with `GenericDatumWriter` → decoding with
//! `GenericDatumReader` → `apache_avro::from_value` back to the Rust type,
//! which must equal the original.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use breakwater::config::{Severity, SloConfig};
use breakwater::engine::accuracy::AccuracyDeclaration;
use breakwater::engine::alert::AlertStatus;
use breakwater::engine::breaker::{Command, Reason, StateName};
use breakwater::engine::budget::BudgetStatus;
use breakwater::engine::Engine;
use breakwater::generate::Scenario;
use breakwater::output::{AlertEvent, BreakerTransition, BudgetSnapshot, Output, SnapshotTrigger};

const BREAKER_TRANSITION_AVSC: &str = include_str!("../schemas/breaker_transition.avsc");
const ALERT_AVSC: &str = include_str!("../schemas/alert.avsc");
const BUDGET_SNAPSHOT_AVSC: &str = include_str!("../schemas/budget_snapshot.avsc");
const ACCURACY_DECLARATION_AVSC: &str = include_str!("../schemas/accuracy_declaration.avsc");

/// 2026-12-01T00:00:00Z, the demo scenario's start.
const T0: i64 = 1_796_083_200_000;

// ------------------------------------------------------------- the records

struct Records {
    transitions: Vec<BreakerTransition>,
    alerts: Vec<AlertEvent>,
    snapshots: Vec<BudgetSnapshot>,
    declarations: Vec<AccuracyDeclaration>,
}

fn declarations() -> Vec<AccuracyDeclaration> {
    let v1 = AccuracyDeclaration {
        agent_id: "research-agent-1".into(),
        version: "1.0.0".into(),
        declared_accuracy: [
            ("task_completion".to_string(), 0.99),
            ("policy_compliance".to_string(), 0.999),
            ("factual_retrieval".to_string(), 0.97),
            ("never_evaluated".to_string(), 0.5),
        ]
        .into(),
        measurement_method: "automated_eval_suite_v3".into(),
        valid_for_days: 1,
        published_at: T0,
        supersedes: None,
    };
    let v2 = AccuracyDeclaration {
        version: "1.1.0".into(),
        declared_accuracy: [("task_completion".to_string(), 0.999)].into(),
        published_at: T0 + 3_600_000,
        supersedes: Some("1.0.0".into()),
        ..v1.clone()
    };
    let other = AccuracyDeclaration {
        agent_id: "support-agent-0".into(),
        declared_accuracy: [("task_completion".to_string(), 0.5)].into(),
        valid_for_days: 30,
        ..v1.clone()
    };
    vec![v1, v2, other]
}

/// The demo scenario through the engine, plus declarations, operator
/// commands and periodic snapshots, so that the records cover every trigger,
/// most breaker states and reasons, and both branches of every union.
fn engine_records() -> Records {
    let mut engine = Engine::new(Arc::new(SloConfig::default()));
    let mut out: Vec<Output> = Vec::new();
    let decls = declarations();
    let mut pending = decls.clone().into_iter().peekable();
    let mut periodic_done = false;
    for e in Scenario::demo(7).events() {
        while let Some(d) = pending.next_if(|d| d.published_at <= e.timestamp) {
            engine.advance_to(d.published_at, &mut out);
            engine.declare(d, &mut out).expect("a valid declaration");
        }
        engine.advance_to(e.timestamp, &mut out);
        engine.process(&e, &mut out);
        if !periodic_done && e.timestamp >= T0 + 30 * 60_000 {
            periodic_done = true;
            for s in engine.take_changed_snapshots() {
                out.push(Output::BudgetSnapshot(Box::new(s)));
            }
        }
    }
    assert!(
        pending.next().is_none(),
        "every declaration was put in force"
    );
    // Operator states.
    assert!(engine.command("support-agent-1", Command::ForceOpen, &mut out));
    assert!(engine.command("support-agent-2", Command::Disable, &mut out));
    assert!(engine.command("support-agent-2", Command::Reset, &mut out));
    // Past the 1-day validity of research-agent-1's declaration.
    engine.advance_to(T0 + 2 * 86_400_000, &mut out);
    for s in engine.final_snapshots() {
        out.push(Output::BudgetSnapshot(Box::new(s)));
    }

    let mut r = Records {
        transitions: Vec::new(),
        alerts: Vec::new(),
        snapshots: Vec::new(),
        declarations: decls,
    };
    for o in out {
        match o {
            Output::BreakerTransition(t) => r.transitions.push(t),
            Output::Alert(a) => r.alerts.push(a),
            Output::BudgetSnapshot(s) => r.snapshots.push(*s),
        }
    }
    r
}

/// The records exercise what the schemas declare, so a pass means something.
#[test]
fn the_records_under_test_cover_the_schemas() {
    let r = engine_records();
    let states: BTreeSet<StateName> = r.transitions.iter().map(|t| t.state).collect();
    for s in [
        StateName::Closed,
        StateName::Open,
        StateName::HalfOpen,
        StateName::ForcedOpen,
        StateName::Disabled,
    ] {
        assert!(states.contains(&s), "no transition into {s:?}");
    }
    let reasons: Vec<Reason> = r.transitions.iter().map(|t| t.reason).collect();
    for reason in [
        Reason::FailureRate,
        Reason::DelegationLoop,
        Reason::CooldownElapsed,
        Reason::ProbesPassed,
        Reason::ProbeFailed,
        Reason::Operator,
    ] {
        assert!(reasons.contains(&reason), "no {reason:?} transition");
    }
    assert!(r.transitions.iter().any(|t| t.retry_at.is_some()));
    assert!(r.transitions.iter().any(|t| t.failure_rate.is_none()));

    assert!(r.alerts.iter().any(|a| a.status == AlertStatus::Firing));
    assert!(r.alerts.iter().any(|a| a.status == AlertStatus::Resolved));
    assert!(r.alerts.iter().any(|a| a.severity == Severity::Critical));
    assert!(r.alerts.iter().any(|a| a.severity == Severity::Warning));
    assert!(r
        .alerts
        .iter()
        .any(|a| a.rule.starts_with("accuracy_below_declaration:")));
    assert!(r
        .alerts
        .iter()
        .any(|a| a.rule == "accuracy_declaration_expired"));

    let triggers: BTreeSet<String> = r
        .snapshots
        .iter()
        .map(|s| format!("{:?}", s.trigger))
        .collect();
    assert_eq!(
        triggers.len(),
        3,
        "all of STATUS_CHANGE, PERIODIC, FINAL: {triggers:?}"
    );
    let with_accuracy: Vec<&BudgetSnapshot> = r
        .snapshots
        .iter()
        .filter(|s| s.accuracy.is_some())
        .collect();
    assert!(
        !with_accuracy.is_empty(),
        "the accuracy union's record branch"
    );
    assert!(
        r.snapshots.iter().any(|s| s.accuracy.is_none()),
        "the accuracy union's null branch"
    );
    assert!(with_accuracy
        .iter()
        .any(|s| s.accuracy.as_ref().unwrap().expired));
    assert!(
        with_accuracy.iter().any(|s| s
            .accuracy
            .as_ref()
            .unwrap()
            .measured
            .values()
            .any(Option::is_none)),
        "a null measured value (a declared category never evaluated)"
    );
    assert!(r
        .snapshots
        .iter()
        .any(|s| s.metrics.eval_pass_rates.values().any(Option::is_some)));
    assert!(r.snapshots.iter().any(|s| s.breaker.retry_at.is_some()));
    assert!(r
        .snapshots
        .iter()
        .any(|s| s.metrics.p99_latency_ms.is_some()));
    assert!(r
        .snapshots
        .iter()
        .any(|s| s.metrics.delegation_depth_max.is_some()));
    assert!(r.declarations.iter().any(|d| d.supersedes.is_some()));
    assert!(r.declarations.iter().any(|d| d.supersedes.is_none()));
}

// ------------------------------------------------------ the schema walker

/// Checks an Avro value against the schema's JSON text, field by field, and
/// names every field that does not fit (`Value::validate` only says no).
struct Walker {
    named: HashMap<String, Json>,
    problems: BTreeSet<String>,
}

fn value_kind(v: &Value) -> String {
    match v {
        Value::Fixed(8, _) => {
            "fixed(8) — apache-avro's encoding of a Rust u64 (`org.apache.avro.rust.u64`)"
                .to_string()
        }
        Value::Fixed(n, _) => format!("fixed({n})"),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
    }
}

impl Walker {
    fn new() -> Self {
        Walker {
            named: HashMap::new(),
            problems: BTreeSet::new(),
        }
    }

    fn problem(&mut self, path: &str, v: &Value, wanted: &str) {
        self.problems.insert(format!(
            "`{path}`: the value is {}, the schema says {wanted}",
            value_kind(v)
        ));
    }

    fn register(&mut self, def: &serde_json::Map<String, Json>) {
        if let Some(name) = def.get("name").and_then(Json::as_str) {
            let def = Json::Object(def.clone());
            if let Some(ns) = def.get("namespace").and_then(Json::as_str) {
                self.named.insert(format!("{ns}.{name}"), def.clone());
            }
            self.named.insert(name.to_string(), def);
        }
    }

    fn walk(&mut self, v: &Value, schema: &Json, path: &str) {
        match schema {
            Json::String(t) => self.primitive(v, t, path),
            Json::Array(branches) => match v {
                Value::Union(i, inner) => match branches.get(*i as usize) {
                    Some(branch) => {
                        let branch = branch.clone();
                        self.walk(inner, &branch, path)
                    }
                    None => self.problem(path, v, &format!("a union of {}", branches.len())),
                },
                _ => self.problem(path, v, &format!("the union {schema}")),
            },
            Json::Object(def) => {
                let t = def.get("type").and_then(Json::as_str).unwrap_or_default();
                match t {
                    "record" => {
                        self.register(def);
                        self.record(v, def, path);
                    }
                    "enum" => {
                        self.register(def);
                        self.enumeration(v, def, path);
                    }
                    "array" => match v {
                        Value::Array(items) => {
                            for item in items {
                                self.walk(item, &def["items"], &format!("{path}[*]"));
                            }
                        }
                        _ => self.problem(path, v, "an array"),
                    },
                    "map" => match v {
                        Value::Map(entries) => {
                            for item in entries.values() {
                                self.walk(item, &def["values"], &format!("{path}{{*}}"));
                            }
                        }
                        _ => self.problem(path, v, "a map"),
                    },
                    // A primitive with a logical type, e.g. timestamp-millis.
                    primitive => self.primitive(v, primitive, path),
                }
            }
            other => panic!("unexpected schema JSON at {path}: {other}"),
        }
    }

    fn primitive(&mut self, v: &Value, t: &str, path: &str) {
        let fits = match t {
            "null" => matches!(v, Value::Null),
            "boolean" => matches!(v, Value::Boolean(_)),
            "int" => matches!(v, Value::Int(_)),
            "long" => matches!(
                v,
                Value::Long(_) | Value::Int(_) | Value::TimestampMillis(_)
            ),
            "float" | "double" => matches!(v, Value::Double(_) | Value::Float(_)),
            "string" => matches!(v, Value::String(_)),
            named => {
                let def = self
                    .named
                    .get(named)
                    .unwrap_or_else(|| panic!("{path}: unknown type {named:?}"))
                    .clone();
                return self.walk(v, &def, path);
            }
        };
        if !fits {
            self.problem(path, v, &format!("{t:?}"));
        }
    }

    fn record(&mut self, v: &Value, def: &serde_json::Map<String, Json>, path: &str) {
        let Value::Record(fields) = v else {
            return self.problem(path, v, "a record");
        };
        let schema_fields = def["fields"].as_array().expect("record fields");
        let schema_names: Vec<&str> = schema_fields
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let value_names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let at = |n: &str| {
            if path.is_empty() {
                n.to_string()
            } else {
                format!("{path}.{n}")
            }
        };
        for n in &value_names {
            if !schema_names.contains(n) {
                self.problems
                    .insert(format!("`{}`: a Rust field the schema lacks", at(n)));
            }
        }
        for n in &schema_names {
            if !value_names.contains(n) {
                self.problems
                    .insert(format!("`{}`: a schema field the Rust type lacks", at(n)));
            }
        }
        let common: Vec<&&str> = value_names
            .iter()
            .filter(|n| schema_names.contains(n))
            .collect();
        let schema_order: Vec<&&str> = schema_names
            .iter()
            .filter(|n| value_names.contains(n))
            .collect();
        if common != schema_order {
            self.problems.insert(format!(
                "`{path}`: field order differs from the schema's (Rust {value_names:?}, \
                 schema {schema_names:?})"
            ));
        }
        for f in schema_fields {
            let name = f["name"].as_str().unwrap();
            if let Some((_, fv)) = fields.iter().find(|(n, _)| n == name) {
                self.walk(fv, &f["type"], &at(name));
            }
        }
    }

    fn enumeration(&mut self, v: &Value, def: &serde_json::Map<String, Json>, path: &str) {
        let symbols: Vec<&str> = def["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let symbol = match v {
            Value::String(s) => s,
            Value::Enum(i, s) => {
                if symbols.get(*i as usize) != Some(&s.as_str()) {
                    self.problems
                        .insert(format!("`{path}`: enum index {i} is not {s:?}"));
                }
                s
            }
            _ => return self.problem(path, v, &format!("the enum {symbols:?}")),
        };
        if !symbols.contains(&symbol.as_str()) {
            self.problems.insert(format!(
                "`{path}`: {symbol:?} is not one of the symbols {symbols:?}"
            ));
        }
    }
}

// -------------------------------------------------------- the conformance

/// Turns apache-avro's `fixed(8)` encoding of a `u64` into a `long`: what
/// the output types would serialize to if their counts were `i64`, or if the
/// Avro sink converted them.
fn u64_as_long(v: Value) -> Value {
    match v {
        Value::Fixed(8, bytes) => {
            let n = u64::from_le_bytes(bytes.try_into().unwrap());
            Value::Long(i64::try_from(n).expect("a count within i64"))
        }
        Value::Union(i, inner) => Value::Union(i, Box::new(u64_as_long(*inner))),
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .map(|(n, f)| (n, u64_as_long(f)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(u64_as_long).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, f)| (k, u64_as_long(f)))
                .collect(),
        ),
        other => other,
    }
}

/// Every way `records` fail to conform to `avsc`, or an empty list. With
/// `u64_fix`, u64 counts are first turned into longs (see [`u64_as_long`]).
fn nonconformities<T>(records: &[T], avsc: &str, u64_fix: bool) -> Vec<String>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    assert!(!records.is_empty());
    let schema = Schema::parse_str(avsc).expect("the schema parses");
    let schema_json: Json = serde_json::from_str(avsc).unwrap();
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    let reader = GenericDatumReader::builder(&schema).build().unwrap();

    let mut problems = BTreeSet::new();
    let mut failures = BTreeSet::new();
    for record in records {
        let mut value = apache_avro::to_value(record).expect("to_value");
        if u64_fix {
            value = u64_as_long(value);
        }
        let mut walker = Walker::new();
        walker.walk(&value, &schema_json, "");
        if !walker.problems.is_empty() {
            // Named precisely; the steps below would only say "invalid".
            problems.extend(walker.problems);
            continue;
        }
        if !value.validate(&schema) {
            failures.insert("Value::validate refuses a record the walker accepts".to_string());
            continue;
        }
        let resolved = match value.resolve(&schema) {
            Ok(v) => v,
            Err(e) => {
                failures.insert(format!("resolve: {e}"));
                continue;
            }
        };
        let mut bytes = Vec::new();
        if let Err(e) = writer.write_value_ref(&mut bytes, &resolved) {
            failures.insert(format!("GenericDatumWriter: {e}"));
            continue;
        }
        let mut rest = &bytes[..];
        let decoded = match reader.read_value(&mut rest) {
            Ok(v) => v,
            Err(e) => {
                failures.insert(format!("GenericDatumReader: {e}"));
                continue;
            }
        };
        if !rest.is_empty() {
            failures.insert(format!("{} bytes left after decoding", rest.len()));
        }
        if decoded != resolved {
            failures.insert(format!(
                "binary round trip changed the value: {resolved:?} → {decoded:?}"
            ));
            continue;
        }
        match apache_avro::from_value::<T>(&decoded) {
            Ok(back) if &back == record => {}
            Ok(back) => {
                failures.insert(format!("from_value gives {back:?}, not {record:?}"));
            }
            Err(e) => {
                failures.insert(format!("from_value: {e}"));
            }
        }
        if !u64_fix {
            // The schema-aware serializer (`write_ser`) must give the same
            // record. Not the same bytes: to_value goes through a HashMap for
            // Avro maps, so map entries may come out in another order.
            match writer.write_ser_to_vec(record) {
                Ok(direct) => match reader.read_value(&mut &direct[..]) {
                    Ok(v) if v == decoded => {}
                    Ok(v) => {
                        failures.insert(format!(
                            "write_ser gives another record than to_value: {v:?} vs {decoded:?}"
                        ));
                    }
                    Err(e) => {
                        failures.insert(format!("write_ser bytes do not decode: {e}"));
                    }
                },
                Err(e) => {
                    failures.insert(format!(
                        "GenericDatumWriter::write_ser: {}",
                        without_schema_dumps(&e.to_string())
                    ));
                }
            }
        }
    }
    problems.into_iter().chain(failures).collect()
}

/// apache-avro's serializer errors print the whole record schema at every
/// level ("Failed to serialize field 'x' of record RecordSchema { … }: …");
/// keeps the field names and the reason.
fn without_schema_dumps(message: &str) -> String {
    const MARK: &str = " of record ";
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let Some(open) = after.find('{') else {
            rest = after;
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn assert_conforms<T>(what: &str, records: &[T], avsc: &str, u64_fix: bool)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let problems = nonconformities(records, avsc, u64_fix);
    let mut hints = String::new();
    if problems.iter().any(|p| p.contains("rust.u64")) {
        hints.push_str(
            "\nFix on the Rust side (the schemas are right to say long): apache-avro 0.22 \
             serializes every u64 as fixed(8) `org.apache.avro.rust.u64`, through to_value \
             and write_ser alike. In processor/src/output.rs, serialize these u64 fields as \
             i64 (#[serde(serialize_with = ...)], JSON output unchanged; Option<u64> and \
             BTreeMap<String, u64> need their own helpers), make them i64, or build the Avro \
             Value by hand as decode::avro::to_avro_value does for TaskEvent.",
        );
    }
    if problems.iter().any(|p| p.contains("type `u32`")) {
        hints.push_str(
            "\nFix on the Rust side: the schema-aware serializer (write_ser / append_ser) \
             writes a u32 only as long, never as int. Serialize u32 fields whose schema says \
             int as i32 (#[serde(serialize_with = ...)]) or make them i32.",
        );
    }
    assert!(
        problems.is_empty(),
        "{} {what} records do not conform to their Avro schema:\n  {}\n{hints}\n",
        records.len(),
        problems.join("\n  ")
    );
}

#[test]
fn breaker_transitions_conform_to_breaker_transition_avsc() {
    let r = engine_records();
    assert_conforms(
        "BreakerTransition",
        &r.transitions,
        BREAKER_TRANSITION_AVSC,
        false,
    );
}

#[test]
fn alerts_conform_to_alert_avsc() {
    let r = engine_records();
    assert_conforms("AlertEvent", &r.alerts, ALERT_AVSC, false);
}

#[test]
fn budget_snapshots_conform_to_budget_snapshot_avsc() {
    let r = engine_records();
    assert_conforms("BudgetSnapshot", &r.snapshots, BUDGET_SNAPSHOT_AVSC, false);
}

#[test]
fn accuracy_declarations_conform_to_accuracy_declaration_avsc() {
    let r = engine_records();
    assert_conforms(
        "AccuracyDeclaration",
        &r.declarations,
        ACCURACY_DECLARATION_AVSC,
        false,
    );
}

/// Apart from the u64 counts (see the tests above), everything conforms:
/// field names and order, unions, enums, maps, nested records, and the
/// binary round trip back to equal Rust values.
#[test]
fn records_conform_once_u64_counts_are_longs() {
    let r = engine_records();
    assert_conforms(
        "BreakerTransition",
        &r.transitions,
        BREAKER_TRANSITION_AVSC,
        true,
    );
    assert_conforms("AlertEvent", &r.alerts, ALERT_AVSC, true);
    assert_conforms("BudgetSnapshot", &r.snapshots, BUDGET_SNAPSHOT_AVSC, true);
}

// ------------------------------------------------------------------ enums

/// Symbols of the enum named `name`, wherever it is defined in `avsc`.
fn symbols(avsc: &str, name: &str) -> Vec<String> {
    fn find(j: &Json, name: &str) -> Option<Vec<String>> {
        match j {
            Json::Object(o) => {
                if o.get("type") == Some(&Json::from("enum"))
                    && o.get("name") == Some(&Json::from(name))
                {
                    let s = o["symbols"].as_array().unwrap();
                    return Some(s.iter().map(|s| s.as_str().unwrap().to_string()).collect());
                }
                o.values().find_map(|v| find(v, name))
            }
            Json::Array(a) => a.iter().find_map(|v| find(v, name)),
            _ => None,
        }
    }
    find(&serde_json::from_str(avsc).unwrap(), name)
        .unwrap_or_else(|| panic!("no enum {name} in the schema"))
}

/// Serde names of `variants`, in the order given.
fn names<T: Serialize>(variants: &[T]) -> Vec<String> {
    variants
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

// Exhaustive lists, in declaration order: a new variant fails to compile here.
fn all_states() -> Vec<StateName> {
    use StateName::*;
    let all = vec![Closed, Open, HalfOpen, ForcedOpen, Disabled];
    for s in &all {
        match s {
            Closed | Open | HalfOpen | ForcedOpen | Disabled => {}
        }
    }
    assert_eq!(all, StateName::ALL);
    all
}

fn all_reasons() -> Vec<Reason> {
    use Reason::*;
    let all = vec![
        FailureRate,
        Latency,
        DelegationLoop,
        BudgetExhausted,
        CooldownElapsed,
        ProbesPassed,
        ProbeFailed,
        Operator,
    ];
    for r in &all {
        match r {
            FailureRate | Latency | DelegationLoop | BudgetExhausted | CooldownElapsed
            | ProbesPassed | ProbeFailed | Operator => {}
        }
    }
    all
}

fn all_alert_statuses() -> Vec<AlertStatus> {
    use AlertStatus::*;
    let all = vec![Firing, Resolved];
    for s in &all {
        match s {
            Firing | Resolved => {}
        }
    }
    all
}

fn all_severities() -> Vec<Severity> {
    use Severity::*;
    let all = vec![Warning, Critical];
    for s in &all {
        match s {
            Warning | Critical => {}
        }
    }
    all
}

fn all_triggers() -> Vec<SnapshotTrigger> {
    use SnapshotTrigger::*;
    let all = vec![StatusChange, Periodic, Final];
    for t in &all {
        match t {
            StatusChange | Periodic | Final => {}
        }
    }
    all
}

fn all_budget_statuses() -> Vec<BudgetStatus> {
    use BudgetStatus::*;
    let all = vec![Healthy, Warning, Critical, Exhausted];
    for s in &all {
        match s {
            Healthy | Warning | Critical | Exhausted => {}
        }
    }
    all
}

/// Avro enums are encoded by position: the schema's symbols must be the
/// Rust variants' serde names, in declaration order, so that an encoder
/// using the variant index (as `decode::avro` does for `Outcome`) is right.
#[test]
fn enum_symbols_are_the_rust_variants_in_declaration_order() {
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        (
            BREAKER_TRANSITION_AVSC,
            "BreakerState",
            names(&all_states()),
        ),
        (BUDGET_SNAPSHOT_AVSC, "BreakerState", names(&all_states())),
        (
            BREAKER_TRANSITION_AVSC,
            "TransitionReason",
            names(&all_reasons()),
        ),
        (ALERT_AVSC, "AlertStatus", names(&all_alert_statuses())),
        (ALERT_AVSC, "Severity", names(&all_severities())),
        (
            BUDGET_SNAPSHOT_AVSC,
            "SnapshotTrigger",
            names(&all_triggers()),
        ),
        (
            BUDGET_SNAPSHOT_AVSC,
            "BudgetStatus",
            names(&all_budget_statuses()),
        ),
    ];
    for (avsc, name, rust) in cases {
        assert_eq!(symbols(avsc, name), rust, "enum {name}");
    }
    // The same as the `as_str` spellings used elsewhere.
    let by_as_str: Vec<&str> = all_states().iter().map(|s| s.as_str()).collect();
    assert_eq!(names(&all_states()), by_as_str);
    let by_as_str: Vec<&str> = all_budget_statuses().iter().map(|s| s.as_str()).collect();
    assert_eq!(names(&all_budget_statuses()), by_as_str);
}

/// `io.breakwater.BreakerState` is defined in two schemas; a consumer
/// holding both (or a registry checking references) needs them to agree.
#[test]
fn shared_named_types_agree_across_schemas() {
    for (name, avsc) in [
        ("breaker_transition", BREAKER_TRANSITION_AVSC),
        ("alert", ALERT_AVSC),
        ("budget_snapshot", BUDGET_SNAPSHOT_AVSC),
        ("accuracy_declaration", ACCURACY_DECLARATION_AVSC),
    ] {
        Schema::parse_str(avsc).unwrap_or_else(|e| panic!("{name}.avsc: {e}"));
        let j: Json = serde_json::from_str(avsc).unwrap();
        assert_eq!(j["namespace"], "io.breakwater", "{name}.avsc");
    }
    assert_eq!(
        symbols(BREAKER_TRANSITION_AVSC, "BreakerState"),
        symbols(BUDGET_SNAPSHOT_AVSC, "BreakerState")
    );
}

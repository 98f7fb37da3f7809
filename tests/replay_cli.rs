//! `breakwater replay` and `breakwater generate` end to end: the real binary,
//! real files, asserting on stdout, stderr and the exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{json, Value};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_breakwater");

/// 2026-12-01T00:00:00Z, the demo scenario's start.
const T0: i64 = 1_796_083_200_000;
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;

// ------------------------------------------------------------------ harness

struct Run {
    success: bool,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }
}

/// Runs the binary with `args`; no backtraces or log filters from the
/// environment leak into stderr.
fn breakwater<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .output()
        .expect("the breakwater binary runs");
    Run {
        success: out.status.success(),
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs the binary and insists that it succeeds.
fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let run = breakwater(args);
    assert!(
        run.success,
        "breakwater {:?} failed ({:?}):\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        run.code,
        run.stderr
    );
    run
}

/// `breakwater replay --input <input> <extra…>`.
fn replay(input: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["replay".into(), "--input".into(), path_str(input)];
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(&args)
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_string()
}

fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write a temp file");
    path
}

/// Every stdout line as a JSON object; fails on anything else.
fn records(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("stdout is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "output ends with a newline"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line {} is not JSON ({e}): {line}", i + 1));
            assert!(
                v.is_object(),
                "stdout line {} is not an object: {line}",
                i + 1
            );
            v
        })
        .collect()
}

fn kind(r: &Value) -> &str {
    r["type"]
        .as_str()
        .expect("every record has a string `type`")
}

fn agent(r: &Value) -> &str {
    r["agent_id"].as_str().expect("every record has agent_id")
}

fn transitions<'a>(recs: &'a [Value], agent_id: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| kind(r) == "breaker_transition" && agent(r) == agent_id)
        .collect()
}

fn final_snapshot<'a>(recs: &'a [Value], agent_id: &str) -> &'a Value {
    let finals: Vec<&Value> = recs
        .iter()
        .filter(|r| kind(r) == "budget_snapshot" && r["trigger"] == "FINAL" && agent(r) == agent_id)
        .collect();
    assert_eq!(finals.len(), 1, "one FINAL snapshot for {agent_id}");
    finals[0]
}

/// One task event as a JSON line.
fn event(id: &str, agent_id: &str, timestamp: Value, outcome: &str, latency_ms: i64) -> String {
    let mut line = json!({
        "event_id": id,
        "agent_id": agent_id,
        "timestamp": timestamp,
        "outcome": outcome,
        "latency_ms": latency_ms,
    })
    .to_string();
    line.push('\n');
    line
}

/// The stderr summary's counts: "replayed R records: E events, B bad, …".
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("replayed "))
        .unwrap_or_else(|| panic!("no summary line on stderr:\n{stderr}"))
}

// ------------------------------------------------------------ determinism

/// The demo stream, generated as JSON lines and as Avro.
fn demo_inputs(dir: &TempDir) -> (PathBuf, PathBuf) {
    let jsonl = dir.path().join("demo.jsonl");
    let avro = dir.path().join("demo.avro");
    ok(&["generate", "--seed", "7", "--output", &path_str(&jsonl)]);
    ok(&[
        "generate",
        "--seed",
        "7",
        "--format",
        "avro",
        "--output",
        &path_str(&avro),
    ]);
    (jsonl, avro)
}

#[test]
fn demo_replay_is_byte_identical_across_runs_and_input_formats() {
    let dir = TempDir::new().unwrap();
    let (jsonl, avro) = demo_inputs(&dir);

    // The generator itself is deterministic, to stdout as to a file.
    let generated = ok(&["generate", "--seed", "7"]);
    assert_eq!(generated.stdout, std::fs::read(&jsonl).unwrap());
    let other_seed = ok(&["generate", "--seed", "8"]);
    assert_ne!(generated.stdout, other_seed.stdout, "the seed matters");
    assert_eq!(
        &std::fs::read(&avro).unwrap()[..4],
        b"Obj\x01",
        "an Avro object container file"
    );

    let first = replay(&jsonl, &[]);
    let second = replay(&jsonl, &[]);
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout, "two JSONL replays differ");
    assert_eq!(summary(&first.stderr), summary(&second.stderr));

    let explicit = replay(&jsonl, &["--format", "jsonl"]);
    assert_eq!(first.stdout, explicit.stdout);

    // Avro, detected from the magic bytes and named explicitly.
    let from_avro = replay(&avro, &[]);
    assert_eq!(
        first.stdout, from_avro.stdout,
        "replaying the Avro stream differs from the JSONL one"
    );
    assert_eq!(summary(&first.stderr), summary(&from_avro.stderr));
    let from_avro_explicit = replay(&avro, &["--format", "avro"]);
    assert_eq!(first.stdout, from_avro_explicit.stdout);

    // --output writes exactly what stdout would have shown.
    let out_file = dir.path().join("out.jsonl");
    let to_file = replay(&jsonl, &["--output", &path_str(&out_file)]);
    assert!(to_file.stdout.is_empty());
    assert_eq!(std::fs::read(&out_file).unwrap(), first.stdout);

    let lines = std::fs::read_to_string(&jsonl).unwrap().lines().count();
    assert!(
        summary(&first.stderr).contains(&format!("{lines} events, 0 bad")),
        "{}",
        summary(&first.stderr)
    );
}

#[test]
fn output_is_typed_json_lines_with_sorted_final_snapshots_and_increasing_seq() {
    let dir = TempDir::new().unwrap();
    let (jsonl, _) = demo_inputs(&dir);
    let recs = records(&replay(&jsonl, &[]).stdout);

    let kinds: BTreeSet<&str> = recs.iter().map(kind).collect();
    let allowed: BTreeSet<&str> = ["alert", "breaker_transition", "budget_snapshot"].into();
    assert_eq!(
        kinds, allowed,
        "the demo exercises every record type, no other"
    );

    let input_agents: BTreeSet<String> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["agent_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    // Final snapshots: a suffix of the output, one per agent, sorted by id.
    let is_final = |r: &Value| kind(r) == "budget_snapshot" && r["trigger"] == "FINAL";
    let first_final = recs.iter().position(is_final).expect("final snapshots");
    assert!(
        recs[first_final..].iter().all(is_final),
        "only FINAL snapshots after the first one"
    );
    assert!(
        recs[..first_final].iter().all(|r| !is_final(r)),
        "no FINAL snapshot before the last event's records"
    );
    let final_ids: Vec<String> = recs[first_final..]
        .iter()
        .map(|r| agent(r).to_string())
        .collect();
    let sorted: Vec<String> = input_agents.iter().cloned().collect();
    assert_eq!(final_ids, sorted, "one FINAL per agent, sorted by agent_id");

    // Before the finals, snapshots are status changes (replay writes no periodic ones).
    for r in &recs[..first_final] {
        if kind(r) == "budget_snapshot" {
            assert_eq!(r["trigger"], "STATUS_CHANGE", "{r}");
        }
    }

    // Per agent, seq strictly increases across all the agent's records.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        let seq = r["seq"].as_u64().expect("seq is an unsigned integer");
        if let Some(prev) = last.insert(agent(r), seq) {
            assert!(
                seq > prev,
                "record {i} of {}: seq {seq} after {prev}",
                agent(r)
            );
        }
    }
    assert_eq!(last.len(), input_agents.len());
}

// ------------------------------------------------------- the SPEC example

/// 1000 tasks of one agent, 60 of them FAILURE spread evenly, `spacing_ms`
/// apart, as JSON lines; also returns whether each one failed.
fn spec_example(agent_id: &str, spacing_ms: i64) -> (String, Vec<bool>) {
    let failed: BTreeSet<usize> = (0..60).map(|k| k * 1000 / 60 + 8).collect();
    assert_eq!(failed.len(), 60);
    let mut text = String::new();
    let mut outcomes = Vec::new();
    for i in 0..1000 {
        let fail = failed.contains(&i);
        outcomes.push(fail);
        text.push_str(&event(
            &format!("{agent_id}-{i}"),
            agent_id,
            json!(T0 + i as i64 * spacing_ms),
            if fail { "FAILURE" } else { "SUCCESS" },
            120,
        ));
    }
    (text, outcomes)
}

fn assert_seed_numbers(snap: &Value, recommendation: &str) {
    assert_eq!(snap["tasks"], 1000);
    assert_eq!(snap["failed"], 60);
    assert_eq!(
        snap["remaining_percent"].as_f64(),
        Some(-20.0),
        "exactly −20 %"
    );
    assert_eq!(snap["status"], "EXHAUSTED");
    assert_eq!(snap["recommendation"], recommendation);
}

#[test]
fn spec_worked_example_throttle_by_default() {
    let dir = TempDir::new().unwrap();
    // 80 s apart: 1000 tasks span 22.2 h (inside the 24 h budget window),
    // and the 5 min breaker window never holds min_calls (20) tasks.
    let (text, _) = spec_example("agent-x", 80 * SEC);
    let input = write(&dir, "spec.jsonl", &text);
    let run = replay(&input, &[]);
    let recs = records(&run.stdout);
    let snap = final_snapshot(&recs, "agent-x");
    assert_seed_numbers(snap, "Throttle agent — error budget depleted");
    assert_eq!(snap["slo"]["source"], "defaults");
    assert_eq!(snap["slo"]["on_budget_exhausted"], "throttle");
    assert!(
        transitions(&recs, "agent-x").is_empty(),
        "throttle never moves the breaker, and no window reaches min_calls"
    );
    assert!(summary(&run.stderr).contains("1000 events, 0 bad"));

    // 10 s apart the breaker trips on failure rate; events while it is OPEN
    // still count (SPEC §6), so the budget is the same.
    let (text, _) = spec_example("agent-x", 10 * SEC);
    let input = write(&dir, "spec10.jsonl", &text);
    let recs = records(&replay(&input, &[]).stdout);
    assert_seed_numbers(
        final_snapshot(&recs, "agent-x"),
        "Throttle agent — error budget depleted",
    );
    let reasons: BTreeSet<&str> = transitions(&recs, "agent-x")
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains("FAILURE_RATE"), "{reasons:?}");
    assert!(
        !reasons.contains("BUDGET_EXHAUSTED"),
        "throttle must not trip the breaker on the budget: {reasons:?}"
    );
}

#[test]
fn spec_worked_example_circuit_break_trips_the_breaker_on_the_budget() {
    let dir = TempDir::new().unwrap();
    let config = write(
        &dir,
        "slo.yaml",
        "agents:\n  \"finance-*\":\n    on_budget_exhausted: circuit_break\n",
    );
    let (text, outcomes) = spec_example("finance-x", 80 * SEC);
    let input = write(&dir, "spec.jsonl", &text);
    let recs = records(&replay(&input, &["--config", &path_str(&config)]).stdout);

    let snap = final_snapshot(&recs, "finance-x");
    assert_seed_numbers(snap, "Circuit break agent — error budget depleted");
    assert_eq!(snap["slo"]["source"], "finance-*");
    assert_eq!(snap["slo"]["on_budget_exhausted"], "circuit_break");

    // SPEC §6: CLOSED → OPEN "when the budget is EXHAUSTED and the action is
    // circuit_break", at the time of the event that caused it. No window
    // here reaches min_calls, so the budget is the only possible reason. The
    // engine waits for alerts.min_tasks (20) tasks in the budget window.
    let ts = transitions(&recs, "finance-x");
    let first = ts.first().expect("the breaker opens");
    assert_eq!(first["reason"], "BUDGET_EXHAUSTED", "{first}");
    assert_eq!(first["previous_state"], "CLOSED");
    assert_eq!(first["state"], "OPEN");
    let (mut tasks, mut failed) = (0u64, 0u64);
    let due = outcomes
        .iter()
        .position(|&f| {
            tasks += 1;
            failed += f as u64;
            // remaining ≤ 0 ⇔ failed ≥ 5 % of tasks
            tasks >= 20 && failed * 20 >= tasks
        })
        .expect("the budget is exhausted at some point");
    assert_eq!(first["event_time"], T0 + due as i64 * 80 * SEC);
    assert_eq!(first["retry_at"], T0 + due as i64 * 80 * SEC + 300 * SEC);
    assert!(
        ts.iter()
            .all(|t| t["reason"] != "FAILURE_RATE" && t["reason"] != "LATENCY"),
        "no window reaches min_calls"
    );
}

// ------------------------------------------------------------- bad input

#[test]
fn bad_lines_are_reported_counted_and_skipped() {
    let dir = TempDir::new().unwrap();
    // 25 good events, 3 failures: enough to open the breaker and fire alerts.
    let good: Vec<String> = (0..25)
        .map(|i| {
            let outcome = if [2, 9, 17].contains(&i) {
                "FAILURE"
            } else {
                "SUCCESS"
            };
            event(
                &format!("g{i}"),
                "agent-g",
                json!(T0 + i * SEC),
                outcome,
                300,
            )
        })
        .collect();
    let bad = |id: &str, rest: &str| {
        format!(r#"{{"event_id":"{id}","agent_id":"agent-g","timestamp":{T0}{rest}}}"#) + "\n"
    };
    // (line number, text, expected reason); good lines fill the gaps.
    let bad_lines: Vec<(usize, String, &str)> = vec![
        (3, "this is garbage\n".into(), "invalid JSON"),
        (
            6,
            r#"{"event_id":"b2","agent_id":"agent-g","timestamp":17960"#.to_string() + "\n",
            "truncated JSON",
        ),
        (
            7,
            bad("b3", r#","outcome":"SUCCESS""#),
            "missing required field `latency_ms`",
        ),
        (
            10,
            bad("b4", r#","outcome":"SUCCESS","latency_ms":-3"#),
            "field `latency_ms` has value -3",
        ),
        (
            14,
            bad("b5", r#","outcome":"MAYBE","latency_ms":3"#),
            "unknown outcome \"MAYBE\"",
        ),
    ];
    let blank_line = 12;
    let mut text = String::new();
    let mut good_iter = good.iter();
    let total_lines = good.len() + bad_lines.len() + 1;
    for n in 1..=total_lines {
        if let Some((_, line, _)) = bad_lines.iter().find(|(at, _, _)| *at == n) {
            text.push_str(line);
        } else if n == blank_line {
            text.push_str("  \n");
        } else {
            text.push_str(good_iter.next().unwrap());
        }
    }
    assert!(good_iter.next().is_none());
    let mixed = write(&dir, "mixed.jsonl", &text);
    let only_good = write(&dir, "good.jsonl", &good.concat());

    let run = replay(&mixed, &[]);
    let prefix = format!("{}:", path_str(&mixed));
    let reported: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert_eq!(reported.len(), bad_lines.len(), "stderr:\n{}", run.stderr);
    for ((line_no, _, reason), got) in bad_lines.iter().zip(&reported) {
        let want = format!("{prefix}{line_no}: ");
        assert!(got.starts_with(&want), "expected {want}… got {got}");
        assert!(
            got.contains(reason),
            "line {line_no}: {got} lacks {reason:?}"
        );
    }
    assert!(
        summary(&run.stderr).contains(&format!("{} events, {} bad", good.len(), bad_lines.len())),
        "{}",
        summary(&run.stderr)
    );

    let clean = replay(&only_good, &[]);
    assert!(
        summary(&clean.stderr).contains(&format!("{} events, 0 bad", good.len())),
        "{}",
        summary(&clean.stderr)
    );
    let recs = records(&clean.stdout);
    assert!(
        !transitions(&recs, "agent-g").is_empty(),
        "the good lines alone do something"
    );
    assert_eq!(
        run.stdout_text(),
        clean.stdout_text(),
        "bad lines changed the output"
    );
}

#[test]
fn config_errors_name_the_key_the_value_and_what_is_allowed() {
    let dir = TempDir::new().unwrap();
    let input = write(
        &dir,
        "events.jsonl",
        &event("e1", "finance-x", json!(T0), "SUCCESS", 10),
    );
    let cases: &[(&str, &[&str])] = &[
        (
            "defaults:\n  bogus_key: 3\n",
            &[
                "defaults.bogus_key",
                "unknown field `bogus_key`",
                "expected one of",
                "`task_success_rate`",
                "`window`",
            ],
        ),
        (
            "defaults:\n  task_success_rate: 1.5\n",
            &[
                "defaults.task_success_rate",
                "1.5 is not allowed",
                "expected a rate in [0, 1)",
            ],
        ),
        (
            "agents:\n  \"finance-*\":\n    breaker:\n      failure_threshold: 1.5\n",
            &[
                "agents.\"finance-*\".breaker.failure_threshold",
                "1.5 is not allowed",
                "expected a rate in [0, 1]",
            ],
        ),
        (
            "defaults:\n  window: 5 parsecs\n",
            &[
                "defaults.window",
                "\"5 parsecs\" is not allowed",
                "expected a positive duration such as \"5m\"",
            ],
        ),
        (
            "agents:\n  \"finance-*\":\n    breaker:\n      window: -5\n",
            &[
                "agents.\"finance-*\".breaker.window",
                "-5 is not allowed",
                "a positive duration",
            ],
        ),
        (
            "defaults:\n  on_budget_exhausted: explode\n",
            &[
                "defaults.on_budget_exhausted",
                "`explode`",
                "`throttle`, `degrade`, `circuit_break`",
            ],
        ),
    ];
    for (i, (yaml, wanted)) in cases.iter().enumerate() {
        let config = write(&dir, &format!("slo{i}.yaml"), yaml);
        let run = breakwater(&[
            "replay",
            "--config",
            &path_str(&config),
            "--input",
            &path_str(&input),
        ]);
        assert!(!run.success, "{yaml:?} was accepted");
        assert_ne!(run.code, Some(0));
        assert!(
            run.stdout.is_empty(),
            "{yaml:?}: output despite a bad config"
        );
        assert!(
            run.stderr.contains(&path_str(&config)),
            "{yaml:?}: the file is not named:\n{}",
            run.stderr
        );
        for w in *wanted {
            assert!(
                run.stderr.contains(w),
                "{yaml:?}: stderr lacks {w:?}:\n{}",
                run.stderr
            );
        }
    }
}

// ------------------------------------------------------------ timestamps

#[test]
fn rfc3339_timestamps_replay_like_epoch_milliseconds() {
    let dir = TempDir::new().unwrap();
    let offsets = [0, 3600, -(5 * 3600 + 30 * 60)];
    let (mut epoch, mut rfc) = (String::new(), String::new());
    for i in 0..60i64 {
        let ts = T0 + i * 7_001 + 250;
        let outcome = if i % 9 == 4 { "TIMEOUT" } else { "SUCCESS" };
        let agent_id = if i % 2 == 0 { "agent-r1" } else { "agent-r2" };
        let offset = FixedOffset::east_opt(offsets[i as usize % offsets.len()]).unwrap();
        let text = DateTime::from_timestamp_millis(ts)
            .unwrap()
            .with_timezone(&offset)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let id = format!("e{i}");
        epoch.push_str(&event(&id, agent_id, json!(ts), outcome, 40 * i));
        rfc.push_str(&event(&id, agent_id, json!(text), outcome, 40 * i));
    }
    assert!(rfc.contains("+01:00") && rfc.contains("-05:30") && rfc.contains("Z\""));
    let a = replay(&write(&dir, "epoch.jsonl", &epoch), &[]);
    let b = replay(&write(&dir, "rfc.jsonl", &rfc), &[]);
    assert!(
        summary(&b.stderr).contains("60 events, 0 bad"),
        "{}",
        b.stderr
    );
    let recs = records(&a.stdout);
    assert!(
        recs.iter().any(|r| kind(r) == "breaker_transition"),
        "the input does something"
    );
    assert_eq!(a.stdout_text(), b.stdout_text());
}

// ---------------------------------------------------------- declarations

fn declaration(
    version: &str,
    supersedes: Option<&str>,
    accuracy: f64,
    published_at: i64,
) -> String {
    declaration_at(version, supersedes, accuracy, json!(published_at))
}

/// A declaration line whose `published_at` is any JSON value (epoch ms or an
/// RFC 3339 string).
fn declaration_at(
    version: &str,
    supersedes: Option<&str>,
    accuracy: f64,
    published_at: Value,
) -> String {
    json!({
        "agent_id": "acc-agent",
        "version": version,
        "declared_accuracy": {"task_completion": accuracy},
        "measurement_method": "automated_eval_suite_v3",
        "valid_for_days": 30,
        "published_at": published_at,
        "supersedes": supersedes,
    })
    .to_string()
        + "\n"
}

#[test]
fn accuracy_below_declaration_fires_and_an_out_of_order_declaration_is_refused() {
    let dir = TempDir::new().unwrap();
    // One task a minute (the breaker window never reaches min_calls);
    // failures at 0, 25, 50, 75: 96 % success.
    let events: String = (0..100)
        .map(|i| {
            let outcome = if i % 25 == 0 { "FAILURE" } else { "SUCCESS" };
            event(
                &format!("e{i}"),
                "acc-agent",
                json!(T0 + i * MIN),
                outcome,
                500,
            )
        })
        .collect();
    let input = write(&dir, "events.jsonl", &events);
    let decls = declaration("1.2.0", None, 0.99, T0 - SEC)
        // Later, but a lower version: out of order.
        + &declaration("1.1.0", Some("1.2.0"), 0.90, T0 + 60 * MIN);
    let decl_file = write(&dir, "decl.jsonl", &decls);

    let run = replay(&input, &["--declarations", &path_str(&decl_file)]);
    let recs = records(&run.stdout);
    let rule = "accuracy_below_declaration:task_completion";
    let acc: Vec<&Value> = recs
        .iter()
        .filter(|r| kind(r) == "alert" && r["rule"] == rule)
        .collect();
    let firing = acc.first().unwrap_or_else(|| panic!("no {rule} alert"));
    assert_eq!(firing["status"], "FIRING");
    assert_eq!(firing["agent_id"], "acc-agent");
    assert_eq!(firing["threshold"], 0.99);
    // It waits for accuracy.min_samples (50) tasks: the 50th task, 48 of them passed.
    assert_eq!(firing["event_time"], T0 + 49 * MIN);
    assert_eq!(firing["value"], 0.96);
    assert!(
        acc.iter().all(|a| a["status"] == "FIRING"),
        "stays below the declaration"
    );

    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("declaration acc-agent 1.1.0 refused")
                && l.contains("must be greater than the current version 1.2.0")),
        "stderr:\n{}",
        run.stderr
    );
    assert!(summary(&run.stderr).contains("100 events, 0 bad"));
    let snap = final_snapshot(&recs, "acc-agent");
    assert_eq!(
        snap["accuracy"]["version"], "1.2.0",
        "the refused one is not in force"
    );
    assert_eq!(snap["accuracy"]["declared"]["task_completion"], 0.99);
    assert_eq!(snap["accuracy"]["measured"]["task_completion"], 0.96);
    assert_eq!(snap["accuracy"]["samples"]["task_completion"], 100);
    assert!(snap["firing_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == rule));
}

/// One task a minute for 100 minutes; failures at 0, 25, 50, 75.
fn accuracy_events(dir: &TempDir) -> PathBuf {
    let events: String = (0..100)
        .map(|i| {
            let outcome = if i % 25 == 0 { "FAILURE" } else { "SUCCESS" };
            event(
                &format!("e{i}"),
                "acc-agent",
                json!(T0 + i * MIN),
                outcome,
                500,
            )
        })
        .collect();
    write(dir, "events.jsonl", &events)
}

/// `ms` as an RFC 3339 date-time with millisecond precision, at a UTC
/// offset of `offset_secs`.
fn rfc3339(ms: i64, offset_secs: i32) -> String {
    let offset = FixedOffset::east_opt(offset_secs).unwrap();
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn unparseable_and_refused_declarations_are_reported_by_line_and_skipped() {
    let dir = TempDir::new().unwrap();
    let input = accuracy_events(&dir);
    let good = declaration("1.2.0", None, 0.99, T0 - SEC);
    let lines = [
        good.clone(),
        "this is not a declaration\n".to_string(),
        // Later, but a lower version: out of order.
        declaration("1.1.0", Some("1.2.0"), 0.90, T0 + 60 * MIN),
        "  \n".to_string(),
        declaration_at("1.3.0", Some("1.2.0"), 0.90, json!("noon")),
    ];
    let decl_file = write(&dir, "decl.jsonl", &lines.concat());
    let only_good = write(&dir, "good.jsonl", &good);

    // `replay` insists on exit status 0.
    let run = replay(&input, &["--declarations", &path_str(&decl_file)]);
    let prefix = format!("{}:", path_str(&decl_file));
    let reported: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert_eq!(reported.len(), 3, "stderr:\n{}", run.stderr);
    let at = |line: usize, wanted: &[&str]| {
        let start = format!("{prefix}{line}: ");
        let got = reported
            .iter()
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("nothing reported for {start}… in:\n{}", run.stderr));
        for w in wanted {
            assert!(got.contains(w), "{got} lacks {w:?}");
        }
    };
    at(
        2,
        &["not an accuracy declaration: ", "expected ident at line 1"],
    );
    at(
        3,
        &[
            "declaration acc-agent 1.1.0 refused: ",
            "version 1.1.0 must be greater than the current version 1.2.0",
        ],
    );
    at(
        5,
        &[
            "not an accuracy declaration: ",
            "published_at: bad timestamp \"noon\"",
        ],
    );
    let summary_line = summary(&run.stderr);
    assert!(
        summary_line.contains("100 events, 0 bad")
            && summary_line.contains("declarations: 1 applied, 1 refused, 2 unparseable"),
        "{summary_line}"
    );

    // The good declaration is in force, and nothing else changed the output.
    let recs = records(&run.stdout);
    let snap = final_snapshot(&recs, "acc-agent");
    assert_eq!(snap["accuracy"]["version"], "1.2.0");
    assert_eq!(snap["accuracy"]["declared"]["task_completion"], 0.99);
    assert!(recs
        .iter()
        .any(|r| kind(r) == "alert" && r["rule"] == "accuracy_below_declaration:task_completion"));
    let clean = replay(&input, &["--declarations", &path_str(&only_good)]);
    assert!(
        summary(&clean.stderr).contains("declarations: 1 applied, 0 refused, 0 unparseable"),
        "{}",
        clean.stderr
    );
    assert_eq!(run.stdout_text(), clean.stdout_text());

    // Without a declarations file, the summary does not mention them.
    let none = replay(&input, &[]);
    assert!(
        !summary(&none.stderr).contains("declarations"),
        "{}",
        none.stderr
    );
}

#[test]
fn rfc3339_published_at_declares_like_epoch_milliseconds() {
    let dir = TempDir::new().unwrap();
    let input = accuracy_events(&dir);
    let first = T0 - SEC;
    // Between two events, with milliseconds.
    let second = T0 + 30 * MIN + 250;
    let epoch = declaration("1.0.0", None, 0.99, first)
        + &declaration("1.1.0", Some("1.0.0"), 0.90, second);
    let rfc = declaration_at("1.0.0", None, 0.99, json!(rfc3339(first, 0)))
        + &declaration_at(
            "1.1.0",
            Some("1.0.0"),
            0.90,
            json!(rfc3339(second, -(5 * 3600 + 30 * 60))),
        );
    assert!(rfc.contains("Z\"") && rfc.contains(".250-05:30\""), "{rfc}");
    let a = replay(
        &input,
        &[
            "--declarations",
            &path_str(&write(&dir, "epoch.jsonl", &epoch)),
        ],
    );
    let b = replay(
        &input,
        &["--declarations", &path_str(&write(&dir, "rfc.jsonl", &rfc))],
    );
    assert!(
        summary(&b.stderr).contains("declarations: 2 applied, 0 refused, 0 unparseable"),
        "{}",
        b.stderr
    );
    let recs = records(&b.stdout);
    let snap = final_snapshot(&recs, "acc-agent");
    assert_eq!(snap["accuracy"]["version"], "1.1.0");
    assert_eq!(snap["accuracy"]["declared"]["task_completion"], 0.90);
    assert_eq!(snap["accuracy"]["expires_at"], second + 30 * 86_400_000);
    assert_eq!(a.stdout_text(), b.stdout_text());
}

// ------------------------------------------------------------------ timers

/// Agent A opens its breaker (2 failures in 20 tasks, 1 s apart); agent B
/// sends one failed task 10 minutes after A's last.
fn timer_input(dir: &TempDir) -> PathBuf {
    let mut text = String::new();
    for i in 0..20 {
        let outcome = if i == 3 || i == 11 {
            "FAILURE"
        } else {
            "SUCCESS"
        };
        text.push_str(&event(
            &format!("a{i}"),
            "agent-a",
            json!(T0 + i * SEC),
            outcome,
            100,
        ));
    }
    text.push_str(&event(
        "b0",
        "agent-b",
        json!(T0 + 19 * SEC + 10 * MIN),
        "FAILURE",
        100,
    ));
    write(dir, "timer.jsonl", &text)
}

#[test]
fn cooldown_elapses_on_stream_time_driven_by_another_agent() {
    let dir = TempDir::new().unwrap();
    let recs = records(&replay(&timer_input(&dir), &[]).stdout);

    let a = transitions(&recs, "agent-a");
    assert_eq!(a.len(), 2, "{a:?}");
    let open = a[0];
    assert_eq!(
        (&open["previous_state"], &open["state"], &open["reason"]),
        (&json!("CLOSED"), &json!("OPEN"), &json!("FAILURE_RATE"))
    );
    assert_eq!(open["event_time"], T0 + 19 * SEC);
    assert_eq!(open["window_tasks"], 20);
    assert_eq!(open["window_failed"], 2);
    assert_eq!(open["cooldown_ms"], 300_000);
    let retry_at = open["retry_at"].as_i64().expect("an OPEN has retry_at");
    assert_eq!(retry_at, T0 + 19 * SEC + 300 * SEC);

    let half = a[1];
    assert_eq!(
        (&half["previous_state"], &half["state"], &half["reason"]),
        (
            &json!("OPEN"),
            &json!("HALF_OPEN"),
            &json!("COOLDOWN_ELAPSED")
        )
    );
    assert_eq!(
        half["event_time"], retry_at,
        "at the due time, not at B's event"
    );
    assert!(half["retry_at"].is_null());
    assert!(half["seq"].as_u64() > open["seq"].as_u64());

    let pos = |r: &Value| recs.iter().position(|x| std::ptr::eq(x, r)).unwrap();
    let first_b = recs
        .iter()
        .position(|r| agent(r) == "agent-b")
        .expect("agent B has records");
    assert!(
        pos(half) < first_b,
        "the HALF_OPEN comes before agent B's later records"
    );
    assert!(recs[first_b]["event_time"].as_i64().unwrap() > retry_at);
    assert_eq!(
        final_snapshot(&recs, "agent-a")["breaker"]["state"],
        "HALF_OPEN"
    );
}

/// A transition's window figures describe the breaker window at its
/// `event_time`. For the cooldown's OPEN → HALF_OPEN at retry_at, all of
/// agent A's tasks are more than 5 minutes old: the window is empty.
#[test]
fn half_open_transition_reports_the_breaker_window_at_its_event_time() {
    let dir = TempDir::new().unwrap();
    let recs = records(&replay(&timer_input(&dir), &[]).stdout);
    let half = transitions(&recs, "agent-a")
        .into_iter()
        .find(|t| t["state"] == "HALF_OPEN")
        .expect("a HALF_OPEN transition");
    assert_eq!(
        (
            &half["window_tasks"],
            &half["window_failed"],
            &half["failure_rate"],
            &half["avg_latency_ms"]
        ),
        (&json!(0), &json!(0), &Value::Null, &Value::Null),
        "stale breaker-window figures on the cooldown transition (the window was \
         not advanced to the timer's due time): {half}"
    );
}

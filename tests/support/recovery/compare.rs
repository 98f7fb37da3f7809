//! Comparing what the job wrote with the oracle, repeats dropped by sequence number.

#[allow(unused_imports)]
use super::*;

/// An output topic's records per agent with repeats dropped.
#[derive(Debug, Default)]
pub struct Deduped {
    /// Per agent, the records in topic order, each `(agent, seq)` once.
    pub by_agent: BTreeMap<String, Vec<Value>>,
    pub records: usize,
    pub duplicates: usize,
}

/// Drops repeats by `(agent, seq)`. A repeat must be byte-identical to the
/// first record with its seq, and every record seen for the first time
/// must have a higher seq than all before it for its agent: otherwise a
/// problem is reported.
pub fn dedup(topic: &str, records: &[Record], problems: &mut Vec<String>) -> Deduped {
    let mut first: BTreeMap<(String, i64), (&[u8], i32, i64)> = BTreeMap::new();
    let mut out = Deduped {
        records: records.len(),
        ..Deduped::default()
    };
    for r in records {
        let payload = r.payload.as_deref().unwrap_or_default();
        let v: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "{topic} {}:{} is no JSON: {e}",
                    r.partition, r.offset
                ));
                continue;
            }
        };
        let agent = r.key_str().to_string();
        if v["agent_id"] != agent.as_str() {
            problems.push(format!(
                "{topic} {}:{} keyed {agent} is of {}",
                r.partition, r.offset, v["agent_id"]
            ));
        }
        let Some(seq) = v["seq"].as_i64() else {
            problems.push(format!("{topic} {}:{} has no seq", r.partition, r.offset));
            continue;
        };
        match first.get(&(agent.clone(), seq)) {
            Some((earlier, p, o)) => {
                out.duplicates += 1;
                if *earlier != payload {
                    problems.push(format!(
                        "{topic}: {agent} seq {seq} at {}:{} differs from the record with that seq at {p}:{o}:\n  first:  {}\n  repeat: {}",
                        r.partition,
                        r.offset,
                        String::from_utf8_lossy(earlier),
                        String::from_utf8_lossy(payload)
                    ));
                }
            }
            None => {
                let list = out.by_agent.entry(agent.clone()).or_default();
                if let Some(prev) = list.last().and_then(|p| p["seq"].as_i64()) {
                    if seq <= prev {
                        problems.push(format!(
                            "{topic}: {agent} seq {seq} at {}:{} is new but follows seq {prev}",
                            r.partition, r.offset
                        ));
                    }
                }
                list.push(v);
                first.insert((agent, seq), (payload, r.partition, r.offset));
            }
        }
    }
    out
}

/// The outcome of comparing a run's topics with the oracle.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    pub snapshots: usize,
    pub transitions: usize,
    pub duplicate_transitions: usize,
    pub alerts: usize,
    pub duplicate_alerts: usize,
}

impl Verdict {
    /// Panics listing the problems (at most 25), if there are any.
    pub fn assert_ok(&self, context: &str) {
        if self.problems.is_empty() {
            return;
        }
        let shown: Vec<&str> = self.problems.iter().take(25).map(String::as_str).collect();
        panic!(
            "{} problems comparing the run with the oracle ({context}):\n- {}\n{}",
            self.problems.len(),
            shown.join("\n- "),
            context
        );
    }
}

/// Fields of a budget snapshot that depend on how the input was cut into
/// runs, not on the input: `trigger` (why it was written: PERIODIC at a
/// checkpoint or FINAL at a stop, where the oracle's last is FINAL) and
/// `seq` (the agent's counter over all its records, snapshots included:
/// the live job writes a snapshot per checkpoint, which replay does not).
/// Every other field — event time, window bounds, counts, budget, status,
/// recommendation, burn rates, breaker, metrics, violations, firing alerts —
/// is defined by the input and must equal the oracle's.
pub const SNAPSHOT_RUN_FIELDS: [&str; 2] = ["seq", "trigger"];

/// Transitions and alerts carry the agent's `seq`, which also counts the
/// agent's snapshots: the live job writes more of those than replay (one
/// per checkpoint), so its seqs are larger; they must still be strictly
/// increasing, and a repeat must carry the seq of what it repeats. Every
/// other field must equal the oracle's.
pub const OUTPUT_RUN_FIELDS: [&str; 1] = ["seq"];

/// Compares what the run left on the snapshots, breaker and alerts topics
/// (read to their end) with the oracle:
/// - every agent's latest snapshot (highest position) is at or past its
///   last input offset and equals the oracle's final snapshot, but for
///   [`SNAPSHOT_RUN_FIELDS`];
/// - every snapshot of an agent is in the snapshots partition numbered like
///   the agent's input partition;
/// - per agent, the transitions and the alerts, repeats dropped by seq,
///   equal the oracle's one for one and in order, but for
///   [`OUTPUT_RUN_FIELDS`]: none missing, none extra, none different.
pub fn compare(
    d: &Deployment,
    oracle: &BTreeMap<String, History>,
    partition_of: impl Fn(&str) -> i32,
    last: &BTreeMap<String, i64>,
) -> Verdict {
    let bootstrap = d.bootstrap();
    let mut problems = Vec::new();
    let read = |topic: &str| {
        let records = read_to_end(&bootstrap, topic);
        dump(&d.dir.path().join(format!("{topic}.jsonl")), &records);
        records
    };
    let (s, t, a) = (read(SNAPSHOTS), read(BREAKER), read(ALERTS));
    // Record-level problems (malformed records, repeats that differ) are
    // listed after the per-agent ones, which say more.
    let mut records = Vec::new();
    let snaps = snapshots(&s, &mut records);
    let transitions = dedup(BREAKER, &t, &mut records);
    let alerts = dedup(ALERTS, &a, &mut records);

    for s in &snaps {
        let expected = partition_of(&s.agent);
        if s.partition != expected {
            problems.push(format!(
                "a snapshot of {} (input partition {expected}) is in snapshots partition {} at offset {}",
                s.agent, s.partition, s.offset
            ));
        }
    }
    let latest = latest_by_position(&snaps);
    let agents: BTreeSet<&String> = oracle
        .keys()
        .chain(latest.keys())
        .chain(transitions.by_agent.keys())
        .chain(alerts.by_agent.keys())
        .collect();
    for agent in agents {
        let h = oracle.get(agent).cloned().unwrap_or_default();
        match (latest.get(agent), &h.last) {
            (None, None) => {}
            (None, Some(_)) => problems.push(format!("{agent}: no snapshot on {SNAPSHOTS}")),
            (Some(_), None) => problems.push(format!(
                "{agent}: snapshots of an agent the oracle does not know"
            )),
            (Some(live), Some(want)) => {
                if let Some(&l) = last.get(agent) {
                    if live.position < l {
                        problems.push(format!(
                            "{agent}: latest snapshot at position {} < last input offset {l}",
                            live.position
                        ));
                    }
                }
                let (got, want) = (
                    without(&live.json, &SNAPSHOT_RUN_FIELDS),
                    without(want, &SNAPSHOT_RUN_FIELDS),
                );
                if got != want {
                    problems.push(format!(
                        "{agent}: latest snapshot (position {}, {}:{}) differs from the oracle's final one in {}",
                        live.position,
                        live.partition,
                        live.offset,
                        diff_fields(&got, &want)
                    ));
                }
            }
        }
        compare_list(
            &mut problems,
            agent,
            "transitions",
            transitions.by_agent.get(agent),
            &h.transitions,
        );
        compare_list(
            &mut problems,
            agent,
            "alerts",
            alerts.by_agent.get(agent),
            &h.alerts,
        );
    }
    problems.extend(records);
    Verdict {
        problems,
        snapshots: snaps.len(),
        transitions: transitions.records,
        duplicate_transitions: transitions.duplicates,
        alerts: alerts.records,
        duplicate_alerts: alerts.duplicates,
    }
}

/// Writes records as JSON lines (partition, offset, key, position header,
/// instance header, payload) for a look after a failure.
pub(crate) fn dump(path: &Path, records: &[Record]) {
    let text: String = records
        .iter()
        .map(|r| {
            let header = |h: &str| r.header(h).map(|v| String::from_utf8_lossy(v).into_owned());
            let payload = r
                .payload
                .as_deref()
                .map(|p| serde_json::from_slice::<Value>(p).unwrap_or(Value::Null));
            format!(
                "{}\n",
                json!({
                    "partition": r.partition, "offset": r.offset, "key": r.key_str(),
                    "position": header(POSITION_HEADER), "instance": header(INSTANCE_HEADER),
                    "payload": payload,
                })
            )
        })
        .collect();
    let _ = std::fs::write(path, text);
}

pub(crate) fn compare_list(
    problems: &mut Vec<String>,
    agent: &str,
    what: &str,
    got: Option<&Vec<Value>>,
    want: &[Value],
) {
    let got: Vec<Value> = got
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| without(v, &OUTPUT_RUN_FIELDS))
        .collect();
    let want: Vec<Value> = want
        .iter()
        .map(|v| without(v, &OUTPUT_RUN_FIELDS))
        .collect();
    if got == want {
        return;
    }
    let i = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
    problems.push(format!(
        "{agent}: {} {what} (repeats dropped) where the oracle has {}; first difference at #{i}:\n  got:    {}\n  oracle: {}",
        got.len(),
        want.len(),
        got.get(i).map_or("(none)".to_string(), Value::to_string),
        want.get(i).map_or("(none)".to_string(), Value::to_string),
    ));
}

/// The top-level fields in which two JSON objects differ, with both values.
pub(crate) fn diff_fields(got: &Value, want: &Value) -> String {
    let (Some(g), Some(w)) = (got.as_object(), want.as_object()) else {
        return format!("{got} vs {want}");
    };
    let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
    keys.into_iter()
        .filter(|k| g.get(*k) != w.get(*k))
        .map(|k| {
            format!(
                "`{k}`: got {} / oracle {}",
                g.get(k).map_or("(absent)".into(), Value::to_string),
                w.get(k).map_or("(absent)".into(), Value::to_string)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

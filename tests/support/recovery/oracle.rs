//! The oracle: `breakwater replay` over each input partition alone.

#[allow(unused_imports)]
use super::*;

/// What one uninterrupted pass gives for one agent.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub transitions: Vec<Value>,
    pub alerts: Vec<Value>,
    /// The final budget snapshot.
    pub last: Option<Value>,
}

/// Runs `breakwater replay` with the deployment's config over each input
/// partition's events alone (in offset order) and gathers each agent's
/// transitions, alerts and final snapshot. `type` tags are removed.
pub fn oracle(
    config: &Path,
    dir: &Path,
    events: &[Planned],
    partitions: i32,
) -> BTreeMap<String, History> {
    let mut out: BTreeMap<String, History> = BTreeMap::new();
    for p in 0..partitions {
        let input = dir.join(format!("oracle-input-{p}.jsonl"));
        let lines: String = events
            .iter()
            .filter(|e| e.partition == p)
            .map(|e| format!("{}\n", e.json))
            .collect();
        std::fs::write(&input, lines).expect("write the oracle input");
        let output = dir.join(format!("oracle-output-{p}.jsonl"));
        let run = Command::new(BIN)
            .args(["replay", "--config"])
            .arg(config)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .env_remove("RUST_LOG")
            .output()
            .expect("run breakwater replay");
        assert!(
            run.status.success(),
            "breakwater replay failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&output).expect("replay output");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: Value = serde_json::from_str(line).expect("replay writes JSON lines");
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            strip(&mut v, &["type"]);
            let agent = v["agent_id"].as_str().expect("agent_id").to_string();
            let h = out.entry(agent).or_default();
            match kind.as_str() {
                "breaker_transition" => h.transitions.push(v),
                "alert" => h.alerts.push(v),
                "budget_snapshot" if v["trigger"] == "FINAL" => h.last = Some(v),
                "budget_snapshot" => {}
                other => panic!("replay wrote a record of type {other:?}"),
            }
        }
    }
    out
}

/// Removes `keys` from a JSON object.
pub fn strip(v: &mut Value, keys: &[&str]) {
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
}

pub(crate) fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    strip(&mut v, keys);
    v
}

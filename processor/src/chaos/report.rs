//! The chaos report: the seed's questions, answered per injected fault from
//! the job's outputs and the generated stream.
//!
//! - did the breaker trip (or the expected alert fire), and how long after
//!   the onset, in the agent's events and in event-time seconds;
//! - did it recover once the fault ended (HALF_OPEN → CLOSED, or RESOLVED);
//! - false positives: an OPEN or a FIRING alert on a healthy agent, or on a
//!   faulted agent outside its faults (plus a grace period after each);
//! - budgets: each agent's latest snapshot against tasks and failures counted
//!   straight from the events in the snapshot's window (not via the engine).
//!
//! ```
//! use breakwater::chaos::{ChaosScenario, Outputs, Report};
//! let s = ChaosScenario::from_yaml_str("seed: 1\nduration: 10m\ngroups: [{prefix: a, count: 2, profile: support}]\n").unwrap();
//! let (scenario, manifest) = s.resolve(None, None);
//! let events: Vec<_> = scenario.events().collect();
//! let report = Report::build(&manifest, &events, &Outputs::default(), 600_000);
//! assert!(report.faults.is_empty());
//! assert_eq!(report.false_positives.len(), 0);
//! assert!(!report.summary.budgets_match, "no snapshots: nothing to match");
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::engine::alert::AlertStatus;
use crate::engine::breaker::StateName;
use crate::event::{TaskEvent, TimestampMs};
use crate::output::{AlertEvent, BreakerTransition, BudgetSnapshot};

use super::budgets::{check_budgets, BudgetCheck};

use super::scenario::{Manifest, ManifestFault};

/// The job's outputs, as read back from the output topics.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub transitions: Vec<BreakerTransition>,
    pub alerts: Vec<AlertEvent>,
    pub snapshots: Vec<BudgetSnapshot>,
}

/// What should catch a fault of this kind.
fn expected(kind: &str) -> (bool, Option<&'static str>) {
    match kind {
        "tool_failures" | "latency" => (true, None),
        "delegation_loop" => (true, Some("delegation_loop")),
        "policy_violations" => (false, Some("policy_violation_rate")),
        "hallucinations" => (false, Some("hallucination_rate")),
        "tool_call_inflation" => (false, Some("avg_tool_calls")),
        _ => (false, Some("availability")),
    }
}

/// The answers for one injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
    pub agent_id: String,
    pub kind: String,
    pub start: TimestampMs,
    pub end: TimestampMs,
    /// `breaker OPEN`, `alert RULE`, or both.
    pub expected: String,
    /// The expected signal happened between the onset and the end + grace.
    pub detected: bool,
    /// `breaker` or `alert:RULE`: whichever came first.
    pub detected_by: Option<String>,
    pub detected_at: Option<TimestampMs>,
    /// The agent's events from the onset up to and including the detection.
    pub delay_events: Option<u64>,
    pub delay_seconds: Option<f64>,
    pub breaker_opened: bool,
    /// Every alert rule that fired on the agent during the fault (+ grace).
    pub alerts_fired: Vec<String>,
    pub half_opened_after_end: bool,
    /// Back to CLOSED (breaker) and RESOLVED (expected alert) after the end,
    /// and not re-tripped since.
    pub recovered: bool,
    /// From the fault's end to the recovery, event time.
    pub recovery_seconds: Option<f64>,
}

/// An OPEN or a FIRING alert that no fault explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalsePositive {
    pub agent_id: String,
    /// `breaker` or `alert:RULE`.
    pub signal: String,
    pub at: TimestampMs,
    /// Whether the agent had any fault at all.
    pub healthy_agent: bool,
}

/// The headline numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub faults: usize,
    pub detected: usize,
    pub recovered: usize,
    pub false_positives: usize,
    pub healthy_agents_with_signals: usize,
    pub budgets_match: bool,
    pub max_delay_seconds: Option<f64>,
    pub max_delay_events: Option<u64>,
}

/// The whole report (`breakwater chaos report --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    /// Event time of the scenario start.
    pub start: TimestampMs,
    pub agents: usize,
    pub events: u64,
    pub grace_ms: i64,
    pub summary: Summary,
    pub faults: Vec<FaultResult>,
    pub false_positives: Vec<FalsePositive>,
    pub budgets: BudgetCheck,
}

/// An agent's events, reduced to what the report counts: (time, task, failed).
pub(super) type Stream = Vec<(TimestampMs, bool, bool)>;

impl Report {
    /// Answers the questions for `manifest`'s faults. `grace_ms` is how long
    /// after a fault's end its signals are still attributed to it.
    pub fn build(
        manifest: &Manifest,
        events: &[TaskEvent],
        outputs: &Outputs,
        grace_ms: i64,
    ) -> Report {
        let mut streams: HashMap<&str, Stream> = HashMap::new();
        for e in events {
            streams.entry(e.agent_id.as_str()).or_default().push((
                e.timestamp,
                e.outcome.is_task(),
                e.outcome.is_failed(),
            ));
        }
        for s in streams.values_mut() {
            s.sort_by_key(|x| x.0);
        }
        let mut transitions: HashMap<&str, Vec<&BreakerTransition>> = HashMap::new();
        for t in &outputs.transitions {
            transitions.entry(t.agent_id.as_str()).or_default().push(t);
        }
        let mut alerts: HashMap<&str, Vec<&AlertEvent>> = HashMap::new();
        for a in &outputs.alerts {
            alerts.entry(a.agent_id.as_str()).or_default().push(a);
        }
        for v in transitions.values_mut() {
            v.sort_by_key(|t| t.seq);
        }
        for v in alerts.values_mut() {
            v.sort_by_key(|a| a.seq);
        }

        let faults: Vec<FaultResult> = manifest
            .faults
            .iter()
            .map(|f| {
                fault_result(
                    f,
                    streams.get(f.agent_id.as_str()).map_or(&[][..], |s| &s[..]),
                    transitions
                        .get(f.agent_id.as_str())
                        .map_or(&[][..], |v| &v[..]),
                    alerts.get(f.agent_id.as_str()).map_or(&[][..], |v| &v[..]),
                    grace_ms,
                )
            })
            .collect();

        let false_positives =
            false_positives(manifest, &outputs.transitions, &outputs.alerts, grace_ms);
        let budgets = check_budgets(&streams, &outputs.snapshots);
        let healthy: std::collections::BTreeSet<&str> = false_positives
            .iter()
            .filter(|f| f.healthy_agent)
            .map(|f| f.agent_id.as_str())
            .collect();
        let summary = Summary {
            faults: faults.len(),
            detected: faults.iter().filter(|f| f.detected).count(),
            recovered: faults.iter().filter(|f| f.recovered).count(),
            false_positives: false_positives.len(),
            healthy_agents_with_signals: healthy.len(),
            budgets_match: budgets.agents > 0 && budgets.mismatches.is_empty(),
            max_delay_seconds: faults
                .iter()
                .filter_map(|f| f.delay_seconds)
                .reduce(f64::max),
            max_delay_events: faults.iter().filter_map(|f| f.delay_events).max(),
        };
        Report {
            scenario: manifest.scenario.clone(),
            seed: manifest.seed,
            start: manifest.start,
            agents: manifest.agents.len(),
            events: events.len() as u64,
            grace_ms,
            summary,
            faults,
            false_positives,
            budgets,
        }
    }
}

fn fault_result(
    f: &ManifestFault,
    stream: &[(TimestampMs, bool, bool)],
    transitions: &[&BreakerTransition],
    alerts: &[&AlertEvent],
    grace_ms: i64,
) -> FaultResult {
    let (breaker, rule) = expected(&f.kind);
    let until = f.end + grace_ms;
    let in_fault = |t: TimestampMs| t >= f.start && t <= until;
    let first_open = transitions
        .iter()
        .find(|t| t.state == StateName::Open && in_fault(t.event_time));
    let fired: Vec<&&AlertEvent> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing && in_fault(a.event_time))
        .collect();
    let first_alert = rule.and_then(|r| fired.iter().find(|a| a.rule == r));
    let mut alerts_fired: Vec<String> = fired.iter().map(|a| a.rule.clone()).collect();
    alerts_fired.sort();
    alerts_fired.dedup();

    // Earliest first; on a tie, the breaker (it acts, an alert only tells).
    let mut candidates: Vec<(TimestampMs, u8, String)> = Vec::new();
    if breaker {
        if let Some(t) = first_open {
            candidates.push((t.event_time, 0, "breaker".into()));
        }
    }
    if let Some(a) = first_alert {
        candidates.push((a.event_time, 1, format!("alert:{}", a.rule)));
    }
    candidates.sort();
    let detection = candidates.first().map(|(t, _, by)| (*t, by.clone()));
    let delay_events = detection.as_ref().map(|(at, _)| {
        stream
            .iter()
            .filter(|(t, _, _)| *t >= f.start && *t <= *at)
            .count() as u64
    });

    // Recovery: the breaker (if it opened) is CLOSED after the end and stays
    // so; the expected alert (if it fired) is RESOLVED after the end.
    let half_opened_after_end = transitions
        .iter()
        .any(|t| t.state == StateName::HalfOpen && t.event_time >= f.end);
    let breaker_recovered_at = if first_open.is_some() {
        let last = transitions.last();
        match last {
            Some(t) if t.state == StateName::Closed && t.event_time >= f.end => Some(t.event_time),
            _ => None,
        }
    } else {
        None
    };
    // The rule's last record (an episode may resolve and fire again while
    // the fault lasts) is a RESOLVED at or after the end.
    let alert_recovered_at = first_alert.and_then(|a| {
        alerts
            .iter()
            .rfind(|r| r.rule == a.rule)
            .filter(|r| r.status == AlertStatus::Resolved && r.event_time >= f.end)
            .map(|r| r.event_time)
    });
    let breaker_ok = first_open.is_none() || breaker_recovered_at.is_some();
    let alert_ok = first_alert.is_none() || alert_recovered_at.is_some();
    let recovered = detection.is_some() && breaker_ok && alert_ok;
    let recovered_at = [breaker_recovered_at, alert_recovered_at]
        .into_iter()
        .flatten()
        .max();

    let mut expected_text = Vec::new();
    if breaker {
        expected_text.push("breaker OPEN".to_string());
    }
    if let Some(r) = rule {
        expected_text.push(format!("alert {r}"));
    }
    FaultResult {
        agent_id: f.agent_id.clone(),
        kind: f.kind.clone(),
        start: f.start,
        end: f.end,
        expected: expected_text.join(" or "),
        detected: detection.is_some(),
        detected_by: detection.as_ref().map(|d| d.1.clone()),
        detected_at: detection.as_ref().map(|d| d.0),
        delay_events,
        delay_seconds: detection.as_ref().map(|d| (d.0 - f.start) as f64 / 1000.0),
        breaker_opened: first_open.is_some(),
        alerts_fired,
        half_opened_after_end,
        recovered,
        recovery_seconds: if recovered {
            recovered_at.map(|t| (t - f.end) as f64 / 1000.0)
        } else {
            None
        },
    }
}

fn false_positives(
    manifest: &Manifest,
    transitions: &[BreakerTransition],
    alerts: &[AlertEvent],
    grace_ms: i64,
) -> Vec<FalsePositive> {
    let mut periods: HashMap<&str, Vec<(TimestampMs, TimestampMs)>> = HashMap::new();
    for f in &manifest.faults {
        periods
            .entry(f.agent_id.as_str())
            .or_default()
            .push((f.start, f.end + grace_ms));
    }
    let explained = |agent: &str, t: TimestampMs| {
        periods
            .get(agent)
            .is_some_and(|ps| ps.iter().any(|(s, e)| t >= *s && t <= *e))
    };
    let mut out = Vec::new();
    let signals = transitions
        .iter()
        .filter(|t| t.state == StateName::Open)
        .map(|t| (t.agent_id.as_str(), "breaker".to_string(), t.event_time))
        .chain(
            alerts
                .iter()
                .filter(|a| a.status == AlertStatus::Firing)
                .map(|a| {
                    (
                        a.agent_id.as_str(),
                        format!("alert:{}", a.rule),
                        a.event_time,
                    )
                }),
        );
    for (agent, signal, at) in signals {
        if !explained(agent, at) {
            out.push(FalsePositive {
                agent_id: agent.to_string(),
                signal,
                at,
                healthy_agent: !periods.contains_key(agent),
            });
        }
    }
    out.sort_by(|a, b| (a.at, &a.agent_id).cmp(&(b.at, &b.agent_id)));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::chaos::ChaosScenario;
    use crate::config::SloConfig;
    use crate::engine::Engine;
    use crate::output::Output;

    fn run() -> (Manifest, Vec<TaskEvent>, Outputs) {
        run_scenario("tool-failures")
    }

    /// A shipped scenario through the engine (as `replay` runs it).
    fn run_scenario(name: &str) -> (Manifest, Vec<TaskEvent>, Outputs) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s = ChaosScenario::load(&dir.join(format!("{name}.yaml"))).unwrap();
        let config = SloConfig::load(&dir.join("slo.yaml")).unwrap();
        let (scenario, manifest) = s.resolve(None, None);
        let events: Vec<TaskEvent> = scenario.events().collect();
        let mut engine = Engine::new(Arc::new(config));
        let mut out = Vec::new();
        crate::replay::run(
            &mut engine,
            events.iter().cloned().map(Ok),
            Vec::new(),
            &mut out,
            |_| {},
        )
        .unwrap();
        let mut outputs = Outputs::default();
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice(line).unwrap() {
                Output::BreakerTransition(t) => outputs.transitions.push(t),
                Output::Alert(a) => outputs.alerts.push(a),
                Output::BudgetSnapshot(s) => outputs.snapshots.push(*s),
            }
        }
        (manifest, events, outputs)
    }

    #[test]
    fn the_engine_catches_the_faults_and_the_report_says_so() {
        let (m, events, outputs) = run();
        let r = Report::build(&m, &events, &outputs, 600_000);
        assert_eq!(r.summary.faults, 2);
        assert_eq!(r.summary.detected, 2, "{}", r.table());
        assert_eq!(r.summary.recovered, 2, "{}", r.table());
        assert_eq!(r.summary.false_positives, 0, "{}", r.table());
        assert!(r.summary.budgets_match, "{}", r.table());
        assert_eq!(r.budgets.covered, r.budgets.agents);
        for f in &r.faults {
            assert_eq!(f.detected_by.as_deref(), Some("breaker"));
            assert!(f.delay_events.unwrap() >= 1 && f.delay_seconds.unwrap() >= 0.0);
            assert!(f.half_opened_after_end);
        }
    }

    #[test]
    fn every_shipped_scenario_is_caught_recovered_and_clean() {
        for name in [
            "tool-failures",
            "latency",
            "policy-violations",
            "hallucinations",
            "tool-call-inflation",
            "delegation-loop",
            "unavailable",
            "mixed",
        ] {
            let (m, events, outputs) = run_scenario(name);
            let r = Report::build(&m, &events, &outputs, 600_000);
            let s = &r.summary;
            let ok = s.detected == s.faults
                && s.recovered == s.faults
                && s.false_positives == 0
                && s.budgets_match;
            assert!(ok, "{name}:\n{}", r.table());
        }
    }

    #[test]
    fn missed_trips_false_positives_and_wrong_budgets_are_reported() {
        let (m, events, mut outputs) = run();
        let faulted = m.faults[0].agent_id.clone();
        // The first fault's breaker never opened.
        outputs.transitions.retain(|t| t.agent_id != faulted);
        // A healthy agent opened before anything happened.
        let mut fp = outputs.transitions[0].clone();
        fp.agent_id = "finance-agent-2".into();
        fp.state = StateName::Open;
        fp.event_time = m.start + 1_000;
        outputs.transitions.push(fp);
        // A snapshot miscounts.
        let last = outputs
            .snapshots
            .iter_mut()
            .filter(|s| s.agent_id == "support-agent-0")
            .max_by_key(|s| s.seq)
            .unwrap();
        last.failed += 1;
        let r = Report::build(&m, &events, &outputs, 600_000);
        let missed = r.faults.iter().find(|f| f.agent_id == faulted).unwrap();
        assert!(!missed.detected && !missed.recovered);
        assert_eq!(r.false_positives.len(), 1);
        assert!(r.false_positives[0].healthy_agent);
        assert_eq!(r.budgets.mismatches.len(), 1);
        assert_eq!(r.budgets.mismatches[0].agent_id, "support-agent-0");
        assert!(!r.summary.budgets_match);
        let table = r.table();
        assert!(
            table.contains("false positives: 1") && table.contains("DO NOT match"),
            "{table}"
        );
    }
}

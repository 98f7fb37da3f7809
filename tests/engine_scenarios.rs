//! The engine, scenario by scenario, against SPEC §3–§8 and the seed's numbers.

use std::sync::Arc;

use breakwater::config::{Severity, SloConfig};
use breakwater::engine::accuracy::AccuracyDeclaration;
use breakwater::engine::agent::Applied;
use breakwater::engine::alert::AlertStatus;
use breakwater::engine::breaker::{Command, Reason, StateName};
use breakwater::engine::budget::BudgetStatus;
use breakwater::engine::Engine;
use breakwater::event::{Eval, Outcome, TaskEvent, TimestampMs};
use breakwater::output::{AlertEvent, BreakerTransition, BudgetSnapshot, Output, SnapshotTrigger};

const T0: TimestampMs = 1_796_083_200_000;
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;

struct Harness {
    engine: Engine,
    out: Vec<Output>,
    n: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with(SloConfig::default())
    }

    fn yaml(yaml: &str) -> Self {
        Self::with(SloConfig::from_yaml_str(yaml).expect("valid config"))
    }

    fn with(config: SloConfig) -> Self {
        Harness {
            engine: Engine::new(Arc::new(config)),
            out: Vec::new(),
            n: 0,
        }
    }

    /// Feeds one event the way replay does: timers first, then the event.
    fn feed(&mut self, mut e: TaskEvent) -> Applied {
        if e.event_id.is_empty() {
            self.n += 1;
            e.event_id = format!("e{}", self.n);
        }
        self.engine.advance_to(e.timestamp, &mut self.out);
        self.engine.process(&e, &mut self.out)
    }

    fn task(&mut self, agent: &str, t: TimestampMs, outcome: Outcome) -> Applied {
        self.feed(ev(agent, t, outcome))
    }

    fn advance(&mut self, t: TimestampMs) {
        self.engine.advance_to(t, &mut self.out);
    }

    fn transitions(&self) -> Vec<&BreakerTransition> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::BreakerTransition(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn alerts(&self, rule: &str) -> Vec<&AlertEvent> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Alert(a) if a.rule == rule => Some(a),
                _ => None,
            })
            .collect()
    }

    fn status_changes(&self) -> Vec<&BudgetSnapshot> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::BudgetSnapshot(s) if s.trigger == SnapshotTrigger::StatusChange => {
                    Some(&**s)
                }
                _ => None,
            })
            .collect()
    }

    fn state(&self, agent: &str) -> StateName {
        self.engine.brief(agent).unwrap().circuit_state
    }
}

fn ev(agent: &str, t: TimestampMs, outcome: Outcome) -> TaskEvent {
    let mut e = TaskEvent::new("", agent, t, outcome);
    e.latency_ms = 1_000;
    e.tool_calls = 3;
    e
}

fn states(ts: &[&BreakerTransition]) -> Vec<(StateName, Reason)> {
    ts.iter().map(|t| (t.state, t.reason)).collect()
}

#[test]
fn worked_example_through_the_engine() {
    let mut h = Harness::yaml("defaults: {breaker: {failure_threshold: 1.0, min_calls: 1000000}}");
    for i in 0..1000 {
        let outcome = if i % 16 == 0 && i < 960 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        h.task("research-agent", T0 + i * 10 * SEC, outcome);
    }
    let snap = h
        .engine
        .snapshot("research-agent", SnapshotTrigger::Final)
        .unwrap();
    assert_eq!((snap.tasks, snap.failed), (1000, 60));
    assert_eq!(snap.remaining_percent, -20.0);
    assert_eq!(snap.status, BudgetStatus::Exhausted);
    assert_eq!(
        snap.recommendation,
        "Throttle agent — error budget depleted"
    );
    assert_eq!(snap.metrics.task_success_rate, Some(0.94));
    assert_eq!(snap.metrics.avg_tool_calls, Some(3.0));
}

#[test]
fn failure_rate_trips_only_once_min_calls_tasks_are_in_the_window() {
    let mut h = Harness::new();
    h.task("a", T0, Outcome::Failure);
    for i in 1..19 {
        h.task("a", T0 + i * SEC, Outcome::Success);
    }
    assert!(h.transitions().is_empty(), "19 tasks < min_calls 20");
    h.task("a", T0 + 19 * SEC, Outcome::Success);
    let t = h.transitions();
    assert_eq!(states(&t), vec![(StateName::Open, Reason::FailureRate)]);
    let t = t[0];
    assert_eq!((t.window_tasks, t.window_failed), (20, 1));
    assert_eq!(t.failure_rate, Some(0.05), "≥ the threshold trips");
    assert_eq!(t.previous_state, StateName::Closed);
    assert_eq!(
        t.event_time,
        T0 + 19 * SEC,
        "the time of the event that caused it"
    );
    assert_eq!(t.retry_at, Some(T0 + 19 * SEC + 300 * SEC));
}

#[test]
fn average_latency_trips_strictly_above_the_threshold() {
    let mut h = Harness::new();
    for i in 0..20 {
        let mut e = ev("at", T0 + i * SEC, Outcome::Success);
        e.latency_ms = 30_000;
        h.feed(e);
        let mut e = ev("above", T0 + i * SEC, Outcome::Success);
        e.latency_ms = 30_001;
        h.feed(e);
    }
    let t = h.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].agent_id.as_str(), t[0].reason),
        ("above", Reason::Latency)
    );
    assert_eq!(t[0].avg_latency_ms, Some(30_001.0));
}

#[test]
fn a_delegation_loop_trips_at_once() {
    let mut h = Harness::new();
    let mut e = ev("a", T0, Outcome::Success);
    e.delegation_depth = 5;
    h.feed(e.clone());
    assert!(h.transitions().is_empty(), "depth 5 is allowed");
    e.event_id = "deep".into();
    e.delegation_depth = 6;
    h.feed(e);
    assert_eq!(
        states(&h.transitions()),
        vec![(StateName::Open, Reason::DelegationLoop)]
    );
    let loops = h.alerts("delegation_loop");
    assert_eq!(loops.len(), 1);
    assert_eq!(
        (loops[0].status, loops[0].severity),
        (AlertStatus::Firing, Severity::Critical)
    );
    // The loop slides out of the 5 min breaker window: the alert resolves on a timer.
    h.advance(T0 + 10 * MIN);
    let loops = h.alerts("delegation_loop");
    assert_eq!(loops.last().unwrap().status, AlertStatus::Resolved);
    assert_eq!(loops[0].alert_id, loops[1].alert_id);
}

/// Opens agent `a` at T0 + 19 s (one failure in 20 tasks).
fn opened() -> Harness {
    let mut h = Harness::new();
    h.task("a", T0, Outcome::Failure);
    for i in 1..20 {
        h.task("a", T0 + i * SEC, Outcome::Success);
    }
    assert_eq!(h.state("a"), StateName::Open);
    h
}

#[test]
fn open_half_opens_on_the_timer_with_no_traffic() {
    let mut h = opened();
    let retry_at = T0 + 19 * SEC + 300 * SEC;
    h.advance(retry_at - 30 * SEC);
    let m = h.engine.metrics("a").unwrap();
    assert_eq!(m.time_until_retry, Some(30.0));
    assert_eq!(m.circuit_state, StateName::Open);
    h.advance(retry_at - 1);
    assert_eq!(h.state("a"), StateName::Open);
    h.advance(retry_at + 5 * MIN); // a driver may tick late: the transition keeps its due time
    let t = h.transitions();
    assert_eq!(
        states(&t),
        vec![
            (StateName::Open, Reason::FailureRate),
            (StateName::HalfOpen, Reason::CooldownElapsed)
        ]
    );
    assert_eq!(t[1].event_time, retry_at);
    assert_eq!(t[1].retry_at, None);
    assert_eq!(h.engine.metrics("a").unwrap().time_until_retry, None);
}

#[test]
fn probes_close_with_a_fresh_window_or_reopen_with_a_doubled_cooldown() {
    let mut h = opened();
    let mut t = T0 + 19 * SEC + 300 * SEC;
    let mut cooldowns = Vec::new();
    // Fail the first probe four times: 600, 1200, 2400, then the 3600 s cap.
    for _ in 0..5 {
        h.advance(t);
        assert_eq!(h.state("a"), StateName::HalfOpen);
        h.task("a", t, Outcome::Timeout);
        let last = *h.transitions().last().unwrap();
        assert_eq!(
            (last.state, last.reason),
            (StateName::Open, Reason::ProbeFailed)
        );
        cooldowns.push(last.cooldown_ms.unwrap() / 1000);
        t = last.retry_at.unwrap();
    }
    assert_eq!(cooldowns, vec![600, 1200, 2400, 3600, 3600]);
    h.advance(t);
    for i in 0..4 {
        h.task("a", t + i * SEC, Outcome::Success);
        assert_eq!(h.state("a"), StateName::HalfOpen, "probe {} of 5", i + 1);
    }
    h.task("a", t + 4 * SEC, Outcome::Success);
    let closed = *h.transitions().last().unwrap();
    assert_eq!(
        (closed.state, closed.reason),
        (StateName::Closed, Reason::ProbesPassed)
    );
    assert_eq!(
        (closed.window_tasks, closed.window_failed),
        (0, 0),
        "a fresh window"
    );
    // The cooldown is back to its base after a successful close.
    let t2 = t + 10 * SEC;
    h.task("a", t2, Outcome::Failure);
    for i in 1..20 {
        h.task("a", t2 + i * SEC, Outcome::Success);
    }
    let reopened = *h.transitions().last().unwrap();
    assert_eq!(reopened.cooldown_ms, Some(300_000));
}

#[test]
fn an_unavailable_or_slow_probe_fails() {
    for (outcome, latency) in [(Outcome::Unavailable, 0), (Outcome::Success, 30_001)] {
        let mut h = opened();
        let t = T0 + 19 * SEC + 300 * SEC;
        h.advance(t);
        let mut e = ev("a", t, outcome);
        e.latency_ms = latency;
        h.feed(e);
        assert_eq!(h.transitions().last().unwrap().reason, Reason::ProbeFailed);
    }
}

#[test]
fn events_while_open_count_everywhere_but_do_not_move_the_breaker() {
    let mut h = opened();
    for i in 0..30 {
        h.task("a", T0 + 30 * SEC + i * SEC, Outcome::Failure);
    }
    assert_eq!(h.transitions().len(), 1);
    let m = h.engine.metrics("a").unwrap();
    assert_eq!((m.tasks, m.failed), (50, 31));
    assert_eq!(h.engine.agent("a").unwrap().breaker().counts().tasks, 50);
}

#[test]
fn circuit_opens_24h_counts_and_alerts_above_three() {
    let mut h = Harness::new();
    let mut t = T0;
    for round in 0..4 {
        // Failure at the start of a fresh window, then 19 successes.
        h.task("a", t, Outcome::Failure);
        for i in 1..20 {
            h.task("a", t + i * SEC, Outcome::Success);
        }
        assert_eq!(h.engine.metrics("a").unwrap().circuit_opens_24h, round + 1);
        let retry = h.transitions().last().unwrap().retry_at.unwrap();
        h.advance(retry);
        for i in 0..5 {
            h.task("a", retry + i * SEC, Outcome::Success);
        }
        assert_eq!(h.state("a"), StateName::Closed);
        t = retry + 6 * MIN; // past the 5 min breaker window
    }
    let opens = h.alerts("circuit_opens_24h");
    assert_eq!(opens.len(), 1, "fires once, when the count goes above 3");
    assert_eq!(
        (opens[0].severity, opens[0].value),
        (Severity::Warning, Some(4.0))
    );
    h.advance(t + 25 * HOUR);
    assert_eq!(h.engine.metrics("a").unwrap().circuit_opens_24h, 0);
    assert_eq!(
        h.alerts("circuit_opens_24h").last().unwrap().status,
        AlertStatus::Resolved
    );
}

#[test]
fn budget_exhaustion_trips_a_circuit_break_agent_once_per_exhaustion() {
    let yaml = r#"
defaults:
  breaker: {failure_threshold: 0.5}
agents:
  "finance-*": {on_budget_exhausted: circuit_break}
"#;
    let mut h = Harness::yaml(yaml);
    // 3 failures first: at 20 tasks 3/(0.05·20) = 300 % consumed → EXHAUSTED, and it
    // stays exhausted below 60 tasks; the failure rate (≤ 15 %) never reaches 50 %.
    for i in 0..40 {
        let outcome = if i < 3 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        h.task("finance-pay", T0 + i * SEC, outcome);
        h.task("research", T0 + i * SEC, outcome);
    }
    let t = h.transitions();
    assert_eq!(
        t.len(),
        1,
        "throttle agents are never tripped by their budget"
    );
    assert_eq!(
        (t[0].agent_id.as_str(), t[0].reason),
        ("finance-pay", Reason::BudgetExhausted)
    );
    let retry = t[0].retry_at.unwrap();
    h.advance(retry);
    for i in 0..5 {
        h.task("finance-pay", retry + i * SEC, Outcome::Success);
    }
    assert_eq!(h.state("finance-pay"), StateName::Closed);
    for i in 5..8 {
        h.task("finance-pay", retry + i * SEC, Outcome::Success);
    }
    let snap = h
        .engine
        .snapshot("finance-pay", SnapshotTrigger::Final)
        .unwrap();
    assert_eq!(snap.status, BudgetStatus::Exhausted, "still exhausted…");
    assert_eq!(
        h.state("finance-pay"),
        StateName::Closed,
        "…but the trip is not repeated: {:?}",
        states(&h.transitions())
    );
    assert_eq!(
        snap.recommendation,
        "Circuit break agent — error budget depleted"
    );
}

#[test]
fn operator_commands() {
    let mut h = Harness::new();
    h.task("a", T0, Outcome::Success);
    assert!(h.engine.command("a", Command::ForceOpen, &mut h.out));
    assert!(
        !h.engine.command("a", Command::ForceOpen, &mut h.out),
        "already forced open"
    );
    for i in 1..40 {
        h.task("a", T0 + i * SEC, Outcome::Success);
    }
    h.advance(T0 + 2 * HOUR);
    assert_eq!(
        h.state("a"),
        StateName::ForcedOpen,
        "no timer or probe moves it"
    );
    assert!(h.engine.command("a", Command::Disable, &mut h.out));
    let mut e = ev("a", T0 + 2 * HOUR, Outcome::Success);
    e.delegation_depth = 50;
    h.feed(e);
    assert_eq!(
        h.state("a"),
        StateName::Disabled,
        "a disabled breaker never trips"
    );
    assert!(h.engine.command("a", Command::Reset, &mut h.out));
    let t = h.transitions();
    assert_eq!(
        t.iter()
            .map(|t| (t.previous_state, t.state, t.reason))
            .collect::<Vec<_>>(),
        vec![
            (StateName::Closed, StateName::ForcedOpen, Reason::Operator),
            (StateName::ForcedOpen, StateName::Disabled, Reason::Operator),
            (StateName::Disabled, StateName::Closed, Reason::Operator),
        ]
    );
    assert_eq!(
        t.last().unwrap().window_tasks,
        0,
        "reset starts a fresh window"
    );
}

#[test]
fn alerts_fire_escalate_and_resolve_once_each() {
    // Breaker and budget rules are out of the way; only task_success_rate matters here.
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    let mut t = T0;
    let mut feed = |h: &mut Harness, n: usize, outcome| {
        for _ in 0..n {
            h.task("a", t, outcome);
            t += SEC;
        }
    };
    feed(&mut h, 94, Outcome::Success);
    feed(&mut h, 6, Outcome::Failure); // 94 % → WARNING
    feed(&mut h, 5, Outcome::Failure); // 89.5 % → CRITICAL
    feed(&mut h, 30, Outcome::Success); // 91.4 % → back to WARNING: also a change
    feed(&mut h, 200, Outcome::Success); // 97.2 % → RESOLVED
    let a = h.alerts("task_success_rate");
    let seen: Vec<_> = a.iter().map(|a| (a.status, a.severity)).collect();
    assert_eq!(
        seen,
        vec![
            (AlertStatus::Firing, Severity::Warning),
            (AlertStatus::Firing, Severity::Critical),
            (AlertStatus::Firing, Severity::Warning),
            (AlertStatus::Resolved, Severity::Warning),
        ]
    );
    assert!(
        a.iter().all(|x| x.alert_id == a[0].alert_id),
        "one episode, one id"
    );
    assert_eq!(a[0].threshold, 0.95);
    assert_eq!(a[1].threshold, 0.90);
    assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(a[0].window, "24h");
}

#[test]
fn rate_alerts_wait_for_the_minimum_task_count() {
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    for i in 0..19 {
        h.task("a", T0 + i * SEC, Outcome::Failure);
    }
    assert!(h.alerts("task_success_rate").is_empty());
    h.task("a", T0 + 19 * SEC, Outcome::Failure);
    assert_eq!(h.alerts("task_success_rate").len(), 1);
}

#[test]
fn the_budget_recovers_as_failures_slide_out_of_the_window() {
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    for i in 0..100 {
        let outcome = if i < 10 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        h.task("a", T0 + i * MIN, outcome);
    }
    let s = h.status_changes();
    assert_eq!(s.last().unwrap().status, BudgetStatus::Exhausted);
    // No event for a day: the re-evaluation timer lets the failures slide out.
    h.advance(T0 + 26 * HOUR);
    let last = *h.status_changes().last().unwrap();
    assert_eq!(last.status, BudgetStatus::Healthy);
    assert_eq!(last.remaining_percent, 100.0);
    assert!(
        last.event_time <= T0 + 25 * HOUR,
        "within a re-evaluation period of the slide"
    );
    let resolved = h.alerts("error_budget_remaining");
    assert_eq!(resolved.last().unwrap().status, AlertStatus::Resolved);
    // And the failures are really gone from the window when new tasks arrive.
    for i in 0..20 {
        h.task("a", T0 + 26 * HOUR + i * SEC, Outcome::Success);
    }
    let m = h.engine.metrics("a").unwrap();
    assert_eq!((m.tasks, m.failed), (20, 0));
}

#[test]
fn fast_burn_pages_when_both_windows_burn_above_14_4() {
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    // 50 healthy tasks over the hour before, then a burst of failures: 80 % > 72 %.
    for i in 0..50 {
        h.task("a", T0 + i * MIN, Outcome::Success);
    }
    let burst = T0 + 60 * MIN;
    for i in 0..400 {
        let outcome = if i % 5 == 0 {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        h.task("a", burst + i * SEC, outcome);
    }
    let page = h.alerts("burn_rate_1h_5m");
    assert!(!page.is_empty(), "the fast-burn page fires");
    assert_eq!(
        (page[0].status, page[0].severity),
        (AlertStatus::Firing, Severity::Critical)
    );
    assert_eq!(page[0].threshold, 14.4);
    assert!(page[0].value.unwrap() > 14.4);
    assert_eq!(page[0].window, "1h/5m");
    let snap = h.engine.snapshot("a", SnapshotTrigger::Final).unwrap();
    let five = snap.burn_rates.iter().find(|b| b.window == "5m").unwrap();
    assert_eq!(five.burn_rate, Some(16.0), "80 % failed / 5 % budget");
}

#[test]
fn a_burn_alert_resolves_with_no_event_once_its_short_window_drains() {
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    for i in 0..50 {
        h.task("a", T0 + i * MIN, Outcome::Success);
    }
    let burst = T0 + 60 * MIN;
    for i in 0..200 {
        h.task("a", burst + i * SEC, Outcome::Failure);
    }
    let last = burst + 199 * SEC;
    assert_eq!(h.alerts("burn_rate_1h_5m").len(), 1, "firing");
    // Silence. The 5 min window empties (10 s buckets) and the page must
    // resolve then, not at the next event and not a day later.
    h.advance(last + 2 * HOUR);
    let page = h.alerts("burn_rate_1h_5m");
    assert_eq!(page.len(), 2, "{page:?}");
    assert_eq!(page[1].status, AlertStatus::Resolved);
    let drained = last + 5 * MIN;
    assert!(
        page[1].event_time > last + 5 * MIN - 10 * SEC && page[1].event_time <= drained + MIN,
        "resolved at {} (the window drained by {drained})",
        page[1].event_time
    );
}

#[test]
fn accuracy_below_declaration_and_expiry() {
    let mut h = Harness::yaml("defaults: {breaker: {min_calls: 100000}}");
    h.advance(T0);
    let decl = |version: &str, supersedes: Option<&str>, published_at| AccuracyDeclaration {
        agent_id: "research-agent".into(),
        version: version.into(),
        declared_accuracy: [
            ("factual_retrieval".to_string(), 0.94),
            ("task_completion".to_string(), 0.97),
            ("policy_compliance".to_string(), 0.999),
        ]
        .into(),
        measurement_method: "automated_eval_suite_v3".into(),
        valid_for_days: 1,
        published_at,
        supersedes: supersedes.map(String::from),
    };
    h.engine
        .declare(decl("1.1.0", None, T0), &mut h.out)
        .unwrap();
    for i in 0..60 {
        let mut e = ev("research-agent", T0 + i * SEC, Outcome::Success);
        e.evals.push(Eval {
            category: "factual_retrieval".into(),
            passed: i % 10 != 0,
        });
        h.feed(e);
    }
    let fr = h.alerts("accuracy_below_declaration:factual_retrieval");
    assert_eq!(
        fr.len(),
        1,
        "90 % measured < 94 % declared, after 50 samples"
    );
    assert_eq!((fr[0].value, fr[0].threshold), (Some(0.9), 0.94));
    assert!(h
        .alerts("accuracy_below_declaration:task_completion")
        .is_empty());
    // Out of order: refused, nothing changes.
    let err = h
        .engine
        .declare(decl("1.0.0", Some("1.1.0"), T0), &mut h.out)
        .unwrap_err();
    assert!(err.to_string().contains("must be greater"), "{err}");
    // Expiry fires on the timer.
    h.advance(T0 + 25 * HOUR);
    let exp = h.alerts("accuracy_declaration_expired");
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].status, AlertStatus::Firing);
    // A valid successor clears both.
    h.engine
        .declare(decl("1.2.0", Some("1.1.0"), T0 + 25 * HOUR), &mut h.out)
        .unwrap();
    assert_eq!(
        h.alerts("accuracy_declaration_expired")
            .last()
            .unwrap()
            .status,
        AlertStatus::Resolved
    );
    let snap = h
        .engine
        .snapshot("research-agent", SnapshotTrigger::Final)
        .unwrap();
    assert_eq!(snap.accuracy.unwrap().version, "1.2.0");
}

#[test]
fn duplicates_and_late_events_are_counted_not_applied() {
    let mut h = Harness::new();
    let e = TaskEvent::new("same", "a", T0 + 25 * HOUR, Outcome::Success);
    assert_eq!(h.feed(e.clone()), Applied::Counted);
    assert_eq!(h.feed(e), Applied::Duplicate);
    assert_eq!(
        h.task("a", T0, Outcome::Failure),
        Applied::Late,
        "older than the 24 h window"
    );
    let s = h.engine.stats();
    assert_eq!((s.events, s.duplicates, s.late), (3, 1, 1));
    let m = h.engine.metrics("a").unwrap();
    assert_eq!((m.tasks, m.failed), (1, 0));
}

#[test]
fn empty_denominators_are_null_not_zero() {
    let mut h = Harness::new();
    h.task("a", T0, Outcome::Unavailable);
    let m = h.engine.metrics("a").unwrap();
    assert_eq!(m.attempts, 1);
    assert_eq!(m.availability, Some(0.0));
    assert_eq!(m.task_success_rate, None);
    assert_eq!(m.avg_tool_calls, None);
    assert_eq!(m.policy_violation_rate, None);
    assert_eq!(m.hallucination_rate, None);
    assert_eq!(m.p99_latency_ms, None);
    assert_eq!(
        m.error_budget_remaining, 100.0,
        "no task: the budget is untouched"
    );
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.contains("\"task_success_rate\":null"), "{json}");
}

#[test]
fn seed_metrics_over_the_window() {
    let mut h = Harness::new();
    for i in 0..100u32 {
        let mut e = ev("a", T0 + i as i64 * SEC, Outcome::Success);
        e.latency_ms = (i as u64 + 1) * 100; // 100 ms … 10 s
        e.tool_calls = 10;
        e.policy_violations = (i % 20 == 0) as u32; // 5 of 1000 calls
        e.hallucination = Some(i % 25 == 0); // 4 %
        e.intent_met = if i < 50 { Some(i % 10 != 0) } else { None };
        e.delegation_depth = i % 4;
        h.feed(e);
    }
    let m = h.engine.metrics("a").unwrap();
    assert_eq!(m.avg_tool_calls, Some(10.0));
    assert_eq!(m.policy_violation_rate, Some(0.005));
    assert_eq!(m.hallucination_rate, Some(0.04));
    assert_eq!(m.intent_miss_rate, Some(0.1));
    assert_eq!(m.delegation_depth_avg, Some(1.5));
    assert_eq!(m.delegation_depth_max, Some(3));
    assert_eq!(m.avg_latency_ms, Some(5050.0));
    let p99 = m.p99_latency_ms.unwrap() as f64;
    assert!(
        (p99 - 9_900.0).abs() <= 99.0,
        "p99 {p99} within 1 % of 9900"
    );
    let p50 = m.p50_latency_ms.unwrap() as f64;
    assert!((p50 - 5_000.0).abs() <= 50.0, "p50 {p50}");
}

/// The SLO file documented in the README loads as written, and means what it says.
#[test]
fn the_readme_slo_example_loads() {
    let readme = include_str!("../README.md");
    let start = readme.find("```yaml\ndefaults:").expect("the SLO example") + "```yaml\n".len();
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    let config = SloConfig::from_yaml_str(yaml).expect("the README's example is valid");
    let finance = config.slo(config.resolve("finance-payments"));
    assert_eq!(finance.on_budget_exhausted.as_str(), "circuit_break");
    let research = config.slo(config.resolve("research-agent"));
    assert_eq!(research.max_tool_calls_per_task, 20.0);
    assert_eq!(research.burn_rate.rules.len(), 3);
    assert_eq!(
        *research,
        breakwater::config::Slo {
            source: "research-agent".into(),
            max_tool_calls_per_task: 20.0,
            ..breakwater::config::Slo::default()
        },
        "the README's defaults are the built-in defaults"
    );
}

#[test]
fn an_agent_tracks_at_most_32_eval_categories() {
    let mut h = Harness::new();
    for round in 0..3 {
        let mut e = ev("a", T0 + round * SEC, Outcome::Success);
        e.evals = (0..40)
            .map(|c| Eval {
                category: format!("cat{c:02}"),
                passed: c % 2 == 0,
            })
            .collect();
        h.feed(e);
    }
    let m = h.engine.metrics("a").unwrap();
    assert_eq!(m.eval_pass_rates.len(), 32, "the first 32 categories seen");
    assert_eq!(m.eval_pass_rates["cat00"], Some(1.0));
    assert_eq!(m.eval_pass_rates["cat31"], Some(0.0));
    assert!(!m.eval_pass_rates.contains_key("cat32"));
}

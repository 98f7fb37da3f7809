//! The seed's agent SRE metrics as Prometheus gauges, with bounded labels.
//!
//! Every snapshot interval the job sets, per input partition's engine:
//! fleet gauges (agents per breaker state and per budget status), and
//! per-agent gauges (`agent` label; burn rates also by `window`) for a
//! bounded set of agents: every
//! agent whose breaker is not CLOSED or whose budget is not HEALTHY (the
//! ones someone is looking at), the allow-list, then the busiest agents up
//! to the cap. Agents left out are counted in
//! `breakwater_agent_series_omitted_total`. Series of agents that drop out
//! of the set go stale and are removed by the exporter's idle timeout.

use std::collections::BTreeMap;

use crate::config::SeriesBudget;
use crate::engine::breaker::StateName;
use crate::engine::budget::BudgetStatus;
use crate::engine::Engine;

/// Picks the agents of `engines` that get series: not CLOSED or not
/// HEALTHY first, then the allow-list, then by traffic; returns them and
/// how many were left out.
///
/// ```
/// use std::sync::Arc;
/// use breakwater::config::SloConfig;
/// use breakwater::engine::Engine;
/// use breakwater::event::{Outcome, TaskEvent};
/// use breakwater::config::SeriesBudget;
/// use breakwater::kafka::gauges::select;
///
/// let mut e = Engine::new(Arc::new(SloConfig::default()));
/// let mut out = Vec::new();
/// for (i, a) in ["busy", "busy", "quiet"].iter().enumerate() {
///     e.process(&TaskEvent::new(format!("e{i}"), *a, 1_000, Outcome::Success), &mut out);
/// }
/// let (picked, omitted) = select([&e], &SeriesBudget { max_agents: 1, allow: vec![] });
/// assert_eq!(picked, vec!["busy".to_string()]);
/// assert_eq!(omitted, 1);
/// ```
pub fn select<'a>(
    engines: impl IntoIterator<Item = &'a Engine>,
    budget: &SeriesBudget,
) -> (Vec<String>, usize) {
    let mut flagged = Vec::new();
    let mut rest: Vec<(u64, &str)> = Vec::new();
    let mut total = 0;
    for engine in engines {
        for (id, a) in engine.briefs() {
            total += 1;
            let attention = a.circuit_state != StateName::Closed
                || a.status != BudgetStatus::Healthy
                || budget.allow.iter().any(|x| x == id);
            if attention {
                flagged.push(id.to_string());
            } else {
                rest.push((a.window_tasks, id));
            }
        }
    }
    // Busiest first; ties by id, so the set is stable between ticks.
    rest.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(y.1)));
    flagged.sort_unstable();
    flagged.truncate(budget.max_agents);
    let room = budget.max_agents - flagged.len();
    flagged.extend(rest.into_iter().take(room).map(|(_, id)| id.to_string()));
    let omitted = total - flagged.len();
    (flagged, omitted)
}

/// Sets the fleet and per-agent gauges from `engines` (one per owned
/// partition).
pub fn publish(engines: &mut [&mut Engine], budget: &SeriesBudget) {
    let mut states: BTreeMap<StateName, u64> = StateName::ALL.iter().map(|&s| (s, 0)).collect();
    let mut statuses: BTreeMap<&'static str, u64> = [
        BudgetStatus::Healthy,
        BudgetStatus::Warning,
        BudgetStatus::Critical,
        BudgetStatus::Exhausted,
    ]
    .iter()
    .map(|s| (s.as_str(), 0))
    .collect();
    let mut dormant = 0;
    for engine in engines.iter() {
        dormant += engine.dormant_agents();
        for (_, a) in engine.briefs() {
            *states.entry(a.circuit_state).or_default() += 1;
            *statuses.entry(a.status.as_str()).or_default() += 1;
        }
    }
    for (s, n) in states {
        metrics::gauge!("breakwater_agents", "breaker_state" => s.as_str()).set(n as f64);
    }
    metrics::gauge!("breakwater_agents_dormant").set(dormant as f64);
    for (s, n) in statuses {
        metrics::gauge!("breakwater_agents_by_budget_status", "status" => s).set(n as f64);
    }

    let (picked, omitted) = select(engines.iter().map(|e| &**e), budget);
    // An engine whose clock has not started (event-time timers, restored,
    // no event yet) has no "now" to compute windowed views at.
    let started = |e: &Engine| e.clock() != crate::event::TimestampMs::MIN;
    metrics::counter!("breakwater_agent_series_omitted_total").increment(omitted as u64);
    for id in picked {
        let Some(engine) = engines.iter_mut().find(|e| started(e) && e.contains(&id)) else {
            continue;
        };
        let (Some(m), Some(burn)) = (engine.metrics(&id), engine.burn_rates(&id)) else {
            continue;
        };
        let agent = id;
        let set = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                metrics::gauge!(name, "agent" => agent.clone()).set(v);
            }
        };
        set("breakwater_agent_tasks", Some(m.tasks as f64));
        set("breakwater_agent_task_success_ratio", m.task_success_rate);
        set("breakwater_agent_availability_ratio", m.availability);
        set("breakwater_agent_tool_calls_avg", m.avg_tool_calls);
        set(
            "breakwater_agent_latency_p99_seconds",
            m.p99_latency_ms.map(|ms| ms as f64 / 1000.0),
        );
        set(
            "breakwater_agent_error_budget_remaining_ratio",
            Some(m.error_budget_remaining / 100.0),
        );
        set("breakwater_agent_hallucination_ratio", m.hallucination_rate);
        set(
            "breakwater_agent_policy_violation_ratio",
            m.policy_violation_rate,
        );
        set(
            "breakwater_agent_delegation_depth_avg",
            m.delegation_depth_avg,
        );
        set(
            "breakwater_agent_circuit_opens_24h",
            Some(f64::from(m.circuit_opens_24h)),
        );
        set(
            "breakwater_agent_time_until_retry_seconds",
            m.time_until_retry,
        );
        // SPEC §5: one series per window of the agent's burn-rate rules
        // (with the default 24 h budget window: 5m, 30m, 1h, 6h, 24h). An
        // empty window burns nothing: 0, so both windows of a rule always
        // have a series. The task count lets alerting rules apply the
        // engine's low-traffic guard (burn_rate.min_tasks).
        for b in burn {
            let labels = [("agent", agent.clone()), ("window", b.window)];
            metrics::gauge!("breakwater_agent_burn_rate", &labels).set(b.burn_rate.unwrap_or(0.0));
            metrics::gauge!("breakwater_agent_window_tasks", &labels).set(b.tasks as f64);
        }
        for s in StateName::ALL {
            let on = if s == m.circuit_state { 1.0 } else { 0.0 };
            metrics::gauge!("breakwater_agent_circuit_state", "agent" => agent.clone(), "state" => s.as_str())
                .set(on);
        }
    }
}

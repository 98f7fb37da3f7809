//! Read-only views of an agent: the seed's AgentMetrics and the budget
//! snapshot. Windows must already be advanced to `now`.

use std::collections::BTreeMap;

use super::agent::{Agent, Ctx};
use super::counts::{max_depth, ratio};
use super::plan::WindowRef;
use crate::config::{duration_label, Slo};
use crate::engine::budget::burn_rate;
use crate::event::TimestampMs;
use crate::output::{
    int, long, AccuracyView, AgentMetrics, BreakerView, BudgetSnapshot, BurnRate, SloSummary,
    SnapshotTrigger,
};

/// SPEC §3 over the budget window, plus the breaker fields of §11.
pub(crate) fn metrics(agent: &Agent, ctx: &Ctx, now: TimestampMs) -> AgentMetrics {
    let m = agent.metrics.total();
    let breaker = agent.breaker();
    AgentMetrics {
        agent_id: ctx.id.to_string(),
        tasks: long(m.tasks),
        attempts: long(m.attempts()),
        failed: long(m.failed),
        task_success_rate: ratio(m.tasks - m.failed, m.tasks),
        availability: ratio(m.tasks, m.attempts()),
        avg_tool_calls: ratio(m.tool_calls, m.tasks),
        policy_violation_rate: ratio(m.policy_violations, m.tool_calls),
        hallucination_rate: ratio(m.hallucinations, m.hallucination_evaluated),
        intent_miss_rate: ratio(m.intent_missed, m.intent_evaluated),
        delegation_depth_avg: ratio(m.delegation_depth_sum, m.tasks),
        delegation_depth_max: max_depth(agent.metrics.buckets().map(|(_, b)| b)).map(int),
        avg_latency_ms: ratio(m.latency_sum_ms, m.tasks),
        p50_latency_ms: agent.latency_quantile(0.50).map(long),
        p95_latency_ms: agent.latency_quantile(0.95).map(long),
        p99_latency_ms: agent.latency_quantile(0.99).map(long),
        eval_pass_rates: m
            .evals
            .iter()
            .map(|c| {
                let name = ctx.categories.name(c.category).to_string();
                (name, ratio(c.passed, c.evaluated))
            })
            .collect(),
        error_budget_remaining: agent.budget_for(ctx.slo).remaining_percent,
        circuit_state: breaker.state().name(),
        circuit_opens_24h: int(breaker.opens_24h(now)),
        time_until_retry: breaker.time_until_retry(now),
    }
}

/// The burn rate over each distinct window of the agent's burn-rate rules
/// (SPEC §5), shortest window first.
pub(crate) fn burn_rates(agent: &Agent, ctx: &Ctx) -> Vec<BurnRate> {
    let slo = ctx.slo;
    let mut burn_rates: Vec<BurnRate> = Vec::new();
    let mut seen = |w: WindowRef, ms: i64| {
        if burn_rates.iter().all(|b| b.window_ms != ms) {
            let c = agent.task_counts(w);
            burn_rates.push(BurnRate {
                window: duration_label(ms),
                window_ms: ms,
                burn_rate: burn_rate(slo, c.tasks, c.failed),
                tasks: long(c.tasks),
            });
        }
    };
    for (rule, &(l, s)) in slo.burn_rate.rules.iter().zip(&ctx.plan.rule_windows) {
        seen(s, rule.short_ms);
        seen(l, rule.long_ms);
    }
    burn_rates.sort_by_key(|b| b.window_ms);
    burn_rates
}

/// The budget snapshot of SPEC §9 (the caller has already taken its `seq`).
pub(crate) fn snapshot(
    agent: &Agent,
    ctx: &Ctx,
    now: TimestampMs,
    trigger: SnapshotTrigger,
) -> BudgetSnapshot {
    let slo = ctx.slo;
    let budget = agent.budget_for(slo);
    let metrics = metrics(agent, ctx, now);
    let breaker = agent.breaker();
    let bc = breaker.counts();
    let burn_rates = burn_rates(agent, ctx);
    let slo_violations = violations(slo, &metrics);
    let firing_alerts = agent
        .alerts()
        .active()
        .iter()
        .map(|a| agent.rule_name(ctx, a.rule))
        .collect();
    BudgetSnapshot {
        agent_id: ctx.id.to_string(),
        seq: long(agent.seq),
        trigger,
        event_time: now,
        slo: summary(slo),
        // Saturating: an agent created by a command can be snapshotted
        // before the clock has any time (MIN).
        window_start: now.saturating_sub(slo.window_ms) + 1,
        window_end: now,
        tasks: long(budget.tasks),
        failed: long(budget.failed),
        consumed: budget.consumed,
        remaining_percent: budget.remaining_percent,
        status: budget.status,
        recommendation: budget.recommendation(slo).to_string(),
        burn_rates,
        breaker: BreakerView {
            state: breaker.state().name(),
            retry_at: breaker.retry_at(),
            time_until_retry: breaker.time_until_retry(now),
            circuit_opens_24h: int(breaker.opens_24h(now)),
            failure_rate: bc.failure_rate(),
            avg_latency_ms: bc.avg_latency_ms(),
            window_tasks: long(bc.tasks),
            window_failed: long(bc.failed),
        },
        metrics,
        slo_violations,
        firing_alerts,
        accuracy: accuracy(agent, now),
    }
}

/// The objectives of SPEC §4 that the window currently misses.
fn violations(slo: &Slo, m: &AgentMetrics) -> Vec<String> {
    let checks = [
        (
            "task_success_rate",
            m.task_success_rate
                .is_some_and(|v| v < slo.task_success_rate),
        ),
        (
            "max_tool_calls_per_task",
            m.avg_tool_calls
                .is_some_and(|v| v > slo.max_tool_calls_per_task),
        ),
        (
            "max_latency_ms",
            m.p99_latency_ms
                .is_some_and(|v| v > long(slo.max_latency_ms)),
        ),
        (
            "max_error_rate",
            m.policy_violation_rate
                .is_some_and(|v| v > slo.max_error_rate),
        ),
        (
            "min_availability",
            m.availability.is_some_and(|v| v < slo.min_availability),
        ),
        (
            "max_delegation_depth",
            m.delegation_depth_max
                .is_some_and(|v| v > int(slo.max_delegation_depth)),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, missed)| *missed)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn summary(slo: &Slo) -> SloSummary {
    SloSummary {
        source: slo.source.clone(),
        task_success_rate: slo.task_success_rate,
        max_tool_calls_per_task: slo.max_tool_calls_per_task,
        max_latency_ms: long(slo.max_latency_ms),
        max_error_rate: slo.max_error_rate,
        min_availability: slo.min_availability,
        window_ms: slo.window_ms,
        on_budget_exhausted: slo.on_budget_exhausted.as_str().to_string(),
        max_delegation_depth: int(slo.max_delegation_depth),
    }
}

fn accuracy(agent: &Agent, now: TimestampMs) -> Option<AccuracyView> {
    let d = agent.declared.as_deref()?;
    let mut measured = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for (name, &measure) in d.decl.declared_accuracy.keys().zip(&d.measures) {
        let (value, n): (Option<f64>, u64) = agent.measured(measure);
        measured.insert(name.clone(), value);
        samples.insert(name.clone(), long(n));
    }
    Some(AccuracyView {
        version: d.decl.version.clone(),
        expires_at: d.decl.expires_at(),
        expired: now >= d.decl.expires_at(),
        declared: d.decl.declared_accuracy.clone(),
        measured,
        samples,
    })
}

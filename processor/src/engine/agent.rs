//! The state of one agent: its windows, breaker, alerts and declaration, and
//! the rules that tie them together when an event, a timer or a command
//! arrives. Everything here is a pure function of its inputs.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::accuracy::{AccuracyDeclaration, DeclarationError, Measure};
use super::alert::{AlertBook, AlertChange, Rule, Wanted};
use super::breaker::{CircuitBreaker, Command, EventContext, Transition};
use super::budget::{burn_rate, BudgetStatus, ErrorBudget};
use super::counts::{
    ratio, BreakerCounts, LatencyBucket, MetricBucket, TaskBucket, TaskCounts, MAX_EVAL_CATEGORIES,
    UNTRACKED,
};
use super::dedup::RecentIds;
use super::plan::{SloPlan, WindowRef, FIXED_RULES};
use super::tail::TailCounts;
use super::timer::TimerKind;
use super::window::{SlidingWindow, BUDGET_BUCKETS, BURN_BUCKETS, SKETCH_BUCKETS};
use super::Categories;
use crate::config::{duration_label, BudgetAction, Severity, Slo, SloId};
use crate::event::{TaskEvent, TimestampMs};
use crate::output::{long, AlertEvent, BreakerTransition, BudgetSnapshot, Output, SnapshotTrigger};

/// What the engine lends an agent for one call.
pub(crate) struct Ctx<'a> {
    /// Not a `&str`: making one reads the id's bytes, a cache miss with a
    /// big fleet, and most events never need it (only outputs do).
    pub id: &'a CompactString,
    pub slo: &'a Slo,
    pub plan: &'a SloPlan,
    pub categories: &'a Categories,
    /// The timer clock (stream time in replay, wall time live).
    pub clock: TimestampMs,
    pub dedup_window: usize,
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// Its event id was among the agent's recent ones.
    Duplicate,
    /// Older than the agent's budget window.
    Late,
}

/// A declaration in force, with each category's measure resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Declared {
    pub decl: AccuracyDeclaration,
    /// In `declared_accuracy` order (sorted by name).
    pub measures: Vec<Measure>,
}

/// One agent's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub(crate) slo: SloId,
    pub(crate) metrics: SlidingWindow<MetricBucket>,
    pub(crate) latency: SlidingWindow<LatencyBucket>,
    /// One per entry of the plan's `burn_windows`; inline for the usual
    /// four, so reaching a window's ring is one pointer, not two.
    pub(crate) burn: SmallVec<[SlidingWindow<TaskBucket>; 4]>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) alerts: AlertBook,
    pub(crate) declared: Option<Box<Declared>>,
    pub(crate) status: BudgetStatus,
    /// Last sequence number used on an output record.
    pub(crate) seq: u64,
    pub(crate) recent: RecentIds,
    /// Eval categories this agent tracks (at most `MAX_EVAL_CATEGORIES`);
    /// inline for the usual few, as every event with evals reads it.
    pub(crate) eval_categories: SmallVec<[u16; 4]>,
    /// Changed since the last periodic snapshot.
    pub(crate) dirty: bool,
    /// Due times of this agent's pending timers, to ignore superseded ones.
    pub(crate) timers: PendingTimers,
    /// Input offset of the last event reflected in this state
    /// ([`NO_POSITION`] if none): replayed input up to it is skipped.
    pub(crate) position: i64,
    /// Latencies above the p99 rule's thresholds (derived, not saved).
    pub(crate) tail: TailCounts,
}

/// [`Agent::position`] of an agent that has seen no positioned event.
pub(crate) const NO_POSITION: i64 = i64::MIN;

/// Due time per timer kind; `None` when none is pending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingTimers {
    pub breaker: Option<TimestampMs>,
    pub reevaluate: Option<TimestampMs>,
    pub expiry: Option<TimestampMs>,
}

impl PendingTimers {
    /// The due time pending for timers of `kind`.
    pub fn due_mut(&mut self, kind: TimerKind) -> &mut Option<TimestampMs> {
        match kind {
            TimerKind::Breaker => &mut self.breaker,
            TimerKind::Reevaluate => &mut self.reevaluate,
            TimerKind::Expiry => &mut self.expiry,
        }
    }
}

impl Agent {
    pub(crate) fn new(slo_id: SloId, slo: &Slo, plan: &SloPlan) -> Self {
        Agent {
            slo: slo_id,
            metrics: SlidingWindow::new(slo.window_ms, BUDGET_BUCKETS),
            latency: SlidingWindow::new(slo.window_ms, SKETCH_BUCKETS),
            burn: plan
                .burn_windows
                .iter()
                .map(|&w| SlidingWindow::new(w, BURN_BUCKETS))
                .collect(),
            breaker: CircuitBreaker::new(&slo.breaker),
            alerts: AlertBook::default(),
            declared: None,
            status: BudgetStatus::Healthy,
            seq: 0,
            recent: RecentIds::default(),
            eval_categories: SmallVec::new(),
            dirty: false,
            timers: PendingTimers::default(),
            position: NO_POSITION,
            tail: TailCounts::default(),
        }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn status(&self) -> BudgetStatus {
        self.status
    }

    /// Tasks in the budget window: the agent's traffic, e.g. to pick the
    /// agents whose metrics get their own Prometheus series.
    pub fn window_tasks(&self) -> u64 {
        self.metrics.total().tasks
    }

    pub fn alerts(&self) -> &AlertBook {
        &self.alerts
    }

    /// Input offset of the last event reflected in this state, if any
    /// (see [`Engine::process_batch_at`](super::Engine::process_batch_at)).
    pub fn position(&self) -> Option<i64> {
        (self.position != NO_POSITION).then_some(self.position)
    }

    /// Whether time alone can change this agent's outputs (alerts to
    /// resolve, a budget to recover), so the engine re-evaluates it on a timer.
    pub(crate) fn needs_watch(&self) -> bool {
        !self.alerts.is_empty() || self.status != BudgetStatus::Healthy
    }

    /// The next time time alone can change what this agent reports: a
    /// bucket sliding out of a window that a firing alert, or a budget that
    /// is not HEALTHY, reads (or an open turning 24 h old). Between such
    /// times a re-evaluation could not change anything it watches.
    pub(crate) fn next_change(&self, plan: &SloPlan) -> Option<TimestampMs> {
        let window = |w: WindowRef| match w {
            WindowRef::Budget => self.metrics.next_expiry(),
            WindowRef::Burn(i) => self.burn[i as usize].next_expiry(),
        };
        let mut next: Option<TimestampMs> = None;
        let mut consider = |t: Option<TimestampMs>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.status != BudgetStatus::Healthy {
            consider(self.metrics.next_expiry());
        }
        for a in self.alerts.active() {
            match a.rule {
                Rule::P99LatencyMs => consider(self.latency.next_expiry()),
                Rule::CircuitOpens24h | Rule::DelegationLoop => {
                    consider(self.breaker.next_change())
                }
                Rule::BurnRate(i) => {
                    let (long, short) = plan.rule_windows[i as usize];
                    consider(window(long));
                    consider(window(short));
                }
                // Expiry has its own timer; a new declaration re-evaluates.
                Rule::AccuracyDeclarationExpired => {}
                _ => consider(self.metrics.next_expiry()),
            }
        }
        next
    }

    /// Starts loading the buckets event `e` will touch (batch path).
    pub(crate) fn prefetch(&self, e: &TaskEvent) {
        let t = e.timestamp;
        self.metrics.prefetch(t);
        self.latency.prefetch(t);
        self.latency.total().prefetch(e.latency_ms);
        for w in &self.burn {
            w.prefetch(t);
        }
        self.breaker.window().prefetch(t);
    }

    /// Starts loading what the buckets `prefetch` fetched point to: the
    /// eval counts and the latency samples, each its own heap block (batch
    /// path; a step after `prefetch`, once those buckets are in cache).
    pub(crate) fn prefetch_heap(&self, e: &TaskEvent) {
        let t = e.timestamp;
        if !e.evals.is_empty() {
            self.metrics.total().prefetch_evals();
            if let Some(b) = self.metrics.peek(t) {
                b.prefetch_evals();
            }
        }
        if e.outcome.is_task() {
            if let Some(b) = self.latency.peek(t) {
                b.prefetch_samples();
            }
        }
    }

    /// Counts an event and applies every rule it can trigger. `categories`
    /// are the interned categories of `e.evals`; the ones this agent does
    /// not track are overwritten with `UNTRACKED`.
    pub(crate) fn on_event(
        &mut self,
        ctx: &Ctx,
        e: &TaskEvent,
        categories: &mut [u16],
        out: &mut Vec<Output>,
    ) -> Applied {
        if !self.recent.insert(&e.event_id, ctx.dedup_window) {
            return Applied::Duplicate;
        }
        for cat in categories.iter_mut() {
            if !self.eval_categories.contains(cat) {
                if self.eval_categories.len() < MAX_EVAL_CATEGORIES {
                    self.eval_categories.push(*cat);
                } else {
                    *cat = UNTRACKED;
                }
            }
        }
        let categories = &*categories;
        let counted = self.metrics.record(e.timestamp, |b, total| {
            b.add(e, categories);
            total.add(e, categories);
        });
        if !counted {
            return Applied::Late;
        }
        if e.outcome.is_task() {
            let before = self.latency.total().count();
            let mut key = None;
            self.latency.record(e.timestamp, |b, total| {
                key = Some(b.add(e.latency_ms, total))
            });
            if let Some(key) = key {
                let total = self.latency.total();
                self.tail.recorded(&ctx.plan.p99, key, before, total);
            }
        }
        for w in &mut self.burn {
            w.record(e.timestamp, |b, total| {
                b.add(e);
                total.add(e);
            });
        }
        self.dirty = true;
        let now = e.timestamp;
        let budget = self.budget_for(ctx.slo);
        let budget_trip = budget.status == BudgetStatus::Exhausted
            && ctx.slo.on_budget_exhausted == BudgetAction::CircuitBreak
            && budget.tasks >= ctx.slo.alerts.min_tasks as u64;
        let bctx = EventContext {
            clock: ctx.clock,
            max_delegation_depth: ctx.slo.max_delegation_depth,
            budget_trip,
        };
        if let Some(t) = self.breaker.on_event(&ctx.slo.breaker, e, bctx) {
            self.emit_transition(ctx, t, out);
        }
        self.evaluate(ctx, now, budget, out);
        Applied::Counted
    }

    /// Fires the cooldown timer due at `due`.
    pub(crate) fn on_breaker_timer(&mut self, ctx: &Ctx, due: TimestampMs, out: &mut Vec<Output>) {
        // The transition reports the breaker window as of `due`, not as of
        // this agent's last event.
        self.advance(due);
        if let Some(t) = self.breaker.on_timer(due) {
            self.emit_transition(ctx, t, out);
            self.dirty = true;
        }
    }

    /// Lets time pass with no event: windows slide, alerts may resolve, the
    /// budget may recover or a declaration may expire.
    pub(crate) fn reevaluate(&mut self, ctx: &Ctx, now: TimestampMs, out: &mut Vec<Output>) {
        self.advance(now);
        let budget = self.budget_for(ctx.slo);
        self.evaluate(ctx, now, budget, out);
    }

    /// Applies an operator command at the clock's time.
    pub(crate) fn command(&mut self, ctx: &Ctx, cmd: Command, out: &mut Vec<Output>) -> bool {
        self.advance(ctx.clock);
        match self.breaker.command(cmd, ctx.clock) {
            Some(t) => {
                self.emit_transition(ctx, t, out);
                self.dirty = true;
                true
            }
            None => false,
        }
    }

    /// Puts a declaration in force if it validly succeeds the current one.
    pub(crate) fn declare(
        &mut self,
        ctx: &Ctx,
        decl: AccuracyDeclaration,
        measures: Vec<Measure>,
        out: &mut Vec<Output>,
    ) -> Result<(), DeclarationError> {
        decl.validate_against(self.declared.as_ref().map(|d| &d.decl))?;
        // A new declaration restarts per-category tracking: clear what the old one fired.
        let stale: Vec<Rule> = self
            .alerts
            .active()
            .iter()
            .map(|a| a.rule)
            .filter(|r| {
                matches!(
                    r,
                    Rule::AccuracyBelowDeclaration(_) | Rule::AccuracyDeclarationExpired
                )
            })
            .collect();
        for rule in stale {
            let name = self.rule_name(ctx, rule);
            if let Some(ch) = self
                .alerts
                .reconcile(ctx.id, &name, rule, None, None, ctx.clock)
            {
                self.emit_alert(ctx, ch, &name, ctx.clock, out);
            }
        }
        self.declared = Some(Box::new(Declared { decl, measures }));
        self.dirty = true;
        self.reevaluate(ctx, ctx.clock, out);
        Ok(())
    }

    /// Slides every window to `now`.
    pub(crate) fn advance(&mut self, now: TimestampMs) {
        self.metrics.advance(now);
        self.latency.advance(now);
        for w in &mut self.burn {
            w.advance(now);
        }
        self.breaker.advance_window(now);
        self.breaker.prune_opens(now);
    }

    pub(crate) fn budget_for(&self, slo: &Slo) -> ErrorBudget {
        let m = self.metrics.total();
        ErrorBudget::compute(slo, m.tasks, m.failed)
    }

    /// Counts over a burn-rate window reference.
    pub(crate) fn task_counts(&self, w: WindowRef) -> TaskCounts {
        match w {
            WindowRef::Budget => {
                let m = self.metrics.total();
                TaskCounts {
                    tasks: m.tasks,
                    failed: m.failed,
                }
            }
            WindowRef::Burn(i) => *self.burn[i as usize].total(),
        }
    }

    /// p99 of task latency over the budget window.
    pub(crate) fn latency_quantile(&self, q: f64) -> Option<u64> {
        self.latency.total().quantile(q)
    }

    /// Evaluates every alert rule and the budget status at `now`.
    fn evaluate(
        &mut self,
        ctx: &Ctx,
        now: TimestampMs,
        budget: ErrorBudget,
        out: &mut Vec<Output>,
    ) {
        let slo = ctx.slo;
        let a = &slo.alerts;
        let m = self.metrics.total();
        let floor = m.tasks >= a.min_tasks as u64;
        let gated = |v: Option<f64>, ok: bool| v.filter(|_| ok);

        let success = gated(ratio(m.tasks - m.failed, m.tasks), floor);
        let tools = gated(ratio(m.tool_calls, m.tasks), floor);
        let remaining = gated(Some(budget.remaining_percent), floor);
        let opens = Some(self.breaker.opens_24h(now) as f64);
        let violations = gated(ratio(m.policy_violations, m.tool_calls), floor);
        let halluc = gated(
            ratio(m.hallucinations, m.hallucination_evaluated),
            m.hallucination_evaluated >= a.min_tasks as u64,
        );
        // The walk only when the rule can fire or is firing: otherwise its
        // value is not reported and `apply_rule` returns at once.
        let p99 = if floor
            && (a.p99_latency_ms.warning.is_some() || a.p99_latency_ms.critical.is_some())
            && (self.alerts.is_firing(Rule::P99LatencyMs)
                || self
                    .tail
                    .maybe_above(&ctx.plan.p99, 0.99, self.latency.total()))
        {
            self.latency_quantile(0.99).map(|v| v as f64)
        } else {
            None
        };
        let availability = gated(
            ratio(m.tasks, m.attempts()),
            m.attempts() >= a.min_tasks as u64,
        );
        let loops = self.breaker.counts().loops;

        let values = [
            success,
            tools,
            remaining,
            opens,
            violations,
            halluc,
            p99,
            availability,
        ];
        // With nothing firing, a rule whose value earns no severity has
        // nothing to do: one comparison per rule for a healthy agent.
        let quiet = self.alerts.is_empty();
        for ((&rule, trigger), value) in FIXED_RULES.iter().zip(&ctx.plan.fixed).zip(values) {
            if quiet && !value.is_some_and(|v| trigger.reached(v)) {
                continue;
            }
            let wanted = value.and_then(|v| trigger.level(v));
            self.apply_rule(ctx, rule, value, wanted, now, out);
        }

        let loop_wanted = (loops > 0).then_some(Wanted {
            severity: Severity::Critical,
            value: Some(loops as f64),
            threshold: 0.0,
        });
        self.apply_rule(
            ctx,
            Rule::DelegationLoop,
            Some(loops as f64),
            loop_wanted,
            now,
            out,
        );

        for (i, rule) in slo.burn_rate.rules.iter().enumerate() {
            let (lw, sw) = ctx.plan.rule_windows[i];
            let short = self.task_counts(sw);
            // No failure in the short window: its burn rate is 0 or none,
            // never above a factor (> 0), so a rule not firing stays so.
            // Most events of a healthy fleet end here.
            if short.failed == 0 && !self.alerts.is_firing(Rule::BurnRate(i as u8)) {
                continue;
            }
            let long = self.task_counts(lw);
            let long_rate = burn_rate(slo, long.tasks, long.failed)
                .filter(|_| long.tasks >= slo.burn_rate.min_tasks as u64);
            let short_rate = burn_rate(slo, short.tasks, short.failed);
            let wanted = match (long_rate, short_rate) {
                (Some(l), Some(s)) if l > rule.factor && s > rule.factor => Some(Wanted {
                    severity: rule.severity,
                    value: Some(l),
                    threshold: rule.factor,
                }),
                _ => None,
            };
            self.apply_rule(ctx, Rule::BurnRate(i as u8), long_rate, wanted, now, out);
        }

        self.evaluate_accuracy(ctx, now, out);

        if budget.status != self.status {
            self.status = budget.status;
            let snap = self.snapshot(ctx, now, SnapshotTrigger::StatusChange);
            out.push(Output::BudgetSnapshot(Box::new(snap)));
        }
    }

    fn evaluate_accuracy(&mut self, ctx: &Ctx, now: TimestampMs, out: &mut Vec<Output>) {
        let Some(d) = self.declared.as_deref() else {
            return;
        };
        let min = ctx.slo.accuracy.min_samples as u64;
        let severity = ctx.slo.accuracy.severity;
        let checks: Vec<(Rule, Option<f64>, Option<Wanted>)> = d
            .decl
            .declared_accuracy
            .values()
            .zip(&d.measures)
            .enumerate()
            .map(|(i, (&declared, &measure))| {
                let (measured, samples) = self.measured(measure);
                let value = measured.filter(|_| samples >= min);
                let wanted = value.filter(|&v| v < declared).map(|v| Wanted {
                    severity,
                    value: Some(v),
                    threshold: declared,
                });
                (Rule::AccuracyBelowDeclaration(i as u16), value, wanted)
            })
            .collect();
        let expires_at = d.decl.expires_at();
        // Saturating: a declaration can come before any event, at clock MIN.
        let age_days = now.saturating_sub(d.decl.published_at) as f64 / 86_400_000.0;
        let expired = (now >= expires_at).then_some(Wanted {
            severity,
            value: Some(age_days),
            threshold: d.decl.valid_for_days as f64,
        });
        for (rule, value, wanted) in checks {
            self.apply_rule(ctx, rule, value, wanted, now, out);
        }
        self.apply_rule(
            ctx,
            Rule::AccuracyDeclarationExpired,
            Some(age_days),
            expired,
            now,
            out,
        );
    }

    /// Measured value and sample count of one accuracy measure.
    pub(crate) fn measured(&self, measure: Measure) -> (Option<f64>, u64) {
        let m = self.metrics.total();
        match measure {
            Measure::TaskCompletion => (ratio(m.tasks - m.failed, m.tasks), m.tasks),
            Measure::PolicyCompliance => (
                ratio(m.policy_violations, m.tool_calls).map(|r| 1.0 - r),
                m.tool_calls,
            ),
            Measure::Eval(cat) => match m.eval(cat) {
                Some(c) => (ratio(c.passed, c.evaluated), c.evaluated),
                None => (None, 0),
            },
        }
    }

    /// Brings `rule` to `wanted`. Inlined for its cheap exits, the common
    /// cases, taken before the rule's name is built: nothing wanted and
    /// nothing firing, or firing already at the wanted severity (an agent in
    /// trouble, event after event). A dozen rules run this per event.
    #[inline(always)]
    fn apply_rule(
        &mut self,
        ctx: &Ctx,
        rule: Rule,
        value: Option<f64>,
        wanted: Option<Wanted>,
        now: TimestampMs,
        out: &mut Vec<Output>,
    ) {
        match (self.alerts.severity(rule), wanted) {
            (None, None) => {}
            (Some(s), Some(w)) if s == w.severity => {}
            _ => self.change_rule(ctx, rule, value, wanted, now, out),
        }
    }

    /// [`Agent::apply_rule`] when the alert starts, changes or ends.
    #[inline(never)]
    fn change_rule(
        &mut self,
        ctx: &Ctx,
        rule: Rule,
        value: Option<f64>,
        wanted: Option<Wanted>,
        now: TimestampMs,
        out: &mut Vec<Output>,
    ) {
        let name = self.rule_name(ctx, rule);
        if let Some(ch) = self
            .alerts
            .reconcile(ctx.id, &name, rule, value, wanted, now)
        {
            self.emit_alert(ctx, ch, &name, now, out);
        }
    }

    pub(crate) fn rule_name(&self, ctx: &Ctx, rule: Rule) -> String {
        if let Some(n) = rule.fixed_name() {
            return n.to_string();
        }
        match rule {
            Rule::BurnRate(i) => ctx.slo.burn_rate.rules[i as usize].name.clone(),
            Rule::AccuracyBelowDeclaration(i) => {
                let cat = self
                    .declared
                    .as_ref()
                    .and_then(|d| d.decl.declared_accuracy.keys().nth(i as usize))
                    .map(String::as_str)
                    .unwrap_or("unknown");
                format!("accuracy_below_declaration:{cat}")
            }
            _ => unreachable!("fixed_name covers the other rules"),
        }
    }

    fn emit_alert(
        &mut self,
        ctx: &Ctx,
        ch: AlertChange,
        name: &str,
        now: TimestampMs,
        out: &mut Vec<Output>,
    ) {
        let window = rule_window(ctx.slo, ch.rule);
        self.seq += 1;
        self.dirty = true;
        out.push(Output::Alert(AlertEvent {
            alert_id: format!("{:016x}", ch.alert_id),
            agent_id: ctx.id.to_string(),
            seq: long(self.seq),
            rule: name.to_string(),
            status: ch.status,
            severity: ch.severity,
            value: ch.value,
            threshold: ch.threshold,
            window,
            started_at: ch.started_at,
            event_time: now,
        }));
    }

    fn emit_transition(&mut self, ctx: &Ctx, t: Transition, out: &mut Vec<Output>) {
        self.seq += 1;
        let c: &BreakerCounts = self.breaker.counts();
        out.push(Output::BreakerTransition(BreakerTransition {
            agent_id: ctx.id.to_string(),
            seq: long(self.seq),
            state: t.to,
            previous_state: t.from,
            reason: t.reason,
            failure_rate: c.failure_rate(),
            avg_latency_ms: c.avg_latency_ms(),
            window_tasks: long(c.tasks),
            window_failed: long(c.failed),
            retry_at: t.retry_at,
            cooldown_ms: t.cooldown_ms,
            event_time: t.at,
        }));
    }

    /// The budget snapshot at `now` (windows must already be advanced).
    pub(crate) fn snapshot(
        &mut self,
        ctx: &Ctx,
        now: TimestampMs,
        trigger: SnapshotTrigger,
    ) -> BudgetSnapshot {
        self.seq += 1;
        super::view::snapshot(self, ctx, now, trigger)
    }
}

/// The window a rule's value is computed over, as shown on its alerts.
fn rule_window(slo: &Slo, rule: Rule) -> String {
    match rule {
        Rule::CircuitOpens24h => "24h".to_string(),
        Rule::DelegationLoop => duration_label(slo.breaker.window_ms),
        Rule::BurnRate(i) => {
            let r = &slo.burn_rate.rules[i as usize];
            format!(
                "{}/{}",
                duration_label(r.long_ms),
                duration_label(r.short_ms)
            )
        }
        Rule::AccuracyDeclarationExpired => String::new(),
        _ => duration_label(slo.window_ms),
    }
}

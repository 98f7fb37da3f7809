//! The pure, deterministic engine: per-agent windows, SLO metrics, error
//! budgets, circuit breakers, alerts and accuracy declarations.
//!
//! No I/O, no clock reads, no randomness: every call takes the time it
//! happens at, and the same calls in the same order produce the same outputs
//! byte for byte.
//!
//! **Sharding.** One [`Engine`] owns the agents of one input partition (the
//! Kafka Streams task model): the consumer that owns a partition owns its
//! engine, so the hot path needs no lock at all, and an agent's state moves
//! with its partition on a rebalance. Scaling across cores is done by
//! running one engine per partition, not by sharing one map. Inside an
//! engine, agents live in a `Vec` indexed through a hash map of ids, which
//! keeps per-agent overhead small enough for a million agents and gives a
//! deterministic, first-seen order for timers and snapshots.
//!
//! **Recovery.** [`Engine::export_agent`] writes an agent's exact state
//! (a few hundred bytes to a few KiB) and [`Engine::restore_agent`] puts it
//! in another engine; [`Engine::process_batch_at`] then skips the input
//! each restored agent already reflects. An agent is marked changed by
//! anything that changes its state (an event at an offset, a timer that
//! fires, a command), so a checkpoint that exports the changed agents
//! keeps every exported state current.
//!
//! **Time.** Windows run on event time. Timers (breaker cooldowns,
//! re-evaluation of agents with something firing, declaration expiry) run on
//! the engine clock, which only [`Engine::advance_to`] moves: a replay drives
//! it with stream time, a live job with the wall clock.

pub mod accuracy;
pub mod agent;
pub mod alert;
mod batch;
pub mod breaker;
pub mod budget;
mod changed;
pub mod counts;
pub mod dedup;
mod dormant;
pub mod plan;
mod prefetch;
pub mod query;
mod restore;
mod ring;
pub mod sketch;
mod state;
mod tail;
mod timer;
mod view;
pub mod window;

use std::collections::{HashMap, VecDeque};

use compact_str::CompactString;
use std::sync::Arc;

use self::accuracy::{AccuracyDeclaration, DeclarationError, Measure};
use self::agent::{Agent, Applied, Ctx};
use self::breaker::Command;
use self::changed::Changed;
pub use self::dormant::AgentBrief;
use self::dormant::Slot;
use self::plan::SloPlan;
pub use self::state::{RestoreError, STATE_FORMAT};
use self::timer::{TimerKind, Timers};
use crate::config::{EngineSettings, SloConfig};
use crate::event::{TaskEvent, TimestampMs};
use crate::output::{AgentMetrics, BudgetSnapshot, BurnRate, Output, SnapshotTrigger};

/// Engine settings that are not part of any SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Recent event ids remembered per agent for duplicate detection (at most
    /// [`dedup::MAX_RECENT_IDS`]).
    pub dedup_window: usize,
    /// An agent with something firing (or a non-HEALTHY budget) is
    /// re-evaluated with no event when one of its windows slides a bucket
    /// out, but at most once per this many engine-clock milliseconds.
    pub reevaluate_every_ms: i64,
    /// An agent untouched for this many engine-clock milliseconds is kept
    /// as its exported state until it is next needed (see `dormant`);
    /// `None` keeps every agent awake. Changes no output, only memory and
    /// the cost of an agent's first event after a quiet spell.
    pub dormant_after_ms: Option<i64>,
    /// No agent falls dormant while at most this many are awake: a small
    /// fleet stays in memory whole (10 000 agents take tens of MB), where
    /// waking agents would cost CPU to save little.
    pub min_awake_agents: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let settings = EngineSettings::default();
        EngineOptions {
            dedup_window: 32,
            reevaluate_every_ms: 60_000,
            dormant_after_ms: settings.dormant_after_ms,
            min_awake_agents: settings.min_awake_agents,
        }
    }
}

/// Which clock [`Engine::process_batch`] and [`Engine::process_batch_at`] run timers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Before each event, advance the clock to its time (replay, backfill).
    EventTime,
    /// Leave the clock where the caller put it with [`Engine::advance_to`]
    /// (a live job on the wall clock).
    Held,
}

/// Counters of what the engine did with its input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Events processed (counted, duplicate or late).
    pub events: u64,
    /// Events [`Engine::process_batch_at`] skipped because their agent's
    /// state already reflected them (input re-read after a restore).
    pub replayed: u64,
    pub duplicates: u64,
    pub late: u64,
    pub transitions: u64,
    pub alerts: u64,
    pub snapshots: u64,
    /// Dormant agents woken (see [`EngineOptions::dormant_after_ms`]).
    pub woken: u64,
}

/// Interned eval-category names, so buckets store a `u16`, not a string.
#[derive(Debug, Default, Clone)]
pub struct Categories {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u16, ahash::RandomState>,
}

impl Categories {
    /// The id of `name`, assigning the next one if new. Past 65 535 distinct
    /// names everything new shares the last id (a label-cardinality guard).
    pub fn intern(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len().min(u16::MAX as usize) as u16;
        if (id as usize) == self.names.len() {
            self.names.push(name.into());
            self.ids.insert(name.into(), id);
        }
        id
    }

    pub fn name(&self, id: u16) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

/// The engine of one shard of agents.
///
/// ```
/// use std::sync::Arc;
/// use breakwater::config::SloConfig;
/// use breakwater::engine::Engine;
/// use breakwater::event::{Outcome, TaskEvent};
/// use breakwater::output::Output;
///
/// let mut engine = Engine::new(Arc::new(SloConfig::default()));
/// let mut out = Vec::new();
/// for i in 0..20 {
///     let outcome = if i < 2 { Outcome::Failure } else { Outcome::Success };
///     let e = TaskEvent::new(format!("e{i}"), "research-agent", 1_000 * i, outcome);
///     engine.advance_to(e.timestamp, &mut out);
///     engine.process(&e, &mut out);
/// }
/// // 2 failures in 20 tasks is a 10% failure rate: the breaker opens.
/// assert!(out.iter().any(|o| matches!(o, Output::BreakerTransition(t) if t.state.as_str() == "OPEN")));
/// ```
pub struct Engine {
    config: Arc<SloConfig>,
    plans: Vec<SloPlan>,
    options: EngineOptions,
    /// Ids up to 24 bytes sit inline in the map's slots, so a lookup
    /// compares the key without chasing a pointer to it.
    index: HashMap<CompactString, u32, ahash::RandomState>,
    ids: Vec<CompactString>,
    agents: Vec<Slot>,
    /// Awake agents by when they were last touched (see `dormant`).
    idle: VecDeque<(TimestampMs, u32)>,
    dormant: usize,
    state_buf: Vec<u8>,
    /// Agents changed since the last periodic snapshot.
    changed: Changed,
    categories: Categories,
    timers: Timers,
    clock: TimestampMs,
    stats: EngineStats,
    scratch: Vec<u16>,
}

impl Engine {
    /// An engine with the default options, except those the config's
    /// `engine:` section sets.
    pub fn new(config: Arc<SloConfig>) -> Self {
        let options = EngineOptions {
            dormant_after_ms: config.engine.dormant_after_ms,
            min_awake_agents: config.engine.min_awake_agents,
            ..EngineOptions::default()
        };
        Self::with_options(config, options)
    }

    pub fn with_options(config: Arc<SloConfig>, options: EngineOptions) -> Self {
        let plans = config.slos().iter().map(SloPlan::new).collect();
        Engine {
            config,
            plans,
            options,
            // Fixed keys: the map's order is never observable, but a fixed
            // hasher keeps memory layout, and so benchmarks, repeatable.
            index: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            ids: Vec::new(),
            agents: Vec::new(),
            idle: VecDeque::new(),
            dormant: 0,
            state_buf: Vec::new(),
            changed: Changed::default(),
            categories: Categories::default(),
            timers: Timers::default(),
            clock: TimestampMs::MIN,
            stats: EngineStats::default(),
            scratch: Vec::new(),
        }
    }

    /// The engine clock: the latest time passed to [`Engine::advance_to`].
    pub fn clock(&self) -> TimestampMs {
        self.clock
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn config(&self) -> &SloConfig {
        &self.config
    }

    /// Number of agents tracked.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Agent ids in first-seen order.
    pub fn agent_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(|s| &**s)
    }

    /// An agent's state, if tracked (woken if dormant).
    pub fn agent(&mut self, agent_id: &str) -> Option<&Agent> {
        let i = *self.index.get(agent_id)? as usize;
        self.wake(i);
        Some(self.agents[i].agent())
    }

    /// Whether `agent_id` is tracked.
    pub fn contains(&self, agent_id: &str) -> bool {
        self.index.contains_key(agent_id)
    }

    /// What the fleet views read of an agent, without waking it.
    pub fn brief(&self, agent_id: &str) -> Option<AgentBrief> {
        self.index
            .get(agent_id)
            .map(|&i| self.agents[i as usize].brief())
    }

    /// Every agent's id and [`AgentBrief`], in first-seen order, without
    /// waking any.
    pub fn briefs(&self) -> impl Iterator<Item = (&str, AgentBrief)> {
        self.ids
            .iter()
            .zip(&self.agents)
            .map(|(id, s)| (&**id, s.brief()))
    }

    /// Moves the clock to `now` (never backwards) and fires every timer due
    /// by then, in (due time, agent first-seen order, kind) order.
    pub fn advance_to(&mut self, now: TimestampMs, out: &mut Vec<Output>) {
        while let Some((due, slot, kind)) = self.timers.pop_due(now) {
            self.clock = self.clock.max(due);
            let i = slot as usize;
            if *self.agents[i].timers().due_mut(kind) != Some(due) {
                continue; // superseded by a later schedule
            }
            self.wake(i);
            let agent = self.agents[i].agent_mut();
            *agent.timers.due_mut(kind) = None;
            let before = out.len();
            let ctx = ctx_for(
                &self.config,
                &self.plans,
                &self.ids,
                &self.categories,
                &self.options,
                agent,
                i,
                self.clock,
            );
            match kind {
                TimerKind::Breaker => agent.on_breaker_timer(&ctx, due, out),
                TimerKind::Reevaluate | TimerKind::Expiry => agent.reevaluate(&ctx, due, out),
            }
            // The state moved (windows slid, this timer was used up) even if
            // nothing was emitted: export it at the next checkpoint, or a
            // restore would fire this timer again at a later clock.
            agent.dirty = true;
            self.count(before, out);
            self.schedule(i);
        }
        self.clock = self.clock.max(now);
        self.fall_dormant();
    }

    /// Counts one event. Call [`Engine::advance_to`] first to fire timers
    /// due before it (a replay passes the event's time; a live job the wall clock).
    pub fn process(&mut self, e: &TaskEvent, out: &mut Vec<Output>) -> Applied {
        let i = self.slot(&e.agent_id);
        self.process_slot(i, e, out)
    }

    fn process_slot(&mut self, i: usize, e: &TaskEvent, out: &mut Vec<Output>) -> Applied {
        self.stats.events += 1;
        if self.clock == TimestampMs::MIN {
            self.clock = e.timestamp;
        }
        self.scratch.clear();
        for ev in &e.evals {
            self.scratch.push(self.categories.intern(&ev.category));
        }
        let before = out.len();
        self.wake(i);
        let agent = self.agents[i].agent_mut();
        let ctx = ctx_for(
            &self.config,
            &self.plans,
            &self.ids,
            &self.categories,
            &self.options,
            agent,
            i,
            self.clock,
        );
        let applied = agent.on_event(&ctx, e, &mut self.scratch, out);
        match applied {
            Applied::Duplicate => self.stats.duplicates += 1,
            Applied::Late => self.stats.late += 1,
            Applied::Counted => {}
        }
        self.count(before, out);
        self.schedule(i);
        applied
    }

    /// Applies an operator command at the clock's time; `false` if it
    /// changed nothing (e.g. force-open of a breaker already forced open).
    pub fn command(&mut self, agent_id: &str, cmd: Command, out: &mut Vec<Output>) -> bool {
        let i = self.slot(agent_id);
        let before = out.len();
        self.wake(i);
        let agent = self.agents[i].agent_mut();
        let ctx = ctx_for(
            &self.config,
            &self.plans,
            &self.ids,
            &self.categories,
            &self.options,
            agent,
            i,
            self.clock,
        );
        let changed = agent.command(&ctx, cmd, out);
        // Even a no-op moved the windows, and may have created the agent.
        agent.dirty = true;
        self.count(before, out);
        self.schedule(i);
        changed
    }

    /// Puts an accuracy declaration in force at the clock's time, or refuses it.
    pub fn declare(
        &mut self,
        decl: AccuracyDeclaration,
        out: &mut Vec<Output>,
    ) -> Result<(), DeclarationError> {
        if decl.agent_id.is_empty() {
            return Err(DeclarationError::EmptyAgent);
        }
        let i = self.slot(&decl.agent_id);
        let measures = decl
            .declared_accuracy
            .keys()
            .map(|name| Measure::for_category(name, |n| self.categories.intern(n)))
            .collect();
        let before = out.len();
        self.wake(i);
        let agent = self.agents[i].agent_mut();
        let ctx = ctx_for(
            &self.config,
            &self.plans,
            &self.ids,
            &self.categories,
            &self.options,
            agent,
            i,
            self.clock,
        );
        let result = agent.declare(&ctx, decl, measures, out);
        agent.dirty = true; // even if refused: it may have created the agent
        self.count(before, out);
        self.schedule(i);
        result
    }

    /// The seed's AgentMetrics view of one agent at the clock's time.
    pub fn metrics(&mut self, agent_id: &str) -> Option<AgentMetrics> {
        self.view(agent_id, |agent, ctx| view::metrics(agent, ctx, ctx.clock))
    }

    /// The burn rate over each window of one agent's burn-rate rules at
    /// the clock's time (SPEC §5), shortest window first.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::Engine;
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let mut e = Engine::new(Arc::new(SloConfig::default()));
    /// let mut out = Vec::new();
    /// for i in 0..10 {
    ///     let outcome = if i == 0 { Outcome::Failure } else { Outcome::Success };
    ///     e.process(&TaskEvent::new(format!("e{i}"), "a", 1_000 + i, outcome), &mut out);
    /// }
    /// let rates = e.burn_rates("a").unwrap();
    /// let windows: Vec<&str> = rates.iter().map(|b| b.window.as_str()).collect();
    /// assert_eq!(windows, ["5m", "30m", "1h", "6h", "24h"]);
    /// // 1 failure in 10 tasks against a 5 % budget: burning twice as fast.
    /// assert!((rates[0].burn_rate.unwrap() - 2.0).abs() < 1e-9);
    /// assert!(e.burn_rates("b").is_none());
    /// ```
    pub fn burn_rates(&mut self, agent_id: &str) -> Option<Vec<BurnRate>> {
        self.view(agent_id, view::burn_rates)
    }

    /// A view of one agent with its windows slid to the clock's time.
    fn view<T>(&mut self, agent_id: &str, f: impl FnOnce(&Agent, &Ctx) -> T) -> Option<T> {
        let i = *self.index.get(agent_id)? as usize;
        self.wake(i);
        let agent = self.agents[i].agent_mut();
        agent.advance(self.clock);
        let ctx = ctx_for(
            &self.config,
            &self.plans,
            &self.ids,
            &self.categories,
            &self.options,
            agent,
            i,
            self.clock,
        );
        Some(f(agent, &ctx))
    }

    /// A budget snapshot of one agent at the clock's time.
    pub fn snapshot(&mut self, agent_id: &str, trigger: SnapshotTrigger) -> Option<BudgetSnapshot> {
        let i = *self.index.get(agent_id)? as usize;
        Some(self.snapshot_slot(i, trigger))
    }

    /// Input offset of the last event reflected in the agent's state (see
    /// [`Engine::process_batch_at`]); `None` for an unknown agent or one that
    /// has seen no event with an offset.
    pub fn position(&self, agent_id: &str) -> Option<i64> {
        self.brief(agent_id)?.position
    }

    /// Snapshots of the agents that changed since the last call (the periodic
    /// snapshot), in first-seen order.
    pub fn take_changed_snapshots(&mut self) -> Vec<BudgetSnapshot> {
        self.changed_slots()
            .into_iter()
            .map(|i| self.visit(i, |e| e.snapshot_slot(i, SnapshotTrigger::Periodic)))
            .collect()
    }

    /// The slots of the agents changed since the last call, in first-seen
    /// order: those marked (see `schedule`) that are still changed (a
    /// final or on-demand snapshot may have taken one since).
    fn changed_slots(&mut self) -> Vec<usize> {
        #[cfg(debug_assertions)]
        for i in 0..self.agents.len() {
            assert!(
                !self.agents[i].is_dirty() || self.changed.contains(i),
                "agent slot {i} changed but is not listed"
            );
        }
        let mut slots = self.changed.take();
        slots.retain(|&i| self.agents[i].is_dirty());
        slots
    }

    /// A final snapshot of every agent, sorted by agent id.
    pub fn final_snapshots(&mut self) -> Vec<BudgetSnapshot> {
        let mut order: Vec<usize> = (0..self.agents.len()).collect();
        order.sort_by(|&a, &b| self.ids[a].cmp(&self.ids[b]));
        order
            .into_iter()
            .map(|i| self.visit(i, |e| e.snapshot_slot(i, SnapshotTrigger::Final)))
            .collect()
    }

    /// Runs `f` on slot `i` woken, and puts it back to sleep after if it was
    /// dormant: a walk over the fleet does not wake it all.
    fn visit<T>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let was_dormant = self.agents[i].is_dormant();
        let result = f(self);
        self.rest(i, was_dormant);
        result
    }

    fn snapshot_slot(&mut self, i: usize, trigger: SnapshotTrigger) -> BudgetSnapshot {
        self.wake(i);
        let agent = self.agents[i].agent_mut();
        agent.advance(self.clock);
        agent.dirty = false;
        let ctx = ctx_for(
            &self.config,
            &self.plans,
            &self.ids,
            &self.categories,
            &self.options,
            agent,
            i,
            self.clock,
        );
        self.stats.snapshots += 1;
        agent.snapshot(&ctx, self.clock, trigger)
    }

    /// The slot of `agent_id`, creating the agent with its resolved SLO if new.
    fn slot(&mut self, agent_id: &str) -> usize {
        if let Some(&i) = self.index.get(agent_id) {
            return i as usize;
        }
        let id = CompactString::from(agent_id);
        let slo_id = self.config.resolve(agent_id);
        let agent = Agent::new(
            slo_id,
            self.config.slo(slo_id),
            &self.plans[slo_id.0 as usize],
        );
        let i = self.push_awake(agent);
        self.ids.push(id.clone());
        self.index.insert(id, i as u32);
        i
    }

    fn count(&mut self, from: usize, out: &[Output]) {
        for o in &out[from..] {
            match o {
                Output::BreakerTransition(_) => self.stats.transitions += 1,
                Output::Alert(_) => self.stats.alerts += 1,
                Output::BudgetSnapshot(_) => self.stats.snapshots += 1,
            }
        }
    }

    /// Arms the agent's timers that its state now calls for.
    fn schedule(&mut self, i: usize) {
        let agent = self.agents[i].agent_mut();
        let slot = i as u32;
        if agent.dirty {
            self.changed.mark(i);
        }
        if let Some(r) = agent.breaker().retry_at() {
            if agent.timers.breaker != Some(r) {
                agent.timers.breaker = Some(r);
                self.timers.push(r, slot, TimerKind::Breaker);
            }
        }
        if agent.needs_watch() {
            // Only when a window changes, and at most once per interval.
            let plan = &self.plans[agent.slo.0 as usize];
            let due = agent.next_change(plan).map(|change| {
                change.max(self.clock.saturating_add(self.options.reevaluate_every_ms))
            });
            if let Some(due) = due {
                if agent.timers.reevaluate.is_none_or(|pending| due < pending) {
                    agent.timers.reevaluate = Some(due);
                    self.timers.push(due, slot, TimerKind::Reevaluate);
                }
            }
        }
        if let Some(d) = agent.declared.as_deref() {
            let exp = d.decl.expires_at();
            if agent.timers.expiry != Some(exp) && exp > self.clock {
                agent.timers.expiry = Some(exp);
                self.timers.push(exp, slot, TimerKind::Expiry);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ctx_for<'a>(
    config: &'a SloConfig,
    plans: &'a [SloPlan],
    ids: &'a [CompactString],
    categories: &'a Categories,
    options: &EngineOptions,
    agent: &Agent,
    i: usize,
    clock: TimestampMs,
) -> Ctx<'a> {
    Ctx {
        id: &ids[i],
        slo: config.slo(agent.slo),
        plan: &plans[agent.slo.0 as usize],
        categories,
        clock,
        dedup_window: options.dedup_window,
    }
}

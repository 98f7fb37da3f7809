//! Dormant agents: an agent that has seen nothing for
//! [`EngineOptions::dormant_after_ms`](super::EngineOptions) of engine
//! clock is kept as its exported state — the bytes of
//! [`Engine::export_agent`], a few hundred for a quiet agent — instead of
//! its live windows, and is woken (decoded back) by its next event, timer,
//! command or query.
//!
//! A big fleet is mostly quiet: at 20 tasks a day an agent waits about an
//! hour between tasks, and its live windows, sketches and rings take
//! several KB against well under 1 KB exported (Flink's RocksDB backend and
//! Kafka Streams' stores keep cold keys serialized for the same reason).
//! The state codec is exact — a restored agent equals the exported one —
//! so dormancy changes no output: the same input gives the same
//! transitions, alerts and snapshots, byte for byte, with it on or off
//! (`dormancy_changes_no_output` in `tests/engine_restore.rs`). It costs
//! one export when an agent falls dormant and one restore when it wakes,
//! a few µs each.
//!
//! Which agents fall dormant: every awake agent sits once in a FIFO of
//! (last touched, slot). As the clock moves, entries older than the
//! threshold are popped; an agent touched since goes to the back with its
//! new time, one that was not falls dormant. So an agent sleeps at the
//! earliest `dormant_after_ms` after its last touch, and the work is O(1)
//! per touch, spread over time, with no scan of the fleet. Nothing sleeps
//! while at most `min_awake_agents` are awake: below that a fleet's memory
//! is small, and the least recently used agents are the ones put to sleep
//! above it.

use super::agent::{Agent, PendingTimers};
use super::breaker::StateName;
use super::budget::BudgetStatus;
use super::{prefetch, state, Engine};
use crate::config::SloId;
use crate::event::TimestampMs;

/// What the shell reads of every agent without waking it: enough for the
/// fleet gauges, the agent list and the input position.
///
/// ```
/// use std::sync::Arc;
/// use breakwater::config::SloConfig;
/// use breakwater::engine::{breaker::StateName, budget::BudgetStatus, Engine};
/// use breakwater::event::{Outcome, TaskEvent};
///
/// let mut engine = Engine::new(Arc::new(SloConfig::default()));
/// engine.process(&TaskEvent::new("e1", "a", 1_000, Outcome::Success), &mut Vec::new());
/// let brief = engine.brief("a").unwrap();
/// assert_eq!(brief.circuit_state, StateName::Closed);
/// assert_eq!(brief.status, BudgetStatus::Healthy);
/// assert_eq!(brief.window_tasks, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentBrief {
    pub status: BudgetStatus,
    pub circuit_state: StateName,
    /// When an OPEN breaker may half-open.
    pub retry_at: Option<TimestampMs>,
    /// Tasks in the budget window as of the agent's last change (its
    /// windows are not slid to the clock for this).
    pub window_tasks: u64,
    /// Input offset of the last event reflected in its state.
    pub position: Option<i64>,
    /// Alerts currently firing.
    pub alerts_firing: usize,
}

impl AgentBrief {
    fn of(a: &Agent) -> Self {
        AgentBrief {
            status: a.status(),
            circuit_state: a.breaker().state().name(),
            retry_at: a.breaker().retry_at(),
            window_tasks: a.window_tasks(),
            position: a.position(),
            alerts_firing: a.alerts().active().len(),
        }
    }
}

/// One agent in the engine's table, awake or dormant.
#[derive(Debug)]
pub(crate) enum Slot {
    Awake {
        agent: Box<Agent>,
        /// Engine clock when it was last woken or used.
        touched: TimestampMs,
    },
    Dormant(Box<Dormant>),
}

/// An agent kept as its exported state.
#[derive(Debug)]
pub(crate) struct Dormant {
    /// The agent's state as `state::encode` wrote it (at some clock: an
    /// export writes the current one in its place).
    state: Box<[u8]>,
    slo: SloId,
    brief: AgentBrief,
    /// Read when a timer pops, to skip superseded ones without waking.
    timers: PendingTimers,
    dirty: bool,
    /// The agent still has an entry in the idle FIFO (it was put back to
    /// sleep after a visit, see [`Engine::rest`]): waking it must not add another.
    queued: bool,
}

impl Dormant {
    /// `agent`, kept as `state` (its export).
    fn of(agent: &Agent, state: Box<[u8]>, queued: bool) -> Box<Self> {
        Box::new(Dormant {
            state,
            slo: agent.slo,
            brief: AgentBrief::of(agent),
            timers: agent.timers,
            dirty: agent.dirty,
            queued,
        })
    }
}

impl Slot {
    pub fn awake(agent: Agent, touched: TimestampMs) -> Self {
        Slot::Awake {
            agent: Box::new(agent),
            touched,
        }
    }

    /// The awake agent. Callers wake it first ([`Engine::wake`]).
    #[inline]
    pub fn agent(&self) -> &Agent {
        match self {
            Slot::Awake { agent, .. } => agent,
            Slot::Dormant(_) => unreachable!("a dormant agent is woken before use"),
        }
    }

    /// The awake agent, mutably. Callers wake it first ([`Engine::wake`]).
    #[inline]
    pub fn agent_mut(&mut self) -> &mut Agent {
        match self {
            Slot::Awake { agent, .. } => agent,
            Slot::Dormant(_) => unreachable!("a dormant agent is woken before use"),
        }
    }

    pub fn is_dormant(&self) -> bool {
        matches!(self, Slot::Dormant(_))
    }

    pub fn brief(&self) -> AgentBrief {
        match self {
            Slot::Awake { agent, .. } => AgentBrief::of(agent),
            Slot::Dormant(d) => d.brief,
        }
    }

    pub fn position(&self) -> Option<i64> {
        match self {
            Slot::Awake { agent, .. } => agent.position(),
            Slot::Dormant(d) => d.brief.position,
        }
    }

    pub fn timers(&self) -> PendingTimers {
        match self {
            Slot::Awake { agent, .. } => agent.timers,
            Slot::Dormant(d) => d.timers,
        }
    }

    pub fn is_dirty(&self) -> bool {
        match self {
            Slot::Awake { agent, .. } => agent.dirty,
            Slot::Dormant(d) => d.dirty,
        }
    }

    /// Starts loading an awake agent's header (the batch path's hint).
    #[inline(always)]
    pub fn prefetch(&self) {
        if let Slot::Awake { agent, .. } = self {
            prefetch::prefetch_all(&**agent);
        }
    }
}

impl Engine {
    /// Makes slot `i` awake and marks it used at the clock's time.
    #[inline]
    pub(crate) fn wake(&mut self, i: usize) {
        let clock = self.clock;
        match &mut self.agents[i] {
            Slot::Awake { touched, .. } => *touched = clock,
            Slot::Dormant(_) => self.wake_dormant(i),
        }
    }

    #[cold]
    fn wake_dormant(&mut self, i: usize) {
        let clock = self.clock;
        let Slot::Dormant(d) = &self.agents[i] else {
            return;
        };
        let (mut agent, _) = state::decode(
            &d.state,
            &self.ids[i],
            d.slo,
            self.config.slo(d.slo),
            &self.plans[d.slo.0 as usize],
            &mut self.categories,
        )
        .expect("a dormant agent's own state decodes under the same config");
        agent.dirty = d.dirty;
        let queued = d.queued;
        self.agents[i] = Slot::awake(agent, clock);
        if !queued {
            self.idle.push_back((clock, i as u32));
        }
        self.dormant -= 1;
        self.stats.woken += 1;
    }

    /// Puts slot `i` to sleep if it is awake (the FIFO entry, if any, is
    /// left to `queued` to account for).
    fn sleep(&mut self, i: usize, queued: bool) {
        let Slot::Awake { agent, .. } = &self.agents[i] else {
            return;
        };
        self.state_buf.clear();
        state::encode(
            agent,
            self.config.slo(agent.slo),
            &self.categories,
            self.clock,
            &mut self.state_buf,
        );
        self.agents[i] =
            Slot::Dormant(Dormant::of(agent, self.state_buf.as_slice().into(), queued));
        self.dormant += 1;
    }

    /// After a visit that woke a dormant agent only to read or snapshot it
    /// (final and periodic snapshots walk the whole fleet), puts it back.
    pub(crate) fn rest(&mut self, i: usize, was_dormant: bool) {
        // Only an engine with dormancy on has dormant agents.
        if was_dormant {
            // Its wake added a FIFO entry; the entry stays, marked by `queued`.
            self.sleep(i, true);
        }
    }

    /// Puts to sleep the agents untouched for the threshold (see the module doc).
    pub(crate) fn fall_dormant(&mut self) {
        let Some(after) = self.options.dormant_after_ms else {
            return;
        };
        let idle = |clock: TimestampMs, t: TimestampMs| clock.saturating_sub(t) >= after;
        while let Some(&(t, i)) = self.idle.front() {
            if !idle(self.clock, t)
                || self.agents.len() - self.dormant <= self.options.min_awake_agents
            {
                break;
            }
            self.idle.pop_front();
            match &mut self.agents[i as usize] {
                Slot::Dormant(d) => d.queued = false,
                Slot::Awake { touched, .. } if !idle(self.clock, *touched) => {
                    let touched = *touched;
                    self.idle.push_back((touched, i));
                }
                Slot::Awake { .. } => self.sleep(i as usize, false),
            }
        }
    }

    /// A new agent's slot: awake, and queued to fall dormant if idle.
    pub(crate) fn push_awake(&mut self, agent: Agent) -> usize {
        let i = self.agents.len();
        self.agents.push(Slot::awake(agent, self.clock));
        if self.options.dormant_after_ms.is_some() {
            self.idle.push_back((self.clock, i as u32));
        }
        i
    }

    /// A restored agent's slot: dormant on its own `state` when dormancy
    /// is on (it wakes with its first event), awake otherwise.
    pub(crate) fn restored_slot(&mut self, agent: Agent, state: &[u8]) -> Slot {
        if self.options.dormant_after_ms.is_none() {
            return Slot::awake(agent, self.clock);
        }
        self.dormant += 1;
        Slot::Dormant(Dormant::of(&agent, state.into(), false))
    }

    /// Puts a restored agent in place of slot `i`: an awake one keeps its
    /// place in the idle FIFO, a dormant one its `queued` mark.
    pub(crate) fn replace_restored(&mut self, i: usize, agent: Agent, state: &[u8]) {
        match &mut self.agents[i] {
            Slot::Awake { agent: a, .. } => **a = agent,
            Slot::Dormant(d) => *d = Dormant::of(&agent, state.into(), d.queued),
        }
    }

    /// Appends the state of slot `i` as exported at the clock's time.
    pub(crate) fn export_slot(&self, i: usize, buf: &mut Vec<u8>) {
        match &self.agents[i] {
            Slot::Awake { agent, .. } => {
                let slo = self.config.slo(agent.slo);
                state::encode(agent, slo, &self.categories, self.clock, buf);
            }
            Slot::Dormant(d) => {
                state::with_clock(&d.state, self.clock, buf)
                    .expect("a dormant agent holds a state of this format");
            }
        }
    }

    /// Number of dormant agents.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::{Engine, EngineOptions};
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let options = EngineOptions {
    ///     dormant_after_ms: Some(60_000),
    ///     min_awake_agents: 0,
    ///     ..EngineOptions::default()
    /// };
    /// let mut engine = Engine::with_options(Arc::new(SloConfig::default()), options);
    /// let mut out = Vec::new();
    /// engine.advance_to(1_000, &mut out);
    /// engine.process(&TaskEvent::new("e1", "a", 1_000, Outcome::Success), &mut out);
    /// engine.advance_to(61_000, &mut out);
    /// assert_eq!(engine.dormant_agents(), 1);
    /// // Its next event wakes it, with everything it had.
    /// engine.process(&TaskEvent::new("e2", "a", 62_000, Outcome::Success), &mut out);
    /// assert_eq!(engine.dormant_agents(), 0);
    /// assert_eq!(engine.metrics("a").unwrap().tasks, 2);
    /// ```
    pub fn dormant_agents(&self) -> usize {
        self.dormant
    }
}

//! The batch entry points: a polled batch of events at once, with the state
//! of the next few events' agents fetched into cache while one is applied,
//! optionally with the events' input offsets so that a restored agent skips
//! the input its state already reflects.

use super::agent::Applied;
use super::dormant::Slot;
use super::{Clock, Engine};
use crate::event::TaskEvent;
use crate::output::Output;

impl Engine {
    /// Counts a batch of events in order, exactly as calling
    /// [`Engine::advance_to`] (if `clock` is [`Clock::EventTime`]) and
    /// [`Engine::process`] on each would, and returns how many were counted.
    ///
    /// Faster with many agents: while one event is applied, the state of the
    /// next few is already being fetched into cache.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::{Clock, Engine};
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let events: Vec<_> = (0..50)
    ///     .map(|i| TaskEvent::new(format!("e{i}"), format!("agent-{}", i % 5), 1_000 * i, Outcome::Success))
    ///     .collect();
    /// let mut engine = Engine::new(Arc::new(SloConfig::default()));
    /// let mut out = Vec::new();
    /// assert_eq!(engine.process_batch(&events, Clock::EventTime, &mut out), 50);
    /// assert_eq!(engine.metrics("agent-3").unwrap().tasks, 10);
    /// ```
    pub fn process_batch(
        &mut self,
        events: &[TaskEvent],
        clock: Clock,
        out: &mut Vec<Output>,
    ) -> usize {
        self.batch::<false>(events, &[], clock, out)
    }

    /// [`Engine::process_batch`] for events read at input offsets
    /// `offsets` (one per event, increasing, ≥ 0), skipping the events an
    /// agent's state already reflects: those at or below the agent's
    /// [`position`](Engine::position), which a restored agent
    /// ([`Engine::restore_agent`]) carries. Every other event is processed
    /// and moves its agent's position to its offset (and marks the agent
    /// changed, so its state is exported at the next checkpoint).
    ///
    /// With [`Clock::EventTime`] the clock still advances to a skipped
    /// event's time, so it passes through the same values as in a run that
    /// was never interrupted. Returns how many events were counted; skipped
    /// ones are counted in [`EngineStats::replayed`](super::EngineStats).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::{Clock, Engine};
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let events: Vec<_> = (0..10)
    ///     .map(|i| TaskEvent::new(format!("e{i}"), "agent", 1_000 * i, Outcome::Success))
    ///     .collect();
    /// let offsets: Vec<i64> = (100..110).collect();
    /// let config = Arc::new(SloConfig::default());
    /// let mut first = Engine::new(config.clone());
    /// let mut out = Vec::new();
    /// first.process_batch_at(&events[..6], &offsets[..6], Clock::EventTime, &mut out);
    /// let state = first.export_agent("agent").unwrap();
    ///
    /// // A new owner restores the agent and re-reads from an older offset.
    /// let mut next = Engine::new(config);
    /// next.restore_agent("agent", &state).unwrap();
    /// assert_eq!(next.position("agent"), Some(105));
    /// assert_eq!(next.process_batch_at(&events, &offsets, Clock::EventTime, &mut out), 4);
    /// assert_eq!(next.stats().replayed, 6);
    /// assert_eq!(next.metrics("agent").unwrap().tasks, 10);
    /// ```
    ///
    /// # Panics
    /// If `offsets` is not as long as `events`.
    pub fn process_batch_at(
        &mut self,
        events: &[TaskEvent],
        offsets: &[i64],
        clock: Clock,
        out: &mut Vec<Output>,
    ) -> usize {
        assert_eq!(events.len(), offsets.len(), "one offset per event");
        self.batch::<true>(events, offsets, clock, out)
    }

    /// The batch loop; `AT` says whether `offsets` are given. A const
    /// parameter, so that `process_batch` compiles without the offset check.
    #[inline(always)]
    fn batch<const AT: bool>(
        &mut self,
        events: &[TaskEvent],
        offsets: &[i64],
        clock: Clock,
        out: &mut Vec<Output>,
    ) -> usize {
        // Agent slots are looked up AHEAD events early and the agent's
        // header fetched; half-way, its buckets for the event's time; a
        // quarter of the way, what those buckets point to.
        const AHEAD: usize = 8;
        let mut slots = [0usize; AHEAD];
        let lookup = |engine: &mut Engine, j: usize, slots: &mut [usize; AHEAD]| {
            let i = engine.slot(&events[j].agent_id);
            engine.agents[i].prefetch();
            slots[j % AHEAD] = i;
        };
        for j in 0..events.len().min(AHEAD) {
            lookup(self, j, &mut slots);
        }
        let mut counted = 0;
        for (n, e) in events.iter().enumerate() {
            let near = n + AHEAD / 2;
            if near < events.len() {
                if let Slot::Awake { agent, .. } = &self.agents[slots[near % AHEAD]] {
                    agent.prefetch(&events[near]);
                }
            }
            let next = n + AHEAD / 4;
            if next < events.len() {
                if let Slot::Awake { agent, .. } = &self.agents[slots[next % AHEAD]] {
                    agent.prefetch_heap(&events[next]);
                }
            }
            let i = slots[n % AHEAD];
            if n + AHEAD < events.len() {
                lookup(self, n + AHEAD, &mut slots);
            }
            if clock == Clock::EventTime {
                self.advance_to(e.timestamp, out);
            }
            if AT {
                if offsets[n] <= self.agents[i].position().unwrap_or(i64::MIN) {
                    self.stats.replayed += 1;
                    continue;
                }
                self.wake(i);
                let agent = self.agents[i].agent_mut();
                // Even a duplicate or late event changes what must be
                // restored: the position, and a late one its recent ids.
                agent.position = offsets[n];
                agent.dirty = true;
            }
            counted += (self.process_slot(i, e, out) == Applied::Counted) as usize;
        }
        counted
    }
}

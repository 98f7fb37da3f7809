//! The engine's side of crash recovery: export an agent's exact state,
//! restore it into another engine. The codec is in `state`.
//!
//! The Kafka shell checkpoints every changed agent (its budget snapshot,
//! this state and its input position), then commits the input offsets.
//! After a crash or a rebalance, the new owner restores each agent and
//! re-reads from the committed offset with [`Engine::process_batch_at`],
//! which skips the events a restored agent already reflects.

use compact_str::CompactString;

use super::state::{self, RestoreError};
use super::timer::TimerKind;
use super::Engine;
use crate::event::TimestampMs;
use crate::output::{BudgetSnapshot, SnapshotTrigger};

impl Engine {
    /// The exact state of `agent_id` (see [`Engine::restore_agent`]), or
    /// `None` for an unknown agent. A few hundred bytes for a quiet agent.
    ///
    /// The bytes depend only on the agent's history and the engine clock,
    /// not on the engine holding it: exporting a restored agent gives back
    /// the same bytes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::Engine;
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let config = Arc::new(SloConfig::default());
    /// let mut engine = Engine::new(config.clone());
    /// let mut out = Vec::new();
    /// engine.process(&TaskEvent::new("e1", "a", 1_000, Outcome::Failure), &mut out);
    /// let state = engine.export_agent("a").unwrap();
    ///
    /// let mut other = Engine::new(config);
    /// other.restore_agent("a", &state).unwrap();
    /// assert_eq!(other.metrics("a").unwrap().failed, 1);
    /// assert_eq!(other.export_agent("a").unwrap(), state);
    /// ```
    pub fn export_agent(&self, agent_id: &str) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        self.export_agent_into(agent_id, &mut buf).then_some(buf)
    }

    /// [`Engine::export_agent`], appending to `buf` (no allocation once it
    /// is large enough); `false`, appending nothing, for an unknown agent.
    pub fn export_agent_into(&self, agent_id: &str, buf: &mut Vec<u8>) -> bool {
        let Some(&i) = self.index.get(agent_id) else {
            return false;
        };
        self.export_slot(i as usize, buf);
        true
    }

    /// Puts an agent exported by [`Engine::export_agent`] (in this or
    /// another engine) in this engine, replacing any agent of that id.
    ///
    /// The agent's SLO is resolved afresh from this engine's config; if it
    /// now has other windows than the state was saved with, this fails
    /// with [`RestoreError::SloChanged`] and changes nothing. Pending timers
    /// are armed again at their original due times (an OPEN breaker still
    /// half-opens at its retry time), and the engine clock moves up to the
    /// clock the state was exported at (never back), so that a rebuilt
    /// engine counts retry times from the same clock. Reads no clock,
    /// fires no timer, emits nothing; the agent starts unchanged (not in
    /// the next [`Engine::take_changed_snapshots`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::{Engine, RestoreError};
    ///
    /// let mut engine = Engine::new(Arc::new(SloConfig::default()));
    /// assert!(matches!(engine.restore_agent("a", &[]), Err(RestoreError::Empty)));
    /// assert!(matches!(engine.restore_agent("a", &[99]), Err(RestoreError::UnknownFormat { found: 99 })));
    /// assert!(engine.is_empty());
    /// ```
    pub fn restore_agent(&mut self, agent_id: &str, bytes: &[u8]) -> Result<(), RestoreError> {
        let slo_id = self.config.resolve(agent_id);
        let (agent, clock) = state::decode(
            bytes,
            agent_id,
            slo_id,
            self.config.slo(slo_id),
            &self.plans[slo_id.0 as usize],
            &mut self.categories,
        )?;
        let pending = agent.timers;
        let i = match self.index.get(agent_id) {
            Some(&i) => {
                // Its old timers may still be queued; they no longer match
                // the pending due times below, so they pop as superseded.
                let i = i as usize;
                self.replace_restored(i, agent, bytes);
                i
            }
            None => {
                let id = CompactString::from(agent_id);
                let i = self.agents.len();
                let slot = self.restored_slot(agent, bytes);
                self.agents.push(slot);
                self.ids.push(id.clone());
                self.index.insert(id, i as u32);
                i
            }
        };
        let kinds = [
            (pending.breaker, TimerKind::Breaker),
            (pending.reevaluate, TimerKind::Reevaluate),
            (pending.expiry, TimerKind::Expiry),
        ];
        for (due, kind) in kinds {
            if let Some(due) = due {
                self.timers.push(due, i as u32, kind);
            }
        }
        self.clock = self.clock.max(clock);
        Ok(())
    }

    /// Rebuilds a partition after a crash or a rebalance: restores each of
    /// `agents` (id, state) with [`Engine::restore_agent`], then sets the
    /// engine clock to `clock`, the partition's stream time as of the input
    /// offset processing resumes from (the Kafka shell keeps it in the
    /// offset commit's metadata, as Kafka Streams does). Not the newest
    /// state's clock: states saved past the commit point would put the
    /// clock ahead of the input about to be re-read, and timers would then
    /// fire before events that precede them in the log. No timer fires
    /// here. Returns the agents that could not be restored (they start
    /// afresh when their next event arrives).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::Engine;
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let config = Arc::new(SloConfig::default());
    /// let mut engine = Engine::new(config.clone());
    /// let mut out = Vec::new();
    /// engine.process(&TaskEvent::new("e1", "a", 5_000, Outcome::Success), &mut out);
    /// let state = engine.export_agent("a").unwrap();
    ///
    /// let mut rebuilt = Engine::new(config);
    /// let failed = rebuilt.rebuild([("a", &state[..]), ("b", &[99][..])], 1_000);
    /// assert_eq!(failed.len(), 1);
    /// assert_eq!(rebuilt.clock(), 1_000);
    /// assert_eq!(rebuilt.len(), 1);
    /// ```
    pub fn rebuild<'a>(
        &mut self,
        agents: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        clock: TimestampMs,
    ) -> Vec<(String, RestoreError)> {
        let mut failed = Vec::new();
        for (id, state) in agents {
            if let Err(e) = self.restore_agent(id, state) {
                failed.push((id.to_string(), e));
            }
        }
        self.clock = clock;
        failed
    }

    /// [`Engine::take_changed_snapshots`] with each agent's exported state
    /// beside its snapshot, taken after it: what one checkpoint writes.
    pub fn take_changed_states(&mut self) -> Vec<(BudgetSnapshot, Vec<u8>)> {
        self.changed_slots()
            .into_iter()
            .map(|i| {
                self.visit(i, |e| {
                    let snapshot = e.snapshot_slot(i, SnapshotTrigger::Periodic);
                    let mut state = Vec::new();
                    e.export_slot(i, &mut state);
                    (snapshot, state)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::SloConfig;
    use crate::engine::accuracy::AccuracyDeclaration;
    use crate::engine::breaker::Command;
    use crate::engine::sketch::LatencySketch;
    use crate::engine::Clock;
    use crate::event::{Eval, Outcome, TaskEvent};
    use crate::output::Output;

    const T0: i64 = 1_796_083_200_000;

    /// Agents in many states: failing, slow, looping, with evals, a
    /// declaration, duplicates, late events and operator commands.
    fn busy_engine() -> Engine {
        let mut engine = Engine::new(Arc::new(SloConfig::default()));
        let mut out = Vec::new();
        let outcomes = [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Timeout,
            Outcome::Unavailable,
        ];
        let events: Vec<TaskEvent> = (0..3_000i64)
            .map(|i| {
                let agent = format!("agent-{}", i % 7);
                let mut t = T0 + i * 20_000;
                if i % 13 == 0 {
                    t -= 30 * 3_600_000; // older than the budget window: late
                }
                let id = if i % 17 == 0 { i - 7 } else { i };
                let outcome = outcomes[((i * i) % 11 % 4) as usize * usize::from(i % 7 < 3)];
                let mut e = TaskEvent::new(format!("e{id}"), agent, t, outcome);
                e.latency_ms = ((i * 7_919) % 60_000) as u64;
                if i % 7 == 6 {
                    // 1 ms beside 30 days: more than the sketch's 1024 bins span.
                    e.latency_ms = [1, crate::event::MAX_LATENCY_MS][(i / 7 % 2) as usize];
                }
                e.tool_calls = (i % 9) as u32;
                e.policy_violations = (i % 23 == 0) as u32;
                e.delegation_depth = if i % 211 == 0 { 9 } else { (i % 3) as u32 };
                e.hallucination = (i % 2 == 0).then_some(i % 29 == 0);
                e.intent_met = (i % 3 == 0).then_some(i % 31 != 0);
                for c in 0..(i % 3) {
                    e.evals.push(Eval {
                        category: format!("cat-{}", (i + c) % 5),
                        passed: i % 19 != 0,
                    });
                }
                e
            })
            .collect();
        let offsets: Vec<i64> = (0..events.len() as i64).collect();
        for (k, (e, o)) in events.chunks(100).zip(offsets.chunks(100)).enumerate() {
            engine.process_batch_at(e, o, Clock::EventTime, &mut out);
            if k == 10 {
                engine.command("agent-5", Command::ForceOpen, &mut out);
                let decl = AccuracyDeclaration {
                    agent_id: "agent-4".into(),
                    version: "1.0.0".into(),
                    declared_accuracy: [
                        ("cat-1".to_string(), 0.99),
                        ("task_completion".to_string(), 0.9),
                    ]
                    .into(),
                    measurement_method: "evals".into(),
                    valid_for_days: 1,
                    published_at: T0,
                    supersedes: None,
                };
                engine.declare(decl, &mut out).unwrap();
            }
        }
        engine
    }

    #[test]
    fn restored_agents_equal_the_originals_field_by_field() {
        let mut engine = busy_engine();
        let mut other = Engine::new(engine.config.clone());
        // The same interned ids, so that buckets compare as they are.
        other.categories = engine.categories.clone();
        let ids: Vec<String> = engine.agent_ids().map(str::to_string).collect();
        for id in &ids {
            let id = id.as_str();
            let state = engine.export_agent(id).unwrap();
            other.restore_agent(id, &state).unwrap();
            let mut original = engine.agent(id).unwrap().clone();
            original.dirty = false;
            assert_eq!(other.agent(id).unwrap(), &original, "{id}");
        }
        assert_eq!(other.clock(), engine.clock());
        let a = engine.agent("agent-0").unwrap();
        assert!(a.breaker.opens.len() > 1 && !a.alerts.is_empty() && a.recent.len > 0);
        assert!(engine.stats().duplicates > 0 && engine.stats().late > 0);
        let collapsed = engine.agent("agent-6").unwrap().latency.total();
        assert!(
            collapsed.is_collapsed(),
            "a collapsed latency total is stored as is"
        );
    }

    #[test]
    fn a_latency_total_still_collapsed_is_restored_as_it_is() {
        // 30 days then, a bucket (2 h) later, 1 and 2 ms: the sketch spans
        // more than its 1024 bins, so the small values share its lowest
        // bin. When the 30 days slide out, they still do: re-adding them
        // to a fresh sketch would spread them out again.
        let mut engine = Engine::new(Arc::new(SloConfig::default()));
        let mut out = Vec::new();
        let hour = 3_600_000;
        let at = [
            (0, crate::event::MAX_LATENCY_MS),
            (2 * hour, 1),
            (2 * hour, 2),
            (24 * hour, 3),
        ];
        for (k, (dt, latency)) in at.into_iter().enumerate() {
            let mut e = TaskEvent::new(format!("e{k}"), "a", T0 + dt, Outcome::Success);
            e.latency_ms = latency;
            engine.advance_to(e.timestamp, &mut out);
            engine.process(&e, &mut out);
        }
        let state = engine.export_agent("a").unwrap();
        let agent = engine.agent("a").unwrap().clone();
        assert!(agent.latency.total().is_collapsed());
        assert_eq!(agent.latency.total().count(), 3, "the 30 days slid out");
        let mut fresh = LatencySketch::new();
        agent.latency.live().for_each(|(_, b)| b.add_to(&mut fresh));
        assert_ne!(&fresh, agent.latency.total(), "not the sum of the buckets");
        let mut other = Engine::new(engine.config.clone());
        other.restore_agent("a", &state).unwrap();
        assert_eq!(other.agent("a").unwrap().latency, agent.latency);
    }

    #[test]
    fn restore_replaces_an_agent_and_its_timers() {
        let engine = busy_engine();
        let state = engine.export_agent("agent-0").unwrap();
        let mut other = busy_engine();
        let mut out = Vec::new();
        other.process(
            &TaskEvent::new("x", "agent-0", other.clock(), Outcome::Failure),
            &mut out,
        );
        other.restore_agent("agent-0", &state).unwrap();
        assert_eq!(other.len(), engine.len());
        assert_eq!(other.export_agent("agent-0").unwrap(), state);
        // Timers of the replaced agent pop as superseded; the restored ones fire once.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        busy_engine().advance_to(engine.clock() + 86_400_000, &mut a);
        other.advance_to(engine.clock() + 86_400_000, &mut b);
        let of = |out: &[Output], id: &str| -> Vec<Output> {
            out.iter().filter(|o| o.agent_id() == id).cloned().collect()
        };
        assert_eq!(of(&a, "agent-0"), of(&b, "agent-0"));
    }

    /// A partition rebuilt with no stream time yet (event-time timers, no
    /// commit metadata) can still be looked at: views saturate instead of
    /// overflowing at the earliest clock.
    #[test]
    fn views_of_a_rebuilt_engine_before_any_event_do_not_overflow() {
        let engine = busy_engine();
        let states: Vec<(String, Vec<u8>)> = engine
            .agent_ids()
            .map(|id| (id.to_string(), engine.export_agent(id).unwrap()))
            .collect();
        let mut rebuilt = Engine::new(engine.config.clone());
        let failed = rebuilt.rebuild(
            states.iter().map(|(id, s)| (id.as_str(), s.as_slice())),
            TimestampMs::MIN,
        );
        assert!(failed.is_empty());
        for (id, _) in &states {
            let m = rebuilt.metrics(id).unwrap();
            assert!(m.circuit_opens_24h >= 0, "{id}");
        }
    }
}

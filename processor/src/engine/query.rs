//! Read-only views of one agent for the HTTP API (Kafka Streams'
//! interactive queries): the seed's AgentMetrics plus what an operator
//! asks next — budget status, recommendation, breaker retry time.

use serde::Serialize;

use super::breaker::StateName;
use super::budget::BudgetStatus;
use super::Engine;
use crate::event::TimestampMs;
use crate::output::AgentMetrics;

/// `GET /agents/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    #[serde(flatten)]
    pub metrics: AgentMetrics,
    pub budget_status: BudgetStatus,
    pub recommendation: String,
    /// When an OPEN breaker half-opens (epoch ms).
    pub retry_at: Option<TimestampMs>,
}

/// One line of `GET /agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSummary {
    pub agent_id: String,
    pub budget_status: BudgetStatus,
    pub circuit_state: StateName,
    pub window_tasks: u64,
}

impl Engine {
    /// The status view of `agent_id` at the engine clock, or `None` for an
    /// unknown agent.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breakwater::config::SloConfig;
    /// use breakwater::engine::Engine;
    /// use breakwater::event::{Outcome, TaskEvent};
    ///
    /// let mut e = Engine::new(Arc::new(SloConfig::default()));
    /// let mut out = Vec::new();
    /// e.advance_to(1_000, &mut out);
    /// e.process(&TaskEvent::new("e1", "a", 1_000, Outcome::Success), &mut out);
    /// let s = e.agent_status("a").unwrap();
    /// assert_eq!(s.metrics.tasks, 1);
    /// assert_eq!(s.recommendation, "No action — error budget healthy");
    /// assert!(e.agent_status("b").is_none());
    /// ```
    pub fn agent_status(&mut self, agent_id: &str) -> Option<AgentStatus> {
        let metrics = self.metrics(agent_id)?;
        let config = self.config.clone();
        let agent = self.agent(agent_id)?;
        let slo = config.slo(agent.slo);
        let budget = agent.budget_for(slo);
        Some(AgentStatus {
            metrics,
            budget_status: agent.status(),
            recommendation: budget.recommendation(slo).to_string(),
            retry_at: agent.breaker().retry_at(),
        })
    }

    /// Every agent, in first-seen order, with its status and state.
    pub fn agent_summaries(&self) -> impl Iterator<Item = AgentSummary> + '_ {
        self.briefs().map(|(id, a)| AgentSummary {
            agent_id: id.to_string(),
            budget_status: a.status,
            circuit_state: a.circuit_state,
            window_tasks: a.window_tasks,
        })
    }
}

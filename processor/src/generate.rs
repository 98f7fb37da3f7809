//! A seeded generator of realistic agent traffic: several agent profiles
//! with Poisson arrivals, log-normal latencies with tails, and healthy base
//! rates of failures, hallucinations and violations, plus faults injected on
//! chosen agents for chosen periods. The same [`Scenario`] and seed give the
//! same events, in the same order, on every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{Eval, Outcome, TaskEvent, TimestampMs};

/// How one kind of agent behaves when healthy.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    /// Mean tasks per minute per agent.
    pub tasks_per_minute: f64,
    /// Median task latency; the log-normal `latency_sigma` gives the tail.
    pub latency_median_ms: f64,
    pub latency_sigma: f64,
    pub tool_calls_mean: f64,
    pub failure_rate: f64,
    pub timeout_rate: f64,
    pub unavailable_rate: f64,
    pub hallucination_rate: f64,
    /// Per tool call.
    pub violation_rate: f64,
    pub intent_miss_rate: f64,
    pub max_delegation_depth: u32,
    pub eval_categories: &'static [&'static str],
    pub eval_pass_rate: f64,
}

/// Research agents: long tasks, many tool calls, sub-agents.
pub const RESEARCH: Profile = Profile {
    name: "research",
    tasks_per_minute: 5.0,
    latency_median_ms: 12_000.0,
    latency_sigma: 0.5,
    tool_calls_mean: 8.0,
    failure_rate: 0.01,
    timeout_rate: 0.002,
    unavailable_rate: 0.001,
    hallucination_rate: 0.01,
    violation_rate: 0.002,
    intent_miss_rate: 0.02,
    max_delegation_depth: 2,
    eval_categories: &["factual_retrieval"],
    eval_pass_rate: 0.96,
};

/// Support agents: short tasks, few tool calls, high volume.
pub const SUPPORT: Profile = Profile {
    name: "support",
    tasks_per_minute: 6.0,
    latency_median_ms: 1_500.0,
    latency_sigma: 0.4,
    tool_calls_mean: 2.0,
    failure_rate: 0.005,
    timeout_rate: 0.001,
    unavailable_rate: 0.0005,
    hallucination_rate: 0.005,
    violation_rate: 0.001,
    intent_miss_rate: 0.01,
    max_delegation_depth: 0,
    eval_categories: &["answer_relevance"],
    eval_pass_rate: 0.98,
};

/// Finance agents: medium tasks, strict policy.
pub const FINANCE: Profile = Profile {
    name: "finance",
    tasks_per_minute: 3.0,
    latency_median_ms: 4_000.0,
    latency_sigma: 0.45,
    tool_calls_mean: 4.0,
    failure_rate: 0.004,
    timeout_rate: 0.001,
    unavailable_rate: 0.0005,
    hallucination_rate: 0.002,
    violation_rate: 0.0005,
    intent_miss_rate: 0.01,
    max_delegation_depth: 1,
    eval_categories: &["factual_retrieval", "calculation"],
    eval_pass_rate: 0.99,
};

/// A way to break an agent on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Tasks fail at this rate (tool failures surface as task failures).
    ToolFailures { rate: f64 },
    /// Every task takes this much longer.
    AddedLatency { ms: u64 },
    /// Each tool call is blocked by policy at this rate.
    PolicyViolations { rate: f64 },
    /// Hallucinations at this rate.
    Hallucinations { rate: f64 },
    /// Tool calls multiplied by this factor (3 → 15 is 5.0).
    ToolCallInflation { factor: f64 },
    /// Tasks spawn sub-agents this deep.
    DelegationLoop { depth: u32 },
    /// The agent cannot take tasks.
    Unavailable,
}

/// A fault on one agent for `[start_ms, end_ms)` after the scenario start.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub agent_id: String,
    pub kind: FaultKind,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A group of identical agents.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Agent ids are `{prefix}-{n}`, n from 0.
    pub prefix: String,
    pub count: usize,
    pub profile: Profile,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub start: TimestampMs,
    pub duration_ms: i64,
    pub fleets: Vec<Fleet>,
    pub faults: Vec<Fault>,
}

impl Scenario {
    /// The demo shipped with the README: a small fleet over two hours in
    /// which `research-agent-1` suffers a burst of tool failures (its breaker
    /// opens and its budget is exhausted), then recovers, and
    /// `finance-agent-0` loops through sub-agents for ten minutes.
    pub fn demo(seed: u64) -> Self {
        const MIN: i64 = 60_000;
        Scenario {
            seed,
            start: 1_796_083_200_000, // 2026-12-01T00:00:00Z
            duration_ms: 120 * MIN,
            fleets: vec![
                fleet("research-agent", 3, RESEARCH),
                fleet("support-agent", 4, SUPPORT),
                fleet("finance-agent", 2, FINANCE),
            ],
            faults: vec![
                Fault {
                    agent_id: "research-agent-1".into(),
                    kind: FaultKind::ToolFailures { rate: 0.5 },
                    start_ms: 40 * MIN,
                    end_ms: 70 * MIN,
                },
                Fault {
                    agent_id: "finance-agent-0".into(),
                    kind: FaultKind::DelegationLoop { depth: 8 },
                    start_ms: 90 * MIN,
                    end_ms: 100 * MIN,
                },
            ],
        }
    }

    /// The events, in time order.
    pub fn events(&self) -> Generator {
        Generator::new(self)
    }
}

fn fleet(prefix: &str, count: usize, profile: Profile) -> Fleet {
    Fleet {
        prefix: prefix.into(),
        count,
        profile,
    }
}

struct AgentSpec {
    id: String,
    profile: Profile,
    faults: Vec<(FaultKind, TimestampMs, TimestampMs)>,
}

/// Iterator over a scenario's events.
///
/// ```
/// use breakwater::generate::Scenario;
/// let a: Vec<_> = Scenario::demo(7).events().take(100).collect();
/// let b: Vec<_> = Scenario::demo(7).events().take(100).collect();
/// assert_eq!(a, b);
/// assert!(a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
/// ```
pub struct Generator {
    rng: ChaCha8Rng,
    agents: Vec<AgentSpec>,
    /// Next arrival per agent: (time, agent index).
    next: BinaryHeap<Reverse<(TimestampMs, usize)>>,
    end: TimestampMs,
    counter: u64,
}

impl Generator {
    fn new(s: &Scenario) -> Self {
        let mut agents = Vec::new();
        for f in &s.fleets {
            for n in 0..f.count {
                let id = format!("{}-{n}", f.prefix);
                let faults = s
                    .faults
                    .iter()
                    .filter(|x| x.agent_id == id)
                    .map(|x| (x.kind, s.start + x.start_ms, s.start + x.end_ms))
                    .collect();
                agents.push(AgentSpec {
                    id,
                    profile: f.profile.clone(),
                    faults,
                });
            }
        }
        let mut g = Generator {
            rng: ChaCha8Rng::seed_from_u64(s.seed),
            agents,
            next: BinaryHeap::new(),
            end: s.start + s.duration_ms,
            counter: 0,
        };
        for i in 0..g.agents.len() {
            let t = s.start + g.gap(i);
            g.next.push(Reverse((t, i)));
        }
        g
    }

    fn uniform(&mut self) -> f64 {
        // 53 random bits → [0, 1).
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    fn normal(&mut self) -> f64 {
        // Box–Muller; 1 − u keeps the log away from 0.
        let (u1, u2) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential inter-arrival gap for agent `i`, in ms (at least 1).
    fn gap(&mut self, i: usize) -> i64 {
        let per_ms = self.agents[i].profile.tasks_per_minute / 60_000.0;
        let u = 1.0 - self.uniform();
        ((-u.ln() / per_ms) as i64).max(1)
    }

    fn poisson_like(&mut self, mean: f64) -> u32 {
        // Rounded log-normal around the mean: cheap, positive, with a tail.
        (mean * (0.35 * self.normal()).exp()).round().max(0.0) as u32
    }

    fn event(&mut self, i: usize, t: TimestampMs) -> TaskEvent {
        let p = self.agents[i].profile.clone();
        let active: Vec<FaultKind> = self.agents[i]
            .faults
            .iter()
            .filter(|(_, s, e)| t >= *s && t < *e)
            .map(|(k, _, _)| *k)
            .collect();
        self.counter += 1;
        let id = self.agents[i].id.clone();
        let mut e = TaskEvent::new(format!("{id}-{}", self.counter), id, t, Outcome::Success);
        e.task_id = format!("task-{}", self.counter);

        let mut failure = p.failure_rate;
        let mut violation = p.violation_rate;
        let mut halluc = p.hallucination_rate;
        let mut tools = p.tool_calls_mean;
        let mut extra_latency = 0u64;
        let mut depth = None;
        let mut unavailable = p.unavailable_rate;
        for k in &active {
            match *k {
                FaultKind::ToolFailures { rate } => failure = failure.max(rate),
                FaultKind::AddedLatency { ms } => extra_latency += ms,
                FaultKind::PolicyViolations { rate } => violation = violation.max(rate),
                FaultKind::Hallucinations { rate } => halluc = halluc.max(rate),
                FaultKind::ToolCallInflation { factor } => tools *= factor,
                FaultKind::DelegationLoop { depth: d } => depth = Some(d),
                FaultKind::Unavailable => unavailable = 1.0,
            }
        }

        let latency = p.latency_median_ms * (p.latency_sigma * self.normal()).exp();
        e.latency_ms = latency.round() as u64 + extra_latency;
        e.outcome = if self.chance(unavailable) {
            Outcome::Unavailable
        } else if self.chance(failure) {
            e.error_type = Some("tool_error".into());
            Outcome::Failure
        } else if self.chance(p.timeout_rate) {
            e.error_type = Some("timeout".into());
            Outcome::Timeout
        } else {
            Outcome::Success
        };
        if e.outcome == Outcome::Unavailable {
            e.latency_ms = 0;
            return e;
        }
        e.tool_calls = self.poisson_like(tools).max(1);
        e.policy_violations = (0..e.tool_calls).filter(|_| self.chance(violation)).count() as u32;
        e.hallucination = Some(self.chance(halluc));
        e.intent_met = Some(!self.chance(p.intent_miss_rate));
        e.delegation_depth = match depth {
            Some(d) => d,
            None => (self.uniform() * (p.max_delegation_depth + 1) as f64) as u32,
        };
        for &c in p.eval_categories {
            let passed = !self.chance(1.0 - p.eval_pass_rate) && e.outcome == Outcome::Success;
            e.evals.push(Eval {
                category: c.to_string(),
                passed,
            });
        }
        e.model = Some("gpt-4o".into());
        e.tokens_in = Some(200 + 150 * e.tool_calls as u64);
        e.tokens_out = Some(100 + (self.uniform() * 400.0) as u64);
        e
    }
}

impl Iterator for Generator {
    type Item = TaskEvent;

    fn next(&mut self) -> Option<TaskEvent> {
        let Reverse((t, i)) = self.next.pop()?;
        if t >= self.end {
            return None;
        }
        let e = self.event(i, t);
        let next_t = t + self.gap(i);
        self.next.push(Reverse((next_t, i)));
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_show_in_the_stream() {
        let s = Scenario::demo(1);
        let start = s.start;
        let burst: Vec<_> = s
            .events()
            .filter(|e| e.agent_id == "research-agent-1")
            .filter(|e| e.timestamp >= start + 40 * 60_000 && e.timestamp < start + 70 * 60_000)
            .collect();
        let failed = burst.iter().filter(|e| e.outcome.is_failed()).count();
        assert!(burst.len() > 100, "about 5 tasks a minute for 30 minutes");
        assert!(
            failed * 3 > burst.len(),
            "about half fail: {failed}/{}",
            burst.len()
        );
    }

    #[test]
    fn every_event_is_valid() {
        assert!(Scenario::demo(3).events().all(|e| e.validate().is_ok()));
    }
}

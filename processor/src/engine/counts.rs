//! What one bucket of each window counts. Every field is a plain sum so a
//! bucket can be subtracted from the window total when it slides out; the
//! one exception, the deepest delegation, is recomputed from the buckets.

use serde::{Deserialize, Serialize};

use super::sketch::LatencySketch;
use super::window::Aggregate;
use crate::event::TaskEvent;

/// Tasks and failed tasks: all a burn-rate window needs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub tasks: u64,
    pub failed: u64,
}

impl TaskCounts {
    pub fn add(&mut self, e: &TaskEvent) {
        if e.outcome.is_task() {
            self.tasks += 1;
            self.failed += e.outcome.is_failed() as u64;
        }
    }
}

impl Aggregate for TaskCounts {
    fn subtract(&mut self, o: &Self) {
        self.tasks -= o.tasks;
        self.failed -= o.failed;
    }
}

/// The breaker window: failure rate, average latency, delegation loops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerCounts {
    pub tasks: u64,
    pub failed: u64,
    pub latency_sum_ms: u64,
    /// Tasks deeper than the SLO's max_delegation_depth.
    pub loops: u64,
}

impl BreakerCounts {
    pub fn add(&mut self, e: &TaskEvent, max_depth: u32) {
        if e.outcome.is_task() {
            self.tasks += 1;
            self.failed += e.outcome.is_failed() as u64;
            self.latency_sum_ms += e.latency_ms;
        }
        self.loops += (e.delegation_depth > max_depth) as u64;
    }

    /// failed / tasks; `None` with no task.
    pub fn failure_rate(&self) -> Option<f64> {
        ratio(self.failed, self.tasks)
    }

    /// Mean task latency; `None` with no task.
    pub fn avg_latency_ms(&self) -> Option<f64> {
        ratio(self.latency_sum_ms, self.tasks)
    }
}

impl Aggregate for BreakerCounts {
    fn subtract(&mut self, o: &Self) {
        self.tasks -= o.tasks;
        self.failed -= o.failed;
        self.latency_sum_ms -= o.latency_sum_ms;
        self.loops -= o.loops;
    }
}

/// Eval categories tracked per agent: the first 32 distinct ones it reports.
/// Results for further categories are not counted, which bounds an agent's
/// memory whatever its producer sends.
pub const MAX_EVAL_CATEGORIES: usize = 32;

/// Marks an eval whose category the agent does not track.
pub const UNTRACKED: u16 = u16::MAX;

/// Passed/evaluated for one eval category (interned id, see `Categories`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalCount {
    pub category: u16,
    pub evaluated: u64,
    pub passed: u64,
}

/// Everything SPEC §3 defines, over the budget window.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricCounts {
    pub tasks: u64,
    pub failed: u64,
    pub unavailable: u64,
    pub tool_calls: u64,
    pub policy_violations: u64,
    pub hallucination_evaluated: u64,
    pub hallucinations: u64,
    pub intent_evaluated: u64,
    pub intent_missed: u64,
    pub delegation_depth_sum: u64,
    /// Deepest delegation in this bucket. In a window total it is not
    /// maintained (a maximum cannot be subtracted): use [`max_depth`].
    pub delegation_depth_max: u32,
    pub latency_sum_ms: u64,
    /// Sorted by category id.
    pub evals: Vec<EvalCount>,
}

impl MetricCounts {
    /// Folds one event in; `categories` are the event's interned eval categories.
    pub fn add(&mut self, e: &TaskEvent, categories: &[u16]) {
        if e.outcome.is_task() {
            self.tasks += 1;
            self.failed += e.outcome.is_failed() as u64;
            self.tool_calls += e.tool_calls as u64;
            self.policy_violations += e.policy_violations as u64;
            self.delegation_depth_sum += e.delegation_depth as u64;
            self.latency_sum_ms += e.latency_ms;
            if let Some(h) = e.hallucination {
                self.hallucination_evaluated += 1;
                self.hallucinations += h as u64;
            }
            if let Some(met) = e.intent_met {
                self.intent_evaluated += 1;
                self.intent_missed += (!met) as u64;
            }
            for (eval, &cat) in e.evals.iter().zip(categories) {
                if cat != UNTRACKED {
                    self.add_eval(cat, eval.passed);
                }
            }
        } else {
            self.unavailable += 1;
        }
        self.delegation_depth_max = self.delegation_depth_max.max(e.delegation_depth);
    }

    fn add_eval(&mut self, category: u16, passed: bool) {
        let i = match self.evals.binary_search_by_key(&category, |c| c.category) {
            Ok(i) => i,
            Err(i) => {
                self.evals.insert(
                    i,
                    EvalCount {
                        category,
                        evaluated: 0,
                        passed: 0,
                    },
                );
                i
            }
        };
        self.evals[i].evaluated += 1;
        self.evals[i].passed += passed as u64;
    }

    /// tasks + UNAVAILABLE.
    pub fn attempts(&self) -> u64 {
        self.tasks + self.unavailable
    }

    /// Counts of one eval category.
    pub fn eval(&self, category: u16) -> Option<&EvalCount> {
        self.evals
            .binary_search_by_key(&category, |c| c.category)
            .ok()
            .map(|i| &self.evals[i])
    }
}

impl Aggregate for MetricCounts {
    fn subtract(&mut self, o: &Self) {
        self.tasks -= o.tasks;
        self.failed -= o.failed;
        self.unavailable -= o.unavailable;
        self.tool_calls -= o.tool_calls;
        self.policy_violations -= o.policy_violations;
        self.hallucination_evaluated -= o.hallucination_evaluated;
        self.hallucinations -= o.hallucinations;
        self.intent_evaluated -= o.intent_evaluated;
        self.intent_missed -= o.intent_missed;
        self.delegation_depth_sum -= o.delegation_depth_sum;
        self.latency_sum_ms -= o.latency_sum_ms;
        for ev in &o.evals {
            if let Ok(i) = self
                .evals
                .binary_search_by_key(&ev.category, |c| c.category)
            {
                self.evals[i].evaluated -= ev.evaluated;
                self.evals[i].passed -= ev.passed;
            }
        }
        self.evals.retain(|c| c.evaluated > 0);
    }
}

/// Deepest delegation over the buckets of a window.
pub fn max_depth<'a>(buckets: impl Iterator<Item = &'a MetricCounts>) -> Option<u32> {
    buckets.map(|b| b.delegation_depth_max).max()
}

impl Aggregate for LatencySketch {
    fn subtract(&mut self, o: &Self) {
        LatencySketch::subtract(self, o);
    }
}

/// `num / den`, or `None` when the denominator is 0 (SPEC §3: undefined, not 0).
///
/// ```
/// assert_eq!(breakwater::engine::counts::ratio(1, 4), Some(0.25));
/// assert_eq!(breakwater::engine::counts::ratio(0, 0), None);
/// ```
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

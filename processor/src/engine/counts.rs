//! What one bucket of each window counts, and the window's running total.
//! Every field is a plain sum so a bucket can be subtracted from the total
//! when it slides out; the one exception, the deepest delegation, is
//! recomputed from the buckets. Buckets count in `u32`, totals in `u64`.

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use super::sketch::{LatencySketch, SampleKey};
use super::window::Bucket;
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

/// One bucket of a burn-rate window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBucket {
    pub tasks: u32,
    pub failed: u32,
}

impl TaskBucket {
    pub fn add(&mut self, e: &TaskEvent) {
        if e.outcome.is_task() {
            self.tasks += 1;
            self.failed += e.outcome.is_failed() as u32;
        }
    }
}

impl Bucket for TaskBucket {
    type Total = TaskCounts;
    fn expire_from(&self, t: &mut TaskCounts) {
        t.tasks -= u64::from(self.tasks);
        t.failed -= u64::from(self.failed);
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

/// One bucket of the breaker window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerBucket {
    pub tasks: u32,
    pub failed: u32,
    pub loops: u32,
    pub latency_sum_ms: u64,
}

impl BreakerBucket {
    pub fn add(&mut self, e: &TaskEvent, max_depth: u32) {
        if e.outcome.is_task() {
            self.tasks += 1;
            self.failed += e.outcome.is_failed() as u32;
            self.latency_sum_ms += e.latency_ms;
        }
        self.loops += (e.delegation_depth > max_depth) as u32;
    }
}

impl Bucket for BreakerBucket {
    type Total = BreakerCounts;
    fn expire_from(&self, t: &mut BreakerCounts) {
        t.tasks -= u64::from(self.tasks);
        t.failed -= u64::from(self.failed);
        t.latency_sum_ms -= self.latency_sum_ms;
        t.loops -= u64::from(self.loops);
    }
}

/// Eval categories tracked per agent: the first 32 distinct ones it reports.
/// Results for further categories are not counted, which bounds an agent's
/// memory whatever its producer sends.
pub const MAX_EVAL_CATEGORIES: usize = 32;

/// Marks an eval whose category the agent does not track.
pub const UNTRACKED: u16 = u16::MAX;

/// A counter width: `u32` in buckets, `u64` in window totals.
pub trait Count: Copy + Default + PartialEq + Eq + std::fmt::Debug + Into<u64> + Serialize {
    fn bump(&mut self, by: u32);
}

impl Count for u32 {
    fn bump(&mut self, by: u32) {
        // A bucket is one agent over minutes: 4·10⁹ would be a bug upstream.
        // Saturating keeps the engine up; the total (u64) stays exact until
        // that bucket expires, and the residue goes when the window empties.
        *self = self.saturating_add(by);
    }
}

impl Count for u64 {
    fn bump(&mut self, by: u32) {
        *self += u64::from(by);
    }
}

/// Passed/evaluated for one eval category (interned id, see `Categories`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalCount<C> {
    pub category: u16,
    pub evaluated: C,
    pub passed: C,
}

/// Everything SPEC §3 defines, over the budget window: [`MetricBucket`] per
/// bucket, [`MetricTotals`] for the window.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricCounts<C> {
    pub tasks: C,
    pub failed: C,
    pub unavailable: C,
    pub tool_calls: C,
    pub policy_violations: C,
    pub hallucination_evaluated: C,
    pub hallucinations: C,
    pub intent_evaluated: C,
    pub intent_missed: C,
    pub delegation_depth_sum: C,
    /// Deepest delegation in this bucket. In a window total it is not
    /// maintained (a maximum cannot be subtracted): use [`max_depth`].
    pub delegation_depth_max: u32,
    pub latency_sum_ms: u64,
    /// Sorted by category id. A `ThinVec` (one pointer, no allocation while
    /// empty) so that a bucket is one 64-byte cache line.
    pub evals: ThinVec<EvalCount<C>>,
}

/// One bucket of the budget window.
pub type MetricBucket = MetricCounts<u32>;
/// The budget window's running total.
pub type MetricTotals = MetricCounts<u64>;

impl<C> MetricCounts<C> {
    /// Starts loading the eval counts' block (batch path).
    #[inline]
    pub(crate) fn prefetch_evals(&self) {
        super::prefetch::prefetch_addr(self.evals.as_ptr().cast::<u8>());
    }
}

impl<C: Count> MetricCounts<C> {
    /// Folds one event in; `categories` are the event's interned eval categories.
    pub fn add(&mut self, e: &TaskEvent, categories: &[u16]) {
        if e.outcome.is_task() {
            self.tasks.bump(1);
            self.failed.bump(e.outcome.is_failed() as u32);
            self.tool_calls.bump(e.tool_calls);
            self.policy_violations.bump(e.policy_violations);
            self.delegation_depth_sum.bump(e.delegation_depth);
            self.latency_sum_ms += e.latency_ms;
            if let Some(h) = e.hallucination {
                self.hallucination_evaluated.bump(1);
                self.hallucinations.bump(h as u32);
            }
            if let Some(met) = e.intent_met {
                self.intent_evaluated.bump(1);
                self.intent_missed.bump((!met) as u32);
            }
            for (eval, &cat) in e.evals.iter().zip(categories) {
                if cat != UNTRACKED {
                    self.add_eval(cat, eval.passed);
                }
            }
        } else {
            self.unavailable.bump(1);
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
                        evaluated: C::default(),
                        passed: C::default(),
                    },
                );
                i
            }
        };
        self.evals[i].evaluated.bump(1);
        self.evals[i].passed.bump(passed as u32);
    }

    /// tasks + UNAVAILABLE.
    pub fn attempts(&self) -> u64 {
        self.tasks.into() + self.unavailable.into()
    }

    /// Counts of one eval category.
    pub fn eval(&self, category: u16) -> Option<&EvalCount<C>> {
        self.evals
            .binary_search_by_key(&category, |c| c.category)
            .ok()
            .map(|i| &self.evals[i])
    }
}

impl Bucket for MetricBucket {
    type Total = MetricTotals;

    fn expire_from(&self, t: &mut MetricTotals) {
        let sub = |total: &mut u64, b: u32| *total -= u64::from(b);
        sub(&mut t.tasks, self.tasks);
        sub(&mut t.failed, self.failed);
        sub(&mut t.unavailable, self.unavailable);
        sub(&mut t.tool_calls, self.tool_calls);
        sub(&mut t.policy_violations, self.policy_violations);
        sub(&mut t.hallucination_evaluated, self.hallucination_evaluated);
        sub(&mut t.hallucinations, self.hallucinations);
        sub(&mut t.intent_evaluated, self.intent_evaluated);
        sub(&mut t.intent_missed, self.intent_missed);
        sub(&mut t.delegation_depth_sum, self.delegation_depth_sum);
        t.latency_sum_ms -= self.latency_sum_ms;
        for ev in &self.evals {
            if let Ok(i) = t.evals.binary_search_by_key(&ev.category, |c| c.category) {
                sub(&mut t.evals[i].evaluated, ev.evaluated);
                sub(&mut t.evals[i].passed, ev.passed);
            }
        }
        t.evals.retain(|c| c.evaluated > 0);
    }

    fn reset(&mut self) {
        let mut evals = std::mem::take(&mut self.evals);
        evals.clear();
        *self = MetricCounts {
            evals,
            ..MetricCounts::default()
        };
    }
}

/// Deepest delegation over the buckets of a window.
pub fn max_depth<'a>(buckets: impl Iterator<Item = &'a MetricBucket>) -> Option<u32> {
    buckets.map(|b| b.delegation_depth_max).max()
}

/// One bucket of the latency window. A quiet agent's bucket holds a few
/// dozen samples: kept as 2-byte sketch keys they take ~100 bytes, where a
/// dense sketch over the same latencies takes ~1 KB and spreads over many
/// cache lines. Past [`SPARSE_SAMPLES`] the bucket turns into a sketch, so
/// a busy agent's bucket stays bounded. Two pointers wide: most buckets of
/// a big fleet never need the sketch.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LatencyBucket {
    samples: ThinVec<SampleKey>,
    /// Saved as a sketch (empty when `None`), so the state format is the
    /// same as when the sketch was inline.
    #[serde(with = "spilled")]
    sketch: Option<Box<LatencySketch>>,
}

/// Samples a latency bucket keeps as keys before turning into a sketch.
pub const SPARSE_SAMPLES: usize = 128;

impl LatencyBucket {
    /// The lowest and highest non-zero keys of buckets holding only
    /// samples; `None` if one holds a sketch or none holds a value.
    pub(crate) fn key_range<'a>(
        buckets: impl IntoIterator<Item = &'a LatencyBucket>,
    ) -> Option<(SampleKey, SampleKey)> {
        let zero = LatencySketch::key_of(0);
        let mut range: Option<(SampleKey, SampleKey)> = None;
        for b in buckets {
            if b.sketch.is_some() {
                return None;
            }
            for &k in b.samples.iter().filter(|&&k| k != zero) {
                range = Some(match range {
                    None => (k, k),
                    Some((lo, hi)) => (lo.min(k), hi.max(k)),
                });
            }
        }
        range
    }

    /// Adds everything this bucket holds to `total` (rebuilding a window's total).
    pub(crate) fn add_to(&self, total: &mut LatencySketch) {
        for &k in &self.samples {
            total.add_key(k);
        }
        if let Some(sketch) = &self.sketch {
            total.merge(sketch);
        }
    }

    /// Starts loading the samples' block: its header and the next line,
    /// where most buckets' samples end (its length is in the header).
    #[inline]
    pub(crate) fn prefetch_samples(&self) {
        let p = self.samples.as_ptr().cast::<u8>();
        super::prefetch::prefetch_addr(p);
        super::prefetch::prefetch_addr(p.wrapping_add(64));
    }

    /// Records one latency in the bucket and in the window `total`; returns its key.
    pub fn add(&mut self, value_ms: u64, total: &mut LatencySketch) -> SampleKey {
        let key = LatencySketch::key_of(value_ms);
        total.add_key(key);
        let spilled = self.sketch.as_ref().is_some_and(|s| !s.is_empty());
        if self.samples.len() < SPARSE_SAMPLES && !spilled {
            self.samples.push(key);
        } else {
            let sketch = self.sketch.get_or_insert_with(Box::default);
            for k in self.samples.drain(..) {
                sketch.add_key(k);
            }
            sketch.add_key(key);
        }
        key
    }
}

impl PartialEq for LatencyBucket {
    /// An emptied sketch kept for reuse equals none.
    fn eq(&self, other: &Self) -> bool {
        let empty = LatencySketch::default();
        self.samples == other.samples
            && self.sketch.as_deref().unwrap_or(&empty) == other.sketch.as_deref().unwrap_or(&empty)
    }
}

impl Bucket for LatencyBucket {
    type Total = LatencySketch;

    fn expire_from(&self, total: &mut LatencySketch) {
        for &k in &self.samples {
            total.remove_key(k);
        }
        if let Some(sketch) = &self.sketch {
            total.subtract(sketch);
        }
    }

    fn reset(&mut self) {
        self.samples.clear();
        if let Some(sketch) = &mut self.sketch {
            sketch.clear();
        }
    }
}

/// Serde for [`LatencyBucket::sketch`]: `None` is written as an empty sketch.
mod spilled {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::engine::sketch::LatencySketch;

    pub fn serialize<S: Serializer>(
        v: &Option<Box<LatencySketch>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(sketch) => sketch.serialize(s),
            None => LatencySketch::default().serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Box<LatencySketch>>, D::Error> {
        let sketch = LatencySketch::deserialize(d)?;
        Ok((!sketch.is_empty()).then(|| Box::new(sketch)))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::window::SlidingWindow;

    /// A budget-window bucket is what an event's count touches: keep it to
    /// one cache line (and 48 of them per agent small).
    #[test]
    fn a_metric_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<MetricBucket>(), 64);
    }

    proptest! {
        /// Sparse and spilled buckets leave the window total equal to a
        /// sketch of exactly the samples still inside the window.
        #[test]
        fn latency_window_total_is_the_sketch_of_the_live_samples(
            steps in prop::collection::vec((0i64..400, 0u64..100_000, 0usize..300), 1..60),
        ) {
            let mut w: SlidingWindow<LatencyBucket> = SlidingWindow::new(12_000, 12);
            let mut t = 0;
            let mut kept: Vec<(i64, u64)> = Vec::new();
            for (gap, value, burst) in steps {
                t += gap * 10;
                for k in 0..=burst {
                    let v = (value + k as u64 * 37) % 100_000;
                    w.record(t, |b, total| {
                        b.add(v, total);
                    });
                    kept.push((t, v));
                }
                let oldest = w.start_ms().unwrap();
                let mut expect = LatencySketch::new();
                kept.iter().filter(|(ts, _)| *ts >= oldest).for_each(|&(_, v)| expect.add(v));
                prop_assert_eq!(w.total(), &expect);
            }
        }
    }
}

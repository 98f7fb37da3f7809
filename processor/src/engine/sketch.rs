//! Mergeable and subtractable DDSketch for task latencies in milliseconds.

use serde::{Deserialize, Serialize};

/// Relative accuracy guaranteed on every quantile (before rounding to whole ms).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Upper bound on dense bins; 1024 bins span a ratio of ~7.8e8 (1 ms to ~9 days).
pub const MAX_BINS: usize = 1024;
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
// `ln` is not const; these are ln(GAMMA) and its inverse, checked by a unit test.
const LN_GAMMA: f64 = 0.020_000_666_706_669_524;
const INV_LN_GAMMA: f64 = 49.998_333_288_886_56;

/// Latency distribution with ≤ 1% relative error on quantiles.
///
/// Bin `i` holds values in `(γ^(i-1), γ^i]`; 0 ms has its own counter because
/// the log mapping cannot represent it. Only `[min index, max index]` is stored.
///
/// ```
/// use breakwater::engine::sketch::LatencySketch;
///
/// let mut window = LatencySketch::new();
/// let mut bucket = LatencySketch::new();
/// (1..=100).for_each(|ms| bucket.add(ms));
/// window.merge(&bucket);
/// assert_eq!(window.quantile(0.5), Some(50));
/// window.subtract(&bucket); // the bucket expired
/// assert_eq!(window, LatencySketch::default());
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySketch {
    count: u64,
    zero: u32,
    offset: i32,
    /// The lowest bin also holds values from below it; set by a collapse,
    /// cleared once that bin drains. While set the store may not grow
    /// downwards, so every bucket's low values keep landing in that bin.
    collapsed: bool,
    bins: Vec<u32>,
}

fn index_of(value_ms: u64) -> i32 {
    // Same f64 ops in the same order on every run, hence the same bin.
    ((value_ms as f64).ln() * INV_LN_GAMMA).ceil() as i32
}

fn representative(index: i32) -> u64 {
    // Midpoint in relative terms: at most α away from either edge of the bin.
    let v = 2.0 * (f64::from(index) * LN_GAMMA).exp() / (GAMMA + 1.0);
    v.round() as u64
}

impl LatencySketch {
    /// Creates an empty sketch; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency.
    pub fn add(&mut self, value_ms: u64) {
        self.count += 1;
        if value_ms == 0 {
            self.zero = self.zero.saturating_add(1);
            return;
        }
        let i = index_of(value_ms);
        self.ensure_range(i, i);
        let slot = self.slot(i);
        self.bins[slot] = self.bins[slot].saturating_add(1);
    }

    /// Adds all of `other`'s counts to `self`.
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.zero = self.zero.saturating_add(other.zero);
        if other.bins.is_empty() {
            return;
        }
        self.ensure_range(other.offset, other.max_index());
        for (i, &c) in (other.offset..).zip(&other.bins) {
            let slot = self.slot(i);
            self.bins[slot] = self.bins[slot].saturating_add(c);
        }
    }

    /// Removes `other`, which must have been merged into `self` before; undoes
    /// that merge exactly, shrinking the store to the bins still in use.
    ///
    /// This stays exact in counts across collapses: `other`'s low bins are
    /// taken from the lowest kept bin, where the collapse put them.
    pub fn subtract(&mut self, other: &Self) {
        debug_assert!(other.count <= self.count, "subtracting more than merged");
        // Count what is actually removed so `count` always equals the stored total.
        let zero = self.zero.min(other.zero);
        self.zero -= zero;
        self.count -= u64::from(zero);
        for (i, &c) in (other.offset..).zip(&other.bins) {
            // Only reachable if `other` was never merged.
            if self.bins.is_empty() || i > self.max_index() {
                continue;
            }
            let slot = self.slot(i);
            let removed = self.bins[slot].min(c);
            self.bins[slot] -= removed;
            self.count -= u64::from(removed);
        }
        self.trim();
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Value at quantile `q` (clamped to `[0, 1]`), or `None` when empty.
    ///
    /// Returns the representative of the first bin whose cumulative count
    /// exceeds `q × (count − 1)`, rounded to whole ms.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = q * (self.count - 1) as f64;
        if q > 0.5 {
            // High quantiles sit near the top: walk down while the bin below
            // still reaches past `rank`.
            let mut cum = self.count;
            for (k, &c) in self.bins.iter().enumerate().rev() {
                if (cum.saturating_sub(u64::from(c)) as f64) <= rank {
                    return Some(representative(self.offset + k as i32));
                }
                cum = cum.saturating_sub(u64::from(c));
            }
            return Some(0);
        }
        let mut cum = u64::from(self.zero);
        if cum as f64 > rank {
            return Some(0);
        }
        for (i, &c) in (self.offset..).zip(&self.bins) {
            cum += u64::from(c);
            if cum as f64 > rank {
                return Some(representative(i));
            }
        }
        // Only reachable if a u32 counter saturated: the top bin is closest.
        self.bins.last().map(|_| representative(self.max_index()))
    }

    /// Forgets everything and releases the store.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Heap memory held by the store, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<u32>()
    }

    fn max_index(&self) -> i32 {
        self.offset + self.bins.len() as i32 - 1
    }

    /// Slot of index `i`; indices below the store were collapsed into slot 0.
    fn slot(&self, i: i32) -> usize {
        (i.max(self.offset) - self.offset) as usize
    }

    /// Makes the store cover `[lo, hi]`, collapsing the lowest bins if the
    /// span would exceed `MAX_BINS`: high quantiles are the ones we alert on.
    fn ensure_range(&mut self, lo: i32, hi: i32) {
        let (old_lo, old_hi) = if self.bins.is_empty() {
            (lo, hi)
        } else {
            (self.offset, self.max_index())
        };
        let new_hi = hi.max(old_hi);
        let wanted_lo = if self.collapsed {
            old_lo
        } else {
            lo.min(old_lo)
        };
        let new_lo = wanted_lo.max(new_hi - MAX_BINS as i32 + 1);
        self.collapsed |= lo.min(old_lo) < new_lo;
        if !self.bins.is_empty() && new_lo == old_lo && new_hi == old_hi {
            return;
        }
        // Exact-size reallocation: memory per sketch matters more than the
        // rare copy when the range widens.
        let mut bins = vec![0u32; (new_hi - new_lo + 1) as usize];
        for (i, &c) in (old_lo..).zip(&self.bins) {
            let slot = (i.max(new_lo) - new_lo) as usize;
            bins[slot] = bins[slot].saturating_add(c);
        }
        self.offset = new_lo;
        self.bins = bins;
    }

    /// Drops empty bins at both ends so expired buckets give memory back.
    fn trim(&mut self) {
        let Some(first) = self.bins.iter().position(|&c| c != 0) else {
            // Reset `offset` too, so a fully drained sketch equals `default()`.
            *self = Self {
                zero: self.zero,
                count: self.count,
                ..Self::default()
            };
            return;
        };
        let last = self.bins.iter().rposition(|&c| c != 0).unwrap_or(first);
        if first > 0 {
            // The bin holding collapsed values drained: none is live any more.
            self.collapsed = false;
        }
        if first > 0 || last + 1 < self.bins.len() {
            self.bins = self.bins[first..=last].to_vec();
            self.offset += first as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sketch_of(values: &[u64]) -> LatencySketch {
        let mut s = LatencySketch::new();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    /// Compares with the same rank rule applied to the exact sorted data;
    /// the extra 1 ms covers rounding the representative to whole ms.
    fn assert_close(s: &LatencySketch, sorted: &[u64], q: f64) {
        let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
        let est = s.quantile(q).unwrap();
        let ok = est.abs_diff(exact) as f64 <= 0.01 * exact as f64 + 1.0;
        assert!(ok, "q={q} estimate={est} exact={exact}");
    }

    #[test]
    fn constants_match_gamma() {
        assert!((LN_GAMMA - GAMMA.ln()).abs() < 1e-15);
        assert!((INV_LN_GAMMA - 1.0 / GAMMA.ln()).abs() < 1e-12);
    }

    #[test]
    fn empty_single_and_zero() {
        let mut s = LatencySketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert!(s.is_empty() && s.heap_bytes() == 0);
        s.add(0);
        assert_eq!((s.quantile(1.0), s.heap_bytes()), (Some(0), 0));
        s.clear();
        s.add(1234);
        for q in [0.0, 0.5, 1.0] {
            assert_close(&s, &[1234], q);
        }
        assert_eq!(
            (s.quantile(-1.0), s.quantile(2.0)),
            (s.quantile(0.0), s.quantile(1.0))
        );
        assert_eq!(s.heap_bytes(), 4);
    }

    #[test]
    fn quantiles_of_1_to_1000() {
        let values: Vec<u64> = (1..=1000).collect();
        let s = sketch_of(&values);
        (0..=100).for_each(|p| assert_close(&s, &values, f64::from(p) / 100.0));
    }

    #[test]
    fn merge_then_subtract_round_trips() {
        let a = sketch_of(&[0, 5, 7, 900]);
        let b = sketch_of(&[0, 1, 3, 5, 100_000]);
        let mut s = a.clone();
        s.merge(&b);
        s.subtract(&b);
        assert_eq!(s, a);
        s.subtract(&a);
        assert_eq!(s, LatencySketch::default());
    }

    #[test]
    fn collapse_keeps_high_quantiles() {
        // 1 ms to 10^12 ms spans ~1383 bins.
        let mut values: Vec<u64> = (0..=290).map(|k| 1.1f64.powi(k) as u64).collect();
        values.push(1_000_000_000_000);
        values.sort_unstable();
        let s = sketch_of(&values);
        assert_eq!((s.bins.len(), s.count()), (MAX_BINS, values.len() as u64));
        for q in [0.5, 0.9, 0.99, 1.0] {
            assert_close(&s, &values, q);
        }
        assert!(s.quantile(0.0).unwrap() > 1000, "low tail collapsed");
    }

    #[test]
    fn subtract_stays_exact_across_collapse() {
        let [high, low, later] = [&[1_000_000_000_000][..], &[1], &[2, 2]].map(sketch_of);
        let mut window = high.clone();
        window.merge(&low); // 1 ms is collapsed into the lowest kept bin
        window.subtract(&high); // the top drains, the collapsed bin stays
        window.merge(&later); // must not reopen bins below it, or `low` is lost
        window.subtract(&low);
        assert_eq!(window.count(), 2);
        window.subtract(&later);
        assert_eq!(window, LatencySketch::default());
    }

    proptest! {
        #[test]
        fn quantiles_within_1pct(mut values in prop::collection::vec(1u64..10_000_000, 1..2000)) {
            let s = sketch_of(&values);
            values.sort_unstable();
            for q in [0.5, 0.95, 0.99] {
                assert_close(&s, &values, q);
            }
        }

        #[test]
        fn merge_and_subtract_are_exact(
            a in prop::collection::vec(0u64..10_000_000, 0..2000),
            b in prop::collection::vec(0u64..10_000_000, 0..2000),
        ) {
            let (sa, sb) = (sketch_of(&a), sketch_of(&b));
            let mut merged = sa.clone();
            merged.merge(&sb);
            let union = sketch_of(&[a, b].concat());
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                prop_assert_eq!(merged.quantile(q), union.quantile(q));
            }
            prop_assert_eq!(&merged, &union);
            merged.subtract(&sb);
            prop_assert_eq!(merged, sa);
        }

        /// A sliding window over buckets spanning 1 ms to 2^45 ms, so the
        /// store collapses and un-collapses: counts must never drift.
        #[test]
        fn sliding_window_with_collapse(
            buckets in prop::collection::vec(prop::collection::vec(0u32..46, 0..20), 1..40),
        ) {
            let buckets: Vec<_> = buckets
                .iter()
                .map(|b| sketch_of(&b.iter().map(|&e| (1u64 << e) - 1).collect::<Vec<_>>()))
                .collect();
            let mut window = LatencySketch::new();
            for (k, b) in buckets.iter().enumerate() {
                window.merge(b);
                if k >= 3 {
                    window.subtract(&buckets[k - 3]);
                }
                let live = &buckets[k.saturating_sub(2)..=k];
                prop_assert_eq!(window.count(), live.iter().map(|s| s.count()).sum::<u64>());
            }
            buckets.iter().rev().take(3).for_each(|b| window.subtract(b));
            prop_assert_eq!(window, LatencySketch::default());
        }
    }
}

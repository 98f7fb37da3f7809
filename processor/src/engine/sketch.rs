//! Mergeable and subtractable DDSketch for task latencies in milliseconds.
//!
//! **Mapping.** A latency `v ≥ 1` ms is `2^e · (1 + s)` with `s ∈ [0, 1)`.
//! Its bin is `35·e + j`: 35 bins per octave, bin `j` of an octave holding
//! `s ∈ (s_(j−1), s_j]`, where the edges `s_j` solve `Q(s_j) = j` for
//! `Q(s) = 6s³ − 21s² + 50s` (35 × the cubic of DataDog's
//! `CubicallyInterpolatedMapping` in sketches-java, an approximation of
//! `35·log2(1 + s)` with `Q(0) = 0` and `Q(1) = 35`). The edges are solved
//! at compile time; at run time the bin is found in integer arithmetic
//! from the integer's bits: `e` is the position of its leading one, the top
//! 6 bits after it pick one of 64 slices of the octave, and one comparison
//! with the only edge inside that slice gives `j`. No `ln`,
//! no floating point, no libm: the same bin on every run and every machine.
//! 0 ms has its own counter.
//!
//! **Error bound.** The slope of `Q` against `ln v`, `(1 + s)·Q'(s)`, is at
//! least 50 (at `s = 0`) and at most 52, so no bin is wider than
//! `1/50 = 0.02` in `ln v`: just under `ln((1 + α)/(1 − α)) = 0.0200007` for
//! α = 1 %, which is why the cubic needs 35 bins per octave where an exact
//! log mapping needs 34.66 (1 % more bins). A bin's representative is the
//! harmonic mean of its edges, within `tanh(0.01) < 1 %` of every value in
//! the bin (a table of 35, scaled exactly by `2^e`). So every quantile is
//! within 1 % of the exact order statistic, before rounding to whole ms;
//! unit and property tests check the bound bin by bin and value by value.
//!
//! **Store.** The bins between the lowest and the highest non-empty one (the
//! used range) are dense in a boxed slice with slack on both sides. When
//! the used range outgrows it, the store is reallocated with room to spare
//! (1/16 of the span plus 4 bins, and at least ×1.125, never more than
//! [`MAX_BINS`]), so reallocations are O(log MAX_BINS) over a sketch's life
//! instead of one per widening (amortised O(1) copying), and `add` is a
//! lookup, a range check and an increment. `clear` zeroes the used bins and keeps the store, so a window
//! bucket reset for reuse does not reallocate (its next values usually fall
//! where the last ones did). `subtract` only narrows the used range, and
//! gives memory back once that fits in a quarter of the store. An empty
//! sketch allocates nothing. Equality, `Debug` and serialisation see only
//! the logical content (counts per bin), never the slack or the layout, so
//! the serialised bytes do not depend on a sketch's growth history.
//!
//! **Quantiles** walk the used bins 16 at a time (one cache line), from the
//! top for `q > 0.5`, skipping whole blocks whose sum cannot reach the rank.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Relative accuracy guaranteed on every quantile (before rounding to whole ms).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Upper bound on dense bins; 1024 bins span 29.3 octaves, a ratio of ~6.4e8
/// (1 ms to ~7.4 days).
pub const MAX_BINS: usize = 1024;
/// Bins per octave of the mapping.
const BINS_PER_OCTAVE: i32 = 35;
/// Index of the largest value, `u64::MAX`.
const MAX_INDEX: i32 = 64 * BINS_PER_OCTAVE;
/// Smallest store allocated (16 bytes, malloc's granularity).
const MIN_CAPACITY: usize = 4;
/// Stores are sized in multiples of this many bins (16 bytes).
const CAPACITY_STEP: usize = 4;
/// Bins summed at once when a quantile skips through the store.
const BLOCK: usize = 16;
/// An octave is looked up in `1 << SLICE_BITS` equal slices of `s`.
const SLICE_BITS: u32 = 6;

/// `35 × P(s)`, `P` the cubic interpolation of `log2(1 + s)` on `[0, 1]`.
const fn octave_position(s: f64) -> f64 {
    ((6.0 * s - 21.0) * s + 50.0) * s
}

/// The `s` with `octave_position(s) = t`, by bisection (`Q` is increasing).
const fn octave_edge(t: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut step = 0;
    while step < 80 {
        let mid = 0.5 * (lo + hi);
        if octave_position(mid) < t {
            lo = mid;
        } else {
            hi = mid;
        }
        step += 1;
    }
    hi
}

/// `s_j`, the top of bin `j` within an octave: bin `35·e + j` holds
/// `2^e · (1 + s)` for `s ∈ (s_(j−1), s_j]`; `s_0 = 0`, `s_35 = 1`.
const EDGES: [f64; BINS_PER_OCTAVE as usize + 1] = {
    let mut edges = [0.0; BINS_PER_OCTAVE as usize + 1];
    let mut j = 1;
    while j < edges.len() {
        edges[j] = octave_edge(j as f64);
        j += 1;
    }
    edges
};

/// Representative of bin `35·e + j` divided by `2^e`, at `j − 1`: the
/// harmonic mean of the bin's edges `1 + s_(j−1)` and `1 + s_j`, which has
/// the same relative distance to both edges.
const REPRESENTATIVES: [f64; BINS_PER_OCTAVE as usize] = {
    let mut reps = [0.0; BINS_PER_OCTAVE as usize];
    let mut j = 0;
    while j < reps.len() {
        let (lower, upper) = (1.0 + EDGES[j], 1.0 + EDGES[j + 1]);
        reps[j] = 2.0 * lower * upper / (lower + upper);
        j += 1;
    }
    reps
};

/// Per slice of an octave, `(j, t)`: the bin `j` of the slice's first `s`,
/// and `s_j · 2^64` (exact: `s_j` has no bits below 2^−58), the fraction
/// above which a value of the slice is in bin `j + 1`. A slice (`ln` width
/// ≤ ln(1 + 1/64) = 0.0155) is narrower than any bin (≥ 1/52 = 0.0192), so
/// it meets at most one edge; a unit test checks it.
const SLICES: [(u8, u64); 1 << SLICE_BITS] = {
    let mut slices = [(0, 0); 1 << SLICE_BITS];
    let mut k = 0;
    while k < slices.len() {
        let start = k as f64 / (1u64 << SLICE_BITS) as f64;
        let mut j = 0;
        while EDGES[j] < start {
            j += 1;
        }
        // `as` saturates: s_35 = 1 gives u64::MAX, never exceeded.
        slices[k] = (j as u8, (EDGES[j] * 18_446_744_073_709_551_616.0) as u64);
        k += 1;
    }
    slices
};

/// Bin of a latency ≥ 1 ms, in integer arithmetic: `e` is the position of
/// the leading one, the 64 bits after it are `s · 2^64`.
fn index_of(value_ms: u64) -> i32 {
    let zeros = value_ms.leading_zeros();
    let fraction = (value_ms << zeros) << 1;
    let (j, top) = SLICES[(fraction >> (64 - SLICE_BITS)) as usize];
    let j = i32::from(j) + i32::from(fraction > top);
    (63 - zeros as i32) * BINS_PER_OCTAVE + j
}

fn representative(index: i32) -> u64 {
    let exponent = (index - 1).div_euclid(BINS_PER_OCTAVE);
    let j = index - exponent * BINS_PER_OCTAVE; // 1..=35
    let scale = f64::from_bits(((exponent + 1023) as u64) << 52); // exact 2^e
    let v = REPRESENTATIVES[(j - 1) as usize] * scale;
    if v < (1u64 << 52) as f64 {
        // `v.round()` without a libm call (`v - t` is exact here).
        let t = v as i64;
        (t + i64::from(v - t as f64 >= 0.5)) as u64
    } else {
        v as u64 // already whole; saturates at u64::MAX
    }
}

/// Store size for a used span of `span` bins outgrowing `capacity` bins:
/// the span plus 1/16 and 4 bins of slack, and at least 1.125 × the old
/// store, so a store is reallocated O(log MAX_BINS) times at most, copying
/// < 9 × its final size in all. Modest factors: with window buckets reused,
/// a store keeps the largest size it ever needed, and memory per agent
/// matters more than a few more reallocations while a store warms up. An
/// empty store gets just what it needs: a first value takes 4 bins, 16 bytes.
fn grown_capacity(span: usize, capacity: usize) -> usize {
    let wanted = if capacity == 0 {
        span
    } else {
        (span + span / 16 + 4).max(capacity + capacity / 8)
    };
    wanted
        .max(MIN_CAPACITY)
        .next_multiple_of(CAPACITY_STEP)
        .min(MAX_BINS)
}

/// The sketch bin of one latency value (see [`LatencySketch::key_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleKey(u16);

impl SampleKey {
    /// Whether this value lies in `bin` or above it; a 0 ms value never does.
    pub fn at_or_above(self, bin: SampleKey) -> bool {
        self.0 != ZERO_KEY && self.0 >= bin.0
    }
}

/// The key of a 0 ms latency, which has its own counter. Real bin indices
/// stay below 64 × 35.
const ZERO_KEY: u16 = u16::MAX;

/// Latency distribution with ≤ 1% relative error on quantiles.
///
/// Bin `i` holds the values `v` with `35·log2(v)` (cubically interpolated
/// within each octave) in `(i − 1, i]`; see the module documentation. Only
/// the bins between the lowest and the highest non-empty one are in use.
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
#[derive(Clone, Default)]
pub struct LatencySketch {
    count: u64,
    zero: u32,
    /// Index of `bins[0]`.
    base: u16,
    /// Lowest non-empty index; meaningless while `used == 0`.
    lo: u16,
    /// Bins from `lo` to the highest non-empty one (both ends non-zero);
    /// 0 when no bin holds anything. Every bin outside them is zero.
    used: u16,
    /// The lowest bin also holds values from below it; set by a collapse,
    /// cleared once that bin drains. While set the store may not grow
    /// downwards, so every bucket's low values keep landing in that bin.
    collapsed: bool,
    /// Dense store with slack; its length is the capacity.
    bins: Box<[u32]>,
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
        if self.used == 0 || i < self.lo() || i > self.hi() {
            self.extend_to(i);
        }
        let slot = self.slot(i);
        self.bins[slot] = self.bins[slot].saturating_add(1);
    }

    /// The bin a latency falls in, as a 2-byte key: lets a caller keep a
    /// few samples compactly (a sparse window bucket) and later replay them
    /// into, or out of, a sketch with [`add_key`](Self::add_key) and
    /// [`remove_key`](Self::remove_key), exactly as `add` would have.
    ///
    /// ```
    /// use breakwater::engine::sketch::LatencySketch;
    /// let (mut a, mut b) = (LatencySketch::new(), LatencySketch::new());
    /// a.add(2_500);
    /// b.add_key(LatencySketch::key_of(2_500));
    /// assert_eq!(a, b);
    /// b.remove_key(LatencySketch::key_of(2_500));
    /// assert!(b.is_empty());
    /// ```
    pub fn key_of(value_ms: u64) -> SampleKey {
        if value_ms == 0 {
            SampleKey(ZERO_KEY)
        } else {
            SampleKey(index_of(value_ms) as u16)
        }
    }

    /// Records one value by its key (see [`key_of`](Self::key_of)).
    pub fn add_key(&mut self, key: SampleKey) {
        self.count += 1;
        if key.0 == ZERO_KEY {
            self.zero = self.zero.saturating_add(1);
            return;
        }
        let i = i32::from(key.0);
        if self.used == 0 || i < self.lo() || i > self.hi() {
            self.extend_to(i);
        }
        let slot = self.slot(i);
        self.bins[slot] = self.bins[slot].saturating_add(1);
    }

    /// Sizes an empty store for the keys `lo..=hi` at once, so that adding
    /// them does not grow it step by step (a restore rebuilding a window
    /// total). Changes no count; ignored unless the sketch is empty and the
    /// keys are non-zero values within one store's span.
    pub(crate) fn reserve_keys(&mut self, lo: SampleKey, hi: SampleKey) {
        if self.used != 0 || lo.0 == ZERO_KEY || hi.0 == ZERO_KEY || hi.0 < lo.0 {
            return;
        }
        let (lo, hi) = (i32::from(lo.0), i32::from(hi.0));
        if hi - lo < MAX_BINS as i32 {
            self.reserve(lo, hi, None);
        }
    }

    /// Removes one value recorded by its key, as `subtract` would remove a
    /// one-value sketch: a key below the lowest kept bin is taken from that
    /// bin, where a collapse put it.
    pub fn remove_key(&mut self, key: SampleKey) {
        if key.0 == ZERO_KEY {
            if self.zero > 0 {
                self.zero -= 1;
                self.count -= 1;
            }
            return;
        }
        if self.used == 0 {
            return;
        }
        let i = i32::from(key.0).max(self.lo());
        if i > self.hi() {
            return; // only reachable if the key was never added
        }
        let slot = self.slot(i);
        if self.bins[slot] == 0 {
            return;
        }
        self.bins[slot] -= 1;
        self.count -= 1;
        if self.bins[slot] == 0 && (i == self.lo() || i == self.hi()) {
            self.trim();
        }
    }

    /// Adds all of `other`'s counts to `self`.
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.zero = self.zero.saturating_add(other.zero);
        if other.used == 0 {
            return;
        }
        let (other_lo, other_hi) = (other.lo(), other.hi());
        if self.used == 0 || other_lo < self.lo() || other_hi > self.hi() {
            self.ensure_range(other_lo, other_hi);
        }
        let src = other.used_bins();
        // `other`'s bins at or below our lowest one land in it (collapse).
        let below = ((self.lo() - other_lo + 1).max(0) as usize).min(src.len());
        if below > 0 {
            let slot = self.slot(self.lo());
            let sum = src[..below].iter().fold(0u32, |a, &c| a.saturating_add(c));
            self.bins[slot] = self.bins[slot].saturating_add(sum);
        }
        if below < src.len() {
            let start = self.slot(other_lo + below as i32);
            let dst = &mut self.bins[start..start + src.len() - below];
            for (d, &c) in dst.iter_mut().zip(&src[below..]) {
                *d = d.saturating_add(c);
            }
        }
    }

    /// Removes `other`, which must have been merged into `self` before; undoes
    /// that merge exactly, trimming the used range to the bins still in use.
    ///
    /// This stays exact in counts across collapses: `other`'s low bins are
    /// taken from the lowest kept bin, where the collapse put them.
    pub fn subtract(&mut self, other: &Self) {
        debug_assert!(other.count <= self.count, "subtracting more than merged");
        // Count what is actually removed so `count` always equals the stored total.
        let zero = self.zero.min(other.zero);
        self.zero -= zero;
        self.count -= u64::from(zero);
        if self.used == 0 || other.used == 0 {
            return;
        }
        let (lo, hi) = (self.lo(), self.hi());
        let (src, other_lo) = (other.used_bins(), other.lo());
        let mut removed = 0u64;
        let below = ((lo - other_lo + 1).max(0) as usize).min(src.len());
        if below > 0 {
            let wanted: u64 = src[..below].iter().map(|&c| u64::from(c)).sum();
            let slot = self.slot(lo);
            let taken = u64::from(self.bins[slot]).min(wanted) as u32;
            self.bins[slot] -= taken;
            removed += u64::from(taken);
        }
        // Bins above ours are only reachable if `other` was never merged.
        let (from, to) = ((other_lo + below as i32).max(lo + 1), other.hi().min(hi));
        if from <= to {
            let len = (to - from + 1) as usize;
            let start = self.slot(from);
            let dst = &mut self.bins[start..start + len];
            let src = &src[(from - other_lo) as usize..][..len];
            if dst.iter().zip(src).fold(true, |ok, (&d, &c)| ok & (c <= d)) {
                // `other` was merged: plain subtractions, which vectorise.
                dst.iter_mut().zip(src).for_each(|(d, &c)| *d -= c);
                removed += src.iter().map(|&c| u64::from(c)).sum::<u64>();
            } else {
                for (d, &c) in dst.iter_mut().zip(src) {
                    let taken = (*d).min(c);
                    *d -= taken;
                    removed += u64::from(taken);
                }
            }
        }
        self.count -= removed;
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

    /// Whether the lowest bin also holds values from below it (a collapse
    /// that has not drained yet). Until then the sketch is not the plain
    /// sum of what was added and not removed.
    pub fn is_collapsed(&self) -> bool {
        self.collapsed
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
        if let Some(floor) = self.rank_floor(q) {
            // Every cumulative count is below 2^53, hence exact in f64, and
            // `c as f64 <= rank` is `c <= ⌊rank⌋` (i64: cheaper conversions).
            self.quantile_by(q > 0.5, |c| c <= floor)
        } else {
            let rank = q * (self.count - 1) as f64;
            self.quantile_by(q > 0.5, |c| c as f64 <= rank)
        }
    }

    /// The rank [`quantile`](Self::quantile) looks for: `⌊q × (count − 1)⌋`,
    /// as that walk computes it (`None` when empty or past 2^52 values).
    fn rank_floor(&self, q: f64) -> Option<u64> {
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        (self.count > 0 && self.count < 1 << 52)
            .then(|| (q * (self.count - 1) as i64 as f64) as i64 as u64)
    }

    /// Whether `quantile(q)` is at or above the bin of `key`, given `at_or_above`,
    /// the number of values whose key is `key` or higher; `None` when the
    /// count can't tell (collapsed, empty, or a zero key).
    ///
    /// With the count kept up to date by the caller this answers "is the p99
    /// above the threshold" without walking the bins: the quantile's bin is at
    /// or above `key` exactly when at most `rank` values lie below it.
    ///
    /// ```
    /// use breakwater::engine::sketch::LatencySketch;
    /// let mut s = LatencySketch::new();
    /// (1..=100).for_each(|ms| s.add(ms));
    /// let key = LatencySketch::key_above(90.0).unwrap(); // values > 90 ms
    /// let above = s.count_from_key(key);
    /// assert_eq!(s.quantile_reaches(0.99, key, above), Some(true));
    /// assert_eq!(s.quantile_reaches(0.5, key, above), Some(false));
    /// ```
    pub fn quantile_reaches(&self, q: f64, key: SampleKey, at_or_above: u64) -> Option<bool> {
        if self.collapsed || key.0 == ZERO_KEY {
            return None;
        }
        let rank = self.rank_floor(q)?;
        // Below `key` lie `count − at_or_above` values (zeros included); the
        // walk stops in the first bin whose cumulative count passes `rank`.
        Some(self.count - at_or_above <= rank)
    }

    /// The number of values recorded with `key` or a higher key (zeros
    /// excluded). Exact unless the sketch is collapsed.
    pub fn count_from_key(&self, key: SampleKey) -> u64 {
        if self.used == 0 || key.0 == ZERO_KEY {
            return 0;
        }
        let from = i32::from(key.0).max(self.lo());
        if from > self.hi() {
            return 0;
        }
        let bins = self.used_bins();
        bins[(from - self.lo()) as usize..]
            .iter()
            .map(|&c| u64::from(c))
            .sum()
    }

    /// The lowest key whose values [`quantile`](Self::quantile) reports as
    /// more than `threshold_ms`: `quantile(q) > threshold_ms` exactly when the
    /// quantile's bin is at or above it. `None` when no key expresses that:
    /// a negative threshold (a 0 ms quantile exceeds it too) or one no
    /// value can exceed.
    pub fn key_above(threshold_ms: f64) -> Option<SampleKey> {
        if threshold_ms.is_nan() || threshold_ms < 0.0 {
            return None;
        }
        // `representative` is monotone in the index: binary search.
        let (mut lo, mut hi) = (0, MAX_INDEX);
        if representative(hi) as f64 <= threshold_ms {
            return None;
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            if representative(mid) as f64 > threshold_ms {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(SampleKey(lo as u16))
    }

    /// Starts loading the bin `value_ms` would land in (batch path): the
    /// store is a separate allocation, so the agent's prefetch misses it.
    pub(crate) fn prefetch(&self, value_ms: u64) {
        if self.used == 0 || value_ms == 0 {
            return;
        }
        let slot = (index_of(value_ms).max(self.lo()) - i32::from(self.base)) as usize;
        if let Some(bin) = self.bins.get(slot) {
            super::prefetch::prefetch(bin);
        }
    }

    /// Forgets everything but keeps the store, for reuse without reallocating.
    pub fn clear(&mut self) {
        if self.used > 0 {
            let start = self.slot(self.lo());
            self.bins[start..start + usize::from(self.used)].fill(0);
        }
        self.count = 0;
        self.zero = 0;
        self.used = 0;
        self.collapsed = false;
    }

    /// Heap memory held by the store, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bins.len() * std::mem::size_of::<u32>()
    }

    /// The quantile walk; `within(c)` says whether a cumulative count `c`
    /// is at most the rank (monotone in `c`).
    fn quantile_by(&self, from_top: bool, within: impl Fn(u64) -> bool) -> Option<u64> {
        let bins = self.used_bins();
        let lo = self.lo();
        let block_sum = |b: &[u32]| b.iter().map(|&c| u64::from(c)).sum::<u64>();
        if from_top {
            // High quantiles sit near the top: walk down while the bins below
            // still reach past the rank, a block at a time while a whole
            // block can go.
            let mut cum = self.count;
            let mut end = bins.len();
            for block in bins.rchunks(BLOCK) {
                end -= block.len();
                let after = cum.saturating_sub(block_sum(block));
                if !within(after) {
                    cum = after;
                    continue;
                }
                for (k, &c) in block.iter().enumerate().rev() {
                    let below = cum.saturating_sub(u64::from(c));
                    if within(below) {
                        return Some(representative(lo + (end + k) as i32));
                    }
                    cum = below;
                }
            }
            return Some(0);
        }
        let mut cum = u64::from(self.zero);
        if !within(cum) {
            return Some(0);
        }
        let mut start = 0;
        for block in bins.chunks(BLOCK) {
            let after = cum + block_sum(block);
            if within(after) {
                cum = after;
                start += block.len();
                continue;
            }
            for (k, &c) in block.iter().enumerate() {
                cum += u64::from(c);
                if !within(cum) {
                    return Some(representative(lo + (start + k) as i32));
                }
            }
            start += block.len();
        }
        // Only reachable if a u32 counter saturated: the top bin is closest.
        (self.used > 0).then(|| representative(self.hi()))
    }

    fn lo(&self) -> i32 {
        i32::from(self.lo)
    }

    fn hi(&self) -> i32 {
        self.lo() + i32::from(self.used) - 1
    }

    /// The bins in use, lowest first.
    fn used_bins(&self) -> &[u32] {
        if self.used == 0 {
            return &[];
        }
        let start = self.slot(self.lo());
        &self.bins[start..start + usize::from(self.used)]
    }

    /// Store position of index `i`; indices below the used range were
    /// collapsed into its lowest bin.
    fn slot(&self, i: i32) -> usize {
        (i.max(self.lo()) - i32::from(self.base)) as usize
    }

    /// `ensure_range(i, i)`, the common cases first: the store has room and
    /// nothing needs collapsing, so only the used range moves.
    fn extend_to(&mut self, i: i32) {
        let base = i32::from(self.base);
        if i >= base && i < base + self.bins.len() as i32 {
            let (lo, hi) = (self.lo(), self.hi());
            let max = MAX_BINS as i32;
            if self.used == 0 {
                // `collapsed` is never set on an empty store.
                (self.lo, self.used) = (i as u16, 1);
                return;
            }
            if i > hi && i - lo < max {
                self.used = (i - lo + 1) as u16;
                return;
            }
            if i < lo && !self.collapsed && hi - i < max {
                (self.lo, self.used) = (i as u16, (hi - i + 1) as u16);
                return;
            }
        }
        self.ensure_range(i, i);
    }

    /// Makes the used range cover `[lo, hi]`, collapsing the lowest bins if
    /// the span would exceed `MAX_BINS`: high quantiles are the ones we
    /// alert on.
    fn ensure_range(&mut self, lo: i32, hi: i32) {
        let empty = self.used == 0;
        let (old_lo, old_hi) = if empty {
            (lo, hi)
        } else {
            (self.lo(), self.hi())
        };
        let new_hi = hi.max(old_hi);
        let wanted_lo = if self.collapsed {
            old_lo
        } else {
            lo.min(old_lo)
        };
        let new_lo = wanted_lo.max(new_hi - MAX_BINS as i32 + 1);
        self.collapsed |= lo.min(old_lo) < new_lo;
        if !empty && new_lo == old_lo && new_hi == old_hi {
            return;
        }
        // Collapse: the bins below `new_lo` (and `new_lo` itself) fold into it.
        let mut folded = None;
        if !empty && new_lo > old_lo {
            let (start, end) = (self.slot(old_lo), self.slot(new_lo.min(old_hi)));
            let bins = &mut self.bins[start..=end];
            folded = Some(bins.iter().fold(0u32, |a, &c| a.saturating_add(c)));
            bins.fill(0);
        }
        let kept = (!empty && new_lo <= old_hi).then_some((old_lo.max(new_lo), old_hi));
        self.reserve(new_lo, new_hi, kept);
        self.lo = new_lo as u16;
        self.used = (new_hi - new_lo + 1) as u16;
        if let Some(sum) = folded {
            let slot = self.slot(new_lo);
            self.bins[slot] = sum;
        }
    }

    /// Makes the store hold indices `[lo, hi]` (at most `MAX_BINS`), moving
    /// the non-zero bins `kept` (inclusive index range) along; every other
    /// bin must be zero.
    fn reserve(&mut self, lo: i32, hi: i32, kept: Option<(i32, i32)>) {
        let (old_base, capacity) = (i32::from(self.base), self.bins.len());
        if lo >= old_base && hi < old_base + capacity as i32 {
            return;
        }
        let span = (hi - lo + 1) as usize;
        if kept.is_none() && span <= capacity {
            // An emptied store (a bucket cleared for reuse): slide it just
            // past the new range, keeping the rest where its last contents
            // were, as the next ones are likely to be there too.
            let margin = ((capacity - span) / 8) as i32;
            let base = if lo < old_base {
                lo - margin
            } else {
                hi + margin + 1 - capacity as i32
            };
            self.relocate(capacity, base, None);
            return;
        }
        // Re-centre in place while at most 7/8 full: each side then keeps
        // ≥ 1/16 of slack, so the range must grow that much before the next
        // move (≤ 14 bins copied per bin of growth); grow otherwise.
        let capacity = if span <= capacity - capacity / 8 || capacity >= MAX_BINS {
            capacity
        } else {
            grown_capacity(span, capacity)
        };
        self.relocate(capacity, lo - ((capacity - span) / 2) as i32, kept);
    }

    /// Lays the store out as `capacity` bins from index `base` (clamped to
    /// 0), moving the non-zero bins `kept` along; reallocates unless the
    /// capacity is unchanged, and capacity 0 frees the store.
    fn relocate(&mut self, capacity: usize, base: i32, kept: Option<(i32, i32)>) {
        let old_base = i32::from(self.base);
        let base = base.max(0);
        if capacity == self.bins.len() {
            if let Some((from, to)) = kept {
                let len = (to - from + 1) as usize;
                let (src, dst) = ((from - old_base) as usize, (from - base) as usize);
                self.bins.copy_within(src..src + len, dst);
                // Zero what the move uncovered.
                if dst > src {
                    self.bins[src..dst.min(src + len)].fill(0);
                } else {
                    self.bins[(dst + len).max(src)..src + len].fill(0);
                }
            }
        } else {
            let mut bins = vec![0u32; capacity].into_boxed_slice();
            if let Some((from, to)) = kept {
                let len = (to - from + 1) as usize;
                let (src, dst) = ((from - old_base) as usize, (from - base) as usize);
                bins[dst..dst + len].copy_from_slice(&self.bins[src..src + len]);
            }
            self.bins = bins;
        }
        self.base = base as u16;
    }

    /// Narrows the used range to its non-empty ends after a subtraction, and
    /// gives memory back once the range fits a quarter of the store.
    fn trim(&mut self) {
        let bins = self.used_bins();
        let Some(first) = bins.iter().position(|&c| c != 0) else {
            self.used = 0;
            self.collapsed = false;
            self.relocate(0, 0, None);
            return;
        };
        let last = bins.iter().rposition(|&c| c != 0).unwrap_or(first);
        if first > 0 {
            // The bin holding collapsed values drained: none is live any more.
            self.collapsed = false;
        }
        self.lo += first as u16;
        self.used = (last - first + 1) as u16;
        let used = usize::from(self.used);
        if self.bins.len() > 4 * used.max(MIN_CAPACITY) {
            let capacity = grown_capacity(used, 0);
            let base = self.lo() - ((capacity - used) / 2) as i32;
            self.relocate(capacity, base, Some((self.lo(), self.hi())));
        }
    }

    /// Logical lowest index, as serialised: 0 when no bin is in use.
    fn offset(&self) -> i32 {
        if self.used == 0 {
            0
        } else {
            self.lo()
        }
    }
}

/// Equal when the logical content is: the same counts in the same bins,
/// whatever the store's capacity and layout.
impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.zero == other.zero
            && self.collapsed == other.collapsed
            && self.offset() == other.offset()
            && self.used_bins() == other.used_bins()
    }
}

impl fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencySketch")
            .field("count", &self.count)
            .field("zero", &self.zero)
            .field("offset", &self.offset())
            .field("collapsed", &self.collapsed)
            .field("bins", &self.used_bins())
            .finish()
    }
}

/// The serialised form: the used bins only, so the bytes depend on the
/// logical content alone, not on the store's slack or growth history.
#[derive(Serialize)]
#[serde(rename = "LatencySketch")]
struct Wire<'a> {
    count: u64,
    zero: u32,
    offset: i32,
    collapsed: bool,
    bins: &'a [u32],
}

#[derive(Deserialize)]
#[serde(rename = "LatencySketch")]
struct OwnedWire {
    count: u64,
    zero: u32,
    offset: i32,
    collapsed: bool,
    bins: Vec<u32>,
}

impl Serialize for LatencySketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            count: self.count,
            zero: self.zero,
            offset: self.offset(),
            collapsed: self.collapsed,
            bins: self.used_bins(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LatencySketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = OwnedWire::deserialize(deserializer)?;
        let mut s = LatencySketch {
            count: w.count,
            zero: w.zero,
            collapsed: w.collapsed,
            ..Self::default()
        };
        // Normalise as `trim` would: the used range starts and ends non-zero.
        let Some(first) = w.bins.iter().position(|&c| c != 0) else {
            s.collapsed = false;
            return Ok(s);
        };
        let last = w.bins.iter().rposition(|&c| c != 0).unwrap_or(first);
        s.collapsed &= first == 0;
        let used = last - first + 1;
        let stored = w.bins.iter().map(|&c| u64::from(c)).sum::<u64>() + u64::from(w.zero);
        if stored > w.count {
            return Err(D::Error::custom(format!(
                "latency sketch holds {stored} values but counts {}",
                w.count
            )));
        }
        let lo = i64::from(w.offset) + first as i64;
        if used > MAX_BINS || lo < 0 || lo + used as i64 - 1 > i64::from(MAX_INDEX) {
            return Err(D::Error::custom(format!(
                "latency sketch bins {lo}..{} out of range",
                lo + used as i64
            )));
        }
        let mut bins = vec![0u32; used.next_multiple_of(CAPACITY_STEP)].into_boxed_slice();
        bins[..used].copy_from_slice(&w.bins[first..=last]);
        s.bins = bins;
        s.base = lo as u16;
        s.lo = lo as u16;
        s.used = used as u16;
        Ok(s)
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

    const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

    /// Exact bounds of bin `i` (in `f64`), for the error checks.
    fn bin_edges(i: i32) -> (f64, f64) {
        let e = (i - 1).div_euclid(BINS_PER_OCTAVE);
        let j = i - e * BINS_PER_OCTAVE;
        let scale = 2f64.powi(e);
        let edge = |j: i32| (1.0 + EDGES[j as usize]) * scale;
        (edge(j - 1), edge(j))
    }

    #[test]
    fn every_bin_is_narrower_than_gamma() {
        let mut widest: f64 = 0.0;
        for j in 1..=BINS_PER_OCTAVE {
            let (lower, upper) = bin_edges(j);
            // The solved edges are where the mapping puts them.
            assert!((octave_position(lower - 1.0) - f64::from(j - 1)).abs() < 1e-12);
            assert!((octave_position(upper - 1.0) - f64::from(j)).abs() < 1e-12);
            let rep = REPRESENTATIVES[(j - 1) as usize];
            assert!(lower < rep && rep < upper);
            let err = (rep / lower - 1.0).max(1.0 - rep / upper);
            assert!(err < RELATIVE_ACCURACY, "bin {j}: error {err}");
            widest = widest.max((upper / lower).ln());
        }
        // Narrowest margin at s = 0: 1/50 against ln γ ≈ 0.0200007.
        assert!(widest <= 0.02 && widest < GAMMA.ln(), "widest {widest}");
        assert!(widest > 0.0199, "the bound is tight: {widest}");
    }

    #[test]
    fn each_slice_meets_at_most_one_edge() {
        let slices = 1u64 << SLICE_BITS;
        for (k, &(j, top)) in SLICES.iter().enumerate() {
            let (start, end) = (k as f64 / slices as f64, (k + 1) as f64 / slices as f64);
            let j = usize::from(j);
            assert!(EDGES[j] >= start && (j == 0 || EDGES[j - 1] < start));
            assert!(j == 35 || EDGES[j + 1] >= end, "slice {k} meets two edges");
            assert!(top == u64::MAX || top as f64 == EDGES[j] * 2f64.powi(64));
        }
    }

    #[test]
    fn mapping_of_every_value_up_to_2_pow_21() {
        let mut prev = index_of(1);
        assert_eq!((prev, representative(prev)), (0, 1));
        for v in 2..=(1u64 << 21) {
            let i = index_of(v);
            // Monotone; from 128 on, consecutive values are closer than a bin.
            assert!(
                i >= prev && (v < 128 || i <= prev + 1),
                "v={v}: {prev} then {i}"
            );
            prev = i;
            let (lower, upper) = bin_edges(i);
            let x = v as f64;
            assert!(
                lower < x && x <= upper,
                "v={v} in bin {i} ({lower}, {upper}]"
            );
            let rep = representative(i);
            assert!(rep.abs_diff(v) as f64 <= 0.01 * x + 0.5, "v={v} rep={rep}");
        }
    }

    #[test]
    fn powers_of_two_top_their_bin_and_extremes_map() {
        for e in 0..64 {
            let v = 1u64 << e;
            assert_eq!(index_of(v), BINS_PER_OCTAVE * e);
            if (7..=52).contains(&e) {
                assert_eq!(index_of(v + 1), BINS_PER_OCTAVE * e + 1);
                assert_eq!(index_of(v - 1), BINS_PER_OCTAVE * e);
            }
        }
        assert_eq!(index_of(u64::MAX), MAX_INDEX);
        let top = representative(MAX_INDEX) as f64;
        assert!((top / u64::MAX as f64 - 1.0).abs() < 0.01);
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
        assert_eq!(s.heap_bytes(), 4 * MIN_CAPACITY);
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
        // 1 ms to 10^12 ms spans ~1395 bins.
        let mut values: Vec<u64> = (0..=290).map(|k| 1.1f64.powi(k) as u64).collect();
        values.push(1_000_000_000_000);
        values.sort_unstable();
        let s = sketch_of(&values);
        assert_eq!(
            (usize::from(s.used), s.count()),
            (MAX_BINS, values.len() as u64)
        );
        assert!(s.collapsed && s.heap_bytes() == 4 * MAX_BINS);
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

    /// The quantile definition, walked bin by bin from the bottom.
    fn reference_quantile(s: &LatencySketch, q: f64) -> Option<u64> {
        if s.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = q * (s.count - 1) as f64;
        let mut cum = u64::from(s.zero);
        if cum as f64 > rank {
            return Some(0);
        }
        for (i, &c) in (s.lo()..).zip(s.used_bins()) {
            cum += u64::from(c);
            if cum as f64 > rank {
                return Some(representative(i));
            }
        }
        unreachable!("count is the sum of the bins")
    }

    fn json(s: &LatencySketch) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn clear_keeps_the_store_and_reuse_does_not_reallocate() {
        let mut s = sketch_of(&[100, 2_500, 60_000]);
        let (bytes, ptr) = (s.heap_bytes(), s.bins.as_ptr());
        s.clear();
        assert_eq!(s, LatencySketch::default());
        assert_eq!((s.heap_bytes(), s.bins.as_ptr()), (bytes, ptr));
        // A range almost as wide, lower down: the store slides, no reallocation.
        [20, 300, 5_000].iter().for_each(|&v| s.add(v));
        assert_eq!((s.heap_bytes(), s.bins.as_ptr()), (bytes, ptr));
        assert_eq!(s, sketch_of(&[20, 300, 5_000]));
        assert_eq!(json(&s), json(&sketch_of(&[5_000, 20, 300])));
    }

    #[test]
    fn growth_is_geometric_and_bounded() {
        // Widen the range one bin at a time up to MAX_BINS, both ways.
        let mut s = LatencySketch::new();
        let mut reallocations = 0;
        for k in 0..MAX_BINS / 2 {
            let octaves = k as f64 / f64::from(BINS_PER_OCTAVE);
            for exponent in [32.0 + octaves, 32.0 - octaves] {
                let bytes = s.heap_bytes();
                s.add(2f64.powf(exponent) as u64);
                reallocations += usize::from(s.heap_bytes() != bytes);
            }
        }
        assert!(
            reallocations <= 40, // log_1.125(1024 / 4) = 47
            "{reallocations} reallocations for 1023 bins"
        );
        assert!(usize::from(s.used) >= MAX_BINS - 2);
        assert!(s.heap_bytes() <= 4 * MAX_BINS);
    }

    #[test]
    fn drained_store_is_freed_and_empty_allocates_nothing() {
        let a = sketch_of(&[1, 10, 100_000]);
        let mut s = a.clone();
        s.subtract(&a);
        assert_eq!((s.heap_bytes(), s.count()), (0, 0));
        assert!(std::mem::size_of::<LatencySketch>() <= 40, "was 48");
    }

    #[test]
    fn serde_round_trips_and_rejects_out_of_range_bins() {
        let mut s = sketch_of(&[0, 1, 5, 7, 900, 1_000_000_000_000]);
        s.add(1); // collapsed into the lowest kept bin
        assert!(s.collapsed);
        for sketch in [LatencySketch::default(), sketch_of(&[0]), s] {
            let text = json(&sketch);
            let back: LatencySketch = serde_json::from_str(&text).unwrap();
            assert_eq!((&back, json(&back)), (&sketch, text));
        }
        let bad = r#"{"count":1,"zero":0,"offset":2300,"collapsed":false,"bins":[1]}"#;
        assert!(serde_json::from_str::<LatencySketch>(bad).is_err());
        let overfull = r#"{"count":1,"zero":1,"offset":40,"collapsed":false,"bins":[1]}"#;
        assert!(serde_json::from_str::<LatencySketch>(overfull).is_err());
        // Zero ends are trimmed on the way in.
        let padded = r#"{"count":2,"zero":0,"offset":40,"collapsed":true,"bins":[0,2,0]}"#;
        let s: LatencySketch = serde_json::from_str(padded).unwrap();
        assert_eq!(
            json(&s),
            r#"{"count":2,"zero":0,"offset":41,"collapsed":false,"bins":[2]}"#
        );
    }

    proptest! {
        /// The threshold test without a walk agrees with the walk, for any
        /// values (zeros included), quantile and threshold.
        #[test]
        fn quantile_reaches_agrees_with_quantile(
            values in prop::collection::vec(prop_oneof![Just(0u64), 1u64..200_000], 1..600),
            q in prop_oneof![Just(0.99), Just(0.5), Just(1.0), Just(0.0), 0.0f64..1.0],
            threshold in prop_oneof![Just(0.0), 0.0f64..250_000.0, (1u64..200_000).prop_map(|v| v as f64)],
        ) {
            let s = sketch_of(&values);
            let expected = s.quantile(q).unwrap() as f64 > threshold;
            match LatencySketch::key_above(threshold) {
                Some(key) => {
                    let above = s.count_from_key(key);
                    prop_assert_eq!(s.quantile_reaches(q, key, above), Some(expected));
                }
                None => prop_assert!(!expected),
            }
        }

        #[test]
        fn quantiles_within_1pct(mut values in prop::collection::vec(1u64..10_000_000, 1..2000)) {
            let s = sketch_of(&values);
            values.sort_unstable();
            for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0] {
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

        /// The same with buckets reused through `clear` and the total fed
        /// value by value, as the engine does: counts never drift either.
        #[test]
        fn reused_buckets_with_collapse(
            buckets in prop::collection::vec(prop::collection::vec(0u32..46, 0..20), 1..40),
        ) {
            const KEEP: usize = 3;
            let mut ring: Vec<LatencySketch> = vec![LatencySketch::new(); KEEP];
            let mut window = LatencySketch::new();
            for (k, b) in buckets.iter().enumerate() {
                let slot = &mut ring[k % KEEP];
                window.subtract(slot);
                slot.clear();
                for &e in b {
                    slot.add((1u64 << e) - 1);
                    window.add((1u64 << e) - 1);
                }
                let live: u64 = ring.iter().map(|s| s.count()).sum();
                prop_assert_eq!(window.count(), live);
                prop_assert!(window.heap_bytes() <= 4 * MAX_BINS);
                if let Some(top) = b.iter().max().filter(|&&e| e > 0) {
                    // The highest value of the newest bucket is never collapsed.
                    let v = (1u64 << top) - 1;
                    let est = ring[k % KEEP].quantile(1.0).unwrap();
                    prop_assert!(est.abs_diff(v) as f64 <= 0.01 * v as f64 + 1.0);
                }
            }
            ring.iter().for_each(|b| window.subtract(b));
            prop_assert_eq!(window, LatencySketch::default());
        }

        /// The integer lookup is the cubic mapping `35·e + ⌈Q(s)⌉`, except
        /// within rounding of an edge.
        #[test]
        fn lookup_is_the_cubic_mapping(v in 1u64..(1 << 53)) {
            let e = 63 - v.leading_zeros() as i32;
            let s = v as f64 / 2f64.powi(e) - 1.0;
            let x = octave_position(s);
            if (x - x.round()).abs() > 1e-9 {
                prop_assert_eq!(index_of(v), e * BINS_PER_OCTAVE + x.ceil() as i32);
            }
        }

        /// Any u64 lands in a bin whose representative is within 1 %.
        #[test]
        fn every_value_is_within_1pct_of_its_representative(v in 1u64..) {
            let rep = representative(index_of(v));
            prop_assert!(rep.abs_diff(v) as f64 <= 0.01 * v as f64 + 0.5, "v={} rep={}", v, rep);
        }

        /// The block-skipping walks give what the bin-by-bin definition does.
        #[test]
        fn quantile_walk_matches_the_definition(
            values in prop::collection::vec(prop_oneof![Just(0u64), 1u64..100_000_000], 1..3000),
            drop in 0usize..3000,
            qs in prop::collection::vec(0.0f64..=1.0, 1..20),
        ) {
            let mut s = sketch_of(&values);
            s.subtract(&sketch_of(&values[..drop.min(values.len() - 1)]));
            for q in qs.into_iter().chain([0.0, 0.5, 0.500001, 0.99, 1.0]) {
                prop_assert_eq!(s.quantile(q), reference_quantile(&s, q), "q={}", q);
            }
        }

        /// A window total built with adds, subtractions and reused buckets
        /// equals (and serialises like) the live buckets merged afresh.
        #[test]
        fn window_total_is_layout_independent(
            buckets in prop::collection::vec(prop::collection::vec(0u64..10_000_000, 0..60), 1..30),
        ) {
            const KEEP: usize = 4;
            let mut ring: Vec<LatencySketch> = vec![LatencySketch::new(); KEEP];
            let mut total = LatencySketch::new();
            for (k, values) in buckets.iter().enumerate() {
                let slot = &mut ring[k % KEEP];
                total.subtract(slot);
                slot.clear();
                for &v in values {
                    slot.add(v);
                    total.add(v);
                }
                let mut fresh = LatencySketch::new();
                buckets[k.saturating_sub(KEEP - 1)..=k]
                    .iter()
                    .for_each(|b| fresh.merge(&sketch_of(b)));
                prop_assert_eq!(&total, &fresh);
                prop_assert_eq!(json(&total), json(&fresh));
                prop_assert_eq!(json(slot), json(&sketch_of(values)));
                for q in [0.0, 0.5, 0.99, 1.0] {
                    prop_assert_eq!(total.quantile(q), fresh.quantile(q));
                }
            }
        }
    }
}

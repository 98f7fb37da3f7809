//! Sliding windows in event time with O(1) cost per event.
//!
//! A window of length `W` is cut into `N` buckets of width `w = ceil(W / N)`
//! (N ≤ 64). Bucket `i` lives in slot `i mod N` of a [`Ring`], which stores
//! only the slots holding data while they are few and turns into a plain
//! array once they are many; recording a sample is one slot and the running
//! total, with no search. A bit mask says which slots hold data, so a bucket
//! sliding out costs one subtraction from the total only if it held
//! anything, and a quiet agent's jump across the whole window is one mask
//! test per live bucket.
//!
//! Buckets count in `u32` and totals in `u64` ([`Bucket::Total`]): a bucket
//! of one agent would need 4·10⁹ events to wrap, a day's total could not.
//!
//! **Granularity and error.** The window ending at time `t` holds the
//! buckets with index in `(idx(t) − N, idx(t)]`, i.e. the events with time in
//! `[(idx(t) − N + 1)·w, t]`. That span is between `W − w` and `W` long: an
//! event leaves the window at most one bucket width (`W / N`) early. With the
//! defaults this is 10 s for the 5 min breaker window and 30 min for the 24 h
//! budget window (`N` = 30 and 48); see [`BREAKER_BUCKETS`] and
//! [`BUDGET_BUCKETS`].
//!
//! The window's end is the latest time it has been advanced to (an event's
//! time or a query's "now"); events older than the window are refused as late.

use super::ring::{mask, Ring};
use crate::event::TimestampMs;

/// Buckets in the breaker window (5 min → 10 s buckets).
pub const BREAKER_BUCKETS: u32 = 30;
/// Buckets in the budget/metrics window (24 h → 30 min buckets).
pub const BUDGET_BUCKETS: u32 = 48;
/// Buckets in each burn-rate window (1 h → 2 min buckets).
pub const BURN_BUCKETS: u32 = 30;
/// Buckets holding latency sketches over the budget window (24 h → 2 h).
/// Fewer than for counts because a sketch is far larger than a counter.
pub const SKETCH_BUCKETS: u32 = 12;
/// The ring's live-bucket mask is one `u64`.
pub const MAX_BUCKETS: u32 = 64;

/// What one bucket holds, and how it leaves the window's running total.
pub trait Bucket: Default {
    /// The running total over the window's buckets.
    type Total: Default;
    /// Removes this bucket, previously folded into `total`, from it.
    fn expire_from(&self, total: &mut Self::Total);
    /// Empties the bucket for reuse. Keeps allocations: a slot is reused
    /// every `W`, so freeing and reallocating would be pure churn.
    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A sliding window of `B` buckets with a running total.
///
/// ```
/// use breakwater::engine::window::{Bucket, SlidingWindow};
/// #[derive(Default, Clone, Debug, PartialEq)]
/// struct Count(u64);
/// impl Bucket for Count {
///     type Total = Count;
///     fn expire_from(&self, t: &mut Count) { t.0 -= self.0 }
/// }
///
/// let mut w: SlidingWindow<Count> = SlidingWindow::new(60_000, 6); // 1 min, 10 s buckets
/// w.record(0, |b, t| { b.0 += 1; t.0 += 1 });
/// w.record(30_000, |b, t| { b.0 += 1; t.0 += 1 });
/// assert_eq!(w.total().0, 2);
/// w.advance(65_000); // the bucket [0, 10 s) has slid out
/// assert_eq!(w.total().0, 1);
/// ```
#[derive(Debug, Clone)]
pub struct SlidingWindow<B: Bucket> {
    width_ms: i64,
    /// Index of the newest bucket the window has reached; `i64::MIN` before any.
    head: i64,
    /// `head mod N`: a sample in the head bucket (the common case for a
    /// busy agent) finds its slot with no division.
    head_slot: u32,
    /// Where the head bucket's time span ends (exclusive), so that "is `t`
    /// in the head?" takes no multiplication; `i64::MIN` (nothing is in
    /// the head) before any head, or if the end is past `i64::MAX`.
    head_end: TimestampMs,
    /// Bucket `i` lives in slot `i mod N`; a slot is live ⇔ it holds data
    /// for a bucket inside the window.
    ring: Ring<B>,
    total: B::Total,
}

impl<B: Bucket + PartialEq> PartialEq for SlidingWindow<B>
where
    B::Total: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.width_ms == other.width_ms
            && self.head == other.head
            && self.ring == other.ring
            && self.total == other.total
    }
}

impl<B: Bucket> SlidingWindow<B> {
    /// A window of `window_ms` cut into `buckets` buckets (clamped to 1..=64).
    pub fn new(window_ms: i64, buckets: u32) -> Self {
        let n = buckets.clamp(1, MAX_BUCKETS) as i64;
        let width_ms = ((window_ms.max(1) + n - 1) / n).max(1);
        SlidingWindow {
            width_ms,
            head: i64::MIN,
            head_slot: 0,
            head_end: TimestampMs::MIN,
            ring: Ring::new(n as u32),
            total: B::Total::default(),
        }
    }

    fn n(&self) -> i64 {
        i64::from(self.ring.slots())
    }

    /// The running total over the buckets in the window.
    pub fn total(&self) -> &B::Total {
        &self.total
    }

    /// Width of one bucket: the window's granularity.
    pub fn bucket_width_ms(&self) -> i64 {
        self.width_ms
    }

    /// Length the window was built for (`buckets × width`).
    pub fn length_ms(&self) -> i64 {
        self.width_ms * self.n()
    }

    /// Start of the oldest time still inside the window, if it has reached any time.
    pub fn start_ms(&self) -> Option<TimestampMs> {
        (self.head != i64::MIN).then(|| (self.head - self.n() + 1) * self.width_ms)
    }

    /// Moves the window's end to `now` (never backwards), dropping buckets
    /// that slid out.
    pub fn advance(&mut self, now: TimestampMs) {
        if self.in_head(now) {
            return;
        }
        let idx = now.div_euclid(self.width_ms);
        if idx > self.head {
            self.advance_to_bucket(idx);
        }
    }

    /// Whether `t` falls in the head bucket `[end − width, end)`. Both
    /// tests are exact: `end − t` is positive once `t < end`. (The start,
    /// `head × width`, may be below `i64::MIN`; the end, found from some
    /// `t' ≥ head × width`, can pass `i64::MAX` only by less than a width,
    /// and then the sentinel sends every `t` down the dividing path.)
    #[inline]
    fn in_head(&self, t: TimestampMs) -> bool {
        t < self.head_end && (self.head_end.wrapping_sub(t) as u64) <= self.width_ms as u64
    }

    /// Makes bucket `idx` (slot `slot`) the head.
    #[inline]
    fn set_head(&mut self, idx: i64, slot: u32) {
        self.head = idx;
        self.head_slot = slot;
        // The end alone: the start may be below i64::MIN while it is not.
        self.head_end = match idx {
            i64::MIN => TimestampMs::MIN,
            _ => idx
                .checked_add(1)
                .and_then(|i| i.checked_mul(self.width_ms))
                .unwrap_or(TimestampMs::MIN),
        };
    }

    /// Bucket index and slot of time `t`.
    #[inline]
    fn locate(&self, t: TimestampMs) -> (i64, usize) {
        if self.in_head(t) {
            return (self.head, self.head_slot as usize);
        }
        let idx = t.div_euclid(self.width_ms);
        (idx, self.slot_of(idx) as usize)
    }

    /// `idx mod N`. Near the head (the usual case: a later bucket of the
    /// same window) it follows from the head's slot with no division; a
    /// division costs tens of cycles and this runs for every window of
    /// every event.
    #[inline]
    fn slot_of(&self, idx: i64) -> u32 {
        let n = self.n();
        let slot = match idx.checked_sub(self.head) {
            Some(d) if self.head != i64::MIN && d > -n && d < n => {
                let s = i64::from(self.head_slot) + d;
                if s >= n {
                    s - n
                } else if s < 0 {
                    s + n
                } else {
                    s
                }
            }
            _ => idx.rem_euclid(n),
        };
        slot as u32
    }

    fn advance_to_bucket(&mut self, idx: i64) {
        let old = self.head;
        let all = old == i64::MIN || idx - old >= self.n();
        let bits = self.expiring(idx);
        self.set_head(idx, self.slot_of(idx));
        if self.ring.live() == 0 {
            return;
        }
        self.expire(bits);
        if all || self.ring.live() == 0 {
            // Nothing left: reset exactly, so no rounding residue can survive.
            self.total = B::Total::default();
        }
    }

    /// The live slots that moving the head to `idx` (> head) expires.
    fn expiring(&self, idx: i64) -> u64 {
        let n = self.n();
        if self.head == i64::MIN || idx - self.head >= n {
            return self.ring.live();
        }
        // Buckets head+1..=idx take the slots of head−n+1..=idx−n, which
        // expire: `steps` (< n) consecutive slots from `first`, wrapping at n.
        let steps = (idx - self.head) as u32;
        let n = n as u32;
        let first = if self.head_slot + 1 == n {
            0
        } else {
            self.head_slot + 1
        };
        let range = if first + steps <= n {
            ((1u64 << steps) - 1) << first
        } else {
            (mask(n) & !((1u64 << first) - 1)) | ((1u64 << (first + steps - n)) - 1)
        };
        self.ring.live() & range
    }

    fn expire(&mut self, bits: u64) {
        let total = &mut self.total;
        self.ring.expire(bits, |b| b.expire_from(total));
    }

    /// Adds a sample at time `t`: `apply` runs on the sample's bucket and on
    /// the running total. Returns `false` (and changes nothing) when `t` is
    /// older than the window.
    pub fn record(&mut self, t: TimestampMs, apply: impl FnOnce(&mut B, &mut B::Total)) -> bool {
        let (idx, s) = self.locate(t);
        if idx > self.head {
            self.advance_to_bucket(idx);
        } else if self.slid_out(idx) {
            return false;
        }
        apply(self.ring.entry(s as u32), &mut self.total);
        true
    }

    /// Starts loading the slot a sample at `t` would land in (batch path).
    /// Not the buckets a roll would expire: finding them cost more
    /// instructions than their misses (A/B at 10k agents, 2026-11-29).
    pub(crate) fn prefetch(&self, t: TimestampMs) {
        if self.ring.prefetch_small() {
            return;
        }
        let (_, s) = self.locate(t);
        self.ring.prefetch(s as u32);
    }

    /// The bucket a sample at `t` would land in, if it already holds data
    /// (batch path: its heap parts can then be fetched ahead).
    #[inline]
    pub(crate) fn peek(&self, t: TimestampMs) -> Option<&B> {
        let (idx, s) = self.locate(t);
        if idx > self.head || self.slid_out(idx) {
            return None;
        }
        self.ring.get(s as u32)
    }

    /// Whether bucket `idx`, at or before the head, has slid out of the
    /// window. Saturating: with 1 ms buckets the head can sit within `n`
    /// of `i64::MIN`.
    #[inline]
    fn slid_out(&self, idx: i64) -> bool {
        idx <= self.head.saturating_sub(self.n())
    }

    /// The buckets holding data, oldest first, with their start times.
    pub fn buckets(&self) -> impl Iterator<Item = (TimestampMs, &B)> {
        let n = self.n();
        let first = if self.head == i64::MIN {
            0
        } else {
            self.head - n + 1
        };
        let last = if self.ring.live() == 0 {
            first - 1
        } else {
            self.head
        };
        (first..=last).filter_map(move |i| {
            let s = i.rem_euclid(n) as u32;
            // Saturating: at the very start of the i64 range a bucket can
            // begin before i64::MIN; it is reported as starting there.
            self.ring
                .get(s)
                .map(|b| (i.saturating_mul(self.width_ms), b))
        })
    }

    /// When the oldest bucket holding data will slide out: the next time the
    /// total changes with no new sample. `None` when empty.
    pub fn next_expiry(&self) -> Option<TimestampMs> {
        let live = self.ring.live();
        if live == 0 {
            return None;
        }
        let n = self.n();
        // Slots from (head + 1) mod n upwards hold the oldest buckets.
        let p0 = (self.head + 1).rem_euclid(n) as u32;
        let newer = live & !((1u64 << p0) - 1);
        let age = if newer != 0 {
            newer.trailing_zeros() as i64 - p0 as i64
        } else {
            n - p0 as i64 + live.trailing_zeros() as i64
        };
        let oldest = self.head - n + 1 + age;
        Some((oldest + n).saturating_mul(self.width_ms))
    }

    /// Empties the window (the breaker's "fresh window" after it closes).
    pub fn clear(&mut self) {
        self.expire(self.ring.live());
        self.total = B::Total::default();
    }

    /// Whether the window currently holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.ring.live() == 0
    }

    /// Number of buckets holding data.
    pub fn stored_buckets(&self) -> usize {
        self.ring.live().count_ones() as usize
    }

    /// Index of the newest bucket the window has reached, if any (state codec).
    pub(crate) fn head(&self) -> Option<i64> {
        (self.head != i64::MIN).then_some(self.head)
    }

    /// The buckets holding data, newest first, each with its age: how many
    /// buckets it is older than the head (state codec; `0..N`).
    pub(crate) fn live(&self) -> Live<'_, B> {
        let n = self.ring.slots();
        let live = self.ring.live();
        let h = if self.head == i64::MIN {
            0
        } else {
            self.head.rem_euclid(n as i64) as u32
        };
        // Slots h, h−1, …, 0 hold ages 0..=h; slots n−1, …, h+1 the older
        // ones: walking each half from its top bit down lists ages in order.
        let low = mask(h + 1);
        Live {
            ring: &self.ring,
            h,
            n,
            low: live & low,
            high: live & !low,
        }
    }

    /// Rebuilds a window from what [`SlidingWindow::live`] listed (state
    /// codec); its total is left empty for [`SlidingWindow::set_total`].
    /// `count` is how many buckets the listing says it holds (only a
    /// capacity). `None` if an age is out of range or repeated, or there
    /// are buckets but no head.
    pub(crate) fn from_live(
        window_ms: i64,
        buckets: u32,
        head: Option<i64>,
        count: usize,
        live: impl IntoIterator<Item = (u32, B)>,
    ) -> Option<Self> {
        let mut w = Self::new(window_ms, buckets);
        let n = w.n();
        w.set_head(
            head.unwrap_or(i64::MIN),
            head.map_or(0, |h| h.rem_euclid(n) as u32),
        );
        // Read straight into what becomes the ring's block, with each
        // bucket's slot beside it; then put in slot order in place.
        let mut slots = [0u8; MAX_BUCKETS as usize];
        let mut items: Vec<B> = Vec::with_capacity(count.min(n as usize));
        for (age, bucket) in live {
            let head = head?;
            // More buckets than slots: some slot would repeat.
            if i64::from(age) >= n || items.len() == n as usize {
                return None;
            }
            slots[items.len()] = (head - i64::from(age)).rem_euclid(n) as u8;
            items.push(bucket);
        }
        let k = items.len();
        let slots = &mut slots[..k];
        // Newest first is descending slots with one wrap: reversed and
        // rotated to the lowest slot, ascending (sorting moves more).
        slots.reverse();
        items.reverse();
        let low = (1..k).find(|&i| slots[i] < slots[i - 1]).unwrap_or(0);
        slots.rotate_left(low);
        items.rotate_left(low);
        if slots.windows(2).any(|p| p[0] >= p[1]) {
            return None; // a repeated age, or not in the order written
        }
        let live = slots.iter().fold(0u64, |m, &s| m | 1 << s);
        w.ring = Ring::from_sorted(n as u32, live, items);
        Some(w)
    }

    /// Sets the running total of a window rebuilt by [`SlidingWindow::from_live`].
    pub(crate) fn set_total(&mut self, total: B::Total) {
        self.total = total;
    }
}

/// Live buckets of a window, newest first, with their ages (see [`SlidingWindow::live`]).
pub(crate) struct Live<'a, B> {
    ring: &'a Ring<B>,
    h: u32,
    n: u32,
    low: u64,
    high: u64,
}

impl<'a, B: Bucket> Iterator for Live<'a, B> {
    type Item = (u32, &'a B);

    fn next(&mut self) -> Option<Self::Item> {
        let (bits, wrap) = if self.low != 0 {
            (&mut self.low, 0)
        } else if self.high != 0 {
            (&mut self.high, self.n)
        } else {
            return None;
        };
        let s = 63 - bits.leading_zeros();
        *bits &= !(1u64 << s);
        let bucket = self.ring.get(s).expect("listed slots are live");
        Some((self.h + wrap - s, bucket))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.low.count_ones() + self.high.count_ones()) as usize;
        (left, Some(left))
    }
}

impl<B: Bucket> ExactSizeIterator for Live<'_, B> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, Clone, PartialEq)]
    struct N(u64);
    impl Bucket for N {
        type Total = N;
        fn expire_from(&self, t: &mut N) {
            t.0 -= self.0;
        }
    }

    fn one(w: &mut SlidingWindow<N>, t: TimestampMs) -> bool {
        w.record(t, |b, tot| {
            b.0 += 1;
            tot.0 += 1
        })
    }

    #[test]
    fn slides_out_after_one_window() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(300_000, 30);
        assert_eq!(w.bucket_width_ms(), 10_000);
        assert!(one(&mut w, 1_000));
        w.advance(299_999);
        assert_eq!(w.total().0, 1, "still inside: bucket 0 is the oldest kept");
        w.advance(300_000);
        assert_eq!(w.total().0, 0);
        assert!(w.is_empty());
    }

    #[test]
    fn late_events_are_refused_and_out_of_order_ones_land_in_their_bucket() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(60_000, 6);
        one(&mut w, 100_000);
        assert!(!one(&mut w, 30_000), "older than the window");
        assert!(one(&mut w, 55_000), "older but inside");
        assert_eq!(w.total().0, 2);
        assert_eq!(w.stored_buckets(), 2);
        let starts: Vec<_> = w.buckets().map(|(t, _)| t).collect();
        assert_eq!(starts, vec![50_000, 100_000]);
    }

    #[test]
    fn never_moves_backwards() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(60_000, 6);
        one(&mut w, 100_000);
        w.advance(10);
        assert_eq!(w.total().0, 1);
        assert_eq!(w.start_ms(), Some(50_000));
    }

    #[test]
    fn next_expiry_is_when_the_oldest_live_bucket_slides_out() {
        for n in [7u32, 64] {
            let width = 1000;
            let mut w: SlidingWindow<N> = SlidingWindow::new(n as i64 * width, n);
            assert_eq!(w.next_expiry(), None);
            for t in [3, 5, n as i64 + 4, 3 * n as i64] {
                one(&mut w, t * width + 10);
                let oldest = w.buckets().next().unwrap().0;
                let expiry = w.next_expiry().unwrap();
                assert_eq!(expiry, oldest + n as i64 * width, "n={n} t={t}");
                let before = w.total().0;
                w.advance(expiry - 1);
                assert_eq!(w.total().0, before);
                w.advance(expiry);
                assert!(w.total().0 < before);
            }
        }
    }

    #[test]
    fn live_buckets_list_newest_first_and_rebuild_the_window() {
        for n in [1u32, 7, 64] {
            let mut w: SlidingWindow<N> = SlidingWindow::new(n as i64 * 1000, n);
            let empty = SlidingWindow::from_live(n as i64 * 1000, n, w.head(), 0, []);
            assert_eq!(empty.as_ref(), Some(&w));
            for t in [3, 5, 6, n as i64 + 4, 2 * n as i64 + 1, 3 * n as i64] {
                one(&mut w, t * 1000 + 10);
                let live: Vec<(u32, u64)> = w.live().map(|(age, b)| (age, b.0)).collect();
                let mut expect: Vec<(u32, u64)> = w
                    .buckets()
                    .map(|(start, b)| ((w.head - start / 1000) as u32, b.0))
                    .collect();
                expect.reverse();
                assert_eq!(live, expect, "n={n} t={t}");
                assert_eq!(w.live().len(), w.stored_buckets());
                let copy = live.iter().map(|&(age, c)| (age, N(c)));
                let mut back =
                    SlidingWindow::from_live(n as i64 * 1000, n, w.head(), live.len(), copy)
                        .unwrap();
                back.set_total(N(w.total.0));
                assert_eq!(back, w, "n={n} t={t}");
            }
            let ms = n as i64 * 1000;
            let repeated = [(0, N(1)), (0, N(1))];
            assert!(SlidingWindow::from_live(ms, n, Some(9), 2, repeated).is_none());
            assert!(SlidingWindow::from_live(ms, n, Some(9), 1, [(n, N(1))]).is_none());
            assert!(SlidingWindow::from_live(ms, n, None, 1, [(0, N(1))]).is_none());
            // Every slot once, then one more: a slot would repeat.
            let over = (0..=n).map(|age| (age.min(n - 1), N(1)));
            assert!(SlidingWindow::from_live(ms, n, Some(9), 0, over).is_none());
        }
    }

    #[test]
    fn partial_slides_wrap_around_the_ring() {
        // 64 buckets (the whole mask) and 7 (wrapping at a non-power of two).
        for n in [7u32, 64] {
            let mut w: SlidingWindow<N> = SlidingWindow::new(n as i64 * 1000, n);
            for t in 0..(3 * n as i64) {
                one(&mut w, t * 1000);
                let expect = (t + 1).min(n as i64) as u64;
                assert_eq!(w.total().0, expect, "n={n} t={t}");
                assert_eq!(w.stored_buckets() as u64, expect);
            }
            w.advance((3 * n as i64 + 2) * 1000);
            assert_eq!(
                w.total().0,
                n as u64 - 3,
                "n={n}: two buckets of time later"
            );
        }
    }

    /// The head test has no multiplication; near the ends of the `i64`
    /// range the head's start or end does not fit, and every sample must
    /// still land in the bucket `t.div_euclid(width)` says, in order or not.
    #[test]
    fn extreme_timestamps_land_in_their_bucket() {
        // Not 1 ms buckets: at i64::MIN their index is the "no head" mark.
        for width in [2i64, 7, 1000, 1 << 40] {
            let n = 5;
            let starts = [
                i64::MIN,
                i64::MIN + 1,
                i64::MIN + width,
                -1,
                0,
                i64::MAX - width,
                i64::MAX - 1,
            ];
            for &start in &starts {
                let mut w: SlidingWindow<N> = SlidingWindow::new(n * width, n as u32);
                let mut kept: Vec<TimestampMs> = Vec::new();
                let mut head: Option<i64> = None;
                let steps = [
                    0,
                    0,
                    1,
                    width - 1,
                    width,
                    0,
                    3 * width,
                    2 * width,
                    i64::MAX,
                    i64::MAX - width,
                ];
                for step in steps {
                    let t = start.saturating_add(step);
                    let idx = t.div_euclid(width);
                    let newest = head.map_or(idx, |h| h.max(idx));
                    let inside = |k: &TimestampMs| {
                        i128::from(k.div_euclid(width)) > i128::from(newest) - i128::from(n)
                    };
                    let expect = inside(&t);
                    assert_eq!(
                        one(&mut w, t),
                        expect,
                        "width {width}, start {start}, t {t}"
                    );
                    head = Some(newest);
                    if expect {
                        kept.push(t);
                    }
                    kept.retain(inside);
                    kept.sort_unstable();
                    assert_eq!(
                        w.total().0,
                        kept.len() as u64,
                        "width {width}, start {start}, t {t}"
                    );
                    // Counts per bucket, oldest first (a start below
                    // i64::MIN is not representable, so not compared).
                    let mut per_bucket: Vec<(i64, u64)> = Vec::new();
                    for k in &kept {
                        let b = k.div_euclid(width);
                        match per_bucket.last_mut() {
                            Some((i, c)) if *i == b => *c += 1,
                            _ => per_bucket.push((b, 1)),
                        }
                    }
                    let per_bucket: Vec<u64> = per_bucket.into_iter().map(|(_, c)| c).collect();
                    let got: Vec<u64> = w.buckets().map(|(_, b)| b.0).collect();
                    assert_eq!(got, per_bucket, "width {width}, start {start}, t {t}");
                }
            }
        }
    }
}

//! Sliding windows in event time with O(1) amortised cost per event.
//!
//! A window of length `W` is cut into `N` buckets of width `w = ceil(W / N)`.
//! Only buckets that hold data are stored (a `VecDeque` ordered by bucket
//! index), so a quiet agent costs one or two buckets, never `N`. A running
//! total is kept beside them: adding a sample touches one bucket and the
//! total; a bucket that slides out is subtracted from the total once.
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

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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

/// An aggregate that can be added to and, when a bucket expires, taken away.
pub trait Aggregate: Default {
    /// Removes `other`, which was previously folded into `self`.
    fn subtract(&mut self, other: &Self);
}

/// A sliding window of `A` aggregates.
///
/// ```
/// use breakwater::engine::window::{SlidingWindow, Aggregate};
/// #[derive(Default, Clone, Debug, PartialEq)]
/// struct Count(u64);
/// impl Aggregate for Count { fn subtract(&mut self, o: &Self) { self.0 -= o.0 } }
///
/// let mut w: SlidingWindow<Count> = SlidingWindow::new(60_000, 6); // 1 min, 10 s buckets
/// w.record(0, |c| c.0 += 1);
/// w.record(30_000, |c| c.0 += 1);
/// assert_eq!(w.total().0, 2);
/// w.advance(65_000); // the bucket [0, 10 s) has slid out
/// assert_eq!(w.total().0, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindow<A> {
    width_ms: i64,
    buckets: u32,
    /// Index of the newest bucket the window has reached; `i64::MIN` before any.
    head: i64,
    ring: VecDeque<(i64, A)>,
    total: A,
}

impl<A: Aggregate> SlidingWindow<A> {
    /// A window of `window_ms` cut into `buckets` buckets.
    pub fn new(window_ms: i64, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        let width_ms = ((window_ms.max(1) + buckets as i64 - 1) / buckets as i64).max(1);
        SlidingWindow {
            width_ms,
            buckets,
            head: i64::MIN,
            ring: VecDeque::new(),
            total: A::default(),
        }
    }

    /// The running total over the buckets in the window.
    pub fn total(&self) -> &A {
        &self.total
    }

    /// Width of one bucket: the window's granularity.
    pub fn bucket_width_ms(&self) -> i64 {
        self.width_ms
    }

    /// Length the window was built for (`buckets × width`).
    pub fn length_ms(&self) -> i64 {
        self.width_ms * self.buckets as i64
    }

    /// Start of the oldest time still inside the window, if it has reached any time.
    pub fn start_ms(&self) -> Option<TimestampMs> {
        (self.head != i64::MIN).then(|| (self.head - self.buckets as i64 + 1) * self.width_ms)
    }

    /// Moves the window's end to `now` (never backwards), dropping buckets
    /// that slid out.
    pub fn advance(&mut self, now: TimestampMs) {
        let idx = now.div_euclid(self.width_ms);
        if idx <= self.head {
            return;
        }
        self.head = idx;
        let oldest_kept = idx - self.buckets as i64 + 1;
        while let Some((front, _)) = self.ring.front() {
            if *front >= oldest_kept {
                break;
            }
            let (_, expired) = self.ring.pop_front().expect("front exists");
            self.total.subtract(&expired);
        }
        if self.ring.is_empty() {
            // Nothing left: reset exactly, so no rounding residue can survive.
            self.total = A::default();
        }
    }

    /// Adds a sample at time `t`: `apply` runs on the sample's bucket and on
    /// the running total. Returns `false` (and changes nothing) when `t` is
    /// older than the window.
    pub fn record(&mut self, t: TimestampMs, mut apply: impl FnMut(&mut A)) -> bool {
        self.advance(t);
        let idx = t.div_euclid(self.width_ms);
        if idx <= self.head - self.buckets as i64 {
            return false;
        }
        // Events arrive nearly in order, so the bucket is almost always the last.
        let pos = self.ring.iter().rposition(|(i, _)| *i <= idx);
        match pos {
            Some(p) if self.ring[p].0 == idx => apply(&mut self.ring[p].1),
            Some(p) => {
                let mut a = A::default();
                apply(&mut a);
                self.ring.insert(p + 1, (idx, a));
            }
            None => {
                let mut a = A::default();
                apply(&mut a);
                self.ring.push_front((idx, a));
            }
        }
        apply(&mut self.total);
        true
    }

    /// The stored (non-empty) buckets, oldest first, with their start times.
    pub fn buckets(&self) -> impl Iterator<Item = (TimestampMs, &A)> {
        self.ring.iter().map(move |(i, a)| (i * self.width_ms, a))
    }

    /// Empties the window (the breaker's "fresh window" after it closes).
    pub fn clear(&mut self) {
        self.ring.clear();
        self.total = A::default();
    }

    /// Whether the window currently holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Number of stored buckets (for memory accounting).
    pub fn stored_buckets(&self) -> usize {
        self.ring.len()
    }

    /// Heap bytes held by the bucket ring itself (not by the aggregates' own heap).
    pub fn ring_heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<(i64, A)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, Clone, PartialEq)]
    struct N(u64);
    impl Aggregate for N {
        fn subtract(&mut self, o: &Self) {
            self.0 -= o.0;
        }
    }

    #[test]
    fn slides_out_after_one_window() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(300_000, 30);
        assert_eq!(w.bucket_width_ms(), 10_000);
        assert!(w.record(1_000, |n| n.0 += 1));
        w.advance(299_999);
        assert_eq!(w.total().0, 1, "still inside: bucket 0 is the oldest kept");
        w.advance(300_000);
        assert_eq!(w.total().0, 0);
        assert!(w.is_empty());
    }

    #[test]
    fn late_events_are_refused_and_out_of_order_ones_land_in_their_bucket() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(60_000, 6);
        w.record(100_000, |n| n.0 += 1);
        assert!(!w.record(30_000, |n| n.0 += 1), "older than the window");
        assert!(w.record(55_000, |n| n.0 += 1), "older but inside");
        assert_eq!(w.total().0, 2);
        assert_eq!(w.stored_buckets(), 2);
        let starts: Vec<_> = w.buckets().map(|(t, _)| t).collect();
        assert_eq!(starts, vec![50_000, 100_000]);
    }

    #[test]
    fn never_moves_backwards() {
        let mut w: SlidingWindow<N> = SlidingWindow::new(60_000, 6);
        w.record(100_000, |n| n.0 += 1);
        w.advance(10);
        assert_eq!(w.total().0, 1);
        assert_eq!(w.start_ms(), Some(50_000));
    }
}

//! The engine's timer queue: breaker cooldowns, re-evaluation of agents
//! that time alone can change, and declaration expiry.
//!
//! Entries are never removed when superseded; each agent remembers the due
//! time it currently wants per kind and the engine skips the others when they
//! pop. That keeps scheduling O(log n) with no search.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::event::TimestampMs;

/// What a timer is for. The order breaks ties at the same due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    Breaker,
    Expiry,
    Reevaluate,
}

/// A min-heap of (due, agent slot, kind): pops are in a total, deterministic order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(TimestampMs, u32, TimerKind)>>,
}

impl Timers {
    pub fn push(&mut self, due: TimestampMs, slot: u32, kind: TimerKind) {
        self.heap.push(Reverse((due, slot, kind)));
    }

    /// The earliest timer due at or before `now`, removed from the queue.
    pub fn pop_due(&mut self, now: TimestampMs) -> Option<(TimestampMs, u32, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// Due time of the earliest timer, if any (a live driver sleeps until then).
    #[allow(dead_code)]
    pub fn next_due(&self) -> Option<TimestampMs> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }
}

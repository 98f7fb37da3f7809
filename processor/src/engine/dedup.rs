//! Duplicate detection by event id (SPEC §2: "used to drop duplicates").
//!
//! Each agent remembers the hashes of its last `dedup_window` event ids
//! (default 32): enough to drop a producer's retry or a re-delivered batch,
//! at 8 bytes per remembered id. Exactness across restarts does not rest on
//! this: the consumer skips input offsets already reflected in restored state.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The recent event-id hashes of one agent, oldest overwritten first.
///
/// ```
/// use breakwater::engine::dedup::RecentIds;
/// let mut r = RecentIds::default();
/// assert!(r.insert("e-1", 2));
/// assert!(!r.insert("e-1", 2), "a repeat");
/// assert!(r.insert("e-2", 2));
/// assert!(r.insert("e-3", 2)); // evicts e-1
/// assert!(r.insert("e-1", 2));
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentIds {
    hashes: Vec<u64>,
    /// Next slot to overwrite once `hashes` is full.
    next: u32,
}

impl RecentIds {
    /// Remembers `event_id`; `false` if it was already remembered.
    pub fn insert(&mut self, event_id: &str, capacity: usize) -> bool {
        if capacity == 0 {
            return true;
        }
        let h = xxh3_64(event_id.as_bytes());
        if self.hashes.contains(&h) {
            return false;
        }
        if self.hashes.len() < capacity {
            self.hashes.push(h);
        } else {
            let i = self.next as usize % self.hashes.len();
            self.hashes[i] = h;
            self.next = ((i + 1) % self.hashes.len()) as u32;
        }
        true
    }

    pub fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
    }
}

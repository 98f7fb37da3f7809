//! Duplicate detection by event id (SPEC §2: "used to drop duplicates").
//!
//! Each agent remembers the hashes of its last `dedup_window` event ids
//! (default and maximum [`MAX_RECENT_IDS`]): enough to drop a producer's
//! retry or a re-delivered batch, at 8 bytes per remembered id. They are
//! stored inline in the agent, not behind a pointer, because every event
//! scans them. Exactness across restarts does not rest on this: the
//! consumer skips input offsets already reflected in restored state.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// Most event ids remembered per agent.
pub const MAX_RECENT_IDS: usize = 32;

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
    // pub(crate) for the state codec (`engine::state`).
    pub(crate) hashes: [u64; MAX_RECENT_IDS],
    pub(crate) len: u8,
    /// Next slot to overwrite once `len` reaches the capacity.
    pub(crate) next: u8,
}

impl RecentIds {
    /// Remembers `event_id`, keeping at most `capacity` (≤ 32) ids; `false`
    /// if it was already remembered.
    pub fn insert(&mut self, event_id: &str, capacity: usize) -> bool {
        let capacity = capacity.min(MAX_RECENT_IDS);
        if capacity == 0 {
            return true;
        }
        let h = xxh3_64(event_id.as_bytes());
        let len = usize::from(self.len);
        if self.hashes[..len].contains(&h) {
            return false;
        }
        if len < capacity {
            self.hashes[len] = h;
            self.len += 1;
        } else {
            // Wrapping by comparison, not `%`: a division per event costs
            // tens of cycles. `next` is below `len` unless restored state
            // says otherwise, and then the oldest slot is 0.
            let i = if usize::from(self.next) < len {
                usize::from(self.next)
            } else {
                0
            };
            self.hashes[i] = h;
            self.next = if i + 1 < len { i as u8 + 1 } else { 0 };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_id_is_forgotten_first_round_and_round() {
        let mut r = RecentIds::default();
        for i in 0..10 {
            assert!(r.insert(&format!("e{i}"), 3), "e{i} is new");
            // After each insert the last three ids (and only they) are known.
            for j in 0..=i {
                let known = j + 3 > i;
                let mut probe = r.clone();
                assert_eq!(!probe.insert(&format!("e{j}"), 3), known, "e{j} after e{i}");
            }
        }
    }

    #[test]
    fn a_restored_next_past_the_end_overwrites_slot_zero() {
        let mut r = RecentIds::default();
        for i in 0..3 {
            r.insert(&format!("e{i}"), 3);
        }
        r.next = 200;
        assert!(r.insert("e3", 3));
        assert_eq!(r.next, 1);
        assert!(r.insert("e0", 3), "e0 was in slot 0, overwritten");
        assert!(!r.insert("e2", 3), "e2 is still remembered");
    }
}

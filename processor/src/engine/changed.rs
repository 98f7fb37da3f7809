//! Which agents changed since the last periodic snapshot, without a walk
//! over the fleet: a checkpoint of a million mostly idle agents would
//! otherwise read every agent's changed mark — a cache miss each, ~0.1 s
//! of the job thread every `snapshot_interval` — to find the few that
//! changed.

/// Slots marked since the last [`Changed::take`], each once.
///
/// ```text
/// let mut c = Changed::default();
/// c.mark(7);
/// c.mark(2);
/// c.mark(7);
/// assert_eq!(c.take(), [2, 7]);
/// assert!(c.take().is_empty());
/// ```
#[derive(Debug, Default, Clone)]
pub(crate) struct Changed {
    /// Bit `i` set ⇔ slot `i` is in `slots`.
    listed: Vec<u64>,
    slots: Vec<u32>,
}

impl Changed {
    /// Notes that slot `i` changed.
    #[inline]
    pub fn mark(&mut self, i: usize) {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if word >= self.listed.len() {
            self.listed.resize(word + 1, 0);
        }
        if self.listed[word] & bit == 0 {
            self.listed[word] |= bit;
            self.slots.push(i as u32);
        }
    }

    /// Whether slot `i` was marked since the last `take`.
    #[cfg(any(test, debug_assertions))]
    pub fn contains(&self, i: usize) -> bool {
        self.listed
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// The marked slots in slot (first-seen) order, and a fresh start.
    pub fn take(&mut self) -> Vec<usize> {
        let mut slots: Vec<usize> = self.slots.drain(..).map(|s| s as usize).collect();
        slots.sort_unstable();
        for &i in &slots {
            self.listed[i / 64] &= !(1u64 << (i % 64));
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_once_in_slot_order_and_starts_afresh() {
        let mut c = Changed::default();
        for i in [700, 3, 64, 3, 700, 0] {
            c.mark(i);
        }
        assert!(c.contains(64) && !c.contains(65));
        assert_eq!(c.take(), [0, 3, 64, 700]);
        assert!(!c.contains(700));
        assert!(c.take().is_empty());
        c.mark(5);
        assert_eq!(c.take(), [5]);
    }
}

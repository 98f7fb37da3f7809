//! The bucket store behind a [`SlidingWindow`](super::window::SlidingWindow):
//! sparse while few of its slots hold data, dense once many do.
//!
//! Most agents of a big fleet are quiet: at 20 tasks a day an agent's 24 h
//! window has data in ~17 of its 48 slots and a 5 min window in at most
//! one. A dense ring would hold every slot anyway (3 KB for the budget
//! window alone), so a million quiet agents would need gigabytes for empty
//! buckets. Here the store keeps only the live buckets, in slot order, and
//! finds slot `s` by counting the live bits below it (one `popcnt`). A busy
//! window, where inserting into the middle would move many buckets, turns
//! dense — bucket `s` at index `s`, as a plain ring — once more than half
//! its slots are live, and gives its memory back when it empties.
//!
//! Both forms hold the same buckets, so a window behaves identically in
//! either: the form is invisible outside this module.

use super::window::Bucket;

/// A ring whose slots all fit in this many bytes is dense from its first
/// bucket and keeps its block when it empties: a burn-rate window of
/// counters (30 × 8 B). Sparse, its buckets would move on every roll of a
/// quiet agent's short windows (one out, one in, each a `memmove`), and an
/// emptied 5 min window would free and reallocate its block at nearly
/// every event; a quiet agent that stays quiet goes dormant instead and
/// keeps no ring at all.
const SMALL_RING_BYTES: usize = 256;

/// The bits of slots `0..n` (n ≤ 64).
pub(crate) fn mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Buckets of one window, by slot.
///
/// Invariant: dense ⇔ `buckets.len() == n` (a dead slot holds a reset
/// bucket); otherwise sparse: `buckets.len() == live.count_ones()` and
/// `buckets[i]` belongs to the `i`-th live slot.
#[derive(Debug, Clone)]
pub(crate) struct Ring<B> {
    /// Bit `s` set ⇔ slot `s` holds data.
    live: u64,
    n: u8,
    /// A `Vec`, not a thinner vector with its length on the heap: the
    /// length says which form the ring is in, and reading it must not wait
    /// for the heap block that the batch path is still prefetching.
    buckets: Vec<B>,
}

impl<B: Bucket> Ring<B> {
    /// An empty store for `n` slots (1..=64); allocates nothing.
    pub fn new(n: u32) -> Self {
        assert!((1..=64).contains(&n), "a ring has 1 to 64 slots, not {n}");
        Ring {
            live: 0,
            n: n as u8,
            buckets: Vec::new(),
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        u32::from(self.n)
    }

    /// The slots holding data, as a bit mask.
    pub fn live(&self) -> u64 {
        self.live
    }

    fn dense(&self) -> bool {
        self.buckets.len() == usize::from(self.n)
    }

    /// Whether this ring is small enough to be dense from its first bucket
    /// and to keep its block when it empties (see [`SMALL_RING_BYTES`]).
    #[inline]
    pub(crate) fn small(&self) -> bool {
        std::mem::size_of::<B>() * usize::from(self.n) <= SMALL_RING_BYTES
    }

    /// Index in `buckets` of live slot `s` (or, sparse, where it would go).
    #[inline]
    fn index(&self, s: u32) -> usize {
        if self.dense() {
            s as usize
        } else {
            (self.live & ((1u64 << s) - 1)).count_ones() as usize
        }
    }

    /// The bucket of slot `s`, if it holds data.
    #[inline]
    pub fn get(&self, s: u32) -> Option<&B> {
        (self.live & (1 << s) != 0).then(|| &self.buckets[self.index(s)])
    }

    /// The bucket of slot `s`, made live (empty) if it was not.
    #[inline]
    pub fn entry(&mut self, s: u32) -> &mut B {
        let i = self.index(s);
        if self.live & (1 << s) == 0 {
            if !self.dense() {
                return self.insert(s, i);
            }
            self.live |= 1 << s;
        }
        &mut self.buckets[i]
    }

    fn insert(&mut self, s: u32, i: usize) -> &mut B {
        let len = self.buckets.len();
        if self.dense_for(len + 1) {
            self.densify();
            self.live |= 1 << s;
            return &mut self.buckets[s as usize];
        }
        if len == self.buckets.capacity() {
            // Grow by a quarter (at least 2): doubling would leave a quiet
            // agent's window with up to twice the buckets it uses.
            self.buckets.reserve_exact((len / 4).max(2));
        }
        self.buckets.insert(i, B::default());
        self.live |= 1 << s;
        &mut self.buckets[i]
    }

    /// Whether `k` (> 0) live buckets are held dense: more than half the
    /// slots, or any in a [small](Self::small) ring.
    #[inline]
    fn dense_for(&self, k: usize) -> bool {
        k > usize::from(self.n) / 2 || self.small()
    }

    /// A ring holding `buckets` at the slots set in `live`, one bucket per
    /// live slot in ascending slot order (state codec: the decoded buckets
    /// become the ring's own block, not a copy of it).
    pub fn from_sorted(n: u32, live: u64, buckets: Vec<B>) -> Self {
        let mut ring = Ring::new(n);
        assert!(
            live & !mask(n) == 0 && live.count_ones() as usize == buckets.len(),
            "one bucket per live slot of {n}"
        );
        ring.live = live;
        ring.buckets = buckets;
        if live != 0 && ring.dense_for(ring.buckets.len()) {
            ring.densify();
        }
        ring
    }

    fn densify(&mut self) {
        let n = usize::from(self.n);
        let mut dense: Vec<B> = Vec::with_capacity(n);
        let mut sparse = std::mem::take(&mut self.buckets).into_iter();
        for s in 0..n {
            dense.push(if self.live & (1 << s) != 0 {
                sparse.next().expect("one bucket per live slot")
            } else {
                B::default()
            });
        }
        self.buckets = dense;
    }

    /// Takes the live slots in `bits` out: `gone` sees each bucket first.
    pub fn expire(&mut self, bits: u64, mut gone: impl FnMut(&B)) {
        let bits = bits & self.live;
        if bits == 0 {
            return;
        }
        if self.dense() {
            let mut left = bits;
            while left != 0 {
                let s = left.trailing_zeros() as usize;
                left &= left - 1;
                gone(&self.buckets[s]);
                self.buckets[s].reset();
            }
        } else if bits.count_ones() == 1 {
            // The usual roll of a quiet window: one bucket out.
            let b = self.buckets.remove(self.index(bits.trailing_zeros()));
            gone(&b);
        } else {
            let mut slots = self.live;
            self.buckets.retain(|b| {
                let s = slots.trailing_zeros();
                slots &= slots - 1;
                let expired = bits & (1 << s) != 0;
                if expired {
                    gone(b);
                }
                !expired
            });
        }
        self.live &= !bits;
        if self.live == 0 && !self.small() && (self.dense() || self.buckets.capacity() > 4) {
            // An emptied window gives its memory back: an agent gone quiet
            // should not keep a busy day's buckets.
            self.buckets = Vec::new();
        }
    }

    /// Starts loading the whole block of a [small](Self::small) ring
    /// (batch path): a few lines, fewer instructions than finding the slot.
    /// `false` (nothing done) for other rings.
    #[inline]
    pub(crate) fn prefetch_small(&self) -> bool {
        if !self.small() {
            return false;
        }
        super::prefetch::prefetch_all(&self.buckets[..]);
        true
    }

    /// Starts loading slot `s`'s bucket, or where it would be inserted.
    #[inline]
    pub(crate) fn prefetch(&self, s: u32) {
        let i = self.index(s).min(self.buckets.len().saturating_sub(1));
        if let Some(b) = self.buckets.get(i) {
            super::prefetch::prefetch(b);
        }
    }

    /// Heap bytes held (the buckets' own allocations not included).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<B>()
    }
}

impl<B: PartialEq> PartialEq for Ring<B> {
    /// Same slots, same live buckets, whichever form each side is in.
    fn eq(&self, other: &Self) -> bool {
        if self.n != other.n || self.live != other.live {
            return false;
        }
        let mut bits = self.live;
        let (mut i, mut j) = (0, 0);
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let a = if self.buckets.len() == usize::from(self.n) {
                s
            } else {
                i
            };
            let b = if other.buckets.len() == usize::from(other.n) {
                s
            } else {
                j
            };
            if self.buckets[a] != other.buckets[b] {
                return false;
            }
            i += 1;
            j += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    struct C(u32);
    impl Bucket for C {
        type Total = ();
        fn expire_from(&self, _: &mut ()) {}
    }

    proptest! {
        /// Any sequence of writes and expiries leaves the same live buckets
        /// as a plain array of slots, through every sparse/dense change.
        #[test]
        fn behaves_as_a_plain_array(
            n in 1u32..=64,
            ops in prop::collection::vec((any::<bool>(), 0u32..64, any::<u64>()), 0..300),
        ) {
            let mut ring: Ring<C> = Ring::new(n);
            let mut model = vec![None::<C>; n as usize];
            for (write, s, bits) in ops {
                let s = s % n;
                if write {
                    ring.entry(s).0 += 1;
                    model[s as usize].get_or_insert(C(0)).0 += 1;
                } else {
                    let mut seen = Vec::new();
                    ring.expire(bits, |b| seen.push(*b));
                    let mut expect = Vec::new();
                    for (i, m) in model.iter_mut().enumerate() {
                        if bits & (1 << i) != 0 {
                            expect.extend(m.take());
                        }
                    }
                    prop_assert_eq!(seen, expect);
                }
                for (i, m) in model.iter().enumerate() {
                    prop_assert_eq!(ring.get(i as u32), m.as_ref());
                }
                let live = model
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.is_some())
                    .fold(0u64, |acc, (i, _)| acc | 1 << i);
                prop_assert_eq!(ring.live(), live);
                let mut copy = Ring::new(n);
                for (i, m) in model.iter().enumerate() {
                    if let Some(v) = m {
                        *copy.entry(i as u32) = *v;
                    }
                }
                prop_assert_eq!(&copy, &ring);
                let sorted: Vec<C> = model.iter().flatten().copied().collect();
                let built = Ring::from_sorted(n, live, sorted);
                prop_assert_eq!(&built, &ring);
                let dense = live.count_ones() > n / 2 || (live != 0 && built.small());
                prop_assert_eq!(built.dense(), dense, "n={}", n);
            }
        }
    }

    #[test]
    fn a_quiet_window_stays_sparse_and_small() {
        #[derive(Debug, Default, PartialEq)]
        struct Wide([u64; 8]);
        impl Bucket for Wide {
            type Total = ();
            fn expire_from(&self, _: &mut ()) {}
        }
        let mut r: Ring<Wide> = Ring::new(48);
        for s in (0..48).step_by(3) {
            r.entry(s).0[0] += 1;
        }
        assert!(!r.dense(), "16 of 48 slots");
        assert!(r.heap_bytes() <= 20 * 64, "{}", r.heap_bytes());
        r.entry(1);
        r.entry(2);
        r.entry(4);
        r.entry(5);
        r.entry(7);
        r.entry(8);
        r.entry(10);
        r.entry(11);
        assert!(!r.dense(), "24 of 48 slots: half");
        r.entry(13);
        assert!(r.dense(), "25 of 48 slots");
        assert_eq!(r.get(3).map(|b| b.0[0]), Some(1));
        r.expire(u64::MAX, |_| {});
        assert_eq!(r.heap_bytes(), 0, "emptied: memory given back");
    }

    #[test]
    fn a_small_ring_is_dense_at_once_and_keeps_its_block() {
        // 30 slots of 8 bytes: a burn-rate window.
        #[derive(Debug, Default, Clone, Copy, PartialEq)]
        struct Pair(u32, u32);
        impl Bucket for Pair {
            type Total = ();
            fn expire_from(&self, _: &mut ()) {}
        }
        let mut r: Ring<Pair> = Ring::new(30);
        r.entry(7).0 += 1;
        assert!(r.dense(), "dense from its first bucket");
        assert_eq!(r.get(7), Some(&Pair(1, 0)));
        assert_eq!(r.get(8), None, "a dense slot without data is not live");
        r.expire(u64::MAX, |_| {});
        assert_eq!(r.live(), 0);
        assert_eq!(
            r.heap_bytes(),
            30 * 8,
            "emptied: the block stays for the next bucket"
        );
        r.entry(9).1 += 1;
        assert_eq!(r.get(9), Some(&Pair(0, 1)), "the reused slot starts empty");
        assert_eq!(r.get(7), None);
    }
}

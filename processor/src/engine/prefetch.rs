//! A cache hint for the batch path: with ten thousand agents and more, an
//! event's agent state is usually not in cache, and waiting for it one miss
//! at a time dominates. Asking for the state of events a few places ahead
//! lets those misses overlap. A hint only: it changes no result.

/// Asks the CPU to start loading the cache line holding `value`.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and writes nothing; the pointer comes
    // from a live reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Asks the CPU to start loading the cache line at `addr`, which need not
/// point into a live object: a prefetch never faults, so a heap block's
/// next line can be asked for before its length is known.
#[inline(always)]
pub(crate) fn prefetch_addr(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and writes nothing, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Prefetches every cache line of `value` (for structs wider than one
/// line, and slices).
#[inline(always)]
pub(crate) fn prefetch_all<T: ?Sized>(value: &T) {
    let bytes = std::mem::size_of_val(value);
    let base = (value as *const T).cast::<u8>();
    let mut off = 0;
    while off < bytes {
        // Stays inside `value`, so the reference is valid.
        // SAFETY: `base + off` is within the object `value` points to.
        prefetch(unsafe { &*base.add(off) });
        off += 64;
    }
}

//! Refilling a reused [`TaskEvent`] in place: its strings are overwritten
//! rather than replaced, so that once a slot has held events of a given
//! shape, decoding another of that shape allocates nothing.
//!
//! An optional string that becomes `None`, or evals that become fewer,
//! would free their strings, and the next event that has them would
//! allocate again (a FAILURE's `error_type` among SUCCESSes does exactly
//! that). [`Spares`] keeps those strings and hands them back out instead.

use crate::event::{Eval, TaskEvent};

/// Strings taken out of reused events, to be handed back out. Bounded: the
/// strings in use only move between events and here, so a few dozen cover
/// any steady mix; past that they are freed.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    strings: Vec<String>,
}

const MAX_SPARES: usize = 64;

/// Overwrites `slot` with `value`, keeping its allocation when it is big
/// enough.
///
/// The strings of an event are short (ids, names, categories): up to 64
/// bytes are copied by two fixed-size (overlapping) moves, inline, rather
/// than by a call to `memcpy` through the PLT (`push_str`), which was an
/// eighth of the reader's time in a profile.
#[inline(always)]
pub(crate) fn set(slot: &mut String, value: &str) {
    let n = value.len();
    if n > 64 || slot.capacity() < n {
        slot.clear();
        slot.push_str(value);
        return;
    }
    let src = value.as_ptr();
    // SAFETY: the buffer holds at least `n` bytes (capacity checked above)
    // and `value` is `n` bytes, so every move below stays inside both
    // (each is at most `n` bytes, starting at 0 or ending at `n`); the two
    // do not overlap (`value` is borrowed while `slot` is borrowed
    // mutably). Afterwards the first `n` bytes are `value`'s, which is
    // UTF-8, so the string of length `n` is valid.
    unsafe {
        let bytes = slot.as_mut_vec();
        let dst = bytes.as_mut_ptr();
        use std::ptr::copy_nonoverlapping as copy;
        match n {
            0 => {}
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            4..=7 => {
                copy(src, dst, 4);
                copy(src.add(n - 4), dst.add(n - 4), 4);
            }
            8..=16 => {
                copy(src, dst, 8);
                copy(src.add(n - 8), dst.add(n - 8), 8);
            }
            17..=32 => {
                copy(src, dst, 16);
                copy(src.add(n - 16), dst.add(n - 16), 16);
            }
            _ => {
                copy(src, dst, 32);
                copy(src.add(n - 32), dst.add(n - 32), 32);
            }
        }
        bytes.set_len(n);
    }
}

impl Spares {
    fn take(&mut self, value: &str) -> String {
        match self.strings.pop() {
            Some(mut s) => {
                s.push_str(value);
                s
            }
            None => value.to_owned(),
        }
    }

    fn put(&mut self, mut s: String) {
        if self.strings.len() < MAX_SPARES && s.capacity() > 0 {
            s.clear();
            self.strings.push(s);
        }
    }

    /// Overwrites an optional string, moving its allocation to or from the
    /// spares when it changes between `Some` and `None`. The common cases,
    /// `Some` over `Some` and `None` over `None`, are inline.
    #[inline(always)]
    pub(crate) fn set_optional(&mut self, slot: &mut Option<String>, value: Option<&str>) {
        match (slot.as_mut(), value) {
            (Some(s), Some(v)) => set(s, v),
            (None, None) => {}
            _ => self.swap_optional(slot, value),
        }
    }

    #[inline(never)]
    fn swap_optional(&mut self, slot: &mut Option<String>, value: Option<&str>) {
        match value {
            Some(v) => *slot = Some(self.take(v)),
            None => {
                if let Some(s) = slot.take() {
                    self.put(s);
                }
            }
        }
    }

    /// Overwrites eval `i` of `evals` (which has at least `i` evals), or
    /// appends it.
    #[inline(always)]
    pub(crate) fn set_eval(
        &mut self,
        evals: &mut Vec<Eval>,
        i: usize,
        category: &str,
        passed: bool,
    ) {
        match evals.get_mut(i) {
            Some(e) => {
                set(&mut e.category, category);
                e.passed = passed;
            }
            None => self.push_eval(evals, category, passed),
        }
    }

    #[inline(never)]
    fn push_eval(&mut self, evals: &mut Vec<Eval>, category: &str, passed: bool) {
        let category = self.take(category);
        evals.push(Eval { category, passed });
    }

    /// Drops the evals from `len` on, keeping their strings.
    #[inline(always)]
    pub(crate) fn truncate_evals(&mut self, evals: &mut Vec<Eval>, len: usize) {
        if evals.len() > len {
            self.drain_evals(evals, len);
        }
    }

    #[inline(never)]
    fn drain_evals(&mut self, evals: &mut Vec<Eval>, len: usize) {
        for e in evals.drain(len..) {
            self.put(e.category);
        }
    }
}

/// An event to decode into: empty strings, no evals, nothing allocated.
///
/// ```
/// let slot = breakwater::decode::empty_event();
/// assert!(slot.event_id.is_empty() && slot.evals.is_empty());
/// ```
pub fn empty_event() -> TaskEvent {
    TaskEvent::new(
        String::new(),
        String::new(),
        0,
        crate::event::Outcome::Success,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_move_to_the_spares_and_back() {
        let mut spares = Spares::default();
        let mut slot = Some("ToolError".to_string());
        let ptr = slot.as_ref().unwrap().as_ptr();
        spares.set_optional(&mut slot, None);
        assert_eq!(slot, None);
        spares.set_optional(&mut slot, Some("Timeout"));
        assert_eq!(slot.as_deref(), Some("Timeout"));
        assert_eq!(slot.as_ref().unwrap().as_ptr(), ptr, "the same allocation");

        let mut evals = Vec::new();
        spares.set_eval(&mut evals, 0, "a", true);
        spares.set_eval(&mut evals, 1, "b", false);
        spares.truncate_evals(&mut evals, 1);
        assert_eq!(
            evals,
            [Eval {
                category: "a".into(),
                passed: true
            }]
        );
        assert_eq!(spares.strings.len(), 1);
        spares.set_eval(&mut evals, 0, "c", false);
        spares.set_eval(&mut evals, 1, "d", true);
        assert_eq!(evals[1].category, "d");
        assert!(spares.strings.is_empty());
    }

    #[test]
    fn set_copies_every_length() {
        let text: String = ('a'..='z').chain('A'..='Z').cycle().take(80).collect();
        let mut slot = String::new();
        for n in 0..80 {
            for before in [0, n / 2, n, 79] {
                slot.clear();
                slot.push_str(&"#".repeat(before));
                set(&mut slot, &text[..n]);
                assert_eq!(slot, text[..n], "{before} then {n}");
            }
        }
        // Multi-byte UTF-8 over ASCII and back.
        set(&mut slot, "é😀 ö");
        assert_eq!(slot, "é😀 ö");
        set(&mut slot, "ab");
        assert_eq!(slot, "ab");
    }

    #[test]
    fn spares_are_bounded() {
        let mut spares = Spares::default();
        for _ in 0..2 * MAX_SPARES {
            let mut slot = Some("x".to_string());
            spares.set_optional(&mut slot, None);
        }
        assert_eq!(spares.strings.len(), MAX_SPARES);
    }
}

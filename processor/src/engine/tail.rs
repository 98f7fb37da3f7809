//! The p99 latency rule without a quantile walk per event. Whether the p99
//! is above a threshold only depends on how many values lie at or above the
//! threshold's sketch bin, so the agent keeps that count per threshold and
//! bumps it as latencies arrive; the walk (and the value the alert reports)
//! is left to the rare events where the rule fires or already is.

use super::sketch::{LatencySketch, SampleKey};
use crate::config::Thresholds;

/// Per SLO: the sketch bins of the p99 rule's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailKeys {
    /// `None` when the threshold is unset.
    keys: [Option<SampleKey>; 2],
    /// A threshold is set but no bin expresses it: always walk.
    walk: bool,
}

impl TailKeys {
    pub fn new(t: &Thresholds) -> Self {
        let mut walk = false;
        let mut key = |thr: Option<f64>| {
            let k = thr.and_then(LatencySketch::key_above);
            walk |= thr.is_some() && k.is_none();
            k
        };
        let keys = [key(t.critical), key(t.warning)];
        TailKeys { keys, walk }
    }
}

/// Values at or above each threshold bin in an agent's latency window total,
/// valid while that total holds `count` values. A cache: derived from the
/// window, never saved, and equal whatever it holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailCounts {
    above: [u64; 2],
    count: u64,
    valid: bool,
}

impl PartialEq for TailCounts {
    fn eq(&self, _: &Self) -> bool {
        true // derived state: two agents differ only if their windows do
    }
}

impl TailCounts {
    /// Follows one value `key` recorded into `total`, whose count was
    /// `before`. If buckets also slid out (the count moved otherwise), the
    /// counts are recomputed when next needed.
    pub fn recorded(
        &mut self,
        keys: &TailKeys,
        key: SampleKey,
        before: u64,
        total: &LatencySketch,
    ) {
        if !self.valid || total.count() != before + 1 || self.count != before {
            self.valid = false;
            return;
        }
        for (above, k) in self.above.iter_mut().zip(keys.keys) {
            if let Some(k) = k {
                *above += key.at_or_above(k) as u64;
            }
        }
        self.count = before + 1;
    }

    /// Whether the `q` quantile of `total` is above one of the thresholds
    /// (or can't be told without the walk).
    pub fn maybe_above(&mut self, keys: &TailKeys, q: f64, total: &LatencySketch) -> bool {
        if keys.walk {
            return true;
        }
        if !self.valid || self.count != total.count() {
            for (above, k) in self.above.iter_mut().zip(keys.keys) {
                *above = k.map_or(0, |k| total.count_from_key(k));
            }
            (self.count, self.valid) = (total.count(), true);
        }
        self.above.iter().zip(keys.keys).any(|(&above, k)| {
            k.is_some_and(|k| total.quantile_reaches(q, k, above) != Some(false))
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Kept by `recorded` or recomputed, the answer is the walk's.
        #[test]
        fn agrees_with_the_quantile(
            values in prop::collection::vec(prop_oneof![Just(0u64), 1u64..120_000], 1..400),
            warning in prop::option::of(0.0f64..100_000.0),
            critical in prop::option::of(0.0f64..100_000.0),
            forget_every in 1usize..50,
        ) {
            let keys = TailKeys::new(&Thresholds { warning, critical });
            let mut total = LatencySketch::new();
            let mut tail = TailCounts::default();
            for (i, &v) in values.iter().enumerate() {
                let before = total.count();
                let key = LatencySketch::key_of(v);
                total.add_key(key);
                tail.recorded(&keys, key, before, &total);
                if i % forget_every == 0 {
                    tail.valid = false;
                }
                let p99 = total.quantile(0.99).unwrap() as f64;
                let above = [critical, warning].iter().flatten().any(|&t| p99 > t);
                let maybe = tail.maybe_above(&keys, 0.99, &total);
                prop_assert!(maybe || !above, "missed: p99 {} thresholds {:?}", p99, (warning, critical));
                prop_assert!(!maybe || above, "false alarm: p99 {}", p99);
            }
        }
    }
}

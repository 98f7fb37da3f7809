//! Exact export and restore of one agent's state: what the Kafka shell
//! writes beside each budget snapshot so that a new owner of the partition
//! carries on as if the agent had never moved (SPEC §9).
//!
//! **Format.** One format byte ([`STATE_FORMAT`]), then these fields in
//! [postcard](https://docs.rs/postcard) (varints, no field names):
//!
//! | # | field | postcard type |
//! |---|---|---|
//! | 1 | SLO shape | [`Shape`] |
//! | 2 | input position | `Option<i64>` |
//! | 3 | engine clock at export | `i64` |
//! | 4 | last output sequence number | `u64` |
//! | 5 | budget status | `BudgetStatus` |
//! | 6 | eval category names, in the agent's order | `[str]` |
//! | 7 | metrics window | ring of [`MetricWire<u32>`] |
//! | 8 | metrics total | [`MetricWire<u64>`] |
//! | 9 | latency window | ring of `LatencyBucket` |
//! | 10 | latency total, if collapsed | `Option<LatencySketch>` |
//! | 11 | burn-rate windows, in plan order | `[ring of TaskBucket]` |
//! | 12–15 | breaker state, cooldown level, open times, budget trip armed | `BreakerState`, `u32`, `[i64]`, `bool` |
//! | 16 | breaker window | ring of `BreakerBucket` |
//! | 17 | firing alerts | `[ActiveAlert]` |
//! | 18 | accuracy declaration | `Option<`[`DeclOut`]`>` |
//! | 19, 20 | recent event ids: next slot, hashes | `u8`, bytes (8 LE each) |
//! | 21 | pending timers | `PendingTimers` |
//!
//! A ring is `(Option<i64> head, [(u8 age, bucket)])`, newest first.
//! `encode` writes these from the agent, `decode` reads them into a new
//! agent, both without intermediate copies. A change to any of them is a
//! new format number: states of an unknown format are refused, and the
//! shell starts the agent afresh from the committed offset.
//!
//! - Windows are **sparse**: the head bucket index, then only the buckets
//!   holding data, each with its age (buckets behind the head). A quiet
//!   agent touches a few of its ~190 buckets.
//! - Totals are stored where they are not a sum of the buckets (the
//!   metrics total: buckets saturate at `u32`, and it keeps a running
//!   maximum; the latency sketch while collapsed, see
//!   `LatencySketch::is_collapsed`), and summed from the buckets elsewhere.
//!   A latency total is sparse data stored densely (one varint per bin
//!   between its lowest and highest value): summing it is smaller.
//! - Eval categories are stored by **name**, in the agent's own order, and
//!   buckets refer to them by index in that list: the engine-wide interned
//!   ids differ from engine to engine. So the bytes depend on the agent's
//!   history only, never on the engine that holds it.
//! - The SLO **shape** (budget, breaker and burn-rate window lengths) is
//!   stored: restored under an SLO of another shape, the buckets would mean
//!   other times, so restore refuses with [`RestoreError::SloChanged`].
//!   Thresholds may change freely: they apply from the next event on.
//! - The engine clock at export is stored: an engine rebuilt from states
//!   continues on the same clock (retry times count from it).
//!
//! The state is trusted as far as its own writer: decoding checks what
//! could make the engine index out of bounds, not that every total agrees
//! with its buckets (Kafka's record CRCs guard the bytes in transit).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::counts::{Count, EvalCount, MetricCounts};
use crate::config::Slo;
use crate::event::TimestampMs;

mod decode;
mod encode;

pub(crate) use decode::decode;
pub(crate) use encode::encode;

/// Appends `state` (written by `encode`) to `out` as if it had been
/// exported at engine clock `clock`: the bytes `encode` would write for
/// the same agent at that clock. Only the clock field changes, so a
/// dormant agent is exported without decoding its state. `None` if
/// `state` is not a state of this format.
pub(crate) fn with_clock(state: &[u8], clock: TimestampMs, out: &mut Vec<u8>) -> Option<()> {
    let (&format, body) = state.split_first()?;
    if format != STATE_FORMAT {
        return None;
    }
    // Fields 1 and 2 (shape, position) stay; field 3 is the clock.
    let (_, at_clock) = postcard::take_from_bytes::<(Shape, Option<i64>)>(body).ok()?;
    let (_, rest) = postcard::take_from_bytes::<TimestampMs>(at_clock).ok()?;
    out.push(format);
    out.extend_from_slice(&body[..body.len() - at_clock.len()]);
    let mut varint = [0u8; 10];
    out.extend_from_slice(postcard::to_slice(&clock, &mut varint).ok()?);
    out.extend_from_slice(rest);
    Some(())
}

/// The format byte every exported state starts with.
pub const STATE_FORMAT: u8 = 1;

/// Fields of a state after the format byte (see the table above).
const FIELDS: usize = 21;

/// Why an exported agent state could not be restored. The shell logs it and
/// starts the agent afresh.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No bytes at all.
    #[error("empty agent state")]
    Empty,
    /// Written by a build with another format (the first byte).
    #[error("agent state format {found} is unknown (this build reads format {STATE_FORMAT})")]
    UnknownFormat { found: u8 },
    /// Truncated or otherwise not a state.
    #[error("undecodable agent state: {0}")]
    Decode(#[from] postcard::Error),
    /// The agent's SLO now has other windows: `what` was `saved`, is `now`.
    #[error(
        "the agent's SLO changed shape since its state was saved: {what} was {saved}, is now {now}"
    )]
    SloChanged {
        what: &'static str,
        saved: String,
        now: String,
    },
    /// Decodes, but cannot be an agent's state (e.g. a bucket outside its window).
    #[error("inconsistent agent state: {0}")]
    Invalid(&'static str),
}

/// What an agent's state layout depends on in its SLO.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Shape {
    window_ms: i64,
    breaker_window_ms: i64,
    /// (long, short) per burn-rate rule: they fix the agent's burn windows
    /// and what an active `Rule::BurnRate(i)` alert refers to.
    burn_rules: SmallVec<[(i64, i64); 4]>,
}

impl Shape {
    fn of(slo: &Slo) -> Self {
        Shape {
            window_ms: slo.window_ms,
            breaker_window_ms: slo.breaker.window_ms,
            burn_rules: slo
                .burn_rate
                .rules
                .iter()
                .map(|r| (r.long_ms, r.short_ms))
                .collect(),
        }
    }

    fn check(&self, now: &Shape) -> Result<(), RestoreError> {
        let changed = |what, saved: &dyn std::fmt::Debug, now: &dyn std::fmt::Debug| {
            Err(RestoreError::SloChanged {
                what,
                saved: format!("{saved:?}"),
                now: format!("{now:?}"),
            })
        };
        if self.window_ms != now.window_ms {
            return changed("window_ms", &self.window_ms, &now.window_ms);
        }
        if self.breaker_window_ms != now.breaker_window_ms {
            return changed(
                "breaker.window_ms",
                &self.breaker_window_ms,
                &now.breaker_window_ms,
            );
        }
        if self.burn_rules != now.burn_rules {
            return changed(
                "burn_rate (long_ms, short_ms) per rule",
                &self.burn_rules.as_slice(),
                &now.burn_rules.as_slice(),
            );
        }
        Ok(())
    }
}

/// A metrics bucket or total, eval categories as indices into the agent's
/// category list, sorted by that index.
#[derive(Serialize, Deserialize)]
struct MetricWire<C> {
    tasks: C,
    failed: C,
    unavailable: C,
    tool_calls: C,
    policy_violations: C,
    hallucination_evaluated: C,
    hallucinations: C,
    intent_evaluated: C,
    intent_missed: C,
    delegation_depth_sum: C,
    delegation_depth_max: u32,
    latency_sum_ms: u64,
    evals: SmallVec<[(u8, C, C); 4]>,
}

impl<C: Count> MetricWire<C> {
    /// `tracked`: the agent's categories (engine ids) in its own order.
    fn of(m: &MetricCounts<C>, tracked: &[u16]) -> Self {
        let mut evals: SmallVec<[(u8, C, C); 4]> = m
            .evals
            .iter()
            .map(|e| {
                // Buckets only hold tracked categories; u8::MAX is refused on restore.
                let local = tracked.iter().position(|&c| c == e.category);
                debug_assert!(local.is_some(), "bucket holds an untracked category");
                (local.map_or(u8::MAX, |l| l as u8), e.evaluated, e.passed)
            })
            .collect();
        evals.sort_unstable_by_key(|e| e.0);
        MetricWire {
            tasks: m.tasks,
            failed: m.failed,
            unavailable: m.unavailable,
            tool_calls: m.tool_calls,
            policy_violations: m.policy_violations,
            hallucination_evaluated: m.hallucination_evaluated,
            hallucinations: m.hallucinations,
            intent_evaluated: m.intent_evaluated,
            intent_missed: m.intent_missed,
            delegation_depth_sum: m.delegation_depth_sum,
            delegation_depth_max: m.delegation_depth_max,
            latency_sum_ms: m.latency_sum_ms,
            evals,
        }
    }

    /// Back to engine ids (`ids[local]`), sorted by id; `None` on an index
    /// outside the list or a repeated one.
    fn into_counts(self, ids: &[u16]) -> Option<MetricCounts<C>> {
        let mut evals = thin_vec::ThinVec::with_capacity(self.evals.len());
        for (local, evaluated, passed) in self.evals {
            let category = *ids.get(usize::from(local))?;
            evals.push(EvalCount {
                category,
                evaluated,
                passed,
            });
        }
        evals.sort_unstable_by_key(|e| e.category);
        if evals.windows(2).any(|p| p[0].category == p[1].category) {
            return None;
        }
        Some(MetricCounts {
            tasks: self.tasks,
            failed: self.failed,
            unavailable: self.unavailable,
            tool_calls: self.tool_calls,
            policy_violations: self.policy_violations,
            hallucination_evaluated: self.hallucination_evaluated,
            hallucinations: self.hallucinations,
            intent_evaluated: self.intent_evaluated,
            intent_missed: self.intent_missed,
            delegation_depth_sum: self.delegation_depth_sum,
            delegation_depth_max: self.delegation_depth_max,
            latency_sum_ms: self.latency_sum_ms,
            evals,
        })
    }
}

/// An accuracy declaration without its agent id (the record's key).
#[derive(Serialize)]
struct DeclOut<'a> {
    version: &'a str,
    declared_accuracy: &'a BTreeMap<String, f64>,
    measurement_method: &'a str,
    valid_for_days: i32,
    published_at: TimestampMs,
    supersedes: Option<&'a str>,
}

/// [`DeclOut`] read back.
#[derive(Deserialize)]
struct DeclIn {
    version: String,
    declared_accuracy: BTreeMap<String, f64>,
    measurement_method: String,
    valid_for_days: i32,
    published_at: TimestampMs,
    supersedes: Option<String>,
}

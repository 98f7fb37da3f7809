//! Reading an agent's state back into a new agent, field by field (the
//! table in [`super`]): buckets go straight into their window's ring, so a
//! restore allocates what the agent keeps and little else. Checks what
//! could make the engine index out of bounds, and maps eval categories to
//! this engine's ids.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use smallvec::SmallVec;

use super::{DeclIn, MetricWire, RestoreError, Shape, FIELDS, STATE_FORMAT};
use crate::config::{Slo, SloId};
use crate::engine::accuracy::{AccuracyDeclaration, Measure};
use crate::engine::agent::{Agent, Declared, PendingTimers, NO_POSITION};
use crate::engine::alert::{ActiveAlert, AlertBook, Rule};
use crate::engine::breaker::{BreakerState, CircuitBreaker, MAX_REMEMBERED_OPENS};
use crate::engine::budget::BudgetStatus;
use crate::engine::counts::{
    BreakerBucket, BreakerCounts, LatencyBucket, MetricBucket, TaskBucket, TaskCounts,
    MAX_EVAL_CATEGORIES,
};
use crate::engine::dedup::{RecentIds, MAX_RECENT_IDS};
use crate::engine::plan::SloPlan;
use crate::engine::sketch::LatencySketch;
use crate::engine::window::{
    Bucket, SlidingWindow, BREAKER_BUCKETS, BUDGET_BUCKETS, BURN_BUCKETS, SKETCH_BUCKETS,
};
use crate::engine::Categories;
use crate::event::TimestampMs;

/// Decodes a state written by `encode` for an agent whose SLO now
/// resolves to `slo_id`, interning its eval categories in `categories`.
/// Returns the agent (not dirty) and the engine clock it was exported at.
pub(crate) fn decode(
    bytes: &[u8],
    agent_id: &str,
    slo_id: SloId,
    slo: &Slo,
    plan: &SloPlan,
    categories: &mut Categories,
) -> Result<(Agent, TimestampMs), RestoreError> {
    let (&format, body) = bytes.split_first().ok_or(RestoreError::Empty)?;
    if format != STATE_FORMAT {
        return Err(RestoreError::UnknownFormat { found: format });
    }
    // Serde errors carry no type: the typed reason waits here.
    let failed = Cell::new(None);
    let mut de = postcard::Deserializer::from_bytes(body);
    let seed = AgentSeed {
        agent_id,
        slo_id,
        slo,
        plan,
        categories,
        failed: &failed,
    };
    let decoded = de.deserialize_tuple(FIELDS, seed);
    let (agent, clock) = decoded.map_err(|e| failed.take().unwrap_or(RestoreError::Decode(e)))?;
    if !de.finalize()?.is_empty() {
        return Err(RestoreError::Invalid("trailing bytes"));
    }
    Ok((agent, clock))
}

type Failed<'f> = &'f Cell<Option<RestoreError>>;

/// A serde error standing for `e`, which `decode` returns instead.
fn fail<E: de::Error>(failed: Failed, e: RestoreError) -> E {
    let error = E::custom(&e);
    failed.set(Some(e));
    error
}

fn invalid<E: de::Error>(failed: Failed, why: &'static str) -> E {
    fail(failed, RestoreError::Invalid(why))
}

/// The next field of a tuple.
fn field<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| A::Error::custom("truncated state"))
}

fn field_seed<'de, S: DeserializeSeed<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
    seed: S,
) -> Result<S::Value, A::Error> {
    seq.next_element_seed(seed)?
        .ok_or_else(|| A::Error::custom("truncated state"))
}

/// Reads the whole agent.
struct AgentSeed<'a> {
    agent_id: &'a str,
    slo_id: SloId,
    slo: &'a Slo,
    plan: &'a SloPlan,
    categories: &'a mut Categories,
    failed: Failed<'a>,
}

impl<'de> Visitor<'de> for AgentSeed<'_> {
    type Value = (Agent, TimestampMs);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an agent state")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (slo, failed) = (self.slo, self.failed);
        let shape: Shape = field(&mut seq)?;
        shape
            .check(&Shape::of(slo))
            .map_err(|e| fail::<A::Error>(failed, e))?;
        let position: Option<i64> = field(&mut seq)?;
        let clock: TimestampMs = field(&mut seq)?;
        let out_seq: u64 = field(&mut seq)?;
        let status: BudgetStatus = field(&mut seq)?;

        let names: SmallVec<[&str; 8]> = field(&mut seq)?;
        if names.len() > MAX_EVAL_CATEGORIES {
            return Err(invalid(failed, "too many eval categories"));
        }
        let ids: SmallVec<[u16; 8]> = names.iter().map(|n| self.categories.intern(n)).collect();
        if (1..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
            return Err(invalid(failed, "repeated eval category"));
        }
        let eval_range = || invalid::<A::Error>(failed, "eval category out of range");

        let metric = |m: MetricWire<u32>| m.into_counts(&ids);
        let ring = Ring::new(slo.window_ms, BUDGET_BUCKETS, metric, failed);
        let mut metrics: SlidingWindow<MetricBucket> = field_seed(&mut seq, ring)?;
        let total: MetricWire<u64> = field(&mut seq)?;
        metrics.set_total(total.into_counts(&ids).ok_or_else(eval_range)?);

        let ring = Ring::new(slo.window_ms, SKETCH_BUCKETS, Some, failed);
        let mut latency: SlidingWindow<LatencyBucket> = field_seed(&mut seq, ring)?;
        let total = field::<Option<LatencySketch>, _>(&mut seq)?.unwrap_or_else(|| {
            let mut total = LatencySketch::new();
            if let Some((lo, hi)) = LatencyBucket::key_range(latency.live().map(|(_, b)| b)) {
                total.reserve_keys(lo, hi);
            }
            latency.live().for_each(|(_, b)| b.add_to(&mut total));
            total
        });
        latency.set_total(total);

        let mut burn: SmallVec<[SlidingWindow<TaskBucket>; 4]> = field_seed(
            &mut seq,
            BurnSeed {
                windows: &self.plan.burn_windows,
                failed,
            },
        )?;
        for w in &mut burn {
            let total = w.live().fold(TaskCounts::default(), |mut t, (_, b)| {
                t.tasks += u64::from(b.tasks);
                t.failed += u64::from(b.failed);
                t
            });
            w.set_total(total);
        }

        let state: BreakerState = field(&mut seq)?;
        let cooldown_level: u32 = field(&mut seq)?;
        let opens: std::collections::VecDeque<TimestampMs> = field(&mut seq)?;
        if opens.len() > MAX_REMEMBERED_OPENS {
            return Err(invalid(failed, "too many remembered opens"));
        }
        let budget_trip_armed: bool = field(&mut seq)?;
        let ring = Ring::new(slo.breaker.window_ms, BREAKER_BUCKETS, Some, failed);
        let mut window: SlidingWindow<BreakerBucket> = field_seed(&mut seq, ring)?;
        let total = window
            .live()
            .fold(BreakerCounts::default(), |mut t, (_, b)| {
                t.tasks += u64::from(b.tasks);
                t.failed += u64::from(b.failed);
                t.loops += u64::from(b.loops);
                t.latency_sum_ms += b.latency_sum_ms;
                t
            });
        window.set_total(total);

        let alerts: Vec<ActiveAlert> = field(&mut seq)?;
        let declared: Option<DeclIn> = field(&mut seq)?;
        let declared_len = declared.as_ref().map_or(0, |d| d.declared_accuracy.len());
        let rules = slo.burn_rate.rules.len();
        let in_range = |a: &ActiveAlert| match a.rule {
            Rule::BurnRate(i) => usize::from(i) < rules,
            Rule::AccuracyBelowDeclaration(i) => usize::from(i) < declared_len,
            _ => true,
        };
        if !alerts.iter().all(in_range) {
            return Err(invalid(failed, "alert rule out of range"));
        }
        let declared = declared.map(|d| {
            let measures = d
                .declared_accuracy
                .keys()
                .map(|name| Measure::for_category(name, |n| self.categories.intern(n)))
                .collect();
            let decl = AccuracyDeclaration {
                agent_id: self.agent_id.to_string(),
                version: d.version,
                declared_accuracy: d.declared_accuracy,
                measurement_method: d.measurement_method,
                valid_for_days: d.valid_for_days,
                published_at: d.published_at,
                supersedes: d.supersedes,
            };
            Box::new(Declared { decl, measures })
        });

        let mut recent = RecentIds {
            next: field(&mut seq)?,
            ..RecentIds::default()
        };
        let hashes: &[u8] = field(&mut seq)?;
        if !hashes.len().is_multiple_of(8) || hashes.len() > 8 * MAX_RECENT_IDS {
            return Err(invalid(failed, "recent event ids"));
        }
        for (h, bytes) in recent.hashes.iter_mut().zip(hashes.chunks_exact(8)) {
            *h = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        recent.len = (hashes.len() / 8) as u8;
        let timers: PendingTimers = field(&mut seq)?;

        let agent = Agent {
            slo: self.slo_id,
            metrics,
            latency,
            burn,
            breaker: CircuitBreaker {
                state,
                window,
                cooldown_level,
                opens,
                budget_trip_armed,
            },
            alerts: AlertBook { active: alerts },
            declared,
            status,
            seq: out_seq,
            recent,
            eval_categories: ids.iter().copied().collect(),
            dirty: false,
            timers,
            position: position.unwrap_or(NO_POSITION),
            tail: Default::default(),
        };
        Ok((agent, clock))
    }
}

/// Reads a ring (`(head, [(age, bucket)])`) straight into a new window of
/// `n` buckets over `window_ms`; `bucket` maps each wire bucket back, or
/// refuses it with `None`. The total is left to the caller.
struct Ring<'f, W, F> {
    window_ms: i64,
    n: u32,
    bucket: F,
    failed: Failed<'f>,
    wire: PhantomData<fn() -> W>,
}

impl<'f, W, F> Ring<'f, W, F> {
    fn new(window_ms: i64, n: u32, bucket: F, failed: Failed<'f>) -> Self {
        Ring {
            window_ms,
            n,
            bucket,
            failed,
            wire: PhantomData,
        }
    }
}

impl<'de, W, B, F> DeserializeSeed<'de> for Ring<'_, W, F>
where
    W: Deserialize<'de>,
    B: Bucket,
    F: FnMut(W) -> Option<B>,
{
    type Value = SlidingWindow<B>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, W, B, F> Visitor<'de> for Ring<'_, W, F>
where
    W: Deserialize<'de>,
    B: Bucket,
    F: FnMut(W) -> Option<B>,
{
    type Value = SlidingWindow<B>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a window: head and live buckets")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let head: Option<i64> = field(&mut seq)?;
        field_seed(&mut seq, Live { head, ring: self })
    }
}

/// The live buckets of a [`Ring`] whose head was `head`.
struct Live<'f, W, F> {
    head: Option<i64>,
    ring: Ring<'f, W, F>,
}

impl<'de, W, B, F> DeserializeSeed<'de> for Live<'_, W, F>
where
    W: Deserialize<'de>,
    B: Bucket,
    F: FnMut(W) -> Option<B>,
{
    type Value = SlidingWindow<B>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, W, B, F> Visitor<'de> for Live<'_, W, F>
where
    W: Deserialize<'de>,
    B: Bucket,
    F: FnMut(W) -> Option<B>,
{
    type Value = SlidingWindow<B>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("live buckets with their ages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Ring {
            window_ms,
            n,
            mut bucket,
            failed,
            ..
        } = self.ring;
        let count = seq.size_hint().unwrap_or(0);
        let (mut error, mut refused) = (None, false);
        // The window takes the buckets as they are read; a read error or a
        // refused bucket ends the input early, and is reported below.
        let buckets = std::iter::from_fn(|| match seq.next_element::<(u8, W)>() {
            Ok(Some((age, wire))) => match bucket(wire) {
                Some(b) => Some((u32::from(age), b)),
                None => {
                    refused = true;
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                error = Some(e);
                None
            }
        });
        let window = SlidingWindow::from_live(window_ms, n, self.head, count, buckets);
        if let Some(e) = error {
            return Err(e);
        }
        if refused {
            return Err(invalid(failed, "eval category out of range"));
        }
        window.ok_or_else(|| invalid(failed, "window bucket out of range"))
    }
}

/// The burn-rate windows, one per length of the plan.
struct BurnSeed<'a> {
    windows: &'a [i64],
    failed: Failed<'a>,
}

impl<'de> DeserializeSeed<'de> for BurnSeed<'_> {
    type Value = SmallVec<[SlidingWindow<TaskBucket>; 4]>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BurnSeed<'_> {
    type Value = SmallVec<[SlidingWindow<TaskBucket>; 4]>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the burn-rate windows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if seq.size_hint() != Some(self.windows.len()) {
            return Err(invalid(self.failed, "burn windows do not match the SLO"));
        }
        self.windows
            .iter()
            .map(|&ms| field_seed(&mut seq, Ring::new(ms, BURN_BUCKETS, Some, self.failed)))
            .collect()
    }
}

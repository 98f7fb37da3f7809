//! Writing an agent's state: straight from the agent, with no intermediate
//! copy of its windows (the fields of the table in [`super`], in order).

use std::cell::Cell;

use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use super::{DeclOut, MetricWire, Shape, FIELDS, STATE_FORMAT};
use crate::config::Slo;
use crate::engine::agent::Agent;
use crate::engine::dedup::MAX_RECENT_IDS;
use crate::engine::window::{Bucket, SlidingWindow};
use crate::engine::Categories;
use crate::event::TimestampMs;

/// A sequence serialized from an iterator, without collecting it.
struct Seq<I>(Cell<Option<I>>);

impl<I> Seq<I> {
    fn new(items: I) -> Self {
        Seq(Cell::new(Some(items)))
    }
}

impl<I: ExactSizeIterator<Item: Serialize>> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self.0.take().expect("a Seq is serialized once");
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

/// A window as a ring: its head, then its live buckets newest first, each
/// with its age and mapped to its wire form.
fn ring<'a, B: Bucket, W: Serialize>(
    w: &'a SlidingWindow<B>,
    wire: impl Fn(&'a B) -> W + 'a,
) -> (
    Option<i64>,
    Seq<impl ExactSizeIterator<Item = (u8, W)> + 'a>,
) {
    (
        w.head(),
        Seq::new(w.live().map(move |(age, b)| (age as u8, wire(b)))),
    )
}

/// The encoder's view of one agent.
struct AgentRef<'a> {
    agent: &'a Agent,
    slo: &'a Slo,
    categories: &'a Categories,
    clock: TimestampMs,
}

impl Serialize for AgentRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.agent;
        let tracked = &a.eval_categories[..];
        let b = &a.breaker;
        let mut recent = [0u8; 8 * MAX_RECENT_IDS];
        let n = usize::from(a.recent.len);
        for (chunk, h) in recent.chunks_exact_mut(8).zip(&a.recent.hashes[..n]) {
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        let declared = a.declared.as_deref().map(|d| DeclOut {
            version: &d.decl.version,
            declared_accuracy: &d.decl.declared_accuracy,
            measurement_method: &d.decl.measurement_method,
            valid_for_days: d.decl.valid_for_days,
            published_at: d.decl.published_at,
            supersedes: d.decl.supersedes.as_deref(),
        });
        let names = tracked.iter().map(|&c| self.categories.name(c));
        let mut t = s.serialize_tuple(FIELDS)?;
        t.serialize_element(&Shape::of(self.slo))?;
        t.serialize_element(&a.position())?;
        t.serialize_element(&self.clock)?;
        t.serialize_element(&a.seq)?;
        t.serialize_element(&a.status)?;
        t.serialize_element(&Seq::new(names))?;
        t.serialize_element(&ring(&a.metrics, |m| MetricWire::of(m, tracked)))?;
        t.serialize_element(&MetricWire::of(a.metrics.total(), tracked))?;
        t.serialize_element(&ring(&a.latency, |l| l))?;
        let latency_total = a.latency.total();
        t.serialize_element(&latency_total.is_collapsed().then_some(latency_total))?;
        t.serialize_element(&Seq::new(a.burn.iter().map(|w| ring(w, |x| x))))?;
        t.serialize_element(&b.state)?;
        t.serialize_element(&b.cooldown_level)?;
        t.serialize_element(&b.opens)?;
        t.serialize_element(&b.budget_trip_armed)?;
        t.serialize_element(&ring(&b.window, |x| x))?;
        t.serialize_element(&a.alerts.active)?;
        t.serialize_element(&declared)?;
        t.serialize_element(&a.recent.next)?;
        t.serialize_element(serde_bytes::Bytes::new(&recent[..8 * n]))?;
        t.serialize_element(&a.timers)?;
        t.end()
    }
}

/// Appends to a `Vec` with no per-byte overhead.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Mostly varints of 1 to 10 bytes: a call to memcpy for each would
        // cost more than copying them here.
        if data.len() <= 16 {
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the state of `agent` (under `slo`, at engine clock `clock`) to `out`.
pub(crate) fn encode(
    agent: &Agent,
    slo: &Slo,
    categories: &Categories,
    clock: TimestampMs,
    out: &mut Vec<u8>,
) {
    out.push(STATE_FORMAT);
    let state = AgentRef {
        agent,
        slo,
        categories,
        clock,
    };
    postcard::serialize_with_flavor(&state, Append(out)).expect("writing to memory cannot fail");
}

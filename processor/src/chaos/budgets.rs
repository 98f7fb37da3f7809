//! Budgets checked against the stream: each agent's latest snapshot against
//! tasks and failures counted straight from the generated events in the
//! engine's budget window, not via the engine.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::engine::window::{BUDGET_BUCKETS, MAX_BUCKETS};
use crate::event::TimestampMs;
use crate::output::BudgetSnapshot;

use super::report::Stream;

/// One agent whose latest snapshot disagrees with the recomputation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetMismatch {
    pub agent_id: String,
    pub window_start: TimestampMs,
    pub window_end: TimestampMs,
    pub snapshot_tasks: Option<i64>,
    pub snapshot_failed: Option<i64>,
    pub snapshot_remaining_percent: Option<f64>,
    pub recomputed_tasks: i64,
    pub recomputed_failed: i64,
    pub recomputed_remaining_percent: Option<f64>,
}

/// Budgets of the latest snapshots against the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCheck {
    /// Agents with events.
    pub agents: usize,
    pub matched: usize,
    /// Agents whose latest snapshot is as of their last event or later: the
    /// job has seen the whole stream (a report before that is provisional).
    pub covered: usize,
    pub mismatches: Vec<BudgetMismatch>,
}

/// First millisecond the engine's budget window still counts at `now`. The
/// window is `BUDGET_BUCKETS` buckets of `ceil(W / N)` ms (engine/window.rs
/// documents it): it holds the events in `[(idx(now) − N + 1)·w, now]`, up to
/// one bucket less than the nominal `[now − W + 1, now]` of the snapshot.
fn bucketed_start(now: TimestampMs, window_ms: i64) -> TimestampMs {
    let n = i64::from(BUDGET_BUCKETS.clamp(1, MAX_BUCKETS));
    let w = ((window_ms.max(1) + n - 1) / n).max(1);
    (now.div_euclid(w) - n + 1).saturating_mul(w)
}

/// Remaining budget in percent, as SPEC §5 defines it: 100 × (1 − failed /
/// (tasks × (1 − objective))). None without tasks.
fn remaining_percent(tasks: i64, failed: i64, objective: f64) -> Option<f64> {
    if tasks == 0 {
        return None;
    }
    let allowed = tasks as f64 * (1.0 - objective);
    Some(100.0 * (1.0 - failed as f64 / allowed))
}

pub(super) fn check_budgets(
    streams: &HashMap<&str, Stream>,
    snapshots: &[BudgetSnapshot],
) -> BudgetCheck {
    let mut latest: BTreeMap<&str, &BudgetSnapshot> = BTreeMap::new();
    for s in snapshots {
        let e = latest.entry(s.agent_id.as_str()).or_insert(s);
        if s.seq > e.seq {
            *e = s;
        }
    }
    let mut agents: Vec<&&str> = streams.keys().collect();
    agents.sort();
    let mut mismatches = Vec::new();
    let mut covered = 0;
    for agent in &agents {
        let stream = &streams[**agent];
        let snap = latest.get(**agent);
        let last = stream.last().map_or(i64::MIN, |e| e.0);
        covered += usize::from(snap.is_some_and(|s| s.event_time >= last));
        let (from, to) = snap.map_or((i64::MIN, i64::MAX), |s| {
            (bucketed_start(s.event_time, s.slo.window_ms), s.event_time)
        });
        let (mut tasks, mut failed) = (0i64, 0i64);
        for &(t, task, fail) in stream {
            if t >= from && t <= to {
                tasks += task as i64;
                failed += fail as i64;
            }
        }
        let objective = snap.map(|s| s.slo.task_success_rate);
        let recomputed = objective.and_then(|o| remaining_percent(tasks, failed, o));
        let ok = snap.is_some_and(|s| {
            s.tasks == tasks
                && s.failed == failed
                && recomputed.is_none_or(|r| (r - s.remaining_percent).abs() < 1e-6)
        });
        if !ok {
            mismatches.push(BudgetMismatch {
                agent_id: agent.to_string(),
                window_start: from,
                window_end: to,
                snapshot_tasks: snap.map(|s| s.tasks),
                snapshot_failed: snap.map(|s| s.failed),
                snapshot_remaining_percent: snap.map(|s| s.remaining_percent),
                recomputed_tasks: tasks,
                recomputed_failed: failed,
                recomputed_remaining_percent: recomputed,
            });
        }
    }
    BudgetCheck {
        agents: agents.len(),
        matched: agents.len() - mismatches.len(),
        covered,
        mismatches,
    }
}

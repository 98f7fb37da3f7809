//! `breakwater replay`: the engine over a file of events, with timers on
//! stream time, so the same file and config always give the same output.
//!
//! Output is one JSON object per line: every breaker transition, alert and
//! status-change snapshot as it happens, then a final snapshot per agent
//! sorted by agent id. Bad input lines and refused declarations are reported
//! through a callback and counted; they never stop the run.

use std::io::{BufRead, Write};

use crate::decode::{decode_json, DecodeError};
use crate::engine::accuracy::AccuracyDeclaration;
use crate::engine::Engine;
use crate::event::{TaskEvent, TimestampMs};
use crate::output::Output;

/// One input record that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line number (JSON lines) or record number (Avro).
    pub position: u64,
    pub reason: String,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    pub records: u64,
    pub bad_records: u64,
    pub events: u64,
    pub duplicates: u64,
    pub late: u64,
    pub transitions: u64,
    pub alerts: u64,
    pub agents: u64,
    /// Declarations the engine put in force.
    pub declarations_applied: u64,
    /// Declarations the engine refused (each reported through `on_bad`).
    pub declarations_refused: u64,
    /// Declaration lines that did not parse. [`run`] never sees those: the
    /// caller that read the declarations fills this in.
    pub declarations_unparseable: u64,
}

/// An accuracy declaration waiting for stream time to reach its
/// `published_at`, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDeclaration {
    /// Where the declaration came from, e.g. `decls.jsonl:3` (file and line);
    /// a report about the declaration starts with it.
    pub origin: String,
    pub declaration: AccuracyDeclaration,
}

/// Parses JSON lines into events or bad-record reports; blank lines are skipped.
pub fn json_lines<R: BufRead>(reader: R) -> impl Iterator<Item = Result<TaskEvent, BadRecord>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let position = i as u64 + 1;
        match line {
            Err(e) => Some(Err(BadRecord {
                position,
                reason: format!("unreadable line: {e}"),
            })),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(
                decode_json(l.as_bytes()).map_err(|e: DecodeError| BadRecord {
                    position,
                    reason: e.to_string(),
                }),
            ),
        }
    })
}

/// Runs `events` through `engine`, writing outputs as JSON lines to `out`.
///
/// `declarations` are put in force when stream time reaches their
/// `published_at` (before events at that time; the ones published after the
/// last event, after all events). Refused ones are counted and reported
/// through `on_bad` with position 0 and a reason that starts with their
/// origin: `ORIGIN: declaration AGENT VERSION refused: WHY`.
///
/// ```
/// use std::sync::Arc;
/// use breakwater::{config::SloConfig, engine::Engine, event::*};
/// use breakwater::engine::accuracy::AccuracyDeclaration;
/// use breakwater::replay::{run, PendingDeclaration};
/// let events = (0..3).map(|i| Ok(TaskEvent::new(format!("e{i}"), "a", i * 1000, Outcome::Success)));
/// let declaration = |version: &str| AccuracyDeclaration {
///     agent_id: "a".into(),
///     version: version.into(),
///     declared_accuracy: [("task_completion".to_string(), 0.9)].into(),
///     measurement_method: "eval_suite".into(),
///     valid_for_days: 30,
///     published_at: 1000,
///     supersedes: None,
/// };
/// let declarations = vec![
///     PendingDeclaration { origin: "decls.jsonl:1".into(), declaration: declaration("1.0.0") },
///     // Does not supersede 1.0.0: refused.
///     PendingDeclaration { origin: "decls.jsonl:2".into(), declaration: declaration("2.0.0") },
/// ];
/// let mut out = Vec::new();
/// let mut refused = Vec::new();
/// let mut engine = Engine::new(Arc::new(SloConfig::default()));
/// let s = run(&mut engine, events, declarations, &mut out, |bad| refused.push(bad.reason.clone())).unwrap();
/// assert_eq!((s.events, s.agents), (3, 1));
/// assert_eq!((s.declarations_applied, s.declarations_refused), (1, 1));
/// assert!(refused[0].starts_with("decls.jsonl:2: declaration a 2.0.0 refused: "));
/// assert!(String::from_utf8(out).unwrap().contains("\"type\":\"budget_snapshot\""));
/// ```
pub fn run<W: Write>(
    engine: &mut Engine,
    events: impl Iterator<Item = Result<TaskEvent, BadRecord>>,
    mut declarations: Vec<PendingDeclaration>,
    mut out: W,
    mut on_bad: impl FnMut(&BadRecord),
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut buf: Vec<Output> = Vec::new();
    // Stable sort: declarations at the same instant keep their file order.
    declarations.sort_by_key(|d| d.declaration.published_at);
    let mut pending = declarations.into_iter().peekable();
    // Puts in force every declaration published by stream time `t`.
    let mut declare_until = |engine: &mut Engine,
                             t: TimestampMs,
                             buf: &mut Vec<Output>,
                             s: &mut ReplaySummary|
     -> Vec<BadRecord> {
        let mut refused = Vec::new();
        while let Some(p) = pending.next_if(|p| p.declaration.published_at <= t) {
            let PendingDeclaration {
                origin,
                declaration: d,
            } = p;
            engine.advance_to(d.published_at, buf);
            let what = format!("{origin}: declaration {} {}", d.agent_id, d.version);
            match engine.declare(d, buf) {
                Ok(()) => s.declarations_applied += 1,
                Err(e) => {
                    s.declarations_refused += 1;
                    refused.push(BadRecord {
                        position: 0,
                        reason: format!("{what} refused: {e}"),
                    });
                }
            }
        }
        refused
    };

    for item in events {
        summary.records += 1;
        let e = match item {
            Ok(e) => e,
            Err(bad) => {
                summary.bad_records += 1;
                on_bad(&bad);
                continue;
            }
        };
        for bad in declare_until(engine, e.timestamp, &mut buf, &mut summary) {
            on_bad(&bad);
        }
        engine.advance_to(e.timestamp, &mut buf);
        engine.process(&e, &mut buf);
        write_all(&mut out, &mut buf)?;
    }
    for bad in declare_until(engine, TimestampMs::MAX, &mut buf, &mut summary) {
        on_bad(&bad);
    }
    write_all(&mut out, &mut buf)?;
    for snap in engine.final_snapshots() {
        buf.push(Output::BudgetSnapshot(Box::new(snap)));
    }
    write_all(&mut out, &mut buf)?;
    out.flush()?;

    let stats = engine.stats();
    summary.events = stats.events;
    summary.duplicates = stats.duplicates;
    summary.late = stats.late;
    summary.transitions = stats.transitions;
    summary.alerts = stats.alerts;
    summary.agents = engine.len() as u64;
    Ok(summary)
}

fn write_all<W: Write>(out: &mut W, buf: &mut Vec<Output>) -> std::io::Result<()> {
    for o in buf.drain(..) {
        serde_json::to_writer(&mut *out, &o)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

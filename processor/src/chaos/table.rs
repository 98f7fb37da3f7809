//! The chaos report as a readable table.

use std::fmt::Write as _;

use super::Report;

impl Report {
    /// A readable table of the answers.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos report: scenario {} (seed {}), {} agents, {} events",
            self.scenario, self.seed, self.agents, self.events
        );
        let _ = writeln!(
            out,
            "\n{:<22} {:<20} {:>7} {:>7} {:<9} {:<26} {:>8} {:>7} {:<10} {:>9}",
            "agent",
            "fault",
            "from",
            "to",
            "detected",
            "by",
            "delay_s",
            "events",
            "recovered",
            "after_s"
        );
        for f in &self.faults {
            let _ = writeln!(
                out,
                "{:<22} {:<20} {:>7} {:>7} {:<9} {:<26} {:>8} {:>7} {:<10} {:>9}",
                f.agent_id,
                f.kind,
                mmss(f.start - self.start),
                mmss(f.end - self.start),
                yes(f.detected),
                f.detected_by.as_deref().unwrap_or("-"),
                opt(f.delay_seconds.map(|s| format!("{s:.1}"))),
                opt(f.delay_events.map(|n| n.to_string())),
                yes(f.recovered),
                opt(f.recovery_seconds.map(|s| format!("{s:.1}"))),
            );
        }
        let _ = writeln!(out, "\nfalse positives: {}", self.false_positives.len());
        for p in self.false_positives.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {} at {} ({})",
                p.agent_id,
                p.signal,
                mmss(p.at - self.start),
                if p.healthy_agent {
                    "healthy agent"
                } else {
                    "outside its faults"
                }
            );
        }
        let _ = writeln!(
            out,
            "budgets: {}/{} agents match a recomputation from the stream; {} snapshots cover the whole stream",
            self.budgets.matched, self.budgets.agents, self.budgets.covered
        );
        for m in self.budgets.mismatches.iter().take(20) {
            let _ = writeln!(
                out,
                "  {}: snapshot tasks {:?} failed {:?} remaining {:?}; recomputed {} / {} / {:?}",
                m.agent_id,
                m.snapshot_tasks,
                m.snapshot_failed,
                m.snapshot_remaining_percent,
                m.recomputed_tasks,
                m.recomputed_failed,
                m.recomputed_remaining_percent
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "summary: {}/{} detected, {}/{} recovered, {} false positives, budgets {}",
            s.detected,
            s.faults,
            s.recovered,
            s.faults,
            s.false_positives,
            if s.budgets_match {
                "match"
            } else {
                "DO NOT match"
            }
        );
        out
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn opt(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

/// Minutes:seconds after the scenario start.
fn mmss(ms: i64) -> String {
    let s = ms / 1000;
    format!("+{}:{:02}", s / 60, s % 60)
}

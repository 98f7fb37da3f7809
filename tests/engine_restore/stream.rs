//! Random input for the restore properties: multi-agent streams of task
//! events (failures, latencies, tool calls, hallucinations, violations,
//! delegation loops, evals, duplicates, late events), operator commands,
//! accuracy declarations and checkpoints, and how the shell feeds them.

use proptest::prelude::*;

use breakwater::engine::accuracy::AccuracyDeclaration;
use breakwater::engine::breaker::Command;
use breakwater::engine::{Clock, Engine};
use breakwater::event::{Eval, Outcome, TaskEvent, MAX_LATENCY_MS};
use breakwater::output::Output;

use super::{HOUR, MIN, T0};

/// One input record, or something the shell applies between records.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Event(TaskEvent),
    Command(String, Command),
    Declare(AccuracyDeclaration),
    /// A checkpoint: snapshot (and export) every changed agent.
    Checkpoint,
}

#[derive(Debug, Clone)]
pub(super) enum Step {
    Event {
        agent: u8,
        advance_ms: i64,
        late_ms: i64,
        outcome: Outcome,
        latency_ms: u64,
        tool_calls: u32,
        violations: u32,
        depth: u32,
        hallucination: Option<bool>,
        intent: Option<bool>,
        evals: Vec<(u8, bool)>,
    },
    /// Sends again the event this many events back (same id).
    Duplicate(usize),
    Command(u8, Command),
    Declare {
        agent: u8,
        categories: Vec<(u8, f64)>,
        age_ms: i64,
        bogus: bool,
    },
    Checkpoint,
}

const AGENTS: [&str; 5] = ["agent-0", "agent-1", "agent-12", "search", "finance"];
const CATEGORIES: [&str; 5] = [
    "cat_a",
    "cat_b",
    "factual_retrieval",
    "task_completion",
    "policy_compliance",
];

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Success),
        2 => Just(Outcome::Failure),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Unavailable),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::ForceOpen),
        Just(Command::ForceClose),
        Just(Command::Disable),
        Just(Command::Reset),
    ]
}

pub(super) fn step() -> impl Strategy<Value = Step> {
    let event = (
        (
            0..AGENTS.len() as u8,
            // Mostly seconds apart, sometimes a jump past cooldowns and windows.
            prop_oneof![8 => 0i64..20_000, 2 => 0i64..10 * MIN, 1 => 0i64..3 * HOUR],
            // Mostly in order; sometimes late, sometimes older than any window.
            prop_oneof![8 => Just(0i64), 2 => 0i64..10 * MIN, 1 => 0i64..3 * HOUR],
            outcome(),
            // Now and then 1 ms beside 30 days: the latency sketch collapses.
            prop_oneof![16 => 0u64..40_000, 2 => Just(0u64), 1 => 1u64..3, 1 => Just(MAX_LATENCY_MS)],
        ),
        (
            0u32..25,
            0u32..4,
            prop_oneof![6 => 0u32..3, 1 => 0u32..9],
            prop::option::of(prop::bool::weighted(0.2)),
            prop::option::of(any::<bool>()),
            prop::collection::vec((0..3u8, prop::bool::weighted(0.8)), 0..3),
        ),
    )
        .prop_map(
            |(
                (agent, advance_ms, late_ms, outcome, latency_ms),
                (calls, v, depth, h, i, evals),
            )| {
                Step::Event {
                    agent,
                    advance_ms,
                    late_ms,
                    outcome,
                    latency_ms,
                    tool_calls: calls,
                    violations: v.min(calls),
                    depth,
                    hallucination: h,
                    intent: i,
                    evals,
                }
            },
        );
    let declare = (
        0..AGENTS.len() as u8,
        prop::collection::vec((0..CATEGORIES.len() as u8, 0.5f64..1.0), 1..3),
        0i64..30 * HOUR,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(agent, categories, age_ms, bogus)| Step::Declare {
            agent,
            categories,
            age_ms,
            bogus,
        });
    prop_oneof![
        40 => event,
        3 => (1usize..40).prop_map(Step::Duplicate),
        1 => (0..AGENTS.len() as u8, command()).prop_map(|(a, c)| Step::Command(a, c)),
        1 => declare,
        3 => Just(Step::Checkpoint),
    ]
}

/// Turns steps into items with concrete times, ids and versions.
pub(super) fn items(steps: Vec<Step>) -> Vec<Item> {
    let mut now = T0;
    let mut events: Vec<TaskEvent> = Vec::new();
    let mut versions = [0u32; AGENTS.len()];
    let mut items = Vec::new();
    for (n, s) in steps.into_iter().enumerate() {
        items.push(match s {
            Step::Event {
                agent,
                advance_ms,
                late_ms,
                outcome,
                latency_ms,
                tool_calls,
                violations,
                depth,
                hallucination,
                intent,
                evals,
            } => {
                now += advance_ms;
                let agent = AGENTS[agent as usize];
                let mut e = TaskEvent::new(format!("e{n}"), agent, now - late_ms, outcome);
                e.latency_ms = latency_ms;
                e.tool_calls = tool_calls;
                e.policy_violations = violations;
                e.delegation_depth = depth;
                e.hallucination = hallucination;
                e.intent_met = intent;
                e.evals = evals
                    .into_iter()
                    .map(|(c, passed)| Eval {
                        category: CATEGORIES[c as usize].to_string(),
                        passed,
                    })
                    .collect();
                events.push(e.clone());
                Item::Event(e)
            }
            Step::Duplicate(back) if back <= events.len() => {
                Item::Event(events[events.len() - back].clone())
            }
            Step::Duplicate(_) => Item::Checkpoint,
            Step::Command(agent, cmd) => Item::Command(AGENTS[agent as usize].to_string(), cmd),
            Step::Declare {
                agent,
                categories,
                age_ms,
                bogus,
            } => {
                let v = &mut versions[agent as usize];
                let supersedes = (*v > 0 || bogus).then(|| format!("1.{}.0", v.saturating_sub(1)));
                if !bogus {
                    *v += 1;
                }
                Item::Declare(AccuracyDeclaration {
                    agent_id: AGENTS[agent as usize].to_string(),
                    version: format!("1.{}.0", *v),
                    declared_accuracy: categories
                        .into_iter()
                        .map(|(c, v)| (CATEGORIES[c as usize].to_string(), v))
                        .collect(),
                    measurement_method: "evals".into(),
                    valid_for_days: 1,
                    published_at: now - age_ms,
                    supersedes,
                })
            }
            Step::Checkpoint => Item::Checkpoint,
        });
    }
    items
}

/// Feeds `items[from..to]` to `engine` the way the shell does: runs of
/// events as batches (cut at the sizes in `sizes`, cycled) with their
/// offsets, on event time. Items other than events below `reflected` are
/// skipped: a restored state already reflects them. `checkpoint` runs at
/// each checkpoint item.
#[allow(clippy::too_many_arguments)]
pub(super) fn feed(
    engine: &mut Engine,
    items: &[Item],
    from: usize,
    to: usize,
    reflected: usize,
    sizes: &[usize],
    out: &mut Vec<Output>,
    checkpoint: &mut dyn FnMut(&mut Engine, &mut Vec<Output>),
) {
    let (mut events, mut offsets) = (Vec::new(), Vec::new());
    let mut cut = sizes.iter().cycle();
    let mut size = *cut.next().unwrap();
    let flush = |engine: &mut Engine,
                 events: &mut Vec<TaskEvent>,
                 offsets: &mut Vec<i64>,
                 out: &mut Vec<Output>| {
        engine.process_batch_at(events, offsets, Clock::EventTime, out);
        events.clear();
        offsets.clear();
    };
    for (j, item) in items.iter().enumerate().take(to).skip(from) {
        if let Item::Event(e) = item {
            events.push(e.clone());
            offsets.push(j as i64);
            if events.len() >= size {
                flush(engine, &mut events, &mut offsets, out);
                size = *cut.next().unwrap();
            }
            continue;
        }
        flush(engine, &mut events, &mut offsets, out);
        if j < reflected {
            continue;
        }
        match item {
            Item::Command(agent, cmd) => {
                engine.command(agent, *cmd, out);
            }
            Item::Declare(d) => {
                let _ = engine.declare(d.clone(), out);
            }
            Item::Checkpoint => checkpoint(engine, out),
            Item::Event(_) => unreachable!(),
        }
    }
    flush(engine, &mut events, &mut offsets, out);
}

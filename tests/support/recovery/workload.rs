//! Seeded randomness and the workload: agents of several failure kinds, events planned per partition.

#[allow(unused_imports)]
use super::*;

/// SplitMix64 of `x`: a stateless, well-mixed hash.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded generator (SplitMix64), for kill points and delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// One input event and the partition the test puts it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub partition: i32,
    pub agent: String,
    pub id: String,
    /// The event as JSON (the job's input and the oracle's input line).
    pub json: String,
}

/// The kinds of agent in a [`Workload`], by failure behaviour.
pub const KINDS: [&str; 4] = ["healthy", "bursty", "flaky", "broken"];

/// A seeded stream of events for `agents` agents over `partitions` input
/// partitions. Agent `i` is `<kind>-<i>` and lives in partition
/// `i % partitions`; kinds rotate so that every partition holds every kind:
/// - `healthy`: 1 % failures, budget HEALTHY;
/// - `bursty`: 2 % failures with two bursts of 90 % (the first with slow
///   tasks too): its breaker opens, half-opens and closes again;
/// - `flaky`: 12 %: its budget is exhausted (`circuit_break` in
///   [`CHAOS_SLO`]);
/// - `broken`: 45 %: its breaker opens over and over, cooldown doubling.
///
/// Events go round-robin over the agents, `spacing_ms` of event time apart
/// (synthetic timestamps from `t0`), so every partition's stream time is
/// increasing and the whole run is deterministic in event time. A few
/// TIMEOUT and UNAVAILABLE outcomes are mixed in.
pub struct Workload {
    pub seed: u64,
    pub agents: Vec<String>,
    pub partitions: i32,
    pub t0: i64,
    pub spacing_ms: i64,
    /// Every regular event, in the order they are produced.
    pub regular: Vec<Planned>,
}

impl Workload {
    pub fn new(seed: u64, agents: usize, partitions: i32, n: usize, t0: i64) -> Workload {
        let names: Vec<String> = (0..agents)
            .map(|i| {
                let kind = KINDS[(i / partitions as usize) % KINDS.len()];
                format!("{kind}-{i:02}")
            })
            .collect();
        let spacing_ms = 1000;
        let regular = (0..n)
            .map(|k| {
                let i = k % agents;
                let j = k / agents; // the agent's own event number
                let kind = (i / partitions as usize) % KINDS.len();
                let h = mix(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
                let in_burst = (40..60).contains(&j) || (120..135).contains(&j);
                let p_fail = match kind {
                    0 => 0.01,
                    1 if in_burst => 0.9,
                    1 => 0.02,
                    2 => 0.12,
                    _ => 0.45,
                };
                let r = (h % 10_000) as f64 / 10_000.0;
                let outcome = match (h >> 50) % 100 {
                    0 => "TIMEOUT",
                    1 => "UNAVAILABLE",
                    _ if r < p_fail => "FAILURE",
                    _ => "SUCCESS",
                };
                let slow = kind == 1 && (40..60).contains(&j) && (h >> 40).is_multiple_of(3);
                let latency = if slow { 45_000 } else { 800 + (h >> 20) % 2000 };
                let id = format!("e{k}");
                let e = json!({
                    "event_id": id,
                    "agent_id": names[i],
                    "timestamp": t0 + k as i64 * spacing_ms,
                    "outcome": outcome,
                    "latency_ms": latency,
                    "tool_calls": 1 + (h >> 30) % 5,
                });
                Planned {
                    partition: (i % partitions as usize) as i32,
                    agent: names[i].clone(),
                    id,
                    json: e.to_string(),
                }
            })
            .collect();
        Workload {
            seed,
            agents: names,
            partitions,
            t0,
            spacing_ms,
            regular,
        }
    }

    /// The input partition of `agent`.
    pub fn partition_of(&self, agent: &str) -> i32 {
        let i = self
            .agents
            .iter()
            .position(|a| a == agent)
            .unwrap_or_else(|| panic!("{agent} is no agent of the workload"));
        (i % self.partitions as usize) as i32
    }

    /// One last event per agent, all at the same event time, a minute after
    /// every regular event: produced last, they bring every partition's
    /// stream time to the same final instant, so that each agent's last
    /// snapshot and the oracle's final snapshot describe the same moment
    /// (the live job snapshots an agent when it changes, at its
    /// partition's stream time then, not at the end of the input).
    pub fn ticks(&self) -> Vec<Planned> {
        let t_end = self.t0 + self.regular.len() as i64 * self.spacing_ms + 60_000;
        self.agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let id = format!("tick-{agent}");
                let e = json!({
                    "event_id": id, "agent_id": agent, "timestamp": t_end,
                    "outcome": "SUCCESS", "latency_ms": 900, "tool_calls": 1,
                });
                Planned {
                    partition: (i % self.partitions as usize) as i32,
                    agent: agent.clone(),
                    id,
                    json: e.to_string(),
                }
            })
            .collect()
    }
}

/// An SLO file under which a [`Workload`] opens breakers (failure rate and
/// latency), half-opens them on timers, closes them on probes, doubles
/// cooldowns, exhausts budgets (with budget trips for `flaky-*`), and fires
/// and resolves alerts of most rules.
pub const CHAOS_SLO: &str = r#"
defaults:
  task_success_rate: 0.95
  window: 24h
  breaker:
    failure_threshold: 0.3
    cooldown_seconds: 60
    max_cooldown_seconds: 240
    min_calls: 6
    window: 5m
    half_open_probes: 2
  alerts:
    min_tasks: 10
  burn_rate:
    min_tasks: 10
agents:
  "flaky-*":
    on_budget_exhausted: circuit_break
"#;

//! The `breakwater` command line.

mod chaos;
mod live;
mod offline;

use std::io;

use anyhow::Result;
use clap::{Parser, Subcommand};

// Why not the system allocator: see `mimalloc` in processor/Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SLOs, error budgets, circuit breakers and alerts for fleets of AI agents.
#[derive(Parser)]
#[command(name = "breakwater", version, about)]
struct Cli {
    /// Log lines as text or as JSON objects (one per line, for log
    /// collectors). Logs go to stderr; RUST_LOG filters them.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BREAKWATER_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine over a file of events (timers on stream time) and print
    /// transitions, alerts and final snapshots as JSON lines.
    Replay(offline::ReplayArgs),
    /// Write a seeded, realistic stream of agent task events.
    Generate(offline::GenerateArgs),
    /// The streaming job: consume task events from Kafka in a consumer
    /// group and publish breaker states, alerts and budget snapshots.
    Run(live::RunArgs),
    /// Validate an accuracy declaration and publish it to the declarations topic.
    Declare(live::DeclareArgs),
    /// Send an operator command for an agent's breaker to the commands topic.
    Breaker(live::BreakerArgs),
    /// Produce a chaos scenario's traffic with injected faults (to the
    /// events topic or a file); `chaos report` checks what Breakwater caught.
    Chaos(chaos::ChaosArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_writer(io::stderr)
            .with_env_filter(filter)
            .init(),
        // Colours only on a terminal: logs in files and collectors stay plain text.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(io::stderr)
            .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
            .with_env_filter(filter)
            .init(),
    }
    match cli.command {
        Cmd::Replay(args) => offline::replay_cmd(args),
        Cmd::Generate(args) => offline::generate_cmd(args),
        Cmd::Run(args) => live::run_cmd(args),
        Cmd::Declare(args) => live::declare_cmd(args),
        Cmd::Breaker(args) => live::breaker_cmd(args),
        Cmd::Chaos(args) => chaos::chaos_cmd(args),
    }
}

//! `breakwater chaos`: produce a scenario's traffic (to the events topic or
//! a file) with a manifest of the injected faults, and `chaos report`: read
//! the job's outputs back and answer, per fault, whether Breakwater noticed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use breakwater::chaos::readback::read_outputs;
use breakwater::chaos::{ChaosScenario, Manifest, Outputs, Report};
use breakwater::config::{KafkaSettings, SloConfig};
use breakwater::event::TaskEvent;
use breakwater::kafka::client::{client_config, Role};
use breakwater::kafka::topics::ensure_topics;
use breakwater::output::Output;
use breakwater::replay;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: Option<ChaosCmd>,
    #[command(flatten)]
    produce: ProduceArgs,
}

#[derive(clap::Subcommand)]
enum ChaosCmd {
    /// Read the output topics back and report, per injected fault, whether
    /// the breaker tripped or the alert fired, how fast, whether it
    /// recovered, false positives, and budgets against a recomputation.
    Report(ReportArgs),
}

/// Where the Kafka settings come from (the `kafka:` section of the config).
#[derive(clap::Args)]
struct Kafka {
    /// Config file (YAML): SLOs and an optional `kafka:` section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers; overrides `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
}

impl Kafka {
    fn settings(&self) -> Result<KafkaSettings> {
        let config = match &self.config {
            Some(p) => SloConfig::load(p).with_context(|| format!("loading {}", p.display()))?,
            None => SloConfig::default(),
        };
        let mut s = KafkaSettings::from_section(config.kafka.as_ref(), std::env::vars())
            .context("the kafka section")?;
        if let Some(b) = &self.brokers {
            s.brokers = b.clone();
        }
        Ok(s)
    }
}

#[derive(clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    kafka: Kafka,
    /// Scenario file, e.g. scenarios/tool-failures.yaml.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Write the events (JSON lines) to this file instead of the events topic.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the ground truth of the injected faults (JSON) here.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Scale the fleet to about this many agents (each group keeps its share).
    #[arg(long)]
    agents: Option<usize>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Event time of the scenario start (epoch ms). Default: the file's
    /// `start`, else now (to the minute) when producing, else 2026-12-01.
    #[arg(long)]
    start: Option<i64>,
    /// Pace production so event time runs N times faster than the wall clock.
    #[arg(long, conflicts_with_all = ["as_fast_as_possible", "output"])]
    speed: Option<f64>,
    /// Produce as fast as the broker takes it (the default): event
    /// timestamps are synthetic; run the job with `kafka.timers: event_time`.
    #[arg(long)]
    as_fast_as_possible: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    #[command(flatten)]
    kafka: Kafka,
    /// The manifest `breakwater chaos --manifest` wrote.
    #[arg(long)]
    manifest: PathBuf,
    /// The generated events (JSON lines), as `chaos --output` wrote them.
    #[arg(long, conflicts_with = "scenario")]
    events: Option<PathBuf>,
    /// Or re-generate them from the scenario (same seed, start and agents
    /// as the manifest).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Read the outputs from this file (JSON lines, as `breakwater replay
    /// --output` writes them) instead of the output topics.
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// Signals up to this long after a fault's end are still its own.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long to wait for the output topics' end markers.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn chaos_cmd(args: ChaosArgs) -> Result<()> {
    match args.command {
        Some(ChaosCmd::Report(r)) => report_cmd(r),
        None => produce_cmd(args.produce),
    }
}

fn load_scenario(path: &Path) -> Result<ChaosScenario> {
    ChaosScenario::load(path).with_context(|| format!("scenario {}", path.display()))
}

fn produce_cmd(args: ProduceArgs) -> Result<()> {
    let Some(path) = &args.scenario else {
        bail!("--scenario is required (e.g. --scenario scenarios/tool-failures.yaml)");
    };
    let mut scenario = load_scenario(path)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(speed) = args.speed {
        if !(speed > 0.0 && speed.is_finite()) {
            bail!("--speed {speed}: expected a positive factor, e.g. 60");
        }
    }
    let start = args.start.or(scenario.start).or_else(|| {
        // Live: now, to the minute. To a file: the fixed default.
        args.output.is_none().then(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            now - now % 60_000
        })
    });
    let (generator, manifest) = scenario.resolve(start, args.agents);
    if let Some(m) = &args.manifest {
        write_manifest(m, &manifest)?;
    }
    let events = generator.events();
    let n = match &args.output {
        Some(p) => write_events(p, events)?,
        None => produce(&args.kafka.settings()?, events, manifest.start, args.speed)?,
    };
    eprintln!(
        "chaos {}: {} agents, {} events, {} faults injected",
        manifest.scenario,
        manifest.agents.len(),
        n,
        manifest.faults.len()
    );
    Ok(())
}

fn write_manifest(path: &Path, m: &Manifest) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, m)?;
    w.write_all(b"\n")?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn write_events(path: &Path, events: impl Iterator<Item = TaskEvent>) -> Result<u64> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(f);
    let mut n = 0;
    for e in events {
        serde_json::to_writer(&mut w, &e)?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

fn produce(
    settings: &KafkaSettings,
    events: impl Iterator<Item = TaskEvent>,
    start: i64,
    speed: Option<f64>,
) -> Result<u64> {
    let instance = format!("chaos-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = client_config(settings, Role::Admin, &instance)
        .create()
        .context("creating the admin client")?;
    ensure_topics(&admin, settings).context("creating the topics")?;
    let producer: BaseProducer = client_config(settings, Role::Producer, &instance)
        .create()
        .context("creating the producer")?;
    let topic = &settings.topics.events;
    let began = Instant::now();
    let mut n = 0u64;
    let mut buf = Vec::new();
    for e in events {
        if let Some(speed) = speed {
            let due =
                Duration::from_secs_f64(((e.timestamp - start).max(0) as f64 / 1000.0) / speed);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(wait);
            }
        }
        buf.clear();
        serde_json::to_writer(&mut buf, &e)?;
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .key(e.agent_id.as_str())
            .payload(&buf[..])
            .timestamp(e.timestamp);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((err, _)) => return Err(err).context(format!("producing to {topic}")),
            }
        }
        n += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("flushing {n} events to {topic}"))?;
    Ok(n)
}

fn report_cmd(args: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a chaos manifest", args.manifest.display()))?;
    let events: Vec<TaskEvent> = match (&args.events, &args.scenario) {
        (Some(p), _) => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            replay::json_lines(std::io::BufReader::new(f))
                .map(|r| {
                    r.map_err(|bad| {
                        anyhow::anyhow!("{}:{}: {}", p.display(), bad.position, bad.reason)
                    })
                })
                .collect::<Result<_>>()?
        }
        (None, Some(p)) => {
            let mut s = load_scenario(p)?;
            s.seed = manifest.seed;
            let (generator, again) = s.resolve(Some(manifest.start), Some(manifest.agents.len()));
            if again.agents != manifest.agents || again.faults != manifest.faults {
                bail!(
                    "{} does not re-generate the manifest's fleet and faults; pass --events",
                    p.display()
                );
            }
            generator.events().collect()
        }
        (None, None) => bail!("pass --events FILE or --scenario FILE (the generated stream)"),
    };
    let outputs = match &args.outputs {
        Some(p) => read_output_file(p)?,
        None => {
            let settings = args.kafka.settings()?;
            read_outputs(&settings, args.timeout).context("reading the output topics")?
        }
    };
    let report = Report::build(&manifest, &events, &outputs, args.grace.as_millis() as i64);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The records of a `breakwater replay` output file (JSON lines).
fn read_output_file(path: &Path) -> Result<Outputs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Outputs::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Output = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an output record", path.display(), i + 1))?;
        match record {
            Output::BreakerTransition(t) => out.transitions.push(t),
            Output::Alert(a) => out.alerts.push(a),
            Output::BudgetSnapshot(s) => out.snapshots.push(*s),
        }
    }
    Ok(out)
}

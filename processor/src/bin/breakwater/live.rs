//! The Kafka commands: `run` (the streaming job), `declare` (publish an
//! accuracy declaration) and `breaker` (an operator command).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use metrics_util::MetricKindMask;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use breakwater::config::{is_secret, HttpSettings, KafkaSettings, SloConfig};
use breakwater::engine::accuracy::AccuracyDeclaration;
use breakwater::engine::breaker::Command;
use breakwater::http::{self, Probes};
use breakwater::kafka::client::{client_config, Role};
use breakwater::kafka::job::instance_id;
use breakwater::kafka::{self, Control, OperatorCommand};

/// Where the Kafka settings come from (shared by every Kafka command).
#[derive(clap::Args)]
pub struct KafkaArgs {
    /// Config file (YAML): SLOs and an optional `kafka:` section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers, e.g. `localhost:9092`; overrides `kafka.brokers`
    /// and BREAKWATER_KAFKA_BOOTSTRAP_SERVERS.
    #[arg(long)]
    brokers: Option<String>,
}

impl KafkaArgs {
    fn load(&self) -> Result<(SloConfig, KafkaSettings)> {
        let config = match &self.config {
            Some(p) => SloConfig::load(p).with_context(|| format!("loading {}", p.display()))?,
            None => SloConfig::default(),
        };
        let mut settings = KafkaSettings::from_section(config.kafka.as_ref(), std::env::vars())
            .context("the kafka section")?;
        if let Some(b) = &self.brokers {
            settings.brokers = b.clone();
        }
        Ok((config, settings))
    }
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group id; overrides `kafka.group_id`.
    #[arg(long)]
    group_id: Option<String>,
    /// After a stop signal, how long to wait for outputs to be acknowledged
    /// before giving up (nothing uncommitted is lost: it is re-read).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
}

pub fn run_cmd(args: RunArgs) -> Result<()> {
    let (config, mut settings) = args.kafka.load()?;
    if let Some(g) = args.group_id {
        settings.group_id = g;
    }
    let http = HttpSettings::from_section(config.http.as_ref()).context("the http section")?;
    settings.series = http.series.clone();
    let control = Control::new();
    let probes = Probes::new(control.clone());
    // Gauges are set every snapshot interval; a series not set for three
    // intervals (an agent no longer exported) is dropped.
    let idle = Duration::from_millis(settings.snapshot_interval_ms as u64 * 3);
    serve_http(&http, &settings, probes.clone(), idle)?;
    watch_signals(control.clone(), args.shutdown_timeout)?;
    banner(&config, &settings, &http);
    let result = kafka::run(&settings, Arc::new(config), &control);
    probes.job_ended();
    let summary = result.context("the streaming job")?;
    tracing::info!(?summary, "stopped");
    Ok(())
}

/// The effective configuration, once, at start-up; secrets masked.
fn banner(config: &SloConfig, settings: &KafkaSettings, http: &HttpSettings) {
    let properties: Vec<String> = settings
        .properties
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) { "*****" } else { v.as_str() };
            format!("{k}={v}")
        })
        .collect();
    let t = &settings.topics;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        instance = %instance_id(),
        brokers = %settings.brokers,
        group = %settings.group_id,
        events = %t.events, breaker_state = %t.breaker_state, alerts = %t.alerts,
        snapshots = %t.snapshots, dead_letter = %t.dead_letter,
        declarations = %t.declarations, commands = %t.commands,
        new_topic_partitions = settings.create.partitions,
        snapshot_interval_ms = settings.snapshot_interval_ms,
        timers = ?settings.timers,
        input = ?settings.wire.input.format,
        output = ?settings.wire.output.format,
        registry = settings.wire.registry.as_ref().map_or("none", |r| r.url.as_str()),
        http = %http.listen.map_or("off".to_string(), |a| a.to_string()),
        max_agent_series = http.series.max_agents,
        slo_entries = config.slos().len(),
        properties = %properties.join(","),
        "breakwater run starting"
    );
}

/// Installs the Prometheus recorder and serves `/metrics`, `/healthz` and
/// `/readyz` on `http.listen` from a thread of its own. Binding happens
/// here, so a port in use fails start-up naming the key.
fn serve_http(
    http: &HttpSettings,
    settings: &KafkaSettings,
    probes: Probes,
    idle: Duration,
) -> Result<()> {
    let mut builder = PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(idle));
    for (name, buckets) in kafka::catalog::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
            .context("histogram buckets")?;
    }
    let handle = builder
        .install_recorder()
        .context("installing the metrics recorder")?;
    kafka::catalog::describe();
    let Some(addr) = http.listen else {
        return Ok(());
    };
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("http.listen: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    // Operator commands go through the commands topic, like `breakwater
    // breaker`, so every instance agrees on them.
    let operators = http.token.clone().map(|token| {
        let settings = settings.clone();
        http::Operators {
            token,
            sink: Arc::new(move |c: &OperatorCommand| {
                let payload = serde_json::to_vec(c).map_err(|e| e.to_string())?;
                publish(&settings, &settings.topics.commands, &c.agent_id, &payload)
                    .map_err(|e| format!("{e:#}"))
            }),
            now: Arc::new(now_ms),
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP thread")?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a bound listener");
                let app = http::router_with_operators(probes, Some(handle), operators);
                if let Err(e) = http::serve(listener, app).await {
                    tracing::error!(error = %e, "the HTTP server stopped");
                }
            })
        })
        .context("starting the HTTP thread")?;
    Ok(())
}

/// First SIGINT/SIGTERM: graceful stop. Second, or the timeout: abort.
fn watch_signals(control: Control, timeout: Duration) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal thread")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                tracing::info!("stop signal: finishing the batch, flushing, committing");
                control.stop();
                tokio::select! {
                    _ = term.recv() => tracing::warn!("second signal: aborting"),
                    _ = int.recv() => tracing::warn!("second signal: aborting"),
                    _ = tokio::time::sleep(timeout) => tracing::warn!("shutdown timeout: aborting"),
                }
                control.abort();
            })
        })
        .context("starting the signal thread")?;
    Ok(())
}

#[derive(clap::Args)]
pub struct DeclareArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    agent: String,
    /// Semantic version of this declaration, e.g. 1.2.0.
    #[arg(long)]
    version: String,
    /// The version this one replaces.
    #[arg(long)]
    supersedes: Option<String>,
    #[arg(long)]
    valid_for_days: i32,
    /// How the accuracy was measured, e.g. automated_eval_suite_v3.
    #[arg(long)]
    method: String,
    /// Declared accuracy per category: `name=value` with value in [0, 1].
    #[arg(required = true, value_name = "CATEGORY=ACCURACY")]
    accuracy: Vec<String>,
}

pub fn declare_cmd(args: DeclareArgs) -> Result<()> {
    let (_, settings) = args.kafka.load()?;
    let mut declared = std::collections::BTreeMap::new();
    for pair in &args.accuracy {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("{pair:?} is not CATEGORY=ACCURACY (e.g. task_completion=0.97)");
        };
        let v: f64 = value
            .parse()
            .with_context(|| format!("{pair:?}: {value:?} is not a number in [0, 1]"))?;
        declared.insert(name.to_string(), v);
    }
    let d = AccuracyDeclaration {
        agent_id: args.agent,
        version: args.version,
        declared_accuracy: declared,
        measurement_method: args.method,
        valid_for_days: args.valid_for_days,
        published_at: now_ms(),
        supersedes: args.supersedes,
    };
    d.validate_against(None).with_context(|| {
        format!(
            "declaration {} {} refused; nothing published",
            d.agent_id, d.version
        )
    })?;
    let payload = serde_json::to_vec(&d)?;
    publish(
        &settings,
        &settings.topics.declarations,
        &d.agent_id,
        &payload,
    )?;
    println!(
        "published declaration {} {} to {}",
        d.agent_id, d.version, settings.topics.declarations
    );
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum CommandArg {
    /// Hold the breaker OPEN until an operator says otherwise.
    ForceOpen,
    /// Back to CLOSED, keeping the window's counts.
    ForceClose,
    /// Never trip; let all work through.
    Disable,
    /// Back to CLOSED with a fresh window and the base cooldown.
    Reset,
}

#[derive(clap::Args)]
pub struct BreakerArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    agent: String,
    #[arg(value_enum)]
    command: CommandArg,
    /// Who is asking (logged by the job).
    #[arg(long)]
    operator: Option<String>,
}

pub fn breaker_cmd(args: BreakerArgs) -> Result<()> {
    let (_, settings) = args.kafka.load()?;
    let command = match args.command {
        CommandArg::ForceOpen => Command::ForceOpen,
        CommandArg::ForceClose => Command::ForceClose,
        CommandArg::Disable => Command::Disable,
        CommandArg::Reset => Command::Reset,
    };
    let c = OperatorCommand {
        agent_id: args.agent,
        command,
        issued_at: now_ms(),
        operator: args.operator,
    };
    let payload = serde_json::to_vec(&c)?;
    publish(&settings, &settings.topics.commands, &c.agent_id, &payload)?;
    println!(
        "sent {:?} for {} to {}",
        c.command, c.agent_id, settings.topics.commands
    );
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Produces one record and waits for the broker's acknowledgement.
fn publish(settings: &KafkaSettings, topic: &str, key: &str, payload: &[u8]) -> Result<()> {
    let mut config: ClientConfig = client_config(settings, Role::Producer, &instance_id());
    // An operator (or an HTTP client) is waiting: give up after 30 s rather
    // than librdkafka's 5 minutes, unless the config says otherwise.
    if !settings
        .client_properties(false)
        .contains_key("message.timeout.ms")
    {
        config.set("message.timeout.ms", "30000");
    }
    let producer: FutureProducer = config.create().context("creating the producer")?;
    let delivery = producer
        .send_result(FutureRecord::to(topic).key(key).payload(payload))
        .map_err(|(e, _)| e)
        .with_context(|| format!("producing to {topic}"))?;
    // The delivery report, not flush: flush succeeds once a record has
    // failed too, and the command must have reached the broker.
    futures::executor::block_on(delivery)
        .context("the producer went away")?
        .map_err(|(e, _)| e)
        .with_context(|| {
            format!(
                "{} did not acknowledge the record to {topic}",
                settings.brokers
            )
        })?;
    Ok(())
}

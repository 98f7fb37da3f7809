//! The offline commands: `replay` (the engine over a file, timers on
//! stream time) and `generate` (a seeded stream of realistic events).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::ValueEnum;

use breakwater::config::SloConfig;
use breakwater::decode::{read_avro_container, write_avro_container};
use breakwater::engine::Engine;
use breakwater::event::TaskEvent;
use breakwater::generate::Scenario;
use breakwater::replay::{self, BadRecord, PendingDeclaration};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// SLO configuration (YAML). Without it, the seed's defaults apply to every agent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Events: JSON lines or an Avro object container file; `-` for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Input format; `auto` looks for the Avro container magic bytes.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Accuracy declarations (JSON lines), put in force at their published_at.
    /// Lines that do not parse are reported and skipped.
    #[arg(long)]
    declarations: Option<PathBuf>,
    /// Where to write the JSON lines (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Scenario to generate.
    #[arg(long, value_enum, default_value_t = ScenarioName::Demo)]
    scenario: ScenarioName,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutFormat::Jsonl)]
    format: OutFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Auto,
    Jsonl,
    Avro,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Jsonl,
    Avro,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScenarioName {
    /// 9 agents over 2 h; a tool-failure burst and a delegation loop.
    Demo,
}

pub fn replay_cmd(args: ReplayArgs) -> Result<()> {
    let config = match &args.config {
        Some(p) => SloConfig::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => SloConfig::default(),
    };
    let (declarations, unparseable) = match &args.declarations {
        Some(p) => read_declarations(p)?,
        None => (Vec::new(), 0),
    };
    let mut input = open_input(&args.input)?;
    let mut head = Vec::new();
    input.by_ref().take(4).read_to_end(&mut head)?;
    let reader = BufReader::new(io::Cursor::new(head.clone()).chain(input));
    let avro = match args.format {
        Format::Avro => true,
        Format::Jsonl => false,
        Format::Auto => head == b"Obj\x01",
    };
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let out = BufWriter::new(out);
    let mut engine = Engine::new(Arc::new(config));
    let report = |bad: &BadRecord| {
        if bad.position == 0 {
            eprintln!("{}", bad.reason);
        } else {
            eprintln!("{}:{}: {}", args.input.display(), bad.position, bad.reason);
        }
    };
    let mut summary = if avro {
        let records = read_avro_container(reader).context("reading the Avro container header")?;
        let events = records.enumerate().map(|(i, r)| {
            r.map_err(|e| BadRecord {
                position: i as u64 + 1,
                reason: e.to_string(),
            })
        });
        replay::run(&mut engine, events, declarations, out, report)?
    } else {
        replay::run(
            &mut engine,
            replay::json_lines(reader),
            declarations,
            out,
            report,
        )?
    };
    summary.declarations_unparseable = unparseable;
    let declarations = if args.declarations.is_some() {
        format!(
            "; declarations: {} applied, {} refused, {} unparseable",
            summary.declarations_applied,
            summary.declarations_refused,
            summary.declarations_unparseable,
        )
    } else {
        String::new()
    };
    eprintln!(
        "replayed {} records: {} events, {} bad, {} duplicates, {} late; {} agents, {} transitions, {} alerts{declarations}",
        summary.records,
        summary.events,
        summary.bad_records,
        summary.duplicates,
        summary.late,
        summary.agents,
        summary.transitions,
        summary.alerts,
    );
    Ok(())
}

fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(f))
}

/// Reads accuracy declarations, one JSON object a line; blank lines are
/// skipped. A line that is not a declaration is reported on stderr as
/// `PATH:LINE: not an accuracy declaration: REASON` and skipped, like a bad
/// event line; the count of those is returned alongside the declarations.
/// Only a file that cannot be read at all is an error.
fn read_declarations(path: &Path) -> Result<(Vec<PendingDeclaration>, u64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut unparseable = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let mut de = serde_json::Deserializer::from_slice(line);
        // The path names the field at fault, e.g. `published_at: bad timestamp …`.
        let parsed = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| e.to_string())
            .and_then(|d| de.end().map(|()| d).map_err(|e| e.to_string()));
        match parsed {
            Ok(declaration) => out.push(PendingDeclaration {
                origin,
                declaration,
            }),
            Err(reason) => {
                unparseable += 1;
                eprintln!("{origin}: not an accuracy declaration: {reason}");
            }
        }
    }
    Ok((out, unparseable))
}

pub fn generate_cmd(args: GenerateArgs) -> Result<()> {
    let scenario = match args.scenario {
        ScenarioName::Demo => Scenario::demo(args.seed),
    };
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    match args.format {
        OutFormat::Jsonl => {
            for e in scenario.events() {
                serde_json::to_writer(&mut out, &e)?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Avro => {
            let events: Vec<TaskEvent> = scenario.events().collect();
            write_avro_container(&events, &mut out)?;
        }
    }
    out.flush()?;
    Ok(())
}

//! `concord sim`: run a scenario once, or sweep it over many seeds.
//!
//! A single run prints the run's summary and the result of its checks; with `--trace` it writes
//! every event as JSON Lines. A sweep (`--seeds A..B`) runs the seeds on all cores with a progress
//! bar, and prints, for every failing seed, the one command that replays it.

use crate::cmd::live;
use anyhow::Context;
use clap::Args;
use concord_core::time::parse_duration;
use concord_sim::protocols::LoadedScenario;
use concord_sim::steering::{SteeringLog, SteeringSettings};
use concord_sim::sweep::{parse_seed_range, sweep_file, SweepOptions};
use concord_sim::{Drawn, RunOptions, ScenarioFile};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// The scenario file (TOML), e.g. scenarios/gossip.toml.
    pub scenario: PathBuf,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Sweep seeds A..B (both included), e.g. 1..1000.
    #[arg(long, value_parser = parse_seed_range)]
    pub seeds: Option<std::ops::RangeInclusive<u64>>,
    /// Write the trace of the run (JSON Lines) to this file (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    pub trace: Option<PathBuf>,
    /// Write the client history (JSON Lines) to this file (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    pub history: Option<PathBuf>,
    /// Simulate this much virtual time instead of the scenario's run.duration, e.g. 60s.
    #[arg(long, value_parser = parse_duration)]
    pub until: Option<Duration>,
    /// Worker threads for a sweep (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Print the summary as JSON (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    pub json: bool,
    /// Run live and steer the run from the browser (the viewer page, served on 127.0.0.1): run,
    /// pause, step, crash and restart nodes, cut links, drop messages, send requests, fork.
    /// Without --until the run lasts 10 minutes of virtual time.
    #[arg(long, conflicts_with_all = ["seeds", "trace", "history", "json"])]
    pub interactive: bool,
    /// Port on 127.0.0.1 for --interactive (0: any free port).
    #[arg(long, default_value_t = 8091, requires = "interactive")]
    pub port: u16,
    /// Open the interactive page in the default browser.
    #[arg(long, requires = "interactive")]
    pub open: bool,
    /// Keep the scenario's nemesis (its faults and heal_at) in --interactive mode; by default you
    /// are the nemesis.
    #[arg(long, requires = "interactive")]
    pub keep_nemesis: bool,
    /// Number of workload clients in --interactive mode (default: the scenario's).
    #[arg(long, requires = "interactive")]
    pub clients: Option<u32>,
    /// For a scenario with an [explore] table: write the configuration this seed draws as a plain
    /// scenario file (no [explore]; the same seed then gives the same trace), e.g. to keep a
    /// failing seed as a regression test.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seeds", "interactive", "actions"])]
    pub emit_scenario: Option<PathBuf>,
    /// Replay a session saved from --interactive (its seed and settings come from the file): with
    /// --trace, the trace is the saved one, byte for byte; with --interactive, continue it live.
    #[arg(long, conflicts_with_all = ["seeds", "seed", "until", "keep_nemesis", "clients"])]
    pub actions: Option<PathBuf>,
}

/// Interactive runs last this long unless --until says otherwise.
const INTERACTIVE_DURATION: Duration = Duration::from_secs(600);

pub fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    let file = ScenarioFile::load(&args.scenario)?;
    let saved = match &args.actions {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read session {}", path.display()))?;
            Some(SteeringLog::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    if let Some(seeds) = &args.seeds {
        return run_sweep(args, &file, seeds.clone());
    }
    let seed = saved.as_ref().map_or(args.seed.unwrap_or(1), |log| log.seed);
    let (scenario, drawn) = file.for_seed(seed)?;
    if let Some(path) = &args.emit_scenario {
        let Some(drawn) = &drawn else {
            anyhow::bail!(
                "--emit-scenario needs a scenario with an [explore] table; {} has none",
                args.scenario.display()
            )
        };
        std::fs::write(path, &drawn.text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("seed {seed} drew: {}", drawn.summary());
        println!("wrote {} (run it with --seed {seed} for the same trace)", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if args.interactive {
        return run_interactive(args, &scenario, saved);
    }
    if let Some(log) = saved {
        return run_saved_session(args, &scenario, drawn.as_ref(), log);
    }
    run_one(args, &scenario, drawn.as_ref(), seed)
}

fn run_interactive(
    args: &SimArgs,
    scenario: &LoadedScenario,
    saved: Option<SteeringLog>,
) -> anyhow::Result<ExitCode> {
    let (seed, settings) = match &saved {
        Some(log) => (log.seed, log.settings.clone()),
        None => (
            args.seed.unwrap_or(1),
            SteeringSettings {
                nemesis: args.keep_nemesis,
                clients: args.clients,
                duration_ns: args.until.unwrap_or(INTERACTIVE_DURATION).as_nanos() as u64,
            },
        ),
    };
    let live_args = live::LiveArgs {
        scenario_path: args.scenario.display().to_string(),
        seed,
        settings,
        resume: saved,
        port: args.port,
        open: args.open,
    };
    live::run(scenario, live_args)
}

/// `--actions session.json` without `--interactive`: rebuild the session and judge it.
fn run_saved_session(
    args: &SimArgs,
    scenario: &LoadedScenario,
    drawn: Option<&Drawn>,
    log: SteeringLog,
) -> anyhow::Result<ExitCode> {
    let trace = open_trace(args)?;
    let seed = log.seed;
    let saved_hash = log.trace_hash.clone().filter(|_| log.saved_at.is_some());
    let actions = log.actions.len();
    let report = scenario
        .visit(live::Replay { log, trace, hash_trace: true })
        .map_err(|e| anyhow::anyhow!("cannot replay the session: {e}"))?;
    let hash = report.trace_hash.map(|h| format!("{h:016x}")).unwrap_or_default();
    let same = saved_hash.as_ref().is_none_or(|saved| *saved == hash);
    if !args.json {
        println!("session: {actions} actions replayed; trace hash {hash}");
        match &saved_hash {
            Some(saved) if same => println!("the same run as the saved session (trace hash {saved})"),
            Some(saved) => println!("DIFFERENT from the saved session: its trace hash was {saved}"),
            None => {}
        }
    }
    let code = print_report(args, scenario, drawn, seed, report)?;
    Ok(if same { code } else { ExitCode::from(1) })
}

/// The `--trace` file, opened for writing, if one was asked for.
fn open_trace(args: &SimArgs) -> anyhow::Result<Option<Box<dyn std::io::Write + Send>>> {
    let Some(path) = &args.trace else { return Ok(None) };
    let file = File::create(path).with_context(|| format!("cannot create trace file {}", path.display()))?;
    Ok(Some(Box::new(BufWriter::new(file))))
}

/// The command that replays one seed exactly.
fn replay_command(args: &SimArgs, seed: u64) -> String {
    let mut command = format!("concord sim {} --seed {seed}", args.scenario.display());
    if let Some(until) = args.until {
        command.push_str(&format!(" --until {}", humanize(until)));
    }
    command
}

/// For an exploring scenario: what a failing seed drew, and how to keep it as a plain scenario.
fn drawn_lines(args: &SimArgs, seed: u64, drawn: Option<&Drawn>) -> String {
    let Some(drawn) = drawn else { return String::new() };
    format!(
        "\n  drawn: {}\n  as a plain scenario: concord sim {} --seed {seed} --emit-scenario seed-{seed}.toml",
        drawn.summary(),
        args.scenario.display()
    )
}

fn humanize(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn run_one(
    args: &SimArgs,
    scenario: &LoadedScenario,
    drawn: Option<&Drawn>,
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let trace = open_trace(args)?;
    let report = scenario.run(RunOptions { seed, until: args.until, trace, hash_trace: false });
    print_report(args, scenario, drawn, seed, report)
}

/// Write the history, print the summary and the checks' verdict; exit status 1 when a check failed.
fn print_report(
    args: &SimArgs,
    scenario: &LoadedScenario,
    drawn: Option<&Drawn>,
    seed: u64,
    report: concord_sim::RunReport,
) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.history {
        std::fs::write(path, report.history.to_jsonl())
            .with_context(|| format!("cannot write history file {}", path.display()))?;
    }
    if args.json {
        let out = serde_json::json!({
            "seed": seed,
            "passed": report.passed(),
            "violations": report.violations,
            "trace_hash": report.trace_hash.map(|h| format!("{h:016x}")),
            "drawn": drawn.map(|d| d.values.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect::<serde_json::Map<_, _>>()),
            "summary": report.summary,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if !scenario.description().is_empty() {
            println!("{}", scenario.description());
        }
        println!("seed {seed}");
        if let Some(drawn) = drawn {
            println!("drawn: {}", drawn.summary());
        }
        println!("{}", report.summary);
        if let Some(path) = &args.trace {
            println!("trace: {} ({} events)", path.display(), report.summary.trace_lines);
        }
        if report.passed() {
            println!("PASS: every check held");
        } else {
            println!("FAIL: {} violation(s)", report.violations.len());
            for v in &report.violations {
                println!("  - {v}");
            }
            match &args.actions {
                Some(path) => {
                    println!("replay: concord sim {} --actions {}", args.scenario.display(), path.display())
                }
                None => println!("replay: {}", replay_command(args, seed)),
            }
            if let Some(drawn) = drawn {
                println!("\nThe configuration seed {seed} drew, as a plain scenario (keep it with --emit-scenario FILE):");
                println!("{}", drawn.text.trim_end());
            }
        }
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn run_sweep(
    args: &SimArgs,
    file: &ScenarioFile,
    seeds: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<ExitCode> {
    let total = seeds.end() - seeds.start() + 1;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds, {msg} (eta {eta})",
        )
        .expect("the template is valid"),
    );
    let failed = AtomicU64::new(0);
    bar.set_message("0 failed");
    let started = Instant::now();
    let options = SweepOptions { jobs: args.jobs, until: args.until, hash_trace: false };
    let results = sweep_file(file, seeds.clone(), &options, &|result| {
        if !result.passed() {
            let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
            bar.println(format!(
                "seed {} FAILED: {}{}\n  replay: {}",
                result.seed,
                result.violations.first().map_or("", String::as_str),
                drawn_lines(args, result.seed, result.drawn.as_ref()),
                replay_command(args, result.seed)
            ));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let wall = started.elapsed();
    let failures: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    let events: u64 = results.iter().map(|r| r.summary.events).sum();
    let virtual_s: f64 = results.iter().map(|r| r.summary.virtual_time.as_secs_f64()).sum();
    println!(
        "{} seeds ({}..={}) in {:.1}s wall: {} passed, {} failed; {} events ({:.0}/s), {:.0}s virtual",
        results.len(),
        seeds.start(),
        seeds.end(),
        wall.as_secs_f64(),
        results.len() - failures.len(),
        failures.len(),
        events,
        events as f64 / wall.as_secs_f64().max(1e-9),
        virtual_s,
    );
    for r in failures.iter().take(20) {
        println!(
            "FAIL seed {}: {}{}",
            r.seed,
            r.violations.join("; "),
            drawn_lines(args, r.seed, r.drawn.as_ref())
        );
        println!("  replay: {}", replay_command(args, r.seed));
    }
    if failures.len() > 20 {
        println!("… and {} more failing seeds", failures.len() - 20);
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

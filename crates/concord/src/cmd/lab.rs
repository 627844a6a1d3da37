//! `concord lab`: the labs – experiments run in the simulator, each writing a report.
//!
//! `concord lab raft-elections` repeats the Raft paper's election-timeout experiment (Figure 16):
//! it crashes the leader of a five-node cluster over and over, for several ranges of the election
//! timeout, prints the distribution of the time without a leader per range, and writes CDF plots
//! (SVG and PNG), `report.json` and `index.html` into the output directory.
//!
//! `concord lab eventual` measures eventual consistency on Concord's Dynamo (replica timelines,
//! PBS staleness curves, anomalies, Raft for comparison) and writes the same kind of report.

use clap::{Args, Subcommand};
use concord_lab::raft_elections::write_report;
use concord_lab::{run_raft_elections, ElectionOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub lab: Lab,
}

#[derive(Subcommand, Debug)]
pub enum Lab {
    /// The election-timeout experiment of the Raft paper (Figure 16).
    ///
    /// Example: concord lab raft-elections --trials 1000 --out out/raft-elections
    RaftElections(RaftElectionsArgs),
    /// Eventual consistency on Concord's Dynamo: replica timelines through a partition, PBS
    /// staleness curves (WARS model vs the real code), anomalies counted by the checkers, and the
    /// same workload on Raft. Guide: docs/labs/eventual.md.
    ///
    /// Example: concord lab eventual --out out/eventual --seeds 3
    /// One part: concord lab eventual --part 2 --authors-estimator   (1 propagation, 2 PBS model
    /// vs the paper, 3 simulator vs model, 4 anomalies, 5 Raft contrast)
    Eventual(EventualArgs),
}

#[derive(Args, Debug)]
pub struct EventualArgs {
    /// Where to write the plots (SVG, PNG), report.json, index.html and the latency CDF files.
    #[arg(long, default_value = "out/eventual")]
    pub out: PathBuf,
    /// Seeds per simulation (pooled); the first is --seed.
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A small version: two latency environments, shorter runs, one seed (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Run one part only: 1 propagation, 2 PBS model vs the paper, 3 simulator vs model,
    /// 4 anomalies, 5 Raft contrast.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub part: Option<u8>,
    /// WARS Monte Carlo trials per model curve (default: 200000, --quick 20000).
    #[arg(long)]
    pub wars_trials: Option<usize>,
    /// Also estimate the times to 99.9 % as the paper's authors did: fresh trials at every t,
    /// the first t whose estimate reaches 99.9 % (slow: seconds per curve in a release build).
    #[arg(long)]
    pub authors_estimator: bool,
    /// Fresh trials per t for --authors-estimator (the paper's Table 4: 50000).
    #[arg(long, default_value_t = 50_000)]
    pub authors_trials: usize,
}

#[derive(Args, Debug)]
pub struct RaftElectionsArgs {
    /// Where to write the plots (SVG, PNG), report.json and index.html.
    #[arg(long, default_value = "out/raft-elections")]
    pub out: PathBuf,
    /// Leader crashes per timeout range (the paper: 1000).
    #[arg(long, default_value_t = 1000)]
    pub trials: usize,
    /// Leader crashes for the zero-width range 150–150 ms (the paper: 100; its split votes are slow).
    #[arg(long, default_value_t = 100)]
    pub trials_zero_width: usize,
    /// The seed; each range runs its own simulation seeded from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Lowest one-way network latency, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub latency_min_ms: f64,
    /// Highest one-way network latency, in milliseconds (latency is uniform in between).
    #[arg(long, default_value_t = 10.0)]
    pub latency_max_ms: f64,
    /// Campaign with pre-vote (dissertation §9.6; the paper's experiment had none).
    #[arg(long)]
    pub pre_vote: bool,
}

pub fn run(args: &LabArgs) -> anyhow::Result<ExitCode> {
    match &args.lab {
        Lab::RaftElections(a) => raft_elections(a),
        Lab::Eventual(a) => eventual(a),
    }
}

fn eventual(args: &EventualArgs) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let mut options = if args.quick {
        concord_lab::EventualOptions::quick(args.seed)
    } else {
        concord_lab::EventualOptions::full(args.seed, args.seeds)
    };
    if let Some(part) = args.part {
        options = options.only_part(part as usize);
    }
    if let Some(trials) = args.wars_trials {
        anyhow::ensure!(trials >= 1000, "--wars-trials must be at least 1000");
        options.wars_trials = trials;
    }
    if args.authors_estimator {
        anyhow::ensure!(args.authors_trials >= 1000, "--authors-trials must be at least 1000");
        options.authors =
            Some(concord_lab::eventual::pbs::AuthorsEstimator { trials_per_t: args.authors_trials });
    }
    let bar = ProgressBar::new(options.jobs() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} simulations, {elapsed} – {msg}")
            .expect("a valid template"),
    );
    let wall = Instant::now();
    let report = concord_lab::run_eventual(&options, &args.out, &|done: &str| {
        bar.set_message(done.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print!("{}", report.summary());
    println!(
        "ran {} jobs (simulations and model runs) in {:.1} s",
        options.jobs(),
        wall.elapsed().as_secs_f64()
    );
    for path in concord_lab::eventual::write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn raft_elections(args: &RaftElectionsArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        0.0 < args.latency_min_ms && args.latency_min_ms < args.latency_max_ms,
        "need 0 < --latency-min-ms < --latency-max-ms"
    );
    let options = ElectionOptions {
        trials: args.trials,
        trials_zero_width: args.trials_zero_width,
        seed: args.seed,
        pre_vote: args.pre_vote,
        latency_min: Duration::from_secs_f64(args.latency_min_ms / 1e3),
        latency_max: Duration::from_secs_f64(args.latency_max_ms / 1e3),
        ..ElectionOptions::default()
    };
    let wall = Instant::now();
    let report = run_raft_elections(&options)?;
    println!(
        "Raft elections: 5 nodes, one-way latency {:.1}–{:.1} ms, pre-vote {}, seed {}",
        report.latency_ms.0,
        report.latency_ms.1,
        if report.pre_vote { "on" } else { "off" },
        report.seed
    );
    print!("{}", report.table());
    let virtual_secs: f64 = report.ranges.iter().map(|r| r.virtual_secs).sum();
    println!("simulated {virtual_secs:.0} s of virtual time in {:.1} s", wall.elapsed().as_secs_f64());
    for path in write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

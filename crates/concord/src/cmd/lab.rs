//! `concord lab`: the labs – experiments run in the simulator, each writing a report.
//!
//! `concord lab raft-elections` repeats the Raft paper's election-timeout experiment (Figure 16):
//! it crashes the leader of a five-node cluster over and over, for several ranges of the election
//! timeout, prints the distribution of the time without a leader per range, and writes CDF plots
//! (SVG and PNG), `report.json` and `index.html` into the output directory.

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
    }
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

//! `concord design`: requirements → a design (shards, replicas, placement, quorums, cache), each
//! choice with its arithmetic and the alternatives it rejected, then validated in the simulator
//! (Lab 2; guide: docs/labs/design.md; the library is `concord_lab::design`).
//!
//! Prints the design and every requirement met or missed; writes `index.html`, `report.json`,
//! plots (SVG, PNG) and each simulation's scenario file into `--out`. Exit status 0 when every
//! requirement is met, 1 when one is missed, 2 on a bad requirements file.

use clap::Args;
use concord_lab::design::{self, requirements::Requirements, DesignOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct DesignArgs {
    /// The requirements file (TOML; examples in labs/design/).
    pub scenario: PathBuf,
    /// Where to write index.html, report.json, the plots and the scenario files.
    #[arg(long, default_value = "out/design")]
    pub out: PathBuf,
    /// Shorter simulations and fewer PBS trials (seconds, for a first look and for tests).
    #[arg(long)]
    pub quick: bool,
    /// The design and its arithmetic only: no simulation.
    #[arg(long)]
    pub no_validate: bool,
    /// The seed of the simulations and of the PBS Monte Carlo (same seed, same report).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: &DesignArgs) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    let req = Requirements::load(&args.scenario)?;
    let options = DesignOptions::new(args.seed, args.quick, !args.no_validate);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} simulations, {elapsed} – {msg}")
            .expect("a valid template"),
    );
    let wall = Instant::now();
    let report = design::run_design(&req, &options, &|done: &str| {
        bar.set_message(done.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print!("{}", report.summary());
    if options.validate {
        println!("ran {} simulations in {:.1} s", report.runs.len(), wall.elapsed().as_secs_f64());
    }
    let written = design::write_report(&report, &args.out)?;
    println!(
        "wrote {} files into {} (open {})",
        written.len(),
        args.out.display(),
        args.out.join("index.html").display()
    );
    Ok(if report.all_met() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

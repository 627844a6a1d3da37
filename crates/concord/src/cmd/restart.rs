//! `concord restart N`: ask the `concord up` that supervises a data directory to (re)start node N.
//! The supervisor does the work (`concord_server::cluster`); this only sends the request over its
//! control socket and prints the answer.

use concord_server::cluster::control;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct RestartArgs {
    /// The node to restart (1-based, as `concord up` numbers them).
    #[arg(required_unless_present_any = ["status", "all"])]
    pub node: Option<u32>,
    /// Restart every node, one at a time: the next only once the last is back and caught up (a
    /// rolling restart: the cluster keeps a quorum throughout).
    #[arg(long, conflicts_with_all = ["node", "status"])]
    pub all: bool,
    /// The data directory `concord up` was started with.
    #[arg(long, default_value = "./concord-data")]
    pub data: PathBuf,
    /// Print which nodes run (with their pids) instead of restarting one.
    #[arg(long, conflicts_with = "node")]
    pub status: bool,
}

pub fn run(args: &RestartArgs) -> anyhow::Result<ExitCode> {
    if args.all {
        concord_server::cluster::rolling_restart(&args.data, |step| println!("{step}"))?;
        println!("every node restarted");
        return Ok(ExitCode::SUCCESS);
    }
    let command = match args.node {
        Some(node) => format!("restart {node}"),
        None => "status".to_string(),
    };
    let answer = control::request(&args.data, &command)?;
    for part in answer.split("; ") {
        println!("{part}");
    }
    Ok(ExitCode::SUCCESS)
}

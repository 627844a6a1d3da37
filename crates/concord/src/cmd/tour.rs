//! `concord tour`: the guided first run. Flags here; the tour is `concord_server::tour`.

use concord_server::tour::TourOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// `concord tour`: a cluster, writes, the leader killed, the failover, the node back.
#[derive(clap::Args, Debug, Clone)]
pub struct TourArgs {
    /// Data directory of the tour's cluster (running the tour again resumes it).
    #[arg(long, default_value = "./concord-tour")]
    pub data: PathBuf,
    /// RESP port of the first node (node i: this + i).
    #[arg(long, default_value_t = 6379)]
    pub redis_port: u16,
    /// HTTP port of the first node: its dashboard is http://127.0.0.1:PORT/.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Raft peer port of the first node.
    #[arg(long, default_value_t = 7379)]
    pub peer_port: u16,
    /// Writes before and after the failover.
    #[arg(long, default_value_t = 100)]
    pub writes: u32,
    /// Keep the cluster running at the end (Ctrl-C stops it), to explore the dashboard.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: &TourArgs) -> anyhow::Result<ExitCode> {
    let options = TourOptions {
        data: args.data.clone(),
        redis_port: args.redis_port,
        http_port: args.http_port,
        peer_port: args.peer_port,
        writes: args.writes,
        keep: args.keep,
    };
    concord_server::tour::run(&options, |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}

//! `concord up`: a local cluster of `concord serve` processes. Here the flags are parsed into
//! `concord_server::cluster::UpOptions`; the supervisor is `concord_server::cluster::up`.

use super::serve::QuorumArgs;
use concord_server::cluster::{RestartPolicy, UpOptions};
use concord_server::config::Mode;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(args: &UpArgs) -> anyhow::Result<ExitCode> {
    concord_server::cluster::up(&args.to_options())?;
    Ok(ExitCode::SUCCESS)
}

/// `concord up`: a local cluster of separate processes.
#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Data directory: node i keeps its WAL in DATA/node<i>; the cluster id and secret are kept in
    /// DATA/cluster.id and DATA/cluster.secret (generated on first run, reused after).
    #[arg(long, default_value = "./concord-data")]
    pub data: PathBuf,
    /// RESP port of the first node; node i (0-based) listens on this + i.
    #[arg(long, default_value_t = 6379)]
    pub redis_port: u16,
    /// HTTP port of the first node.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Raft peer port of the first node.
    #[arg(long, default_value_t = 7379)]
    pub peer_port: u16,
    /// The address every port binds to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Log filter passed to every node.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Do not fdatasync (benchmarks only).
    #[arg(long)]
    pub no_fsync: bool,
    /// Test clusters only: every node gets `--allow-fault-injection` (the dashboard's partition,
    /// heal, stop and restart buttons; in the eventual and sharded modes the same endpoints,
    /// `POST /v1/faults/…`, without buttons).
    #[arg(long)]
    pub allow_fault_injection: bool,
    /// TLS on every port, with a throwaway CA and node certificates generated under DATA/tls
    /// (clients trust DATA/tls/ca.pem: `redis-cli --tls --cacert`, `curl --cacert`).
    #[arg(long)]
    pub tls: bool,
    /// strong (Raft, the default), eventual (Dynamo-style: any node serves any request, N/R/W
    /// quorums, siblings, hinted handoff, anti-entropy) or sharded (many Raft groups; --shards).
    #[arg(long, default_value = "strong", value_name = "MODE", value_parser = Mode::parse)]
    pub mode: Mode,
    /// Strong mode: a Raft snapshot (checkpoint and log compaction) every this many entries.
    #[arg(long, value_name = "ENTRIES")]
    pub snapshot_count: Option<u64>,
    /// Strong mode: each node's state-database page cache in MiB (default 64).
    #[arg(long, value_name = "MIB")]
    pub state_cache_mb: Option<usize>,
    #[command(flatten)]
    pub quorums: QuorumArgs,
    /// Sharded mode: split the 16 384 slots into this many shards, each its own Raft group
    /// (implies --mode sharded).
    #[arg(long, value_name = "S")]
    pub shards: Option<u32>,
    /// Sharded mode: replicas per shard [default: 3, at most --nodes].
    #[arg(long = "replicas", id = "shard_replicas", value_name = "R")]
    pub shard_replicas: Option<usize>,
    /// What to do when a node exits on its own: `never` (report it; the others keep serving;
    /// `concord restart N` brings it back) or `on-failure` (start it again after 1 s, 2 s, 4 s, …
    /// up to 30 s; a clean stop is not a failure).
    #[arg(long, default_value = "never", value_name = "POLICY", value_parser = parse_restart)]
    pub restart: RestartPolicy,
    /// Cache nodes (`concord cache`) to start beside the cluster, each in front of every node:
    /// read-through GET, write-through SET, invalidated by the nodes' change feeds (docs/cache.md).
    #[arg(long = "cache", default_value_t = 0, value_name = "C")]
    pub caches: u32,
    /// RESP port of the first cache node; cache node i (0-based) listens on this + i.
    #[arg(long, default_value_t = 6400)]
    pub cache_port: u16,
    /// HTTP port (metrics, dashboard) of the first cache node.
    #[arg(long, default_value_t = 8400)]
    pub cache_http_port: u16,
}

fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    match text {
        "never" | "no" => Ok(RestartPolicy::Never),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        other => Err(format!("unknown restart policy {other:?}: never or on-failure")),
    }
}

impl UpArgs {
    /// The cluster these flags describe.
    pub fn to_options(&self) -> UpOptions {
        UpOptions {
            nodes: self.nodes,
            data: self.data.clone(),
            redis_port: self.redis_port,
            http_port: self.http_port,
            peer_port: self.peer_port,
            bind: self.bind,
            log: self.log.clone(),
            no_fsync: self.no_fsync,
            allow_fault_injection: self.allow_fault_injection,
            tls: self.tls,
            // --shards alone asks for the sharded mode.
            mode: if self.shards.is_some() && self.mode == Mode::Strong { Mode::Sharded } else { self.mode },
            snapshot_count: self.snapshot_count,
            state_cache_mb: self.state_cache_mb,
            quorums: self.quorums.to_options(),
            shards: self.shards,
            shard_replicas: self.shard_replicas,
            restart: self.restart,
            caches: self.caches,
            cache_port: self.cache_port,
            cache_http_port: self.cache_http_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct UpCommand {
        #[command(flatten)]
        args: UpArgs,
    }

    /// The library's defaults are the command's: a test cluster built from `UpOptions::default()`
    /// is what `concord up` with no flags starts.
    #[test]
    fn up_defaults_are_the_librarys() {
        let parsed = UpCommand::try_parse_from(["up"]).unwrap().args.to_options();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", UpOptions::default()));
    }
}

//! `concord member` and `concord join`: membership of a running cluster. Here the flags are
//! parsed; the calls to the cluster are `concord_server::membership`.

use super::serve::ServeArgs;
use concord_server::config::PeerConfig;
use concord_server::membership;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(args: &MemberArgs) -> anyhow::Result<ExitCode> {
    let answer = membership::member(&args.command.to_command())?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}

/// `concord join`: start a node and have the cluster add it.
pub fn join(args: &JoinArgs) -> anyhow::Result<ExitCode> {
    membership::join(args.serve.to_config()?, args.via, args.learner_only)?;
    Ok(ExitCode::SUCCESS)
}

/// `concord join`: `concord serve --join` and `concord member add` in one step.
#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    /// The new node, as for `concord serve` (`--id`, `--data`, `--peer-addr`, `--http-addr`, one
    /// `--peer` per member, the cluster secret); `--join` is implied.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// HTTP address of any member of the running cluster: it is asked to add this node.
    #[arg(long, value_name = "ADDR")]
    pub via: SocketAddr,
    /// Stay a learner (receives the log, does not vote).
    #[arg(long)]
    pub learner_only: bool,
}

/// `concord member`: list, add and remove cluster members through the HTTP API.
#[derive(clap::Args, Debug)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum MemberCommand {
    /// Show members, roles, term, leader and replication progress.
    List(MemberTarget),
    /// Add a node (started with `concord serve --join`): every member learns its address, the
    /// leader adds it as a learner, and promotes it to voter once it has caught up.
    Add {
        #[command(flatten)]
        target: MemberTarget,
        /// The new node's id.
        #[arg(long)]
        id: u32,
        /// The new node's peer (Raft) address.
        #[arg(long)]
        peer_addr: SocketAddr,
        #[arg(long)]
        node_http_addr: Option<SocketAddr>,
        #[arg(long)]
        node_redis_addr: Option<SocketAddr>,
        /// Stop after adding it as a learner (no vote).
        #[arg(long)]
        learner_only: bool,
    },
    /// Remove a member (the leader itself included: it steps down once the change commits).
    Remove {
        #[command(flatten)]
        target: MemberTarget,
        #[arg(long)]
        id: u32,
    },
}

/// Which node to talk to, and how to prove the right to.
#[derive(clap::Args, Debug, Clone)]
pub struct MemberTarget {
    /// HTTP address of any member.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The cluster secret file (sent as `Authorization: Bearer …`); not needed for `list`, nor
    /// with nodes started with --allow-admin.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Talk HTTPS and trust this CA certificate: for nodes started with TLS (`concord up --tls`
    /// writes it to DATA/tls/ca.pem). Every member is then called over HTTPS. The nodes ask
    /// HTTP clients for no certificate, so none is needed here.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
}

impl MemberCommand {
    /// The library's form of this command.
    pub fn to_command(&self) -> membership::MemberCommand {
        match self {
            MemberCommand::List(target) => membership::MemberCommand::List(target.to_target()),
            MemberCommand::Add { target, id, peer_addr, node_http_addr, node_redis_addr, learner_only } => {
                membership::MemberCommand::Add {
                    target: target.to_target(),
                    peer: PeerConfig {
                        id: *id,
                        addr: *peer_addr,
                        http_addr: *node_http_addr,
                        redis_addr: *node_redis_addr,
                    },
                    learner_only: *learner_only,
                }
            }
            MemberCommand::Remove { target, id } => {
                membership::MemberCommand::Remove { target: target.to_target(), id: *id }
            }
        }
    }
}

impl MemberTarget {
    /// The library's form of this target.
    pub fn to_target(&self) -> membership::MemberTarget {
        membership::MemberTarget {
            http: self.http,
            secret_file: self.secret_file.clone(),
            secret: None,
            tls_ca: self.tls_ca.clone(),
        }
    }
}

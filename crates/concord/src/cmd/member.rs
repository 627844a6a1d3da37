//! `concord member` and `concord join`: membership of a running cluster. Here the flags are
//! parsed; the calls to the cluster are `concord_server::membership`.

use super::serve::ServeArgs;
use concord_server::config::PeerConfig;
use concord_server::membership;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(args: &MemberArgs) -> anyhow::Result<ExitCode> {
    let Some(command) = args.command.to_command() else {
        // `rebuild` starts a node and runs it, like `concord join`: not one call.
        if let MemberCommand::Rebuild(rebuild) = &args.command {
            membership::rebuild(rebuild.serve.to_config()?, rebuild.via)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let answer = membership::member(&command)?;
    match &args.command {
        MemberCommand::List { json: false, .. } if answer["members"].is_array() => {
            print!("{}", members_table(&answer))
        }
        _ => println!("{}", serde_json::to_string_pretty(&answer)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET /v1/cluster` as a person reads it: who answered, the leader and term, then one row per
/// member with its role, addresses and (asked of the leader) replication progress.
pub fn members_table(cluster: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "node {} answered: {}, term {}, leader {}, commit {}, applied {}\n",
        text(&cluster["node"]),
        text(&cluster["role"]),
        text(&cluster["term"]),
        text(&cluster["leader"]),
        text(&cluster["commit_index"]),
        text(&cluster["applied_index"]),
    );
    let mut rows =
        vec![["ID", "ROLE", "VOTER", "PEER", "HTTP", "REDIS", "MATCH", "LAG"].map(String::from).to_vec()];
    for m in cluster["members"].as_array().into_iter().flatten() {
        rows.push(vec![
            text(&m["id"]),
            text(&m["role_as_seen_here"]),
            if m["voter"] == true { "yes" } else { "no" }.to_string(),
            text(&m["peer_addr"]),
            text(&m["http_addr"]),
            text(&m["redis_addr"]),
            text(&m["match_index"]),
            text(&m["lag"]),
        ]);
    }
    out.push_str(&super::aligned(&rows));
    if cluster["role"] != "leader" {
        out.push_str("(replication progress is known to the leader: ask it for MATCH and LAG)\n");
    }
    out
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
    /// Show members, roles, term, leader and replication progress (a table; --json for the API's
    /// answer).
    List {
        #[command(flatten)]
        target: MemberTarget,
        /// Print `GET /v1/cluster`'s JSON as it is.
        #[arg(long)]
        json: bool,
    },
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
        /// The new node's HTTP address, so that members can forward to it and dashboards show it.
        #[arg(long)]
        node_http_addr: Option<SocketAddr>,
        /// The new node's RESP address, so that `CLUSTER`-style answers and dashboards show it.
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
        /// The member to remove.
        #[arg(long)]
        id: u32,
    },
    /// Rebuild a node that lost its data (a wiped, lost or corrupt data directory; its peers refuse
    /// it as "another incarnation") from its peers, under its old id: remove it through the leader,
    /// move its data directory aside to DIR.broken-<unix time>, start it fresh as a learner that
    /// catches up, promote it once caught up – then keep running it. Run on the node's machine, with
    /// the node stopped and the flags it is served with; running it again resumes.
    Rebuild(Box<RebuildArgs>),
}

/// `concord member rebuild`: the node's own flags, and a member to rebuild it from.
#[derive(clap::Args, Debug)]
pub struct RebuildArgs {
    /// The node to rebuild, as for `concord serve` (`--id`, `--data`, `--peer-addr`, `--http-addr`,
    /// one `--peer` per member, the cluster secret).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// HTTP address of another member of the cluster: the removal and the re-add go through it.
    #[arg(long, value_name = "ADDR")]
    pub via: SocketAddr,
}

/// Which node to talk to, and how to prove the right to.
#[derive(clap::Args, Debug, Clone)]
pub struct MemberTarget {
    /// HTTP address of any member.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The cluster secret file (each call carries a proof of it, not the secret); not needed for `list`, nor
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
    /// The library's form of this command (`None` for `rebuild`, which is
    /// `membership::rebuild`, a node run rather than a call).
    pub fn to_command(&self) -> Option<membership::MemberCommand> {
        Some(match self {
            MemberCommand::List { target, .. } => membership::MemberCommand::List(target.to_target()),
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
            MemberCommand::Rebuild(_) => return None,
        })
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

#[cfg(test)]
mod tests {
    use super::members_table;

    #[test]
    fn member_list_is_a_table() {
        let cluster = serde_json::json!({
            "node": 1, "role": "leader", "term": 3, "leader": 1, "commit_index": 42, "applied_index": 42,
            "members": [
                {"id": 1, "voter": true, "role_as_seen_here": "leader", "peer_addr": "127.0.0.1:7379",
                 "http_addr": "127.0.0.1:8080", "redis_addr": "127.0.0.1:6379"},
                {"id": 2, "voter": true, "role_as_seen_here": "follower", "peer_addr": "127.0.0.1:7380",
                 "http_addr": "127.0.0.1:8081", "redis_addr": null, "match_index": 40, "lag": 2},
            ],
        });
        let table = members_table(&cluster);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "node 1 answered: leader, term 3, leader 1, commit 42, applied 42");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["ID", "ROLE", "VOTER", "PEER", "HTTP", "REDIS", "MATCH", "LAG"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["2", "follower", "yes", "127.0.0.1:7380", "127.0.0.1:8081", "-", "40", "2"]
        );
        assert_eq!(lines[1].find("ROLE"), lines[2].find("leader"), "columns line up");
    }
}

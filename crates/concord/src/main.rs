//! `concord` – simulate, check and run Concord clusters.
//!
//! One binary, one subcommand per job; each subcommand lives in its own file under `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than the system allocator: a server answers each pipelined request with a few
/// short-lived allocations across threads, where glibc's malloc, free and their consolidation were
/// about 15 % of the node's samples (docs/bench/redis-door.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concord: a distributed key-value database, and a laboratory for distributed systems.
///
/// The same protocol code (Raft, gossip, …) runs in a deterministic simulator – virtual time,
/// seeded randomness, injected faults – and, later, in a real cluster.
#[derive(Parser)]
#[command(name = "concord", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A guided first run: a three-node cluster of real processes, writes, `kill -9` of the leader,
    /// the failover, the node restarted and caught up – every number measured in this run.
    ///
    /// Examples:
    ///   concord tour                                  # then open http://127.0.0.1:8080/
    ///   concord tour --keep                           # leave the cluster running afterwards
    #[command(verbatim_doc_comment)]
    Tour(cmd::tour::TourArgs),
    /// Run a simulation scenario (one seed, or a sweep over many seeds on all cores).
    ///
    /// Examples:
    ///   concord sim scenarios/gossip.toml                      # seed 1, print a summary
    ///   concord sim scenarios/gossip.toml --seed 7 --trace run.jsonl
    ///   concord sim scenarios/gossip.toml --seeds 1..1000      # sweep; failing seeds print a replay command
    #[command(verbatim_doc_comment)]
    Sim(cmd::sim::SimArgs),
    /// Check a history for linearizability (and, on request, session guarantees and staleness).
    ///
    /// Reads Concord's JSON Lines histories, Jepsen/Knossos logs and EDN op maps. Exit status:
    /// 0 linearizable, 1 not, 2 unknown (time ran out) or bad input.
    ///
    /// Examples:
    ///   concord sim scenarios/raft-faults.toml --history h.jsonl && concord check h.jsonl --model kv
    ///   concord check jepsen.log --model register --html why.html
    #[command(verbatim_doc_comment)]
    Check(cmd::check::CheckArgs),
    /// Run a lab: an experiment in the simulator that writes a report with plots.
    ///
    /// Example:
    ///   concord lab raft-elections --trials 1000       # the Raft paper's Figure 16
    #[command(verbatim_doc_comment)]
    Lab(cmd::lab::LabArgs),
    /// Design a system from its requirements (shards, replicas, placement, quorums, cache), explained
    /// by arithmetic, then validated in the simulator (Lab 2, docs/labs/design.md).
    ///
    /// Example:
    ///   concord design labs/design/social-3-regions.toml --out out/design
    #[command(verbatim_doc_comment)]
    Design(cmd::design::DesignArgs),
    /// Replay a simulation trace in the browser (a local web page: ring, messages, logs, history).
    ///
    /// Examples:
    ///   concord sim scenarios/raft-faults.toml --seed 3 --trace run.jsonl --history h.jsonl
    ///   concord view run.jsonl --history h.jsonl --open   # http://127.0.0.1:8090/
    #[command(verbatim_doc_comment)]
    View(cmd::view::ViewArgs),
    /// Run one Concord node: Raft over TCP, a WAL on disk, HTTP and RESP for clients.
    ///
    /// Examples:
    ///   concord serve --config node1.toml
    ///   concord serve --id 1 --data ./d1 --http-addr 127.0.0.1:8080 --redis-addr 127.0.0.1:6379
    #[command(verbatim_doc_comment)]
    Serve(Box<cmd::serve::ServeArgs>),
    /// Run a local cluster: N `concord serve` processes (node i: RESP 6379+i, HTTP 8080+i).
    ///
    /// Examples:
    ///   concord up --nodes 3 --data ./concord-data    # Ctrl-C stops every node cleanly
    ///   concord up --restart on-failure               # a node that dies is started again
    #[command(verbatim_doc_comment)]
    Up(cmd::up::UpArgs),
    /// Run a cache node in front of a Concord database (read-through GET, leases, write-through
    /// SET, invalidation from the database's change feed; docs/cache.md).
    ///
    /// Examples:
    ///   concord up --cache 2                          # a cluster with two cache nodes (6400, 6401)
    ///   concord cache --db 127.0.0.1:6379,127.0.0.1:6380,127.0.0.1:6381 --cluster-id $(cat concord-data/cluster.id)
    #[command(verbatim_doc_comment)]
    Cache(cmd::cache::CacheArgs),
    /// Restart node N of a cluster that `concord up` runs (a running node is stopped cleanly first).
    ///
    /// Examples:
    ///   kill -9 $(cat concord-data/node3.pid)         # the others elect a leader and keep serving
    ///   concord restart 3                             # node 3 comes back from its WAL and catches up
    ///   concord restart --status                      # which nodes run, with their pids
    ///   concord restart --all                         # a rolling restart, one node at a time
    #[command(verbatim_doc_comment)]
    Restart(cmd::restart::RestartArgs),
    /// List, add or remove members of a running cluster (through its HTTP API).
    ///
    /// Examples:
    ///   concord member list --http 127.0.0.1:8080
    ///   concord serve --join --id 4 --data ./d4 --peer-addr 127.0.0.1:7383 --http-addr 127.0.0.1:8083 \
    ///       --peer 1=127.0.0.1:7379 --peer 2=127.0.0.1:7380 --peer 3=127.0.0.1:7381 --cluster-secret-file S
    ///   concord member add --http 127.0.0.1:8080 --secret-file S --id 4 --peer-addr 127.0.0.1:7383
    #[command(verbatim_doc_comment)]
    Member(cmd::member::MemberArgs),
    /// Show a sharded cluster's shard map, or move a slot range to another shard (through its HTTP
    /// API; moves need the cluster secret).
    ///
    /// Examples:
    ///   concord shard list --http 127.0.0.1:8080
    ///   concord shard move 0-99 --to 2 --secret-file concord-data/cluster.secret
    ///   concord shard decommission 3 --http 127.0.0.1:8080 --secret-file concord-data/cluster.secret
    #[command(verbatim_doc_comment)]
    Shard(cmd::shard::ShardArgs),
    /// Start a node that joins a running cluster, and have the cluster add it (`serve --join` and
    /// `member add` in one step).
    ///
    /// Example:
    ///   concord join --via 127.0.0.1:8080 --id 4 --data ./d4 --peer-addr 127.0.0.1:7383 \
    ///       --http-addr 127.0.0.1:8083 --redis-addr 127.0.0.1:6383 --cluster-secret-file S \
    ///       --peer 1=127.0.0.1:7379 --peer 2=127.0.0.1:7380 --peer 3=127.0.0.1:7381
    /// A checksummed backup of every key of a running cluster: in the strong mode one
    /// linearizable read; in the sharded mode every shard page by page (not one snapshot).
    ///
    /// Examples:
    ///   concord backup --to backup.jsonl --secret-file concord-data/cluster.secret
    ///   concord backup --to backup.jsonl --http 127.0.0.1:8081 --secret-file S
    #[command(verbatim_doc_comment)]
    Backup(cmd::backup::BackupArgs),
    /// Write a backup's keys into a new, empty cluster (start one with `concord up --data NEW`).
    ///
    /// Examples:
    ///   concord up --data ./restored &                # a new cluster
    ///   concord restore backup.jsonl --secret-file restored/cluster.secret
    #[command(verbatim_doc_comment)]
    Restore(cmd::backup::RestoreArgs),
    #[command(verbatim_doc_comment)]
    Join(Box<cmd::member::JoinArgs>),
    /// Differential test against redis-server: random command sequences sent to both, replies
    /// compared byte for byte (RESP2 and RESP3); starts both servers itself.
    ///
    /// Examples:
    ///   concord difftest                              # seeds 1..3, 300 steps each
    ///   concord difftest --seeds 1..200 --ops 5000    # a long run
    ///   concord difftest --seed 7 --ops 143 --resp 3  # replay a mismatch (the command it printed)
    #[command(verbatim_doc_comment)]
    Difftest(cmd::difftest::DifftestArgs),
    /// A Jepsen-style test of a real cluster: concurrent clients record a history while a seeded
    /// schedule kills, pauses and partitions nodes; then every node is healed, the history checked
    /// (docs/chaos.md). Exit status: 0 valid, 1 invalid, 2 unknown or error.
    ///
    /// Examples:
    ///   concord chaos --time-limit 60 --nemesis kill,partition-leader,majority-split
    ///   concord chaos --backend local --nodes 3 --nemesis kill,pause --time-limit 20
    #[command(verbatim_doc_comment)]
    Chaos(cmd::chaos::ChaosArgs),
}

/// Commands that print results end quietly when their reader goes away (`concord sim … | head`),
/// as `cat` does: the default action of SIGPIPE. Rust ignores SIGPIPE, so `println!` would panic
/// with "Broken pipe" instead. The long-running commands (`serve`, `up`, `join`) keep ignoring it:
/// a closed log pipe must not kill a node, nor `up` and leave its nodes orphaned.
fn end_quietly_on_a_closed_pipe(command: &Command) {
    if matches!(
        command,
        Command::Serve(_) | Command::Up(_) | Command::Cache(_) | Command::Join(_) | Command::Tour(_)
    ) {
        return;
    }
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start, before any thread exists; no
    // handler runs Rust code.
    unsafe {
        use nix::sys::signal::{signal, SigHandler, Signal};
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_on_a_closed_pipe(&cli.command);
    let result = match &cli.command {
        Command::Tour(args) => cmd::tour::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Lab(args) => cmd::lab::run(args),
        Command::Design(args) => cmd::design::run(args),
        Command::View(args) => cmd::view::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Cache(args) => cmd::cache::run(args),
        Command::Restart(args) => cmd::restart::run(args),
        Command::Member(args) => cmd::member::run(args),
        Command::Shard(args) => cmd::shard::run(args),
        Command::Join(args) => cmd::member::join(args),
        Command::Backup(args) => cmd::backup::backup(args),
        Command::Restore(args) => cmd::backup::restore(args),
        Command::Difftest(args) => cmd::difftest::run(args),
        Command::Chaos(args) => cmd::chaos::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every option and argument of every command says what it is for (issue #20): `--help` is the
    /// first documentation a person reads.
    #[test]
    fn every_option_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "concord", &mut missing);
        assert!(missing.is_empty(), "options without help text: {missing:#?}");
    }

    /// The examples in `--help` print one per line, as written (issue #20: they ran together).
    #[test]
    fn help_examples_print_one_per_line() {
        let mut cli = Cli::command();
        for sub in ["tour", "sim", "check", "restart", "up"] {
            let help = cli.find_subcommand_mut(sub).unwrap().render_long_help().to_string();
            let examples: Vec<&str> =
                help.lines().filter(|l| l.trim_start().starts_with("concord ")).collect();
            assert!(
                examples.len() >= 2,
                "concord {sub} --help shows its examples on lines of their own:\n{help}"
            );
        }
    }
}

//! `concord chaos`: a Jepsen-style test of a real cluster (docs/chaos.md).
//!
//! Start a cluster ([`cluster`]: five containers of `deploy/compose.yaml`, or local processes),
//! run concurrent clients that record a history, inject the faults of a seeded schedule
//! ([`schedule`], made with [`docker`] or signals), heal everything, wait until every node serves
//! its final reads, collect the logs, check the history and write the run's directory. Exit 0
//! only when every checker says valid.
//!
//! The workloads, each with its checker: [`workload`] (registers over HTTP, linearizability:
//! [`report::check_registers`]), [`set`] (Jepsen's set checker), [`bank`] (the total is
//! conserved) and [`list_append`] (Elle). The last three speak to the Redis door ([`resp`]);
//! bank and list-append record [`events`] with JSON values.
//!
//! Admin actions – a node out of the Raft group and back (`member`), slots or a replica moved
//! (`shard-move`) – run alongside the faults ([`admin`]). The eventual mode runs the `siblings`
//! workload instead, and its own checks ([`eventual`]): no acknowledged write lost, convergence,
//! and PBS t-visibility beside the WARS model's prediction.
//!
//! Disk faults (`disk-*`, [`disk`]) kill a node and damage its write-ahead log – unsynced bytes
//! lost, a torn tail, a corrupt synced record – and check what the node does about it.
//! Clock faults move nodes' clocks through libfaketime ([`cluster::faketime_env`]); [`clock`]
//! reads back what each node's clock says while one is in effect.

pub mod admin;
pub mod bank;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod docker;
pub mod events;
pub mod eventual;
pub mod list_append;
pub mod report;
pub mod resp;
pub mod schedule;
pub mod set;
pub mod workload;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use cluster::Cluster;
use concord_server::config::Mode;
use indicatif::{ProgressBar, ProgressStyle};
use report::Fault;
use schedule::{Action, Nemesis, Planned};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Five containers of deploy/compose.yaml (every fault).
    Docker,
    /// `concord serve` processes on loopback (kill and pause only).
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChaosMode {
    /// One Raft group.
    Strong,
    /// Dynamo-style quorums: the siblings workload (not linearizable by design).
    Eventual,
    /// Raft groups per shard.
    Sharded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadName {
    /// Single-key registers: read, write, compare-and-set over HTTP; linearizability per key.
    Register,
    /// Unique elements added to sets (Redis SADD), whole sets read; Jepsen's set checker.
    Set,
    /// Transfers between accounts (a Lua script) and reads of every balance (MULTI/EXEC); the
    /// total must be conserved and no balance negative.
    Bank,
    /// Elle's list-append: MULTI/EXEC transactions of RPUSH and LRANGE; checked by Elle.
    ListAppend,
    /// The eventual mode's: reads, and writes of unique values with the read's causal context;
    /// no acknowledged write lost, convergence, PBS t-visibility.
    Siblings,
}

impl WorkloadName {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadName::Register => "register",
            WorkloadName::Set => "set",
            WorkloadName::Bank => "bank",
            WorkloadName::ListAppend => "list-append",
            WorkloadName::Siblings => "siblings",
        }
    }
}

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Where the cluster runs.
    #[arg(long, value_enum, default_value = "docker")]
    pub backend: Backend,
    /// How the cluster replicates.
    #[arg(long, value_enum, default_value = "strong")]
    pub mode: ChaosMode,
    /// Nodes (the docker backend: 5, the compose file's).
    #[arg(long, default_value_t = 5)]
    pub nodes: u32,
    /// How long the clients run, in seconds (faults included, and a quiet `--interval` at the end).
    #[arg(long, default_value_t = 60.0)]
    pub time_limit: f64,
    /// Concurrent clients (each starts on node `client mod nodes`).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// What the clients do (default: register; siblings in the eventual mode).
    #[arg(long, value_enum)]
    pub workload: Option<WorkloadName>,
    /// Eventual mode: replies each read waits for (default 1, so staleness shows; the cluster's
    /// N/R/W come from its configuration, and the model is run for this R).
    #[arg(long, default_value_t = 1)]
    pub read_quorum: usize,
    /// Keys in use at a time (register, set and list-append workloads).
    #[arg(long, default_value_t = 4)]
    pub keys: u64,
    /// Operations per key before the clients move on to fresh keys (register, set and
    /// list-append workloads).
    #[arg(long, default_value_t = 150)]
    pub ops_per_key: u64,
    /// Accounts of the bank workload (2..=100).
    #[arg(long, default_value_t = 8)]
    pub accounts: usize,
    /// Faults to draw from, comma-separated: kill, pause, pause-leader, partition-one, partition-leader,
    /// majority-split, ring, bridge; clock-skew, clock-jump, clock-jump-leader, clock-strobe
    /// (docker, with libfaketime in the image); admin actions overlapping them: member (strong
    /// mode), shard-move (sharded mode); disk faults on a killed node (strong mode):
    /// disk-lose-unsynced, disk-torn-tail, disk-corrupt. Empty: no faults.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,partition-one,partition-leader")]
    pub nemesis: Vec<Nemesis>,
    /// Seconds of each fault, and of the quiet between two.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Seed of the fault schedule and of the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The run's directory (default chaos-runs/<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The container image (docker backend); built with deploy/build-image.sh around this binary
    /// when missing.
    #[arg(long, default_value = "concord:local")]
    pub image: String,
    /// The docker network's first three octets: nodes at PREFIX.11 … PREFIX.15 (deploy/compose.yaml
    /// uses 10.57.0; another one lets both run at once).
    #[arg(long, default_value = "10.58.0")]
    pub subnet_prefix: String,
    /// The deploy/ directory (default: ./deploy, else the one this binary was built from).
    #[arg(long)]
    pub deploy: Option<PathBuf>,
    /// A client gives up on one call after this many seconds (recorded as info for a write).
    #[arg(long, default_value_t = 4.0)]
    pub op_timeout: f64,
    /// Seconds the checker may search before it answers "unknown".
    #[arg(long, default_value_t = 120)]
    pub check_timeout: u64,
    /// A DELIBERATELY BROKEN cluster: every node runs with this deliberate Raft bug (one of
    /// concord-raft's `Mutations`, e.g. read_from_deposed_leader), passed as the environment
    /// variable CONCORD_UNSAFE_MUTATION (a container's, or a process's). Only a debug build with
    /// the bugs compiled in honours it. The point: show that the run catches the bug (exit 1).
    #[arg(long, value_name = "NAME")]
    pub unsafe_mutation: Option<String>,
}

pub fn run(args: &ChaosArgs) -> anyhow::Result<ExitCode> {
    let mode = match args.mode {
        ChaosMode::Strong => Mode::Strong,
        ChaosMode::Sharded => Mode::Sharded,
        ChaosMode::Eventual => Mode::Eventual,
    };
    match (args.mode, workload_of(args)) {
        (ChaosMode::Eventual, WorkloadName::Register) => bail!(
            "--workload register does not suit --mode eventual: it needs compare-and-set (501 in the \
             eventual mode) and a linearizability checker, which an eventually consistent store fails \
             by design; use --workload siblings (the default there)"
        ),
        (ChaosMode::Eventual, w @ (WorkloadName::Set | WorkloadName::Bank | WorkloadName::ListAppend)) => {
            bail!(
                "--workload {} needs transactions or linearizable reads over the Redis door, which the \
             eventual mode does not give; use --workload siblings (the default there)",
                w.name()
            )
        }
        (ChaosMode::Strong | ChaosMode::Sharded, WorkloadName::Siblings) => bail!(
            "--workload siblings is the eventual mode's (it reads sibling sets and causal contexts); \
             use --mode eventual, or --workload register"
        ),
        _ => {}
    }
    for n in &args.nemesis {
        match (n, args.mode) {
            (Nemesis::Member, ChaosMode::Strong) | (Nemesis::ShardMove, ChaosMode::Sharded) => {}
            (Nemesis::Member, _) => bail!(
                "--nemesis member changes a Raft group's membership: --mode strong only (the sharded \
                 mode's replicas move with shard-move; the eventual mode has no membership to change)"
            ),
            (Nemesis::ShardMove, _) => {
                bail!("--nemesis shard-move moves slots and replicas: --mode sharded only")
            }
            (n, ChaosMode::Sharded | ChaosMode::Eventual) if n.disk_fault().is_some() => bail!(
                "--nemesis {n}: disk faults are for --mode strong only so far (the corrupt node's repair \
                 – remove, wipe, add back – is one Raft group's membership change; the sharded mode's \
                 replicas and the eventual mode's anti-entropy would need their own)"
            ),
            _ => {}
        }
    }
    if args.nemesis.iter().any(|n| n.is_partition()) {
        let asked: Vec<&str> = args.nemesis.iter().filter(|n| n.is_partition()).map(|n| n.name()).collect();
        if args.backend == Backend::Local {
            bail!(
                "the local backend cannot make partitions ({}): its nodes are processes sharing the \
                 host's network namespace, so no link between two of them can be cut. It can kill \
                 (SIGKILL) and pause (SIGSTOP/SIGCONT); use --nemesis kill,pause, or --backend docker",
                asked.join(", ")
            );
        }
        if let Some(why) = cluster::cannot_cut_links() {
            bail!("{} asked for, but {why}", asked.join(", "));
        }
    }
    let clock_faults: Vec<&str> = args.nemesis.iter().filter(|n| n.is_clock()).map(|n| n.name()).collect();
    if !clock_faults.is_empty() && args.backend == Backend::Local {
        bail!(
            "the local backend cannot make clock faults ({}): they preload libfaketime into each node \
             and rewrite its offset file inside the node's container; use --backend docker",
            clock_faults.join(", ")
        );
    }
    if args.backend == Backend::Docker && args.nodes != 5 {
        bail!("the docker backend runs deploy/compose.yaml's five nodes: --nodes 5");
    }
    if !(1..=9).contains(&args.nodes) || args.clients == 0 || args.keys == 0 || args.ops_per_key == 0 {
        bail!("--nodes 1..9, and --clients, --keys, --ops-per-key at least 1");
    }
    if let Some(name) = &args.unsafe_mutation {
        if !concord_raft::Mutations::NAMES.contains(&name.as_str()) {
            bail!(
                "--unsafe-mutation {name}: unknown; the deliberate Raft bugs are {}",
                concord_raft::Mutations::NAMES.join(", ")
            );
        }
        if !concord_raft::Mutations::COMPILED || !cfg!(debug_assertions) {
            bail!(
                "--unsafe-mutation needs a debug build with the deliberate bugs compiled in \
                 (concord-raft's `mutations` feature); this binary's nodes would refuse it"
            );
        }
        if args.mode == ChaosMode::Eventual {
            bail!("--unsafe-mutation switches a Raft bug on: --mode strong or sharded");
        }
        eprintln!(
            "concord chaos: WARNING – every node runs with the deliberate bug {name} \
             ({}={name}): this cluster is BROKEN on purpose; the run should find it (exit 1)",
            concord_server::config::UNSAFE_MUTATION_ENV
        );
    }
    if !(2..=100).contains(&args.accounts) {
        bail!("--accounts {}: the bank needs 2 to 100 accounts", args.accounts);
    }
    let out = match &args.out {
        Some(o) => o.clone(),
        None => PathBuf::from("chaos-runs").join(timestamp()),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = out.canonicalize()?;
    let plan = schedule::plan(args.seed, &args.nemesis, args.interval, args.time_limit, args.nodes as usize);
    eprintln!(
        "concord chaos: {:?} backend, {:?} mode, {} nodes, {} clients, {} s, {} faults planned (seed {}), into {}",
        args.backend,
        args.mode,
        args.nodes,
        args.clients,
        args.time_limit,
        plan.len(),
        args.seed,
        out.display()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let started = Instant::now();
    let mut env: Vec<(String, String)> = args
        .unsafe_mutation
        .iter()
        .map(|m| (concord_server::config::UNSAFE_MUTATION_ENV.to_string(), m.clone()))
        .collect();
    if !clock_faults.is_empty() {
        env.extend(cluster::faketime_env());
    }
    let mut cluster = match args.backend {
        Backend::Docker => {
            let deploy = deploy_dir(args.deploy.as_deref())?;
            cluster::ensure_image(&deploy, &args.image)?;
            if !clock_faults.is_empty() {
                if let Some(why) = cluster::image_lacks_faketime(&args.image) {
                    bail!("{} asked for, but {why}", clock_faults.join(", "));
                }
            }
            let work = out.join(".work");
            let d = cluster::Docker::start(&deploy, mode, &args.image, &args.subnet_prefix, &work, &env)?;
            eprintln!("compose project {} up; waiting for the containers to be healthy", d.project);
            d.wait_healthy(Duration::from_secs(90))?;
            Cluster::Docker(d)
        }
        Backend::Local => Cluster::Local(cluster::Local::start(&out.join("data"), args.nodes, mode, &env)?),
    };
    let result = runtime.block_on(cluster.ready(Duration::from_secs(60)));
    if let Err(e) = result {
        write_logs(&cluster, &out);
        cluster.teardown();
        return Err(e.context(format!("the cluster did not come up (logs in {})", out.display())));
    }
    eprintln!("cluster serving after {:.1} s; clients start", started.elapsed().as_secs_f64());
    let outcome = run_test(args, &plan, &mut cluster, &runtime, &out);
    write_logs(&cluster, &out);
    cluster.teardown();
    let _ = std::fs::remove_dir_all(out.join(".work"));
    let valid = outcome?;
    Ok(if valid == Some(true) {
        ExitCode::SUCCESS
    } else if valid == Some(false) {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    })
}

fn write_logs(cluster: &Cluster, out: &Path) {
    let dir = out.join("logs");
    let _ = std::fs::create_dir_all(&dir);
    for (name, text) in cluster.logs() {
        let _ = std::fs::write(dir.join(name), text);
    }
}

/// The clients of the chosen workload and what they record.
enum Recording {
    /// Register and set: a [`concord_core::history::History`].
    Ops(Arc<workload::Recorder>),
    /// Bank and list-append: JSON events.
    Events(Arc<events::Log>),
}

impl Recording {
    fn ops_issued(&self) -> u64 {
        match self {
            Recording::Ops(r) => r.ops_issued(),
            Recording::Events(l) => l.ops_issued(),
        }
    }

    /// The history's time zero: when the clients started.
    fn start(&self) -> Instant {
        match self {
            Recording::Ops(r) => r.start,
            Recording::Events(l) => l.start,
        }
    }
}

/// Start the workload's clients (the bank first sets its accounts up).
fn start_clients(
    args: &ChaosArgs,
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    stop: &Arc<AtomicBool>,
    eventual_run: Option<&(concord_lab::eventual::wars::Quorum, Arc<eventual::Record>)>,
) -> anyhow::Result<(Recording, Vec<tokio::task::JoinHandle<()>>)> {
    let timeout = Duration::from_secs_f64(args.op_timeout);
    let shape = workload::Register { keys: args.keys, ops_per_key: args.ops_per_key, timeout };
    let (http, redis) = (cluster.http(), cluster.redis());
    let workload = workload_of(args);
    if workload == WorkloadName::Bank {
        runtime.block_on(bank::setup(redis[0], args.accounts, Duration::from_secs(30)))?;
    }
    let start = Instant::now();
    let (seed, stop) = (args.seed, stop.clone());
    Ok(match workload {
        WorkloadName::Register | WorkloadName::Set | WorkloadName::Siblings => {
            let rec = Arc::new(workload::Recorder::new(start));
            let clients = (0..args.clients)
                .map(|c| {
                    let (rec, stop) = (rec.clone(), stop.clone());
                    match (workload, eventual_run) {
                        (WorkloadName::Siblings, Some((q, record))) => {
                            let siblings = eventual::Siblings {
                                keys: args.keys,
                                ops_per_key: args.ops_per_key,
                                timeout,
                                r: args.read_quorum,
                                w: q.w,
                            };
                            let record = record.clone();
                            runtime.spawn(eventual::client(
                                c,
                                http.clone(),
                                siblings,
                                seed,
                                rec,
                                record,
                                stop,
                            ))
                        }
                        (WorkloadName::Set, _) => {
                            runtime.spawn(set::client(c, redis.clone(), shape, seed, rec, stop))
                        }
                        _ => runtime.spawn(workload::client(c, http.clone(), shape, seed, rec, stop)),
                    }
                })
                .collect();
            (Recording::Ops(rec), clients)
        }
        WorkloadName::Bank | WorkloadName::ListAppend => {
            let log = Arc::new(events::Log::new(start));
            let clients = (0..args.clients)
                .map(|c| {
                    let (log, stop) = (log.clone(), stop.clone());
                    if workload == WorkloadName::Bank {
                        runtime.spawn(bank::client(c, redis.clone(), args.accounts, timeout, seed, log, stop))
                    } else {
                        let shape =
                            list_append::Shape { keys: args.keys, ops_per_key: args.ops_per_key, timeout };
                        runtime.spawn(list_append::client(c, redis.clone(), shape, seed, log, stop))
                    }
                })
                .collect();
            (Recording::Events(log), clients)
        }
    })
}

/// What the final reads and the checkers made of a run.
struct Checked {
    checks: Vec<report::CheckResult>,
    /// Final reads that never succeeded ("node 2: r13").
    missing: Vec<String>,
    history_jsonl: String,
    timings: Vec<(u64, concord_core::history::EventType, concord_core::Time)>,
    keys: usize,
    /// Extra files of the run's directory: (name, contents).
    files: Vec<(String, String)>,
}

/// After the heal: the final reads through every node, then the workload's checkers.
fn final_reads_and_check(
    args: &ChaosArgs,
    recording: &Recording,
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
) -> Checked {
    use report::CheckResult;
    let within = Duration::from_secs(60);
    let (http, redis) = (cluster.http(), cluster.redis());
    let timings_of = |h: &concord_core::history::History| -> Vec<_> {
        h.events.iter().map(|e| (e.process, e.kind, e.time)).collect()
    };
    match (workload_of(args), recording) {
        (WorkloadName::Register, Recording::Ops(rec)) => {
            let keys = workload::keys(&rec.history.lock().unwrap());
            eprintln!("final reads: {} keys on {} nodes", keys.len(), http.len());
            let missing = runtime.block_on(workload::final_reads(&http, &keys, rec, within));
            let history = rec.history.lock().unwrap().clone();
            eprintln!("checking {} events", history.len());
            let check = report::check_registers(&history, Duration::from_secs(args.check_timeout));
            Checked {
                checks: vec![check],
                missing,
                history_jsonl: history.to_jsonl(),
                timings: timings_of(&history),
                keys: keys.len(),
                files: vec![],
            }
        }
        (WorkloadName::Set, Recording::Ops(rec)) => {
            let keys = workload::keys(&rec.history.lock().unwrap());
            eprintln!("final reads: {} sets on {} nodes", keys.len(), redis.len());
            let (finals, missing) = runtime.block_on(set::final_reads(&redis, &keys, rec, within));
            let history = rec.history.lock().unwrap().clone();
            let result = set::check(&history, &finals);
            let check = CheckResult {
                checker: "set (Jepsen's set checker: lost, unexpected, recovered, stale)",
                valid: Some(result.valid()),
                summary: result.summary(),
                failing_key: None,
                failing_ops: vec![],
                details: serde_json::to_value(&result).ok(),
            };
            // Cheap in practice: the sets rotate like the register keys, so each one's history
            // is short.
            let linearizable = report::check_linearizable(
                &history,
                concord_check::Model::Set,
                "linearizability (grow-only set per key)",
                Duration::from_secs(args.check_timeout),
            );
            Checked {
                checks: vec![check, linearizable],
                missing,
                history_jsonl: history.to_jsonl(),
                timings: timings_of(&history),
                keys: keys.len(),
                files: vec![],
            }
        }
        (WorkloadName::Bank, Recording::Events(log)) => {
            eprintln!("final reads: the balances on {} nodes", redis.len());
            let missing = runtime.block_on(bank::final_reads(&redis, args.accounts, log, within));
            let events = log.events();
            let result = bank::check(&events, args.accounts);
            let check = CheckResult {
                checker: "bank (every read sums to the total, no negative balance)",
                valid: Some(result.valid()),
                summary: result.summary(),
                failing_key: None,
                failing_ops: result.bad_reads.clone(),
                details: serde_json::to_value(&result).ok(),
            };
            Checked {
                checks: vec![check],
                missing,
                history_jsonl: events::to_jsonl(&events),
                timings: events::timings(&events),
                keys: args.accounts,
                files: vec![],
            }
        }
        (WorkloadName::ListAppend, Recording::Events(log)) => {
            let events = log.events();
            eprintln!("checking {} transactions with Elle", events.len() / 2);
            let keys: std::collections::BTreeSet<String> = events
                .iter()
                .filter_map(|e| e.value.as_array())
                .flatten()
                .filter_map(|m| m[1].as_str().map(str::to_string))
                .collect();
            let (check, files) = match list_append::check(&events) {
                Ok(report) => (
                    CheckResult {
                        checker: "Elle list-append (strict serializability: G0, G1a, G1b, G1c, G-single, G2)",
                        valid: Some(report.is_valid()),
                        summary: report.to_string(),
                        failing_key: None,
                        failing_ops: vec![],
                        details: Some(serde_json::json!({
                            "transactions": report.txns_checked,
                            "edges": report.edges,
                            "anomalies": report.anomaly_names(),
                            "page": "elle.html",
                        })),
                    },
                    vec![("elle.html".to_string(), concord_check::elle::html::render(&report))],
                ),
                Err(e) => (
                    CheckResult {
                        checker: "Elle list-append",
                        valid: None,
                        summary: format!("the history could not be checked: {e}"),
                        failing_key: None,
                        failing_ops: vec![],
                        details: None,
                    },
                    vec![],
                ),
            };
            Checked {
                checks: vec![check],
                // Elle needs no final reads: the lists' reads during the run reveal the order.
                missing: vec![],
                history_jsonl: events::to_jsonl(&events),
                timings: events::timings(&events),
                keys: keys.len(),
                files,
            }
        }
        _ => unreachable!("each workload records its own kind of history"),
    }
}

/// The clients, the faults, the heal, the final reads, the check, the directory. The verdict.
fn run_test(
    args: &ChaosArgs,
    plan: &[Planned],
    cluster: &mut Cluster,
    runtime: &tokio::runtime::Runtime,
    out: &Path,
) -> anyhow::Result<Option<bool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let nodes = cluster.http();
    // The eventual mode's siblings workload: the cluster's quorums, and what its writes saw.
    let eventual_run = if args.mode == ChaosMode::Eventual {
        let q = runtime.block_on(eventual::quorum(&nodes))?;
        if args.read_quorum == 0 || args.read_quorum > q.n {
            bail!("--read-quorum {} is not 1..{} (the cluster's N)", args.read_quorum, q.n);
        }
        Some((q, Arc::new(eventual::Record::default())))
    } else {
        None
    };
    let (recording, clients) = start_clients(args, cluster, runtime, &stop, eventual_run.as_ref())?;
    let start = recording.start();
    let mut admin = admin::Admin::new(cluster.secret_file().to_path_buf(), args.keys, args.ops_per_key);
    let mut disk = disk::DiskFaults::default();

    let bar = ProgressBar::new((args.time_limit * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let say = |bar: &ProgressBar, line: String| bar.suspend(|| eprintln!("{line}"));
    let now = || start.elapsed().as_secs_f64();
    let mut faults: Vec<Fault> = Vec::new();
    let mut next = 0;
    // The faults and admin actions in effect: (plan index, record, whether it was injected).
    let mut open: Vec<(usize, Fault, bool)> = Vec::new();
    loop {
        let t = now();
        if t >= args.time_limit {
            break;
        }
        bar.set_position((t * 10.0) as u64);
        let doing: Vec<String> = open.iter().map(|(_, f, _)| f.what.clone()).collect();
        bar.set_message(format!(
            "{} ops; {}",
            recording.ops_issued(),
            if doing.is_empty() { "no fault".into() } else { doing.join(" + ") }
        ));
        if let Some(k) = open.iter().position(|(i, _, _)| t >= plan[*i].end) {
            let (i, mut fault, injected) = open.remove(k);
            if injected {
                fault.observed.extend(observe_clocks(cluster, &plan[i], runtime, "before the reset"));
                fault.errors.extend(undo(
                    cluster,
                    &plan[i],
                    &mut admin,
                    runtime,
                    &mut disk,
                    &mut fault.observed,
                ));
            }
            fault.end = now();
            let ended = if plan[i].nemesis.is_admin() { "ended" } else { "healed" };
            say(&bar, format!("{:6.1} s  {ended}: {}", fault.end, fault.what));
            faults.push(fault);
            continue;
        }
        if next < plan.len() && t >= plan[next].start {
            let p = &plan[next];
            let mut fault = Fault {
                nemesis: p.nemesis.name().into(),
                start: now(),
                end: 0.0,
                what: String::new(),
                errors: vec![],
                observed: vec![],
            };
            let ops = recording.ops_issued();
            let injected = match inject(cluster, p, runtime, &mut admin, ops, &mut disk, &mut fault.observed)
            {
                Ok(what) => {
                    fault.what = what;
                    fault.observed.extend(observe_clocks(cluster, p, runtime, "started"));
                    true
                }
                Err(e) => {
                    fault.what = format!("{} (failed)", p.nemesis);
                    fault.errors.push(format!("{e:#}"));
                    false
                }
            };
            say(
                &bar,
                format!(
                    "{:6.1} s  {}: {}",
                    fault.start,
                    if p.nemesis.is_admin() { "admin" } else { "fault" },
                    fault.what
                ),
            );
            open.push((next, fault, injected));
            next += 1;
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, mut fault, injected) in open.drain(..) {
        if injected {
            fault.errors.extend(undo(cluster, &plan[i], &mut admin, runtime, &mut disk, &mut fault.observed));
        }
        fault.end = now();
        faults.push(fault);
    }
    faults.sort_by(|a, b| a.start.total_cmp(&b.start));
    stop.store(true, Ordering::SeqCst);
    bar.finish_and_clear();
    runtime.block_on(async {
        for c in clients {
            let _ = c.await;
        }
    });
    let run_end = now();
    eprintln!("{run_end:.1} s: clients stopped after {} ops; healing everything", recording.ops_issued());
    let mut heal_errors = cluster.heal_everything();
    heal_errors.extend(runtime.block_on(admin.restore(&nodes)));
    for e in &heal_errors {
        eprintln!("heal: {e}");
    }
    if let (Some((q, sibling_record)), Recording::Ops(rec)) = (&eventual_run, &recording) {
        let ctx = EventualRun { args, quorum: *q, record: sibling_record, heal_errors, plan };
        return finish_eventual(ctx, rec, &nodes, &faults, runtime, out);
    }
    let Checked { mut checks, missing, history_jsonl, timings, keys, files: extra_files } =
        final_reads_and_check(args, &recording, cluster, runtime);
    if plan.iter().any(|p| p.nemesis.disk_fault().is_some()) {
        checks.push(disk.check());
    }
    let recovered = missing.is_empty();
    if !recovered {
        eprintln!(
            "{} final reads never succeeded, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }

    let valid = if !recovered {
        Some(false)
    } else if checks.iter().all(|c| c.valid == Some(true)) {
        Some(true)
    } else if checks.iter().any(|c| c.valid == Some(false)) {
        Some(false)
    } else {
        None
    };

    // The directory.
    std::fs::write(out.join("history.jsonl"), history_jsonl)?;
    for (name, text) in &extra_files {
        std::fs::write(out.join(name), text)?;
    }
    std::fs::write(out.join("timeline.json"), serde_json::to_string_pretty(&faults)?)?;
    std::fs::write(out.join("schedule.json"), serde_json::to_string_pretty(plan)?)?;
    let series = report::series_of(timings.iter().copied());
    if let Err(e) = report::plot(&out.join("latency"), &series, &faults) {
        eprintln!("the plot failed: {e:#}");
    }
    let count = |kind| timings.iter().filter(|e| e.1 == kind).count();
    use concord_core::history::EventType;
    let results = serde_json::json!({
        "valid": valid,
        "run": {
            "backend": format!("{:?}", args.backend).to_lowercase(),
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "nodes": args.nodes,
            "clients": args.clients,
            "workload": workload_of(args).name(),
            "admin": admin.done(),
            "time_limit_s": args.time_limit,
            "interval_s": args.interval,
            "seed": args.seed,
            "nemesis": args.nemesis.iter().map(|n| n.name()).collect::<Vec<_>>(),
            "replay": replay_command(args),
            "unsafe_mutation": args.unsafe_mutation,
        },
        "ops": {
            "invoked": count(EventType::Invoke),
            "ok": count(EventType::Ok),
            "fail": count(EventType::Fail),
            "info": count(EventType::Info),
            "keys": keys,
        },
        "faults": faults.len(),
        "heal_errors": heal_errors,
        "recovered": recovered,
        "final_reads_missing": missing,
        "checks": checks,
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    let files: Vec<String> =
        ["results.json", "history.jsonl", "timeline.json", "schedule.json", "latency.svg", "latency.png"]
            .iter()
            .map(|s| s.to_string())
            .chain(extra_files.iter().map(|(name, _)| name.clone()))
            .chain((1..=nodes.len()).map(|i| format!("logs/node{i}.log")))
            .collect();
    std::fs::write(out.join("index.html"), report::index_html(&results, &faults, &checks, &files))?;

    let ok = count(EventType::Ok);
    eprintln!(
        "{} ops ({} ok, {} fail, {} info) on {} keys, {} faults; {}",
        count(EventType::Invoke),
        ok,
        count(EventType::Fail),
        count(EventType::Info),
        keys,
        faults.len(),
        checks
            .iter()
            .map(|c| format!("{}: {}", c.checker, first_line(&c.summary)))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if let Some(c) = checks.iter().find(|c| c.valid == Some(false)) {
        eprintln!("{}", c.summary);
    }
    println!(
        "{}: {}",
        match valid {
            Some(true) => "valid",
            Some(false) => "INVALID",
            None => "unknown",
        },
        out.join("index.html").display()
    );
    Ok(valid)
}

/// What the eventual mode's ending needs from the run.
struct EventualRun<'a> {
    args: &'a ChaosArgs,
    quorum: concord_lab::eventual::wars::Quorum,
    record: &'a eventual::Record,
    heal_errors: Vec<String>,
    plan: &'a [Planned],
}

/// The eventual mode's ending: convergence reads, the sibling checks, t-visibility beside the
/// model, the directory. Linearizability is not the criterion here (see [`eventual`]).
fn finish_eventual(
    run: EventualRun<'_>,
    rec: &workload::Recorder,
    nodes: &[std::net::SocketAddr],
    faults: &[Fault],
    runtime: &tokio::runtime::Runtime,
    out: &Path,
) -> anyhow::Result<Option<bool>> {
    let EventualRun { args, quorum, record, heal_errors, plan } = run;
    let keys: Vec<String> = {
        let writes = record.writes.lock().unwrap();
        let set: std::collections::BTreeSet<String> = writes.iter().map(|w| w.key.clone()).collect();
        set.into_iter().collect()
    };
    eprintln!(
        "convergence: {} keys on {} nodes, read with r = {} until two rounds agree",
        keys.len(),
        nodes.len(),
        quorum.n
    );
    let (sets, missing, rounds) =
        runtime.block_on(eventual::converge(nodes, &keys, quorum.n, Duration::from_secs(60)));
    let report = {
        let writes = record.writes.lock().unwrap();
        concord_check::siblings::check(&writes, &sets)
    };
    let measured_quorum = concord_lab::eventual::wars::Quorum::new(quorum.n, args.read_quorum, quorum.w);
    let staleness = eventual::staleness(record, measured_quorum, args.seed);
    let recovered = missing.is_empty();
    let valid = Some(recovered && report.is_ok());
    let check = report::CheckResult {
        checker: "siblings: no acknowledged write lost, convergence",
        valid: Some(report.is_ok()),
        summary: format!("{report}after {rounds} rounds of convergence reads"),
        failing_key: report
            .lost
            .first()
            .map(|l| l.0.clone())
            .or(report.diverging.first().map(|d| d.0.clone())),
        failing_ops: vec![],
        details: None,
    };
    let checks = vec![check];
    let history = rec.history.lock().unwrap().clone();
    std::fs::write(out.join("history.jsonl"), history.to_jsonl())?;
    std::fs::write(out.join("timeline.json"), serde_json::to_string_pretty(faults)?)?;
    std::fs::write(out.join("schedule.json"), serde_json::to_string_pretty(plan)?)?;
    if let Err(e) = report::plot(
        &out.join("latency"),
        &report::series_of(history.events.iter().map(|e| (e.process, e.kind, e.time))),
        faults,
    ) {
        eprintln!("the plot failed: {e:#}");
    }
    if let Err(e) = eventual::plot(&out.join("visibility"), &staleness) {
        eprintln!("the visibility plot failed: {e:#}");
    }
    let count = |kind| history.events.iter().filter(|e| e.kind == kind).count();
    use concord_core::history::EventType;
    let writes = record.writes.lock().unwrap().len();
    let results = serde_json::json!({
        "valid": valid,
        "run": {
            "backend": format!("{:?}", args.backend).to_lowercase(),
            "mode": "eventual",
            "nodes": args.nodes,
            "clients": args.clients,
            "workload": "siblings",
            "n_r_w": [quorum.n, quorum.r, quorum.w],
            "read_quorum": args.read_quorum,
            "time_limit_s": args.time_limit,
            "interval_s": args.interval,
            "seed": args.seed,
            "nemesis": args.nemesis.iter().map(|n| n.name()).collect::<Vec<_>>(),
            "replay": replay_command(args),
        },
        "criterion": "no acknowledged write lost (present or superseded through a causal context) and every node \
                      returning the same sibling set per key after healing; linearizability is NOT the criterion \
                      in the eventual mode (concurrent writes become siblings and a read may miss the latest \
                      write, by design)",
        "ops": {
            "invoked": count(EventType::Invoke),
            "ok": count(EventType::Ok),
            "fail": count(EventType::Fail),
            "info": count(EventType::Info),
            "writes": writes,
            "keys": keys.len(),
        },
        "faults": faults.len(),
        "heal_errors": heal_errors,
        "recovered": recovered,
        "final_reads_missing": missing,
        "siblings": {
            "acknowledged": report.acknowledged,
            "present": report.present,
            "superseded": report.superseded,
            "lost": report.lost,
            "diverging": report.diverging.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
            "invented": report.invented,
            "convergence_rounds": rounds,
        },
        "staleness": staleness,
        "checks": checks,
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    let files: Vec<String> =
        ["results.json", "history.jsonl", "timeline.json", "schedule.json", "latency.svg", "visibility.svg"]
            .iter()
            .map(|s| s.to_string())
            .chain((1..=nodes.len()).map(|i| format!("logs/node{i}.log")))
            .collect();
    let mut html = report::index_html(&results, faults, &checks, &files);
    let section = format!(
        "<h2>Staleness (PBS t-visibility)</h2><p>Linearizability is not the criterion in the eventual mode. \
         {} reads were measured (each after an acknowledged write of its key that overlapped no other write), {} of \
         them returned that write or one superseding it. The red points are the real cluster's P(read returns the \
         write) at t ms after its acknowledgement (95 % Wilson intervals); the blue line is the WARS model of \
         concord-lab for {} with W = A = R = S exponential, mean {:.2} ms – fitted so that its median commit time \
         equals the run's median write latency ({:.2} ms). The run includes its faults.</p>\
         <img src=\"visibility.svg\" width=900>\n",
        staleness.reads, staleness.fresh, staleness.quorum.label(), staleness.model_mean_ms, staleness.write_median_ms
    );
    if let Some(at) = html.find("<h2>Files</h2>") {
        html.insert_str(at, &section);
    }
    std::fs::write(out.join("index.html"), html)?;
    eprintln!(
        "{} ops ({} ok, {} fail, {} info), {} writes on {} keys, {} faults; {}; t-visibility: {} of {} reads fresh",
        count(EventType::Invoke),
        count(EventType::Ok),
        count(EventType::Fail),
        count(EventType::Info),
        writes,
        keys.len(),
        faults.len(),
        first_line(&checks[0].summary),
        staleness.fresh,
        staleness.reads
    );
    if valid != Some(true) {
        eprintln!("{}", checks[0].summary);
        if !missing.is_empty() {
            eprintln!(
                "{} convergence reads never succeeded, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
    }
    println!(
        "{}: {}",
        if valid == Some(true) { "valid" } else { "INVALID" },
        out.join("index.html").display()
    );
    Ok(valid)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Start the planned fault or admin action; say what it did.
fn inject(
    cluster: &mut Cluster,
    p: &Planned,
    runtime: &tokio::runtime::Runtime,
    admin: &mut admin::Admin,
    ops_issued: u64,
    disk: &mut disk::DiskFaults,
    observed: &mut Vec<String>,
) -> anyhow::Result<String> {
    let n = cluster.nodes();
    match &p.action {
        Action::Disk { node, pick } => {
            let fault = p.nemesis.disk_fault().context("a disk action of a disk nemesis")?;
            disk.inject(cluster, fault, *node, *pick, observed)
        }
        Action::Member { node } => runtime.block_on(admin.remove(&cluster.http(), *node)),
        Action::ShardMove { pick } => runtime.block_on(admin.shard_move(&cluster.http(), *pick, ops_issued)),
        Action::Kill { node } => {
            cluster.kill(*node)?;
            Ok(format!("kill node {}", node + 1))
        }
        Action::Pause { node } => {
            cluster.pause(*node)?;
            Ok(format!("pause node {}", node + 1))
        }
        Action::Cut { links } => {
            for &(a, b) in links {
                cluster.cut(a, b)?;
            }
            Ok(format!("{}: cut {}", p.nemesis, describe(links)))
        }
        Action::PauseLeader => {
            let leader = runtime
                .block_on(cluster.leader(Duration::from_secs(5)))
                .context("no agreed leader to pause")?;
            cluster.pause(leader)?;
            let others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
            for (a, b) in schedule::links_between(&[leader], &others) {
                cluster.cut(a, b)?;
            }
            Ok(format!("pause-leader: node {} frozen and cut off", leader + 1))
        }
        Action::Clock { offsets_ms } => {
            let mut moved = Vec::new();
            for &(node, ms) in offsets_ms {
                cluster.set_clock(node, ms)?;
                moved.push(format!("node {} {:+.3} s", node + 1, ms as f64 / 1000.0));
            }
            Ok(format!("{}: {}", p.nemesis, moved.join(", ")))
        }
        &Action::ClockLeader { offset_ms } => {
            let leader = runtime
                .block_on(cluster.leader(Duration::from_secs(5)))
                .context("no agreed leader whose clock to move")?;
            cluster.set_clock(leader, offset_ms)?;
            Ok(format!("clock-jump-leader: node {} {:+.3} s", leader + 1, offset_ms as f64 / 1000.0))
        }
        &Action::Strobe { node, offset_ms, period_ms } => {
            cluster.start_strobe(node, offset_ms, period_ms)?;
            Ok(format!(
                "clock-strobe: node {} flips between true time and {:+.3} s every {period_ms} ms",
                node + 1,
                offset_ms as f64 / 1000.0
            ))
        }
        Action::IsolateLeader => {
            let leader = runtime
                .block_on(cluster.leader(Duration::from_secs(5)))
                .context("no agreed leader to isolate")?;
            let others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
            let links = schedule::links_between(&[leader], &others);
            for &(a, b) in &links {
                cluster.cut(a, b)?;
            }
            Ok(format!("partition-leader: node {} cut off", leader + 1))
        }
    }
}

/// Undo the planned fault (the links: every cut link of the cluster is healed; a removed member:
/// added back; a move: nothing – it stays; a damaged log: the node started, or rebuilt).
fn undo(
    cluster: &mut Cluster,
    p: &Planned,
    admin: &mut admin::Admin,
    runtime: &tokio::runtime::Runtime,
    disk: &mut disk::DiskFaults,
    observed: &mut Vec<String>,
) -> Vec<String> {
    let result = match &p.action {
        Action::Disk { node, .. } => disk.end(cluster, *node, admin, runtime, observed),
        Action::Member { node } => runtime.block_on(admin.add_back(&cluster.http(), *node)),
        Action::ShardMove { .. } => Ok(()),
        Action::Kill { node } => cluster.restart(*node),
        Action::Pause { node } => cluster.resume(*node),
        Action::Clock { offsets_ms } => {
            offsets_ms.iter().try_for_each(|&(node, _)| cluster.set_clock(node, 0))
        }
        // Which node led is not kept: every clock is set true (faults do not overlap).
        Action::ClockLeader { .. } => (0..cluster.nodes()).try_for_each(|node| cluster.set_clock(node, 0)),
        &Action::Strobe { node, period_ms, .. } => cluster.stop_strobe(node, period_ms),
        Action::PauseLeader => {
            // Thawed still cut off (which node led is not kept: every frozen node is thawed –
            // faults do not overlap); it runs alone for a second, then every link is healed.
            let mut errors = cluster.thaw_all();
            std::thread::sleep(Duration::from_secs(1));
            errors.extend(cluster.heal_everything());
            return errors;
        }
        Action::Cut { .. } | Action::IsolateLeader => {
            return cluster.heal_everything();
        }
    };
    result.err().map(|e| format!("{e:#}")).into_iter().collect()
}

/// For a clock fault: what its nodes' clocks say now (see [`clock`]), each line prefixed with
/// `when`. Nothing for other faults.
fn observe_clocks(
    cluster: &Cluster,
    p: &Planned,
    runtime: &tokio::runtime::Runtime,
    when: &str,
) -> Vec<String> {
    let (nodes, samples, gap) = match &p.action {
        // Every node: the others' uptimes are what a moved node's is compared with.
        Action::Clock { .. } | Action::ClockLeader { .. } => {
            ((0..cluster.nodes()).collect(), 1, Duration::ZERO)
        }
        // Reads a third of a period apart and more (see clock::observe): both of a strobe's
        // values show.
        &Action::Strobe { node, period_ms, .. } => (vec![node], 8, Duration::from_millis(period_ms / 3)),
        _ => return vec![],
    };
    let lines = runtime.block_on(clock::observe(&cluster.redis(), &cluster.http(), &nodes, samples, gap));
    lines.into_iter().map(|l| format!("{when}: {l}")).collect()
}

fn describe(links: &[(usize, usize)]) -> String {
    links.iter().map(|(a, b)| format!("{}-{}", a + 1, b + 1)).collect::<Vec<_>>().join(" ")
}

fn workload_of(args: &ChaosArgs) -> WorkloadName {
    args.workload.unwrap_or(if args.mode == ChaosMode::Eventual {
        WorkloadName::Siblings
    } else {
        WorkloadName::Register
    })
}

fn replay_command(args: &ChaosArgs) -> String {
    let nemesis: Vec<&str> = args.nemesis.iter().map(|n| n.name()).collect();
    format!(
        "concord chaos --backend {:?} --mode {:?} --workload {} --nodes {} --clients {} --time-limit {} --interval {} --nemesis {} --seed {}",
        args.backend,
        args.mode,
        workload_of(args).name(),
        args.nodes,
        args.clients,
        args.time_limit,
        args.interval,
        nemesis.join(","),
        args.seed
    )
    .to_lowercase()
        + &args.unsafe_mutation.as_ref().map(|m| format!(" --unsafe-mutation {m}")).unwrap_or_default()
}

/// The deploy directory: the one given, ./deploy, or the source tree's.
fn deploy_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_path_buf()],
        None => vec![PathBuf::from("deploy"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")],
    };
    for c in &candidates {
        if c.join("compose.yaml").exists() {
            return Ok(c.canonicalize()?);
        }
    }
    bail!("no deploy/compose.yaml found (looked in {candidates:?}); pass --deploy DIR")
}

/// Now, as YYYYMMDD-HHMMSS (UTC), without a date crate.
fn timestamp() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

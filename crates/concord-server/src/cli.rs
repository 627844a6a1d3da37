//! `concord serve` (run one node) and `concord up` (run a local cluster of separate processes).
//!
//! The clap definitions and the logic live here so that the `concord` binary's files stay thin
//! (`cmd/serve.rs` and `cmd/up.rs` only call [`serve`] and [`up`]).
//!
//! ```text
//! concord serve --config node1.toml
//! concord serve --id 1 --data ./d1 --http-addr 127.0.0.1:8080 --redis-addr 127.0.0.1:6379 \
//!               --peer-addr 127.0.0.1:7379 --peer 2=127.0.0.1:7380 --peer 3=127.0.0.1:7381 \
//!               --cluster-secret-file ./secret
//! concord up --nodes 3 --data ./concord-data     # node i: RESP 6379+i, HTTP 8080+i, peers 7379+i
//! ```

use crate::config::{Mode, NodeConfig, PeerConfig, ReadMode, TlsSettings};
use crate::node::Node;
use anyhow::{anyhow, bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `concord serve`: run one node until SIGINT/SIGTERM.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML node configuration (flags given as well override its settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (1, 2, 3, …).
    #[arg(long)]
    pub id: Option<u32>,
    /// Data directory (the write-ahead log).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Raft port for peers [default: 127.0.0.1:7379].
    #[arg(long)]
    pub peer_addr: Option<SocketAddr>,
    /// RESP (Redis protocol) address.
    #[arg(long)]
    pub redis_addr: Option<SocketAddr>,
    /// HTTP API address.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// A peer: ID=PEER_ADDR[,http=ADDR][,redis=ADDR]. Repeat for each peer.
    #[arg(long = "peer", value_name = "SPEC")]
    pub peers: Vec<String>,
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// The cluster secret (prefer --cluster-secret-file: command lines are visible in `ps`).
    #[arg(long)]
    pub cluster_secret: Option<String>,
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// Password RESP clients must AUTH with.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long)]
    pub log: Option<String>,
    /// Default read consistency: linearizable, lease or stale.
    #[arg(long)]
    pub read_consistency: Option<String>,
    /// Do not fdatasync the WAL (survives kill -9, not power loss). For benchmarks.
    #[arg(long)]
    pub no_fsync: bool,
    /// Allow membership changes through the HTTP admin endpoints without the cluster secret.
    #[arg(long)]
    pub allow_admin: bool,
    /// Lab clusters only: let the dashboard (or curl, from this machine or with the cluster secret)
    /// partition, heal and stop this node through `POST /v1/lab/...`.
    #[arg(long)]
    pub allow_fault_injection: bool,
    /// Join an existing cluster (its nodes are the --peer list) instead of forming a new one;
    /// then run `concord member add` against the cluster.
    #[arg(long)]
    pub join: bool,
    /// Total time a client request may take (e.g. 5s).
    #[arg(long, value_parser = concord_core::time::parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Strong mode: take a Raft snapshot – checkpoint the state's database and compact the log –
    /// every this many applied entries (default 20 000; etcd's `--snapshot-count`).
    #[arg(long, value_name = "ENTRIES")]
    pub snapshot_count: Option<u64>,
    /// Strong mode: the state database's page cache in MiB (default 64): how much of the state is
    /// kept in memory; the state itself may be far larger.
    #[arg(long, value_name = "MIB")]
    pub state_cache_mb: Option<usize>,
    /// How the cluster replicates: strong (Raft) or eventual (Dynamo-style N/R/W quorums). Every
    /// node of a cluster runs the same mode.
    #[arg(long, value_name = "MODE", value_parser = Mode::parse)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub quorums: QuorumArgs,
    /// TLS on every port: this node's certificate (PEM). Needs --tls-key and --tls-ca too.
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs every node's certificate: peers must present one it signed.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// The node configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<NodeConfig> {
        let mut c = match &self.config {
            Some(path) => NodeConfig::from_file(path).map_err(|e| anyhow!(e))?,
            None => {
                let id = self.id.ok_or_else(|| anyhow!("give --config FILE, or at least --id and --data"))?;
                let data = self
                    .data
                    .clone()
                    .ok_or_else(|| anyhow!("give --data DIR (the node's data directory)"))?;
                NodeConfig::new(id, data)
            }
        };
        if let Some(id) = self.id {
            c.id = id;
        }
        if let Some(d) = &self.data {
            c.data_dir = d.clone();
        }
        if let Some(a) = self.peer_addr {
            c.peer_addr = a;
        }
        if self.redis_addr.is_some() {
            c.redis_addr = self.redis_addr;
        }
        if self.http_addr.is_some() {
            c.http_addr = self.http_addr;
        }
        for spec in &self.peers {
            c.peers.push(PeerConfig::parse(spec).map_err(|e| anyhow!(e))?);
        }
        if let Some(id) = &self.cluster_id {
            c.cluster_id = id.clone();
        }
        if self.cluster_secret.is_some() {
            c.cluster_secret = self.cluster_secret.clone();
        }
        if self.cluster_secret_file.is_some() {
            c.cluster_secret_file = self.cluster_secret_file.clone();
        }
        if self.requirepass.is_some() {
            c.requirepass = self.requirepass.clone();
        }
        if let Some(l) = &self.log {
            c.log = l.clone();
        }
        if let Some(r) = &self.read_consistency {
            c.read_consistency = ReadMode::parse(r).map_err(|e| anyhow!(e))?;
        }
        if self.no_fsync {
            c.wal.fsync = false;
        }
        if self.allow_admin {
            c.allow_admin = true;
        }
        if self.allow_fault_injection {
            c.allow_fault_injection = true;
        }
        if self.join {
            c.join = true;
        }
        if let Some(t) = self.request_timeout {
            c.request_timeout = t;
        }
        if let Some(mode) = self.mode {
            c.mode = mode;
        }
        if let Some(n) = self.snapshot_count {
            let mut raft = c.raft_config();
            raft.snapshot_threshold_entries = n;
            // The catch-up tail scales with it (5 000 of the default 20 000).
            raft.snapshot_catchup_entries = n / 4;
            c.raft = Some(raft);
        }
        if let Some(mb) = self.state_cache_mb {
            c.state.cache_mb = mb;
        }
        if self.quorums.any() {
            self.quorums.only_for(c.mode)?;
            let mut d = c.dynamo_config();
            d.n = self.quorums.replicas.unwrap_or(d.n);
            d.r = self.quorums.read_quorum.unwrap_or(d.r);
            d.w = self.quorums.write_quorum.unwrap_or(d.w);
            c.dynamo = Some(d);
        }
        if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_ca.is_some() {
            // Flags override the file's [tls] table one path at a time.
            let file = c.tls.take();
            let pick =
                |flag: &Option<PathBuf>, from_file: Option<&PathBuf>| flag.clone().or(from_file.cloned());
            c.tls = TlsSettings::from_flags(
                pick(&self.tls_cert, file.as_ref().map(|t| &t.cert)),
                pick(&self.tls_key, file.as_ref().map(|t| &t.key)),
                pick(&self.tls_ca, file.as_ref().map(|t| &t.ca)),
            )
            .map_err(|e| anyhow!(e))?;
        }
        c.validate().map_err(|e| anyhow!(e))?;
        Ok(c)
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The runtime of `concord serve`: half the cores as async workers (at least one), unless
/// `TOKIO_WORKER_THREADS` says otherwise. The Raft driver is one task and the WAL syncs on its own
/// thread, so more workers mostly add cross-thread wake-ups: on 2 cores, one worker served 43k
/// GET/s where two served 33k (BENCHMARKS.md).
fn serve_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads((cores / 2).max(1));
    }
    builder.build()
}

/// Wait for SIGINT or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `concord serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    init_logging(&config.log);
    let runtime = serve_runtime().context("starting the async runtime")?;
    runtime
        .block_on(async move { run_until_stopped(Node::start(config).await.map_err(|e| anyhow!(e))?).await })
}

/// Run a started node until SIGINT/SIGTERM (then shut it down cleanly) or until it stops by
/// itself (a disk failure: its error).
async fn run_until_stopped(mut node: Node) -> anyhow::Result<()> {
    tokio::select! {
        _ = termination() => {
            tracing::info!("shutting down (signal)");
            node.shutdown().await.map_err(|e| anyhow!(e))
        }
        r = node.wait() => r.map_err(|e| anyhow!(e)),
    }
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

/// Start `config` as a node joining the cluster that `via` (a member's HTTP address) belongs to,
/// and have the cluster add it – every member learns its addresses, the leader adds it as a
/// learner and promotes it once it has caught up. The running node, and the cluster's answer.
pub async fn join_cluster(
    mut config: NodeConfig,
    via: SocketAddr,
    learner_only: bool,
) -> anyhow::Result<(Node, serde_json::Value)> {
    config.join = true;
    let target = MemberTarget {
        http: via,
        secret_file: None,
        secret: config.secret().map_err(|e| anyhow!(e))?.map(|s| String::from_utf8_lossy(&s).into_owned()),
        tls_ca: config.tls.as_ref().map(|t| t.ca.clone()),
    };
    let peer = PeerConfig {
        id: config.id,
        addr: config.peer_addr,
        http_addr: config.http_addr,
        redis_addr: config.redis_addr,
    };
    let node = Node::start(config).await.map_err(|e| anyhow!(e))?;
    match member_add(&target, peer, learner_only).await {
        Ok(answer) => Ok((node, answer)),
        Err(e) => {
            let _ = node.shutdown().await;
            Err(e.context(format!("the cluster at {via} did not add this node")))
        }
    }
}

/// `concord join`.
pub fn join(args: &JoinArgs) -> anyhow::Result<()> {
    let config = args.serve.to_config()?;
    init_logging(&config.log);
    let runtime = serve_runtime().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (node, answer) = join_cluster(config, args.via, args.learner_only).await?;
        tracing::info!("joined: {answer}");
        run_until_stopped(node).await
    })
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
    /// Lab clusters only: every node gets `--allow-fault-injection` (the dashboard's partition,
    /// heal and stop buttons), and a node that stops cleanly does not stop the others.
    #[arg(long)]
    pub allow_fault_injection: bool,
    /// TLS on every port, with a throwaway CA and node certificates generated under DATA/tls
    /// (clients trust DATA/tls/ca.pem: `redis-cli --tls --cacert`, `curl --cacert`).
    #[arg(long)]
    pub tls: bool,
    /// strong (Raft, the default) or eventual (Dynamo-style: any node serves any request, N/R/W
    /// quorums, siblings, hinted handoff, anti-entropy).
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
}

/// The eventual mode's quorum sizes, for `concord serve` and `concord up` alike.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct QuorumArgs {
    /// Eventual mode: replicas per key (N) [default: 3; `up`: at most --nodes].
    #[arg(long = "n", value_name = "N")]
    pub replicas: Option<usize>,
    /// Eventual mode: replies a read waits for (R) [default: 2]; clients may override it.
    #[arg(long = "r", value_name = "R")]
    pub read_quorum: Option<usize>,
    /// Eventual mode: acknowledgements a write waits for (W) [default: 2]; clients may override it.
    #[arg(long = "w", value_name = "W")]
    pub write_quorum: Option<usize>,
}

impl QuorumArgs {
    /// Whether any quorum flag was given.
    pub fn any(&self) -> bool {
        self.replicas.is_some() || self.read_quorum.is_some() || self.write_quorum.is_some()
    }

    /// N, R and W for a local cluster of `nodes`: the flags, else N = 3 and R = W = 2 – but never
    /// more than the cluster holds, so `concord up --mode eventual --nodes 1` works.
    pub fn for_cluster(&self, nodes: u32) -> (usize, usize, usize) {
        let n = self.replicas.unwrap_or_else(|| (nodes as usize).min(3));
        (n, self.read_quorum.unwrap_or(n.min(2)), self.write_quorum.unwrap_or(n.min(2)))
    }

    /// Quorum flags mean nothing to Raft: say so rather than ignore them.
    fn only_for(&self, mode: Mode) -> anyhow::Result<()> {
        if self.any() && mode != Mode::Eventual {
            bail!("--n, --r and --w are quorum sizes of the eventual mode: add --mode eventual");
        }
        Ok(())
    }
}

/// Read or create the cluster id and secret under `data`.
pub fn cluster_identity(data: &Path) -> anyhow::Result<(String, PathBuf)> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let id_path = data.join("cluster.id");
    let secret_path = data.join("cluster.secret");
    if !id_path.exists() || !secret_path.exists() {
        let random_hex = |n: usize| -> String {
            let mut bytes = vec![0u8; n];
            getrandom::getrandom(&mut bytes).expect("the OS random source works");
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        std::fs::write(&id_path, format!("concord-{}\n", random_hex(4)))
            .with_context(|| format!("cannot write {}", id_path.display()))?;
        write_private(&secret_path, &format!("{}\n", random_hex(32)))?;
    }
    let id =
        std::fs::read_to_string(&id_path).with_context(|| format!("cannot read {}", id_path.display()))?;
    Ok((id.trim().to_string(), secret_path))
}

pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The `serve` arguments of node `i` (0-based) of an `up` cluster.
pub fn up_node_args(args: &UpArgs, i: u32, cluster_id: &str, secret: &Path) -> anyhow::Result<Vec<String>> {
    let port = |base: u16, j: u32| -> anyhow::Result<SocketAddr> {
        let p = u32::from(base) + j;
        let p = u16::try_from(p).map_err(|_| anyhow!("port {base}+{j} is above 65535"))?;
        Ok(SocketAddr::new(args.bind, p))
    };
    let mut argv = vec![
        "serve".to_string(),
        "--id".into(),
        (i + 1).to_string(),
        "--data".into(),
        args.data.join(format!("node{}", i + 1)).display().to_string(),
        "--peer-addr".into(),
        port(args.peer_port, i)?.to_string(),
        "--redis-addr".into(),
        port(args.redis_port, i)?.to_string(),
        "--http-addr".into(),
        port(args.http_port, i)?.to_string(),
        "--cluster-id".into(),
        cluster_id.into(),
        "--cluster-secret-file".into(),
        secret.display().to_string(),
        "--log".into(),
        args.log.clone(),
    ];
    for j in 0..args.nodes {
        if j != i {
            argv.push("--peer".into());
            argv.push(format!(
                "{}={},http={},redis={}",
                j + 1,
                port(args.peer_port, j)?,
                port(args.http_port, j)?,
                port(args.redis_port, j)?
            ));
        }
    }
    if args.no_fsync {
        argv.push("--no-fsync".into());
    }
    if let Some(n) = args.snapshot_count {
        argv.extend(["--snapshot-count".into(), n.to_string()]);
    }
    if let Some(mb) = args.state_cache_mb {
        argv.extend(["--state-cache-mb".into(), mb.to_string()]);
    }
    if args.mode != Mode::Strong {
        argv.push("--mode".into());
        argv.push(args.mode.name().into());
        // N defaults to 3, which a smaller cluster cannot hold: then every node holds every key.
        let (n, r, w) = args.quorums.for_cluster(args.nodes);
        for (flag, value) in [("--n", n), ("--r", r), ("--w", w)] {
            argv.push(flag.into());
            argv.push(value.to_string());
        }
    }
    args.quorums.only_for(args.mode)?;
    if args.allow_fault_injection {
        argv.push("--allow-fault-injection".into());
    }
    if args.tls {
        let files = crate::certgen::node_files(&args.data.join("tls"), i + 1);
        for (flag, path) in [("--tls-cert", files.cert), ("--tls-key", files.key), ("--tls-ca", files.ca)] {
            argv.push(flag.into());
            argv.push(path.display().to_string());
        }
    }
    Ok(argv)
}

/// `concord up`.
pub fn up(args: &UpArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1 to 9 (got {})", args.nodes);
    }
    let (cluster_id, secret) = cluster_identity(&args.data)?;
    if args.tls {
        crate::certgen::local_cluster(&args.data.join("tls"), &cluster_id, args.nodes, args.bind)
            .context("generating the cluster's TLS certificates")?;
    }
    let exe = std::env::current_exe().context("finding the concord executable")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut children: Vec<(u32, Child, PathBuf)> = Vec::new();
    for i in 0..args.nodes {
        match spawn_node(args, i, &exe, &cluster_id, &secret) {
            Ok(child) => children.push((i + 1, child.0, child.1)),
            Err(e) => {
                for (_, child, _) in &mut children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(e);
            }
        }
    }
    println!("concord: {}-node cluster {cluster_id} (data in {})", args.nodes, args.data.display());
    match args.mode {
        Mode::Strong => println!("mode: strong (Raft: one leader, linearizable reads and writes)"),
        Mode::Eventual => {
            let (n, r, w) = args.quorums.for_cluster(args.nodes);
            println!(
                "mode: eventual (Dynamo-style: any node serves any request; N={n} R={r} W={w}; \
                 CONSISTENCY ONE|QUORUM|ALL per connection)"
            )
        }
    }
    for i in 0..args.nodes {
        println!(
            "  node {}: redis {}:{}  http {}://{}:{}  peers {}:{}  log {}",
            i + 1,
            args.bind,
            u32::from(args.redis_port) + i,
            if args.tls { "https" } else { "http" },
            args.bind,
            u32::from(args.http_port) + i,
            args.bind,
            u32::from(args.peer_port) + i,
            args.data.join(format!("node{}.log", i + 1)).display()
        );
    }
    if args.tls {
        let ca = args.data.join("tls").join("ca.pem");
        let ca = ca.display();
        println!("TLS on every port; clients trust {ca}");
        println!("try:  redis-cli --tls --cacert {ca} -p {} SET hello world", args.redis_port);
        println!(
            "      curl --cacert {ca} -X PUT --data world https://{}:{}/v1/kv/hello",
            args.bind, args.http_port
        );
        println!("      curl --cacert {ca} https://{}:{}/v1/cluster", args.bind, args.http_port);
    } else if args.mode == Mode::Eventual {
        println!("try:  redis-cli -p {} SET hello world", args.redis_port);
        let other = u32::from(args.redis_port) + u32::from(args.nodes > 1);
        println!("      redis-cli -p {other} GET hello          (another node)");
        println!("      curl -i http://{}:{}/v1/kv/hello   (the context header)", args.bind, args.http_port);
        println!("      curl http://{}:{}/v1/cluster", args.bind, args.http_port);
    } else {
        println!("try:  redis-cli -p {} SET hello world", args.redis_port);
        println!("      curl -X PUT --data world http://{}:{}/v1/kv/hello", args.bind, args.http_port);
        println!("      curl http://{}:{}/v1/cluster", args.bind, args.http_port);
    }
    let scheme = if args.tls { "https" } else { "http" };
    if args.mode == Mode::Strong {
        println!("dashboard: {scheme}://{}:{}/ (every node serves one)", args.bind, args.http_port);
    }
    if args.allow_fault_injection {
        println!("fault injection is ON (lab only): the dashboards can partition, heal and stop nodes");
    }
    println!("Ctrl-C stops the cluster.");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            termination().await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let mut failed = None;
    // From here on every exit path goes through the shutdown below: no orphaned nodes.
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut stopped = Vec::new();
        for (index, (id, child, log)) in children.iter_mut().enumerate() {
            match child.try_wait() {
                Ok(Some(status)) if args.allow_fault_injection && status.success() => {
                    // A lab stop (or a SIGTERM to this node alone): the others keep running.
                    // (These arguments were built once already, to start the node: no error here.)
                    let argv = up_node_args(args, *id - 1, &cluster_id, &secret).unwrap_or_default();
                    println!(
                        "concord: node {id} stopped; the others keep running. Restart it with:\n  {} {}",
                        exe.display(),
                        argv.join(" ")
                    );
                    stopped.push(index);
                }
                Ok(Some(status)) => {
                    // Show why: the last lines of its log (a port in use, a locked data directory…).
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(3).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    failed = Some(format!(
                        "node {id} exited ({status}); the end of {}:\n{}",
                        log.display(),
                        tail.join("\n")
                    ));
                }
                Ok(None) => {}
                Err(e) => failed = Some(format!("cannot watch node {id}: {e}")),
            }
        }
        for index in stopped.into_iter().rev() {
            children.remove(index);
        }
        if failed.is_some() || children.is_empty() {
            break;
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    }
    // Ask every node to stop (SIGTERM: each finishes its sync and exits), then wait.
    for (_, child, _) in &mut children {
        terminate(child);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (id, child, _) in &mut children {
        loop {
            if let Some(status) = child.try_wait().unwrap_or(None) {
                if !status.success() && failed.is_none() {
                    eprintln!("node {id} exited with {status}");
                }
                break;
            }
            if Instant::now() > deadline {
                eprintln!("node {id} did not stop within 10s; killing it");
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    match failed {
        Some(why) => bail!(why),
        None => {
            println!("concord: cluster stopped");
            Ok(())
        }
    }
}

/// Start node `i` (0-based) of an `up` cluster as the program `exe`, its output going to
/// DATA/node<i+1>.log (appended). Also used by the tests that run clusters of real processes.
pub fn spawn_node(
    args: &UpArgs,
    i: u32,
    exe: &Path,
    cluster_id: &str,
    secret: &Path,
) -> anyhow::Result<(Child, PathBuf)> {
    let argv = up_node_args(args, i, cluster_id, secret)?;
    let log_path = args.data.join(format!("node{}.log", i + 1));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let child = Command::new(exe)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start node {}", i + 1))?;
    Ok((child, log_path))
}

/// Send SIGTERM (a graceful stop) to a child.
fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // A pid we spawned and have not reaped; if it already exited, there is nothing to stop.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_build_a_valid_config() {
        let args = ServeArgs {
            id: Some(1),
            data: Some("/tmp/d1".into()),
            peers: vec!["2=127.0.0.1:7381".into()],
            cluster_secret: Some("s".into()),
            ..ServeArgs::default()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.other_peers().len(), 1);
        assert_eq!(c.raft_config().snapshot_threshold_entries, 20_000);
        let every_500 = ServeArgs {
            id: Some(1),
            data: Some("/tmp/d1".into()),
            peers: vec!["2=127.0.0.1:7381".into()],
            cluster_secret: Some("s".into()),
            snapshot_count: Some(500),
            ..ServeArgs::default()
        }
        .to_config()
        .unwrap();
        assert_eq!(every_500.raft_config().snapshot_threshold_entries, 500);
        assert_eq!(every_500.raft_config().voters, c.raft_config().voters);
        let err = ServeArgs { id: Some(1), ..ServeArgs::default() }.to_config().unwrap_err();
        assert!(err.to_string().contains("--data"), "{err}");
        let half_tls = ServeArgs { tls_cert: Some("/c.pem".into()), tls_key: Some("/k.pem".into()), ..args };
        let err = half_tls.to_config().unwrap_err().to_string();
        assert!(err.contains("missing --tls-ca"), "{err}");
        let tls = ServeArgs { tls_ca: Some("/ca.pem".into()), ..half_tls };
        assert_eq!(tls.to_config().unwrap().tls.unwrap().ca, PathBuf::from("/ca.pem"));
        let no_secret =
            ServeArgs { cluster_secret: None, tls_cert: None, tls_key: None, tls_ca: None, ..tls };
        assert!(no_secret.to_config().unwrap_err().to_string().contains("cluster_secret"));
    }

    #[test]
    fn up_gives_each_node_its_ports_and_peers() {
        let args = UpArgs {
            nodes: 3,
            data: "/tmp/c".into(),
            redis_port: 6379,
            http_port: 8080,
            peer_port: 7379,
            bind: "127.0.0.1".parse().unwrap(),
            log: "info".into(),
            no_fsync: false,
            allow_fault_injection: false,
            tls: false,
            mode: Mode::Strong,
            snapshot_count: Some(500),
            state_cache_mb: Some(8),
            quorums: QuorumArgs::default(),
        };
        let argv = up_node_args(&args, 1, "c1", Path::new("/tmp/c/cluster.secret")).unwrap();
        let text = argv.join(" ");
        assert!(text.contains("--id 2 "), "{text}");
        assert!(text.contains("--redis-addr 127.0.0.1:6380"), "{text}");
        assert!(text.contains("--peer 1=127.0.0.1:7379,http=127.0.0.1:8080,redis=127.0.0.1:6379"), "{text}");
        assert!(!text.contains("--peer 2="), "{text}");
        assert!(text.contains("--snapshot-count 500 --state-cache-mb 8"), "{text}");
        let serve = <ServeArgsParser as clap::Parser>::try_parse_from(
            std::iter::once("serve".to_string()).chain(argv.into_iter().skip(1)),
        )
        .unwrap();
        // The flags parse; the secret file does not exist here, and the error says so.
        let err = serve.args.to_config().unwrap_err().to_string();
        assert!(err.contains("cannot read cluster_secret_file"), "{err}");
        // --mode eventual passes the mode and quorums on; N defaults to min(3, nodes).
        let eventual = UpArgs {
            mode: Mode::Eventual,
            quorums: QuorumArgs { write_quorum: Some(3), ..Default::default() },
            ..args.clone()
        };
        let text = up_node_args(&eventual, 0, "c1", Path::new("/s")).unwrap().join(" ");
        assert!(text.contains("--mode eventual --n 3 --r 2 --w 3"), "{text}");
        let two = UpArgs { nodes: 2, ..eventual.clone() };
        assert!(up_node_args(&two, 0, "c1", Path::new("/s")).unwrap().join(" ").contains("--n 2"));
        let strong_with_quorum =
            UpArgs { quorums: QuorumArgs { replicas: Some(2), ..Default::default() }, ..args.clone() };
        let err = up_node_args(&strong_with_quorum, 0, "c1", Path::new("/s")).unwrap_err().to_string();
        assert!(err.contains("add --mode eventual"), "{err}");
        // --tls gives each node its own certificate and the shared CA.
        let argv = up_node_args(&UpArgs { tls: true, ..args }, 2, "c1", Path::new("/s")).unwrap().join(" ");
        assert!(
            argv.contains(
                "--tls-cert /tmp/c/tls/node3.pem --tls-key /tmp/c/tls/node3.key --tls-ca /tmp/c/tls/ca.pem"
            ),
            "{argv}"
        );
    }

    #[derive(clap::Parser)]
    struct ServeArgsParser {
        #[command(flatten)]
        args: ServeArgs,
    }
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
    /// The secret itself (for `concord join`, which has it from the node's own configuration).
    #[arg(skip)]
    pub secret: Option<String>,
    /// Talk HTTPS and trust this CA certificate: for nodes started with TLS (`concord up --tls`
    /// writes it to DATA/tls/ca.pem). Every member is then called over HTTPS. The nodes ask
    /// HTTP clients for no certificate, so none is needed here.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
}

impl MemberTarget {
    fn secret(&self) -> anyhow::Result<Option<String>> {
        if self.secret.is_some() {
            return Ok(self.secret.clone());
        }
        match &self.secret_file {
            None => Ok(None),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                Ok(Some(text.lines().next().unwrap_or("").trim().to_string()))
            }
        }
    }

    async fn call(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let secret = self.secret()?;
        let auth = secret.map(|s| format!("Bearer {s}"));
        let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("authorization", a)).into_iter().collect();
        let body = if body.is_null() { Vec::new() } else { serde_json::to_vec(body)? };
        let timeout = Duration::from_secs(15);
        let answer = match &self.tls_ca {
            Some(ca) => {
                let tls = crate::tls::client_config(ca).map_err(|e| anyhow!(e))?;
                crate::client::https_with_headers(addr, tls, method, path, &headers, &body, timeout)
                    .await
                    .map_err(|e| anyhow!("{e} (called over HTTPS because of --tls-ca)"))?
            }
            None => crate::client::http_with_headers(addr, method, path, &headers, &body, timeout)
                .await
                .map_err(|e| anyhow!(plain_http_hint(&format!("{method} {path} on {addr}"), e)))?,
        };
        let json = answer.json().map_err(|e| anyhow!(e))?;
        if answer.status != 200 {
            bail!("{method} {path} on {addr}: {} {}", answer.status, json["error"].as_str().unwrap_or(""));
        }
        Ok(json)
    }
}

/// A failed plain-HTTP call, with a hint when it looks like the node speaks HTTPS: a TLS node
/// drops a plaintext request without an HTTP answer (there is nothing to read, or only a TLS alert).
fn plain_http_hint(call: &str, e: String) -> String {
    if e.starts_with("connect ") || e.ends_with("timed out") {
        return e; // nobody listening, or nobody answering: not a TLS question
    }
    format!(
        "{call}: {e}; if the node serves HTTPS (started with --tls-cert, or by `concord up --tls`), pass --tls-ca \
         with the cluster's CA certificate (e.g. DATA/tls/ca.pem)"
    )
}

/// Add node `id` at the given addresses to the cluster reachable at `target`.
pub async fn member_add(
    target: &MemberTarget,
    peer: PeerConfig,
    learner_only: bool,
) -> anyhow::Result<serde_json::Value> {
    let view = target.call(target.http, "GET", "/v1/cluster", &serde_json::Value::Null).await?;
    let body = serde_json::to_value(&peer)?;
    let mut told = 0;
    for m in view["members"].as_array().into_iter().flatten() {
        let Some(addr) = m["http_addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            eprintln!(
                "member {} has no known HTTP address; it will not learn node {}'s address",
                m["id"], peer.id
            );
            continue;
        };
        target.call(addr, "POST", "/v1/members/addresses", &body).await?;
        told += 1;
    }
    if told == 0 {
        bail!("no member could be told node {}'s address", peer.id);
    }
    let change = |op: &str| serde_json::json!({ "op": op, "id": peer.id });
    let added = target.call(target.http, "POST", "/v1/members", &change("add_learner")).await?;
    if learner_only {
        return Ok(added);
    }
    // A learner can be promoted once it holds everything committed (the leader checks).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match target.call(target.http, "POST", "/v1/members", &change("promote")).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline && e.to_string().contains("not caught up") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Run one `concord member` command; its answer (what the command prints).
pub async fn member_command(command: &MemberCommand) -> anyhow::Result<serde_json::Value> {
    Ok(match command {
        MemberCommand::List(t) => t.call(t.http, "GET", "/v1/cluster", &serde_json::Value::Null).await?,
        MemberCommand::Add { target, id, peer_addr, node_http_addr, node_redis_addr, learner_only } => {
            let peer = PeerConfig {
                id: *id,
                addr: *peer_addr,
                http_addr: *node_http_addr,
                redis_addr: *node_redis_addr,
            };
            member_add(target, peer, *learner_only).await?
        }
        MemberCommand::Remove { target, id } => {
            let body = serde_json::json!({ "op": "remove", "id": id });
            target.call(target.http, "POST", "/v1/members", &body).await?
        }
    })
}

/// `concord member`.
pub fn member(args: &MemberArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(member_command(&args.command))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

//! The supervisor of `concord up`: a local cluster of separate `concord serve` processes.
//!
//! [`up`] reads or creates the cluster's identity (id and secret under the data directory),
//! generates throwaway TLS certificates when asked, starts one child process per node with the
//! `serve` arguments [`up_node_args`] lays out (node i: RESP, HTTP and peer ports base + i), prints
//! where everything listens, and watches the children until Ctrl-C: then every node gets SIGTERM
//! and a few seconds to finish its sync. The process-level tests start their clusters through the
//! same [`spawn_node`], so they run exactly what `concord up` runs.
//!
//! **The cluster outlives its nodes.** A node that exits – `kill -9`, a crash, a clean stop – is
//! reported on the console, and the others keep serving: that is the failover a person came to
//! watch. The node comes back with `concord restart N` (which talks to this supervisor through the
//! socket `DATA/up.sock`, see [`control`]), from the dashboard's Restart button (with
//! `--allow-fault-injection`), or by itself with `--restart on-failure` (after 1 s, 2 s, 4 s, …
//! up to 30 s; a node that ran a minute starts again from 1 s). Each running node's pid is in
//! `DATA/node<i>.pid`. Only two things end `up` besides Ctrl-C: a node that fails during the first
//! seconds (a port in use, a locked data directory – nothing to fail over to yet), and every node
//! having stopped cleanly. Re-running `up` on the same data directory resumes the same cluster.

use crate::config::Mode;
use anyhow::{anyhow, bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `concord up` starts; [`Default`] gives the command's defaults.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Number of nodes (1 to 9).
    pub nodes: u32,
    /// Data directory: node i keeps its WAL in DATA/node<i>; the cluster id and secret are kept in
    /// DATA/cluster.id and DATA/cluster.secret (generated on first run, reused after).
    pub data: PathBuf,
    /// RESP port of the first node; node i (0-based) listens on this + i.
    pub redis_port: u16,
    /// HTTP port of the first node.
    pub http_port: u16,
    /// Raft peer port of the first node.
    pub peer_port: u16,
    /// The address every port binds to.
    pub bind: IpAddr,
    /// Log filter passed to every node.
    pub log: String,
    /// Do not fdatasync (benchmarks only).
    pub no_fsync: bool,
    /// Lab clusters only: every node gets `--allow-fault-injection`, and a node that stops cleanly
    /// does not stop the others.
    pub allow_fault_injection: bool,
    /// TLS on every port, with a throwaway CA and node certificates generated under DATA/tls.
    pub tls: bool,
    /// How the cluster replicates.
    pub mode: Mode,
    /// Strong mode: a Raft snapshot (checkpoint and log compaction) every this many entries.
    pub snapshot_count: Option<u64>,
    /// Strong mode: each node's state-database page cache in MiB.
    pub state_cache_mb: Option<usize>,
    /// The eventual mode's quorum sizes.
    pub quorums: Quorums,
    /// Sharded mode: how many shards (`--shards`; giving it selects the sharded mode).
    pub shards: Option<u32>,
    /// Sharded mode: replicas per shard (`--replicas`; default 3, at most the number of nodes).
    pub shard_replicas: Option<usize>,
    /// What to do when a node exits on its own.
    pub restart: RestartPolicy,
    /// Cache nodes (`concord cache`) to start beside the cluster (`--cache C`), each in front of
    /// every database node; cache node i listens on `cache_port + i` (RESP) and
    /// `cache_http_port + i` (HTTP: metrics and its dashboard).
    pub caches: u32,
    pub cache_port: u16,
    pub cache_http_port: u16,
}

/// What `concord up` does when a node exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Report it and keep the others running; `concord restart N` brings it back.
    #[default]
    Never,
    /// Start it again after a back-off, unless it stopped cleanly (exit status 0).
    OnFailure,
}

impl Default for UpOptions {
    fn default() -> UpOptions {
        UpOptions {
            nodes: 3,
            data: PathBuf::from("./concord-data"),
            redis_port: 6379,
            http_port: 8080,
            peer_port: 7379,
            bind: IpAddr::from([127, 0, 0, 1]),
            log: "info".into(),
            no_fsync: false,
            allow_fault_injection: false,
            tls: false,
            mode: Mode::Strong,
            snapshot_count: None,
            state_cache_mb: None,
            quorums: Quorums::default(),
            shards: None,
            shard_replicas: None,
            restart: RestartPolicy::Never,
            caches: 0,
            cache_port: 6400,
            cache_http_port: 8400,
        }
    }
}

impl UpOptions {
    /// The sharded layout these options ask for: `(shards, replicas per shard)` with the replicas
    /// capped at the number of nodes, `None` outside the sharded mode – or why the flags disagree.
    pub fn sharding(&self) -> anyhow::Result<Option<(u32, usize)>> {
        match (self.mode, self.shards) {
            (Mode::Sharded, Some(shards)) => {
                let replicas = self.shard_replicas.unwrap_or(3);
                if replicas == 0 {
                    bail!("--replicas must be at least 1");
                }
                Ok(Some((shards, replicas.min(self.nodes as usize))))
            }
            (Mode::Sharded, None) => bail!("the sharded mode needs --shards S (how many shards)"),
            (_, Some(_)) => {
                bail!("--shards is for the sharded mode (the {} mode was asked for)", self.mode.name())
            }
            (_, None) if self.shard_replicas.is_some() => {
                bail!("--replicas is the sharded mode's replicas per shard: add --shards S")
            }
            (_, None) => Ok(None),
        }
    }
}

/// The eventual mode's quorum sizes as given on a command line (`--n`, `--r`, `--w`), for
/// `concord serve` and `concord up` alike: unset ones take the mode's defaults.
#[derive(Debug, Clone, Default)]
pub struct Quorums {
    /// Replicas per key (N).
    pub replicas: Option<usize>,
    /// Replies a read waits for (R).
    pub read_quorum: Option<usize>,
    /// Acknowledgements a write waits for (W).
    pub write_quorum: Option<usize>,
}

impl Quorums {
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
    pub fn only_for(&self, mode: Mode) -> anyhow::Result<()> {
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
    if !dashboard_token_path(data).exists() {
        new_dashboard_token(data)?;
    }
    let id =
        std::fs::read_to_string(&id_path).with_context(|| format!("cannot read {}", id_path.display()))?;
    Ok((id.trim().to_string(), secret_path))
}

/// Where an `up` cluster keeps its dashboard token (every node reads it at start).
pub fn dashboard_token_path(data: &Path) -> PathBuf {
    data.join("dashboard.token")
}

/// Write a fresh dashboard token for the cluster under `data` (each `concord up` makes its own, as
/// Jupyter does: a URL printed by an earlier run stops working); the token.
pub fn new_dashboard_token(data: &Path) -> anyhow::Result<String> {
    let token = crate::auth::random_hex(16);
    write_private(&dashboard_token_path(data), &format!("{token}\n"))?;
    Ok(token)
}

/// The dashboard token of the cluster under `data` (for the tests and `concord tour`).
pub fn dashboard_token(data: &Path) -> anyhow::Result<String> {
    let path = dashboard_token_path(data);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_string())
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

/// Where node `i` (0-based) of an `up` cluster listens in the port family starting at `base`.
pub fn node_addr(args: &UpOptions, base: u16, i: u32) -> anyhow::Result<SocketAddr> {
    let p = u32::from(base) + i;
    let p = u16::try_from(p).map_err(|_| anyhow!("port {base}+{i} is above 65535"))?;
    Ok(SocketAddr::new(args.bind, p))
}

/// The `serve` arguments of node `i` (0-based) of an `up` cluster.
pub fn up_node_args(
    args: &UpOptions,
    i: u32,
    cluster_id: &str,
    secret: &Path,
) -> anyhow::Result<Vec<String>> {
    let port = |base: u16, j: u32| node_addr(args, base, j);
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
        "--dashboard-token-file".into(),
        dashboard_token_path(&args.data).display().to_string(),
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
    if let Some((shards, replicas)) = args.sharding()? {
        argv.extend(["--mode".into(), "sharded".into()]);
        argv.extend(["--shards".into(), shards.to_string(), "--replicas".into(), replicas.to_string()]);
    } else if args.mode != Mode::Strong {
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
        argv.push("--supervisor".into());
        argv.push(control::socket_path(&args.data).display().to_string());
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

/// The `cache` arguments of cache node `i` (0-based) of an `up` cluster: every database node's
/// RESP address, the cluster id, and the whole tier as its peers.
pub fn up_cache_args(args: &UpOptions, i: u32, cluster_id: &str) -> anyhow::Result<Vec<String>> {
    let list = |base: u16, count: u32| -> anyhow::Result<String> {
        let addrs: anyhow::Result<Vec<String>> =
            (0..count).map(|j| node_addr(args, base, j).map(|a| a.to_string())).collect();
        Ok(addrs?.join(","))
    };
    Ok(vec![
        "cache".to_string(),
        "--bind".into(),
        args.bind.to_string(),
        "--port".into(),
        node_addr(args, args.cache_port, i)?.port().to_string(),
        "--http-port".into(),
        node_addr(args, args.cache_http_port, i)?.port().to_string(),
        "--db".into(),
        list(args.redis_port, args.nodes)?,
        "--cluster-id".into(),
        cluster_id.to_string(),
        "--peers".into(),
        list(args.cache_port, args.caches)?,
    ])
}

/// Start cache node `i` (0-based) of an `up` cluster, its output going to DATA/cache<i+1>.log.
pub fn spawn_cache(
    args: &UpOptions,
    i: u32,
    exe: &Path,
    cluster_id: &str,
) -> anyhow::Result<(Child, PathBuf)> {
    let argv = up_cache_args(args, i, cluster_id)?;
    spawn_logged(exe, &argv, args.data.join(format!("cache{}.log", i + 1)), &format!("cache node {}", i + 1))
}

/// Where `up` keeps cache node `id`'s pid while it runs.
pub fn cache_pid_file(data: &Path, id: u32) -> PathBuf {
    data.join(format!("cache{id}.pid"))
}

/// `concord up`: start the cluster `args` describes, print where it listens, and supervise it
/// until SIGINT/SIGTERM (or a node failing to start, or every node stopped cleanly); then stop
/// every node cleanly. Nodes that die meanwhile are reported and can be restarted (module docs).
pub fn up(args: &UpOptions) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1 to 9 (got {})", args.nodes);
    }
    let sharding = args.sharding()?;
    if args.caches > 0 && args.mode == Mode::Eventual {
        bail!("--cache needs the strong or the sharded mode: the eventual mode has no change feed to invalidate a cache");
    }
    if args.caches > 0 && args.tls {
        bail!(
            "--cache and --tls together are not supported yet: cache nodes speak plain RESP to the database"
        );
    }
    let (cluster_id, secret) = cluster_identity(&args.data)?;
    let token = new_dashboard_token(&args.data)?;
    if args.tls {
        crate::certgen::local_cluster(&args.data.join("tls"), &cluster_id, args.nodes, args.bind)
            .context("generating the cluster's TLS certificates")?;
    }
    let exe = std::env::current_exe().context("finding the concord executable")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut members: Vec<Member> = Vec::new();
    for i in 0..args.nodes {
        match spawn_node(args, i, &exe, &cluster_id, &secret) {
            Ok((child, log)) => {
                let _ = std::fs::write(pid_file(&args.data, i + 1), format!("{}\n", child.id()));
                members.push(Member {
                    id: i + 1,
                    child: Some(child),
                    log,
                    since: Instant::now(),
                    failures: 0,
                    retry_at: None,
                    stopped_cleanly: false,
                });
            }
            Err(e) => {
                for member in &mut members {
                    if let Some(child) = member.child.as_mut() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                return Err(e);
            }
        }
    }
    let mut caches: Vec<Member> = Vec::new();
    for i in 0..args.caches {
        match spawn_cache(args, i, &exe, &cluster_id) {
            Ok((child, log)) => {
                let _ = std::fs::write(cache_pid_file(&args.data, i + 1), format!("{}\n", child.id()));
                caches.push(Member {
                    id: i + 1,
                    child: Some(child),
                    log,
                    since: Instant::now(),
                    failures: 0,
                    retry_at: None,
                    stopped_cleanly: false,
                });
            }
            Err(e) => {
                for member in members.iter_mut().chain(caches.iter_mut()) {
                    if let Some(child) = member.child.as_mut() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
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
        Mode::Sharded => {
            let (shards, replicas) = sharding.unwrap_or_default();
            println!(
                "mode: sharded ({shards} shards of {replicas} replicas, each its own Raft group; 16 384 slots; \
                 any node serves any key over HTTP, RESP answers -MOVED like Redis Cluster: redis-cli -c)"
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
    for i in 0..args.caches {
        println!(
            "  cache {}: redis {}:{}  http http://{}:{}/  log {}",
            i + 1,
            args.bind,
            u32::from(args.cache_port) + i,
            args.bind,
            u32::from(args.cache_http_port) + i,
            args.data.join(format!("cache{}.log", i + 1)).display()
        );
    }
    if args.caches > 0 {
        println!(
            "cache tier: {} node(s) in front of the database (read-through GET, write-through SET, invalidated by \
             every database node's change feed); a cache node that exits is started again. docs/cache.md",
            args.caches
        );
        println!(
            "try:  redis-cli -p {0} SET hello world && redis-cli -p {0} GET hello && redis-cli -p {0} INFO cache",
            args.cache_port
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
    } else if args.mode == Mode::Sharded {
        println!("try:  redis-cli -c -p {} SET hello world", args.redis_port);
        println!("      curl -X PUT --data world http://{}:{}/v1/kv/hello", args.bind, args.http_port);
        println!(
            "      curl http://{}:{}/v1/cluster              (the shard map)",
            args.bind, args.http_port
        );
        println!("      concord shard list --http {}:{}", args.bind, args.http_port);
        println!(
            "      concord shard move 0-99 --to 2 --http {}:{} --secret-file {}",
            args.bind,
            args.http_port,
            args.data.join("cluster.secret").display()
        );
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
    if args.mode == Mode::Sharded {
        println!(
            "dashboard: {scheme}://{}:{}/?token={token} (every node serves one: the slots by shard, each shard's \
             replicas and leader, moves in progress; the token, new with each `up`, is in {})",
            args.bind,
            args.http_port,
            dashboard_token_path(&args.data).display()
        );
    } else {
        println!(
            "dashboard: {scheme}://{}:{}/?token={token} (every node serves one; the token, new with each `up`, \
             lets the page use the lab buttons and is in {})",
            args.bind,
            args.http_port,
            dashboard_token_path(&args.data).display()
        );
    }
    if args.allow_fault_injection {
        println!(
            "fault injection is ON (test clusters only): the dashboards can partition, heal and stop nodes"
        );
    }

    if args.restart == RestartPolicy::OnFailure {
        println!("a node that fails is started again (--restart on-failure)");
    }
    println!("Ctrl-C stops the cluster; `concord restart N --data {}` restarts node N.", args.data.display());

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            crate::serve::termination().await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let mut supervisor =
        Supervisor { args, exe, cluster_id, secret, members, caches, started: Instant::now() };
    let control = control::Listener::bind(&args.data);
    if let Err(e) = &control {
        eprintln!("concord: no control socket ({e}); `concord restart` will not reach this cluster");
    }
    let mut failed = None;
    // From here on every exit path goes through the shutdown below: no orphaned nodes.
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if let Err(why) = supervisor.watch() {
            failed = Some(why);
            break;
        }
        supervisor.watch_caches();
        if let Ok(control) = &control {
            control.serve_pending(|command| supervisor.command(command));
        }
        if supervisor.all_stopped_cleanly() {
            break;
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    }
    supervisor.stop_all(failed.is_some());
    drop(control);
    match failed {
        Some(why) => bail!(why),
        None => {
            println!("concord: cluster stopped");
            Ok(())
        }
    }
}

/// How long after `up` starts a node that exits with an error code counts as a failure to start
/// (fatal).
const STARTUP_GRACE: Duration = Duration::from_secs(3);
/// Back-off of `--restart on-failure`: 1 s, doubling, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A node that ran this long before failing starts again from the shortest back-off.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// One node of the cluster, running or not.
struct Member {
    id: u32,
    child: Option<Child>,
    log: PathBuf,
    /// When the current (or last) process started.
    since: Instant,
    /// Failures in a row (for the back-off), and when to start again (`--restart on-failure`).
    failures: u32,
    retry_at: Option<Instant>,
    /// The last exit was clean (status 0).
    stopped_cleanly: bool,
}

struct Supervisor<'a> {
    args: &'a UpOptions,
    exe: PathBuf,
    cluster_id: String,
    secret: PathBuf,
    members: Vec<Member>,
    /// The cache nodes (`--cache`), numbered from 1 like the nodes.
    caches: Vec<Member>,
    started: Instant,
}

impl Supervisor<'_> {
    /// Look at every child: report the ones that exited, start the ones due for a restart. An
    /// error is a failure to start (during the first seconds), which ends `up`.
    fn watch(&mut self) -> Result<(), String> {
        for index in 0..self.members.len() {
            let member = &mut self.members[index];
            let Some(child) = member.child.as_mut() else {
                if member.retry_at.is_some_and(|at| Instant::now() >= at) {
                    member.retry_at = None;
                    let id = member.id;
                    match self.start(id) {
                        Ok(pid) => println!("concord: node {id} started again (pid {pid})"),
                        Err(e) => println!("concord: node {id} could not be started again: {e:#}"),
                    }
                }
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(e) => return Err(format!("cannot watch node {}: {e}", member.id)),
            };
            member.child = None;
            let _ = std::fs::remove_file(pid_file(&self.args.data, member.id));
            let id = member.id;
            let tail = log_tail(&member.log, 3);
            // A node that exits with an error code in the first seconds did not start (a port
            // in use, a locked directory): nothing to fail over to, so `up` reports it and ends.
            // One killed by a signal was running: that is the drill, not a failure to start.
            if self.started.elapsed() < STARTUP_GRACE && !status.success() && status.code().is_some() {
                return Err(format!(
                    "node {id} exited ({status}); the end of {}:\n{tail}",
                    member.log.display()
                ));
            }
            let ran = member.since.elapsed();
            member.stopped_cleanly = status.success();
            let restart_by_hand = format!(
                "  concord restart {id} --data {}\n  (or by hand: {} {})",
                self.args.data.display(),
                self.exe.display(),
                up_node_args(self.args, id - 1, &self.cluster_id, &self.secret).unwrap_or_default().join(" ")
            );
            if status.success() {
                println!("concord: node {id} stopped; the others keep running. Restart it with:\n{restart_by_hand}");
                continue;
            }
            println!(
                "concord: node {id} exited ({status}) after {:.1}s; the others keep running. The end of {}:\n{tail}",
                ran.as_secs_f64(),
                member.log.display()
            );
            if self.args.restart == RestartPolicy::OnFailure {
                member.failures = if ran >= STABLE_RUN { 1 } else { member.failures + 1 };
                let backoff = Duration::from_secs(1 << (member.failures - 1).min(5)).min(MAX_BACKOFF);
                member.retry_at = Some(Instant::now() + backoff);
                println!(
                    "concord: starting node {id} again in {}s (--restart on-failure)",
                    backoff.as_secs()
                );
            } else {
                println!("Restart it with:\n{restart_by_hand}");
            }
        }
        Ok(())
    }

    /// Look at every cache node: one that exited is reported and started again after a back-off
    /// (1 s, doubling up to 30 s): a cache holds nothing that must survive, and never stops the
    /// cluster.
    fn watch_caches(&mut self) {
        for member in &mut self.caches {
            let id = member.id;
            let Some(child) = member.child.as_mut() else {
                if member.retry_at.is_some_and(|at| Instant::now() >= at) {
                    member.retry_at = None;
                    match spawn_cache(self.args, id - 1, &self.exe, &self.cluster_id) {
                        Ok((child, log)) => {
                            println!("concord: cache node {id} started again (pid {})", child.id());
                            let _ = std::fs::write(
                                cache_pid_file(&self.args.data, id),
                                format!("{}\n", child.id()),
                            );
                            member.child = Some(child);
                            member.log = log;
                            member.since = Instant::now();
                        }
                        Err(e) => println!("concord: cache node {id} could not be started again: {e:#}"),
                    }
                }
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else { continue };
            member.child = None;
            let _ = std::fs::remove_file(cache_pid_file(&self.args.data, id));
            let ran = member.since.elapsed();
            member.failures = if ran >= STABLE_RUN { 1 } else { member.failures + 1 };
            let backoff = Duration::from_secs(1 << (member.failures - 1).min(5)).min(MAX_BACKOFF);
            member.retry_at = Some(Instant::now() + backoff);
            println!(
                "concord: cache node {id} exited ({status}) after {:.1}s; the cluster keeps running, and the cache \
                 node starts again in {}s. The end of {}:\n{}",
                ran.as_secs_f64(),
                backoff.as_secs(),
                member.log.display(),
                log_tail(&member.log, 3)
            );
        }
    }

    /// Start node `id` (1-based) and record its pid.
    fn start(&mut self, id: u32) -> anyhow::Result<u32> {
        let (child, log) = spawn_node(self.args, id - 1, &self.exe, &self.cluster_id, &self.secret)?;
        let pid = child.id();
        std::fs::write(pid_file(&self.args.data, id), format!("{pid}\n"))
            .with_context(|| format!("cannot write node {id}'s pid file"))?;
        let member = &mut self.members[id as usize - 1];
        member.child = Some(child);
        member.log = log;
        member.since = Instant::now();
        member.stopped_cleanly = false;
        Ok(pid)
    }

    /// Whether every node stopped cleanly (and none is due to start): then `up` has nothing left.
    fn all_stopped_cleanly(&self) -> bool {
        self.members.iter().all(|m| m.child.is_none() && m.retry_at.is_none() && m.stopped_cleanly)
    }

    /// A command from `concord restart` (see [`control`]); the answer's first word is `ok` or `error`.
    fn command(&mut self, command: &str) -> String {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["restart", id] => {
                let Some(id) =
                    id.parse::<u32>().ok().filter(|id| (1..=self.members.len() as u32).contains(id))
                else {
                    return format!("error: no node {id} in this {}-node cluster", self.members.len());
                };
                if let Some(child) = self.members[id as usize - 1].child.as_mut() {
                    terminate(child);
                    if !wait_for_exit(child, Duration::from_secs(10)) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    println!("concord: node {id} stopped for a restart");
                }
                self.members[id as usize - 1].retry_at = None;
                match self.start(id) {
                    Ok(pid) => {
                        println!("concord: node {id} restarted (pid {pid})");
                        format!("ok: node {id} restarted (pid {pid})")
                    }
                    Err(e) => format!("error: node {id} could not be started: {e:#}"),
                }
            }
            ["nodes"] => {
                // For `concord restart --all`: where each node's HTTP API is, and whether it runs.
                let nodes: Vec<serde_json::Value> = self
                    .members
                    .iter()
                    .map(|m| {
                        let http = node_addr(self.args, self.args.http_port, m.id - 1);
                        serde_json::json!({
                            "id": m.id,
                            "running": m.child.is_some(),
                            "http": http.map(|a| a.to_string()).ok(),
                            "tls": self.args.tls,
                        })
                    })
                    .collect();
                format!("ok: {}", serde_json::Value::Array(nodes))
            }
            ["status"] => {
                let lines: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| match &m.child {
                        Some(child) => format!("node {}: running (pid {})", m.id, child.id()),
                        None => format!("node {}: down", m.id),
                    })
                    .collect();
                format!("ok: {}", lines.join("; "))
            }
            _ => format!("error: unknown command {command:?} (restart N, status, nodes)"),
        }
    }

    /// Ask every running node to stop (SIGTERM: each finishes its sync and exits), then wait.
    fn stop_all(&mut self, failed: bool) {
        for member in &mut self.caches {
            if let Some(child) = member.child.as_mut() {
                terminate(child);
                if !wait_for_exit(child, Duration::from_secs(5)) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            let _ = std::fs::remove_file(cache_pid_file(&self.args.data, member.id));
        }
        for member in &mut self.members {
            if let Some(child) = member.child.as_mut() {
                terminate(child);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for member in &mut self.members {
            let Some(child) = member.child.as_mut() else { continue };
            let left = deadline.saturating_duration_since(Instant::now());
            if wait_for_exit(child, left) {
                if let Ok(Some(status)) = child.try_wait() {
                    if !status.success() && !failed {
                        eprintln!("node {} exited with {status}", member.id);
                    }
                }
            } else {
                eprintln!("node {} did not stop within 10s; killing it", member.id);
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_file(pid_file(&self.args.data, member.id));
        }
    }
}

/// How long a restarted node may take to answer and catch up before a rolling restart gives up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(60);

/// `concord restart --all`: restart the nodes of the cluster `concord up` supervises in `data` one
/// at a time. Each node is stopped cleanly (SIGTERM: its sync completes), started again, and the
/// next one waits until it answers, knows a leader and has applied everything the cluster had
/// committed before it went down – so at most one node is ever missing and a quorum keeps
/// serving. Reports each step through `progress`.
pub fn rolling_restart(data: &Path, mut progress: impl FnMut(&str)) -> anyhow::Result<()> {
    let nodes: Vec<serde_json::Value> =
        serde_json::from_str(&control::request(data, "nodes")?).context("the supervisor's list of nodes")?;
    if nodes.iter().any(|n| n["tls"] == true) {
        bail!("a rolling restart of a TLS cluster is not supported yet: restart the nodes one by one with `concord restart N`");
    }
    let http = |n: &serde_json::Value| -> anyhow::Result<SocketAddr> {
        n["http"].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| anyhow!("no HTTP address for {n}"))
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cluster_of = |addr: SocketAddr| -> Option<serde_json::Value> {
        let answer = runtime
            .block_on(crate::client::http(addr, "GET", "/v1/cluster", b"", Duration::from_secs(2)))
            .ok()?;
        (answer.status == 200).then(|| answer.json().ok()).flatten()
    };
    for node in &nodes {
        let id = node["id"].as_u64().ok_or_else(|| anyhow!("no id in {node}"))?;
        // Where the cluster is now: the highest commit index any other node reports.
        let mut committed = 0;
        for other in nodes.iter().filter(|o| o["id"] != node["id"]) {
            if let Some(view) = cluster_of(http(other)?) {
                committed = committed.max(view["commit_index"].as_u64().unwrap_or(0));
            }
        }
        progress(&format!("node {id}: restarting (the cluster has committed {committed})"));
        control::request(data, &format!("restart {id}"))?;
        let deadline = Instant::now() + CATCH_UP_LIMIT;
        loop {
            let view = cluster_of(http(node)?);
            let applied = view.as_ref().and_then(|v| v["applied_index"].as_u64()).unwrap_or(0);
            let leader = view.as_ref().and_then(|v| v["leader"].as_u64());
            if let (Some(leader), true) = (leader, applied >= committed) {
                progress(&format!("node {id}: back, leader {leader}, applied {applied}"));
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {id} did not catch up within {}s (applied {applied} of {committed}); the rest were not restarted",
                    CATCH_UP_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Wait up to `limit` for `child` to exit; whether it did.
fn wait_for_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap_or(None).is_some() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a node's log (why it exited: a port in use, a panic, a signal…).
fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Where `up` keeps node `id`'s pid while it runs.
pub fn pid_file(data: &Path, id: u32) -> PathBuf {
    data.join(format!("node{id}.pid"))
}

/// `concord restart` and the supervisor: one line asked, one line answered, over the Unix socket
/// `DATA/up.sock`. The socket is created with the data directory's permissions, so only who may
/// read the cluster's secret (kept beside it) may restart its nodes.
pub mod control {
    use anyhow::{bail, Context};
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    pub fn socket_path(data: &Path) -> PathBuf {
        data.join("up.sock")
    }

    /// Send `command` to the `concord up` supervising `data`, and return its answer.
    pub fn request(data: &Path, command: &str) -> anyhow::Result<String> {
        let path = socket_path(data);
        if !path.exists() {
            bail!("no `concord up` is supervising {} (there is no {})", data.display(), path.display());
        }
        request_at(&path, command)
    }

    /// Send `command` to the supervisor listening on `socket`, and return its answer.
    #[cfg(unix)]
    pub fn request_at(socket: &Path, command: &str) -> anyhow::Result<String> {
        let mut stream = std::os::unix::net::UnixStream::connect(socket)
            .with_context(|| format!("no `concord up` answers on {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        writeln!(stream, "{command}")?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).context("reading the supervisor's answer")?;
        let answer = answer.trim_end().to_string();
        match answer.strip_prefix("ok: ") {
            Some(ok) => Ok(ok.to_string()),
            None => bail!("{}", answer.strip_prefix("error: ").unwrap_or(&answer)),
        }
    }

    #[cfg(not(unix))]
    pub fn request_at(_socket: &Path, _command: &str) -> anyhow::Result<String> {
        bail!("`concord restart` needs Unix sockets")
    }

    /// The supervisor's end: polled from its loop, never blocking it for long.
    pub struct Listener {
        #[cfg(unix)]
        listener: std::os::unix::net::UnixListener,
        path: PathBuf,
    }

    impl Listener {
        /// Listen on `DATA/up.sock`. A socket left by a `concord up` that was killed is replaced; one
        /// that answers belongs to a running `up`, which is an error.
        #[cfg(unix)]
        pub fn bind(data: &Path) -> anyhow::Result<Listener> {
            let path = socket_path(data);
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                bail!("another `concord up` is supervising {}", data.display());
            }
            let _ = std::fs::remove_file(&path);
            let listener = std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            listener.set_nonblocking(true)?;
            Ok(Listener { listener, path })
        }

        #[cfg(not(unix))]
        pub fn bind(_data: &Path) -> anyhow::Result<Listener> {
            bail!("control sockets need Unix")
        }

        /// Answer the commands waiting, one per connection.
        pub fn serve_pending(&self, mut handle: impl FnMut(&str) -> String) {
            #[cfg(unix)]
            while let Ok((stream, _)) = self.listener.accept() {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let answer = handle(line.trim());
                let _ = writeln!(&stream, "{answer}");
            }
            #[cfg(not(unix))]
            let _ = &mut handle;
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Start node `i` (0-based) of an `up` cluster as the program `exe`, its output going to
/// DATA/node<i+1>.log (appended). Also used by the tests that run clusters of real processes.
pub fn spawn_node(
    args: &UpOptions,
    i: u32,
    exe: &Path,
    cluster_id: &str,
    secret: &Path,
) -> anyhow::Result<(Child, PathBuf)> {
    spawn_node_with_env(args, i, exe, cluster_id, secret, &[])
}

/// [`spawn_node`], with environment variables set for the node (`concord chaos
/// --unsafe-mutation` sets `CONCORD_UNSAFE_MUTATION`).
pub fn spawn_node_with_env(
    args: &UpOptions,
    i: u32,
    exe: &Path,
    cluster_id: &str,
    secret: &Path,
    env: &[(String, String)],
) -> anyhow::Result<(Child, PathBuf)> {
    let argv = up_node_args(args, i, cluster_id, secret)?;
    let log = args.data.join(format!("node{}.log", i + 1));
    spawn_logged_with_env(exe, &argv, log, &format!("node {}", i + 1), env)
}

/// Start `exe argv` with its output appended to `log_path`; `what` names it in errors.
fn spawn_logged(
    exe: &Path,
    argv: &[String],
    log_path: PathBuf,
    what: &str,
) -> anyhow::Result<(Child, PathBuf)> {
    spawn_logged_with_env(exe, argv, log_path, what, &[])
}

fn spawn_logged_with_env(
    exe: &Path,
    argv: &[String],
    log_path: PathBuf,
    what: &str,
    env: &[(String, String)],
) -> anyhow::Result<(Child, PathBuf)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let child = Command::new(exe)
        .args(argv)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
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
    fn up_gives_each_cache_node_every_database_node_and_the_whole_tier() {
        let args = UpOptions { nodes: 3, caches: 2, data: "/tmp/c".into(), ..UpOptions::default() };
        let text = up_cache_args(&args, 1, "c1").unwrap().join(" ");
        assert!(text.starts_with("cache --bind 127.0.0.1 --port 6401 --http-port 8401 "), "{text}");
        assert!(text.contains("--db 127.0.0.1:6379,127.0.0.1:6380,127.0.0.1:6381"), "{text}");
        assert!(text.contains("--cluster-id c1 --peers 127.0.0.1:6400,127.0.0.1:6401"), "{text}");
    }

    #[test]
    fn up_gives_each_node_its_ports_and_peers() {
        let args = UpOptions {
            data: "/tmp/c".into(),
            snapshot_count: Some(500),
            state_cache_mb: Some(8),
            ..UpOptions::default()
        };
        let argv = up_node_args(&args, 1, "c1", Path::new("/tmp/c/cluster.secret")).unwrap();
        let text = argv.join(" ");
        assert!(text.contains("--id 2 "), "{text}");
        assert!(text.contains("--redis-addr 127.0.0.1:6380"), "{text}");
        assert!(text.contains("--peer 1=127.0.0.1:7379,http=127.0.0.1:8080,redis=127.0.0.1:6379"), "{text}");
        assert!(!text.contains("--peer 2="), "{text}");
        assert!(text.contains("--snapshot-count 500 --state-cache-mb 8"), "{text}");
        // --mode eventual passes the mode and quorums on; N defaults to min(3, nodes).
        let eventual = UpOptions {
            mode: Mode::Eventual,
            quorums: Quorums { write_quorum: Some(3), ..Default::default() },
            ..args.clone()
        };
        let text = up_node_args(&eventual, 0, "c1", Path::new("/s")).unwrap().join(" ");
        assert!(text.contains("--mode eventual --n 3 --r 2 --w 3"), "{text}");
        let two = UpOptions { nodes: 2, ..eventual.clone() };
        assert!(up_node_args(&two, 0, "c1", Path::new("/s")).unwrap().join(" ").contains("--n 2"));
        let strong_with_quorum =
            UpOptions { quorums: Quorums { replicas: Some(2), ..Default::default() }, ..args.clone() };
        let err = up_node_args(&strong_with_quorum, 0, "c1", Path::new("/s")).unwrap_err().to_string();
        assert!(err.contains("add --mode eventual"), "{err}");
        // --shards selects the sharded mode; replicas default to 3, capped at the nodes.
        let sharded = UpOptions { mode: Mode::Sharded, shards: Some(8), nodes: 2, ..args.clone() };
        let text = up_node_args(&sharded, 0, "c1", Path::new("/s")).unwrap().join(" ");
        assert!(text.contains("--mode sharded --shards 8 --replicas 2"), "{text}");
        let no_shards = UpOptions { mode: Mode::Sharded, ..args.clone() };
        let err = up_node_args(&no_shards, 0, "c1", Path::new("/s")).unwrap_err().to_string();
        assert!(err.contains("needs --shards"), "{err}");
        let replicas_alone = UpOptions { shard_replicas: Some(2), ..args.clone() };
        assert!(up_node_args(&replicas_alone, 0, "c1", Path::new("/s")).is_err());
        // --tls gives each node its own certificate and the shared CA.
        let argv =
            up_node_args(&UpOptions { tls: true, ..args }, 2, "c1", Path::new("/s")).unwrap().join(" ");
        assert!(
            argv.contains(
                "--tls-cert /tmp/c/tls/node3.pem --tls-key /tmp/c/tls/node3.key --tls-ca /tmp/c/tls/ca.pem"
            ),
            "{argv}"
        );
    }
}

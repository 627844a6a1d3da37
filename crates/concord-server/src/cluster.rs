//! The supervisor of `concord up`: a local cluster of separate `concord serve` processes.
//!
//! [`up`] reads or creates the cluster's identity (id and secret under the data directory),
//! generates throwaway TLS certificates when asked, starts one child process per node with the
//! `serve` arguments [`up_node_args`] lays out (node i: RESP, HTTP and peer ports base + i), prints
//! where everything listens, and watches the children until Ctrl-C: then every node gets SIGTERM
//! and a few seconds to finish its sync. The process-level tests start their clusters through the
//! same [`spawn_node`], so they run exactly what `concord up` runs.

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
pub fn up_node_args(
    args: &UpOptions,
    i: u32,
    cluster_id: &str,
    secret: &Path,
) -> anyhow::Result<Vec<String>> {
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

/// `concord up`: start the cluster `args` describes, print where it listens, and supervise it
/// until SIGINT/SIGTERM or until a node fails; then stop every node cleanly.
pub fn up(args: &UpOptions) -> anyhow::Result<()> {
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
        println!(
            "fault injection is ON (test clusters only): the dashboards can partition, heal and stop nodes"
        );
    }
    println!("Ctrl-C stops the cluster.");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            crate::serve::termination().await;
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
                    // A stop by fault injection (or a SIGTERM to this node alone): the others keep running.
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
    args: &UpOptions,
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

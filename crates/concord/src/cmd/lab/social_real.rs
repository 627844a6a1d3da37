//! `concord lab social --real`: Lab 1's app on real local clusters.
//!
//! The lab starts two clusters as child processes of this binary – `concord up --shards S
//! --replicas R --cache C` (the strong store and its cache tier) and `concord up --mode eventual
//! --w 1 --r 1` (the likes) – in a data directory of its own, on ports from `--port-base` (none of
//! `concord up`'s defaults), waits until every shard has a leader and every cache node serves, and
//! runs the lab's baseline and the runs `--faults` asks for with the **same** users, arrival
//! process and app code as the simulated run ([`concord_lab::social::live`]). Only the store
//! differs: [`RealStore`] implements the app's four verbs over the clusters' Redis doors. After
//! each run it reads back what the app wrote – each fanned-out post in its followers' timelines,
//! each like counter against the likes acknowledged – and writes the report. The clusters are
//! stopped when the command ends: normally, on an error, or on Ctrl-C / SIGTERM.
//!
//! With `--strong-http` (and `--likes`, `--cache-nodes`) it uses clusters you started instead.
//!
//! ## The faults, and how they are made
//!
//! | `--faults` | run | how |
//! |---|---|---|
//! | `crash` (or `--crash`) | leader crash | `kill -9` of a shard leader's pid (`concord up`'s pid file), `concord restart` through its control socket |
//! | `cache-node` | cache node dies | `kill -9` of cache node 1; `concord up` starts it again after a second, empty – a probe records when it serves again |
//! | `partition` | partition | both clusters run with `--allow-fault-injection`; `POST /v1/faults/partition` to likes node 1 and to sharded node 1 (with each cluster's dashboard token) cuts each from its nodes 2 and 3, `POST /v1/faults/heal` heals; each likes node's own answer for the hot post's counter is read every 250 ms, and a timeline of each shard straight from sharded node 1 ([`PROBE_EVERY`], each within [`PROBE_BUDGET`], redirects not followed: what a client that reaches only that node sees); after the run every post acknowledged during the cut is looked for in its author's list and its followers' timelines |
//! | `single-node` | single node, single node crash | a third `concord up --nodes 1 --shards 1 --replicas 1` (ports from `--port-base` + 80), no cache, the likes as `INCRBY` on it; then `kill -9` of its node and `concord restart` |
//!
//! ## The smart client ([`RealStore`])
//!
//! | verb | what it sends |
//! |---|---|
//! | `Strong` | the commands to the key's shard leader – the slot from the key (CRC16, as Redis Cluster), the shard and its leader from the node's `GET /v1/cluster` – on a connection switched to `CONSISTENCY linearizable`; several commands as `MULTI … EXEC` |
//! | `CachedRead` | `LGET` of a cache-only key (the command's words joined) on a cache node: a hit is the answer; a lease → the read from the shard, then `LSET key token 0 value PX ttl` (revision 0: no database write ever invalidates that key, so its TTL alone bounds staleness, as in the simulated cache); `wait` → ask again shortly |
//! | `PushMany` | a post's fan-out: each follower's `LPUSH`+`LTRIM` as `Strong` on its timeline's shard, [`FAN_OUT_PARALLEL`] at a time (the simulated store charges one pipelined request per shard part instead) |
//! | `CounterAdd`, `CounterGet` | `INCRBY` / `GET` on the eventual cluster, `CONSISTENCY ONE` (W = R = 1), each user's session pinned to one node |
//!
//! `-MOVED` is followed (the leader moved), `-TRYAGAIN` / `-CLUSTERDOWN` and lost connections are
//! retried after 20 ms on another node (a node whose connection failed is avoided for a second),
//! an attempt gets [`ATTEMPT_TIMEOUT_MS`] before the next node is tried, and an operation that has
//! not succeeded within [`OP_DEADLINE_MS`] fails with `timed out`, as in the simulated store.
//! Every key of a run is prefixed with `lab<unix time>r<run>:`, so runs (and invocations against
//! the same clusters) do not see each other's posts, timelines and counters. An `INCRBY` whose
//! connection broke after it was sent is not retried (it may have counted): its like is of
//! unknown outcome.
//!
//! Each operation runs as a task on a small runtime (two worker threads, at most
//! [`IN_FLIGHT`] operations at once, pooled connections); `advance(until)` sleeps until the wall
//! clock reaches `until` and returns what finished.

use concord_lab::social::live::{self, LiveReport, LiveRun, Readback, ShardedPartition};
use concord_lab::social::model::Users;
use concord_lab::social::store::{
    decode, encode, push_calls, Done, Reply, SimConfig, SocialStore, StoreOp, ATTEMPT_TIMEOUT_MS,
    OP_DEADLINE_MS,
};
use concord_lab::social::{Fault, LabStore, RunResult, SocialOptions};
use concord_server::testkit::{http, Reply as Wire, Resp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Operations in flight at once (the rest queue in the client).
pub const IN_FLIGHT: usize = 64;
/// A fan-out's timeline writes in flight at once.
const FAN_OUT_PARALLEL: usize = 16;
/// Pause before a retry.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Ports the lab's clusters use from `--port-base`.
pub const PORTS: u16 = 90;
/// How often the partition run reads the timelines straight from the cut-off sharded node, and
/// how long each read may take.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_BUDGET: Duration = Duration::from_millis(500);

/// Where the clusters answer.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// RESP doors of the sharded cluster's nodes (node i + 1 at index i).
    pub strong: Vec<SocketAddr>,
    /// HTTP of one of its nodes (`GET /v1/cluster`: the shard map and leaders).
    pub strong_http: SocketAddr,
    pub cache: Vec<SocketAddr>,
    pub likes: Vec<SocketAddr>,
    /// HTTP of the likes nodes (node i + 1 at index i), and their cluster's data directory (its
    /// dashboard token authorizes the fault-injection requests) if this command started it.
    pub likes_http: Vec<SocketAddr>,
    pub likes_data: Option<PathBuf>,
    /// HTTP of the sharded cluster's nodes (node i + 1 at index i; the partition run's
    /// fault-injection requests), if this command started it.
    pub strong_nodes_http: Vec<SocketAddr>,
    /// The sharded cluster's data directory, if this command started it (`kill -9` of a leader
    /// and `concord restart` need it).
    pub strong_data: Option<PathBuf>,
}

/// The lab's clusters' shape and ports.
#[derive(Clone, Debug)]
pub struct Layout {
    pub nodes: u32,
    pub shards: u32,
    pub replicas: usize,
    pub cache_nodes: u32,
    pub likes_nodes: u32,
    pub port_base: u16,
    /// Also start the single-node deployment (one machine, one shard, one replica, no cache).
    pub single: bool,
    /// Start the likes cluster with `--allow-fault-injection` (the partition run cuts it).
    pub likes_faults: bool,
    /// Start the sharded cluster with `--allow-fault-injection` (the partition run cuts it too).
    pub strong_faults: bool,
}

impl Layout {
    fn port(&self, block: u16, i: u32) -> u16 {
        self.port_base + 10 * block + i as u16
    }

    fn endpoints(&self, data: &Path) -> Endpoints {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Endpoints {
            strong: (0..self.nodes).map(|i| addr(self.port(0, i))).collect(),
            strong_http: addr(self.port(1, 0)),
            cache: (0..self.cache_nodes).map(|i| addr(self.port(3, i))).collect(),
            likes: (0..self.likes_nodes).map(|i| addr(self.port(5, i))).collect(),
            likes_http: (0..self.likes_nodes).map(|i| addr(self.port(6, i))).collect(),
            likes_data: Some(data.join("likes")),
            strong_nodes_http: (0..self.nodes).map(|i| addr(self.port(1, i))).collect(),
            strong_data: Some(data.join("strong")),
        }
    }

    /// The single-node deployment: its one node's RESP door serves the likes too (`INCRBY` on
    /// the strong store, as one machine would).
    fn single_endpoints(&self, data: &Path) -> Endpoints {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Endpoints {
            strong: vec![addr(self.port(8, 0))],
            strong_http: addr(self.port(8, 1)),
            cache: Vec::new(),
            likes: Vec::new(),
            likes_http: Vec::new(),
            likes_data: None,
            strong_nodes_http: Vec::new(),
            strong_data: Some(data.join("single")),
        }
    }

    /// The two `concord up` command lines: (name, args).
    fn commands(&self, data: &Path) -> Vec<(&'static str, Vec<String>)> {
        let p = |block: u16| self.port(block, 0).to_string();
        let path = |sub: &str| data.join(sub).to_string_lossy().into_owned();
        let mut strong: Vec<String> = vec!["up".into(), "--log".into(), "warn".into()];
        if self.strong_faults {
            strong.push("--allow-fault-injection".into());
        }
        strong.extend(
            [
                ("--nodes", self.nodes.to_string()),
                ("--shards", self.shards.to_string()),
                ("--replicas", self.replicas.to_string()),
                ("--data", path("strong")),
                ("--redis-port", p(0)),
                ("--http-port", p(1)),
                ("--peer-port", p(2)),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v]),
        );
        if self.cache_nodes > 0 {
            strong.extend(
                [
                    ("--cache", self.cache_nodes.to_string()),
                    ("--cache-port", p(3)),
                    ("--cache-http-port", p(4)),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v]),
            );
        }
        let mut likes: Vec<String> = vec!["up".into(), "--log".into(), "warn".into()];
        if self.likes_faults {
            likes.push("--allow-fault-injection".into());
        }
        likes.extend(
            [
                ("--mode", "eventual".to_string()),
                ("--nodes", self.likes_nodes.to_string()),
                ("--n", self.likes_nodes.min(3).to_string()),
                ("--w", "1".into()),
                ("--r", "1".into()),
                ("--data", path("likes")),
                ("--redis-port", p(5)),
                ("--http-port", p(6)),
                ("--peer-port", p(7)),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v]),
        );
        let mut commands = vec![("strong", strong), ("likes", likes)];
        if self.single {
            let mut single: Vec<String> = vec!["up".into(), "--log".into(), "warn".into()];
            single.extend(
                [
                    ("--nodes", "1".to_string()),
                    ("--shards", "1".into()),
                    ("--replicas", "1".into()),
                    ("--data", path("single")),
                    ("--redis-port", self.port(8, 0).to_string()),
                    ("--http-port", self.port(8, 1).to_string()),
                    ("--peer-port", self.port(8, 2).to_string()),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v]),
            );
            commands.push(("single", single));
        }
        commands
    }
}

/// The `concord up` processes this command started; stopped (SIGINT, so `up` stops its nodes;
/// SIGKILL after 15 s) on [`Clusters::stop`], on drop, and by the Ctrl-C / SIGTERM handler.
#[derive(Clone, Default)]
pub struct Clusters {
    children: Arc<Mutex<Vec<(String, Child)>>>,
}

impl Clusters {
    fn spawn(&self, name: &str, args: &[String], log: &Path) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let out = std::fs::File::create(log)?;
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting `concord {}`: {e}", args.join(" ")))?;
        self.children.lock().expect("children").push((name.to_string(), child));
        Ok(())
    }

    /// A child that exited already: its name.
    fn exited(&self) -> Option<String> {
        let mut children = self.children.lock().expect("children");
        children.iter_mut().find_map(|(n, c)| c.try_wait().ok().flatten().map(|_| n.clone()))
    }

    pub fn stop(&self) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for (_, child) in children.iter() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (_, child) in children.iter_mut() {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        children.clear();
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        if Arc::strong_count(&self.children) == 1 {
            self.stop();
        }
    }
}

// ----- the smart client ---------------------------------------------------------------------

/// What a new connection is switched to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Linearizable,
    One,
    Plain,
}

/// A call that did not get a reply: whether the command may have reached the server.
struct Lost {
    sent: bool,
    error: String,
}

#[derive(Default)]
struct Routing {
    /// (first slot, last slot, shard).
    ranges: Vec<(u16, u16, u32)>,
    leaders: BTreeMap<u32, SocketAddr>,
    /// Node id → RESP address.
    nodes: BTreeMap<u32, SocketAddr>,
}

impl Routing {
    fn shard_of(&self, key: &str) -> Option<u32> {
        let slot = concord_shard::key_slot(key.as_bytes()).get();
        self.ranges.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|r| r.2)
    }

    fn node_of(&self, addr: SocketAddr) -> Option<u32> {
        self.nodes.iter().find(|(_, a)| **a == addr).map(|(id, _)| *id)
    }
}

#[derive(Default)]
struct Stats {
    hits: u64,
    misses: u64,
    per_shard: BTreeMap<u32, u64>,
    per_node: BTreeMap<u32, u64>,
    errors: BTreeMap<String, u64>,
}

struct Shared {
    start: Instant,
    ends: Endpoints,
    routing: Mutex<Routing>,
    pool: Mutex<BTreeMap<SocketAddr, Vec<Resp>>>,
    stats: Mutex<Stats>,
    limit: tokio::sync::Semaphore,
    deadline: Duration,
    turn: AtomicU64,
    /// Prefixed to every key of a run (runs and invocations do not see each other's data).
    ns: Mutex<String>,
    /// Nodes whose connection failed: avoided until then.
    suspect: Mutex<BTreeMap<SocketAddr, Instant>>,
    /// What the store saw happen by itself (ms, words): [`LabStore::observed`].
    observed: Mutex<Vec<(f64, String)>>,
    /// The partition run: the sharded nodes cut off, and what reads straight to them answered.
    probe: Mutex<Probe>,
}

/// The sharded cluster's partition as the store made and saw it.
#[derive(Default)]
struct Probe {
    /// The sharded nodes cut off (empty: the sharded cluster was not cut).
    cut: Vec<u32>,
    /// Set while the probe runs; cleared to stop it.
    running: Option<Arc<std::sync::atomic::AtomicBool>>,
    reads: usize,
    served: usize,
    redirected: usize,
    refused: usize,
    timed_out: usize,
    answers: BTreeMap<String, u64>,
}

impl Probe {
    /// Count one answer of the cut-off node to a read.
    fn count(&mut self, answer: &Result<Wire, Lost>, node_of: impl Fn(SocketAddr) -> Option<u32>) {
        self.reads += 1;
        let kind = match answer {
            Ok(Wire::Text(t)) if t.starts_with("-MOVED ") => {
                self.redirected += 1;
                let to = t.split_whitespace().nth(2).and_then(|a| a.parse().ok()).and_then(node_of);
                to.map_or("-MOVED".to_string(), |n| format!("-MOVED to node {n}"))
            }
            Ok(Wire::Text(t)) if t.starts_with('-') => {
                self.refused += 1;
                t.split_whitespace().next().unwrap_or("-ERR").to_string()
            }
            Ok(_) => {
                self.served += 1;
                "served".to_string()
            }
            Err(lost) if lost.error == "timed out" || lost.error.ends_with("timed out") => {
                self.timed_out += 1;
                "timed out".to_string()
            }
            Err(lost) => {
                self.refused += 1;
                short(&lost.error)
            }
        };
        *self.answers.entry(kind).or_default() += 1;
    }
}

impl Shared {
    fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e3
    }

    fn error(&self, what: impl Into<String>) {
        *self.stats.lock().expect("stats").errors.entry(what.into()).or_default() += 1;
    }

    fn next(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) as usize
    }

    fn suspected(&self, addr: SocketAddr) -> bool {
        self.suspect.lock().expect("suspect").get(&addr).is_some_and(|until| *until > Instant::now())
    }

    /// Where a strong operation on `shard` goes: its leader as last learned, else any node not
    /// suspected (its connection failed in the last second), if there is one.
    fn target(&self, shard: Option<u32>, avoid: Option<SocketAddr>) -> SocketAddr {
        if let Some(addr) = shard.and_then(|s| self.routing.lock().expect("routing").leaders.get(&s).copied())
        {
            if Some(addr) != avoid && !self.suspected(addr) {
                return addr;
            }
        }
        let others: Vec<SocketAddr> =
            self.ends.strong.iter().copied().filter(|a| Some(*a) != avoid).collect();
        let trusted: Vec<SocketAddr> = others.iter().copied().filter(|a| !self.suspected(*a)).collect();
        let pool = if !trusted.is_empty() {
            trusted
        } else if !others.is_empty() {
            others
        } else {
            self.ends.strong.clone()
        };
        pool[self.next() % pool.len()]
    }

    /// One call on a pooled connection to `addr`, within `budget`.
    async fn call(
        &self,
        addr: SocketAddr,
        setup: Setup,
        cmds: &[Vec<String>],
        budget: Duration,
    ) -> Result<Wire, Lost> {
        let pooled = self.pool.lock().expect("pool").get_mut(&addr).and_then(Vec::pop);
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let opened = tokio::time::timeout(budget, async {
                    let mut c = Resp::connect(addr).await?;
                    let words: &[&str] = match setup {
                        Setup::Linearizable => &["CONSISTENCY", "linearizable"],
                        Setup::One => &["CONSISTENCY", "ONE"],
                        Setup::Plain => &[],
                    };
                    if !words.is_empty() {
                        match c.call(words).await? {
                            ok if ok == "OK" => {}
                            other => return Err(format!("{} answered {other}", words.join(" "))),
                        }
                    }
                    Ok(c)
                })
                .await;
                match opened {
                    Ok(Ok(c)) => c,
                    Ok(Err(error)) => return Err(Lost { sent: false, error }),
                    Err(_) => return Err(Lost { sent: false, error: format!("connect {addr}: timed out") }),
                }
            }
        };
        let exchange = async {
            if cmds.len() == 1 {
                let args: Vec<&str> = cmds[0].iter().map(String::as_str).collect();
                return conn.request(&args).await;
            }
            conn.request(&["MULTI"]).await?;
            for c in cmds {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                let r = conn.request(&args).await?;
                if matches!(&r, Wire::Text(t) if t.starts_with('-')) {
                    conn.request(&["DISCARD"]).await?;
                    return Ok(r);
                }
            }
            match conn.request(&["EXEC"]).await? {
                Wire::Array(items) => Ok(items.into_iter().next().unwrap_or(Wire::Text("(nil)".into()))),
                other => Ok(other),
            }
        };
        match tokio::time::timeout(budget, exchange).await {
            Ok(Ok(reply)) => {
                self.pool.lock().expect("pool").entry(addr).or_default().push(conn);
                Ok(reply)
            }
            Ok(Err(error)) => Err(Lost { sent: true, error }),
            Err(_) => Err(Lost { sent: true, error: "timed out".into() }),
        }
    }

    /// Commands on one key of the sharded store, atomically: to the shard's leader, following
    /// redirects, until the deadline.
    async fn strong(
        &self,
        shard: Option<u32>,
        calls: &[Vec<String>],
        deadline: Instant,
    ) -> Result<Reply, String> {
        self.strong_with(shard, calls, deadline, true).await
    }

    /// [`Self::strong`]; a call that is not `idempotent` (an `INCRBY`) is not sent again once it
    /// may have reached the server: it fails with `timed out`, its outcome unknown.
    async fn strong_with(
        &self,
        shard: Option<u32>,
        calls: &[Vec<String>],
        deadline: Instant,
        idempotent: bool,
    ) -> Result<Reply, String> {
        let mut target = self.target(shard, None);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out".into());
            }
            if let Some(n) = self.routing.lock().expect("routing").node_of(target) {
                *self.stats.lock().expect("stats").per_node.entry(n).or_default() += 1;
            }
            let attempt = (deadline - now).min(Duration::from_secs_f64(ATTEMPT_TIMEOUT_MS / 1e3));
            match self.call(target, Setup::Linearizable, calls, attempt).await {
                Ok(Wire::Text(t)) if t.starts_with("-MOVED ") => {
                    match t.split_whitespace().nth(2).and_then(|a| a.parse::<SocketAddr>().ok()) {
                        Some(addr) if self.suspected(addr) => {
                            // A stale hint (that node's connection just failed): ask another.
                            tokio::time::sleep(RETRY_PAUSE).await;
                            target = self.target(None, Some(target));
                        }
                        Some(addr) => {
                            if let Some(s) = shard {
                                self.routing.lock().expect("routing").leaders.insert(s, addr);
                            }
                            target = addr;
                        }
                        None => return Err(t[1..].to_string()),
                    }
                }
                Ok(Wire::Text(t)) if t.starts_with("-TRYAGAIN") || t.starts_with("-CLUSTERDOWN") => {
                    self.error(
                        t.split_whitespace().next().unwrap_or("").trim_start_matches('-').to_string()
                            + " (retried)",
                    );
                    tokio::time::sleep(RETRY_PAUSE).await;
                    target = self.target(shard, None);
                }
                Ok(reply) => return convert(reply),
                Err(lost) if lost.sent && !idempotent => {
                    self.error(format!("{}: {} (outcome unknown)", calls[0][0], short(&lost.error)));
                    return Err("timed out".into());
                }
                Err(lost) => {
                    self.error(format!("{} (retried on another node)", short(&lost.error)));
                    if !lost.sent || lost.error != "timed out" {
                        self.suspect
                            .lock()
                            .expect("suspect")
                            .insert(target, Instant::now() + Duration::from_secs(1));
                    }
                    if let Some(s) = shard {
                        let mut routing = self.routing.lock().expect("routing");
                        if routing.leaders.get(&s) == Some(&target) {
                            routing.leaders.remove(&s);
                        }
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    target = self.target(shard, Some(target));
                }
            }
        }
    }

    async fn counter(&self, user: u32, cmd: Vec<String>, deadline: Instant) -> Result<Reply, String> {
        let write = cmd[0] == "INCRBY";
        let n = self.ends.likes.len();
        let mut i = user as usize % n;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out".into());
            }
            match self.call(self.ends.likes[i], Setup::One, std::slice::from_ref(&cmd), deadline - now).await
            {
                Ok(Wire::Text(t)) if t.starts_with('-') => return Err(t[1..].to_string()),
                Ok(Wire::Text(t)) if write => {
                    return t.parse::<i64>().map(|_| Reply::Nil).map_err(|_| format!("INCRBY answered {t}"))
                }
                Ok(Wire::Text(t)) if t == "(nil)" => return Ok(Reply::Int(0)),
                Ok(Wire::Text(t)) => {
                    return t.parse().map(Reply::Int).map_err(|_| format!("GET answered {t}"))
                }
                Ok(other) => return Err(format!("unexpected reply {other:?}")),
                Err(lost) if write && lost.sent => {
                    // It may have counted: not retried, its outcome is unknown.
                    self.error(format!("INCRBY: {} (outcome unknown)", short(&lost.error)));
                    return Err("timed out".into());
                }
                Err(lost) => {
                    self.error(format!("{} (retried on another node)", short(&lost.error)));
                    tokio::time::sleep(RETRY_PAUSE).await;
                    i = (i + 1) % n;
                }
            }
        }
    }

    /// A look-aside read through the cache tier: (reply, cache hit).
    async fn cached(
        &self,
        shard: Option<u32>,
        argv: Vec<String>,
        ttl_ms: u64,
        deadline: Instant,
    ) -> (Result<Reply, String>, bool) {
        let key = argv.join(" ");
        let cache =
            self.ends.cache[fnv(argv.get(1).map_or("", String::as_str)) as usize % self.ends.cache.len()];
        let lget = vec!["LGET".to_string(), key.clone()];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return (Err("timed out".into()), false);
            }
            let mut fill = None;
            match self.call(cache, Setup::Plain, std::slice::from_ref(&lget), deadline - now).await {
                Ok(Wire::Text(t)) if !t.starts_with('-') => {
                    self.stats.lock().expect("stats").hits += 1;
                    return (Ok(decode(t.as_bytes())), true);
                }
                Ok(Wire::Array(items)) => match items.first() {
                    Some(Wire::Text(w)) if w == "wait" => {
                        let ms = match items.get(1) {
                            Some(Wire::Text(ms)) => ms.parse().unwrap_or(10u64),
                            _ => 10,
                        };
                        tokio::time::sleep(Duration::from_millis(ms.clamp(1, 20))).await;
                        continue;
                    }
                    Some(Wire::Text(w)) if w == "lease" => {
                        if let Some(Wire::Text(token)) = items.get(1) {
                            fill = Some(token.clone());
                        }
                    }
                    _ => {} // stale or miss: read the shard, do not fill
                },
                Ok(other) => self.error(format!("LGET: {other:?}")),
                Err(lost) => self.error(format!("cache node: {}", short(&lost.error))),
            }
            {
                let mut stats = self.stats.lock().expect("stats");
                stats.misses += 1;
                if let Some(s) = shard {
                    *stats.per_shard.entry(s).or_default() += 1;
                }
            }
            let reply = self.strong(shard, std::slice::from_ref(&argv), deadline).await;
            if let (Some(token), Ok(value)) = (fill, &reply) {
                let value = String::from_utf8_lossy(&encode(value)).into_owned();
                let lset =
                    vec!["LSET".into(), key, token, "0".into(), value, "PX".into(), ttl_ms.to_string()];
                let budget =
                    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                match self.call(cache, Setup::Plain, &[lset], budget).await {
                    Ok(Wire::Text(t)) if t == "STORED" => {}
                    Ok(other) => self.error(format!("LSET: {other:?}")),
                    Err(lost) => self.error(format!("LSET: {}", short(&lost.error))),
                }
            }
            return (reply, false);
        }
    }

    async fn run(
        self: &Arc<Self>,
        user: u32,
        op: StoreOp,
        deadline: Instant,
    ) -> (Result<Reply, String>, Option<u32>, Option<bool>) {
        let op = namespaced(op, &self.ns.lock().expect("ns"));
        let shard = self.routing.lock().expect("routing").shard_of(op.key());
        match op {
            StoreOp::Strong(calls) => {
                if let Some(s) = shard {
                    *self.stats.lock().expect("stats").per_shard.entry(s).or_default() += 1;
                }
                (self.strong(shard, &calls, deadline).await, shard, None)
            }
            StoreOp::CachedRead { argv, ttl_ms } if !self.ends.cache.is_empty() => {
                let (reply, hit) = self.cached(shard, argv, ttl_ms, deadline).await;
                (reply, shard, Some(hit))
            }
            StoreOp::CachedRead { argv, .. } => {
                if let Some(s) = shard {
                    *self.stats.lock().expect("stats").per_shard.entry(s).or_default() += 1;
                }
                (self.strong(shard, &[argv], deadline).await, shard, Some(false))
            }
            StoreOp::CounterAdd { key, delta } if self.ends.likes.is_empty() => {
                let incr = vec!["INCRBY".into(), key, delta.to_string()];
                (self.strong_counter(shard, incr, deadline).await.map(|_| Reply::Nil), shard, None)
            }
            StoreOp::CounterGet { key } if self.ends.likes.is_empty() => {
                let get = vec!["GET".into(), key];
                (self.strong_counter(shard, get, deadline).await, shard, None)
            }
            StoreOp::CounterAdd { key, delta } => (
                self.counter(user, vec!["INCRBY".into(), key, delta.to_string()], deadline).await,
                None,
                None,
            ),
            StoreOp::CounterGet { key } => {
                (self.counter(user, vec!["GET".into(), key], deadline).await, None, None)
            }
            StoreOp::PushMany { keys, item, keep, .. } => {
                (self.push_many(keys, item, keep, deadline).await, shard, None)
            }
        }
    }

    /// A counter on the sharded store (the single-node deployment has no eventual cluster): an
    /// `INCRBY` or `GET` on the key's shard, answered as [`Self::counter`] answers.
    async fn strong_counter(
        &self,
        shard: Option<u32>,
        cmd: Vec<String>,
        deadline: Instant,
    ) -> Result<Reply, String> {
        if let Some(s) = shard {
            *self.stats.lock().expect("stats").per_shard.entry(s).or_default() += 1;
        }
        let idempotent = cmd[0] != "INCRBY";
        match self.strong_with(shard, &[cmd], deadline, idempotent).await? {
            Reply::Nil => Ok(Reply::Int(0)),
            Reply::Int(n) => Ok(Reply::Int(n)),
            other => Err(format!("counter: unexpected reply {other:?}")),
        }
    }

    /// A post's fan-out: `LPUSH` + `LTRIM` in a `MULTI` on each follower's timeline, at most
    /// [`FAN_OUT_PARALLEL`] at once over the pooled connections (the simulated store charges a
    /// pipelined request per shard; here the requests overlap instead). Answers the number of
    /// timelines written; an error only if none was.
    async fn push_many(
        self: &Arc<Self>,
        keys: Vec<String>,
        item: String,
        keep: usize,
        deadline: Instant,
    ) -> Result<Reply, String> {
        let permits = Arc::new(tokio::sync::Semaphore::new(FAN_OUT_PARALLEL));
        let mut writes = tokio::task::JoinSet::new();
        for key in keys {
            let (me, item, permits) = (self.clone(), item.clone(), permits.clone());
            writes.spawn(async move {
                let _permit = permits.acquire().await;
                let shard = me.routing.lock().expect("routing").shard_of(&key);
                if let Some(s) = shard {
                    *me.stats.lock().expect("stats").per_shard.entry(s).or_default() += 1;
                }
                let StoreOp::Strong(calls) = push_calls(&key, &item, keep) else {
                    unreachable!("push_calls is Strong")
                };
                me.strong(shard, &calls, deadline).await
            });
        }
        let (mut written, mut error) = (0, None);
        while let Some(outcome) = writes.join_next().await {
            match outcome {
                Ok(Ok(_)) => written += 1,
                Ok(Err(e)) => error = Some(e),
                Err(e) => error = Some(format!("fan-out task: {e}")),
            }
        }
        match error {
            Some(e) if written == 0 => Err(e),
            _ => Ok(Reply::Int(written)),
        }
    }
}

/// `op` with `ns` before its key (the first argument of every command).
fn namespaced(op: StoreOp, ns: &str) -> StoreOp {
    let prefix = |key: &mut String| key.insert_str(0, ns);
    match op {
        StoreOp::Strong(mut calls) => {
            for c in &mut calls {
                if let Some(k) = c.get_mut(1) {
                    prefix(k);
                }
            }
            StoreOp::Strong(calls)
        }
        StoreOp::CachedRead { mut argv, ttl_ms } => {
            if let Some(k) = argv.get_mut(1) {
                prefix(k);
            }
            StoreOp::CachedRead { argv, ttl_ms }
        }
        StoreOp::CounterAdd { mut key, delta } => {
            prefix(&mut key);
            StoreOp::CounterAdd { key, delta }
        }
        StoreOp::CounterGet { mut key } => {
            prefix(&mut key);
            StoreOp::CounterGet { key }
        }
        StoreOp::PushMany { mut keys, item, keep, per_request } => {
            keys.iter_mut().for_each(prefix);
            StoreOp::PushMany { keys, item, keep, per_request }
        }
    }
}

fn short(error: &str) -> String {
    let e = error.split(": ").last().unwrap_or(error);
    e.chars().take(80).collect()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// A Redis reply as the app reads it (as the simulated store converts the shard's replies).
fn convert(reply: Wire) -> Result<Reply, String> {
    match reply {
        Wire::Text(t) if t.starts_with('-') => Err(t[1..].to_string()),
        Wire::Text(t) if t == "OK" || t == "(nil)" || t == "QUEUED" => Ok(Reply::Nil),
        Wire::Text(t) => Ok(t.parse().map(Reply::Int).unwrap_or(Reply::List(vec![t]))),
        Wire::Array(items) => Ok(Reply::List(
            items
                .into_iter()
                .filter_map(|i| match i {
                    Wire::Text(t) => Some(t),
                    Wire::Array(_) => None,
                })
                .collect(),
        )),
    }
}

/// `GET /v1/cluster` of the sharded cluster, as routing.
async fn fetch_routing(ends: &Endpoints) -> Result<(Routing, serde_json::Value), String> {
    let answer = http(ends.strong_http, "GET", "/v1/cluster", b"", Duration::from_secs(2)).await?;
    if answer.status != 200 {
        return Err(format!("GET /v1/cluster: HTTP {}", answer.status));
    }
    let map: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    if map["mode"] != "sharded" {
        return Err(format!("{} does not run the sharded mode", ends.strong_http));
    }
    let mut routing = Routing::default();
    for (i, addr) in ends.strong.iter().enumerate() {
        routing.nodes.insert(i as u32 + 1, *addr);
    }
    for m in map["members"].as_array().into_iter().flatten() {
        if let (Some(id), Some(addr)) =
            (m["id"].as_u64(), m["redis_addr"].as_str().and_then(|a| a.parse().ok()))
        {
            routing.nodes.insert(id as u32, addr);
        }
    }
    for r in map["ranges"].as_array().into_iter().flatten() {
        if let (Some(a), Some(b), Some(s)) = (r["start"].as_u64(), r["end"].as_u64(), r["shard"].as_u64()) {
            routing.ranges.push((a as u16, b as u16, s as u32));
        }
    }
    for s in map["shards"].as_array().into_iter().flatten() {
        if let (Some(id), Some(leader)) = (s["shard"].as_u64(), s["leader"].as_u64()) {
            if let Some(addr) = routing.nodes.get(&(leader as u32)) {
                routing.leaders.insert(id as u32, *addr);
            }
        }
    }
    Ok((routing, map))
}

/// The app's store over the real clusters (see the module's documentation).
pub struct RealStore {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Done>,
    rx: mpsc::Receiver<Done>,
    next: u64,
    nodes: u32,
}

impl RealStore {
    /// Connect to the clusters at `ends`, waiting up to `within` until every shard has a leader,
    /// every cache node serves from memory, and the likes cluster takes a write.
    pub fn connect(
        rt: tokio::runtime::Runtime,
        ends: Endpoints,
        within: Duration,
        alive: &dyn Fn() -> anyhow::Result<()>,
    ) -> anyhow::Result<RealStore> {
        let give_up = Instant::now() + within;
        let routing = rt.block_on(async {
            loop {
                alive()?;
                let last = match fetch_routing(&ends).await {
                    Ok((routing, map)) => {
                        let shards = map["shards"].as_array().map_or(0, Vec::len);
                        if map["bootstrapped"] == true && shards > 0 && routing.leaders.len() == shards {
                            return Ok::<_, anyhow::Error>(routing);
                        }
                        format!("{} of {shards} shards have a leader", routing.leaders.len())
                    }
                    Err(e) => e,
                };
                anyhow::ensure!(Instant::now() < give_up, "the sharded cluster is not ready: {last}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })?;
        rt.block_on(async {
            for c in &ends.cache {
                loop {
                    alive()?;
                    let info = match Resp::connect(*c).await {
                        Ok(mut conn) => conn.call(&["INFO"]).await.unwrap_or_default(),
                        Err(e) => e,
                    };
                    if info.lines().any(|l| l.trim() == "serving_from_cache:yes") {
                        break;
                    }
                    anyhow::ensure!(
                        Instant::now() < give_up,
                        "cache node {c} does not serve from its memory"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            for l in &ends.likes {
                loop {
                    alive()?;
                    let answer = match Resp::connect(*l).await {
                        Ok(mut conn) => conn.call(&["INCRBY", "lab:ready", "0"]).await.unwrap_or_else(|e| e),
                        Err(e) => e,
                    };
                    if answer.parse::<i64>().is_ok() {
                        break;
                    }
                    anyhow::ensure!(Instant::now() < give_up, "likes node {l} takes no write: {answer}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
        let (tx, rx) = mpsc::channel();
        let nodes = ends.strong.len() as u32;
        let shared = Arc::new(Shared {
            start: Instant::now(),
            ends,
            routing: Mutex::new(routing),
            pool: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(Stats::default()),
            limit: tokio::sync::Semaphore::new(IN_FLIGHT),
            deadline: Duration::from_secs_f64(OP_DEADLINE_MS / 1e3),
            turn: AtomicU64::new(0),
            ns: Mutex::new(String::new()),
            suspect: Mutex::new(BTreeMap::new()),
            observed: Mutex::new(Vec::new()),
            probe: Mutex::new(Probe::default()),
        });
        Ok(RealStore { rt, shared, tx, rx, next: 0, nodes })
    }

    pub fn shards(&self) -> u32 {
        self.shared.routing.lock().expect("routing").ranges.iter().map(|r| r.2).max().map_or(0, |m| m + 1)
    }

    /// Errors by message, since the last reset.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.shared.stats.lock().expect("stats").errors.clone()
    }

    /// Prefix every key from now on with `ns`.
    pub fn set_namespace(&mut self, ns: String) {
        *self.shared.ns.lock().expect("ns") = ns;
    }

    /// Start the counters afresh (between runs).
    pub fn reset_stats(&mut self) {
        *self.shared.stats.lock().expect("stats") = Stats::default();
        self.shared.observed.lock().expect("observed").clear();
        *self.shared.probe.lock().expect("probe") = Probe::default();
    }

    /// Read back what `run` wrote: each fully fanned-out post in the timelines of its author's
    /// followers at the start (`initial`), and every like counter with all replicas answering.
    pub fn read_back(&self, run: &RunResult, initial: &Users) -> Readback {
        let mut b = Readback { run: run.name.clone(), ..Readback::default() };
        let posts: Vec<_> =
            run.fanouts.iter().filter(|f| f.writes > 0 && f.failed == 0 && f.done_ms.is_some()).collect();
        let mut reads = Vec::new();
        for f in posts.iter().rev().take(60) {
            b.posts_checked += 1;
            for &follower in initial.followers[f.author as usize].iter().take(40) {
                reads.push((follower, f.post));
            }
        }
        let keys = reads.iter().map(|(follower, _)| format!("tl:{follower}")).collect();
        let lists = self.read_lists(keys);
        for ((follower, post), list) in reads.into_iter().zip(lists) {
            b.timelines_checked += 1;
            match list.map(|ids| holds(&ids, post)) {
                Ok(Holds::Yes) => b.timelines_with_post += 1,
                Ok(Holds::TrimmedPast) => b.timelines_trimmed += 1,
                Ok(Holds::No) => b.missing.push((follower, post)),
                Err(e) => b.read_errors.push(format!("tl:{follower}: {e}")),
            }
        }
        b.missing.sort_unstable();
        let shared = self.shared.clone();
        // The counters, every replica answering (R = N).
        let mut posts: Vec<u64> = run.likes_acked.keys().chain(run.likes_unknown.keys()).copied().collect();
        posts.sort_unstable();
        posts.dedup();
        let likes = self.shared.ends.likes.clone();
        let ns = self.shared.ns.lock().expect("ns").clone();
        let read: Result<Vec<(u64, i64)>, String> = self.rt.block_on(async {
            if likes.is_empty() {
                // The single-node deployment keeps them on its one shard (linearizable reads).
                let mut out = Vec::new();
                for p in &posts {
                    let key = format!("{ns}likes:{p}");
                    let shard = shared.routing.lock().expect("routing").shard_of(&key);
                    let get = vec!["GET".to_string(), key];
                    let deadline = Instant::now() + Duration::from_secs(5);
                    match shared.strong(shard, &[get], deadline).await? {
                        Reply::Int(n) => out.push((*p, n)),
                        Reply::Nil => out.push((*p, 0)),
                        other => return Err(format!("GET likes:{p}: {other:?}")),
                    }
                }
                return Ok(out);
            }
            let mut conn = Resp::connect(likes[0]).await?;
            conn.call(&["CONSISTENCY", "ALL"]).await?;
            let mut out = Vec::new();
            for p in &posts {
                let v = conn.call(&["GET", &format!("{ns}likes:{p}")]).await?;
                let n =
                    if v == "(nil)" { 0 } else { v.parse().map_err(|_| format!("GET likes:{p}: {v}"))? };
                out.push((*p, n));
            }
            Ok(out)
        });
        match read {
            Ok(values) => {
                for (post, value) in values {
                    let acked = run.likes_acked.get(&post).copied().unwrap_or(0);
                    let unknown = run.likes_unknown.get(&post).copied().unwrap_or(0);
                    b.counters_checked += 1;
                    b.likes_acked += acked;
                    b.likes_unknown += unknown;
                    b.likes_read += value;
                    if (acked..=acked + unknown).contains(&value) {
                        b.counters_exact += 1;
                    } else {
                        b.counter_mismatches.push((post, acked, unknown, value));
                    }
                }
            }
            Err(e) => b.read_errors.push(format!("likes: {e}")),
        }
        b
    }

    /// `kill -9` node `node` of the sharded cluster (its pid from `concord up`'s pid file).
    /// `LRANGE key 0 -1` of each of `keys` (namespaced here) through its shard's leader
    /// (linearizable), [`IN_FLIGHT`] at once: the ids in each list, in the order of `keys`.
    fn read_lists(&self, keys: Vec<String>) -> Vec<Result<Vec<u64>, String>> {
        let shared = self.shared.clone();
        let mut lists: Vec<(usize, Result<Vec<u64>, String>)> = self.rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, key) in keys.into_iter().enumerate() {
                let shared = shared.clone();
                set.spawn(async move {
                    let _permit = shared.limit.acquire().await;
                    let key = format!("{}{key}", shared.ns.lock().expect("ns"));
                    let shard = shared.routing.lock().expect("routing").shard_of(&key);
                    let argv = vec!["LRANGE".to_string(), key, "0".into(), "-1".into()];
                    let deadline = Instant::now() + Duration::from_secs(5);
                    let ids = match shared.strong(shard, &[argv], deadline).await {
                        Ok(Reply::List(items)) => Ok(items.iter().filter_map(|s| s.parse().ok()).collect()),
                        Ok(other) => Err(format!("{other:?}")),
                        Err(e) => Err(e),
                    };
                    (i, ids)
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.extend(r.ok());
            }
            out
        });
        lists.sort_by_key(|(i, _)| *i);
        lists.into_iter().map(|(_, ids)| ids).collect()
    }

    /// The partition run's sharded side (`None` if the store did not cut the sharded cluster):
    /// the app's view from `run`, what the cut-off node answered, and – read back now, after the
    /// heal – whether every post acknowledged during the cut is in its author's list and in the
    /// timelines of its followers at the start (`initial`; at most 40 a post).
    pub fn sharded_partition(&self, run: &RunResult, initial: &Users) -> Option<ShardedPartition> {
        let mut p = live::sharded_partition(run)?;
        {
            let probe = self.shared.probe.lock().expect("probe");
            if probe.cut.is_empty() {
                return None;
            }
            p.node = probe.cut[0];
            p.read_consistency = "linearizable".into();
            p.minority_reads = probe.reads;
            p.minority_served = probe.served;
            p.minority_redirected = probe.redirected;
            p.minority_refused = probe.refused;
            p.minority_timed_out = probe.timed_out;
            p.minority_answers = probe.answers.clone();
        }
        let posts: Vec<_> =
            run.fanouts.iter().filter(|f| f.acked_ms >= p.partition_ms && f.acked_ms < p.heal_ms).collect();
        // (key, post): the author's list of every post, the followers' timelines of those fanned
        // out in full.
        let mut wanted: Vec<(String, u64, bool)> = Vec::new();
        for f in &posts {
            wanted.push((format!("posts:{}", f.author), f.post, false));
            if f.writes > 0 && f.failed == 0 && f.done_ms.is_some() {
                for &follower in initial.followers[f.author as usize].iter().take(40) {
                    wanted.push((format!("tl:{follower}"), f.post, true));
                }
            }
        }
        let lists = self.read_lists(wanted.iter().map(|(k, _, _)| k.clone()).collect());
        for ((key, post, timeline), list) in wanted.into_iter().zip(lists) {
            if timeline {
                p.timelines_checked += 1;
            }
            match list.map(|ids| holds(&ids, post)) {
                Ok(Holds::Yes) if timeline => p.timelines_with_post += 1,
                Ok(Holds::TrimmedPast) if timeline => p.timelines_trimmed += 1,
                Ok(Holds::Yes | Holds::TrimmedPast) => p.posts_in_author_list += 1,
                Ok(Holds::No) => p.lost.push((key, post)),
                Err(e) => p.read_errors.push(format!("{key}: {e}")),
            }
        }
        Some(p)
    }

    fn kill_node(&self, node: u32) -> Result<(), String> {
        let Some(data) = self.shared.ends.strong_data.clone() else {
            return Err("not injected (the lab did not start this cluster)".into());
        };
        kill9(&concord_server::cluster::pid_file(&data, node))
    }

    /// `kill -9` cache node `i + 1`, then watch for `concord up` to start it again: when it
    /// serves from its memory once more is recorded ([`LabStore::observed`]).
    fn kill_cache_node(&mut self, i: u32) -> String {
        let Some(data) = self.shared.ends.strong_data.clone() else {
            return "cache node: not killed (the lab did not start this cluster)".into();
        };
        let Some(&addr) = self.shared.ends.cache.get(i as usize) else {
            return format!(
                "cache node {}: not killed (the cluster has {} cache nodes)",
                i + 1,
                self.shared.ends.cache.len()
            );
        };
        if let Err(e) = kill9(&concord_server::cluster::cache_pid_file(&data, i + 1)) {
            return format!("cache node {}: not killed: {e}", i + 1);
        }
        let shared = self.shared.clone();
        self.rt.spawn(async move {
            // Let the kill land before asking (the old process may still hold the port a moment).
            tokio::time::sleep(Duration::from_millis(100)).await;
            let give_up = Instant::now() + Duration::from_secs(30);
            while Instant::now() < give_up {
                if let Ok(mut conn) = Resp::connect(addr).await {
                    let info = conn.call(&["INFO"]).await.unwrap_or_default();
                    if info.lines().any(|l| l.trim() == "serving_from_cache:yes") {
                        let words =
                            format!("cache node {} serves again (started by `concord up`, empty)", i + 1);
                        shared.observed.lock().expect("observed").push((shared.ms(), words));
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        format!("kill -9 cache node {} ({addr})", i + 1)
    }

    /// One fault-injection request to likes node `node` (`partition` or `heal`), with the
    /// dashboard token of the cluster the lab started.
    fn likes_fault(&self, node: u32, action: &str) -> Result<(), String> {
        let ends = &self.shared.ends;
        fault_request(&self.rt, "likes", &ends.likes_http, ends.likes_data.as_deref(), node, action)
    }

    /// The same to sharded node `node`.
    fn strong_fault(&self, node: u32, action: &str) -> Result<(), String> {
        let ends = &self.shared.ends;
        fault_request(&self.rt, "sharded", &ends.strong_nodes_http, ends.strong_data.as_deref(), node, action)
    }

    /// Read a timeline of each shard straight from the cut-off sharded node `node` every
    /// [`PROBE_EVERY`] until the heal, counting its answers ([`Probe::count`]).
    fn start_probe(&self, node: u32) {
        let Some(&addr) = self.shared.ends.strong.get(node as usize - 1) else { return };
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        self.shared.probe.lock().expect("probe").running = Some(running.clone());
        // A timeline key of each shard (of this run: the namespace is set).
        let keys: Vec<String> = {
            let ns = self.shared.ns.lock().expect("ns").clone();
            let routing = self.shared.routing.lock().expect("routing");
            let mut by_shard = BTreeMap::new();
            for u in 0..10_000u32 {
                let key = format!("{ns}tl:{u}");
                if let Some(s) = routing.shard_of(&key) {
                    by_shard.entry(s).or_insert(key);
                }
            }
            by_shard.into_values().collect()
        };
        let shared = self.shared.clone();
        self.rt.spawn(async move {
            while running.load(Ordering::SeqCst) {
                let next = tokio::time::Instant::now() + PROBE_EVERY;
                // The shards at once (each read may wait its whole budget).
                let mut reads = tokio::task::JoinSet::new();
                for key in &keys {
                    let (shared, argv) =
                        (shared.clone(), vec!["LRANGE".to_string(), key.clone(), "0".into(), "-1".into()]);
                    reads.spawn(async move {
                        shared.call(addr, Setup::Linearizable, &[argv], PROBE_BUDGET).await
                    });
                }
                while let Some(answer) = reads.join_next().await {
                    let Ok(answer) = answer else { continue };
                    if !running.load(Ordering::SeqCst) {
                        return; // healed meanwhile: not an answer of the cut-off node
                    }
                    let routing = |a: SocketAddr| shared.routing.lock().expect("routing").node_of(a);
                    shared.probe.lock().expect("probe").count(&answer, routing);
                }
                tokio::time::sleep_until(next).await;
            }
        });
    }

    /// Cut both clusters: every node of the first group is isolated from all its peers (the
    /// endpoint cuts one node from every other, so the first group is one node or its nodes are
    /// cut from each other too) – in the likes cluster, then in the sharded one, where a read of
    /// each shard's timeline goes straight to the first cut-off node until the heal.
    fn partition(&mut self, groups: &[Vec<u32>]) -> String {
        let sides: Vec<String> = groups.iter().map(|g| format!("{{{}}}", join(g))).collect();
        let first: Vec<u32> = groups.first().cloned().unwrap_or_default();
        for &n in &first {
            if let Err(e) = self.likes_fault(n, "partition") {
                return format!("partition of the likes cluster failed: {e}");
            }
        }
        let mut cut = Vec::new();
        let mut sharded = "sharded cluster".to_string();
        for &n in &first {
            match self.strong_fault(n, "partition") {
                Ok(()) => cut.push(n),
                Err(e) => {
                    sharded = format!("sharded cluster not cut: {e}");
                    break;
                }
            }
        }
        if let Some(&n) = cut.first() {
            self.start_probe(n);
        }
        self.shared.probe.lock().expect("probe").cut = cut;
        format!("partition {} (likes cluster; {sharded})", sides.join(" | "))
    }

    fn heal_all(&mut self) -> String {
        let n = self.shared.ends.likes_http.len() as u32;
        let mut failed: Vec<String> = (1..=n).filter_map(|i| self.likes_fault(i, "heal").err()).collect();
        let (cut, running) = {
            let mut probe = self.shared.probe.lock().expect("probe");
            (probe.cut.clone(), probe.running.take())
        };
        if let Some(running) = running {
            running.store(false, Ordering::SeqCst);
        }
        failed.extend(cut.iter().filter_map(|&i| self.strong_fault(i, "heal").err()));
        if failed.is_empty() {
            "heal".into()
        } else {
            format!("heal failed: {}", failed.join("; "))
        }
    }

    fn kill_leader(&mut self, result: &mut RunResult) -> String {
        if self.shared.ends.strong_data.is_none() {
            return "crash: not injected (the lab did not start this cluster)".into();
        }
        let fetched = self.rt.block_on(fetch_routing(&self.shared.ends));
        let Ok((_, map)) = fetched else { return "crash: the shard map could not be read".into() };
        let mut leads: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for s in map["shards"].as_array().into_iter().flatten() {
            if let (Some(id), Some(leader)) = (s["shard"].as_u64(), s["leader"].as_u64()) {
                leads.entry(leader as u32).or_default().push(id as u32);
            }
        }
        // A machine that leads exactly one shard shows "that shard only"; else the busiest.
        let map_leader = map["map_leader"].as_u64().map(|l| l as u32);
        let pick = leads
            .iter()
            .filter(|(n, s)| s.len() == 1 && Some(**n) != map_leader)
            .chain(leads.iter().filter(|(_, s)| s.len() == 1))
            .chain(leads.iter())
            .next()
            .map(|(n, s)| (*n, s.clone()));
        let Some((node, shards)) = pick else { return "crash: no shard leader found".into() };
        if let Err(e) = self.kill_node(node) {
            return format!("crash: {e}");
        }
        result.crashed_shards.extend(&shards);
        result.crashed_nodes.push(node);
        format!("kill -9 node {node} (leader of shard {})", join(&shards))
    }

    fn restart(&mut self, result: &RunResult) -> String {
        let Some(data) = self.shared.ends.strong_data.clone() else {
            return "restart: not injected (the lab did not start this cluster)".into();
        };
        let answers: Vec<String> = result
            .crashed_nodes
            .iter()
            .map(|n| match concord_server::cluster::control::request(&data, &format!("restart {n}")) {
                Ok(a) => format!("restart node {n}: {a}"),
                Err(e) => format!("restart node {n} failed: {e}"),
            })
            .collect();
        answers.join("; ")
    }
}

/// One fault-injection request (`partition` or `heal`) to node `node` of the `cluster` whose
/// nodes answer HTTP at `nodes_http` (node i + 1 at index i) and whose data directory is `data`
/// (its dashboard token authorizes the request), if this command started it.
fn fault_request(
    rt: &tokio::runtime::Runtime,
    cluster: &str,
    nodes_http: &[SocketAddr],
    data: Option<&Path>,
    node: u32,
    action: &str,
) -> Result<(), String> {
    let Some(data) = data else {
        return Err(format!("not injected (the lab did not start the {cluster} cluster)"));
    };
    let Some(&addr) = nodes_http.get(node as usize - 1) else {
        return Err(format!("no {cluster} node {node}"));
    };
    let token = concord_server::cluster::dashboard_token(data).map_err(|e| format!("{e:#}"))?;
    let bearer = format!("Bearer {token}");
    let path = format!("/v1/faults/{action}");
    let answer = rt.block_on(concord_server::testkit::http_with_headers(
        addr,
        "POST",
        &path,
        &[("authorization", &bearer)],
        b"",
        Duration::from_secs(2),
    ))?;
    if answer.status != 200 {
        return Err(format!(
            "POST {path} on {cluster} node {node}: HTTP {}: {}",
            answer.status,
            answer.text()
        ));
    }
    Ok(())
}

/// Where a post stands in a list of post ids (newest first, at most `KEEP`).
enum Holds {
    Yes,
    /// Not there, but the list is full of newer posts: trimmed past it.
    TrimmedPast,
    No,
}

fn holds(ids: &[u64], post: u64) -> Holds {
    if ids.contains(&post) {
        Holds::Yes
    } else if ids.len() >= concord_lab::social::app::KEEP && ids.iter().all(|&i| i > post) {
        Holds::TrimmedPast
    } else {
        Holds::No
    }
}

/// `kill -9` the process whose pid `pid_file` holds.
fn kill9(pid_file: &Path) -> Result<(), String> {
    let pid = std::fs::read_to_string(pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
    let Some(pid) = pid else { return Err(format!("no pid in {}", pid_file.display())) };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("kill -9 {pid}: {e}"))
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl SocialStore for RealStore {
    fn now_ms(&self) -> f64 {
        self.shared.ms()
    }

    fn submit(&mut self, user: u32, op: StoreOp) -> u64 {
        let id = self.next;
        self.next += 1;
        let shared = self.shared.clone();
        let tx = self.tx.clone();
        let sent_ms = shared.ms();
        let deadline = Instant::now() + shared.deadline;
        self.rt.spawn(async move {
            let _permit = shared.limit.acquire().await;
            let (reply, shard, cache_hit) = shared.run(user, op, deadline).await;
            if let Err(e) = &reply {
                shared.error(e.clone());
            }
            let _ = tx.send(Done { id, reply, sent_ms, done_ms: shared.ms(), shard, cache_hit });
        });
        id
    }

    fn advance(&mut self, until_ms: f64) -> Vec<Done> {
        let wait = until_ms - self.shared.ms();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / 1e3));
        }
        let mut done: Vec<Done> = self.rx.try_iter().collect();
        done.sort_by(|a, b| a.done_ms.total_cmp(&b.done_ms).then(a.id.cmp(&b.id)));
        done
    }
}

impl LabStore for RealStore {
    fn cache_counts(&self) -> (u64, u64) {
        let s = self.shared.stats.lock().expect("stats");
        (s.hits, s.misses)
    }

    fn served_per_node(&self) -> Vec<u64> {
        let s = self.shared.stats.lock().expect("stats");
        (1..=self.nodes).map(|n| s.per_node.get(&n).copied().unwrap_or(0)).collect()
    }

    fn requests_per_shard(&self) -> BTreeMap<u32, u64> {
        self.shared.stats.lock().expect("stats").per_shard.clone()
    }

    /// The requests: each one here is on one key (a fan-out sends a `MULTI` per timeline).
    fn keys_per_shard(&self) -> BTreeMap<u32, u64> {
        self.requests_per_shard()
    }

    fn inject(&mut self, fault: &Fault, result: &mut RunResult) -> String {
        match fault {
            Fault::CrashShardLeader => self.kill_leader(result),
            Fault::CrashNode(n) => match self.kill_node(*n) {
                Ok(()) => {
                    result.crashed_nodes.push(*n);
                    format!("kill -9 node {n}")
                }
                Err(e) => format!("crash node {n}: {e}"),
            },
            Fault::Restart => self.restart(result),
            Fault::KillCacheNode(i) => self.kill_cache_node(*i),
            Fault::Partition(groups) => self.partition(groups),
            Fault::Heal => self.heal_all(),
        }
    }

    fn heal(&mut self) {
        self.heal_all();
    }

    /// Each likes node's own answer (`CONSISTENCY ONE` on a connection to it).
    fn counter_on_replicas(&mut self, key: &str) -> Vec<(u32, i64)> {
        let shared = self.shared.clone();
        let key = format!("{}{key}", shared.ns.lock().expect("ns"));
        self.rt.block_on(async {
            let mut out = Vec::new();
            for (i, addr) in shared.ends.likes.iter().enumerate() {
                let get = vec!["GET".to_string(), key.clone()];
                let budget = Duration::from_millis(200);
                if let Ok(Wire::Text(t)) = shared.call(*addr, Setup::One, &[get], budget).await {
                    if let Ok(n) = if t == "(nil)" { Ok(0) } else { t.parse::<i64>() } {
                        out.push((i as u32 + 1, n));
                    }
                }
            }
            out
        })
    }

    fn observed(&mut self) -> Vec<(f64, String)> {
        std::mem::take(&mut *self.shared.observed.lock().expect("observed"))
    }
}

/// How the command runs: clusters to start (or endpoints to use), runs, where to write.
pub struct RealPlan {
    pub options: SocialOptions,
    pub layout: Layout,
    /// Use these clusters instead of starting them.
    pub existing: Option<Endpoints>,
    /// Where the lab's clusters keep their data (a temporary directory if `None`).
    pub data: Option<PathBuf>,
    pub runs: Vec<LiveRun>,
}

/// Start the clusters (unless given), run, read back, stop. Progress lines go to `progress`.
pub fn run(plan: &RealPlan, progress: &dyn Fn(&str)) -> anyhow::Result<LiveReport> {
    let o = &plan.options;
    let users = live::users_of(o)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // (Declared first, dropped last: the clusters stop before their directory goes.)
    let mut _temp = None;
    let clusters = Clusters::default();
    let (ends, deployment, single_ends) = match &plan.existing {
        Some(ends) => (
            ends.clone(),
            format!(
                "existing clusters: sharded {} (map from {}), cache {:?}, likes {:?}",
                list(&ends.strong),
                ends.strong_http,
                ends.cache,
                ends.likes
            ),
            None,
        ),
        None => {
            let data = match &plan.data {
                Some(d) => d.clone(),
                None => {
                    let dir = std::env::temp_dir().join(format!("concord-lab-social-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&dir);
                    _temp = Some(RemovedOnDrop(dir.clone()));
                    dir
                }
            };
            std::fs::create_dir_all(&data)?;
            let l = &plan.layout;
            for port in l.port_base..l.port_base + PORTS {
                if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                    anyhow::bail!(
                        "port {port} is in use: the lab's clusters need ports {}..{} (choose others with --port-base)",
                        l.port_base,
                        l.port_base + PORTS
                    );
                }
            }
            // Ctrl-C or SIGTERM: stop the clusters, then exit.
            let on_signal = clusters.clone();
            rt.spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) =
                    (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    return;
                };
                tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                eprintln!("interrupted: stopping the lab's clusters");
                let _ = tokio::task::spawn_blocking(move || on_signal.stop()).await;
                std::process::exit(130);
            });
            let mut words = Vec::new();
            for (name, args) in l.commands(&data) {
                let log = data.join(format!("{name}.log"));
                progress(&format!("starting: concord {}  (log: {})", args.join(" "), log.display()));
                clusters.spawn(name, &args, &log)?;
                words.push(format!("concord {}", args.join(" ")));
            }
            let single = l.single.then(|| l.single_endpoints(&data));
            (l.endpoints(&data), words.join(" + "), single)
        }
    };
    let alive = || match clusters.exited() {
        Some(name) => anyhow::bail!("the {name} cluster's `concord up` exited (see its log)"),
        None => Ok(()),
    };
    let started = Instant::now();
    let mut store = RealStore::connect(rt, ends, Duration::from_secs(90), &alive)?;
    // The single-node deployment, on a runtime of its own (each store owns one).
    let mut single = match single_ends {
        Some(ends) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            Some(RealStore::connect(rt, ends, Duration::from_secs(90), &alive)?)
        }
        None => None,
    };
    anyhow::ensure!(
        single.is_some() || !plan.runs.iter().any(|r| r.single_node()),
        "the single-node runs need the lab to start its clusters (not --strong-http)"
    );
    progress(&format!("clusters ready in {:.1} s", started.elapsed().as_secs_f64()));
    let deployment_shape = SimConfig {
        nodes: plan.layout.nodes,
        shards: store.shards(),
        replicas: plan.layout.replicas,
        cache_nodes: store.shared.ends.cache.len() as u32,
        cache_bytes: 0,
        service_us: 0.0,
        key_us: 0.0,
        one_way_ms: 0.0,
        disk_sync_ms: 0.0,
        seed: o.seed,
    };
    let single_shape =
        SimConfig { nodes: 1, shards: 1, replicas: 1, cache_nodes: 0, ..deployment_shape.clone() };
    let mut report = LiveReport {
        options: o.clone(),
        deployment,
        celebrities: (0..users.len())
            .filter(|&u| users.followers[u as usize].len() > o.fanout_threshold)
            .count(),
        summaries: Vec::new(),
        readback: Vec::new(),
        benefits: None,
        runs: Vec::new(),
    };
    let invocation =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for (i, &r) in plan.runs.iter().enumerate() {
        let ns = format!("lab{invocation}r{}:", i + 1);
        progress(&format!("run: {} ({} s of wall-clock time, keys {ns}…)", r.name(), o.duration_s));
        let (store, shape) = match single.as_mut() {
            Some(one) if r.single_node() => (one, &single_shape),
            _ => (&mut store, &deployment_shape),
        };
        store.set_namespace(ns);
        store.reset_stats();
        let (result, mut summary) = live::run_live(o, &users, shape, r, store);
        summary.errors = store.errors();
        alive()?;
        summary.sharded_partition = store.sharded_partition(&result, &users);
        let back = store.read_back(&result, &users);
        progress(&format!(
            "  {} actions, {} failed; read back {} timelines, {} like counters",
            summary.actions, summary.actions_failed, back.timelines_checked, back.counters_checked
        ));
        report.summaries.push(summary);
        report.readback.push(back);
        report.runs.push(result);
    }
    report.benefits = live::benefits(&report.runs);
    drop(store);
    drop(single);
    clusters.stop();
    Ok(report)
}

/// A temporary directory, removed when dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(",")
}

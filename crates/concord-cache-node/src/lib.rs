//! # concord-cache-node – the `concord cache` process
//!
//! A cache node is a small RESP server that sits in front of a Concord database and answers
//! reads from memory. The decisions – what to keep within the byte budget, when a value may be
//! served, which fill may land after which invalidation, which node owns a key – are
//! [`concord_cache`]'s, sans-IO; this crate is the I/O around them: sockets, a clock, the
//! database client and the invalidation feed.
//!
//! ```text
//!        clients (redis-cli, redis-benchmark, any Redis library)
//!           │ GET/SET/DEL/LGET/LSET …             ┌──────── one hop ───────┐
//!           ▼                                      ▼                        │
//!   cache node 1 ── key owned by node 2? ──▶ cache node 2             cache node C
//!     │  ▲  miss: GETREV k (linearizable)         │
//!     │  │  write: SET k v + GETREV k              │
//!     ▼  │                                        ▼
//!   database nodes ── CLIENT TRACKING ON BCAST REVISIONS ──▶ >3 invalidate [k…] [rev…]
//!                     (one RESP3 feed from every database node to every cache node)
//! ```
//!
//! ## Commands
//!
//! Redis's, as redis-server answers them: `GET`, `MGET`, `SET k v [EX s|PX ms|EXAT|PXAT|KEEPTTL]
//! [NX|XX] [GET]`, `DEL`, `EXISTS`, `PING`, `ECHO`, `HELLO [2|3]`, `INFO [section]`, `DBSIZE`,
//! `FLUSHALL`, `SELECT 0`, `COMMAND [COUNT|DOCS]`, `CONFIG GET` (empty: for redis-benchmark),
//! `CLIENT SETNAME|GETNAME|ID`, `AUTH [default] password` (with `--requirepass`: nothing else but
//! `HELLO … AUTH` and `QUIT` before it), `QUIT`. An unknown command is `-ERR unknown command 'x'`,
//! as Redis.
//! What differs because this is a cache:
//!
//! | command | on a cache node |
//! |---|---|
//! | `GET k` | **read-through**: a hit from memory; on a miss the node takes the key's lease, reads `GETREV k` from the database, fills at the returned revision and answers. Misses of one key that arrive while it is filling wait for that fill (single flight). A key the database does not have is answered nil and **not cached** (no negative entries: the next `GET` asks the database again). |
//! | `MGET`, `EXISTS` | each key as `GET` (EXISTS counts the keys that have a value in the database or the cache) |
//! | `SET …` | goes to the database. **write-through** (default, `--write-policy through`): `SET` and `GETREV k` are pipelined on one database connection and the value read back is installed at its revision; **write-around** (`--write-policy around`): forwarded, then the key is dropped here, and the next `GET` fills it. Per request: a last word `THROUGH` or `AROUND` (a Concord option, not sent to the database) overrides the policy. With `KEEPTTL` or `GET` the value is not installed (the cache cannot know the TTL left), as with write-around. |
//! | `DEL k …` | goes to the database (one `DEL` per key), then each key is dropped here |
//! | `DBSIZE` | the entries in **this node's memory** (not the database's keys) |
//! | `FLUSHALL` | empties **this node's memory**; the database is untouched |
//! | `INFO` | sections `server`, `clients`, `memory`, `stats`, `cache`, `database`, `tier` |
//!
//! ### Leases for look-aside clients: `LGET` and `LSET`
//!
//! A client that reads the database itself (look-aside, memcache's protocol) uses the cache as a
//! store with leases (see [`concord_cache::cache`] for why they exist):
//!
//! | request | reply | meaning |
//! |---|---|---|
//! | `LGET k` | `$value` | a hit |
//! | | `*2 lease <token>` | a miss, and you hold the key's lease: read the database, then `LSET` |
//! | | `*2 wait <ms>` | someone else holds the lease: retry `LGET` shortly (it lapses in at most `ms`) |
//! | | `*2 stale <value>` | an invalidated value, kept for readers that tolerate staleness; someone else is filling |
//! | | `*1 miss` | a miss with no lease (the lease table is full, or the node is not serving from memory): read the database, do not fill |
//! | `LSET k <token> <version> <value> [PX ms]` | `+STORED` | installed. `version` is the database's mod revision of the value (`GETREV`'s second element); `token` 0 is an unleased set (still checked against versions) |
//! | | `+LEASE_INVALID` | the token was voided (an invalidation, delete or flush came first) or used |
//! | | `+OLDER_THAN_INVALIDATION`, `+OLDER_THAN_CACHED` | the value was read before a change this node already knows of |
//! | | `+NOT_SERVING` | the invalidation feed is down: nothing is installed until it is back |
//!
//! ## Placement and forwarding
//!
//! A tier of C nodes shares one member list (`--peers a:p,b:p,…`, the same list in the same order
//! on every node; this node finds itself in it by its `--bind`/`--port`) and one placement kind
//! (`--placement ketama|jump|rendezvous`). A request for a key another node owns is forwarded to
//! it – one hop, the owner never forwards again (forwarding connections say `CACHE PEER` first)
//! – and its reply relayed. A client that routes itself sends `CACHE REDIRECT ON` and is answered
//! `-MOVED 0 host:port` instead (the `0` is no hash slot: only the address means something).
//! `CACHE OWNER k` answers the owner's address.
//!
//! ## Invalidation, and the staleness bound
//!
//! [`feed`] keeps one RESP3 connection per database node with `CLIENT TRACKING ON BCAST
//! REVISIONS`; each push `invalidate [k…] [rev…]` calls [`concord_cache::Cache::invalidate`], a
//! null push flushes. **After a write is acknowledged, a cache node serves the old value for at
//! most the invalidation delay**: the time for the first database node that applies the write
//! (the leader applies it before it acknowledges) to push it here – milliseconds on one machine.
//! When any feed is down (not yet connected, dropped, another cluster, no `REVISIONS` support)
//! the node **serves nothing from memory**: it flushes at once, reads go straight to the database
//! and nothing is installed, and when every feed is back it flushes again before it serves
//! from memory. Fills that were in flight across such an edge are refused (the flush voids their
//! leases; write-through installs carry the feed epoch they started in). The one loss no
//! connection drop reveals – a database node whose connection stays up while its feed stops –
//! is bounded by the entries' TTL, at most `--max-ttl`.
//!
//! ## Bad input
//!
//! A value over the item limit: `-ERR value of N bytes is over the cache's item limit of M bytes`
//! (nothing is written). A budget smaller than the item limit: the node refuses to start. No
//! database reachable: the node starts, `INFO` says `db:unreachable`, reads answer
//! `-TRYAGAIN the database is unreachable: …`. A database of another cluster: `INFO` says
//! `db:wrong-cluster`, reads answer `-ERR the database at … belongs to cluster …`.
//!
//! ## Map
//! - [`proto`]: request parsing in place and reply writing (the lean path).
//! - [`server`]: connections, commands, read-through, writes, forwarding.
//! - [`db`]: the database client (pool, redirects, cluster check). [`feed`]: the invalidation feeds.
//! - [`http`]: `/metrics`, `/v1/stats` and the dashboard page.

pub mod conn;
pub mod db;
pub mod feed;
pub mod http;
pub mod proto;
pub mod server;

use anyhow::{anyhow, bail, Context};
use concord_cache::{Cache, CacheConfig, Placement, PlacementKind, PolicyKind, StoreConfig};
use concord_core::{NodeId, Time};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a write through the cache leaves the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WritePolicy {
    /// Write the database, read the value back with its revision, install it.
    #[default]
    Through,
    /// Write the database, drop the key here.
    Around,
}

impl WritePolicy {
    pub fn parse(text: &str) -> Result<WritePolicy, String> {
        match text.to_ascii_lowercase().as_str() {
            "through" => Ok(WritePolicy::Through),
            "around" => Ok(WritePolicy::Around),
            other => Err(format!("unknown write policy {other:?}: through or around")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WritePolicy::Through => "through",
            WritePolicy::Around => "around",
        }
    }
}

/// What `concord cache` starts (the binary parses its flags into this).
#[derive(Clone, Debug)]
pub struct Options {
    pub bind: IpAddr,
    pub port: u16,
    /// The HTTP port for `/metrics`, `/v1/stats` and the dashboard; `None`: no HTTP.
    pub http_port: Option<u16>,
    /// Every database node's RESP address.
    pub db: Vec<SocketAddr>,
    /// The database's cluster id; a database that says another is refused.
    pub cluster_id: String,
    pub db_user: Option<String>,
    pub db_password: Option<String>,
    /// Clients (and peer cache nodes) must `AUTH` with this password first (`None`: no AUTH, as
    /// a redis-server without `requirepass`; the node binds to loopback by default).
    pub requirepass: Option<String>,
    pub budget_bytes: u64,
    /// The largest entry (key + value + 64 bytes of overhead).
    pub max_item_bytes: u64,
    pub policy: PolicyKind,
    pub max_ttl: Duration,
    pub lease_period: Duration,
    pub write_policy: WritePolicy,
    /// Every cache node of the tier, this one included, in the same order on every node. Empty:
    /// a tier of this node alone.
    pub peers: Vec<SocketAddr>,
    pub placement: PlacementKind,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6400,
            http_port: None,
            db: Vec::new(),
            cluster_id: String::new(),
            db_user: None,
            db_password: None,
            requirepass: None,
            budget_bytes: 64 << 20,
            max_item_bytes: 1 << 20,
            policy: PolicyKind::S3Fifo,
            max_ttl: Duration::from_secs(3600),
            lease_period: Duration::from_secs(10),
            write_policy: WritePolicy::Through,
            peers: Vec::new(),
            placement: PlacementKind::Ketama { vnodes: concord_cache::KetamaRing::DEFAULT_VNODES },
        }
    }
}

impl Options {
    /// The cache configuration these options describe, or why it cannot work.
    pub fn cache_config(&self) -> anyhow::Result<CacheConfig> {
        let defaults = CacheConfig::default();
        let config = CacheConfig {
            store: StoreConfig {
                budget_bytes: self.budget_bytes,
                item_limit_bytes: self.max_item_bytes,
                policy: self.policy,
            },
            lease_period: self.lease_period,
            invalidation_memory: defaults.invalidation_memory.max(self.lease_period),
            max_ttl: self.max_ttl,
            ..defaults
        };
        // Cache::new checks everything; a budget below one item is the likely mistake.
        Cache::new(config).map_err(|e| anyhow!("cannot start the cache: {e}"))?;
        Ok(config)
    }
}

/// The state of one database node's invalidation feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedState {
    Connecting,
    /// Subscribed: its invalidations arrive.
    Live,
    Unreachable(String),
    WrongCluster(String),
    /// It answered, but refused the subscription (no `REVISIONS`: not a Concord database that
    /// supports the cache tier).
    Refused(String),
}

impl FeedState {
    pub fn word(&self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Live => "ok",
            FeedState::Unreachable(_) => "unreachable",
            FeedState::WrongCluster(_) => "wrong-cluster",
            FeedState::Refused(_) => "refused",
        }
    }
}

/// A read-through fill in flight: the waiters' view of its outcome.
pub type FillResult = Result<Option<bytes::Bytes>, String>;

/// What the cache lock guards: the cache and the facts that decide whether it may be used.
pub struct Inner {
    pub cache: Cache,
    /// Bumped by every flush that a feed's loss or return causes: an install that started in an
    /// older epoch is dropped.
    pub epoch: u64,
    /// One per database node.
    pub feeds: Vec<FeedState>,
    /// Every feed is live: values may be served from memory and installed.
    pub serving: bool,
    /// The highest shard-map epoch a (sharded) database reported: a higher one flushes.
    pub shard_epoch: Option<u64>,
    /// Read-through fills in flight by key (single flight).
    /// The fill's lease token identifies it (a later fill of the same key replaces the entry).
    pub inflight: HashMap<Vec<u8>, (u64, tokio::sync::watch::Receiver<Option<FillResult>>)>,
}

impl Inner {
    /// Record a feed's state; losing or regaining full coverage flushes (module docs).
    pub fn set_feed(&mut self, index: usize, state: FeedState, now: Time) {
        let was_live = self.feeds[index] == FeedState::Live;
        let is_live = state == FeedState::Live;
        self.feeds[index] = state;
        if was_live != is_live {
            // Lost: what it would have invalidated may be stale. Back: what happened while it was
            // away was never heard. Either way, everything goes.
            self.cache.flush_all(now);
            self.epoch += 1;
        }
        self.serving = self.feeds.iter().all(|f| *f == FeedState::Live);
    }

    /// The database's state in one word, for INFO and /v1/stats.
    pub fn db_word(&self) -> &'static str {
        if self.feeds.iter().any(|f| matches!(f, FeedState::WrongCluster(_))) {
            "wrong-cluster"
        } else if self.serving {
            "ok"
        } else if self.feeds.iter().all(|f| matches!(f, FeedState::Unreachable(_))) {
            "unreachable"
        } else if self.feeds.iter().any(|f| matches!(f, FeedState::Refused(_))) {
            "refused-tracking"
        } else if self.feeds.iter().all(|f| *f == FeedState::Connecting) {
            "connecting"
        } else {
            "degraded"
        }
    }
}

/// The tier's members and who owns which key.
pub struct Tier {
    pub me: usize,
    pub members: Vec<SocketAddr>,
    placement: Box<dyn Placement>,
}

impl Tier {
    pub fn new(me: SocketAddr, peers: &[SocketAddr], kind: PlacementKind) -> anyhow::Result<Tier> {
        let members = if peers.is_empty() { vec![me] } else { peers.to_vec() };
        let Some(index) = members.iter().position(|m| *m == me) else {
            bail!(
                "this node ({me}) is not in --peers ({}): every node's list must name every node, itself included",
                members.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            );
        };
        let ids: Vec<NodeId> = (0..members.len()).map(|i| NodeId(i as u32 + 1)).collect();
        Ok(Tier { me: index, placement: kind.build(&ids), members })
    }

    /// The member that owns `key`, or `None` if it is this node.
    pub fn owner(&self, key: &[u8]) -> Option<usize> {
        if self.members.len() == 1 {
            return None;
        }
        let owner = self.placement.node_for(key).0 as usize - 1;
        (owner != self.me).then_some(owner)
    }

    pub fn placement_name(&self) -> &'static str {
        self.placement.name()
    }
}

/// Counters of the node beyond the cache's own.
#[derive(Default, Debug)]
pub struct NodeCounters {
    pub connections_total: AtomicU64,
    pub connections: AtomicU64,
    pub commands: AtomicU64,
    pub forwarded: AtomicU64,
    pub db_reads: AtomicU64,
    pub db_writes: AtomicU64,
    pub fill_waits: AtomicU64,
    pub bypass_reads: AtomicU64,
    pub too_large: AtomicU64,
    pub feed_pushes: AtomicU64,
    pub feed_flushes: AtomicU64,
    pub feed_reconnects: AtomicU64,
}

/// Everything a connection task shares.
pub struct Shared {
    pub options: Options,
    pub started: Instant,
    pub inner: Mutex<Inner>,
    pub db: db::Db,
    pub tier: Tier,
    pub peers: server::Peers,
    pub counters: NodeCounters,
    pub next_client_id: AtomicU64,
    pub addr: SocketAddr,
}

impl Shared {
    /// The cache's clock: time since the node started.
    pub fn now(&self) -> Time {
        Time::from_duration(self.started.elapsed())
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running node: where it listens.
pub struct Running {
    pub addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
}

/// Bind the ports and start serving (inside a tokio runtime). Fails on a configuration that
/// cannot work and on ports in use; a database that cannot be reached is not an error (the
/// node reports it and keeps trying).
pub async fn start(options: Options) -> anyhow::Result<Running> {
    if options.db.is_empty() {
        bail!("--db needs at least one database node (host:port)");
    }
    if options.cluster_id.is_empty() {
        bail!("--cluster-id is required: the cache refuses a database of another cluster");
    }
    let config = options.cache_config()?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(options.bind, options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.bind, options.port))?;
    let addr = listener.local_addr()?;
    let tier = Tier::new(addr, &options.peers, options.placement)?;
    let http_listener = match options.http_port {
        Some(port) => Some(
            tokio::net::TcpListener::bind(SocketAddr::new(options.bind, port))
                .await
                .with_context(|| format!("cannot listen on {}:{port} (HTTP)", options.bind))?,
        ),
        None => None,
    };
    let auth = db::DbAuth { user: options.db_user.clone(), password: options.db_password.clone() };
    let inner = Inner {
        cache: Cache::new(config).map_err(|e| anyhow!("cannot start the cache: {e}"))?,
        epoch: 0,
        feeds: vec![FeedState::Connecting; options.db.len()],
        serving: false,
        shard_epoch: None,
        inflight: HashMap::new(),
    };
    let shared = Arc::new(Shared {
        db: db::Db::new(options.db.clone(), options.cluster_id.clone(), auth),
        options,
        started: Instant::now(),
        inner: Mutex::new(inner),
        tier,
        peers: server::Peers::default(),
        counters: NodeCounters::default(),
        next_client_id: AtomicU64::new(1),
        addr,
    });
    for index in 0..shared.options.db.len() {
        tokio::spawn(feed::run(shared.clone(), index));
    }
    tokio::spawn(expire_loop(shared.clone()));
    tokio::spawn(server::accept_loop(shared.clone(), listener));
    let http_addr = match http_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            tokio::spawn(http::serve(shared.clone(), listener));
            Some(at)
        }
        None => None,
    };
    Ok(Running { addr, http_addr, shared })
}

/// Expired entries, lapsed leases and old marks leave memory in the background (bounded work).
async fn expire_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = shared.now();
        shared.lock().cache.expire(now, 1000);
    }
}

/// Wait for SIGINT or SIGTERM (what `concord cache` runs until).
pub async fn termination() {
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

//! A cache tier in front of a Raft database, in the simulator (`[protocol.cached]`).
//!
//! Nodes `1..=databases` are Raft replicas of the key-value store (the same [`RaftKv`] as
//! `[protocol.raft]`); the next `caches` nodes are cache nodes, each running one
//! [`concord_cache::Cache`] (leases, versioned invalidation, a byte budget) in memory only – a
//! crashed cache node restarts **empty**.
//!
//! ```text
//!  client ─ read k ─▶ cache node owner(k)  ── hit ──▶ value (revision m)
//!                          │ miss: lease t
//!                          ├─ Fill{k} ──────────▶ db leader: ReadIndex read (linearizable)
//!                          ◀─ FillReply{kv@m} ──   set(k, kv, lease t, version m)
//!  client ─ write k ─▶ db leader ── commit at revision r ── every replica applies ──┐
//!                                                                                   ▼
//!  cache nodes ◀── Stream{epoch, seq, [(k, r)]} from *every* replica, plus a beat every `stream_beat`
//! ```
//!
//! ## Who sends invalidations: every replica
//! Each database replica drains its store's change feed ([`concord_kv::KvStore::take_changes`])
//! after every step and sends the `(key, revision)` pairs to every cache node, on a stream of its
//! own: `(epoch, seq)`, the epoch drawn at boot, `seq` counting the messages of that epoch,
//! heartbeats included. Versions are store revisions, so the same invalidation from three replicas
//! (or twice from one, after a restart re-applies its log) is idempotent. Why every replica and
//! not only the leader: the replica that acknowledged a write is the leader *of that moment*; a
//! leader-only stream loses the invalidations a deposed or crashed leader had applied but not yet
//! delivered, and the next leader's stream shows no gap. With every replica sending, the one that
//! acknowledged the write has it on its stream, whoever leads later. The changes are sent *before*
//! the step's other effects, so an invalidation leaves the leader no later than the reply
//! acknowledging its write.
//!
//! ## When a cache node serves: in sync with every stream
//! A cache node serves from its cache only while it is **in sync**: it has heard, within
//! `stream_timeout` (its own clock), from every database replica. Otherwise it reads the database
//! for the client without caching (a *bypass*). It notices it may have missed invalidations by
//! * a **gap**: a replica's message with `seq` beyond the next expected one, and the skipped
//!   messages still missing `delay_bound` later (reordered messages arrive within it; these are
//!   lost);
//! * a **new epoch**: the replica restarted (what it sent before its crash may be lost);
//! * **silence**: no message from a replica for `stream_timeout` (a partition, a crash, a pause).
//!
//! A lost message or a new epoch flushes (checked before every read and every `tick`); after a
//! silence the node flushes when every stream is back (**flush on reconnect**), before it serves
//! again. The trade-off of "every replica, every stream": while one database replica is down or
//! cut off, cache nodes serve nothing from memory – availability of the cache for a bound on
//! staleness that holds whoever leads. A flush drops every value, voids every lease
//! and bumps a generation: a fill whose database read started before the flush is not stored.
//! A fill is stored only if its lease is still valid, its version is not older than any
//! invalidation seen for the key (the cache's marks), and it comes back within `lease_period`.
//!
//! ## The staleness bound (checked after every run)
//! Let `B = min(max_ttl, stream_timeout + delay_bound)` with invalidations on, and `B = max_ttl`
//! with `invalidation = false`. **No cached read invoked more than `B` after a write's
//! acknowledgement returns a version older than that write.** Why:
//! * *Invalidations.* A write acknowledged at `t` was applied by the leader `L` at or before `t`,
//!   and `L` sent its invalidation no later than the reply. It arrives within `delay_bound` (the
//!   network's one-way bound; a message that takes longer counts as lost) or is lost. If lost,
//!   either `L`'s next message – sent within `stream_beat`, a heartbeat at the latest – shows the
//!   gap, and the node flushes `delay_bound` after it arrived if the skipped message has not come
//!   by then: by `t + stream_beat + 2·delay_bound`; or nothing more arrives and the node declares
//!   `L` silent `stream_timeout` after the last message it heard, which arrived by
//!   `t + delay_bound`. Either way the old value is gone, or not served, by
//!   `t + stream_timeout + delay_bound` (validation demands `stream_beat + delay_bound <
//!   stream_timeout`).
//! * *TTL.* An entry lives `max_ttl` from when its fill request left the cache node, which is
//!   before the database read the value comes from; a write the read missed was acknowledged after
//!   that read, so the entry expires less than `max_ttl` after that acknowledgement.
//!
//! The bound assumes the network's delays stay under `delay_bound` (scenarios with unbounded
//! latency distributions can break it without a bug) and clocks that run at nearly the same rate.
//! The check (see [`check_history`](CachedNode::check_history)) uses the read's *invocation*
//! time, earlier than the moment the cache served it, so it never blames a read unfairly. A
//! failing check prints the read, the write it missed and both times.
//!
//! Cached reads are not linearizable (a cache is not), so `run.checks` must not list
//! `linearizability` for this protocol; instead the history of the first `direct_clients` clients'
//! reads – sent straight to the database by ReadIndex – plus every write is checked for
//! linearizability after the run. Online, Raft's safety invariants are checked over the database
//! replicas.
//!
//! ## Deliberate bugs (`mutation = "…"`)
//! * `cache_fill_ignores_invalidation` – a fill is stored even if an invalidation newer than its
//!   read arrived first (the invalidation effectively applied before the write it follows);
//! * `cache_no_flush_on_reconnect` – a gap, a new epoch or the end of a silence does not flush.
//!
//! `tests/cached.rs` sweeps seeds and shows each is caught by the bound check.
//!
//! ## The hot-key expiry (`herd_at`)
//! At each `herd_at` time every cache node drops `herd_key` (as a TTL expiry would): with leases
//! one reader fills it and the others wait (`MissWait`, retried every `tick`); without leases every
//! reader goes to the database – the thundering herd [`measure`] makes visible per time bucket.
//!
//! ```toml
//! [protocol.cached]
//! databases = 3              # Raft replicas: nodes 1..=3
//! caches = 2                 # cache nodes: the next 2 (run.nodes must be their sum)
//! budget_bytes = 65536       # each cache node's byte budget
//! policy = "s3-fifo"         # or "lru"
//! placement = "rendezvous"   # or "jump", or { ketama = { vnodes = 160 } }
//! leases = true
//! invalidation = true
//! max_ttl = "5s"
//! lease_period = "500ms"
//! stream_beat = "20ms"       # a replica's heartbeat on its invalidation stream
//! stream_timeout = "100ms"   # silence after which a cache node stops serving
//! delay_bound = "10ms"       # the network's one-way delay bound, for the staleness bound
//! tick = "5ms"               # a cache node's housekeeping period (retries, expiry)
//! direct_clients = 1         # the first clients read the database directly
//! herd_at = ["3s"]
//! herd_key = "k0"
//! mutation = "cache_fill_ignores_invalidation"
//! raft = { election_timeout_min = "150ms", election_timeout_max = "300ms", heartbeat_interval = "50ms" }
//! ```

pub mod check;
pub mod measure;

use crate::protocol::{Invariant, InvariantViolation, ReplicaState, SimProtocol};
use concord_cache::{
    Cache, CacheConfig, Fill, JumpHash, KetamaRing, LeaseToken, Lookup, Placement, PlacementKind, PolicyKind,
    Rendezvous, SetOutcome, StoreConfig,
};
use concord_core::history::History;
use concord_core::{
    Access, ClientId, Durable, Effect, Io, KvStateMachine, NodeId, Op, OpFn, Process, ProtocolEvent,
    RequestId, Service, Time, Value,
};
use concord_kv::{Command, KeyValue, KvLimits, KvResult, KvStore, Query, Response};
use concord_raft::message::Session;
use concord_raft::{RaftConfig, RaftRequest, RaftResponse, ReadConsistency, SafetyMonitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::raft::RaftKv;

pub use measure::{measure, measure_scenario, CacheExperiment, CacheMeasurements};

/// What clients send and receive: the database's own requests and answers (a cache node answers a
/// read exactly as the database would, so the checkers read both alike).
pub type KvRequest = RaftRequest<Command, Query>;
pub type KvResponse = RaftResponse<KvResult>;
type RaftMessage = <RaftKv as Process>::Message;

/// The request id a database replica gives a cache node's fill read (never a workload client's).
const FILL_CLIENT: u32 = u32::MAX - 1;

/// A deliberate bug (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMutation {
    CacheFillIgnoresInvalidation,
    CacheNoFlushOnReconnect,
}

impl CacheMutation {
    pub const ALL: [CacheMutation; 2] =
        [CacheMutation::CacheFillIgnoresInvalidation, CacheMutation::CacheNoFlushOnReconnect];

    pub fn name(self) -> &'static str {
        match self {
            CacheMutation::CacheFillIgnoresInvalidation => "cache_fill_ignores_invalidation",
            CacheMutation::CacheNoFlushOnReconnect => "cache_no_flush_on_reconnect",
        }
    }
}

/// Where keys live, built once per scenario (a ketama ring is 160 points per node).
#[derive(Clone, Debug, Default)]
struct Owners(Arc<OnceLock<OwnerMap>>);

#[derive(Debug)]
enum OwnerMap {
    Ketama(KetamaRing),
    Jump(JumpHash),
    Rendezvous(Rendezvous),
}

impl OwnerMap {
    fn node_for(&self, key: &[u8]) -> NodeId {
        match self {
            OwnerMap::Ketama(p) => p.node_for(key),
            OwnerMap::Jump(p) => p.node_for(key),
            OwnerMap::Rendezvous(p) => p.node_for(key),
        }
    }
}

/// `[protocol.cached]` (see the module docs for every setting).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CachedScenario {
    pub databases: u32,
    pub caches: u32,
    pub budget_bytes: u64,
    pub policy: PolicyKind,
    pub placement: PlacementKind,
    pub leases: bool,
    pub invalidation: bool,
    #[serde(with = "concord_core::time::serde_duration")]
    pub max_ttl: Duration,
    #[serde(with = "concord_core::time::serde_duration")]
    pub lease_period: Duration,
    #[serde(with = "concord_core::time::serde_duration")]
    pub stream_beat: Duration,
    #[serde(with = "concord_core::time::serde_duration")]
    pub stream_timeout: Duration,
    #[serde(with = "concord_core::time::serde_duration")]
    pub delay_bound: Duration,
    #[serde(with = "concord_core::time::serde_duration")]
    pub tick: Duration,
    /// A fill (or bypass read) unanswered this long is sent again, to the next replica.
    #[serde(with = "concord_core::time::serde_duration")]
    pub fill_timeout: Duration,
    pub direct_clients: u32,
    #[serde(deserialize_with = "durations")]
    pub herd_at: Vec<Duration>,
    pub herd_key: String,
    pub mutation: Option<CacheMutation>,
    pub kv: KvLimits,
    pub raft: RaftConfig,
    #[serde(skip)]
    owners: Owners,
}

impl Default for CachedScenario {
    fn default() -> Self {
        CachedScenario {
            databases: 3,
            caches: 2,
            budget_bytes: 64 << 10,
            policy: PolicyKind::default(),
            placement: PlacementKind::Rendezvous,
            leases: true,
            invalidation: true,
            max_ttl: Duration::from_secs(5),
            lease_period: Duration::from_millis(500),
            stream_beat: Duration::from_millis(20),
            stream_timeout: Duration::from_millis(100),
            delay_bound: Duration::from_millis(10),
            tick: Duration::from_millis(5),
            fill_timeout: Duration::from_millis(100),
            direct_clients: 0,
            herd_at: Vec::new(),
            herd_key: "k0".into(),
            mutation: None,
            kv: KvLimits::default(),
            raft: RaftConfig::default(),
            owners: Owners::default(),
        }
    }
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| {
            concord_core::time::parse_duration(t).map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}")))
        })
        .collect()
}

impl CachedScenario {
    /// Settings no cluster could run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.databases == 0 || self.caches == 0 {
            return Err("databases and caches must both be at least 1".into());
        }
        if u64::from(self.databases) + u64::from(self.caches) > 1_000 {
            return Err("at most 1000 nodes in all".into());
        }
        let day = Duration::from_secs(86_400);
        let long = [
            ("max_ttl", self.max_ttl),
            ("lease_period", self.lease_period),
            ("stream_beat", self.stream_beat),
            ("stream_timeout", self.stream_timeout),
            ("delay_bound", self.delay_bound),
            ("tick", self.tick),
            ("fill_timeout", self.fill_timeout),
        ];
        if let Some((name, d)) = long.iter().find(|(_, d)| *d > day) {
            return Err(format!("{name} = {d:?}: at most a day"));
        }
        if let Some(at) = self.herd_at.iter().find(|at| **at > day) {
            return Err(format!("herd_at {at:?}: at most a day"));
        }
        if self.stream_beat + self.delay_bound >= self.stream_timeout {
            return Err(format!(
                "stream_beat ({:?}) + delay_bound ({:?}) must be shorter than stream_timeout ({:?}): \
                 a beat may take delay_bound to arrive, and a lost message must be noticed within the bound",
                self.stream_beat, self.delay_bound, self.stream_timeout
            ));
        }
        if self.tick.is_zero() || self.fill_timeout.is_zero() || self.stream_beat.is_zero() {
            return Err("tick, fill_timeout and stream_beat must be positive".into());
        }
        self.cache_config().and_then(|c| Cache::new(c).map(|_| ()).map_err(|e| e.to_string()))?;
        self.raft.validate().map_err(|e| format!("raft: {e}"))
    }

    /// The staleness bound `B` the run is checked against (see the module docs).
    pub fn staleness_bound(&self) -> Duration {
        if self.invalidation {
            self.max_ttl.min(self.stream_timeout + self.delay_bound)
        } else {
            self.max_ttl
        }
    }

    pub fn database_ids(&self) -> Vec<NodeId> {
        (1..=self.databases).map(NodeId).collect()
    }

    pub fn cache_ids(&self) -> Vec<NodeId> {
        (self.databases + 1..=self.databases + self.caches).map(NodeId).collect()
    }

    /// The cache node that owns `key`.
    pub fn owner(&self, key: &[u8]) -> NodeId {
        self.owners
            .0
            .get_or_init(|| {
                let nodes = self.cache_ids();
                let mut map = match self.placement {
                    PlacementKind::Ketama { vnodes } => OwnerMap::Ketama(KetamaRing::new(vnodes)),
                    PlacementKind::Jump => OwnerMap::Jump(JumpHash::default()),
                    PlacementKind::Rendezvous => OwnerMap::Rendezvous(Rendezvous::default()),
                };
                for node in nodes {
                    match &mut map {
                        OwnerMap::Ketama(p) => p.add_node(node),
                        OwnerMap::Jump(p) => p.add_node(node),
                        OwnerMap::Rendezvous(p) => p.add_node(node),
                    }
                }
                map
            })
            .node_for(key)
    }

    /// Whether workload client `client` reads the database directly (its reads are checked for
    /// linearizability).
    pub fn is_direct(&self, client: u32) -> bool {
        client < self.direct_clients
    }

    fn cache_config(&self) -> Result<CacheConfig, String> {
        Ok(CacheConfig {
            store: StoreConfig {
                budget_bytes: self.budget_bytes,
                item_limit_bytes: self.budget_bytes.min(64 << 10),
                policy: self.policy,
            },
            lease_period: self.lease_period,
            // Never serve invalidated values: a reader either waits for the fill or gets a fresh one.
            stale_keep: Duration::ZERO,
            invalidation_memory: self.lease_period * 4,
            max_invalidation_marks: 100_000,
            max_leases: 100_000,
            max_ttl: self.max_ttl,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Messages and timers
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CachedMessage {
    Raft(RaftMessage),
    /// Cache → database: read `key` linearizably (ReadIndex at the leader).
    Fill {
        id: u64,
        key: Vec<u8>,
    },
    /// Database → cache: the read's answer (or a redirect).
    FillReply {
        id: u64,
        response: KvResponse,
    },
    /// Database → caches: the changes a replica applied, on its stream `(epoch, seq)`; empty: a beat.
    Stream {
        epoch: u64,
        seq: u64,
        keys: Vec<(Vec<u8>, u64)>,
        everything: bool,
    },
}

impl concord_core::Message for CachedMessage {
    fn kind(&self) -> &'static str {
        match self {
            CachedMessage::Raft(m) => m.kind(),
            CachedMessage::Fill { .. } => "fill",
            CachedMessage::FillReply { .. } => "fill-reply",
            CachedMessage::Stream { keys, everything, .. } if keys.is_empty() && !everything => "stream-beat",
            CachedMessage::Stream { .. } => "invalidate",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CachedTimer {
    Raft(concord_raft::Timer),
    /// A replica's stream heartbeat.
    Beat,
    /// A cache node's housekeeping: silences, retries, expiry.
    Tick,
    /// Hot-key expiry number `i` of `herd_at`.
    Herd(u32),
}

// ------------------------------------------------------------------------------------------------
// The nodes
// ------------------------------------------------------------------------------------------------

/// A node of the cached cluster: a database replica or a cache node.
#[allow(clippy::large_enum_variant)]
pub enum CachedNode {
    Db(Box<DbNode>),
    Cache(Box<CacheNode>),
}

/// What a database replica counts (since its boot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DbCounters {
    /// Fill and bypass reads from cache nodes.
    pub cache_reads: u64,
    /// Reads from clients straight to the database.
    pub client_reads: u64,
    pub writes: u64,
}

/// A database replica: Raft over the key-value store, plus the invalidation stream.
pub struct DbNode {
    raft: RaftKv,
    caches: Vec<NodeId>,
    invalidation: bool,
    beat: Duration,
    epoch: u64,
    seq: u64,
    /// Fill reads in progress: the Raft request id → (cache node, fill id).
    fills: BTreeMap<RequestId, (NodeId, u64)>,
    next_fill: u64,
    pub counters: DbCounters,
}

/// What a cache node counts (since its boot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounters {
    /// Client reads answered from the cache.
    pub hits: u64,
    /// Client reads that missed (each waits for a fill: its own or, after a wait, another's).
    pub misses: u64,
    /// Client reads sent to the database without caching: the node was not in sync.
    pub bypassed: u64,
    /// Misses that found another reader's lease and waited.
    pub lease_waits: u64,
    pub leases_issued: u64,
    /// Requests to the database (fills, bypass reads and their retries).
    pub db_requests: u64,
    pub fills_stored: u64,
    pub fills_refused: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub gaps: u64,
    pub silences: u64,
    pub herd_expiries: u64,
}

#[derive(Debug)]
struct StreamState {
    epoch: u64,
    next: u64,
    last_heard: Time,
    /// Sequence numbers skipped by a later message: reordered or lost. If they are still missing
    /// at `hole_deadline` they are lost, and the node flushes.
    holes: BTreeSet<u64>,
    hole_deadline: Option<Time>,
}

/// More holes than this in one stream: flush at once rather than remember them.
const MAX_HOLES: u64 = 1_000;

#[derive(Debug)]
struct PendingFill {
    key: Vec<u8>,
    lease: Option<LeaseToken>,
    /// Store the answer (a fill) or only pass it on (a bypass read).
    store: bool,
    generation: u64,
    sent_at: Time,
    /// When it was last sent (`None`: send at the next tick) and to whom.
    last_sent: Option<Time>,
    target: NodeId,
    waiters: Vec<RequestId>,
}

/// A cache node (see the module docs).
#[derive(Debug)]
pub struct CacheNode {
    config: CachedScenario,
    dbs: Vec<NodeId>,
    cache: Cache,
    streams: BTreeMap<NodeId, StreamState>,
    in_sync: bool,
    generation: u64,
    leader: NodeId,
    next_fill: u64,
    fills: BTreeMap<u64, PendingFill>,
    /// Reads waiting for another reader's lease, retried at the next tick.
    parked: Vec<(RequestId, Vec<u8>)>,
    pub counters: CacheCounters,
}

impl CachedNode {
    pub fn as_db(&self) -> Option<&DbNode> {
        match self {
            CachedNode::Db(d) => Some(d),
            CachedNode::Cache(_) => None,
        }
    }

    pub fn as_cache(&self) -> Option<&CacheNode> {
        match self {
            CachedNode::Cache(c) => Some(c),
            CachedNode::Db(_) => None,
        }
    }
}

impl DbNode {
    pub fn raft(&self) -> &RaftKv {
        &self.raft
    }

    /// Run one input through Raft, then send the changes it applied – before its other effects,
    /// so an invalidation leaves no later than the reply acknowledging its write.
    fn lift(&mut self, io: &mut Io<'_, CachedNode>, f: impl FnOnce(&mut RaftKv, &mut Io<'_, RaftKv>)) {
        let ((), effects) = io.nested(|inner| f(&mut self.raft, inner));
        let changes = self.raft.state_machine_mut().take_changes();
        if self.invalidation && !changes.is_empty() {
            self.send_stream(io, changes.keys, changes.everything);
        }
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => io.send(to, CachedMessage::Raft(msg)),
                Effect::SendNow { to, msg } => io.send_now(to, CachedMessage::Raft(msg)),
                Effect::SetTimer { timer, after } => io.set_timer(CachedTimer::Raft(timer), after),
                Effect::CancelTimer { timer } => io.cancel_timer(CachedTimer::Raft(timer)),
                Effect::Persist(op) => io.persist(op),
                Effect::Sync => io.sync(),
                // Every reply waits behind the syncs before it, the invalidations sent above too:
                // a write's answer must not overtake the invalidation of its key.
                Effect::Reply { request, response } | Effect::ReplyNow { request, response } => {
                    match self.fills.remove(&request) {
                        Some((cache, id)) => io.send(cache, CachedMessage::FillReply { id, response }),
                        None => io.reply(request, response),
                    }
                }
                Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
            }
        }
    }

    fn send_stream(&mut self, io: &mut Io<'_, CachedNode>, keys: Vec<(Vec<u8>, u64)>, everything: bool) {
        self.seq += 1;
        for &cache in &self.caches {
            let msg =
                CachedMessage::Stream { epoch: self.epoch, seq: self.seq, keys: keys.clone(), everything };
            io.send(cache, msg);
        }
    }
}

/// A cached value's bytes: `[1][mod_revision, 8 bytes LE][value]`, or `[0]` for an absent key. The
/// revision travels with the value so a hit answers with the revision it really holds.
fn encode(kv: &Option<KeyValue>) -> Vec<u8> {
    match kv {
        None => vec![0],
        Some(kv) => {
            let mut bytes = Vec::with_capacity(9 + kv.value.len());
            bytes.push(1);
            bytes.extend_from_slice(&kv.mod_revision.to_le_bytes());
            bytes.extend_from_slice(&kv.value);
            bytes
        }
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Option<KeyValue> {
    if bytes.first() != Some(&1) || bytes.len() < 9 {
        return None;
    }
    let mod_revision = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
    Some(KeyValue {
        key: key.to_vec(),
        value: bytes[9..].to_vec(),
        create_revision: 0,
        mod_revision,
        version: 0,
        expires_at: None,
    })
}

impl CacheNode {
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    fn mutation(&self, m: CacheMutation) -> bool {
        self.config.mutation == Some(m)
    }

    fn flush(&mut self, io: &mut Io<'_, CachedNode>, why: &'static str) {
        if self.mutation(CacheMutation::CacheNoFlushOnReconnect) {
            return; // MUTATION: keep serving what may have missed invalidations
        }
        self.cache.flush_all(io.now());
        self.generation += 1;
        self.counters.flushes += 1;
        io.event("cache-flush", serde_json::json!({ "why": why }));
    }

    /// Declare a silence if a replica has not been heard for `stream_timeout`.
    fn refresh(&mut self, io: &mut Io<'_, CachedNode>) {
        if !self.config.invalidation {
            self.in_sync = true;
            return;
        }
        let now = io.now();
        let lost = self.streams.values().any(|s| s.hole_deadline.is_some_and(|d| d <= now));
        if lost {
            for s in self.streams.values_mut() {
                if s.hole_deadline.is_some_and(|d| d <= now) {
                    s.holes.clear();
                    s.hole_deadline = None;
                }
            }
            self.counters.gaps += 1;
            self.flush(io, "gap");
        }
        let live = |s: Option<&StreamState>| {
            s.is_some_and(|s| now.saturating_since(s.last_heard) <= self.config.stream_timeout)
        };
        let all_live = self.dbs.iter().all(|db| live(self.streams.get(db)));
        if self.in_sync && !all_live {
            self.in_sync = false;
            self.counters.silences += 1;
            io.event("cache-out-of-sync", serde_json::json!({}));
        }
    }

    fn on_stream(
        &mut self,
        io: &mut Io<'_, CachedNode>,
        from: NodeId,
        epoch: u64,
        seq: u64,
        keys: Vec<(Vec<u8>, u64)>,
        everything: bool,
    ) {
        if !self.config.invalidation {
            return;
        }
        let now = io.now();
        self.refresh(io);
        match self.streams.get_mut(&from) {
            Some(s) if s.epoch == epoch => {
                s.last_heard = now;
                if seq >= s.next {
                    if seq - s.next > MAX_HOLES {
                        s.holes.clear();
                        s.hole_deadline = Some(now);
                    } else if seq > s.next {
                        // Skipped messages: reordered (they arrive within `delay_bound`) or lost.
                        s.holes.extend(s.next..seq);
                        s.hole_deadline.get_or_insert(now + self.config.delay_bound);
                    }
                    s.next = seq + 1;
                } else if s.holes.remove(&seq) && s.holes.is_empty() {
                    s.hole_deadline = None;
                }
                // Late or duplicated messages' invalidations apply like any others.
            }
            known => {
                let restarted = known.is_some();
                let fresh = StreamState {
                    epoch,
                    next: seq + 1,
                    last_heard: now,
                    holes: BTreeSet::new(),
                    hole_deadline: None,
                };
                self.streams.insert(from, fresh);
                if restarted {
                    self.flush(io, "new-epoch");
                }
            }
        }
        if everything {
            self.flush(io, "everything");
        }
        for (key, revision) in keys {
            self.counters.invalidations += 1;
            self.cache.invalidate(&key, revision, now);
        }
        if !self.in_sync {
            let all_live = self.dbs.iter().all(|db| {
                self.streams
                    .get(db)
                    .is_some_and(|s| now.saturating_since(s.last_heard) <= self.config.stream_timeout)
            });
            if all_live {
                // Back in sync: anything cached before may have missed invalidations.
                self.flush(io, "reconnect");
                self.in_sync = true;
                io.event("cache-in-sync", serde_json::json!({}));
            }
        }
    }

    fn serve(&mut self, io: &mut Io<'_, CachedNode>, request: RequestId, key: Vec<u8>) {
        self.refresh(io);
        let now = io.now();
        if !self.in_sync {
            self.counters.bypassed += 1;
            self.start_fill(io, key, None, false, request);
            return;
        }
        match self.cache.get(&key, now) {
            Lookup::Hit(bytes) => {
                self.counters.hits += 1;
                let kv = decode(&key, &bytes);
                io.reply(request, RaftResponse::Output(Ok(Response::Get(kv))));
            }
            Lookup::Miss { lease } => {
                self.counters.misses += 1;
                let lease = match lease {
                    Some(token) if self.config.leases => {
                        self.counters.leases_issued += 1;
                        Some(token)
                    }
                    Some(_) => {
                        // Leases off: give the token back at once; the fill is checked by version only.
                        self.cache.delete(&key, now);
                        None
                    }
                    None => None,
                };
                // A full lease table (leases on, no token): read for the client, do not fill.
                let store = lease.is_some() || !self.config.leases;
                self.start_fill(io, key, lease, store, request);
            }
            Lookup::MissWait { .. } | Lookup::Stale(_) => {
                self.counters.lease_waits += 1;
                self.parked.push((request, key));
            }
        }
    }

    fn start_fill(
        &mut self,
        io: &mut Io<'_, CachedNode>,
        key: Vec<u8>,
        lease: Option<LeaseToken>,
        store: bool,
        request: RequestId,
    ) {
        let id = self.next_fill;
        self.next_fill += 1;
        let now = io.now();
        let fill = PendingFill {
            key,
            lease,
            store,
            generation: self.generation,
            sent_at: now,
            last_sent: None,
            target: self.leader,
            waiters: vec![request],
        };
        self.fills.insert(id, fill);
        self.send_fill(io, id);
    }

    fn send_fill(&mut self, io: &mut Io<'_, CachedNode>, id: u64) {
        let Some(fill) = self.fills.get_mut(&id) else { return };
        fill.last_sent = Some(io.now());
        self.counters.db_requests += 1;
        io.send(fill.target, CachedMessage::Fill { id, key: fill.key.clone() });
    }

    fn next_db(&self, after: NodeId) -> NodeId {
        let i = self.dbs.iter().position(|d| *d == after).map_or(0, |i| i + 1);
        self.dbs[i % self.dbs.len()]
    }

    fn on_fill_reply(&mut self, io: &mut Io<'_, CachedNode>, from: NodeId, id: u64, response: KvResponse) {
        let now = io.now();
        let redirect = match &response {
            RaftResponse::Output(Ok(Response::Get(_))) => None,
            RaftResponse::NotLeader { hint: Some(h) } if self.dbs.contains(h) && *h != from => Some(*h),
            _ => Some(self.next_db(from)),
        };
        if let Some(target) = redirect {
            // Try elsewhere at the next tick (not at once: no leader may exist right now).
            self.leader = target;
            if let Some(fill) = self.fills.get_mut(&id) {
                fill.target = target;
                fill.last_sent = None;
            }
            return;
        }
        let Some(fill) = self.fills.remove(&id) else { return }; // answered already
        self.leader = from;
        let RaftResponse::Output(Ok(Response::Get(kv))) = response else { unreachable!("matched above") };
        self.refresh(io);
        let young = now.saturating_since(fill.sent_at) <= self.config.lease_period;
        if fill.store && fill.generation == self.generation && self.in_sync && young {
            let version = kv.as_ref().map_or(0, |kv| kv.mod_revision);
            // The entry lives `max_ttl` from when the fill left, which is before the read it holds.
            let ttl = self.config.max_ttl.saturating_sub(now.saturating_since(fill.sent_at));
            let mut set = Fill { lease: fill.lease, version, ttl: Some(ttl) };
            if self.mutation(CacheMutation::CacheFillIgnoresInvalidation) {
                // MUTATION: no lease check and no version check against invalidations seen.
                let mark = self.cache.invalidation_mark(&fill.key, now).unwrap_or(0);
                set = Fill { lease: None, version: version.max(mark), ttl: Some(ttl) };
            }
            if !ttl.is_zero() {
                match self.cache.set(&fill.key, encode(&kv), set, now) {
                    Ok(SetOutcome::Stored) => self.counters.fills_stored += 1,
                    _ => self.counters.fills_refused += 1,
                }
            }
        }
        for request in fill.waiters {
            io.reply(request, RaftResponse::Output(Ok(Response::Get(kv.clone()))));
        }
    }

    fn tick(&mut self, io: &mut Io<'_, CachedNode>) {
        let now = io.now();
        self.refresh(io);
        // Fills unanswered for `fill_timeout` go to the next replica; after two lease periods the
        // clients have long given up.
        let mut resend = Vec::new();
        let mut dead = Vec::new();
        for (&id, fill) in &self.fills {
            if now.saturating_since(fill.sent_at) > self.config.lease_period * 2 {
                dead.push(id);
            } else if fill.last_sent.is_none_or(|t| now.saturating_since(t) >= self.config.fill_timeout) {
                resend.push(id);
            }
        }
        for id in dead {
            self.fills.remove(&id);
        }
        for id in resend {
            let timed_out = self.fills.get(&id).is_some_and(|f| f.last_sent.is_some());
            if timed_out {
                let target = self.next_db(self.fills[&id].target);
                self.leader = target;
                self.fills.get_mut(&id).expect("present").target = target;
            }
            self.send_fill(io, id);
        }
        for (request, key) in std::mem::take(&mut self.parked) {
            self.serve(io, request, key);
        }
        self.cache.expire(now, 1_000);
        io.set_timer(CachedTimer::Tick, self.config.tick);
    }
}

impl Process for CachedNode {
    type Message = CachedMessage;
    type Timer = CachedTimer;
    type Request = KvRequest;
    type Response = KvResponse;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        match self {
            CachedNode::Db(db) => {
                db.epoch = io.random_u64();
                db.lift(io, |raft, inner| raft.on_start(inner));
                if db.invalidation {
                    db.send_stream(io, Vec::new(), false);
                    io.set_timer(CachedTimer::Beat, db.beat);
                }
            }
            CachedNode::Cache(c) => {
                io.set_timer(CachedTimer::Tick, c.config.tick);
                let now = io.now();
                for (i, at) in c.config.herd_at.iter().enumerate() {
                    let at = Time::from_duration(*at);
                    if at > now {
                        io.set_timer(CachedTimer::Herd(i as u32), at.saturating_since(now));
                    }
                }
            }
        }
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: CachedMessage) {
        match (self, msg) {
            (CachedNode::Db(db), CachedMessage::Raft(m)) => {
                db.lift(io, |raft, inner| raft.on_message(inner, from, m))
            }
            (CachedNode::Db(db), CachedMessage::Fill { id, key }) => {
                db.counters.cache_reads += 1;
                let request = RequestId { client: ClientId(FILL_CLIENT), seq: db.next_fill };
                db.next_fill += 1;
                db.fills.insert(request, (from, id));
                let read =
                    RaftRequest::Read { consistency: ReadConsistency::Linearizable, query: Query::get(key) };
                db.lift(io, |raft, inner| raft.on_request(inner, request, read));
            }
            (CachedNode::Cache(c), CachedMessage::FillReply { id, response }) => {
                c.on_fill_reply(io, from, id, response)
            }
            (CachedNode::Cache(c), CachedMessage::Stream { epoch, seq, keys, everything }) => {
                c.on_stream(io, from, epoch, seq, keys, everything)
            }
            _ => {} // a message for the other kind of node: ignore
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: CachedTimer) {
        match (self, timer) {
            (CachedNode::Db(db), CachedTimer::Raft(t)) => db.lift(io, |raft, inner| raft.on_timer(inner, t)),
            (CachedNode::Db(db), CachedTimer::Beat) => {
                db.send_stream(io, Vec::new(), false);
                io.set_timer(CachedTimer::Beat, db.beat);
            }
            (CachedNode::Cache(c), CachedTimer::Tick) => c.tick(io),
            (CachedNode::Cache(c), CachedTimer::Herd(_)) => {
                let key = c.config.herd_key.clone().into_bytes();
                c.cache.delete(&key, io.now());
                c.counters.herd_expiries += 1;
                io.event("herd-expiry", serde_json::json!({ "key": c.config.herd_key }));
            }
            _ => {}
        }
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: KvRequest) {
        match self {
            CachedNode::Db(db) => {
                match &req {
                    RaftRequest::Read { .. } => db.counters.client_reads += 1,
                    RaftRequest::Propose { .. } => db.counters.writes += 1,
                    RaftRequest::Admin(_) => {}
                }
                db.lift(io, |raft, inner| raft.on_request(inner, request, req));
            }
            CachedNode::Cache(c) => match req {
                RaftRequest::Read { query: Query::Get { key }, .. } => c.serve(io, request, key),
                // Writes and other reads belong to the database: send the client there.
                _ => io.reply(request, RaftResponse::NotLeader { hint: Some(c.leader) }),
            },
        }
    }

    fn role(&self) -> Option<&'static str> {
        match self {
            CachedNode::Db(db) => db.raft.role(),
            CachedNode::Cache(_) => Some("cache"),
        }
    }

    fn inspect(&self) -> serde_json::Value {
        match self {
            CachedNode::Db(db) => db.raft.inspect(),
            CachedNode::Cache(c) => serde_json::json!({
                "in_sync": c.in_sync,
                "generation": c.generation,
                "entries": c.cache.store().len(),
                "counters": c.counters,
            }),
        }
    }
}

impl Service for CachedNode {
    fn request(client: ClientId, seq: u64, op: &Op) -> KvRequest {
        <RaftKv as Service>::request(client, seq, op)
    }

    fn completion(op: &Op, response: &KvResponse) -> concord_core::Completion {
        <RaftKv as Service>::completion(op, response)
    }

    fn witness(op: &Op, response: &KvResponse) -> Option<u64> {
        <RaftKv as Service>::witness(op, response)
    }
}

/// Raft's safety over the database replicas (cache nodes hold no log).
struct CachedInvariants(SafetyMonitor);

impl Invariant<CachedNode> for CachedInvariants {
    fn check(
        &mut self,
        _now: Time,
        nodes: &[(NodeId, Option<&CachedNode>)],
    ) -> Result<(), InvariantViolation> {
        let dbs: Vec<(NodeId, Option<&RaftKv>)> = nodes
            .iter()
            .filter(|(_, n)| !matches!(n, Some(CachedNode::Cache(_))))
            .map(|&(id, n)| (id, n.and_then(CachedNode::as_db).map(DbNode::raft)))
            .collect();
        self.0.check(&dbs).map_err(|e| InvariantViolation(e.to_string()))
    }
}

impl SimProtocol for CachedNode {
    type Config = CachedScenario;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &CachedScenario,
        durable: &Durable,
    ) -> Result<Self, String> {
        let expected = u64::from(config.databases) + u64::from(config.caches);
        if cluster.len() as u64 != expected {
            return Err(format!(
                "[protocol.cached] has {} databases and {} caches, so run.nodes must be {expected} (is {})",
                config.databases,
                config.caches,
                cluster.len()
            ));
        }
        if id.0 <= config.databases {
            let mut raft = config.raft.clone();
            raft.voters = config.database_ids();
            let mut store = KvStore::new(config.kv.clone());
            store.record_changes(concord_kv::DEFAULT_CHANGE_LIMIT);
            let raft = concord_raft::RaftNode::boot(id, raft, store, durable).map_err(|e| e.to_string())?;
            Ok(CachedNode::Db(Box::new(DbNode {
                raft,
                caches: config.cache_ids(),
                invalidation: config.invalidation,
                beat: config.stream_beat,
                epoch: 0,
                seq: 0,
                fills: BTreeMap::new(),
                next_fill: 0,
                counters: DbCounters::default(),
            })))
        } else {
            let cache = Cache::new(config.cache_config()?).map_err(|e| e.to_string())?;
            let dbs = config.database_ids();
            Ok(CachedNode::Cache(Box::new(CacheNode {
                config: config.clone(),
                leader: dbs[0],
                dbs,
                cache,
                streams: BTreeMap::new(),
                in_sync: false,
                generation: 0,
                next_fill: 0,
                fills: BTreeMap::new(),
                parked: Vec::new(),
                counters: CacheCounters::default(),
            })))
        }
    }

    fn workload_request(_config: &CachedScenario, client: ClientId, seq: u64, op: &Op) -> KvRequest {
        match KvStore::access(op, Time::ZERO) {
            Access::Write(command) => {
                RaftRequest::Propose { session: Some(Session { client, seq }), command }
            }
            Access::Read(query) => RaftRequest::Read { consistency: ReadConsistency::Linearizable, query },
        }
    }

    fn route(config: &CachedScenario, request: RequestId, target: NodeId, op: &Op) -> NodeId {
        let to_database = || {
            if target.0 <= config.databases {
                target
            } else {
                NodeId(1 + target.0 % config.databases)
            }
        };
        match (op.f, &op.key) {
            (OpFn::Read, Some(key)) if !config.is_direct(request.client.0) => config.owner(key.as_bytes()),
            _ => to_database(),
        }
    }

    fn check_history(scenario: &crate::Scenario<CachedScenario>, history: &History) -> Vec<String> {
        check::check_history(scenario, history)
    }

    fn observe(&self) -> Option<ReplicaState> {
        let CachedNode::Db(db) = self else { return None };
        Some(
            db.raft
                .state_machine()
                .iter()
                .map(|kv| {
                    let key = String::from_utf8_lossy(&kv.key).into_owned();
                    let text = String::from_utf8_lossy(&kv.value);
                    let value =
                        text.parse::<i64>().map(Value::Int).unwrap_or_else(|_| Value::Str(text.into_owned()));
                    (key, value)
                })
                .collect(),
        )
    }

    fn invariants(_config: &CachedScenario) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::new(CachedInvariants(SafetyMonitor::default())))
    }
}

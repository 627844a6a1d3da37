//! Where the platform's data lives: the [`SocialStore`] trait and its simulated implementation.
//! (The other implementation, over real `concord up` clusters, is in the `concord` crate –
//! `cmd/lab/social_real.rs`, `concord lab social --real` – since it needs the server's client;
//! it speaks the same Redis commands, and caches replies in the same [`encode`]d form.)
//!
//! The application ([`super::app`]) speaks to storage in four verbs, each chosen for the data it
//! serves:
//!
//! | verb | backed by | why there |
//! |---|---|---|
//! | [`StoreOp::Strong`] | the sharded Raft store (`[protocol.sharded]`) | posts, the follow graph, timelines, notifications: a user must see their own post and follow at once (linearizable per key), and no single machine holds them all (sharded by key) |
//! | [`StoreOp::CachedRead`] | a look-aside cache tier in front of the sharded store | a celebrity's post list is read by every follower's timeline: the hottest key of all, cheap to serve slightly stale |
//! | [`StoreOp::CounterAdd`] | Dynamo-style eventual store, a PN-counter CRDT (`[protocol.dynamo]`, `W = 1`) | likes: always writable, even on the wrong side of a partition; concurrent increments merge, none is lost |
//! | [`StoreOp::CounterGet`] | the same, `R = 1` | a like count a few likes behind is fine |
//! | [`StoreOp::PushMany`] | the sharded Raft store, pipelined | a post's fan-out: one `LPUSH`+`LTRIM` per follower's timeline, grouped by shard, many per request |
//!
//! A strong operation is a list of Redis commands on one key, applied atomically by the key's
//! shard (`LPUSH` then `LTRIM` keeps a timeline bounded): the same commands the Redis door of a
//! real `concord up` cluster accepts.
//!
//! ## The simulated store
//!
//! [`SimStore`] runs two simulated clusters on the same `nodes` machines in lockstep virtual time:
//! the sharded store (a metadata group and `shards` Raft groups of `replicas` each) and the likes
//! store (Dynamo, `n = min(3, nodes)`). A network partition cuts both the same way. The client is
//! a smart client, as a Redis Cluster client is: it hashes the key to its slot, looks the owner up
//! in the shard map, sends to the shard's last known leader, follows "not the leader" hints, and
//! gives an attempt [`ATTEMPT_TIMEOUT_MS`] before it tries another node, the whole operation
//! [`OP_DEADLINE_MS`] before it reports a failure to the user.
//!
//! **What the simulator does not model, and this store adds.** The simulator has no CPU: a node
//! answers any number of requests at once. Throughput would then not depend on the number of
//! machines. So the store charges every request [`SimConfig::service_us`] of the receiving
//! machine's time, one request after another (a FIFO server per machine, shared by both clusters).
//! A machine that receives more requests than it can serve builds a queue; this is what makes a
//! hot shard hot and a single node saturate. A pipelined fan-out request of `k` timeline writes
//! costs `service_us + k × key_us` (the per-request overhead once, then each key's work) and is
//! one Raft proposal: one log entry holding every key's `LPUSH`+`LTRIM` (a `RedisExec` naming all
//! `k` keys; the shard checks it serves each). A Redis client pipelining the same writes to a
//! `concord up` cluster sends `k` single-key `MULTI` `LPUSH` `LTRIM` `EXEC` transactions instead –
//! `k` log entries that the leader's Raft batches into its appends; the model's one entry per
//! request is the cheap end of that.
//!
//! **Snapshots.** Each shard takes a Raft snapshot every 10 000 applied entries (etcd's old
//! `--snapshot-count`), not the simulator's default 1 000: a snapshot serializes the shard's
//! whole store, 100 000 timelines at full size, and taking one every thousand fan-out writes cost
//! more wall time than the rest of the run (the simulator charges no CPU time for it).
//!
//! The cache tier is modelled in the store itself: one
//! [`concord_cache::Store`] (LRU, byte budget, TTLs) per cache node, keys placed by rendezvous
//! hashing over the live cache nodes, a hit answered after one client round trip.

use super::model::UserId;
use concord_cache::{InsertOptions, Placement, PlacementKind, Store, StoreConfig};
use concord_core::{NodeId, RequestId, Time};
use concord_dynamo::{DynamoConfig, DynamoNode, DynamoRequest, DynamoResponse};
use concord_kv::redis::{RedisCall, RedisExec, Reply as RedisReply};
use concord_kv::{Command, Query, Response, Write};
use concord_raft::{RaftRequest, RaftResponse, ReadConsistency};
use concord_shard::{key_slot, ShardCommand, ShardQuery, ShardResponse, ShardedNode};
use concord_sim::protocols::sharded::ShardedScenario;
use concord_sim::{RunOptions, Scenario, Simulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// How long the client waits for one attempt before it tries another node.
pub const ATTEMPT_TIMEOUT_MS: f64 = 300.0;
/// How long the client keeps trying before the user sees an error.
pub const OP_DEADLINE_MS: f64 = 1_500.0;
/// The client's pause before it retries after "no leader known" or a slot in motion.
const RETRY_PAUSE_MS: f64 = 10.0;
/// How long the client avoids a node after an attempt to it timed out (a crashed node never
/// answers; without this, stale leader hints send requests back to it again and again).
const SUSPECT_MS: f64 = 1_000.0;
/// One-way delay between the client and a cache node (a cache hit costs two of these).
const CACHE_ONE_WAY_MS: f64 = 0.25;

/// One storage operation of the application.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp {
    /// Redis commands on one key (the first key of the first command), applied atomically by
    /// the key's shard. Reads: `LRANGE`, `SMEMBERS`, `GET`, `LLEN`, `SCARD`.
    Strong(Vec<Vec<String>>),
    /// A read of the strong store through the cache tier (look-aside): served from the key's
    /// cache node if it holds a fresh copy, else read from the shard and installed for `ttl_ms`.
    CachedRead { argv: Vec<String>, ttl_ms: u64 },
    /// Add `delta` to the counter `key` (eventual store, acknowledged by one replica).
    CounterAdd { key: String, delta: i64 },
    /// Read the counter `key` (one replica's view).
    CounterGet { key: String },
    /// A fan-out: `LPUSH key item` then `LTRIM key 0 keep-1` on every key of `keys` (each atomic
    /// on its key; no atomicity across keys). The store groups the keys by shard and sends each
    /// group, at most `per_request` keys at a time, as one pipelined request to the shard's
    /// leader – what a fan-out service does with a Redis Cluster client (one pipeline per node).
    /// Answers [`Reply::Int`] with the number of keys written; an error only if none was.
    PushMany { keys: Vec<String>, item: String, keep: usize, per_request: usize },
}

impl StoreOp {
    /// The key the operation is routed by.
    pub fn key(&self) -> &str {
        match self {
            StoreOp::Strong(calls) => calls.first().and_then(|c| c.get(1)).map_or("", String::as_str),
            StoreOp::CachedRead { argv, .. } => argv.get(1).map_or("", String::as_str),
            StoreOp::CounterAdd { key, .. } | StoreOp::CounterGet { key } => key,
            StoreOp::PushMany { keys, .. } => keys.first().map_or("", String::as_str),
        }
    }
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    List(Vec<String>),
}

/// A finished operation.
#[derive(Clone, Debug)]
pub struct Done {
    pub id: u64,
    pub reply: Result<Reply, String>,
    pub sent_ms: f64,
    pub done_ms: f64,
    /// The shard of a strong operation's key (reads through the cache too).
    pub shard: Option<u32>,
    /// A cached read: whether the cache answered.
    pub cache_hit: Option<bool>,
}

/// The application's view of storage. Operations are submitted at the current time; `advance`
/// moves time on and hands back every operation that finished meanwhile.
pub trait SocialStore {
    /// The current time (ms since the start of the run).
    fn now_ms(&self) -> f64;
    /// Start `op` on behalf of `user` (the user's session picks the node it talks to in the
    /// eventual store). Returns the operation's id.
    fn submit(&mut self, user: UserId, op: StoreOp) -> u64;
    /// Move time to `until_ms`; the operations that finished meanwhile, in order of finishing.
    fn advance(&mut self, until_ms: f64) -> Vec<Done>;
}

/// The simulated deployment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimConfig {
    pub nodes: u32,
    pub shards: u32,
    pub replicas: usize,
    /// Cache nodes (0: no cache tier; cached reads go to the shards).
    pub cache_nodes: u32,
    /// Each cache node's memory.
    pub cache_bytes: u64,
    /// A machine's time per request it serves (µs).
    pub service_us: f64,
    /// A pipelined request's extra time per key it carries (µs): a fan-out request of `k` keys
    /// costs `service_us + k × key_us`.
    pub key_us: f64,
    /// One-way network delay between machines and to clients (ms).
    pub one_way_ms: f64,
    pub disk_sync_ms: f64,
    pub seed: u64,
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > 64 {
            return Err(format!("nodes = {}: between 1 and 64", self.nodes));
        }
        if self.shards == 0 || self.shards > 64 {
            return Err(format!("shards = {}: between 1 and 64", self.shards));
        }
        if self.replicas == 0 || self.replicas > self.nodes as usize {
            return Err(format!("replicas = {}: between 1 and the nodes ({})", self.replicas, self.nodes));
        }
        Ok(())
    }
}

/// Which cluster a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cluster {
    Strong,
    Likes,
}

/// An operation in flight.
struct Pending {
    user: UserId,
    op: StoreOp,
    sent: Time,
    deadline: Time,
    shard: Option<u32>,
    /// A cached read that missed: install the answer in the cache.
    fill: Option<(u32, u64)>,
    /// The current attempt's timeout, and the node it went to.
    attempt_until: Time,
    node: NodeId,
    /// A part of a [`StoreOp::PushMany`]: the whole operation's id.
    parent: Option<u64>,
}

/// A [`StoreOp::PushMany`] in flight: its parts (one request each) not finished yet.
struct Batch {
    sent: Time,
    parts_left: usize,
    written: i64,
    error: Option<String>,
}

/// A request waiting for its machine's CPU (or a retry pause).
struct Deferred {
    op: u64,
    cluster: Cluster,
    node: NodeId,
}

pub struct SimStore {
    config: SimConfig,
    strong: Simulation<ShardedNode>,
    likes: Simulation<DynamoNode>,
    now: Time,
    next_op: u64,
    pending: BTreeMap<u64, Pending>,
    /// Requests in the simulators → their operation.
    requests: BTreeMap<(Cluster, RequestId), u64>,
    deferred: BTreeMap<(Time, u64), Deferred>,
    next_deferred: u64,
    /// Every attempt timeout and deadline set, by time: `check_timeouts` looks only at the due
    /// ones instead of every operation in flight (a fan-out puts thousands in flight). An entry
    /// may be stale (the attempt was answered or retried since); it is then dropped.
    timers: std::collections::BTreeSet<(Time, u64)>,
    batches: BTreeMap<u64, Batch>,
    /// When each machine's CPU is free again.
    cpu_free: Vec<Time>,
    leaders: BTreeMap<u32, NodeId>,
    /// Until when the client avoids each node (an attempt to it timed out).
    suspect_until: Vec<Time>,
    caches: Vec<Option<Store>>,
    placement: Option<Box<dyn Placement>>,
    /// Finished operations not yet handed out (cache hits finish in the future).
    finished: BTreeMap<(Time, u64), Done>,
    rng: ChaCha8Rng,
    /// Requests each machine served, and each shard.
    pub served_per_node: Vec<u64>,
    pub requests_per_shard: BTreeMap<u32, u64>,
    /// Keys each shard's requests touched: one for a request on one key, a fan-out part's keys
    /// for the part (what a shard leader's CPU and log work on; a pipelined part is one request).
    pub keys_per_shard: BTreeMap<u32, u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

fn ms(t: Time) -> f64 {
    t.0 as f64 / 1e6
}

fn at_ms(v: f64) -> Time {
    Time((v * 1e6).round().max(0.0) as u64)
}

fn dur(v_ms: f64) -> std::time::Duration {
    std::time::Duration::from_nanos((v_ms * 1e6).round().max(0.0) as u64)
}

fn us(v_ms: f64) -> String {
    format!("{}us", (v_ms * 1e3).round().max(1.0) as u64)
}

/// The scenario text shared by both clusters (no workload: the application is the client).
fn scenario_head(config: &SimConfig, description: &str) -> String {
    let lat = config.one_way_ms;
    format!(
        "description = \"{description}\"\n[run]\nnodes = {}\nduration = \"100000s\"\nchecks = []\n\
         [network]\nfifo = true\nlatency = {{ dist = \"uniform\", min = \"{}\", max = \"{}\" }}\n\
         [disk]\nsync_latency = {{ dist = \"constant\", value = \"{}\" }}\n",
        config.nodes,
        us(lat * 0.8),
        us(lat * 1.2),
        us(config.disk_sync_ms)
    )
}

impl SimStore {
    pub fn new(config: SimConfig) -> Result<SimStore, String> {
        config.validate()?;
        let strong_text = format!(
            "{}[protocol.sharded]\nshards = {}\nreplicas = {}\n\
             raft = {{ election_timeout_min = \"150ms\", election_timeout_max = \"300ms\", heartbeat_interval = \"50ms\", \
             snapshot_threshold_entries = 10000 }}\n",
            scenario_head(&config, "concord lab social: the sharded store"),
            config.shards,
            config.replicas
        );
        let strong: Scenario<ShardedScenario> =
            Scenario::parse(Path::new("social-strong.toml"), &strong_text).map_err(|e| e.to_string())?;
        strong.protocol().1.validate()?;
        let n = (config.nodes as usize).min(3);
        let likes_text = format!(
            "{}[protocol.dynamo]\nn = {n}\nr = 1\nw = 1\nanti_entropy = true\nread_repair = true\n",
            scenario_head(&config, "concord lab social: the likes store"),
        );
        let likes: Scenario<DynamoConfig> =
            Scenario::parse(Path::new("social-likes.toml"), &likes_text).map_err(|e| e.to_string())?;
        let mut strong =
            Simulation::new(Arc::new(strong), RunOptions { seed: config.seed, ..Default::default() });
        let mut likes =
            Simulation::new(Arc::new(likes), RunOptions { seed: config.seed ^ 0x5eed, ..Default::default() });
        strong.start();
        likes.start();
        let caches: Vec<Option<Store>> = (0..config.cache_nodes)
            .map(|_| {
                Store::new(StoreConfig {
                    budget_bytes: config.cache_bytes,
                    item_limit_bytes: (config.cache_bytes / 4).max(4096),
                    ..Default::default()
                })
                .map(Some)
                .map_err(|e| format!("cache: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let mut store = SimStore {
            cpu_free: vec![Time::ZERO; config.nodes as usize],
            suspect_until: vec![Time::ZERO; config.nodes as usize],
            served_per_node: vec![0; config.nodes as usize],
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0xc11e),
            config,
            strong,
            likes,
            now: Time::ZERO,
            next_op: 0,
            pending: BTreeMap::new(),
            requests: BTreeMap::new(),
            deferred: BTreeMap::new(),
            next_deferred: 0,
            timers: std::collections::BTreeSet::new(),
            batches: BTreeMap::new(),
            leaders: BTreeMap::new(),
            caches,
            placement: None,
            finished: BTreeMap::new(),
            requests_per_shard: BTreeMap::new(),
            keys_per_shard: BTreeMap::new(),
            cache_hits: 0,
            cache_misses: 0,
        };
        store.place_caches();
        Ok(store)
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Let the clusters elect their leaders and bootstrap the shard map (no requests yet).
    pub fn warm_up(&mut self, for_ms: f64) {
        let until = self.now_ms() + for_ms;
        self.advance(until);
    }

    fn place_caches(&mut self) {
        let live: Vec<NodeId> = (0..self.caches.len())
            .filter(|&i| self.caches[i].is_some())
            .map(|i| NodeId(i as u32 + 1))
            .collect();
        self.placement = (!live.is_empty()).then(|| PlacementKind::Rendezvous.build(&live));
    }

    /// The cache node holding `key`, if there is a live one.
    fn cache_for(&self, key: &str) -> Option<u32> {
        self.placement.as_ref().map(|p| p.node_for(key.as_bytes()).0 - 1)
    }

    /// The shard that owns `key`, per the first live node's shard map.
    pub fn shard_of(&self, key: &str) -> Option<u32> {
        let slot = key_slot(key.as_bytes());
        self.strong.nodes().into_iter().filter_map(|(_, n)| n).find_map(|n| n.map().owner(slot)).map(|s| s.0)
    }

    /// The voters of `shard`, per the first live node's shard map.
    fn voters_of(&self, shard: u32) -> Vec<NodeId> {
        self.strong
            .nodes()
            .into_iter()
            .filter_map(|(_, n)| n)
            .find_map(|n| n.map().shard(concord_shard::ShardId(shard)).map(|s| s.voters.clone()))
            .unwrap_or_default()
    }

    /// A replica of `shard` other than `except`, not suspected if there is one (any node if the
    /// map is not known yet). A replica that does not lead answers with a hint; a node without a
    /// replica would forward the request and relay the answer – hiding which node leads.
    fn random_replica(&mut self, shard: Option<u32>, except: Option<NodeId>) -> NodeId {
        let voters = shard.map(|s| self.voters_of(s)).unwrap_or_default();
        let candidates: Vec<NodeId> = voters.into_iter().filter(|&id| Some(id) != except).collect();
        let trusted: Vec<NodeId> = candidates.iter().copied().filter(|&id| !self.suspected(id)).collect();
        let pool = if trusted.is_empty() { candidates } else { trusted };
        if pool.is_empty() {
            return self.random_node(except);
        }
        pool[self.rng.gen_range(0..pool.len())]
    }

    /// The node leading `shard` now (a live replica that believes it leads), if any.
    pub fn leader_of(&self, shard: u32) -> Option<NodeId> {
        self.strong
            .nodes()
            .into_iter()
            .find_map(|(id, n)| n?.shards().any(|(s, raft)| s.0 == shard && raft.is_leader()).then_some(id))
    }

    /// The shards whose leader is on `node`.
    pub fn shards_led_by(&self, node: NodeId) -> Vec<u32> {
        let Some(n) = self.strong.node(node) else { return Vec::new() };
        n.shards().filter(|(_, raft)| raft.is_leader()).map(|(s, _)| s.0).collect()
    }

    /// Crash machine `node` (both clusters).
    pub fn crash(&mut self, node: NodeId) {
        self.strong.crash(node);
        self.likes.crash(node);
    }

    /// Restart machine `node` from its disk (both clusters).
    pub fn restart(&mut self, node: NodeId) {
        self.strong.restart(node);
        self.likes.restart(node);
    }

    /// Split the machines into groups that cannot talk to each other (both clusters).
    pub fn partition(&mut self, groups: &[Vec<u32>]) {
        self.strong.partition(groups);
        self.likes.partition(groups);
    }

    pub fn heal(&mut self) {
        self.strong.heal();
        self.likes.heal();
    }

    /// Cache node `i` (0-based) dies: its memory is gone, its keys move to the others.
    pub fn kill_cache_node(&mut self, i: u32) {
        if let Some(slot) = self.caches.get_mut(i as usize) {
            *slot = None;
        }
        self.place_caches();
    }

    /// The value of counter `key` on each live likes replica that holds it (node, value).
    pub fn counter_on_replicas(&self, key: &str) -> Vec<(u32, i64)> {
        self.likes
            .nodes()
            .into_iter()
            .filter_map(|(id, n)| {
                let n = n?;
                match n.store().get(key)? {
                    concord_dynamo::store::Object::Counter(c) => Some((id.0, c.value())),
                    _ => None,
                }
            })
            .collect()
    }

    // ----- requests ---------------------------------------------------------------------------

    /// Queue a request for `node`'s CPU: it is sent when the machine is free (FIFO), after `pause`
    /// (a [`StoreOp::PushMany`] part after its per-key work too).
    fn enqueue(&mut self, op: u64, cluster: Cluster, node: NodeId, pause_ms: f64) {
        let i = node.0 as usize - 1;
        let keys = match self.pending.get(&op).map(|p| &p.op) {
            Some(StoreOp::PushMany { keys, .. }) => keys.len() as f64,
            _ => 0.0,
        };
        let ready = at_ms(self.now_ms() + pause_ms).max(self.cpu_free[i]);
        self.cpu_free[i] = ready + dur((self.config.service_us + keys * self.config.key_us) / 1e3);
        self.served_per_node[i] += 1;
        // A pipelined request is proposed once the machine has read and encoded its keys: its
        // per-key work delays it as well as the requests queued behind it.
        let sent = ready + dur(keys * self.config.key_us / 1e3);
        self.deferred.insert((sent, self.next_deferred), Deferred { op, cluster, node });
        self.next_deferred += 1;
    }

    fn suspected(&self, node: NodeId) -> bool {
        self.suspect_until[node.0 as usize - 1] > self.now
    }

    /// A node other than `except`, not suspected if there is one.
    fn random_node(&mut self, except: Option<NodeId>) -> NodeId {
        let n = self.config.nodes;
        let candidates: Vec<NodeId> = (1..=n).map(NodeId).filter(|&id| Some(id) != except).collect();
        let trusted: Vec<NodeId> = candidates.iter().copied().filter(|&id| !self.suspected(id)).collect();
        let pool = if !trusted.is_empty() {
            trusted
        } else if !candidates.is_empty() {
            candidates
        } else {
            return NodeId(1);
        };
        pool[self.rng.gen_range(0..pool.len())]
    }

    /// Where a strong operation on `shard` goes first: its leader as the client last learned it,
    /// else as a live replica names it (what `CLUSTER SLOTS` tells a Redis Cluster client; the
    /// lookup is not charged as a request), else a random replica.
    ///
    /// Why not remember whichever node answered: a replica that does not lead forwards the
    /// request to its leader and relays the answer, so the answering node says nothing about who
    /// leads – and a client that remembered it would send to that node's crash.
    fn strong_target(&mut self, shard: Option<u32>) -> NodeId {
        let Some(s) = shard else { return self.random_node(None) };
        if let Some(&node) = self.leaders.get(&s) {
            if !self.suspected(node) {
                return node;
            }
        }
        let named = self.voters_of(s).into_iter().filter(|&v| !self.suspected(v)).find_map(|v| {
            let leader = self.strong.node(v)?.known_leader(concord_shard::GroupId(s))?;
            (!self.suspected(leader)).then_some(leader)
        });
        match named {
            Some(leader) => {
                self.leaders.insert(s, leader);
                leader
            }
            None => self.random_replica(shard, None),
        }
    }

    fn send_now(&mut self, d: Deferred) {
        let Some(p) = self.pending.get_mut(&d.op) else { return };
        p.node = d.node;
        p.attempt_until = self.now + dur(ATTEMPT_TIMEOUT_MS);
        self.timers.insert((p.attempt_until, d.op));
        let request = match d.cluster {
            Cluster::Strong => {
                let calls = match &p.op {
                    StoreOp::Strong(calls) => calls.clone(),
                    StoreOp::CachedRead { argv, .. } => vec![argv.clone()],
                    StoreOp::PushMany { keys, item, keep, .. } => keys
                        .iter()
                        .flat_map(|key| match push_calls(key, item, *keep) {
                            StoreOp::Strong(calls) => calls,
                            _ => unreachable!("push_calls is strong"),
                        })
                        .collect(),
                    _ => unreachable!("a strong request"),
                };
                let req = strong_request(&calls, self.strong.now());
                self.strong.submit(d.node, req)
            }
            Cluster::Likes => {
                let req = match &p.op {
                    StoreOp::CounterAdd { key, delta } => {
                        DynamoRequest::Increment { key: key.clone(), delta: *delta, w: Some(1) }
                    }
                    StoreOp::CounterGet { key } => DynamoRequest::Get { key: key.clone(), r: Some(1) },
                    _ => unreachable!("a likes request"),
                };
                self.likes.submit(d.node, req)
            }
        };
        self.requests.insert((d.cluster, request), d.op);
    }

    fn finish(&mut self, id: u64, at: Time, reply: Result<Reply, String>, cache_hit: Option<bool>) {
        let Some(p) = self.pending.remove(&id) else { return };
        if let Some(parent) = p.parent {
            let Some(b) = self.batches.get_mut(&parent) else { return };
            b.parts_left -= 1;
            match reply {
                Ok(Reply::Int(n)) => b.written += n,
                Ok(_) => {}
                Err(e) => {
                    b.error.get_or_insert(e);
                }
            }
            if b.parts_left == 0 {
                let b = self.batches.remove(&parent).expect("present");
                let reply = match (b.written, b.error) {
                    (0, Some(e)) => Err(e),
                    (n, _) => Ok(Reply::Int(n)),
                };
                let done = Done {
                    id: parent,
                    reply,
                    sent_ms: ms(b.sent),
                    done_ms: ms(at),
                    shard: None,
                    cache_hit: None,
                };
                self.finished.insert((at, parent), done);
            }
            return;
        }
        if let (Ok(reply), Some((cache, ttl_ms))) = (&reply, p.fill) {
            self.fill_cache(cache, p.op.key(), reply, ttl_ms, at);
        }
        let done = Done {
            id,
            reply,
            sent_ms: ms(p.sent),
            done_ms: ms(at),
            shard: p.shard,
            cache_hit: cache_hit.or(p.fill.map(|_| false)),
        };
        self.finished.insert((at, id), done);
    }

    fn fill_cache(&mut self, cache: u32, key: &str, reply: &Reply, ttl_ms: u64, now: Time) {
        let Some(Some(store)) = self.caches.get_mut(cache as usize) else { return };
        let bytes = encode(reply);
        let options = InsertOptions { expires_at: Some(now + dur(ttl_ms as f64)), ..Default::default() };
        // Too large for the cache: it simply is not cached.
        let _ = store.insert(key.as_bytes().to_vec(), bytes, options);
    }

    fn on_strong_answer(
        &mut self,
        request: RequestId,
        node: NodeId,
        response: RaftResponse<concord_shard::ShardResult>,
        at: Time,
    ) {
        let Some(id) = self.requests.remove(&(Cluster::Strong, request)) else { return };
        let Some(p) = self.pending.get(&id) else { return };
        if p.node != node {
            return; // an answer to an attempt the client already gave up on
        }
        let shard = p.shard;
        let many = matches!(p.op, StoreOp::PushMany { .. });
        match response {
            RaftResponse::Output(Ok(ShardResponse::Kv(Response::Redis {
                replies: Some(replies), ..
            }))) => {
                let reply = if many {
                    // Two replies per key (LPUSH, LTRIM): a key is written if its LPUSH was.
                    let written =
                        replies.iter().step_by(2).filter(|r| !matches!(r, RedisReply::Error(_))).count();
                    Ok(Reply::Int(written as i64))
                } else {
                    replies.into_iter().next().map(convert).unwrap_or(Ok(Reply::Nil))
                };
                self.finish(id, at, reply, None);
            }
            RaftResponse::Output(Ok(other)) => {
                self.finish(id, at, Err(format!("unexpected answer {other:?}")), None)
            }
            RaftResponse::Output(Err(concord_shard::ShardError::NotServing { .. })) => {
                // A slot in motion, or a stale map: ask again shortly.
                let node = self.random_replica(shard, Some(node));
                self.enqueue(id, Cluster::Strong, node, RETRY_PAUSE_MS);
            }
            RaftResponse::Output(Err(e)) => self.finish(id, at, Err(e.to_string()), None),
            RaftResponse::NotLeader { hint } => {
                let (next, pause) = match hint {
                    Some(h) if h != node && !self.suspected(h) => (h, 0.0),
                    _ => (self.random_replica(shard, Some(node)), RETRY_PAUSE_MS),
                };
                if let Some(s) = shard {
                    self.leaders.insert(s, next);
                }
                self.enqueue(id, Cluster::Strong, next, pause);
            }
            RaftResponse::Unknown { reason } | RaftResponse::Rejected { reason } => {
                self.finish(id, at, Err(reason), None)
            }
            other => self.finish(id, at, Err(format!("unexpected answer {other:?}")), None),
        }
    }

    fn on_likes_answer(&mut self, request: RequestId, node: NodeId, response: DynamoResponse, at: Time) {
        let Some(id) = self.requests.remove(&(Cluster::Likes, request)) else { return };
        if self.pending.get(&id).is_none_or(|p| p.node != node) {
            return;
        }
        let reply = match response {
            DynamoResponse::Written { .. } => Ok(Reply::Nil),
            DynamoResponse::Found { counter: Some(c), .. } => Ok(Reply::Int(c)),
            DynamoResponse::Found { .. } => Ok(Reply::Int(0)),
            DynamoResponse::Fail(e) | DynamoResponse::Unknown(e) => Err(e),
            other => Err(format!("unexpected answer {other:?}")),
        };
        self.finish(id, at, reply, None);
    }

    /// Attempts past their timeout try another node; operations past their deadline fail.
    fn check_timeouts(&mut self) {
        let now = self.now;
        // The due timers' operations that are late indeed, in the order of their ids.
        let mut due = std::collections::BTreeSet::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.insert(id);
        }
        let late: Vec<(u64, bool)> = due
            .into_iter()
            .filter_map(|id| self.pending.get(&id).map(|p| (id, p)))
            .filter(|(_, p)| p.attempt_until <= now || p.deadline <= now)
            .map(|(id, p)| (id, p.deadline <= now))
            .collect();
        for (id, expired) in late {
            if expired {
                self.finish(id, now, Err("timed out".into()), None);
                continue;
            }
            let p = self.pending.get_mut(&id).expect("listed above");
            // Not sent yet (waiting for a CPU): the attempt has not started.
            p.attempt_until = Time(u64::MAX);
            let (cluster, shard, old) = match p.op {
                StoreOp::CounterAdd { .. } | StoreOp::CounterGet { .. } => (Cluster::Likes, None, p.node),
                _ => (Cluster::Strong, p.shard, p.node),
            };
            if let Some(s) = shard {
                self.leaders.remove(&s);
            }
            self.suspect_until[old.0 as usize - 1] = now + dur(SUSPECT_MS);
            let next = match cluster {
                Cluster::Strong => self.random_replica(shard, Some(old)),
                Cluster::Likes => self.random_node(Some(old)),
            };
            self.enqueue(id, cluster, next, 0.0);
        }
    }
}

impl SocialStore for SimStore {
    fn now_ms(&self) -> f64 {
        ms(self.now)
    }

    fn submit(&mut self, user: UserId, op: StoreOp) -> u64 {
        let id = self.next_op;
        self.next_op += 1;
        let now = self.now;
        let deadline = now + dur(OP_DEADLINE_MS);
        self.timers.insert((deadline, id));
        let mut pending = Pending {
            user,
            op: op.clone(),
            sent: now,
            deadline,
            shard: None,
            fill: None,
            attempt_until: Time(u64::MAX),
            node: NodeId(0),
            parent: None,
        };
        match &op {
            StoreOp::PushMany { keys, item, keep, per_request } => {
                // Group the keys by shard (as the client's map says), then send each group in
                // requests of at most `per_request` keys: the parts, each its own operation.
                let mut groups: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
                for key in keys {
                    groups.entry(self.shard_of(key)).or_default().push(key.clone());
                }
                let mut parts = Vec::new();
                for (shard, keys) in groups {
                    for chunk in keys.chunks((*per_request).max(1)) {
                        parts.push((shard, chunk.to_vec()));
                    }
                }
                if parts.is_empty() {
                    self.finished.insert(
                        (now, id),
                        Done {
                            id,
                            reply: Ok(Reply::Int(0)),
                            sent_ms: ms(now),
                            done_ms: ms(now),
                            shard: None,
                            cache_hit: None,
                        },
                    );
                    return id;
                }
                self.batches
                    .insert(id, Batch { sent: now, parts_left: parts.len(), written: 0, error: None });
                for (shard, keys) in parts {
                    let part = self.next_op;
                    self.next_op += 1;
                    self.timers.insert((deadline, part));
                    let n_keys = keys.len() as u64;
                    let op = StoreOp::PushMany {
                        keys,
                        item: item.clone(),
                        keep: *keep,
                        per_request: *per_request,
                    };
                    if let Some(s) = shard {
                        *self.requests_per_shard.entry(s).or_default() += 1;
                        *self.keys_per_shard.entry(s).or_default() += n_keys;
                    }
                    let part_pending = Pending {
                        user,
                        op,
                        sent: now,
                        deadline,
                        shard,
                        fill: None,
                        attempt_until: Time(u64::MAX),
                        node: NodeId(0),
                        parent: Some(id),
                    };
                    self.pending.insert(part, part_pending);
                    let node = self.strong_target(shard);
                    self.enqueue(part, Cluster::Strong, node, 0.0);
                }
            }
            StoreOp::CounterAdd { .. } | StoreOp::CounterGet { .. } => {
                // A user's session sticks to one coordinator, as a load balancer would pin it.
                let node = NodeId(pending.user % self.config.nodes + 1);
                self.pending.insert(id, pending);
                self.enqueue(id, Cluster::Likes, node, 0.0);
            }
            StoreOp::Strong(_) | StoreOp::CachedRead { .. } => {
                let shard = self.shard_of(op.key());
                pending.shard = shard;
                if let Some(s) = shard {
                    *self.requests_per_shard.entry(s).or_default() += 1;
                    *self.keys_per_shard.entry(s).or_default() += 1;
                }
                if let StoreOp::CachedRead { ttl_ms, .. } = &op {
                    if let Some(cache) = self.cache_for(op.key()) {
                        let store = self.caches[cache as usize].as_mut().expect("placed on a live node");
                        if let Some(entry) = store.get(op.key().as_bytes(), now) {
                            let reply = decode(&entry.value);
                            self.cache_hits += 1;
                            // The request counted against the shard above never reached it.
                            if let Some(s) = shard {
                                *self.requests_per_shard.entry(s).or_default() -= 1;
                                *self.keys_per_shard.entry(s).or_default() -= 1;
                            }
                            self.pending.insert(id, pending);
                            self.finish(id, now + dur(2.0 * CACHE_ONE_WAY_MS), Ok(reply), Some(true));
                            return id;
                        }
                        self.cache_misses += 1;
                        pending.fill = Some((cache, *ttl_ms));
                    }
                }
                self.pending.insert(id, pending);
                let node = self.strong_target(shard);
                self.enqueue(id, Cluster::Strong, node, 0.0);
            }
        }
        id
    }

    fn advance(&mut self, until_ms: f64) -> Vec<Done> {
        let until = at_ms(until_ms);
        // Half a millisecond slices: answers are handled, and retries sent, at most this late.
        let slice = dur(0.5);
        while self.now < until {
            let mut next = (self.now + slice).min(until);
            if let Some((&(t, _), _)) = self.deferred.first_key_value() {
                next = next.min(t.max(self.now));
            }
            self.strong.advance_to(next);
            self.likes.advance_to(next);
            self.now = next;
            while let Some(entry) = self.deferred.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let d = entry.remove();
                self.send_now(d);
            }
            for a in self.strong.take_answers() {
                self.on_strong_answer(a.request, a.node, a.response, a.at);
            }
            for a in self.likes.take_answers() {
                self.on_likes_answer(a.request, a.node, a.response, a.at);
            }
            self.check_timeouts();
        }
        let mut out = Vec::new();
        while let Some(entry) = self.finished.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            out.push(entry.remove());
        }
        out
    }
}

/// Whether a Redis command only reads.
fn is_read(name: &str) -> bool {
    matches!(
        name.to_ascii_uppercase().as_str(),
        "GET" | "LRANGE" | "LLEN" | "SMEMBERS" | "SCARD" | "SISMEMBER"
    )
}

/// The sharded store's request for `calls` (all on the first call's key).
fn strong_request(calls: &[Vec<String>], now: Time) -> concord_shard::node::ShardRequest {
    // Every key the calls name (each call's first argument), in order, once: a fan-out part names
    // many keys of one shard, and the shard checks that it serves each.
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in calls {
        let key = c.get(1).map_or("", String::as_str);
        if seen.insert(key) {
            keys.push(key.as_bytes().to_vec());
        }
    }
    let calls: Vec<RedisCall> =
        calls.iter().map(|c| RedisCall::new(c.iter().map(|a| a.clone().into_bytes()).collect())).collect();
    if calls.len() == 1 && calls[0].argv.first().is_some_and(|n| is_read(&String::from_utf8_lossy(n))) {
        let exec = RedisExec { keys, watch: vec![], calls };
        RaftRequest::Read {
            consistency: ReadConsistency::Linearizable,
            query: ShardQuery::Kv(Query::Redis(exec)),
        }
    } else {
        let exec = RedisExec { keys, watch: vec![], calls };
        RaftRequest::Propose {
            session: None,
            command: ShardCommand::Kv(Command::new(now, Write::Redis(exec))),
        }
    }
}

fn convert(reply: RedisReply) -> Result<Reply, String> {
    match reply {
        RedisReply::Nil | RedisReply::NilArray | RedisReply::Ok | RedisReply::Status(_) => Ok(Reply::Nil),
        RedisReply::Int(i) => Ok(Reply::Int(i)),
        RedisReply::Bulk(b) => Ok(Reply::List(vec![String::from_utf8_lossy(&b).into_owned()])),
        RedisReply::Array(items) | RedisReply::Set(items) => Ok(Reply::List(
            items
                .into_iter()
                .filter_map(|r| match r {
                    RedisReply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    RedisReply::Int(i) => Some(i.to_string()),
                    _ => None,
                })
                .collect(),
        )),
        RedisReply::Error(e) => Err(e),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// A reply as cache bytes: `i:<n>`, `n:`, or `l:` and the items joined by `,` (items are ids).
pub fn encode(reply: &Reply) -> Vec<u8> {
    match reply {
        Reply::Nil => b"n:".to_vec(),
        Reply::Int(i) => format!("i:{i}").into_bytes(),
        Reply::List(items) => format!("l:{}", items.join(",")).into_bytes(),
    }
}

/// The reply [`encode`] cached.
pub fn decode(bytes: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    match text.split_at(2) {
        ("i:", n) => n.parse().map(Reply::Int).unwrap_or(Reply::Nil),
        ("l:", "") => Reply::List(Vec::new()),
        ("l:", items) => Reply::List(items.split(',').map(str::to_string).collect()),
        _ => Reply::Nil,
    }
}

/// `LPUSH key item` then `LTRIM key 0 keep-1`: one atomic step on the key's shard.
pub fn push_calls(key: &str, item: &str, keep: usize) -> StoreOp {
    StoreOp::Strong(vec![
        vec!["LPUSH".into(), key.to_string(), item.to_string()],
        vec!["LTRIM".into(), key.to_string(), "0".into(), (keep.max(1) - 1).to_string()],
    ])
}

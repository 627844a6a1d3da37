//! # Lab 1 – a distributed social platform on Concord (`concord lab social`)
//!
//! The fundamentals lecture asks what makes a social-media platform *distributed*, what that costs
//! and what it buys. This lab builds a small one – users, follows, posts, home timelines, likes,
//! notifications – on Concord's deterministic simulator, and measures it (and, smaller, on real
//! local clusters: [`live`]).
//!
//! ## The distributed components, and where the code is
//!
//! | component | what it is here | module |
//! |---|---|---|
//! | sharded strong store | posts, graph, timelines, notifications: `shards` Raft groups of `replicas`, keys hashed to 16 384 slots | [`store`] (`ShardedNode` in the simulator) |
//! | replication and failover | each shard a Raft group; a crashed leader is replaced by election | the same |
//! | eventual store with CRDTs | like counters: Dynamo-style, PN-counters, `W = R = 1` | [`store`] (`DynamoNode`) |
//! | fan-out service | pushes each post into its followers' timelines (hybrid: not for celebrities), grouped by shard and pipelined, `fanout_batch` writes per request | [`app`], [`store`] (`StoreOp::PushMany`) |
//! | cache tier | look-aside cache nodes in front of the celebrities' post lists | [`store`] (`concord_cache::Store` per node) |
//! | smart client / router | slot → shard → leader, redirects, timeouts, retries | [`store`] |
//! | the users | 100 000 of them, a power-law follow graph, a diurnal day | [`model`] |
//!
//! ## The experiments (one simulated run each, same seed)
//!
//! 1. **baseline** – the hybrid design under a diurnal day: latency per action, load per shard
//!    and per machine, the cache's hit ratio, timelines that missed a post.
//! 2. **push-all** – the same with every account fanned out on write: the most followed account
//!    posts at a quarter of the run; its fan-out's writes and duration, and what it does to
//!    everyone else's latency (the hot shards), against the hybrid. At full size that post is
//!    ~85 000 timeline writes: pipelined ([`SocialOptions::fanout_batch`] per request, grouped by
//!    shard) it is a few hundred requests; one request per write (`fanout_batch = 1`) makes it
//!    85 000 requests and Raft entries, and the run many times slower.
//! 3. **leader crash** – the leader of one shard crashes at a third of the run and comes back at
//!    two thirds: each shard's unavailable window, what users saw.
//! 4. **partition** – machines {1, 2} are cut off from the rest: like counts diverge between
//!    replicas, every like is still accepted, and after the heal the counters converge to the
//!    number of likes given (a CRDT merge, not last-writer-wins).
//! 5. **cache node dies** – at half time: the hit ratio drops, the shards take the misses.
//! 6. **single node** – the same app on one machine (one shard, one replica): throughput under
//!    the same overload as the sharded deployment, and a crash of that machine.
//!
//! Cross-shard operations (a follow writes `following:{u}` and `followers:{v}`, usually on two
//! shards, without a transaction) are counted in every run: how many, how much slower, and how many
//! were left half-done by a fault.
//!
//! ## On a real cluster
//! The run loop ([`run_on`]) drives any [`LabStore`]. `concord lab social --real` (the `concord`
//! crate, `cmd/lab/social_real.rs`) implements it over real `concord up` clusters it starts – a
//! sharded one with a cache tier, an eventual one for the likes, and with `--faults single-node`
//! a one-node one – and runs the baseline there (and, asked, a leader crash, a dead cache node, a
//! partition of the likes cluster, the single node and its crash), smaller and in wall-clock
//! time, with the same app, users and arrival process ([`live`]).
//!
//! ## What is modelled rather than simulated
//! The simulator runs the real Raft, shard and Dynamo code over a simulated network and disk. It
//! has no CPU, so [`store::SimStore`] charges each request a service time at its machine (see
//! there); the cache tier is `concord-cache`'s store driven in place; the 100 000 users are a
//! model ([`model`]) from which requests are drawn, and the initial follow graph is generated, not
//! loaded through the store.

pub mod app;
pub mod live;
pub mod model;
pub mod report;
pub mod store;

use app::{ActionRecord, AppConfig, FanOut, Kind, Social};
use model::{diurnal_rate, UserId, Users};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::Serialize;
use std::collections::BTreeMap;
use store::{SimConfig, SimStore, SocialStore};

pub use report::write_report;

/// The lab's settings.
#[derive(Clone, Debug, Serialize)]
pub struct SocialOptions {
    pub seed: u64,
    pub users: u32,
    /// Accounts each user follows (a range).
    pub following: (u32, u32),
    /// Zipf skew of popularity.
    pub skew: f64,
    /// Virtual seconds per run (one compressed day).
    pub duration_s: f64,
    /// Mean user actions per second, and the diurnal swing around it.
    pub rate_per_s: f64,
    pub swing: f64,
    /// The overload of the throughput comparison, as a multiple of `rate_per_s`.
    pub overload: f64,
    pub nodes: u32,
    pub shards: u32,
    pub replicas: usize,
    pub cache_nodes: u32,
    /// Accounts with more followers than this are merged on read.
    pub fanout_threshold: usize,
    pub cache: bool,
    pub cache_ttl_ms: u64,
    /// The fan-out service's pipeline: timeline writes per request (1: a request per follower).
    pub fanout_batch: usize,
    pub service_us: f64,
    /// A pipelined request's extra service time per key (µs).
    pub key_us: f64,
    pub quick: bool,
}

impl SocialOptions {
    /// The full lab: 100 000 users.
    pub fn full(seed: u64) -> Self {
        SocialOptions {
            seed,
            users: 100_000,
            following: (5, 40),
            skew: 1.0,
            duration_s: 30.0,
            rate_per_s: 300.0,
            swing: 0.6,
            overload: 12.0,
            nodes: 5,
            shards: 4,
            replicas: 3,
            cache_nodes: 3,
            fanout_threshold: 2_000,
            cache: true,
            cache_ttl_ms: 1_000,
            fanout_batch: 500,
            service_us: 150.0,
            key_us: 15.0,
            quick: false,
        }
    }

    /// A small run for tests: seconds, not minutes.
    pub fn quick(seed: u64) -> Self {
        SocialOptions {
            users: 2_000,
            following: (3, 20),
            duration_s: 8.0,
            rate_per_s: 120.0,
            overload: 12.0,
            fanout_threshold: 100,
            service_us: 600.0,
            key_us: 60.0,
            quick: true,
            ..SocialOptions::full(seed)
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.duration_s >= 2.0 && self.duration_s <= 3_600.0) {
            return Err(format!("duration {} s: between 2 and 3600", self.duration_s));
        }
        if !(self.rate_per_s > 0.0 && self.rate_per_s <= 100_000.0) {
            return Err(format!("rate {} actions/s: above 0, at most 100000", self.rate_per_s));
        }
        if !(0.0..1.0).contains(&self.swing) {
            return Err(format!("swing {}: in [0, 1)", self.swing));
        }
        // Two commands per key, and a shard takes at most 16 384 commands in one request.
        if !(1..=8_000).contains(&self.fanout_batch) {
            return Err(format!("fanout batch {}: between 1 and 8000 timeline writes", self.fanout_batch));
        }
        if !(self.key_us >= 0.0 && self.key_us <= self.service_us) {
            return Err(format!(
                "key_us {}: between 0 and the service time {}",
                self.key_us, self.service_us
            ));
        }
        if self.nodes < 3 {
            return Err(format!(
                "nodes = {}: the sharded deployment needs at least 3 machines (the single-node one is built \
                 by the lab)",
                self.nodes
            ));
        }
        self.sim(self.nodes, self.shards, self.replicas).validate()
    }

    fn sim(&self, nodes: u32, shards: u32, replicas: usize) -> SimConfig {
        SimConfig {
            nodes,
            shards,
            replicas,
            cache_nodes: if self.cache { self.cache_nodes } else { 0 },
            cache_bytes: 4 << 20,
            service_us: self.service_us,
            key_us: self.key_us,
            one_way_ms: 0.25,
            disk_sync_ms: 1.0,
            seed: self.seed,
        }
    }

    fn app(&self) -> AppConfig {
        AppConfig {
            fanout_threshold: self.fanout_threshold,
            cache: self.cache,
            cache_ttl_ms: self.cache_ttl_ms,
            fanout_batch: self.fanout_batch,
        }
    }
}

/// A fault during a run, at a time (s since the workload began).
#[derive(Clone, Debug, Serialize)]
pub enum Fault {
    /// Crash the machine leading a shard, preferring one that leads no other shard.
    CrashShardLeader,
    CrashNode(u32),
    /// Restart every machine crashed so far.
    Restart,
    Partition(Vec<Vec<u32>>),
    Heal,
    KillCacheNode(u32),
}

/// One simulated run's plan.
#[derive(Clone, Debug)]
struct RunSpec {
    name: &'static str,
    sim: SimConfig,
    app: AppConfig,
    rate_per_s: f64,
    swing: f64,
    duration_s: f64,
    faults: Vec<(f64, Fault)>,
    /// The most followed account posts at this time.
    celebrity_post_at_s: Option<f64>,
    /// Share of likes that go to the most followed account's newest post.
    hot_like_share: f64,
    /// After the workload and its drain, how long the run goes on (anti-entropy merging counters).
    settle_ms: f64,
}

/// A strong operation's outcome, for per-shard availability.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OpSample {
    pub shard: u32,
    pub sent_ms: f64,
    pub done_ms: f64,
    pub ok: bool,
}

/// What one run recorded (times in ms since the workload began).
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub name: String,
    pub sim: SimConfig,
    pub app: AppConfig,
    pub duration_ms: f64,
    pub faults: Vec<(f64, String)>,
    /// Shards whose leader was on a machine the run crashed (at the crash).
    pub crashed_shards: Vec<u32>,
    pub crashed_nodes: Vec<u32>,
    #[serde(skip)]
    pub records: Vec<ActionRecord>,
    #[serde(skip)]
    pub ops: Vec<OpSample>,
    #[serde(skip)]
    pub fanouts: Vec<FanOut>,
    /// The most followed account, its followers, and its post at `celebrity_post_at_s`.
    pub celebrity: UserId,
    pub celebrity_followers: usize,
    pub celebrity_post: Option<u64>,
    /// The hot like counter's value on each replica over time: (ms, [(node, value)]).
    pub hot_counter: Vec<(f64, Vec<(u32, i64)>)>,
    pub hot_post: Option<u64>,
    pub hot_likes_acked: i64,
    pub hot_likes_unknown: i64,
    /// Likes acknowledged, and of unknown outcome, per post (every post).
    #[serde(skip)]
    pub likes_acked: BTreeMap<u64, i64>,
    #[serde(skip)]
    pub likes_unknown: BTreeMap<u64, i64>,
    pub served_per_node: Vec<u64>,
    pub requests_per_shard: BTreeMap<u32, u64>,
    /// Keys the shards' requests touched ([`LabStore::keys_per_shard`]), and per 250 ms:
    /// (ms, keys per shard in those 250 ms) – a fan-out's burst shows here, not in the requests.
    pub keys_per_shard: BTreeMap<u32, u64>,
    pub shard_keys_timeline: Vec<(f64, BTreeMap<u32, u64>)>,
    /// Cache lookups per 250 ms: (ms, hits, misses).
    pub cache_timeline: Vec<(f64, u64, u64)>,
    pub wall_s: f64,
}

/// Simulated time before the workload starts: elections and the shard map's bootstrap.
const WARM_UP_MS: f64 = 2_000.0;
/// The workload's tick.
const TICK_MS: f64 = 10.0;
/// The run's samples (hot counter, cache, keys per shard): every this many ticks.
const SAMPLE_TICKS: u64 = 25;
/// The samples' period (ms).
pub(crate) const SAMPLE_MS: f64 = SAMPLE_TICKS as f64 * TICK_MS;
/// After the workload stops, how long in-flight actions and fan-outs may take to finish.
const DRAIN_MS: f64 = 6_000.0;
/// After the drain, how long a simulated run goes on (anti-entropy merges the like counters).
const SETTLE_MS: f64 = 3_000.0;

/// Pick a user action by the mix: (timeline 55 %, like 20 %, like count 10 %, post 8 %,
/// follow 4 %, notifications 3 %).
fn draw_kind(rng: &mut ChaCha8Rng) -> Kind {
    let r: f64 = rng.gen();
    match r {
        r if r < 0.55 => Kind::ReadTimeline,
        r if r < 0.75 => Kind::Like,
        r if r < 0.85 => Kind::ReadLikes,
        r if r < 0.93 => Kind::Post,
        r if r < 0.97 => Kind::Follow,
        _ => Kind::ReadNotifications,
    }
}

/// What the run loop needs of a store besides the app's four verbs: its counters for the report,
/// and the faults it can inject. [`SimStore`] has them all; a store over a real cluster
/// (`concord lab social --real`, in the `concord` crate) measures what it can see from the client.
pub trait LabStore: SocialStore {
    /// Cached reads answered by the cache tier, and those that missed.
    fn cache_counts(&self) -> (u64, u64);
    /// Requests each machine served (as far as the store knows; empty if it does not).
    fn served_per_node(&self) -> Vec<u64>;
    /// Strong requests sent per shard (cache hits not counted).
    fn requests_per_shard(&self) -> BTreeMap<u32, u64>;
    /// Keys those requests touched per shard: a request on one key counts one, a pipelined
    /// fan-out part the keys it writes.
    fn keys_per_shard(&self) -> BTreeMap<u32, u64>;
    /// The counter `key` on each replica of the eventual store: (node, value). Empty if the store
    /// cannot see replicas one by one.
    fn counter_on_replicas(&mut self, _key: &str) -> Vec<(u32, i64)> {
        Vec::new()
    }
    /// Inject `fault`; returns what was done, in words (recorded in the run's faults). A store
    /// that cannot inject it says so in the words.
    fn inject(&mut self, fault: &Fault, _result: &mut RunResult) -> String {
        format!("{fault:?}: not injected (this store cannot)")
    }
    /// Heal a partition the run left in place.
    fn heal(&mut self) {}
    /// What the store saw happen by itself since the last call, at its time ([`SocialStore::now_ms`]):
    /// a supervisor starting a killed node again, say. Recorded among the run's faults.
    fn observed(&mut self) -> Vec<(f64, String)> {
        Vec::new()
    }
}

impl LabStore for SimStore {
    fn cache_counts(&self) -> (u64, u64) {
        (self.cache_hits, self.cache_misses)
    }

    fn served_per_node(&self) -> Vec<u64> {
        self.served_per_node.clone()
    }

    fn requests_per_shard(&self) -> BTreeMap<u32, u64> {
        self.requests_per_shard.clone()
    }

    fn keys_per_shard(&self) -> BTreeMap<u32, u64> {
        self.keys_per_shard.clone()
    }

    fn counter_on_replicas(&mut self, key: &str) -> Vec<(u32, i64)> {
        SimStore::counter_on_replicas(self, key)
    }

    fn inject(&mut self, fault: &Fault, result: &mut RunResult) -> String {
        apply_fault(self, fault, result)
    }

    fn heal(&mut self) {
        SimStore::heal(self)
    }
}

fn run_one(spec: &RunSpec, users: &Users) -> anyhow::Result<RunResult> {
    let wall = std::time::Instant::now();
    let mut store = SimStore::new(spec.sim.clone()).map_err(|e| anyhow::anyhow!("{}: {e}", spec.name))?;
    store.warm_up(WARM_UP_MS);
    let mut result = run_on(spec, users, &mut store);
    result.wall_s = wall.elapsed().as_secs_f64();
    Ok(result)
}

/// One run of `spec`'s workload on `store` (warmed up): the same app, users and arrival process
/// whatever the store is.
fn run_on(spec: &RunSpec, users: &Users, store: &mut dyn LabStore) -> RunResult {
    let wall = std::time::Instant::now();
    let t0 = store.now_ms();
    let mut app = Social::new(spec.app.clone(), users.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(spec.sim.seed ^ 0xacc0);
    let top = users.top(10);
    let celebrity = top[0];
    let n_users = users.len();
    let mut faults = spec.faults.clone();
    faults.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut faults = std::collections::VecDeque::from(faults);
    let mut result = RunResult {
        name: spec.name.to_string(),
        sim: spec.sim.clone(),
        app: spec.app.clone(),
        duration_ms: spec.duration_s * 1e3,
        faults: Vec::new(),
        crashed_shards: Vec::new(),
        crashed_nodes: Vec::new(),
        records: Vec::new(),
        ops: Vec::new(),
        fanouts: Vec::new(),
        celebrity,
        celebrity_followers: users.followers[celebrity as usize].len(),
        celebrity_post: None,
        hot_counter: Vec::new(),
        hot_post: None,
        hot_likes_acked: 0,
        hot_likes_unknown: 0,
        likes_acked: BTreeMap::new(),
        likes_unknown: BTreeMap::new(),
        served_per_node: Vec::new(),
        requests_per_shard: BTreeMap::new(),
        keys_per_shard: BTreeMap::new(),
        shard_keys_timeline: Vec::new(),
        cache_timeline: Vec::new(),
        wall_s: 0.0,
    };
    // The celebrity's first post, before the workload: the hot post likes go to.
    let hot = app.post(store, celebrity);
    result.hot_post = Some(hot);
    let mut celebrity_posted = false;
    let (mut last_hits, mut last_misses) = (0, 0);
    let mut last_keys = store.keys_per_shard();
    let end = spec.duration_s * 1e3;
    let mut t = 0.0;
    let mut step = 0u64;
    loop {
        let working = t < end;
        if !working && (app.in_flight() == 0 || t >= end + DRAIN_MS) {
            break;
        }
        while faults.front().is_some_and(|(at, _)| at * 1e3 <= t) {
            let (at, fault) = faults.pop_front().expect("checked");
            let what = store.inject(&fault, &mut result);
            result.faults.push((at * 1e3, what));
        }
        if working {
            if let Some(at) = spec.celebrity_post_at_s {
                if !celebrity_posted && t >= at * 1e3 {
                    result.celebrity_post = Some(app.post(store, celebrity));
                    celebrity_posted = true;
                }
            }
            // The other top accounts post now and then: the merged-on-read lists change.
            if step % 200 == 100 {
                let who = top[1 + (step / 200) as usize % (top.len() - 1)];
                app.post(store, who);
            }
            let rate = diurnal_rate(spec.rate_per_s, spec.swing, t / 1e3, spec.duration_s);
            let n = if rate > 0.0 {
                Poisson::new(rate * TICK_MS / 1e3).map(|p| p.sample(&mut rng)).unwrap_or(0.0)
            } else {
                0.0
            };
            for _ in 0..n as u64 {
                let user = rng.gen_range(0..n_users);
                let kind = draw_kind(&mut rng);
                act(&mut app, store, &mut rng, user, kind, hot, spec.hot_like_share, &top);
            }
        }
        t += TICK_MS;
        step += 1;
        let done = store.advance(t0 + t);
        for d in &done {
            if let (Some(shard), false) = (d.shard, d.cache_hit == Some(true)) {
                result.ops.push(OpSample {
                    shard,
                    sent_ms: d.sent_ms - t0,
                    done_ms: d.done_ms - t0,
                    ok: d.reply.is_ok(),
                });
            }
        }
        app.on_done(store, done);
        if step.is_multiple_of(SAMPLE_TICKS) {
            result.hot_counter.push((t, store.counter_on_replicas(&format!("likes:{hot}"))));
            let (hits, misses) = store.cache_counts();
            result.cache_timeline.push((t, hits - last_hits, misses - last_misses));
            (last_hits, last_misses) = (hits, misses);
            let keys = store.keys_per_shard();
            let delta = keys.iter().map(|(s, n)| (*s, n - last_keys.get(s).copied().unwrap_or(0))).collect();
            result.shard_keys_timeline.push((t, delta));
            last_keys = keys;
        }
    }
    // Heal and restart whatever the run left broken, then let anti-entropy merge the counters.
    if result.faults.iter().any(|(_, f)| f.starts_with("partition"))
        && !result.faults.iter().any(|(_, f)| f == "heal")
    {
        store.heal();
    }
    let settle = store.now_ms() + spec.settle_ms;
    while store.now_ms() < settle {
        let next = store.now_ms() + 250.0;
        let done = store.advance(next);
        app.on_done(store, done);
        result.hot_counter.push((next - t0, store.counter_on_replicas(&format!("likes:{hot}"))));
    }
    result.faults.extend(store.observed().into_iter().map(|(t, what)| (t - t0, what)));
    result.faults.sort_by(|a, b| a.0.total_cmp(&b.0));
    for r in &mut app.records {
        r.start_ms -= t0;
        r.end_ms -= t0;
    }
    result.records = std::mem::take(&mut app.records);
    result.fanouts = app
        .fanouts
        .values()
        .cloned()
        .map(|mut f| {
            f.acked_ms -= t0;
            f.done_ms = f.done_ms.map(|d| d - t0);
            f
        })
        .collect();
    result.hot_likes_acked = app.likes_acked.get(&hot).copied().unwrap_or(0);
    result.hot_likes_unknown = app.likes_unknown.get(&hot).copied().unwrap_or(0);
    result.likes_acked = app.likes_acked.clone();
    result.likes_unknown = app.likes_unknown.clone();
    result.served_per_node = store.served_per_node();
    result.requests_per_shard = store.requests_per_shard();
    result.keys_per_shard = store.keys_per_shard();
    result.wall_s = wall.elapsed().as_secs_f64();
    result
}

#[allow(clippy::too_many_arguments)]
fn act(
    app: &mut Social,
    store: &mut dyn LabStore,
    rng: &mut ChaCha8Rng,
    user: UserId,
    kind: Kind,
    hot: u64,
    hot_share: f64,
    top: &[UserId],
) {
    let pick_post = |app: &Social, rng: &mut ChaCha8Rng| -> (u64, UserId) {
        if rng.gen::<f64>() < hot_share || app.recent.is_empty() {
            (hot, top[0])
        } else {
            app.recent[rng.gen_range(0..app.recent.len())]
        }
    };
    match kind {
        Kind::Post => {
            app.post(store, user);
        }
        Kind::ReadTimeline => app.read_timeline(store, user),
        Kind::Like => {
            let (post, author) = pick_post(app, rng);
            app.like(store, user, post, author);
        }
        Kind::ReadLikes => {
            let (post, _) = pick_post(app, rng);
            app.read_likes(store, user, post);
        }
        Kind::Follow => {
            // Half the follows go to the top accounts, as new users follow the famous.
            let target = if rng.gen::<bool>() {
                top[rng.gen_range(0..top.len())]
            } else {
                rng.gen_range(0..app.users.len())
            };
            if target != user {
                app.follow(store, user, target);
            }
        }
        Kind::ReadNotifications => app.read_notifications(store, user),
    }
}

fn apply_fault(store: &mut SimStore, fault: &Fault, result: &mut RunResult) -> String {
    match fault {
        Fault::CrashShardLeader => {
            let nodes = store.config().nodes;
            let leads: Vec<(u32, Vec<u32>)> =
                (1..=nodes).map(|n| (n, store.shards_led_by(concord_core::NodeId(n)))).collect();
            // A machine that leads exactly one shard shows "that shard only"; else the busiest.
            let pick = leads
                .iter()
                .filter(|(_, s)| s.len() == 1)
                .chain(leads.iter().filter(|(_, s)| !s.is_empty()))
                .next()
                .cloned();
            let Some((node, shards)) = pick else { return "crash: no shard leader found".into() };
            store.crash(concord_core::NodeId(node));
            result.crashed_shards.extend(&shards);
            result.crashed_nodes.push(node);
            format!("crash node {node} (leader of shard {})", join(&shards))
        }
        Fault::CrashNode(n) => {
            let shards = store.shards_led_by(concord_core::NodeId(*n));
            store.crash(concord_core::NodeId(*n));
            result.crashed_shards.extend(&shards);
            result.crashed_nodes.push(*n);
            format!("crash node {n}")
        }
        Fault::Restart => {
            for &n in &result.crashed_nodes {
                store.restart(concord_core::NodeId(n));
            }
            format!("restart node {}", join(&result.crashed_nodes))
        }
        Fault::Partition(groups) => {
            store.partition(groups);
            let sides: Vec<String> = groups.iter().map(|g| format!("{{{}}}", join(g))).collect();
            format!("partition {}", sides.join(" | "))
        }
        Fault::Heal => {
            store.heal();
            "heal".into()
        }
        Fault::KillCacheNode(i) => {
            store.kill_cache_node(*i);
            format!("cache node {} dies", i + 1)
        }
    }
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Every run of the lab.
#[derive(Clone, Debug, Serialize)]
pub struct SocialReport {
    pub options: SocialOptions,
    /// Follower counts, most followed first (the degree distribution).
    #[serde(skip)]
    pub follower_counts: Vec<usize>,
    pub celebrities: usize,
    pub runs: Vec<RunResult>,
    pub summary: report::Summary,
}

/// The baseline run on the deployment `sim`: the hybrid design through a compressed day.
fn baseline_spec(o: &SocialOptions, sim: SimConfig) -> RunSpec {
    let d = o.duration_s;
    RunSpec {
        name: "baseline",
        sim,
        app: o.app(),
        rate_per_s: o.rate_per_s,
        swing: o.swing,
        duration_s: d,
        faults: Vec::new(),
        celebrity_post_at_s: Some(d / 4.0),
        hot_like_share: 0.3,
        settle_ms: SETTLE_MS,
    }
}

/// Run the lab: build the users, then every experiment; `progress` hears about each run.
pub fn run_social(options: &SocialOptions, progress: &dyn Fn(&str)) -> anyhow::Result<SocialReport> {
    options.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let users = Users::generate(options.users, options.following, options.skew, &mut rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let o = options;
    let d = o.duration_s;
    let sharded = o.sim(o.nodes, o.shards, o.replicas);
    let base = baseline_spec(o, sharded.clone());
    let minority: Vec<u32> = (1..=o.nodes / 2).collect();
    let majority: Vec<u32> = (o.nodes / 2 + 1..=o.nodes).collect();
    let overload = RunSpec {
        name: "sharded, overload",
        rate_per_s: o.rate_per_s * o.overload,
        swing: 0.0,
        duration_s: (d / 3.0).max(3.0),
        celebrity_post_at_s: None,
        ..base.clone()
    };
    let single_sim = SimConfig { cache_nodes: sharded.cache_nodes, ..o.sim(1, 1, 1) };
    let mut specs = vec![
        base.clone(),
        RunSpec {
            name: "push-all",
            app: AppConfig { fanout_threshold: usize::MAX, ..o.app() },
            ..base.clone()
        },
        RunSpec {
            name: "leader crash",
            faults: vec![(d / 3.0, Fault::CrashShardLeader), (2.0 * d / 3.0, Fault::Restart)],
            ..base.clone()
        },
        RunSpec {
            name: "partition",
            faults: vec![(d / 3.0, Fault::Partition(vec![minority, majority])), (2.0 * d / 3.0, Fault::Heal)],
            hot_like_share: 0.5,
            ..base.clone()
        },
    ];
    if o.cache {
        specs.push(RunSpec {
            name: "cache node dies",
            faults: vec![(d / 2.0, Fault::KillCacheNode(0))],
            ..base.clone()
        });
    }
    specs.push(overload.clone());
    specs.push(RunSpec { name: "single node, overload", sim: single_sim.clone(), ..overload });
    specs.push(RunSpec {
        name: "single node crash",
        sim: single_sim,
        faults: vec![(d / 3.0, Fault::CrashNode(1)), (2.0 * d / 3.0, Fault::Restart)],
        ..base.clone()
    });
    let mut runs = Vec::new();
    for spec in &specs {
        progress(&format!("run: {}", spec.name));
        let run = run_one(spec, &users)?;
        progress(&format!(
            "  {} actions, {} storage requests, {:.1} s",
            run.records.len(),
            run.served_per_node.iter().sum::<u64>(),
            run.wall_s
        ));
        runs.push(run);
    }
    let celebrities =
        (0..users.len()).filter(|&u| users.followers[u as usize].len() > o.fanout_threshold).count();
    let summary = report::summarize(options, &runs, celebrities);
    Ok(SocialReport {
        options: options.clone(),
        follower_counts: users.follower_counts(),
        celebrities,
        runs,
        summary,
    })
}

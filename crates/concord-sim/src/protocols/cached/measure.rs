//! Measuring a cached run: the library API behind `concord lab cache`.
//!
//! [`measure`] builds a `[protocol.cached]` scenario from a [`CacheExperiment`] (a plain struct
//! with the knobs a lab varies), runs it for one seed and returns [`CacheMeasurements`]: client
//! read latencies, the load reaching the database (overall and per time bucket, so a thundering
//! herd shows as a spike), the hit ratio, how stale the cached reads were (in time and in versions,
//! against the committed history), lease activity and bound violations. [`measure_scenario`] does
//! the same for a scenario loaded from a file (`scenarios/cache.toml`).
//!
//! Counters live in the nodes and a crash wipes them, so the run is observed after every step and
//! each node's counters are accumulated as deltas (a restarted node counts from zero again).
//!
//! ```no_run
//! use concord_sim::protocols::cached::{measure, CacheExperiment};
//! let m = measure(&CacheExperiment { leases: false, herd_at: vec![std::time::Duration::from_secs(2)], ..Default::default() }).unwrap();
//! println!("hit ratio {:.2}, p99 {:?}, db reads/s {:.0}", m.hit_ratio, m.read_latency_p99, m.db_reads_per_s);
//! ```

use super::check::{bound_violations, cached_reads, read_ages, BoundViolation};
use super::{CacheCounters, CacheMutation, CachedNode, CachedScenario, DbCounters};
use crate::scenario::ScenarioError;
use crate::sim::{RunOptions, Simulation};
use crate::{Scenario, Summary};
use concord_cache::{PlacementKind, PolicyKind};
use concord_core::history::{EventType, OpFn};
use concord_core::Time;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One cached experiment: the knobs a lab turns. `Default` is a small healthy setup: 3 database
/// replicas, 2 cache nodes, Zipf(0.99) reads over 100 keys, no faults.
#[derive(Clone, Debug)]
pub struct CacheExperiment {
    pub seed: u64,
    pub duration: Duration,
    pub databases: u32,
    pub caches: u32,
    pub budget_bytes: u64,
    pub policy: PolicyKind,
    pub placement: PlacementKind,
    pub leases: bool,
    pub invalidation: bool,
    pub max_ttl: Duration,
    /// Closed-loop clients, or (with `open_loop_rate`) the number of client ids of an open loop.
    pub clients: u32,
    /// Requests per second over all clients, arriving whatever the answers (a herd needs this).
    pub open_loop_rate: Option<f64>,
    pub keys: u32,
    /// Zipf skew of the key choice; `None`: uniform.
    pub zipf_theta: Option<f64>,
    /// The share of reads in the mix (the rest are writes).
    pub read_fraction: f64,
    /// Random faults: cache crashes (a restarted cache node is empty), partitions between caches
    /// and the database, database leader crashes.
    pub faults: bool,
    /// Hot-key expiries (of `k0`, the hottest key under Zipf) at these times.
    pub herd_at: Vec<Duration>,
    /// The width of the per-bucket series.
    pub bucket: Duration,
    pub mutation: Option<CacheMutation>,
}

impl Default for CacheExperiment {
    fn default() -> Self {
        CacheExperiment {
            seed: 1,
            duration: Duration::from_secs(5),
            databases: 3,
            caches: 2,
            budget_bytes: 64 << 10,
            policy: PolicyKind::default(),
            placement: PlacementKind::Rendezvous,
            leases: true,
            invalidation: true,
            max_ttl: Duration::from_secs(5),
            clients: 8,
            open_loop_rate: None,
            keys: 100,
            zipf_theta: Some(0.99),
            read_fraction: 0.9,
            faults: false,
            herd_at: Vec::new(),
            bucket: Duration::from_millis(100),
            mutation: None,
        }
    }
}

fn toml_duration(d: Duration) -> String {
    format!("\"{}us\"", d.as_micros())
}

impl CacheExperiment {
    /// The scenario file this experiment stands for (also handy to save and replay with `concord sim`).
    pub fn scenario_toml(&self) -> String {
        let nodes = self.databases + self.caches;
        let heal = self.duration.mul_f64(0.8);
        let mut s = String::new();
        s += "description = \"A cache tier in front of Raft (built by CacheExperiment).\"\n\n[run]\n";
        s += &format!("nodes = {nodes}\nduration = {}\n", toml_duration(self.duration));
        if self.faults {
            s += &format!("heal_at = {}\n", toml_duration(heal));
        }
        s += "checks = [\"invariants\"]\n\n";
        s += "[network]\nlatency = { dist = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\n";
        s += "[disk]\nsync_latency = { dist = \"uniform\", min = \"200us\", max = \"1ms\" }\n\n";
        s += "[workload]\n";
        s += &format!("clients = {}\nkeys = {}\n", self.clients, self.keys);
        match self.zipf_theta {
            Some(theta) => s += &format!("key_distribution = \"zipfian\"\nzipf_theta = {theta:?}\n"),
            None => s += "key_distribution = \"uniform\"\n",
        }
        let read = self.read_fraction.clamp(0.0, 1.0);
        s += &format!("mix = {{ read = {read:?}, write = {:?}, cas = 0.0 }}\n", 1.0 - read);
        match self.open_loop_rate {
            Some(rate) => s += &format!("mode = \"open\"\nrate_per_s = {rate:?}\n"),
            None => s += "think = \"1ms\"\n",
        }
        s += "timeout = \"500ms\"\n\n";
        if self.faults {
            s += "[nemesis.random]\ninterval = \"500ms\"\nfault_duration = \"400ms\"\n";
            s += "kinds = [\"crash\", \"partition\", \"isolate\"]\n\n";
        }
        s += "[protocol.cached]\n";
        s += &format!("databases = {}\ncaches = {}\n", self.databases, self.caches);
        s += &format!("budget_bytes = {}\n", self.budget_bytes);
        let policy = match self.policy {
            PolicyKind::Lru => "lru",
            PolicyKind::S3Fifo => "s3-fifo",
        };
        s += &format!("policy = \"{policy}\"\n");
        match self.placement {
            PlacementKind::Ketama { vnodes } => {
                s += &format!("placement = {{ ketama = {{ vnodes = {vnodes} }} }}\n")
            }
            PlacementKind::Jump => s += "placement = \"jump\"\n",
            PlacementKind::Rendezvous => s += "placement = \"rendezvous\"\n",
        }
        s += &format!("leases = {}\ninvalidation = {}\n", self.leases, self.invalidation);
        s += &format!("max_ttl = {}\n", toml_duration(self.max_ttl));
        // Direct clients make the database's history checkable; an open loop has no fixed
        // processes per client, so there they are left out.
        if self.open_loop_rate.is_none() && self.clients > 1 {
            s += "direct_clients = 1\n";
        }
        if !self.herd_at.is_empty() {
            let times: Vec<String> = self.herd_at.iter().map(|d| toml_duration(*d)).collect();
            s += &format!("herd_at = [{}]\n", times.join(", "));
        }
        if let Some(m) = self.mutation {
            s += &format!("mutation = \"{}\"\n", m.name());
        }
        s += "raft = { election_timeout_min = \"150ms\", election_timeout_max = \"300ms\", heartbeat_interval = \"50ms\" }\n";
        s
    }

    /// The scenario, parsed and validated.
    pub fn scenario(&self) -> Result<Scenario<CachedScenario>, ScenarioError> {
        parse(Path::new("<cache experiment>"), &self.scenario_toml())
    }
}

/// Parse and validate a `[protocol.cached]` scenario.
pub fn parse(path: &Path, text: &str) -> Result<Scenario<CachedScenario>, ScenarioError> {
    let scenario: Scenario<CachedScenario> = Scenario::parse(path, text)?;
    let (_, config) = scenario.protocol();
    let invalid = |message: String| ScenarioError::Invalid { path: path.to_owned(), message };
    config.validate().map_err(|e| invalid(format!("[protocol.cached]: {e}")))?;
    if u64::from(scenario.run.nodes.0) != u64::from(config.databases) + u64::from(config.caches) {
        return Err(invalid(format!(
            "[protocol.cached]: {} databases + {} caches, but run.nodes = {}",
            config.databases, config.caches, scenario.run.nodes.0
        )));
    }
    if config.direct_clients > 0 && scenario.workload.mode == crate::scenario::LoopMode::Open {
        return Err(invalid(
            "[protocol.cached]: direct_clients needs a closed-loop workload (its reads are told apart by process)".into(),
        ));
    }
    Ok(scenario)
}

/// What one cached run measured.
#[derive(Clone, Debug)]
pub struct CacheMeasurements {
    pub seed: u64,
    /// Every failed check (bound violations, Raft invariants, the database's linearizability).
    pub violations: Vec<String>,
    /// `ok` reads of the clients reading through the cache.
    pub reads: u64,
    pub read_latency_p50: Duration,
    pub read_latency_p99: Duration,
    pub read_latency_max: Duration,
    /// Summed over cache nodes and their lives.
    pub cache: CacheCounters,
    /// Hits over the reads cache nodes answered (hits + misses + bypassed).
    pub hit_ratio: f64,
    /// Summed over database replicas and their lives.
    pub db: DbCounters,
    /// Reads reaching the database (fills, bypasses, direct client reads) per second of the run.
    pub db_reads_per_s: f64,
    pub bucket: Duration,
    /// Reads reaching the database per bucket of virtual time.
    pub db_reads_per_bucket: Vec<u64>,
    /// Cache hits per bucket.
    pub hits_per_bucket: Vec<u64>,
    /// The 99th percentile of the latencies of the cached reads that completed in each bucket
    /// (zero for a bucket without any).
    pub read_latency_p99_per_bucket: Vec<Duration>,
    /// Cached reads that returned an older version than one acknowledged before they began.
    pub stale_reads: u64,
    pub max_staleness: Duration,
    pub max_versions_behind: u64,
    /// The age (time since the first missed write's acknowledgement) of every stale read, sorted.
    pub staleness: Vec<Duration>,
    /// Stale reads by versions behind.
    pub versions_behind: BTreeMap<u64, u64>,
    /// The bound the run was checked against.
    pub bound: Duration,
    pub bound_violations: Vec<BoundViolation>,
    pub summary: Summary,
}

impl CacheMeasurements {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Run an experiment once (its seed) and measure it.
pub fn measure(experiment: &CacheExperiment) -> Result<CacheMeasurements, ScenarioError> {
    let scenario = Arc::new(experiment.scenario()?);
    Ok(measure_scenario(scenario, experiment.seed, experiment.bucket))
}

macro_rules! add_delta {
    ($total:expr, $now:expr, $before:expr, $($field:ident),*) => {
        $( $total.$field += $now.$field - $before.$field; )*
    };
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Run a cached scenario with `seed` and measure it, bucketing the series by `bucket`.
pub fn measure_scenario(
    scenario: Arc<Scenario<CachedScenario>>,
    seed: u64,
    bucket: Duration,
) -> CacheMeasurements {
    let bucket = bucket.max(Duration::from_millis(1));
    let n = scenario.run.nodes.0 as usize;
    let mut last_cache = vec![CacheCounters::default(); n];
    let mut last_db = vec![DbCounters::default(); n];
    let mut cache = CacheCounters::default();
    let mut db = DbCounters::default();
    let mut db_buckets: Vec<u64> = Vec::new();
    let mut hit_buckets: Vec<u64> = Vec::new();
    let options = RunOptions { seed, ..RunOptions::default() };
    let report = Simulation::<CachedNode>::new(Arc::clone(&scenario), options).run_observed(|sim| {
        let b = (sim.now().as_nanos() / bucket.as_nanos().max(1) as u64) as usize;
        for (i, (_, node)) in sim.nodes().into_iter().enumerate() {
            match node {
                None => {
                    last_cache[i] = CacheCounters::default();
                    last_db[i] = DbCounters::default();
                }
                Some(CachedNode::Cache(c)) => {
                    let now = c.counters;
                    if now != last_cache[i] {
                        if db_buckets.len() <= b {
                            db_buckets.resize(b + 1, 0);
                            hit_buckets.resize(b + 1, 0);
                        }
                        hit_buckets[b] += now.hits - last_cache[i].hits;
                        add_delta!(
                            cache,
                            now,
                            last_cache[i],
                            hits,
                            misses,
                            bypassed,
                            lease_waits,
                            leases_issued,
                            db_requests,
                            fills_stored,
                            fills_refused,
                            invalidations,
                            flushes,
                            gaps,
                            silences,
                            herd_expiries
                        );
                        last_cache[i] = now;
                    }
                }
                Some(CachedNode::Db(d)) => {
                    let now = d.counters;
                    if now != last_db[i] {
                        if db_buckets.len() <= b {
                            db_buckets.resize(b + 1, 0);
                            hit_buckets.resize(b + 1, 0);
                        }
                        db_buckets[b] += (now.cache_reads - last_db[i].cache_reads)
                            + (now.client_reads - last_db[i].client_reads);
                        add_delta!(db, now, last_db[i], cache_reads, client_reads, writes);
                        last_db[i] = now;
                    }
                }
            }
        }
    });
    let buckets = (report.summary.virtual_time.as_nanos() / bucket.as_nanos().max(1)) as usize + 1;
    if db_buckets.len() < buckets {
        db_buckets.resize(buckets, 0);
        hit_buckets.resize(buckets, 0);
    }

    // Latencies of the reads through the cache.
    let (_, config) = scenario.protocol();
    let clients = u64::from(scenario.workload.clients.max(1));
    let direct = |process: u64| config.is_direct((process % clients) as u32);
    let mut open: BTreeMap<u64, Time> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut latency_buckets: Vec<Vec<Duration>> = vec![Vec::new(); db_buckets.len()];
    for e in &report.history.events {
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, e.time);
            }
            EventType::Ok => {
                if let Some(at) = open.remove(&e.process) {
                    if e.op.f == OpFn::Read && !direct(e.process) {
                        let latency = e.time.saturating_since(at);
                        latencies.push(latency);
                        let b = (e.time.as_nanos() / bucket.as_nanos().max(1) as u64) as usize;
                        if let Some(v) = latency_buckets.get_mut(b) {
                            v.push(latency);
                        }
                    }
                }
            }
            EventType::Fail | EventType::Info => {
                open.remove(&e.process);
            }
        }
    }
    latencies.sort();
    let read_latency_p99_per_bucket = latency_buckets
        .into_iter()
        .map(|mut v| {
            v.sort();
            percentile(&v, 0.99)
        })
        .collect();

    let ages = read_ages(&report.history);
    let mut staleness = Vec::new();
    let mut versions_behind: BTreeMap<u64, u64> = BTreeMap::new();
    for r in cached_reads(&scenario, &ages).filter(|r| r.is_stale()) {
        staleness.push(r.since_missed().unwrap_or_default());
        *versions_behind.entry(r.versions_behind).or_default() += 1;
    }
    staleness.sort();
    let violations_found = bound_violations(&scenario, &ages);
    let answered = cache.hits + cache.misses + cache.bypassed;
    let seconds = report.summary.virtual_time.as_secs_f64().max(1e-9);
    CacheMeasurements {
        seed,
        violations: report.violations.clone(),
        reads: latencies.len() as u64,
        read_latency_p50: percentile(&latencies, 0.50),
        read_latency_p99: percentile(&latencies, 0.99),
        read_latency_max: latencies.last().copied().unwrap_or_default(),
        cache,
        hit_ratio: if answered == 0 { 0.0 } else { cache.hits as f64 / answered as f64 },
        db,
        db_reads_per_s: (db.cache_reads + db.client_reads) as f64 / seconds,
        bucket,
        db_reads_per_bucket: db_buckets,
        hits_per_bucket: hit_buckets,
        read_latency_p99_per_bucket,
        stale_reads: staleness.len() as u64,
        max_staleness: staleness.last().copied().unwrap_or_default(),
        max_versions_behind: versions_behind.keys().next_back().copied().unwrap_or(0),
        staleness,
        versions_behind,
        bound: config.staleness_bound(),
        bound_violations: violations_found,
        summary: report.summary,
    }
}

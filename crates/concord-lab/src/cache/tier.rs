//! Part 2: the database's load and the clients' read latency, with and without the cache tier.
//!
//! The same open-loop workload (Poisson arrivals at a fixed rate, whatever the answers – so the
//! offered load is the same in every run) runs against
//!
//! * **no tier**: the Raft database alone (`[protocol.raft]`, reads by ReadIndex – linearizable,
//!   the same reads a cache node's fill makes), and
//! * **a tier of C cache nodes** in front of the same database (`[protocol.cached]`, look-aside
//!   with leases and invalidation, each node with the same byte budget).
//!
//! Both scenarios come from one [`CacheExperiment`]: the no-tier run is its scenario file with the
//! `[protocol.cached]` table replaced by `[protocol.raft]` and only the database nodes, so the
//! network, the disks and the workload are the same lines of TOML.
//!
//! What the simulator does not model: a database's CPU. A read costs it nothing but messages, so
//! its latency does not grow with its load. The load is what the tier takes off the database; the
//! latency is what the extra or saved network hops cost.

use super::{with_workload_window, WORKLOAD_START};
use concord_core::history::{EventType, OpFn};
use concord_core::Time;
use concord_sim::protocols::cached::measure::parse;
use concord_sim::protocols::cached::{measure_scenario, CacheExperiment};
use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One configuration's measurements.
#[derive(Clone, Debug, Serialize)]
pub struct TierRow {
    /// Cache nodes (0: no tier).
    pub caches: u32,
    /// Each cache node's byte budget.
    pub budget_bytes: u64,
    /// `ok` reads measured (through the cache, or straight to the database without a tier).
    pub reads: u64,
    /// Hits over reads the cache nodes answered (0 without a tier).
    pub hit_ratio: f64,
    pub db_reads_per_s: f64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub read_max_ms: f64,
    /// Reads reaching the database per bucket of [`TierRow::bucket_ms`].
    pub db_reads_per_bucket: Vec<u64>,
    pub bucket_ms: f64,
    /// Failed checks of the run (must be empty).
    pub violations: Vec<String>,
    /// The scenario file that ran (replay it with `concord sim FILE --seed SEED`).
    pub scenario_toml: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The experiment of part 2 with `caches` cache nodes (0 stands for no tier; the experiment still
/// names at least one cache node, which the no-tier run drops).
pub fn experiment(seed: u64, quick: bool, caches: u32) -> CacheExperiment {
    CacheExperiment {
        seed,
        duration: Duration::from_millis(if quick { 2500 } else { 20000 }),
        caches: caches.max(1),
        budget_bytes: BUDGET_BYTES,
        clients: 64,
        open_loop_rate: Some(if quick { 1500.0 } else { 3000.0 }),
        keys: KEYS,
        zipf_theta: Some(0.99),
        read_fraction: 0.95,
        bucket: Duration::from_millis(100),
        ..CacheExperiment::default()
    }
}

/// When the clients stop sending: a little before the end, so every request is answered.
fn workload_stop(experiment: &CacheExperiment) -> Duration {
    experiment.duration - Duration::from_millis(200)
}

/// The seconds during which the clients send (the database's read rate is over these).
fn sending_secs(experiment: &CacheExperiment) -> f64 {
    (workload_stop(experiment) - WORKLOAD_START).as_secs_f64()
}

/// The tier's scenario file: the experiment's, clients sending from [`WORKLOAD_START`].
pub fn tier_toml(experiment: &CacheExperiment) -> String {
    with_workload_window(&experiment.scenario_toml(), WORKLOAD_START, workload_stop(experiment))
}

/// Keys of part 2's workload.
pub const KEYS: u32 = 2000;
/// Each cache node's budget in part 2.
pub const BUDGET_BYTES: u64 = 24 << 10;

/// The no-tier scenario of `experiment`: the same file with the database alone.
pub fn no_tier_toml(experiment: &CacheExperiment) -> String {
    let text = tier_toml(experiment);
    let (head, _) = text.split_once("[protocol.cached]").expect("a cached scenario has its table");
    let nodes_line = format!("nodes = {}\n", experiment.databases + experiment.caches);
    assert!(head.contains(&nodes_line), "the scenario names its nodes as expected");
    let head = head.replacen(&nodes_line, &format!("nodes = {}\n", experiment.databases), 1);
    format!(
        "{head}[protocol.raft]\nreads = \"linearizable\"\nelection_timeout_min = \"150ms\"\n\
         election_timeout_max = \"300ms\"\nheartbeat_interval = \"50ms\"\n"
    )
}

/// Run `experiment` without a tier: read latencies and database reads from the history (every
/// read a client sends goes to the database).
pub fn run_no_tier(experiment: &CacheExperiment) -> anyhow::Result<TierRow> {
    let text = no_tier_toml(experiment);
    let file = LoadedScenario::parse(Path::new("<no tier>"), &text)?;
    let report = file.run(RunOptions { seed: experiment.seed, ..RunOptions::default() });
    let bucket = experiment.bucket.max(Duration::from_millis(1));
    let mut open: BTreeMap<u64, Time> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut buckets: Vec<u64> = Vec::new();
    let mut db_reads = 0u64;
    for e in &report.history.events {
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, e.time);
                if e.op.f == OpFn::Read {
                    db_reads += 1;
                    let b = (e.time.as_nanos() / bucket.as_nanos() as u64) as usize;
                    if buckets.len() <= b {
                        buckets.resize(b + 1, 0);
                    }
                    buckets[b] += 1;
                }
            }
            EventType::Ok => {
                if let Some(at) = open.remove(&e.process) {
                    if e.op.f == OpFn::Read {
                        latencies.push(e.time.saturating_since(at));
                    }
                }
            }
            EventType::Fail | EventType::Info => {
                open.remove(&e.process);
            }
        }
    }
    latencies.sort();
    let buckets_total = (report.summary.virtual_time.as_nanos() / bucket.as_nanos()) as usize + 1;
    if buckets.len() < buckets_total {
        buckets.resize(buckets_total, 0);
    }
    Ok(TierRow {
        caches: 0,
        budget_bytes: 0,
        reads: latencies.len() as u64,
        hit_ratio: 0.0,
        db_reads_per_s: db_reads as f64 / sending_secs(experiment),
        read_p50_ms: ms(percentile(&latencies, 0.50)),
        read_p99_ms: ms(percentile(&latencies, 0.99)),
        read_max_ms: ms(latencies.last().copied().unwrap_or_default()),
        db_reads_per_bucket: buckets,
        bucket_ms: ms(bucket),
        violations: report.violations.clone(),
        scenario_toml: text,
    })
}

/// Run `experiment` with its tier.
pub fn run_tier(experiment: &CacheExperiment) -> anyhow::Result<TierRow> {
    let text = tier_toml(experiment);
    let scenario = Arc::new(parse(Path::new("<cache lab, part 2>"), &text)?);
    let m = measure_scenario(scenario, experiment.seed, experiment.bucket);
    Ok(TierRow {
        caches: experiment.caches,
        budget_bytes: experiment.budget_bytes,
        reads: m.reads,
        hit_ratio: m.hit_ratio,
        db_reads_per_s: m.db_reads_per_bucket.iter().sum::<u64>() as f64 / sending_secs(experiment),
        read_p50_ms: ms(m.read_latency_p50),
        read_p99_ms: ms(m.read_latency_p99),
        read_max_ms: ms(m.read_latency_max),
        db_reads_per_bucket: m.db_reads_per_bucket.clone(),
        bucket_ms: ms(m.bucket),
        violations: m.violations.clone(),
        scenario_toml: text,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

//! Part 3: the thundering herd, with and without leases.
//!
//! Many clients read one hot key (`k0`, the most popular of a Zipf workload) from the cache. At
//! [`HERD_AT`] every cache node drops it at once, as a TTL expiry or an invalidation would. Every
//! read of `k0` that arrives before a fill has stored it again misses:
//!
//! * **without leases** each of those misses reads the database – the herd: as many database
//!   reads as requests arrive during one database round trip;
//! * **with leases** (memcache, NSDI 2013 §3.2.1) the first miss gets a lease and fills; the
//!   others are told to wait and retry the cache a moment later – one database read.
//!
//! The workload is read-only (no invalidations from writes), so outside the event the database
//! sees only the cold start; the series of database reads per small bucket around the event is
//! the herd, and its peak and total (over a window around the event) are the numbers.

use super::{with_workload_window, WORKLOAD_START};
use concord_sim::protocols::cached::measure::parse;
use concord_sim::protocols::cached::{measure_scenario, CacheExperiment};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// When the hot key is dropped.
pub const HERD_AT: Duration = Duration::from_millis(1500);
/// The bucket of the series.
pub const BUCKET: Duration = Duration::from_millis(2);
/// The window around the event in which the herd is counted: from [`HERD_AT`] to this much after.
pub const WINDOW: Duration = Duration::from_millis(60);

/// One run (leases on or off).
#[derive(Clone, Debug, Serialize)]
pub struct HerdRun {
    pub leases: bool,
    /// Database reads per [`BUCKET`] over the whole run.
    pub db_reads_per_bucket: Vec<u64>,
    pub bucket_ms: f64,
    pub herd_at_ms: f64,
    /// The largest bucket in the window after the event.
    pub peak: u64,
    /// Database reads in the window after the event.
    pub total: u64,
    /// Database reads in a window of the same length just before the event (the background).
    pub before: u64,
    pub lease_waits: u64,
    pub leases_issued: u64,
    pub read_p99_ms: f64,
    pub read_max_ms: f64,
    /// Failed checks of the run (must be empty).
    pub violations: Vec<String>,
    /// The scenario file that ran (replay it with `concord sim FILE --seed SEED`).
    pub scenario_toml: String,
}

/// The experiment of part 3.
pub fn experiment(seed: u64, quick: bool, leases: bool) -> CacheExperiment {
    CacheExperiment {
        seed,
        duration: Duration::from_millis(2000),
        leases,
        clients: 64,
        open_loop_rate: Some(if quick { 12000.0 } else { 40000.0 }),
        keys: 100,
        zipf_theta: Some(0.99),
        read_fraction: 1.0,
        herd_at: vec![HERD_AT],
        bucket: BUCKET,
        ..CacheExperiment::default()
    }
}

/// Run part 3 once.
pub fn run(seed: u64, quick: bool, leases: bool) -> anyhow::Result<HerdRun> {
    let experiment = experiment(seed, quick, leases);
    // Clients from WORKLOAD_START (after the database's first election) to the end.
    let text = with_workload_window(&experiment.scenario_toml(), WORKLOAD_START, experiment.duration);
    let scenario = Arc::new(parse(Path::new("<cache lab, part 3>"), &text)?);
    let m = measure_scenario(scenario, seed, experiment.bucket);
    let bucket = m.bucket.max(Duration::from_millis(1));
    let at = (HERD_AT.as_nanos() / bucket.as_nanos()) as usize;
    let width = (WINDOW.as_nanos() / bucket.as_nanos()) as usize;
    let series = &m.db_reads_per_bucket;
    let slice = |from: usize, to: usize| -> &[u64] { &series[from.min(series.len())..to.min(series.len())] };
    let after = slice(at, at + width);
    Ok(HerdRun {
        leases,
        db_reads_per_bucket: series.clone(),
        bucket_ms: bucket.as_secs_f64() * 1e3,
        herd_at_ms: HERD_AT.as_secs_f64() * 1e3,
        peak: after.iter().copied().max().unwrap_or(0),
        total: after.iter().sum(),
        before: slice(at.saturating_sub(width), at).iter().sum(),
        lease_waits: m.cache.lease_waits,
        leases_issued: m.cache.leases_issued,
        read_p99_ms: m.read_latency_p99.as_secs_f64() * 1e3,
        read_max_ms: m.read_latency_max.as_secs_f64() * 1e3,
        violations: m.violations.clone(),
        scenario_toml: text,
    })
}

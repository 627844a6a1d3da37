//! Part 4: how stale a cached read can be – with and without invalidation, and under a
//! partition between the cache nodes and the database.
//!
//! A read is *stale* when it returns an older version than a write acknowledged before the read
//! began; its *age* is the time from that (first missed) write's acknowledgement to the read's
//! start. Four setups of the same workload (closed loop, 20 % writes on a Zipf key choice):
//!
//! 1. **invalidation**: every database replica streams `(key, revision)` to the cache nodes; a
//!    cached value lives until it is invalidated (or its TTL ends).
//! 2. **TTL only**: no invalidation; a value lives its TTL, so a read may be up to one TTL stale.
//! 3. **partition, flush on reconnect**: invalidation, and from [`PARTITION`] the cache nodes are
//!    cut off from the database. A cache node that hears nothing on a replica's stream for
//!    `stream_timeout` stops serving; when the streams come back it flushes before serving again.
//! 4. **partition, no flush** (the deliberate bug `cache_no_flush_on_reconnect`): the invalidations
//!    sent during the partition are lost, and the values cached before it are served after the
//!    heal until their TTL ends.
//!
//! The simulator checks every run against the bound `B` (`min(max_ttl, stream_timeout +
//! delay_bound)` with invalidation, `max_ttl` without): no cached read invoked more than `B` after
//! a write's acknowledgement returns an older version. Setup 4 breaks it on purpose.

use concord_sim::protocols::cached::measure::parse;
use concord_sim::protocols::cached::{measure_scenario, CacheExperiment, CacheMutation};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The partition between the cache nodes and the database: from, to.
pub const PARTITION: (Duration, Duration) = (Duration::from_millis(1000), Duration::from_millis(1600));
/// The TTL of every setup.
pub const TTL: Duration = Duration::from_millis(1000);

/// The four setups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setup {
    Invalidation,
    TtlOnly,
    PartitionFlush,
    PartitionNoFlush,
}

impl Setup {
    pub const ALL: [Setup; 4] =
        [Setup::Invalidation, Setup::TtlOnly, Setup::PartitionFlush, Setup::PartitionNoFlush];

    pub fn describe(self) -> &'static str {
        match self {
            Setup::Invalidation => "invalidation",
            Setup::TtlOnly => "TTL only (no invalidation)",
            Setup::PartitionFlush => "partition, flush on reconnect",
            Setup::PartitionNoFlush => "partition, no flush (bug)",
        }
    }
    /// A file-name part.
    pub fn slug(self) -> &'static str {
        match self {
            Setup::Invalidation => "invalidation",
            Setup::TtlOnly => "ttl-only",
            Setup::PartitionFlush => "partition-flush",
            Setup::PartitionNoFlush => "partition-no-flush",
        }
    }
    fn partitioned(self) -> bool {
        matches!(self, Setup::PartitionFlush | Setup::PartitionNoFlush)
    }
}

/// One setup's measurements.
#[derive(Clone, Debug, Serialize)]
pub struct StalenessRun {
    pub setup: Setup,
    /// `ok` reads through the cache.
    pub reads: u64,
    pub stale_reads: u64,
    /// Ages of the stale reads (ms), sorted.
    pub ages_ms: Vec<f64>,
    pub max_age_ms: f64,
    pub max_versions_behind: u64,
    /// The staleness bound the run was checked against (ms).
    pub bound_ms: f64,
    pub ttl_ms: f64,
    /// Stale reads older than the bound.
    pub bound_violations: usize,
    pub hit_ratio: f64,
    pub flushes: u64,
    pub bypassed: u64,
    /// Every failed check (the bound check included).
    pub violations: Vec<String>,
    /// Cache hits and reads reaching the database per bucket of `bucket_ms` (the partition's
    /// effect over time).
    pub hits_per_bucket: Vec<u64>,
    pub db_reads_per_bucket: Vec<u64>,
    pub bucket_ms: f64,
    /// The scenario file that ran (replay it with `concord sim FILE --seed SEED`).
    pub scenario_toml: String,
}

/// The experiment of part 4 for `setup` (the partition is added to its scenario by [`run`]).
pub fn experiment(seed: u64, quick: bool, setup: Setup) -> CacheExperiment {
    CacheExperiment {
        seed,
        duration: Duration::from_millis(if quick { 3000 } else { 10000 }),
        invalidation: setup != Setup::TtlOnly,
        max_ttl: TTL,
        clients: 16,
        keys: 50,
        zipf_theta: Some(0.99),
        read_fraction: 0.8,
        mutation: (setup == Setup::PartitionNoFlush).then_some(CacheMutation::CacheNoFlushOnReconnect),
        bucket: Duration::from_millis(50),
        ..CacheExperiment::default()
    }
}

/// The scenario file of `setup`: the experiment's, plus the partition of the cache nodes (the
/// nodes after the databases) from the database for the partitioned setups.
pub fn scenario_toml(experiment: &CacheExperiment, setup: Setup) -> String {
    let mut text = experiment.scenario_toml();
    if setup.partitioned() {
        let dbs: Vec<String> = (1..=experiment.databases).map(|n| n.to_string()).collect();
        let caches: Vec<String> = (experiment.databases + 1..=experiment.databases + experiment.caches)
            .map(|n| n.to_string())
            .collect();
        text += &format!(
            "\n[[nemesis.schedule]]\nat = \"{}ms\"\naction = \"partition\"\ngroups = [[{}], [{}]]\n\n\
             [[nemesis.schedule]]\nat = \"{}ms\"\naction = \"heal\"\n",
            PARTITION.0.as_millis(),
            dbs.join(", "),
            caches.join(", "),
            PARTITION.1.as_millis()
        );
    }
    text
}

/// Run one setup.
pub fn run(seed: u64, quick: bool, setup: Setup) -> anyhow::Result<StalenessRun> {
    let experiment = experiment(seed, quick, setup);
    let text = scenario_toml(&experiment, setup);
    let scenario = Arc::new(parse(Path::new("<cache lab, part 4>"), &text)?);
    let m = measure_scenario(scenario, seed, experiment.bucket);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(StalenessRun {
        setup,
        reads: m.reads,
        stale_reads: m.stale_reads,
        ages_ms: m.staleness.iter().map(|d| ms(*d)).collect(),
        max_age_ms: ms(m.max_staleness),
        max_versions_behind: m.max_versions_behind,
        bound_ms: ms(m.bound),
        ttl_ms: ms(TTL),
        bound_violations: m.bound_violations.len(),
        hit_ratio: m.hit_ratio,
        flushes: m.cache.flushes,
        bypassed: m.cache.bypassed,
        violations: m.violations.clone(),
        hits_per_bucket: m.hits_per_bucket.clone(),
        db_reads_per_bucket: m.db_reads_per_bucket.clone(),
        bucket_ms: ms(m.bucket),
        scenario_toml: text,
    })
}

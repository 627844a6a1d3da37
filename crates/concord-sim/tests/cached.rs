//! The cache tier in the simulator (`[protocol.cached]`, `scenarios/cache.toml`): a sweep with
//! faults passes, each deliberate bug is caught by a sweep, runs are deterministic, and the
//! measurement API shows what leases do to a thundering herd.
//!
//! The long sweep is ignored by default:
//!
//! ```sh
//! cargo test -p concord-sim --test cached -- --ignored --nocapture
//! ```

use concord_sim::protocols::cached::{
    measure, measure_scenario, CacheExperiment, CacheMutation, CachedNode, CachedScenario,
};
use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::{sweep, SweepOptions};
use concord_sim::{RunOptions, RunReport, Scenario, Simulation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CACHE: &str = include_str!("../../../scenarios/cache.toml");

/// `scenarios/cache.toml` with `mutation` set (or not), as text.
fn text(mutation: Option<CacheMutation>) -> String {
    let mut table: toml::Table = toml::from_str(CACHE).unwrap();
    if let Some(m) = mutation {
        let cached = table["protocol"]["cached"].as_table_mut().unwrap();
        cached.insert("mutation".into(), m.name().into());
    }
    toml::to_string(&table).unwrap()
}

fn scenario(mutation: Option<CacheMutation>) -> Arc<Scenario<CachedScenario>> {
    let text = text(mutation);
    Arc::new(
        concord_sim::protocols::cached::measure::parse(Path::new("scenarios/cache.toml"), &text).unwrap(),
    )
}

fn run(s: &Arc<Scenario<CachedScenario>>, seed: u64) -> RunReport {
    Simulation::<CachedNode>::new(Arc::clone(s), RunOptions { seed, ..Default::default() }).run()
}

fn sweep_failures(file: &Path, seeds: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let loaded = LoadedScenario::load(file).unwrap();
    sweep(&loaded, seeds, &SweepOptions::default(), &|_| {})
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "seed {}:\n  {}\n  replay: concord sim {} --seed {}",
                r.seed,
                r.violations.join("\n  "),
                file.display(),
                r.seed
            )
        })
        .collect()
}

fn cache_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/cache.toml")
}

#[test]
fn a_sweep_with_cache_crashes_partitions_and_leader_crashes_passes() {
    let failures = sweep_failures(&cache_toml(), 1..=200);
    assert!(failures.is_empty(), "{} seed(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Seeds `1..=2000` (a few minutes in debug, on all cores).
#[test]
#[ignore]
fn a_long_sweep_passes() {
    let failures = sweep_failures(&cache_toml(), 1..=2_000);
    assert!(failures.is_empty(), "{} seed(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Sweep from seed 1 until the mutation breaks the staleness bound; the same seed must pass
/// without it (the bug is caught, not the scenario). The mutated scenario is written under the
/// target directory, so the printed command replays the catch.
fn caught(mutation: CacheMutation) -> u64 {
    let s = scenario(Some(mutation));
    let healthy = scenario(None);
    for seed in 1..=200 {
        let report = run(&s, seed);
        if report.passed() {
            continue;
        }
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{}.toml", mutation.name()));
        std::fs::write(&file, text(Some(mutation))).unwrap();
        println!(
            "{}: caught at seed {seed}: {}\n  replay: concord sim {} --seed {seed}",
            mutation.name(),
            report.violations.join("; "),
            file.display()
        );
        assert!(
            report.violations.iter().all(|v| v.starts_with("staleness bound")),
            "caught by something other than the bound: {:?}",
            report.violations
        );
        let without = run(&healthy, seed);
        assert!(without.passed(), "seed {seed} fails without the mutation too: {:?}", without.violations);
        return seed;
    }
    panic!("{} was not caught in seeds 1..=200", mutation.name());
}

#[test]
fn a_fill_that_ignores_invalidations_is_caught() {
    caught(CacheMutation::CacheFillIgnoresInvalidation);
}

#[test]
fn a_cache_that_does_not_flush_on_reconnect_is_caught() {
    caught(CacheMutation::CacheNoFlushOnReconnect);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let loaded = LoadedScenario::load(&cache_toml()).unwrap();
    let hash =
        |seed| loaded.run(RunOptions { seed, hash_trace: true, ..Default::default() }).trace_hash.unwrap();
    assert_eq!(hash(7), hash(7));
    assert_ne!(hash(7), hash(8));
    let m = |seed| measure_scenario(scenario(None), seed, Duration::from_millis(100));
    let (a, b) = (m(3), m(3));
    assert_eq!((a.cache, a.db, a.db_reads_per_bucket), (b.cache, b.db, b.db_reads_per_bucket));
}

#[test]
fn measurements_of_a_healthy_run() {
    let m = measure(&CacheExperiment::default()).unwrap();
    assert!(m.passed(), "{:?}", m.violations);
    assert!(m.reads > 1_000, "{} reads", m.reads);
    assert!(m.hit_ratio > 0.5, "hit ratio {}", m.hit_ratio);
    assert!(m.read_latency_p50 <= m.read_latency_p99);
    assert!(m.max_staleness <= m.bound, "{:?} > {:?}", m.max_staleness, m.bound);
    assert_eq!(m.bound, Duration::from_millis(110));
    let per_bucket: u64 = m.db_reads_per_bucket.iter().sum();
    assert_eq!(per_bucket, m.db.cache_reads + m.db.client_reads);
    assert_eq!(m.hits_per_bucket.iter().sum::<u64>(), m.cache.hits);
}

/// A hot key expires on every cache node at 2 s: with leases one reader per node fills it, the
/// others wait; without, every reader that misses goes to the database.
#[test]
fn leases_tame_the_herd_after_a_hot_key_expires() {
    let experiment = |leases| CacheExperiment {
        leases,
        open_loop_rate: Some(4_000.0),
        clients: 50,
        duration: Duration::from_secs(3),
        read_fraction: 0.98,
        herd_at: vec![Duration::from_secs(2)],
        bucket: Duration::from_millis(20),
        ..CacheExperiment::default()
    };
    let on = measure(&experiment(true)).unwrap();
    let off = measure(&experiment(false)).unwrap();
    assert!(on.passed() && off.passed(), "{:?} {:?}", on.violations, off.violations);
    let herd = 100; // the 20 ms bucket starting at 2 s
    println!(
        "database reads in the herd's bucket: {} with leases, {} without; lease waits {}",
        on.db_reads_per_bucket[herd], off.db_reads_per_bucket[herd], on.cache.lease_waits
    );
    assert!(on.cache.herd_expiries >= 1 && off.cache.herd_expiries >= 1);
    assert!(on.cache.lease_waits > 0);
    assert!(
        off.db.cache_reads > on.db.cache_reads,
        "without leases the database should see more cache reads: {} vs {}",
        off.db.cache_reads,
        on.db.cache_reads
    );
}

/// Without invalidations only the TTL bounds staleness: reads go stale, never beyond `max_ttl`.
#[test]
fn without_invalidations_the_ttl_bounds_staleness() {
    let m = measure(&CacheExperiment {
        invalidation: false,
        max_ttl: Duration::from_millis(300),
        read_fraction: 0.7,
        ..CacheExperiment::default()
    })
    .unwrap();
    assert!(m.passed(), "{:?}", m.violations);
    assert_eq!(m.bound, Duration::from_millis(300));
    assert!(m.stale_reads > 0, "a cache without invalidations serves stale reads");
    assert!(m.max_staleness <= m.bound, "{:?}", m.max_staleness);
    assert_eq!(m.cache.invalidations, 0);
}

/// The experiment API switches a mutation on too: the lab can show a bug being caught.
#[test]
fn an_experiment_with_faults_and_a_mutation_reports_the_violation() {
    let caught = (1..=20).any(|seed| {
        let m = measure(&CacheExperiment {
            seed,
            faults: true,
            mutation: Some(CacheMutation::CacheNoFlushOnReconnect),
            ..CacheExperiment::default()
        })
        .unwrap();
        !m.bound_violations.is_empty() && !m.passed()
    });
    assert!(caught, "no bound violation in 20 seeds");
}

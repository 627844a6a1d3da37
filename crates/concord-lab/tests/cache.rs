//! `concord lab cache --quick`, end to end into a temporary directory: every part ran, every file
//! is written, and the measured numbers have the shape the guide predicts
//! (docs/labs/cache.md, "Expected results").

use concord_lab::cache::hit_ratio::Sizing;
use concord_lab::cache::staleness::{Setup, PARTITION};
use concord_lab::cache::{write_report, SKEWS};
use concord_lab::{run_cache, CacheLabOptions};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn quick_cache_lab_runs_end_to_end_with_sane_numbers() {
    let dir = std::env::temp_dir().join(format!("concord-cache-lab-test-{}", std::process::id()));
    let options = CacheLabOptions::quick(1);
    let done = AtomicUsize::new(0);
    let report = run_cache(&options, &|_| {
        done.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    println!("{}", report.summary());
    assert_eq!(done.load(Ordering::Relaxed), options.jobs());

    // Part 1: every skew and sizing at every size; hit ratios are ratios and grow with the cache.
    assert_eq!(report.hit_ratio.len(), SKEWS.len() * Sizing::ALL.len());
    for c in &report.hit_ratio {
        assert_eq!(c.points.len(), options.fractions().len());
        for p in &c.points {
            assert!((0.0..=1.0).contains(&p.lru) && (0.0..=1.0).contains(&p.s3fifo), "{p:?}");
            // LRU agrees with Che's approximation (equal values: 0.02 as in concord-cache's tests;
            // varied sizes: the approximation ignores which keys are big, 0.03).
            let tolerance = if c.sizing == Sizing::Equal { 0.02 } else { 0.03 };
            assert!((p.lru - p.che_lru).abs() < tolerance, "skew {} {:?}: {p:?}", c.skew, c.sizing);
            // No policy beats holding the most popular keys (plus the trace's sampling noise).
            if let Some(top) = p.top_keys {
                assert!(p.lru <= top + 0.005 && p.s3fifo <= top + 0.005, "{p:?}");
            }
        }
        for w in c.points.windows(2) {
            assert!(w[0].lru < w[1].lru && w[0].s3fifo < w[1].s3fifo, "{:?}", c.points);
        }
    }
    // Higher skew, higher hit ratio at the same size.
    for sizing in Sizing::ALL {
        let at = |skew| report.curve(skew, sizing).unwrap().points[1].lru;
        assert!(at(0.7) < at(0.99) && at(0.99) < at(1.2), "{sizing:?}");
    }
    // The criterion: S3-FIFO at or above LRU at the same byte budget on Zipf 0.99 and 1.2
    // at every measured size, both sizings – and clearly above at the smallest size.
    for skew in [0.99, 1.2] {
        for sizing in Sizing::ALL {
            let c = report.curve(skew, sizing).unwrap();
            for p in &c.points {
                assert!(p.s3fifo >= p.lru, "skew {skew} {sizing:?}: {p:?}");
            }
            assert!(c.points[0].s3fifo > c.points[0].lru + 0.02, "skew {skew} {sizing:?}: {:?}", c.points[0]);
        }
    }
    assert!(report.shortfalls.iter().all(|s| s.skew == 0.7), "{:?}", report.shortfalls);

    // Part 2: the tier takes load off the database and makes the median read faster.
    assert_eq!(report.tier.len(), options.tier_sizes().len());
    let alone = &report.tier[0];
    assert_eq!((alone.caches, alone.hit_ratio), (0, 0.0));
    for r in &report.tier {
        assert!(r.violations.is_empty(), "{r:?}");
        assert!(r.reads > 1000, "{r:?}");
        assert!(r.read_p50_ms > 0.0 && r.read_p50_ms <= r.read_p99_ms && r.read_p99_ms <= r.read_max_ms);
    }
    for r in &report.tier[1..] {
        assert!((0.3..1.0).contains(&r.hit_ratio), "{r:?}");
        // At least half of the hit ratio comes off the database's reads (fills after invalidations
        // and the cold start take some back).
        assert!(
            r.db_reads_per_s < (1.0 - r.hit_ratio / 2.0) * alone.db_reads_per_s,
            "tier {r:?} vs alone {alone:?}"
        );
        assert!(r.read_p50_ms < alone.read_p50_ms, "tier {r:?} vs alone {alone:?}");
    }

    // Part 3: without leases the hot key's expiry sends a herd to the database; leases cut its
    // peak at least in half and its total to a few.
    let (off, on) = (report.herd_run(false).unwrap(), report.herd_run(true).unwrap());
    for h in [off, on] {
        assert!(h.violations.is_empty(), "{h:?}");
        assert!(h.before <= 2, "the database is quiet before the event: {h:?}");
    }
    assert!(off.total >= 8 && off.peak >= 2, "no herd without leases: {off:?}");
    assert!(on.peak * 2 <= off.peak, "leases on {on:?} vs off {off:?}");
    assert!(on.total * 3 <= off.total, "leases on {on:?} vs off {off:?}");
    assert!(on.lease_waits > 0 && off.lease_waits == 0);

    // Part 4: invalidation keeps stale reads rare and within the bound; TTLs alone do not; the
    // flush on reconnect keeps a partition within the bound, its absence does not.
    let run = |setup| report.staleness_run(setup).unwrap();
    let (inval, ttl) = (run(Setup::Invalidation), run(Setup::TtlOnly));
    let (flush, no_flush) = (run(Setup::PartitionFlush), run(Setup::PartitionNoFlush));
    for r in [inval, ttl, flush, no_flush] {
        assert!(r.reads > 500, "{r:?}");
        assert_eq!(r.ages_ms.len() as u64, r.stale_reads);
    }
    for r in [inval, ttl, flush] {
        assert!(r.violations.is_empty() && r.bound_violations == 0, "{r:?}");
        assert!(r.max_age_ms <= r.bound_ms, "{r:?}");
    }
    assert!(inval.bound_ms < ttl.bound_ms && ttl.bound_ms == ttl.ttl_ms);
    assert!(inval.stale_reads * 10 < ttl.stale_reads, "invalidation {inval:?} vs TTL only {ttl:?}");
    assert!(ttl.max_age_ms > inval.bound_ms, "TTL-only reads older than invalidation's bound: {ttl:?}");
    assert!(flush.flushes > 0, "{flush:?}");
    // During the partition (after the silence is noticed) neither run serves from its cache.
    for r in [flush, no_flush] {
        let bucket = |t: f64| (t * 1e3 / r.bucket_ms) as usize;
        let (from, to) = (bucket(PARTITION.0.as_secs_f64() + 0.15), bucket(PARTITION.1.as_secs_f64()));
        assert!(r.hits_per_bucket[from..to].iter().all(|&h| h == 0), "{:?}", &r.hits_per_bucket[from..to]);
        assert!(r.hits_per_bucket[to..].iter().sum::<u64>() > 0, "hits again after the heal");
    }
    assert!(no_flush.bound_violations > 0 && no_flush.max_age_ms > no_flush.bound_ms, "{no_flush:?}");
    assert!(!no_flush.violations.is_empty(), "the bound check flags the bug");

    // Deterministic: the same seed gives the same numbers.
    // Every part, every number (the simulations too), whatever the thread count.
    let again = run_cache(&CacheLabOptions { threads: 1, ..CacheLabOptions::quick(1) }, &|_| {}).unwrap();
    assert_eq!(serde_json::to_string(&report).unwrap(), serde_json::to_string(&again).unwrap());
    let other_seed = run_cache(&CacheLabOptions::quick(2).only_part(4), &|_| {}).unwrap();
    assert_ne!(
        serde_json::to_string(&report.staleness).unwrap(),
        serde_json::to_string(&other_seed.staleness).unwrap()
    );

    // The report: JSON, plots in both formats, HTML.
    let written = write_report(&report, &dir).unwrap();
    for name in [
        "report.json",
        "index.html",
        "hit-ratio-zipf-070.svg",
        "hit-ratio-zipf-099.png",
        "hit-ratio-zipf-120.svg",
        "hit-ratio-gap.svg",
        "tier-db-load.svg",
        "tier-latency.png",
        "herd.svg",
        "staleness-cdf.svg",
        "partition-timeline.svg",
        "scenario-tier-0.toml",
        "scenario-tier-2.toml",
        "scenario-herd-leases-on.toml",
        "scenario-staleness-partition-no-flush.toml",
    ] {
        let path = dir.join(name);
        assert!(written.contains(&path), "{name} not written");
        assert!(std::fs::metadata(&path).unwrap().len() > 500, "{name} is nearly empty");
    }
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // The files are the scenarios that ran: the no-tier one is the database alone.
    let no_tier = std::fs::read_to_string(dir.join("scenario-tier-0.toml")).unwrap();
    assert!(no_tier.contains("[protocol.raft]") && !no_tier.contains("[protocol.cached]"));
    let partition = std::fs::read_to_string(dir.join("scenario-staleness-partition-no-flush.toml")).unwrap();
    assert!(
        partition.contains("cache_no_flush_on_reconnect")
            && partition.contains("groups = [[1, 2, 3], [4, 5]]")
    );
    for part in ["Part 1.", "Part 2.", "Part 3.", "Part 4."] {
        assert!(html.contains(part), "{part} missing from index.html");
    }
    assert!(html.contains("hit-ratio-gap.svg") && html.contains("docs/labs/cache.md"));
    std::fs::remove_dir_all(&dir).unwrap();
}

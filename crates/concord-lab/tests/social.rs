//! `concord lab social --quick` (Lab 1), end to end into a temporary directory: every run ran,
//! every file is written, and the measured numbers have the shape docs/labs/social.md predicts
//! ("Expected results"). One run of the lab is shared by the tests (it takes seconds, not
//! milliseconds); determinism is checked on the cheapest piece that covers the whole driver.

use concord_lab::social::report::Summary;
use concord_lab::social::{run_social, write_report, SocialOptions, SocialReport};
use std::sync::OnceLock;

fn quick() -> &'static SocialReport {
    static REPORT: OnceLock<SocialReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let report = run_social(&SocialOptions::quick(1), &|line| eprintln!("{line}")).unwrap();
        println!("{}", concord_lab::social::report::text_summary(&report));
        report
    })
}

fn summary() -> &'static Summary {
    &quick().summary
}

#[test]
fn every_run_ran_and_every_file_is_written() {
    let report = quick();
    let names: Vec<&str> = report.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "push-all",
            "leader crash",
            "partition",
            "cache node dies",
            "sharded, overload",
            "single node, overload",
            "single node crash"
        ]
    );
    for r in &report.runs {
        assert!(r.records.len() > 100, "{}: {} actions", r.name, r.records.len());
    }
    let dir = std::env::temp_dir().join(format!("concord-social-lab-test-{}", std::process::id()));
    let files = write_report(report, &dir).unwrap();
    for name in [
        "report.json",
        "index.html",
        "followers.svg",
        "celebrity.png",
        "crash.svg",
        "likes.svg",
        "cache.svg",
        "throughput.png",
    ] {
        let path = dir.join(name);
        assert!(files.contains(&path), "{name} not listed");
        assert!(std::fs::metadata(&path).unwrap().len() > 200, "{name} is (nearly) empty");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert!(json["summary"]["fanout"]["push_celebrity_writes"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_baseline_serves_every_action_and_timelines_are_fresh() {
    let s = summary();
    for k in &s.latency {
        assert!(k.count > 0, "{k:?}");
        assert!(k.ok_fraction > 0.99, "{k:?}");
        assert!(k.p50_ms > 0.0 && k.p99_ms < 250.0, "{k:?}");
    }
    assert!(s.stale_timelines < 0.01, "{}", s.stale_timelines);
}

#[test]
fn the_celebrity_fan_out_is_measured_and_the_hybrid_bounds_it() {
    let f = &summary().fanout;
    let o = &quick().options;
    assert!(f.celebrity_followers > o.fanout_threshold, "{f:?}");
    // Fan-out for all: one timeline write per follower, finished in finite time.
    assert_eq!(f.push_celebrity_writes, f.celebrity_followers, "{f:?}");
    assert!(f.push_celebrity_fanout_ms.is_some_and(|ms| ms > 0.0), "{f:?}");
    // The hybrid: no write for the celebrity, and at most the threshold for any post.
    assert_eq!(f.hybrid_celebrity_writes, 0);
    assert!(f.hybrid_writes_per_post <= o.fanout_threshold as f64);
    assert!(f.hybrid_writes_per_post < f.push_writes_per_post, "{f:?}");
    // ... paid for on reads: more requests per timeline read.
    assert!(f.hybrid_requests_per_read > f.push_requests_per_read, "{f:?}");
    // Pipelined per shard, the celebrity's fan-out still takes longer than almost every ordinary
    // post's: the cost the hybrid does not pay. (Everyone's p99 in the second after the post is
    // reported, not asserted: at this size the pipelined burst barely moves it – the answer key
    // gives the numbers, and `--fanout-batch 1`'s.)
    let celebrity_ms = f.push_celebrity_fanout_ms.expect("checked above");
    assert!(celebrity_ms > 2.0 * f.hybrid_fanout_p99_ms, "{f:?}");
    // Counted in keys, not requests, the fan-out shows (a 500-key part is one request but 500
    // keys): push-all's shards touch more keys, and its busiest 250 ms on a shard – the
    // celebrity's post, ~370 keys on each of 4 shards – is far above the hybrid's.
    let sum = |v: &[u64]| v.iter().sum::<u64>();
    assert!(sum(&f.push_shard_keys) > 2 * sum(&f.hybrid_shard_keys), "{f:?}");
    assert!(f.push_shard_keys_peak_per_s > 4.0 * f.hybrid_shard_keys_peak_per_s, "{f:?}");
    assert!(f.push_shard_keys_peak_per_s > 4.0 * f.push_shard_keys_mean_per_s, "{f:?}");
}

#[test]
fn a_leader_crash_leaves_a_finite_window_on_that_shard_only() {
    let c = &summary().crash;
    assert_eq!(c.crashed_shards.len(), 1, "{c:?}");
    let crashed = c.crashed_shards[0];
    let window = c.unavailable_ms[&crashed];
    // An election (150–300 ms) plus the client noticing (an attempt timeout of 300 ms).
    assert!(window > 100.0 && window < 3_000.0, "{c:?}");
    for (shard, w) in &c.unavailable_ms {
        if *shard != crashed {
            assert!(*w < window / 2.0, "shard {shard}: {c:?}");
            assert_eq!(c.failed[shard], 0, "shard {shard}: {c:?}");
        }
    }
}

#[test]
fn likes_diverge_in_the_partition_and_converge_after_the_heal() {
    let p = &summary().partition;
    assert!(p.likes_during_partition > 0, "{p:?}");
    assert!(p.max_divergence > 0, "{p:?}");
    assert!(p.converged, "{p:?}");
    assert!(p.final_values.len() >= 2, "{p:?}");
    assert!(p.converged_after_heal_ms.is_some(), "{p:?}");
}

#[test]
fn a_dead_cache_node_costs_hits_for_a_while() {
    let c = summary().cache.as_ref().expect("the quick lab has a cache tier");
    assert!(c.hit_ratio_before > 0.5, "{c:?}");
    assert!(c.hit_ratio_after < c.hit_ratio_before, "{c:?}");
    assert!(c.misses_per_s_after > c.misses_per_s_before, "{c:?}");
}

#[test]
fn follows_cross_shards() {
    let x = &summary().cross_shard;
    assert!(x.follows > 10, "{x:?}");
    assert!(x.cross_shard > 0 && x.cross_shard < x.follows, "{x:?}");
}

#[test]
fn the_sharded_deployment_out_serves_one_machine() {
    let b = &summary().benefits;
    assert!(b.sharded_ok_per_s > 1.5 * b.single_ok_per_s, "{b:?}");
    assert!(b.single_failed_in_crash > b.sharded_failed_in_crash, "{b:?}");
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let mut o = SocialOptions::quick(1);
    o.users = 1;
    let e = run_social(&o, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("users = 1"), "{e}");
    let mut o = SocialOptions::quick(1);
    o.replicas = 9;
    let e = run_social(&o, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("replicas = 9"), "{e}");
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let small = || SocialOptions { users: 600, duration_s: 3.0, rate_per_s: 60.0, ..SocialOptions::quick(5) };
    let a = run_social(&small(), &|_| {}).unwrap();
    let b = run_social(&small(), &|_| {}).unwrap();
    assert_eq!(serde_json::to_string(&a.summary).unwrap(), serde_json::to_string(&b.summary).unwrap());
    let actions = |r: &SocialReport| r.runs.iter().map(|r| r.records.len()).collect::<Vec<_>>();
    assert_eq!(actions(&a), actions(&b));
}

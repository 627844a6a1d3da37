//! The acceptance criterion: on Zipf traces the frequency-aware policy (S3-FIFO) hits at
//! least as often as LRU at the same byte budget – for skews 0.7, 0.99 and 1.2 and several cache
//! sizes. Plus two independent checks that the numbers mean something: LRU agrees with Che's
//! approximation, and no policy beats the oracle that holds the most popular keys.

use concord_cache::policy::PolicyKind;
use concord_cache::trace::{
    che_lru_hit_ratio, hit_ratio_table, run_look_aside, run_look_aside_sized, top_keys_hit_ratio,
    trace_entry_charge, varied_value_bytes, zipf_trace, Zipf,
};

const KEYS: u64 = 10_000;
const REQUESTS: usize = 200_000;
const VALUE_BYTES: usize = 100;
const SEED: u64 = 42;

#[test]
fn s3fifo_hits_at_least_as_often_as_lru_on_zipf() {
    let rows = hit_ratio_table(&[0.7, 0.99, 1.2], &[0.01, 0.05, 0.1, 0.2], KEYS, REQUESTS, VALUE_BYTES, SEED);
    assert_eq!(rows.len(), 12);
    for row in rows {
        assert_eq!(row.lru.budget_bytes, row.s3fifo.budget_bytes);
        assert!(
            row.s3fifo.hits >= row.lru.hits,
            "skew {} cache {}%: S3-FIFO {:.4} < LRU {:.4}",
            row.skew,
            row.cache_fraction * 100.0,
            row.s3fifo.ratio(),
            row.lru.ratio()
        );
    }
}

#[test]
fn lru_matches_ches_approximation_and_no_policy_beats_the_oracle() {
    for skew in [0.7, 0.99, 1.2] {
        let zipf = Zipf::new(KEYS, skew);
        let trace = zipf_trace(KEYS, skew, REQUESTS, SEED);
        for entries in [100, 1000] {
            let budget = entries * trace_entry_charge(VALUE_BYTES);
            let lru = run_look_aside(PolicyKind::Lru, budget, VALUE_BYTES, &trace).ratio();
            let che = che_lru_hit_ratio(&zipf, entries);
            // Che is a steady-state approximation; the replay also pays up to `entries` cold
            // misses out of 200k requests (≤ 0.5%).
            assert!((lru - che).abs() < 0.02, "skew {skew}, {entries} entries: LRU {lru:.4} vs Che {che:.4}");
            let oracle = top_keys_hit_ratio(&zipf, entries);
            let s3 = run_look_aside(PolicyKind::S3Fifo, budget, VALUE_BYTES, &trace).ratio();
            // Sampling noise of a 200k trace: ±0.5% at most.
            assert!(s3 <= oracle + 0.005, "skew {skew}, {entries}: S3-FIFO {s3:.4} > oracle {oracle:.4}");
            assert!(lru <= oracle + 0.005, "skew {skew}, {entries}: LRU {lru:.4} > oracle {oracle:.4}");
        }
    }
}

#[test]
fn a_scan_of_one_time_keys_flushes_lru_but_not_s3fifo() {
    // 50 hot keys used a few times each, then 1000 keys read once (a crawler, a batch job), then
    // the hot keys again, in a cache of 100 entries. LRU keeps whatever came last – the scan;
    // S3-FIFO's probation queue lets the one-time keys pass through its 10% and keeps the hot set.
    let hot: Vec<u64> = (0..50).collect();
    let mut trace = Vec::new();
    for _ in 0..4 {
        trace.extend(&hot);
    }
    trace.extend(1_000..2_000);
    trace.extend(&hot);
    let budget = 100 * trace_entry_charge(VALUE_BYTES);
    let before_scan = 4 * 50 - 50; // hits of the first four rounds: 150 for any policy
    let lru = run_look_aside(PolicyKind::Lru, budget, VALUE_BYTES, &trace);
    let s3 = run_look_aside(PolicyKind::S3Fifo, budget, VALUE_BYTES, &trace);
    assert_eq!(lru.hits, before_scan, "LRU lost the whole hot set to the scan");
    assert_eq!(s3.hits, before_scan + 50, "S3-FIFO kept the whole hot set");
}

#[test]
fn replays_are_deterministic() {
    let trace = zipf_trace(KEYS, 0.99, 50_000, SEED);
    for policy in PolicyKind::ALL {
        let budget = 500 * trace_entry_charge(VALUE_BYTES);
        let a = run_look_aside(policy, budget, VALUE_BYTES, &trace);
        let b = run_look_aside(policy, budget, VALUE_BYTES, &trace);
        assert_eq!(a, b);
    }
}

#[test]
fn s3fifo_hits_at_least_as_often_as_lru_with_varied_value_sizes() {
    // Values of 16..4096 bytes (log-uniform per key, mean ≈ 740): the budget is bytes, so a big
    // popular value competes with many small ones. Budgets: 1%, 5%, 10%, 20% of the total bytes.
    let total: u64 = (0..KEYS).map(|r| trace_entry_charge(varied_value_bytes(r))).sum();
    for skew in [0.7, 0.99, 1.2] {
        let trace = zipf_trace(KEYS, skew, REQUESTS, SEED);
        for percent in [1, 5, 10, 20] {
            let budget = total * percent / 100;
            let run = |policy| run_look_aside_sized(policy, budget, 4096, &trace, varied_value_bytes);
            let (lru, s3) = (run(PolicyKind::Lru), run(PolicyKind::S3Fifo));
            println!("skew {skew} {percent}%: LRU {:.4} S3-FIFO {:.4}", lru.ratio(), s3.ratio());
            assert!(
                s3.hits >= lru.hits,
                "skew {skew}, {percent}% of bytes: S3-FIFO {:.4} < LRU {:.4}",
                s3.ratio(),
                lru.ratio()
            );
        }
    }
}

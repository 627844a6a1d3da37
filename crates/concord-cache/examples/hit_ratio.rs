//! Print the hit-ratio table of LRU and S3-FIFO on Zipf traces, and the placement table.
//!
//! ```text
//! cargo run --release -p concord-cache --example hit_ratio            # 100k keys, 2M requests
//! cargo run -p concord-cache --example hit_ratio -- --quick           # 10k keys, 200k requests
//! ```
//!
//! Deterministic: the same arguments print the same numbers (seed 42).

use concord_cache::placement::placement_report;
use concord_cache::policy::PolicyKind;
use concord_cache::trace::{hit_ratio_table, run_look_aside, trace_entry_charge, zipf_trace};
use std::time::Instant;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (keys, requests) = if quick { (10_000, 200_000) } else { (100_000, 2_000_000) };
    let value_bytes = 100;
    let skews = [0.7, 0.99, 1.2];
    let fractions = [0.001, 0.01, 0.05, 0.1, 0.2, 0.4];

    println!(
        "# Hit ratio, look-aside replay: {keys} keys, {requests} requests, {value_bytes}-byte \
         values ({} budget bytes per entry), seed 42",
        trace_entry_charge(value_bytes)
    );
    println!("| skew | cache (% of keys) | LRU | S3-FIFO | S3-FIFO − LRU |");
    println!("|---:|---:|---:|---:|---:|");
    for row in hit_ratio_table(&skews, &fractions, keys, requests, value_bytes, 42) {
        let (lru, s3) = (row.lru.ratio(), row.s3fifo.ratio());
        println!(
            "| {:.2} | {:.1} | {:.4} | {:.4} | {:+.4} |",
            row.skew,
            row.cache_fraction * 100.0,
            lru,
            s3,
            s3 - lru
        );
    }

    println!();
    println!("# Placement over 100000 keys (ideal join movement 1/(N+1), leave 1/N)");
    println!("| scheme | N | max/mean | min/mean | moved on join | leave of node 1 | leave of node N |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for s in placement_report(&[3, 5, 10], 100_000) {
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} |",
            s.scheme,
            s.nodes,
            s.max_over_mean,
            s.min_over_mean,
            s.moved_on_join,
            s.moved_on_leave_first,
            s.moved_on_leave_last
        );
    }

    println!();
    println!("# Replay speed (skew 0.99, cache 1% of keys; wall clock, this machine)");
    println!("| policy | ns per request |");
    println!("|---|---:|");
    let trace = zipf_trace(keys, 0.99, requests, 42);
    let budget = (keys / 100).max(1) * trace_entry_charge(value_bytes);
    for policy in PolicyKind::ALL {
        let started = Instant::now();
        let run = run_look_aside(policy, budget, value_bytes, &trace);
        let nanos = started.elapsed().as_nanos() as f64 / run.requests as f64;
        println!("| {} | {nanos:.0} |", policy.name());
    }
}

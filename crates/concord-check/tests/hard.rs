//! Regression tests for the history shapes that used to end undecided (issue 24): Raft runs under
//! `scenarios/raft-hard.toml` – 12 clients, many timeouts (`info`), every write a fresh value – which the
//! search before the just-in-time handling of unknown operations could not decide in 60 s.
//!
//! Each test gives the checker a time limit far above what it needs now (milliseconds) but below
//! what the old search needed, so a regression shows as "unknown".

use concord_check::gen::{self, GenConfig};
use concord_check::linearizability::{check, check_history_with, Options, Progress};
use concord_check::{formats, Model};
use concord_core::history::History;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A generated history of the hard shape (see [`gen::bench_hard`]), one per seed.
fn hard(seed: u64) -> (History, usize) {
    let (config, nth) = gen::bench_hard(12_000, 6);
    (gen::history(&GenConfig { seed: gen::BENCH_SEED + seed, ..config }), nth + seed as usize)
}

#[test]
fn generated_hard_histories_are_decided_both_ways() {
    for seed in 0..4 {
        let (h, nth) = hard(seed);
        let verdict = check(&h, Model::Kv, TIMEOUT);
        assert!(verdict.is_linearizable(), "seed {seed}: {verdict}");
        let mut never = h.clone();
        gen::corrupt_read_never_written(&mut never, nth).expect("the history has reads");
        let verdict = check(&never, Model::Kv, TIMEOUT);
        assert!(verdict.is_not_linearizable(), "seed {seed}, never written: {verdict}");
        let mut stale = h.clone();
        if gen::corrupt_read_stale(&mut stale, nth).is_some() {
            let verdict = check(&stale, Model::Kv, TIMEOUT);
            assert!(verdict.is_not_linearizable(), "seed {seed}, stale: {verdict}");
        }
    }
}

/// Key `k1` of `concord sim scenarios/raft-hard.toml --seed 33 --history h.jsonl` (1 230 events, 30
/// `info`), as a Jepsen log on one register: undecided after 60 s before, decided in milliseconds
/// now.
#[test]
fn raft_hard_seed_33_key_k1_is_linearizable() {
    let text = include_str!("data/raft-hard-seed33-k1.log");
    let history = formats::parse(text, formats::Format::JepsenLog).expect("the fixture parses");
    let verdict = check(&history, Model::Register, TIMEOUT);
    assert!(verdict.is_linearizable(), "{verdict}");
}

#[test]
fn threads_do_not_change_the_verdict_or_its_explanation() {
    let (h, nth) = hard(7);
    let mut bad = h.clone();
    gen::corrupt_read_never_written(&mut bad, nth).expect("the history has reads");
    for history in [&h, &bad] {
        let one = check(history, Model::Kv, TIMEOUT).to_string();
        for jobs in [2, 4, 16] {
            let many = check_history_with(history, Model::Kv, &Options { jobs, ..Options::new(TIMEOUT) });
            assert_eq!(many.to_string(), one, "jobs {jobs}");
        }
    }
}

/// A queue is still the hard case (no unknown-operation facts apply): long, concurrent, many
/// timeouts. Out of time or out of cache memory, the verdict says which partition and which
/// operations were hard, and the progress counters saw the search.
#[test]
fn an_undecided_verdict_names_the_partition_and_the_hard_operations() {
    let config = GenConfig {
        seed: 3,
        workload: gen::Workload::Queue,
        clients: 12,
        ops: 3_000,
        values: 0,
        info_percent: 10,
        cas_percent: 0,
    };
    let h = gen::history(&config);
    let progress = Progress::default();
    let options = Options { progress: Some(&progress), ..Options::new(Duration::from_millis(300)) };
    let verdict = check_history_with(&h, Model::Queue, &options);
    let text = verdict.to_string();
    assert!(verdict.is_unknown(), "{text}");
    assert!(text.contains("time limit of 300 ms") && text.contains("key (no key): time ran out"), "{text}");
    assert!(text.contains("the hard operations") && text.contains("queue"), "{text}");
    let status = progress.snapshot();
    assert_eq!(status.len(), 1);
    assert!(status[0].done && status[0].cached > 0 && status[0].deepest > 0, "{status:?}");

    let options = Options { cache_bytes_max: 1 << 20, ..Options::new(Duration::from_secs(60)) };
    let text = check_history_with(&h, Model::Queue, &options).to_string();
    assert!(
        text.contains("cache bound of 1 MiB") && text.contains("the caches reached their bound"),
        "{text}"
    );
}

/// The cache bound is on the caches alive at once: ten keys whose caches (about 10 MB each) fit the
/// bound one at a time, but not all together, are decided one after the other.
#[test]
fn the_cache_bound_counts_only_the_caches_alive() {
    let (config, _) = gen::bench_hard(100_000, 6);
    let h = gen::history(&config);
    let options = Options { cache_bytes_max: 32 << 20, ..Options::new(Duration::from_secs(60)) };
    let verdict = check_history_with(&h, Model::Kv, &options);
    assert!(verdict.is_linearizable(), "{verdict}");
}

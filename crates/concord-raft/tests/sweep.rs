//! Randomised fault sweeps: the correct configuration survives every seed; each deliberate bug is
//! caught within 1 000 seeds (usually within a few dozen).

use concord_raft::sweep::{first_failure, run_seed};
use concord_raft::{Mutations, RaftConfig};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(6);

#[test]
fn correct_raft_survives_random_faults() {
    let config = RaftConfig::default();
    let mut acked = 0;
    for seed in 0..12 {
        match run_seed(&config, seed, RUN) {
            Ok(r) => acked += r.writes_acked,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(acked > 100, "the sweep does real work ({acked} writes acknowledged)");
}

/// Many more seeds, for humans: `cargo test -p concord-raft --release -- --ignored`.
#[test]
#[ignore]
fn correct_raft_survives_many_seeds() {
    let config = RaftConfig::default();
    if let Some((seed, e)) = first_failure(&config, 0, 1000, RUN) {
        panic!("seed {seed}: {e}");
    }
}

fn caught(flag: &str) -> (u64, String) {
    let mut config = RaftConfig::default();
    config.mutations = Mutations::default();
    config.mutations.enable(flag).unwrap();
    first_failure(&config, 0, 1000, RUN).unwrap_or_else(|| panic!("mutation {flag} survived 1000 seeds"))
}

#[test]
fn mutation_vote_without_term_check_is_caught() {
    let (seed, e) = caught("vote_without_term_check");
    println!("caught at seed {seed}: {e}");
}

#[test]
fn mutation_commit_old_term_by_counting_is_caught() {
    let (seed, e) = caught("commit_old_term_by_counting");
    println!("caught at seed {seed}: {e}");
}

#[test]
fn mutation_skip_vote_sync_is_caught() {
    let (seed, e) = caught("skip_vote_sync");
    println!("caught at seed {seed}: {e}");
}

#[test]
fn mutation_read_from_deposed_leader_is_caught() {
    let (seed, e) = caught("read_from_deposed_leader");
    println!("caught at seed {seed}: {e}");
}

#[test]
fn mutation_skip_log_matching_check_is_caught() {
    let (seed, e) = caught("skip_log_matching_check");
    println!("caught at seed {seed}: {e}");
}

//! Randomised fault sweeps (see `concord_raft::sweep`): the correct configuration survives every
//! seed, and the deliberate bugs in `Mutations` are caught.
//!
//! Seeds found with `cargo test -p concord-raft --release -- --ignored --nocapture`
//! (`every_mutation_is_caught_within_1000_seeds`), which also prints where each bug is first caught.
//! Current first catches: `skip_log_matching_check` seed 0, `vote_without_term_check` seed 7,
//! `read_from_deposed_leader` seed 11, `skip_vote_sync` seed 678. `commit_old_term_by_counting` fires
//! in ~45% of seeds but its consequence (an overwrite of the early-committed entry) needs Figure 8's
//! exact interleaving: this sweep first catches it at seed 1603 (then 1959; none in 0..1000), so it
//! misses the "within 1 000 seeds" goal; the scripted Figure 8 test in `tests/paper.rs` catches it
//! deterministically.

use concord_raft::sweep::{first_failure, run_seed};
use concord_raft::RaftConfig;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(6);

fn mutated(flag: &str) -> RaftConfig {
    let mut config = RaftConfig::default();
    config.mutations.enable(flag).unwrap();
    config
}

#[test]
fn correct_raft_survives_random_faults() {
    let config = RaftConfig::default();
    let mut acked = 0;
    let mut reads = 0;
    for seed in 0..12 {
        match run_seed(&config, seed, RUN) {
            Ok(r) => {
                acked += r.writes_acked;
                reads += r.reads_served;
                assert_eq!(r.mutation_fired, 0);
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(acked > 100 && reads > 50, "the sweep does real work ({acked} writes, {reads} reads)");
}

/// The first failing seed among the first `limit`, which must also pass without the mutation.
fn caught_early(flag: &str, limit: u64) -> String {
    let (seed, error) = first_failure(&mutated(flag), 0, limit, RUN)
        .unwrap_or_else(|| panic!("{flag} not caught in the first {limit} seeds"));
    run_seed(&RaftConfig::default(), seed, RUN)
        .unwrap_or_else(|e| panic!("seed {seed} fails without {flag}: {e}"));
    error
}

#[test]
fn mutation_skip_log_matching_check_is_caught() {
    let e = caught_early("skip_log_matching_check", 20);
    assert!(e.contains("log matching") || e.contains("safety") || e.contains("term decreases"), "{e}");
}

#[test]
fn mutation_vote_without_term_check_is_caught() {
    let e = caught_early("vote_without_term_check", 20);
    assert!(e.contains("election safety"), "{e}");
}

#[test]
fn mutation_read_from_deposed_leader_is_caught() {
    let e = caught_early("read_from_deposed_leader", 30);
    assert!(e.contains("stale read"), "{e}");
}

#[test]
fn mutation_skip_vote_sync_is_caught_by_seed_678() {
    // A crash loses an unsynced vote; the node votes again in the same term; two leaders.
    let e = run_seed(&mutated("skip_vote_sync"), 678, RUN).expect_err("seed 678 catches skip_vote_sync");
    assert!(e.contains("election safety"), "{e}");
    run_seed(&RaftConfig::default(), 678, RUN).expect("seed 678 passes without the mutation");
}

#[test]
fn mutation_commit_old_term_by_counting_is_caught_by_seed_1603() {
    // Found by sweeping seeds 1000..4000: a leader commits an older term's entry by counting,
    // crashes, and a node holding a later term's entry at that index wins and overwrites it.
    let e = run_seed(&mutated("commit_old_term_by_counting"), 1603, RUN).expect_err("seed 1603 catches it");
    assert!(e.contains("leader completeness") || e.contains("state machine safety"), "{e}");
    run_seed(&RaftConfig::default(), 1603, RUN).expect("seed 1603 passes without the mutation");
}

/// Many seeds, for humans (release mode recommended): the correct Raft survives 1 000 seeds.
#[test]
#[ignore]
fn correct_raft_survives_1000_seeds() {
    if let Some((seed, e)) = first_failure(&RaftConfig::default(), 0, 1000, RUN) {
        panic!("seed {seed}: {e}");
    }
}

/// Every mutation the sweep can catch is caught within 1 000 seeds; prints the first catch.
#[test]
#[ignore]
fn every_mutation_is_caught_within_1000_seeds() {
    for flag in
        ["skip_log_matching_check", "vote_without_term_check", "read_from_deposed_leader", "skip_vote_sync"]
    {
        match first_failure(&mutated(flag), 0, 1000, RUN) {
            Some((seed, e)) => println!("{flag}: caught at seed {seed}: {e}"),
            None => panic!("{flag} survived 1000 seeds"),
        }
    }
}

/// The same faults with durable state machines (as the real database's redb store): applies after
/// the last checkpoint are lost in a crash, recovery resumes from the machine's checkpoint, and a
/// lagging follower is sent the checkpoint's state. Every check of the sweep still holds.
#[test]
fn correct_raft_with_durable_machines_survives_random_faults() {
    let config = RaftConfig::default();
    let (mut acked, mut crashes) = (0, 0);
    for seed in 0..200 {
        match concord_raft::sweep::run_seed_durable(&config, seed, RUN) {
            Ok(r) => {
                acked += r.writes_acked;
                crashes += r.crashes;
            }
            Err(e) => panic!("durable seed {seed}: {e}"),
        }
    }
    assert!(acked > 1500 && crashes > 100, "the sweep does real work ({acked} writes, {crashes} crashes)");
}

/// `cargo test -p concord-raft --release -- --ignored durable_1000`: the long durable sweep.
#[test]
#[ignore]
fn correct_raft_with_durable_machines_survives_1000_seeds() {
    let config = RaftConfig::default();
    for seed in 0..1000 {
        if let Err(e) = concord_raft::sweep::run_seed_durable(&config, seed, RUN) {
            panic!("durable seed {seed}: {e}");
        }
    }
}

/// The real server's snapshot settings: a catch-up tail kept below each snapshot, and no new
/// snapshot while one is being sent. Both the in-memory and the durable machines stay correct, and
/// the tail does its job: followers a little behind catch up from the log, so fewer snapshots are
/// sent than with the same seeds without it.
#[test]
fn correct_raft_with_a_catch_up_tail_and_deferred_snapshots_survives_random_faults() {
    let server_like = RaftConfig {
        snapshot_catchup_entries: 10,
        defer_snapshots_while_sending: true,
        ..RaftConfig::default()
    };
    let (mut sent_with, mut sent_without) = (0, 0);
    for seed in 0..200 {
        let report = run_seed(&server_like, seed, RUN).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        sent_with += report.snapshots_sent;
        if let Err(e) = concord_raft::sweep::run_seed_durable(&server_like, seed, RUN) {
            panic!("durable seed {seed}: {e}");
        }
        sent_without += run_seed(&RaftConfig::default(), seed, RUN).unwrap().snapshots_sent;
    }
    assert!(sent_with * 2 < sent_without, "{sent_with} snapshots sent with the tail, {sent_without} without");
}

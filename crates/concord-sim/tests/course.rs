//! The course's scenarios (docs/course/) say what a run shows; these tests hold them to it, so a
//! change in a protocol that makes a chapter's experiment stop showing its idea fails here, not in
//! a lecture.
//!
//! * `scenarios/cap-raft.toml` and `scenarios/cap-dynamo.toml` (chapter 5): one partition, two
//!   systems. Raft refuses requests on the minority side and stays linearizable; Dynamo with sloppy
//!   quorums answers nearly everything, converges after the heal, and its history is not
//!   linearizable – because of the partition: the first read that cannot be placed comes after it
//!   began.
//! * `scenarios/raft-bug.toml` (chapter 7): a deliberate vote bug is caught by the invariant
//!   checks within 100 seeds (as the chapter's sweep shows), and the same seed passes without it.

use concord_core::history::EventType;
use concord_dynamo::{DynamoConfig, DynamoNode};
use concord_sim::protocols::raft::{RaftKv, RaftScenario};
use concord_sim::sweep::first_failure;
use concord_sim::{RunOptions, RunReport, Scenario, Simulation};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(scenario_path(name)).unwrap_or_else(|e| panic!("scenarios/{name}: {e}"))
}

fn raft(name: &str, text: &str) -> Arc<Scenario<RaftScenario>> {
    Arc::new(Scenario::parse(&scenario_path(name), text).unwrap_or_else(|e| panic!("{e}")))
}

fn run_raft(scenario: &Arc<Scenario<RaftScenario>>, seed: u64) -> RunReport {
    Simulation::<RaftKv>::new(Arc::clone(scenario), RunOptions { seed, ..Default::default() }).run()
}

/// The partition of both CAP scenarios, in nanoseconds of virtual time.
const PARTITION_START_NS: u64 = 2_000_000_000;

#[test]
fn cap_raft_refuses_on_the_minority_and_stays_linearizable() {
    let scenario = raft("cap-raft.toml", &text("cap-raft.toml"));
    for seed in 1..=3 {
        let report = run_raft(&scenario, seed);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        let refused_in_partition = report
            .history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Fail)
            .filter(|e| e.time.as_nanos() >= PARTITION_START_NS)
            .count();
        assert!(
            refused_in_partition >= 50,
            "seed {seed}: only {refused_in_partition} requests refused after the cut"
        );
    }
}

#[test]
fn cap_dynamo_answers_through_the_partition_and_is_not_linearizable() {
    let scenario: Arc<Scenario<DynamoConfig>> = Arc::new(
        Scenario::parse(&scenario_path("cap-dynamo.toml"), &text("cap-dynamo.toml"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let report =
        Simulation::<DynamoNode>::new(Arc::clone(&scenario), RunOptions { seed: 1, ..Default::default() })
            .run();
    assert_eq!(report.violations.len(), 1, "only linearizability should fail: {:?}", report.violations);
    assert!(report.violations[0].starts_with("linearizability: NOT linearizable"), "{:?}", report.violations);
    let failed = report.history.events.iter().filter(|e| e.kind == EventType::Fail).count();
    assert!(failed <= 10, "Dynamo refused {failed} requests: it should answer through the partition");
    // The checker names the first operation it cannot place ("stuck: … [events A..B]"): it must
    // have been invoked after the cut, or the chapter's story (the partition did it) is wrong.
    let stuck = report.violations[0].split("stuck:").nth(1).expect("the verdict names a stuck operation");
    let invoked: usize = stuck
        .split("[events ")
        .nth(1)
        .and_then(|rest| rest.split("..").next())
        .and_then(|index| index.parse().ok())
        .unwrap_or_else(|| panic!("no event index in {stuck:?}"));
    let at = report.history.events[invoked].time.as_nanos();
    assert!(at >= PARTITION_START_NS, "the first stale read was invoked at {at} ns, before the partition");
}

#[test]
fn raft_bug_is_caught_within_a_hundred_seeds_and_only_with_the_bug() {
    let with_bug = text("raft-bug.toml");
    assert!(with_bug.contains("vote_without_term_check = true"));
    let scenario = raft("raft-bug.toml", &with_bug);
    let (seed, violations) = first_failure::<RaftKv>(&scenario, 1..101, RunReport::safety_violated)
        .expect("the vote bug went uncaught in 100 seeds");
    assert!(violations.iter().any(|v| v.contains("election safety")), "seed {seed}: {violations:?}");
    let without = raft(
        "raft-bug.toml",
        &with_bug.replace("vote_without_term_check = true", "vote_without_term_check = false"),
    );
    let report = run_raft(&without, seed);
    assert!(report.passed(), "seed {seed} fails without the bug too: {:?}", report.violations);
}

//! Nodes that lose what they synced (issue #23, finding 6): the nemesis's `truncate-log` cuts a
//! random suffix of a node's synced writes (a truncated WAL segment), `wipe` loses them all (a
//! wiped data directory). Raft's safety rests on stable storage: a node that forgot entries it
//! acknowledged, or the vote it gave, can help elect a leader that misses committed writes.
//!
//! The rule (what the real node does since its WAL knows what was synced): a node whose disk lost
//! synced writes does not boot – it must be removed and added back under a new id. With the rule,
//! histories stay linearizable over many seeds of random faults that include both losses. Without
//! it (`[disk] boot_after_lost_synced = true`, the deliberate bug: the old behaviour), a scripted
//! loss of committed writes is caught by the checker, and the same seed passes with the rule.

use concord_sim::protocols::raft::{RaftKv, RaftScenario};
use concord_sim::{RunOptions, RunReport, Scenario, Simulation};
use std::path::Path;
use std::sync::Arc;

const RAFT_FAULTS: &str = include_str!("../../../scenarios/raft-faults.toml");

fn parse(name: &str, text: &str) -> Arc<Scenario<RaftScenario>> {
    Arc::new(Scenario::parse(Path::new(name), text).unwrap_or_else(|e| panic!("{e}")))
}

fn run(scenario: &Arc<Scenario<RaftScenario>>, seed: u64) -> RunReport {
    Simulation::<RaftKv>::new(Arc::clone(scenario), RunOptions { seed, ..Default::default() }).run()
}

/// `scenarios/raft-faults.toml`, shortened, with both losses among the random faults.
fn random_losses() -> Arc<Scenario<RaftScenario>> {
    let text = RAFT_FAULTS
        .replace("duration = \"20s\"", "duration = \"5s\"")
        .replace("heal_at = \"15s\"", "heal_at = \"3500ms\"")
        .replace("interval = \"1s\"", "interval = \"400ms\"")
        // Safety only: a refused node stays down for good (its replacement by a new member is
        // not modelled), so up to two of five can be gone and liveness is not what is tested.
        .replace(
            "checks = [\"invariants\", \"linearizability\", \"progress\"]",
            "checks = [\"invariants\", \"linearizability\"]",
        )
        .replace(
            "kinds = [\"crash\", \"partition\", \"isolate\", \"one-way\", \"pause\", \"skew\"]",
            "kinds = [\"truncate-log\", \"wipe\", \"crash\", \"partition\", \"isolate\", \"pause\"]",
        );
    assert!(
        text.contains("truncate-log") && text.contains("5s") && !text.contains("progress"),
        "raft-faults.toml changed shape"
    );
    parse("raft-lost-disks.toml", &text)
}

/// With the rule, every seed stays linearizable (and every invariant holds) while nodes lose
/// their synced writes, and the losses really happen.
#[test]
fn wiped_and_truncated_nodes_do_not_boot_and_histories_stay_linearizable() {
    let scenario = random_losses();
    let (mut lost, mut refused) = (0, 0);
    // 200 seeds of 5 s virtual: a few seconds (the workspace builds dependencies optimised).
    for seed in 1..=200 {
        let report = run(&scenario, seed);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        lost += report.summary.disk.synced_writes_lost;
        refused += report.summary.boots_refused;
    }
    assert!(
        lost > 0 && refused > 0,
        "the faults did not happen ({lost} synced writes lost, {refused} boots refused)"
    );
}

/// Three nodes. Node 3 is cut off while writes commit on nodes 1 and 2; then node 1 crashes and
/// node 2 loses a suffix of its synced log, and node 3 comes back: nodes 2 and 3 are a majority,
/// and neither holds what 1 and 2 committed.
fn scripted_loss(boot_after_lost_synced: bool) -> Arc<Scenario<RaftScenario>> {
    let text = format!(
        r#"
description = "a node that lost committed entries votes again"
[run]
nodes = 3
duration = "5s"
heal_at = "4s"
checks = ["invariants", "linearizability"]

[network]
latency = {{ dist = "uniform", min = "1ms", max = "4ms" }}

[disk]
sync_latency = {{ dist = "uniform", min = "200us", max = "1ms" }}
boot_after_lost_synced = {boot_after_lost_synced}

[workload]
clients = 3
keys = 2
mix = {{ read = 0.4, write = 0.4, cas = 0.2 }}
timeout = "300ms"
think = "5ms"

[[nemesis.schedule]]
action = "isolate"
at = "1s"
node = 3

[[nemesis.schedule]]
action = "crash"
at = "2500ms"
node = 1

[[nemesis.schedule]]
action = "truncate-log"
at = "2500ms"
node = 2

[[nemesis.schedule]]
action = "heal"
at = "2510ms"

[[nemesis.schedule]]
action = "restart"
at = "2520ms"
node = 2

[[nemesis.schedule]]
action = "restart"
at = "3500ms"
node = 1

[protocol.raft]
election_timeout_min = "150ms"
election_timeout_max = "300ms"
heartbeat_interval = "50ms"
"#
    );
    parse("raft-lost-committed.toml", &text)
}

#[test]
fn booting_a_node_that_lost_synced_writes_is_caught_and_the_rule_prevents_it() {
    let buggy = scripted_loss(true);
    let caught = (1..=40).find(|&seed| run(&buggy, seed).safety_violated());
    let seed = caught.expect("booting after a loss of synced writes was not caught in 40 seeds");
    let report = run(&buggy, seed);
    println!("caught at seed {seed}: {:?}", report.violations);
    assert!(report.summary.disk.synced_writes_lost > 0);
    let with_rule = run(&scripted_loss(false), seed);
    assert!(with_rule.summary.boots_refused > 0, "the rule was not exercised");
    assert!(with_rule.passed(), "seed {seed} fails with the rule too: {:?}", with_rule.violations);
}

//! Sharding under the nemesis: `scenarios/sharding.toml` (5 nodes, 4 shards of 3 replicas, a
//! metadata group, a slot move started every ~300 ms while nodes crash and partitions cut) passes
//! with moves finishing, and each deliberate bug in the move protocol is caught.
//!
//! The long sweep is a command, not a test: `concord sim scenarios/sharding.toml --seeds 1..2000`.

use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use std::path::Path;

fn scenario(bug: Option<&str>) -> LoadedScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/sharding.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if let Some(bug) = bug {
        text = text.replace("churn = \"300ms\"", &format!("churn = \"300ms\"\nbug = \"{bug}\""));
        assert!(text.contains("bug = "), "the scenario's churn line moved; the test must follow");
    }
    LoadedScenario::parse(&path, &text).unwrap()
}

#[test]
fn slots_move_under_faults_and_every_history_stays_linearizable() {
    let scenario = scenario(None);
    let mut flipped = 0;
    let mut settled = 0;
    for seed in 1..=12 {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        assert!(
            report.passed(),
            "seed {seed}:\n{}\nreplay: concord sim scenarios/sharding.toml --seed {seed}",
            report.violations.join("\n")
        );
        let events = &report.summary.protocol_events;
        flipped += events.get("move-flipped").copied().unwrap_or(0);
        settled += events.get("move-settled").copied().unwrap_or(0);
        assert!(
            report.summary.ops.ok > 500,
            "seed {seed}: only {} operations succeeded",
            report.summary.ops.ok
        );
    }
    // About 60 moves a seed flip while the nemesis works: a run in which none did proves nothing.
    assert!(flipped > 300 && settled > 300, "{flipped} moves flipped, {settled} settled in 12 seeds");
}

/// The first failing seed of `bug` within `seeds`, and what the checkers said.
fn first_caught(bug: &str, seeds: std::ops::RangeInclusive<u64>) -> Option<(u64, String)> {
    let scenario = scenario(Some(bug));
    seeds.into_iter().find_map(|seed| {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        (!report.passed()).then(|| (seed, report.violations.join("\n")))
    })
}

#[test]
fn a_source_serving_writes_after_its_fence_is_caught() {
    // Caught in 6 of the first 40 seeds when written; the issue asks for within 1 000.
    let (seed, found) = first_caught("writes-after-fence", 1..=1_000).expect("the bug went unnoticed");
    assert!(found.contains("linearizab"), "seed {seed}: {found}");
}

#[test]
fn a_flip_before_the_target_holds_the_data_is_caught() {
    // Caught in 21 of the first 40 seeds when written.
    let (seed, found) = first_caught("flip-before-copy", 1..=1_000).expect("the bug went unnoticed");
    assert!(found.contains("linearizab"), "seed {seed}: {found}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    // Many groups in one process, coalesced timers, forwarding and the mover: none of it may let
    // iteration order or anything but the seed decide what happens.
    let scenario = scenario(None);
    let hash = |seed| {
        let options = RunOptions {
            seed,
            hash_trace: true,
            until: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        scenario.run(options).trace_hash.unwrap()
    };
    assert_eq!(hash(3), hash(3));
    assert_ne!(hash(3), hash(4));
}

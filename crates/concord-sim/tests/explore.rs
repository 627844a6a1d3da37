//! Exploring configurations (issue #25): each seed of `scenarios/*-explore.toml` draws its own cluster
//! size, quorums, timeouts, network, disk, workload and faults, and a few hundred seeds of each
//! pass here. The 2 000-seed sweeps are a documented command (README.md, BENCHMARKS.md):
//! `cargo run --release -- sim scenarios/raft-explore.toml --seeds 1..2000` (and dynamo, gossip).
//!
//! Also here: a drawn configuration written as a plain scenario replays the exploring run byte for
//! byte; the exploration finds a broken protocol; and every scenario kept in `tests/regressions/`
//! passes its seeds.

use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::{sweep_file, SweepOptions};
use concord_sim::{RunOptions, ScenarioFile};
use std::path::{Path, PathBuf};

fn lab(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name)
}

/// Sweep `seeds` of `file`; the failures, one line each with what the seed drew.
fn failures(file: &ScenarioFile, seeds: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let results = sweep_file(file, seeds.clone(), &SweepOptions::default(), &|_| {});
    assert_eq!(results.len() as u64, seeds.end() - seeds.start() + 1);
    results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let drawn = r.drawn.as_ref().map(|d| d.summary()).unwrap_or_default();
            format!("seed {}: {:?}\n  drawn: {drawn}", r.seed, r.violations)
        })
        .collect()
}

fn explore_passes(name: &str, seeds: std::ops::RangeInclusive<u64>) {
    let file = ScenarioFile::load(&lab(name)).unwrap();
    assert!(file.is_exploring(), "{name} has an [explore] table");
    let failed = failures(&file, seeds);
    assert!(failed.is_empty(), "{} seeds of {name} failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn raft_explore_passes_300_seeds() {
    explore_passes("raft-explore.toml", 1..=300);
}

#[test]
fn dynamo_explore_passes_300_seeds() {
    explore_passes("dynamo-explore.toml", 1..=300);
}

#[test]
fn gossip_explore_passes_300_seeds() {
    explore_passes("gossip-explore.toml", 1..=300);
}

/// The explorations reach the corners they claim: every N/R/W combination Dynamo allows, one-node
/// and seven-node Raft clusters, one entry per append.
#[test]
fn the_explorations_cover_their_space() {
    let file = ScenarioFile::load(&lab("dynamo-explore.toml")).unwrap();
    let mut quorums = std::collections::BTreeSet::new();
    for seed in 1..=2000 {
        let (_, drawn) = file.for_seed(seed).unwrap();
        let drawn = drawn.unwrap();
        let get = |k: &str| drawn.values.iter().find(|(p, _)| p == k).unwrap().1.as_integer().unwrap();
        quorums.insert((get("protocol.dynamo.n"), get("protocol.dynamo.r"), get("protocol.dynamo.w")));
    }
    // n ≤ 5 and r, w ≤ n: 1 + 4 + 9 + 16 + 25 combinations.
    assert_eq!(quorums.len(), 55, "{quorums:?}");
    assert!(quorums.contains(&(3, 1, 1)), "issue #25's point");

    let file = ScenarioFile::load(&lab("raft-explore.toml")).unwrap();
    let drawn: Vec<String> =
        (1..=300).map(|seed| file.for_seed(seed).unwrap().1.unwrap().summary()).collect();
    for needle in ["run.nodes = 1,", "run.nodes = 7,", "max_entries_per_append = 1,", "pre_vote = false"] {
        assert!(drawn.iter().any(|d| d.contains(needle)), "no seed of 300 drew {needle}");
    }
}

/// A failing seed's configuration, written as a plain scenario, is the same run: the same seed
/// gives the same trace, byte for byte (compared by hash), so it can be kept as a regression test.
#[test]
fn a_drawn_configuration_as_a_plain_scenario_replays_the_same_trace() {
    for name in ["raft-explore.toml", "dynamo-explore.toml", "gossip-explore.toml"] {
        let file = ScenarioFile::load(&lab(name)).unwrap();
        for seed in [3, 17] {
            let (exploring, drawn) = file.for_seed(seed).unwrap();
            let plain = LoadedScenario::parse(Path::new("plain.toml"), &drawn.unwrap().text).unwrap();
            let run = |s: &LoadedScenario| {
                s.run(RunOptions { seed, until: None, trace: None, hash_trace: true }).trace_hash.unwrap()
            };
            assert_eq!(run(&exploring), run(&plain), "{name} seed {seed}");
        }
    }
}

/// The exploration is not a check that cannot fail: Dynamo without its repair mechanisms
/// (read repair, anti-entropy) leaves replicas apart in many drawn configurations.
#[test]
fn the_dynamo_exploration_catches_a_replica_that_is_never_repaired() {
    let text = std::fs::read_to_string(lab("dynamo-explore.toml")).unwrap();
    let broken = text
        .replace("protocol.dynamo.read_repair = { one_of = [true, false] }\n", "")
        .replace("[protocol.dynamo]\n", "[protocol.dynamo]\nread_repair = false\nanti_entropy = false\n");
    let file = ScenarioFile::parse(&lab("dynamo-explore.toml"), &broken).unwrap();
    let failed = failures(&file, 1..=40);
    assert!(failed.len() >= 10, "only {} of 40 seeds caught it", failed.len());
    assert!(failed.iter().any(|f| f.contains("convergence")), "{failed:?}");
}

/// Every scenario kept in `tests/regressions/` (a failing seed's configuration, shrunk, or an
/// issue's reproduction) passes the seeds its first line names: `# regression-seeds: A..B`.
#[test]
fn every_kept_regression_scenario_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let seeds =
            text.lines().next().and_then(|l| l.strip_prefix("# regression-seeds:")).unwrap_or_else(|| {
                panic!("{}: the first line must be `# regression-seeds: A..B`", path.display())
            });
        let seeds = concord_sim::sweep::parse_seed_range(seeds.trim()).unwrap();
        let file = ScenarioFile::parse(&path, &text).unwrap();
        let failed = failures(&file, seeds);
        assert!(failed.is_empty(), "{}:\n{}", path.display(), failed.join("\n"));
    }
}

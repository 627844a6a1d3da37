//! Behaviour is pinned: the shipped scenarios' traces, at a few seeds each, hash to the values in
//! `tests/golden/trace-hashes.txt`. A refactor that claims to change nothing (issue #15) must leave
//! them all equal; a change that means to alter behaviour (a new message field, another timer)
//! re-blesses them in the same commit, so the diff shows which runs changed:
//!
//! ```sh
//! CONCORD_BLESS_TRACES=1 cargo test -p concord-sim --test golden_traces
//! ```

use concord_sim::{RunOptions, ScenarioFile};
use std::path::Path;

/// Scenario files (under `scenarios/`) and the seeds whose traces are pinned.
const PINNED: &[(&str, &[u64])] = &[
    ("gossip.toml", &[1, 2]),
    ("raft-faults.toml", &[1, 2]),
    ("dynamo.toml", &[1, 2]),
    ("eventual-propagation.toml", &[1]),
    ("raft-explore.toml", &[1, 2]),
    ("dynamo-explore.toml", &[1, 2]),
    ("gossip-explore.toml", &[1]),
    ("regions.toml", &[1]),
];

fn golden_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/trace-hashes.txt")
}

fn current() -> String {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut out = String::from(
        "# scenario seed trace-hash (FNV-1a of the JSON Lines trace); see tests/golden_traces.rs\n",
    );
    for (name, seeds) in PINNED {
        let file = ScenarioFile::load(&scenarios.join(name)).unwrap();
        for &seed in *seeds {
            let (scenario, _) = file.for_seed(seed).unwrap();
            let report = scenario.run(RunOptions { seed, hash_trace: true, ..Default::default() });
            out.push_str(&format!("scenarios/{name} {seed} {:016x}\n", report.trace_hash.unwrap()));
        }
    }
    out
}

#[test]
fn the_shipped_scenarios_give_the_pinned_traces() {
    let now = current();
    if std::env::var_os("CONCORD_BLESS_TRACES").is_some() {
        std::fs::write(golden_file(), &now).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(golden_file()).unwrap_or_default();
    let changed: Vec<String> = pinned
        .lines()
        .zip(now.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  pinned {a}\n  now    {b}"))
        .collect();
    assert!(
        changed.is_empty() && pinned.lines().count() == now.lines().count(),
        "traces changed:\n{}\nIf the change is meant, re-bless: CONCORD_BLESS_TRACES=1 cargo test -p concord-sim --test golden_traces",
        changed.join("\n")
    );
}

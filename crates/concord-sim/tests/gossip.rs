//! The gossip protocol converges under loss and partitions – and the convergence check is able to
//! say so when it does not (anti-entropy switched off).

use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::{sweep, SweepOptions};
use concord_sim::RunOptions;
use std::path::{Path, PathBuf};

fn lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/gossip.toml")
}

fn lab_text() -> String {
    std::fs::read_to_string(lab()).expect("scenarios/gossip.toml is shipped")
}

#[test]
fn the_lab_scenario_is_what_the_acceptance_asks_for() {
    // 20% loss and a partition that heals: guard the scenario against silent weakening.
    let text = lab_text();
    assert!(text.contains("loss = 0.2"), "20% loss");
    assert!(text.contains("action = \"partition\"") && text.contains("action = \"heal\""));
    assert!(text.contains("\"convergence\""));
}

#[test]
fn gossip_converges_in_every_seed_of_a_1000_seed_sweep() {
    let scenario = LoadedScenario::load(&lab()).unwrap();
    let results = sweep(&scenario, 1..=1000, &SweepOptions::default(), &|_| {});
    assert_eq!(results.len(), 1000);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("seed {}: {:?}", r.seed, r.violations))
        .collect();
    assert!(failed.is_empty(), "{} seeds failed, e.g. {:?}", failed.len(), &failed[..failed.len().min(3)]);
    // The runs really were under fire: messages lost, partitions and crashes happened.
    let dropped: u64 = results.iter().map(|r| r.summary.drops.get("loss").copied().unwrap_or(0)).sum();
    let crashes: u64 = results.iter().map(|r| r.summary.crashes).sum();
    assert!(dropped > 1000 && crashes > 1000, "dropped {dropped}, crashes {crashes}");
}

#[test]
fn without_anti_entropy_the_convergence_check_fails() {
    let broken = format!("{}\nanti_entropy = false\n", lab_text());
    let scenario = LoadedScenario::parse(&lab(), &broken).unwrap();
    let results = sweep(&scenario, 1..=50, &SweepOptions::default(), &|_| {});
    let caught = results.iter().filter(|r| !r.passed()).count();
    assert!(caught >= 45, "only {caught} of 50 seeds caught the missing anti-entropy");
    let example = results.iter().find(|r| !r.passed()).unwrap();
    assert!(
        example.violations.iter().any(|v| v.starts_with("convergence:") && v.contains("lacks")),
        "{:?}",
        example.violations
    );
}

#[test]
fn a_failed_run_reports_which_items_are_missing_where() {
    let broken = format!("{}\nanti_entropy = false\n", lab_text());
    let scenario = LoadedScenario::parse(&lab(), &broken).unwrap();
    let report = scenario.run(RunOptions { seed: 1, ..Default::default() });
    assert!(!report.passed());
    assert!(report.violations.iter().any(|v| v.contains("acknowledged item(s)")), "{:?}", report.violations);
}

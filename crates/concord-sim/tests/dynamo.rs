//! Dynamo under crashes, partitions, loss and duplication: replicas converge after the heal and no
//! acknowledged write is lost – and the checks can fail: without read repair and anti-entropy the
//! replicas do not converge, and last-write-wins loses updates that dotted version vectors keep.
//!
//! The 2 000-seed sweep is a documented command, not part of the default suite:
//! `cargo test --release -p concord-sim --test dynamo -- --ignored` (or, with the CLI,
//! `concord sim scenarios/dynamo.toml --seeds 1..2000`).

use concord_core::NodeId;
use concord_dynamo::DynamoNode;
use concord_sim::protocols::dynamo::AckLedger;
use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::{sweep, SweepOptions};
use concord_sim::{RunOptions, Scenario, Simulation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/dynamo.toml")
}

fn lab_text() -> String {
    std::fs::read_to_string(lab()).expect("scenarios/dynamo.toml is shipped")
}

fn failures(scenario: &LoadedScenario, seeds: std::ops::RangeInclusive<u64>) -> (usize, Vec<String>) {
    let results = sweep(scenario, seeds, &SweepOptions::default(), &|_| {});
    let failed = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("seed {}: {:?}", r.seed, r.violations))
        .collect();
    (results.len(), failed)
}

#[test]
fn the_lab_scenario_has_the_faults_the_issue_asks_for() {
    let text = lab_text();
    for needle in [
        "\"crash\"",
        "\"partition\"",
        "loss = 0.05",
        "duplicate = 0.02",
        "heal_at",
        "\"convergence\"",
        "\"invariants\"",
    ] {
        assert!(text.contains(needle), "scenarios/dynamo.toml lost {needle}");
    }
}

#[test]
fn dynamo_converges_and_loses_no_acknowledged_write_in_a_small_sweep() {
    let scenario = LoadedScenario::load(&lab()).unwrap();
    let (runs, failed) = failures(&scenario, 1..=40);
    assert_eq!(runs, 40);
    assert!(failed.is_empty(), "{} seeds failed, e.g. {:?}", failed.len(), &failed[..failed.len().min(2)]);
}

#[test]
#[ignore = "the 2 000-seed sweep: run with --release -- --ignored"]
fn dynamo_passes_2000_seeds() {
    let scenario = LoadedScenario::load(&lab()).unwrap();
    let start = Instant::now();
    let (runs, failed) = failures(&scenario, 1..=2000);
    eprintln!("2000 seeds in {:.1}s wall, {} failed", start.elapsed().as_secs_f64(), failed.len());
    assert_eq!(runs, 2000);
    assert!(failed.is_empty(), "{} seeds failed, e.g. {:?}", failed.len(), &failed[..failed.len().min(3)]);
}

fn regression(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions").join(name);
    std::fs::read_to_string(path).expect("the regression scenario is shipped")
}

/// Issue #25's scenario (kept in `tests/regressions/`, where `explore.rs` runs it) made harsher
/// for the one copy: half the messages lost and no hinted
/// handoff, so a W=1 write often lives only on its coordinator for a while. On an honest disk no
/// acknowledged write is lost; on a disk whose fsync lies, the crash takes writes the coordinator
/// acknowledged, and the ledger must say so – the passing W=1 sweep is not a check that cannot fail.
#[test]
fn at_w1_a_lying_fsync_loses_acknowledged_writes_and_the_ledger_says_so() {
    let harsh = |lying: bool| {
        let text = regression("dynamo-w1-crashes.toml")
            .replace("on_crash = \"lose\"", &format!("on_crash = \"lose\"\nlying_fsync = {lying}"))
            .replace("shape = 1.5 }", "shape = 1.5 }\nloss = 0.5")
            .replace("vnodes = 16", "vnodes = 16\nhinted_handoff = false")
            .replace("checks = [\"convergence\", \"invariants\", \"progress\"]", "checks = [\"invariants\"]");
        LoadedScenario::parse(&lab(), &text).unwrap()
    };
    let (runs, failed) = failures(&harsh(false), 1..=10);
    assert!(failed.is_empty(), "an honest disk lost writes in {} of {runs} seeds: {failed:?}", failed.len());
    let (runs, failed) = failures(&harsh(true), 1..=10);
    assert!(failed.len() >= 8, "only {} of {runs} seeds lost a write", failed.len());
    assert!(failed.iter().all(|f| f.contains("acknowledged write(s) lost")), "{failed:?}");
}

#[test]
fn without_read_repair_and_anti_entropy_replicas_do_not_converge() {
    let broken = format!("{}read_repair = false\nanti_entropy = false\n", lab_text());
    let scenario = LoadedScenario::parse(&lab(), &broken).unwrap();
    let (runs, failed) = failures(&scenario, 1..=20);
    assert!(failed.len() >= 3, "only {} of {runs} seeds caught it", failed.len());
    assert!(failed.iter().any(|f| f.contains("convergence")), "{failed:?}");
}

/// Run the lab without faults but with many clients on two keys (lots of concurrent writes), and
/// count acknowledged writes that no replica holds or saw overwritten.
fn lost_updates(resolution: &str, seed: u64) -> (usize, usize) {
    let text = format!(
        "{}\nresolution = \"{resolution}\"\n",
        lab_text()
            .replace("clients = 6", "clients = 12")
            .replace("keys = 8", "keys = 2")
            .replace("checks = [\"convergence\", \"invariants\", \"progress\"]", "checks = []")
    );
    let scenario: Scenario<concord_dynamo::DynamoConfig> = Scenario::parse(&lab(), &text).unwrap();
    let mut sim =
        Simulation::<DynamoNode>::new(Arc::new(scenario), RunOptions { seed, ..Default::default() });
    sim.start();
    let mut ledger = AckLedger::default();
    let end = concord_core::Time::ZERO + Duration::from_secs(20);
    while sim.now() < end && sim.step() {
        ledger.collect(&sim.nodes()).unwrap();
    }
    ledger.acknowledge_from(sim.history());
    let nodes = sim.nodes();
    let siblings: usize = (1..=5)
        .filter_map(|i| sim.node(NodeId(i)))
        .flat_map(|n| n.store().values())
        .map(|o| match o {
            concord_dynamo::store::Object::Register(v) => v.siblings.len().saturating_sub(1),
            _ => 0,
        })
        .sum();
    (ledger.lost(&nodes).len(), siblings)
}

#[test]
fn lww_loses_concurrent_updates_that_dotted_version_vectors_keep() {
    let (mut lww_lost, mut dvv_lost) = (0, 0);
    for seed in 1..=3 {
        lww_lost += lost_updates("lww", seed).0;
        dvv_lost += lost_updates("dvv", seed).0;
    }
    assert_eq!(dvv_lost, 0, "DVV keeps concurrent writes as siblings");
    assert!(lww_lost > 0, "LWW silently dropped no concurrent write in 3 seeds");
    eprintln!("acknowledged writes lost: LWW {lww_lost}, DVV {dvv_lost}");
}

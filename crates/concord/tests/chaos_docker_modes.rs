//! `concord chaos` on five containers in the two other modes, on the subnet 10.63.0.0/24 (the
//! other docker tests use 10.57–10.59; the two tests here take turns on it):
//!
//! * **sharded**: a register workload while a shard move (slots holding a key in use, or a
//!   replica) is issued in the middle of a partition; the history must stay linearizable and
//!   every node must serve every key after the heal;
//! * **eventual**: the siblings workload through a partition and a kill; after the heal every node
//!   must return the same sibling set per key, and no acknowledged write may be lost; the run's
//!   t-visibility curve and the model's are written.
//!
//! Needs what chaos_docker.rs needs (Docker, docker-compose, a static busybox, root, nsenter,
//! iptables); without them the tests print why and pass – unless `CI` is set.

mod chaos_common;

use chaos_common::{docker_available, Image, Run};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// The tests share one subnet: one at a time.
static SUBNET: Mutex<()> = Mutex::new(());

/// Run `concord chaos` with `args` on the docker backend (its own image, the 10.63.0 subnet); the
/// run must be valid and the cluster must have recovered. `None` where docker cannot run here.
fn chaos(name: &str, args: &[&str], out: &Path) -> Option<Run> {
    if !docker_available() {
        return None;
    }
    let _turn = SUBNET.lock().unwrap_or_else(|e| e.into_inner());
    let image = Image::new(name);
    let backend = image.docker_args("10.63.0");
    let run = chaos_common::chaos(name, &[&backend[..], args].concat(), out);
    assert_eq!(run.results["recovered"], true, "{}", run.results);
    Some(run)
}

#[test]
fn a_sharded_cluster_stays_linearizable_through_a_shard_move_during_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // 16 s at 4 s: one partition window (4–8 s) and one shard move issued at 6 s, inside it: the
    // slots of a key in use move to another shard, or a replica to another node (the seed's pick),
    // while a node is cut off.
    let args = [
        "--mode",
        "sharded",
        "--time-limit",
        "16",
        "--interval",
        "4",
        "--clients",
        "5",
        "--op-timeout",
        "3",
        "--nemesis",
        "partition-one,shard-move",
        "--seed",
        "2",
    ];
    let Some(Run { results, timeline, .. }) = chaos("sharded", &args, &out) else { return };
    assert!(results["ops"]["ok"].as_u64().unwrap() > 50, "{results}");
    let find = |kind: &str| {
        timeline.iter().find(|f| f["nemesis"] == kind).unwrap_or_else(|| panic!("{kind} in {timeline:?}"))
    };
    let (partition, shard_move) = (find("partition-one"), find("shard-move"));
    assert!(partition.get("errors").is_none(), "the partition and its healing worked: {partition}");
    let t = |f: &Value, k: &str| f[k].as_f64().unwrap();
    assert!(
        t(partition, "start") < t(shard_move, "start") && t(shard_move, "start") < t(partition, "end"),
        "the move was issued during the partition: {timeline:?}"
    );
    // The map took the move (an admin action may be refused during a fault – not here: the map's
    // group keeps a majority when one node is cut off).
    assert!(shard_move.get("errors").is_none(), "{shard_move}");
    assert!(shard_move["what"].as_str().unwrap().starts_with("shard-move: "), "{shard_move}");
    assert_eq!(results["run"]["admin"].as_array().map(Vec::len), Some(1), "{results}");
}

#[test]
fn an_eventual_cluster_converges_and_loses_no_acknowledged_write_through_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "--mode",
        "eventual",
        "--time-limit",
        "20",
        "--interval",
        "4",
        "--clients",
        "6",
        "--op-timeout",
        "3",
        "--nemesis",
        "majority-split,kill",
        "--seed",
        "5",
        "--keys",
        "6",
        "--ops-per-key",
        "60",
    ];
    let Some(Run { results, timeline, .. }) = chaos("eventual", &args, &out) else { return };
    assert_eq!(timeline.len(), 2, "a split and a kill: {timeline:?}");
    for f in &timeline {
        assert!(f.get("errors").is_none(), "{f}");
    }
    let s = &results["siblings"];
    let acknowledged = s["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 30, "the clients got writes acknowledged: {results}");
    assert_eq!(s["lost"], serde_json::json!([]), "{results}");
    assert_eq!(s["diverging"], serde_json::json!([]), "{results}");
    assert_eq!(acknowledged, s["present"].as_u64().unwrap() + s["superseded"].as_u64().unwrap());
    assert!(results["criterion"].as_str().unwrap().contains("linearizability is NOT"), "{results}");
    // The t-visibility measure and the model's curve beside it.
    let st = &results["staleness"];
    assert!(st["reads"].as_u64().unwrap() > 20, "{st}");
    assert_eq!(st["quorum"], serde_json::json!({"n": 3, "r": 1, "w": 2}), "{st}");
    assert!(st["bins"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["reads"].as_u64() > Some(0) && b["model_p"].is_number()));
    for file in ["visibility.svg", "visibility.png", "latency.svg", "index.html", "history.jsonl"] {
        assert!(std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0) > 0, "{file} written");
    }
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        index.contains("visibility.svg") && index.contains("not the criterion"),
        "the report shows the curves"
    );
}

//! `concord chaos --backend local` with admin actions and in the eventual mode:
//!
//! * strong mode, five processes: a node is taken out of the Raft group and added back while
//!   another node is frozen (`member` overlapping `pause`); the history must stay linearizable;
//! * eventual mode, three processes: the siblings workload through a kill and a pause; the nodes
//!   must converge and no acknowledged write may be lost.

mod chaos_common;

use serde_json::Value;
use std::path::Path;

/// `concord chaos --backend local --op-timeout 2 ARGS`: the results and the timeline of a valid run.
fn chaos(args: &[&str], out: &Path) -> (Value, Vec<Value>) {
    let run =
        chaos_common::chaos("local", &[&["--backend", "local", "--op-timeout", "2"][..], args].concat(), out);
    (run.results, run.timeline)
}

#[test]
fn a_member_removed_and_added_back_during_a_pause_leaves_a_linearizable_history() {
    let dir = tempfile::tempdir().unwrap();
    // 12 s at 2 s: pauses at 2–4 and 6–8, a member out at 3–5 and 7–9.
    let args = ["--nodes", "5", "--clients", "5", "--time-limit", "12", "--interval", "2"];
    let (results, timeline) =
        chaos(&[&args[..], &["--nemesis", "pause,member", "--seed", "4"]].concat(), &dir.path().join("run"));
    assert!(results["ops"]["ok"].as_u64().unwrap() > 50, "{results}");
    let members: Vec<&Value> = timeline.iter().filter(|f| f["nemesis"] == "member").collect();
    assert_eq!(members.len(), 2, "{timeline:?}");
    // Each removal and re-add went through (a pause of one node of five leaves a majority).
    for m in &members {
        assert!(m.get("errors").is_none(), "{m}");
        assert!(m["what"].as_str().unwrap().contains("removed from the Raft group"), "{m}");
    }
    let admin: Vec<&str> =
        results["run"]["admin"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(admin.iter().filter(|a| a.contains("added back")).count(), 2, "{admin:?}");
    assert!(results["heal_errors"].as_array().unwrap().is_empty(), "{results}");
}

#[test]
fn eventual_processes_converge_and_keep_every_acknowledged_write_through_kill_and_pause() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--mode",
        "eventual",
        "--nodes",
        "3",
        "--clients",
        "4",
        "--time-limit",
        "12",
        "--interval",
        "2",
        "--nemesis",
        "kill,pause",
        "--seed",
        "6",
        "--keys",
        "4",
        "--ops-per-key",
        "60",
    ];
    let (results, timeline) = chaos(&args, &dir.path().join("run"));
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    let s = &results["siblings"];
    assert!(s["acknowledged"].as_u64().unwrap() > 20, "{results}");
    assert_eq!(s["lost"], serde_json::json!([]));
    assert_eq!(s["diverging"], serde_json::json!([]));
    assert!(results["staleness"]["reads"].as_u64().unwrap() > 0, "{results}");
}

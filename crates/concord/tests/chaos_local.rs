//! `concord chaos --backend local`: three `concord serve` processes of this binary on loopback,
//! SIGKILLed and SIGSTOPped on a seeded schedule under a register workload; the verdict must be
//! valid and the run's directory complete. Also: a partition asked of the local backend is
//! refused with the reason, before anything starts.

mod chaos_common;

use chaos_common::{chaos, Run};
use std::process::Command;

#[test]
fn kill_and_pause_of_local_processes_leave_a_linearizable_history() {
    let dir = tempfile::tempdir().unwrap();
    let run = chaos(
        "local, register",
        &[
            &["--backend", "local", "--nodes", "3", "--clients", "4", "--time-limit", "12"][..],
            &["--interval", "2", "--nemesis", "kill,pause", "--seed", "3", "--op-timeout", "2"],
        ]
        .concat(),
        &dir.path().join("run"),
    );
    let results = &run.results;
    assert_eq!(results["recovered"], true);
    assert!(results["ops"]["ok"].as_u64().unwrap() > 50, "the clients got work done: {results}");
    // 12 s in rounds of 2 s quiet + 2 s fault, the last 2 s quiet: faults at 2, 6.
    let timeline = &run.timeline;
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    for f in timeline {
        assert!(["kill", "pause"].contains(&f["nemesis"].as_str().unwrap()), "{f}");
        assert!(f["end"].as_f64().unwrap() > f["start"].as_f64().unwrap());
        assert!(f.get("errors").is_none(), "the fault and its undoing worked: {f}");
    }
    run.assert_written(&[
        "history.jsonl",
        "index.html",
        "latency.svg",
        "latency.png",
        "logs/node1.log",
        "logs/node3.log",
    ]);
    let history = run.read("history.jsonl");
    assert!(
        history.contains("\"f\":\"cas\"") && history.contains("\"f\":\"write\""),
        "all three kinds of op"
    );
}

#[test]
fn the_local_backend_refuses_partitions_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--nemesis", "kill,partition-leader", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot make partitions (partition-leader)"), "{stderr}");
    assert!(stderr.contains("--backend docker"), "{stderr}");
}

/// Run `concord chaos --backend local` with `workload` for a few seconds of kills and pauses of
/// three local nodes (the run must be valid, with work done and two faults).
fn run_workload(workload: &str, extra: &[&str]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let run = chaos(
        workload,
        &[
            &["--backend", "local", "--nodes", "3", "--clients", "4", "--time-limit", "10"][..],
            &["--interval", "2", "--nemesis", "kill,pause", "--seed", "5", "--op-timeout", "2"],
            &["--workload", workload],
            extra,
        ]
        .concat(),
        &dir.path().join("run"),
    );
    let results = &run.results;
    assert_eq!(results["run"]["workload"], workload);
    assert!(results["ops"]["ok"].as_u64().unwrap() > 30, "the clients got work done: {results}");
    assert_eq!(run.timeline.len(), 2, "{:?}", run.timeline);
    run.assert_written(&["history.jsonl", "index.html", "latency.svg", "logs/node1.log"]);
    (run, dir)
}

#[test]
fn the_set_workload_loses_no_acknowledged_add_under_kill_and_pause() {
    let (run, _dir) = run_workload("set", &[]);
    let results = &run.results;
    let details = &results["checks"][0]["details"];
    assert!(details["acknowledged"].as_u64().unwrap() > 20, "{details}");
    assert_eq!(details["lost"], serde_json::json!([]), "{details}");
    assert_eq!(results["final_reads_missing"], serde_json::json!([]));
    // The second checker: linearizability under the set model.
    assert_eq!(results["checks"][1]["valid"], true, "{results}");
    assert!(results["checks"][1]["checker"].as_str().unwrap().contains("set"), "{results}");
}

#[test]
fn the_bank_workload_conserves_the_total_under_kill_and_pause() {
    let (run, _dir) = run_workload("bank", &["--accounts", "5"]);
    let results = &run.results;
    let details = &results["checks"][0]["details"];
    // Every node's final read is among the reads.
    assert!(details["reads"].as_u64().unwrap() >= 3, "{details}");
    assert!(details["transfers_ok"].as_u64().unwrap() > 10, "{details}");
    let history = run.read("history.jsonl");
    assert!(history.contains("\"f\":\"transfer\"") && history.contains("\"f\":\"read\""));
}

#[test]
fn the_list_append_workload_passes_elle_under_kill_and_pause() {
    let (run, _dir) = run_workload("list-append", &[]);
    let results = &run.results;
    let details = &results["checks"][0]["details"];
    assert!(details["transactions"].as_u64().unwrap() > 30, "{details}");
    assert_eq!(details["anomalies"], serde_json::json!([]), "{details}");
    let page = run.read("elle.html");
    assert!(page.contains("dependency edges"), "the Elle page is written");
    // The history is Elle's transactional JSON form: `concord check` reads it.
    let check = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["check", "--model", "list-append"])
        .arg(run.out.join("history.jsonl"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

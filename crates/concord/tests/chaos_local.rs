//! `concord chaos --backend local`: three `concord serve` processes of this binary on loopback,
//! SIGKILLed and SIGSTOPped on a seeded schedule under a register workload; the verdict must be
//! valid and the run's directory complete. Also: a partition asked of the local backend is
//! refused with the reason, before anything starts.

use serde_json::Value;
use std::process::Command;
use std::time::Instant;

#[test]
fn kill_and_pause_of_local_processes_leave_a_linearizable_history() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--nodes", "3", "--clients", "4", "--time-limit", "12"])
        .args(["--interval", "2", "--nemesis", "kill,pause", "--seed", "3", "--op-timeout", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "concord chaos failed ({}):\n{stdout}\n{stderr}", run.status);
    assert!(stdout.starts_with("valid: "), "{stdout}");

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["recovered"], true);
    assert!(results["ops"]["ok"].as_u64().unwrap() > 50, "the clients got work done: {results}");
    // 12 s in rounds of 2 s quiet + 2 s fault, the last 2 s quiet: faults at 2, 6.
    let timeline: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("timeline.json")).unwrap()).unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    for f in &timeline {
        assert!(["kill", "pause"].contains(&f["nemesis"].as_str().unwrap()), "{f}");
        assert!(f["end"].as_f64().unwrap() > f["start"].as_f64().unwrap());
        assert!(f.get("errors").is_none(), "the fault and its undoing worked: {f}");
    }
    for file in
        ["history.jsonl", "index.html", "latency.svg", "latency.png", "logs/node1.log", "logs/node3.log"]
    {
        let len = std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{file} written");
    }
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"f\":\"cas\"") && history.contains("\"f\":\"write\""),
        "all three kinds of op"
    );
    eprintln!("local chaos run in {:?}", started.elapsed());
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
/// three local nodes; return the run's results.json (the run must be valid).
fn run_workload(workload: &str, extra: &[&str]) -> (Value, std::path::PathBuf, tempfile::TempDir) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--nodes", "3", "--clients", "4", "--time-limit", "10"])
        .args(["--interval", "2", "--nemesis", "kill,pause", "--seed", "5", "--op-timeout", "2"])
        .args(["--workload", workload])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "concord chaos --workload {workload} failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(stdout.starts_with("valid: "), "{stdout}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["run"]["workload"], workload);
    assert!(results["ops"]["ok"].as_u64().unwrap() > 30, "the clients got work done: {results}");
    let timeline: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("timeline.json")).unwrap()).unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    for file in ["history.jsonl", "index.html", "latency.svg", "logs/node1.log"] {
        let len = std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{file} written");
    }
    eprintln!("local chaos run of {workload} in {:?}", started.elapsed());
    (results, out, dir)
}

#[test]
fn the_set_workload_loses_no_acknowledged_add_under_kill_and_pause() {
    let (results, _out, _dir) = run_workload("set", &[]);
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
    let (results, out, _dir) = run_workload("bank", &["--accounts", "5"]);
    let details = &results["checks"][0]["details"];
    // Every node's final read is among the reads.
    assert!(details["reads"].as_u64().unwrap() >= 3, "{details}");
    assert!(details["transfers_ok"].as_u64().unwrap() > 10, "{details}");
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(history.contains("\"f\":\"transfer\"") && history.contains("\"f\":\"read\""));
}

#[test]
fn the_list_append_workload_passes_elle_under_kill_and_pause() {
    let (results, out, _dir) = run_workload("list-append", &[]);
    let details = &results["checks"][0]["details"];
    assert!(details["transactions"].as_u64().unwrap() > 30, "{details}");
    assert_eq!(details["anomalies"], serde_json::json!([]), "{details}");
    let page = std::fs::read_to_string(out.join("elle.html")).unwrap();
    assert!(page.contains("dependency edges"), "the Elle page is written");
    // The history is Elle's transactional JSON form: `concord check` reads it.
    let check = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["check", "--model", "list-append"])
        .arg(out.join("history.jsonl"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

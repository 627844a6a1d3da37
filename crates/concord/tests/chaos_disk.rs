//! `concord chaos` disk faults (docs/chaos.md, "Disk faults"): a node SIGKILLed, its WAL damaged
//! the way a crash can damage it – unsynced bytes lost, a torn record at the end – or the way it
//! cannot – a synced record flipped – and started again. The history must stay valid, and the
//! timeline must show what each fault did to the log and what the node did about it: the bytes
//! dropped, the torn tail cut and logged, the corrupt log refused with its file and offset, and the
//! node rebuilt (removed, wiped, added back). Once on local processes, once on containers (subnet
//! 10.67.0.0/24), where the bytes are reached through `docker cp` and a helper container.

mod chaos_common;

use chaos_common::{chaos, docker_available, Image, Run};
use serde_json::Value;

/// The three disk faults, one each, in the run's timeline; each met as it must be.
fn assert_disk_faults_met(run: &Run) {
    let results = &run.results;
    assert_eq!(results["recovered"], true, "every node served its final reads: {results}");
    let timeline = &run.timeline;
    let fault = |name: &str| -> &Value {
        timeline.iter().find(|f| f["nemesis"] == name).unwrap_or_else(|| panic!("no {name} in {timeline:?}"))
    };
    for f in timeline {
        assert!(f.get("errors").is_none(), "the fault and its undoing worked: {f}");
    }
    let observed = |f: &Value| -> String {
        f["observed"]
            .as_array()
            .map(|a| a.iter().map(|o| o.as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    };
    // Unsynced bytes lost: how many (perhaps none, when everything was synced at the kill).
    let lose = fault("disk-lose-unsynced");
    let lose_what = lose["what"].as_str().unwrap();
    assert!(lose_what.contains(" dropped") && lose_what.contains("synced"), "{lose}");
    // A torn record appended: the restarted node cut it and said so.
    let torn = fault("disk-torn-tail");
    assert!(torn["what"].as_str().unwrap().contains(" of a torn record appended at byte"), "{torn}");
    let seen = observed(torn);
    assert!(
        seen.contains("torn tail cut:") && seen.contains("truncating the torn tail of the WAL"),
        "{torn}"
    );
    // A synced record damaged: refused with file and offset, then rebuilt.
    let corrupt = fault("disk-corrupt");
    let what = corrupt["what"].as_str().unwrap();
    assert!(what.contains("flipped") && what.contains("inside the synced record at byte"), "{corrupt}");
    let seen = observed(corrupt);
    assert!(seen.contains("refused to start") && seen.contains("corrupt WAL data in"), "{corrupt}");
    assert!(seen.contains("at byte offset") && seen.contains(".log"), "file and offset named: {corrupt}");
    assert!(seen.contains("rebuilt: node"), "{corrupt}");
    assert!(!seen.contains("FAILED"), "{corrupt}");
    let checks = results["checks"].as_array().unwrap();
    let disk = checks
        .iter()
        .find(|c| c["checker"].as_str().unwrap().starts_with("disk faults"))
        .expect("a disk check");
    assert_eq!(disk["valid"], true, "{disk}");
    // The torn tail and the corruption are judged; so is a cut of unsynced bytes that fell inside
    // a record (a torn tail too).
    let judged: u64 = disk["summary"].as_str().unwrap().split(' ').next().unwrap().parse().unwrap();
    let cut_torn = u64::from(lose_what.contains("(a torn tail)"));
    assert_eq!(judged, 2 + cut_torn, "{disk} {lose}");
}

#[test]
fn disk_faults_on_local_processes_are_survived_reported_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 14 s at 2 s: faults at 2, 6 and 10 – one of each kind.
    let run = chaos(
        "local, disk faults",
        &[
            &["--backend", "local", "--nodes", "3", "--clients", "4", "--time-limit", "14"][..],
            &["--interval", "2", "--nemesis", "disk-lose-unsynced,disk-torn-tail,disk-corrupt"],
            &["--seed", "3", "--op-timeout", "2"],
        ]
        .concat(),
        &dir.path().join("run"),
    );
    assert_disk_faults_met(&run);
    assert!(run.results["ops"]["ok"].as_u64().unwrap() > 50, "the clients got work done");
    // The corrupt node's old directory was moved aside, not deleted.
    let wiped: Vec<_> = std::fs::read_dir(dir.path().join("run/data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".wiped-"))
        .collect();
    assert_eq!(wiped.len(), 1, "one rebuilt node");
}

#[test]
fn the_sharded_mode_refuses_disk_faults_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--mode", "sharded", "--nemesis", "disk-corrupt", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("disk faults are for --mode strong only"), "{stderr}");
}

#[test]
fn disk_faults_on_containers_are_survived_reported_or_refused() {
    if !docker_available() {
        return;
    }
    let image = Image::new("disk");
    let dir = tempfile::tempdir().unwrap();
    // 28 s at 4 s: faults at 4, 12 and 20 – one of each kind.
    let run = chaos(
        "docker, disk faults",
        &[
            &image.docker_args("10.67.0")[..],
            &["--time-limit", "28", "--interval", "4", "--clients", "10", "--seed", "2"],
            &["--nemesis", "disk-lose-unsynced,disk-torn-tail,disk-corrupt"],
        ]
        .concat(),
        &dir.path().join("run"),
    );
    assert_disk_faults_met(&run);
    assert!(run.results["ops"]["ok"].as_u64().unwrap() > 100, "the clients got work done");
}

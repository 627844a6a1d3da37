//! A deliberately broken build is caught by `concord chaos` on real containers.
//!
//! `--unsafe-mutation follower_read_without_index` runs every node of the compose cluster with
//! concord-raft's deliberate bug of that name (a follower answers a linearizable read at once from
//! its own state machine, without asking the leader for a read index), passed as
//! `CONCORD_UNSAFE_MUTATION` in each container's environment. Sixteen of the twenty clients are
//! bound to followers; a follower's state trails the leader's commits by a heartbeat or an append,
//! and the nemesis `pause-leader` (the leader frozen and cut off, thawed still cut off) adds
//! followers that hold on to a leader that no longer leads. The linearizability checker must see
//! a read that missed an acknowledged write: exit 1, `INVALID`. The same schedule (same seed, same
//! settings) without the bug must be valid.
//!
//! `read_from_deposed_leader` (a leader serving reads without confirming that it still leads) is
//! caught by the same schedule only about one run in two – docs/chaos.md says why – so it is not
//! what this test asserts.
//!
//! The compose project is on the subnet 10.65.0.0/24 (the other docker chaos tests use
//! 10.57–10.63), the two runs one after the other (≈ 2 × 50 s). Needs what chaos_docker.rs needs
//! (Docker with docker-compose, a static busybox, root, nsenter and iptables); where one is
//! missing the test prints why and passes – unless `CI` is set, where that is a failure.
//!
//! Also, without Docker: a node refuses an unknown mutation with a clear message, and the local
//! backend passes the variable to its processes (each logs the ERROR-level warning).

mod chaos_common;

use chaos_common::{docker_available, Image};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const MUTATION: &str = "follower_read_without_index";

/// One docker run of the schedule: 24 s, a `pause-leader` at 3, 9 and 15 s (3 s each), 20
/// clients (four per node), seed 4.
fn docker_run(image: &Image, out: &Path, mutation: Option<&str>) -> Output {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = Command::new(env!("CARGO_BIN_EXE_concord"));
    c.current_dir(&repo)
        .arg("chaos")
        .args(image.docker_args("10.65.0"))
        .args(["--time-limit", "24", "--interval", "3", "--clients", "20", "--op-timeout", "3"])
        .args(["--nemesis", "pause-leader", "--seed", "4"]);
    if let Some(m) = mutation {
        c.args(["--unsafe-mutation", m]);
    }
    c.arg("--out").arg(out).output().unwrap()
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn timeline(out: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(out.join("timeline.json")).unwrap()).unwrap()
}

fn logs(out: &Path, nodes: usize) -> Vec<String> {
    (1..=nodes)
        .map(|i| std::fs::read_to_string(out.join(format!("logs/node{i}.log"))).unwrap_or_default())
        .collect()
}

#[test]
fn a_build_whose_followers_read_without_a_read_index_is_caught_and_the_sound_build_is_not() {
    if !docker_available() {
        return;
    }
    let started = Instant::now();
    let image = Image::new("broken-test");
    let dir = tempfile::tempdir().unwrap();

    // The broken build: exit 1, the linearizability checker names a failing key.
    let broken: PathBuf = dir.path().join("broken");
    let run = docker_run(&image, &broken, Some(MUTATION));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "the broken build must be caught:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("INVALID: "), "{stdout}");
    assert!(stderr.contains("BROKEN on purpose"), "the run says loudly what it runs:\n{stderr}");
    let r = results(&broken);
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["run"]["unsafe_mutation"], MUTATION, "{r}");
    assert!(r["run"]["replay"].as_str().unwrap().ends_with("--unsafe-mutation follower_read_without_index"));
    let check = &r["checks"][0];
    assert_eq!(check["checker"], "linearizability (register per key)", "{r}");
    assert_eq!(check["valid"], false, "{r}");
    assert!(check["failing_key"].as_str().is_some_and(|k| k.starts_with('r')), "{r}");
    let faults = timeline(&broken);
    // Three planned. On a loaded machine a slow undo (docker unpause, then the links healed) can
    // push the next fault past the end of the run, and a cluster still electing after the last
    // one may name no agreed leader within 5 s (that fault is recorded as failed): at least one
    // must have happened whole.
    assert!(faults.len() <= 3, "{faults:?}");
    assert!(
        faults
            .iter()
            .any(|f| f["what"].as_str().unwrap().contains("frozen and cut off") && f.get("errors").is_none()),
        "{faults:?}"
    );
    for (i, log) in logs(&broken, 5).iter().enumerate() {
        assert!(
            log.contains("ERROR") && log.contains("UNSAFE") && log.contains(MUTATION),
            "node {} warns at start that it runs with the bug:\n{log}",
            i + 1
        );
    }
    eprintln!("broken run in {:?}: {}", started.elapsed(), check["summary"].as_str().unwrap_or(""));

    // The same schedule, the sound build: valid.
    let sound = dir.path().join("sound");
    let run = docker_run(&image, &sound, None);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the sound build must pass ({}):\n{stdout}\n{stderr}", run.status);
    assert!(stdout.starts_with("valid: "), "{stdout}");
    let r = results(&sound);
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["run"]["unsafe_mutation"], Value::Null, "{r}");
    assert!(
        timeline(&sound).iter().any(|f| f["what"].as_str().unwrap().contains("frozen and cut off")),
        "{:?}",
        timeline(&sound)
    );
    assert!(r["ops"]["ok"].as_u64().unwrap() > 500, "{r}");
    for log in logs(&sound, 5) {
        assert!(!log.contains("UNSAFE"), "{log}");
    }
    eprintln!("both docker runs in {:?}", started.elapsed());
}

#[test]
fn a_node_refuses_an_unknown_mutation_and_says_which_exist() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["serve", "--id", "1", "--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("d"))
        .env("CONCORD_UNSAFE_MUTATION", "no_such_bug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("CONCORD_UNSAFE_MUTATION=no_such_bug refused"), "{stderr}");
    assert!(stderr.contains("unknown mutation") && stderr.contains(MUTATION), "{stderr}");
    // And `concord chaos` refuses it before it starts anything.
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args([
            "chaos",
            "--backend",
            "local",
            "--nemesis",
            "kill",
            "--unsafe-mutation",
            "no_such_bug",
            "--out",
        ])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--unsafe-mutation no_such_bug: unknown"), "{stderr}");
}

#[test]
fn the_local_backend_runs_its_processes_with_the_mutation_and_they_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // 3 s at interval 5: no fault fits, the clients just run.
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--nodes", "3", "--clients", "3", "--time-limit", "3"])
        .args(["--interval", "5", "--nemesis", "kill", "--unsafe-mutation", MUTATION, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.code().is_some_and(|c| c <= 1), "{stderr}");
    for (i, log) in logs(&out, 3).iter().enumerate() {
        assert!(
            log.contains("ERROR") && log.contains("UNSAFE") && log.contains(MUTATION),
            "node {} runs with the bug and warns:\n{log}",
            i + 1
        );
    }
    assert_eq!(results(&out)["run"]["unsafe_mutation"], MUTATION);
}

//! `concord chaos` against five containers of deploy/compose.yaml, end to end: the command builds
//! an image of its own around this test's binary (`--image` names a tag that does not exist yet),
//! starts a compose project `concord-chaos-<pid>` on the subnet 10.59.0.0/24 (deploy_compose.rs
//! uses 10.57.0.0/24: both can run at once), cuts the leader off and kills a node's container
//! under a register workload for 15 s, heals, reads every key through every node, checks the
//! history and writes the run's directory. The verdict must be valid. A second test runs the bank
//! workload over the Redis door for 9 s through a pause of one node, on the subnet 10.61.0.0/24,
//! at the same time.
//!
//! Needs Docker with docker-compose, a static busybox at /bin/busybox, and for the partition
//! root, nsenter and iptables. Where one is missing the test prints why and passes – unless `CI`
//! is set, where that is a failure.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn missing_tools() -> Option<String> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
    };
    if !works("docker", &["info"]) {
        return Some("docker does not answer (`docker info` failed: no engine, or no permission)".into());
    }
    if !works("docker-compose", &["version"]) && !works("docker", &["compose", "version"]) {
        return Some("neither docker-compose nor `docker compose` is installed".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no static busybox at /bin/busybox (Debian: busybox-static)".into());
    }
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !uid.unwrap_or(false) {
        return Some("partitions need root (nsenter into a container's network namespace)".into());
    }
    if !works("nsenter", &["--version"]) || !works("iptables", &["--version"]) {
        return Some("partitions need nsenter (util-linux) and iptables".into());
    }
    None
}

/// The test's image, removed at the end (also when the test fails).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn a_compose_cluster_stays_linearizable_through_a_kill_and_a_partition_of_its_leader() {
    if let Some(why) = missing_tools() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
        eprintln!("skipping the docker chaos test: {why}");
        return;
    }
    let started = Instant::now();
    let image = Image(format!("concord:chaos-test-{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The kinds are dealt like cards: a 15 s run has room for two faults, one of each kind.
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .current_dir(&repo)
        .args(["chaos", "--backend", "docker", "--image", &image.0, "--subnet-prefix", "10.59.0"])
        .args(["--time-limit", "15", "--interval", "3", "--clients", "5", "--op-timeout", "3"])
        .args(["--nemesis", "kill,partition-leader", "--seed", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "concord chaos failed ({}):\n{stdout}\n{stderr}", run.status);
    assert!(stdout.starts_with("valid: "), "{stdout}");

    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let results: Value = serde_json::from_str(&read("results.json")).unwrap();
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["recovered"], true, "{results}");
    assert!(results["ops"]["ok"].as_u64().unwrap() > 50, "{results}");
    let timeline: Vec<Value> = serde_json::from_str(&read("timeline.json")).unwrap();
    let mut kinds: Vec<&str> = timeline.iter().map(|f| f["nemesis"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["kill", "partition-leader"], "{timeline:?}");
    for f in &timeline {
        assert!(f.get("errors").is_none(), "the fault and its undoing worked: {f}");
    }
    let partition = timeline.iter().find(|f| f["nemesis"] == "partition-leader").expect("listed above");
    assert!(partition["what"].as_str().unwrap().contains("cut off"), "{timeline:?}");
    for file in ["history.jsonl", "index.html", "latency.svg", "latency.png", "schedule.json"] {
        assert!(std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0) > 0, "{file} written");
    }
    for i in 1..=5 {
        assert!(read(&format!("logs/node{i}.log")).contains("node"), "node {i}'s docker logs collected");
    }
    assert!(!out.join(".work").exists(), "the secret and the rewritten configuration are removed");
    // Nothing of the run is left behind.
    let networks = Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]).output().unwrap();
    let project = stderr
        .split_whitespace()
        .find(|w| w.starts_with("concord-chaos-"))
        .unwrap_or_else(|| panic!("the project's name is printed:\n{stderr}"));
    assert!(!String::from_utf8_lossy(&networks.stdout).contains(project), "the compose project is down");
    eprintln!("docker chaos run in {:?}", started.elapsed());
}

/// The bank workload over the Redis door against five containers for 9 s, with one node frozen
/// from 3 s to 6 s. Every read must sum to the total, and the throughput must not drop to zero
/// while the node is frozen: each client is bound to one node, so the clients of the other four
/// keep working (before, every client ended up waiting on the frozen node).
#[test]
fn a_compose_cluster_conserves_the_bank_total_and_keeps_serving_through_a_pause() {
    if let Some(why) = missing_tools() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
        eprintln!("skipping the docker chaos test: {why}");
        return;
    }
    let started = Instant::now();
    let image = Image(format!("concord:chaos-bank-test-{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .current_dir(&repo)
        .args(["chaos", "--backend", "docker", "--image", &image.0, "--subnet-prefix", "10.61.0"])
        .args(["--workload", "bank", "--time-limit", "9", "--interval", "3", "--clients", "5"])
        .args(["--op-timeout", "3", "--nemesis", "pause", "--seed", "4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "concord chaos failed ({}):\n{stdout}\n{stderr}", run.status);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let results: Value = serde_json::from_str(&read("results.json")).unwrap();
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["run"]["workload"], "bank");
    let details = &results["checks"][0]["details"];
    assert!(details["transfers_ok"].as_u64().unwrap() > 20, "{details}");
    assert!(details["reads"].as_u64().unwrap() >= 5, "every node's final read at least: {details}");
    // While a node was frozen, the clients of the other four completed operations.
    let timeline: Vec<Value> = serde_json::from_str(&read("timeline.json")).unwrap();
    assert_eq!(timeline.len(), 1, "one fault in 9 s at interval 3: {timeline:?}");
    let pause = &timeline[0];
    assert!(pause.get("errors").is_none(), "the pause and its undoing worked: {pause}");
    let (from, to) = (pause["start"].as_f64().unwrap(), pause["end"].as_f64().unwrap());
    let history = read("history.jsonl");
    let during = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "ok")
        .filter(|e| (from..to).contains(&(e["time"].as_u64().unwrap() as f64 / 1e9)))
        .count();
    assert!(during > 5, "{during} operations completed during the pause {pause}");
    eprintln!("docker bank chaos run in {:?}", started.elapsed());
}

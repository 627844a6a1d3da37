//! Redis scripting against real `concord serve` processes, through redis-py's own features:
//! `Lock` (acquire, extend, reacquire, release – Lua scripts sent with `EVALSHA`), `Script`
//! (which reloads itself after `NOSCRIPT`), `EVAL`, `EVAL_RO`, `SCRIPT LOAD/EXISTS/FLUSH`.
//! The checks themselves are in `redis_scripts.py`, which passes against redis-server too, up to
//! its last part: on a 3-node cluster every follower must hold what the scripts wrote – including
//! a value a script computed with `math.random` and `tostring`, which each replica computed
//! itself (see `concord_kv::script`).

use concord_server::testkit::http;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod local_cluster;
use local_cluster::LocalCluster as Cluster;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn redis_py_available() -> bool {
    let python = Command::new("python3").args(["-c", "import redis"]).output();
    if python.is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "python3 with redis-py is needed (pip install redis)");
    let _ = writeln!(std::io::stderr(), "SKIPPED: python3 with redis-py is not usable");
    false
}

/// The node (1-based) every node agrees leads, once they do.
fn leader(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: Vec<Option<u64>> = cluster
            .http
            .iter()
            .map(|addr| {
                block_on(http(*addr, "GET", "/v1/cluster", b"", Duration::from_secs(2)))
                    .ok()
                    .and_then(|a| a.json().ok())
                    .and_then(|v| v["leader"].as_u64())
            })
            .collect();
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|x| *x == Some(*l)) {
                return *l as usize;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}\n{}", cluster.logs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_python(cluster: &Cluster, leader: usize) {
    let port = |node: usize| cluster.redis_port(node - 1).to_string();
    let followers: Vec<String> =
        (1..=cluster.args.nodes as usize).filter(|n| *n != leader).map(port).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redis_scripts.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &port(leader)])
        .args(&followers)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis_scripts.py failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.logs(30)
    );
}

#[test]
fn redis_py_lock_and_scripts_on_a_single_node() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 1, |o| o.no_fsync = true);
    let leader = leader(&cluster);
    run_python(&cluster, leader);
}

#[test]
fn redis_py_lock_and_scripts_on_a_three_node_cluster() {
    if !redis_py_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, |o| o.no_fsync = true);
    let leader = leader(&cluster);
    run_python(&cluster, leader);
}

//! The eventual mode on real `concord serve` processes, started as `concord up --mode eventual`
//! starts them, driven with `redis-cli`:
//!
//! 1. **three nodes, N = 3, R = W = 2** – `redis-cli` writes on node 1 and reads on node 2; node 3
//!    gets SIGKILL; writes go on (two replicas acknowledge); node 3 restarts from its WAL and
//!    catches up. With N equal to the cluster size there is no node to hold hints, so what brings
//!    node 3 up to date is **anti-entropy** (its key count is watched; nothing reads the keys until
//!    then, so read repair cannot help). Finally every acknowledged write is read back with
//!    `CONSISTENCY ALL` on node 3 (counted, not sampled).
//! 2. **four nodes, N = 3** – node 4 gets SIGKILL; writes whose preference list names node 4 go to
//!    a fallback with a **hint** (sloppy quorum): some node must report hints. After node 4
//!    restarts, **hinted handoff** delivers them: every hint drains, and the cluster holds each
//!    key on exactly N replicas again.
//!
//! 3. **three nodes, N = R = W = 1** (issue #25) – every key has exactly one replica, and a write
//!    is acknowledged by it alone. Right after 300 acknowledged writes every node gets SIGKILL – so
//!    each key's only replica dies – and restarts; every write is read back. The replica synced
//!    before its acknowledgement left, so a kill -9 cannot take it.
//!
//! Needs `redis-cli` (Debian's redis-tools; `.ci/run` installs it – under `CI` a missing one fails).

use concord_server::cluster::Quorums;
use concord_server::testkit::http;
use concord_server::Mode;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

mod local_cluster;
use local_cluster::LocalCluster;

/// `nodes` processes, as `concord up --mode eventual --n N` starts them.
fn start(dir: &Path, nodes: u32, n: usize) -> LocalCluster {
    LocalCluster::start(dir, nodes, |o| {
        o.mode = Mode::Eventual;
        o.quorums.replicas = Some(n);
    })
}

/// `GET /v1/cluster` of node `i` (`None` while it does not answer).
async fn view(c: &LocalCluster, i: usize) -> Option<Value> {
    let answer = http(c.http[i], "GET", "/v1/cluster", b"", Duration::from_secs(2)).await.ok()?;
    answer.json().ok()
}

/// Wait until `done` holds for the views of every running node.
async fn wait_for(
    c: &LocalCluster,
    what: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let mut views = Vec::new();
        for i in 0..c.children.len() {
            if c.children[i].is_some() {
                if let Some(v) = view(c, i).await {
                    views.push(v);
                }
            }
        }
        let running = c.children.iter().filter(|c| c.is_some()).count();
        if views.len() == running && done(&views) {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; views: {views:#?}\n{}",
            c.logs(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until every running node's failure detector (SWIM) has noticed that node `id` is down.
/// Until then a write may be forwarded to it as the key's home replica and answer "unknown"
/// after the request timeout – what a Dynamo client retries; these tests want acknowledgements.
async fn noticed_down(c: &LocalCluster, id: u32) {
    wait_for(c, &format!("node {id} is suspected"), Duration::from_secs(20), |views| {
        views.iter().all(|v| {
            v["members"].as_array().unwrap().iter().any(|m| {
                m["id"] == id && (m["state_as_seen_here"] == "suspect" || m["state_as_seen_here"] == "dead")
            })
        })
    })
    .await;
}

/// Every member alive in the eyes of every running node.
async fn all_alive(c: &LocalCluster) {
    let nodes = c.args.nodes as usize;
    wait_for(c, "every node sees every other alive", Duration::from_secs(30), |views| {
        views.iter().all(|v| {
            let alive =
                v["members"].as_array().unwrap().iter().filter(|m| m["state_as_seen_here"] == "alive");
            alive.count() == nodes
        })
    })
    .await;
}

/// Run `redis-cli -p PORT` with `commands` on its standard input (one connection, pipelined);
/// `None` when redis-cli is not installed (outside CI).
fn redis_cli(port: u16, commands: &str) -> Option<Vec<String>> {
    use std::io::Write;
    let child = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(std::env::var_os("CI").is_none(), "redis-cli is not installed (Debian: redis-tools)");
            eprintln!("redis-cli is not installed (Debian: redis-tools); skipping");
            return None;
        }
        Err(e) => panic!("cannot run redis-cli: {e}"),
    };
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

/// `SET key value` for each key, pipelined on one connection; every answer must be OK.
fn set_all(port: u16, keys: &[(String, String)]) -> Option<()> {
    let commands: String = keys.iter().map(|(k, v)| format!("SET {k} {v}\n")).collect();
    let answers = redis_cli(port, &commands)?;
    assert_eq!(answers.len(), keys.len(), "{answers:?}");
    assert!(answers.iter().all(|a| a == "OK"), "a write was not acknowledged: {answers:?}");
    Some(())
}

/// Read every key with the given `CONSISTENCY` on node `port`; the values, in order.
fn get_all(port: u16, consistency: &str, keys: &[(String, String)]) -> Option<Vec<String>> {
    let mut commands = format!("CONSISTENCY {consistency}\n");
    commands.extend(keys.iter().map(|(k, _)| format!("GET {k}\n")));
    let mut answers = redis_cli(port, &commands)?;
    assert_eq!(answers.remove(0), "OK");
    Some(answers)
}

fn keys(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{prefix}{i}"), format!("v{i}-{prefix}"))).collect()
}

fn sum(views: &[Value], field: &str) -> u64 {
    views.iter().map(|v| v[field].as_u64().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_catches_up_by_anti_entropy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3, 3);
    all_alive(&c).await;

    // Written on node 1, read on node 2.
    let before = keys("a", 100);
    let Some(()) = set_all(c.redis_port(0), &before) else { return };
    let read = get_all(c.redis_port(1), "QUORUM", &before).unwrap();
    assert_eq!(read, before.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());

    // Node 3 dies; W = 2 still holds with nodes 1 and 2.
    c.kill9(2);
    noticed_down(&c, 3).await;
    let during = keys("b", 200);
    set_all(c.redis_port(1), &during).unwrap();
    let total = (before.len() + during.len()) as u64;
    let views = wait_for(&c, "every live node holds every key", Duration::from_secs(20), |v| {
        v.iter().all(|v| v["keys"].as_u64() == Some(total))
    })
    .await;
    assert_eq!(sum(&views, "hints"), 0, "with N = 3 on three nodes there is no fallback to hold hints");
    let objects_sent = |views: &[Value]| -> u64 {
        views.iter().map(|v| v["anti_entropy"]["objects_sent"].as_u64().unwrap()).sum()
    };
    let sent_before = objects_sent(&views);
    // Replicas 1 and 2 still address node 3 (it is a home replica of every key); their transports
    // queue those frames until the next dial, which fails and drops them (at most 2 s of back-off
    // apart). Waiting that out means nothing of `during` reaches node 3 but through anti-entropy.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Node 3 restarts from its WAL: it has `before`, and anti-entropy brings `during`.
    c.restart(2);
    let views = wait_for(&c, "node 3 catches up", Duration::from_secs(60), |views| {
        views.iter().all(|v| v["keys"].as_u64() == Some(total))
    })
    .await;
    let by_anti_entropy = objects_sent(&views[..2]) - sent_before;
    assert!(
        by_anti_entropy >= during.len() as u64,
        "nodes 1 and 2 sent {by_anti_entropy} objects by anti-entropy, fewer than node 3 missed: {views:#?}"
    );

    // Every acknowledged write, read back from node 3 with every replica answering.
    let all: Vec<(String, String)> = before.iter().chain(&during).cloned().collect();
    let read = get_all(c.redis_port(2), "ALL", &all).unwrap();
    let missing: Vec<&String> =
        all.iter().zip(&read).filter(|((_, v), got)| v != *got).map(|((k, _), _)| k).collect();
    assert!(missing.is_empty(), "acknowledged writes missing or wrong on node 3: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hinted_handoff_delivers_what_fallbacks_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 4, 3);
    all_alive(&c).await;

    c.kill9(3);
    noticed_down(&c, 4).await;
    let written = keys("h", 300);
    let Some(()) = set_all(c.redis_port(0), &written) else { return };
    // Keys whose preference list names node 4 were taken by a fallback, with a hint.
    let views =
        wait_for(&c, "fallbacks hold hints for node 4", Duration::from_secs(20), |v| sum(v, "hints") > 0)
            .await;
    let hints = sum(&views, "hints");
    assert!(hints < written.len() as u64, "only node 4's share is hinted: {hints}");

    c.restart(3);
    let n = written.len() as u64;
    wait_for(&c, "hints are handed off and every key is on N replicas", Duration::from_secs(60), |v| {
        v.len() == 4 && sum(v, "hints") == 0 && sum(v, "keys") == 3 * n
    })
    .await;
    let read = get_all(c.redis_port(3), "ALL", &written).unwrap();
    assert_eq!(read, written.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_w1_write_survives_kill9_of_its_only_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(dir.path(), 3, |o| {
        o.mode = Mode::Eventual;
        o.quorums = Quorums { replicas: Some(1), read_quorum: Some(1), write_quorum: Some(1) };
    });
    all_alive(&c).await;

    let written = keys("w", 300);
    let Some(()) = set_all(c.redis_port(0), &written) else { return };
    // At once, before anti-entropy or anything else could copy a key anywhere (with N = 1 nothing
    // would): each key's one replica dies.
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    all_alive(&c).await;
    let read = get_all(c.redis_port(1), "ONE", &written).unwrap();
    assert_eq!(read.len(), written.len(), "{read:?}");
    let missing: Vec<&String> =
        written.iter().zip(&read).filter(|((_, v), got)| v != *got).map(|((k, _), _)| k).collect();
    assert!(missing.is_empty(), "acknowledged W=1 writes lost to kill -9: {missing:?}\n{}", c.logs(10));
}

//! A node whose whole data directory was wiped, restarted under its old id, and rebuilt with
//! `concord member rebuild` – driven the way a user does it, on real `concord serve` processes of
//! this very binary (laid out as `concord up` lays them out).
//!
//! The danger (issue #23, finding 6): a wiped node boots with term 0, no vote and an empty log. Put
//! it next to a node that missed acknowledged writes, with the one node that has them down, and
//! it votes for the stale node, which becomes leader without those writes. With incarnations
//! (`concord_server::incarnation`) its peers refuse it, so no leader is elected from that pair;
//! once the third node is back, every acknowledged write is there, and `concord member rebuild`
//! brings the wiped node back as a voter that serves them all.

use concord_server::cluster::up_node_args;
use concord_server::testkit::http;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod local_cluster;
use local_cluster::LocalCluster as Cluster;

const CALL: Duration = Duration::from_secs(7);

/// `GET /v1/cluster` on node `i + 1`, if it answers.
async fn view(cluster: &Cluster, i: usize) -> Option<serde_json::Value> {
    let answer = http(cluster.http[i], "GET", "/v1/cluster", b"", Duration::from_secs(2)).await.ok()?;
    answer.json().ok()
}

/// The leader that nodes `among` (0-based) all agree on, as a 0-based index.
async fn leader_among(cluster: &Cluster, among: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for &i in among {
            seen.push(view(cluster, i).await.and_then(|v| v["leader"].as_u64()));
        }
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|x| *x == Some(*l)) && among.contains(&(*l as usize - 1)) {
                return *l as usize - 1;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {among:?}: {seen:?}\n{}",
            cluster.logs(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Write `count` keys `prefix-n` through nodes `via` (retrying elsewhere until acknowledged).
async fn write_keys(cluster: &Cluster, via: &[usize], prefix: &str, count: usize) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for n in 0..count {
        let (key, value) = (format!("{prefix}-{n}"), format!("value-{prefix}-{n}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut attempt = 0;
        loop {
            let node = via[attempt % via.len()];
            let path = format!("/v1/kv/{key}");
            match http(cluster.http[node], "PUT", &path, value.as_bytes(), CALL).await {
                Ok(a) if a.status == 200 => break,
                other => {
                    // Only refusals (503) and timeouts are expected; retrying a write of the same
                    // value is harmless either way.
                    assert!(
                        Instant::now() < deadline,
                        "write {key} not acknowledged: {other:?}\n{}",
                        cluster.logs(30)
                    );
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acked.push((key, value));
    }
    acked
}

/// Every acknowledged write, read linearizably through node `i + 1`.
async fn assert_all_readable(cluster: &Cluster, i: usize, acked: &[(String, String)]) {
    for (key, value) in acked {
        let path = format!("/v1/kv/{key}?consistency=linearizable");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http(cluster.http[i], "GET", &path, b"", CALL).await {
                Ok(a) if a.status == 200 => {
                    assert_eq!(&a.text(), value, "node {} serves {key}", i + 1);
                    break;
                }
                Ok(a) if a.status == 404 => {
                    panic!("node {} lost acknowledged {key}\n{}", i + 1, cluster.logs(40))
                }
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "read {key} on node {}: {other:?}\n{}",
                        i + 1,
                        cluster.logs(30)
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Poll until `file` in `dir` contains every one of `needles`.
async fn wait_for_log(cluster: &Cluster, dir: &Path, file: &str, needles: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = log_of(dir, file);
        if needles.iter().all(|n| text.contains(n)) {
            return;
        }
        assert!(Instant::now() < deadline, "{file} never said {needles:?}:\n{text}\n{}", cluster.logs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `concord_peer_handshake_rejected_total{reason="incarnation"}` on node `i + 1`.
async fn incarnation_refusals(cluster: &Cluster, i: usize) -> u64 {
    let Ok(a) = http(cluster.http[i], "GET", "/metrics", b"", Duration::from_secs(2)).await else { return 0 };
    a.text()
        .lines()
        .find(|l| {
            l.starts_with("concord_peer_handshake_rejected_total") && l.contains("reason=\"incarnation\"")
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_refused_until_rebuilt_and_no_acknowledged_write_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut cluster = Cluster::start(data, 3, |_| {});
    leader_among(&cluster, &[0, 1, 2], Duration::from_secs(30)).await;

    // Phase A: writes every node gets.
    let mut acked = write_keys(&cluster, &[0, 1, 2], "a", 10).await;

    // Phase B: node 2 is down; nodes 1 and 3 acknowledge writes node 2 never sees.
    cluster.kill9(1);
    leader_among(&cluster, &[0, 2], Duration::from_secs(30)).await;
    acked.extend(write_keys(&cluster, &[0, 2], "b", 10).await);

    // Phase C: node 3 loses its whole data directory. Node 1 – with node 3, the only holder of
    // phase B's writes – goes down, and node 2 (which misses them) comes back next to the wiped
    // node 3, started again under its old id: the dangerous pair. Without the refusal, node 3 votes
    // for node 2 within a second or two, node 2 leads without phase B's writes, and truncates them
    // from node 1 when it returns.
    cluster.kill9(2);
    cluster.kill9(0);
    std::fs::remove_dir_all(data.join("node3")).unwrap();
    cluster.restart(1);
    cluster.restart(2);
    // Node 2 refuses node 3 (log and metric), and node 3's own log says why.
    wait_for_log(
        &cluster,
        data,
        "node2.log",
        &["n3 presented incarnation", "concord member rebuild"],
        Duration::from_secs(20),
    )
    .await;
    wait_for_log(&cluster, data, "node3.log", &["under another incarnation"], Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while incarnation_refusals(&cluster, 1).await == 0 {
        assert!(Instant::now() < deadline, "not counted in node 2's /metrics\n{}", cluster.logs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Phase D: neither may lead, for many election timeouts (300–600 ms each).
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        for i in [1, 2] {
            if let Some(v) = view(&cluster, i).await {
                assert!(
                    v["role"] != "leader" && v["leader"].is_null(),
                    "node {} sees a leader elected with a wiped node's vote: {v}\n{}",
                    i + 1,
                    cluster.logs(40)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Phase E: node 1 is back; the leader of nodes 1 and 2 serves every acknowledged write.
    cluster.restart(0);
    let leader = leader_among(&cluster, &[0, 1], Duration::from_secs(30)).await;
    assert_all_readable(&cluster, leader, &acked).await;

    // Phase F: `concord member rebuild`, on node 3's machine, with its flags. While node 3 still
    // runs, it is refused, and nothing changes.
    let mut argv = up_node_args(&cluster.args, 2, &cluster.cluster_id, &cluster.secret).unwrap();
    assert_eq!(argv.remove(0), "serve");
    let refused = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["member", "rebuild", "--via", &cluster.http[0].to_string()])
        .args(&argv)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("node 3 is still running"), "{said}");
    assert!(said.contains("stop it first, then run the command again"), "{said}");
    let v = view(&cluster, leader).await.unwrap();
    assert!(v["members"].as_array().unwrap().iter().any(|m| m["id"] == 3), "node 3 was not removed: {v}");
    cluster.kill9(2);
    let out = std::fs::File::create(data.join("rebuild.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["member", "rebuild", "--via", &cluster.http[0].to_string()])
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    cluster.children[2] = Some(child); // killed with the cluster
    wait_for_log(
        &cluster,
        data,
        "rebuild.log",
        &["step 1/5", "step 2/5", "step 3/5", "step 4/5", "step 5/5", "node 3 is a voter again"],
        Duration::from_secs(45),
    )
    .await;
    let moved: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("node3.broken-"))
        .collect();
    assert_eq!(moved.len(), 1, "the old data directory is kept aside:\n{}", log_of(data, "rebuild.log"));
    assert!(moved[0].path().join("identity.json").exists());
    let v = view(&cluster, leader).await.unwrap();
    let three = v["members"].as_array().unwrap().iter().find(|m| m["id"] == 3).cloned();
    assert_eq!(three.as_ref().map(|m| m["voter"].clone()), Some(serde_json::json!(true)), "{v}");

    // Node 3 serves every acknowledged write (linearizable reads through it), and takes new ones.
    assert_all_readable(&cluster, 2, &acked).await;
    let more = write_keys(&cluster, &[2], "c", 3).await;
    assert_all_readable(&cluster, 0, &more).await;
}

/// The groups nodes `among` (0-based) run that they say they lead: `(node, group)` pairs.
async fn sharded_leaders(cluster: &Cluster, among: &[usize]) -> Vec<(usize, u64)> {
    let mut leading = Vec::new();
    for &i in among {
        let Ok(a) = http(cluster.http[i], "GET", "/v1/status", b"", Duration::from_secs(2)).await else {
            continue;
        };
        let Ok(status) = a.json() else { continue };
        for g in status["groups"].as_array().into_iter().flatten() {
            if g["role"] == "leader" {
                leading.push((i + 1, g["group"].as_u64().unwrap_or(u64::MAX)));
            }
        }
    }
    leading
}

/// The same danger in the sharded mode, where it is many times over: every group – the metadata
/// group and each shard's – has a replica on the wiped node, and any of them could elect a leader
/// that misses acknowledged writes. The sharded node's incarnation guard (the peer book follows
/// the metadata group; `VoteGate` drops election messages inside a sharded batch) must keep all of
/// them leaderless until the node that has the writes is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_sharded_node_lets_no_group_elect_a_leader_without_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut cluster = Cluster::start(data, 3, |o| {
        o.mode = concord_server::Mode::Sharded;
        o.shards = Some(2);
    });
    // Phase A: writes every node gets (any node serves any key, forwarding to its shard's leader).
    let mut acked = write_keys(&cluster, &[0, 1, 2], "a", 10).await;

    // Phase B: node 2 is down; nodes 1 and 3 acknowledge writes, to both shards, that node 2 misses.
    cluster.kill9(1);
    acked.extend(write_keys(&cluster, &[0, 2], "b", 10).await);

    // Phase C: node 3 is wiped whole; node 1 goes down; node 2 (stale) and node 3 (wiped, same id)
    // come back together – a majority of every group's replicas, were node 3's vote counted.
    cluster.kill9(2);
    cluster.kill9(0);
    std::fs::remove_dir_all(data.join("node3")).unwrap();
    cluster.restart(1);
    cluster.restart(2);
    wait_for_log(&cluster, data, "node2.log", &["n3 presented incarnation"], Duration::from_secs(20)).await;

    // Phase D: no group elects a leader on nodes 2 and 3, for many election timeouts.
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        let leading = sharded_leaders(&cluster, &[1, 2]).await;
        assert!(
            leading.is_empty(),
            "groups elected a leader with a wiped node's vote (node, group): {leading:?}\n{}",
            cluster.logs(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Phase E: node 1 is back; every acknowledged write is served, through any node.
    cluster.restart(0);
    assert_all_readable(&cluster, 0, &acked).await;
    assert_all_readable(&cluster, 1, &acked).await;
}

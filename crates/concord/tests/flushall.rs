//! `FLUSHALL` on real `concord serve` processes, in both modes that serve it:
//!
//! 1. a 3-node strong (Raft) cluster: one write of the log, so after it every replica – read
//!    locally, `CONSISTENCY stale` – holds no key (`DBSIZE` 0, `KEYS *` empty), strings and
//!    collections alike, and new writes then work and replicate;
//! 2. a 3-node sharded cluster of 4 shards: `FLUSHALL` sent to one node empties every shard
//!    (each node's `DBSIZE` and `KEYS *` over the shards it leads or, `READONLY`, replicates are
//!    0 and empty), and new writes then work.

use concord_server::testkit::{Reply, Resp};
use concord_server::Mode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod local_cluster;
use local_cluster::LocalCluster;

const NODES: u32 = 3;

async fn connect(port: u16) -> Resp {
    Resp::connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}

/// Send `args` to some node until one answers without a redirect or "try again" (following
/// neither: the next node is tried); the answer.
async fn anywhere(ports: &[u16], args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        for port in ports {
            let Ok(mut conn) = Resp::connect(SocketAddr::from(([127, 0, 0, 1], *port))).await else {
                continue;
            };
            match conn.call(args).await {
                Ok(answer)
                    if !["-MOVED", "-READONLY", "-TRYAGAIN", "-CLUSTERDOWN", "-LOADING"]
                        .iter()
                        .any(|code| answer.starts_with(code)) =>
                {
                    return answer
                }
                Ok(answer) => last = answer,
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{args:?}: no node took it within 30 s; last answer {last}");
}

/// What node `port` holds, read locally (`setup`: `CONSISTENCY stale` or `READONLY`): `DBSIZE`
/// and `KEYS *`.
async fn local_keys(port: u16, setup: &[&str]) -> (String, Vec<String>) {
    let mut conn = connect(port).await;
    assert_eq!(conn.call(setup).await.unwrap(), "OK");
    let size = conn.call(&["DBSIZE"]).await.unwrap();
    let keys = conn.request(&["KEYS", "*"]).await.unwrap().texts().unwrap();
    (size, keys)
}

/// Wait until every node holds exactly `want` keys (local reads).
async fn every_node_holds(ports: &[u16], setup: &[&str], want: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for port in ports {
            seen.push(local_keys(*port, setup).await);
        }
        if seen.iter().all(|(size, keys)| *size == want.to_string() && keys.len() == want) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the nodes hold {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Strings, a hash, a set, a list and a sorted set under `prefix` (spread over the slots); how
/// many keys.
async fn fill(ports: &[u16], prefix: &str) -> usize {
    for i in 0..10 {
        assert_eq!(anywhere(ports, &["SET", &format!("{prefix}s{i}"), "v"]).await, "OK");
    }
    assert_eq!(anywhere(ports, &["HSET", &format!("{prefix}h"), "f", "1", "g", "2"]).await, "2");
    assert_eq!(anywhere(ports, &["SADD", &format!("{prefix}set"), "a", "b"]).await, "2");
    assert_eq!(anywhere(ports, &["RPUSH", &format!("{prefix}l"), "a", "b", "c"]).await, "3");
    assert_eq!(anywhere(ports, &["ZADD", &format!("{prefix}z"), "1", "m"]).await, "1");
    assert_eq!(anywhere(ports, &["EXPIRE", &format!("{prefix}s0"), "1000"]).await, "1");
    14
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_empties_every_replica_of_a_strong_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCluster::start(dir.path(), NODES, |_| {});
    let ports: Vec<u16> = (0..NODES as usize).map(|i| c.redis_port(i)).collect();
    let leader = c.leader(Duration::from_secs(30)).await;
    let keys = fill(&ports, "").await;
    c.caught_up(Duration::from_secs(20)).await;
    every_node_holds(&ports, &["CONSISTENCY", "stale"], keys, "before FLUSHALL").await;

    let mut conn = connect(ports[leader]).await;
    // A WATCHed key that existed: FLUSHALL deletes it, so the EXEC fails (a nil array).
    assert_eq!(conn.call(&["WATCH", "s1"]).await.unwrap(), "OK");
    assert_eq!(connect(ports[leader]).await.call(&["FLUSHALL", "SYNC"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["MULTI"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["SET", "s1", "x"]).await.unwrap(), "QUEUED");
    assert_eq!(conn.request(&["EXEC"]).await.unwrap(), Reply::Text("(nil)".into()));
    c.caught_up(Duration::from_secs(20)).await;
    every_node_holds(&ports, &["CONSISTENCY", "stale"], 0, "after FLUSHALL").await;
    assert_eq!(conn.call(&["RANDOMKEY"]).await.unwrap(), "(nil)");

    // The cluster works on: new keys (a collection under an old name starts empty) replicate.
    assert_eq!(conn.call(&["HSET", "h", "x", "1"]).await.unwrap(), "1");
    assert_eq!(conn.call(&["HLEN", "h"]).await.unwrap(), "1");
    assert_eq!(conn.call(&["SET", "after", "1"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["TOUCH", "h", "after", "nope"]).await.unwrap(), "2");
    c.caught_up(Duration::from_secs(20)).await;
    every_node_holds(&ports, &["CONSISTENCY", "stale"], 2, "new writes after FLUSHALL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_empties_every_shard_of_a_sharded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(4);
    });
    let ports: Vec<u16> = (0..NODES as usize).map(|i| c.redis_port(i)).collect();
    let keys = fill(&ports, "a:").await + fill(&ports, "b:").await;
    // Every shard is replicated on every node here (3 nodes, 3 replicas): READONLY reads see all.
    every_node_holds(&ports, &["READONLY"], keys, "before FLUSHALL").await;

    // One node, one command: every shard is emptied.
    assert_eq!(anywhere(&ports[..1], &["FLUSHALL"]).await, "OK");
    every_node_holds(&ports, &["READONLY"], 0, "after FLUSHALL").await;
    for port in &ports {
        assert_eq!(connect(*port).await.call(&["RANDOMKEY"]).await.unwrap(), "(nil)");
    }
    // Alone in a MULTI it fans out as ever; with other commands it would run on one shard:
    // refused, with the reason.
    let mut conn = connect(ports[0]).await;
    assert_eq!(conn.call(&["MULTI"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["FLUSHALL"]).await.unwrap(), "QUEUED");
    assert_eq!(conn.request(&["EXEC"]).await.unwrap(), Reply::Array(vec![Reply::Text("OK".into())]));
    assert_eq!(conn.call(&["MULTI"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["RANDOMKEY"]).await.unwrap(), "QUEUED");
    assert_eq!(conn.call(&["FLUSHALL"]).await.unwrap(), "QUEUED");
    let exec = conn.request(&["EXEC"]).await;
    assert!(format!("{exec:?}").contains("not supported in the sharded mode"), "{exec:?}");
    // RANDOMKEY alone in a MULTI is refused too (and flushes nothing).
    assert_eq!(anywhere(&ports, &["SET", "kept", "1"]).await, "OK");
    assert_eq!(conn.call(&["MULTI"]).await.unwrap(), "OK");
    assert_eq!(conn.call(&["RANDOMKEY"]).await.unwrap(), "QUEUED");
    let exec = conn.request(&["EXEC"]).await;
    assert!(format!("{exec:?}").contains("RANDOMKEY inside MULTI"), "{exec:?}");
    assert_eq!(anywhere(&ports, &["DEL", "kept"]).await, "1");

    // New writes work, and RANDOMKEY finds them.
    let again = fill(&ports, "d:").await;
    every_node_holds(&ports, &["READONLY"], again, "new writes after FLUSHALL").await;
    let mut found = false;
    for port in &ports {
        let key = connect(*port).await.call(&["RANDOMKEY"]).await.unwrap();
        found |= key.starts_with("d:");
        assert!(key.starts_with("d:") || key == "(nil)", "{key}");
    }
    assert!(found, "some node leads a shard holding d:'s keys");
    assert_eq!(anywhere(&ports, &["FLUSHDB", "nope"]).await, "-ERR syntax error");
}

//! kill -9 under a load of every Redis data type, through the Redis door of real `concord serve`
//! processes: afterwards every replica holds the same value under every key, and no acknowledged
//! write is lost.
//!
//! Clients mix strings, counters, hashes, sets, lists and sorted sets over a small key space (so
//! commands collide), through whichever node leads. The leader is killed with SIGKILL mid-load and
//! restarted; then the whole cluster is, and restarts from disk. Nodes snapshot every 100 entries,
//! so collections cross checkpoints and snapshot installs as records.
//!
//! Then each node is read locally (`CONSISTENCY stale`): every key's type and whole content (a
//! digest per key: `HGETALL`, `SMEMBERS`, `LRANGE 0 -1`, `ZRANGE 0 -1 WITHSCORES`, `GET`) must be
//! the same on every node, and each client's acknowledged unique hash fields (never overwritten)
//! must be present everywhere.

use concord_server::testkit::{Reply, Resp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod local_cluster;
use local_cluster::LocalCluster as Cluster;

const NODES: u32 = 3;
const CLIENTS: u64 = 3;
/// Keys per kind: few, so that commands collide.
const KEYS: u64 = 4;

/// A small deterministic generator per client (the load need not be random, only varied).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One command of the mixed load: (arguments, the unique field it writes if it is the client's
/// append-only hash).
fn command(rng: &mut Lcg, client: u64, n: u64) -> (Vec<String>, Option<(String, String)>) {
    let k = rng.next(KEYS);
    let r = rng.next(8);
    let words: Vec<String> = match rng.next(13) {
        0 => format!("HSET h:{k} f{r} {n}").split(' ').map(String::from).collect(),
        1 => format!("HINCRBY h:{k} count 1").split(' ').map(String::from).collect(),
        2 => format!("HDEL h:{k} f{r}").split(' ').map(String::from).collect(),
        3 => format!("SADD s:{k} m{r} m{}", r + 1).split(' ').map(String::from).collect(),
        4 => format!("SREM s:{k} m{r}").split(' ').map(String::from).collect(),
        5 => format!("RPUSH l:{k} {n} x{r}").split(' ').map(String::from).collect(),
        6 => format!("LPOP l:{k}").split(' ').map(String::from).collect(),
        7 => format!("ZADD z:{k} {r} m{r}").split(' ').map(String::from).collect(),
        8 => format!("ZINCRBY z:{k} 1.5 m{r}").split(' ').map(String::from).collect(),
        9 => format!("ZREM z:{k} m{r}").split(' ').map(String::from).collect(),
        10 => format!("SET str:{k} {n}").split(' ').map(String::from).collect(),
        11 => format!("INCR ctr:{k}").split(' ').map(String::from).collect(),
        _ => {
            let (key, field) = (format!("hu:{client}"), format!("f{n}"));
            let words = vec!["HSET".into(), key.clone(), field.clone(), n.to_string()];
            return (words, Some((key, field)));
        }
    };
    (words, None)
}

/// Whether a reply means "this node cannot take it now; try another" (not the leader, no leader,
/// shutting down).
fn retry_elsewhere(reply: &str) -> bool {
    ["READONLY", "TRYAGAIN", "CLUSTERDOWN", "LOADING"]
        .iter()
        .any(|code| reply.starts_with(&format!("-{code}")))
}

/// A client: sends its load to whichever node takes it, until `stop`; records acknowledged unique
/// fields in `acked`.
async fn client(
    c: u64,
    ports: Vec<u16>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut rng = Lcg(c + 1);
    let (mut node, mut conn, mut done) = (c as usize % ports.len(), None::<Resp>, 0);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = Resp::connect(SocketAddr::from(([127, 0, 0, 1], ports[node]))).await.ok();
            if conn.is_none() {
                node = (node + 1) % ports.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        n += 1;
        let (words, unique) = command(&mut rng, c, n);
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        match conn.as_mut().unwrap().call(&args).await {
            Ok(reply) if retry_elsewhere(&reply) => {
                conn = None;
                node = (node + 1) % ports.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(reply) => {
                // Errors other than "elsewhere" (e.g. a timeout whose outcome is unknown) are not
                // acknowledgements; anything else is.
                assert!(!reply.contains("WRONGTYPE"), "{args:?}: {reply}");
                if !reply.starts_with('-') {
                    done += 1;
                    if let Some(unique) = unique {
                        acked.lock().unwrap().push(unique);
                    }
                }
            }
            Err(_) => conn = None,
        }
    }
    done
}

/// Every key of the load, with its whole content as node `port` holds it locally.
async fn dump(port: u16) -> BTreeMap<String, String> {
    let mut conn = Resp::connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    assert_eq!(conn.call(&["CONSISTENCY", "stale"]).await.unwrap(), "OK");
    let mut keys: Vec<String> = Vec::new();
    for prefix in ["h", "s", "l", "z", "str", "ctr"] {
        keys.extend((0..KEYS).map(|k| format!("{prefix}:{k}")));
    }
    keys.extend((0..CLIENTS).map(|c| format!("hu:{c}")));
    let mut out = BTreeMap::new();
    for key in keys {
        let kind = conn.call(&["TYPE", &key]).await.unwrap();
        let content: Reply = match kind.as_str() {
            "none" => Reply::Text(String::new()),
            "string" => conn.request(&["GET", &key]).await.unwrap(),
            "hash" => conn.request(&["HGETALL", &key]).await.unwrap(),
            "set" => conn.request(&["SMEMBERS", &key]).await.unwrap(),
            "list" => conn.request(&["LRANGE", &key, "0", "-1"]).await.unwrap(),
            "zset" => conn.request(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]).await.unwrap(),
            other => panic!("{key}: unexpected type {other}"),
        };
        out.insert(key, format!("{kind} {content:?}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_a_mixed_type_load_leaves_every_replica_with_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), NODES, |o| o.snapshot_count = Some(100));
    let first_leader = cluster.leader(Duration::from_secs(20)).await;
    let ports: Vec<u16> = (0..NODES as usize).map(|i| cluster.redis_port(i)).collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> =
        (0..CLIENTS).map(|c| tokio::spawn(client(c, ports.clone(), acked.clone(), stop.clone()))).collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acked.lock().unwrap().len();
    cluster.kill9(first_leader);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_ne!(cluster.leader(Duration::from_secs(20)).await, first_leader);
    cluster.restart(first_leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..NODES as usize {
        cluster.kill9(i);
    }
    for i in 0..NODES as usize {
        cluster.restart(i);
    }
    cluster.leader(Duration::from_secs(20)).await;
    let before_last_phase = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut done = 0;
    for c in clients {
        done += c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(before_kill > 5, "the load ran before the kill: {before_kill} acknowledged unique writes");
    assert!(acked.len() > before_last_phase, "clients continued after the whole cluster restarted");
    assert!(done > 100, "{done} acknowledged commands in all");

    cluster.caught_up(Duration::from_secs(30)).await;
    let dumps = dump_all(&ports).await;
    let kinds: Vec<&str> = dumps[0].values().map(|d| d.split(' ').next().unwrap()).collect();
    for kind in ["hash", "set", "list", "zset", "string"] {
        assert!(kinds.contains(&kind), "the load left no {kind}: {:?}", dumps[0]);
    }
    for (i, d) in dumps.iter().enumerate().skip(1) {
        for (key, content) in &dumps[0] {
            assert_eq!(&d[key], content, "node {} and node 1 disagree on {key}\n{}", i + 1, cluster.logs(20));
        }
    }
    // Every acknowledged unique field, on every node.
    for (i, port) in ports.iter().enumerate() {
        let mut conn = Resp::connect(SocketAddr::from(([127, 0, 0, 1], *port))).await.unwrap();
        conn.call(&["CONSISTENCY", "stale"]).await.unwrap();
        for (key, field) in &acked {
            let value = conn.call(&["HGET", key, field]).await.unwrap();
            assert_eq!(&format!("f{value}"), field, "node {}: {key} {field} lost", i + 1);
        }
    }
}

async fn dump_all(ports: &[u16]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for port in ports {
        out.push(dump(*port).await);
    }
    out
}

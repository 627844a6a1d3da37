//! The sharded mode on real `concord serve` processes, started as `concord up --nodes 3 --shards 4`
//! starts them (same flags, `spawn_node`):
//!
//! 1. the cluster bootstraps its shard map (4 shards × 3 replicas, each its own Raft group) and
//!    every shard gets a leader;
//! 2. clients write and read over HTTP on **every** node (the node forwards to the key's shard
//!    leader) and over RESP **following `-MOVED`** as a Redis Cluster client does (and retrying
//!    `-TRYAGAIN` / `-CLUSTERDOWN`), each recording a Jepsen-style history;
//! 3. a slot range holding a shared key is moved to another shard (`POST /v1/cluster/moves`, the
//!    admin call `concord shard move` makes) while the clients write; bad moves are refused with a
//!    precise reason and leave the map unchanged (an out-of-range slot, an unknown shard, a range
//!    already moving);
//! 4. in the middle of the move, the node leading the metadata group – where the mover runs – gets
//!    `kill -9`; it restarts from its WAL (each shard's state rebuilt from its Raft snapshot and
//!    log: `--snapshot-count 100` makes the run cross snapshots) and the move completes;
//! 5. afterwards every acknowledged write is read back through every node – key by key, by a
//!    prefix read (`GET /v1/kv?prefix=`, every shard gathered) on every node, and by `KEYS` fanned
//!    out over the nodes (each key on exactly one) – and the whole history is linearizable under
//!    the key-value model (`concord_check`).

use concord_check::{linearizability, Model};
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::Time;
use concord_server::testkit::{http, HttpAnswer, Resp};
use concord_server::Mode;
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod local_cluster;
use local_cluster::LocalCluster;

const NODES: u32 = 3;
const SHARDS: u32 = 4;
const HTTP_CLIENTS: u64 = 3;
const SHARED_KEYS: u64 = 16;
/// A client gives up on one call after this long (the node's own request timeout is 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(7);

/// `GET /v1/cluster` of node `i` (`None` while it does not answer).
async fn view(c: &LocalCluster, i: usize) -> Option<Json> {
    let answer = http(c.http[i], "GET", "/v1/cluster", b"", Duration::from_secs(2)).await.ok()?;
    answer.json().ok()
}

/// Wait until `done` holds for the map of every running node; their views.
async fn wait_for(c: &LocalCluster, what: &str, within: Duration, done: impl Fn(&Json) -> bool) -> Vec<Json> {
    let deadline = Instant::now() + within;
    loop {
        let mut views = Vec::new();
        for i in (0..c.children.len()).filter(|&i| c.running(i)) {
            if let Some(v) = view(c, i).await {
                views.push(v);
            }
        }
        let running = (0..c.children.len()).filter(|&i| c.running(i)).count();
        if views.len() == running && views.iter().all(&done) {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; views: {views:#?}\n{}",
            c.logs(25)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every shard has a leader known to the node, and the map is bootstrapped.
fn ready(v: &Json) -> bool {
    v["bootstrapped"] == true
        && v["map_leader"].is_u64()
        && v["shards"]
            .as_array()
            .is_some_and(|s| s.len() == SHARDS as usize && s.iter().all(|s| s["leader"].is_u64()))
}

/// What the clients share: the history, the acknowledged unique writes, the clock, counters.
struct Recorder {
    start: Instant,
    history: Mutex<History>,
    acked: Mutex<Vec<(String, i64)>>,
    next_process: AtomicU64,
    moved_followed: AtomicU64,
    retried: AtomicU64,
}

impl Recorder {
    fn record(&self, process: u64, kind: EventType, op: Op) {
        // Timestamps are taken under the lock, so the history's order is its real-time order.
        let mut h = self.history.lock().unwrap();
        let t = Time::from_duration(self.start.elapsed());
        h.push(process, kind, op, t);
    }
}

enum Outcome {
    Ok(Value),
    Fail,
    Info,
}

fn op_for(c: u64, n: i64) -> Op {
    let value = (c as i64) * 1_000_000 + n;
    match n % 3 {
        0 => Op::write(format!("own-{c}-{n}"), value),
        1 => Op::write(format!("shared-{}", (n as u64 * 7 + c) % SHARED_KEYS), value),
        _ => Op::read(format!("shared-{}", (n as u64 * 5 + 3 * c) % SHARED_KEYS)),
    }
}

/// One op over HTTP on `addr`.
async fn perform_http(addr: SocketAddr, op: &Op) -> Outcome {
    let key = op.key.as_deref().unwrap();
    let answer: Result<HttpAnswer, String> = match op.f {
        OpFn::Write => {
            let body = op.value.as_int().unwrap().to_string();
            http(addr, "PUT", &format!("/v1/kv/{key}"), body.as_bytes(), CALL_TIMEOUT).await
        }
        _ => http(addr, "GET", &format!("/v1/kv/{key}"), b"", CALL_TIMEOUT).await,
    };
    match (op.f, answer) {
        (OpFn::Write, Ok(a)) if a.status == 200 => Outcome::Ok(op.value.clone()),
        // 503: refused before it took effect (no leader, a slot between fence and flip).
        (OpFn::Write, Ok(a)) if a.status == 503 && a.json().is_ok_and(|j| j["outcome"].is_null()) => {
            Outcome::Fail
        }
        (OpFn::Write, _) => Outcome::Info,
        (_, Ok(a)) if a.status == 200 => Outcome::Ok(Value::Int(a.text().parse().expect("an integer value"))),
        (_, Ok(a)) if a.status == 404 => Outcome::Ok(Value::Nil),
        (_, _) => Outcome::Fail,
    }
}

/// A Redis Cluster client in miniature: send to the node believed to serve the key, follow
/// `-MOVED`, retry `-TRYAGAIN` and `-CLUSTERDOWN` (both mean "not done").
struct ClusterClient {
    conn: Option<(SocketAddr, Resp)>,
    first: SocketAddr,
}

impl ClusterClient {
    async fn perform(&mut self, op: &Op, rec: &Recorder) -> Outcome {
        let key = op.key.clone().unwrap();
        let value = op.value.as_int().map(|v| v.to_string()).unwrap_or_default();
        let args: Vec<&str> = match op.f {
            OpFn::Write => vec!["SET", &key, &value],
            _ => vec!["GET", &key],
        };
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut target = self.conn.as_ref().map_or(self.first, |(a, _)| *a);
        while Instant::now() < deadline {
            if self.conn.as_ref().is_none_or(|(a, _)| *a != target) {
                match Resp::connect(target).await {
                    Ok(r) => self.conn = Some((target, r)),
                    Err(_) => {
                        // Nobody listens there (a killed node): start over from the first node.
                        self.conn = None;
                        target = self.first;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let (_, conn) = self.conn.as_mut().unwrap();
            let reply = match conn.call(&args).await {
                Ok(reply) => reply,
                Err(_) => {
                    self.conn = None;
                    // The command may have reached the node: a write's outcome is unknown.
                    return if op.f == OpFn::Write { Outcome::Info } else { Outcome::Fail };
                }
            };
            if let Some(rest) = reply.strip_prefix("-MOVED ") {
                let addr = rest.split_whitespace().nth(1).expect("MOVED slot addr");
                target = addr.parse().expect("MOVED names a host:port");
                rec.moved_followed.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            if reply.starts_with("-TRYAGAIN") || reply.starts_with("-CLUSTERDOWN") {
                rec.retried.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            return match (op.f, reply.as_str()) {
                (OpFn::Write, "OK") => Outcome::Ok(op.value.clone()),
                (OpFn::Write, r) if r.starts_with("-TIMEOUT") || r.starts_with("-UNKNOWN") => Outcome::Info,
                (OpFn::Write, r) if r.starts_with('-') => Outcome::Fail,
                (_, "(nil)") => Outcome::Ok(Value::Nil),
                (_, r) if r.starts_with('-') => Outcome::Fail,
                (_, r) => Outcome::Ok(Value::Int(r.parse().expect("an integer value"))),
            };
        }
        Outcome::Fail // every try was refused before taking effect (-MOVED, -TRYAGAIN, -CLUSTERDOWN)
    }
}

enum Door {
    Http(Vec<SocketAddr>),
    Resp(ClusterClient),
}

async fn client(c: u64, mut door: Door, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut process = rec.next_process.fetch_add(1, Ordering::SeqCst);
    let mut node = c as usize;
    let mut n: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let op = op_for(c, n);
        rec.record(process, EventType::Invoke, op.clone());
        let outcome = match &mut door {
            // Any node serves any key: each HTTP client goes round every node.
            Door::Http(addrs) => {
                node = (node + 1) % addrs.len();
                perform_http(addrs[node], &op).await
            }
            Door::Resp(cluster) => cluster.perform(&op, &rec).await,
        };
        match outcome {
            Outcome::Ok(v) => {
                if op.f == OpFn::Write && op.key.as_deref().unwrap().starts_with("own-") {
                    rec.acked.lock().unwrap().push((op.key.clone().unwrap(), op.value.as_int().unwrap()));
                }
                rec.record(process, EventType::Ok, Op { value: v, ..op });
            }
            Outcome::Fail => {
                rec.record(process, EventType::Fail, op);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Outcome::Info => {
                rec.record(process, EventType::Info, op);
                // Jepsen's rule: a process with an op in doubt never invokes again.
                process = rec.next_process.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Every (key, value) of `GET /v1/kv?prefix=` on `addr`, walked a page of 100 at a time.
async fn list_prefix(addr: SocketAddr, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let end = format!("{}{}", &prefix[..prefix.len() - 1], (prefix.as_bytes()[prefix.len() - 1] + 1) as char);
    let mut path = format!("/v1/kv?prefix={prefix}&limit=100");
    loop {
        let a = http(addr, "GET", &path, b"", CALL_TIMEOUT).await.unwrap();
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        let page = a.json().unwrap();
        for kv in page["kvs"].as_array().unwrap() {
            out.push((kv["key"].as_str().unwrap().to_string(), kv["value"].as_str().unwrap().to_string()));
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/kv?start={next}&end={end}&limit=100"),
            None => return out,
        }
    }
}

/// `POST /v1/cluster/moves` on node `i` with the cluster's proof (as `concord shard move`).
async fn post_move(c: &LocalCluster, i: usize, body: Json) -> (u16, Json) {
    let secret = std::fs::read_to_string(&c.secret).unwrap();
    let bytes = serde_json::to_vec(&body).unwrap();
    let auth = concord_server::auth::proof(secret.trim().as_bytes(), "POST", "/v1/cluster/moves", &bytes);
    let answer = concord_server::client::http_with_headers(
        c.http[i],
        "POST",
        "/v1/cluster/moves",
        &[("authorization", &auth)],
        &bytes,
        CALL_TIMEOUT,
    )
    .await
    .unwrap();
    (answer.status, answer.json().unwrap_or(Json::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_move_under_load_and_a_kill_9_without_losing_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.snapshot_count = Some(100);
    });
    let views =
        wait_for(&c, "the shard map is bootstrapped with a leader per shard", Duration::from_secs(30), ready)
            .await;
    assert_eq!(views[0]["ranges"].as_array().unwrap().len(), SHARDS as usize, "{:#}", views[0]);

    let rec = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        acked: Mutex::new(Vec::new()),
        next_process: AtomicU64::new(0),
        moved_followed: AtomicU64::new(0),
        retried: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for k in 0..HTTP_CLIENTS {
        clients.push(tokio::spawn(client(k, Door::Http(c.http.clone()), rec.clone(), stop.clone())));
    }
    let first_resp = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let cluster_client = ClusterClient { conn: None, first: first_resp };
    // INFO: one "# Cluster" section (the front door's, with cluster_enabled:1, as Redis writes it)
    // and the node's own "# Sharding" section.
    let info = Resp::connect(first_resp).await.unwrap().call(&["INFO"]).await.unwrap();
    assert_eq!(info.matches("# Cluster").count(), 1, "{info}");
    assert!(info.contains("cluster_enabled:1") && info.contains("# Sharding"), "{info}");
    clients.push(tokio::spawn(client(HTTP_CLIENTS, Door::Resp(cluster_client), rec.clone(), stop.clone())));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked_before_move = rec.acked.lock().unwrap().len();

    // Bad moves: refused with the reason, the map unchanged.
    let epoch = view(&c, 0).await.unwrap()["epoch"].clone();
    let (status, answer) = post_move(&c, 0, json!({ "slots": "16000-16384", "to": 2 })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("slot 16384 is out of range"), "{answer}");
    let (status, answer) = post_move(&c, 1, json!({ "slots": "0-99", "to": 9 })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no such shard: shard-9"), "{answer}");
    assert_eq!(view(&c, 0).await.unwrap()["epoch"], epoch, "a refused move changed the map");

    // Move the 2048 slots around shared-0's to the next shard, while the clients write.
    let slot = concord_shard::key_slot(b"shared-0").get();
    let start = slot - slot % 2048;
    let range = format!("{start}-{}", start + 2047);
    let owner = |v: &Json| {
        v["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["start"].as_u64().unwrap() <= u64::from(slot)
                    && u64::from(slot) <= r["end"].as_u64().unwrap()
            })
            .map(|r| r["shard"].as_u64().unwrap())
    };
    // kill -9 the node running the mover (the metadata leader) in the middle of the move. A move
    // takes a few Raft commits; should one finish before the kill lands, the slots move on again.
    let mut killed_mid_move = None;
    for attempt in 0..3 {
        let map_leader = view(&c, 0).await.unwrap()["map_leader"].as_u64().unwrap() as usize - 1;
        let from = owner(&view(&c, map_leader).await.unwrap()).unwrap();
        let to = from % u64::from(SHARDS) + 1;
        let (status, answer) = post_move(&c, map_leader, json!({ "slots": range, "to": to })).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["from"], from, "{answer}");
        if attempt == 0 {
            // The same slots again while the move runs, asked of another node (which hands it to
            // the metadata leader): a conflict, the map unchanged.
            let other = (map_leader + 1) % NODES as usize;
            let (status, again) = post_move(&c, other, json!({ "slots": range, "to": to })).await;
            assert_eq!(status, 409, "{again}");
            assert!(again["error"].as_str().unwrap().contains("already moving"), "{again}");
        }
        // The mover's own map, just before the kill: the move still under way?
        let before = view(&c, map_leader).await.unwrap();
        let under_way = !before["moves"].as_array().unwrap().is_empty() || before["moves_settling"] != 0;
        c.kill9(map_leader);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.restart(map_leader);
        let views = wait_for(&c, "the move finished", Duration::from_secs(30), |v| {
            ready(v)
                && v["moves"].as_array().unwrap().is_empty()
                && v["moves_settling"] == 0
                && owner(v) == Some(to)
        })
        .await;
        eprintln!(
            "attempt {attempt}: moves before the kill {}; after: {:#}",
            before["moves"], views[0]["ranges"]
        );
        if under_way {
            killed_mid_move = Some(before["moves"].clone());
            break;
        }
    }
    assert!(killed_mid_move.is_some(), "no kill -9 landed in the middle of a move in 3 attempts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let acked = rec.acked.lock().unwrap().clone();
    assert!(acked_before_move > 10, "the load ran before the move: {acked_before_move} acked writes");
    assert!(acked.len() > acked_before_move, "clients wrote during and after the move");
    assert!(
        rec.moved_followed.load(Ordering::SeqCst) > 0,
        "the RESP client was never redirected with -MOVED"
    );

    // Every acknowledged write, through every node.
    for (i, addr) in c.http.iter().enumerate() {
        let mut missing = Vec::new();
        for (key, value) in &acked {
            let a = http(*addr, "GET", &format!("/v1/kv/{key}"), b"", CALL_TIMEOUT).await.unwrap();
            if a.status != 200 || a.text() != value.to_string() {
                missing.push((key.clone(), a.status, a.text()));
            }
        }
        assert!(
            missing.is_empty(),
            "node {}: {} of {} acknowledged writes missing, e.g. {:?}\n{}",
            i + 1,
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)],
            c.logs(30)
        );
    }
    // Range reads after the move and the kill: a prefix read on every node lists every
    // acknowledged key once, in order; KEYS fanned out over the nodes (per node, as in Redis
    // Cluster) finds each of them on exactly one node.
    for (i, addr) in c.http.iter().enumerate() {
        let listed = list_prefix(*addr, "own-").await;
        assert!(
            listed.windows(2).all(|w| w[0].0 < w[1].0),
            "node {}: not in key order, or a key twice",
            i + 1
        );
        let listed: std::collections::BTreeMap<String, String> = listed.into_iter().collect();
        for (key, value) in &acked {
            assert_eq!(listed.get(key), Some(&value.to_string()), "node {}: {key} in the prefix read", i + 1);
        }
    }
    let mut per_node = Vec::new();
    for i in 0..NODES as usize {
        let addr = SocketAddr::from(([127, 0, 0, 1], c.redis_port(i)));
        let keys =
            Resp::connect(addr).await.unwrap().request(&["KEYS", "own-*"]).await.unwrap().texts().unwrap();
        per_node.push(keys);
    }
    for (key, _) in &acked {
        let on = per_node.iter().filter(|keys| keys.contains(key)).count();
        assert_eq!(on, 1, "{key} is listed by KEYS on {on} nodes");
    }

    let history = rec.history.lock().unwrap().clone();
    let verdict = linearizability::check(&history, Model::Kv, Duration::from_secs(30));
    if !verdict.is_linearizable() {
        let path = std::env::temp_dir().join("concord-sharded-history.jsonl");
        std::fs::write(&path, history.to_jsonl()).unwrap();
        panic!(
            "history of {} events is not linearizable ({verdict}); saved to {}",
            history.len(),
            path.display()
        );
    }
    eprintln!(
        "{} history events, {} acknowledged unique writes present through all {NODES} nodes, {} -MOVED \
         followed, {} TRYAGAIN/CLUSTERDOWN retried; linearizable",
        history.len(),
        acked.len(),
        rec.moved_followed.load(Ordering::SeqCst),
        rec.retried.load(Ordering::SeqCst)
    );
}

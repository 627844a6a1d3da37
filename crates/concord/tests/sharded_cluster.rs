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
//!
//! `every_node_names_every_shards_leader_and_sees_a_dead_peer_disconnected` (4 shards of 2
//! replicas on 3 nodes): every node's map – and `concord shard list` – names the leader of every
//! shard, also of those it does not replicate (leader probes); a node killed with `kill -9` is
//! shown `disconnected` in the others' `CLUSTER NODES` and `connected: false` in `/v1/cluster`.
//!
//! `a_script_touches_only_keys_of_its_shard`: a script routed by its declared key may call
//! undeclared keys of its own shard, and a key of another shard fails with Redis Cluster's
//! `ERR Script attempted to access a non local key in a cluster node` – the key is written nowhere.
//!
//! `a_partitioned_node_loses_its_shards_and_heal_restores_them` (4 shards × 3 replicas, every node
//! `--allow-fault-injection`, as `concord up --mode sharded --allow-fault-injection` starts them):
//! `POST /v1/faults/partition` (with a proof of the cluster secret; 401 without a credential) cuts
//! node 1 from its peers – nodes 2 and 3 elect a leader of their own for every shard and take
//! writes, while node 1 neither commits a write nor answers a linearizable read (no stale value,
//! no 404 for a key written on the other side); `POST /v1/faults/heal` brings it back and it reads
//! what was written without it. `fault_injection_is_off_in_the_sharded_mode_without_the_flag`:
//! without the flag the same request is refused with 403 and the node is not cut.
//!
//! A second test, `replicas_move_and_a_joined_node_is_filled_by_the_rebalancer_under_load`, drives
//! the commands docs/sharding.md gives – `concord shard move-replica`, `concord join`, `concord
//! shard rebalance` – against 3 nodes of 4 shards × 2 replicas under the same clients, then checks
//! the same two things. A third, `a_replica_move_survives_kill_9_and_a_node_is_decommissioned_under_load`,
//! kills the target and then the source of replica moves mid-move, and decommissions a node with
//! `concord shard decommission`.

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
    wait_for_views(c, what, within, |views| views.iter().all(&done)).await
}

/// Wait until `done` holds for the views of all running nodes together; the views.
async fn wait_for_views(
    c: &LocalCluster,
    what: &str,
    within: Duration,
    done: impl Fn(&[Json]) -> bool,
) -> Vec<Json> {
    let deadline = Instant::now() + within;
    loop {
        let mut views = Vec::new();
        for i in (0..c.children.len()).filter(|&i| c.running(i)) {
            if let Some(v) = view(c, i).await {
                views.push(v);
            }
        }
        let running = (0..c.children.len()).filter(|&i| c.running(i)).count();
        if views.len() == running && done(&views) {
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

/// With fewer replicas than nodes, a node knows the leaders of the groups it runs (and those its
/// forwards taught it): every node has the map and knows the map's leader, and every shard's
/// leader is known to some node.
fn ready_somewhere(views: &[Json]) -> bool {
    views.iter().all(|v| v["bootstrapped"] == true && v["map_leader"].is_u64())
        && (1..=u64::from(SHARDS)).all(|k| {
            views.iter().any(|v| {
                v["shards"].as_array().unwrap().iter().any(|s| s["shard"] == k && s["leader"].is_u64())
            })
        })
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
    post_admin(c, i, "/v1/cluster/moves", body).await
}

/// An admin `POST path` on node `i` with the cluster's proof (as the `concord shard` commands).
async fn post_admin(c: &LocalCluster, i: usize, path: &str, body: Json) -> (u16, Json) {
    let secret = std::fs::read_to_string(&c.secret).unwrap();
    let bytes = serde_json::to_vec(&body).unwrap();
    let auth = concord_server::auth::proof(secret.trim().as_bytes(), "POST", path, &bytes);
    let answer = concord_server::testkit::http_with_headers(
        c.http[i],
        "POST",
        path,
        &[("authorization", &auth)],
        &bytes,
        CALL_TIMEOUT,
    )
    .await
    .unwrap();
    (answer.status, answer.json().unwrap_or(Json::Null))
}

/// The clients of both tests: `HTTP_CLIENTS` over HTTP going round nodes 1-3, one Redis Cluster
/// client over RESP from node 1; they run until `stop`.
fn start_clients(c: &LocalCluster) -> (Arc<Recorder>, Arc<AtomicBool>, Vec<tokio::task::JoinHandle<()>>) {
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
    let http_addrs: Vec<SocketAddr> = c.http[..NODES as usize].to_vec();
    for k in 0..HTTP_CLIENTS {
        clients.push(tokio::spawn(client(k, Door::Http(http_addrs.clone()), rec.clone(), stop.clone())));
    }
    let first_resp = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let cluster_client = ClusterClient { conn: None, first: first_resp };
    clients.push(tokio::spawn(client(HTTP_CLIENTS, Door::Resp(cluster_client), rec.clone(), stop.clone())));
    (rec, stop, clients)
}

/// Every acknowledged write is read back through every running node, and the history is
/// linearizable under the key-value model.
async fn check_writes_and_history(c: &LocalCluster, rec: &Recorder) {
    let acked = rec.acked.lock().unwrap().clone();
    // Every acknowledged write, through every node.
    for (i, addr) in c.http.iter().enumerate().filter(|(i, _)| c.running(*i)) {
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
    // Range reads: a prefix read on every node lists every acknowledged key once, in order; KEYS
    // fanned out over the nodes (per node, as in Redis Cluster: the shards it leads) finds each of
    // them on exactly one node – once leadership has settled (the rebalancer may still be handing
    // leaders over), so it is tried again for a while.
    let running: Vec<usize> = (0..c.http.len()).filter(|&i| c.running(i)).collect();
    for &i in &running {
        let listed = list_prefix(c.http[i], "own-").await;
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
    // Every member's RESP address, as a cluster client learns them (a joined node's included).
    let members = view(c, running[0]).await.expect("a running node's map")["members"].clone();
    let resp_addrs: Vec<SocketAddr> =
        members.as_array().unwrap().iter().filter_map(|m| m["redis_addr"].as_str()?.parse().ok()).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut per_node = Vec::new();
        for &addr in &resp_addrs {
            let Ok(mut conn) = Resp::connect(addr).await else { continue };
            let keys = conn.request(&["KEYS", "own-*"]).await.unwrap().texts().unwrap();
            per_node.push(keys);
        }
        let wrong: Vec<(&String, usize)> = acked
            .iter()
            .map(|(key, _)| (key, per_node.iter().filter(|keys| keys.contains(key)).count()))
            .filter(|&(_, on)| on != 1)
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "KEYS over the nodes: {} keys not on exactly one node, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
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
        "{} history events, {} acknowledged unique writes present through all {} nodes, {} -MOVED \
         followed, {} TRYAGAIN/CLUSTERDOWN retried; linearizable",
        history.len(),
        acked.len(),
        c.http.len(),
        rec.moved_followed.load(Ordering::SeqCst),
        rec.retried.load(Ordering::SeqCst)
    );
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

    let (rec, stop, clients) = start_clients(&c);
    // INFO: one "# Cluster" section (the front door's, with cluster_enabled:1, as Redis writes it)
    // and the node's own "# Sharding" section.
    let first_resp = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let info = Resp::connect(first_resp).await.unwrap().call(&["INFO"]).await.unwrap();
    assert_eq!(info.matches("# Cluster").count(), 1, "{info}");
    assert!(info.contains("cluster_enabled:1") && info.contains("# Sharding"), "{info}");
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

    check_writes_and_history(&c, &rec).await;
}

/// `GET /v1/status` of the node at `addr`.
async fn node_status(addr: SocketAddr) -> Json {
    http(addr, "GET", "/v1/status", b"", CALL_TIMEOUT).await.unwrap().json().unwrap()
}

/// Poll `f` until it gives a value (at most 10 s).
async fn wait_until<T, F: std::future::Future<Output = Option<T>>>(what: &str, f: impl Fn() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `concord ARGS…` (this very binary) to its end: its exit status and output.
async fn concord(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_concord")).args(&args).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

/// The flags every `concord shard` admin command of this test takes: node 1, the cluster secret.
fn admin_flags(c: &LocalCluster) -> Vec<String> {
    vec!["--http".into(), c.http[0].to_string(), "--secret-file".into(), c.secret.display().to_string()]
}

/// Replicas (voters and learners) per node in a `GET /v1/cluster` view.
fn replica_counts(v: &Json) -> std::collections::BTreeMap<u64, usize> {
    let mut counts: std::collections::BTreeMap<u64, usize> =
        v["nodes"].as_array().unwrap().iter().map(|n| (n.as_u64().unwrap(), 0)).collect();
    for shard in v["shards"].as_array().unwrap() {
        for n in shard["replicas"].as_array().unwrap().iter().chain(shard["learners"].as_array().unwrap()) {
            *counts.entry(n.as_u64().unwrap()).or_default() += 1;
        }
    }
    counts
}

fn shard_of(v: &Json, shard: u64) -> Json {
    v["shards"].as_array().unwrap().iter().find(|s| s["shard"] == shard).unwrap().clone()
}

fn ids(v: &Json) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect()
}

/// 3 nodes, 4 shards × 2 replicas, clients writing throughout:
/// 1. bad replica moves are refused with the reason and change nothing;
/// 2. `concord shard move-replica` moves shard 1's replica to the node without one (learner →
///    caught up → promoted, the old voter leaving in the same map change → removed) – and a second
///    replica move asked while it runs is refused (409);
/// 3. `concord join` adds node 4: it replicates the metadata group and enters the placement;
/// 4. `concord shard rebalance` switches the rebalancer on and waits until the map is balanced:
///    the 8 replicas end 2 per node, so node 4 serves replicas it did not have; node 4 then gets
///    `kill -9` and is restarted with `concord serve` and the same flags;
/// 5. every acknowledged write is read back through all 4 nodes, and the history is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_and_a_joined_node_is_filled_by_the_rebalancer_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.shard_replicas = Some(2);
        o.snapshot_count = Some(100);
    });
    let views = wait_for_views(
        &c,
        "the shard map is bootstrapped with a leader per shard",
        Duration::from_secs(30),
        ready_somewhere,
    )
    .await;
    let first = views[0].clone();
    assert_eq!(first["rebalance"]["on"], false, "{first:#}");
    let (rec, stop, clients) = start_clients(&c);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // 1. Refused, the map unchanged.
    let voters = ids(&shard_of(&first, 1)["replicas"]);
    let (from, to) = (voters[0], (1..=u64::from(NODES)).find(|n| !voters.contains(n)).unwrap());
    let epoch = view(&c, 0).await.unwrap()["epoch"].clone();
    for (body, status, reason) in [
        (json!({ "shard": 9, "from": from, "to": to }), 400, "no such shard: shard-9"),
        (json!({ "shard": 1, "from": from, "to": 7 }), 400, "node n7 is not in the placement"),
        (
            json!({ "shard": 1, "from": to, "to": from }),
            400,
            &format!("node n{to} is not a voter of shard-1"),
        ),
        (json!({ "shard": 1, "from": from, "to": voters[1] }), 400, "already replicates shard-1"),
    ] {
        let (got, answer) = post_admin(&c, 1, "/v1/cluster/replicas", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(reason), "{body}: {answer}");
    }
    assert_eq!(view(&c, 0).await.unwrap()["epoch"], epoch, "a refused replica move changed the map");

    // 2. Move shard 1's replica from `from` to `to`; another move while it runs is refused.
    let mut args: Vec<String> = vec!["shard".into(), "move-replica".into(), "1".into()];
    args.extend(["--from".into(), from.to_string(), "--to".into(), to.to_string(), "--no-wait".into()]);
    args.extend(admin_flags(&c));
    let (ok, out) = concord(args).await;
    assert!(ok, "concord shard move-replica: {out}");
    let other = json!({ "shard": 2, "from": ids(&shard_of(&first, 2)["replicas"])[0], "to": from });
    let (status, answer) = post_admin(&c, 2, "/v1/cluster/replicas", other).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("already under way"), "{answer}");
    let views = wait_for(&c, "shard 1's replica moved", Duration::from_secs(60), |v| {
        let s = shard_of(v, 1);
        let replicas = ids(&s["replicas"]);
        v["bootstrapped"] == true
            && replicas.contains(&to)
            && !replicas.contains(&from)
            && ids(&s["learners"]).is_empty()
            && ids(&s["leaving"]).is_empty()
    })
    .await;
    let runs =
        |status: &Json, group: u64| status["groups"].as_array().unwrap().iter().any(|g| g["group"] == group);
    wait_until(&format!("node {from} drops shard 1's group"), || async {
        let status = node_status(c.http[from as usize - 1]).await;
        (!runs(&status, 1)).then_some(())
    })
    .await;
    eprintln!("after the replica move: {:?}", replica_counts(&views[0]));

    // 3. Node 4 joins, as `concord join` is given in docs/sharding.md.
    let ports = concord_server::testkit::free_port_run(3);
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (redis4, http4, peer4) = (local(ports), local(ports + 1), local(ports + 2));
    let mut argv: Vec<String> = vec!["join".into(), "--via".into(), c.http[0].to_string()];
    for (flag, value) in [
        ("--id", "4".to_string()),
        ("--data", dir.path().join("node4").display().to_string()),
        ("--peer-addr", peer4.to_string()),
        ("--redis-addr", redis4.to_string()),
        ("--http-addr", http4.to_string()),
        ("--cluster-id", c.cluster_id.clone()),
        ("--cluster-secret-file", c.secret.display().to_string()),
        ("--mode", "sharded".into()),
        ("--shards", SHARDS.to_string()),
        ("--replicas", "2".into()),
        ("--snapshot-count", "100".into()),
    ] {
        argv.extend([flag.to_string(), value]);
    }
    for j in 0..NODES as u16 {
        let at = |base: u16| local(base + j);
        argv.push("--peer".into());
        argv.push(format!(
            "{}={},http={},redis={}",
            j + 1,
            at(c.args.peer_port),
            at(c.args.http_port),
            at(c.args.redis_port)
        ));
    }
    let start4 = |argv: &[String]| {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("node4.log")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(argv)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    c.children.push(Some(start4(&argv)));
    c.http.push(http4);
    c.args.nodes = NODES + 1; // its log in `c.logs`
    wait_for(&c, "node 4 is in every node's placement", Duration::from_secs(60), |v| {
        v["bootstrapped"] == true
            && ids(&v["nodes"]).contains(&4)
            && v["members"].as_array().unwrap().iter().any(|m| m["id"] == 4)
    })
    .await;
    let status = node_status(http4).await;
    assert_eq!(status["groups"].as_array().unwrap().len(), 1, "node 4 holds only the map so far: {status:#}");
    let meta = &status["groups"][0];
    assert_eq!(meta["applied_index"], meta["commit_index"], "node 4 applied the map: {status:#}");

    // 4. The rebalancer fills it.
    let mut args: Vec<String> = vec!["shard".into(), "rebalance".into(), "--timeout".into(), "120".into()];
    args.extend(admin_flags(&c));
    let (ok, out) = concord(args).await;
    assert!(ok, "concord shard rebalance: {out}\n{}", c.logs(20));
    assert!(out.contains("balanced at map epoch"), "{out}");
    let views = wait_for(&c, "every node agrees the map is balanced", Duration::from_secs(30), |v| {
        v["rebalance"]["balanced"] == true && v["rebalance"]["on"] == true
    })
    .await;
    let counts = replica_counts(&views[0]);
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 2, 2, 2], "{counts:?}: {:#}", views[0]);
    let mine: Vec<u64> = views[0]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| ids(&s["replicas"]).contains(&4))
        .map(|s| s["shard"].as_u64().unwrap())
        .collect();
    wait_until("node 4 runs the groups of its 2 replicas", || async {
        let status = node_status(http4).await;
        mine.iter().all(|&k| runs(&status, k)).then_some(())
    })
    .await;
    eprintln!("rebalanced: {out}");

    // A joined node restarts as any node does: `concord serve` with the same flags (no --via);
    // its groups and the metadata group's membership come back from its WAL.
    c.kill9(3);
    let serve: Vec<String> = ["serve".to_string()].into_iter().chain(argv[3..].iter().cloned()).collect();
    c.children[3] = Some(start4(&serve));
    wait_until("node 4 is back with a leader for each of its groups", || async {
        let status = http(http4, "GET", "/v1/status", b"", CALL_TIMEOUT).await.ok()?.json().ok()?;
        let groups = status["groups"].as_array()?.clone();
        (groups.len() == 1 + mine.len() && groups.iter().all(|g| g["leader"].is_u64())).then_some(())
    })
    .await;

    // Node 4 serves keys too (forwarding to each key's leader), then the load stops.
    let a = http(http4, "PUT", "/v1/kv/joined", b"4", CALL_TIMEOUT).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert!(rec.acked.lock().unwrap().len() > 20, "the clients wrote throughout");
    check_writes_and_history(&c, &rec).await;
}

/// 3 nodes, 4 shards × 2 replicas, clients writing throughout (issue #13):
/// 1. **kill -9 in the middle of a replica move**, twice: a replica move of one shard whose
///    *target* (the learner catching up) is killed, then one of another shard whose *source* (a
///    voter) is killed; each is restarted with the same command and the move completes;
/// 2. **decommission under load** of the node leading the metadata group: `concord shard
///    decommission N` asked of another node, exactly as a user runs it – first with `--no-wait`
///    (the map takes N out of the placement; `concord shard list` shows it leaving while its
///    replicas move off), then again, waiting: the rebalancer stays off, the drain steps move every
///    replica off N, the metadata group's leadership moves off it and N leaves the group;
///    afterwards it holds no replica, is no voter of the metadata group, and is killed;
/// 3. every acknowledged write is read back through the remaining nodes, and the history is
///    linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_move_survives_kill_9_and_a_node_is_decommissioned_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.shard_replicas = Some(2);
        o.snapshot_count = Some(100);
    });
    wait_for_views(
        &c,
        "the shard map is bootstrapped with a leader per shard",
        Duration::from_secs(30),
        ready_somewhere,
    )
    .await;
    let (rec, stop, clients) = start_clients(&c);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // 1. A replica move, kill -9 of its target (shard 1) and of its source (shard 2).
    let mut landed = Vec::new();
    for (shard, kill_target) in [(1u64, true), (2, false)] {
        let v = view(&c, 0).await.unwrap();
        let voters = ids(&shard_of(&v, shard)["replicas"]);
        let (from, to) = (voters[0], (1..=u64::from(NODES)).find(|n| !voters.contains(n)).unwrap());
        let victim = if kill_target { to } else { from };
        // Asked of a node that stays up.
        let asked = (0..NODES as usize).find(|&i| i as u64 + 1 != victim).unwrap();
        let (status, answer) =
            post_admin(&c, asked, "/v1/cluster/replicas", json!({ "shard": shard, "from": from, "to": to }))
                .await;
        assert_eq!(status, 200, "{answer}");
        // The asked node's map once it applied the move (the answer comes from the map's leader).
        let epoch = answer["epoch"].as_u64().unwrap();
        let before = wait_until("the asked node applied the replica move", || async {
            view(&c, asked).await.filter(|v| v["epoch"].as_u64() >= Some(epoch))
        })
        .await;
        let s = shard_of(&before, shard);
        let under_way = !ids(&s["learners"]).is_empty() || !ids(&s["leaving"]).is_empty();
        c.kill9(victim as usize - 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.restart(victim as usize - 1);
        wait_for(
            &c,
            &format!("shard {shard}'s replica moved from node {from} to node {to}"),
            Duration::from_secs(60),
            |v| {
                let s = shard_of(v, shard);
                let replicas = ids(&s["replicas"]);
                v["bootstrapped"] == true
                    && replicas.contains(&to)
                    && !replicas.contains(&from)
                    && ids(&s["learners"]).is_empty()
                    && ids(&s["leaving"]).is_empty()
            },
        )
        .await;
        eprintln!(
            "shard {shard}: node {victim} killed {} the move",
            if under_way { "during" } else { "after" }
        );
        if under_way {
            landed.push(shard);
        }
    }
    assert!(!landed.is_empty(), "no kill -9 landed in the middle of a replica move");

    // 2. Decommission the node leading the metadata group (so its leadership is handed over
    //    too), as a user would, asking another node: `--no-wait` starts it; the list shows it
    //    leaving; then the same command waits until it is done.
    let leader = view(&c, 0).await.unwrap()["map_leader"].as_u64().unwrap();
    let asked = (1..=u64::from(NODES)).find(|&n| n != leader).unwrap();
    let other = (1..=u64::from(NODES)).find(|&n| n != leader && n != asked).unwrap();
    let (gone, ask) = (leader as usize - 1, asked as usize - 1);
    let flags: Vec<String> = vec![
        "--http".into(),
        c.http[ask].to_string(),
        "--secret-file".into(),
        c.secret.display().to_string(),
    ];
    let decommission = |wait: bool| {
        let mut args: Vec<String> = vec!["shard".into(), "decommission".into(), leader.to_string()];
        args.extend(if wait { vec!["--timeout".into(), "120".into()] } else { vec!["--no-wait".into()] });
        args.extend(flags.clone());
        concord(args)
    };
    // Refused, the map unchanged: an unknown node, and the node asked itself.
    let epoch = view(&c, ask).await.unwrap()["epoch"].clone();
    let (status, answer) = post_admin(&c, ask, "/v1/cluster/decommission", json!({ "node": 9 })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unknown node 9"), "{answer}");
    let (status, answer) = post_admin(&c, ask, "/v1/cluster/decommission", json!({ "node": asked })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("ask another node"), "{answer}");
    assert_eq!(view(&c, ask).await.unwrap()["epoch"], epoch, "a refused decommission changed the map");

    let (ok, out) = decommission(false).await;
    assert!(ok && out.contains("draining:"), "concord shard decommission {leader} --no-wait: {out}");
    let v = wait_until(&format!("node {leader} left the placement in node {asked}'s map"), || async {
        view(&c, ask).await.filter(|v| v["bootstrapped"] == true && !ids(&v["nodes"]).contains(&leader))
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["shard", "list", "--http", &c.http[ask].to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    if !ids(&v["leaving_nodes"]).is_empty() {
        assert!(
            table.contains(&format!("leaving (decommissioned, replicas moving off) {leader}")),
            "{table}"
        );
    }
    // With 2 nodes left for 2 replicas per shard, the third may not go too.
    let (status, answer) = post_admin(&c, ask, "/v1/cluster/decommission", json!({ "node": other })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("for 2 replicas per shard"), "{answer}");
    // The same command again, waiting: progress, then done.
    let (ok, out) = decommission(true).await;
    assert!(ok, "concord shard decommission {leader}: {out}\n{}", c.logs(20));
    assert!(out.contains(&format!("node {leader} is decommissioned: it may be stopped")), "{out}");
    eprintln!("decommission of node {leader} (the metadata leader), asked of node {asked}:\n{table}{out}");
    let mut rest = vec![asked, other];
    rest.sort();
    let views = wait_for(
        &c,
        &format!("every map has node {leader} drained and out of the metadata group"),
        Duration::from_secs(30),
        |v| {
            !ids(&v["nodes"]).contains(&leader)
                && ids(&v["leaving_nodes"]).is_empty()
                && v["shards"].as_array().unwrap().iter().all(|s| {
                    !ids(&s["replicas"]).contains(&leader)
                        && !ids(&s["learners"]).contains(&leader)
                        && !ids(&s["leaving"]).contains(&leader)
                })
                && (v["node"] == leader
                    || (ids(&v["metadata"]["voters"]) == rest && v["map_leader"] != leader))
        },
    )
    .await;
    assert_eq!(views[0]["rebalance"]["on"], false, "the drain did not switch the rebalancer on");
    // Running it again reports that it is done.
    let (ok, again) = decommission(true).await;
    assert!(ok && again.contains("is decommissioned"), "{again}");

    // The node may be stopped: the cluster keeps serving every key.
    c.kill9(gone);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = http(c.http[ask], "PUT", "/v1/kv/after-decommission", b"1", CALL_TIMEOUT).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert!(rec.acked.lock().unwrap().len() > 20, "the clients wrote throughout");
    check_writes_and_history(&c, &rec).await;
}

/// `concord shard list` (and `GET /v1/cluster`, which the list and the dashboard read) names the
/// leader of **every** shard on every node, also of shards the node asked does not replicate (it
/// learns them from its leader probes; before, it showed `-`). And the RESP topology's `connected`
/// is the peer connection's state: a killed node shows `disconnected` in `CLUSTER NODES`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_names_every_shards_leader_and_sees_a_dead_peer_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    // 4 shards of 2 replicas on 3 nodes: every node lacks a shard or two.
    let mut c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.shard_replicas = Some(2);
        o.no_fsync = true;
    });
    let views = wait_for(&c, "every node knows every shard's leader", Duration::from_secs(30), ready).await;
    let mut not_hosted = Vec::new();
    for v in &views {
        let node = v["node"].as_u64().unwrap();
        for s in v["shards"].as_array().unwrap() {
            let replicas: Vec<u64> =
                s["replicas"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
            assert_eq!(replicas.len(), 2, "{s}");
            let leader = s["leader"].as_u64().unwrap();
            assert!(replicas.contains(&leader), "node {node}: the leader of {s} is one of its replicas");
            if !replicas.contains(&node) {
                not_hosted.push((node, s["shard"].as_u64().unwrap()));
            }
        }
    }
    assert!(!not_hosted.is_empty(), "the layout leaves some shard off some node: {views:#?}");

    // The list, as a person reads it, from a node that does not replicate some shard.
    let (node, shard) = not_hosted[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["shard", "list", "--http", &c.http[node as usize - 1].to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("SHARD"))
        .skip(1)
        .take(SHARDS as usize)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), SHARDS as usize, "{table}");
    for row in &rows {
        let leader = row.last().unwrap();
        assert!(
            leader.parse::<u32>().is_ok(),
            "node {node}: every shard's LEADER is a node id, not {leader:?}:\n{table}"
        );
    }
    assert!(rows.iter().any(|r| r[0] == shard.to_string()), "shard {shard} is listed:\n{table}");

    // Kill node 3: node 1 sees its connection to it go down (RESP topology and /v1/cluster alike).
    let resp1 = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let before = Resp::connect(resp1).await.unwrap().call(&["CLUSTER", "NODES"]).await.unwrap();
    assert!(!before.contains("disconnected"), "every node is up:\n{before}");
    c.kill9(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = Resp::connect(resp1).await.unwrap().call(&["CLUSTER", "NODES"]).await.unwrap();
        let port3 = format!(":{}@", c.redis_port(2));
        let line3 =
            nodes.lines().find(|l| l.contains(&port3)).unwrap_or_else(|| panic!("node 3 listed:\n{nodes}"));
        let v = view(&c, 0).await.unwrap();
        let member3 = v["members"].as_array().unwrap().iter().find(|m| m["id"] == 3).cloned().unwrap();
        if line3.contains("disconnected") && member3["connected"] == false {
            assert!(
                nodes.lines().filter(|l| !l.contains(&port3)).all(|l| l.contains(" connected")),
                "only node 3 is disconnected:\n{nodes}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "node 1 still shows node 3 connected:\n{nodes}\n{member3}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Send `args` over RESP as a cluster client does: from node 1, following `-MOVED` and retrying
/// `-TRYAGAIN` / `-CLUSTERDOWN` (a shard just electing a leader).
async fn cluster_call(c: &LocalCluster, args: &[&str]) -> String {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = Resp::connect(addr).await.unwrap().call(args).await.unwrap();
        if let Some(moved) = reply.strip_prefix("-MOVED ") {
            addr = moved.split(' ').nth(1).unwrap().parse().unwrap();
        } else if reply.starts_with("-TRYAGAIN") || reply.starts_with("-CLUSTERDOWN") {
            assert!(Instant::now() < deadline, "{args:?}: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            return reply;
        }
    }
}

/// A script runs in its declared key's shard, whose state machine holds only that shard's slots:
/// a `redis.call` on a key of another shard is refused there, as a Redis Cluster node refuses a
/// non-local key (`concord_kv::redis::script`); undeclared keys of its own shard are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_touches_only_keys_of_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.no_fsync = true;
    });
    let views = wait_for(&c, "every shard has a leader", Duration::from_secs(30), ready).await;
    let shard_of_slot = |slot: u64| -> u64 {
        let ranges = views[0]["ranges"].as_array().unwrap();
        let r = ranges.iter().find(|r| r["start"].as_u64() <= Some(slot) && Some(slot) <= r["end"].as_u64());
        r.unwrap()["shard"].as_u64().unwrap()
    };
    // Keys and their shards, as CLUSTER KEYSLOT and the map say.
    let mut by_shard: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let first = SocketAddr::from(([127, 0, 0, 1], c.redis_port(0)));
    let mut conn = Resp::connect(first).await.unwrap();
    for i in 0..40 {
        let key = format!("script-key-{i}");
        let slot: u64 = conn.call(&["CLUSTER", "KEYSLOT", &key]).await.unwrap().parse().unwrap();
        by_shard.entry(shard_of_slot(slot)).or_default().push(key);
    }
    let home = by_shard.values().find(|keys| keys.len() >= 2).unwrap();
    let away = by_shard.values().find(|keys| *keys != home).unwrap();
    let (declared, same_shard, other_shard) = (&home[0], &home[1], &away[0]);

    // An undeclared key of the script's own shard: allowed, as Redis allows its node's keys.
    let set_both = "redis.call('set', KEYS[1], 'a') return redis.call('set', ARGV[1], 'b')";
    assert_eq!(cluster_call(&c, &["EVAL", set_both, "1", declared, same_shard]).await, "OK");
    assert_eq!(cluster_call(&c, &["GET", same_shard]).await, "b");

    // A key of another shard: refused inside the state machine; the write before it is kept (a
    // script is atomic, not transactional), the refused one is made nowhere.
    let refused = cluster_call(&c, &["EVAL", set_both, "1", same_shard, other_shard]).await;
    assert!(
        refused.starts_with("-ERR Script attempted to access a non local key in a cluster node script: "),
        "{refused}"
    );
    assert_eq!(cluster_call(&c, &["GET", other_shard]).await, "(nil)");
    let pcall = "return redis.pcall('get', ARGV[1])";
    assert_eq!(
        cluster_call(&c, &["EVAL_RO", pcall, "1", declared, other_shard]).await,
        "-ERR Script attempted to access a non local key in a cluster node"
    );
    // A keyless script has no shard to run in: the sharded mode refuses it before it runs (Redis
    // Cluster would run it on the node asked), so it cannot reach into another shard either.
    let keyless =
        cluster_call(&c, &["EVAL", "return redis.call('set', ARGV[1], 'x')", "0", other_shard]).await;
    assert_eq!(keyless, "-ERR rejected: ERR a sharded cluster routes by key; this request has none");
    assert_eq!(cluster_call(&c, &["GET", other_shard]).await, "(nil)");
}

/// A fault-injection request to `addr` with a proof of the cluster secret (what a forwarding node
/// or the lab sends; the dashboard token would do too).
async fn fault(c: &LocalCluster, addr: SocketAddr, action: &str) -> HttpAnswer {
    let secret = std::fs::read_to_string(&c.secret).unwrap();
    let path = format!("/v1/faults/{action}");
    let proof = concord_server::auth::proof(secret.trim().as_bytes(), "POST", &path, b"");
    concord_server::testkit::http_with_headers(
        addr,
        "POST",
        &path,
        &[("authorization", &proof)],
        b"",
        Duration::from_secs(3),
    )
    .await
    .unwrap()
}

async fn fault_state(addr: SocketAddr) -> Json {
    http(addr, "GET", "/v1/faults", b"", Duration::from_secs(3)).await.unwrap().json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_off_in_the_sharded_mode_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCluster::start(dir.path(), 1, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(1);
        o.shard_replicas = Some(1);
        o.no_fsync = true;
    });
    wait_until("the node answers GET /v1/faults", || async {
        http(c.http[0], "GET", "/v1/faults", b"", Duration::from_secs(2)).await.ok()
    })
    .await;
    let state = fault_state(c.http[0]).await;
    assert_eq!((state["fault_injection"].clone(), state["isolated"].clone()), (json!(false), json!(false)));
    for action in ["partition", "heal", "stop", "nodes/1/partition"] {
        let refused = fault(&c, c.http[0], action).await;
        assert_eq!(refused.status, 403, "POST /v1/faults/{action}: {}", refused.text());
        assert!(refused.text().contains("--allow-fault-injection"), "{}", refused.text());
    }
    assert_eq!(fault_state(c.http[0]).await["isolated"], false, "the node was not cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_loses_its_shards_and_heal_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCluster::start(dir.path(), NODES, |o| {
        o.mode = Mode::Sharded;
        o.shards = Some(SHARDS);
        o.no_fsync = true;
        o.allow_fault_injection = true;
    });
    wait_for(&c, "every node knows every shard's leader", Duration::from_secs(30), ready).await;
    assert_eq!(fault_state(c.http[0]).await["fault_injection"], true);
    // Loopback is no credential.
    let plain = http(c.http[0], "POST", "/v1/faults/partition", b"", Duration::from_secs(3)).await.unwrap();
    assert_eq!(plain.status, 401, "{}", plain.text());
    assert_eq!(fault_state(c.http[0]).await["isolated"], false);

    let cut = fault(&c, c.http[0], "partition").await;
    assert_eq!(cut.status, 200, "{}", cut.text());
    assert_eq!(fault_state(c.http[0]).await["isolated"], true);

    // The majority side: nodes 2 and 3 lead every shard between them, and take writes for all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views = [view(&c, 1).await, view(&c, 2).await];
        let led_by_majority = views.iter().flatten().count() == 2
            && views.iter().flatten().all(|v| {
                v["shards"].as_array().is_some_and(|s| {
                    s.len() == SHARDS as usize
                        && s.iter().all(|s| s["leader"].as_u64().is_some_and(|l| l == 2 || l == 3))
                })
            });
        if led_by_majority {
            break;
        }
        assert!(Instant::now() < deadline, "nodes 2 and 3 did not lead every shard: {views:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys: Vec<String> = (0..12).map(|i| format!("cut{i}")).collect();
    let mut shards_written = std::collections::BTreeSet::new();
    for k in &keys {
        let put =
            http(c.http[1], "PUT", &format!("/v1/kv/{k}"), b"written-apart", CALL_TIMEOUT).await.unwrap();
        assert_eq!(put.status, 200, "PUT {k} through node 2 during the partition: {}", put.text());
        let got = http(c.http[2], "GET", &format!("/v1/kv/{k}"), b"", CALL_TIMEOUT).await.unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        shards_written.insert(got.header("x-concord-shard").unwrap_or_default().to_string());
    }
    assert!(shards_written.len() > 1, "the keys span shards: {shards_written:?}");

    // The minority side: node 1 commits nothing and serves no linearizable read – not the old
    // value, not a 404 for a key the other side wrote.
    let put = http(c.http[0], "PUT", "/v1/kv/minority", b"x", CALL_TIMEOUT).await;
    assert!(put.as_ref().map_or(true, |a| a.status != 200), "node 1 acknowledged a write while cut off");
    for k in keys.iter().take(4) {
        let read =
            http(c.http[0], "GET", &format!("/v1/kv/{k}?consistency=linearizable"), b"", CALL_TIMEOUT).await;
        if let Ok(a) = &read {
            assert!(
                a.status != 200 && a.status != 404,
                "node 1 answered a linearizable read of {k} while cut off: {} {}",
                a.status,
                a.text()
            );
        }
    }

    // Heal: node 1 rejoins, reads what was written without it, and takes writes again.
    let healed = fault(&c, c.http[0], "heal").await;
    assert_eq!(healed.status, 200, "{}", healed.text());
    assert_eq!(fault_state(c.http[0]).await["isolated"], false);
    for k in &keys {
        let got = wait_until(&format!("node 1 reads {k} after the heal"), || async {
            let a = http(c.http[0], "GET", &format!("/v1/kv/{k}"), b"", CALL_TIMEOUT).await.ok()?;
            (a.status == 200).then(|| a.text())
        })
        .await;
        assert_eq!(got, "written-apart");
    }
    wait_until("node 1 takes a write after the heal", || async {
        let a = http(c.http[0], "PUT", "/v1/kv/after-heal", b"y", CALL_TIMEOUT).await.ok()?;
        (a.status == 200).then_some(())
    })
    .await;
}

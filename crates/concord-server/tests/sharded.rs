//! The sharded mode's HTTP and RESP doors on real nodes in one process (loopback
//! sockets, real WALs): 3 nodes, 3 shards of 2 replicas – so every node leads some shards,
//! replicates others and holds no replica of one.
//!
//! * keys written through every node are all found by `GET /v1/kv?prefix=` on any node, in key
//!   order, in one page or walked a page at a time, and while a slot range holding many of them
//!   moves between shards (no key missed or listed twice);
//! * RESP, as one node of a Redis Cluster: `KEYS` fanned out over the nodes finds every key exactly
//!   once, `DBSIZE`s add up, `SCAN` walks a node's keys once, `CLUSTER COUNTKEYSINSLOT` and
//!   `GETKEYSINSLOT` answer for the slot's keys on the node serving it and 0 elsewhere;
//! * `READONLY`: a node reads a key of a shard it replicates but does not lead (no `-MOVED`), still
//!   redirects writes, and `READWRITE` restores the redirect.
//!
//! * CAS and transactions in the keys' shard (`CROSSSLOT` across shards), range deletes over every
//!   shard (during a slot move too), and a backup restored into a new cluster.
//!
//! The same on real processes with redis-cli and redis-py: `crates/concord/tests/sharded_cluster.rs`.

use concord_server::config::ShardSettings;
use concord_server::sharded::ShardedHandle;
use concord_server::testkit::{http, loopback_configs, Reply, Resp};
use concord_server::{Mode, Node};
use concord_shard::map::{Change, Proposal, ShardId};
use concord_shard::{key_slot, Slot, SlotRange};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const SHARDS: u32 = 3;

struct Cluster {
    nodes: Vec<Node>,
    http: Vec<SocketAddr>,
    redis: Vec<SocketAddr>,
}

impl Cluster {
    fn handle(&self, i: usize) -> ShardedHandle {
        self.nodes[i].sharded().expect("a sharded node")
    }
}

async fn start(dir: &std::path::Path) -> Cluster {
    let mut configs = loopback_configs(dir, 3);
    for c in &mut configs {
        c.mode = Mode::Sharded;
        c.shard = Some(ShardSettings { shards: SHARDS, replicas: 2 });
    }
    let http = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let redis = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    let c = Cluster { nodes, http, redis };
    // Every node knows the map, every replica its shard's leader, and the leaders took their slots.
    let deadline = Instant::now() + T;
    loop {
        let ready = (0..3).all(|i| {
            let s = c.handle(i).status();
            s.map.bootstrapped
                && s.groups.len() == 3
                && s.groups.iter().all(|g| g.leader.is_some() && (g.group == 0 || !g.slots.is_empty()))
        });
        if ready {
            return c;
        }
        assert!(Instant::now() < deadline, "the sharded cluster did not get ready within {T:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let a = http(addr, "GET", path, b"", T).await.unwrap();
    (a.status, a.json().unwrap_or(Value::Null))
}

/// Every key of `GET /v1/kv?prefix=` on `addr`, walked `limit` at a time.
async fn list(addr: SocketAddr, prefix: &str, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut path = format!("/v1/kv?prefix={prefix}&limit={limit}");
    loop {
        let (status, page) = get_json(addr, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let kvs = page["kvs"].as_array().unwrap();
        assert!(kvs.len() <= limit);
        for kv in kvs {
            let key = kv["key"].as_str().unwrap().to_string();
            assert_eq!(kv["value"].as_str().unwrap(), format!("v-{key}"), "{kv}");
            keys.push(key);
        }
        match page["next"].as_str() {
            None => return keys,
            Some(next) => {
                assert!(next.starts_with(prefix), "{next}");
                path = format!("/v1/kv?start={next}&end={}&limit={limit}", prefix_end(prefix));
            }
        }
    }
}

/// The first key after every key starting with `prefix` (ASCII prefixes only).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    *bytes.last_mut().unwrap() += 1;
    String::from_utf8(bytes).unwrap()
}

async fn put(addr: SocketAddr, key: &str) {
    let a = http(addr, "PUT", &format!("/v1/kv/{key}"), format!("v-{key}").as_bytes(), T).await.unwrap();
    assert_eq!(a.status, 200, "PUT {key}: {}", a.text());
}

fn sorted(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_gather_every_shard_and_resp_answers_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let users: Vec<String> = (0..120).map(|i| format!("user:{i:03}")).collect();
    for (i, key) in users.iter().enumerate() {
        put(c.http[i % 3], key).await;
    }
    // Keys of one slot, through a hash tag, and keys outside the prefix.
    let tagged: Vec<String> = (0..5).map(|i| format!("{{tag}}:{i}")).collect();
    for key in &tagged {
        put(c.http[1], key).await;
    }
    put(c.http[2], "other").await;
    let shards_hit: BTreeSet<u32> = users
        .iter()
        .filter_map(|k| c.handle(0).status().map.owner(key_slot(k.as_bytes())).map(|s| s.0))
        .collect();
    assert_eq!(shards_hit.len(), SHARDS as usize, "the keys spread over every shard");

    // HTTP: every node answers with every shard's keys, in key order, in one page or many.
    for i in 0..3 {
        assert_eq!(list(c.http[i], "user:", 1000).await, users, "node {}", i + 1);
    }
    assert_eq!(list(c.http[0], "user:", 7).await, users);
    let (status, page) = get_json(c.http[1], "/v1/kv?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["kvs"].as_array().unwrap().len(), users.len() + tagged.len() + 1);
    let (status, page) = get_json(c.http[1], "/v1/kv?prefix=user:&limit=0").await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = get_json(c.http[1], "/v1/kv?prefix=user:&limit=100000").await;
    assert_eq!(status, 400, "{page}");

    // RESP, per node: KEYS of all nodes together are every key once.
    let mut all_keys = Vec::new();
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut r = Resp::connect(c.redis[i]).await.unwrap();
        let keys = r.request(&["KEYS", "*"]).await.unwrap().texts().unwrap();
        let led = concord_server::sharded::served_here(&c.handle(i).status(), false);
        for key in &keys {
            let owner = c.handle(i).status().map.owner(key_slot(key.as_bytes())).unwrap();
            assert!(led.contains(&owner), "node {} listed {key} of shard {owner:?}, not led there", i + 1);
        }
        assert_eq!(r.call(&["DBSIZE"]).await.unwrap(), keys.len().to_string());
        let matching = r.request(&["KEYS", "user:*"]).await.unwrap().texts().unwrap();
        assert!(matching.iter().all(|k| k.starts_with("user:")) && matching.len() < keys.len() + 1);
        all_keys.extend(keys);
        conns.push(r);
    }
    let mut expected: Vec<String> = users.iter().chain(&tagged).cloned().collect();
    expected.push("other".into());
    assert_eq!(sorted(all_keys.clone()), sorted(expected.clone()), "KEYS over every node: each key once");

    // SCAN walks a node's keys exactly once, a few at a time.
    for (i, r) in conns.iter_mut().enumerate() {
        let keys = sorted(r.request(&["KEYS", "*"]).await.unwrap().texts().unwrap());
        let mut scanned = Vec::new();
        let mut cursor = "0".to_string();
        for round in 0.. {
            assert!(round < 1000, "SCAN did not end");
            let Reply::Array(reply) = r.request(&["SCAN", &cursor, "COUNT", "4"]).await.unwrap() else {
                panic!("SCAN answered a scalar")
            };
            let Reply::Text(next) = &reply[0] else { panic!("{reply:?}") };
            let page = reply[1].texts().unwrap();
            assert!(page.len() <= 4);
            scanned.extend(page);
            cursor = next.clone();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(scanned.len(), keys.len(), "node {}: no key twice", i + 1);
        assert_eq!(sorted(scanned), keys, "node {}", i + 1);
    }

    // CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT: the slot's keys on the node leading its shard, 0
    // elsewhere.
    let slot = key_slot(b"{tag}").get().to_string();
    let mut counts = Vec::new();
    for r in &mut conns {
        counts.push(r.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await.unwrap());
        let keys = r.request(&["CLUSTER", "GETKEYSINSLOT", &slot, "100"]).await.unwrap().texts().unwrap();
        let n = counts.last().unwrap().parse::<usize>().unwrap();
        assert_eq!(keys.len(), n);
        if n > 0 {
            assert_eq!(keys, tagged);
            let two = r.request(&["CLUSTER", "GETKEYSINSLOT", &slot, "2"]).await.unwrap().texts().unwrap();
            assert_eq!(two, tagged[..2]);
        }
    }
    assert_eq!(sorted(counts), vec!["0", "0", "5"], "one node leads the slot's shard");
    assert_eq!(conns[0].call(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await.unwrap(), "-ERR Invalid slot");
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_connections_read_from_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    // A node replicating a shard it does not lead, and a key of that shard.
    let (node, shard) = (0..3)
        .find_map(|i| {
            let s = c.handle(i).status();
            s.groups.iter().find(|g| g.group != 0 && g.leader != Some(s.id)).map(|g| (i, g.group))
        })
        .expect("with 3 shards of 2 replicas on 3 nodes, some node follows some shard");
    let status = c.handle(node).status();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| status.map.owner(key_slot(k.as_bytes())) == Some(ShardId(shard)))
        .unwrap();
    put(c.http[node], &key).await;
    // A key of the shard this node holds no replica of.
    let hosted: BTreeSet<u32> = status.groups.iter().map(|g| g.group).collect();
    let elsewhere = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| !hosted.contains(&status.map.owner(key_slot(k.as_bytes())).unwrap().0))
        .unwrap();
    put(c.http[node], &elsewhere).await;

    let mut r = Resp::connect(c.redis[node]).await.unwrap();
    let moved = r.call(&["GET", &key]).await.unwrap();
    assert!(moved.starts_with("-MOVED "), "{moved}");
    assert_eq!(r.call(&["READONLY"]).await.unwrap(), "OK");
    // The follower has applied the write by now or shortly: a stale read, never a redirect.
    let deadline = Instant::now() + T;
    loop {
        let got = r.call(&["GET", &key]).await.unwrap();
        assert!(!got.starts_with('-'), "a READONLY read of a replicated shard: {got}");
        if got == format!("v-{key}") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up: {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Writes still go to the leader; a key of a shard not replicated here is not read here
    // (redirected to its leader, or – while this node does not know it – forwarded there).
    assert!(r.call(&["SET", &key, "x"]).await.unwrap().starts_with("-MOVED "));
    let got = r.call(&["GET", &elsewhere]).await.unwrap();
    assert!(got.starts_with("-MOVED ") || got == format!("v-{elsewhere}"), "{got}");
    // READONLY's per-node commands answer for the replicated shards too.
    let slot = key_slot(key.as_bytes()).get().to_string();
    assert_eq!(r.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await.unwrap(), "1");
    assert!(r.request(&["KEYS", "*"]).await.unwrap().texts().unwrap().contains(&key));
    assert_eq!(r.call(&["READWRITE"]).await.unwrap(), "OK");
    assert!(r.call(&["GET", &key]).await.unwrap().starts_with("-MOVED "));
    assert_eq!(r.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await.unwrap(), "0");
    assert!(!r.request(&["KEYS", "*"]).await.unwrap().texts().unwrap().contains(&key));
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }
}

/// A prefix read while a slot range holding many of its keys moves between shards: every read
/// that answers lists every key exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_reads_see_every_key_once_while_slots_move() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let keys: Vec<String> = (0..200).map(|i| format!("m:{i:03}")).collect();
    for (i, key) in keys.iter().enumerate() {
        put(c.http[i % 3], key).await;
    }
    // The slots of shard 1 holding its first half of keys move to shard 2.
    let map = c.handle(0).status().map;
    let (run, _) = map.ranges.iter().find(|(_, owner)| *owner == ShardId(1)).copied().unwrap();
    let end = Slot::new(i64::from(run.start.get() + (run.len() as u16) / 2)).unwrap();
    let moving = SlotRange::new(run.start, end).unwrap();
    let moved_keys = keys.iter().filter(|k| moving.contains(key_slot(k.as_bytes()))).count();
    assert!(moved_keys > 10, "{moved_keys} keys in the moving range");
    let proposal = Proposal { if_epoch: None, change: Change::StartMove { range: moving, to: ShardId(2) } };
    c.handle(1).change_map(proposal).await.unwrap();

    let mut reads = 0;
    let mut outcomes: BTreeMap<u16, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = (0..3).all(|i| {
            let s = c.handle(i).status();
            s.map.moves.is_empty() && s.map.settling == 0 && s.map.owner(moving.start) == Some(ShardId(2))
        });
        let (status, page) = get_json(c.http[reads % 3], "/v1/kv?prefix=m:&limit=1000").await;
        *outcomes.entry(status).or_default() += 1;
        if status == 200 {
            let listed: Vec<String> =
                page["kvs"].as_array().unwrap().iter().map(|kv| kv["key"].as_str().unwrap().into()).collect();
            assert_eq!(listed, keys, "read {reads} during the move");
        } else {
            assert_eq!(status, 503, "{page}");
        }
        reads += 1;
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the move did not finish: {:?}", c.handle(0).status().map);
    }
    eprintln!("prefix reads during the move, by status: {outcomes:?}");
    assert!(outcomes.get(&200).copied().unwrap_or(0) >= 2, "{outcomes:?}");
    assert_eq!(list(c.http[2], "m:", 9).await, keys);
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let a = http(addr, method, path, body.as_bytes(), T).await.unwrap();
    (a.status, a.json().unwrap_or(Value::Null))
}

async fn post_json(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let a = concord_server::client::http_with_headers(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
        T,
    )
    .await
    .unwrap();
    (a.status, a.json().unwrap_or(Value::Null))
}

async fn value_of(addr: SocketAddr, key: &str) -> Option<String> {
    let path = format!("/v1/kv/{}", concord_server::client::path_segment(key));
    let a = http(addr, "GET", &path, b"", T).await.unwrap();
    match a.status {
        200 => Some(a.text()),
        404 => None,
        s => panic!("GET {key}: {s} {}", a.text()),
    }
}

/// The first key `{prefix}N` whose shard `pick` accepts.
fn key_where(c: &Cluster, prefix: &str, pick: impl Fn(ShardId, Slot) -> bool) -> String {
    let map = c.handle(0).status().map;
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| {
            let slot = key_slot(k.as_bytes());
            pick(map.owner(slot).unwrap(), slot)
        })
        .unwrap()
}

/// CAS on keys of every shard through every node, and transactions: one shard's commit atomically
/// (one hash tag, or keys of two slots that happen to share a shard), keys of two shards refused
/// with `CROSSSLOT` naming the slots and shards, and nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_and_transactions_run_in_the_keys_shard() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    for shard in 1..=SHARDS {
        let key = key_where(&c, "cas-", |s, _| s == ShardId(shard));
        for node in 0..3 {
            let path = format!("/v1/kv/{key}/cas");
            let expect =
                if node == 0 { json!({"absent": true}) } else { json!({"value": format!("v{node}")}) };
            let (status, body) =
                post_json(c.http[node], &path, json!({"expect": expect, "value": format!("v{}", node + 1)}))
                    .await;
            assert_eq!(
                (status, &body["succeeded"]),
                (200, &json!(true)),
                "{key} via node {}: {body}",
                node + 1
            );
            assert_eq!(body["current"]["value"], format!("v{}", node + 1));
            // The same expectation again fails, and says what the key holds.
            let (status, body) =
                post_json(c.http[node], &path, json!({"expect": expect, "value": "never"})).await;
            assert_eq!((status, &body["succeeded"]), (200, &json!(false)), "{body}");
            assert_eq!(body["current"]["value"], format!("v{}", node + 1), "{body}");
            assert_eq!(body["current"]["version"], node + 1, "{body}");
        }
        assert_eq!(value_of(c.http[2], &key).await.as_deref(), Some("v3"));
    }
    let (status, body) =
        post_json(c.http[0], "/v1/kv/x/cas", json!({"expect": {"absent": false}, "value": "v"})).await;
    assert_eq!(status, 400, "{body}");

    // One hash tag: one slot, one shard, one atomic transaction.
    let txn = |a: &str, b: &str| {
        json!({
            "compares": [{"key": a, "op": "equal", "target": {"absent": true}}],
            "success": [{"put": {"key": a, "value": "1"}}, {"put": {"key": b, "value": "2"}}],
            "failure": [{"get": {"key": a}}],
        })
    };
    let (status, body) = post_json(c.http[1], "/v1/txn", txn("{acct}:a", "{acct}:b")).await;
    assert_eq!((status, &body["succeeded"]), (200, &json!(true)), "{body}");
    assert_eq!(value_of(c.http[2], "{acct}:b").await.as_deref(), Some("2"));
    let (status, body) = post_json(c.http[2], "/v1/txn", txn("{acct}:a", "{acct}:b")).await;
    assert_eq!((status, &body["succeeded"]), (200, &json!(false)), "{body}");
    assert_eq!(body["responses"][0]["get"]["value"], "1", "{body}");

    // Two slots of one shard: served together too.
    let a = key_where(&c, "same-", |s, _| s == ShardId(2));
    let slot_a = key_slot(a.as_bytes());
    let b = key_where(&c, "same-", |s, slot| s == ShardId(2) && slot != slot_a);
    let (status, body) = post_json(c.http[0], "/v1/txn", txn(&a, &b)).await;
    assert_eq!((status, &body["succeeded"]), (200, &json!(true)), "{body}");
    assert_eq!(value_of(c.http[0], &b).await.as_deref(), Some("2"));

    // Keys of two shards: refused, with the slots and shards named; nothing written.
    let x = key_where(&c, "cross-", |s, _| s == ShardId(1));
    let y = key_where(&c, "cross-", |s, _| s == ShardId(3));
    let (status, body) = post_json(c.http[1], "/v1/txn", txn(&x, &y)).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with("CROSSSLOT") && message.contains("2 shards"), "{message}");
    assert!(message.contains(&format!("slot {} on shard 1", key_slot(x.as_bytes()).get())), "{message}");
    assert_eq!(body["shards"], json!([1, 3]), "{body}");
    assert_eq!(body["slots"][key_slot(y.as_bytes()).get().to_string()], 3, "{body}");
    assert_eq!((value_of(c.http[0], &x).await, value_of(c.http[0], &y).await), (None, None));
    // A key of another shard in the failure branch only counts too; a transaction of no key is refused.
    let only_failure =
        json!({"success": [{"put": {"key": x, "value": "1"}}], "failure": [{"delete": {"key": y}}]});
    assert_eq!(post_json(c.http[0], "/v1/txn", only_failure).await.0, 400);
    assert_eq!(post_json(c.http[0], "/v1/txn", json!({})).await.0, 400);
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }
}

/// `DELETE /v1/kv?prefix=` deletes the range's keys in every shard and counts them all, leaves the
/// others, refuses a request naming no range – and, while a slot range holding many of its keys
/// moves between shards, still deletes every key (a slot is deleted where it is served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_deletes_reach_every_shard_and_count_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let keys: Vec<String> = (0..90).map(|i| format!("d:{i:03}")).collect();
    for (i, key) in keys.iter().enumerate() {
        put(c.http[i % 3], key).await;
    }
    put(c.http[0], "e:stays").await;
    put(c.http[0], "d").await; // before the prefix's first key: outside [d:, d;)
    let shards: BTreeSet<ShardId> =
        keys.iter().map(|k| c.handle(0).status().map.owner(key_slot(k.as_bytes())).unwrap()).collect();
    assert_eq!(shards.len(), SHARDS as usize);

    assert_eq!(call(c.http[1], "DELETE", "/v1/kv", "").await.0, 400, "no range: nothing deleted by accident");
    assert_eq!(call(c.http[1], "DELETE", "/v1/kv?prefix=d:&limit=3", "").await.0, 400);
    let (status, body) = call(c.http[1], "DELETE", "/v1/kv?start=d:050&end=d:060", "").await;
    assert_eq!((status, body["deleted"].as_u64()), (200, Some(10)), "{body}");
    let (status, body) = call(c.http[2], "DELETE", "/v1/kv?prefix=d:", "").await;
    assert_eq!((status, body["deleted"].as_u64()), (200, Some(80)), "{body}");
    assert!(list(c.http[0], "d:", 100).await.is_empty());
    let (status, body) = call(c.http[0], "DELETE", "/v1/kv?prefix=d:", "").await;
    assert_eq!((status, body["deleted"].as_u64()), (200, Some(0)), "{body}");
    assert_eq!(value_of(c.http[0], "e:stays").await.as_deref(), Some("v-e:stays"));
    assert_eq!(value_of(c.http[0], "d").await.as_deref(), Some("v-d"));

    // During a move of half of shard 1's slots to shard 2.
    let keys: Vec<String> = (0..200).map(|i| format!("m:{i:03}")).collect();
    for (i, key) in keys.iter().enumerate() {
        put(c.http[i % 3], key).await;
    }
    let map = c.handle(0).status().map;
    let (run, _) = map.ranges.iter().find(|(_, owner)| *owner == ShardId(1)).copied().unwrap();
    let end = Slot::new(i64::from(run.start.get() + (run.len() as u16) / 2)).unwrap();
    let moving = SlotRange::new(run.start, end).unwrap();
    assert!(keys.iter().filter(|k| moving.contains(key_slot(k.as_bytes()))).count() > 10);
    let proposal = Proposal { if_epoch: None, change: Change::StartMove { range: moving, to: ShardId(2) } };
    c.handle(1).change_map(proposal).await.unwrap();
    let mut deleted = 0;
    let mut tries = 0;
    loop {
        let (status, body) = call(c.http[tries % 3], "DELETE", "/v1/kv?prefix=m:", "").await;
        deleted += body["deleted"].as_u64().unwrap_or_else(|| panic!("{status} {body}"));
        tries += 1;
        match status {
            200 => break,
            503 => assert!(tries < 10, "{body}"),
            _ => panic!("{status} {body}"),
        }
    }
    assert_eq!(deleted, 200, "every key deleted once, counted once ({tries} requests)");
    assert!(list(c.http[1], "m:", 100).await.is_empty());
    // After the move, the moved slots' keys are deleted at their new shard.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.handle(0).status().map.moves.is_empty() {
        assert!(Instant::now() < deadline, "the move did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(list(c.http[2], "m:", 100).await.is_empty());
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }
}

/// `concord backup` of a sharded cluster (`backup::take`, what the command runs) holds every key of
/// every shard – keys with `?`, `/`, `#`, `%`, spaces and hash tags included – and `concord
/// restore` writes them into a fresh sharded cluster key for key; a second restore is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_sharded_cluster_restores_into_a_new_one() {
    use concord_server::backup;
    use concord_server::membership::MemberTarget;
    let dir = tempfile::tempdir().unwrap();
    let c = start(&dir.path().join("a")).await;
    let mut keys: Vec<String> = (0..150).map(|i| format!("b:{i:03}")).collect();
    keys.extend(["odd/key? #%", "{tag}a?b", "{tag}c#d", "100%", "a/b/c", "sp ace"].map(String::from));
    for (i, key) in keys.iter().enumerate() {
        let path = format!("/v1/kv/{}", concord_server::client::path_segment(key));
        let a = http(c.http[i % 3], "PUT", &path, format!("v-{key}").as_bytes(), T).await.unwrap();
        assert_eq!(a.status, 200, "PUT {key}: {}", a.text());
    }
    let target = |addr| MemberTarget {
        http: addr,
        secret_file: None,
        secret: Some(concord_server::testkit::TEST_SECRET.into()),
        tls_ca: None,
    };
    // Without a credential the route is closed, as in the strong mode.
    assert_eq!(http(c.http[0], "GET", "/v1/backup", b"", T).await.unwrap().status, 401);
    let file = dir.path().join("backup.jsonl");
    let taken = backup::take(&target(c.http[1]), &file).await.unwrap();
    assert_eq!(taken, (keys.len(), backup::PER_SHARD_PAGE.to_string()));
    let decoded = backup::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(decoded.header["read"], backup::PER_SHARD_PAGE);
    let mut want: Vec<(String, Vec<u8>)> =
        keys.iter().map(|k| (k.clone(), format!("v-{k}").into_bytes())).collect();
    want.sort();
    assert_eq!(decoded.entries, want, "every key once, in key order, with its value");
    for node in c.nodes {
        node.shutdown().await.unwrap();
    }

    let fresh = start(&dir.path().join("b")).await;
    assert_eq!(backup::restore(&target(fresh.http[2]), &file).await.unwrap(), keys.len());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(value_of(fresh.http[i % 3], key).await, Some(format!("v-{key}")), "{key}");
    }
    let again = backup::restore(&target(fresh.http[0]), &file).await.unwrap_err();
    assert!(again.to_string().contains("already holds keys"), "{again:#}");
    for node in fresh.nodes {
        node.shutdown().await.unwrap();
    }
}

//! The eventual mode's front doors, on real nodes in one process (loopback sockets, real WALs):
//!
//! * any node serves any request: a write on one node is read on the others, over RESP and HTTP;
//!   counters, `DEL` counting, and what the mode refuses (TTLs, ranges) with a clear reason;
//! * concurrent writes become **siblings**: HTTP answers `300` with both and their context, RESP
//!   answers `-CONFLICT`; a write that names the context replaces them;
//! * per-connection quorums matter: with one replica down, `CONSISTENCY ALL` cannot write while
//!   `CONSISTENCY ONE` can.
//!
//! Killing processes and catching up (hinted handoff, anti-entropy) is tested on real processes in
//! `crates/concord/tests/eventual_cluster.rs`.

use concord_server::testkit::{http, http_with_headers, loopback_configs, HttpAnswer, Resp, TEST_SECRET};
use concord_server::{Mode, Node};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

struct Cluster {
    nodes: Vec<Option<Node>>,
    http: Vec<SocketAddr>,
    redis: Vec<SocketAddr>,
}

async fn start(dir: &Path, n: usize) -> Cluster {
    let configs = loopback_configs(dir, n);
    let http = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let redis = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for mut c in configs {
        c.mode = Mode::Eventual;
        nodes.push(Some(Node::start(c).await.unwrap()));
    }
    let c = Cluster { nodes, http, redis };
    c.until("every node sees every other alive", |v| alive(v) == n).await;
    c
}

/// Members a node's SWIM believes alive, itself included.
fn alive(view: &serde_json::Value) -> usize {
    view["members"].as_array().unwrap().iter().filter(|m| m["state_as_seen_here"] == "alive").count()
}

impl Cluster {
    /// Wait until `done` holds for the cluster view of every running node.
    async fn until(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + T;
        'retry: loop {
            assert!(Instant::now() < deadline, "{what}: not within {T:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            for (i, node) in self.nodes.iter().enumerate() {
                if node.is_some() {
                    let Ok(answer) = get(self.http[i], "/v1/cluster").await else { continue 'retry };
                    if !done(&answer.json().unwrap()) {
                        continue 'retry;
                    }
                }
            }
            return;
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> Result<HttpAnswer, String> {
    http(addr, "GET", path, b"", T).await
}

async fn put(addr: SocketAddr, path: &str, body: &str) -> HttpAnswer {
    http(addr, "PUT", path, body.as_bytes(), T).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let mut r1 = Resp::connect(c.redis[0]).await.unwrap();
    let mut r2 = Resp::connect(c.redis[1]).await.unwrap();
    let mut r3 = Resp::connect(c.redis[2]).await.unwrap();

    assert_eq!(r1.call(&["SET", "greeting", "hello"]).await.unwrap(), "OK");
    assert_eq!(r2.call(&["GET", "greeting"]).await.unwrap(), "hello");
    assert_eq!(get(c.http[2], "/v1/kv/greeting").await.unwrap().text(), "hello");
    assert_eq!(r3.call(&["GET", "nobody"]).await.unwrap(), "(nil)");

    // A PN-counter: each increment is coordinated by one of the key's home replicas.
    assert_eq!(r1.call(&["INCR", "visits"]).await.unwrap(), "1");
    assert_eq!(r2.call(&["INCRBY", "visits", "10"]).await.unwrap(), "11");
    assert_eq!(r3.call(&["DECR", "visits"]).await.unwrap(), "10");
    assert_eq!(r1.call(&["GET", "visits"]).await.unwrap(), "10");
    let reply = r1.call(&["INCR", "greeting"]).await.unwrap();
    assert!(reply.contains("holds a register, not a counter"), "{reply}");

    // DEL reads first, so it counts; the key is then gone everywhere a quorum looks.
    assert_eq!(r3.call(&["DEL", "greeting", "nobody"]).await.unwrap(), "1");
    assert_eq!(r1.call(&["GET", "greeting"]).await.unwrap(), "(nil)");
    assert_eq!(get(c.http[1], "/v1/kv/greeting").await.unwrap().status, 404);

    // Pipelined on one connection, in order: the last write wins.
    assert_eq!(r2.call(&["MSET", "a", "1", "b", "2"]).await.unwrap(), "OK");
    assert_eq!(r2.call(&["SET", "a", "3"]).await.unwrap(), "OK");
    assert_eq!(r1.call(&["GET", "a"]).await.unwrap(), "3");

    // What a Dynamo store cannot do is refused with the reason, not half-done.
    for (args, needle) in [
        (&["SET", "t", "v", "EX", "10"][..], "a TTL"),
        (&["KEYS", "*"][..], "listing keys"),
        (&["SET", "t", "v", "NX"][..], "needs the strong mode"),
    ] {
        let reply = r1.call(args).await.unwrap();
        assert!(reply.starts_with("-ERR") && reply.contains(needle), "{args:?}: {reply}");
    }

    // The connection's quorums, and their bounds.
    assert_eq!(r1.call(&["CONSISTENCY"]).await.unwrap(), "r=2 w=2 n=3");
    assert_eq!(r1.call(&["CONSISTENCY", "R", "1", "W", "3"]).await.unwrap(), "OK");
    assert_eq!(r1.call(&["CONSISTENCY"]).await.unwrap(), "r=1 w=3 n=3");
    assert!(r1.call(&["CONSISTENCY", "R", "4"]).await.unwrap().starts_with("-ERR"));
    assert!(r1.call(&["CONSISTENCY", "linearizable"]).await.unwrap().contains("eventual mode"));
    assert_eq!(put(c.http[0], "/v1/kv/q?w=4", "x").await.status, 400);

    // INFO says which mode runs.
    let info = r2.call(&["INFO"]).await.unwrap();
    assert!(info.contains("# Dynamo") && info.contains("dynamo_n:3"), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_become_siblings_until_a_write_names_their_context() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    // Two writes that both claim to have seen nothing (the empty context): neither replaces the
    // other, whichever replica coordinates them.
    assert_eq!(put(c.http[0], "/v1/kv/cart?context=", "milk").await.status, 200);
    assert_eq!(put(c.http[1], "/v1/kv/cart?context=", "eggs").await.status, 200);

    let answer = get(c.http[2], "/v1/kv/cart").await.unwrap();
    assert_eq!(answer.status, 300, "{}", answer.text());
    let body = answer.json().unwrap();
    let mut siblings: Vec<&str> =
        body["siblings"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    siblings.sort();
    assert_eq!(siblings, ["eggs", "milk"]);
    let context = body["context"].as_str().unwrap().to_string();
    assert!(!context.is_empty());

    let mut resp = Resp::connect(c.redis[0]).await.unwrap();
    let reply = resp.call(&["GET", "cart"]).await.unwrap();
    assert!(reply.starts_with("-CONFLICT") && reply.contains("2 concurrent values"), "{reply}");

    // The client merges and writes back with the context it read: one value again.
    let path = format!("/v1/kv/cart?context={context}");
    assert_eq!(put(c.http[2], &path, "eggs,milk").await.status, 200);
    assert_eq!(resp.call(&["GET", "cart"]).await.unwrap(), "eggs,milk");
    let bad = put(c.http[0], "/v1/kv/cart?context=1:x", "y").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_quorums_decide_what_a_down_replica_costs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    c.until("node 3 is suspected", |v| alive(v) == 2).await;

    let mut all = Resp::connect(c.redis[0]).await.unwrap();
    let mut one = Resp::connect(c.redis[0]).await.unwrap();
    assert_eq!(all.call(&["CONSISTENCY", "ALL"]).await.unwrap(), "OK");
    assert_eq!(one.call(&["CONSISTENCY", "ONE"]).await.unwrap(), "OK");

    // W = 3 cannot be met with two replicas up: no "OK" (the two live copies may keep the value,
    // which is why the answer is "unknown", not "failed").
    let reply = all.call(&["SET", "k", "all"]).await.unwrap();
    assert!(reply.starts_with("-UNKNOWN") || reply.starts_with("-TIMEOUT"), "{reply}");
    assert_eq!(one.call(&["SET", "k", "one"]).await.unwrap(), "OK");
    assert_eq!(one.call(&["GET", "k"]).await.unwrap(), "one");
    let reply = all.call(&["GET", "k"]).await.unwrap();
    assert!(reply.starts_with('-'), "R = 3 with a replica down must not answer: {reply}");
    // The default, QUORUM (R = W = 2), works with one replica down.
    let mut quorum = Resp::connect(c.redis[1]).await.unwrap();
    assert_eq!(quorum.call(&["SET", "k", "two"]).await.unwrap(), "OK");
    assert_eq!(quorum.call(&["GET", "k"]).await.unwrap(), "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_error_says_why_in_json() {
    // Issue #20: CAS and /v1/txn answered a bare 404 in the eventual mode, `?ttl_ms=` a text/plain
    // deserialisation message; every error is now the documented {"error": …}.
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let cases: [(&str, &str, u16, &str); 7] = [
        ("POST", "/v1/kv/k/cas", 501, "needs the strong mode"),
        ("POST", "/v1/members", 501, "needs the strong mode"),
        ("POST", "/v1/txn", 501, "needs the strong mode"),
        ("GET", "/v1/kv?prefix=a", 501, "needs the strong mode"),
        ("PUT", "/v1/kv/k?ttl_ms=5", 400, "ttl_ms"),
        ("GET", "/v1/no/such/thing", 404, "no route GET /v1/no/such/thing"),
        ("PATCH", "/v1/kv/k", 405, "does not take that method"),
    ];
    for (method, path, status, says) in cases {
        // With a credential, so that the admin route's answer is about the mode (issue #23).
        let proof = concord_server::auth::proof(TEST_SECRET.as_bytes(), method, path, b"x");
        let headers = [("authorization", proof.as_str())];
        let a = http_with_headers(c.http[0], method, path, &headers, b"x", T).await.unwrap();
        assert_eq!(a.status, status, "{method} {path}: {}", a.text());
        assert_eq!(a.header("content-type"), Some("application/json"), "{method} {path}");
        let error = a.json().unwrap()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(says), "{method} {path}: {error}");
    }
    // EXPIRE names the TTL as what the eventual mode lacks.
    let mut r = Resp::connect(c.redis[0]).await.unwrap();
    assert_eq!(r.call(&["SET", "k", "v"]).await.unwrap(), "OK");
    let reply = r.call(&["EXPIRE", "k", "10"]).await.unwrap();
    assert!(reply.contains("a TTL (SET … EX/PX, EXPIRE) needs the strong mode"), "{reply}");
}

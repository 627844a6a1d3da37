//! The eventual mode's front doors, on real nodes in one process (loopback sockets, real WALs):
//!
//! * any node serves any request: a write on one node is read on the others, over RESP and HTTP;
//!   counters, `DEL` counting, and what the mode refuses (TTLs, ranges) with a clear reason;
//! * concurrent writes become **siblings**: HTTP answers `300` with both and their context, RESP
//!   answers `-CONFLICT`; a write that names the context replaces them;
//! * per-connection quorums matter: with one replica down, `CONSISTENCY ALL` cannot write while
//!   `CONSISTENCY ONE` can;
//! * sets and hashes are CRDTs: adds acknowledged by one replica each (W = 1) on two nodes at once
//!   both survive; hashes through RESP and redis-py; the other data types refused with the reason.
//!
//! Killing processes and catching up (hinted handoff, anti-entropy) is tested on real processes in
//! `crates/concord/tests/eventual_cluster.rs`.

use concord_kv::redis::{RedisCall, RedisExec, Reply};
use concord_kv::Query;
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
    assert!(reply.starts_with("-ERR unsupported operation: INCR of a key SET wrote: "), "{reply}");

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
        (&["SET", "t", "v", "NX"][..], "use the strong mode"),
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
    assert!(reply.starts_with("-ERR EXPIRE is not available in the eventual mode: a TTL"), "{reply}");
    assert!(reply.ends_with("; use the strong mode"), "{reply}");
}

fn call(argv: &[&str]) -> RedisCall {
    RedisCall::new(argv.iter().map(|a| a.as_bytes().to_vec()).collect())
}

fn redis_write(argv: &[&str]) -> concord_kv::Command {
    let exec = RedisExec { keys: vec![argv[1].as_bytes().to_vec()], watch: vec![], calls: vec![call(argv)] };
    concord_kv::Command::new(concord_core::Time::ZERO, concord_kv::Write::Redis(exec))
}

fn replies(answer: Result<concord_kv::Response, concord_resp::BackendError>) -> Vec<Reply> {
    match answer {
        Ok(concord_kv::Response::Redis { replies: Some(replies), .. }) => replies,
        other => panic!("not a Redis answer: {other:?}"),
    }
}

fn bulks(items: &[&str]) -> Vec<Reply> {
    items.iter().map(|i| Reply::Bulk(i.as_bytes().to_vec())).collect()
}

/// Sets through the backend the RESP front door calls (`Write::Redis`, `Query::Redis`); hashes
/// through RESP itself, and redis-py.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_and_hashes_keep_every_concurrent_add() {
    use concord_resp::{Backend, RequestConsistency};
    use concord_server::eventual::resp::EventualBackend;
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let backends: Vec<EventualBackend> =
        c.nodes.iter().map(|n| EventualBackend::new(n.as_ref().unwrap().eventual().unwrap())).collect();
    let with = |r, w| RequestConsistency {
        read: concord_raft::ReadConsistency::Linearizable,
        r: Some(r),
        w: Some(w),
    };

    // SADD on two nodes at once, each acknowledged by its own copy alone (W = 1): every node is a
    // home replica here, so each coordinates its own – two concurrent versions of the set.
    let (a, b) = tokio::join!(
        backends[0].write(redis_write(&["SADD", "team", "ann", "amy"]), with(1, 1)),
        backends[1].write(redis_write(&["sadd", "team", "bob"]), with(1, 1)),
    );
    assert_eq!(replies(a), vec![Reply::Int(2)]);
    assert_eq!(replies(b), vec![Reply::Int(1)]);
    // Both adds survive the merge: a read of all three replicas answers every member.
    let smembers = RedisExec::read(call(&["SMEMBERS", "team"]));
    let answer = replies(backends[2].read(Query::Redis(smembers.clone()), with(3, 1)).await);
    assert_eq!(answer, vec![Reply::Set(bulks(&["amy", "ann", "bob"]))]);
    // ... and read repair left every replica with them: each one alone (R = 1) says so.
    let deadline = Instant::now() + T;
    for b in &backends {
        loop {
            let one = replies(b.read(Query::Redis(smembers.clone()), with(1, 1)).await);
            if one == answer {
                break;
            }
            assert!(Instant::now() < deadline, "a replica still answers {one:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let srem = backends[0].write(redis_write(&["SREM", "team", "amy", "zed"]), with(2, 2)).await;
    assert_eq!(replies(srem), vec![Reply::Int(1)]);
    for (argv, reply) in [
        (&["SCARD", "team"][..], Reply::Int(2)),
        (&["SISMEMBER", "team", "bob"][..], Reply::Int(1)),
        (&["SMISMEMBER", "team", "amy", "ann"][..], Reply::Array(vec![Reply::Int(0), Reply::Int(1)])),
        (&["TYPE", "team"][..], Reply::Status("set".into())),
        (&["SCARD", "nobody"][..], Reply::Int(0)),
        (&["HGET", "team", "f"][..], Reply::wrong_type()),
    ] {
        let answer = backends[1].read(Query::Redis(RedisExec::read(call(argv))), with(2, 2)).await;
        assert_eq!(replies(answer), vec![reply], "{argv:?}");
    }
    // What the mode refuses, it refuses with the reason (and a transaction of several commands).
    let multi = RedisExec {
        keys: vec![b"team".to_vec()],
        watch: vec![],
        calls: vec![call(&["SADD", "team", "x"]), call(&["SADD", "team", "y"])],
    };
    let write = concord_kv::Command::new(concord_core::Time::ZERO, concord_kv::Write::Redis(multi));
    for (command, says) in [
        (
            redis_write(&["LPUSH", "l", "x"]),
            "LPUSH is not available in the eventual mode: lists need a total order",
        ),
        (redis_write(&["ZADD", "z", "1", "x"]), "ZADD is not available in the eventual mode: sorted sets"),
        (
            redis_write(&["HINCRBY", "h", "f", "1"]),
            "HINCRBY is not available in the eventual mode: a hash field",
        ),
        (redis_write(&["HSET", "team", "f", "v"]), "WRONGTYPE"),
        (write, "MULTI is not available in the eventual mode"),
    ] {
        let answer = replies(backends[0].write(command, with(2, 2)).await);
        match &answer[..] {
            [Reply::Error(e)] if e.starts_with("WRONGTYPE") || e.ends_with("; use the strong mode") => {
                assert!(e.contains(says), "{e}")
            }
            other => panic!("{says}: {other:?}"),
        }
    }

    // Hashes through RESP: fields written on two nodes at once, both kept.
    let mut r1 = Resp::connect(c.redis[0]).await.unwrap();
    let mut r2 = Resp::connect(c.redis[1]).await.unwrap();
    assert_eq!(r1.call(&["CONSISTENCY", "W", "1"]).await.unwrap(), "OK");
    assert_eq!(r2.call(&["CONSISTENCY", "W", "1"]).await.unwrap(), "OK");
    let (a, b) = tokio::join!(
        r1.call(&["HSET", "user", "name", "ann", "age", "7"]),
        r2.call(&["HSET", "user", "city", "oslo"])
    );
    assert_eq!((a.unwrap(), b.unwrap()), ("2".to_string(), "1".to_string()));
    let mut all = Resp::connect(c.redis[2]).await.unwrap();
    assert_eq!(all.call(&["CONSISTENCY", "ALL"]).await.unwrap(), "OK");
    let fields = all.request(&["HGETALL", "user"]).await.unwrap();
    assert_eq!(fields.texts().unwrap(), ["age", "7", "city", "oslo", "name", "ann"]);
    assert_eq!(all.call(&["HDEL", "user", "age"]).await.unwrap(), "1");
    assert_eq!(all.call(&["HGET", "user", "age"]).await.unwrap(), "(nil)");
    assert_eq!(all.call(&["HLEN", "user"]).await.unwrap(), "2");
    assert!(all.call(&["GET", "user"]).await.unwrap().starts_with("-WRONGTYPE"));
    // A key keeps its kind (see `concord_server::eventual::resp`): INCR on a hash is WRONGTYPE as
    // in Redis; SET replacing it, or INCR of a value SET wrote, is refused with the reason (Redis
    // would do them).
    assert_eq!(
        all.call(&["INCR", "user"]).await.unwrap(),
        format!("-{}", concord_server::eventual::redis::WRONGTYPE)
    );
    let set = all.call(&["SET", "user", "v"]).await.unwrap();
    assert!(
        set.starts_with(
            "-ERR unsupported operation: SET of a key holding a hash: in the eventual mode a key keeps"
        ),
        "{set}"
    );
    assert_eq!(all.call(&["HLEN", "user"]).await.unwrap(), "2", "the refused SET changed nothing");
    assert_eq!(all.call(&["INCR", "hits"]).await.unwrap(), "1");
    let set = all.call(&["SET", "hits", "v"]).await.unwrap();
    assert!(set.starts_with("-ERR unsupported operation: SET of a key holding a counter (INCR): "), "{set}");
    assert_eq!(all.call(&["SET", "name", "5"]).await.unwrap(), "OK");
    let incr = all.call(&["INCR", "name"]).await.unwrap();
    assert!(incr.starts_with("-ERR unsupported operation: INCR of a key SET wrote: "), "{incr}");
    assert_eq!(all.call(&["DEL", "user"]).await.unwrap(), "1");
    assert_eq!(all.call(&["HLEN", "user"]).await.unwrap(), "0");
    // The documented difference: an emptied hash stays a hash (its causal context), where Redis
    // deletes the key.
    assert_eq!(all.call(&["TYPE", "user"]).await.unwrap(), "hash");

    // redis-py, through its own API.
    let python = std::process::Command::new("python3").args(["-c", "import redis"]).output();
    if !python.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "python3 with redis-py is needed (pip install redis)");
        eprintln!("SKIPPED: python3 with redis-py is not usable");
        return;
    }
    let script = format!(
        r#"
import redis
a = redis.Redis(host="{host}", port={pa}, socket_timeout=10)
b = redis.Redis(host="{host}", port={pb}, socket_timeout=10)
assert a.hset("profile", mapping={{"name": "ann", "lang": "rust"}}) == 2
assert b.hset("profile", "lang", "ocaml") == 0
assert a.hgetall("profile") == {{b"name": b"ann", b"lang": b"ocaml"}}, a.hgetall("profile")
assert b.hmget("profile", ["name", "nope"]) == [b"ann", None]
assert a.hexists("profile", "name") and not a.hexists("profile", "nope")
assert sorted(a.hkeys("profile")) == [b"lang", b"name"]
assert a.type("profile") == b"hash"
try:
    a.hincrby("profile", "visits", 1)
    raise SystemExit("HINCRBY was not refused")
except redis.ResponseError as e:
    assert "not available in the eventual mode" in str(e), e
print("ok")
"#,
        host = c.redis[0].ip(),
        pa = c.redis[0].port(),
        pb = c.redis[1].port()
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis-py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Backend::read` submits its quorum read before it returns, as `write` does (issue #14): the
/// front door may await a pipeline's answers one after the other, and a read sent only when first
/// polled would then wait for every read before it. So a read left unpolled while the node works
/// is already answered the first time it is polled. (A lazy read cannot be: its first poll only
/// sends the request, whose answer needs a round of messages between nodes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_submitted_when_the_backend_is_called() {
    use concord_kv::{KeyValue, Response};
    use concord_resp::{Backend, RequestConsistency};
    use concord_server::eventual::resp::EventualBackend;
    use futures::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let backend = EventualBackend::new(c.nodes[0].as_ref().unwrap().eventual().unwrap());
    let quorum =
        RequestConsistency { read: concord_raft::ReadConsistency::Linearizable, r: Some(2), w: Some(2) };
    let put = concord_kv::Command::put(concord_core::Time::ZERO, "k", "v");
    assert!(matches!(backend.write(put, quorum).await, Ok(Response::Put { .. })));
    let value = |r: &Option<KeyValue>| r.as_ref().map(|kv| kv.value.clone());

    // Retried with longer waits, so that a slow machine cannot fail it; a lazy read fails every try.
    for attempt in 1..=5 {
        let get = backend.read(Query::Get { key: b"k".to_vec() }, quorum);
        // At most the reads a `GetMany` keeps in flight at once (32): all of them start at the call.
        let keys = (0..30).map(|i| if i == 7 { b"k".to_vec() } else { format!("absent{i}").into_bytes() });
        let many = backend.read(Query::GetMany { keys: keys.collect() }, quorum);
        let smembers = backend.read(Query::Redis(RedisExec::read(call(&["SCARD", "k"]))), quorum);
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        let (Some(get), Some(many), Some(smembers)) =
            (get.now_or_never(), many.now_or_never(), smembers.now_or_never())
        else {
            continue;
        };
        match get {
            Ok(Response::Get(kv)) => assert_eq!(value(&kv), Some(b"v".to_vec())),
            other => panic!("GET: {other:?}"),
        }
        match many {
            Ok(Response::Values(values)) => {
                assert_eq!(values.len(), 30);
                let found: Vec<_> =
                    values.iter().enumerate().filter_map(|(i, v)| value(v).map(|v| (i, v))).collect();
                assert_eq!(found, vec![(7, b"v".to_vec())]);
            }
            other => panic!("MGET: {other:?}"),
        }
        assert_eq!(replies(smembers), vec![Reply::wrong_type()]);
        return;
    }
    panic!("reads left unpolled were never answered by their first poll: they are sent only when polled");
}

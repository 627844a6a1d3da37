//! A cache node in process, in front of a fake database (tests/fakedb): read-through, the
//! invalidation feed, write-through and write-around, leases, feed loss, forwarding, bad input.
//! The same behaviours against a real `concord up` cluster: crates/concord/tests/cache_tier.rs.

mod fakedb;

use bytes::Bytes;
use concord_cache_node::conn::{text, Conn};
use concord_cache_node::{start, Options, Running};
use concord_resp::Frame;
use fakedb::FakeDb;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn options(db: &FakeDb) -> Options {
    Options { port: 0, db: vec![db.addr], cluster_id: "c1".into(), ..Options::default() }
}

async fn client(node: &Running) -> Conn {
    Conn::connect(node.addr).await.unwrap()
}

async fn call(conn: &mut Conn, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.call1(&args).await.unwrap()
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

async fn info(conn: &mut Conn, field: &str) -> String {
    let all = text(&call(conn, &["INFO"]).await).unwrap();
    all.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{all}"))
}

async fn wait_for(conn: &mut Conn, field: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = info(conn, field).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{field} stayed {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serving(db: &FakeDb) -> (Running, Conn) {
    let node = start(options(db)).await.unwrap();
    let mut c = client(&node).await;
    wait_for(&mut c, "serving_from_cache", "yes").await;
    (node, c)
}

#[tokio::test]
async fn read_through_misses_once_then_hits_and_a_database_write_invalidates() {
    let db = FakeDb::start("c1").await;
    db.write(b"k", b"v1");
    let (_node, mut c) = serving(&db).await;
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("v1"));
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("v1"));
    assert_eq!(call(&mut c, &["GET", "absent"]).await, Frame::Null);
    assert_eq!(db.getrevs.load(Ordering::SeqCst), 2, "one read for k, one for the absent key");
    assert_eq!(info(&mut c, "hits").await, "1");
    assert_eq!(info(&mut c, "misses").await, "2");
    // Another client writes the database: the feed's invalidation removes the cached value.
    db.write(b"k", b"v2");
    let deadline = Instant::now() + Duration::from_secs(2);
    while call(&mut c, &["GET", "k"]).await != bulk("v2") {
        assert!(Instant::now() < deadline, "the write was never seen through the cache");
    }
    assert_eq!(info(&mut c, "invalidations").await, "1");
    // Pipelined hits and MGET.
    assert_eq!(
        c.call(&[&[b"GET", b"k"], &[b"PING"], &[b"GET", b"k"]]).await.unwrap(),
        vec![bulk("v2"), Frame::Simple("PONG".into()), bulk("v2")]
    );
    assert_eq!(call(&mut c, &["MGET", "k", "absent"]).await, Frame::Array(vec![bulk("v2"), Frame::Null]));
    assert_eq!(call(&mut c, &["EXISTS", "k", "absent"]).await, Frame::Integer(1));
}

#[tokio::test]
async fn concurrent_misses_of_one_key_share_one_database_read() {
    let db = FakeDb::start("c1").await;
    db.write(b"hot", b"x");
    db.read_delay_ms.store(200, Ordering::SeqCst);
    let (node, _c) = serving(&db).await;
    let node = Arc::new(node);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::connect(node.addr).await.unwrap();
            call(&mut c, &["GET", "hot"]).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), bulk("x"));
    }
    assert_eq!(db.getrevs.load(Ordering::SeqCst), 1, "single flight: one fill for 20 misses");
}

#[tokio::test]
async fn write_through_installs_and_write_around_drops() {
    let db = FakeDb::start("c1").await;
    let (_node, mut c) = serving(&db).await;
    assert_eq!(call(&mut c, &["SET", "a", "1"]).await, Frame::Simple("OK".into()));
    let reads = db.getrevs.load(Ordering::SeqCst); // the write-through's read-back
    assert_eq!(call(&mut c, &["GET", "a"]).await, bulk("1"));
    assert_eq!(db.getrevs.load(Ordering::SeqCst), reads, "the written value was installed: a hit");
    assert_eq!(info(&mut c, "hits").await, "1");
    // Write-around (per request): the key is dropped; the next GET misses, then hits. (The
    // write's invalidation is awaited first: one landing during the fill would void its lease.)
    let before: u64 = info(&mut c, "invalidations").await.parse().unwrap();
    assert_eq!(call(&mut c, &["SET", "a", "2", "AROUND"]).await, Frame::Simple("OK".into()));
    wait_for(&mut c, "invalidations", &(before + 1).to_string()).await;
    let reads = db.getrevs.load(Ordering::SeqCst);
    assert_eq!(call(&mut c, &["GET", "a"]).await, bulk("2"));
    assert_eq!(db.getrevs.load(Ordering::SeqCst), reads + 1, "a miss");
    assert_eq!(call(&mut c, &["GET", "a"]).await, bulk("2"));
    assert_eq!(db.getrevs.load(Ordering::SeqCst), reads + 1, "then a hit");
    assert_eq!(call(&mut c, &["DEL", "a", "nothing"]).await, Frame::Integer(1));
    assert_eq!(call(&mut c, &["GET", "a"]).await, Frame::Null);
}

#[tokio::test]
async fn a_lease_voided_by_an_invalidation_refuses_the_stale_set() {
    let db = FakeDb::start("c1").await;
    let v1 = db.write(b"user", b"ada");
    let (_node, mut c) = serving(&db).await;
    let Frame::Array(lease) = call(&mut c, &["LGET", "user"]).await else { panic!("no lease") };
    assert_eq!(lease[0], bulk("lease"));
    let Frame::Integer(token) = lease[1] else { panic!("{lease:?}") };
    // A second reader waits: the lease is taken.
    let Frame::Array(wait) = call(&mut c, &["LGET", "user"]).await else { panic!() };
    assert_eq!(wait[0], bulk("wait"));
    // The first reader read v1; meanwhile a write commits and its invalidation arrives first.
    db.write(b"user", b"ada lovelace");
    let deadline = Instant::now() + Duration::from_secs(2);
    while info(&mut c, "invalidations").await != "1" {
        assert!(Instant::now() < deadline);
    }
    let stale = call(&mut c, &["LSET", "user", &token.to_string(), &v1.to_string(), "ada"]).await;
    assert_eq!(stale, Frame::Simple("LEASE_INVALID".into()));
    // The next reader gets a new lease and fills with the new value.
    let Frame::Array(lease) = call(&mut c, &["LGET", "user"]).await else { panic!() };
    let Frame::Integer(token) = lease[1] else { panic!() };
    let set =
        call(&mut c, &["LSET", "user", &token.to_string(), &(v1 + 1).to_string(), "ada lovelace"]).await;
    assert_eq!(set, Frame::Simple("STORED".into()));
    assert_eq!(call(&mut c, &["LGET", "user"]).await, bulk("ada lovelace"));
    // An unleased set older than the invalidation this node saw is refused.
    assert_eq!(
        call(&mut c, &["LSET", "user", "0", &v1.to_string(), "ada"]).await,
        Frame::Simple("OLDER_THAN_INVALIDATION".into())
    );
}

#[tokio::test]
async fn a_lost_feed_stops_serving_from_memory_and_its_return_flushes() {
    let db = FakeDb::start("c1").await;
    db.write(b"k", b"v1");
    let (_node, mut c) = serving(&db).await;
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("v1"));
    let flushes: u64 = info(&mut c, "flushes").await.parse().unwrap();
    // The feed drops, and a write's invalidation is lost with it.
    db.refuse_feeds.store(true, Ordering::SeqCst);
    db.drop_feeds();
    db.write_silently(b"k", b"v2");
    wait_for(&mut c, "serving_from_cache", "no").await;
    // Not serving from memory: reads go to the database and see the write.
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("v2"));
    wait_for(&mut c, "db", "refused-tracking").await;
    // The feed comes back: a flush, then serving resumes; the value is read again.
    db.refuse_feeds.store(false, Ordering::SeqCst);
    wait_for(&mut c, "serving_from_cache", "yes").await;
    let after: u64 = info(&mut c, "flushes").await.parse().unwrap();
    assert!(after >= flushes + 2, "a flush when the feed went, one when it came back: {flushes} -> {after}");
    db.write_silently(b"k", b"v3"); // (no cached copy: nothing to go stale)
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("v3"));
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_node_keeps_working() {
    let db = FakeDb::start("c1").await;
    let node = start(Options { max_item_bytes: 1024, budget_bytes: 1 << 20, ..options(&db) }).await.unwrap();
    let mut c = client(&node).await;
    wait_for(&mut c, "serving_from_cache", "yes").await;
    let big = "x".repeat(2000);
    let Frame::Error(e) = call(&mut c, &["SET", "big", &big]).await else { panic!() };
    assert!(e.starts_with("ERR value of 2000 bytes is over the cache's item limit of 1024 bytes"), "{e}");
    let Frame::Error(e) = call(&mut c, &["FOO", "bar"]).await else { panic!() };
    assert_eq!(e, "ERR unknown command 'FOO', with args beginning with: 'bar' ");
    let Frame::Error(e) = call(&mut c, &["GET"]).await else { panic!() };
    assert_eq!(e, "ERR wrong number of arguments for 'get' command");
    assert_eq!(call(&mut c, &["PING"]).await, Frame::Simple("PONG".into()));
    // A budget below one item: refused at start, with the reason.
    let err =
        start(Options { budget_bytes: 1000, max_item_bytes: 4096, ..options(&db) }).await.err().unwrap();
    assert!(err.to_string().contains("below the item limit"), "{err}");
}

#[tokio::test]
async fn a_database_of_another_cluster_is_refused_and_none_is_unreachable() {
    let other = FakeDb::start("someone-else").await;
    other.write(b"k", b"theirs");
    let node = start(Options { cluster_id: "c1".into(), ..options(&other) }).await.unwrap();
    let mut c = client(&node).await;
    wait_for(&mut c, "db", "wrong-cluster").await;
    let Frame::Error(e) = call(&mut c, &["GET", "k"]).await else { panic!("served another cluster's value") };
    assert!(e.contains("belongs to cluster someone-else, not c1"), "{e}");
    assert_eq!(other.getrevs.load(Ordering::SeqCst), 0);

    // Nothing listens on the database's port: the node starts and says so.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let node = start(Options {
        db: vec![port],
        ..Options { port: 0, cluster_id: "c1".into(), ..Options::default() }
    })
    .await
    .unwrap();
    let mut c = client(&node).await;
    wait_for(&mut c, "db", "unreachable").await;
    let Frame::Error(e) = call(&mut c, &["GET", "k"]).await else { panic!() };
    assert!(e.starts_with("TRYAGAIN the database is unreachable"), "{e}");
}

#[tokio::test]
async fn keys_owned_by_another_node_are_forwarded_or_redirected() {
    let db = FakeDb::start("c1").await;
    // Two nodes on fixed ports (each must know the other's address before it starts).
    let ports: Vec<std::net::SocketAddr> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for addr in &ports {
        nodes.push(start(Options { port: addr.port(), peers: ports.clone(), ..options(&db) }).await.unwrap());
    }
    let mut a = client(&nodes[0]).await;
    wait_for(&mut a, "serving_from_cache", "yes").await;
    let mut b = client(&nodes[1]).await;
    wait_for(&mut b, "serving_from_cache", "yes").await;
    // A key node 1 owns, asked of node 0.
    let key = (0..1000)
        .map(|i| format!("key{i}"))
        .find(|k| nodes[0].shared.tier.owner(k.as_bytes()) == Some(1))
        .unwrap();
    db.write(key.as_bytes(), b"v");
    assert_eq!(call(&mut a, &["GET", &key]).await, bulk("v"));
    assert_eq!(info(&mut a, "forwarded").await, "1");
    assert_eq!(info(&mut a, "items").await, "0", "node 0 keeps no copy");
    assert_eq!(info(&mut b, "items").await, "1", "the owner does");
    assert_eq!(call(&mut a, &["CACHE", "OWNER", &key]).await, bulk(&ports[1].to_string()));
    assert_eq!(call(&mut a, &["CACHE", "REDIRECT", "ON"]).await, Frame::Simple("OK".into()));
    assert_eq!(call(&mut a, &["GET", &key]).await, Frame::Error(format!("MOVED 0 {}", ports[1])));
}

#[tokio::test]
async fn with_requirepass_clients_and_peers_authenticate_first() {
    let db = FakeDb::start("c1").await;
    let ports: Vec<std::net::SocketAddr> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for addr in &ports {
        let secured = Options {
            port: addr.port(),
            peers: ports.clone(),
            requirepass: Some("s3cret".into()),
            ..options(&db)
        };
        nodes.push(start(secured).await.unwrap());
    }
    let mut a = client(&nodes[0]).await;
    assert_eq!(call(&mut a, &["GET", "k"]).await, Frame::Error("NOAUTH Authentication required.".into()));
    assert_eq!(call(&mut a, &["PING"]).await, Frame::Error("NOAUTH Authentication required.".into()));
    let wrong = call(&mut a, &["AUTH", "guess"]).await;
    assert_eq!(wrong, Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
    assert_eq!(call(&mut a, &["AUTH", "default", "s3cret"]).await, Frame::Simple("OK".into()));
    wait_for(&mut a, "serving_from_cache", "yes").await;
    // HELLO's AUTH option authenticates too; a wrong one is refused.
    let mut b = client(&nodes[1]).await;
    let refused = call(&mut b, &["HELLO", "3", "AUTH", "default", "nope"]).await;
    assert!(matches!(refused, Frame::Error(ref e) if e.starts_with("WRONGPASS")), "{refused:?}");
    assert!(!matches!(call(&mut b, &["HELLO", "3", "AUTH", "default", "s3cret"]).await, Frame::Error(_)));
    wait_for(&mut b, "serving_from_cache", "yes").await;
    // A key node 1 owns, asked of node 0: the forwarding connection authenticates as a client.
    let key = (0..1000)
        .map(|i| format!("key{i}"))
        .find(|k| nodes[0].shared.tier.owner(k.as_bytes()) == Some(1))
        .unwrap();
    db.write(key.as_bytes(), b"v");
    assert_eq!(call(&mut a, &["GET", &key]).await, bulk("v"));
    assert_eq!(info(&mut a, "forwarded").await, "1");
}

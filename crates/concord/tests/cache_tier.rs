//! The cache tier as README and docs/cache.md run it: `concord up --nodes 3 --cache 2` (real
//! processes, non-default ports, a temp data directory), driven over RESP.
//!
//! One cluster for the whole walk (starting one is the slow part): read-through misses then hits;
//! a write sent straight to the database invalidates the cached value within a bound; write-through
//! then a hit; write-around then a miss then a hit; a lease voided by a concurrent write refuses the
//! stale LSET; keys another cache node owns are forwarded; bad input gets its clear error; `kill -9`
//! of a cache node leaves the cluster serving (and `up` starts it again); a database node's death
//! drops a feed – the cache serves from the database, not memory – and its return flushes. Then
//! `concord cache` by hand against another cluster id, against no database, and with a budget
//! below one item. On the way, the node's live page is opened in headless Chromium
//! (`tests/cache_page_e2e.py`; screenshot in `target/test-output/cache/`).

mod browser;

use concord_cache_node::conn::{text, Conn};
use concord_resp::Frame;
use concord_server::testkit::free_port_run;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

/// A child process stopped when the test ends, passed or failed: SIGINT (so `up` stops its
/// nodes), then SIGKILL after 15 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(15);
            while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One request on a fresh connection (errors as `Frame::Error`, so callers can retry).
async fn ask(to: SocketAddr, args: &[&str]) -> Frame {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match Conn::connect(to).await {
        Ok(mut conn) => conn.call1(&args).await.unwrap_or_else(|e| Frame::Error(format!("io: {e}"))),
        Err(e) => Frame::Error(format!("connect: {e}")),
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

async fn info(to: SocketAddr, field: &str) -> String {
    let all = text(&ask(to, &["INFO"]).await).unwrap_or_default();
    all.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

async fn num(to: SocketAddr, field: &str) -> u64 {
    info(to, field).await.parse().unwrap_or_else(|_| panic!("{field} is not a number at {to}"))
}

async fn wait_info(to: SocketAddr, field: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = info(to, field).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{to}: {field} is {got:?}, wanted {want:?} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the node at `to` has applied an invalidation beyond the first `before`.
async fn settled(to: SocketAddr, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while num(to, "invalidations").await <= before {
        assert!(Instant::now() < deadline, "no invalidation reached {to} within 2 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A key the cache node at `index` owns.
async fn key_owned_by(cache: &[SocketAddr], index: usize, prefix: &str) -> String {
    for i in 0..1000 {
        let key = format!("{prefix}{i}");
        if ask(cache[0], &["CACHE", "OWNER", &key]).await == bulk(&cache[index].to_string()) {
            return key;
        }
    }
    panic!("no key owned by cache node {index}");
}

fn pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn a_cache_tier_beside_a_cluster() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(16);
    let (redis0, http0, peer0, cache0, cache_http0) = (base, base + 3, base + 6, base + 10, base + 12);
    let log = std::fs::File::create(dir.path().join("up.out")).unwrap();
    let mut up = Proc(
        Command::new(CONCORD)
            .args(["up", "--nodes", "3", "--cache", "2", "--log", "warn"])
            .args(["--data", dir.path().join("data").to_str().unwrap()])
            .args(["--redis-port", &redis0.to_string(), "--http-port", &http0.to_string()])
            .args(["--peer-port", &peer0.to_string(), "--cache-port", &cache0.to_string()])
            .args(["--cache-http-port", &cache_http0.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let data = dir.path().join("data");
    let db: Vec<SocketAddr> = (0..3).map(|i| addr(redis0 + i)).collect();
    let cache: Vec<SocketAddr> = (0..2).map(|i| addr(cache0 + i)).collect();
    let out = || std::fs::read_to_string(dir.path().join("up.out")).unwrap_or_default();
    rt.block_on(async {
        // The database takes writes, and every cache node serves from memory.
        let deadline = Instant::now() + Duration::from_secs(30);
        while ask(db[0], &["SET", "ready", "1"]).await != Frame::Simple("OK".into()) {
            assert!(up.0.try_wait().unwrap().is_none(), "concord up exited:\n{}", out());
            assert!(Instant::now() < deadline, "the database never took a write:\n{}", out());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for c in &cache {
            wait_info(*c, "serving_from_cache", "yes", Duration::from_secs(20)).await;
        }
        assert!(out().contains(&format!("cache 1: redis 127.0.0.1:{cache0}")), "{}", out());

        // Read-through: a miss reads the database, the next GET is a hit.
        let c0 = cache[0];
        let k = key_owned_by(&cache, 0, "user:").await;
        // (Each write's invalidation is awaited before the reads that count: one arriving during
        // a fill voids its lease – correct, and a miss more.)
        let invalidations = num(c0, "invalidations").await;
        assert_eq!(ask(db[1], &["SET", &k, "ada"]).await, Frame::Simple("OK".into()));
        settled(c0, invalidations).await;
        let (hits, misses) = (num(c0, "hits").await, num(c0, "misses").await);
        assert_eq!(ask(c0, &["GET", &k]).await, bulk("ada"));
        assert_eq!(ask(c0, &["GET", &k]).await, bulk("ada"));
        assert_eq!((num(c0, "hits").await, num(c0, "misses").await), (hits + 1, misses + 1));
        assert_eq!(ask(c0, &["GET", "never-written"]).await, Frame::Null);

        // A write straight to the database (another node) invalidates the cached value.
        let written = Instant::now();
        assert_eq!(ask(db[2], &["SET", &k, "ada lovelace"]).await, Frame::Simple("OK".into()));
        while ask(c0, &["GET", &k]).await != bulk("ada lovelace") {
            assert!(written.elapsed() < Duration::from_secs(2), "the cache served the old value for 2 s");
        }
        assert!(num(c0, "invalidations").await >= 1);

        // Write-through: the written value is installed, the next GET is a hit.
        let k2 = key_owned_by(&cache, 0, "wt:").await;
        assert_eq!(ask(c0, &["SET", &k2, "v1"]).await, Frame::Simple("OK".into()));
        let (hits, misses) = (num(c0, "hits").await, num(c0, "misses").await);
        assert_eq!(ask(c0, &["GET", &k2]).await, bulk("v1"));
        assert_eq!((num(c0, "hits").await, num(c0, "misses").await), (hits + 1, misses));
        assert_eq!(ask(db[0], &["GET", &k2]).await, bulk("v1"), "write-through reached the database");

        // Write-around: dropped here, so a miss, then a hit.
        let invalidations = num(c0, "invalidations").await;
        assert_eq!(ask(c0, &["SET", &k2, "v2", "AROUND"]).await, Frame::Simple("OK".into()));
        settled(c0, invalidations).await;
        let (hits, misses) = (num(c0, "hits").await, num(c0, "misses").await);
        assert_eq!(ask(c0, &["GET", &k2]).await, bulk("v2"));
        assert_eq!(ask(c0, &["GET", &k2]).await, bulk("v2"));
        assert_eq!((num(c0, "hits").await, num(c0, "misses").await), (hits + 1, misses + 1));

        // A lease voided by a write that commits during the look-aside read.
        let k3 = key_owned_by(&cache, 0, "lease:").await;
        let Frame::Array(lease) = ask(c0, &["LGET", &k3]).await else { panic!("LGET gave no lease") };
        assert_eq!(lease[0], bulk("lease"));
        let Frame::Integer(token) = lease[1] else { panic!("{lease:?}") };
        let invalidations = num(c0, "invalidations").await;
        assert_eq!(ask(db[0], &["SET", &k3, "new"]).await, Frame::Simple("OK".into()));
        let deadline = Instant::now() + Duration::from_secs(2);
        while num(c0, "invalidations").await == invalidations {
            assert!(Instant::now() < deadline, "no invalidation for {k3}");
        }
        let stale = ask(c0, &["LSET", &k3, &token.to_string(), "1", "old"]).await;
        assert_eq!(stale, Frame::Simple("LEASE_INVALID".into()));
        assert_eq!(ask(c0, &["GET", &k3]).await, bulk("new"));

        // Forwarding: a key cache node 2 owns, asked of node 1; only the owner keeps it.
        let k4 = key_owned_by(&cache, 1, "fw:").await;
        assert_eq!(ask(db[0], &["SET", &k4, "far"]).await, Frame::Simple("OK".into()));
        let forwarded = num(c0, "forwarded").await;
        assert_eq!(ask(c0, &["GET", &k4]).await, bulk("far"));
        assert_eq!(num(c0, "forwarded").await, forwarded + 1);

        // The node's live page, in a real browser: the database ok, serving from memory, the hits.
        if browser::browser_available("a_cache_tier_beside_a_cluster (page)") {
            let page = Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cache_page_e2e.py"))
                .arg(format!("http://127.0.0.1:{cache_http0}/"))
                .arg(browser::repo_root().join("target/test-output/cache"))
                .arg("2")
                .output()
                .unwrap();
            assert!(
                page.status.success(),
                "the cache page in Chromium:\n{}{}",
                String::from_utf8_lossy(&page.stdout),
                String::from_utf8_lossy(&page.stderr)
            );
        }

        // Bad input: clear errors, and the node goes on.
        let big = "x".repeat(2 << 20);
        let Frame::Error(e) = ask(c0, &["SET", "big", &big]).await else { panic!("a 2 MiB value was taken") };
        assert!(e.contains("over the cache's item limit of 1048576 bytes"), "{e}");
        let Frame::Error(e) = ask(c0, &["NOSUCH"]).await else { panic!() };
        assert!(e.starts_with("ERR unknown command 'NOSUCH'"), "{e}");
        assert_eq!(ask(c0, &["PING"]).await, Frame::Simple("PONG".into()));

        // kill -9 of a cache node: the database serves on, node 1 answers node 2's keys from the
        // database, and `up` starts node 2 again.
        let victim = pid(&data.join("cache2.pid")).expect("cache2.pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(ask(db[0], &["SET", &k4, "still"]).await, Frame::Simple("OK".into()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while ask(c0, &["GET", &k4]).await != bulk("still") {
            assert!(Instant::now() < deadline, "node 1 could not answer node 2's key");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up.0.try_wait().unwrap().is_none(), "concord up exited after a cache node died:\n{}", out());
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid(&data.join("cache2.pid")).is_none_or(|p| p == victim) {
            assert!(Instant::now() < deadline, "cache node 2 was not started again:\n{}", out());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_info(cache[1], "serving_from_cache", "yes", Duration::from_secs(10)).await;

        // A database node dies: the feed from it drops, the cache flushes and serves from the
        // database only; when the node is back, another flush, then memory again.
        let flushes = num(c0, "flushes").await;
        let db3 = pid(&data.join("node3.pid")).expect("node3.pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(db3), nix::sys::signal::Signal::SIGKILL).unwrap();
        wait_info(c0, "serving_from_cache", "no", Duration::from_secs(5)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ask(c0, &["GET", &k]).await != bulk("ada lovelace") {
            assert!(Instant::now() < deadline, "no reads through the cache while a database node is down");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let restarted =
            Command::new(CONCORD).args(["restart", "3", "--data", data.to_str().unwrap()]).output().unwrap();
        assert!(restarted.status.success(), "{}", String::from_utf8_lossy(&restarted.stderr));
        wait_info(c0, "serving_from_cache", "yes", Duration::from_secs(20)).await;
        assert!(
            num(c0, "flushes").await >= flushes + 2,
            "a flush when the feed went and one when it came back"
        );

        // By hand: another cluster's id is refused, and no database is reported as such.
        let spare = free_port_run(2);
        let wrong = Proc(
            Command::new(CONCORD)
                .args(["cache", "--port", &spare.to_string(), "--db", &db[0].to_string()])
                .args(["--cluster-id", "concord-not-this-one"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_info(addr(spare), "db", "wrong-cluster", Duration::from_secs(10)).await;
        let Frame::Error(e) = ask(addr(spare), &["GET", &k]).await else {
            panic!("served another cluster's value")
        };
        assert!(e.contains("belongs to cluster"), "{e}");
        drop(wrong);
        let nothing = free_port_run(1);
        let _lonely = Proc(
            Command::new(CONCORD)
                .args(["cache", "--port", &(spare + 1).to_string(), "--db", &addr(nothing).to_string()])
                .args(["--cluster-id", "c"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_info(addr(spare + 1), "db", "unreachable", Duration::from_secs(10)).await;
        let Frame::Error(e) = ask(addr(spare + 1), &["GET", "k"]).await else { panic!() };
        assert!(e.starts_with("TRYAGAIN the database is unreachable"), "{e}");
    });
    let small = Command::new(CONCORD)
        .args(["cache", "--port", "0", "--db", "127.0.0.1:1", "--cluster-id", "c"])
        .args(["--budget-mb", "1", "--max-item-kb", "2048"])
        .output()
        .unwrap();
    assert!(!small.status.success());
    let said = String::from_utf8_lossy(&small.stderr);
    assert!(said.contains("below the item limit"), "{said}");
}

//! Client limits against real `concord serve` processes (issue #23).
//!
//! **Descriptors (finding 1).** A real `concord serve` process runs under `ulimit -n 200`. A RESP client connects; then 300
//! HTTP connections open and each sends only `GET /healthz HTTP/1.1\r\n` – an unfinished request
//! that holds its connection. Then the RESP client writes 70 MB of values, which makes the WAL
//! close its 64 MiB segment and open the next one: a new file. Before the fix, the idle HTTP
//! connections had taken every descriptor, the segment roll failed with `Too many open files
//! (os error 24)`, and the node exited. Now the HTTP door holds at most its share of the budget
//! and refuses the rest, so every write is acknowledged, the node stays up, and once the idle
//! connections go, HTTP and RESP serve new clients.
//!
//! **Batches (finding 9).** redis-py's `MSET`, `DEL` and `MGET` of 10 000 keys on a real node: the
//! first two are one atomic transaction each (they were refused above 128 keys), the last is read
//! in pages.

use concord_server::testkit::free_addrs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPEN_FILES: u32 = 200;
const BATCH_KEYS: usize = 10_000;
const IDLE_CONNECTIONS: usize = 300;

struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Node {
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection; the status line's code, if any answer came.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer.split(' ').nth(1)?.parse().ok()?;
    Some((code, answer))
}

/// Send one RESP command, read its one-line reply.
fn resp(conn: &mut TcpStream, args: &[&[u8]]) -> String {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.write_all(&out).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Start a one-node `concord serve` in `dir` under `ulimit -n open_files` (if given), with `extra`
/// flags; wait until it answers `/healthz`. Returns it and its HTTP and RESP addresses.
fn start_node(
    dir: &std::path::Path,
    open_files: Option<u32>,
    extra: &[&str],
) -> (Node, SocketAddr, SocketAddr) {
    let addrs = free_addrs(3);
    let (http, redis, peer) = (addrs[0], addrs[1], addrs[2]);
    let log = dir.join("node.log");
    let ulimit = open_files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{ulimit}exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_concord"))
        .args(["serve", "--id", "1", "--no-fsync", "--log", "info"])
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--http-addr", &http.to_string(), "--redis-addr", &redis.to_string()])
        .args(["--peer-addr", &peer.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut node = Node { child, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(http, "/healthz").map(|(code, _)| code) != Some(200) {
        assert!(node.alive(), "the node exited at start:\n{}", node.log());
        assert!(Instant::now() < deadline, "the node never became healthy:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    (node, http, redis)
}

#[test]
fn idle_http_connections_under_a_low_descriptor_limit_do_not_stop_the_node() {
    let dir = tempfile::tempdir().unwrap();
    // The idle timeout is long enough that the idle connections are still open while the WAL rolls.
    let (mut node, http, redis) = start_node(dir.path(), Some(OPEN_FILES), &["--http-idle-timeout", "120s"]);
    // The doors' caps were lowered to fit the 200 descriptors, and the node said so.
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains(&format!("open-files limit: soft {OPEN_FILES}")), "{log}");
    assert!(log.contains("maxclients 10000 lowered to") && log.contains("ulimit -n"), "{log}");
    let mut writer = TcpStream::connect(redis).unwrap();
    writer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(resp(&mut writer, &[b"PING"]), "+PONG\r\n");

    // 300 unfinished requests, each holding a connection (or refused: fine too).
    let mut idle = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        if let Ok(mut s) = TcpStream::connect_timeout(&http, Duration::from_secs(2)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\n");
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.alive(), "the node exited under the idle connections:\n{}", node.log());

    // 70 values of ~1 MB: past the WAL's 64 MiB segment, so it opens a new segment file.
    let value = vec![b'v'; 1_000_000];
    for i in 0..70 {
        let key = format!("big-{i}");
        let reply = resp(&mut writer, &[b"SET", key.as_bytes(), &value]);
        assert_eq!(
            reply,
            "+OK\r\n",
            "write {i} not acknowledged; node alive: {}\n{}",
            node.alive(),
            node.log()
        );
    }
    assert!(node.alive(), "the node exited:\n{}", node.log());
    let segments = std::fs::read_dir(dir.path().join("data/wal"))
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".log")).count()
        })
        .unwrap_or(0);
    assert!(segments >= 2, "the WAL did not roll a segment ({segments} segment files)");

    // The idle connections go; new clients are served on both doors.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((200, _)) = http_get(http, "/healthz") {
            break;
        }
        assert!(Instant::now() < deadline, "HTTP does not serve again:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fresh = TcpStream::connect(redis).unwrap();
    fresh.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(resp(&mut fresh, &[b"GET", b"missing"]), "$-1\r\n");
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let refused = metrics
        .lines()
        .find(|l| {
            l.starts_with("concord_rejected_connections_total{door=\"http\",reason=\"max_connections\"}")
        })
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n > 0.0), "refusals not counted:\n{metrics}");
    assert!(node.alive());
}

#[test]
fn redis_py_batches_of_ten_thousand_keys() {
    let python = Command::new("python3").args(["-c", "import redis"]).output();
    if !python.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "python3 with redis-py is needed (pip install redis)");
        let _ = writeln!(std::io::stderr(), "SKIPPED: python3 with redis-py is not usable");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, _http, redis) = start_node(dir.path(), None, &[]);
    let script = format!(
        r#"
import redis
r = redis.Redis(host="{host}", port={port}, socket_timeout=30)
n = {BATCH_KEYS}
assert r.mset({{f"k{{i}}": f"v{{i}}" for i in range(n)}}) is True
values = r.mget([f"k{{i}}" for i in range(n)] + ["absent"])
assert values == [f"v{{i}}".encode() for i in range(n)] + [None], values[:3]
assert r.delete(*[f"k{{i}}" for i in range(0, n, 2)]) == n // 2
assert r.exists(*[f"k{{i}}" for i in range(n)]) == n // 2
print("ok")
"#,
        host = redis.ip(),
        port = redis.port()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis-py failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
}

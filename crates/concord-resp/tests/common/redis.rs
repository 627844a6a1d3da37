//! A real redis-server to compare Concord's replies with (`tests/cluster.rs`,
//! `tests/introspection.rs`), and raw RESP helpers to read its replies byte for byte.

#![allow(dead_code)]

use super::{have_program, resp, Conn};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install redis-server redis-tools";

/// A redis-server child process in its own temporary directory, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that is free, and whose cluster bus port (port + 10 000) is free too.
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else { continue };
        let port = listener.local_addr().unwrap().port();
        // redis's bus port is port + 10 000, so stay below 55 536; and five digits, as the
        // ephemeral port Concord's test server gets, so that replies have the same lengths.
        if !(10_000..55_000).contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    // Below the ephemeral range: probe a few fixed candidates.
    (20_000..30_000)
        .step_by(97)
        .find(|&p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        })
        .expect("a free port pair")
}

impl Redis {
    /// redis-server, a one-node cluster owning every slot (`cluster: true`) or a plain server.
    pub fn start(cluster: bool) -> Option<Redis> {
        if !have_program("redis-server", &["--version"], INSTALL) {
            return None;
        }
        let port = free_port_pair();
        let dir = std::env::temp_dir().join(format!("concord-resp-cluster-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--dir".to_string(), dir.display().to_string()]);
        if cluster {
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-announce-ip",
                    "127.0.0.1",
                ]
                .map(String::from),
            );
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break Conn { stream },
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("redis-server on {port} did not come up: {e}"),
            }
        };
        if cluster {
            assert_eq!(call(&mut conn, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), b"+OK\r\n");
            while !String::from_utf8_lossy(&call(&mut conn, &["CLUSTER", "INFO"]))
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "the one-node cluster never became ok");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(redis)
    }

    pub fn connect(&self) -> Conn {
        Conn { stream: TcpStream::connect(("127.0.0.1", self.port)).unwrap() }
    }
}

/// The length of the one complete RESP value at the start of `buf`, if it is all there.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let after = line_end + 2;
    match buf[0] {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let n: i64 = header.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'%' | b'>' | b'|' => {
            let n: i64 = header.parse().ok()?;
            let items = if matches!(buf[0], b'%' | b'|') { n * 2 } else { n.max(0) };
            let mut at = after;
            for _ in 0..items {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        other => panic!("not RESP: {:?}", other as char),
    }
}

/// One element of a reply: its raw bytes and, for aggregates, its elements.
#[derive(Debug)]
pub struct Value {
    pub raw: Vec<u8>,
    pub items: Vec<Value>,
}

pub fn parse_value(buf: &[u8]) -> Value {
    let len = reply_len(buf).expect("a complete reply");
    let raw = buf[..len].to_vec();
    let mut items = Vec::new();
    if matches!(buf[0], b'*' | b'~' | b'%') {
        let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap();
        let n: i64 = std::str::from_utf8(&buf[1..line_end]).unwrap().parse().unwrap();
        let count = if buf[0] == b'%' { n * 2 } else { n.max(0) };
        let mut at = line_end + 2;
        for _ in 0..count {
            let item = parse_value(&buf[at..]);
            at += item.raw.len();
            items.push(item);
        }
    }
    Value { raw, items }
}

/// Send `args`, read exactly one reply, raw.
pub fn call(conn: &mut Conn, args: &[&str]) -> Vec<u8> {
    conn.send(&resp(args));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    loop {
        if let Some(len) = reply_len(&got) {
            assert_eq!(
                len,
                got.len(),
                "one reply expected for {args:?}: {:?}",
                String::from_utf8_lossy(&got)
            );
            return got;
        }
        let (more, closed) = conn.read_for(got.len() + 1, deadline.saturating_duration_since(Instant::now()));
        assert!(!more.is_empty() || !closed, "connection closed during {args:?}");
        assert!(
            Instant::now() < deadline,
            "no complete reply to {args:?}: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&more[got.len()..]);
    }
}

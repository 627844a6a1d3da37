//! Small tools for tests and load generators that talk to real nodes: a minimal HTTP/1.1 client
//! (plain, or over TLS), free loopback ports, and waiting for in-process nodes to agree on a leader.
//!
//! The client is deliberately tiny (one request per connection, `Connection: close`, bodies with
//! `Content-Length`) – enough for the API's own answers, with a hard deadline on every call so a
//! killed node shows up as an error, never a hung test.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer: status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("answer is not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP request with a deadline. Errors (refused, reset, timed out) are strings.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    http_with_headers(addr, method, path, &[], body, timeout).await
}

/// [`http`] with extra request headers.
pub async fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    let fut = async {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        exchange(s, addr, method, path, headers, body).await
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("{method} {path} on {addr}: timed out"))?
}

/// [`http_with_headers`] over TLS (a node started with `--tls-*`): `tls` trusts the cluster's CA
/// (see [`crate::tls::client_config`]), and the node's certificate must name `addr`'s IP.
pub async fn https_with_headers(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    let fut = async {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let s = tokio_rustls::TlsConnector::from(tls)
            .connect(crate::tls::server_name(addr), s)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {}", crate::tls::describe(&e)))?;
        exchange(s, addr, method, path, headers, body).await
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("{method} {path} on {addr}: timed out"))?
}

/// One request and its whole answer on a fresh connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpAnswer, String> {
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).await.map_err(|e| format!("write {addr}: {e}"))?;
    s.flush().await.map_err(|e| format!("write {addr}: {e}"))?;
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw).await;
    // A TLS server that closes without close_notify ends with an "unexpected EOF" after the whole
    // answer: keep what was read when it parses.
    if let Err(e) = read {
        if raw.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
            return Err(format!("read {addr}: {e}"));
        }
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<HttpAnswer, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete HTTP answer ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "HTTP head is not UTF-8".to_string())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut body = raw[split + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length {
        if body.len() < n {
            return Err(format!("truncated HTTP body: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok(HttpAnswer { status, body })
}

/// `n` loopback addresses that were free a moment ago (bound, then released).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("bound")).collect()
}

/// A base port such that `base..base + n` are all free now.
pub fn free_port_run(n: u16) -> u16 {
    let mut seed = [0u8; 2];
    for _ in 0..200 {
        getrandom::getrandom(&mut seed).expect("the OS random source works");
        let base = 20_000 + u16::from_le_bytes(seed) % 30_000;
        let free = (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no run of {n} free ports found");
}

/// Wait until every in-process node names the same leader, and that node says it leads; return its
/// index in `nodes`. Panics (a test failure) after `within`.
pub async fn agreed_leader(nodes: &[crate::Node], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let leaders: Vec<Option<u32>> = nodes.iter().map(|n| n.handle().status().leader).collect();
        if let Some(Some(l)) = leaders.first() {
            if leaders.iter().all(|x| *x == Some(*l))
                && nodes[*l as usize - 1].handle().status().role == "leader"
            {
                return *l as usize - 1;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader within {within:?}: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal RESP client for tests: one connection, one command at a time, replies as text –
/// `OK` for `+OK`, `-ERR …` (with the dash) for errors, the digits of an integer, `(nil)` for a null,
/// the bytes of a bulk string (lossy UTF-8). Enough to test a front door without external tools;
/// real clients (redis-cli, redis-py) are tested elsewhere.
pub struct Resp {
    stream: tokio::io::BufReader<TcpStream>,
}

impl Resp {
    pub async fn connect(addr: SocketAddr) -> Result<Resp, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        Ok(Resp { stream: tokio::io::BufReader::new(s) })
    }

    /// Send one command (as a RESP array of bulk strings) and read its reply, within 10 s.
    pub async fn call(&mut self, args: &[&str]) -> Result<String, String> {
        use tokio::io::AsyncBufReadExt;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let exchange = async {
            self.stream.get_mut().write_all(out.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut line = String::new();
            self.stream.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let line = line.trim_end();
            let (kind, rest) = line.split_at(line.len().min(1));
            match kind {
                "+" | ":" => Ok(rest.to_string()),
                "-" => Ok(line.to_string()),
                "$" if rest == "-1" => Ok("(nil)".to_string()),
                "$" => {
                    let n: usize = rest.parse().map_err(|_| format!("bad bulk length {rest:?}"))?;
                    let mut bytes = vec![0; n + 2];
                    self.stream.read_exact(&mut bytes).await.map_err(|e| e.to_string())?;
                    bytes.truncate(n);
                    Ok(String::from_utf8_lossy(&bytes).into_owned())
                }
                _ => Err(format!("unexpected reply line {line:?}")),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("{args:?}: no reply within 10 s"))?
    }
}

/// The secret of the clusters [`loopback_configs`] describes.
pub const TEST_SECRET: &str = "test-secret";

/// Configurations of an `n`-node cluster in one process: node `i + 1` keeps its WAL in
/// `dir/node<i + 1>`, listens for peers, HTTP and RESP on free loopback ports, and knows every
/// member's addresses. Cluster id `test-cluster`, secret [`TEST_SECRET`]; tests adjust the rest
/// (mode, TLS, …) before starting the nodes.
pub fn loopback_configs(dir: &std::path::Path, n: usize) -> Vec<crate::NodeConfig> {
    let (peer, http, redis) = (free_addrs(n), free_addrs(n), free_addrs(n));
    let members: Vec<crate::PeerConfig> = (0..n)
        .map(|j| crate::PeerConfig {
            id: j as u32 + 1,
            addr: peer[j],
            http_addr: Some(http[j]),
            redis_addr: Some(redis[j]),
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut c = crate::NodeConfig::new(i as u32 + 1, dir.join(format!("node{}", i + 1)));
            c.peer_addr = peer[i];
            c.http_addr = Some(http[i]);
            c.redis_addr = Some(redis[i]);
            c.cluster_id = "test-cluster".into();
            c.cluster_secret = Some(TEST_SECRET.into());
            c.peers = members.clone();
            c
        })
        .collect()
}

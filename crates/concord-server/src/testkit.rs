//! Small tools for tests and load generators that talk to real nodes: free loopback ports,
//! in-process cluster configurations, waiting for in-process nodes to agree on a leader, and a
//! minimal RESP client.
//!
//! HTTP calls go through the production client, [`crate::client`] (hyper), re-exported here so
//! tests speak to the API exactly as `concord member` and the dashboard do.

pub use crate::client::{http, http_with_headers, https_with_headers, HttpAnswer};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` loopback addresses that were free a moment ago, none of them handed out before in this
/// process, all below the OS's ephemeral range. Tests of one binary run in parallel, and a port
/// from `bind(…:0)` is an ephemeral one: the OS gives it again to the next `bind(…:0)`, or to an
/// outgoing connection – a node that started first dials its peers and may take the port meant
/// for the next node (`AddrInUse`, seen in CI more than once).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (low, high) = below_ephemeral(1);
    let mut held = Vec::new(); // bound until all `n` are chosen, so they differ from each other
    let mut out = Vec::new();
    let mut seed = [0u8; 2];
    for _ in 0..100_000 {
        if out.len() == n {
            return out;
        }
        getrandom::getrandom(&mut seed).expect("the OS random source works");
        let port = low + u16::from_le_bytes(seed) % (high - low);
        if given.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            out.push(listener.local_addr().expect("bound"));
            held.push(listener);
        }
    }
    panic!("no {n} free loopback ports found below the ephemeral range");
}

/// Ports `[low, high)` for tests: from 10 000 up to the start of the OS's ephemeral range, less
/// `run` (Linux's default range starts at 32 768; the real one is read where there is one).
fn below_ephemeral(run: u16) -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    (10_000, ephemeral_low.saturating_sub(run).max(11_000))
}

/// A base port such that `base..base + n` are all free now, below the OS's ephemeral range: a
/// node restarted after `kill -9` binds its ports again, and a port in the ephemeral range may by
/// then be the local end of some outgoing connection (a CI run lost a restart to exactly that:
/// "RESP port is already in use").
pub fn free_port_run(n: u16) -> u16 {
    let (low, high) = below_ephemeral(n);
    let mut seed = [0u8; 2];
    for _ in 0..200 {
        getrandom::getrandom(&mut seed).expect("the OS random source works");
        let base = low + u16::from_le_bytes(seed) % (high - low);
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
/// the bytes of a bulk string (lossy UTF-8) – or, with [`Resp::request`], arrays of them. Enough to
/// test a front door without external tools; real clients (redis-cli, redis-py) are tested elsewhere.
pub struct Resp {
    stream: tokio::io::BufReader<TcpStream>,
}

/// A reply [`Resp::request`] read: a scalar as [`Resp::call`] shows it, or an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Text(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// The texts of a flat array (`KEYS`, `CLUSTER GETKEYSINSLOT`); an error names what came.
    pub fn texts(&self) -> Result<Vec<String>, String> {
        match self {
            Reply::Array(items) => items
                .iter()
                .map(|item| match item {
                    Reply::Text(text) => Ok(text.clone()),
                    nested => Err(format!("a nested array {nested:?}")),
                })
                .collect(),
            Reply::Text(text) => Err(format!("not an array: {text}")),
        }
    }
}

impl Resp {
    pub async fn connect(addr: SocketAddr) -> Result<Resp, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        Ok(Resp { stream: tokio::io::BufReader::new(s) })
    }

    /// Send one command (as a RESP array of bulk strings) and read its scalar reply, within 10 s.
    pub async fn call(&mut self, args: &[&str]) -> Result<String, String> {
        match self.request(args).await? {
            Reply::Text(text) => Ok(text),
            array => Err(format!("{args:?}: an array reply {array:?} (use Resp::request)")),
        }
    }

    /// Send one command and read its reply, arrays included, within 10 s.
    pub async fn request(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let exchange = async {
            self.stream.get_mut().write_all(out.as_bytes()).await.map_err(|e| e.to_string())?;
            self.reply().await
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("{args:?}: no reply within 10 s"))?
    }

    /// Read one reply without sending anything – a Pub/Sub message pushed to a subscriber – if one
    /// starts arriving within `within` (`None` if none does).
    pub async fn receive(&mut self, within: Duration) -> Result<Option<Reply>, String> {
        use tokio::io::AsyncBufReadExt;
        // `fill_buf` is cancel-safe: a timeout here loses nothing of a reply that arrives later.
        match tokio::time::timeout(within, self.stream.fill_buf()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok([])) => return Err("the server closed the connection".into()),
            Ok(Ok(_)) => {}
        }
        tokio::time::timeout(Duration::from_secs(10), self.reply())
            .await
            .map_err(|_| "a reply started and did not end within 10 s".to_string())?
            .map(Some)
    }

    /// Read one reply (boxed: an array's items are replies).
    fn reply(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + '_>> {
        use tokio::io::AsyncBufReadExt;
        Box::pin(async move {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let line = line.trim_end();
            let (kind, rest) = line.split_at(line.len().min(1));
            match kind {
                "+" | ":" => Ok(Reply::Text(rest.to_string())),
                "-" => Ok(Reply::Text(line.to_string())),
                "$" | "*" if rest == "-1" => Ok(Reply::Text("(nil)".to_string())),
                // RESP3 (after `HELLO 3`): a null, and maps and pushes read as arrays (a map's
                // keys and values alternate).
                "_" => Ok(Reply::Text("(nil)".to_string())),
                "$" => {
                    let n: usize = rest.parse().map_err(|_| format!("bad bulk length {rest:?}"))?;
                    let mut bytes = vec![0; n + 2];
                    self.stream.read_exact(&mut bytes).await.map_err(|e| e.to_string())?;
                    bytes.truncate(n);
                    Ok(Reply::Text(String::from_utf8_lossy(&bytes).into_owned()))
                }
                "*" | ">" | "%" => {
                    let n: usize = rest.parse().map_err(|_| format!("bad array length {rest:?}"))?;
                    let n = if kind == "%" { 2 * n } else { n };
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(self.reply().await?);
                    }
                    Ok(Reply::Array(items))
                }
                _ => Err(format!("unexpected reply line {line:?}")),
            }
        })
    }
}

/// The secret of the clusters [`loopback_configs`] describes.
pub const TEST_SECRET: &str = "test-secret";

/// Configurations of an `n`-node cluster in one process: node `i + 1` keeps its WAL in
/// `dir/node<i + 1>`, listens for peers, HTTP and RESP on free loopback ports, and knows every
/// member's addresses. Cluster id `test-cluster`, secret [`TEST_SECRET`]; tests adjust the rest
/// (mode, TLS, …) before starting the nodes.
pub fn loopback_configs(dir: &std::path::Path, n: usize) -> Vec<crate::NodeConfig> {
    // One call for all three kinds: ports held at once are distinct, while three separate calls
    // could each get a port another had just released (a node refused to start with
    // `redis_addr and peer_addr are both …`).
    let all = free_addrs(3 * n);
    let (peer, http, redis) = (&all[..n], &all[n..2 * n], &all[2 * n..]);
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

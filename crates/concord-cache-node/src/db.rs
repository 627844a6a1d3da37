//! The cache node's client of the database: a connection pool over the database nodes that
//! follows Concord's redirects.
//!
//! Every request goes to one node; the answer may send it elsewhere, as Concord answers them
//! (`concord_resp::backend`'s table):
//!
//! | reply | meaning | what the pool does |
//! |---|---|---|
//! | `-MOVED slot host:port` | sharded: another node leads the key's shard | resend there |
//! | `-READONLY … the leader is at host:port` | strong: a follower that cannot serve this | resend there |
//! | `-TRYAGAIN …`, `-CLUSTERDOWN …` | no leader yet, a slot moving | wait 20 ms, resend (another node) |
//! | connection refused, reset, timeout | that node is down | the next configured node |
//!
//! for at most [`DEADLINE`]; then the request fails with [`DbError`]. Reads (`GETREV`) are the
//! database's default linearizable reads, so a value read through the pool is never older than a
//! write acknowledged before the read was sent.
//!
//! **Only this cluster.** Every new connection first asks `INFO server` and compares
//! `concord_cluster_id` with the id the cache was started with; a database of another cluster (a
//! port reused by another `concord up`, a typo in `--db`) is refused and the request fails with
//! [`DbError::WrongCluster`] – the cache never serves a value read from it.

use crate::conn::{cluster_id_in_info, text, Conn};
use bytes::Bytes;
use concord_resp::Frame;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one request may spend on redirects and retries.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Idle connections kept per database node.
const POOL_PER_NODE: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbError {
    /// No database node answered within the deadline.
    Unreachable(String),
    /// A database node belongs to another cluster.
    WrongCluster { addr: SocketAddr, theirs: String, ours: String },
    /// The database answered something this cache cannot use (a protocol surprise).
    Unexpected(String),
}

impl DbError {
    /// The error reply a client of the cache sees.
    pub fn reply(&self) -> String {
        match self {
            DbError::Unreachable(why) => format!("TRYAGAIN the database is unreachable: {why}"),
            DbError::WrongCluster { addr, theirs, ours } => format!(
                "ERR the database at {addr} belongs to cluster {theirs}, not {ours}: this cache refuses it"
            ),
            DbError::Unexpected(why) => format!("ERR unexpected answer from the database: {why}"),
        }
    }
}

/// Authentication for the database's client port (`AUTH [user] password`).
#[derive(Clone, Debug, Default)]
pub struct DbAuth {
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Default, Debug)]
pub struct DbCounters {
    pub requests: AtomicU64,
    pub redirects: AtomicU64,
    pub retries: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Db {
    nodes: Vec<SocketAddr>,
    cluster_id: String,
    auth: DbAuth,
    pools: Mutex<HashMap<SocketAddr, Vec<Conn>>>,
    /// The node the last request succeeded at (the leader, usually): tried first.
    preferred: Mutex<Option<SocketAddr>>,
    rotate: AtomicUsize,
    pub counters: DbCounters,
}

impl Db {
    pub fn new(nodes: Vec<SocketAddr>, cluster_id: String, auth: DbAuth) -> Db {
        Db {
            nodes,
            cluster_id,
            auth,
            pools: Mutex::new(HashMap::new()),
            preferred: Mutex::new(None),
            rotate: AtomicUsize::new(0),
            counters: DbCounters::default(),
        }
    }

    pub fn nodes(&self) -> &[SocketAddr] {
        &self.nodes
    }

    /// Open a connection to `addr`: authenticate, then check the cluster id (module docs).
    pub async fn open(&self, addr: SocketAddr) -> Result<Conn, DbError> {
        let unreachable = |e: std::io::Error| DbError::Unreachable(format!("{addr}: {e}"));
        let mut conn = Conn::connect(addr).await.map_err(unreachable)?;
        if let Some(password) = &self.auth.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &self.auth.user {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            if let Frame::Error(e) = conn.call1(&auth).await.map_err(unreachable)? {
                return Err(DbError::Unexpected(format!("{addr} refused AUTH: {e}")));
            }
        }
        let info = conn.call1(&[b"INFO", b"server"]).await.map_err(unreachable)?;
        check_cluster(addr, &info, &self.cluster_id)?;
        Ok(conn)
    }

    fn take(&self, addr: SocketAddr) -> Option<Conn> {
        self.pools.lock().expect("pool lock").get_mut(&addr).and_then(Vec::pop)
    }

    fn give_back(&self, conn: Conn) {
        let mut pools = self.pools.lock().expect("pool lock");
        let idle = pools.entry(conn.addr).or_default();
        if idle.len() < POOL_PER_NODE {
            idle.push(conn);
        }
    }

    /// Send `requests` as one pipeline to the node that serves them (module docs) and return the
    /// replies. Redirects and retries look at the first reply only: callers pipeline requests on
    /// one key, which all go to the same place.
    pub async fn call(&self, requests: &[&[&[u8]]]) -> Result<Vec<Frame>, DbError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.call_inner(requests).await;
        if result.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn call_inner(&self, requests: &[&[&[u8]]]) -> Result<Vec<Frame>, DbError> {
        let deadline = Instant::now() + DEADLINE;
        let mut target = *self.preferred.lock().expect("preferred lock");
        let mut last_error = String::from("no database node given");
        loop {
            if Instant::now() > deadline {
                return Err(DbError::Unreachable(last_error));
            }
            let addr = match target.take() {
                Some(addr) => addr,
                None => {
                    let i = self.rotate.fetch_add(1, Ordering::Relaxed);
                    match self.nodes.get(i % self.nodes.len().max(1)) {
                        Some(addr) => *addr,
                        None => return Err(DbError::Unreachable(last_error)),
                    }
                }
            };
            let mut conn = match self.take(addr) {
                Some(conn) => conn,
                None => match self.open(addr).await {
                    Ok(conn) => conn,
                    Err(DbError::Unreachable(why)) => {
                        last_error = why;
                        self.forget_preferred(addr);
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(other) => return Err(other),
                },
            };
            let replies = match conn.call(requests).await {
                Ok(replies) => replies,
                Err(e) => {
                    // A broken pooled connection (the node restarted): drop it and try again.
                    last_error = format!("{addr}: {e}");
                    self.forget_preferred(addr);
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.give_back(conn);
            if let Some(Frame::Error(e)) = replies.first() {
                if let Some(to) = redirect(e) {
                    self.counters.redirects.fetch_add(1, Ordering::Relaxed);
                    target = Some(to);
                    last_error = format!("{addr}: {e}");
                    continue;
                }
                if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN") || e.starts_with("LOADING") {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    last_error = format!("{addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    target = Some(addr);
                    continue;
                }
            }
            *self.preferred.lock().expect("preferred lock") = Some(addr);
            return Ok(replies);
        }
    }

    fn forget_preferred(&self, addr: SocketAddr) {
        let mut preferred = self.preferred.lock().expect("preferred lock");
        if *preferred == Some(addr) {
            *preferred = None;
        }
    }

    /// `GETREV key`: the value (if any) and the key's mod revision (0 when absent).
    pub async fn getrev(&self, key: &[u8]) -> Result<Result<(Option<Bytes>, u64), String>, DbError> {
        let request: [&[u8]; 2] = [b"GETREV", key];
        let reply = self.call(&[&request[..]]).await?.remove(0);
        Ok(parse_getrev(reply))
    }
}

/// Where a `-MOVED` or `-READONLY … at host:port` error sends a request.
pub fn redirect(error: &str) -> Option<SocketAddr> {
    if error.starts_with("MOVED ") || error.starts_with("ASK ") {
        return error.split_whitespace().nth(2)?.parse().ok();
    }
    if error.starts_with("READONLY") {
        let at = error.rsplit_once(" at ")?.1;
        return at.trim().trim_end_matches('.').parse().ok();
    }
    None
}

/// `[value-or-nil, revision]`; `Err` holds the database's error reply (WRONGTYPE…) to pass on.
pub fn parse_getrev(reply: Frame) -> Result<(Option<Bytes>, u64), String> {
    match reply {
        Frame::Array(items) if items.len() == 2 => {
            let value = match &items[0] {
                Frame::Bulk(b) => Some(b.clone()),
                Frame::Null | Frame::NullArray => None,
                other => return Err(format!("ERR unexpected GETREV value {other:?}")),
            };
            match items[1] {
                Frame::Integer(rev) if rev >= 0 => Ok((value, rev as u64)),
                ref other => Err(format!("ERR unexpected GETREV revision {other:?}")),
            }
        }
        Frame::Error(e) => Err(e),
        other => Err(format!("ERR unexpected GETREV reply {other:?}")),
    }
}

/// Whether an `INFO server` reply names cluster `ours`.
pub fn check_cluster(addr: SocketAddr, info: &Frame, ours: &str) -> Result<(), DbError> {
    if let Frame::Error(e) = info {
        return Err(DbError::Unexpected(format!("{addr} refused INFO server: {e}")));
    }
    let theirs = text(info).and_then(|t| cluster_id_in_info(&t));
    match theirs {
        Some(theirs) if theirs == ours => Ok(()),
        Some(theirs) => Err(DbError::WrongCluster { addr, theirs, ours: ours.to_string() }),
        None => Err(DbError::WrongCluster {
            addr,
            theirs:
                "(none: its INFO server has no concord_cluster_id – not a Concord database, or an older one)"
                    .into(),
            ours: ours.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_read_from_concords_errors() {
        assert_eq!(redirect("MOVED 3999 127.0.0.1:6381"), Some("127.0.0.1:6381".parse().unwrap()));
        assert_eq!(
            redirect("READONLY this node is not the leader; the leader is at 127.0.0.1:6380"),
            Some("127.0.0.1:6380".parse().unwrap())
        );
        assert_eq!(
            redirect("TRYAGAIN no leader is known (an election may be in progress); retry shortly"),
            None
        );
        assert_eq!(redirect("ERR wrong"), None);
    }

    #[test]
    fn getrev_replies_parse() {
        let two = |a, b| Frame::Array(vec![a, b]);
        assert_eq!(
            parse_getrev(two(Frame::Bulk(Bytes::from_static(b"v")), Frame::Integer(42))),
            Ok((Some(Bytes::from_static(b"v")), 42))
        );
        assert_eq!(parse_getrev(two(Frame::Null, Frame::Integer(0))), Ok((None, 0)));
        assert!(parse_getrev(Frame::Error("WRONGTYPE x".into())).unwrap_err().starts_with("WRONGTYPE"));
        assert!(parse_getrev(Frame::Integer(1)).is_err());
    }

    #[test]
    fn another_clusters_database_is_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let info = |id: &str| {
            Frame::Bulk(Bytes::from(format!(
                "# Server\r\nredis_version:7.0.0\r\nconcord_cluster_id:{id}\r\n"
            )))
        };
        assert_eq!(check_cluster(addr, &info("c1"), "c1"), Ok(()));
        assert!(matches!(check_cluster(addr, &info("c2"), "c1"), Err(DbError::WrongCluster { .. })));
        let plain = Frame::Bulk(Bytes::from_static(b"# Server\r\nredis_version:7.0.15\r\n"));
        let err = check_cluster(addr, &plain, "c1").unwrap_err();
        assert!(err.reply().contains("refuses it"), "{}", err.reply());
    }
}

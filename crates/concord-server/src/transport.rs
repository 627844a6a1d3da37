//! Peer transport: one authenticated TCP connection per direction per peer.
//!
//! ```text
//!   node 1                                   node 2
//!   driver ──send(n2, frame)──> [queue n2] ──dial──> accept ──> inbound ──> driver
//!   driver <── inbound <── accept <──dial── [queue n1] <──send(n1, frame)── driver
//! ```
//!
//! **Outbound.** Each node dials each peer and *writes* its frames there; it never reads data from a
//! connection it dialed. Each peer has a bounded queue (frames, not bytes: Raft's own flow control –
//! `max_inflight_appends`, `max_bytes_per_append` – bounds what is in flight). When the queue is full,
//! or the peer is down, frames are dropped and counted (`concord_peer_frames_dropped_total`): Raft
//! tolerates loss and retransmits, whereas an unbounded queue towards a dead peer would eat memory
//! until the process died. A failed connection is retried with exponential back-off (50 ms doubling
//! to 2 s).
//!
//! **Inbound.** The peer port accepts connections, runs the handshake, then reads frames and hands
//! them to [`Inbound`]. Answers (Raft responses, forwarded-request replies) travel back over this
//! node's own outbound connection to the sender.
//!
//! **Handshake** (mutual HMAC-SHA256 challenge-response over the shared cluster secret; the secret
//! itself never crosses the wire):
//!
//! ```text
//!   dialer                                              acceptor
//!   Hello { version, cluster_id, from, to, nonce_d } ──>  checks version, cluster id, that it is `to`,
//!                                                         and that `from` is a configured peer
//!                      <── Challenge { nonce_a, proof_a = HMAC(secret, "accept" | ids | nonce_d | nonce_a) }
//!   checks proof_a (the acceptor knows the secret)
//!   Auth { proof_d = HMAC(secret, "dial" | ids | nonce_d | nonce_a) } ──>  checks proof_d
//!                                              <── Welcome  (or Reject { reason } at any step)
//! ```
//!
//! Fresh random nonces on both sides make every proof single-use (no replay), and the two labels
//! keep one side's proof from being reflected as the other's. Either side that refuses logs why
//! ("cluster id mismatch", "wrong cluster secret") and, where it can, tells the other, which logs it
//! too. Garbage on the peer port fails the first frame read (size limit or decoding) and only closes
//! that connection.
//!
//! **TLS** (optional, [`crate::tls`]): with `--tls-*` settings every peer connection is first a
//! mutual-TLS session – the dialer checks the acceptor's certificate against the CA and the IP it
//! dialed, the acceptor requires a client certificate from the same CA – and the handshake above
//! runs inside it. A peer then needs both the CA's signature and the cluster secret. Without TLS,
//! peer traffic is authenticated but **not encrypted**: run peers on a trusted network (the default
//! listen address is loopback).

use crate::metrics::Metrics;
use crate::tls::{self, NodeTls};
use crate::wire::{
    self, Frame, Handshake, WireError, MAX_FRAME_BYTES, MAX_HANDSHAKE_FRAME_BYTES, WIRE_VERSION,
};
use crate::Error;
use concord_core::NodeId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Frames queued towards one peer before further frames are dropped.
pub const PEER_QUEUE_FRAMES: usize = 1024;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Peer-port connections still in their handshake at once; more are closed at accept (and counted
/// in `concord_rejected_connections_total{door="peer"}`), so that unauthenticated connections
/// cannot take the descriptors the node keeps for itself (see `crate::front::budget`).
pub const MAX_PENDING_PEER_CONNECTIONS: usize = 32;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Frames written per `write` call at most (batching), in bytes.
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// Who this node is to its peers, and what they must prove.
pub struct Identity {
    pub me: NodeId,
    pub cluster_id: String,
    pub secret: Vec<u8>,
    /// Every known peer and its address: the configured ones, plus any added at run time
    /// ([`Transport::add_peer`]) for a membership change.
    pub peers: RwLock<BTreeMap<NodeId, SocketAddr>>,
    /// Mutual TLS around every peer connection, when configured.
    pub tls: Option<Arc<NodeTls>>,
}

/// A peer connection: plain TCP, or a TLS session over it.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> PeerIo for T {}
pub type PeerStream = Box<dyn PeerIo>;

impl Identity {
    pub fn new(
        me: NodeId,
        cluster_id: String,
        secret: Vec<u8>,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> Identity {
        Identity { me, cluster_id, secret, peers: RwLock::new(peers), tls: None }
    }

    /// Wrap every peer connection in mutual TLS.
    pub fn with_tls(mut self, tls: Arc<NodeTls>) -> Identity {
        self.tls = Some(tls);
        self
    }

    fn knows(&self, peer: NodeId) -> bool {
        self.peers.read().expect("peers lock").contains_key(&peer)
    }
}

/// Where frames from authenticated peers go.
pub trait Inbound: Send + Sync + 'static {
    fn deliver(&self, from: NodeId, frame: Frame);
}

/// The sending half: one bounded queue per peer.
#[derive(Clone)]
pub struct Transport {
    identity: Arc<Identity>,
    queues: Arc<RwLock<BTreeMap<NodeId, mpsc::Sender<Frame>>>>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    /// Fault injection ([`crate::fault_injection`]): while set, every frame to or from a peer is dropped –
    /// a network partition around this node. Connections stay open, as they would behind a
    /// firewall that silently drops packets.
    isolated: Arc<AtomicBool>,
}

impl Transport {
    /// Start one outbound connection task per peer.
    pub fn start(
        identity: Arc<Identity>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Transport {
        let t = Transport {
            identity: identity.clone(),
            queues: Arc::default(),
            metrics,
            shutdown,
            isolated: Arc::default(),
        };
        let peers = identity.peers.read().expect("peers lock").clone();
        for (peer, addr) in peers {
            t.connect(peer, addr);
        }
        t
    }

    fn connect(&self, peer: NodeId, addr: SocketAddr) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE_FRAMES);
        self.queues.write().expect("queues lock").insert(peer, tx);
        let (id, metrics, shutdown) = (self.identity.clone(), self.metrics.clone(), self.shutdown.clone());
        tokio::spawn(outbound(id, peer, addr, rx, metrics, shutdown));
    }

    /// Learn a new peer's address (before a leader adds it to the cluster): accept its
    /// connections and open one to it. Changing a known peer's address is refused.
    pub fn add_peer(&self, peer: NodeId, addr: SocketAddr) -> Result<(), Error> {
        if peer == self.identity.me {
            return Err(Error::Peer(format!("{peer} is this node")));
        }
        {
            let mut peers = self.identity.peers.write().expect("peers lock");
            match peers.get(&peer) {
                Some(a) if *a == addr => return Ok(()),
                Some(a) => return Err(Error::Peer(format!("{peer} is already known at {a}"))),
                None => {
                    peers.insert(peer, addr);
                }
            }
        }
        self.connect(peer, addr);
        tracing::info!("learned peer {peer} at {addr}");
        Ok(())
    }

    /// Partition this node from every peer (fault injection), or heal it. Outbound frames are
    /// dropped here; inbound ones by the node's router, which asks [`Transport::is_isolated`].
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Queue `frame` for `to`. Returns false (and counts a drop) if the queue is full or `to` is
    /// not a configured peer.
    pub fn send(&self, to: NodeId, frame: Frame) -> bool {
        if self.is_isolated() {
            self.metrics.frames_dropped(to.0, 1);
            return false;
        }
        let sent =
            self.queues.read().expect("queues lock").get(&to).is_some_and(|q| q.try_send(frame).is_ok());
        if !sent {
            self.metrics.frames_dropped(to.0, 1);
        }
        sent
    }
}

type HmacSha256 = Hmac<Sha256>;

fn proof_mac(
    id: &Identity,
    label: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    nd: &[u8; 32],
    na: &[u8; 32],
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&id.secret).expect("HMAC takes keys of any length");
    mac.update(b"concord-peer-v1/");
    mac.update(label);
    mac.update(&(id.cluster_id.len() as u32).to_be_bytes());
    mac.update(id.cluster_id.as_bytes());
    mac.update(&dialer.0.to_be_bytes());
    mac.update(&acceptor.0.to_be_bytes());
    mac.update(nd);
    mac.update(na);
    mac
}

fn proof(
    id: &Identity,
    label: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    nd: &[u8; 32],
    na: &[u8; 32],
) -> [u8; 32] {
    proof_mac(id, label, dialer, acceptor, nd, na).finalize().into_bytes().into()
}

/// Constant-time comparison of a received proof.
fn proof_ok(
    id: &Identity,
    label: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    nd: &[u8; 32],
    na: &[u8; 32],
    got: &[u8; 32],
) -> bool {
    proof_mac(id, label, dialer, acceptor, nd, na).verify_slice(got).is_ok()
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    getrandom::getrandom(&mut n).expect("the OS random source works");
    n
}

/// Why a handshake frame could not be read, with the TLS hint when an I/O error carries one.
fn describe_wire(e: WireError) -> String {
    match e {
        WireError::Io(io) => tls::describe(&io),
        e => e.to_string(),
    }
}

/// Dial `peer` (through TLS when configured) and authenticate. Errors are complete sentences for
/// the log.
pub async fn dial(id: &Identity, peer: NodeId, addr: SocketAddr) -> Result<PeerStream, Error> {
    dial_or_why(id, peer, addr).await.map_err(Error::Peer)
}

async fn dial_or_why(id: &Identity, peer: NodeId, addr: SocketAddr) -> Result<PeerStream, String> {
    let fut = async {
        let tcp =
            TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {peer} at {addr}: {e}"))?;
        tcp.set_nodelay(true).ok();
        let mut stream: PeerStream = match &id.tls {
            None => Box::new(tcp),
            Some(tls) => {
                Box::new(tls.peer_connector.connect(tls::server_name(addr), tcp).await.map_err(|e| {
                    format!("TLS handshake with {peer} at {addr} failed: {}", tls::describe(&e))
                })?)
            }
        };
        let nd = nonce();
        let hello = Handshake::Hello {
            version: WIRE_VERSION,
            cluster_id: id.cluster_id.clone(),
            from: id.me,
            to: peer,
            nonce: nd,
        };
        let io_err =
            |e: std::io::Error| format!("handshake with {peer} at {addr} failed: {}", tls::describe(&e));
        wire::write_frame(&mut stream, &hello).await.map_err(io_err)?;
        let mut buf = Vec::new();
        let read_err = |e: WireError| format!("handshake with {peer} at {addr} failed: {}", describe_wire(e));
        let (na, their_proof) = match wire::read_frame(&mut stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES)
            .await
            .map_err(read_err)?
        {
            Handshake::Challenge { nonce, proof } => (nonce, proof),
            Handshake::Reject { reason } => return Err(format!("{peer} at {addr} refused us: {reason}")),
            other => return Err(format!("{peer} at {addr} broke the handshake: sent {other:?}")),
        };
        // Send our proof even if theirs is wrong, so that the acceptor also learns (and logs) that
        // the secrets differ.
        let ours = proof(id, b"dial", id.me, peer, &nd, &na);
        wire::write_frame(&mut stream, &Handshake::Auth { proof: ours }).await.map_err(io_err)?;
        if !proof_ok(id, b"accept", id.me, peer, &nd, &na, &their_proof) {
            return Err(format!(
                "{peer} at {addr} failed authentication: wrong cluster secret (its proof does not match ours)"
            ));
        }
        match wire::read_frame(&mut stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await.map_err(read_err)? {
            Handshake::Welcome => Ok(stream),
            Handshake::Reject { reason } => Err(format!("{peer} at {addr} refused us: {reason}")),
            other => Err(format!("{peer} at {addr} broke the handshake: sent {other:?}")),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut).await.unwrap_or_else(|_| {
        Err(format!("handshake with {peer} at {addr} timed out after {HANDSHAKE_TIMEOUT:?}"))
    })
}

/// Run the acceptor's side of the handshake (on a TLS session already, when configured). Returns
/// the authenticated peer.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    id: &Identity,
    stream: &mut S,
    remote: SocketAddr,
) -> Result<NodeId, String> {
    let fut = async {
        let mut buf = Vec::new();
        let first = wire::read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES)
            .await
            .map_err(|e| format!("peer connection from {remote} rejected: {}", describe_wire(e)))?;
        let Handshake::Hello { version, cluster_id, from, to, nonce: nd } = first else {
            return Err(format!("peer connection from {remote} rejected: expected Hello, got {first:?}"));
        };
        let refusal = if version != WIRE_VERSION {
            Some(format!("wire version {version} is not ours ({WIRE_VERSION})"))
        } else if cluster_id != id.cluster_id {
            Some(format!(
                "cluster id mismatch: this node belongs to cluster {:?}, the dialer to {cluster_id:?}",
                id.cluster_id
            ))
        } else if to != id.me {
            Some(format!("this is node {}, not {to}", id.me))
        } else if !id.knows(from) {
            Some(format!("{from} is not a configured peer of {}", id.me))
        } else {
            None
        };
        if let Some(reason) = refusal {
            let _ = wire::write_frame(stream, &Handshake::Reject { reason: reason.clone() }).await;
            return Err(format!("peer connection from {remote} (claiming {from}) rejected: {reason}"));
        }
        let na = nonce();
        let ours = proof(id, b"accept", from, id.me, &nd, &na);
        wire::write_frame(stream, &Handshake::Challenge { nonce: na, proof: ours })
            .await
            .map_err(|e| format!("handshake with {remote} failed: {e}"))?;
        let theirs = match wire::read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES)
            .await
            .map_err(|e| format!("handshake with {from} at {remote} failed: {e}"))?
        {
            Handshake::Auth { proof } => proof,
            other => return Err(format!("{from} at {remote} broke the handshake: sent {other:?}")),
        };
        if !proof_ok(id, b"dial", from, id.me, &nd, &na, &theirs) {
            let reason = "wrong cluster secret".to_string();
            let _ = wire::write_frame(stream, &Handshake::Reject { reason: reason.clone() }).await;
            return Err(format!("peer connection from {remote} (claiming {from}) rejected: {reason}"));
        }
        wire::write_frame(stream, &Handshake::Welcome)
            .await
            .map_err(|e| format!("handshake with {from} at {remote} failed: {e}"))?;
        Ok(from)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(format!("handshake with {remote} timed out after {HANDSHAKE_TIMEOUT:?}")))
}

/// Accept peer connections until shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    id: Arc<Identity>,
    inbound: Arc<dyn Inbound>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_PEER_CONNECTIONS));
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("peer accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(handshaking) = pending.clone().try_acquire_owned() else {
            metrics.rejected_connection("peer", "max_handshakes");
            continue;
        };
        tcp.set_nodelay(true).ok();
        let (id, inbound, metrics, mut shutdown) =
            (id.clone(), inbound.clone(), metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut stream: PeerStream = match &id.tls {
                None => Box::new(tcp),
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.peer_acceptor.accept(tcp)).await {
                        Ok(Ok(session)) => Box::new(session),
                        Ok(Err(e)) => {
                            metrics.peer_handshake_failures.inc();
                            tracing::warn!(
                                "peer connection from {remote} rejected: TLS handshake failed: {}",
                                tls::describe(&e)
                            );
                            return;
                        }
                        Err(_) => {
                            metrics.peer_handshake_failures.inc();
                            tracing::warn!(
                            "peer connection from {remote} rejected: no TLS handshake within {HANDSHAKE_TIMEOUT:?}"
                        );
                            return;
                        }
                    }
                }
            };
            let from = match accept_handshake(&id, &mut stream, remote).await {
                Ok(from) => from,
                Err(e) => {
                    metrics.peer_handshake_failures.inc();
                    tracing::warn!("{e}");
                    return;
                }
            };
            drop(handshaking);
            tracing::debug!("{from} connected from {remote}");
            let mut buf = Vec::new();
            loop {
                let frame = tokio::select! {
                    f = wire::read_frame::<_, Frame>(&mut stream, &mut buf, MAX_FRAME_BYTES) => f,
                    _ = shutdown.changed() => return,
                };
                match frame {
                    Ok(frame) => inbound.deliver(from, frame),
                    Err(WireError::Closed) => {
                        tracing::debug!("{from} at {remote} closed its connection");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("dropping connection from {from} at {remote}: {e}");
                        return;
                    }
                }
            }
        });
    }
}

/// One peer's outbound connection: dial, write queued frames, reconnect with back-off.
async fn outbound(
    id: Arc<Identity>,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Frame>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        let connected = tokio::select! {
            r = dial_or_why(&id, peer, addr) => r,
            _ = shutdown.changed() => return,
        };
        match connected {
            Ok(mut stream) => {
                if last_error.take().is_some() {
                    tracing::info!("connected to {peer} at {addr}");
                }
                backoff = BACKOFF_MIN;
                let mut buf = Vec::new();
                loop {
                    let first = tokio::select! {
                        f = rx.recv() => match f { Some(f) => f, None => return },
                        _ = shutdown.changed() => { let _ = stream.shutdown().await; return }
                    };
                    buf.clear();
                    let mut frames = 1u64;
                    wire::encode_into(&first, &mut buf);
                    while buf.len() < WRITE_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(f) => {
                                wire::encode_into(&f, &mut buf);
                                frames += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    // (A TLS session may hold written bytes until flushed.)
                    let written = async {
                        stream.write_all(&buf).await?;
                        stream.flush().await
                    };
                    if let Err(e) = written.await {
                        metrics.frames_dropped(peer.0, frames);
                        tracing::info!("connection to {peer} at {addr} lost: {e}");
                        last_error = Some(e.to_string());
                        break;
                    }
                    for _ in 0..frames {
                        metrics.frame_sent(peer.0);
                    }
                }
            }
            Err(e) => {
                if e.contains("refused us") || e.contains("authentication") || e.contains("TLS") {
                    metrics.peer_handshake_failures.inc();
                }
                // Log each new kind of failure once at warn; repeats of the same go to debug, so a
                // peer that is down for an hour does not flood the log.
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!("{e} (retrying with back-off)");
                } else {
                    tracing::debug!("{e}");
                }
                last_error = Some(e);
            }
        }
        // Frames for an unreachable peer are stale by the time it is back: drop them (Raft resends).
        let mut dropped = 0;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            metrics.frames_dropped(peer.0, dropped);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(me: u32, cluster: &str, secret: &str, peer: (u32, SocketAddr)) -> Identity {
        Identity::new(
            NodeId(me),
            cluster.into(),
            secret.as_bytes().to_vec(),
            [(NodeId(peer.0), peer.1)].into_iter().collect(),
        )
    }

    /// Run one handshake between a dialer and an acceptor; return both sides' results.
    async fn handshake(dialer: Identity, acceptor: Identity) -> (Result<(), String>, Result<NodeId, String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (mut s, remote) = listener.accept().await.unwrap();
            accept_handshake(&acceptor, &mut s, remote).await
        });
        let dialed = dial(&dialer, NodeId(2), addr).await.map(|_| ()).map_err(String::from);
        (dialed, accept.await.unwrap())
    }

    #[tokio::test]
    async fn matching_peers_authenticate_each_other() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (d, acc) = handshake(identity(1, "c", "s", (2, a)), identity(2, "c", "s", (1, a))).await;
        assert_eq!(d, Ok(()));
        assert_eq!(acc, Ok(NodeId(1)));
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_on_both_sides() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (d, acc) = handshake(identity(1, "c", "wrong", (2, a)), identity(2, "c", "s", (1, a))).await;
        assert!(d.unwrap_err().contains("wrong cluster secret"));
        assert!(acc.unwrap_err().contains("wrong cluster secret"));
    }

    #[tokio::test]
    async fn another_cluster_is_refused_on_both_sides() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (d, acc) = handshake(identity(1, "other", "s", (2, a)), identity(2, "c", "s", (1, a))).await;
        assert!(d.unwrap_err().contains("cluster id mismatch"));
        assert!(acc.unwrap_err().contains("cluster id mismatch"));
    }

    #[tokio::test]
    async fn unknown_node_and_garbage_are_refused() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (d, acc) = handshake(identity(7, "c", "s", (2, a)), identity(2, "c", "s", (1, a))).await;
        assert!(d.unwrap_err().contains("not a configured peer"));
        assert!(acc.is_err());

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let id = identity(2, "c", "s", (1, a));
        let accept = tokio::spawn(async move {
            let (mut s, remote) = listener.accept().await.unwrap();
            accept_handshake(&id, &mut s, remote).await
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let err = accept.await.unwrap().unwrap_err();
        assert!(err.contains("something other than a concord node"), "{err}");
    }
}

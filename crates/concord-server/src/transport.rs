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
//! **Handshake** (wire version 3; mutual HMAC-SHA256 challenge-response over the shared cluster
//! secret, which never crosses the wire). The dialer proves first, and the acceptor reveals nothing
//! – not its cluster id, not which node ids exist, not a proof – before that proof verifies:
//!
//! ```text
//!   dialer                                              acceptor
//!   Hello { version, cluster_id, from, to, nonce_d } ──>  a wrong version or garbage: Reject("refused")
//!                                <── Challenge { nonce_a }   (always the same shape: a fresh nonce, nothing else)
//!   Auth { inc_d, proof_d = HMAC(secret, "dial" | ids | nonce_d | nonce_a | inc_d) } ──>
//!                                                       checks, in its own terms, the cluster id, that it is
//!                                                       `to`, that `from` is a configured peer, and proof_d;
//!                                                       any failure: Reject("refused");
//!                                                       then inc_d against the incarnation it knows for `from`:
//!           <── Stale { HMAC(secret, "stale" | ids | nonces | inc_d) }   if another one, for a voter
//!           <── Welcome { inc_a, proof_a = HMAC(secret, "accept" | ids | nonces | inc_d | inc_a) }
//!   checks proof_a (the acceptor knows the secret too), then inc_a against the incarnation it knows
//!   for `to`
//! ```
//!
//! `inc_d` and `inc_a` are the two data directories' incarnations ([`crate::incarnation`]): a peer
//! that presents another one than this node recorded for a voter id – a data directory wiped whole
//! and restarted under its old id – is refused on either side of the handshake, so it can neither
//! vote, nor ask for votes, nor append.
//!
//! `ids` are the acceptor's cluster id, the dialer's and the acceptor's node ids, so a proof for
//! another cluster, another pair of nodes or another version (the MAC's label names it) does not
//! verify. Fresh random nonces on both sides make every proof single-use (no replay), and the two
//! labels keep one side's proof from being reflected as the other's.
//!
//! **What a stranger learns.** Before the dialer's proof verifies, every refusal is the same
//! bytes – [`crate::wire::REFUSAL`] – whatever the reason, and the acceptor never sends a proof, so
//! a captured exchange gives nothing to test guessed secrets against offline unless the guesser
//! already produced a valid proof. The precise reason ("cluster id mismatch", "wrong cluster secret",
//! "not a configured peer") goes only to the acceptor's own log, rate-limited per source address
//! and reason ([`crate::log_limit`]), and is counted in `concord_peer_handshake_rejected_total{reason}`.
//! A misconfigured dialer therefore logs only that it was refused and where to look: the
//! acceptor's log.
//!
//! **TLS** (optional, [`crate::tls`]): with `--tls-*` settings every peer connection is first a
//! mutual-TLS session – the dialer checks the acceptor's certificate against the CA and the IP it
//! dialed, the acceptor requires a client certificate from the same CA – and the handshake above
//! runs inside it. A peer then needs both the CA's signature and the cluster secret. Without TLS,
//! peer traffic is authenticated but **not encrypted**: run peers on a trusted network (the default
//! listen address is loopback).

use crate::incarnation::{CheckError, Incarnation, PeerBook};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::tls::{self, NodeTls};
use crate::wire::{
    self, Frame, Handshake, WireError, MAX_FRAME_BYTES, MAX_HANDSHAKE_FRAME_BYTES, REFUSAL, WIRE_VERSION,
};
use crate::Error;
use concord_core::NodeId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
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
    /// This node's data directory's incarnation, presented in every handshake.
    pub incarnation: Incarnation,
    /// The incarnations this node has seen for its peers (`None`: every one is accepted – tests
    /// and in-memory nodes).
    pub book: Option<Arc<PeerBook>>,
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
        Identity {
            me,
            cluster_id,
            secret,
            peers: RwLock::new(peers),
            tls: None,
            incarnation: Incarnation::random(),
            book: None,
        }
    }

    /// Present `incarnation` and check peers' against `book` (see [`crate::incarnation`]).
    pub fn with_incarnation(mut self, incarnation: Incarnation, book: Arc<PeerBook>) -> Identity {
        self.incarnation = incarnation;
        self.book = Some(book);
        self
    }

    /// Check a peer's incarnation against the book (accepted when there is none).
    fn check_incarnation(&self, peer: NodeId, presented: [u8; 16]) -> Result<(), CheckError> {
        match &self.book {
            Some(book) => book.check(peer, Incarnation(presented)),
            None => Ok(()),
        }
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
    /// Peers whose outbound connection is up now: dialled, handshake done, and no write failed
    /// since ([`Transport::is_connected`]).
    up: Arc<RwLock<BTreeSet<NodeId>>>,
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
            up: Arc::default(),
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
        let up = Link { peer, up: self.up.clone() };
        tokio::spawn(outbound(id, peer, addr, rx, metrics, shutdown, up));
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

    /// Whether this node's connection to `peer` is up: dialled and authenticated, not closed by
    /// the peer, its last write went through, and the node is not isolated by fault injection. A
    /// peer that died is seen when the connection ends (its kernel closes it), or at the next
    /// failed write; a peer that cannot be dialled at once. What `CLUSTER NODES` calls `connected`.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        !self.is_isolated() && self.up.read().expect("up lock").contains(&peer)
    }

    /// Every peer this node sends to (the configured ones and those learned since), in id order.
    pub fn peer_ids(&self) -> Vec<NodeId> {
        self.queues.read().expect("queues lock").keys().copied().collect()
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

/// What a proof covers beyond the ids: both nonces, and the incarnations said so far.
struct Covered<'a> {
    nd: &'a [u8; 32],
    na: &'a [u8; 32],
    incarnations: &'a [[u8; 16]],
}

fn proof_mac(id: &Identity, label: &[u8], dialer: NodeId, acceptor: NodeId, c: &Covered<'_>) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&id.secret).expect("HMAC takes keys of any length");
    mac.update(b"concord-peer-v3/");
    mac.update(label);
    mac.update(&(id.cluster_id.len() as u32).to_be_bytes());
    mac.update(id.cluster_id.as_bytes());
    mac.update(&dialer.0.to_be_bytes());
    mac.update(&acceptor.0.to_be_bytes());
    mac.update(c.nd);
    mac.update(c.na);
    for incarnation in c.incarnations {
        mac.update(incarnation);
    }
    mac
}

fn proof(id: &Identity, label: &[u8], dialer: NodeId, acceptor: NodeId, c: &Covered<'_>) -> [u8; 32] {
    proof_mac(id, label, dialer, acceptor, c).finalize().into_bytes().into()
}

/// Constant-time comparison of a received proof.
fn proof_ok(
    id: &Identity,
    label: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    c: &Covered<'_>,
    got: &[u8; 32],
) -> bool {
    proof_mac(id, label, dialer, acceptor, c).verify_slice(got).is_ok()
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
        let refused = || {
            format!(
                "{peer} at {addr} refused us: a different cluster secret or cluster id, a node id it does not \
                 know, or another concord version (it does not tell a stranger which: its own log says)"
            )
        };
        let na = match wire::read_frame(&mut stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES)
            .await
            .map_err(read_err)?
        {
            Handshake::Challenge { nonce } => nonce,
            Handshake::Reject { reason } if reason == REFUSAL => return Err(refused()),
            // A version-1 node says why in its own words.
            Handshake::Reject { reason } => return Err(format!("{peer} at {addr} refused us: {reason}")),
            other => return Err(format!("{peer} at {addr} broke the handshake: sent {other:?}")),
        };
        let inc_d = id.incarnation.0;
        let dial_covers = Covered { nd: &nd, na: &na, incarnations: &[inc_d] };
        let ours = proof(id, b"dial", id.me, peer, &dial_covers);
        wire::write_frame(&mut stream, &Handshake::Auth { proof: ours, incarnation: inc_d })
            .await
            .map_err(io_err)?;
        match wire::read_frame(&mut stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await.map_err(read_err)? {
            Handshake::Welcome { proof: theirs, incarnation: inc_a }
                if proof_ok(
                    id,
                    b"accept",
                    id.me,
                    peer,
                    &Covered { nd: &nd, na: &na, incarnations: &[inc_d, inc_a] },
                    &theirs,
                ) =>
            {
                match id.check_incarnation(peer, inc_a) {
                    Ok(()) => {}
                    Err(CheckError::Stale(stale)) => {
                        return Err(format!("refusing the connection to {peer} at {addr}: {stale}"))
                    }
                    Err(CheckError::Storage(e)) => {
                        return Err(format!("cannot record {peer}'s incarnation, so not connecting to it: {e}"))
                    }
                }
                if let Some(book) = &id.book {
                    book.accepted_us(peer);
                }
                Ok(stream)
            }
            Handshake::Welcome { .. } => Err(format!(
                "{peer} at {addr} failed authentication: wrong cluster secret (its proof does not match ours)"
            )),
            Handshake::Stale { proof: theirs } if proof_ok(id, b"stale", id.me, peer, &dial_covers, &theirs) => {
                Err(format!(
                    "{peer} at {addr} refused us: it knows this node's id ({me}) under another incarnation than this                      data directory's ({inc}). This data directory is not the one node {me} had – wiped or                      replaced – so this node forgot its term, its vote and the entries it acknowledged, and its                      peers refuse it (it takes no part in elections or replication). Rebuild it from its peers:                      stop this node, then run `concord member rebuild --via <HTTP address of another member>`                      with the same flags as this node (docs/operations.md, \"Repair\")",
                    me = id.me,
                    inc = id.incarnation,
                ))
            }
            Handshake::Reject { .. } | Handshake::Stale { .. } => Err(refused()),
            other => Err(format!("{peer} at {addr} broke the handshake: sent {other:?}")),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut).await.unwrap_or_else(|_| {
        Err(format!("handshake with {peer} at {addr} timed out after {HANDSHAKE_TIMEOUT:?}"))
    })
}

/// Why the acceptor refused a peer connection: a short, fixed `reason` (the label of
/// `concord_peer_handshake_rejected_total` and the rate limiter's key) and the full sentence for
/// the acceptor's own log. The dialer is told neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Every `reason` a [`Rejection`] can carry (a bounded label set for the metric).
pub const REJECTION_REASONS: [&str; 11] = [
    "malformed",
    "closed",
    "timeout",
    "tls",
    "version",
    "cluster_id",
    "node_id",
    "unknown_peer",
    "secret",
    "incarnation",
    "storage",
];

/// Run the acceptor's side of the handshake (on a TLS session already, when configured). Returns
/// the authenticated peer. Every refusal sent is [`REFUSAL`]; see the module docs.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    id: &Identity,
    stream: &mut S,
    remote: SocketAddr,
) -> Result<NodeId, Rejection> {
    let reject = |reason: &'static str, why: String| Rejection {
        reason,
        detail: format!("peer connection from {remote} rejected: {why}"),
    };
    let read_failed = |e: WireError| match e {
        WireError::Closed => reject("closed", "it closed the connection during the handshake".into()),
        WireError::Io(io) => reject("closed", format!("handshake failed: {}", tls::describe(&io))),
        e => reject("malformed", e.to_string()),
    };
    let fut = async {
        let mut buf = Vec::new();
        let refuse = Handshake::Reject { reason: REFUSAL.into() };
        let first = match wire::read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await {
            Ok(first) => first,
            Err(e) => {
                let _ = wire::write_frame(stream, &refuse).await;
                return Err(read_failed(e));
            }
        };
        let Handshake::Hello { version, cluster_id, from, to, nonce: nd } = first else {
            let _ = wire::write_frame(stream, &refuse).await;
            return Err(reject("malformed", format!("expected Hello, got {first:?}")));
        };
        if version != WIRE_VERSION {
            // Versions are public: refusing here reveals nothing, and an older dialer could not
            // read a Challenge anyway.
            let _ = wire::write_frame(stream, &refuse).await;
            return Err(reject(
                "version",
                format!("{from} speaks wire version {version}, this node {WIRE_VERSION} (run the same concord version)"),
            ));
        }
        // Whatever the Hello claimed, the same Challenge: the answer to a wrong cluster id or an
        // unknown node id must look like the answer to a right one.
        let na = nonce();
        wire::write_frame(stream, &Handshake::Challenge { nonce: na })
            .await
            .map_err(|e| reject("closed", format!("handshake failed: {e}")))?;
        let (theirs, inc_d) = match wire::read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await {
            Ok(Handshake::Auth { proof, incarnation }) => (proof, incarnation),
            Ok(other) => {
                let _ = wire::write_frame(stream, &refuse).await;
                return Err(reject("malformed", format!("expected Auth, got {other:?}")));
            }
            Err(e) => {
                let _ = wire::write_frame(stream, &refuse).await;
                return Err(read_failed(e));
            }
        };
        // The proof is checked against this node's own cluster id and id, so a dialer that claims
        // another cluster fails here too; the claims only say, in this node's log, what is wrong.
        let dial_covers = Covered { nd: &nd, na: &na, incarnations: &[inc_d] };
        let proof_verified = proof_ok(id, b"dial", from, id.me, &dial_covers, &theirs);
        let refusal = if cluster_id != id.cluster_id {
            Some(reject(
                "cluster_id",
                format!(
                    "cluster id mismatch: this node belongs to cluster {:?}, the dialer (claiming {from}) to {cluster_id:?}",
                    id.cluster_id
                ),
            ))
        } else if to != id.me {
            Some(reject(
                "node_id",
                format!("the dialer (claiming {from}) wants node {to}; this is node {}", id.me),
            ))
        } else if !id.knows(from) {
            Some(reject("unknown_peer", format!("{from} is not a configured peer of {}", id.me)))
        } else if !proof_verified {
            Some(reject("secret", format!("wrong cluster secret (the dialer claimed to be {from})")))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let _ = wire::write_frame(stream, &refuse).await;
            return Err(refusal);
        }
        // Authenticated: now (and only now) its incarnation may be recorded or refused. A refused
        // dialer holds the secret, so it is told why, with a proof that it is this node telling.
        match id.check_incarnation(from, inc_d) {
            Ok(()) => {}
            Err(CheckError::Stale(stale)) => {
                let ours = proof(id, b"stale", from, id.me, &dial_covers);
                let _ = wire::write_frame(stream, &Handshake::Stale { proof: ours }).await;
                return Err(reject("incarnation", stale.to_string()));
            }
            Err(CheckError::Storage(e)) => {
                let _ = wire::write_frame(stream, &refuse).await;
                return Err(reject("storage", format!("cannot record {from}'s incarnation: {e}")));
            }
        }
        let inc_a = id.incarnation.0;
        let ours =
            proof(id, b"accept", from, id.me, &Covered { nd: &nd, na: &na, incarnations: &[inc_d, inc_a] });
        wire::write_frame(stream, &Handshake::Welcome { proof: ours, incarnation: inc_a })
            .await
            .map_err(|e| reject("closed", format!("handshake with {from} failed: {e}")))?;
        Ok(from)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(reject("timeout", format!("no handshake within {HANDSHAKE_TIMEOUT:?}"))))
}

/// A refused or failed inbound handshake: counted, and logged through the limiter.
fn rejected(metrics: &Metrics, limiter: &LogLimiter, remote: SocketAddr, rejection: &Rejection) {
    metrics.peer_handshake_failures.inc();
    metrics.handshake_rejected(rejection.reason);
    limiter.warn(remote.ip(), "peer", rejection.reason, rejection);
}

/// Accept peer connections until shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    id: Arc<Identity>,
    inbound: Arc<dyn Inbound>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop_with(listener, id, inbound, metrics, shutdown, Arc::new(LogLimiter::default())).await
}

/// [`accept_loop`] with the given log limiter (tests use a short interval, and count).
pub async fn accept_loop_with(
    listener: TcpListener,
    id: Arc<Identity>,
    inbound: Arc<dyn Inbound>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    limiter: Arc<LogLimiter>,
) {
    let unspecified = std::net::IpAddr::from([0u8; 4]);
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_PEER_CONNECTIONS));
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // E.g. out of file descriptors: wait a little instead of spinning, and say it
                    // once per interval, not 20 times a second.
                    limiter.warn(unspecified, "peer", "accept", format!("peer accept failed: {e}"));
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
        let (id, inbound, metrics, mut shutdown, limiter) =
            (id.clone(), inbound.clone(), metrics.clone(), shutdown.clone(), limiter.clone());
        tokio::spawn(async move {
            let mut stream: PeerStream = match &id.tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let why =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.peer_acceptor.accept(tcp)).await {
                            Ok(Ok(session)) => Ok(session),
                            Ok(Err(e)) => Err((
                                tls::failure_kind(&e),
                                format!("TLS handshake failed: {}", tls::describe(&e)),
                            )),
                            Err(_) => {
                                Err(("tls_timeout", format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")))
                            }
                        };
                    match why {
                        Ok(session) => Box::new(session),
                        Err((kind, why)) => {
                            // Counted as `tls`; logged once per kind of TLS failure.
                            metrics.peer_handshake_failures.inc();
                            metrics.handshake_rejected("tls");
                            let detail = format!("peer connection from {remote} rejected: {why}");
                            limiter.warn(remote.ip(), "peer", kind, detail);
                            return;
                        }
                    }
                }
            };
            let from = match accept_handshake(&id, &mut stream, remote).await {
                Ok(from) => from,
                Err(rejection) => {
                    rejected(&metrics, &limiter, remote, &rejection);
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

/// One peer's entry in [`Transport`]'s set of connections that are up.
struct Link {
    peer: NodeId,
    up: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl Link {
    fn set(&self, up: bool) {
        let mut set = self.up.write().expect("up lock");
        if up {
            set.insert(self.peer);
        } else {
            set.remove(&self.peer);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.set(false);
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
    link: Link,
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
                link.set(true);
                let mut buf = Vec::new();
                // The acceptor never writes on this connection after the handshake: a read that
                // ends is the peer gone (its process died, or it closed the connection). Watching
                // for it tells `is_connected` at once, also when there is nothing to send.
                let mut closed = [0u8; 1];
                loop {
                    let first = tokio::select! {
                        f = rx.recv() => match f { Some(f) => f, None => return },
                        _ = shutdown.changed() => { let _ = stream.shutdown().await; return }
                        read = tokio::io::AsyncReadExt::read(&mut stream, &mut closed) => match read {
                            Ok(n) if n > 0 => continue, // not sent by this version's peers: ignored
                            gone => {
                                let why = gone.map_or_else(|e| e.to_string(), |_| "closed by the peer".into());
                                link.set(false);
                                tracing::info!("connection to {peer} at {addr} lost: {why}");
                                last_error = Some(why);
                                break;
                            }
                        }
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
                        link.set(false);
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
                link.set(false);
                if e.contains("refused us")
                    || e.contains("authentication")
                    || e.contains("TLS")
                    || e.contains("incarnation")
                {
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
    async fn handshake(
        dialer: Identity,
        acceptor: Identity,
    ) -> (Result<(), String>, Result<NodeId, Rejection>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (mut s, remote) = listener.accept().await.unwrap();
            accept_handshake(&acceptor, &mut s, remote).await
        });
        let dialed = dial(&dialer, NodeId(2), addr).await.map(|_| ()).map_err(String::from);
        (dialed, accept.await.unwrap())
    }

    fn reason(r: Result<NodeId, Rejection>) -> &'static str {
        r.unwrap_err().reason
    }

    #[tokio::test]
    async fn matching_peers_authenticate_each_other() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (d, acc) = handshake(identity(1, "c", "s", (2, a)), identity(2, "c", "s", (1, a))).await;
        assert_eq!(d, Ok(()));
        assert_eq!(acc, Ok(NodeId(1)));
    }

    /// A book in which nodes 1 and 2 are voters and `known` are the incarnations seen so far.
    fn book(me: u32, known: &[(u32, u8)]) -> Arc<PeerBook> {
        let book = PeerBook::in_memory(NodeId(me), true);
        book.set_membership(&[NodeId(1), NodeId(2)].into(), &Default::default()).unwrap();
        for &(peer, inc) in known {
            book.check(NodeId(peer), Incarnation([inc; 16])).unwrap();
        }
        Arc::new(book)
    }

    fn with(id: Identity, incarnation: u8, book: &Arc<PeerBook>) -> Identity {
        id.with_incarnation(Incarnation([incarnation; 16]), book.clone())
    }

    /// A wiped node 1 (incarnation 9) dials node 2, which knows node 1 as incarnation 1: refused,
    /// with a reason only a holder of the secret could send, and node 2 keeps its record.
    #[tokio::test]
    async fn a_voter_under_another_incarnation_is_refused_by_the_acceptor() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (dialer_book, acceptor_book) = (book(1, &[]), book(2, &[(1, 1)]));
        let (d, acc) = handshake(
            with(identity(1, "c", "s", (2, a)), 9, &dialer_book),
            with(identity(2, "c", "s", (1, a)), 2, &acceptor_book),
        )
        .await;
        let d = d.unwrap_err();
        assert!(d.contains("under another incarnation") && d.contains("concord member rebuild"), "{d}");
        let acc = acc.unwrap_err();
        assert_eq!(acc.reason, "incarnation");
        assert!(acc.detail.contains(&Incarnation([9; 16]).to_hex()), "{acc}");
        assert!(acc.detail.contains("concord member rebuild") && acc.detail.contains("--id 1"), "{acc}");
        assert_eq!(acceptor_book.known(NodeId(1)), Some(Incarnation([1; 16])), "the record stays");
        assert!(!dialer_book.may_vote(), "the refused node was not accepted: it may not vote");
    }

    /// Node 1 dials a wiped node 2 (incarnation 9) that it knows as incarnation 2: the dialer
    /// refuses the connection after the acceptor's Welcome.
    #[tokio::test]
    async fn a_voter_under_another_incarnation_is_refused_by_the_dialer() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let dialer_book = book(1, &[(2, 2)]);
        let (d, acc) = handshake(
            with(identity(1, "c", "s", (2, a)), 1, &dialer_book),
            with(identity(2, "c", "s", (1, a)), 9, &book(2, &[])),
        )
        .await;
        let d = d.unwrap_err();
        assert!(
            d.contains("refusing the connection to n2") && d.contains("n2's data directory was wiped"),
            "{d}"
        );
        assert!(acc.is_ok(), "the acceptor saw a valid dialer");
        assert_eq!(dialer_book.known(NodeId(2)), Some(Incarnation([2; 16])));
    }

    /// First contact records both sides' incarnations and counts for the vote rule; the same
    /// incarnations are accepted again.
    #[tokio::test]
    async fn first_contact_is_trusted_and_recorded_on_both_sides() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (b1, b2) = (book(1, &[]), book(2, &[]));
        for _ in 0..2 {
            let (d, acc) = handshake(
                with(identity(1, "c", "s", (2, a)), 1, &b1),
                with(identity(2, "c", "s", (1, a)), 2, &b2),
            )
            .await;
            assert_eq!(d, Ok(()));
            assert_eq!(acc, Ok(NodeId(1)));
        }
        assert_eq!(b1.known(NodeId(2)), Some(Incarnation([2; 16])));
        assert_eq!(b2.known(NodeId(1)), Some(Incarnation([1; 16])));
        assert!(b1.may_vote(), "node 2 accepted node 1: with itself, a majority of two voters");
    }

    /// A forged incarnation (a proof made for another one) does not verify.
    #[tokio::test]
    async fn the_incarnation_is_covered_by_the_proof() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let id = identity(1, "c", "s", (2, a));
        let (nd, na) = ([1; 32], [2; 32]);
        let good = proof(
            &id,
            b"dial",
            NodeId(1),
            NodeId(2),
            &Covered { nd: &nd, na: &na, incarnations: &[[1; 16]] },
        );
        let other = Covered { nd: &nd, na: &na, incarnations: &[[9; 16]] };
        assert!(!proof_ok(&id, b"dial", NodeId(1), NodeId(2), &other, &good));
    }

    /// The dialer learns only that it was refused; the acceptor's log says why.
    #[tokio::test]
    async fn misconfigured_dialers_are_refused_and_only_the_acceptor_knows_why() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for (dialer, why) in [
            (identity(1, "c", "wrong", (2, a)), "secret"),
            (identity(1, "other", "s", (2, a)), "cluster_id"),
            (identity(7, "c", "s", (2, a)), "unknown_peer"),
        ] {
            let (d, acc) = handshake(dialer, identity(2, "c", "s", (1, a))).await;
            let d = d.unwrap_err();
            assert!(d.contains("refused us") && d.contains("its own log says"), "{d}");
            assert!(
                !d.contains("cluster id mismatch") && !d.contains("\"c\""),
                "the dialer learns nothing: {d}"
            );
            assert_eq!(reason(acc), why);
        }
    }

    #[tokio::test]
    async fn garbage_is_refused_as_malformed() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
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
        assert_eq!(err.reason, "malformed");
        assert!(err.detail.contains("something other than a concord node"), "{err}");
    }

    /// Play a dialer by hand: send `hello` (raw bytes), and if a Challenge comes back, an `Auth`
    /// with a made-up proof. Returns every byte the acceptor sent until it closed.
    async fn forge(acceptor: Identity, hello: Vec<u8>) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (mut s, remote) = listener.accept().await.unwrap();
            let r = accept_handshake(&acceptor, &mut s, remote).await;
            drop(s);
            r
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let first: Result<Handshake, _> = wire::read_frame(&mut s, &mut buf, MAX_HANDSHAKE_FRAME_BYTES).await;
        let first = first.unwrap();
        wire::encode_into(&first, &mut got);
        if let Handshake::Challenge { .. } = first {
            // The challenge is a nonce and nothing else: 4 bytes of length, 1 of variant, 32 of nonce.
            assert_eq!(got.len(), 4 + 1 + 32, "the challenge carries no proof and no ids");
            wire::write_frame(&mut s, &Handshake::Auth { proof: [0x42; 32], incarnation: [0; 16] })
                .await
                .unwrap();
        }
        // Garbage the acceptor did not read makes its close a reset, after the refusal.
        match s.read_to_end(&mut got).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{e}"),
        }
        assert!(accept.await.unwrap().is_err(), "a forged handshake is never accepted");
        got
    }

    #[tokio::test]
    async fn forged_handshakes_get_one_refusal_that_reveals_nothing() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cluster = "secret-cluster-name";
        let acceptor = || identity(2, cluster, "s", (1, a));
        let hello = |version: u32, cluster_id: &str, from: u32, to: u32| {
            let mut bytes = Vec::new();
            let h = Handshake::Hello {
                version,
                cluster_id: cluster_id.into(),
                from: NodeId(from),
                to: NodeId(to),
                nonce: [1; 32],
            };
            wire::encode_into(&h, &mut bytes);
            bytes
        };
        let mut refusal = Vec::new();
        wire::encode_into(&Handshake::Reject { reason: REFUSAL.into() }, &mut refusal);

        // Refused at once: garbage, an oversized frame, a frame that does not decode, an old version.
        for forged in [
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
            hello(1, cluster, 1, 2),
            hello(WIRE_VERSION - 1, cluster, 1, 2),
        ] {
            assert_eq!(forge(acceptor(), forged).await, refusal);
        }
        // Challenged, then refused after the (made-up) proof: a wrong cluster id, a wrong target,
        // an unknown dialer – and the right ids with a wrong proof. Every case gets the same
        // Challenge shape and the same refusal: a stranger cannot tell a right guess of the
        // cluster id or of a node id from a wrong one, and never sees a proof to test secrets on.
        for forged in [
            hello(WIRE_VERSION, "guess", 1, 2),
            hello(WIRE_VERSION, cluster, 1, 9),
            hello(WIRE_VERSION, cluster, 9, 2),
            hello(WIRE_VERSION, cluster, 1, 2),
        ] {
            let got = forge(acceptor(), forged).await;
            assert_eq!(&got[37..], &refusal[..], "after the challenge: the refusal and nothing else");
            assert!(!got.windows(cluster.len()).any(|w| w == cluster.as_bytes()), "no cluster id in {got:?}");
        }
    }

    /// 10 000 bad connections make a bounded number of log lines, and are all counted.
    #[tokio::test]
    async fn ten_thousand_bad_connections_log_a_bounded_number_of_lines() {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Lines::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        // A thread-local subscriber: this test's runtime runs every task on this thread.
        let _guard = tracing::subscriber::set_default(subscriber);

        struct Nowhere;
        impl Inbound for Nowhere {
            fn deliver(&self, _: NodeId, _: Frame) {}
        }
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (_stop, shutdown) = watch::channel(false);
        let limiter = Arc::new(LogLimiter::new(Duration::from_secs(3600), 64));
        tokio::spawn(accept_loop_with(
            listener,
            Arc::new(identity(2, "c", "s", (1, a))),
            Arc::new(Nowhere),
            metrics.clone(),
            shutdown,
            limiter,
        ));
        const CONNECTIONS: u64 = 10_000;
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let workers: Vec<_> = (0..32)
            .map(|_| {
                let sent = sent.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    while sent.fetch_add(1, Ordering::SeqCst) < CONNECTIONS {
                        let mut s = TcpStream::connect(addr).await.unwrap();
                        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
                        let mut sink = Vec::new();
                        let _ = s.read_to_end(&mut sink).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        // The last connections' tasks may still be finishing.
        for _ in 0..200 {
            if metrics.handshake_rejections("malformed") == CONNECTIONS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.handshake_rejections("malformed"), CONNECTIONS, "every refusal is counted");
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines = text.lines().count();
        assert!(lines >= 1, "the first refusal is logged");
        assert!(lines <= 2, "{lines} lines for {CONNECTIONS} refusals from one source:\n{text}");
    }
}

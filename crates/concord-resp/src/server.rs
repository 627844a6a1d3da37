//! The tokio front door: accept connections, read requests, answer them in order.
//!
//! [`serve`] accepts connections until its `shutdown` future completes, then stops accepting,
//! lets every connection finish the requests it already read (for at most
//! [`RespConfig::shutdown_grace`]), and returns.
//!
//! # Plain TCP, TLS, or anything else
//! [`serve`] speaks RESP straight over TCP. [`serve_with_acceptor`] first hands each accepted
//! socket to an [`Acceptor`], which turns it into the byte stream the protocol is spoken over – a
//! TLS session, say (`concord-server` does this with rustls; this crate stays free of any TLS
//! library). The acceptor runs on the connection's own task, so a slow or stalled handshake holds
//! up no other client; a handshake that fails just closes that connection.
//!
//! # One connection
//! Each connection is two tasks joined by a bounded queue of pending replies:
//!
//! ```text
//!  socket ─▶ reader: decode ─▶ parse ─▶ dispatch ──(queue of pending replies, ≤ max_pipeline)──▶ writer ─▶ socket
//!                                          │                                                      ▲
//!                                          └── backend request, submitted now ── its answer, polled by the writer
//! ```
//!
//! * The **reader** decodes every request already buffered (pipelining), parses it, and either
//!   answers it at once (connection commands: `PING`, `HELLO`, `CLIENT`, `INFO`…) or submits it
//!   to the backend. Consecutive plain `GET`s (or `SET`s) of a pipeline go to the backend as one
//!   batch and take **one** place in the queue, their replies in request order
//!   ([`crate::batch`]). When the queue is full it stops reading – back-pressure on a client that
//!   sends faster than the cluster answers.
//! * The **writer** takes pending replies in request order, polls each backend answer (no task or
//!   channel per request: a blocking pop alone gets a task), encodes it for the connection's
//!   protocol, and writes **once per pipeline**: while the reader is still decoding requests it
//!   already has, the writer holds its replies ([`crate::pipeline`]). So `redis-benchmark -P 16`
//!   gets one write per 16 replies, and a lone command is written the moment its answer arrives.
//!
//! # Pub/Sub
//! A connection also has a [`Mailbox`] ([`crate::pubsub`]): the node's hub puts the messages of
//! its subscriptions there, from any connection or any node, and the writer interleaves them with
//! the replies – in RESP3 as `>` push frames, in RESP2 as arrays, once the connection is in
//! Redis's subscribe mode (only Pub/Sub commands, `PING` and `QUIT` then). Messages queued before
//! a reply is written go out before it; a `SUBSCRIBE`'s confirmation goes out before the
//! channel's first message, an `UNSUBSCRIBE`'s after its last. The mailbox is bounded in bytes
//! (`max_pubsub_output_bytes`): a subscriber that falls further behind is disconnected.
//!
//! # Ordering
//! Replies always come back in request order. Backend calls may overlap, within limits that keep a
//! pipeline meaning what it would mean on Redis:
//! * consecutive **reads** run concurrently;
//! * consecutive **writes** run concurrently, and are *submitted* in order (the KV command is
//!   handed to [`Backend::write`] while the request is dispatched), so the log applies them in
//!   order;
//! * switching between reads and writes waits for the previous run to finish, so `SET k 1` then
//!   `GET k` in one pipeline reads 1, and `GET k` then `SET k 2` does not read 2;
//! * `EXEC` is a write: it starts once the `WATCH` reads before it have answered, and takes the
//!   watched revisions then.
//!
//! # Errors and limits, as Redis does them
//! * A malformed request gets `-ERR Protocol error: …` and the connection is closed (the byte
//!   stream cannot be resynchronised). Other connections are unaffected.
//! * An argument longer than the largest key or value the store takes (but within the hard
//!   protocol cap, `DecodeLimits::max_bulk_bytes`) gets the KV store's reason at once,
//!   `-ERR value is 2000000 bytes; the limit is 1048576`; its bytes are passed over unbuffered and
//!   the connection goes on (see [`crate::codec`]). Inside MULTI it dooms the transaction.
//! * `CLIENT KILL` closes the connections it selects: each reader wakes and stops (see
//!   [`crate::monitor`]).
//! * `requirepass` and users ([`crate::acl`]): until `AUTH [user] pass` (or `HELLO … AUTH`)
//!   succeeds, every other command gets `-NOAUTH Authentication required.`, and requests are
//!   limited to 10 arguments of 16 KiB. Each command is then checked against the user's role *as
//!   it is now*: a command the role does not cover gets Redis's
//!   `-NOPERM User alice has no permissions to run the 'set' command` (also inside MULTI, where it
//!   dooms the transaction as any refused command does).
//! * `max_clients` (Redis's `maxclients`): a connection beyond it gets
//!   `-ERR max number of clients reached` and is closed. At most [`MAX_REFUSING`] such refusals are
//!   in progress at once; beyond that a connection is closed without a word, so a flood of
//!   connections cannot hold descriptors in refusals either.
//! * `idle_timeout` (Redis's `timeout`): a connection that sends nothing for that long, with no
//!   reply pending, is closed.
//! * `max_request_bytes` (Redis's `client-query-buffer-limit`): a single request larger than this
//!   is refused (protocol error) and the connection closed.
//! * `max_output_bytes` (Redis's `client-output-buffer-limit` for normal clients, hard limit): when
//!   the replies computed for a connection but not yet written to it pass this, the connection is
//!   closed – a client that pipelines requests without reading the replies cannot make the server
//!   hold unbounded memory. An `MGET` whose own reply would pass it gets an error instead.
//! * A failed `accept` (`EMFILE`, `ENFILE`: out of descriptors) is reported, and the server
//!   waits – 10 ms, doubling up to 1 s – and accepts again; it never stops for it.
//!
//! Every refusal, closed connection and failed accept is reported to [`RespConfig::events`]
//! ([`ServerEvents`]): the node counts them in its metrics and logs them.
//!
//! # Consistency per connection
//! Each connection carries a [`RequestConsistency`], passed with every backend call, and changed
//! with `CONSISTENCY` (grammar in [`crate::command`]). What a client may set depends on the
//! backend's [`ConsistencyModel`]:
//!
//! | model                | a new connection        | accepts                                              | `CONSISTENCY` shows |
//! |----------------------|-------------------------|------------------------------------------------------|---------------------|
//! | `Strong` (Raft)      | `default_consistency`   | `linearizable`, `lease`, `stale`, `DEFAULT`          | `linearizable`      |
//! | `Eventual {n, r, w}` | the backend's R and W   | `ONE`, `QUORUM`, `ALL`, `R k`, `W k` (1 ≤ k ≤ N), `DEFAULT` | `r=2 w=2 n=3` |
//!
//! A setting of the other family gets an error that says which mode the node runs, so the
//! backend never sees R or W overrides on Raft, nor values outside `1..=n`. `CLIENT INFO` shows
//! the same text with commas for spaces (`consistency=r=2,w=2,n=3`).
//!
//! # Redis Cluster
//! When the backend is sharded ([`Backend::topology`] is `Some`), the connection speaks Redis
//! Cluster's protocol ([`crate::cluster`]): `HELLO` and `INFO` say `mode`/`redis_mode` `cluster`
//! and `cluster_enabled:1`; a request whose keys hash to different slots is refused with
//! `-CROSSSLOT` before it reaches the backend (inside `MULTI` it dooms the transaction; a
//! transaction whose commands together span slots is refused at `EXEC` and discarded, as
//! redis-server does); the backend answers `-MOVED`, `-TRYAGAIN` and `-CLUSTERDOWN` for keys it
//! does not serve. `READONLY` makes the connection's reads stale reads
//! ([`ReadConsistency::Stale`]: a replica may serve them, Redis Cluster's meaning of `READONLY`)
//! until `READWRITE`, which restores the connection's own `CONSISTENCY`; writes are unaffected.

use crate::acl::{Acl, Denied, Need, DEFAULT_USER};
use crate::backend::{Backend, BackendError, BoxFuture, ConsistencyModel, RequestConsistency};
use crate::batch::{Collecting, Replies};
use crate::cluster;
use crate::codec::{encode, DecodeError, DecodeLimits, RequestDecoder};
use crate::command::{
    self, consistency_name, AclRequest, ClientInfoAttribute, ClientRequest, ConsistencySetting, ReplyError,
    Request, ScriptRequest, SlowlogRequest,
};
use crate::exec::{self, Access, ExecContext};
use crate::frame::{Frame, Protocol};
use crate::introspect::{self, REDIS_VERSION};
use crate::monitor::{ClientHandle, ClientSnapshot, Lookups, Monitor};
use crate::pipeline::{ready_now, Pipeline, Unanswered};
use crate::pubsub::{Hub, Mailbox, PubSubRequest};
use crate::scripts::ScriptCache;
use crate::tracking::{Settings as TrackingSettings, Tracker};
use bytes::{Bytes, BytesMut};
use concord_kv::KvLimits;
use concord_raft::ReadConsistency;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Refusals (`-ERR max number of clients reached`) in progress at once; see the module docs.
pub const MAX_REFUSING: usize = 32;
/// How often the writer lets other tasks run before it writes a part of a batch whose next
/// answer is not ready yet (see `write_replies`).
const ANSWER_YIELDS: usize = 2;

/// Why the server closed a client's connection (see the limits in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// Nothing received for `idle_timeout`.
    IdleTimeout,
    /// A request larger than `max_request_bytes`.
    QueryBuffer,
    /// More than `max_output_bytes` of replies waiting for the client to read them.
    OutputBuffer,
    /// More than `max_pubsub_output_bytes` of Pub/Sub messages waiting for the subscriber to read
    /// them (Redis's `client-output-buffer-limit pubsub`).
    PubSubOutputBuffer,
}

impl Disconnect {
    /// The reason as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Disconnect::IdleTimeout => "idle_timeout",
            Disconnect::QueryBuffer => "query_buffer",
            Disconnect::OutputBuffer => "output_buffer",
            Disconnect::PubSubOutputBuffer => "pubsub_output_buffer",
        }
    }
}

/// What the server reports about its connections, so that the program around it can count and log
/// them. Every method does nothing by default. Called from connection tasks: keep them quick.
pub trait ServerEvents: Send + Sync + 'static {
    /// A connection was accepted and given a slot (`connected_clients` + 1).
    fn opened(&self) {}
    /// A connection that had a slot ended, for whatever reason.
    fn closed(&self) {}
    /// A connection was refused: `max_clients` were connected.
    fn refused_max_clients(&self, _peer: SocketAddr) {}
    /// `accept` failed with `error` (not a client that gave up); the server backs off `retry_in`.
    fn accept_failed(&self, _error: &std::io::Error, _retry_in: Duration) {}
    /// The server closed the connection of `peer` for `reason`.
    fn disconnected(&self, _peer: SocketAddr, _reason: Disconnect) {}
}

/// [`ServerEvents`] that reports nothing (the default).
pub struct NoEvents;

impl ServerEvents for NoEvents {}

impl std::fmt::Debug for dyn ServerEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerEvents")
    }
}

/// Front-door settings. [`RespConfig::for_kv_limits`] sizes the protocol limits from the KV ones.
#[derive(Clone, Debug)]
pub struct RespConfig {
    /// Password clients must give with `AUTH` before anything else (`None`: no authentication).
    /// It is the `default` user's password when `acl` is `None`.
    pub requirepass: Option<String>,
    /// The node's users ([`crate::acl`]), shared with its other front doors; `None`: only the
    /// `default` user, with `requirepass`.
    pub acl: Option<Arc<Acl>>,
    /// Most simultaneous connections (Redis default: 10 000).
    pub max_clients: usize,
    /// Close connections idle this long (`None`: never, as Redis's default `timeout 0`).
    pub idle_timeout: Option<Duration>,
    /// Parser limits (bulk length, arguments, inline line length).
    pub decode_limits: DecodeLimits,
    /// Largest single request, in bytes (Redis's `client-query-buffer-limit`, default 1 GiB).
    pub max_request_bytes: usize,
    /// Most bytes of replies computed for a connection and not yet written to it before it is
    /// closed (Redis's `client-output-buffer-limit normal`, whose default is no limit: `None`).
    pub max_output_bytes: Option<usize>,
    /// Where refusals, disconnections and failed accepts are reported.
    pub events: Arc<dyn ServerEvents>,
    /// Most replies queued per connection before the server stops reading from it. Bounds what
    /// a client that sends without reading can make the server hold: at most this many replies
    /// (each up to a range page or a value).
    pub max_pipeline: usize,
    /// `KEYS` refuses to return more keys than this (use `SCAN`).
    pub keys_max: usize,
    /// Read consistency of a new connection on a Raft (strong) backend, and what
    /// `CONSISTENCY DEFAULT` returns to; changed per connection with `CONSISTENCY`. (An eventual
    /// backend's defaults are its own R and W: see [`Backend::model`].)
    pub default_consistency: ReadConsistency,
    /// How long [`serve`] waits for connections to finish after `shutdown`.
    pub shutdown_grace: Duration,
    /// `CONFIG GET` values the program around the server knows and this crate does not – e.g.
    /// `appendonly` and `appendfsync` from the node's WAL settings. They replace this crate's own
    /// answers of the same name (see [`crate::introspect`]).
    pub parameters: Vec<(String, String)>,
    /// The node's Pub/Sub hub ([`crate::pubsub`]), shared by every connection – and, through its
    /// relay, with the other nodes. `None`: [`serve`] makes one of its own, for this server only.
    pub pubsub: Option<Arc<Hub>>,
    /// Most bytes of Pub/Sub messages queued for one subscriber and not yet written before its
    /// connection is closed (Redis's `client-output-buffer-limit pubsub` hard limit, 32 MiB).
    pub max_pubsub_output_bytes: usize,
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            requirepass: None,
            acl: None,
            max_clients: 10_000,
            idle_timeout: None,
            decode_limits: DecodeLimits::default(),
            max_request_bytes: 1024 * 1024 * 1024,
            max_output_bytes: None,
            events: Arc::new(NoEvents),
            max_pipeline: 128,
            keys_max: 10_000,
            default_consistency: ReadConsistency::Linearizable,
            shutdown_grace: Duration::from_secs(5),
            parameters: Vec::new(),
            pubsub: None,
            max_pubsub_output_bytes: crate::pubsub::DEFAULT_MAX_PUBSUB_OUTPUT_BYTES,
        }
    }
}

impl RespConfig {
    /// Defaults, with the largest argument set to the largest key or value the KV store accepts
    /// (so an oversized value is refused from its header, and passed over unbuffered) and the
    /// largest request to a few times the largest command.
    pub fn for_kv_limits(limits: &KvLimits) -> RespConfig {
        let max_arg_bytes = limits.max_value_bytes.max(limits.max_key_bytes);
        let defaults = DecodeLimits::default();
        RespConfig {
            // A larger argument, up to the hard cap, is passed over and refused with the KV
            // store's reason; the connection goes on (see `crate::codec`).
            decode_limits: DecodeLimits {
                max_arg_bytes,
                max_bulk_bytes: defaults.max_bulk_bytes.max(max_arg_bytes),
                ..defaults
            },
            max_request_bytes: limits.max_command_bytes.saturating_mul(4).max(16 * 1024 * 1024),
            ..RespConfig::default()
        }
    }
}

/// Turns an accepted TCP connection into the two halves RESP is read from and written to.
///
/// [`PlainTcp`] uses the socket as it is; a TLS acceptor runs the handshake and returns the
/// session's halves (e.g. `tokio::io::split` of a `tokio_rustls::server::TlsStream`). Called on the
/// connection's own task; an error closes that connection only, and the acceptor is the one to
/// report it (it knows why: a bad certificate, a client speaking plaintext…). An acceptor should
/// bound its handshake in time.
pub trait Acceptor: Send + Sync + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;
    fn accept(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<(Self::Reader, Self::Writer)>>;
}

/// RESP straight over TCP (what [`serve`] uses).
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    fn accept(
        &self,
        socket: TcpStream,
        _peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<(OwnedReadHalf, OwnedWriteHalf)>> {
        Box::pin(async move { Ok(socket.into_split()) })
    }
}

/// State shared by all connections.
struct Shared {
    backend: Arc<dyn Backend>,
    acl: Arc<Acl>,
    pubsub: Arc<Hub>,
    config: RespConfig,
    port: u16,
    started: Instant,
    next_client_id: AtomicU64,
    connected_clients: AtomicUsize,
    total_connections: AtomicU64,
    rejected_connections: AtomicU64,
    total_commands: AtomicU64,
    /// Clients, slow log, counters ([`crate::monitor`]).
    monitor: Monitor,
    /// The address the listener is bound to (`CONFIG GET bind`).
    bind: Option<SocketAddr>,
    /// `SCRIPT LOAD`ed and `EVAL`ed scripts, for `EVALSHA` (per node; see [`crate::scripts`]).
    scripts: ScriptCache,
    /// `CLIENT TRACKING` (see [`crate::tracking`]).
    tracker: Arc<Tracker>,
}

/// Serve the Redis protocol on `listener` until `shutdown` completes (see the module docs).
pub async fn serve<F: Future>(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    config: RespConfig,
    shutdown: F,
) {
    serve_with_acceptor(listener, PlainTcp, backend, config, shutdown).await
}

/// [`serve`], with every accepted connection first passed through `acceptor` (TLS, for one).
pub async fn serve_with_acceptor<A: Acceptor, F: Future>(
    listener: TcpListener,
    acceptor: A,
    backend: Arc<dyn Backend>,
    config: RespConfig,
    shutdown: F,
) {
    let acceptor = Arc::new(acceptor);
    let port = listener.local_addr().map_or(0, |a| a.port());
    let bind = listener.local_addr().ok();
    let slots = Arc::new(Semaphore::new(config.max_clients));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let grace = config.shutdown_grace;
    let acl = config.acl.clone().unwrap_or_else(|| Arc::new(Acl::new(config.requirepass.as_deref())));
    let pubsub = config.pubsub.clone().unwrap_or_else(|| Arc::new(Hub::new(None)));
    let tracker = {
        let backend = backend.clone();
        Arc::new(Tracker::new(Box::new(move || backend.key_changes()), pubsub.clone()))
    };
    let shared = Arc::new(Shared {
        backend,
        acl,
        pubsub,
        config,
        port,
        started: Instant::now(),
        next_client_id: AtomicU64::new(1),
        connected_clients: AtomicUsize::new(0),
        total_connections: AtomicU64::new(0),
        rejected_connections: AtomicU64::new(0),
        total_commands: AtomicU64::new(0),
        monitor: Monitor::default(),
        bind,
        scripts: ScriptCache::default(),
        tracker,
    });
    // `instantaneous_ops_per_sec`: sample the commands counter, as redis-server does.
    let sampler = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::monitor::OPS_SAMPLE_INTERVAL);
            loop {
                every.tick().await;
                shared.monitor.sample_ops(shared.total_commands.load(Ordering::Relaxed));
            }
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    while connections.try_join_next().is_some() {}
                    let slot = match slots.clone().try_acquire_owned() {
                        Ok(slot) => Slot::Client(slot),
                        Err(_) => {
                            shared.rejected_connections.fetch_add(1, Ordering::Relaxed);
                            shared.config.events.refused_max_clients(addr);
                            match refusing.clone().try_acquire_owned() {
                                Ok(refusal) => Slot::Refuse(refusal),
                                // Too many refusals at once: close without a word.
                                Err(_) => continue,
                            }
                        }
                    };
                    connections.spawn(connection(
                        acceptor.clone(),
                        socket,
                        addr,
                        shared.clone(),
                        slot,
                        stop_rx.clone(),
                    ));
                }
                // A client that gave up before we accepted it: nothing to wait for.
                Err(e) if is_connection_error(&e) => {}
                // E.g. out of file descriptors: report, wait, and accept again – never give up.
                Err(e) => {
                    shared.config.events.accept_failed(&e, backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} });
    let _ = drained.await;
    connections.abort_all();
    sampler.abort();
    shared.tracker.stop();
}

/// Whether `args` is `CLIENT CACHING …` (which sets, rather than uses, the next command's flag).
fn is_client_caching(args: &[Bytes]) -> bool {
    args.len() >= 2 && args[0].eq_ignore_ascii_case(b"client") && args[1].eq_ignore_ascii_case(b"caching")
}

/// The first wait after a failed `accept`, and the longest.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An `accept` error that concerns one connection only (the client left before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// What an accepted connection may do: be served (it holds one of `max_clients` slots), or be told
/// the server is full (it holds one of [`MAX_REFUSING`] refusal slots).
enum Slot {
    Client(OwnedSemaphorePermit),
    Refuse(OwnedSemaphorePermit),
}

/// Decrements the connected-clients gauge however the connection task ends.
struct ClientGauge(Arc<Shared>);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.connected_clients.fetch_sub(1, Ordering::Relaxed);
        self.0.config.events.closed();
    }
}

/// Takes a connection out of the client registry however its task ends.
struct Registered(Arc<Shared>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.monitor.unregister(self.1);
    }
}

/// Bytes of replies computed for one connection and not yet written to it (see `max_output_bytes`).
struct OutputBuffer {
    bytes: AtomicUsize,
    limit: usize,
    exceeded: tokio::sync::Notify,
    over: std::sync::atomic::AtomicBool,
}

impl OutputBuffer {
    fn new(limit: Option<usize>) -> OutputBuffer {
        OutputBuffer {
            bytes: AtomicUsize::new(0),
            limit: limit.unwrap_or(usize::MAX),
            exceeded: tokio::sync::Notify::new(),
            over: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A reply of `n` bytes is ready; past the limit, the connection is to be closed.
    fn add(&self, n: usize) {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if total > self.limit && !self.over.swap(true, Ordering::Relaxed) {
            self.exceeded.notify_one();
        }
    }

    /// A reply of `n` bytes was written.
    fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    async fn wait_exceeded(&self) {
        if !self.over.load(Ordering::Relaxed) {
            self.exceeded.notified().await;
        }
    }
}

async fn connection<A: Acceptor>(
    acceptor: Arc<A>,
    socket: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    slot: Slot,
    mut stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let laddr = socket.local_addr().ok();
    // A handshake still in progress at shutdown is abandoned (there is no request to finish).
    let accepted = tokio::select! {
        accepted = acceptor.accept(socket, addr) => accepted,
        _ = stop.changed() => return,
    };
    let Ok((mut reader, mut writer)) = accepted else {
        return;
    };
    let _slot = match slot {
        Slot::Client(slot) => slot,
        Slot::Refuse(_refusal) => {
            let refuse = async {
                let _ = writer.write_all(b"-ERR max number of clients reached\r\n").await;
                let _ = writer.shutdown().await;
                drain(&mut reader).await;
            };
            // A client that does not read cannot keep the refusal slot.
            let _ = tokio::time::timeout(Duration::from_secs(1), refuse).await;
            return;
        }
    };
    shared.connected_clients.fetch_add(1, Ordering::Relaxed);
    shared.total_connections.fetch_add(1, Ordering::Relaxed);
    shared.config.events.opened();
    let _gauge = ClientGauge(shared.clone());
    let output = Arc::new(OutputBuffer::new(shared.config.max_output_bytes));
    let (replies_tx, replies_rx) = mpsc::channel(shared.config.max_pipeline.max(1));
    // Pub/Sub messages arrive beside the replies, bounded in bytes (see `crate::pubsub`).
    let (mailbox, pushes) = Mailbox::new(shared.config.max_pubsub_output_bytes);
    let pipeline = Arc::new(Pipeline::default());
    let writer = tokio::spawn(write_replies(
        writer,
        replies_rx,
        pushes,
        mailbox.clone(),
        output.clone(),
        pipeline.clone(),
        shared.clone(),
    ));
    let mut client = Client::new(addr, laddr, shared.clone(), output, mailbox, pipeline);
    shared.monitor.register(client.handle.clone());
    let _registered = Registered(shared.clone(), client.id);
    let ended = client.read_requests(&mut reader, replies_tx, stop).await;
    // Nobody waits for a blocked pop's reply any more (its writer gets an error for it).
    for task in client.blocking.drain(..) {
        task.abort();
    }
    drop(client); // leaves its channels now: nothing more is published to a closing connection
    if let Some(reason) = ended {
        shared.config.events.disconnected(addr, reason);
    }
    if matches!(ended, Some(Disconnect::OutputBuffer | Disconnect::PubSubOutputBuffer)) {
        // The client is not reading: its replies are dropped with the connection.
        writer.abort();
        return;
    }
    let _ = writer.await;
    drain(&mut reader).await;
}

/// Read and discard what the client still sends (bounded), so that closing the socket does not
/// reset the connection and destroy our last reply in flight.
async fn drain(reader: &mut (impl AsyncRead + Unpin)) {
    let mut sink = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut left: usize = 1024 * 1024;
    while left > 0 {
        match tokio::time::timeout_at(deadline, reader.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// A reply the writer will send: ready now, computed by a backend request the writer polls, or
/// by a task of its own.
enum Pending {
    Ready(Frame, Protocol),
    /// A backend request, already submitted (see [`Backend`]'s contract): the writer polls it in
    /// its turn, beside the others in flight – no task or channel per request. Yields the reply
    /// and its size as counted in the connection's [`OutputBuffer`].
    Answer(BoxFuture<(Frame, usize)>, Protocol),
    /// A blocking pop's reply, computed on a task of its own (aborted when the client leaves;
    /// the writer sends what it holds before waiting for it, as Redis does before it blocks).
    Waiting(oneshot::Receiver<(Frame, usize)>, Protocol),
    /// A batch's replies, in request order ([`crate::batch`]): the entry of its first request.
    Batch(BoxFuture<Replies>, Protocol),
    /// A batch's replies, computed on a task of its own while the socket was busy.
    BatchWaiting(oneshot::Receiver<Replies>, Protocol),
    /// A request that joined a batch whose entry is queued already: nothing to queue (never
    /// reaches the writer).
    Joined,
    /// Pub/Sub confirmations, one frame per channel. `subscribe`: a SUBSCRIBE's, which held the
    /// connection's messages back ([`Mailbox::hold`]) and releases them once written, so that it
    /// precedes the channel's first message. (An UNSUBSCRIBE's follows the channel's last message
    /// as any reply follows the messages queued before it.)
    PubSub {
        frames: Vec<Frame>,
        protocol: Protocol,
        subscribe: bool,
    },
}

/// Replies and pushes encoded and not yet written, and their sizes as counted in the connection's
/// [`OutputBuffer`] and [`Mailbox`]: released once written.
struct Batch {
    bytes: BytesMut,
    replies: usize,
    pushes: usize,
    /// Where written bytes are counted (`INFO stats`: `total_net_output_bytes`).
    shared: Arc<Shared>,
}

impl Batch {
    /// Write what is encoded. While the socket takes its time (a client that reads slowly, or
    /// not at all), the replies queued behind are computed meanwhile (see [`Queue::compute_ahead`]),
    /// so that they count in the connection's output buffer as they would on Redis.
    async fn flush(
        &mut self,
        socket: &mut (impl AsyncWrite + Unpin),
        queue: &mut Queue,
        output: &OutputBuffer,
        mailbox: &Mailbox,
    ) -> std::io::Result<()> {
        if !self.bytes.is_empty() {
            {
                let write = send(socket, &self.bytes);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        biased;
                        written = &mut write => break written?,
                        Some(pending) = queue.replies.recv(), if queue.ahead.len() < MAX_AHEAD => {
                            queue.compute_ahead(pending);
                        }
                    }
                }
            }
            self.shared.monitor.net_output_bytes.fetch_add(self.bytes.len() as u64, Ordering::Relaxed);
            self.bytes.clear();
        }
        output.sub(std::mem::take(&mut self.replies));
        mailbox.written(std::mem::take(&mut self.pushes));
        Ok(())
    }

    /// A backend answer, in its turn: at once if ready; with replies already encoded, after
    /// letting the node finish the batch it is probably part of (a pipeline's answers come
    /// together, so a part of it is not written alone); else after writing what is encoded. `None`:
    /// the socket failed.
    async fn settle<T>(
        &mut self,
        mut answer: BoxFuture<T>,
        socket: &mut (impl AsyncWrite + Unpin),
        queue: &mut Queue,
        output: &OutputBuffer,
        mailbox: &Mailbox,
    ) -> Option<T> {
        if let Some(ready) = ready_now(&mut answer) {
            return Some(ready);
        }
        if !self.bytes.is_empty() {
            for _ in 0..ANSWER_YIELDS {
                tokio::task::yield_now().await;
                if let Some(ready) = ready_now(&mut answer) {
                    return Some(ready);
                }
            }
        }
        // A slow answer: send what is ready before waiting for it.
        self.flush(socket, queue, output, mailbox).await.ok()?;
        Some(answer.await)
    }

    /// An answer computed on a task of its own: at once if there, else after writing what is
    /// encoded. `None`: the socket failed; `Some(None)`: the task ended without an answer.
    async fn settle_waiting<T>(
        &mut self,
        mut answer: oneshot::Receiver<T>,
        socket: &mut (impl AsyncWrite + Unpin),
        queue: &mut Queue,
        output: &OutputBuffer,
        mailbox: &Mailbox,
    ) -> Option<Option<T>> {
        match answer.try_recv() {
            Ok(answer) => Some(Some(answer)),
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
            Err(oneshot::error::TryRecvError::Empty) => {
                // Send what is ready before waiting for a slow answer.
                self.flush(socket, queue, output, mailbox).await.ok()?;
                Some(answer.await.ok())
            }
        }
    }

    /// A batch's replies, in order.
    fn encode_replies(&mut self, replies: Replies, protocol: Protocol) {
        for (frame, size) in replies {
            self.replies += size;
            encode(&frame, protocol, &mut self.bytes);
        }
    }

    fn push(&mut self, push: &Frame, protocol: Protocol) {
        self.pushes += push.size_estimate();
        encode(push, protocol, &mut self.bytes);
    }

    /// Encode the pushes already queued. Bounded: pushes stay counted in the mailbox until
    /// written, so at most `max_pubsub_output_bytes` of them.
    fn take_pushes(&mut self, pushes: &mut mpsc::UnboundedReceiver<Frame>, protocol: Protocol) {
        while let Ok(push) = pushes.try_recv() {
            self.push(&push, protocol);
        }
    }
}

/// The writer's queue of replies: the reader's channel, and the replies taken from it while a
/// write was in progress.
struct Queue {
    replies: mpsc::Receiver<Pending>,
    ahead: VecDeque<Pending>,
}

/// Replies the writer takes from the reader while a write is blocked, at most (the reader's
/// channel holds `max_pipeline` more).
const MAX_AHEAD: usize = 1024;

impl Queue {
    async fn next(&mut self) -> Option<Pending> {
        match self.ahead.pop_front() {
            Some(pending) => Some(pending),
            None => self.replies.recv().await,
        }
    }

    fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.replies.is_empty()
    }

    /// A reply taken while the socket is busy: a backend answer gets a task of its own, so it is
    /// computed (and counted against `max_output_bytes`) without waiting for the writer.
    fn compute_ahead(&mut self, pending: Pending) {
        self.ahead.push_back(match pending {
            Pending::Answer(answer, protocol) => {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(async move {
                    let _ = tx.send(answer.await);
                });
                Pending::Waiting(rx, protocol)
            }
            Pending::Batch(replies, protocol) => {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(async move {
                    let _ = tx.send(replies.await);
                });
                Pending::BatchWaiting(rx, protocol)
            }
            other => other,
        });
    }
}

async fn write_replies(
    mut socket: impl AsyncWrite + Unpin,
    replies: mpsc::Receiver<Pending>,
    mut pushes: mpsc::UnboundedReceiver<Frame>,
    mailbox: Arc<Mailbox>,
    output: Arc<OutputBuffer>,
    pipeline: Arc<Pipeline>,
    shared: Arc<Shared>,
) {
    let mut batch =
        Batch { bytes: BytesMut::with_capacity(16 * 1024), replies: 0, pushes: 0, shared: shared.clone() };
    // Pushes are encoded in the protocol of the latest reply (`HELLO` changes it).
    let mut protocol = Protocol::Resp2;
    // Pushes received while a SUBSCRIBE's confirmation is pending (see `Pending::PubSub`).
    let mut held_back: Vec<Frame> = Vec::new();
    let mut queue = Queue { replies, ahead: VecDeque::new() };
    loop {
        let pending = tokio::select! {
            biased;
            pending = queue.next() => match pending {
                Some(pending) => pending,
                None => break,
            },
            // Replies held while the reader was decoding (see `crate::pipeline`): it is done.
            _ = pipeline.wait_decoding_done(), if !batch.bytes.is_empty() => {
                if batch.flush(&mut socket, &mut queue, &output, &mailbox).await.is_err() {
                    return;
                }
                continue;
            }
            Some(push) = pushes.recv() => {
                if mailbox.is_held() {
                    held_back.push(push);
                    continue;
                }
                batch.push(&push, protocol);
                if (pushes.is_empty() || batch.bytes.len() >= 64 * 1024)
                    && batch.flush(&mut socket, &mut queue, &output, &mailbox).await.is_err()
                {
                    return;
                }
                continue;
            }
        };
        // Messages that arrived before this reply was read go out before it, as on Redis – unless
        // held back for a SUBSCRIBE's confirmation (see `Pending::PubSub`).
        if !mailbox.is_held() {
            batch.take_pushes(&mut pushes, protocol);
        }
        let subscribe = matches!(pending, Pending::PubSub { subscribe: true, .. });
        // The reply's frame (a Pub/Sub confirmation's frames are encoded at once): no list allocated
        // per reply.
        let frame = match pending {
            Pending::Ready(frame, p) => {
                protocol = p;
                Some(frame)
            }
            Pending::PubSub { frames, protocol: p, .. } => {
                protocol = p;
                for frame in &frames {
                    encode(frame, protocol, &mut batch.bytes);
                }
                None
            }
            Pending::Answer(answer, p) => {
                protocol = p;
                let Some((frame, size)) =
                    batch.settle(answer, &mut socket, &mut queue, &output, &mailbox).await
                else {
                    return;
                };
                batch.replies += size;
                Some(frame)
            }
            Pending::Waiting(answer, p) => {
                protocol = p;
                let Some(answer) =
                    batch.settle_waiting(answer, &mut socket, &mut queue, &output, &mailbox).await
                else {
                    return;
                };
                let (frame, size) = answer.unwrap_or_else(|| (internal_error(), 0));
                batch.replies += size;
                Some(frame)
            }
            Pending::Batch(replies, p) => {
                protocol = p;
                let Some(replies) = batch.settle(replies, &mut socket, &mut queue, &output, &mailbox).await
                else {
                    return;
                };
                batch.encode_replies(replies, protocol);
                None
            }
            Pending::BatchWaiting(replies, p) => {
                protocol = p;
                let Some(replies) =
                    batch.settle_waiting(replies, &mut socket, &mut queue, &output, &mailbox).await
                else {
                    return;
                };
                batch.encode_replies(replies.unwrap_or_default(), protocol);
                None
            }
            Pending::Joined => None,
        };
        if let Some(frame) = frame {
            encode(&frame, protocol, &mut batch.bytes);
        }
        if subscribe {
            mailbox.release();
            if !mailbox.is_held() {
                for push in held_back.drain(..) {
                    batch.push(&push, protocol);
                }
                batch.take_pushes(&mut pushes, protocol);
            }
        }
        // Write when nothing more is coming at once: no reply queued and the reader done
        // decoding (see `crate::pipeline`), or a large batch.
        if ((queue.is_empty() && !pipeline.is_decoding()) || batch.bytes.len() >= 64 * 1024)
            && batch.flush(&mut socket, &mut queue, &output, &mailbox).await.is_err()
        {
            return;
        }
    }
    if !batch.bytes.is_empty() && socket.write_all(&batch.bytes).await.is_ok() {
        shared.monitor.net_output_bytes.fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
    }
    let _ = socket.shutdown().await;
}

/// Write and flush: a TLS session may keep written bytes buffered until flushed (a no-op on TCP).
async fn send(socket: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    socket.write_all(bytes).await?;
    socket.flush().await
}

fn internal_error() -> Frame {
    Frame::error("ERR internal error: the request's task ended without a reply")
}

/// One connection's state.
struct Client {
    id: u64,
    addr: SocketAddr,
    shared: Arc<Shared>,
    decoder: RequestDecoder,
    protocol: Protocol,
    /// The user this connection acts as (`None`: not authenticated yet).
    user: Option<String>,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_version: Option<Bytes>,
    consistency: RequestConsistency,
    /// `READONLY` is on: reads go to the backend as stale reads (see "Redis Cluster" in the
    /// module docs) until `READWRITE`.
    readonly: bool,
    /// Backend requests in flight, shared with the writer (see "Ordering" in the module docs and
    /// [`crate::pipeline`]).
    pipeline: Arc<Pipeline>,
    /// Tasks of blocking pops (`crate::blocking`) that may wait forever: aborted when the client
    /// leaves, so a closed connection stops polling for it.
    blocking: Vec<tokio::task::AbortHandle>,
    run: Option<Access>,
    /// Commands queued since MULTI.
    multi: Option<Multi>,
    /// Keys WATCHed and their mod revisions, shared with the WATCH reads in flight.
    watched: Arc<std::sync::Mutex<Watched>>,
    /// Replies computed and not yet written (`max_output_bytes`).
    output: Arc<OutputBuffer>,
    /// This connection as the others see it (`CLIENT LIST`, `CLIENT KILL`).
    handle: Arc<ClientHandle>,
    /// The last command, Redis's way (`client|list`).
    last_command: Cow<'static, str>,
    /// The request being dispatched: when it started, and what the slow log and the keyspace
    /// counters need of it (taken by `start` for a backend request).
    timing: Option<Timing>,
    /// Where this connection's Pub/Sub messages go ([`crate::pubsub`]).
    mailbox: Arc<Mailbox>,
    /// Channels, patterns and shard channels subscribed to: in RESP2, more than 0 is Redis's
    /// subscribe mode (only the Pub/Sub commands, `PING` and `QUIT` are allowed).
    subscribed: usize,
    /// Whether the connection speaks RESP3 now, as the tracker reads it to choose a message's form.
    resp3: Arc<AtomicBool>,
    /// `CLIENT TRACKING`'s settings while it is on ([`crate::tracking`]).
    tracking: Option<TrackingSettings>,
    /// `CLIENT CACHING yes|no`, for the next command only.
    caching: Option<bool>,
    /// The pipeline's batch of plain reads or writes not sent yet ([`crate::batch`]).
    collecting: Option<OpenBatch>,
    /// More requests are buffered behind the one being dispatched (a pipelined client).
    more_buffered: bool,
    /// The clock reading that requests dispatched back to back share as their start: one reading
    /// per pipeline batch instead of one per request (a profile of pipelined GETs had 4 % of the
    /// node's time in the clock). Set by the first request that needs it; `None` again after
    /// anything the reader may have waited on – a batch sent (before reading the socket or
    /// waiting for the writer), a wait for answers, a request that did not join a batch – so a
    /// request's measured time is longer by at most the decoding of those before it in its buffer.
    started: Option<Instant>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.subscribed > 0 {
            self.shared.pubsub.remove(self.id);
        }
        self.shared.tracker.disconnect(self.id);
    }
}

/// What is measured of one request (see [`crate::monitor`]).
struct Timing {
    started: Instant,
    /// Its arguments, if the slow log is on.
    args: Option<Vec<Bytes>>,
    lookups: Option<Lookups>,
}

/// What is done with a backend request's reply once computed: its timing goes to the slow log and
/// the keyspace counters, its size to the connection's output buffer (counted once computed,
/// released once written: see `max_output_bytes`).
struct Finish {
    shared: Arc<Shared>,
    addr: SocketAddr,
    name: Option<Bytes>,
    output: Arc<OutputBuffer>,
}

impl Finish {
    /// The reply's size as counted. `now`: the clock when the reply was computed, read here at
    /// the first need – the replies of one batch are computed at once, and share one reading.
    fn done(&self, timing: Option<Timing>, frame: &Frame, now: &mut Option<Instant>) -> usize {
        if let Some(timing) = timing {
            if let Some(args) = timing.args {
                let took = now.get_or_insert_with(Instant::now).saturating_duration_since(timing.started);
                self.shared.monitor.slowlog.record(&args, took, self.addr, self.name.as_ref());
            }
            if let Some(lookups) = timing.lookups {
                self.shared.monitor.count_lookups(lookups, frame);
            }
        }
        let size = frame.size_estimate();
        self.output.add(size);
        size
    }
}

/// The batch being collected ([`crate::batch`]), with what its replies need.
struct OpenBatch {
    collecting: Collecting<Batched>,
    /// For a `GET` whose value is empty: is the key a string, or a collection (WRONGTYPE)?
    ctx: ExecContext,
    /// The batch counts as one unanswered request until its replies are computed.
    answered: Unanswered,
}

/// What one batched request's reply needs besides its answer.
struct Batched {
    /// A `GET`'s key; `None`: a `SET`.
    get: Option<Bytes>,
    timing: Option<Timing>,
}

/// What `WATCH` saw. `epoch` moves whenever the list is cleared (EXEC, DISCARD, UNWATCH), so a
/// WATCH read still in flight then does not add its keys afterwards.
///
/// `dirty`: this connection created a key that was absent when watched. The state machine compares
/// mod revisions, and a key created and deleted again since WATCH is absent (revision 0) both
/// times; redis-server fails EXEC for it (found by `concord difftest`, seed 2). So the
/// connection's own writes to such keys are checked here (see [`Client::note_watched_writes`]).
/// Another client's create-then-delete is still missed (docs/redis.md).
#[derive(Default)]
struct Watched {
    epoch: u64,
    keys: Vec<(Vec<u8>, u64)>,
    dirty: bool,
}

impl Watched {
    fn clear(&mut self) -> Vec<(Vec<u8>, u64)> {
        self.epoch += 1;
        self.dirty = false;
        std::mem::take(&mut self.keys)
    }

    /// Of `keys`, those watched while absent.
    fn absent_when_watched(&self, keys: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut found: Vec<Vec<u8>> = keys
            .iter()
            .filter(|key| self.keys.iter().any(|(k, seen)| *seen == 0 && k.as_slice() == **key))
            .map(|key| key.to_vec())
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// A transaction being queued.
#[derive(Default)]
struct Multi {
    queued: Vec<Queued>,
    /// A command was refused while queueing: EXEC will answer EXECABORT.
    doomed: bool,
}

/// A command queued since MULTI, kept in its place: EXEC's reply array answers them in order.
enum Queued {
    /// A data command: one call of the transaction's one `RedisExec`, run by the interpreter.
    Data(Request),
    /// A command with no data effect (`PING`, `ECHO`, `TIME`, `UNWATCH`, `PUBLISH`, `CLIENT`…),
    /// answered by the front door at EXEC – never inside the state machine (no clock there).
    Front(Request),
    /// Accepted at queue time (a known command of the right arity), refused when EXEC runs it, as
    /// Redis does: this error is its reply.
    Failed(Frame),
}

/// What EXEC answers in one command's place: the interpreter's reply, or the front door's.
enum ExecSlot {
    Data,
    Front(BoxFuture<Frame>),
}

impl Client {
    fn new(
        addr: SocketAddr,
        laddr: Option<SocketAddr>,
        shared: Arc<Shared>,
        output: Arc<OutputBuffer>,
        mailbox: Arc<Mailbox>,
        pipeline: Arc<Pipeline>,
    ) -> Client {
        // Without a password on `default`, a connection starts as `default`, as on Redis.
        let user = (!shared.acl.auth_required()).then(|| DEFAULT_USER.to_string());
        let authenticated = user.is_some();
        let limits = shared.config.decode_limits;
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let consistency = RequestConsistency::strong(shared.config.default_consistency);
        let resp3 = Arc::new(AtomicBool::new(false));
        shared.tracker.connect(id, mailbox.clone(), resp3.clone());
        let snapshot = ClientSnapshot {
            name: None,
            lib_name: None,
            lib_version: None,
            user: user.clone(),
            last_command: "NULL".into(),
            last_active: Instant::now(),
            resp: 2,
            multi: None,
            readonly: false,
            consistency,
            input_buffered: 0,
            output_pending: 0,
        };
        Client {
            handle: Arc::new(ClientHandle::new(id, addr, laddr, snapshot)),
            last_command: Cow::Borrowed("NULL"),
            timing: None,
            id,
            addr,
            decoder: RequestDecoder::new(if authenticated { limits } else { limits.unauthenticated() }),
            protocol: Protocol::Resp2,
            user,
            name: None,
            lib_name: None,
            lib_version: None,
            consistency,
            readonly: false,
            pipeline,
            blocking: Vec::new(),
            run: None,
            multi: None,
            watched: Arc::default(),
            output,
            mailbox,
            subscribed: 0,
            resp3,
            tracking: None,
            caching: None,
            collecting: None,
            more_buffered: false,
            started: None,
            shared,
        }
    }

    /// Read, start and queue requests until the client leaves, the server stops, or a limit is
    /// passed (returned: the connection is closed for it).
    async fn read_requests(
        &mut self,
        reader: &mut (impl AsyncRead + Unpin),
        replies: mpsc::Sender<Pending>,
        mut stop: watch::Receiver<bool>,
    ) -> Option<Disconnect> {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let output = self.output.clone();
        let handle = self.handle.clone();
        let mailbox = self.mailbox.clone();
        loop {
            loop {
                if handle.is_killed() {
                    return None;
                }
                match self.decoder.decode(&mut buf) {
                    Ok(Some(args)) => {
                        self.more_buffered = !buf.is_empty();
                        let (pending, close) = self.dispatch(args).await;
                        if !matches!(pending, Pending::Joined | Pending::Batch(..)) {
                            // It may have waited (see `started`).
                            self.started = None;
                        }
                        match pending {
                            // Its reply comes with its batch's, whose entry is queued already.
                            Pending::Joined if close => return None,
                            Pending::Joined => continue,
                            // A new batch's entry, in its first request's place.
                            Pending::Batch(..) => {}
                            // Any other reply takes its place after the batch being collected
                            // (a request refused before it is parsed, say): the batch is sent
                            // now, so that no later request joins it behind this reply.
                            _ => self.send_batch(),
                        }
                        let pending = match replies.try_send(pending) {
                            Ok(()) if !close => continue,
                            Ok(()) => return None,
                            Err(mpsc::error::TrySendError::Closed(_)) => return None,
                            Err(mpsc::error::TrySendError::Full(pending)) => {
                                // The writer may be waiting for an answer of the batch.
                                self.send_batch();
                                pending
                            }
                        };
                        // A full queue waits for the writer – unless the client stopped reading.
                        tokio::select! {
                            sent = replies.send(pending) => if sent.is_err() || close {
                                return None;
                            },
                            _ = output.wait_exceeded() => return Some(Disconnect::OutputBuffer),
                            _ = mailbox.wait_exceeded() => return Some(Disconnect::PubSubOutputBuffer),
                        }
                    }
                    Ok(None) => {
                        // Everything buffered is decoded: the pipeline's batch goes now.
                        self.send_batch();
                        // `CLIENT LIST` shows the connection as of its latest batch of requests.
                        self.publish(buf.len());
                        self.pipeline.decoding_done();
                        break;
                    }
                    // An oversized argument was passed over: refuse the request, read the next.
                    Err(e @ DecodeError::TooLarge { .. }) => {
                        self.shared.total_commands.fetch_add(1, Ordering::Relaxed);
                        // Inside MULTI it dooms the transaction, as any refused command does.
                        if let Some(multi) = &mut self.multi {
                            multi.doomed = true;
                        }
                        let pending = Pending::Ready(Frame::Error(e.to_string()), self.protocol);
                        self.send_batch();
                        tokio::select! {
                            sent = replies.send(pending) => if sent.is_err() {
                                return None;
                            },
                            _ = output.wait_exceeded() => return Some(Disconnect::OutputBuffer),
                        }
                    }
                    Err(e) => {
                        self.send_batch();
                        let _ =
                            replies.send(Pending::Ready(Frame::Error(e.to_string()), self.protocol)).await;
                        return None;
                    }
                }
            }
            if buf.len() > self.shared.config.max_request_bytes {
                let message = format!(
                    "ERR Protocol error: request is larger than {} bytes (max_request_bytes, \
                     client-query-buffer-limit)",
                    self.shared.config.max_request_bytes
                );
                let _ = replies.send(Pending::Ready(Frame::Error(message), self.protocol)).await;
                return Some(Disconnect::QueryBuffer);
            }
            if *stop.borrow() {
                return None;
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            // Idle only counts while no reply is pending: a client waiting for a slow write is
            // not idle. (Reading is cancel-safe, so a timeout that finds replies pending just
            // reads again.)
            let idle_timeout = self.shared.config.idle_timeout;
            let read = async {
                match idle_timeout {
                    Some(timeout) => tokio::time::timeout(timeout, reader.read_buf(&mut buf)).await.ok(),
                    None => Some(reader.read_buf(&mut buf).await),
                }
            };
            tokio::select! {
                _ = stop.changed() => return None,
                _ = output.wait_exceeded() => return Some(Disconnect::OutputBuffer),
                _ = handle.killed() => return None,
                _ = mailbox.wait_exceeded() => return Some(Disconnect::PubSubOutputBuffer),
                read = read => match read {
                    Some(Ok(n)) if n > 0 => {
                        self.shared.monitor.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        self.pipeline.decoding();
                    }
                    None if replies.capacity() < replies.max_capacity() || self.pipeline.unanswered() > 0 => {}
                    None => return Some(Disconnect::IdleTimeout),
                    // End of stream, or a socket error.
                    _ => return None,
                },
            }
        }
    }

    /// Answer or start one request; `true` if the connection should close after its reply.
    async fn dispatch(&mut self, args: Vec<Bytes>) -> (Pending, bool) {
        self.shared.total_commands.fetch_add(1, Ordering::Relaxed);
        let started = *self.started.get_or_insert_with(Instant::now);
        let slow_args = self.shared.monitor.slowlog.enabled().then(|| args.clone());
        self.last_command = command_name(&args);
        self.timing = Some(Timing { started, args: slow_args, lookups: None });
        // `CLIENT CACHING` speaks of the command after it only.
        let caching_was_set = self.caching.is_some() && !is_client_caching(&args);
        let (pending, close) = self.dispatch_parsed(args).await;
        if caching_was_set {
            self.caching = None;
        }
        // Answered here (not by a backend task): measured now.
        if let (Some(timing), Pending::Ready(..)) = (self.timing.take(), &pending) {
            if let Some(args) = timing.args {
                self.shared.monitor.slowlog.record(&args, started.elapsed(), self.addr, self.name.as_ref());
            }
        }
        (pending, close)
    }

    /// [`Client::dispatch`] without the measuring.
    async fn dispatch_parsed(&mut self, args: Vec<Bytes>) -> (Pending, bool) {
        let (name, request) = match self.check_and_parse(args, self.multi.is_some()) {
            Ok((name, Ok(request))) => (name, request),
            // Queued (known, right arity), refused by its own parsing: its reply inside EXEC.
            Ok((_, Err(error))) => {
                self.multi.get_or_insert_with(Multi::default).queued.push(Queued::Failed(error));
                return (Pending::Ready(Frame::simple("QUEUED"), self.protocol), false);
            }
            Err(error) => {
                // Inside MULTI, a command refused at queue time dooms the transaction (EXECABORT).
                if let Some(multi) = &mut self.multi {
                    multi.doomed = true;
                }
                return (Pending::Ready(error, self.protocol), false);
            }
        };
        // A request that does not join the batch being collected sends it first: nothing may
        // overtake it or wait for it (see `crate::batch`).
        let batch_access = self.batch_access(&request);
        if let Some(batch) = &self.collecting {
            let consistency = self.request_consistency();
            if !batch_access.is_some_and(|access| batch.collecting.accepts(access, consistency)) {
                self.send_batch();
            }
        }
        let ready = |frame: Frame, protocol| (Pending::Ready(frame, protocol), false);
        // Redis's subscribe mode (RESP2 only: RESP3 tells pushes from replies by their type).
        if self.subscribed > 0 && self.protocol == Protocol::Resp2 {
            match &request {
                Request::PubSub(r) if r.allowed_when_subscribed() => {}
                Request::Quit => {}
                Request::Ping(message) => {
                    let message = message.clone().unwrap_or_default();
                    return ready(
                        Frame::Array(vec![Frame::bulk("pong"), Frame::Bulk(message)]),
                        self.protocol,
                    );
                }
                _ => {
                    return ready(
                        Frame::error(format!(
                        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
                             RESET are allowed in this context"
                    )),
                        self.protocol,
                    )
                }
            }
        }
        // Redis Cluster: one command's keys must share a slot (checked before queueing in MULTI).
        let cross_slot = {
            let keys = request.keys();
            keys.len() > 1 && self.shared.backend.is_cluster() && cluster::cross_slot(keys)
        };
        if cross_slot {
            if let Some(multi) = &mut self.multi {
                multi.doomed = true;
            }
            return ready(Frame::error(cluster::CROSSSLOT), self.protocol);
        }
        // Redis Cluster refuses SORT's BY patterns and GET: the keys they read are unknown until
        // the sorted key is read, and could live on any shard (inside MULTI: at queue time).
        if self.shared.backend.is_cluster() {
            if let Some(error) = sort_refusal(&request) {
                if let Some(multi) = &mut self.multi {
                    multi.doomed = true;
                }
                return ready(Frame::error(error), self.protocol);
            }
        }
        // Scripts: the log entry carries the body, so EVALSHA becomes EVAL here.
        let request = match request {
            Request::EvalSha(mut args) => match self.shared.scripts.get(&args[1]) {
                Some(body) => {
                    let read_only = args[0].len() == "evalsha_ro".len();
                    args[0] = Bytes::from_static(if read_only { b"EVAL_RO" } else { b"EVAL" });
                    args[1] = Bytes::copy_from_slice(&body);
                    Request::Redis(args)
                }
                None => {
                    let error = Frame::error("NOSCRIPT No matching script. Please use EVAL.");
                    // As Redis: queued, and the error is its reply inside EXEC.
                    if let Some(multi) = &mut self.multi {
                        multi.queued.push(Queued::Failed(error));
                        return ready(Frame::simple("QUEUED"), self.protocol);
                    }
                    return ready(error, self.protocol);
                }
            },
            Request::Redis(args) if name == "eval" || name == "eval_ro" => {
                // As Redis: a script run with EVAL can then be run with EVALSHA.
                self.shared.scripts.load(&args[1]);
                Request::Redis(args)
            }
            request => request,
        };
        match (request, self.multi.is_some()) {
            (Request::Multi, false) => {
                self.multi = Some(Multi::default());
                ready(Frame::ok(), self.protocol)
            }
            (Request::Multi, true) => ready(Frame::error("ERR MULTI calls can not be nested"), self.protocol),
            (Request::Exec, false) => ready(Frame::error("ERR EXEC without MULTI"), self.protocol),
            (Request::Discard, false) => ready(Frame::error("ERR DISCARD without MULTI"), self.protocol),
            (Request::Discard, true) => {
                self.multi = None;
                self.watched.lock().expect("watch lock").clear();
                ready(Frame::ok(), self.protocol)
            }
            (Request::Watch(_), true) => {
                ready(Frame::error("ERR WATCH inside MULTI is not allowed"), self.protocol)
            }
            (Request::Watch(keys), false) => {
                let ctx = self.exec_context();
                let watched = self.watched.clone();
                let epoch = watched.lock().expect("watch lock").epoch;
                self.start(Access::Read, false, move || {
                    Box::pin(async move {
                        match exec::watch_revisions(&ctx, &keys).await {
                            Ok(seen) => {
                                let mut watched = watched.lock().expect("watch lock");
                                if watched.epoch == epoch {
                                    watched.keys.extend(seen);
                                }
                                Frame::ok()
                            }
                            Err(frame) => frame,
                        }
                    })
                })
                .await
            }
            (Request::Unwatch, false) => {
                self.watched.lock().expect("watch lock").clear();
                ready(Frame::ok(), self.protocol)
            }
            (Request::Exec, true) => {
                let multi = self.multi.take().unwrap_or_default();
                if multi.doomed {
                    self.watched.lock().expect("watch lock").clear();
                }
                if multi.doomed {
                    ready(
                        Frame::error("EXECABORT Transaction discarded because of previous errors."),
                        self.protocol,
                    )
                } else {
                    self.exec(multi.queued).await
                }
            }
            (Request::Quit, _) => (Pending::Ready(Frame::ok(), self.protocol), true),
            (request, true) => {
                let queued = self.multi.as_ref().map_or(0, |m| m.queued.len());
                if queued >= self.shared.backend.limits().max_txn_ops {
                    // Each queued command is at least one operation of the transaction: the rest
                    // could never run, and the queue must not grow without bound.
                    self.multi.get_or_insert_with(Multi::default).doomed = true;
                    let max = self.shared.backend.limits().max_txn_ops;
                    return ready(
                        Frame::error(format!(
                            "ERR a transaction holds at most {max} operations (max_txn_ops); EXEC will refuse it"
                        )),
                        self.protocol,
                    );
                }
                let queued = match request {
                    Request::Redis(_) => Queued::Data(request),
                    Request::PubSub(ref r) if r.allowed_when_subscribed() => {
                        self.multi.get_or_insert_with(Multi::default).doomed = true;
                        return ready(
                            Frame::error(format!(
                                "ERR {} is not supported inside MULTI by Concord",
                                name.to_uppercase()
                            )),
                            self.protocol,
                        );
                    }
                    request => Queued::Front(request),
                };
                self.multi.get_or_insert_with(Multi::default).queued.push(queued);
                ready(Frame::simple("QUEUED"), self.protocol)
            }
            (Request::PubSub(request), false) => (self.pubsub(request), false),
            (request, false) => match request.access() {
                Access::Connection => {
                    let (frame, close) = self.connection_command(request);
                    (Pending::Ready(frame, self.protocol), close)
                }
                access => {
                    if let Some(timing) = &mut self.timing {
                        timing.lookups = Lookups::of(&request);
                    }
                    if access == Access::Read && self.tracking.is_some() {
                        self.track_read(&request);
                    }
                    let ctx = self.exec_context();
                    let blocking =
                        matches!(&request, Request::Redis(args) if crate::blocking::is_blocking(&args[0]));
                    if access == Access::Write && !blocking {
                        if let Some(probe) = self.note_watched_writes(&request) {
                            let watched = self.watched.clone();
                            return self
                                .start(access, false, move || {
                                    let answer = exec::start_probing(request, probe, ctx);
                                    Box::pin(async move {
                                        let (frame, created) = answer.await;
                                        if created {
                                            watched.lock().expect("watch lock").dirty = true;
                                        }
                                        frame
                                    })
                                })
                                .await;
                        }
                    }
                    if batch_access == Some(access) {
                        return self.start_batched(request, access, ctx).await;
                    }
                    // `start` hands writes to the backend now, in request order.
                    self.start(access, blocking, move || exec::start(request, ctx)).await
                }
            },
        }
    }

    /// A write of this connection to keys it watched while absent (see [`Watched`]): plain writes
    /// that always create their keys (`SET`, `INCR`, `MSET`) make the watch dirty now; for an
    /// interpreter write, the keys whose existence to ask in the same step (`Some`). `None`: no
    /// such key.
    fn note_watched_writes(&mut self, request: &Request) -> Option<Vec<Vec<u8>>> {
        let mut watched = self.watched.lock().expect("watch lock");
        if watched.keys.is_empty() || watched.dirty {
            return None;
        }
        let keys = watched.absent_when_watched(&request.keys());
        if keys.is_empty() {
            return None;
        }
        match request {
            Request::Set(_) | Request::IncrBy { .. } | Request::MSet(_) => {
                watched.dirty = true;
                None
            }
            Request::Redis(_) => Some(keys),
            _ => None,
        }
    }

    /// EXEC (see "MULTI / EXEC / WATCH" in [`crate::exec`]): the front door's commands are
    /// answered now, in their places; the data commands go to the backend as one `RedisExec` with
    /// the watched revisions, and their replies fill the other places. A null array (a watched key
    /// changed) or an error stands for all.
    async fn exec(&mut self, queued: Vec<Queued>) -> (Pending, bool) {
        // Writes still in flight may yet find a watched key created (`Watched::dirty`).
        if !self.watched.lock().expect("watch lock").keys.is_empty() {
            self.wait_all_answered().await;
        }
        let mut data = Vec::new();
        let mut slots = Vec::with_capacity(queued.len());
        for queued in queued {
            slots.push(match queued {
                Queued::Data(request) => {
                    if request.access() == Access::Read && self.tracking.is_some() {
                        self.track_read(&request);
                    }
                    data.push(request);
                    ExecSlot::Data
                }
                Queued::Failed(error) => ExecSlot::Front(Box::pin(std::future::ready(error))),
                Queued::Front(request) => ExecSlot::Front(self.front_in_exec(request)),
            });
        }
        let ctx = self.exec_context();
        let watched = self.watched.clone();
        let cluster = self.shared.backend.is_cluster();
        // The watched keys are taken when the write starts: after every WATCH read before it has
        // answered (a write waits for the reads in flight).
        self.start(Access::Write, false, move || {
            let (dirty, watch) = {
                let mut watched = watched.lock().expect("watch lock");
                (watched.dirty, watched.clear())
            };
            if dirty {
                return Box::pin(std::future::ready(Frame::NullArray));
            }
            let keys = data.iter().flat_map(|r| r.keys()).chain(watch.iter().map(|(k, _)| &k[..]));
            if cluster && cluster::cross_slot(keys) {
                // As redis-server: the transaction is discarded, and EXEC says why.
                return Box::pin(std::future::ready(Frame::error(cluster::CROSSSLOT)));
            }
            // Nothing for the state machine to run or check: no log entry.
            let answer = if data.is_empty() && watch.is_empty() {
                Box::pin(std::future::ready(Frame::Array(vec![])))
            } else {
                exec::start_transaction(data, watch, ctx)
            };
            Box::pin(async move {
                let frame = answer.await;
                let Frame::Array(replies) = frame else { return frame };
                let mut replies = replies.into_iter();
                let mut out = Vec::with_capacity(slots.len());
                for slot in slots {
                    out.push(match slot {
                        ExecSlot::Data => replies.next().unwrap_or_else(|| {
                            Frame::error("ERR internal error: the transaction answered too few replies")
                        }),
                        ExecSlot::Front(reply) => reply.await,
                    });
                }
                Frame::Array(out)
            })
        })
        .await
    }

    /// The reply of a command queued in MULTI that the front door answers, as EXEC runs it.
    fn front_in_exec(&mut self, request: Request) -> BoxFuture<Frame> {
        let ready = |frame| -> BoxFuture<Frame> { Box::pin(std::future::ready(frame)) };
        match request {
            // The watched keys were checked when EXEC began: UNWATCH inside has nothing to forget.
            Request::Unwatch => ready(Frame::ok()),
            Request::PubSub(request) => match self.pubsub(request) {
                Pending::Ready(frame, _) => ready(frame),
                _ => ready(Frame::error("ERR internal error: a subscription inside EXEC")),
            },
            request => match request.access() {
                Access::Connection => ready(self.connection_command(request).0),
                // Reads the interpreter does not run (CLUSTER GETKEYSINSLOT…): after the
                // transaction, outside its atomic step.
                _ => {
                    let ctx = self.exec_context();
                    Box::pin(async move { exec::start(request, ctx).await })
                }
            },
        }
    }

    /// A Pub/Sub command (see [`crate::pubsub`]): answered at once, on this node's hub.
    fn pubsub(&mut self, request: PubSubRequest) -> Pending {
        let hub = &self.shared.pubsub;
        let protocol = self.protocol;
        match request {
            PubSubRequest::Subscribe(space, names) => {
                // Before registering: no message of these channels may overtake the confirmation.
                self.mailbox.hold();
                let frames = hub.subscribe(self.id, &self.mailbox, space, &names);
                self.subscribed = hub.subscribed(self.id);
                Pending::PubSub { frames, protocol, subscribe: true }
            }
            PubSubRequest::Unsubscribe(space, names) => {
                let frames = hub.unsubscribe(self.id, space, &names);
                self.subscribed = hub.subscribed(self.id);
                Pending::PubSub { frames, protocol, subscribe: false }
            }
            PubSubRequest::Publish(publication) => {
                Pending::Ready(Frame::Integer(hub.publish(&publication) as i64), protocol)
            }
            introspection => Pending::Ready(hub.introspect(&introspection), protocol),
        }
    }

    /// Unknown command, authentication, then the command's own parsing.
    /// `queueing`: inside MULTI, where interpreter commands are only checked for arity.
    /// The inner error: a command queued in MULTI that its own parsing refuses (its reply in EXEC).
    #[allow(clippy::type_complexity)]
    fn check_and_parse(
        &self,
        args: Vec<Bytes>,
        queueing: bool,
    ) -> Result<(&'static str, Result<Request, Frame>), Frame> {
        let Some(spec) = command::lookup(&args[0]) else {
            return Err(ReplyError::unknown_command(&args).into_frame());
        };
        let Some(user) = &self.user else {
            if ["auth", "hello", "quit"].contains(&spec.name) {
                return Ok((spec.name, Ok(command::parse(args).map_err(ReplyError::into_frame)?)));
            }
            return Err(Frame::error("NOAUTH Authentication required."));
        };
        let request = if queueing {
            match command::parse_queued(args).map_err(ReplyError::into_frame)? {
                Ok(request) => request,
                Err(error) => return Ok((spec.name, Err(error.into_frame()))),
            }
        } else {
            command::parse(args).map_err(ReplyError::into_frame)?
        };
        match self.shared.acl.check(user, need_of(&request)) {
            Ok(()) => Ok((spec.name, Ok(request))),
            Err(Denied::NoPerm { user, .. }) => Err(Frame::error(format!(
                "NOPERM User {user} has no permissions to run the '{}' command",
                spec.name
            ))),
            Err(gone @ Denied::Gone(_)) => Err(Frame::error(format!("NOAUTH {gone}: AUTH again"))),
        }
    }

    /// The consistency this connection's requests run at now.
    fn request_consistency(&self) -> RequestConsistency {
        // READONLY: reads at stale consistency, which a replica may serve (Redis Cluster's
        // meaning of it); writes are unaffected.
        if self.readonly {
            RequestConsistency { read: ReadConsistency::Stale, ..self.consistency }
        } else {
            self.consistency
        }
    }

    fn exec_context(&self) -> ExecContext {
        ExecContext {
            backend: self.shared.backend.clone(),
            consistency: self.request_consistency(),
            keys_max: self.shared.config.keys_max,
            max_reply_bytes: self.shared.config.max_output_bytes.unwrap_or(usize::MAX),
        }
    }

    /// Start a backend request of kind `access` once the pipeline allows it (see "Ordering" in the
    /// module docs). Its answer is polled by the writer ([`Pending::Answer`]) – or, for a
    /// `blocking` pop that may wait forever, computed on a task of its own that is aborted when the
    /// client leaves.
    async fn start(
        &mut self,
        access: Access,
        blocking: bool,
        begin: impl FnOnce() -> BoxFuture<Frame>,
    ) -> (Pending, bool) {
        if self.run.is_some_and(|run| run != access) {
            self.wait_all_answered().await;
        }
        self.run = Some(access);
        let answered = self.pipeline.started();
        let answer = begin();
        let timing = self.timing.take();
        let finish = self.finish();
        let answer = async move {
            let frame = answer.await;
            drop(answered);
            let size = finish.done(timing, &frame, &mut None);
            (frame, size)
        };
        let mut answer: BoxFuture<(Frame, usize)> = Box::pin(answer);
        if !blocking {
            // Polled once now, so that a backend whose future does its submitting lazily still
            // submits in request order, and concurrently with the rest of the pipeline; an answer
            // ready at once (a memory backend) is kept as it is.
            if let Some(ready) = ready_now(&mut answer) {
                answer = Box::pin(std::future::ready(ready));
            }
            return (Pending::Answer(answer, self.protocol), false);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let output = self.output.clone();
        let task = tokio::spawn(async move {
            if let Err(((_, size), _)) = reply_tx.send(answer.await).map_err(|e| (e, ())) {
                output.sub(size);
            }
        });
        self.blocking.retain(|task| !task.is_finished());
        self.blocking.push(task.abort_handle());
        (Pending::Waiting(reply_rx, self.protocol), false)
    }

    /// Whether `request` may join a batch (see [`crate::batch`]), and of which kind: a plain
    /// `GET` or `SET` of a pipelined client, outside MULTI and subscribe mode.
    fn batch_access(&self, request: &Request) -> Option<Access> {
        if self.multi.is_some() || self.subscribed > 0 || !(self.more_buffered || self.collecting.is_some()) {
            return None;
        }
        match request {
            Request::Get(_) => Some(Access::Read),
            Request::Set(_) => Some(Access::Write),
            _ => None,
        }
    }

    /// What a backend request's reply is finished with ([`Finish`]).
    fn finish(&self) -> Finish {
        Finish {
            shared: self.shared.clone(),
            addr: self.addr,
            name: self.name.clone(),
            output: self.output.clone(),
        }
    }

    /// Add a `GET` or `SET` to the pipeline's batch ([`crate::batch`]), starting one if none is
    /// being collected: the batch's first request queues the entry for all its replies
    /// ([`Pending::Batch`]), the others nothing ([`Pending::Joined`]). The batch goes to the
    /// backend once full, or when the reader flushes it.
    async fn start_batched(&mut self, request: Request, access: Access, ctx: ExecContext) -> (Pending, bool) {
        enum Add {
            Read(concord_kv::Query),
            Write(concord_kv::Command),
        }
        let (add, get) = match request {
            Request::Get(key) => (Add::Read(concord_kv::Query::get(key.to_vec())), Some(key)),
            Request::Set(set) => match exec::set_batch_command(&set, ctx.backend.now_ms()) {
                Ok(command) => (Add::Write(command), None),
                // Refused before it reaches the backend: its reply takes its place after the
                // batch before it.
                Err(error) => {
                    self.send_batch();
                    return (Pending::Ready(error, self.protocol), false);
                }
            },
            other => {
                self.send_batch();
                let error = Frame::error(format!("ERR internal error: {other:?} cannot be batched"));
                return (Pending::Ready(error, self.protocol), false);
            }
        };
        let mut pending = Pending::Joined;
        if self.collecting.is_none() {
            // A new batch: the switch between reads and writes waits as `start` does.
            if self.run.is_some_and(|run| run != access) {
                self.wait_all_answered().await;
            }
            self.run = Some(access);
            let (collecting, replies) = Collecting::new(access, ctx.consistency);
            let answered = self.pipeline.started();
            self.collecting = Some(OpenBatch { collecting, ctx, answered });
            pending = Pending::Batch(replies, self.protocol);
        }
        let batch = self.collecting.as_mut().expect("a batch is being collected");
        let request = Batched { get, timing: self.timing.take() };
        match add {
            Add::Read(query) => batch.collecting.read(query, request),
            Add::Write(command) => batch.collecting.write(command, request),
        }
        if batch.collecting.is_full() {
            self.send_batch();
        }
        (pending, false)
    }

    /// Send the batch being collected, if any, to the backend now; its replies are computed from
    /// its answers in request order.
    fn send_batch(&mut self) {
        // The next request reads the clock again: its wait does not belong to this batch.
        self.started = None;
        let Some(OpenBatch { collecting, ctx, answered }) = self.collecting.take() else {
            return;
        };
        let finish = self.finish();
        collecting.send(&*self.shared.backend, move |answers, requests| {
            Box::pin(async move {
                let mut answers = answers.into_iter();
                let mut replies = Vec::with_capacity(requests.len());
                let mut now = None;
                for request in requests {
                    let answer = answers.next().unwrap_or_else(|| {
                        Err(BackendError::Unavailable(
                            "the backend answered fewer requests than it was sent".into(),
                        ))
                    });
                    let frame = match &request.get {
                        Some(key) => exec::get_batch_reply(answer, key, &ctx).await,
                        None => exec::set_batch_reply(answer),
                    };
                    let size = finish.done(request.timing, &frame, &mut now);
                    replies.push((frame, size));
                }
                drop(answered);
                replies
            })
        });
    }

    /// Wait until every backend request started so far has its answer. The reader is not
    /// decoding meanwhile: the writer should write what it holds.
    async fn wait_all_answered(&mut self) {
        if self.pipeline.unanswered() > 0 {
            self.pipeline.decoding_done();
            self.pipeline.all_answered().await;
            self.pipeline.decoding();
            // The requests after this one started after the wait.
            self.started = None;
        }
    }

    /// The user `AUTH [user] pass` names, if the password is right (`default` without a user).
    fn check_password(&self, user: Option<&[u8]>, password: &[u8]) -> Result<String, Frame> {
        let user = String::from_utf8_lossy(user.unwrap_or(DEFAULT_USER.as_bytes())).into_owned();
        match self.shared.acl.authenticate(&user, password) {
            Ok(()) => Ok(user),
            Err(why) => Err(Frame::error(format!("WRONGPASS {why}"))),
        }
    }

    fn authenticate(&mut self, user: String) {
        self.user = Some(user);
        self.decoder.set_limits(self.shared.config.decode_limits);
    }

    /// `ACL …` (the caller checked the role: every subcommand but WHOAMI needs admin).
    fn acl_command(&mut self, request: AclRequest) -> Frame {
        let acl = &self.shared.acl;
        match request {
            AclRequest::WhoAmI => Frame::bulk(self.user.clone().unwrap_or_default()),
            AclRequest::Users => Frame::Array(acl.names().into_iter().map(Frame::bulk).collect()),
            AclRequest::List => Frame::Array(acl.list().into_iter().map(Frame::bulk).collect()),
            AclRequest::SetUser { name, rules } => match acl.set_user(&name, &rules) {
                Ok(()) => Frame::ok(),
                Err(e) => Frame::error(e),
            },
            AclRequest::DelUser(names) => match acl.delete_users(&names) {
                Ok(n) => Frame::Integer(n as i64),
                Err(e) => Frame::error(e),
            },
        }
    }

    /// Commands the connection answers itself; `true` to close after the reply.
    fn connection_command(&mut self, request: Request) -> (Frame, bool) {
        let frame = match request {
            Request::Ping(None) => Frame::simple("PONG"),
            Request::Ping(Some(message)) | Request::Echo(message) => Frame::Bulk(message),
            Request::Quit => return (Frame::ok(), true),
            Request::Script(sub) => match sub {
                ScriptRequest::Load(body) => Frame::bulk(self.shared.scripts.load(&body)),
                ScriptRequest::Exists(shas) => Frame::Array(
                    shas.iter()
                        .map(|sha| Frame::Integer(self.shared.scripts.get(sha).is_some() as i64))
                        .collect(),
                ),
                ScriptRequest::Flush => {
                    self.shared.scripts.flush();
                    Frame::ok()
                }
                // A script runs inside the state machine and stops by its budget: never busy here.
                ScriptRequest::Kill => Frame::error("NOTBUSY No scripts in execution right now."),
                ScriptRequest::Help => crate::introspect::help("SCRIPT", crate::introspect::SCRIPT_HELP),
            },
            Request::Auth { user, password } => {
                if user.is_none() && self.shared.acl.is_nopass(DEFAULT_USER) {
                    Frame::error(
                        "ERR AUTH <password> called without any password configured for the default user. \
                         Are you sure your configuration is correct?",
                    )
                } else {
                    match self.check_password(user.as_deref(), &password) {
                        Ok(user) => {
                            self.authenticate(user);
                            Frame::ok()
                        }
                        Err(e) => e,
                    }
                }
            }
            Request::Hello { protocol, auth, setname } => {
                if let Some((user, password)) = &auth {
                    match self.check_password(Some(user), password) {
                        Ok(user) => self.authenticate(user),
                        Err(e) => return (e, false),
                    }
                }
                if self.user.is_none() {
                    return (
                        Frame::error(
                            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                             select the RESP protocol version at the same time",
                        ),
                        false,
                    );
                }
                if let Some(name) = setname {
                    if let Err(e) = valid_name(&name, "Client names") {
                        return (e, false);
                    }
                    self.name = (!name.is_empty()).then_some(name);
                }
                if let Some(protocol) = protocol {
                    self.protocol = protocol;
                    self.resp3.store(protocol == Protocol::Resp3, Ordering::Relaxed);
                }
                Frame::map_of([
                    ("server", Frame::bulk("redis")),
                    ("version", Frame::bulk(REDIS_VERSION)),
                    ("proto", Frame::Integer(self.protocol.version())),
                    ("id", Frame::Integer(self.id as i64)),
                    ("mode", Frame::bulk(self.redis_mode())),
                    ("role", Frame::bulk("master")),
                    ("modules", Frame::Array(vec![])),
                ])
            }
            Request::Select(0) => Frame::ok(),
            // A Redis Cluster has only database 0 too, and says so in its own words.
            Request::Select(_) if self.shared.backend.is_cluster() => {
                Frame::error("ERR SELECT is not allowed in cluster mode")
            }
            Request::Select(_) => Frame::error("ERR DB index is out of range (Concord has one database: 0)"),
            Request::Client(ClientRequest::Kill { filter, old_form }) => {
                let me = self.id;
                let victims: Vec<_> =
                    self.shared.monitor.clients().into_iter().filter(|c| c.matches(&filter, me)).collect();
                if let Some(user) = &filter.user {
                    if !self.shared.acl.names().iter().any(|n| n.as_bytes() == user.as_ref()) {
                        return (
                            Frame::error(format!("ERR No such user '{}'", String::from_utf8_lossy(user))),
                            false,
                        );
                    }
                }
                for victim in &victims {
                    victim.kill();
                }
                // Killing itself: the reply goes out, then the connection closes.
                let close = victims.iter().any(|v| v.id == me);
                let frame = match (old_form, victims.len()) {
                    (true, 0) => Frame::error("ERR No such client"),
                    (true, _) => Frame::ok(),
                    (false, n) => Frame::Integer(n as i64),
                };
                return (frame, close);
            }
            Request::Client(client) => self.client_command(client),
            Request::Acl(acl) => self.acl_command(acl),
            Request::Consistency(None) => Frame::bulk(self.consistency_text()),
            Request::Consistency(Some(setting)) => {
                let model = self.shared.backend.model();
                let default_read = self.shared.config.default_consistency;
                match apply_consistency(setting, self.consistency, model, default_read) {
                    Ok(consistency) => {
                        self.consistency = consistency;
                        Frame::ok()
                    }
                    Err(message) => Frame::error(message),
                }
            }
            Request::Info(sections) => {
                let text = introspect::info(&self.info_sections(), &sections);
                Frame::Verbatim { format: *b"txt", text: text.into() }
            }
            Request::Command(query) => introspect::command(&query),
            Request::Cluster(query) => cluster::answer(&query, self.shared.backend.topology().as_ref()),
            Request::Asking | Request::ReadOnly | Request::ReadWrite if !self.shared.backend.is_cluster() => {
                Frame::error(cluster::CLUSTER_DISABLED)
            }
            // Moves answer -TRYAGAIN, never -ASK, so there is nothing for ASKING to change.
            Request::Asking => Frame::ok(),
            Request::ReadOnly => {
                self.readonly = true;
                Frame::ok()
            }
            Request::ReadWrite => {
                self.readonly = false;
                Frame::ok()
            }
            Request::ConfigGet(patterns) => introspect::config_get(&self.config_parameters(), &patterns),
            Request::ConfigSet(pairs) => self.config_set(&pairs),
            Request::ConfigResetStat => {
                let s = &self.shared;
                for counter in [&s.total_connections, &s.rejected_connections, &s.total_commands] {
                    counter.store(0, Ordering::Relaxed);
                }
                s.monitor.reset_stats();
                Frame::ok()
            }
            Request::ConfigHelp => introspect::help("CONFIG", introspect::CONFIG_HELP),
            Request::Slowlog(request) => {
                let slowlog = &self.shared.monitor.slowlog;
                match request {
                    SlowlogRequest::Get(count) => slowlog.get(count),
                    SlowlogRequest::Len => Frame::Integer(slowlog.len() as i64),
                    SlowlogRequest::Reset => {
                        slowlog.reset();
                        Frame::ok()
                    }
                    SlowlogRequest::Help => introspect::help("SLOWLOG", introspect::SLOWLOG_HELP),
                }
            }
            Request::Role => introspect::role(&self.shared.backend.replication()),
            Request::Time => {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Frame::Array(vec![
                    Frame::bulk(now.as_secs().to_string()),
                    Frame::bulk(now.subsec_micros().to_string()),
                ])
            }
            other => Frame::error(format!("ERR internal error: {other:?} is not a connection command")),
        };
        (frame, false)
    }

    /// A tracking client is about to read `request`'s keys: remember them, as its mode says
    /// (see [`crate::tracking`]).
    fn track_read(&self, request: &Request) {
        let Some(tracking) = &self.tracking else { return };
        let remember = if tracking.bcast {
            false
        } else if tracking.optin {
            self.caching == Some(true)
        } else if tracking.optout {
            self.caching != Some(false)
        } else {
            true
        };
        if remember {
            let keys: Vec<Bytes> = request.keys().iter().map(|k| Bytes::copy_from_slice(k)).collect();
            self.shared.tracker.remember(self.id, &keys);
        }
    }

    /// `CLIENT TRACKING`, `CACHING`, `GETREDIR`, `TRACKINGINFO`, in redis-server's words.
    fn tracking_command(&mut self, request: ClientRequest) -> Frame {
        match request {
            ClientRequest::Tracking(Some(settings)) => {
                match self.shared.tracker.turn_on(self.id, &settings) {
                    Ok(()) => {
                        self.tracking = self.shared.tracker.settings(self.id);
                        Frame::ok()
                    }
                    Err(e) => Frame::error(e),
                }
            }
            ClientRequest::Tracking(None) => {
                self.shared.tracker.turn_off(self.id);
                self.tracking = None;
                self.caching = None;
                Frame::ok()
            }
            ClientRequest::Caching(yes) => {
                let Some(t) = self.tracking.as_ref().filter(|t| t.optin || t.optout) else {
                    return Frame::error(
                        "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or \
                         OPTOUT mode enabled",
                    );
                };
                match yes {
                    Some(true) if !t.optin => Frame::error(
                        "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                    ),
                    Some(false) if !t.optout => Frame::error(
                        "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                    ),
                    Some(yes) => {
                        self.caching = Some(yes);
                        Frame::ok()
                    }
                    None => Frame::error("ERR syntax error"),
                }
            }
            ClientRequest::GetRedir => {
                Frame::Integer(self.tracking.as_ref().map_or(-1, |t| t.redirect.map_or(0, |id| id as i64)))
            }
            ClientRequest::TrackingInfo => {
                let mut flags = Vec::new();
                let mut redirect = -1;
                let mut prefixes = Vec::new();
                match &self.tracking {
                    None => flags.push("off"),
                    Some(t) => {
                        flags.push("on");
                        for (on, flag) in [(t.bcast, "bcast"), (t.optin, "optin"), (t.optout, "optout")] {
                            if on {
                                flags.push(flag);
                            }
                        }
                        match self.caching {
                            Some(true) => flags.push("caching-yes"),
                            Some(false) => flags.push("caching-no"),
                            None => {}
                        }
                        if t.noloop {
                            flags.push("noloop");
                        }
                        if t.revisions {
                            flags.push("revisions");
                        }
                        redirect = t.redirect.map_or(0, |id| id as i64);
                        if t.redirect.is_some_and(|id| !self.shared.tracker.is_connected(id)) {
                            flags.push("broken_redirect");
                        }
                        prefixes = t.prefixes.iter().cloned().map(Frame::Bulk).collect();
                    }
                }
                Frame::map_of([
                    ("flags", Frame::Set(flags.into_iter().map(Frame::bulk).collect())),
                    ("redirect", Frame::Integer(redirect)),
                    ("prefixes", Frame::Array(prefixes)),
                ])
            }
            other => Frame::error(format!("ERR internal error: {other:?} is not a tracking command")),
        }
    }

    fn client_command(&mut self, request: ClientRequest) -> Frame {
        match request {
            request @ (ClientRequest::Tracking(_)
            | ClientRequest::Caching(_)
            | ClientRequest::GetRedir
            | ClientRequest::TrackingInfo) => self.tracking_command(request),
            ClientRequest::SetName(name) => match valid_name(&name, "Client names") {
                Ok(()) => {
                    self.name = (!name.is_empty()).then_some(name);
                    Frame::ok()
                }
                Err(e) => e,
            },
            ClientRequest::GetName => Frame::bulk_or_null(self.name.clone()),
            ClientRequest::Id => Frame::Integer(self.id as i64),
            ClientRequest::SetInfo { attribute, value } => {
                let what = match attribute {
                    ClientInfoAttribute::LibName => "lib-name",
                    ClientInfoAttribute::LibVersion => "lib-ver",
                };
                if let Err(e) = valid_name(&value, what) {
                    return e;
                }
                let slot = match attribute {
                    ClientInfoAttribute::LibName => &mut self.lib_name,
                    ClientInfoAttribute::LibVersion => &mut self.lib_version,
                };
                *slot = (!value.is_empty()).then_some(value);
                Frame::ok()
            }
            ClientRequest::Info => {
                self.publish(0);
                Frame::bulk(self.handle.line(&self.consistency_text().replace(' ', ",")))
            }
            ClientRequest::List(filter) => {
                self.publish(0);
                let model = self.shared.backend.model();
                let mut text = String::new();
                for client in self.shared.monitor.clients() {
                    if client.matches(&filter, self.id) {
                        let consistency = describe_consistency(client.snapshot().consistency, model);
                        text.push_str(&client.line(&consistency.replace(' ', ",")));
                    }
                }
                Frame::bulk(text)
            }
            ClientRequest::Help => introspect::help("CLIENT", introspect::CLIENT_HELP),
            ClientRequest::Kill { .. } => {
                Frame::error("ERR internal error: CLIENT KILL is answered by the connection command")
            }
        }
    }

    /// What `CONSISTENCY` shows for this connection.
    fn consistency_text(&self) -> String {
        describe_consistency(self.consistency, self.shared.backend.model())
    }

    /// INFO's sections, in redis-server's order, then the backend's own (`Raft`, `Dynamo`…).
    fn info_sections(&self) -> Vec<(String, Vec<(String, String)>)> {
        let s = &self.shared;
        let m = &s.monitor;
        let pairs = |items: Vec<(&str, String)>| -> Vec<(String, String)> {
            items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let uptime = s.started.elapsed().as_secs();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let tracking = s.tracker.counts();
        let mut sections = vec![
            (
                "Server".to_string(),
                pairs(vec![
                    ("redis_version", REDIS_VERSION.to_string()),
                    ("concord_version", env!("CARGO_PKG_VERSION").to_string()),
                    ("redis_mode", self.redis_mode().to_string()),
                    ("os", format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)),
                    ("arch_bits", (usize::BITS).to_string()),
                    ("multiplexing_api", "tokio".to_string()),
                    ("process_id", std::process::id().to_string()),
                    ("run_id", m.run_id.clone()),
                    ("tcp_port", s.port.to_string()),
                    ("server_time_usec", now.as_micros().to_string()),
                    ("uptime_in_seconds", uptime.to_string()),
                    ("uptime_in_days", (uptime / 86_400).to_string()),
                ])
                .into_iter()
                .chain(s.backend.cluster_id().map(|id| ("concord_cluster_id".to_string(), id)))
                .collect(),
            ),
            (
                "Clients".to_string(),
                pairs(vec![
                    ("connected_clients", s.connected_clients.load(Ordering::Relaxed).to_string()),
                    ("maxclients", s.config.max_clients.to_string()),
                    ("blocked_clients", m.blocked_clients.load(Ordering::Relaxed).to_string()),
                    ("tracking_clients", tracking.0.to_string()),
                ]),
            ),
            ("Memory".to_string(), pairs(introspect::memory_fields(crate::monitor::process_memory()))),
            (
                "Stats".to_string(),
                pairs(vec![
                    ("total_connections_received", load(&s.total_connections)),
                    ("total_commands_processed", load(&s.total_commands)),
                    ("instantaneous_ops_per_sec", m.ops_per_sec().to_string()),
                    ("total_net_input_bytes", load(&m.net_input_bytes)),
                    ("total_net_output_bytes", load(&m.net_output_bytes)),
                    ("rejected_connections", load(&s.rejected_connections)),
                    ("keyspace_hits", load(&m.keyspace_hits)),
                    ("keyspace_misses", load(&m.keyspace_misses)),
                    ("tracking_total_keys", tracking.1.to_string()),
                    ("tracking_total_items", tracking.1.to_string()),
                    ("tracking_total_prefixes", tracking.2.to_string()),
                ]),
            ),
            ("Replication".to_string(), introspect::replication_fields(&s.backend.replication(), &m.run_id)),
            (
                "Cluster".to_string(),
                pairs(vec![("cluster_enabled", if s.backend.is_cluster() { "1" } else { "0" }.to_string())]),
            ),
            ("Keyspace".to_string(), introspect::keyspace_fields(s.backend.keyspace())),
        ];
        sections.extend(s.backend.info());
        sections
    }

    /// Publish this connection's state for the others' `CLIENT LIST` (see [`crate::monitor`]).
    fn publish(&self, input_buffered: usize) {
        self.handle.publish(ClientSnapshot {
            name: self.name.clone(),
            lib_name: self.lib_name.clone(),
            lib_version: self.lib_version.clone(),
            user: self.user.clone(),
            last_command: self.last_command.to_string(),
            last_active: Instant::now(),
            resp: self.protocol.version(),
            multi: self.multi.as_ref().map(|m| m.queued.len()),
            readonly: self.readonly,
            consistency: self.consistency,
            input_buffered,
            output_pending: self.output.bytes.load(Ordering::Relaxed),
        });
    }

    /// `CONFIG SET name value …`: all or nothing, as redis-server 7. Only the slow log's settings
    /// change at runtime; the others are Concord's configuration file's.
    fn config_set(&self, pairs: &[(Bytes, Bytes)]) -> Frame {
        let slowlog = &self.shared.monitor.slowlog;
        let known = self.config_parameters();
        let mut changes = Vec::new();
        for (name, value) in pairs {
            let name_text = String::from_utf8_lossy(name).to_ascii_lowercase();
            let failed = |why: &str| {
                Frame::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name_text}') - {why}"
                ))
            };
            let number = std::str::from_utf8(value).ok().and_then(|v| v.parse::<i64>().ok());
            match name_text.as_str() {
                "slowlog-log-slower-than" => match number {
                    Some(n) => changes.push((true, n)),
                    None => return failed("argument couldn't be parsed into an integer"),
                },
                "slowlog-max-len" => match number {
                    Some(n) if n >= 0 => changes.push((false, n)),
                    Some(_) => return failed("argument must be between 0 and 9223372036854775807 inclusive"),
                    None => return failed("argument couldn't be parsed into an integer"),
                },
                other if known.iter().any(|(k, _)| k == other) => {
                    return failed(
                        "Concord sets it in its configuration file; at runtime only slowlog-log-slower-than \
                         and slowlog-max-len change",
                    )
                }
                _ => {
                    return Frame::error(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                        String::from_utf8_lossy(name)
                    ))
                }
            }
        }
        for (slower_than, n) in changes {
            if slower_than {
                slowlog.slower_than_us.store(n, Ordering::Relaxed);
            } else {
                slowlog.max_len.store(n as usize, Ordering::Relaxed);
                slowlog.trim();
            }
        }
        Frame::ok()
    }

    /// What `HELLO` and `INFO` call this server: `cluster` when the backend is sharded.
    fn redis_mode(&self) -> &'static str {
        if self.shared.backend.is_cluster() {
            "cluster"
        } else {
            "standalone"
        }
    }

    /// What `CONFIG GET` reports. No Redis persistence applies (`save` empty, `appendonly no`):
    /// Concord's durability is its Raft log.
    fn config_parameters(&self) -> Vec<(String, String)> {
        let c = &self.shared.config;
        let slowlog = &self.shared.monitor.slowlog;
        let mut parameters: Vec<(String, String)> = [
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("databases", "1".into()),
            ("port", self.shared.port.to_string()),
            ("bind", self.shared.bind.map(|a| a.ip().to_string()).unwrap_or_default()),
            ("slowlog-log-slower-than", slowlog.slower_than_us.load(Ordering::Relaxed).to_string()),
            ("slowlog-max-len", slowlog.max_len.load(Ordering::Relaxed).to_string()),
            ("maxclients", c.max_clients.to_string()),
            ("timeout", c.idle_timeout.map_or(0, |t| t.as_secs()).to_string()),
            // The largest argument taken (a longer one is refused, the connection kept).
            (
                "proto-max-bulk-len",
                c.decode_limits.max_arg_bytes.min(c.decode_limits.max_bulk_bytes).to_string(),
            ),
            ("client-query-buffer-limit", c.max_request_bytes.to_string()),
            // Redis's form: class, hard limit, soft limit, soft seconds (only normal clients here).
            (
                "client-output-buffer-limit",
                format!(
                    "normal {} 0 0 pubsub {} 0 0",
                    c.max_output_bytes.unwrap_or(0),
                    c.max_pubsub_output_bytes
                ),
            ),
            ("maxmemory", "0".into()),
            ("maxmemory-policy", "noeviction".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // The program's own answers replace these, or are added.
        for (name, value) in &c.parameters {
            match parameters.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value.clone(),
                None => parameters.push((name.clone(), value.clone())),
            }
        }
        parameters
    }
}

/// `CONSISTENCY` without arguments: the Raft read level, or the effective `r=… w=… n=…` (the
/// connection's overrides, else the backend's defaults).
fn describe_consistency(current: RequestConsistency, model: ConsistencyModel) -> String {
    match model {
        ConsistencyModel::Strong => consistency_name(current.read).to_string(),
        ConsistencyModel::Eventual { n, r, w } => {
            format!("r={} w={} n={n}", current.r.unwrap_or(r), current.w.unwrap_or(w))
        }
    }
}

/// The connection's consistency after `setting`, or the error (without the `-`) if `setting` does
/// not fit the backend's model (see "Consistency per connection" in the module docs).
fn apply_consistency(
    setting: ConsistencySetting,
    current: RequestConsistency,
    model: ConsistencyModel,
    default_read: ReadConsistency,
) -> Result<RequestConsistency, String> {
    match (model, setting) {
        (ConsistencyModel::Strong, ConsistencySetting::Read(read)) => Ok(RequestConsistency::strong(read)),
        (ConsistencyModel::Strong, ConsistencySetting::Default) => {
            Ok(RequestConsistency::strong(default_read))
        }
        (ConsistencyModel::Strong, ConsistencySetting::Level(_) | ConsistencySetting::Quorums { .. }) => {
            Err("ERR quorum settings (ONE, QUORUM, ALL, R, W) apply to the eventual mode (concord up --mode \
             eventual); this node runs Raft: use linearizable, lease, stale or DEFAULT"
                .into())
        }
        (ConsistencyModel::Eventual { .. }, ConsistencySetting::Read(read)) => Err(format!(
            "ERR this node runs the eventual mode: reads are quorum reads, not {} Raft reads; use ONE, \
             QUORUM, ALL, R <r>, W <w> or DEFAULT",
            consistency_name(read)
        )),
        (ConsistencyModel::Eventual { .. }, ConsistencySetting::Default) => {
            Ok(RequestConsistency { r: None, w: None, ..current })
        }
        (ConsistencyModel::Eventual { n, .. }, ConsistencySetting::Level(level)) => {
            let k = level.replicas(n);
            Ok(RequestConsistency { r: Some(k), w: Some(k), ..current })
        }
        (ConsistencyModel::Eventual { n, .. }, ConsistencySetting::Quorums { r, w }) => {
            let check = |name: &str, k: Option<usize>| match k {
                Some(k) if !(1..=n).contains(&k) => Err(format!(
                    "ERR {name} must be between 1 and {n} (N, the replicas of each key on this cluster)"
                )),
                _ => Ok(()),
            };
            check("R", r)?;
            check("W", w)?;
            Ok(RequestConsistency { r: r.or(current.r), w: w.or(current.w), ..current })
        }
    }
}

/// The command's name as Redis shows it in `CLIENT LIST` (`get`, `client|list`); an unknown
/// command's as sent, lowercased (Redis says `NULL` before any).
fn command_name(args: &[Bytes]) -> Cow<'static, str> {
    match command::lookup(&args[0]) {
        Some(spec) => match args.get(1).and_then(|sub| spec.subcommand(sub)) {
            Some(sub) => Cow::Borrowed(sub.name),
            None => Cow::Borrowed(spec.name),
        },
        None => Cow::Owned(String::from_utf8_lossy(&args[0][..args[0].len().min(64)]).to_lowercase()),
    }
}

/// Client names and library names: printable ASCII without spaces, as Redis requires.
fn valid_name(name: &[u8], what: &str) -> Result<(), Frame> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(Frame::error(format!("ERR {what} cannot contain spaces, newlines or special characters.")))
    }
}

/// What a request needs of the user's role ([`crate::acl`]): its keys' access, or admin for the
/// ACL commands that read or change users.
fn need_of(request: &Request) -> Need {
    match request {
        // Publishing is writing to the cluster; listening and counting listeners, reading.
        Request::PubSub(PubSubRequest::Publish(_)) => Need::Write,
        Request::PubSub(_) => Need::Read,
        Request::Acl(AclRequest::WhoAmI) => Need::Nothing,
        Request::Acl(_) => Need::Admin,
        // Seeing or closing other clients, and changing settings and counters.
        Request::Client(ClientRequest::List(_) | ClientRequest::Kill { .. })
        | Request::ConfigSet(_)
        | Request::ConfigResetStat
        | Request::Slowlog(SlowlogRequest::Reset) => Need::Admin,
        request => match request.access() {
            Access::Connection => Need::Nothing,
            Access::Read => Need::Read,
            Access::Write => Need::Write,
        },
    }
}

/// Redis Cluster's refusal of a `SORT`/`SORT_RO` request's `BY` pattern or `GET` (or the option
/// error before it), if `request` is one.
fn sort_refusal(request: &Request) -> Option<String> {
    let Request::Redis(args) = request else { return None };
    let read_only = args[0].eq_ignore_ascii_case(b"sort_ro");
    if !read_only && !args[0].eq_ignore_ascii_case(b"sort") {
        return None;
    }
    let args: Vec<Vec<u8>> = args[1..].iter().map(|a| a.to_vec()).collect();
    match concord_kv::redis::sort::parse(&args, read_only, true) {
        Err(concord_kv::Reply::Error(line)) => Some(line),
        _ => None,
    }
}

//! The client side of a node: submit a command or a query and get *one* honest answer.
//!
//! Every front door (HTTP, RESP) goes through a [`NodeHandle`]. It hides three things clients should
//! not have to care about, and is careful about what it may hide:
//!
//! * **Which node leads.** A write goes to the local driver when this node leads; otherwise it is
//!   *forwarded* over the peer transport to the leader (a [`crate::wire::Frame::Forward`] frame that
//!   the leader's driver answers with a `ForwardReply`). A read goes to the local driver first
//!   whatever the role: a follower serves it by ReadIndex ([`NodeHandle::read`]). Hints in
//!   `NotLeader` answers steer the next attempt; with no leader known, the handle waits briefly
//!   for an election.
//! * **Retries.** Every write carries a Raft client session `(client, seq)` (dissertation §6.3), and
//!   every retry of one write reuses it. So a write whose first attempt timed out, or whose leader
//!   answered `Unknown` (deposed with the entry in its log), can be retried safely: if the first
//!   attempt was applied, the retry returns its remembered output instead of applying twice.
//! * **Deadlines.** A request gets `request_timeout` in total. When it runs out the client is told
//!   [`ClientError::Timeout`] – or [`ClientError::Unknown`] if the last definite answer was Raft's
//!   `Unknown` – and the write may or may not have happened. It is never reported as a success.
//!
//! ## Session ids
//! A session is one client id used by one request at a time (Raft's session table keeps only the
//! latest `seq` per client, so concurrent requests on one id would make each other stale). The
//! handle keeps a pool: a write takes a free id, uses its next `seq`, and returns it. Ids are
//! `node_id << 20 | slot`, unique in the cluster; `seq` starts at the wall-clock microsecond the
//! node booted, so a restarted node's sessions continue above those of its previous life (unless
//! the clock went backwards across the restart – then its first writes on reused ids answer
//! `Unknown`, never a wrong success).

use crate::config::{PeerConfig, ReadMode};
use crate::driver::{BatchReply, Clock, Input, ReplyTo, Status};
pub use crate::front::ClientError;
use crate::metrics::Metrics;
use crate::peer_file::PeerFile;
use crate::transport::Transport;
use crate::wire::Frame;
use crate::{KvRequest, KvResponse};
use concord_core::{ClientId, NodeId, Time};
use concord_kv::{Command, Query, Response};
use concord_raft::{RaftRequest, RaftResponse, ReadConsistency, Session};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// One attempt (local or forwarded) waits at most this long before the handle tries again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause between attempts while no leader is known or one just stepped down.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Session slots per node (ids `node << 20 | slot`).
const MAX_SESSION_SLOTS: u32 = 1 << 20;

struct Inner {
    me: NodeId,
    tx: mpsc::Sender<Input>,
    status: watch::Receiver<Status>,
    transport: Option<Transport>,
    forwards: Mutex<HashMap<u64, oneshot::Sender<KvResponse>>>,
    next_forward: AtomicU64,
    sessions: Mutex<Vec<(ClientId, u64)>>,
    next_slot: AtomicU64,
    seq_base: u64,
    clock: Clock,
    timeout: Duration,
    read_default: ReadMode,
    peers: RwLock<BTreeMap<u32, PeerConfig>>,
    peer_file: PeerFile,
    limits: concord_kv::KvLimits,
    metrics: Arc<Metrics>,
    disk_space: Arc<crate::disk_space::DiskSpace>,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

/// Everything a handle is built from (see [`crate::node::Node::start`]).
pub struct HandleParts {
    pub me: NodeId,
    pub tx: mpsc::Sender<Input>,
    pub status: watch::Receiver<Status>,
    pub transport: Option<Transport>,
    pub clock: Clock,
    pub timeout: Duration,
    pub read_default: ReadMode,
    pub peers: Vec<PeerConfig>,
    /// Where the peers learned at run time are kept (see [`crate::peer_file`]).
    pub peer_file: PeerFile,
    pub limits: concord_kv::KvLimits,
    pub metrics: Arc<Metrics>,
    /// Whether the data disk is full (writes are then refused here, before they are proposed).
    pub disk_space: Arc<crate::disk_space::DiskSpace>,
}

impl NodeHandle {
    pub fn new(p: HandleParts) -> NodeHandle {
        let boot_micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
        NodeHandle {
            inner: Arc::new(Inner {
                me: p.me,
                tx: p.tx,
                status: p.status,
                transport: p.transport,
                forwards: Mutex::new(HashMap::new()),
                next_forward: AtomicU64::new(1),
                sessions: Mutex::new(Vec::new()),
                next_slot: AtomicU64::new(0),
                seq_base: boot_micros,
                clock: p.clock,
                timeout: p.timeout,
                read_default: p.read_default,
                peers: RwLock::new(p.peers.into_iter().map(|p| (p.id, p)).collect()),
                peer_file: p.peer_file,
                limits: p.limits,
                metrics: p.metrics,
                disk_space: p.disk_space,
            }),
        }
    }

    pub fn id(&self) -> NodeId {
        self.inner.me
    }

    /// The node's clock (what commands carry as `now`).
    pub fn now(&self) -> Time {
        self.inner.clock.now()
    }

    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn peer(&self, id: u32) -> Option<PeerConfig> {
        self.inner.peers.read().expect("peers lock").get(&id).cloned()
    }

    /// Every member this node knows the addresses of, itself included.
    pub fn peers(&self) -> Vec<PeerConfig> {
        self.inner.peers.read().expect("peers lock").values().cloned().collect()
    }

    /// Learn the addresses of a node about to join ([`crate::peer_file::learn_peer`]).
    pub fn learn_peer(&self, peer: PeerConfig) -> Result<(), ClientError> {
        let inner = &self.inner;
        crate::peer_file::learn_peer(inner.transport.as_ref(), &inner.peers, Some(&inner.peer_file), peer)
    }

    /// A membership or leadership change, routed to the leader. Not retried after an ambiguous
    /// outcome (the caller checks `GET /v1/cluster`).
    pub async fn admin(&self, request: concord_raft::AdminRequest) -> Result<KvResponse, ClientError> {
        let me = self.inner.me;
        let deadline = Instant::now() + self.inner.timeout;
        let mut target = self.leader_guess().unwrap_or(me);
        while Instant::now() < deadline {
            let attempt = self.begin(target, RaftRequest::Admin(request));
            match self.complete(attempt, deadline).await {
                Some(RaftResponse::NotLeader { hint }) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    target = hint.or_else(|| self.leader_guess()).unwrap_or(me);
                }
                Some(RaftResponse::Unknown { reason }) => return Err(ClientError::Unknown(reason)),
                Some(RaftResponse::Rejected { reason }) => return Err(ClientError::Rejected(reason)),
                Some(answer) => return Ok(answer),
                None => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    target = self.leader_guess().unwrap_or(me);
                }
            }
        }
        Err(ClientError::Timeout)
    }

    /// The store's limits (equal on every node).
    pub fn limits(&self) -> &concord_kv::KvLimits {
        &self.inner.limits
    }

    pub fn default_read(&self) -> ReadConsistency {
        self.inner.read_default.consistency()
    }

    /// Replicate a command (with a session: applied at most once, however often retried).
    ///
    /// The first attempt is **submitted before this returns** (to the local driver's queue or the
    /// leader's peer queue, both FIFO), so writes issued one after another – a RESP pipeline – are
    /// proposed in that order while the leader is stable. (After a leader change, a retried write
    /// can land after a later one; each is still applied at most once.)
    pub fn write(&self, command: Command) -> BoxFuture<'static, Result<Response, ClientError>> {
        if let Some(why) = self.inner.disk_space.refusal() {
            return Box::pin(std::future::ready(Err(ClientError::NoSpace(why))));
        }
        let session = match self.take_session() {
            Ok(s) => s,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let request = RaftRequest::Propose { session: Some(session), command };
        let target = self.leader_guess().unwrap_or(self.inner.me);
        let first = self.begin(target, request.clone());
        let me = self.clone();
        Box::pin(async move {
            let result = me.route(request, true, Some((target, first))).await;
            me.return_session(session);
            result
        })
    }

    /// Answer a query at the given consistency.
    ///
    /// Every read goes to the **local** driver first, whatever this node's role: a leader serves
    /// it (ReadIndex or lease), a follower serves a linearizable or lease read from its own state
    /// machine once the leader gave it a read index (`concord-raft`'s `read.rs`, follower reads),
    /// and any node serves a stale read. Only if the local node answers `NotLeader` (no known
    /// leader, a leader change, a lost read-index request) does the read fall back to the
    /// route-to-leader retry loop of writes.
    ///
    /// Like [`NodeHandle::write`], the first attempt is **submitted before this returns**, so reads
    /// issued one after another (a RESP pipeline, polled in order) are all in flight at once and
    /// share the leader's ReadIndex rounds.
    pub fn read(
        &self,
        query: Query,
        consistency: ReadConsistency,
    ) -> BoxFuture<'static, Result<Response, ClientError>> {
        let request = RaftRequest::Read { consistency, query };
        let me = self.inner.me;
        if consistency == ReadConsistency::Stale {
            // A stale read is answered by this replica, whatever its role: no forwarding.
            let deadline = Instant::now() + self.inner.timeout;
            let attempt = self.begin(me, request);
            let handle = self.clone();
            return Box::pin(async move {
                match handle.complete(attempt, deadline).await {
                    Some(r) => Self::interpret(r).map_err(ClientError::of_read),
                    None => Err(ClientError::ReadTimeout),
                }
            });
        }
        let first = self.begin(me, request.clone());
        let handle = self.clone();
        Box::pin(async move {
            handle.route(request, false, Some((me, first))).await.map_err(ClientError::of_read)
        })
    }

    /// Answer many queries at one consistency (a client's pipeline of reads): **one** driver input
    /// for all of them, one reply channel and one deadline, submitted before this returns (as
    /// [`NodeHandle::read`] submits). The answers come in the order of `queries`. A query the
    /// local node cannot answer (no leader known, a leader change, no answer in time) falls back
    /// to [`NodeHandle::read`]'s retry loop, under the batch's deadline – so each query gets
    /// exactly one answer, as it would alone.
    pub fn read_batch(
        &self,
        queries: Vec<Query>,
        consistency: ReadConsistency,
    ) -> BoxFuture<'static, Vec<Result<Response, ClientError>>> {
        if queries.is_empty() {
            return Box::pin(std::future::ready(Vec::new()));
        }
        let deadline = Instant::now() + self.inner.timeout;
        let requests: Vec<KvRequest> =
            queries.into_iter().map(|query| RaftRequest::Read { consistency, query }).collect();
        let copies = requests.clone();
        let submitted = self.begin_batch(requests);
        let handle = self.clone();
        Box::pin(async move {
            let mut answers = handle.complete_batch(submitted, deadline).await;
            let mut results = Vec::with_capacity(copies.len());
            for (i, request) in copies.into_iter().enumerate() {
                let answer = answers.as_mut().and_then(|a| a.get_mut(i)).and_then(Option::take);
                let result = match answer.map(Self::interpret) {
                    // A stale read is this replica's to answer: no retry elsewhere.
                    Some(result) if consistency == ReadConsistency::Stale => result,
                    None if consistency == ReadConsistency::Stale => Err(ClientError::ReadTimeout),
                    Some(Err(ClientError::NotLeader { .. })) | None => {
                        handle.route_until(request, false, None, deadline, None).await
                    }
                    Some(result) => result,
                };
                results.push(result.map_err(ClientError::of_read));
            }
            results
        })
    }

    /// Replicate many commands (a client's pipeline of writes), each with its own session:
    /// **one** driver input when this node leads, so they are proposed together, in order, and
    /// become one log append and one fsync; submitted before this returns. A command the batch
    /// did not settle (a leader change, an unknown outcome, no answer in time) is retried alone
    /// with its session – applied at most once – under the batch's deadline. On a follower each
    /// command is forwarded as [`NodeHandle::write`] forwards it.
    pub fn write_batch(
        &self,
        commands: Vec<Command>,
    ) -> BoxFuture<'static, Vec<Result<Response, ClientError>>> {
        let me = self.inner.me;
        if commands.is_empty() {
            return Box::pin(std::future::ready(Vec::new()));
        }
        if self.leader_guess().is_some_and(|leader| leader != me) {
            let writes: Vec<_> = commands.into_iter().map(|command| self.write(command)).collect();
            // Each forwarded already (submitted in order); join_all answers in the same order.
            return Box::pin(futures::future::join_all(writes));
        }
        if let Some(why) = self.inner.disk_space.refusal() {
            let results = commands.iter().map(|_| Err(ClientError::NoSpace(why.clone()))).collect();
            return Box::pin(std::future::ready(results));
        }
        let deadline = Instant::now() + self.inner.timeout;
        let mut results: Vec<Option<Result<Response, ClientError>>> = Vec::with_capacity(commands.len());
        let mut requests = Vec::with_capacity(commands.len());
        let mut sessions = Vec::with_capacity(commands.len());
        let mut slots = Vec::with_capacity(commands.len());
        for command in commands {
            match self.take_session() {
                Ok(session) => {
                    slots.push(Some(requests.len()));
                    sessions.push(session);
                    requests.push(RaftRequest::Propose { session: Some(session), command });
                    results.push(None);
                }
                Err(e) => {
                    slots.push(None);
                    results.push(Some(Err(e)));
                }
            }
        }
        let copies = requests.clone();
        let submitted = self.begin_batch(requests);
        let handle = self.clone();
        Box::pin(async move {
            let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
            let mut answers = handle.complete_batch(submitted, attempt_deadline).await;
            let mut copies = copies.into_iter();
            for (result, slot) in results.iter_mut().zip(slots) {
                let Some(i) = slot else { continue };
                let request = copies.next().expect("a copy per proposal");
                let answer = answers.as_mut().and_then(|a| a.get_mut(i)).and_then(Option::take);
                *result = Some(match answer.map(Self::interpret) {
                    Some(Err(ClientError::Unknown(reason))) => {
                        handle.route_until(request, true, None, deadline, Some(reason)).await
                    }
                    Some(Err(ClientError::NotLeader { .. })) | None => {
                        handle.route_until(request, true, None, deadline, None).await
                    }
                    Some(result) => result,
                });
            }
            handle.return_sessions(sessions);
            results.into_iter().map(|r| r.expect("every command answered")).collect()
        })
    }

    /// Hand a batch of requests to the local driver now, in one input (waiting for room only if
    /// its queue is full).
    fn begin_batch(&self, requests: Vec<KvRequest>) -> BatchAttempt {
        let (reply, rx) = BatchReply::new(requests.len());
        match self.inner.tx.try_send(Input::Batch { requests, reply }) {
            Ok(()) => BatchAttempt::Sent(rx),
            Err(mpsc::error::TrySendError::Full(input)) => BatchAttempt::Queued(Box::new(input), rx),
            Err(mpsc::error::TrySendError::Closed(_)) => BatchAttempt::Failed,
        }
    }

    /// A batch's answers, one slot per request (`None` for all if none came by `deadline`).
    async fn complete_batch(
        &self,
        attempt: BatchAttempt,
        deadline: Instant,
    ) -> Option<Vec<Option<KvResponse>>> {
        let rx = match attempt {
            BatchAttempt::Sent(rx) => rx,
            BatchAttempt::Queued(input, rx) => {
                let send = tokio::time::timeout_at(deadline.into(), self.inner.tx.send(*input));
                if !matches!(send.await, Ok(Ok(()))) {
                    return None;
                }
                rx
            }
            BatchAttempt::Failed => return None,
        };
        tokio::time::timeout_at(deadline.into(), rx).await.ok()?.ok()
    }

    /// A request another node forwarded to us: hand it to our driver, answer over the transport.
    pub(crate) fn submit_forwarded(&self, from: NodeId, id: u64, request: KvRequest) {
        let input = Input::Request { request, reply: ReplyTo::Peer { node: from, id } };
        if self.inner.tx.try_send(input).is_err() {
            self.inner.metrics.inbound_dropped.inc();
        }
    }

    /// The answer to a request we forwarded.
    pub(crate) fn complete_forward(&self, id: u64, response: KvResponse) {
        let waiter = self.inner.forwards.lock().expect("forwards lock").remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(response);
        }
    }

    /// A Raft message from a peer, for the driver (dropped and counted if the driver is swamped).
    pub(crate) fn deliver_message(&self, from: NodeId, msg: crate::RaftMessage) {
        if self.inner.tx.try_send(Input::Message { from, msg }).is_err() {
            self.inner.metrics.inbound_dropped.inc();
        }
    }

    fn take_session(&self) -> Result<Session, ClientError> {
        if let Some((client, seq)) = self.inner.sessions.lock().expect("sessions lock").pop() {
            return Ok(Session { client, seq });
        }
        let slot = self.inner.next_slot.fetch_add(1, Ordering::Relaxed);
        if slot >= u64::from(MAX_SESSION_SLOTS) {
            return Err(ClientError::Unavailable("too many concurrent writes on this node".into()));
        }
        let client = ClientId((self.inner.me.0 << 20) | slot as u32);
        Ok(Session { client, seq: self.inner.seq_base })
    }

    fn return_session(&self, s: Session) {
        self.inner.sessions.lock().expect("sessions lock").push((s.client, s.seq + 1));
    }

    fn return_sessions(&self, sessions: Vec<Session>) {
        let mut free = self.inner.sessions.lock().expect("sessions lock");
        free.extend(sessions.into_iter().map(|s| (s.client, s.seq + 1)));
    }

    fn leader_guess(&self) -> Option<NodeId> {
        self.inner.status.borrow().leader.map(NodeId)
    }

    /// Send `request` to whoever leads, retrying until an answer or the deadline. `first` is an
    /// attempt already begun (see [`NodeHandle::write`]).
    async fn route(
        &self,
        request: KvRequest,
        is_write: bool,
        first: Option<(NodeId, Attempt)>,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        self.route_until(request, is_write, first, deadline, None).await
    }

    /// [`NodeHandle::route`] until `deadline`; `unknown`: an earlier attempt's `Unknown` answer
    /// (what a write that runs out of time reports).
    async fn route_until(
        &self,
        request: KvRequest,
        is_write: bool,
        mut first: Option<(NodeId, Attempt)>,
        deadline: Instant,
        mut unknown: Option<String>,
    ) -> Result<Response, ClientError> {
        let me = self.inner.me;
        let mut target = self.leader_guess().unwrap_or(me);
        while Instant::now() < deadline {
            let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
            let attempt = match first.take() {
                Some((t, a)) => {
                    target = t;
                    a
                }
                None => self.begin(target, request.clone()),
            };
            let answer = self.complete(attempt, attempt_deadline).await;
            if answer.is_none() && self.inner.tx.is_closed() {
                // The driver stopped (shutdown or a disk failure): no retry can succeed here.
                return Err(match unknown {
                    Some(reason) => ClientError::Unknown(reason),
                    None if is_write => {
                        ClientError::Unknown("the node stopped while the write was in flight".into())
                    }
                    None => ClientError::Unavailable("the node is shutting down".into()),
                });
            }
            let Some(answer) = answer else {
                // No answer in time (a dead leader, a lost frame): try whoever leads now.
                target = self.leader_guess().filter(|l| *l != target).unwrap_or(me);
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            match Self::interpret(answer) {
                Ok(r) => return Ok(r),
                Err(ClientError::NotLeader { leader }) => {
                    let hinted = leader.map(NodeId).filter(|l| {
                        *l == me || self.inner.peers.read().expect("peers lock").contains_key(&l.0)
                    });
                    match hinted {
                        Some(l) if l != target => target = l,
                        _ => {
                            tokio::time::sleep(RETRY_PAUSE).await;
                            target = self.leader_guess().unwrap_or(me);
                        }
                    }
                }
                Err(ClientError::Unknown(reason)) if is_write => {
                    // Retrying with the same session is safe: applied once at most.
                    unknown = Some(reason);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    target = self.leader_guess().unwrap_or(me);
                }
                Err(e) => return Err(e),
            }
        }
        Err(match unknown {
            Some(reason) => ClientError::Unknown(reason),
            None => ClientError::Timeout,
        })
    }

    /// Submit one attempt now, without waiting: to the local driver or, forwarded, to `target`.
    fn begin(&self, target: NodeId, request: KvRequest) -> Attempt {
        let (tx, rx) = oneshot::channel();
        if target == self.inner.me {
            return match self.inner.tx.try_send(Input::Request { request, reply: ReplyTo::Local(tx) }) {
                Ok(()) => Attempt::Sent { rx, forward: None },
                // A full queue: wait for room in `complete` (ordering with later writes is lost
                // only under this overload).
                Err(mpsc::error::TrySendError::Full(input)) => Attempt::Queued(Box::new(input), rx),
                Err(mpsc::error::TrySendError::Closed(_)) => Attempt::Failed,
            };
        }
        let Some(transport) = self.inner.transport.as_ref() else { return Attempt::Failed };
        let id = self.inner.next_forward.fetch_add(1, Ordering::Relaxed);
        self.inner.forwards.lock().expect("forwards lock").insert(id, tx);
        if transport.send(target, Frame::Forward { id, request }) {
            Attempt::Sent { rx, forward: Some(id) }
        } else {
            self.inner.forwards.lock().expect("forwards lock").remove(&id);
            Attempt::Failed
        }
    }

    /// Wait for an attempt's answer until `deadline`.
    async fn complete(&self, attempt: Attempt, deadline: Instant) -> Option<KvResponse> {
        match attempt {
            Attempt::Sent { rx, forward } => {
                let answer = tokio::time::timeout_at(deadline.into(), rx).await.ok().and_then(|r| r.ok());
                if let Some(id) = forward {
                    self.inner.forwards.lock().expect("forwards lock").remove(&id);
                }
                answer
            }
            Attempt::Queued(input, rx) => {
                let send = tokio::time::timeout_at(deadline.into(), self.inner.tx.send(*input));
                if !matches!(send.await, Ok(Ok(()))) {
                    return None;
                }
                tokio::time::timeout_at(deadline.into(), rx).await.ok()?.ok()
            }
            Attempt::Failed => None,
        }
    }

    /// A Raft answer as a result.
    fn interpret(answer: KvResponse) -> Result<Response, ClientError> {
        match answer {
            RaftResponse::Output(Ok(r)) => Ok(r),
            RaftResponse::Output(Err(e)) => Err(ClientError::Kv(e)),
            RaftResponse::NotLeader { hint } => Err(ClientError::NotLeader { leader: hint.map(|h| h.0) }),
            RaftResponse::Rejected { reason } => Err(ClientError::Rejected(reason)),
            RaftResponse::Unknown { reason } => Err(ClientError::Unknown(reason)),
            other => Err(ClientError::Unknown(format!("unexpected answer {other:?}"))),
        }
    }
}

/// One submission of a batch to the local driver, begun but not yet answered.
enum BatchAttempt {
    Sent(oneshot::Receiver<Vec<Option<KvResponse>>>),
    Queued(Box<Input>, oneshot::Receiver<Vec<Option<KvResponse>>>),
    Failed,
}

/// One submission of a request, begun but not yet answered.
enum Attempt {
    Sent { rx: oneshot::Receiver<KvResponse>, forward: Option<u64> },
    Queued(Box<Input>, oneshot::Receiver<KvResponse>),
    Failed,
}

impl crate::fault_injection::FaultTarget for NodeHandle {
    fn node_id(&self) -> u32 {
        self.id().0
    }

    fn transport(&self) -> Option<&crate::transport::Transport> {
        self.inner.transport.as_ref()
    }

    fn peer_http(&self, id: u32) -> Option<std::net::SocketAddr> {
        self.peer(id).and_then(|p| p.http_addr)
    }
}

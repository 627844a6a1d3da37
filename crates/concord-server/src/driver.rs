//! The driver: one tokio task that owns the Raft node and carries out its effects.
//!
//! This is the real-world twin of the simulator's event loop (`concord-sim/src/sim.rs`). The node is
//! the very same `RaftNode<KvStore>` value; only the things around it are real:
//!
//! | the node asks for | simulator | here |
//! |---|---|---|
//! | `Io::now()` | a skewed virtual clock | [`Clock`]: wall time at boot + a monotonic `Instant` |
//! | `Io::random_u64()` | the seeded run generator | ChaCha20 seeded from the OS |
//! | `Send` | the simulated network | [`crate::transport`] (bounded queues, TCP) |
//! | `SetTimer` / `CancelTimer` | the event queue | one deadline per timer name, `sleep_until` the earliest |
//! | `Persist` / `Sync` | the simulated disk | [`crate::storage::Disk`] (the WAL), group-committed |
//! | `Reply` | the simulated client | a oneshot channel, or a forward-reply frame to a peer |
//!
//! ## One loop, one owner
//! Everything that touches the node happens on this task, so the node needs no locks and runs
//! exactly as in the simulator: one input at a time, to completion. Other tasks talk to it through a
//! bounded channel of [`Input`]s and read its state from a `watch` of [`Status`].
//!
//! ## The effect contract, and group commit
//! `process.rs` says: after a `Sync`, the node's later sends, writes and replies wait until the sync
//! completes; timers are not held. The loop honours it in batches:
//!
//! 1. wait for an input (or the earliest timer); then take every other input that is already
//!    queued (up to [`MAX_BATCH_INPUTS`]) and every timer that is due;
//! 2. run each through the node, in arrival order. Timer effects take effect at once. Sends and
//!    replies that come *before* the batch's first `Sync` go out at once (nothing they depend on
//!    is owed to the disk); everything after it is **held**;
//! 3. append the batch's writes to the WAL and, if any input asked for a sync, `fdatasync` **once**;
//! 4. release the held sends and replies, in order.
//!
//! Writes from after the `Sync` reach the disk with that same sync – earlier than required, which is
//! harmless: the WAL is a sequence, so "a later write is durable" still implies "every earlier write
//! is durable", the only ordering a crash can observe. While the disk syncs, new inputs pile up in
//! the channel and form the next batch: that is where group commit's throughput comes from.
//!
//! The loop does not overlap a sync with the next batch (a pipelined driver could); the cost is
//! that inputs wait for the sync in progress, which at ~1 ms per `fdatasync` bounds one node to
//! roughly a thousand batches per second – each of any size.

use crate::metrics::Metrics;
use crate::storage::Disk;
use crate::transport::Transport;
use crate::wire::Frame;
use crate::{KvRequest, KvResponse, RaftKv, RaftMessage};
use concord_core::{ClientId, Effect, Io, NodeId, Process, RequestId, Time};
use concord_raft::{RaftResponse, Timer};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// Inputs run through the node before one sync, at most.
pub const MAX_BATCH_INPUTS: usize = 1024;
/// Client requests waiting for the node's answer, at most; beyond it requests are refused.
pub const MAX_PENDING_REQUESTS: usize = 65_536;
/// Inputs queued for the driver before senders wait (clients) or drop (peer messages).
pub const INPUT_QUEUE: usize = 16_384;
/// How long an unanswered forwarded request is remembered.
const PEER_REQUEST_TTL: Duration = Duration::from_secs(60);

/// The node's clock: nanoseconds since the Unix epoch *at boot*, advanced by a monotonic clock.
///
/// Monotonic, because Raft measures timeouts and leases with it and a wall clock may step. Anchored
/// to the wall clock, because commands carry the proposer's `now` for TTL deadlines, which another
/// node (a later leader) compares with its own clock: a per-process origin would make every
/// restarted node's deadlines meaningless to the others.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    origin_time: Time,
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { origin: Instant::now(), origin_time: Time::from_duration(wall) }
    }

    pub fn now(&self) -> Time {
        self.origin_time + self.origin.elapsed()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the answer to a request goes.
pub enum ReplyTo {
    /// A client of this node, waiting on a channel.
    Local(oneshot::Sender<KvResponse>),
    /// A request another node forwarded; the answer goes back as a [`Frame::ForwardReply`].
    Peer { node: NodeId, id: u64 },
}

/// What other tasks hand the driver.
pub enum Input {
    Message { from: NodeId, msg: RaftMessage },
    Request { request: KvRequest, reply: ReplyTo },
}

/// The node's state after its last batch, for HTTP, INFO and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    pub id: u32,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u32>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u32>,
    pub learners: Vec<u32>,
    /// As the leader sees it: the highest log index each follower acknowledged (from the append
    /// responses this driver delivered). Empty on followers.
    pub match_index: BTreeMap<u32, u64>,
    pub wal_syncs: u64,
}

struct Pending {
    reply: ReplyTo,
    since: Instant,
}

/// The writes, held effects and sync request of one batch.
#[derive(Default)]
struct Batch {
    ops: Vec<concord_core::StorageOp>,
    sync: bool,
    held: Vec<Effect<RaftKv>>,
    inputs: usize,
}

/// The event loop. Build with [`Driver::new`], run with [`Driver::run`].
pub struct Driver {
    node: RaftKv,
    me: NodeId,
    clock: Clock,
    rng: ChaCha20Rng,
    disk: Option<Box<dyn Disk>>,
    transport: Option<Transport>,
    rx: mpsc::Receiver<Input>,
    timers: BTreeMap<Timer, Instant>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    status: watch::Sender<Status>,
    metrics: Arc<Metrics>,
    match_index: BTreeMap<u32, u64>,
    wal_syncs: u64,
    last_sweep: Instant,
}

impl Driver {
    pub fn new(
        node: RaftKv,
        clock: Clock,
        disk: Box<dyn Disk>,
        transport: Option<Transport>,
        rx: mpsc::Receiver<Input>,
        status: watch::Sender<Status>,
        metrics: Arc<Metrics>,
    ) -> Driver {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the OS random source works");
        let mut driver = Driver {
            me: node.id(),
            node,
            clock,
            rng: ChaCha20Rng::from_seed(seed),
            disk: Some(disk),
            transport,
            rx,
            timers: BTreeMap::new(),
            pending: HashMap::new(),
            next_request: 0,
            status,
            metrics,
            match_index: BTreeMap::new(),
            wal_syncs: 0,
            last_sweep: Instant::now(),
        };
        // The booted state is visible before the loop runs (no reader ever sees an empty status).
        driver.publish();
        driver
    }

    /// Run until `shutdown` fires or every input sender is gone. Returns an error (a complete
    /// sentence) when the disk fails: the node must stop.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let mut batch = Batch::default();
        self.call(&mut batch, |node, io| node.on_start(io));
        self.finish(batch).await?;
        self.publish();
        loop {
            let deadline = self.timers.values().min().copied();
            let first = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                input = self.rx.recv() => match input {
                    Some(input) => Some(input),
                    None => break,
                },
                _ = sleep_until(deadline) => None,
            };
            let mut batch = Batch::default();
            if let Some(input) = first {
                self.handle(input, &mut batch);
            }
            while batch.inputs < MAX_BATCH_INPUTS {
                match self.rx.try_recv() {
                    Ok(input) => self.handle(input, &mut batch),
                    Err(_) => break,
                }
            }
            self.fire_due_timers(&mut batch);
            self.finish(batch).await?;
            self.publish();
            if self.last_sweep.elapsed() > Duration::from_secs(1) {
                self.sweep();
            }
        }
        // Every batch was synced before its effects went out, so there is nothing left to flush;
        // requests still waiting get no answer (their clients see the connection close).
        tracing::info!("driver of {} stopped", self.me);
        Ok(())
    }

    fn handle(&mut self, input: Input, batch: &mut Batch) {
        batch.inputs += 1;
        match input {
            Input::Message { from, msg } => {
                self.observe(from, &msg);
                self.call(batch, |node, io| node.on_message(io, from, msg));
            }
            Input::Request { request, reply } => {
                if self.pending.len() >= MAX_PENDING_REQUESTS {
                    let reason = format!("node overloaded: {MAX_PENDING_REQUESTS} requests pending");
                    self.answer(reply, RaftResponse::Rejected { reason });
                    return;
                }
                self.next_request += 1;
                let seq = self.next_request;
                self.pending.insert(seq, Pending { reply, since: Instant::now() });
                let id = RequestId { client: ClientId(0), seq };
                self.call(batch, |node, io| node.on_request(io, id, request));
            }
        }
    }

    fn fire_due_timers(&mut self, batch: &mut Batch) {
        let now = Instant::now();
        let due: Vec<Timer> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
        for timer in due {
            // An earlier timer's effects may have re-armed or cancelled this one.
            if self.timers.get(&timer).is_some_and(|at| *at <= now) {
                self.timers.remove(&timer);
                batch.inputs += 1;
                self.call(batch, |node, io| node.on_timer(io, timer));
            }
        }
    }

    /// Run one input through the node and sort its effects: timers now, I/O now or held.
    fn call(&mut self, batch: &mut Batch, f: impl FnOnce(&mut RaftKv, &mut Io<'_, RaftKv>)) {
        let mut effects = Vec::new();
        {
            let mut io = Io::new(self.me, self.clock.now(), false, &mut self.rng, &mut effects);
            f(&mut self.node, &mut io);
        }
        for effect in effects {
            match effect {
                Effect::SetTimer { timer, after } => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&timer);
                }
                Effect::Event(e) => tracing::trace!(event = e.name, detail = %e.detail),
                Effect::Persist(op) => batch.ops.push(op),
                Effect::Sync => batch.sync = true,
                e @ (Effect::Send { .. } | Effect::Reply { .. }) => {
                    if batch.sync {
                        batch.held.push(e);
                    } else {
                        self.carry_out(e);
                    }
                }
            }
        }
    }

    /// Append the batch's writes, sync once if asked, release what was held.
    async fn finish(&mut self, batch: Batch) -> Result<(), String> {
        let mut disk = self.disk.take().expect("the disk is back after every sync");
        if let Err(e) = disk.append(&batch.ops) {
            return Err(format!("node {} stops: the WAL refused a write: {e}", self.me));
        }
        if batch.sync {
            // fdatasync blocks: run it off the async threads, then take the disk back.
            let (back, result) = tokio::task::spawn_blocking(move || {
                let r = disk.sync();
                (disk, r)
            })
            .await
            .map_err(|e| format!("node {} stops: the WAL sync task failed: {e}", self.me))?;
            disk = back;
            match result {
                Ok(took) => {
                    self.wal_syncs += 1;
                    self.metrics.wal_sync(took, batch.inputs);
                }
                Err(e) => return Err(format!("node {} stops: WAL sync failed: {e}", self.me)),
            }
        }
        self.disk = Some(disk);
        for effect in batch.held {
            self.carry_out(effect);
        }
        Ok(())
    }

    fn carry_out(&mut self, effect: Effect<RaftKv>) {
        match effect {
            Effect::Send { to, msg } => {
                if let Some(t) = &self.transport {
                    t.send(to, Frame::Raft(msg));
                }
            }
            Effect::Reply { request, response } => {
                if let Some(p) = self.pending.remove(&request.seq) {
                    self.answer(p.reply, response);
                }
            }
            _ => unreachable!("only sends and replies are carried out here"),
        }
    }

    fn answer(&self, reply: ReplyTo, response: KvResponse) {
        match reply {
            ReplyTo::Local(tx) => {
                let _ = tx.send(response);
            }
            ReplyTo::Peer { node, id } => {
                if let Some(t) = &self.transport {
                    t.send(node, Frame::ForwardReply { id, response });
                }
            }
        }
    }

    /// Learn what the leader's progress tracking learns, from the responses it is handed.
    fn observe(&mut self, from: NodeId, msg: &RaftMessage) {
        if !self.node.is_leader() {
            return;
        }
        let matched = match msg {
            concord_raft::Message::AppendResp(r) if r.success => r.match_index,
            concord_raft::Message::SnapshotResp(r) if r.installed => r.snapshot_index,
            _ => return,
        };
        let slot = self.match_index.entry(from.0).or_default();
        *slot = (*slot).max(matched);
    }

    /// Forget requests nobody waits for any more (bounded memory).
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        self.pending.retain(|_, p| match &p.reply {
            ReplyTo::Local(tx) => !tx.is_closed(),
            ReplyTo::Peer { .. } => p.since.elapsed() < PEER_REQUEST_TTL,
        });
    }

    fn publish(&mut self) {
        let n = &self.node;
        if !n.is_leader() {
            self.match_index.clear();
        }
        let m = n.current_membership();
        let status = Status {
            id: self.me.0,
            role: n.role_name(),
            term: n.current_term(),
            leader: n.leader_id().map(|l| l.0),
            commit_index: n.commit_index(),
            applied_index: n.applied_index(),
            last_log_index: n.last_log_index(),
            snapshot_index: n.snapshot_index(),
            voters: m.voters.iter().map(|v| v.0).collect(),
            learners: m.learners.iter().map(|v| v.0).collect(),
            match_index: self.match_index.clone(),
            wal_syncs: self.wal_syncs,
        };
        let metrics = &self.metrics;
        metrics.raft_term.set(status.term as i64);
        metrics.raft_commit_index.set(status.commit_index as i64);
        metrics.raft_applied_index.set(status.applied_index as i64);
        metrics.raft_last_log_index.set(status.last_log_index as i64);
        metrics.set_role(status.role);
        self.status.send_if_modified(|old| {
            if *old == status {
                false
            } else {
                *old = status;
                true
            }
        });
    }

    /// The node, for tests.
    pub fn node(&self) -> &RaftKv {
        &self.node
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryDisk;
    use concord_kv::{Command, KvLimits, KvStore, Query};
    use concord_raft::{RaftConfig, RaftNode, RaftRequest, ReadConsistency};

    /// A one-node cluster elects itself, commits a write after syncing it, and serves the read.
    #[tokio::test]
    async fn a_single_node_commits_and_reads() {
        let raft = RaftConfig::with_voters([1]);
        let node =
            RaftNode::boot(NodeId(1), raft, KvStore::new(KvLimits::default()), &Default::default()).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (status_tx, mut status) = watch::channel(Status::default());
        let metrics = Arc::new(Metrics::new());
        let driver =
            Driver::new(node, Clock::new(), Box::new(MemoryDisk::default()), None, rx, status_tx, metrics);
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(driver.run(stop));
        tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.role == "leader"))
            .await
            .unwrap()
            .unwrap();

        let (reply, answer) = oneshot::channel();
        let command = Command::put(Clock::new().now(), "k", "v");
        tx.send(Input::Request {
            request: RaftRequest::Propose { session: None, command },
            reply: ReplyTo::Local(reply),
        })
        .await
        .unwrap();
        assert!(matches!(answer.await.unwrap(), RaftResponse::Output(Ok(concord_kv::Response::Put { .. }))));

        let (reply, answer) = oneshot::channel();
        let request =
            RaftRequest::Read { consistency: ReadConsistency::Linearizable, query: Query::get("k") };
        tx.send(Input::Request { request, reply: ReplyTo::Local(reply) }).await.unwrap();
        match answer.await.unwrap() {
            RaftResponse::Output(Ok(concord_kv::Response::Get(Some(kv)))) => assert_eq!(kv.value, b"v"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(status.borrow().wal_syncs > 0);
    }

    /// A disk whose syncs wait for a permit from the test.
    struct GatedDisk {
        permits: std::sync::mpsc::Receiver<()>,
        appended: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Disk for GatedDisk {
        fn append(&mut self, ops: &[concord_core::StorageOp]) -> Result<(), String> {
            self.appended.fetch_add(ops.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        fn sync(&mut self) -> Result<Duration, String> {
            self.permits.recv().map_err(|_| "test over".to_string())?;
            Ok(Duration::ZERO)
        }
    }

    /// The contract of `process.rs`: a reply that depends on a write is held until the sync that
    /// makes the write durable has completed – here, until the test lets the sync finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_wait_for_the_sync_that_covers_their_writes() {
        let raft = RaftConfig::with_voters([1]);
        let node =
            RaftNode::boot(NodeId(1), raft, KvStore::new(KvLimits::default()), &Default::default()).unwrap();
        // A rendezvous channel: a permit is handed over only to a sync that is waiting for one.
        let (permit, permits) = std::sync::mpsc::sync_channel(0);
        let appended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let disk = GatedDisk { permits, appended: appended.clone() };
        let (tx, rx) = mpsc::channel(16);
        let (status_tx, mut status) = watch::channel(Status::default());
        let driver =
            Driver::new(node, Clock::new(), Box::new(disk), None, rx, status_tx, Arc::new(Metrics::new()));
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(driver.run(stop));

        // Let every sync through until the node leads and committed its first entry.
        let feeding = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let feeder = {
            let (permit, feeding) = (permit.clone(), feeding.clone());
            tokio::spawn(async move {
                while feeding.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = permit.try_send(());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.role == "leader" && s.commit_index >= 1),
        )
        .await
        .unwrap()
        .unwrap();
        feeding.store(false, std::sync::atomic::Ordering::SeqCst);
        feeder.await.unwrap();
        let before = appended.load(std::sync::atomic::Ordering::SeqCst);

        let (reply, mut answer) = oneshot::channel();
        let command = Command::put(Clock::new().now(), "k", "v");
        let request = RaftRequest::Propose { session: None, command };
        tx.send(Input::Request { request, reply: ReplyTo::Local(reply) }).await.unwrap();
        // The entry is written, but not synced: no answer may arrive.
        let deadline = Instant::now() + Duration::from_secs(5);
        while appended.load(std::sync::atomic::Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "the entry was never appended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(answer.try_recv().is_err(), "the reply went out before its sync completed");
        // Now let the waiting sync complete.
        tokio::task::spawn_blocking(move || permit.send(()).unwrap()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), answer).await.unwrap().unwrap();
        assert!(matches!(answer, RaftResponse::Output(Ok(concord_kv::Response::Put { .. }))), "{answer:?}");
    }
}

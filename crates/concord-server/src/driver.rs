//! The driver: one tokio task that owns a protocol node and carries out its effects.
//!
//! This is the real-world twin of the simulator's event loop (`concord-sim/src/sim.rs`). The node is
//! the very same value the simulator runs – `RaftNode<KvStore>` in the strong mode, `DynamoNode` in
//! the eventual mode (the driver is generic over [`Hosted`], see [`crate::hosted`]); only the things
//! around it are real:
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
//! ## The effect contract, group commit, and a pipelined sync
//! `process.rs` says: after a `Sync`, the node's later sends, writes and replies wait until the sync
//! completes; timers are not held. The loop honours it with **sync tickets**:
//!
//! 1. wait for an input, a finished sync or the earliest timer; then take every other input that is
//!    already queued (up to [`MAX_BATCH_INPUTS`]) and every timer that is due;
//! 2. run each through the node, in arrival order. Timer effects take effect at once. The first
//!    `Sync` of a batch takes the next ticket `k`. A send or reply is **held** under the ticket of
//!    the latest `Sync` emitted before it – this batch's, or an earlier batch's still in flight –
//!    and goes out at once only if every `Sync` before it has completed;
//! 3. hand the batch's writes (one WAL record) and, if it asked for one, its sync ticket to the
//!    **WAL thread**, and go back to step 1 *without waiting*;
//! 4. the WAL thread appends every job it finds queued, then `fdatasync`s **once** for all of them
//!    and reports the highest ticket it covered; the loop then releases, in order, every held
//!    effect whose ticket is at most that one.
//!
//! So while sync `k` is in flight the node keeps stepping: new proposals are appended to Raft's log,
//! follower answers are processed, timers fire. What depends on sync `k` leaves when `k` completes;
//! what came after a later `Sync` waits for the next one. The next `fdatasync` starts the moment
//! the previous one returns and covers every batch that arrived meanwhile – group commit without a
//! stalled loop.
//!
//! Writes from after a `Sync` may reach the disk with that same sync – earlier than required, which
//! is harmless: the WAL is a sequence, so "a later write is durable" still implies "every earlier
//! write is durable", the only ordering a crash can observe.
//!
//! ## Bounds
//! At most [`MAX_HELD_EFFECTS`] sends and replies wait for syncs; beyond that the loop stops taking
//! inputs until a sync completes (a slow disk slows clients down instead of growing memory). The
//! job queue to the WAL thread holds at most one job per batch taken meanwhile, so it is bounded by
//! the same rule.

use crate::disk_space::DiskSpace;
pub use crate::hosted::{Hosted, Status};
use crate::metrics::Metrics;
use crate::storage::{Disk, DiskError};
use crate::transport::Transport;
use crate::RaftKv;
use concord_core::{ClientId, Effect, Io, NodeId, Process, RequestId, Time};
use concord_kv::Changes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Inputs run through the node before one sync, at most.
pub const MAX_BATCH_INPUTS: usize = 1024;
/// Batches (WAL records) one `fdatasync` covers, at most.
const MAX_JOBS_PER_SYNC: usize = 4096;
/// A sync that found the disk full is retried after this long, doubling up to the maximum.
const NO_SPACE_RETRY_MIN: Duration = Duration::from_millis(100);
const NO_SPACE_RETRY_MAX: Duration = Duration::from_secs(2);
/// Sends and replies waiting for a sync, at most; beyond it the loop waits for the disk before
/// taking more inputs.
pub const MAX_HELD_EFFECTS: usize = 65_536;
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
pub enum ReplyTo<P: Process = RaftKv> {
    /// A client of this node, waiting on a channel.
    Local(oneshot::Sender<P::Response>),
    /// A request another node forwarded; the answer goes back in the frame
    /// [`Hosted::forward_reply`] makes (Raft: a follower forwards writes to its leader).
    Peer { node: NodeId, id: u64 },
    /// One request of a [`Input::Batch`]: its answer fills slot `index` of the batch's
    /// [`BatchReply`], which answers every slot at once when the last one is filled.
    Batch { batch: Arc<BatchReply<P::Response>>, index: usize },
}

/// The answers of one [`Input::Batch`]: a slot per request, sent together on one channel once all
/// are filled (a pipeline's reads or writes, answered by one ReadIndex round or one commit).
pub struct BatchReply<R> {
    state: std::sync::Mutex<BatchState<R>>,
}

struct BatchState<R> {
    answers: Vec<Option<R>>,
    missing: usize,
    tx: Option<oneshot::Sender<Vec<Option<R>>>>,
}

impl<R> BatchReply<R> {
    /// A batch of `n` answers, and where they arrive. A slot the driver never fills (a request
    /// forgotten, the node stopping) leaves the receiver closed: the waiter treats every slot of
    /// the batch as unanswered.
    pub fn new(n: usize) -> (Arc<BatchReply<R>>, oneshot::Receiver<Vec<Option<R>>>) {
        let (tx, rx) = oneshot::channel();
        let answers = (0..n).map(|_| None).collect();
        (
            Arc::new(BatchReply {
                state: std::sync::Mutex::new(BatchState { answers, missing: n, tx: Some(tx) }),
            }),
            rx,
        )
    }

    fn fill(&self, index: usize, response: R) {
        let mut state = self.state.lock().expect("batch reply lock");
        if index < state.answers.len() && state.answers[index].is_none() {
            state.answers[index] = Some(response);
            state.missing -= 1;
            if state.missing == 0 {
                let answers = std::mem::take(&mut state.answers);
                if let Some(tx) = state.tx.take() {
                    let _ = tx.send(answers);
                }
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.state.lock().expect("batch reply lock").tx.as_ref().is_none_or(oneshot::Sender::is_closed)
    }
}

/// What other tasks hand the driver.
pub enum Input<P: Process = RaftKv> {
    Message {
        from: NodeId,
        msg: P::Message,
    },
    Request {
        request: P::Request,
        reply: ReplyTo<P>,
    },
    /// Many requests in one input (a client's pipeline): each answered into its slot of `reply`
    /// ([`ReplyTo::Batch`]), handled in order as if each came as its own [`Input::Request`].
    Batch {
        requests: Vec<P::Request>,
        reply: Arc<BatchReply<P::Response>>,
    },
}

struct Pending<P: Process> {
    reply: ReplyTo<P>,
    since: Instant,
}

/// The writes and sync request of one batch.
#[derive(Default)]
struct Batch {
    ops: Vec<concord_core::StorageOp>,
    /// The batch emitted a `Sync` (its ticket is the driver's `last_sync_ticket`).
    sync: bool,
    inputs: usize,
}

/// One batch's work for the WAL thread: one record, and the ticket of its sync if it asked for one.
struct WalJob {
    ops: Vec<concord_core::StorageOp>,
    sync_ticket: Option<u64>,
    inputs: usize,
}

/// What the WAL thread reports.
enum WalDone {
    /// Every job up to and including the one with this ticket is durable.
    Synced { ticket: u64, took: Duration, inputs: usize },
    /// The disk failed (a complete sentence); the node must stop.
    Failed(String),
}

/// What woke the loop.
enum Wake<P: Process> {
    Input(Input<P>),
    Wal(Option<WalDone>),
    Timer,
}

/// The event loop. Build with [`Driver::new`], run with [`Driver::run`].
pub struct Driver<P: Hosted = RaftKv> {
    node: P,
    me: NodeId,
    clock: Clock,
    rng: ChaCha20Rng,
    /// The disk until `run` hands it to the WAL thread.
    disk: Option<Box<dyn Disk>>,
    wal_jobs: Option<std::sync::mpsc::Sender<WalJob>>,
    wal_done: Option<mpsc::UnboundedReceiver<WalDone>>,
    /// The ticket of the latest `Sync` the node emitted, and of the latest one completed.
    last_sync_ticket: u64,
    synced_ticket: u64,
    /// Sends and replies waiting for the sync of their ticket, oldest first.
    held: VecDeque<(u64, Effect<P>)>,
    /// Answers that wait for no sync (`Effect::ReplyNow`), carried out at the end of their batch –
    /// after the batch's changes went to the change feed, so an answer never overtakes the
    /// invalidation of what it wrote.
    replies_now: Vec<Effect<P>>,
    /// The node's messages to itself (loopbacks), to step at the end of the batch.
    loopbacks: VecDeque<P::Message>,
    /// The effects of the input being run (kept between inputs for its capacity).
    effects: Vec<Effect<P>>,
    transport: Option<Transport>,
    rx: mpsc::Receiver<Input<P>>,
    timers: BTreeMap<P::Timer, Instant>,
    /// Requests the node has not answered, by sequence number. Fx, not SipHash: the keys are our
    /// own counter, nobody can choose them to collide, and a pipelined GET pays for an insert and
    /// a remove here.
    pending: FxHashMap<u64, Pending<P>>,
    next_request: u64,
    status: watch::Sender<P::Status>,
    metrics: Arc<Metrics>,
    /// What the driver itself learns about the node (Raft: followers' match indexes).
    tracker: P::Tracker,
    wal_syncs: u64,
    last_sweep: Instant,
    /// When the status was last published, and whether a batch since then left it owed (see
    /// [`Hosted::status_interval`]).
    last_publish: Instant,
    publish_owed: bool,
    /// Where the WAL thread says the disk is full, and the front doors read it.
    disk_space: Arc<DiskSpace>,
    /// Where the keys changed by each batch go (`CLIENT TRACKING`), when someone listens.
    change_feed: Option<broadcast::Sender<Arc<Changes>>>,
}

impl<P: Hosted> Driver<P> {
    pub fn new(
        node: P,
        clock: Clock,
        disk: Box<dyn Disk>,
        transport: Option<Transport>,
        rx: mpsc::Receiver<Input<P>>,
        status: watch::Sender<P::Status>,
        metrics: Arc<Metrics>,
    ) -> Driver<P> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the OS random source works");
        let mut driver = Driver {
            me: node.id(),
            node,
            clock,
            rng: ChaCha20Rng::from_seed(seed),
            disk: Some(disk),
            wal_jobs: None,
            wal_done: None,
            last_sync_ticket: 0,
            synced_ticket: 0,
            held: VecDeque::new(),
            replies_now: Vec::new(),
            loopbacks: VecDeque::new(),
            effects: Vec::new(),
            transport,
            rx,
            timers: BTreeMap::new(),
            pending: FxHashMap::default(),
            next_request: 0,
            status,
            metrics,
            tracker: P::Tracker::default(),
            wal_syncs: 0,
            last_sweep: Instant::now(),
            last_publish: Instant::now(),
            publish_owed: false,
            disk_space: Arc::new(DiskSpace::unlimited()),
            change_feed: None,
        };
        // The booted state is visible before the loop runs (no reader ever sees an empty status).
        driver.publish();
        driver
    }

    /// Report a full disk to `space` (and refuse writes while it says so).
    pub fn with_disk_space(mut self, space: Arc<DiskSpace>) -> Driver<P> {
        self.disk_space = space;
        self
    }

    /// Record the keys every batch changes and send them to `feed` after the batch (see
    /// [`Hosted::record_changes`]). Receivers that fall behind see `Lagged`, and must then
    /// assume everything changed.
    pub fn with_change_feed(mut self, feed: broadcast::Sender<Arc<Changes>>) -> Driver<P> {
        self.node.record_changes();
        self.change_feed = Some(feed);
        self
    }

    /// Send what the last batch changed to the change feed.
    fn publish_changes(&mut self) {
        if let Some(feed) = &self.change_feed {
            let changes = self.node.take_changes();
            if !changes.is_empty() && feed.receiver_count() > 0 {
                let _ = feed.send(Arc::new(changes));
            }
        }
    }

    /// Run until `shutdown` fires or every input sender is gone. Returns an error (a complete
    /// sentence) when the disk fails: the node must stop.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), crate::Error> {
        let disk = self.disk.take().expect("run is called once");
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (me, space) = (self.me, self.disk_space.clone());
        let wal_thread = std::thread::Builder::new()
            .name(format!("concord-wal-{}", me.0))
            .spawn(move || wal_thread(me, disk, jobs_rx, done_tx, space))
            .map_err(|e| {
                crate::Error::Driver(format!("node {me} stops: cannot start the WAL thread: {e}"))
            })?;
        self.wal_jobs = Some(jobs_tx);
        self.wal_done = Some(done_rx);
        let result = self.run_loop(&mut shutdown).await;
        // Closing the job queue lets the WAL thread finish what it was given and drop the disk
        // (releasing the data directory's lock) before `run` returns.
        self.wal_jobs = None;
        let _ = tokio::task::spawn_blocking(move || wal_thread.join()).await;
        tracing::info!("driver of {} stopped", self.me);
        result.map_err(crate::Error::Driver)
    }

    async fn run_loop(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), String> {
        let mut batch = Batch::default();
        self.call(&mut batch, |node, io| node.on_start(io));
        self.finish(batch)?;
        self.publish();
        loop {
            let deadline = self.timers.values().min().copied();
            // An owed status is published when its pause ends, even if nothing else happens.
            let owed = self.publish_owed.then(|| self.next_publish()).flatten();
            let deadline = match (deadline, owed) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let take_inputs = self.held.len() < MAX_HELD_EFFECTS;
            let wal_done = self.wal_done.as_mut().expect("set by run");
            let wake = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                done = wal_done.recv() => Wake::Wal(done),
                input = self.rx.recv(), if take_inputs => match input {
                    Some(input) => Wake::Input(input),
                    None => break,
                },
                _ = sleep_until(deadline) => Wake::Timer,
            };
            let mut batch = Batch::default();
            match wake {
                Wake::Wal(done) => self.on_wal_done(done)?,
                Wake::Input(input) => self.handle(input, &mut batch),
                Wake::Timer => {}
            }
            while batch.inputs < MAX_BATCH_INPUTS && self.held.len() < MAX_HELD_EFFECTS {
                match self.rx.try_recv() {
                    Ok(input) => self.handle(input, &mut batch),
                    Err(_) => break,
                }
            }
            self.step_loopbacks(&mut batch);
            self.fire_due_timers(&mut batch);
            self.end_batch(batch)?;
            self.maybe_publish();
            if self.last_sweep.elapsed() > Duration::from_secs(1) {
                self.sweep();
            }
        }
        // Let the syncs in flight complete, so what they hold goes out (a clean stop answers every
        // request whose write reached the disk); requests still waiting for the node get no answer
        // (their clients see the connection close).
        while self.synced_ticket < self.last_sync_ticket {
            let done = self.wal_done.as_mut().expect("set by run").recv().await;
            self.on_wal_done(done)?;
            // What the sync released may be a loopback that commits (a single node's writes).
            self.end_batch(Batch::default())?;
        }
        Ok(())
    }

    /// A sync completed (or the disk failed): release what waited for it.
    fn on_wal_done(&mut self, done: Option<WalDone>) -> Result<(), String> {
        match done {
            Some(WalDone::Synced { ticket, took, inputs }) => {
                self.wal_syncs += 1;
                self.metrics.wal_sync(took, inputs);
                self.synced_ticket = self.synced_ticket.max(ticket);
                while self.held.front().is_some_and(|(t, _)| *t <= self.synced_ticket) {
                    let (_, effect) = self.held.pop_front().expect("front exists");
                    self.carry_out(effect);
                }
                Ok(())
            }
            Some(WalDone::Failed(why)) => Err(why),
            None => Err(format!("node {} stops: the WAL thread stopped", self.me)),
        }
    }

    /// Close a batch: step the loopbacks it released, hand its writes to the WAL thread, publish
    /// its changes, then give the answers that wait for no sync.
    fn end_batch(&mut self, mut batch: Batch) -> Result<(), String> {
        self.step_loopbacks(&mut batch);
        self.finish(batch)?;
        self.publish_changes();
        for reply in std::mem::take(&mut self.replies_now) {
            self.carry_out(reply);
        }
        Ok(())
    }

    /// Step the messages the node sent itself (each released once the syncs before it completed).
    fn step_loopbacks(&mut self, batch: &mut Batch) {
        while let Some(msg) = self.loopbacks.pop_front() {
            batch.inputs += 1;
            let me = self.me;
            self.call(batch, |node, io| node.on_message(io, me, msg));
        }
    }

    fn handle(&mut self, input: Input<P>, batch: &mut Batch) {
        batch.inputs += 1;
        match input {
            Input::Message { from, msg } => {
                self.node.observe(&mut self.tracker, from, &msg);
                self.call(batch, |node, io| node.on_message(io, from, msg));
            }
            Input::Batch { requests, reply } => {
                // The requests of a batch arrived together: one reading of each clock for all.
                let (since, now) = (Instant::now(), self.clock.now());
                for (index, request) in requests.into_iter().enumerate() {
                    let reply = ReplyTo::Batch { batch: reply.clone(), index };
                    self.request(request, reply, since, now, batch);
                }
            }
            Input::Request { request, reply } => {
                self.request(request, reply, Instant::now(), self.clock.now(), batch)
            }
        }
    }

    /// One client request (alone or from a batch), `since` it arrived; `now` is the node's clock.
    fn request(
        &mut self,
        request: P::Request,
        reply: ReplyTo<P>,
        since: Instant,
        now: Time,
        batch: &mut Batch,
    ) {
        // A write forwarded by a peer to this node, whose disk is full (the front doors
        // refuse their own clients' writes before they get here).
        if P::is_write(&request) {
            if let Some(reason) = self.disk_space.refusal() {
                self.answer(reply, P::refused(reason));
                return;
            }
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            let reason = format!("node overloaded: {MAX_PENDING_REQUESTS} requests pending");
            self.answer(reply, P::refused(reason));
            return;
        }
        self.next_request += 1;
        let seq = self.next_request;
        self.pending.insert(seq, Pending { reply, since });
        let id = RequestId { client: ClientId(0), seq };
        self.call_at(now, batch, |node, io| node.on_request(io, id, request));
    }

    fn fire_due_timers(&mut self, batch: &mut Batch) {
        let now = Instant::now();
        let due: Vec<P::Timer> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
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
    fn call(&mut self, batch: &mut Batch, f: impl FnOnce(&mut P, &mut Io<'_, P>)) {
        self.call_at(self.clock.now(), batch, f)
    }

    /// [`Driver::call`] with the node's clock read already (once for a batch of requests).
    fn call_at(&mut self, now: Time, batch: &mut Batch, f: impl FnOnce(&mut P, &mut Io<'_, P>)) {
        // One list reused for every input: most inputs have an effect or two, and a pipelined
        // GET should not pay an allocation for its reply's.
        let mut effects = std::mem::take(&mut self.effects);
        {
            let mut io = Io::new(self.me, now, false, &mut self.rng, &mut effects);
            f(&mut self.node, &mut io);
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::SetTimer { timer, after } => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&timer);
                }
                // Snapshots are rare and change what is on disk: an operator wants to see them.
                Effect::Event(e) if e.name.starts_with("snapshot-") => {
                    tracing::info!(event = e.name, detail = %e.detail)
                }
                Effect::Event(e) => tracing::trace!(event = e.name, detail = %e.detail),
                Effect::Persist(op) => batch.ops.push(op),
                Effect::Sync => {
                    if !batch.sync {
                        batch.sync = true;
                        self.last_sync_ticket += 1;
                    }
                }
                e @ Effect::SendNow { .. } => self.carry_out(e),
                e @ Effect::ReplyNow { .. } => self.replies_now.push(e),
                e @ (Effect::Send { .. } | Effect::Reply { .. }) => {
                    if self.synced_ticket < self.last_sync_ticket {
                        self.held.push_back((self.last_sync_ticket, e));
                    } else {
                        self.carry_out(e);
                    }
                }
            }
        }
        self.effects = effects;
    }

    /// Hand the batch's writes and sync request to the WAL thread; do not wait for them.
    fn finish(&mut self, batch: Batch) -> Result<(), String> {
        if batch.ops.is_empty() && !batch.sync {
            return Ok(());
        }
        let job = WalJob {
            ops: batch.ops,
            sync_ticket: batch.sync.then_some(self.last_sync_ticket),
            inputs: batch.inputs,
        };
        let jobs = self.wal_jobs.as_ref().expect("set by run");
        if jobs.send(job).is_err() {
            // The thread stopped after a failure; its report says why.
            return match self.wal_done.as_mut().expect("set by run").try_recv() {
                Ok(WalDone::Failed(why)) => Err(why),
                _ => Err(format!("node {} stops: the WAL thread stopped", self.me)),
            };
        }
        Ok(())
    }

    fn carry_out(&mut self, effect: Effect<P>) {
        match effect {
            Effect::Send { to, msg } if to == self.me => self.loopbacks.push_back(msg),
            Effect::Send { to, msg } | Effect::SendNow { to, msg } => {
                if let Some(t) = &self.transport {
                    t.send(to, P::frame(msg));
                }
            }
            Effect::Reply { request, response } | Effect::ReplyNow { request, response } => {
                if let Some(p) = self.pending.remove(&request.seq) {
                    self.answer(p.reply, response);
                }
            }
            _ => unreachable!("only sends and replies are carried out here"),
        }
    }

    fn answer(&self, reply: ReplyTo<P>, response: P::Response) {
        match reply {
            ReplyTo::Local(tx) => {
                let _ = tx.send(response);
            }
            ReplyTo::Peer { node, id } => {
                if let (Some(t), Some(frame)) = (&self.transport, P::forward_reply(id, response)) {
                    t.send(node, frame);
                }
            }
            ReplyTo::Batch { batch, index } => batch.fill(index, response),
        }
    }

    /// Forget requests nobody waits for any more (bounded memory).
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        self.pending.retain(|_, p| match &p.reply {
            ReplyTo::Local(tx) => !tx.is_closed(),
            ReplyTo::Peer { .. } => p.since.elapsed() < PEER_REQUEST_TTL,
            ReplyTo::Batch { batch, .. } => !batch.is_closed(),
        });
    }

    /// When the next status may be published (`None`: after every batch).
    fn next_publish(&self) -> Option<Instant> {
        self.node.status_interval().map(|every| self.last_publish + every)
    }

    /// Publish the status after a batch, unless the node asked for a pause that has not ended:
    /// then it is owed (the loop wakes for it).
    fn maybe_publish(&mut self) {
        match self.next_publish() {
            Some(at) if Instant::now() < at => self.publish_owed = true,
            _ => self.publish(),
        }
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        self.publish_owed = false;
        let status = self.node.status(&mut self.tracker, self.wal_syncs);
        P::export(&status, &self.metrics);
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
    pub fn node(&self) -> &P {
        &self.node
    }
}

/// The WAL thread: owns the disk, appends every job queued, syncs once for all of them, reports.
///
/// `fdatasync` blocks for as long as the disk takes, so it runs here and never on the async
/// threads; the driver keeps stepping the node meanwhile. A sync that finds the disk full is
/// retried with back-off (taking in the jobs that queue up meanwhile) until it succeeds; nothing
/// that waits for it is released before, and `space` tells the front doors to refuse writes. The
/// thread stops when the driver closes the queue, or after reporting a failure (a failed WAL
/// refuses further use anyway).
fn wal_thread(
    me: NodeId,
    mut disk: Box<dyn Disk>,
    jobs: std::sync::mpsc::Receiver<WalJob>,
    done: mpsc::UnboundedSender<WalDone>,
    space: Arc<DiskSpace>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    // A sync the full disk refused: its ticket and inputs, owed until a sync succeeds.
    let mut owed: Option<(u64, usize)> = None;
    let mut retry_after = NO_SPACE_RETRY_MIN;
    loop {
        let first = match owed {
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
            Some(_) => match jobs.recv_timeout(retry_after) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = done.send(WalDone::Failed(format!(
                        "node {me} stops with writes that could not be synced: the data disk is full"
                    )));
                    return;
                }
            },
        };
        let (mut ticket, mut inputs) = match owed.take() {
            Some((t, n)) => (Some(t), n),
            None => (None, 0),
        };
        let (mut next, mut taken) = (first, 0);
        // Bounded, so a steady stream of jobs cannot postpone the sync forever.
        while let Some(job) =
            next.take().or_else(|| (taken < MAX_JOBS_PER_SYNC).then(|| jobs.try_recv().ok()).flatten())
        {
            taken += 1;
            if let Err(e) = disk.append(&job.ops) {
                let _ = done.send(WalDone::Failed(format!("node {me} stops: the WAL refused a write: {e}")));
                return;
            }
            inputs += job.inputs;
            ticket = job.sync_ticket.or(ticket);
        }
        let Some(ticket) = ticket else { continue };
        match disk.sync() {
            Ok(took) => {
                space.set_wal_full(false);
                retry_after = NO_SPACE_RETRY_MIN;
                let _ = done.send(WalDone::Synced { ticket, took, inputs });
            }
            Err(DiskError::NoSpace(why)) => {
                if retry_after == NO_SPACE_RETRY_MIN {
                    tracing::error!("node {me}: {why}; retrying the sync until space is freed");
                }
                space.set_wal_full(true);
                owed = Some((ticket, inputs));
                retry_after = (retry_after * 2).min(NO_SPACE_RETRY_MAX);
            }
            Err(DiskError::Failed(e)) => {
                let _ = done.send(WalDone::Failed(format!("node {me} stops: WAL sync failed: {e}")));
                return;
            }
        }
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
    use crate::wire::Frame;
    use crate::KvResponse;
    use concord_kv::{Command, KvLimits, KvStore, Query};
    use concord_raft::RaftResponse;
    use concord_raft::{RaftConfig, RaftNode, RaftRequest, ReadConsistency};

    /// An empty store in a redb file under `dir`, as a node has.
    fn redb_store(dir: &std::path::Path) -> KvStore<crate::redb_engine::RedbEngine> {
        KvStore::with_engine(KvLimits::default(), crate::redb_engine::RedbEngine::open(dir, 1 << 20).unwrap())
    }

    /// A one-node cluster elects itself, commits a write after syncing it, and serves the read.
    #[tokio::test]
    async fn a_single_node_commits_and_reads() {
        let raft = RaftConfig::with_voters([1]);
        let dir = tempfile::tempdir().unwrap();
        let node = RaftNode::boot(NodeId(1), raft, redb_store(dir.path()), &Default::default()).unwrap();
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

    /// A one-node Raft cluster that asks the driver for a pause between two status publications.
    struct Paused {
        raft: RaftKv,
        pause: Duration,
    }

    /// Run one input of the wrapped node and re-emit its effects as the wrapper's.
    fn relay(io: &mut Io<'_, Paused>, raft: &mut RaftKv, f: impl FnOnce(&mut RaftKv, &mut Io<'_, RaftKv>)) {
        let ((), effects) = io.nested(|inner| f(raft, inner));
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => io.send(to, msg),
                Effect::SetTimer { timer, after } => io.set_timer(timer, after),
                Effect::CancelTimer { timer } => io.cancel_timer(timer),
                Effect::Persist(op) => io.persist(op),
                Effect::Sync => io.sync(),
                Effect::SendNow { to, msg } => io.send_now(to, msg),
                Effect::Reply { request, response } => io.reply(request, response),
                Effect::ReplyNow { request, response } => io.reply_now(request, response),
                Effect::Event(e) => io.event(e.name, e.detail),
            }
        }
    }

    impl Process for Paused {
        type Message = <RaftKv as Process>::Message;
        type Timer = <RaftKv as Process>::Timer;
        type Request = <RaftKv as Process>::Request;
        type Response = <RaftKv as Process>::Response;
        fn on_start(&mut self, io: &mut Io<'_, Self>) {
            relay(io, &mut self.raft, |raft, inner| raft.on_start(inner))
        }
        fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Self::Message) {
            relay(io, &mut self.raft, |raft, inner| raft.on_message(inner, from, msg))
        }
        fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: Self::Timer) {
            relay(io, &mut self.raft, |raft, inner| raft.on_timer(inner, timer))
        }
        fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: Self::Request) {
            relay(io, &mut self.raft, |raft, inner| raft.on_request(inner, request, req))
        }
    }

    impl Hosted for Paused {
        type Status = Status;
        type Tracker = ();
        fn id(&self) -> NodeId {
            self.raft.id()
        }
        fn frame(msg: Self::Message) -> Frame {
            RaftKv::frame(msg)
        }
        fn refused(reason: String) -> Self::Response {
            RaftKv::refused(reason)
        }
        fn is_write(request: &Self::Request) -> bool {
            RaftKv::is_write(request)
        }
        fn forward_reply(id: u64, response: Self::Response) -> Option<Frame> {
            RaftKv::forward_reply(id, response)
        }
        fn status(&self, tracker: &mut (), wal_syncs: u64) -> Status {
            <RaftKv as Hosted>::status(&self.raft, tracker, wal_syncs)
        }
        fn status_interval(&self) -> Option<Duration> {
            Some(self.pause)
        }
        fn export(status: &Status, metrics: &Metrics) {
            RaftKv::export(status, metrics)
        }
    }

    /// Start a one-node cluster pausing `pause` between status publications; write one key.
    /// Returns the status channel once the write is acknowledged (and the input queue, which keeps
    /// the driver running).
    async fn paused_node_writes(
        pause: Duration,
        dir: &std::path::Path,
    ) -> (watch::Receiver<Status>, mpsc::Sender<Input<Paused>>) {
        let raft = RaftConfig::with_voters([1]);
        let raft = RaftNode::boot(NodeId(1), raft, redb_store(dir), &Default::default()).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (status_tx, status) = watch::channel(Status::default());
        let disk = Box::new(MemoryDisk::default());
        let driver = Driver::new(
            Paused { raft, pause },
            Clock::new(),
            disk,
            None,
            rx,
            status_tx,
            Arc::new(Metrics::new()),
        );
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = stop_tx; // the driver runs until the test ends
            let _ = driver.run(stop).await;
        });
        loop {
            let (reply, answer) = oneshot::channel();
            let command = Command::put(Clock::new().now(), "k", "v");
            let request = RaftRequest::Propose { session: None, command };
            tx.send(Input::Request { request, reply: ReplyTo::Local(reply) }).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(5), answer).await.unwrap().unwrap() {
                RaftResponse::Output(Ok(_)) => return (status, tx),
                // Not elected yet.
                RaftResponse::NotLeader { .. } => tokio::time::sleep(Duration::from_millis(20)).await,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// A node that asks for a pause between status publications is described once at start and
    /// then not again until the pause ends, however many batches it runs meanwhile; after it, the
    /// status owed is published.
    #[tokio::test]
    async fn a_status_pause_is_honoured_and_the_status_owed_is_published_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // A pause longer than the test: the status stays the one published at start, although
        // the node has been elected and committed a write since.
        let (status, _inputs) = paused_node_writes(Duration::from_secs(3600), dir.path()).await;
        assert_eq!(status.borrow().commit_index, 0, "{:?}", *status.borrow());
        assert_ne!(status.borrow().role, "leader");
        // A short pause: the status shows the write without any further input.
        let dir = tempfile::tempdir().unwrap();
        let (mut status, _inputs) = paused_node_writes(Duration::from_millis(300), dir.path()).await;
        tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.role == "leader" && s.commit_index >= 2),
        )
        .await
        .unwrap()
        .unwrap();
    }

    /// A disk that reports "no space" on every sync while `full` is set.
    struct FillableDisk {
        inner: MemoryDisk,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Disk for FillableDisk {
        fn append(&mut self, ops: &[concord_core::StorageOp]) -> Result<(), DiskError> {
            self.inner.append(ops)
        }
        fn sync(&mut self) -> Result<Duration, DiskError> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(DiskError::NoSpace("no space left on device (test)".into()));
            }
            self.inner.sync()
        }
    }

    /// A sync that finds the disk full does not stop the node: the write waits (unacknowledged),
    /// new writes are refused with the disk's reason, and once space is back the sync is retried
    /// and the waiting write is acknowledged.
    #[tokio::test]
    async fn a_full_disk_holds_the_write_refuses_new_ones_and_resumes() {
        use std::sync::atomic::Ordering::SeqCst;
        let raft = RaftConfig::with_voters([1]);
        let dir = tempfile::tempdir().unwrap();
        let node = RaftNode::boot(NodeId(1), raft, redb_store(dir.path()), &Default::default()).unwrap();
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let disk = FillableDisk { inner: MemoryDisk::default(), full: full.clone() };
        let space = Arc::new(DiskSpace::unlimited());
        let (tx, rx) = mpsc::channel(16);
        let (status_tx, mut status) = watch::channel(Status::default());
        let driver =
            Driver::new(node, Clock::new(), Box::new(disk), None, rx, status_tx, Arc::new(Metrics::new()))
                .with_disk_space(space.clone());
        let (_stop_tx, stop) = watch::channel(false);
        let driver = tokio::spawn(driver.run(stop));
        tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.role == "leader" && s.commit_index >= 1),
        )
        .await
        .unwrap()
        .unwrap();
        let propose = |key: &str| {
            let (reply, answer) = oneshot::channel();
            let command = Command::put(Clock::new().now(), key, "v");
            (
                Input::Request {
                    request: RaftRequest::Propose { session: None, command },
                    reply: ReplyTo::Local(reply),
                },
                answer,
            )
        };

        full.store(true, SeqCst);
        let (input, mut first) = propose("a");
        tx.send(input).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while space.refusal().is_none() {
            assert!(Instant::now() < deadline, "the full disk was not reported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(first.try_recv().is_err(), "a write was acknowledged before it was synced");
        assert!(!driver.is_finished(), "the node stopped on a full disk");
        let (input, second) = propose("b");
        tx.send(input).await.unwrap();
        match second.await.unwrap() {
            RaftResponse::Rejected { reason } => assert!(reason.contains("no space left"), "{reason}"),
            other => panic!("a write on a full disk was not refused: {other:?}"),
        }

        full.store(false, SeqCst);
        let answer = tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap();
        assert!(matches!(answer, RaftResponse::Output(Ok(concord_kv::Response::Put { .. }))), "{answer:?}");
        assert_eq!(space.refusal(), None, "writes are accepted again");
        let (input, third) = propose("c");
        tx.send(input).await.unwrap();
        assert!(matches!(third.await.unwrap(), RaftResponse::Output(Ok(concord_kv::Response::Put { .. }))));
    }

    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A disk whose syncs wait for a permit from the test.
    struct GatedDisk {
        permits: std::sync::mpsc::Receiver<()>,
        appended: Arc<AtomicUsize>,
        /// Syncs waiting for a permit right now (0 or 1: the WAL thread syncs one at a time).
        waiting: Arc<AtomicUsize>,
    }

    impl Disk for GatedDisk {
        fn append(&mut self, ops: &[concord_core::StorageOp]) -> Result<(), DiskError> {
            self.appended.fetch_add(ops.len(), SeqCst);
            Ok(())
        }
        fn sync(&mut self) -> Result<Duration, DiskError> {
            self.waiting.fetch_add(1, SeqCst);
            let permit = self.permits.recv();
            self.waiting.fetch_sub(1, SeqCst);
            permit.map_err(|_| "test over".to_string())?;
            Ok(Duration::ZERO)
        }
    }

    /// A one-node leader on a [`GatedDisk`], its first entry committed and no sync in flight.
    struct Gated {
        tx: mpsc::Sender<Input>,
        status: watch::Receiver<Status>,
        /// A rendezvous channel: a permit is handed over only to a sync that is waiting for one.
        permit: std::sync::mpsc::SyncSender<()>,
        appended: Arc<AtomicUsize>,
        waiting: Arc<AtomicUsize>,
        _stop: watch::Sender<bool>,
    }

    impl Gated {
        async fn start() -> Gated {
            let raft = RaftConfig::with_voters([1]);
            let dir = tempfile::tempdir().unwrap();
            let node = RaftNode::boot(NodeId(1), raft, redb_store(dir.path()), &Default::default()).unwrap();
            let (permit, permits) = std::sync::mpsc::sync_channel(0);
            let (appended, waiting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let disk = GatedDisk { permits, appended: appended.clone(), waiting: waiting.clone() };
            let (tx, rx) = mpsc::channel(16);
            let (status_tx, status) = watch::channel(Status::default());
            let driver = Driver::new(
                node,
                Clock::new(),
                Box::new(disk),
                None,
                rx,
                status_tx,
                Arc::new(Metrics::new()),
            );
            let (stop_tx, stop) = watch::channel(false);
            tokio::spawn(driver.run(stop));
            let g = Gated { tx, status, permit, appended, waiting, _stop: stop_tx };
            // Let every sync through until the node leads, committed its first entry, and no sync
            // has waited for 100 ms.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut quiet_since = Instant::now();
            loop {
                assert!(Instant::now() < deadline, "the node did not settle: {:?}", *g.status.borrow());
                if g.waiting.load(SeqCst) > 0 {
                    let _ = g.permit.try_send(());
                    quiet_since = Instant::now();
                }
                let ready = {
                    let s = g.status.borrow();
                    s.role == "leader" && s.commit_index >= 1
                };
                if ready && quiet_since.elapsed() > Duration::from_millis(100) {
                    return g;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        async fn write(&self, key: &str) -> oneshot::Receiver<KvResponse> {
            let (reply, answer) = oneshot::channel();
            let command = Command::put(Clock::new().now(), key, "v");
            let request = RaftRequest::Propose { session: None, command };
            self.tx.send(Input::Request { request, reply: ReplyTo::Local(reply) }).await.unwrap();
            answer
        }

        /// Wait (at most 5 s) until `what` holds.
        async fn until(&self, what: &str, f: impl Fn(&Gated) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !f(self) {
                assert!(Instant::now() < deadline, "timed out waiting until {what}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }

        /// Let the sync that is waiting complete.
        async fn release_one_sync(&self) {
            let permit = self.permit.clone();
            tokio::task::spawn_blocking(move || permit.send(()).unwrap()).await.unwrap();
        }
    }

    fn is_put(answer: &KvResponse) -> bool {
        matches!(answer, RaftResponse::Output(Ok(concord_kv::Response::Put { .. })))
    }

    /// A batch of writes (a pipeline's SETs) is one driver input: the proposals enter the log in
    /// order under one sync, and every answer arrives together, in its slot, once it completes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_of_writes_is_one_sync_and_answered_in_its_slots() {
        let g = Gated::start().await;
        let syncs_before = g.status.borrow().wal_syncs;
        let requests: Vec<crate::KvRequest> = ["a", "b", "c"]
            .into_iter()
            .map(|key| RaftRequest::Propose {
                session: None,
                command: Command::put(Clock::new().now(), key, key),
            })
            .collect();
        let (reply, mut answers) = BatchReply::new(requests.len());
        g.tx.send(Input::Batch { requests, reply }).await.unwrap();
        g.until("the batch's sync waits", |g| g.waiting.load(SeqCst) == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(answers.try_recv().is_err(), "answered before the sync completed");
        g.release_one_sync().await;
        let answers = tokio::time::timeout(Duration::from_secs(5), answers).await.unwrap().unwrap();
        let revisions: Vec<u64> = answers
            .iter()
            .map(|a| match a {
                Some(RaftResponse::Output(Ok(concord_kv::Response::Put { revision, .. }))) => *revision,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(revisions.windows(2).all(|w| w[0] < w[1]), "applied in order: {revisions:?}");
        g.until("the status counts the sync", |g| g.status.borrow().wal_syncs > syncs_before).await;
        assert_eq!(g.status.borrow().wal_syncs, syncs_before + 1, "one sync for the whole batch");
    }

    /// The contract of `process.rs`: a reply that depends on a write is held until the sync that
    /// makes the write durable has completed – here, until the test lets the sync finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_wait_for_the_sync_that_covers_their_writes() {
        let g = Gated::start().await;
        let before = g.appended.load(SeqCst);
        let mut answer = g.write("k").await;
        // The entry is written, but not synced: no answer may arrive.
        g.until("the entry is appended and its sync waits", |g| {
            g.appended.load(SeqCst) > before && g.waiting.load(SeqCst) == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(answer.try_recv().is_err(), "the reply went out before its sync completed");
        // Now let the waiting sync complete.
        g.release_one_sync().await;
        let answer = tokio::time::timeout(Duration::from_secs(5), answer).await.unwrap().unwrap();
        assert!(is_put(&answer), "{answer:?}");
    }

    /// The pipelined loop: while sync k is in flight the node keeps stepping (a second write enters
    /// Raft's log); the first reply leaves when sync k completes, the second waits for the next sync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_keeps_stepping_while_a_sync_is_in_flight() {
        let g = Gated::start().await;
        let log_before = g.status.borrow().last_log_index;
        let mut first = g.write("a").await;
        g.until("the first write's sync waits", |g| g.waiting.load(SeqCst) == 1).await;

        let mut second = g.write("b").await;
        // A loop that awaited the sync would not see the second write before the permit.
        g.until("the second write is in the log", |g| g.status.borrow().last_log_index >= log_before + 2)
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(first.try_recv().is_err(), "the first reply went out before its sync completed");
        assert!(second.try_recv().is_err(), "the second reply went out before any sync completed");

        g.release_one_sync().await;
        let answer = tokio::time::timeout(Duration::from_secs(5), &mut first).await.unwrap().unwrap();
        assert!(is_put(&answer), "{answer:?}");
        // The second write came after sync k: it waits for the next one, which is now waiting.
        g.until("the second write's sync waits", |g| g.waiting.load(SeqCst) == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(second.try_recv().is_err(), "the second reply went out with the first write's sync");
        g.release_one_sync().await;
        let answer = tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap();
        assert!(is_put(&answer), "{answer:?}");
    }
}

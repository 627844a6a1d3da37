//! [`Cluster`]: a small deterministic Raft cluster – N [`RaftNode`]s, a message queue the test
//! controls, timers, per-node clock rates, partitions, and crashes that keep only synced writes.
//!
//! It is *finer* than the simulator: a test reaches into a node between two messages, replaces a
//! disk with a scripted log ([`disk_with_log`], Figure 8), flips a bit in a record, or crashes a
//! leader the instant it commits. Everything is driven by one seeded generator: same seed, same run.
//!
//! ## The disk is the simulator's
//! Each host's disk is `concord_sim::disk::SimDisk`, the model the simulator uses: writes stay
//! pending until a sync completes, and a crash loses them (or, with [`Cluster::tear_on_crash`],
//! keeps a random prefix and tears the next write at a random byte). The harness only decides
//! *when* a sync completes (`sync_latency`); what a crash does to the disk is decided in one place.

use concord_core::{
    ClientId, Durable, Effect, Io, NodeId, Process, RequestId, StateMachine, StorageOp, Time,
};
use concord_raft::invariants::SafetyMonitor;
use concord_raft::message::{Message, RaftRequest, RaftResponse, ReadConsistency, Session};
use concord_raft::{RaftConfig, RaftNode, Timer};
use concord_sim::disk::SimDisk;
use concord_sim::scenario::CrashMode;
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::list::{ListDisk, ListMachine};
use concord_core::hash::SplitMix64;

type Node<S> = RaftNode<S>;

/// A message in flight: `(from, to, message)`.
type InFlight<C> = (NodeId, NodeId, Message<C>);

/// One machine in the test cluster: a node (if running), its disk, its timers and clock.
pub struct Host<S: StateMachine> {
    pub node: Option<Node<S>>,
    /// The simulator's disk model: what survived every sync, and the writes still pending (lost
    /// or torn in a crash).
    pub disk: SimDisk,
    /// Timer deadlines in true time.
    timers: BTreeMap<Timer, Time>,
    /// Effects waiting for a sync in progress to finish (the driver carries effects out in order).
    backlog: VecDeque<Effect<Node<S>>>,
    /// A sync in progress covers the writes before this disk sequence number.
    syncing: Option<u64>,
    /// The local clock runs at `clock_rate` × true time (1.0: perfect) since `clock_base`
    /// (true time, local time then), so a rate change never makes it jump.
    pub clock_rate: f64,
    clock_base: (Time, Time),
    rng: SplitMix64,
}

impl<S: StateMachine> Host<S> {
    fn local_now(&self, now: Time) -> Time {
        let (true_base, local_base) = self.clock_base;
        local_base
            + Duration::from_nanos(
                (now.saturating_since(true_base).as_nanos() as f64 * self.clock_rate) as u64,
            )
    }
}

/// A recorded protocol event.
#[derive(Clone, Debug)]
pub struct TraceEvent {
    pub time: Time,
    pub node: NodeId,
    pub name: &'static str,
    pub detail: serde_json::Value,
}

/// A deterministic in-process Raft cluster.
pub struct Cluster<S: StateMachine> {
    pub config: RaftConfig,
    make: Box<dyn Fn(NodeId) -> S>,
    pub hosts: BTreeMap<NodeId, Host<S>>,
    /// True time.
    pub now: Time,
    seq: u64,
    /// Messages in flight, by delivery time.
    queue: BTreeMap<(Time, u64), InFlight<S::Command>>,
    pub rng: SplitMix64,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// One-way latency, uniform in `[min, max]`.
    pub latency: (Duration, Duration),
    /// Message loss, per mille.
    pub loss_per_mille: u64,
    /// Duplicate delivery, per mille.
    pub duplicate_per_mille: u64,
    /// Messages (per mille) that take an extra long detour, uniform in `spike_latency`: the tail
    /// that makes old messages arrive after the world moved on.
    pub spike_per_mille: u64,
    pub spike_latency: (Duration, Duration),
    /// How long a sync takes, uniform in `[min, max]` (zero: instant). Effects after a `Sync` wait
    /// for it, and a crash meanwhile loses the writes it covers.
    pub sync_latency: (Duration, Duration),
    /// Syncs in progress, by completion time.
    sync_done: BTreeMap<(Time, u64), NodeId>,
    /// On a crash, keep a random prefix of the unsynced writes and tear the next one (as a disk
    /// might), instead of losing them all.
    pub tear_on_crash: bool,
    /// Nemesis aimed at a delicate moment: crash a leader right after its commit index advanced
    /// (its messages already sent stay in flight), per mille of such moments.
    pub crash_leader_on_commit_per_mille: u64,
    /// Likewise right after a node won an election (with a slow sync, its first appends die with
    /// it while its no-op may survive on disk: the stranded entry of Figure 8's S5).
    pub crash_leader_on_election_per_mille: u64,
    /// Replies to client requests, in order.
    pub replies: Vec<(NodeId, RequestId, RaftResponse<S::Output>)>,
    next_client_seq: u64,
    pub safety: SafetyMonitor,
    /// Check Figure 3's invariants after every event.
    pub check_invariants: bool,
    /// The first invariant violation seen.
    pub violation: Option<String>,
    pub record_events: bool,
    pub events: Vec<TraceEvent>,
    /// Protocol events seen so far, by name (always counted, even when not recorded).
    pub event_counts: BTreeMap<&'static str, u64>,
    /// Messages delivered so far (for counting round trips).
    pub delivered: BTreeMap<&'static str, u64>,
}

impl<S: StateMachine> Cluster<S> {
    /// `n` nodes with ids `1..=n`, all voters, booted and started.
    pub fn new(n: u32, config: RaftConfig, seed: u64, make: impl Fn() -> S + 'static) -> Self {
        Cluster::with_machines(n, config, seed, move |_| make())
    }

    /// Like [`Cluster::new`], with each node's state machine made for its id (a durable machine
    /// reopens its own disk).
    pub fn with_machines(
        n: u32,
        mut config: RaftConfig,
        seed: u64,
        make: impl Fn(NodeId) -> S + 'static,
    ) -> Self {
        config.voters = (1..=n).map(NodeId).collect();
        let mut cluster = Cluster {
            config,
            make: Box::new(make),
            hosts: BTreeMap::new(),
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            rng: SplitMix64(seed),
            blocked: BTreeSet::new(),
            latency: (Duration::from_millis(1), Duration::from_millis(5)),
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            spike_per_mille: 0,
            spike_latency: (Duration::from_millis(50), Duration::from_millis(500)),
            sync_latency: (Duration::ZERO, Duration::ZERO),
            sync_done: BTreeMap::new(),
            tear_on_crash: false,
            crash_leader_on_commit_per_mille: 0,
            crash_leader_on_election_per_mille: 0,
            replies: Vec::new(),
            next_client_seq: 0,
            safety: SafetyMonitor::default(),
            check_invariants: true,
            violation: None,
            record_events: false,
            events: Vec::new(),
            delivered: BTreeMap::new(),
            event_counts: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.add_host(NodeId(id));
        }
        cluster
    }

    /// Add a machine with an empty disk and start a node on it (a new server to add as a learner).
    pub fn add_host(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        self.hosts.insert(
            id,
            Host {
                node: None,
                disk: SimDisk::default(),
                timers: BTreeMap::new(),
                backlog: VecDeque::new(),
                syncing: None,
                clock_rate: 1.0,
                clock_base: (Time::ZERO, Time::ZERO),
                rng: SplitMix64(seed),
            },
        );
        self.restart(id);
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.hosts.keys().copied().collect()
    }

    pub fn node(&self, id: NodeId) -> Option<&Node<S>> {
        self.hosts.get(&id).and_then(|h| h.node.as_ref())
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// Run `f` on a node with an `Io`, then carry out its effects.
    fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut Node<S>, &mut Io<'_, Node<S>>)) {
        let now = self.now;
        let tracing = self.record_events;
        let Some(host) = self.hosts.get_mut(&id) else { return };
        let local = host.local_now(now);
        let Some(node) = host.node.as_mut() else { return };
        let commit_before = node.commit_index();
        let leader_before = node.is_leader();
        let mut effects = Vec::new();
        {
            let mut io = Io::new(id, local, tracing, &mut host.rng, &mut effects);
            f(node, &mut io);
        }
        let committed_as_leader = node.is_leader() && node.commit_index() > commit_before;
        let just_elected = node.is_leader() && !leader_before;
        self.carry_out(id, effects);
        if self.check_invariants && self.violation.is_none() {
            if let Err(v) = self.check() {
                self.violation = Some(format!("at {}: {v}", self.now));
            }
        }
        if (committed_as_leader && self.rng.chance(self.crash_leader_on_commit_per_mille))
            || (just_elected && self.rng.chance(self.crash_leader_on_election_per_mille))
        {
            self.crash(id);
        }
    }

    /// Wake a quiesced node as a liveness-watching driver would (`RaftNode::wake`).
    pub fn wake(&mut self, id: NodeId, leader_heard_at: Option<Time>) {
        self.with_node(id, |n, io| n.wake(io, leader_heard_at));
    }

    /// Hand `to` a message as if `from` had sent it (delivered at once).
    pub fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message<S::Command>) {
        self.with_node(to, |n, io| n.on_message(io, from, msg));
    }

    /// The timers armed on `id` now.
    pub fn timers(&self, id: NodeId) -> Vec<Timer> {
        self.hosts.get(&id).map_or_else(Vec::new, |h| h.timers.keys().copied().collect())
    }

    /// Check the safety invariants now.
    pub fn check(&mut self) -> Result<(), concord_raft::InvariantViolation> {
        let nodes: Vec<(NodeId, Option<&Node<S>>)> =
            self.hosts.iter().map(|(&id, h)| (id, h.node.as_ref())).collect();
        self.safety.check(&nodes)
    }

    fn carry_out(&mut self, id: NodeId, effects: Vec<Effect<Node<S>>>) {
        for effect in effects {
            let blocked = self.hosts[&id].syncing.is_some();
            match effect {
                // Depends on nothing unsynced: out at once, past the sync in progress.
                Effect::SendNow { to, msg } if blocked => self.transmit(id, to, msg),
                Effect::ReplyNow { request, response } if blocked => {
                    self.replies.push((id, request, response))
                }
                effect => {
                    self.hosts.get_mut(&id).expect("host").backlog.push_back(effect);
                    self.drain_backlog(id);
                }
            }
        }
    }

    /// Carry out a node's effects in order, stopping at a sync that takes time.
    fn drain_backlog(&mut self, id: NodeId) {
        loop {
            let host = self.hosts.get_mut(&id).expect("host");
            if host.syncing.is_some() {
                return;
            }
            let Some(effect) = host.backlog.pop_front() else { return };
            match effect {
                // A loopback: never lost, and gone with the node if it crashes first (`crash`).
                Effect::Send { to, msg } if to == id => {
                    self.seq += 1;
                    self.queue.insert((self.now, self.seq), (id, id, msg));
                }
                Effect::Send { to, msg } | Effect::SendNow { to, msg } => self.transmit(id, to, msg),
                Effect::SetTimer { timer, after } => {
                    let host = self.hosts.get_mut(&id).expect("host");
                    let real = Duration::from_nanos((after.as_nanos() as f64 / host.clock_rate) as u64);
                    host.timers.insert(timer, self.now + real);
                }
                Effect::CancelTimer { timer } => {
                    self.hosts.get_mut(&id).expect("host").timers.remove(&timer);
                }
                Effect::Persist(op) => self.hosts.get_mut(&id).expect("host").disk.write(op),
                Effect::Sync => {
                    let (lo, hi) =
                        (self.sync_latency.0.as_nanos() as u64, self.sync_latency.1.as_nanos() as u64);
                    if hi == 0 {
                        let disk = &mut self.hosts.get_mut(&id).expect("host").disk;
                        let upto = disk.begin_sync();
                        disk.complete_sync(upto);
                    } else {
                        let took = lo + self.rng.below(hi.saturating_sub(lo) + 1);
                        let host = self.hosts.get_mut(&id).expect("host");
                        host.syncing = Some(host.disk.begin_sync());
                        self.seq += 1;
                        self.sync_done.insert((self.now + Duration::from_nanos(took), self.seq), id);
                    }
                }
                Effect::Reply { request, response } | Effect::ReplyNow { request, response } => {
                    self.replies.push((id, request, response))
                }
                Effect::Event(e) => {
                    *self.event_counts.entry(e.name).or_default() += 1;
                    if self.record_events {
                        self.events.push(TraceEvent {
                            time: self.now,
                            node: id,
                            name: e.name,
                            detail: e.detail,
                        });
                    }
                }
            }
        }
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: Message<S::Command>) {
        if self.blocked.contains(&(from, to)) || self.rng.chance(self.loss_per_mille) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate_per_mille) { 2 } else { 1 };
        for _ in 0..copies {
            let (lo, hi) = (self.latency.0.as_nanos() as u64, self.latency.1.as_nanos() as u64);
            let mut delay = lo + self.rng.below(hi - lo + 1);
            if self.rng.chance(self.spike_per_mille) {
                let (lo, hi) =
                    (self.spike_latency.0.as_nanos() as u64, self.spike_latency.1.as_nanos() as u64);
                delay += lo + self.rng.below(hi.saturating_sub(lo) + 1);
            }
            self.seq += 1;
            self.queue.insert((self.now + Duration::from_nanos(delay), self.seq), (from, to, msg.clone()));
        }
    }

    /// The time of the next event, if any.
    fn next_event_time(&self) -> Option<Time> {
        let msg = self.queue.keys().next().map(|k| k.0);
        let timer = self.hosts.values().flat_map(|h| h.timers.values()).min().copied();
        let sync = self.sync_done.keys().next().map(|k| k.0);
        [msg, timer, sync].into_iter().flatten().min()
    }

    /// Process the next event. Returns false if there is none.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_event_time() else { return false };
        self.now = self.now.max(at);
        // Messages first at equal times, then timers in (node, timer) order: deterministic.
        if let Some((&key, _)) = self.queue.iter().next().filter(|(k, _)| k.0 <= at) {
            let (from, to, msg) = self.queue.remove(&key).expect("present");
            if self.blocked.contains(&(from, to)) {
                return true;
            }
            if self.is_up(to) {
                *self.delivered.entry(concord_core::Message::kind(&msg)).or_default() += 1;
                self.with_node(to, |n, io| n.on_message(io, from, msg));
            }
            return true;
        }
        if let Some((&key, &id)) = self.sync_done.iter().next().filter(|(k, _)| k.0 <= at) {
            self.sync_done.remove(&key);
            let host = self.hosts.get_mut(&id).expect("host");
            if let Some(upto) = host.syncing.take() {
                host.disk.complete_sync(upto);
            }
            self.drain_backlog(id);
            return true;
        }
        let due = self
            .hosts
            .iter()
            .flat_map(|(&id, h)| h.timers.iter().map(move |(&t, &d)| (d, id, t)))
            .filter(|(d, _, _)| *d <= at)
            .min();
        if let Some((_, id, timer)) = due {
            self.hosts.get_mut(&id).expect("host").timers.remove(&timer);
            self.with_node(id, |n, io| n.on_timer(io, timer));
        }
        true
    }

    /// Run until `d` of true time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.next_event_time() {
            if t > until {
                break;
            }
            self.step();
        }
        self.now = until;
    }

    /// Run until `done` holds (checked after each event) or `limit` passes. Returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            match self.next_event_time() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => {
                    self.now = until;
                    return done(self);
                }
            }
        }
    }

    /// The running leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .filter_map(|(&id, h)| h.node.as_ref().filter(|n| n.is_leader()).map(|n| (n.current_term(), id)))
            .max()
            .map(|(_, id)| id)
    }

    /// Wait (up to 5 s of simulated time) for a leader that a majority of running voters follow.
    pub fn await_leader(&mut self) -> Option<NodeId> {
        self.run_until(Duration::from_secs(5), |c| c.stable_leader().is_some());
        self.stable_leader()
    }

    /// A leader whose term and identity every other running member agrees on.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let term = self.node(leader)?.current_term();
        let agree = self
            .hosts
            .values()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.current_term() == term && n.leader_id() == Some(leader))
            .count();
        let voters = self.node(leader)?.current_membership().voters.len();
        (agree > voters / 2).then_some(leader)
    }

    /// Crash a node: its volatile state and unsynced writes are gone (with `tear_on_crash`, a random
    /// prefix of them survives and the next one is torn at a random byte: `SimDisk::crash`).
    pub fn crash(&mut self, id: NodeId) {
        let mode = if self.tear_on_crash { CrashMode::Torn } else { CrashMode::Lose };
        self.sync_done.retain(|_, n| *n != id);
        self.queue.retain(|_, (from, to, _)| !(*from == id && *to == id));
        let host = self.hosts.get_mut(&id).expect("host");
        host.node = None;
        host.timers.clear();
        host.backlog.clear();
        host.syncing = None;
        host.disk.crash(mode, &mut self.rng);
    }

    /// Boot a node from its disk and start it. Panics if recovery fails (use [`Cluster::try_restart`]).
    pub fn restart(&mut self, id: NodeId) {
        if let Err(e) = self.try_restart(id) {
            panic!("{id} cannot recover: {e}");
        }
    }

    pub fn try_restart(&mut self, id: NodeId) -> Result<(), concord_raft::RecoveryError> {
        let host = self.hosts.get_mut(&id).expect("host");
        let node = RaftNode::boot(id, self.config.clone(), (self.make)(id), host.disk.durable())?;
        host.node = Some(node);
        host.timers.clear();
        self.with_node(id, |n, io| n.on_start(io));
        Ok(())
    }

    /// Cut every link between the groups (nodes not listed keep all their links).
    pub fn partition(&mut self, groups: &[&[u32]]) {
        self.blocked.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a.iter() {
                        for &y in b.iter() {
                            self.blocked.insert((NodeId(x), NodeId(y)));
                        }
                    }
                }
            }
        }
    }

    /// Cut a node off from everyone.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Send a client request to `node` now; returns its id (find the answer with [`Cluster::reply`]).
    pub fn request(&mut self, node: NodeId, req: RaftRequest<S::Command, S::Query>) -> RequestId {
        self.next_client_seq += 1;
        let id = RequestId { client: ClientId(0), seq: self.next_client_seq };
        self.with_node(node, |n, io| n.on_request(io, id, req));
        id
    }

    pub fn reply(&self, request: RequestId) -> Option<&RaftResponse<S::Output>> {
        self.replies.iter().find(|(_, r, _)| *r == request).map(|(_, _, resp)| resp)
    }

    /// Send a request to `node` and run until it is answered (or `limit` passes).
    pub fn call(
        &mut self,
        node: NodeId,
        req: RaftRequest<S::Command, S::Query>,
        limit: Duration,
    ) -> Option<RaftResponse<S::Output>> {
        let id = self.request(node, req);
        self.run_until(limit, |c| c.reply(id).is_some());
        self.reply(id).cloned()
    }

    /// Propose a command (no session) at the current leader and wait for the answer.
    pub fn propose(&mut self, command: S::Command) -> Option<RaftResponse<S::Output>> {
        let leader = self.await_leader()?;
        self.call(leader, RaftRequest::Propose { session: None, command }, Duration::from_secs(2))
    }

    /// Propose with a session.
    pub fn propose_with_session(
        &mut self,
        node: NodeId,
        session: Session,
        command: S::Command,
    ) -> Option<RaftResponse<S::Output>> {
        self.call(node, RaftRequest::Propose { session: Some(session), command }, Duration::from_secs(2))
    }

    /// Read at `node`.
    pub fn read(
        &mut self,
        node: NodeId,
        consistency: ReadConsistency,
        query: S::Query,
    ) -> Option<RaftResponse<S::Output>> {
        self.call(node, RaftRequest::Read { consistency, query }, Duration::from_secs(2))
    }

    /// Panic with the violation if an invariant broke.
    pub fn assert_safe(&self) {
        if let Some(v) = &self.violation {
            panic!("safety violation: {v}");
        }
    }

    /// Set a node's clock rate (1.0 = true time; 0.5 = runs at half speed).
    pub fn set_clock_rate(&mut self, id: NodeId, rate: f64) {
        let now = self.now;
        let host = self.hosts.get_mut(&id).expect("host");
        host.clock_base = (now, host.local_now(now));
        host.clock_rate = rate;
    }
}

impl Cluster<ListMachine> {
    /// A cluster of [`ListMachine`]s.
    pub fn lists(n: u32, config: RaftConfig, seed: u64) -> Self {
        Cluster::new(n, config, seed, ListMachine::default)
    }

    /// A cluster of durable [`ListMachine`]s, each with a disk of its own that outlives crashes.
    pub fn durable_lists(n: u32, config: RaftConfig, seed: u64) -> Self {
        let disks: std::sync::Mutex<BTreeMap<NodeId, ListDisk>> = Default::default();
        Cluster::with_machines(n, config, seed, move |id| {
            ListMachine::durable(disks.lock().expect("disks").entry(id).or_default().clone())
        })
    }

    /// The list as applied on `id`.
    pub fn items(&self, id: NodeId) -> Vec<i64> {
        self.node(id).map(|n| n.state_machine().items.clone()).unwrap_or_default()
    }
}

/// A disk holding term `term`, vote `voted_for` and a log whose entry `i` has term `log_terms[i-1]`
/// and command `i` (to script situations such as Figure 8).
pub fn disk_with_log(term: u64, voted_for: Option<NodeId>, log_terms: &[u64]) -> Durable {
    use concord_raft::log::{Entry, Payload};
    use concord_raft::storage::{encode, log_key, HardState};
    let mut d = Durable::new();
    let hs = HardState { version: 1, term, voted_for };
    d.apply(&StorageOp::Put { key: hs.key().to_string(), value: encode(&hs) });
    for (i, &t) in log_terms.iter().enumerate() {
        let index = i as u64 + 1;
        let entry: Entry<i64> = Entry {
            term: t,
            index,
            payload: Payload::Command { session: None, command: std::sync::Arc::new(index as i64) },
        };
        d.apply(&StorageOp::Put { key: log_key(index), value: encode(&entry) });
    }
    d
}

impl<S: StateMachine> Cluster<S> {
    /// Crash a node, replace its disk, and boot it again.
    pub fn replace_disk(&mut self, id: NodeId, durable: Durable) {
        self.crash(id);
        self.hosts.get_mut(&id).expect("host").disk = synced_disk(&durable);
        self.restart(id);
    }

    /// What `id` would find on its disk if it booted now.
    pub fn durable(&mut self, id: NodeId) -> &Durable {
        self.hosts.get_mut(&id).expect("host").disk.durable()
    }

    /// Write `op` straight to `id`'s stable storage (to script a torn or corrupt record).
    pub fn write_durable(&mut self, id: NodeId, op: StorageOp) {
        let disk = &mut self.hosts.get_mut(&id).expect("host").disk;
        let pending_before = disk.is_synced();
        assert!(pending_before, "write_durable on a disk with pending writes: crash the node first");
        disk.write(op);
        let upto = disk.begin_sync();
        disk.complete_sync(upto);
    }
}

/// A simulator disk holding exactly `durable`, nothing pending.
fn synced_disk(durable: &Durable) -> SimDisk {
    let mut disk = SimDisk::default();
    for (key, value) in durable.scan_prefix("") {
        disk.write(StorageOp::Put { key: key.to_string(), value: value.to_vec() });
    }
    let upto = disk.begin_sync();
    disk.complete_sync(upto);
    disk
}

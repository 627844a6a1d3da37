//! The Paxos node: every role of PMMC in one process, its state, boot, and dispatch.
//!
//! Each node plays all of PMMC's roles at once – acceptor, replica (which is also the learner),
//! and leader (proposer) when it holds a ballot – as Lamport's §3 suggests ("each server plays
//! every role"). The state of each role is grouped below, and its code lives in its own file:
//!
//! | role | state here | code |
//! |---|---|---|
//! | acceptor | `promised`, `accepted` | `acceptor.rs` |
//! | leader / proposer (scout = phase 1, commander = phase 2) | `role`, `leader`, `highest_seen` | `leader.rs` |
//! | replica / learner | `sm`, `sessions`, `decided`, `applied`, snapshot, `pending` | `replica.rs` |
//!
//! ## Persistence discipline
//! As in `concord-raft`: every durable write goes through [`PaxosNode::persist`], which records
//! that a sync is owed; every message and reply goes through [`PaxosNode::send`] /
//! [`PaxosNode::reply`], which emit the owed `Sync` first. The driver holds back every effect after
//! a `Sync` until it completes, so a promise or an acceptance is on disk before the message that
//! reports it leaves (*Paxos Made Simple* §2.2, "stable storage").
//!
//! Messages to itself (a leader is also one of its acceptors) go through a local inbox, handled
//! before the input returns: the code has one path for every acceptor, the leader included.

use crate::ballot::Ballot;
use crate::config::PaxosConfig;
use crate::leader::{LeaderState, Scout};
use crate::message::{LogValue, Message, PaxosRequest, PaxosResponse};
use crate::storage;
use concord_core::{Io, NodeId, Process, RequestId, StateMachine, StorageOp, Time};
use concord_raft::message::Session;
use concord_raft::session::Sessions;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};

/// The value type of a node's log.
pub type Value<S> = LogValue<<S as StateMachine>::Command, <S as StateMachine>::Query>;

/// The node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Follower: no heartbeat from a leader in time → start phase 1. Candidate: phase 1 took too
    /// long → retry with a higher ballot.
    LeaderTimeout,
    /// Leader: heartbeats, retransmission of unanswered accepts. Candidate: retransmission of
    /// unanswered prepares.
    Heartbeat,
}

/// What a node is doing about leadership.
pub(crate) enum Role<V> {
    Follower,
    /// Running phase 1 (PMMC's scout).
    Candidate(Scout<V>),
    /// Phase 1 done: proposing in phase 2 (PMMC's commanders, one per slot in flight).
    Leader(LeaderState<V>),
}

/// The last `JOURNAL_CAPACITY` acceptances or learned slots, with a running count – what the
/// simulator's online invariants read after every step.
#[derive(Clone, Debug)]
pub struct Journal<T> {
    total: u64,
    recent: VecDeque<T>,
}

impl<T> Default for Journal<T> {
    fn default() -> Self {
        Journal { total: 0, recent: VecDeque::new() }
    }
}

const JOURNAL_CAPACITY: usize = 1024;

/// How many of the highest accepted slots `inspect` lists.
const INSPECT_ACCEPTED_TAIL: usize = 64;

impl<T> Journal<T> {
    pub(crate) fn push(&mut self, record: T) {
        self.total += 1;
        if self.recent.len() == JOURNAL_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// Records pushed since the reader had seen `seen` of them; `None` if some were dropped.
    pub fn since(&self, seen: u64) -> Option<impl Iterator<Item = &T>> {
        let new = self.total.checked_sub(seen)?;
        if new > self.recent.len() as u64 {
            return None;
        }
        Some(self.recent.iter().skip(self.recent.len() - new as usize))
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// An acceptance, as the invariant checker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptRecord {
    pub slot: u64,
    pub ballot: Ballot,
    pub value_hash: u64,
    /// The acceptor's promise just before it accepted.
    pub promised_before: Ballot,
}

/// A slot learned as chosen (by counting, from a `decide`, or from a catch-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnRecord {
    pub slot: u64,
    pub ballot: Ballot,
    pub value_hash: u64,
}

/// One Multi-Paxos server, generic over the replicated state machine.
pub struct PaxosNode<S: StateMachine> {
    pub(crate) id: NodeId,
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) config: PaxosConfig,
    pub(crate) q1: usize,
    pub(crate) q2: usize,

    // ----- acceptor (acceptor.rs) -----
    pub(crate) promised: Ballot,
    /// slot → the accepted proposal with the highest ballot (slots above the snapshot).
    pub(crate) accepted: BTreeMap<u64, (Ballot, Value<S>)>,
    pub(crate) accept_journal: Journal<AcceptRecord>,

    // ----- leader / proposer (leader.rs) -----
    pub(crate) role: Role<Value<S>>,
    /// The leader this node believes in (itself when leading).
    pub(crate) leader: Option<NodeId>,
    /// The highest ballot seen in any message: the next campaign goes above it.
    pub(crate) highest_seen: Ballot,
    /// Campaigns in a row that did not end in leadership (back-off exponent).
    pub(crate) failed_attempts: u32,

    // ----- replica / learner (replica.rs) -----
    pub(crate) sm: S,
    pub(crate) sessions: Sessions<S::Output>,
    /// slot → (ballot, value) learned as chosen, above `applied`... and possibly some below it
    /// until the next snapshot compacts them.
    pub(crate) decided: BTreeMap<u64, (Ballot, Value<S>)>,
    /// Every slot up to here is chosen and applied.
    pub(crate) applied: u64,
    pub(crate) snapshot_slot: u64,
    /// The encoded snapshot at `snapshot_slot` (sent to nodes far behind).
    pub(crate) snapshot_data: Option<Vec<u8>>,
    /// Client requests proposed by this node as leader: slot → (request, its value's origin).
    pub(crate) pending: BTreeMap<u64, (RequestId, (NodeId, u64))>,
    pub(crate) learn_journal: Journal<LearnRecord>,
    pub(crate) catch_up_asked: Option<Time>,
    /// Leader: which peer to ask next for slots it is missing.
    pub(crate) catch_up_turn: usize,

    // ----- I/O -----
    pub(crate) needs_sync: bool,
    pub(crate) inbox: VecDeque<(NodeId, Message<Value<S>>)>,
}

impl<S: StateMachine> PaxosNode<S> {
    /// Build node `id` of the cluster `nodes` from an empty state machine and its disk.
    pub fn boot(
        id: NodeId,
        nodes: Vec<NodeId>,
        config: PaxosConfig,
        mut sm: S,
        durable: &concord_core::Durable,
    ) -> Result<Self, String> {
        config.validate(nodes.len()).map_err(|e| e.to_string())?;
        let (q1, q2) = config.quorums(nodes.len());
        let recovered = storage::recover::<Value<S>>(durable)?;
        let mut sessions = Sessions::default();
        let mut snapshot_slot = 0;
        let mut snapshot_data = None;
        if let Some((slot, data)) = recovered.snapshot {
            let decoded = crate::replica::SnapshotData::<S::Output>::decode(&data)?;
            sm.restore(&decoded.machine).map_err(|e| e.to_string())?;
            sessions = decoded.sessions;
            snapshot_slot = slot;
            snapshot_data = Some(data);
        }
        let mut node = PaxosNode {
            id,
            nodes,
            config,
            q1,
            q2,
            promised: recovered.promised,
            accepted: recovered.accepted,
            accept_journal: Journal::default(),
            role: Role::Follower,
            leader: None,
            highest_seen: recovered.promised,
            failed_attempts: 0,
            sm,
            sessions,
            decided: recovered.decided,
            applied: snapshot_slot,
            snapshot_slot,
            snapshot_data,
            pending: BTreeMap::new(),
            learn_journal: Journal::default(),
            catch_up_asked: None,
            catch_up_turn: 0,
            needs_sync: false,
            inbox: VecDeque::new(),
        };
        node.apply_recovered();
        Ok(node)
    }

    // ----- persistence and output, in the only order allowed -----

    pub(crate) fn persist(&mut self, io: &mut Io<'_, Self>, ops: impl IntoIterator<Item = StorageOp>) {
        for op in ops {
            io.persist(op);
        }
        self.needs_sync = true;
    }

    pub(crate) fn flush(&mut self, io: &mut Io<'_, Self>) {
        if self.needs_sync {
            io.sync();
            self.needs_sync = false;
        }
    }

    /// Send a message once everything it may depend on is durable (to itself: via the inbox).
    pub(crate) fn send(&mut self, io: &mut Io<'_, Self>, to: NodeId, msg: Message<Value<S>>) {
        if to == self.id {
            self.inbox.push_back((to, msg));
            return;
        }
        self.flush(io);
        io.send(to, msg);
    }

    /// Send to every node, itself included – itself *first*, directly: a leader's own promise or
    /// acceptance is then persisted before the `Sync` that precedes the messages to the others, so
    /// it is durable before any other acceptor can answer (and before the leader counts a quorum
    /// that includes itself).
    pub(crate) fn broadcast(&mut self, io: &mut Io<'_, Self>, msg: Message<Value<S>>) {
        let me = self.id;
        self.step(io, me, msg.clone());
        for to in self.nodes.clone() {
            if to != me {
                self.send(io, to, msg.clone());
            }
        }
    }

    pub(crate) fn reply(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        response: PaxosResponse<S::Output>,
    ) {
        self.flush(io);
        io.reply(request, response);
    }

    pub(crate) fn note_ballot(&mut self, b: Ballot) {
        self.highest_seen = self.highest_seen.max(b);
    }

    // ----- dispatch -----

    pub(crate) fn step(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<Value<S>>) {
        match msg {
            Message::Prepare { ballot, from_slot } => self.handle_prepare(io, from, ballot, from_slot),
            Message::Promise { ballot, accepted, compacted_upto } => {
                self.handle_promise(io, from, ballot, accepted, compacted_upto)
            }
            Message::Accept { ballot, slot, value } => self.handle_accept(io, from, ballot, slot, value),
            Message::Accepted { ballot, slot } => self.handle_accepted(io, from, ballot, slot),
            Message::Nack { ballot, promised } => self.handle_nack(io, ballot, promised),
            Message::Decide { ballot, slot, value } => self.handle_decide(io, from, ballot, slot, value),
            Message::Heartbeat { ballot, decided_upto } => self.handle_heartbeat(io, ballot, decided_upto),
            Message::CatchUp { from_slot } => self.handle_catch_up(io, from, from_slot),
            Message::CatchUpResp { decided } => self.handle_catch_up_resp(io, from, decided),
            Message::Snapshot { slot, data } => self.handle_snapshot(io, slot, data),
        }
    }

    /// Handle messages a node sent itself, until there are none (bounded: each round trip to
    /// itself ends in a promise, an acceptance or a decision).
    fn drain_inbox(&mut self, io: &mut Io<'_, Self>) {
        while let Some((from, msg)) = self.inbox.pop_front() {
            self.step(io, from, msg);
        }
    }

    // ----- read accessors (invariant hooks, tests, viewers) -----

    pub fn id(&self) -> NodeId {
        self.id
    }
    /// `"leader"`, `"candidate"` or `"follower"`.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Follower => "follower",
            Role::Candidate(_) => "candidate",
            Role::Leader(_) => "leader",
        }
    }
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }
    /// The ballot this node leads or campaigns with.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Follower => None,
            Role::Candidate(s) => Some(s.ballot),
            Role::Leader(l) => Some(l.ballot),
        }
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn promised(&self) -> Ballot {
        self.promised
    }
    pub fn applied(&self) -> u64 {
        self.applied
    }
    pub fn snapshot_slot(&self) -> u64 {
        self.snapshot_slot
    }
    pub fn quorums(&self) -> (usize, usize) {
        (self.q1, self.q2)
    }
    pub fn accept_journal(&self) -> &Journal<AcceptRecord> {
        &self.accept_journal
    }
    pub fn learn_journal(&self) -> &Journal<LearnRecord> {
        &self.learn_journal
    }
    pub fn state_machine(&self) -> &S {
        &self.sm
    }
    pub fn config(&self) -> &PaxosConfig {
        &self.config
    }
}

/// A stable hash of a log value (for the invariant checker's records).
pub(crate) fn value_hash<V: Serialize>(value: &V) -> u64 {
    concord_core::hash::fnv1a64(&postcard::to_allocvec(value).expect("log values serialise"))
}

impl<S: StateMachine> Process for PaxosNode<S> {
    type Message = Message<Value<S>>;
    type Timer = Timer;
    type Request = PaxosRequest<S::Command, S::Query>;
    type Response = PaxosResponse<S::Output>;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        self.arm_leader_timeout(io);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Self::Message) {
        self.step(io, from, msg);
        self.drain_inbox(io);
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: Timer) {
        match timer {
            Timer::LeaderTimeout => self.on_leader_timeout(io),
            Timer::Heartbeat => self.on_heartbeat_tick(io),
        }
        self.drain_inbox(io);
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: Self::Request) {
        self.handle_request(io, request, req);
        self.drain_inbox(io);
    }

    fn role(&self) -> Option<&'static str> {
        Some(self.role_name())
    }

    fn inspect(&self) -> serde_json::Value {
        json!({
            "id": self.id.0,
            "role": self.role_name(),
            "ballot": self.ballot().map(|b| b.to_string()),
            "promised": self.promised.to_string(),
            "leader": self.leader.map(|n| n.0),
            "applied": self.applied,
            "snapshot_slot": self.snapshot_slot,
            "accepted_slots": self.accepted.len(),
            "decided_slots": self.decided.len(),
            // The highest accepted slots, `[slot, ballot, value kind]` (a viewer's log grid).
            "accepted_tail": self
                .accepted
                .iter()
                .rev()
                .take(INSPECT_ACCEPTED_TAIL)
                .rev()
                .map(|(slot, (b, v))| json!([slot, b.to_string(), v.kind_name()]))
                .collect::<Vec<_>>(),
        })
    }
}

/// Lets the simulator's key-value workloads drive a Paxos cluster: writes are proposals with a
/// session `(client, seq)`; reads are ordered through the log.
impl<S: concord_core::KvStateMachine> concord_core::Service for PaxosNode<S> {
    fn request(client: concord_core::ClientId, seq: u64, op: &concord_core::Op) -> Self::Request {
        match S::access(op, Time::ZERO) {
            concord_core::Access::Write(command) => {
                PaxosRequest::Propose { session: Some(Session { client, seq }), command }
            }
            concord_core::Access::Read(query) => PaxosRequest::Read { query },
        }
    }

    fn completion(op: &concord_core::Op, response: &Self::Response) -> concord_core::Completion {
        use concord_core::Completion;
        match response {
            PaxosResponse::Output(output) => S::completion(op, output),
            PaxosResponse::NotLeader { hint } => Completion::Redirect(*hint),
            PaxosResponse::Rejected { reason } => Completion::Fail(reason.clone()),
            PaxosResponse::Unknown { reason } => Completion::Unknown(reason.clone()),
        }
    }

    fn witness(op: &concord_core::Op, response: &Self::Response) -> Option<u64> {
        match response {
            PaxosResponse::Output(output) => S::witness(op, output),
            _ => None,
        }
    }
}

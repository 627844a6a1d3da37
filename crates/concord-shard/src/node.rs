//! A sharded node, sans-IO: the metadata group, the shard groups this node replicates, routing,
//! forwarding and the mover – one [`Process`] that the simulator (and, later, the server) drives.
//!
//! ```text
//!                     ShardedNode (one per process)
//!   client request ──► route by key (the map this node applied)
//!                        │ group led here ─────────► Host ─► RaftNode<ShardKv>   (shard groups)
//!                        │ group led elsewhere ────► Forward to that node          ▲
//!                        ▼                                  ▲                      │
//!                      answer ◄──────────────── Forwarded ──┘          RaftNode<MapMachine> (group 0)
//!   mover tick (metadata leader): bootstrap the map, start/follow each move's tasks (`mover`)
//!   adopt tick (shard leaders): take the bootstrap slots once
//! ```
//!
//! **Placement.** Every node replicates the metadata group. Shard `k` of `S` (1-based) is
//! replicated by `replicas` consecutive nodes starting at node `k`, in the order of the cluster
//! list – the same placement the map's `Bootstrap` records, computed by every node alike, so each
//! node knows its groups at boot without waiting for the map. (Moving replicas between nodes is
//! not done yet: slot ranges move, replica sets stay.)
//!
//! **Forwarding.** Any node answers any key: a request for a group led elsewhere is sent to the
//! node believed to lead it (its leader hint, else the shard's first replica) as a [`NodeMessage::
//! Forward`], served there, and the answer comes back. One hop only: a forward that lands on a
//! follower is answered `NotLeader` with a hint, which the forwarding node remembers for next time.
//! A forward that gets no answer in [`FORWARD_TIMEOUT`] is answered `Unknown` (it may have run).

use crate::host::{Batch, GroupId, GroupRequest, GroupResponse, Host, Tick};
use crate::kv::{ShardBug, ShardCommand, ShardKv, ShardQuery, ShardResult};
use crate::machine::{MapMachine, MapOutput, MapQuery};
use crate::map::{Change, Proposal, ShardId, ShardMap};
use crate::mover::{self, MoverBug, Task};
use crate::router::{route, Route};
use crate::slot::{Slot, SlotRange};
use concord_core::{ClientId, Durable, Effect, Io, NodeId, Process, ProtocolEvent, RequestId, Time};
use concord_kv::{KvLimits, Query, TxnOp, Write};
use concord_raft::{
    Message as RaftMessage, RaftConfig, RaftNode, RaftRequest, RaftResponse, Timer as RaftTimer,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The metadata group's id; shard `k`'s group is `GroupId(k)`.
pub const META: GroupId = GroupId(0);

/// How often the mover and the adopt check run.
pub const MOVER_TICK: Duration = Duration::from_millis(50);

/// How long a forwarded request (or a mover task) may go unanswered before it is given up.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The client id of requests a node makes itself (the mover's, adopts, forwards it serves).
const INTERNAL: ClientId = ClientId(u32::MAX);

// ----- the groups a node hosts ----------------------------------------------------------------

/// A group on a node: the metadata group or a shard's.
#[allow(clippy::large_enum_variant)] // one per group; boxing would only add a pointer chase
pub enum Group {
    Meta(RaftNode<MapMachine>),
    Data(RaftNode<ShardKv>),
}

pub type ShardRequest = RaftRequest<ShardCommand, ShardQuery>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupMessage {
    Meta(RaftMessage<Proposal>),
    Data(RaftMessage<ShardCommand>),
}

impl concord_core::Message for GroupMessage {
    fn kind(&self) -> &'static str {
        match self {
            GroupMessage::Meta(m) => m.kind(),
            GroupMessage::Data(m) => m.kind(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupTimer {
    Meta(RaftTimer),
    Data(RaftTimer),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupReq {
    Meta(RaftRequest<Proposal, MapQuery>),
    Data(ShardRequest),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupResp {
    Meta(RaftResponse<MapOutput>),
    Data(RaftResponse<ShardResult>),
}

/// Run one input of an inner Raft node and re-emit its effects as the group's.
fn lift<Q: Process>(
    io: &mut Io<'_, Group>,
    f: impl FnOnce(&mut Io<'_, Q>),
    msg: fn(Q::Message) -> GroupMessage,
    timer: fn(Q::Timer) -> GroupTimer,
    resp: fn(Q::Response) -> GroupResp,
) {
    let ((), effects) = io.nested(f);
    for effect in effects {
        match effect {
            Effect::Send { to, msg: m } => io.send(to, msg(m)),
            Effect::SetTimer { timer: t, after } => io.set_timer(timer(t), after),
            Effect::CancelTimer { timer: t } => io.cancel_timer(timer(t)),
            Effect::Persist(op) => io.persist(op),
            Effect::Sync => io.sync(),
            Effect::Reply { request, response } => io.reply(request, resp(response)),
            Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
        }
    }
}

/// Hand one input to the group's Raft node when the input is for its kind of group (`$kind::Meta`
/// for the metadata group, `$kind::Data` for a shard's); otherwise run `$other`.
macro_rules! dispatch {
    ($self:expr, $io:expr, $input:expr, $kind:ident, |$raft:ident, $inner:ident, $x:ident| $call:expr, $other:expr) => {
        match ($self, $input) {
            (Group::Meta($raft), $kind::Meta($x)) => {
                lift($io, |$inner| $call, GroupMessage::Meta, GroupTimer::Meta, GroupResp::Meta)
            }
            (Group::Data($raft), $kind::Data($x)) => {
                lift($io, |$inner| $call, GroupMessage::Data, GroupTimer::Data, GroupResp::Data)
            }
            _ => $other,
        }
    };
}

impl Process for Group {
    type Message = GroupMessage;
    type Timer = GroupTimer;
    type Request = GroupReq;
    type Response = GroupResp;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        match self {
            Group::Meta(raft) => {
                lift(io, |inner| raft.on_start(inner), GroupMessage::Meta, GroupTimer::Meta, GroupResp::Meta)
            }
            Group::Data(raft) => {
                lift(io, |inner| raft.on_start(inner), GroupMessage::Data, GroupTimer::Data, GroupResp::Data)
            }
        }
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: GroupMessage) {
        // A message of the other kind of group cannot be for this one: dropped.
        dispatch!(self, io, msg, GroupMessage, |raft, inner, m| raft.on_message(inner, from, m), {})
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: GroupTimer) {
        dispatch!(self, io, timer, GroupTimer, |raft, inner, t| raft.on_timer(inner, t), {})
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: GroupReq) {
        // A request for the other kind of group is answered in the kind it asked for.
        let mismatch = match &req {
            GroupReq::Meta(_) => GroupResp::Meta(not_here()),
            GroupReq::Data(_) => GroupResp::Data(not_here()),
        };
        dispatch!(self, io, req, GroupReq, |raft, inner, r| raft.on_request(inner, request, r), {
            io.reply(request, mismatch)
        })
    }

    fn role(&self) -> Option<&'static str> {
        match self {
            Group::Meta(raft) => raft.role(),
            Group::Data(raft) => raft.role(),
        }
    }

    fn inspect(&self) -> serde_json::Value {
        match self {
            Group::Meta(raft) => raft.inspect(),
            Group::Data(raft) => raft.inspect(),
        }
    }
}

fn not_here<O>() -> RaftResponse<O> {
    RaftResponse::Rejected { reason: "a request for the other kind of group".into() }
}

impl Group {
    fn leader(&self) -> Option<NodeId> {
        match self {
            Group::Meta(raft) => raft.leader_id(),
            Group::Data(raft) => raft.leader_id(),
        }
    }

    fn is_leader(&self) -> bool {
        match self {
            Group::Meta(raft) => raft.is_leader(),
            Group::Data(raft) => raft.is_leader(),
        }
    }
}

// ----- the node ------------------------------------------------------------------------------

/// How a sharded cluster is laid out, and its deliberate bugs (for the simulator's mutation runs).
#[derive(Clone, Debug)]
pub struct ShardedConfig {
    /// Every node of the cluster, in placement order.
    pub nodes: Vec<NodeId>,
    pub shards: u32,
    /// Replicas per shard (at most the number of nodes).
    pub replicas: usize,
    /// Timeouts and options of every group (its `voters` are ignored: placement decides them).
    pub raft: RaftConfig,
    pub kv: KvLimits,
    /// The metadata leader starts a move of a random slot range this often (`None`: never) – the
    /// simulator's way of running moves during faults.
    pub churn: Option<Duration>,
    pub shard_bug: ShardBug,
    pub mover_bug: MoverBug,
}

impl ShardedConfig {
    /// The replicas of shard `k` (1-based): `replicas` consecutive nodes from the `k`-th.
    pub fn placement(&self, shard: ShardId) -> Vec<NodeId> {
        let n = self.nodes.len();
        (0..self.replicas.min(n)).map(|i| self.nodes[(shard.0 as usize - 1 + i) % n]).collect()
    }

    /// The first map: every shard with its placement, slots split evenly in order.
    pub fn bootstrap(&self) -> Change {
        Change::Bootstrap { shards: (1..=self.shards).map(|k| self.placement(ShardId(k))).collect() }
    }

    /// The slots shard `k` owns in the first map.
    pub fn bootstrap_ranges(&self, shard: ShardId) -> Vec<SlotRange> {
        let mut map = ShardMap::default();
        map.apply(&Proposal { if_epoch: None, change: self.bootstrap() }).expect("a valid placement");
        map.ranges().into_iter().filter(|(_, owner)| *owner == shard).map(|(range, _)| range).collect()
    }

    fn group_config(&self, voters: Vec<NodeId>) -> RaftConfig {
        RaftConfig { voters, ..self.raft.clone() }
    }
}

/// What a node sends another: its groups' messages, or a request forwarded to be served there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NodeMessage {
    Groups(Batch<GroupMessage>),
    Forward { id: u64, group: GroupId, request: GroupReq },
    Forwarded { id: u64, response: GroupResponse<GroupResp> },
}

impl concord_core::Message for NodeMessage {
    fn kind(&self) -> &'static str {
        match self {
            NodeMessage::Groups(batch) => batch.kind(),
            NodeMessage::Forward { .. } => "forward",
            NodeMessage::Forwarded { .. } => "forwarded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeTimer {
    Host(Tick),
    Mover,
}

/// Who waits for the answer of a request this node made.
#[derive(Clone, Debug)]
enum Origin {
    Client(RequestId),
    Mover(Task),
    /// A request another node forwarded here; the answer goes back with its id.
    Remote {
        from: NodeId,
        id: u64,
    },
    Bootstrap,
    Adopt(ShardId),
    Churn,
}

#[derive(Clone, Debug)]
struct Pending {
    origin: Origin,
    group: GroupId,
    /// When it is given up if unanswered (requests served here are always answered by Raft).
    deadline: Option<Time>,
}

/// One node of a sharded cluster (see the module docs).
pub struct ShardedNode {
    me: NodeId,
    config: ShardedConfig,
    host: Host<Group>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    /// The node last known to lead each group (from answers and hosted replicas).
    leaders: BTreeMap<GroupId, NodeId>,
    /// Moves with a mover task in flight (metadata leader only).
    moving: BTreeSet<u64>,
    /// Internal requests whose answers arrived while handling an input, handled at its end.
    answers: Vec<(RequestId, GroupResponse<GroupResp>)>,
}

impl ShardedNode {
    /// Node `me` with every group placement gives it, each recovered from its part of `durable`.
    pub fn boot(me: NodeId, config: ShardedConfig, durable: &Durable) -> Result<ShardedNode, String> {
        let mut groups = Vec::new();
        let meta = crate::host::group_durable(durable, META);
        let meta_raft =
            RaftNode::boot(me, config.group_config(config.nodes.clone()), MapMachine::default(), &meta)
                .map_err(|e| format!("metadata group: {e}"))?;
        groups.push((META, Group::Meta(meta_raft)));
        for k in 1..=config.shards {
            let voters = config.placement(ShardId(k));
            if !voters.contains(&me) {
                continue;
            }
            let group = GroupId(k);
            let disk = crate::host::group_durable(durable, group);
            let machine = ShardKv::new(config.kv.clone()).with_bug(config.shard_bug);
            let raft = RaftNode::boot(me, config.group_config(voters), machine, &disk)
                .map_err(|e| format!("shard {k}: {e}"))?;
            groups.push((group, Group::Data(raft)));
        }
        Ok(ShardedNode {
            me,
            config,
            host: Host::with_groups(groups),
            pending: BTreeMap::new(),
            next_id: 0,
            leaders: BTreeMap::new(),
            moving: BTreeSet::new(),
            answers: Vec::new(),
        })
    }

    /// The shard map this node applied (its metadata replica's; possibly behind the leader's).
    pub fn map(&self) -> &ShardMap {
        match self.host.group(META) {
            Some(Group::Meta(raft)) => raft.state_machine().map(),
            _ => unreachable!("every node hosts the metadata group"),
        }
    }

    pub fn host(&self) -> &Host<Group> {
        &self.host
    }

    /// The shard groups on this node.
    pub fn shards(&self) -> impl Iterator<Item = (ShardId, &RaftNode<ShardKv>)> {
        self.host.groups().filter_map(|(g, group)| match group {
            Group::Data(raft) => Some((ShardId(g.0), raft)),
            Group::Meta(_) => None,
        })
    }

    pub fn metadata(&self) -> &RaftNode<MapMachine> {
        match self.host.group(META) {
            Some(Group::Meta(raft)) => raft,
            _ => unreachable!("every node hosts the metadata group"),
        }
    }

    // ----- running the host, and the answers it gives ----------------------------------------

    /// Run one input of the host and re-emit its effects; internal answers are queued.
    fn with_host(
        &mut self,
        io: &mut Io<'_, Self>,
        f: impl FnOnce(&mut Host<Group>, &mut Io<'_, Host<Group>>),
    ) {
        let ((), effects) = io.nested(|inner| f(&mut self.host, inner));
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => io.send(to, NodeMessage::Groups(msg)),
                Effect::SetTimer { timer, after } => io.set_timer(NodeTimer::Host(timer), after),
                Effect::CancelTimer { timer } => io.cancel_timer(NodeTimer::Host(timer)),
                Effect::Persist(op) => io.persist(op),
                Effect::Sync => io.sync(),
                // Every request the host serves is one of this node's (see `submit`).
                Effect::Reply { request, response } => self.answers.push((request, response)),
                Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
            }
        }
    }

    /// Handle the answers queued while running the host, and any they lead to.
    fn settle(&mut self, io: &mut Io<'_, Self>) {
        while !self.answers.is_empty() {
            for (request, response) in std::mem::take(&mut self.answers) {
                if let Some(pending) = self.pending.remove(&request.seq) {
                    self.answered(io, pending, response);
                }
            }
        }
    }

    /// Serve `request` for `group`: here if this node leads it, else forwarded to the node that
    /// does (or that may).
    fn submit(&mut self, io: &mut Io<'_, Self>, group: GroupId, request: GroupReq, origin: Origin) {
        let id = self.next_id;
        self.next_id += 1;
        let here = self.host.group(group);
        if here.is_some_and(Group::is_leader) {
            self.pending.insert(id, Pending { origin, group, deadline: None });
            let rid = RequestId { client: INTERNAL, seq: id };
            self.with_host(io, |host, inner| host.on_request(inner, rid, GroupRequest { group, request }));
            return;
        }
        let target = here
            .and_then(Group::leader)
            .or_else(|| self.leaders.get(&group).copied())
            .filter(|&n| n != self.me)
            .or_else(|| self.replicas(group).into_iter().find(|&n| n != self.me));
        match target {
            Some(to) => {
                let deadline = Some(io.now() + FORWARD_TIMEOUT);
                self.pending.insert(id, Pending { origin, group, deadline });
                io.send(to, NodeMessage::Forward { id, group, request });
            }
            None => {
                let response = GroupResponse::Answer { group, response: not_leader(&request, None) };
                self.answered(io, Pending { origin, group, deadline: None }, response);
            }
        }
    }

    fn replicas(&self, group: GroupId) -> Vec<NodeId> {
        if group == META {
            return self.config.nodes.clone();
        }
        match self.map().shard(ShardId(group.0)) {
            Some(shard) => shard.voters.clone(),
            None => self.config.placement(ShardId(group.0)),
        }
    }

    fn answered(&mut self, io: &mut Io<'_, Self>, pending: Pending, response: GroupResponse<GroupResp>) {
        // Learn where the group's leader is.
        if let GroupResponse::Answer { group, response } = &response {
            let hint = match response {
                GroupResp::Meta(RaftResponse::NotLeader { hint })
                | GroupResp::Data(RaftResponse::NotLeader { hint }) => *hint,
                _ => None,
            };
            match hint {
                Some(leader) => {
                    self.leaders.insert(*group, leader);
                }
                None if matches!(
                    response,
                    GroupResp::Meta(RaftResponse::NotLeader { .. })
                        | GroupResp::Data(RaftResponse::NotLeader { .. })
                ) =>
                {
                    self.leaders.remove(group);
                }
                None => {}
            }
        }
        match pending.origin {
            Origin::Client(request) => io.reply(request, client_answer(response)),
            Origin::Remote { from, id } => io.send(from, NodeMessage::Forwarded { id, response }),
            Origin::Mover(task) => {
                let move_id = task_move(&task);
                self.moving.remove(&move_id);
                if let (Task::Map(proposal), Some(applied)) = (&task, map_applied(&response)) {
                    let name = match proposal.change {
                        Change::Fenced { .. } => "move-fenced",
                        Change::Copied { .. } => "move-copied",
                        Change::FinishMove { .. } => "move-flipped",
                        Change::Settled { .. } => "move-settled",
                        _ => "map-changed",
                    };
                    io.event(name, serde_json::json!({ "move": move_id, "epoch": applied.epoch }));
                }
                let output = match response {
                    GroupResponse::Answer {
                        response: GroupResp::Data(RaftResponse::Output(output)), ..
                    } => output,
                    _ => return, // not served: the next tick starts the move's task again
                };
                if let Some(next) = mover::follow(self.map(), &task, &output, self.config.mover_bug) {
                    self.run_task(io, next);
                }
            }
            Origin::Churn => {
                if let Some(applied) = map_applied(&response) {
                    let id = applied.move_id.unwrap_or_default();
                    io.event("move-started", serde_json::json!({ "move": id, "epoch": applied.epoch }));
                }
            }
            Origin::Bootstrap | Origin::Adopt(_) => {}
        }
    }

    // ----- the mover and the adopt check ----------------------------------------------------

    fn tick(&mut self, io: &mut Io<'_, Self>) {
        let now = io.now();
        // Forwards nobody answered: give them up.
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let pending = self.pending.remove(&id).expect("listed");
            let reason = format!("no answer from {}'s node in {FORWARD_TIMEOUT:?}", pending.group);
            let response =
                GroupResponse::Answer { group: pending.group, response: unknown(pending.group, reason) };
            self.answered(io, pending, response);
        }
        // Shard leaders take their bootstrap slots, once.
        let adopt: Vec<ShardId> = self
            .shards()
            .filter(|(_, raft)| raft.is_leader() && !raft.state_machine().adopted())
            .map(|(shard, _)| shard)
            .collect();
        for shard in adopt {
            if self.pending.values().any(|p| matches!(p.origin, Origin::Adopt(s) if s == shard)) {
                continue;
            }
            let ranges = self.config.bootstrap_ranges(shard);
            let request = propose_data(ShardCommand::Adopt { ranges });
            self.submit(io, GroupId(shard.0), request, Origin::Adopt(shard));
        }
        if self.metadata().is_leader() {
            self.lead_moves(io);
        } else {
            self.moving.clear();
        }
    }

    /// Metadata leader: bootstrap the map, then keep one task in flight per move.
    fn lead_moves(&mut self, io: &mut Io<'_, Self>) {
        let busy = |origin: fn(&Origin) -> bool, pending: &BTreeMap<u64, Pending>| {
            pending.values().any(|p| origin(&p.origin))
        };
        if !self.map().is_bootstrapped() {
            if !busy(|o| matches!(o, Origin::Bootstrap), &self.pending) {
                let proposal = Proposal { if_epoch: Some(0), change: self.config.bootstrap() };
                self.submit(io, META, propose_meta(proposal), Origin::Bootstrap);
            }
            return;
        }
        for task in mover::start(self.map(), self.config.mover_bug) {
            if !self.moving.contains(&task_move(&task)) {
                self.run_task(io, task);
            }
        }
        if let Some(every) = self.config.churn {
            let due = io.random_below(0, every.as_millis().max(1) as u64) < MOVER_TICK.as_millis() as u64;
            if due && !busy(|o| matches!(o, Origin::Churn), &self.pending) {
                if let Some(change) = self.random_move(io) {
                    let proposal = Proposal { if_epoch: Some(self.map().epoch()), change };
                    self.submit(io, META, propose_meta(proposal), Origin::Churn);
                }
            }
        }
    }

    fn run_task(&mut self, io: &mut Io<'_, Self>, task: Task) {
        self.moving.insert(task_move(&task));
        match &task {
            Task::Group { shard, command, .. } => {
                let request = propose_data(command.clone());
                self.submit(io, GroupId(shard.0), request, Origin::Mover(task));
            }
            Task::Read { shard, query, .. } => {
                let request = GroupReq::Data(RaftRequest::Read {
                    consistency: concord_raft::ReadConsistency::Linearizable,
                    query: query.clone(),
                });
                self.submit(io, GroupId(shard.0), request, Origin::Mover(task));
            }
            Task::Map(proposal) => {
                // A map change's effect shows in the map: the next tick starts what follows.
                let request = propose_meta(proposal.clone());
                self.submit(io, META, request, Origin::Mover(task));
            }
        }
    }

    /// A random range of one shard's slots (up to 1 000), to a random other shard.
    fn random_move(&mut self, io: &mut Io<'_, Self>) -> Option<Change> {
        let map = self.map();
        let shards: Vec<ShardId> = map.shards().keys().copied().collect();
        if shards.len() < 2 {
            return None;
        }
        let slot = Slot::new(io.random_below(0, crate::slot::SLOTS as u64) as i64)?;
        let from = map.owner(slot)?;
        let (run, _) = map.ranges().into_iter().find(|(range, _)| range.contains(slot))?;
        let len = io.random_below(1, 1_001) as i64;
        let end = Slot::new((slot.get() as i64 + len - 1).min(run.end.get() as i64))?;
        let others: Vec<ShardId> = shards.into_iter().filter(|&s| s != from).collect();
        let to = others[io.random_below(0, others.len() as u64) as usize];
        Some(Change::StartMove { range: SlotRange::new(slot, end)?, to })
    }

    // ----- client requests ------------------------------------------------------------------

    fn client_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: ShardRequest) {
        let Some(key) = request_key(&req) else {
            io.reply(
                request,
                RaftResponse::Rejected {
                    reason: "ERR a sharded cluster routes by key; this request has none".into(),
                },
            );
            return;
        };
        match route(self.map(), self.me, &[key.as_slice()]) {
            Route::Local { shard, .. } | Route::Remote { shard, .. } => {
                self.submit(io, GroupId(shard.0), GroupReq::Data(req), Origin::Client(request));
            }
            Route::TryAgain { slot, move_id } => io.reply(
                request,
                RaftResponse::Rejected { reason: format!("TRYAGAIN slot {slot} is moving (move {move_id})") },
            ),
            Route::CrossSlot => io.reply(
                request,
                RaftResponse::Rejected {
                    reason: "CROSSSLOT Keys in request don't hash to the same slot".into(),
                },
            ),
            Route::ClusterDown => io.reply(
                request,
                RaftResponse::Rejected {
                    reason: "CLUSTERDOWN The cluster is down (no shard map yet)".into(),
                },
            ),
        }
    }
}

/// What a committed map change did, if the answer is one that took effect.
fn map_applied(response: &GroupResponse<GroupResp>) -> Option<crate::map::Applied> {
    match response {
        GroupResponse::Answer {
            response: GroupResp::Meta(RaftResponse::Output(MapOutput::Applied(Ok(a)))),
            ..
        } => Some(*a),
        _ => None,
    }
}

fn propose_meta(proposal: Proposal) -> GroupReq {
    GroupReq::Meta(RaftRequest::Propose { session: None, command: proposal })
}

fn propose_data(command: ShardCommand) -> GroupReq {
    GroupReq::Data(RaftRequest::Propose { session: None, command })
}

fn task_move(task: &Task) -> u64 {
    match task {
        Task::Group { id, .. } | Task::Read { id, .. } => *id,
        Task::Map(proposal) => match proposal.change {
            Change::Fenced { id, .. }
            | Change::Copied { id, .. }
            | Change::FinishMove { id }
            | Change::AbortMove { id }
            | Change::Settled { id } => id,
            _ => u64::MAX,
        },
    }
}

fn not_leader(request: &GroupReq, hint: Option<NodeId>) -> GroupResp {
    match request {
        GroupReq::Meta(_) => GroupResp::Meta(RaftResponse::NotLeader { hint }),
        GroupReq::Data(_) => GroupResp::Data(RaftResponse::NotLeader { hint }),
    }
}

fn unknown(group: GroupId, reason: String) -> GroupResp {
    match group {
        META => GroupResp::Meta(RaftResponse::Unknown { reason }),
        _ => GroupResp::Data(RaftResponse::Unknown { reason }),
    }
}

/// A group's answer as the client sees it.
fn client_answer(response: GroupResponse<GroupResp>) -> RaftResponse<ShardResult> {
    match response {
        GroupResponse::Answer { response: GroupResp::Data(answer), .. } => match answer {
            // The hint names a node that leads the key's group, not one that serves every key;
            // since any node serves any key here, a client simply tries again.
            RaftResponse::NotLeader { .. } => RaftResponse::NotLeader { hint: None },
            other => other,
        },
        GroupResponse::Answer { response: GroupResp::Meta(_), .. } => {
            RaftResponse::Rejected { reason: "a metadata answer to a client request".into() }
        }
        GroupResponse::NoSuchGroup(group) => {
            RaftResponse::Rejected { reason: format!("{group} does not run on the node asked") }
        }
    }
}

/// The key a client request routes by (its first; a request's keys must share a slot).
fn request_key(request: &ShardRequest) -> Option<Vec<u8>> {
    match request {
        RaftRequest::Propose { command: ShardCommand::Kv(command), .. } => match &command.write {
            Write::Put(put) => Some(put.key.clone()),
            Write::Delete { key } | Write::Increment { key, .. } => Some(key.clone()),
            Write::Cas(cas) => Some(cas.key.clone()),
            Write::Txn(txn) => txn.compares.first().map(|c| c.key.clone()).or_else(|| {
                txn.success.iter().chain(&txn.failure).find_map(|op| match op {
                    TxnOp::Get { key } | TxnOp::Delete { key } => Some(key.clone()),
                    TxnOp::Put(put) => Some(put.key.clone()),
                    TxnOp::Range(_) | TxnOp::DeleteRange(_) => None,
                })
            }),
            Write::DeleteRange(_) | Write::Expire { .. } => None,
        },
        RaftRequest::Read { query: ShardQuery::Kv(Query::Get { key }), .. } => Some(key.clone()),
        RaftRequest::Read { query: ShardQuery::Kv(Query::GetMany { keys }), .. } => keys.first().cloned(),
        _ => None,
    }
}

impl Process for ShardedNode {
    type Message = NodeMessage;
    type Timer = NodeTimer;
    type Request = ShardRequest;
    type Response = RaftResponse<ShardResult>;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        // A restart forgets every request in flight: their askers time out.
        self.pending.clear();
        self.moving.clear();
        self.with_host(io, |host, inner| host.on_start(inner));
        self.settle(io);
        io.set_timer(NodeTimer::Mover, MOVER_TICK);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: NodeMessage) {
        match msg {
            NodeMessage::Groups(batch) => {
                self.with_host(io, |host, inner| host.on_message(inner, from, batch))
            }
            NodeMessage::Forward { id, group, request } => {
                // Served here or answered NotLeader: never forwarded again (one hop).
                let origin = Origin::Remote { from, id };
                match self.host.group(group) {
                    Some(g) if g.is_leader() => self.submit(io, group, request, origin),
                    Some(g) => {
                        let hint = g.leader();
                        let response = GroupResponse::Answer { group, response: not_leader(&request, hint) };
                        io.send(from, NodeMessage::Forwarded { id, response });
                    }
                    None => io.send(
                        from,
                        NodeMessage::Forwarded { id, response: GroupResponse::NoSuchGroup(group) },
                    ),
                }
            }
            NodeMessage::Forwarded { id, response } => {
                if let Some(pending) = self.pending.remove(&id) {
                    self.answered(io, pending, response);
                }
            }
        }
        self.settle(io);
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: NodeTimer) {
        match timer {
            NodeTimer::Host(tick) => self.with_host(io, |host, inner| host.on_timer(inner, tick)),
            NodeTimer::Mover => {
                self.tick(io);
                io.set_timer(NodeTimer::Mover, MOVER_TICK);
            }
        }
        self.settle(io);
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: ShardRequest) {
        self.client_request(io, request, req);
        self.settle(io);
    }

    fn role(&self) -> Option<&'static str> {
        Some(if self.metadata().is_leader() { "map leader" } else { "node" })
    }

    fn inspect(&self) -> serde_json::Value {
        let map = self.map();
        serde_json::json!({
            "epoch": map.epoch(),
            "moves": map.moves().count(),
            "groups": self.host.inspect(),
            "pending": self.pending.len(),
        })
    }
}

/// The simulator's workload, served like a single Raft group's: the same requests and answers.
impl concord_core::Service for ShardedNode {
    fn request(client: ClientId, seq: u64, op: &concord_core::Op) -> ShardRequest {
        <RaftNode<ShardKv> as concord_core::Service>::request(client, seq, op)
    }

    fn completion(op: &concord_core::Op, response: &Self::Response) -> concord_core::Completion {
        <RaftNode<ShardKv> as concord_core::Service>::completion(op, response)
    }
}

// ----- what a server shows about a node (read-only accessors) -------------------------------

impl ShardedNode {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The cluster's layout this node was booted with.
    pub fn config(&self) -> &ShardedConfig {
        &self.config
    }

    /// The node this node believes leads `group`: the group's own view when it runs here, else
    /// the last leader hint an answer brought back (`None`: unknown – requests are forwarded to a
    /// replica, which answers with a hint).
    pub fn known_leader(&self, group: GroupId) -> Option<NodeId> {
        match self.host.group(group) {
            Some(g) => g.leader(),
            None => self.leaders.get(&group).copied(),
        }
    }

    /// Requests this node made and still waits for (its clients', forwards', the mover's).
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }
}

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
//! **Placement.** Every node replicates the metadata group. The *first* map places shard `k` of
//! `S` (1-based) on `replicas` consecutive nodes starting at node `k`, in the order of the cluster
//! list less its `spares` (the last nodes, which start with no replica) – the same formula on
//! every node, so on its very first boot a node starts its groups without waiting for the map.
//! From then on the **applied map decides**: at every new epoch of its map (and on a full pass
//! every [`FULL_PASS_TICKS`] mover ticks, a safety net) a node creates, empty, each group
//! the map says it runs (it then catches up from the group's leader by snapshot and log), and
//! drops – with its durable state – each group the map no longer gives it, once its map is at
//! least as new as the epoch it created the group at (an older map, e.g. one recovered from a
//! snapshot after a restart, may predate the group). A restart boots the groups found on disk.
//! Replica moves themselves are in [`crate::replicas`].
//!
//! **Drivers** (metadata leader only, each optional): the rebalancer ([`crate::rebalance`]) one
//! step every `rebalance`, or every [`REBALANCE_EVERY`] while the map has it on (an operator's
//! `Change::Rebalance`, committed like any change); random slot moves every `churn` (a nemesis of
//! its own); random node joins and decommissions every `node_churn`. While the rebalancer runs,
//! the mover also hands each group's leadership to its preferred voter (`voters[0]`).
//!
//! **Joining and leaving.** The map's node list – where replicas may be placed – grows with
//! `Change::AddNode` and shrinks with `Change::RemoveNode` (decommission: the metadata leader then
//! moves every replica off the node – with the rebalancer's steps if it is on, else with its
//! drain steps alone, [`crate::rebalance::drain_step`]; `ShardMap::drained` says when it holds
//! none). Here every node of `ShardedConfig::nodes` votes in the metadata group from the start,
//! and a spare is a node that is there but holds no shard replica until it joins the placement;
//! the server changes the metadata group's membership too (a node joining is added, a drained one
//! removed: `concord shard decommission`), as Raft admin requests to the group.
//!
//! **A learner that never catches up** (its node is down) is given up after `learner_patience`
//! ([`crate::replicas::abandon`]), so one dead node cannot hold up every later replica move.
//!
//! **Forwarding.** Any node answers any key: a request for a group led elsewhere is sent to the
//! node believed to lead it (its leader hint, else the shard's first replica) as a [`NodeMessage::
//! Forward`], served there, and the answer comes back. One hop only: a forward that lands on a
//! follower is answered `NotLeader` with a hint, which the forwarding node remembers for next time.
//! A forward that gets no answer in [`FORWARD_TIMEOUT`] is answered `Unknown` (it may have run).
//! A read at stale consistency is the exception to "the leader serves": any replica answers it
//! from what it has applied (Redis Cluster's `READONLY` replica reads), so a node that replicates
//! the group serves it itself, and a forwarded one is served by the follower it lands on.
//!
//! **Starting many groups.** A node may start with thousands of shard groups, all without a
//! leader. Were their first election timeouts all drawn from the same window, every group would
//! campaign at once: thousands of pre-votes and votes per node in one go, inputs that take longer
//! than the timeouts, answers that arrive after their candidates timed out again – an election
//! storm that, with 10 000 groups on three processes, never settled (BENCHMARKS.md, "Sharding").
//! So at every start the node reschedules each shard group's first election timeout
//! ([`Host::reschedule`], [`first_election_after`]), deterministically by shard id:
//! - every shard group waits the metadata group's `election_timeout_max` more, so that the
//!   metadata group – which must commit the map before any slot is served – elects in a quiet
//!   cluster;
//! - the shard's *preferred* replica (its first voter: the placement's first node) campaigns
//!   first and alone, at a time set by the shard's share of a window of [`STAGGER_PER_GROUP`] ×
//!   the groups a node holds – so the groups campaign spread out, a few at a time, in the same
//!   order on every node, and in a fault-free start each elects in one round without split votes;
//! - the other replicas keep Raft's random timeout, plus that wait, that share, and one more
//!   `election_timeout_max`: if the preferred replica is down they campaign a timeout after it
//!   would have, as Raft would.
//!
//! No first timeout is shorter than Raft's `election_timeout_min`: with leases, a restarted node
//! must not campaign (nor vote for itself) within that time of its start, as it may have
//! acknowledged a leader just before it crashed. Beyond that a timer's timing is only a matter of
//! liveness to Raft; after the first timeout every election timer is Raft's own random one.
//!
//! **Raft timing of many groups.** Every leader heartbeats its followers, so a node's idle cost
//! grows with its groups: ~13 % of a core for three nodes of 1 000 groups, and more than a core
//! at 10 000 – more than a loaded machine gives, and then heartbeats arrive late, followers
//! campaign, leaders lose their quorum, and elections never settle. Shard groups therefore run at
//! the configured timing up to [`GROUPS_AT_BASE_TIMING`] groups a node, and beyond it at a timing
//! stretched in proportion (heartbeat interval and election timeouts alike, so a node's heartbeat
//! traffic stays that of 1 000 groups): 10 000 groups on three nodes heartbeat every 750 ms and
//! detect a dead leader in 3–6 s instead of 0.3–0.6 s ([`ShardedConfig::shard_raft`]). The
//! metadata group keeps the configured timing. Quiescence (`concord-raft/src/quiesce.rs`) now
//! removes the cost of *idle* groups, but the stretch stays: at a start all groups are awake and
//! electing until they quiesce, and under load awake groups heartbeat again – both are when
//! 10 000 groups at the configured timing drowned a node. Whether 10 000 quiescing groups start
//! and settle at the configured timing was not measured (BENCHMARKS.md, "Sharding").
//!
//! **Reads of a shard rather than a key.** [`ShardedNode::shard_request`] sends a request to a
//! named shard's group – a page of its keys ([`ShardQuery::Range`]) or their count
//! ([`ShardQuery::Count`]), through the group's Raft read path like any read – for a caller that
//! gathers a range read over several shards (the server's `KEYS`, `SCAN`, `GET /v1/kv?prefix=`).

use crate::host::{Batch, GroupId, GroupRequest, GroupResponse, Host, Quiescent, Tick};
use crate::kv::{ShardBug, ShardCommand, ShardKv, ShardQuery, ShardResult};
use crate::machine::{MapMachine, MapOutput, MapQuery};
use crate::map::{Change, Proposal, ShardId, ShardMap};
use crate::mover::{self, MoverBug, Task};
use crate::replicas::{self, GroupStatus, ReplicaBug, ReplicaTask};
use crate::router::{route, Route};
use crate::slot::{Slot, SlotRange};
use concord_core::{
    ClientId, Durable, Effect, Io, NodeId, Process, ProtocolEvent, RequestId, StorageOp, Time,
};
use concord_kv::KvLimits;
use concord_raft::{
    AdminRequest, Message as RaftMessage, Payload, RaftConfig, RaftNode, RaftRequest, RaftResponse,
    ReadConsistency, Timer as RaftTimer,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// The metadata group's id; shard `k`'s group is `GroupId(k)`.
pub const META: GroupId = GroupId(0);

/// How often the mover and the adopt check run.
pub const MOVER_TICK: Duration = Duration::from_millis(50);

/// How often the metadata leader takes a rebalancer step while the map has it on
/// ([`Change::Rebalance`]) and the configuration sets no pace of its own.
pub const REBALANCE_EVERY: Duration = Duration::from_millis(250);

/// How long a learner may stay unpromoted before the metadata leader gives it up (the default of
/// `ShardedConfig::learner_patience`; see [`crate::replicas`]). A learner catches up by snapshot
/// and log in seconds; one still a learner after this is on a node that is down or cut off.
pub const LEARNER_PATIENCE: Duration = Duration::from_secs(30);

/// How long a forwarded request (or a mover task) may go unanswered before it is given up.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The client id of requests a node makes itself (the mover's, adopts, forwards it serves).
const INTERNAL: ClientId = ClientId(u32::MAX);

/// The spread of first elections per shard group a node holds (see "Starting many groups" in the
/// module docs): about the work one group's election costs its nodes (pre-votes, votes, the first
/// append and the adopt proposal, a few synced inputs on each replica), so that a node's groups
/// elect about as fast as it can handle them. 10 000 groups spread over 2 s.
pub const STAGGER_PER_GROUP: Duration = Duration::from_micros(200);

/// Up to this many shard groups a node, shard groups run at the configured Raft timing; beyond
/// it, at a timing stretched in proportion (see "Raft timing of many groups" in the module docs).
pub const GROUPS_AT_BASE_TIMING: u64 = 1_000;

/// When, after the node's start, the first election timeout of `shard`'s replica fires (see
/// "Starting many groups" in the module docs). `preferred`: the replica is the shard's first
/// voter; `raft_timeout`: the random timeout the group's Raft armed at its start (kept by the
/// other replicas). The same on every node, by shard id; never below the shard groups'
/// `election_timeout_min`.
pub fn first_election_after(
    config: &ShardedConfig,
    shard: ShardId,
    preferred: bool,
    raft_timeout: Duration,
) -> Duration {
    let raft = config.shard_raft();
    let quiet = config.raft.election_timeout_max; // the metadata group elects first
    let shards = u128::from(config.shards.max(1));
    let window = STAGGER_PER_GROUP.as_nanos() * u128::from(config.groups_per_node());
    let rank = u128::from(shard.0.saturating_sub(1)) % shards;
    let share = Duration::from_nanos((window * rank / shards) as u64);
    if preferred {
        raft.election_timeout_min + quiet + share
    } else {
        raft_timeout.max(raft.election_timeout_min) + quiet + share + raft.election_timeout_max
    }
}

/// Every this many mover ticks (5 s) the mover tick walks every group here even if the map did
/// not change: placement and the adopt check, which otherwise run only on a new map epoch or
/// while a shard here has not taken its bootstrap slots. A safety net – what they act on changes
/// with the map – that keeps an idle node's tick from visiting its thousands of groups 20 times
/// a second.
const FULL_PASS_TICKS: u64 = 100;

/// Every this many mover ticks the metadata leader asks every group for its status (strays,
/// leader placement), not only the groups with a replica move under way.
const STATUS_ROUND_TICKS: u64 = 20;

/// A quiet cluster's status rounds are this many times further apart (30 s instead of 1 s): one
/// round asks every group, a forward for each group led elsewhere – at 10 000 shards thousands
/// of messages a second for nothing. Quiet: the map did not change and no round led to a replica
/// step for [`QUIET_AFTER_TICKS`], and the rebalancer is off (with it on, rounds hand leadership
/// to preferred voters, so they keep their pace). What a round finds outside a replica move under
/// way (shards with learners or leaving replicas are asked every tick regardless) follows a map
/// change: a stray left by an interrupted step.
const QUIET_ROUND_FACTOR: u64 = 30;
const QUIET_AFTER_TICKS: u64 = 10 * STATUS_ROUND_TICKS;

/// How long a node remembers a forward it received (duplicates arrive within a network delay).
const FORWARD_MEMORY: Duration = Duration::from_secs(10);

/// Written at a node's first start: from then on it boots the groups on its disk, not the formula.
const BOOTED_KEY: &str = "node/booted";

/// The map epoch at which this node created a group (absent: a group of the first map).
fn created_key(group: GroupId) -> String {
    format!("node/created/{:010}", group.0)
}

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
    /// The group's leader's view of its membership (answered by the node, not by Raft).
    Status,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupResp {
    Meta(RaftResponse<MapOutput>),
    Data(RaftResponse<ShardResult>),
    /// `None`: the node asked does not lead the group.
    Status(Option<GroupStatus>),
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
            Effect::SendNow { to, msg: m } => io.send_now(to, msg(m)),
            Effect::SetTimer { timer: t, after } => io.set_timer(timer(t), after),
            Effect::CancelTimer { timer: t } => io.cancel_timer(timer(t)),
            Effect::Persist(op) => io.persist(op),
            Effect::Sync => io.sync(),
            Effect::Reply { request, response } => io.reply(request, resp(response)),
            Effect::ReplyNow { request, response } => io.reply_now(request, resp(response)),
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
            GroupReq::Status => GroupResp::Status(None),
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

impl Quiescent for Group {
    fn quiesced_leader(&self) -> Option<NodeId> {
        match self {
            Group::Meta(raft) => raft.quiesced_leader(),
            Group::Data(raft) => raft.quiesced_leader(),
        }
    }

    fn is_quiesced(&self) -> bool {
        match self {
            Group::Meta(raft) => raft.is_quiesced(),
            Group::Data(raft) => raft.is_quiesced(),
        }
    }

    fn wake(&mut self, io: &mut Io<'_, Self>, heard: Option<Time>) {
        match self {
            Group::Meta(raft) => lift(
                io,
                |inner| raft.wake(inner, heard),
                GroupMessage::Meta,
                GroupTimer::Meta,
                GroupResp::Meta,
            ),
            Group::Data(raft) => lift(
                io,
                |inner| raft.wake(inner, heard),
                GroupMessage::Data,
                GroupTimer::Data,
                GroupResp::Data,
            ),
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        match self {
            Group::Meta(raft) => Quiescent::peers(raft),
            Group::Data(raft) => Quiescent::peers(raft),
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

    /// The leader's view of a shard group's membership (`None` on a follower or the metadata group).
    fn status(&self) -> Option<GroupStatus> {
        let Group::Data(raft) = self else { return None };
        if !raft.is_leader() {
            return None;
        }
        let uncommitted = raft.entries(raft.commit_index() + 1, raft.last_log_index());
        Some(GroupStatus {
            leader: raft.id(),
            membership: raft.current_membership().clone(),
            committed: !uncommitted.iter().any(|e| matches!(e.payload, Payload::Config(_))),
        })
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
    /// The last `spares` nodes of `nodes` get no replica in the first map (nor a place in it: they
    /// join with `Change::AddNode`, e.g. by `node_churn`). Default 0.
    pub spares: usize,
    /// The metadata leader takes one rebalancer step this often (`None`, the default: never).
    pub rebalance: Option<Duration>,
    /// The metadata leader adds a random node to the placement, or decommissions one, this often
    /// (`None`, the default: never) – joins and departures for the rebalancer to absorb.
    pub node_churn: Option<Duration>,
    pub replica_bug: ReplicaBug,
    /// A learner not promoted this long after the metadata leader first saw it is given up
    /// ([`crate::replicas::abandon`]). Default [`LEARNER_PATIENCE`].
    pub learner_patience: Duration,
}

impl Default for ShardedConfig {
    /// One node, one shard of one replica, nothing moving: set at least `nodes`.
    fn default() -> Self {
        ShardedConfig {
            nodes: vec![NodeId(1)],
            shards: 1,
            replicas: 1,
            raft: RaftConfig::default(),
            kv: KvLimits::default(),
            churn: None,
            shard_bug: ShardBug::None,
            mover_bug: MoverBug::None,
            spares: 0,
            rebalance: None,
            node_churn: None,
            replica_bug: ReplicaBug::None,
            learner_patience: LEARNER_PATIENCE,
        }
    }
}

impl ShardedConfig {
    /// The nodes the first map places replicas on: `nodes` less the spares (at least one).
    fn placed(&self) -> &[NodeId] {
        let n = self.nodes.len().saturating_sub(self.spares).max(1).min(self.nodes.len());
        &self.nodes[..n]
    }

    /// The replicas of shard `k` (1-based) in the first map: `replicas` consecutive nodes from
    /// the `k`-th, among the nodes that are not spares.
    pub fn placement(&self, shard: ShardId) -> Vec<NodeId> {
        let nodes = self.placed();
        let n = nodes.len();
        (0..self.replicas.min(n)).map(|i| nodes[(shard.0 as usize - 1 + i) % n]).collect()
    }

    /// The first map: every shard with its placement, slots split evenly in order.
    pub fn bootstrap(&self) -> Change {
        Change::Bootstrap { shards: (1..=self.shards).map(|k| self.placement(ShardId(k))).collect() }
    }

    /// The slots shard `k` owns in the first map.
    pub fn bootstrap_ranges(&self, shard: ShardId) -> Vec<SlotRange> {
        self.bootstrap_ranges_of(&BTreeSet::from([shard])).remove(&shard).unwrap_or_default()
    }

    /// The slots each of `shards` owns in the first map – the first map built once for all of them
    /// (it is built from every shard's placement, so building it per shard is quadratic).
    pub fn bootstrap_ranges_of(&self, shards: &BTreeSet<ShardId>) -> BTreeMap<ShardId, Vec<SlotRange>> {
        let mut map = ShardMap::default();
        map.apply(&Proposal { if_epoch: None, change: self.bootstrap() }).expect("a valid placement");
        let mut out: BTreeMap<ShardId, Vec<SlotRange>> = BTreeMap::new();
        for (range, owner) in map.ranges() {
            if shards.contains(&owner) {
                out.entry(owner).or_default().push(range);
            }
        }
        out
    }

    /// A shard group's Raft configuration (the metadata group's is `raft` with every node a voter).
    fn group_config(&self, voters: Vec<NodeId>) -> RaftConfig {
        RaftConfig { voters, ..self.shard_raft() }
    }

    /// The shard groups a node holds in the first map (about: the placement spreads them evenly).
    pub fn groups_per_node(&self) -> u64 {
        let placed = self.placed().len().max(1);
        // As `placement` does: a shard has at most one replica per placed node (a `replicas`
        // beyond that – even `usize::MAX` in a scenario file – means every node).
        let replicas = self.replicas.clamp(1, placed) as u64;
        (u64::from(self.shards) * replicas).div_ceil(placed as u64)
    }

    /// The Raft configuration of shard groups: `raft`, its heartbeat interval and election
    /// timeouts stretched by [`Self::groups_per_node`] / [`GROUPS_AT_BASE_TIMING`] when a node
    /// holds more groups than that (see "Raft timing of many groups" in the module docs).
    pub fn shard_raft(&self) -> RaftConfig {
        let groups = self.groups_per_node();
        if groups <= GROUPS_AT_BASE_TIMING {
            return self.raft.clone();
        }
        let stretch = |d: Duration| {
            Duration::from_nanos(
                (d.as_nanos() * u128::from(groups) / u128::from(GROUPS_AT_BASE_TIMING)) as u64,
            )
        };
        RaftConfig {
            election_timeout_min: stretch(self.raft.election_timeout_min),
            election_timeout_max: stretch(self.raft.election_timeout_max),
            heartbeat_interval: stretch(self.raft.heartbeat_interval),
            ..self.raft.clone()
        }
    }

    /// The membership a shard group starts from on `me`, before its log says otherwise. A group of
    /// the first map starts from the first map's placement, as all its first replicas do. A group
    /// created later – `me` joins it as a learner – starts from the placement *without* `me`: an
    /// empty replica that believed itself a voter could campaign or vote before it caught up.
    fn initial_voters(&self, me: NodeId, shard: ShardId, created: bool) -> Vec<NodeId> {
        let placement = self.placement(shard);
        if !created {
            return placement;
        }
        let others: Vec<NodeId> = placement.iter().copied().filter(|&n| n != me).collect();
        if !others.is_empty() {
            return others;
        }
        // A one-replica placement on `me` itself: any other node, else (a one-node cluster) `me`.
        match self.nodes.iter().copied().find(|&n| n != me) {
            Some(other) => vec![other],
            None => placement,
        }
    }
}

/// What a node sends another: its groups' messages, or a request forwarded to be served there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NodeMessage {
    Groups(Batch<GroupMessage>),
    Forward {
        id: u64,
        group: GroupId,
        request: GroupReq,
    },
    Forwarded {
        id: u64,
        response: GroupResponse<GroupResp>,
    },
    /// "Which groups do you lead?" – one question per node pair instead of one per group, for a
    /// node that wants the leaders of shards it does not replicate (the server's leader probes).
    WhoLeads {
        id: u64,
    },
    /// The answer to [`NodeMessage::WhoLeads`]: every shard group the sender leads, with its term
    /// ([`ShardedNode::leading`]).
    Leading {
        id: u64,
        groups: Vec<(GroupId, u64)>,
    },
}

impl concord_core::Message for NodeMessage {
    fn kind(&self) -> &'static str {
        match self {
            NodeMessage::Groups(batch) => batch.kind(),
            NodeMessage::Forward { .. } => "forward",
            NodeMessage::Forwarded { .. } => "forwarded",
            NodeMessage::WhoLeads { .. } => "who-leads",
            NodeMessage::Leading { .. } => "leading",
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
    /// The group's status, asked for the replica mover.
    Status(ShardId),
    /// A replica-move step for the shard (a group request or a map change).
    Replica(ShardId, ReplicaTask),
    /// A rebalancer step, or a node joining or leaving (`node_churn`).
    Rebalance(Change),
    NodeChurn(Change),
}

#[derive(Clone, Debug)]
struct Pending {
    origin: Origin,
    group: GroupId,
    /// When it is given up if unanswered (requests served here are always answered by Raft).
    deadline: Option<Time>,
    /// The node a forward went to (`None`: served here).
    to: Option<NodeId>,
}

/// One node of a sharded cluster (see the module docs).
pub struct ShardedNode {
    me: NodeId,
    config: ShardedConfig,
    host: Host<Group>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    /// Forwards received lately, by sender and id, to drop the network's duplicates.
    forwards_seen: BTreeMap<(NodeId, u64), Time>,
    /// The same forwards in the order they arrived, to forget the old ones from the front – a
    /// sweep of every remembered forward per forward was quadratic: the metadata leader's status
    /// round forwards thousands a second.
    forwards_arrived: VecDeque<(Time, (NodeId, u64))>,
    /// The node last known to lead each group (from answers and hosted replicas).
    leaders: BTreeMap<GroupId, NodeId>,
    /// Moves with a mover task in flight (metadata leader only).
    moving: BTreeSet<u64>,
    /// Internal requests whose answers arrived while handling an input, handled at its end.
    answers: Vec<(RequestId, GroupResponse<GroupResp>)>,
    /// The map epoch at which this node created each group it created (see the module docs).
    created: BTreeMap<GroupId, u64>,
    /// Whether the node's disk was already used (see [`BOOTED_KEY`]).
    booted: bool,
    /// Mover ticks since this process started (paces the status rounds and the rebalancer).
    ticks: u64,
    /// Metadata leader only: when it first saw each learner of the map, by shard (to give up a
    /// learner not promoted within `learner_patience`).
    learners_seen: BTreeMap<(ShardId, NodeId), Time>,
    /// What the mover tick last saw, so that it works in proportion to what changed (see
    /// [`FULL_PASS_TICKS`]): the epoch of the map it last placed groups by, whether a shard here
    /// may still have to take its bootstrap slots, and the shards with a replica move under way
    /// in the map of that epoch.
    placed: Option<u64>,
    adopt_pending: bool,
    replica_moves: Option<(u64, Vec<ShardId>)>,
    /// The tick of the last sign of activity (a map change, a replica step a round led to, the
    /// node gaining metadata leadership) and the epoch it last saw: paces the status rounds.
    active_at: u64,
    active_epoch: u64,
    /// Changes of [`ShardedNode::leaders`] for groups not replicated here (forwarding hints):
    /// with [`Host::steps`] and the map's epoch, what a view of the node's leaders depends on.
    hint_changes: u64,
    /// Whether the shard groups record their change feeds (and groups created later too).
    record_changes: bool,
}

impl ShardedNode {
    /// Node `me`: on its first boot with every group the first map's placement gives it; after
    /// that with every group found on its disk, each recovered from its part of `durable`.
    pub fn boot(me: NodeId, config: ShardedConfig, durable: &Durable) -> Result<ShardedNode, String> {
        let mut groups = Vec::new();
        let meta = crate::host::group_durable(durable, META);
        let meta_config = RaftConfig { voters: config.nodes.clone(), ..config.raft.clone() };
        let meta_raft = RaftNode::boot(me, meta_config, MapMachine::default(), &meta)
            .map_err(|e| format!("metadata group: {e}"))?;
        groups.push((META, Group::Meta(meta_raft)));
        let booted = durable.get(BOOTED_KEY).is_some();
        let mut created = BTreeMap::new();
        for (key, value) in durable.scan_prefix("node/created/") {
            let group = key["node/created/".len()..].parse().map(GroupId);
            let epoch = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            match (group, epoch) {
                (Ok(group), Some(epoch)) => created.insert(group, epoch),
                // A torn marker: the group was being created when the node crashed.
                _ => continue,
            };
        }
        let mut ids: BTreeSet<GroupId> = crate::host::groups_on_disk(durable).into_iter().collect();
        ids.extend(created.keys().copied());
        if !booted {
            ids.extend(
                (1..=config.shards).filter(|&k| config.placement(ShardId(k)).contains(&me)).map(GroupId),
            );
        }
        ids.remove(&META);
        for group in ids {
            let disk = crate::host::group_durable(durable, group);
            let voters = config.initial_voters(me, ShardId(group.0), created.contains_key(&group));
            let machine = ShardKv::new(config.kv.clone()).with_bug(config.shard_bug);
            let raft = RaftNode::boot(me, config.group_config(voters), machine, &disk)
                .map_err(|e| format!("shard {}: {e}", group.0))?;
            groups.push((group, Group::Data(raft)));
        }
        let mut host = Host::with_groups(groups);
        if config.raft.quiesce {
            // Quiet groups need node liveness: beat every heartbeat interval, presume a node down
            // after an election timeout of silence (`host.rs`, "Node liveness").
            host = host.with_liveness(config.raft.heartbeat_interval, config.raft.election_timeout_min);
        }
        Ok(ShardedNode {
            me,
            config,
            host,
            pending: BTreeMap::new(),
            next_id: 0,
            forwards_seen: BTreeMap::new(),
            forwards_arrived: VecDeque::new(),
            leaders: BTreeMap::new(),
            moving: BTreeSet::new(),
            answers: Vec::new(),
            created,
            booted,
            ticks: 0,
            learners_seen: BTreeMap::new(),
            placed: None,
            adopt_pending: true,
            replica_moves: None,
            active_at: 0,
            active_epoch: 0,
            hint_changes: 0,
            record_changes: false,
        })
    }

    /// The map epoch at which this node created its replica of `shard` (0: a replica of the first
    /// map; `None`: the node does not run the shard's group).
    pub fn created_at(&self, shard: ShardId) -> Option<u64> {
        self.host.group(GroupId(shard.0))?;
        Some(self.created.get(&GroupId(shard.0)).copied().unwrap_or(0))
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

    /// Record, in every shard group here and every one created later, which keys applied
    /// commands change (`CLIENT TRACKING`'s source, see `concord_kv::changes`).
    pub fn record_changes(&mut self) {
        self.record_changes = true;
        for (_, group) in self.host.groups_mut() {
            if let Group::Data(raft) = group {
                raft.state_machine_mut().record_changes(concord_kv::DEFAULT_CHANGE_LIMIT);
            }
        }
    }

    /// The keys the shard groups here changed since the last call, all groups together (each
    /// key with its own group's revision).
    pub fn take_changes(&mut self) -> concord_kv::Changes {
        let mut all = concord_kv::Changes::default();
        for (_, group) in self.host.groups_mut() {
            if let Group::Data(raft) = group {
                let changes = raft.state_machine_mut().take_changes();
                all.everything |= changes.everything;
                all.keys.extend(changes.keys);
            }
        }
        if all.everything {
            all.keys.clear();
        }
        all
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
                Effect::SendNow { to, msg } => io.send_now(to, NodeMessage::Groups(msg)),
                Effect::SetTimer { timer, after } => io.set_timer(NodeTimer::Host(timer), after),
                Effect::CancelTimer { timer } => io.cancel_timer(NodeTimer::Host(timer)),
                Effect::Persist(op) => io.persist(op),
                Effect::Sync => io.sync(),
                // Every request the host serves is one of this node's (see `submit`).
                Effect::Reply { request, response } | Effect::ReplyNow { request, response } => {
                    self.answers.push((request, response))
                }
                Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
            }
        }
    }

    /// Reschedule each shard group's first election timeout (see "Starting many groups" in the
    /// module docs). The preferred replica is the shard's first voter in the map this node
    /// recovered, else in the first map's placement.
    fn stagger_first_elections(&mut self, io: &mut Io<'_, Self>) {
        let now = io.now();
        let election = GroupTimer::Data(RaftTimer::Election);
        let armed: BTreeMap<GroupId, Time> =
            self.host.deadlines().filter(|(_, t, _)| *t == election).map(|(g, _, at)| (g, at)).collect();
        let timers: Vec<(GroupId, GroupTimer, Time)> = armed
            .into_iter()
            .filter(|(group, _)| *group != META)
            .map(|(group, at)| {
                let shard = ShardId(group.0);
                let preferred = self.replicas(group).first() == Some(&self.me);
                let after = first_election_after(&self.config, shard, preferred, at.saturating_since(now));
                (group, election, now + after)
            })
            .collect();
        self.with_host(io, |host, inner| host.reschedule(inner, timers));
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
        if let (GroupReq::Status, Some(status)) = (&request, here.and_then(Group::status)) {
            let response = GroupResponse::Answer { group, response: GroupResp::Status(Some(status)) };
            return self.answered(io, Pending { origin, group, deadline: None, to: None }, response);
        }
        // The leader serves; a stale read is served by any replica (Redis Cluster's `READONLY`).
        let serve_here = match &request {
            GroupReq::Status => false,
            GroupReq::Data(RaftRequest::Read { consistency: ReadConsistency::Stale, .. }) => here.is_some(),
            _ => here.is_some_and(Group::is_leader),
        };
        if serve_here {
            self.pending.insert(id, Pending { origin, group, deadline: None, to: None });
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
                self.pending.insert(id, Pending { origin, group, deadline, to: Some(to) });
                io.send(to, NodeMessage::Forward { id, group, request });
            }
            None => {
                let response = GroupResponse::Answer { group, response: not_leader(&request, None) };
                self.answered(io, Pending { origin, group, deadline: None, to: None }, response);
            }
        }
    }

    /// A forward to `to` went unanswered: if the hint for `group` names `to`, move it to the next
    /// replica (in voter order). A live replica that does not lead answers the next forward with
    /// `NotLeader` and the leader's name, so the hint finds the leader again; a dead node named as
    /// leader would otherwise be forwarded to until a leader probe corrected it.
    fn distrust(&mut self, group: GroupId, to: Option<NodeId>) {
        let Some(to) = to else { return };
        if self.host.group(group).is_some() || self.leaders.get(&group) != Some(&to) {
            return;
        }
        let others: Vec<NodeId> = self.replicas(group).into_iter().filter(|&n| n != self.me).collect();
        let next = others.iter().position(|&n| n == to).map_or(0, |i| i + 1);
        match others.get(next % others.len().max(1)).copied().filter(|&n| n != to) {
            Some(n) => self.leaders.insert(group, n),
            None => self.leaders.remove(&group),
        };
        self.hint_changes += 1;
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
            let changed = match hint {
                Some(leader) => self.leaders.insert(*group, leader) != Some(leader),
                None if matches!(
                    response,
                    GroupResp::Meta(RaftResponse::NotLeader { .. })
                        | GroupResp::Data(RaftResponse::NotLeader { .. })
                ) =>
                {
                    self.leaders.remove(group).is_some()
                }
                None => false,
            };
            if changed {
                self.hint_changes += 1;
            }
        }
        if let GroupResponse::NoSuchGroup(group) = &response {
            if self.leaders.remove(group).is_some() {
                self.hint_changes += 1;
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
            Origin::Status(shard) => {
                let GroupResponse::Answer { response: GroupResp::Status(Some(status)), .. } = response else {
                    return; // not the leader, or no answer: the next tick asks again
                };
                if !self.map_is_current() {
                    return;
                }
                let transfer = self.rebalance_every().is_some();
                let bug = self.config.replica_bug;
                let now = io.now();
                let patience = self.config.learner_patience.as_nanos() as u64;
                let overdue = self.map().shard(shard).and_then(|s| s.learners.first().copied()).filter(|l| {
                    self.learners_seen
                        .get(&(shard, *l))
                        .is_some_and(|t| now.0.saturating_sub(t.0) >= patience)
                });
                let abandoned = overdue.and_then(|l| replicas::abandon(self.map(), shard, &status, l));
                if let Some(task) =
                    abandoned.or_else(|| replicas::next(self.map(), shard, &status, bug, transfer))
                {
                    self.active_at = self.ticks;
                    self.run_replica_task(io, shard, task);
                }
            }
            Origin::Replica(shard, task) => {
                let name = match (&task, &response) {
                    (ReplicaTask::Map(proposal), _) if map_applied(&response).is_some() => {
                        match proposal.change {
                            Change::Promote { .. } => "replica-promoted",
                            Change::RemoveReplica { .. } => "learner-abandoned",
                            Change::ReplicaGone { .. } => "replica-gone",
                            _ => "map-changed",
                        }
                    }
                    (
                        ReplicaTask::Group { request, .. },
                        GroupResponse::Answer {
                            response: GroupResp::Data(RaftResponse::MembershipChanged { .. }),
                            ..
                        },
                    ) => match request {
                        AdminRequest::AddLearner(_) => "group-learner-added",
                        AdminRequest::Promote(_) => "group-learner-promoted",
                        AdminRequest::Remove(_) => "group-replica-removed",
                        AdminRequest::TransferLeadership(_) => "group-leader-moved",
                    },
                    (
                        ReplicaTask::Group { .. },
                        GroupResponse::Answer {
                            response: GroupResp::Data(RaftResponse::LeadershipTransferred { .. }),
                            ..
                        },
                    ) => "group-leader-moved",
                    _ => return,
                };
                io.event(name, serde_json::json!({ "shard": shard.0, "epoch": self.map().epoch() }));
            }
            Origin::Rebalance(change) | Origin::NodeChurn(change) => {
                if let Some(applied) = map_applied(&response) {
                    let name = match change {
                        Change::AddLearner { .. } => "replica-added",
                        Change::RemoveReplica { .. } => "replica-removed",
                        Change::StartMove { .. } => "move-started",
                        Change::PreferLeader { .. } => "leader-preferred",
                        Change::AddNode { .. } => "node-joined",
                        Change::RemoveNode { .. } => "node-decommissioned",
                        _ => "map-changed",
                    };
                    io.event(name, serde_json::json!({ "epoch": applied.epoch, "change": change }));
                }
            }
            Origin::Bootstrap | Origin::Adopt(_) => {}
        }
    }

    // ----- placement: the groups this node runs follow its applied map -----------------------

    /// Create the groups the map gives this node and it does not run; drop those it no longer
    /// gives it (see the module docs for why the epoch of creation matters).
    fn place(&mut self, io: &mut Io<'_, Self>) {
        let map = self.map();
        if !map.is_bootstrapped() {
            return;
        }
        let epoch = map.epoch();
        let wanted: BTreeSet<GroupId> = map.hosted_by(self.me).into_iter().map(|s| GroupId(s.0)).collect();
        let running: BTreeSet<GroupId> = self.shards().map(|(s, _)| GroupId(s.0)).collect();
        let drop: Vec<GroupId> = running
            .iter()
            .filter(|g| !wanted.contains(g) && epoch >= self.created.get(g).copied().unwrap_or(0))
            .copied()
            .collect();
        let create: Vec<GroupId> = wanted.difference(&running).copied().collect();
        for group in drop {
            self.with_host(io, |host, inner| {
                host.remove_group(inner, group);
            });
            if self.created.remove(&group).is_some() {
                io.persist(StorageOp::Delete { key: created_key(group) });
                io.sync();
            }
            // Requests the dropped group would have answered: nobody will now.
            let orphans: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, p)| p.group == group && p.deadline.is_none())
                .map(|(&id, _)| id)
                .collect();
            for id in orphans {
                let pending = self.pending.remove(&id).expect("listed");
                let response = GroupResponse::Answer {
                    group,
                    response: unknown(group, "the group left this node".into()),
                };
                self.answered(io, pending, response);
            }
            io.event("group-dropped", serde_json::json!({ "group": group.0, "epoch": epoch }));
        }
        for group in create {
            // A replica of the first map that the map counts as a voter, not running here: its
            // node crashed in its first boot before the group wrote anything (so nothing is on
            // disk, and nothing was ever acknowledged or voted). It boots as on that first boot –
            // a voter of the first map's placement – or its own view would leave itself out of a
            // group whose other replicas count it (seen with seed 298 of the sharding sweep).
            let shard = ShardId(group.0);
            let first_map_voter = self.config.placement(shard).contains(&self.me)
                && self.map().shard(shard).is_some_and(|s| s.voters.contains(&self.me));
            if !first_map_voter {
                io.persist(StorageOp::Put { key: created_key(group), value: epoch.to_string().into_bytes() });
                io.sync();
                self.created.insert(group, epoch);
            }
            let voters = self.config.initial_voters(self.me, shard, !first_map_voter);
            let mut machine = ShardKv::new(self.config.kv.clone()).with_bug(self.config.shard_bug);
            if self.record_changes {
                machine.record_changes(concord_kv::DEFAULT_CHANGE_LIMIT);
            }
            let raft = RaftNode::boot(self.me, self.config.group_config(voters), machine, &Durable::new())
                .expect("an empty disk and a valid configuration boot");
            self.with_host(io, |host, inner| host.add_group(inner, group, Group::Data(raft)));
            io.event("group-created", serde_json::json!({ "group": group.0, "epoch": epoch }));
        }
        self.placed = Some(epoch);
    }

    /// Whether this node's map is the newest committed one: it leads the metadata group, has
    /// committed an entry of its term (so it knows every committed change) and applied them all.
    /// Replica steps compare the map with a group's membership, so they need an up-to-date map.
    fn map_is_current(&self) -> bool {
        let meta = self.metadata();
        meta.is_leader()
            && meta.applied_index() == meta.commit_index()
            && meta.log_term_at(meta.commit_index()) == Some(meta.current_term())
    }

    fn run_replica_task(&mut self, io: &mut Io<'_, Self>, shard: ShardId, task: ReplicaTask) {
        let request = match &task {
            ReplicaTask::Group { request, .. } => GroupReq::Data(RaftRequest::Admin(*request)),
            ReplicaTask::Map(proposal) => propose_meta(proposal.clone()),
        };
        let group = match task {
            ReplicaTask::Group { .. } => GroupId(shard.0),
            ReplicaTask::Map(_) => META,
        };
        self.submit(io, group, request, Origin::Replica(shard, task));
    }

    /// Metadata leader: ask the groups with a replica move under way (all groups, every status
    /// round) for their status; the answers lead to the next steps ([`replicas::next`]).
    fn lead_replicas(&mut self, io: &mut Io<'_, Self>) {
        if !self.map_is_current() {
            return;
        }
        let epoch = self.map().epoch();
        if epoch != self.active_epoch {
            (self.active_at, self.active_epoch) = (self.ticks, epoch);
        }
        let quiet =
            self.rebalance_every().is_none() && self.ticks.saturating_sub(self.active_at) > QUIET_AFTER_TICKS;
        let every = if quiet { STATUS_ROUND_TICKS * QUIET_ROUND_FACTOR } else { STATUS_ROUND_TICKS };
        let round = self.ticks.is_multiple_of(every);
        // Learners and leaving replicas change only with the map: list the shards with a replica
        // move under way, and start each new learner's patience clock (from when this leader
        // first sees it), once an epoch – not by walking every shard every tick.
        if self.replica_moves.as_ref().is_none_or(|(at, _)| *at != epoch) {
            let now = io.now();
            let learners: BTreeSet<(ShardId, NodeId)> = self
                .map()
                .shards()
                .iter()
                .flat_map(|(&id, s)| s.learners.iter().map(move |&n| (id, n)))
                .collect();
            self.learners_seen.retain(|k, _| learners.contains(k));
            for k in learners {
                self.learners_seen.entry(k).or_insert(now);
            }
            let moving = self
                .map()
                .shards()
                .iter()
                .filter(|(_, s)| !s.learners.is_empty() || !s.leaving.is_empty())
                .map(|(&id, _)| id)
                .collect();
            self.replica_moves = Some((epoch, moving));
        }
        let shards: Vec<ShardId> = if round {
            self.map().shards().keys().copied().collect()
        } else {
            self.replica_moves.as_ref().expect("just set").1.clone()
        };
        // The shards with a status or replica step in flight, gathered once: asking each shard
        // whether one of all pending requests is its own was quadratic in the shards.
        let busy: BTreeSet<ShardId> = self
            .pending
            .values()
            .filter_map(|p| match &p.origin {
                Origin::Status(s) | Origin::Replica(s, _) => Some(*s),
                _ => None,
            })
            .collect();
        for shard in shards {
            if !busy.contains(&shard) {
                self.submit(io, GroupId(shard.0), GroupReq::Status, Origin::Status(shard));
            }
        }
    }

    /// Metadata leader: one rebalancer step every `rebalance`, one node joining or leaving every
    /// `node_churn` (on average), each only when the previous one was answered.
    fn drive(&mut self, io: &mut Io<'_, Self>) {
        if !self.map_is_current() {
            return;
        }
        let idle = |pending: &BTreeMap<u64, Pending>, f: fn(&Origin) -> bool| {
            !pending.values().any(|p| f(&p.origin))
        };
        // With the rebalancer off, a node being decommissioned is still drained (only that).
        let rebalancing = self.rebalance_every().is_some();
        let draining = !self.map().leaving_nodes().is_empty();
        if let Some(every) = self.rebalance_every().or(draining.then_some(REBALANCE_EVERY)) {
            let period = (every.as_millis() / MOVER_TICK.as_millis()).max(1) as u64;
            if self.ticks.is_multiple_of(period) && idle(&self.pending, |o| matches!(o, Origin::Rebalance(_)))
            {
                let map = self.map();
                let live = map.nodes();
                let step =
                    if rebalancing { crate::rebalance::next_step } else { crate::rebalance::drain_step };
                if let Some(proposal) = step(map, &live, self.config.replicas) {
                    let change = proposal.change.clone();
                    self.submit(io, META, propose_meta(proposal), Origin::Rebalance(change));
                }
            }
        }
        if let Some(every) = self.config.node_churn {
            let due = io.random_below(0, every.as_millis().max(1) as u64) < MOVER_TICK.as_millis() as u64;
            if due && idle(&self.pending, |o| matches!(o, Origin::NodeChurn(_))) {
                if let Some(change) = self.random_node_change(io) {
                    let proposal = Proposal { if_epoch: Some(self.map().epoch()), change: change.clone() };
                    self.submit(io, META, propose_meta(proposal), Origin::NodeChurn(change));
                }
            }
        }
    }

    /// How often the rebalancer steps: the configuration's pace (the simulator's: always on), else
    /// [`REBALANCE_EVERY`] while the map has it on (an operator's `concord shard rebalance`).
    fn rebalance_every(&self) -> Option<Duration> {
        self.config.rebalance.or(self.map().rebalancing().then_some(REBALANCE_EVERY))
    }

    /// A node of the cluster outside the placement joins it, or one in it (while more than the
    /// replication factor are) is decommissioned – a coin decides when both are possible.
    fn random_node_change(&mut self, io: &mut Io<'_, Self>) -> Option<Change> {
        let members = self.map().nodes();
        let outside: Vec<NodeId> =
            self.config.nodes.iter().copied().filter(|n| !members.contains(n)).collect();
        let can_leave = members.len() > self.config.replicas;
        let join = match (outside.is_empty(), can_leave) {
            (true, false) => return None,
            (false, false) => true,
            (true, true) => false,
            (false, true) => io.random_below(0, 2) == 0,
        };
        Some(if join {
            Change::AddNode { node: outside[io.random_below(0, outside.len() as u64) as usize] }
        } else {
            Change::RemoveNode { node: members[io.random_below(0, members.len() as u64) as usize] }
        })
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
            self.distrust(pending.group, pending.to);
            let reason = format!("no answer from {}'s node in {FORWARD_TIMEOUT:?}", pending.group);
            let response =
                GroupResponse::Answer { group: pending.group, response: unknown(pending.group, reason) };
            self.answered(io, pending, response);
        }
        // Placement and the adopt check walk every group here: they run when the map changed
        // (a new epoch), while a shard here has not taken its bootstrap slots, and on every full
        // pass; an idle node's tick does not visit its groups.
        let full_pass = self.ticks.is_multiple_of(FULL_PASS_TICKS);
        let map_changed = self.map().is_bootstrapped() && self.placed != Some(self.map().epoch());
        if full_pass || map_changed {
            self.adopt_pending = true;
        }
        // Shard leaders take their bootstrap slots, once.
        let mut adopt = Vec::new();
        if self.adopt_pending {
            let mut unadopted = false;
            for (shard, raft) in self.shards() {
                if !raft.state_machine().adopted() {
                    unadopted = true;
                    if raft.is_leader() {
                        adopt.push(shard);
                    }
                }
            }
            self.adopt_pending = unadopted;
        }
        // Gathered once (not per shard: quadratic in the shards at a start with thousands).
        let adopting: BTreeSet<ShardId> = self
            .pending
            .values()
            .filter_map(|p| match p.origin {
                Origin::Adopt(s) => Some(s),
                _ => None,
            })
            .collect();
        let adopt: BTreeSet<ShardId> = adopt.into_iter().filter(|s| !adopting.contains(s)).collect();
        let mut ranges_of =
            if adopt.is_empty() { BTreeMap::new() } else { self.config.bootstrap_ranges_of(&adopt) };
        for shard in adopt {
            let ranges = ranges_of.remove(&shard).unwrap_or_default();
            let request = propose_data(ShardCommand::Adopt { ranges });
            self.submit(io, GroupId(shard.0), request, Origin::Adopt(shard));
        }
        if full_pass || map_changed {
            self.place(io);
        }
        if self.metadata().is_leader() {
            self.lead_moves(io);
            self.lead_replicas(io);
            self.drive(io);
        } else {
            self.moving.clear();
            self.learners_seen.clear();
            // Leading the metadata group again lists its learners afresh (their patience starts
            // then) and starts with rounds at the busy pace.
            self.replica_moves = None;
            self.active_at = self.ticks;
        }
        self.ticks += 1;
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
                    consistency: ReadConsistency::Linearizable,
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

    /// A client request for one named shard's group rather than for a key's – a range read
    /// ([`ShardQuery::Range`], [`ShardQuery::Count`]) gathered over several shards by its caller.
    /// Served or forwarded as a key's request is (a stale read by any replica here); a shard the
    /// applied map does not know is refused.
    pub fn shard_request(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        shard: ShardId,
        req: ShardRequest,
    ) {
        if self.map().shard(shard).is_none() {
            let reason = format!(
                "CLUSTERDOWN shard {} is not in the shard map (epoch {})",
                shard.0,
                self.map().epoch()
            );
            io.reply(request, RaftResponse::Rejected { reason });
        } else {
            self.submit(io, GroupId(shard.0), GroupReq::Data(req), Origin::Client(request));
        }
        self.settle(io);
    }

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

/// Whether `request` is a shard read at stale consistency (which any replica may serve).
fn is_stale_read(request: &GroupReq) -> bool {
    matches!(request, GroupReq::Data(RaftRequest::Read { consistency: ReadConsistency::Stale, .. }))
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
        // A status asked of a follower: its hint lets the asker find the leader next time.
        GroupReq::Status => GroupResp::Data(RaftResponse::NotLeader { hint }),
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
        GroupResponse::Answer { response: GroupResp::Meta(_) | GroupResp::Status(_), .. } => {
            RaftResponse::Rejected { reason: "a metadata answer to a client request".into() }
        }
        // The forward reached a node that no longer runs the group (a replica moved away after
        // this node learned where the leader was): nothing was done there, so the client may try
        // again – `answered` has forgotten that leader.
        GroupResponse::NoSuchGroup(_) => RaftResponse::NotLeader { hint: None },
    }
}

/// The key a client request routes by (its first; a request's keys must share a slot).
fn request_key(request: &ShardRequest) -> Option<Vec<u8>> {
    match request {
        RaftRequest::Propose { command: ShardCommand::Kv(command), .. } => {
            command.write.route_key().map(<[u8]>::to_vec)
        }
        RaftRequest::Read { query: ShardQuery::Kv(query), .. } => query.route_key().map(<[u8]>::to_vec),
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
        // Request ids of this incarnation start at a random point, so that a forward sent after a
        // restart is not taken for a duplicate of one sent before it (see `forwards_seen`).
        self.next_id = io.random_below(0, 1 << 40) << 20;
        if !self.booted {
            io.persist(StorageOp::Put { key: BOOTED_KEY.into(), value: b"1".to_vec() });
            io.sync();
            self.booted = true;
        }
        self.with_host(io, |host, inner| host.on_start(inner));
        self.stagger_first_elections(io);
        self.settle(io);
        io.set_timer(NodeTimer::Mover, MOVER_TICK);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: NodeMessage) {
        match msg {
            NodeMessage::Groups(batch) => {
                self.with_host(io, |host, inner| host.on_message(inner, from, batch))
            }
            NodeMessage::Forward { id, group, request } => {
                // The network may deliver a forward twice: a first copy answered `NotLeader` (so
                // its client hears "certainly not done") must not let a second copy be served
                // once this node leads. Each forward is handled once.
                let now = io.now();
                while let Some(&(at, key)) = self.forwards_arrived.front() {
                    if now.saturating_since(at) < FORWARD_MEMORY {
                        break;
                    }
                    self.forwards_arrived.pop_front();
                    if self.forwards_seen.get(&key) == Some(&at) {
                        self.forwards_seen.remove(&key);
                    }
                }
                self.forwards_arrived.push_back((now, (from, id)));
                if self.forwards_seen.insert((from, id), now).is_some() {
                    return;
                }
                // Served here or answered NotLeader: never forwarded again (one hop).
                let origin = Origin::Remote { from, id };
                match self.host.group(group) {
                    Some(g) if g.is_leader() || is_stale_read(&request) => {
                        self.submit(io, group, request, origin)
                    }
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
            NodeMessage::WhoLeads { id } => {
                io.send(from, NodeMessage::Leading { id, groups: self.leading() })
            }
            // Leaders of groups not replicated here, where forwards go next (a group replicated
            // here knows its own leader).
            NodeMessage::Leading { groups, .. } => {
                for (group, _) in groups {
                    self.learn_leader(group, from);
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
        let (leaders, followers) = self.host.quiesced();
        serde_json::json!({
            "epoch": map.epoch(),
            "moves": map.moves().count(),
            "groups": self.host.inspect(),
            "pending": self.pending.len(),
            "quiesced": { "leaders": leaders, "followers": followers, "groups": self.host.len() },
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

    /// `leader` leads `group` (a group not replicated here), as a leader probe heard: forwards
    /// go there from now on. Ignored for a group replicated here (Raft knows its own leader).
    pub fn learn_leader(&mut self, group: GroupId, leader: NodeId) {
        if self.host.group(group).is_none() && self.leaders.insert(group, leader) != Some(leader) {
            self.hint_changes += 1;
        }
    }

    /// How often a forwarding hint of [`ShardedNode::known_leader`] changed (with
    /// [`Host::steps`] and the map's epoch: unchanged, `known_leader` answers as before).
    pub fn hint_changes(&self) -> u64 {
        self.hint_changes
    }

    /// Every shard group this node leads, with its term (the answer to [`NodeMessage::WhoLeads`]).
    pub fn leading(&self) -> Vec<(GroupId, u64)> {
        self.shards()
            .filter(|(_, raft)| raft.is_leader())
            .map(|(shard, raft)| (GroupId(shard.0), raft.current_term()))
            .collect()
    }

    /// Requests this node made and still waits for (its clients', forwards', the mover's).
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_to_a_node_without_the_group_is_retried_not_refused() {
        // After a replica move, a leader hint may name a node that no longer runs the group. Its
        // answer means "nothing was done here": the client must hear NotLeader (retry), not a
        // refusal (the process test saw reads of acknowledged writes refused this way).
        let answer = client_answer(GroupResponse::NoSuchGroup(GroupId(2)));
        assert!(matches!(answer, RaftResponse::NotLeader { hint: None }), "{answer:?}");
    }
}

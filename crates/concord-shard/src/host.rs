//! Many groups in one process: the multi-Raft host, sans-IO.
//!
//! A sharded node runs one Raft group per shard it replicates, plus its member of the metadata
//! group. [`Host`] is itself a [`Process`]: the simulator and the server drive *one* process per
//! node, as they always have, and the host hands every input to the group it belongs to, giving
//! each group its own [`Io`] ([`Io::nested`]) and translating the group's effects into its own:
//!
//! | a group emits | the host emits |
//! |---|---|
//! | `Send { to, msg }` | one [`Batch`] per destination for the whole input (see below) |
//! | `SetTimer(t)` / `CancelTimer(t)` | nothing at once: the deadline joins the host's own [`Tick`] |
//! | `Persist(op)` | `Persist(op)` with every key under `g/<group>/` |
//! | `Sync` | `Sync` – one disk, one fsync for every group's writes of this input |
//! | `Reply { request, r }` | `Reply { request, GroupResponse::Answer { group, r } }` |
//! | `Event(e)` | `Event(e)` with `"group"` added to its detail |
//!
//! **One connection, batched.** A node pair shares one connection whatever the number of groups,
//! and the messages all groups send to one node while handling one input leave as one [`Batch`]:
//! a heartbeat round of a thousand groups is a thousand small messages in one frame, not a
//! thousand frames. Batching never moves a send across a `Sync` (a message written after a sync
//! may promise what was synced), so batches are formed between syncs only.
//!
//! **Coalesced timers.** Groups' timers are kept by the host, each deadline rounded *up* to the
//! host's tick (10 ms by default), and the host arms one timer of its own for the earliest. When
//! it fires, every group timer due runs in that one input – so the heartbeats of all groups led
//! from this node leave together, batched per destination (CockroachDB coalesces heartbeats per
//! node pair for the same reason). Rounding up only delays a timer, which Raft tolerates as it
//! tolerates a slow scheduler; leases are measured on the clock, not on timers. Idle groups then
//! cost one deadline each in a B-tree and a few bytes in a shared frame – no timer, task or frame of
//! their own.
//!
//! **One disk, prefixed.** Every group's durable state lives in the node's one store under its
//! own prefix; a group removed from this node has its prefix deleted. One store means one fsync per
//! input for all groups (group commit across groups), and one recovery pass at boot; the price is
//! that a group's log cannot be moved by copying files – moves go through Raft snapshots anyway.
//!
//! **Node liveness, for quiescence.** With quiescence on (`RaftConfig::quiesce`, see
//! `concord-raft/src/quiesce.rs`) an idle group goes silent: its leader stops heartbeating and its
//! followers stop their election timers. A quiesced follower then cannot notice by itself that its
//! leader died, so the host watches *nodes* instead of groups ([`Host::with_liveness`]):
//! * every `beat` interval it sends each peer node – a node it shares a group with – an empty
//!   [`Batch`] (a *beat*), unless some batch already went there since the last beat: one tiny
//!   frame per node pair per interval, whatever the number of groups;
//! * every batch received, beat or not, is proof that its sender is up;
//! * a quiesced follower whose leader's node has not been heard for `silence` (an election
//!   timeout) is woken ([`Quiescent::wake`] without a time): it then campaigns normally, with
//!   pre-vote, when its election timer fires;
//! * before a message reaches a quiesced follower from a node other than its leader's (a pre-vote,
//!   say), the host wakes it with the time it last heard the leader's node, which the follower
//!   counts as leader contact – so a stray campaign does not unseat a leader whose node is alive.
//!
//! A partition heals by itself: a follower cut off from its leader's node wakes and pre-votes in
//! vain (the other followers still hear the leader's node and refuse, and ask the leader to
//! heartbeat again); once the cut heals, the leader's heartbeats reach it. Beats are sent only by a
//! host with liveness on; a host without it still counts batches and ignores empty ones.
//!
//! What the host does not decide: which groups this node should run. Whoever reads the shard map
//! (the server's or the simulator's node) calls [`Host::add_group`] and [`Host::remove_group`].

use concord_core::{
    Durable, Effect, Io, Message, NodeId, Process, ProtocolEvent, RequestId, StorageOp, Time,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A Raft group hosted on a node: the metadata group or one shard's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group-{}", self.0)
    }
}

/// Every message one node's groups sent to another while handling one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch<M> {
    pub messages: Vec<(GroupId, M)>,
}

impl<M: Message> Message for Batch<M> {
    fn kind(&self) -> &'static str {
        match self.messages.as_slice() {
            [] => "beat",
            [(_, only)] => only.kind(),
            _ => "batch",
        }
    }
}

/// A client request for one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRequest<R> {
    pub group: GroupId,
    pub request: R,
}

/// A group's answer, or why no group answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupResponse<R> {
    Answer {
        group: GroupId,
        response: R,
    },
    /// This node does not host the group (it never did, or it was moved away).
    NoSuchGroup(GroupId),
}

/// The host's one timer: the earliest group deadline has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tick;

/// The default granularity of group timers.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// What the host asks of a group so that it may quiesce (see "Node liveness" in the module
/// docs). The defaults suit a group that never quiesces.
pub trait Quiescent: Process {
    /// If this group is a quiesced follower: the node of the leader it waits for.
    fn quiesced_leader(&self) -> Option<NodeId> {
        None
    }

    /// Whether the group is quiesced (leader or follower).
    fn is_quiesced(&self) -> bool {
        false
    }

    /// Wake the group. `leader_heard_at`: when the host last heard its leader's node (`None`: that
    /// node went silent).
    fn wake(&mut self, _io: &mut Io<'_, Self>, _leader_heard_at: Option<Time>) {}

    /// The other nodes of the group (its other voters and learners): the nodes to beat.
    fn peers(&self) -> Vec<NodeId> {
        Vec::new()
    }
}

impl<S: concord_core::StateMachine> Quiescent for concord_raft::RaftNode<S> {
    fn quiesced_leader(&self) -> Option<NodeId> {
        concord_raft::RaftNode::quiesced_leader(self)
    }

    fn is_quiesced(&self) -> bool {
        concord_raft::RaftNode::is_quiesced(self)
    }

    fn wake(&mut self, io: &mut Io<'_, Self>, leader_heard_at: Option<Time>) {
        concord_raft::RaftNode::wake(self, io, leader_heard_at)
    }

    fn peers(&self) -> Vec<NodeId> {
        let m = self.current_membership();
        m.voters.iter().chain(m.learners.iter()).copied().filter(|&n| n != self.id()).collect()
    }
}

/// How often the host recomputes its peers from its groups' memberships (they change rarely; a
/// new peer is heard from, or sent to, long before it matters).
const PEERS_EVERY: Duration = Duration::from_secs(1);

/// Node liveness (see the module docs).
#[derive(Debug)]
struct Liveness {
    beat: Duration,
    silence: Duration,
    /// When each node was last heard from (any batch), and last sent a batch.
    heard: BTreeMap<NodeId, Time>,
    sent: BTreeMap<NodeId, Time>,
    /// The nodes this node shares a group with, as of `peers_at`.
    peers: BTreeSet<NodeId>,
    peers_at: Option<Time>,
    next_beat: Option<Time>,
    /// When the host started: a node never heard from counts as heard then.
    started: Time,
}

impl Liveness {
    fn heard_at(&self, node: NodeId) -> Time {
        self.heard.get(&node).copied().unwrap_or(self.started).max(self.started)
    }
}

/// The groups one node runs (see the module docs).
pub struct Host<P: Process> {
    groups: BTreeMap<GroupId, P>,
    liveness: Option<Liveness>,
    /// Group timers armed: their (rounded) deadlines, by timer and by time.
    deadlines: BTreeMap<(GroupId, P::Timer), Time>,
    due: BTreeSet<(Time, GroupId, P::Timer)>,
    /// When the host's own [`Tick`] is armed for, if it is.
    tick_at: Option<Time>,
    tick: Duration,
    /// Group steps run here (inputs, timers, requests, wake-ups, additions, removals): what a
    /// group shows can only change with one (see [`Host::steps`]).
    steps: u64,
}

impl<P: Quiescent> Default for Host<P> {
    fn default() -> Self {
        Host::with_tick(DEFAULT_TICK)
    }
}

/// The prefix of `group`'s keys in the node's store. Zero-padded, so the store keeps groups apart
/// and in order; `/` ends it so that `g/0000000001/` never prefixes group 10's keys.
pub fn key_prefix(group: GroupId) -> String {
    format!("g/{:010}/", group.0)
}

/// What `group` finds on the node's disk: its keys, without the prefix.
pub fn group_durable(durable: &Durable, group: GroupId) -> Durable {
    let prefix = key_prefix(group);
    let mut mine = Durable::new();
    for (key, value) in durable.scan_prefix(&prefix) {
        mine.apply_owned(StorageOp::Put { key: key[prefix.len()..].to_string(), value: value.to_vec() });
    }
    mine
}

/// The groups that have keys on the node's disk (to boot them again after a restart): one pass
/// over the keys, at boot.
pub fn groups_on_disk(durable: &Durable) -> Vec<GroupId> {
    let ids = durable.scan_prefix("g/").filter_map(|(key, _)| key.get(2..12)?.parse().ok());
    ids.map(GroupId).collect::<BTreeSet<_>>().into_iter().collect()
}

impl<P: Quiescent> Host<P> {
    pub fn new() -> Self {
        Host::default()
    }

    /// An empty host whose group timers are rounded up to multiples of `tick` (> 0).
    pub fn with_tick(tick: Duration) -> Self {
        assert!(!tick.is_zero(), "a host's tick must be positive");
        Host {
            groups: BTreeMap::new(),
            liveness: None,
            deadlines: BTreeMap::new(),
            due: BTreeSet::new(),
            tick_at: None,
            tick,
            steps: 0,
        }
    }

    /// Build a host from groups already booted (from [`group_durable`] of each), without starting
    /// them: `on_start` starts them all.
    pub fn with_groups(groups: impl IntoIterator<Item = (GroupId, P)>) -> Self {
        Host { groups: groups.into_iter().collect(), ..Host::default() }
    }

    /// Watch node liveness so that groups may quiesce (see the module docs): beat every peer every
    /// `beat`, wake a quiesced follower whose leader's node was silent for `silence`.
    pub fn with_liveness(mut self, beat: Duration, silence: Duration) -> Self {
        assert!(!beat.is_zero() && silence > beat, "liveness needs 0 < beat < silence");
        self.liveness = Some(Liveness {
            beat,
            silence,
            heard: BTreeMap::new(),
            sent: BTreeMap::new(),
            peers: BTreeSet::new(),
            peers_at: None,
            next_beat: None,
            started: Time::ZERO,
        });
        self
    }

    /// How many groups are quiesced here: `(leaders, followers)`.
    pub fn quiesced(&self) -> (usize, usize) {
        let followers = self.groups.values().filter(|p| p.quiesced_leader().is_some()).count();
        let quiet = self.groups.values().filter(|p| p.is_quiesced()).count();
        (quiet.saturating_sub(followers), followers)
    }

    /// When this host last heard from `node` (liveness on, and heard since it started).
    pub fn last_heard(&self, node: NodeId) -> Option<Time> {
        self.liveness.as_ref()?.heard.get(&node).copied()
    }

    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &P)> {
        self.groups.iter().map(|(&g, p)| (g, p))
    }

    /// Every group, mutably – to drain what their machines record for observers (the change feed),
    /// never to step them past the host.
    pub fn groups_mut(&mut self) -> impl Iterator<Item = (GroupId, &mut P)> {
        self.groups.iter_mut().map(|(&g, p)| (g, p))
    }

    pub fn group(&self, id: GroupId) -> Option<&P> {
        self.groups.get(&id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// How many group steps this host ran: unchanged between two calls, no group changed in
    /// between (not its role, term, indexes, membership or state machine) and none was added or
    /// removed. A view of the groups built by visiting each is rebuilt only when this moves,
    /// so that an idle node with thousands of quiet groups does not keep describing them.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Start running `process` as `group` on this node (it must not run here already).
    pub fn add_group(&mut self, io: &mut Io<'_, Self>, group: GroupId, mut process: P) {
        assert!(!self.groups.contains_key(&group), "{group} already runs on node {}", io.me());
        let (_, effects) = io.nested(|inner| process.on_start(inner));
        self.groups.insert(group, process);
        let mut out = Vec::new();
        self.translate(io.now(), group, effects, &mut out);
        self.finish(io, out);
    }

    /// Stop running `group` here and delete its durable state. Returns the process, if it ran.
    pub fn remove_group(&mut self, io: &mut Io<'_, Self>, group: GroupId) -> Option<P> {
        let process = self.groups.remove(&group)?;
        self.steps += 1;
        let timers: Vec<_> = self.deadlines.keys().filter(|(g, _)| *g == group).copied().collect();
        for (g, timer) in timers {
            self.cancel(g, timer);
        }
        let start = key_prefix(group);
        let end = format!("g/{:010}0", group.0); // '0' is the byte after '/'
        io.persist(StorageOp::DeleteRange { start, end });
        io.sync();
        self.rearm(io);
        Some(process)
    }

    /// The group timers armed now, with their deadlines (for tests and inspection).
    pub fn deadlines(&self) -> impl Iterator<Item = (GroupId, P::Timer, Time)> + '_ {
        self.deadlines.iter().map(|(&(g, t), &at)| (g, t, at))
    }

    /// Move armed group timers: each `(group, timer, at)` fires at `at` (rounded up to the tick)
    /// instead of when its group asked; a timer not armed is left alone. The caller answers for
    /// `at` being acceptable to the group – the sharded node uses it to spread the first elections
    /// of thousands of groups over time, never earlier than Raft's shortest election timeout
    /// (`ShardedNode`'s "Starting many groups").
    pub fn reschedule(
        &mut self,
        io: &mut Io<'_, Self>,
        timers: impl IntoIterator<Item = (GroupId, P::Timer, Time)>,
    ) {
        for (group, timer, at) in timers {
            if !self.deadlines.contains_key(&(group, timer)) {
                continue;
            }
            self.cancel(group, timer);
            let at = self.deadline(at, Duration::ZERO);
            self.deadlines.insert((group, timer), at);
            self.due.insert((at, group, timer));
        }
        self.rearm(io);
    }

    fn cancel(&mut self, group: GroupId, timer: P::Timer) {
        if let Some(at) = self.deadlines.remove(&(group, timer)) {
            self.due.remove(&(at, group, timer));
        }
    }

    /// `now + after`, rounded up to a multiple of the tick.
    fn deadline(&self, now: Time, after: Duration) -> Time {
        self_deadline(self.tick, now, after)
    }

    /// Emit the translated effects and arm the host's tick for the earliest group deadline.
    fn finish(&mut self, io: &mut Io<'_, Self>, out: Vec<Effect<Self>>) {
        if let Some(l) = &mut self.liveness {
            for effect in &out {
                if let Effect::Send { to, .. } = effect {
                    l.sent.insert(*to, io.now());
                }
            }
        }
        emit(io, out);
        self.rearm(io);
    }

    /// Run `group`'s wake-up and collect its effects.
    fn wake(
        &mut self,
        io: &mut Io<'_, Self>,
        group: GroupId,
        heard: Option<Time>,
        out: &mut Vec<Effect<Self>>,
    ) {
        let Some(process) = self.groups.get_mut(&group) else { return };
        let (_, effects) = io.nested(|inner| process.wake(inner, heard));
        self.translate(io.now(), group, effects, out);
    }

    /// The beat (see the module docs): beat the peers not sent to lately, wake the quiesced
    /// followers of silent leaders, schedule the next beat.
    fn beat(&mut self, io: &mut Io<'_, Self>, out: &mut Vec<Effect<Self>>) {
        let now = io.now();
        let Some(l) = &mut self.liveness else { return };
        if l.next_beat.is_some_and(|at| at > now) {
            return;
        }
        l.next_beat = Some(self_deadline(self.tick, now, l.beat));
        if l.peers_at.is_none_or(|at| now.saturating_since(at) >= PEERS_EVERY) {
            l.peers = self.groups.values().flat_map(|p| p.peers()).collect();
            l.peers_at = Some(now);
        }
        // `sent` is updated at `finish`, by every send of this input, beats included.
        for &peer in &l.peers {
            if l.sent.get(&peer).is_none_or(|&at| now.saturating_since(at) >= l.beat) {
                out.push(Effect::Send { to: peer, msg: Batch { messages: Vec::new() } });
            }
        }
        let silent: BTreeSet<NodeId> =
            l.peers.iter().copied().filter(|&n| now.saturating_since(l.heard_at(n)) >= l.silence).collect();
        if silent.is_empty() {
            return;
        }
        let orphans: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, p)| p.quiesced_leader().is_some_and(|leader| silent.contains(&leader)))
            .map(|(&g, _)| g)
            .collect();
        for group in orphans {
            if io.tracing() {
                io.event("leader-node-silent", serde_json::json!({ "group": group.0 }));
            }
            self.wake(io, group, None, out);
        }
    }

    fn rearm(&mut self, io: &mut Io<'_, Self>) {
        let beat = self.liveness.as_ref().and_then(|l| l.next_beat);
        let earliest = match (self.due.first().map(|&(at, _, _)| at), beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if earliest == self.tick_at {
            return;
        }
        match earliest {
            Some(at) => io.set_timer(Tick, Duration::from_nanos(at.0.saturating_sub(io.now().0))),
            None => io.cancel_timer(Tick),
        }
        self.tick_at = earliest;
    }

    /// Translate one group's effects into the host's, in order (sends are batched by [`emit`]).
    fn translate(&mut self, now: Time, group: GroupId, effects: Vec<Effect<P>>, out: &mut Vec<Effect<Self>>) {
        // Every group step's effects pass here (an add's start included).
        self.steps += 1;
        let prefix = key_prefix(group);
        for effect in effects {
            out.push(match effect {
                Effect::Send { to, msg } => Effect::Send { to, msg: Batch { messages: vec![(group, msg)] } },
                Effect::SendNow { to, msg } => {
                    Effect::SendNow { to, msg: Batch { messages: vec![(group, msg)] } }
                }
                Effect::SetTimer { timer, after } => {
                    self.cancel(group, timer); // re-arming moves the deadline
                    let at = self.deadline(now, after);
                    self.deadlines.insert((group, timer), at);
                    self.due.insert((at, group, timer));
                    continue;
                }
                Effect::CancelTimer { timer } => {
                    self.cancel(group, timer);
                    continue;
                }
                Effect::Persist(op) => Effect::Persist(match op {
                    StorageOp::Put { key, value } => StorageOp::Put { key: format!("{prefix}{key}"), value },
                    StorageOp::Delete { key } => StorageOp::Delete { key: format!("{prefix}{key}") },
                    StorageOp::DeleteRange { start, end } => StorageOp::DeleteRange {
                        start: format!("{prefix}{start}"),
                        end: format!("{prefix}{end}"),
                    },
                }),
                Effect::Sync => Effect::Sync,
                Effect::Reply { request, response } => {
                    Effect::Reply { request, response: GroupResponse::Answer { group, response } }
                }
                Effect::ReplyNow { request, response } => {
                    Effect::ReplyNow { request, response: GroupResponse::Answer { group, response } }
                }
                Effect::Event(ProtocolEvent { name, mut detail }) => {
                    match detail.as_object_mut() {
                        Some(fields) => {
                            fields.insert("group".into(), group.0.into());
                        }
                        None => detail = serde_json::json!({ "group": group.0, "detail": detail }),
                    }
                    Effect::Event(ProtocolEvent { name, detail })
                }
            });
        }
    }
}

/// `now + after`, rounded up to a multiple of `tick`.
fn self_deadline(tick: Duration, now: Time, after: Duration) -> Time {
    let at = (now + after).0;
    let tick = tick.as_nanos() as u64;
    Time(at.div_ceil(tick).saturating_mul(tick))
}

/// Hand translated effects to the driver, merging the sends to each destination between two syncs
/// into one batch, at the place of the first of them (sends that wait for syncs and sends that do
/// not, each into their own). Nothing moves across a `Sync`.
fn emit<P: Quiescent>(io: &mut Io<'_, Host<P>>, effects: Vec<Effect<Host<P>>>) {
    let mut segment: Vec<Effect<Host<P>>> = Vec::new();
    // Where the segment's batch to each destination is: (destination, sent now?) → position.
    let mut batch_at: BTreeMap<(NodeId, bool), usize> = BTreeMap::new();
    let flush = |io: &mut Io<'_, Host<P>>, segment: &mut Vec<Effect<Host<P>>>| {
        for effect in segment.drain(..) {
            push(io, effect);
        }
    };
    for effect in effects {
        let (to, now, msg) = match effect {
            Effect::Send { to, msg } => (to, false, msg),
            Effect::SendNow { to, msg } => (to, true, msg),
            Effect::Sync => {
                segment.push(Effect::Sync);
                flush(io, &mut segment);
                batch_at.clear();
                continue;
            }
            other => {
                segment.push(other);
                continue;
            }
        };
        match batch_at.get(&(to, now)) {
            Some(&i) => match &mut segment[i] {
                Effect::Send { msg: batch, .. } | Effect::SendNow { msg: batch, .. } => {
                    batch.messages.extend(msg.messages)
                }
                _ => unreachable!("batch_at points at sends"),
            },
            None => {
                batch_at.insert((to, now), segment.len());
                segment.push(if now { Effect::SendNow { to, msg } } else { Effect::Send { to, msg } });
            }
        }
    }
    flush(io, &mut segment);
}

fn push<P: Process>(io: &mut Io<'_, P>, effect: Effect<P>) {
    match effect {
        Effect::Send { to, msg } => io.send(to, msg),
        Effect::SetTimer { timer, after } => io.set_timer(timer, after),
        Effect::CancelTimer { timer } => io.cancel_timer(timer),
        Effect::Persist(op) => io.persist(op),
        Effect::Sync => io.sync(),
        Effect::SendNow { to, msg } => io.send_now(to, msg),
        Effect::Reply { request, response } => io.reply(request, response),
        Effect::ReplyNow { request, response } => io.reply_now(request, response),
        Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
    }
}

impl<P: Quiescent> Process for Host<P> {
    type Message = Batch<P::Message>;
    type Timer = Tick;
    type Request = GroupRequest<P::Request>;
    type Response = GroupResponse<P::Response>;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        // A restart: the driver dropped every timer, the groups arm theirs again.
        self.deadlines.clear();
        self.due.clear();
        self.tick_at = None;
        let (now, tick) = (io.now(), self.tick);
        if let Some(l) = &mut self.liveness {
            l.started = now;
            l.next_beat = Some(self_deadline(tick, now, l.beat));
            l.peers_at = None;
        }
        let mut out = Vec::new();
        let ids: Vec<GroupId> = self.groups.keys().copied().collect();
        for group in ids {
            let process = self.groups.get_mut(&group).expect("listed");
            let (_, effects) = io.nested(|inner| process.on_start(inner));
            self.translate(io.now(), group, effects, &mut out);
        }
        self.finish(io, out);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, batch: Self::Message) {
        let mut out = Vec::new();
        if let Some(l) = &mut self.liveness {
            l.heard.insert(from, io.now());
        }
        for (group, msg) in batch.messages {
            // A quiesced follower hearing from another node than its leader's: wake it first,
            // counting the last word from its leader's node as leader contact (module docs).
            let leader = self.groups.get(&group).and_then(Quiescent::quiesced_leader);
            if let (Some(leader), Some(l)) = (leader, &self.liveness) {
                if leader != from {
                    let heard = l.heard.get(&leader).copied();
                    self.wake(io, group, heard, &mut out);
                }
            }
            // A group not (or no longer) here: drop the message. Its sender retries, and a group
            // that is being added here will hear from its leader again once it runs.
            let Some(process) = self.groups.get_mut(&group) else { continue };
            let (_, effects) = io.nested(|inner| process.on_message(inner, from, msg));
            self.translate(io.now(), group, effects, &mut out);
        }
        self.finish(io, out);
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, Tick: Tick) {
        self.tick_at = None;
        let mut out = Vec::new();
        // Every group timer due by now, earliest first, in this one input. (Taken first: a timer
        // a group re-arms while handling this one waits for the next tick.)
        let now = io.now();
        let due: Vec<_> = self.due.iter().take_while(|(at, _, _)| *at <= now).copied().collect();
        for (_, group, timer) in due {
            self.cancel(group, timer);
            let Some(process) = self.groups.get_mut(&group) else { continue };
            let (_, effects) = io.nested(|inner| process.on_timer(inner, timer));
            self.translate(io.now(), group, effects, &mut out);
        }
        self.beat(io, &mut out);
        self.finish(io, out);
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: Self::Request) {
        let group = req.group;
        let Some(process) = self.groups.get_mut(&group) else {
            io.reply(request, GroupResponse::NoSuchGroup(group));
            return;
        };
        let (_, effects) = io.nested(|inner| process.on_request(inner, request, req.request));
        let mut out = Vec::new();
        self.translate(io.now(), group, effects, &mut out);
        self.finish(io, out);
    }

    fn role(&self) -> Option<&'static str> {
        Some("host")
    }

    fn inspect(&self) -> serde_json::Value {
        let groups: serde_json::Map<String, serde_json::Value> =
            self.groups.iter().map(|(g, p)| (g.0.to_string(), p.inspect())).collect();
        let (leaders, followers) = self.quiesced();
        serde_json::json!({
            "groups": groups,
            "timers": self.deadlines.len(),
            "quiesced": { "leaders": leaders, "followers": followers },
        })
    }
}

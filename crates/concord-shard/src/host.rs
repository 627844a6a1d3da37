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

/// The groups one node runs (see the module docs).
pub struct Host<P: Process> {
    groups: BTreeMap<GroupId, P>,
    /// Group timers armed: their (rounded) deadlines, by timer and by time.
    deadlines: BTreeMap<(GroupId, P::Timer), Time>,
    due: BTreeSet<(Time, GroupId, P::Timer)>,
    /// When the host's own [`Tick`] is armed for, if it is.
    tick_at: Option<Time>,
    tick: Duration,
}

impl<P: Process> Default for Host<P> {
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

impl<P: Process> Host<P> {
    pub fn new() -> Self {
        Host::default()
    }

    /// An empty host whose group timers are rounded up to multiples of `tick` (> 0).
    pub fn with_tick(tick: Duration) -> Self {
        assert!(!tick.is_zero(), "a host's tick must be positive");
        Host {
            groups: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            due: BTreeSet::new(),
            tick_at: None,
            tick,
        }
    }

    /// Build a host from groups already booted (from [`group_durable`] of each), without starting
    /// them: `on_start` starts them all.
    pub fn with_groups(groups: impl IntoIterator<Item = (GroupId, P)>) -> Self {
        Host { groups: groups.into_iter().collect(), ..Host::default() }
    }

    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &P)> {
        self.groups.iter().map(|(&g, p)| (g, p))
    }

    pub fn group(&self, id: GroupId) -> Option<&P> {
        self.groups.get(&id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
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
        let at = (now + after).0;
        let tick = self.tick.as_nanos() as u64;
        Time(at.div_ceil(tick).saturating_mul(tick))
    }

    /// Emit the translated effects and arm the host's tick for the earliest group deadline.
    fn finish(&mut self, io: &mut Io<'_, Self>, out: Vec<Effect<Self>>) {
        emit(io, out);
        self.rearm(io);
    }

    fn rearm(&mut self, io: &mut Io<'_, Self>) {
        let earliest = self.due.first().map(|&(at, _, _)| at);
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
        let prefix = key_prefix(group);
        for effect in effects {
            out.push(match effect {
                Effect::Send { to, msg } => Effect::Send { to, msg: Batch { messages: vec![(group, msg)] } },
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

/// Hand translated effects to the driver, merging the sends to each destination between two syncs
/// into one batch, at the place of the first of them. Nothing moves across a `Sync`.
fn emit<P: Process>(io: &mut Io<'_, Host<P>>, effects: Vec<Effect<Host<P>>>) {
    let mut segment: Vec<Effect<Host<P>>> = Vec::new();
    let mut batch_at: BTreeMap<NodeId, usize> = BTreeMap::new();
    let flush = |io: &mut Io<'_, Host<P>>, segment: &mut Vec<Effect<Host<P>>>| {
        for effect in segment.drain(..) {
            push(io, effect);
        }
    };
    for effect in effects {
        match effect {
            Effect::Send { to, msg } => match batch_at.get(&to) {
                Some(&i) => match &mut segment[i] {
                    Effect::Send { msg: batch, .. } => batch.messages.extend(msg.messages),
                    _ => unreachable!("batch_at points at sends"),
                },
                None => {
                    batch_at.insert(to, segment.len());
                    segment.push(Effect::Send { to, msg });
                }
            },
            Effect::Sync => {
                segment.push(Effect::Sync);
                flush(io, &mut segment);
                batch_at.clear();
            }
            other => segment.push(other),
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
        Effect::Reply { request, response } => io.reply(request, response),
        Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
    }
}

impl<P: Process> Process for Host<P> {
    type Message = Batch<P::Message>;
    type Timer = Tick;
    type Request = GroupRequest<P::Request>;
    type Response = GroupResponse<P::Response>;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        // A restart: the driver dropped every timer, the groups arm theirs again.
        self.deadlines.clear();
        self.due.clear();
        self.tick_at = None;
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
        for (group, msg) in batch.messages {
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
        serde_json::json!({ "groups": groups, "timers": self.deadlines.len() })
    }
}

//! The process the sharded mode's driver hosts: a [`ShardedNode`] plus the operator's map changes.
//!
//! [`ShardedNode`] serves key requests (routing, forwarding, the mover). An operator also changes
//! the shard map by hand (`POST /v1/cluster/moves`, `/replicas`, `/rebalance`); that change must be committed by the metadata
//! group's leader, wherever it runs. [`ShardServer`] adds exactly that and nothing else: a
//! [`ServerRequest::Map`] proposal travels as the very [`NodeMessage::Forward`] a peer would send
//! for the metadata group – to the metadata leader this node knows (itself included: the message
//! is then handed to its own node) – and the [`NodeMessage::Forwarded`] answer comes back to it.
//! Its forwards carry ids from [`ADMIN_IDS`] up, which the node's own (counted from 0) never reach,
//! so the answers are told apart without touching the node. A change of the metadata group's own
//! membership ([`ServerRequest::Members`]: a node joining) travels the same way, as a Raft admin
//! request instead of a proposal.
//!
//! An answer `NotLeader` (the proposal certainly did not take effect) is retried at the hinted
//! leader every [`ADMIN_RETRY`]; no answer within [`ADMIN_TIMEOUT`] is answered `Unknown` (the
//! change may have been committed – `GET /v1/cluster` shows).
//!
//! **Leaders of the shards not replicated here.** A node knows the leader of each group it
//! replicates (Raft tells it), but of another shard only the last hint a forward brought back – so
//! `GET /v1/cluster`, `concord shard list` and the dashboard would show no leader for it. Every
//! [`LEADER_PROBE`] this process asks each peer that replicates a shard not replicated here which
//! groups it leads: one [`NodeMessage::WhoLeads`] per peer, answered by the peer's node with a
//! [`NodeMessage::Leading`] listing every group it leads and the term it leads it in (ids from
//! [`PROBE_IDS`] up). A group claimed by two peers (a leader that has not yet heard of its
//! successor) goes to the higher term. A peer's answer replaces what the previous one said; a
//! peer that did not answer by the next round is forgotten as a leader
//! ([`ShardServer::known_leader`] then falls back to the node's forwarding hints). Cost: one small
//! message per peer per round, and an answer of a few bytes per group the peer leads – not one
//! message per shard, which at 10 000 shards was 10 000 messages a second per node.
//!
//! Sans-IO like the node it wraps: time from [`Io::now`], no sockets or files.

use concord_core::{Effect, Io, NodeId, Process, ProtocolEvent, RequestId, Time};
use concord_raft::{AdminRequest, RaftRequest, RaftResponse};
use concord_shard::host::GroupResponse;
use concord_shard::kv::ShardResult;
use concord_shard::machine::{MapOutput, MapQuery};
use concord_shard::map::{Proposal, ShardId};
use concord_shard::node::{GroupReq, GroupResp, NodeMessage, NodeTimer, ShardRequest, META};
use concord_shard::{GroupId, ShardedNode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The first id of this process's own forwards (the node counts its own from 0).
pub const ADMIN_IDS: u64 = 1 << 62;
/// The first id of leader probes (above every map change's id: those count up from [`ADMIN_IDS`]).
pub const PROBE_IDS: u64 = ADMIN_IDS + (1 << 61);
/// How often the leaders of the shards not replicated here are asked for (see the module docs).
pub const LEADER_PROBE: Duration = Duration::from_secs(1);
/// How soon a map change refused by a non-leader is sent again.
pub const ADMIN_RETRY: Duration = Duration::from_millis(50);
/// How long a map change may go unanswered before it is answered `Unknown`.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A client request: a key's (served by the node), a change of the shard map (the operator's), or
/// a read of one named shard (a page of a range read gathered over shards; answered as `Kv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerRequest {
    Kv(ShardRequest),
    Map(Proposal),
    /// A change of the metadata group's membership (a node joining), answered in `Map`.
    Members(AdminRequest),
    Shard {
        shard: ShardId,
        request: ShardRequest,
    },
}

/// The answer to a [`ServerRequest`], in the same variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerResponse {
    Kv(RaftResponse<ShardResult>),
    Map(RaftResponse<MapOutput>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerTimer {
    Node(NodeTimer),
    /// Map changes to send again or to give up.
    Admin,
    /// Ask the shards not replicated here who leads them.
    Probe,
}

/// A map change waiting for the metadata leader's answer.
struct AdminWait {
    request: RequestId,
    /// What the metadata leader is asked: a map proposal or a membership change.
    ask: RaftRequest<Proposal, MapQuery>,
    deadline: Time,
    /// When to send it again (after a `NotLeader`, or while no leader is known); `None`: in flight.
    retry_at: Option<Time>,
    /// The leader the last `NotLeader` named.
    hint: Option<NodeId>,
}

/// A shard group's leader as a probe heard it: the node that claimed it, and in which term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    leader: NodeId,
    term: u64,
}

/// A sharded node as the server runs it (see the module docs).
pub struct ShardServer {
    node: ShardedNode,
    admin: BTreeMap<u64, AdminWait>,
    next_admin: u64,
    /// Answers to this process's forwards that the node produced while handling an input.
    answers: Vec<(u64, GroupResponse<GroupResp>)>,
    /// Leaders of groups not replicated here, as the last probes heard them.
    probed: BTreeMap<GroupId, Claim>,
    /// Probes sent in the last round and not answered yet, by id: the peer asked (one per peer).
    probes: BTreeMap<u64, NodeId>,
    next_probe: u64,
    /// How often a leader in `probed` changed (the status view is rebuilt when it does).
    probe_changes: u64,
}

impl ShardServer {
    pub fn new(node: ShardedNode) -> ShardServer {
        ShardServer {
            node,
            admin: BTreeMap::new(),
            next_admin: ADMIN_IDS,
            answers: Vec::new(),
            probed: BTreeMap::new(),
            probes: BTreeMap::new(),
            next_probe: PROBE_IDS,
            probe_changes: 0,
        }
    }

    /// The node this node believes leads `group`: Raft's view for a group replicated here; for
    /// another, what the last probes heard, else the node's last forwarding hint.
    /// Moves whenever [`ShardServer::known_leader`] may answer differently for some group, and
    /// more often: with the node's group steps, forwarding hints, map epoch and the probes'
    /// changes. The status view of the groups is rebuilt only when it moved.
    pub fn leaders_stamp(&self) -> [u64; 4] {
        let node = &self.node;
        [node.host().steps(), node.hint_changes(), node.map().epoch(), self.probe_changes]
    }

    /// Count a change of `probed`'s leaders since `before` (its leaders then).
    fn note_probed(&mut self, before: Vec<(GroupId, NodeId)>) {
        if !self.probed.iter().map(|(g, c)| (*g, c.leader)).eq(before) {
            self.probe_changes += 1;
        }
    }

    fn probed_leaders(&self) -> Vec<(GroupId, NodeId)> {
        self.probed.iter().map(|(g, c)| (*g, c.leader)).collect()
    }

    pub fn known_leader(&self, group: GroupId) -> Option<NodeId> {
        if self.node.host().group(group).is_some() {
            return self.node.known_leader(group);
        }
        self.probed.get(&group).map(|c| c.leader).or_else(|| self.node.known_leader(group))
    }

    /// One probe round: forget what the peers that did not answer the last round claimed, then ask
    /// every peer that replicates a shard not replicated here which groups it leads.
    fn probe_tick(&mut self, io: &mut Io<'_, Self>) {
        let before = self.probed_leaders();
        let silent: BTreeSet<NodeId> = std::mem::take(&mut self.probes).into_values().collect();
        self.probed.retain(|_, claim| !silent.contains(&claim.leader));
        let me = io.me();
        let mut peers = BTreeSet::new();
        let shards = self.node.map().shards();
        for (shard, replicas) in shards {
            if self.node.host().group(GroupId(shard.0)).is_none() {
                peers.extend(replicas.voters.iter().copied().filter(|&n| n != me));
            }
        }
        // Groups that left the map, or that are replicated here now: their own view is shown.
        self.probed.retain(|g, _| shards.contains_key(&ShardId(g.0)) && self.node.host().group(*g).is_none());
        self.note_probed(before);
        for peer in peers {
            let id = self.next_probe;
            self.next_probe += 1;
            self.probes.insert(id, peer);
            io.send(peer, NodeMessage::WhoLeads { id });
        }
        io.set_timer(ServerTimer::Probe, LEADER_PROBE);
    }

    /// A probe's answer: every group `from` leads. It replaces what `from` claimed before.
    fn probe_answered(&mut self, from: NodeId, id: u64, groups: Vec<(GroupId, u64)>) {
        if self.probes.get(&id) == Some(&from) {
            self.probes.remove(&id);
        }
        let before = self.probed_leaders();
        self.probed.retain(|_, claim| claim.leader != from);
        for (group, term) in groups {
            if self.node.host().group(group).is_some() {
                continue;
            }
            let claim = Claim { leader: from, term };
            match self.probed.get(&group) {
                Some(other) if other.term >= term => {}
                _ => {
                    self.probed.insert(group, claim);
                    // Forwards go where the node's hint points: without this, a node kept
                    // forwarding a shard's requests to its dead leader (each one timing out,
                    // none answering `NotLeader` to correct the hint) while this process
                    // already knew the new one.
                    self.node.learn_leader(group, from);
                }
            }
        }
        self.note_probed(before);
    }

    pub fn node(&self) -> &ShardedNode {
        &self.node
    }

    /// See [`ShardedNode::record_changes`].
    pub fn record_changes(&mut self) {
        self.node.record_changes();
    }

    /// See [`ShardedNode::take_changes`].
    pub fn take_changes(&mut self) -> concord_kv::Changes {
        self.node.take_changes()
    }

    /// Map changes waiting for an answer.
    pub fn admin_pending(&self) -> usize {
        self.admin.len()
    }

    /// Run one input of the node and re-emit its effects as this process's.
    fn with_node(
        &mut self,
        io: &mut Io<'_, Self>,
        f: impl FnOnce(&mut ShardedNode, &mut Io<'_, ShardedNode>),
    ) {
        let me = io.me();
        let ((), effects) = io.nested(|inner| f(&mut self.node, inner));
        for effect in effects {
            match effect {
                // The answer to one of this process's forwards, served here.
                Effect::Send { to, msg: NodeMessage::Forwarded { id, response } }
                    if to == me && id >= ADMIN_IDS =>
                {
                    self.answers.push((id, response))
                }
                Effect::Send { to, msg } => io.send(to, msg),
                Effect::SendNow { to, msg } => io.send_now(to, msg),
                Effect::SetTimer { timer, after } => io.set_timer(ServerTimer::Node(timer), after),
                Effect::CancelTimer { timer } => io.cancel_timer(ServerTimer::Node(timer)),
                Effect::Persist(op) => io.persist(op),
                Effect::Sync => io.sync(),
                Effect::Reply { request, response } => io.reply(request, ServerResponse::Kv(response)),
                Effect::ReplyNow { request, response } => io.reply_now(request, ServerResponse::Kv(response)),
                Effect::Event(ProtocolEvent { name, detail }) => io.event(name, detail),
            }
        }
        for (id, response) in std::mem::take(&mut self.answers) {
            self.admin_answered(io, id, response);
        }
    }

    /// Send map change `id` to the metadata leader (this node's view, else the last hint).
    fn send_admin(&mut self, io: &mut Io<'_, Self>, id: u64) {
        let Some(wait) = self.admin.get_mut(&id) else { return };
        let leader = self.node.known_leader(META).or(wait.hint);
        let Some(leader) = leader else {
            wait.retry_at = Some(io.now() + ADMIN_RETRY);
            io.set_timer(ServerTimer::Admin, ADMIN_RETRY);
            return;
        };
        wait.retry_at = None;
        let request = GroupReq::Meta(wait.ask.clone());
        let msg = NodeMessage::Forward { id, group: META, request };
        if leader == io.me() {
            let me = io.me();
            self.with_node(io, |node, inner| node.on_message(inner, me, msg));
        } else {
            io.send(leader, msg);
        }
    }

    fn admin_answered(&mut self, io: &mut Io<'_, Self>, id: u64, response: GroupResponse<GroupResp>) {
        let Some(wait) = self.admin.get_mut(&id) else { return };
        let answer = match response {
            GroupResponse::Answer { response: GroupResp::Meta(RaftResponse::NotLeader { hint }), .. } => {
                // Certainly not proposed: try again where the hint points.
                wait.hint = hint.filter(|&h| h != io.me()).or(wait.hint);
                wait.retry_at = Some(io.now() + ADMIN_RETRY);
                io.set_timer(ServerTimer::Admin, ADMIN_RETRY);
                return;
            }
            GroupResponse::Answer { response: GroupResp::Meta(answer), .. } => answer,
            GroupResponse::Answer { response: GroupResp::Data(_) | GroupResp::Status(_), .. } => {
                RaftResponse::Rejected { reason: "a shard group answered a map change".into() }
            }
            GroupResponse::NoSuchGroup(group) => {
                RaftResponse::Rejected { reason: format!("{group} does not run on the node asked") }
            }
        };
        let wait = self.admin.remove(&id).expect("looked up above");
        io.reply(wait.request, ServerResponse::Map(answer));
    }

    /// Give up map changes past their deadline; send again those whose retry is due.
    fn admin_tick(&mut self, io: &mut Io<'_, Self>) {
        let now = io.now();
        let expired: Vec<u64> =
            self.admin.iter().filter(|(_, w)| w.deadline <= now).map(|(&id, _)| id).collect();
        for id in expired {
            let wait = self.admin.remove(&id).expect("listed");
            let reason = format!(
                "the metadata group's leader did not answer in {ADMIN_TIMEOUT:?}; the change may or may not \
                 have been committed (GET /v1/cluster shows the map)"
            );
            io.reply(wait.request, ServerResponse::Map(RaftResponse::Unknown { reason }));
        }
        let due: Vec<u64> = self
            .admin
            .iter()
            .filter(|(_, w)| w.retry_at.is_some_and(|at| at <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.send_admin(io, id);
        }
        if !self.admin.is_empty() {
            io.set_timer(ServerTimer::Admin, ADMIN_RETRY);
        }
    }
}

impl Process for ShardServer {
    type Message = NodeMessage;
    type Timer = ServerTimer;
    type Request = ServerRequest;
    type Response = ServerResponse;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        // A restart forgets the changes in flight: their askers time out.
        self.admin.clear();
        self.probes.clear();
        self.with_node(io, |node, inner| node.on_start(inner));
        io.set_timer(ServerTimer::Probe, LEADER_PROBE);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: NodeMessage) {
        match msg {
            NodeMessage::Leading { id, groups } if id >= PROBE_IDS => self.probe_answered(from, id, groups),
            NodeMessage::Forwarded { id, response } if id >= ADMIN_IDS => {
                self.admin_answered(io, id, response)
            }
            msg => self.with_node(io, |node, inner| node.on_message(inner, from, msg)),
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: ServerTimer) {
        match timer {
            ServerTimer::Node(t) => self.with_node(io, |node, inner| node.on_timer(inner, t)),
            ServerTimer::Admin => self.admin_tick(io),
            ServerTimer::Probe => self.probe_tick(io),
        }
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: ServerRequest) {
        match req {
            ServerRequest::Kv(req) => self.with_node(io, |node, inner| node.on_request(inner, request, req)),
            ServerRequest::Shard { shard, request: req } => {
                self.with_node(io, |node, inner| node.shard_request(inner, request, shard, req))
            }
            ServerRequest::Map(_) | ServerRequest::Members(_) => {
                let ask = match req {
                    ServerRequest::Map(proposal) => RaftRequest::Propose { session: None, command: proposal },
                    ServerRequest::Members(change) => RaftRequest::Admin(change),
                    ServerRequest::Kv(_) | ServerRequest::Shard { .. } => unreachable!("matched above"),
                };
                let id = self.next_admin;
                self.next_admin += 1;
                let deadline = io.now() + ADMIN_TIMEOUT;
                self.admin.insert(id, AdminWait { request, ask, deadline, retry_at: None, hint: None });
                io.set_timer(ServerTimer::Admin, ADMIN_RETRY);
                self.send_admin(io, id);
            }
        }
    }

    fn role(&self) -> Option<&'static str> {
        self.node.role()
    }

    fn inspect(&self) -> serde_json::Value {
        let mut view = self.node.inspect();
        view["admin_pending"] = self.admin.len().into();
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::hash::SplitMix64;
    use concord_core::Durable;
    use concord_raft::RaftConfig;
    use concord_shard::ShardedConfig;

    /// Sharded servers on a perfect network (1 ms a message), one input at a time in time order;
    /// messages to or from a node in `down` are lost, and its timers do not fire.
    struct Cluster {
        servers: BTreeMap<NodeId, ShardServer>,
        queue: BTreeMap<(Time, u64), (NodeId, NodeId, NodeMessage)>,
        timers: BTreeMap<(NodeId, ServerTimer), Time>,
        seq: u64,
        rng: SplitMix64,
        down: BTreeSet<NodeId>,
        /// `WhoLeads` sent, by sender.
        probes: BTreeMap<NodeId, u64>,
    }

    impl Cluster {
        /// 5 nodes, 10 shards of 3 replicas: every node lacks 4 shards.
        fn start() -> Cluster {
            let config = ShardedConfig {
                nodes: (1..=5).map(NodeId).collect(),
                shards: 10,
                replicas: 3,
                raft: RaftConfig {
                    election_timeout_min: Duration::from_millis(300),
                    election_timeout_max: Duration::from_millis(600),
                    heartbeat_interval: Duration::from_millis(75),
                    clock_drift_bound: Duration::from_millis(30),
                    ..RaftConfig::default()
                },
                ..ShardedConfig::default()
            };
            let mut c = Cluster {
                servers: BTreeMap::new(),
                queue: BTreeMap::new(),
                timers: BTreeMap::new(),
                seq: 0,
                rng: SplitMix64(3),
                down: BTreeSet::new(),
                probes: BTreeMap::new(),
            };
            for &id in &config.nodes {
                let node = ShardedNode::boot(id, config.clone(), &Durable::new()).expect("boot");
                c.servers.insert(id, ShardServer::new(node));
            }
            for id in config.nodes {
                c.step(id, Time::ZERO, |s, io| s.on_start(io));
            }
            c
        }

        fn step(
            &mut self,
            id: NodeId,
            now: Time,
            f: impl FnOnce(&mut ShardServer, &mut Io<'_, ShardServer>),
        ) {
            let mut effects = Vec::new();
            let server = self.servers.get_mut(&id).expect("server");
            let mut io = Io::new(id, now, false, &mut self.rng, &mut effects);
            f(server, &mut io);
            for effect in effects {
                match effect {
                    Effect::Send { to, msg } | Effect::SendNow { to, msg } => {
                        if matches!(msg, NodeMessage::WhoLeads { .. }) {
                            *self.probes.entry(id).or_default() += 1;
                        }
                        self.seq += 1;
                        self.queue.insert((now + Duration::from_millis(1), self.seq), (to, id, msg));
                    }
                    Effect::SetTimer { timer, after } => {
                        self.timers.insert((id, timer), now + after);
                    }
                    Effect::CancelTimer { timer } => {
                        self.timers.remove(&(id, timer));
                    }
                    Effect::Persist(_)
                    | Effect::Sync
                    | Effect::Reply { .. }
                    | Effect::ReplyNow { .. }
                    | Effect::Event(_) => {}
                }
            }
        }

        fn run_until(&mut self, until: Time) {
            loop {
                let message = self.queue.keys().next().map(|k| k.0);
                let timer = self.timers.iter().map(|(&k, &t)| (t, k)).min();
                match (message, timer) {
                    (m, Some((t, key))) if t <= until && m.is_none_or(|m| t < m) => {
                        self.timers.remove(&key);
                        if !self.down.contains(&key.0) {
                            self.step(key.0, t, |s, io| s.on_timer(io, key.1));
                        }
                    }
                    (Some(m), _) if m <= until => {
                        let key = *self.queue.keys().next().expect("a message");
                        let (to, from, msg) = self.queue.remove(&key).expect("queued");
                        if !self.down.contains(&to) && !self.down.contains(&from) {
                            self.step(to, m, |s, io| s.on_message(io, from, msg));
                        }
                    }
                    _ => return,
                }
            }
        }

        /// The node that leads `shard` by its own account.
        fn leader(&self, shard: u32) -> Option<NodeId> {
            let led = |s: &ShardServer| s.node().shards().any(|(id, r)| id.0 == shard && r.is_leader());
            self.servers.iter().find(|(id, s)| !self.down.contains(id) && led(s)).map(|(&id, _)| id)
        }
    }

    #[test]
    fn every_node_learns_every_shards_leader_with_one_probe_per_peer() {
        let mut c = Cluster::start();
        let t = |s| Time::ZERO + Duration::from_secs(s);
        c.run_until(t(4));
        for (&id, server) in &c.servers {
            for shard in 1..=10 {
                let leader = c.leader(shard).expect("every shard elected");
                assert_eq!(server.known_leader(GroupId(shard)), Some(leader), "node {id}, shard {shard}");
            }
        }
        // One probe per peer per round, whatever the shards: 4 peers, 4 rounds.
        for (id, sent) in &c.probes {
            assert!(*sent <= 4 * 4, "node {id} sent {sent} probes in 4 rounds");
        }
    }

    #[test]
    fn a_silent_peer_is_forgotten_as_a_leader() {
        let mut c = Cluster::start();
        let t = |s| Time::ZERO + Duration::from_secs(s);
        c.run_until(t(4));
        // Node 3 knows the leader of a shard it does not replicate from that leader's answers.
        let node3 = &c.servers[&NodeId(3)];
        let lacks = |k: u32| node3.node().host().group(GroupId(k)).is_none();
        let first = (1..=10).find(|&k| lacks(k)).expect("node 3 lacks a shard");
        let silent = c.leader(first).expect("elected");
        let learned: Vec<u32> = (1..=10).filter(|&k| lacks(k) && c.leader(k) == Some(silent)).collect();
        for &k in &learned {
            assert_eq!(node3.probed.get(&GroupId(k)).map(|c| c.leader), Some(silent), "shard {k}");
        }
        // That leader goes silent: after a round without its answer node 3 no longer names it,
        // and names the new leaders once elected.
        c.down.insert(silent);
        c.run_until(t(10));
        let node3 = &c.servers[&NodeId(3)];
        for &k in &learned {
            assert_ne!(node3.probed.get(&GroupId(k)).map(|c| c.leader), Some(silent), "shard {k}");
            let leader = c.leader(k).expect("another replica took over");
            assert_eq!(node3.known_leader(GroupId(k)), Some(leader), "shard {k}");
            // Regression (found by the docker-compose deployment): the node's forwarding hint,
            // where its forwards go, learned the new leader too. It used to keep the dead one,
            // so every request for the shard timed out while the process knew better.
            assert_eq!(node3.node().known_leader(GroupId(k)), Some(leader), "shard {k}: forwards");
        }
    }
}

//! # SWIM: membership and failure detection
//!
//! Das, Gupta and Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group
//! Membership Protocol" (DSN 2002). Every `period` a node **probes** one member (round-robin over a
//! shuffled list, so every member is probed within a bounded time): it sends `Ping`, and without an
//! `Ack` within `probe_timeout` it asks `indirect_probes` other members to ping the target for it
//! (`PingReq`) – a lossy link between two nodes then does not condemn a healthy one. If no ack
//! arrives by the end of the period the target becomes **suspect**; a suspect that does not refute
//! within `suspicion_timeout` is declared **dead**.
//!
//! **Incarnation numbers** let a node refute: a node that hears it is suspected bumps its own
//! incarnation and spreads `Alive(inc+1)`, which overrides `Suspect(inc)`. Precedence, for one
//! member: `Left` > `Dead` ≥ `Suspect` > `Alive` at the same incarnation, and a higher incarnation
//! of `Alive` or `Suspect` overrides a lower one (a restarted node rejoins by announcing
//! `Alive` with an incarnation above any it had; its incarnation is durable).
//!
//! **Dissemination** is piggybacked: every SWIM message carries up to `piggyback` recent updates,
//! each retransmitted a bounded number of times (about `3·log2(n)`), the "infection-style"
//! spreading of the paper; no separate broadcast is ever sent.
//!
//! What the rest of Dynamo uses: [`Swim::is_up`] (sloppy-quorum placement and handoff) and
//! [`Swim::ring_members`] (everyone who has not *left*: failures are transient and do not move key
//! ranges, as in Dynamo §4.8; an explicit leave does).

use concord_core::time::serde_duration;
use concord_core::{NodeId, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// SWIM settings (`[protocol.dynamo.swim]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwimConfig {
    #[serde(with = "serde_duration")]
    pub period: Duration,
    #[serde(with = "serde_duration")]
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (`k` in the paper).
    pub indirect_probes: usize,
    #[serde(with = "serde_duration")]
    pub suspicion_timeout: Duration,
    /// Updates carried by one message, at most.
    pub piggyback: usize,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            period: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(60),
            indirect_probes: 2,
            suspicion_timeout: Duration::from_millis(1000),
            piggyback: 6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    Alive,
    Suspect,
    Dead,
    Left,
}

/// One piece of membership news.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub node: NodeId,
    pub state: MemberState,
    pub incarnation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub state: MemberState,
    pub incarnation: u64,
    /// When it entered `state` (local clock): suspicion timeouts count from here.
    pub since: Time,
}

/// SWIM's messages (wrapped in the Dynamo message type).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SwimMessage {
    Ping {
        seq: u64,
        updates: Vec<Update>,
    },
    /// "Ping `target` for me and forward its ack."
    PingReq {
        seq: u64,
        target: NodeId,
        updates: Vec<Update>,
    },
    Ack {
        seq: u64,
        target: NodeId,
        updates: Vec<Update>,
    },
}

/// The probe in progress.
#[derive(Clone, Copy, Debug)]
struct Probe {
    target: NodeId,
    seq: u64,
    acked: bool,
}

pub struct Swim {
    me: NodeId,
    config: SwimConfig,
    members: BTreeMap<NodeId, Member>,
    incarnation: u64,
    left: bool,
    probe_order: Vec<NodeId>,
    probe_next: usize,
    probe: Option<Probe>,
    next_seq: u64,
    /// Pings sent on behalf of others: my seq → (requester, their seq). Bounded.
    relays: BTreeMap<u64, (NodeId, u64)>,
    /// Updates to piggyback, with how many more times each is sent.
    gossip: Vec<(Update, u32)>,
}

const MAX_RELAYS: usize = 64;

impl Swim {
    /// `incarnation` is this node's durable incarnation (already bumped for this boot).
    pub fn new(me: NodeId, cluster: &[NodeId], config: SwimConfig, incarnation: u64, now: Time) -> Swim {
        let members = cluster
            .iter()
            .filter(|&&id| id != me)
            .map(|&id| (id, Member { state: MemberState::Alive, incarnation: 0, since: now }))
            .collect();
        let mut swim = Swim {
            me,
            config,
            members,
            incarnation,
            left: false,
            probe_order: Vec::new(),
            probe_next: 0,
            probe: None,
            next_seq: 1,
            relays: BTreeMap::new(),
            gossip: Vec::new(),
        };
        // Announce this incarnation: it overrides any suspicion or death others remember.
        swim.queue(Update { node: me, state: MemberState::Alive, incarnation });
        swim
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }

    /// Believed reachable: alive (suspects are avoided for placement).
    pub fn is_up(&self, id: NodeId) -> bool {
        id == self.me || self.members.get(&id).is_some_and(|m| m.state == MemberState::Alive)
    }

    /// Members of the ring: everyone (me included) who has not left.
    pub fn ring_members(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> =
            self.members.iter().filter(|(_, m)| m.state != MemberState::Left).map(|(&id, _)| id).collect();
        if !self.left {
            out.push(self.me);
        }
        out.sort();
        out
    }

    fn retransmits(&self) -> u32 {
        let n = self.members.len() as u32 + 1;
        3 * (32 - n.leading_zeros()).max(1)
    }

    fn queue(&mut self, update: Update) {
        self.gossip.retain(|(u, _)| u.node != update.node);
        let times = self.retransmits();
        self.gossip.push((update, times));
    }

    /// Updates to piggyback on the next message (each counted as sent once more).
    pub fn piggyback(&mut self) -> Vec<Update> {
        let take = self.config.piggyback.min(self.gossip.len());
        let out: Vec<Update> = self.gossip[..take].iter().map(|(u, _)| *u).collect();
        for entry in &mut self.gossip[..take] {
            entry.1 -= 1;
        }
        self.gossip.retain(|(_, left)| *left > 0);
        // Rotate, so that a long queue is not stuck behind its first entries.
        let len = self.gossip.len();
        if len > 0 {
            self.gossip.rotate_left(take.min(len));
        }
        out
    }

    /// Apply news; returns true if the ring's membership changed (someone left or came back).
    pub fn apply(&mut self, updates: &[Update], now: Time) -> bool {
        let mut ring_changed = false;
        for &u in updates {
            if u.node == self.me {
                let accused = matches!(u.state, MemberState::Suspect | MemberState::Dead);
                if accused && u.incarnation >= self.incarnation && !self.left {
                    // Refute: a higher incarnation overrides the accusation everywhere.
                    self.incarnation = u.incarnation + 1;
                    self.queue(Update {
                        node: self.me,
                        state: MemberState::Alive,
                        incarnation: self.incarnation,
                    });
                }
                continue;
            }
            let Some(current) = self.members.get(&u.node).copied() else {
                // A node we never heard of joins.
                self.members
                    .insert(u.node, Member { state: u.state, incarnation: u.incarnation, since: now });
                self.queue(u);
                ring_changed |= u.state != MemberState::Left;
                continue;
            };
            let wins = match u.state {
                MemberState::Alive => {
                    u.incarnation > current.incarnation && current.state != MemberState::Left
                }
                MemberState::Suspect => {
                    (current.state == MemberState::Alive && u.incarnation >= current.incarnation)
                        || (current.state == MemberState::Suspect && u.incarnation > current.incarnation)
                }
                MemberState::Dead => {
                    matches!(current.state, MemberState::Alive | MemberState::Suspect)
                        && u.incarnation >= current.incarnation
                }
                MemberState::Left => current.state != MemberState::Left,
            };
            if wins {
                ring_changed |= (u.state == MemberState::Left) != (current.state == MemberState::Left);
                self.members
                    .insert(u.node, Member { state: u.state, incarnation: u.incarnation, since: now });
                self.queue(u);
            }
        }
        ring_changed
    }

    /// Leave the cluster: announce it; the ring drops this node everywhere.
    pub fn leave(&mut self) {
        self.left = true;
        self.incarnation += 1;
        self.queue(Update { node: self.me, state: MemberState::Left, incarnation: self.incarnation });
    }

    /// Start of a protocol period: time out suspects, then start the next probe.
    /// Returns the messages to send.
    pub fn tick(&mut self, now: Time, random: &mut dyn FnMut(u64) -> u64) -> Vec<(NodeId, SwimMessage)> {
        let mut out = Vec::new();
        // The previous probe went unanswered: suspect its target.
        if let Some(p) = self.probe.take() {
            if !p.acked {
                if let Some(m) = self.members.get(&p.target).copied() {
                    if m.state == MemberState::Alive {
                        self.apply(
                            &[Update {
                                node: p.target,
                                state: MemberState::Suspect,
                                incarnation: m.incarnation,
                            }],
                            now,
                        );
                    }
                }
            }
        }
        let expired: Vec<Update> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.state == MemberState::Suspect
                    && now.saturating_since(m.since) >= self.config.suspicion_timeout
            })
            .map(|(&node, m)| Update { node, state: MemberState::Dead, incarnation: m.incarnation })
            .collect();
        self.apply(&expired, now);
        // Next target, round-robin over a list reshuffled each round (dead members too: a node
        // that restarts is found again even if its announcement was lost).
        if self.probe_next >= self.probe_order.len() {
            self.probe_order = self
                .members
                .iter()
                .filter(|(_, m)| m.state != MemberState::Left)
                .map(|(&id, _)| id)
                .collect();
            for i in (1..self.probe_order.len()).rev() {
                let j = random(i as u64 + 1) as usize;
                self.probe_order.swap(i, j);
            }
            self.probe_next = 0;
        }
        if let Some(&target) = self.probe_order.get(self.probe_next) {
            self.probe_next += 1;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.probe = Some(Probe { target, seq, acked: false });
            let updates = self.updates_for(target);
            out.push((target, SwimMessage::Ping { seq, updates }));
        }
        out
    }

    /// Piggybacked updates for a message to `to`; if I do not think `to` is alive, tell it so, so
    /// that it can refute.
    fn updates_for(&mut self, to: NodeId) -> Vec<Update> {
        let mut updates = self.piggyback();
        if let Some(m) = self.members.get(&to) {
            if m.state != MemberState::Alive && !updates.iter().any(|u| u.node == to) {
                updates.push(Update { node: to, state: m.state, incarnation: m.incarnation });
            }
        }
        updates
    }

    /// The direct probe timed out: ask `k` others to probe indirectly.
    pub fn probe_timeout(&mut self, random: &mut dyn FnMut(u64) -> u64) -> Vec<(NodeId, SwimMessage)> {
        let Some(p) = self.probe else { return Vec::new() };
        if p.acked {
            return Vec::new();
        }
        let mut helpers: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(&id, m)| id != p.target && m.state == MemberState::Alive)
            .map(|(&id, _)| id)
            .collect();
        let k = self.config.indirect_probes.min(helpers.len());
        let mut out = Vec::new();
        for i in 0..k {
            let j = i + random((helpers.len() - i) as u64) as usize;
            helpers.swap(i, j);
            let updates = self.piggyback();
            out.push((helpers[i], SwimMessage::PingReq { seq: p.seq, target: p.target, updates }));
        }
        out
    }

    /// Handle a SWIM message; returns replies and whether the ring changed.
    pub fn on_message(
        &mut self,
        from: NodeId,
        msg: SwimMessage,
        now: Time,
    ) -> (Vec<(NodeId, SwimMessage)>, bool) {
        let mut out = Vec::new();
        let (updates, ring_changed) = match &msg {
            SwimMessage::Ping { updates, .. }
            | SwimMessage::PingReq { updates, .. }
            | SwimMessage::Ack { updates, .. } => (updates.clone(), self.apply(updates, now)),
        };
        let _ = updates;
        match msg {
            SwimMessage::Ping { seq, .. } => {
                let updates = self.updates_for(from);
                out.push((from, SwimMessage::Ack { seq, target: self.me, updates }));
            }
            SwimMessage::PingReq { seq, target, .. } => {
                let relay_seq = self.next_seq;
                self.next_seq += 1;
                self.relays.insert(relay_seq, (from, seq));
                while self.relays.len() > MAX_RELAYS {
                    self.relays.pop_first();
                }
                let updates = self.updates_for(target);
                out.push((target, SwimMessage::Ping { seq: relay_seq, updates }));
            }
            SwimMessage::Ack { seq, target, .. } => {
                if let Some((requester, their_seq)) = self.relays.remove(&seq) {
                    let updates = self.piggyback();
                    out.push((requester, SwimMessage::Ack { seq: their_seq, target, updates }));
                } else if let Some(p) = &mut self.probe {
                    if p.seq == seq && p.target == target {
                        p.acked = true;
                    }
                }
            }
        }
        (out, ring_changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swim(me: u32) -> Swim {
        let cluster: Vec<NodeId> = (1..=4).map(NodeId).collect();
        Swim::new(NodeId(me), &cluster, SwimConfig::default(), 1, Time::ZERO)
    }

    fn ms(n: u64) -> Time {
        Time::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn an_unanswered_probe_leads_to_suspicion_then_death() {
        let mut s = swim(1);
        let mut zero = |_| 0;
        let sent = s.tick(ms(0), &mut zero);
        let (target, _) = sent[0];
        let helpers = s.probe_timeout(&mut zero);
        assert_eq!(helpers.len(), 2, "indirect probes via k = 2 members");
        assert!(helpers.iter().all(|(to, _)| *to != target));
        s.tick(ms(200), &mut zero);
        assert_eq!(s.member(target).unwrap().state, MemberState::Suspect);
        assert!(!s.is_up(target));
        s.tick(ms(1300), &mut zero);
        assert_eq!(s.member(target).unwrap().state, MemberState::Dead);
        assert!(s.ring_members().contains(&target), "failures do not move key ranges");
    }

    #[test]
    fn an_ack_through_an_indirect_probe_keeps_the_target_alive() {
        let (mut a, mut helper) = (swim(1), swim(2));
        let mut zero = |_| 0;
        let (target, _) = a.tick(ms(0), &mut zero)[0];
        let requests = a.probe_timeout(&mut zero);
        let (to, req) = requests.into_iter().find(|(to, _)| *to == NodeId(2)).unwrap_or_else(|| {
            // Node 2 may be the target; use whichever helper was chosen.
            panic!("helper 2 not chosen; target {target}")
        });
        assert_eq!(to, NodeId(2));
        let (pings, _) = helper.on_message(NodeId(1), req, ms(70));
        let (_, SwimMessage::Ping { seq, .. }) = &pings[0] else { panic!() };
        let (acks, _) =
            helper.on_message(target, SwimMessage::Ack { seq: *seq, target, updates: Vec::new() }, ms(80));
        let (back_to, ack) = acks.into_iter().next().unwrap();
        assert_eq!(back_to, NodeId(1));
        a.on_message(NodeId(2), ack, ms(90));
        a.tick(ms(200), &mut zero);
        assert_eq!(a.member(target).unwrap().state, MemberState::Alive);
    }

    #[test]
    fn a_suspected_node_refutes_with_a_higher_incarnation() {
        let mut b = swim(2);
        b.apply(&[Update { node: NodeId(2), state: MemberState::Suspect, incarnation: 1 }], ms(5));
        assert_eq!(b.incarnation(), 2);
        let news = b.piggyback();
        let refutation = news.iter().find(|u| u.node == NodeId(2)).unwrap();
        assert_eq!((refutation.state, refutation.incarnation), (MemberState::Alive, 2));
        let mut a = swim(1);
        a.apply(&[Update { node: NodeId(2), state: MemberState::Suspect, incarnation: 1 }], ms(5));
        assert!(!a.is_up(NodeId(2)));
        a.apply(&[*refutation], ms(6));
        assert!(a.is_up(NodeId(2)), "Alive(2) overrides Suspect(1)");
        a.apply(&[Update { node: NodeId(2), state: MemberState::Suspect, incarnation: 1 }], ms(7));
        assert!(a.is_up(NodeId(2)), "stale suspicion is ignored");
    }

    #[test]
    fn leaving_removes_a_node_from_the_ring() {
        let mut c = swim(3);
        c.leave();
        let news = c.piggyback();
        let mut a = swim(1);
        assert!(a.apply(&news, ms(1)), "ring changed");
        assert!(!a.ring_members().contains(&NodeId(3)));
    }

    #[test]
    fn dissemination_is_bounded() {
        let mut a = swim(1);
        let mut sends = 0;
        while !a.piggyback().is_empty() {
            sends += 1;
            assert!(sends < 100);
        }
        assert_eq!(sends, 9, "3·log2(4) rounds for the boot announcement");
    }
}

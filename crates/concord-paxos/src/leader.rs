//! The leader: a distinguished proposer (*Paxos Made Simple* §2.4 and §3; PMMC §3, "Leaders",
//! "Scouts", "Commanders").
//!
//! ```text
//!              leader timeout                 phase-1 quorum promised
//!   Follower ─────────────────▶ Candidate ──────────────────────────▶ Leader
//!      ▲    (prepare(b) to all)   │  (scout)   adopt highest accepted   │ (commanders: accept(b, s, v)
//!      │                          │            per slot, no-op in gaps  │  per slot, q2 accepted → decide)
//!      └──── nack / higher ballot ┴─────────────────────────────────────┘
//!            (preempted: back off, or – with `backoff = false` – retry at once)
//! ```
//!
//! * **Phase 1 once for all slots** (§3 "Multi-Paxos"): a candidate sends `prepare(b, from_slot)`
//!   where `from_slot` is the first slot it has not applied. Each promise covers every slot from
//!   there on, so after one round trip the leader may run phase 2 in any number of slots.
//! * **Adoption** (P2c, PMMC's `adopted`): for each slot a promise reports, the leader proposes
//!   the value with the highest ballot ([`crate::single::highest_accepted`]); slots below the
//!   highest reported one that nobody reported are filled with no-ops (§3: "fill the gaps"), so
//!   later slots can be applied. Slots some acceptor already compacted (`compacted_upto`) were
//!   chosen: the leader learns them by catching up and never proposes there.
//! * **Phase 2 per slot** (PMMC's commander): `accept(b, slot, v)` to every acceptor; `q2`
//!   `accepted` answers in ballot `b` mean the value is chosen – the leader is the learner that
//!   counts, and tells every replica with `decide`.
//! * **Failure detection and duelling proposers** (§3 "a reliable algorithm for electing a
//!   proposer must use either randomness or real time"; PMMC §4 "liveness"): the leader sends
//!   heartbeats; a follower that hears none for a random leader timeout campaigns. A proposer
//!   preempted by a higher ballot (a `nack`, or a higher `prepare`/heartbeat) either backs off – it
//!   follows the higher ballot and waits a random, growing timeout – or, with `backoff = false`,
//!   retries at once with a higher ballot, which lets two proposers preempt each other forever.

use crate::ballot::Ballot;
use crate::message::{LogValue, Message, PValue, PaxosResponse};
use crate::node::{PaxosNode, Role, Timer, Value};
use crate::single::highest_accepted;
use concord_core::{Io, NodeId, StateMachine};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Phase 1 in progress (PMMC's scout).
pub(crate) struct Scout<V> {
    pub ballot: Ballot,
    pub from_slot: u64,
    /// Who promised, with what they reported: (accepted pvalues, compacted_upto).
    pub promises: BTreeMap<NodeId, (Vec<PValue<V>>, u64)>,
}

/// One slot in phase 2 (PMMC's commander).
pub(crate) struct Proposal<V> {
    pub value: V,
    pub accepted_by: BTreeSet<NodeId>,
}

/// Leader-only state.
pub(crate) struct LeaderState<V> {
    pub ballot: Ballot,
    /// The next slot for a new client request.
    pub next_slot: u64,
    /// Slots proposed in `ballot` and not yet chosen.
    pub proposals: BTreeMap<u64, Proposal<V>>,
}

/// Proposals retransmitted per heartbeat tick (the lowest slots first).
const RETRANSMIT_PER_TICK: usize = 64;

impl<S: StateMachine> PaxosNode<S> {
    /// Arm the leader timeout: a random time in `[leader_timeout_min, leader_timeout_max]`; while
    /// backing off after `k` failed attempts, the window's top grows by `leader_timeout_min ×
    /// (2^k − 1)` (k at most 2) – exponential back-off, so proposers that keep colliding spread out.
    pub(crate) fn arm_leader_timeout(&mut self, io: &mut Io<'_, Self>) {
        let widen = (1u32 << self.failed_attempts.min(2)) - 1;
        let (lo, hi) = (self.config.leader_timeout_min, self.config.leader_timeout_max);
        let after = io.random_duration(lo, hi + lo * widen);
        io.set_timer(Timer::LeaderTimeout, after);
    }

    pub(crate) fn on_leader_timeout(&mut self, io: &mut Io<'_, Self>) {
        if self.is_leader() {
            return;
        }
        if matches!(self.role, Role::Candidate(_)) {
            // Phase 1 did not complete in time (lost messages, no quorum reachable).
            self.failed_attempts += 1;
        }
        self.campaign(io);
    }

    /// Phase 1a: a new ballot above every ballot seen, `prepare` to every acceptor.
    pub(crate) fn campaign(&mut self, io: &mut Io<'_, Self>) {
        let ballot = Ballot::next_after(self.highest_seen.max(self.promised), self.id);
        self.highest_seen = ballot;
        // Its own promise first, durable before any prepare leaves: a restarted node can then
        // never campaign with a ballot it already used.
        self.promised = ballot;
        self.persist(io, crate::storage::put_promise(ballot));
        let from_slot = self.applied + 1;
        self.role = Role::Candidate(Scout { ballot, from_slot, promises: BTreeMap::new() });
        self.leader = None;
        io.event("campaign", json!({ "ballot": ballot.to_string(), "from_slot": from_slot }));
        // The heartbeat timer resends the prepare to acceptors that have not answered.
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.arm_leader_timeout(io);
        self.broadcast(io, Message::Prepare { ballot, from_slot });
    }

    /// Phase 1b arrives at the candidate.
    pub(crate) fn handle_promise(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<PValue<Value<S>>>,
        compacted_upto: u64,
    ) {
        let Role::Candidate(scout) = &mut self.role else { return };
        if scout.ballot != ballot {
            return;
        }
        scout.promises.insert(from, (accepted, compacted_upto));
        // MUTATION(accept_without_promise_quorum): phase 2 after the first promise (its own).
        let needed = if self.config.mutations().accept_without_promise_quorum { 1 } else { self.q1 };
        if scout.promises.len() >= needed {
            if scout.promises.len() < self.q1 {
                io.event(
                    "mutation-fired",
                    json!({ "mutation": "accept_without_promise_quorum", "ballot": ballot.to_string() }),
                );
            }
            self.adopt(io);
        }
    }

    /// Phase 1 complete (PMMC's `adopted`): take over every slot from `from_slot` on.
    fn adopt(&mut self, io: &mut Io<'_, Self>) {
        let Role::Candidate(scout) = std::mem::replace(&mut self.role, Role::Follower) else {
            unreachable!("adopt is called by a candidate")
        };
        let ballot = scout.ballot;
        // Per slot, every reported (ballot, value); the compaction point furthest ahead and who has it.
        let mut reports: BTreeMap<u64, Vec<(Ballot, Value<S>)>> = BTreeMap::new();
        let mut compacted = (0, self.id);
        for (&node, (pvalues, upto)) in &scout.promises {
            if *upto > compacted.0 {
                compacted = (*upto, node);
            }
            for pv in pvalues {
                reports.entry(pv.slot).or_default().push((pv.ballot, pv.value.clone()));
            }
        }
        let first = scout.from_slot.max(compacted.0 + 1);
        let last_reported = reports.keys().next_back().copied().unwrap_or(0);
        let last_decided = self.decided.keys().next_back().copied().unwrap_or(0);
        let last = last_reported.max(last_decided);
        let mut proposals = BTreeMap::new();
        let (mut adopted, mut noops) = (0u64, 0u64);
        for slot in first..=last {
            if slot <= self.applied || self.decided.contains_key(&slot) {
                continue;
            }
            let highest = reports.get(&slot).and_then(|r| highest_accepted(r.iter().map(Some)));
            let value = match highest {
                // MUTATION(ignore_highest_accepted): propose a no-op over the accepted value.
                Some(_) if self.config.mutations().ignore_highest_accepted => {
                    io.event(
                        "mutation-fired",
                        json!({ "mutation": "ignore_highest_accepted", "slot": slot }),
                    );
                    noops += 1;
                    LogValue::Noop
                }
                Some((_, v)) => {
                    adopted += 1;
                    v.clone()
                }
                None => {
                    // A hole: no acceptor of the quorum reported a value here.
                    noops += 1;
                    if io.tracing() {
                        io.event("noop-filled", json!({ "slot": slot, "ballot": ballot.to_string() }));
                    }
                    LogValue::Noop
                }
            };
            proposals.insert(slot, Proposal { value, accepted_by: BTreeSet::new() });
        }
        let next_slot = (last + 1).max(first).max(self.applied + 1);
        io.event(
            "elected",
            json!({
                "ballot": ballot.to_string(), "from_slot": scout.from_slot, "promises": scout.promises.len(),
                "adopted": adopted, "noops": noops, "next_slot": next_slot,
            }),
        );
        self.role = Role::Leader(LeaderState { ballot, next_slot, proposals });
        self.leader = Some(self.id);
        self.failed_attempts = 0;
        io.cancel_timer(Timer::LeaderTimeout);
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.broadcast_heartbeat(io);
        let slots: Vec<(u64, Value<S>)> = match &self.role {
            Role::Leader(ls) => ls.proposals.iter().map(|(&s, p)| (s, p.value.clone())).collect(),
            _ => Vec::new(),
        };
        for (slot, value) in slots {
            self.broadcast(io, Message::Accept { ballot, slot, value });
        }
        if compacted.0 > self.applied {
            // Chosen slots we lack were compacted by an acceptor: get its snapshot.
            self.ask_catch_up(io, compacted.1, true);
        }
    }

    /// Phase 2a for a new value in the next free slot. Returns the slot.
    pub(crate) fn propose(&mut self, io: &mut Io<'_, Self>, value: Value<S>) -> u64 {
        let Role::Leader(ls) = &mut self.role else { unreachable!("only a leader proposes") };
        let (ballot, slot) = (ls.ballot, ls.next_slot);
        ls.next_slot += 1;
        ls.proposals.insert(slot, Proposal { value: value.clone(), accepted_by: BTreeSet::new() });
        self.broadcast(io, Message::Accept { ballot, slot, value });
        slot
    }

    /// Phase 2b arrives at the leader, the learner that counts: `q2` in one ballot → chosen.
    pub(crate) fn handle_accepted(&mut self, io: &mut Io<'_, Self>, from: NodeId, ballot: Ballot, slot: u64) {
        let Role::Leader(ls) = &mut self.role else { return };
        if ls.ballot != ballot {
            return;
        }
        let Some(p) = ls.proposals.get_mut(&slot) else { return };
        p.accepted_by.insert(from);
        if p.accepted_by.len() < self.q2 {
            return;
        }
        let p = ls.proposals.remove(&slot).expect("present");
        io.event(
            "chosen",
            json!({ "slot": slot, "ballot": ballot.to_string(), "value": p.value.kind_name() }),
        );
        let others: Vec<NodeId> = self.nodes.iter().copied().filter(|&n| n != self.id).collect();
        for to in others {
            self.send(io, to, Message::Decide { ballot, slot, value: p.value.clone() });
        }
        self.learn(io, slot, ballot, p.value);
    }

    /// A `nack`: an acceptor promised `promised`, above our `ballot`.
    pub(crate) fn handle_nack(&mut self, io: &mut Io<'_, Self>, ballot: Ballot, promised: Ballot) {
        self.note_ballot(promised);
        if self.ballot() == Some(ballot) && promised > ballot {
            self.preempted(io, promised);
        }
    }

    /// If we lead or campaign with a ballot below `b`, we are preempted by it.
    pub(crate) fn step_down_below(&mut self, io: &mut Io<'_, Self>, b: Ballot) {
        if self.ballot().is_some_and(|mine| mine < b) {
            self.preempted(io, b);
        }
    }

    /// Preempted by ballot `by` (PMMC's `preempted`): give up leadership or the campaign, then back
    /// off – or, without back-off, campaign again at once.
    pub(crate) fn preempted(&mut self, io: &mut Io<'_, Self>, by: Ballot) {
        let mine = self.ballot();
        io.event("preempted", json!({ "ballot": mine.map(|b| b.to_string()), "by": by.to_string() }));
        io.cancel_timer(Timer::Heartbeat);
        if self.is_leader() {
            self.abandon_pending(io);
        }
        self.role = Role::Follower;
        self.leader = (by.leader != self.id).then_some(by.leader);
        if self.config.backoff {
            self.failed_attempts += 1;
            self.arm_leader_timeout(io);
        } else {
            self.campaign(io);
        }
    }

    /// Every client request proposed as leader gets "unknown": its slot may still be chosen with
    /// its value by the next leader, or with another.
    pub(crate) fn abandon_pending(&mut self, io: &mut Io<'_, Self>) {
        for (_, (request, _)) in std::mem::take(&mut self.pending) {
            let reason = "leadership lost before the request's slot was chosen".to_string();
            self.reply(io, request, PaxosResponse::Unknown { reason });
        }
    }

    pub(crate) fn broadcast_heartbeat(&mut self, io: &mut Io<'_, Self>) {
        let Some(ballot) = self.ballot() else { return };
        let decided_upto = self.applied;
        let others: Vec<NodeId> = self.nodes.iter().copied().filter(|&n| n != self.id).collect();
        for to in others {
            self.send(io, to, Message::Heartbeat { ballot, decided_upto });
        }
    }

    /// Leader: heartbeat, and resend accepts that some acceptor has not answered (they may have
    /// been lost). Candidate: resend the prepare.
    pub(crate) fn on_heartbeat_tick(&mut self, io: &mut Io<'_, Self>) {
        if let Role::Candidate(scout) = &self.role {
            // Phase 1 in progress: resend the prepare to acceptors that have not answered.
            let (ballot, from_slot) = (scout.ballot, scout.from_slot);
            let silent: Vec<NodeId> =
                self.nodes.iter().copied().filter(|n| !scout.promises.contains_key(n)).collect();
            io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
            for to in silent {
                self.send(io, to, Message::Prepare { ballot, from_slot });
            }
            return;
        }
        let Role::Leader(ls) = &self.role else { return };
        let ballot = ls.ballot;
        let resend: Vec<(u64, Value<S>, Vec<NodeId>)> = ls
            .proposals
            .iter()
            .take(RETRANSMIT_PER_TICK)
            .map(|(&slot, p)| {
                let missing = self.nodes.iter().copied().filter(|n| !p.accepted_by.contains(n)).collect();
                (slot, p.value.clone(), missing)
            })
            .collect();
        // The slot after our applied prefix is neither ours to propose nor learned: it was chosen
        // before our ballot (a compacted slot, or a lost catch-up answer). Ask the others in turn.
        let next = self.applied + 1;
        let missing_slot = !ls.proposals.contains_key(&next) && ls.next_slot > next;
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.broadcast_heartbeat(io);
        if missing_slot {
            let others: Vec<NodeId> = self.nodes.iter().copied().filter(|&n| n != self.id).collect();
            if !others.is_empty() {
                self.catch_up_turn = self.catch_up_turn.wrapping_add(1);
                let peer = others[self.catch_up_turn % others.len()];
                self.ask_catch_up(io, peer, true);
            }
        }
        for (slot, value, missing) in resend {
            for to in missing {
                self.send(io, to, Message::Accept { ballot, slot, value: value.clone() });
            }
        }
    }

    /// A heartbeat from the leader of `ballot`.
    pub(crate) fn handle_heartbeat(&mut self, io: &mut Io<'_, Self>, ballot: Ballot, decided_upto: u64) {
        self.note_ballot(ballot);
        if ballot < self.promised {
            // A deposed leader: tell it.
            let promised = self.promised;
            return self.send(io, ballot.leader, Message::Nack { ballot, promised });
        }
        self.step_down_below(io, ballot);
        if self.is_leader() {
            return;
        }
        if matches!(self.role, Role::Candidate(_)) && !self.config.backoff {
            // Without back-off a candidate does not defer to a leader it hears.
            return;
        }
        if !matches!(self.role, Role::Follower) {
            return;
        }
        if self.leader != Some(ballot.leader) {
            self.leader = Some(ballot.leader);
            if io.tracing() {
                io.event("leader", json!({ "leader": ballot.leader.0, "ballot": ballot.to_string() }));
            }
        }
        self.failed_attempts = 0;
        self.arm_leader_timeout(io);
        if decided_upto > self.applied {
            self.ask_catch_up(io, ballot.leader, false);
        }
    }
}

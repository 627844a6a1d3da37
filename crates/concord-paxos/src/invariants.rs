//! Paxos's safety properties, checked across a whole cluster after every step.
//!
//! *Paxos Made Simple* §2.1 states safety as: only a proposed value may be chosen, **only a single
//! value is chosen**, and a process never learns a value unless it actually has been chosen. The
//! proof rests on P1a and P2b. The [`SafetyMonitor`] checks, per slot, for the whole run:
//!
//! * **At most one value chosen per slot, and a chosen value never changes**: every node that
//!   learns a slot (by counting a phase-2 quorum, from a `decide`, or by catching up) learns the
//!   same value – across nodes, across time, across restarts.
//! * **P2b** ("if a proposal with value v is chosen, every higher-numbered proposal issued by any
//!   proposer has value v"): once a slot is learned as chosen in ballot `b`, no acceptor ever
//!   accepts a different value there in a ballot above `b` – checked whichever of the two is seen
//!   first. This catches a broken leader as soon as its proposal is accepted once, before a second
//!   value is actually chosen.
//! * **One value per ballot and slot**: a ballot's leader proposes at most one value per slot.
//! * **P1a**: an acceptor never accepts a ballot below its promise, and its promise never
//!   decreases while it runs. (Across a crash, the promise is whatever its disk kept: the monitor
//!   cannot tell a promise that was sent from one that was not, so it relies on the checks above
//!   to catch a forgotten one – the `promise_before_sync` mutation.)
//!
//! "Chosen" is what a learner learned: a learner counts acceptances that are on disk (`node.rs`,
//! `broadcast`), so a value it learned stays chosen whatever crashes follow. The checks are
//! incremental: each node keeps a journal of its recent acceptances and learned slots, and the
//! monitor reads only what is new since it last looked.

use crate::ballot::Ballot;
use crate::node::PaxosNode;
use concord_core::{NodeId, StateMachine};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
struct View {
    accepts_seen: u64,
    learns_seen: u64,
    promised: Ballot,
}

/// Every safety property above, over a whole run.
#[derive(Clone, Debug, Default)]
pub struct SafetyMonitor {
    views: BTreeMap<NodeId, View>,
    /// slot → (ballot, value hash, first learner) of the value learned as chosen.
    chosen: BTreeMap<u64, (Ballot, u64, NodeId)>,
    /// slot → ballot → (value hash, first acceptor) of every value accepted.
    proposals: BTreeMap<u64, BTreeMap<Ballot, (u64, NodeId)>>,
}

impl SafetyMonitor {
    /// Check the cluster (`None`: a crashed node); the first violation found is returned.
    pub fn check<S: StateMachine>(
        &mut self,
        nodes: &[(NodeId, Option<&PaxosNode<S>>)],
    ) -> Result<(), InvariantViolation> {
        for &(id, node) in nodes {
            let Some(n) = node else {
                self.views.remove(&id); // a restarted node starts new journals
                continue;
            };
            self.check_node(id, n)?;
        }
        Ok(())
    }

    fn check_node<S: StateMachine>(
        &mut self,
        id: NodeId,
        n: &PaxosNode<S>,
    ) -> Result<(), InvariantViolation> {
        let mut view = self.views.remove(&id).unwrap_or_default();
        if n.promised() < view.promised {
            return Err(InvariantViolation::PromiseDecreased {
                node: id,
                from: view.promised,
                to: n.promised(),
            });
        }
        view.promised = n.promised();
        let accepts = n.accept_journal();
        if accepts.total() != view.accepts_seen {
            let new = accepts.since(view.accepts_seen).ok_or(InvariantViolation::LostTrack { node: id })?;
            for a in new {
                if a.ballot < a.promised_before {
                    return Err(InvariantViolation::AcceptBelowPromise {
                        node: id,
                        slot: a.slot,
                        ballot: a.ballot,
                        promised: a.promised_before,
                    });
                }
                self.record_proposal(id, a.slot, a.ballot, a.value_hash)?;
            }
            view.accepts_seen = accepts.total();
        }
        let learns = n.learn_journal();
        if learns.total() != view.learns_seen {
            let new = learns.since(view.learns_seen).ok_or(InvariantViolation::LostTrack { node: id })?;
            for l in new {
                self.record_chosen(id, l.slot, l.ballot, l.value_hash)?;
            }
            view.learns_seen = learns.total();
        }
        self.views.insert(id, view);
        Ok(())
    }

    fn record_proposal(
        &mut self,
        node: NodeId,
        slot: u64,
        ballot: Ballot,
        hash: u64,
    ) -> Result<(), InvariantViolation> {
        let by_ballot = self.proposals.entry(slot).or_default();
        match by_ballot.get(&ballot) {
            Some(&(h, first)) if h != hash => {
                return Err(InvariantViolation::TwoValuesInOneBallot { slot, ballot, first, second: node })
            }
            Some(_) => {}
            None => {
                by_ballot.insert(ballot, (hash, node));
            }
        }
        if let Some(&(chosen_in, h, _)) = self.chosen.get(&slot) {
            if ballot > chosen_in && hash != h {
                return Err(InvariantViolation::P2b { slot, chosen_in, ballot, acceptor: node });
            }
        }
        Ok(())
    }

    fn record_chosen(
        &mut self,
        node: NodeId,
        slot: u64,
        ballot: Ballot,
        hash: u64,
    ) -> Result<(), InvariantViolation> {
        match self.chosen.get(&slot) {
            Some(&(_, h, first)) if h != hash => {
                return Err(InvariantViolation::TwoValuesChosen { slot, first, second: node })
            }
            Some(&(b, _, _)) if b <= ballot => return Ok(()),
            _ => {}
        }
        // Keep the lowest ballot known to have chosen the value: P2b holds from there on.
        self.chosen.insert(slot, (ballot, hash, node));
        if let Some(by_ballot) = self.proposals.get(&slot) {
            let later = by_ballot.range(ballot..).find(|(&b, &(h, _))| b > ballot && h != hash);
            if let Some((&b, &(_, acceptor))) = later {
                return Err(InvariantViolation::P2b { slot, chosen_in: ballot, ballot: b, acceptor });
            }
        }
        Ok(())
    }

    /// Slots learned as chosen so far (for tests).
    pub fn chosen_slots(&self) -> usize {
        self.chosen.len()
    }
}

/// A broken safety property, as [`SafetyMonitor::check`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    #[error(
        "at most one value per slot: {first} and {second} learned different values chosen in slot {slot}"
    )]
    TwoValuesChosen { slot: u64, first: NodeId, second: NodeId },
    #[error("P2b: slot {slot} was chosen in ballot {chosen_in}, but {acceptor} accepted a different value there in the higher ballot {ballot}")]
    P2b { slot: u64, chosen_in: Ballot, ballot: Ballot, acceptor: NodeId },
    #[error(
        "ballot {ballot} proposed two values in slot {slot} ({first} and {second} accepted different ones)"
    )]
    TwoValuesInOneBallot { slot: u64, ballot: Ballot, first: NodeId, second: NodeId },
    #[error("P1a: {node} accepted ballot {ballot} in slot {slot} below its promise {promised}")]
    AcceptBelowPromise { node: NodeId, slot: u64, ballot: Ballot, promised: Ballot },
    #[error("{node}'s promise decreased from {from} to {to} without a restart")]
    PromiseDecreased { node: NodeId, from: Ballot, to: Ballot },
    #[error("{node}: more than a journal's worth of acceptances or learned slots in one step")]
    LostTrack { node: NodeId },
}

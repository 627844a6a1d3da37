//! Single-decree Paxos: choosing one value (*Paxos Made Simple*, §2).
//!
//! The three roles of §2.1, each a small value with no I/O, so the algorithm can be read – and
//! tested – on its own, before Multi-Paxos repeats it per log slot:
//!
//! * [`Acceptor`] (§2.2, P1 and P2): promises not to accept ballots below the highest `prepare` it
//!   answered, and accepts `(ballot, value)` unless it promised something higher.
//! * [`Proposer`] (§2.2, "the algorithm"): phase 1 sends `prepare(b)` and waits for promises from a
//!   phase-1 quorum; it then proposes the value of the highest-numbered proposal those promises
//!   report ([`highest_accepted`], P2c), or its own value if there is none; phase 2 sends
//!   `accept(b, v)`.
//! * [`Learner`] (§2.3): a value is *chosen* once a phase-2 quorum of acceptors accepted it in
//!   the same ballot.
//!
//! Quorums are counts (`q1`, `q2`). Lamport uses majorities for both; Howard, Malkhi and
//! Spiegelman's *Flexible Paxos* (2016) shows that safety only needs every phase-1 quorum to meet
//! every phase-2 quorum: `q1 + q2 > n`. [`tests`] show both the rule and what breaks without it.
//!
//! The Multi-Paxos node (`acceptor.rs`, `leader.rs`) keeps one promise for all slots and one
//! accepted value per slot, and uses [`highest_accepted`] for its adoption rule, the same function
//! these tests exercise.

use crate::ballot::Ballot;
use concord_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// P2c's choice: among the accepted proposals reported by a phase-1 quorum, the one with the
/// highest ballot (`None` if no acceptor of the quorum accepted anything).
pub fn highest_accepted<'a, V: 'a>(
    reports: impl IntoIterator<Item = Option<&'a (Ballot, V)>>,
) -> Option<&'a (Ballot, V)> {
    reports.into_iter().flatten().max_by_key(|(b, _)| *b)
}

/// An acceptor of one decree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptor<V> {
    /// The highest ballot this acceptor promised (phase 1b).
    pub promised: Ballot,
    /// The proposal it accepted last (the one with the highest ballot: ballots only grow).
    pub accepted: Option<(Ballot, V)>,
}

impl<V> Default for Acceptor<V> {
    fn default() -> Self {
        Acceptor { promised: Ballot::ZERO, accepted: None }
    }
}

/// An acceptor's answer to `prepare(b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrepareReply<V> {
    /// A promise never to accept below `b`, with the proposal accepted so far.
    Promise { accepted: Option<(Ballot, V)> },
    /// It already promised a higher ballot.
    Reject { promised: Ballot },
}

impl<V: Clone> Acceptor<V> {
    /// Phase 1b. A repeated `prepare` of the promised ballot is answered again (messages may be
    /// duplicated): promising `b` twice promises nothing new.
    pub fn prepare(&mut self, b: Ballot) -> PrepareReply<V> {
        if b < self.promised {
            return PrepareReply::Reject { promised: self.promised };
        }
        self.promised = b;
        PrepareReply::Promise { accepted: self.accepted.clone() }
    }

    /// Phase 2b (P1a: "an acceptor can accept a proposal numbered n iff it has not responded to a
    /// prepare request having a number greater than n"). Accepting `b` also promises `b`.
    pub fn accept(&mut self, b: Ballot, value: V) -> Result<(), Ballot> {
        if b < self.promised {
            return Err(self.promised);
        }
        self.promised = b;
        self.accepted = Some((b, value));
        Ok(())
    }
}

/// A proposer running one ballot.
#[derive(Clone, Debug)]
pub struct Proposer<V> {
    pub ballot: Ballot,
    q1: usize,
    /// Its own value, proposed if no acceptor of the quorum accepted anything.
    own: V,
    promises: BTreeMap<NodeId, Option<(Ballot, V)>>,
    /// Phase 2's value, once phase 1 completed.
    pub proposal: Option<V>,
}

impl<V: Clone> Proposer<V> {
    pub fn new(ballot: Ballot, q1: usize, own: V) -> Self {
        Proposer { ballot, q1, own, promises: BTreeMap::new(), proposal: None }
    }

    /// Count a promise. Once `q1` acceptors promised, returns the value to send in phase 2 (once).
    pub fn on_promise(&mut self, from: NodeId, accepted: Option<(Ballot, V)>) -> Option<V> {
        if self.proposal.is_some() {
            return None;
        }
        self.promises.insert(from, accepted);
        if self.promises.len() < self.q1 {
            return None;
        }
        let value = highest_accepted(self.promises.values().map(Option::as_ref))
            .map_or_else(|| self.own.clone(), |(_, v)| v.clone());
        self.proposal = Some(value.clone());
        Some(value)
    }
}

/// A learner of one decree.
#[derive(Clone, Debug)]
pub struct Learner<V> {
    q2: usize,
    /// Who accepted what, per ballot.
    votes: BTreeMap<Ballot, (V, BTreeSet<NodeId>)>,
    pub chosen: Option<V>,
}

impl<V: Clone> Learner<V> {
    pub fn new(q2: usize) -> Self {
        Learner { q2, votes: BTreeMap::new(), chosen: None }
    }

    /// An acceptor reports that it accepted `(b, value)`. Returns the chosen value once `q2`
    /// acceptors accepted in one ballot.
    pub fn on_accepted(&mut self, from: NodeId, b: Ballot, value: V) -> Option<&V> {
        let (_, who) = self.votes.entry(b).or_insert_with(|| (value, BTreeSet::new()));
        who.insert(from);
        if who.len() >= self.q2 && self.chosen.is_none() {
            self.chosen = Some(self.votes[&b].0.clone());
        }
        self.chosen.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u64, leader: u32) -> Ballot {
        Ballot::new(round, NodeId(leader))
    }

    /// Run a proposer against `acceptors` (by index), phase 1 then phase 2; returns the value
    /// chosen, as a learner saw it, if a phase-2 quorum accepted.
    fn run(
        acceptors: &mut [Acceptor<&'static str>],
        reach: &[usize],
        ballot: Ballot,
        own: &'static str,
        (q1, q2): (usize, usize),
    ) -> Option<&'static str> {
        let mut p = Proposer::new(ballot, q1, own);
        let mut value = None;
        for &i in reach {
            if let PrepareReply::Promise { accepted } = acceptors[i].prepare(ballot) {
                value = value.or(p.on_promise(NodeId(i as u32 + 1), accepted));
            }
        }
        let value = value?;
        let mut l = Learner::new(q2);
        let mut chosen = None;
        for &i in reach {
            if acceptors[i].accept(ballot, value).is_ok() {
                chosen = l.on_accepted(NodeId(i as u32 + 1), ballot, value).copied();
            }
        }
        chosen
    }

    /// §2.2 P1: an acceptor that promised `b` refuses lower ballots, in both phases.
    #[test]
    fn p1a_an_acceptor_refuses_ballots_below_its_promise() {
        let mut a = Acceptor::default();
        assert_eq!(a.prepare(b(2, 1)), PrepareReply::Promise { accepted: None });
        assert_eq!(a.prepare(b(1, 3)), PrepareReply::Reject { promised: b(2, 1) });
        assert_eq!(a.accept(b(1, 3), "x"), Err(b(2, 1)));
        assert_eq!(a.accept(b(2, 1), "y"), Ok(()));
        assert_eq!(a.prepare(b(3, 2)), PrepareReply::Promise { accepted: Some((b(2, 1), "y")) });
        // A duplicated prepare of the promised ballot is answered again.
        assert!(matches!(a.prepare(b(3, 2)), PrepareReply::Promise { .. }));
    }

    /// §2.2 P2c: a proposer proposes the value of the highest-numbered proposal its quorum
    /// accepted, not its own.
    #[test]
    fn p2c_a_proposer_adopts_the_highest_accepted_value() {
        let reports = [None, Some((b(1, 1), "old")), Some((b(4, 2), "newer"))];
        assert_eq!(highest_accepted(reports.iter().map(Option::as_ref)), Some(&(b(4, 2), "newer")));
        let mut p = Proposer::new(b(5, 3), 2, "mine");
        assert_eq!(p.on_promise(NodeId(1), Some((b(1, 1), "old"))), None);
        assert_eq!(p.on_promise(NodeId(2), Some((b(4, 2), "newer"))), Some("newer"));
        // Only once.
        assert_eq!(p.on_promise(NodeId(3), None), None);
        let mut fresh = Proposer::new(b(5, 3), 2, "mine");
        fresh.on_promise(NodeId(1), None);
        assert_eq!(fresh.on_promise(NodeId(2), None), Some("mine"));
    }

    /// §2.3: a value is chosen when a quorum accepted it in one ballot; acceptances in different
    /// ballots do not add up.
    #[test]
    fn a_learner_needs_a_quorum_in_one_ballot() {
        let mut l = Learner::new(2);
        assert_eq!(l.on_accepted(NodeId(1), b(1, 1), "v"), None);
        assert_eq!(l.on_accepted(NodeId(2), b(2, 2), "v"), None);
        assert_eq!(l.on_accepted(NodeId(1), b(1, 1), "v"), None, "a duplicate is not a second vote");
        assert_eq!(l.on_accepted(NodeId(3), b(2, 2), "v"), Some(&"v"));
    }

    /// §2.2: once a value is chosen, every later ballot that completes chooses the same value,
    /// whatever its proposer wanted – with majorities, any two quorums meet.
    #[test]
    fn once_chosen_a_value_stays_chosen() {
        let mut acceptors = vec![Acceptor::default(); 5];
        assert_eq!(run(&mut acceptors, &[0, 1, 2], b(1, 1), "a", (3, 3)), Some("a"));
        assert_eq!(run(&mut acceptors, &[2, 3, 4], b(2, 2), "b", (3, 3)), Some("a"));
        assert_eq!(run(&mut acceptors, &[0, 3, 4], b(3, 3), "c", (3, 3)), Some("a"));
        // A proposer with an old ballot can no longer get anything accepted by those acceptors.
        assert_eq!(run(&mut acceptors, &[0, 3, 4], b(2, 1), "d", (3, 3)), None);
    }

    /// Flexible Paxos: q1 = 4, q2 = 2 of 5 is safe (4 + 2 > 5): every phase-1 quorum meets every
    /// phase-2 quorum, so a later ballot still finds the chosen value.
    #[test]
    fn flexible_quorums_q1_plus_q2_above_n_stay_safe() {
        let mut acceptors = vec![Acceptor::default(); 5];
        assert_eq!(run(&mut acceptors, &[0, 1], b(1, 1), "a", (4, 2)), None, "phase 1 needs 4");
        assert_eq!(run(&mut acceptors, &[0, 1, 2, 3], b(2, 1), "a", (4, 2)), Some("a"));
        assert_eq!(run(&mut acceptors, &[1, 2, 3, 4], b(3, 2), "b", (4, 2)), Some("a"));
    }

    /// Flexible Paxos's condition is necessary: with q1 = q2 = 2 of 5 (2 + 2 ≤ 5), two disjoint
    /// quorums choose two different values.
    #[test]
    fn flexible_quorums_q1_plus_q2_at_most_n_choose_two_values() {
        let mut acceptors = vec![Acceptor::default(); 5];
        assert_eq!(run(&mut acceptors, &[0, 1], b(1, 1), "a", (2, 2)), Some("a"));
        assert_eq!(run(&mut acceptors, &[2, 3], b(2, 2), "b", (2, 2)), Some("b"));
    }
}

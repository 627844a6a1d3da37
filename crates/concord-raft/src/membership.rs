//! Cluster membership: voters, learners, and how a change travels through the log.
//!
//! **One server at a time** (dissertation §4.1), not joint consensus (§4.3). Each change adds or
//! removes at most one *voter*, so any majority of the old voter set and any majority of the new one
//! overlap: no moment exists where two disjoint majorities could each elect a leader. This keeps the
//! code to a single voter set and a single quorum rule, which is why we chose it: joint consensus
//! is only needed for arbitrary multi-server changes, and a newcomer can verify the overlap argument
//! in one line.
//!
//! Rules the code follows, each from the dissertation:
//! * a node uses the **latest membership in its log, committed or not** (§4.1) – so a truncated
//!   config entry must roll the membership back ([`ConfigHistory::truncate_from`]);
//! * a leader accepts a new change only when the previous one is committed, and only after it has
//!   committed an entry of its own term (the fix to the single-server bug reported on raft-dev in
//!   2015, see §4.1 "Unfortunately…" errata);
//! * new servers join as **learners** (§4.2.1): they receive the log but neither vote nor count for
//!   commitment, and are promoted only once caught up, so adding a server never stalls commits;
//! * a leader that removes itself keeps leading (without counting itself) until the change is
//!   committed, then steps down (§4.2.2);
//! * disruption by removed servers is prevented by pre-vote and leader stickiness (§4.2.3).

use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Who is in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership { voters: voters.into_iter().collect(), learners: BTreeSet::new() }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Votes (or acknowledgements) needed from voters: a strict majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member other than `me`, in id order (voters and learners).
    pub fn others(&self, me: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied().filter(move |&id| id != me)
    }

    /// Whether the voters in `yes` form a majority.
    pub fn has_quorum(&self, yes: impl IntoIterator<Item = NodeId>) -> bool {
        yes.into_iter().filter(|id| self.voters.contains(id)).collect::<BTreeSet<_>>().len() >= self.quorum()
    }

    /// The largest value that a majority of voters have reached, given each voter's value
    /// (the "quorum index": sort descending and take the quorum-th).
    pub fn quorum_value(&self, mut value_of: impl FnMut(NodeId) -> u64) -> u64 {
        // On the stack for any cluster of usual size: a leader asks this for every read and
        // every acknowledgement.
        let mut small = [0u64; 16];
        let mut large = Vec::new();
        let values: &mut [u64] = if self.voters.len() <= small.len() {
            for (slot, &id) in small.iter_mut().zip(&self.voters) {
                *slot = value_of(id);
            }
            &mut small[..self.voters.len()]
        } else {
            large.extend(self.voters.iter().map(|&id| value_of(id)));
            &mut large
        };
        if values.is_empty() {
            return 0;
        }
        values.sort_unstable_by(|a, b| b.cmp(a));
        values[self.quorum() - 1]
    }

    /// The membership after `change`, or why it is not allowed.
    pub fn apply_change(&self, change: &MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match *change {
            MembershipChange::AddLearner(id) => {
                if self.is_member(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                next.learners.insert(id);
            }
            MembershipChange::Promote(id) => {
                if !next.learners.remove(&id) {
                    return Err(MembershipError::NotALearner(id));
                }
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if !next.voters.remove(&id) && !next.learners.remove(&id) {
                    return Err(MembershipError::NotAMember(id));
                }
                if next.voters.is_empty() {
                    return Err(MembershipError::LastVoter);
                }
            }
        }
        debug_assert!(
            next.voters.symmetric_difference(&self.voters).count() <= 1,
            "single-server changes only"
        );
        Ok(next)
    }
}

/// Why a membership change is not allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("{0} is already a member")]
    AlreadyMember(NodeId),
    #[error("{0} is not a learner")]
    NotALearner(NodeId),
    #[error("{0} is not a member")]
    NotAMember(NodeId),
    #[error("cannot remove the last voter")]
    LastVoter,
}

/// A single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    AddLearner(NodeId),
    Promote(NodeId),
    Remove(NodeId),
}

/// The memberships found in the log, newest last, above a base (the snapshot's, or the initial
/// configuration). The newest one is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigHistory {
    /// `(log index, membership)`, strictly increasing indexes; the first is the base.
    configs: Vec<(u64, Membership)>,
}

impl ConfigHistory {
    pub fn new(base_index: u64, base: Membership) -> Self {
        ConfigHistory { configs: vec![(base_index, base)] }
    }

    /// The membership in force (the latest in the log, committed or not).
    pub fn current(&self) -> &Membership {
        &self.configs.last().expect("config history is never empty").1
    }

    /// The log index of the latest membership entry (the base's index if none).
    pub fn current_index(&self) -> u64 {
        self.configs.last().expect("config history is never empty").0
    }

    /// The membership in force at log index `index`.
    pub fn at(&self, index: u64) -> &Membership {
        let pos = self.configs.iter().rposition(|(i, _)| *i <= index).unwrap_or(0);
        &self.configs[pos].1
    }

    /// A membership entry was appended at `index`.
    pub fn push(&mut self, index: u64, membership: Membership) {
        assert!(index > self.current_index(), "config entries are appended in log order");
        self.configs.push((index, membership));
    }

    /// The log was truncated from `index` on: forget the memberships it carried.
    pub fn truncate_from(&mut self, index: u64) {
        while self.configs.len() > 1 && self.configs.last().expect("non-empty").0 >= index {
            self.configs.pop();
        }
    }

    /// The log was compacted up to `index`: the membership at `index` becomes the base.
    pub fn compact_to(&mut self, index: u64) {
        let base = self.at(index).clone();
        self.configs.retain(|(i, _)| *i > index);
        self.configs.insert(0, (index, base));
    }
}

impl<S: concord_core::StateMachine> crate::node::RaftNode<S> {
    /// A leader that removed itself steps down once the removal is committed (§4.2.2). It first
    /// tells the most up-to-date voter to campaign at once, so the cluster is not leaderless for a
    /// whole election timeout.
    pub(crate) fn maybe_step_down_after_removal(&mut self, io: &mut concord_core::Io<'_, Self>) {
        if !self.is_leader()
            || self.membership().is_voter(self.id)
            || self.commit_index < self.configs.current_index()
        {
            return;
        }
        let last = self.log.last_index();
        let successor = match &self.role {
            crate::node::Role::Leader(ls) => ls
                .progress
                .iter()
                .filter(|(id, p)| self.membership().is_voter(**id) && p.match_index == last)
                .map(|(&id, _)| id)
                .next(),
            _ => None,
        };
        io.event("step-down", serde_json::json!({ "reason": "removed", "term": self.term }));
        if let Some(successor) = successor {
            let term = self.term;
            self.send(io, successor, crate::message::Message::TimeoutNow { term });
        }
        self.become_follower(io, self.term, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn quorum_value_is_the_majority_th_largest() {
        let m = Membership::new(ids(&[1, 2, 3, 4, 5]));
        let values = [(1, 9), (2, 7), (3, 5), (4, 3), (5, 1)];
        assert_eq!(m.quorum_value(|id| values.iter().find(|v| v.0 == id.0).unwrap().1), 5);
        assert!(m.has_quorum(ids(&[1, 2, 3, 9])));
        assert!(!m.has_quorum(ids(&[1, 2, 9])));
    }

    #[test]
    fn changes_are_single_server_and_validated() {
        let m = Membership::new(ids(&[1]));
        let m2 = m.apply_change(&MembershipChange::AddLearner(NodeId(2))).unwrap();
        assert!(m2.apply_change(&MembershipChange::AddLearner(NodeId(2))).is_err());
        let m3 = m2.apply_change(&MembershipChange::Promote(NodeId(2))).unwrap();
        assert_eq!(m3.voters.len(), 2);
        assert_eq!(m.apply_change(&MembershipChange::Remove(NodeId(1))), Err(MembershipError::LastVoter));
    }

    #[test]
    fn history_rolls_back_on_truncation_and_rebases_on_compaction() {
        let mut h = ConfigHistory::new(0, Membership::new(ids(&[1])));
        h.push(5, Membership::new(ids(&[1, 2])));
        h.push(9, Membership::new(ids(&[1, 2, 3])));
        assert_eq!(h.at(6).voters.len(), 2);
        h.truncate_from(9);
        assert_eq!(h.current().voters.len(), 2);
        h.compact_to(7);
        assert_eq!(h.current_index(), 7);
        assert_eq!(h.current().voters.len(), 2);
        h.truncate_from(1);
        assert_eq!(h.current().voters.len(), 2, "the base survives truncation");
    }
}

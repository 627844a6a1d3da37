//! Ballots (Lamport's "proposal numbers", van Renesse's "ballot numbers").
//!
//! *Paxos Made Simple* §2.2 asks that proposals be numbered from a totally ordered set and that no
//! two proposers ever use the same number. The usual way, and PMMC's (§3, "ballot numbers are
//! pairs"), is a pair `(round, leader)` ordered lexicographically: each node draws from its own
//! disjoint set, and a node that wants to beat ballot `b` picks `(b.round + 1, me)`.

use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A ballot: `round` first, ties broken by the proposer's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub leader: NodeId,
}

impl Ballot {
    /// Lower than every ballot a proposer uses (`round` 0 is never used).
    pub const ZERO: Ballot = Ballot { round: 0, leader: NodeId(0) };

    pub fn new(round: u64, leader: NodeId) -> Ballot {
        Ballot { round, leader }
    }

    /// The lowest ballot of `me` above `beat`.
    pub fn next_after(beat: Ballot, me: NodeId) -> Ballot {
        Ballot { round: beat.round + 1, leader: me }
    }
}

impl Default for Ballot {
    fn default() -> Self {
        Ballot::ZERO
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.leader.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_leader_and_never_collide() {
        let a = Ballot::new(1, NodeId(3));
        let b = Ballot::new(2, NodeId(1));
        assert!(Ballot::ZERO < a && a < b);
        assert!(Ballot::new(2, NodeId(1)) < Ballot::new(2, NodeId(2)));
        let next = Ballot::next_after(b, NodeId(3));
        assert!(next > b && next.leader == NodeId(3));
        assert_eq!(b.to_string(), "2.1");
    }
}

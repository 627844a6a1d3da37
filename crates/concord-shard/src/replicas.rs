//! Replica moves: a shard's group gains a replica on one node and loses one on another, while
//! clients write – sans-IO, driven by the mover on the metadata leader.
//!
//! A shard's replica set lives in two places: the shard map (the cluster's *decision*: which
//! nodes must run the group) and the group's own Raft membership (who actually votes and counts
//! for commitment). The map leads; the group's membership follows it one single-server change at
//! a time (`concord_raft::membership`). Each step is committed in the metadata group first, then
//! carried out in the group, then – where the map must learn a fact – recorded in the map again:
//!
//! 1. **Add a learner** (map): `AddLearner{shard, node}`. The node sees its applied map name it
//!    and creates the group *empty*, as a non-voter; it remembers the map epoch it did so at.
//! 2. **Join the group** (group): the mover asks the group's leader to `AddLearner(node)`. The
//!    leader sends the learner a snapshot and the log after it; the learner votes in nothing and
//!    counts for no commit, so adding it never stalls writes.
//! 3. **Promote** (group, then map): the mover asks the leader to `Promote(node)`. The group's Raft
//!    refuses unless the learner's log matches the leader's commit index (caught up); once the
//!    promotion is *committed* in the group, the map records `Promote{shard, node}`. So every voter
//!    in the map is a caught-up voter of the group.
//! 4. **Remove the old replica** (map): the rebalancer, seeing more voters than the replication
//!    factor, commits `RemoveReplica{shard, old}`; the old replica becomes *leaving* in the map.
//! 5. **Leave the group** (group): the mover asks the leader to `Remove(old)` (a leader removing
//!    itself steps down once the change commits, and hands over to an up-to-date voter).
//! 6. **Forget it** (map): once the removal is committed in the group, the map commits
//!    `ReplicaGone{shard, old}`. Only now – the map no longer names it at an epoch at least the one
//!    it created the group at – does the old node drop the group and delete its durable state.
//!
//! **Giving up a learner.** A learner whose node stays down never catches up, so the group never
//! promotes it – and while it is in the map no other replica move may start (one at a time), which
//! would block a decommission or the rebalancer for good. The metadata leader therefore gives up a
//! learner that was not promoted within the node's *learner patience* (`ShardedConfig::
//! learner_patience`, timed by the leader from when it first saw the learner; a new leader starts
//! the clock again): [`abandon`] commits `RemoveReplica` for it, and steps 5–6 remove it from the
//! group and the map like any leaving replica. It is safe for the same reason removing any
//! non-voter is: the learner counts for no quorum, and if the group promoted it meanwhile, it is a
//! group voter the map does not count, removed one single-server change at a time.
//!
//! Nothing is remembered between steps but the map and the group's membership: the mover asks the
//! group's leader for its membership ([`GroupStatus`]) and [`next`] says what to do, so a mover
//! that crashes or loses leadership just asks again. A membership that is not committed yet is
//! waited for, never acted on (it could still be rolled back).
//!
//! **Why it is safe.** (a) *Quorum overlap*: each group change adds or removes one voter, so any
//! majority of the old voter set meets any majority of the new one (Raft §4.1) – two leaders can
//! never be elected, and every committed entry survives each change. (b) *Never fewer than the
//! replication factor of caught-up voters*: the map's voters are always a subset of the group's
//! committed voters (a promotion reaches the map only after the group committed it, and a voter
//! leaves the group only after the map removed it), a voter enters the group only caught up, and
//! the planner removes a voter only while the map has more than the factor – so after every
//! committed step the group has at least the factor of voters holding every committed entry.
//! (c) *No data dropped early*: a node deletes a group's state only when the map (at an epoch not
//! older than the group's creation here) says it is gone, which happens only after the group's
//! Raft stopped counting it.

use crate::map::{Change, Proposal, ShardId, ShardMap};
use concord_core::NodeId;
use concord_raft::{AdminRequest, Membership};
use serde::{Deserialize, Serialize};

/// What a group's leader says about the group, for the mover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub leader: NodeId,
    /// The membership in force at the leader (the latest in its log).
    pub membership: Membership,
    /// Whether that membership is committed (no membership entry above the commit index).
    pub committed: bool,
}

/// The next step of a replica move in `shard`, from the map and the group's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaTask {
    /// A membership or leadership request to the shard's group.
    Group { shard: ShardId, request: AdminRequest },
    /// A change to the map.
    Map(Proposal),
}

/// A deliberate bug in replica moves, for showing that the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicaBug {
    #[default]
    None,
    /// The map records a learner as a voter as soon as it joined the group – before the group's
    /// Raft promoted it, i.e. before it caught up. The planner then removes an old voter, and the
    /// group is left with fewer caught-up voters than the replication factor.
    PromoteBeforeCatchUp,
}

/// What the mover does next for `shard` (`None`: nothing, or wait for the group to commit).
///
/// Removals come first (a leaving replica, or a member the map does not know – e.g. a learner
/// added by a request delivered twice), then learners: join, promote, record the promotion.
/// With nothing to do, a leader not on `voters[0]` hands leadership there when `transfer` allows.
pub fn next(
    map: &ShardMap,
    shard: ShardId,
    status: &GroupStatus,
    bug: ReplicaBug,
    transfer: bool,
) -> Option<ReplicaTask> {
    let s = map.shard(shard)?;
    if !status.committed {
        return None;
    }
    let members = &status.membership;
    let group = |request| Some(ReplicaTask::Group { shard, request });
    let record = |change| Some(ReplicaTask::Map(Proposal { if_epoch: Some(map.epoch()), change }));
    // The first leaving replica, then the first learner: one replica move at a time.
    if let Some(&node) = s.leaving.first() {
        if members.is_member(node) {
            return group(AdminRequest::Remove(node));
        }
        return record(Change::ReplicaGone { shard, node });
    }
    let stray = members.voters.iter().chain(&members.learners).find(|&&n| !s.hosts(n));
    if let Some(&node) = stray {
        // Never a map voter: removing it keeps the map's voters within the group's.
        return group(AdminRequest::Remove(node));
    }
    if let Some(&node) = s.learners.first() {
        if members.is_voter(node) {
            return record(Change::Promote { shard, node });
        }
        if !members.is_member(node) {
            return group(AdminRequest::AddLearner(node));
        }
        if bug == ReplicaBug::PromoteBeforeCatchUp {
            return record(Change::Promote { shard, node });
        }
        return group(AdminRequest::Promote(node));
    }
    let preferred = *s.voters.first()?;
    if transfer && status.leader != preferred && members.is_voter(preferred) {
        return group(AdminRequest::TransferLeadership(preferred));
    }
    None
}

/// Give up `learner` of `shard`, which was not promoted in time (see the module docs): the map
/// change that makes it leaving, or `None` when there is nothing to give up – it is no longer a
/// learner in the map, the group's membership is not committed, or the group already promoted it
/// (then [`next`] records the promotion instead).
pub fn abandon(map: &ShardMap, shard: ShardId, status: &GroupStatus, learner: NodeId) -> Option<ReplicaTask> {
    let s = map.shard(shard)?;
    if !status.committed || !s.learners.contains(&learner) || status.membership.is_voter(learner) {
        return None;
    }
    let change = Change::RemoveReplica { shard, node: learner };
    Some(ReplicaTask::Map(Proposal { if_epoch: Some(map.epoch()), change }))
}

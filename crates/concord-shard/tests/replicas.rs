//! Replica moves: the map's side (learner → voter → leaving → gone) and the mover's plan
//! ([`replicas::next`]) that makes a group's Raft membership follow the map one step at a time.

use concord_core::NodeId;
use concord_raft::{AdminRequest, Membership};
use concord_shard::replicas::{self, GroupStatus, ReplicaBug, ReplicaTask};
use concord_shard::{drain_step, next_step, Change, MapError, Proposal, ShardId, ShardMap};

fn n(ids: &[u32]) -> Vec<NodeId> {
    ids.iter().map(|&i| NodeId(i)).collect()
}

fn now(change: Change) -> Proposal {
    Proposal { if_epoch: None, change }
}

const S: ShardId = ShardId(1);

/// Shard 1 on nodes 1-3 (and shard 2 on 2-4), node 4 in the placement.
fn map() -> ShardMap {
    let mut map = ShardMap::default();
    map.apply(&now(Change::Bootstrap { shards: vec![n(&[1, 2, 3]), n(&[2, 3, 4])] })).unwrap();
    map
}

fn status(leader: u32, voters: &[u32], learners: &[u32], committed: bool) -> GroupStatus {
    let mut membership = Membership::new(n(voters));
    membership.learners = n(learners).into_iter().collect();
    GroupStatus { leader: NodeId(leader), membership, committed }
}

fn group(request: AdminRequest) -> Option<ReplicaTask> {
    Some(ReplicaTask::Group { shard: S, request })
}

fn change(task: Option<ReplicaTask>) -> Change {
    match task {
        Some(ReplicaTask::Map(proposal)) => proposal.change,
        other => panic!("expected a map change, got {other:?}"),
    }
}

#[test]
fn a_replica_move_walks_learner_promote_remove_gone_in_that_order() {
    let mut map = map();
    let next = |map: &ShardMap, st: &GroupStatus| replicas::next(map, S, st, ReplicaBug::None, false);
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[], true)), None, "nothing to do");

    // 1. The map adds node 4 as a learner; the group is asked to add it too.
    map.apply(&now(Change::AddLearner { shard: S, node: NodeId(4) })).unwrap();
    assert!(map.shard(S).unwrap().hosts(NodeId(4)));
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[], true)), group(AdminRequest::AddLearner(NodeId(4))));
    // A membership not committed yet is waited for, never acted on.
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[4], false)), None);
    // 2. The learner joined the group: ask the group to promote it (its Raft checks the catch-up).
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[4], true)), group(AdminRequest::Promote(NodeId(4))));
    // 3. The group promoted it: only now does the map count it as a voter.
    let promote = change(next(&map, &status(1, &[1, 2, 3, 4], &[], true)));
    assert_eq!(promote, Change::Promote { shard: S, node: NodeId(4) });
    map.apply(&now(promote)).unwrap();

    // 4. The planner removes the old voter from the map: it is leaving, its node keeps the group.
    map.apply(&now(Change::RemoveReplica { shard: S, node: NodeId(1) })).unwrap();
    let shard = map.shard(S).unwrap();
    assert_eq!((shard.voters.clone(), shard.leaving.clone()), (n(&[2, 3, 4]), n(&[1])));
    assert!(shard.hosts(NodeId(1)) && !shard.has(NodeId(1)));
    assert_eq!(
        map.apply(&now(Change::AddLearner { shard: S, node: NodeId(1) })),
        Err(MapError::StillLeaving { shard: S, node: NodeId(1) }),
        "a leaving replica comes back only after it is gone"
    );
    // 5. The group removes it (here from its own leader).
    assert_eq!(next(&map, &status(1, &[1, 2, 3, 4], &[], true)), group(AdminRequest::Remove(NodeId(1))));
    // 6. Removed from the group: the map forgets it, and node 1 may drop the group.
    let gone = change(next(&map, &status(2, &[2, 3, 4], &[], true)));
    assert_eq!(gone, Change::ReplicaGone { shard: S, node: NodeId(1) });
    map.apply(&now(gone)).unwrap();
    assert!(!map.shard(S).unwrap().hosts(NodeId(1)));
    assert_eq!(map.hosted_by(NodeId(1)), Vec::<ShardId>::new());
    assert_eq!(next(&map, &status(2, &[2, 3, 4], &[], true)), None, "the move is over");
}

#[test]
fn members_the_map_does_not_know_are_removed_and_leadership_goes_to_the_preferred_voter() {
    let mut map = map();
    // A learner added by a request delivered twice, after the map gave up on it.
    assert_eq!(
        replicas::next(&map, S, &status(1, &[1, 2, 3], &[6], true), ReplicaBug::None, false),
        group(AdminRequest::Remove(NodeId(6)))
    );
    map.apply(&now(Change::PreferLeader { shard: S, node: NodeId(3) })).unwrap();
    assert_eq!(map.shard(S).unwrap().voters, n(&[3, 1, 2]));
    let st = status(1, &[1, 2, 3], &[], true);
    assert_eq!(replicas::next(&map, S, &st, ReplicaBug::None, false), None, "transfers not allowed");
    assert_eq!(
        replicas::next(&map, S, &st, ReplicaBug::None, true),
        group(AdminRequest::TransferLeadership(NodeId(3)))
    );
}

#[test]
fn the_deliberate_bug_records_a_promotion_the_group_never_made() {
    let mut map = map();
    map.apply(&now(Change::AddLearner { shard: S, node: NodeId(4) })).unwrap();
    let st = status(1, &[1, 2, 3], &[4], true);
    assert_eq!(
        replicas::next(&map, S, &st, ReplicaBug::None, false),
        group(AdminRequest::Promote(NodeId(4)))
    );
    assert_eq!(
        change(replicas::next(&map, S, &st, ReplicaBug::PromoteBeforeCatchUp, false)),
        Change::Promote { shard: S, node: NodeId(4) }
    );
}

#[test]
fn nodes_join_and_are_decommissioned_and_the_rebalancer_moves_replicas_off_one_at_a_time() {
    let mut map = map();
    assert_eq!(map.nodes(), n(&[1, 2, 3, 4]));
    assert_eq!(map.apply(&now(Change::AddNode { node: NodeId(4) })), Err(MapError::AlreadyNode(NodeId(4))));
    map.apply(&now(Change::AddNode { node: NodeId(5) })).unwrap();
    map.apply(&now(Change::RemoveNode { node: NodeId(1) })).unwrap();
    assert!(!map.drained(NodeId(1)), "node 1 still holds shard 1");
    // Carry out the plan as a cluster would, checking that at most one shard is ever in flux.
    for step in 0..100 {
        let live = map.nodes();
        let Some(proposal) = next_step(&map, &live, 3) else { break };
        map.apply(&proposal).unwrap_or_else(|e| panic!("step {step}: {e}"));
        match proposal.change {
            Change::AddLearner { shard, node } => {
                map.apply(&now(Change::Promote { shard, node })).unwrap();
            }
            Change::RemoveReplica { shard, node } => {
                map.apply(&now(Change::ReplicaGone { shard, node })).unwrap();
            }
            _ => {}
        }
        let in_flux = map.shards().values().filter(|s| !s.learners.is_empty() || !s.leaving.is_empty());
        assert!(in_flux.count() <= 1, "step {step}: two replica moves at once");
        for shard in map.shards().values() {
            assert!(shard.voters.len() >= 3, "step {step}: {shard:?} below the replication factor");
        }
    }
    assert!(
        map.drained(NodeId(1)),
        "node 1 was decommissioned but still holds {:?}",
        map.hosted_by(NodeId(1))
    );
    assert!(!map.hosted_by(NodeId(5)).is_empty(), "the new node got nothing");
}

/// `concord shard move-replica`: the learner on the new node replaces the old voter in the very
/// change that records its promotion, so the map never counts fewer voters than before; the group
/// then removes the old voter and the map forgets it. Refused, the map unchanged: an unknown
/// shard or node, a `from` that is no voter, a `to` already there, a second move while one runs.
#[test]
fn a_replica_moved_by_hand_swaps_voters_at_promotion_and_one_move_runs_at_a_time() {
    let mut map = map();
    let refusals = [
        (
            Change::MoveReplica { shard: ShardId(9), from: NodeId(1), to: NodeId(4) },
            MapError::NoSuchShard(ShardId(9)),
        ),
        (
            Change::MoveReplica { shard: S, from: NodeId(4), to: NodeId(4) },
            MapError::NotAVoter { shard: S, node: NodeId(4) },
        ),
        (
            Change::MoveReplica { shard: S, from: NodeId(1), to: NodeId(2) },
            MapError::AlreadyReplica { shard: S, node: NodeId(2) },
        ),
        (Change::MoveReplica { shard: S, from: NodeId(1), to: NodeId(7) }, MapError::NoSuchNode(NodeId(7))),
    ];
    for (change, error) in refusals {
        let before = map.clone();
        assert_eq!(map.apply(&now(change.clone())), Err(error), "{change:?}");
        assert_eq!(map, before, "a refused {change:?} changed the map");
    }
    let next = |map: &ShardMap, st: &GroupStatus| replicas::next(map, S, st, ReplicaBug::None, false);
    map.apply(&now(Change::MoveReplica { shard: S, from: NodeId(1), to: NodeId(4) })).unwrap();
    assert_eq!(map.shard(S).unwrap().learners, n(&[4]));
    // One replica move at a time, in any shard.
    let before = map.clone();
    assert_eq!(
        map.apply(&now(Change::MoveReplica { shard: ShardId(2), from: NodeId(2), to: NodeId(1) })),
        Err(MapError::ReplicaMoveBusy { shard: S })
    );
    assert_eq!(map, before);
    // The mover walks it: learner, promotion in the group, then the map's swap.
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[], true)), group(AdminRequest::AddLearner(NodeId(4))));
    assert_eq!(next(&map, &status(1, &[1, 2, 3], &[4], true)), group(AdminRequest::Promote(NodeId(4))));
    let promote = change(next(&map, &status(1, &[1, 2, 3, 4], &[], true)));
    map.apply(&now(promote)).unwrap();
    let shard = map.shard(S).unwrap();
    assert_eq!((shard.voters.clone(), shard.leaving.clone()), (n(&[2, 3, 4]), n(&[1])));
    assert_eq!(map.replacing(S), None);
    // Node 1 leaves the group (node 1 led it: it steps down once the removal commits), then the map.
    assert_eq!(next(&map, &status(1, &[1, 2, 3, 4], &[], true)), group(AdminRequest::Remove(NodeId(1))));
    let gone = change(next(&map, &status(2, &[2, 3, 4], &[], true)));
    assert_eq!(gone, Change::ReplicaGone { shard: S, node: NodeId(1) });
    map.apply(&now(gone)).unwrap();
    assert_eq!(map.hosted_by(NodeId(1)), Vec::<ShardId>::new());
    assert_eq!(map.replica_move(), None);
    assert_eq!(map.check(), Ok(()));
}

/// Removing either side of a by-hand move ends it: a later promotion swaps nobody out.
#[test]
fn a_by_hand_move_whose_learner_is_removed_leaves_the_voters_alone() {
    let mut map = map();
    map.apply(&now(Change::MoveReplica { shard: S, from: NodeId(1), to: NodeId(4) })).unwrap();
    map.apply(&now(Change::RemoveReplica { shard: S, node: NodeId(4) })).unwrap();
    assert_eq!(map.replacing(S), None);
    map.apply(&now(Change::ReplicaGone { shard: S, node: NodeId(4) })).unwrap();
    map.apply(&now(Change::AddLearner { shard: S, node: NodeId(4) })).unwrap();
    map.apply(&now(Change::Promote { shard: S, node: NodeId(4) })).unwrap();
    assert_eq!(map.shard(S).unwrap().voters, n(&[1, 2, 3, 4]));
    assert!(map.shard(S).unwrap().leaving.is_empty());
}

/// The rebalancer's switch is a map change like any other: committed, and it bumps the epoch.
#[test]
fn the_rebalancer_is_switched_on_and_off_in_the_map() {
    let mut map = map();
    assert!(!map.rebalancing());
    let applied = map.apply(&now(Change::Rebalance { on: true })).unwrap();
    assert!(map.rebalancing());
    assert_eq!(applied.epoch, 2);
    map.apply(&now(Change::Rebalance { on: false })).unwrap();
    assert!(!map.rebalancing());
    // A map from before the switch existed reads as off.
    let json = serde_json::to_value(&map).unwrap();
    let mut old = json.as_object().unwrap().clone();
    old.remove("rebalance");
    old.remove("replacing");
    let back: ShardMap = serde_json::from_value(serde_json::Value::Object(old)).unwrap();
    assert!(!back.rebalancing());
}

/// A learner whose node stays down is never promoted; the mover gives it up after its patience
/// ([`replicas::abandon`]): the map makes it leaving, the group removes it, the map forgets it –
/// and the next replica move may start. Nothing is given up that the group already promoted, nor
/// while the group's membership is uncommitted.
#[test]
fn a_learner_that_never_catches_up_is_given_up_and_the_next_move_may_start() {
    let mut map = map();
    map.apply(&now(Change::MoveReplica { shard: S, from: NodeId(1), to: NodeId(4) })).unwrap();
    let waiting = status(1, &[1, 2, 3], &[4], true);
    assert_eq!(replicas::abandon(&map, S, &status(1, &[1, 2, 3], &[4], false), NodeId(4)), None);
    assert_eq!(replicas::abandon(&map, S, &status(1, &[1, 2, 3, 4], &[], true), NodeId(4)), None);
    assert_eq!(replicas::abandon(&map, S, &waiting, NodeId(2)), None, "node 2 is no learner");
    let give_up = change(replicas::abandon(&map, S, &waiting, NodeId(4)));
    assert_eq!(give_up, Change::RemoveReplica { shard: S, node: NodeId(4) });
    map.apply(&now(give_up)).unwrap();
    assert_eq!(map.replacing(S), None, "the by-hand move is over; node 1 stays a voter");
    assert_eq!(map.shard(S).unwrap().voters, n(&[1, 2, 3]));
    let next = |map: &ShardMap, st: &GroupStatus| replicas::next(map, S, st, ReplicaBug::None, false);
    assert_eq!(next(&map, &waiting), group(AdminRequest::Remove(NodeId(4))));
    let gone = change(next(&map, &status(1, &[1, 2, 3], &[], true)));
    map.apply(&now(gone)).unwrap();
    assert_eq!(map.replica_move(), None);
    map.apply(&now(Change::MoveReplica { shard: ShardId(2), from: NodeId(2), to: NodeId(1) })).unwrap();
}

/// Decommissioning with the rebalancer off: the drain steps move only the departed node's replicas
/// (a learner on it is given up at once) and stop there – no spreading, slots or leaders. A second
/// `RemoveNode` says the node is already leaving; once drained, that it is not in the placement.
#[test]
fn a_decommissioned_node_is_drained_by_drain_steps_alone() {
    let mut map = map();
    map.apply(&now(Change::AddNode { node: NodeId(5) })).unwrap();
    // Unbalanced (node 5 has nothing), but nobody leaves: nothing to drain.
    assert!(next_step(&map, &map.nodes(), 3).is_some());
    assert_eq!(drain_step(&map, &map.nodes(), 3), None);
    map.apply(&now(Change::AddLearner { shard: S, node: NodeId(4) })).unwrap();
    map.apply(&now(Change::RemoveNode { node: NodeId(4) })).unwrap();
    assert_eq!(map.leaving_nodes(), n(&[4]));
    assert_eq!(
        map.apply(&now(Change::RemoveNode { node: NodeId(4) })),
        Err(MapError::AlreadyLeaving(NodeId(4)))
    );
    let live = map.nodes();
    let first = drain_step(&map, &live, 3).unwrap();
    assert_eq!(first.change, Change::RemoveReplica { shard: S, node: NodeId(4) }, "the learner goes first");
    for step in 0..50 {
        let Some(proposal) = drain_step(&map, &live, 3) else { break };
        map.apply(&proposal).unwrap_or_else(|e| panic!("step {step}: {e}"));
        match proposal.change {
            Change::AddLearner { shard, node } => {
                assert_ne!(node, NodeId(4));
                map.apply(&now(Change::Promote { shard, node })).unwrap();
            }
            Change::RemoveReplica { shard, node } => {
                map.apply(&now(Change::ReplicaGone { shard, node })).unwrap();
            }
            other => panic!("step {step}: a drain step is a replica step, not {other:?}"),
        }
        for shard in map.shards().values() {
            assert!(shard.voters.len() >= 3, "step {step}: {shard:?} below the replication factor");
        }
    }
    assert!(map.drained(NodeId(4)), "node 4 still holds {:?}", map.hosted_by(NodeId(4)));
    assert!(map.leaving_nodes().is_empty());
    assert_eq!(map.apply(&now(Change::RemoveNode { node: NodeId(4) })), Err(MapError::NoSuchNode(NodeId(4))));
}

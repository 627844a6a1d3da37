//! The rebalancer: the next change that evens out slots over shards and replicas over nodes.
//!
//! It is a pure function of the map and the live nodes, so the simulator, the server and a person
//! typing `concord shard rebalance` get the same plan. It proposes **one** step at a time, planned
//! against the map's epoch (`if_epoch`): if anything else changed the map first, the step is
//! refused and planned again on the new map – two rebalancers can never undo each other.
//!
//! Order of concerns (each considered only when the ones before have nothing to do):
//! 1. **Replication**: a learner on a node that left is removed; a shard with a voter on a node
//!    that left, or with fewer voters than the replication factor, gets a learner on the least-loaded live node that lacks it; a shard with
//!    more voters than the factor loses the voter on the most-loaded (or departed) node. Learners
//!    are promoted by whoever sees them caught up, not here: the planner cannot see Raft progress
//!    (the mover promotes them once the group's own Raft did, see [`crate::replicas`]).
//! 2. **Replica spread**: when one live node holds two or more replicas more than another, a
//!    learner is added on the lighter node (step 1 then trims the heavier one).
//! 3. **Slots**: when no move is under way and shards' slot counts differ by more than one, the
//!    heaviest shard moves a run of slots to the lightest.
//! 4. **Leaders**: when one live node is the preferred leader (`voters[0]`) of two or more shards
//!    more than another, a shard led from the heavy node prefers a voter on the light one; the
//!    mover then transfers the group's leadership there.
//!
//! [`drain_step`] is concern 1 alone, for the shards with a replica on a decommissioned node: what
//! the metadata leader runs while a node drains and the rebalancer is off.
//!
//! **One replica change at a time.** While any shard has a learner or a leaving replica, the only
//! replica step planned is the trim that completes that move (step 1): a cluster never has two
//! replica moves in flight, so at most one group is ever between configurations.

use crate::map::{Change, Proposal, ShardId, ShardMap};
use crate::slot::SlotRange;
use concord_core::NodeId;
use std::collections::BTreeMap;

/// The next step towards balance, or `None` when the map is balanced for these nodes.
pub fn next_step(map: &ShardMap, live: &[NodeId], replication: usize) -> Option<Proposal> {
    plan(map, live, replication, false)
}

/// The next step of a **drain** only: concern 1 (replication) for the shards that still have a
/// replica on a node outside `live` – a decommissioned node – and nothing else (no spreading, no
/// slot moves, no leader preferences). The metadata leader takes these steps while a node is being
/// decommissioned and the rebalancer is off, so `concord shard decommission` empties the node
/// without switching on the whole rebalancer behind the operator's back.
pub fn drain_step(map: &ShardMap, live: &[NodeId], replication: usize) -> Option<Proposal> {
    plan(map, live, replication, true)
}

fn plan(map: &ShardMap, live: &[NodeId], replication: usize, drain_only: bool) -> Option<Proposal> {
    if !map.is_bootstrapped() || live.is_empty() {
        return None;
    }
    let planned = |change| Some(Proposal { if_epoch: Some(map.epoch()), change });
    let load = replica_load(map, live);
    let lightest_without = |shard: ShardId| {
        let s = map.shard(shard).expect("shard exists");
        live.iter().copied().filter(|n| !s.has(*n)).min_by_key(|n| (load[n], *n))
    };
    let factor = replication.clamp(1, live.len());

    let in_flux = map.shards().values().any(|s| !s.learners.is_empty() || !s.leaving.is_empty());

    // 1. Replication.
    for (&id, shard) in map.shards() {
        let departed = |n: &NodeId| !live.contains(n);
        if drain_only && !shard.voters.iter().chain(&shard.learners).any(departed) {
            continue;
        }
        // A learner on a node that left is given up at once: no new replica goes there.
        if let Some(&node) = shard.learners.iter().find(|n| departed(n)) {
            return planned(Change::RemoveReplica { shard: id, node });
        }
        let live_voters = shard.voters.iter().filter(|n| live.contains(n)).count();
        if live_voters + shard.learners.len() < factor && !in_flux {
            if let Some(node) = lightest_without(id) {
                return planned(Change::AddLearner { shard: id, node });
            }
        }
        if shard.voters.len() > factor || (live_voters >= factor && live_voters < shard.voters.len()) {
            // Too many voters, or enough live ones and some departed: drop a departed one first,
            // else the one on the busiest node.
            let victim = shard
                .voters
                .iter()
                .copied()
                .max_by_key(|n| (!live.contains(n), load.get(n).copied().unwrap_or(0), *n))
                .expect("more than one voter");
            return planned(Change::RemoveReplica { shard: id, node: victim });
        }
    }

    if drain_only {
        return None;
    }

    // 2. Replica spread.
    let (&heavy, &most) = load.iter().max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)))?;
    let (&light, &least) = load.iter().min_by_key(|(n, l)| (**l, **n))?;
    if most >= least + 2 && !in_flux {
        if let Some((&id, _)) = map.shards().iter().find(|(_, s)| s.voters.contains(&heavy) && !s.has(light))
        {
            return planned(Change::AddLearner { shard: id, node: light });
        }
    }

    // 3. Slots.
    if let Some(step) = slot_step(map) {
        return planned(step);
    }

    // 4. Leaders.
    let mut leading: BTreeMap<NodeId, usize> = live.iter().map(|&n| (n, 0)).collect();
    for shard in map.shards().values() {
        if let Some(l) = shard.voters.first().and_then(|n| leading.get_mut(n)) {
            *l += 1;
        }
    }
    let (&heavy, &most) = leading.iter().max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)))?;
    let (&light, &least) = leading.iter().min_by_key(|(n, l)| (**l, **n))?;
    if most >= least + 2 {
        let shard =
            map.shards().iter().find(|(_, s)| s.voters.first() == Some(&heavy) && s.voters.contains(&light));
        if let Some((&id, _)) = shard {
            return planned(Change::PreferLeader { shard: id, node: light });
        }
    }
    None
}

/// A move from the heaviest shard to the lightest, when no move is under way.
fn slot_step(map: &ShardMap) -> Option<Change> {
    if map.moves().next().is_some() {
        return None;
    }
    let counts = map.slot_counts();
    let (&from, &big) = counts.iter().max_by_key(|(s, c)| (**c, std::cmp::Reverse(**s)))?;
    let (&to, &small) = counts.iter().min_by_key(|(s, c)| (**c, **s))?;
    if big <= small + 1 {
        return None;
    }
    let want = (big - small) / 2;
    // The source's last run of slots, trimmed to `want` from its end (moves keep runs contiguous).
    let (run, _) = map.ranges().into_iter().rev().find(|(_, owner)| *owner == from)?;
    let start = if run.len() > want { run.end.get() as usize + 1 - want } else { run.start.index() };
    let start = crate::slot::Slot::new(start as i64).expect("inside the run");
    let range = SlotRange::new(start, run.end).expect("start ≤ end");
    Some(Change::StartMove { range, to })
}

/// Replicas (voters and learners) per live node.
fn replica_load(map: &ShardMap, live: &[NodeId]) -> BTreeMap<NodeId, usize> {
    let mut load: BTreeMap<NodeId, usize> = live.iter().map(|&n| (n, 0)).collect();
    for shard in map.shards().values() {
        for n in shard.voters.iter().chain(&shard.learners) {
            if let Some(l) = load.get_mut(n) {
                *l += 1;
            }
        }
    }
    load
}

//! The shard map and the rebalancer: changes are validated, refused changes change nothing, the
//! invariants hold after any sequence, and the rebalancer reaches balance.

use concord_core::NodeId;
use concord_shard::{
    next_step, Change, MapError, Phase, Proposal, ShardId, ShardMap, Slot, SlotRange, Stage,
};
use proptest::prelude::*;

fn n(ids: &[u32]) -> Vec<NodeId> {
    ids.iter().map(|&i| NodeId(i)).collect()
}

fn now(change: Change) -> Proposal {
    Proposal { if_epoch: None, change }
}

fn range(a: i64, b: i64) -> SlotRange {
    SlotRange::new(Slot::new(a).unwrap(), Slot::new(b).unwrap()).unwrap()
}

fn bootstrapped(shards: usize) -> ShardMap {
    let mut map = ShardMap::default();
    let sets = (0..shards).map(|_| n(&[1, 2, 3])).collect();
    map.apply(&now(Change::Bootstrap { shards: sets })).unwrap();
    map
}

#[test]
fn bootstrap_splits_the_slots_evenly_in_order() {
    let map = bootstrapped(3);
    assert_eq!(map.epoch(), 1);
    let ranges = map.ranges();
    assert_eq!(
        ranges,
        vec![
            (range(0, 5461), ShardId(1)),
            (range(5462, 10922), ShardId(2)),
            (range(10923, 16383), ShardId(3))
        ]
    );
    assert_eq!(map.check(), Ok(()));
}

#[test]
fn a_move_goes_through_its_phases_in_order_and_flips_ownership_last() {
    let mut map = bootstrapped(2);
    let moved = range(0, 99);
    let id = map.apply(&now(Change::StartMove { range: moved, to: ShardId(2) })).unwrap().move_id.unwrap();
    assert_eq!(
        map.owner(Slot::new(0).unwrap()),
        Some(ShardId(1)),
        "the source owns the range until the flip"
    );
    // Flipping before the target holds the data is refused (one of the classic bugs).
    assert_eq!(
        map.apply(&now(Change::FinishMove { id })),
        Err(MapError::WrongPhase { id, phase: Stage::Started, wanted: Stage::Copied })
    );
    assert!(matches!(
        map.apply(&now(Change::Copied { id, target_index: 9 })),
        Err(MapError::WrongPhase { .. })
    ));
    map.apply(&now(Change::Fenced { id, source_index: 7 })).unwrap();
    map.apply(&now(Change::Copied { id, target_index: 9 })).unwrap();
    assert_eq!(
        map.moving(Slot::new(50).unwrap()).unwrap().phase,
        Phase::Copied { source_index: 7, target_index: 9 }
    );
    let before = map.epoch();
    map.apply(&now(Change::FinishMove { id })).unwrap();
    assert_eq!(map.epoch(), before + 1);
    assert_eq!(map.owner(Slot::new(99).unwrap()), Some(ShardId(2)));
    assert_eq!(map.owner(Slot::new(100).unwrap()), Some(ShardId(1)));
    assert!(map.moving(Slot::new(50).unwrap()).is_none());
}

#[test]
fn bad_changes_are_refused_with_a_reason() {
    let mut map = bootstrapped(2);
    let cases = [
        (Change::StartMove { range: range(0, 10), to: ShardId(9) }, MapError::NoSuchShard(ShardId(9))),
        (
            Change::StartMove { range: range(8000, 8300), to: ShardId(1) },
            MapError::SplitOwnership { range: range(8000, 8300) },
        ),
        (
            Change::StartMove { range: range(0, 10), to: ShardId(1) },
            MapError::MoveToItself { range: range(0, 10), shard: ShardId(1) },
        ),
        (Change::AddShard { voters: n(&[4, 4]) }, MapError::DuplicateNode(NodeId(4))),
        (Change::AddShard { voters: vec![] }, MapError::NoReplicas),
        (
            Change::AddLearner { shard: ShardId(1), node: NodeId(2) },
            MapError::AlreadyReplica { shard: ShardId(1), node: NodeId(2) },
        ),
        (
            Change::Promote { shard: ShardId(1), node: NodeId(7) },
            MapError::NotALearner { shard: ShardId(1), node: NodeId(7) },
        ),
        (Change::FinishMove { id: 42 }, MapError::NoSuchMove(42)),
        (
            Change::RemoveShard { shard: ShardId(1) },
            MapError::ShardNotEmpty { shard: ShardId(1), slots: 8192 },
        ),
        (Change::Bootstrap { shards: vec![n(&[1])] }, MapError::AlreadyBootstrapped),
    ];
    for (change, error) in cases {
        let before = map.clone();
        assert_eq!(map.apply(&now(change.clone())), Err(error), "{change:?}");
        assert_eq!(map, before, "a refused {change:?} changed the map");
    }
    let id =
        map.apply(&now(Change::StartMove { range: range(0, 10), to: ShardId(2) })).unwrap().move_id.unwrap();
    assert_eq!(
        map.apply(&now(Change::StartMove { range: range(5, 20), to: ShardId(2) })),
        Err(MapError::AlreadyMoving { slot: Slot::new(5).unwrap(), id })
    );
    let stale = Proposal { if_epoch: Some(1), change: Change::AbortMove { id } };
    assert_eq!(map.apply(&stale), Err(MapError::StaleEpoch { planned: 1, current: 2 }));
    assert_eq!(
        MapError::SplitOwnership { range: range(8000, 8300) }.to_string(),
        "slots 8000-8300 are not owned by a single shard"
    );
}

fn arb_change() -> impl Strategy<Value = Change> {
    let node = (1u32..7).prop_map(NodeId);
    let shard = (1u32..6).prop_map(ShardId);
    let slot_range = (0i64..16384, 0i64..600).prop_map(|(a, len)| range(a, (a + len).min(16383)));
    prop_oneof![
        proptest::collection::vec(proptest::collection::vec(node.clone(), 1..4), 1..4)
            .prop_map(|shards| Change::Bootstrap { shards }),
        proptest::collection::vec(node.clone(), 0..4).prop_map(|voters| Change::AddShard { voters }),
        (shard.clone(), node.clone()).prop_map(|(shard, node)| Change::AddLearner { shard, node }),
        (shard.clone(), node.clone()).prop_map(|(shard, node)| Change::Promote { shard, node }),
        (shard.clone(), node.clone()).prop_map(|(shard, node)| Change::RemoveReplica { shard, node }),
        (shard.clone(), node.clone()).prop_map(|(shard, node)| Change::ReplicaGone { shard, node }),
        (shard.clone(), node.clone()).prop_map(|(shard, node)| Change::PreferLeader { shard, node }),
        node.clone().prop_map(|node| Change::AddNode { node }),
        node.clone().prop_map(|node| Change::RemoveNode { node }),
        (shard.clone(), node.clone(), node.clone()).prop_map(|(shard, from, to)| Change::MoveReplica {
            shard,
            from,
            to
        }),
        any::<bool>().prop_map(|on| Change::Rebalance { on }),
        (slot_range, shard.clone()).prop_map(|(range, to)| Change::StartMove { range, to }),
        (1u64..6, 0u64..100).prop_map(|(id, source_index)| Change::Fenced { id, source_index }),
        (1u64..6, 0u64..100).prop_map(|(id, target_index)| Change::Copied { id, target_index }),
        (1u64..6).prop_map(|id| Change::FinishMove { id }),
        (1u64..6).prop_map(|id| Change::AbortMove { id }),
        (1u64..6).prop_map(|id| Change::Settled { id }),
        shard.prop_map(|shard| Change::RemoveShard { shard }),
    ]
}

proptest! {
    /// Any sequence of changes: the invariants hold after each, an accepted change raises the epoch
    /// by exactly one, a refused one changes nothing, and every slot keeps exactly one owner.
    #[test]
    fn any_sequence_of_changes_keeps_the_invariants(changes in proptest::collection::vec(arb_change(), 1..60)) {
        let mut map = ShardMap::default();
        for change in changes {
            let before = map.clone();
            match map.apply(&now(change)) {
                Ok(applied) => {
                    prop_assert_eq!(applied.epoch, before.epoch() + 1);
                    prop_assert_eq!(map.epoch(), applied.epoch);
                }
                Err(_) => prop_assert_eq!(&map, &before),
            }
            prop_assert_eq!(map.check(), Ok(()));
            if map.is_bootstrapped() {
                let covered: usize = map.ranges().iter().map(|(r, _)| r.len()).sum();
                prop_assert_eq!(covered, 16384);
            }
        }
    }
}

/// Carry out the rebalancer's steps as a cluster would: moves go through their phases, learners
/// are promoted once added. Returns how many steps it took.
fn rebalance_to_the_end(map: &mut ShardMap, live: &[NodeId], replication: usize) -> usize {
    for step in 0..10_000 {
        let Some(proposal) = next_step(map, live, replication) else { return step };
        let applied = map.apply(&proposal).unwrap_or_else(|e| panic!("step {step} {proposal:?}: {e}"));
        match proposal.change {
            Change::StartMove { .. } => {
                let id = applied.move_id.unwrap();
                map.apply(&now(Change::Fenced { id, source_index: 1 })).unwrap();
                map.apply(&now(Change::Copied { id, target_index: 1 })).unwrap();
                map.apply(&now(Change::FinishMove { id })).unwrap();
            }
            Change::AddLearner { shard, node } => {
                map.apply(&now(Change::Promote { shard, node })).unwrap();
            }
            Change::RemoveReplica { shard, node } => {
                map.apply(&now(Change::ReplicaGone { shard, node })).unwrap();
            }
            _ => {}
        }
        assert_eq!(map.check(), Ok(()));
    }
    panic!("the rebalancer did not finish in 10 000 steps");
}

fn assert_balanced(map: &ShardMap, live: &[NodeId], replication: usize) {
    let counts = map.slot_counts();
    let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
    assert!(max - min <= 1, "slots per shard: {counts:?}");
    let mut load = std::collections::BTreeMap::new();
    for shard in map.shards().values() {
        assert_eq!(shard.voters.len(), replication.min(live.len()), "{shard:?}");
        assert!(shard.learners.is_empty());
        assert!(shard.leaving.is_empty());
        for v in &shard.voters {
            assert!(live.contains(v), "a departed node {v} still replicates {shard:?}");
            *load.entry(*v).or_insert(0) += 1;
        }
    }
    let (lo, hi) = (load.values().min().unwrap(), load.values().max().unwrap());
    assert!(hi - lo <= 1, "replicas per node: {load:?}");
}

#[test]
fn the_rebalancer_fills_a_new_shard_and_a_new_node() {
    let mut map = bootstrapped(3);
    let mut live = n(&[1, 2, 3]);
    // A fresh map has its slots and replicas even; only its preferred leaders (every shard's
    // first voter is node 1 here) are spread.
    for _ in 0..2 {
        let step = next_step(&map, &live, 3).expect("leaders to spread");
        assert!(matches!(step.change, Change::PreferLeader { .. }), "{step:?}");
        map.apply(&step).unwrap();
    }
    assert_eq!(next_step(&map, &live, 3), None, "the fresh map is balanced");
    // A fourth node joins, and a fourth shard is created on it alone.
    live.push(NodeId(4));
    map.apply(&now(Change::AddShard { voters: n(&[4]) })).unwrap();
    let steps = rebalance_to_the_end(&mut map, &live, 3);
    assert!(steps > 0);
    assert_balanced(&map, &live, 3);
    // Node 2 leaves: its replicas are replaced on the others.
    live.retain(|&x| x != NodeId(2));
    rebalance_to_the_end(&mut map, &live, 3);
    assert_balanced(&map, &live, 3);
}

proptest! {
    #[test]
    fn the_rebalancer_always_reaches_balance(shards in 1usize..6, extra in 1usize..4, nodes in 1u32..7, replication in 1usize..4) {
        let mut map = ShardMap::default();
        let first: Vec<NodeId> = (1..=nodes.min(3)).map(NodeId).collect();
        map.apply(&now(Change::Bootstrap { shards: vec![first.clone(); shards] })).unwrap();
        for _ in 0..extra {
            map.apply(&now(Change::AddShard { voters: vec![NodeId(1)] })).unwrap();
        }
        let live: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
        rebalance_to_the_end(&mut map, &live, replication);
        assert_balanced(&map, &live, replication);
    }
}

//! Where a key's request goes: the shard router, as a pure function of the shard map.
//!
//! Every node answers every key. Given the map it has applied, a node either serves a request
//! itself (it replicates the owning shard), forwards it, or tells a cluster-aware client where to
//! go – the decision Redis Cluster encodes as `-MOVED`, `-TRYAGAIN`, `-CROSSSLOT` and
//! `-CLUSTERDOWN`. The router only reads the map; it never changes it.

use crate::map::{Phase, ShardId, ShardMap};
use crate::slot::{key_slot, Slot};
use concord_core::NodeId;

/// The router's decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node replicates the owning shard: hand the request to that group here.
    Local { shard: ShardId, slot: Slot },
    /// Another set of nodes owns it: forward, or answer `-MOVED <slot> <node>` (the preferred
    /// replica first: where the rebalancer wants the shard's leader).
    Remote { shard: ShardId, slot: Slot, replicas: Vec<NodeId> },
    /// The slot is between its move's fence and its flip: reads and writes wait (`-TRYAGAIN`).
    TryAgain { slot: Slot, move_id: u64 },
    /// The keys of one request live in different slots (`-CROSSSLOT`).
    CrossSlot,
    /// No map yet, or no keys to route by (`-CLUSTERDOWN`).
    ClusterDown,
}

/// Route a request touching `keys` (all in one slot, as Redis Cluster requires) arriving at `me`.
pub fn route(map: &ShardMap, me: NodeId, keys: &[&[u8]]) -> Route {
    let Some((first, rest)) = keys.split_first() else { return Route::ClusterDown };
    let slot = key_slot(first);
    if rest.iter().any(|k| key_slot(k) != slot) {
        return Route::CrossSlot;
    }
    let Some(shard) = map.owner(slot) else { return Route::ClusterDown };
    // Reads wait too: between the fence and the target's activation the source's copy is the
    // range's last state only until the flip, and the source cannot tell when that is (it is in
    // the metadata group's log, not in its own) – so it refuses both (see `kv`).
    if let Some(m) = map.moving(slot) {
        if matches!(m.phase, Phase::Fenced { .. } | Phase::Copied { .. }) {
            return Route::TryAgain { slot, move_id: m.id };
        }
    }
    let replicas = map.shard(shard).expect("an owner exists (map invariant)");
    if replicas.voters.contains(&me) {
        Route::Local { shard, slot }
    } else {
        Route::Remote { shard, slot, replicas: replicas.voters.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Change, Proposal};
    use crate::slot::SlotRange;

    fn now(change: Change) -> Proposal {
        Proposal { if_epoch: None, change }
    }

    fn two_shards() -> ShardMap {
        let mut map = ShardMap::default();
        let shards = vec![vec![NodeId(1), NodeId(2)], vec![NodeId(3), NodeId(4)]];
        map.apply(&now(Change::Bootstrap { shards })).unwrap();
        map
    }

    #[test]
    fn keys_go_to_their_owner() {
        let map = two_shards();
        // "foo" is slot 12182: the second half, shard 2 on nodes 3 and 4.
        let foo: &[u8] = b"foo";
        assert_eq!(route(&map, NodeId(3), &[foo]), Route::Local { shard: ShardId(2), slot: key_slot(foo) });
        assert_eq!(
            route(&map, NodeId(1), &[foo]),
            Route::Remote { shard: ShardId(2), slot: key_slot(foo), replicas: vec![NodeId(3), NodeId(4)] }
        );
        // A hash tag keeps keys together: one slot, one route.
        assert_eq!(
            route(&map, NodeId(1), &[b"foo", b"{foo}bar"]),
            Route::Remote { shard: ShardId(2), slot: key_slot(foo), replicas: vec![NodeId(3), NodeId(4)] }
        );
        assert_eq!(route(&map, NodeId(1), &[b"foo", b"bar"]), Route::CrossSlot);
        assert_eq!(route(&map, NodeId(1), &[]), Route::ClusterDown);
        assert_eq!(route(&ShardMap::default(), NodeId(1), &[foo]), Route::ClusterDown);
    }

    #[test]
    fn a_fenced_slot_waits_until_the_flip() {
        let mut map = two_shards();
        let slot = key_slot(b"bar"); // 5061: shard 1
        let id = map
            .apply(&now(Change::StartMove { range: SlotRange::single(slot), to: ShardId(2) }))
            .unwrap()
            .move_id
            .unwrap();
        let bar: &[u8] = b"bar";
        assert_eq!(
            route(&map, NodeId(1), &[bar]),
            Route::Local { shard: ShardId(1), slot },
            "started: the source serves"
        );
        map.apply(&now(Change::Fenced { id, source_index: 3 })).unwrap();
        assert_eq!(route(&map, NodeId(1), &[bar]), Route::TryAgain { slot, move_id: id });
        map.apply(&now(Change::Copied { id, target_index: 4 })).unwrap();
        map.apply(&now(Change::FinishMove { id })).unwrap();
        assert_eq!(
            route(&map, NodeId(1), &[bar]),
            Route::Remote { shard: ShardId(2), slot, replicas: vec![NodeId(3), NodeId(4)] },
            "after the flip: MOVED to the target"
        );
    }
}

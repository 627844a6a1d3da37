//! A sharded cluster in the simulator: a metadata Raft group holding the shard map, one Raft group
//! per shard, slot moves started while the nemesis works ([`concord_shard::ShardedNode`]).
//!
//! ```toml
//! [protocol.sharded]
//! shards = 3                 # shard groups (default 3)
//! replicas = 3               # replicas per shard (default 3, at most the nodes)
//! churn = "400ms"            # the map leader starts a random slot move this often (default: never)
//! bug = "writes-after-fence" # a deliberate bug: "writes-after-fence" or "flip-before-copy"
//! kv = { max_value_bytes = 1024 }
//! raft = { election_timeout_min = "150ms", election_timeout_max = "300ms", heartbeat_interval = "50ms" }
//! ```
//!
//! Checked after every step: Raft's safety in every group (one [`SafetyMonitor`] per group), the
//! shard map's invariants on every node (every slot has exactly one owner, moves well formed), and
//! that two nodes never hold different maps at the same epoch (no epoch without agreement). The
//! histories are judged per key for linearizability as any other protocol's.

use crate::protocol::{Invariant, InvariantViolation, SimProtocol};
use concord_core::{Durable, NodeId, Time};
use concord_kv::KvLimits;
use concord_raft::{RaftConfig, SafetyMonitor};
use concord_shard::{MoverBug, ShardBug, ShardId, ShardMap, ShardedConfig, ShardedNode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A deliberate bug in the move protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveBug {
    /// The source keeps serving writes to a range after its fence.
    WritesAfterFence,
    /// The map flips to the target before the target holds the range's data.
    FlipBeforeCopy,
}

/// `[protocol.sharded]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardedScenario {
    #[serde(default = "default_shards")]
    pub shards: u32,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    #[serde(default, with = "concord_core::time::serde_duration::option")]
    pub churn: Option<Duration>,
    #[serde(default)]
    pub bug: Option<MoveBug>,
    #[serde(default)]
    pub kv: KvLimits,
    #[serde(default)]
    pub raft: RaftConfig,
}

fn default_shards() -> u32 {
    3
}

fn default_replicas() -> usize {
    3
}

impl ShardedScenario {
    /// Settings no cluster could run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 1_000 {
            return Err(format!("shards = {}: between 1 and 1000", self.shards));
        }
        if self.replicas == 0 {
            return Err("replicas = 0: a shard needs at least one replica".into());
        }
        self.raft.validate().map_err(|e| format!("raft: {e}"))
    }

    fn config(&self, cluster: &[NodeId]) -> ShardedConfig {
        ShardedConfig {
            nodes: cluster.to_vec(),
            shards: self.shards,
            replicas: self.replicas,
            raft: self.raft.clone(),
            kv: self.kv.clone(),
            churn: self.churn,
            shard_bug: match self.bug {
                Some(MoveBug::WritesAfterFence) => ShardBug::WritesAfterFence,
                _ => ShardBug::None,
            },
            mover_bug: match self.bug {
                Some(MoveBug::FlipBeforeCopy) => MoverBug::FlipBeforeCopy,
                _ => MoverBug::None,
            },
        }
    }
}

/// One replica of a shard's group.
type ShardRaft = concord_raft::RaftNode<concord_shard::ShardKv>;

/// The online checks, with their memory of the run.
#[derive(Default)]
struct ShardedInvariants {
    meta: SafetyMonitor,
    shards: BTreeMap<ShardId, SafetyMonitor>,
    /// The map seen at each epoch (its digest): a second, different map at one epoch is a
    /// disagreement the metadata group exists to prevent.
    maps: BTreeMap<u64, (NodeId, u64)>,
    /// The epoch of each node's map when last checked: a map changes only with its epoch, so
    /// the (16 384-slot) checks run once per node and epoch, not on every step.
    checked: BTreeMap<NodeId, u64>,
}

impl ShardedInvariants {
    fn check_map(&mut self, node: NodeId, map: &ShardMap) -> Result<(), InvariantViolation> {
        if self.checked.insert(node, map.epoch()) == Some(map.epoch()) {
            return Ok(());
        }
        map.check().map_err(|e| InvariantViolation(format!("node {node}: {e}")))?;
        // A hash, not the map: a run reaches hundreds of epochs, and a map is 16 384 owners.
        let digest = concord_core::hash::fnv1a64(&serde_json::to_vec(map).expect("a shard map serialises"));
        match self.maps.get(&map.epoch()) {
            Some((first, seen)) if *seen != digest => Err(InvariantViolation(format!(
                "nodes {first} and {node} hold different shard maps at epoch {}",
                map.epoch()
            ))),
            Some(_) => Ok(()),
            None => {
                self.maps.insert(map.epoch(), (node, digest));
                Ok(())
            }
        }
    }
}

impl Invariant<ShardedNode> for ShardedInvariants {
    fn check(
        &mut self,
        _now: Time,
        nodes: &[(NodeId, Option<&ShardedNode>)],
    ) -> Result<(), InvariantViolation> {
        let meta: Vec<_> = nodes.iter().map(|&(id, n)| (id, n.map(|n| n.metadata()))).collect();
        self.meta.check(&meta).map_err(|e| InvariantViolation(format!("metadata group: {e}")))?;
        for &(id, node) in nodes {
            if let Some(node) = node {
                self.check_map(id, node.map())?;
            }
        }
        // Each shard group's replicas, crashed ones as `None`.
        let mut groups: BTreeMap<ShardId, Vec<(NodeId, Option<&ShardRaft>)>> = BTreeMap::new();
        for (id, node) in nodes.iter().filter_map(|&(id, n)| Some((id, n?))) {
            for (shard, raft) in node.shards() {
                groups.entry(shard).or_default().push((id, Some(raft)));
            }
        }
        // A crashed node is checked from scratch when it is back (harmless for groups it never ran).
        for &(id, _) in nodes.iter().filter(|(_, n)| n.is_none()) {
            for replicas in groups.values_mut() {
                replicas.push((id, None));
            }
        }
        for (shard, replicas) in groups {
            let monitor = self.shards.entry(shard).or_default();
            monitor.check(&replicas).map_err(|e| InvariantViolation(format!("{shard}: {e}")))?;
        }
        Ok(())
    }
}

impl SimProtocol for ShardedNode {
    type Config = ShardedScenario;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &ShardedScenario,
        durable: &Durable,
    ) -> Result<Self, String> {
        ShardedNode::boot(id, config.config(cluster), durable)
    }

    fn invariants(_config: &ShardedScenario) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::<ShardedInvariants>::default())
    }
}

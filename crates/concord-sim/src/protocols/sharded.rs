//! A sharded cluster in the simulator: a metadata Raft group holding the shard map, one Raft group
//! per shard, slot moves started while the nemesis works ([`concord_shard::ShardedNode`]).
//!
//! ```toml
//! [protocol.sharded]
//! shards = 3                 # shard groups (default 3)
//! replicas = 3               # replicas per shard (default 3, at most the nodes)
//! spares = 1                 # the last nodes start with no replica (default 0)
//! rebalance = "200ms"        # the map leader takes one rebalancer step this often (default: never)
//! node_churn = "2s"          # a node joins or is decommissioned this often (default: never)
//! learner_patience = "2s"    # a learner not promoted this long is given up (default 30s)
//! churn = "400ms"            # the map leader starts a random slot move this often (default: never)
//! bug = "writes-after-fence" # a deliberate bug: "writes-after-fence", "flip-before-copy" or
//!                            # "promote-before-catch-up"
//! kv = { max_value_bytes = 1024 }
//! raft = { election_timeout_min = "150ms", election_timeout_max = "300ms", heartbeat_interval = "50ms" }
//! ```
//!
//! Checked after every step: Raft's safety in every group (one [`SafetyMonitor`] per group), the
//! shard map's invariants on every node (every slot has exactly one owner, moves well formed), and
//! that two nodes never hold different maps at the same epoch (no epoch without agreement). The
//! histories are judged per key for linearizability as any other protocol's.
//!
//! Replica moves add two checks:
//! * **enough caught-up voters**: in the newest map, every shard has at least the replication
//!   factor of voters, and each of them is a voter of the group's newest *committed* membership
//!   (the map records a promotion only after the group's Raft made it, which it does only for a
//!   caught-up learner) – so no committed step ever leaves a group with fewer caught-up voters;
//! * **cleanup**: a node does not keep running a group its own map no longer gives it (at an epoch
//!   not older than the one it created the group at) for more than [`CLEANUP_GRACE`].

use crate::protocol::{Invariant, InvariantViolation, SimProtocol};
use concord_core::{Durable, NodeId, Time};
use concord_kv::KvLimits;
use concord_raft::{Membership, Payload};
use concord_raft::{RaftConfig, SafetyMonitor};
use concord_shard::{MoverBug, ReplicaBug, ShardBug, ShardId, ShardMap, ShardedConfig, ShardedNode};
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
    /// A replica move records a learner as a voter before the group promoted it (caught up).
    PromoteBeforeCatchUp,
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
    pub spares: usize,
    #[serde(default, with = "concord_core::time::serde_duration::option")]
    pub rebalance: Option<Duration>,
    #[serde(default, with = "concord_core::time::serde_duration::option")]
    pub node_churn: Option<Duration>,
    #[serde(default)]
    pub bug: Option<MoveBug>,
    /// A learner not promoted this long is given up (default `concord_shard::node::LEARNER_PATIENCE`).
    #[serde(default, with = "concord_core::time::serde_duration::option")]
    pub learner_patience: Option<Duration>,
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
            spares: self.spares,
            rebalance: self.rebalance,
            node_churn: self.node_churn,
            replica_bug: match self.bug {
                Some(MoveBug::PromoteBeforeCatchUp) => ReplicaBug::PromoteBeforeCatchUp,
                _ => ReplicaBug::None,
            },
            learner_patience: self.learner_patience.unwrap_or(concord_shard::node::LEARNER_PATIENCE),
        }
    }
}

/// One replica of a shard's group.
type ShardRaft = concord_raft::RaftNode<concord_shard::ShardKv>;

/// How long a node may run a group its map no longer gives it (it checks every mover tick).
pub const CLEANUP_GRACE: Duration = Duration::from_secs(2);

/// The online checks, with their memory of the run.
#[derive(Default)]
struct ShardedInvariants {
    /// The replication factor the maps must keep, and the scenario's spares.
    factor: usize,
    spares: usize,
    /// Each group's newest committed membership seen: `(commit index, membership)`.
    committed: BTreeMap<ShardId, (u64, Membership)>,
    /// The newest map any node has applied. Kept, not recomputed from the nodes up at each check:
    /// a map is applied only once committed, and a committed map is not taken back when the only
    /// node that applied it so far crashes – while its group may already act on it (remove a
    /// replica the map removed). Found by seeds 1159 and 1461 of the 2 000-seed sweep.
    newest: Option<ShardMap>,
    /// Since when each node runs a group its own map no longer gives it.
    stale: BTreeMap<(NodeId, ShardId), Time>,
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

impl ShardedInvariants {
    /// Learn each group's newest committed membership: a replica whose log holds no membership
    /// entry above its commit index has its current membership committed as of that index.
    fn learn_memberships(&mut self, nodes: &[(NodeId, Option<&ShardedNode>)]) {
        for node in nodes.iter().filter_map(|(_, n)| *n) {
            for (shard, raft) in node.shards() {
                let commit = raft.commit_index();
                if self.committed.get(&shard).is_some_and(|(seen, _)| *seen >= commit) {
                    continue;
                }
                let tail = raft.entries(commit + 1, raft.last_log_index());
                if tail.iter().any(|e| matches!(e.payload, Payload::Config(_))) {
                    continue;
                }
                self.committed.insert(shard, (commit, raft.current_membership().clone()));
            }
        }
    }

    /// Enough caught-up voters, per the newest map (see the module docs).
    fn check_replicas(&mut self, nodes: &[(NodeId, Option<&ShardedNode>)]) -> Result<(), InvariantViolation> {
        self.learn_memberships(nodes);
        let up = nodes.iter().filter_map(|&(_, n)| Some(n?.map())).max_by_key(|m| m.epoch());
        if let Some(map) = up.filter(|m| self.newest.as_ref().is_none_or(|newest| m.epoch() > newest.epoch()))
        {
            self.newest = Some(map.clone());
        }
        let Some(map) = &self.newest else { return Ok(()) };
        // The first map places replicas on the nodes that are not spares; none has more since.
        let factor = self.factor.min(nodes.len().saturating_sub(self.spares).max(1));
        for (id, shard) in map.shards() {
            if shard.voters.len() < factor {
                return Err(InvariantViolation(format!(
                    "{id} has {} voters in the map at epoch {}, fewer than the replication factor {factor}",
                    shard.voters.len(),
                    map.epoch(),
                )));
            }
            let Some((index, membership)) = self.committed.get(id) else { continue };
            if let Some(v) = shard.voters.iter().find(|v| !membership.is_voter(**v)) {
                return Err(InvariantViolation(format!(
                    "{id}: the map at epoch {} counts node {v} as a voter, but the group's committed \
                     membership at index {index} does not ({:?}): a voter that may not have caught up",
                    map.epoch(),
                    membership.voters
                )));
            }
        }
        Ok(())
    }

    /// No node keeps a group its own map no longer gives it for longer than [`CLEANUP_GRACE`].
    fn check_cleanup(
        &mut self,
        now: Time,
        nodes: &[(NodeId, Option<&ShardedNode>)],
    ) -> Result<(), InvariantViolation> {
        let mut stale = BTreeMap::new();
        for (id, node) in nodes.iter().filter_map(|&(id, n)| Some((id, n?))) {
            let map = node.map();
            if !map.is_bootstrapped() {
                continue;
            }
            for (shard, _) in node.shards() {
                let given = map.shard(shard).is_some_and(|s| s.hosts(id));
                let created = node.created_at(shard).unwrap_or(0);
                if given || map.epoch() < created {
                    continue;
                }
                let since = self.stale.get(&(id, shard)).copied().unwrap_or(now);
                if now.0.saturating_sub(since.0) > CLEANUP_GRACE.as_nanos() as u64 {
                    return Err(InvariantViolation(format!(
                        "node {id} still runs {shard}, which its map (epoch {}) no longer gives it",
                        map.epoch()
                    )));
                }
                stale.insert((id, shard), since);
            }
        }
        self.stale = stale;
        Ok(())
    }
}

impl Invariant<ShardedNode> for ShardedInvariants {
    fn check(
        &mut self,
        now: Time,
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
        // A node that does not run a group (crashed, or the group left it) is checked from scratch
        // when it runs it again – a replica created anew starts from an empty log.
        for replicas in groups.values_mut() {
            for &(id, _) in nodes {
                if !replicas.iter().any(|(r, _)| *r == id) {
                    replicas.push((id, None));
                }
            }
        }
        for (shard, replicas) in groups {
            let monitor = self.shards.entry(shard).or_default();
            monitor.check(&replicas).map_err(|e| InvariantViolation(format!("{shard}: {e}")))?;
        }
        self.check_replicas(nodes)?;
        self.check_cleanup(now, nodes)
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

    fn invariants(config: &ShardedScenario) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::new(ShardedInvariants {
            factor: config.replicas,
            spares: config.spares,
            ..Default::default()
        }))
    }
}

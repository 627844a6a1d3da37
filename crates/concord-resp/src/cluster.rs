//! Redis Cluster's view of a sharded Concord: the shape a backend reports, so that the front door
//! can answer `CLUSTER SLOTS`, `CLUSTER SHARDS`, `CLUSTER NODES`, `CLUSTER INFO` and friends the
//! way redis-server does, and cluster-aware clients route themselves.
//!
//! A backend that is not sharded reports no topology ([`crate::Backend::topology`] is `None`),
//! and `CLUSTER` commands are then answered as a redis-server without `cluster-enabled` answers
//! them.
//!
//! Concord's words map onto Redis Cluster's: a *shard* (one Raft group serving a set of slot
//! ranges) is a Redis Cluster shard; the shard's Raft *leader* is its primary ("master"), its
//! followers are its replicas. Node and shard ids are 40 lowercase hex characters, as Redis's.

/// The cluster as one node sees it (its latest applied shard map, and the leaders it knows).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Topology {
    /// This node's id (40 hex characters).
    pub myself: String,
    /// The shard map's epoch (Redis: `cluster_current_epoch`).
    pub current_epoch: u64,
    /// Whether every slot has an owner with a known leader (Redis: `cluster_state:ok`).
    pub state_ok: bool,
    /// Every node of the cluster, in a stable order.
    pub nodes: Vec<TopologyNode>,
    /// Every shard, in a stable order.
    pub shards: Vec<TopologyShard>,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologyNode {
    /// 40 hex characters.
    pub id: String,
    /// The address clients reach its RESP door at.
    pub host: String,
    pub port: u16,
    /// Its peer (cluster bus) port.
    pub cluster_port: u16,
    /// Whether this node currently has a connection to it (itself: always).
    pub connected: bool,
}

/// One shard: the slot ranges it serves and the nodes replicating it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologyShard {
    /// 40 hex characters.
    pub id: String,
    /// Inclusive slot ranges `(first, last)`, ascending.
    pub slots: Vec<(u16, u16)>,
    /// The node id of the shard's leader, if one is known.
    pub primary: Option<String>,
    /// The node ids of its other replicas (followers), in a stable order.
    pub replicas: Vec<String>,
    /// The epoch at which the shard's slots last changed (Redis: the primary's config epoch).
    pub config_epoch: u64,
    /// Slot ranges being moved out of this shard right now (answered `-TRYAGAIN` until the move ends).
    pub moving_out: Vec<(u16, u16)>,
}

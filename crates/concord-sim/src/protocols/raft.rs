//! Raft replicating the key-value store, in the simulator.
//!
//! `[protocol.raft]` takes every [`RaftConfig`] setting, plus two of the simulator's own:
//!
//! ```toml
//! [protocol.raft]
//! election_timeout_min = "150ms"
//! election_timeout_max = "300ms"
//! reads = "lease"          # how workload reads are served: "linearizable" (ReadIndex), "lease", "stale"
//! kv = { max_value_bytes = 1024 }   # the store's limits
//! ```
//!
//! Without `voters`, every node of the scenario is a voter. After every step the online checker
//! ([`concord_raft::SafetyMonitor`]) verifies election safety, log matching, leader completeness and
//! state-machine safety over the whole cluster, remembering every leader and every committed
//! entry it has seen since the run began.

use crate::protocol::{Invariant, ReplicaState, SimProtocol};
use concord_core::{Access, ClientId, Durable, KvStateMachine, NodeId, Op, Time, Value};
use concord_kv::{KvLimits, KvStore};
use concord_raft::message::Session;
use concord_raft::{RaftConfig, RaftNode, RaftRequest, ReadConsistency, SafetyMonitor};

type KvRequest = RaftRequest<
    <KvStore as concord_core::StateMachine>::Command,
    <KvStore as concord_core::StateMachine>::Query,
>;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Raft replicating Concord's key-value store.
pub type RaftKv = RaftNode<KvStore>;

/// How simulated clients' reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    /// ReadIndex: linearizable, one heartbeat round per read batch.
    Linearizable,
    /// Leader lease: linearizable only while clocks respect `clock_drift_bound`.
    Lease,
    /// Any node's local state: fast and possibly stale – not linearizable.
    Stale,
}

/// `[protocol.raft]`.
#[derive(Clone, Debug)]
pub struct RaftScenario {
    pub raft: RaftConfig,
    /// Whether the scenario listed `voters` (otherwise every node votes).
    pub voters_given: bool,
    pub reads: Reads,
    pub kv: KvLimits,
}

impl<'de> Deserialize<'de> for RaftScenario {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Take out the simulator's own keys, then let RaftConfig judge the rest (it rejects
        // unknown keys). `#[serde(flatten)]` would silently accept typos, so it is not used.
        let mut table = toml::Table::deserialize(d)?;
        let reads = match table.remove("reads") {
            Some(v) => Reads::deserialize(v).map_err(|e| de::Error::custom(format!("reads: {e}")))?,
            None => Reads::Linearizable,
        };
        let kv = match table.remove("kv") {
            Some(v) => KvLimits::deserialize(v).map_err(|e| de::Error::custom(format!("kv: {e}")))?,
            None => KvLimits::default(),
        };
        let voters_given = table.contains_key("voters");
        let raft = RaftConfig::deserialize(toml::Value::Table(table)).map_err(de::Error::custom)?;
        Ok(RaftScenario { raft, voters_given, reads, kv })
    }
}

/// The online safety checks, with their memory of the run.
struct RaftInvariants(SafetyMonitor);

impl Invariant<RaftKv> for RaftInvariants {
    fn check(&mut self, _now: Time, nodes: &[(NodeId, Option<&RaftKv>)]) -> Result<(), String> {
        self.0.check(nodes).map_err(|v| v.to_string())
    }
}

impl SimProtocol for RaftKv {
    type Config = RaftScenario;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &RaftScenario,
        durable: &Durable,
    ) -> Result<Self, String> {
        let mut raft = config.raft.clone();
        if !config.voters_given {
            raft.voters = cluster.to_vec();
        }
        RaftNode::boot(id, raft, KvStore::new(config.kv.clone()), durable).map_err(|e| e.to_string())
    }

    fn workload_request(config: &RaftScenario, client: ClientId, seq: u64, op: &Op) -> KvRequest {
        match KvStore::access(op, Time::ZERO) {
            Access::Write(command) => {
                RaftRequest::Propose { session: Some(Session { client, seq }), command }
            }
            Access::Read(query) => {
                let consistency = match config.reads {
                    Reads::Linearizable => ReadConsistency::Linearizable,
                    Reads::Lease => ReadConsistency::Lease,
                    Reads::Stale => ReadConsistency::Stale,
                };
                RaftRequest::Read { consistency, query }
            }
        }
    }

    fn observe(&self) -> Option<ReplicaState> {
        let store = self.state_machine();
        Some(
            store
                .iter()
                .map(|kv| {
                    let key = String::from_utf8_lossy(&kv.key).into_owned();
                    let text = String::from_utf8_lossy(&kv.value);
                    let value =
                        text.parse::<i64>().map(Value::Int).unwrap_or_else(|_| Value::Str(text.into_owned()));
                    (key, value)
                })
                .collect(),
        )
    }

    fn invariants(_config: &RaftScenario) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::new(RaftInvariants(SafetyMonitor::default())))
    }
}

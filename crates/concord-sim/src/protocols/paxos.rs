//! Multi-Paxos replicating the key-value store, in the simulator.
//!
//! `[protocol.paxos]` takes every [`PaxosConfig`] setting, plus the store's limits:
//!
//! ```toml
//! [protocol.paxos]
//! heartbeat_interval = "50ms"
//! leader_timeout_min = "150ms"
//! leader_timeout_max = "300ms"
//! backoff = true             # false: duelling proposers may preempt each other forever
//! q1 = 4                     # flexible quorums (default: majorities); q1 + q2 must exceed n
//! q2 = 2
//! kv = { max_value_bytes = 1024 }
//! ```
//!
//! Every node of the scenario is an acceptor, a replica and a potential leader. Reads go through
//! the log. After every step the online checker ([`concord_paxos::SafetyMonitor`]) verifies that at
//! most one value is chosen per slot and never changes, P2b, and that no acceptor accepts below its
//! promise.

use crate::protocol::{Invariant, InvariantViolation, ReplicaState, SimProtocol};
use concord_core::{Durable, NodeId, Time, Value};
use concord_kv::{KvLimits, KvStore};
use concord_paxos::{PaxosConfig, PaxosNode, SafetyMonitor};
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Paxos replicating Concord's key-value store.
pub type PaxosKv = PaxosNode<KvStore>;

/// `[protocol.paxos]`.
#[derive(Clone, Debug)]
pub struct PaxosScenario {
    pub paxos: PaxosConfig,
    pub kv: KvLimits,
}

impl<'de> Deserialize<'de> for PaxosScenario {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Take out the simulator's own key, then let PaxosConfig judge the rest (it rejects
        // unknown keys; `#[serde(flatten)]` would not).
        let mut table = toml::Table::deserialize(d)?;
        let kv = match table.remove("kv") {
            Some(v) => KvLimits::deserialize(v).map_err(|e| de::Error::custom(format!("kv: {e}")))?,
            None => KvLimits::default(),
        };
        let paxos = PaxosConfig::deserialize(toml::Value::Table(table)).map_err(de::Error::custom)?;
        Ok(PaxosScenario { paxos, kv })
    }
}

struct PaxosInvariants(SafetyMonitor);

impl Invariant<PaxosKv> for PaxosInvariants {
    fn check(&mut self, _now: Time, nodes: &[(NodeId, Option<&PaxosKv>)]) -> Result<(), InvariantViolation> {
        self.0.check(nodes).map_err(|e| InvariantViolation(e.to_string()))
    }
}

impl SimProtocol for PaxosKv {
    type Config = PaxosScenario;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &PaxosScenario,
        durable: &Durable,
    ) -> Result<Self, String> {
        PaxosNode::boot(id, cluster.to_vec(), config.paxos.clone(), KvStore::new(config.kv.clone()), durable)
    }

    fn observe(&self) -> Option<ReplicaState> {
        Some(
            self.state_machine()
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

    fn invariants(_config: &PaxosScenario) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::new(PaxosInvariants(SafetyMonitor::default())))
    }
}

//! The protocols the simulator knows by name, and running a scenario file whatever its protocol.
//!
//! A scenario's `[protocol.NAME]` table picks the protocol; [`run`] dispatches on that name to the
//! generic simulator instantiated for the protocol's type.

pub mod cached;
pub mod dynamo;
pub mod gossip;
pub mod paxos;
pub mod raft;
pub mod sharded;

use crate::scenario::{protocol_name, Scenario, ScenarioError};
use crate::sim::{RunOptions, RunReport, Simulation};
use crate::SimProtocol;
use std::path::Path;
use std::sync::Arc;

/// A scenario loaded for one of the known protocols, ready to run many times (one per seed).
#[derive(Clone)]
pub enum LoadedScenario {
    Gossip(Arc<Scenario<<concord_gossip::GossipNode as SimProtocol>::Config>>),
    Raft(Arc<Scenario<raft::RaftScenario>>),
    Dynamo(Arc<Scenario<concord_dynamo::DynamoConfig>>),
    Sharded(Arc<Scenario<sharded::ShardedScenario>>),
    Cached(Arc<Scenario<cached::CachedScenario>>),
    Paxos(Arc<Scenario<paxos::PaxosScenario>>),
}

/// Code generic over the protocol, for [`LoadedScenario::visit`] (a closure cannot be generic).
pub trait ProtocolVisitor {
    type Output;
    fn visit<P: SimProtocol>(self, scenario: &Arc<Scenario<P::Config>>) -> Self::Output;
}

/// Protocol names accepted in `[protocol.NAME]`.
pub const PROTOCOLS: &[&str] = &["gossip", "raft", "dynamo", "sharded", "cached", "paxos"];

/// Parse a scenario and check its protocol's own settings with `validate` (whatever its error
/// type: each protocol crate has its own; the scenario error carries its message).
fn validated<C: serde::de::DeserializeOwned, E: std::fmt::Display>(
    path: &Path,
    text: &str,
    name: &str,
    validate: impl Fn(&C) -> Result<(), E>,
) -> Result<Scenario<C>, ScenarioError> {
    let scenario: Scenario<C> = Scenario::parse(path, text)?;
    validate(scenario.protocol().1).map_err(|message| ScenarioError::Invalid {
        path: path.to_owned(),
        message: format!("[protocol.{name}]: {message}"),
    })?;
    Ok(scenario)
}

impl LoadedScenario {
    /// Parse a scenario, whatever its protocol.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let name = protocol_name(path, text)?;
        match name.as_str() {
            "gossip" => Ok(LoadedScenario::Gossip(Arc::new(Scenario::parse(path, text)?))),
            // A setting no node could boot with is the scenario's mistake (exit 2), not a failed run.
            "raft" => Ok(LoadedScenario::Raft(Arc::new(validated(
                path,
                text,
                "raft",
                |c: &raft::RaftScenario| c.raft.validate().map_err(|e| e.to_string()),
            )?))),
            "dynamo" => Ok(LoadedScenario::Dynamo(Arc::new(validated(
                path,
                text,
                "dynamo",
                concord_dynamo::DynamoConfig::validate,
            )?))),
            "sharded" => Ok(LoadedScenario::Sharded(Arc::new(validated(
                path,
                text,
                "sharded",
                sharded::ShardedScenario::validate,
            )?))),
            "cached" => Ok(LoadedScenario::Cached(Arc::new(cached::measure::parse(path, text)?))),
            // Quorum sizes are judged against the scenario's node count.
            "paxos" => {
                let scenario: Scenario<paxos::PaxosScenario> = Scenario::parse(path, text)?;
                let nodes = scenario.run.nodes.0 as usize;
                scenario.protocol().1.paxos.validate(nodes).map_err(|e| ScenarioError::Invalid {
                    path: path.to_owned(),
                    message: format!("[protocol.paxos]: {e}"),
                })?;
                Ok(LoadedScenario::Paxos(Arc::new(scenario)))
            }
            other => Err(ScenarioError::Invalid {
                path: path.to_owned(),
                message: format!("unknown protocol {other:?}; known protocols: {}", PROTOCOLS.join(", ")),
            }),
        }
    }

    /// Read and parse a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Run it once.
    pub fn run(&self, options: RunOptions) -> RunReport {
        match self {
            LoadedScenario::Gossip(s) => {
                Simulation::<concord_gossip::GossipNode>::new(Arc::clone(s), options).run()
            }
            LoadedScenario::Raft(s) => Simulation::<raft::RaftKv>::new(Arc::clone(s), options).run(),
            LoadedScenario::Dynamo(s) => {
                Simulation::<concord_dynamo::DynamoNode>::new(Arc::clone(s), options).run()
            }
            LoadedScenario::Sharded(s) => {
                Simulation::<concord_shard::ShardedNode>::new(Arc::clone(s), options).run()
            }
            LoadedScenario::Cached(s) => Simulation::<cached::CachedNode>::new(Arc::clone(s), options).run(),
            LoadedScenario::Paxos(s) => Simulation::<paxos::PaxosKv>::new(Arc::clone(s), options).run(),
        }
    }

    /// Do something generic over the protocol: `visitor.visit::<P>` is called with the
    /// protocol's type (used by `concord sim --interactive` and session replays).
    pub fn visit<V: ProtocolVisitor>(&self, visitor: V) -> V::Output {
        match self {
            LoadedScenario::Gossip(s) => visitor.visit::<concord_gossip::GossipNode>(s),
            LoadedScenario::Raft(s) => visitor.visit::<raft::RaftKv>(s),
            LoadedScenario::Dynamo(s) => visitor.visit::<concord_dynamo::DynamoNode>(s),
            LoadedScenario::Sharded(s) => visitor.visit::<concord_shard::ShardedNode>(s),
            LoadedScenario::Cached(s) => visitor.visit::<cached::CachedNode>(s),
            LoadedScenario::Paxos(s) => visitor.visit::<paxos::PaxosKv>(s),
        }
    }

    pub fn description(&self) -> &str {
        match self {
            LoadedScenario::Gossip(s) => &s.description,
            LoadedScenario::Raft(s) => &s.description,
            LoadedScenario::Dynamo(s) => &s.description,
            LoadedScenario::Sharded(s) => &s.description,
            LoadedScenario::Cached(s) => &s.description,
            LoadedScenario::Paxos(s) => &s.description,
        }
    }
}

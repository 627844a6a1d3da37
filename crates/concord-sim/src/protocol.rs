//! What the simulator needs from a protocol beyond [`concord_core::Process`].
//!
//! A protocol crate stays free of simulator code; the simulator adapts each protocol by
//! implementing [`SimProtocol`] for it (see `protocols/`). That adapter says how to build a node
//! from its configuration and its disk, how to look at a replica's data (for convergence checks),
//! and which invariants to check online after every step.

use concord_core::history::History;
use concord_core::{ClientId, Durable, NodeId, Op, RequestId, Service, Time, Value};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A replica's data as the checkers see it: key → value.
pub type ReplicaState = BTreeMap<String, Value>;

/// A protocol the simulator can run.
pub trait SimProtocol: Service {
    /// The `[protocol.NAME]` table of a scenario.
    type Config: DeserializeOwned + Clone + Debug + Send + Sync + 'static;

    /// Build node `id` of `cluster` from what its disk holds. Called at boot and after every
    /// restart; an error (a corrupt disk) keeps the node down and is reported as a violation.
    fn boot(id: NodeId, cluster: &[NodeId], config: &Self::Config, durable: &Durable)
        -> Result<Self, String>;

    /// The request a simulated client sends for `op`. Defaults to [`concord_core::Service::request`];
    /// protocols whose scenario settings shape requests (e.g. Raft's read consistency) override it.
    fn workload_request(_config: &Self::Config, client: ClientId, seq: u64, op: &Op) -> Self::Request {
        Self::request(client, seq, op)
    }

    /// The node a workload request for `op` goes to, given the node the client targets now. The
    /// default keeps the client's target; a protocol whose clients route by key (a cache tier: a
    /// read goes to the key's cache node, a write to the database) overrides it.
    fn route(_config: &Self::Config, _request: RequestId, target: NodeId, _op: &Op) -> NodeId {
        target
    }

    /// Checks of the finished run's history beyond the scenario's `run.checks`, one line per
    /// problem (e.g. a cache tier's staleness bound). The default finds nothing.
    fn check_history(_scenario: &crate::Scenario<Self::Config>, _history: &History) -> Vec<String> {
        Vec::new()
    }

    /// The replica's data, for the convergence check (`None` if the protocol holds no data).
    fn observe(&self) -> Option<ReplicaState> {
        None
    }

    /// Judge converged replicas against the history; return one line per problem found.
    /// The default demands that all replicas hold identical data.
    fn check_convergence(replicas: &[(NodeId, ReplicaState)], _history: &History) -> Vec<String> {
        identical_replicas(replicas)
    }

    /// A fresh online invariant checker for one run, if the protocol has invariants.
    fn invariants(_config: &Self::Config) -> Option<Box<dyn Invariant<Self>>> {
        None
    }
}

/// A broken invariant, found after the step that broke it: a bug in the protocol (or a deliberate
/// one a mutation switched on). The message says what broke, where and when; the simulator reports
/// it as `invariant violated at <time>: <message>` and stops the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvariantViolation(pub String);

impl From<String> for InvariantViolation {
    fn from(message: String) -> Self {
        InvariantViolation(message)
    }
}

/// An invariant checked after every step of a run. It may keep its own memory across steps (e.g.
/// "at most one leader per term, ever" needs to remember past leaders).
pub trait Invariant<P: Service> {
    /// `nodes` lists every node; crashed ones are `None`. Return a description of a violation.
    fn check(&mut self, now: Time, nodes: &[(NodeId, Option<&P>)]) -> Result<(), InvariantViolation>;

    /// A reply left `node` for its client. It is called when the reply effect is carried out –
    /// after every sync the node asked for before it – not when the node decided to reply: a
    /// node may decide, then crash before its disk confirms, and that client was never told
    /// anything. What a client may rely on starts here.
    fn on_reply(&mut self, _node: NodeId, _response: &P::Response) {}
}

/// Differences between replicas: one line per key on which two replicas disagree.
pub fn identical_replicas(replicas: &[(NodeId, ReplicaState)]) -> Vec<String> {
    let Some((first_id, first)) = replicas.first() else { return Vec::new() };
    let mut problems = Vec::new();
    for (id, state) in &replicas[1..] {
        let keys: std::collections::BTreeSet<&String> = first.keys().chain(state.keys()).collect();
        for key in keys {
            let (a, b) = (first.get(key), state.get(key));
            if a != b {
                let show = |v: Option<&Value>| v.map_or("absent".to_string(), |v| v.to_string());
                problems.push(format!("key {key}: {first_id} has {}, {id} has {}", show(a), show(b)));
            }
        }
    }
    problems
}

//! Gossip broadcast in the simulator.
//!
//! Convergence for a grow-only set means more than "all replicas are equal": every acknowledged
//! broadcast must be on every replica (nothing acknowledged is lost), and every item on a replica
//! must have been broadcast by some client (nothing is invented).

use crate::protocol::{identical_replicas, ReplicaState, SimProtocol};
use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::{Durable, NodeId};
use concord_gossip::{GossipConfig, GossipNode};
use std::collections::BTreeSet;

impl SimProtocol for GossipNode {
    type Config = GossipConfig;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &GossipConfig,
        durable: &Durable,
    ) -> Result<Self, String> {
        Ok(GossipNode::boot(id, cluster, config.clone(), durable))
    }

    fn observe(&self) -> Option<ReplicaState> {
        Some(
            self.by_key()
                .iter()
                .map(|(k, vs)| (k.to_string(), Value::List(vs.iter().map(|v| Value::Int(*v)).collect())))
                .collect(),
        )
    }

    fn check_convergence(replicas: &[(NodeId, ReplicaState)], history: &History) -> Vec<String> {
        let mut problems = identical_replicas(replicas);
        let writes = |kind: EventType| -> BTreeSet<(String, Value)> {
            history
                .events
                .iter()
                .filter(|e| e.kind == kind && e.op.f == OpFn::Write)
                .filter_map(|e| Some((e.op.key.clone()?, e.op.value.clone())))
                .collect()
        };
        let (invoked, acknowledged) = (writes(EventType::Invoke), writes(EventType::Ok));
        for (id, state) in replicas {
            let held: BTreeSet<(String, Value)> = state
                .iter()
                .flat_map(|(k, v)| match v {
                    Value::List(vs) => vs.iter().map(|v| (k.clone(), v.clone())).collect(),
                    _ => Vec::new(),
                })
                .collect();
            let lost: Vec<String> = acknowledged.difference(&held).map(|(k, v)| format!("{k}={v}")).collect();
            if !lost.is_empty() {
                problems.push(format!("{id} lacks {} acknowledged item(s): {}", lost.len(), preview(&lost)));
            }
            let invented: Vec<String> = held.difference(&invoked).map(|(k, v)| format!("{k}={v}")).collect();
            if !invented.is_empty() {
                problems.push(format!(
                    "{id} holds {} item(s) nobody wrote: {}",
                    invented.len(),
                    preview(&invented)
                ));
            }
        }
        problems
    }
}

fn preview(items: &[String]) -> String {
    let mut text = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        text.push_str(&format!(", … ({} more)", items.len() - 5));
    }
    text
}

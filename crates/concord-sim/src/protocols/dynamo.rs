//! Dynamo-style replication in the simulator (`[protocol.dynamo]`, every [`DynamoConfig`] key).
//!
//! **Convergence** (after heal and quiescence): every key is held by exactly its `n` home replicas
//! and they hold the same set of versions; every version held was written by some operation that
//! did not fail (the convergence module of `concord-check`, with siblings read as a set of written
//! values); a counter's value lies between the sum of its acknowledged increments and that sum
//! plus the increments whose outcome is unknown.
//!
//! **Invariants** (online): a dot names one version only; and, checked every 100 ms of virtual
//! time while every node is up, *no acknowledged write is lost*: for each write a coordinator
//! acknowledged, some replica still holds it as a sibling or holds a version whose causal context
//! covers it (it was overwritten by a write that saw it, or deleted by one). Last-write-wins breaks
//! this, by design, and the invariant says so.

use crate::protocol::{Invariant, ReplicaState, SimProtocol};
use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::{Durable, NodeId, Time};
use concord_dynamo::store::Object;
use concord_dynamo::version::Dot;
use concord_dynamo::{int_value, DynamoConfig, DynamoNode, RECENT_ACKS};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The reserved key under which each replica reports `n` to the convergence check.
const REPLICAS_KEY: &str = "#n";
const COUNTER_TAG: &str = "counter";

impl SimProtocol for DynamoNode {
    type Config = DynamoConfig;

    fn boot(
        id: NodeId,
        cluster: &[NodeId],
        config: &DynamoConfig,
        durable: &Durable,
    ) -> Result<Self, String> {
        DynamoNode::boot(id, cluster, config.clone(), durable)
    }

    fn observe(&self) -> Option<ReplicaState> {
        let mut state = ReplicaState::new();
        state.insert(REPLICAS_KEY.into(), Value::Int(self.config().n as i64));
        for (key, object) in self.store() {
            if !self.is_home(key) {
                continue;
            }
            let value = match object {
                Object::Register(v) => {
                    let mut values: Vec<Value> = v.values().into_iter().map(int_value).collect();
                    values.sort();
                    Value::List(values)
                }
                Object::Counter(c) => {
                    Value::List(vec![Value::Str(COUNTER_TAG.into()), Value::Int(c.value())])
                }
            };
            state.insert(key.clone(), value);
        }
        Some(state)
    }

    fn check_convergence(replicas: &[(NodeId, ReplicaState)], history: &History) -> Vec<String> {
        let mut problems = Vec::new();
        let n = replicas.iter().find_map(|(_, s)| s.get(REPLICAS_KEY)?.as_int()).unwrap_or(1) as usize;
        let expected = n.min(replicas.len());
        let keys: BTreeSet<&String> =
            replicas.iter().flat_map(|(_, s)| s.keys()).filter(|k| *k != REPLICAS_KEY).collect();
        for key in &keys {
            let holders: Vec<NodeId> =
                replicas.iter().filter(|(_, s)| s.contains_key(*key)).map(|(id, _)| *id).collect();
            if holders.len() != expected {
                problems.push(format!(
                    "key {key}: held by {} of its {expected} home replicas ({holders:?})",
                    holders.len()
                ));
            }
        }
        // Registers: agreement and no invented versions. Siblings are a set of written values,
        // which is what the checker accepts for an append-built list: read writes as appends.
        let is_counter = |v: &Value| matches!(v, Value::List(items) if items.first() == Some(&Value::Str(COUNTER_TAG.into())));
        let registers: Vec<(NodeId, BTreeMap<String, Value>)> = replicas
            .iter()
            .map(|(id, s)| {
                let map = s
                    .iter()
                    .filter(|(k, v)| *k != REPLICAS_KEY && !is_counter(v))
                    .map(|(k, v)| (k.clone(), v.clone()));
                (*id, map.collect())
            })
            .collect();
        let mut as_appends = history.clone();
        for e in &mut as_appends.events {
            if e.op.f == OpFn::Write {
                e.op.f = OpFn::Append;
            }
        }
        // Each key among its holders only: the other nodes are not its replicas.
        for key in &keys {
            let holders: Vec<(NodeId, BTreeMap<String, Value>)> = registers
                .iter()
                .filter_map(|(id, map)| {
                    Some((*id, BTreeMap::from([((*key).clone(), map.get(*key)?.clone())])))
                })
                .collect();
            let report = concord_check::convergence::check(&holders, &as_appends);
            if !report.is_ok() {
                problems.extend(report.to_string().lines().map(str::to_string));
            }
        }
        // Counters: agreement, and the value within [acknowledged, acknowledged + unknown].
        let mut counters: BTreeMap<&String, BTreeSet<i64>> = BTreeMap::new();
        for (_, s) in replicas {
            for (k, v) in s {
                if let (true, Value::List(items)) = (is_counter(v), v) {
                    counters.entry(k).or_default().insert(items[1].as_int().unwrap_or(0));
                }
            }
        }
        let (acked, unknown) = increments(history);
        for (key, values) in counters {
            if values.len() > 1 {
                problems.push(format!("counter {key}: replicas disagree: {values:?}"));
                continue;
            }
            let value = *values.first().expect("one value");
            let low = acked.get(key.as_str()).copied().unwrap_or(0);
            let high = low + unknown.get(key.as_str()).copied().unwrap_or(0);
            if value < low.min(high) || value > low.max(high) {
                problems.push(format!(
                    "counter {key} = {value}, but acknowledged increments sum to {low} (up to {high} with unknown ones)"
                ));
            }
        }
        problems
    }

    fn invariants(_config: &DynamoConfig) -> Option<Box<dyn Invariant<Self>>> {
        Some(Box::new(AckLedger::default()))
    }
}

/// Sums of `add` increments per key: (acknowledged, unknown outcome).
fn increments(history: &History) -> (BTreeMap<&str, i64>, BTreeMap<&str, i64>) {
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let (mut acked, mut unknown) = (BTreeMap::new(), BTreeMap::new());
    for (i, e) in history.events.iter().enumerate() {
        if e.op.f != OpFn::Add {
            continue;
        }
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, i);
            }
            kind => {
                let Some(inv) = open.remove(&e.process) else { continue };
                let inv = &history.events[inv];
                let (Some(key), Some(delta)) = (inv.op.key.as_deref(), inv.op.value.as_int()) else {
                    continue;
                };
                match kind {
                    EventType::Ok => *acked.entry(key).or_insert(0) += delta,
                    EventType::Info => *unknown.entry(key).or_insert(0) += delta,
                    _ => {}
                }
            }
        }
    }
    (acked, unknown)
}

/// Every write acknowledged by a coordinator during a run, collected from the nodes' bounded
/// `recent_acks` after every step, and checked against the replicas.
#[derive(Default)]
pub struct AckLedger {
    /// Per node: acknowledgements already collected in its current life.
    seen: BTreeMap<NodeId, u64>,
    /// Every acknowledged write: dot → (key, value).
    pub acked: BTreeMap<Dot, (String, Option<Vec<u8>>)>,
    last_check: Option<Time>,
}

impl AckLedger {
    /// Collect new acknowledgements; fails if a dot was reused for another version.
    pub fn collect(&mut self, nodes: &[(NodeId, Option<&DynamoNode>)]) -> Result<(), String> {
        for (id, node) in nodes {
            let Some(node) = node else {
                self.seen.insert(*id, 0); // it restarts counting from zero
                continue;
            };
            let seen = self.seen.entry(*id).or_insert(0);
            let fresh = node.acks_total() - *seen;
            if fresh > RECENT_ACKS as u64 {
                return Err(format!("{id} acknowledged {fresh} writes in one step; the ledger missed some"));
            }
            for record in node.recent_acks().iter().rev().take(fresh as usize) {
                let entry = (record.key.clone(), record.value.clone());
                if let Some(previous) = self.acked.insert(record.dot, entry.clone()) {
                    if previous != entry {
                        return Err(format!(
                            "dot {:?} names two versions: {previous:?} and {entry:?}",
                            record.dot
                        ));
                    }
                }
            }
            *seen = node.acks_total();
        }
        Ok(())
    }

    /// Acknowledged writes that no replica holds or has seen overwritten (only meaningful when
    /// every node is up: a crashed node's disk is not visible).
    pub fn lost(&self, nodes: &[(NodeId, Option<&DynamoNode>)]) -> Vec<(Dot, String, Option<Vec<u8>>)> {
        self.acked
            .iter()
            .filter(|(dot, (key, _))| {
                !nodes.iter().filter_map(|(_, n)| *n).any(|n| {
                    let accounts = |o: &Object| matches!(o, Object::Register(v) if v.accounts_for(**dot));
                    n.store().get(key).is_some_and(accounts)
                        || n.hints().iter().any(|((_, k), o)| k == key && accounts(o))
                })
            })
            .map(|(dot, (key, value))| (*dot, key.clone(), value.clone()))
            .collect()
    }
}

impl Invariant<DynamoNode> for AckLedger {
    fn check(&mut self, now: Time, nodes: &[(NodeId, Option<&DynamoNode>)]) -> Result<(), String> {
        self.collect(nodes)?;
        let due = self.last_check.is_none_or(|t| now.saturating_since(t) >= Duration::from_millis(100));
        if due && nodes.iter().all(|(_, n)| n.is_some()) {
            self.last_check = Some(now);
            let lost = self.lost(nodes);
            if let Some((dot, key, value)) = lost.first() {
                let shown = value.as_deref().map_or(Value::Nil, int_value);
                return Err(format!(
                    "{} acknowledged write(s) lost, e.g. {key} = {shown} ({dot:?}): no replica holds it or a version that saw it",
                    lost.len()
                ));
            }
        }
        Ok(())
    }
}

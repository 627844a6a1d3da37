//! Dynamo-style replication in the simulator (`[protocol.dynamo]`, every [`DynamoConfig`] key).
//!
//! **Convergence** (after heal and quiescence): every key is held by exactly its `n` home replicas
//! and they hold the same set of versions; every version held was written by some operation that
//! did not fail (the convergence module of `concord-check`, with siblings read as a set of written
//! values); a counter's value lies between the sum of its acknowledged increments and that sum
//! plus the increments whose outcome is unknown.
//!
//! **Invariants** (online): each node's own ([`DynamoNode::check_invariants`]: well-formed
//! versions, no dot seen that was not issued); a dot names one version only; and, checked every
//! 100 ms of virtual time while every node is up, *no acknowledged write is lost*: for each write whose
//! acknowledgement left a node for its client, some replica still holds it as a sibling or holds
//! a version whose causal context covers it (it was overwritten by a write that saw it, or
//! deleted by one). Last-write-wins breaks this, by design, and the invariant says so.
//!
//! "Acknowledged" is the reply the client can see, not the coordinator's decision to send it: a
//! coordinator decides as soon as `w` copies are counted, its own among them, but the reply waits
//! in the node's I/O pipeline behind the sync of that copy. A crash in between loses the unsynced
//! copy *and* the reply, and the client records a timeout. Counting decisions (as this ledger did
//! until issue #25) reported such writes as lost acknowledged writes – at W=1, where the
//! coordinator's copy is the only one, in 155 of 200 seeds of a crash-only scenario.

use crate::protocol::{Invariant, InvariantViolation, ReplicaState, SimProtocol};
use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::{Durable, NodeId, Time};
use concord_dynamo::store::Object;
use concord_dynamo::version::{Dot, Versions};
use concord_dynamo::{int_value, DynamoConfig, DynamoNode, DynamoResponse, RECENT_ACKS};
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
                // The simulator's workloads write no sets or maps; shown as their members.
                Object::Set(s) => Value::List(s.elements().map(|m| int_value(m)).collect()),
                Object::Map(m) => Value::List(m.iter().map(|(f, _)| int_value(f)).collect()),
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

/// Every write acknowledged during a run, and checked against the replicas. Two sources meet
/// here: the coordinators' bounded `recent_acks` (collected after every step) say which version a
/// dot names; the replies carried out (see [`Invariant::on_reply`]) say which dots a client was
/// told about. Only a dot in both is an acknowledged write.
#[derive(Default)]
pub struct AckLedger {
    /// Per node: acknowledgements already collected in its current life.
    seen: BTreeMap<NodeId, u64>,
    /// Every write a coordinator decided to acknowledge, by its dot.
    pub recorded: BTreeMap<Dot, Recorded>,
    /// Per node: how many times it has crashed so far.
    lives: BTreeMap<NodeId, u64>,
    /// Dots whose acknowledgement left a node for a client.
    pub replied: BTreeSet<Dot>,
    /// Per live node: its change count when its own invariants were last checked.
    checked: BTreeMap<NodeId, u64>,
    last_check: Option<Time>,
}

/// A write a coordinator decided to acknowledge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub key: String,
    pub value: Option<Vec<u8>>,
    /// The coordinator's life (crashes before it) when it decided.
    pub life: u64,
}

impl AckLedger {
    /// Collect new acknowledgements; fails if a dot was reused for another version.
    pub fn collect(&mut self, nodes: &[(NodeId, Option<&DynamoNode>)]) -> Result<(), String> {
        for (id, node) in nodes {
            let Some(node) = node else {
                if self.seen.insert(*id, 0).is_some() {
                    *self.lives.entry(*id).or_insert(0) += 1; // it restarts counting from zero
                }
                continue;
            };
            let life = self.lives.get(id).copied().unwrap_or(0);
            let seen = self.seen.entry(*id).or_insert(0);
            let fresh = node.acks_total() - *seen;
            if fresh > RECENT_ACKS as u64 {
                return Err(format!("{id} acknowledged {fresh} writes in one step; the ledger missed some"));
            }
            *seen = node.acks_total();
            let fresh: Vec<_> = node.recent_acks().iter().rev().take(fresh as usize).collect();
            for record in fresh {
                let entry = Recorded { key: record.key.clone(), value: record.value.clone(), life };
                if let Some(previous) = self.recorded.get(&record.dot) {
                    let same = previous.key == entry.key && previous.value == entry.value;
                    if !same && !self.died_unseen(record.dot, previous, life, nodes) {
                        return Err(format!(
                            "dot {:?} names two versions: {:?} and {:?}",
                            record.dot,
                            (&previous.key, &previous.value),
                            (&entry.key, &entry.value)
                        ));
                    }
                }
                self.recorded.insert(record.dot, entry);
            }
        }
        Ok(())
    }

    /// Whether the version `previous` that `dot` first named died with its coordinator, unseen:
    /// the coordinator crashed since recording it, no client was told of it, and no replica holds
    /// it. A coordinator reserves dots on disk in blocks, synced with the write that first uses
    /// a block; a crash before that sync loses the reservation, and the restarted node issues the
    /// same dots again. That is sound exactly when nothing that used them escaped the crash,
    /// which is what this checks.
    fn died_unseen(
        &self,
        dot: Dot,
        previous: &Recorded,
        life: u64,
        nodes: &[(NodeId, Option<&DynamoNode>)],
    ) -> bool {
        let holds = |v: &Versions| v.siblings.iter().any(|s| s.dot == dot && s.value == previous.value);
        previous.life < life && !self.replied.contains(&dot) && !any_copy(nodes, &previous.key, holds)
    }

    /// Mark as acknowledged every recorded write whose `ok` completion is in `history`, for
    /// callers that step a simulation themselves instead of running the invariant (the eventual
    /// lab). Workload values are unique per write, so (key, value) names one write; deletes carry
    /// no value and are not matched.
    pub fn acknowledge_from(&mut self, history: &History) {
        let ok_writes: BTreeSet<(&str, Vec<u8>)> = history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Ok && e.op.f == OpFn::Write)
            .filter_map(|e| Some((e.op.key.as_deref()?, e.op.value.as_int()?.to_string().into_bytes())))
            .collect();
        for (dot, Recorded { key, value, .. }) in &self.recorded {
            if value.as_ref().is_some_and(|v| ok_writes.contains(&(key.as_str(), v.clone()))) {
                self.replied.insert(*dot);
            }
        }
    }

    /// Writes recorded and acknowledged to a client.
    pub fn acknowledged(&self) -> usize {
        self.recorded.keys().filter(|dot| self.replied.contains(dot)).count()
    }

    /// Acknowledged writes that no replica holds or has seen overwritten (only meaningful when
    /// every node is up: a crashed node's disk is not visible).
    pub fn lost(&self, nodes: &[(NodeId, Option<&DynamoNode>)]) -> Vec<(Dot, String, Option<Vec<u8>>)> {
        self.recorded
            .iter()
            .filter(|(dot, _)| self.replied.contains(dot))
            .filter(|(dot, Recorded { key, .. })| !any_copy(nodes, key, |v| v.accounts_for(**dot)))
            .map(|(dot, r)| (*dot, r.key.clone(), r.value.clone()))
            .collect()
    }
}

/// Whether any live node holds a register copy of `key` – its own or a hint – that `test` accepts.
fn any_copy(nodes: &[(NodeId, Option<&DynamoNode>)], key: &str, test: impl Fn(&Versions) -> bool) -> bool {
    let accepts = |o: &Object| matches!(o, Object::Register(v) if test(v));
    nodes.iter().filter_map(|(_, n)| *n).any(|n| {
        n.store().get(key).is_some_and(accepts) || n.hints().iter().any(|((_, k), o)| k == key && accepts(o))
    })
}

impl Invariant<DynamoNode> for AckLedger {
    fn on_reply(&mut self, _node: NodeId, response: &DynamoResponse) {
        if let DynamoResponse::Written { dot: Some(dot), .. } = response {
            self.replied.insert(*dot);
        }
    }

    fn check(
        &mut self,
        now: Time,
        nodes: &[(NodeId, Option<&DynamoNode>)],
    ) -> Result<(), InvariantViolation> {
        // A node's own invariants, after every step that changed its objects (they hold between).
        for (id, node) in nodes {
            match node {
                Some(node) if self.checked.get(id) != Some(&node.changes()) => {
                    node.check_invariants().map_err(|e| InvariantViolation(e.to_string()))?;
                    self.checked.insert(*id, node.changes());
                }
                Some(_) => {}
                None => {
                    self.checked.remove(id);
                }
            }
        }
        self.collect(nodes)?;
        let due = self.last_check.is_none_or(|t| now.saturating_since(t) >= Duration::from_millis(100));
        if due && nodes.iter().all(|(_, n)| n.is_some()) {
            self.last_check = Some(now);
            let lost = self.lost(nodes);
            if let Some((dot, key, value)) = lost.first() {
                let shown = value.as_deref().map_or(Value::Nil, int_value);
                return Err(InvariantViolation(format!(
                    "{} acknowledged write(s) lost, e.g. {key} = {shown} ({dot:?}): no replica holds it or a version that saw it",
                    lost.len()
                )));
            }
        }
        Ok(())
    }
}

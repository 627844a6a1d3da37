//! Convergence: after the faults heal and the system quiesces, do all replicas agree – on a value
//! that was actually written?
//!
//! Eventual consistency promises only this: *if writes stop, replicas eventually hold the same data*.
//! It is a liveness property, so it can only be checked at a moment when "eventually" has had its
//! chance: the caller (a simulation's liveness phase, TigerBeetle-style) heals every fault, lets
//! anti-entropy / read repair / log replication run until the system is quiet, then dumps every
//! replica's key-value map and calls [`check`].
//!
//! Two things are checked, per key:
//!
//! 1. **Agreement.** Every replica holds the same value, where a missing key counts as `nil` (absent).
//!    Keys where replicas differ are reported with each replica's value.
//! 2. **No invented values.** Every value held by any replica was written by some operation in the
//!    history that did not `fail`: the value of a `write`, the new value of a `cas`, or – for a list
//!    built by `append` – a list whose every element was appended to that key (or a list that was
//!    written whole). A value that nobody wrote means corruption, a merge function that makes values
//!    up, or a wrong key. `nil` (absent) is always allowed: data loss is for the linearizability and
//!    durability checks to find, not this one.
//!
//! Operations with an unknown outcome (`info`) count as written – they may have taken effect.
//! Operations without a key are ignored (replica maps are keyed).

use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::id::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A key on which replicas disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub key: String,
    /// Each replica's value (`None`: the replica does not have the key).
    pub values: Vec<(NodeId, Option<Value>)>,
}

/// A value held by replicas that no operation wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invented {
    pub key: String,
    pub value: Value,
    pub nodes: Vec<NodeId>,
}

/// The result of [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvergenceReport {
    pub replicas: usize,
    /// Keys present on at least one replica.
    pub keys_checked: usize,
    /// Keys on which replicas differ, in key order.
    pub diverging: Vec<Divergence>,
    /// Values nobody wrote, in key order.
    pub invented: Vec<Invented>,
}

impl ConvergenceReport {
    /// Converged, and on written values only.
    pub fn is_ok(&self) -> bool {
        self.diverging.is_empty() && self.invented.is_empty()
    }
}

impl fmt::Display for ConvergenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return writeln!(f, "converged: {} replicas agree on {} keys", self.replicas, self.keys_checked);
        }
        writeln!(
            f,
            "NOT converged: {} of {} keys diverge, {} invented values ({} replicas)",
            self.diverging.len(),
            self.keys_checked,
            self.invented.len(),
            self.replicas
        )?;
        for d in &self.diverging {
            write!(f, "  diverges {:?}:", d.key)?;
            for (node, value) in &d.values {
                match value {
                    Some(v) => write!(f, " {node}={v}")?,
                    None => write!(f, " {node}=(absent)")?,
                }
            }
            writeln!(f)?;
        }
        for i in &self.invented {
            let nodes: Vec<String> = i.nodes.iter().map(|n| n.to_string()).collect();
            writeln!(f, "  invented {:?} = {} on {} (never written)", i.key, i.value, nodes.join(", "))?;
        }
        Ok(())
    }
}

/// What the history wrote, per key.
#[derive(Default)]
struct Written {
    whole: BTreeSet<Value>,
    appended: BTreeSet<Value>,
}

impl Written {
    fn allows(&self, value: &Value) -> bool {
        match value {
            Value::Nil => true,
            _ if self.whole.contains(value) => true,
            Value::List(items) => !items.is_empty() && items.iter().all(|item| self.appended.contains(item)),
            _ => false,
        }
    }
}

/// Check that `replicas` agree, on written values. See the module docs.
pub fn check(replicas: &[(NodeId, BTreeMap<String, Value>)], history: &History) -> ConvergenceReport {
    let written = written_values(history);
    let keys: BTreeSet<&String> = replicas.iter().flat_map(|(_, map)| map.keys()).collect();
    let mut report = ConvergenceReport {
        replicas: replicas.len(),
        keys_checked: keys.len(),
        ..ConvergenceReport::default()
    };
    let nothing = Written::default();
    for key in keys {
        let values: Vec<(NodeId, Option<Value>)> =
            replicas.iter().map(|(node, map)| (*node, map.get(key).cloned())).collect();
        // Absent and nil are the same thing to a reader.
        let normal = |v: &Option<Value>| v.clone().unwrap_or(Value::Nil);
        if values.iter().any(|(_, v)| normal(v) != normal(&values[0].1)) {
            report.diverging.push(Divergence { key: key.clone(), values: values.clone() });
        }
        let allowed = written.get(key.as_str()).unwrap_or(&nothing);
        let mut invented: BTreeMap<&Value, Vec<NodeId>> = BTreeMap::new();
        for (node, value) in &values {
            if let Some(value) = value {
                if !allowed.allows(value) {
                    invented.entry(value).or_default().push(*node);
                }
            }
        }
        for (value, nodes) in invented {
            report.invented.push(Invented { key: key.clone(), value: value.clone(), nodes });
        }
    }
    report
}

/// Values written per key by operations that did not fail.
fn written_values(history: &History) -> BTreeMap<&str, Written> {
    // Pair each invocation with its completion by process, to leave out failed ones. A malformed
    // history is read as well as it can be: an unmatched invocation counts as written (unknown).
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut failed = vec![false; history.events.len()];
    for (i, event) in history.events.iter().enumerate() {
        match event.kind {
            EventType::Invoke => {
                open.insert(event.process, i);
            }
            kind => {
                if let Some(invoke) = open.remove(&event.process) {
                    failed[invoke] = kind == EventType::Fail;
                }
            }
        }
    }
    let mut written: BTreeMap<&str, Written> = BTreeMap::new();
    for (i, event) in history.events.iter().enumerate() {
        let (EventType::Invoke, Some(key), false) = (event.kind, event.op.key.as_deref(), failed[i]) else {
            continue;
        };
        let w = written.entry(key).or_default();
        match event.op.f {
            OpFn::Write => {
                w.whole.insert(event.op.value.clone());
            }
            OpFn::Cas => {
                if let Some((_, new)) = event.op.value.as_pair() {
                    w.whole.insert(new.clone());
                }
            }
            OpFn::Append => {
                w.appended.insert(event.op.value.clone());
            }
            _ => {}
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;
    use concord_core::time::Time;

    fn history() -> History {
        let mut h = History::default();
        h.push(0, EventType::Invoke, Op::write("a", 1), Time(0));
        h.push(0, EventType::Ok, Op::write("a", 1), Time(1));
        h.push(1, EventType::Invoke, Op::write("b", 2), Time(2));
        h.push(1, EventType::Info, Op::write("b", 2), Time(3));
        h.push(2, EventType::Invoke, Op::write("c", 3), Time(4));
        h.push(2, EventType::Fail, Op::write("c", 3), Time(5));
        h
    }

    fn replica(node: u32, entries: &[(&str, i64)]) -> (NodeId, BTreeMap<String, Value>) {
        (NodeId(node), entries.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect())
    }

    #[test]
    fn agreeing_replicas_on_written_values_converge() {
        let replicas = [replica(1, &[("a", 1), ("b", 2)]), replica(2, &[("a", 1), ("b", 2)])];
        let report = check(&replicas, &history());
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.keys_checked, 2);
    }

    #[test]
    fn divergence_and_invention_are_reported() {
        // n2 lacks b; n3 holds c=3, written only by a failed write; n1 holds a=9, never written.
        let replicas = [
            replica(1, &[("a", 9), ("b", 2)]),
            replica(2, &[("a", 1)]),
            replica(3, &[("a", 1), ("b", 2), ("c", 3)]),
        ];
        let report = check(&replicas, &history());
        assert!(!report.is_ok());
        let diverging: Vec<&str> = report.diverging.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(diverging, vec!["a", "b", "c"]);
        let invented: Vec<(&str, &Value)> =
            report.invented.iter().map(|i| (i.key.as_str(), &i.value)).collect();
        assert_eq!(invented, vec![("a", &Value::Int(9)), ("c", &Value::Int(3))]);
        assert!(report.to_string().contains("n2=(absent)"));
    }

    #[test]
    fn appended_lists_are_checked_element_by_element() {
        let mut h = History::default();
        for (p, x) in [(0, 1), (1, 2)] {
            let op = Op { f: OpFn::Append, key: Some("l".into()), value: Value::Int(x) };
            h.push(p, EventType::Invoke, op.clone(), Time(0));
            h.push(p, EventType::Ok, op, Time(1));
        }
        let list = |items: &[i64]| Value::List(items.iter().map(|&i| Value::Int(i)).collect());
        let good = [(NodeId(1), BTreeMap::from([("l".to_string(), list(&[2, 1]))]))];
        assert!(check(&good, &h).is_ok());
        let bad = [(NodeId(1), BTreeMap::from([("l".to_string(), list(&[2, 7]))]))];
        assert_eq!(check(&bad, &h).invented.len(), 1);
    }
}

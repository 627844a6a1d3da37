//! # Conflict-free replicated data types (state-based)
//!
//! A CRDT is a data type whose replicas can be updated independently and merged in any order, any
//! number of times, and still agree: its `merge` is a *join* – **commutative** (order of merges does
//! not matter), **associative** (grouping does not matter) and **idempotent** (merging twice is
//! merging once). Those three properties are exactly what an unreliable network that reorders and
//! duplicates messages needs (Shapiro et al., "Conflict-free Replicated Data Types", 2011); the
//! property tests below check them.
//!
//! * [`GCounter`] – grow-only counter: one entry per node, each node increments its own; merge is
//!   the pointwise maximum; the value is the sum.
//! * [`PnCounter`] – two G-counters, increments and decrements.
//! * [`OrSet`] – observed-remove set: each add is tagged with a unique dot; a remove deletes the
//!   tags it has *observed*, so an add concurrent with a remove wins.
//! * [`LwwRegister`] – one value with a `(timestamp, node)` stamp; the greatest stamp wins. It
//!   loses concurrent writes by design (see [`crate::version`]).
//!
//! The replication layer stores PN-counters as objects (`Increment` requests); the others are
//! here as building blocks with their laws tested.

use crate::version::{Dot, VersionVector};
use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Grow-only counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GCounter(pub BTreeMap<NodeId, u64>);

impl GCounter {
    pub fn increment(&mut self, node: NodeId, by: u64) {
        *self.0.entry(node).or_insert(0) += by;
    }

    pub fn value(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: &GCounter) {
        for (&node, &count) in &other.0 {
            let entry = self.0.entry(node).or_insert(0);
            *entry = (*entry).max(count);
        }
    }
}

/// Counter with increments and decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    pub increments: GCounter,
    pub decrements: GCounter,
}

impl PnCounter {
    pub fn add(&mut self, node: NodeId, delta: i64) {
        if delta >= 0 {
            self.increments.increment(node, delta as u64);
        } else {
            self.decrements.increment(node, delta.unsigned_abs());
        }
    }

    pub fn value(&self) -> i64 {
        self.increments.value() as i64 - self.decrements.value() as i64
    }

    pub fn merge(&mut self, other: &PnCounter) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }
}

/// Observed-remove set (add wins over a concurrent remove).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet<T: Ord> {
    /// Every element with the dots of the adds that are still live.
    entries: BTreeMap<T, BTreeSet<Dot>>,
    /// Every dot this replica has seen (added or removed).
    context: VersionVector,
}

impl<T: Ord + Clone> OrSet<T> {
    pub fn new() -> Self {
        OrSet { entries: BTreeMap::new(), context: VersionVector::default() }
    }

    /// Add `element`, tagged with `node`'s next dot.
    pub fn add(&mut self, node: NodeId, element: T) {
        let counter = self.context.0.get(&node).copied().unwrap_or(0) + 1;
        let dot = Dot { node, counter };
        self.context.add(dot);
        self.entries.entry(element).or_default().insert(dot);
    }

    /// Remove `element`: only the adds seen here are removed.
    pub fn remove(&mut self, element: &T) {
        self.entries.remove(element);
    }

    pub fn contains(&self, element: &T) -> bool {
        self.entries.contains_key(element)
    }

    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.entries.keys()
    }

    pub fn merge(&mut self, other: &OrSet<T>) {
        let keys: BTreeSet<T> = self.entries.keys().chain(other.entries.keys()).cloned().collect();
        let empty = BTreeSet::new();
        for key in keys {
            let mine = self.entries.get(&key).unwrap_or(&empty);
            let theirs = other.entries.get(&key).unwrap_or(&empty);
            // A dot survives if both hold it, or one holds it and the other never saw it.
            let live: BTreeSet<Dot> = mine
                .iter()
                .filter(|d| theirs.contains(d) || !other.context.covers(**d))
                .chain(theirs.iter().filter(|d| !self.context.covers(**d)))
                .copied()
                .collect();
            if live.is_empty() {
                self.entries.remove(&key);
            } else {
                self.entries.insert(key, live);
            }
        }
        self.context.join(&other.context);
    }
}

/// Last-writer-wins register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    /// `(timestamp, node)`: the node breaks ties between equal timestamps.
    pub stamp: (u64, NodeId),
    pub value: Option<T>,
}

impl<T: Clone + Ord> LwwRegister<T> {
    pub fn set(&mut self, timestamp: u64, node: NodeId, value: T) {
        self.merge(&LwwRegister { stamp: (timestamp, node), value: Some(value) });
    }

    pub fn merge(&mut self, other: &LwwRegister<T>) {
        // Comparing the value too keeps merge commutative even for two writes with one stamp.
        if (other.stamp, &other.value) > (self.stamp, &self.value) {
            *self = other.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn laws<T: Clone + PartialEq + std::fmt::Debug>(
        a: &T,
        b: &T,
        c: &T,
        merge: impl Fn(&mut T, &T),
    ) -> Result<(), TestCaseError> {
        let m = |x: &T, y: &T| {
            let mut x = x.clone();
            merge(&mut x, y);
            x
        };
        prop_assert_eq!(m(a, b), m(b, a), "commutative");
        prop_assert_eq!(m(&m(a, b), c), m(a, &m(b, c)), "associative");
        prop_assert_eq!(m(a, a), a.clone(), "idempotent");
        Ok(())
    }

    fn arb_gcounter() -> impl Strategy<Value = GCounter> {
        proptest::collection::btree_map((1u32..5).prop_map(NodeId), 0u64..100, 0..4).prop_map(GCounter)
    }

    fn arb_pn() -> impl Strategy<Value = PnCounter> {
        (arb_gcounter(), arb_gcounter())
            .prop_map(|(increments, decrements)| PnCounter { increments, decrements })
    }

    /// OR-sets reached by real histories: one shared pool of operations, each replica applying a
    /// prefix of each node's operations (so dots are never reused for different elements), then
    /// removes of what it sees.
    fn arb_orset() -> impl Strategy<Value = OrSet<u8>> {
        (proptest::collection::vec((1u32..4, 0u8..4), 0..8), proptest::collection::vec(0u8..4, 0..3))
            .prop_map(|(adds, removes)| {
                let mut s = OrSet::new();
                for (node, element) in adds {
                    s.add(NodeId(node), element);
                }
                for r in removes {
                    s.remove(&r);
                }
                s
            })
    }

    fn arb_lww() -> impl Strategy<Value = LwwRegister<u8>> {
        (0u64..5, 1u32..3, proptest::option::of(0u8..3))
            .prop_map(|(t, n, value)| LwwRegister { stamp: (t, NodeId(n)), value })
    }

    proptest! {
        #[test]
        fn gcounter_merge_is_a_join(a in arb_gcounter(), b in arb_gcounter(), c in arb_gcounter()) {
            laws(&a, &b, &c, GCounter::merge)?;
        }

        #[test]
        fn pncounter_merge_is_a_join(a in arb_pn(), b in arb_pn(), c in arb_pn()) {
            laws(&a, &b, &c, PnCounter::merge)?;
        }

        #[test]
        fn lww_register_merge_is_a_join(a in arb_lww(), b in arb_lww(), c in arb_lww()) {
            laws(&a, &b, &c, LwwRegister::merge)?;
        }
    }

    #[test]
    fn orset_merge_is_a_join_on_replicas_of_one_history() {
        // Dots must mean one add each, so replicas are built from one history: node i's adds are
        // issued in order and every replica sees a prefix of them plus its own removes.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&(arb_orset(), 0usize..8, 0usize..8, 0usize..8), |(full, x, y, z)| {
                let replica = |cut: usize| {
                    // Drop the live dots above `cut` per node: a replica that has not seen them.
                    let mut r = full.clone();
                    for dots in r.entries.values_mut() {
                        dots.retain(|d| d.counter as usize <= cut);
                    }
                    r.entries.retain(|_, d| !d.is_empty());
                    for c in r.context.0.values_mut() {
                        *c = (*c).min(cut as u64);
                    }
                    r
                };
                laws(&replica(x), &replica(y), &replica(z), OrSet::merge)
            })
            .unwrap();
    }

    #[test]
    fn orset_add_wins_over_a_concurrent_remove() {
        let mut a = OrSet::new();
        a.add(NodeId(1), "x");
        let mut b = a.clone();
        b.remove(&"x");
        a.add(NodeId(1), "x"); // concurrent with b's remove: a new dot b never saw
        b.merge(&a);
        assert!(b.contains(&"x"));
        let mut c = OrSet::new();
        c.add(NodeId(2), "y");
        let mut d = c.clone();
        d.remove(&"y");
        c.merge(&d);
        assert!(!c.contains(&"y"), "an observed remove wins");
    }

    #[test]
    fn pncounter_counts_every_node_once() {
        let mut a = PnCounter::default();
        a.add(NodeId(1), 5);
        let mut b = PnCounter::default();
        b.add(NodeId(2), -2);
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.value(), 3);
    }
}

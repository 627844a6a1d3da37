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
//! * [`DotMap`] – the core of the observed-remove types: keys with dot-tagged payloads and a causal
//!   context; a remove deletes the dots it has *observed*, so a write concurrent with it wins.
//! * [`OrSet`] – observed-remove set (a `DotMap` without payloads): what a Redis set becomes in
//!   the eventual mode.
//! * [`LwwMap`] – fields as an OR-set, each with a last-writer-wins value (Riak's map of
//!   registers): what a Redis hash becomes.
//! * [`LwwRegister`] – one value with a `(timestamp, node)` stamp; the greatest stamp wins. It
//!   loses concurrent writes by design (see [`crate::version`]).
//!
//! The replication layer stores PN-counters, OR-sets and LWW-maps as objects
//! ([`crate::store::Object`]); their dots come from the node's durable dot counter, as register
//! versions' do, so a dot is never reused even across crashes.

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

/// The core of the observed-remove types: keys, each with the dots of the writes that made it live
/// and one payload per dot, plus the causal context of everything this replica has seen.
///
/// A write of a key *replaces* the dots of that key this replica holds by one fresh dot (so an
/// element added twice carries one dot, not two). A remove drops the key's dots held here – only
/// those: a dot written elsewhere and not yet seen here is untouched, so **an add concurrent with a
/// remove wins**. Merge keeps a dot if both sides hold it, or if one side holds it and the other
/// has never seen it (its context does not cover it); a dot that one side has seen and no longer
/// holds was removed there, and stays removed.
///
/// One dot may be shared by several keys (one `SADD k a b` is one event): the merge decides per
/// (key, dot) pair, and the context's "seen" is true for every key at once because replicas ship
/// whole states. **Dots must be unique**: the caller issues them from a counter that is never
/// reused and that runs above every dot of its node this replica has seen (`DynamoNode` uses its
/// durable dot counter); [`DotMap::write`] checks the second in debug builds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DotMap<K: Ord, P> {
    entries: BTreeMap<K, BTreeMap<Dot, P>>,
    context: VersionVector,
}

impl<K: Ord, P> Default for DotMap<K, P> {
    fn default() -> Self {
        DotMap { entries: BTreeMap::new(), context: VersionVector::default() }
    }
}

impl<K: Ord + Clone, P: Clone + PartialEq> DotMap<K, P> {
    /// Make `key` live with `payload`, tagged `dot`, replacing the dots of `key` held here.
    /// Returns whether `key` was absent before.
    pub fn write(&mut self, dot: Dot, key: K, payload: P) -> bool {
        self.write_all(dot, [(key, payload)]) == 1
    }

    /// [`DotMap::write`] of several keys as one event: one dot tags them all. Returns how many
    /// were absent before.
    pub fn write_all(&mut self, dot: Dot, items: impl IntoIterator<Item = (K, P)>) -> usize {
        debug_assert!(!self.context.covers(dot), "dot {dot:?} reused: the context has seen it");
        self.context.add(dot);
        items
            .into_iter()
            .filter(|(key, payload)| {
                self.entries.insert(key.clone(), BTreeMap::from([(dot, payload.clone())])).is_none()
            })
            .count()
    }

    /// Remove the dots of `key` held here. Returns whether `key` was live.
    pub fn remove(&mut self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    /// The live payloads of `key`, by dot: more than one after concurrent writes of it.
    pub fn get(&self, key: &K) -> Option<&BTreeMap<Dot, P>> {
        self.entries.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Live keys in order, each with its payloads.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &BTreeMap<Dot, P>)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every dot this replica has seen, live or removed.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// Join another replica's state into this one (see the type's docs for the rule).
    pub fn merge(&mut self, other: &DotMap<K, P>) {
        let keys: BTreeSet<K> = self.entries.keys().chain(other.entries.keys()).cloned().collect();
        let empty = BTreeMap::new();
        for key in keys {
            let mine = self.entries.get(&key).unwrap_or(&empty);
            let theirs = other.entries.get(&key).unwrap_or(&empty);
            let live: BTreeMap<Dot, P> = mine
                .iter()
                .filter(|(d, _)| theirs.contains_key(d) || !other.context.covers(**d))
                .chain(theirs.iter().filter(|(d, _)| !self.context.covers(**d)))
                .map(|(d, p)| (*d, p.clone()))
                .collect();
            if live.is_empty() {
                self.entries.remove(&key);
            } else {
                self.entries.insert(key, live);
            }
        }
        self.context.join(&other.context);
    }

    /// What every replica keeps true: each live dot is covered by the context (a replica has seen
    /// what it holds), and no key is live without a dot.
    pub fn check(&self) -> Result<(), String> {
        for dots in self.entries.values() {
            if dots.is_empty() {
                return Err("a key is live without any dot".into());
            }
            if let Some(d) = dots.keys().find(|d| !self.context.covers(**d)) {
                return Err(format!("live dot {d:?} is not covered by the context {:?}", self.context));
            }
        }
        Ok(())
    }
}

/// Observed-remove set (add wins over a concurrent remove): a [`DotMap`] without payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrSet<T: Ord>(DotMap<T, ()>);

impl<T: Ord> Default for OrSet<T> {
    fn default() -> Self {
        OrSet(DotMap::default())
    }
}

impl<T: Ord + Clone> OrSet<T> {
    pub fn new() -> Self {
        OrSet(DotMap::default())
    }

    /// Add `element`, tagged with `node`'s next dot *in this set's context*. Only for a set whose
    /// every replica of `node` holds all of `node`'s adds (as in the tests); a store whose
    /// replicas can lose state uses [`OrSet::add_with`] with dots from a durable counter.
    pub fn add(&mut self, node: NodeId, element: T) {
        let counter = self.0.context.0.get(&node).copied().unwrap_or(0) + 1;
        self.add_with(Dot { node, counter }, element);
    }

    /// Add `element` tagged `dot` (unique, see [`DotMap`]). Returns whether it was absent here.
    pub fn add_with(&mut self, dot: Dot, element: T) -> bool {
        self.0.write(dot, element, ())
    }

    /// Add several elements as one event, tagged `dot`. Returns how many were absent here.
    pub fn add_all(&mut self, dot: Dot, elements: impl IntoIterator<Item = T>) -> usize {
        self.0.write_all(dot, elements.into_iter().map(|e| (e, ())))
    }

    /// Remove `element`: only the adds seen here are removed. Returns whether it was present.
    pub fn remove(&mut self, element: &T) -> bool {
        self.0.remove(element)
    }

    pub fn contains(&self, element: &T) -> bool {
        self.0.contains(element)
    }

    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn context(&self) -> &VersionVector {
        self.0.context()
    }

    pub fn merge(&mut self, other: &OrSet<T>) {
        self.0.merge(&other.0)
    }

    pub fn check(&self) -> Result<(), String> {
        self.0.check()
    }
}

/// A value written into an [`LwwMap`] field: the coordinator's clock at the write and the bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamped {
    /// Nanoseconds on the writing coordinator's clock; compared only between *concurrent* writes.
    pub timestamp: u64,
    pub value: Vec<u8>,
}

/// A map of fields to last-writer-wins registers, with fields as an OR-set (Riak's map of
/// registers; what a Redis hash becomes in the eventual mode).
///
/// Each field holds the dot-tagged values written to it ([`DotMap`]): a write replaces the values
/// it has seen by one new one, so a **causally later write always wins**, whatever the clocks say.
/// Only writes that did not see each other (concurrent: on two sides of a partition, or at two
/// coordinators at once) leave several values in a field; a read then shows the one with the
/// greatest `(timestamp, dot)` – last-writer-wins among concurrent writes only – and the next
/// write of the field replaces them all. Removing a field removes the values seen; a concurrent
/// write of the field survives it (add wins), as in a Riak map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwMap(DotMap<Vec<u8>, Stamped>);

impl LwwMap {
    /// Write `field`. Returns whether the field was absent here (what `HSET` counts).
    pub fn set(&mut self, dot: Dot, timestamp: u64, field: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.write(dot, field, Stamped { timestamp, value })
    }

    /// Write several fields as one event: one dot and one timestamp. Returns how many were new.
    pub fn set_all(
        &mut self,
        dot: Dot,
        timestamp: u64,
        fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> usize {
        self.0.write_all(dot, fields.into_iter().map(|(f, value)| (f, Stamped { timestamp, value })))
    }

    /// Remove `field` (the values seen here). Returns whether it was present.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.0.remove(&field.to_vec())
    }

    /// The field's value: of concurrent values, the greatest `(timestamp, dot)`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.0.get(&field.to_vec()).map(winner)
    }

    /// Every live field with its value, by field.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(f, values)| (f.as_slice(), winner(values)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn context(&self) -> &VersionVector {
        self.0.context()
    }

    pub fn merge(&mut self, other: &LwwMap) {
        self.0.merge(&other.0)
    }

    pub fn check(&self) -> Result<(), String> {
        self.0.check()
    }
}

fn winner(values: &BTreeMap<Dot, Stamped>) -> &[u8] {
    let (_, s) = values.iter().max_by_key(|(d, s)| (s.timestamp, **d)).expect("a live field has a value");
    &s.value
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
                    for dots in r.0.entries.values_mut() {
                        dots.retain(|d, _| d.counter as usize <= cut);
                    }
                    r.0.entries.retain(|_, d| !d.is_empty());
                    for c in r.0.context.0.values_mut() {
                        *c = (*c).min(cut as u64);
                    }
                    r
                };
                laws(&replica(x), &replica(y), &replica(z), OrSet::merge)
            })
            .unwrap();
    }

    /// One step of a history on three replicas: replica `r` writes or removes key `k`, or one
    /// replica merges another's state (as replication, read repair and anti-entropy do).
    #[derive(Clone, Debug)]
    enum Step {
        Write(usize, u8),
        Remove(usize, u8),
        Merge { from: usize, to: usize },
    }

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            (0usize..3, 0u8..4).prop_map(|(r, k)| Step::Write(r, k)),
            (0usize..3, 0u8..4).prop_map(|(r, k)| Step::Remove(r, k)),
            (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Merge { from, to }),
        ];
        proptest::collection::vec(step, 0..30)
    }

    /// Replay `steps` on three [`DotMap`]s (replica `i` issues dots of node `i + 1` from its own
    /// counter; a write's payload is its step number). Returns the replicas, every (key, dot)
    /// written, and every (key, dot) some replica dropped while holding it – by a remove, or by a
    /// later write of the key that replaced it.
    #[allow(clippy::type_complexity)]
    fn replay(steps: &[Step]) -> ([DotMap<u8, u64>; 3], BTreeSet<(u8, Dot)>, BTreeSet<(u8, Dot)>) {
        let mut replicas: [DotMap<u8, u64>; 3] = Default::default();
        let mut counters = [0u64; 3];
        let (mut written, mut dropped) = (BTreeSet::new(), BTreeSet::new());
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Write(r, k) | Step::Remove(r, k) => {
                    let held = replicas[r].get(&k).into_iter().flat_map(|d| d.keys().map(move |d| (k, *d)));
                    dropped.extend(held);
                    if let Step::Write(..) = step {
                        counters[r] += 1;
                        let dot = Dot { node: NodeId(r as u32 + 1), counter: counters[r] };
                        replicas[r].write(dot, k, i as u64);
                        written.insert((k, dot));
                    } else {
                        replicas[r].remove(&k);
                    }
                }
                Step::Merge { from, to } => {
                    let other = replicas[from].clone();
                    replicas[to].merge(&other);
                }
            }
        }
        (replicas, written, dropped)
    }

    proptest! {
        #[test]
        fn dotmap_merge_is_a_join_on_states_of_real_histories(steps in arb_steps()) {
            let ([a, b, c], _, _) = replay(&steps);
            for r in [&a, &b, &c] {
                prop_assert_eq!(r.check(), Ok(()));
            }
            laws(&a, &b, &c, DotMap::merge)?;
        }

        /// The OR-set's specification: after every replica's state is merged, a write is live if and
        /// only if no replica ever removed or replaced it while holding it – so an add that a remove
        /// did not observe always survives (add wins), and nothing dropped comes back.
        #[test]
        fn dotmap_keeps_exactly_the_writes_no_replica_dropped(steps in arb_steps()) {
            let ([mut a, b, c], written, dropped) = replay(&steps);
            a.merge(&b);
            a.merge(&c);
            let live: BTreeSet<(u8, Dot)> =
                a.iter().flat_map(|(k, dots)| dots.keys().map(move |d| (*k, *d))).collect();
            let expected: BTreeSet<(u8, Dot)> = written.difference(&dropped).copied().collect();
            prop_assert_eq!(live, expected);
        }
    }

    #[test]
    fn lww_map_a_causally_later_write_wins_whatever_the_clocks_say() {
        let dot = |node, counter| Dot { node: NodeId(node), counter };
        let mut a = LwwMap::default();
        assert!(a.set(dot(1, 1), 100, b"f".to_vec(), b"old".to_vec()), "a new field");
        let mut b = a.clone();
        // Node 2 saw "old" and writes later, but its clock is behind: it still wins.
        assert!(!b.set(dot(2, 1), 50, b"f".to_vec(), b"new".to_vec()), "not a new field");
        a.merge(&b);
        assert_eq!(a.get(b"f"), Some(&b"new"[..]));
        // Two writes that did not see each other: both kept, the greater timestamp is read, and
        // the next write (which sees both) replaces both.
        let mut c = a.clone();
        a.set(dot(1, 2), 300, b"f".to_vec(), b"a".to_vec());
        c.set(dot(3, 1), 200, b"f".to_vec(), b"c".to_vec());
        a.merge(&c);
        assert_eq!(a.get(b"f"), Some(&b"a"[..]));
        assert_eq!(a.0.get(&b"f".to_vec()).map(BTreeMap::len), Some(2), "both concurrent values kept");
        a.set(dot(1, 3), 1, b"f".to_vec(), b"z".to_vec());
        assert_eq!(a.0.get(&b"f".to_vec()).map(BTreeMap::len), Some(1));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![(&b"f"[..], &b"z"[..])]);
    }

    #[test]
    fn lww_map_a_field_written_concurrently_with_its_removal_survives() {
        let dot = |node, counter| Dot { node: NodeId(node), counter };
        let mut a = LwwMap::default();
        a.set(dot(1, 1), 1, b"f".to_vec(), b"v1".to_vec());
        let mut b = a.clone();
        assert!(b.remove(b"f"));
        a.set(dot(1, 2), 2, b"f".to_vec(), b"v2".to_vec()); // b never saw this
        b.merge(&a);
        assert_eq!(b.get(b"f"), Some(&b"v2"[..]));
        // A removal that saw every write of the field wins.
        let mut c = b.clone();
        c.remove(b"f");
        b.merge(&c);
        assert_eq!(b.get(b"f"), None);
        assert!(b.is_empty());
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

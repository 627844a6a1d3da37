//! # Versions of one key: dotted version vectors, siblings, and last-write-wins
//!
//! Dynamo lets any replica accept a write, so two clients can write the same key at the same time
//! through different replicas. Neither write saw the other: they are *concurrent*, and the store
//! must not silently pick one. It keeps both as **siblings** and hands both to the next reader;
//! the reader's next write carries the **causal context** it read, which says "I have seen these
//! versions", and so replaces exactly the siblings it saw (Dynamo paper §4.4).
//!
//! ## Why dotted version vectors and not plain vector clocks
//!
//! Classic Dynamo attaches a vector clock to each version. With a vector clock per version, the
//! clock of a new write must be a *successor of everything it replaces*; when two clients write
//! through the same coordinator with old contexts, the coordinator's entry makes one look newer
//! than the other, and a concurrent update is silently dropped – or, if the client id is used as
//! the entry instead, the clocks grow with the number of clients. **Dotted version vectors**
//! (Preguiça, Baquero et al., "Dotted Version Vectors: Logical Clocks for Optimistic Replication",
//! 2010; the DVV *sets* of Riak 2.0) separate two things:
//!
//! * each sibling carries a **dot** `(node, counter)` – the one event that created it;
//! * the key carries one **context**, a version vector summarising every dot the replica has
//!   seen for this key (the causal past of all its siblings together).
//!
//! A write with context `c` removes the siblings whose dots `c` covers and adds one sibling with a
//! fresh dot. Two writes with the same old context both survive as siblings, whatever coordinator
//! they went through – concurrency is recorded exactly, and the metadata stays one entry per
//! *replica node*, not per client.
//!
//! Dots are issued only by a home replica of the key (the coordinator of a write forwards it to
//! one), from a per-node counter that is durable and never reused. The issuing node stores the new
//! sibling locally (synced) before anyone else learns it, so it never issues a dot that hides one
//! of its own earlier dots it has not seen.
//!
//! ## Last-write-wins
//!
//! [`Resolution::Lww`] keeps one version per key: the one with the greatest `(timestamp, dot)`,
//! where the timestamp is the *coordinator's local clock*. It needs no siblings and no context –
//! and it **loses updates**: of two concurrent writes one disappears, and a causally later write
//! coordinated by a node whose clock lags is discarded in favour of the older one. The context is
//! still tracked (as the winner's own causal past) only so that checkers can tell an overwritten
//! write from a lost one.

use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How concurrent writes to one key are resolved, for the whole cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Dotted version vectors: concurrent writes become siblings; nothing is lost.
    #[default]
    Dvv,
    /// Last write (by coordinator timestamp) wins: concurrent or clock-skewed writes are lost.
    Lww,
}

/// One event: the `counter`-th dot issued by `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

/// For each node, the highest counter seen: it *covers* every dot of that node up to there.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionVector(pub BTreeMap<NodeId, u64>);

impl VersionVector {
    pub fn covers(&self, dot: Dot) -> bool {
        self.0.get(&dot.node).is_some_and(|&c| c >= dot.counter)
    }

    pub fn add(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.node).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for (&node, &counter) in &other.0 {
            self.add(Dot { node, counter });
        }
        // Postcondition (the result covers the input it absorbed; covering the old `self` holds
        // because `add` only ever raises an entry).
        debug_assert!(self.descends_from(other), "a join covers what it joined");
    }

    /// `self` ≤ `other` pointwise.
    pub fn descends_from(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(&node, &counter)| self.covers(Dot { node, counter }))
    }
}

/// One version of a key. `value: None` is a tombstone (a delete).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sibling {
    pub dot: Dot,
    /// The coordinator's local clock at the write, in nanoseconds (used only by LWW).
    pub timestamp: u64,
    pub value: Option<Vec<u8>>,
}

/// Every version a replica holds for one key, and the causal context that summarises them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Versions {
    pub context: VersionVector,
    /// Sorted by dot, no two with the same dot.
    pub siblings: Vec<Sibling>,
}

impl Versions {
    /// Apply a write made with the causal context `seen` (what the writer read).
    pub fn write(&mut self, resolution: Resolution, seen: &VersionVector, new: Sibling) {
        match resolution {
            Resolution::Dvv => {
                let dot = new.dot;
                self.siblings.retain(|s| !seen.covers(s.dot));
                self.context.join(seen);
                self.context.add(new.dot);
                self.siblings.push(new);
                self.siblings.sort();
                // Postconditions: the new version is held, and the context has seen it and `seen`.
                debug_assert!(self.siblings.iter().any(|s| s.dot == dot));
                debug_assert!(self.context.covers(dot) && self.context.descends_from(seen));
            }
            Resolution::Lww => {
                let mut context = seen.clone();
                context.add(new.dot);
                self.merge(resolution, &Versions { context, siblings: vec![new] });
            }
        }
    }

    /// Merge another replica's versions into these. Commutative, associative and idempotent.
    ///
    /// Checked in debug builds (the simulator's): with DVV the result covers both inputs – its
    /// context descends from both contexts, and every input sibling is either kept or overwritten
    /// by a write that saw it ([`Versions::accounts_for`]); with LWW one winner remains, the
    /// greater of the two; and [`Versions::check`] holds after the merge when it held for both
    /// inputs.
    pub fn merge(&mut self, resolution: Resolution, other: &Versions) {
        #[cfg(debug_assertions)]
        let before = self.clone();
        self.merge_unchecked(resolution, other);
        #[cfg(debug_assertions)]
        self.debug_check_merge(resolution, &before, other);
    }

    #[cfg(debug_assertions)]
    fn debug_check_merge(&self, resolution: Resolution, before: &Versions, other: &Versions) {
        match resolution {
            Resolution::Dvv => {
                debug_assert!(
                    self.context.descends_from(&before.context) && self.context.descends_from(&other.context),
                    "a merged context covers both inputs' contexts"
                );
                if let Some(s) =
                    before.siblings.iter().chain(&other.siblings).find(|s| !self.accounts_for(s.dot))
                {
                    panic!("merge lost sibling {:?}: neither kept nor seen by the merged context", s.dot);
                }
            }
            Resolution::Lww => {
                debug_assert!(self.siblings.len() <= 1, "LWW keeps one version");
                if before.siblings.len() <= 1 && other.siblings.len() <= 1 {
                    let key = |v: &Versions| v.siblings.first().map(|s| (s.timestamp, s.dot));
                    debug_assert_eq!(key(self), key(before).max(key(other)), "LWW keeps the greater version");
                }
            }
        }
        if before.check().is_ok() && other.check().is_ok() {
            if let Err(e) = self.check() {
                panic!("merging well-formed versions broke them: {e}");
            }
        }
    }

    fn merge_unchecked(&mut self, resolution: Resolution, other: &Versions) {
        match resolution {
            Resolution::Dvv => {
                // A sibling survives unless the other side has seen its dot and no longer holds it
                // (then some write that saw it replaced it).
                let mut merged: Vec<Sibling> = self
                    .siblings
                    .iter()
                    .filter(|s| !other.context.covers(s.dot) || other.siblings.iter().any(|o| o.dot == s.dot))
                    .cloned()
                    .collect();
                for s in &other.siblings {
                    let keep = !self.context.covers(s.dot) || self.siblings.iter().any(|o| o.dot == s.dot);
                    if keep && !merged.iter().any(|m| m.dot == s.dot) {
                        merged.push(s.clone());
                    }
                }
                merged.sort();
                self.siblings = merged;
                self.context.join(&other.context);
            }
            Resolution::Lww => {
                let key = |v: &Versions| v.siblings.last().map(|s| (s.timestamp, s.dot));
                if key(other) > key(self) || (key(other) == key(self) && other.context > self.context) {
                    *self = other.clone();
                }
                // Keep a single winner even if the input somehow held several.
                if self.siblings.len() > 1 {
                    let winner = self.siblings.iter().max_by_key(|s| (s.timestamp, s.dot)).cloned();
                    self.siblings = winner.into_iter().collect();
                }
            }
        }
    }

    /// The live (non-tombstone) values, in dot order.
    pub fn values(&self) -> Vec<&[u8]> {
        self.siblings.iter().filter_map(|s| s.value.as_deref()).collect()
    }

    /// Every sibling is a delete: the key reads as absent.
    pub fn is_tombstone(&self) -> bool {
        !self.siblings.is_empty() && self.siblings.iter().all(|s| s.value.is_none())
    }

    /// The highest timestamp among the siblings (when the newest version was written).
    pub fn newest_timestamp(&self) -> u64 {
        self.siblings.iter().map(|s| s.timestamp).max().unwrap_or(0)
    }

    /// What every holder of versions keeps true: siblings sorted by dot with no dot twice, and the
    /// context covers every sibling (a replica has seen what it holds). Checked by the simulator
    /// after every step, through [`crate::DynamoNode::check_invariants`].
    pub fn check(&self) -> Result<(), crate::InvariantViolation> {
        if let Some(pair) = self.siblings.windows(2).find(|w| w[0].dot >= w[1].dot) {
            return Err(crate::InvariantViolation(format!(
                "siblings out of dot order or repeated: {:?} then {:?}",
                pair[0].dot, pair[1].dot
            )));
        }
        if let Some(s) = self.siblings.iter().find(|s| !self.context.covers(s.dot)) {
            let context = &self.context;
            return Err(crate::InvariantViolation(format!(
                "sibling {:?} is not covered by the context {context:?}",
                s.dot
            )));
        }
        Ok(())
    }

    /// Was the write with `dot` kept, or overwritten by a write that saw it? (Not lost.)
    pub fn accounts_for(&self, dot: Dot) -> bool {
        self.context.covers(dot) || self.siblings.iter().any(|s| s.dot == dot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(node: u32, counter: u64) -> Dot {
        Dot { node: NodeId(node), counter }
    }

    fn sib(node: u32, counter: u64, value: i64) -> Sibling {
        Sibling { dot: dot(node, counter), timestamp: counter, value: Some(value.to_string().into_bytes()) }
    }

    fn values(v: &Versions) -> Vec<String> {
        v.values().iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    #[test]
    fn concurrent_writes_become_siblings_and_a_write_with_their_context_resolves_them() {
        let empty = VersionVector::default();
        let mut a = Versions::default();
        a.write(Resolution::Dvv, &empty, sib(1, 1, 10));
        let mut b = Versions::default();
        b.write(Resolution::Dvv, &empty, sib(2, 1, 20));
        a.merge(Resolution::Dvv, &b);
        assert_eq!(values(&a), vec!["10", "20"], "neither write saw the other");
        // A reader saw both (the merged context) and writes 30: both siblings are replaced.
        let seen = a.context.clone();
        a.write(Resolution::Dvv, &seen, sib(1, 2, 30));
        assert_eq!(values(&a), vec!["30"]);
        // A replica that still holds the old siblings merges and converges on 30.
        b.merge(Resolution::Dvv, &a);
        assert_eq!(values(&b), vec!["30"]);
    }

    #[test]
    fn two_writes_through_one_coordinator_with_the_same_old_context_stay_siblings() {
        // The case plain per-version vector clocks get wrong: same coordinator, stale contexts.
        let mut v = Versions::default();
        v.write(Resolution::Dvv, &VersionVector::default(), sib(1, 1, 1));
        let old = v.context.clone();
        v.write(Resolution::Dvv, &old, sib(1, 2, 2));
        v.write(Resolution::Dvv, &old, sib(1, 3, 3));
        assert_eq!(values(&v), vec!["2", "3"]);
        assert!(v.accounts_for(dot(1, 1)), "1 was overwritten by a write that saw it");
    }

    #[test]
    fn lww_keeps_one_value_and_loses_the_concurrent_one() {
        let mut a = Versions::default();
        a.write(Resolution::Lww, &VersionVector::default(), sib(1, 5, 10));
        let mut b = Versions::default();
        b.write(Resolution::Lww, &VersionVector::default(), sib(2, 7, 20));
        a.merge(Resolution::Lww, &b);
        assert_eq!(values(&a), vec!["20"]);
        assert!(!a.accounts_for(dot(1, 5)), "10 was lost, not overwritten by a write that saw it");
    }

    #[test]
    fn lww_lets_a_skewed_clock_beat_a_causally_later_write() {
        let mut v = Versions::default();
        // Node 1's clock is ahead: its write carries timestamp 100.
        v.write(Resolution::Lww, &VersionVector::default(), Sibling { timestamp: 100, ..sib(1, 1, 1) });
        let seen = v.context.clone();
        // Node 2 saw it and writes later in real time, but its clock says 50.
        v.write(Resolution::Lww, &seen, Sibling { timestamp: 50, ..sib(2, 1, 2) });
        assert_eq!(values(&v), vec!["1"], "the causally later write is discarded");
    }

    #[test]
    fn tombstones_read_as_absent() {
        let mut v = Versions::default();
        v.write(Resolution::Dvv, &VersionVector::default(), sib(1, 1, 1));
        let seen = v.context.clone();
        v.write(Resolution::Dvv, &seen, Sibling { dot: dot(1, 2), timestamp: 2, value: None });
        assert!(v.is_tombstone());
        assert!(v.values().is_empty());
    }

    #[test]
    fn check_refuses_a_sibling_its_context_has_not_seen_and_a_repeated_dot() {
        let mut v = Versions::default();
        v.write(Resolution::Dvv, &VersionVector::default(), sib(1, 1, 10));
        assert!(v.check().is_ok());
        let mut unseen = v.clone();
        unseen.siblings.push(sib(2, 5, 20));
        assert!(unseen.check().unwrap_err().0.contains("not covered"));
        let mut repeated = v.clone();
        repeated.siblings.push(sib(1, 1, 10));
        assert!(repeated.check().unwrap_err().0.contains("repeated"));
    }

    fn arb_versions() -> impl Strategy<Value = Versions> {
        // Build replicas by applying random writes with random (possibly stale) contexts, the way
        // real replicas come to be, so that merges are exercised on reachable states.
        proptest::collection::vec((1u32..4, 0usize..4), 0..6).prop_map(|ops| {
            let mut v = Versions::default();
            let mut contexts = vec![VersionVector::default()];
            for (i, (node, ctx)) in ops.into_iter().enumerate() {
                let seen = contexts[ctx % contexts.len()].clone();
                // A dot names one event: the same dot always carries the same value.
                let counter = 100 * u64::from(node) + i as u64;
                let value = (!counter.is_multiple_of(3)).then(|| vec![counter as u8]);
                v.write(
                    Resolution::Dvv,
                    &seen,
                    Sibling { dot: dot(node, counter), timestamp: counter, value },
                );
                contexts.push(v.context.clone());
            }
            v
        })
    }

    proptest! {
        #[test]
        fn dvv_merge_is_commutative_and_idempotent(a in arb_versions(), b in arb_versions()) {
            let mut ab = a.clone();
            ab.merge(Resolution::Dvv, &b);
            let mut ba = b.clone();
            ba.merge(Resolution::Dvv, &a);
            prop_assert_eq!(&ab, &ba);
            let mut aa = a.clone();
            aa.merge(Resolution::Dvv, &a);
            prop_assert_eq!(aa, a);
        }

        #[test]
        fn writes_and_merges_keep_versions_well_formed(a in arb_versions(), b in arb_versions()) {
            prop_assert!(a.check().is_ok(), "{:?}", a.check());
            let mut ab = a.clone();
            ab.merge(Resolution::Dvv, &b);
            prop_assert!(ab.check().is_ok(), "{:?}", ab.check());
        }

        #[test]
        fn dvv_merge_is_associative(a in arb_versions(), b in arb_versions(), c in arb_versions()) {
            let mut left = a.clone();
            left.merge(Resolution::Dvv, &b);
            left.merge(Resolution::Dvv, &c);
            let mut bc = b.clone();
            bc.merge(Resolution::Dvv, &c);
            let mut right = a.clone();
            right.merge(Resolution::Dvv, &bc);
            prop_assert_eq!(left, right);
        }
    }
}

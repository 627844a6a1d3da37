//! Checks for a store that keeps concurrent writes as *siblings* (Concord's eventual mode, Riak,
//! Dynamo): no acknowledged write lost, replicas converged, and how soon a write becomes visible.
//!
//! Such a store is not linearizable by design, so a register checker says nothing useful about
//! it. What it does promise, and what these checks hold it to:
//!
//! 1. **No acknowledged write is lost** ([`check`]). A client reads a key (getting its siblings and
//!    a causal *context*), then writes a new value with that context: the write *supersedes* the
//!    values the read returned, and is concurrent with everything else (another sibling). After
//!    the faults heal, every acknowledged value must still be there, or be superseded – directly or
//!    through a chain – by a write that is still there. A write whose outcome is unknown, or that
//!    was refused after it reached a replica, may or may not have taken effect: it may supersede,
//!    but it need not survive. The values must be unique per key, so a value names its write.
//! 2. **Convergence** ([`check`]). Once writes stop, faults heal and anti-entropy has run, every
//!    node returns the same sibling set for every key; and every value any node returns was written
//!    by someone (nothing invented).
//! 3. **t-visibility** ([`t_visibility`]), the measure of PBS (Bailis et al., VLDB 2012): for each
//!    read, the time since the acknowledgement of the latest write of its key that completed
//!    before the read began, and whether the read saw that write (or a write that superseded it).
//!    Binned, this is the probability that a read issued `t` ms after a write's acknowledgement
//!    returns it – the curve PBS's WARS model predicts. As in `concord_lab`'s PBS lab, a read that
//!    follows a write which overlapped another write of the same key is left out: the store may
//!    order overlapping writes either way, and t-visibility is about a write followed by reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How a write ended, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Acknowledged: W replicas stored it. It must survive or be superseded.
    Acknowledged,
    /// Sent, not acknowledged (a timeout, a refusal after some replica stored it, a cut
    /// connection): it may or may not have taken effect.
    Unknown,
    /// Never sent (no connection): it cannot have taken effect.
    NotSent,
}

/// One write of a unique `value` to `key`, carrying the context of a read that returned
/// `supersedes`. Times are nanoseconds since the run started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiblingWrite {
    pub key: String,
    pub value: i64,
    pub outcome: WriteOutcome,
    pub supersedes: Vec<i64>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// One read that succeeded: the sibling set it returned (empty: not found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiblingRead {
    pub key: String,
    pub values: BTreeSet<i64>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// Every key's sibling set as one node returned it after healing.
pub type NodeSets = BTreeMap<String, BTreeSet<i64>>;

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiblingReport {
    pub nodes: usize,
    /// Keys some write went to, or some node returned.
    pub keys: usize,
    pub acknowledged: usize,
    /// Acknowledged writes still present after healing.
    pub present: usize,
    /// Acknowledged writes gone but superseded by a write that survives (through a chain).
    pub superseded: usize,
    /// Acknowledged writes neither present nor superseded: `(key, value)`.
    pub lost: Vec<(String, i64)>,
    /// Keys whose sibling sets differ between nodes: each node's set (by node index).
    pub diverging: Vec<(String, Vec<BTreeSet<i64>>)>,
    /// Values some node returned that no write could have written: `(key, value)`.
    pub invented: Vec<(String, i64)>,
}

impl SiblingReport {
    /// No acknowledged write lost, nodes converged, nothing invented.
    pub fn is_ok(&self) -> bool {
        self.lost.is_empty() && self.diverging.is_empty() && self.invented.is_empty()
    }
}

impl fmt::Display for SiblingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} acknowledged writes on {} keys: {} present, {} superseded, {} lost; {} of {} nodes' \
             sibling sets diverge on {} keys; {} invented values",
            self.acknowledged,
            self.keys,
            self.present,
            self.superseded,
            self.lost.len(),
            if self.diverging.is_empty() { 0 } else { self.nodes },
            self.nodes,
            self.diverging.len(),
            self.invented.len()
        )?;
        for (key, value) in self.lost.iter().take(10) {
            writeln!(f, "  lost: {key} = {value} (acknowledged; not present, not superseded)")?;
        }
        for (key, sets) in self.diverging.iter().take(10) {
            writeln!(f, "  diverges {key}: {sets:?}")?;
        }
        for (key, value) in self.invented.iter().take(10) {
            writeln!(f, "  invented: {key} = {value} (no write wrote it)")?;
        }
        Ok(())
    }
}

/// Check the writes against every node's sibling sets after healing (see the module docs). A
/// value counts as present if any node returns it (divergence is reported on its own).
pub fn check(writes: &[SiblingWrite], nodes: &[NodeSets]) -> SiblingReport {
    let mut by_key: BTreeMap<&str, Vec<&SiblingWrite>> = BTreeMap::new();
    for w in writes {
        by_key.entry(&w.key).or_default().push(w);
    }
    let mut keys: BTreeSet<&str> = by_key.keys().copied().collect();
    keys.extend(nodes.iter().flat_map(|n| n.keys().map(String::as_str)));
    let mut report = SiblingReport { nodes: nodes.len(), keys: keys.len(), ..SiblingReport::default() };
    let empty = BTreeSet::new();
    for key in keys {
        let sets: Vec<&BTreeSet<i64>> = nodes.iter().map(|n| n.get(key).unwrap_or(&empty)).collect();
        if sets.iter().any(|s| *s != sets[0]) {
            report.diverging.push((key.to_string(), sets.iter().map(|s| (*s).clone()).collect()));
        }
        let present: BTreeSet<i64> = sets.iter().flat_map(|s| s.iter().copied()).collect();
        let writes = by_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let could_exist: BTreeSet<i64> =
            writes.iter().filter(|w| w.outcome != WriteOutcome::NotSent).map(|w| w.value).collect();
        for v in present.iter().filter(|v| !could_exist.contains(v)) {
            report.invented.push((key.to_string(), *v));
        }
        // Accounted for: present, or superseded by an accounted-for write that may have happened.
        // Walk back from the present values along `supersedes`.
        let superseders: BTreeMap<i64, &SiblingWrite> =
            writes.iter().filter(|w| w.outcome != WriteOutcome::NotSent).map(|w| (w.value, *w)).collect();
        let mut accounted: BTreeSet<i64> = present.clone();
        let mut stack: Vec<i64> = present.iter().copied().collect();
        while let Some(v) = stack.pop() {
            if let Some(w) = superseders.get(&v) {
                for &older in &w.supersedes {
                    if accounted.insert(older) {
                        stack.push(older);
                    }
                }
            }
        }
        for w in writes.iter().filter(|w| w.outcome == WriteOutcome::Acknowledged) {
            report.acknowledged += 1;
            if present.contains(&w.value) {
                report.present += 1;
            } else if accounted.contains(&w.value) {
                report.superseded += 1;
            } else {
                report.lost.push((key.to_string(), w.value));
            }
        }
    }
    report
}

/// For each read (see the module docs): `(ms since the acknowledgement of the latest write of its
/// key acknowledged before the read began, whether the read returned it or a write that
/// superseded it)`. Reads before any acknowledged write of their key, and reads after a write
/// that overlapped another write of the key, are left out.
pub fn t_visibility(writes: &[SiblingWrite], reads: &[SiblingRead]) -> Vec<(f64, bool)> {
    let mut by_key: BTreeMap<&str, Vec<&SiblingWrite>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.outcome != WriteOutcome::NotSent) {
        by_key.entry(&w.key).or_default().push(w);
    }
    // When a write's effect may last: until its acknowledgement, or forever if unknown.
    let until =
        |w: &SiblingWrite| if w.outcome == WriteOutcome::Acknowledged { w.complete_ns } else { u64::MAX };
    let mut out = Vec::new();
    for r in reads {
        let Some(ws) = by_key.get(r.key.as_str()) else { continue };
        let Some(latest) = ws
            .iter()
            .filter(|w| w.outcome == WriteOutcome::Acknowledged && w.complete_ns < r.invoke_ns)
            .max_by_key(|w| w.complete_ns)
        else {
            continue;
        };
        let overlaps = ws.iter().any(|o| {
            !std::ptr::eq(*o, *latest) && o.invoke_ns < latest.complete_ns && latest.invoke_ns < until(o)
        });
        if overlaps {
            continue;
        }
        // The latest write and every write that superseded it, directly or through a chain.
        let mut later: BTreeSet<i64> = BTreeSet::from([latest.value]);
        loop {
            let before = later.len();
            for w in ws {
                if w.supersedes.iter().any(|v| later.contains(v)) {
                    later.insert(w.value);
                }
            }
            if later.len() == before {
                break;
            }
        }
        let seen = r.values.iter().any(|v| later.contains(v));
        out.push((r.invoke_ns.saturating_sub(latest.complete_ns) as f64 / 1e6, seen));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, value: i64, outcome: WriteOutcome, supersedes: &[i64], at: u64) -> SiblingWrite {
        SiblingWrite {
            key: key.into(),
            value,
            outcome,
            supersedes: supersedes.to_vec(),
            invoke_ns: at * 1_000_000,
            complete_ns: (at + 2) * 1_000_000,
        }
    }

    fn sets(pairs: &[(&str, &[i64])]) -> NodeSets {
        pairs.iter().map(|(k, vs)| (k.to_string(), vs.iter().copied().collect())).collect()
    }

    #[test]
    fn a_write_that_is_gone_is_lost_unless_a_surviving_write_superseded_it() {
        use WriteOutcome::*;
        let writes = vec![
            write("a", 1, Acknowledged, &[], 0),
            write("a", 2, Acknowledged, &[1], 10), // read {1}, wrote 2 over it
            write("a", 3, Acknowledged, &[], 10),  // concurrent with 2: a sibling
            write("a", 4, Unknown, &[2], 20),      // maybe happened; supersedes 2
            write("b", 5, Acknowledged, &[], 0),
        ];
        // 1 is gone via 2 via 4 (unknown, but present): superseded. 3 present. 5 present.
        let ok = check(&writes, &vec![sets(&[("a", &[3, 4]), ("b", &[5])]); 3]);
        assert!(ok.is_ok(), "{ok}");
        assert_eq!((ok.acknowledged, ok.present, ok.superseded), (4, 2, 2));
        // Without 4 surviving, 2 (and so 1) are lost: 4 may never have happened.
        let lost = check(&writes, &vec![sets(&[("a", &[3]), ("b", &[5])]); 3]);
        assert_eq!(lost.lost, vec![("a".to_string(), 1), ("a".to_string(), 2)], "{lost}");
        // 5 lost outright.
        let lost = check(&writes, &vec![sets(&[("a", &[3, 4])]); 2]);
        assert_eq!(lost.lost, vec![("b".to_string(), 5)]);
    }

    #[test]
    fn nodes_that_differ_diverge_and_unwritten_values_are_invented() {
        use WriteOutcome::*;
        let writes = vec![
            write("a", 1, Acknowledged, &[], 0),
            write("a", 2, NotSent, &[], 5),
            write("a", 3, Unknown, &[], 5),
        ];
        let r = check(&writes, &[sets(&[("a", &[1, 3])]), sets(&[("a", &[1])])]);
        assert_eq!(r.diverging.len(), 1, "{r}");
        assert!(r.lost.is_empty() && r.invented.is_empty());
        // 2 was never sent, 9 never written by anyone.
        let r = check(&writes, &vec![sets(&[("a", &[1, 2]), ("z", &[9])]); 2]);
        assert_eq!(r.invented, vec![("a".to_string(), 2), ("z".to_string(), 9)]);
        assert!(r.diverging.is_empty());
        assert!(!r.is_ok());
    }

    #[test]
    fn t_visibility_times_reads_from_the_latest_acknowledgement_and_accepts_superseders() {
        use WriteOutcome::*;
        // Write 1 acked at 2 ms; write 2 (superseding 1) acked at 22 ms.
        let writes = vec![write("a", 1, Acknowledged, &[], 0), write("a", 2, Acknowledged, &[1], 20)];
        let read = |at: u64, values: &[i64]| SiblingRead {
            key: "a".into(),
            values: values.iter().copied().collect(),
            invoke_ns: at * 1_000_000,
            complete_ns: (at + 1) * 1_000_000,
        };
        let reads = vec![
            read(1, &[]),  // before any acknowledgement: left out
            read(5, &[]),  // 3 ms after 1's ack, saw nothing: stale
            read(7, &[1]), // 5 ms after: fresh
            read(8, &[2]), // 2 supersedes 1 (it was in flight): fresh
            read(19, &[2]),
            read(30, &[1]), // 8 ms after 2's ack, saw 1: stale
        ];
        let v = t_visibility(&writes, &reads);
        assert_eq!(v, vec![(3.0, false), (5.0, true), (6.0, true), (17.0, true), (8.0, false)]);
        // A write overlapping the latest one takes its reads out of the measure.
        let mut overlapping = writes.clone();
        overlapping.push(write("a", 3, Unknown, &[], 21));
        assert_eq!(t_visibility(&overlapping, &reads[5..]), vec![]);
    }
}

//! Registers with unique written values, decided in polynomial time (Gibbons & Korach, 1997).
//!
//! Linearizability is NP-complete in general, but not for a read/write register whose writes all
//! carry distinct values: then each read names the one write it saw (the history is
//! *read-mapped*), and the question becomes whether the **clusters** – a write with the reads that
//! saw it – can be laid end to end. For a cluster, let `f` be the earliest return among its
//! operations and `s` the latest invocation:
//!
//! - `f < s`: a **forward zone** `[f, s]`. Every linearization runs the whole cluster across that
//!   interval, so no other cluster may take effect inside it;
//! - otherwise a **backward zone** `[s, f]`: the cluster can happen at any instant in it.
//!
//! The history is linearizable iff every read returns after its write was invoked, no two forward
//! zones overlap, and no backward zone lies inside a forward zone (Gibbons & Korach, "Testing
//! shared memories", SIAM J. Comput. 26(4), 1997). Checking that is O(n log n).
//!
//! The reads of the initial `nil` form a cluster with a virtual write that completed before
//! everything. Unknown-outcome writes that some read observed join their cluster with their
//! return at infinity; the others are left out (never taking effect is allowed to them, and is
//! the best choice for them, since no read depends on them).
//!
//! [`decide`] returns `None` where the theorem does not apply (other functions, repeated values, a
//! read of a value no write wrote): the search decides those.

use crate::ops::Operation;
use concord_core::history::{OpFn, Value};
use std::collections::BTreeMap;

/// The verdict for one register partition, if its structure allows the polynomial check.
pub fn decide(ops: &[&Operation]) -> Option<bool> {
    // Clusters by written value: (write, reads). `Value::Nil` is the initial value's cluster.
    let mut writes: BTreeMap<&Value, &Operation> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.f == OpFn::Write) {
        if op.input == Value::Nil || writes.insert(&op.input, op).is_some() {
            return None; // a nil write, or values not unique
        }
    }
    let mut clusters: BTreeMap<&Value, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        match op.f {
            OpFn::Write => {}
            OpFn::Read if op.is_ok() => {
                let seen = op.output.as_ref()?;
                if *seen != Value::Nil && !writes.contains_key(seen) {
                    return None; // a value nobody wrote: the search explains that
                }
                clusters.entry(seen).or_default().push(op);
            }
            OpFn::Read => {} // an unknown read constrains nothing
            _ => return None,
        }
    }
    for (value, write) in &writes {
        // An ok write always takes effect; an unknown one only if a read observed it.
        if write.is_ok() || clusters.contains_key(value) {
            clusters.entry(value).or_default().push(write);
        }
    }

    // Zones in event positions; the initial value's virtual write completed at position 0.
    const NEVER: usize = usize::MAX;
    let mut forward: Vec<(usize, usize)> = Vec::new();
    let mut backward: Vec<(usize, usize)> = Vec::new();
    for (value, members) in &clusters {
        let (mut f, mut s) = (NEVER, 0usize);
        if **value == Value::Nil {
            f = 0;
        } else {
            let write = writes[value];
            // Every read of the value returns after its write was invoked.
            if members.iter().any(|op| op.return_index.is_some_and(|r| r < write.call_index)) {
                return Some(false);
            }
        }
        // Real events at their position + 1, so that the virtual write's 0 is before all of them.
        for op in members {
            f = f.min(op.return_index.map_or(NEVER, |r| r + 1));
            s = s.max(op.call_index + 1);
        }
        if f < s {
            forward.push((f, s));
        } else {
            backward.push((s, f));
        }
    }
    forward.sort_unstable();
    if forward.windows(2).any(|w| w[1].0 < w[0].1) {
        return Some(false); // two clusters that must each own an interval, overlapping
    }
    for &(s, f) in &backward {
        // The forward zone starting last before `s`, if any, is the only one that can hold it.
        let i = forward.partition_point(|&(start, _)| start < s);
        if i > 0 && f < forward[i - 1].1 {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Outcome;
    use concord_core::time::Time;

    fn op(f: OpFn, value: i64, call: usize, ret: Option<usize>) -> Operation {
        let v = if value == 0 { Value::Nil } else { Value::Int(value) };
        Operation {
            process: call as u64,
            f,
            key: None,
            input: if f == OpFn::Write { v.clone() } else { Value::Nil },
            output: ret.map(|_| v),
            outcome: if ret.is_some() { Outcome::Ok } else { Outcome::Info },
            call_index: call,
            return_index: ret,
            call_time: Time(call as u64),
            return_time: ret.map(|r| Time(r as u64)),
            witness: None,
        }
    }

    fn decide_all(ops: &[Operation]) -> Option<bool> {
        decide(&ops.iter().collect::<Vec<_>>())
    }

    #[test]
    fn clusters_laid_end_to_end_are_linearizable() {
        // w1 [0,1], read 1 [2,3], w2 [4,5], read 2 [6,7].
        let h = [
            op(OpFn::Write, 1, 0, Some(1)),
            op(OpFn::Read, 1, 2, Some(3)),
            op(OpFn::Write, 2, 4, Some(5)),
            op(OpFn::Read, 2, 6, Some(7)),
        ];
        assert_eq!(decide_all(&h), Some(true));
    }

    #[test]
    fn a_stale_read_is_refused() {
        // w1, then w2 completes, then a read still sees 1: the forward zones of 1 and 2 overlap.
        let h =
            [op(OpFn::Write, 1, 0, Some(1)), op(OpFn::Write, 2, 2, Some(3)), op(OpFn::Read, 1, 4, Some(5))];
        assert_eq!(decide_all(&h), Some(false));
    }

    #[test]
    fn a_write_wholly_inside_another_clusters_forward_zone_is_refused() {
        // w1 [0,1] … read 1 [4,5]: the cluster of 1 owns [1,4]; w2 [2,3] lies wholly inside it,
        // so it took effect between w1 and the read, which should then have seen 2.
        let h =
            [op(OpFn::Write, 1, 0, Some(1)), op(OpFn::Write, 2, 2, Some(3)), op(OpFn::Read, 1, 4, Some(5))];
        assert_eq!(decide_all(&h), Some(false));
        // The same write overlapping the read instead may take effect after it.
        let h =
            [op(OpFn::Write, 1, 0, Some(1)), op(OpFn::Write, 2, 2, Some(6)), op(OpFn::Read, 1, 4, Some(5))];
        assert_eq!(decide_all(&h), Some(true));
    }

    #[test]
    fn a_read_of_nil_after_a_completed_write_is_refused_and_before_it_accepted() {
        let after = [op(OpFn::Write, 1, 0, Some(1)), op(OpFn::Read, 0, 2, Some(3))];
        assert_eq!(decide_all(&after), Some(false));
        let concurrent = [op(OpFn::Write, 1, 0, Some(3)), op(OpFn::Read, 0, 1, Some(2))];
        assert_eq!(decide_all(&concurrent), Some(true));
    }

    #[test]
    fn an_unknown_write_counts_only_when_observed() {
        let observed = [op(OpFn::Write, 1, 0, None), op(OpFn::Read, 1, 1, Some(2))];
        assert_eq!(decide_all(&observed), Some(true));
        // Unobserved and concurrent with a read of nil: left out.
        let unobserved = [op(OpFn::Write, 1, 0, None), op(OpFn::Read, 0, 1, Some(2))];
        assert_eq!(decide_all(&unobserved), Some(true));
    }

    #[test]
    fn repeated_values_and_other_functions_are_left_to_the_search() {
        let repeated = [op(OpFn::Write, 1, 0, Some(1)), op(OpFn::Write, 1, 2, Some(3))];
        assert_eq!(decide_all(&repeated), None);
        let mut cas = op(OpFn::Write, 1, 0, Some(1));
        cas.f = OpFn::Cas;
        assert_eq!(decide_all(&[cas]), None);
    }
}

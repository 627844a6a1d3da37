//! Witnesses: try the order the system says it used, verify it, never trust it.
//!
//! A store that numbers its writes knows the order it applied them in: Concord's key-value store
//! gives every write a *revision*, and a read returns the revision of the value it saw. Each `ok`
//! operation of a history may therefore carry a **witness** – a position in one total order
//! ([`concord_core::history::Event::witness`]; for the KV store: `2r` for the write that created
//! revision `r`, `2r + 1` for a read that saw revision `r`).
//!
//! Sorting a partition's `ok` operations by witness (ties by invocation) *proposes* a
//! linearization. Checking a proposal is cheap – O(n log n) – where finding one is a search:
//!
//! 1. **real time**: no operation placed later returned before one placed earlier was invoked
//!    (one pass, keeping the latest invocation seen so far);
//! 2. **the model**: run the operations through the sequential [`Sequential`] model in that order;
//!    every one must be accepted with the output the client saw.
//!
//! Operations with an unknown outcome (`info`) are left out, which is one of the things they are
//! allowed to do (never take effect). If both checks pass, that order *is* a linearization: the
//! partition is linearizable, whatever the system under test claimed. If either fails – a lying
//! or buggy system, a read of an absent key (no revision to place it by), an `info` write some
//! read observed – nothing is concluded, and the search decides as before. So a witness can make
//! the answer come sooner; it can never change it.

use crate::model::Sequential;
use crate::ops::Operation;

/// Whether the `ok` operations of `ops` (one partition), in witness order, are a linearization.
/// `false` means "no conclusion" (missing witnesses, or the proposed order does not verify).
pub fn verifies<M: Sequential>(m: &M, ops: &[&Operation]) -> bool {
    let mut proposed: Vec<&Operation> = ops.iter().copied().filter(|op| op.is_ok()).collect();
    if proposed.is_empty() || proposed.iter().any(|op| op.witness.is_none()) {
        return false;
    }
    proposed.sort_by_key(|op| (op.witness, op.call_index));
    // 1. Real time: every operation returns after every earlier-placed one was invoked.
    let mut latest_call = 0usize;
    for op in &proposed {
        let Some(returned) = op.return_index else { return false };
        if returned < latest_call {
            return false;
        }
        latest_call = latest_call.max(op.call_index);
    }
    // 2. The model accepts them in that order, with the outputs the clients saw.
    let mut state = m.init();
    for op in &proposed {
        match m.step(&state, op) {
            Some(next) => state = next,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegisterModel;
    use crate::ops::Outcome;
    use concord_core::history::{OpFn, Value};
    use concord_core::time::Time;

    /// An `ok` operation on one register, invoked and returned at the given event positions.
    fn op(f: OpFn, input: i64, output: Option<i64>, call: usize, ret: usize, witness: u64) -> Operation {
        Operation {
            process: call as u64,
            f,
            key: None,
            input: if f == OpFn::Read { Value::Nil } else { Value::Int(input) },
            output: Some(output.map_or(Value::Nil, Value::Int)),
            outcome: Outcome::Ok,
            call_index: call,
            return_index: Some(ret),
            call_time: Time(call as u64),
            return_time: Some(Time(ret as u64)),
            witness: Some(witness),
        }
    }

    #[test]
    fn a_true_witness_verifies_and_a_false_one_concludes_nothing() {
        // write 1 and write 2 overlap; a read after both sees 2: the store applied 1 then 2.
        let w1 = op(OpFn::Write, 1, Some(1), 0, 3, 2);
        let w2 = op(OpFn::Write, 2, Some(2), 1, 2, 4);
        let r = op(OpFn::Read, 0, Some(2), 4, 5, 5);
        let m = RegisterModel { with_delete_and_append: false };
        assert!(verifies(&m, &[&w1, &w2, &r]));
        // The system claims 2 then 1: the read of 2 does not follow, so no conclusion.
        let (mut w1_late, mut w2_early) = (w1.clone(), w2.clone());
        w1_late.witness = Some(4);
        w2_early.witness = Some(2);
        assert!(!verifies(&m, &[&w1_late, &w2_early, &r]));
        // An order against real time (the read placed before a write that returned before it began).
        let mut r_early = r.clone();
        r_early.witness = Some(1);
        assert!(!verifies(&m, &[&w1, &w2, &r_early]));
        // A missing witness: no conclusion.
        let mut anonymous = r.clone();
        anonymous.witness = None;
        assert!(!verifies(&m, &[&w1, &w2, &anonymous]));
    }
}

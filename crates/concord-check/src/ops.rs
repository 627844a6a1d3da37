//! From events to operations: pairing each invocation with its completion.
//!
//! A [`History`] is a flat list of events (`invoke`, then `ok` | `fail` | `info`, per process). Every
//! checker here wants *operations* instead: one record per client request, with the moment it was
//! invoked, the moment it returned (if it did) and what it returned. [`prepare`] does the pairing once
//! and checks the shape rules that every checker relies on:
//!
//! * a process has at most one operation open at a time (a second `invoke` before the completion of
//!   the first is an error);
//! * a completion must follow an `invoke` by the same process, for the same function;
//! * an invocation that never completes (the history ended first) is treated like `info`: the outcome
//!   is unknown.
//!
//! ## Real-time order is event order
//!
//! Operation `a` *precedes* operation `b` in real time when `a`'s completion comes before `b`'s
//! invocation **in the list of events** – the order in which events happened, as the simulator and
//! Jepsen both write them. Timestamps (`time`) are kept for reports and for staleness measurements,
//! but the linearizability checker never compares them: event positions are unique, so there are no
//! ties to break, and a history whose timestamps are coarse (or absent, as in Jepsen's text logs)
//! is still judged exactly.
//!
//! ## What each completion means
//!
//! * `ok` – the operation took effect, exactly once, at some instant between invocation and
//!   completion; its `value` is the result (the value read, the element dequeued).
//! * `fail` – it certainly did not take effect. Failed operations are dropped: they constrain nothing.
//! * `info` – unknown: it may have taken effect, at any instant after its invocation (even after the
//!   history ends), or never. Its return is "at infinity".

use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::time::Time;
use std::collections::BTreeMap;
use std::fmt;

/// How an operation ended, as far as the checkers care (failed operations are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// It took effect, and `output` is what it returned.
    Ok,
    /// Unknown (`info`, or still open when the history ended).
    Info,
}

/// One client operation: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The process (logical client thread) that issued it.
    pub process: u64,
    pub f: OpFn,
    /// The key, for keyed models; `None` for a single object.
    pub key: Option<String>,
    /// The argument, from the invocation (`write 3`: `3`; `cas`: `[expected new]`).
    pub input: Value,
    /// The result, from an `ok` completion (`read`: the value read). `None` when the outcome is
    /// unknown.
    pub output: Option<Value>,
    pub outcome: Outcome,
    /// Position of the `invoke` event in the history.
    pub call_index: usize,
    /// Position of the completion event; `None` for an unknown outcome (the return is at infinity).
    pub return_index: Option<usize>,
    pub call_time: Time,
    /// When the completion was seen (for an `info` completion too); `None` if it never completed.
    pub return_time: Option<Time>,
    /// Where the system under test says an `ok` operation took effect (see [`crate::witness`]).
    pub witness: Option<u64>,
}

impl Operation {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Whether this operation can change the object's state. Reads cannot – so a read whose outcome
    /// is unknown tells nothing and the linearizability checker drops it.
    pub fn is_read_only(&self) -> bool {
        self.f == OpFn::Read
    }

    /// Whether `self` completed before `other` was invoked (the real-time order).
    pub fn precedes(&self, other: &Operation) -> bool {
        matches!(self.return_index, Some(r) if r < other.call_index)
    }
}

impl fmt::Display for Operation {
    /// `p3 cas k7 [1 4] -> ok` / `p1 read k7 -> 4` / `p2 write 5 -> ?`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{} {}", self.process, self.f)?;
        if let Some(key) = &self.key {
            write!(f, " {key}")?;
        }
        if !(self.f == OpFn::Read || self.f == OpFn::Dequeue) || self.input != Value::Nil {
            write!(f, " {}", self.input)?;
        }
        match (&self.output, self.f) {
            (None, _) => f.write_str(" -> ?"),
            (Some(v), OpFn::Read | OpFn::Dequeue) => write!(f, " -> {v}"),
            (Some(_), _) => f.write_str(" -> ok"),
        }
    }
}

/// A history that breaks the shape rules, with the position of the offending event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryError {
    /// Index of the event in `History::events`.
    pub event_index: usize,
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}: {}", self.event_index, self.message)
    }
}

impl std::error::Error for HistoryError {}

/// Pair invocations with completions. Operations come out ordered by invocation; `fail`ed ones are
/// left out. Every shape error is reported (not just the first), in event order.
pub fn prepare(history: &History) -> Result<Vec<Operation>, Vec<HistoryError>> {
    let mut ops: Vec<Operation> = Vec::with_capacity(history.events.len() / 2 + 1);
    // Operations that failed are removed at the end; until then they keep their slot so that the
    // open-operation table can point at them.
    let mut failed = vec![false; 0];
    // process -> index in `ops` of its open operation. A BTreeMap keeps error order deterministic.
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut errors = Vec::new();

    for (index, event) in history.events.iter().enumerate() {
        match event.kind {
            EventType::Invoke => {
                if let Some(&previous) = open.get(&event.process) {
                    errors.push(HistoryError {
                        event_index: index,
                        message: format!(
                            "process {} invokes `{}` while its `{}` (event {}) is still open",
                            event.process, event.op, ops[previous].f, ops[previous].call_index
                        ),
                    });
                    continue;
                }
                open.insert(event.process, ops.len());
                failed.push(false);
                ops.push(Operation {
                    process: event.process,
                    f: event.op.f,
                    key: event.op.key.clone(),
                    input: event.op.value.clone(),
                    output: None,
                    outcome: Outcome::Info,
                    call_index: index,
                    return_index: None,
                    call_time: event.time,
                    return_time: None,
                    witness: None,
                });
            }
            EventType::Ok | EventType::Fail | EventType::Info => {
                let Some(slot) = open.remove(&event.process) else {
                    errors.push(HistoryError {
                        event_index: index,
                        message: format!(
                            "process {} completes `{}` but has no open invocation",
                            event.process, event.op
                        ),
                    });
                    continue;
                };
                let op = &mut ops[slot];
                if op.f != event.op.f {
                    errors.push(HistoryError {
                        event_index: index,
                        message: format!(
                            "process {} completes `{}` but invoked `{}` (event {})",
                            event.process, event.op.f, op.f, op.call_index
                        ),
                    });
                    continue;
                }
                if event.op.key.is_some() && op.key.is_some() && event.op.key != op.key {
                    errors.push(HistoryError {
                        event_index: index,
                        message: format!(
                            "process {} completes `{}` on key {:?} but invoked it on key {:?}",
                            event.process,
                            event.op.f,
                            event.op.key.as_deref().unwrap_or(""),
                            op.key.as_deref().unwrap_or("")
                        ),
                    });
                    continue;
                }
                if op.key.is_none() {
                    op.key = event.op.key.clone();
                }
                op.return_time = Some(event.time);
                match event.kind {
                    EventType::Ok => {
                        op.outcome = Outcome::Ok;
                        op.output = Some(event.op.value.clone());
                        op.return_index = Some(index);
                        op.witness = event.witness;
                        // Jepsen leaves the invocation's value nil for reads, and some clients
                        // leave it nil for writes and repeat it only in the completion.
                        if op.input == Value::Nil && op.f != OpFn::Read && op.f != OpFn::Dequeue {
                            op.input = event.op.value.clone();
                        }
                    }
                    EventType::Fail => failed[slot] = true,
                    // Unknown outcome: the return stays at infinity (`return_index: None`).
                    _ => {}
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut kept = Vec::with_capacity(ops.len());
    for (op, failed) in ops.into_iter().zip(failed) {
        if !failed {
            kept.push(op);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;

    #[test]
    fn pairs_and_drops_failures() {
        let mut h = History::default();
        h.push(1, EventType::Invoke, Op::write("x", 1), Time(0));
        h.push(2, EventType::Invoke, Op::cas("x", 5, 6), Time(1));
        h.push(1, EventType::Ok, Op::write("x", 1), Time(2));
        h.push(2, EventType::Fail, Op::cas("x", 5, 6), Time(3));
        h.push(3, EventType::Invoke, Op::read("x"), Time(4));
        let ops = prepare(&h).unwrap();
        assert_eq!(ops.len(), 2, "the failed cas is dropped, the open read kept as unknown");
        assert_eq!(ops[0].return_index, Some(2));
        assert!(ops[0].is_ok());
        assert_eq!(ops[1].outcome, Outcome::Info);
        assert_eq!(ops[1].return_index, None);
    }

    #[test]
    fn reports_shape_errors_with_positions() {
        let mut h = History::default();
        h.push(1, EventType::Ok, Op::write("x", 1), Time(0));
        h.push(2, EventType::Invoke, Op::read("x"), Time(1));
        h.push(2, EventType::Invoke, Op::read("x"), Time(2));
        h.push(2, EventType::Ok, Op::write("x", 1), Time(3));
        let errors = prepare(&h).unwrap_err();
        let at: Vec<usize> = errors.iter().map(|e| e.event_index).collect();
        assert_eq!(at, vec![0, 2, 3]);
        assert!(errors[2].message.contains("invoked `read`"));
    }
}

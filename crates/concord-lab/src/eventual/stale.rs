//! Stale reads in real time: a read that missed a write which *finished before the read began*
//! and which in turn began after everything the read returned had finished.
//!
//! `concord_check::staleness` numbers versions in the order of their acknowledgements (PBS's
//! convention, right for its curves, where writes to a key rarely overlap). Under heavy
//! concurrency that convention also counts a read as stale when two *overlapping* writes were
//! acknowledged in one order and applied in the other – which a linearizable store may do. Here a
//! read is stale only if some write `y` was acknowledged before the read was invoked and every
//! value `x` the read returned (each sibling; the initial nil) was acknowledged before `y` was
//! invoked: then `y` is newer than all of them in real time and no correct order lets the read
//! miss it. A linearizable history has no such read.

use concord_core::history::{EventType, History, OpFn, Value};
use std::collections::BTreeMap;

/// (stale reads, reads checked): `ok` reads of registers, in real time (see the module docs).
pub fn stale_reads(history: &History) -> (usize, usize) {
    // Pass 1: every write's value → its acknowledgement index (usize::MAX: never acknowledged).
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut ack_of: BTreeMap<(&str, &Value), usize> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, i);
            }
            kind => {
                let Some(inv) = open.remove(&e.process) else { continue };
                let op = &history.events[inv].op;
                if op.f == OpFn::Write {
                    if let Some(key) = op.key.as_deref() {
                        let ack = if kind == EventType::Ok { i } else { usize::MAX };
                        ack_of.insert((key, &op.value), ack);
                    }
                }
            }
        }
    }
    // Pass 2: per key, the latest invocation among acknowledged writes, as of each read's start.
    let mut newest_invoke: BTreeMap<&str, usize> = BTreeMap::new();
    let mut read_start: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let (mut stale, mut checked) = (0, 0);
    for (i, e) in history.events.iter().enumerate() {
        let Some(key) = e.op.key.as_deref() else { continue };
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, i);
                if e.op.f == OpFn::Read {
                    read_start.insert(e.process, newest_invoke.get(key).copied());
                }
            }
            kind => {
                let Some(inv) = open.remove(&e.process) else { continue };
                let newest = read_start.remove(&e.process).flatten();
                match (kind, e.op.f) {
                    (EventType::Ok, OpFn::Write) => {
                        let slot = newest_invoke.entry(key).or_insert(inv);
                        *slot = (*slot).max(inv);
                    }
                    (EventType::Ok, OpFn::Read) => {
                        let returned: Vec<&Value> = match &e.op.value {
                            Value::List(items) => items.iter().collect(),
                            v => vec![v],
                        };
                        // The latest acknowledgement among what was returned (nil: none, -∞).
                        let mut latest_ack = None;
                        let mut unknown = false;
                        for v in returned {
                            if *v == Value::Nil {
                                continue;
                            }
                            match ack_of.get(&(key, v)) {
                                Some(&a) => latest_ack = latest_ack.max(Some(a)),
                                None => unknown = true, // not a register value: not judged
                            }
                        }
                        if unknown {
                            continue;
                        }
                        checked += 1;
                        if let Some(newest) = newest {
                            if latest_ack.is_none_or(|a| a < newest) {
                                stale += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    (stale, checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;
    use concord_core::Time;

    #[test]
    fn overlapping_writes_reordered_are_not_stale_but_a_missed_later_write_is() {
        let mut h = History::default();
        // w1 and w2 overlap; w1 acknowledged first, the store keeps w1 last: reading 1 is fine.
        h.push(0, EventType::Invoke, Op::write("x", 1), Time(0));
        h.push(1, EventType::Invoke, Op::write("x", 2), Time(1));
        h.push(0, EventType::Ok, Op::write("x", 1), Time(2));
        h.push(1, EventType::Ok, Op::write("x", 2), Time(3));
        h.push(2, EventType::Invoke, Op::read("x"), Time(4));
        h.push(2, EventType::Ok, Op { value: Value::Int(1), ..Op::read("x") }, Time(5));
        assert_eq!(stale_reads(&h), (0, 1));
        // w3 starts after both finished and is acknowledged: reading 1 now is stale.
        h.push(0, EventType::Invoke, Op::write("x", 3), Time(6));
        h.push(0, EventType::Ok, Op::write("x", 3), Time(7));
        h.push(2, EventType::Invoke, Op::read("x"), Time(8));
        h.push(2, EventType::Ok, Op { value: Value::Int(1), ..Op::read("x") }, Time(9));
        assert_eq!(stale_reads(&h), (1, 2));
    }
}

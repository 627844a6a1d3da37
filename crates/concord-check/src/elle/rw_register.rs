//! Read-write register analysis: the workload where a read reveals one version, not its history.
//!
//! Unique written values still make reads *recoverable*: a read of `x = 5` names the one transaction
//! that wrote 5 – so wr edges, G1a (reading a failed write) and G1b (reading a value the writer
//! overwrote in the same transaction) are exact. What a register read does not give is the *version
//! order*: reading 5 says nothing about what came before it. Elle infers only the part of it that is
//! sound for the model being checked:
//!
//! * **initial state** – every key starts at nil, before any write. We add `nil < v` only for the
//!   values with no other known predecessor (the others follow from it), which keeps the number of
//!   rw edges from nil readers small;
//! * **read-then-write** – a committed transaction that read `a` and then wrote `b` to the same key
//!   installed `b` over `a`: `a < b`. Sound under any isolation level that forbids lost updates;
//! * **real time** (optional, [`super::Options::realtime_version_order`]) – if `a`'s writer
//!   committed before `b`'s writer began, `a < b`. Sound only for strict serializability (a
//!   linearizable register); under plain serializability, a transaction may be ordered before one
//!   that finished earlier, and these edges would report false anomalies.
//!
//! From each inferred `a < b`: ww from `a`'s writer to `b`'s, and rw from every transaction that read
//! `a` to `b`'s writer. "Next" is not known exactly, so rw edges may point at a later version than the
//! immediate successor – still a valid constraint: a reader of `a` must precede any writer of a
//! version after `a`.
//!
//! Only a transaction's *external* reads (before it wrote the key itself) and its *final* write of a
//! key take part; the rest is checked for internal consistency.

use super::graph::{EdgeKind, Graph, VersionSource, Why};
use super::history::{Mop, RegDisplay, TxnHistory, TxnOutcome};
use super::{realtime_pairs, Anomaly, InputError, Options};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// `prev < next` in a key's version order (`prev` nil: the initial state), and why.
type VersionEdge = (Option<i64>, i64, VersionSource);

#[derive(Clone, Copy)]
struct Writer {
    txn: usize,
    failed: bool,
    is_final: bool,
}

pub(super) fn analyse(
    history: &TxnHistory,
    options: &Options,
    graph: &mut Graph,
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), InputError> {
    let mut writers: FxHashMap<(&str, i64), Writer> = FxHashMap::default();
    // Per key, the final writes of committed or unknown transactions: the visible versions.
    let mut versions: BTreeMap<&str, Vec<(i64, usize)>> = BTreeMap::new();
    for txn in &history.txns {
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for mop in &txn.mops {
            match mop {
                Mop::Write { key, value } => {
                    last.insert(key, *value);
                }
                Mop::ReadRegister { .. } => {}
                other => {
                    return Err(InputError::WrongMicroOp {
                        txn: txn.id,
                        mop: other.to_string(),
                        workload: history.workload,
                    })
                }
            }
        }
        for mop in &txn.mops {
            if let Mop::Write { key, value } = mop {
                let is_final = last.get(key.as_str()) == Some(value);
                let failed = txn.outcome == TxnOutcome::Fail;
                let writer = Writer { txn: txn.id, failed, is_final };
                if let Some(previous) = writers.insert((key, *value), writer) {
                    return Err(InputError::DuplicateWrite {
                        key: key.clone(),
                        value: *value,
                        first: previous.txn,
                        second: txn.id,
                    });
                }
                if is_final && !failed {
                    versions.entry(key).or_default().push((*value, txn.id));
                }
            }
        }
    }

    // External reads, internal consistency, and read-then-write version orders.
    let mut readers: FxHashMap<(&str, Option<i64>), Vec<usize>> = FxHashMap::default();
    let mut order: BTreeMap<&str, Vec<VersionEdge>> = BTreeMap::new();
    for txn in history.txns.iter().filter(|t| t.is_ok()) {
        // Per key: the value this transaction knows it holds, and whether it has written it.
        let mut known: BTreeMap<&str, (Option<i64>, bool)> = BTreeMap::new();
        let mut external: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        for mop in &txn.mops {
            match mop {
                Mop::Write { key, value } => {
                    known.insert(key, (Some(*value), true));
                }
                Mop::ReadRegister { key, value: Some(read) } => {
                    match known.get(key.as_str()) {
                        Some((expected, _)) if expected != read => anomalies.push(Anomaly::Internal {
                            txn: txn.id,
                            key: key.clone(),
                            expected: RegDisplay(*expected).to_string(),
                            read: RegDisplay(*read).to_string(),
                        }),
                        Some(_) => {}
                        None => {
                            external.insert(key, *read);
                            readers.entry((key, *read)).or_default().push(txn.id);
                            check_read(&writers, txn.id, key, *read, graph, anomalies);
                        }
                    }
                    let wrote = known.get(key.as_str()).is_some_and(|k| k.1);
                    known.insert(key, (*read, wrote));
                }
                _ => {}
            }
        }
        for (key, read) in external {
            if let Some((Some(final_value), true)) = known.get(key) {
                order.entry(key).or_default().push((
                    read,
                    *final_value,
                    VersionSource::ReadThenWrite { txn: txn.id },
                ));
            }
        }
    }

    if options.realtime_version_order {
        for (key, values) in &versions {
            let txns: Vec<_> = values.iter().map(|&(_, t)| &history.txns[t]).filter(|t| t.is_ok()).collect();
            let value_of: FxHashMap<usize, i64> = values.iter().map(|&(v, t)| (t, v)).collect();
            for (a, b) in realtime_pairs(&txns) {
                order.entry(key).or_default().push((
                    Some(value_of[&a]),
                    value_of[&b],
                    VersionSource::Realtime,
                ));
            }
        }
    }

    for (key, values) in &versions {
        let edges = order.entry(key).or_default();
        let has_predecessor: FxHashSet<i64> = edges.iter().filter(|e| e.0.is_some()).map(|e| e.1).collect();
        for &(value, _) in values {
            if !has_predecessor.contains(&value) {
                edges.push((None, value, VersionSource::Initial));
            }
        }
    }

    for (key, edges) in order {
        let mut seen: FxHashSet<(Option<i64>, i64)> = FxHashSet::default();
        for (prev, next, source) in edges {
            if !seen.insert((prev, next)) {
                continue;
            }
            let Some(next_writer) = writers.get(&(key, next)).filter(|w| !w.failed) else { continue };
            if let Some(prev) = prev {
                if let Some(prev_writer) = writers.get(&(key, prev)).filter(|w| !w.failed) {
                    graph.add(
                        prev_writer.txn,
                        next_writer.txn,
                        EdgeKind::Ww,
                        Why::Overwrite { key: key.to_string(), prev, next, source: source.clone() },
                    );
                }
            }
            if let Some(readers) = readers.get(&(key, prev)) {
                for &reader in readers {
                    graph.add(
                        reader,
                        next_writer.txn,
                        EdgeKind::Rw,
                        Why::ReadBeforeWrite {
                            key: key.to_string(),
                            read: prev,
                            next,
                            source: source.clone(),
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

/// G1a, G1b, garbage, and the wr edge of one external read.
fn check_read(
    writers: &FxHashMap<(&str, i64), Writer>,
    reader: usize,
    key: &str,
    read: Option<i64>,
    graph: &mut Graph,
    anomalies: &mut Vec<Anomaly>,
) {
    let Some(value) = read else { return };
    match writers.get(&(key, value)) {
        None => anomalies.push(Anomaly::GarbageRead { txn: reader, key: key.to_string(), value }),
        Some(w) if w.failed => {
            anomalies.push(Anomaly::G1a { reader, writer: w.txn, key: key.to_string(), value })
        }
        Some(w) => {
            if !w.is_final && w.txn != reader {
                anomalies.push(Anomaly::G1b { reader, writer: w.txn, key: key.to_string(), value });
            }
            graph.add(w.txn, reader, EdgeKind::Wr, Why::ReadWritten { key: key.to_string(), value });
        }
    }
}

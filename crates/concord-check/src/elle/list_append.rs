//! List-append analysis: the workload where every read reveals the whole version history of a key.
//!
//! A read of key `x` returns the *list* of everything appended to `x`, in order. Since every appended
//! value is unique, a read `[1 2 3]` says exactly which transactions' appends it saw, and in which
//! order they were installed. Reads are therefore *recoverable* (we know which write produced each
//! element) and *traceable* (we know the order of versions), which is what makes this workload the
//! strongest one Elle has.
//!
//! 1. **Version order.** In a serializable history every committed read of `x` is a prefix of one
//!    final list. The longest read is the best view of it; every other read must be a prefix of it,
//!    or the two reads saw incompatible orders (`incompatible-order`).
//! 2. **Per-read checks.** An element nobody appended (`garbage-read`); an element appended by a
//!    failed transaction (G1a, aborted read); a read whose last element is not the final append of
//!    its writer to that key – the reader saw the middle of another transaction (G1b, intermediate
//!    read); an element twice (`duplicate-elements`).
//! 3. **Edges.** From the version order `[… a b …]` of each key: ww from `a`'s appender to `b`'s
//!    (b was installed right after a); wr from the appender of a read's last element to the reader;
//!    rw from a reader to the appender of the element right after what it saw.
//!
//! Appends by `info` transactions take part only if some read shows them; unobserved, they add no
//! edges (an edge to a transaction that never committed could invent a cycle).

use super::graph::{EdgeKind, Graph, Why};
use super::history::{ListDisplay, Mop, TxnHistory, TxnOutcome};
use super::{Anomaly, InputError};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
struct Writer {
    txn: usize,
    failed: bool,
    /// Whether this append was the transaction's last to that key.
    is_final: bool,
}

struct Read<'a> {
    txn: usize,
    list: &'a [i64],
}

pub(super) fn analyse(
    history: &TxnHistory,
    graph: &mut Graph,
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), InputError> {
    // Who appended what. Unique values are the generator's promise; a repeat makes reads ambiguous.
    let mut writers: FxHashMap<(&str, i64), Writer> = FxHashMap::default();
    for txn in &history.txns {
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for mop in &txn.mops {
            match mop {
                Mop::Append { key, value } => {
                    last.insert(key, *value);
                }
                Mop::ReadList { .. } => {}
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
            if let Mop::Append { key, value } = mop {
                let writer = Writer {
                    txn: txn.id,
                    failed: txn.outcome == TxnOutcome::Fail,
                    is_final: last.get(key.as_str()) == Some(value),
                };
                if let Some(previous) = writers.insert((key, *value), writer) {
                    return Err(InputError::DuplicateWrite {
                        key: key.clone(),
                        value: *value,
                        first: previous.txn,
                        second: txn.id,
                    });
                }
            }
        }
    }

    // Internal consistency, and the committed reads grouped by key (in history order).
    let mut reads: BTreeMap<&str, Vec<Read<'_>>> = BTreeMap::new();
    for txn in history.txns.iter().filter(|t| t.is_ok()) {
        // Per key: the last list read in this transaction (if any) and what it appended since.
        let mut state: BTreeMap<&str, (Option<&[i64]>, Vec<i64>)> = BTreeMap::new();
        for mop in &txn.mops {
            match mop {
                Mop::Append { key, value } => state.entry(key).or_default().1.push(*value),
                Mop::ReadList { key, value: Some(list) } => {
                    if let Some((base, appended)) = state.get(key.as_str()) {
                        let consistent = match base {
                            Some(base) => {
                                list.len() == base.len() + appended.len()
                                    && list.starts_with(base)
                                    && list.ends_with(appended)
                            }
                            None => list.ends_with(appended),
                        };
                        if !consistent {
                            let expected = match base {
                                Some(base) => {
                                    let mut all = base.to_vec();
                                    all.extend_from_slice(appended);
                                    format!("{}", ListDisplay(&all))
                                }
                                None => format!("a list ending in {}", ListDisplay(appended)),
                            };
                            anomalies.push(Anomaly::Internal {
                                txn: txn.id,
                                key: key.clone(),
                                expected,
                                read: format!("{}", ListDisplay(list)),
                            });
                        }
                    }
                    state.insert(key, (Some(list), Vec::new()));
                    reads.entry(key).or_default().push(Read { txn: txn.id, list });
                }
                _ => {}
            }
        }
    }

    for (key, reads) in &reads {
        let mut longest = &reads[0];
        for read in reads {
            if read.list.len() > longest.list.len() {
                longest = read;
            }
        }
        // The version order: the longest read, cut before its first repeated element.
        let mut seen: FxHashMap<i64, usize> = FxHashMap::default();
        let mut order_len = longest.list.len();
        for (i, v) in longest.list.iter().enumerate() {
            if seen.insert(*v, i).is_some() {
                order_len = i;
                anomalies.push(Anomaly::DuplicateElements {
                    txn: longest.txn,
                    key: key.to_string(),
                    read: longest.list.to_vec(),
                });
                break;
            }
        }
        let order = &longest.list[..order_len];

        // Each element of the order, checked once: reads that are prefixes share it.
        let first_reader_beyond =
            |i: usize| reads.iter().find(|r| r.list.len() > i).map_or(longest.txn, |r| r.txn);
        let mut writer_at: Vec<Option<Writer>> = Vec::with_capacity(order.len());
        for (i, v) in order.iter().enumerate() {
            let writer = writers.get(&(*key, *v)).copied();
            match writer {
                None => anomalies.push(Anomaly::GarbageRead {
                    txn: first_reader_beyond(i),
                    key: key.to_string(),
                    value: *v,
                }),
                Some(w) if w.failed => anomalies.push(Anomaly::G1a {
                    reader: first_reader_beyond(i),
                    writer: w.txn,
                    key: key.to_string(),
                    value: *v,
                }),
                Some(_) => {}
            }
            writer_at.push(writer.filter(|w| !w.failed));
        }
        // `next_other[i]`: the first position after `i` appended by another transaction.
        let mut next_other = vec![order.len(); order.len()];
        for i in (0..order.len().saturating_sub(1)).rev() {
            let same = matches!((writer_at[i], writer_at[i + 1]), (Some(a), Some(b)) if a.txn == b.txn);
            next_other[i] = if same { next_other[i + 1] } else { i + 1 };
        }
        for pair in 1..order.len() {
            if let (Some(a), Some(b)) = (writer_at[pair - 1], writer_at[pair]) {
                graph.add(
                    a.txn,
                    b.txn,
                    EdgeKind::Ww,
                    Why::AppendAfter { key: key.to_string(), prev: order[pair - 1], next: order[pair] },
                );
            }
        }

        for read in reads {
            let n = read.list.len();
            if !longest.list.starts_with(read.list) {
                anomalies.push(Anomaly::IncompatibleOrder {
                    key: key.to_string(),
                    a: (longest.txn, longest.list.to_vec()),
                    b: (read.txn, read.list.to_vec()),
                });
                // Its elements were not checked with the order's: check them here.
                for v in read.list {
                    match writers.get(&(*key, *v)) {
                        None => anomalies.push(Anomaly::GarbageRead {
                            txn: read.txn,
                            key: key.to_string(),
                            value: *v,
                        }),
                        Some(w) if w.failed => anomalies.push(Anomaly::G1a {
                            reader: read.txn,
                            writer: w.txn,
                            key: key.to_string(),
                            value: *v,
                        }),
                        Some(_) => {}
                    }
                }
                continue;
            }
            if n > order.len() {
                // It holds the repeated element; reported with the longest read.
                continue;
            }
            if n > 0 {
                if let Some(w) = writer_at[n - 1] {
                    if w.txn != read.txn && !w.is_final {
                        anomalies.push(Anomaly::G1b {
                            reader: read.txn,
                            writer: w.txn,
                            key: key.to_string(),
                            value: order[n - 1],
                        });
                    }
                    graph.add(
                        w.txn,
                        read.txn,
                        EdgeKind::Wr,
                        Why::ReadAppended { key: key.to_string(), last: order[n - 1], len: n },
                    );
                }
            }
            // The next *version* is the next transaction's: elements appended by the same
            // transaction as the last one read are one version with it (reading only part of them
            // is the G1b above, not a dependency of the writer on its reader).
            let next = if n == 0 { 0 } else { next_other[n - 1] };
            if next < order.len() {
                if let Some(w) = writer_at[next] {
                    graph.add(
                        read.txn,
                        w.txn,
                        EdgeKind::Rw,
                        Why::ReadBeforeAppend {
                            key: key.to_string(),
                            last: n.checked_sub(1).map(|i| order[i]),
                            next: order[next],
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

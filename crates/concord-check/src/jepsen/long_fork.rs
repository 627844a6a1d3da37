//! Jepsen's `long-fork` checker: two reads that saw concurrent writes in opposite orders.
//!
//! Parallel snapshot isolation allows – and snapshot isolation forbids – the *long fork*: writes
//! to `x` and to `y` happen concurrently; one reader sees `x` but not `y`, another sees `y` but not
//! `x`. The two readers disagree about the order of the writes, so there is no single order of
//! the transactions (Jepsen's `jepsen.tests.long-fork`).
//!
//! The workload's history has two kinds of transactions (`:f :txn`):
//!
//! * **writes** of one key, `[[:w 3 1]]`, each key written at most once (an insert);
//! * **reads** of a group of keys, `[[:r 2 nil] [:r 3 1]]`, all the reads of a group naming the same
//!   keys.
//!
//! Since a key goes from `nil` to its one value and never back, two reads of one group are ordered
//! when one saw everything the other did; a **fork** is a pair where each saw a write the other
//! missed. Every pair of `ok` reads of the same keys is compared (quadratic in the reads of a group,
//! as in Jepsen). A key written twice makes the history impossible to judge (Jepsen answers
//! `:unknown`); two reads with different values for one key break the workload's promise and are
//! reported as such.

use super::{name, some_of, RawOp};
use crate::formats::edn::Edn;
use std::collections::BTreeMap;
use std::fmt;

/// Forks listed before "… and N more".
const SHOWN_MAX: usize = 20;

/// Two reads that saw the writes in opposite orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// Lines of the two reads' completions.
    pub lines: (usize, usize),
    /// A key the first read saw written and the second did not, and one the other way round.
    pub keys: (String, String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub write_count: usize,
    pub read_count: usize,
    pub group_count: usize,
    pub forks: Vec<Fork>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.forks.is_empty()
    }
}

enum Txn {
    Write(String),
    /// `(key, value)` pairs, as written in the history.
    Read(Vec<(String, Edn)>),
}

fn txn(op: &RawOp, value: &Edn) -> Result<Txn, String> {
    let mops = match value {
        Edn::Vector(items) | Edn::List(items) => items,
        other => return Err(format!("line {}: :value {other} is not a list of micro-ops", op.invoke_line)),
    };
    let mut reads = Vec::new();
    for mop in mops {
        let (f, key, value) = match mop {
            Edn::Vector(items) | Edn::List(items) if items.len() == 3 => {
                (name(&items[0]), &items[1], &items[2])
            }
            other => return Err(format!("line {}: micro-op {other} is not [f key value]", op.invoke_line)),
        };
        match f {
            Some("w" | "write") if mops.len() == 1 => return Ok(Txn::Write(super::text_of(key))),
            Some("r" | "read") => reads.push((super::text_of(key), value.clone())),
            _ => {
                return Err(format!(
                "line {}: a long-fork transaction is one write [[:w k v]] or only reads [[:r k v] …], not {}",
                op.invoke_line,
                Edn::Vector(mops.clone())
            ))
            }
        }
    }
    reads.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Txn::Read(reads))
}

/// Check a `long-fork` history.
pub fn check(ops: &[RawOp]) -> Result<Report, String> {
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    // Key set -> (completion line, values) of each ok read of that group.
    let mut groups: BTreeMap<Vec<String>, Vec<(usize, Vec<Edn>)>> = BTreeMap::new();
    let mut read_count = 0;
    for op in ops {
        match txn(op, &op.input)? {
            Txn::Write(key) => {
                if let Some(line) = written.insert(key.clone(), op.invoke_line) {
                    return Err(format!(
                        "key {key} is written twice (lines {line} and {}): the long-fork checker needs each key written once",
                        op.invoke_line
                    ));
                }
            }
            Txn::Read(_) if !op.is_ok() => {}
            Txn::Read(_) => {
                let Txn::Read(reads) = txn(op, &op.output)? else {
                    return Err(format!("line {}: a read completed as a write", op.invoke_line));
                };
                let line = op.complete_line.unwrap_or(op.invoke_line);
                let keys: Vec<String> = reads.iter().map(|(k, _)| k.clone()).collect();
                groups.entry(keys).or_default().push((line, reads.into_iter().map(|(_, v)| v).collect()));
                read_count += 1;
            }
        }
    }
    let mut forks = Vec::new();
    for (keys, reads) in &groups {
        for (i, (line_a, a)) in reads.iter().enumerate() {
            for (line_b, b) in &reads[i + 1..] {
                // Keys `a` saw written and `b` did not, and the other way round.
                let (mut only_a, mut only_b) = (None, None);
                for (k, (va, vb)) in keys.iter().zip(a.iter().zip(b)) {
                    match (va, vb) {
                        _ if va == vb => {}
                        (_, Edn::Nil) => only_a = only_a.or(Some(k)),
                        (Edn::Nil, _) => only_b = only_b.or(Some(k)),
                        _ => {
                            return Err(format!(
                                "the reads at lines {line_a} and {line_b} saw different values of key {k} ({va} and {vb}): \
                                 the long-fork checker needs each key written once"
                            ))
                        }
                    }
                }
                if let (Some(x), Some(y)) = (only_a, only_b) {
                    forks.push(Fork { lines: (*line_a, *line_b), keys: (x.clone(), y.clone()) });
                }
            }
        }
    }
    Ok(Report { write_count: written.len(), read_count, group_count: groups.len(), forks })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "long-fork: {} writes, {} reads of {} key groups",
            self.write_count, self.read_count, self.group_count
        )?;
        let forks = self.forks.iter().map(|fork| {
            format!(
                "\n  the read at line {} saw {} but not {}; the read at line {} saw {} but not {}",
                fork.lines.0, fork.keys.0, fork.keys.1, fork.lines.1, fork.keys.1, fork.keys.0
            )
        });
        if !self.forks.is_empty() {
            writeln!(f, "  LONG FORKS: {}:{}", self.forks.len(), some_of(forks, SHOWN_MAX))?;
        }
        writeln!(
            f,
            "{}",
            if self.is_valid() { "valid: the reads of each group agree on one order" } else { "NOT valid" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_ops;
    use super::*;
    use crate::formats::Format;

    const FORK: &str = "\
{:process 0, :type :invoke, :f :txn, :value [[:w 1 1]]}
{:process 1, :type :invoke, :f :txn, :value [[:w 2 1]]}
{:process 0, :type :ok, :f :txn, :value [[:w 1 1]]}
{:process 1, :type :ok, :f :txn, :value [[:w 2 1]]}
{:process 2, :type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
{:process 2, :type :ok, :f :txn, :value [[:r 1 1] [:r 2 nil]]}
{:process 3, :type :invoke, :f :txn, :value [[:r 2 nil] [:r 1 nil]]}
{:process 3, :type :ok, :f :txn, :value [[:r 2 1] [:r 1 nil]]}
";

    #[test]
    fn opposite_orders_are_a_fork() {
        let report = check(&read_ops(FORK, Format::Edn).unwrap()).unwrap();
        assert_eq!(report.forks, vec![Fork { lines: (6, 8), keys: ("1".into(), "2".into()) }]);
        assert!(report.to_string().contains("the read at line 6 saw 1 but not 2"), "{report}");

        // The second reader saw both writes: ordered after the first.
        let ordered = FORK.replace("[[:r 2 1] [:r 1 nil]]", "[[:r 2 1] [:r 1 1]]");
        assert!(check(&read_ops(&ordered, Format::Edn).unwrap()).unwrap().is_valid());
    }

    #[test]
    fn broken_promises_are_not_verdicts() {
        let twice = FORK.replace("[[:w 2 1]]", "[[:w 1 2]]");
        assert!(check(&read_ops(&twice, Format::Edn).unwrap()).unwrap_err().contains("written twice"));
        let mixed = FORK.replace("[[:w 1 1]]", "[[:w 1 1] [:r 2 nil]]");
        assert!(check(&read_ops(&mixed, Format::Edn).unwrap()).unwrap_err().contains("one write"));
    }
}

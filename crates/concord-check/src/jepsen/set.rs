//! Jepsen's `set` checker: is every acknowledged add in the final read?
//!
//! The workload adds unique elements to a set, concurrently and through faults, then – once the
//! system has healed – reads the whole set. The checker (Jepsen's `checker/set`) compares that
//! **final read** (the last `ok` read in the history) with the adds:
//!
//! * **ok** – attempted elements the final read holds;
//! * **lost** – elements whose add was acknowledged (`ok`) but which the final read lacks;
//! * **unexpected** – elements in the final read that no add ever attempted;
//! * **recovered** – elements the final read holds whose add did not say `ok` (`info`, or even
//!   `fail`): they made it in after all, which is allowed.
//!
//! The history is valid when nothing is lost and nothing unexpected. It is not linearizability:
//! intermediate reads are ignored, and an add concurrent with the final read counts as lost if the
//! read missed it, as in Jepsen (its workloads quiesce before the final read). For a check of every
//! read, use `set-full` ([`crate::jepsen::set_full`]) or the linearizable set model
//! (`--model linearizable-set`).

use super::{elements, some_of, Element, RawOp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Elements shown per category before "… and N more".
const SHOWN_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub attempt_count: usize,
    pub acknowledged_count: usize,
    /// Line of the final read.
    pub final_read_line: usize,
    pub ok: BTreeSet<Element>,
    /// Each lost element with the line of its acknowledged add.
    pub lost: BTreeMap<Element, usize>,
    pub unexpected: BTreeSet<Element>,
    pub recovered: BTreeSet<Element>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }
}

/// Check a `set` history. `Err` when it cannot be judged (no final read, malformed values).
pub fn check(ops: &[RawOp]) -> Result<Report, String> {
    let mut attempts: BTreeSet<Element> = BTreeSet::new();
    let mut acknowledged: BTreeMap<Element, usize> = BTreeMap::new();
    let mut final_read: Option<&RawOp> = None;
    for op in ops {
        match op.f.as_str() {
            "add" => {
                let element = Element::of(&op.input);
                attempts.insert(element.clone());
                if op.is_ok() {
                    acknowledged.insert(element, op.complete_line.unwrap_or(op.invoke_line));
                }
            }
            "read" if op.is_ok() => {
                // The last to complete is the final read.
                if final_read.is_none_or(|r| r.complete_index < op.complete_index) {
                    final_read = Some(op);
                }
            }
            "read" => {}
            other => {
                return Err(format!(
                    "line {}: the set checker reads only :add and :read, not :{other}",
                    op.invoke_line
                ))
            }
        }
    }
    let Some(read) = final_read else {
        return Err("the set was never read (no ok :read): there is no final read to check".into());
    };
    let read_line = read.complete_line.unwrap_or(read.invoke_line);
    let seen: BTreeSet<Element> =
        elements(&read.output).map_err(|e| format!("line {read_line}: {e}"))?.into_iter().collect();
    Ok(Report {
        attempt_count: attempts.len(),
        acknowledged_count: acknowledged.len(),
        final_read_line: read_line,
        ok: seen.intersection(&attempts).cloned().collect(),
        lost: acknowledged.iter().filter(|(e, _)| !seen.contains(e)).map(|(e, l)| (e.clone(), *l)).collect(),
        unexpected: seen.difference(&attempts).cloned().collect(),
        recovered: seen
            .iter()
            .filter(|e| attempts.contains(e) && !acknowledged.contains_key(e))
            .cloned()
            .collect(),
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "set: {} adds attempted, {} acknowledged; final read at line {}",
            self.attempt_count, self.acknowledged_count, self.final_read_line
        )?;
        writeln!(f, "  ok: {} elements", self.ok.len())?;
        if !self.recovered.is_empty() {
            writeln!(
                f,
                "  recovered (add not acknowledged, yet read): {}: {}",
                self.recovered.len(),
                some_of(&self.recovered, SHOWN_MAX)
            )?;
        }
        if !self.lost.is_empty() {
            let lost = self.lost.iter().map(|(e, line)| format!("{e} (add ok at line {line})"));
            writeln!(
                f,
                "  LOST (acknowledged, missing from the final read): {}: {}",
                self.lost.len(),
                some_of(lost, SHOWN_MAX)
            )?;
        }
        if !self.unexpected.is_empty() {
            writeln!(
                f,
                "  UNEXPECTED (read, never added): {}: {}",
                self.unexpected.len(),
                some_of(&self.unexpected, SHOWN_MAX)
            )?;
        }
        writeln!(
            f,
            "{}",
            if self.is_valid() { "valid: every acknowledged add is in the final read" } else { "NOT valid" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_ops;
    use super::*;
    use crate::formats::Format;

    fn run(text: &str) -> Result<Report, String> {
        check(&read_ops(text, Format::Edn).unwrap())
    }

    #[test]
    fn lost_unexpected_and_recovered() {
        let text = "\
{:process 0, :type :invoke, :f :add, :value 1}
{:process 0, :type :ok, :f :add, :value 1}
{:process 1, :type :invoke, :f :add, :value 2}
{:process 1, :type :info, :f :add, :value 2}
{:process 2, :type :invoke, :f :add, :value 3}
{:process 2, :type :ok, :f :add, :value 3}
{:process 3, :type :invoke, :f :read, :value nil}
{:process 3, :type :ok, :f :read, :value #{1 2 3}}
";
        let report = run(text).unwrap();
        assert!(report.is_valid(), "{report}");
        assert_eq!(report.recovered, [Element::Int(2)].into_iter().collect());

        let bad = text.replace("#{1 2 3}", "#{1 2 9}");
        let report = run(&bad).unwrap();
        assert!(!report.is_valid());
        assert_eq!(report.lost, [(Element::Int(3), 6)].into_iter().collect());
        assert_eq!(report.unexpected, [Element::Int(9)].into_iter().collect());
        let shown = report.to_string();
        assert!(shown.contains("3 (add ok at line 6)") && shown.contains("UNEXPECTED"), "{shown}");
    }

    #[test]
    fn no_final_read_is_not_a_verdict() {
        let text =
            "{:process 0, :type :invoke, :f :add, :value 1}\n{:process 0, :type :ok, :f :add, :value 1}\n";
        assert!(run(text).unwrap_err().contains("never read"));
    }
}

//! Jepsen's `set-full` checker: every read, not just the last, against every element's history.
//!
//! The workload interleaves adds of unique elements with reads of the whole set. For each element
//! the checker asks when it became **known** – its add was acknowledged, or a read returned it,
//! whichever completed first – and what the reads that *began after that* saw (real-time order is
//! the order of the events):
//!
//! * **stable** – known, and every read that began after the last read missing it … saw it: the
//!   element is there to stay. Among these, **stale** ones were missing from some read that began
//!   after they were known, before reappearing: a stale read, allowed unless the set is meant to be
//!   linearizable (Jepsen's `:linearizable?` option; the count is reported either way).
//! * **lost** – known, and missing from a read that began after the last read that saw it had
//!   completed (or after it was acknowledged, if no read ever saw it): it vanished for good.
//! * **never read** – acknowledged, but no read began after that: the history cannot tell.
//! * **unexpected** – returned by a read, but never attempted.
//!
//! Adds that never said `ok` and that no read returned are not counted (they may never have
//! happened). Valid when nothing is lost and nothing unexpected. Jepsen also reports latency
//! percentiles for stable and lost elements; this checker reports, when the history has `:time`s,
//! the longest time an element stayed stale – the essential number – and not the distributions.

use super::{elements, some_of, Element, RawOp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

const SHOWN_MAX: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub read_count: usize,
    pub stable: BTreeSet<Element>,
    pub stale: BTreeSet<Element>,
    /// Each lost element, with the line of the read that lacked it last.
    pub lost: BTreeMap<Element, usize>,
    pub never_read: BTreeSet<Element>,
    pub unexpected: BTreeMap<Element, usize>,
    /// The longest time from an element becoming known to the start of the last read that still
    /// missed it (stale elements only), when the history has times; in the history's unit.
    pub stale_time_max: Option<i64>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }
}

struct Read<'a> {
    op: &'a RawOp,
    complete: usize,
    seen: BTreeSet<Element>,
}

/// Check a `set-full` history.
pub fn check(ops: &[RawOp]) -> Result<Report, String> {
    let mut attempts: BTreeSet<Element> = BTreeSet::new();
    // Element -> (completion index, time) of its acknowledged add.
    let mut acknowledged: BTreeMap<Element, (usize, Option<i64>)> = BTreeMap::new();
    let mut reads: Vec<Read> = Vec::new();
    for op in ops {
        match op.f.as_str() {
            "add" => {
                let element = Element::of(&op.input);
                attempts.insert(element.clone());
                if let (true, Some(at)) = (op.is_ok(), op.complete_index) {
                    acknowledged.insert(element, (at, op.complete_time));
                }
            }
            "read" => {
                if let (true, Some(complete)) = (op.is_ok(), op.complete_index) {
                    let line = op.complete_line.unwrap_or(op.invoke_line);
                    let seen = elements(&op.output).map_err(|e| format!("line {line}: {e}"))?;
                    reads.push(Read { op, complete, seen: seen.into_iter().collect() });
                }
            }
            other => {
                return Err(format!(
                    "line {}: the set-full checker reads only :add and :read, not :{other}",
                    op.invoke_line
                ))
            }
        }
    }
    if reads.is_empty() {
        return Err("the set was never read (no ok :read): there is nothing to check".into());
    }
    let mut report = Report { read_count: reads.len(), ..Report::default() };
    let mut universe: BTreeSet<Element> = attempts.clone();
    for read in &reads {
        universe.extend(read.seen.iter().cloned());
    }
    for element in universe {
        let read_line = |r: &Read| r.op.complete_line.unwrap_or(r.op.invoke_line);
        if !attempts.contains(&element) {
            let first = reads.iter().find(|r| r.seen.contains(&element)).map_or(0, read_line);
            report.unexpected.insert(element, first);
            continue;
        }
        // Known: the first of the acknowledgement and the first read returning it to complete.
        let first_seen = reads.iter().filter(|r| r.seen.contains(&element)).min_by_key(|r| r.complete);
        let known = match (acknowledged.get(&element), first_seen) {
            (Some(&(ack, _)), Some(r)) if r.complete < ack => (r.complete, r.op.complete_time),
            (Some(&(ack, ack_time)), _) => (ack, ack_time),
            (None, Some(r)) => (r.complete, r.op.complete_time),
            // Never acknowledged, never seen: it may never have happened.
            (None, None) => continue,
        };
        let after: Vec<&Read> = reads.iter().filter(|r| r.op.invoke_index > known.0).collect();
        let last_present = reads.iter().filter(|r| r.seen.contains(&element)).map(|r| r.complete).max();
        let lost_by = after
            .iter()
            .filter(|r| !r.seen.contains(&element) && last_present.is_none_or(|p| r.op.invoke_index > p))
            .max_by_key(|r| r.op.invoke_index);
        if let Some(read) = lost_by {
            report.lost.insert(element, read_line(read));
        } else if after.is_empty() && first_seen.is_none() {
            report.never_read.insert(element);
        } else {
            let stale_reads: Vec<&&Read> = after.iter().filter(|r| !r.seen.contains(&element)).collect();
            if !stale_reads.is_empty() {
                let lag = stale_reads.iter().filter_map(|r| Some(r.op.invoke_time? - known.1?)).max();
                if let Some(lag) = lag {
                    report.stale_time_max = Some(report.stale_time_max.map_or(lag, |m| m.max(lag)));
                }
                report.stale.insert(element.clone());
            }
            report.stable.insert(element);
        }
    }
    Ok(report)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "set-full: {} reads", self.read_count)?;
        writeln!(f, "  stable: {} elements", self.stable.len())?;
        if !self.stale.is_empty() {
            write!(
                f,
                "  stale (missing from a later read, then back): {}: {}",
                self.stale.len(),
                some_of(&self.stale, SHOWN_MAX)
            )?;
            match self.stale_time_max {
                Some(t) => writeln!(f, " (longest: {t} time units)")?,
                None => writeln!(f)?,
            }
        }
        if !self.never_read.is_empty() {
            writeln!(
                f,
                "  never read (no read began after the add): {}: {}",
                self.never_read.len(),
                some_of(&self.never_read, SHOWN_MAX)
            )?;
        }
        if !self.lost.is_empty() {
            let lost =
                self.lost.iter().map(|(e, line)| format!("{e} (missing from the read at line {line})"));
            writeln!(f, "  LOST: {}: {}", self.lost.len(), some_of(lost, SHOWN_MAX))?;
        }
        if !self.unexpected.is_empty() {
            let unexpected = self.unexpected.iter().map(|(e, line)| format!("{e} (read at line {line})"));
            writeln!(
                f,
                "  UNEXPECTED (read, never added): {}: {}",
                self.unexpected.len(),
                some_of(unexpected, SHOWN_MAX)
            )?;
        }
        writeln!(f, "{}", if self.is_valid() { "valid: no element lost" } else { "NOT valid" })
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_ops;
    use super::*;
    use crate::formats::Format;

    fn run(text: &str) -> Report {
        check(&read_ops(text, Format::Edn).unwrap()).unwrap()
    }

    const ADDS: &str = "\
{:process 0, :type :invoke, :f :add, :value 1, :time 0}
{:process 0, :type :ok, :f :add, :value 1, :time 10}
{:process 1, :type :invoke, :f :add, :value 2, :time 20}
{:process 1, :type :ok, :f :add, :value 2, :time 30}
";

    #[test]
    fn stable_stale_and_never_read() {
        let text = format!(
            "{ADDS}\
{{:process 2, :type :invoke, :f :read, :time 40}}
{{:process 2, :type :ok, :f :read, :value [1], :time 50}}
{{:process 2, :type :invoke, :f :read, :time 60}}
{{:process 2, :type :ok, :f :read, :value [1 2], :time 70}}
{{:process 0, :type :invoke, :f :add, :value 3, :time 80}}
{{:process 0, :type :ok, :f :add, :value 3, :time 90}}
"
        );
        let report = run(&text);
        assert!(report.is_valid(), "{report}");
        assert_eq!(report.stale, [Element::Int(2)].into_iter().collect(), "{report}");
        assert_eq!(report.stale_time_max, Some(10));
        assert_eq!(report.never_read, [Element::Int(3)].into_iter().collect());
        assert_eq!(report.stable.len(), 2);
    }

    #[test]
    fn an_element_that_vanishes_is_lost() {
        let text = format!(
            "{ADDS}\
{{:process 2, :type :invoke, :f :read}}
{{:process 2, :type :ok, :f :read, :value [1 2]}}
{{:process 2, :type :invoke, :f :read}}
{{:process 2, :type :ok, :f :read, :value [2 7]}}
"
        );
        let report = run(&text);
        assert!(!report.is_valid());
        assert_eq!(report.lost, [(Element::Int(1), 8)].into_iter().collect(), "{report}");
        assert_eq!(report.unexpected, [(Element::Int(7), 8)].into_iter().collect());
        assert!(report.to_string().contains("LOST: 1: 1 (missing from the read at line 8)"), "{report}");
    }
}

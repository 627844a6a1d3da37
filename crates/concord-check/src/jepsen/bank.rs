//! Jepsen's `bank` checker: money moves between accounts, but none is made or destroyed.
//!
//! The workload transfers amounts between accounts – `{:f :transfer, :value {:from 1, :to 2,
//! :amount 5}}` – and reads every balance at once in one transaction – `{:f :read, :value {0 10,
//! 1 20, 2 70}}`. Under snapshot isolation or anything stronger, **every read sees the same
//! total**, and with transfers that check for overdrafts, **no balance is negative**. A read
//! breaking either saw a transfer half-applied (or money appear from nowhere): the checker reports
//! each such `ok` read, with its line.
//!
//! * **The total** is Jepsen's `:total-amount` from the test's configuration, which histories do
//!   not record: give it (`--bank-total`), or let the checker take the sum of the **first `ok`
//!   read** – then a history whose first read is already wrong shows every *other* read as wrong,
//!   and the report says the total was inferred.
//! * **Accounts**: likewise the first read's accounts, unless every read agrees anyway; a later
//!   read listing an account outside them is reported (Jepsen's `:unexpected-key`), as is a `nil`
//!   balance (`:nil-balance`).
//! * **Negative balances** are errors unless allowed (Jepsen's `:negative-balances?`).
//!
//! Transfers are not checked (a failed one changes nothing; an unknown one may or may not have
//! moved money, which the totals allow either way).

use super::{Element, RawOp};
use crate::formats::edn::Edn;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Bad reads listed before "… and N more".
const SHOWN_MAX: usize = 30;

/// What the checker assumes about the test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The money in the bank; `None`: the first read's sum.
    pub total: Option<i64>,
    pub negative_balances_allowed: bool,
}

/// What is wrong with one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    WrongTotal { total: i64 },
    Negative { account: Element, balance: i64 },
    NilBalance { account: Element },
    UnexpectedAccount { account: Element },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::WrongTotal { total } => write!(f, "balances sum to {total}"),
            Problem::Negative { account, balance } => write!(f, "account {account} is negative ({balance})"),
            Problem::NilBalance { account } => write!(f, "account {account} has a nil balance"),
            Problem::UnexpectedAccount { account } => write!(f, "account {account} is not one of the bank's"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRead {
    pub line: usize,
    pub process: u64,
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub total: i64,
    /// Whether `total` was taken from the first read.
    pub total_inferred: bool,
    pub accounts: BTreeSet<Element>,
    pub read_count: usize,
    pub bad_reads: Vec<BadRead>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.bad_reads.is_empty()
    }
}

/// A read's balances; `None` balances are `nil`.
fn balances(form: &Edn) -> Result<BTreeMap<Element, Option<i64>>, String> {
    let Edn::Map(entries) = form else {
        return Err(format!("a bank read returns a map of account to balance, got {form}"));
    };
    entries
        .iter()
        .map(|(account, balance)| {
            let balance = match balance {
                Edn::Int(b) => Some(*b),
                Edn::Nil => None,
                other => return Err(format!("balance {other} of account {account} is not an integer")),
            };
            Ok((Element::of(account), balance))
        })
        .collect()
}

/// Check a `bank` history.
pub fn check(ops: &[RawOp], options: &Options) -> Result<Report, String> {
    let mut reads = Vec::new();
    for op in ops {
        match op.f.as_str() {
            "read" if op.is_ok() => {
                let line = op.complete_line.unwrap_or(op.invoke_line);
                reads.push((op, line, balances(&op.output).map_err(|e| format!("line {line}: {e}"))?));
            }
            "read" | "transfer" => {}
            other => {
                return Err(format!(
                    "line {}: the bank checker reads only :transfer and :read, not :{other}",
                    op.invoke_line
                ))
            }
        }
    }
    let Some((_, _, first)) = reads.first() else {
        return Err("no ok :read of the balances: there is nothing to check".into());
    };
    let accounts: BTreeSet<Element> = first.keys().cloned().collect();
    let (total, total_inferred) = match options.total {
        Some(total) => (total, false),
        None => (first.values().map(|b| b.unwrap_or(0)).fold(0i64, i64::saturating_add), true),
    };
    let mut bad_reads = Vec::new();
    for (op, line, balances) in &reads {
        let mut problems = Vec::new();
        let sum = balances.values().map(|b| b.unwrap_or(0)).fold(0i64, i64::saturating_add);
        if sum != total {
            problems.push(Problem::WrongTotal { total: sum });
        }
        for (account, balance) in balances {
            match balance {
                None => problems.push(Problem::NilBalance { account: account.clone() }),
                Some(b) if *b < 0 && !options.negative_balances_allowed => {
                    problems.push(Problem::Negative { account: account.clone(), balance: *b })
                }
                Some(_) => {}
            }
            if !accounts.contains(account) {
                problems.push(Problem::UnexpectedAccount { account: account.clone() });
            }
        }
        if !problems.is_empty() {
            bad_reads.push(BadRead { line: *line, process: op.process, problems });
        }
    }
    Ok(Report { total, total_inferred, accounts, read_count: reads.len(), bad_reads })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bank: {} accounts, total {}{}; {} reads",
            self.accounts.len(),
            self.total,
            if self.total_inferred { " (the first read's sum; give it with --bank-total)" } else { "" },
            self.read_count
        )?;
        for bad in self.bad_reads.iter().take(SHOWN_MAX) {
            let problems: Vec<String> = bad.problems.iter().map(|p| p.to_string()).collect();
            writeln!(f, "  line {}: read by process {}: {}", bad.line, bad.process, problems.join("; "))?;
        }
        if self.bad_reads.len() > SHOWN_MAX {
            writeln!(f, "  … and {} more bad reads", self.bad_reads.len() - SHOWN_MAX)?;
        }
        if self.is_valid() {
            writeln!(f, "valid: every read sums to the total, none negative")
        } else {
            writeln!(f, "NOT valid: {} of {} reads are wrong", self.bad_reads.len(), self.read_count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_ops;
    use super::*;
    use crate::formats::Format;

    const HISTORY: &str = "\
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value {0 50, 1 50}}
{:process 1, :type :invoke, :f :transfer, :value {:from 0, :to 1, :amount 20}}
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value {0 30, 1 50}}
{:process 1, :type :ok, :f :transfer, :value {:from 0, :to 1, :amount 20}}
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value {0 30, 1 70}}
";

    #[test]
    fn a_half_applied_transfer_is_a_wrong_total() {
        let ops = read_ops(HISTORY, Format::Edn).unwrap();
        let report = check(&ops, &Options::default()).unwrap();
        assert!(report.total_inferred);
        assert_eq!(report.total, 100);
        assert_eq!(
            report.bad_reads,
            vec![BadRead { line: 5, process: 0, problems: vec![Problem::WrongTotal { total: 80 }] }]
        );
        assert!(report.to_string().contains("line 5: read by process 0: balances sum to 80"), "{report}");
    }

    #[test]
    fn totals_negatives_and_strangers() {
        let text = "[{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"},\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":{\"0\":-10,\"1\":110,\"9\":null}}]";
        let ops = read_ops(text, Format::Auto).unwrap();
        let report = check(&ops, &Options { total: Some(100), negative_balances_allowed: false }).unwrap();
        assert_eq!(
            report.bad_reads[0].problems,
            vec![
                Problem::Negative { account: Element::Int(0), balance: -10 },
                Problem::NilBalance { account: Element::Int(9) }
            ],
            "JSON's string keys are the same accounts as EDN's integers"
        );
        let report = check(&ops, &Options { total: Some(90), negative_balances_allowed: true }).unwrap();
        assert_eq!(
            report.bad_reads[0].problems,
            vec![Problem::WrongTotal { total: 100 }, Problem::NilBalance { account: Element::Int(9) }]
        );

        let ok_text = HISTORY.replace("{0 30, 1 50}", "{0 30, 1 70}");
        let report = check(
            &read_ops(&ok_text, Format::Edn).unwrap(),
            &Options { total: Some(100), ..Options::default() },
        )
        .unwrap();
        assert!(report.is_valid(), "{report}");
    }
}

//! Jepsen's checkers that are not linearizability: `set`, `set-full`, `bank` and `long-fork`.
//!
//! Jepsen judges some workloads with purpose-built checkers instead of a sequential model: they ask
//! a narrower question ("is every acknowledged add in the final read?", "does every read of the
//! accounts sum to the total?") that stays cheap on long histories, and their histories hold
//! values – balance maps, transactions – that Concord's [`History`](concord_core::history::History)
//! does not. So these checkers read the op maps themselves ([`read_ops`]), as EDN or JSON, and
//! pair each invocation with its completion the way [`crate::ops::prepare`] does.
//!
//! | `--model`   | module        | history                                             |
//! |-------------|---------------|-----------------------------------------------------|
//! | `set`       | [`set`]       | `:add` elements, then a final `:read` of all        |
//! | `set-full`  | [`set_full`]  | `:add` elements and `:read`s of all, interleaved     |
//! | `bank`      | [`bank`]      | `:transfer {:from :to :amount}` and `:read` balances |
//! | `long-fork` | [`long_fork`] | `:txn` single-key writes and group reads             |
//!
//! Real-time order is the order of the events in the file, as everywhere in Concord's checkers
//! (see [`crate::ops`]); `:time` is only reported.

pub mod bank;
pub mod long_fork;
pub mod set;
pub mod set_full;

use crate::formats::edn::Edn;
use crate::formats::{self, Format, ParseError};
use concord_core::history::EventType;
use std::collections::BTreeMap;
use std::fmt;

/// The checkers of this module, by their Jepsen names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checker {
    Set,
    SetFull,
    Bank,
    LongFork,
}

impl Checker {
    pub fn name(self) -> &'static str {
        match self {
            Checker::Set => "set",
            Checker::SetFull => "set-full",
            Checker::Bank => "bank",
            Checker::LongFork => "long-fork",
        }
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    /// `info`, or never completed.
    Info,
}

/// One client operation, paired, with Jepsen's own values (EDN forms).
#[derive(Clone, Debug, PartialEq)]
pub struct RawOp {
    pub process: u64,
    /// The function's name, without the colon (`add`, `read`, `transfer`, `txn`).
    pub f: String,
    /// The invocation's value.
    pub input: Edn,
    /// The completion's value (`Nil` when it did not complete).
    pub output: Edn,
    pub outcome: Outcome,
    /// Positions of the events in the history (the real-time order).
    pub invoke_index: usize,
    /// `None`: it never completed.
    pub complete_index: Option<usize>,
    /// Lines of the invocation and of the completion, for messages.
    pub invoke_line: usize,
    pub complete_line: Option<usize>,
    /// `:time` of the invocation and completion, when the history has them (nanoseconds).
    pub invoke_time: Option<i64>,
    pub complete_time: Option<i64>,
}

impl RawOp {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// `line 12` (or `lines 12-15`), for messages.
    pub fn lines(&self) -> String {
        match self.complete_line {
            Some(end) if end != self.invoke_line => format!("lines {}-{end}", self.invoke_line),
            _ => format!("line {}", self.invoke_line),
        }
    }
}

/// Read and pair the op maps of an EDN or JSON history. Malformed maps and shape errors (a
/// completion without an invocation, two open operations of one process) are all reported, with
/// their lines. Maps of non-numeric processes (`:nemesis`) are skipped.
pub fn read_ops(text: &str, format: Format) -> Result<Vec<RawOp>, Vec<ParseError>> {
    let mut errors = Vec::new();
    let mut ops: Vec<RawOp> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut index = 0;
    formats::op_map_forms(text, format, &mut errors, |form, line| {
        let Some((process, kind, f, value, time)) = op_map(form)? else { return Ok(()) };
        let at = index;
        index += 1;
        if kind == EventType::Invoke {
            if let Some(&previous) = open.get(&process) {
                return Err(format!(
                    "process {process} invokes :{f} while its :{} (line {}) is still open",
                    ops[previous].f, ops[previous].invoke_line
                ));
            }
            open.insert(process, ops.len());
            ops.push(RawOp {
                process,
                f,
                input: value,
                output: Edn::Nil,
                outcome: Outcome::Info,
                invoke_index: at,
                complete_index: None,
                invoke_line: line,
                complete_line: None,
                invoke_time: time,
                complete_time: None,
            });
            return Ok(());
        }
        let Some(slot) = open.remove(&process) else {
            return Err(format!("process {process} completes :{f} but has no open invocation"));
        };
        let op = &mut ops[slot];
        if op.f != f {
            return Err(format!(
                "process {process} completes :{f} but invoked :{} (line {})",
                op.f, op.invoke_line
            ));
        }
        op.outcome = match kind {
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        op.output = value;
        op.complete_index = Some(at);
        op.complete_line = Some(line);
        op.complete_time = time;
        Ok(())
    });
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    }
}

type OpMap = (u64, EventType, String, Edn, Option<i64>);

/// The fields of one op map; `None` for a non-client process.
fn op_map(form: &Edn) -> Result<Option<OpMap>, String> {
    let Some((process, kind)) = formats::op_header(form, "{:process .. :type .. :f .. :value ..}")? else {
        return Ok(None);
    };
    let f = match form.get("f").and_then(name) {
        Some(f) => f.to_string(),
        None => return Err(format!(":f {} is not a keyword", form.get("f").unwrap_or(&Edn::Nil))),
    };
    let time = match form.get("time") {
        Some(Edn::Int(t)) => Some(*t),
        _ => None,
    };
    Ok(Some((process, kind, f, form.get("value").cloned().unwrap_or(Edn::Nil), time)))
}

/// A keyword, symbol or string's name, without a leading colon.
pub(crate) fn name(form: &Edn) -> Option<&str> {
    match form {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s.strip_prefix(':').unwrap_or(s)),
        _ => None,
    }
}

/// An element, account or key as text: `3`, `:x` → `x`, `"x"` → `x`. Jepsen histories use integers
/// and keywords interchangeably, and JSON turns map keys into strings, so text is the common ground.
pub(crate) fn text_of(form: &Edn) -> String {
    match form {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s.strip_prefix(':').unwrap_or(s).to_string(),
        other => other.to_string(),
    }
}

/// A set element or an account: integers sort as numbers, anything else by its text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    Int(i64),
    Text(String),
}

impl Element {
    /// Text that is an integer is the integer: JSON object keys are always strings, so `{"0": 10}`
    /// and `{0 10}` name the same account.
    pub fn of(form: &Edn) -> Element {
        match form {
            Edn::Int(i) => Element::Int(*i),
            other => {
                let text = text_of(other);
                text.parse().map_or(Element::Text(text), Element::Int)
            }
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Int(i) => write!(f, "{i}"),
            Element::Text(s) => f.write_str(s),
        }
    }
}

/// The elements of a read's value (a vector, list or set; `nil` is empty).
pub(crate) fn elements(form: &Edn) -> Result<Vec<Element>, String> {
    match form {
        Edn::Nil => Ok(Vec::new()),
        Edn::Vector(items) | Edn::List(items) | Edn::Set(items) => {
            Ok(items.iter().map(Element::of).collect())
        }
        other => Err(format!("read value {other} is not a collection of elements")),
    }
}

/// Up to `max` items, then "and N more".
pub(crate) fn some_of<T: fmt::Display>(items: impl IntoIterator<Item = T>, max: usize) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    let mut shown = items.iter().take(max).cloned().collect::<Vec<_>>().join(" ");
    if items.len() > max {
        shown.push_str(&format!(" … and {} more", items.len() - max));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_op_maps_from_edn_and_json() {
        let edn = "({:process 0, :type :invoke, :f :add, :value 1}\n {:process :nemesis, :type :info, :f :start}\n {:process 0, :type :ok, :f :add, :value 1})";
        let ops = read_ops(edn, Format::Auto).unwrap();
        assert_eq!(ops.len(), 1);
        assert!(ops[0].is_ok());
        assert_eq!((ops[0].invoke_line, ops[0].complete_line), (1, Some(3)));

        let json = r#"[{"process":0,"type":"invoke","f":"read","value":null},{"process":0,"type":"ok","f":"read","value":[1,2]}]"#;
        let ops = read_ops(json, Format::Auto).unwrap();
        assert_eq!(ops[0].output, Edn::Vector(vec![Edn::Int(1), Edn::Int(2)]));

        let bad = "{:process 0, :type :invoke, :f :add, :value 1}\n{:process 0, :type :invoke, :f :add, :value 2}\n{:process 1, :type :ok, :f :add}";
        let errors = read_ops(bad, Format::Edn).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(errors[0].message.contains("still open"), "{errors:?}");
    }
}

//! Transactional histories: what Elle reads.
//!
//! A transaction is a list of *micro-operations* ("mops") on keys, run by one process, invoked and
//! then completed `ok` (it committed), `fail` (it certainly did not) or `info` (unknown: it may have
//! committed, even after the history ended). Two workloads (see [`Workload`]):
//!
//! * **list-append** – `[:append k v]` appends `v` to the list at key `k`; `[:r k [v…]]` reads the
//!   whole list (`nil` for a key never appended to);
//! * **rw-register** – `[:w k v]` writes `v`; `[:r k v]` reads it (`nil`: never written).
//!
//! Both rest on one promise of the test's *generator*: **every value written to a key is unique**.
//! That is what lets a read name the exact write it saw – the trick at the heart of Elle.
//!
//! # Formats
//!
//! **Jepsen EDN** ([`parse_edn`]): op maps, one or several per line or inside one top-level vector,
//! as Jepsen's `history.edn` holds them:
//! `{:type :ok, :f :txn, :value [[:append 1 2] [:r 1 [1 2]]], :process 0, :time 1234, :index 7}`.
//! `:f` is ignored (Elle's histories say `:txn`); maps of non-numeric processes (`:nemesis`) are
//! skipped; keys may be integers, keywords or strings (all become strings). Micro-op names: `append`,
//! `r`/`read`, `w`/`write`.
//!
//! **JSON arrays** of the same op maps ([`parse_op_maps`]), as Jepsen's JSON export writes them:
//! `[{"type":"ok","f":"txn","value":[["append",1,2],["r",1,[1,2]]],"process":0}, …]` – keys and
//! keywords with or without Jepsen's colons, micro-ops as arrays.
//!
//! **Concord JSON Lines** ([`parse_jsonl`]): one event per line,
//! `{"process":0,"type":"ok","value":[["append","x",2],["r","x",[1,2]]],"time":1234}` – the same
//! fields as the EDN map, with micro-ops as JSON arrays `[f, key, value]`, keys as strings or
//! integers, `null` for nil; `"f"` may be present and is ignored.
//!
//! In both, the `value` of an `invoke` holds the writes the transaction will make (its reads are
//! unknown until it completes). The completion of an `ok` transaction holds the values read. A `fail`
//! or `info` transaction keeps its invocation's micro-ops – its reads are unknown, and its writes
//! matter only if somebody observed them.

use crate::formats::edn::Edn;
use crate::formats::ParseError;
use crate::ops::HistoryError;
use concord_core::history::EventType;
use std::collections::BTreeMap;
use std::fmt;

/// Keys are kept as text: EDN histories use integers, keywords or strings interchangeably.
pub type Key = String;

/// Which kind of transactions a history holds – it decides what a read means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    ListAppend,
    RwRegister,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
        })
    }
}

/// One micro-operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// List-append: append `value` to the list at `key`.
    Append { key: Key, value: i64 },
    /// Rw-register: set `key` to `value`.
    Write { key: Key, value: i64 },
    /// List-append read: the whole list; `None` while unknown (an invocation, or an `info`/`fail`
    /// transaction). A key never appended to reads as the empty list.
    ReadList { key: Key, value: Option<Vec<i64>> },
    /// Rw-register read: outer `None` while unknown; `Some(None)` read nil (never written).
    ReadRegister { key: Key, value: Option<Option<i64>> },
}

impl Mop {
    pub fn key(&self) -> &str {
        match self {
            Mop::Append { key, .. }
            | Mop::Write { key, .. }
            | Mop::ReadList { key, .. }
            | Mop::ReadRegister { key, .. } => key,
        }
    }

    /// The same micro-op with its read value forgotten (what an invocation knows).
    pub fn unknown_read(&self) -> Mop {
        match self {
            Mop::ReadList { key, .. } => Mop::ReadList { key: key.clone(), value: None },
            Mop::ReadRegister { key, .. } => Mop::ReadRegister { key: key.clone(), value: None },
            other => other.clone(),
        }
    }
}

/// Shorthands for building histories in code and tests.
pub fn append(key: impl Into<Key>, value: i64) -> Mop {
    Mop::Append { key: key.into(), value }
}
pub fn read_list(key: impl Into<Key>, value: &[i64]) -> Mop {
    Mop::ReadList { key: key.into(), value: Some(value.to_vec()) }
}
pub fn write(key: impl Into<Key>, value: i64) -> Mop {
    Mop::Write { key: key.into(), value }
}
pub fn read_register(key: impl Into<Key>, value: Option<i64>) -> Mop {
    Mop::ReadRegister { key: key.into(), value: Some(value) }
}

/// Writes a list as EDN: `[1 2 3]`.
pub(crate) struct ListDisplay<'a>(pub &'a [i64]);

impl fmt::Display for ListDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

/// Writes a register value: `3` or `nil`.
pub(crate) struct RegDisplay(pub Option<i64>);

impl fmt::Display for RegDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("nil"),
        }
    }
}

impl fmt::Display for Mop {
    /// EDN-like: `[append x 3]`, `[r x [1 2]]`, `[w x 3]`, `[r x nil]`, `[r x ?]` (unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mop::Append { key, value } => write!(f, "[append {key} {value}]"),
            Mop::Write { key, value } => write!(f, "[w {key} {value}]"),
            Mop::ReadList { key, value: Some(list) } => write!(f, "[r {key} {}]", ListDisplay(list)),
            Mop::ReadRegister { key, value: Some(v) } => write!(f, "[r {key} {}]", RegDisplay(*v)),
            Mop::ReadList { key, value: None } | Mop::ReadRegister { key, value: None } => {
                write!(f, "[r {key} ?]")
            }
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnOutcome {
    Ok,
    Fail,
    /// Unknown – also a transaction still open when the history ended.
    Info,
}

/// One transaction: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Its index in [`TxnHistory::txns`] (transactions are ordered by invocation). Printed `T{id}`.
    pub id: usize,
    pub process: u64,
    pub outcome: TxnOutcome,
    pub mops: Vec<Mop>,
    /// Position of the invocation event in the input.
    pub invoke_index: usize,
    /// Position of an `ok` completion; `None` otherwise (for `info`, the return is at infinity).
    pub complete_index: Option<usize>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
}

impl Txn {
    pub fn is_ok(&self) -> bool {
        self.outcome == TxnOutcome::Ok
    }
}

impl fmt::Display for Txn {
    /// `T4 (process 2, ok): [append x 3] [r y [1]]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            TxnOutcome::Ok => "ok",
            TxnOutcome::Fail => "fail",
            TxnOutcome::Info => "info",
        };
        write!(f, "T{} (process {}, {outcome}):", self.id, self.process)?;
        for mop in &self.mops {
            write!(f, " {mop}")?;
        }
        Ok(())
    }
}

/// A history of transactions, ordered by invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnHistory {
    pub workload: Workload,
    pub txns: Vec<Txn>,
}

/// One event of a transactional history, before pairing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnEvent {
    pub process: u64,
    pub kind: EventType,
    pub mops: Vec<Mop>,
    pub time: u64,
}

impl TxnHistory {
    /// Pair invocations with completions. Shape rules as in [`crate::ops::prepare`]: one open
    /// transaction per process, completions follow invocations, an invocation never completed is
    /// `info`. All shape errors are reported, with event positions.
    pub fn from_events(workload: Workload, events: &[TxnEvent]) -> Result<TxnHistory, Vec<HistoryError>> {
        let mut txns: Vec<Txn> = Vec::new();
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        let mut errors = Vec::new();
        for (index, event) in events.iter().enumerate() {
            match event.kind {
                EventType::Invoke => {
                    if let Some(&previous) = open.get(&event.process) {
                        errors.push(HistoryError {
                            event_index: index,
                            message: format!(
                                "process {} invokes a transaction while T{} (event {}) is still open",
                                event.process, previous, txns[previous].invoke_index
                            ),
                        });
                        continue;
                    }
                    open.insert(event.process, txns.len());
                    txns.push(Txn {
                        id: txns.len(),
                        process: event.process,
                        outcome: TxnOutcome::Info,
                        mops: event.mops.iter().map(Mop::unknown_read).collect(),
                        invoke_index: index,
                        complete_index: None,
                        invoke_time: event.time,
                        complete_time: None,
                    });
                }
                kind => {
                    let Some(slot) = open.remove(&event.process) else {
                        errors.push(HistoryError {
                            event_index: index,
                            message: format!(
                                "process {} completes a transaction but has no open invocation",
                                event.process
                            ),
                        });
                        continue;
                    };
                    let txn = &mut txns[slot];
                    txn.complete_time = Some(event.time);
                    match kind {
                        EventType::Ok => {
                            if event.mops.len() != txn.mops.len() {
                                errors.push(HistoryError {
                                    event_index: index,
                                    message: format!(
                                        "T{} completes with {} micro-ops but was invoked with {}",
                                        txn.id,
                                        event.mops.len(),
                                        txn.mops.len()
                                    ),
                                });
                                continue;
                            }
                            txn.outcome = TxnOutcome::Ok;
                            txn.complete_index = Some(index);
                            txn.mops = event.mops.clone();
                        }
                        EventType::Fail => txn.outcome = TxnOutcome::Fail,
                        _ => txn.outcome = TxnOutcome::Info,
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(TxnHistory { workload, txns })
        } else {
            Err(errors)
        }
    }
}

/// Builds histories in code: events are appended in real-time order, with times 0, 1, 2, …
#[derive(Clone, Debug)]
pub struct Builder {
    workload: Workload,
    events: Vec<TxnEvent>,
}

impl Builder {
    pub fn new(workload: Workload) -> Builder {
        Builder { workload, events: Vec::new() }
    }

    /// Invoke a transaction (its reads are forgotten: an invocation does not know them).
    pub fn invoke(&mut self, process: u64, mops: Vec<Mop>) -> &mut Builder {
        self.push(process, EventType::Invoke, mops)
    }

    /// Complete `process`'s open transaction with `kind`; for `ok`, `mops` holds the values read.
    pub fn complete(&mut self, process: u64, kind: EventType, mops: Vec<Mop>) -> &mut Builder {
        self.push(process, kind, mops)
    }

    /// A transaction invoked and committed at once (no concurrency).
    pub fn ok(&mut self, process: u64, mops: Vec<Mop>) -> &mut Builder {
        self.invoke(process, mops.clone());
        self.complete(process, EventType::Ok, mops)
    }

    /// A transaction invoked and failed at once.
    pub fn fail(&mut self, process: u64, mops: Vec<Mop>) -> &mut Builder {
        self.invoke(process, mops.clone());
        self.complete(process, EventType::Fail, mops)
    }

    /// A transaction invoked whose outcome is unknown.
    pub fn info(&mut self, process: u64, mops: Vec<Mop>) -> &mut Builder {
        self.invoke(process, mops.clone());
        self.complete(process, EventType::Info, mops)
    }

    fn push(&mut self, process: u64, kind: EventType, mops: Vec<Mop>) -> &mut Builder {
        let time = self.events.len() as u64;
        self.events.push(TxnEvent { process, kind, mops, time });
        self
    }

    pub fn events(&self) -> &[TxnEvent] {
        &self.events
    }

    /// Pair the events; panics on a malformed history (a bug in the code that built it).
    pub fn build(&self) -> TxnHistory {
        match TxnHistory::from_events(self.workload, &self.events) {
            Ok(history) => history,
            Err(errors) => panic!("malformed history built in code: {errors:?}"),
        }
    }
}

/// Parsed events with the 1-based line of each (for shape errors found later).
#[derive(Clone, Debug, Default)]
pub struct ParsedEvents {
    pub events: Vec<TxnEvent>,
    pub lines: Vec<usize>,
    /// Maps skipped on purpose (nemesis and other non-client processes).
    pub skipped: usize,
}

/// Read Jepsen EDN op maps (see the module docs). Every malformed map is reported with its line.
pub fn parse_edn(text: &str, workload: Workload) -> Result<ParsedEvents, Vec<ParseError>> {
    parse_op_maps(text, crate::formats::Format::Edn, workload)
}

/// Read op maps in EDN or JSON (an array, or lines of Jepsen-style maps whose keys and `type`
/// may carry Jepsen's colons): [`parse_edn`]'s reading, whatever the notation.
pub fn parse_op_maps(
    text: &str,
    format: crate::formats::Format,
    workload: Workload,
) -> Result<ParsedEvents, Vec<ParseError>> {
    let mut parsed = ParsedEvents::default();
    let mut errors = Vec::new();
    crate::formats::op_map_forms(text, format, &mut errors, |form, line| {
        match edn_event(form, workload)? {
            Some(event) => {
                parsed.events.push(event);
                parsed.lines.push(line);
            }
            None => parsed.skipped += 1,
        }
        Ok(())
    });
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn edn_event(form: &Edn, workload: Workload) -> Result<Option<TxnEvent>, String> {
    let Some((process, kind)) =
        crate::formats::op_header(form, "{:type .. :value [[:append k v] ..] :process ..}")?
    else {
        return Ok(None);
    };
    let time = match form.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => *t as u64,
        None => 0,
        Some(other) => return Err(format!(":time {other} is not a non-negative integer")),
    };
    let mops = match form.get("value") {
        Some(Edn::Vector(items)) | Some(Edn::List(items)) => {
            items.iter().map(|m| edn_mop(m, workload, kind)).collect::<Result<Vec<_>, _>>()?
        }
        Some(Edn::Nil) | None => Vec::new(),
        Some(other) => return Err(format!(":value {other} is not a vector of micro-ops")),
    };
    Ok(Some(TxnEvent { process, kind, mops, time }))
}

fn edn_mop(form: &Edn, workload: Workload, kind: EventType) -> Result<Mop, String> {
    let items = match form {
        Edn::Vector(items) | Edn::List(items) if items.len() == 3 => items,
        other => return Err(format!("micro-op {other} is not [f key value]")),
    };
    let f = match &items[0] {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s.as_str(),
        other => return Err(format!("micro-op function {other} is not a keyword")),
    };
    let key = match &items[1] {
        Edn::Int(i) => i.to_string(),
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s.clone(),
        other => return Err(format!("key {other} is not an integer, keyword or string")),
    };
    mop(f, key, MopValue::Edn(&items[2]), workload, kind)
}

/// A micro-op's value in either input format.
enum MopValue<'a> {
    Edn(&'a Edn),
    Json(&'a serde_json::Value),
}

impl MopValue<'_> {
    fn is_nil(&self) -> bool {
        matches!(self, MopValue::Edn(Edn::Nil) | MopValue::Json(serde_json::Value::Null))
    }

    fn int(&self) -> Result<i64, String> {
        match self {
            MopValue::Edn(Edn::Int(i)) => Ok(*i),
            MopValue::Json(v) if v.as_i64().is_some() => Ok(v.as_i64().unwrap_or_default()),
            MopValue::Edn(other) => Err(format!("value {other} is not an integer")),
            MopValue::Json(other) => Err(format!("value {other} is not an integer")),
        }
    }

    fn list(&self) -> Result<Vec<i64>, String> {
        match self {
            MopValue::Edn(Edn::Vector(items)) | MopValue::Edn(Edn::List(items)) => {
                items.iter().map(|i| MopValue::Edn(i).int()).collect()
            }
            MopValue::Json(serde_json::Value::Array(items)) => {
                items.iter().map(|i| MopValue::Json(i).int()).collect()
            }
            MopValue::Edn(other) => Err(format!("read value {other} is not a list")),
            MopValue::Json(other) => Err(format!("read value {other} is not a list")),
        }
    }
}

fn mop(f: &str, key: Key, value: MopValue<'_>, workload: Workload, kind: EventType) -> Result<Mop, String> {
    // Only an ok completion knows what was read.
    let known = kind == EventType::Ok;
    match (f, workload) {
        ("append", Workload::ListAppend) => Ok(Mop::Append { key, value: value.int()? }),
        ("w" | "write", Workload::RwRegister) => Ok(Mop::Write { key, value: value.int()? }),
        ("r" | "read", Workload::ListAppend) => {
            let list = match (known, value.is_nil()) {
                (false, _) => None,
                (true, true) => Some(Vec::new()),
                (true, false) => Some(value.list()?),
            };
            Ok(Mop::ReadList { key, value: list })
        }
        ("r" | "read", Workload::RwRegister) => {
            let read = match (known, value.is_nil()) {
                (false, _) => None,
                (true, true) => Some(None),
                (true, false) => Some(Some(value.int()?)),
            };
            Ok(Mop::ReadRegister { key, value: read })
        }
        (other, workload) => Err(format!("micro-op :{other} does not belong to a {workload} history")),
    }
}

/// Read Concord's JSON Lines transactional form (see the module docs).
pub fn parse_jsonl(text: &str, workload: Workload) -> Result<ParsedEvents, Vec<ParseError>> {
    let mut parsed = ParsedEvents::default();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match jsonl_event(line, workload) {
            Ok(Some(event)) => {
                parsed.events.push(event);
                parsed.lines.push(i + 1);
            }
            Ok(None) => parsed.skipped += 1,
            Err(message) => errors.push(ParseError { line: i + 1, message }),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn jsonl_event(line: &str, workload: Workload) -> Result<Option<TxnEvent>, String> {
    use serde_json::Value as J;
    let json: J = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let J::Object(map) = &json else { return Err("expected a JSON object".into()) };
    let process = match map.get("process") {
        Some(J::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or_default(),
        Some(J::String(_)) => return Ok(None),
        Some(other) => return Err(format!("\"process\": {other} is not a non-negative integer")),
        None => return Err("missing \"process\"".into()),
    };
    let kind = match map.get("type") {
        Some(J::String(s)) => crate::formats::event_type_named(s)?,
        _ => return Err("missing \"type\" (invoke, ok, fail or info)".into()),
    };
    let time = map.get("time").and_then(J::as_u64).unwrap_or(0);
    let mops = match map.get("value") {
        Some(J::Array(items)) => items
            .iter()
            .map(|item| {
                let J::Array(parts) = item else {
                    return Err(format!("micro-op {item} is not [f, key, value]"));
                };
                if parts.len() != 3 {
                    return Err(format!("micro-op {item} is not [f, key, value]"));
                }
                let f = parts[0]
                    .as_str()
                    .ok_or_else(|| format!("micro-op function {} is not a string", parts[0]))?;
                let key = match &parts[1] {
                    J::String(s) => s.clone(),
                    J::Number(n) if n.is_i64() => n.to_string(),
                    other => return Err(format!("key {other} is not a string or integer")),
                };
                mop(f, key, MopValue::Json(&parts[2]), workload, kind)
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(J::Null) | None => Vec::new(),
        Some(other) => return Err(format!("\"value\": {other} is not an array of micro-ops")),
    };
    Ok(Some(TxnEvent { process, kind, mops, time }))
}

/// Whether `text` looks like a transactional history (Elle's histories say `:f :txn`), and if so
/// which workload: list-append if it appends, rw-register otherwise. A cheap textual look, good
/// enough to pick a default that `concord check --model` overrides.
pub fn guess_workload(text: &str) -> Option<Workload> {
    let transactional = [":f :txn", "\"f\":\"txn\"", "\"f\": \"txn\"", "\":f\":\":txn\""]
        .iter()
        .any(|pattern| text.contains(pattern));
    if !transactional {
        None
    } else if text.contains(":append") || text.contains("\"append\"") {
        Some(Workload::ListAppend)
    } else {
        Some(Workload::RwRegister)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jepsen_edn_and_pairs() {
        let text = r#"
{:type :invoke, :f :txn, :value [[:append 1 2] [:r 1 nil]], :process 0, :time 10, :index 0}
{:type :invoke, :f :txn, :value [[:append :x 1]], :process 1, :time 11}
{:type :info, :f :start, :process :nemesis}
{:type :ok, :f :txn, :value [[:append 1 2] [:r 1 [1 2]]], :process 0, :time 20}
{:type :info, :f :txn, :value [[:append :x 1]], :process 1, :time 30}
"#;
        let parsed = parse_edn(text, Workload::ListAppend).unwrap();
        assert_eq!(parsed.skipped, 1);
        let h = TxnHistory::from_events(Workload::ListAppend, &parsed.events).unwrap();
        assert_eq!(h.txns.len(), 2);
        assert_eq!(h.txns[0].mops[1], read_list("1", &[1, 2]));
        assert_eq!(h.txns[0].complete_index, Some(2), "the nemesis map is not an event");
        assert_eq!(h.txns[1].outcome, TxnOutcome::Info);
        assert_eq!(h.txns[1].to_string(), "T1 (process 1, info): [append x 1]");
    }

    #[test]
    fn reads_jsonl_and_registers() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"value\":[[\"w\",\"x\",1],[\"r\",\"y\",null]]}\n\
                    {\"process\":0,\"type\":\"ok\",\"value\":[[\"w\",\"x\",1],[\"r\",\"y\",null]]}\n";
        let parsed = parse_jsonl(text, Workload::RwRegister).unwrap();
        let h = TxnHistory::from_events(Workload::RwRegister, &parsed.events).unwrap();
        assert_eq!(h.txns[0].mops, vec![write("x", 1), read_register("y", None)]);
    }

    #[test]
    fn malformed_input_is_reported_by_line() {
        let text =
            "{:type :ok, :value [[:w 1 2]], :process 0}\n{:type :ok, :value [[:append 1 :a]], :process 0}\n";
        let errors = parse_edn(text, Workload::ListAppend).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 2]);
        let errors = parse_jsonl("{\"process\":0}\nnope\n", Workload::ListAppend).unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}

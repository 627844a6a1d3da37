//! Reading histories: Concord's JSON Lines, Jepsen/Knossos text logs, and EDN op maps.
//!
//! [`parse`] turns text into a [`History`], or into the list of every malformed line – with its
//! 1-based line number – never a panic, whatever the bytes. Events keep the order of the lines, which
//! is the real-time order the checkers rely on (see [`crate::ops`]).
//!
//! # JSON Lines ([`Format::JsonLines`]) – Concord's own
//!
//! One `concord_core::history::Event` per line, as the simulator writes them:
//! `{"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,4],"time":1503000}`.
//! Blank lines are skipped.
//!
//! # Jepsen / Knossos text logs ([`Format::JepsenLog`])
//!
//! Lines such as `INFO  jepsen.util - 3 :invoke :cas [1 4]` (tab-separated): whatever precedes `jepsen.util - `
//! (timestamps, thread names, level) is ignored; then come the process, the type, the function and
//! the value, as EDN. Forms after the value (`:timed-out`) are ignored. Also accepted: the same line
//! without the logger prefix (`3 :invoke :cas [1 4]`).
//!
//! * Lines from other loggers (`INFO  jepsen.core - Running test`) are skipped; so are operations of
//!   non-numeric processes (`:nemesis`).
//! * **Keys.** Plain Jepsen logs have none: every operation is on one register. An operation whose
//!   value is a pair with a *keyword* first – `:write [:x 3]`, `:read [:x nil]`, `:cas [:x [1 4]]` –
//!   is read as key `x` with value `3` / `nil` / `[1 4]` (the shape of Jepsen's `independent`
//!   tuples, restricted to keyword keys so that a CAS pair `[1 4]` is never mistaken for a key).
//! * The logs carry no usable times; an event's `time` is its line number in milliseconds.
//!
//! # EDN op maps ([`Format::Edn`])
//!
//! Maps like `{:process 0, :type :invoke, :f :write, :value 3}`, one or several per line, or all
//! inside one top-level vector (Knossos's `.edn` histories). Recognised keys: `:process`, `:type`,
//! `:f`, `:value`, and optionally `:key` (string, keyword or integer) and `:time` (integer
//! nanoseconds); others (`:index`, `:error`) are ignored. Maps with a non-numeric `:process` are
//! skipped.
//!
//! # Functions and values
//!
//! `:f` names: `read`/`get`, `write`/`put`, `cas`/`compare-and-set`, `delete`/`del`, `append`,
//! `add`/`incr`, `enqueue`, `dequeue` (with or without the colon). EDN values become [`Value`]s:
//! `nil`, integers, strings, keywords (as strings), vectors, lists and sets (as lists). Floats,
//! booleans and maps are rejected with the line number – no checker model uses them.
//!
//! # Detection ([`Format::Auto`])
//!
//! By the first non-blank line: `{"` is JSON Lines, `{:` or `[` is EDN, anything else is a Jepsen
//! log.

pub mod edn;

use concord_core::history::{Event, EventType, History, Op, OpFn, Value};
use concord_core::time::Time;
use edn::{Edn, Reader};
use std::fmt;
use std::str::FromStr;

/// The formats [`parse`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Auto,
    JsonLines,
    JepsenLog,
    Edn,
}

/// A history format name or an EDN form this reader does not understand. The messages are the
/// ones users saw before this was a type; callers match on the variants.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unknown format `{0}`; expected auto, jsonl, jepsen or edn")]
    UnknownFormat(String),
    /// The operation's function is not a keyword, symbol or string (the form, printed).
    #[error("function {0} is not a keyword")]
    FunctionNotKeyword(String),
    #[error("function :{0} is not supported (read, write, cas, delete, append, add, enqueue, dequeue)")]
    UnsupportedFunction(String),
    /// A value of a kind histories do not hold (the form, printed).
    #[error("value {0} is not supported (nil, integers, strings, keywords, lists)")]
    UnsupportedValue(String),
}

impl FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Format, FormatError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "jsonl" | "json" | "jsonlines" | "json-lines" => Ok(Format::JsonLines),
            "jepsen" | "log" | "jepsen-log" | "knossos" => Ok(Format::JepsenLog),
            "edn" => Ok(Format::Edn),
            _ => Err(FormatError::UnknownFormat(s.to_string())),
        }
    }
}

/// A malformed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A parsed history, with the line each event came from (for error messages about the history's
/// shape, which are found later, by event index).
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub history: History,
    /// `lines[i]` is the 1-based line of `history.events[i]`.
    pub lines: Vec<usize>,
    /// Lines skipped on purpose (other loggers, nemesis operations).
    pub skipped_lines: usize,
}

/// Parse `text` in `format`. All malformed lines are reported, in order.
pub fn parse(text: &str, format: Format) -> Result<History, Vec<ParseError>> {
    parse_with_lines(text, format).map(|parsed| parsed.history)
}

/// [`parse`], keeping the line number of every event.
pub fn parse_with_lines(text: &str, format: Format) -> Result<Parsed, Vec<ParseError>> {
    let mut parsed = Parsed::default();
    let mut errors = Vec::new();
    match detect(text, format) {
        Format::JsonLines => json_lines(text, &mut parsed, &mut errors),
        Format::JepsenLog => jepsen_log(text, &mut parsed, &mut errors),
        _ => edn_maps(text, &mut parsed, &mut errors),
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// The format `Auto` stands for, judged by the first non-blank line.
pub fn detect(text: &str, format: Format) -> Format {
    if format != Format::Auto {
        return format;
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if first.starts_with("{\"") || first.starts_with("{ \"") {
        Format::JsonLines
    } else if first.starts_with('{') || first.starts_with('[') || first.starts_with(';') {
        Format::Edn
    } else {
        Format::JepsenLog
    }
}

fn json_lines(text: &str, parsed: &mut Parsed, errors: &mut Vec<ParseError>) {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => {
                parsed.history.events.push(event);
                parsed.lines.push(i + 1);
            }
            Err(e) => errors.push(ParseError { line: i + 1, message: format!("not a history event: {e}") }),
        }
    }
}

fn jepsen_log(text: &str, parsed: &mut Parsed, errors: &mut Vec<ParseError>) {
    const MARKER: &str = "jepsen.util - ";
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let rest = match line.find(MARKER) {
            Some(at) => &line[at + MARKER.len()..],
            None if line.trim().is_empty() => continue,
            None if is_other_logger(line) => {
                parsed.skipped_lines += 1;
                continue;
            }
            None => line,
        };
        match jepsen_line(rest, number) {
            Ok(Some(event)) => {
                parsed.history.events.push(event);
                parsed.lines.push(number);
            }
            Ok(None) => parsed.skipped_lines += 1,
            Err(message) => errors.push(ParseError { line: number, message }),
        }
    }
}

/// `... INFO  jepsen.core - text`: a log line of some logger other than jepsen.util.
fn is_other_logger(line: &str) -> bool {
    let levels = ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR ", "FATAL "];
    levels.iter().any(|level| {
        line.find(level).is_some_and(|at| {
            let after = line[at + level.len()..].trim_start();
            let logger_end = after.find(" - ").unwrap_or(0);
            logger_end > 0 && !after[..logger_end].contains(char::is_whitespace)
        })
    })
}

/// `3 :invoke :cas [1 4]` → an event; `Ok(None)` for a nemesis line.
fn jepsen_line(rest: &str, number: usize) -> Result<Option<Event>, String> {
    let mut reader = Reader::new(rest, number);
    let mut next = |what: &str| -> Result<Edn, String> {
        match reader.read() {
            Ok(Some(form)) => Ok(form),
            Ok(None) => Err(format!("expected `process :type :f value`, missing the {what}")),
            Err(e) => Err(e.message),
        }
    };
    let process = next("process")?;
    let process = match process {
        Edn::Int(p) if p >= 0 => p as u64,
        // `:nemesis` and other named, non-client processes.
        Edn::Keyword(_) => return Ok(None),
        other => return Err(format!("expected `process :type :f value`; `{other}` is not a process number")),
    };
    let kind = event_type(&next("type")?)?;
    let f = op_fn(&next("function")?).map_err(|e| e.to_string())?;
    // The value may be missing (`:invoke :read`): nil.
    let value = match reader.read() {
        Ok(Some(form)) => form,
        Ok(None) => Edn::Nil,
        Err(e) => return Err(e.message),
    };
    let (key, value) = match value {
        Edn::Vector(items) if items.len() == 2 && matches!(items[0], Edn::Keyword(_)) => {
            let mut items = items.into_iter();
            let key = match items.next() {
                Some(Edn::Keyword(k)) => k,
                _ => unreachable_key(),
            };
            (Some(key), to_value(&items.next().unwrap_or(Edn::Nil)).map_err(|e| e.to_string())?)
        }
        other => (None, to_value(&other).map_err(|e| e.to_string())?),
    };
    Ok(Some(Event {
        process,
        kind,
        op: Op { f, key, value },
        time: Time((number as u64).saturating_mul(1_000_000)),
        witness: None,
    }))
}

/// The keyword arm above only runs when the first item is a keyword.
fn unreachable_key() -> String {
    String::new()
}

fn edn_maps(text: &str, parsed: &mut Parsed, errors: &mut Vec<ParseError>) {
    edn_forms(text, errors, |form, line| match edn_event(form, line) {
        Ok(Some(event)) => {
            parsed.history.events.push(event);
            parsed.lines.push(line);
            Ok(())
        }
        Ok(None) => {
            parsed.skipped_lines += 1;
            Ok(())
        }
        Err(message) => Err(message),
    });
}

/// Every top-level EDN form of `text`, with its line, given to `visit`; what `visit` refuses and
/// every malformed form are reported in `errors` with their line (reading resumes at the next
/// line), up to 1 000 errors. Inside a top-level vector `[ {...} {...} ]` (Knossos's files), its
/// items are read one by one, so that one bad map does not hide the others. Shared by the history
/// readers and the transactional checker's (`crate::elle`).
pub(crate) fn edn_forms(
    text: &str,
    errors: &mut Vec<ParseError>,
    mut visit: impl FnMut(&Edn, usize) -> Result<(), String>,
) {
    let mut reader = Reader::new(text, 1);
    let mut in_vector = false;
    loop {
        match reader.at_form() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                errors.push(ParseError { line: e.line, message: e.message });
                reader.skip_line();
                continue;
            }
        }
        if !in_vector && reader.peek_is('[') {
            reader.bump();
            in_vector = true;
            continue;
        }
        if in_vector && reader.peek_is(']') {
            reader.bump();
            in_vector = false;
            continue;
        }
        let line = reader.line();
        match reader.read() {
            Ok(Some(form)) => {
                if let Err(message) = visit(&form, line) {
                    errors.push(ParseError { line, message });
                }
            }
            Ok(None) => break,
            Err(e) => {
                errors.push(ParseError { line: e.line, message: e.message });
                // Resynchronise at the next line.
                if reader.line() == e.line {
                    reader.skip_line();
                }
            }
        }
        if errors.len() > 1_000 {
            errors.push(ParseError { line: reader.line(), message: "too many errors; stopped".into() });
            return;
        }
    }
}

fn edn_event(form: &Edn, line: usize) -> Result<Option<Event>, String> {
    if !matches!(form, Edn::Map(_)) {
        return Err(format!("expected an op map {{:process .. :type .. :f .. :value ..}}, got {form}"));
    }
    let process = match form.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => *p as u64,
        Some(Edn::Keyword(_)) => return Ok(None),
        Some(other) => return Err(format!(":process {other} is not a non-negative integer")),
        None => return Err("missing :process".to_string()),
    };
    let kind = event_type(form.get("type").ok_or("missing :type")?)?;
    let f = op_fn(form.get("f").ok_or("missing :f")?).map_err(|e| e.to_string())?;
    let value = to_value(form.get("value").unwrap_or(&Edn::Nil)).map_err(|e| e.to_string())?;
    let key = match form.get("key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) | Some(Edn::Keyword(s)) | Some(Edn::Symbol(s)) => Some(s.clone()),
        Some(Edn::Int(i)) => Some(i.to_string()),
        Some(other) => return Err(format!(":key {other} is not a string, keyword or integer")),
    };
    let time = match form.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => Time(*t as u64),
        Some(other @ Edn::Int(_)) => return Err(format!(":time {other} is negative")),
        _ => Time((line as u64).saturating_mul(1_000_000)),
    };
    Ok(Some(Event { process, kind, op: Op { f, key, value }, time, witness: None }))
}

fn event_type(form: &Edn) -> Result<EventType, String> {
    let name = match form {
        Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k) => k.as_str(),
        other => return Err(format!("type {other} is not one of :invoke :ok :fail :info")),
    };
    match name {
        "invoke" => Ok(EventType::Invoke),
        "ok" => Ok(EventType::Ok),
        "fail" => Ok(EventType::Fail),
        "info" => Ok(EventType::Info),
        other => Err(format!("type :{other} is not one of :invoke :ok :fail :info")),
    }
}

/// Map a Jepsen function name to an [`OpFn`].
pub fn op_fn(form: &Edn) -> Result<OpFn, FormatError> {
    let name = match form {
        Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k) => k.as_str(),
        other => return Err(FormatError::FunctionNotKeyword(other.to_string())),
    };
    match name {
        "read" | "get" | "r" => Ok(OpFn::Read),
        "write" | "put" | "set" | "w" => Ok(OpFn::Write),
        "cas" | "compare-and-set" => Ok(OpFn::Cas),
        "delete" | "del" => Ok(OpFn::Delete),
        "append" => Ok(OpFn::Append),
        "add" | "incr" | "increment" => Ok(OpFn::Add),
        "enqueue" => Ok(OpFn::Enqueue),
        "dequeue" => Ok(OpFn::Dequeue),
        other => Err(FormatError::UnsupportedFunction(other.to_string())),
    }
}

/// Convert an EDN form to a history [`Value`].
pub fn to_value(form: &Edn) -> Result<Value, FormatError> {
    Ok(match form {
        Edn::Nil => Value::Nil,
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::Str(s.clone()),
        Edn::Char(c) => Value::Str(c.to_string()),
        Edn::Vector(items) | Edn::List(items) => {
            Value::List(items.iter().map(to_value).collect::<Result<_, _>>()?)
        }
        Edn::Set(items) => {
            let mut values: Vec<Value> = items.iter().map(to_value).collect::<Result<_, _>>()?;
            values.sort();
            Value::List(values)
        }
        Edn::Tagged(_, inner) => to_value(inner)?,
        Edn::Bool(_) | Edn::Float(_) | Edn::Map(_) => {
            return Err(FormatError::UnsupportedValue(form.to_string()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_errors_are_variants_with_the_messages_users_know() {
        let error = "xml".parse::<Format>().unwrap_err();
        assert_eq!(error, FormatError::UnknownFormat("xml".into()));
        assert_eq!(error.to_string(), "unknown format `xml`; expected auto, jsonl, jepsen or edn");
        assert_eq!(op_fn(&Edn::Keyword("frob".into())), Err(FormatError::UnsupportedFunction("frob".into())));
        assert!(matches!(op_fn(&Edn::Int(1)), Err(FormatError::FunctionNotKeyword(_))));
        assert!(matches!(to_value(&Edn::Bool(true)), Err(FormatError::UnsupportedValue(_))));
        let model = "graph".parse::<crate::Model>().unwrap_err();
        assert_eq!(model, crate::UnknownModel("graph".into()));
        assert!(model.to_string().starts_with("unknown model `graph`"));
    }

    #[test]
    fn reads_knossos_logs() {
        let text = "\
2013-10-27 INFO  jepsen.core - Starting
INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:read\t4
INFO  jepsen.util - 3\t:info\t:cas\t[1 4]\t:timed-out
INFO  jepsen.util - :nemesis\t:info\t:start\tnil
";
        let parsed = parse_with_lines(text, Format::Auto).unwrap();
        let h = &parsed.history;
        assert_eq!(h.len(), 4);
        assert_eq!(parsed.skipped_lines, 2);
        assert_eq!(parsed.lines, vec![2, 3, 4, 5]);
        assert_eq!(h.events[0].op.value, Value::pair(Value::Int(1), Value::Int(4)));
        assert_eq!(h.events[2].op.value, Value::Int(4));
        assert_eq!(h.events[3].kind, EventType::Info);
        assert_eq!(h.events[0].op.key, None);
    }

    #[test]
    fn jepsen_keyword_tuples_are_keys() {
        let h =
            parse("0 :invoke :write [:x 3]\n0 :ok :write [:x 3]\n1 :invoke :cas [:y [1 2]]\n", Format::Auto)
                .unwrap();
        assert_eq!(h.events[0].op.key.as_deref(), Some("x"));
        assert_eq!(h.events[0].op.value, Value::Int(3));
        assert_eq!(h.events[2].op.value, Value::pair(Value::Int(1), Value::Int(2)));
    }

    #[test]
    fn reads_edn_maps_in_a_vector_or_per_line() {
        let vector = "[{:process 0, :type :invoke, :f :write, :value 3}\n {:process 0, :type :ok, :f :write, :value 3}\n {:process :nemesis, :type :info, :f :start}]";
        let h = parse(vector, Format::Auto).unwrap();
        assert_eq!(h.len(), 2);
        let keyed = "{:process 1, :type :invoke, :f :read, :key \"k\", :value nil, :time 5}\n{:process 1, :type :ok, :f :read, :key \"k\", :value 3}";
        let h = parse(keyed, Format::Edn).unwrap();
        assert_eq!(h.events[1].op.key.as_deref(), Some("k"));
        assert_eq!(h.events[0].time, Time(5));
    }

    #[test]
    fn malformed_lines_are_reported_with_numbers() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":0}\n{\"process\":1,\"type\":\"ok\"}\n\nnot json\n";
        let errors = parse(text, Format::Auto).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4]);

        let log = "0 :invoke :write 1\n0 :okay :write 1\n0 :ok :frobnicate 1\n0 :ok :write {:a 1}\n0 :ok\n";
        let errors = parse(log, Format::JepsenLog).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3, 4, 5]);

        let edn = "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0 :type :ok\n{:process 0, :type :ok, :f :write, :value 1.5}\n";
        let errors = parse(edn, Format::Edn).unwrap_err();
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e.line >= 2), "{errors:?}");
    }

    #[test]
    fn round_trips_concord_histories() {
        let mut h = History::default();
        h.push(3, EventType::Invoke, Op::cas("k7", 1, 4), Time(1_503_000));
        h.push(3, EventType::Ok, Op::cas("k7", 1, 4), Time(1_781_000));
        assert_eq!(parse(&h.to_jsonl(), Format::Auto).unwrap(), h);
    }
}

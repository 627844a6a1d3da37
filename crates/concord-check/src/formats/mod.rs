//! Reading histories: Concord's JSON Lines, Jepsen/Knossos text logs, EDN op maps, JSON arrays of
//! op maps and Porcupine's operations – and writing them as EDN.
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
//! inside one top-level vector (Knossos's `.edn` histories, Jepsen's `history.edn`) or list (a
//! Clojure `prn` of a history). `;` comments and `#_` discards may appear anywhere. Recognised
//! keys: `:process`, `:type`, `:f`, `:value`, and optionally `:key` (string, keyword or integer)
//! and `:time` (integer nanoseconds); others (`:index`, `:error`) are ignored. Maps with a
//! non-numeric `:process` are skipped. Without `:key`, a value that is a pair with a keyword first
//! (`[:x 3]`) is Jepsen's `independent` tuple: key `x`, value `3` (as in the logs). Errors give the
//! line and the column.
//!
//! # JSON arrays ([`Format::JsonArray`])
//!
//! One JSON array of op maps, as Jepsen's JSON export and many hand-written tools produce:
//! `[{"process":0,"type":"invoke","f":"write","value":3,"index":0,"time":12}, …]`. The keys are
//! the EDN map's, with or without the leading colon (`"process"` or `":process"`), and so are the
//! values of `type` and `f` (`"invoke"` or `":invoke"`); `null` is nil. Each item is reported by the
//! line it starts on, and a JSON syntax error by line and column. An array of Porcupine operations
//! (objects with `input` and `call`) is read by [`porcupine`] instead.
//!
//! # Writing EDN
//!
//! [`edn::write_history`] writes any history back as Jepsen EDN (`concord check --convert edn`), so
//! that Concord's histories can be given to Knossos or to Jepsen's checkers.
//!
//! # Functions and values
//!
//! `:f` names: `read`/`get`, `write`/`put`, `cas`/`compare-and-set`, `delete`/`del`, `append`,
//! `add`/`incr`, `enqueue`, `dequeue` (with or without the colon); Jepsen's mutex `acquire` and
//! `release` are read as the compare-and-sets of a lock they are (see [`crate::model::MutexModel`]). EDN values become [`Value`]s:
//! `nil`, integers, strings, keywords (as strings), vectors, lists and sets (as lists). Floats,
//! booleans and maps are rejected with the line number – no checker model uses them.
//!
//! # Detection ([`Format::Auto`])
//!
//! By the first non-blank line: `{"` is JSON Lines, `[` followed by `{"` is a JSON array, `{:`, `[`,
//! `(` or `;` is EDN, anything else is a Jepsen log.

pub mod edn;
pub mod porcupine;

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
    /// One JSON array of op maps (Jepsen's JSON) or of Porcupine operations.
    JsonArray,
    JepsenLog,
    Edn,
}

/// A history format name or an EDN form this reader does not understand. The messages are the
/// ones users saw before this was a type; callers match on the variants.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unknown format `{0}`; expected auto, jsonl, json, jepsen or edn")]
    UnknownFormat(String),
    /// The operation's function is not a keyword, symbol or string (the form, printed).
    #[error("function {0} is not a keyword")]
    FunctionNotKeyword(String),
    #[error(
        "function :{0} is not supported (read, write, cas, delete, append, add, enqueue, dequeue, acquire, release)"
    )]
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
            "jsonl" | "jsonlines" | "json-lines" => Ok(Format::JsonLines),
            "json" | "json-array" | "porcupine" => Ok(Format::JsonArray),
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
    /// The history was Porcupine's operations (so its model is Porcupine's KV, see [`porcupine`]).
    pub porcupine: bool,
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
        // A JSON array given as `--format jsonl` is still read: the two are easy to tell apart.
        Format::JsonLines if !starts_json_array(text) => json_lines(text, &mut parsed, &mut errors),
        Format::JsonLines | Format::JsonArray => json_array(text, &mut parsed, &mut errors),
        Format::JepsenLog => jepsen_log(text, &mut parsed, &mut errors),
        Format::Edn | Format::Auto => edn_maps(text, &mut parsed, &mut errors),
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
    } else if starts_json_array(text) {
        Format::JsonArray
    } else if first.starts_with(['{', '[', '(', ';']) {
        Format::Edn
    } else {
        Format::JepsenLog
    }
}

/// `[` then `{"` (blanks allowed between): a JSON array of objects, not an EDN vector of maps
/// (whose keys are keywords, `{:process`). An empty `[]` counts as JSON too.
fn starts_json_array(text: &str) -> bool {
    let mut rest = text.trim_start();
    let Some(after) = rest.strip_prefix('[') else { return false };
    rest = after.trim_start();
    if rest.starts_with(']') {
        return true;
    }
    rest.strip_prefix('{').is_some_and(|r| r.trim_start().starts_with('"'))
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
            Err(e) => Err(e.to_string()),
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
    let f_form = next("function")?;
    if let Some((f, value)) = mutex_op(&f_form) {
        return Ok(Some(Event {
            process,
            kind,
            op: Op { f, key: None, value },
            time: Time((number as u64).saturating_mul(1_000_000)),
            witness: None,
        }));
    }
    let f = op_fn(&f_form).map_err(|e| e.to_string())?;
    // The value may be missing (`:invoke :read`): nil.
    let value = match reader.read() {
        Ok(Some(form)) => form,
        Ok(None) => Edn::Nil,
        Err(e) => return Err(e.to_string()),
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
/// every malformed form are reported in `errors` with their line and column (reading resumes at
/// the next line), up to 1 000 errors. Inside one top-level vector `[ {...} {...} ]` (Knossos's
/// files) or list `( {...} {...} )` (a Clojure `prn` of a history), its items are read one by one,
/// so that one bad map does not hide the others. Shared by the history readers and the
/// transactional checker's (`crate::elle`).
pub(crate) fn edn_forms(
    text: &str,
    errors: &mut Vec<ParseError>,
    mut visit: impl FnMut(&Edn, usize) -> Result<(), String>,
) {
    let mut reader = Reader::new(text, 1);
    // The closing bracket of the top-level collection we are inside, if any.
    let mut inside: Option<char> = None;
    loop {
        match reader.at_form() {
            Ok(true) => {}
            Ok(false) => {
                if let (Some(close), true) = (inside, errors.is_empty()) {
                    errors.push(ParseError {
                        line: reader.line(),
                        message: format!("the history's top-level `{close}` is missing at the end"),
                    });
                }
                break;
            }
            Err(e) => {
                errors.push(ParseError { line: e.line, message: e.to_string() });
                reader.skip_line();
                continue;
            }
        }
        if inside.is_none() {
            let close = if reader.peek_is('[') {
                Some(']')
            } else if reader.peek_is('(') {
                Some(')')
            } else {
                None
            };
            if close.is_some() {
                reader.bump();
                inside = close;
                continue;
            }
        } else if inside.is_some_and(|close| reader.peek_is(close)) {
            reader.bump();
            inside = None;
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
                errors.push(ParseError { line: e.line, message: e.to_string() });
                // Resynchronise at the next line.
                if reader.line() == e.line {
                    reader.skip_line();
                }
            }
        }
        if errors.len() > ERRORS_MAX {
            errors.push(ParseError { line: reader.line(), message: "too many errors; stopped".into() });
            return;
        }
    }
}

/// Errors collected before a reader gives up.
const ERRORS_MAX: usize = 1_000;

/// The items of one top-level JSON array, each with the line it starts on. Malformed items are
/// reported with their line and column; reading stops at the first one (JSON has no lines to
/// resynchronise on).
fn json_array_items(text: &str, errors: &mut Vec<ParseError>) -> Vec<(serde_json::Value, usize)> {
    let mut items = Vec::new();
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let column_of = |pos: usize| text[..pos].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let skip_blank = |mut pos: usize| {
        while text[pos..].starts_with(|c: char| c.is_whitespace()) {
            pos += text[pos..].chars().next().map_or(1, char::len_utf8);
        }
        pos
    };
    let mut pos = skip_blank(0);
    if !text[pos..].starts_with('[') {
        errors.push(ParseError { line: line_of(pos), message: "expected a JSON array `[`".into() });
        return items;
    }
    pos = skip_blank(pos + 1);
    if text[pos..].starts_with(']') {
        return items;
    }
    loop {
        let mut stream = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(item)) => {
                let start = skip_blank(pos);
                items.push((item, line_of(start)));
                pos += stream.byte_offset();
            }
            Some(Err(e)) => {
                // serde_json counts lines and columns from the start of the slice.
                let line = line_of(pos) + e.line().saturating_sub(1);
                let column =
                    if e.line() <= 1 { column_of(pos) + e.column().saturating_sub(1) } else { e.column() };
                errors.push(ParseError { line, message: format!("column {column}: not JSON: {e}") });
                return items;
            }
            None => {
                errors.push(ParseError {
                    line: line_of(pos),
                    message: "the JSON array's `]` is missing".into(),
                });
                return items;
            }
        }
        pos = skip_blank(pos);
        if text[pos..].starts_with(',') {
            pos = skip_blank(pos + 1);
        } else if text[pos..].starts_with(']') {
            let end = skip_blank(pos + 1);
            if end < text.len() {
                errors.push(ParseError {
                    line: line_of(end),
                    message: format!("column {}: text after the JSON array's closing `]`", column_of(end)),
                });
            }
            return items;
        } else {
            errors.push(ParseError {
                line: line_of(pos),
                message: format!("column {}: expected `,` or `]` between the array's items", column_of(pos)),
            });
            return items;
        }
    }
}

/// A JSON value as the EDN form Jepsen would have written: objects become maps with keyword keys
/// (a leading `:` in a key is dropped, `":process"` and `"process"` alike), and the values of
/// `type`, `f` and `process` when they are strings become keywords (`"invoke"`, `":invoke"`), so
/// that the EDN readers handle both.
pub(crate) fn json_to_edn(json: &serde_json::Value) -> Edn {
    use serde_json::Value as J;
    match json {
        J::Null => Edn::Nil,
        J::Bool(b) => Edn::Bool(*b),
        J::Number(n) => n.as_i64().map_or_else(|| Edn::Float(n.as_f64().unwrap_or(f64::NAN)), Edn::Int),
        J::String(s) => Edn::Str(s.clone()),
        J::Array(items) => Edn::Vector(items.iter().map(json_to_edn).collect()),
        J::Object(entries) => Edn::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let k = k.strip_prefix(':').unwrap_or(k);
                    let v = match v {
                        J::String(s) if matches!(k, "type" | "f" | "process") => {
                            Edn::Keyword(s.strip_prefix(':').unwrap_or(s).to_string())
                        }
                        v => json_to_edn(v),
                    };
                    (Edn::Keyword(k.to_string()), v)
                })
                .collect(),
        ),
    }
}

/// Every op map of an EDN or JSON history (an array, or JSON Lines), as EDN with its line: what
/// the checkers that read Jepsen's op maps directly (`crate::jepsen`, `crate::elle`) walk over.
pub(crate) fn op_map_forms(
    text: &str,
    format: Format,
    errors: &mut Vec<ParseError>,
    mut visit: impl FnMut(&Edn, usize) -> Result<(), String>,
) {
    match detect(text, format) {
        Format::JsonArray => visit_json_items(json_array_items(text, errors), errors, visit),
        Format::JsonLines if starts_json_array(text) => {
            visit_json_items(json_array_items(text, errors), errors, visit)
        }
        Format::JsonLines => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let result = serde_json::from_str::<serde_json::Value>(line)
                    .map_err(|e| format!("column {}: not JSON: {e}", e.column()))
                    .and_then(|json| visit(&json_to_edn(&json), i + 1));
                if let Err(message) = result {
                    errors.push(ParseError { line: i + 1, message });
                }
            }
        }
        Format::JepsenLog => errors.push(ParseError {
            line: 1,
            message: "this checker reads EDN or JSON op maps, not Jepsen text logs".into(),
        }),
        Format::Edn | Format::Auto => edn_forms(text, errors, visit),
    }
}

fn visit_json_items(
    items: Vec<(serde_json::Value, usize)>,
    errors: &mut Vec<ParseError>,
    mut visit: impl FnMut(&Edn, usize) -> Result<(), String>,
) {
    for (item, line) in items {
        if let Err(message) = visit(&json_to_edn(&item), line) {
            errors.push(ParseError { line, message });
        }
    }
}

/// A JSON array history: Jepsen-style op maps, or Porcupine operations (see [`porcupine`]).
fn json_array(text: &str, parsed: &mut Parsed, errors: &mut Vec<ParseError>) {
    let items = json_array_items(text, errors);
    if items.first().is_some_and(|(item, _)| porcupine::is_operation(item)) {
        porcupine::events(&items, parsed, errors);
        parsed.porcupine = true;
        return;
    }
    for (item, line) in &items {
        match edn_event(&json_to_edn(item), *line) {
            Ok(Some(event)) => {
                parsed.history.events.push(event);
                parsed.lines.push(*line);
            }
            Ok(None) => parsed.skipped_lines += 1,
            Err(message) => errors.push(ParseError { line: *line, message }),
        }
    }
}

/// The two fields every Jepsen op map has: its client process and its type. `None` for an op of a
/// non-client process (`:nemesis`), which checkers skip. `shape` describes the expected map, for
/// the error when `form` is not a map.
pub(crate) fn op_header(form: &Edn, shape: &str) -> Result<Option<(u64, EventType)>, String> {
    if !matches!(form, Edn::Map(_)) {
        return Err(format!("expected an op map {shape}, got {form}"));
    }
    let process = match form.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => *p as u64,
        Some(Edn::Keyword(_)) => return Ok(None),
        Some(other) => return Err(format!(":process {other} is not a non-negative integer")),
        None => return Err("missing :process".to_string()),
    };
    Ok(Some((process, event_type(form.get("type").ok_or("missing :type")?)?)))
}

fn edn_event(form: &Edn, line: usize) -> Result<Option<Event>, String> {
    let Some((process, kind)) = op_header(form, "{:process .. :type .. :f .. :value ..}")? else {
        return Ok(None);
    };
    let f_form = form.get("f").ok_or("missing :f")?;
    let raw_value = form.get("value").unwrap_or(&Edn::Nil);
    // Jepsen's `independent` tuple `[:k v]`, when there is no `:key` (as in the Jepsen logs).
    let tuple = match (form.get("key"), raw_value) {
        (None, Edn::Vector(items)) if items.len() == 2 => match &items[0] {
            Edn::Keyword(k) => Some((k.clone(), &items[1])),
            _ => None,
        },
        _ => None,
    };
    let (f, value) = match mutex_op(f_form) {
        Some(op) => op,
        None => (
            op_fn(f_form).map_err(|e| e.to_string())?,
            to_value(tuple.as_ref().map_or(raw_value, |(_, v)| *v)).map_err(|e| e.to_string())?,
        ),
    };
    let key = match form.get("key") {
        None => tuple.map(|(k, _)| k),
        Some(Edn::Nil) => None,
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

/// Jepsen's mutex operations, `:acquire` and `:release` (their value is ignored), as the
/// compare-and-sets of a lock register that they are: acquire is `cas [nil "locked"]`, release
/// `cas ["locked" nil]`. The `mutex` model ([`crate::model::MutexModel`]) reads them back; any
/// register model judges them the same way.
fn mutex_op(form: &Edn) -> Option<(OpFn, Value)> {
    let locked = || Value::Str(crate::model::LOCKED.to_string());
    match form {
        Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k) => match k.strip_prefix(':').unwrap_or(k) {
            "acquire" => Some((OpFn::Cas, Value::pair(Value::Nil, locked()))),
            "release" => Some((OpFn::Cas, Value::pair(locked(), Value::Nil))),
            _ => None,
        },
        _ => None,
    }
}

fn event_type(form: &Edn) -> Result<EventType, String> {
    let name = match form {
        Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k) => k.strip_prefix(':').unwrap_or(k),
        other => return Err(format!("type {other} is not one of :invoke :ok :fail :info")),
    };
    event_type_named(name)
}

/// An op's type from its name (`invoke`, `ok`, `fail`, `info`).
pub(crate) fn event_type_named(name: &str) -> Result<EventType, String> {
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
        Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k) => k.strip_prefix(':').unwrap_or(k),
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
        assert_eq!(error.to_string(), "unknown format `xml`; expected auto, jsonl, json, jepsen or edn");
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

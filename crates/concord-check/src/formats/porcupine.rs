//! Porcupine's operations, exported as JSON – the histories students of the classic course KV
//! service (MIT 6.824 / 6.5840's kvraft lab) already log for Porcupine.
//!
//! Porcupine (Anish Athalye's linearizability checker, in Go) takes a history as a slice of
//! `porcupine.Operation`, one per client request, with both ends in it:
//!
//! ```text
//! type Operation struct {
//!     ClientId int          // optional, for visualisation
//!     Input    interface{}  // the lab's KvInput{Op uint8, Key string, Value string}
//!     Call     int64        // invocation timestamp
//!     Output   interface{}  // the lab's KvOutput{Value string}
//!     Return   int64        // response timestamp
//! }
//! ```
//!
//! `json.Marshal` of such a slice is what this reader takes: a JSON array of objects with the
//! fields `ClientId`, `Input` (`Op`, `Key`, `Value`), `Call`, `Output` (`Value`), `Return`. Field
//! names are matched ignoring case and underscores, so the snake_case spelling students often write
//! by hand (`client_id`, `input`, `op`, …) works too. `Op` is the lab's code – `0` get, `1` put,
//! `2` append – or the name itself; `Output` may also be the bare string.
//!
//! Each operation becomes an `invoke` event at `Call` and an `ok` event at `Return` (Porcupine's
//! operations all completed), with the client as the process. Events are ordered by time; at equal
//! times a call comes before a return, so two operations that share a timestamp count as concurrent –
//! Porcupine's own rule, the lenient one. A client with two operations open at once is reported
//! (Concord's checkers need one open operation per process; the lab's clerks are sequential).
//!
//! Check the result with `--model porcupine-kv` ([`crate::model::StringKvModel`]): the lab's
//! semantics, where values are strings, `append` concatenates, and a missing key reads `""`.

use super::{ParseError, Parsed};
use concord_core::history::{Event, EventType, Op, OpFn, Value};
use concord_core::time::Time;
use serde_json::Value as J;

/// Whether a JSON item looks like a Porcupine operation (it has an input and a call time).
pub fn is_operation(item: &J) -> bool {
    field(item, "input").is_some() && field(item, "call").is_some()
}

/// `object[name]`, the name compared ignoring case and underscores.
fn field<'a>(item: &'a J, name: &str) -> Option<&'a J> {
    let J::Object(entries) = item else { return None };
    entries
        .iter()
        .find(|(k, _)| k.chars().filter(|&c| c != '_').flat_map(char::to_lowercase).eq(name.chars()))
        .map(|(_, v)| v)
}

/// One operation read from the array, before its two events are ordered.
struct Operation {
    line: usize,
    client: u64,
    f: OpFn,
    key: String,
    value: Value,
    output: Value,
    call: u64,
    ret: u64,
}

/// Turn the items of a Porcupine JSON array into events, appended to `parsed`.
pub fn events(items: &[(J, usize)], parsed: &mut Parsed, errors: &mut Vec<ParseError>) {
    let mut ops = Vec::with_capacity(items.len());
    for (item, line) in items {
        match operation(item, *line) {
            Ok(op) => ops.push(op),
            Err(message) => errors.push(ParseError { line: *line, message }),
        }
    }
    // (time, call before return, operation index): a total order, so the output is deterministic.
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i));
        order.push((op.ret, 1, i));
    }
    order.sort_unstable();
    for (time, end, i) in order {
        let op = &ops[i];
        let (kind, value) = match end {
            0 => (EventType::Invoke, op.value.clone()),
            _ if op.f == OpFn::Read => (EventType::Ok, op.output.clone()),
            _ => (EventType::Ok, op.value.clone()),
        };
        parsed.history.events.push(Event {
            process: op.client,
            kind,
            op: Op { f: op.f, key: Some(op.key.clone()), value },
            time: Time(time),
            witness: None,
        });
        parsed.lines.push(op.line);
    }
}

fn operation(item: &J, line: usize) -> Result<Operation, String> {
    let time = |name: &str| -> Result<u64, String> {
        match field(item, name) {
            Some(t) => t.as_u64().ok_or_else(|| format!("`{name}` {t} is not a non-negative integer time")),
            None => Err(format!("missing `{name}`")),
        }
    };
    let (call, ret) = (time("call")?, time("return")?);
    if ret < call {
        return Err(format!("returns at {ret}, before its call at {call}"));
    }
    let client = match field(item, "clientid") {
        None | Some(J::Null) => 0,
        Some(c) => c.as_u64().ok_or_else(|| format!("`client_id` {c} is not a non-negative integer"))?,
    };
    let input = field(item, "input").ok_or("missing `input`")?;
    let f = match field(input, "op") {
        Some(J::Number(n)) => match n.as_u64() {
            Some(0) => OpFn::Read,
            Some(1) => OpFn::Write,
            Some(2) => OpFn::Append,
            _ => return Err(format!("input op {n} is not 0 (get), 1 (put) or 2 (append)")),
        },
        Some(J::String(name)) => match name.to_ascii_lowercase().as_str() {
            "get" => OpFn::Read,
            "put" => OpFn::Write,
            "append" => OpFn::Append,
            other => return Err(format!("input op `{other}` is not get, put or append")),
        },
        Some(other) => return Err(format!("input op {other} is not a number or a name")),
        None => return Err("missing `input.op`".into()),
    };
    let key = match field(input, "key") {
        Some(J::String(k)) => k.clone(),
        Some(J::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("input key {other} is not a string")),
        None => return Err("missing `input.key`".into()),
    };
    let string = |v: Option<&J>, what: &str| -> Result<String, String> {
        match v {
            None | Some(J::Null) => Ok(String::new()),
            Some(J::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{what} {other} is not a string")),
        }
    };
    let value = match f {
        OpFn::Read => Value::Nil,
        _ => Value::Str(string(field(input, "value"), "input value")?),
    };
    let output = match field(item, "output") {
        Some(J::String(s)) => Value::Str(s.clone()),
        Some(out @ J::Object(_)) => Value::Str(string(field(out, "value"), "output value")?),
        None | Some(J::Null) if f != OpFn::Read => Value::Nil,
        None | Some(J::Null) => return Err("a get needs an `output` (the value it returned)".into()),
        Some(other) => return Err(format!("output {other} is not an object or a string")),
    };
    Ok(Operation { line, client, f, key, value, output, call, ret })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_with_lines, Format};
    use super::*;

    #[test]
    fn reads_go_and_snake_case_exports() {
        let go = r#"[
  {"ClientId":0,"Input":{"Op":1,"Key":"x","Value":"a"},"Call":10,"Output":{"Value":""},"Return":20},
  {"ClientId":1,"Input":{"Op":0,"Key":"x","Value":""},"Call":15,"Output":{"Value":"a"},"Return":30}
]"#;
        let parsed = parse_with_lines(go, Format::Auto).unwrap();
        let kinds: Vec<(u64, EventType)> =
            parsed.history.events.iter().map(|e| (e.process, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![(0, EventType::Invoke), (1, EventType::Invoke), (0, EventType::Ok), (1, EventType::Ok)]
        );
        assert_eq!(parsed.history.events[3].op.value, Value::Str("a".into()));
        assert_eq!(parsed.history.events[0].op.f, OpFn::Write);
        assert_eq!(parsed.lines, vec![2, 3, 2, 3]);

        let snake = r#"[{"client_id":2,"input":{"op":"append","key":"k","value":"z"},"call":1,"output":null,"return":1}]"#;
        let h = parse_with_lines(snake, Format::JsonArray).unwrap().history;
        assert_eq!(h.events[0].op.f, OpFn::Append);
        assert_eq!(h.events[0].kind, EventType::Invoke, "a call sorts before a return at the same time");
    }

    #[test]
    fn bad_operations_are_reported_by_line() {
        let text = "[{\"input\":{\"op\":7,\"key\":\"x\"},\"call\":1,\"return\":2},\n {\"input\":{\"op\":0,\"key\":\"x\"},\"call\":5,\"return\":2,\"output\":\"\"}]";
        let errors = parse_with_lines(text, Format::Auto).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].line == 1 && errors[0].message.contains("not 0 (get)"), "{errors:?}");
        assert!(errors[1].line == 2 && errors[1].message.contains("before its call"), "{errors:?}");
    }
}

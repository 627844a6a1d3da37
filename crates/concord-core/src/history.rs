//! Histories: what clients asked and what they were told, in the shape Jepsen made standard.
//!
//! Every client operation is recorded twice: an `invoke` when the client sends it, and a completion
//! when it learns the outcome – `ok` (it happened, with the value read), `fail` (it certainly did not
//! happen) or `info` (the client does not know: a timeout, a lost connection). A process (a logical
//! client thread) has at most one operation open at a time; after an `info` it never invokes again
//! (a driver gives the client a fresh process number instead, exactly as Jepsen does).
//!
//! Checkers (`concord-check`) read these histories; the simulator and the real-cluster tests write
//! them as JSON Lines, one [`Event`] per line:
//!
//! ```json
//! {"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,4],"time":1503000}
//! {"process":3,"type":"ok","f":"cas","key":"k7","value":[1,4],"time":1781000}
//! ```

use crate::id::{ClientId, NodeId};
use crate::process::Process;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an operation does. The value conventions follow Jepsen's:
///
/// | f       | invoke value          | ok value                 |
/// |---------|-----------------------|--------------------------|
/// | read    | nil                   | the value read (nil: absent) |
/// | write   | the value             | the value                |
/// | cas     | `[expected, new]`     | `[expected, new]`        |
/// | delete  | nil                   | nil                      |
/// | append  | the element           | the element              |
/// | add     | the increment         | the increment            |
/// | enqueue | the element           | the element              |
/// | dequeue | nil                   | the element (nil: empty) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpFn {
    Read,
    Write,
    Cas,
    Delete,
    Append,
    Add,
    Enqueue,
    Dequeue,
}

impl fmt::Display for OpFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OpFn::Read => "read",
            OpFn::Write => "write",
            OpFn::Cas => "cas",
            OpFn::Delete => "delete",
            OpFn::Append => "append",
            OpFn::Add => "add",
            OpFn::Enqueue => "enqueue",
            OpFn::Dequeue => "dequeue",
        };
        f.write_str(name)
    }
}

/// A value in a history: nil, an integer, a string, or a list (a CAS pair, a set, a queue).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    #[default]
    Nil,
    Int(i64),
    Str(String),
    List(Vec<Value>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A CAS pair `[expected, new]`.
    pub fn pair(expected: Value, new: Value) -> Value {
        Value::List(vec![expected, new])
    }

    pub fn as_pair(&self) -> Option<(&Value, &Value)> {
        match self {
            Value::List(items) if items.len() == 2 => Some((&items[0], &items[1])),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An operation: a function, an optional key (absent for single-register histories) and a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub f: OpFn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
}

impl Op {
    pub fn read(key: impl Into<String>) -> Op {
        Op { f: OpFn::Read, key: Some(key.into()), value: Value::Nil }
    }

    pub fn write(key: impl Into<String>, value: i64) -> Op {
        Op { f: OpFn::Write, key: Some(key.into()), value: Value::Int(value) }
    }

    pub fn cas(key: impl Into<String>, expected: i64, new: i64) -> Op {
        Op { f: OpFn::Cas, key: Some(key.into()), value: Value::pair(Value::Int(expected), Value::Int(new)) }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{} {key} {}", self.f, self.value),
            None => write!(f, "{} {}", self.f, self.value),
        }
    }
}

/// The four kinds of history event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(flatten)]
    pub op: Op,
    /// When the client saw it happen (true virtual time in the simulator), in nanoseconds.
    pub time: Time,
    /// On an `ok` completion: where the system under test says the operation took effect, as a
    /// position in one total order (e.g. twice the store revision a write created, plus one for a
    /// read of that revision). A checker may *try* the order these propose and verify it; it never
    /// trusts it (see `concord_check::witness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<u64>,
}

/// A whole history, in the order events happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn push(&mut self, process: u64, kind: EventType, op: Op, time: Time) {
        self.push_witnessed(process, kind, op, time, None);
    }

    /// [`History::push`] with the position the system under test reported (see [`Event::witness`]).
    pub fn push_witnessed(
        &mut self,
        process: u64,
        kind: EventType,
        op: Op,
        time: Time,
        witness: Option<u64>,
    ) {
        self.events.push(Event { process, kind, op, time, witness });
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The history as JSON Lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&serde_json::to_string(event).expect("history events serialise"));
            out.push('\n');
        }
        out
    }
}

/// How a client interprets a node's reply to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The operation took effect; for reads, with the value read.
    Ok(Value),
    /// The operation certainly did not take effect (e.g. a CAS whose comparison failed, or a request
    /// rejected before it was proposed).
    Fail(String),
    /// Not this node: it certainly did not take effect; try `hint` (the leader it knows) or another.
    Redirect(Option<NodeId>),
    /// The node does not know whether it took effect (e.g. a leader deposed while proposing).
    Unknown(String),
}

/// A protocol that serves the simulator's key-value workloads: it knows how to turn an [`Op`] into
/// its own request type and its responses back into a [`Completion`].
pub trait Service: Process {
    /// The request for `op`, sent by `client` as its `seq`-th request. Protocols with client
    /// sessions use `(client, seq)` to apply a retried request once.
    fn request(client: ClientId, seq: u64, op: &Op) -> Self::Request;

    /// What the reply means for `op`.
    fn completion(op: &Op, response: &Self::Response) -> Completion;

    /// For a reply that completes `op` successfully: where the system says `op` took effect in
    /// one total order of all operations (see [`Event::witness`]), if it can say.
    fn witness(_op: &Op, _response: &Self::Response) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_jepsen_shaped_json() {
        let mut h = History::default();
        h.push(3, EventType::Invoke, Op::cas("k7", 1, 4), Time(1_503_000));
        h.push(3, EventType::Ok, Op::read("k7"), Time(1_781_000));
        let text = h.to_jsonl();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,4],"time":1503000}"#
        );
        let back: Vec<Event> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, h.events);
    }

    #[test]
    fn values_display_like_jepsen() {
        assert_eq!(Value::pair(Value::Int(1), Value::Nil).to_string(), "[1 nil]");
        assert_eq!(Op::write("x", 5).to_string(), "write x 5");
    }
}

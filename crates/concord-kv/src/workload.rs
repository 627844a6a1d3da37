//! The bridge to the simulator's workloads: Jepsen-style [`Op`]s in, [`Completion`]s out.
//!
//! | op                      | becomes                                         | ok value            |
//! |-------------------------|-------------------------------------------------|---------------------|
//! | `read k`                | query `Get k`                                   | value read, or nil  |
//! | `write k v`             | `Put k v` (no TTL)                              | `v`                 |
//! | `cas k [expected new]`  | `Cas k (Value == expected) new`; nil: absent    | `[expected new]`    |
//! | `delete k`              | `Delete k`                                      | nil                 |
//! | `add k d`               | `Increment k d`                                 | `d`                 |
//!
//! Values are stored as bytes: an integer as its decimal text (`42` → `b"42"`), a string as its
//! UTF-8. A read answers [`Value::Int`] when the bytes parse as a decimal `i64` and
//! [`Value::Str`] otherwise (so a string `"42"` reads back as the integer 42 – workloads use one
//! kind per key). An op without a key uses the key [`REGISTER_KEY`] (a single-register history).
//!
//! A CAS whose comparison fails, and any [`KvError`](crate::KvError), complete as
//! [`Completion::Fail`] with the reason: in both cases the command certainly changed nothing. Ops
//! this store cannot express (`append`, `enqueue`, `dequeue`, `write nil`, ...) become a query that
//! is answered with an error, so they too fail definitely – and no replica state is touched.

use crate::command::{Command, CompareTarget, Query};
use crate::response::{KvResult, Response};
use crate::store::{parse_i64, KvStore};
use concord_core::{Access, Completion, KvStateMachine, Op, OpFn, Time, Value};

/// The key of ops that have none (single-register workloads).
pub const REGISTER_KEY: &str = "register";

impl KvStateMachine for KvStore {
    fn access(op: &Op, now: Time) -> Access<Command, Query> {
        let key = op.key.as_deref().unwrap_or(REGISTER_KEY).as_bytes().to_vec();
        let unsupported = |why: String| Access::Read(Query::Unsupported { reason: why });
        match op.f {
            OpFn::Read => Access::Read(Query::Get { key }),
            OpFn::Write => match to_bytes(&op.value) {
                Some(value) => Access::Write(Command::put(now, key, value)),
                None => unsupported(format!("write of {}: the value must be an integer or a string", op.value)),
            },
            OpFn::Cas => {
                let pair = op.value.as_pair().and_then(|(expected, new)| {
                    let expected = match expected {
                        Value::Nil => None,
                        value => Some(to_bytes(value)?),
                    };
                    Some((expected, to_bytes(new)?))
                });
                match pair {
                    Some((expected, new)) => {
                        Access::Write(Command::cas(now, key, CompareTarget::Value(expected), new))
                    }
                    None => unsupported(format!(
                        "cas of {}: the value must be [expected new], expected nil or an integer or a \
                         string, new an integer or a string",
                        op.value
                    )),
                }
            }
            OpFn::Delete => Access::Write(Command::delete(now, key)),
            OpFn::Add => match op.value {
                Value::Int(delta) => Access::Write(Command::increment(now, key, delta)),
                _ => unsupported(format!("add of {}: the increment must be an integer", op.value)),
            },
            OpFn::Append | OpFn::Enqueue | OpFn::Dequeue => {
                unsupported(format!("{} is not a key-value operation", op.f))
            }
        }
    }

    fn completion(op: &Op, output: &KvResult) -> Completion {
        let response = match output {
            Ok(response) => response,
            Err(error) => return Completion::Fail(error.to_string()),
        };
        match (op.f, response) {
            (OpFn::Read, Response::Get(kv)) => {
                Completion::Ok(kv.as_ref().map_or(Value::Nil, |kv| to_value(&kv.value)))
            }
            (OpFn::Write, Response::Put { .. })
            | (OpFn::Add, Response::Increment { .. })
            | (OpFn::Cas, Response::Cas { succeeded: true, .. }) => Completion::Ok(op.value.clone()),
            (OpFn::Delete, Response::Delete { .. }) => Completion::Ok(Value::Nil),
            (OpFn::Cas, Response::Cas { succeeded: false, current, .. }) => {
                let expected = op.value.as_pair().map_or(Value::Nil, |(expected, _)| expected.clone());
                let found = current.as_ref().map_or(Value::Nil, |kv| to_value(&kv.value));
                Completion::Fail(format!("cas failed: expected {expected}, found {found}"))
            }
            // A response of the wrong shape is a bug somewhere between proposer and state machine;
            // we cannot claim the op did not happen, so the outcome is unknown.
            (_, other) => Completion::Unknown(format!("response {other:?} does not answer {op}")),
        }
    }
}

/// The bytes stored for a workload value; `None` for values that have no byte form here.
fn to_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Str(s) => Some(s.clone().into_bytes()),
        Value::Nil | Value::List(_) => None,
    }
}

/// The workload value of stored bytes: an integer if they are one, else (lossy) text.
fn to_value(bytes: &[u8]) -> Value {
    match parse_i64(bytes) {
        Some(i) => Value::Int(i),
        None => Value::Str(String::from_utf8_lossy(bytes).into_owned()),
    }
}

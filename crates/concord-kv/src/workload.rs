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
                None => {
                    unsupported(format!("write of {}: the value must be an integer or a string", op.value))
                }
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

    /// Store revisions order every write: a write that created revision `r` sits at `2r`, and a
    /// read (or a delete of an absent key) that saw the key as revision `r` left it sits at
    /// `2r + 1`, after that write and before the next. A read of an absent key does not say when
    /// it was absent; it is proposed at `1`, before every write – right for a key not yet written,
    /// and for a deleted one the proposal fails verification and the checker searches (a witness
    /// is a proposal, never trusted).
    fn witness(op: &Op, output: &KvResult) -> Option<u64> {
        let write_at = |revision: u64| Some(2 * revision);
        match (op.f, output.as_ref().ok()?) {
            (OpFn::Read, Response::Get(kv)) => Some(kv.as_ref().map_or(1, |kv| 2 * kv.mod_revision + 1)),
            (OpFn::Write, Response::Put { revision })
            | (OpFn::Add, Response::Increment { revision, .. })
            | (OpFn::Cas, Response::Cas { succeeded: true, revision, .. }) => write_at(*revision),
            (OpFn::Delete, Response::Delete { revision, deleted }) => {
                Some(2 * revision + u64::from(*deleted == 0))
            }
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Write;
    use crate::error::KvError;
    use crate::response::KeyValue;
    use concord_core::StateMachine;

    const NOW: Time = Time(7);

    fn op(f: OpFn, key: Option<&str>, value: Value) -> Op {
        Op { f, key: key.map(str::to_string), value }
    }

    fn kv(value: &[u8]) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            value: value.to_vec(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            expires_at: None,
        }
    }

    #[test]
    fn ops_map_to_commands_and_queries() {
        let access = |o: Op| KvStore::access(&o, NOW);
        assert_eq!(access(Op::read("k")), Access::Read(Query::get("k")));
        assert_eq!(access(Op::write("k", 42)), Access::Write(Command::put(NOW, "k", "42")));
        assert_eq!(
            access(op(OpFn::Write, Some("k"), Value::Str("hi".into()))),
            Access::Write(Command::put(NOW, "k", "hi"))
        );
        assert_eq!(
            access(Op::cas("k", 1, -2)),
            Access::Write(Command::cas(NOW, "k", CompareTarget::Value(Some(b"1".to_vec())), "-2"))
        );
        assert_eq!(
            access(op(OpFn::Cas, Some("k"), Value::pair(Value::Nil, Value::Int(5)))),
            Access::Write(Command::cas(NOW, "k", CompareTarget::Value(None), "5"))
        );
        assert_eq!(access(op(OpFn::Delete, Some("k"), Value::Nil)), Access::Write(Command::delete(NOW, "k")));
        assert_eq!(
            access(op(OpFn::Add, Some("k"), Value::Int(-3))),
            Access::Write(Command::new(NOW, Write::Increment { key: b"k".to_vec(), delta: -3 }))
        );
        // No key: the single register.
        assert_eq!(access(op(OpFn::Read, None, Value::Nil)), Access::Read(Query::get(REGISTER_KEY)));
    }

    #[test]
    fn inexpressible_ops_become_refused_queries() {
        let reason = |o: Op| match KvStore::access(&o, NOW) {
            Access::Read(Query::Unsupported { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(op(OpFn::Append, Some("k"), Value::Int(1))), "append is not a key-value operation");
        assert_eq!(
            reason(op(OpFn::Write, Some("k"), Value::Nil)),
            "write of nil: the value must be an integer or a string"
        );
        assert_eq!(
            reason(op(OpFn::Add, Some("k"), Value::Str("1".into()))),
            "add of \"1\": the increment must be an integer"
        );
        assert!(reason(op(OpFn::Cas, Some("k"), Value::Int(1))).starts_with("cas of 1: the value must be"));
        assert!(reason(op(OpFn::Cas, Some("k"), Value::pair(Value::Int(1), Value::Nil)))
            .starts_with("cas of [1 nil]"));
        // And the store answers such a query with a definite failure.
        let out = KvStore::default()
            .query(&Query::Unsupported { reason: "dequeue is not a key-value operation".into() });
        assert_eq!(
            KvStore::completion(&op(OpFn::Dequeue, Some("q"), Value::Nil), &out),
            Completion::Fail("unsupported operation: dequeue is not a key-value operation".into())
        );
    }

    #[test]
    fn outputs_map_to_completions() {
        let done = |o: Op, out: KvResult| KvStore::completion(&o, &out);
        assert_eq!(done(Op::read("k"), Ok(Response::Get(Some(kv(b"-17"))))), Completion::Ok(Value::Int(-17)));
        assert_eq!(
            done(Op::read("k"), Ok(Response::Get(Some(kv(b"abc"))))),
            Completion::Ok(Value::Str("abc".into()))
        );
        assert_eq!(done(Op::read("k"), Ok(Response::Get(None))), Completion::Ok(Value::Nil));
        assert_eq!(done(Op::write("k", 3), Ok(Response::Put { revision: 9 })), Completion::Ok(Value::Int(3)));
        assert_eq!(
            done(
                Op::cas("k", 1, 2),
                Ok(Response::Cas { succeeded: true, revision: 4, current: Some(kv(b"2")) })
            ),
            Completion::Ok(Value::pair(Value::Int(1), Value::Int(2)))
        );
        assert_eq!(
            done(
                Op::cas("k", 1, 2),
                Ok(Response::Cas { succeeded: false, revision: 4, current: Some(kv(b"5")) })
            ),
            Completion::Fail("cas failed: expected 1, found 5".into())
        );
        assert_eq!(
            done(Op::cas("k", 1, 2), Ok(Response::Cas { succeeded: false, revision: 4, current: None })),
            Completion::Fail("cas failed: expected 1, found nil".into())
        );
        let add = op(OpFn::Add, Some("k"), Value::Int(5));
        assert_eq!(
            done(add.clone(), Ok(Response::Increment { value: 12, revision: 2 })),
            Completion::Ok(Value::Int(5))
        );
        assert_eq!(
            done(add, Err(KvError::NotAnInteger { key: "\"k\"".into(), value: "\"x\"".into() })),
            Completion::Fail(
                "cannot increment key \"k\": its value \"x\" is not a decimal 64-bit integer".into()
            )
        );
        let delete = op(OpFn::Delete, Some("k"), Value::Nil);
        assert_eq!(
            done(delete, Ok(Response::Delete { revision: 1, deleted: 0 })),
            Completion::Ok(Value::Nil)
        );
        assert!(matches!(done(Op::read("k"), Ok(Response::Put { revision: 1 })), Completion::Unknown(_)));
    }

    /// The whole path a simulator takes: access, apply or query, completion.
    #[test]
    fn a_register_history_runs_end_to_end() {
        let mut store = KvStore::default();
        let mut run = |o: Op| {
            let out = match KvStore::access(&o, NOW) {
                Access::Write(command) => store.apply(0, &command),
                Access::Read(query) => store.query(&query),
            };
            KvStore::completion(&o, &out)
        };
        assert_eq!(run(Op::read("x")), Completion::Ok(Value::Nil));
        assert_eq!(
            run(op(OpFn::Cas, Some("x"), Value::pair(Value::Nil, Value::Int(1)))),
            Completion::Ok(Value::pair(Value::Nil, Value::Int(1)))
        );
        assert_eq!(run(Op::cas("x", 2, 3)), Completion::Fail("cas failed: expected 2, found 1".into()));
        assert_eq!(run(op(OpFn::Add, Some("x"), Value::Int(10))), Completion::Ok(Value::Int(10)));
        assert_eq!(run(Op::read("x")), Completion::Ok(Value::Int(11)));
        assert_eq!(run(Op::write("x", 4)), Completion::Ok(Value::Int(4)));
        assert_eq!(run(op(OpFn::Delete, Some("x"), Value::Nil)), Completion::Ok(Value::Nil));
        assert_eq!(run(Op::read("x")), Completion::Ok(Value::Nil));
        assert_eq!(
            run(Op::write("", 1)),
            Completion::Fail("key is empty; a key must be at least 1 byte".into())
        );
    }
}

//! Redis's data types in the eventual mode: what a Dynamo store can keep, and why the rest is refused.
//!
//! The front door hands data-type commands over as argv (`Write::Redis`, `Query::Redis`), as it
//! does in the strong mode. There, a replicated log orders every write and one interpreter runs
//! them; here there is no order of writes – any replica accepts any write, and replicas merge
//! later. So a command is served only if its data type can be *merged*: each is a CRDT in
//! `concord_dynamo::crdt` (Riak's data types).
//!
//! | Redis type | stored as | commands | concurrent writes |
//! |---|---|---|---|
//! | set | OR-set (observed-remove) | `SADD` `SREM` `SMEMBERS` `SISMEMBER` `SMISMEMBER` `SCARD` | both adds kept; a remove removes the adds its coordinator has seen, so an add it has not seen survives (add wins) |
//! | hash | map of last-writer-wins registers, fields as an OR-set (a Riak map) | `HSET` `HMSET` `HGET` `HMGET` `HDEL` `HGETALL` `HKEYS` `HVALS` `HLEN` `HEXISTS` `HSTRLEN` | a field written on two sides: the later timestamp (coordinator clocks) is read; a write that saw the other always wins; a field written concurrently with `HDEL` survives |
//! | string counter | PN-counter | `INCR` `INCRBY` `DECR` `DECRBY` (the KV front door) | every increment counts |
//!
//! Every answer is the coordinator's: `SADD` counts the members new *to the coordinating replica*,
//! reads merge `R` replicas (the connection's `CONSISTENCY`). Writes carry the connection's `W`.
//! A key keeps the type of its first write (`WRONGTYPE` otherwise, worded as redis-server words
//! it) – also after its last member is removed: an emptied set stays an empty set, where Redis
//! deletes the key. Forgetting it would drop the OR-set's causal context, and a replica that has
//! not seen the remove yet would bring the members back on the next repair. For the same reason a
//! `SET` does not replace a set or hash here (Redis's would): it is refused with the reason (see
//! `super::resp`), since the adds other replicas accepted concurrently would be lost.
//!
//! ## Refused, with the reason
//! - `HINCRBY`, `HINCRBYFLOAT`: a field is a last-writer-wins register, so two concurrent
//!   increments would keep one – a lost update. A counter in a key of its own (`INCRBY`) is a
//!   PN-counter and counts both.
//! - `HSETNX`, `SMOVE`, `SPOP`, `SRANDMEMBER`, `SINTERSTORE` …: they compare with, or move between,
//!   values that another replica may be changing at the same moment.
//! - lists, sorted sets, streams, and string commands other than `GET`/`SET`/`DEL`/`INCR`…: they
//!   need a total order of writes (a position in a list, a rank by score, an offset in a string).
//! - `FLUSHALL`, `FLUSHDB`, `RANDOMKEY`: they act on every key, and a Dynamo store has no one
//!   place that holds them all nor one step that deletes them all. `TOUCH`: use `EXISTS`.
//! - `MULTI`/`EXEC` of several commands, `WATCH`, scripts: atomic or conditional execution needs
//!   one order of writes. A `MULTI` of one command runs it.
//!
//! Each refusal is an error reply `ERR <COMMAND> is not available in the eventual mode: <why>; use
//! the strong mode`, so a client sees which command and why.

use super::EventualHandle;
use crate::front::ClientError;
use concord_dynamo::{DynamoRequest, DynamoResponse};
use concord_kv::redis::{RedisCall, RedisExec, Reply};
use concord_resp::{BackendError, BoxFuture, RequestConsistency};

/// redis-server's words for a command on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The reply to a command this mode does not serve, naming the command and the reason.
pub fn refusal(name: &str, why: &str) -> Reply {
    Reply::Error(format!("ERR {name} is not available in the eventual mode: {why}; use the strong mode"))
}

fn wrong_arity(name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

/// Why a command outside the table is refused, by what it works on.
fn why_not(name: &str) -> &'static str {
    match name {
        "HINCRBY" | "HINCRBYFLOAT" => {
            "a hash field is a last-writer-wins register here, so concurrent increments of it would be lost; \
             keep the counter in a key of its own and use INCRBY (a PN-counter)"
        }
        "HSETNX" | "SMOVE" | "SPOP" | "SRANDMEMBER" | "HRANDFIELD" | "SINTERSTORE" | "SUNIONSTORE"
        | "SDIFFSTORE" => {
            "it compares with, moves or samples values that another replica may be changing at the same moment"
        }
        "SINTER" | "SUNION" | "SDIFF" | "SINTERCARD" => {
            "it combines several sets, which live on different replicas with no common point in time"
        }
        "HSCAN" | "SSCAN" => "a cursor needs one order of the members across reads; read the whole set or hash",
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" => {
            "a TTL (SET … EX/PX, EXPIRE) needs one order of writes to compare deadlines against"
        }
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => {
            "a transaction of several commands needs one order of writes, and replicas here accept writes independently"
        }
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "SCRIPT" | "FCALL" | "FCALL_RO" | "FUNCTION" => {
            "a script runs atomically against one order of writes, which replicas here do not share"
        }
        "APPEND" | "SETRANGE" | "GETRANGE" | "SUBSTR" | "STRLEN" | "LCS" | "GETDEL" | "GETEX" | "SETNX"
        | "MSETNX" | "INCRBYFLOAT" | "RENAME" | "RENAMENX" | "COPY" => {
            "of strings, this mode keeps whole values and PN-counters (GET, SET, DEL, MGET, MSET, INCR…); \
             editing, comparing or moving them needs a total order of writes"
        }
        "FLUSHALL" | "FLUSHDB" => {
            "deleting every key is not one step in a Dynamo store: each key's replicas would delete it on \
             their own, and a write or a replica that missed the delete brings keys back (DEL the keys, or \
             run FLUSHALL in the strong mode, where it is one write of the log)"
        }
        "RANDOMKEY" => "it picks among every key, and this mode has no listing of the keys (as KEYS and SCAN)",
        "TOUCH" => "access times are not kept here; EXISTS counts the same keys",
        n if n.starts_with('Z') => "sorted sets need a total order of writes (scores and ranks)",
        n if n.starts_with('X') => "streams need a total order of writes (entry ids)",
        n if n.starts_with('L')
            || n.starts_with('R') && n.contains("POP")
            || n.starts_with('R') && n.contains("PUSH")
            || n.starts_with("BL")
            || n.starts_with("BR") =>
        {
            "lists need a total order of writes (positions)"
        }
        _ => "it needs a total order of writes, which replicas here do not share",
    }
}

/// Which data type a command reads or writes here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Hash,
    Any,
}

/// A read command with its arguments; answered from the key's whole object.
enum ReadCmd {
    SMembers,
    SIsMember(Vec<u8>),
    SMIsMember(Vec<Vec<u8>>),
    SCard,
    HGet(Vec<u8>),
    HMGet(Vec<Vec<u8>>),
    HGetAll,
    HKeys,
    HVals,
    HLen,
    HExists(Vec<u8>),
    HStrlen(Vec<u8>),
    /// `TYPE`: whatever the key holds.
    Type,
}

/// One served command: a write of one Dynamo request (answered with what it changed, or `OK` for
/// `HMSET`), or a read of the key's object.
enum Plan {
    Write { request: DynamoRequest, ok: bool },
    Read { key: String, cmd: ReadCmd },
}

/// What a read found at a key of the command's type (absent: an empty one, as in Redis).
struct View {
    members: Vec<Vec<u8>>,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ReadCmd {
    fn kind(&self) -> Kind {
        match self {
            ReadCmd::SMembers | ReadCmd::SIsMember(_) | ReadCmd::SMIsMember(_) | ReadCmd::SCard => Kind::Set,
            ReadCmd::Type => Kind::Any,
            _ => Kind::Hash,
        }
    }

    /// The reply as redis-server shapes it (RESP3 set and map types; the front door flattens
    /// them for RESP2).
    fn answer(self, view: View) -> Reply {
        let View { members, fields } = view;
        let has = |m: &[u8]| members.binary_search_by(|x| x.as_slice().cmp(m)).is_ok();
        let field =
            |f: &[u8]| fields.binary_search_by(|(x, _)| x.as_slice().cmp(f)).ok().map(|i| &fields[i].1);
        let bulk_or_nil = |v: Option<&Vec<u8>>| v.map_or(Reply::Nil, |v| Reply::Bulk(v.clone()));
        match self {
            ReadCmd::SMembers => Reply::Set(members.iter().cloned().map(Reply::Bulk).collect()),
            ReadCmd::SIsMember(m) => Reply::Int(has(&m) as i64),
            ReadCmd::SMIsMember(ms) => Reply::Array(ms.iter().map(|m| Reply::Int(has(m) as i64)).collect()),
            ReadCmd::SCard => Reply::Int(members.len() as i64),
            ReadCmd::HGet(f) => bulk_or_nil(field(&f)),
            ReadCmd::HMGet(fs) => Reply::Array(fs.iter().map(|f| bulk_or_nil(field(f))).collect()),
            ReadCmd::HGetAll => Reply::Map(
                fields.iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))).collect(),
            ),
            ReadCmd::HKeys => Reply::Array(fields.iter().map(|(f, _)| Reply::Bulk(f.clone())).collect()),
            ReadCmd::HVals => Reply::Array(fields.iter().map(|(_, v)| Reply::Bulk(v.clone())).collect()),
            ReadCmd::HLen => Reply::Int(fields.len() as i64),
            ReadCmd::HExists(f) => Reply::Int(field(&f).is_some() as i64),
            ReadCmd::HStrlen(f) => Reply::Int(field(&f).map_or(0, |v| v.len() as i64)),
            ReadCmd::Type => unreachable!("TYPE is answered from the read's kind"),
        }
    }
}

/// Serve one `Write::Redis`: only a single command without `WATCH` (see the module docs).
pub fn exec(
    handle: &EventualHandle,
    exec: RedisExec,
    consistency: RequestConsistency,
) -> BoxFuture<Result<Vec<Reply>, BackendError>> {
    if !exec.watch.is_empty() {
        return ready(vec![refusal("WATCH", why_not("WATCH"))]);
    }
    let mut calls = exec.calls;
    if calls.len() != 1 {
        return ready(vec![refusal("MULTI", why_not("MULTI"))]);
    }
    let call = calls.pop().expect("one call");
    let answer = run(handle, call, consistency);
    Box::pin(async move { Ok(vec![answer.await?]) })
}

fn ready(replies: Vec<Reply>) -> BoxFuture<Result<Vec<Reply>, BackendError>> {
    Box::pin(async move { Ok(replies) })
}

/// Serve one command (a `Query::Redis`, or the single call of a `Write::Redis`). The request is
/// submitted to the node before this returns, so pipelined commands reach it in order.
pub fn run(
    handle: &EventualHandle,
    call: RedisCall,
    consistency: RequestConsistency,
) -> BoxFuture<Result<Reply, BackendError>> {
    let plan = match plan(handle, call, consistency.w) {
        Ok(plan) => plan,
        Err(reply) => return Box::pin(async move { Ok(reply) }),
    };
    match plan {
        Plan::Write { request, ok } => {
            let answer = handle.submit(request);
            Box::pin(async move {
                match answer.await {
                    Ok(DynamoResponse::Updated { .. }) if ok => Ok(Reply::Ok),
                    Ok(DynamoResponse::Updated { changed }) => Ok(Reply::Int(changed as i64)),
                    Ok(other) => {
                        Err(BackendError::Unknown(format!("unexpected answer to a write: {other:?}")))
                    }
                    Err(e) => wrong_type_or(e),
                }
            })
        }
        Plan::Read { key, cmd } => {
            let read =
                handle.check_quorum("r", consistency.r).map(|r| handle.submit(DynamoRequest::Get { key, r }));
            Box::pin(async move {
                let found = match read {
                    Ok(future) => future.await,
                    Err(e) => Err(e),
                };
                let kind = cmd.kind();
                let found = found.map_err(ClientError::of_read);
                if kind == Kind::Any {
                    // TYPE: an emptied set or hash still is one here (see the module docs).
                    let name = match found.map_err(super::resp::backend_error)? {
                        DynamoResponse::Members(_) => "set",
                        DynamoResponse::Fields(_) => "hash",
                        DynamoResponse::Found { values, counter: None, .. } if values.is_empty() => "none",
                        _ => "string",
                    };
                    return Ok(Reply::Status(name.into()));
                }
                let view = match found {
                    Ok(DynamoResponse::Members(members)) if kind == Kind::Set => {
                        View { members, fields: vec![] }
                    }
                    Ok(DynamoResponse::Fields(fields)) if kind == Kind::Hash => {
                        View { members: vec![], fields }
                    }
                    Ok(DynamoResponse::Found { values, counter: None, .. }) if values.is_empty() => {
                        View { members: vec![], fields: vec![] }
                    }
                    Ok(
                        DynamoResponse::Found { .. } | DynamoResponse::Members(_) | DynamoResponse::Fields(_),
                    ) => return Ok(Reply::Error(WRONGTYPE.into())),
                    Ok(other) => {
                        return Err(BackendError::Unknown(format!("unexpected answer to a read: {other:?}")))
                    }
                    Err(e) => return Err(super::resp::backend_error(e)),
                };
                Ok(cmd.answer(view))
            })
        }
    }
}

/// A write refused because the key holds another type answers `WRONGTYPE`; other failures are
/// the node's (unavailable, timeout, unknown outcome).
fn wrong_type_or(e: ClientError) -> Result<Reply, BackendError> {
    match e {
        ClientError::Rejected(why) if why.contains(" holds a ") => Ok(Reply::Error(WRONGTYPE.into())),
        e => Err(super::resp::backend_error(e)),
    }
}

/// Parse a command into what to ask the node, or the error reply (arity, limits, refusal).
fn plan(handle: &EventualHandle, call: RedisCall, w: Option<usize>) -> Result<Plan, Reply> {
    let mut argv = call.argv.into_iter();
    let name = String::from_utf8_lossy(&argv.next().unwrap_or_default()).to_ascii_uppercase();
    let mut args: Vec<Vec<u8>> = argv.collect();
    // (command, least arguments after the key, whether they come in pairs)
    let (least, pairs) = match name.as_str() {
        "SMEMBERS" | "SCARD" | "HGETALL" | "HKEYS" | "HVALS" | "HLEN" | "TYPE" => (0, false),
        "SISMEMBER" | "HGET" | "HEXISTS" | "HSTRLEN" => (1, false),
        "SADD" | "SREM" | "SMISMEMBER" | "HMGET" | "HDEL" => (1, false),
        "HSET" | "HMSET" => (2, true),
        _ => return Err(refusal(&name, why_not(&name))),
    };
    let exact = matches!(name.as_str(), "SISMEMBER" | "HGET" | "HEXISTS" | "HSTRLEN")
        || matches!(name.as_str(), "SMEMBERS" | "SCARD" | "HGETALL" | "HKEYS" | "HVALS" | "HLEN" | "TYPE");
    let after_key = args.len().saturating_sub(1);
    if args.is_empty()
        || after_key < least
        || (exact && after_key != least)
        || (pairs && !after_key.is_multiple_of(2))
    {
        return Err(wrong_arity(&name));
    }
    let key = args.remove(0);
    let key = String::from_utf8(key)
        .map_err(|_| Reply::Error("ERR keys must be UTF-8 text in the eventual mode".into()))?;
    // The same limits as values of the KV commands: a member, field or value is at most a value.
    let limits = handle.limits();
    if key.is_empty() || key.len() > limits.max_key_bytes {
        let e = if key.is_empty() {
            concord_kv::KvError::EmptyKey
        } else {
            concord_kv::KvError::KeyTooLarge { key_bytes: key.len(), max_key_bytes: limits.max_key_bytes }
        };
        return Err(Reply::Error(format!("ERR {e}")));
    }
    if let Some(big) = args.iter().find(|a| a.len() > limits.max_value_bytes) {
        let e = concord_kv::KvError::ValueTooLarge {
            value_bytes: big.len(),
            max_value_bytes: limits.max_value_bytes,
        };
        return Err(Reply::Error(format!("ERR {e}")));
    }
    let one = |args: &mut Vec<Vec<u8>>| args.pop().expect("arity checked");
    let cmd = match name.as_str() {
        "SADD" => {
            return Ok(Plan::Write { request: DynamoRequest::SetAdd { key, members: args, w }, ok: false })
        }
        "SREM" => {
            return Ok(Plan::Write { request: DynamoRequest::SetRemove { key, members: args, w }, ok: false })
        }
        "HDEL" => {
            return Ok(Plan::Write { request: DynamoRequest::MapRemove { key, fields: args, w }, ok: false })
        }
        "HSET" | "HMSET" => {
            // Of one field written twice in one command, the last value counts (as in Redis).
            let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(args.len() / 2);
            let mut it = args.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                fields.retain(|(g, _)| *g != f);
                fields.push((f, v));
            }
            // HMSET is HSET answering OK instead of a count.
            let ok = name == "HMSET";
            return Ok(Plan::Write { request: DynamoRequest::MapSet { key, fields, w }, ok });
        }
        "SMEMBERS" => ReadCmd::SMembers,
        "SISMEMBER" => ReadCmd::SIsMember(one(&mut args)),
        "SMISMEMBER" => ReadCmd::SMIsMember(args),
        "SCARD" => ReadCmd::SCard,
        "HGET" => ReadCmd::HGet(one(&mut args)),
        "HMGET" => ReadCmd::HMGet(args),
        "HGETALL" => ReadCmd::HGetAll,
        "HKEYS" => ReadCmd::HKeys,
        "HVALS" => ReadCmd::HVals,
        "HLEN" => ReadCmd::HLen,
        "HEXISTS" => ReadCmd::HExists(one(&mut args)),
        "HSTRLEN" => ReadCmd::HStrlen(one(&mut args)),
        "TYPE" => ReadCmd::Type,
        _ => unreachable!("the arity table lists every served command"),
    };
    Ok(Plan::Read { key, cmd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_command_and_the_reason_by_family() {
        let said = |name: &str| match refusal(name, why_not(name)) {
            Reply::Error(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            said("LPUSH"),
            "ERR LPUSH is not available in the eventual mode: lists need a total order of writes (positions); \
             use the strong mode"
        );
        assert!(said("BRPOPLPUSH").contains("lists"));
        assert!(said("ZADD").contains("sorted sets"));
        assert!(said("HINCRBY").contains("INCRBY (a PN-counter)"));
        assert!(said("LCS").contains("of strings"), "LCS is a string command, not a list one");
        assert!(said("SPOP").contains("another replica"));
        for flush in ["FLUSHALL", "FLUSHDB"] {
            let why = said(flush);
            assert!(
                why.starts_with(&format!("ERR {flush} is not available in the eventual mode: deleting")),
                "{why}"
            );
            assert!(
                why.contains("FLUSHALL in the strong mode") && why.ends_with("use the strong mode"),
                "{why}"
            );
        }
        assert!(said("RANDOMKEY").contains("no listing of the keys"));
        assert!(said("TOUCH").contains("EXISTS"));
    }
}

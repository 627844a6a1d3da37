//! Data commands mapped onto `concord_kv`: what `SET k v NX GET` means in commands and queries.
//!
//! | Redis                         | concord-kv                                                        |
//! |-------------------------------|-------------------------------------------------------------------|
//! | `GET k`                       | `Query::Get`                                                      |
//! | `SET k v [EX s]`, `SETEX`, `PSETEX` | `Write::Put` (with `ttl_ms`)                                |
//! | `SET k v EXAT <past>`         | `Write::Delete` (Redis deletes the key)                           |
//! | `DEL k…`                      | `Write::Delete` (one key) or a `Txn` of deletes – atomic          |
//! | `MSET k v …`                  | a `Txn` of puts – atomic                                          |
//! | `INCR`/`DECR`/`INCRBY`/`DECRBY` | `Write::Increment` (keeps the key's TTL, like Redis; on a collection the error is WRONGTYPE, found by asking its kind) |
//! | `MGET`, `EXISTS`              | `Query::GetMany` pages, one after the other (see below)           |
//! | `SET … NX\|XX\|GET\|KEEPTTL`, `SETNX`, `GETSET`, `APPEND`, `EXPIRE`…, `RENAME`, `TYPE`, hashes … | `Write::Redis` / `Query::Redis`: the state machine's interpreter (`concord_kv::redis`) runs the command itself, atomically |
//! | `MULTI … EXEC`                | **one** `Write::Redis` of every queued command, with the `WATCH`ed mod revisions |
//! | `WATCH k…`                    | `Query::GetMany` at linearizable consistency: each key's mod revision (0: absent) |
//! | `BLPOP`, `BRPOP`, `BLMOVE`, `BLMPOP`, `BZPOPMIN`, `BZPOPMAX` | `Write::Redis` of the pop, retried while the keys' lengths (`Query::Redis`) are polled until data or the timeout (`crate::blocking`) |
//! | `TTL`, `PTTL`                 | `Query::Get`: the key's `expires_at` minus the backend's clock    |
//! | `KEYS`, `SCAN`, `DBSIZE`      | `Query::Range` pages, narrowed to the pattern's literal prefix; `SCAN … TYPE t` asks the kind of each key with an empty value (only those can be collections) |
//! | `CLUSTER COUNTKEYSINSLOT`, `GETKEYSINSLOT` | `Backend::count_keys_in_slot`, `Backend::keys_in_slot` (see `cluster`) |
//!
//! Strings with an empty value may be collections (see `concord_kv::redis`): `GET` and `MGET`
//! ask such a key's kind before they answer (WRONGTYPE, and nil in `MGET`, as Redis).
//!
//! # Consistency
//! Every backend call – each read and each write – carries the connection's [`RequestConsistency`] (its `CONSISTENCY` setting): the Raft read
//! level on a strong backend, the R and W overrides on an eventual one.
//!
//! # Many keys in one command: bounded work
//! `MGET` and `EXISTS` ask the backend for their keys in pages: one `Query::GetMany` of at most
//! `max_range_limit` keys at a time, the next sent when the previous answered (a page may answer
//! fewer keys, once it holds `max_range_bytes`; the rest is asked again). So one command keeps at
//! most one read in flight and one page of values in memory beside its reply, however many keys
//! it names; the first error ends it, and nothing else of it is left running. `MGET`'s reply is
//! refused with an error, before it is built, once its values pass the connection's output-buffer
//! limit ([`ExecContext::max_reply_bytes`]). (Issue #23: one `MGET` of a million keys spawned a
//! million reads and took a node from 187 MB to 1.8 GB.)
//!
//! # What is not atomic
//! `MGET` and `EXISTS` over more than one page are not a snapshot across pages: each page is read
//! at one point in the log, with the connection's consistency. A snapshot of any size would need a
//! read-only transaction through the Raft log.
//!
//! # MULTI / EXEC / WATCH
//! A Redis transaction is **one** [`RedisExec`] of its queued data commands: one log entry, one
//! revision, atomic and isolated like Redis's. Every command redis-server queues is queued; at
//! queue time only the command's existence and arity are checked, as Redis does – an unknown
//! command or a wrong arity dooms the transaction (`EXECABORT`), while any other error
//! (`WRONGTYPE`, a syntax error, `NOSCRIPT`) is that command's reply inside EXEC's array.
//! `MULTI` and `WATCH` inside `MULTI` are refused without dooming it, as on Redis.
//!
//! The queue keeps each command in its place (`server`'s `Queued`):
//! * **data commands** – every command the interpreter runs, including the keyspace reads `KEYS`,
//!   `SCAN`, `DBSIZE`, `EXISTS` (which the fast paths answer outside `MULTI`) – become the calls
//!   of the one `RedisExec`, so a read sees the transaction's own earlier writes. A blocking pop
//!   runs as its non-blocking pop (Redis does not block inside a transaction: nil if empty);
//! * **front-door commands** with no data effect – `PING`, `ECHO`, `TIME` (no clock may run in
//!   the state machine), `UNWATCH` (`+OK`: the watches were checked when EXEC began), `PUBLISH`,
//!   `CLIENT`, `CONFIG`, `SELECT 0`… – are answered by the connection when EXEC runs, in their
//!   places in the reply array; `CLUSTER`'s slot reads run after the transaction's entry.
//!
//! Only `SUBSCRIBE` and its family are refused inside `MULTI` (and doom it).

//! `WATCH` reads each key's mod revision (0 if absent) at linearizable consistency; the
//! connection keeps them and EXEC sends them along. The state machine compares them when the
//! transaction is applied: if any differs – the key was written, deleted or expired – nothing
//! runs and EXEC answers a null array (`*-1`, RESP3 `_`), which clients report as a watch error.
//! EXEC, DISCARD and UNWATCH forget the watched keys.
//!
//! # Expired-but-present keys
//! Expiry goes through the log (see `concord_kv`), so a key may outlive its deadline until the
//! leader's expiry command is applied; until then `GET` still returns it and `TTL` reports 0.

use crate::backend::{Backend, BackendError, BoxFuture, ConsistencyModel, RequestConsistency};
use crate::command::{ClusterRequest, Request, ScanRequest, SetExpiry, SetRequest};
use crate::frame::Frame;
use crate::{cursor, glob};
use bytes::Bytes;
use concord_core::Time;
use concord_kv::{
    Command, KeyRange, KeyValue, Put, Query, RangeRequest, RedisCall, RedisExec, Response, Txn, TxnOp, Write,
};
use concord_raft::ReadConsistency;
use std::sync::Arc;

/// How a request touches the backend – what the connection's pipeline needs to keep replies
/// consistent with the order of requests (see `server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Answered by the connection itself (PING, HELLO, CLIENT, INFO…).
    Connection,
    /// Reads only.
    Read,
    /// One write, sent to the backend as soon as the request is parsed.
    Write,
}

impl Request {
    pub fn access(&self) -> Access {
        match self {
            Request::Get(_)
            | Request::GetRev(_)
            | Request::MGet(_)
            | Request::Exists(_)
            | Request::Ttl { .. }
            | Request::Keys(_)
            | Request::Scan(_)
            | Request::DbSize
            | Request::Watch(_)
            | Request::Cluster(ClusterRequest::CountKeysInSlot(_) | ClusterRequest::GetKeysInSlot { .. }) => {
                Access::Read
            }
            Request::Set(_) | Request::Del(_) | Request::IncrBy { .. } | Request::MSet(_) => Access::Write,
            // EVALSHA runs as EVAL (the server resolves it first); the ACL check needs its access.
            Request::EvalSha(args) if args[0].len() == "evalsha_ro".len() => Access::Read,
            Request::EvalSha(_) => Access::Write,
            Request::Redis(args) => {
                match concord_kv::redis::is_write(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase()) {
                    Some(true) => Access::Write,
                    Some(false) => Access::Read,
                    None => Access::Connection,
                }
            }
            _ => Access::Connection,
        }
    }
}

/// What a data command needs besides its arguments.
#[derive(Clone)]
pub struct ExecContext {
    pub backend: Arc<dyn Backend>,
    /// The connection's `CONSISTENCY` setting, passed with every backend call.
    pub consistency: RequestConsistency,
    /// Most keys `KEYS` returns before refusing.
    pub keys_max: usize,
    /// Most bytes of values an `MGET` reply may hold (the connection's output-buffer limit;
    /// `usize::MAX`: none).
    pub max_reply_bytes: usize,
}

type Reply = Result<Frame, Frame>;

fn backend_error(e: BackendError) -> Frame {
    e.to_reply()
}

fn now_time(now_ms: u64) -> Time {
    Time(now_ms.saturating_mul(1_000_000))
}

fn deadline_ms(kv: &KeyValue) -> Option<u64> {
    kv.expires_at.map(|t| t.0 / 1_000_000)
}

/// Redis refuses a relative expiry whose deadline (now + amount) passes `i64::MAX` ms – before it
/// looks at the key, so also for a key that does not exist (found by `concord difftest`).
fn deadline_overflow(request: &Request, now_ms: u64) -> Option<Frame> {
    let Request::Set(SetRequest { expiry: SetExpiry::AfterMs(ms), command, .. }) = request else {
        return None;
    };
    let ms = *ms as i64;
    (now_ms as i64)
        .checked_add(ms)
        .is_none()
        .then(|| Frame::error(format!("ERR invalid expire time in '{command}' command")))
}

/// Start executing a data request. **Writes are sent to the backend before this returns**, so
/// calling `start` for a pipeline of writes submits them in order; the returned future only waits
/// for the answers. Reads and read-modify-write commands start when the future is first polled.
pub fn start(request: Request, ctx: ExecContext) -> BoxFuture<Frame> {
    let now_ms = ctx.backend.now_ms();
    if let Some(error) = deadline_overflow(&request, now_ms) {
        return Box::pin(async move { error });
    }
    let command = |write: Write| Command::new(now_time(now_ms), write);
    match request {
        Request::Set(set) => {
            reply(ctx.backend.write(command(set_command(&set, now_ms)), ctx.consistency), |r| match r {
                Response::Put { .. } | Response::Delete { .. } => Ok(Frame::ok()),
                other => Err(unexpected(&other)),
            })
        }
        Request::Del(keys) => {
            let write = if keys.len() == 1 {
                Write::Delete { key: keys[0].to_vec() }
            } else {
                let success = keys.iter().map(|k| TxnOp::Delete { key: k.to_vec() }).collect();
                Write::Txn(Txn { compares: vec![], success, failure: vec![] })
            };
            reply(ctx.backend.write(command(write), ctx.consistency), |r| match r {
                Response::Delete { deleted, .. } => Ok(Frame::Integer(deleted as i64)),
                Response::Txn { responses, .. } => Ok(Frame::Integer(
                    responses
                        .iter()
                        .map(|r| if let Response::Delete { deleted, .. } = r { *deleted } else { 0 })
                        .sum::<u64>() as i64,
                )),
                other => Err(unexpected(&other)),
            })
        }
        Request::IncrBy { key, delta } => {
            let answer =
                ctx.backend.write(command(Write::Increment { key: key.to_vec(), delta }), ctx.consistency);
            Box::pin(async move {
                match answer.await {
                    Ok(Response::Increment { value, .. }) => Frame::Integer(value),
                    Ok(other) => unexpected(&other),
                    // An empty value is not an integer – unless it is a collection: WRONGTYPE.
                    Err(e @ BackendError::Kv(concord_kv::KvError::NotAnInteger { .. })) => {
                        match is_string(&ctx, &key).await {
                            Ok(true) => backend_error(e),
                            Ok(false) => Frame::from(concord_kv::Reply::wrong_type()),
                            Err(frame) => frame,
                        }
                    }
                    Err(e) => backend_error(e),
                }
            })
        }
        Request::MSet(pairs) => {
            let success = pairs.iter().map(|(k, v)| TxnOp::Put(Put::new(k.to_vec(), v.to_vec()))).collect();
            let write = Write::Txn(Txn { compares: vec![], success, failure: vec![] });
            reply(ctx.backend.write(command(write), ctx.consistency), |_| Ok(Frame::ok()))
        }
        Request::Redis(args) if crate::blocking::is_blocking(&args[0]) => {
            let keys = Request::Redis(args.clone()).keys().into_iter().map(<[u8]>::to_vec).collect();
            Box::pin(crate::blocking::run(args, keys, ctx))
        }
        Request::Redis(args) => {
            let call = RedisCall::new(args.iter().map(|a| a.to_vec()).collect());
            if concord_kv::redis::is_write(&call.name()) == Some(true) {
                let keys = Request::Redis(args).keys().into_iter().map(<[u8]>::to_vec).collect();
                let exec = RedisExec { keys, watch: vec![], calls: vec![call] };
                reply(ctx.backend.write(command(Write::Redis(exec)), ctx.consistency), single_reply)
            } else {
                let keys = Request::Redis(args).keys().into_iter().map(<[u8]>::to_vec).collect();
                let exec = RedisExec { keys, watch: vec![], calls: vec![call] };
                reply(ctx.backend.read(Query::Redis(exec), ctx.consistency), single_reply)
            }
        }
        other => Box::pin(async move { run(other, ctx).await.unwrap_or_else(|e| e) }),
    }
}

/// A plain `SET`'s command as [`start`] sends it, or its error reply (a deadline that overflows).
/// For a pipeline's batch of writes (see `crate::batch`).
pub(crate) fn set_batch_command(set: &SetRequest, now_ms: u64) -> Result<Command, Frame> {
    let request = Request::Set(set.clone());
    if let Some(error) = deadline_overflow(&request, now_ms) {
        return Err(error);
    }
    Ok(Command::new(now_time(now_ms), set_command(set, now_ms)))
}

/// A plain `SET`'s reply to its write's answer, as [`start`] makes it.
pub(crate) fn set_batch_reply(answer: Result<Response, BackendError>) -> Frame {
    match answer {
        Ok(Response::Put { .. } | Response::Delete { .. }) => Frame::ok(),
        Ok(other) => unexpected(&other),
        Err(e) => backend_error(e),
    }
}

/// `GET key`'s reply to its read's answer, as [`start`] makes it (an empty value may be a
/// collection: its kind is asked then, and WRONGTYPE answered for one).
pub(crate) async fn get_batch_reply(
    answer: Result<Response, BackendError>,
    key: &[u8],
    ctx: &ExecContext,
) -> Frame {
    match answer {
        Ok(Response::Get(kv)) => {
            if kv.as_ref().is_some_and(|kv| kv.value.is_empty()) {
                match is_string(ctx, key).await {
                    Ok(true) => {}
                    Ok(false) => return Frame::from(concord_kv::Reply::wrong_type()),
                    Err(frame) => return frame,
                }
            }
            Frame::bulk_or_null(kv.map(|kv| kv.value))
        }
        Ok(other) => unexpected(&other),
        Err(e) => backend_error(e),
    }
}

/// An interpreter write (`Request::Redis`) and, in the same atomic step, `EXISTS` of each key in
/// `probe`: its reply, and whether one of those keys exists after it (the connection's check of
/// keys it watched while absent: see `server`'s `Watched`). Anything else runs as [`start`] does.
pub fn start_probing(request: Request, probe: Vec<Vec<u8>>, ctx: ExecContext) -> BoxFuture<(Frame, bool)> {
    let Request::Redis(args) = request else {
        let answer = start(request, ctx);
        return Box::pin(async move { (answer.await, false) });
    };
    let keys = Request::Redis(args.clone()).keys().into_iter().map(<[u8]>::to_vec).collect();
    let mut calls = vec![RedisCall::new(args.iter().map(|a| a.to_vec()).collect())];
    calls.extend(probe.into_iter().map(|key| RedisCall::new(vec![b"exists".to_vec(), key])));
    let exec = RedisExec { keys, watch: vec![], calls };
    let answer =
        ctx.backend.write(Command::new(now_time(ctx.backend.now_ms()), Write::Redis(exec)), ctx.consistency);
    Box::pin(async move {
        match answer.await {
            Ok(Response::Redis { replies: Some(replies), .. }) if !replies.is_empty() => {
                let created = replies[1..].iter().any(|r| matches!(r, concord_kv::Reply::Int(n) if *n > 0));
                let mut replies = replies.into_iter();
                (Frame::from(replies.next().expect("one reply")), created)
            }
            Ok(other) => (unexpected(&other), false),
            Err(e) => (backend_error(e), false),
        }
    })
}

/// The one reply of an interpreter command.
fn single_reply(response: Response) -> Reply {
    match response {
        Response::Redis { replies: Some(mut replies), .. } if replies.len() == 1 => {
            Ok(Frame::from(replies.pop().expect("one reply")))
        }
        other => Err(unexpected(&other)),
    }
}

/// Await `answer` and turn it into a reply with `convert`.
fn reply(
    answer: BoxFuture<Result<Response, BackendError>>,
    convert: impl FnOnce(Response) -> Reply + Send + 'static,
) -> BoxFuture<Frame> {
    Box::pin(async move {
        match answer.await {
            Ok(response) => convert(response).unwrap_or_else(|e| e),
            Err(e) => backend_error(e),
        }
    })
}

fn unexpected(response: &Response) -> Frame {
    Frame::error(format!("ERR internal error: unexpected backend response {response:?}"))
}

/// The KV write for a plain SET: a put, or a delete for a deadline already past.
fn set_command(set: &SetRequest, now_ms: u64) -> Write {
    let put = Put::new(set.key.to_vec(), set.value.to_vec());
    match set.expiry {
        SetExpiry::Clear => Write::Put(put),
        SetExpiry::AfterMs(ms) => Write::Put(put.with_ttl_ms(ms)),
        SetExpiry::AtUnixMs(at) if at > now_ms => Write::Put(put.with_ttl_ms(at - now_ms)),
        // A deadline in the past: Redis sets and immediately expires the key, i.e. deletes it.
        SetExpiry::AtUnixMs(_) => Write::Delete { key: set.key.to_vec() },
    }
}

/// EXEC: the queued commands (each a [`Request::Redis`]) as one [`RedisExec`] with the watched
/// keys' mod revisions, submitted before this returns (like any write). The reply is the array of
/// their replies, or a null array if a watched key changed.
pub fn start_transaction(
    queued: Vec<Request>,
    watch: Vec<(Vec<u8>, u64)>,
    ctx: ExecContext,
) -> BoxFuture<Frame> {
    let mut keys = Vec::new();
    let mut calls = Vec::with_capacity(queued.len());
    for request in queued {
        keys.extend(request.keys().into_iter().map(<[u8]>::to_vec));
        match request {
            Request::Redis(args) => calls.push(RedisCall::new(args.iter().map(|a| a.to_vec()).collect())),
            other => {
                return Box::pin(std::future::ready(Frame::error(format!(
                    "ERR internal error: {other:?} cannot run inside MULTI"
                ))))
            }
        }
    }
    keys.sort();
    keys.dedup();
    let command =
        Command::new(now_time(ctx.backend.now_ms()), Write::Redis(RedisExec { keys, watch, calls }));
    reply(ctx.backend.write(command, ctx.consistency), |response| match response {
        Response::Redis { replies: Some(replies), .. } => {
            Ok(Frame::Array(replies.into_iter().map(Frame::from).collect()))
        }
        Response::Redis { replies: None, .. } => Ok(Frame::NullArray),
        other => Err(unexpected(&other)),
    })
}

/// WATCH: each key's mod revision (0: absent), read at linearizable consistency so that a write
/// acknowledged before the WATCH is seen.
pub async fn watch_revisions(ctx: &ExecContext, keys: &[Bytes]) -> Result<Vec<(Vec<u8>, u64)>, Frame> {
    let ctx = ExecContext {
        consistency: RequestConsistency { read: ReadConsistency::Linearizable, ..ctx.consistency },
        max_reply_bytes: usize::MAX,
        ..ctx.clone()
    };
    let values = get_many(&ctx, keys, false).await?;
    Ok(keys.iter().zip(values).map(|(key, kv)| (key.to_vec(), kv.map_or(0, |kv| kv.mod_revision))).collect())
}

/// TTL/PTTL's answer for a key as read at `now_ms`: -2 absent, -1 no TTL, else the time left
/// (0 for a key past its deadline whose expiry is not applied yet); TTL rounds to seconds.
fn ttl_reply(kv: Option<KeyValue>, now_ms: u64, millis: bool) -> i64 {
    match kv {
        None => -2,
        Some(kv) => match deadline_ms(&kv) {
            None => -1,
            Some(deadline) => {
                let left_ms = deadline.saturating_sub(now_ms) as i64;
                if millis {
                    left_ms
                } else {
                    (left_ms + 500) / 1000
                }
            }
        },
    }
}

/// Requests that do not need to reach the backend before `start` returns.
async fn run(request: Request, ctx: ExecContext) -> Reply {
    match request {
        Request::Get(key) => {
            let kv = get(&ctx, &key, ctx.consistency).await?;
            if kv.as_ref().is_some_and(|kv| kv.value.is_empty()) && !is_string(&ctx, &key).await? {
                return Ok(Frame::from(concord_kv::Reply::wrong_type()));
            }
            Ok(Frame::bulk_or_null(kv.map(|kv| kv.value)))
        }
        Request::GetRev(key) => {
            if matches!(ctx.backend.model(), ConsistencyModel::Eventual { .. }) {
                return Err(Frame::error(
                    "ERR GETREV needs a revision, and the eventual mode's replicas have none (use the strong \
                     or sharded mode)",
                ));
            }
            let kv = get(&ctx, &key, ctx.consistency).await?;
            if kv.as_ref().is_some_and(|kv| kv.value.is_empty()) && !is_string(&ctx, &key).await? {
                return Ok(Frame::from(concord_kv::Reply::wrong_type()));
            }
            let revision = kv.as_ref().map_or(0, |kv| kv.mod_revision);
            Ok(Frame::Array(vec![
                Frame::bulk_or_null(kv.map(|kv| kv.value)),
                Frame::Integer(revision as i64),
            ]))
        }
        Request::MGet(keys) => {
            let values = get_many(&ctx, &keys, true).await?;
            let mut replies = Vec::with_capacity(values.len());
            for (key, kv) in keys.iter().zip(values) {
                // Redis answers nil for a key that holds a collection.
                if kv.as_ref().is_some_and(|kv| kv.value.is_empty()) && !is_string(&ctx, key).await? {
                    replies.push(Frame::Null);
                    continue;
                }
                replies.push(Frame::bulk_or_null(kv.map(|kv| kv.value)));
            }
            Ok(Frame::Array(replies))
        }
        Request::Exists(keys) => {
            let values = get_many(&ctx, &keys, false).await?;
            Ok(Frame::Integer(values.iter().filter(|kv| kv.is_some()).count() as i64))
        }
        Request::Ttl { key, millis } => {
            let kv = get(&ctx, &key, ctx.consistency).await?;
            Ok(Frame::Integer(ttl_reply(kv, ctx.backend.now_ms(), millis)))
        }
        Request::Keys(pattern) => keys(&ctx, &pattern).await,
        Request::Scan(scan) => scan_page(&ctx, scan).await,
        Request::DbSize => dbsize(&ctx).await,
        Request::Cluster(cluster) => Ok(crate::cluster::slot_keys(cluster, ctx).await),
        other => Err(Frame::error(format!("ERR internal error: {other:?} is not a data command"))),
    }
}

/// Whether `key` holds a string (asked when a read finds an empty value: a collection's key has
/// one, see `concord_kv::redis`).
async fn is_string(ctx: &ExecContext, key: &[u8]) -> Result<bool, Frame> {
    let kind = kind(ctx, key).await?;
    Ok(kind == "string" || kind == "none")
}

/// What `TYPE key` answers (`none` if absent).
async fn kind(ctx: &ExecContext, key: &[u8]) -> Result<String, Frame> {
    let exec = RedisExec::read(RedisCall::new(vec![b"type".to_vec(), key.to_vec()]));
    match ctx.backend.read(Query::Redis(exec), ctx.consistency).await.map_err(backend_error)? {
        Response::Redis { replies: Some(replies), .. } => match replies.first() {
            Some(concord_kv::Reply::Status(kind)) => Ok(kind.clone()),
            other => Err(Frame::error(format!("ERR internal error: TYPE answered {other:?}"))),
        },
        other => Err(unexpected(&other)),
    }
}

async fn get(
    ctx: &ExecContext,
    key: &[u8],
    consistency: RequestConsistency,
) -> Result<Option<KeyValue>, Frame> {
    match ctx.backend.read(Query::get(key), consistency).await.map_err(backend_error)? {
        Response::Get(kv) => Ok(kv),
        other => Err(unexpected(&other)),
    }
}

/// The values of `keys`, read a page at a time (see "Many keys in one command" in the module
/// docs). With `keep_values` false (EXISTS) only presence is kept: the values are dropped page by
/// page, and no reply limit applies.
async fn get_many(
    ctx: &ExecContext,
    keys: &[Bytes],
    keep_values: bool,
) -> Result<Vec<Option<KeyValue>>, Frame> {
    let per_page = ctx.backend.limits().max_range_limit.max(1);
    let mut values = Vec::with_capacity(keys.len());
    let mut reply_bytes = 0usize;
    while values.len() < keys.len() {
        let asked = &keys[values.len()..keys.len().min(values.len() + per_page)];
        let query = Query::GetMany { keys: asked.iter().map(|k| k.to_vec()).collect() };
        let page = match ctx.backend.read(query, ctx.consistency).await.map_err(backend_error)? {
            // Always at least one key, never more than asked: anything else would loop or lie.
            Response::Values(page) if !page.is_empty() && page.len() <= asked.len() => page,
            other => return Err(unexpected(&other)),
        };
        for mut kv in page {
            if keep_values {
                reply_bytes = reply_bytes.saturating_add(kv.as_ref().map_or(0, |kv| kv.value.len()));
                if reply_bytes > ctx.max_reply_bytes {
                    return Err(Frame::error(format!(
                        "ERR the reply would hold more than {} bytes of values (the client output buffer \
                         limit, client-output-buffer-limit); ask for fewer keys",
                        ctx.max_reply_bytes
                    )));
                }
            } else if let Some(kv) = &mut kv {
                kv.value = Vec::new();
            }
            values.push(kv);
        }
    }
    Ok(values)
}

/// One page of `range`, at most `limit` keys.
async fn page(
    ctx: &ExecContext,
    range: KeyRange,
    limit: usize,
) -> Result<(Vec<KeyValue>, Option<Vec<u8>>), Frame> {
    let query = Query::Range(RangeRequest::new(range, limit));
    match ctx.backend.read(query, ctx.consistency).await.map_err(backend_error)? {
        Response::Range(page) => Ok((page.kvs, page.next_key)),
        other => Err(unexpected(&other)),
    }
}

/// `[start, end)` clipped to the keys that can match `pattern`; `None` if empty.
fn pattern_range(pattern: Option<&[u8]>, start: Vec<u8>) -> Option<KeyRange> {
    let prefix_range = KeyRange::prefix(pattern.map_or(&b""[..], glob::literal_prefix));
    let start = start.max(prefix_range.start);
    match &prefix_range.end {
        Some(end) if start >= *end => None,
        _ => Some(KeyRange { start, end: prefix_range.end }),
    }
}

async fn keys(ctx: &ExecContext, pattern: &[u8]) -> Reply {
    let limit = ctx.backend.limits().max_range_limit;
    let mut found = Vec::new();
    let mut next = pattern_range(Some(pattern), Vec::new());
    while let Some(range) = next.take() {
        let end = range.end.clone();
        let (kvs, next_key) = page(ctx, range, limit).await?;
        for kv in kvs {
            if glob::matches(pattern, &kv.key) {
                if found.len() == ctx.keys_max {
                    return Err(Frame::error(format!(
                        "ERR KEYS would return more than {} keys (the server's keys_max); use SCAN to iterate",
                        ctx.keys_max
                    )));
                }
                found.push(Frame::bulk(kv.key));
            }
        }
        next = next_key.map(|start| KeyRange { start, end });
    }
    Ok(Frame::Array(found))
}

async fn scan_page(ctx: &ExecContext, scan: ScanRequest) -> Reply {
    let done = |keys: Vec<Frame>| Frame::Array(vec![Frame::bulk("0"), Frame::Array(keys)]);
    let Some(range) = pattern_range(scan.pattern.as_deref(), scan.cursor.unwrap_or_default()) else {
        return Ok(done(vec![]));
    };
    let limit = scan.count.min(ctx.backend.limits().max_range_limit);
    let (kvs, next_key) = page(ctx, range, limit).await?;
    let mut keys = Vec::new();
    for kv in kvs {
        if scan.pattern.as_ref().is_some_and(|p| !glob::matches(p, &kv.key)) {
            continue;
        }
        if let Some(wanted) = &scan.type_filter {
            // A non-empty value is a string; an empty one may be a collection: ask its kind.
            let kind = if kv.value.is_empty() { kind(ctx, &kv.key).await? } else { "string".into() };
            if !wanted.eq_ignore_ascii_case(kind.as_bytes()) {
                continue;
            }
        }
        keys.push(Frame::bulk(kv.key));
    }
    Ok(match next_key {
        None => done(keys),
        Some(next) => Frame::Array(vec![Frame::bulk(cursor::encode(&next)), Frame::Array(keys)]),
    })
}

async fn dbsize(ctx: &ExecContext) -> Reply {
    let limit = ctx.backend.limits().max_range_limit;
    let mut count = 0i64;
    let mut next = Some(KeyRange::from(Vec::new()));
    while let Some(range) = next.take() {
        let (kvs, next_key) = page(ctx, range, limit).await?;
        count += kvs.len() as i64;
        next = next_key.map(KeyRange::from);
    }
    Ok(Frame::Integer(count))
}

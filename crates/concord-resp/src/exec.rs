//! Data commands mapped onto `concord_kv`: what `SET k v NX GET` means in commands and queries.
//!
//! | Redis                         | concord-kv                                                        |
//! |-------------------------------|-------------------------------------------------------------------|
//! | `GET k`                       | `Query::Get`                                                      |
//! | `SET k v [EX s]`              | `Write::Put` (with `ttl_ms`)                                      |
//! | `SET k v NX\|XX [GET]`        | `Write::Txn`: compare `Version(0)` (`=` for NX, `>` for XX); success `[Get?, Put]`, failure `[Get?]` |
//! | `SET k v EXAT <past>`         | as above with `Delete` instead of `Put` (Redis deletes the key)   |
//! | `SET k v KEEPTTL`             | read the key, then `Txn` guarded by its `ModRevision` (retried if it changed) |
//! | `GETSET k v`                  | `Txn` `[Get, Put]`                                                |
//! | `DEL k…`                      | `Write::Delete` (one key) or a `Txn` of deletes – atomic          |
//! | `MSET k v …`                  | a `Txn` of puts – atomic                                          |
//! | `INCR`/`DECR`/`INCRBY`/`DECRBY` | `Write::Increment` (keeps the key's TTL, like Redis)            |
//! | `MGET`, `EXISTS`              | `Query::GetMany` pages, one after the other (see below)           |
//! | `EXPIRE`…, `PERSIST`, `TYPE`, hashes … | `Write::Redis` / `Query::Redis`: the state machine's interpreter (`concord_kv::redis`) runs the command itself, atomically |
//! | `TTL`, `PTTL`                 | `Query::Get`: the key's `expires_at` minus the backend's clock    |
//! | `KEYS`, `SCAN`, `DBSIZE`      | `Query::Range` pages, narrowed to the pattern's literal prefix    |
//! | `CLUSTER COUNTKEYSINSLOT`, `GETKEYSINSLOT` | `Backend::count_keys_in_slot`, `Backend::keys_in_slot` (see `cluster`) |
//!
//! # Read-modify-write
//! KV writes cannot say "keep the deadline", so `SET … KEEPTTL` reads the key, then writes it
//! back guarded by its mod revision: if any
//! other write touched the key in between, the guard fails and the command starts over (at most
//! [`RMW_ATTEMPTS`] times, then `-TRYAGAIN`). The guard makes the outcome linearizable at the
//! write, whatever consistency the read used. These commands re-write the value, so they bump the
//! key's version and mod revision.
//!
//! # Consistency
//! Every backend call – each read and each write, including both halves of a read-modify-write –
//! carries the connection's [`RequestConsistency`] (its `CONSISTENCY` setting): the Raft read
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
//! # MULTI / EXEC
//! A Redis transaction becomes **one** KV transaction (`Txn` without compares), so it is atomic
//! and isolated like Redis's. That works for commands that are plain KV operations: `GET`, `SET`
//! (with EX/PX/EXAT/PXAT, without NX/XX/GET/KEEPTTL), `GETSET`, `MGET`, `MSET`, `DEL`, `EXISTS`,
//! `TTL`, `PTTL` ([`queueable`]). Anything else inside `MULTI` (e.g. `INCR`, which KV transactions
//! cannot express) is refused when queued, and `EXEC` then answers `EXECABORT`, as Redis does for
//! a command refused at queue time. `WATCH` is not supported.
//!
//! # Expired-but-present keys
//! Expiry goes through the log (see `concord_kv`), so a key may outlive its deadline until the
//! leader's expiry command is applied; until then `GET` still returns it and `TTL` reports 0.

use crate::backend::{Backend, BackendError, BoxFuture, RequestConsistency};
use crate::command::{ClusterRequest, Condition, Request, ScanRequest, SetExpiry, SetRequest};
use crate::frame::Frame;
use crate::{cursor, glob};
use bytes::Bytes;
use concord_core::Time;
use concord_kv::{
    Command, Compare, CompareOp, CompareTarget, KeyRange, KeyValue, Put, Query, RangeRequest, RedisCall,
    RedisExec, Response, Txn, TxnOp, Write,
};
use concord_raft::ReadConsistency;
use std::sync::Arc;

/// How often a read-modify-write command retries when the key keeps changing under it.
pub const RMW_ATTEMPTS: usize = 8;

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
    /// Reads then writes (KEEPTTL, EXPIRE, PERSIST): runs alone.
    ReadModifyWrite,
}

impl Request {
    pub fn access(&self) -> Access {
        match self {
            Request::Get(_)
            | Request::MGet(_)
            | Request::Exists(_)
            | Request::Ttl { .. }
            | Request::Keys(_)
            | Request::Scan(_)
            | Request::DbSize
            | Request::Cluster(ClusterRequest::CountKeysInSlot(_) | ClusterRequest::GetKeysInSlot { .. }) => {
                Access::Read
            }
            Request::Set(set) if set.expiry == SetExpiry::Keep => Access::ReadModifyWrite,
            Request::Set(_)
            | Request::GetSet { .. }
            | Request::Del(_)
            | Request::IncrBy { .. }
            | Request::MSet(_) => Access::Write,
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

/// Start executing a data request. **Writes are sent to the backend before this returns**, so
/// calling `start` for a pipeline of writes submits them in order; the returned future only waits
/// for the answers. Reads and read-modify-write commands start when the future is first polled.
pub fn start(request: Request, ctx: ExecContext) -> BoxFuture<Frame> {
    let now_ms = ctx.backend.now_ms();
    let command = |write: Write| Command::new(now_time(now_ms), write);
    match request {
        Request::Set(set) if set.expiry != SetExpiry::Keep => {
            let (write, shape) = set_command(&set, now_ms);
            reply(ctx.backend.write(command(write), ctx.consistency), move |r| shape.reply(r))
        }
        Request::GetSet { key, value } => {
            let txn = Txn {
                compares: vec![],
                success: vec![
                    TxnOp::Get { key: key.to_vec() },
                    TxnOp::Put(Put::new(key.to_vec(), value.to_vec())),
                ],
                failure: vec![],
            };
            reply(ctx.backend.write(command(Write::Txn(txn)), ctx.consistency), |r| match r {
                Response::Txn { responses, .. } => Ok(first_get(&responses)),
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
        Request::IncrBy { key, delta } => reply(
            ctx.backend.write(command(Write::Increment { key: key.to_vec(), delta }), ctx.consistency),
            |r| match r {
                Response::Increment { value, .. } => Ok(Frame::Integer(value)),
                other => Err(unexpected(&other)),
            },
        ),
        Request::MSet(pairs) => {
            let success = pairs.iter().map(|(k, v)| TxnOp::Put(Put::new(k.to_vec(), v.to_vec()))).collect();
            let write = Write::Txn(Txn { compares: vec![], success, failure: vec![] });
            reply(ctx.backend.write(command(write), ctx.consistency), |_| Ok(Frame::ok()))
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

fn first_get(responses: &[Response]) -> Frame {
    match responses.first() {
        Some(Response::Get(kv)) => Frame::bulk_or_null(kv.as_ref().map(|kv| kv.value.clone())),
        _ => Frame::Null,
    }
}

/// How to turn a SET's response into its reply.
struct SetShape {
    get: bool,
    reply_integer: bool,
}

impl SetShape {
    fn reply(&self, response: Response) -> Reply {
        let (succeeded, old) = match response {
            Response::Put { .. } | Response::Delete { .. } => (true, Frame::Null),
            Response::Txn { succeeded, responses, .. } => (succeeded, first_get(&responses)),
            other => return Err(unexpected(&other)),
        };
        Ok(self.outcome(succeeded, old))
    }

    fn outcome(&self, succeeded: bool, old: Frame) -> Frame {
        if self.get {
            old
        } else if self.reply_integer {
            Frame::Integer(i64::from(succeeded))
        } else if succeeded {
            Frame::ok()
        } else {
            Frame::Null
        }
    }
}

/// The KV write for a SET without KEEPTTL.
fn set_command(set: &SetRequest, now_ms: u64) -> (Write, SetShape) {
    let key = set.key.to_vec();
    let shape = SetShape { get: set.get, reply_integer: set.reply_integer };
    let write_op = match set.expiry {
        SetExpiry::Clear | SetExpiry::Keep => TxnOp::Put(Put::new(key.clone(), set.value.to_vec())),
        SetExpiry::AfterMs(ms) => TxnOp::Put(Put::new(key.clone(), set.value.to_vec()).with_ttl_ms(ms)),
        SetExpiry::AtUnixMs(at) if at > now_ms => {
            TxnOp::Put(Put::new(key.clone(), set.value.to_vec()).with_ttl_ms(at - now_ms))
        }
        // A deadline in the past: Redis sets and immediately expires the key, i.e. deletes it.
        SetExpiry::AtUnixMs(_) => TxnOp::Delete { key: key.clone() },
    };
    if set.condition.is_none() && !set.get {
        let write = match write_op {
            TxnOp::Put(put) => Write::Put(put),
            _ => Write::Delete { key },
        };
        return (write, shape);
    }
    let compares = set
        .condition
        .map(|c| {
            let op = if c == Condition::IfAbsent { CompareOp::Equal } else { CompareOp::Greater };
            vec![Compare::new(key.clone(), op, CompareTarget::Version(0))]
        })
        .unwrap_or_default();
    let get = || set.get.then(|| TxnOp::Get { key: key.clone() });
    let success = get().into_iter().chain([write_op]).collect();
    let failure = get().into_iter().collect();
    (Write::Txn(Txn { compares, success, failure }), shape)
}

/// Whether `request` may be queued inside MULTI (see the module docs).
pub fn queueable(request: &Request) -> bool {
    match request {
        Request::Get(_)
        | Request::MGet(_)
        | Request::MSet(_)
        | Request::Del(_)
        | Request::Exists(_)
        | Request::GetSet { .. }
        | Request::Ttl { .. } => true,
        Request::Set(set) => set.condition.is_none() && !set.get && set.expiry != SetExpiry::Keep,
        _ => false,
    }
}

/// How to read one queued command's reply from its slice of the transaction's responses.
enum Part {
    Get,
    /// SET or MSET: skip this many put responses.
    Ok(usize),
    Deleted(usize),
    Values(usize),
    Exists(usize),
    OldValue,
    Ttl {
        millis: bool,
    },
}

/// EXEC: the queued commands (all [`queueable`]) as one KV transaction, submitted before this
/// returns (like any write); the reply is the array of their replies.
pub fn start_transaction(queued: Vec<Request>, ctx: ExecContext) -> BoxFuture<Frame> {
    let now_ms = ctx.backend.now_ms();
    let mut ops = Vec::new();
    let mut parts = Vec::new();
    let get = |key: &Bytes| TxnOp::Get { key: key.to_vec() };
    for request in queued {
        match request {
            Request::Get(key) => {
                ops.push(get(&key));
                parts.push(Part::Get);
            }
            Request::Ttl { key, millis } => {
                ops.push(get(&key));
                parts.push(Part::Ttl { millis });
            }
            Request::MGet(keys) => {
                ops.extend(keys.iter().map(get));
                parts.push(Part::Values(keys.len()));
            }
            Request::Exists(keys) => {
                ops.extend(keys.iter().map(get));
                parts.push(Part::Exists(keys.len()));
            }
            Request::Set(set) => {
                ops.push(match set_command(&set, now_ms).0 {
                    Write::Put(put) => TxnOp::Put(put),
                    _ => TxnOp::Delete { key: set.key.to_vec() },
                });
                parts.push(Part::Ok(1));
            }
            Request::MSet(pairs) => {
                ops.extend(pairs.iter().map(|(k, v)| TxnOp::Put(Put::new(k.to_vec(), v.to_vec()))));
                parts.push(Part::Ok(pairs.len()));
            }
            Request::Del(keys) => {
                ops.extend(keys.iter().map(|k| TxnOp::Delete { key: k.to_vec() }));
                parts.push(Part::Deleted(keys.len()));
            }
            Request::GetSet { key, value } => {
                ops.push(get(&key));
                ops.push(TxnOp::Put(Put::new(key.to_vec(), value.to_vec())));
                parts.push(Part::OldValue);
            }
            other => {
                return Box::pin(std::future::ready(Frame::error(format!(
                    "ERR internal error: {other:?} cannot run inside MULTI"
                ))))
            }
        }
    }
    let txn = Txn { compares: vec![], success: ops, failure: vec![] };
    let command = Command::new(now_time(now_ms), Write::Txn(txn));
    reply(ctx.backend.write(command, ctx.consistency), move |response| {
        let Response::Txn { responses, .. } = response else { return Err(unexpected(&response)) };
        let mut responses = responses.iter();
        let value = |r: Option<&Response>| match r {
            Some(Response::Get(kv)) => kv.clone(),
            _ => None,
        };
        let mut replies = Vec::with_capacity(parts.len());
        for part in parts {
            replies.push(match part {
                Part::Get => Frame::bulk_or_null(value(responses.next()).map(|kv| kv.value)),
                Part::Ok(n) => {
                    responses.by_ref().take(n).for_each(drop);
                    Frame::ok()
                }
                Part::Deleted(n) => Frame::Integer(
                    responses
                        .by_ref()
                        .take(n)
                        .map(|r| if let Response::Delete { deleted, .. } = r { *deleted as i64 } else { 0 })
                        .sum(),
                ),
                Part::Values(n) => Frame::Array(
                    (0..n).map(|_| Frame::bulk_or_null(value(responses.next()).map(|kv| kv.value))).collect(),
                ),
                Part::Exists(n) => {
                    Frame::Integer((0..n).filter(|_| value(responses.next()).is_some()).count() as i64)
                }
                Part::OldValue => {
                    let old = Frame::bulk_or_null(value(responses.next()).map(|kv| kv.value));
                    responses.next(); // the put
                    old
                }
                Part::Ttl { millis } => Frame::Integer(ttl_reply(value(responses.next()), now_ms, millis)),
            });
        }
        Ok(Frame::Array(replies))
    })
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
        Request::MGet(keys) => {
            let values = get_many(&ctx, &keys, true).await?;
            Ok(Frame::Array(
                values.into_iter().map(|kv| Frame::bulk_or_null(kv.map(|kv| kv.value))).collect(),
            ))
        }
        Request::Exists(keys) => {
            let values = get_many(&ctx, &keys, false).await?;
            Ok(Frame::Integer(values.iter().filter(|kv| kv.is_some()).count() as i64))
        }
        Request::Ttl { key, millis } => {
            let kv = get(&ctx, &key, ctx.consistency).await?;
            Ok(Frame::Integer(ttl_reply(kv, ctx.backend.now_ms(), millis)))
        }
        Request::Set(set) => set_keep_ttl(&ctx, set).await,
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
    let exec = RedisExec::read(RedisCall::new(vec![b"type".to_vec(), key.to_vec()]));
    match ctx.backend.read(Query::Redis(exec), ctx.consistency).await.map_err(backend_error)? {
        Response::Redis { replies: Some(replies), .. } => Ok(
            !matches!(replies.first(), Some(concord_kv::Reply::Status(kind)) if kind != "string" && kind != "none"),
        ),
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

/// The read of a read-modify-write: the connection's consistency first, linearizable on retries
/// (a stale read would only make the guard fail again). Only the Raft read level changes: an
/// eventual backend keeps reading with the connection's R.
fn rmw_consistency(ctx: &ExecContext, attempt: usize) -> RequestConsistency {
    if attempt == 0 {
        ctx.consistency
    } else {
        RequestConsistency { read: ReadConsistency::Linearizable, ..ctx.consistency }
    }
}

fn too_much_contention(key: &[u8]) -> Frame {
    Frame::error(format!(
        "TRYAGAIN key {} changed {RMW_ATTEMPTS} times while this command tried to update it",
        String::from_utf8_lossy(key)
    ))
}

/// Write `txn` (guarded by a mod revision); whether its compares held, and its responses.
async fn guarded(ctx: &ExecContext, txn: Txn) -> Result<(bool, Vec<Response>), Frame> {
    let command = Command::new(now_time(ctx.backend.now_ms()), Write::Txn(txn));
    match ctx.backend.write(command, ctx.consistency).await.map_err(backend_error)? {
        Response::Txn { succeeded, responses, .. } => Ok((succeeded, responses)),
        other => Err(unexpected(&other)),
    }
}

fn remaining_ttl_ms(kv: &KeyValue, now_ms: u64) -> Option<u64> {
    deadline_ms(kv).map(|deadline| deadline.saturating_sub(now_ms).max(1))
}

async fn set_keep_ttl(ctx: &ExecContext, set: SetRequest) -> Reply {
    let key = set.key.to_vec();
    let shape = SetShape { get: set.get, reply_integer: set.reply_integer };
    for attempt in 0..RMW_ATTEMPTS {
        let current = get(ctx, &key, rmw_consistency(ctx, attempt)).await?;
        let now_ms = ctx.backend.now_ms();
        let allowed = match set.condition {
            None => true,
            Some(Condition::IfAbsent) => current.is_none(),
            Some(Condition::IfPresent) => current.is_some(),
        };
        let mut put = Put::new(key.clone(), set.value.to_vec());
        put.ttl_ms = current.as_ref().and_then(|kv| remaining_ttl_ms(kv, now_ms));
        let revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
        let txn = Txn {
            compares: vec![Compare::new(key.clone(), CompareOp::Equal, CompareTarget::ModRevision(revision))],
            success: if allowed { vec![TxnOp::Put(put)] } else { vec![] },
            failure: vec![],
        };
        if guarded(ctx, txn).await?.0 {
            let old = Frame::bulk_or_null(current.map(|kv| kv.value));
            return Ok(shape.outcome(allowed, old));
        }
    }
    Err(too_much_contention(&key))
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
    let strings = scan.type_filter.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(b"string"));
    let keys = kvs
        .into_iter()
        .filter(|kv| strings && scan.pattern.as_ref().is_none_or(|p| glob::matches(p, &kv.key)))
        .map(|kv| Frame::bulk(kv.key))
        .collect();
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

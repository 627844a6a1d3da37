//! The RESP front door of an eventual-mode node: `concord-resp` on top of an [`EventualHandle`].
//!
//! `concord-resp` speaks in `concord_kv` commands and queries (it was built for the strong mode);
//! this backend translates the ones a Dynamo store can serve and refuses the rest with a reason:
//!
//! | Redis | KV command | here |
//! |---|---|---|
//! | `GET k` | `Query::Get` | quorum read with the connection's R; a counter reads as its decimal value; siblings → `-CONFLICT` |
//! | `SET k v` | `Write::Put` | a write with the connection's W, without context (supersedes the coordinator's versions) |
//! | `DEL k` | `Write::Delete` | a read (R), then a tombstone with the context it read – so `DEL` can count, and deletes exactly what it saw |
//! | `INCR k`, `INCRBY k n` … | `Write::Increment` | a PN-counter increment; answers the coordinator's value |
//! | `MSET`, `DEL k1 k2` | `Write::Txn` of plain puts/deletes | key by key, in order – **not atomic** |
//! | `SET … EX`, `SET NX/XX`, `GETSET`, `EXPIRE`, `KEYS`, `SCAN`, `DBSIZE`, `MULTI` with compares | TTLs, `Cas`, `Txn` compares, `Query::Range` | `-ERR unsupported operation: … needs the strong mode` |
//! | `SADD`, `HSET`, `HGETALL`, `TYPE` … (the interpreter's commands) | `Write::Redis`, `Query::Redis` | sets and hashes as CRDTs, the rest refused with the reason: see [`super::redis`] |
//!
//! `CONSISTENCY ONE|QUORUM|ALL|R r W w` sets the R and W this connection's requests carry
//! (`concord_resp::RequestConsistency`); `INFO` has a `# Dynamo` section.
//!
//! Every request is submitted to the node when the front door calls the backend – `write` and
//! `read` alike – not when its answer is first awaited: a pipeline's requests reach the node in
//! the order they were sent, and reads whose answers are awaited one after the other still travel
//! together.

use super::{EventualHandle, Found};
use crate::front::{self, ClientError};
use concord_dynamo::{DynamoRequest, DynamoResponse};
use concord_kv::{Command, KeyValue, KvError, KvLimits, Query, Response, TxnOp, Write};
use concord_resp::{Backend, BackendError, BoxFuture, ConsistencyModel, RequestConsistency};
use std::time::Instant;

/// A [`Backend`] over an eventual-mode node.
pub struct EventualBackend {
    handle: EventualHandle,
}

impl EventualBackend {
    pub fn new(handle: EventualHandle) -> EventualBackend {
        EventualBackend { handle }
    }
}

pub(crate) fn backend_error(e: ClientError) -> BackendError {
    front::resp::backend_error(e, |_| {
        BackendError::Unavailable("there is no leader in the eventual mode".into())
    })
}

/// A string write (`SET`, `MSET`, `INCR`…) on a key of another kind. The Dynamo store keeps the
/// kind of a key's first write, even once emptied, and refuses a write of another kind rather
/// than merge over it (see `concord_dynamo`'s data types): replacing a set with a value would
/// drop the members other replicas accepted concurrently, which no merge could bring back.
///
/// * `INCR` on a set or hash is Redis's `WRONGTYPE`: answered as `NotAnInteger`, which the front
///   door turns into `WRONGTYPE` once `TYPE` says the key is a collection (as in the strong mode).
/// * What Redis would do and this mode cannot – `SET` replacing a set, hash or counter, `INCR`
///   parsing a string a `SET` wrote – is refused with the reason.
fn kind_clash(command: &str, key: &str, e: ClientError) -> BackendError {
    let held = match &e {
        ClientError::Rejected(why) => why.split(" holds a ").nth(1).and_then(|rest| rest.split(',').next()),
        _ => None,
    };
    match (command, held) {
        ("INCR", Some("set" | "hash")) => {
            BackendError::Kv(KvError::NotAnInteger { key: key.into(), value: format!("a {}", held.unwrap()) })
        }
        ("INCR", Some(_)) => BackendError::Kv(KvError::Unsupported(
            "INCR of a key SET wrote: in the eventual mode a counter is a PN-counter from its first INCR, and a \
             value SET wrote cannot become one without losing concurrent writes; DEL it first, or use the \
             strong mode"
                .into(),
        )),
        (_, Some(held)) => BackendError::Kv(KvError::Unsupported(format!(
            "{command} of a key holding a {}: in the eventual mode a key keeps the data type of its first write, \
             even once emptied, since replacing it would drop what other replicas accepted concurrently; use \
             the strong mode",
            if held == "counter" { "counter (INCR)" } else { held }
        ))),
        (_, None) => backend_error(e),
    }
}

fn unsupported(what: &str) -> BackendError {
    BackendError::Kv(KvError::Unsupported(format!(
        "{what} needs the strong mode (a Dynamo store has no single order of writes to compare against); \
         this node runs the eventual mode"
    )))
}

/// Keys are text in the Dynamo store (they are hashed onto the ring and named in hints).
fn text_key(key: &[u8]) -> Result<String, BackendError> {
    String::from_utf8(key.to_vec()).map_err(|_| {
        BackendError::Kv(KvError::Unsupported("keys must be UTF-8 text in the eventual mode".into()))
    })
}

/// A read's answer as the single value Redis expects.
fn one_value(key: &str, found: Found) -> Result<Option<Vec<u8>>, BackendError> {
    if found.collection.is_some() {
        // A set or hash reads as the empty value, as a collection's key does in the strong mode:
        // the front door then asks `TYPE` and answers `GET` with WRONGTYPE.
        return Ok(Some(Vec::new()));
    }
    if let Some(counter) = found.counter {
        return Ok(Some(counter.to_string().into_bytes()));
    }
    match found.values.len() {
        0 => Ok(None),
        1 => Ok(found.values.into_iter().next()),
        n => Err(BackendError::Conflict(format!(
            "{key:?} has {n} concurrent values (siblings); read them with HTTP GET /v1/kv/{key}, or SET the key to resolve them"
        ))),
    }
}

/// The `result` label of a request's metrics (as `ClientError::label_of` for the strong mode).
fn label<T>(r: &Result<T, BackendError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(BackendError::Timeout) => "timeout",
        Err(BackendError::Unknown(_)) => "unknown",
        Err(BackendError::Rejected(_)) => "rejected",
        Err(BackendError::NoSpace(_)) => "no_space",
        Err(BackendError::Kv(_)) | Err(BackendError::Conflict(_)) => "invalid",
        Err(BackendError::Unavailable(_)) | Err(BackendError::NotLeader { .. }) => "unavailable",
        // Not produced by the eventual mode, which is not sharded.
        Err(BackendError::Moved { .. })
        | Err(BackendError::Moving { .. })
        | Err(BackendError::ClusterDown(_)) => "unavailable",
    }
}

/// A key-value as `concord-resp` expects it. Dynamo has no revisions: they are 0.
fn key_value(key: &[u8], value: Vec<u8>) -> KeyValue {
    KeyValue { key: key.to_vec(), value, create_revision: 0, mod_revision: 0, version: 0, expires_at: None }
}

/// Start one write now – submitted to the node before this returns, so that writes pipelined on a
/// connection reach the node in order – and return the future of its answer.
///
/// A `DEL` submits its read now and its tombstone when the read answers, with the context the read
/// returned: a `SET` pipelined after the `DEL` may then reach the node first, but the tombstone
/// replaces only the versions the read saw, so the later value survives (as in Redis).
fn begin(
    handle: &EventualHandle,
    write: Write,
    consistency: RequestConsistency,
) -> BoxFuture<Result<Response, BackendError>> {
    let (r, w) = (consistency.r, consistency.w);
    match write {
        Write::Put(put) if put.ttl_ms.is_some() => fail(unsupported("a TTL (SET … EX/PX, EXPIRE)")),
        Write::Redis(exec) => {
            let replies = super::redis::exec(handle, exec, consistency);
            Box::pin(async move { Ok(Response::Redis { revision: 0, replies: Some(replies.await?) }) })
        }
        Write::Put(put) => {
            let submitted = text_key(&put.key).map(|key| (key.clone(), handle.put(key, put.value, None, w)));
            Box::pin(async move {
                let (key, answer) = submitted?;
                answer.await.map_err(|e| kind_clash("SET", &key, e))?;
                Ok(Response::Put { revision: 0 })
            })
        }
        Write::Increment { key, delta } => {
            let submitted = text_key(&key).map(|key| (key.clone(), handle.increment(key, delta, w)));
            Box::pin(async move {
                let (key, answer) = submitted?;
                let value = answer.await.map_err(|e| kind_clash("INCR", &key, e))?;
                Ok(Response::Increment { value, revision: 0 })
            })
        }
        Write::Delete { key } => {
            let key = match text_key(&key) {
                Ok(key) => key,
                Err(e) => return fail(e),
            };
            let read = handle
                .check_quorum("r", r)
                .map(|r| handle.submit(DynamoRequest::Get { key: key.clone(), r }));
            let handle = handle.clone();
            Box::pin(async move {
                let context = match read.map_err(backend_error)?.await.map_err(backend_error)? {
                    DynamoResponse::Found { values, counter: None, .. } if values.is_empty() => {
                        return Ok(Response::Delete { revision: 0, deleted: 0 })
                    }
                    DynamoResponse::Found { context, .. } => context,
                    // A set or hash: remove what the read saw (an add it did not see survives, as
                    // for SREM and HDEL).
                    DynamoResponse::Members(members) if members.is_empty() => {
                        return Ok(Response::Delete { revision: 0, deleted: 0 })
                    }
                    DynamoResponse::Fields(fields) if fields.is_empty() => {
                        return Ok(Response::Delete { revision: 0, deleted: 0 })
                    }
                    DynamoResponse::Members(members) => {
                        let remove = DynamoRequest::SetRemove { key, members, w };
                        handle.submit(remove).await.map_err(backend_error)?;
                        return Ok(Response::Delete { revision: 0, deleted: 1 });
                    }
                    DynamoResponse::Fields(fields) => {
                        let fields = fields.into_iter().map(|(f, _)| f).collect();
                        handle
                            .submit(DynamoRequest::MapRemove { key, fields, w })
                            .await
                            .map_err(backend_error)?;
                        return Ok(Response::Delete { revision: 0, deleted: 1 });
                    }
                    other => {
                        return Err(BackendError::Unknown(format!("unexpected answer to a read: {other:?}")))
                    }
                };
                handle.delete(key, Some(context), w).await.map_err(backend_error)?;
                Ok(Response::Delete { revision: 0, deleted: 1 })
            })
        }
        // MSET and multi-key DEL: every key started now, in order; answered together. Not atomic.
        Write::Txn(txn) => {
            // EXPIRE arrives as a guarded re-put with a TTL: the TTL is what this mode lacks.
            let sets_a_ttl =
                |ops: &[TxnOp]| ops.iter().any(|op| matches!(op, TxnOp::Put(put) if put.ttl_ms.is_some()));
            if sets_a_ttl(&txn.success) || sets_a_ttl(&txn.failure) {
                return fail(unsupported("a TTL (SET … EX/PX, EXPIRE)"));
            }
            if !txn.compares.is_empty() || !txn.failure.is_empty() {
                return fail(unsupported("a transaction with conditions (WATCH, SET NX/XX, GETSET)"));
            }
            let mut started = Vec::with_capacity(txn.success.len());
            for op in txn.success {
                let write = match op {
                    TxnOp::Put(put) => Write::Put(put),
                    TxnOp::Delete { key } => Write::Delete { key },
                    TxnOp::Get { .. } | TxnOp::Range(_) | TxnOp::DeleteRange(_) => return fail(unsupported(
                        "a write that also reads (GETSET, SET … GET, MULTI with reads) or deletes a range",
                    )),
                };
                started.push(begin(handle, write, consistency));
            }
            Box::pin(async move {
                let mut responses = Vec::with_capacity(started.len());
                for answer in started {
                    responses.push(answer.await?);
                }
                Ok(Response::Txn { succeeded: true, revision: 0, responses })
            })
        }
        Write::Cas(cas) if cas.ttl_ms.is_some() => fail(unsupported("a TTL (SET … EX/PX, EXPIRE)")),
        Write::Cas(_) => fail(unsupported("a conditional write (SET NX/XX, GETSET, compare-and-set)")),
        Write::DeleteRange(_) => fail(unsupported("deleting a range of keys")),
        Write::Expire { .. } => fail(unsupported("expiry")),
    }
}

fn fail(e: BackendError) -> BoxFuture<Result<Response, BackendError>> {
    Box::pin(async move { Err(e) })
}

/// Quorum reads one `Query::GetMany` keeps in flight at once (`MGET`, `EXISTS`).
const GET_MANY_IN_FLIGHT: usize = 32;

/// `Query::GetMany` as the strong mode's store answers it – a prefix of `keys` up to
/// `max_range_bytes`, at most `max_range_limit` keys – from quorum reads, at most
/// [`GET_MANY_IN_FLIGHT`] at once. The first [`GET_MANY_IN_FLIGHT`] are submitted before this
/// returns (see [`Backend::read`] below); each later one when an earlier one has answered. The
/// first error, or the byte bound, drops the reads still in flight.
fn get_many(
    handle: &EventualHandle,
    keys: Vec<Vec<u8>>,
    r: Option<usize>,
) -> impl std::future::Future<Output = Result<Vec<Option<KeyValue>>, BackendError>> + Send + 'static {
    use futures::{StreamExt, TryStreamExt};
    let max_range_bytes = handle.limits().max_range_bytes;
    let valid = concord_kv::validate_query(&Query::GetMany { keys: keys.clone() }, handle.limits())
        .map_err(BackendError::Kv);
    let mut keys = keys.into_iter();
    let first: Vec<_> = match valid {
        Ok(()) => keys.by_ref().take(GET_MANY_IN_FLIGHT).map(|key| get_one(handle, key, r)).collect(),
        Err(_) => Vec::new(),
    };
    let handle = handle.clone();
    async move {
        valid?;
        let rest = futures::stream::iter(keys).map(move |key| get_one(&handle, key, r));
        let mut reads = futures::stream::iter(first).chain(rest).buffered(GET_MANY_IN_FLIGHT);
        let mut values = Vec::new();
        let mut bytes = 0usize;
        while let Some(kv) = reads.try_next().await? {
            let size = kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
            if !values.is_empty() && bytes.saturating_add(size) > max_range_bytes {
                break;
            }
            bytes += size;
            values.push(kv);
        }
        Ok(values)
    }
}

/// One key's quorum read, as `Query::Get` answers it: submitted before this returns.
fn get_one(
    handle: &EventualHandle,
    key: Vec<u8>,
    r: Option<usize>,
) -> impl std::future::Future<Output = Result<Option<KeyValue>, BackendError>> + Send + 'static {
    let submitted = text_key(&key).map(|text| (text.clone(), handle.get(text, r)));
    async move {
        let (text, read) = submitted?;
        let found = read.await.map_err(backend_error)?;
        one_value(&text, found).map(|v| v.map(|v| key_value(&key, v)))
    }
}

impl Backend for EventualBackend {
    fn write(
        &self,
        command: Command,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let handle = self.handle.clone();
        let start = Instant::now();
        let kind = front::resp::kind_of(&command.write);
        let answer = begin(&handle, command.write, consistency);
        Box::pin(async move {
            let r = answer.await;
            handle.metrics().request(kind, label(&r), start.elapsed());
            r
        })
    }

    /// The read is submitted before this returns, as [`Backend::write`]'s write is: the front door
    /// may await a pipeline's answers one after the other, and reads that were only sent when
    /// awaited would then run one at a time.
    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let handle = self.handle.clone();
        let start = Instant::now();
        let answer: BoxFuture<Result<Response, BackendError>> = match query {
            Query::Get { key } => {
                let read = get_one(&handle, key, consistency.r);
                Box::pin(async move { read.await.map(Response::Get) })
            }
            Query::GetMany { keys } => {
                let read = get_many(&handle, keys, consistency.r);
                Box::pin(async move { read.await.map(Response::Values) })
            }
            Query::Range(_) | Query::Export => fail(unsupported("listing keys (KEYS, SCAN, DBSIZE)")),
            Query::Redis(exec) => {
                let replies = super::redis::exec(&handle, exec, consistency);
                Box::pin(async move { Ok(Response::Redis { revision: 0, replies: Some(replies.await?) }) })
            }
            Query::Unsupported { reason } => fail(BackendError::Kv(KvError::Unsupported(reason))),
        };
        Box::pin(async move {
            let r = answer.await;
            handle.metrics().request("resp_read", label(&r), start.elapsed());
            r
        })
    }

    fn model(&self) -> ConsistencyModel {
        let c = self.handle.config();
        ConsistencyModel::Eventual { n: c.n, r: c.r, w: c.w }
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        let s = self.handle.status();
        let members = s.members.iter().map(|m| format!("{}={}", m.id, m.state)).collect::<Vec<_>>().join(",");
        let dynamo = vec![
            ("mode".to_string(), "eventual".to_string()),
            ("dynamo_node_id".to_string(), s.id.to_string()),
            ("dynamo_n".to_string(), s.n.to_string()),
            ("dynamo_r".to_string(), s.r.to_string()),
            ("dynamo_w".to_string(), s.w.to_string()),
            ("dynamo_members".to_string(), members),
            ("dynamo_keys".to_string(), s.keys.to_string()),
            ("dynamo_hints".to_string(), s.hints.to_string()),
            ("dynamo_writes_acknowledged".to_string(), s.writes_acknowledged.to_string()),
            ("dynamo_anti_entropy_exchanges".to_string(), s.anti_entropy_exchanges.to_string()),
            ("dynamo_anti_entropy_bytes_sent".to_string(), s.anti_entropy_bytes_sent.to_string()),
            ("wal_syncs".to_string(), s.wal_syncs.to_string()),
        ];
        vec![("Dynamo".to_string(), dynamo)]
    }

    fn now_ms(&self) -> u64 {
        front::resp::millis(self.handle.now())
    }

    /// Every node takes writes; each key lives on N of them: no master, no replicas in Redis's
    /// sense (see `concord_resp::ReplicationInfo`).
    fn replication(&self) -> concord_resp::ReplicationInfo {
        concord_resp::ReplicationInfo { model: "eventual", ..concord_resp::ReplicationInfo::standalone() }
    }

    fn limits(&self) -> KvLimits {
        self.handle.limits().clone()
    }
}

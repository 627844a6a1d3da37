//! [`KvStore`]: the state every replica holds, and how a command changes it.
//!
//! The state is three things, kept by an [`Engine`] (in memory, or in an embedded database on disk):
//! * the **revision** – the store's logical clock, bumped once per command that wrote at least one key;
//! * the **entries** – an ordered map from key to value and metadata (so range scans come out in order);
//! * the **deadline index** – `(expires_at, key)` for keys with a TTL, ordered by deadline, so that
//!   housekeeping finds the overdue keys without scanning everything. It is derived from the
//!   entries, maintained by the engine, and never stored in a snapshot.
//!
//! Applying a command is a pure function of (state, command): no clock (time arrives inside the
//! command), no randomness, no hash-map iteration order – whichever engine holds the bytes.

use crate::changes::{ChangeLog, Changes, Recording};
use crate::command::{
    Cas, Command, CompareOp, CompareTarget, ExpireKey, KeyRange, Query, RangeRequest, Txn, TxnOp, Write,
};
use crate::engine::{Engine, MemEngine};
use crate::error::{excerpt, KvError};
use crate::limits::{check_value, validate, validate_query, KvLimits};
use crate::response::{KeyValue, KvResult, PageBudget, RangePage, Response};
use crate::snapshot;
use concord_core::{StateMachine, StateMachineError, Time};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

/// One key's value and metadata, as stored (and as written into snapshots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
    pub expires_at: Option<Time>,
}

/// The replicated key-value state machine over an [`Engine`] (in memory by default). See the crate
/// docs for the semantics.
#[derive(Clone, Debug)]
pub struct KvStore<E: Engine = MemEngine> {
    limits: KvLimits,
    engine: E,
    /// The change feed, when someone caches this store's keys (see [`crate::changes`]).
    changes: Option<ChangeLog>,
}

/// Two stores are equal when their replicated state is: revision and entries. (`limits` is
/// configuration.)
impl PartialEq for KvStore {
    fn eq(&self, other: &Self) -> bool {
        self.engine == other.engine
    }
}

impl Eq for KvStore {}

impl Default for KvStore {
    fn default() -> KvStore {
        KvStore::new(KvLimits::default())
    }
}

impl KvStore {
    /// An empty in-memory store (revision 0) enforcing `limits`. Every replica of a group must use
    /// the same limits (see [`crate::limits`]).
    pub fn new(limits: KvLimits) -> KvStore {
        KvStore { limits, engine: MemEngine::default(), changes: None }
    }

    /// Every key and value in key order (for checkers and dashboards; clients use bounded ranges).
    pub fn iter(&self) -> impl Iterator<Item = KeyValue> + '_ {
        crate::engine::collect_entries(&self.engine).into_iter().map(|(key, entry)| key_value(&key, &entry))
    }
}

impl<E: Engine> KvStore<E> {
    /// A store over `engine`, which may already hold state (a store reopened from disk).
    pub fn with_engine(limits: KvLimits, engine: E) -> KvStore<E> {
        KvStore { limits, engine, changes: None }
    }

    /// Record which keys every applied command changes, keeping at most `limit` between two
    /// [`take_changes`](Self::take_changes) (see [`crate::changes`]).
    pub fn record_changes(&mut self, limit: usize) {
        self.changes = Some(ChangeLog::new(limit));
    }

    /// The keys changed since the last call (nothing when recording is off).
    pub fn take_changes(&mut self) -> Changes {
        self.changes.as_mut().map(ChangeLog::take).unwrap_or_default()
    }

    /// Run `f` on a write transaction over the engine, through the change log when it records.
    fn with_tx<T>(&mut self, now: Time, rev: u64, f: impl FnOnce(&mut crate::redis::Tx) -> T) -> T {
        match &mut self.changes {
            Some(log) => {
                f(&mut crate::redis::Tx::new(&mut Recording { inner: &mut self.engine, log }, now, rev))
            }
            None => f(&mut crate::redis::Tx::new(&mut self.engine, now, rev)),
        }
    }

    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// The revision of the last write (0: never written).
    pub fn revision(&self) -> u64 {
        self.engine.revision()
    }

    /// Number of keys present (including overdue ones not yet expired).
    pub fn len(&self) -> u64 {
        self.engine.len()
    }

    pub fn is_empty(&self) -> bool {
        self.engine.is_empty()
    }

    /// Number of keys with a TTL (including overdue ones not yet expired).
    pub fn expiring_len(&self) -> u64 {
        self.engine.deadlines_len()
    }

    /// The key's value and metadata, from applied state: a key whose deadline passed is still
    /// returned until an `Expire` for it is applied (see the crate docs for why).
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.engine.get(key).map(|entry| key_value(key, &entry))
    }

    /// Keys with a TTL, in deadline order: `(expires_at, key)`.
    pub fn deadlines(&self) -> Vec<(Time, Vec<u8>)> {
        let mut out = Vec::new();
        self.engine.scan_deadlines(&mut |at, key| out.push((at, key.to_vec())));
        out
    }

    /// Apply `command`: validate it, then run it. An error changes nothing.
    pub fn execute(&mut self, command: &Command) -> KvResult {
        self.execute_in(command, None)
    }

    /// [`execute`](Self::execute) in a state machine serving only `slots` (the sharded mode):
    /// scripts refuse keys of other slots (see [`crate::redis::script`]).
    pub fn execute_in(&mut self, command: &Command, slots: Option<&dyn crate::redis::Slots>) -> KvResult {
        validate(command, &self.limits)?;
        // Every key this command writes gets `rev` as its mod revision; `self.revision` only moves
        // to `rev` if something was written, so read-only or no-op commands leave it alone.
        // 2^64 writes will not happen in practice, but a (crafted) snapshot can claim it.
        let rev = self.revision().checked_add(1).ok_or(KvError::RevisionsExhausted)?;
        if let Some(log) = &mut self.changes {
            log.begin(rev);
        }
        let now = command.now;
        let (wrote, response) = match &command.write {
            Write::Put(put) => {
                self.put_at(&put.key, put.value.clone(), deadline(now, put.ttl_ms), rev);
                (true, Response::Put { revision: rev })
            }
            Write::Delete { key } => {
                let deleted = u64::from(self.remove(key));
                (deleted > 0, Response::Delete { revision: 0, deleted })
            }
            Write::DeleteRange(range) => {
                let deleted = self.remove_range(range);
                (deleted > 0, Response::Delete { revision: 0, deleted })
            }
            Write::Cas(cas) => self.cas(cas, now, rev),
            Write::Increment { key, delta } => self.increment(key, *delta, rev)?,
            Write::Txn(txn) => self.txn(txn, now, rev),
            Write::Expire { keys } => {
                let expired = self.expire(keys, now);
                (expired > 0, Response::Expire { revision: 0, expired })
            }
            Write::Redis(exec) => {
                let max_value_bytes = self.limits.max_value_bytes;
                let (wrote, replies) = match &mut self.changes {
                    Some(log) => {
                        let mut engine = Recording { inner: &mut self.engine, log };
                        crate::redis::exec_in(&mut engine, exec, now, rev, max_value_bytes, slots)
                    }
                    None => crate::redis::exec_in(&mut self.engine, exec, now, rev, max_value_bytes, slots),
                };
                // `FLUSHALL` says "everything" however few keys it removed, as Redis's tracking does.
                if let Some(log) = &mut self.changes {
                    let flush = |c: &crate::RedisCall| {
                        c.argv.first().is_some_and(|n| {
                            n.eq_ignore_ascii_case(b"flushall") || n.eq_ignore_ascii_case(b"flushdb")
                        })
                    };
                    if exec.calls.iter().any(flush) {
                        log.everything();
                    }
                }
                (wrote, Response::Redis { revision: 0, replies })
            }
        };
        if wrote {
            self.engine.set_revision(rev);
        }
        Ok(with_revision(response, self.revision()))
    }

    /// Answer a read-only query.
    pub fn read(&self, query: &Query) -> KvResult {
        self.read_in(query, None)
    }

    /// [`read`](Self::read) in a state machine serving only `slots` (the sharded mode).
    pub fn read_in(&self, query: &Query, slots: Option<&dyn crate::redis::Slots>) -> KvResult {
        validate_query(query, &self.limits)?;
        match query {
            Query::Get { key } => Ok(Response::Get(self.get(key))),
            Query::Range(request) => Ok(Response::Range(self.page(request))),
            Query::GetMany { keys } => Ok(Response::Values(self.get_many(keys))),
            Query::Export => Ok(Response::Range(self.export())),
            Query::Redis(exec) => {
                let replies =
                    exec.calls.iter().map(|call| crate::redis::query_in(&self.engine, call, slots)).collect();
                Ok(Response::Redis { revision: self.revision(), replies: Some(replies) })
            }
            // validate_query refuses it already; kept explicit so the match needs no wildcard.
            Query::Unsupported { reason } => Err(KvError::Unsupported(reason.clone())),
        }
    }

    /// The `Expire` command a leader should propose at `now`: overdue keys, earliest deadline first,
    /// at most `max_expire_keys` of them. Empty if nothing is overdue.
    pub fn expiry_due(&self, now: Time) -> Option<Command> {
        let keys: Vec<ExpireKey> = self
            .engine
            .overdue(now, self.limits.max_expire_keys)
            .into_iter()
            .filter_map(|(_, key)| {
                self.engine.get(&key).map(|e| ExpireKey { key, mod_revision: e.mod_revision })
            })
            .collect();
        (!keys.is_empty()).then(|| Command::new(now, Write::Expire { keys }))
    }

    fn cas(&mut self, cas: &Cas, now: Time, rev: u64) -> (bool, Response) {
        if !self.holds(&cas.key, CompareOp::Equal, &cas.expect) {
            return (false, Response::Cas { succeeded: false, revision: 0, current: self.get(&cas.key) });
        }
        self.put_at(&cas.key, cas.value.clone(), deadline(now, cas.ttl_ms), rev);
        (true, Response::Cas { succeeded: true, revision: rev, current: self.get(&cas.key) })
    }

    fn increment(&mut self, key: &[u8], delta: i64, rev: u64) -> Result<(bool, Response), KvError> {
        let (current, expires_at) = match self.engine.get(key) {
            None => (0, None),
            Some(entry) => {
                (parse_i64(&entry.value).ok_or_else(|| not_an_integer(key, &entry.value))?, entry.expires_at)
            }
        };
        let value = current.checked_add(delta).ok_or_else(|| KvError::IncrementOverflow {
            key: excerpt(key),
            current,
            delta,
        })?;
        let bytes = value.to_string().into_bytes();
        // At most 20 bytes, but a (silly) configuration could make even that too large.
        check_value(&bytes, &self.limits)?;
        self.put_at(key, bytes, expires_at, rev);
        Ok((true, Response::Increment { value, revision: rev }))
    }

    /// Compares first, then one branch. `validate` already checked every op of both branches, and
    /// no txn op can fail on state, so a branch runs to completion: the txn is atomic without undo.
    fn txn(&mut self, txn: &Txn, now: Time, rev: u64) -> (bool, Response) {
        let succeeded = txn.compares.iter().all(|c| self.holds(&c.key, c.op, &c.target));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        let mut wrote = false;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                TxnOp::Get { key } => Response::Get(self.get(key)),
                TxnOp::Range(request) => Response::Range(self.page(request)),
                TxnOp::Put(put) => {
                    self.put_at(&put.key, put.value.clone(), deadline(now, put.ttl_ms), rev);
                    wrote = true;
                    Response::Put { revision: 0 }
                }
                TxnOp::Delete { key } => {
                    let deleted = u64::from(self.remove(key));
                    wrote |= deleted > 0;
                    Response::Delete { revision: 0, deleted }
                }
                TxnOp::DeleteRange(range) => {
                    let deleted = self.remove_range(range);
                    wrote |= deleted > 0;
                    Response::Delete { revision: 0, deleted }
                }
            };
            responses.push(response);
        }
        (wrote, Response::Txn { succeeded, revision: 0, responses })
    }

    /// Remove each named key that is still the version the leader saw (same mod revision) and whose
    /// deadline is not after the command's `now`. A key rewritten since the leader looked is skipped:
    /// its new value has a new TTL (or none), and a later housekeeping round will deal with it.
    fn expire(&mut self, keys: &[ExpireKey], now: Time) -> u64 {
        let mut expired = 0;
        for target in keys {
            let due = self.engine.get(&target.key).is_some_and(|e| {
                e.mod_revision == target.mod_revision && e.expires_at.is_some_and(|at| at <= now)
            });
            if due && self.remove(&target.key) {
                expired += 1;
            }
        }
        expired
    }

    /// Does `key`'s field named by `target` relate to `target`'s value as `op` says?
    fn holds(&self, key: &[u8], op: CompareOp, target: &CompareTarget) -> bool {
        let entry = self.engine.get(key);
        let entry = entry.as_ref();
        // An absent key: value None, version and revisions 0 (etcd's convention).
        let ordering = match target {
            CompareTarget::Value(expected) => entry.map(|e| e.value.as_slice()).cmp(&expected.as_deref()),
            CompareTarget::Version(v) => entry.map_or(0, |e| e.version).cmp(v),
            CompareTarget::CreateRevision(r) => entry.map_or(0, |e| e.create_revision).cmp(r),
            CompareTarget::ModRevision(r) => entry.map_or(0, |e| e.mod_revision).cmp(r),
        };
        match op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }

    /// Write `value` at revision `rev`, replacing the key's deadline with `expires_at` (and a
    /// collection stored under the key with its records, as Redis's `SET` does).
    fn put_at(&mut self, key: &[u8], value: Vec<u8>, expires_at: Option<Time>, rev: u64) {
        self.with_tx(Time(0), rev, |tx| tx.put_string(key, value, expires_at));
    }

    /// Remove `key` (a collection with its records); whether it existed.
    fn remove(&mut self, key: &[u8]) -> bool {
        // The revision is unused: removing writes nothing new.
        self.with_tx(Time(0), 0, |tx| tx.remove(key))
    }

    /// Remove every key in `range` (user keys only: collections' records go with their keys); how
    /// many there were.
    fn remove_range(&mut self, range: &KeyRange) -> u64 {
        let mut keys = Vec::new();
        let end = user_end(range.end.as_deref());
        self.engine.scan(&range.start, Some(end), &mut |key, _| {
            keys.push(key.to_vec());
            true
        });
        for key in &keys {
            self.remove(key);
        }
        keys.len() as u64
    }

    /// One page of `request`: at most `limit` keys and, past the first key, at most
    /// `max_range_bytes` of keys and values.
    /// Every key and value (see [`Query::Export`]).
    fn export(&self) -> RangePage {
        let mut page = RangePage::default();
        self.engine.scan(&[], None, &mut |key, entry| {
            page.kvs.push(key_value(key, entry));
            true
        });
        page
    }

    /// The values of a prefix of `keys` (see [`Query::GetMany`]): stops before the key whose value
    /// would take the answer past `max_range_bytes`, but always answers the first.
    fn get_many(&self, keys: &[Vec<u8>]) -> Vec<Option<KeyValue>> {
        let mut values = Vec::with_capacity(keys.len());
        let mut bytes = 0usize;
        for key in keys {
            let kv = self.get(key);
            let size = key.len() + kv.as_ref().map_or(0, |kv| kv.value.len());
            if !values.is_empty() && bytes.saturating_add(size) > self.limits.max_range_bytes {
                break;
            }
            bytes += size;
            values.push(kv);
        }
        values
    }

    fn page(&self, request: &RangeRequest) -> RangePage {
        let mut page = RangePage::default();
        let mut budget = PageBudget::new(request.limit, self.limits.max_range_bytes);
        let range = &request.range;
        self.engine.scan(&range.start, Some(user_end(range.end.as_deref())), &mut |key, entry| {
            if !budget.take(key.len() + entry.value.len()) {
                page.next_key = Some(key.to_vec());
                return false;
            }
            page.kvs.push(key_value(key, entry));
            true
        });
        page
    }

    /// Check the invariants that tie the state together; used by tests and after `restore`.
    /// Holds every entry in memory: for tests and small stores.
    pub fn check_invariants(&self) -> Result<(), StoreInvariantViolation> {
        let entries = crate::engine::collect_entries(&self.engine);
        check_entries(self.revision(), &entries).map_err(StoreInvariantViolation::Entry)?;
        let expected: Vec<(Time, Vec<u8>)> = {
            let mut d: Vec<_> =
                entries.iter().filter_map(|(k, e)| e.expires_at.map(|at| (at, k.clone()))).collect();
            d.sort();
            d
        };
        if expected != self.deadlines() {
            return Err(StoreInvariantViolation::DeadlineIndex);
        }
        if entries.len() as u64 != self.engine.len() {
            return Err(StoreInvariantViolation::KeyCount {
                counted: self.engine.len(),
                held: entries.len(),
            });
        }
        Ok(())
    }
}

/// A broken invariant of a [`KvStore`], as [`KvStore::check_invariants`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreInvariantViolation {
    /// An entry with impossible metadata (the message names the key and its revisions).
    #[error("{0}")]
    Entry(String),
    /// The TTL deadline index disagrees with the entries' deadlines.
    #[error("the deadline index does not match the entries' deadlines")]
    DeadlineIndex,
    /// The engine's key count disagrees with the keys it holds.
    #[error("the engine counts {counted} keys but holds {held}")]
    KeyCount { counted: u64, held: usize },
}

/// Invariants of stored entries: each key was created at a revision in `1..=mod_revision`, last
/// written at a revision `<= revision`, and written at least once.
pub(crate) fn check_entries(revision: u64, entries: &BTreeMap<Vec<u8>, Entry>) -> Result<(), String> {
    entries.iter().try_for_each(|(key, e)| check_entry(revision, key, e))
}

/// One stored entry's invariants (see [`check_entries`]).
pub(crate) fn check_entry(revision: u64, key: &[u8], e: &Entry) -> Result<(), String> {
    let ok = !key.is_empty()
        && e.version >= 1
        && 1 <= e.create_revision
        && e.create_revision <= e.mod_revision
        && e.mod_revision <= revision;
    if ok {
        return Ok(());
    }
    Err(format!(
        "key {} has impossible metadata: create revision {}, mod revision {}, version {} \
         (store revision {revision})",
        excerpt(key),
        e.create_revision,
        e.mod_revision,
        e.version
    ))
}

impl<E: Engine + 'static> StateMachine for KvStore<E> {
    type Command = Command;
    type Query = Query;
    type Output = KvResult;

    /// The log index is not needed: the store's own `revision` orders its writes, and Raft tracks
    /// what it applied.
    fn apply(&mut self, _index: u64, command: &Command) -> KvResult {
        self.execute(command)
    }

    fn query(&self, query: &Query) -> KvResult {
        self.read(query)
    }

    /// A durable engine exports its last checkpoint (see [`StateMachine::is_durable`]).
    fn snapshot(&self) -> Vec<u8> {
        match self.engine.at_checkpoint() {
            Some(checkpoint) => snapshot::encode_engine(&*checkpoint),
            None => snapshot::encode_engine(&self.engine),
        }
    }

    /// Decodes into a fresh state and swaps it in only if it is sound: on error `self` is unchanged.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateMachineError> {
        let (revision, entries) =
            snapshot::decode(bytes).map_err(|e| StateMachineError::Corrupt(e.to_string()))?;
        self.engine.replace_all(revision, entries);
        if let Some(log) = &mut self.changes {
            log.everything();
        }
        Ok(())
    }

    fn is_durable(&self) -> bool {
        self.engine.is_durable()
    }

    fn checkpoint(&mut self, sidecar: Vec<u8>) -> Result<(), StateMachineError> {
        self.engine.checkpoint(sidecar)
    }

    fn checkpoint_sidecar(&self) -> Option<Vec<u8>> {
        self.engine.checkpoint_sidecar()
    }

    fn export_len(&mut self) -> Result<Option<u64>, StateMachineError> {
        self.engine.export_len()
    }

    fn export_read(&mut self, offset: u64, max: usize) -> Result<Vec<u8>, StateMachineError> {
        self.engine.export_read(offset, max)
    }

    fn import_chunk(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StateMachineError> {
        self.engine.import_chunk(offset, bytes)
    }

    fn import_finish(&mut self) -> Result<(), StateMachineError> {
        self.engine.import_finish()?;
        if let Some(log) = &mut self.changes {
            log.everything();
        }
        Ok(())
    }

    fn housekeeping(&self, now: Time) -> Vec<Command> {
        self.expiry_due(now).into_iter().collect()
    }
}

/// `key`'s entry as clients see it (a copy; what reads and exports return).
pub fn key_value(key: &[u8], entry: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: entry.value.clone(),
        create_revision: entry.create_revision,
        mod_revision: entry.mod_revision,
        version: entry.version,
        expires_at: entry.expires_at,
    }
}

/// A user range's end, never past the collections' records (see [`crate::redis`]).
fn user_end(end: Option<&[u8]>) -> &[u8] {
    let internal = crate::redis::user_range_end();
    match end {
        Some(end) if end < internal => end,
        _ => internal,
    }
}

/// The absolute deadline of a TTL given at `now` (saturating: a huge TTL means "practically never").
fn deadline(now: Time, ttl_ms: Option<u64>) -> Option<Time> {
    ttl_ms.map(|ttl| now + Duration::from_millis(ttl))
}

/// A value as a decimal `i64` (what increment accepts): Redis's grammar, so that `INCR` refuses
/// what redis-server refuses – an optional `-`, then `0` or digits without a leading zero; no
/// `+`, no `-0`, no spaces (Rust's own parser takes `+1` and `007`; `concord difftest` found it).
pub(crate) fn parse_i64(value: &[u8]) -> Option<i64> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let canonical = match digits {
        [b'0'] => digits.len() == value.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn not_an_integer(key: &[u8], value: &[u8]) -> KvError {
    KvError::NotAnInteger { key: excerpt(key), value: excerpt(value) }
}

/// `response` with its `revision` fields (and those of nested txn responses) set to `revision`: the
/// store's revision after the whole command.
fn with_revision(response: Response, revision: u64) -> Response {
    match response {
        Response::Put { .. } => Response::Put { revision },
        Response::Delete { deleted, .. } => Response::Delete { revision, deleted },
        Response::Cas { succeeded, current, .. } => Response::Cas { succeeded, revision, current },
        Response::Increment { value, .. } => Response::Increment { value, revision },
        Response::Txn { succeeded, responses, .. } => Response::Txn {
            succeeded,
            revision,
            responses: responses.into_iter().map(|r| with_revision(r, revision)).collect(),
        },
        Response::Expire { expired, .. } => Response::Expire { revision, expired },
        Response::Redis { replies, .. } => Response::Redis { revision, replies },
        read @ (Response::Get(_) | Response::Range(_) | Response::Values(_)) => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_out_of_revisions_refuses_commands_instead_of_wrapping() {
        let mut store = KvStore::default();
        store.engine_mut().set_revision(u64::MAX);
        let out = store.execute(&Command::put(Time(0), "k", "v"));
        assert_eq!(out, Err(KvError::RevisionsExhausted));
        assert_eq!(
            out.unwrap_err().to_string(),
            "the store has used all 2^64-1 revisions and cannot accept another command"
        );
        assert!(store.is_empty());
        assert_eq!(store.read(&Query::get("k")), Ok(Response::Get(None)));
    }

    /// Increment reads a stored integer as redis-server does (`INCR` on "+1" or "01" is refused
    /// there; found by `concord difftest`).
    #[test]
    fn increment_reads_integers_in_redis_grammar() {
        for good in ["0", "-1", "42", "9223372036854775807", "-9223372036854775808"] {
            assert_eq!(parse_i64(good.as_bytes()), good.parse().ok(), "{good}");
        }
        for bad in ["", "-", "+1", "01", "-0", "-01", " 1", "1 ", "1.5", "9223372036854775808", "abc"] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad:?}");
        }
        let mut store = KvStore::default();
        store.execute(&Command::put(Time(0), "k", "+1")).unwrap();
        assert!(matches!(
            store.execute(&Command::increment(Time(0), "k", 1)),
            Err(KvError::NotAnInteger { .. })
        ));
    }
}

//! What clients ask: commands (replicated through the log) and queries (answered locally).
//!
//! A [`Command`] changes state, so Raft must order it in the log before any replica applies it. It
//! carries the proposer's clock (`now`) because the state machine itself has no clock: a TTL becomes
//! an absolute deadline `now + ttl_ms` *when the command is applied*, from a timestamp written into
//! the log, so every replica computes the same deadline.
//!
//! A [`Query`] only reads; Raft answers it from a replica that is known to be up to date (ReadIndex
//! or lease), without a log entry.
//!
//! # Keys and ranges
//! Keys and values are raw bytes, ordered bytewise (`b"a" < b"ab" < b"b"`). A [`KeyRange`] is
//! half-open, `[start, end)`, with `end: None` meaning "to the end of the key space"; an empty
//! `start` means "from the first key". Point operations refuse the empty key, so `b""` is
//! unambiguous as "the very beginning".

use crate::redis::RedisExec;
use concord_core::Time;
use serde::{Deserialize, Serialize};

/// A state-changing command, as it travels through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposer's clock when it proposed this command: TTL deadlines are `now + ttl_ms`, and an
    /// [`Write::Expire`] removes only keys whose deadline is `<= now`.
    pub now: Time,
    pub write: Write,
}

impl Command {
    pub fn new(now: Time, write: Write) -> Command {
        Command { now, write }
    }

    /// A put without TTL (the key never expires; a previous TTL is cleared).
    pub fn put(now: Time, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Command {
        Command::new(now, Write::Put(Put::new(key, value)))
    }

    /// A put whose key expires `ttl_ms` after `now`.
    pub fn put_with_ttl(
        now: Time,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl_ms: u64,
    ) -> Command {
        Command::new(now, Write::Put(Put::new(key, value).with_ttl_ms(ttl_ms)))
    }

    pub fn delete(now: Time, key: impl Into<Vec<u8>>) -> Command {
        Command::new(now, Write::Delete { key: key.into() })
    }

    pub fn delete_range(now: Time, range: KeyRange) -> Command {
        Command::new(now, Write::DeleteRange(range))
    }

    /// Compare-and-set: write `value` if the key's `expect` target equals the given one.
    pub fn cas(
        now: Time,
        key: impl Into<Vec<u8>>,
        expect: CompareTarget,
        value: impl Into<Vec<u8>>,
    ) -> Command {
        Command::new(now, Write::Cas(Cas { key: key.into(), expect, value: value.into(), ttl_ms: None }))
    }

    pub fn increment(now: Time, key: impl Into<Vec<u8>>, delta: i64) -> Command {
        Command::new(now, Write::Increment { key: key.into(), delta })
    }

    pub fn txn(now: Time, txn: Txn) -> Command {
        Command::new(now, Write::Txn(txn))
    }
}

/// The state change a [`Command`] asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Set a key's value (creating it if absent).
    Put(Put),
    /// Remove a key (no effect, and no new revision, if it is absent).
    Delete { key: Vec<u8> },
    /// Remove every key in the range.
    DeleteRange(KeyRange),
    /// Compare-and-set on one key.
    Cas(Cas),
    /// Add `delta` to a key holding a decimal integer (an absent key counts as 0). Keeps the key's
    /// TTL, as Redis `INCRBY` does.
    Increment { key: Vec<u8>, delta: i64 },
    /// etcd-style transaction: if every compare holds, run `success`, else `failure`, atomically.
    Txn(Txn),
    /// Remove keys whose TTL deadline passed – proposed by a leader's
    /// [`housekeeping`](concord_core::StateMachine::housekeeping), never by clients.
    Expire { keys: Vec<ExpireKey> },
    // New variants go last: commands cross the log and the peer wire by variant index (postcard).
    /// Redis commands on any kind of value, run by the state machine's interpreter
    /// ([`crate::redis`]) as one atomic step: one command, or a whole `MULTI … EXEC`.
    Redis(RedisExec),
}

impl Write {
    /// Every key this write names, in order: a transaction's compares then both branches, a Redis
    /// command's listed keys then its watched ones. Ranges and expiry name none (they are not
    /// routed by key).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Write::Put(put) => vec![&put.key],
            Write::Delete { key } | Write::Increment { key, .. } => vec![key],
            Write::Cas(cas) => vec![&cas.key],
            Write::Txn(txn) => txn
                .compares
                .iter()
                .map(|c| c.key.as_slice())
                .chain(txn.success.iter().chain(&txn.failure).filter_map(TxnOp::key))
                .collect(),
            Write::Redis(exec) => exec.keys(),
            Write::DeleteRange(_) | Write::Expire { .. } => vec![],
        }
    }

    /// The key a write is routed by (in a sharded cluster, every key of one write shares a slot).
    pub fn route_key(&self) -> Option<&[u8]> {
        self.keys().first().copied()
    }
}

impl TxnOp {
    /// The key a point operation names (`None` for ranges).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            TxnOp::Get { key } | TxnOp::Delete { key } => Some(key),
            TxnOp::Put(put) => Some(&put.key),
            TxnOp::Range(_) | TxnOp::DeleteRange(_) => None,
        }
    }
}

/// A put: the key, the new value and an optional time to live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Milliseconds after the command's `now` at which the key expires; `None`: never.
    pub ttl_ms: Option<u64>,
}

impl Put {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Put {
        Put { key: key.into(), value: value.into(), ttl_ms: None }
    }

    pub fn with_ttl_ms(mut self, ttl_ms: u64) -> Put {
        self.ttl_ms = Some(ttl_ms);
        self
    }
}

/// Compare-and-set: if the key's `expect` target equals the current one, put `value` (with
/// `ttl_ms`, as [`Put`] does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cas {
    pub key: Vec<u8>,
    pub expect: CompareTarget,
    pub value: Vec<u8>,
    pub ttl_ms: Option<u64>,
}

/// A transaction, like etcd's `Txn`: `If(compares).Then(success).Else(failure)`.
///
/// The operations of the chosen branch run in order, each seeing the effects of the ones before it;
/// all writes of the transaction share one new revision. Nothing of the other branch runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// Compares, success and failure operations together: what `max_txn_ops` bounds.
    pub fn op_count(&self) -> usize {
        self.compares.len() + self.success.len() + self.failure.len()
    }
}

/// One operation inside a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Get { key: Vec<u8> },
    Range(RangeRequest),
    Put(Put),
    Delete { key: Vec<u8> },
    DeleteRange(KeyRange),
}

/// One condition of a transaction: `key`'s `target` field compared with `op` against the value in
/// `target`. For example `Compare { key: b"k", op: Greater, target: Version(3) }` holds when `k`'s
/// version is greater than 3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Compare {
        Compare { key: key.into(), op, target }
    }
}

/// Which field of a key a comparison looks at, and the value to compare it with.
///
/// An absent key has value `None`, and version, create revision and mod revision 0 (as in etcd), so
/// `Version(0)` or `Value(None)` with `Equal` mean "the key does not exist". `None` orders before
/// every value; values order bytewise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Value(Option<Vec<u8>>),
    Version(u64),
    CreateRevision(u64),
    ModRevision(u64),
}

/// How the key's field relates to the target: `actual <op> target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// A key that a leader believes expired, and the mod revision it had then: if the key was written
/// since (a new value or a new TTL), the expiry no longer applies to it and is skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireKey {
    pub key: Vec<u8>,
    pub mod_revision: u64,
}

/// A half-open key range `[start, end)`; `end: None` is unbounded above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange { start: start.into(), end: Some(end.into()) }
    }

    /// Every key from `start` on.
    pub fn from(start: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange { start: start.into(), end: None }
    }

    /// Every key that starts with `prefix` (`prefix` empty: every key).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> KeyRange {
        let start = prefix.into();
        let end = prefix_end(&start);
        KeyRange { start, end }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (`prefix` empty or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// One page of an ordered scan: at most `limit` keys of `range`, in key order. To read the next
/// page, ask again with `range.start` set to the returned page's `next_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub range: KeyRange,
    pub limit: usize,
}

impl RangeRequest {
    pub fn new(range: KeyRange, limit: usize) -> RangeRequest {
        RangeRequest { range, limit }
    }
}

/// A read-only request, answered from a replica's applied state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Get {
        key: Vec<u8>,
    },
    Range(RangeRequest),
    /// A workload operation that cannot be expressed (see [`crate::workload`]); answered with
    /// [`crate::KvError::Unsupported`], so the client records a definite failure.
    Unsupported {
        reason: String,
    },
    /// Every key, in one read – one point in the log, so a consistent copy (backups). Not bounded by
    /// the range limits: the API offers it to admins only, and the answer is held in memory.
    Export,
    // New variants go last: queries cross the peer wire between nodes of different versions.
    /// Several keys at one point in the log (Redis's `MGET`, `EXISTS`): the values of a prefix of
    /// `keys`, in order, as [`crate::Response::Values`]. At most `max_range_limit` keys per query;
    /// the answer stops early once it holds `max_range_bytes` of keys and values (it always holds
    /// at least one key), and the caller asks again for the rest – the same bounds as a range page,
    /// so one query costs the node no more than one page.
    GetMany {
        keys: Vec<Vec<u8>>,
    },
    /// Read-only Redis commands (`HGET`, `TYPE`, …), run by the interpreter ([`crate::redis`])
    /// against the applied state; answered with [`crate::Response::Redis`]. `keys` says which keys
    /// they read (shard routing); `watch` must be empty.
    Redis(RedisExec),
}

impl Query {
    pub fn get(key: impl Into<Vec<u8>>) -> Query {
        Query::Get { key: key.into() }
    }

    /// The key a query is routed by: its first (range reads and exports have none: they see the
    /// store of the node they reach).
    pub fn route_key(&self) -> Option<&[u8]> {
        match self {
            Query::Get { key } => Some(key),
            Query::GetMany { keys } => keys.first().map(Vec::as_slice),
            Query::Redis(exec) => exec.keys.first().map(Vec::as_slice),
            Query::Range(_) | Query::Export | Query::Unsupported { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_the_last_key_with_the_prefix() {
        assert_eq!(KeyRange::prefix("ab"), KeyRange::new("ab", "ac"));
        assert_eq!(KeyRange::prefix(vec![b'a', 0xff]), KeyRange::new(vec![b'a', 0xff], "b"));
        assert_eq!(KeyRange::prefix(vec![0xff, 0xff]), KeyRange { start: vec![0xff, 0xff], end: None });
        assert_eq!(KeyRange::prefix(""), KeyRange::from(""));
    }

    #[test]
    fn txn_op_count_adds_all_three_lists() {
        let txn = Txn {
            compares: vec![Compare::new("a", CompareOp::Equal, CompareTarget::Version(0))],
            success: vec![TxnOp::Get { key: b"a".to_vec() }, TxnOp::Delete { key: b"a".to_vec() }],
            failure: vec![TxnOp::Put(Put::new("a", "1"))],
        };
        assert_eq!(txn.op_count(), 4);
    }
}

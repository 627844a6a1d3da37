//! What the store answers: a [`Response`] per command or query, or a [`crate::KvError`].

use concord_core::Time;
use serde::{Deserialize, Serialize};

/// A command's or query's output, as Raft hands it back to the client.
pub type KvResult = Result<Response, crate::KvError>;

/// A key with its value and etcd-style metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The store revision of the write that created this key (since it was last absent).
    pub create_revision: u64,
    /// The store revision of the last write to this key.
    pub mod_revision: u64,
    /// How many times the key was written since it was created (1 after the creating write).
    pub version: u64,
    /// When the key expires (proposer clock + TTL); `None`: never.
    pub expires_at: Option<Time>,
}

/// One page of a range scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePage {
    /// Keys in ascending order.
    pub kvs: Vec<KeyValue>,
    /// The first key of the range not returned – the `start` of the next page – or `None` when the
    /// range is exhausted.
    pub next_key: Option<Vec<u8>>,
}

/// A successful answer. `revision` is always the store's revision *after* the command; it only
/// grows when the command wrote at least one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Get(Option<KeyValue>),
    Range(RangePage),
    Put {
        revision: u64,
    },
    /// `deleted`: how many keys were removed (0 when none existed – then no new revision).
    Delete {
        revision: u64,
        deleted: u64,
    },
    /// `succeeded`: whether the comparison held and the value was written. `current`: the key after
    /// the command (the new value on success; on failure, what made the comparison fail).
    Cas {
        succeeded: bool,
        revision: u64,
        current: Option<KeyValue>,
    },
    /// The value after the increment.
    Increment {
        value: i64,
        revision: u64,
    },
    /// `succeeded`: whether the compares held (so `success` ran, else `failure`); `responses`: one
    /// per operation of the branch that ran, in order.
    Txn {
        succeeded: bool,
        revision: u64,
        responses: Vec<Response>,
    },
    /// `expired`: how many keys the expiry removed.
    Expire {
        revision: u64,
        expired: u64,
    },
    // New variants go last: snapshots and session tables store variant indices (postcard).
    /// The answer to [`crate::Query::GetMany`]: one entry per key asked, in order – possibly for
    /// only a prefix of them (see there).
    Values(Vec<Option<KeyValue>>),
    /// The interpreter's answer to [`crate::Write::Redis`] (one reply per call, in order) or
    /// [`crate::Query::Redis`] (one reply). `replies` is `None` when a watched key had changed and
    /// nothing ran.
    Redis {
        revision: u64,
        replies: Option<Vec<crate::redis::Reply>>,
    },
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::KvError;

    /// Raft's snapshots and session tables hold outputs encoded by postcard, which writes an enum
    /// variant as its index: a variant inserted in the middle renumbers the ones after it, and a
    /// snapshot written before reads back as different answers. (Found when a new `Values` variant
    /// placed after `Range` changed every pinned simulator trace.) These indexes are pinned.
    #[test]
    fn existing_variants_keep_their_wire_index() {
        let index = |bytes: Vec<u8>| bytes[0];
        let put = postcard::to_allocvec(&Response::Put { revision: 1 }).unwrap();
        let expire = postcard::to_allocvec(&Response::Expire { revision: 1, expired: 0 }).unwrap();
        assert_eq!((index(put), index(expire)), (2, 7));
        let unsupported = postcard::to_allocvec(&KvError::Unsupported("x".into())).unwrap();
        let exhausted = postcard::to_allocvec(&KvError::RevisionsExhausted).unwrap();
        assert_eq!((index(unsupported), index(exhausted)), (13, 12));
    }
}

/// The room left in a page of keys being filled: at most `limit` keys and `max_bytes` of keys and
/// values – but always the first key, which alone is bounded by the value limit, so that a page
/// never comes back empty while keys remain.
#[derive(Clone, Copy, Debug)]
pub struct PageBudget {
    limit: usize,
    max_bytes: usize,
    keys: usize,
    bytes: usize,
}

impl PageBudget {
    pub fn new(limit: usize, max_bytes: usize) -> PageBudget {
        PageBudget { limit, max_bytes, keys: 0, bytes: 0 }
    }

    /// Whether one more key of `size` bytes (key and value) fits; if so it is counted.
    pub fn take(&mut self, size: usize) -> bool {
        let full =
            self.keys >= self.limit || (self.keys > 0 && self.bytes.saturating_add(size) > self.max_bytes);
        if !full {
            self.keys += 1;
            self.bytes += size;
        }
        !full
    }
}

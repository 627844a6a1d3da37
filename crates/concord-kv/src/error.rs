//! Errors a client can be told: every one says what was wrong and what the limit is.
//!
//! A [`KvError`] is part of the replicated output of a command (`apply` returns
//! `Result<Response, KvError>`), so it must be deterministic and serialisable: it holds sizes and
//! short, escaped excerpts of the offending bytes – never a whole multi-megabyte value.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Why a command or query was refused. A refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    #[error("key is empty; a key must be at least 1 byte")]
    EmptyKey,

    #[error("key is {key_bytes} bytes; the limit is {max_key_bytes}")]
    KeyTooLarge { key_bytes: usize, max_key_bytes: usize },

    #[error("value is {value_bytes} bytes; the limit is {max_value_bytes}")]
    ValueTooLarge { value_bytes: usize, max_value_bytes: usize },

    #[error("transaction has {ops} compares and operations; the limit is {max_txn_ops}")]
    TooManyTxnOps { ops: usize, max_txn_ops: usize },

    #[error("command carries {command_bytes} bytes of keys and values; the limit is {max_command_bytes}")]
    CommandTooLarge { command_bytes: usize, max_command_bytes: usize },

    #[error("range limit is 0; a range returns at least 1 key per page (ranges are never unbounded)")]
    ZeroRangeLimit,

    #[error("range limit is {limit} keys; the limit is {max_range_limit}")]
    RangeLimitTooLarge { limit: usize, max_range_limit: usize },

    /// `start > end`: almost certainly swapped arguments, so we say so instead of answering "empty".
    #[error("range start {start} is after its end {end}")]
    InvalidRange { start: String, end: String },

    #[error("ttl_ms is 0; a TTL must be at least 1 ms (omit the TTL for a key that never expires)")]
    ZeroTtl,

    #[error("expire command names {keys} keys; the limit is {max_expire_keys}")]
    TooManyExpireKeys { keys: usize, max_expire_keys: usize },

    #[error("cannot increment key {key}: its value {value} is not a decimal 64-bit integer")]
    NotAnInteger { key: String, value: String },

    #[error("cannot increment key {key}: {current} + {delta} overflows a 64-bit signed integer")]
    IncrementOverflow { key: String, current: i64, delta: i64 },

    #[error("the store has used all 2^64-1 revisions and cannot accept another command")]
    RevisionsExhausted,

    /// A workload operation this store cannot express (e.g. `append`, or `write nil`).
    #[error("unsupported operation: {0}")]
    Unsupported(String),

    // New variants go last: Raft's session table stores outputs by variant index (postcard).
    #[error("one read asks for {keys} keys; the limit is {max_keys} (max_range_limit)")]
    TooManyKeys { keys: usize, max_keys: usize },

    /// Keys starting with bytes FF FF hold the records of hashes, lists, sets and sorted sets
    /// (see [`crate::redis`]); clients cannot name them.
    #[error("key {key} starts with bytes FF FF, which Concord reserves for its own records")]
    ReservedKey { key: String },
}

/// At most this many bytes of a key or value are quoted in an error message.
const EXCERPT_MAX_BYTES: usize = 48;

/// `bytes` as a short, quoted, escaped excerpt for an error message: `"abc\xff"`, or
/// `"aaaa…" (2000000 bytes)` when it is long.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(EXCERPT_MAX_BYTES)];
    let mut out = String::with_capacity(shown.len() + 24);
    out.push('"');
    let _ = write!(out, "{}", shown.escape_ascii());
    if shown.len() < bytes.len() {
        let _ = write!(out, "…\" ({} bytes)", bytes.len());
    } else {
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_size_and_the_limit() {
        let e = KvError::ValueTooLarge { value_bytes: 2_000_000, max_value_bytes: 1_048_576 };
        assert_eq!(e.to_string(), "value is 2000000 bytes; the limit is 1048576");
        let e = KvError::KeyTooLarge { key_bytes: 5000, max_key_bytes: 4096 };
        assert_eq!(e.to_string(), "key is 5000 bytes; the limit is 4096");
    }

    #[test]
    fn excerpts_escape_and_truncate() {
        assert_eq!(excerpt(b"ab\xff\n"), r#""ab\xff\n""#);
        let long = vec![b'a'; 100];
        assert_eq!(excerpt(&long), format!("\"{}…\" (100 bytes)", "a".repeat(48)));
        assert_eq!(excerpt(b""), "\"\"");
    }
}

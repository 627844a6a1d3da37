//! Size bounds, and the one function that checks a command or query against them.
//!
//! Every bound is checked twice:
//! * **before proposing** – a server calls [`validate`] when it builds a command, so a client hears
//!   `value is 2000000 bytes; the limit is 1048576` at once, and nothing oversized enters the log;
//! * **in `apply`** – a command may have been validated under an older, looser configuration (or by
//!   a buggy or malicious proposer). `apply` re-validates and returns the error as the command's
//!   output. That is deterministic *provided every replica runs with the same [`KvLimits`]*: the
//!   limits are cluster configuration, not a per-node knob (a replica with tighter limits would
//!   reject a write the others accepted, and diverge).
//!
//! Only static properties are checked here (sizes, counts, ranges). Errors that depend on state –
//! incrementing a non-integer – are found while applying, and also change nothing.

use crate::command::{Command, CompareTarget, KeyRange, Put, Query, RangeRequest, TxnOp, Write};
use crate::error::{excerpt, KvError};
use serde::{Deserialize, Serialize};

/// Configured upper bounds. The defaults follow etcd where it has one (1.5 MiB requests) rounded
/// to what a teaching cluster needs. In a config file, omitted fields take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KvLimits {
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most compares + success ops + failure ops in one transaction. Redis clients batch `MSET` and
    /// `DEL` over thousands of keys, and each becomes one atomic transaction, so this is not etcd's
    /// 128. What really bounds a transaction is `max_command_bytes` (every op carries at least a
    /// one-byte key); this count bounds what those bytes do not measure – each op's encoding in
    /// the log entry and its response, remembered in the Raft session table (tens of bytes each):
    /// 16 384 ops add at most about 1 MiB to a 3 MiB command.
    pub max_txn_ops: usize,
    /// Most keys one range page may ask for (`limit` of a [`RangeRequest`]).
    pub max_range_limit: usize,
    /// A range page stops early once it holds this many key + value bytes (it always holds at least
    /// one key, so a scan always makes progress). Bounds a reply: `max_range_limit` alone would
    /// allow 1000 × 1 MiB.
    pub max_range_bytes: usize,
    /// Most keys one `Expire` command removes: the batch bound of housekeeping.
    pub max_expire_keys: usize,
    /// Most key and value bytes one command carries in total – the bound on a log entry. Without it
    /// a transaction of `max_txn_ops` puts of `max_value_bytes` each (128 MiB by default) would be
    /// one entry that every replica must receive, persist and apply.
    pub max_command_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: 4096,
            max_value_bytes: 1024 * 1024,
            max_txn_ops: 16_384,
            max_range_limit: 1000,
            max_range_bytes: 4 * 1024 * 1024,
            max_expire_keys: 256,
            // Room for the largest CAS: a key, the expected value and the new value.
            max_command_bytes: 3 * 1024 * 1024,
        }
    }
}

impl KvLimits {
    /// Whether this configuration is usable: every bound at least 1 (a zero `max_range_limit` would
    /// refuse every scan, a zero `max_expire_keys` would silently stop expiry). A server checks this
    /// when it loads its configuration.
    pub fn check(&self) -> Result<(), ZeroLimit> {
        let fields = [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_txn_ops", self.max_txn_ops),
            ("max_range_limit", self.max_range_limit),
            ("max_range_bytes", self.max_range_bytes),
            ("max_expire_keys", self.max_expire_keys),
            ("max_command_bytes", self.max_command_bytes),
        ];
        match fields.iter().find(|(_, bound)| *bound == 0) {
            Some((name, _)) => Err(ZeroLimit { field: name }),
            None => Ok(()),
        }
    }
}

/// A [`KvLimits`] field set to 0 (see [`KvLimits::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("kv limit {field} is 0; every limit must be at least 1")]
pub struct ZeroLimit {
    /// The field's name, as written in the configuration.
    pub field: &'static str,
}

/// Check `command` against `limits`. `Ok(())` means the command is well formed; it may still fail
/// on the state it meets (a CAS whose comparison fails, an increment of a non-integer).
pub fn validate(command: &Command, limits: &KvLimits) -> Result<(), KvError> {
    // The specific errors first ("value is 2000000 bytes..."), then the total.
    check_parts(command, limits)?;
    let command_bytes = command_bytes(command);
    if command_bytes > limits.max_command_bytes {
        return Err(KvError::CommandTooLarge { command_bytes, max_command_bytes: limits.max_command_bytes });
    }
    Ok(())
}

/// Key and value bytes a command carries (keys, values, expected values, range bounds).
pub fn command_bytes(command: &Command) -> usize {
    fn target(t: &CompareTarget) -> usize {
        match t {
            CompareTarget::Value(Some(v)) => v.len(),
            _ => 0,
        }
    }
    fn range(r: &KeyRange) -> usize {
        r.start.len() + r.end.as_ref().map_or(0, Vec::len)
    }
    fn txn_op(op: &TxnOp) -> usize {
        match op {
            TxnOp::Get { key } | TxnOp::Delete { key } => key.len(),
            TxnOp::Range(request) => range(&request.range),
            TxnOp::Put(put) => put.key.len() + put.value.len(),
            TxnOp::DeleteRange(r) => range(r),
        }
    }
    match &command.write {
        Write::Put(put) => put.key.len() + put.value.len(),
        Write::Delete { key } | Write::Increment { key, .. } => key.len(),
        Write::DeleteRange(r) => range(r),
        Write::Cas(cas) => cas.key.len() + cas.value.len() + target(&cas.expect),
        Write::Txn(txn) => {
            let compares: usize = txn.compares.iter().map(|c| c.key.len() + target(&c.target)).sum();
            compares + txn.success.iter().chain(&txn.failure).map(txn_op).sum::<usize>()
        }
        Write::Expire { keys } => keys.iter().map(|k| k.key.len()).sum(),
        Write::Redis(exec) => exec.calls.iter().flat_map(|call| &call.argv).map(Vec::len).sum(),
    }
}

fn check_parts(command: &Command, limits: &KvLimits) -> Result<(), KvError> {
    match &command.write {
        Write::Put(put) => check_put(put, limits),
        Write::Delete { key } => check_key(key, limits),
        Write::DeleteRange(range) => check_range(range, limits),
        Write::Cas(cas) => {
            check_key(&cas.key, limits)?;
            check_value(&cas.value, limits)?;
            check_ttl(cas.ttl_ms)?;
            if let CompareTarget::Value(Some(expected)) = &cas.expect {
                check_value(expected, limits)?;
            }
            Ok(())
        }
        Write::Increment { key, .. } => check_key(key, limits),
        Write::Txn(txn) => {
            let ops = txn.op_count();
            if ops > limits.max_txn_ops {
                return Err(KvError::TooManyTxnOps { ops, max_txn_ops: limits.max_txn_ops });
            }
            for compare in &txn.compares {
                check_key(&compare.key, limits)?;
                if let CompareTarget::Value(Some(expected)) = &compare.target {
                    check_value(expected, limits)?;
                }
            }
            txn.success.iter().chain(&txn.failure).try_for_each(|op| check_txn_op(op, limits))
        }
        Write::Expire { keys } => {
            if keys.len() > limits.max_expire_keys {
                return Err(KvError::TooManyExpireKeys {
                    keys: keys.len(),
                    max_expire_keys: limits.max_expire_keys,
                });
            }
            keys.iter().try_for_each(|k| check_key(&k.key, limits))
        }
        Write::Redis(exec) => {
            if exec.calls.len() > limits.max_txn_ops {
                return Err(KvError::TooManyTxnOps {
                    ops: exec.calls.len(),
                    max_txn_ops: limits.max_txn_ops,
                });
            }
            exec.keys
                .iter()
                .chain(exec.watch.iter().map(|(key, _)| key))
                .try_for_each(|k| check_key(k, limits))?;
            // Every argument may become a stored member or value.
            exec.calls.iter().flat_map(|call| &call.argv).try_for_each(|arg| check_value(arg, limits))
        }
    }
}

/// Check `query` against `limits`.
pub fn validate_query(query: &Query, limits: &KvLimits) -> Result<(), KvError> {
    match query {
        Query::Get { key } => check_key(key, limits),
        Query::Range(request) => check_range_request(request, limits),
        Query::GetMany { keys } => {
            if keys.len() > limits.max_range_limit {
                return Err(KvError::TooManyKeys { keys: keys.len(), max_keys: limits.max_range_limit });
            }
            keys.iter().try_for_each(|key| check_key(key, limits))
        }
        Query::Export => Ok(()),
        Query::Redis(exec) => {
            exec.keys.iter().try_for_each(|k| check_key(k, limits))?;
            exec.calls.iter().flat_map(|call| &call.argv).try_for_each(|arg| check_value(arg, limits))
        }
        Query::Unsupported { reason } => Err(KvError::Unsupported(reason.clone())),
    }
}

fn check_txn_op(op: &TxnOp, limits: &KvLimits) -> Result<(), KvError> {
    match op {
        TxnOp::Get { key } | TxnOp::Delete { key } => check_key(key, limits),
        TxnOp::Range(request) => check_range_request(request, limits),
        TxnOp::Put(put) => check_put(put, limits),
        TxnOp::DeleteRange(range) => check_range(range, limits),
    }
}

fn check_put(put: &Put, limits: &KvLimits) -> Result<(), KvError> {
    check_key(&put.key, limits)?;
    check_value(&put.value, limits)?;
    check_ttl(put.ttl_ms)
}

pub(crate) fn check_key(key: &[u8], limits: &KvLimits) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if crate::redis::is_internal(key) {
        return Err(KvError::ReservedKey { key: crate::error::excerpt(key) });
    }
    check_key_size(key, limits)
}

fn check_key_size(key: &[u8], limits: &KvLimits) -> Result<(), KvError> {
    if key.len() > limits.max_key_bytes {
        return Err(KvError::KeyTooLarge { key_bytes: key.len(), max_key_bytes: limits.max_key_bytes });
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8], limits: &KvLimits) -> Result<(), KvError> {
    if value.len() > limits.max_value_bytes {
        return Err(KvError::ValueTooLarge {
            value_bytes: value.len(),
            max_value_bytes: limits.max_value_bytes,
        });
    }
    Ok(())
}

fn check_ttl(ttl_ms: Option<u64>) -> Result<(), KvError> {
    match ttl_ms {
        Some(0) => Err(KvError::ZeroTtl),
        _ => Ok(()),
    }
}

/// Range bounds may be empty (`start` empty: from the first key), but not oversized, and `start`
/// must not be after `end`.
fn check_range(range: &KeyRange, limits: &KvLimits) -> Result<(), KvError> {
    check_key_size(&range.start, limits)?;
    if let Some(end) = &range.end {
        check_key_size(end, limits)?;
        if range.start > *end {
            return Err(KvError::InvalidRange { start: excerpt(&range.start), end: excerpt(end) });
        }
    }
    Ok(())
}

fn check_range_request(request: &RangeRequest, limits: &KvLimits) -> Result<(), KvError> {
    check_range(&request.range, limits)?;
    if request.limit == 0 {
        return Err(KvError::ZeroRangeLimit);
    }
    if request.limit > limits.max_range_limit {
        return Err(KvError::RangeLimitTooLarge {
            limit: request.limit,
            max_range_limit: limits.max_range_limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Cas, Compare, CompareOp, ExpireKey, Txn};
    use concord_core::Time;

    const T: Time = Time(0);

    fn limits() -> KvLimits {
        KvLimits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_txn_ops: 3,
            max_range_limit: 10,
            ..KvLimits::default()
        }
    }

    fn check(write: Write) -> Result<(), KvError> {
        validate(&Command::new(T, write), &limits())
    }

    #[test]
    fn the_whole_command_is_bounded_too() {
        let limits = KvLimits { max_command_bytes: 40, ..limits() };
        // Each put is within the key and value limits (1 + 16 bytes); three of them are not.
        let put = || TxnOp::Put(Put::new("k", vec![b'v'; 16]));
        let two = Txn { success: vec![put(), put()], ..Txn::default() };
        assert_eq!(validate(&Command::txn(T, two.clone()), &limits), Ok(()));
        let mut three = two;
        three.failure.push(put());
        let err = validate(&Command::txn(T, three), &limits).unwrap_err();
        assert_eq!(err.to_string(), "command carries 51 bytes of keys and values; the limit is 40");
        // Counted: keys, values, expected values, range bounds.
        let cas = Command::cas(T, "key", CompareTarget::Value(Some(b"old".to_vec())), "new!");
        assert_eq!(command_bytes(&cas), 10);
        let range = TxnOp::Range(RangeRequest::new(KeyRange::new("a", "bc"), 1));
        let cmp = Compare::new("k", CompareOp::Equal, CompareTarget::Version(3));
        let txn = Txn {
            compares: vec![cmp],
            success: vec![range],
            failure: vec![TxnOp::Get { key: b"xy".to_vec() }],
        };
        assert_eq!(command_bytes(&Command::txn(T, txn)), 1 + 3 + 2);
        // The default leaves room for the largest CAS.
        let d = KvLimits::default();
        let biggest = Command::cas(
            T,
            vec![b'k'; d.max_key_bytes],
            CompareTarget::Value(Some(vec![0; d.max_value_bytes])),
            vec![1; d.max_value_bytes],
        );
        assert_eq!(validate(&biggest, &d), Ok(()));
    }

    #[test]
    fn configurations_with_a_zero_bound_are_refused() {
        assert_eq!(KvLimits::default().check(), Ok(()));
        let zero = KvLimits { max_expire_keys: 0, ..KvLimits::default() };
        assert_eq!(zero.check(), Err(ZeroLimit { field: "max_expire_keys" }));
        assert_eq!(
            zero.check().unwrap_err().to_string(),
            "kv limit max_expire_keys is 0; every limit must be at least 1"
        );
    }

    #[test]
    fn default_value_limit_is_one_mebibyte_and_says_so() {
        let big = Command::put(T, "k", vec![0u8; 2_000_000]);
        let err = validate(&big, &KvLimits::default()).unwrap_err();
        assert_eq!(err.to_string(), "value is 2000000 bytes; the limit is 1048576");
        assert_eq!(validate(&Command::put(T, "k", vec![0u8; 1_048_576]), &KvLimits::default()), Ok(()));
    }

    #[test]
    fn keys_must_be_nonempty_and_bounded() {
        assert_eq!(check(Write::Delete { key: vec![] }), Err(KvError::EmptyKey));
        assert_eq!(
            check(Write::Increment { key: vec![b'k'; 9], delta: 1 }),
            Err(KvError::KeyTooLarge { key_bytes: 9, max_key_bytes: 8 })
        );
        assert_eq!(check(Write::Increment { key: vec![b'k'; 8], delta: 1 }), Ok(()));
    }

    #[test]
    fn ttl_zero_is_refused() {
        assert_eq!(check(Write::Put(Put::new("k", "v").with_ttl_ms(0))), Err(KvError::ZeroTtl));
        assert_eq!(check(Write::Put(Put::new("k", "v").with_ttl_ms(1))), Ok(()));
    }

    #[test]
    fn cas_checks_key_value_expected_value_and_ttl() {
        let cas = |expect: CompareTarget, value: Vec<u8>, ttl_ms| {
            check(Write::Cas(Cas { key: b"k".to_vec(), expect, value, ttl_ms }))
        };
        assert_eq!(cas(CompareTarget::Value(None), vec![0; 16], None), Ok(()));
        assert_eq!(
            cas(CompareTarget::Value(None), vec![0; 17], None),
            Err(KvError::ValueTooLarge { value_bytes: 17, max_value_bytes: 16 })
        );
        assert_eq!(
            cas(CompareTarget::Value(Some(vec![0; 20])), vec![], None),
            Err(KvError::ValueTooLarge { value_bytes: 20, max_value_bytes: 16 })
        );
        assert_eq!(cas(CompareTarget::Version(0), vec![], Some(0)), Err(KvError::ZeroTtl));
    }

    #[test]
    fn txn_counts_compares_and_both_branches() {
        let get = || TxnOp::Get { key: b"a".to_vec() };
        let cmp = Compare::new("a", CompareOp::Equal, CompareTarget::Version(0));
        let txn = Txn { compares: vec![cmp.clone()], success: vec![get()], failure: vec![get()] };
        assert_eq!(check(Write::Txn(txn.clone())), Ok(()));
        let mut four = txn;
        four.failure.push(get());
        assert_eq!(check(Write::Txn(four)), Err(KvError::TooManyTxnOps { ops: 4, max_txn_ops: 3 }));
        // Ops inside either branch are checked too, even the branch that may not run.
        let bad = Txn { compares: vec![], success: vec![], failure: vec![TxnOp::Put(Put::new("", "v"))] };
        assert_eq!(check(Write::Txn(bad)), Err(KvError::EmptyKey));
        let bad_cmp = Txn {
            compares: vec![Compare::new("a", CompareOp::Equal, CompareTarget::Value(Some(vec![1; 17])))],
            ..Txn::default()
        };
        assert_eq!(
            check(Write::Txn(bad_cmp)),
            Err(KvError::ValueTooLarge { value_bytes: 17, max_value_bytes: 16 })
        );
    }

    #[test]
    fn ranges_are_bounded_and_ordered() {
        let q = |range: KeyRange, limit| {
            validate_query(&Query::Range(RangeRequest::new(range, limit)), &limits())
        };
        assert_eq!(q(KeyRange::from(""), 10), Ok(()));
        assert_eq!(q(KeyRange::new("a", "a"), 1), Ok(()));
        assert_eq!(q(KeyRange::from(""), 0), Err(KvError::ZeroRangeLimit));
        assert_eq!(
            q(KeyRange::from(""), 11),
            Err(KvError::RangeLimitTooLarge { limit: 11, max_range_limit: 10 })
        );
        let err = q(KeyRange::new("b", "a"), 1).unwrap_err();
        assert_eq!(err.to_string(), r#"range start "b" is after its end "a""#);
        assert_eq!(
            check(Write::DeleteRange(KeyRange::new("a", vec![b'z'; 9]))),
            Err(KvError::KeyTooLarge { key_bytes: 9, max_key_bytes: 8 })
        );
    }

    #[test]
    fn expire_batches_are_bounded() {
        let keys =
            |n: usize| (0..n).map(|i| ExpireKey { key: vec![b'k', i as u8], mod_revision: 1 }).collect();
        let small = KvLimits { max_expire_keys: 2, ..limits() };
        assert_eq!(validate(&Command::new(T, Write::Expire { keys: keys(2) }), &small), Ok(()));
        assert_eq!(
            validate(&Command::new(T, Write::Expire { keys: keys(3) }), &small),
            Err(KvError::TooManyExpireKeys { keys: 3, max_expire_keys: 2 })
        );
    }

    #[test]
    fn unsupported_queries_are_refused_with_their_reason() {
        let q = Query::Unsupported { reason: "append".into() };
        assert_eq!(validate_query(&q, &limits()).unwrap_err().to_string(), "unsupported operation: append");
    }
}

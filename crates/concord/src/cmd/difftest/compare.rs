//! How two replies are judged equal, and the differences from redis-server that are documented.
//!
//! The rule is byte-for-byte equality. A row of the command table (`table.rs`) may relax it only
//! for a reason that lies in Redis's own contract, never to hide a Concord bug:
//!
//! | rule            | used for                                        | why                                             |
//! |-----------------|-------------------------------------------------|-------------------------------------------------|
//! | [`Rule::Exact`] | almost everything                               | replies are deterministic                       |
//! | [`Rule::Unordered`] | SMEMBERS, SINTER, HKEYS, HVALS, KEYS, …     | Redis documents no order (hash-table order)     |
//! | [`Rule::UnorderedPairs`] | HGETALL                                | the same, for field/value pairs                 |
//! | [`Rule::Near`]  | TTL, PTTL, EXPIRETIME, PEXPIRETIME              | the two servers read their clocks moments apart |
//! | [`Rule::AtMost`] | DBSIZE                                        | redis-server counts a key whose deadline passed (`SET … EXAT <past>`) until its expiry cycle reclaims it, up to ~100 ms later; Concord never counts it |
//! | [`Rule::ExistingKey`] | RANDOMKEY                                  | random by definition, but it must name a key that exists (the harness asks `EXISTS` of the same server), and be nil exactly when the other's is |
//! | [`Rule::Shape`] | SRANDMEMBER, SPOP, HRANDFIELD, …     | the reply is random by definition               |
//! | [`Rule::ScanAll`] | SCAN, HSCAN, SSCAN, ZSCAN                     | cursors are opaque: a whole iteration's set of results is compared |
//! | [`Rule::Exec`]  | EXEC                                            | each queued command's reply by that command's rule |
//!
//! Errors are always compared exactly, under every rule. [`KNOWN`] lists the replies where Concord
//! deliberately answers differently; each entry says why. Keep both short. One more is checked by
//! structure rather than by text: [`NEGATIVE_ZERO`]. Inside `EXEC` each queued command's reply may
//! be excused by its own command's entry.

use super::resp::Value;

/// How replies to one command are compared.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Byte for byte.
    Exact,
    /// The same aggregate type with the same elements in any order (a multiset).
    Unordered,
    /// The same aggregate type with the same (even, odd) element pairs in any order.
    UnorderedPairs,
    /// Integers no further apart than this; anything else exactly.
    Near(i64),
    /// Integers, Concord's no greater than redis-server's.
    AtMost,
    /// The same types, aggregates of the same lengths; the contents of scalars are not compared
    /// (errors are).
    Shape,
    /// A key or nil (`RANDOMKEY`): both nil, or both a key – and the harness has checked, with
    /// `EXISTS` on the same server, that each side's key exists (see `exchange` in `mod.rs`).
    ExistingKey,
    /// A cursor iteration: the command is repeated with each returned cursor (at this argument
    /// index) until it is 0; the union of the results is compared as a set, of pairs if `pairs`.
    ScanAll { cursor_at: usize, pairs: bool },
    /// `EXEC`: an array whose element `i` is judged by rule `i` (the queued commands' rules).
    Exec(Vec<Rule>),
}

/// Whether `redis` and `concord` agree under `rule` (raw bytes are compared by the caller first;
/// this is asked only when they differ).
pub fn agree(rule: &Rule, redis: &Value, concord: &Value) -> bool {
    if let (Value::Error(_), _) | (_, Value::Error(_)) = (redis, concord) {
        return redis == concord;
    }
    match rule {
        Rule::Exact | Rule::ScanAll { .. } => redis == concord,
        Rule::Unordered => same_kind(redis, concord) && sorted(redis, 1) == sorted(concord, 1),
        Rule::UnorderedPairs => same_kind(redis, concord) && sorted(redis, 2) == sorted(concord, 2),
        Rule::Near(tolerance) => match (redis, concord) {
            (Value::Int(a), Value::Int(b)) => match (int(a), int(b)) {
                // Both sides must agree on "no TTL" (-1) and "no key" (-2) exactly.
                (Some(a), Some(b)) if a >= 0 && b >= 0 => (a - b).abs() <= *tolerance,
                _ => a == b,
            },
            _ => redis == concord,
        },
        Rule::AtMost => match (redis, concord) {
            (Value::Int(a), Value::Int(b)) => matches!((int(a), int(b)), (Some(a), Some(b)) if b <= a),
            _ => redis == concord,
        },
        Rule::Shape => same_shape(redis, concord),
        Rule::ExistingKey => matches!((redis, concord), (Value::Bulk(Some(_)), Value::Bulk(Some(_)))),
        Rule::Exec(rules) => match (redis.elements(), concord.elements()) {
            (Some(a), Some(b))
                if same_kind(redis, concord) && a.len() == b.len() && a.len() == rules.len() =>
            {
                a.iter().zip(b).zip(rules).all(|((a, b), rule)| a == b || agree(rule, a, b))
            }
            _ => redis == concord,
        },
    }
}

fn int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn same_kind(a: &Value, b: &Value) -> bool {
    a.kind() == b.kind()
}

/// An aggregate's elements in groups of `group`, sorted (their encoding is a total order).
fn sorted(value: &Value, group: usize) -> Option<Vec<String>> {
    let elements = value.elements()?;
    if elements.len() % group != 0 {
        return None;
    }
    let mut groups: Vec<String> = elements.chunks(group).map(|g| format!("{g:?}")).collect();
    groups.sort();
    Some(groups)
}

fn same_shape(a: &Value, b: &Value) -> bool {
    if !same_kind(a, b) {
        return false;
    }
    match (a, b) {
        (Value::Error(_), _) => a == b,
        _ => match (a.elements(), b.elements()) {
            (Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_shape(x, y)),
            _ => true,
        },
    }
}

/// A reply where Concord deliberately differs from redis-server: the command, a piece of each
/// side's raw reply, and why.
pub struct Known {
    /// The command name, lower case.
    pub command: &'static str,
    /// Text that redis-server's raw reply contains.
    pub redis: &'static str,
    /// Text that Concord's raw reply contains.
    pub concord: &'static str,
    pub why: &'static str,
}

/// The documented differences (see `docs/redis.md`, "Differential tests").
pub const KNOWN: &[Known] = &[
    Known {
        command: "object",
        redis: "$",
        concord: "$",
        why: "OBJECT ENCODING names Redis's in-memory encodings (listpack, intset, …); Concord stores \
              values in redb records and reports its own",
    },
    Known {
        command: "eval_ro",
        redis: "*",
        concord: "has no clock the replicas agree on",
        why: "TTL/PTTL inside EVAL_RO: a read-only script runs as a query on one replica, and queries \
              carry no time every replica agrees on (writes carry the proposer's); EVAL answers TTL",
    },
];

/// A stored `-0` score: redis-server's replies differ from Concord's only in scores it prints `-0`
/// and Concord `0` (checked by [`only_negative_zeros`], for sorted-set commands).
pub const NEGATIVE_ZERO: Known = Known {
    command: "z…",
    redis: "-0",
    concord: "0",
    why: "a stored -0 score: redis-server keeps the sign only in a sorted set of its skiplist \
          encoding (more than 128 members, a member over 64 bytes, or SORTed once), 0 in its \
          listpack; Concord stores 0 (as the listpack) and does not track Redis's encodings",
};

/// The documented difference that explains this mismatch, if any.
pub fn known(command: &[u8], redis: &[u8], concord: &[u8]) -> Option<&'static Known> {
    let name = String::from_utf8_lossy(command).to_ascii_lowercase();
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len().max(1)).any(|w| w == needle.as_bytes());
    if let Some(k) =
        KNOWN.iter().find(|k| k.command == name && contains(redis, k.redis) && contains(concord, k.concord))
    {
        return Some(k);
    }
    (name.starts_with('z') && only_negative_zeros(redis, concord)).then_some(&NEGATIVE_ZERO)
}

/// Whether two raw replies differ, and only where redis-server's has a `-0` (a bulk string or a
/// RESP3 double) and Concord's a `0` in its place.
fn only_negative_zeros(redis: &[u8], concord: &[u8]) -> bool {
    let lines = |raw: &[u8]| -> Vec<Vec<u8>> { raw.split(|&b| b == b'\n').map(|l| l.to_vec()).collect() };
    let (r, c) = (lines(redis), lines(concord));
    let (mut i, mut j, mut differed) = (0, 0, false);
    while i < r.len() && j < c.len() {
        if r[i] == c[j] {
            (i, j) = (i + 1, j + 1);
        } else if r[i] == b",-0\r" && c[j] == b",0\r" {
            (i, j, differed) = (i + 1, j + 1, true);
        } else if r[i] == b"$2\r"
            && c[j] == b"$1\r"
            && r.get(i + 1).is_some_and(|l| l == b"-0\r")
            && c.get(j + 1).is_some_and(|l| l == b"0\r")
        {
            (i, j, differed) = (i + 2, j + 2, true);
        } else {
            return false;
        }
    }
    differed && i == r.len() && j == c.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Some(s.as_bytes().to_vec()))
    }
    fn arr(v: Vec<Value>) -> Value {
        Value::Array(Some(v))
    }
    fn int(i: i64) -> Value {
        Value::Int(i.to_string().into_bytes())
    }

    #[test]
    fn unordered_compares_multisets_not_sequences() {
        let a = arr(vec![bulk("a"), bulk("b"), bulk("b")]);
        assert!(agree(&Rule::Unordered, &a, &arr(vec![bulk("b"), bulk("a"), bulk("b")])));
        assert!(!agree(&Rule::Unordered, &a, &arr(vec![bulk("a"), bulk("a"), bulk("b")])));
        assert!(!agree(&Rule::Unordered, &a, &Value::Set(vec![bulk("a"), bulk("b"), bulk("b")])));
        assert!(!agree(&Rule::Exact, &a, &arr(vec![bulk("b"), bulk("a"), bulk("b")])));
    }

    #[test]
    fn pairs_stay_pairs() {
        let a = arr(vec![bulk("f"), bulk("1"), bulk("g"), bulk("2")]);
        assert!(agree(&Rule::UnorderedPairs, &a, &arr(vec![bulk("g"), bulk("2"), bulk("f"), bulk("1")])));
        assert!(!agree(&Rule::UnorderedPairs, &a, &arr(vec![bulk("f"), bulk("2"), bulk("g"), bulk("1")])));
    }

    #[test]
    fn near_allows_clock_skew_but_not_a_missing_ttl() {
        assert!(agree(&Rule::Near(1), &int(100), &int(99)));
        assert!(!agree(&Rule::Near(1), &int(100), &int(98)));
        assert!(!agree(&Rule::Near(1000), &int(-1), &int(5)));
        assert!(!agree(&Rule::Near(1000), &int(-2), &int(-1)));
    }

    #[test]
    fn at_most_lets_redis_count_keys_it_has_not_reclaimed_yet() {
        assert!(agree(&Rule::ExistingKey, &bulk("k1"), &bulk("k2")));
        assert!(!agree(&Rule::ExistingKey, &bulk("k1"), &Value::Bulk(None)));
        assert!(!agree(&Rule::ExistingKey, &Value::Bulk(None), &bulk("k1")));
        assert!(!agree(&Rule::ExistingKey, &bulk("k1"), &Value::Error(b"ERR gone".to_vec())));
        assert!(agree(&Rule::AtMost, &int(5), &int(4)));
        assert!(!agree(&Rule::AtMost, &int(4), &int(5)));
    }

    #[test]
    fn shape_ignores_random_contents_but_not_types_lengths_or_errors() {
        assert!(agree(&Rule::Shape, &bulk("k1"), &bulk("k7")));
        assert!(!agree(&Rule::Shape, &bulk("k1"), &Value::Bulk(None)));
        assert!(!agree(&Rule::Shape, &arr(vec![bulk("a")]), &arr(vec![bulk("a"), bulk("b")])));
        let e = |s: &str| Value::Error(s.as_bytes().to_vec());
        assert!(!agree(&Rule::Shape, &e("ERR a"), &e("ERR b")));
    }

    #[test]
    fn a_negative_zero_score_is_excused_only_for_sorted_set_commands_and_only_that() {
        let redis = b"*4\r\n$2\r\n10\r\n$2\r\n10\r\n$1\r\n1\r\n$2\r\n-0\r\n";
        let concord = b"*4\r\n$2\r\n10\r\n$2\r\n10\r\n$1\r\n1\r\n$1\r\n0\r\n";
        assert!(known(b"ZSCAN", redis, concord).is_some_and(|k| k.why == NEGATIVE_ZERO.why));
        assert!(known(b"zscore", b",-0\r\n", b",0\r\n").is_some());
        assert!(known(b"GET", b"$2\r\n-0\r\n", b"$1\r\n0\r\n").is_none(), "not a sorted set");
        assert!(known(b"ZSCORE", b"$1\r\n0\r\n", b"$2\r\n-0\r\n").is_none(), "Concord's -0 is not excused");
        assert!(known(b"ZSCORE", b"$4\r\n-0.5\r\n", b"$3\r\n0.5\r\n").is_none());
        let other = b"*4\r\n$2\r\n10\r\n$1\r\n9\r\n$1\r\n1\r\n$1\r\n0\r\n";
        assert!(known(b"ZSCAN", redis, other).is_none(), "another difference besides");
        assert!(known(b"ZSCAN", redis, redis).is_none(), "no difference at all");
    }

    #[test]
    fn exec_judges_each_reply_by_its_own_rule() {
        let rules = vec![Rule::Exact, Rule::Near(1)];
        assert!(agree(
            &Rule::Exec(rules.clone()),
            &arr(vec![bulk("x"), int(10)]),
            &arr(vec![bulk("x"), int(9)])
        ));
        assert!(!agree(&Rule::Exec(rules), &arr(vec![bulk("x"), int(10)]), &arr(vec![bulk("y"), int(10)])));
    }
}

//! Every command, query and error of the store, through the `StateMachine` interface Raft uses.

use concord_core::{StateMachine, StateMachineError, Time};
use concord_kv::{
    Cas, Command, Compare, CompareOp, CompareTarget, ExpireKey, KeyRange, KeyValue, KvError, KvLimits,
    KvStore, Put, Query, RangePage, RangeRequest, Response, Txn, TxnOp, Write,
};

const T0: Time = Time(0);
const MS: u64 = 1_000_000;

fn apply(store: &mut KvStore, command: Command) -> Result<Response, KvError> {
    let out = store.apply(store.revision() + 1, &command);
    store.check_invariants().expect("invariants hold after every command");
    out
}

fn put(store: &mut KvStore, key: &str, value: &str) -> u64 {
    match apply(store, Command::put(T0, key, value)) {
        Ok(Response::Put { revision }) => revision,
        other => panic!("put {key} gave {other:?}"),
    }
}

fn kv(key: &str, value: &str, create_revision: u64, mod_revision: u64, version: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision,
        mod_revision,
        version,
        expires_at: None,
    }
}

fn get(store: &KvStore, key: &str) -> Option<KeyValue> {
    match store.query(&Query::get(key)) {
        Ok(Response::Get(kv)) => kv,
        other => panic!("get {key} gave {other:?}"),
    }
}

fn range(store: &KvStore, range: KeyRange, limit: usize) -> RangePage {
    match store.query(&Query::Range(RangeRequest::new(range, limit))) {
        Ok(Response::Range(page)) => page,
        other => panic!("range gave {other:?}"),
    }
}

fn keys(page: &RangePage) -> Vec<&str> {
    page.kvs.iter().map(|kv| std::str::from_utf8(&kv.key).unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// put, get, delete, delete-range: revisions and metadata

#[test]
fn put_creates_a_key_and_later_puts_bump_version_and_mod_revision() {
    let mut s = KvStore::default();
    assert_eq!(s.revision(), 0);
    assert_eq!(get(&s, "a"), None);
    assert_eq!(put(&mut s, "a", "1"), 1);
    assert_eq!(put(&mut s, "b", "x"), 2);
    assert_eq!(put(&mut s, "a", "2"), 3);
    assert_eq!(get(&s, "a"), Some(kv("a", "2", 1, 3, 2)));
    assert_eq!(get(&s, "b"), Some(kv("b", "x", 2, 2, 1)));
    assert_eq!(s.revision(), 3);
    assert_eq!(s.len(), 2);
}

#[test]
fn delete_removes_and_recreation_starts_a_new_life() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    assert_eq!(apply(&mut s, Command::delete(T0, "a")), Ok(Response::Delete { revision: 3, deleted: 1 }));
    assert_eq!(get(&s, "a"), None);
    // Deleting an absent key changes nothing, so the revision stays.
    assert_eq!(apply(&mut s, Command::delete(T0, "a")), Ok(Response::Delete { revision: 3, deleted: 0 }));
    assert_eq!(s.revision(), 3);
    // Re-created: version restarts at 1, create revision is the new one.
    assert_eq!(put(&mut s, "a", "3"), 4);
    assert_eq!(get(&s, "a"), Some(kv("a", "3", 4, 4, 1)));
}

#[test]
fn delete_range_removes_the_half_open_range_in_one_revision() {
    let mut s = KvStore::default();
    for k in ["a", "b", "bb", "c", "d"] {
        put(&mut s, k, "v");
    }
    assert_eq!(
        apply(&mut s, Command::delete_range(T0, KeyRange::new("b", "d"))),
        Ok(Response::Delete { revision: 6, deleted: 3 })
    );
    assert_eq!(keys(&range(&s, KeyRange::from(""), 10)), ["a", "d"]);
    assert_eq!(
        apply(&mut s, Command::delete_range(T0, KeyRange::new("b", "c"))),
        Ok(Response::Delete { revision: 6, deleted: 0 })
    );
    assert_eq!(
        apply(&mut s, Command::delete_range(T0, KeyRange::from(""))),
        Ok(Response::Delete { revision: 7, deleted: 2 })
    );
    assert!(s.is_empty());
}

// ---------------------------------------------------------------------------------------------
// compare-and-set

#[test]
fn cas_on_value_writes_only_when_the_value_matches() {
    let mut s = KvStore::default();
    let cas = |expected: Option<&str>, new: &str| {
        Command::cas(T0, "k", CompareTarget::Value(expected.map(|e| e.as_bytes().to_vec())), new)
    };
    // Expected absent, and absent: written.
    assert_eq!(
        apply(&mut s, cas(None, "1")),
        Ok(Response::Cas { succeeded: true, revision: 1, current: Some(kv("k", "1", 1, 1, 1)) })
    );
    // Expected absent, but present: refused, and the current value says why.
    assert_eq!(
        apply(&mut s, cas(None, "9")),
        Ok(Response::Cas { succeeded: false, revision: 1, current: Some(kv("k", "1", 1, 1, 1)) })
    );
    assert_eq!(
        apply(&mut s, cas(Some("2"), "3")),
        Ok(Response::Cas { succeeded: false, revision: 1, current: Some(kv("k", "1", 1, 1, 1)) })
    );
    assert_eq!(
        apply(&mut s, cas(Some("1"), "2")),
        Ok(Response::Cas { succeeded: true, revision: 2, current: Some(kv("k", "2", 1, 2, 2)) })
    );
    // Expected present, but absent: refused with current None.
    apply(&mut s, Command::delete(T0, "k")).unwrap();
    assert_eq!(
        apply(&mut s, cas(Some("2"), "3")),
        Ok(Response::Cas { succeeded: false, revision: 3, current: None })
    );
    assert_eq!(s.revision(), 3);
}

#[test]
fn cas_on_version_and_mod_revision() {
    let mut s = KvStore::default();
    put(&mut s, "other", "x"); // revision 1
    put(&mut s, "k", "a"); // revision 2: k version 1, mod revision 2
    let ok = |r: Result<Response, KvError>| matches!(r, Ok(Response::Cas { succeeded: true, .. }));
    assert!(!ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::Version(2), "b"))));
    assert!(ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::Version(1), "b"))));
    // Now version 2, mod revision 3.
    assert!(!ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::ModRevision(2), "c"))));
    assert!(ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::ModRevision(3), "c"))));
    assert_eq!(get(&s, "k"), Some(kv("k", "c", 2, 4, 3)));
    // Version 0 means "absent": create-if-absent.
    assert!(!ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::Version(0), "d"))));
    assert!(ok(apply(&mut s, Command::cas(T0, "new", CompareTarget::Version(0), "d"))));
    assert!(ok(apply(&mut s, Command::cas(T0, "k", CompareTarget::CreateRevision(2), "e"))));
    assert_eq!(s.revision(), 6);
}

#[test]
fn cas_defeats_aba_through_mod_revision() {
    let mut s = KvStore::default();
    put(&mut s, "k", "1"); // a reader sees value 1 at mod revision 1
    put(&mut s, "k", "2");
    put(&mut s, "k", "1"); // same value again, but a new mod revision
    let by_value = Command::cas(T0, "k", CompareTarget::Value(Some(b"1".to_vec())), "x");
    let by_revision = Command::cas(T0, "k", CompareTarget::ModRevision(1), "x");
    let mut copy = s.clone();
    assert!(matches!(apply(&mut copy, by_value), Ok(Response::Cas { succeeded: true, .. })));
    assert!(matches!(apply(&mut s, by_revision), Ok(Response::Cas { succeeded: false, .. })));
}

// ---------------------------------------------------------------------------------------------
// increment

#[test]
fn increment_starts_absent_keys_at_zero_and_adds() {
    let mut s = KvStore::default();
    assert_eq!(
        apply(&mut s, Command::increment(T0, "n", 5)),
        Ok(Response::Increment { value: 5, revision: 1 })
    );
    assert_eq!(
        apply(&mut s, Command::increment(T0, "n", -7)),
        Ok(Response::Increment { value: -2, revision: 2 })
    );
    assert_eq!(get(&s, "n"), Some(kv("n", "-2", 1, 2, 2)));
}

#[test]
fn increment_of_a_non_integer_is_a_clear_error_and_changes_nothing() {
    let mut s = KvStore::default();
    put(&mut s, "n", "12abc");
    let before = s.clone();
    let err = apply(&mut s, Command::increment(T0, "n", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot increment key "n": its value "12abc" is not a decimal 64-bit integer"#
    );
    put(&mut s, "bin", "\u{0}\u{1}");
    let err = apply(&mut s, Command::increment(T0, "bin", 1)).unwrap_err();
    assert_eq!(err, KvError::NotAnInteger { key: "\"bin\"".into(), value: r#""\x00\x01""#.into() });
    assert_eq!(get(&s, "n"), before.get(b"n"));
}

#[test]
fn increment_overflow_is_a_clear_error_and_changes_nothing() {
    let mut s = KvStore::default();
    put(&mut s, "n", &i64::MAX.to_string());
    let err = apply(&mut s, Command::increment(T0, "n", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot increment key "n": 9223372036854775807 + 1 overflows a 64-bit signed integer"#
    );
    put(&mut s, "m", &i64::MIN.to_string());
    assert!(matches!(
        apply(&mut s, Command::increment(T0, "m", -1)),
        Err(KvError::IncrementOverflow { current: i64::MIN, delta: -1, .. })
    ));
    assert_eq!(s.revision(), 2);
    assert_eq!(get(&s, "n").unwrap().value, i64::MAX.to_string().into_bytes());
}

#[test]
fn increment_keeps_the_keys_ttl() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(Time(10 * MS), "n", "1", 100)).unwrap();
    apply(&mut s, Command::increment(Time(50 * MS), "n", 1)).unwrap();
    let n = get(&s, "n").unwrap();
    assert_eq!((n.value.as_slice(), n.expires_at), (&b"2"[..], Some(Time(110 * MS))));
}

// ---------------------------------------------------------------------------------------------
// range scans

#[test]
fn ranges_are_ordered_half_open_and_paged() {
    let mut s = KvStore::default();
    for k in ["d", "a", "c", "b", "e", "ba"] {
        put(&mut s, k, "v");
    }
    assert_eq!(keys(&range(&s, KeyRange::new("b", "d"), 10)), ["b", "ba", "c"]);
    assert_eq!(keys(&range(&s, KeyRange::prefix("b"), 10)), ["b", "ba"]);
    let first = range(&s, KeyRange::from(""), 4);
    assert_eq!((keys(&first), first.next_key.clone()), (vec!["a", "b", "ba", "c"], Some(b"d".to_vec())));
    let second = range(&s, KeyRange::from(first.next_key.unwrap()), 4);
    assert_eq!((keys(&second), second.next_key.clone()), (vec!["d", "e"], None));
    // A page that ends exactly at the last key says there is nothing more.
    let exact = range(&s, KeyRange::new("a", "c"), 3);
    assert_eq!((keys(&exact), exact.next_key.clone()), (vec!["a", "b", "ba"], None));
    assert_eq!(range(&s, KeyRange::new("c", "c"), 5), RangePage::default());
}

#[test]
fn range_pages_stop_at_max_range_bytes_but_always_make_progress() {
    let limits = KvLimits { max_range_bytes: 10, ..KvLimits::default() };
    let mut s = KvStore::new(limits);
    put(&mut s, "a", "1234"); // 5 bytes
    put(&mut s, "b", "1234"); // 10 so far
    put(&mut s, "c", "1"); // would be 12
    put(&mut s, "d", "this value alone is over ten bytes");
    let page = range(&s, KeyRange::from(""), 100);
    assert_eq!((keys(&page), page.next_key.clone()), (vec!["a", "b"], Some(b"c".to_vec())));
    let page = range(&s, KeyRange::from("c"), 100);
    assert_eq!((keys(&page), page.next_key.clone()), (vec!["c"], Some(b"d".to_vec())));
    let page = range(&s, KeyRange::from("d"), 100);
    assert_eq!((keys(&page), page.next_key.clone()), (vec!["d"], None));
}

#[test]
fn range_and_get_queries_are_validated() {
    let s = KvStore::new(KvLimits { max_range_limit: 5, ..KvLimits::default() });
    let q = |r: KeyRange, limit| s.query(&Query::Range(RangeRequest::new(r, limit)));
    assert_eq!(q(KeyRange::from(""), 6), Err(KvError::RangeLimitTooLarge { limit: 6, max_range_limit: 5 }));
    assert_eq!(q(KeyRange::from(""), 0), Err(KvError::ZeroRangeLimit));
    assert!(matches!(q(KeyRange::new("z", "a"), 1), Err(KvError::InvalidRange { .. })));
    assert_eq!(s.query(&Query::get("")), Err(KvError::EmptyKey));
}

// ---------------------------------------------------------------------------------------------
// transactions

fn cmp(key: &str, op: CompareOp, target: CompareTarget) -> Compare {
    Compare::new(key, op, target)
}

fn val(v: &str) -> CompareTarget {
    CompareTarget::Value(Some(v.as_bytes().to_vec()))
}

#[test]
fn txn_runs_success_when_all_compares_hold() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    put(&mut s, "b", "2");
    let txn = Txn {
        compares: vec![
            cmp("a", CompareOp::Equal, val("1")),
            cmp("b", CompareOp::Greater, val("1")),
            cmp("c", CompareOp::Equal, CompareTarget::Version(0)),
        ],
        success: vec![
            TxnOp::Put(Put::new("c", "3")),
            TxnOp::Get { key: b"c".to_vec() }, // sees the put before it
            TxnOp::Delete { key: b"a".to_vec() },
            TxnOp::Put(Put::new("b", "22")),
            TxnOp::Range(RangeRequest::new(KeyRange::from(""), 10)),
        ],
        failure: vec![TxnOp::Put(Put::new("failed", "yes"))],
    };
    let out = apply(&mut s, Command::txn(T0, txn)).unwrap();
    let c = kv("c", "3", 3, 3, 1);
    let b = kv("b", "22", 2, 3, 2);
    assert_eq!(
        out,
        Response::Txn {
            succeeded: true,
            revision: 3,
            responses: vec![
                Response::Put { revision: 3 },
                Response::Get(Some(c.clone())),
                Response::Delete { revision: 3, deleted: 1 },
                Response::Put { revision: 3 },
                Response::Range(RangePage { kvs: vec![b, c], next_key: None }),
            ],
        }
    );
    // All writes of one transaction share one revision.
    assert_eq!(s.revision(), 3);
    assert_eq!(get(&s, "failed"), None);
}

#[test]
fn txn_failure_branch_runs_alone_and_an_empty_one_changes_nothing() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    let compares = vec![
        cmp("a", CompareOp::Equal, val("1")),                      // holds
        cmp("a", CompareOp::Equal, CompareTarget::ModRevision(7)), // does not
    ];
    let before = s.clone();
    let before_bytes = s.snapshot();
    let txn = Txn {
        compares: compares.clone(),
        success: vec![TxnOp::Put(Put::new("a", "2")), TxnOp::Delete { key: b"a".to_vec() }],
        failure: vec![],
    };
    assert_eq!(
        apply(&mut s, Command::txn(T0, txn)),
        Ok(Response::Txn { succeeded: false, revision: 1, responses: vec![] })
    );
    assert_eq!(s, before);
    assert_eq!(s.snapshot(), before_bytes);

    let txn = Txn {
        compares,
        success: vec![TxnOp::Put(Put::new("a", "2"))],
        failure: vec![TxnOp::Get { key: b"a".to_vec() }, TxnOp::Put(Put::new("why", "failed"))],
    };
    assert_eq!(
        apply(&mut s, Command::txn(T0, txn)),
        Ok(Response::Txn {
            succeeded: false,
            revision: 2,
            responses: vec![Response::Get(Some(kv("a", "1", 1, 1, 1))), Response::Put { revision: 2 }],
        })
    );
    assert_eq!(get(&s, "a"), Some(kv("a", "1", 1, 1, 1)));
}

#[test]
fn txn_compare_operators_on_every_target() {
    let mut s = KvStore::default();
    put(&mut s, "x", "m"); // rev 1
    put(&mut s, "x", "m"); // rev 2: version 2
    let holds = |s: &mut KvStore, c: Compare| {
        let txn = Txn { compares: vec![c], ..Txn::default() };
        match apply(s, Command::txn(T0, txn)) {
            Ok(Response::Txn { succeeded, .. }) => succeeded,
            other => panic!("{other:?}"),
        }
    };
    use CompareOp::*;
    assert!(holds(&mut s, cmp("x", Greater, val("l"))));
    assert!(holds(&mut s, cmp("x", Less, val("n"))));
    assert!(!holds(&mut s, cmp("x", Less, val("m"))));
    assert!(holds(&mut s, cmp("x", NotEqual, val("mm"))));
    assert!(holds(&mut s, cmp("x", Equal, CompareTarget::Version(2))));
    assert!(holds(&mut s, cmp("x", Greater, CompareTarget::Version(1))));
    assert!(holds(&mut s, cmp("x", Equal, CompareTarget::CreateRevision(1))));
    assert!(holds(&mut s, cmp("x", Less, CompareTarget::ModRevision(3))));
    // Absent key: value None (before every value), version and revisions 0.
    assert!(holds(&mut s, cmp("nope", Equal, CompareTarget::Value(None))));
    assert!(holds(&mut s, cmp("nope", Less, val(""))));
    assert!(holds(&mut s, cmp("nope", Equal, CompareTarget::ModRevision(0))));
    assert!(!holds(&mut s, cmp("x", Equal, CompareTarget::Value(None))));
    assert!(holds(&mut s, Compare::new("x", NotEqual, CompareTarget::Version(0))));
    // Read-only transactions never moved the revision.
    assert_eq!(s.revision(), 2);
}

#[test]
fn invalid_txn_is_refused_whole_even_if_only_the_other_branch_is_bad() {
    let mut s = KvStore::new(KvLimits { max_value_bytes: 4, ..KvLimits::default() });
    let txn = Txn {
        compares: vec![],
        success: vec![TxnOp::Put(Put::new("a", "ok"))],
        failure: vec![TxnOp::Put(Put::new("b", "too long"))],
    };
    assert_eq!(
        apply(&mut s, Command::txn(T0, txn)),
        Err(KvError::ValueTooLarge { value_bytes: 8, max_value_bytes: 4 })
    );
    assert!(s.is_empty());
    assert_eq!(s.revision(), 0);
}

// ---------------------------------------------------------------------------------------------
// TTL and expiry through the log

#[test]
fn ttl_put_records_an_absolute_deadline_from_the_proposers_clock() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(Time(5 * MS), "k", "v", 100)).unwrap();
    assert_eq!(get(&s, "k").unwrap().expires_at, Some(Time(105 * MS)));
    assert_eq!(s.deadlines(), vec![(Time(105 * MS), b"k".to_vec())]);
    // A put without TTL clears it.
    apply(&mut s, Command::put(Time(6 * MS), "k", "w")).unwrap();
    assert_eq!(get(&s, "k").unwrap().expires_at, None);
    assert_eq!(s.deadlines().len(), 0);
    assert!(s.housekeeping(Time(u64::MAX)).is_empty());
}

#[test]
fn housekeeping_proposes_expiry_and_applying_it_removes_the_key() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(T0, "short", "1", 10)).unwrap(); // rev 1, deadline 10ms
    apply(&mut s, Command::put_with_ttl(T0, "long", "2", 50)).unwrap(); // rev 2, deadline 50ms
    put(&mut s, "forever", "3"); // rev 3
    assert!(s.housekeeping(Time(10 * MS - 1)).is_empty());

    let due = s.housekeeping(Time(10 * MS));
    let expected = Command::new(
        Time(10 * MS),
        Write::Expire { keys: vec![ExpireKey { key: b"short".to_vec(), mod_revision: 1 }] },
    );
    assert_eq!(due, vec![expected.clone()]);
    // Until the expiry is applied, the key is still there: reads depend only on applied state.
    assert_eq!(get(&s, "short").map(|kv| kv.value), Some(b"1".to_vec()));
    assert_eq!(apply(&mut s, expected.clone()), Ok(Response::Expire { revision: 4, expired: 1 }));
    assert_eq!(get(&s, "short"), None);
    // Proposed twice (a leader's retry): the second is a no-op, no new revision.
    assert_eq!(apply(&mut s, expected), Ok(Response::Expire { revision: 4, expired: 0 }));

    let due = s.housekeeping(Time(1_000 * MS));
    assert_eq!(due.len(), 1);
    assert_eq!(apply(&mut s, due[0].clone()), Ok(Response::Expire { revision: 5, expired: 1 }));
    assert_eq!(keys(&range(&s, KeyRange::from(""), 10)), ["forever"]);
    assert!(s.housekeeping(Time(u64::MAX)).is_empty());
}

#[test]
fn expiry_skips_a_key_rewritten_after_housekeeping_looked() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(T0, "k", "old", 10)).unwrap();
    let due = s.housekeeping(Time(20 * MS)); // the leader decides "k" expired...
                                             // ...but k is rewritten before that expiry is applied.
    apply(&mut s, Command::put_with_ttl(Time(15 * MS), "k", "new", 10)).unwrap();
    assert_eq!(apply(&mut s, due[0].clone()), Ok(Response::Expire { revision: 2, expired: 0 }));
    assert_eq!(get(&s, "k").unwrap().value, b"new".to_vec());
    // The new value expires on its own schedule: 25ms.
    assert!(s.housekeeping(Time(24 * MS)).is_empty());
    assert_eq!(s.housekeeping(Time(25 * MS)).len(), 1);
}

#[test]
fn expiry_never_removes_a_key_before_the_commands_own_clock_reaches_its_deadline() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(T0, "k", "v", 10)).unwrap();
    // A forged or confused proposer names the right revision but an earlier time.
    let early = Command::new(
        Time(9 * MS),
        Write::Expire { keys: vec![ExpireKey { key: b"k".to_vec(), mod_revision: 1 }] },
    );
    assert_eq!(apply(&mut s, early), Ok(Response::Expire { revision: 1, expired: 0 }));
    assert!(get(&s, "k").is_some());
    // Keys without a TTL are never expired, whatever the command says.
    put(&mut s, "p", "v");
    let forged = Command::new(
        Time(u64::MAX),
        Write::Expire { keys: vec![ExpireKey { key: b"p".to_vec(), mod_revision: 2 }] },
    );
    assert_eq!(apply(&mut s, forged), Ok(Response::Expire { revision: 2, expired: 0 }));
}

#[test]
fn housekeeping_batches_are_bounded_and_earliest_first() {
    let mut s = KvStore::new(KvLimits { max_expire_keys: 3, ..KvLimits::default() });
    for (i, key) in ["e", "d", "c", "b", "a"].iter().enumerate() {
        // "e" has the earliest deadline, "a" the latest.
        apply(&mut s, Command::put_with_ttl(T0, *key, "v", 10 + i as u64)).unwrap();
    }
    let due = s.housekeeping(Time(100 * MS));
    let Write::Expire { keys } = &due[0].write else { panic!("{due:?}") };
    let names: Vec<&[u8]> = keys.iter().map(|k| k.key.as_slice()).collect();
    assert_eq!(names, [&b"e"[..], b"d", b"c"]);
    apply(&mut s, due[0].clone()).unwrap();
    let due = s.housekeeping(Time(100 * MS));
    apply(&mut s, due[0].clone()).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.revision(), 7);
}

#[test]
fn cas_and_txn_puts_carry_ttls_too() {
    let mut s = KvStore::default();
    let cas =
        Cas { key: b"k".to_vec(), expect: CompareTarget::Version(0), value: b"v".to_vec(), ttl_ms: Some(5) };
    apply(&mut s, Command::new(Time(MS), Write::Cas(cas))).unwrap();
    assert_eq!(get(&s, "k").unwrap().expires_at, Some(Time(6 * MS)));
    let txn = Txn { success: vec![TxnOp::Put(Put::new("t", "v").with_ttl_ms(7))], ..Txn::default() };
    apply(&mut s, Command::txn(Time(2 * MS), txn)).unwrap();
    assert_eq!(get(&s, "t").unwrap().expires_at, Some(Time(9 * MS)));
    let due = s.housekeeping(Time(9 * MS));
    assert_eq!(apply(&mut s, due[0].clone()), Ok(Response::Expire { revision: 3, expired: 2 }));
}

#[test]
fn a_huge_ttl_saturates_instead_of_overflowing() {
    let mut s = KvStore::default();
    apply(&mut s, Command::put_with_ttl(Time(u64::MAX - 5), "k", "v", u64::MAX)).unwrap();
    assert_eq!(get(&s, "k").unwrap().expires_at, Some(Time(u64::MAX)));
}

// ---------------------------------------------------------------------------------------------
// limits, enforced in apply as well

#[test]
fn apply_refuses_a_command_that_an_older_looser_config_let_through() {
    let loose = KvLimits::default();
    let big = Command::put(T0, "k", vec![b'x'; 2_000]);
    assert_eq!(concord_kv::validate(&big, &loose), Ok(()));
    let mut strict = KvStore::new(KvLimits { max_value_bytes: 1_000, ..loose });
    put(&mut strict, "k", "small");
    let before = strict.snapshot();
    let out = apply(&mut strict, big);
    assert_eq!(out.unwrap_err().to_string(), "value is 2000 bytes; the limit is 1000");
    assert_eq!(strict.snapshot(), before);
}

#[test]
fn increment_result_still_respects_a_tiny_value_limit() {
    let mut s = KvStore::new(KvLimits { max_value_bytes: 2, ..KvLimits::default() });
    apply(&mut s, Command::increment(T0, "n", 99)).unwrap();
    assert_eq!(
        apply(&mut s, Command::increment(T0, "n", 1)),
        Err(KvError::ValueTooLarge { value_bytes: 3, max_value_bytes: 2 })
    );
    assert_eq!(get(&s, "n").unwrap().value, b"99".to_vec());
}

// ---------------------------------------------------------------------------------------------
// snapshots

#[test]
fn snapshot_restores_state_and_ttl_index() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    apply(&mut s, Command::put_with_ttl(T0, "b", "2", 10)).unwrap();
    put(&mut s, "a", "3");
    let bytes = s.snapshot();
    let mut r = KvStore::default();
    put(&mut r, "junk", "to be replaced");
    r.restore(&bytes).unwrap();
    r.check_invariants().unwrap();
    assert_eq!(r, s);
    assert_eq!(r.snapshot(), bytes);
    assert_eq!(r.get(b"a"), Some(kv("a", "3", 1, 3, 2)));
    assert_eq!(r.get(b"junk"), None);
    assert_eq!(r.housekeeping(Time(10 * MS)), s.housekeeping(Time(10 * MS)));
    assert_eq!(r.housekeeping(Time(10 * MS)).len(), 1);
}

#[test]
fn restore_of_corrupt_bytes_is_an_error_and_keeps_the_state() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    let good = s.snapshot();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    let err = s.restore(&bad).unwrap_err();
    assert!(
        matches!(&err, StateMachineError::Corrupt(why) if why.starts_with("snapshot checksum mismatch")),
        "{err}"
    );
    assert_eq!(
        s.restore(b"").unwrap_err().to_string(),
        "snapshot is 0 bytes; even an empty one has 7 (version, payload, checksum)"
    );
    assert_eq!(s.get(b"a"), Some(kv("a", "1", 1, 1, 1)));
    assert_eq!(s.snapshot(), good);
}

#[test]
fn a_txn_whose_writes_cancel_out_still_takes_a_revision() {
    let mut s = KvStore::default();
    put(&mut s, "a", "1");
    let txn = Txn {
        success: vec![TxnOp::Put(Put::new("tmp", "x")), TxnOp::Delete { key: b"tmp".to_vec() }],
        ..Txn::default()
    };
    assert_eq!(
        apply(&mut s, Command::txn(T0, txn)),
        Ok(Response::Txn {
            succeeded: true,
            revision: 2,
            responses: vec![Response::Put { revision: 2 }, Response::Delete { revision: 2, deleted: 1 }],
        })
    );
    assert_eq!(get(&s, "tmp"), None);
    assert_eq!(s.revision(), 2);
}

//! Sets (and the hash commands that share their machinery: random picks, scans) against a real
//! store. Replies that redis-server gives were checked by hand against redis-server 7.0; member
//! order here is byte order (redis-server's differs).

use super::tests::{run, run_at, NOW};
use super::*;
use crate::{Command, KvStore};

fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

fn set_of(members: &[&str]) -> Reply {
    Reply::Set(members.iter().map(|m| bulk(m)).collect())
}

fn int(n: i64) -> Reply {
    Reply::Int(n)
}

fn err(line: &str) -> Reply {
    Reply::error(line)
}

/// The members of a bulk-string array, set or pairs reply (flattened), as strings.
fn strings(reply: &Reply) -> Vec<String> {
    let flat: Vec<Reply>;
    match reply {
        Reply::Pairs(pairs) => {
            flat = pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
            strings(&Reply::Array(flat))
        }
        Reply::Array(items) | Reply::Set(items) => items
            .iter()
            .map(|item| match item {
                Reply::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("not a bulk string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn sadd_srem_and_membership() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SADD s b a c"), int(3));
    assert_eq!(run(&mut s, "SADD s a d"), int(1));
    assert_eq!(run(&mut s, "SADD s a"), int(0));
    assert_eq!(run(&mut s, "SCARD s"), int(4));
    assert_eq!(run(&mut s, "SCARD nope"), int(0));
    assert_eq!(run(&mut s, "SMEMBERS s"), set_of(&["a", "b", "c", "d"]), "byte order");
    assert_eq!(run(&mut s, "SMEMBERS nope"), set_of(&[]));
    assert_eq!(run(&mut s, "SISMEMBER s a"), int(1));
    assert_eq!(run(&mut s, "SISMEMBER s z"), int(0));
    assert_eq!(run(&mut s, "SISMEMBER nope z"), int(0));
    assert_eq!(run(&mut s, "SMISMEMBER s a z d"), Reply::Array(vec![int(1), int(0), int(1)]));
    assert_eq!(run(&mut s, "SMISMEMBER nope a"), Reply::Array(vec![int(0)]));
    assert_eq!(run(&mut s, "TYPE s"), Reply::Status("set".into()));
    assert_eq!(run(&mut s, "SREM s a z"), int(1));
    assert_eq!(run(&mut s, "SREM nope a"), int(0));
    assert_eq!(run(&mut s, "SREM s b c"), int(2));
    assert_eq!(run(&mut s, "SCARD s"), int(1));
    // The last member gone: the key is gone, records and all.
    assert_eq!(run(&mut s, "SREM s d"), int(1));
    assert_eq!(run(&mut s, "TYPE s"), Reply::Status("none".into()));
    assert_eq!(s.len(), 0, "no records left behind");
    s.check_invariants().unwrap();
}

#[test]
fn every_set_command_refuses_another_kind() {
    let mut s = KvStore::default();
    s.execute(&Command::put(NOW, "str", "v")).unwrap();
    run(&mut s, "HSET h f v");
    run(&mut s, "SADD s a");
    for line in [
        "SADD str a",
        "SREM str a",
        "SMEMBERS h",
        "SISMEMBER str a",
        "SMISMEMBER str a",
        "SCARD h",
        "SPOP str",
        "SPOP str 2",
        "SRANDMEMBER str",
        "SRANDMEMBER h 2",
        "SMOVE str s a",
        "SMOVE s str a",
        "SINTER s str",
        // Redis 7 checks every key's type, even after an absent key.
        "SINTER nope str",
        "SUNION s h",
        "SDIFF s str",
        "SINTERCARD 2 nope str",
        "SINTERSTORE d s str",
        "SUNIONSTORE d str",
        "SDIFFSTORE d nope h",
        "SSCAN str 0",
    ] {
        assert_eq!(run(&mut s, line), Reply::wrong_type(), "{line}");
    }
    // Nothing changed, and a failed STORE did not touch its destination.
    assert_eq!(run(&mut s, "TYPE d"), Reply::Status("none".into()));
    assert_eq!(run(&mut s, "SMEMBERS s"), set_of(&["a"]));
    // An absent source answers 0 before SMOVE looks at the destination (as redis-server).
    assert_eq!(run(&mut s, "SMOVE nope str a"), int(0));
    s.check_invariants().unwrap();
}

#[test]
fn spop_removes_random_members_and_deletes_an_emptied_set() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SPOP nope"), Reply::Nil);
    assert_eq!(run(&mut s, "SPOP nope 3"), set_of(&[]));
    run(&mut s, "SADD s a b c d e f");
    assert_eq!(run(&mut s, "SPOP s -1"), err("ERR value is out of range, must be positive"));
    // Not a number: the same error (found by `concord difftest`, seed 4).
    assert_eq!(run(&mut s, "SPOP s x"), err("ERR value is out of range, must be positive"));
    assert_eq!(run(&mut s, "SPOP nokey x"), err("ERR value is out of range, must be positive"));
    assert_eq!(run(&mut s, "SPOP s 1 2"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SPOP s 0"), set_of(&[]));
    let Reply::Bulk(one) = run(&mut s, "SPOP s") else { panic!() };
    assert_eq!(run(&mut s, &format!("SISMEMBER s {}", String::from_utf8(one).unwrap())), int(0));
    assert_eq!(run(&mut s, "SCARD s"), int(5));
    let two = strings(&run(&mut s, "SPOP s 2"));
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    for member in &two {
        assert_eq!(run(&mut s, &format!("SISMEMBER s {member}")), int(0));
    }
    assert_eq!(run(&mut s, "SCARD s"), int(3));
    // Asking for more than there are pops them all, and the key goes.
    assert_eq!(strings(&run(&mut s, "SPOP s 10")).len(), 3);
    assert_eq!(run(&mut s, "TYPE s"), Reply::Status("none".into()));
    assert_eq!(s.len(), 0);
    run(&mut s, "SADD s only");
    assert_eq!(run(&mut s, "SPOP s"), bulk("only"));
    assert_eq!(s.len(), 0, "the last SPOP deletes the key");
    s.check_invariants().unwrap();
}

#[test]
fn spop_draws_the_same_on_every_replica_and_differently_at_other_times() {
    let members = (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>().join(" ");
    let pop = |now: Time| {
        let mut s = KvStore::default();
        run(&mut s, &format!("SADD s {members}"));
        strings(&run_at(&mut s, "SPOP s 5", now))
    };
    assert_eq!(pop(NOW), pop(NOW), "replicas applying the same entry pop the same members");
    let later = NOW + std::time::Duration::from_millis(1);
    assert_ne!(pop(NOW), pop(later), "another command draws again");
}

#[test]
fn srandmember_counts_as_redis() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SRANDMEMBER nope"), Reply::Nil);
    assert_eq!(run(&mut s, "SRANDMEMBER nope 3"), Reply::Array(vec![]));
    run(&mut s, "SADD s a b c");
    let Reply::Bulk(one) = run(&mut s, "SRANDMEMBER s") else { panic!() };
    assert!([&b"a"[..], b"b", b"c"].contains(&&one[..]));
    assert_eq!(run(&mut s, "SRANDMEMBER s 0"), Reply::Array(vec![]));
    // A positive count: distinct members, at most the whole set.
    let mut two = strings(&run(&mut s, "SRANDMEMBER s 2"));
    two.sort();
    two.dedup();
    assert_eq!(two.len(), 2);
    let mut all = strings(&run(&mut s, "SRANDMEMBER s 10"));
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    // A negative count: exactly that many, repeats allowed (20 draws of 3 members must repeat).
    let many = strings(&run(&mut s, "SRANDMEMBER s -20"));
    assert_eq!(many.len(), 20);
    assert!(many.iter().all(|m| ["a", "b", "c"].contains(&m.as_str())));
    assert_eq!(
        run(&mut s, "SRANDMEMBER s -9223372036854775808"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert!(run(&mut s, "SRANDMEMBER s -9223372036854775807").is_error(), "capped, not built");
    assert_eq!(run(&mut s, "SRANDMEMBER s 1 2"), err("ERR syntax error"));
    // Reads are deterministic: the same state answers the same.
    assert_eq!(run(&mut s, "SRANDMEMBER s -5"), run(&mut s, "SRANDMEMBER s -5"));
    assert_eq!(run(&mut s, "SCARD s"), int(3), "nothing removed");
}

#[test]
fn smove_moves_one_member() {
    let mut s = KvStore::default();
    run(&mut s, "SADD src a b");
    run(&mut s, "SADD dst b");
    assert_eq!(run(&mut s, "SMOVE src dst a"), int(1));
    assert_eq!(run(&mut s, "SMEMBERS dst"), set_of(&["a", "b"]));
    assert_eq!(run(&mut s, "SMOVE src dst zz"), int(0));
    assert_eq!(run(&mut s, "SMOVE src src b"), int(1), "same set, member present");
    assert_eq!(run(&mut s, "SMOVE src src q"), int(0));
    // Moving a member the destination already has still removes it from the source – the last
    // one, so the source goes.
    assert_eq!(run(&mut s, "SMOVE src dst b"), int(1));
    assert_eq!(run(&mut s, "TYPE src"), Reply::Status("none".into()));
    assert_eq!(run(&mut s, "SCARD dst"), int(2));
    // A new destination is created.
    assert_eq!(run(&mut s, "SMOVE dst fresh a"), int(1));
    assert_eq!(run(&mut s, "SMEMBERS fresh"), set_of(&["a"]));
    s.check_invariants().unwrap();
}

#[test]
fn inter_union_diff_and_their_store_variants() {
    let mut s = KvStore::default();
    run(&mut s, "SADD a 1 2 3 4");
    run(&mut s, "SADD b 2 3 5");
    run(&mut s, "SADD c 3 4 5");
    assert_eq!(run(&mut s, "SINTER a b"), set_of(&["2", "3"]));
    assert_eq!(run(&mut s, "SINTER a b c"), set_of(&["3"]));
    assert_eq!(run(&mut s, "SINTER a nope"), set_of(&[]));
    assert_eq!(run(&mut s, "SINTER a"), set_of(&["1", "2", "3", "4"]));
    assert_eq!(run(&mut s, "SUNION a b nope"), set_of(&["1", "2", "3", "4", "5"]));
    assert_eq!(run(&mut s, "SDIFF a b"), set_of(&["1", "4"]));
    assert_eq!(run(&mut s, "SDIFF a b c"), set_of(&["1"]));
    assert_eq!(run(&mut s, "SDIFF nope a"), set_of(&[]));
    assert_eq!(run(&mut s, "SINTERCARD 2 a b"), int(2));
    assert_eq!(run(&mut s, "SINTERCARD 2 a b LIMIT 1"), int(1));
    assert_eq!(run(&mut s, "SINTERCARD 2 a b limit 0"), int(2), "0: no limit");
    assert_eq!(run(&mut s, "SINTERCARD 2 a nope"), int(0));
    assert_eq!(run(&mut s, "SINTERCARD 0 a"), err("ERR numkeys should be greater than 0"));
    assert_eq!(run(&mut s, "SINTERCARD x a"), err("ERR numkeys should be greater than 0"));
    assert_eq!(
        run(&mut s, "SINTERCARD 3 a b"),
        err("ERR Number of keys can't be greater than number of args")
    );
    assert_eq!(run(&mut s, "SINTERCARD 1 a LIMIT -1"), err("ERR LIMIT can't be negative"));
    assert_eq!(run(&mut s, "SINTERCARD 1 a LIMIT x"), err("ERR LIMIT can't be negative"));
    assert_eq!(run(&mut s, "SINTERCARD 1 a LIMIT"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SINTERCARD 1 a FOO 1"), err("ERR syntax error"));

    // STORE: the destination is replaced whatever it held, TTL included.
    s.execute(&Command::put(NOW, "d", "a string")).unwrap();
    run(&mut s, "EXPIRE d 100");
    assert_eq!(run(&mut s, "SINTERSTORE d a b"), int(2));
    assert_eq!(run(&mut s, "SMEMBERS d"), set_of(&["2", "3"]));
    assert_eq!(s.get(b"d").unwrap().expires_at, None, "the old TTL went with the old value");
    assert_eq!(run(&mut s, "SUNIONSTORE d d c"), int(4), "the destination may be a source");
    assert_eq!(run(&mut s, "SMEMBERS d"), set_of(&["2", "3", "4", "5"]));
    assert_eq!(run(&mut s, "SDIFFSTORE d a b"), int(2));
    assert_eq!(run(&mut s, "SMEMBERS d"), set_of(&["1", "4"]));
    run(&mut s, "HSET h f v");
    assert_eq!(run(&mut s, "SUNIONSTORE h a"), int(4), "a hash destination is overwritten");
    assert_eq!(run(&mut s, "TYPE h"), Reply::Status("set".into()));
    // An empty result deletes the destination.
    assert_eq!(run(&mut s, "SINTERSTORE d a nope"), int(0));
    assert_eq!(run(&mut s, "TYPE d"), Reply::Status("none".into()));
    assert_eq!(run(&mut s, "SDIFFSTORE d nope"), int(0));
    assert_eq!(run(&mut s, "TYPE d"), Reply::Status("none".into()));
    s.check_invariants().unwrap();
}

#[test]
fn sscan_pages_through_every_member_once() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SSCAN nope 0"), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
    assert_eq!(run(&mut s, "SSCAN nope 0 FOO"), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
    assert_eq!(run(&mut s, "SSCAN nope x"), err("ERR invalid cursor"));
    let members: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    run(&mut s, &format!("SADD s {} other", members.join(" ")));
    assert_eq!(run(&mut s, "SSCAN s 0 COUNT 0"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SSCAN s 0 COUNT"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SSCAN s 0 BOGUS 1"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SSCAN s 0 COUNT x"), err("ERR value is not an integer or out of range"));
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut pages = 0;
    loop {
        let reply = run(&mut s, &format!("SSCAN s {cursor} MATCH m* COUNT 7"));
        let Reply::Array(parts) = reply else { panic!() };
        let Reply::Bulk(next) = &parts[0] else { panic!() };
        seen.extend(strings(&parts[1]));
        pages += 1;
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
        // A member added behind the cursor is not seen; the scan still ends.
        if pages == 1 {
            run(&mut s, "SADD s m00a");
        }
    }
    assert_eq!(pages, 4, "26 members, 7 a page");
    assert_eq!(seen, members, "every member once, in order; MATCH dropped `other`");
}

// The rest of the hashes: HINCRBYFLOAT, HRANDFIELD, HSCAN.

#[test]
fn hincrbyfloat_answers_redis_servers_long_double_text() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "HINCRBYFLOAT h f 10.5"), bulk("10.5"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h f 3.0e3"), bulk("3010.5"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h f 0.1"), bulk("3010.60000000000000009"));
    assert_eq!(run(&mut s, "HGET h f"), bulk("3010.60000000000000009"), "stored as the reply's text");
    assert_eq!(run(&mut s, "HINCRBYFLOAT h g 0.1"), bulk("0.1"));
    assert_eq!(
        run(&mut s, "HINCRBYFLOAT h g 0.2"),
        bulk("0.3"),
        "long double, not f64's 0.30000000000000004"
    );
    assert_eq!(run(&mut s, "HLEN h"), int(2));
    run(&mut s, "HSET h i 5 s abc");
    assert_eq!(run(&mut s, "HINCRBYFLOAT h i 1.5"), bulk("6.5"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h i -6.5"), bulk("0"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h s 1"), err("ERR hash value is not a float"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h i abc"), err("ERR value is not a valid float"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h i inf"), err("ERR value is NaN or Infinity"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h big 1e4932"), bulk(&run_text(&mut s, "HGET h big")));
    assert_eq!(run(&mut s, "HINCRBYFLOAT h big 1e4932"), err("ERR increment would produce NaN or Infinity"));
    assert_eq!(run(&mut s, "HINCRBYFLOAT nope f x"), err("ERR value is not a valid float"));
    assert_eq!(
        run(&mut s, "TYPE nope"),
        Reply::Status("none".into()),
        "a failed first increment creates nothing"
    );
    s.execute(&Command::put(NOW, "str", "v")).unwrap();
    assert_eq!(run(&mut s, "HINCRBYFLOAT str f 1"), Reply::wrong_type());
    s.check_invariants().unwrap();
}

fn run_text(store: &mut KvStore, line: &str) -> String {
    match run(store, line) {
        Reply::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn hrandfield_counts_and_values() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "HRANDFIELD nope"), Reply::Nil);
    assert_eq!(run(&mut s, "HRANDFIELD nope 2 WITHVALUES"), Reply::Array(vec![]));
    run(&mut s, "HSET h a 1 b 2 c 3");
    let one = run_text(&mut s, "HRANDFIELD h");
    assert!(["a", "b", "c"].contains(&one.as_str()));
    let mut all = strings(&run(&mut s, "HRANDFIELD h 10"));
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(run(&mut s, "HRANDFIELD h 0"), Reply::Array(vec![]));
    // WITHVALUES: field, value, field, value … – each value the field's.
    let pairs = strings(&run(&mut s, "HRANDFIELD h -7 withvalues"));
    assert_eq!(pairs.len(), 14);
    for pair in pairs.chunks(2) {
        assert_eq!(run_text(&mut s, &format!("HGET h {}", pair[0])), pair[1]);
    }
    let two = strings(&run(&mut s, "HRANDFIELD h 2 WITHVALUES"));
    assert_eq!(two.len(), 4);
    assert_ne!(two[0], two[2], "a positive count picks distinct fields");
    assert_eq!(run(&mut s, "HRANDFIELD h 1 foo"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "HRANDFIELD h 1 WITHVALUES x"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "HRANDFIELD h x"), err("ERR value is not an integer or out of range"));
    assert_eq!(run(&mut s, "HRANDFIELD h -4611686018427387904 WITHVALUES"), err("ERR value is out of range"));
    assert_eq!(
        run(&mut s, "HRANDFIELD h -9223372036854775808 foo"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
        "the count is checked before the flag, as redis-server does"
    );
    s.execute(&Command::put(NOW, "str", "v")).unwrap();
    assert_eq!(run(&mut s, "HRANDFIELD str 1"), Reply::wrong_type());
}

#[test]
fn hscan_pages_fields_with_their_values() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "HSCAN nope 0"), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
    run(&mut s, "HSET h a 1 b 2 c 3 ab 4");
    let Reply::Array(first) = run(&mut s, "HSCAN h 0 COUNT 2") else { panic!() };
    assert_eq!(first[1], Reply::Array(vec![bulk("a"), bulk("1"), bulk("ab"), bulk("4")]));
    let cursor = run_text_of(&first[0]);
    assert_eq!(cursor, crate::cursor::encode(b"b"), "the cursor names the next field");
    assert_eq!(
        run(&mut s, &format!("HSCAN h {cursor} COUNT 2")),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("b"), bulk("2"), bulk("c"), bulk("3")])])
    );
    assert_eq!(
        run(&mut s, "HSCAN h 0 MATCH a*"),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("a"), bulk("1"), bulk("ab"), bulk("4")])])
    );
    assert_eq!(run(&mut s, "HSCAN h 12x"), err("ERR invalid cursor"));
    assert_eq!(run(&mut s, "HSCAN h 0 COUNT 0"), err("ERR syntax error"));
    s.execute(&Command::put(NOW, "str", "v")).unwrap();
    assert_eq!(run(&mut s, "HSCAN str 0"), Reply::wrong_type());
}

fn run_text_of(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

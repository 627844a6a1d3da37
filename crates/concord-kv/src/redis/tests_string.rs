//! Strings and keyspace commands in the interpreter, and whole transactions (`MULTI … EXEC` as one
//! [`RedisExec`]) with `WATCH`. Expected replies were checked against redis-server 7.0.

use super::tests::{argv, run_words, NOW};
use super::*;
use crate::{Command, KvStore, Query, Response, Write};

const NOW_MS: u64 = 1_000_000_000_000;

/// Every call through the log (as EXEC does), so TTL has the command's clock.
fn exec_lines(store: &mut KvStore, watch: Vec<(Vec<u8>, u64)>, lines: &[&str]) -> Option<Vec<Reply>> {
    let calls: Vec<RedisCall> = lines.iter().map(|l| RedisCall::new(argv(l))).collect();
    let keys = calls.iter().filter_map(|c| c.argv.get(1).cloned()).collect();
    let exec = RedisExec { keys, watch, calls };
    match store.execute(&Command::new(NOW, Write::Redis(exec))) {
        Ok(Response::Redis { replies, .. }) => replies,
        other => panic!("{lines:?}: {other:?}"),
    }
}

fn run(store: &mut KvStore, line: &str) -> Reply {
    exec_lines(store, vec![], &[line]).unwrap().pop().unwrap()
}

fn query(store: &KvStore, line: &str) -> Reply {
    match store.read(&Query::Redis(RedisExec::read(RedisCall::new(argv(line))))) {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{line}: {other:?}"),
    }
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

fn err(s: &str) -> Reply {
    Reply::error(s)
}

#[test]
fn set_options_behave_as_redis() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SET k v"), Reply::Ok);
    assert_eq!(run(&mut s, "SET k w NX"), Reply::Nil);
    assert_eq!(run(&mut s, "SET k w XX GET"), bulk("v"));
    assert_eq!(run(&mut s, "SET nope w XX"), Reply::Nil);
    assert_eq!(run(&mut s, "SET nope w NX GET"), Reply::Nil);
    assert_eq!(run(&mut s, "GET nope"), bulk("w"));
    assert_eq!(run(&mut s, "SET k v NX XX"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SET k v EX 10 PX 10"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SET k v KEEPTTL EX 1"), err("ERR syntax error"));
    assert_eq!(
        run(&mut s, "SET k v EX 9223372036854775807"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(run(&mut s, "SET k v EX"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SET k v EX 0"), err("ERR invalid expire time in 'set' command"));
    assert_eq!(run(&mut s, "SET k v EX x"), err("ERR value is not an integer or out of range"));
    assert_eq!(run(&mut s, "SET k v EX 100"), Reply::Ok);
    assert_eq!(run(&mut s, "PTTL k"), Reply::Int(100_000));
    // KEEPTTL keeps the deadline; a plain SET drops it.
    assert_eq!(run(&mut s, "SET k v2 KEEPTTL"), Reply::Ok);
    assert_eq!(run(&mut s, "TTL k"), Reply::Int(100));
    assert_eq!(run(&mut s, "SET k v3"), Reply::Ok);
    assert_eq!(run(&mut s, "TTL k"), Reply::Int(-1));
    // A deadline in the past deletes the key.
    assert_eq!(run(&mut s, "SET k v PXAT 5"), Reply::Ok);
    assert_eq!(run(&mut s, "EXISTS k"), Reply::Int(0));
    let at = NOW_MS + 5000;
    assert_eq!(run(&mut s, &format!("SET k v PXAT {at}")), Reply::Ok);
    assert_eq!(run(&mut s, "PEXPIRETIME k"), Reply::Int(at as i64));
    assert_eq!(run(&mut s, "EXPIRETIME k"), Reply::Int((at / 1000) as i64));
}

#[test]
fn string_commands_refuse_collections_with_wrongtype() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h f v");
    let wrong = Reply::wrong_type();
    for line in [
        "GET h",
        "SET h v GET",
        "GETSET h v",
        "GETDEL h",
        "GETEX h",
        "INCR h",
        "DECRBY h 2",
        "INCRBYFLOAT h 1",
        // The type before the increment (found by `concord difftest`).
        "INCRBYFLOAT h abc",
        "APPEND h x",
        "STRLEN h",
        "GETRANGE h 0 1",
        "SETRANGE h 0 x",
    ] {
        assert_eq!(run(&mut s, line), wrong, "{line}");
    }
    assert_eq!(query(&s, "GET h"), wrong);
    // MGET answers nil for a collection; the string "" is still a string.
    run(&mut s, "SET e x");
    run(&mut s, "SETRANGE e 0 y");
    assert_eq!(query(&s, "MGET h e nope"), Reply::Array(vec![Reply::Nil, bulk("y"), Reply::Nil]));
    // SET (no GET) replaces a collection, records and all.
    assert_eq!(run(&mut s, "SET h plain"), Reply::Ok);
    assert_eq!(query(&s, "TYPE h"), Reply::Status("string".into()));
    assert_eq!(query(&s, "HLEN h"), wrong);
}

#[test]
fn counters_and_errors() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "INCR n"), Reply::Int(1));
    assert_eq!(run(&mut s, "INCRBY n 41"), Reply::Int(42));
    assert_eq!(run(&mut s, "DECR n"), Reply::Int(41));
    assert_eq!(run(&mut s, "DECRBY n 40"), Reply::Int(1));
    assert_eq!(run(&mut s, "DECRBY n -9223372036854775808"), err("ERR decrement would overflow"));
    run(&mut s, "SET n 9223372036854775807");
    assert_eq!(run(&mut s, "INCR n"), err("ERR increment or decrement would overflow"));
    for bad in ["abc", "01", "+1", " 1", "1.5", ""] {
        s = KvStore::default();
        exec_lines(&mut s, vec![], &[]).unwrap();
        let call = RedisCall::new(vec![b"SET".to_vec(), b"n".to_vec(), bad.as_bytes().to_vec()]);
        let exec = RedisExec { keys: vec![b"n".to_vec()], watch: vec![], calls: vec![call] };
        s.execute(&Command::new(NOW, Write::Redis(exec))).unwrap();
        assert_eq!(run(&mut s, "INCR n"), err("ERR value is not an integer or out of range"), "{bad:?}");
    }
    // INCR keeps the deadline.
    run(&mut s, "SET t 5 EX 100");
    assert_eq!(run(&mut s, "INCR t"), Reply::Int(6));
    assert_eq!(run(&mut s, "TTL t"), Reply::Int(100));
}

#[test]
fn incrbyfloat_prints_as_redis_long_double() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "SET f 10.50"), Reply::Ok);
    assert_eq!(run(&mut s, "INCRBYFLOAT f 0.1"), bulk("10.6"));
    assert_eq!(run(&mut s, "INCRBYFLOAT f -5"), bulk("5.6"));
    assert_eq!(run(&mut s, "INCRBYFLOAT f 5.0e-1"), bulk("6.1"));
    assert_eq!(run(&mut s, "INCRBYFLOAT g 0.1"), bulk("0.1"));
    assert_eq!(run(&mut s, "INCRBYFLOAT g 0.2"), bulk("0.3"));
    assert_eq!(run(&mut s, "INCRBYFLOAT g 1.23456789012345678"), bulk("1.53456789012345678"));
    assert_eq!(run(&mut s, "INCRBYFLOAT g -1.53456789012345678"), bulk("0"));
    assert_eq!(run(&mut s, "INCRBYFLOAT z 3"), bulk("3"));
    assert_eq!(run(&mut s, "INCRBYFLOAT z x"), err("ERR value is not a valid float"));
    assert_eq!(run(&mut s, "INCRBYFLOAT z inf"), err("ERR increment would produce NaN or Infinity"));
    run(&mut s, "SET w abc");
    assert_eq!(run(&mut s, "INCRBYFLOAT w 1"), err("ERR value is not a valid float"));
    // The long double's own rounding shows, as in redis-server (these texts are its replies).
    assert_eq!(run(&mut s, "INCRBYFLOAT f 5.0e3"), bulk("5006.10000000000000009"));
    // Found by `concord difftest` (seed 2): a large sum is the long double's, not an f64's.
    run(&mut s, "SET k0 -38");
    assert_eq!(
        run(&mut s, "INCRBYFLOAT k0 1e308"),
        bulk(
            "9999999999999999999668587965584564566056009984741556720779704799492173486883806187210012692188853932\
             0446747225054013223152134749593960583597420814430196418767959100019603190778663109604507106667939153\
             3957889389145605435630612683649016186302170865892534448816237913008557573181424245104527282550463439\
             28578048"
        )
    );
}

/// INCRBYFLOAT against values redis-server 7.0 answered (x86-64, 80-bit `long double`): the
/// sums whose last digits an `f64` (or exact decimal) sum gets wrong, and the errors.
#[test]
fn incrbyfloat_matches_redis_long_double() {
    let big = "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096";
    let cases: &[(&str, &str, Result<&str, &str>)] = &[
        ("10.6", "5.0e3", Ok("5010.60000000000000009")),
        ("1e20", "3", Ok("100000000000000000000")),
        ("1e17", "1", Ok("100000000000000001")),
        ("0.1", "0.2", Ok("0.3")),
        ("5.0e3", "-2.0e2", Ok("4800")),
        ("3.0e3", "0", Ok("3000")),
        ("1.23456789012345678", "0", Ok("1.23456789012345678")),
        ("1e30", "0", Ok("1000000000000000000024696061952")),
        ("1", "1e-20", Ok("1")),
        ("+1", "+1", Ok("2")),
        ("0x1p3", "0.5", Ok("8.5")),
        ("-0", "-0", Ok("0")),
        ("7", "-7.0", Ok("0")),
        ("1e308", "1e308", Ok(big)),
        ("1", "infinity", Err("ERR increment would produce NaN or Infinity")),
        ("1.5", "-inf", Err("ERR increment would produce NaN or Infinity")),
        ("inf", "1", Err("ERR increment would produce NaN or Infinity")),
        ("1", " 2", Err("ERR value is not a valid float")),
        ("1", "2 ", Err("ERR value is not a valid float")),
        ("1", "nan", Err("ERR value is not a valid float")),
        ("1", "1e5000", Err("ERR value is not a valid float")),
        ("", "1", Err("ERR value is not a valid float")),
    ];
    for (value, increment, want) in cases {
        let mut s = KvStore::default();
        assert_eq!(run_words(&mut s, &["SET", "k", value], NOW), Reply::Ok);
        let reply = run_words(&mut s, &["INCRBYFLOAT", "k", increment], NOW);
        let want = match want {
            Ok(text) => bulk(text),
            Err(e) => err(e),
        };
        assert_eq!(reply, want, "{value:?} + {increment:?}");
    }
    // The key's type is checked before the increment is parsed, as in Redis.
    let mut s = KvStore::default();
    run(&mut s, "HSET h f 1");
    assert_eq!(run(&mut s, "INCRBYFLOAT h x"), Reply::wrong_type());
}

#[test]
fn ranges_appends_and_getex() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "APPEND a Hello"), Reply::Int(5));
    assert_eq!(run(&mut s, "APPEND a World"), Reply::Int(10));
    assert_eq!(run(&mut s, "STRLEN a"), Reply::Int(10));
    assert_eq!(query(&s, "GETRANGE a 0 4"), bulk("Hello"));
    assert_eq!(query(&s, "GETRANGE a -5 -1"), bulk("World"));
    assert_eq!(query(&s, "GETRANGE a 5 100"), bulk("World"));
    assert_eq!(query(&s, "GETRANGE a -1 -5"), bulk(""));
    assert_eq!(query(&s, "GETRANGE a 7 3"), bulk(""));
    assert_eq!(query(&s, "GETRANGE nope 0 -1"), bulk(""));
    assert_eq!(run(&mut s, "SETRANGE a 5 Redis"), Reply::Int(10));
    assert_eq!(run(&mut s, "GET a"), bulk("HelloRedis"));
    assert_eq!(run(&mut s, "SETRANGE p 3 x"), Reply::Int(4));
    assert_eq!(run(&mut s, "GET p"), Reply::bulk(b"\0\0\0x".to_vec()));
    assert_eq!(run(&mut s, "SETRANGE q 3 \"\""), Reply::Int(2 + 3));
    assert_eq!(run(&mut s, "SETRANGE a -1 x"), err("ERR offset is out of range"));
    // The value limit (1 MiB by default): a clear error, nothing written.
    let too_far = run(&mut s, "SETRANGE a 1048576 x");
    assert!(matches!(&too_far, Reply::Error(e) if e.starts_with("ERR string exceeds maximum allowed size")));
    assert_eq!(run(&mut s, "STRLEN a"), Reply::Int(10));
    assert_eq!(run(&mut s, "GETEX a EX 50"), bulk("HelloRedis"));
    assert_eq!(run(&mut s, "TTL a"), Reply::Int(50));
    assert_eq!(run(&mut s, "GETEX a PERSIST"), bulk("HelloRedis"));
    assert_eq!(run(&mut s, "TTL a"), Reply::Int(-1));
    assert_eq!(run(&mut s, "GETEX a EX 0"), err("ERR invalid expire time in 'getex' command"));
    assert_eq!(run(&mut s, "GETEX a FOO"), err("ERR syntax error"));
    // SET: every option's syntax, then the expiry's number, then GET's type check.
    assert_eq!(run(&mut s, "SET k -9 XX PXAT abc x"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SET k v EX 0 FOO"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SET k v EX 1 KEEPTTL"), err("ERR syntax error"));
    run(&mut s, "HSET hset f v");
    assert_eq!(run(&mut s, "SET hset v GET EX abc"), err("ERR value is not an integer or out of range"));
    assert_eq!(run(&mut s, "SET hset v GET EX 10"), Reply::wrong_type());
    // redis-server's order: syntax, then the key (nil, WRONGTYPE), then the expiry's number.
    assert_eq!(run(&mut s, "GETEX absent EX 0"), Reply::Nil);
    assert_eq!(run(&mut s, "GETEX absent EX abc FOO"), err("ERR syntax error"));
    run(&mut s, "HSET hh f v");
    assert_eq!(run(&mut s, "GETEX hh EX abc"), Reply::wrong_type());
    assert_eq!(run(&mut s, "GETEX a EX abc"), err("ERR value is not an integer or out of range"));
    assert_eq!(run(&mut s, "GETDEL a"), bulk("HelloRedis"));
    assert_eq!(run(&mut s, "GETDEL a"), Reply::Nil);
    assert_eq!(run(&mut s, "GETSET g 1"), Reply::Nil);
    assert_eq!(run(&mut s, "GETSET g 2"), bulk("1"));
    assert_eq!(run(&mut s, "SETNX g 3"), Reply::Int(0));
    assert_eq!(run(&mut s, "SETEX g 10 4"), Reply::Ok);
    assert_eq!(run(&mut s, "PSETEX g 0 4"), err("ERR invalid expire time in 'psetex' command"));
    assert_eq!(run(&mut s, "MSETNX g 1 h 2"), Reply::Int(0));
    assert_eq!(run(&mut s, "MSETNX h 2 i 3"), Reply::Int(1));
    assert_eq!(run(&mut s, "MSET h"), err("ERR wrong number of arguments for 'mset' command"));
}

#[test]
fn rename_and_copy_move_collections_with_their_deadline() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h a 1 b 2");
    run(&mut s, "EXPIRE h 100");
    run(&mut s, "SET dst x");
    assert_eq!(run(&mut s, "RENAME h dst"), Reply::Ok);
    assert_eq!(query(&s, "HGET dst b"), bulk("2"));
    assert_eq!(query(&s, "HLEN dst"), Reply::Int(2));
    assert_eq!(run(&mut s, "TTL dst"), Reply::Int(100));
    assert_eq!(query(&s, "EXISTS h dst dst"), Reply::Int(2));
    assert_eq!(query(&s, "HLEN h"), Reply::Int(0));
    assert_eq!(run(&mut s, "RENAME h x"), err("ERR no such key"));
    run(&mut s, "SET s v");
    assert_eq!(run(&mut s, "RENAMENX s dst"), Reply::Int(0));
    assert_eq!(run(&mut s, "COPY dst c"), Reply::Int(1));
    assert_eq!(run(&mut s, "COPY dst c"), Reply::Int(0));
    assert_eq!(run(&mut s, "COPY s c REPLACE"), Reply::Int(1));
    assert_eq!(run(&mut s, "GET c"), bulk("v"));
    assert_eq!(query(&s, "HLEN c"), Reply::wrong_type());
    assert_eq!(query(&s, "HGETALL dst"), Reply::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]));
    assert_eq!(run(&mut s, "COPY s c DB 1"), err("ERR DB index is out of range"));
    assert_eq!(run(&mut s, "COPY s s"), err("ERR source and destination objects are the same"));
    assert_eq!(run(&mut s, "DEL dst s nope"), Reply::Int(2));
    assert_eq!(run(&mut s, "UNLINK c"), Reply::Int(1));
    assert_eq!(query(&s, "HLEN dst"), Reply::Int(0));
    assert_eq!(
        query(&s, "TTL c"),
        err("ERR TTL in a read-only query has no clock the replicas agree on; run it in MULTI")
    );
}

#[test]
fn a_transaction_is_one_step_and_watch_stops_it() {
    let mut s = KvStore::default();
    let replies =
        exec_lines(&mut s, vec![], &["SET k 1", "INCR k", "HSET k f v", "INCRBY k 5", "GET k"]).unwrap();
    assert_eq!(
        replies,
        vec![Reply::Ok, Reply::Int(2), Reply::wrong_type(), Reply::Int(7), bulk("7")],
        "runtime errors are per-command replies, the rest runs"
    );
    let Ok(Response::Get(Some(entry))) = s.read(&Query::get(b"k")) else { panic!() };
    // Watching the current mod revision runs; a stale one runs nothing.
    let seen = entry.mod_revision;
    assert_eq!(exec_lines(&mut s, vec![(b"k".to_vec(), seen)], &["INCR k"]), Some(vec![Reply::Int(8)]));
    assert_eq!(exec_lines(&mut s, vec![(b"k".to_vec(), seen)], &["INCR k"]), None);
    assert_eq!(exec_lines(&mut s, vec![(b"absent".to_vec(), 0)], &["GET k"]), Some(vec![bulk("8")]));
}

#[test]
fn object_reports_the_encoding_redis_would_use() {
    let mut s = KvStore::default();
    run(&mut s, "SET i 123");
    run(&mut s, "SET e hello");
    run(&mut s, &format!("SET r {}", "x".repeat(45)));
    run(&mut s, "HSET h f v");
    run(&mut s, &format!("HSET big f {}", "v".repeat(65)));
    assert_eq!(query(&s, "OBJECT ENCODING i"), bulk("int"));
    assert_eq!(query(&s, "OBJECT ENCODING e"), bulk("embstr"));
    assert_eq!(query(&s, "OBJECT ENCODING r"), bulk("raw"));
    assert_eq!(query(&s, "OBJECT ENCODING h"), bulk("listpack"));
    assert_eq!(query(&s, "OBJECT ENCODING big"), bulk("hashtable"));
    assert_eq!(query(&s, "OBJECT ENCODING nope"), Reply::Nil);
    assert_eq!(query(&s, "OBJECT REFCOUNT i"), Reply::Int(2147483647));
    assert_eq!(query(&s, "OBJECT REFCOUNT e"), Reply::Int(1));
    assert_eq!(query(&s, "OBJECT IDLETIME e"), Reply::Int(0));
    assert!(
        matches!(query(&s, "OBJECT FREQ e"), Reply::Error(e) if e.starts_with("ERR An LFU maxmemory policy"))
    );
    assert_eq!(
        query(&s, "OBJECT ENCODING"),
        err("ERR wrong number of arguments for 'object|encoding' command")
    );
    assert_eq!(query(&s, "OBJECT foo"), err("ERR unknown subcommand 'foo'. Try OBJECT HELP."));
    let Reply::Array(help) = query(&s, "OBJECT HELP") else { panic!() };
    assert_eq!(help.len(), 15);
}

/// Every user key and every collection record, in key order (what a flush must leave empty).
fn every_entry(store: &KvStore) -> usize {
    match store.read(&Query::Export) {
        Ok(Response::Range(page)) => page.kvs.len(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flushall_removes_every_key_and_record_in_one_revision() {
    let mut s = KvStore::default();
    run(&mut s, "SET a 1");
    run(&mut s, "HSET h f v g w");
    run(&mut s, "ZADD z 1 m");
    run(&mut s, "EXPIRE a 100");
    assert!(every_entry(&s) > 3, "collections have records beside their keys");
    let before = s.revision();
    assert_eq!(run(&mut s, "FLUSHALL"), Reply::Ok);
    assert_eq!(every_entry(&s), 0, "no key and no record is left");
    assert_eq!(s.expiring_len(), 0, "no deadline is left");
    assert_eq!(s.revision(), before + 1);
    assert_eq!(query(&s, "EXISTS a h z"), Reply::Int(0));
    // The store works on: a new collection under an old name starts empty.
    run(&mut s, "HSET h x 1");
    assert_eq!(query(&s, "HLEN h"), Reply::Int(1));
    // Redis 7.0: an optional ASYNC or SYNC, anything else is a syntax error.
    assert_eq!(run(&mut s, "FLUSHDB sync"), Reply::Ok);
    assert_eq!(every_entry(&s), 0);
    assert_eq!(run(&mut s, "FLUSHALL ASYNC"), Reply::Ok);
    let syntax = Reply::error("ERR syntax error");
    assert_eq!(run(&mut s, "FLUSHALL foo"), syntax);
    assert_eq!(run(&mut s, "FLUSHDB ASYNC SYNC"), syntax);
    // An empty store: OK, and nothing written.
    let rev = s.revision();
    assert_eq!(run(&mut s, "FLUSHDB"), Reply::Ok);
    assert_eq!(s.revision(), rev);
}

#[test]
fn flushall_fails_the_exec_that_watched_an_existing_key_and_runs_inside_one() {
    let mut s = KvStore::default();
    run(&mut s, "SET w 1");
    let seen = s.get(b"w").unwrap().mod_revision;
    run(&mut s, "FLUSHALL");
    assert_eq!(exec_lines(&mut s, vec![(b"w".to_vec(), seen)], &["SET x 1"]), None);
    // A watched key absent before and after: Redis 7.0 does not touch it, nor does Concord.
    assert_eq!(exec_lines(&mut s, vec![(b"w".to_vec(), 0)], &["SET x 1"]), Some(vec![Reply::Ok]));
    // Inside MULTI: the queued commands around it see the store before and after.
    assert_eq!(
        exec_lines(&mut s, vec![], &["SET y 1", "FLUSHALL", "EXISTS x y", "SET z 1"]),
        Some(vec![Reply::Ok, Reply::Ok, Reply::Int(0), Reply::Ok])
    );
    assert_eq!(query(&s, "EXISTS x y z"), Reply::Int(1));
}

#[test]
fn touch_counts_existing_keys_as_exists_does() {
    let mut s = KvStore::default();
    run(&mut s, "SET a 1");
    run(&mut s, "SADD s m");
    assert_eq!(query(&s, "TOUCH a a s nope"), Reply::Int(3));
    assert_eq!(query(&s, "TOUCH nope"), Reply::Int(0));
}

#[test]
fn randomkey_picks_user_keys_only_and_varies_with_the_store() {
    let mut s = KvStore::default();
    assert_eq!(query(&s, "RANDOMKEY"), Reply::Nil);
    run(&mut s, "HSET h f v");
    // The only key is a collection: its records (FF FF …) sort after it and are never picked.
    assert_eq!(query(&s, "RANDOMKEY"), Reply::bulk("h"));
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        run(&mut s, &format!("SET k{} v", i % 8));
        let Reply::Bulk(key) = query(&s, "RANDOMKEY") else { panic!("a key exists") };
        assert!(!is_internal(&key));
        assert_eq!(query(&s, "RANDOMKEY"), Reply::Bulk(key.clone()), "the same until the next write");
        seen.insert(key);
    }
    assert!(seen.len() > 4, "the pick moves with the revision: {seen:?}");
    // In a transaction it reads the store as the transaction left it.
    assert_eq!(exec_lines(&mut s, vec![], &["FLUSHALL", "RANDOMKEY"]), Some(vec![Reply::Ok, Reply::Nil]));
    assert_eq!(
        exec_lines(&mut s, vec![], &["SET only 1", "RANDOMKEY"]),
        Some(vec![Reply::Ok, Reply::bulk("only")])
    );
}

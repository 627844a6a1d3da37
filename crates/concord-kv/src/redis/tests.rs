//! The interpreter against a real store: replies, records, and what other commands do to them.

use super::*;
use crate::{Command, KeyRange, KvError, KvStore, Query, RangeRequest, Response, Write};
use concord_core::StateMachine;

/// The clock of every command in these tests (the helpers below are shared by the family test files).
pub(super) const NOW: Time = Time(1_000_000_000_000_000_000);

pub(super) fn argv(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
}

/// Run one command line as the front door would: writes through the log, reads as queries.
pub(super) fn run(store: &mut KvStore, line: &str) -> Reply {
    run_at(store, line, NOW)
}

pub(super) fn run_at(store: &mut KvStore, line: &str, now: Time) -> Reply {
    run_words(store, &line.split_whitespace().collect::<Vec<_>>(), now)
}

/// [`run_at`] with the arguments given one by one (empty ones, spaces inside one).
pub(super) fn run_words(store: &mut KvStore, words: &[&str], now: Time) -> Reply {
    let line = words.join(" ");
    let call = RedisCall::new(words.iter().map(|w| w.as_bytes().to_vec()).collect());
    let response = if is_write(&call.name()) == Some(true) {
        let keys = call.argv.get(1).cloned().into_iter().collect();
        let exec = RedisExec { keys, watch: vec![], calls: vec![call] };
        store.execute(&Command::new(now, Write::Redis(exec)))
    } else {
        store.read(&Query::Redis(RedisExec::read(call)))
    };
    match response {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{line}: {other:?}"),
    }
}

/// Reply builders shared by the family test files.
pub(super) fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

pub(super) fn i(n: i64) -> Reply {
    Reply::Int(n)
}

pub(super) fn err(line: &str) -> Reply {
    Reply::error(line)
}

/// An array of bulk strings from a space-separated line ("" for an empty array).
pub(super) fn bulks(line: &str) -> Reply {
    Reply::Array(line.split_whitespace().map(b).collect())
}

/// `"a 1 b 2"` as pairs of member and score (`WITHSCORES`).
pub(super) fn scored(line: &str) -> Reply {
    let words: Vec<&str> = line.split_whitespace().collect();
    Reply::scored(words.chunks(2).map(|p| (p[0].as_bytes().to_vec(), zset::float(p[1].as_bytes()).unwrap())))
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

fn user_keys(store: &KvStore) -> Vec<String> {
    let page = store.read(&Query::Range(RangeRequest::new(KeyRange::from(""), 1000))).unwrap();
    let Response::Range(page) = page else { panic!() };
    page.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

#[test]
fn hash_fields_are_set_read_counted_and_deleted() {
    let mut s = KvStore::default();
    assert_eq!(run(&mut s, "HSET h a 1 b 2"), Reply::Int(2));
    assert_eq!(run(&mut s, "HSET h a 3 c 4"), Reply::Int(1));
    assert_eq!(run(&mut s, "HGET h a"), bulk("3"));
    assert_eq!(run(&mut s, "HGET h zz"), Reply::Nil);
    assert_eq!(run(&mut s, "HLEN h"), Reply::Int(3));
    assert_eq!(
        run(&mut s, "HGETALL h"),
        Reply::Map(vec![(bulk("a"), bulk("3")), (bulk("b"), bulk("2")), (bulk("c"), bulk("4"))])
    );
    assert_eq!(run(&mut s, "HMGET h a nope c"), Reply::Array(vec![bulk("3"), Reply::Nil, bulk("4")]));
    assert_eq!(run(&mut s, "HINCRBY h a 10"), Reply::Int(13));
    assert_eq!(run(&mut s, "HINCRBY h b x"), Reply::error("ERR value is not an integer or out of range"));
    // A stored value in Redis's integer grammar only (found by `concord difftest`).
    for stored in ["+1", "01", "-0", " 1"] {
        run_words(&mut s, &["HSET", "hn", "n", stored], NOW);
        assert_eq!(
            run(&mut s, "HINCRBY hn n 1"),
            Reply::error("ERR hash value is not an integer"),
            "{stored}"
        );
    }
    assert_eq!(run(&mut s, "DEL hn"), Reply::Int(1));
    assert_eq!(run(&mut s, "HDEL h a b nope"), Reply::Int(2));
    assert_eq!(run(&mut s, "TYPE h"), Reply::Status("hash".into()));
    // The last field gone: the key is gone, records and all.
    assert_eq!(run(&mut s, "HDEL h c"), Reply::Int(1));
    assert_eq!(run(&mut s, "TYPE h"), Reply::Status("none".into()));
    assert_eq!(s.len(), 0, "no records left behind");
    s.check_invariants().unwrap();
}

#[test]
fn a_command_on_the_wrong_kind_is_refused_as_redis_words_it() {
    let mut s = KvStore::default();
    s.execute(&Command::put(NOW, "str", "v")).unwrap();
    assert_eq!(run(&mut s, "HSET str a 1"), Reply::wrong_type());
    assert_eq!(run(&mut s, "HGET str a"), Reply::wrong_type());
    assert_eq!(run(&mut s, "TYPE str"), Reply::Status("string".into()));
    // The empty string is a string, not a collection.
    s.execute(&Command::put(NOW, "empty", "")).unwrap();
    assert_eq!(run(&mut s, "TYPE empty"), Reply::Status("string".into()));
    assert_eq!(run(&mut s, "HLEN empty"), Reply::wrong_type());
}

#[test]
fn set_delete_and_expiry_take_a_collections_records_with_it() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h a 1 b 2");
    s.execute(&Command::put(NOW, "h", "now a string")).unwrap();
    assert_eq!(run(&mut s, "TYPE h"), Reply::Status("string".into()));
    assert_eq!(s.len(), 1, "only the string remains");

    run(&mut s, "HSET h2 a 1");
    assert_eq!(
        s.execute(&Command::delete(NOW, "h2")).unwrap(),
        Response::Delete { revision: s.revision(), deleted: 1 }
    );
    assert_eq!(s.len(), 1);

    // EXPIRE keeps the records until the deadline; housekeeping's expiry removes them all.
    run(&mut s, "HSET h3 a 1 b 2");
    assert_eq!(run(&mut s, "EXPIRE h3 10"), Reply::Int(1));
    assert_eq!(run(&mut s, "HLEN h3"), Reply::Int(2));
    let later = NOW + std::time::Duration::from_secs(11);
    for command in s.housekeeping(later) {
        s.execute(&command).unwrap();
    }
    assert_eq!(run(&mut s, "TYPE h3"), Reply::Status("none".into()));
    assert_eq!(s.len(), 1);
    s.check_invariants().unwrap();
}

#[test]
fn scans_show_keys_not_records_and_clients_cannot_name_records() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h a 1");
    s.execute(&Command::put(NOW, "k", "v")).unwrap();
    assert_eq!(user_keys(&s), ["h", "k"]);
    let record = record_prefix(b"h");
    let refused = s.execute(&Command::put(NOW, record.clone(), "x"));
    assert!(matches!(refused, Err(KvError::ReservedKey { .. })), "{refused:?}");
    assert!(matches!(s.read(&Query::get(record)), Err(KvError::ReservedKey { .. })));
    // Deleting everything deletes the records too.
    s.execute(&Command::delete_range(NOW, KeyRange::from(""))).unwrap();
    assert_eq!(s.len(), 0);
}

#[test]
fn collections_survive_a_snapshot() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h a 1 b 2");
    run(&mut s, "EXPIRE h 100");
    let mut restored = KvStore::default();
    restored.restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
    assert_eq!(run(&mut restored, "HGETALL h"), run(&mut s, "HGETALL h"));
}

#[test]
fn expire_follows_redis_conditions_and_past_deadlines_delete() {
    let mut s = KvStore::default();
    s.execute(&Command::put(NOW, "k", "v")).unwrap();
    assert_eq!(run(&mut s, "EXPIRE k 100 XX"), Reply::Int(0), "XX: no TTL yet");
    assert_eq!(run(&mut s, "EXPIRE k 100 GT"), Reply::Int(0), "GT: no TTL counts as infinite");
    assert_eq!(run(&mut s, "EXPIRE k 100 NX"), Reply::Int(1));
    assert_eq!(run(&mut s, "EXPIRE k 50 GT"), Reply::Int(0));
    assert_eq!(run(&mut s, "PEXPIRE k 50 LT"), Reply::Int(1));
    assert_eq!(
        run(&mut s, "EXPIRE k 1 NX XX"),
        Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(run(&mut s, "EXPIRE k 1 FOO"), Reply::error("ERR Unsupported option FOO"));
    assert_eq!(
        run(&mut s, "EXPIRE k 9223372036854775807"),
        Reply::error("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(run(&mut s, "PERSIST k"), Reply::Int(1));
    assert_eq!(run(&mut s, "PERSIST k"), Reply::Int(0));
    assert_eq!(run(&mut s, "EXPIRE k 0"), Reply::Int(1), "a deadline already past deletes the key");
    assert_eq!(run(&mut s, "TYPE k"), Reply::Status("none".into()));
    assert_eq!(run(&mut s, "EXPIRE nope 10"), Reply::Int(0));
}

#[test]
fn a_watched_key_that_changed_stops_the_whole_exec() {
    let mut s = KvStore::default();
    run(&mut s, "HSET h a 1");
    let seen = s.get(b"h").unwrap().mod_revision;
    let exec = |watch: u64| RedisExec {
        keys: vec![b"h".to_vec()],
        watch: vec![(b"h".to_vec(), watch)],
        calls: vec![RedisCall::new(argv("HSET h b 2")), RedisCall::new(argv("HLEN h"))],
    };
    let stale = s.execute(&Command::new(NOW, Write::Redis(exec(seen - 1)))).unwrap();
    assert_eq!(stale, Response::Redis { revision: s.revision(), replies: None });
    let fresh = s.execute(&Command::new(NOW, Write::Redis(exec(seen)))).unwrap();
    assert_eq!(
        fresh,
        Response::Redis { revision: s.revision(), replies: Some(vec![Reply::Int(1), Reply::Int(2)]) }
    );
    // One revision for the whole exec.
    assert_eq!(s.revision(), seen + 1);
}

/// Run `lines` as one transaction (one `RedisExec`, as EXEC sends it): their replies.
fn run_transaction(store: &mut KvStore, lines: &[&str]) -> Vec<Reply> {
    let calls: Vec<RedisCall> = lines.iter().map(|line| RedisCall::new(argv(line))).collect();
    let exec = RedisExec { keys: vec![], watch: vec![], calls };
    match store.execute(&Command::new(NOW, Write::Redis(exec))) {
        Ok(Response::Redis { replies: Some(replies), .. }) => replies,
        other => panic!("{lines:?}: {other:?}"),
    }
}

/// KEYS, SCAN and DBSIZE inside MULTI see the transaction's own earlier writes, and never the
/// collections' internal records.
#[test]
fn keyspace_reads_in_a_transaction_see_its_earlier_writes() {
    let mut s = KvStore::default();
    s.execute(&Command::put(NOW, "b", "1")).unwrap();
    let replies = run_transaction(
        &mut s,
        &[
            "KEYS *",
            "SET a 1",
            "HSET h f v",
            "KEYS *",
            "KEYS ?",
            "DBSIZE",
            "SCAN 0 COUNT 2",
            "SCAN 0 TYPE hash",
            "SCAN 0 MATCH b*",
            "DEL a",
            "DBSIZE",
            "SCAN 0 COUNT 0",
            "SCAN 0 FOO",
            "SCAN 0 COUNT",
            "SCAN x",
        ],
    );
    let keys = |ks: &[&str]| Reply::Array(ks.iter().map(|k| bulk(k)).collect());
    let page = |cursor: &str, ks: &[&str]| Reply::Array(vec![bulk(cursor), keys(ks)]);
    assert_eq!(replies[0], keys(&["b"]));
    assert_eq!(replies[3], keys(&["a", "b", "h"]));
    assert_eq!(replies[4], keys(&["a", "b", "h"]));
    assert_eq!(replies[5], Reply::Int(3));
    assert_eq!(replies[6], page(&crate::cursor::encode(b"h"), &["a", "b"]));
    assert_eq!(replies[7], page("0", &["h"]));
    assert_eq!(replies[8], page("0", &["b"]));
    assert_eq!(replies[10], Reply::Int(2));
    assert_eq!(replies[11], Reply::error("ERR syntax error"));
    assert_eq!(replies[12], Reply::error("ERR syntax error"));
    assert_eq!(replies[13], Reply::error("ERR syntax error"));
    assert_eq!(replies[14], Reply::error("ERR invalid cursor"));
}

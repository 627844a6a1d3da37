//! `EVAL` against a real store, through the log as the front door sends it: redis-py's `Lock`
//! scripts, atomicity, and replicas computing the same thing.

use super::super::{RedisCall, RedisExec};
use super::*;
use crate::{Command, KvStore, Query, Response, Write};
use concord_core::{StateMachine, Time};

const NOW: Time = Time(1_700_000_000_000 * 1_000_000);

fn argv(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn eval_at(store: &mut KvStore, now: Time, body: &str, keys: &[&str], args: &[&str]) -> Reply {
    let mut v = argv(&["EVAL", body, &keys.len().to_string()]);
    v.extend(argv(keys));
    v.extend(argv(args));
    let exec = RedisExec { keys: argv(keys), watch: vec![], calls: vec![RedisCall::new(v)] };
    match store.execute(&Command::new(now, Write::Redis(exec))) {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{body}: {other:?}"),
    }
}

fn eval(store: &mut KvStore, body: &str, keys: &[&str], args: &[&str]) -> Reply {
    eval_at(store, NOW, body, keys, args)
}

fn eval_ro(store: &KvStore, body: &str, keys: &[&str]) -> Reply {
    let mut v = argv(&["EVAL_RO", body, &keys.len().to_string()]);
    v.extend(argv(keys));
    let exec = RedisExec { keys: argv(keys), watch: vec![], calls: vec![RedisCall::new(v)] };
    match store.read(&Query::Redis(exec)) {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{body}: {other:?}"),
    }
}

// redis-py 5's Lock scripts, verbatim.
const RELEASE: &str = "
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    ";
const EXTEND: &str = "
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        local expiration = redis.call('pttl', KEYS[1])
        if not expiration then
            expiration = 0
        end
        if expiration < 0 then
            return 0
        end

        local newttl = ARGV[2]
        if ARGV[3] == \"0\" then
            newttl = ARGV[2] + expiration
        end
        redis.call('pexpire', KEYS[1], newttl)
        return 1
    ";

#[test]
fn redis_py_lock_scripts_release_and_extend() {
    let mut s = KvStore::default();
    assert_eq!(
        eval(&mut s, "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', '10000')", &["lock"], &["tok"]),
        Reply::Ok
    );
    assert_eq!(
        eval(&mut s, "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', '10000')", &["lock"], &["x"]),
        Reply::Nil
    );
    assert_eq!(eval(&mut s, EXTEND, &["lock"], &["other", "5000", "0"]), Reply::Int(0));
    assert_eq!(eval(&mut s, EXTEND, &["lock"], &["tok", "5000", "0"]), Reply::Int(1));
    assert_eq!(eval(&mut s, "return redis.call('pttl', KEYS[1])", &["lock"], &[]), Reply::Int(15_000));
    assert_eq!(eval(&mut s, EXTEND, &["lock"], &["tok", "3000", "1"]), Reply::Int(1));
    assert_eq!(eval(&mut s, "return redis.call('pttl', KEYS[1])", &["lock"], &[]), Reply::Int(3_000));
    assert_eq!(eval(&mut s, RELEASE, &["lock"], &["other"]), Reply::Int(0));
    assert_eq!(eval_ro(&s, "return redis.call('get', KEYS[1])", &["lock"]), Reply::bulk("tok"));
    assert_eq!(eval(&mut s, RELEASE, &["lock"], &["tok"]), Reply::Int(1));
    assert_eq!(eval_ro(&s, "return redis.call('exists', KEYS[1])", &["lock"]), Reply::Int(0));
    assert_eq!(eval(&mut s, EXTEND, &["lock"], &["tok", "5000", "0"]), Reply::Int(0));
}

#[test]
fn a_script_is_one_revision_and_keeps_its_writes_before_an_error() {
    let mut s = KvStore::default();
    let before = s.revision();
    let body = "redis.call('set', 'a', '1'); redis.call('hset', 'h', 'f', 'v'); redis.call('incr', 'a'); \
                return redis.call('hget', 'h', 'f')";
    assert_eq!(eval(&mut s, body, &[], &[]), Reply::bulk("v"));
    assert_eq!(s.revision(), before + 1, "every write of the script shares one revision");
    // Redis has no rollback: what ran before the error stays (and is the same on every replica).
    let reply =
        eval(&mut s, "redis.call('incr', 'a'); redis.call('incr', 'h'); redis.call('incr', 'a')", &[], &[]);
    assert!(matches!(&reply, Reply::Error(e) if e.starts_with("WRONGTYPE")), "{reply:?}");
    assert_eq!(eval_ro(&s, "return redis.call('get', 'a')", &[]), Reply::bulk("3"));
}

#[test]
fn read_only_scripts_refuse_writes() {
    let mut s = KvStore::default();
    eval(&mut s, "return redis.call('set', 'k', 'v')", &[], &[]);
    let reply = eval_ro(&s, "return redis.call('del', 'k')", &[]);
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR Write commands are not allowed from read-only scripts. script: ")),
        "{reply:?}"
    );
    assert_eq!(eval_ro(&s, "return redis.call('get', 'k')", &[]), Reply::bulk("v"));
}

#[test]
fn calls_are_counted_against_redis_arities() {
    let mut s = KvStore::default();
    let reply = eval(&mut s, "return redis.call('hset', 'h')", &[], &[]);
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR Wrong number of args calling Redis command from script")),
        "{reply:?}"
    );
    let reply = eval(&mut s, "return redis.call('xadd', 's', '*', 'f', 'v')", &[], &[]);
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR Unknown Redis command called from script")),
        "{reply:?}"
    );
}

#[test]
fn numkeys_is_checked_as_redis_does() {
    assert_eq!(
        split(&argv(&["return 1", "x"])).unwrap_err(),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(
        split(&argv(&["return 1", "-1"])).unwrap_err(),
        Reply::error("ERR Number of keys can't be negative")
    );
    assert_eq!(
        split(&argv(&["return 1", "2", "k"])).unwrap_err(),
        Reply::error("ERR Number of keys can't be greater than number of args")
    );
    let all = argv(&["b", "1", "k", "a"]);
    let (body, keys, args) = split(&all).unwrap();
    assert_eq!((body, keys, args), (&b"b"[..], &argv(&["k"])[..], &argv(&["a"])[..]));
}

#[test]
fn replicas_running_the_same_log_compute_the_same_state() {
    let body = "local v = tostring(math.random()) .. ' ' .. tostring({}) .. ' ' .. redis.call('incr', 'n') \
                redis.call('set', KEYS[1], v) return v";
    let run = || {
        let mut s = KvStore::default();
        let replies: Vec<Reply> = (0..3).map(|_| eval(&mut s, body, &["k"], &[])).collect();
        (replies, s.snapshot())
    };
    let (a, b) = (run(), run());
    assert_eq!(a.0[0], Reply::bulk("0.17082803611217 table: 0x00000001 1"));
    assert_eq!(a, b, "same replies and byte-identical snapshots");
}

/// A shard of a toy cluster for the cluster checks: a key's slot is its first byte, and the shard
/// serves the slots of `b` and `f` (redis-server's node in `local_keys_only_in_a_cluster`
/// below served two such slots too).
struct ToyShard;

impl crate::redis::Slots for ToyShard {
    fn slot(&self, key: &[u8]) -> u16 {
        key.first().map_or(0, |&b| u16::from(b))
    }
    fn serves(&self, slot: u16) -> bool {
        slot == u16::from(b'b') || slot == u16::from(b'f')
    }
}

fn eval_in_shard(store: &mut KvStore, body: &str, keys: &[&str]) -> Reply {
    let mut v = argv(&["EVAL", body, &keys.len().to_string()]);
    v.extend(argv(keys));
    let exec = RedisExec { keys: argv(keys), watch: vec![], calls: vec![RedisCall::new(v)] };
    match store.execute_in(&Command::new(NOW, Write::Redis(exec)), Some(&ToyShard)) {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{body}: {other:?}"),
    }
}

fn eval_ro_in_shard(store: &KvStore, body: &str, keys: &[&str]) -> Reply {
    let mut v = argv(&["EVAL_RO", body, &keys.len().to_string()]);
    v.extend(argv(keys));
    let exec = RedisExec { keys: argv(keys), watch: vec![], calls: vec![RedisCall::new(v)] };
    match store.read_in(&Query::Redis(exec), Some(&ToyShard)) {
        Ok(Response::Redis { replies: Some(mut replies), .. }) => replies.pop().unwrap(),
        other => panic!("{body}: {other:?}"),
    }
}

/// Redis Cluster 7.0's answers (a three-node redis-server cluster; the node asked served the slots
/// of `b` and `f`, not `a`'s): a call may touch any key of a slot its node serves, declared or
/// not, but not a key elsewhere, nor keys of two slots in one call.
#[test]
fn local_keys_only_in_a_cluster() {
    let non_local = "ERR Script attempted to access a non local key in a cluster node";
    let raised = |body: &str| {
        Reply::Error(format!("{non_local} script: {}, on @user_script:1.", lua::sha1hex(body.as_bytes())))
    };
    let mut s = KvStore::default();
    assert_eq!(eval_in_shard(&mut s, "return redis.call('set', KEYS[1], 'v')", &["b"]), Reply::Ok);
    for (body, keys) in [
        ("return redis.call('get', 'a')", &["b"][..]),
        ("return redis.call('get', 'a')", &[]),
        ("return redis.call('mget', 'b', 'f')", &[]),
        ("return redis.call('mget', 'b', 'a')", &["b"]),
        ("return redis.call('zunionstore', 'b', 2, 'b', 'a')", &["b"]),
        ("return redis.call('sintercard', 2, 'f', 'b')", &["b"]),
        ("return redis.call('lmove', 'b', 'a', 'left', 'left')", &["b"]),
    ] {
        assert_eq!(eval_in_shard(&mut s, body, keys), raised(body), "{body}");
    }
    // Allowed: undeclared keys of a served slot, the same one or another; keyless calls.
    assert_eq!(eval_in_shard(&mut s, "return redis.call('get', 'bee')", &["b"]), Reply::Nil);
    assert_eq!(eval_in_shard(&mut s, "return redis.call('get', 'f')", &["b"]), Reply::Nil);
    assert_eq!(eval_in_shard(&mut s, "return redis.call('get', 'b')", &[]), Reply::bulk("v"));
    assert_eq!(
        eval_in_shard(&mut s, "return redis.call('zunionstore', 'fz', 1, 'f')", &["b"]),
        Reply::Int(0)
    );
    // redis.pcall returns the refusal; the write before it is kept, the refused one never made.
    let body = "redis.call('set', 'b', 'w') local e = redis.pcall('set', 'a', 'x') return e['err']";
    assert_eq!(eval_in_shard(&mut s, body, &["b"]), Reply::bulk(non_local));
    assert_eq!(s.get(b"b").map(|kv| kv.value), Some(b"w".to_vec()));
    assert_eq!(s.get(b"a"), None);
    // Read-only scripts: the write check comes first, as in Redis.
    let body = "return redis.call('get', 'a')";
    assert_eq!(eval_ro_in_shard(&s, body, &["b"]), raised(body));
    let body = "return redis.call('set', 'a', 1)";
    assert_eq!(
        eval_ro_in_shard(&s, body, &["b"]),
        Reply::Error(format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.",
            lua::sha1hex(body.as_bytes())
        ))
    );
    assert_eq!(eval_ro_in_shard(&s, "return redis.call('get', 'f')", &["b"]), Reply::Nil);
    // Outside the sharded mode every key is local.
    assert_eq!(eval(&mut s, "return redis.call('set', 'a', 'x')", &["b"], &[]), Reply::Ok);
}

/// The key positions scripts check, for each shape of key spec.
#[test]
fn call_keys_follow_redis_key_specs() {
    let keys = |words: &[&str]| -> Vec<String> {
        call_keys(&argv(words)).into_iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
    };
    assert_eq!(keys(&["GET", "k"]), ["k"]);
    assert_eq!(keys(&["mset", "a", "1", "b", "2"]), ["a", "b"]);
    assert_eq!(keys(&["del", "a", "b", "c"]), ["a", "b", "c"]);
    assert_eq!(keys(&["smove", "a", "b", "m"]), ["a", "b"]);
    assert_eq!(keys(&["sintercard", "2", "a", "b", "LIMIT", "1"]), ["a", "b"]);
    assert_eq!(keys(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]), ["d", "a", "b"]);
    assert_eq!(keys(&["blmpop", "0", "2", "a", "b", "LEFT"]), ["a", "b"]);
    assert_eq!(keys(&["lmpop", "9", "a", "LEFT"]), ["a", "LEFT"]);
    assert_eq!(keys(&["lmpop", "x", "a", "LEFT"]), Vec::<String>::new());
    assert_eq!(keys(&["zinterstore", "d", "-1", "a"]), Vec::<String>::new());
    assert_eq!(keys(&["hset", "h", "f", "v"]), ["h"]);
    assert_eq!(keys(&["sort", "l", "BY", "w_*", "store", "dst"]), ["l", "dst"]);
    assert_eq!(keys(&["sort", "l", "store"]), ["l"]);
    assert_eq!(keys(&["sort", "l", "LIMIT", "0", "1"]), ["l"]);
    assert_eq!(keys(&["sort", "l", "GET", "store", "STORE", "a", "STORE", "b"]), ["l", "b"]);
    assert_eq!(keys(&["sort_ro", "l", "GET", "#"]), ["l"]);
    assert_eq!(keys(&["nosuch", "h"]), Vec::<String>::new());
}

/// Every command the interpreter runs has a row, and no row of a command it runs is left
/// unmodelled (keyword-found keys such as `XREAD … STREAMS` would need their own shape).
#[test]
fn every_interpreter_command_has_modelled_keys() {
    for spec in crate::redis::commands() {
        if let Some(&(name, _, keys)) = row(spec.name) {
            assert_ne!(keys, Unmodelled, "{name}: the script cluster check needs its key positions");
        }
    }
    assert!(COMMAND_TABLE.windows(2).all(|w| w[0].0 < w[1].0), "sorted by name");
}

/// Whole-store commands are refused from scripts (a shard's script would reach slots it does not
/// serve), in every mode alike; keyed ones such as `TOUCH` run.
#[test]
fn scripts_cannot_flush_or_pick_a_random_key() {
    let mut s = KvStore::default();
    assert_eq!(eval(&mut s, "return redis.call('set', KEYS[1], 'v')", &["k"], &[]), Reply::Ok);
    for command in ["flushall", "flushdb", "randomkey"] {
        let reply = eval(&mut s, &format!("return redis.pcall('{command}')"), &[], &[]);
        let Reply::Error(e) = &reply else { panic!("{command}: {reply:?}") };
        assert!(e.contains(&format!("{} is not allowed from scripts", command.to_uppercase())), "{e}");
    }
    assert_eq!(eval(&mut s, "return redis.call('touch', KEYS[1], 'nope')", &["k"], &[]), Reply::Int(1));
    assert_eq!(eval_ro(&s, "return redis.call('exists', KEYS[1])", &["k"]), Reply::Int(1));
}

/// Blocking pops in scripts, as redis-server 7.0 answers: BLPOP and its kin are `noscript`,
/// BLMPOP does not block (nil on an empty list); OBJECT runs.
#[test]
fn scripts_and_blocking_pops_and_object() {
    let mut s = KvStore::default();
    for body in ["return redis.pcall('blpop', 'q', 0)", "return redis.pcall('bzpopmax', 'z', 0)"] {
        assert_eq!(
            eval(&mut s, body, &[], &[]),
            Reply::error("ERR This Redis command is not allowed from script")
        );
    }
    assert_eq!(eval(&mut s, "return redis.call('blmpop', 0, 1, 'q', 'LEFT')", &["q"], &[]), Reply::Nil);
    eval(&mut s, "return redis.call('rpush', KEYS[1], 'a')", &["q"], &[]);
    assert_eq!(
        eval(&mut s, "return redis.call('blmpop', 0, 1, KEYS[1], 'LEFT')", &["q"], &[]),
        Reply::Array(vec![Reply::bulk("q"), Reply::Array(vec![Reply::bulk("a")])])
    );
    assert_eq!(eval(&mut s, "return redis.call('set', KEYS[1], 'abc')", &["s"], &[]), Reply::Ok);
    assert_eq!(
        eval_ro(&s, "return redis.call('object', 'encoding', KEYS[1])", &["s"]),
        Reply::bulk("embstr")
    );
}

//! `EVAL` and `EVAL_RO` (`@scripting`): a Lua script as one interpreter command.
//!
//! A script is an interpreter command like `HSET`: its log entry carries the script's **body**,
//! keys and arguments (the front door resolves `EVALSHA` to the body from its cache, so a replica
//! never needs a cache of its own), and every replica runs it in the Lua sandbox ([`super::lua`])
//! with `redis.call` dispatched to the interpreter against the same transaction: one log entry,
//! one revision, atomic – and inside `MULTI … EXEC` like any other command. `EVAL_RO` runs as a
//! read against the applied state; its `redis.call` refuses writes.
//!
//! Scripts reach every interpreter command plus the string commands of [`super::string`]. The
//! interpreter's commands trust the front door to have counted their arguments; a script's calls
//! never pass the front door, so they are counted here, against Redis's own arities
//! ([`COMMAND_TABLE`]).
//!
//! ## Scripts in a sharded cluster
//! The front door routes a script by its declared `KEYS` (one slot, or `-CROSSSLOT`), but nothing
//! stops its body from calling `redis.call('get', 'other')` on a key it never declared. In the
//! sharded mode the state machine running the script holds only its shard's slots, so such a
//! call would read (or write!) a key where it does not live. Redis Cluster refuses it on the node,
//! and so does the interpreter here, deterministically, when the store tells it which slots it
//! serves ([`super::Slots`], given by the shard's state machine): a call whose keys hash to
//! several slots, or to one this shard does not serve, fails with Redis 7.0's
//! `ERR Script attempted to access a non local key in a cluster node` (raised by `redis.call`,
//! returned by `redis.pcall`). Undeclared keys of slots the shard serves are allowed, as Redis
//! 7.0 allows a script without a `#!lua` flags line to touch any key of its node. The key
//! positions come from the same table as the arities. Outside the sharded mode (no
//! [`super::Slots`]) nothing is checked: every key is local.
//!
//! One difference is structural: a Redis node owns all the slots of all the shards it leads,
//! while a Concord script runs inside one shard's state machine, so a key of another shard led by
//! the same node is refused here and allowed by Redis.

use super::args::int;
use super::lua::{self, Budget};
use super::{read, write, Outcome, Reply, Run, Slots, Spec, Tx, View};
use Keys::{Counted, Range, Unmodelled};

pub const COMMANDS: &[Spec] = &[write("eval", eval), read("eval_ro", eval_ro)];

/// `EVAL script numkeys [key …] [arg …]`
fn eval(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (body, keys, argv) = split(args)?;
    Ok(lua::run(body, keys, argv, &Budget::default(), &mut |argv| call(tx, argv)))
}

/// `EVAL_RO script numkeys [key …] [arg …]`
fn eval_ro(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (body, keys, argv) = split(args)?;
    Ok(lua::run(body, keys, argv, &Budget::default(), &mut |argv| call_read_only(view, argv)))
}

/// A script's body, its keys, and its other arguments.
type Parts<'a> = (&'a [u8], &'a [Vec<u8>], &'a [Vec<u8>]);

/// The body, the keys and the other arguments, with Redis's errors for a bad `numkeys`.
pub fn split(args: &[Vec<u8>]) -> Result<Parts<'_>, Reply> {
    let (body, numkeys, rest) = match args {
        [body, numkeys, rest @ ..] => (body, numkeys, rest),
        _ => return Err(Reply::error("ERR wrong number of arguments for 'eval' command")),
    };
    let n = int(numkeys)?;
    if n < 0 {
        return Err(Reply::error("ERR Number of keys can't be negative"));
    }
    if n as u64 > rest.len() as u64 {
        return Err(Reply::error("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, argv) = rest.split_at(n as usize);
    Ok((body, keys, argv))
}

/// A command's spec for a script: the interpreter's (strings included).
fn lookup(name: &str) -> Option<&'static Spec> {
    super::lookup(name)
}

/// Arity first (see the module docs), then the command itself.
fn checked(argv: &[Vec<u8>]) -> Result<(&'static Spec, String), Reply> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let unknown = || Reply::error(format!("ERR unknown command '{name}'"));
    let spec = lookup(&name).ok_or_else(unknown)?;
    if super::spans_store(&name) {
        // A shard's group runs scripts over its own store, which holds frozen slots it no longer
        // serves: a whole-store command there would reach them. Refused in every mode alike.
        return Err(Reply::error(format!(
            "ERR {} is not allowed from scripts by Concord: it acts on every key, and a script runs \
             where its keys live",
            name.to_uppercase()
        )));
    }
    let arity = row(&name).map(|&(_, arity, _)| arity).ok_or_else(unknown)?;
    let n = argv.len() as i64;
    let arity = i64::from(arity);
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        return Err(Reply::error(format!("ERR wrong number of arguments for '{name}' command")));
    }
    Ok((spec, name))
}

/// One `redis.call` of `EVAL`, in the script's transaction.
fn call(tx: &mut Tx, argv: Vec<Vec<u8>>) -> Reply {
    let spec = match checked(&argv) {
        Ok((spec, _)) => spec,
        Err(e) => return e,
    };
    if let Err(e) = local(tx.slots, &argv) {
        return e;
    }
    match spec.run {
        Run::Read(run) => run(&tx.view(), &argv[1..]),
        Run::Write(run) => run(tx, &argv[1..]),
    }
    .unwrap_or_else(|e| e)
}

/// One `redis.call` of `EVAL_RO`: reads only.
fn call_read_only(view: &View, argv: Vec<Vec<u8>>) -> Reply {
    let spec = match checked(&argv) {
        Ok((spec, _)) => spec,
        Err(e) => return e,
    };
    match spec.run {
        Run::Read(run) => local(view.slots, &argv).and_then(|()| run(view, &argv[1..])).unwrap_or_else(|e| e),
        Run::Write(_) => Reply::error("ERR Write commands are not allowed from read-only scripts."),
    }
}

/// Redis Cluster's check of a script's call (see the module docs): its keys must all hash to
/// one slot, and the shard must serve it. Always passes outside the sharded mode.
fn local(slots: Option<&dyn Slots>, argv: &[Vec<u8>]) -> Result<(), Reply> {
    let Some(slots) = slots else { return Ok(()) };
    let mut keys = call_keys(argv).into_iter().map(|key| slots.slot(key));
    let Some(first) = keys.next() else { return Ok(()) };
    if keys.all(|slot| slot == first) && slots.serves(first) {
        Ok(())
    } else {
        Err(Reply::error("ERR Script attempted to access a non local key in a cluster node"))
    }
}

/// Where a command's keys are, as Redis 7.0's key specs say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    /// Arguments `first..=last` every `step` (`last` negative counts from the end, `-1` the last
    /// argument); `first` 0: no keys. Redis's legacy `(firstkey, lastkey, step)` triple.
    Range(i8, i8, i8),
    /// A key count at argument `at` and the keys after it (`SINTERCARD numkeys key …`), after a
    /// destination key at argument 1 if `dest` (`ZUNIONSTORE dst numkeys key …`).
    Counted { at: u8, dest: bool },
    /// `SORT key … [STORE destination]`: the key, and the argument after the last `STORE` (the
    /// keys its `BY`/`GET` patterns name are not counted, as in Redis's key specs).
    Sort,
    /// Found by keyword (`STREAMS`): the interpreter runs none of these (a test keeps it so), so
    /// they are never asked.
    Unmodelled,
}

/// The keys of a command (`argv[0]` its name, arity already checked): Redis's
/// `getKeysFromCommand`. A key count that is not a number gives no keys at all, as in Redis (the
/// command then fails on its own).
fn call_keys(argv: &[Vec<u8>]) -> Vec<&[u8]> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let Some(&(_, _, keys)) = row(&name) else { return vec![] };
    let n = argv.len() as i64;
    let positions: Vec<i64> = match keys {
        Keys::Range(first, _, step) if first <= 0 || step <= 0 => vec![],
        Keys::Range(first, last, step) => {
            let last = if last < 0 { n + i64::from(last) } else { i64::from(last).min(n - 1) };
            (i64::from(first)..=last).step_by(step as usize).collect()
        }
        Keys::Counted { at, dest } => {
            let at = i64::from(at);
            match argv.get(at as usize).and_then(|c| int(c).ok()).filter(|&c| c >= 0) {
                // Keys past the end are left out (the command then fails on its arguments).
                Some(count) => dest
                    .then_some(1)
                    .into_iter()
                    .chain(at + 1..(at + 1).saturating_add(count).min(n))
                    .collect(),
                None => vec![],
            }
        }
        Keys::Sort => {
            // Redis's `sortGetKeys`: skip the arguments of LIMIT, GET and BY; the last STORE wins.
            let (mut store, mut i) = (None, 2);
            while i < argv.len() {
                let word = argv[i].to_ascii_lowercase();
                match word.as_slice() {
                    b"limit" => i += 2,
                    b"get" | b"by" => i += 1,
                    b"store" if i + 1 < argv.len() => {
                        store = Some(i as i64 + 1);
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            std::iter::once(1).chain(store).collect()
        }
        Keys::Unmodelled => vec![],
    };
    positions.into_iter().filter_map(|i| argv.get(i as usize)).map(Vec::as_slice).collect()
}

/// The command's row of [`COMMAND_TABLE`].
fn row(name: &str) -> Option<&'static (&'static str, i8, Keys)> {
    COMMAND_TABLE.binary_search_by(|(n, _, _)| n.cmp(&name)).ok().map(|i| &COMMAND_TABLE[i])
}

/// Redis 7's arity and key positions of every data command (name included; negative arity: at
/// least), from redis-server 7.0's `COMMAND INFO`, sorted by name. Commands the interpreter does not
/// run are never looked up.
const COMMAND_TABLE: &[(&str, i8, Keys)] = &[
    ("append", 3, Range(1, 1, 1)),
    ("bitcount", -2, Range(1, 1, 1)),
    ("bitfield", -2, Range(1, 1, 1)),
    ("bitfield_ro", -2, Range(1, 1, 1)),
    ("bitop", -4, Range(2, -1, 1)),
    ("bitpos", -3, Range(1, 1, 1)),
    ("blmpop", -5, Counted { at: 2, dest: false }),
    ("brpoplpush", 4, Range(1, 2, 1)),
    ("bzmpop", -5, Counted { at: 2, dest: false }),
    ("copy", -3, Range(1, 2, 1)),
    ("dbsize", 1, Range(0, 0, 0)),
    ("decr", 2, Range(1, 1, 1)),
    ("decrby", 3, Range(1, 1, 1)),
    ("del", -2, Range(1, -1, 1)),
    ("dump", 2, Range(1, 1, 1)),
    ("exists", -2, Range(1, -1, 1)),
    ("expire", -3, Range(1, 1, 1)),
    ("expireat", -3, Range(1, 1, 1)),
    ("expiretime", 2, Range(1, 1, 1)),
    ("flushall", -1, Range(0, 0, 0)),
    ("flushdb", -1, Range(0, 0, 0)),
    ("geoadd", -5, Range(1, 1, 1)),
    ("geodist", -4, Range(1, 1, 1)),
    ("geohash", -2, Range(1, 1, 1)),
    ("geopos", -2, Range(1, 1, 1)),
    ("georadius", -6, Unmodelled),
    ("georadius_ro", -6, Range(1, 1, 1)),
    ("georadiusbymember", -5, Unmodelled),
    ("georadiusbymember_ro", -5, Range(1, 1, 1)),
    ("geosearch", -7, Range(1, 1, 1)),
    ("geosearchstore", -8, Range(1, 2, 1)),
    ("get", 2, Range(1, 1, 1)),
    ("getbit", 3, Range(1, 1, 1)),
    ("getdel", 2, Range(1, 1, 1)),
    ("getex", -2, Range(1, 1, 1)),
    ("getrange", 4, Range(1, 1, 1)),
    ("getset", 3, Range(1, 1, 1)),
    ("hdel", -3, Range(1, 1, 1)),
    ("hexists", 3, Range(1, 1, 1)),
    ("hget", 3, Range(1, 1, 1)),
    ("hgetall", 2, Range(1, 1, 1)),
    ("hincrby", 4, Range(1, 1, 1)),
    ("hincrbyfloat", 4, Range(1, 1, 1)),
    ("hkeys", 2, Range(1, 1, 1)),
    ("hlen", 2, Range(1, 1, 1)),
    ("hmget", -3, Range(1, 1, 1)),
    ("hmset", -4, Range(1, 1, 1)),
    ("hrandfield", -2, Range(1, 1, 1)),
    ("hscan", -3, Range(1, 1, 1)),
    ("hset", -4, Range(1, 1, 1)),
    ("hsetnx", 4, Range(1, 1, 1)),
    ("hstrlen", 3, Range(1, 1, 1)),
    ("hvals", 2, Range(1, 1, 1)),
    ("incr", 2, Range(1, 1, 1)),
    ("incrby", 3, Range(1, 1, 1)),
    ("incrbyfloat", 3, Range(1, 1, 1)),
    ("keys", 2, Range(0, 0, 0)),
    ("lcs", -3, Range(1, 2, 1)),
    ("lindex", 3, Range(1, 1, 1)),
    ("linsert", 5, Range(1, 1, 1)),
    ("llen", 2, Range(1, 1, 1)),
    ("lmove", 5, Range(1, 2, 1)),
    ("lmpop", -4, Counted { at: 1, dest: false }),
    ("lpop", -2, Range(1, 1, 1)),
    ("lpos", -3, Range(1, 1, 1)),
    ("lpush", -3, Range(1, 1, 1)),
    ("lpushx", -3, Range(1, 1, 1)),
    ("lrange", 4, Range(1, 1, 1)),
    ("lrem", 4, Range(1, 1, 1)),
    ("lset", 4, Range(1, 1, 1)),
    ("ltrim", 4, Range(1, 1, 1)),
    ("mget", -2, Range(1, -1, 1)),
    ("migrate", -6, Unmodelled),
    ("move", 3, Range(1, 1, 1)),
    ("mset", -3, Range(1, -1, 2)),
    ("msetnx", -3, Range(1, -1, 2)),
    ("object", -2, Range(2, 2, 1)),
    ("persist", 2, Range(1, 1, 1)),
    ("pexpire", -3, Range(1, 1, 1)),
    ("pexpireat", -3, Range(1, 1, 1)),
    ("pexpiretime", 2, Range(1, 1, 1)),
    ("pfadd", -2, Range(1, 1, 1)),
    ("pfcount", -2, Range(1, -1, 1)),
    ("pfdebug", 3, Range(2, 2, 1)),
    ("pfmerge", -2, Range(1, -1, 1)),
    ("pfselftest", 1, Range(0, 0, 0)),
    ("psetex", 4, Range(1, 1, 1)),
    ("pttl", 2, Range(1, 1, 1)),
    ("randomkey", 1, Range(0, 0, 0)),
    ("rename", 3, Range(1, 2, 1)),
    ("renamenx", 3, Range(1, 2, 1)),
    ("restore", -4, Range(1, 1, 1)),
    ("restore-asking", -4, Range(1, 1, 1)),
    ("rpop", -2, Range(1, 1, 1)),
    ("rpoplpush", 3, Range(1, 2, 1)),
    ("rpush", -3, Range(1, 1, 1)),
    ("rpushx", -3, Range(1, 1, 1)),
    ("sadd", -3, Range(1, 1, 1)),
    ("scan", -2, Range(0, 0, 0)),
    ("scard", 2, Range(1, 1, 1)),
    ("sdiff", -2, Range(1, -1, 1)),
    ("sdiffstore", -3, Range(1, -1, 1)),
    ("set", -3, Range(1, 1, 1)),
    ("setbit", 4, Range(1, 1, 1)),
    ("setex", 4, Range(1, 1, 1)),
    ("setnx", 3, Range(1, 1, 1)),
    ("setrange", 4, Range(1, 1, 1)),
    ("sinter", -2, Range(1, -1, 1)),
    ("sintercard", -3, Counted { at: 1, dest: false }),
    ("sinterstore", -3, Range(1, -1, 1)),
    ("sismember", 3, Range(1, 1, 1)),
    ("smembers", 2, Range(1, 1, 1)),
    ("smismember", -3, Range(1, 1, 1)),
    ("smove", 4, Range(1, 2, 1)),
    ("sort", -2, Keys::Sort),
    ("sort_ro", -2, Range(1, 1, 1)),
    ("spop", -2, Range(1, 1, 1)),
    ("srandmember", -2, Range(1, 1, 1)),
    ("srem", -3, Range(1, 1, 1)),
    ("sscan", -3, Range(1, 1, 1)),
    ("strlen", 2, Range(1, 1, 1)),
    ("substr", 4, Range(1, 1, 1)),
    ("sunion", -2, Range(1, -1, 1)),
    ("sunionstore", -3, Range(1, -1, 1)),
    ("swapdb", 3, Range(0, 0, 0)),
    ("touch", -2, Range(1, -1, 1)),
    ("ttl", 2, Range(1, 1, 1)),
    ("type", 2, Range(1, 1, 1)),
    ("unlink", -2, Range(1, -1, 1)),
    ("xack", -4, Range(1, 1, 1)),
    ("xadd", -5, Range(1, 1, 1)),
    ("xautoclaim", -6, Range(1, 1, 1)),
    ("xclaim", -6, Range(1, 1, 1)),
    ("xdel", -3, Range(1, 1, 1)),
    ("xlen", 2, Range(1, 1, 1)),
    ("xpending", -3, Range(1, 1, 1)),
    ("xrange", -4, Range(1, 1, 1)),
    ("xread", -4, Unmodelled),
    ("xreadgroup", -7, Unmodelled),
    ("xrevrange", -4, Range(1, 1, 1)),
    ("xsetid", -3, Range(1, 1, 1)),
    ("xtrim", -4, Range(1, 1, 1)),
    ("zadd", -4, Range(1, 1, 1)),
    ("zcard", 2, Range(1, 1, 1)),
    ("zcount", 4, Range(1, 1, 1)),
    ("zdiff", -3, Counted { at: 1, dest: false }),
    ("zdiffstore", -4, Counted { at: 2, dest: true }),
    ("zincrby", 4, Range(1, 1, 1)),
    ("zinter", -3, Counted { at: 1, dest: false }),
    ("zintercard", -3, Counted { at: 1, dest: false }),
    ("zinterstore", -4, Counted { at: 2, dest: true }),
    ("zlexcount", 4, Range(1, 1, 1)),
    ("zmpop", -4, Counted { at: 1, dest: false }),
    ("zmscore", -3, Range(1, 1, 1)),
    ("zpopmax", -2, Range(1, 1, 1)),
    ("zpopmin", -2, Range(1, 1, 1)),
    ("zrandmember", -2, Range(1, 1, 1)),
    ("zrange", -4, Range(1, 1, 1)),
    ("zrangebylex", -4, Range(1, 1, 1)),
    ("zrangebyscore", -4, Range(1, 1, 1)),
    ("zrangestore", -5, Range(1, 2, 1)),
    ("zrank", 3, Range(1, 1, 1)),
    ("zrem", -3, Range(1, 1, 1)),
    ("zremrangebylex", 4, Range(1, 1, 1)),
    ("zremrangebyrank", 4, Range(1, 1, 1)),
    ("zremrangebyscore", 4, Range(1, 1, 1)),
    ("zrevrange", -4, Range(1, 1, 1)),
    ("zrevrangebylex", -4, Range(1, 1, 1)),
    ("zrevrangebyscore", -4, Range(1, 1, 1)),
    ("zrevrank", 3, Range(1, 1, 1)),
    ("zscan", -3, Range(1, 1, 1)),
    ("zscore", 3, Range(1, 1, 1)),
    ("zunion", -3, Counted { at: 1, dest: false }),
    ("zunionstore", -4, Counted { at: 2, dest: true }),
];

#[cfg(test)]
mod tests;

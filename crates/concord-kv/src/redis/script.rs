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
//! never pass the front door, so they are counted here, against Redis's own arities ([`ARITY`]).

use super::args::int;
use super::lua::{self, Budget};
use super::{read, write, Outcome, Reply, Run, Spec, Tx, View};

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
    let arity =
        ARITY.binary_search_by(|(n, _)| n.cmp(&name.as_str())).map(|i| ARITY[i].1).map_err(|_| unknown())?;
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
        Run::Read(run) => run(view, &argv[1..]).unwrap_or_else(|e| e),
        Run::Write(_) => Reply::error("ERR Write commands are not allowed from read-only scripts."),
    }
}

/// Redis 7's arity of every data command (name included; negative: at least), from redis-server
/// 7.0's `COMMAND`, sorted by name. Commands the interpreter does not run are never looked up.
const ARITY: &[(&str, i8)] = &[
    ("append", 3),
    ("bitcount", -2),
    ("bitfield", -2),
    ("bitfield_ro", -2),
    ("bitop", -4),
    ("bitpos", -3),
    ("blmpop", -5),
    ("bzmpop", -5),
    ("copy", -3),
    ("dbsize", 1),
    ("decr", 2),
    ("decrby", 3),
    ("del", -2),
    ("dump", 2),
    ("exists", -2),
    ("expire", -3),
    ("expireat", -3),
    ("expiretime", 2),
    ("flushall", -1),
    ("flushdb", -1),
    ("geoadd", -5),
    ("geodist", -4),
    ("geohash", -2),
    ("geopos", -2),
    ("georadius", -6),
    ("georadius_ro", -6),
    ("georadiusbymember", -5),
    ("georadiusbymember_ro", -5),
    ("geosearch", -7),
    ("geosearchstore", -8),
    ("get", 2),
    ("getbit", 3),
    ("getdel", 2),
    ("getex", -2),
    ("getrange", 4),
    ("getset", 3),
    ("hdel", -3),
    ("hexists", 3),
    ("hget", 3),
    ("hgetall", 2),
    ("hincrby", 4),
    ("hincrbyfloat", 4),
    ("hkeys", 2),
    ("hlen", 2),
    ("hmget", -3),
    ("hmset", -4),
    ("hrandfield", -2),
    ("hscan", -3),
    ("hset", -4),
    ("hsetnx", 4),
    ("hstrlen", 3),
    ("hvals", 2),
    ("incr", 2),
    ("incrby", 3),
    ("incrbyfloat", 3),
    ("keys", 2),
    ("lcs", -3),
    ("lindex", 3),
    ("linsert", 5),
    ("llen", 2),
    ("lmove", 5),
    ("lmpop", -4),
    ("lpop", -2),
    ("lpos", -3),
    ("lpush", -3),
    ("lpushx", -3),
    ("lrange", 4),
    ("lrem", 4),
    ("lset", 4),
    ("ltrim", 4),
    ("mget", -2),
    ("migrate", -6),
    ("move", 3),
    ("mset", -3),
    ("msetnx", -3),
    ("persist", 2),
    ("pexpire", -3),
    ("pexpireat", -3),
    ("pexpiretime", 2),
    ("pfadd", -2),
    ("pfcount", -2),
    ("pfdebug", 3),
    ("pfmerge", -2),
    ("pfselftest", 1),
    ("psetex", 4),
    ("pttl", 2),
    ("randomkey", 1),
    ("rename", 3),
    ("renamenx", 3),
    ("restore", -4),
    ("restore-asking", -4),
    ("rpop", -2),
    ("rpoplpush", 3),
    ("rpush", -3),
    ("rpushx", -3),
    ("sadd", -3),
    ("scan", -2),
    ("scard", 2),
    ("sdiff", -2),
    ("sdiffstore", -3),
    ("set", -3),
    ("setbit", 4),
    ("setex", 4),
    ("setnx", 3),
    ("setrange", 4),
    ("sinter", -2),
    ("sintercard", -3),
    ("sinterstore", -3),
    ("sismember", 3),
    ("smembers", 2),
    ("smismember", -3),
    ("smove", 4),
    ("sort", -2),
    ("sort_ro", -2),
    ("spop", -2),
    ("srandmember", -2),
    ("srem", -3),
    ("sscan", -3),
    ("strlen", 2),
    ("substr", 4),
    ("sunion", -2),
    ("sunionstore", -3),
    ("swapdb", 3),
    ("touch", -2),
    ("ttl", 2),
    ("type", 2),
    ("unlink", -2),
    ("xack", -4),
    ("xadd", -5),
    ("xautoclaim", -6),
    ("xclaim", -6),
    ("xdel", -3),
    ("xlen", 2),
    ("xpending", -3),
    ("xrange", -4),
    ("xread", -4),
    ("xreadgroup", -7),
    ("xrevrange", -4),
    ("xsetid", -3),
    ("xtrim", -4),
    ("zadd", -4),
    ("zcard", 2),
    ("zcount", 4),
    ("zdiff", -3),
    ("zdiffstore", -4),
    ("zincrby", 4),
    ("zinter", -3),
    ("zintercard", -3),
    ("zinterstore", -4),
    ("zlexcount", 4),
    ("zmpop", -4),
    ("zmscore", -3),
    ("zpopmax", -2),
    ("zpopmin", -2),
    ("zrandmember", -2),
    ("zrange", -4),
    ("zrangebylex", -4),
    ("zrangebyscore", -4),
    ("zrangestore", -5),
    ("zrank", 3),
    ("zrem", -3),
    ("zremrangebylex", 4),
    ("zremrangebyrank", 4),
    ("zremrangebyscore", 4),
    ("zrevrange", -4),
    ("zrevrangebylex", -4),
    ("zrevrangebyscore", -4),
    ("zrevrank", 3),
    ("zscan", -3),
    ("zscore", 3),
    ("zunion", -3),
    ("zunionstore", -4),
];

#[cfg(test)]
mod tests;

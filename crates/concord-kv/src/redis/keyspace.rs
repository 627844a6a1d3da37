//! Commands on keys whatever they hold (`@keyspace`): `TYPE`, and the TTL changes that must not
//! rewrite a collection's value; `TOUCH`, `RANDOMKEY`, and `FLUSHALL` / `FLUSHDB`.
//!
//! `FLUSHALL` is one write of the log that removes every entry of the store, collections' records
//! included, so every replica empties at one revision; a `WATCH`ed key that existed then has
//! another mod revision (none), and the watching `EXEC` fails, as in Redis. Concord has one
//! database, so `FLUSHDB` is the same command; `ASYNC` and `SYNC` are accepted and change nothing
//! (the removal is done when the command is applied).
//!
//! `RANDOMKEY` must answer alike on every replica, so its pick is drawn from a generator seeded
//! with the store's revision (and, inside a `MULTI`, the command's time: see `random.rs`): the
//! same until the next write, another after it. It counts the user keys and walks to the chosen
//! one – O(keys), where Redis's is O(1) – and never answers a collection's internal record.
//!
//! `KEYS`, `SCAN` and `DBSIZE` are here too, for `MULTI`: inside a transaction they must see its
//! own earlier writes and be atomic with them, so they run in the transaction's one log entry.
//! Outside one the front door answers them from paged range reads (bounded per request), which
//! these need not be: a transaction's reply is built whole anyway.
//!
//! `EXPIRE` and its family run here, in one log entry, rather than as the read-then-compare-and-set
//! the front door once used: the state machine can change a key's deadline without touching its
//! value, and atomically, so there is nothing to retry.

use super::args::{int, is, wrong_arity};
use super::random::Rng;
use super::{read, write, Kind, Outcome, Reply, Spec, Tx, View};
use crate::{cursor, glob};
use concord_core::Time;

pub const COMMANDS: &[Spec] = &[
    read("type", kind),
    write("expire", |tx, args| expire(tx, args, "expire")),
    write("pexpire", |tx, args| expire(tx, args, "pexpire")),
    write("expireat", |tx, args| expire(tx, args, "expireat")),
    write("pexpireat", |tx, args| expire(tx, args, "pexpireat")),
    write("persist", persist),
    write("del", del),
    write("unlink", del),
    read("exists", exists),
    write("rename", |tx, args| rename(tx, args, false)),
    write("renamenx", |tx, args| rename(tx, args, true)),
    write("copy", copy),
    read("expiretime", |view, args| deadline(view, args, false)),
    read("pexpiretime", |view, args| deadline(view, args, true)),
    read("ttl", |view, args| ttl(view, args, false)),
    read("pttl", |view, args| ttl(view, args, true)),
    read("object", object),
    read("touch", exists),
    read("randomkey", randomkey),
    write("flushall", flush),
    write("flushdb", flush),
    read("keys", keys),
    read("scan", scan),
    read("dbsize", dbsize),
];

/// `FLUSHALL [ASYNC | SYNC]` and `FLUSHDB`: remove every key (see the module docs).
fn flush(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    flush_args(args)?;
    tx.flush();
    Ok(Reply::Ok)
}

/// `FLUSHALL`'s arguments (after the name): none, or `ASYNC` or `SYNC` (Redis 7.0's grammar); a
/// sharded node checks them before it fans the flush out.
pub fn flush_args(args: &[impl AsRef<[u8]>]) -> Result<(), Reply> {
    match args {
        [] => Ok(()),
        [mode] if is(mode.as_ref(), "ASYNC") || is(mode.as_ref(), "SYNC") => Ok(()),
        _ => Err(Reply::error("ERR syntax error")),
    }
}

/// `RANDOMKEY`: one of the user keys, nil if there is none (see the module docs).
fn randomkey(view: &View, _args: &[Vec<u8>]) -> Outcome {
    let count = count_keys(view);
    if count == 0 {
        return Ok(Reply::Nil);
    }
    let mut left = Rng::for_keyspace(view).below(count);
    let mut picked = None;
    view.user_keys(b"", &mut |key, _| {
        if left == 0 {
            picked = Some(key.to_vec());
            return false;
        }
        left -= 1;
        true
    });
    Ok(Reply::bulk_or_nil(picked))
}

/// How many user keys there are (an O(keys) walk: the store keeps no count of user keys apart).
fn count_keys(view: &View) -> u64 {
    let mut count = 0;
    view.user_keys(b"", &mut |_, _| {
        count += 1;
        true
    });
    count
}

/// `KEYS pattern`: every user key that matches, in byte order.
fn keys(view: &View, args: &[Vec<u8>]) -> Outcome {
    let pattern = &args[0];
    let mut found = Vec::new();
    view.user_keys(glob::literal_prefix(pattern), &mut |key, _| {
        if glob::matches(pattern, key) {
            found.push(Reply::Bulk(key.to_vec()));
        }
        true
    });
    Ok(Reply::Array(found))
}

/// `DBSIZE`: how many user keys there are.
fn dbsize(view: &View, _args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(count_keys(view) as i64))
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: the same pages, cursors and errors
/// as the front door's SCAN outside `MULTI` (concord-resp's `exec`): at most COUNT keys looked at
/// from the cursor's key on, in byte order; the cursor names the next key (`0`: done).
fn scan(view: &View, args: &[Vec<u8>]) -> Outcome {
    let from = cursor::decode(&args[0]).ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut wanted) = (None, 10usize, None);
    let mut options = args[1..].chunks(2);
    for option in options.by_ref() {
        let [name, value] = option else { return Err(Reply::error("ERR syntax error")) };
        if is(name, "MATCH") {
            pattern = Some(value);
        } else if is(name, "COUNT") {
            count = match int(value)? {
                n if n < 1 => return Err(Reply::error("ERR syntax error")),
                n => n as usize,
            };
        } else if is(name, "TYPE") {
            wanted = Some(value);
        } else {
            return Err(Reply::error("ERR syntax error"));
        }
    }
    let prefix = pattern.map_or(&b""[..], |p| glob::literal_prefix(p));
    let start = from.unwrap_or_default().max(prefix.to_vec());
    let (mut seen, mut next, mut found) = (0, None, Vec::new());
    view.user_keys_from(&start, prefix, &mut |key, entry| {
        if seen == count {
            next = Some(key.to_vec());
            return false;
        }
        seen += 1;
        let matches = pattern.is_none_or(|p| glob::matches(p, key))
            && wanted.is_none_or(|t| t.eq_ignore_ascii_case(view.kind_of(key, entry).name().as_bytes()));
        if matches {
            found.push(Reply::Bulk(key.to_vec()));
        }
        true
    });
    let cursor = next.map_or_else(|| "0".to_string(), |key| cursor::encode(&key));
    Ok(Reply::Array(vec![Reply::Bulk(cursor.into_bytes()), Reply::Array(found)]))
}

/// `DEL key …` and `UNLINK` (the same here: a collection's records go in the same step either
/// way): how many keys existed.
fn del(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(args.iter().filter(|key| tx.remove(key)).count() as i64))
}

/// `EXISTS key …`: how many of the keys exist, a key named twice counted twice.
fn exists(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(args.iter().filter(|key| view.entry(key).is_some()).count() as i64))
}

/// `RENAME src dst` / `RENAMENX`: the value (a collection: every record, re-keyed – O(members))
/// and the deadline move to `dst`, replacing what it held.
fn rename(tx: &mut Tx, args: &[Vec<u8>], nx: bool) -> Outcome {
    let [src, dst] = args else { unreachable!("arity checked") };
    if tx.view().entry(src).is_none() {
        return Err(Reply::error("ERR no such key"));
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::Ok });
    }
    if nx && tx.view().entry(dst).is_some() {
        return Ok(Reply::Int(0));
    }
    tx.copy_key(src, dst);
    tx.remove(src);
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

/// `COPY src dst [DB 0] [REPLACE]`: 1 if copied (value and deadline), 0 if `dst` exists without
/// `REPLACE` or `src` is absent. Concord has one database: `DB` other than 0 is out of range, as
/// on a redis-server with `databases 1`.
fn copy(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (src, dst) = (&args[0], &args[1]);
    let mut replace = false;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "REPLACE") {
            replace = true;
        } else if is(&args[i], "DB") && i + 1 < args.len() {
            let db = int(&args[i + 1])?;
            if db != 0 {
                return Err(Reply::error("ERR DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(Reply::error("ERR syntax error"));
        }
        i += 1;
    }
    if src == dst {
        return Err(Reply::error("ERR source and destination objects are the same"));
    }
    if tx.view().entry(src).is_none() || (!replace && tx.view().entry(dst).is_some()) {
        return Ok(Reply::Int(0));
    }
    tx.copy_key(src, dst);
    Ok(Reply::Int(1))
}

/// `EXPIRETIME` / `PEXPIRETIME`: the Unix deadline; -1 without one, -2 if absent.
fn deadline(view: &View, args: &[Vec<u8>], millis: bool) -> Outcome {
    Ok(Reply::Int(match view.entry(&args[0]) {
        None => -2,
        Some(entry) => match entry.expires_at {
            None => -1,
            Some(at) if millis => (at.0 / 1_000_000) as i64,
            Some(at) => ((at.0 / 1_000_000 + 500) / 1000) as i64,
        },
    }))
}

/// `TTL` / `PTTL`: the time left. Needs the command's time, so it runs only through the log (in a
/// `MULTI`); outside one the front door answers it from a read and its own clock.
fn ttl(view: &View, args: &[Vec<u8>], millis: bool) -> Outcome {
    let now = view.now.ok_or_else(|| {
        Reply::error("ERR TTL in a read-only query has no clock the replicas agree on; run it in MULTI")
    })?;
    Ok(Reply::Int(match view.entry(&args[0]) {
        None => -2,
        Some(entry) => match entry.expires_at {
            None => -1,
            Some(at) => {
                let left_ms = (at.0.saturating_sub(now.0) / 1_000_000) as i64;
                if millis {
                    left_ms
                } else {
                    (left_ms + 500) / 1000
                }
            }
        },
    }))
}

fn kind(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Status(view.kind(&args[0]).map_or("none", |k| k.name()).into()))
}

/// `EXPIRE key seconds [NX | XX | GT | LT]` and `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: 1 if the
/// deadline was set (or the key deleted, for a deadline already past), 0 if the key is absent or
/// a condition did not hold.
fn expire(tx: &mut Tx, args: &[Vec<u8>], name: &str) -> Outcome {
    let (key, options) = (&args[0], &args[2..]);
    // Redis checks the options before the number: `EXPIRE k abc FOO` is about FOO.
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in options {
        match () {
            _ if is(option, "NX") => nx = true,
            _ if is(option, "XX") => xx = true,
            _ if is(option, "GT") => gt = true,
            _ if is(option, "LT") => lt = true,
            _ => {
                return Err(Reply::error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(option)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(Reply::error("ERR GT and LT options at the same time are not compatible"));
    }
    let amount = int(&args[1])?;
    let invalid = || Reply::error(format!("ERR invalid expire time in '{name}' command"));
    let ms = if name == "expire" || name == "expireat" { amount.checked_mul(1000) } else { Some(amount) };
    let ms = ms.ok_or_else(invalid)?;
    // The deadline in ms since the epoch; the command's `now` is the proposer's clock.
    let now_ms = (tx.now.0 / 1_000_000) as i64;
    let at_ms = if name.ends_with("at") { Some(ms) } else { ms.checked_add(now_ms) };
    let at_ms = at_ms.ok_or_else(invalid)?;
    let Some(entry) = tx.view().entry(key) else { return Ok(Reply::Int(0)) };
    let current_ms = entry.expires_at.map(|t| (t.0 / 1_000_000) as i64);
    let allowed = match current_ms {
        // No TTL counts as infinite: GT never applies, LT always does.
        None => !xx && !gt,
        Some(current) => !nx && (!gt || at_ms > current) && (!lt || at_ms < current),
    };
    if !allowed {
        return Ok(Reply::Int(0));
    }
    if at_ms <= now_ms {
        tx.remove(key);
    } else {
        // Past year 2554 the nanosecond clock saturates: "practically never".
        tx.set_deadline(key, Some(Time((at_ms as u64).saturating_mul(1_000_000))));
    }
    Ok(Reply::Int(1))
}

/// `PERSIST key`: 1 if a TTL was removed.
fn persist(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    match tx.view().entry(key) {
        Some(entry) if entry.expires_at.is_some() => {
            tx.set_deadline(key, None);
            Ok(Reply::Int(1))
        }
        _ => Ok(Reply::Int(0)),
    }
}

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key` and `OBJECT HELP`. Concord stores every value the
/// same way (a string entry, or one record per member), so the encoding is **reported, not
/// real**: the name redis-server 7.0 would use for a value of that kind and size with its default
/// thresholds (`int`/`embstr`/`raw`; hashes and sorted sets `listpack` up to 128 members of at
/// most 64 bytes, else `hashtable`/`skiplist`; sets `intset` up to 512 integers, else
/// `hashtable`; lists `quicklist`). `REFCOUNT` is 1 (Redis's shared small integers report
/// `2147483647`, and so does Concord), `IDLETIME` 0 (access times are not tracked: a replicated
/// state machine does not write on reads), `FREQ` Redis's error without an LFU policy.
fn object(view: &View, args: &[Vec<u8>]) -> Outcome {
    let sub = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    if sub == "help" {
        if args.len() != 1 {
            return Err(wrong_arity("object|help"));
        }
        return Ok(Reply::Array(OBJECT_HELP.iter().map(|line| Reply::Status((*line).into())).collect()));
    }
    if !["encoding", "refcount", "idletime", "freq"].contains(&sub.as_str()) {
        return Err(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(&args[0])
        )));
    }
    if args.len() != 2 {
        return Err(wrong_arity(&format!("object|{sub}")));
    }
    let key = &args[1];
    let Some(entry) = view.entry(key) else { return Ok(Reply::Nil) };
    let kind = view.kind_of(key, &entry);
    let shared_int =
        kind == Kind::String && small_int(&entry.value).is_some_and(|n| (0..10_000).contains(&n));
    Ok(match sub.as_str() {
        "refcount" => Reply::Int(if shared_int { i64::from(i32::MAX) } else { 1 }),
        "idletime" => Reply::Int(0),
        "freq" => return Err(Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that \
                 when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        _ => Reply::bulk(encoding(view, key, kind, &entry.value)),
    })
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// A value redis-server would store as an integer (`string2ll`: no sign `+`, no leading zeros).
fn small_int(value: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(value).ok()?;
    if s.len() > 20 || s.starts_with('+') || s.starts_with("-0") || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// The encoding name redis-server 7.0 would report (see [`object`]).
fn encoding(view: &View, key: &[u8], kind: Kind, value: &[u8]) -> &'static str {
    let len = view.header(key).map_or(0, |h| h.len);
    // Whether every member (and, for hashes, value) satisfies `small`; stops at the first miss.
    let all = |small: &dyn Fn(&[u8], &[u8]) -> bool| {
        let mut ok = true;
        view.members(key, &[], &mut |member, value| {
            ok = small(member, value);
            ok
        });
        ok
    };
    match kind {
        Kind::String if small_int(value).is_some() => "int",
        Kind::String if value.len() <= 44 => "embstr",
        Kind::String => "raw",
        Kind::List => "quicklist",
        Kind::Hash if len <= 128 && all(&|f, v| f.len() <= 64 && v.len() <= 64) => "listpack",
        Kind::Hash => "hashtable",
        Kind::Set if len <= 512 && all(&|m, _| small_int(m).is_some()) => "intset",
        Kind::Set => "hashtable",
        Kind::ZSet if len <= 128 && all(&|m, _| m.len() <= 64) => "listpack",
        Kind::ZSet => "skiplist",
    }
}

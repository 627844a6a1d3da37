//! String commands **for scripts** (`redis.call('get', …)`): `GET`, `SET` (NX, XX, GET, EX, PX,
//! EXAT, PXAT, KEEPTTL), `SETNX`, `MGET`, `MSET`, `DEL`, `EXISTS`, `INCR`, `DECR`, `INCRBY`,
//! `DECRBY`, `TTL`, `PTTL`.
//!
//! Clients' own string commands do not come here: the front door maps them onto the store's puts
//! and gets (one lookup on the common path). A script's calls cannot leave the state machine, so
//! they run here, on the same entries, with redis-server's replies and errors. These commands are
//! deliberately *not* in [`super::commands`] (which would route the front door's `GET` through
//! the interpreter); [`super::script`] looks them up with [`lookup`].

use super::args::{int, is};
use super::{read, write, Kind, Outcome, Reply, Spec, Tx, View};
use concord_core::Time;

pub const COMMANDS: &[Spec] = &[
    read("get", get),
    write("set", set),
    write("setnx", setnx),
    read("mget", mget),
    write("mset", mset),
    write("del", del),
    read("exists", exists),
    write("incr", |tx, args| incr_by(tx, &args[0], 1)),
    write("decr", |tx, args| incr_by(tx, &args[0], -1)),
    write("incrby", |tx, args| incr_by(tx, &args[0], int(&args[1])?)),
    write("decrby", |tx, args| incr_by(tx, &args[0], int(&args[1])?.checked_neg().ok_or_else(overflow)?)),
    // Reads, but they need the command's clock, which only a write (a log entry) carries; so an
    // `EVAL_RO` script cannot ask for TTLs.
    write("ttl", |tx, args| ttl(tx, args, false)),
    write("pttl", |tx, args| ttl(tx, args, true)),
];

/// The string command named `name` (lowercase).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| spec.name == name)
}

/// The string under `key`: `Ok(None)` if absent, WRONGTYPE if the key holds a collection.
fn string(view: &View, key: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
    match view.entry(key) {
        None => Ok(None),
        Some(entry) if view.kind_of(key, &entry) == Kind::String => Ok(Some(entry.value)),
        Some(_) => Err(Reply::wrong_type()),
    }
}

fn get(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::bulk_or_nil(string(view, &args[0])?))
}

fn mget(view: &View, args: &[Vec<u8>]) -> Outcome {
    // MGET answers nil for a key of another kind rather than failing.
    Ok(Reply::Array(args.iter().map(|k| Reply::bulk_or_nil(string(view, k).ok().flatten())).collect()))
}

fn now_ms(tx: &Tx) -> i64 {
    (tx.now.0 / 1_000_000) as i64
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`
fn set(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, value) = (&args[0], &args[1]);
    let syntax = || Reply::error("ERR syntax error");
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut deadline_ms: Option<i64> = None;
    let mut options = args[2..].iter();
    while let Some(option) = options.next() {
        let unit_ms = match () {
            _ if is(option, "NX") && !xx => {
                nx = true;
                continue;
            }
            _ if is(option, "XX") && !nx => {
                xx = true;
                continue;
            }
            _ if is(option, "GET") => {
                get = true;
                continue;
            }
            _ if is(option, "KEEPTTL") && deadline_ms.is_none() => {
                keepttl = true;
                continue;
            }
            _ if is(option, "EX") || is(option, "EXAT") => 1000,
            _ if is(option, "PX") || is(option, "PXAT") => 1,
            _ => return Err(syntax()),
        };
        if keepttl || deadline_ms.is_some() {
            return Err(syntax());
        }
        let amount = int(options.next().ok_or_else(syntax)?)?;
        let invalid = || Reply::error("ERR invalid expire time in 'set' command");
        let ms = amount.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(invalid)?;
        let at = if option.len() == 4 { Some(ms) } else { ms.checked_add(now_ms(tx)) };
        deadline_ms = Some(at.filter(|at| at.checked_mul(1_000_000).is_some()).ok_or_else(invalid)?);
    }
    let old_entry = tx.view().entry(key);
    let old = if get { string(&tx.view(), key)? } else { None };
    let exists = old_entry.is_some();
    if (nx && exists) || (xx && !exists) {
        return Ok(if get { Reply::bulk_or_nil(old) } else { Reply::Nil });
    }
    let expires_at = match deadline_ms {
        Some(ms) => Some(Time(ms as u64 * 1_000_000)),
        None if keepttl => old_entry.and_then(|e| e.expires_at),
        None => None,
    };
    tx.put_string(key, value.clone(), expires_at);
    Ok(if get { Reply::bulk_or_nil(old) } else { Reply::Ok })
}

fn setnx(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    if tx.view().entry(&args[0]).is_some() {
        return Ok(Reply::Int(0));
    }
    tx.put_string(&args[0], args[1].clone(), None);
    Ok(Reply::Int(1))
}

fn mset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    if !args.len().is_multiple_of(2) {
        return Err(Reply::error("ERR wrong number of arguments for 'mset' command"));
    }
    for pair in args.chunks(2) {
        tx.put_string(&pair[0], pair[1].clone(), None);
    }
    Ok(Reply::Ok)
}

fn del(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(args.iter().filter(|key| tx.remove(key)).count() as i64))
}

fn exists(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(args.iter().filter(|key| view.entry(key).is_some()).count() as i64))
}

fn overflow() -> Reply {
    Reply::error("ERR increment or decrement would overflow")
}

/// `INCRBY`: the key keeps its TTL, as in Redis.
fn incr_by(tx: &mut Tx, key: &[u8], by: i64) -> Outcome {
    let entry = tx.view().entry(key);
    let current = match string(&tx.view(), key)? {
        None => 0,
        Some(v) => int(&v)?,
    };
    let value = current.checked_add(by).ok_or_else(overflow)?;
    tx.put_string(key, value.to_string().into_bytes(), entry.and_then(|e| e.expires_at));
    Ok(Reply::Int(value))
}

/// `TTL` / `PTTL`: -2 absent, -1 no deadline, else what is left (a deadline passed but not yet
/// expired through the log counts as 0 left).
fn ttl(tx: &mut Tx, args: &[Vec<u8>], millis: bool) -> Outcome {
    let Some(entry) = tx.view().entry(&args[0]) else { return Ok(Reply::Int(-2)) };
    let Some(deadline) = entry.expires_at else { return Ok(Reply::Int(-1)) };
    let left_ms = (deadline.0 / 1_000_000).saturating_sub(tx.now.0 / 1_000_000) as i64;
    Ok(Reply::Int(if millis { left_ms } else { (left_ms + 500) / 1000 }))
}

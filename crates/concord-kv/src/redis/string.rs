//! Strings (`@string`) in the interpreter: every string command, so `MULTI … EXEC` and scripts can
//! run any of them in one log entry.
//!
//! The front door keeps faster paths outside `MULTI` where a plain KV operation already behaves
//! exactly as Redis (`GET` as a `Query::Get`, a plain `SET` as a `Write::Put`, `MSET`, `MGET`,
//! `DEL`, `EXISTS`, `TTL`); everything else – `SET` with `NX`/`XX`/`GET`/`KEEPTTL`, `INCR` and
//! friends (WRONGTYPE on a collection), `APPEND`… – runs here. A string is a key whose entry holds
//! the bytes; an entry with an empty value is either the string `""` or a collection, told apart
//! by its header (see the module docs of `redis`).
//!
//! `INCRBYFLOAT` adds in C's `long double` and prints `%.17Lf` without trailing zeros, exactly as
//! redis-server does (`10.6` + `5.0e3` is `5010.60000000000000009`): the emulation in
//! [`super::longdouble`], shared with `HINCRBYFLOAT`.

use super::args::{int, is, wrong_arity};
use super::longdouble::{self, Ld};
use super::{read, write, Kind, Outcome, Reply, Spec, Tx, View};
use crate::store::Entry;
use concord_core::Time;

pub const COMMANDS: &[Spec] = &[
    read("get", get),
    read("mget", mget),
    read("strlen", strlen),
    read("getrange", getrange),
    read("substr", getrange),
    read("lcs", lcs),
    write("set", set),
    write("setnx", setnx),
    write("setex", |tx, args| setex(tx, args, "setex")),
    write("psetex", |tx, args| setex(tx, args, "psetex")),
    write("getset", getset),
    write("getdel", getdel),
    write("getex", getex),
    write("mset", mset),
    write("msetnx", msetnx),
    write("incr", |tx, args| incr_by(tx, &args[0], 1)),
    write("decr", |tx, args| incr_by(tx, &args[0], -1)),
    write("incrby", |tx, args| incr_by(tx, &args[0], int(&args[1])?)),
    write("decrby", decrby),
    write("incrbyfloat", incrbyfloat),
    write("append", append),
    write("setrange", setrange),
];

/// The string stored under `key` (`None`: absent), WRONGTYPE for a collection.
fn string(view: &View, key: &[u8]) -> Result<Option<Entry>, Reply> {
    match view.entry(key) {
        Some(entry) if view.kind_of(key, &entry) != Kind::String => Err(Reply::wrong_type()),
        entry => Ok(entry),
    }
}

fn now_ms(tx: &Tx) -> i64 {
    (tx.now.0 / 1_000_000) as i64
}

/// Redis's words, exactly (Concord's bound is `max_value_bytes`, which `CONFIG GET
/// proto-max-bulk-len` reports).
fn too_large(_tx: &Tx) -> Reply {
    Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

fn get(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::bulk_or_nil(string(view, &args[0])?.map(|e| e.value)))
}

/// `MGET`: nil for an absent key and for one holding a collection, as Redis.
fn mget(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Array(
        args.iter()
            .map(|key| Reply::bulk_or_nil(string(view, key).ok().flatten().map(|e| e.value)))
            .collect(),
    ))
}

fn strlen(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(string(view, &args[0])?.map_or(0, |e| e.value.len() as i64)))
}

/// `GETRANGE key start end`, with redis-server 7.0's index rules.
fn getrange(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (mut start, mut end) = (int(&args[1])?, int(&args[2])?);
    let value = string(view, &args[0])?.map(|e| e.value).unwrap_or_default();
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(""));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Reply::bulk(""));
    }
    Ok(Reply::bulk(value[start as usize..=end as usize].to_vec()))
}

/// What `SET` does with the deadline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Clear,
    Keep,
    /// Unix ms.
    At(i64),
}

fn is_expiry(option: &[u8]) -> bool {
    ["EX", "PX", "EXAT", "PXAT"].iter().any(|w| is(option, w))
}

/// An expire amount (`EX`/`PX`/`EXAT`/`PXAT`) as a Unix deadline in ms, or Redis's error.
fn deadline(tx: &Tx, option: &[u8], amount: &[u8], command: &str) -> Result<i64, Reply> {
    let amount = int(amount)?;
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    if amount <= 0 {
        return Err(invalid());
    }
    let seconds = is(option, "EX") || is(option, "EXAT");
    let ms = if seconds { amount.checked_mul(1000).ok_or_else(invalid)? } else { amount };
    let at = if is(option, "EX") || is(option, "PX") {
        ms.checked_add(now_ms(tx)).ok_or_else(invalid)?
    } else {
        ms
    };
    // The store keeps deadlines in ns.
    at.checked_mul(1_000_000).ok_or_else(invalid)?;
    Ok(at)
}

/// Store `value` under `key` with `expiry` (a deadline already past deletes the key, as Redis's
/// `SET … EXAT <past>` does).
fn store(tx: &mut Tx, key: &[u8], value: Vec<u8>, expiry: Expiry, old: Option<&Entry>) {
    let at = match expiry {
        Expiry::Clear => None,
        Expiry::Keep => old.and_then(|e| e.expires_at),
        Expiry::At(ms) if ms <= now_ms(tx) => {
            tx.remove(key);
            return;
        }
        Expiry::At(ms) => Some(Time(ms as u64 * 1_000_000)),
    };
    tx.put_string(key, value, at);
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
fn set(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, value, options) = (&args[0], &args[1], &args[2..]);
    let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
    let mut timed: Option<(&[u8], &[u8])> = None;
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        let next = options.get(i + 1);
        if is(option, "NX") && !xx {
            nx = true;
        } else if is(option, "XX") && !nx {
            xx = true;
        } else if is(option, "GET") {
            get = true;
        } else if is(option, "KEEPTTL") && timed.is_none() {
            keep = true;
        } else if let Some(amount) = next.filter(|_| is_expiry(option) && !keep && timed.is_none()) {
            timed = Some((option, amount));
            i += 1;
        } else {
            return Err(Reply::error("ERR syntax error"));
        }
        i += 1;
    }
    // Redis's order: every option's syntax, then the expiry's number, then GET's type check
    // (`SET k v XX PXAT abc x` is a syntax error; found by `concord difftest`).
    let expiry = match timed {
        Some((option, amount)) => Some(Expiry::At(deadline(tx, option, amount, "set")?)),
        None => keep.then_some(Expiry::Keep),
    };
    let old = if get { string(&tx.view(), key)? } else { tx.view().entry(key) };
    let allowed = (!nx || old.is_none()) && (!xx || old.is_some());
    if allowed {
        store(tx, key, value.clone(), expiry.unwrap_or(Expiry::Clear), old.as_ref());
    }
    Ok(match (get, allowed) {
        (true, _) => Reply::bulk_or_nil(old.map(|e| e.value)),
        (false, true) => Reply::Ok,
        (false, false) => Reply::Nil,
    })
}

fn setnx(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    if tx.view().entry(&args[0]).is_some() {
        return Ok(Reply::Int(0));
    }
    tx.put_string(&args[0], args[1].clone(), None);
    Ok(Reply::Int(1))
}

/// `SETEX key seconds value`, `PSETEX key ms value`.
fn setex(tx: &mut Tx, args: &[Vec<u8>], name: &str) -> Outcome {
    let option = if name == "setex" { "EX" } else { "PX" };
    let at = deadline(tx, option.as_bytes(), &args[1], name)?;
    let old = tx.view().entry(&args[0]);
    store(tx, &args[0], args[2].clone(), Expiry::At(at), old.as_ref());
    Ok(Reply::Ok)
}

fn getset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let old = string(&tx.view(), &args[0])?;
    tx.put_string(&args[0], args[1].clone(), None);
    Ok(Reply::bulk_or_nil(old.map(|e| e.value)))
}

fn getdel(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let old = string(&tx.view(), &args[0])?;
    if old.is_some() {
        tx.remove(&args[0]);
    }
    Ok(Reply::bulk_or_nil(old.map(|e| e.value)))
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`.
fn getex(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, options) = (&args[0], &args[1..]);
    // Redis's `getexCommand` order: the options' syntax, then the key (absent: nil; another kind:
    // WRONGTYPE), and only then the expiry's number (found by `concord difftest`).
    let mut change: Option<Option<(&[u8], &[u8])>> = None; // Some(None): PERSIST
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        let next = options.get(i + 1);
        if is(option, "PERSIST") && change.is_none() {
            change = Some(None);
        } else if let Some(amount) = next.filter(|_| is_expiry(option) && change.is_none()) {
            change = Some(Some((option, amount)));
            i += 1;
        } else {
            return Err(Reply::error("ERR syntax error"));
        }
        i += 1;
    }
    let Some(old) = string(&tx.view(), key)? else { return Ok(Reply::Nil) };
    match change {
        None => {}
        Some(None) if old.expires_at.is_some() => {
            tx.set_deadline(key, None);
        }
        Some(None) => {}
        Some(Some((option, amount))) => {
            let at = deadline(tx, option, amount, "getex")?;
            if at <= now_ms(tx) {
                tx.remove(key);
            } else {
                tx.set_deadline(key, Some(Time(at as u64 * 1_000_000)));
            }
        }
    }
    Ok(Reply::Bulk(old.value))
}

fn pairs<'a>(args: &'a [Vec<u8>], name: &str) -> Result<std::slice::Chunks<'a, Vec<u8>>, Reply> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    Ok(args.chunks(2))
}

fn mset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    for pair in pairs(args, "mset")? {
        tx.put_string(&pair[0], pair[1].clone(), None);
    }
    Ok(Reply::Ok)
}

/// `MSETNX`: all or none – 0 if any key exists, whatever it holds.
fn msetnx(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let pairs = pairs(args, "msetnx")?;
    if pairs.clone().any(|pair| tx.view().entry(&pair[0]).is_some()) {
        return Ok(Reply::Int(0));
    }
    for pair in pairs {
        tx.put_string(&pair[0], pair[1].clone(), None);
    }
    Ok(Reply::Int(1))
}

fn decrby(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let delta = int(&args[1])?;
    if delta == i64::MIN {
        return Err(Reply::error("ERR decrement would overflow"));
    }
    incr_by(tx, &args[0], -delta)
}

/// `INCRBY` and its family: keeps the key's deadline, as Redis.
fn incr_by(tx: &mut Tx, key: &[u8], delta: i64) -> Outcome {
    let old = string(&tx.view(), key)?;
    let current = match &old {
        None => 0,
        Some(entry) => int(&entry.value)?,
    };
    let value = current
        .checked_add(delta)
        .ok_or_else(|| Reply::error("ERR increment or decrement would overflow"))?;
    store(tx, key, value.to_string().into_bytes(), Expiry::Keep, old.as_ref());
    Ok(Reply::Int(value))
}

/// `INCRBYFLOAT key increment`: the sum in C's `long double`, exactly as redis-server computes and
/// prints it ([`longdouble::increment`], shared with `HINCRBYFLOAT`).
fn incrbyfloat(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let not_float = || Reply::error("ERR value is not a valid float");
    // Redis's order: the key's type, then its value, then the increment.
    let old = string(&tx.view(), &args[0])?;
    let current = match &old {
        None => Ld::ZERO,
        Some(entry) => Ld::parse(&entry.value).ok_or_else(not_float)?,
    };
    let increment = Ld::parse(&args[1]).ok_or_else(not_float)?;
    let text = longdouble::increment(current, increment)
        .ok_or_else(|| Reply::error("ERR increment would produce NaN or Infinity"))?;
    store(tx, &args[0], text.clone().into_bytes(), Expiry::Keep, old.as_ref());
    Ok(Reply::Bulk(text.into_bytes()))
}

/// `APPEND key value`: the new length; keeps the deadline.
fn append(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let old = string(&tx.view(), &args[0])?;
    let mut value = old.as_ref().map(|e| e.value.clone()).unwrap_or_default();
    if value.len() + args[1].len() > tx.max_value_bytes {
        return Err(too_large(tx));
    }
    value.extend_from_slice(&args[1]);
    let len = value.len() as i64;
    store(tx, &args[0], value, Expiry::Keep, old.as_ref());
    Ok(Reply::Int(len))
}

/// `SETRANGE key offset value`: zero-padded; the new length; keeps the deadline.
fn setrange(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let offset = int(&args[1])?;
    if offset < 0 {
        return Err(Reply::error("ERR offset is out of range"));
    }
    let old = string(&tx.view(), &args[0])?;
    let patch = &args[2];
    let mut value = old.as_ref().map(|e| e.value.clone()).unwrap_or_default();
    if patch.is_empty() {
        // Nothing to write: Redis creates no key and answers the current length.
        return Ok(Reply::Int(value.len() as i64));
    }
    let end = (offset as u64).saturating_add(patch.len() as u64);
    if end > tx.max_value_bytes as u64 {
        return Err(too_large(tx));
    }
    let (offset, end) = (offset as usize, end as usize);
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset..end].copy_from_slice(patch);
    let len = value.len() as i64;
    store(tx, &args[0], value, Expiry::Keep, old.as_ref());
    Ok(Reply::Int(len))
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`: the longest common subsequence,
/// its length, or (`IDX`) its matching ranges, walked back from the strings' ends exactly as
/// redis-server's `lcsCommand` walks its table (so the ranges, and which ones it skips, are its
/// ones). O(len1 × len2) time and 4 bytes of table per cell, bounded as Redis bounds it by
/// `proto-max-bulk-len` (512 MB).
fn lcs(view: &View, args: &[Vec<u8>]) -> Outcome {
    let value = |key: &[u8]| match string(view, key) {
        Ok(entry) => Ok(entry.map(|e| e.value).unwrap_or_default()),
        Err(_) => Err(Reply::error("ERR The specified keys must contain string values")),
    };
    let (a, b) = (value(&args[0])?, value(&args[1])?);
    let (mut get_len, mut get_idx, mut with_match_len, mut min_match_len) = (false, false, false, 0i64);
    let mut at = 2;
    while let Some(option) = args.get(at) {
        match () {
            _ if is(option, "IDX") => get_idx = true,
            _ if is(option, "LEN") => get_len = true,
            _ if is(option, "WITHMATCHLEN") => with_match_len = true,
            _ if is(option, "MINMATCHLEN") && at + 1 < args.len() => {
                min_match_len = int(&args[at + 1])?.max(0);
                at += 1;
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
        at += 1;
    }
    if get_idx && get_len {
        return Err(Reply::error("ERR If you want both the length and indexes, please just use IDX."));
    }
    let (alen, blen) = (a.len(), b.len());
    if (alen as u64 + 1) * (blen as u64 + 1) * 4 > 512 * 1024 * 1024 {
        return Err(Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    // table[i][j]: the LCS length of a[..i] and b[..j].
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen] as usize;
    if get_len && !get_idx {
        return Ok(Reply::Int(total as i64));
    }
    let mut result = vec![0u8; total];
    let mut matches = Vec::new();
    // `a_start == alen` means no range is open.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let (mut i, mut j, mut k) = (alen, blen, total);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[k - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                // Redis closes the open range here and does not open one at this match.
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            k -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = a_start != alen;
        }
        if emit {
            let len = (a_end - a_start + 1) as i64;
            if min_match_len == 0 || len >= min_match_len {
                let mut range = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if with_match_len {
                    range.push(Reply::Int(len));
                }
                matches.push(Reply::Array(range));
            }
            a_start = alen;
        }
    }
    if get_idx {
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(total as i64)),
        ]));
    }
    Ok(Reply::Bulk(result))
}

//! Lists (`@list`): one member record per element, keyed by the element's *position*.
//!
//! A list's elements sit at positions `Header.head .. Header.tail` (an `i64` each, encoded so
//! that byte order is numeric order: [`position`]). `LPUSH` writes at `head - 1` and moves `head`
//! down, `RPUSH` writes at `tail` and moves `tail` up, pops do the reverse: pushes, pops and
//! `LINDEX`/`LSET` touch one element record and the header, whatever the list's length. A range
//! (`LRANGE`) is one scan from the first position it wants.
//!
//! Positions never have holes, so the element at list index `i` is at `head + i` (negative indexes
//! count from `tail`). The price is paid by the commands that remove or insert in the *middle*:
//! `LREM` and `LINSERT` rewrite every element after the first change (O(n) records in the worst
//! case); `LSET` overwrites in place, and `LTRIM` removes only the elements it
//! drops.
//!

use super::args::{int, is, wrong_arity};
use super::{read, write, Header, Kind, Outcome, Reply, Spec, Tx, View};

pub const COMMANDS: &[Spec] = &[
    write("lpush", |tx, args| push(tx, args, Side::Left, false)),
    write("rpush", |tx, args| push(tx, args, Side::Right, false)),
    write("lpushx", |tx, args| push(tx, args, Side::Left, true)),
    write("rpushx", |tx, args| push(tx, args, Side::Right, true)),
    write("lpop", |tx, args| pop_command(tx, args, Side::Left, "lpop")),
    write("rpop", |tx, args| pop_command(tx, args, Side::Right, "rpop")),
    write("lset", lset),
    write("ltrim", ltrim),
    write("lrem", lrem),
    write("linsert", linsert),
    write("lmove", lmove),
    write("rpoplpush", rpoplpush),
    write("lmpop", lmpop),
    // The blocking pops, as they run inside the state machine: once, without waiting (the front
    // door waits between attempts; inside MULTI they are their non-blocking forms, as in Redis).
    write("blpop", |tx, args| bpop(tx, args, Side::Left)),
    write("brpop", |tx, args| bpop(tx, args, Side::Right)),
    write("blmove", blmove),
    write("brpoplpush", brpoplpush),
    write("blmpop", blmpop),
    read("llen", llen),
    read("lrange", lrange),
    read("lindex", lindex),
    read("lpos", lpos),
];

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    fn parse(arg: &[u8]) -> Result<Side, Reply> {
        match () {
            _ if is(arg, "LEFT") => Ok(Side::Left),
            _ if is(arg, "RIGHT") => Ok(Side::Right),
            _ => Err(Reply::error("ERR syntax error")),
        }
    }
}

/// A position's record sub-key: the `i64` with its sign bit flipped, big-endian, so that byte
/// order is numeric order (-1 sorts before 0).
pub fn position(at: i64) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

/// The list under `key` (`None`: absent; WRONGTYPE if something else is there).
fn list(view: &View, key: &[u8]) -> Result<Option<Header>, Reply> {
    view.collection(key, Kind::List)
}

/// The element at position `at`. Positions within `head..tail` always hold one.
fn element(view: &View, key: &[u8], at: i64) -> Vec<u8> {
    view.member(key, &position(at)).expect("a list has no holes between head and tail")
}

/// Every element from list index `start` to `stop` inclusive (already clamped into range).
fn elements(view: &View, key: &[u8], header: &Header, start: i64, stop: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if start > stop {
        return out;
    }
    let wanted = (stop - start + 1) as usize;
    view.members(key, &position(header.head + start), &mut |_, value| {
        out.push(value.to_vec());
        out.len() < wanted
    });
    out
}

/// Redis's index arithmetic: a negative index counts from the end.
fn absolute(index: i64, len: i64) -> i64 {
    if index < 0 {
        len + index
    } else {
        index
    }
}

/// `start`/`stop` as `LRANGE` and `LTRIM` read them, clamped; `None` when the range is empty.
fn clamp(start: i64, stop: i64, len: i64) -> Option<(i64, i64)> {
    let start = absolute(start, len).max(0);
    let stop = absolute(stop, len).min(len - 1);
    (start <= stop && start < len).then_some((start, stop))
}

fn push_one(tx: &mut Tx, key: &[u8], header: &mut Header, side: Side, value: Vec<u8>) {
    let at = match side {
        Side::Left => {
            header.head -= 1;
            header.head
        }
        Side::Right => {
            header.tail += 1;
            header.tail - 1
        }
    };
    tx.put_member(key, &position(at), value);
    header.len += 1;
}

fn pop_one(tx: &mut Tx, key: &[u8], header: &mut Header, side: Side) -> Option<Vec<u8>> {
    if header.len == 0 {
        return None;
    }
    let at = match side {
        Side::Left => {
            header.head += 1;
            header.head - 1
        }
        Side::Right => {
            header.tail -= 1;
            header.tail
        }
    };
    let value = element(&tx.view(), key, at);
    tx.remove_member(key, &position(at));
    header.len -= 1;
    Some(value)
}

/// `LPUSH key element [element …]` (and `RPUSH`, `LPUSHX`, `RPUSHX`): the list's new length.
fn push(tx: &mut Tx, args: &[Vec<u8>], side: Side, only_if_exists: bool) -> Outcome {
    let (key, values) = args.split_first().expect("arity checked: a key");
    let mut header = match tx.view().collection(key, Kind::List)? {
        Some(header) => header,
        None if only_if_exists => return Ok(Reply::Int(0)),
        None => Header::new(Kind::List),
    };
    for value in values {
        push_one(tx, key, &mut header, side, value.clone());
    }
    tx.save(key, header);
    Ok(Reply::Int(header.len as i64))
}

/// Pop up to `count` elements from `key`'s `side`, saving the list (deleted when emptied).
pub fn pop_many(tx: &mut Tx, key: &[u8], side: Side, count: u64) -> Result<Option<Vec<Vec<u8>>>, Reply> {
    let Some(mut header) = list(&tx.view(), key)? else { return Ok(None) };
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        match pop_one(tx, key, &mut header, side) {
            Some(value) => out.push(value),
            None => break,
        }
    }
    if !out.is_empty() {
        tx.save(key, header);
    }
    Ok(Some(out))
}

/// A positive count argument, with the error `LPOP`, `SPOP`, … give.
fn count(arg: &[u8]) -> Result<u64, Reply> {
    super::args::positive(arg)
}

/// `LPOP key [count]`: without a count one element or nil; with one an array (a nil array for a
/// missing key).
fn pop_command(tx: &mut Tx, args: &[Vec<u8>], side: Side, name: &str) -> Outcome {
    match args {
        [key] => Ok(Reply::bulk_or_nil(pop_many(tx, key, side, 1)?.and_then(|mut v| v.pop()))),
        [key, n] => {
            let n = count(n)?;
            Ok(match pop_many(tx, key, side, n)? {
                None => Reply::NilArray,
                Some(values) => Reply::Array(values.into_iter().map(Reply::Bulk).collect()),
            })
        }
        _ => Err(wrong_arity(name)),
    }
}

fn llen(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(list(view, &args[0])?.map_or(0, |h| h.len as i64)))
}

/// `LRANGE key start stop`: O(stop - start), one scan.
fn lrange(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, start, stop] = args else { unreachable!("arity checked") };
    let (start, stop) = (int(start)?, int(stop)?);
    let Some(header) = list(view, key)? else { return Ok(Reply::Array(vec![])) };
    let Some((start, stop)) = clamp(start, stop, header.len as i64) else { return Ok(Reply::Array(vec![])) };
    Ok(Reply::Array(elements(view, key, &header, start, stop).into_iter().map(Reply::Bulk).collect()))
}

fn lindex(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, index] = args else { unreachable!("arity checked") };
    // Redis's order: the key (nil if absent, WRONGTYPE), then the index (found by `concord difftest`).
    let Some(header) = list(view, key)? else { return Ok(Reply::Nil) };
    let index = int(index)?;
    let index = absolute(index, header.len as i64);
    if index < 0 || index >= header.len as i64 {
        return Ok(Reply::Nil);
    }
    Ok(Reply::Bulk(element(view, key, header.head + index)))
}

fn lset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, index, value] = args else { unreachable!("arity checked") };
    // As LINDEX: the key first, then the index.
    let Some(header) = list(&tx.view(), key)? else { return Err(Reply::error("ERR no such key")) };
    let index = int(index)?;
    let index = absolute(index, header.len as i64);
    if index < 0 || index >= header.len as i64 {
        return Err(Reply::error("ERR index out of range"));
    }
    tx.put_member(key, &position(header.head + index), value.clone());
    tx.save(key, header);
    Ok(Reply::Ok)
}

/// `LTRIM key start stop`: removes the elements outside the range, and only those.
fn ltrim(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, start, stop] = args else { unreachable!("arity checked") };
    let (start, stop) = (int(start)?, int(stop)?);
    let Some(mut header) = list(&tx.view(), key)? else { return Ok(Reply::Ok) };
    let (keep_from, keep_to) = clamp(start, stop, header.len as i64).unwrap_or((header.len as i64, -1));
    let (head, tail) = (header.head, header.tail);
    let (new_head, new_tail) =
        if keep_from > keep_to { (head, head) } else { (head + keep_from, head + keep_to + 1) };
    for at in (head..new_head).chain(new_tail..tail) {
        tx.remove_member(key, &position(at));
    }
    header.head = new_head;
    header.tail = new_tail.max(new_head);
    header.len = (header.tail - header.head) as u64;
    tx.save(key, header);
    Ok(Reply::Ok)
}

/// Replace the elements from list index `from` on with `suffix` (positions stay contiguous from
/// `head`): the O(n) step of `LREM` and `LINSERT`.
fn rewrite_from(tx: &mut Tx, key: &[u8], header: &mut Header, from: i64, suffix: Vec<Vec<u8>>) {
    let new_tail = header.head + from + suffix.len() as i64;
    for (i, value) in suffix.into_iter().enumerate() {
        tx.put_member(key, &position(header.head + from + i as i64), value);
    }
    for at in new_tail..header.tail {
        tx.remove_member(key, &position(at));
    }
    header.tail = new_tail;
    header.len = (header.tail - header.head) as u64;
    tx.save(key, *header);
}

/// `LREM key count element`: removes the first `count` matches (from the tail if negative; all if
/// 0). Rewrites the elements after the first removed one.
fn lrem(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, n, target] = args else { unreachable!("arity checked") };
    let n = int(n)?;
    let Some(mut header) = list(&tx.view(), key)? else { return Ok(Reply::Int(0)) };
    let mut all = elements(&tx.view(), key, &header, 0, header.len as i64 - 1);
    let limit = if n == 0 { usize::MAX } else { n.unsigned_abs() as usize };
    let mut doomed = vec![false; all.len()];
    let mut removed = 0;
    let order: Box<dyn Iterator<Item = usize>> =
        if n < 0 { Box::new((0..all.len()).rev()) } else { Box::new(0..all.len()) };
    for i in order {
        if removed == limit {
            break;
        }
        if all[i] == *target {
            doomed[i] = true;
            removed += 1;
        }
    }
    let Some(first) = doomed.iter().position(|&d| d) else { return Ok(Reply::Int(0)) };
    let suffix: Vec<Vec<u8>> =
        all.drain(first..).zip(&doomed[first..]).filter(|(_, &d)| !d).map(|(v, _)| v).collect();
    rewrite_from(tx, key, &mut header, first as i64, suffix);
    Ok(Reply::Int(removed as i64))
}

/// `LINSERT key BEFORE|AFTER pivot element`: the new length, -1 if the pivot is not there, 0 if
/// the key is not. Rewrites the elements after the insertion point.
fn linsert(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, whence, pivot, value] = args else { unreachable!("arity checked") };
    let after = match () {
        _ if is(whence, "BEFORE") => false,
        _ if is(whence, "AFTER") => true,
        _ => return Err(Reply::error("ERR syntax error")),
    };
    let Some(mut header) = list(&tx.view(), key)? else { return Ok(Reply::Int(0)) };
    let all = elements(&tx.view(), key, &header, 0, header.len as i64 - 1);
    let Some(found) = all.iter().position(|v| v == pivot) else { return Ok(Reply::Int(-1)) };
    let at = found + usize::from(after);
    let mut suffix = vec![value.clone()];
    suffix.extend(all.into_iter().skip(at));
    rewrite_from(tx, key, &mut header, at as i64, suffix);
    Ok(Reply::Int(header.len as i64))
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
fn lpos(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, target, options) = (&args[0], &args[1], &args[2..]);
    let (mut rank, mut matches, mut maxlen) = (1i64, None, 0i64);
    // Redis's `lposCommand`: options one by one, each number checked as it is read; an option
    // without its number, or an unknown one, is a syntax error where it stands.
    let mut rest = options;
    while let [option, tail @ ..] = rest {
        let Some((value, tail)) = tail.split_first() else { return Err(Reply::error("ERR syntax error")) };
        // `getPositiveLongFromObjectOrReply` with a message: the same words for "not a number".
        let positive = |what: &str| match int(value) {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(Reply::error(format!("ERR {what} can't be negative"))),
        };
        match () {
            _ if is(option, "RANK") => {
                rank = int(value)?;
                if rank == i64::MIN {
                    // redis-server 7.0 negates it (overflowing back to itself) and then takes the
                    // first match from the tail: as -1.
                    rank = -1;
                }
                if rank == 0 {
                    return Err(Reply::error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    ));
                }
            }
            _ if is(option, "COUNT") => matches = Some(positive("COUNT")?),
            _ if is(option, "MAXLEN") => maxlen = positive("MAXLEN")?,
            _ => return Err(Reply::error("ERR syntax error")),
        }
        rest = tail;
    }
    let none = || if matches.is_some() { Reply::Array(vec![]) } else { Reply::Nil };
    let Some(header) = list(view, key)? else { return Ok(none()) };
    let len = header.len as i64;
    let all = elements(view, key, &header, 0, len - 1);
    let order: Box<dyn Iterator<Item = usize>> =
        if rank < 0 { Box::new((0..all.len()).rev()) } else { Box::new(0..all.len()) };
    let mut skip = rank.unsigned_abs() - 1;
    let wanted = match matches {
        None => 1,
        Some(0) => u64::MAX,
        Some(n) => n as u64,
    };
    let mut found = Vec::new();
    for (compared, i) in order.enumerate() {
        if maxlen != 0 && compared as i64 >= maxlen {
            break;
        }
        if all[i] != *target {
            continue;
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        found.push(Reply::Int(i as i64));
        if found.len() as u64 == wanted {
            break;
        }
    }
    Ok(match matches {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Nil),
    })
}

/// Pop from `source`'s `from` end and push onto `destination`'s `to` end (`LMOVE`, `RPOPLPUSH`).
/// The destination's kind is checked before anything is popped, as Redis does.
pub fn move_one(tx: &mut Tx, source: &[u8], destination: &[u8], from: Side, to: Side) -> Outcome {
    if list(&tx.view(), source)?.is_none() {
        return Ok(Reply::Nil);
    }
    list(&tx.view(), destination)?;
    let value = pop_many(tx, source, from, 1)?.and_then(|mut v| v.pop()).expect("a list has an element");
    // Read the destination only now: it may be the source, just changed.
    let mut header = tx.collection(destination, Kind::List)?;
    push_one(tx, destination, &mut header, to, value.clone());
    tx.save(destination, header);
    Ok(Reply::Bulk(value))
}

fn lmove(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [source, destination, from, to] = args else { unreachable!("arity checked") };
    let (from, to) = (Side::parse(from)?, Side::parse(to)?);
    move_one(tx, source, destination, from, to)
}

fn rpoplpush(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [source, destination] = args else { unreachable!("arity checked") };
    move_one(tx, source, destination, Side::Right, Side::Left)
}

/// `LMPOP numkeys key [key …] LEFT|RIGHT [COUNT count]`: `[key, [elements]]` from the first
/// non-empty list, or a nil array.
fn lmpop(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (keys, side, n) = parse_mpop(args, Side::parse)?;
    for key in keys {
        if let Some(values) = pop_many(tx, key, side, n)? {
            let values = Reply::Array(values.into_iter().map(Reply::Bulk).collect());
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), values]));
        }
    }
    Ok(Reply::NilArray)
}

/// `numkeys key [key …] <where> [COUNT count]` (`LMPOP`, `ZMPOP`): the keys, where, and the count.
pub fn parse_mpop<T>(
    args: &[Vec<u8>],
    parse_where: fn(&[u8]) -> Result<T, Reply>,
) -> Result<(&[Vec<u8>], T, u64), Reply> {
    let numkeys = int(&args[0]).map_err(|_| Reply::error("ERR numkeys should be greater than 0"))?;
    if numkeys <= 0 {
        return Err(Reply::error("ERR numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if args.len() < numkeys + 2 {
        return Err(Reply::error("ERR syntax error"));
    }
    let keys = &args[1..=numkeys];
    let side = parse_where(&args[numkeys + 1])?;
    // As Redis: one COUNT, its value checked as soon as it is read (before what follows).
    let mut n = None;
    let mut at = numkeys + 2;
    while let Some(word) = args.get(at) {
        match args.get(at + 1) {
            Some(value) if n.is_none() && is(word, "COUNT") => {
                let count = int(value).ok().filter(|&c| c > 0);
                n = Some(count.ok_or_else(|| Reply::error("ERR count should be greater than 0"))? as u64);
                at += 2;
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
    }
    Ok((keys, side, n.unwrap_or(1)))
}

/// The seconds a blocking command waits (`0`: forever), with Redis's errors. Checked by the
/// interpreter so the first (non-blocking) attempt refuses a bad timeout as Redis would.
pub fn timeout(arg: &[u8]) -> Result<f64, Reply> {
    let seconds = super::zset::float(arg)
        .filter(|s| s.is_finite())
        .ok_or_else(|| Reply::error("ERR timeout is not a float or out of range"))?;
    if seconds < 0.0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    Ok(seconds)
}

/// `BLPOP key [key …] timeout` run once: `[key, element]` from the first non-empty list, or a nil
/// array.
fn bpop(tx: &mut Tx, args: &[Vec<u8>], side: Side) -> Outcome {
    let (seconds, keys) = args.split_last().expect("arity checked: a key and a timeout");
    timeout(seconds)?;
    for key in keys {
        if let Some(mut values) = pop_many(tx, key, side, 1)? {
            let value = values.pop().expect("a list has an element");
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(value)]));
        }
    }
    Ok(Reply::NilArray)
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout` run once.
fn blmove(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [source, destination, from, to, seconds] = args else { unreachable!("arity checked") };
    let (from, to) = (Side::parse(from)?, Side::parse(to)?);
    timeout(seconds)?;
    move_one(tx, source, destination, from, to)
}

/// `BRPOPLPUSH source destination timeout` run once (Redis reads the timeout first).
fn brpoplpush(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [source, destination, seconds] = args else { unreachable!("arity checked") };
    timeout(seconds)?;
    move_one(tx, source, destination, Side::Right, Side::Left)
}

/// `BLMPOP timeout numkeys key [key …] LEFT|RIGHT [COUNT count]` run once.
/// Redis reads the timeout after the other arguments, so their errors come first.
fn blmpop(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    parse_mpop(&args[1..], Side::parse)?;
    timeout(&args[0])?;
    lmpop(tx, &args[1..])
}

/// Replace whatever `key` holds with a list of `values` (deleting it if there are none), as
/// `SORT … STORE` does.
pub(crate) fn store_list(tx: &mut Tx, key: &[u8], values: Vec<Vec<u8>>) {
    tx.remove(key);
    let mut header = Header::new(Kind::List);
    for value in values {
        push_one(tx, key, &mut header, Side::Right, value);
    }
    if header.len > 0 {
        tx.save(key, header);
    }
}

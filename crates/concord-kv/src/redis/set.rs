//! Sets (`@set`): one member record per member, its value empty.
//!
//! Membership is one point lookup (`SISMEMBER`), adding or removing a member one or two record
//! writes plus the header. Commands that combine sets (`SINTER`, `SUNION`, `SDIFF` and their
//! `STORE` variants, `SINTERCARD`) read whole sets, as Redis does; `SINTER` walks the smallest
//! set and looks each member up in the others.
//!
//! # Where Concord's answers differ from redis-server's
//! * **Order.** Members come back in byte order (the records are sorted); redis-server answers in
//!   its hash table's order. Clients must not rely on either, and the differential tests compare
//!   these replies as sets.
//! * **Randomness.** `SPOP` and `SRANDMEMBER` draw from a generator seeded by the command (see
//!   [`super::random`]): every replica pops the same members. `SRANDMEMBER` on an unchanged set
//!   answers the same each time.
//! * **`SSCAN`** pages through the members in order, `COUNT` (default 10) at a time, with a cursor
//!   that encodes the next member ([`crate::cursor`]): it resumes exactly where it stopped, never
//!   repeats a member, and sees every member present for the whole scan. redis-server returns a
//!   small set whole, whatever `COUNT` says, and accepts any number as a cursor; Concord accepts
//!   only cursors it made (`ERR invalid cursor` otherwise).
//! * A random count asking for more than [`MAX_RANDOM`] members is refused, rather than building a
//!   reply that large in the state machine.

use super::args::{int, is};
use super::random::Rng;
use super::{read, write, Header, Kind, Outcome, Reply, Spec, Tx, View};
use crate::{cursor, glob};
use std::collections::BTreeSet;

pub const COMMANDS: &[Spec] = &[
    write("sadd", sadd),
    write("srem", srem),
    write("spop", spop),
    write("smove", smove),
    write("sinterstore", |tx, args| store(tx, args, Op::Inter)),
    write("sunionstore", |tx, args| store(tx, args, Op::Union)),
    write("sdiffstore", |tx, args| store(tx, args, Op::Diff)),
    read("smembers", smembers),
    read("sismember", sismember),
    read("smismember", smismember),
    read("scard", scard),
    read("srandmember", srandmember),
    read("sinter", |view, args| combined(view, args, Op::Inter)),
    read("sunion", |view, args| combined(view, args, Op::Union)),
    read("sdiff", |view, args| combined(view, args, Op::Diff)),
    read("sintercard", sintercard),
    read("sscan", sscan),
];

/// The most members a random count (`SPOP`, `SRANDMEMBER`, `HRANDFIELD` with a negative count)
/// may ask for: a reply is built in memory on the replica.
pub const MAX_RANDOM: u64 = 1 << 20;

/// The set under `key` (`None`: absent; WRONGTYPE if another kind).
fn set(view: &View, key: &[u8]) -> Result<Option<Header>, Reply> {
    view.collection(key, Kind::Set)
}

/// Every member of the set under `key`, in byte order (empty if absent).
fn all(view: &View, key: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    view.members(key, &[], &mut |member, _| {
        out.push(member.to_vec());
        true
    });
    out
}

fn bulks(members: impl IntoIterator<Item = Vec<u8>>) -> Vec<Reply> {
    members.into_iter().map(Reply::Bulk).collect()
}

/// `SADD key member [member …]`: how many members are new.
fn sadd(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, members) = args.split_first().expect("arity checked: a key");
    let mut header = tx.collection(key, Kind::Set)?;
    let mut added = 0;
    for member in members {
        if tx.view().member(key, member).is_none() {
            tx.put_member(key, member, Vec::new());
            added += 1;
        }
    }
    if added > 0 {
        header.len += added;
        tx.save(key, header);
    }
    Ok(Reply::Int(added as i64))
}

/// `SREM key member [member …]`: how many were removed; the last one gone deletes the key.
fn srem(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, members) = args.split_first().expect("arity checked: a key");
    let Some(header) = set(&tx.view(), key)? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(tx.remove_members(key, header, members)))
}

/// `SPOP key [count]`: remove and return random members – one as a bulk string (nil if absent),
/// or up to `count` as a set.
fn spop(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    let count = match args {
        [_] => None,
        // Not a number is the same error as a negative (found by `concord difftest`, seed 4).
        [_, count] => Some(super::args::positive(count)?),
        _ => return Err(Reply::error("ERR syntax error")),
    };
    let Some(mut header) = set(&tx.view(), key)? else {
        return Ok(if count.is_some() { Reply::Set(vec![]) } else { Reply::Nil });
    };
    let mut rng = Rng::for_write(tx, key);
    let members = all(&tx.view(), key);
    let picked: Vec<Vec<u8>> = match count {
        // Popping everything needs no draw (Redis returns the whole set, too).
        Some(count) if count >= header.len => members,
        Some(count) => {
            let indices = rng.distinct(members.len(), count as usize);
            indices.into_iter().map(|i| members[i].clone()).collect()
        }
        None => vec![members[rng.below(header.len) as usize].clone()],
    };
    for member in &picked {
        tx.remove_member(key, member);
    }
    header.len -= picked.len() as u64;
    if !picked.is_empty() {
        tx.save(key, header);
    }
    Ok(match count {
        None => Reply::Bulk(picked.into_iter().next().expect("a non-empty set gives one")),
        Some(_) => Reply::Set(bulks(picked)),
    })
}

/// `SRANDMEMBER key [count]`: random members, without removing them. No count: one, or nil.
/// A positive count: that many distinct members (at most the whole set); a negative one:
/// `|count|` members, possibly repeated.
fn srandmember(view: &View, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    let count = match args {
        [_] => None,
        [_, count] => Some(random_count(count)?),
        _ => return Err(Reply::error("ERR syntax error")),
    };
    let Some(header) = set(view, key)? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    let members = all(view, key);
    let mut rng = Rng::for_read(view, key);
    let picked = pick(&mut rng, &members, count);
    debug_assert!(header.len as usize == members.len());
    Ok(match count {
        None => Reply::Bulk(picked.into_iter().next().expect("a non-empty set gives one").clone()),
        Some(_) => Reply::Array(picked.into_iter().cloned().map(Reply::Bulk).collect()),
    })
}

/// A count for `SRANDMEMBER` / `HRANDFIELD`: Redis's range, then Concord's cap.
fn random_count(arg: &[u8]) -> Result<i64, Reply> {
    capped(count_arg(arg)?)
}

/// A random count as Redis reads it: any `long` but `LONG_MIN` (its magnitude must fit).
pub(crate) fn count_arg(arg: &[u8]) -> Result<i64, Reply> {
    let count = int(arg)?;
    if count == i64::MIN {
        return Err(Reply::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(count)
}

/// Concord's cap on a negative (repeating) count: a positive one is bounded by the collection.
pub(crate) fn capped(count: i64) -> Result<i64, Reply> {
    if count < -(MAX_RANDOM as i64) {
        return Err(Reply::error(format!(
            "ERR count is too large: Concord returns at most {MAX_RANDOM} random members"
        )));
    }
    Ok(count)
}

/// Random picks from `items` (non-empty) as `SRANDMEMBER` / `HRANDFIELD` make them: `None`, one;
/// a positive count, that many distinct items in the order drawn; a negative one, with repeats.
pub(crate) fn pick<'a, T>(rng: &mut Rng, items: &'a [T], count: Option<i64>) -> Vec<&'a T> {
    let n = items.len();
    match count {
        None => vec![&items[rng.below(n as u64) as usize]],
        Some(count) if count >= 0 => {
            rng.distinct(n, (count as usize).min(n)).into_iter().map(|i| &items[i]).collect()
        }
        Some(count) => (0..count.unsigned_abs()).map(|_| &items[rng.below(n as u64) as usize]).collect(),
    }
}

/// `SMOVE source destination member`: 1 if moved (or already in both, when they are the same
/// set), 0 if `member` is not in `source`.
fn smove(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [source, destination, member] = args else { unreachable!("arity checked") };
    // Redis's order: an absent source answers 0 before the destination's type is looked at.
    let Some(mut from) = set(&tx.view(), source)? else { return Ok(Reply::Int(0)) };
    let mut to = tx.collection(destination, Kind::Set)?;
    if source == destination {
        return Ok(Reply::Int(i64::from(tx.view().member(source, member).is_some())));
    }
    if !tx.remove_member(source, member) {
        return Ok(Reply::Int(0));
    }
    from.len -= 1;
    tx.save(source, from);
    if tx.view().member(destination, member).is_none() {
        tx.put_member(destination, member, Vec::new());
        to.len += 1;
    }
    tx.save(destination, to);
    Ok(Reply::Int(1))
}

fn smembers(view: &View, args: &[Vec<u8>]) -> Outcome {
    set(view, &args[0])?;
    Ok(Reply::Set(bulks(all(view, &args[0]))))
}

fn sismember(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, member] = args else { unreachable!("arity checked") };
    set(view, key)?;
    Ok(Reply::Int(i64::from(view.member(key, member).is_some())))
}

fn smismember(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, members) = args.split_first().expect("arity checked: a key");
    set(view, key)?;
    Ok(Reply::Array(members.iter().map(|m| Reply::Int(i64::from(view.member(key, m).is_some()))).collect()))
}

fn scard(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(set(view, &args[0])?.map_or(0, |h| h.len as i64)))
}

/// How `SINTER`, `SUNION` and `SDIFF` combine their sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The combination of the sets under `keys`. Every key's type is checked first, as Redis 7 does:
/// a WRONGTYPE key anywhere fails the command, even after an absent one.
fn combine(view: &View, keys: &[Vec<u8>], op: Op, limit: usize) -> Result<BTreeSet<Vec<u8>>, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push((key, set(view, key)?));
    }
    let mut out = BTreeSet::new();
    match op {
        Op::Inter => {
            // An absent key is an empty set, so the intersection is empty.
            if sets.iter().any(|(_, header)| header.is_none()) {
                return Ok(out);
            }
            let (smallest, _) = sets.iter().min_by_key(|(_, h)| h.map_or(0, |h| h.len)).expect("a key");
            // Read the members first: a write transaction's engine cannot look a key up while a
            // scan is open (redb opens the table once per transaction).
            for member in all(view, smallest) {
                if sets.iter().all(|(key, _)| key == smallest || view.member(key, &member).is_some()) {
                    out.insert(member);
                    if limit != 0 && out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Op::Union => {
            for (key, _) in &sets {
                out.extend(all(view, key));
            }
        }
        Op::Diff => {
            let (first, rest) = sets.split_first().expect("a key");
            for member in all(view, first.0) {
                if rest.iter().all(|(key, _)| view.member(key, &member).is_none()) {
                    out.insert(member);
                }
            }
        }
    }
    Ok(out)
}

/// `SINTER` / `SUNION` / `SDIFF key [key …]`: the members, as a set.
fn combined(view: &View, keys: &[Vec<u8>], op: Op) -> Outcome {
    Ok(Reply::Set(bulks(combine(view, keys, op, 0)?)))
}

/// `SINTERSTORE` / `SUNIONSTORE` / `SDIFFSTORE destination key [key …]`: store the combination
/// in `destination`, replacing whatever it held (any type, and its TTL), and answer its size. An
/// empty result deletes `destination`.
fn store(tx: &mut Tx, args: &[Vec<u8>], op: Op) -> Outcome {
    let (destination, keys) = args.split_first().expect("arity checked: a destination");
    let members = combine(&tx.view(), keys, op, 0)?;
    tx.remove(destination);
    let mut header = Header::new(Kind::Set);
    for member in &members {
        tx.put_member(destination, member, Vec::new());
    }
    header.len = members.len() as u64;
    tx.save(destination, header);
    Ok(Reply::Int(members.len() as i64))
}

/// `SINTERCARD numkeys key [key …] [LIMIT limit]`: the intersection's size, counting stopped at
/// `limit` (0: no limit).
fn sintercard(view: &View, args: &[Vec<u8>]) -> Outcome {
    let numkeys = int(&args[0]).ok().filter(|&n| n > 0);
    let numkeys = numkeys.ok_or_else(|| Reply::error("ERR numkeys should be greater than 0"))? as u64;
    if numkeys > (args.len() - 1) as u64 {
        return Err(Reply::error("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, options) = args[1..].split_at(numkeys as usize);
    let mut limit = 0;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match options.next() {
            Some(value) if is(option, "LIMIT") => {
                let value = int(value).map_err(|_| Reply::error("ERR LIMIT can't be negative"))?;
                if value < 0 {
                    return Err(Reply::error("ERR LIMIT can't be negative"));
                }
                limit = value as usize;
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
    }
    Ok(Reply::Int(combine(view, keys, Op::Inter, limit)?.len() as i64))
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: `[next cursor, [member …]]`.
fn sscan(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, cursor) = (&args[0], &args[1]);
    let from = cursor::decode(cursor).ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    // Redis answers an absent key before it reads the options.
    if set(view, key)?.is_none() {
        return Ok(scan_reply(None, vec![]));
    }
    let scan = Scan::parse(&args[2..])?;
    let (next, members) = scan.page(view, key, from.as_deref().unwrap_or_default());
    Ok(scan_reply(next, bulks(members.into_iter().map(|(m, _)| m))))
}

/// The reply of `SSCAN` / `HSCAN`: the cursor to continue with (`0`: done) and the page.
pub(crate) fn scan_reply(next: Option<Vec<u8>>, items: Vec<Reply>) -> Reply {
    let cursor = next.map_or_else(|| "0".to_string(), |m| cursor::encode(&m));
    Reply::Array(vec![Reply::bulk(cursor), Reply::Array(items)])
}

/// (sub-key, value) records of a collection: hash fields and values; set members and `""`.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// `SSCAN` / `HSCAN` options.
pub(crate) struct Scan {
    pattern: Option<Vec<u8>>,
    count: usize,
}

impl Scan {
    /// `[MATCH pattern] [COUNT count]`, in any order, as Redis parses them.
    pub fn parse(options: &[Vec<u8>]) -> Result<Scan, Reply> {
        let mut scan = Scan { pattern: None, count: 10 };
        let mut options = options.iter();
        while let Some(option) = options.next() {
            let value = options.next().ok_or_else(|| Reply::error("ERR syntax error"))?;
            if is(option, "COUNT") {
                let count = int(value)?;
                if count < 1 {
                    return Err(Reply::error("ERR syntax error"));
                }
                scan.count = count as usize;
            } else if is(option, "MATCH") {
                scan.pattern = Some(value.clone());
            } else {
                return Err(Reply::error("ERR syntax error"));
            }
        }
        Ok(scan)
    }

    /// Visit up to `count` members of `key` from `from` on; the ones matching the pattern, and the
    /// member to resume at (`None`: the scan is done). `COUNT` bounds the members visited, not
    /// the ones returned – as in Redis, a page can be empty before the scan ends.
    pub fn page(&self, view: &View, key: &[u8], from: &[u8]) -> (Option<Vec<u8>>, Pairs) {
        let (mut items, mut visited, mut next) = (Vec::new(), 0, None);
        view.members(key, from, &mut |member, value| {
            if visited == self.count {
                next = Some(member.to_vec());
                return false;
            }
            visited += 1;
            if self.pattern.as_ref().is_none_or(|p| glob::matches(p, member)) {
                items.push((member.to_vec(), value.to_vec()));
            }
            true
        });
        (next, items)
    }
}

//! Sorted sets (`@sortedset`): a member record and a score-index record per member.
//!
//! | record | sub-key | value |
//! |---|---|---|
//! | member | the member | its score, 8 bytes (`f64` bits, big-endian) |
//! | index | the score, order-preserving ([`score_key`]) · the member | empty |
//!
//! The member records answer `ZSCORE` in one lookup and, being sorted by member bytes, make a
//! lexicographic range (`ZRANGEBYLEX`, meaningful when all scores are equal, as Redis requires)
//! one scan. With mixed scores a lex range walks the index as redis-server walks a `listpack`
//! (see `LexRange::walk`), O(n). The index records are in Redis's order – by score, ties by member – so a score range
//! is one scan starting at its minimum. Changing a member's score rewrites its member record and
//! moves its index record: three point writes.
//!
//! Costs, where they differ from Redis's skiplist (which keeps ranks in its nodes): the store
//! keeps no counts, so a rank (`ZRANK`, `ZRANGE` by rank, `ZREMRANGEBYRANK`) is found by scanning
//! the index from the lowest score – O(rank) – and everything that walks from the *highest* score
//! (`REV` ranges, `ZREVRANK`, `ZPOPMAX`) scans forward and reverses, O(n), since the engine scans
//! only forward. `ZRANDMEMBER` reads the whole set.
//!
//! `-0` is stored as `0`, as redis-server's `listpack` encoding stores it (its `skiplist` keeps
//! the sign: see docs/redis.md, "Differential tests"); NaN is never a score. A computed reply
//! (`ZUNION … WEIGHTS -1`, `ZINCRBY`) keeps the sign, as redis-server's does.
//!
//! Replies with scores are [`Reply::Pairs`]: flat arrays `[member, score, …]` in RESP2, nested
//! `[[member, score], …]` in RESP3, as redis-server answers. `ZPOPMIN` without a count, the
//! blocking pops and `ZSCAN` stay flat in both.
//!
//! `ZRANDMEMBER` must give every replica the same answer, so it draws as `SRANDMEMBER` does, from
//! the generator of [`super::random`] seeded by the key and its revision: deterministic for a
//! given state, different after each change. `ZSCAN` returns the whole set in one page with
//! cursor 0 (as redis-server does for small, listpack-encoded sets). `ZUNIONSTORE`/`ZINTERSTORE`
//! read every input (sets count as sorted sets with score 1) and write the destination in one
//! step.

use std::collections::BTreeMap;

use super::args::{int, is};
use super::random::Rng;
use super::set::pick;
use super::{format_double, read, write, Header, Kind, Outcome, Reply, Spec, Tx, View};

pub const COMMANDS: &[Spec] = &[
    write("zadd", zadd),
    write("zincrby", zincrby),
    write("zrem", zrem),
    write("zpopmin", |tx, args| zpop(tx, args, false)),
    write("zpopmax", |tx, args| zpop(tx, args, true)),
    // Run once, without waiting: the front door waits between attempts (see `list`).
    write("bzpopmin", |tx, args| bzpop(tx, args, false)),
    write("bzpopmax", |tx, args| bzpop(tx, args, true)),
    write("zunionstore", |tx, args| zstore(tx, args, SetOp::Union, "zunionstore")),
    write("zinterstore", |tx, args| zstore(tx, args, SetOp::Inter, "zinterstore")),
    write("zdiffstore", |tx, args| zstore(tx, args, SetOp::Diff, "zdiffstore")),
    write("zrangestore", zrangestore),
    write("zmpop", zmpop),
    write("bzmpop", bzmpop),
    write("zremrangebyrank", |tx, args| zremrange(tx, args, By::Rank)),
    write("zremrangebyscore", |tx, args| zremrange(tx, args, By::Score)),
    write("zremrangebylex", |tx, args| zremrange(tx, args, By::Lex)),
    read("zscore", zscore),
    read("zmscore", zmscore),
    read("zcard", zcard),
    read("zcount", zcount),
    read("zlexcount", zlexcount),
    read("zrank", |view, args| zrank(view, args, false)),
    read("zrevrank", |view, args| zrank(view, args, true)),
    read("zrange", |view, args| zrange(view, args, Legacy::None)),
    read("zrangebyscore", |view, args| zrange(view, args, Legacy::Fixed(By::Score, false))),
    read("zrevrangebyscore", |view, args| zrange(view, args, Legacy::Fixed(By::Score, true))),
    read("zrevrange", |view, args| zrange(view, args, Legacy::Fixed(By::Rank, true))),
    read("zrangebylex", |view, args| zrange(view, args, Legacy::Fixed(By::Lex, false))),
    read("zrevrangebylex", |view, args| zrange(view, args, Legacy::Fixed(By::Lex, true))),
    read("zunion", |view, args| zcombine(view, args, SetOp::Union, "zunion")),
    read("zinter", |view, args| zcombine(view, args, SetOp::Inter, "zinter")),
    read("zdiff", |view, args| zcombine(view, args, SetOp::Diff, "zdiff")),
    read("zintercard", zintercard),
    read("zrandmember", zrandmember),
    read("zscan", zscan),
];

/// A score's index sub-key prefix: the `f64`'s bits arranged so that byte order is numeric order
/// (negative numbers have every bit flipped, positive ones only the sign bit). `-0` encodes as `0`.
pub fn score_key(score: f64) -> [u8; 8] {
    let bits = (score + 0.0).to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
    ordered.to_be_bytes()
}

fn score_from_key(bytes: &[u8]) -> f64 {
    let ordered = u64::from_be_bytes(bytes[..8].try_into().expect("index sub-keys start with 8 bytes"));
    let bits = if ordered >> 63 == 1 { ordered ^ (1 << 63) } else { !ordered };
    f64::from_bits(bits)
}

fn index_key(score: f64, member: &[u8]) -> Vec<u8> {
    let mut out = score_key(score).to_vec();
    out.extend_from_slice(member);
    out
}

/// A member and its score.
type Scored = (Vec<u8>, f64);

fn decode_score(value: &[u8]) -> f64 {
    f64::from_bits(u64::from_be_bytes(value.try_into().expect("member records hold 8 bytes")))
}

/// A float as Redis's `strtod` reads one: `inf`, `-inf`, `1e3`, `.5`; never NaN or spaces.
pub fn float(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return None;
    }
    let value = parse_f64(text)?;
    // strtod's ERANGE: Redis refuses a finite literal too large for a double (`1e400`).
    (value.is_finite() || text.to_ascii_lowercase().contains("inf")).then_some(value)
}

/// A range bound's number as `zslParseRange` reads it: as [`float`], but an overflow is infinite
/// and an empty string is 0 (so `(` alone means "above 0", as in Redis).
fn range_float(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() {
        return Some(0.0);
    }
    parse_f64(std::str::from_utf8(arg).ok()?)
}

/// Decimal as Rust reads it, or C's hexadecimal integers (`0x10`, which strtod accepts); never NaN.
fn parse_f64(text: &str) -> Option<f64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        let magnitude = u128::from_str_radix(hex, 16).ok()? as f64;
        return Some(if negative { -magnitude } else { magnitude });
    }
    text.parse::<f64>().ok().filter(|v| !v.is_nan())
}

fn score_arg(arg: &[u8]) -> Result<f64, Reply> {
    float(arg).ok_or_else(|| Reply::error("ERR value is not a valid float"))
}

fn zset(view: &View, key: &[u8]) -> Result<Option<Header>, Reply> {
    view.collection(key, Kind::ZSet)
}

fn score_of(view: &View, key: &[u8], member: &[u8]) -> Option<f64> {
    view.member(key, member).map(|v| decode_score(&v))
}

/// Every (member, score) of the sorted set under `key`, in score order (`SORT … BY nosort`).
pub(crate) fn by_score(view: &View, key: &[u8]) -> Vec<(Vec<u8>, f64)> {
    by_score_order(view, key, usize::MAX)
}

/// Give `member` the score `new` (it had `old`), keeping the index in step.
fn set_score(tx: &mut Tx, key: &[u8], member: &[u8], old: Option<f64>, new: f64) {
    if let Some(old) = old {
        tx.remove_index(key, &index_key(old, member));
    }
    let new = new + 0.0;
    tx.put_member(key, member, new.to_bits().to_be_bytes().to_vec());
    tx.put_index(key, &index_key(new, member));
}

fn remove_one(tx: &mut Tx, key: &[u8], member: &[u8], score: f64) {
    tx.remove_member(key, member);
    tx.remove_index(key, &index_key(score, member));
}

/// Every (member, score) in score order, or the first `limit` of them.
fn by_score_order(view: &View, key: &[u8], limit: usize) -> Vec<Scored> {
    let mut out = Vec::new();
    if limit == 0 {
        return out;
    }
    view.index(key, &[], &mut |sub, _| {
        out.push((sub[8..].to_vec(), score_from_key(sub)));
        out.len() < limit
    });
    out
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member …]`.
fn zadd(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut at = 1;
    while let Some(arg) = args.get(at) {
        match () {
            _ if is(arg, "NX") => nx = true,
            _ if is(arg, "XX") => xx = true,
            _ if is(arg, "GT") => gt = true,
            _ if is(arg, "LT") => lt = true,
            _ if is(arg, "CH") => ch = true,
            _ if is(arg, "INCR") => incr = true,
            _ => break,
        }
        at += 1;
    }
    let pairs = &args[at..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(Reply::error("ERR syntax error"));
    }
    if nx && xx {
        return Err(Reply::error("ERR XX and NX options at the same time are not compatible"));
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return Err(Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && pairs.len() > 2 {
        return Err(Reply::error("ERR INCR option supports a single increment-element pair"));
    }
    // Every score is checked before anything changes: a bad one fails the whole command.
    let scores = pairs.chunks(2).map(|p| score_arg(&p[0])).collect::<Result<Vec<_>, _>>()?;
    let mut header = match zset(&tx.view(), key)? {
        Some(header) => header,
        None if xx => return Ok(if incr { Reply::Nil } else { Reply::Int(0) }),
        None => Header::new(Kind::ZSet),
    };
    let (mut added, mut changed) = (0, 0);
    let mut last = None;
    for (pair, score) in pairs.chunks(2).zip(scores) {
        let member = &pair[1];
        last = None;
        match score_of(&tx.view(), key, member) {
            Some(current) => {
                if nx {
                    continue;
                }
                let new = if incr { current + score } else { score };
                if new.is_nan() {
                    return Err(Reply::error("ERR resulting score is not a number (NaN)"));
                }
                if (gt && new <= current) || (lt && new >= current) {
                    continue;
                }
                last = Some(new);
                if new != current {
                    set_score(tx, key, member, Some(current), new);
                    changed += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                set_score(tx, key, member, None, score);
                header.len += 1;
                added += 1;
                last = Some(score);
            }
        }
    }
    if added + changed > 0 {
        tx.save(key, header);
    }
    if incr {
        // A new member's score is the increment as given (`-0` answers `-0`; it is stored as 0).
        return Ok(last.map_or(Reply::Nil, Reply::Double));
    }
    Ok(Reply::Int(added + if ch { changed } else { 0 }))
}

/// `ZINCRBY key increment member`: the new score.
fn zincrby(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, delta, member] = args else { unreachable!("arity checked") };
    let delta = score_arg(delta)?;
    let mut header = tx.collection(key, Kind::ZSet)?;
    let current = score_of(&tx.view(), key, member);
    // A new member's score is the increment itself (`-0` answers `-0`, as Redis; stored as 0).
    let new = current.map_or(delta, |c| c + delta);
    if new.is_nan() {
        return Err(Reply::error("ERR resulting score is not a number (NaN)"));
    }
    if current.is_none() {
        header.len += 1;
    }
    set_score(tx, key, member, current, new);
    tx.save(key, header);
    Ok(Reply::Double(new))
}

fn zrem(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, members) = args.split_first().expect("arity checked: a key");
    let Some(mut header) = zset(&tx.view(), key)? else { return Ok(Reply::Int(0)) };
    let mut removed = 0;
    for member in members {
        if let Some(score) = score_of(&tx.view(), key, member) {
            remove_one(tx, key, member, score);
            header.len -= 1;
            removed += 1;
        }
    }
    if removed > 0 {
        tx.save(key, header);
    }
    Ok(Reply::Int(removed))
}

fn zscore(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, member] = args else { unreachable!("arity checked") };
    zset(view, key)?;
    Ok(score_of(view, key, member).map_or(Reply::Nil, Reply::Double))
}

fn zmscore(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, members) = args.split_first().expect("arity checked: a key");
    zset(view, key)?;
    Ok(Reply::Array(
        members.iter().map(|m| score_of(view, key, m).map_or(Reply::Nil, Reply::Double)).collect(),
    ))
}

fn zcard(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(zset(view, &args[0])?.map_or(0, |h| h.len as i64)))
}

/// A score range as Redis writes one: `1.5` (inclusive), `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    min: f64,
    min_exclusive: bool,
    max: f64,
    max_exclusive: bool,
}

impl ScoreRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        let bound = |arg: &[u8]| match arg.strip_prefix(b"(") {
            Some(rest) => range_float(rest).map(|v| (v, true)),
            None => range_float(arg).map(|v| (v, false)),
        };
        let error = || Reply::error("ERR min or max is not a float");
        let ((min, min_exclusive), (max, max_exclusive)) =
            (bound(min).ok_or_else(error)?, bound(max).ok_or_else(error)?);
        Ok(ScoreRange { min, min_exclusive, max, max_exclusive })
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }

    /// Visit the members in the range, lowest score first, until `visit` returns false.
    fn scan(&self, view: &View, key: &[u8], visit: &mut dyn FnMut(&[u8], f64) -> bool) {
        if self.min > self.max || (self.min == self.max && (self.min_exclusive || self.max_exclusive)) {
            return;
        }
        view.index(key, &score_key(self.min), &mut |sub, _| {
            let score = score_from_key(sub);
            if !self.above_min(score) {
                return true;
            }
            self.below_max(score) && visit(&sub[8..], score)
        });
    }
}

/// A lexicographic range: `[a` (inclusive), `(a` (exclusive), `-`, `+`.
#[derive(Clone, Debug)]
pub struct LexRange {
    min: Lex,
    max: Lex,
}

#[derive(Clone, Debug)]
enum Lex {
    Lowest,
    Highest,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

impl LexRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
        let item = |arg: &[u8]| match arg.split_first() {
            Some((b'-', [])) => Some(Lex::Lowest),
            Some((b'+', [])) => Some(Lex::Highest),
            Some((b'[', rest)) => Some(Lex::Inclusive(rest.to_vec())),
            Some((b'(', rest)) => Some(Lex::Exclusive(rest.to_vec())),
            _ => None,
        };
        let error = || Reply::error("ERR min or max not valid string range item");
        Ok(LexRange { min: item(min).ok_or_else(error)?, max: item(max).ok_or_else(error)? })
    }

    fn above_min(&self, member: &[u8]) -> bool {
        match &self.min {
            Lex::Lowest => true,
            Lex::Highest => false,
            Lex::Inclusive(m) => member >= m.as_slice(),
            Lex::Exclusive(m) => member > m.as_slice(),
        }
    }

    fn below_max(&self, member: &[u8]) -> bool {
        match &self.max {
            Lex::Lowest => false,
            Lex::Highest => true,
            Lex::Inclusive(m) => member <= m.as_slice(),
            Lex::Exclusive(m) => member < m.as_slice(),
        }
    }

    /// Whether the range is empty whatever the members (`sdscmplex(min, max) > 0`, or equal with
    /// an exclusive end), as `zslParseLexRange`'s callers check first.
    fn is_empty(&self) -> bool {
        let rank = |l: &Lex| match l {
            Lex::Lowest => 0,
            Lex::Inclusive(_) | Lex::Exclusive(_) => 1,
            Lex::Highest => 2,
        };
        let text = |l: &Lex| match l {
            Lex::Inclusive(m) | Lex::Exclusive(m) => m.clone(),
            Lex::Lowest | Lex::Highest => vec![],
        };
        let exclusive = |l: &Lex| matches!(l, Lex::Exclusive(_));
        match (rank(&self.min), rank(&self.max)) {
            (a, b) if a != b => a > b,
            (1, 1) => match text(&self.min).cmp(&text(&self.max)) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => exclusive(&self.min) || exclusive(&self.max),
                std::cmp::Ordering::Less => false,
            },
            // `-`..`-` and `+`..`+`: equal, not exclusive; no member is above `+` or below `-`.
            _ => false,
        }
    }

    /// The members in the range with their scores, in the order Redis walks them: forward from
    /// the first member (in score order) at or above `min`, while at or below `max` – or, `rev`,
    /// backward from the last at or below `max`, while at or above `min`. With equal scores (what
    /// Redis requires of a lex range) that is the members in byte order. With mixed scores Redis
    /// documents the result as unspecified; this is what redis-server answers for a sorted set
    /// in its `listpack` encoding (`zzlFirstInLexRange`, `zzlLastInLexRange`: a linear walk, which
    /// stops at the first member out of range and answers nothing when the first member is above
    /// `max` or the last below `min`), so the two agree on every set of up to 128 short members.
    /// (A `skiplist`-encoded set's answer depends on its nodes' random levels: no one can match
    /// it.) `LIMIT offset count` as Redis applies it: `offset` members are skipped from the
    /// start, in range or not, then up to `count` taken while in range.
    fn walk(&self, view: &View, key: &[u8], rev: bool, offset: usize, count: usize) -> Vec<Scored> {
        let mut out = Vec::new();
        if count == 0 || self.is_empty() {
            return out;
        }
        if equal_scores(view, key) {
            // One block of equal scores, ordered by member: the member records' order.
            let from = match &self.min {
                Lex::Inclusive(m) | Lex::Exclusive(m) => m.as_slice(),
                Lex::Lowest | Lex::Highest => &[],
            };
            let enough = if rev { usize::MAX } else { offset.saturating_add(count) };
            view.members(key, from, &mut |member, value| {
                if !self.above_min(member) {
                    return true;
                }
                if !self.below_max(member) {
                    return false;
                }
                out.push((member.to_vec(), decode_score(value)));
                out.len() < enough
            });
            if rev {
                out.reverse();
            }
            return out.into_iter().skip(offset).take(count).collect();
        }
        let mut all = by_score_order(view, key, usize::MAX);
        let (Some(first), Some(last)) = (all.first(), all.last()) else { return out };
        if !self.above_min(&last.0) || !self.below_max(&first.0) {
            return out;
        }
        if rev {
            all.reverse();
        }
        // Forward: start at or above min, go on while at or below max; backward the other way.
        let starts = |m: &[u8]| if rev { self.below_max(m) } else { self.above_min(m) };
        let goes_on = |m: &[u8]| if rev { self.above_min(m) } else { self.below_max(m) };
        let Some(start) = all.iter().position(|(m, _)| starts(m)) else { return out };
        all.into_iter()
            .skip(start.saturating_add(offset))
            .take_while(|(m, _)| goes_on(m))
            .take(count)
            .collect()
    }
}

/// Whether every member of the sorted set under `key` has the same score: the index's first
/// record's score, and no record after that score's block (two seeks).
fn equal_scores(view: &View, key: &[u8]) -> bool {
    let mut first = None;
    view.index(key, &[], &mut |sub, _| {
        first = Some(u64::from_be_bytes(sub[..8].try_into().expect("index sub-keys start with 8 bytes")));
        false
    });
    let Some(first) = first else { return true };
    let Some(next) = first.checked_add(1) else { return true };
    let mut more = false;
    view.index(key, &next.to_be_bytes(), &mut |_, _| {
        more = true;
        false
    });
    !more
}

fn zcount(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, min, max] = args else { unreachable!("arity checked") };
    let range = ScoreRange::parse(min, max)?;
    count_in(view, key, |visit| range.scan(view, key, visit))
}

fn zlexcount(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, min, max] = args else { unreachable!("arity checked") };
    let range = LexRange::parse(min, max)?;
    if zset(view, key)?.is_none() {
        return Ok(Reply::Int(0));
    }
    Ok(Reply::Int(range.walk(view, key, false, 0, usize::MAX).len() as i64))
}

/// How many members a range's `scan` visits (0 if the key is absent).
fn count_in(view: &View, key: &[u8], scan: impl FnOnce(&mut dyn FnMut(&[u8], f64) -> bool)) -> Outcome {
    let mut n = 0;
    if zset(view, key)?.is_some() {
        scan(&mut |_, _| {
            n += 1;
            true
        });
    }
    Ok(Reply::Int(n))
}

/// `ZRANK key member` (O(rank)) and `ZREVRANK` (O(n)).
fn zrank(view: &View, args: &[Vec<u8>], rev: bool) -> Outcome {
    let [key, member] = args else { unreachable!("arity checked") };
    let Some(header) = zset(view, key)? else { return Ok(Reply::Nil) };
    let Some(score) = score_of(view, key, member) else { return Ok(Reply::Nil) };
    let target = index_key(score, member);
    let mut rank = 0i64;
    view.index(key, &[], &mut |sub, _| {
        if sub == target.as_slice() {
            return false;
        }
        rank += 1;
        true
    });
    Ok(Reply::Int(if rev { header.len as i64 - 1 - rank } else { rank }))
}

/// How a range is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// The pre-`ZRANGE`-options commands fix the range type and direction.
#[derive(Clone, Copy)]
enum Legacy {
    None,
    Fixed(By, bool),
}

/// A parsed range query.
struct Query {
    by: By,
    rev: bool,
    /// By rank: `start`, `stop` (raw, maybe negative).
    ranks: (i64, i64),
    scores: Option<ScoreRange>,
    lex: Option<LexRange>,
    /// `LIMIT offset count`: count < 0 means all.
    offset: i64,
    count: i64,
}

impl Query {
    /// Parse the bounds (given min first, or max first for a reversed score or lex range).
    fn bounds(by: By, rev: bool, first: &[u8], second: &[u8]) -> Result<Query, Reply> {
        let (min, max) = if rev && by != By::Rank { (second, first) } else { (first, second) };
        let mut q = Query { by, rev, ranks: (0, 0), scores: None, lex: None, offset: 0, count: -1 };
        match by {
            By::Rank => q.ranks = (int(min)?, int(max)?),
            By::Score => q.scores = Some(ScoreRange::parse(min, max)?),
            By::Lex => q.lex = Some(LexRange::parse(min, max)?),
        }
        Ok(q)
    }

    /// The matching (member, score)s, in the query's order, after `LIMIT`.
    fn run(&self, view: &View, key: &[u8], header: &Header) -> Vec<Scored> {
        let len = header.len as i64;
        if self.by == By::Rank {
            let (start, stop) = self.ranks;
            let start = if start < 0 { (len + start).max(0) } else { start };
            let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
            if start > stop || start >= len {
                return vec![];
            }
            // A reversed rank range is the mirrored forward range, reversed.
            let (from, to) = if self.rev { (len - 1 - stop, len - 1 - start) } else { (start, stop) };
            let mut out: Vec<_> = by_score_order(view, key, (to + 1) as usize).split_off(from as usize);
            if self.rev {
                out.reverse();
            }
            return out;
        }
        if self.offset < 0 {
            return vec![];
        }
        if let Some(range) = &self.lex {
            // Redis skips `offset` members from the walk's start, then takes `count` in range.
            let count = usize::try_from(self.count).unwrap_or(usize::MAX);
            return range.walk(view, key, self.rev, self.offset as usize, count);
        }
        // Forward: stop as soon as LIMIT is met. Reversed: the whole range, then reverse.
        let enough = match (self.rev, self.count) {
            (false, count) if count >= 0 => self.offset.saturating_add(count) as usize,
            _ => usize::MAX,
        };
        let mut out = Vec::new();
        let mut visit = |member: &[u8], score: f64| {
            if out.len() >= enough {
                return false;
            }
            out.push((member.to_vec(), score));
            true
        };
        let Some(range) = &self.scores else { unreachable!("a score or lex range was parsed") };
        range.scan(view, key, &mut visit);
        if self.rev {
            out.reverse();
        }
        let skipped = out.into_iter().skip(self.offset as usize);
        if self.count < 0 {
            skipped.collect()
        } else {
            skipped.take(self.count as usize).collect()
        }
    }
}

/// Members, with their scores if asked: `[[member, score], …]` in RESP3, `[member, score, …]` in
/// RESP2 (a [`Reply::Pairs`]).
fn members_reply(found: Vec<Scored>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::scored(found)
    } else {
        Reply::Array(found.into_iter().map(|(member, _)| Reply::Bulk(member)).collect())
    }
}

/// `[member, score, …]` flat in both protocols, as `ZPOPMIN` without a count answers.
fn flat_scored(found: Vec<Scored>) -> Reply {
    Reply::Array(
        found.into_iter().flat_map(|(member, score)| [Reply::Bulk(member), Reply::Double(score)]).collect(),
    )
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` and the older
/// `ZRANGEBYSCORE`, `ZREVRANGE`, … (which fix the range type and direction), as Redis parses them:
/// options first, then the conflicts, then the bounds, then the key.
fn zrange(view: &View, args: &[Vec<u8>], legacy: Legacy) -> Outcome {
    let (query, with_scores) = parse_range(args, legacy, false)?;
    let Some(header) = zset(view, &args[0])? else { return Ok(Reply::Array(vec![])) };
    Ok(members_reply(query.run(view, &args[0], &header), with_scores))
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`: `ZRANGE`'s
/// members, with their scores, stored in `dst`; its new size.
fn zrangestore(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (destination, args) = args.split_first().expect("arity checked");
    let (query, _) = parse_range(args, Legacy::None, true)?;
    let found = match zset(&tx.view(), &args[0])? {
        Some(header) => query.run(&tx.view(), &args[0], &header),
        None => vec![],
    };
    store_scored(tx, destination, &found);
    Ok(Reply::Int(found.len() as i64))
}

/// Parse `key start stop [options]` for `ZRANGE` (and `ZRANGESTORE`, which has no `WITHSCORES`):
/// the query and whether to answer scores.
fn parse_range(args: &[Vec<u8>], legacy: Legacy, store: bool) -> Result<(Query, bool), Reply> {
    let (first, second) = (&args[1], &args[2]);
    let (mut by, mut rev) = match legacy {
        Legacy::None => (None, None),
        Legacy::Fixed(by, rev) => (Some(by), Some(rev)),
    };
    let (mut with_scores, mut limit) = (false, None);
    let mut at = 3;
    while let Some(arg) = args.get(at) {
        let left = args.len() - at - 1;
        match () {
            _ if !store && is(arg, "WITHSCORES") => with_scores = true,
            _ if is(arg, "LIMIT") && left >= 2 => {
                limit = Some((int(&args[at + 1])?, int(&args[at + 2])?));
                at += 2;
            }
            _ if rev.is_none() && is(arg, "REV") => rev = Some(true),
            _ if by.is_none() && is(arg, "BYLEX") => by = Some(By::Lex),
            _ if by.is_none() && is(arg, "BYSCORE") => by = Some(By::Score),
            _ => return Err(Reply::error("ERR syntax error")),
        }
        at += 1;
    }
    let (by, rev) = (by.unwrap_or(By::Rank), rev.unwrap_or(false));
    if by == By::Rank && limit.is_some_and(|(_, count)| count != -1) {
        return Err(Reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && by == By::Lex {
        return Err(Reply::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    let mut query = Query::bounds(by, rev, first, second)?;
    if let Some((offset, count)) = limit {
        query.offset = offset;
        query.count = count;
    }
    Ok((query, with_scores))
}

/// `ZREMRANGEBYRANK key start stop`, `ZREMRANGEBYSCORE key min max`, `ZREMRANGEBYLEX key min max`.
fn zremrange(tx: &mut Tx, args: &[Vec<u8>], by: By) -> Outcome {
    let [key, min, max] = args else { unreachable!("arity checked") };
    let query = Query::bounds(by, false, min, max)?;
    let Some(mut header) = zset(&tx.view(), key)? else { return Ok(Reply::Int(0)) };
    let doomed = query.run(&tx.view(), key, &header);
    for (member, score) in &doomed {
        remove_one(tx, key, member, *score);
    }
    if !doomed.is_empty() {
        header.len -= doomed.len() as u64;
        tx.save(key, header);
    }
    Ok(Reply::Int(doomed.len() as i64))
}

/// Pop up to `count` members with the lowest (or highest) scores; `None` if `key` is absent.
pub fn pop_many(tx: &mut Tx, key: &[u8], max: bool, count: u64) -> Result<Option<Vec<Scored>>, Reply> {
    let Some(mut header) = zset(&tx.view(), key)? else { return Ok(None) };
    let count = count.min(header.len) as usize;
    let popped = if max {
        let mut all = by_score_order(&tx.view(), key, usize::MAX);
        let mut top = all.split_off(all.len() - count);
        top.reverse();
        top
    } else {
        by_score_order(&tx.view(), key, count)
    };
    for (member, score) in &popped {
        remove_one(tx, key, member, *score);
    }
    if !popped.is_empty() {
        header.len -= popped.len() as u64;
        tx.save(key, header);
    }
    Ok(Some(popped))
}

/// `ZPOPMIN key [count]`, `ZPOPMAX key [count]`: `[member, score]` without a count, pairs with
/// one (nested in RESP3, as redis-server answers); empty if the key is absent.
fn zpop(tx: &mut Tx, args: &[Vec<u8>], max: bool) -> Outcome {
    let count = match args {
        [_] => None,
        // Redis reads the count with getPositiveLongFromObjectOrReply: not a number is the same
        // error as a negative one (found by `concord difftest`, seed 3).
        [_, n] => Some(super::args::positive(n)?),
        _ => return Err(Reply::error("ERR syntax error")),
    };
    let popped = pop_many(tx, &args[0], max, count.unwrap_or(1))?.unwrap_or_default();
    Ok(if count.is_some() { members_reply(popped, true) } else { flat_scored(popped) })
}

/// `BZPOPMIN key [key …] timeout` run once: `[key, member, score]` from the first non-empty
/// sorted set, or a nil array.
fn bzpop(tx: &mut Tx, args: &[Vec<u8>], max: bool) -> Outcome {
    let (seconds, keys) = args.split_last().expect("arity checked: a key and a timeout");
    super::list::timeout(seconds)?;
    for key in keys {
        if let Some(mut popped) = pop_many(tx, key, max, 1)? {
            let (member, score) = popped.pop().expect("a sorted set has a member");
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Bulk(member),
                Reply::Double(score),
            ]));
        }
    }
    Ok(Reply::NilArray)
}

/// Which combination of sorted sets (`ZUNION`, `ZINTER`, `ZDIFF` and their `STORE`s, `ZINTERCARD`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

/// What the caller does with the combination, which decides the options Redis accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOut {
    /// `ZUNION`/`ZINTER`/`ZDIFF`: `WITHSCORES` allowed.
    Reply,
    /// The `STORE` forms.
    Store,
    /// `ZINTERCARD`: only `LIMIT`.
    Card,
}

/// A parsed and computed combination: the members in score order (ties by member), whether
/// `WITHSCORES` was given, and `ZINTERCARD`'s `LIMIT` (0: none).
struct Combined {
    members: Vec<Scored>,
    with_scores: bool,
    limit: u64,
}

/// Parse `numkeys key [key …] [WEIGHTS w …] [AGGREGATE SUM|MIN|MAX] [WITHSCORES] [LIMIT n]` (as
/// `zunionInterDiffGenericCommand` does, in its order: numkeys, the inputs' types, then the
/// options) and combine the inputs (sets count as sorted sets with score 1).
fn combine(view: &View, args: &[Vec<u8>], op: SetOp, out: SetOut, name: &str) -> Result<Combined, Reply> {
    let numkeys = int(&args[0])?;
    if numkeys < 1 {
        return Err(Reply::error(format!("ERR at least 1 input key is needed for '{name}' command")));
    }
    let numkeys = numkeys as usize;
    let Some(keys) = args.get(1..1 + numkeys) else { return Err(Reply::error("ERR syntax error")) };
    // Redis looks the inputs up (WRONGTYPE) before it reads the options.
    for key in keys {
        if !matches!(view.kind(key), None | Some(Kind::ZSet | Kind::Set)) {
            return Err(Reply::wrong_type());
        }
    }
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = "sum";
    let (mut with_scores, mut limit) = (false, 0u64);
    let weighted = op != SetOp::Diff && out != SetOut::Card;
    let mut at = 1 + numkeys;
    while let Some(arg) = args.get(at) {
        let left = args.len() - at - 1;
        match () {
            _ if weighted && is(arg, "WEIGHTS") && left >= numkeys => {
                for (i, w) in args[at + 1..=at + numkeys].iter().enumerate() {
                    weights[i] = float(w).ok_or_else(|| Reply::error("ERR weight value is not a float"))?;
                }
                at += numkeys;
            }
            _ if weighted && is(arg, "AGGREGATE") && left >= 1 => {
                let how = &args[at + 1];
                aggregate = match () {
                    _ if is(how, "SUM") => "sum",
                    _ if is(how, "MIN") => "min",
                    _ if is(how, "MAX") => "max",
                    _ => return Err(Reply::error("ERR syntax error")),
                };
                at += 1;
            }
            _ if out == SetOut::Reply && is(arg, "WITHSCORES") => with_scores = true,
            _ if out == SetOut::Card && is(arg, "LIMIT") && left >= 1 => {
                // Redis's one message for "not a number" and "negative" alike.
                let negative = || Reply::error("ERR LIMIT can't be negative");
                limit = int(&args[at + 1]).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(negative)?;
                at += 1;
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
        at += 1;
    }
    let mut inputs: Vec<BTreeMap<Vec<u8>, f64>> = Vec::with_capacity(numkeys);
    for key in keys {
        let mut members = BTreeMap::new();
        let set = view.kind(key) == Some(Kind::Set);
        if view.kind(key).is_some() {
            view.members(key, &[], &mut |m, v| {
                members.insert(m.to_vec(), if set { 1.0 } else { decode_score(v) });
                true
            });
        }
        inputs.push(members);
    }
    // Redis turns NaN (0 × inf, inf + -inf) into 0.
    let finite = |x: f64| if x.is_nan() { 0.0 } else { x };
    // As `zunionInterAggregate` compares: the kept score wins a tie (`-0` against `0`).
    let combine = |a: f64, b: f64| match aggregate {
        "min" => {
            if b < a {
                b
            } else {
                a
            }
        }
        "max" => {
            if b > a {
                b
            } else {
                a
            }
        }
        _ => finite(a + b),
    };
    let mut result: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    match op {
        SetOp::Union => {
            for (members, weight) in inputs.iter().zip(&weights) {
                for (member, score) in members {
                    let score = finite(score * weight);
                    result.entry(member.clone()).and_modify(|s| *s = combine(*s, score)).or_insert(score);
                }
            }
        }
        SetOp::Inter => {
            'members: for (member, score) in &inputs[0] {
                let mut total = finite(score * weights[0]);
                for (members, weight) in inputs.iter().zip(&weights).skip(1) {
                    let Some(score) = members.get(member) else { continue 'members };
                    total = combine(total, finite(score * weight));
                }
                result.insert(member.clone(), total);
            }
        }
        SetOp::Diff => {
            for (member, score) in &inputs[0] {
                if !inputs[1..].iter().any(|other| other.contains_key(member)) {
                    result.insert(member.clone(), *score);
                }
            }
        }
    }
    // A `-0` stays: redis-server answers `ZUNION … WEIGHTS -1` of a 0 score with `-0` (its result
    // is a skiplist, which keeps the sign); a stored result loses it in `set_score`, as
    // redis-server's listpack does.
    let mut members: Vec<Scored> = result.into_iter().collect();
    // A sorted set's order: by score (`-0` equal to `0`), ties by member (the map already sorted
    // by member; the sort is stable).
    members.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    Ok(Combined { members, with_scores, limit })
}

/// Replace `destination` with a sorted set of `members` (deleting it if there are none).
fn store_scored(tx: &mut Tx, destination: &[u8], members: &[Scored]) {
    tx.remove(destination);
    let mut header = Header::new(Kind::ZSet);
    for (member, score) in members {
        set_score(tx, destination, member, None, *score);
        header.len += 1;
    }
    if header.len > 0 {
        tx.save(destination, header);
    }
}

/// `ZUNIONSTORE|ZINTERSTORE|ZDIFFSTORE destination numkeys key [key …] [WEIGHTS w …]
/// [AGGREGATE SUM|MIN|MAX]`: the destination's new size. Every input is read before the
/// destination (maybe one of them) is replaced.
fn zstore(tx: &mut Tx, args: &[Vec<u8>], op: SetOp, name: &str) -> Outcome {
    let combined = combine(&tx.view(), &args[1..], op, SetOut::Store, name)?;
    store_scored(tx, &args[0], &combined.members);
    Ok(Reply::Int(combined.members.len() as i64))
}

/// `ZUNION|ZINTER|ZDIFF numkeys key [key …] [WEIGHTS w …] [AGGREGATE …] [WITHSCORES]`.
fn zcombine(view: &View, args: &[Vec<u8>], op: SetOp, name: &str) -> Outcome {
    let combined = combine(view, args, op, SetOut::Reply, name)?;
    Ok(members_reply(combined.members, combined.with_scores))
}

/// `ZINTERCARD numkeys key [key …] [LIMIT limit]`: the intersection's size, at most `limit`.
fn zintercard(view: &View, args: &[Vec<u8>]) -> Outcome {
    let combined = combine(view, args, SetOp::Inter, SetOut::Card, "zintercard")?;
    let n = combined.members.len() as u64;
    Ok(Reply::Int(if combined.limit > 0 { n.min(combined.limit) } else { n } as i64))
}

/// `ZMPOP numkeys key [key …] MIN|MAX [COUNT count]`: `[key, [[member, score], …]]` (nested in
/// both protocols, as redis-server answers) from the first non-empty sorted set, or a nil array.
fn zmpop(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (keys, max, count) = parse_zmpop(args)?;
    for key in keys {
        if let Some(popped) = pop_many(tx, key, max, count)? {
            let pairs = popped
                .into_iter()
                .map(|(member, score)| Reply::Array(vec![Reply::Bulk(member), Reply::Double(score)]));
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(pairs.collect())]));
        }
    }
    Ok(Reply::NilArray)
}

fn parse_zmpop(args: &[Vec<u8>]) -> Result<(&[Vec<u8>], bool, u64), Reply> {
    super::list::parse_mpop(args, |arg| match () {
        _ if is(arg, "MIN") => Ok(false),
        _ if is(arg, "MAX") => Ok(true),
        _ => Err(Reply::error("ERR syntax error")),
    })
}

/// `BZMPOP timeout numkeys key [key …] MIN|MAX [COUNT count]` run once (see `bzpop`). Redis reads
/// the timeout after the other arguments, so their errors come first.
fn bzmpop(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    parse_zmpop(&args[1..])?;
    super::list::timeout(&args[0])?;
    zmpop(tx, &args[1..])
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`: picked as `SRANDMEMBER` picks ([`pick`], seeded by the
/// key's revision: see [`super::random`]).
fn zrandmember(view: &View, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    let (count, with_scores) = match &args[1..] {
        [] => (None, false),
        [n] => (Some(int(n)?), false),
        [n, w] if is(w, "WITHSCORES") => (Some(int(n)?), true),
        _ => return Err(Reply::error("ERR syntax error")),
    };
    if count.is_some_and(|c| c < -(i64::MAX / 2)) {
        return Err(Reply::error("ERR value is out of range"));
    }
    let Some(_) = zset(view, key)? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    let all = by_score_order(view, key, usize::MAX);
    let picked = pick(&mut Rng::for_read(view, key), &all, count);
    let Some(_) = count else { return Ok(Reply::Bulk(picked[0].0.clone())) };
    let picked: Vec<Scored> = picked.into_iter().cloned().collect();
    Ok(members_reply(picked, with_scores))
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: the whole set in one page, cursor `0`.
fn zscan(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, cursor, options) = (&args[0], &args[1], &args[2..]);
    std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    let mut pattern = None;
    if options.len() % 2 != 0 {
        return Err(Reply::error("ERR syntax error"));
    }
    for pair in options.chunks(2) {
        match () {
            _ if is(&pair[0], "MATCH") => pattern = Some(pair[1].clone()),
            _ if is(&pair[0], "COUNT") => {
                if int(&pair[1])? < 1 {
                    return Err(Reply::error("ERR syntax error"));
                }
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
    }
    let mut found = Vec::new();
    if zset(view, key)?.is_some() {
        view.members(key, &[], &mut |member, value| {
            if pattern.as_deref().is_none_or(|p| glob(p, member)) {
                found.push((member.to_vec(), decode_score(value)));
            }
            true
        });
    }
    // Scores as text in both protocols (redis-server's ZSCAN does not send RESP3 doubles).
    let page = found.into_iter().flat_map(|(m, score)| [Reply::Bulk(m), Reply::bulk(format_double(score))]);
    Ok(Reply::Array(vec![Reply::bulk("0"), Reply::Array(page.collect())]))
}

/// Redis's glob (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some((&c, text_rest)) = text.split_first() else { return false };
            let (negate, mut p) = match rest.split_first() {
                Some((b'^', r)) => (true, r),
                _ => (false, rest),
            };
            let mut matched = false;
            loop {
                match p {
                    [] => break,
                    [b']', r @ ..] => {
                        p = r;
                        break;
                    }
                    [b'\\', x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                    [lo, b'-', hi, r @ ..] if *hi != b']' => {
                        let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                        matched |= (lo..=hi).contains(&c);
                        p = r;
                    }
                    [x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                }
            }
            matched != negate && glob(p, text_rest)
        }
        Some((b'\\', [x, rest @ ..])) => text.first() == Some(x) && glob(rest, &text[1..]),
        Some((x, rest)) => text.first() == Some(x) && glob(rest, &text[1..]),
    }
}

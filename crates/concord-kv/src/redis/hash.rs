//! Hashes (`@hash`): one member record per field, holding the field's value.

use super::args::{int, is, wrong_arity};
use super::longdouble::{self, Ld};
use super::random::Rng;
use super::set::{capped, count_arg, pick, scan_reply, Scan};
use super::{read, write, Kind, Outcome, Reply, Spec, Tx, View};
use crate::cursor;

pub const COMMANDS: &[Spec] = &[
    write("hset", hset),
    write("hmset", hmset),
    write("hsetnx", hsetnx),
    write("hdel", hdel),
    write("hincrby", hincrby),
    read("hget", hget),
    read("hmget", hmget),
    read("hlen", hlen),
    read("hexists", hexists),
    read("hstrlen", hstrlen),
    read("hkeys", hkeys),
    read("hvals", hvals),
    read("hgetall", hgetall),
    write("hincrbyfloat", hincrbyfloat),
    read("hrandfield", hrandfield),
    read("hscan", hscan),
];

/// `HSET key field value [field value …]`: how many fields are new.
fn hset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(set_fields(tx, args, "hset")? as i64))
}

/// `HMSET`: `HSET` answering `OK`.
fn hmset(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    set_fields(tx, args, "hmset")?;
    Ok(Reply::Ok)
}

fn set_fields(tx: &mut Tx, args: &[Vec<u8>], name: &str) -> Result<u64, Reply> {
    let (key, pairs) = args.split_first().expect("arity checked: a key");
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(wrong_arity(name));
    }
    let mut header = tx.collection(key, Kind::Hash)?;
    let mut added = 0;
    for pair in pairs.chunks(2) {
        if tx.view().member(key, &pair[0]).is_none() {
            added += 1;
        }
        tx.put_member(key, &pair[0], pair[1].clone());
    }
    header.len += added;
    tx.save(key, header);
    Ok(added)
}

fn hsetnx(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, field, value] = args else { unreachable!("arity checked") };
    let mut header = tx.collection(key, Kind::Hash)?;
    if tx.view().member(key, field).is_some() {
        return Ok(Reply::Int(0));
    }
    tx.put_member(key, field, value.clone());
    header.len += 1;
    tx.save(key, header);
    Ok(Reply::Int(1))
}

fn hdel(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let (key, fields) = args.split_first().expect("arity checked: a key");
    let Some(header) = tx.view().collection(key, Kind::Hash)? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(tx.remove_members(key, header, fields)))
}

fn hincrby(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, field, delta] = args else { unreachable!("arity checked") };
    let delta = int(delta)?;
    let mut header = tx.collection(key, Kind::Hash)?;
    let current = match tx.view().member(key, field) {
        None => {
            header.len += 1;
            0
        }
        // Redis's integer grammar (no `+1`, `01`, `-0`; found by `concord difftest`).
        Some(value) => {
            crate::store::parse_i64(&value).ok_or_else(|| Reply::error("ERR hash value is not an integer"))?
        }
    };
    let value = current
        .checked_add(delta)
        .ok_or_else(|| Reply::error("ERR increment or decrement would overflow"))?;
    tx.put_member(key, field, value.to_string().into_bytes());
    tx.save(key, header);
    Ok(Reply::Int(value))
}

/// Whether a hash is stored under `key` (WRONGTYPE if something else is).
fn exists(view: &View, key: &[u8]) -> Result<bool, Reply> {
    Ok(view.collection(key, Kind::Hash)?.is_some())
}

fn hget(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, field] = args else { unreachable!("arity checked") };
    exists(view, key)?;
    Ok(Reply::bulk_or_nil(view.member(key, field)))
}

fn hmget(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, fields) = args.split_first().expect("arity checked: a key");
    exists(view, key)?;
    Ok(Reply::Array(fields.iter().map(|f| Reply::bulk_or_nil(view.member(key, f))).collect()))
}

fn hlen(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Int(view.collection(&args[0], Kind::Hash)?.map_or(0, |h| h.len as i64)))
}

fn hexists(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, field] = args else { unreachable!("arity checked") };
    exists(view, key)?;
    Ok(Reply::Int(i64::from(view.member(key, field).is_some())))
}

fn hstrlen(view: &View, args: &[Vec<u8>]) -> Outcome {
    let [key, field] = args else { unreachable!("arity checked") };
    exists(view, key)?;
    Ok(Reply::Int(view.member(key, field).map_or(0, |v| v.len() as i64)))
}

/// A field and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// Every (field, value) of the hash, in field order. (Redis's order is its own; clients must not
/// rely on it, and the differential tests compare these replies as sets.)
fn fields(view: &View, key: &[u8]) -> Result<Vec<Pair>, Reply> {
    let mut out = Vec::new();
    if exists(view, key)? {
        view.members(key, &[], &mut |field, value| {
            out.push((field.to_vec(), value.to_vec()));
            true
        });
    }
    Ok(out)
}

fn hkeys(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Array(fields(view, &args[0])?.into_iter().map(|(f, _)| Reply::Bulk(f)).collect()))
}

fn hvals(view: &View, args: &[Vec<u8>]) -> Outcome {
    Ok(Reply::Array(fields(view, &args[0])?.into_iter().map(|(_, v)| Reply::Bulk(v)).collect()))
}

fn hgetall(view: &View, args: &[Vec<u8>]) -> Outcome {
    let pairs = fields(view, &args[0])?;
    Ok(Reply::Map(pairs.into_iter().map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v))).collect()))
}

/// `HINCRBYFLOAT key field increment`: the new value, computed and printed in C's `long double`
/// as redis-server does (see [`super::longdouble`]), and stored as that text.
fn hincrbyfloat(tx: &mut Tx, args: &[Vec<u8>]) -> Outcome {
    let [key, field, increment] = args else { unreachable!("arity checked") };
    let increment = Ld::parse(increment).ok_or_else(|| Reply::error("ERR value is not a valid float"))?;
    if !increment.is_finite() {
        return Err(Reply::error("ERR value is NaN or Infinity"));
    }
    let mut header = tx.collection(key, Kind::Hash)?;
    let current = match tx.view().member(key, field) {
        None => {
            header.len += 1;
            Ld::ZERO
        }
        Some(value) => Ld::parse(&value).ok_or_else(|| Reply::error("ERR hash value is not a float"))?,
    };
    let text = longdouble::increment(current, increment)
        .ok_or_else(|| Reply::error("ERR increment would produce NaN or Infinity"))?
        .into_bytes();
    tx.put_member(key, field, text.clone());
    tx.save(key, header);
    Ok(Reply::Bulk(text))
}

/// `HRANDFIELD key [count [WITHVALUES]]`: random fields (see `SRANDMEMBER` for the counts and
/// [`super::random`] for the seed). `WITHVALUES` answers [`Reply::Pairs`]: flat in RESP2, nested
/// `[[field, value], …]` in RESP3, as redis-server answers.
fn hrandfield(view: &View, args: &[Vec<u8>]) -> Outcome {
    let key = &args[0];
    let (count, with_values) = match &args[1..] {
        [] => (None, false),
        [count, flag @ ..] => {
            // Redis's order: the count's range, then the flag, then WITHVALUES's tighter range.
            let count = count_arg(count)?;
            let with_values = match flag {
                [] => false,
                [flag] if is(flag, "WITHVALUES") => true,
                _ => return Err(Reply::error("ERR syntax error")),
            };
            // So that twice the count (fields and values) fits a long.
            if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
                return Err(Reply::error("ERR value is out of range"));
            }
            (Some(capped(count)?), with_values)
        }
    };
    let pairs = fields(view, key)?;
    if pairs.is_empty() {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    }
    let picked = pick(&mut Rng::for_read(view, key), &pairs, count);
    Ok(match count {
        None => Reply::Bulk(picked[0].0.clone()),
        Some(_) if with_values => Reply::Pairs(
            picked.into_iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))).collect(),
        ),
        Some(_) => Reply::Array(picked.into_iter().map(|(f, _)| Reply::Bulk(f.clone())).collect()),
    })
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: `[next cursor, [field, value, …]]`, paged
/// as `SSCAN` is (the pattern matches fields).
fn hscan(view: &View, args: &[Vec<u8>]) -> Outcome {
    let (key, cursor) = (&args[0], &args[1]);
    let from = cursor::decode(cursor).ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    if !exists(view, key)? {
        return Ok(scan_reply(None, vec![]));
    }
    let scan = Scan::parse(&args[2..])?;
    let (next, pairs) = scan.page(view, key, from.as_deref().unwrap_or_default());
    Ok(scan_reply(next, pairs.into_iter().flat_map(|(f, v)| [Reply::Bulk(f), Reply::Bulk(v)]).collect()))
}

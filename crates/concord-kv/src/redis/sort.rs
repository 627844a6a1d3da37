//! `SORT` and `SORT_RO` (`@list @set @sortedset`): sort a list, set or sorted set, numerically or
//! (`ALPHA`) by bytes, by the elements themselves or by other keys (`BY pattern`), and answer
//! the elements or other keys' values (`GET pattern`), or store the result as a list (`STORE`).
//!
//! This follows redis-server 7.0's `sortCommandGeneric` step for step: options are parsed first
//! (their errors before `WRONGTYPE`), `LIMIT` is clamped as Redis clamps it, a `BY` pattern
//! without `*` means "do not sort" (the collection's own order: list order, score order – reversed
//! by `DESC` – and, for a set, byte order), ties of a numeric sort are broken by the elements'
//! bytes, and a value that is not a number fails the whole command with Redis's words.
//!
//! A pattern names other keys: the first `*` is replaced by the element, and `key->field`
//! reads a hash field; `#` is the element itself. Those keys are not known before the sorted
//! key is read, so the front door cannot route by them: in the sharded mode `BY` patterns and
//! `GET` are refused before anything runs, with Redis Cluster's errors ([`parse`] with
//! `cluster`); in the strong mode every key is in the one replicated store the interpreter reads.
//! The keys the front door declares are Redis's own (`sortGetKeys`, [`key_positions`]): the
//! sorted key and `STORE`'s destination.
//!
//! Differences: a set's native order (`BY nosort` without `STORE`) is byte order here and hash
//! order in redis-server; an `ALPHA` sort compares bytes (redis-server uses `strcoll`, the same
//! under the C locales it runs with) and keeps ties in input order, which for a set is byte order.

use super::args::{int, is};
use super::{read, write, Kind, Outcome, Reply, Spec, Tx, View};

pub const COMMANDS: &[Spec] = &[
    write("sort", |tx, args| sort(tx, args, false)),
    read("sort_ro", |view, args| {
        let options = parse(args, true, false)?;
        Ok(match run(view, &args[0], &options)? {
            Sorted::Reply(reply) => reply,
            Sorted::Store(_) => unreachable!("SORT_RO has no STORE"),
        })
    }),
];

/// SORT's options, as parsed.
#[derive(Debug, Default)]
pub struct Options {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<Vec<u8>>,
    by: Option<Vec<u8>>,
    /// `BY` without `*`: keep the collection's own order.
    dont_sort: bool,
    get: Vec<Vec<u8>>,
}

/// Parse `key [BY pattern] [LIMIT offset count] [GET pattern …] [ASC|DESC] [ALPHA] [STORE dst]`
/// (`args[0]` is the key). `read_only`: `SORT_RO` (no `STORE`). `cluster`: refuse `BY` patterns
/// and `GET` as Redis Cluster does.
pub fn parse(args: &[Vec<u8>], read_only: bool, cluster: bool) -> Result<Options, Reply> {
    let mut options = Options::default();
    let mut at = 1;
    while let Some(arg) = args.get(at) {
        let left = args.len() - at - 1;
        match () {
            _ if is(arg, "ASC") => options.desc = false,
            _ if is(arg, "DESC") => options.desc = true,
            _ if is(arg, "ALPHA") => options.alpha = true,
            _ if is(arg, "LIMIT") && left >= 2 => {
                options.limit = Some((int(&args[at + 1])?, int(&args[at + 2])?));
                at += 2;
            }
            _ if !read_only && is(arg, "STORE") && left >= 1 => {
                options.store = Some(args[at + 1].clone());
                at += 1;
            }
            _ if is(arg, "BY") && left >= 1 => {
                let pattern = &args[at + 1];
                options.dont_sort = !pattern.contains(&b'*');
                if !options.dont_sort && cluster {
                    return Err(Reply::error("ERR BY option of SORT denied in Cluster mode."));
                }
                options.by = Some(pattern.clone());
                at += 1;
            }
            _ if is(arg, "GET") && left >= 1 => {
                if cluster {
                    return Err(Reply::error("ERR GET option of SORT denied in Cluster mode."));
                }
                options.get.push(args[at + 1].clone());
                at += 1;
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
        at += 1;
    }
    Ok(options)
}

/// The positions in `argv` (the command name at 0) of the keys Redis declares for `SORT` /
/// `SORT_RO` (`sortGetKeys`): the sorted key, and the last `STORE`'s destination.
pub fn key_positions<A: AsRef<[u8]>>(argv: &[A]) -> Vec<usize> {
    let mut keys = vec![1];
    if !is(argv[0].as_ref(), "SORT") {
        return keys;
    }
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let arg = argv[i].as_ref();
        match () {
            _ if is(arg, "LIMIT") => i += 2,
            _ if is(arg, "GET") || is(arg, "BY") => i += 1,
            _ if is(arg, "STORE") && i + 1 < argv.len() => store = Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

enum Sorted {
    Reply(Reply),
    Store(Vec<Vec<u8>>),
}

fn sort(tx: &mut Tx, args: &[Vec<u8>], read_only: bool) -> Outcome {
    let options = parse(args, read_only, false)?;
    match run(&tx.view(), &args[0], &options)? {
        Sorted::Reply(reply) => Ok(reply),
        Sorted::Store(values) => {
            let n = values.len() as i64;
            let destination = options.store.as_deref().expect("STORE was given");
            super::list::store_list(tx, destination, values);
            Ok(Reply::Int(n))
        }
    }
}

/// One element being sorted and what it sorts by.
struct Item {
    element: Vec<u8>,
    score: f64,
    /// `ALPHA` with `BY`: the looked-up value (`None`: missing, sorts first).
    by: Option<Vec<u8>>,
}

fn run(view: &View, key: &[u8], options: &Options) -> Result<Sorted, Reply> {
    let kind = view.kind(key);
    if !matches!(kind, None | Some(Kind::List | Kind::Set | Kind::ZSet)) {
        return Err(Reply::wrong_type());
    }
    let (mut dont_sort, mut alpha, mut by) = (options.dont_sort, options.alpha, options.by.as_deref());
    // Redis sorts a set anyway when storing, so the stored list does not depend on hash order.
    if dont_sort && kind == Some(Kind::Set) && options.store.is_some() {
        (dont_sort, alpha, by) = (false, true, None);
    }
    // The elements in the collection's own order (sets: byte order).
    let mut elements = Vec::new();
    match kind {
        Some(Kind::ZSet) if dont_sort => {
            elements = super::zset::by_score(view, key).into_iter().map(|(member, _)| member).collect();
        }
        Some(_) => view.members(key, &[], &mut |sub, value| {
            elements.push(if kind == Some(Kind::List) { value.to_vec() } else { sub.to_vec() });
            true
        }),
        None => {}
    }
    let len = elements.len() as i64;
    let (limit_start, limit_count) = options.limit.unwrap_or((0, -1));
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 { len - 1 } else { start.saturating_add(limit_count) - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut items: Vec<Item> =
        elements.into_iter().map(|element| Item { element, score: 0.0, by: None }).collect();
    if dont_sort {
        // Lists and sorted sets walk from the far end for DESC; a set keeps its order.
        if options.desc && kind != Some(Kind::Set) {
            items.reverse();
        }
    } else {
        let mut not_a_number = false;
        for item in &mut items {
            let value = match by {
                Some(pattern) => match lookup(view, pattern, &item.element) {
                    Some(value) => value,
                    None => continue,
                },
                None => item.element.clone(),
            };
            if alpha {
                if by.is_some() {
                    item.by = Some(value);
                }
            } else {
                match strtod(&value) {
                    Some(score) => item.score = score,
                    None => not_a_number = true,
                }
            }
        }
        if not_a_number {
            return Err(Reply::error("ERR One or more scores can't be converted into double"));
        }
        items.sort_by(|a, b| {
            let order = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.element.cmp(&b.element))
            } else if by.is_some() {
                a.by.cmp(&b.by)
            } else {
                a.element.cmp(&b.element)
            };
            if options.desc {
                order.reverse()
            } else {
                order
            }
        });
    }
    let chosen: &[Item] = if end >= start { &items[start as usize..=end as usize] } else { &[] };
    if options.store.is_some() {
        let mut values = Vec::new();
        for item in chosen {
            if options.get.is_empty() {
                values.push(item.element.clone());
            }
            for pattern in &options.get {
                values.push(lookup(view, pattern, &item.element).unwrap_or_default());
            }
        }
        return Ok(Sorted::Store(values));
    }
    let mut replies = Vec::new();
    for item in chosen {
        if options.get.is_empty() {
            replies.push(Reply::Bulk(item.element.clone()));
        }
        for pattern in &options.get {
            replies.push(Reply::bulk_or_nil(lookup(view, pattern, &item.element)));
        }
    }
    Ok(Sorted::Reply(Reply::Array(replies)))
}

/// `lookupKeyByPattern`: `#` is the element; otherwise the first `*` becomes the element, and
/// `key->field` (the `->` after the `*`, with a field after it) reads a hash field. `None` when
/// the pattern has no `*`, the key is missing or of another kind, or the field is missing.
fn lookup(view: &View, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after.windows(2).position(|w| w == b"->").filter(|&at| at + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    match (view.kind(&key)?, field) {
        (Kind::String, None) => view.entry(&key).map(|e| e.value),
        (Kind::Hash, Some(field)) => view.member(&key, field),
        _ => None,
    }
}

/// A value as SORT reads a number (C's `strtod`, which must consume it all): leading spaces,
/// `inf`, hexadecimal, and `""` as 0 are fine; NaN, trailing bytes and out-of-range values
/// (`1e400`, `1e-400`: `ERANGE`) are not. C stops at a NUL byte (`"\0x"` is 0).
pub(crate) fn strtod(value: &[u8]) -> Option<f64> {
    // C reads the string up to its first NUL byte.
    let value = value.split(|&b| b == 0).next().unwrap_or_default();
    if value.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(value).ok()?;
    let text = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits = text.trim_start_matches(['+', '-']);
    let number = if digits.starts_with("0x") || digits.starts_with("0X") {
        super::zset::float(text.as_bytes())?
    } else {
        text.parse::<f64>().ok()?
    };
    let lower = text.to_ascii_lowercase();
    if number.is_nan() || (number.is_infinite() && !lower.contains("inf")) {
        return None;
    }
    // Underflow: a non-zero mantissa that came out zero or subnormal.
    let mantissa = lower.split('e').next().unwrap_or("");
    if (number == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))) || number.is_subnormal() {
        return None;
    }
    Some(number)
}

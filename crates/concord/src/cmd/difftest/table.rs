//! The command table: one row per command, saying how to generate its arguments and how to judge
//! its replies.
//!
//! Arguments come from small spaces on purpose, so that commands collide: eight keys (`k0`–`k7`)
//! shared by every type (a hash command on a key a list command made gets `WRONGTYPE`), five
//! fields and members, scores and integers near zero plus the edges (`i64::MAX`, `-inf`, `1.5`,
//! `abc`, the empty string), indexes that run off both ends of a list. Expiry times are either
//! long (minutes to days, so no key expires while a run compares) or already past (the key is
//! deleted at once): a deadline that fell between the two servers' commands would make them
//! disagree for reasons of timing, not of behaviour.
//!
//! To cover a new command, add a row. The harness asks the Concord under test `COMMAND INFO` for
//! every row's name at start and skips those it does not know (and prints them), so rows for the
//! data types may be written before the types are implemented.

use super::compare::Rule;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The key space every generated command draws from.
pub const KEYS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];

/// Script bodies for `EVAL` (each reads only replies whose order both servers agree on).
const SCRIPTS: &[&str] = &[
    "return redis.call('incr', KEYS[1])",
    "return redis.pcall('incrby', KEYS[1], ARGV[1])",
    "return redis.pcall('set', KEYS[1], ARGV[1])",
    "return redis.pcall('hset', KEYS[1], 'f', ARGV[1])",
    "return redis.pcall('rpush', KEYS[1], ARGV[1], 'x')",
    "return redis.pcall('zadd', KEYS[1], 1, ARGV[1])",
    "return redis.pcall('zincrby', KEYS[1], ARGV[1], 'm')",
    "return redis.pcall('lrange', KEYS[1], 0, -1)",
    "return {redis.pcall('type', KEYS[1]), redis.pcall('exists', KEYS[1]), 1.5, false, 'x'}",
    "redis.setresp(3); return redis.pcall('zrange', KEYS[1], 0, -1, 'withscores')",
    "redis.setresp(3); return redis.pcall('zscore', KEYS[1], 'm')",
    "redis.setresp(3); return {true, false, redis.pcall('get', KEYS[1])}",
    "return redis.pcall('hget', KEYS[1], 'f')",
    "return redis.error_reply('boom')",
    "return redis.status_reply('FINE')",
    "error('oops')",
    "return redis.call('nosuchcommand')",
    "return tostring(tonumber(ARGV[1]))",
    "local n = 0 for i = 1, 100 do n = n + i end return n",
];

/// Script bodies for `EVAL_RO`: reads, and a write it must refuse.
const READ_SCRIPTS: &[&str] = &[
    "return redis.pcall('get', KEYS[1])",
    "return redis.pcall('lrange', KEYS[1], 0, -1)",
    "return redis.pcall('zrange', KEYS[1], 0, -1, 'withscores')",
    "return {redis.pcall('type', KEYS[1]), redis.pcall('ttl', KEYS[1])}",
    "return redis.pcall('set', KEYS[1], 'v')",
];

/// String values: small integers and text, the edges of i64 and beyond, floats, spaces, binary.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "7",
    "42",
    "a",
    "abc",
    "hello world",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "3.5",
    "-0.5",
    "1e3",
    " 1",
    "01",
    "+1",
    "inf",
    "m1",
    "\x00\u{ff}\r\n",
];

/// Integer arguments (INCRBY, LREM's count, …): mostly small, sometimes an edge or not a number.
const INT_EDGES: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1.5",
    "abc",
    "",
    " 1",
];
const FIELDS: &[&str] = &["f0", "f1", "f2", "f3", "1"];
const MEMBERS: &[&str] = &["m0", "m1", "m2", "m3", "m4", "1", "2", "10"];
const SCORES: &[&str] = &[
    "-2", "-1", "0", "1", "1.5", "2", "3", "10", "+inf", "-inf", "inf", "1e2", "-0", "0.1", "abc", "nan", "",
];
/// Including sums whose last digits only an 80-bit `long double` gets right (`10.6` + `5.0e3`).
const FLOATS: &[&str] = &[
    "1",
    "0.1",
    "0.2",
    "-1.5",
    "3.0e3",
    "5.0e3",
    "-2.0e2",
    "1.23456789012345678",
    "1e17",
    "-0",
    "5.0e-2",
    "10",
    "1e308",
    "inf",
    "abc",
    "",
];
const SCORE_BOUNDS: &[&str] =
    &["-inf", "+inf", "0", "1", "(1", "2", "(2", "1.5", "10", "-1", "abc", "(", "(inf"];
const LEX_BOUNDS: &[&str] = &["-", "+", "[m1", "(m1", "[m3", "(m4", "[1", "[", "m1", "(a", "[z"];
const PATTERNS: &[&str] = &["*", "k*", "k[0-3]", "k?", "*1", "m*", "f*", "[^k]*", "\\k*", "k[", "", "*[12]"];

/// The seeded source of every choice: a run is a function of its seed (and of the set of commands
/// the server knows).
pub struct Gen {
    rng: ChaCha8Rng,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n)
    }

    pub fn pick(&mut self, from: &[&str]) -> Vec<u8> {
        from[self.below(from.len())].as_bytes().to_vec()
    }

    /// `word` with probability `p`.
    pub fn maybe(&mut self, p: f64, words: &[&str]) -> Option<Vec<u8>> {
        self.chance(p).then(|| self.pick(words))
    }

    fn number(&mut self, low: i64, high: i64) -> Vec<u8> {
        self.rng.gen_range(low..=high).to_string().into_bytes()
    }

    pub fn key(&mut self) -> Vec<u8> {
        self.pick(&KEYS)
    }

    pub fn keys(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.key()).collect()
    }

    pub fn value(&mut self) -> Vec<u8> {
        match self.below(20) {
            0..=1 => self.number(-100, 100),
            2 => "x".repeat(self.rng.gen_range(50..300)).into_bytes(),
            _ => self.pick(VALUES),
        }
    }

    pub fn values(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.value()).collect()
    }

    pub fn int(&mut self) -> Vec<u8> {
        if self.chance(0.15) {
            self.pick(INT_EDGES)
        } else {
            self.number(-3, 10)
        }
    }

    /// A list index or range bound: mostly within a few elements of either end.
    pub fn index(&mut self) -> Vec<u8> {
        match self.below(20) {
            0 => self.pick(&["100", "-100", "9223372036854775807", "-9223372036854775808", "x"]),
            _ => self.number(-6, 6),
        }
    }

    /// A COUNT argument: small, sometimes zero, negative or not a number.
    pub fn count(&mut self) -> Vec<u8> {
        match self.below(20) {
            0 => self.pick(&["-1", "-3", "abc", "1000000", ""]),
            1 => b"0".to_vec(),
            _ => self.number(1, 5),
        }
    }

    pub fn field(&mut self) -> Vec<u8> {
        self.pick(FIELDS)
    }

    pub fn fields(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.field()).collect()
    }

    /// `field value` pairs.
    pub fn field_values(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).flat_map(|_| [self.field(), self.value()]).collect()
    }

    pub fn member(&mut self) -> Vec<u8> {
        self.pick(MEMBERS)
    }

    pub fn members(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.member()).collect()
    }

    pub fn score(&mut self) -> Vec<u8> {
        self.pick(SCORES)
    }

    /// `score member` pairs.
    pub fn score_members(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).flat_map(|_| [self.score(), self.member()]).collect()
    }

    pub fn float(&mut self) -> Vec<u8> {
        self.pick(FLOATS)
    }

    pub fn score_bound(&mut self) -> Vec<u8> {
        self.pick(SCORE_BOUNDS)
    }

    pub fn lex_bound(&mut self) -> Vec<u8> {
        self.pick(LEX_BOUNDS)
    }

    pub fn pattern(&mut self) -> Vec<u8> {
        self.pick(PATTERNS)
    }

    /// A relative expiry in seconds: long (no key expires during a run), or ≤ 0 (delete now), or
    /// not a number / overflowing.
    pub fn secs(&mut self) -> Vec<u8> {
        match self.below(20) {
            0..=1 => self.pick(&["0", "-1", "-100"]),
            2 => self.pick(&["abc", "9223372036854775807", "1.5"]),
            _ => self.number(1000, 10_000_000),
        }
    }

    /// A relative expiry in milliseconds (as [`Gen::secs`]).
    pub fn millis(&mut self) -> Vec<u8> {
        match self.below(20) {
            0..=1 => self.pick(&["0", "-1", "-5000"]),
            2 => self.pick(&["abc", "9223372036854775807", ""]),
            _ => self.number(1_000_000, 10_000_000_000),
        }
    }

    /// A Unix time in seconds: far in the future, or in the past (1970), or not a number.
    pub fn unix_secs(&mut self) -> Vec<u8> {
        match self.below(20) {
            0..=5 => self.number(1, 1_000_000),
            6 => self.pick(&["abc", "-1", "0"]),
            _ => self.number(4_000_000_000, 4_100_000_000),
        }
    }

    pub fn unix_millis(&mut self) -> Vec<u8> {
        match self.below(20) {
            0..=5 => self.number(1, 1_000_000_000),
            6 => self.pick(&["abc", "-1", "0"]),
            _ => self.number(4_000_000_000_000, 4_100_000_000_000),
        }
    }

    /// A blocking command's timeout: 10 ms (never 0, which blocks for ever), or a bad one.
    pub fn timeout(&mut self) -> Vec<u8> {
        if self.chance(0.05) {
            self.pick(&["-1", "abc"])
        } else {
            b"0.01".to_vec()
        }
    }

    /// `numkeys key …` of LMPOP, ZUNION and the like: the count usually matches the keys.
    pub fn numkeys(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let keys = self.keys(min, max);
        let n = match self.below(20) {
            0 => "0".to_string(),
            1 => (keys.len() + 1).to_string(),
            2 => "-1".to_string(),
            _ => keys.len().to_string(),
        };
        std::iter::once(n.into_bytes()).chain(keys).collect()
    }

    /// SET's and GETEX's expiry option, if any.
    fn set_expiry(&mut self, keep: &str) -> Vec<Vec<u8>> {
        match self.below(12) {
            0 => vec![b"EX".to_vec(), self.secs()],
            1 => vec![b"PX".to_vec(), self.millis()],
            2 => vec![b"EXAT".to_vec(), self.unix_secs()],
            3 => vec![b"PXAT".to_vec(), self.unix_millis()],
            4 => vec![keep.as_bytes().to_vec()],
            _ => vec![],
        }
    }

    /// A ZRANGE-family `LIMIT offset count`, sometimes.
    fn limit(&mut self) -> Vec<Vec<u8>> {
        if self.chance(0.3) {
            vec![b"LIMIT".to_vec(), self.index(), self.index()]
        } else {
            vec![]
        }
    }

    /// Redis's EXPIRE options: usually none, sometimes one, rarely an invalid pair.
    fn expire_options(&mut self) -> Vec<Vec<u8>> {
        match self.below(10) {
            0 => vec![self.pick(&["NX", "XX", "GT", "LT"])],
            1 => vec![self.pick(&["XX", "NX"]), self.pick(&["GT", "LT"])],
            2 => vec![self.pick(&["FOO"])],
            _ => vec![],
        }
    }
}

/// Anything that can be appended to a command's arguments (see [`argv!`]).
pub trait Args {
    fn push_to(self, out: &mut Vec<Vec<u8>>);
}

impl Args for &str {
    fn push_to(self, out: &mut Vec<Vec<u8>>) {
        out.push(self.as_bytes().to_vec());
    }
}

impl Args for Vec<u8> {
    fn push_to(self, out: &mut Vec<Vec<u8>>) {
        out.push(self);
    }
}

impl Args for Vec<Vec<u8>> {
    fn push_to(self, out: &mut Vec<Vec<u8>>) {
        out.extend(self);
    }
}

impl<T: Args> Args for Option<T> {
    fn push_to(self, out: &mut Vec<Vec<u8>>) {
        if let Some(x) = self {
            x.push_to(out);
        }
    }
}

/// A command's arguments from words, generated arguments, lists and optional parts, in order.
macro_rules! argv {
    ($($part:expr),* $(,)?) => {{
        let mut out: Vec<Vec<u8>> = Vec::new();
        $( Args::push_to($part, &mut out); )*
        out
    }};
}

/// What a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One command.
    Plain,
    /// `MULTI`, a few queued commands drawn from the plain rows, then `EXEC` (or `DISCARD`).
    Transaction,
}

/// One command of the table.
pub struct Row {
    /// The command's name, lower case, as `COMMAND INFO` knows it.
    pub name: &'static str,
    /// How replies are compared (see `compare.rs`).
    pub rule: Rule,
    /// The reply is random *and the command changes the data* (SPOP): after it the two servers may
    /// hold different data, so the keys it names are deleted on both.
    pub resync: bool,
    /// Relative frequency (most rows 10).
    pub weight: u32,
    pub kind: Kind,
    pub gen: fn(&mut Gen) -> Vec<Vec<u8>>,
}

fn row(name: &'static str, rule: Rule, gen: fn(&mut Gen) -> Vec<Vec<u8>>) -> Row {
    Row { name, rule, resync: false, weight: 10, kind: Kind::Plain, gen }
}

fn scan(name: &'static str, pairs: bool, gen: fn(&mut Gen) -> Vec<Vec<u8>>) -> Row {
    let cursor_at = if name == "scan" { 1 } else { 2 };
    row(name, Rule::ScanAll { cursor_at, pairs }, gen)
}

/// Every command the harness knows how to generate.
pub fn rows() -> Vec<Row> {
    use Rule::{AtMost, Exact, ExistingKey, Near, Shape, Unordered, UnorderedPairs};
    let mut rows = vec![
        // ---- connection and server ----
        row("ping", Exact, |g| argv!["PING", g.maybe(0.5, &["hello", "", "PONG"])]),
        row("echo", Exact, |g| argv!["ECHO", g.value()]),
        // redis-server still counts keys past their deadline that it has not reclaimed yet.
        row("dbsize", AtMost, |_| argv!["DBSIZE"]),
        Row { weight: 1, ..row("flushdb", Exact, |g| argv!["FLUSHDB", g.maybe(0.3, &["SYNC", "ASYNC"])]) },
        Row { weight: 1, ..row("flushall", Exact, |g| argv!["FLUSHALL", g.maybe(0.3, &["SYNC", "ASYNC"])]) },
        // ---- strings ----
        row("get", Exact, |g| argv!["GET", g.key()]),
        row("set", Exact, |g| {
            let condition = g.maybe(0.3, &["NX", "XX"]);
            let get = g.maybe(0.2, &["GET"]);
            let expiry = g.set_expiry("KEEPTTL");
            argv!["SET", g.key(), g.value(), condition, get, expiry]
        }),
        row("setnx", Exact, |g| argv!["SETNX", g.key(), g.value()]),
        row("setex", Exact, |g| argv!["SETEX", g.key(), g.secs(), g.value()]),
        row("psetex", Exact, |g| argv!["PSETEX", g.key(), g.millis(), g.value()]),
        row("getset", Exact, |g| argv!["GETSET", g.key(), g.value()]),
        row("mget", Exact, |g| argv!["MGET", g.keys(1, 4)]),
        row("mset", Exact, |g| {
            let n = 1 + g.below(3);
            argv!["MSET", (0..n).flat_map(|_| [g.key(), g.value()]).collect::<Vec<_>>()]
        }),
        row("msetnx", Exact, |g| {
            let n = 1 + g.below(3);
            argv!["MSETNX", (0..n).flat_map(|_| [g.key(), g.value()]).collect::<Vec<_>>()]
        }),
        row("incr", Exact, |g| argv!["INCR", g.key()]),
        row("decr", Exact, |g| argv!["DECR", g.key()]),
        row("incrby", Exact, |g| argv!["INCRBY", g.key(), g.int()]),
        row("decrby", Exact, |g| argv!["DECRBY", g.key(), g.int()]),
        row("incrbyfloat", Exact, |g| argv!["INCRBYFLOAT", g.key(), g.float()]),
        row("append", Exact, |g| argv!["APPEND", g.key(), g.value()]),
        row("strlen", Exact, |g| argv!["STRLEN", g.key()]),
        row("getrange", Exact, |g| argv!["GETRANGE", g.key(), g.index(), g.index()]),
        row("substr", Exact, |g| argv!["SUBSTR", g.key(), g.index(), g.index()]),
        row("setrange", Exact, |g| {
            let offset = if g.chance(0.1) { g.pick(&["-1", "536870912", "abc"]) } else { g.number(0, 12) };
            argv!["SETRANGE", g.key(), offset, g.value()]
        }),
        row("getdel", Exact, |g| argv!["GETDEL", g.key()]),
        row("getex", Exact, |g| {
            let expiry = g.set_expiry("PERSIST");
            argv!["GETEX", g.key(), expiry]
        }),
        row("lcs", Exact, |g| {
            let min = g.chance(0.3).then(|| argv!["MINMATCHLEN", g.pick(&["0", "1", "2", "-1", "x"])]);
            let options =
                argv![g.maybe(0.3, &["LEN"]), g.maybe(0.4, &["IDX"]), min, g.maybe(0.3, &["WITHMATCHLEN"])];
            argv!["LCS", g.key(), g.key(), options]
        }),
        // ---- keyspace ----
        row("del", Exact, |g| argv!["DEL", g.keys(1, 3)]),
        row("unlink", Exact, |g| argv!["UNLINK", g.keys(1, 3)]),
        row("exists", Exact, |g| argv!["EXISTS", g.keys(1, 4)]),
        row("touch", Exact, |g| argv!["TOUCH", g.keys(1, 3)]),
        row("type", Exact, |g| argv!["TYPE", g.key()]),
        row("rename", Exact, |g| argv!["RENAME", g.key(), g.key()]),
        row("renamenx", Exact, |g| argv!["RENAMENX", g.key(), g.key()]),
        row("copy", Exact, |g| argv!["COPY", g.key(), g.key(), g.maybe(0.4, &["REPLACE"])]),
        row("randomkey", ExistingKey, |_| argv!["RANDOMKEY"]),
        // Scripts: Lua's conversions both ways, errors with the script's SHA and line, RESP3
        // after redis.setresp(3) – over the same tiny key space, so calls meet every type.
        row("eval", Exact, |g| argv!["EVAL", g.pick(SCRIPTS), "1", g.key(), g.value()]),
        row("eval_ro", Exact, |g| argv!["EVAL_RO", g.pick(READ_SCRIPTS), "1", g.key()]),
        row("keys", Unordered, |g| argv!["KEYS", g.pattern()]),
        scan("scan", false, |g| {
            let pattern = g.chance(0.4).then(|| vec![b"MATCH".to_vec(), g.pattern()]);
            let count = g.chance(0.4).then(|| vec![b"COUNT".to_vec(), g.count()]);
            let kind = g
                .chance(0.2)
                .then(|| vec![b"TYPE".to_vec(), g.pick(&["string", "hash", "list", "set", "zset", "nope"])]);
            argv!["SCAN", "0", pattern, count, kind]
        }),
        row("expire", Exact, |g| argv!["EXPIRE", g.key(), g.secs(), g.expire_options()]),
        row("pexpire", Exact, |g| argv!["PEXPIRE", g.key(), g.millis(), g.expire_options()]),
        row("expireat", Exact, |g| argv!["EXPIREAT", g.key(), g.unix_secs(), g.expire_options()]),
        row("pexpireat", Exact, |g| argv!["PEXPIREAT", g.key(), g.unix_millis(), g.expire_options()]),
        // The servers read their clocks a few milliseconds apart, and TTL rounds to seconds.
        row("ttl", Near(1), |g| argv!["TTL", g.key()]),
        row("pttl", Near(1000), |g| argv!["PTTL", g.key()]),
        row("expiretime", Near(1), |g| argv!["EXPIRETIME", g.key()]),
        row("pexpiretime", Near(1000), |g| argv!["PEXPIRETIME", g.key()]),
        row("persist", Exact, |g| argv!["PERSIST", g.key()]),
        // The encoding's name is Redis's in-memory representation (see compare::KNOWN).
        Row { weight: 2, ..row("object", Exact, |g| argv!["OBJECT", "ENCODING", g.key()]) },
        // ---- hashes ----
        row("hset", Exact, |g| argv!["HSET", g.key(), g.field_values(1, 3)]),
        row("hmset", Exact, |g| argv!["HMSET", g.key(), g.field_values(1, 3)]),
        row("hsetnx", Exact, |g| argv!["HSETNX", g.key(), g.field(), g.value()]),
        row("hget", Exact, |g| argv!["HGET", g.key(), g.field()]),
        row("hmget", Exact, |g| argv!["HMGET", g.key(), g.fields(1, 3)]),
        row("hdel", Exact, |g| argv!["HDEL", g.key(), g.fields(1, 3)]),
        row("hexists", Exact, |g| argv!["HEXISTS", g.key(), g.field()]),
        row("hlen", Exact, |g| argv!["HLEN", g.key()]),
        row("hstrlen", Exact, |g| argv!["HSTRLEN", g.key(), g.field()]),
        row("hkeys", Unordered, |g| argv!["HKEYS", g.key()]),
        row("hvals", Unordered, |g| argv!["HVALS", g.key()]),
        row("hgetall", UnorderedPairs, |g| argv!["HGETALL", g.key()]),
        row("hincrby", Exact, |g| argv!["HINCRBY", g.key(), g.field(), g.int()]),
        row("hincrbyfloat", Exact, |g| argv!["HINCRBYFLOAT", g.key(), g.field(), g.float()]),
        row("hrandfield", Shape, |g| {
            let count = g.chance(0.6).then(|| argv![g.count(), g.maybe(0.4, &["WITHVALUES"])]);
            argv!["HRANDFIELD", g.key(), count]
        }),
        scan("hscan", true, |g| {
            let pattern = g.chance(0.3).then(|| argv!["MATCH", g.pattern()]);
            argv!["HSCAN", g.key(), "0", pattern]
        }),
        // ---- lists ----
        row("lpush", Exact, |g| argv!["LPUSH", g.key(), g.values(1, 3)]),
        row("rpush", Exact, |g| argv!["RPUSH", g.key(), g.values(1, 3)]),
        row("lpushx", Exact, |g| argv!["LPUSHX", g.key(), g.values(1, 2)]),
        row("rpushx", Exact, |g| argv!["RPUSHX", g.key(), g.values(1, 2)]),
        row("lpop", Exact, |g| argv!["LPOP", g.key(), g.chance(0.4).then(|| g.count())]),
        row("rpop", Exact, |g| argv!["RPOP", g.key(), g.chance(0.4).then(|| g.count())]),
        row("llen", Exact, |g| argv!["LLEN", g.key()]),
        row("lrange", Exact, |g| argv!["LRANGE", g.key(), g.index(), g.index()]),
        row("lindex", Exact, |g| argv!["LINDEX", g.key(), g.index()]),
        row("lset", Exact, |g| argv!["LSET", g.key(), g.index(), g.value()]),
        row("linsert", Exact, |g| {
            argv!["LINSERT", g.key(), g.pick(&["BEFORE", "AFTER", "MIDDLE"]), g.value(), g.value()]
        }),
        row("lrem", Exact, |g| argv!["LREM", g.key(), g.int(), g.value()]),
        row("ltrim", Exact, |g| argv!["LTRIM", g.key(), g.index(), g.index()]),
        row("lpos", Exact, |g| {
            let rank = g.chance(0.3).then(|| argv!["RANK", g.index()]);
            let count = g.chance(0.3).then(|| argv!["COUNT", g.count()]);
            let maxlen = g.chance(0.2).then(|| argv!["MAXLEN", g.count()]);
            argv!["LPOS", g.key(), g.value(), rank, count, maxlen]
        }),
        row("lmove", Exact, |g| {
            argv!["LMOVE", g.key(), g.key(), g.pick(&["LEFT", "RIGHT"]), g.pick(&["LEFT", "RIGHT", "UP"])]
        }),
        row("rpoplpush", Exact, |g| argv!["RPOPLPUSH", g.key(), g.key()]),
        row("lmpop", Exact, |g| {
            let count = g.chance(0.4).then(|| argv!["COUNT", g.count()]);
            argv!["LMPOP", g.numkeys(1, 3), g.pick(&["LEFT", "RIGHT"]), count]
        }),
        row("blpop", Exact, |g| argv!["BLPOP", g.keys(1, 3), g.timeout()]),
        row("brpop", Exact, |g| argv!["BRPOP", g.keys(1, 3), g.timeout()]),
        row("blmove", Exact, |g| {
            argv![
                "BLMOVE",
                g.key(),
                g.key(),
                g.pick(&["LEFT", "RIGHT"]),
                g.pick(&["LEFT", "RIGHT"]),
                g.timeout()
            ]
        }),
        row("brpoplpush", Exact, |g| argv!["BRPOPLPUSH", g.key(), g.key(), g.timeout()]),
        row("blmpop", Exact, |g| {
            let count = g.chance(0.4).then(|| argv!["COUNT", g.count()]);
            argv!["BLMPOP", g.timeout(), g.numkeys(1, 3), g.pick(&["LEFT", "RIGHT"]), count]
        }),
        // ---- sets ----
        row("sadd", Exact, |g| argv!["SADD", g.key(), g.members(1, 3)]),
        row("srem", Exact, |g| argv!["SREM", g.key(), g.members(1, 3)]),
        row("smembers", Unordered, |g| argv!["SMEMBERS", g.key()]),
        row("sismember", Exact, |g| argv!["SISMEMBER", g.key(), g.member()]),
        row("smismember", Exact, |g| argv!["SMISMEMBER", g.key(), g.members(1, 3)]),
        row("scard", Exact, |g| argv!["SCARD", g.key()]),
        Row {
            resync: true,
            ..row("spop", Shape, |g| argv!["SPOP", g.key(), g.chance(0.5).then(|| g.count())])
        },
        row("srandmember", Shape, |g| argv!["SRANDMEMBER", g.key(), g.chance(0.6).then(|| g.count())]),
        row("smove", Exact, |g| argv!["SMOVE", g.key(), g.key(), g.member()]),
        row("sinter", Unordered, |g| argv!["SINTER", g.keys(1, 3)]),
        row("sunion", Unordered, |g| argv!["SUNION", g.keys(1, 3)]),
        row("sdiff", Unordered, |g| argv!["SDIFF", g.keys(1, 3)]),
        row("sinterstore", Exact, |g| argv!["SINTERSTORE", g.key(), g.keys(1, 3)]),
        row("sunionstore", Exact, |g| argv!["SUNIONSTORE", g.key(), g.keys(1, 3)]),
        row("sdiffstore", Exact, |g| argv!["SDIFFSTORE", g.key(), g.keys(1, 3)]),
        row("sintercard", Exact, |g| {
            let limit = g.chance(0.3).then(|| argv!["LIMIT", g.count()]);
            argv!["SINTERCARD", g.numkeys(1, 3), limit]
        }),
        scan("sscan", false, |g| {
            let pattern = g.chance(0.3).then(|| argv!["MATCH", g.pattern()]);
            argv!["SSCAN", g.key(), "0", pattern]
        }),
        // ---- sorted sets ----
        row("zadd", Exact, |g| {
            let condition = g.maybe(0.2, &["NX", "XX"]);
            let compare = g.maybe(0.2, &["GT", "LT"]);
            let ch = g.maybe(0.2, &["CH"]);
            let incr = g.maybe(0.1, &["INCR"]);
            argv!["ZADD", g.key(), condition, compare, ch, incr, g.score_members(1, 3)]
        }),
        row("zincrby", Exact, |g| argv!["ZINCRBY", g.key(), g.score(), g.member()]),
        row("zrem", Exact, |g| argv!["ZREM", g.key(), g.members(1, 3)]),
        row("zscore", Exact, |g| argv!["ZSCORE", g.key(), g.member()]),
        row("zmscore", Exact, |g| argv!["ZMSCORE", g.key(), g.members(1, 3)]),
        row("zcard", Exact, |g| argv!["ZCARD", g.key()]),
        row("zcount", Exact, |g| argv!["ZCOUNT", g.key(), g.score_bound(), g.score_bound()]),
        row("zlexcount", Exact, |g| argv!["ZLEXCOUNT", g.key(), g.lex_bound(), g.lex_bound()]),
        row("zrank", Exact, |g| argv!["ZRANK", g.key(), g.member()]),
        row("zrevrank", Exact, |g| argv!["ZREVRANK", g.key(), g.member()]),
        row("zrange", Exact, |g| {
            let (by, bounds) = match g.below(3) {
                0 => (None, vec![g.index(), g.index()]),
                1 => (Some("BYSCORE"), vec![g.score_bound(), g.score_bound()]),
                _ => (Some("BYLEX"), vec![g.lex_bound(), g.lex_bound()]),
            };
            let rev = g.maybe(0.3, &["REV"]);
            let limit = g.limit();
            let scores = g.maybe(0.4, &["WITHSCORES"]);
            argv!["ZRANGE", g.key(), bounds, by, rev, limit, scores]
        }),
        row("zrevrange", Exact, |g| {
            argv!["ZREVRANGE", g.key(), g.index(), g.index(), g.maybe(0.4, &["WITHSCORES"])]
        }),
        row("zrangebyscore", Exact, |g| {
            let scores = g.maybe(0.4, &["WITHSCORES"]);
            argv!["ZRANGEBYSCORE", g.key(), g.score_bound(), g.score_bound(), scores, g.limit()]
        }),
        row("zrevrangebyscore", Exact, |g| {
            let scores = g.maybe(0.4, &["WITHSCORES"]);
            argv!["ZREVRANGEBYSCORE", g.key(), g.score_bound(), g.score_bound(), scores, g.limit()]
        }),
        row("zrangebylex", Exact, |g| argv!["ZRANGEBYLEX", g.key(), g.lex_bound(), g.lex_bound(), g.limit()]),
        row("zrevrangebylex", Exact, |g| {
            argv!["ZREVRANGEBYLEX", g.key(), g.lex_bound(), g.lex_bound(), g.limit()]
        }),
        row("zrangestore", Exact, |g| {
            let (by, bounds) = match g.below(3) {
                0 => (None, vec![g.index(), g.index()]),
                1 => (Some("BYSCORE"), vec![g.score_bound(), g.score_bound()]),
                _ => (Some("BYLEX"), vec![g.lex_bound(), g.lex_bound()]),
            };
            argv!["ZRANGESTORE", g.key(), g.key(), bounds, by, g.maybe(0.3, &["REV"]), g.limit()]
        }),
        row("zremrangebyrank", Exact, |g| argv!["ZREMRANGEBYRANK", g.key(), g.index(), g.index()]),
        row("zremrangebyscore", Exact, |g| {
            argv!["ZREMRANGEBYSCORE", g.key(), g.score_bound(), g.score_bound()]
        }),
        row("zremrangebylex", Exact, |g| argv!["ZREMRANGEBYLEX", g.key(), g.lex_bound(), g.lex_bound()]),
        row("zpopmin", Exact, |g| argv!["ZPOPMIN", g.key(), g.chance(0.4).then(|| g.count())]),
        row("zpopmax", Exact, |g| argv!["ZPOPMAX", g.key(), g.chance(0.4).then(|| g.count())]),
        row("bzpopmin", Exact, |g| argv!["BZPOPMIN", g.keys(1, 3), g.timeout()]),
        row("bzpopmax", Exact, |g| argv!["BZPOPMAX", g.keys(1, 3), g.timeout()]),
        row("zmpop", Exact, |g| {
            let count = g.chance(0.4).then(|| argv!["COUNT", g.count()]);
            argv!["ZMPOP", g.numkeys(1, 3), g.pick(&["MIN", "MAX"]), count]
        }),
        row("bzmpop", Exact, |g| {
            let count = g.chance(0.4).then(|| argv!["COUNT", g.count()]);
            argv!["BZMPOP", g.timeout(), g.numkeys(1, 3), g.pick(&["MIN", "MAX"]), count]
        }),
        row("zrandmember", Shape, |g| {
            let count = g.chance(0.6).then(|| argv![g.count(), g.maybe(0.4, &["WITHSCORES"])]);
            argv!["ZRANDMEMBER", g.key(), count]
        }),
        row("zunion", Exact, |g| {
            let scores = g.maybe(0.4, &["WITHSCORES"]);
            argv!["ZUNION", g.numkeys(1, 3), zstore_options(g), scores]
        }),
        row("zinter", Exact, |g| {
            let scores = g.maybe(0.4, &["WITHSCORES"]);
            argv!["ZINTER", g.numkeys(1, 3), zstore_options(g), scores]
        }),
        row("zdiff", Exact, |g| argv!["ZDIFF", g.numkeys(1, 3), g.maybe(0.4, &["WITHSCORES"])]),
        row("zunionstore", Exact, |g| argv!["ZUNIONSTORE", g.key(), g.numkeys(1, 3), zstore_options(g)]),
        row("zinterstore", Exact, |g| argv!["ZINTERSTORE", g.key(), g.numkeys(1, 3), zstore_options(g)]),
        row("zdiffstore", Exact, |g| argv!["ZDIFFSTORE", g.key(), g.numkeys(1, 3)]),
        row("zintercard", Exact, |g| {
            let limit = g.chance(0.3).then(|| argv!["LIMIT", g.count()]);
            argv!["ZINTERCARD", g.numkeys(1, 3), limit]
        }),
        // SORT's patterns name keys of the key space when the elements are its digits (`k*` →
        // `k1`); a set's own order (BY nosort without STORE) and ALPHA ties under BY are hash
        // order in Redis, so BY nosort comes only with STORE (which sorts a set).
        row("sort", Exact, |g| sort_args(g, "SORT", true)),
        row("sort_ro", Exact, |g| sort_args(g, "SORT_RO", false)),
        scan("zscan", true, |g| {
            let pattern = g.chance(0.3).then(|| argv!["MATCH", g.pattern()]);
            argv!["ZSCAN", g.key(), "0", pattern]
        }),
        // ---- transactions ----
        row("watch", Exact, |g| argv!["WATCH", g.keys(1, 2)]),
        row("unwatch", Exact, |_| argv!["UNWATCH"]),
    ];
    rows.push(Row { kind: Kind::Transaction, weight: 15, ..row("multi", Exact, |_| argv!["MULTI"]) });
    rows
}

/// ZUNION/ZINTER(STORE)'s `WEIGHTS` and `AGGREGATE`, sometimes. The weights' count is taken from
/// the numkeys already generated only loosely: a mismatch is an error both servers must word alike.
fn zstore_options(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if g.chance(0.3) {
        out.push(b"WEIGHTS".to_vec());
        let n = 1 + g.below(3);
        out.extend((0..n).map(|_| g.pick(&["1", "2", "-1", "0.5", "inf", "x"])));
    }
    if g.chance(0.3) {
        out.push(b"AGGREGATE".to_vec());
        out.push(g.pick(&["SUM", "MIN", "MAX", "AVG"]));
    }
    out
}

/// One command to send to both servers, and how to judge the replies.
#[derive(Clone, Debug)]
pub struct Op {
    pub argv: Vec<Vec<u8>>,
    pub rule: Rule,
    pub resync: bool,
}

/// The rows a run uses (those the server under test knows), and how a step is drawn from them.
pub struct Plan<'a> {
    rows: Vec<&'a Row>,
    total_weight: u32,
}

impl<'a> Plan<'a> {
    pub fn new(rows: Vec<&'a Row>) -> Plan<'a> {
        let total_weight = rows.iter().map(|r| r.weight).sum();
        assert!(total_weight > 0, "no command to generate");
        Plan { rows, total_weight }
    }

    fn draw(&self, g: &mut Gen, plain_only: bool) -> &'a Row {
        loop {
            let mut x = g.rng.gen_range(0..self.total_weight);
            let row = self
                .rows
                .iter()
                .find(|r| {
                    if x < r.weight {
                        true
                    } else {
                        x -= r.weight;
                        false
                    }
                })
                .expect("x < total weight");
            if !plain_only || (row.kind == Kind::Plain && !matches!(row.rule, Rule::ScanAll { .. })) {
                return row;
            }
        }
    }

    /// The next step: one command, or a whole transaction.
    pub fn step(&self, g: &mut Gen) -> Vec<Op> {
        let row = self.draw(g, false);
        match row.kind {
            Kind::Plain => {
                let op = plain(g, row);
                vec![mangled(g, op)]
            }
            Kind::Transaction => {
                let mut ops = vec![Op { argv: argv!["MULTI"], rule: Rule::Exact, resync: false }];
                let n = 1 + g.below(4);
                let mut rules = Vec::new();
                let mut resync = false;
                for _ in 0..n {
                    let row = self.draw(g, true);
                    let inner = plain(g, row);
                    rules.push(inner.rule.clone());
                    resync |= inner.resync;
                    // Queued: the reply is +QUEUED (or an error) whatever the command's rule.
                    ops.push(Op { rule: Rule::Exact, resync: false, ..inner });
                }
                if g.chance(0.1) {
                    ops.push(Op { argv: argv!["DISCARD"], rule: Rule::Exact, resync: false });
                } else {
                    ops.push(Op { argv: argv!["EXEC"], rule: Rule::Exec(rules), resync });
                }
                ops
            }
        }
    }
}

fn plain(g: &mut Gen, row: &Row) -> Op {
    Op { argv: (row.gen)(g), rule: row.rule.clone(), resync: row.resync }
}

/// Now and then a command loses its last argument or gains a stray one, so that arity and syntax
/// errors are compared too. Not cursor iterations (their cursor's position is fixed).
fn mangled(g: &mut Gen, mut op: Op) -> Op {
    if matches!(op.rule, Rule::ScanAll { .. }) || !g.chance(0.03) {
        return op;
    }
    if g.chance(0.5) && op.argv.len() > 1 {
        op.argv.pop();
    } else {
        op.argv.push(b"x".to_vec());
    }
    op
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern …] [ASC|DESC] [ALPHA] [STORE dst]`
/// with a stable order: BY names keys (`k*`, `k*->f1`), ALPHA only without BY.
fn sort_args(g: &mut Gen, name: &str, store: bool) -> Vec<Vec<u8>> {
    let store = (store && g.chance(0.3)).then(|| argv!["STORE", g.key()]);
    let patterns: &[&str] =
        if store.is_some() { &["k*", "k*->f1", "k*->1", "nosort"] } else { &["k*", "k*->f1", "k*->1"] };
    let by = g.chance(0.4).then(|| argv!["BY", g.pick(patterns)]);
    let alpha = if by.is_none() { g.maybe(0.4, &["ALPHA"]) } else { None };
    let limit =
        g.chance(0.3).then(|| argv!["LIMIT", g.pick(&["0", "1", "-1", "5"]), g.pick(&["0", "2", "-1", "x"])]);
    let gets: Vec<Vec<u8>> = (0..g.below(3))
        .flat_map(|_| argv!["GET", g.pick(&["#", "k*", "k*->f1", "k*->1", "nokey"])])
        .collect();
    argv![name, g.key(), by, limit, gets, g.maybe(0.4, &["ASC", "DESC"]), alpha, store]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_draws_the_same_commands() {
        let rows = rows();
        let plan = Plan::new(rows.iter().collect());
        let run = |seed| {
            let mut g = Gen::new(seed);
            (0..200).flat_map(|_| plan.step(&mut g)).map(|op| op.argv).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_row_names_its_own_command_once() {
        let rows = rows();
        let mut names = std::collections::BTreeSet::new();
        for row in &rows {
            assert!(names.insert(row.name), "{} has two rows", row.name);
            let mut g = Gen::new(1);
            for _ in 0..50 {
                let argv = (row.gen)(&mut g);
                assert_eq!(String::from_utf8_lossy(&argv[0]).to_lowercase(), row.name);
            }
        }
    }

    #[test]
    fn a_transaction_judges_exec_by_the_queued_commands_rules() {
        let rows = rows();
        let multi: Vec<&Row> = rows.iter().filter(|r| r.name == "multi" || r.name == "ttl").collect();
        let plan = Plan::new(multi);
        let mut g = Gen::new(3);
        let step =
            (0..50).map(|_| plan.step(&mut g)).find(|s| s.len() > 1 && s.last().unwrap().argv[0] == b"EXEC");
        let step = step.expect("a transaction that ends with EXEC");
        assert_eq!(step[0].argv, argv!["MULTI"]);
        let Rule::Exec(rules) = &step.last().unwrap().rule else { panic!("EXEC is judged by Rule::Exec") };
        assert_eq!(rules.len(), step.len() - 2);
        assert!(rules.iter().all(|r| *r == Rule::Near(1)));
    }
}

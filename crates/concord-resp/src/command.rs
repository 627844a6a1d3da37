//! Requests: a client's arguments parsed into a typed [`Request`], with Redis's error replies.
//!
//! [`parse`] takes the arguments of one request (`["SET", "k", "v", "EX", "10"]`) and returns a
//! [`Request`] or the exact error Redis would send for the same input:
//!
//! ```text
//! GET                → ERR wrong number of arguments for 'get' command
//! FOO a              → ERR unknown command 'FOO', with args beginning with: 'a'
//! SET k v NX XX      → ERR syntax error
//! INCRBY k 1.5       → ERR value is not an integer or out of range
//! SET k v EX 0       → ERR invalid expire time in 'set' command
//! CLIENT FOO         → ERR unknown subcommand 'FOO'. Try CLIENT HELP.
//! CLUSTER KEYSLOT    → ERR wrong number of arguments for 'cluster|keyslot' command
//! ```
//!
//! Command names are case-insensitive. Every supported command has an entry in [`COMMANDS`] (its
//! arity in Redis's convention – exact if positive, a minimum if negative – key positions, flags
//! and a summary), which both the arity check here and `COMMAND` / `COMMAND DOCS` replies use; the
//! table is data, and lives in its own module, `command/table.rs`.
//!
//! This module only parses. [`crate::exec`] maps data commands onto `concord_kv` commands and
//! queries; the server handles the connection commands (`HELLO`, `AUTH`, `CLIENT`, …).
//!
//! # `CONSISTENCY`, Concord's own command
//! One grammar covers both consistency families a node can run (see [`crate::backend`]):
//!
//! ```text
//! CONSISTENCY                          → show this connection's setting
//! CONSISTENCY linearizable|lease|stale → Raft: how reads are served
//! CONSISTENCY ONE|QUORUM|ALL           → eventual: R and W both 1, N/2+1 or N
//! CONSISTENCY R 1 | W 3 | R 1 W 3      → eventual: R, W or both (either order)
//! CONSISTENCY DEFAULT                  → back to the node's defaults
//! ```
//!
//! Words are case-insensitive. Parsing checks only the grammar ([`ConsistencySetting`]): whether a
//! setting fits the node – a Raft level on an eventual node, `R 5` with three replicas – depends
//! on the backend's model, so the server decides that, with an error that says why.

use crate::codec::parse_int;
use crate::frame::{Frame, Protocol};
use bytes::Bytes;
use concord_raft::ReadConsistency;

mod table;
pub use table::{lookup, CommandSpec, KeySpec, CLUSTER_UNSUPPORTED, COMMANDS};

/// One client request.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    // Connection.
    Ping(Option<Bytes>),
    Echo(Bytes),
    Hello {
        protocol: Option<Protocol>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    Select(i64),
    Quit,
    /// `ACL SETUSER|DELUSER|WHOAMI|LIST|USERS` (see [`crate::acl`]).
    Acl(AclRequest),
    Client(ClientRequest),
    /// Concord extension: `CONSISTENCY [setting]` – set (or, without one, show) the consistency
    /// of this connection's requests (see the module docs).
    Consistency(Option<ConsistencySetting>),
    // Server.
    Info(Vec<Bytes>),
    Command(CommandRequest),
    ConfigGet(Vec<Bytes>),
    /// `CONFIG SET name value [name value …]` (only the slowlog settings change at runtime).
    ConfigSet(Vec<(Bytes, Bytes)>),
    /// `CONFIG RESETSTAT`: zero INFO's counters.
    ConfigResetStat,
    ConfigHelp,
    Slowlog(SlowlogRequest),
    /// `ROLE`: the replication role, mapped from Raft (see [`crate::introspect`]).
    Role,
    Time,
    DbSize,
    // Keys and strings.
    Get(Bytes),
    /// Concord's `GETREV key`: the value and its mod revision, `[value|nil, revision]` – what a
    /// cache tier fills with, so an invalidation at a later revision can refuse a late fill.
    GetRev(Bytes),
    /// A plain `SET` (with at most `EX`/`PX`/`EXAT`/`PXAT`), `SETEX`, `PSETEX`: one KV put. With
    /// `NX`, `XX`, `GET` or `KEEPTTL` it is a [`Request::Redis`].
    Set(SetRequest),
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    /// INCR, DECR, INCRBY and DECRBY.
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    /// TTL (seconds) and PTTL (milliseconds).
    Ttl {
        key: Bytes,
        millis: bool,
    },
    Keys(Bytes),
    Scan(ScanRequest),
    // Transactions.
    Multi,
    Exec,
    Discard,
    /// `WATCH key …`: remember the keys' mod revisions; EXEC runs only if none changed.
    Watch(Vec<Bytes>),
    Unwatch,
    // Redis Cluster (see [`crate::cluster`]).
    Cluster(ClusterRequest),
    /// `ASKING`: accepted, changes nothing (Concord answers moves with `-TRYAGAIN`, not `-ASK`).
    Asking,
    /// `READONLY`: this connection's reads become stale reads, which a replica may serve.
    ReadOnly,
    /// `READWRITE`: back to the connection's own consistency.
    ReadWrite,
    /// A command the state machine's interpreter runs (hashes, lists, sets, sorted sets, `TYPE`,
    /// `EXPIRE`…; see `concord_kv::redis`): its whole argument vector, name first, arity checked.
    Redis(Vec<Bytes>),
    /// Pub/Sub: `(P|S)SUBSCRIBE`, `(P|S)UNSUBSCRIBE`, `(S)PUBLISH`, `PUBSUB` (see [`crate::pubsub`]).
    PubSub(crate::pubsub::PubSubRequest),
    /// `EVALSHA` / `EVALSHA_RO sha numkeys …`: resolved to the body from the node's script cache
    /// ([`crate::scripts`]) and run as `EVAL` / `EVAL_RO`.
    EvalSha(Vec<Bytes>),
    /// `SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP`: the node's script cache.
    Script(ScriptRequest),
}

/// A `SCRIPT` subcommand.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptRequest {
    Load(Bytes),
    Exists(Vec<Bytes>),
    Flush,
    Kill,
    Help,
}

/// The keys of `EVAL`-like arguments (`name script numkeys key … arg …`), if `numkeys` is valid.
pub fn script_keys(args: &[Bytes]) -> Vec<&[u8]> {
    let n = std::str::from_utf8(args.get(2).map_or(&[][..], |a| a.as_ref()))
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    match n {
        Some(n) if 3 + n <= args.len() => args[3..3 + n].iter().map(|k| k.as_ref()).collect(),
        _ => vec![],
    }
}

/// Whether `name` is `EVAL` or `EVAL_RO` (which the interpreter runs).
fn is_eval(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"eval") || name.eq_ignore_ascii_case(b"eval_ro")
}

/// A `CLUSTER` subcommand. Arguments that need checking are kept as given: on a node without
/// cluster support Redis refuses the command before looking at them.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterRequest {
    Slots,
    Shards,
    Nodes,
    Info,
    MyId,
    Help,
    KeySlot(Bytes),
    /// `CLUSTER REPLICAS node-id` (and its old name, `SLAVES`).
    Replicas(Bytes),
    CountKeysInSlot(Bytes),
    GetKeysInSlot {
        slot: Bytes,
        count: Bytes,
    },
    /// A subcommand of Redis's that Concord does not offer (ADDSLOTS, MEET, FAILOVER…): the shard
    /// map changes only through Concord's metadata group.
    Unsupported(&'static str),
}

impl Request {
    /// The keys this request names, in order (what `-CROSSSLOT` and `COMMAND GETKEYS` are about).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Request::Get(key) | Request::GetRev(key) => vec![key],
            Request::Set(set) => vec![&set.key],
            Request::IncrBy { key, .. } | Request::Ttl { key, .. } => vec![key],
            Request::Del(keys) | Request::Exists(keys) | Request::MGet(keys) | Request::Watch(keys) => {
                keys.iter().map(|k| k.as_ref()).collect()
            }
            Request::MSet(pairs) => pairs.iter().map(|(k, _)| k.as_ref()).collect(),
            Request::Redis(args) if is_eval(&args[0]) => script_keys(args),
            Request::EvalSha(args) => script_keys(args),
            // The key specs when they say more than the (first, last, step) triple can
            // (`SINTERCARD numkeys key …`).
            Request::Redis(args) => match lookup(&args[0]) {
                Some(spec) if spec.flags.contains(&"movablekeys") => spec.spec_keys(args).unwrap_or_default(),
                // A container's keys are its subcommand's (`OBJECT ENCODING key`).
                Some(spec) => match args.get(1).and_then(|sub| spec.subcommand(sub)) {
                    Some(sub) => table_keys(sub.keys, args),
                    None => table_keys(spec.keys, args),
                },
                None => vec![],
            },
            Request::PubSub(request) => request.keys(),
            _ => vec![],
        }
    }
}

/// The keys of `args` by the command table's `(first, last, step)` (`last` negative: counted from
/// the end, `-1` the last argument).
pub fn table_keys(keys: (i64, i64, i64), args: &[Bytes]) -> Vec<&[u8]> {
    let (first, last, step) = keys;
    if first <= 0 || step <= 0 {
        return vec![];
    }
    let n = args.len() as i64;
    let last = if last < 0 { n + last } else { last.min(n - 1) };
    (first..=last).step_by(step as usize).filter_map(|i| args.get(i as usize)).map(|k| k.as_ref()).collect()
}

/// `SCRIPT LOAD body`, `SCRIPT EXISTS sha …`, `SCRIPT FLUSH [ASYNC|SYNC]`, `SCRIPT KILL`, `SCRIPT HELP`.
fn parse_script(rest: &[Bytes]) -> Result<Request, ReplyError> {
    let sub = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(ReplyError::wrong_arity(&format!("script|{sub}"))) };
    Ok(Request::Script(match sub.as_str() {
        "load" => {
            arity(rest.len() == 2)?;
            ScriptRequest::Load(rest[1].clone())
        }
        "exists" => {
            arity(rest.len() >= 2)?;
            ScriptRequest::Exists(rest[1..].to_vec())
        }
        "flush" => {
            arity(rest.len() <= 2)?;
            if let Some(mode) = rest.get(1) {
                if !mode.eq_ignore_ascii_case(b"async") && !mode.eq_ignore_ascii_case(b"sync") {
                    return Err(ReplyError("ERR SCRIPT FLUSH only support SYNC|ASYNC option".into()));
                }
            }
            ScriptRequest::Flush
        }
        "kill" => {
            arity(rest.len() == 1)?;
            ScriptRequest::Kill
        }
        "help" => {
            arity(rest.len() == 1)?;
            ScriptRequest::Help
        }
        _ => {
            return Err(ReplyError(format!(
                "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                String::from_utf8_lossy(&rest[0])
            )))
        }
    }))
}

/// An `ACL` subcommand.
#[derive(Clone, Debug, PartialEq)]
pub enum AclRequest {
    SetUser { name: Bytes, rules: Vec<Bytes> },
    DelUser(Vec<Bytes>),
    WhoAmI,
    List,
    Users,
}

/// What `CONSISTENCY` asks to set. Only the grammar is checked here; the server checks it against
/// the backend's [`crate::backend::ConsistencyModel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsistencySetting {
    /// `LINEARIZABLE`, `LEASE` or `STALE`: how reads are served (Raft).
    Read(ReadConsistency),
    /// `ONE`, `QUORUM` or `ALL`: R and W together (eventual mode).
    Level(QuorumLevel),
    /// `R <r>`, `W <w>` or both, in either order (eventual mode). At least one is `Some`. A value
    /// below 1 is kept as 0, so the server refuses it with the bounds that apply.
    Quorums { r: Option<usize>, w: Option<usize> },
    /// `DEFAULT`: back to the node's defaults (its read level, or its R and W).
    Default,
}

/// `CONSISTENCY ONE|QUORUM|ALL`: a number of replicas relative to N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumLevel {
    One,
    Quorum,
    All,
}

impl QuorumLevel {
    /// The replicas this level means with `n` replicas per key: 1, a majority (n/2 + 1), or n.
    pub fn replicas(self, n: usize) -> usize {
        match self {
            QuorumLevel::One => 1,
            QuorumLevel::Quorum => n / 2 + 1,
            QuorumLevel::All => n,
        }
    }
}

/// `SET key value [EX s|PX ms|EXAT s|PXAT ms]` (also SETEX, PSETEX): the SETs that are one put.
#[derive(Clone, Debug, PartialEq)]
pub struct SetRequest {
    pub key: Bytes,
    pub value: Bytes,
    pub expiry: SetExpiry,
    /// The command's name for error messages (`set`, `setex`, …).
    pub command: &'static str,
}

/// What a SET does with the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// No option: the key no longer expires (a previous TTL is dropped).
    Clear,
    /// EX/PX: expire this many ms from now (> 0).
    AfterMs(u64),
    /// EXAT/PXAT: expire at this Unix time in ms (> 0; may be in the past: the key is deleted).
    AtUnixMs(u64),
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanRequest {
    /// `0` to start; otherwise the key to resume from (decoded from the cursor).
    pub cursor: Option<Vec<u8>>,
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// TYPE filter: `string`, `hash`, `list`, `set`, `zset` (anything else yields nothing).
    pub type_filter: Option<Bytes>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientRequest {
    SetName(Bytes),
    GetName,
    Id,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (redis-py sends it on connect).
    SetInfo {
        attribute: ClientInfoAttribute,
        value: Bytes,
    },
    Info,
    /// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id …]`.
    List(ClientFilter),
    /// `CLIENT KILL ip:port` (the old form: one client, `+OK` or an error), or
    /// `CLIENT KILL <filter> <value> …` (the new form: how many were killed).
    Kill {
        filter: ClientFilter,
        old_form: bool,
    },
    Help,
    /// `CLIENT TRACKING ON …` with its options, or `OFF` (`None`; see [`crate::tracking`]).
    Tracking(Option<crate::tracking::Settings>),
    /// `CLIENT CACHING YES|NO` (`None`: neither word).
    Caching(Option<bool>),
    GetRedir,
    TrackingInfo,
}

/// Which clients `CLIENT LIST` shows and `CLIENT KILL` closes: all the given conditions hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFilter {
    pub ids: Vec<u64>,
    pub addr: Option<Bytes>,
    pub laddr: Option<Bytes>,
    pub user: Option<Bytes>,
    /// `TYPE`: `normal` (every Concord client), `master`, `replica`, `pubsub` (none).
    pub kind: Option<String>,
    /// Connections older than this many seconds (`MAXAGE`).
    pub max_age_secs: Option<u64>,
    /// Spare the connection that asks (`SKIPME yes`, the default of the new `KILL` form).
    pub skip_me: bool,
}

/// A `SLOWLOG` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlowlogRequest {
    /// `GET [count]`: at most `count` newest entries (`None`: all, from `-1`).
    Get(Option<usize>),
    Len,
    Reset,
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientInfoAttribute {
    LibName,
    LibVersion,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommandRequest {
    /// `COMMAND`: every command's info.
    All,
    Count,
    /// `COMMAND INFO [name …]`.
    Info(Vec<Bytes>),
    /// `COMMAND DOCS [name …]` (redis-cli 7 asks for it at startup for its hints).
    Docs(Vec<Bytes>),
    List,
    /// `COMMAND GETKEYS command arg …`: the keys of a full command, found by its key spec.
    GetKeys(Vec<Bytes>),
}

/// An error reply: the text after `-`, starting with its code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplyError(pub String);

impl ReplyError {
    pub fn syntax() -> ReplyError {
        ReplyError("ERR syntax error".into())
    }

    pub fn not_an_integer() -> ReplyError {
        ReplyError("ERR value is not an integer or out of range".into())
    }

    pub fn wrong_arity(name: &str) -> ReplyError {
        ReplyError(format!("ERR wrong number of arguments for '{name}' command"))
    }

    pub fn invalid_expire(command: &str) -> ReplyError {
        ReplyError(format!("ERR invalid expire time in '{command}' command"))
    }

    /// Redis's wording, including the trailing space after each quoted argument; at most about
    /// 128 bytes of arguments are quoted.
    pub fn unknown_command(args: &[Bytes]) -> ReplyError {
        let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]).into_owned();
        let mut quoted = String::new();
        for arg in &args[1..] {
            if quoted.len() >= 128 {
                break;
            }
            let room = 128 - quoted.len();
            quoted.push_str(&format!("'{}' ", String::from_utf8_lossy(&arg[..arg.len().min(room)])));
        }
        ReplyError(format!("ERR unknown command '{name}', with args beginning with: {quoted}"))
    }

    pub fn unknown_subcommand(command: &str, sub: &[u8]) -> ReplyError {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
        ReplyError(format!("ERR unknown subcommand '{sub}'. Try {} HELP.", command.to_uppercase()))
    }

    pub fn into_frame(self) -> Frame {
        Frame::Error(self.0)
    }
}

/// Parse one request's arguments (see the module docs). `args` is never empty (the codec skips
/// empty requests).
pub fn parse(args: Vec<Bytes>) -> Result<Request, ReplyError> {
    let Some(spec) = lookup(&args[0]) else { return Err(ReplyError::unknown_command(&args)) };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(ReplyError::wrong_arity(spec.name));
    }
    if matches!(spec.name, "eval" | "eval_ro" | "evalsha" | "evalsha_ro") {
        // The interpreter checks numkeys again; here it must be valid to find the keys.
        concord_kv::redis::script::split(&args[1..].iter().map(|a| a.to_vec()).collect::<Vec<_>>()).map_err(
            |e| match e {
                concord_kv::Reply::Error(line) => ReplyError(line),
                _ => ReplyError::syntax(),
            },
        )?;
        return Ok(if spec.name.starts_with("evalsha") {
            Request::EvalSha(args)
        } else {
            Request::Redis(args)
        });
    }
    if spec.name == "script" {
        return parse_script(&args[1..]);
    }
    if concord_kv::redis::is_write(spec.name).is_some() && !fast_path(spec.name, &args) {
        return Ok(Request::Redis(args));
    }
    let mut args = args.into_iter();
    args.next(); // the name
    let rest: Vec<Bytes> = args.collect();
    let arg = |i: usize| rest[i].clone();
    Ok(match spec.name {
        "ping" => match rest.len() {
            0 => Request::Ping(None),
            1 => Request::Ping(Some(arg(0))),
            _ => return Err(ReplyError::wrong_arity("ping")),
        },
        "echo" => Request::Echo(arg(0)),
        "hello" => parse_hello(&rest)?,
        "auth" => match rest.len() {
            1 => Request::Auth { user: None, password: arg(0) },
            2 => Request::Auth { user: Some(arg(0)), password: arg(1) },
            _ => return Err(ReplyError::syntax()),
        },
        "select" => Request::Select(integer(&rest[0])?),
        "quit" => Request::Quit,
        "client" => Request::Client(parse_client(&rest)?),
        "acl" => Request::Acl(parse_acl(&rest)?),
        "consistency" => Request::Consistency(parse_consistency(&rest)?),
        "info" => Request::Info(rest),
        "command" => Request::Command(parse_command(&rest)?),
        "config" => parse_config(&rest)?,
        "slowlog" => Request::Slowlog(parse_slowlog(&rest)?),
        "role" => Request::Role,
        "time" => Request::Time,
        "dbsize" => Request::DbSize,
        "get" => Request::Get(arg(0)),
        "getrev" => Request::GetRev(arg(0)),
        "set" => Request::Set(parse_set(arg(0), arg(1), &rest[2..])?),
        "setex" | "psetex" => {
            let amount = integer(&rest[1])?;
            let expiry = relative_expiry(amount, spec.name == "setex", spec.name)?;
            Request::Set(SetRequest { expiry, command: spec.name, ..plain_set(arg(0), arg(2)) })
        }
        "del" => Request::Del(rest),
        "exists" => Request::Exists(rest),
        "incr" => Request::IncrBy { key: arg(0), delta: 1 },
        "decr" => Request::IncrBy { key: arg(0), delta: -1 },
        "incrby" => Request::IncrBy { key: arg(0), delta: integer(&rest[1])? },
        "decrby" => {
            let delta = integer(&rest[1])?;
            if delta == i64::MIN {
                return Err(ReplyError("ERR decrement would overflow".into()));
            }
            Request::IncrBy { key: arg(0), delta: -delta }
        }
        "mget" => Request::MGet(rest),
        "mset" => {
            if !rest.len().is_multiple_of(2) {
                return Err(ReplyError::wrong_arity("mset"));
            }
            Request::MSet(rest.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect())
        }
        "ttl" => Request::Ttl { key: arg(0), millis: false },
        "pttl" => Request::Ttl { key: arg(0), millis: true },
        "keys" => Request::Keys(arg(0)),
        "scan" => Request::Scan(parse_scan(&rest)?),
        "multi" => Request::Multi,
        "exec" => Request::Exec,
        "discard" => Request::Discard,
        "watch" => Request::Watch(rest),
        "unwatch" => Request::Unwatch,
        "cluster" => Request::Cluster(parse_cluster(&rest)?),
        "asking" => Request::Asking,
        "readonly" => Request::ReadOnly,
        "readwrite" => Request::ReadWrite,
        "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe" | "sunsubscribe"
        | "publish" | "spublish" | "pubsub" => Request::PubSub(crate::pubsub::parse(spec.name, rest)?),
        other => unreachable!("command {other} is in the table but has no parser"),
    })
}

/// Whether a command the interpreter also runs keeps its KV path here (outside `MULTI`): those
/// whose KV operation answers exactly as Redis – `GET` (a `Query::Get`, the hot path; an empty
/// value is checked for a collection), `SET` without `NX`/`XX`/`GET`/`KEEPTTL` (a put),
/// `INCR` and friends (`Write::Increment`, which the eventual mode runs as a counter), `MGET`,
/// `MSET`, `DEL`, `EXISTS`, `TTL`, `PTTL`; and `KEYS`, `SCAN`, `DBSIZE`, read in pages. Everything
/// else goes to the interpreter.
fn fast_path(name: &str, args: &[Bytes]) -> bool {
    match name {
        "get" | "setex" | "psetex" | "mget" | "mset" | "del" | "exists" | "ttl" | "pttl" | "incr"
        | "decr" | "incrby" | "decrby" => true,
        // Paged range reads, bounded per request (the interpreter runs them only inside MULTI).
        "keys" | "scan" | "dbsize" => true,
        "set" => !args[3..].iter().any(|o| ["NX", "XX", "GET", "KEEPTTL"].iter().any(|w| is(o, w))),
        _ => false,
    }
}

/// Parse a request to queue inside `MULTI`: a command the interpreter runs is only checked for
/// its arity, as Redis does at queue time – its other errors are its reply inside EXEC's array.
///
/// The outer error refuses the command at queue time (unknown, wrong arity: the transaction is
/// doomed); the inner one is a front-door command's own parsing error, which Redis answers only
/// when EXEC runs it.
pub fn parse_queued(args: Vec<Bytes>) -> Result<Result<Request, ReplyError>, ReplyError> {
    let Some(spec) = lookup(&args[0]) else { return Err(ReplyError::unknown_command(&args)) };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(ReplyError::wrong_arity(spec.name));
    }
    if concord_kv::redis::is_write(spec.name).is_some() {
        return Ok(Ok(Request::Redis(args)));
    }
    Ok(parse(args))
}

/// An integer argument, or Redis's "not an integer" error.
pub fn integer(arg: &[u8]) -> Result<i64, ReplyError> {
    parse_int(arg).ok_or_else(ReplyError::not_an_integer)
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn plain_set(key: Bytes, value: Bytes) -> SetRequest {
    SetRequest { key, value, expiry: SetExpiry::Clear, command: "set" }
}

/// `amount` seconds (or ms) from now: must be positive and fit in ms.
fn relative_expiry(amount: i64, seconds: bool, command: &str) -> Result<SetExpiry, ReplyError> {
    let ms = if seconds { amount.checked_mul(1000) } else { Some(amount) };
    match ms {
        Some(ms) if ms > 0 => Ok(SetExpiry::AfterMs(ms as u64)),
        _ => Err(ReplyError::invalid_expire(command)),
    }
}

fn parse_set(key: Bytes, value: Bytes, options: &[Bytes]) -> Result<SetRequest, ReplyError> {
    let mut set = plain_set(key, value);
    // EX/PX/EXAT/PXAT and its argument: Redis checks every option's syntax first and the number
    // after, so "SET k v EX abc FOO" is a syntax error, not "not an integer". (Options other than
    // these four go to the interpreter: see `fast_path`.)
    let mut timed: Option<(&Bytes, &Bytes)> = None;
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        let has_value = i + 1 < options.len();
        if ["EX", "PX", "EXAT", "PXAT"].iter().any(|w| is(option, w)) && timed.is_none() && has_value {
            timed = Some((option, &options[i + 1]));
            i += 1;
        } else {
            return Err(ReplyError::syntax());
        }
        i += 1;
    }
    if let Some((option, amount)) = timed {
        // Redis checks the number before the sign: "EX abc" is not an integer, "EX 0" invalid.
        let amount = integer(amount)?;
        let seconds = is(option, "EX") || is(option, "EXAT");
        set.expiry = if is(option, "EX") || is(option, "PX") {
            relative_expiry(amount, seconds, "set")?
        } else {
            let ms = if seconds { amount.checked_mul(1000) } else { Some(amount) };
            match ms {
                Some(ms) if ms > 0 => SetExpiry::AtUnixMs(ms as u64),
                _ => return Err(ReplyError::invalid_expire("set")),
            }
        };
    }
    Ok(set)
}

fn parse_scan(rest: &[Bytes]) -> Result<ScanRequest, ReplyError> {
    let cursor = crate::cursor::decode(&rest[0]).ok_or_else(|| ReplyError("ERR invalid cursor".into()))?;
    let mut scan = ScanRequest { cursor, pattern: None, count: 10, type_filter: None };
    let mut i = 1;
    while i < rest.len() {
        let Some(value) = rest.get(i + 1) else { return Err(ReplyError::syntax()) };
        if is(&rest[i], "MATCH") {
            scan.pattern = Some(value.clone());
        } else if is(&rest[i], "COUNT") {
            let count = integer(value)?;
            if count < 1 {
                return Err(ReplyError::syntax());
            }
            scan.count = count as usize;
        } else if is(&rest[i], "TYPE") {
            scan.type_filter = Some(value.clone());
        } else {
            return Err(ReplyError::syntax());
        }
        i += 2;
    }
    Ok(scan)
}

fn parse_hello(rest: &[Bytes]) -> Result<Request, ReplyError> {
    let Some(version) = rest.first() else {
        return Ok(Request::Hello { protocol: None, auth: None, setname: None });
    };
    let protocol = match parse_int(version) {
        None => return Err(ReplyError("ERR Protocol version is not an integer or out of range".into())),
        Some(2) => Protocol::Resp2,
        Some(3) => Protocol::Resp3,
        Some(_) => return Err(ReplyError("NOPROTO unsupported protocol version".into())),
    };
    let (mut auth, mut setname) = (None, None);
    let mut i = 1;
    while i < rest.len() {
        let more = rest.len() - i - 1;
        if is(&rest[i], "AUTH") && more >= 2 {
            auth = Some((rest[i + 1].clone(), rest[i + 2].clone()));
            i += 3;
        } else if is(&rest[i], "SETNAME") && more >= 1 {
            setname = Some(rest[i + 1].clone());
            i += 2;
        } else {
            return Err(ReplyError(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&rest[i])
            )));
        }
    }
    Ok(Request::Hello { protocol: Some(protocol), auth, setname })
}

fn parse_acl(rest: &[Bytes]) -> Result<AclRequest, ReplyError> {
    let sub = &rest[0];
    let exactly = |name: &str, n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(ReplyError::wrong_arity(&format!("acl|{name}")))
        }
    };
    if is(sub, "SETUSER") {
        if rest.len() < 2 {
            return Err(ReplyError::wrong_arity("acl|setuser"));
        }
        Ok(AclRequest::SetUser { name: rest[1].clone(), rules: rest[2..].to_vec() })
    } else if is(sub, "DELUSER") {
        if rest.len() < 2 {
            return Err(ReplyError::wrong_arity("acl|deluser"));
        }
        Ok(AclRequest::DelUser(rest[1..].to_vec()))
    } else if is(sub, "WHOAMI") {
        exactly("whoami", 1)?;
        Ok(AclRequest::WhoAmI)
    } else if is(sub, "LIST") {
        exactly("list", 1)?;
        Ok(AclRequest::List)
    } else if is(sub, "USERS") {
        exactly("users", 1)?;
        Ok(AclRequest::Users)
    } else {
        Err(ReplyError::unknown_subcommand("acl", sub))
    }
}

fn parse_client(rest: &[Bytes]) -> Result<ClientRequest, ReplyError> {
    let sub = &rest[0];
    let arity = |name: &str, n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(ReplyError::wrong_arity(&format!("client|{name}")))
        }
    };
    if is(sub, "SETNAME") {
        arity("setname", 2)?;
        Ok(ClientRequest::SetName(rest[1].clone()))
    } else if is(sub, "GETNAME") {
        arity("getname", 1)?;
        Ok(ClientRequest::GetName)
    } else if is(sub, "ID") {
        arity("id", 1)?;
        Ok(ClientRequest::Id)
    } else if is(sub, "INFO") {
        arity("info", 1)?;
        Ok(ClientRequest::Info)
    } else if is(sub, "LIST") {
        Ok(ClientRequest::List(parse_client_filter(&rest[1..], true)?))
    } else if is(sub, "KILL") {
        if rest.len() < 2 {
            return Err(ReplyError::wrong_arity("client|kill"));
        }
        if rest.len() == 2 {
            // The old form: `CLIENT KILL ip:port`.
            let filter = ClientFilter { addr: Some(rest[1].clone()), ..ClientFilter::default() };
            return Ok(ClientRequest::Kill { filter, old_form: true });
        }
        let filter = parse_client_filter(&rest[1..], false)?;
        Ok(ClientRequest::Kill { filter, old_form: false })
    } else if is(sub, "HELP") {
        arity("help", 1)?;
        Ok(ClientRequest::Help)
    } else if is(sub, "SETINFO") {
        arity("setinfo", 3)?;
        let attribute = if is(&rest[1], "LIB-NAME") {
            ClientInfoAttribute::LibName
        } else if is(&rest[1], "LIB-VER") {
            ClientInfoAttribute::LibVersion
        } else {
            return Err(ReplyError(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&rest[1])
            )));
        };
        Ok(ClientRequest::SetInfo { attribute, value: rest[2].clone() })
    } else if is(sub, "TRACKING") {
        if rest.len() < 2 {
            return Err(ReplyError::wrong_arity("client|tracking"));
        }
        parse_tracking(&rest[1..]).map(ClientRequest::Tracking)
    } else if is(sub, "CACHING") {
        arity("caching", 2)?;
        let yes = if is(&rest[1], "YES") {
            Some(true)
        } else if is(&rest[1], "NO") {
            Some(false)
        } else {
            None
        };
        Ok(ClientRequest::Caching(yes))
    } else if is(sub, "GETREDIR") {
        arity("getredir", 1)?;
        Ok(ClientRequest::GetRedir)
    } else if is(sub, "TRACKINGINFO") {
        arity("trackinginfo", 1)?;
        Ok(ClientRequest::TrackingInfo)
    } else {
        Err(ReplyError::unknown_subcommand("client", sub))
    }
}

/// `CLIENT TRACKING`'s words after the subcommand, as redis-server parses them.
fn parse_tracking(words: &[Bytes]) -> Result<Option<crate::tracking::Settings>, ReplyError> {
    let syntax = || ReplyError("ERR syntax error".into());
    let mut request = crate::tracking::Settings::default();
    let on = is(&words[0], "ON");
    if !on && !is(&words[0], "OFF") {
        return Err(syntax());
    }
    let mut i = 1;
    while i < words.len() {
        let word = &words[i];
        let value = words.get(i + 1);
        if is(word, "REDIRECT") && value.is_some() {
            let id = integer(&words[i + 1])
                .map_err(|_| ReplyError("ERR value is not an integer or out of range".into()))?;
            request.redirect = Some(id.max(0) as u64);
            i += 1;
        } else if is(word, "PREFIX") && value.is_some() {
            request.prefixes.push(words[i + 1].clone());
            i += 1;
        } else if is(word, "BCAST") {
            request.bcast = true;
        } else if is(word, "OPTIN") {
            request.optin = true;
        } else if is(word, "OPTOUT") {
            request.optout = true;
        } else if is(word, "NOLOOP") {
            request.noloop = true;
        } else if is(word, "REVISIONS") {
            request.revisions = true;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    Ok(on.then_some(request))
}

/// `CLIENT LIST`'s (`list`: `TYPE`, `ID id …`) or `CLIENT KILL`'s filters (`ID`, `ADDR`,
/// `LADDR`, `USER`, `TYPE`, `SKIPME`, `MAXAGE`, each followed by one value), as redis-server
/// parses them, with its errors.
fn parse_client_filter(words: &[Bytes], list: bool) -> Result<ClientFilter, ReplyError> {
    let mut filter = ClientFilter { skip_me: !list, ..ClientFilter::default() };
    let mut i = 0;
    while i < words.len() {
        let option = &words[i];
        if list && is(option, "ID") && i + 1 < words.len() {
            for id in &words[i + 1..] {
                match integer(id) {
                    Ok(id) if id > 0 => filter.ids.push(id as u64),
                    _ => return Err(ReplyError("ERR Invalid client ID".into())),
                }
            }
            return Ok(filter);
        }
        let Some(value) = words.get(i + 1) else { return Err(ReplyError::syntax()) };
        if is(option, "TYPE") {
            let kind = String::from_utf8_lossy(value).to_ascii_lowercase();
            let kind = if kind == "slave" { "replica".to_string() } else { kind };
            if !["normal", "master", "replica", "pubsub"].contains(&kind.as_str()) {
                return Err(ReplyError(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
            filter.kind = Some(kind);
        } else if list {
            return Err(ReplyError::syntax());
        } else if is(option, "ID") {
            match integer(value) {
                Ok(id) if id > 0 => filter.ids.push(id as u64),
                _ => return Err(ReplyError("ERR client-id should be greater than 0".into())),
            }
        } else if is(option, "ADDR") {
            filter.addr = Some(value.clone());
        } else if is(option, "LADDR") {
            filter.laddr = Some(value.clone());
        } else if is(option, "USER") {
            filter.user = Some(value.clone());
        } else if is(option, "SKIPME") {
            filter.skip_me = if is(value, "YES") {
                true
            } else if is(value, "NO") {
                false
            } else {
                return Err(ReplyError::syntax());
            };
        } else if is(option, "MAXAGE") {
            filter.max_age_secs = Some(integer(value).map_err(|_| ReplyError::syntax())?.max(0) as u64);
        } else {
            return Err(ReplyError::syntax());
        }
        i += 2;
    }
    Ok(filter)
}

fn parse_slowlog(rest: &[Bytes]) -> Result<SlowlogRequest, ReplyError> {
    let sub = &rest[0];
    let exactly = |name: &str, n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(ReplyError::wrong_arity(&format!("slowlog|{name}")))
        }
    };
    if is(sub, "GET") {
        match rest.len() {
            1 => Ok(SlowlogRequest::Get(Some(10))),
            2 => match integer(&rest[1]) {
                Ok(-1) => Ok(SlowlogRequest::Get(None)),
                Ok(n) if n >= 0 => Ok(SlowlogRequest::Get(Some(n as usize))),
                _ => Err(ReplyError("ERR count should be greater than or equal to -1".into())),
            },
            _ => Err(ReplyError::wrong_arity("slowlog|get")),
        }
    } else if is(sub, "LEN") {
        exactly("len", 1)?;
        Ok(SlowlogRequest::Len)
    } else if is(sub, "RESET") {
        exactly("reset", 1)?;
        Ok(SlowlogRequest::Reset)
    } else if is(sub, "HELP") {
        exactly("help", 1)?;
        Ok(SlowlogRequest::Help)
    } else {
        Err(ReplyError::unknown_subcommand("slowlog", sub))
    }
}

fn parse_command(rest: &[Bytes]) -> Result<CommandRequest, ReplyError> {
    let Some(sub) = rest.first() else { return Ok(CommandRequest::All) };
    if is(sub, "COUNT") {
        if rest.len() != 1 {
            return Err(ReplyError::wrong_arity("command|count"));
        }
        Ok(CommandRequest::Count)
    } else if is(sub, "INFO") {
        Ok(CommandRequest::Info(rest[1..].to_vec()))
    } else if is(sub, "DOCS") {
        Ok(CommandRequest::Docs(rest[1..].to_vec()))
    } else if is(sub, "LIST") {
        Ok(CommandRequest::List)
    } else if is(sub, "GETKEYS") {
        if rest.len() < 3 {
            return Err(ReplyError::wrong_arity("command|getkeys"));
        }
        Ok(CommandRequest::GetKeys(rest[1..].to_vec()))
    } else {
        Err(ReplyError::unknown_subcommand("command", sub))
    }
}

/// `CLUSTER sub …`: the subcommand's arity as Redis checks it (also for Redis's subcommands that
/// Concord does not offer), then its arguments as given (see [`ClusterRequest`]).
fn parse_cluster(rest: &[Bytes]) -> Result<ClusterRequest, ReplyError> {
    let sub = &rest[0];
    let n = rest.len() as i64 + 1;
    let arity_ok = |arity: i64| (arity > 0 && n == arity) || (arity < 0 && n >= -arity);
    let cluster = lookup(b"cluster").expect("cluster is in the command table");
    if let Some(spec) = cluster.subcommand(sub) {
        if !arity_ok(spec.arity) {
            return Err(ReplyError::wrong_arity(spec.name));
        }
        let arg = |i: usize| rest[i].clone();
        return Ok(match &spec.name["cluster|".len()..] {
            "slots" => ClusterRequest::Slots,
            "shards" => ClusterRequest::Shards,
            "nodes" => ClusterRequest::Nodes,
            "info" => ClusterRequest::Info,
            "myid" => ClusterRequest::MyId,
            "help" => ClusterRequest::Help,
            "keyslot" => ClusterRequest::KeySlot(arg(1)),
            "replicas" | "slaves" => ClusterRequest::Replicas(arg(1)),
            "countkeysinslot" => ClusterRequest::CountKeysInSlot(arg(1)),
            "getkeysinslot" => ClusterRequest::GetKeysInSlot { slot: arg(1), count: arg(2) },
            other => unreachable!("cluster|{other} is in the table but has no parser"),
        });
    }
    match CLUSTER_UNSUPPORTED.iter().find(|(name, _)| sub.eq_ignore_ascii_case(name.as_bytes())) {
        Some((name, arity)) if !arity_ok(*arity) => Err(ReplyError::wrong_arity(&format!("cluster|{name}"))),
        Some((name, _)) => Ok(ClusterRequest::Unsupported(name)),
        None => Err(ReplyError::unknown_subcommand("cluster", sub)),
    }
}

fn parse_config(rest: &[Bytes]) -> Result<Request, ReplyError> {
    let sub = &rest[0];
    if is(sub, "GET") {
        if rest.len() < 2 {
            return Err(ReplyError::wrong_arity("config|get"));
        }
        Ok(Request::ConfigGet(rest[1..].to_vec()))
    } else if is(sub, "SET") {
        if rest.len() < 3 || rest.len().is_multiple_of(2) {
            return Err(ReplyError::wrong_arity("config|set"));
        }
        Ok(Request::ConfigSet(rest[1..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()))
    } else if is(sub, "RESETSTAT") {
        if rest.len() != 1 {
            return Err(ReplyError::wrong_arity("config|resetstat"));
        }
        Ok(Request::ConfigResetStat)
    } else if is(sub, "HELP") {
        if rest.len() != 1 {
            return Err(ReplyError::wrong_arity("config|help"));
        }
        Ok(Request::ConfigHelp)
    } else if is(sub, "REWRITE") {
        Err(ReplyError(format!(
            "ERR CONFIG {} is not supported: Concord is configured in its configuration file",
            String::from_utf8_lossy(sub).to_uppercase()
        )))
    } else {
        Err(ReplyError::unknown_subcommand("config", sub))
    }
}

fn parse_consistency(rest: &[Bytes]) -> Result<Option<ConsistencySetting>, ReplyError> {
    let quorum_word = |arg: &[u8]| is(arg, "R") || is(arg, "W");
    let setting = match rest {
        [] => return Ok(None),
        [word] if quorum_word(word) => return Err(ReplyError::syntax()),
        [word] => parse_consistency_word(word)?,
        [first, ..] if quorum_word(first) => {
            let (mut r, mut w) = (None, None);
            for pair in rest.chunks(2) {
                let slot = if is(&pair[0], "R") {
                    &mut r
                } else if is(&pair[0], "W") {
                    &mut w
                } else {
                    return Err(ReplyError::syntax());
                };
                // `R 1 R 2` or a missing value: as Redis answers a malformed option list.
                let (None, Some(value)) = (&slot, pair.get(1)) else { return Err(ReplyError::syntax()) };
                let k = integer(value)?;
                *slot = Some(if k < 1 { 0 } else { usize::try_from(k).unwrap_or(usize::MAX) });
            }
            ConsistencySetting::Quorums { r, w }
        }
        _ => return Err(ReplyError::wrong_arity("consistency")),
    };
    Ok(Some(setting))
}

fn parse_consistency_word(arg: &[u8]) -> Result<ConsistencySetting, ReplyError> {
    Ok(if is(arg, "linearizable") {
        ConsistencySetting::Read(ReadConsistency::Linearizable)
    } else if is(arg, "lease") {
        ConsistencySetting::Read(ReadConsistency::Lease)
    } else if is(arg, "stale") {
        ConsistencySetting::Read(ReadConsistency::Stale)
    } else if is(arg, "ONE") {
        ConsistencySetting::Level(QuorumLevel::One)
    } else if is(arg, "QUORUM") {
        ConsistencySetting::Level(QuorumLevel::Quorum)
    } else if is(arg, "ALL") {
        ConsistencySetting::Level(QuorumLevel::All)
    } else if is(arg, "DEFAULT") {
        ConsistencySetting::Default
    } else {
        return Err(ReplyError(format!(
            "ERR unknown consistency '{}'; expected linearizable, lease or stale (Raft), ONE, QUORUM, ALL, \
             R <r> or W <w> (eventual mode), or DEFAULT",
            String::from_utf8_lossy(arg)
        )));
    })
}

/// The name `CONSISTENCY` reports for a level.
pub fn consistency_name(consistency: ReadConsistency) -> &'static str {
    match consistency {
        ReadConsistency::Linearizable => "linearizable",
        ReadConsistency::Lease => "lease",
        ReadConsistency::Stale => "stale",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &str) -> Vec<Bytes> {
        words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    fn parse_words(line: &str) -> Result<Request, String> {
        parse(words(line)).map_err(|e| e.0)
    }

    fn error(words: &str) -> String {
        parse_words(words).unwrap_err()
    }

    #[test]
    fn errors_are_redis_errors() {
        assert_eq!(error("get"), "ERR wrong number of arguments for 'get' command");
        assert_eq!(error("GET a b"), "ERR wrong number of arguments for 'get' command");
        assert_eq!(error("foo a b"), "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
        assert_eq!(error("foo"), "ERR unknown command 'foo', with args beginning with: ");
        // SET with NX/XX/GET/KEEPTTL is parsed by the interpreter (concord_kv::redis::string).
        assert_eq!(error("set k v ex 1 px 1"), "ERR syntax error");
        assert_eq!(error("set k v ex"), "ERR syntax error");
        assert_eq!(error("set k v ex abc"), "ERR value is not an integer or out of range");
        assert_eq!(error("set k v ex 0"), "ERR invalid expire time in 'set' command");
        assert_eq!(error("set k v ex 9223372036854775807"), "ERR invalid expire time in 'set' command");
        assert_eq!(error("setex k 0 v"), "ERR invalid expire time in 'setex' command");
        assert_eq!(error("incrby k 01"), "ERR value is not an integer or out of range");
        assert_eq!(error("decrby k -9223372036854775808"), "ERR decrement would overflow");
        assert_eq!(error("mset a 1 b"), "ERR wrong number of arguments for 'mset' command");
        // EXPIRE's own errors come from the state machine's interpreter (concord_kv::redis tests).
        assert_eq!(error("client setname"), "ERR wrong number of arguments for 'client|setname' command");
        assert_eq!(error("client foo"), "ERR unknown subcommand 'foo'. Try CLIENT HELP.");
        assert_eq!(error("hello 4"), "NOPROTO unsupported protocol version");
        assert_eq!(error("hello x"), "ERR Protocol version is not an integer or out of range");
        assert_eq!(error("hello 3 setname"), "ERR Syntax error in HELLO option 'setname'");
        assert_eq!(error("scan abc"), "ERR invalid cursor");
        assert_eq!(error("scan 0 count 0"), "ERR syntax error");
        assert_eq!(error("scan 0 match"), "ERR syntax error");
        assert_eq!(error("ping a b"), "ERR wrong number of arguments for 'ping' command");
        assert_eq!(error("auth a b c"), "ERR syntax error");
        assert_eq!(
            error("consistency strong"),
            "ERR unknown consistency 'strong'; expected linearizable, lease or stale (Raft), ONE, QUORUM, \
             ALL, R <r> or W <w> (eventual mode), or DEFAULT"
        );
    }

    #[test]
    fn set_options() {
        let Ok(Request::Set(set)) = parse_words("SET k v px 1500") else { panic!() };
        assert_eq!(set.expiry, SetExpiry::AfterMs(1500));
        let Ok(Request::Set(set)) = parse_words("set k v EXAT 10") else { panic!() };
        assert_eq!(set.expiry, SetExpiry::AtUnixMs(10_000));
        // Conditions, GET and KEEPTTL run in the state machine's interpreter.
        for line in ["set k v keepttl", "SET k v xx get px 1500", "setnx k v", "getset k v"] {
            assert!(matches!(parse_words(line), Ok(Request::Redis(_))), "{line}");
        }
        assert!(matches!(parse_queued(words("set k v EX 0")), Ok(Ok(Request::Redis(_)))));
    }

    /// SET checks all options' syntax before it reads the number, as Redis does (found by
    /// `concord difftest`).
    #[test]
    fn set_option_errors_come_before_number_errors_as_in_redis() {
        assert_eq!(error("SET k v EX abc FOO"), "ERR syntax error");
        // With NX/XX/GET/KEEPTTL the interpreter parses SET (concord_kv::redis::string tests).
        assert_eq!(error("SET k v EX abc"), "ERR value is not an integer or out of range");
    }

    #[test]
    fn counters_and_keys() {
        assert_eq!(parse_words("DECRBY n 5"), Ok(Request::IncrBy { key: "n".into(), delta: -5 }));
        assert_eq!(parse_words("incr n"), Ok(Request::IncrBy { key: "n".into(), delta: 1 }));
        assert_eq!(
            parse_words("mset a 1 b 2"),
            Ok(Request::MSet(vec![("a".into(), "1".into()), ("b".into(), "2".into())]))
        );
        let Ok(Request::Scan(scan)) = parse_words("scan 353 match a* count 5 type string") else { panic!() };
        assert_eq!(scan.cursor, Some(b"a".to_vec()));
        assert_eq!((scan.pattern, scan.count), (Some("a*".into()), 5));
    }

    #[test]
    fn consistency_settings() {
        let setting = |words: &str| match parse_words(words) {
            Ok(Request::Consistency(setting)) => setting,
            other => panic!("{words}: {other:?}"),
        };
        let quorums = |r, w| Some(ConsistencySetting::Quorums { r, w });
        assert_eq!(setting("consistency"), None);
        assert_eq!(setting("consistency STALE"), Some(ConsistencySetting::Read(ReadConsistency::Stale)));
        assert_eq!(
            setting("CONSISTENCY linearizable"),
            Some(ConsistencySetting::Read(ReadConsistency::Linearizable))
        );
        assert_eq!(setting("consistency lease"), Some(ConsistencySetting::Read(ReadConsistency::Lease)));
        assert_eq!(setting("consistency one"), Some(ConsistencySetting::Level(QuorumLevel::One)));
        assert_eq!(setting("consistency Quorum"), Some(ConsistencySetting::Level(QuorumLevel::Quorum)));
        assert_eq!(setting("consistency ALL"), Some(ConsistencySetting::Level(QuorumLevel::All)));
        assert_eq!(setting("consistency default"), Some(ConsistencySetting::Default));
        assert_eq!(setting("consistency r 2"), quorums(Some(2), None));
        assert_eq!(setting("consistency W 3"), quorums(None, Some(3)));
        assert_eq!(setting("consistency R 3 W 1"), quorums(Some(3), Some(1)));
        assert_eq!(setting("consistency w 1 r 3"), quorums(Some(3), Some(1)));
        // Out of range is the server's call (it knows N); below 1 is kept as 0 for it to refuse.
        assert_eq!(setting("consistency R 0 W -4"), quorums(Some(0), Some(0)));
        assert_eq!(setting("consistency R 99"), quorums(Some(99), None));
        assert_eq!(error("consistency R"), "ERR syntax error");
        assert_eq!(error("consistency R 1 W"), "ERR syntax error");
        assert_eq!(error("consistency R 1 R 2"), "ERR syntax error");
        assert_eq!(error("consistency R 1 X 2"), "ERR syntax error");
        assert_eq!(error("consistency R 1 W 2 R 3"), "ERR syntax error");
        assert_eq!(error("consistency R two"), "ERR value is not an integer or out of range");
        assert_eq!(
            error("consistency stale lease"),
            "ERR wrong number of arguments for 'consistency' command"
        );
        assert_eq!(error("consistency ONE W 2"), "ERR wrong number of arguments for 'consistency' command");
        assert!(error("consistency two").starts_with("ERR unknown consistency 'two'; expected "));
    }

    #[test]
    fn every_table_command_parses_at_its_arity() {
        for spec in COMMANDS {
            let n = spec.arity.unsigned_abs() as usize;
            let mut args = vec![Bytes::from(spec.name)];
            // Arguments that every command accepts in these positions.
            let filler: &[&str] = match spec.name {
                "client" => &["id"],
                "acl" => &["whoami"],
                "cluster" => &["myid"],
                "slowlog" => &["len"],
                "command" => &[],
                "config" => &["get", "save"],
                "setex" | "psetex" => &["k", "10", "v"],
                "expire" | "pexpire" | "expireat" | "pexpireat" => &["k", "10"],
                "incrby" | "decrby" | "select" => &["k", "1"],
                "scan" => &["0"],
                "pubsub" => &["numpat"],
                "script" => &["flush"],
                "eval" | "eval_ro" | "evalsha" | "evalsha_ro" => &["return 1", "0"],
                // (Interpreter commands check their own arguments: only the count matters here.)
                _ => &["k", "v", "w", "x", "y"],
            };
            args.extend(
                filler
                    .iter()
                    .take(n.saturating_sub(1).max(if spec.name == "config" { 2 } else { 0 }))
                    .map(|w| Bytes::from(*w)),
            );
            if spec.name == "select" {
                args = vec![Bytes::from("select"), Bytes::from("0")];
            }
            assert!(parse(args.clone()).is_ok(), "{}: {:?}", spec.name, parse(args));
        }
    }
}

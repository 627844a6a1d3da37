//! Replies about the server itself: `INFO`, `ROLE`, `COMMAND …`, `CONFIG GET`, and the `HELP`
//! texts.
//!
//! Clients call these at startup: `redis-cli` (interactive) asks `COMMAND DOCS` for its hints,
//! `redis-benchmark` asks `CONFIG GET save` and `CONFIG GET appendonly`, redis-py's `info()`
//! parses `INFO`. The answers describe Concord honestly, in Redis's vocabulary.
//!
//! # INFO
//! Sections in redis-server 7's order, each from a real measurement:
//!
//! | section       | fields                                                                      |
//! |---------------|-----------------------------------------------------------------------------|
//! | `Server`      | `redis_version` ([`REDIS_VERSION`]), `concord_version`, `redis_mode`, `process_id`, `run_id`, `tcp_port`, `uptime_in_seconds`… |
//! | `Clients`     | `connected_clients`, `maxclients`, `blocked_clients`                       |
//! | `Memory`      | `used_memory` (= the process's resident set: Concord does not count its allocations), `used_memory_rss`, `used_memory_peak`, `total_system_memory` (Linux `/proc`), `maxmemory` 0 |
//! | `Stats`       | `total_connections_received`, `total_commands_processed`, `instantaneous_ops_per_sec`, net bytes, `rejected_connections`, `keyspace_hits`/`misses` (see [`crate::monitor`]) |
//! | `Replication` | Raft as Redis replication: see [`crate::backend::ReplicationInfo`]           |
//! | `Cluster`     | `cluster_enabled`                                                          |
//! | `Keyspace`    | `db0:keys=N,expires=M,avg_ttl=0` when the backend knows its key count and holds keys (`avg_ttl` is not tracked) |
//! | backend's     | `Raft`, `Dynamo`, `Sharding`: the node's own state                         |
//!
//! `INFO`, `INFO default`, `INFO all` and `INFO everything` give every section (Concord has none of
//! the optional ones – `commandstats`, `latencystats`, `modules`); `INFO keyspace memory` gives
//! those; names are case-insensitive.
//!
//! # CONFIG GET
//! No persistence setting of Redis's applies as such: `save` is empty; `appendonly` and
//! `appendfsync` are what the node says of its WAL (the server passes them in
//! [`crate::RespConfig::parameters`]: `appendonly yes`, `appendfsync always` when every Raft sync
//! is an fsync, `no` when it is not). `proto-max-bulk-len` is the largest key or value the store
//! takes; `databases` is 1; `slowlog-*` are the only parameters `CONFIG SET` changes.

use crate::backend::{KeyspaceInfo, ReplicationInfo, ReplicationRole};
use crate::command::{lookup, CommandRequest, CommandSpec, KeySpec, COMMANDS};
use crate::frame::Frame;
use crate::glob;
use crate::monitor::{human_bytes, ProcessMemory};
use bytes::Bytes;

/// The Redis version Concord reports in `HELLO` and `INFO`: the protocol and command behaviour it
/// follows (clients use it to pick features). 7.0, because that is what Concord's replies are
/// checked against byte for byte (Debian's redis-server 7.0 in `tests/cluster.rs` and
/// `tests/introspection.rs`); `CLIENT SETINFO` from 7.2 is accepted too, since clients send it.
pub const REDIS_VERSION: &str = "7.0.0";

/// `INFO memory`: the process's memory, or only `maxmemory` where it cannot be read.
pub fn memory_fields(memory: Option<ProcessMemory>) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    if let Some(m) = memory {
        fields.extend([
            ("used_memory", m.rss.to_string()),
            ("used_memory_human", human_bytes(m.rss)),
            ("used_memory_rss", m.rss.to_string()),
            ("used_memory_rss_human", human_bytes(m.rss)),
            ("used_memory_peak", m.peak_rss.to_string()),
            ("used_memory_peak_human", human_bytes(m.peak_rss)),
            ("total_system_memory", m.system_total.to_string()),
            ("total_system_memory_human", human_bytes(m.system_total)),
        ]);
    }
    fields.extend([
        ("maxmemory", "0".to_string()),
        ("maxmemory_human", "0B".to_string()),
        ("maxmemory_policy", "noeviction".to_string()),
        ("mem_allocator", "libc".to_string()),
    ]);
    fields
}

/// `INFO replication`, in redis-server's field names (see [`ReplicationInfo`] for the mapping),
/// and `concord_replication` saying what is underneath.
pub fn replication_fields(info: &ReplicationInfo, run_id: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| fields.push((k.to_string(), v));
    match &info.role {
        ReplicationRole::Master => {
            add("role", "master".into());
            add("connected_slaves", info.replicas.len().to_string());
            for (i, r) in info.replicas.iter().enumerate() {
                let (ip, port) = r.addr.clone().unwrap_or_else(|| ("?".into(), 0));
                add(
                    &format!("slave{i}"),
                    format!("ip={ip},port={port},state=online,offset={},id={}", r.offset, r.id),
                );
            }
        }
        ReplicationRole::Replica { master } => {
            add("role", "slave".into());
            let (host, port) = master.clone().unwrap_or_else(|| ("?".into(), 0));
            add("master_host", host);
            add("master_port", port.to_string());
            add("master_link_status", if master.is_some() { "up" } else { "down" }.into());
            add("slave_repl_offset", info.offset.to_string());
            add("slave_read_only", "1".into());
            add("connected_slaves", "0".into());
        }
    }
    add("master_replid", run_id.to_string());
    add("master_repl_offset", info.offset.to_string());
    add("concord_replication", info.model.to_string());
    fields
}

/// `INFO keyspace`: `db0` when there are keys (redis-server lists no empty database).
pub fn keyspace_fields(keyspace: Option<KeyspaceInfo>) -> Vec<(String, String)> {
    match keyspace {
        Some(k) if k.keys > 0 => {
            vec![("db0".to_string(), format!("keys={},expires={},avg_ttl=0", k.keys, k.expires))]
        }
        _ => vec![],
    }
}

/// `ROLE`: `[master, offset, [[ip, port, offset]…]]` or `[slave, host, port, state, offset]`.
pub fn role(info: &ReplicationInfo) -> Frame {
    match &info.role {
        ReplicationRole::Master => Frame::Array(vec![
            Frame::bulk("master"),
            Frame::Integer(info.offset as i64),
            Frame::Array(
                info.replicas
                    .iter()
                    .map(|r| {
                        let (ip, port) = r.addr.clone().unwrap_or_else(|| ("?".into(), 0));
                        Frame::Array(vec![
                            Frame::bulk(ip),
                            Frame::bulk(port.to_string()),
                            Frame::bulk(r.offset.to_string()),
                        ])
                    })
                    .collect(),
            ),
        ]),
        ReplicationRole::Replica { master } => {
            let (host, port) = master.clone().unwrap_or_else(|| ("?".into(), 0));
            Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk(host),
                Frame::Integer(i64::from(port)),
                // redis-server's states: `connect` while it has no master to talk to.
                Frame::bulk(if master.is_some() { "connected" } else { "connect" }),
                Frame::Integer(info.offset as i64),
            ])
        }
    }
}

/// A `HELP` reply as redis-server shapes it: a header line, then the entries, then `HELP`.
pub fn help(command: &str, entries: &[&str]) -> Frame {
    let mut lines = vec![format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")];
    lines.extend(entries.iter().map(|l| l.to_string()));
    lines.push("HELP".into());
    lines.push("    Prints this help.".into());
    Frame::Array(lines.into_iter().map(Frame::Simple).collect())
}

/// `SCRIPT HELP`: the subcommands Concord offers (not `DEBUG`), in redis-server's words.
pub const SCRIPT_HELP: &[&str] = &[
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
];

/// `CLIENT HELP`: the subcommands Concord offers, in redis-server's words.
pub const CLIENT_HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
];

/// `SLOWLOG HELP`, as redis-server's.
pub const SLOWLOG_HELP: &[&str] = &[
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
];

/// `CONFIG HELP`: what Concord's CONFIG does.
pub const CONFIG_HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value> (slowlog-log-slower-than and slowlog-max-len;",
    "    Concord's other settings are in its configuration file).",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
];

/// `INFO [section …]`: `# Name` headers and `key:value` lines, sections separated by a blank line.
/// No argument, `default`, `all` or `everything` give every section; names are case-insensitive.
pub fn info(sections: &[(String, Vec<(String, String)>)], wanted: &[Bytes]) -> String {
    let everything = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| ["default", "all", "everything"].iter().any(|a| w.eq_ignore_ascii_case(a.as_bytes())));
    let mut text = String::new();
    for (name, fields) in sections {
        if !everything && !wanted.iter().any(|w| w.eq_ignore_ascii_case(name.as_bytes())) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!("# {name}\r\n"));
        for (key, value) in fields {
            text.push_str(&format!("{key}:{value}\r\n"));
        }
    }
    text
}

/// One command's `COMMAND INFO` entry, as Redis 7 shapes it: name, arity, flags, first key, last
/// key, step, ACL categories, tips, key specifications, subcommands (each an entry of its own).
/// Sets are RESP3 sets (arrays in RESP2); an empty subcommand list is an empty set, as Redis sends.
fn command_info(spec: &CommandSpec) -> Frame {
    let (first, last, step) = spec.keys;
    let simple_set = |words: &[&str]| Frame::Set(words.iter().map(|w| Frame::simple(*w)).collect());
    let subcommands = if spec.subcommands.is_empty() {
        Frame::Set(vec![])
    } else {
        Frame::Array(spec.subcommands.iter().map(command_info).collect())
    };
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity),
        simple_set(spec.flags),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        simple_set(spec.acl),
        Frame::Set(spec.tips.iter().map(|t| Frame::bulk(*t)).collect()),
        Frame::Set(spec.key_specs_iter().map(key_spec).collect()),
        subcommands,
    ])
}

/// A key specification: Redis 7's `begin_search` / `find_keys` maps.
fn key_spec(spec: &KeySpec) -> Frame {
    let mut fields = Vec::new();
    if let Some(notes) = spec.notes {
        fields.push(("notes", Frame::bulk(notes)));
    }
    fields.push(("flags", Frame::Set(spec.flags.iter().map(|f| Frame::simple(*f)).collect())));
    if spec.unknown {
        let unknown = || Frame::map_of([("type", Frame::bulk("unknown")), ("spec", Frame::Map(vec![]))]);
        fields.push(("begin_search", unknown()));
        fields.push(("find_keys", unknown()));
        return Frame::map_of(fields);
    }
    fields.push((
        "begin_search",
        Frame::map_of([
            ("type", Frame::bulk("index")),
            ("spec", Frame::map_of([("index", Frame::Integer(spec.begin_index))])),
        ]),
    ));
    let find_keys = match spec.keynum {
        None => Frame::map_of([
            ("type", Frame::bulk("range")),
            (
                "spec",
                Frame::map_of([
                    ("lastkey", Frame::Integer(spec.last_key)),
                    ("keystep", Frame::Integer(spec.key_step)),
                    ("limit", Frame::Integer(0)),
                ]),
            ),
        ]),
        Some((keynum_index, first_key)) => Frame::map_of([
            ("type", Frame::bulk("keynum")),
            (
                "spec",
                Frame::map_of([
                    ("keynumidx", Frame::Integer(keynum_index)),
                    ("firstkey", Frame::Integer(first_key)),
                    ("keystep", Frame::Integer(spec.key_step)),
                ]),
            ),
        ]),
    };
    fields.push(("find_keys", find_keys));
    Frame::map_of(fields)
}

/// `COMMAND GETKEYS command arg …`: the keys its key spec finds, or Redis's errors.
fn get_keys(args: &[Bytes]) -> Frame {
    let invalid = || Frame::error("ERR Invalid command specified");
    let Some(mut spec) = lookup(&args[0]) else { return invalid() };
    if !spec.subcommands.is_empty() && args.len() > 1 {
        match spec.subcommand(&args[1]) {
            Some(sub) => spec = sub,
            None => return invalid(),
        }
    }
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Frame::error("ERR Invalid number of arguments specified for command");
    }
    if spec.key_spec.is_none() {
        return Frame::error("ERR The command has no key arguments");
    }
    match spec.spec_keys(args) {
        Some(keys) => {
            Frame::Array(keys.into_iter().map(|k| Frame::Bulk(Bytes::copy_from_slice(k))).collect())
        }
        None => Frame::error("ERR Invalid arguments specified for command"),
    }
}

/// One command's `COMMAND DOCS` entry: what redis-cli shows in `HELP` and in its hints.
fn command_docs(spec: &CommandSpec) -> Frame {
    let mut docs = vec![
        ("summary", Frame::bulk(spec.summary)),
        ("since", Frame::bulk(spec.since)),
        ("group", Frame::bulk(spec.group)),
    ];
    if let Some(syntax) = syntax(spec.name) {
        docs.push(("arguments", Frame::Array(arguments(syntax))));
    }
    Frame::map_of(docs)
}

/// Each command's arguments, in the notation of Redis's documentation: `[optional]`, `a|b` one
/// of, `...` repeated, `(a b)` a group, UPPERCASE a literal token, `TOKEN name` a token followed
/// by a value. Containers (CLIENT, COMMAND, CONFIG) list none.
fn syntax(command: &str) -> Option<&'static str> {
    Some(match command {
        "ping" => "[message]",
        "echo" => "message",
        "hello" => "[protover [AUTH username password] [SETNAME clientname]]",
        "auth" => "[username] password",
        "select" => "index",
        "consistency" => {
            "[LINEARIZABLE|LEASE|STALE|ONE|QUORUM|ALL|DEFAULT|([R replies] [W acknowledgements])]"
        }
        "info" => "[section ...]",
        "get" | "getrev" | "incr" | "decr" | "ttl" | "pttl" | "persist" => "key",
        "set" => {
            "key value [NX|XX] [GET] \
             [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"
        }
        "setnx" | "getset" => "key value",
        "setex" => "key seconds value",
        "psetex" => "key milliseconds value",
        "del" | "exists" | "mget" | "touch" => "key ...",
        "flushall" | "flushdb" => "[ASYNC|SYNC]",
        "incrby" => "key increment",
        "decrby" => "key decrement",
        "mset" => "(key value) ...",
        "expire" => "key seconds [NX|XX|GT|LT]",
        "pexpire" => "key milliseconds [NX|XX|GT|LT]",
        "expireat" => "key unix-time-seconds [NX|XX|GT|LT]",
        "pexpireat" => "key unix-time-milliseconds [NX|XX|GT|LT]",
        "keys" => "pattern",
        "scan" => "cursor [MATCH pattern] [COUNT count] [TYPE type]",
        "quit" | "dbsize" | "multi" | "exec" | "discard" | "asking" | "readonly" | "readwrite" | "role"
        | "time" | "randomkey" => "",
        "subscribe" => "channel ...",
        "ssubscribe" => "shardchannel ...",
        "psubscribe" => "pattern ...",
        "unsubscribe" => "[channel ...]",
        "sunsubscribe" => "[shardchannel ...]",
        "punsubscribe" => "[pattern ...]",
        "publish" => "channel message",
        "spublish" => "shardchannel message",
        _ => return None,
    })
}

/// Parse [`syntax`] notation into `COMMAND DOCS` argument maps (name, type, token, flags,
/// nested arguments).
fn arguments(syntax: &str) -> Vec<Frame> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in syntax.chars() {
        if c.is_whitespace() || "[]()|".contains(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut tokens = tokens.into_iter().peekable();
    sequence(&mut tokens)
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<String>>;

fn is_token(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_uppercase() || c == '-')
}

/// Arguments until `]`, `)`, `|` or the end.
fn sequence(tokens: &mut Tokens) -> Vec<Frame> {
    let mut args: Vec<Vec<(&'static str, Frame)>> = Vec::new();
    while let Some(token) = tokens.peek().cloned() {
        if token == "]" || token == ")" || token == "|" {
            break;
        }
        tokens.next();
        let mut arg = match token.as_str() {
            "[" | "(" => {
                let close = if token == "[" { "]" } else { ")" };
                let mut alternatives = vec![sequence(tokens)];
                while tokens.peek().is_some_and(|t| t == "|") {
                    tokens.next();
                    alternatives.push(sequence(tokens));
                }
                if tokens.peek().is_some_and(|t| t == close) {
                    tokens.next();
                }
                let mut arg = group(alternatives);
                if token == "[" {
                    add_flag(&mut arg, "optional");
                }
                arg
            }
            "..." => {
                if let Some(last) = args.last_mut() {
                    add_flag(last, "multiple");
                }
                continue;
            }
            word if is_token(word) => {
                // `TOKEN value`: one argument introduced by the token.
                match tokens.peek() {
                    Some(next) if !is_token(next) && !"[]()|".contains(next.as_str()) && next != "..." => {
                        let name = tokens.next().unwrap_or_default();
                        let mut arg = value_argument(&name);
                        arg.push(("token", Frame::bulk(word.to_string())));
                        arg
                    }
                    _ => vec![
                        ("name", Frame::bulk(word.to_lowercase())),
                        ("type", Frame::bulk("pure-token")),
                        ("token", Frame::bulk(word.to_string())),
                    ],
                }
            }
            name => value_argument(name),
        };
        if tokens.peek().is_some_and(|t| t == "...") {
            tokens.next();
            add_flag(&mut arg, "multiple");
        }
        args.push(arg);
    }
    args.into_iter().map(Frame::map_of).collect()
}

/// Several alternatives: a `oneof`; one sequence of several arguments: a `block`; one
/// argument: itself.
fn group(mut alternatives: Vec<Vec<Frame>>) -> Vec<(&'static str, Frame)> {
    if alternatives.len() == 1 && alternatives[0].len() == 1 {
        if let Some(Frame::Map(pairs)) = alternatives[0].pop() {
            return pairs
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Frame::Bulk(k) => {
                        ARGUMENT_KEYS.iter().find(|key| key.as_bytes() == k.as_ref()).map(|key| (*key, v))
                    }
                    _ => None,
                })
                .collect();
        }
    }
    let (kind, arguments) = if alternatives.len() == 1 {
        ("block", alternatives.pop().unwrap_or_default())
    } else {
        let items = alternatives
            .into_iter()
            .map(
                |seq| if seq.len() == 1 { seq.into_iter().next().unwrap_or(Frame::Null) } else { block(seq) },
            )
            .collect();
        ("oneof", items)
    };
    vec![("name", Frame::bulk(kind)), ("type", Frame::bulk(kind)), ("arguments", Frame::Array(arguments))]
}

const ARGUMENT_KEYS: [&str; 6] = ["name", "type", "token", "flags", "arguments", "key_spec_index"];

fn block(arguments: Vec<Frame>) -> Frame {
    Frame::map_of([
        ("name", Frame::bulk("block")),
        ("type", Frame::bulk("block")),
        ("arguments", Frame::Array(arguments)),
    ])
}

fn value_argument(name: &str) -> Vec<(&'static str, Frame)> {
    let kind = match name {
        "key" => "key",
        "seconds"
        | "milliseconds"
        | "unix-time-seconds"
        | "unix-time-milliseconds"
        | "increment"
        | "decrement"
        | "count"
        | "index"
        | "protover"
        | "replies"
        | "acknowledgements" => "integer",
        "pattern" => "pattern",
        _ => "string",
    };
    let mut arg = vec![("name", Frame::bulk(name.to_string())), ("type", Frame::bulk(kind))];
    if kind == "key" {
        arg.push(("key_spec_index", Frame::Integer(0)));
    }
    arg
}

fn add_flag(arg: &mut Vec<(&'static str, Frame)>, flag: &str) {
    match arg.iter_mut().find(|(k, _)| *k == "flags") {
        Some((_, Frame::Array(flags))) => flags.push(Frame::simple(flag)),
        _ => arg.push(("flags", Frame::Array(vec![Frame::simple(flag)]))),
    }
}

pub fn command(request: &CommandRequest) -> Frame {
    match request {
        CommandRequest::All => Frame::Array(COMMANDS.iter().map(command_info).collect()),
        CommandRequest::Count => Frame::Integer(COMMANDS.len() as i64),
        CommandRequest::List => Frame::Array(COMMANDS.iter().map(|s| Frame::bulk(s.name)).collect()),
        CommandRequest::Info(names) if names.is_empty() => {
            Frame::Array(COMMANDS.iter().map(command_info).collect())
        }
        CommandRequest::Info(names) => {
            Frame::Array(names.iter().map(|n| lookup(n).map_or(Frame::Null, command_info)).collect())
        }
        CommandRequest::Docs(names) => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| lookup(n)).collect()
            };
            Frame::Map(specs.into_iter().map(|s| (Frame::bulk(s.name), command_docs(s))).collect())
        }
        CommandRequest::GetKeys(args) => get_keys(args),
    }
}

/// `CONFIG GET pattern …` over `parameters` (name, value); each parameter at most once, in table
/// order. Parameter names are lowercase; patterns match case-insensitively, as in Redis.
pub fn config_get(parameters: &[(String, String)], patterns: &[Bytes]) -> Frame {
    let patterns: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
    Frame::Map(
        parameters
            .iter()
            .filter(|(name, _)| patterns.iter().any(|p| glob::matches(p, name.as_bytes())))
            .map(|(name, value)| (Frame::bulk(name.clone()), Frame::bulk(value.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_filter_case_insensitively() {
        let sections = vec![
            ("Server".to_string(), vec![("redis_version".to_string(), "7.0.0".to_string())]),
            ("Raft".to_string(), vec![("raft_role".to_string(), "leader".to_string())]),
        ];
        assert_eq!(
            info(&sections, &[]),
            "# Server\r\nredis_version:7.0.0\r\n\r\n# Raft\r\nraft_role:leader\r\n"
        );
        assert_eq!(info(&sections, &[Bytes::from("raft")]), "# Raft\r\nraft_role:leader\r\n");
        assert_eq!(info(&sections, &[Bytes::from("nosuch")]), "");
    }

    #[test]
    fn config_get_matches_globs() {
        let params = [("save", ""), ("appendonly", "no"), ("maxclients", "10")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            config_get(&params, &[Bytes::from("SAVE")]),
            Frame::Map(vec![(Frame::bulk("save"), Frame::bulk(""))])
        );
        let Frame::Map(all) = config_get(&params, &[Bytes::from("*"), Bytes::from("save")]) else { panic!() };
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn docs_arguments_follow_the_syntax() {
        let bulk = |s: &str| Frame::bulk(s.to_string());
        let args = arguments("key seconds [NX|XX] [EX seconds] (k v) ...");
        assert_eq!(args.len(), 5);
        assert_eq!(
            args[0],
            Frame::Map(vec![
                (bulk("name"), bulk("key")),
                (bulk("type"), bulk("key")),
                (bulk("key_spec_index"), Frame::Integer(0))
            ])
        );
        let Frame::Map(oneof) = &args[2] else { panic!() };
        assert_eq!(oneof[1], (bulk("type"), bulk("oneof")));
        assert_eq!(oneof[3], (bulk("flags"), Frame::Array(vec![Frame::simple("optional")])));
        let Frame::Map(ex) = &args[3] else { panic!() };
        assert!(ex.contains(&(bulk("token"), bulk("EX"))) && ex.contains(&(bulk("type"), bulk("integer"))));
        let Frame::Map(pairs) = &args[4] else { panic!() };
        assert_eq!(pairs[1], (bulk("type"), bulk("block")));
        assert_eq!(pairs[3], (bulk("flags"), Frame::Array(vec![Frame::simple("multiple")])));
        // Every command's syntax parses and mentions at least its words.
        for spec in COMMANDS {
            if let Some(text) = syntax(spec.name) {
                let n = arguments(text).len();
                assert_eq!(n == 0, text.is_empty(), "{}", spec.name);
            }
        }
    }

    #[test]
    fn command_count_and_info() {
        assert_eq!(command(&CommandRequest::Count), Frame::Integer(COMMANDS.len() as i64));
        let Frame::Array(infos) =
            command(&CommandRequest::Info(vec![Bytes::from("GET"), Bytes::from("nope")]))
        else {
            panic!()
        };
        assert_eq!(infos[1], Frame::Null);
        let Frame::Array(get) = &infos[0] else { panic!() };
        assert_eq!(get[..2], [Frame::bulk("get"), Frame::Integer(2)]);
    }
}

//! The command table: every command Concord understands, one [`CommandSpec`] a row.
//!
//! A row holds what Redis publishes about a command – its arity (exact if positive, a minimum if
//! negative, the name included), key positions, flags, group, the version that introduced it and
//! a summary. The parser ([`super::parse`]) checks arity against it, and `COMMAND`, `COMMAND INFO`
//! and `COMMAND DOCS` ([`crate::introspect`]) answer from it. It is data, so it lives apart from
//! the parsing code in [`super`], which it would otherwise fill.

/// One row of the command table.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// Lowercase, as Redis names commands (`client|setname` for subcommands).
    pub name: &'static str,
    /// Redis convention: `n > 0` exactly n arguments including the name, `n < 0` at least -n.
    pub arity: i64,
    pub flags: &'static [&'static str],
    /// Position of the first key, the last key (-1: the last argument) and the step; 0 0 0 for none.
    pub keys: (i64, i64, i64),
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys, group, since, summary }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "fast"];
const CONN: &[&str] = &["noscript", "loading", "stale", "fast"];

/// Every command Concord understands (top-level commands; subcommands are listed under their
/// container in `COMMAND` replies).
pub const COMMANDS: &[CommandSpec] = &[
    spec("ping", -1, CONN, NO_KEYS, "connection", "1.0.0", "Returns the server's liveliness response."),
    spec("echo", 2, CONN, NO_KEYS, "connection", "1.0.0", "Returns the given string."),
    spec(
        "hello",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "6.0.0",
        "Handshakes with the server: protocol version, authentication, client name.",
    ),
    spec("auth", -2, CONN, NO_KEYS, "connection", "1.0.0", "Authenticates the connection."),
    spec(
        "acl",
        -2,
        &["sentinel"],
        NO_KEYS,
        "server",
        "6.0.0",
        "A container for access list commands (SETUSER, DELUSER, WHOAMI, LIST, USERS); users have roles.",
    ),
    spec(
        "select",
        2,
        CONN,
        NO_KEYS,
        "connection",
        "1.0.0",
        "Changes the selected database (Concord has only database 0).",
    ),
    spec("quit", -1, CONN, NO_KEYS, "connection", "1.0.0", "Closes the connection."),
    spec(
        "client",
        -2,
        &["sentinel"],
        NO_KEYS,
        "connection",
        "2.4.0",
        "A container for client connection commands (SETNAME, GETNAME, ID, SETINFO, INFO).",
    ),
    spec(
        "consistency",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "concord",
        "Concord: sets (or shows) this connection's consistency: linearizable, lease or stale reads (Raft), \
         or R and W quorums (eventual mode).",
    ),
    spec(
        "info",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns information and statistics about the server, including its Raft state.",
    ),
    spec(
        "command",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
    ),
    spec(
        "config",
        -2,
        &["admin", "noscript", "loading", "stale"],
        NO_KEYS,
        "server",
        "2.0.0",
        "A container for server configuration commands (GET only).",
    ),
    spec(
        "dbsize",
        1,
        &["readonly"],
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns the number of keys in the database (counts by scanning).",
    ),
    spec("get", 2, R, ONE_KEY, "string", "1.0.0", "Returns the string value of a key."),
    spec(
        "set",
        -3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    ),
    spec(
        "setnx",
        3,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
    ),
    spec("setex", 4, W, ONE_KEY, "string", "2.0.0", "Sets the string value and expiration time of a key."),
    spec(
        "psetex",
        4,
        W,
        ONE_KEY,
        "string",
        "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key.",
    ),
    spec(
        "getset",
        3,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    spec(
        "del",
        -2,
        &["write"],
        ALL_KEYS,
        "generic",
        "1.0.0",
        "Deletes one or more keys (atomically: one transaction).",
    ),
    spec("exists", -2, R, ALL_KEYS, "generic", "1.0.0", "Determines whether one or more keys exist."),
    spec(
        "incr",
        2,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Increments the integer value of a key by one.",
    ),
    spec(
        "decr",
        2,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Decrements the integer value of a key by one.",
    ),
    spec(
        "incrby",
        3,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Increments the integer value of a key by a number.",
    ),
    spec(
        "decrby",
        3,
        &["write", "denyoom", "fast"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Decrements a number from the integer value of a key.",
    ),
    spec(
        "mget",
        -2,
        R,
        ALL_KEYS,
        "string",
        "1.0.0",
        "Atomically returns the string values of one or more keys.",
    ),
    spec(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    spec("expire", -3, WF, ONE_KEY, "generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    spec(
        "pexpire",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
    ),
    spec(
        "expireat",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    spec(
        "pexpireat",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    spec("ttl", 2, R, ONE_KEY, "generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    spec("pttl", 2, R, ONE_KEY, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    spec("persist", 2, WF, ONE_KEY, "generic", "2.2.0", "Removes the expiration time of a key."),
    spec(
        "keys",
        2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern (bounded: refused above the configured count).",
    ),
    spec(
        "scan",
        -2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "2.8.0",
        "Iterates over the key names in the database (the cursor encodes the next key).",
    ),
    spec(
        "multi",
        1,
        CONN,
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Starts a transaction (Concord: one atomic KV transaction).",
    ),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Executes all commands in a transaction.",
    ),
    spec("discard", 1, CONN, NO_KEYS, "transactions", "2.0.0", "Discards a transaction."),
];

/// The table row for `name` (case-insensitive).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

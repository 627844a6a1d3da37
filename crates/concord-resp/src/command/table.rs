//! The command table: every command Concord understands, one [`CommandSpec`] a row.
//!
//! A row holds what Redis publishes about a command – its arity (exact if positive, a minimum if
//! negative, the name included), key positions and Redis 7 key spec, flags, ACL categories, tips,
//! group, the version that introduced it, a summary, and a container's subcommands. Flags,
//! categories, tips and key specs are copied from redis-server 7's `COMMAND INFO` (and
//! `tests/cluster.rs` checks them against a running one): cluster clients route by them. The parser ([`super::parse`]) checks arity against it, and `COMMAND`, `COMMAND INFO`
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
    /// ACL categories as Redis 7 reports them (`@read`, `@string`, `@fast`, …).
    pub acl: &'static [&'static str],
    /// Command tips (`request_policy:multi_shard`, `nondeterministic_output`, …): how a cluster
    /// client should fan the command out and merge replies.
    pub tips: &'static [&'static str],
    /// The (first) key specification (Redis 7), if the command takes keys: for most commands a
    /// range starting at argument 1; others list more in [`Self::more_key_specs`].
    pub key_spec: Option<KeySpec>,
    /// Key specs after the first (`SMOVE`'s destination, `SINTERSTORE`'s sources).
    pub more_key_specs: &'static [KeySpec],
    /// A container's subcommands (`client|setname`, …): the ones Concord supports.
    pub subcommands: &'static [CommandSpec],
}

/// A Redis 7 key specification: `begin_search` an index, `find_keys` a range (`lastkey`,
/// `keystep`, `limit 0`) or a key count (`keynum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Redis's note on the spec, if it has one.
    pub notes: Option<&'static str>,
    /// Access flags: `RO`, `RW`, `OW`, `RM`, then `access`, `update`, `insert`, `delete`, ….
    pub flags: &'static [&'static str],
    /// `begin_search`'s index: where this spec's keys start (1 for most commands).
    pub begin_index: i64,
    /// The last key relative to the first (0: only the first; -1: up to the last argument).
    pub last_key: i64,
    /// Distance between keys (2 for `MSET key value …`).
    pub key_step: i64,
    /// `find_keys` of type `keynum` instead of `range` (`SINTERCARD numkeys key …`): the key count
    /// is the argument at `begin_index + .0`, the keys start at `begin_index + .1`.
    pub keynum: Option<(i64, i64)>,
    /// `begin_search` and `find_keys` of type `unknown` (`SORT`'s `BY`/`GET` and `STORE` keys):
    /// the keys are found by code (`concord_kv::redis::sort::key_positions`), not by the spec.
    pub unknown: bool,
}

impl KeySpec {
    /// A `range` spec starting at argument `begin_index`.
    pub const fn range(
        flags: &'static [&'static str],
        begin_index: i64,
        last_key: i64,
        key_step: i64,
    ) -> KeySpec {
        KeySpec { notes: None, flags, begin_index, last_key, key_step, keynum: None, unknown: false }
    }

    /// A `keynum` spec: the count at `begin_index + keynum_index`, keys from `begin_index + first_key`.
    pub const fn keynum(
        flags: &'static [&'static str],
        begin_index: i64,
        keynum_index: i64,
        first_key: i64,
        key_step: i64,
    ) -> KeySpec {
        KeySpec {
            notes: None,
            flags,
            begin_index,
            last_key: 0,
            key_step,
            keynum: Some((keynum_index, first_key)),
            unknown: false,
        }
    }

    /// An `unknown` spec with Redis's note on why.
    pub const fn unknown(flags: &'static [&'static str], notes: &'static str) -> KeySpec {
        KeySpec {
            notes: Some(notes),
            flags,
            begin_index: 0,
            last_key: 0,
            key_step: 0,
            keynum: None,
            unknown: true,
        }
    }

    /// The positions in `args` (the command name at 0) of this spec's keys; `None` if the
    /// arguments do not hold them (a key count that is not a number, or too large).
    pub fn positions(&self, args: &[impl AsRef<[u8]>]) -> Option<Vec<usize>> {
        if self.unknown {
            return Some(vec![]);
        }
        let n = args.len() as i64;
        let step = self.key_step.max(1) as usize;
        match self.keynum {
            None => {
                let last =
                    if self.last_key < 0 { n + self.last_key } else { self.begin_index + self.last_key };
                Some((self.begin_index..=last.min(n - 1)).step_by(step).map(|i| i as usize).collect())
            }
            Some((keynum_index, first_key)) => {
                let count = args.get((self.begin_index + keynum_index) as usize)?;
                let count: i64 = std::str::from_utf8(count.as_ref()).ok()?.parse().ok()?;
                let first = self.begin_index + first_key;
                if count <= 0 || first + (count - 1) * step as i64 >= n {
                    return None;
                }
                Some((0..count as usize).map(|k| first as usize + k * step).collect())
            }
        }
    }
}

impl CommandSpec {
    const fn acl(self, acl: &'static [&'static str]) -> CommandSpec {
        CommandSpec { acl, ..self }
    }

    const fn tips(self, tips: &'static [&'static str]) -> CommandSpec {
        CommandSpec { tips, ..self }
    }

    const fn key_spec(self, flags: &'static [&'static str]) -> CommandSpec {
        let (first, last, step) = self.keys;
        // The legacy (first, last, step) triple and the spec say the same thing: last is
        // relative to the first key in a spec (0 = one key), absolute in the triple.
        let last_key = if last < 0 { last } else { last - first };
        CommandSpec { key_spec: Some(KeySpec::range(flags, first, last_key, step)), ..self }
    }

    /// Key specs of other shapes than [`Self::key_spec`]'s (several, or `keynum`), as Redis lists
    /// them.
    const fn key_specs(self, specs: &'static [KeySpec]) -> CommandSpec {
        match specs.split_first() {
            Some((first, more)) => CommandSpec { key_spec: Some(*first), more_key_specs: more, ..self },
            None => self,
        }
    }

    /// Every key spec, in Redis's order.
    pub fn key_specs_iter(&self) -> impl Iterator<Item = &KeySpec> {
        self.key_spec.iter().chain(self.more_key_specs)
    }

    /// The keys of `args` (the command name first) by the key specs, in spec order; `None` if
    /// the command has no key spec or the arguments do not hold its keys.
    pub fn spec_keys<'a, A: AsRef<[u8]>>(&self, args: &'a [A]) -> Option<Vec<&'a [u8]>> {
        self.key_spec?;
        if matches!(self.name, "sort" | "sort_ro") {
            let positions = concord_kv::redis::sort::key_positions(args);
            return Some(positions.into_iter().filter_map(|i| args.get(i)).map(|a| a.as_ref()).collect());
        }
        let mut keys = Vec::new();
        for spec in self.key_specs_iter() {
            keys.extend(spec.positions(args)?.into_iter().map(|i| args[i].as_ref()));
        }
        Some(keys)
    }

    const fn notes(self, notes: &'static str) -> CommandSpec {
        match self.key_spec {
            Some(spec) => CommandSpec { key_spec: Some(KeySpec { notes: Some(notes), ..spec }), ..self },
            None => self,
        }
    }

    const fn subcommands(self, subcommands: &'static [CommandSpec]) -> CommandSpec {
        CommandSpec { subcommands, ..self }
    }

    /// The subcommand row `container|name` (case-insensitive), if Concord supports it.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        let prefix = self.name.len() + 1;
        self.subcommands.iter().find(|sub| sub.name.as_bytes()[prefix..].eq_ignore_ascii_case(name))
    }
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
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group,
        since,
        summary,
        acl: &[],
        tips: &[],
        key_spec: None,
        more_key_specs: &[],
        subcommands: &[],
    }
}

/// A subcommand row (`client|setname`): Redis documents no summary per subcommand here.
const fn sub(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
) -> CommandSpec {
    spec(name, arity, flags, NO_KEYS, "", "", "").acl(acl)
}

/// `OBJECT ENCODING|IDLETIME|FREQ|REFCOUNT key`: the key is argument 2.
const fn object_sub(name: &'static str) -> CommandSpec {
    spec(name, 3, &["readonly"], (2, 2, 1), "", "", "")
        .acl(&["@keyspace", "@read", "@slow"])
        .tips(NONDETERMINISTIC)
        .key_spec(&["RO"])
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
// Flags, as Redis 7 reports them.
const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const WF: &[&str] = &["write", "fast"];
const LSF: &[&str] = &["loading", "stale", "fast"];
const NO_AUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"];
const NLS: &[&str] = &["noscript", "loading", "stale"];
const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const LS: &[&str] = &["loading", "stale"];
const ADMIN_LS: &[&str] = &["admin", "loading", "stale"];
const STALE: &[&str] = &["stale"];
const PUBSUB_SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUBSUB_FAST: &[&str] = &["pubsub", "loading", "stale", "fast"];
const PUBSUB_LS: &[&str] = &["pubsub", "loading", "stale"];
// ACL categories.
const FAST_CONN: &[&str] = &["@fast", "@connection"];
const SLOW: &[&str] = &["@slow"];
const SLOW_CONN: &[&str] = &["@slow", "@connection"];
const SLOW_SCRIPTING: &[&str] = &["@slow", "@scripting"];
const PUBSUB_SLOW: &[&str] = &["@pubsub", "@slow"];
const SLOW_ADMIN: &[&str] = &["@admin", "@slow", "@dangerous"];
const ADMIN_CONN: &[&str] = &["@admin", "@slow", "@dangerous", "@connection"];
const READ_STRING_FAST: &[&str] = &["@read", "@string", "@fast"];
const WRITE_STRING_FAST: &[&str] = &["@write", "@string", "@fast"];
const WRITE_STRING_SLOW: &[&str] = &["@write", "@string", "@slow"];
const KEYSPACE_WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];
const KEYSPACE_READ_FAST: &[&str] = &["@keyspace", "@read", "@fast"];
// Tips.
const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];
const NONDETERMINISTIC_ORDER: &[&str] = &["nondeterministic_output_order"];
const ALL_NODES_ALL_SUCCEEDED: &[&str] = &["request_policy:all_nodes", "response_policy:all_succeeded"];
// Key-spec flags.
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const OW_UPDATE: &[&str] = &["OW", "update"];
const NOT_KEY: &[&str] = &["not_key"];

/// Every command Concord understands (top-level commands; subcommands are listed under their
/// container in `COMMAND` replies). Flags, ACL categories, tips and key specs are Redis 7's, so
/// that cluster clients route Concord's commands as they route Redis's.
pub const COMMANDS: &[CommandSpec] = &[
    spec("ping", -1, &["fast"], NO_KEYS, "connection", "1.0.0", "Returns the server's liveliness response.")
        .acl(FAST_CONN)
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("echo", 2, LSF, NO_KEYS, "connection", "1.0.0", "Returns the given string.").acl(FAST_CONN),
    spec(
        "hello",
        -1,
        NO_AUTH,
        NO_KEYS,
        "connection",
        "6.0.0",
        "Handshakes with the server: protocol version, authentication, client name.",
    )
    .acl(FAST_CONN),
    spec("auth", -2, NO_AUTH, NO_KEYS, "connection", "1.0.0", "Authenticates the connection.").acl(FAST_CONN),
    spec(
        "acl",
        -2,
        &[],
        NO_KEYS,
        "server",
        "6.0.0",
        "A container for access list commands (SETUSER, DELUSER, WHOAMI, LIST, USERS); users have roles.",
    )
    .acl(SLOW)
    .subcommands(&[
        sub("acl|setuser", -3, ADMIN, SLOW_ADMIN),
        sub("acl|deluser", -3, ADMIN, SLOW_ADMIN),
        sub("acl|whoami", 2, NLS, SLOW),
        sub("acl|list", 2, ADMIN, SLOW_ADMIN),
        sub("acl|users", 2, ADMIN, SLOW_ADMIN),
    ]),
    spec(
        "select",
        2,
        LSF,
        NO_KEYS,
        "connection",
        "1.0.0",
        "Changes the selected database (Concord has only database 0).",
    )
    .acl(FAST_CONN),
    spec("quit", -1, NO_AUTH, NO_KEYS, "connection", "1.0.0", "Closes the connection.").acl(FAST_CONN),
    spec(
        "client",
        -2,
        &[],
        NO_KEYS,
        "connection",
        "2.4.0",
        "A container for client connection commands (SETNAME, GETNAME, ID, SETINFO, INFO, LIST, KILL, HELP).",
    )
    .acl(SLOW)
    .subcommands(&[
        sub("client|setname", 3, NLS, SLOW_CONN),
        sub("client|getname", 2, NLS, SLOW_CONN),
        sub("client|id", 2, NLS, SLOW_CONN),
        sub("client|setinfo", 4, NLS, SLOW_CONN),
        sub("client|info", 2, NLS, SLOW_CONN).tips(NONDETERMINISTIC),
        sub("client|list", -2, ADMIN, ADMIN_CONN).tips(NONDETERMINISTIC),
        sub("client|kill", -3, ADMIN, ADMIN_CONN),
        sub("client|help", 2, LS, SLOW_CONN),
        sub("client|tracking", -3, NLS, SLOW_CONN),
        sub("client|caching", 3, NLS, SLOW_CONN),
        sub("client|getredir", 2, NLS, SLOW_CONN),
        sub("client|trackinginfo", 2, NLS, SLOW_CONN),
    ]),
    spec(
        "consistency",
        -1,
        LSF,
        NO_KEYS,
        "connection",
        "concord",
        "Concord: sets (or shows) this connection's consistency: linearizable, lease or stale reads (Raft), \
         or R and W quorums (eventual mode).",
    )
    .acl(FAST_CONN),
    spec(
        "info",
        -1,
        LS,
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns information and statistics about the server, including its Raft state.",
    )
    .acl(&["@slow", "@dangerous"])
    .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
    spec("command", -1, LS, NO_KEYS, "server", "2.8.13", "Returns detailed information about all commands.")
        .acl(SLOW_CONN)
        .tips(NONDETERMINISTIC_ORDER)
        .subcommands(&[
            sub("command|count", 2, LS, SLOW_CONN),
            sub("command|list", -2, LS, SLOW_CONN).tips(NONDETERMINISTIC_ORDER),
            sub("command|getkeys", -4, LS, SLOW_CONN),
            sub("command|info", -2, LS, SLOW_CONN).tips(NONDETERMINISTIC_ORDER),
            sub("command|docs", -2, LS, SLOW_CONN).tips(NONDETERMINISTIC_ORDER),
        ]),
    spec(
        "config",
        -2,
        &[],
        NO_KEYS,
        "server",
        "2.0.0",
        "A container for server configuration commands (GET, SET of the slowlog settings, RESETSTAT, HELP).",
    )
    .acl(SLOW)
    .subcommands(&[
        sub("config|get", -3, ADMIN, SLOW_ADMIN),
        sub("config|set", -4, ADMIN, SLOW_ADMIN).tips(ALL_NODES_ALL_SUCCEEDED),
        sub("config|resetstat", 2, ADMIN, SLOW_ADMIN),
        sub("config|help", 2, LS, SLOW),
    ]),
    spec(
        "slowlog",
        -2,
        &[],
        NO_KEYS,
        "server",
        "2.2.12",
        "A container for slow log commands (GET, LEN, RESET, HELP): commands that took longer than \
         slowlog-log-slower-than microseconds, replication included.",
    )
    .acl(SLOW)
    .subcommands(&[
        sub("slowlog|get", -2, ADMIN_LS, SLOW_ADMIN)
            .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
        sub("slowlog|len", 2, ADMIN_LS, SLOW_ADMIN).tips(&[
            "request_policy:all_nodes",
            "response_policy:agg_sum",
            "nondeterministic_output",
        ]),
        sub("slowlog|reset", 2, ADMIN_LS, SLOW_ADMIN).tips(ALL_NODES_ALL_SUCCEEDED),
        sub("slowlog|help", 2, LS, SLOW),
    ]),
    spec(
        "role",
        1,
        &["noscript", "loading", "stale", "fast"],
        NO_KEYS,
        "server",
        "2.8.12",
        "Returns the replication role: the Raft leader is a master, its followers are replicas.",
    )
    .acl(&["@admin", "@fast", "@dangerous"]),
    spec("time", 1, LSF, NO_KEYS, "server", "2.6.0", "Returns the server time.")
        .acl(&["@fast"])
        .tips(NONDETERMINISTIC),
    spec(
        "dbsize",
        1,
        R,
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns the number of keys in the database (counts by scanning).",
    )
    .acl(KEYSPACE_READ_FAST)
    .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    spec("get", 2, R, ONE_KEY, "string", "1.0.0", "Returns the string value of a key.")
        .acl(READ_STRING_FAST)
        .key_spec(RO_ACCESS),
    spec(
        "getrev",
        2,
        R,
        ONE_KEY,
        "string",
        "concord",
        "Concord: the string value of a key and its mod revision (0 when absent), for caches that \
         version what they hold.",
    )
    .acl(READ_STRING_FAST)
    .key_spec(RO_ACCESS),
    spec(
        "set",
        -3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    )
    .acl(WRITE_STRING_SLOW)
    .key_spec(&["RW", "access", "update", "variable_flags"])
    .notes("RW and ACCESS due to the optional `GET` argument"),
    spec(
        "setnx",
        3,
        WDF,
        ONE_KEY,
        "string",
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
    )
    .acl(WRITE_STRING_FAST)
    .key_spec(&["OW", "insert"]),
    spec("setex", 4, W, ONE_KEY, "string", "2.0.0", "Sets the string value and expiration time of a key.")
        .acl(WRITE_STRING_SLOW)
        .key_spec(OW_UPDATE),
    spec(
        "psetex",
        4,
        W,
        ONE_KEY,
        "string",
        "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key.",
    )
    .acl(WRITE_STRING_SLOW)
    .key_spec(OW_UPDATE),
    spec(
        "getset",
        3,
        WDF,
        ONE_KEY,
        "string",
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.",
    )
    .acl(WRITE_STRING_FAST)
    .key_spec(RW_ACCESS_UPDATE),
    spec(
        "del",
        -2,
        &["write"],
        ALL_KEYS,
        "generic",
        "1.0.0",
        "Deletes one or more keys (atomically: one transaction).",
    )
    .acl(&["@keyspace", "@write", "@slow"])
    .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
    .key_spec(&["RM", "delete"]),
    spec("exists", -2, R, ALL_KEYS, "generic", "1.0.0", "Determines whether one or more keys exist.")
        .acl(KEYSPACE_READ_FAST)
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .key_spec(&["RO"]),
    spec("incr", 2, WDF, ONE_KEY, "string", "1.0.0", "Increments the integer value of a key by one.")
        .acl(WRITE_STRING_FAST)
        .key_spec(RW_ACCESS_UPDATE),
    spec("decr", 2, WDF, ONE_KEY, "string", "1.0.0", "Decrements the integer value of a key by one.")
        .acl(WRITE_STRING_FAST)
        .key_spec(RW_ACCESS_UPDATE),
    spec("incrby", 3, WDF, ONE_KEY, "string", "1.0.0", "Increments the integer value of a key by a number.")
        .acl(WRITE_STRING_FAST)
        .key_spec(RW_ACCESS_UPDATE),
    spec(
        "decrby",
        3,
        WDF,
        ONE_KEY,
        "string",
        "1.0.0",
        "Decrements a number from the integer value of a key.",
    )
    .acl(WRITE_STRING_FAST)
    .key_spec(RW_ACCESS_UPDATE),
    spec(
        "mget",
        -2,
        R,
        ALL_KEYS,
        "string",
        "1.0.0",
        "Atomically returns the string values of one or more keys.",
    )
    .acl(READ_STRING_FAST)
    .tips(&["request_policy:multi_shard"])
    .key_spec(RO_ACCESS),
    spec(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
    )
    .acl(WRITE_STRING_SLOW)
    .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"])
    .key_spec(OW_UPDATE),
    spec("expire", -3, WF, ONE_KEY, "generic", "1.0.0", "Sets the expiration time of a key in seconds.")
        .acl(KEYSPACE_WRITE_FAST)
        .key_spec(RW_UPDATE),
    spec(
        "pexpire",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
    )
    .acl(KEYSPACE_WRITE_FAST)
    .key_spec(RW_UPDATE),
    spec(
        "expireat",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
    )
    .acl(KEYSPACE_WRITE_FAST)
    .key_spec(RW_UPDATE),
    spec(
        "pexpireat",
        -3,
        WF,
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    )
    .acl(KEYSPACE_WRITE_FAST)
    .key_spec(RW_UPDATE),
    spec("ttl", 2, R, ONE_KEY, "generic", "1.0.0", "Returns the expiration time in seconds of a key.")
        .acl(KEYSPACE_READ_FAST)
        .tips(NONDETERMINISTIC)
        .key_spec(RO_ACCESS),
    spec("pttl", 2, R, ONE_KEY, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.")
        .acl(KEYSPACE_READ_FAST)
        .tips(NONDETERMINISTIC)
        .key_spec(RO_ACCESS),
    spec("persist", 2, WF, ONE_KEY, "generic", "2.2.0", "Removes the expiration time of a key.")
        .acl(KEYSPACE_WRITE_FAST)
        .key_spec(RW_UPDATE),
    spec(
        "keys",
        2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern (bounded: refused above the configured count).",
    )
    .acl(&["@keyspace", "@read", "@slow", "@dangerous"])
    .tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    spec(
        "scan",
        -2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "2.8.0",
        "Iterates over the key names in the database (the cursor encodes the next key).",
    )
    .acl(&["@keyspace", "@read", "@slow"])
    .tips(&["nondeterministic_output", "request_policy:special"]),
    spec(
        "multi",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Starts a transaction (Concord: one atomic KV transaction).",
    )
    .acl(&["@fast", "@transaction"]),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Executes all commands in a transaction.",
    )
    .acl(&["@slow", "@transaction"]),
    spec(
        "discard",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        NO_KEYS,
        "transactions",
        "2.0.0",
        "Discards a transaction.",
    )
    .acl(&["@fast", "@transaction"]),
    spec(
        "cluster",
        -2,
        &[],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "A container for Redis Cluster commands (the sharded cluster's view: SLOTS, SHARDS, NODES, INFO, …).",
    )
    .acl(SLOW)
    .subcommands(&[
        sub("cluster|countkeysinslot", 3, STALE, SLOW),
        sub("cluster|getkeysinslot", 4, STALE, SLOW).tips(NONDETERMINISTIC),
        sub("cluster|info", 2, STALE, SLOW).tips(NONDETERMINISTIC),
        sub("cluster|keyslot", 3, STALE, SLOW),
        sub("cluster|myid", 2, STALE, SLOW),
        sub("cluster|nodes", 2, STALE, SLOW).tips(NONDETERMINISTIC),
        sub("cluster|slots", 2, STALE, SLOW).tips(NONDETERMINISTIC),
        sub("cluster|shards", 2, STALE, SLOW).tips(NONDETERMINISTIC),
        sub("cluster|replicas", 3, &["admin", "stale"], SLOW_ADMIN).tips(NONDETERMINISTIC),
        sub("cluster|slaves", 3, &["admin", "stale"], SLOW_ADMIN).tips(NONDETERMINISTIC),
        sub("cluster|help", 2, LS, SLOW),
    ]),
    spec(
        "asking",
        1,
        &["fast"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Signals that a cluster client is following an -ASK redirect (Concord answers -TRYAGAIN instead).",
    )
    .acl(FAST_CONN),
    spec(
        "readonly",
        1,
        LSF,
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Lets this connection's reads be served at stale consistency, by a replica too.",
    )
    .acl(FAST_CONN),
    spec(
        "readwrite",
        1,
        LSF,
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Ends READONLY: reads are served at this connection's consistency again.",
    )
    .acl(FAST_CONN),
    // Keyspace and data types, run by the state machine's interpreter (`concord_kv::redis`).
    // Rows generated from redis-server 7 by tools/command-rows.py.
    spec("type", 2, &["readonly", "fast"], (1, 1, 1), "generic", "1.0.0", "Determine the type stored at key")
        .acl(&["@keyspace", "@read", "@fast"])
        .key_spec(&["RO"]),
    spec(
        "hset",
        -4,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "hash",
        "2.0.0",
        "Set the string value of a hash field",
    )
    .acl(&["@write", "@hash", "@fast"])
    .key_spec(&["RW", "update"]),
    spec(
        "hmset",
        -4,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "hash",
        "2.0.0",
        "Set multiple hash fields to multiple values",
    )
    .acl(&["@write", "@hash", "@fast"])
    .key_spec(&["RW", "update"]),
    spec(
        "hsetnx",
        4,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "hash",
        "2.0.0",
        "Set the value of a hash field, only if the field does not exist",
    )
    .acl(&["@write", "@hash", "@fast"])
    .key_spec(&["RW", "insert"]),
    spec("hdel", -3, &["write", "fast"], (1, 1, 1), "hash", "2.0.0", "Delete one or more hash fields")
        .acl(&["@write", "@hash", "@fast"])
        .key_spec(&["RW", "delete"]),
    spec(
        "hincrby",
        4,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "hash",
        "2.0.0",
        "Increment the integer value of a hash field by the given number",
    )
    .acl(&["@write", "@hash", "@fast"])
    .key_spec(&["RW", "access", "update"]),
    spec("hget", 3, &["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", "Get the value of a hash field")
        .acl(&["@read", "@hash", "@fast"])
        .key_spec(&["RO", "access"]),
    spec(
        "hmget",
        -3,
        &["readonly", "fast"],
        (1, 1, 1),
        "hash",
        "2.0.0",
        "Get the values of all the given hash fields",
    )
    .acl(&["@read", "@hash", "@fast"])
    .key_spec(&["RO", "access"]),
    spec("hlen", 2, &["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", "Get the number of fields in a hash")
        .acl(&["@read", "@hash", "@fast"])
        .key_spec(&["RO"]),
    spec("hexists", 3, &["readonly", "fast"], (1, 1, 1), "hash", "2.0.0", "Determine if a hash field exists")
        .acl(&["@read", "@hash", "@fast"])
        .key_spec(&["RO"]),
    spec(
        "hstrlen",
        3,
        &["readonly", "fast"],
        (1, 1, 1),
        "hash",
        "3.2.0",
        "Get the length of the value of a hash field",
    )
    .acl(&["@read", "@hash", "@fast"])
    .key_spec(&["RO"]),
    spec("hkeys", 2, &["readonly"], (1, 1, 1), "hash", "2.0.0", "Get all the fields in a hash")
        .acl(&["@read", "@hash", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("hvals", 2, &["readonly"], (1, 1, 1), "hash", "2.0.0", "Get all the values in a hash")
        .acl(&["@read", "@hash", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("hgetall", 2, &["readonly"], (1, 1, 1), "hash", "2.0.0", "Get all the fields and values in a hash")
        .acl(&["@read", "@hash", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("lpush", -3, &["write", "denyoom", "fast"], (1, 1, 1), "list", "1.0.0", "Prepend one or multiple elements to a list")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "insert"]),
    spec("rpush", -3, &["write", "denyoom", "fast"], (1, 1, 1), "list", "1.0.0", "Append one or multiple elements to a list")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "insert"]),
    spec("lpushx", -3, &["write", "denyoom", "fast"], (1, 1, 1), "list", "2.2.0", "Prepend an element to a list, only if the list exists")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "insert"]),
    spec("rpushx", -3, &["write", "denyoom", "fast"], (1, 1, 1), "list", "2.2.0", "Append an element to a list, only if the list exists")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "insert"]),
    spec("lpop", -2, &["write", "fast"], (1, 1, 1), "list", "1.0.0", "Remove and get the first elements in a list")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "access", "delete"]),
    spec("rpop", -2, &["write", "fast"], (1, 1, 1), "list", "1.0.0", "Remove and get the last elements in a list")
        .acl(&["@write", "@list", "@fast"])
        .key_spec(&["RW", "access", "delete"]),
    spec("llen", 2, &["readonly", "fast"], (1, 1, 1), "list", "1.0.0", "Get the length of a list")
        .acl(&["@read", "@list", "@fast"])
        .key_spec(&["RO"]),
    spec("lrange", 4, &["readonly"], (1, 1, 1), "list", "1.0.0", "Get a range of elements from a list")
        .acl(&["@read", "@list", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("lindex", 3, &["readonly"], (1, 1, 1), "list", "1.0.0", "Get an element from a list by its index")
        .acl(&["@read", "@list", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("lset", 4, &["write", "denyoom"], (1, 1, 1), "list", "1.0.0", "Set the value of an element in a list by its index")
        .acl(&["@write", "@list", "@slow"])
        .key_spec(&["RW", "update"]),
    spec("ltrim", 4, &["write"], (1, 1, 1), "list", "1.0.0", "Trim a list to the specified range")
        .acl(&["@write", "@list", "@slow"])
        .key_spec(&["RW", "delete"]),
    spec("lrem", 4, &["write"], (1, 1, 1), "list", "1.0.0", "Remove elements from a list")
        .acl(&["@write", "@list", "@slow"])
        .key_spec(&["RW", "delete"]),
    spec("linsert", 5, &["write", "denyoom"], (1, 1, 1), "list", "2.2.0", "Insert an element before or after another element in a list")
        .acl(&["@write", "@list", "@slow"])
        .key_spec(&["RW", "insert"]),
    // Two key specs (source, destination): written by hand from redis-server's COMMAND INFO.
    spec("lmove", 5, &["write", "denyoom"], (1, 2, 1), "list", "6.2.0", "Pop an element from a list, push it to another list and return it")
        .acl(&["@write", "@list", "@slow"])
        .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    spec("rpoplpush", 3, &["write", "denyoom"], (1, 2, 1), "list", "1.2.0", "Remove the last element in a list, prepend it to another list and return it")
        .acl(&["@write", "@list", "@slow"])
        .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    spec("blmove", 6, &["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", "6.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available")
        .acl(&["@write", "@list", "@slow", "@blocking"])
        .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    spec("brpoplpush", 4, &["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", "2.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available")
        .acl(&["@write", "@list", "@slow", "@blocking"])
        .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["RW", "insert"], 2, 0, 1)]),
    // Keys counted by an argument (`numkeys`): a `keynum` key spec, by hand.
    spec("lmpop", -4, &["write", "movablekeys"], (0, 0, 0), "list", "7.0.0", "Pop elements from a list")
        .acl(&["@write", "@list", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RW", "access", "delete"], 1, 0, 1, 1)]),
    spec("blmpop", -5, &["write", "blocking", "movablekeys"], (0, 0, 0), "list", "7.0.0", "Pop elements from a list, or block until one is available")
        .acl(&["@write", "@list", "@slow", "@blocking"])
        .key_specs(&[KeySpec::keynum(&["RW", "access", "delete"], 2, 0, 1, 1)]),
    spec("zunionstore", -4, &["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)]),
    spec("zinterstore", -4, &["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)]),
    spec("zdiffstore", -4, &["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted-set", "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)]),
    spec("zunion", -3, &["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", "Add multiple sorted sets")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)]),
    spec("zinter", -3, &["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", "Intersect multiple sorted sets")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)]),
    spec("zdiff", -3, &["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "6.2.0", "Subtract multiple sorted sets")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)]),
    spec("zintercard", -3, &["readonly", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)]),
    spec("zrangestore", -5, &["write", "denyoom"], (1, 2, 1), "sorted-set", "6.2.0", "Store a range of members from sorted set into another key")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, 0, 1)]),
    spec("zmpop", -4, &["write", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", "Remove and return members with scores in a sorted set")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_specs(&[KeySpec::keynum(&["RW", "access", "delete"], 1, 0, 1, 1)]),
    spec("bzmpop", -5, &["write", "blocking", "movablekeys"], (0, 0, 0), "sorted-set", "7.0.0", "Remove and return members with scores in a sorted set or block until one is available")
        .acl(&["@write", "@sortedset", "@slow", "@blocking"])
        .key_specs(&[KeySpec::keynum(&["RW", "access", "delete"], 2, 0, 1, 1)]),
    spec("lcs", -3, &["readonly"], (1, 2, 1), "string", "7.0.0", "Find longest common substring")
        .acl(&["@read", "@string", "@slow"])
        .key_spec(&["RO", "access"]),
    // SORT's BY/GET keys come from the sorted key's content and STORE may be anywhere: Redis
    // declares them `unknown` and finds the keys by code (`sortGetKeys`), as `spec_keys` does.
    spec("sort", -2, &["write", "denyoom", "movablekeys"], (1, 1, 1), "generic", "1.0.0", "Sort the elements in a list, set or sorted set")
        .acl(&["@write", "@set", "@sortedset", "@list", "@slow", "@dangerous"])
        .key_specs(&[
            KeySpec::range(&["RO", "access"], 1, 0, 1),
            KeySpec::unknown(&["RO", "access"], "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort"),
            KeySpec::unknown(&["OW", "update"], "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array"),
        ]),
    spec("sort_ro", -2, &["readonly", "movablekeys"], (1, 1, 1), "generic", "7.0.0", "Sort the elements in a list, set or sorted set. Read-only variant of SORT.")
        .acl(&["@read", "@set", "@sortedset", "@list", "@slow", "@dangerous"])
        .key_specs(&[
            KeySpec::range(&["RO", "access"], 1, 0, 1),
            KeySpec::unknown(&["RO", "access"], "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort"),
        ]),
    spec("lpos", -3, &["readonly"], (1, 1, 1), "list", "6.0.6", "Return the index of matching elements on a list")
        .acl(&["@read", "@list", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zadd", -4, &["write", "denyoom", "fast"], (1, 1, 1), "sorted-set", "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists")
        .acl(&["@write", "@sortedset", "@fast"])
        .key_spec(&["RW", "update"]),
    spec("zrem", -3, &["write", "fast"], (1, 1, 1), "sorted-set", "1.2.0", "Remove one or more members from a sorted set")
        .acl(&["@write", "@sortedset", "@fast"])
        .key_spec(&["RW", "delete"]),
    spec("zscore", 3, &["readonly", "fast"], (1, 1, 1), "sorted-set", "1.2.0", "Get the score associated with the given member in a sorted set")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zmscore", -3, &["readonly", "fast"], (1, 1, 1), "sorted-set", "6.2.0", "Get the score associated with the given members in a sorted set")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zincrby", 4, &["write", "denyoom", "fast"], (1, 1, 1), "sorted-set", "1.2.0", "Increment the score of a member in a sorted set")
        .acl(&["@write", "@sortedset", "@fast"])
        .key_spec(&["RW", "access", "update"]),
    spec("zcard", 2, &["readonly", "fast"], (1, 1, 1), "sorted-set", "1.2.0", "Get the number of members in a sorted set")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO"]),
    spec("zcount", 4, &["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", "Count the members in a sorted set with scores within the given values")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zrange", -4, &["readonly"], (1, 1, 1), "sorted-set", "1.2.0", "Return a range of members in a sorted set")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zrangebyscore", -4, &["readonly"], (1, 1, 1), "sorted-set", "1.0.5", "Return a range of members in a sorted set, by score")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zrevrange", -4, &["readonly"], (1, 1, 1), "sorted-set", "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zrevrangebyscore", -4, &["readonly"], (1, 1, 1), "sorted-set", "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zrangebylex", -4, &["readonly"], (1, 1, 1), "sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zrevrangebylex", -4, &["readonly"], (1, 1, 1), "sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.")
        .acl(&["@read", "@sortedset", "@slow"])
        .key_spec(&["RO", "access"]),
    spec("zlexcount", 4, &["readonly", "fast"], (1, 1, 1), "sorted-set", "2.8.9", "Count the number of members in a sorted set between a given lexicographical range")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zrank", 3, &["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", "Determine the index of a member in a sorted set")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zrevrank", 3, &["readonly", "fast"], (1, 1, 1), "sorted-set", "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low")
        .acl(&["@read", "@sortedset", "@fast"])
        .key_spec(&["RO", "access"]),
    spec("zpopmin", -2, &["write", "fast"], (1, 1, 1), "sorted-set", "5.0.0", "Remove and return members with the lowest scores in a sorted set")
        .acl(&["@write", "@sortedset", "@fast"])
        .key_spec(&["RW", "access", "delete"]),
    spec("zpopmax", -2, &["write", "fast"], (1, 1, 1), "sorted-set", "5.0.0", "Remove and return members with the highest scores in a sorted set")
        .acl(&["@write", "@sortedset", "@fast"])
        .key_spec(&["RW", "access", "delete"]),
    spec("zremrangebyrank", 4, &["write"], (1, 1, 1), "sorted-set", "2.0.0", "Remove all members in a sorted set within the given indexes")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_spec(&["RW", "delete"]),
    spec("zremrangebyscore", 4, &["write"], (1, 1, 1), "sorted-set", "1.2.0", "Remove all members in a sorted set within the given scores")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_spec(&["RW", "delete"]),
    spec("zremrangebylex", 4, &["write"], (1, 1, 1), "sorted-set", "2.8.9", "Remove all members in a sorted set between the given lexicographical range")
        .acl(&["@write", "@sortedset", "@slow"])
        .key_spec(&["RW", "delete"]),
    spec("zrandmember", -2, &["readonly"], (1, 1, 1), "sorted-set", "6.2.0", "Get one or multiple random elements from a sorted set")
        .acl(&["@read", "@sortedset", "@slow"])
        .tips(&["nondeterministic_output"])
        .key_spec(&["RO", "access"]),
    spec("zscan", -3, &["readonly"], (1, 1, 1), "sorted-set", "2.8.0", "Incrementally iterate sorted sets elements and associated scores")
        .acl(&["@read", "@sortedset", "@slow"])
        .tips(&["nondeterministic_output"])
        .key_spec(&["RO", "access"]),    spec("blpop", -3, &["write", "noscript", "blocking"], (1, -2, 1), "list", "2.0.0", "Remove and get the first element in a list, or block until one is available")
        .acl(&["@write", "@list", "@slow", "@blocking"])
        .key_spec(&["RW", "access", "delete"]),
    spec("brpop", -3, &["write", "noscript", "blocking"], (1, -2, 1), "list", "2.0.0", "Remove and get the last element in a list, or block until one is available")
        .acl(&["@write", "@list", "@slow", "@blocking"])
        .key_spec(&["RW", "access", "delete"]),
    spec("bzpopmin", -3, &["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted-set", "5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available")
        .acl(&["@write", "@sortedset", "@fast", "@blocking"])
        .key_spec(&["RW", "access", "delete"]),
    spec("bzpopmax", -3, &["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted-set", "5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available")
        .acl(&["@write", "@sortedset", "@fast", "@blocking"])
        .key_spec(&["RW", "access", "delete"]),
    // Pub/Sub (see `crate::pubsub`): delivered on every node of the cluster, at most once.
    spec(
        "subscribe",
        -2,
        PUBSUB_SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels.",
    )
    .acl(PUBSUB_SLOW),
    spec(
        "psubscribe",
        -2,
        PUBSUB_SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
    )
    .acl(PUBSUB_SLOW),
    spec(
        "unsubscribe",
        -1,
        PUBSUB_SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Stops listening to messages posted to channels.",
    )
    .acl(PUBSUB_SLOW),
    spec(
        "punsubscribe",
        -1,
        PUBSUB_SUB,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
    )
    .acl(PUBSUB_SLOW),
    spec(
        "publish",
        3,
        PUBSUB_FAST,
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Posts a message to a channel, on every node of the cluster; replies with this node's receivers.",
    )
    .acl(&["@pubsub", "@fast"]),
    spec("pubsub", -2, &[], NO_KEYS, "pubsub", "2.8.0", "A container for Pub/Sub commands.")
        .acl(SLOW)
        .subcommands(&[
            sub("pubsub|channels", -2, PUBSUB_LS, PUBSUB_SLOW),
            sub("pubsub|numsub", -2, PUBSUB_LS, PUBSUB_SLOW),
            sub("pubsub|numpat", 2, PUBSUB_LS, PUBSUB_SLOW),
            sub("pubsub|shardchannels", -2, PUBSUB_LS, PUBSUB_SLOW),
            sub("pubsub|shardnumsub", -2, PUBSUB_LS, PUBSUB_SLOW),
            sub("pubsub|help", 2, LS, SLOW),
        ]),
    spec(
        "ssubscribe",
        -2,
        PUBSUB_SUB,
        ALL_KEYS,
        "pubsub",
        "7.0.0",
        "Listens for messages published to shard channels.",
    )
    .acl(PUBSUB_SLOW)
    .key_spec(NOT_KEY),
    spec(
        "sunsubscribe",
        -1,
        PUBSUB_SUB,
        ALL_KEYS,
        "pubsub",
        "7.0.0",
        "Stops listening to messages posted to shard channels.",
    )
    .acl(PUBSUB_SLOW)
    .key_spec(NOT_KEY),
    spec(
        "spublish",
        3,
        PUBSUB_FAST,
        ONE_KEY,
        "pubsub",
        "7.0.0",
        "Posts a message to a shard channel, on every node of the cluster.",
    )
    .acl(&["@pubsub", "@fast"])
    .key_spec(NOT_KEY),
    // Sets, and the rest of the hashes (tools/command-rows.py; the key specs of SMOVE, the
    // STOREs and SINTERCARD by hand, from redis-server's COMMAND INFO).
    spec("smove", 4, &["write", "fast"], (1, 2, 1), "set", "1.0.0", "Move a member from one set to another")
        .acl(&["@write", "@set", "@fast"])
        .key_specs(&[
            KeySpec::range(&["RW", "access", "delete"], 1, 0, 1),
            KeySpec::range(&["RW", "insert"], 2, 0, 1),
        ]),
    spec(
        "sinterstore",
        -3,
        &["write", "denyoom"],
        (1, -1, 1),
        "set",
        "1.0.0",
        "Intersect multiple sets and store the resulting set in a key",
    )
    .acl(&["@write", "@set", "@slow"])
    .key_specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    spec(
        "sunionstore",
        -3,
        &["write", "denyoom"],
        (1, -1, 1),
        "set",
        "1.0.0",
        "Add multiple sets and store the resulting set in a key",
    )
    .acl(&["@write", "@set", "@slow"])
    .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    spec(
        "sdiffstore",
        -3,
        &["write", "denyoom"],
        (1, -1, 1),
        "set",
        "1.0.0",
        "Subtract multiple sets and store the resulting set in a key",
    )
    .acl(&["@write", "@set", "@slow"])
    .key_specs(&[KeySpec::range(&["OW", "update"], 1, 0, 1), KeySpec::range(&["RO", "access"], 2, -1, 1)]),
    spec(
        "sintercard",
        -3,
        &["readonly", "movablekeys"],
        (0, 0, 0),
        "set",
        "7.0.0",
        "Intersect multiple sets and return the cardinality of the result",
    )
    .acl(&["@read", "@set", "@slow"])
    .key_specs(&[KeySpec::keynum(&["RO", "access"], 1, 0, 1, 1)]),
    spec(
        "sadd",
        -3,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "set",
        "1.0.0",
        "Add one or more members to a set",
    )
    .acl(&["@write", "@set", "@fast"])
    .key_spec(&["RW", "insert"]),
    spec("srem", -3, &["write", "fast"], (1, 1, 1), "set", "1.0.0", "Remove one or more members from a set")
        .acl(&["@write", "@set", "@fast"])
        .key_spec(&["RW", "delete"]),
    spec(
        "spop",
        -2,
        &["write", "fast"],
        (1, 1, 1),
        "set",
        "1.0.0",
        "Remove and return one or multiple random members from a set",
    )
    .acl(&["@write", "@set", "@fast"])
    .tips(&["nondeterministic_output"])
    .key_spec(&["RW", "access", "delete"]),
    spec("smembers", 2, &["readonly"], (1, 1, 1), "set", "1.0.0", "Get all the members in a set")
        .acl(&["@read", "@set", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec(
        "sismember",
        3,
        &["readonly", "fast"],
        (1, 1, 1),
        "set",
        "1.0.0",
        "Determine if a given value is a member of a set",
    )
    .acl(&["@read", "@set", "@fast"])
    .key_spec(&["RO"]),
    spec(
        "smismember",
        -3,
        &["readonly", "fast"],
        (1, 1, 1),
        "set",
        "6.2.0",
        "Returns the membership associated with the given elements for a set",
    )
    .acl(&["@read", "@set", "@fast"])
    .key_spec(&["RO", "access"]),
    spec("scard", 2, &["readonly", "fast"], (1, 1, 1), "set", "1.0.0", "Get the number of members in a set")
        .acl(&["@read", "@set", "@fast"])
        .key_spec(&["RO"]),
    spec(
        "srandmember",
        -2,
        &["readonly"],
        (1, 1, 1),
        "set",
        "1.0.0",
        "Get one or multiple random members from a set",
    )
    .acl(&["@read", "@set", "@slow"])
    .tips(&["nondeterministic_output"])
    .key_spec(&["RO", "access"]),
    spec("sinter", -2, &["readonly"], (1, -1, 1), "set", "1.0.0", "Intersect multiple sets")
        .acl(&["@read", "@set", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("sunion", -2, &["readonly"], (1, -1, 1), "set", "1.0.0", "Add multiple sets")
        .acl(&["@read", "@set", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("sdiff", -2, &["readonly"], (1, -1, 1), "set", "1.0.0", "Subtract multiple sets")
        .acl(&["@read", "@set", "@slow"])
        .tips(&["nondeterministic_output_order"])
        .key_spec(&["RO", "access"]),
    spec("sscan", -3, &["readonly"], (1, 1, 1), "set", "2.8.0", "Incrementally iterate Set elements")
        .acl(&["@read", "@set", "@slow"])
        .tips(&["nondeterministic_output"])
        .key_spec(&["RO", "access"]),
    spec(
        "hincrbyfloat",
        4,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "hash",
        "2.6.0",
        "Increment the float value of a hash field by the given amount",
    )
    .acl(&["@write", "@hash", "@fast"])
    .key_spec(&["RW", "access", "update"]),
    spec(
        "hrandfield",
        -2,
        &["readonly"],
        (1, 1, 1),
        "hash",
        "6.2.0",
        "Get one or multiple random fields from a hash",
    )
    .acl(&["@read", "@hash", "@slow"])
    .tips(&["nondeterministic_output"])
    .key_spec(&["RO", "access"]),
    spec(
        "hscan",
        -3,
        &["readonly"],
        (1, 1, 1),
        "hash",
        "2.8.0",
        "Incrementally iterate hash fields and associated values",
    )
    .acl(&["@read", "@hash", "@slow"])
    .tips(&["nondeterministic_output"])
    .key_spec(&["RO", "access"]),
    spec(
        "getdel",
        2,
        &["write", "fast"],
        (1, 1, 1),
        "string",
        "6.2.0",
        "Get the value of a key and delete the key",
    )
    .acl(&["@write", "@string", "@fast"])
    .key_spec(&["RW", "access", "delete"]),
    spec(
        "getex",
        -2,
        &["write", "fast"],
        (1, 1, 1),
        "string",
        "6.2.0",
        "Get the value of a key and optionally set its expiration",
    )
    .acl(&["@write", "@string", "@fast"])
    .key_spec(&["RW", "access", "update"])
    .notes("RW and UPDATE because it changes the TTL"),
    spec(
        "msetnx",
        -3,
        &["write", "denyoom"],
        (1, -1, 2),
        "string",
        "1.0.1",
        "Set multiple keys to multiple values, only if none of the keys exist",
    )
    .acl(&["@write", "@string", "@slow"])
    .tips(&["request_policy:multi_shard", "response_policy:agg_min"])
    .key_spec(&["OW", "insert"]),
    spec(
        "incrbyfloat",
        3,
        &["write", "denyoom", "fast"],
        (1, 1, 1),
        "string",
        "2.6.0",
        "Increment the float value of a key by the given amount",
    )
    .acl(&["@write", "@string", "@fast"])
    .key_spec(&["RW", "access", "update"]),
    spec("append", 3, &["write", "denyoom", "fast"], (1, 1, 1), "string", "2.0.0", "Append a value to a key")
        .acl(&["@write", "@string", "@fast"])
        .key_spec(&["RW", "insert"]),
    spec(
        "strlen",
        2,
        &["readonly", "fast"],
        (1, 1, 1),
        "string",
        "2.2.0",
        "Get the length of the value stored in a key",
    )
    .acl(&["@read", "@string", "@fast"])
    .key_spec(&["RO"]),
    spec(
        "getrange",
        4,
        &["readonly"],
        (1, 1, 1),
        "string",
        "2.4.0",
        "Get a substring of the string stored at a key",
    )
    .acl(&["@read", "@string", "@slow"])
    .key_spec(&["RO", "access"]),
    spec(
        "substr",
        4,
        &["readonly"],
        (1, 1, 1),
        "string",
        "1.0.0",
        "Get a substring of the string stored at a key",
    )
    .acl(&["@read", "@string", "@slow"])
    .key_spec(&["RO", "access"]),
    spec(
        "setrange",
        4,
        &["write", "denyoom"],
        (1, 1, 1),
        "string",
        "2.2.0",
        "Overwrite part of a string at key starting at the specified offset",
    )
    .acl(&["@write", "@string", "@slow"])
    .key_spec(&["RW", "update"]),
    spec(
        "unlink",
        -2,
        &["write", "fast"],
        (1, -1, 1),
        "generic",
        "4.0.0",
        "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.",
    )
    .acl(&["@keyspace", "@write", "@fast"])
    .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
    .key_spec(&["RM", "delete"]),
    // rename: 2 key specs – write by hand: [{'flags': ['RW', 'access', 'delete'], 'begin_search': {'type': 'index', 'spec': {'index': 1}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}, {'flags': ['OW', 'update'], 'begin_search': {'type': 'index', 'spec': {'index': 2}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}]
    // renamenx: 2 key specs – write by hand: [{'flags': ['RW', 'access', 'delete'], 'begin_search': {'type': 'index', 'spec': {'index': 1}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}, {'flags': ['OW', 'insert'], 'begin_search': {'type': 'index', 'spec': {'index': 2}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}]
    // copy: 2 key specs – write by hand: [{'flags': ['RO', 'access'], 'begin_search': {'type': 'index', 'spec': {'index': 1}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}, {'flags': ['OW', 'update'], 'begin_search': {'type': 'index', 'spec': {'index': 2}}, 'find_keys': {'type': 'range', 'spec': {'lastkey': 0, 'keystep': 1, 'limit': 0}}}]
    spec(
        "expiretime",
        2,
        &["readonly", "fast"],
        (1, 1, 1),
        "generic",
        "7.0.0",
        "Get the expiration Unix timestamp for a key",
    )
    .acl(&["@keyspace", "@read", "@fast"])
    .key_spec(&["RO", "access"]),
    spec(
        "pexpiretime",
        2,
        &["readonly", "fast"],
        (1, 1, 1),
        "generic",
        "7.0.0",
        "Get the expiration Unix timestamp for a key in milliseconds",
    )
    .acl(&["@keyspace", "@read", "@fast"])
    .key_spec(&["RO", "access"]),
    spec(
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        (1, -1, 1),
        "transactions",
        "2.2.0",
        "Watch the given keys to determine execution of the MULTI/EXEC block",
    )
    .acl(&["@fast", "@transaction"])
    .key_spec(&["RO"]),
    spec(
        "unwatch",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        (0, 0, 0),
        "transactions",
        "2.2.0",
        "Forget about all watched keys",
    )
    .acl(&["@fast", "@transaction"]),
    spec("object", -2, &[], NO_KEYS, "generic", "2.2.3", "A container for object introspection commands")
        .acl(SLOW)
        .subcommands(&[
            object_sub("object|encoding"),
            object_sub("object|idletime"),
            object_sub("object|freq"),
            sub("object|help", 2, &["loading", "stale"], &["@keyspace", "@slow"]),
            object_sub("object|refcount"),
        ]),
    // The node's script cache (`crate::scripts`); `SCRIPT DEBUG` is not offered.
    spec("script", -2, &[], NO_KEYS, "scripting", "2.6.0", "A container for Lua scripts management commands")
        .acl(SLOW)
        .subcommands(&[
            sub("script|help", 2, LS, SLOW_SCRIPTING),
            sub("script|exists", -3, &["noscript"], SLOW_SCRIPTING)
                .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
            sub("script|kill", 2, &["noscript", "allow_busy"], SLOW_SCRIPTING)
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            sub("script|flush", -2, &["noscript"], SLOW_SCRIPTING).tips(ALL_NODES_ALL_SUCCEEDED),
            sub("script|load", 3, &["noscript", "stale"], SLOW_SCRIPTING).tips(ALL_NODES_ALL_SUCCEEDED),
        ]),
    spec("flushall", -1, &["write"], NO_KEYS, "server", "1.0.0", "Remove all keys from all databases")
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("flushdb", -1, &["write"], NO_KEYS, "server", "1.0.0", "Remove all keys from the current database")
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("randomkey", 1, &["readonly"], NO_KEYS, "generic", "1.0.0", "Return a random key from the keyspace")
        .acl(&["@keyspace", "@read", "@slow"])
        .tips(&["request_policy:all_shards", "nondeterministic_output"]),
    spec(
        "touch",
        -2,
        &["readonly", "fast"],
        ALL_KEYS,
        "generic",
        "3.2.1",
        "Alters the last access time of a key(s). Returns the number of existing keys specified.",
    )
    .acl(&["@keyspace", "@read", "@fast"])
    .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
    .key_spec(&["RO"]),
    spec("rename", 3, &["write"], (1, 2, 1), "generic", "1.0.0", "Rename a key")
        .acl(&["@keyspace", "@write", "@slow"])
        .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["OW", "update"], 2, 0, 1)]),
    spec(
        "renamenx",
        3,
        &["write", "fast"],
        (1, 2, 1),
        "generic",
        "1.0.0",
        "Rename a key, only if the new key does not exist",
    )
    .acl(&["@keyspace", "@write", "@fast"])
    .key_specs(&[KeySpec::range(&["RW", "access", "delete"], 1, 0, 1), KeySpec::range(&["OW", "insert"], 2, 0, 1)]),
    spec("copy", -3, &["write", "denyoom"], (1, 2, 1), "generic", "6.2.0", "Copy a key")
        .acl(&["@keyspace", "@write", "@slow"])
        .key_specs(&[KeySpec::range(&["RO", "access"], 1, 0, 1), KeySpec::range(&["OW", "update"], 2, 0, 1)]),
    // Scripting (concord_kv::redis::script): keys counted by `numkeys`, as Redis describes them.
    spec(
        "eval",
        -3,
        &["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"],
        NO_KEYS,
        "scripting",
        "2.6.0",
        "Execute a Lua script server side",
    )
    .acl(&["@slow", "@scripting"])
    .key_specs(&[KeySpec { notes: Some("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"), ..KeySpec::keynum(&["RW", "access", "update"], 2, 0, 1, 1) }]),
    spec(
        "evalsha",
        -3,
        &["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"],
        NO_KEYS,
        "scripting",
        "2.6.0",
        "Execute a Lua script server side",
    )
    .acl(&["@slow", "@scripting"])
    .key_specs(&[KeySpec::keynum(&["RW", "access", "update"], 2, 0, 1, 1)]),
    spec(
        "eval_ro",
        -3,
        &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"],
        NO_KEYS,
        "scripting",
        "7.0.0",
        "Execute a read-only Lua script server side",
    )
    .acl(&["@slow", "@scripting"])
    .key_specs(&[KeySpec { notes: Some("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"), ..KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1) }]),
    spec(
        "evalsha_ro",
        -3,
        &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"],
        NO_KEYS,
        "scripting",
        "7.0.0",
        "Execute a read-only Lua script server side",
    )
    .acl(&["@slow", "@scripting"])
    .key_specs(&[KeySpec::keynum(&["RO", "access"], 2, 0, 1, 1)]),
];

/// Redis Cluster's subcommands that Concord does not offer, with Redis's arity (checked first, as
/// Redis does): they change the slot map node by node, which Concord's metadata group does.
pub const CLUSTER_UNSUPPORTED: &[(&str, i64)] = &[
    ("addslots", -3),
    ("addslotsrange", -4),
    ("bumpepoch", 2),
    ("count-failure-reports", 3),
    ("delslots", -3),
    ("delslotsrange", -4),
    ("failover", -2),
    ("flushslots", 2),
    ("forget", 3),
    ("links", 2),
    ("meet", -4),
    ("replicate", 3),
    ("reset", -2),
    ("saveconfig", 2),
    ("set-config-epoch", 3),
    ("setslot", -4),
];

/// The table row for `name` (case-insensitive).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

//! # The Lua sandbox that runs `EVAL` scripts inside the replicated state machine
//!
//! Redis runs a Lua 5.1 script atomically: nothing else runs while it does, and every `redis.call`
//! it makes sees the effects of the ones before. Concord gets the same atomicity by running the
//! script *in the state machine*: the log entry carries the script's body, keys and arguments, and
//! every replica runs [`run`] when it applies that entry, with `call` executing each `redis.call`
//! against its store. That only works if the script computes the same thing on every replica – so
//! this module is, above all, a **sandbox for determinism**:
//!
//! * **No clock, no I/O, no modules.** Only Lua's `base`, `table`, `string`, `math` and `coroutine`
//!   libraries are loaded; `os`, `io`, `debug`, `package`, `require`, `dofile`, `loadfile`,
//!   `print`, `setfenv`, `getfenv`, `newproxy` and `gcinfo` are absent (reading them is the error
//!   below). `loadstring`/`load` compile text only (a binary chunk could corrupt memory) into the
//!   same sandbox. `collectgarbage` accepts only `"collect"` and `"step"` and answers 0: the other
//!   options report heap sizes, which depend on the build.
//! * **Randomness is a fixed sequence.** `math.random` is Redis's (`rand48`), reseeded with 0 at
//!   the start of every script, as Redis 6 did – so the first `math.random()` is 0.17082803611217
//!   on every replica and in every run. `math.randomseed(n)` works and is deterministic too.
//! * **Addresses never show.** `tostring` of a table, function or coroutine answers
//!   `table: 0x00000001`, numbered in the order the script first printed them, not the heap
//!   address (which differs between processes). One address-dependence remains and is documented
//!   rather than fixed: `pairs()` over a table *keyed by tables or functions* visits them in an
//!   address-dependent order. Keys that are strings, numbers or booleans (all that come from Redis)
//!   iterate identically everywhere.
//! * **Every script gets a fresh interpreter**, so nothing one script does can leak into the
//!   next (Redis shares one state and guards it with read-only tables). Globals are still read-only
//!   as in Redis 7, for compatibility: `x = 1` fails with `Attempt to modify a readonly table`, and
//!   reading an undefined global fails with `Script attempted to access nonexistent global variable
//!   'x'`. Library tables (`string`, `redis`, …) refuse *new* fields; overwriting an existing one
//!   only affects that script's own run.
//!
//! ## The budget: deterministic time and memory limits
//! Redis stops a runaway script with `SCRIPT KILL`, a decision taken by a wall clock – on one
//! node. Here every replica must stop a script at the same instruction, so time is counted in
//! **Lua VM instructions**: a hook fires every [`HOOK_INSTRUCTIONS`] instructions, and once a
//! script has run more than [`Budget::instructions`] it is stopped with
//! `ERR Script killed by the instruction budget: ...`. The kill cannot be caught: `pcall`,
//! `xpcall` and `coroutine.resume` re-raise it. Memory is capped by [`Budget::memory_bytes`]
//! (`ERR Script killed: out of memory ...`); a script may catch an allocation failure with
//! `pcall` (as in any Lua) and carry on within the limit. Work done by `redis.call` itself is not
//! counted as instructions – the commands have their own limits.
//!
//! A script that fails – an error, a kill – keeps the writes its `redis.call`s made before the
//! failure, exactly as in Redis (scripts are atomic, not transactional). Because the failure point
//! is the same on every replica, so is what was kept.
//!
//! ## Lua and Redis values
//! Both directions follow Redis 7's conversion rules (the tests pin them against redis-server):
//!
//! | Redis reply → Lua (`redis.call`) | RESP2 (default)      | after `redis.setresp(3)` |
//! |----------------------------------|----------------------|--------------------------|
//! | integer                          | number               | number                   |
//! | bulk string                      | string               | string                   |
//! | null bulk / null array           | `false`              | `nil`                    |
//! | array / set                      | table (array)        | table / `{set={k=true}}` |
//! | map                              | flat table           | `{map={k=v}}`            |
//! | double                           | string (`%.17g`)     | `{double=n}`             |
//! | status                           | `{ok="..."}`         | `{ok="..."}`             |
//! | error                            | `{err="..."}` (`redis.pcall`); raised by `redis.call` |
//!
//! | Lua → Redis reply (the script's result) |                                                 |
//! |-----------------------------------------|-------------------------------------------------|
//! | number                                  | integer, truncated toward zero (`3.99` → 3)     |
//! | string                                  | bulk string                                     |
//! | `true` / `false` / `nil`                | 1 / null / null; after `redis.setresp(3)`: boolean / boolean / null |
//! | `{err=s}` / `{ok=s}`                    | error / status (`\r\n` become spaces)           |
//! | `{double=n}`, `{map=t}`, `{set=t}`      | double, map, set                                |
//! | other table                             | array of `t[1]`, `t[2]`, … up to the first nil  |
//!
//! Errors a script raises reach the client as Redis 7 words them: `ERR user_script:1: boom script:
//! <sha1>, on @user_script:1.`; an error from `redis.call` keeps its own code (`WRONGTYPE ...
//! script: ...`).
//!
//! ## What is refused
//! `cjson`, `cmsgpack`, `struct` and `bit` (Redis's bundled C libraries) are not provided;
//! `redis.log` accepts Redis's arguments and discards the message (a state machine has nowhere to
//! log it on every replica); `redis.breakpoint`/`redis.debug` are the no-ops they are outside the
//! debugger; `redis.set_repl` and `redis.replicate_commands` are accepted and change nothing
//! (a Concord script is always replicated whole). Commands that make no sense inside a script
//! (`EVAL`, `MULTI`, `WATCH`, `SUBSCRIBE`, …) answer `This Redis command is not allowed from
//! script`, as in Redis.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mlua::{
    chunk::ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState,
};
use sha1::{Digest, Sha1};

use super::{format_double, Reply};

/// The hook fires every this many VM instructions: the granularity of the budget. Lower would
/// stop runaway scripts more precisely and slow every script down (each firing is a call into
/// Rust); at 1000 the cost is well under 1 %.
pub const HOOK_INSTRUCTIONS: u32 = 1000;

/// The Redis version a script sees in `redis.REDIS_VERSION` (the one `INFO` reports).
pub const REDIS_VERSION: &str = "7.0.0";

/// How much a script may use. Like [`KvLimits`](crate::KvLimits), this is cluster configuration:
/// replicas with different budgets would stop a script at different points and diverge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most Lua VM instructions one script may run (counted in steps of [`HOOK_INSTRUCTIONS`]).
    pub instructions: u64,
    /// Most bytes the script's Lua heap may hold (the fresh interpreter itself takes ~30 KiB).
    pub memory_bytes: usize,
}

impl Default for Budget {
    /// 100 million instructions is roughly 0.3–1 s of Lua: far more than any lock, rate limiter or
    /// queue script needs, short enough that a runaway loop holds up its shard's log briefly.
    /// 64 MiB of heap is enough for scripts that build large replies.
    fn default() -> Self {
        Budget { instructions: 100_000_000, memory_bytes: 64 * 1024 * 1024 }
    }
}

/// The lowercase hex SHA-1 of a script body: its name for `EVALSHA` and `SCRIPT LOAD`.
pub fn sha1hex(body: &[u8]) -> String {
    Sha1::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// Commands a script may not call, as in Redis (flag `noscript`): they nest scripts or
/// transactions, block, or change the connection rather than the data.
pub fn refused_in_scripts(name: &[u8]) -> bool {
    const REFUSED: &[&str] = &[
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "script",
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
        "monitor",
        "sync",
        "psync",
        "client",
        "hello",
        "auth",
        "select",
        "reset",
        "quit",
        "shutdown",
        "fcall",
        "fcall_ro",
        "function",
        // Blocking pops that Redis 7.0 flags `noscript` (BLMPOP and BZMPOP are allowed, and do
        // not block: an empty list answers nil).
        "blpop",
        "brpop",
        "brpoplpush",
        "blmove",
        "bzpopmin",
        "bzpopmax",
    ];
    REFUSED.iter().any(|r| r.as_bytes().eq_ignore_ascii_case(name))
}

/// Runs one script and returns its reply.
///
/// `keys` and `args` become the script's `KEYS` and `ARGV`. `call` executes one command (`argv[0]`
/// is the name, any case) for `redis.call`/`redis.pcall` and returns its reply; it decides what
/// may run (a read-only script's `call` refuses writes). Every outcome – a result, a Lua error, a
/// kill – is a [`Reply`]; the function itself cannot fail.
pub fn run(
    body: &[u8],
    keys: &[Vec<u8>],
    args: &[Vec<u8>],
    budget: &Budget,
    call: &mut dyn FnMut(Vec<Vec<u8>>) -> Reply,
) -> Reply {
    let killed = Rc::new(Cell::new(false));
    match run_inner(body, keys, args, budget, call, &killed) {
        _ if killed.get() => Reply::Error(format!(
            "ERR Script killed by the instruction budget: it ran more than {} Lua instructions \
             (Concord counts instructions, not time, so every replica stops it at the same point)",
            budget.instructions
        )),
        Ok(reply) => reply,
        Err(mlua::Error::MemoryError(_)) => out_of_memory(budget),
        Err(e) => Reply::Error(one_line(&format!("ERR Error running script: {e}"))),
    }
}

fn out_of_memory(budget: &Budget) -> Reply {
    Reply::Error(format!(
        "ERR Script killed: out of memory (the limit for a script's Lua heap is {} bytes)",
        budget.memory_bytes
    ))
}

/// Redis keeps error and status lines on one line: CR and LF become spaces.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// An error raised as Redis raises it: a `{err = msg}` table once the script sees it.
#[derive(Debug)]
struct RaisedError(String);

impl std::fmt::Display for RaisedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedError {}

fn raise_error(msg: String) -> mlua::Error {
    mlua::Error::external(RaisedError(msg))
}

/// The message of an error a Rust function raised, without mlua's wrapping.
fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            root_message(cause)
        }
        mlua::Error::RuntimeError(msg) => msg.clone(),
        e => e.to_string(),
    }
}

/// `luaL_checkint`: argument `i` as a C int (numbers truncate; numeric strings count).
fn check_int(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> mlua::Result<i32> {
    let v = args.get(i).cloned().unwrap_or(Value::Nil);
    let got = v.type_name();
    match lua.coerce_number(v)? {
        Some(n) => Ok(truncate(n) as i32),
        None => Err(mlua::Error::runtime(format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            if i >= args.len() { "no value" } else { got }
        ))),
    }
}

/// Redis's `math.random`: `x` is the next rand48 output.
fn math_random(lua: &Lua, x: i64, args: &MultiValue) -> mlua::Result<f64> {
    const MAX: i64 = i32::MAX as i64;
    let r = (x % MAX) as f64 / MAX as f64;
    let empty =
        |n: usize| Err(mlua::Error::runtime(format!("bad argument #{n} to 'random' (interval is empty)")));
    match args.len() {
        0 => Ok(r),
        1 => {
            let u = check_int(lua, args, 0, "random")?;
            if u < 1 {
                return empty(1);
            }
            Ok((r * f64::from(u)).floor() + 1.0)
        }
        2 => {
            let (l, u) = (check_int(lua, args, 0, "random")?, check_int(lua, args, 1, "random")?);
            if l > u {
                return empty(2);
            }
            Ok((r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l))
        }
        _ => Err(mlua::Error::runtime("wrong number of arguments")),
    }
}

fn run_inner(
    body: &[u8],
    keys: &[Vec<u8>],
    args: &[Vec<u8>],
    budget: &Budget,
    call: &mut dyn FnMut(Vec<Vec<u8>>) -> Reply,
    killed: &Rc<Cell<bool>>,
) -> mlua::Result<Reply> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH; // 5.1: coroutine is part of base
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    lua.set_memory_limit(budget.memory_bytes)?;
    let globals = lua.globals();
    globals.raw_set("KEYS", string_array(&lua, keys)?)?;
    globals.raw_set("ARGV", string_array(&lua, args)?)?;

    let resp3 = Cell::new(false);
    let rand48 = Cell::new(Rand48::seeded(0));
    let call = RefCell::new(call);
    let sha = sha1hex(body);

    lua.scope(|scope| {
        // %.17g through Lua's own C formatter: how Redis turns numbers into command arguments,
        // down to glibc's "-nan".
        let fmt17: Function = lua
            .load("local f = string.format return function(n) return f('%.17g', n) end")
            .set_name("=concord")
            .eval()?;

        // redis.call and redis.pcall. Everything that raises a Redis error is a Rust function:
        // a Lua wrapper could be tail-called, and Lua 5.1 then forgets the script's frame – the
        // line the error message names.
        let redis_call = |raise: bool| {
            let (fmt17, killed, resp3, call) = (fmt17.clone(), killed.clone(), &resp3, &call);
            scope.create_function(move |lua, argv: MultiValue| -> mlua::Result<Value> {
                if killed.get() {
                    return Err(mlua::Error::runtime("script killed"));
                }
                let reply = match lua_argv(argv, &fmt17) {
                    Err(msg) => Reply::Error(msg.to_string()),
                    Ok(argv) if refused_in_scripts(&argv[0]) => {
                        Reply::Error("ERR This Redis command is not allowed from script".into())
                    }
                    Ok(argv) => script_error_words((*call.borrow_mut())(argv)),
                };
                match reply {
                    Reply::Error(e) if raise => Err(raise_error(e)),
                    reply => reply_to_lua(lua, &reply, resp3.get()),
                }
            })
        };
        let (call_fn, pcall_fn) = (redis_call(true)?, redis_call(false)?);
        let is_killed = {
            let killed = killed.clone();
            scope.create_function(move |_, ()| Ok(killed.get()))?
        };
        let setresp = scope.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_error("ERR redis.setresp() requires one argument.".into()));
            }
            match lua.coerce_integer(args[0].clone())? {
                Some(2) => resp3.set(false),
                Some(3) => resp3.set(true),
                _ => return Err(raise_error("ERR RESP version must be 2 or 3.".into())),
            }
            Ok(())
        })?;
        let log = scope.create_function(|lua, args: MultiValue| {
            if args.len() < 2 {
                return Err(raise_error("ERR redis.log() requires two arguments or more.".into()));
            }
            match lua.coerce_integer(args[0].clone())? {
                Some(0..=3) => Ok(()),
                _ => Err(raise_error("ERR Invalid debug level.".into())),
            }
        })?;
        let sha1 = scope.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_error("ERR wrong number of arguments".into()));
            }
            let bytes = match lua.coerce_string(args[0].clone())? {
                Some(s) => s.as_bytes().to_vec(),
                None => Vec::new(),
            };
            Ok(sha1hex(&bytes))
        })?;
        let random = scope.create_function(|lua, args: MultiValue| {
            let mut r = rand48.get();
            let x = r.next();
            rand48.set(r);
            math_random(lua, x, &args)
        })?;
        let randomseed = scope.create_function(|lua, args: MultiValue| {
            rand48.set(Rand48::seeded(check_int(lua, &args, 0, "randomseed")?));
            Ok(())
        })?;
        let where_ = scope.create_function(|lua, ()| Ok(user_position(lua)))?;
        // Errors raised by Rust functions travel as userdata; the sandbox shows scripts what
        // Redis would: the error table, or the message.
        let unwrap = scope.create_function(|lua, v: Value| {
            Ok(match v {
                Value::Error(e) => match e.downcast_ref::<RaisedError>() {
                    Some(RaisedError(msg)) => tagged(lua, "err", msg.as_str())?,
                    None => Value::String(lua.create_string(root_message(&e))?),
                },
                v => v,
            })
        })?;

        let prelude: Table = lua.load(PRELUDE).set_name("=concord").call((
            lua.create_sequence_from([call_fn, pcall_fn, setresp, log, sha1])?,
            lua.create_sequence_from([random, randomseed])?,
            lua.create_sequence_from([is_killed, where_, unwrap])?,
            REDIS_VERSION,
        ))?;
        let env: Table = prelude.raw_get("env")?;
        let runner: Function = prelude.raw_get("run")?;

        // The loader for `loadstring`: text only, compiled into the same read-only sandbox.
        let loader = {
            let env = env.clone();
            scope.create_function(move |lua, (src, name): (mlua::LuaString, Option<String>)| {
                let chunk = lua
                    .load(src.as_bytes().to_vec())
                    .set_name(name.unwrap_or_else(|| "=(loadstring)".into()))
                    .set_mode(ChunkMode::Text)
                    .set_environment(env.clone());
                Ok(match chunk.into_function() {
                    Ok(f) => (Value::Function(f), Value::Nil),
                    Err(mlua::Error::SyntaxError { message, .. }) => {
                        (Value::Nil, Value::String(lua.create_string(message)?))
                    }
                    Err(e) => return Err(e),
                })
            })?
        };
        prelude.raw_get::<Function>("set_loader")?.call::<()>(loader)?;

        let script = match lua
            .load(body)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(env)
            .into_function()
        {
            Ok(f) => f,
            Err(mlua::Error::SyntaxError { message, .. }) => {
                return Ok(Reply::Error(one_line(&format!(
                    "ERR Error compiling script (new function): {message}"
                ))))
            }
            Err(e) => return Err(e),
        };

        // Counted from here: compiling and the sandbox's own set-up are not the script's work.
        let executed = Rc::new(Cell::new(0u64));
        let limit = budget.instructions;
        {
            let killed = killed.clone();
            lua.set_global_hook(
                HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
                move |_, _| {
                    executed.set(executed.get() + u64::from(HOOK_INSTRUCTIONS));
                    if executed.get() > limit {
                        // Raised again at every later firing, and re-raised by the sandbox's
                        // pcall: the script cannot catch its way past the budget.
                        killed.set(true);
                        return Err(mlua::Error::runtime("script killed by the instruction budget"));
                    }
                    Ok(VmState::Continue)
                },
            )?;
        }
        let (ok, result): (bool, Value) = runner.call(script)?;
        lua.remove_global_hook();
        lua.remove_hook();
        if killed.get() {
            return Ok(Reply::Nil); // `run` words the kill.
        }
        if ok {
            return lua_to_reply(&result, 0, resp3.get());
        }
        Ok(match result {
            Value::Table(e) => Reply::Error(error_line(&lua, &e, &sha)?),
            // Not through the handler: errors Lua raises without calling it.
            Value::String(s) if s.as_bytes().as_ref() == b"not enough memory" => out_of_memory(budget),
            other => Reply::Error(one_line(&format!(
                "ERR Error running script: {}",
                lua.coerce_string(other)?.map(|s| s.to_string_lossy()).unwrap_or_default()
            ))),
        })
    })
}

/// The final error line, as Redis 7 builds it from the error table the handler made:
/// `<err> script: <sha>, on <source>:<line>.`
fn error_line(lua: &Lua, e: &Table, sha: &str) -> mlua::Result<String> {
    let msg = match lua.coerce_string(e.raw_get::<Value>("err")?)? {
        Some(s) => s.to_string_lossy(),
        None => "ERR Error running script: the error object has no 'err' field".into(),
    };
    let source: Option<String> = e.raw_get("source")?;
    let line: Option<i64> = e.raw_get("line")?;
    Ok(one_line(&match (source, line) {
        (Some(source), Some(line)) => format!("{msg} script: {sha}, on {source}:{line}."),
        _ => msg,
    }))
}

/// Where the error happened, for the error line: the innermost frame that is the user's Lua code
/// (Redis's handler looks two or three frames up; skipping C functions and this sandbox's own
/// Lua, named `=concord`, finds the same frame).
fn user_position(lua: &Lua) -> (Option<String>, Option<i64>) {
    for level in 1..64 {
        let frame = lua.inspect_stack(level, |d| {
            let s = d.source();
            (s.what, s.source.map(|s| s.into_owned()), d.current_line())
        });
        match frame {
            None => break,
            Some(("C", _, _)) => continue,
            Some((_, Some(source), _)) if source == "=concord" => continue,
            Some((_, source, line)) => return (source, line.map(|l| l as i64)),
        }
    }
    (None, None)
}

/// A command's argv from `redis.call`'s arguments: strings as they are, numbers as `%.17g`
/// (what Redis does – Lua's own `%.14g` would lose precision); anything else is refused.
fn lua_argv(args: MultiValue, fmt17: &Function) -> Result<Vec<Vec<u8>>, &'static str> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    let refused = "ERR Lua redis lib command arguments must be strings or integers";
    args.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            Value::Integer(_) | Value::Number(_) => {
                fmt17.call::<mlua::LuaString>(v).map(|s| s.as_bytes().to_vec()).map_err(|_| refused)
            }
            _ => Err(refused),
        })
        .collect()
}

/// Redis words two errors differently when the command came from a script.
fn script_error_words(reply: Reply) -> Reply {
    match reply {
        Reply::Error(e) if e.starts_with("ERR unknown command") => {
            Reply::Error("ERR Unknown Redis command called from script".into())
        }
        Reply::Error(e) if e.starts_with("ERR wrong number of arguments for") => {
            Reply::Error("ERR Wrong number of args calling Redis command from script".into())
        }
        other => other,
    }
}

fn string_array(lua: &Lua, items: &[Vec<u8>]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}

/// A single-field table, `{ok = s}` or `{err = s}`.
fn tagged(lua: &Lua, tag: &str, v: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(tag, v)?;
    Ok(Value::Table(t))
}

/// A command's reply as `redis.call` returns it (see the table in the module docs).
fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    let array = |items: &mut dyn Iterator<Item = &Reply>| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for (i, item) in items.enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Ok => tagged(lua, "ok", "OK")?,
        Reply::Status(s) => tagged(lua, "ok", s.as_str())?,
        Reply::Int(i) => Value::Integer(*i),
        Reply::Bool(b) => Value::Boolean(*b),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Double(d) if resp3 => tagged(lua, "double", *d)?,
        Reply::Double(d) => Value::String(lua.create_string(format_double(*d))?),
        Reply::Array(items) => array(&mut items.iter())?,
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            tagged(lua, "set", set)?
        }
        Reply::Set(items) => array(&mut items.iter())?,
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            tagged(lua, "map", map)?
        }
        Reply::Map(pairs) => array(&mut pairs.iter().flat_map(|(k, v)| [k, v]))?,
        Reply::Pairs(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (i, (a, b)) in pairs.iter().enumerate() {
                t.raw_set(i + 1, array(&mut [a, b].into_iter())?)?;
            }
            Value::Table(t)
        }
        Reply::Pairs(pairs) => array(&mut pairs.iter().flat_map(|(a, b)| [a, b]))?,
        Reply::Error(e) => tagged(lua, "err", e.as_str())?,
    })
}

/// Redis answers a reply nested deeper than this with an error rather than recursing on.
const MAX_REPLY_DEPTH: usize = 1000;

/// A script's result as the reply Redis sends (see the table in the module docs).
fn lua_to_reply(v: &Value, depth: usize, resp3: bool) -> mlua::Result<Reply> {
    if depth > MAX_REPLY_DEPTH {
        return Ok(Reply::Error("ERR reached lua stack limit".into()));
    }
    Ok(match v {
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(truncate(*n)),
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        // After `redis.setresp(3)` a boolean stays one (`#t`/`#f`; `:1`/`:0` to a RESP2 client).
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Table(t) => table_to_reply(t, depth, resp3)?,
        // nil, false, functions, coroutines: null, as in Redis.
        _ => Reply::Nil,
    })
}

fn table_to_reply(t: &Table, depth: usize, resp3: bool) -> mlua::Result<Reply> {
    if let Value::String(e) = t.raw_get::<Value>("err")? {
        return Ok(Reply::Error(one_line(&e.to_string_lossy())));
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        let s = one_line(&s.to_string_lossy());
        return Ok(if s == "OK" { Reply::Ok } else { Reply::Status(s) });
    }
    match t.raw_get::<Value>("double")? {
        Value::Integer(i) => return Ok(Reply::Double(i as f64)),
        Value::Number(n) => return Ok(Reply::Double(n)),
        _ => {}
    }
    if let Value::String(s) = t.raw_get::<Value>("big_number")? {
        return Ok(Reply::Bulk(s.as_bytes().to_vec()));
    }
    if let Value::Table(v) = t.raw_get::<Value>("verbatim_string")? {
        if let Value::String(s) = v.raw_get::<Value>("string")? {
            return Ok(Reply::Bulk(s.as_bytes().to_vec()));
        }
    }
    if let Value::Table(m) = t.raw_get::<Value>("map")? {
        let mut pairs = Vec::new();
        for pair in m.pairs::<Value, Value>() {
            let (k, v) = pair?;
            pairs.push((lua_to_reply(&k, depth + 1, resp3)?, lua_to_reply(&v, depth + 1, resp3)?));
        }
        return Ok(Reply::Map(pairs));
    }
    if let Value::Table(s) = t.raw_get::<Value>("set")? {
        let mut members = Vec::new();
        for pair in s.pairs::<Value, Value>() {
            members.push(lua_to_reply(&pair?.0, depth + 1, resp3)?);
        }
        return Ok(Reply::Set(members));
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i)? {
            Value::Nil => break,
            v => items.push(lua_to_reply(&v, depth + 1, resp3)?),
        }
    }
    Ok(Reply::Array(items))
}

/// A Lua number as Redis's integer: C's `(long long)` cast, truncating toward zero. Out of range
/// and NaN give what that cast gives on x86-64 (`i64::MIN`), which is what redis-server answers.
fn truncate(n: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// The `rand48` generator Redis gives `math.random` (its `rand.c`): a 48-bit linear congruential
/// generator, `x' = 0x5DEECE66D·x + 0xB mod 2^48`, answering the top 31 bits.
#[derive(Clone, Copy)]
struct Rand48(u64);

impl Rand48 {
    fn seeded(seed: i32) -> Self {
        Rand48((u64::from(seed as u32) << 16) | 0x330E)
    }

    fn next(&mut self) -> i64 {
        self.0 = (self.0.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        (self.0 >> 17) as i64
    }
}

/// The sandbox, in Lua: it receives the Rust helpers and returns `{env = ..., run = ...}`.
const PRELUDE: &str = r#"
local rust_redis, rust_math, rust_sandbox, version = ...
local call, pcall_cmd, setresp, log, sha1hex = unpack(rust_redis)
local random, randomseed = unpack(rust_math)
local killed, where, unwrap = unpack(rust_sandbox)
local G = _G
local type, error, rawget, rawset, select, setmetatable, getmetatable =
      type, error, rawget, rawset, select, setmetatable, getmetatable
local raw_tostring, raw_pcall, raw_xpcall, raw_resume = tostring, pcall, xpcall, coroutine.resume
local format, concat = string.format, table.concat

-- Protected calls see errors as Redis shows them, and a budget kill passes through them all.
local function shown(ok, ...)
  if ok then return true, ... end
  if killed() then error((...), 0) end
  return false, unwrap((...)), select(2, ...)
end
-- Redis 7's pcall: an error table becomes its message.
local function settle(ok, ...)
  if ok then return true, ... end
  if killed() then error((...), 0) end
  local e = unwrap((...))
  if type(e) == 'table' then
    local s = rawget(e, 'err')
    if type(s) == 'string' or type(s) == 'number' then e = s end
  end
  return false, e
end
G.pcall = function(...)
  if select('#', ...) == 0 then return false, "bad argument #1 to 'pcall' (value expected)" end
  return settle(raw_pcall(...))
end
G.xpcall = function(f, h)
  return shown(raw_xpcall(f, function(e) if killed() then return e end return h(unwrap(e)) end))
end
coroutine.resume = function(...) return shown(raw_resume(...)) end

-- tostring without heap addresses: objects are numbered in order of first appearance.
local ids, next_id = setmetatable({}, {__mode = 'k'}), 0
G.tostring = function(v)
  local t = type(v)
  if t ~= 'table' and t ~= 'function' and t ~= 'thread' and t ~= 'userdata' then
    return raw_tostring(v)
  end
  local mt = getmetatable(v)
  if type(mt) == 'table' and rawget(mt, '__tostring') then return raw_tostring(v) end
  local id = ids[v]
  if not id then next_id = next_id + 1; id = next_id; ids[v] = id end
  return t .. ': ' .. format('0x%08x', id)
end
local tostring = G.tostring

math.random, math.randomseed = random, randomseed

local raw_collect = collectgarbage
G.collectgarbage = function(opt, ...)
  opt = opt or 'collect'
  if opt ~= 'collect' and opt ~= 'step' then
    error("collectgarbage('" .. tostring(opt) .. "') is not available in Concord scripts " ..
          "(heap sizes differ between builds)", 2)
  end
  raw_collect(opt, ...)
  return 0
end

for _, name in ipairs({'dofile', 'loadfile', 'print', 'setfenv', 'getfenv', 'newproxy',
                       'gcinfo', 'module', 'require', 'load', 'loadstring'}) do
  rawset(G, name, nil)
end

-- The redis library.
local redis = {call = call, pcall = pcall_cmd, setresp = setresp, log = log, sha1hex = sha1hex}
-- Redis's error tables: "-CODE msg" keeps its code, a bare message gets ERR.
local function error_table(s)
  local space = s:find(' ', 1, true)
  if space then s = s:sub(2) else s = 'ERR ' .. s:sub(2) end
  return {err = (s:gsub('[\r\n]+$', ''))}
end
redis.error_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if s:sub(1, 1) ~= '-' then s = '-' .. s end
  return error_table(s)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = s}
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = function() end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION = version
do
  local maj, min, pat = version:match('^(%d+)%.(%d+)%.(%d+)$')
  redis.REDIS_VERSION_NUM = maj * 65536 + min * 256 + pat
end
G.redis = redis

-- Read-only: new fields in library tables are refused, and the script's globals are a proxy.
local function refuse() error('Attempt to modify a readonly table', 2) end
for _, name in ipairs({'redis', 'string', 'math', 'table', 'coroutine'}) do
  setmetatable(G[name], {__newindex = refuse, __metatable = false})
end
local env = setmetatable({}, {
  __index = function(_, k)
    local v = rawget(G, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = refuse,
  __metatable = false,
})
rawset(G, '_G', env)

local loader
local function loadstring(s, name) return loader(s, name) end
G.loadstring = loadstring
G.load = function(f, name)
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    if type(p) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = p
  end
  return loadstring(concat(parts), name)
end

-- Redis 7's error handler: a table {err = ..., source = ..., line = ...}.
local function handler(e)
  e = unwrap(e)
  if type(e) ~= 'table' then e = {err = 'ERR ' .. tostring(e)} end
  local source, line = where()
  if source then rawset(e, 'source', source); rawset(e, 'line', line) end
  return e
end
return {
  env = env,
  run = function(f) local ok, r = raw_xpcall(f, handler) return ok, r end,
  set_loader = function(l) loader = l end,
}
"#;

#[cfg(test)]
mod tests;

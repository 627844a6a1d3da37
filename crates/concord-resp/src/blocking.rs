//! Blocking pops (`BLPOP`, `BRPOP`, `BLMOVE`, `BLMPOP`, `BZPOPMIN`, `BZPOPMAX`, `BZMPOP`): waiting at the
//! front door, popping in the log.
//!
//! Redis parks a blocked client on the key and hands it the first element pushed. Concord's
//! state machine cannot wait – every replica must apply an entry the same way, at once – so the
//! waiting happens here, in the connection's task, and the pop is always an ordinary log entry:
//!
//! 1. **Try**: the command goes through the log as it is; the interpreter
//!    (`concord_kv::redis::list`, `…::zset`) runs a blocking pop *once*, as its non-blocking form.
//!    Something popped (or an error, e.g. `WRONGTYPE` or a bad timeout): that is the reply.
//! 2. **Wait**: nothing there. Every [`POLL_INTERVAL`] the keys' lengths are read (`LLEN` /
//!    `ZCARD`, queries at the connection's read consistency – no log entries while idle). When
//!    one is non-empty, go to 1. When the timeout passes (Redis's float seconds; `0` waits
//!    forever), the reply is a nil array, as Redis's.
//!
//! Because every pop is a log entry, two clients blocked on one list never both get an element:
//! the loser's attempt pops nothing and it waits again. The cost is latency: an element pushed
//! while a client waits is delivered within one poll interval plus a write's commit (Redis: at
//! once), and each waiting client reads its keys ~60 times a second. The server has no
//! notification of applied writes it could wake on cheaply; one would replace the poll.
//!
//! A blocked client may close its connection: the connection aborts its blocking tasks when the
//! client leaves (`server`), so nothing keeps polling for it. Inside `MULTI` a blocking pop is
//! queued like any interpreter command and runs as its non-blocking form, as in Redis.

use crate::backend::BackendError;
use crate::exec::ExecContext;
use crate::frame::Frame;
use bytes::Bytes;
use concord_core::Time;
use concord_kv::{Command, Query, RedisCall, RedisExec, Reply, Response, Write};
use std::time::{Duration, Instant};

/// How long a blocked client waits between looks at its keys.
pub const POLL_INTERVAL: Duration = Duration::from_millis(15);

/// Whether `name` (any case) is a blocking pop this module waits for.
pub fn is_blocking(name: &[u8]) -> bool {
    ["blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin", "bzpopmax", "bzmpop"]
        .iter()
        .any(|b| name.eq_ignore_ascii_case(b.as_bytes()))
}

/// The keys a blocked `args` waits on, and the query that measures one.
fn watched(args: &[Bytes]) -> (Vec<Vec<u8>>, &'static str) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let length = if name.starts_with("bz") { "zcard" } else { "llen" };
    let keys: Vec<Vec<u8>> = match name.as_str() {
        "blmove" | "brpoplpush" => args.get(1).map(|k| k.to_vec()).into_iter().collect(),
        // BLMPOP|BZMPOP timeout numkeys key …
        "blmpop" | "bzmpop" => {
            let n = std::str::from_utf8(&args[2]).ok().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            args.iter().skip(3).take(n).map(|k| k.to_vec()).collect()
        }
        _ => args[1..args.len() - 1].iter().map(|k| k.to_vec()).collect(),
    };
    (keys, length)
}

/// The timeout argument's position.
fn timeout_arg(args: &[Bytes]) -> &[u8] {
    if args[0].eq_ignore_ascii_case(b"blmpop") || args[0].eq_ignore_ascii_case(b"bzmpop") {
        &args[1]
    } else {
        &args[args.len() - 1]
    }
}

/// Run a blocking pop: try, wait, try again … until something is popped or the timeout passes.
pub async fn run(args: Vec<Bytes>, keys: Vec<Vec<u8>>, ctx: ExecContext) -> Frame {
    // A bad timeout: the first attempt answers the interpreter's error.
    let deadline = concord_kv::redis::list::timeout(timeout_arg(&args))
        .ok()
        .filter(|s| *s > 0.0)
        .map(|s| Instant::now() + Duration::from_secs_f64(s.min(1e9)));
    let (watched, length) = watched(&args);
    let call = RedisCall::new(args.iter().map(|a| a.to_vec()).collect());
    loop {
        let exec = RedisExec { keys: keys.clone(), watch: vec![], calls: vec![call.clone()] };
        let command = Command::new(Time(ctx.backend.now_ms().saturating_mul(1_000_000)), Write::Redis(exec));
        match ctx.backend.write(command, ctx.consistency).await {
            Ok(Response::Redis { replies: Some(mut replies), .. }) if replies.len() == 1 => {
                match replies.pop().expect("one reply") {
                    Reply::Nil | Reply::NilArray => {}
                    reply => return Frame::from(reply),
                }
            }
            Ok(other) => return Frame::error(format!("ERR unexpected response {other:?}")),
            Err(e) => return e.to_reply(),
        }
        // Nothing popped: wait until a key has something (or the deadline).
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Redis 7.0 answers every blocking timeout with a null array, BLMOVE's included.
                return Frame::NullArray;
            }
            let nap = deadline
                .map_or(POLL_INTERVAL, |d| d.saturating_duration_since(Instant::now()).min(POLL_INTERVAL));
            tokio::time::sleep(nap).await;
            match any_non_empty(&watched, length, &ctx).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return e.to_reply(),
            }
        }
    }
}

/// Whether any of `keys` holds something (or something a pop would refuse: the pop reports it).
async fn any_non_empty(keys: &[Vec<u8>], length: &str, ctx: &ExecContext) -> Result<bool, BackendError> {
    for key in keys {
        let call = RedisCall::new(vec![length.as_bytes().to_vec(), key.clone()]);
        match ctx.backend.read(Query::Redis(RedisExec::read(call)), ctx.consistency).await? {
            Response::Redis { replies: Some(replies), .. } => match replies.first() {
                Some(Reply::Int(0)) => {}
                _ => return Ok(true),
            },
            _ => return Ok(true),
        }
    }
    Ok(false)
}

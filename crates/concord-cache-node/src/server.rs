//! Connections and commands.
//!
//! ## The lean path
//! A connection reads what has arrived, parses every complete request in the buffer (in place,
//! [`crate::proto`]), and answers as many as it can **synchronously, under one acquisition of
//! the cache lock**: hits, `PING`, `LGET`/`LSET`, `INFO`… each reply is appended to one output
//! buffer, and the whole batch leaves in **one write**. A hit copies its value once, from the
//! store into the output buffer ([`concord_cache::Cache::get_with`]); nothing is allocated per
//! request. So `redis-benchmark -P 16` costs one read, one lock and one write per 16 requests.
//!
//! A request that must wait – a miss (read-through), a write, a key another node owns – ends the
//! synchronous run: the lock is released, the request is awaited, its reply appended in its
//! place, and the synchronous run resumes with the next request. Replies stay in request order.

use crate::conn::Conn;
use crate::db::parse_getrev;
use crate::proto::{self, Parsed, Version};
use crate::{FillResult, Inner, Shared, WritePolicy};
use bytes::{Buf, Bytes, BytesMut};
use concord_cache::{Fill, LeaseToken, Lookup, SetOutcome, ENTRY_OVERHEAD_BYTES};
use concord_core::Time;
use concord_resp::Frame;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(shared.clone(), stream));
            }
            // Out of file descriptors and the like: wait rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One client's settings.
struct Client {
    id: u64,
    version: Version,
    name: Option<String>,
    /// Answer `-MOVED` for keys owned elsewhere instead of forwarding.
    redirect: bool,
    /// A peer cache node forwarding to us: never forward again (one hop).
    peer: bool,
    /// `AUTH` given (or none required: `--requirepass` unset).
    authenticated: bool,
}

/// What the synchronous run did with a request.
enum Fast {
    Done,
    Quit,
    /// It must be awaited; for `GET`, the lookup already made (its lease, if any, is ours).
    Slow(Option<Lookup>),
}

async fn connection(shared: Arc<Shared>, mut stream: TcpStream) {
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    shared.counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let mut client = Client {
        id: shared.next_client_id.fetch_add(1, Ordering::Relaxed),
        version: Version::Resp2,
        name: None,
        redirect: false,
        peer: false,
        authenticated: shared.options.requirepass.is_none(),
    };
    let max_bulk = (shared.options.max_item_bytes as usize).saturating_mul(4).max(8 << 20);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut parser = proto::RequestParser::new(max_bulk);
    'read: loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut pos = 0;
        let mut quit = false;
        loop {
            // The synchronous run: the lock is taken at most once and released before any await.
            let pending: Option<(usize, Vec<Vec<u8>>, Option<Lookup>)> = {
                let mut guard: Option<MutexGuard<'_, Inner>> = None;
                let now = shared.now();
                let mut pending = None;
                let mut commands = 0u64;
                loop {
                    let (end, words) = match parser.parse(&buf, pos) {
                        Parsed::Incomplete => break,
                        Parsed::Error(e) => {
                            proto::error(&mut out, &format!("ERR Protocol error: {e}"));
                            quit = true;
                            break;
                        }
                        Parsed::Multibulk { end } => (end, None),
                        Parsed::Inline { end, words } => (end, Some(words)),
                    };
                    let ranges = parser.args();
                    let mut small: [&[u8]; 8] = [&[]; 8];
                    let big: Vec<&[u8]>;
                    let argv: &[&[u8]] = match &words {
                        Some(words) => {
                            big = words.iter().map(Vec::as_slice).collect();
                            &big
                        }
                        None if ranges.len() <= small.len() => {
                            for (slot, range) in small.iter_mut().zip(ranges) {
                                *slot = &buf[range.clone()];
                            }
                            &small[..ranges.len()]
                        }
                        None => {
                            big = ranges.iter().map(|r| &buf[r.clone()]).collect();
                            &big
                        }
                    };
                    if argv.is_empty() {
                        pos = end;
                        continue;
                    }
                    commands += 1;
                    match fast(&shared, &mut client, &mut guard, now, argv, &mut out) {
                        Fast::Done => pos = end,
                        Fast::Quit => {
                            pos = end;
                            quit = true;
                            break;
                        }
                        Fast::Slow(lookup) => {
                            pending = Some((end, argv.iter().map(|a| a.to_vec()).collect(), lookup));
                            break;
                        }
                    }
                }
                // One shared counter update per run, not per request (a contended cache line).
                shared.counters.commands.fetch_add(commands, Ordering::Relaxed);
                pending
            };
            match pending {
                Some((end, args, lookup)) => {
                    slow(&shared, &mut client, &args, lookup, &mut out).await;
                    pos = end;
                }
                None => break,
            }
            if quit {
                break;
            }
        }
        buf.advance(pos);
        parser.consumed(pos);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break 'read;
            }
            out.clear();
        }
        if quit {
            break;
        }
    }
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

fn is(word: &[u8], name: &str) -> bool {
    word.eq_ignore_ascii_case(name.as_bytes())
}

fn arity(out: &mut BytesMut, name: &[u8]) {
    proto::error(
        out,
        &format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(name).to_lowercase()
        ),
    );
}

fn unknown(out: &mut BytesMut, argv: &[&[u8]]) {
    let mut text =
        format!("ERR unknown command '{}', with args beginning with: ", String::from_utf8_lossy(argv[0]));
    for arg in argv.iter().skip(1).take(16) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(arg)));
    }
    proto::error(out, &text);
}

fn moved(out: &mut BytesMut, shared: &Shared, owner: usize) {
    proto::error(out, &format!("MOVED 0 {}", shared.tier.members[owner]));
}

fn too_large(shared: &Shared, key: &[u8], value: &[u8]) -> Option<String> {
    let charge = key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES;
    (charge > shared.options.max_item_bytes).then(|| {
        shared.counters.too_large.fetch_add(1, Ordering::Relaxed);
        format!(
            "ERR value of {} bytes is over the cache's item limit of {} bytes (key + value + {ENTRY_OVERHEAD_BYTES} bytes of overhead)",
            value.len(),
            shared.options.max_item_bytes
        )
    })
}

/// The owner of `key` if it is another node and this client's request should go there.
fn elsewhere(shared: &Shared, client: &Client, key: &[u8]) -> Option<usize> {
    if client.peer {
        return None;
    }
    shared.tier.owner(key)
}

/// Answer what can be answered without waiting (module docs).
fn fast<'a>(
    shared: &'a Shared,
    client: &mut Client,
    guard: &mut Option<MutexGuard<'a, Inner>>,
    now: Time,
    argv: &[&[u8]],
    out: &mut BytesMut,
) -> Fast {
    let name = argv[0];
    let n = argv.len();
    if !client.authenticated {
        // Redis's rule: before AUTH only AUTH, HELLO (with AUTH) and QUIT.
        if is(name, "AUTH") {
            auth(shared, client, argv, out);
        } else if is(name, "HELLO") {
            hello(shared, client, argv, out);
        } else if is(name, "QUIT") {
            proto::simple(out, "OK");
            return Fast::Quit;
        } else {
            proto::error(out, "NOAUTH Authentication required.");
        }
        return Fast::Done;
    }
    // The hot command first.
    if is(name, "GET") {
        if n != 2 {
            arity(out, name);
            return Fast::Done;
        }
        let key = argv[1];
        if let Some(owner) = elsewhere(shared, client, key) {
            if client.redirect {
                moved(out, shared, owner);
                return Fast::Done;
            }
            return Fast::Slow(None);
        }
        let inner = guard.get_or_insert_with(|| shared.lock());
        if !inner.serving {
            return Fast::Slow(None);
        }
        return match inner.cache.get_with(key, now, |value| proto::bulk(out, value)) {
            Ok(()) => Fast::Done,
            Err(lookup) => Fast::Slow(Some(lookup)),
        };
    }
    if is(name, "PING") {
        match n {
            1 => proto::simple(out, "PONG"),
            2 => proto::bulk(out, argv[1]),
            _ => arity(out, name),
        }
        return Fast::Done;
    }
    if is(name, "LGET") {
        if n != 2 {
            arity(out, name);
            return Fast::Done;
        }
        if let Some(owner) = elsewhere(shared, client, argv[1]) {
            if client.redirect {
                moved(out, shared, owner);
                return Fast::Done;
            }
            return Fast::Slow(None);
        }
        let inner = guard.get_or_insert_with(|| shared.lock());
        lget(inner, argv[1], now, out);
        return Fast::Done;
    }
    if is(name, "LSET") {
        if n != 5 && n != 7 {
            arity(out, name);
            return Fast::Done;
        }
        if let Some(owner) = elsewhere(shared, client, argv[1]) {
            if client.redirect {
                moved(out, shared, owner);
                return Fast::Done;
            }
            return Fast::Slow(None);
        }
        let inner = guard.get_or_insert_with(|| shared.lock());
        lset(shared, inner, argv, now, out);
        return Fast::Done;
    }
    if is(name, "MGET") || is(name, "EXISTS") || is(name, "SET") || is(name, "DEL") || is(name, "UNLINK") {
        let min = if is(name, "SET") { 3 } else { 2 };
        if n < min {
            arity(out, name);
            return Fast::Done;
        }
        return Fast::Slow(None);
    }
    if is(name, "ECHO") {
        if n == 2 {
            proto::bulk(out, argv[1]);
        } else {
            arity(out, name);
        }
        return Fast::Done;
    }
    if is(name, "QUIT") {
        proto::simple(out, "OK");
        return Fast::Quit;
    }
    if is(name, "DBSIZE") {
        let inner = guard.get_or_insert_with(|| shared.lock());
        proto::int(out, inner.cache.store().len() as i64);
        return Fast::Done;
    }
    if is(name, "FLUSHALL") || is(name, "FLUSHDB") {
        let inner = guard.get_or_insert_with(|| shared.lock());
        inner.cache.flush_all(now);
        proto::simple(out, "OK");
        return Fast::Done;
    }
    if is(name, "SELECT") {
        if n != 2 {
            arity(out, name);
        } else if argv[1] == b"0" {
            proto::simple(out, "OK");
        } else {
            proto::error(out, "ERR DB index is out of range");
        }
        return Fast::Done;
    }
    if is(name, "INFO") {
        let inner = guard.get_or_insert_with(|| shared.lock());
        let section = argv.get(1).map(|s| String::from_utf8_lossy(s).to_lowercase());
        let text = info(shared, inner, section.as_deref());
        proto::frame(out, &Frame::Verbatim { format: *b"txt", text: Bytes::from(text) }, client.version);
        return Fast::Done;
    }
    if is(name, "HELLO") {
        hello(shared, client, argv, out);
        return Fast::Done;
    }
    if is(name, "CLIENT") {
        client_command(client, argv, out);
        return Fast::Done;
    }
    if is(name, "COMMAND") {
        match argv.get(1) {
            None => proto::array(out, 0),
            Some(sub) if is(sub, "COUNT") => proto::int(out, COMMANDS.len() as i64),
            Some(sub) if is(sub, "DOCS") || is(sub, "INFO") => {
                proto::frame(out, &Frame::Map(Vec::new()), client.version)
            }
            Some(sub) => proto::error(
                out,
                &format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", String::from_utf8_lossy(sub)),
            ),
        }
        return Fast::Done;
    }
    if is(name, "CONFIG") {
        // redis-benchmark reads `save` and `appendonly`; a cache persists nothing.
        match argv.get(1..) {
            Some([sub, param]) if is(sub, "GET") => {
                let value: Option<&[u8]> = if is(param, "save") {
                    Some(b"")
                } else if is(param, "appendonly") {
                    Some(b"no")
                } else {
                    None
                };
                match value {
                    Some(value) => {
                        proto::array(out, 2);
                        proto::bulk(out, param);
                        proto::bulk(out, value);
                    }
                    None => proto::array(out, 0),
                }
            }
            _ => proto::error(out, "ERR CONFIG is not supported by a cache node (only CONFIG GET)"),
        }
        return Fast::Done;
    }
    if is(name, "CACHE") {
        cache_command(shared, client, argv, out);
        return Fast::Done;
    }
    if is(name, "AUTH") {
        auth(shared, client, argv, out);
        return Fast::Done;
    }
    unknown(out, argv);
    Fast::Done
}

/// The commands a cache node knows (for `COMMAND COUNT`).
const COMMANDS: &[&str] = &[
    "GET", "MGET", "SET", "DEL", "UNLINK", "EXISTS", "PING", "ECHO", "HELLO", "INFO", "DBSIZE", "FLUSHALL",
    "FLUSHDB", "SELECT", "COMMAND", "CONFIG", "CLIENT", "QUIT", "LGET", "LSET", "CACHE", "AUTH",
];

fn lget(inner: &mut Inner, key: &[u8], now: Time, out: &mut BytesMut) {
    if !inner.serving {
        proto::array(out, 1);
        proto::bulk(out, b"miss");
        return;
    }
    match inner.cache.get_with(key, now, |value| proto::bulk(out, value)) {
        Ok(()) => {}
        Err(Lookup::Miss { lease: Some(token) }) => {
            proto::array(out, 2);
            proto::bulk(out, b"lease");
            proto::int(out, token.0 as i64);
        }
        Err(Lookup::Miss { lease: None }) => {
            proto::array(out, 1);
            proto::bulk(out, b"miss");
        }
        Err(Lookup::MissWait { lease_expires_at }) => {
            proto::array(out, 2);
            proto::bulk(out, b"wait");
            proto::int(out, lease_expires_at.saturating_since(now).as_millis().max(1) as i64);
        }
        Err(Lookup::Stale(value)) => {
            proto::array(out, 2);
            proto::bulk(out, b"stale");
            proto::bulk(out, &value);
        }
        Err(Lookup::Hit(value)) => proto::bulk(out, &value), // get_with never says so
    }
}

fn lset(shared: &Shared, inner: &mut Inner, argv: &[&[u8]], now: Time, out: &mut BytesMut) {
    let number = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok());
    let (Some(token), Some(version)) = (number(argv[2]), number(argv[3])) else {
        proto::error(
            out,
            "ERR LSET key token version value [PX ms]: token and version are non-negative integers",
        );
        return;
    };
    let ttl = match argv.get(4..) {
        Some([_]) => None,
        Some([_, px, ms]) if is(px, "PX") => match number(ms) {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                proto::error(out, "ERR invalid expire time in 'lset' command");
                return;
            }
        },
        _ => {
            proto::error(out, "ERR syntax error");
            return;
        }
    };
    let (key, value) = (argv[1], argv[4]);
    if let Some(e) = too_large(shared, key, value) {
        proto::error(out, &e);
        return;
    }
    if !inner.serving {
        proto::simple(out, "NOT_SERVING");
        return;
    }
    let fill = Fill { lease: (token != 0).then_some(LeaseToken(token)), version, ttl };
    match inner.cache.set(key, value.to_vec(), fill, now) {
        Ok(SetOutcome::Stored) => proto::simple(out, "STORED"),
        Ok(SetOutcome::LeaseInvalid) => proto::simple(out, "LEASE_INVALID"),
        Ok(SetOutcome::OlderThanInvalidation { .. }) => proto::simple(out, "OLDER_THAN_INVALIDATION"),
        Ok(SetOutcome::OlderThanCached { .. }) => proto::simple(out, "OLDER_THAN_CACHED"),
        Err(e) => proto::error(out, &format!("ERR {e}")),
    }
}

/// `AUTH [default] password` against `--requirepass`, in redis-server's words.
fn auth(shared: &Shared, client: &mut Client, argv: &[&[u8]], out: &mut BytesMut) {
    let (user, given) = match argv.len() {
        2 => (&b"default"[..], argv[1]),
        3 => (argv[1], argv[2]),
        _ => return arity(out, argv[0]),
    };
    let Some(password) = &shared.options.requirepass else {
        proto::error(
            out,
            "ERR AUTH <password> called without any password configured for the default user. Are you \
             sure your configuration is correct?",
        );
        return;
    };
    if user == b"default" && concord_resp::acl::constant_time_eq(password.as_bytes(), given) {
        client.authenticated = true;
        proto::simple(out, "OK");
    } else {
        proto::error(out, "WRONGPASS invalid username-password pair or user is disabled.");
    }
}

fn hello(shared: &Shared, client: &mut Client, argv: &[&[u8]], out: &mut BytesMut) {
    let mut i = 1;
    if let Some(version) = argv.get(1) {
        match *version {
            b"2" => client.version = Version::Resp2,
            b"3" => client.version = Version::Resp3,
            _ => {
                proto::error(out, "NOPROTO unsupported protocol version");
                return;
            }
        }
        i = 2;
    }
    while i < argv.len() {
        if is(argv[i], "SETNAME") && i + 1 < argv.len() {
            client.name = Some(String::from_utf8_lossy(argv[i + 1]).into_owned());
            i += 2;
        } else if is(argv[i], "AUTH") && i + 2 < argv.len() {
            if let Some(password) = &shared.options.requirepass {
                let user_ok = argv[i + 1] == b"default";
                if !(user_ok && concord_resp::acl::constant_time_eq(password.as_bytes(), argv[i + 2])) {
                    proto::error(out, "WRONGPASS invalid username-password pair or user is disabled.");
                    return;
                }
                client.authenticated = true;
            } // without --requirepass any password is accepted, as Redis's nopass default
            i += 3;
        } else {
            proto::error(
                out,
                &format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(argv[i])),
            );
            return;
        }
    }
    if !client.authenticated {
        proto::error(out, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    let reply = Frame::map_of([
        ("server", Frame::bulk("concord-cache")),
        ("version", Frame::bulk("7.0.0")),
        ("proto", Frame::Integer(client.version.protocol().version())),
        ("id", Frame::Integer(client.id as i64)),
        ("mode", Frame::bulk("standalone")),
        ("role", Frame::bulk("master")),
        ("modules", Frame::Array(Vec::new())),
    ]);
    proto::frame(out, &reply, client.version);
}

fn client_command(client: &mut Client, argv: &[&[u8]], out: &mut BytesMut) {
    match argv.get(1) {
        Some(sub) if is(sub, "SETNAME") && argv.len() == 3 => {
            if argv[2].iter().any(|b| *b <= b' ' || *b > b'~') {
                proto::error(out, "ERR Client names cannot contain spaces, newlines or special characters.");
            } else {
                client.name = Some(String::from_utf8_lossy(argv[2]).into_owned());
                proto::simple(out, "OK");
            }
        }
        Some(sub) if is(sub, "GETNAME") && argv.len() == 2 => match &client.name {
            Some(name) => proto::bulk(out, name.as_bytes()),
            None => proto::null(out, client.version),
        },
        Some(sub) if is(sub, "ID") && argv.len() == 2 => proto::int(out, client.id as i64),
        Some(sub) if is(sub, "SETINFO") && argv.len() == 4 => proto::simple(out, "OK"),
        Some(sub) => proto::error(
            out,
            &format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            ),
        ),
        None => arity(out, argv[0]),
    }
}

fn cache_command(shared: &Shared, client: &mut Client, argv: &[&[u8]], out: &mut BytesMut) {
    match argv.get(1..) {
        Some([sub]) if is(sub, "PEER") => {
            client.peer = true;
            proto::simple(out, "OK");
        }
        Some([sub, on]) if is(sub, "REDIRECT") && (is(on, "ON") || is(on, "OFF")) => {
            client.redirect = is(on, "ON");
            proto::simple(out, "OK");
        }
        Some([sub, key]) if is(sub, "OWNER") => {
            let owner = shared.tier.owner(key).unwrap_or(shared.tier.me);
            proto::bulk(out, shared.tier.members[owner].to_string().as_bytes());
        }
        _ => proto::error(out, "ERR CACHE PEER | REDIRECT ON|OFF | OWNER key"),
    }
}

/// `INFO [section]`: Redis's `# Section` / `field:value` text.
pub fn info(shared: &Shared, inner: &Inner, section: Option<&str>) -> String {
    let stats = inner.cache.stats();
    let c = &shared.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let lookups = stats.hits + stats.misses;
    let ratio = if lookups == 0 { 0.0 } else { stats.hits as f64 / lookups as f64 };
    let mut sections: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    let kv = |k: &str, v: String| (k.to_string(), v);
    sections.push((
        "Server",
        vec![
            kv("concord_cache_version", env!("CARGO_PKG_VERSION").into()),
            kv("redis_version", "7.0.0".into()),
            kv("redis_mode", "standalone".into()),
            kv("process_id", std::process::id().to_string()),
            kv("tcp_port", shared.addr.port().to_string()),
            kv("uptime_in_seconds", shared.started.elapsed().as_secs().to_string()),
            kv("concord_cluster_id", shared.options.cluster_id.clone()),
        ],
    ));
    sections.push((
        "Clients",
        vec![
            kv("connected_clients", load(&c.connections).to_string()),
            kv("total_connections_received", load(&c.connections_total).to_string()),
        ],
    ));
    sections.push((
        "Memory",
        vec![
            kv("used_memory", stats.store.bytes_used.to_string()),
            kv("maxmemory", inner.cache.store().budget_bytes().to_string()),
            kv("maxmemory_policy", inner.cache.store().policy_name().into()),
        ],
    ));
    sections.push((
        "Stats",
        vec![
            kv("total_commands_processed", load(&c.commands).to_string()),
            kv("keyspace_hits", stats.hits.to_string()),
            kv("keyspace_misses", stats.misses.to_string()),
            kv("evicted_keys", stats.store.evictions.to_string()),
            kv("expired_keys", stats.store.expirations.to_string()),
        ],
    ));
    sections.push((
        "Cache",
        vec![
            kv("policy", inner.cache.store().policy_name().into()),
            kv("budget_bytes", inner.cache.store().budget_bytes().to_string()),
            kv("bytes_used", stats.store.bytes_used.to_string()),
            kv("items", stats.store.entries.to_string()),
            kv("max_item_bytes", shared.options.max_item_bytes.to_string()),
            kv("hits", stats.hits.to_string()),
            kv("misses", stats.misses.to_string()),
            kv("hit_ratio", format!("{ratio:.4}")),
            kv("evictions", stats.store.evictions.to_string()),
            kv("expirations", stats.store.expirations.to_string()),
            kv("invalidations", stats.invalidations.to_string()),
            kv("flushes", stats.flushes.to_string()),
            kv("leases_issued", stats.leases_issued.to_string()),
            kv("leases_outstanding", inner.cache.leases_outstanding().to_string()),
            kv("lease_waits", stats.waits.to_string()),
            kv("fill_waits", load(&c.fill_waits).to_string()),
            kv("stale_served", stats.stale_served.to_string()),
            kv("fills_stored", stats.fills_stored.to_string()),
            kv("fills_refused", stats.fills_refused.to_string()),
            kv("values_too_large", load(&c.too_large).to_string()),
            kv("max_ttl_seconds", shared.options.max_ttl.as_secs().to_string()),
            kv("lease_period_ms", shared.options.lease_period.as_millis().to_string()),
            kv("write_policy", shared.options.write_policy.name().into()),
        ],
    ));
    let feeds: Vec<String> = shared
        .options
        .db
        .iter()
        .zip(&inner.feeds)
        .map(|(addr, state)| format!("{addr}={}", state.word()))
        .collect();
    let mut database = vec![
        kv("db", inner.db_word().into()),
        kv("serving_from_cache", if inner.serving { "yes" } else { "no" }.into()),
        kv("db_nodes", shared.options.db.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
        kv("feeds", feeds.join(",")),
        kv("feed_pushes", load(&c.feed_pushes).to_string()),
        kv("feed_flushes", load(&c.feed_flushes).to_string()),
        kv("feed_connects", load(&c.feed_reconnects).to_string()),
        kv("db_reads", load(&c.db_reads).to_string()),
        kv("db_writes", load(&c.db_writes).to_string()),
        kv("db_requests", load(&shared.db.counters.requests).to_string()),
        kv("db_redirects", load(&shared.db.counters.redirects).to_string()),
        kv("db_retries", load(&shared.db.counters.retries).to_string()),
        kv("db_errors", load(&shared.db.counters.errors).to_string()),
        kv("bypass_reads", load(&c.bypass_reads).to_string()),
    ];
    if let Some(problem) = inner.feeds.iter().find_map(|f| match f {
        crate::FeedState::Live | crate::FeedState::Connecting => None,
        crate::FeedState::Unreachable(why)
        | crate::FeedState::WrongCluster(why)
        | crate::FeedState::Refused(why) => Some(why.clone()),
    }) {
        database.push(kv("db_problem", problem));
    }
    sections.push(("Database", database));
    sections.push((
        "Tier",
        vec![
            kv("placement", shared.tier.placement_name().into()),
            kv("members", shared.tier.members.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            kv("this_member", shared.tier.me.to_string()),
            kv("forwarded", load(&c.forwarded).to_string()),
        ],
    ));
    let mut text = String::new();
    for (name, fields) in sections {
        let wanted = match section {
            None | Some("all") | Some("everything") | Some("default") => true,
            Some(s) => s.eq_ignore_ascii_case(name),
        };
        if !wanted {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!("# {name}\r\n"));
        for (k, v) in fields {
            text.push_str(&format!("{k}:{v}\r\n"));
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The slow path: misses, writes, forwarding
// ---------------------------------------------------------------------------------------------

async fn slow(
    shared: &Shared,
    client: &mut Client,
    args: &[Vec<u8>],
    lookup: Option<Lookup>,
    out: &mut BytesMut,
) {
    let name = &args[0];
    let v = client.version;
    if is(name, "GET") || is(name, "LGET") || is(name, "LSET") {
        let key = &args[1];
        if let Some(owner) = elsewhere(shared, client, key) {
            let frame = match forward(shared, owner, args).await {
                Ok(frame) => frame,
                Err(why) => unforwarded(shared, args, &why).await,
            };
            proto::frame(out, &frame, v);
            return;
        }
        // LGET/LSET are slow only for keys owned elsewhere.
        match read_key(shared, key, lookup).await {
            Ok(Some(value)) => proto::bulk(out, &value),
            Ok(None) => proto::null(out, v),
            Err(e) => proto::error(out, &e),
        }
        return;
    }
    if is(name, "MGET") || is(name, "EXISTS") {
        let mut values = Vec::with_capacity(args.len() - 1);
        for key in &args[1..] {
            values.push(get_anywhere(shared, client, key).await);
        }
        if is(name, "EXISTS") {
            if let Some(Err(e)) = values.iter().find(|r| r.is_err()) {
                proto::error(out, e);
                return;
            }
            proto::int(out, values.iter().filter(|r| matches!(r, Ok(Some(_)))).count() as i64);
            return;
        }
        proto::array(out, values.len());
        for value in values {
            match value {
                Ok(Some(value)) => proto::bulk(out, &value),
                // MGET answers nil for a key it cannot read, as Redis for a wrong type.
                Ok(None) | Err(_) => proto::null(out, v),
            }
        }
        return;
    }
    if is(name, "SET") {
        let frame = match elsewhere(shared, client, &args[1]) {
            Some(owner) => match forward(shared, owner, args).await {
                Ok(frame) => frame,
                Err(why) => unforwarded(shared, args, &why).await,
            },
            None => set(shared, args).await,
        };
        proto::frame(out, &frame, v);
        return;
    }
    if is(name, "DEL") || is(name, "UNLINK") {
        let mut deleted = 0;
        for key in &args[1..] {
            let one = [name.clone(), key.clone()];
            let frame = match elsewhere(shared, client, key) {
                Some(owner) => match forward(shared, owner, &one).await {
                    Ok(frame) => frame,
                    Err(why) => unforwarded(shared, &one, &why).await,
                },
                None => delete(shared, key, true).await,
            };
            match frame {
                Frame::Integer(n) => deleted += n,
                Frame::Error(e) => {
                    proto::error(out, &e);
                    return;
                }
                other => {
                    proto::error(out, &format!("ERR unexpected DEL reply {other:?}"));
                    return;
                }
            }
        }
        proto::int(out, deleted);
        return;
    }
    unknown(out, &args.iter().map(Vec::as_slice).collect::<Vec<_>>());
}

/// One key's value for MGET/EXISTS: from its owner, or read through here.
async fn get_anywhere(shared: &Shared, client: &Client, key: &[u8]) -> Result<Option<Bytes>, String> {
    if let Some(owner) = elsewhere(shared, client, key) {
        let get = [b"GET".to_vec(), key.to_vec()];
        let frame = match forward(shared, owner, &get).await {
            Ok(frame) => frame,
            Err(why) => unforwarded(shared, &get, &why).await,
        };
        return match frame {
            Frame::Bulk(b) => Ok(Some(b)),
            Frame::Null => Ok(None),
            Frame::Error(e) => Err(e),
            other => Err(format!("ERR unexpected reply {other:?}")),
        };
    }
    read_key(shared, key, None).await
}

/// Read-through (crate docs): a hit, else one fill per key with the others waiting for it.
pub async fn read_key(shared: &Shared, key: &[u8], prior: Option<Lookup>) -> Result<Option<Bytes>, String> {
    enum Plan {
        Fill { token: LeaseToken, epoch: u64, tx: tokio::sync::watch::Sender<Option<FillResult>> },
        Wait(tokio::sync::watch::Receiver<Option<FillResult>>),
        Direct,
    }
    let plan = {
        let mut inner = shared.lock();
        let now = shared.now();
        if !inner.serving {
            shared.counters.bypass_reads.fetch_add(1, Ordering::Relaxed);
            Plan::Direct
        } else {
            let lookup = match prior {
                Some(lookup) => lookup,
                None => match inner.cache.get_with(key, now, Bytes::copy_from_slice) {
                    Ok(value) => return Ok(Some(value)),
                    Err(lookup) => lookup,
                },
            };
            match lookup {
                Lookup::Hit(value) => return Ok(Some(value.into())),
                Lookup::Miss { lease: Some(token) } => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    inner.inflight.insert(key.to_vec(), (token.0, rx));
                    Plan::Fill { token, epoch: inner.epoch, tx }
                }
                Lookup::Miss { lease: None } => Plan::Direct,
                Lookup::MissWait { .. } | Lookup::Stale(_) => match inner.inflight.get(key) {
                    Some((_, rx)) => Plan::Wait(rx.clone()),
                    // The lease is a look-aside client's: read for ourselves, do not fill.
                    None => Plan::Direct,
                },
            }
        }
    };
    match plan {
        Plan::Direct => direct_read(shared, key).await,
        Plan::Wait(mut rx) => {
            shared.counters.fill_waits.fetch_add(1, Ordering::Relaxed);
            // (The borrow `wait_for` returns is a lock guard: cloned and dropped before any await.)
            let waited: Option<FillResult> =
                match tokio::time::timeout(shared.options.lease_period, rx.wait_for(Option::is_some)).await {
                    Ok(Ok(result)) => result.clone(),
                    _ => None,
                };
            match waited {
                Some(result) => result,
                None => direct_read(shared, key).await,
            }
        }
        Plan::Fill { token, epoch, tx } => {
            shared.counters.db_reads.fetch_add(1, Ordering::Relaxed);
            let read = shared.db.getrev(key).await;
            let result: FillResult = {
                let mut inner = shared.lock();
                let now = shared.now();
                let current = inner.epoch == epoch && inner.serving;
                let result = match read {
                    Ok(Ok((Some(value), revision))) => {
                        if current {
                            let fill = Fill { lease: Some(token), version: revision, ttl: None };
                            if inner.cache.set(key, value.to_vec(), fill, now).is_err() {
                                shared.counters.too_large.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(Some(value))
                    }
                    Ok(Ok((None, _))) => Ok(None),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(e.reply()),
                };
                // A lease not spent by a fill (absent key, error, too large) is given back so
                // that the next reader does not wait out the lease period.
                if inner.cache.lease_is_valid(key, token, now) {
                    inner.cache.delete(key, now);
                }
                if inner.inflight.get(key).is_some_and(|(id, _)| *id == token.0) {
                    inner.inflight.remove(key);
                }
                result
            };
            let _ = tx.send(Some(result.clone()));
            result
        }
    }
}

async fn direct_read(shared: &Shared, key: &[u8]) -> Result<Option<Bytes>, String> {
    shared.counters.db_reads.fetch_add(1, Ordering::Relaxed);
    match shared.db.getrev(key).await {
        Ok(Ok((value, _))) => Ok(value),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.reply()),
    }
}

/// What `SET`'s options say about the value's life here: `Ok(Some(ttl))`, `Ok(None)` for no TTL,
/// or `Err(())` when the cache cannot know it (`KEEPTTL`): then nothing is installed.
fn set_ttl(options: &[Vec<u8>]) -> Result<Option<Duration>, ()> {
    let number = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok());
    let since_epoch_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let mut i = 0;
    while i < options.len() {
        let word = &options[i];
        let arg = options.get(i + 1).and_then(|a| number(a));
        let ttl = if is(word, "EX") {
            arg.map(Duration::from_secs)
        } else if is(word, "PX") {
            arg.map(Duration::from_millis)
        } else if is(word, "EXAT") {
            arg.map(|s| Duration::from_millis((s * 1000).saturating_sub(since_epoch_ms()).max(1)))
        } else if is(word, "PXAT") {
            arg.map(|ms| Duration::from_millis(ms.saturating_sub(since_epoch_ms()).max(1)))
        } else if is(word, "KEEPTTL") {
            return Err(());
        } else {
            i += 1;
            continue;
        };
        // The database checks the syntax; an unreadable number just means no install.
        return ttl.map(Some).ok_or(());
    }
    Ok(None)
}

/// `SET` through this node (crate docs: write-through or write-around).
async fn set(shared: &Shared, args: &[Vec<u8>]) -> Frame {
    let (key, value) = (&args[1], &args[2]);
    if let Some(e) = too_large(shared, key, value) {
        return Frame::Error(e);
    }
    let mut args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let mut policy = shared.options.write_policy;
    if args.len() > 3 {
        let last = args[args.len() - 1];
        if is(last, "THROUGH") || is(last, "AROUND") {
            policy = if is(last, "THROUGH") { WritePolicy::Through } else { WritePolicy::Around };
            args.pop();
        }
    }
    let ttl = set_ttl(&args[3..].iter().map(|a| a.to_vec()).collect::<Vec<_>>());
    shared.counters.db_writes.fetch_add(1, Ordering::Relaxed);
    match (policy, ttl) {
        (WritePolicy::Through, Ok(ttl)) => {
            let epoch = shared.lock().epoch;
            let getrev: [&[u8]; 2] = [b"GETREV", key];
            let replies = match shared.db.call(&[args.as_slice(), &getrev[..]]).await {
                Ok(replies) => replies,
                Err(e) => return Frame::Error(e.reply()),
            };
            let mut replies = replies.into_iter();
            let set_reply = replies.next().unwrap_or(Frame::Null);
            let read = replies.next().map(parse_getrev);
            let mut inner = shared.lock();
            let now = shared.now();
            if set_reply.is_error() {
                return set_reply;
            }
            match read {
                Some(Ok((Some(value), revision))) if inner.epoch == epoch && inner.serving => {
                    let fill = Fill { lease: None, version: revision, ttl };
                    let _ = inner.cache.set(key, value.to_vec(), fill, now);
                }
                // Absent (NX lost, expired at once) or unreadable: make sure no old value stays.
                _ => {
                    inner.cache.delete(key, now);
                }
            }
            set_reply
        }
        _ => {
            let reply = match shared.db.call(&[args.as_slice()]).await {
                Ok(mut replies) => replies.remove(0),
                Err(e) => return Frame::Error(e.reply()),
            };
            let now = shared.now();
            shared.lock().cache.delete(key, now);
            reply
        }
    }
}

/// `DEL key` through this node: the database first, then this node's copy.
async fn delete(shared: &Shared, key: &[u8], local: bool) -> Frame {
    shared.counters.db_writes.fetch_add(1, Ordering::Relaxed);
    let del: [&[u8]; 2] = [b"DEL", key];
    let reply = match shared.db.call(&[&del[..]]).await {
        Ok(mut replies) => replies.remove(0),
        Err(e) => return Frame::Error(e.reply()),
    };
    if local {
        let now = shared.now();
        shared.lock().cache.delete(key, now);
    }
    reply
}

/// A request for a key whose owner cannot be reached: answered from the database, caching nothing
/// (the owner, when it is back, learns of writes from its feed).
async fn unforwarded(shared: &Shared, args: &[Vec<u8>], why: &str) -> Frame {
    let name = &args[0];
    if is(name, "GET") {
        return match direct_read(shared, &args[1]).await {
            Ok(Some(value)) => Frame::Bulk(value),
            Ok(None) => Frame::Null,
            Err(e) => Frame::Error(e),
        };
    }
    if is(name, "DEL") || is(name, "UNLINK") {
        return delete(shared, &args[1], false).await;
    }
    if is(name, "SET") {
        let mut args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        if args.len() > 3 && (is(args[args.len() - 1], "THROUGH") || is(args[args.len() - 1], "AROUND")) {
            args.pop();
        }
        shared.counters.db_writes.fetch_add(1, Ordering::Relaxed);
        return match shared.db.call(&[args.as_slice()]).await {
            Ok(mut replies) => replies.remove(0),
            Err(e) => Frame::Error(e.reply()),
        };
    }
    if is(name, "LGET") {
        return Frame::Array(vec![Frame::bulk("miss")]);
    }
    if is(name, "LSET") {
        return Frame::Simple("NOT_SERVING".into());
    }
    Frame::Error(format!("TRYAGAIN the cache node owning this key is unreachable: {why}"))
}

// ---------------------------------------------------------------------------------------------
// Forwarding
// ---------------------------------------------------------------------------------------------

/// Idle connections to the other cache nodes, each marked `CACHE PEER`.
#[derive(Default)]
pub struct Peers {
    pools: Mutex<HashMap<SocketAddr, Vec<Conn>>>,
}

async fn forward(shared: &Shared, owner: usize, args: &[Vec<u8>]) -> Result<Frame, String> {
    shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    let addr = shared.tier.members[owner];
    let request: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    for attempt in 0..2 {
        let pooled = shared.peers.pools.lock().expect("peer pool").get_mut(&addr).and_then(Vec::pop);
        let fresh = pooled.is_none();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let mut conn = Conn::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
                // The tier shares one password: a peer authenticates as any client does.
                if let Some(password) = &shared.options.requirepass {
                    match conn.call1(&[b"AUTH", password.as_bytes()]).await {
                        Ok(Frame::Simple(_)) => {}
                        Ok(other) => return Err(format!("{addr} refused the tier's password: {other:?}")),
                        Err(e) => return Err(format!("{addr}: {e}")),
                    }
                }
                match conn.call1(&[b"CACHE", b"PEER"]).await {
                    Ok(Frame::Simple(_)) => conn,
                    Ok(other) => return Err(format!("{addr} is not a cache node: {other:?}")),
                    Err(e) => return Err(format!("{addr}: {e}")),
                }
            }
        };
        match conn.call1(&request).await {
            Ok(frame) => {
                let mut pools = shared.peers.pools.lock().expect("peer pool");
                let idle = pools.entry(addr).or_default();
                if idle.len() < 64 {
                    idle.push(conn);
                }
                return Ok(frame);
            }
            // A pooled connection may have been closed by a restart of the peer: one retry.
            Err(e) if fresh || attempt == 1 => return Err(format!("{addr}: {e}")),
            Err(_) => continue,
        }
    }
    Err(format!("{addr}: unreachable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_options_give_the_ttl_or_say_it_cannot_be_known() {
        let words = |s: &str| {
            s.split(' ').filter(|w| !w.is_empty()).map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>()
        };
        assert_eq!(set_ttl(&words("")), Ok(None));
        assert_eq!(set_ttl(&words("EX 10")), Ok(Some(Duration::from_secs(10))));
        assert_eq!(set_ttl(&words("NX px 1500")), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(set_ttl(&words("KEEPTTL")), Err(()));
        assert_eq!(set_ttl(&words("EX nope")), Err(()));
    }
}

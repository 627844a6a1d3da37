//! Introspection (`INFO`, `ROLE`, `TIME`, `CLIENT LIST|KILL`, `SLOWLOG`, `CONFIG GET|SET`) and
//! error fidelity (unknown commands, oversized values), over raw sockets; compared with a real
//! redis-server where the shape must match, and driven by redis-py.
//!
//! Without redis-server or python3's redis package the tests that need them print why they are
//! skipped; under `CI` they fail.

mod common;

use common::redis::{call, parse_value, Redis};
use common::{have_program, python, resp, Conn, TestServer};
use concord_kv::KvLimits;
use concord_resp::RespConfig;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// A bulk (or verbatim) reply's payload.
fn payload(reply: Vec<u8>) -> String {
    let raw = text(reply);
    let body = raw.split_once("\r\n").map(|(_, b)| b).unwrap_or_default();
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    body.strip_prefix("txt:").unwrap_or(body).to_string()
}

/// `INFO` text as (section, [field names]).
fn info_fields(info: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in info.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            sections.push((name.to_string(), vec![]));
        } else if let Some((key, _)) = line.split_once(':') {
            if let Some(last) = sections.last_mut() {
                last.1.push(key.to_string());
            }
        }
    }
    sections
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
}

#[test]
fn an_oversized_value_is_refused_with_the_limit_and_the_connection_goes_on() {
    let limits = KvLimits::default();
    let server = TestServer::start_with(limits.clone(), RespConfig::for_kv_limits(&limits));
    let mut conn = server.connect();
    let big = 2_000_000;
    assert!(big > limits.max_value_bytes);
    let mut request = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${big}\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b'v', big));
    request.extend_from_slice(b"\r\n");
    // Sent in pieces, as a client's socket would.
    for piece in request.chunks(64 * 1024) {
        conn.send(piece);
    }
    let reply = format!("-ERR value is {big} bytes; the limit is {}\r\n", limits.max_value_bytes);
    let (got, closed) = conn.read_for(reply.len(), WAIT);
    assert_eq!(text(got), reply);
    assert!(!closed);
    // The same connection goes on, and nothing was written.
    conn.expect(&resp(&["PING"]), b"+PONG\r\n");
    conn.expect(&resp(&["GET", "k"]), b"$-1\r\n");
    // Inside MULTI it dooms the transaction, as any refused command does.
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.send(&request);
    let (got, _) = conn.read_for(reply.len(), WAIT);
    assert_eq!(text(got), reply);
    conn.expect(&resp(&["EXEC"]), b"-EXECABORT Transaction discarded because of previous errors.\r\n");
    // Beyond the hard cap (redis's proto-max-bulk-len) it is a protocol error, and the end.
    let error = b"-ERR Protocol error: invalid bulk length\r\n";
    conn.expect(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n", error);
    assert!(conn.closed_within(WAIT));
    // CONFIG GET tells the limit.
    let mut conn = server.connect();
    let limit = limits.max_value_bytes.to_string();
    let reply = call(&mut conn, &["CONFIG", "GET", "proto-max-bulk-len"]);
    assert_eq!(text(reply), format!("*2\r\n$18\r\nproto-max-bulk-len\r\n${}\r\n{limit}\r\n", limit.len()));
}

#[test]
fn info_stats_keyspace_and_clients_are_measured() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    call(&mut conn, &["SET", "a", "1"]);
    call(&mut conn, &["SET", "b", "2", "EX", "100"]);
    call(&mut conn, &["GET", "a"]);
    call(&mut conn, &["GET", "nope"]);
    call(&mut conn, &["MGET", "a", "b", "nope"]);
    assert_eq!(
        payload(call(&mut conn, &["INFO", "KEYSPACE"])),
        "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"
    );
    let mut other = server.connect();
    call(&mut other, &["CLIENT", "SETNAME", "watcher"]);
    let info = payload(call(&mut conn, &["INFO", "stats", "clients", "memory", "server"]));
    let sections: Vec<String> = info_fields(&info).into_iter().map(|(s, _)| s).collect();
    assert_eq!(sections, ["Server", "Clients", "Memory", "Stats"], "{info}");
    assert_eq!(field(&info, "connected_clients"), Some("2"));
    assert_eq!(field(&info, "keyspace_hits"), Some("3"), "{info}");
    assert_eq!(field(&info, "keyspace_misses"), Some("2"), "{info}");
    assert_eq!(field(&info, "total_connections_received"), Some("2"));
    let commands: u64 = field(&info, "total_commands_processed").unwrap().parse().unwrap();
    assert_eq!(commands, 8, "{info}");
    assert!(field(&info, "total_net_input_bytes").unwrap().parse::<u64>().unwrap() > 100);
    assert_eq!(field(&info, "tcp_port"), Some(server.port().to_string().as_str()));
    assert_eq!(field(&info, "process_id"), Some(std::process::id().to_string().as_str()));
    if cfg!(target_os = "linux") {
        assert!(field(&info, "used_memory_rss").unwrap().parse::<u64>().unwrap() > 1 << 20, "{info}");
    }
    // CONFIG RESETSTAT zeroes the counters.
    assert_eq!(call(&mut conn, &["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    let info = payload(call(&mut conn, &["INFO", "stats"]));
    assert_eq!(field(&info, "keyspace_hits"), Some("0"), "{info}");
    // The default, `all` and `everything` are every section.
    let all = payload(call(&mut conn, &["INFO"]));
    for wanted in ["all", "everything", "default"] {
        let other = payload(call(&mut conn, &["INFO", wanted]));
        assert_eq!(info_fields(&other).len(), info_fields(&all).len(), "INFO {wanted}");
    }
    assert!(all.contains("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"), "{all}");
}

#[test]
fn client_list_and_kill_see_and_close_other_connections() {
    let server = TestServer::start(RespConfig::default());
    let mut me = server.connect();
    let mut victim = server.connect();
    call(&mut victim, &["CLIENT", "SETNAME", "victim"]);
    call(&mut victim, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]);
    let victim_id = text(call(&mut victim, &["CLIENT", "ID"]));
    let victim_id = victim_id.trim_start_matches(':').trim().to_string();
    let list = payload(call(&mut me, &["CLIENT", "LIST"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let theirs = lines.iter().find(|l| l.contains("name=victim")).expect("the victim is listed");
    assert!(theirs.starts_with(&format!("id={victim_id} addr=127.0.0.1:")), "{theirs}");
    // Its last command, and what it said of itself.
    assert!(theirs.contains(" cmd=client|id ") && theirs.contains(" lib-name=redis-py "), "{theirs}");
    let mine = lines.iter().find(|l| !l.contains("name=victim")).unwrap();
    assert!(mine.contains(" cmd=client|list "), "{mine}");
    // Filters.
    let only = payload(call(&mut me, &["CLIENT", "LIST", "ID", &victim_id]));
    assert_eq!(only.lines().count(), 1);
    assert!(only.contains("name=victim"));
    assert_eq!(call(&mut me, &["CLIENT", "KILL", "ID", "999999"]), b":0\r\n");
    assert_eq!(call(&mut me, &["CLIENT", "KILL", "USER", "default", "ID", &victim_id]), b":1\r\n");
    assert!(victim.closed_within(WAIT), "the victim's connection closes");
    // The old form, and SKIPME (default yes): killing by my own address spares me…
    let mut third = server.connect();
    call(&mut third, &["PING"]); // registered by now
    let third_addr = third.stream.local_addr().unwrap().to_string();
    assert_eq!(call(&mut me, &["CLIENT", "KILL", &third_addr]), b"+OK\r\n");
    assert!(third.closed_within(WAIT));
    let my_addr = me.stream.local_addr().unwrap().to_string();
    assert_eq!(call(&mut me, &["CLIENT", "KILL", "ADDR", &my_addr]), b":0\r\n");
    // …unless SKIPME no: the reply, then the close.
    assert_eq!(call(&mut me, &["CLIENT", "KILL", "ADDR", &my_addr, "SKIPME", "no"]), b":1\r\n");
    assert!(me.closed_within(WAIT));
}

#[test]
fn the_slowlog_measures_commands_and_config_set_changes_it() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    assert_eq!(call(&mut conn, &["SLOWLOG", "LEN"]), b":0\r\n");
    // 0 µs: every command is logged, with its real time.
    assert_eq!(call(&mut conn, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]), b"+OK\r\n");
    call(&mut conn, &["SET", "k", "v"]);
    call(&mut conn, &["CLIENT", "SETNAME", "me"]);
    let reply = call(&mut conn, &["SLOWLOG", "GET", "2"]);
    let entries = parse_value(&reply);
    assert_eq!(entries.items.len(), 2);
    let newest = &entries.items[0];
    assert_eq!(newest.items.len(), 6);
    let args: Vec<String> = newest.items[3].items.iter().map(|a| payload(a.raw.clone())).collect();
    assert_eq!(args, ["CLIENT", "SETNAME", "me"]);
    let set = &entries.items[1];
    let args: Vec<String> = set.items[3].items.iter().map(|a| payload(a.raw.clone())).collect();
    assert_eq!(args, ["SET", "k", "v"]);
    let micros: i64 = text(set.items[2].raw.clone()).trim_start_matches(':').trim().parse().unwrap();
    assert!((0..5_000_000).contains(&micros), "{micros}");
    let addr = conn.stream.local_addr().unwrap().to_string();
    assert_eq!(payload(set.items[4].raw.clone()), addr);
    // Off, then the length bound.
    assert_eq!(call(&mut conn, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]), b"+OK\r\n");
    let len = text(call(&mut conn, &["SLOWLOG", "LEN"]));
    call(&mut conn, &["GET", "k"]);
    assert_eq!(text(call(&mut conn, &["SLOWLOG", "LEN"])), len);
    assert_eq!(call(&mut conn, &["CONFIG", "SET", "slowlog-max-len", "1"]), b"+OK\r\n");
    assert_eq!(call(&mut conn, &["SLOWLOG", "LEN"]), b":1\r\n");
    let reply = text(call(&mut conn, &["CONFIG", "GET", "slowlog*"]));
    assert!(reply.contains("slowlog-log-slower-than\r\n$2\r\n-1\r\n"), "{reply}");
    assert!(reply.contains("slowlog-max-len\r\n$1\r\n1\r\n"), "{reply}");
    assert_eq!(call(&mut conn, &["SLOWLOG", "RESET"]), b"+OK\r\n");
    assert_eq!(call(&mut conn, &["SLOWLOG", "LEN"]), b":0\r\n");
    // Other parameters are the configuration file's.
    let reply = text(call(&mut conn, &["CONFIG", "SET", "maxmemory", "1gb"]));
    assert!(
        reply.starts_with("-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - Concord"),
        "{reply}"
    );
}

/// Both servers' raw replies to `args` (ports normalised).
fn both(
    redis: &mut Conn,
    redis_port: u16,
    ours: &mut Conn,
    our_port: u16,
    args: &[&str],
) -> (String, String) {
    let theirs = text(call(redis, args)).replace(&redis_port.to_string(), "PORT");
    let mine = text(call(ours, args)).replace(&our_port.to_string(), "PORT");
    (mine, theirs)
}

#[test]
fn replies_have_redis_servers_shape() {
    let Some(redis) = Redis::start(false) else { return };
    let server = TestServer::start(RespConfig::default());
    let (mut theirs, mut ours) = (redis.connect(), server.connect());
    let (rp, op) = (redis.port, server.port());
    let mut same = |args: &[&str]| {
        let (mine, redis_says) = both(&mut theirs, rp, &mut ours, op, args);
        assert_eq!(mine, redis_says, "replies to {args:?} differ (left: Concord, right: redis-server)");
    };
    for args in [
        &["FOO", "a"][..],
        &["foo"],
        &["foo", "a", "b"],
        &["ROLE"],
        &["SLOWLOG", "HELP"],
        &["SLOWLOG", "RESET"],
        &["SLOWLOG", "LEN"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "NOSUCH"],
        &["CONFIG", "SET", "slowlog-max-len", "-5"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "x"],
        &["CONFIG", "SET", "foo", "1"],
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "GET", "slowlog-max-len"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "99"],
        &["CLIENT", "KILL", "ID", "x"],
        &["CLIENT", "KILL", "USER", "nosuch"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "LIST", "ID", "x"],
        &["INFO", "keyspace"],
        &["TIME", "x"],
    ] {
        same(args);
    }
    // TIME: two bulk strings of digits, the same second give or take.
    let (mine, redis_says) = both(&mut theirs, rp, &mut ours, op, &["TIME"]);
    let (mine, redis_says) = (parse_value(mine.as_bytes()), parse_value(redis_says.as_bytes()));
    assert_eq!(mine.items.len(), 2);
    let secs = |v: &common::redis::Value| payload(v.items[0].raw.clone()).parse::<i64>().unwrap();
    assert!((secs(&mine) - secs(&redis_says)).abs() <= 5);
    // SLOWLOG GET entries: the same six fields, of the same types.
    for conn in [&mut theirs, &mut ours] {
        call(conn, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        call(conn, &["PING"]);
    }
    let (mine, redis_says) = both(&mut theirs, rp, &mut ours, op, &["SLOWLOG", "GET", "1"]);
    let kinds = |reply: &str| -> Vec<u8> {
        parse_value(reply.as_bytes()).items[0].items.iter().map(|i| i.raw[0]).collect()
    };
    assert_eq!(kinds(&mine), kinds(&redis_says), "{mine} {redis_says}");
    // INFO: every section and field Concord shows is redis-server's (but its own `concord_*`
    // fields and the backend's sections), in redis-server's order.
    let (mine, redis_says) = both(&mut theirs, rp, &mut ours, op, &["INFO", "everything"]);
    let (mine, redis_says) = (info_fields(&payload(mine.into())), info_fields(&payload(redis_says.into())));
    let redis_sections: Vec<&String> = redis_says.iter().map(|(s, _)| s).collect();
    let mut at = 0;
    for (section, fields) in &mine {
        let Some(i) = redis_sections.iter().position(|s| *s == section) else {
            assert!(
                ["Raft", "Backend"].contains(&section.as_str()),
                "section {section} is not redis-server's"
            );
            continue;
        };
        assert!(i >= at, "section {section} is out of redis-server's order");
        at = i;
        let known: BTreeSet<&String> = redis_says[i].1.iter().collect();
        for f in fields {
            assert!(
                f.starts_with("concord_") || known.contains(f),
                "INFO {section}: {f} is not redis-server's"
            );
        }
    }
    // CLIENT LIST: Concord's fields are redis-server's, in its order (then 7.2's lib-name and
    // lib-ver, and Concord's consistency).
    let (mine, redis_says) = both(&mut theirs, rp, &mut ours, op, &["CLIENT", "INFO"]);
    let keys = |line: String| -> Vec<String> {
        line.split_whitespace().filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string())).collect()
    };
    let (mine, redis_keys) = (keys(payload(mine.into())), keys(payload(redis_says.into())));
    let mut at = 0;
    for key in mine.iter().filter(|k| !["lib-name", "lib-ver", "consistency"].contains(&k.as_str())) {
        let i = redis_keys.iter().position(|r| r == key).unwrap_or_else(|| panic!("CLIENT INFO {key}"));
        assert!(i >= at, "CLIENT INFO {key} is out of order");
        at = i;
    }
}

const REDIS_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]), protocol=int(sys.argv[2]))
r.set("a", "1"); r.set("b", "2", ex=100)
info = r.info()
assert info["redis_version"].startswith("7."), info
assert info["role"] == "master" and info["connected_clients"] >= 1, info
assert isinstance(info["used_memory"], int) and info["used_memory"] > 0, info
assert r.info("keyspace")["db0"] == {"keys": 2, "expires": 1, "avg_ttl": 0}, r.info("keyspace")
assert "total_commands_processed" in r.info("stats")
clients = r.client_list()
assert len(clients) == 1 and clients[0]["db"] == "0" and "addr" in clients[0], clients
assert r.config_get("maxmemory") == {"maxmemory": "0"}, r.config_get("maxmemory")
r.config_set("slowlog-log-slower-than", 0)
r.get("a")
log = r.slowlog_get(1)
assert len(log) == 1 and log[0]["command"] == b"GET a" and log[0]["duration"] >= 0, log
assert r.slowlog_len() >= 1
assert r.slowlog_reset()
role = r.role()
assert role[0] == b"master" and role[1] == 0 and role[2] == [], role
secs, micros = r.time()
assert secs > 1_600_000_000 and 0 <= micros < 1_000_000
try:
    r.execute_command("NOSUCH", "x")
    raise SystemExit("no error")
except redis.ResponseError as e:
    assert str(e).startswith("unknown command 'NOSUCH'"), e
print("ok")
"#;

#[test]
fn redis_py_reads_info_clients_slowlog_config_role_and_time() {
    if !have_program("python3", &["-c", "import redis"], "pip install redis") {
        return;
    }
    for protocol in ["2", "3"] {
        let server = TestServer::start(RespConfig::default());
        assert_eq!(python(REDIS_PY, &[&server.port().to_string(), protocol]), "ok", "RESP{protocol}");
    }
}

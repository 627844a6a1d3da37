//! The server over raw TCP: bad input gets a precise error, a broken connection does not disturb
//! the others, and authentication, limits, pipelining, TTLs and shutdown behave as documented.

mod common;

use common::{resp, TestServer};
use concord_kv::KvLimits;
use concord_resp::RespConfig;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// Send `request` on a new connection: expect `reply`, then the server closing the connection –
/// while a bystander connection opened before keeps being served.
fn refused_and_closed(server: &TestServer, request: &[u8], reply: &str) {
    let mut bystander = server.connect();
    bystander.expect(b"PING\r\n", b"+PONG\r\n");
    let mut bad = server.connect();
    bad.expect(request, reply.as_bytes());
    assert!(bad.closed_within(WAIT), "connection still open after {reply:?}");
    bystander.expect(&resp(&["SET", "k", "v"]), b"+OK\r\n");
    bystander.expect(&resp(&["GET", "k"]), b"$1\r\nv\r\n");
    server.connect().expect(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn malformed_resp_gets_a_protocol_error_and_the_connection_closes() {
    let server = TestServer::start(RespConfig::default());
    refused_and_closed(&server, b"*1\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n");
    refused_and_closed(&server, b"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    refused_and_closed(&server, b"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    refused_and_closed(&server, b"SET a \"b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    refused_and_closed(
        &server,
        b"*2\r\n$3\r\nGET\r\n$1\r\nkX\r\n",
        "-ERR Protocol error: bulk string of 1 bytes is not followed by CRLF\r\n",
    );
    refused_and_closed(&server, &[b'x'; 70_000], "-ERR Protocol error: too big inline request\r\n");
}

#[test]
fn an_oversized_bulk_is_refused_from_its_header_and_passed_over() {
    let limits = KvLimits { max_value_bytes: 1024, max_key_bytes: 64, ..KvLimits::default() };
    let server = TestServer::start_with(limits.clone(), RespConfig::for_kv_limits(&limits));
    // Only the header is sent: the server answers without waiting for the 2000 bytes, with the
    // KV store's reason, and keeps the connection: the payload is passed over when it comes.
    let mut conn = server.connect();
    conn.expect(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n",
        b"-ERR value is 2000 bytes; the limit is 1024\r\n",
    );
    conn.send(&[b'v'; 2000]);
    conn.expect(b"\r\nPING\r\n", b"+PONG\r\n");
    // Beyond the hard cap (Redis's proto-max-bulk-len) it is a protocol error, and the end.
    refused_and_closed(
        &server,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    // At the limit it is accepted; a key over the KV key limit gets the KV store's message.
    let mut conn = server.connect();
    conn.expect(&resp(&["SET", "k", &"v".repeat(1024)]), b"+OK\r\n");
    conn.expect(&resp(&["SET", &"k".repeat(65), "v"]), b"-ERR key is 65 bytes; the limit is 64\r\n");
}

#[test]
fn command_errors_keep_the_connection_open() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    conn.expect(b"FOO a b\r\n", b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
    conn.expect(&resp(&["GET"]), b"-ERR wrong number of arguments for 'get' command\r\n");
    conn.expect(&resp(&["SET", "k", "v", "NX", "XX"]), b"-ERR syntax error\r\n");
    conn.expect(&resp(&["SET", "k", "v", "EX", "0"]), b"-ERR invalid expire time in 'set' command\r\n");
    conn.expect(&resp(&["INCRBY", "n", "1.5"]), b"-ERR value is not an integer or out of range\r\n");
    conn.expect(&resp(&["CLIENT", "NOPE"]), b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n");
    conn.expect(&resp(&["SELECT", "1"]), b"-ERR DB index is out of range (Concord has one database: 0)\r\n");
    conn.expect(&resp(&["SCAN", "abc"]), b"-ERR invalid cursor\r\n");
    // Garbage that is still a well-formed inline request is an unknown command.
    conn.expect(
        b"\x01\x02 \xff\r\n",
        "-ERR unknown command '\u{1}\u{2}', with args beginning with: '\u{fffd}' \r\n".as_bytes(),
    );
    conn.expect(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..200 {
        batch.extend(resp(&["SET", "k", &i.to_string()]));
        expected.extend(b"+OK\r\n");
        batch.extend(resp(&["GET", "k"]));
        expected.extend(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
        batch.extend(resp(&["INCR", "n"]));
        expected.extend(format!(":{}\r\n", i + 1).as_bytes());
    }
    conn.expect(&batch, &expected);
}

#[test]
fn requirepass_demands_auth_first() {
    let config = RespConfig { requirepass: Some("sesame".into()), ..RespConfig::default() };
    let server = TestServer::start(config);
    let mut conn = server.connect();
    conn.expect(b"PING\r\n", b"-NOAUTH Authentication required.\r\n");
    conn.expect(&resp(&["GET", "k"]), b"-NOAUTH Authentication required.\r\n");
    conn.expect(
        &resp(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    conn.expect(&resp(&["AUTH", "sesame"]), b"+OK\r\n");
    conn.expect(b"PING\r\n", b"+PONG\r\n");
    // HELLO can authenticate and switch to RESP3 at once.
    let mut resp3 = server.connect();
    resp3.send(&resp(&["HELLO", "3", "AUTH", "default", "sesame"]));
    let (hello, _) = resp3.read_for(usize::MAX, Duration::from_millis(300));
    assert!(
        hello.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    resp3.expect(&resp(&["GET", "missing"]), b"_\r\n");
    // Before authentication, requests are kept small (Redis's limits for anonymous clients).
    refused_and_closed_anonymous(&server);
}

fn refused_and_closed_anonymous(server: &TestServer) {
    let mut conn = server.connect();
    conn.expect(b"*11\r\n", b"-ERR Protocol error: invalid multibulk length\r\n");
    assert!(conn.closed_within(WAIT));
}

#[test]
fn connections_beyond_max_clients_are_turned_away() {
    let server = TestServer::start(RespConfig { max_clients: 1, ..RespConfig::default() });
    let mut first = server.connect();
    first.expect(b"PING\r\n", b"+PONG\r\n");
    let mut second = server.connect();
    second.expect(b"", b"-ERR max number of clients reached\r\n");
    assert!(second.closed_within(WAIT));
    drop(first);
    // The slot is free again once the first client has gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut third = server.connect();
        third.send(b"PING\r\n");
        let (reply, _) = third.read_for(7, Duration::from_secs(1));
        if reply == b"+PONG\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed: {:?}", String::from_utf8_lossy(&reply));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_connections_are_closed() {
    let server = TestServer::start(RespConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..RespConfig::default()
    });
    let mut conn = server.connect();
    conn.expect(b"PING\r\n", b"+PONG\r\n");
    let started = Instant::now();
    assert!(conn.closed_within(WAIT));
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[test]
fn ttls_follow_the_backend_clock() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    conn.expect(&resp(&["SET", "k", "v", "EX", "10"]), b"+OK\r\n");
    conn.expect(&resp(&["TTL", "k"]), b":10\r\n");
    server.advance_clock(4_000);
    conn.expect(&resp(&["PTTL", "k"]), b":6000\r\n");
    conn.expect(&resp(&["INCR", "k"]), b"-ERR value is not an integer or out of range\r\n");
    // KEEPTTL keeps the deadline; a plain SET drops it.
    conn.expect(&resp(&["SET", "k", "w", "KEEPTTL"]), b"+OK\r\n");
    conn.expect(&resp(&["PTTL", "k"]), b":6000\r\n");
    // EXPIRE options: GT only moves the deadline later, NX only sets one where there is none.
    conn.expect(&resp(&["EXPIRE", "k", "5", "GT"]), b":0\r\n");
    conn.expect(&resp(&["EXPIRE", "k", "7", "GT"]), b":1\r\n");
    conn.expect(&resp(&["EXPIRE", "k", "9", "NX"]), b":0\r\n");
    conn.expect(&resp(&["TTL", "k"]), b":7\r\n");
    server.advance_clock(7_000);
    conn.expect(&resp(&["GET", "k"]), b"$-1\r\n");
    conn.expect(&resp(&["TTL", "k"]), b":-2\r\n");
    // An absolute deadline in the past deletes the key, as in Redis.
    conn.expect(&resp(&["SET", "p", "v"]), b"+OK\r\n");
    conn.expect(&resp(&["SET", "p", "v", "PXAT", "1"]), b"+OK\r\n");
    conn.expect(&resp(&["EXISTS", "p"]), b":0\r\n");
}

/// A relative expiry whose deadline would pass i64::MAX ms is refused, as redis-server refuses
/// it, also when the key does not exist; and a stored integer is read in Redis's grammar (both
/// found by `concord difftest`).
#[test]
fn expiry_overflow_and_integer_grammar_match_redis() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    let max = "9223372036854775807";
    conn.expect(&resp(&["PEXPIRE", "missing", max]), b"-ERR invalid expire time in 'pexpire' command\r\n");
    conn.expect(&resp(&["PSETEX", "k", max, "v"]), b"-ERR invalid expire time in 'psetex' command\r\n");
    conn.expect(
        &resp(&["SETEX", "k", "9223372036854775", "v"]),
        b"-ERR invalid expire time in 'setex' command\r\n",
    );
    conn.expect(&resp(&["SET", "k", "v", "PX", max]), b"-ERR invalid expire time in 'set' command\r\n");
    conn.expect(&resp(&["EXISTS", "k"]), b":0\r\n");
    // An absolute deadline that large is a valid (far) future.
    conn.expect(&resp(&["SET", "k", "v", "PXAT", max]), b"+OK\r\n");
    conn.expect(&resp(&["SET", "n", "+1"]), b"+OK\r\n");
    conn.expect(&resp(&["INCR", "n"]), b"-ERR value is not an integer or out of range\r\n");
    conn.expect(&resp(&["SET", "n", "01"]), b"+OK\r\n");
    conn.expect(&resp(&["DECRBY", "n", "1"]), b"-ERR value is not an integer or out of range\r\n");
}

#[test]
fn scan_follows_long_keys_with_big_cursors() {
    let server = TestServer::start(RespConfig { keys_max: 40, ..RespConfig::default() });
    let mut conn = server.connect();
    let keys: Vec<String> = (0..50).map(|i| format!("a-rather-long-key-name-{i:03}")).collect();
    let mut mset = vec!["MSET"];
    for key in &keys {
        mset.push(key);
        mset.push("x");
    }
    conn.expect(&resp(&mset), b"+OK\r\n");
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        conn.send(&resp(&["SCAN", &cursor, "COUNT", "7"]));
        let (reply, _) = conn.read_for(usize::MAX, Duration::from_millis(100));
        let mut buf = bytes::BytesMut::from(&reply[..]);
        let frame = concord_resp::decode_frame(&mut buf, &Default::default()).unwrap().unwrap();
        let concord_resp::Frame::Array(parts) = frame else { panic!("{frame:?}") };
        let (concord_resp::Frame::Bulk(next), concord_resp::Frame::Array(page)) = (&parts[0], &parts[1])
        else {
            panic!("{parts:?}")
        };
        seen.extend(page.iter().map(|f| match f {
            concord_resp::Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }));
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, keys);
    // KEYS is bounded by keys_max.
    conn.expect(
        &resp(&["KEYS", "*"]),
        b"-ERR KEYS would return more than 40 keys (the server's keys_max); use SCAN to iterate\r\n",
    );
}

#[test]
fn transactions_run_every_data_command_atomically() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["SET", "a", "1"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["GETSET", "a", "2"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["INCRBY", "a", "5"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["HSET", "h", "f", "v"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["INCR", "h"]), b"+QUEUED\r\n");
    // Only the arity is checked when queued: SET's bad option is its reply inside EXEC, as Redis.
    conn.expect(&resp(&["SET", "a", "1", "EX", "0"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["APPEND", "a", "x"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["GET", "a"]), b"+QUEUED\r\n");
    conn.expect(
        &resp(&["EXEC"]),
        b"*8\r\n+OK\r\n$1\r\n1\r\n:7\r\n:1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
          -ERR invalid expire time in 'set' command\r\n:2\r\n$2\r\n7x\r\n",
    );
    // Outside MULTI: WRONGTYPE on the fast paths too (INCR's KV increment, MGET's nil).
    conn.expect(
        &resp(&["INCR", "h"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    conn.expect(&resp(&["MGET", "h", "a"]), b"*2\r\n$-1\r\n$2\r\n7x\r\n");
    conn.expect(&resp(&["SET", "a", "y", "NX", "GET"]), b"$2\r\n7x\r\n");
    conn.expect(
        &resp(&["SET", "h", "y", "GET"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    // Queue-time errors doom the transaction.
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["SET", "a", "3"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["INCR"]), b"-ERR wrong number of arguments for 'incr' command\r\n");
    conn.expect(&resp(&["EXEC"]), b"-EXECABORT Transaction discarded because of previous errors.\r\n");
    conn.expect(&resp(&["GET", "a"]), b"$2\r\n7x\r\n");
    conn.expect(&resp(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
}

/// Every command redis-server queues is queued, and EXEC answers each in its place, byte for byte
/// as redis-server 7.0 (this sequence's replies were taken from one; KEYS in byte order, where
/// redis-server's is its hash table's): keyspace reads see the
/// transaction's earlier writes, a blocking pop does not block, UNWATCH answers +OK, a front-door
/// command's own error (NOSCRIPT) is its reply.
#[test]
fn transactions_queue_every_command_redis_queues() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    conn.expect(&resp(&["SET", "b", "x"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    let queued: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["PING"],
        &["ECHO", "hi"],
        &["KEYS", "*"],
        &["DBSIZE"],
        &["UNWATCH"],
        &["PUBLISH", "ch", "m"],
        &["BLPOP", "nolist", "0"],
        &["SCAN", "0", "MATCH", "a*"],
        &["EXISTS", "a"],
        &["SELECT", "0"],
        &["EVALSHA", "0000000000000000000000000000000000000000", "0"],
        &["DEL", "a"],
        &["DBSIZE"],
    ];
    for args in queued {
        conn.expect(&resp(args), b"+QUEUED\r\n");
    }
    // Refused, and not queued, without dooming the transaction.
    conn.expect(&resp(&["MULTI"]), b"-ERR MULTI calls can not be nested\r\n");
    conn.expect(&resp(&["WATCH", "a"]), b"-ERR WATCH inside MULTI is not allowed\r\n");
    conn.expect(
        &resp(&["EXEC"]),
        b"*14\r\n+OK\r\n+PONG\r\n$2\r\nhi\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:2\r\n+OK\r\n:0\r\n*-1\r\n\
          *2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n:1\r\n+OK\r\n-NOSCRIPT No matching script. Please use EVAL.\r\n\
          :1\r\n:1\r\n",
    );
    // Only front-door commands, with a watched key that did not change: answered in order.
    conn.expect(&resp(&["WATCH", "b"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["PING"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*1\r\n+PONG\r\n");
    // ... and with one that did: a null array, as for any transaction.
    let mut other = server.connect();
    conn.expect(&resp(&["WATCH", "b"]), b"+OK\r\n");
    other.expect(&resp(&["SET", "b", "y"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["PING"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*-1\r\n");
    // A queue-time error (arity) still dooms it.
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["PING"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["SET", "a"]), b"-ERR wrong number of arguments for 'set' command\r\n");
    conn.expect(&resp(&["EXEC"]), b"-EXECABORT Transaction discarded because of previous errors.\r\n");
}

/// A key absent when watched, then created and deleted again by the same connection: absent
/// both times (revision 0), but redis-server fails EXEC for it – and for Concord too (found by
/// `concord difftest`, seed 2). A write that only reads the watched key leaves it clean.
#[test]
fn watch_sees_the_connections_own_create_and_delete_of_an_absent_key() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    let transaction = |conn: &mut common::Conn, reply: &[u8]| {
        conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
        conn.expect(&resp(&["PING"]), b"+QUEUED\r\n");
        conn.expect(&resp(&["EXEC"]), reply);
    };
    // A plain SET (the KV fast path).
    conn.expect(&resp(&["WATCH", "k"]), b"+OK\r\n");
    conn.expect(&resp(&["SET", "k", "1"]), b"+OK\r\n");
    conn.expect(&resp(&["DEL", "k"]), b":1\r\n");
    transaction(&mut conn, b"*-1\r\n");
    // An interpreter write.
    conn.expect(&resp(&["WATCH", "h"]), b"+OK\r\n");
    conn.expect(&resp(&["HSET", "h", "f", "v"]), b":1\r\n");
    conn.expect(&resp(&["DEL", "h"]), b":1\r\n");
    transaction(&mut conn, b"*-1\r\n");
    // A write that names the watched key only as a source: nothing changed.
    conn.expect(&resp(&["WATCH", "s"]), b"+OK\r\n");
    conn.expect(&resp(&["SINTERSTORE", "d", "s"]), b":0\r\n");
    transaction(&mut conn, b"*1\r\n+PONG\r\n");
    // EXEC forgot it all: the next transaction runs.
    transaction(&mut conn, b"*1\r\n+PONG\r\n");
}

#[test]
fn watch_fails_exec_when_a_watched_key_changes() {
    let server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    let mut other = server.connect();
    conn.expect(&resp(&["SET", "w", "1"]), b"+OK\r\n");
    conn.expect(&resp(&["WATCH", "w", "absent"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["WATCH", "x"]), b"-ERR WATCH inside MULTI is not allowed\r\n");
    conn.expect(&resp(&["INCR", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*1\r\n:2\r\n");
    // Another client writes a watched key between WATCH and EXEC: nothing runs, a null array.
    conn.expect(&resp(&["WATCH", "w"]), b"+OK\r\n");
    other.expect(&resp(&["SET", "w", "10"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["INCR", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*-1\r\n");
    conn.expect(&resp(&["GET", "w"]), b"$2\r\n10\r\n");
    // EXEC forgot the watch: the next transaction runs.
    other.expect(&resp(&["SET", "w", "20"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["INCR", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*1\r\n:21\r\n");
    // A key created after WATCH (absent: revision 0) fails it too; UNWATCH and DISCARD forget.
    conn.expect(&resp(&["WATCH", "new"]), b"+OK\r\n");
    other.expect(&resp(&["SET", "new", "1"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["GET", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*-1\r\n");
    conn.expect(&resp(&["WATCH", "w"]), b"+OK\r\n");
    conn.expect(&resp(&["UNWATCH"]), b"+OK\r\n");
    other.expect(&resp(&["DEL", "w"]), b":1\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["EXISTS", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"*1\r\n:0\r\n");
    // RESP3: the null is `_`.
    conn.send(&resp(&["HELLO", "3"]));
    let (hello, _) = conn.read_for(usize::MAX, Duration::from_millis(300));
    assert!(hello.starts_with(b"%"), "{}", String::from_utf8_lossy(&hello));
    conn.expect(&resp(&["WATCH", "w"]), b"+OK\r\n");
    other.expect(&resp(&["SET", "w", "1"]), b"+OK\r\n");
    conn.expect(&resp(&["MULTI"]), b"+OK\r\n");
    conn.expect(&resp(&["GET", "w"]), b"+QUEUED\r\n");
    conn.expect(&resp(&["EXEC"]), b"_\r\n");
}

#[test]
fn shutdown_stops_accepting_and_closes_connections() {
    let mut server = TestServer::start(RespConfig::default());
    let mut conn = server.connect();
    conn.expect(b"PING\r\n", b"+PONG\r\n");
    assert!(server.shutdown(WAIT), "serve did not return after shutdown");
    assert!(conn.closed_within(WAIT));
}

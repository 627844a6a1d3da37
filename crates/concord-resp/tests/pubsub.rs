//! Pub/Sub on one server, byte for byte as redis-server 7 answers: subscribe mode in RESP2, push
//! frames in RESP3, `PUBSUB` introspection, the slow-subscriber limit, and redis-py's `pubsub()`.
//! (Across nodes: `concord-server`'s `tests/pubsub.rs`.)

mod common;

use common::{have_program, python, Conn, TestServer};
use concord_resp::RespConfig;
use std::time::Duration;

const REDIS_PY: &str = "install the redis package for python3 (pip install redis)";

/// Send `request` (inline) and expect exactly `reply`.
fn expect(conn: &mut Conn, request: &str, reply: &str) {
    conn.expect(format!("{request}\r\n").as_bytes(), reply.as_bytes());
}

/// Expect `bytes` to arrive without sending anything (a message pushed by another connection).
fn expect_push(conn: &mut Conn, bytes: &str) {
    let (got, _) = conn.read_for(bytes.len(), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), bytes);
}

#[test]
fn resp2_subscribe_mode_is_redis_servers() {
    let server = TestServer::start(RespConfig::default());
    let mut sub = server.connect();
    let mut publisher = server.connect();
    expect(
        &mut sub,
        "SUBSCRIBE a b",
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    // Only the Pub/Sub commands, PING and QUIT now; PING answers as an array.
    expect(
        &mut sub,
        "GET x",
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed \
         in this context\r\n",
    );
    expect(&mut sub, "PING", "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    expect(&mut sub, "PING hi", "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
    expect(&mut sub, "PSUBSCRIBE p*", "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n");
    // Published elsewhere: a message for the channel, a pmessage for the pattern.
    expect(&mut publisher, "PUBLISH a hello", ":1\r\n");
    expect_push(&mut sub, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n");
    expect(&mut publisher, "PUBLISH pq x", ":1\r\n");
    expect_push(&mut sub, "*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$1\r\nx\r\n");
    expect(&mut publisher, "PUBLISH nobody x", ":0\r\n");
    expect(&mut publisher, "PUBSUB NUMSUB a c", "*4\r\n$1\r\na\r\n:1\r\n$1\r\nc\r\n:0\r\n");
    expect(&mut publisher, "PUBSUB NUMPAT", ":1\r\n");
    expect(&mut publisher, "PUBSUB CHANNELS", "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    expect(&mut publisher, "PUBSUB CHANNELS b*", "*1\r\n$1\r\nb\r\n");
    expect(&mut publisher, "PUBSUB FOO", "-ERR unknown subcommand 'FOO'. Try PUBSUB HELP.\r\n");
    expect(&mut publisher, "PUBLISH a", "-ERR wrong number of arguments for 'publish' command\r\n");
    // UNSUBSCRIBE with no channel leaves all of them (Concord: in byte order), then says so.
    expect(
        &mut sub,
        "UNSUBSCRIBE",
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n",
    );
    expect(&mut sub, "UNSUBSCRIBE", "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:1\r\n");
    expect(&mut sub, "PUNSUBSCRIBE", "*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n");
    expect(&mut sub, "PUNSUBSCRIBE", "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n");
    // Out of subscribe mode: commands again.
    expect(&mut sub, "GET x", "$-1\r\n");
    expect(&mut sub, "PING", "+PONG\r\n");
    // Shard channels: their own namespace and count.
    expect(&mut sub, "SSUBSCRIBE s", "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n");
    expect(&mut publisher, "PUBLISH s x", ":0\r\n");
    expect(&mut publisher, "SPUBLISH s y", ":1\r\n");
    expect_push(&mut sub, "*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\ny\r\n");
    expect(&mut publisher, "PUBSUB SHARDNUMSUB s", "*2\r\n$1\r\ns\r\n:1\r\n");
    expect(&mut publisher, "PUBSUB SHARDCHANNELS", "*1\r\n$1\r\ns\r\n");
    expect(&mut sub, "SUNSUBSCRIBE", "*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n");
    expect(&mut sub, "QUIT", "+OK\r\n");
}

#[test]
fn resp3_pushes_mix_with_replies() {
    let server = TestServer::start(RespConfig::default());
    let mut sub = server.connect();
    let mut publisher = server.connect();
    sub.send(b"HELLO 3\r\n");
    let (hello, _) = sub.read_for(usize::MAX, Duration::from_millis(300));
    assert!(hello.starts_with(b"%7\r\n"), "{}", String::from_utf8_lossy(&hello));
    expect(&mut sub, "SUBSCRIBE a", ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    // RESP3: no subscribe mode, commands answer as usual, messages come as `>` pushes.
    expect(&mut sub, "SET k v", "+OK\r\n");
    expect(&mut sub, "GET k", "$1\r\nv\r\n");
    expect(&mut sub, "PING", "+PONG\r\n");
    expect(&mut publisher, "PUBLISH a hi", ":1\r\n");
    expect_push(&mut sub, ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
    // Its own publish: the message is pushed before the reply, as redis-server does.
    expect(&mut sub, "PUBLISH a me", ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nme\r\n:1\r\n");
    expect(&mut sub, "UNSUBSCRIBE a", ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
    expect(&mut publisher, "PUBLISH a gone", ":0\r\n");
    expect(&mut sub, "PING", "+PONG\r\n");
}

#[test]
fn a_closed_subscriber_is_forgotten() {
    let server = TestServer::start(RespConfig::default());
    let mut publisher = server.connect();
    {
        let mut sub = server.connect();
        expect(&mut sub, "SUBSCRIBE a", "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        expect(&mut publisher, "PUBSUB NUMSUB a", "*2\r\n$1\r\na\r\n:1\r\n");
    }
    // The server notices the close when it reads end-of-stream: poll until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        publisher.send(b"PUBSUB NUMSUB a\r\n");
        let (got, _) = publisher.read_for(b"*2\r\n$1\r\na\r\n:0\r\n".len(), Duration::from_secs(5));
        if got == b"*2\r\n$1\r\na\r\n:0\r\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", String::from_utf8_lossy(&got));
        std::thread::sleep(Duration::from_millis(20));
    }
    expect(&mut publisher, "PUBLISH a x", ":0\r\n");
}

#[test]
fn a_subscriber_that_does_not_read_is_closed_at_the_pubsub_limit() {
    let config = RespConfig { max_pubsub_output_bytes: 64 * 1024, ..RespConfig::default() };
    let server = TestServer::start(config);
    let mut sub = server.connect();
    expect(&mut sub, "SUBSCRIBE a", "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    let mut publisher = server.connect();
    let message = "x".repeat(16 * 1024);
    // The socket buffers take a few MiB; past them, at most 64 KiB wait in the node: the
    // subscriber is disconnected long before 64 MiB are sent.
    let mut received_by_then = None;
    for i in 0..4096 {
        publisher.send(format!("PUBLISH a {message}\r\n").as_bytes());
        let (got, _) = publisher.read_for(4, Duration::from_secs(5));
        if got == b":0\r\n" {
            received_by_then = Some(i);
            break;
        }
        assert_eq!(got, b":1\r\n");
    }
    let sent = received_by_then.expect("the subscriber that does not read was never disconnected");
    assert!(sent > 2, "closed after only {sent} messages");
}

const PYTHON_SCRIPT: &str = r#"
import sys, time, redis
port = int(sys.argv[1])
resp3 = int(redis.__version__.split(".")[0]) >= 5
for protocol in (2, 3) if resp3 else (2,):
    kw = {"protocol": protocol} if resp3 else {}
    r = redis.Redis(port=port, **kw)
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("sport.*")
    # The confirmations, in order.
    got = [p.get_message(timeout=5) for _ in range(2)]
    assert [m["type"] for m in got] == ["subscribe", "psubscribe"], got
    assert r.publish("news", "hello") == 1
    assert r.publish("sport.tennis", "ace") == 1
    m = p.get_message(timeout=5)
    assert m == {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"}, m
    m = p.get_message(timeout=5)
    assert m == {"type": "pmessage", "pattern": b"sport.*", "channel": b"sport.tennis", "data": b"ace"}, m
    assert r.pubsub_numsub("news") == [(b"news", 1)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == [b"news"]
    # A handler in a thread, as applications run it (every subscription of it needs a handler).
    seen = []
    q = r.pubsub()
    q.subscribe(**{"events": lambda m: seen.append(m["data"])})
    t = q.run_in_thread(sleep_time=0.01)
    deadline = time.time() + 5
    while r.pubsub_numsub("events") != [(b"events", 1)] and time.time() < deadline:
        time.sleep(0.01)
    for i in range(5):
        r.publish("events", str(i))
    while len(seen) < 5 and time.time() < deadline:
        time.sleep(0.01)
    t.stop()
    t.join(timeout=5)
    q.close()
    assert seen == [b"0", b"1", b"2", b"3", b"4"], seen
    p.unsubscribe()
    p.punsubscribe()
    p.close()
    assert r.publish("news", "x") == 0 or r.pubsub_numsub("news") == [(b"news", 0)]
print("ok" if resp3 else f"ok (RESP2 only: redis-py {redis.__version__} has no RESP3)")
"#;

#[test]
fn redis_py_pubsub_in_resp2_and_resp3() {
    if !have_program("python3", &["-c", "import redis"], REDIS_PY) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    python(PYTHON_SCRIPT, &[&server.port().to_string()]);
}

#[test]
fn a_subscribe_confirmation_precedes_the_channels_first_message() {
    let server = TestServer::start(RespConfig::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A publisher that never pauses: its messages race every SUBSCRIBE below.
    let publisher = {
        let (addr, stop) = (server.addr, stop.clone());
        std::thread::spawn(move || {
            let mut conn = Conn::new(addr);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.send(b"PUBLISH hot x\r\n");
                let _ = conn.read_for(4, Duration::from_secs(5));
            }
        })
    };
    for _ in 0..50 {
        let mut sub = server.connect();
        let confirmation = "*3\r\n$9\r\nsubscribe\r\n$3\r\nhot\r\n:1\r\n";
        sub.send(b"SUBSCRIBE hot\r\n");
        // Messages may follow in the same read; the confirmation must come first.
        let (got, _) = sub.read_for(confirmation.len(), Duration::from_secs(5));
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with(confirmation), "{got:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
}

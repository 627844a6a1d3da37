//! Real Redis clients against the server: `redis-cli`, `redis-benchmark` and redis-py, unmodified.
//!
//! Each test needs an external program. Under `CI` a missing program fails the test (`.ci/run`
//! must install Debian's `redis-tools` and PyPI's `redis`); elsewhere the test is skipped with a
//! printed reason.

mod common;

use common::{have_program, python, TestServer};
use concord_resp::RespConfig;
use std::io::Write;
use std::process::{Command, Stdio};

const REDIS_TOOLS: &str = "install Debian's redis-tools (apt-get install redis-tools)";
const REDIS_PY: &str = "install the redis package for python3 (pip install redis)";

/// `redis-cli -p PORT args…`: its standard output, trimmed of the final newline.
fn cli(server: &TestServer, args: &[&str]) -> String {
    let output =
        Command::new("redis-cli").arg("-p").arg(server.port().to_string()).args(args).output().unwrap();
    assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim_end_matches('\n').to_string()
}

#[test]
fn redis_cli_runs_the_string_commands() {
    if !have_program("redis-cli", &["--version"], REDIS_TOOLS) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    assert_eq!(cli(&server, &["PING"]), "PONG");
    assert_eq!(cli(&server, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&server, &["GET", "greeting"]), "hello world");
    assert_eq!(cli(&server, &["GET", "missing"]), "");
    assert_eq!(cli(&server, &["INCR", "counter"]), "1");
    assert_eq!(cli(&server, &["INCRBY", "counter", "41"]), "42");
    assert_eq!(cli(&server, &["DECR", "counter"]), "41");
    assert_eq!(cli(&server, &["INCR", "greeting"]), "ERR value is not an integer or out of range");
    assert_eq!(cli(&server, &["MSET", "a", "1", "b", "2", "c", "3"]), "OK");
    assert_eq!(cli(&server, &["MGET", "a", "nope", "c"]), "1\n\n3");
    assert_eq!(cli(&server, &["EXISTS", "a", "b", "nope", "a"]), "3");
    assert_eq!(cli(&server, &["EXPIRE", "a", "100"]), "1");
    assert_eq!(cli(&server, &["TTL", "a"]), "100");
    assert_eq!(cli(&server, &["PTTL", "a"]), "100000");
    assert_eq!(cli(&server, &["TTL", "b"]), "-1");
    assert_eq!(cli(&server, &["TTL", "nope"]), "-2");
    assert_eq!(cli(&server, &["PERSIST", "a"]), "1");
    assert_eq!(cli(&server, &["TTL", "a"]), "-1");
    assert_eq!(cli(&server, &["KEYS", "*"]), "a\nb\nc\ncounter\ngreeting");
    assert_eq!(cli(&server, &["KEYS", "[ab]"]), "a\nb");
    assert_eq!(cli(&server, &["DBSIZE"]), "5");
    // A full SCAN: follow cursors until 0.
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let out = cli(&server, &["SCAN", &cursor, "COUNT", "2"]);
        let mut lines = out.lines();
        cursor = lines.next().unwrap().to_string();
        seen.extend(lines.map(str::to_string));
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, ["a", "b", "c", "counter", "greeting"]);
    assert_eq!(cli(&server, &["SCAN", "0", "MATCH", "c*"]), "0\nc\ncounter");
    // redis-cli's own scan mode follows the cursor too (short keys: see `cursor`).
    assert_eq!(cli(&server, &["--scan", "--pattern", "*"]), "a\nb\nc\ncounter\ngreeting");
    assert_eq!(cli(&server, &["DEL", "a", "b", "nope"]), "2");
    assert_eq!(cli(&server, &["DBSIZE"]), "3");
    let info = cli(&server, &["INFO"]);
    for needle in
        ["# Server", "redis_version:", "# Clients", "connected_clients:", "# Raft", "raft_role:leader"]
    {
        assert!(info.contains(needle), "INFO lacks {needle}: {info}");
    }
    assert!(cli(&server, &["INFO", "raft"]).starts_with("# Raft\r\nraft_role:leader"));
    assert_eq!(cli(&server, &["FOO", "x"]), "ERR unknown command 'FOO', with args beginning with: 'x' ");
    assert_eq!(cli(&server, &["GET"]), "ERR wrong number of arguments for 'get' command");
    assert_eq!(cli(&server, &["CONFIG", "GET", "appendonly"]), "appendonly\nno");
}

#[test]
fn redis_cli_pipe_mode_sends_a_pipelined_batch() {
    if !have_program("redis-cli", &["--version"], REDIS_TOOLS) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(common::resp(&["SET", &format!("key:{i:04}"), &format!("value {i}")]));
    }
    let mut child = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&batch).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("errors: 0, replies: 1000"), "{stdout}");
    assert_eq!(cli(&server, &["GET", "key:0999"]), "value 999");
    assert_eq!(cli(&server, &["DBSIZE"]), "1000");
}

#[test]
fn redis_benchmark_set_get_without_errors() {
    if !have_program("redis-benchmark", &["--version"], REDIS_TOOLS) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    let output = Command::new("redis-benchmark")
        .args(["-p", &server.port().to_string(), "-t", "set,get", "-n", "10000", "-q"])
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    assert!(!text.contains("WARNING"), "redis-benchmark could not read the server's CONFIG: {text}");
    for test in ["SET: ", "GET: "] {
        assert!(text.lines().any(|l| l.contains(test) && l.contains("requests per second")), "{text}");
    }
    // Without -r every request uses the same key; its value is -d's default 3 bytes.
    assert_eq!(cli_len(&server), 3);
}

fn cli_len(server: &TestServer) -> usize {
    cli(server, &["GET", "key:__rand_int__"]).len()
}

const PYTHON_SCRIPT: &str = r#"
import sys, redis
port = int(sys.argv[1])
# RESP3 (protocol=3) arrived in redis-py 5.
resp3 = int(redis.__version__.split(".")[0]) >= 5
for protocol in (2, 3) if resp3 else (2,):
    r = redis.Redis(port=port, protocol=protocol) if resp3 else redis.Redis(port=port)
    k = f"py{protocol}:"
    assert r.ping()
    assert r.set(k + "s", "hello") is True
    assert r.get(k + "s") == b"hello"
    assert r.get(k + "missing") is None
    assert r.incr(k + "n") == 1 and r.incr(k + "n", 9) == 10 and r.decr(k + "n") == 9
    assert r.set(k + "s", "x", nx=True) is None
    assert r.set(k + "s", "y", xx=True, get=True) == b"hello"
    assert r.expire(k + "s", 100) is True
    assert r.ttl(k + "s") == 100 and r.pttl(k + "s") == 100000
    assert r.ttl(k + "missing") == -2
    # A transaction (MULTI/EXEC: redis-py's default pipeline).
    p = r.pipeline()
    p.set(k + "a", "1").set(k + "b", "2").get(k + "a").mget(k + "a", k + "b").delete(k + "a")
    assert p.execute() == [True, True, b"1", [b"1", b"2"], 1], "transaction"
    # A plain pipeline, with INCR.
    p = r.pipeline(transaction=False)
    for _ in range(100):
        p.incr(k + "p")
    assert p.execute() == list(range(1, 101)), "pipeline"
    assert sorted(r.scan_iter(match=k + "*")) == sorted(
        [(k + s).encode() for s in ("s", "n", "b", "p")]
    )
    assert r.info("raft")["raft_role"] == "leader"
    assert r.config_get("save") == {"save": ""}
    try:
        r.incr(k + "s")
        raise AssertionError("INCR of a non-integer succeeded")
    except redis.ResponseError as e:
        assert str(e) == "value is not an integer or out of range", e
print("ok" if resp3 else f"ok (RESP2 only: redis-py {redis.__version__} has no RESP3)")
"#;

#[test]
fn redis_py_commands_pipelines_and_transactions_in_resp2_and_resp3() {
    if !have_program("python3", &["-c", "import redis"], REDIS_PY) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    let stdout = python(PYTHON_SCRIPT, &[&server.port().to_string()]);
    if stdout != "ok" {
        eprintln!("{stdout}");
    }
}

const PYTHON_WATCH_SCRIPT: &str = r#"
import sys, threading, redis
port = int(sys.argv[1])
resp3 = int(redis.__version__.split(".")[0]) >= 5
for protocol in (2, 3) if resp3 else (2,):
    r = redis.Redis(port=port, protocol=protocol) if resp3 else redis.Redis(port=port)
    k = f"watch{protocol}:"
    r.set(k + "n", 0)
    # INCR and friends inside MULTI (redis-py's default pipeline), with a runtime error kept in place.
    p = r.pipeline()
    p.incr(k + "n").incrby(k + "n", 10).hset(k + "h", "f", "v").incr(k + "h").incrbyfloat(k + "n", 0.5)
    results = p.execute(raise_on_error=False)
    assert results[:3] == [1, 11, 1], results
    assert isinstance(results[3], redis.ResponseError) and "WRONGTYPE" in str(results[3]), results
    assert results[4] == 11.5, results
    # WatchError when another client writes a watched key.
    with r.pipeline() as p:
        p.watch(k + "w")
        r.set(k + "w", "changed")
        p.multi()
        p.set(k + "w", "mine")
        try:
            p.execute()
            raise AssertionError("EXEC ran although a watched key changed")
        except redis.WatchError:
            pass
    assert r.get(k + "w") == b"changed"
    # transaction(): optimistic increments, retried under a concurrent writer, lose nothing.
    r.set(k + "c", 0)
    retries = [0]
    def bump(pipe):
        current = int(pipe.get(k + "c"))
        retries[0] += 1
        pipe.multi()
        pipe.set(k + "c", current + 1)
    def writer():
        w = redis.Redis(port=port)
        for _ in range(200):
            w.incr(k + "c")
    thread = threading.Thread(target=writer)
    thread.start()
    for _ in range(50):
        r.transaction(bump, k + "c")
    thread.join()
    assert int(r.get(k + "c")) == 250, r.get(k + "c")
    assert retries[0] >= 50
print("ok")
"#;

#[test]
fn redis_py_watch_transaction_retries_under_a_concurrent_writer() {
    if !have_program("python3", &["-c", "import redis"], REDIS_PY) {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    assert_eq!(python(PYTHON_WATCH_SCRIPT, &[&server.port().to_string()]), "ok");
}

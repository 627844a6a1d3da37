//! `CLIENT TRACKING` (server-assisted client-side caching), side by side with redis-server 7: the
//! same steps on both, and every byte each connection receives must be the same – RESP3
//! `invalidate` pushes, RESP2 redirection to `__redis__:invalidate`, `BCAST` prefixes, `OPTIN`
//! with `CLIENT CACHING`, `FLUSHALL`'s null list, a script's undeclared key, and the errors. Then
//! redis-py's own client-side cache against Concord.

mod common;

use common::redis::Redis;
use common::{have_program, python, resp, Conn, TestServer};
use concord_resp::RespConfig;
use std::time::Duration;

/// How long a connection must stay quiet before what it received counts as complete.
const QUIET: Duration = Duration::from_millis(150);

/// One step: connection `on` sends `args` (`{ID0}`… stands for connection 0's `CLIENT ID`).
type Step = (usize, &'static [&'static str]);

/// Run `steps` on `connections` fresh connections to `port`; for each step, what every connection
/// received (its reply and any pushes), as text.
fn transcript(connect: &dyn Fn() -> Conn, connections: usize, steps: &[Step]) -> Vec<String> {
    let mut conns: Vec<Conn> = (0..connections).map(|_| connect()).collect();
    let ids: Vec<String> = conns
        .iter_mut()
        .map(|c| {
            c.send(&resp(&["CLIENT", "ID"]));
            let (reply, _) = c.read_for(usize::MAX, QUIET);
            String::from_utf8_lossy(&reply).trim_start_matches(':').trim().to_string()
        })
        .collect();
    let mut out = Vec::new();
    for (on, step) in steps {
        let args: Vec<String> = step
            .iter()
            .map(|a| (0..connections).fold(a.to_string(), |a, i| a.replace(&format!("{{ID{i}}}"), &ids[i])))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        conns[*on].send(&resp(&args));
        for (i, conn) in conns.iter_mut().enumerate() {
            let (got, _) = conn.read_for(usize::MAX, QUIET);
            let mut got = String::from_utf8_lossy(&got).into_owned();
            // What differs between two servers by nature: HELLO's version and id, client ids.
            if step[0] == "HELLO" && i == *on {
                got = "(HELLO's map)".into();
            }
            if step.contains(&"GETREDIR") && i == *on {
                got = (0..connections)
                    .fold(got, |g, n| g.replace(&format!(":{}\r\n", ids[n]), &format!(":{{ID{n}}}\r\n")));
            }
            if !got.is_empty() {
                out.push(format!("{step:?} → conn {i}: {got}"));
            }
        }
    }
    out
}

/// The steps on Concord and, when it is here, on redis-server: the same bytes. Returns Concord's.
fn same_as_redis(connections: usize, steps: &[Step]) -> Vec<String> {
    let server = TestServer::start(RespConfig::default());
    let ours = transcript(&|| server.connect(), connections, steps);
    if let Some(redis) = Redis::start(false) {
        let theirs = transcript(&|| redis.connect(), connections, steps);
        assert_eq!(ours, theirs, "left: Concord, right: redis-server");
    }
    ours
}

fn has(transcript: &[String], what: &str) {
    assert!(transcript.iter().any(|line| line.contains(what)), "no {what:?} in {transcript:#?}");
}

#[test]
fn default_mode_invalidates_each_read_key_once_as_a_resp3_push() {
    let t = same_as_redis(
        2,
        &[
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["GET", "k"]),
            (0, &["MGET", "a", "b"]),
            (1, &["SET", "k", "1"]), // conn 0 read k: one push
            (1, &["SET", "k", "2"]), // not read again since: nothing
            (1, &["MSET", "a", "1", "b", "2", "c", "3"]),
            (0, &["HGETALL", "h"]),
            (1, &["HSET", "h", "f", "v"]),
            // A script's keys are changes too, even one it does not declare.
            (0, &["GET", "undeclared"]),
            (1, &["EVAL", "redis.call('SET', 'undeclared', 'x') return 1", "0"]),
            (0, &["GET", "k"]),
            (1, &["FLUSHALL"]), // a null list: drop everything
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["CLIENT", "GETREDIR"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["GET", "k"]),
            (1, &["SET", "k", "3"]), // off: nothing
        ],
    );
    has(&t, "[\"SET\", \"k\", \"1\"] → conn 0: >2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
    assert!(!t.iter().any(|l| l.starts_with("[\"SET\", \"k\", \"2\"] → conn 0")), "{t:#?}");
    has(&t, "conn 0: >2\r\n$10\r\ninvalidate\r\n*1\r\n$10\r\nundeclared\r\n");
    // The default mode sends one message per key, as Redis.
    has(
        &t,
        "conn 0: >2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nb\r\n",
    );
    has(&t, "[\"FLUSHALL\"] → conn 0: >2\r\n$10\r\ninvalidate\r\n_\r\n");
}

#[test]
fn resp2_clients_redirect_to_the_invalidate_channel() {
    let t = same_as_redis(
        3,
        &[
            (0, &["SUBSCRIBE", "__redis__:invalidate"]),
            (1, &["CLIENT", "TRACKING", "on", "REDIRECT", "{ID0}"]),
            (1, &["CLIENT", "GETREDIR"]),
            (1, &["GET", "a"]),
            (2, &["SET", "a", "x"]),
            (1, &["CLIENT", "TRACKING", "on", "BCAST"]),
        ],
    );
    has(&t, "conn 0: *3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\na\r\n");
}

#[test]
fn broadcasting_sends_the_prefixes_keys_and_optin_remembers_only_after_caching_yes() {
    let t = same_as_redis(
        2,
        &[
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "post:"]),
            (1, &["SET", "user:1", "ada"]),
            (1, &["SET", "other", "x"]),
            (1, &["DEL", "post:9", "user:1"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            (0, &["GET", "x"]),
            (1, &["SET", "x", "1"]), // read without CACHING yes: nothing
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["GET", "x"]),
            (1, &["SET", "x", "2"]),
        ],
    );
    has(&t, "[\"SET\", \"user:1\", \"ada\"] → conn 0: >2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nuser:1\r\n");
    assert!(!t.iter().any(|l| l.starts_with("[\"SET\", \"other\", \"x\"] → conn 0")), "{t:#?}");
    assert!(!t.iter().any(|l| l.starts_with("[\"SET\", \"x\", \"1\"] → conn 0")), "{t:#?}");
    has(&t, "[\"SET\", \"x\", \"2\"] → conn 0: >2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nx\r\n");
}

#[test]
fn refusals_are_redis_servers() {
    let t = same_as_redis(
        1,
        &[
            (0, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
            (0, &["CLIENT", "TRACKING", "maybe"]),
            (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
            (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "abc"]),
            (0, &["CLIENT", "TRACKING", "on", "foo"]),
            (0, &["CLIENT", "TRACKING"]),
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "abc"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["CLIENT", "CACHING", "maybe"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
        ],
    );
    has(&t, "-ERR PREFIX option requires BCAST mode to be enabled");
    has(&t, "-ERR The client ID you want redirect to does not exist");
}

#[test]
fn redis_pys_client_side_cache_sees_other_clients_writes() {
    if !have_program("python3", &["-c", "import redis"], "pip install 'redis>=5'") {
        return;
    }
    let server = TestServer::start(RespConfig::default());
    // redis-py ≥ 5.1 caches on the client with `cache_config` (RESP3 only); older versions have
    // no client-side cache, and the script says so.
    let out = python(
        r#"
import sys, time, redis
port = int(sys.argv[1])
try:
    from redis.cache import CacheConfig
except ImportError:
    print("ok (redis-py has no client-side cache: " + redis.__version__ + ")"); sys.exit(0)
cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
writer = redis.Redis(port=port)
try:
    cached.ping()
except redis.exceptions.ConnectionError as e:
    # redis-py 6+ turns its cache on only for servers that say 7.4 or later in HELLO; Concord
    # says 7.0 (the redis-server its differential tests compare with), so it refuses.
    if "7.4 or later" in str(e):
        print("ok (redis-py " + redis.__version__ + " caches only against Redis >= 7.4)"); sys.exit(0)
    raise
writer.set("k", "1")
assert cached.get("k") == b"1"
assert cached.get("k") == b"1"  # from the cache
writer.set("k", "2")
for _ in range(100):
    if cached.get("k") == b"2":
        break
    time.sleep(0.02)
else:
    raise SystemExit("the cache kept the old value")
print("ok")
"#,
        &[&server.port().to_string()],
    );
    assert!(out.starts_with("ok"), "{out}");
}

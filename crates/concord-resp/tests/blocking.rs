//! Blocking pops through a real RESP connection (see `concord_resp::blocking`): waiting, waking on
//! a push from another client, timeouts, one element to one client, and a blocked client that
//! hangs up.

mod common;

use common::{resp, TestServer};
use concord_resp::RespConfig;
use std::time::{Duration, Instant};

/// Redis 7.0's reply to a blocking pop that timed out: a null array.
const NULL: &[u8] = b"*-1\r\n";

#[test]
fn a_blocked_pop_times_out_with_nil_after_its_timeout() {
    let server = TestServer::start(RespConfig::default());
    let mut c = server.connect();
    let started = Instant::now();
    c.expect(&resp(&["BLPOP", "q", "0.2"]), NULL);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200), "returned after {waited:?}");
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");
    c.expect(&resp(&["BZPOPMIN", "z", "0.05"]), NULL);
    c.expect(&resp(&["BLPOP", "q", "-1"]), b"-ERR timeout is negative\r\n");
}

#[test]
fn a_push_from_another_client_wakes_the_blocked_one() {
    let server = TestServer::start(RespConfig::default());
    let mut blocked = server.connect();
    let mut pusher = server.connect();
    blocked.send(&resp(&["BLPOP", "other", "q", "0"]));
    let (early, _) = blocked.read_for(1, Duration::from_millis(150));
    assert!(early.is_empty(), "nothing to pop yet: {:?}", String::from_utf8_lossy(&early));
    let pushed = Instant::now();
    pusher.expect(&resp(&["RPUSH", "q", "x", "y"]), b":2\r\n");
    let reply = b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n";
    let (got, _) = blocked.read_for(reply.len(), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
    assert!(pushed.elapsed() < Duration::from_secs(1), "woke after {:?}", pushed.elapsed());
    pusher.expect(&resp(&["LRANGE", "q", "0", "-1"]), b"*1\r\n$1\r\ny\r\n");

    // Sorted sets too: the reply carries the key, the member and its score.
    blocked.send(&resp(&["BZPOPMAX", "z", "5"]));
    pusher.expect(&resp(&["ZADD", "z", "1.5", "m"]), b":1\r\n");
    let reply = b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n";
    let (got, _) = blocked.read_for(reply.len(), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
}

#[test]
fn each_element_goes_to_exactly_one_blocked_client() {
    let server = TestServer::start(RespConfig::default());
    let mut clients: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send(&resp(&["BRPOP", "q", "0"]));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut pusher = server.connect();
    pusher.expect(&resp(&["LPUSH", "q", "a", "b"]), b":2\r\n");
    let mut served = Vec::new();
    for c in &mut clients {
        let (got, _) = c.read_for(usize::MAX, Duration::from_millis(700));
        if !got.is_empty() {
            served.push(String::from_utf8_lossy(&got).into_owned());
        }
    }
    served.sort();
    assert_eq!(served, ["*2\r\n$1\r\nq\r\n$1\r\na\r\n", "*2\r\n$1\r\nq\r\n$1\r\nb\r\n"]);
    pusher.expect(&resp(&["LLEN", "q"]), b":0\r\n");
}

#[test]
fn a_blocked_client_that_hangs_up_pops_nothing() {
    let mut server = TestServer::start(RespConfig::default());
    {
        let mut blocked = server.connect();
        blocked.send(&resp(&["BLPOP", "q", "0"]));
        std::thread::sleep(Duration::from_millis(100));
    } // closed
    std::thread::sleep(Duration::from_millis(100));
    let mut pusher = server.connect();
    pusher.expect(&resp(&["RPUSH", "q", "x"]), b":1\r\n");
    std::thread::sleep(Duration::from_millis(200));
    pusher.expect(&resp(&["LLEN", "q"]), b":1\r\n");
    drop(pusher);
    assert!(server.shutdown(Duration::from_secs(5)), "no connection is left waiting");
}

#[test]
fn blmove_waits_then_moves_one_element() {
    let server = TestServer::start(RespConfig::default());
    let mut blocked = server.connect();
    let mut pusher = server.connect();
    blocked.send(&resp(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "5"]));
    std::thread::sleep(Duration::from_millis(100));
    pusher.expect(&resp(&["RPUSH", "src", "a", "b"]), b":2\r\n");
    let (got, _) = blocked.read_for(7, Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), "$1\r\nb\r\n");
    pusher.expect(&resp(&["LRANGE", "dst", "0", "-1"]), b"*1\r\n$1\r\nb\r\n");
    pusher.expect(&resp(&["RPOPLPUSH", "src", "dst"]), b"$1\r\na\r\n");
    pusher.expect(&resp(&["LMOVE", "dst", "dst", "LEFT", "RIGHT"]), b"$1\r\na\r\n");
    pusher.expect(&resp(&["LRANGE", "dst", "0", "-1"]), b"*2\r\n$1\r\nb\r\n$1\r\na\r\n");
}

#[test]
fn brpoplpush_waits_then_moves_the_last_element() {
    let server = TestServer::start(RespConfig::default());
    let mut blocked = server.connect();
    let mut pusher = server.connect();
    blocked.send(&resp(&["BRPOPLPUSH", "src", "dst", "5"]));
    std::thread::sleep(Duration::from_millis(100));
    pusher.expect(&resp(&["RPUSH", "src", "a", "b"]), b":2\r\n");
    let (got, _) = blocked.read_for(7, Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), "$1\r\nb\r\n");
    pusher.expect(&resp(&["LRANGE", "dst", "0", "-1"]), b"*1\r\n$1\r\nb\r\n");
    // A timeout answers a null array, as redis-server 7.0 does.
    blocked.expect(&resp(&["BRPOPLPUSH", "nokey", "dst", "0.05"]), b"*-1\r\n");
}

#[test]
fn blmpop_waits_on_counted_keys() {
    let server = TestServer::start(RespConfig::default());
    let mut blocked = server.connect();
    let mut pusher = server.connect();
    blocked.send(&resp(&["BLMPOP", "5", "2", "a", "b", "LEFT", "COUNT", "2"]));
    std::thread::sleep(Duration::from_millis(100));
    pusher.expect(&resp(&["RPUSH", "b", "x", "y", "z"]), b":3\r\n");
    let reply = b"*2\r\n$1\r\nb\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n";
    let (got, _) = blocked.read_for(reply.len(), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
    pusher.expect(&resp(&["LMPOP", "2", "a", "b", "RIGHT"]), b"*2\r\n$1\r\nb\r\n*1\r\n$1\r\nz\r\n");
    pusher.expect(&resp(&["LMPOP", "1", "b", "RIGHT"]), b"*-1\r\n");
}

#[test]
fn bzmpop_waits_on_counted_keys() {
    let server = TestServer::start(RespConfig::default());
    let mut blocked = server.connect();
    let mut pusher = server.connect();
    blocked.send(&resp(&["BZMPOP", "5", "2", "a", "b", "MIN", "COUNT", "2"]));
    std::thread::sleep(Duration::from_millis(100));
    pusher.expect(&resp(&["ZADD", "b", "1", "x", "2", "y", "3", "z"]), b":3\r\n");
    let reply = b"*2\r\n$1\r\nb\r\n*2\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$1\r\ny\r\n$1\r\n2\r\n";
    let (got, _) = blocked.read_for(reply.len(), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
    pusher.expect(&resp(&["BZMPOP", "0.05", "1", "a", "MAX"]), b"*-1\r\n");
}

//! `EVAL`, `EVALSHA`, `EVAL_RO`, `SCRIPT` over the wire, against the in-memory backend: replies
//! byte for byte as redis-server 7.0 sends them (the error lines name the script's SHA-1).

mod common;

use common::{resp, TestServer};
use concord_resp::RespConfig;

#[test]
fn eval_evalsha_and_the_script_cache() {
    let server = TestServer::start(RespConfig::default());
    let mut c = server.connect();
    let body = "return {KEYS[1], ARGV[1], redis.call('incr', KEYS[1])}";
    c.expect(&resp(&["EVAL", body, "1", "n", "x"]), b"*3\r\n$1\r\nn\r\n$1\r\nx\r\n:1\r\n");
    // EVAL cached the body: EVALSHA finds it (any case).
    let real_sha = concord_kv::redis::lua::sha1hex(body.as_bytes());
    c.expect(
        &resp(&["EVALSHA", &real_sha.to_uppercase(), "1", "n", "y"]),
        b"*3\r\n$1\r\nn\r\n$1\r\ny\r\n:2\r\n",
    );
    c.expect(
        &resp(&["SCRIPT", "EXISTS", &real_sha, "ffffffffffffffffffffffffffffffffffffffff"]),
        b"*2\r\n:1\r\n:0\r\n",
    );
    c.expect(&resp(&["SCRIPT", "FLUSH"]), b"+OK\r\n");
    c.expect(&resp(&["EVALSHA", &real_sha, "1", "n"]), b"-NOSCRIPT No matching script. Please use EVAL.\r\n");
    c.expect(&resp(&["SCRIPT", "LOAD", "return 1"]), b"$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n");
    c.expect(&resp(&["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]), b":1\r\n");
    c.expect(&resp(&["EVALSHA_RO", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]), b":1\r\n");
    c.expect(&resp(&["SCRIPT", "KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");
}

#[test]
fn script_errors_are_worded_as_redis_7() {
    let server = TestServer::start(RespConfig::default());
    let mut c = server.connect();
    c.expect(
        &resp(&["EVAL", "return 1", "2", "k"]),
        b"-ERR Number of keys can't be greater than number of args\r\n",
    );
    c.expect(&resp(&["EVAL", "return 1", "-1"]), b"-ERR Number of keys can't be negative\r\n");
    c.expect(&resp(&["EVAL", "return 1"]), b"-ERR wrong number of arguments for 'eval' command\r\n");
    c.expect(&resp(&["SET", "s", "abc"]), b"+OK\r\n");
    c.expect(
        &resp(&["EVAL", "return redis.call('incr','s')", "0"]),
        b"-ERR value is not an integer or out of range script: c243b9f46db13ba8f69da41b45a77708832babed, on @user_script:1.\r\n",
    );
    c.expect(
        &resp(&["EVAL", "x = 1", "0"]),
        b"-ERR user_script:1: Attempt to modify a readonly table script: 34bce5f775de97f557a34088509c8bfe1ea17e52, on @user_script:1.\r\n",
    );
    let ro = "return redis.call('del', 's')";
    let sha = concord_kv::redis::lua::sha1hex(ro.as_bytes());
    c.expect(
        &resp(&["EVAL_RO", ro, "0"]),
        format!("-ERR Write commands are not allowed from read-only scripts. script: {sha}, on @user_script:1.\r\n")
            .as_bytes(),
    );
}

/// `SCRIPT` is in the command table: `COMMAND INFO` lists it with its subcommands (compared with
/// redis-server's rows byte for byte in `cluster.rs`), `SCRIPT HELP` answers in Redis's words, and
/// subcommand errors name the subcommand.
#[test]
fn script_is_listed_by_command_and_answers_help() {
    let server = TestServer::start(RespConfig::default());
    let mut c = server.connect();
    c.send(&resp(&["COMMAND", "INFO", "script"]));
    let (info, _) = c.read_for(usize::MAX, std::time::Duration::from_millis(300));
    let info = String::from_utf8_lossy(&info);
    for sub in ["script|help", "script|exists", "script|flush", "script|load", "script|kill"] {
        assert!(info.contains(&format!("${}\r\n{sub}\r\n", sub.len())), "{sub} in {info}");
    }
    assert!(info.starts_with("*1\r\n*10\r\n$6\r\nscript\r\n:-2\r\n"), "{info}");
    c.send(&resp(&["SCRIPT", "HELP"]));
    let (help, _) = c.read_for(usize::MAX, std::time::Duration::from_millis(300));
    let help = String::from_utf8_lossy(&help);
    assert!(
        help.starts_with("*15\r\n+SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"),
        "{help}"
    );
    assert!(help.ends_with("+HELP\r\n+    Prints this help.\r\n"), "{help}");
    c.expect(
        &resp(&["SCRIPT", "HELP", "x"]),
        b"-ERR wrong number of arguments for 'script|help' command\r\n",
    );
    c.expect(&resp(&["SCRIPT", "NOPE"]), b"-ERR unknown subcommand 'NOPE'. Try SCRIPT HELP.\r\n");
}

/// The keyspace commands over the wire: FLUSHALL (and in MULTI), RANDOMKEY, TOUCH.
#[test]
fn flushall_randomkey_and_touch_over_the_wire() {
    let server = TestServer::start(RespConfig::default());
    let mut c = server.connect();
    c.expect(&resp(&["RANDOMKEY"]), b"$-1\r\n");
    c.expect(&resp(&["HSET", "h", "f", "v"]), b":1\r\n");
    c.expect(&resp(&["RANDOMKEY"]), b"$1\r\nh\r\n");
    c.expect(&resp(&["SET", "s", "1"]), b"+OK\r\n");
    c.expect(&resp(&["TOUCH", "h", "s", "nope", "s"]), b":3\r\n");
    c.expect(&resp(&["TOUCH"]), b"-ERR wrong number of arguments for 'touch' command\r\n");
    c.expect(&resp(&["RANDOMKEY", "x"]), b"-ERR wrong number of arguments for 'randomkey' command\r\n");
    c.expect(&resp(&["FLUSHALL", "LAZY"]), b"-ERR syntax error\r\n");
    c.expect(&resp(&["WATCH", "s"]), b"+OK\r\n");
    let mut other = server.connect();
    other.expect(&resp(&["FLUSHALL", "ASYNC"]), b"+OK\r\n");
    other.expect(&resp(&["DBSIZE"]), b":0\r\n");
    other.expect(&resp(&["KEYS", "*"]), b"*0\r\n");
    // The watched key existed and was flushed: EXEC fails.
    c.expect(&resp(&["MULTI"]), b"+OK\r\n");
    c.expect(&resp(&["SET", "s", "2"]), b"+QUEUED\r\n");
    c.expect(&resp(&["EXEC"]), b"*-1\r\n");
    // FLUSHDB inside MULTI, as Redis allows.
    c.expect(&resp(&["MULTI"]), b"+OK\r\n");
    c.expect(&resp(&["SET", "a", "1"]), b"+QUEUED\r\n");
    c.expect(&resp(&["FLUSHDB"]), b"+QUEUED\r\n");
    c.expect(&resp(&["SET", "b", "1"]), b"+QUEUED\r\n");
    c.expect(&resp(&["EXEC"]), b"*3\r\n+OK\r\n+OK\r\n+OK\r\n");
    c.expect(&resp(&["KEYS", "*"]), b"*1\r\n$1\r\nb\r\n");
}

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

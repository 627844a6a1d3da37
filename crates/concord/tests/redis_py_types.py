"""redis-py's own APIs for hashes, lists, sets and sorted sets against a real Concord node.

Usage: redis_py_types.py HOST PORT [FOLLOWER_PORT ...]

PORT is the node to write through (a cluster's leader). The checks run once in RESP2 and once in
RESP3 (redis-py 5 parses each protocol's shapes itself: pairs of member and score, maps, sets), in
a key space of their own per protocol. Every FOLLOWER_PORT is then read with `CONSISTENCY stale`
once it caught up: each replica applied the same commands, so each must hold the same values.
The script passes against redis-server too (without followers). Prints "ok" and exits 0 when
everything held.
"""
import sys
import time

import redis

host, port = sys.argv[1], int(sys.argv[2])
followers = [int(p) for p in sys.argv[3:]]
resp3 = int(redis.__version__.split(".")[0]) >= 5


def flat(pairs, nested):
    """A pair reply as redis-py returns it for the protocol: nested pairs (RESP3), flat (RESP2)."""
    if nested:
        assert all(isinstance(p, list) and len(p) == 2 for p in pairs), pairs
        return [x for p in pairs for x in p]
    assert not any(isinstance(p, list) for p in pairs), pairs
    return pairs


def pairs(reply):
    """Scored replies as tuples: redis-py gives tuples in RESP2 and two-element lists in RESP3."""
    return [tuple(p) for p in reply]


def check(r, k, nested):
    # --- Hashes ---
    assert r.hset(k + "h", mapping={"name": "ada", "lang": "rust", "n": 1}) == 3
    assert r.hset(k + "h", "name", "grace") == 0
    assert r.hget(k + "h", "name") == b"grace"
    assert r.hgetall(k + "h") == {b"name": b"grace", b"lang": b"rust", b"n": b"1"}
    assert r.hmget(k + "h", ["name", "missing"]) == [b"grace", None]
    assert r.hincrby(k + "h", "n", 41) == 42
    assert r.hincrbyfloat(k + "h", "f", 0.1) == 0.1
    assert r.hincrbyfloat(k + "h", "f", 0.2) == float("0.3")
    assert r.hexists(k + "h", "lang") and not r.hexists(k + "h", "nope")
    assert not r.hsetnx(k + "h", "name", "x") and r.hsetnx(k + "h", "new", "x")
    assert sorted(r.hkeys(k + "h")) == [b"f", b"lang", b"n", b"name", b"new"]
    assert r.hlen(k + "h") == 5 and r.hstrlen(k + "h", "name") == 5
    assert dict(r.hscan_iter(k + "h", match="n*")) == {b"name": b"grace", b"n": b"42", b"new": b"x"}
    field = r.hrandfield(k + "h")
    assert field in (b"f", b"lang", b"n", b"name", b"new"), field
    fv = flat(r.hrandfield(k + "h", 2, withvalues=True), nested)
    assert len(fv) == 4 and r.hget(k + "h", fv[0]) == fv[1] and r.hget(k + "h", fv[2]) == fv[3], fv
    assert r.hdel(k + "h", "f", "lang", "new", "nope") == 3
    assert r.type(k + "h") == b"hash"

    # --- Lists ---
    assert r.rpush(k + "l", "a", "b", "c") == 3
    assert r.lpush(k + "l", "z") == 4
    assert r.lrange(k + "l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r.lpos(k + "l", "b") == 2
    assert r.linsert(k + "l", "BEFORE", "b", "a2") == 5
    assert r.lindex(k + "l", -1) == b"c" and r.llen(k + "l") == 5
    assert r.lpop(k + "l") == b"z" and r.rpop(k + "l", 2) == [b"c", b"b"]
    assert r.lmove(k + "l", k + "l2", "LEFT", "RIGHT") == b"a"
    assert tuple(r.blpop([k + "empty", k + "l"], timeout=1)) == ((k + "l").encode(), b"a2")
    assert r.lrange(k + "l", 0, -1) == [] and r.exists(k + "l") == 0
    assert r.rpush(k + "q", "job1") == 1
    assert tuple(r.blpop([k + "empty", k + "q"], timeout=1)) == ((k + "q").encode(), b"job1")
    assert r.blpop([k + "empty"], timeout=0.2) is None
    assert r.rpush(k + "t", *range(10)) == 10
    assert r.ltrim(k + "t", 2, 4) is True and r.lrange(k + "t", 0, -1) == [b"2", b"3", b"4"]
    assert r.lset(k + "t", 0, "x") is True and r.lrem(k + "t", 0, "3") == 1

    # --- Sets ---
    assert r.sadd(k + "s1", "a", "b", "c") == 3 and r.sadd(k + "s2", "b", "c", "d") == 3
    assert r.smembers(k + "s1") == {b"a", b"b", b"c"}
    assert r.sismember(k + "s1", "a") and not r.sismember(k + "s1", "d")
    assert r.smismember(k + "s1", ["a", "d"]) == [1, 0]
    assert r.sinter(k + "s1", k + "s2") == {b"b", b"c"}
    assert r.sunion(k + "s1", k + "s2") == {b"a", b"b", b"c", b"d"}
    assert r.sdiff(k + "s1", k + "s2") == {b"a"}
    assert r.sunionstore(k + "s3", [k + "s1", k + "s2"]) == 4 and r.scard(k + "s3") == 4
    assert r.sintercard(2, [k + "s1", k + "s2"]) == 2
    assert set(r.sscan_iter(k + "s3")) == {b"a", b"b", b"c", b"d"}
    popped = r.spop(k + "s3", 2)
    assert len(popped) == 2 and r.scard(k + "s3") == 2, popped
    assert r.smove(k + "s1", k + "s2", "a") and r.srem(k + "s2", "a", "zz") == 1
    assert r.srandmember(k + "s2") in (b"b", b"c", b"d")

    # --- Sorted sets ---
    assert r.zadd(k + "z", {"ada": 10, "bob": 7, "cy": 12}) == 3
    assert r.zadd(k + "z", {"bob": 5}, gt=True) == 0 and r.zscore(k + "z", "bob") == 7.0
    assert r.zadd(k + "z", {"bob": 9}, xx=True, ch=True) == 1
    assert r.zrange(k + "z", 0, -1) == [b"bob", b"ada", b"cy"]
    assert pairs(r.zrange(k + "z", 0, -1, withscores=True)) == [(b"bob", 9.0), (b"ada", 10.0), (b"cy", 12.0)]
    assert pairs(r.zrevrangebyscore(k + "z", 11, 0, withscores=True)) == [(b"ada", 10.0), (b"bob", 9.0)]
    assert r.zrangebyscore(k + "z", "(9", "+inf") == [b"ada", b"cy"]
    assert r.zincrby(k + "z", 0.5, "bob") == 9.5
    assert r.zrank(k + "z", "ada") == 1 and r.zrevrank(k + "z", "ada") == 1
    assert r.zcount(k + "z", 9, 10) == 2 and r.zcard(k + "z") == 3
    assert r.zmscore(k + "z", ["ada", "nope"]) == [10.0, None]
    # Without a count the reply is flat in both protocols; redis-py wraps it in RESP2 only.
    assert r.zpopmin(k + "z") == ([b"bob", 9.5] if nested else [(b"bob", 9.5)])
    assert pairs(r.zpopmax(k + "z", 1)) == [(b"cy", 12.0)]
    assert r.zadd(k + "w", {"ada": 1, "eve": 2}) == 2
    assert r.zunionstore(k + "u", [k + "z", k + "w"]) == 2
    assert pairs(r.zrange(k + "u", 0, -1, withscores=True)) == [(b"eve", 2.0), (b"ada", 11.0)]
    assert r.zinterstore(k + "i", {k + "z": 2, k + "w": 1}, aggregate="MAX") == 1
    assert r.zscore(k + "i", "ada") == 20.0
    picked = r.zrandmember(k + "u", 2, withscores=True)
    if nested:
        assert sorted(pairs(picked)) == [(b"ada", 11.0), (b"eve", 2.0)], picked
    else:
        assert sorted(zip(picked[::2], picked[1::2])) == [(b"ada", b"11"), (b"eve", b"2")], picked
    assert dict(r.zscan_iter(k + "u")) == {b"eve": 2.0, b"ada": 11.0}
    assert tuple(r.bzpopmin([k + "nothing", k + "u"], timeout=1)) == ((k + "u").encode(), b"eve", 2.0)
    assert r.zrem(k + "u", "ada") == 1 and r.exists(k + "u") == 0
    assert r.type(k + "z") == b"zset" and r.type(k + "s2") == b"set" and r.type(k + "l2") == b"list"

    # --- A transaction of every type (MULTI/EXEC: one log entry) ---
    p = r.pipeline()
    p.hset(k + "tx:h", "f", "1").hincrby(k + "tx:h", "f", 2).rpush(k + "tx:l", "a", "b").sadd(k + "tx:s", "m")
    p.zadd(k + "tx:z", {"m": 1.5}).zrange(k + "tx:z", 0, -1, withscores=True).lrange(k + "tx:l", 0, -1)
    replies = p.execute()
    assert replies[:5] == [1, 3, 2, 1, 1] and pairs(replies[5]) == [(b"m", 1.5)] and replies[6] == [b"a", b"b"], replies

    # --- WRONGTYPE, as redis-server words it ---
    try:
        r.lpush(k + "h", "x")
        raise AssertionError("LPUSH on a hash succeeded")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE Operation against a key holding the wrong kind of value"), e


def contents(r, k):
    """Every key of the prefix, with its type and whole value."""
    out = {}
    for key in sorted(r.scan_iter(match=k + "*")):
        kind = r.type(key)
        if kind == b"string":
            value = r.get(key)
        elif kind == b"hash":
            value = sorted(r.hgetall(key).items())
        elif kind == b"list":
            value = r.lrange(key, 0, -1)
        elif kind == b"set":
            value = sorted(r.smembers(key))
        else:
            value = pairs(r.zrange(key, 0, -1, withscores=True))
        out[key] = (kind, value)
    return out


protocols = (2, 3) if resp3 else (2,)
primary = redis.Redis(host=host, port=port, socket_timeout=30)
for protocol in protocols:
    r = redis.Redis(host=host, port=port, protocol=protocol, socket_timeout=30) if resp3 else primary
    check(r, f"py{protocol}:", protocol == 3)
expected = {p: contents(primary, f"py{p}:") for p in protocols}
assert expected[protocols[0]], "the checks left keys behind to compare"
for follower in followers:
    f = redis.Redis(host=host, port=follower, socket_timeout=30)
    f.execute_command("CONSISTENCY", "stale")
    deadline = time.time() + 30
    while True:
        seen = {p: contents(f, f"py{p}:") for p in protocols}
        if seen == expected:
            break
        assert time.time() < deadline, f"follower {follower} differs:\n{seen}\nleader:\n{expected}"
        time.sleep(0.2)
print("ok" if resp3 else f"ok (RESP2 only: redis-py {redis.__version__} has no RESP3)")

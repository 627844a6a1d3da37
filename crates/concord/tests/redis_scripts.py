"""redis-py's own scripting features against a real Concord node: Lock, Script, EVAL/EVALSHA.

Usage: redis_scripts.py HOST PORT [FOLLOWER_PORT ...]

PORT is the node to write through (a cluster's leader). Every FOLLOWER_PORT is read with
`CONSISTENCY stale` afterwards: each replica ran every script itself, so each must hold the
same values – including those a script computed with math.random and tostring.
Prints "ok" and exits 0 when everything held.
"""
import sys
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError, NoScriptError, ResponseError

host, port = sys.argv[1], int(sys.argv[2])
followers = [int(p) for p in sys.argv[3:]]
r = redis.Redis(host=host, port=port, socket_timeout=30)

# --- Lock: acquire, contention, extend, reacquire, release (its scripts run through EVALSHA). ---
lock = r.lock("lock:resource", timeout=10)
assert lock.acquire(blocking=False), "a free lock is acquired"
token = lock.local.token
assert r.get("lock:resource") == token
other = r.lock("lock:resource", timeout=10)
assert not other.acquire(blocking=False), "a held lock is not acquired twice"
assert lock.owned() and lock.locked()
assert lock.extend(5), "extend adds to the remaining time"
ttl = r.pttl("lock:resource")
assert 10_000 < ttl <= 15_000, ttl
assert lock.extend(20, replace_ttl=True)
ttl = r.pttl("lock:resource")
assert 15_000 < ttl <= 20_000, ttl
assert lock.reacquire(), "reacquire resets the timeout"
ttl = r.pttl("lock:resource")
assert 9_000 < ttl <= 10_000, ttl
try:
    other.release()
    raise AssertionError("a lock not owned was released")
except LockError:
    pass
assert r.get("lock:resource") == token, "the failed release left the owner's token"
lock.release()
assert r.get("lock:resource") is None
try:
    lock.release()
    raise AssertionError("a released lock was released again")
except LockError:
    pass
try:
    lock.extend(1)
    raise AssertionError("an unheld lock was extended")
except (LockError, LockNotOwnedError):
    pass
with r.lock("lock:ctx", timeout=5, blocking_timeout=2) as held:
    assert r.get("lock:ctx") == held.local.token
assert r.get("lock:ctx") is None
# A lock whose timeout passed is free again (expiry goes through the log: allow it some time).
short = r.lock("lock:short", timeout=0.3)
assert short.acquire(blocking=False)
successor = r.lock("lock:short", timeout=5, blocking_timeout=5, sleep=0.05)
assert successor.acquire()
successor.release()

# --- EVAL, EVALSHA, SCRIPT LOAD / EXISTS / FLUSH, NOSCRIPT. ---
body = "return {KEYS[1], ARGV[1], redis.call('incr', KEYS[1])}"
assert r.eval(body, 1, "counter", "x") == [b"counter", b"x", 1]
sha = r.script_load(body)
assert r.script_exists(sha, "0" * 40) == [True, False]
assert r.evalsha(sha, 1, "counter", "y") == [b"counter", b"y", 2]
assert r.evalsha(sha.upper(), 1, "counter", "y")[2] == 3
r.script_flush()
assert r.script_exists(sha) == [False]
try:
    r.evalsha(sha, 1, "counter", "z")
    raise AssertionError("EVALSHA of a flushed script ran")
except NoScriptError:
    pass
script = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
assert script(keys=["counter"], args=[10]) == 13, "Script loads itself after NOSCRIPT"
r.set("text", "abc")
try:
    r.eval("return redis.call('incr', KEYS[1])", 1, "text")
    raise AssertionError("an error inside a script was not reported")
except ResponseError as e:
    assert "value is not an integer" in str(e), e
assert r.eval_ro("return redis.call('get', KEYS[1])", 1, "counter") == b"13"
try:
    r.eval_ro("return redis.call('set', KEYS[1], 'x')", 1, "counter")
    raise AssertionError("EVAL_RO wrote")
except ResponseError as e:
    assert "Write commands are not allowed from read-only scripts" in str(e), e

# --- pipeline(transaction=True) with mixed commands: data commands, keyspace reads that see the
# transaction's own writes, commands the node answers itself, a runtime error in its place. ---
r.delete("tx:a", "tx:h", "tx:l")
with r.pipeline(transaction=True) as p:
    p.set("tx:a", "1").incr("tx:a").ping().echo("hi").keys("tx:*").exists("tx:a")
    p.hset("tx:h", "f", "v").incr("tx:h").execute_command("UNWATCH").blpop(["tx:l"], 1).dbsize().get("tx:a")
    replies = p.execute(raise_on_error=False)
assert replies[:6] == [True, 2, True, b"hi", [b"tx:a"], 1], replies
assert replies[6] == 1 and isinstance(replies[7], ResponseError), replies
assert "WRONGTYPE" in str(replies[7]), replies[7]
assert replies[8] is True and replies[9] is None and replies[10] >= 2, replies
assert replies[11] == b"2", replies
# WATCH: another client's write to a watched key fails the transaction, and nothing runs.
with r.pipeline(transaction=True) as p:
    p.watch("tx:a")
    assert p.get("tx:a") == b"2"
    redis.Redis(host=host, port=port, socket_timeout=30).set("tx:a", "10")
    p.multi()
    p.incr("tx:a").ping()
    try:
        p.execute()
        raise AssertionError("a transaction ran after its watched key changed")
    except redis.WatchError:
        pass
assert r.get("tx:a") == b"10"

# --- Values a script computes, stored: the same on every replica. ---
computed = r.eval(
    "local v = tostring(math.random()) .. ' ' .. tostring({}) "
    "redis.call('set', KEYS[1], v) return v",
    1,
    "computed",
)
assert computed == b"0.17082803611217 table: 0x00000001", computed

expected = {"counter": b"13", "computed": computed, "lock:resource": None, "tx:a": b"10"}
for fport in followers:
    f = redis.Redis(host=host, port=fport, socket_timeout=30)
    f.execute_command("CONSISTENCY", "stale")
    deadline = time.time() + 20
    while True:
        seen = {k: f.get(k) for k in expected}
        if seen == expected:
            break
        assert time.time() < deadline, f"follower {fport} holds {seen}, not {expected}"
        time.sleep(0.1)
print("ok")

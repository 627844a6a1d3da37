#!/usr/bin/env bash
# How long a cache node serves a value after the database acknowledged a newer one: the stale
# window of `concord cache` on a real cluster (issue #16: "a cached value can be stale only for a
# bounded, measured time after a write is acknowledged").
#
#   bench/cache-staleness.sh                        # release build, 3 database nodes, 2 cache nodes, 2000 writes
#   WRITES=200 PROFILE=dev bench/cache-staleness.sh  # try it out
#
# Setup: `concord up --nodes 3 --cache 2` (fsync on). For each of WRITES rounds: read the key
# through its owning cache node until it returns the current value (so it is cached), write a new
# value to database node WRITE_NODE (1-based; writes to a follower are forwarded to the leader),
# take the time of the acknowledgement, then read through the cache in a tight loop until the new
# value comes back. The stale window is the time from the acknowledgement to the first read that
# returned the new value (an upper bound: it includes one read's round trip). Reported: p50, p90,
# p99, p99.9 and max, and how many reads returned the old value.
#
# Env: WRITES (2000), WRITE_NODE (2), BASE (first port, 27600), PROFILE (release).
# Needs: python3 with redis (pip install redis), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

WRITES=${WRITES:-2000}
WRITE_NODE=${WRITE_NODE:-2}
BASE=${BASE:-27600}
WORK=$(mktemp -d /tmp/concord-cache-staleness.XXXXXX)
UP_PID=""
# shellcheck disable=SC2317  # (reached through the trap)
cleanup() {
  if [ -n "$UP_PID" ]; then kill -INT "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
python3 -c 'import redis' 2>/dev/null || { echo "python3's redis package is missing: pip install redis"; exit 2; }

build_concord
DB_PORT=$BASE
CACHE_PORT=$((BASE + 20))
"$CONCORD" up --nodes 3 --cache 2 --data "$WORK/cluster" --redis-port "$DB_PORT" --http-port "$((BASE + 30))" \
  --peer-port "$((BASE + 40))" --cache-port "$CACHE_PORT" --cache-http-port "$((BASE + 50))" --log warn \
  >"$WORK/up.log" 2>&1 & UP_PID=$!

python3 - "$DB_PORT" "$CACHE_PORT" "$WRITES" "$WRITE_NODE" <<'PY'
import sys, time, redis
db_port, cache_port, writes, write_node = (int(a) for a in sys.argv[1:])
deadline = time.time() + 60
db = redis.Redis(port=db_port + write_node - 1)
caches = [redis.Redis(port=cache_port + i) for i in range(2)]
while True:
    try:
        if db.set("__ready", "1") and all(c.info("database").get("serving_from_cache") == "yes"
                                          for c in caches):
            break
    except redis.RedisError:
        pass
    if time.time() > deadline:
        sys.exit("the cluster and its cache nodes did not come up within 60 s")
    time.sleep(0.2)
key = "staleness:probe"
owner = caches[0].execute_command("CACHE", "OWNER", key).decode()
cache = caches[[f"127.0.0.1:{cache_port + i}" for i in range(2)].index(owner)]
windows, stale_reads = [], 0
db.set(key, "v0")
for i in range(1, writes + 1):
    old, new = f"v{i - 1}".encode(), f"v{i}".encode()
    while cache.get(key) != old:          # the old value is cached (a miss fills it)
        pass
    db.set(key, new)
    acked = time.perf_counter()
    while True:
        got = cache.get(key)
        if got == new:
            windows.append(time.perf_counter() - acked)
            break
        if got != old:
            sys.exit(f"round {i}: the cache returned {got!r}, neither {old!r} nor {new!r}")
        stale_reads += 1
windows.sort()
q = lambda p: windows[min(len(windows) - 1, int(p * len(windows)))] * 1e3
print(f"{writes} writes to database node {write_node}, read through cache node {owner}")
print("| p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | reads of the old value |")
print("|---:|---:|---:|---:|---:|---:|")
print(f"| {q(.5):.2f} | {q(.9):.2f} | {q(.99):.2f} | {q(.999):.2f} | {windows[-1] * 1e3:.2f} | {stale_reads} ({stale_reads / writes:.2f} per write) |")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

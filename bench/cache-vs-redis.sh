#!/usr/bin/env bash
# One `concord cache` node against redis-server on cached reads: redis-benchmark -t get on keys
# that are all present (the cache's hits), at each pipeline depth, side by side, with ratios.
#
#   bench/cache-vs-redis.sh                                  # release build, -P 1 and -P 16
#   PIPELINES="1 4 16" ROUNDS=3 bench/cache-vs-redis.sh
#   CACHE_THREADS=1 bench/cache-vs-redis.sh                   # the cache on one thread, as redis-server
#   PROFILE=dev REQUESTS=20000 bench/cache-vs-redis.sh        # try the script out
#   CLIENT_PROCS=2 bench/cache-vs-redis.sh                    # the 50 connections from 2 processes
#
# Who is the bottleneck? At -P 1 on a 2-core machine one redis-benchmark process uses ~97 % of a
# core while either server idles ~30 %: the GET/s of both is then the client's pace, and their
# ratio is 1.0 give or take the noise. So each run also reports the server's CPU time per GET
# (from /proc/PID/stat, before and after) and the clients' CPU; CLIENT_PROCS=2 spreads the same
# 50 connections over two redis-benchmark processes, which makes the server the bottleneck.
#
# Setup: `concord up --nodes 1 --cache 1` (one database node, idle during the runs: every GET is a
# hit) and a redis-server without persistence; both get the same KEYSPACE keys `key:%012d` (the
# names redis-benchmark -r draws) of VALUE_BYTES bytes, written through the cache (write-through
# installs them) and read once. Each round runs redis-server then the cache at every depth;
# the table shows the median round. After the runs the cache's INFO must show no misses beyond
# the warm-up, or a note says how many there were.
#
# Env: REQUESTS (per run, -P 1; default 200000), REQUESTS_PIPELINED (-P > 1, default 2000000),
# CLIENTS (50, over CLIENT_PROCS processes, default 1), KEYSPACE (1000), VALUE_BYTES (3, redis-benchmark's default), PIPELINES ("1 16"),
# ROUNDS (3), CACHE_THREADS (the cache node's --threads, default its own), BASE (first port, 27500),
# RUN_TIMEOUT (120 s per redis-benchmark run), PROFILE (release).
# Needs: redis-server, redis-benchmark, redis-cli, python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

REQUESTS=${REQUESTS:-200000}
REQUESTS_PIPELINED=${REQUESTS_PIPELINED:-2000000}
CLIENTS=${CLIENTS:-50}
CLIENT_PROCS=${CLIENT_PROCS:-1}
KEYSPACE=${KEYSPACE:-1000}
VALUE_BYTES=${VALUE_BYTES:-3}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-27500}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
WORK=$(mktemp -d /tmp/concord-cache-bench.XXXXXX)
REDIS_PID=""
UP_PID=""
CACHE_PID=""
# shellcheck disable=SC2317  # (reached through the trap)
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
  if [ -n "$CACHE_PID" ]; then kill "$CACHE_PID" 2>/dev/null || true; fi
  if [ -n "$UP_PID" ]; then kill -INT "$UP_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: redis-server redis-tools python3)"; exit 2; }
done

build_concord
REDIS_PORT=$BASE
DB_PORT=$((BASE + 10))
CACHE_PORT=$((BASE + 20))

wait_ping() { # port seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do [ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done
  echo "nothing answers PING on port $1 after $2 s" >&2; exit 1
}
# populate PORT: KEYSPACE keys of VALUE_BYTES bytes, then one read of each.
populate() {
  python3 - "$KEYSPACE" "$VALUE_BYTES" >"$WORK/load.resp" <<'EOF'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
value = b"x" * size
for i in range(n):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
for i in range(n):
    key = b"key:%012d" % i
    out.write(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
EOF
  redis-cli -p "$1" --pipe <"$WORK/load.resp" >"$WORK/load.out" 2>&1 || { cat "$WORK/load.out" >&2; exit 1; }
  grep -q "errors: 0" "$WORK/load.out" || { echo "loading port $1 failed:" >&2; cat "$WORK/load.out" >&2; exit 1; }
}

redis-server --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & REDIS_PID=$!
wait_ping "$REDIS_PORT" 10
populate "$REDIS_PORT"

"$CONCORD" up --nodes 1 --data "$WORK/cluster" --redis-port "$DB_PORT" --http-port "$((BASE + 30))" \
  --peer-port "$((BASE + 40))" --log warn >"$WORK/up.log" 2>&1 & UP_PID=$!
wait_ping "$DB_PORT" 30
for _ in $(seq 1 300); do [ "$(redis-cli -p "$DB_PORT" SET __ready 1 2>/dev/null)" = OK ] && break; sleep 0.1; done
"$CONCORD" cache --port "$CACHE_PORT" --db "127.0.0.1:$DB_PORT" --cluster-id "$(cat "$WORK/cluster/cluster.id")" \
  ${CACHE_THREADS:+--threads "$CACHE_THREADS"} >"$WORK/cache.log" 2>&1 & CACHE_PID=$!
wait_ping "$CACHE_PORT" 10
for _ in $(seq 1 100); do
  redis-cli -p "$CACHE_PORT" INFO database | grep -q "serving_from_cache:yes" && break; sleep 0.1
done
redis-cli -p "$CACHE_PORT" INFO database | grep -q "serving_from_cache:yes" \
  || { echo "the cache node does not serve from memory:" >&2; redis-cli -p "$CACHE_PORT" INFO database >&2; exit 1; }
populate "$CACHE_PORT"
MISSES_BEFORE=$(redis-cli -p "$CACHE_PORT" INFO cache | tr -d '\r' | sed -n 's/^misses://p')

RESULTS=$WORK/results.tsv # round, system, depth, rps, p50, server CPU s, client CPU s, requests
: >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TICKS=$(getconf CLK_TCK)
cpu_seconds() { # pid: the process's user + system CPU time so far
  awk -v t="$TICKS" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"
}
run() { # round system port depth server-pid
  local n=$REQUESTS out before after
  [ "$4" -gt 1 ] && n=$REQUESTS_PIPELINED
  echo "round $1: $2 -P $4: $CLIENT_PROCS x redis-benchmark -t get -n $((n / CLIENT_PROCS)) -c $((CLIENTS / CLIENT_PROCS)) -r $KEYSPACE..." >&2
  before=$(cpu_seconds "$5")
  # The clients run side by side; python reports their summed GET/s, the first one's p50 and the
  # CPU time they used (getrusage of its children), so the table can say who was the bottleneck.
  out=$(python3 - "$CLIENT_PROCS" "$RUN_TIMEOUT" redis-benchmark -p "$3" -t get -n "$((n / CLIENT_PROCS))" \
    -c "$((CLIENTS / CLIENT_PROCS))" -P "$4" -r "$KEYSPACE" -d "$VALUE_BYTES" --csv <<'EOF'
import csv, io, resource, subprocess, sys
procs, timeout, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
running = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(procs)]
rps, p50 = 0.0, None
for p in running:
    text, _ = p.communicate(timeout=timeout)
    for r in csv.DictReader(io.StringIO(text)):
        if r.get("test", "").startswith("GET"):
            rps += float(r["rps"])
            p50 = p50 if p50 is not None else float(r["p50_latency_ms"])
use = resource.getrusage(resource.RUSAGE_CHILDREN)
if p50 is None:
    sys.exit(1)
print(f"{rps:.0f}\t{p50:.3f}\t{use.ru_utime + use.ru_stime:.3f}")
EOF
  ) || { echo "$2 -P $4: redis-benchmark failed" >&2; return; }
  after=$(cpu_seconds "$5")
  local rps_p50 client_cpu server_cpu
  rps_p50=$(cut -f1-2 <<<"$out")
  client_cpu=$(cut -f3 <<<"$out")
  server_cpu=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$4" "$rps_p50" "$server_cpu" "$client_cpu" "$n" >>"$RESULTS"
}
for round in $(seq 1 "$ROUNDS"); do
  for d in $PIPELINES; do
    run "$round" redis-server "$REDIS_PORT" "$d" "$REDIS_PID"
    run "$round" "concord cache" "$CACHE_PORT" "$d" "$CACHE_PID"
  done
done
MISSES_AFTER=$(redis-cli -p "$CACHE_PORT" INFO cache | tr -d '\r' | sed -n 's/^misses://p')
kill "$CACHE_PID" 2>/dev/null || true; CACHE_PID=""

echo
echo "redis-benchmark -t get -c $CLIENTS (in $CLIENT_PROCS process(es)) -r $KEYSPACE -d $VALUE_BYTES, -n $REQUESTS (-P 1) / $REQUESTS_PIPELINED (-P > 1),"
echo "every GET a hit; loopback, $(nproc) cores, load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg),"
echo "profile $PROFILE, median of $ROUNDS round(s); cache misses during the runs: $((MISSES_AFTER - MISSES_BEFORE))"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
depths = sorted({int(r[2]) for r in rows})
def med(system, depth, f):
    vals = [f(r) for r in rows if r[1] == system and int(r[2]) == depth]
    return statistics.median(vals) if vals else None
rps = lambda r: float(r[3])
p50 = lambda r: float(r[4])
# Server CPU per GET (µs): what a GET costs the server, whoever was the bottleneck.
cpu_us = lambda r: float(r[5]) / float(r[7]) * 1e6
# The clients' CPU as a share of one core per client process over the run's length.
client_busy = lambda r: float(r[6]) / (float(r[7]) / float(r[3])) * 100
print()
print("| depth | redis-server GET/s | concord cache GET/s | cache / redis | server CPU per GET, redis / cache (µs) | client CPU, redis run / cache run (% of a core, summed) | p50 redis / cache (ms) |")
print("|---|---|---|---|---|---|---|")
for d in depths:
    r, c = med("redis-server", d, rps), med("concord cache", d, rps)
    ratio = f"{c / r:.2f}x" if r and c else "-"
    fmt = lambda x: f"{x:,.0f}" if x else "error"
    two = lambda f, spec: " / ".join(format(med(s, d, f), spec) if med(s, d, f) is not None else "-" for s in ("redis-server", "concord cache"))
    print(f"| -P {d} | {fmt(r)} | {fmt(c)} | {ratio} | {two(cpu_us, '.2f')} | {two(client_busy, '.0f')} | {two(p50, '.3f')} |")
print()
print("A client near 100 % of a core per process is the bottleneck: then both servers wait on it and the")
print("GET/s ratio says little; the server CPU per GET says which server does a GET with less work.")
EOF

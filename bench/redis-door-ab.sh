#!/usr/bin/env bash
# Two builds of Concord side by side on the Redis front door's pipelined path, alternating, with
# redis-server measured in the same window: the before/after tables of BENCHMARKS.md ("The batched
# build profiled", "A batch as one entry in the writer's queue").
#
#   BEFORE=/path/to/old/concord AFTER=/path/to/new/concord bench/redis-door-ab.sh
#   BEFORE=… AFTER=… ROUNDS=5 bench/redis-door-ab.sh
#
# Each round starts one node of each build in turn (`concord serve --id 1`, fsync on, a fresh data
# directory) and runs `redis-benchmark -c 50 -P 16 -r 10000 -d 64`: SET (REQUESTS_SET, 500 000),
# then GET (REQUESTS_GET, 1 000 000). Then redis-server 7 with `appendfsync always`, twice. Prints
# one line per run (ops/s). Run time: about 15 s a round plus 20 s for redis-server.
# Needs: redis-server, redis-benchmark, redis-cli (Debian: redis-server redis-tools).
set -euo pipefail
: "${BEFORE:?BEFORE=path to the concord binary measured first}"
: "${AFTER:?AFTER=path to the concord binary measured second}"
ROUNDS=${ROUNDS:-4}
REQUESTS_SET=${REQUESTS_SET:-500000}
REQUESTS_GET=${REQUESTS_GET:-1000000}
PORT=${PORT:-27379}
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# rps TEST N: redis-benchmark's requests per second for TEST against PORT.
rps() {
  redis-benchmark -p "$PORT" -t "$1" -n "$2" -c 50 -P 16 -r 10000 -d 64 -q 2>/dev/null |
    tr '\r' '\n' | grep -a "requests per second" | tail -1 | awk '{print $2}'
}

# wait_port: until the server on PORT answers PING.
wait_port() {
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "nothing answers on port $PORT" >&2; return 1
}

measure() { # LABEL BINARY
  rm -rf "$WORK/data"
  "$2" serve --id 1 --data "$WORK/data" --redis-addr "127.0.0.1:$PORT" --http-addr "127.0.0.1:$((PORT + 1))" \
    --log warn >"$WORK/$1.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_port
  sleep 1 # a single node elects itself
  echo "$1 SET -P16 $(rps set "$REQUESTS_SET") GET -P16 $(rps get "$REQUESTS_GET")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  measure before "$BEFORE"
  measure after "$AFTER"
done
redis-server --port "$PORT" --save '' --appendonly yes --appendfsync always --dir "$WORK" --daemonize yes \
  --logfile "$WORK/redis.log" >/dev/null
wait_port
for _ in 1 2; do
  echo "redis-server (appendfsync always) SET -P16 $(rps set "$REQUESTS_SET") GET -P16 $(rps get "$REQUESTS_GET")"
done

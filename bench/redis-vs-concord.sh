#!/usr/bin/env bash
# redis-benchmark GET/SET against one Concord node and against redis-server, fsync off and on.
#
#   bench/redis-vs-concord.sh              # 50 000 requests per test, 50 clients
#   REQUESTS=200000 CLIENTS=100 bench/redis-vs-concord.sh
#   TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100 bench/redis-vs-concord.sh
#                                          # the data types (redis-benchmark's own tests)
#
# fsync off: redis-server without persistence; Concord with --no-fsync (WAL written to the OS, not
#            synced: survives kill -9, not power loss).
# fsync on:  redis-server --appendonly yes --appendfsync always; Concord's default (fdatasync per
#            group commit).
# Needs: redis-server, redis-benchmark (Debian: redis-server, redis-tools), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-50000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get}
PORT=${PORT:-26379}
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for tool in redis-server redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: redis-server redis-tools)"; exit 2; }
done
# PROFILE=dev builds faster, for trying the script out (numbers from it mean little).
PROFILE=${PROFILE:-release}
OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
echo "building ($PROFILE)..." >&2
cargo build --profile "$PROFILE" -q -p concord
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
CONCORD=$TARGET_DIR/$OUT/concord

wait_port() { for _ in $(seq 1 200); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
bench() { # label
  local out
  out=$(timeout 600 redis-benchmark -p "$PORT" -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" -q 2>&1 | tr '\r' '\n' | grep -E '^[A-Z_0-9]+( \(.*\))?: [0-9]')
  echo "$out" | sed "s/^/$1  /"
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

echo "redis-benchmark -t $TESTS -n $REQUESTS -c $CLIENTS, loopback ($(nproc) cores)"
redis-server --port "$PORT" --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & PID=$!
wait_port; bench "redis   fsync off"; stop
redis-server --port "$PORT" --save '' --appendonly yes --appendfsync always --dir "$WORK" >/dev/null 2>&1 & PID=$!
wait_port; bench "redis   fsync on "; stop
"$CONCORD" serve --id 1 --data "$WORK/c-nofsync" --redis-addr "127.0.0.1:$PORT" --no-fsync --log warn & PID=$!
wait_port; bench "concord fsync off"; stop
"$CONCORD" serve --id 1 --data "$WORK/c-fsync" --redis-addr "127.0.0.1:$PORT" --log warn & PID=$!
wait_port; bench "concord fsync on "; stop

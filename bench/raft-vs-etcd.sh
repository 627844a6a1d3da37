#!/usr/bin/env bash
# 3-node Concord vs 3-node etcd on loopback, both with fsync on, same closed-loop HTTP write load.
#
#   bench/raft-vs-etcd.sh                 # 10 s per system, 32 clients
#   DURATION=30s CLIENTS=64 bench/raft-vs-etcd.sh
#
# Needs: etcd (Debian: etcd-server), cargo. Builds the release `concord` binary and the `kvload`
# example (crates/concord-server/examples/kvload.rs), which drives both systems the same way:
# one keep-alive connection per client, puts back to back, clients spread over all three nodes
# (followers forward to the leader in both systems). Concord: PUT /v1/kv/{key}; etcd: POST
# /v3/kv/put (the v3 JSON gateway). Prints one line per system: writes/s, p50, p99.
# Run time is bounded: build + 2 x (startup + DURATION + shutdown).
# (Latency at a fixed offered load, open loop, p99/p99.9 beside etcd: bench/latency-vs-etcd.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-32}
VALUE_BYTES=${VALUE_BYTES:-64}
BASE=${BASE:-21000}
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v etcd >/dev/null || { echo "etcd is not installed (Debian: apt-get install etcd-server)"; exit 2; }
# PROFILE=dev builds faster, for trying the script out (numbers from it mean little).
PROFILE=${PROFILE:-release}
OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
echo "building ($PROFILE)..." >&2
cargo build --profile "$PROFILE" -q -p concord
cargo build --profile "$PROFILE" -q -p concord-server --example kvload
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
CONCORD=$TARGET_DIR/$OUT/concord
KVLOAD=$TARGET_DIR/$OUT/examples/kvload

wait_http() { # url, seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

# ---- Concord: 3 processes via `concord up` ----
HTTP0=$((BASE)); REDIS0=$((BASE + 10)); PEER0=$((BASE + 20))
"$CONCORD" up --nodes 3 --data "$WORK/concord" --http-port $HTTP0 --redis-port $REDIS0 --peer-port $PEER0 \
  --log warn >"$WORK/concord-up.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
for i in 0 1 2; do wait_http "http://127.0.0.1:$((HTTP0 + i))/healthz" 20; done
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$HTTP0/v1/cluster" | grep -q '"leader":[0-9]' && break; sleep 0.1
done
CONCORD_EPS="127.0.0.1:$HTTP0,127.0.0.1:$((HTTP0 + 1)),127.0.0.1:$((HTTP0 + 2))"
echo "concord: $CLIENTS clients for $DURATION..." >&2
CONCORD_RESULT=$("$KVLOAD" --target concord --endpoints "$CONCORD_EPS" --clients "$CLIENTS" \
  --duration "$DURATION" --value-bytes "$VALUE_BYTES")
kill -INT "$UP_PID"; wait "$UP_PID" || true

# ---- etcd: 3 processes ----
E0=$((BASE + 30))
CLUSTER=""
for i in 0 1 2; do CLUSTER+="e$i=http://127.0.0.1:$((E0 + 10 + i)),"; done
CLUSTER=${CLUSTER%,}
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((E0 + i))" --advertise-client-urls "http://127.0.0.1:$((E0 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((E0 + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((E0 + 10 + i))" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token concord-bench \
    --log-level error >"$WORK/etcd$i.log" 2>&1 &
  PIDS+=("$!")
done
for i in 0 1 2; do wait_http "http://127.0.0.1:$((E0 + i))/health" 30; done
ETCD_EPS="127.0.0.1:$E0,127.0.0.1:$((E0 + 1)),127.0.0.1:$((E0 + 2))"
echo "etcd: $CLIENTS clients for $DURATION..." >&2
ETCD_RESULT=$("$KVLOAD" --target etcd --endpoints "$ETCD_EPS" --clients "$CLIENTS" \
  --duration "$DURATION" --value-bytes "$VALUE_BYTES")

echo
echo "3 nodes, fsync on, $CLIENTS clients, $VALUE_BYTES-byte values, $DURATION, loopback ($(nproc) cores)"
printf '%-8s %12s %10s %10s %8s\n' system writes/s p50_ms p99_ms errors
for r in "$CONCORD_RESULT" "$ETCD_RESULT"; do
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-8s %12.0f %10.2f %10.2f %8d" % (r["target"], r["writes_per_s"], r["p50_ms"], r["p99_ms"], r["errors"]))' "$r"
done

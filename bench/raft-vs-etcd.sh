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
# shellcheck source=bench/lib.sh
. bench/lib.sh

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
build_concord kvload
KVLOAD=$TARGET_DIR/$OUT/examples/kvload

# ---- Concord: 3 processes via `concord up` ----
start_concord_http "$BASE"
echo "concord: $CLIENTS clients for $DURATION..." >&2
CONCORD_RESULT=$("$KVLOAD" --target concord --endpoints "$CONCORD_EPS" --clients "$CLIENTS" \
  --duration "$DURATION" --value-bytes "$VALUE_BYTES")
kill -INT "$UP_PID"; wait "$UP_PID" || true

# ---- etcd: 3 processes ----
start_etcd $((BASE + 30))
echo "etcd: $CLIENTS clients for $DURATION..." >&2
ETCD_RESULT=$("$KVLOAD" --target etcd --endpoints "$ETCD_EPS" --clients "$CLIENTS" \
  --duration "$DURATION" --value-bytes "$VALUE_BYTES")

echo
echo "3 nodes, fsync on, $CLIENTS clients, $VALUE_BYTES-byte values, $DURATION, loopback ($(nproc) cores)"
printf '%-8s %12s %10s %10s %8s\n' system writes/s p50_ms p99_ms errors
for r in "$CONCORD_RESULT" "$ETCD_RESULT"; do
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-8s %12.0f %10.2f %10.2f %8d" % (r["target"], r["writes_per_s"], r["p50_ms"], r["p99_ms"], r["errors"]))' "$r"
done

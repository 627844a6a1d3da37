#!/usr/bin/env bash
# Latency at a fixed offered load (open loop): 3-node Concord beside 3-node etcd, both fsync on,
# the same requests/s over HTTP, p99 and p99.9 side by side.
#
#   bench/latency-vs-etcd.sh                          # 20 000 requests/s, 10 s, puts then gets
#   RATE=10000 DURATION=30s OPS=put bench/latency-vs-etcd.sh
#   PROFILE=dev RATE=2000 DURATION=3s bench/latency-vs-etcd.sh   # try the script out
#
# The load is the kvload example (crates/concord-server/examples/kvload.rs) with --rate: RATE
# requests/s split evenly over CLIENTS keep-alive connections spread over all three nodes of each
# system (followers forward to the leader in both), each request sent at its intended time on a
# fixed schedule and its latency measured from that time, so a stall counts against every request
# scheduled during it (no coordinated omission, as wrk2 measures). Concord: PUT/GET /v1/kv/{key}
# (GET linearizable, the default); etcd: POST /v3/kv/put and /v3/kv/range (linearizable, the
# default) through its v3 JSON gateway. Prints, per op, achieved rate, p50/p99/p99.9/max, how many
# requests went out late (the connection was still waiting for an earlier reply) or never went
# out, and errors. If a system cannot keep up with RATE its "late" and "unsent" counts say so and
# its percentiles include the queueing – which is the point of an open-loop measurement.
#
# Env: RATE (20000), DURATION (10s per op and system), OPS ("put get"), CLIENTS (200: enough that
# one connection's share of RATE leaves time for a reply), VALUE_BYTES (64), KEYS (10000), BASE
# (first port, 22000: Concord BASE..BASE+22, etcd BASE+30..BASE+42), PROFILE (release; dev builds
# faster, its numbers mean little).
# Run time is bounded: build + 2 x (startup + |OPS| x DURATION (each kvload run cut off at
# DURATION + 60 s) + shutdown), about 1 minute after the build with the defaults.
# Every process started here is stopped on exit (trap), and the temp dir removed.
# Needs: etcd (Debian: etcd-server), curl, python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

RATE=${RATE:-20000}
DURATION=${DURATION:-10s}
OPS=${OPS:-"put get"}
CLIENTS=${CLIENTS:-200}
VALUE_BYTES=${VALUE_BYTES:-64}
KEYS=${KEYS:-10000}
BASE=${BASE:-22000}
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
PIDS=()
# shellcheck disable=SC2317  # (reached through the trap)
cleanup() {
  for p in "${PIDS[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in etcd curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: etcd-server curl python3)"; exit 2; }
done
build_concord kvload
KVLOAD=$TARGET_DIR/$OUT/examples/kvload
# kvload's own bound is DURATION plus the last replies; this is the backstop.
RUN_TIMEOUT=$(( $(python3 -c 'import re,sys; m=re.fullmatch(r"(\d+)(ms|s|m)?", sys.argv[1]); n=int(m[1]); print({"ms": n // 1000, "m": n * 60}.get(m[2], n))' "$DURATION") + 60 ))

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
# load TARGET ENDPOINTS: one open-loop kvload run per op, its JSON line kept.
load() {
  local op
  for op in $OPS; do
    echo "$1 $op: $RATE requests/s over $CLIENTS connections for $DURATION..." >&2
    RESULTS+=("$(timeout "$RUN_TIMEOUT" "$KVLOAD" --target "$1" --endpoints "$2" --op "$op" --rate "$RATE" \
      --clients "$CLIENTS" --duration "$DURATION" --value-bytes "$VALUE_BYTES" --keys "$KEYS" || echo '{}')")
  done
}

# ---- Concord: 3 processes via `concord up` ----
start_concord_http "$BASE"
load concord "$CONCORD_EPS"
kill -INT "$UP_PID"; wait "$UP_PID" || true; PIDS=()

# ---- etcd: 3 processes ----
start_etcd $((BASE + 30))
load etcd "$ETCD_EPS"

echo
echo "Open loop, $RATE requests/s offered, 3 nodes, fsync on, $CLIENTS connections over all nodes, $VALUE_BYTES-byte values, $DURATION per run"
echo "loopback, $(nproc) cores, load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE"
echo "latency from each request's intended send time; late = sent > 2 ms after it; unsent = never sent"
echo
python3 - "${RESULTS[@]}" <<'EOF'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print("| system | op | achieved/s | p50 ms | p99 ms | p99.9 ms | max ms | late | unsent | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for j in rows:
    if not j:
        print("| (a kvload run failed or timed out) |||||||||"); continue
    print(f'| {j["target"]} | {j["op"]} | {j["ops_per_s"]:.0f} | {j["p50_ms"]:.2f} | {j["p99_ms"]:.2f} | {j["p999_ms"]:.2f} | {j["max_ms"]:.2f} | {j["late"]} | {j["unsent"]} | {j["errors"]} |')
saturated = [f'{j["target"]} {j["op"]}' for j in rows if j and j["unsent"] + j["errors"] > 0.01 * j["offered_per_s"] * j["seconds"]]
if saturated:
    print()
    print("not sustained (over 1% of the schedule unsent or failed):", ", ".join(saturated))
    print("  their percentiles are mostly queueing time, which grows with DURATION: compare at a lower RATE too")
by = {(j.get("target"), j.get("op")): j for j in rows if j}
print()
for op in dict.fromkeys(j["op"] for j in rows if j):
    c, e = by.get(("concord", op)), by.get(("etcd", op))
    if c and e:
        print(f'{op}: Concord / etcd  p99 {c["p99_ms"] / e["p99_ms"]:.2f}x, p99.9 {c["p999_ms"] / e["p999_ms"]:.2f}x (lower is better)')
EOF

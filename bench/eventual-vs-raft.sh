#!/usr/bin/env bash
# The eventual (Dynamo-style) mode vs the strong (Raft) mode on the same 3-node real cluster,
# same redis-benchmark workload, in one run.
#
#   bench/eventual-vs-raft.sh                        # 200 000 requests per test, 50 clients
#   REQUESTS=500000 CLIENTS=100 QUORUMS="2/2" bench/eventual-vs-raft.sh
#
# One after the other, each cluster a fresh `concord up` (3 processes, fsync on: the default) with
# its own data dir under a temp dir and its own ports (BASE, BASE+100, ...; never 6379/8080):
#   1. strong:   `concord up` (Raft). The workload against the leader, then against a follower
#                (which forwards writes, and linearizable reads, to the leader: a second hop).
#   2. eventual: `concord up --mode eventual --r R --w W` (N = 3) for each R/W in QUORUMS (default
#                "2/2 1/1 3/3"), the workload against node 1 (any node serves any request).
# The workload: redis-benchmark -t set,get -n REQUESTS -c CLIENTS -r KEYSPACE -d VALUE_BYTES --csv
# (redis-benchmark 7 prints requests/s and p50/p95/p99 with --csv, and stops at the first error
# reply, so a test that errs shows "error" in the table and its message below it).
# Prints one table: mode, target node, quorum, SET ops/s, p50/p99 ms, GET ops/s, p50/p99 ms.
# Run time is bounded: build + 4 x (startup + 2 tests + shutdown), about 2-3 min with the defaults
# (each redis-benchmark is cut off after RUN_TIMEOUT seconds).
# Needs: redis-benchmark, redis-cli (Debian: redis-tools), curl, python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-10000}
VALUE_BYTES=${VALUE_BYTES:-100}
QUORUMS=${QUORUMS:-"2/2 1/1 3/3"}
BASE=${BASE:-24000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
UP_PID=""
cleanup() {
  if [ -n "$UP_PID" ]; then kill -INT "$UP_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in redis-benchmark redis-cli curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: redis-tools curl python3)"; exit 2; }
done
# shellcheck disable=SC2119  # (it takes example names, not the script's arguments)
build_concord

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()    # one tab-separated line per run: mode, target, quorum, then the 6 numbers
ERRORS=()  # what went wrong, printed under the table
CLUSTER=0  # clusters started so far: cluster k uses ports BASE + 100 k ...
HTTP0=0; REDIS0=0

# up, down, leader: bench/lib.sh.

# bench MODE NODE QUORUM: the workload against node NODE (1-based) of the running cluster.
bench() {
  local mode=$1 node=$2 quorum=$3 port=$((REDIS0 + $2 - 1)) out err rc=0
  echo "$mode, node $node, $quorum: redis-benchmark -t set,get -n $REQUESTS -c $CLIENTS..." >&2
  out=$(timeout "$RUN_TIMEOUT" redis-benchmark -p "$port" -t set,get -n "$REQUESTS" -c "$CLIENTS" \
    -r "$KEYSPACE" -d "$VALUE_BYTES" --csv 2>"$WORK/bench.err") || rc=$?
  err=$(tr '\r' '\n' <"$WORK/bench.err" | grep -v '^ *$' | grep -v 'rps=' | tail -3 || true)
  [ "$rc" = 0 ] || ERRORS+=("$mode node $node $quorum: redis-benchmark exited with $rc${err:+: $err}")
  ROWS+=("$(python3 - "$mode" "node $node" "$quorum" "$out" <<'EOF'
import csv, io, sys
mode, target, quorum, text = sys.argv[1:]
got = {r["test"]: r for r in csv.DictReader(io.StringIO(text)) if r.get("test")}
cells = []
for test in ("SET", "GET"):
    r = got.get(test)
    cells += [f'{float(r["rps"]):.0f}', f'{float(r["p50_latency_ms"]):.2f}', f'{float(r["p99_latency_ms"]):.2f}'] if r else ["error", "-", "-"]
print("\t".join([mode, target, quorum] + cells))
EOF
)")
}

# ---- strong: Raft, the leader and a follower as targets ----
up strong
L=$(leader)
[ -n "$L" ] || { echo "the Raft cluster reports no leader" >&2; exit 1; }
F=$(( L % 3 + 1 ))
bench strong "$L" "majority (leader)"
L2=$(leader)
[ "$L2" = "$L" ] || ERRORS+=("strong: the leader changed from node $L to node ${L2:-none} during the leader run")
bench strong "$F" "majority (follower)"
L3=$(leader)
[ "$L3" = "$L2" ] || ERRORS+=("strong: the leader changed from node $L2 to node ${L3:-none} during the follower run")
down

# ---- eventual: N = 3, one cluster per R/W ----
for q in $QUORUMS; do
  R=${q%/*}; W=${q#*/}
  up "eventual-r${R}w${W}" --mode eventual --n 3 --r "$R" --w "$W"
  bench eventual 1 "N3 R$R W$W"
  # Hinted handoffs mean a replica did not answer in time during the run: worth knowing.
  HINTS=$(curl -sf "http://127.0.0.1:$HTTP0/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("hints", "?"))' || echo "?")
  [ "$HINTS" = 0 ] || ERRORS+=("eventual N3 R$R W$W: node 1 holds $HINTS hint(s) after the run")
  down
done

echo
echo "3 nodes (concord up), fsync on, redis-benchmark -t set,get -n $REQUESTS -c $CLIENTS -r $KEYSPACE -d $VALUE_BYTES"
echo "loopback, $(nproc) cores, load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-7s %-20s %10s %8s %8s %10s %8s %8s\n' mode target quorum SET/s p50_ms p99_ms GET/s p50_ms p99_ms
for row in "${ROWS[@]}"; do
  IFS=$'\t' read -r -a c <<<"$row"
  printf '%-9s %-7s %-20s %10s %8s %8s %10s %8s %8s\n' "${c[@]}"
done
for e in "${ERRORS[@]:-}"; do [ -n "$e" ] && echo "note: $e"; done
exit 0

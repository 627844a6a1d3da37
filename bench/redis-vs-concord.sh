#!/usr/bin/env bash
# Concord's Redis front door against redis-server, every target of issue #14 in one run, each
# with its anchor beside it.
#
#   bench/redis-vs-concord.sh                        # every part, release build
#   PARTS=single PIPELINES="1 16" bench/redis-vs-concord.sh
#   PARTS=three,eventual REQUESTS=200000 bench/redis-vs-concord.sh
#   PARTS=latency RATE=20000 DURATION=20s bench/redis-vs-concord.sh
#   PROFILE=dev PARTS=single REQUESTS=5000 bench/redis-vs-concord.sh   # try the script out
#   TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100 PARTS=single bench/redis-vs-concord.sh
#                                          # the data types (redis-benchmark's own tests)
#
# PARTS (comma-separated, default all four):
#   single    one node. redis-server without persistence and with appendfsync always; Concord
#             with --no-fsync and with its default (fdatasync per group commit). redis-benchmark
#             -t TESTS -c CLIENTS at each pipeline depth in PIPELINES. Ends with a markdown table of
#             Concord / redis-server ratios (fsync on vs appendfsync always; fsync off vs no
#             persistence), ready for BENCHMARKS.md.
#   three     `concord up --nodes 3` (Raft, fsync on). SET and GET (linearizable, the default)
#             through the leader, GET through a follower, at each depth; prints follower/leader.
#   eventual  `concord up --nodes 3 --mode eventual` (N=3, R/W from EVENTUAL_QUORUM, default 2/2,
#             fsync on), SET and GET through node 1 at each depth.
#   latency   open loop: the kvload example (crates/concord-server/examples/kvload.rs, --target
#             redis) offers RATE requests/s over LAT_CLIENTS connections for DURATION, SET then GET,
#             to redis-server (appendfsync always) and to the Raft leader of a 3-node Concord
#             (fsync on); latency is measured from each request's intended send time (no
#             coordinated omission). Prints p50/p99/p99.9/max, late and unsent requests.
#             (Concord beside etcd at a fixed rate, over HTTP: bench/latency-vs-etcd.sh.)
#
# Other env: REQUESTS (per redis-benchmark run without pipelining, default 100000),
# REQUESTS_PIPELINED (with -P > 1, default 500000), CLIENTS (50), KEYSPACE (-r, 10000),
# VALUE_BYTES (-d, 64), TESTS (set,get), EVENTUAL_QUORUM (R/W, 2/2), RATE (20000), DURATION
# (10s per latency run), LAT_CLIENTS (200 connections for the latency runs), BASE (first port,
# 27000: single node BASE..BASE+1, cluster k BASE+100k..+22; clear of the tests' ephemeral ports
# and of the other bench scripts), RUN_TIMEOUT (seconds one redis-benchmark or kvload run may
# take, 120), PROFILE (release; dev builds faster, its numbers mean little).
# Run time is bounded: build + at most 14 redis-benchmark runs (single: 4 servers x 2 depths;
# three: 2 x 2; eventual: 2) of RUN_TIMEOUT each + 4 kvload runs (latency) of DURATION, plus
# startups and shutdowns; about 3-5 minutes after a release build on 2 cores with the defaults.
# Every process started here is stopped on exit (trap), and the temp dir removed.
# Needs: redis-server, redis-benchmark, redis-cli (Debian: redis-server redis-tools), curl,
# python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

PARTS=${PARTS:-single,three,eventual,latency}
PIPELINES=${PIPELINES:-"1 16"}
REQUESTS=${REQUESTS:-100000}
REQUESTS_PIPELINED=${REQUESTS_PIPELINED:-500000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-10000}
VALUE_BYTES=${VALUE_BYTES:-64}
TESTS=${TESTS:-set,get}
EVENTUAL_QUORUM=${EVENTUAL_QUORUM:-2/2}
RATE=${RATE:-20000}
DURATION=${DURATION:-10s}
LAT_CLIENTS=${LAT_CLIENTS:-200}
BASE=${BASE:-27000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
PID=""     # the single server running (redis-server or concord serve)
UP_PID=""  # the `concord up` running
# shellcheck disable=SC2317  # (reached through the trap)
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  if [ -n "$UP_PID" ]; then kill -INT "$UP_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

has_part() { [[ ",$PARTS," == *",$1,"* ]]; }
for p in ${PARTS//,/ }; do
  case $p in single|three|eventual|latency) ;; *) echo "unknown part '$p' (single, three, eventual, latency)" >&2; exit 2;; esac
done
for tool in redis-server redis-benchmark redis-cli curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: redis-server redis-tools curl python3)"; exit 2; }
done
EXAMPLES=()
if has_part latency; then EXAMPLES+=(kvload); fi
build_concord "${EXAMPLES[@]}"
KVLOAD=$TARGET_DIR/$OUT/examples/kvload

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$WORK/results.tsv  # part, system, where, depth, test, rps, p50, p99 (one redis-benchmark test)
LATENCY=$WORK/latency.tsv  # system, op, kvload's JSON line
NOTES=$WORK/notes.txt      # what went wrong, printed under the tables
: >"$RESULTS"; : >"$LATENCY"; : >"$NOTES"

# ---- one node ----
wait_port() { # port
  for _ in $(seq 1 300); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "nothing answers PING on port $1 after 30 s" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

# bench PART SYSTEM WHERE PORT DEPTH TESTS: one redis-benchmark run, its tests appended to RESULTS.
bench() {
  local part=$1 system=$2 where=$3 port=$4 depth=$5 tests=$6 n=$REQUESTS out rc=0 err
  [ "$depth" -gt 1 ] && n=$REQUESTS_PIPELINED
  echo "$part: $system $where: redis-benchmark -t $tests -P $depth -n $n -c $CLIENTS..." >&2
  out=$(timeout "$RUN_TIMEOUT" redis-benchmark -p "$port" -t "$tests" -n "$n" -c "$CLIENTS" -P "$depth" \
    -r "$KEYSPACE" -d "$VALUE_BYTES" --csv 2>"$WORK/bench.err") || rc=$?
  err=$(tr '\r' '\n' <"$WORK/bench.err" | grep -v '^ *$' | grep -v 'rps=' | tail -3 || true)
  [ "$rc" = 0 ] || echo "$part $system $where -P $depth: redis-benchmark exited with $rc${err:+: $err}" >>"$NOTES"
  python3 - "$part" "$system" "$where" "$depth" "$tests" "$out" >>"$RESULTS" <<'EOF'
import csv, io, sys
part, system, where, depth, tests, text = sys.argv[1:]
got = {r["test"]: r for r in csv.DictReader(io.StringIO(text)) if r.get("test")}
for test in tests.upper().split(","):
    # redis-benchmark names some tests differently from its -t names (lrange_100 -> LRANGE_100 ...)
    r = next((v for k, v in got.items() if k.split(" ")[0] == test), None)
    cells = [f'{float(r["rps"]):.0f}', f'{float(r["p50_latency_ms"]):.3f}', f'{float(r["p99_latency_ms"]):.3f}'] if r else ["error", "-", "-"]
    print("\t".join([part, system, where, depth, test] + cells))
EOF
}

if has_part single; then
  P=$BASE
  single() { # SYSTEM DURABILITY: every depth against the server on port P
    local d; for d in $PIPELINES; do bench single "$1" "$2" "$P" "$d" "$TESTS"; done
  }
  redis-server --port "$P" --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & PID=$!
  wait_port "$P"; single redis "fsync off"; stop
  rm -rf "$WORK/appendonlydir"
  redis-server --port "$P" --save '' --appendonly yes --appendfsync always --dir "$WORK" >/dev/null 2>&1 & PID=$!
  wait_port "$P"; single redis "fsync on"; stop
  "$CONCORD" serve --id 1 --data "$WORK/c-nofsync" --redis-addr "127.0.0.1:$P" \
    --http-addr "127.0.0.1:$((P + 1))" --no-fsync --log warn 2>"$WORK/c-nofsync.log" & PID=$!
  wait_port "$P"; single concord "fsync off"; stop
  "$CONCORD" serve --id 1 --data "$WORK/c-fsync" --redis-addr "127.0.0.1:$P" \
    --http-addr "127.0.0.1:$((P + 1))" --log warn 2>"$WORK/c-fsync.log" & PID=$!
  wait_port "$P"; single concord "fsync on"; stop
fi

# ---- three nodes ----
CLUSTER=1  # the next cluster's number: cluster k uses ports BASE + 100 k ... (the single node BASE..)
HTTP0=0; REDIS0=0
# up, down, leader: bench/lib.sh.

if has_part three; then
  up three
  L=$(leader)
  [ -n "$L" ] || { echo "the Raft cluster reports no leader" >&2; exit 1; }
  F=$(( L % 3 + 1 ))
  for d in $PIPELINES; do
    bench three concord "leader (node $L)" $((REDIS0 + L - 1)) "$d" set,get
    bench three concord "follower (node $F)" $((REDIS0 + F - 1)) "$d" get
  done
  L2=$(leader)
  [ "$L2" = "$L" ] || echo "three: the leader changed from node $L to node ${L2:-none} during the runs" >>"$NOTES"
  down
fi

if has_part eventual; then
  R=${EVENTUAL_QUORUM%/*}; W=${EVENTUAL_QUORUM#*/}
  up eventual --mode eventual --n 3 --r "$R" --w "$W"
  for d in $PIPELINES; do bench eventual "concord N3 R$R W$W" "node 1" "$REDIS0" "$d" set,get; done
  # Hinted handoffs mean a replica did not answer in time during the run: worth knowing.
  HINTS=$(curl -sf "http://127.0.0.1:$HTTP0/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("hints", "?"))' || echo "?")
  [ "$HINTS" = 0 ] || echo "eventual N3 R$R W$W: node 1 holds $HINTS hint(s) after the run" >>"$NOTES"
  down
fi

# ---- open-loop latency over RESP ----
# lat SYSTEM PORT: SET then GET at RATE, one line each appended to LATENCY.
lat() {
  local op out
  for op in put get; do
    echo "latency: $1: kvload --target redis --op $op --rate $RATE --clients $LAT_CLIENTS --duration $DURATION..." >&2
    out=$(timeout "$RUN_TIMEOUT" "$KVLOAD" --target redis --endpoints "127.0.0.1:$2" --op "$op" --rate "$RATE" \
      --clients "$LAT_CLIENTS" --duration "$DURATION" --value-bytes "$VALUE_BYTES" --keys "$KEYSPACE") \
      || { echo "latency $1 $op: kvload failed or timed out" >>"$NOTES"; continue; }
    printf '%s\t%s\t%s\n' "$1" "$op" "$out" >>"$LATENCY"
  done
}
if has_part latency; then
  P=$BASE
  rm -rf "$WORK/appendonlydir"
  redis-server --port "$P" --save '' --appendonly yes --appendfsync always --dir "$WORK" >/dev/null 2>&1 & PID=$!
  wait_port "$P"; lat "redis-server, appendfsync always" "$P"; stop
  up latency
  L=$(leader)
  [ -n "$L" ] || { echo "the Raft cluster reports no leader" >&2; exit 1; }
  lat "concord 3 nodes, fsync on, leader" $((REDIS0 + L - 1))
  [ "$(leader)" = "$L" ] || echo "latency: the leader changed during the runs" >>"$NOTES"
  down
fi

echo
echo "redis-benchmark -c $CLIENTS -r $KEYSPACE -d $VALUE_BYTES, -n $REQUESTS (-P 1) / $REQUESTS_PIPELINED (-P > 1), loopback,"
echo "$(nproc) cores, load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE"
python3 - "$RESULTS" "$LATENCY" "$RATE" "$DURATION" "$LAT_CLIENTS" <<'EOF'
import json, sys
results, latency, rate, duration, lat_clients = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]

def num(x):
    try: return float(x)
    except ValueError: return None

def ratio(a, b):
    a, b = num(a), num(b)
    return f"{a / b:.2f}" if a is not None and b else "-"

if rows:
    print()
    print(f'{"part":<9} {"system":<20} {"where":<19} {"-P":>3} {"test":<6} {"ops/s":>10} {"p50_ms":>8} {"p99_ms":>8}')
    for part, system, where, depth, test, rps, p50, p99 in rows:
        print(f"{part:<9} {system:<20} {where:<19} {depth:>3} {test:<6} {rps:>10} {p50:>8} {p99:>8}")

def get(part, system, where, depth, test):
    for r in rows:
        if r[0] == part and r[1] == system and (where is None or r[2] == where or r[2].startswith(where)) and r[3] == depth and r[4] == test:
            return r[5]
    return "error"

single = [r for r in rows if r[0] == "single"]
if single:
    print()
    print("One node, Concord / redis-server (ops/s ratio; 1.00 = as fast as Redis):")
    print()
    print("| test | -P | fsync on: Concord / appendfsync always | fsync off: Concord / no persistence |")
    print("|------|---:|---:|---:|")
    seen = []
    for r in single:
        if (r[4], r[3]) not in seen: seen.append((r[4], r[3]))
    for test, depth in seen:
        cells = []
        for dur in ("fsync on", "fsync off"):
            c, rd = get("single", "concord", dur, depth, test), get("single", "redis", dur, depth, test)
            cells.append(f"{ratio(c, rd)} ({c} / {rd})")
        print(f"| {test} | {depth} | {cells[0]} | {cells[1]} |")

three = [r for r in rows if r[0] == "three"]
if three:
    print()
    print("Three nodes (Raft, fsync on), GET follower / leader (ops/s ratio):")
    print()
    print("| -P | SET leader ops/s | GET leader ops/s | GET follower ops/s | follower / leader |")
    print("|---:|---:|---:|---:|---:|")
    for depth in dict.fromkeys(r[3] for r in three):
        s = get("three", "concord", "leader", depth, "SET")
        gl, gf = get("three", "concord", "leader", depth, "GET"), get("three", "concord", "follower", depth, "GET")
        print(f"| {depth} | {s} | {gl} | {gf} | {ratio(gf, gl)} |")

lat = [l.rstrip("\n").split("\t", 2) for l in open(latency) if l.strip()]
if lat:
    print()
    print(f"Open loop over RESP: {rate} requests/s offered, {lat_clients} connections, {duration}; latency from the intended send time:")
    print()
    print("| system | op | achieved/s | p50 ms | p99 ms | p99.9 ms | max ms | late | unsent | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for system, op, line in lat:
        j = json.loads(line)
        print(f'| {system} | {op} | {j["ops_per_s"]:.0f} | {j["p50_ms"]:.2f} | {j["p99_ms"]:.2f} | {j["p999_ms"]:.2f} | {j["max_ms"]:.2f} | {j["late"]} | {j["unsent"]} | {j["errors"]} |')
    saturated = [f"{system} {op}" for system, op, line in lat for j in [json.loads(line)] if j["unsent"] + j["errors"] > 0.01 * j["offered_per_s"] * j["seconds"]]
    if saturated:
        print()
        print("not sustained (over 1% of the schedule unsent or failed):", ", ".join(saturated))
        print("  their percentiles are mostly queueing time, which grows with DURATION: compare at a lower RATE too")
EOF
while read -r note; do echo "note: $note"; done <"$NOTES"
exit 0

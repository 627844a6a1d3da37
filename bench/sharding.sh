#!/usr/bin/env bash
# Sharding benchmarks (issue #13): what idle shard groups cost, throughput with S shards beside a
# real Redis Cluster, and a slot move under load. Every number is measured in the run.
#
#   bench/sharding.sh                       # all three parts (about 10 minutes on 2 cores)
#   PARTS="idle" bench/sharding.sh          # one part: idle | throughput | move
#   IDLE_SHARDS=2000 IDLE_SECONDS=10 bench/sharding.sh
#
# Parts (each started cluster is stopped before the next starts; all on loopback):
#   idle        `concord up --nodes 3 --shards 1`, then `--shards $IDLE_SHARDS` (replication 3, so
#               IDLE_SHARDS group replicas per process): startup time (until every shard has a
#               leader that adopted its slots), VmRSS of each process after SETTLE seconds idle
#               (/proc/PID/status), CPU of the 3 processes over IDLE_SECONDS (utime+stime from
#               /proc/PID/stat) as % of one core. KiB per idle group replica =
#               (RSS with IDLE_SHARDS − RSS with 1 shard) / IDLE_SHARDS, per process.
#   throughput  `redis-benchmark --cluster -t set,get -n $REQUESTS -c $CLIENTS -r 100000` against Concord
#               sharded with S in $SHARD_COUNTS on 3 nodes, and against a Redis Cluster of 3
#               redis-server masters (`redis-cli --cluster create`), same clients, same run.
#               S=1 is one master, which redis-benchmark --cluster refuses ("Invalid cluster"): its
#               leader is benchmarked without --cluster.
#               FSYNC=off (default): Concord --no-fsync, redis-server without persistence;
#               FSYNC=on: Concord's default (fdatasync per group commit), redis-server
#               --appendonly yes --appendfsync always.
#   move        Concord with 3 shards; MOVE_KEYS keys written into one slot (hash tag {mv}); the
#               slot moved to another shard (`concord shard move`) while redis-benchmark writes;
#               the move's duration and the clients' p99 before vs during it.
#
# Bounded run time: every wait has a timeout (STARTUP_TIMEOUT for a cluster to be ready, 600 s for
# a benchmark, MOVE_TIMEOUT for the move); a timeout is reported as such and the part moves on.
# Needs: redis-server, redis-benchmark, redis-cli (Debian: redis-server redis-tools), python3, cargo.
set -uo pipefail
cd "$(dirname "$0")/.."

PARTS=${PARTS:-"idle throughput move"}
IDLE_SHARDS=${IDLE_SHARDS:-10000}
IDLE_SECONDS=${IDLE_SECONDS:-30}
SETTLE=${SETTLE:-10}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-900}
REQUESTS=${REQUESTS:-20000}
CLIENTS=${CLIENTS:-50}
SHARD_COUNTS=${SHARD_COUNTS:-"1 3 6"}
FSYNC=${FSYNC:-off}
MOVE_KEYS=${MOVE_KEYS:-100000}
MOVE_TIMEOUT=${MOVE_TIMEOUT:-300}
BASE=${BASE:-30000}            # ports: RESP BASE.., HTTP BASE+100.., peers BASE+200..
WORK=$(mktemp -d /tmp/concord-sharding.XXXXXX)
UP_PID=""
REDIS_PIDS=()

cleanup() {
  stop_concord
  for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in redis-server redis-benchmark redis-cli python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: redis-server redis-tools)"; exit 2; }
done
# CONCORD=path/to/concord uses that binary as it is; otherwise `cargo build --release -p concord`.
PROFILE=${PROFILE:-release}
if [ -z "${CONCORD:-}" ]; then
  OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
  echo "building ($PROFILE)..." >&2
  cargo build --profile "$PROFILE" -q -p concord || exit 1
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  CONCORD=$TARGET_DIR/$OUT/concord
fi
HZ=$(getconf CLK_TCK)

RP=$BASE; HP=$((BASE + 100)); PP=$((BASE + 200))
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(redis-server --version | awk '{print $1, $2, $3}')"
echo "concord: $CONCORD (built $(date -u -r "$CONCORD" '+%F %T UTC')); source at $(git rev-parse --short HEAD 2>/dev/null)"

# ----- a Concord cluster ------------------------------------------------------------------------

start_concord() { # shards [extra flags...]
  local shards=$1; shift
  DATA=$WORK/c$shards-$RANDOM
  "$CONCORD" up --nodes 3 --shards "$shards" --data "$DATA" --redis-port $RP --http-port $HP \
    --peer-port $PP --log warn "$@" >"$WORK/up.log" 2>&1 &
  UP_PID=$!
  STARTED_AT=$(date +%s.%N)
}

stop_concord() {
  [ -n "$UP_PID" ] || return 0
  kill -TERM "$UP_PID" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$UP_PID" 2>/dev/null; then
    for i in 1 2 3; do [ -f "$DATA/node$i.pid" ] && kill -9 "$(cat "$DATA/node$i.pid")" 2>/dev/null; done
    kill -9 "$UP_PID" 2>/dev/null
  fi
  wait "$UP_PID" 2>/dev/null
  UP_PID=""
}

node_pids() { for i in 1 2 3; do cat "$DATA/node$i.pid"; done; }

# Ready: every shard has a leader (on some node) that adopted its slots, and the map is there.
# Prints the number of ready shards; exit 0 when all `shards` are.
ready_shards() { # shards
  python3 - "$1" $HP <<'EOF'
import json, sys, urllib.request
shards, hp = int(sys.argv[1]), int(sys.argv[2])
ready = set()
for i in range(3):
    try:
        s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hp + i}/v1/status", timeout=20))
    except Exception:
        continue
    if not s.get("epoch"):
        continue
    for g in s["groups"]:
        if g["group"] and g["role"] == "leader" and any(r["state"] == "serving" for r in g["slots"]):
            ready.add(g["group"])
print(len(ready))
sys.exit(0 if len(ready) >= shards else 1)
EOF
}

wait_ready() { # shards -> sets READY_SECS (or returns 1 on timeout)
  local n
  while true; do
    n=$(ready_shards "$1") && break
    local now; now=$(date +%s.%N)
    if (( $(echo "$now - $STARTED_AT > $STARTUP_TIMEOUT" | bc) )); then
      echo "  TIMEOUT: $n of $1 shards ready after ${STARTUP_TIMEOUT}s; up's log:"; tail -5 "$WORK/up.log"
      return 1
    fi
    if ! kill -0 "$UP_PID" 2>/dev/null; then echo "  concord up exited:"; tail -20 "$WORK/up.log"; return 1; fi
    sleep 1
  done
  READY_SECS=$(echo "$(date +%s.%N) - $STARTED_AT" | bc)
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ----- part 1: idle groups ----------------------------------------------------------------------

idle_run() { # shards -> prints a row, sets RSS_<i>
  local shards=$1
  start_concord "$shards"
  if ! wait_ready "$shards"; then stop_concord; return 1; fi
  sleep "$SETTLE"
  local pids; pids=($(node_pids))
  local rss=() t0=() t1=()
  for p in "${pids[@]}"; do rss+=("$(rss_kib "$p")"); t0+=("$(cpu_ticks "$p")"); done
  sleep "$IDLE_SECONDS"
  local total=0 each=()
  for k in 0 1 2; do
    t1+=("$(cpu_ticks "${pids[$k]}")"); total=$((total + t1[k] - t0[k]))
    each+=("$(echo "scale=1; 100 * (${t1[$k]} - ${t0[$k]}) / $HZ / $IDLE_SECONDS" | bc)")
  done
  local cpu; cpu=$(echo "scale=2; 100 * $total / $HZ / $IDLE_SECONDS" | bc)
  printf "  %6d shards: ready in %7.1f s; RSS per process %s KiB; CPU idle over %ss: %s %% of one core (3 processes: %s)\n" \
    "$shards" "$READY_SECS" "${rss[*]}" "$IDLE_SECONDS" "$cpu" "${each[*]}"
  IDLE_RSS=("${rss[@]}")
  stop_concord
}

part_idle() {
  echo
  echo "== idle groups: 3 processes, replication 3 =="
  idle_run 1 || return
  local base=("${IDLE_RSS[@]}")
  idle_run "$IDLE_SHARDS" || return
  local per=()
  for k in 0 1 2; do per+=("$(echo "scale=2; (${IDLE_RSS[$k]} - ${base[$k]}) / $IDLE_SHARDS" | bc)"); done
  echo "  KiB per idle group replica (process 1 2 3): ${per[*]}   (target <= 10)"
}

# ----- part 2: throughput -----------------------------------------------------------------------

bench_cluster() { # label port [--cluster]
  local out
  out=$(timeout 600 redis-benchmark ${3:-} -p "$2" -t set,get -n "$REQUESTS" -c "$CLIENTS" -r 100000 -q 2>&1 \
    | tr '\r' '\n' | grep -E '^(SET|GET): [0-9]')
  [ -n "$out" ] || out="(no result: redis-benchmark failed or timed out)"
  echo "$out" | sed "s/^/  $1  /"
}

# Keys per shard (from the leaders' /v1/status): shows where redis-benchmark's keys went.
keys_per_shard() {
  python3 - $HP <<'EOF'
import json, sys, urllib.request
hp = int(sys.argv[1]); keys = {}
for i in range(3):
    s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hp + i}/v1/status", timeout=20))
    for g in s["groups"]:
        if g["group"] and g["role"] == "leader":
            keys[g["group"]] = (g["keys"], s["node"])
print("  keys per shard (shard: keys @ leader node): " + ", ".join(f"{k}: {v[0]} @ {v[1]}" for k, v in sorted(keys.items())))
EOF
}

start_redis_cluster() {
  local persist=(--save '' --appendonly no)
  [ "$FSYNC" = on ] && persist=(--save '' --appendonly yes --appendfsync always)
  local addrs=()
  for i in 0 1 2; do
    local port=$((RP + 50 + i)) dir=$WORK/redis$i
    mkdir -p "$dir"
    redis-server --port $port --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --dir "$dir" \
      "${persist[@]}" >"$dir/log" 2>&1 &
    REDIS_PIDS+=($!)
    addrs+=("127.0.0.1:$port")
  done
  for i in 0 1 2; do
    for _ in $(seq 1 100); do redis-cli -p $((RP + 50 + i)) PING >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/redis-create.log" 2>&1
  for _ in $(seq 1 100); do
    redis-cli -p $((RP + 50)) CLUSTER INFO | grep -q 'cluster_state:ok' && return 0; sleep 0.1
  done
  echo "  redis cluster did not become ok"; cat "$WORK/redis-create.log"; return 1
}

part_throughput() {
  echo
  echo "== throughput: redis-benchmark --cluster -t set,get -n $REQUESTS -c $CLIENTS, fsync $FSYNC =="
  if start_redis_cluster; then bench_cluster "redis cluster (3 masters)  " $((RP + 50)) --cluster; fi
  for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  REDIS_PIDS=()
  local flags=()
  [ "$FSYNC" = off ] && flags=(--no-fsync)
  for s in $SHARD_COUNTS; do
    start_concord "$s" "${flags[@]}"
    if wait_ready "$s"; then
      if [ "$s" = 1 ]; then
        # redis-benchmark --cluster refuses a cluster of fewer than 3 masters ("Invalid cluster"):
        # one shard is one master, so its leader is benchmarked directly (same clients, no routing).
        local port; port=$(redis-cli -p $RP CLUSTER NODES | awk '/master/ {split($2, a, "[:@]"); print a[2]}')
        bench_cluster "concord  1 shard  (leader, no --cluster)" "$port"
      else
        bench_cluster "$(printf 'concord %2d shards on 3 nodes        ' "$s")" $RP --cluster
      fi
      keys_per_shard
    fi
    stop_concord
  done
}

# ----- part 3: a move under load ----------------------------------------------------------------

# The percentile line of a redis-benchmark --csv run: "rps,avg,p50,p95,p99,max" of its SET test.
csv_set() { tr '\r' '\n' | grep '^"SET"' | tr -d '"' | awk -F, '{print $2" req/s, avg "$3" ms, p50 "$5" ms, p99 "$7" ms, max "$8" ms"}'; }

part_move() {
  echo
  echo "== move: one slot holding $MOVE_KEYS keys, 3 shards, under redis-benchmark --cluster -t set -c $CLIENTS =="
  start_concord 3 --no-fsync
  wait_ready 3 || { stop_concord; return; }
  local slot; slot=$(redis-cli -p $RP CLUSTER KEYSLOT '{mv}')
  # The slot's shard and its leader's RESP port.
  local info; info=$(python3 - $HP "$slot" <<'EOF'
import json, sys, urllib.request
hp, slot = int(sys.argv[1]), int(sys.argv[2])
c = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hp}/v1/cluster", timeout=20))
shard = next(r["shard"] for r in c["ranges"] if r["start"] <= slot <= r["end"])
leader = next(s["leader"] for s in c["shards"] if s["shard"] == shard)
other = next(s["shard"] for s in c["shards"] if s["shard"] != shard)
print(shard, leader, other)
EOF
)
  read -r from leader to <<<"$info"
  echo "  slot $slot ({mv}) is shard $from's (leader node $leader); loading $MOVE_KEYS keys..."
  local t0; t0=$(date +%s.%N)
  python3 -c "
import sys
out = sys.stdout.buffer
for i in range($MOVE_KEYS):
    k = b'{mv}:%d' % i; v = b'value-%d' % i
    out.write(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n' % (len(k), k, len(v), v))
" | redis-cli -p $((RP + leader - 1)) --pipe | tail -1 | sed 's/^/  /'
  echo "  loaded in $(echo "$(date +%s.%N) - $t0" | bc) s"
  keys_per_shard
  local n=$((REQUESTS / 2))
  echo "  before: $(redis-benchmark --cluster -p $RP -t set -n $n -c "$CLIENTS" -r 100000 --csv 2>/dev/null | csv_set)"
  # During: benchmark rounds back to back while the move runs; the move timed from the command.
  local rounds=$WORK/rounds; : >"$rounds"
  ( while [ ! -f "$WORK/move-done" ]; do
      redis-benchmark --cluster -p $RP -t set -n $((n / 4)) -c "$CLIENTS" -r 100000 --csv 2>/dev/null | csv_set >>"$rounds"
    done ) &
  local bench_pid=$!
  sleep 1
  local m0; m0=$(date +%s.%N)
  "$CONCORD" shard move "$slot" --to "$to" --http 127.0.0.1:$HP --secret-file "$DATA/cluster.secret" | sed 's/^/  /'
  local done_at=""
  while (( $(echo "$(date +%s.%N) - $m0 < $MOVE_TIMEOUT" | bc) )); do
    local owner; owner=$(python3 - $HP "$slot" <<'EOF'
import json, sys, urllib.request
hp, slot = int(sys.argv[1]), int(sys.argv[2])
c = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hp}/v1/cluster", timeout=20))
owner = next(r["shard"] for r in c["ranges"] if r["start"] <= slot <= r["end"])
print(owner if not c["moves"] else "moving")
EOF
)
    if [ "$owner" = "$to" ]; then done_at=$(date +%s.%N); break; fi
    sleep 0.2
  done
  touch "$WORK/move-done"; wait "$bench_pid" 2>/dev/null
  if [ -n "$done_at" ]; then
    echo "  move of slot $slot (shard $from -> $to): $(echo "$done_at - $m0" | bc) s until the map shows shard $to owning it and no move"
  else
    echo "  move did not finish in ${MOVE_TIMEOUT}s"
  fi
  echo "  during (rounds of $((n / 4)) SETs back to back while the move ran):"
  sed 's/^/    /' "$rounds"
  echo "  after: $(redis-benchmark --cluster -p $RP -t set -n $n -c "$CLIENTS" -r 100000 --csv 2>/dev/null | csv_set)"
  keys_per_shard
  stop_concord
}

for part in $PARTS; do "part_$part"; done

# shellcheck shell=bash disable=SC2034  # (sets variables for the scripts that source it)
# Shared by the bench scripts (sourced, not run): build Concord, start and stop 3-node clusters of
# Concord and etcd on loopback, wait for them. Callers set `set -euo pipefail`, WORK (a temp dir),
# BASE (first port) and a PIDS array their cleanup trap kills.

# build_concord [EXAMPLE...]: the `concord` binary (and the named examples of concord-server) at
# PROFILE (release by default; dev builds faster, for trying a script out – its numbers mean
# little). Sets PROFILE, OUT, TARGET_DIR and CONCORD. CONCORD_BIN=path measures a binary already
# built instead (an earlier commit's, side by side); the examples are still built.
build_concord() {
  PROFILE=${PROFILE:-release}
  OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
  if [ -z "${CONCORD_BIN:-}" ]; then
    echo "building ($PROFILE)..." >&2
    cargo build --profile "$PROFILE" -q -p concord
  fi
  local example
  for example in "$@"; do cargo build --profile "$PROFILE" -q -p concord-server --example "$example"; done
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  CONCORD=${CONCORD_BIN:-$TARGET_DIR/$OUT/concord}
  [ -x "$CONCORD" ] || { echo "no concord binary at $CONCORD" >&2; return 1; }
}

# wait_http URL SECONDS: until URL answers 2xx, or fail.
wait_http() {
  for _ in $(seq 1 $(( $2 * 10 ))); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

# up NAME ARGS...: start a 3-node `concord up` (extra ARGS passed on) and wait until every node
# answers a write over RESP. Cluster k (CLUSTER, counted from the caller's start value) listens on
# HTTP BASE + 100 k + 0..2, RESP + 10, peers + 20. Sets HTTP0, REDIS0, UP_PID.
CLUSTER=${CLUSTER:-0}
up() {
  local name=$1; shift
  HTTP0=$((BASE + 100 * CLUSTER)); REDIS0=$((HTTP0 + 10)); CLUSTER=$((CLUSTER + 1))
  "$CONCORD" up --nodes 3 --data "$WORK/$name" --http-port "$HTTP0" --redis-port "$REDIS0" \
    --peer-port "$((HTTP0 + 20))" --log warn "$@" >"$WORK/$name-up.log" 2>&1 &
  UP_PID=$!
  local i ok
  for i in 0 1 2; do
    ok=""
    for _ in $(seq 1 300); do
      kill -0 "$UP_PID" 2>/dev/null || { echo "concord up ($name) exited:" >&2; cat "$WORK/$name-up.log" >&2; exit 1; }
      [ "$(redis-cli -p $((REDIS0 + i)) SET __bench_ready 1 2>/dev/null)" = OK ] && { ok=1; break; }
      sleep 0.1
    done
    [ -n "$ok" ] || { echo "node $((i + 1)) of $name did not accept a write within 30 s; its log:" >&2
                      tail -20 "$WORK/$name/node$((i + 1)).log" >&2 || true; exit 1; }
  done
}
down() { kill -INT "$UP_PID"; wait "$UP_PID" || true; UP_PID=""; }
# leader: the Raft leader's id as node 1 sees it (node i listens on the base ports + i - 1).
leader() { curl -sf "http://127.0.0.1:$HTTP0/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("leader") or "")' || true; }

# start_etcd E0: a 3-member etcd cluster, clients on E0..E0+2, peers on E0+10..E0+12, fsync on
# (etcd's default); waits for health. Adds the PIDs to PIDS; sets ETCD_EPS.
start_etcd() {
  local e0=$1 cluster="" i
  for i in 0 1 2; do cluster+="e$i=http://127.0.0.1:$((e0 + 10 + i)),"; done
  cluster=${cluster%,}
  for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:$((e0 + i))" --advertise-client-urls "http://127.0.0.1:$((e0 + i))" \
      --listen-peer-urls "http://127.0.0.1:$((e0 + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((e0 + 10 + i))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token concord-bench \
      --log-level error >"$WORK/etcd$i.log" 2>&1 &
    PIDS+=("$!")
  done
  for i in 0 1 2; do wait_http "http://127.0.0.1:$((e0 + i))/health" 30; done
  ETCD_EPS="127.0.0.1:$e0,127.0.0.1:$((e0 + 1)),127.0.0.1:$((e0 + 2))"
}

# start_concord_http H0: a 3-node `concord up` with HTTP on H0..H0+2 (RESP H0+10.., peers H0+20..),
# waited for over HTTP until a leader is known (no redis-cli needed). Adds UP_PID to PIDS; sets
# UP_PID and CONCORD_EPS (the three HTTP endpoints).
start_concord_http() {
  local h0=$1 i
  "$CONCORD" up --nodes 3 --data "$WORK/concord" --http-port "$h0" --redis-port "$((h0 + 10))" \
    --peer-port "$((h0 + 20))" --log warn >"$WORK/concord-up.log" 2>&1 &
  UP_PID=$!; PIDS+=("$UP_PID")
  for i in 0 1 2; do wait_http "http://127.0.0.1:$((h0 + i))/healthz" 20; done
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$h0/v1/cluster" | grep -q '"leader":[0-9]' && break; sleep 0.1
  done
  CONCORD_EPS="127.0.0.1:$h0,127.0.0.1:$((h0 + 1)),127.0.0.1:$((h0 + 2))"
}

#!/usr/bin/env bash
# The long sweeps the default test suite (and .ci/run) leaves out: the 2 000-seed explorations of
# every protocol, the 2 000-seed fault sweeps of the shipped labs (and of scenarios/sharding.toml),
# and the #[ignore]d tests (the 1 000-seed durable-machine sweep of the Raft harness and the
# mutation searches). Each step prints its wall time.
#
#   bash bench/long-sweeps.sh            # everything (roughly 30-60 min on 2 cores; see README.md)
#   bash bench/long-sweeps.sh explore    # only the scenarios/*-explore.toml sweeps (about 5-10 min)
#
# The replay viewer's load-time benchmark is also #[ignore]d; it needs Chromium and is run on its
# own: cargo test --release -p concord --test viewer -- --ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

step() {
    local started=$SECONDS
    echo "== $*"
    "$@"
    echo "   ($((SECONDS - started)) s)"
}

cargo build --release -q -p concord
concord=target/release/concord

for p in raft dynamo gossip; do
    step "$concord" sim "scenarios/$p-explore.toml" --seeds 1..2000
done
[ "$what" = explore ] && exit 0

for lab in raft-faults dynamo gossip; do
    step "$concord" sim "scenarios/$lab.toml" --seeds 1..2000
done
step cargo test --release -q -p concord-raft-harness --test durable_faults -- --ignored
step cargo test --release -q -p concord-sim --test raft_mutations --test dynamo -- --ignored
# The sharded cluster with slot moves, replica moves, joins, decommissions and the rebalancer under
# the nemesis (scenarios/sharding.toml), 2 000 seeds on every core: about 2-3 s of CPU a seed.
SHARDING_SEEDS=1..2000 step cargo test --release -q -p concord-sim --test sharded -- --ignored sweep

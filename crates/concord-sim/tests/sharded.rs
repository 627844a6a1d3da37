//! Sharding under the nemesis: `scenarios/sharding.toml` (5 nodes – one a spare –, 4 shards of 3
//! replicas, a metadata group; nodes joining and being decommissioned, the rebalancer moving
//! replicas, leaders and slots, a random slot move every ~300 ms, while nodes crash and partitions
//! cut) passes with slot and replica moves finishing, and each deliberate bug is caught.
//!
//! The long sweeps are ignored tests (see `bench/long-sweeps.sh`):
//! `SHARDING_SEEDS=1..2000 cargo test --release -p concord-sim --test sharded -- --ignored sweep`.

use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use std::path::Path;

fn scenario(bug: Option<&str>) -> LoadedScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/sharding.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if let Some(bug) = bug {
        text = text.replace("churn = \"300ms\"", &format!("churn = \"300ms\"\nbug = \"{bug}\""));
        assert!(text.contains("bug = "), "the scenario's churn line moved; the test must follow");
    }
    LoadedScenario::parse(&path, &text).unwrap()
}

#[test]
fn slots_move_under_faults_and_every_history_stays_linearizable() {
    let scenario = scenario(None);
    let mut flipped = 0;
    let mut settled = 0;
    let mut replicas_gone = 0;
    let mut groups_dropped = 0;
    let mut promoted = 0;
    for seed in 1..=12 {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        assert!(
            report.passed(),
            "seed {seed}:\n{}\nreplay: concord sim scenarios/sharding.toml --seed {seed}",
            report.violations.join("\n")
        );
        let events = &report.summary.protocol_events;
        flipped += events.get("move-flipped").copied().unwrap_or(0);
        settled += events.get("move-settled").copied().unwrap_or(0);
        promoted += events.get("replica-promoted").copied().unwrap_or(0);
        replicas_gone += events.get("replica-gone").copied().unwrap_or(0);
        groups_dropped += events.get("group-dropped").copied().unwrap_or(0);
        assert!(
            report.summary.ops.ok > 500,
            "seed {seed}: only {} operations succeeded",
            report.summary.ops.ok
        );
    }
    // About 60 moves a seed flip while the nemesis works: a run in which none did proves nothing.
    assert!(flipped > 300 && settled > 300, "{flipped} moves flipped, {settled} settled in 12 seeds");
    // About 5 replica moves a seed go all the way (a spare joins, nodes are decommissioned): the
    // learner is promoted, the old replica leaves the group and its node drops the group's data.
    assert!(
        promoted > 30 && replicas_gone > 30 && groups_dropped > 30,
        "{promoted} learners promoted, {replicas_gone} replicas gone, {groups_dropped} groups dropped in 12 seeds"
    );
}

/// Seeds 1159 and 1461 of the 2 000-seed sweep: a node applied the map that removed a replica, the
/// group removed it, and the node crashed before any other node applied that map. The replica check
/// read "the newest map" off the nodes still up – an older one, still counting the removed replica
/// – and reported a voter missing from the group. A committed map is not taken back by a crash:
/// the check now keeps the newest map any node applied.
#[test]
fn a_crash_does_not_take_back_the_newest_map() {
    let scenario = scenario(None);
    for seed in [1159, 1461] {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        assert!(
            report.passed(),
            "seed {seed}:\n{}\nreplay: concord sim scenarios/sharding.toml --seed {seed}",
            report.violations.join("\n")
        );
    }
}

#[test]
fn a_promotion_before_the_learner_caught_up_is_caught() {
    // The map counts a learner as a voter before the group's Raft promoted it: caught in each of
    // the first 5 seeds when written, at the first replica move.
    let (seed, found) = first_caught("promote-before-catch-up", 1..=200).expect("the bug went unnoticed");
    assert!(found.contains("may not have caught up"), "seed {seed}: {found}");
}

/// `SHARDING_SEEDS=a..b` seeds of the scenario, on every core; fails listing the failing seeds.
#[test]
#[ignore = "a long sweep: SHARDING_SEEDS=1..2000 (see bench/long-sweeps.sh)"]
fn sweep() {
    let range = std::env::var("SHARDING_SEEDS").unwrap_or_else(|_| "1..500".into());
    let (a, b) = range.split_once("..").expect("SHARDING_SEEDS=a..b");
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    let scenario = std::sync::Arc::new(scenario(None));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(a));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (scenario, next) = (scenario.clone(), next.clone());
            std::thread::spawn(move || {
                let mut failed = Vec::new();
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed > b {
                        return failed;
                    }
                    let report = scenario.run(RunOptions { seed, ..Default::default() });
                    if report.passed() {
                        eprintln!("seed {seed} ok");
                    } else {
                        eprintln!("seed {seed} FAILED: {}", report.violations.join(" | "));
                        failed.push(seed);
                    }
                }
            })
        })
        .collect();
    let mut failed: Vec<u64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    failed.sort();
    eprintln!("seeds {a}..={b}: {} failed {failed:?}", failed.len());
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

/// The first failing seed of `bug` within `seeds`, and what the checkers said.
fn first_caught(bug: &str, seeds: std::ops::RangeInclusive<u64>) -> Option<(u64, String)> {
    let scenario = scenario(Some(bug));
    seeds.into_iter().find_map(|seed| {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        (!report.passed()).then(|| (seed, report.violations.join("\n")))
    })
}

#[test]
fn a_source_serving_writes_after_its_fence_is_caught() {
    // Caught in 6 of the first 40 seeds when written; the issue asks for within 1 000.
    let (seed, found) = first_caught("writes-after-fence", 1..=1_000).expect("the bug went unnoticed");
    assert!(found.contains("linearizab"), "seed {seed}: {found}");
}

#[test]
fn a_flip_before_the_target_holds_the_data_is_caught() {
    // Caught in 21 of the first 40 seeds when written.
    let (seed, found) = first_caught("flip-before-copy", 1..=1_000).expect("the bug went unnoticed");
    assert!(found.contains("linearizab"), "seed {seed}: {found}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    // Many groups in one process, coalesced timers, forwarding and the mover: none of it may let
    // iteration order or anything but the seed decide what happens.
    let scenario = scenario(None);
    let hash = |seed| {
        let options = RunOptions {
            seed,
            hash_trace: true,
            until: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        scenario.run(options).trace_hash.unwrap()
    };
    assert_eq!(hash(3), hash(3));
    assert_ne!(hash(3), hash(4));
}

/// Quiescence in a whole sharded cluster: 3 nodes, 20 shards of 3 replicas, no faults. Once the
/// load stops, (nearly) every group goes quiet; then the node leading the most groups crashes, and
/// every group it led – quiet, so no heartbeat stops to tell anyone – has a new leader within a
/// second: an election timeout of node silence wakes the followers, then pre-vote and vote.
#[test]
fn idle_groups_quiesce_and_a_dead_leader_node_is_replaced_within_a_second() {
    use concord_core::{NodeId, Process, Time};
    use concord_shard::{GroupId, ShardedNode};
    let text = r#"
[run]
nodes = 3
duration = "30s"
checks = ["invariants", "linearizability"]

[network]
latency = { dist = "lognormal", median = "2ms", sigma = 0.6 }

[workload]
clients = 3
keys = 30
stop = "3s"

[protocol.sharded]
shards = 20
replicas = 3
raft = { election_timeout_min = "150ms", election_timeout_max = "300ms", heartbeat_interval = "50ms", quiesce = true }
"#;
    let scenario =
        concord_sim::scenario::Scenario::parse(Path::new("quiet.toml"), text).expect("a valid scenario");
    let mut sim = concord_sim::sim::Simulation::<ShardedNode>::new(
        std::sync::Arc::new(scenario),
        RunOptions { seed: 1, ..Default::default() },
    );
    let secs = |s: f64| Time((s * 1e9) as u64);
    sim.start();
    sim.run_until(secs(8.0));
    let (mut quiet, mut total) = (0, 0);
    for (_, node) in sim.nodes() {
        let host = node.expect("no faults").host();
        let (leaders, followers) = host.quiesced();
        quiet += leaders + followers;
        total += host.len();
    }
    assert_eq!(total, 63, "21 groups (20 shards and the map) × 3 replicas");
    assert!(
        quiet * 10 >= total * 9,
        "only {quiet} of {total} group replicas quiesced after the load stopped"
    );

    let leaders = |sim: &concord_sim::sim::Simulation<ShardedNode>, group: GroupId| -> Vec<NodeId> {
        sim.nodes()
            .into_iter()
            .filter_map(|(id, n)| {
                n.filter(|n| n.host().group(group).and_then(|g| g.role()) == Some("leader")).map(|_| id)
            })
            .collect()
    };
    let groups: Vec<GroupId> = (0..=20).map(GroupId).collect();
    let led_by = |sim: &concord_sim::sim::Simulation<ShardedNode>, node: u32| {
        groups.iter().copied().filter(|&g| leaders(sim, g) == [NodeId(node)]).collect::<Vec<_>>()
    };
    let victim = (1..=3).max_by_key(|&n| led_by(&sim, n).len()).unwrap();
    let orphaned = led_by(&sim, victim);
    assert!(!orphaned.is_empty());
    sim.crash(NodeId(victim));
    let crashed_at = sim.now();
    let replaced = |sim: &concord_sim::sim::Simulation<ShardedNode>| {
        orphaned.iter().all(|&g| leaders(sim, g).len() == 1)
    };
    while !replaced(&sim) && sim.now() < crashed_at + std::time::Duration::from_secs(3) {
        let next = sim.now() + std::time::Duration::from_millis(10);
        sim.run_until(next);
    }
    let took = sim.now().saturating_since(crashed_at);
    assert!(replaced(&sim), "groups led by node {victim} had no new leader 3 s after it crashed");
    assert!(took < std::time::Duration::from_secs(1), "new leaders took {took:?}");
}

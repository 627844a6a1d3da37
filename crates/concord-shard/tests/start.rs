//! Starting many shard groups (`ShardedNode`'s "Starting many groups"): each group's first election
//! timeout is postponed by its shard id's share of a window that grows with the groups, the
//! shard's preferred replica campaigns first, and in a fault-free start every group elects its
//! preferred replica in one round (term 1: no split vote, no second round), after the metadata
//! group elected and committed the map.

use concord_core::hash::SplitMix64;
use concord_core::{Durable, Effect, Io, NodeId, Process, Time};
use concord_raft::{RaftConfig, Timer as RaftTimer};
use concord_shard::map::ShardId;
use concord_shard::node::{first_election_after, GroupTimer, NodeMessage, NodeTimer, STAGGER_PER_GROUP};
use concord_shard::{GroupId, ShardedConfig, ShardedNode};
use std::collections::BTreeMap;
use std::time::Duration;

/// The server's Raft timing (`concord-server`'s `Config::raft_config`).
fn server_raft() -> RaftConfig {
    RaftConfig {
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        heartbeat_interval: Duration::from_millis(75),
        clock_drift_bound: Duration::from_millis(30),
        ..RaftConfig::default()
    }
}

fn config(nodes: u32, shards: u32, replicas: usize) -> ShardedConfig {
    ShardedConfig {
        nodes: (1..=nodes).map(NodeId).collect(),
        shards,
        replicas,
        raft: server_raft(),
        ..ShardedConfig::default()
    }
}

/// Nodes of a sharded cluster on a perfect network (every message takes 1 ms), one input at a time
/// in time order.
struct Cluster {
    nodes: BTreeMap<NodeId, ShardedNode>,
    /// Messages in flight, by delivery time and sequence: (to, from, message).
    queue: BTreeMap<(Time, u64), (NodeId, NodeId, NodeMessage)>,
    timers: BTreeMap<(NodeId, NodeTimer), Time>,
    seq: u64,
    rng: SplitMix64,
}

impl Cluster {
    fn start(config: &ShardedConfig) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: BTreeMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            rng: SplitMix64(7),
        };
        for &id in &config.nodes {
            let node = ShardedNode::boot(id, config.clone(), &Durable::new()).expect("boot");
            c.nodes.insert(id, node);
        }
        for id in config.nodes.clone() {
            c.step(id, Time::ZERO, |n, io| n.on_start(io));
        }
        c
    }

    fn step(&mut self, id: NodeId, now: Time, f: impl FnOnce(&mut ShardedNode, &mut Io<'_, ShardedNode>)) {
        let mut effects = Vec::new();
        let node = self.nodes.get_mut(&id).expect("node");
        let mut io = Io::new(id, now, false, &mut self.rng, &mut effects);
        f(node, &mut io);
        for effect in effects {
            match effect {
                Effect::Send { to, msg } | Effect::SendNow { to, msg } => {
                    self.seq += 1;
                    self.queue.insert((now + Duration::from_millis(1), self.seq), (to, id, msg));
                }
                Effect::SetTimer { timer, after } => {
                    self.timers.insert((id, timer), now + after);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&(id, timer));
                }
                Effect::Persist(_)
                | Effect::Sync
                | Effect::Reply { .. }
                | Effect::ReplyNow { .. }
                | Effect::Event(_) => {}
            }
        }
    }

    fn run_until(&mut self, until: Time) {
        loop {
            let message = self.queue.keys().next().map(|k| k.0);
            let timer = self.timers.iter().map(|(&k, &t)| (t, k)).min();
            match (message, timer) {
                (m, Some((t, key))) if t <= until && m.is_none_or(|m| t < m) => {
                    self.timers.remove(&key);
                    self.step(key.0, t, |n, io| n.on_timer(io, key.1));
                }
                (Some(m), _) if m <= until => {
                    let key = *self.queue.keys().next().expect("a message");
                    let (to, from, msg) = self.queue.remove(&key).expect("queued");
                    self.step(to, m, |n, io| n.on_message(io, from, msg));
                }
                _ => return,
            }
        }
    }
}

#[test]
fn first_elections_are_staggered_by_shard_and_the_preferred_replica_goes_first() {
    let config = config(3, 300, 3);
    let raft = &config.raft;
    assert_eq!(config.shard_raft(), config.raft, "300 groups a node run at the configured timing");
    // Every shard group waits for the metadata group; the preferred replica campaigns first, in
    // shard order over a window of STAGGER_PER_GROUP × the groups a node holds (here all 300); the
    // others keep Raft's random timeout and wait one more timeout. None before election_timeout_min.
    let window = STAGGER_PER_GROUP * 300;
    let first =
        |k, preferred, raft_timeout| first_election_after(&config, ShardId(k), preferred, raft_timeout);
    for k in 1..=300 {
        let preferred = first(k, true, raft.election_timeout_max);
        let quiet = raft.election_timeout_min + raft.election_timeout_max;
        assert!(preferred >= quiet && preferred < quiet + window, "shard {k}: {preferred:?}");
        assert_eq!(preferred, first(k, true, raft.election_timeout_min), "the preferred ignores Raft's draw");
        if k > 1 {
            assert!(preferred > first(k - 1, true, Duration::ZERO), "shard {k} after shard {}", k - 1);
        }
        for t in [raft.election_timeout_min, raft.election_timeout_max] {
            let other = first(k, false, t);
            assert_eq!(
                other,
                preferred - raft.election_timeout_min + t + raft.election_timeout_max,
                "shard {k}"
            );
        }
        assert!(first(k, false, Duration::ZERO) >= preferred + raft.election_timeout_max, "never below min");
    }
    // The window grows with the groups a node holds: 10 000 shards on 3 nodes spread over
    // 10 000 × STAGGER_PER_GROUP; on 6 nodes a node holds half of them, half the window.
    for (nodes, held) in [(3, 10_000), (6, 5_000)] {
        let big = self::config(nodes, 10_000, 3);
        assert_eq!(big.groups_per_node(), held);
        let shard_raft = big.shard_raft();
        let spread = first_election_after(&big, ShardId(10_000), true, Duration::ZERO)
            - shard_raft.election_timeout_min
            - raft.election_timeout_max;
        assert!(spread >= STAGGER_PER_GROUP * (held as u32 - 1) && spread <= STAGGER_PER_GROUP * held as u32);
    }

    // The node arms them so, rounded up to the host's 10 ms tick.
    let cluster = Cluster::start(&config);
    for (&id, node) in &cluster.nodes {
        let deadlines: BTreeMap<GroupId, Time> = node
            .host()
            .deadlines()
            .filter(|(_, t, _)| *t == GroupTimer::Data(RaftTimer::Election))
            .map(|(g, _, at)| (g, at))
            .collect();
        assert_eq!(deadlines.len(), 300, "node {id}: every shard group has its election timer");
        for (group, at) in deadlines {
            let shard = ShardId(group.0);
            let tick = Duration::from_millis(10);
            if config.placement(shard)[0] == id {
                let want = Time::ZERO + first(group.0, true, Duration::ZERO);
                assert!(at >= want && at < want + tick, "node {id}, {group}: {at:?}, want {want:?}");
            } else {
                let earliest = Time::ZERO + first(group.0, false, raft.election_timeout_min);
                let latest = Time::ZERO + first(group.0, false, raft.election_timeout_max) + tick;
                assert!(
                    at >= earliest && at < latest,
                    "node {id}, {group}: {at:?} not in {earliest:?}..{latest:?}"
                );
            }
        }
    }
}

/// Beyond GROUPS_AT_BASE_TIMING groups a node, shard groups' heartbeats and election timeouts
/// stretch in proportion; the metadata group keeps the configured timing.
#[test]
fn many_groups_a_node_stretch_the_shard_groups_timing() {
    let base = config(3, 1_000, 3);
    assert_eq!(base.shard_raft(), base.raft);
    let big = config(3, 10_000, 3);
    let raft = big.shard_raft();
    assert_eq!(raft.heartbeat_interval, big.raft.heartbeat_interval * 10);
    assert_eq!(raft.election_timeout_min, big.raft.election_timeout_min * 10);
    assert_eq!(raft.election_timeout_max, big.raft.election_timeout_max * 10);
    assert_eq!(raft.clock_drift_bound, big.raft.clock_drift_bound);
    assert!(raft.validate().is_ok(), "{:?}", raft.validate());
    // 10 000 shards on 30 nodes: 1 000 groups a node, the configured timing.
    assert_eq!(config(30, 10_000, 3).shard_raft(), big.raft);
}

#[test]
fn a_fault_free_start_elects_every_preferred_replica_in_one_round() {
    for (nodes, shards) in [(3, 600), (5, 500)] {
        let config = config(nodes, shards, 3);
        let mut cluster = Cluster::start(&config);
        cluster.run_until(Time::ZERO + Duration::from_secs(5));
        for (&id, node) in &cluster.nodes {
            assert!(node.map().is_bootstrapped(), "{nodes} nodes: node {id} has the map");
            for (shard, raft) in node.shards() {
                let preferred = config.placement(shard)[0];
                assert_eq!(
                    raft.leader_id(),
                    Some(preferred),
                    "{nodes} nodes: node {id} sees shard {} led by its preferred replica",
                    shard.0
                );
                assert_eq!(raft.current_term(), 1, "{nodes} nodes: shard {} elected in one round", shard.0);
                if raft.is_leader() {
                    assert!(raft.state_machine().adopted(), "shard {} took its slots", shard.0);
                }
            }
        }
        // Every shard has exactly one leader, the metadata group one too, elected in its first term.
        let leads = |g: ShardId| {
            cluster.nodes.values().filter(|n| n.shards().any(|(s, r)| s == g && r.is_leader())).count()
        };
        for k in 1..=shards {
            assert_eq!(leads(ShardId(k)), 1, "{nodes} nodes: shard {k}");
        }
        let meta_leaders = cluster.nodes.values().filter(|n| n.metadata().is_leader()).count();
        assert_eq!(meta_leaders, 1);
    }
}

/// A node answers "which groups do you lead?" with every shard group it leads and its term, and
/// learns the leaders another node names as forwarding hints for the groups it does not replicate.
#[test]
fn a_node_names_the_groups_it_leads() {
    // 5 nodes, 20 shards of 2 replicas: each node replicates 8 shards, leads about 4.
    let config = config(5, 20, 2);
    let mut cluster = Cluster::start(&config);
    cluster.run_until(Time::ZERO + Duration::from_secs(4));
    let node2 = NodeId(2);
    cluster.step(node2, Time::ZERO + Duration::from_secs(4), |n, io| {
        n.on_message(io, NodeId(1), NodeMessage::WhoLeads { id: 77 })
    });
    let (_, (to, from, answer)) = cluster.queue.pop_last().expect("an answer");
    assert_eq!((to, from), (NodeId(1), node2));
    let NodeMessage::Leading { id: 77, groups } = answer else { panic!("{answer:?}") };
    let led: Vec<GroupId> =
        cluster.nodes[&node2].shards().filter(|(_, r)| r.is_leader()).map(|(s, _)| GroupId(s.0)).collect();
    assert!(!led.is_empty());
    assert_eq!(groups.iter().map(|(g, _)| *g).collect::<Vec<_>>(), led);
    assert!(groups.iter().all(|(_, term)| *term == 1), "{groups:?}");
    // Node 1 learns them for the groups it does not replicate.
    let now = Time::ZERO + Duration::from_secs(4);
    cluster.step(NodeId(1), now, |n, io| {
        n.on_message(io, node2, NodeMessage::Leading { id: 78, groups: groups.clone() })
    });
    let node1 = &cluster.nodes[&NodeId(1)];
    for (group, _) in &groups {
        assert_eq!(node1.known_leader(*group), Some(node2), "{group}");
    }
}

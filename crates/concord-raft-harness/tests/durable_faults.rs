//! Random faults over *durable* state machines, the one sweep the simulator cannot run: its Raft
//! nodes hold the in-memory KV store, while the real server's state machine is durable (redb) –
//! checkpointed at snapshot points, losing the applies after its last checkpoint in a crash,
//! recovering from its checkpoint instead of from Raft's snapshot, and sent to a lagging follower
//! from that checkpoint. Every other sweep (the correct configuration over random faults, each
//! deliberate bug caught, the server's snapshot settings) runs in the simulator
//! (`concord-sim/tests/raft_mutations.rs`).
//!
//! One seed = one run over [`Cluster::durable_lists`] with message loss, duplication, variable
//! latency, crashes that lose or tear unsynced writes (the simulator's disk model), restarts,
//! partitions, leaders crashed the moment they commit or win, and clients writing and reading.
//! It checks Figure 3's invariants after every event; that a read contains every write
//! acknowledged before it was sent and is a prefix of the final list; and, after healing, that a
//! leader emerges, a final write commits and every node converges to one list holding every
//! acknowledged write exactly once.

use concord_core::{ClientId, NodeId, RequestId, Time};
use concord_raft::{RaftConfig, RaftRequest, RaftResponse, ReadConsistency, Session};
use concord_raft_harness::{Cluster, ListOutput, SplitMix64};
use std::collections::BTreeMap;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(6);

/// What one seed did.
#[derive(Clone, Debug, Default)]
struct SeedReport {
    writes_acked: usize,
    reads_served: usize,
    crashes: usize,
    terms: u64,
    /// How often a deliberate bug changed a node's behaviour (`mutation-fired` events): never here.
    mutation_fired: u64,
    /// Snapshot transfers started (`snapshot-send` events).
    snapshots_sent: u64,
}

enum Pending {
    Write(i64),
    Read(Time),
}

/// The default configuration: every check holds over 200 seeds, and the sweep does real work.
#[test]
fn correct_raft_with_durable_machines_survives_random_faults() {
    let config = RaftConfig::default();
    let (mut acked, mut crashes, mut reads) = (0, 0, 0);
    for seed in 0..200 {
        match run_seed(&config, seed) {
            Ok(r) => {
                acked += r.writes_acked;
                crashes += r.crashes;
                reads += r.reads_served;
                assert_eq!(r.mutation_fired, 0);
                assert!(r.terms >= 1);
            }
            Err(e) => panic!("durable seed {seed}: {e}"),
        }
    }
    assert!(
        acked > 1500 && crashes > 100 && reads > 500,
        "the sweep does real work ({acked} writes, {crashes} crashes, {reads} reads)"
    );
}

/// The real server's snapshot settings – a catch-up tail kept below each snapshot, no new snapshot
/// while one is being sent – over the machine the server really runs: a durable one.
#[test]
fn the_servers_snapshot_settings_with_durable_machines_survive_random_faults() {
    let server_like = RaftConfig {
        snapshot_catchup_entries: 10,
        defer_snapshots_while_sending: true,
        ..RaftConfig::default()
    };
    let mut sent = 0;
    for seed in 0..200 {
        let report = run_seed(&server_like, seed).unwrap_or_else(|e| panic!("durable seed {seed}: {e}"));
        sent += report.snapshots_sent;
    }
    assert!(sent > 0, "no snapshot was ever sent: the settings were not exercised");
}

/// `cargo test -p concord-raft-harness --release --test durable_faults -- --ignored`: 1 000 seeds.
#[test]
#[ignore]
fn correct_raft_with_durable_machines_survives_1000_seeds() {
    let config = RaftConfig::default();
    for seed in 0..1000 {
        if let Err(e) = run_seed(&config, seed) {
            panic!("durable seed {seed}: {e}");
        }
    }
}

/// Run one seed; `Err` describes the first failed check.
fn run_seed(base: &RaftConfig, seed: u64) -> Result<SeedReport, String> {
    let duration = RUN;
    let mut rng = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let n = if rng.chance(400) { 3 } else { 5 };
    let mut config = base.clone();
    config.snapshot_threshold_entries = 30 + rng.below(30);
    config.snapshot_chunk_bytes = 128;
    // One entry per append a third of the time: the slowest flow control, and the one that lets an
    // old term's entry reach a majority before the new leader's own entry does (Figure 8).
    config.max_entries_per_append = if rng.chance(333) { 1 } else { 1 + rng.below(16) as usize };
    config.max_inflight_appends = 1 + rng.below(6) as usize;
    // Vary the features too: every combination must be safe.
    config.pre_vote = rng.chance(500);
    config.check_quorum = rng.chance(700);
    config.lease_reads = rng.chance(500);
    let mut c = Cluster::durable_lists(n, config, seed);
    c.loss_per_mille = rng.below(80);
    c.duplicate_per_mille = rng.below(40);
    c.latency = (Duration::from_millis(1), Duration::from_millis(2 + rng.below(25)));
    c.spike_per_mille = rng.below(60);
    if rng.chance(500) {
        c.sync_latency = (Duration::from_micros(100), Duration::from_millis(1 + rng.below(8)));
    }
    let figure8 = rng.chance(400);
    if figure8 {
        c.crash_leader_on_commit_per_mille = 20;
        c.crash_leader_on_election_per_mille = 150;
    }
    c.tear_on_crash = true;

    let mut report = SeedReport::default();
    let mut pending: BTreeMap<RequestId, Pending> = BTreeMap::new();
    let mut acked: Vec<(i64, Time)> = Vec::new();
    let mut read_results: Vec<Vec<i64>> = Vec::new();
    let mut seen_replies = 0usize;
    let mut next_value = 1i64;
    let mut believed = NodeId(1);
    let ids = c.ids();
    let end = c.now + duration;

    let boot_error = |e: concord_raft::RecoveryError| format!("recovery failed: {e}");
    while c.now < end {
        c.run_for(Duration::from_millis(1 + rng.below(40)));
        if let Some(v) = &c.violation {
            return Err(v.clone());
        }
        // Client side: interpret replies.
        while seen_replies < c.replies.len() {
            let (_, request, response) = c.replies[seen_replies].clone();
            seen_replies += 1;
            let Some(p) = pending.remove(&request) else { continue };
            match (p, response) {
                (Pending::Write(v), RaftResponse::Output(ListOutput::Appended { .. })) => {
                    acked.push((v, c.now))
                }
                (Pending::Read(invoked), RaftResponse::Output(ListOutput::Items(items))) => {
                    report.reads_served += 1;
                    if let Some((missing, _)) =
                        acked.iter().find(|(v, at)| *at <= invoked && !items.contains(v))
                    {
                        return Err(format!(
                            "stale read at {}: invoked at {invoked}, misses write {missing} acknowledged before",
                            c.now
                        ));
                    }
                    read_results.push(items);
                }
                (_, RaftResponse::NotLeader { hint: Some(h) }) => believed = h,
                (_, RaftResponse::NotLeader { hint: None }) => believed = ids[rng.below(n as u64) as usize],
                _ => {}
            }
        }
        // Figure-8 mode (after the classic course test): every node that believes it leads gets a
        // write, so several terms leave uncommitted tails; leaders crash often; nodes come back.
        if figure8 {
            for id in ids.iter().copied() {
                if c.node(id).is_some_and(|n| n.is_leader()) && rng.chance(500) {
                    let v = next_value;
                    next_value += 1;
                    let req = c.request(id, RaftRequest::Propose { session: None, command: v });
                    pending.insert(req, Pending::Write(v));
                }
            }
            if rng.chance(60) {
                if let Some(l) = c.leader() {
                    c.crash(l);
                    report.crashes += 1;
                }
            }
            let down: Vec<NodeId> = ids.iter().copied().filter(|&id| !c.is_up(id)).collect();
            if !down.is_empty() && (down.len() * 2 >= ids.len() || rng.chance(80)) {
                c.try_restart(down[rng.below(down.len() as u64) as usize]).map_err(boot_error)?;
            }
        }
        // Clients and nemesis.
        let up: Vec<NodeId> = ids.iter().copied().filter(|&id| c.is_up(id)).collect();
        let down: Vec<NodeId> = ids.iter().copied().filter(|&id| !c.is_up(id)).collect();
        let target = if rng.chance(700) { believed } else { ids[rng.below(n as u64) as usize] };
        match rng.below(100) {
            0..=39 if c.is_up(target) => {
                let v = next_value;
                next_value += 1;
                let id = c.request(target, RaftRequest::Propose { session: None, command: v });
                pending.insert(id, Pending::Write(v));
            }
            40..=59 if c.is_up(target) => {
                let consistency =
                    if rng.chance(500) { ReadConsistency::Linearizable } else { ReadConsistency::Lease };
                let now = c.now;
                let id = c.request(target, RaftRequest::Read { consistency, query: () });
                pending.insert(id, Pending::Read(now));
            }
            60..=63 if up.len() > 1 => {
                let victim = up[rng.below(up.len() as u64) as usize];
                c.crash(victim);
                report.crashes += 1;
            }
            64..=71 if !down.is_empty() => {
                let back = down[rng.below(down.len() as u64) as usize];
                c.try_restart(back).map_err(boot_error)?;
            }
            72..=74 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for id in &ids {
                    if rng.chance(500) {
                        a.push(id.0)
                    } else {
                        b.push(id.0)
                    }
                }
                c.partition(&[&a, &b]);
            }
            75..=79 => c.heal(),
            80..=81 => {
                if let Some(l) = c.leader() {
                    c.isolate(l);
                }
            }
            82..=83 if up.len() > 1 => {
                // A quick reboot: whatever was not synced is gone, the node is back at once.
                let victim = up[rng.below(up.len() as u64) as usize];
                c.crash(victim);
                c.try_restart(victim).map_err(boot_error)?;
                report.crashes += 1;
            }
            84 => {
                if let Some(l) = c.leader() {
                    c.crash(l);
                    report.crashes += 1;
                }
            }
            _ => {}
        }
    }

    // Liveness: heal everything and demand progress.
    c.heal();
    c.loss_per_mille = 0;
    c.duplicate_per_mille = 0;
    c.spike_per_mille = 0;
    c.crash_leader_on_commit_per_mille = 0;
    c.crash_leader_on_election_per_mille = 0;
    for id in ids.iter().copied() {
        if !c.is_up(id) {
            c.try_restart(id).map_err(boot_error)?;
        }
    }
    // Leadership may still change once (a healed node with a higher term), so a few attempts.
    let mut last = None;
    let mut leader = NodeId(0);
    for _ in 0..5 {
        leader = c.await_leader().ok_or("no stable leader 5 s after healing")?;
        // With a session, so that a retry of a write that did commit is not applied twice.
        let session = Some(Session { client: ClientId(u32::MAX), seq: 1 });
        last = c.call(leader, RaftRequest::Propose { session, command: 0 }, Duration::from_secs(2));
        if matches!(last, Some(RaftResponse::Output(_))) {
            break;
        }
    }
    if !matches!(last, Some(RaftResponse::Output(_))) {
        return Err(format!("the final write did not commit in 5 attempts: {last:?}"));
    }
    let converged = c.run_until(Duration::from_secs(5), |c| {
        let want = c.items(leader);
        c.ids().iter().all(|&id| c.items(id) == want)
    });
    if let Some(v) = &c.violation {
        return Err(v.clone());
    }
    if !converged {
        return Err("the nodes did not converge after healing".into());
    }
    let final_list = c.items(leader);
    let mut seen = std::collections::BTreeSet::new();
    for v in &final_list {
        if !seen.insert(*v) {
            return Err(format!("write {v} applied twice"));
        }
    }
    for (v, _) in &acked {
        if !seen.contains(v) {
            return Err(format!("acknowledged write {v} was lost"));
        }
    }
    for r in &read_results {
        if !final_list.starts_with(r) {
            return Err(format!("a read returned {r:?}, not a prefix of the final list"));
        }
    }
    report.writes_acked = acked.len();
    report.mutation_fired = c.event_counts.get("mutation-fired").copied().unwrap_or(0);
    report.snapshots_sent = c.event_counts.get("snapshot-send").copied().unwrap_or(0);
    report.terms = c.node(leader).map_or(0, |n| n.current_term());
    Ok(report)
}

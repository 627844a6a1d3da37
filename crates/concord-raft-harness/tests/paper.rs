//! Message-level tests named after the Raft paper's sections: the vote synced before it is sent,
//! the scripted Figure 8, pre-vote, check-quorum, chunked snapshots, membership, leadership
//! transfer, ReadIndex and lease reads, exactly-once sessions, torn-tail recovery, the service
//! adapter, a single node. Each drives real `RaftNode`s through the harness's [`Cluster`], with
//! Figure 3's invariants checked after every event. The scenario-level course tests live in the
//! simulator (`concord-sim/tests/raft_scenarios.rs`).

use concord_core::{NodeId, Process};
use concord_raft::{AdminRequest, RaftConfig, RaftRequest, RaftResponse, ReadConsistency, Session};
use concord_raft_harness::{disk_with_log, Cluster, ListOutput};
use std::time::Duration;

fn cfg() -> RaftConfig {
    RaftConfig::default()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn appended(resp: Option<RaftResponse<ListOutput>>) -> usize {
    match resp {
        Some(RaftResponse::Output(ListOutput::Appended { len })) => len,
        other => panic!("expected an applied command, got {other:?}"),
    }
}

fn items(resp: Option<RaftResponse<ListOutput>>) -> Vec<i64> {
    match resp {
        Some(RaftResponse::Output(ListOutput::Items(items))) => items,
        other => panic!("expected a read result, got {other:?}"),
    }
}

/// Wait until every running node applied the same list as `reference`.
fn converge(c: &mut Cluster<concord_raft_harness::ListMachine>, reference: NodeId) -> bool {
    c.run_until(Duration::from_secs(5), |c| {
        let want = c.items(reference);
        c.ids().into_iter().filter(|&id| c.is_up(id)).all(|id| c.items(id) == want)
    })
}

// The course tests of §5.2, §5.3 and §5.6 (initial election, re-election, basic agreement,
// agreement despite a follower failure, no agreement without a majority, concurrent proposals, a
// deposed leader rejoining, a far-behind follower catching up, persistence across a crash of every
// node) run once, at the scenario level, in the simulator: `concord-sim/tests/raft_scenarios.rs`.
// Here remain the tests that need a hand on single messages and disks.

// ----- §5.4 Safety -----

/// Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
/// S1 leads term 5 holding (2, term 2), which S2 and S3 lack; S5 holds (2, term 3). Sending one entry
/// per append, S1 gets (2, term 2) onto a majority before its own no-op. If it committed index 2 by
/// counting, then crashed, S5 could win (its last term 3 beats term 2) and overwrite index 2.
fn figure_8(commit_old_term_by_counting: bool) -> Result<(), String> {
    let mut config = RaftConfig { max_entries_per_append: 1, snapshot_threshold_entries: 0, ..cfg() };
    config.mutations.commit_old_term_by_counting = commit_old_term_by_counting;
    let mut c = Cluster::lists(5, config, 9);
    let (s1, s2, s3, s4, s5) = (NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5));
    c.partition(&[&[1, 2, 3], &[4], &[5]]);
    c.replace_disk(s1, disk_with_log(4, None, &[1, 2]));
    c.replace_disk(s2, disk_with_log(4, None, &[1]));
    c.replace_disk(s3, disk_with_log(4, None, &[1]));
    c.replace_disk(s4, disk_with_log(4, None, &[1]));
    c.replace_disk(s5, disk_with_log(3, None, &[1, 3]));
    // Only S1 can win among S1–S3 (its log is the most up to date).
    assert!(c.run_until(Duration::from_secs(5), |c| c.node(s1).unwrap().commit_index() >= 2));
    // S1 crashes the moment it believes index 2 is committed; S2 is cut off.
    c.crash(s1);
    c.isolate(s2);
    c.blocked.retain(|&(a, b)| a == s2 || b == s2);
    c.isolate(s1); // drops S1's appends still in flight
    c.run_for(Duration::from_secs(3));
    let _ = (s4, s3);
    match c.violation.clone() {
        Some(v) => Err(v),
        None => Ok(()),
    }
}

#[test]
fn s5_4_2_figure_8_commit_only_current_term_entries_by_counting() {
    figure_8(false).expect("the correct commit rule keeps Figure 8 safe");
    let violation = figure_8(true).expect_err("counting an old term's entry must break safety");
    assert!(
        violation.contains("state machine safety") || violation.contains("leader completeness"),
        "{violation}"
    );
}

// ----- §5.6 Persistence -----

/// The vote is durable before the vote response leaves; with the `skip_vote_sync` mutation it is not,
/// and a crash makes the node vote twice in one term.
#[test]
fn s5_6_vote_is_synced_before_it_is_sent() {
    use concord_core::{Durable, Effect, Io};
    use concord_raft::message::VoteRequest;
    use concord_raft::{Message, RaftNode};
    use concord_raft_harness::{ListMachine, SplitMix64};

    fn vote_effects(mutate: bool, durable: &mut Durable, candidate: u32) -> (bool, Vec<&'static str>) {
        let mut config = RaftConfig::with_voters([1, 2, 3]);
        config.mutations.skip_vote_sync = mutate;
        let mut node = RaftNode::boot(NodeId(1), config, ListMachine::default(), durable).unwrap();
        let mut rng = SplitMix64(1);
        let mut effects = Vec::new();
        let mut io = Io::new(NodeId(1), concord_core::Time(10_000_000_000), false, &mut rng, &mut effects);
        let req = VoteRequest { term: 7, last_log_index: 0, last_log_term: 0, transfer: false };
        node.on_message(&mut io, NodeId(candidate), Message::Vote(req));
        let mut granted = false;
        let mut kinds = Vec::new();
        let mut pending = Vec::new();
        for e in effects {
            match e {
                Effect::Persist(op) => {
                    kinds.push("persist");
                    pending.push(op);
                }
                Effect::Sync => {
                    kinds.push("sync");
                    for op in pending.drain(..) {
                        durable.apply(&op);
                    }
                }
                Effect::Send { msg: Message::VoteResp(r), .. } => {
                    kinds.push("send");
                    granted = r.granted;
                    // The node "crashes" right after sending: unsynced writes are lost.
                    break;
                }
                _ => {}
            }
        }
        (granted, kinds)
    }

    let mut disk = Durable::new();
    let (granted, kinds) = vote_effects(false, &mut disk, 2);
    assert!(granted);
    // Term, then vote (two writes), one sync, then the response.
    assert_eq!(kinds, ["persist", "persist", "sync", "send"]);
    let (again, _) = vote_effects(false, &mut disk, 3);
    assert!(!again, "after a crash the node remembers its vote in term 7");

    let mut disk = Durable::new();
    let (granted, kinds) = vote_effects(true, &mut disk, 2);
    assert!(granted);
    assert_eq!(kinds, ["persist", "persist", "send"]);
    let (again, _) = vote_effects(true, &mut disk, 3);
    assert!(again, "without the sync the vote was lost, and the node votes twice in term 7");
}

// ----- Pre-vote and check-quorum (dissertation §9.6, §6.2) -----

fn rejoin_after_isolation(pre_vote: bool) -> (u64, u64, NodeId, Option<NodeId>) {
    let mut c = Cluster::lists(3, RaftConfig { pre_vote, ..cfg() }, 11);
    let leader = c.await_leader().unwrap();
    appended(c.propose(1));
    let term = c.node(leader).unwrap().current_term();
    let loner = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.isolate(loner);
    c.run_for(Duration::from_secs(3));
    c.heal();
    c.run_for(Duration::from_secs(2));
    c.assert_safe();
    (term, c.node(leader).unwrap().current_term(), leader, c.stable_leader())
}

#[test]
fn pre_vote_prevents_a_partitioned_node_from_disrupting_the_cluster() {
    let (before, after, leader, now) = rejoin_after_isolation(true);
    assert_eq!(before, after, "the leader's term did not move");
    assert_eq!(now, Some(leader), "the same leader leads");
    // Without pre-vote the loner's term races ahead and deposes the leader when it rejoins.
    let (before, after, _, _) = rejoin_after_isolation(false);
    assert!(after > before, "without pre-vote the rejoining node forces a new term");
}

#[test]
fn check_quorum_leader_that_cannot_hear_a_majority_steps_down() {
    let mut c = Cluster::lists(5, cfg(), 12);
    let leader = c.await_leader().unwrap();
    c.isolate(leader);
    // A proposal it can no longer commit: when it steps down, its fate is unknown to the client.
    let stranded = c.request(leader, RaftRequest::Propose { session: None, command: 1 });
    let stepped = c.run_until(Duration::from_secs(1), |c| !c.node(leader).unwrap().is_leader());
    assert!(stepped, "an isolated leader steps down within a few election timeouts");
    assert_eq!(c.node(leader).unwrap().role_name(), "follower");
    assert!(matches!(c.reply(stranded), Some(RaftResponse::Unknown { .. })), "{:?}", c.reply(stranded));
    // Without check-quorum it would stay leader forever.
    let mut c = Cluster::lists(5, RaftConfig { check_quorum: false, ..cfg() }, 12);
    let leader = c.await_leader().unwrap();
    c.isolate(leader);
    c.run_for(Duration::from_secs(2));
    assert!(c.node(leader).unwrap().is_leader());
}

// ----- §7 Log compaction -----

#[test]
fn s7_snapshot_install_on_a_lagging_node_is_chunked() {
    let config = RaftConfig { snapshot_threshold_entries: 20, snapshot_chunk_bytes: 64, ..cfg() };
    let mut c = Cluster::lists(3, config, 13);
    appended(c.propose(0));
    let leader = c.leader().unwrap();
    let lagging = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.crash(lagging);
    for i in 1..=100 {
        appended(c.propose(i));
    }
    assert!(c.node(leader).unwrap().snapshot_index() >= 20, "the leader compacted its log");
    let before = c.delivered.get("snapshot").copied().unwrap_or(0);
    c.restart(lagging);
    assert!(converge(&mut c, leader));
    let chunks = c.delivered.get("snapshot").copied().unwrap_or(0) - before;
    assert!(chunks >= 2, "the snapshot went in {chunks} chunk(s)");
    assert!(c.node(lagging).unwrap().snapshot_index() > 0);
    assert_eq!(c.items(lagging), (0..=100).collect::<Vec<_>>());
    // It survives a restart from its own snapshot.
    c.crash(lagging);
    c.restart(lagging);
    assert!(converge(&mut c, leader));
    c.assert_safe();
}

// ----- Membership (dissertation §4) -----

fn admin(c: &mut Cluster<concord_raft_harness::ListMachine>, req: AdminRequest) -> RaftResponse<ListOutput> {
    let leader = c.await_leader().unwrap();
    c.call(leader, RaftRequest::Admin(req), Duration::from_secs(3)).expect("an answer")
}

#[test]
fn membership_add_learner_promote_remove_follower_and_remove_the_leader() {
    let mut c = Cluster::lists(3, cfg(), 14);
    for i in 0..10 {
        appended(c.propose(i));
    }
    // A new, empty server joins as a learner: it catches up but does not vote.
    c.add_host(NodeId(4));
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.node(NodeId(4)).unwrap().last_log_index(), 0, "a non-member receives nothing");
    assert!(matches!(
        admin(&mut c, AdminRequest::AddLearner(NodeId(4))),
        RaftResponse::MembershipChanged { .. }
    ));
    let leader = c.leader().unwrap();
    assert!(converge(&mut c, leader));
    assert_eq!(c.node(NodeId(4)).unwrap().role_name(), "learner");
    assert_eq!(c.items(NodeId(4)).len(), 10);
    // Promote it (once the leader has heard that it caught up).
    c.run_for(ms(100));
    match admin(&mut c, AdminRequest::Promote(NodeId(4))) {
        RaftResponse::MembershipChanged { membership, .. } => assert_eq!(membership.voters.len(), 4),
        other => panic!("{other:?}"),
    }
    c.run_for(ms(200));
    assert_eq!(c.node(NodeId(4)).unwrap().role_name(), "follower");
    // Remove a follower; the cluster keeps working without it.
    let leader = c.leader().unwrap();
    let victim = c.ids().into_iter().find(|&id| id != leader && id != NodeId(4)).unwrap();
    assert!(matches!(admin(&mut c, AdminRequest::Remove(victim)), RaftResponse::MembershipChanged { .. }));
    c.crash(victim);
    appended(c.propose(100));
    // Remove the leader itself: it steps down once the change is committed; the rest elect a leader.
    let leader = c.leader().unwrap();
    assert!(matches!(admin(&mut c, AdminRequest::Remove(leader)), RaftResponse::MembershipChanged { .. }));
    c.run_for(ms(50));
    assert!(!c.node(leader).unwrap().is_leader());
    let next = c.await_leader().unwrap();
    assert_ne!(next, leader);
    assert_eq!(c.node(next).unwrap().current_membership().voters.len(), 2);
    appended(c.propose(101));
    // The removed leader does not campaign and does not disrupt.
    let term = c.node(next).unwrap().current_term();
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.node(next).unwrap().current_term(), term);
    assert!(!c.node(leader).unwrap().is_leader());
    // Invalid changes are refused.
    assert!(matches!(admin(&mut c, AdminRequest::Promote(NodeId(9))), RaftResponse::Rejected { .. }));
    c.assert_safe();
}

#[test]
fn leadership_transfer() {
    let mut c = Cluster::lists(3, cfg(), 15);
    appended(c.propose(1));
    let leader = c.leader().unwrap();
    let target = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let resp =
        c.call(leader, RaftRequest::Admin(AdminRequest::TransferLeadership(target)), Duration::from_secs(2));
    assert_eq!(resp, Some(RaftResponse::LeadershipTransferred { to: target }));
    assert_eq!(c.await_leader(), Some(target));
    appended(c.propose(2));
    c.assert_safe();
}

// ----- Reads (dissertation §6.4) -----

#[test]
fn read_index_is_linearizable_and_served_by_followers_through_the_leader() {
    let mut c = Cluster::lists(3, cfg(), 16);
    for i in 1..=3 {
        appended(c.propose(i));
    }
    let leader = c.leader().unwrap();
    assert_eq!(items(c.read(leader, ReadConsistency::Linearizable, ())), vec![1, 2, 3]);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    // A follower asks the leader for a read index and answers from its own state (`tests/reads.rs`).
    assert_eq!(items(c.read(follower, ReadConsistency::Linearizable, ())), vec![1, 2, 3]);
    // Stale reads are served anywhere.
    assert!(items(c.read(follower, ReadConsistency::Stale, ())).len() <= 3);
    // A deposed leader that does not know it yet never answers a ReadIndex read with old data.
    c.isolate(leader);
    let req = c.request(leader, RaftRequest::Read { consistency: ReadConsistency::Linearizable, query: () });
    c.run_for(Duration::from_secs(1));
    assert!(matches!(c.reply(req), Some(RaftResponse::NotLeader { .. })), "{:?}", c.reply(req));
    c.assert_safe();
}

#[test]
fn read_from_deposed_leader_mutation_returns_stale_data() {
    let mut config = cfg();
    config.mutations.read_from_deposed_leader = true;
    let mut c = Cluster::lists(3, config, 17);
    appended(c.propose(1));
    let old = c.leader().unwrap();
    c.isolate(old);
    c.run_until(Duration::from_secs(3), |c| {
        c.ids().iter().any(|&id| id != old && c.node(id).unwrap().is_leader())
    });
    let new = c.ids().into_iter().find(|&id| id != old && c.node(id).unwrap().is_leader()).unwrap();
    appended(c.call(new, RaftRequest::Propose { session: None, command: 2 }, Duration::from_secs(2)));
    // The old leader has not stepped down yet if we are quick: ask it right away.
    let id = c.request(old, RaftRequest::Read { consistency: ReadConsistency::Linearizable, query: () });
    let stale = c.reply(id).cloned();
    if c.node(old).unwrap().is_leader() {
        assert_eq!(items(stale), vec![1], "the deposed leader answers without the committed write");
    }
}

/// Lease reads skip the round trip, and are safe while clocks drift less than the bound. A leader
/// whose clock runs at a fifth of real speed keeps a lease long after a new leader took over.
#[test]
fn lease_reads_are_fast_and_need_the_clock_drift_bound() {
    let mut c = Cluster::lists(3, cfg(), 18);
    appended(c.propose(1));
    let leader = c.leader().unwrap();
    c.run_for(ms(60)); // one heartbeat round acknowledged
    let id = c.request(leader, RaftRequest::Read { consistency: ReadConsistency::Lease, query: () });
    assert_eq!(items(c.reply(id).cloned()), vec![1], "answered at once, without a round trip");

    // Drift beyond the bound: the old leader's slow clock keeps its lease alive.
    fn scenario(rate: f64) -> Option<RaftResponse<ListOutput>> {
        let mut c = Cluster::lists(3, RaftConfig::default(), 19);
        let old = c.await_leader().unwrap();
        c.set_clock_rate(old, rate);
        appended(c.propose(1));
        c.run_for(ms(60));
        c.isolate(old);
        c.run_until(Duration::from_secs(3), |c| {
            c.ids().iter().any(|&id| id != old && c.node(id).unwrap().is_leader())
        });
        let new = c.ids().into_iter().find(|&id| id != old && c.node(id).unwrap().is_leader())?;
        appended(c.call(new, RaftRequest::Propose { session: None, command: 2 }, ms(100)));
        let id = c.request(old, RaftRequest::Read { consistency: ReadConsistency::Lease, query: () });
        c.run_for(ms(10));
        c.reply(id).cloned()
    }
    let slow = scenario(0.2);
    assert_eq!(
        slow,
        Some(RaftResponse::Output(ListOutput::Items(vec![1]))),
        "stale: the write of 2 is missing"
    );
    let accurate = scenario(1.0);
    assert!(
        !matches!(accurate, Some(RaftResponse::Output(_))),
        "with an accurate clock the lease has expired and the read is not served: {accurate:?}"
    );
}

// ----- Client sessions (dissertation §6.3) -----

#[test]
fn exactly_once_retry() {
    let mut c = Cluster::lists(3, cfg(), 20);
    let leader = c.await_leader().unwrap();
    let s = Session { client: concord_core::ClientId(7), seq: 1 };
    assert_eq!(appended(c.propose_with_session(leader, s, 42)), 1);
    // A retry (e.g. the reply was lost) gets the first answer and is not applied again.
    assert_eq!(appended(c.propose_with_session(leader, s, 42)), 1);
    // Even at a new leader after a crash.
    c.crash(leader);
    let next = c.await_leader().unwrap();
    assert_eq!(appended(c.propose_with_session(next, s, 42)), 1);
    let s2 = Session { seq: 2, ..s };
    assert_eq!(appended(c.propose_with_session(next, s2, 43)), 2);
    // A retry of a superseded request has an unknown outcome from the client's point of view.
    assert!(matches!(c.propose_with_session(next, s, 42), Some(RaftResponse::Unknown { .. })));
    assert_eq!(c.items(next), vec![42, 43]);
    c.assert_safe();
}

#[test]
fn exactly_once_survives_snapshots() {
    let config = RaftConfig { snapshot_threshold_entries: 5, ..cfg() };
    let mut c = Cluster::lists(3, config, 21);
    let leader = c.await_leader().unwrap();
    let s = Session { client: concord_core::ClientId(3), seq: 1 };
    appended(c.propose_with_session(leader, s, 5));
    for i in 0..12 {
        appended(c.propose(i));
    }
    assert!(c.node(leader).unwrap().snapshot_index() > 1);
    c.crash(leader);
    c.restart(leader);
    let next = c.await_leader().unwrap();
    assert_eq!(appended(c.propose_with_session(next, s, 5)), 1, "the session table is in the snapshot");
    c.assert_safe();
}

// ----- Recovery -----

/// Raft assumes stable storage; a follower that loses the end of its log (a truncated segment) or
/// all of it (a wiped disk) rejects every append at the `match_index` it acknowledged. Before the
/// fix the leader's back-off was floored at `match_index + 1`, so it probed that one index forever:
/// the follower stayed at commit index 0 (45 s in the issue; here it never caught up). The leader
/// must see the regression, reset that follower's progress once, and bring it back.
#[test]
fn s5_3_the_leader_resets_the_progress_of_a_follower_whose_log_went_backwards() {
    for keep in [0u64, 5] {
        let mut c = Cluster::lists(3, cfg(), 31);
        for i in 0..20 {
            appended(c.propose(i));
        }
        let leader = c.leader().unwrap();
        let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
        assert!(converge(&mut c, leader));
        assert!(c.node(leader).unwrap().follower_progress()[&follower].0 >= 20);
        // Keep the hard state and the first `keep` entries (0: a wiped disk).
        let mut disk = if keep == 0 { concord_core::Durable::new() } else { c.durable(follower).clone() };
        disk.apply(&concord_core::StorageOp::DeleteRange {
            start: concord_raft::storage::log_key(keep + 1),
            end: concord_raft::storage::log_key(u64::MAX),
        });
        c.replace_disk(follower, disk);
        assert_eq!(c.node(follower).unwrap().last_log_index(), keep);
        appended(c.propose(99));
        let commit = c.node(leader).unwrap().commit_index();
        let caught_up = c.run_until(Duration::from_secs(3), |c| {
            c.node(follower).is_some_and(|n| n.commit_index() >= commit)
        });
        let node = c.node(leader).unwrap();
        assert!(
            caught_up,
            "keep {keep}: the follower is stuck at commit {} of {commit}; the leader sees {:?}",
            c.node(follower).unwrap().commit_index(),
            node.follower_progress()
        );
        assert_eq!(node.follower_log_regressions(), 1, "keep {keep}: seen and counted once");
        assert!(converge(&mut c, leader));
        assert_eq!(c.items(follower), c.items(leader));
        c.assert_safe();
    }
}

#[test]
fn recovery_truncates_a_torn_tail_and_refuses_a_corrupt_record() {
    let mut c = Cluster::lists(3, cfg(), 22);
    for i in 0..5 {
        appended(c.propose(i));
    }
    let id = c.ids().into_iter().find(|&id| Some(id) != c.leader()).unwrap();
    c.crash(id);
    // The write of a next entry was torn by the crash (never synced, so never acknowledged):
    // recovery drops it.
    let held = c.durable(id).scan_prefix("raft/log/").count() as u64;
    let copy = c.durable(id).get(&concord_raft::storage::log_key(held)).unwrap().to_vec();
    let torn = copy[..copy.len() / 2].to_vec();
    let key = concord_raft::storage::log_key(held + 1);
    c.write_durable(id, concord_core::StorageOp::Put { key, value: torn });
    c.try_restart(id).expect("a torn tail is not an error");
    assert_eq!(c.node(id).unwrap().last_log_index(), held);
    let leader = c.leader().unwrap();
    assert!(converge(&mut c, leader));
    // Flip a bit in the middle of the log: recovery refuses to guess.
    c.crash(id);
    let key = concord_raft::storage::log_key(2);
    let mut bad = c.durable(id).get(&key).unwrap().to_vec();
    bad[6] ^= 0x01;
    c.write_durable(id, concord_core::StorageOp::Put { key: key.clone(), value: bad });
    match c.try_restart(id) {
        Err(concord_raft::RecoveryError::Corrupt { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected a corruption error, got {:?}", other.err()),
    }
    c.assert_safe();
}

#[test]
fn service_adapter_maps_ops_and_responses() {
    use concord_core::{ClientId, Completion, Op, OpFn, Service, Value};
    use concord_raft::RaftNode;
    type N = RaftNode<concord_raft_harness::ListMachine>;
    let op = Op { f: OpFn::Append, key: None, value: Value::Int(5) };
    match <N as Service>::request(ClientId(2), 9, &op) {
        RaftRequest::Propose { session: Some(s), command: 5 } => {
            assert_eq!((s.client, s.seq), (ClientId(2), 9))
        }
        other => panic!("{other:?}"),
    }
    let read = Op { f: OpFn::Read, key: None, value: Value::Nil };
    assert!(matches!(<N as Service>::request(ClientId(2), 10, &read), RaftRequest::Read { .. }));
    assert_eq!(
        <N as Service>::completion(&op, &RaftResponse::NotLeader { hint: Some(NodeId(3)) }),
        Completion::Redirect(Some(NodeId(3)))
    );
    assert!(matches!(
        <N as Service>::completion(&op, &RaftResponse::Unknown { reason: "x".into() }),
        Completion::Unknown(_)
    ));
    assert_eq!(
        <N as Service>::completion(&read, &RaftResponse::Output(ListOutput::Items(vec![1]))),
        Completion::Ok(Value::List(vec![Value::Int(1)]))
    );
}

#[test]
fn a_single_node_cluster_commits_alone() {
    let mut c = Cluster::lists(1, cfg(), 23);
    let leader = c.await_leader().expect("it elects itself");
    assert_eq!(appended(c.propose(5)), 1);
    assert_eq!(items(c.read(leader, ReadConsistency::Linearizable, ())), vec![5]);
    assert_eq!(items(c.read(leader, ReadConsistency::Lease, ())), vec![5]);
    c.add_host(NodeId(2));
    assert!(matches!(
        c.call(leader, RaftRequest::Admin(AdminRequest::AddLearner(NodeId(2))), ms(100)),
        Some(RaftResponse::MembershipChanged { .. })
    ));
    assert!(converge(&mut c, leader));
    assert_eq!(c.items(NodeId(2)), vec![5]);
    c.assert_safe();
}

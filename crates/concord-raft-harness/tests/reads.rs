//! Reads that do not wait on the log (`concord-raft/src/read.rs`): batched ReadIndex rounds and
//! follower reads by ReadIndex, message by message. Figure 3's invariants are checked after every
//! event.

use concord_core::NodeId;
use concord_raft::message::ReadIndexResponse;
use concord_raft::{Message, RaftConfig, RaftRequest, RaftResponse, ReadConsistency};
use concord_raft_harness::{Cluster, ListMachine, ListOutput};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn items(resp: Option<&RaftResponse<ListOutput>>) -> Vec<i64> {
    match resp {
        Some(RaftResponse::Output(ListOutput::Items(items))) => items.clone(),
        other => panic!("expected a read result, got {other:?}"),
    }
}

fn linearizable() -> RaftRequest<i64, ()> {
    RaftRequest::Read { consistency: ReadConsistency::Linearizable, query: () }
}

/// Three nodes with `1, 2, 3` committed and applied everywhere; returns the leader.
fn three_with_items(config: RaftConfig, seed: u64) -> (Cluster<ListMachine>, NodeId) {
    let mut c = Cluster::lists(3, config, seed);
    for i in 1..=3 {
        assert!(matches!(c.propose(i), Some(RaftResponse::Output(_))));
    }
    let leader = c.leader().expect("a leader");
    assert!(c.run_until(ms(500), |c| c.ids().iter().all(|&id| c.items(id) == vec![1, 2, 3])));
    (c, leader)
}

/// Heartbeat ticks far apart (400 ms), so the rounds counted below are the reads' own.
fn slow_ticks() -> RaftConfig {
    RaftConfig {
        election_timeout_min: ms(1000),
        election_timeout_max: ms(2000),
        heartbeat_interval: ms(400),
        lease_reads: false,
        ..RaftConfig::default()
    }
}

/// Run until the leader's next heartbeat tick has been delivered, then a little longer: the next
/// tick is about 400 ms away.
fn just_after_a_tick(c: &mut Cluster<ListMachine>) {
    let before = c.delivered.get("heartbeat").copied().unwrap_or(0);
    assert!(c.run_until(ms(1000), |c| c.delivered.get("heartbeat").copied().unwrap_or(0) > before));
    c.run_for(ms(30));
}

fn heartbeats(c: &Cluster<ListMachine>) -> u64 {
    c.delivered.get("heartbeat").copied().unwrap_or(0)
}

/// Batching (etcd's linearizable read loop): a read arriving with no read round outstanding
/// starts one at once; N reads arriving while it is in flight do not join it (it started before
/// they arrived) but share exactly one further round, started when the first is confirmed.
#[test]
fn reads_arriving_during_a_round_share_exactly_one_further_round() {
    let (mut c, leader) = three_with_items(slow_ticks(), 3);
    just_after_a_tick(&mut c);
    let before = heartbeats(&c);
    let first = c.request(leader, linearizable());
    // Still the same instant: the first round's heartbeats are in flight.
    let batch: Vec<_> = (0..5).map(|_| c.request(leader, linearizable())).collect();
    assert!(c.reply(first).is_none() && batch.iter().all(|&r| c.reply(r).is_none()));
    // The first read is served by its round; at that moment the others are not: a majority
    // acknowledging a round started before a read arrived proves nothing about that read.
    assert!(c.run_until(ms(100), |c| c.reply(first).is_some()));
    assert_eq!(items(c.reply(first)), vec![1, 2, 3]);
    assert!(batch.iter().all(|&r| c.reply(r).is_none()), "a read was served by a round started before it");
    assert!(c.run_until(ms(100), |c| batch.iter().all(|&r| c.reply(r).is_some())));
    for &r in &batch {
        assert_eq!(items(c.reply(r)), vec![1, 2, 3]);
    }
    c.run_for(ms(30)); // let every heartbeat of both rounds arrive
    assert_eq!(heartbeats(&c) - before, 2 * 2, "two rounds (to two followers each), not one per read");
    c.assert_safe();
}

/// Reads arriving one after another, each after the previous was served, each start their own
/// round at once (nothing is outstanding): batching never delays a lone read.
#[test]
fn a_read_with_no_round_outstanding_starts_one_at_once() {
    let (mut c, leader) = three_with_items(slow_ticks(), 4);
    just_after_a_tick(&mut c);
    let before = heartbeats(&c);
    for round in 1..=3 {
        let r = c.request(leader, linearizable());
        assert!(c.run_until(ms(30), |c| c.reply(r).is_some()), "read {round} waited for a tick");
        c.run_for(ms(15));
        assert_eq!(heartbeats(&c) - before, 2 * round);
    }
    c.assert_safe();
}

/// A follower serves a linearizable read from its own state machine, with the leader's read index.
#[test]
fn a_follower_serves_linearizable_reads_through_the_leader_s_read_index() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 5);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let before = c.delivered.get("read-index").copied().unwrap_or(0);
    let r = c.request(follower, linearizable());
    assert!(c.run_until(ms(200), |c| c.reply(r).is_some()));
    assert_eq!(items(c.reply(r)), vec![1, 2, 3]);
    assert_eq!(c.delivered.get("read-index").copied().unwrap_or(0) - before, 1);
    // A lease read on a follower is served the same way (a follower has no lease).
    let r = c.request(follower, RaftRequest::Read { consistency: ReadConsistency::Lease, query: () });
    assert!(c.run_until(ms(200), |c| c.reply(r).is_some()));
    assert_eq!(items(c.reply(r)), vec![1, 2, 3]);
    c.assert_safe();
}

/// A follower batches its read-index requests as the leader batches its rounds: reads arriving
/// while a request is in flight do not ride it (the leader may have fixed its index before they
/// arrived) but share exactly one further request, sent when the first is answered.
#[test]
fn follower_reads_arriving_during_a_request_share_exactly_one_further_request() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 10);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let before = c.delivered.get("read-index").copied().unwrap_or(0);
    let first = c.request(follower, linearizable());
    let batch: Vec<_> = (0..16).map(|_| c.request(follower, linearizable())).collect();
    assert!(c.run_until(ms(300), |c| c.reply(first).is_some()));
    assert_eq!(items(c.reply(first)), vec![1, 2, 3]);
    assert!(c.run_until(ms(300), |c| batch.iter().all(|&r| c.reply(r).is_some())));
    for &r in &batch {
        assert_eq!(items(c.reply(r)), vec![1, 2, 3]);
    }
    let requests = c.delivered.get("read-index").copied().unwrap_or(0) - before;
    assert_eq!(requests, 2, "one request for the first read, one shared by the 16 that came after it");
    c.assert_safe();
}

/// A write committed while a follower's read-index request is in flight is seen by a read that
/// arrived after the write was acknowledged, though a request was already in flight when it
/// arrived: the read waits for the next request instead of riding the earlier one.
#[test]
fn a_follower_read_never_rides_a_request_sent_before_it_arrived() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 11);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    // The follower's request is held back on its way to the leader.
    c.blocked.insert((follower, leader));
    let early = c.request(follower, linearizable());
    c.run_for(ms(5));
    // Write 4 commits through the leader and the other follower meanwhile.
    let other = c.ids().into_iter().find(|&id| id != leader && id != follower).unwrap();
    c.blocked.insert((leader, follower));
    let w = c.call(leader, RaftRequest::Propose { session: None, command: 4 }, ms(500));
    assert!(matches!(w, Some(RaftResponse::Output(_))), "{w:?} (via {other})");
    let late = c.request(follower, linearizable());
    // Answer the early request by hand with an index from before write 4 (the leader's view when
    // it might have received it): the early read may use it, the late one must not.
    let leader_node = c.node(leader).unwrap();
    let (term, stale_index) = (leader_node.current_term(), leader_node.commit_index() - 1);
    c.heal();
    c.deliver(
        leader,
        follower,
        Message::ReadIndexResp(ReadIndexResponse { term, id: 1, index: Some(stale_index) }),
    );
    assert!(c.run_until(ms(500), |c| c.reply(early).is_some() && c.reply(late).is_some()));
    assert!(
        items(c.reply(late)).contains(&4),
        "the late read missed an acknowledged write: {:?}",
        c.reply(late)
    );
    c.assert_safe();
}

/// The follower waits until it has applied the read index: a write committed (by the leader and
/// the other follower) before the read arrived is in the answer, though the follower had not even
/// received it when the index came.
#[test]
fn a_follower_read_waits_until_it_applied_the_read_index() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 6);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    // The follower hears nothing from the leader: write 4 commits without it.
    c.blocked.insert((leader, follower));
    let committed = c.call(leader, RaftRequest::Propose { session: None, command: 4 }, ms(500));
    assert!(matches!(committed, Some(RaftResponse::Output(_))), "{committed:?}");
    assert_eq!(c.items(follower), vec![1, 2, 3]);
    let r = c.request(follower, linearizable());
    // Its request reaches the leader; the answer is dropped on the blocked link. Hand it over
    // ourselves: the leader's commit index (it includes write 4).
    c.run_for(ms(20));
    let leader_node = c.node(leader).unwrap();
    let (term, index) = (leader_node.current_term(), leader_node.commit_index());
    assert!(c.node(follower).unwrap().applied_index() < index);
    c.deliver(
        leader,
        follower,
        Message::ReadIndexResp(ReadIndexResponse { term, id: 1, index: Some(index) }),
    );
    c.run_for(ms(5));
    assert!(c.reply(r).is_none(), "served before applying the read index: {:?}", c.reply(r));
    // Once it receives and applies write 4, it answers – with write 4.
    c.heal();
    assert!(c.run_until(ms(200), |c| c.reply(r).is_some()));
    assert_eq!(items(c.reply(r)), vec![1, 2, 3, 4]);
    c.assert_safe();
}

/// A follower read whose leader is deposed before answering fails cleanly (`NotLeader`) once the
/// term changes: it is never served, and does not hang.
#[test]
fn a_follower_read_fails_cleanly_when_the_leader_changes() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 7);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let term = c.node(follower).unwrap().current_term();
    c.isolate(leader);
    let r = c.request(follower, linearizable());
    assert!(c.run_until(ms(2000), |c| c.reply(r).is_some()));
    assert!(matches!(c.reply(r), Some(RaftResponse::NotLeader { .. })), "{:?}", c.reply(r));
    assert!(c.node(follower).unwrap().current_term() > term, "failed by the term change");
    c.heal();
    let new = c.await_leader().expect("a new leader");
    assert_ne!(new, leader);
    c.assert_safe();
}

/// A lost read-index request (the follower still hears its leader, so no election and no term
/// change) fails with `NotLeader` after `election_timeout_max`, not never.
#[test]
fn a_follower_read_whose_request_is_lost_fails_after_an_election_timeout() {
    let (mut c, leader) = three_with_items(RaftConfig::default(), 8);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.blocked.insert((follower, leader));
    let asked = c.now;
    let r = c.request(follower, linearizable());
    assert!(c.run_until(ms(1000), |c| c.reply(r).is_some()));
    assert!(matches!(c.reply(r), Some(RaftResponse::NotLeader { .. })), "{:?}", c.reply(r));
    let waited = c.now.saturating_since(asked);
    let max = c.config.election_timeout_max;
    assert!(waited >= max && waited <= max + ms(100), "failed after {waited:?}");
    assert_eq!(c.leader(), Some(leader), "the leader stayed");
    c.assert_safe();
}

/// A node that knows no leader refuses at once.
#[test]
fn a_node_without_a_leader_refuses_linearizable_reads() {
    let mut c = Cluster::lists(3, RaftConfig::default(), 9);
    // At boot nobody leads yet.
    let r = c.request(NodeId(1), linearizable());
    assert_eq!(c.reply(r), Some(&RaftResponse::NotLeader { hint: None }));
}

/// The only voter needs nobody's acknowledgement to know it still leads (nobody can be elected
/// without its vote): it answers linearizable reads at once, without a heartbeat round per read –
/// a learner sees no heartbeat from a burst of them. (Each read started a round of its own before;
/// a pipeline of reads on one node paid for a round's bookkeeping per read.)
#[test]
fn the_only_voter_answers_reads_without_a_round_per_read() {
    let mut c = Cluster::lists(1, slow_ticks(), 29);
    let leader = c.await_leader().expect("it elects itself");
    assert!(matches!(c.propose(5), Some(RaftResponse::Output(_))));
    c.add_host(NodeId(2));
    let added =
        c.call(leader, RaftRequest::Admin(concord_raft::AdminRequest::AddLearner(NodeId(2))), ms(500));
    assert!(matches!(added, Some(RaftResponse::MembershipChanged { .. })));
    assert!(c.run_until(ms(1000), |c| c.items(NodeId(2)) == vec![5]));
    just_after_a_tick(&mut c);
    let before = heartbeats(&c);
    let reads: Vec<_> = (0..10).map(|_| c.request(leader, linearizable())).collect();
    // Answered in the same instant: no round trip, not even to itself.
    for &r in &reads {
        assert_eq!(items(c.reply(r)), vec![5]);
    }
    c.run_for(ms(30));
    assert_eq!(heartbeats(&c), before, "a read started a heartbeat round");
    c.assert_safe();
}

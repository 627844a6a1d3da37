//! The leader writes its log while its followers write theirs (dissertation §10.2.1;
//! `replication.rs`, "The leader's own disk"): appends leave before the leader's own sync, a commit
//! costs one sync and a round trip rather than two syncs in series, and the leader's unsynced
//! entries never count towards a majority. (Whether that last rule matters is the `count_unsynced_self`
//! mutation's test in `concord-sim`: without it, crashes lose answered writes.)

use concord_core::NodeId;
use concord_raft::{RaftConfig, RaftRequest, RaftResponse};
use concord_raft_harness::{Cluster, ListMachine};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Three nodes on a 1 ms network whose every sync takes exactly 10 ms, with a leader whose term
/// start is committed and nothing in flight.
fn settled_three() -> (Cluster<ListMachine>, NodeId) {
    let mut c = Cluster::lists(3, RaftConfig::default(), 11);
    c.latency = (ms(1), ms(1));
    c.sync_latency = (ms(10), ms(10));
    let leader = c.await_leader().expect("a leader");
    assert!(matches!(c.propose(1), Some(RaftResponse::Output(_))));
    c.run_for(ms(100));
    (c, leader)
}

#[test]
fn appends_leave_before_the_leader_s_own_sync_and_commit_after_one_sync_and_a_round_trip() {
    let (mut c, leader) = settled_three();
    let followers: Vec<NodeId> = c.ids().into_iter().filter(|&n| n != leader).collect();
    let target = c.node(leader).unwrap().last_log_index() + 1;
    let start = c.now;
    let request = c.request(leader, RaftRequest::Propose { session: None, command: 2 });

    // Both followers hold the entry 1 ms later: the leader did not wait for its 10 ms sync.
    assert!(c.run_until(ms(50), |c| followers.iter().all(|&f| c.node(f).unwrap().last_log_index() >= target)));
    let arrived = c.now.saturating_since(start);
    assert!(arrived < ms(10), "the append waited for the leader's sync: it arrived after {arrived:?}");

    // Answered once a follower's sync and the ack's trip are done (1 + 10 + 1 ms): the leader's own
    // sync ran meanwhile. Written first and sent after, it would take 10 + 1 + 10 + 1 ms.
    assert!(c.run_until(ms(100), |c| c.reply(request).is_some()));
    let answered = c.now.saturating_since(start);
    assert!(matches!(c.reply(request), Some(RaftResponse::Output(_))));
    assert!(answered < ms(20), "a commit cost two syncs in series: answered after {answered:?}");
    assert!(c.items(leader).contains(&2));
    c.assert_safe();
}

#[test]
fn a_single_node_answers_only_after_its_sync() {
    let mut c = Cluster::lists(1, RaftConfig::default(), 12);
    c.sync_latency = (ms(10), ms(10));
    let leader = c.await_leader().expect("it elects itself");
    assert!(matches!(c.propose(1), Some(RaftResponse::Output(_))));
    c.run_for(ms(100));
    let start = c.now;
    let request = c.request(leader, RaftRequest::Propose { session: None, command: 2 });
    assert!(c.run_until(ms(100), |c| c.reply(request).is_some()));
    let answered = c.now.saturating_since(start);
    // The only voter is the majority: its entry commits when its own sync says it is on disk.
    assert!(answered >= ms(10), "answered after {answered:?}, before the entry was on disk");
    // A crash right after the answer loses nothing.
    c.crash(leader);
    c.restart(leader);
    c.await_leader().expect("it elects itself again");
    assert!(c.run_until(ms(500), |c| c.items(leader) == vec![1, 2]), "{:?}", c.items(leader));
}

#[test]
fn a_leader_crashed_inside_its_sync_answered_nothing_the_cluster_lost() {
    let (mut c, leader) = settled_three();
    let request = c.request(leader, RaftRequest::Propose { session: None, command: 2 });
    // Crash the leader 5 ms in: its own sync (10 ms) has not completed; the followers hold the
    // entry, unsynced. Nothing may have been answered.
    c.run_for(ms(5));
    assert!(c.reply(request).is_none(), "answered before any disk held the entry");
    c.crash(leader);
    let next = c.await_leader().expect("the other two elect a leader");
    assert_ne!(next, leader);
    c.restart(leader);
    c.run_for(ms(500));
    // The entry survived on the followers (their syncs completed) and the new leader committed it.
    assert!(c.items(next).contains(&2), "{:?}", c.items(next));
    assert!(c.run_until(ms(500), |c| c.items(leader) == c.items(next)));
    c.assert_safe();
}

//! Quiescence (`concord-raft/src/quiesce.rs`): an idle, caught-up group stops every timer; any
//! message or request wakes it without an election or a step-down; a follower that disagrees or
//! missed the notice keeps its timer; a woken leader confirms leadership before a lease read; a
//! follower woken for a silent leader elects a new one. Figure 3's invariants are checked after
//! every event, as in `paper.rs`.

use concord_core::NodeId;
use concord_raft::{Message, QuiesceNotice, RaftConfig, RaftResponse, ReadConsistency, Timer};
use concord_raft_harness::{Cluster, ListMachine, ListOutput};
use std::time::Duration;

fn quiet_cfg() -> RaftConfig {
    RaftConfig { quiesce: true, ..RaftConfig::default() }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn appended(resp: Option<RaftResponse<ListOutput>>) -> usize {
    match resp {
        Some(RaftResponse::Output(ListOutput::Appended { len })) => len,
        other => panic!("expected an applied command, got {other:?}"),
    }
}

/// Every running node quiesced, with no timer armed.
fn all_quiet(c: &Cluster<ListMachine>) -> bool {
    c.ids()
        .into_iter()
        .filter(|&id| c.is_up(id))
        .all(|id| c.node(id).is_some_and(|n| n.is_quiesced()) && c.timers(id).is_empty())
}

fn delivered(c: &Cluster<ListMachine>) -> u64 {
    c.delivered.values().sum()
}

/// A 3-node cluster that committed one entry and went quiet.
fn quiet_cluster(seed: u64) -> (Cluster<ListMachine>, NodeId, u64) {
    let mut c = Cluster::lists(3, quiet_cfg(), seed);
    appended(c.propose(1));
    assert!(c.run_until(secs(2), all_quiet), "the group did not quiesce");
    let leader = c.leader().unwrap();
    let term = c.node(leader).unwrap().current_term();
    (c, leader, term)
}

fn followers(c: &Cluster<ListMachine>, leader: NodeId) -> Vec<NodeId> {
    c.ids().into_iter().filter(|&id| id != leader).collect()
}

#[test]
fn an_idle_caught_up_group_sends_nothing_and_keeps_its_leader() {
    let (mut c, leader, term) = quiet_cluster(1);
    let before = delivered(&c);
    c.run_for(secs(10));
    assert_eq!(delivered(&c), before, "a quiet group sends nothing: {:?}", c.delivered);
    assert_eq!(c.leader(), Some(leader));
    assert!(c.ids().iter().all(|&id| c.node(id).unwrap().current_term() == term));
    c.assert_safe();
}

#[test]
fn quiescence_is_off_by_default() {
    let mut c = Cluster::lists(3, RaftConfig::default(), 1);
    appended(c.propose(1));
    c.run_for(secs(2));
    assert!(c.ids().iter().all(|&id| !c.node(id).unwrap().is_quiesced()));
    assert_eq!(c.delivered.get("quiesce"), None);
}

#[test]
fn a_leader_does_not_quiesce_while_a_follower_lags() {
    let (mut c, leader, term) = quiet_cluster(2);
    let lagging = followers(&c, leader)[0];
    c.isolate(lagging);
    // Commits with the leader and the other follower; the lagging one misses it.
    assert_eq!(appended(c.propose(2)), 2);
    c.run_for(secs(2));
    let l = c.node(leader).unwrap();
    assert!(l.is_leader() && !l.is_quiesced(), "a leader with a lagging follower stays awake");
    assert!(c.timers(leader).contains(&Timer::Heartbeat));
    c.heal();
    assert!(c.run_until(secs(2), all_quiet), "caught up again, the group goes quiet");
    assert_eq!(c.items(lagging), vec![1, 2]);
    assert_eq!(c.node(leader).unwrap().current_term(), term);
    c.assert_safe();
}

#[test]
fn a_proposal_wakes_the_group_without_an_election_or_a_step_down() {
    let (mut c, leader, term) = quiet_cluster(3);
    let pre_votes = c.delivered.get("pre-vote").copied();
    // Far longer than any election timeout: silence while quiet is not a lost quorum.
    c.run_for(secs(5));
    assert_eq!(appended(c.propose(2)), 2);
    assert!(c.run_until(secs(2), all_quiet), "the group goes quiet again");
    assert_eq!(c.leader(), Some(leader));
    assert!(c.ids().iter().all(|&id| c.node(id).unwrap().current_term() == term));
    assert_eq!(c.event_counts.get("step-down"), None);
    assert_eq!(c.delivered.get("pre-vote").copied(), pre_votes, "nobody campaigned");
    assert!(c.ids().iter().all(|&id| c.items(id) == vec![1, 2]));
    c.assert_safe();
}

#[test]
fn a_follower_whose_log_differs_from_the_notice_stays_awake() {
    let (mut c, leader, term) = quiet_cluster(4);
    let f = followers(&c, leader)[0];
    let node = c.node(f).unwrap();
    // A notice announcing a log this follower does not hold (one entry longer).
    let notice = QuiesceNotice {
        term,
        leader_commit: node.commit_index(),
        last_log_index: node.last_log_index() + 1,
        last_log_term: term,
        round: 1_000,
    };
    c.deliver(leader, f, Message::Quiesce(notice));
    assert!(!c.node(f).unwrap().is_quiesced(), "a follower that disagrees does not quiesce");
    assert!(c.timers(f).contains(&Timer::Election), "and keeps its election timer");
    // Its answer wakes the leader, which heartbeats again; the group settles, same leader.
    assert!(c.run_until(secs(2), |c| !c.node(leader).unwrap().is_quiesced()));
    assert!(c.run_until(secs(3), all_quiet));
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(c.node(f).unwrap().current_term(), term);
}

#[test]
fn a_follower_that_missed_the_notice_keeps_the_leader_awake() {
    let mut c = Cluster::lists(3, quiet_cfg(), 5);
    appended(c.propose(1));
    let leader = c.await_leader().unwrap();
    let f = followers(&c, leader)[0];
    // Notices to `f` are lost (the only leader messages while idle); everything else flows.
    c.blocked.insert((leader, f));
    c.run_for(secs(2));
    assert!(!c.node(leader).unwrap().is_quiesced(), "without every agreement the leader heartbeats");
    assert!(c.node(leader).unwrap().is_leader());
    c.blocked.clear();
    assert!(c.run_until(secs(2), all_quiet));
}

#[test]
fn a_quiesced_follower_refuses_a_pre_vote_and_wakes_its_leader() {
    let (mut c, leader, term) = quiet_cluster(6);
    c.run_for(secs(3));
    let fs = followers(&c, leader);
    let (f, asker) = (fs[0], fs[1]);
    let n = c.node(asker).unwrap();
    // A replica that restarted (and forgot it was quiet) asks for a pre-vote with an equal log.
    let req = concord_raft::message::VoteRequest {
        term: term + 1,
        last_log_index: n.last_log_index(),
        last_log_term: n.log_term_at(n.last_log_index()).unwrap(),
        transfer: false,
    };
    c.record_events = true;
    c.deliver(asker, f, Message::PreVote(req));
    let woke = c.events.iter().any(|e| e.node == f && e.name == "woke");
    assert!(woke && !c.node(f).unwrap().is_quiesced(), "the pre-vote woke the follower");
    assert_eq!(c.node(f).unwrap().current_term(), term, "a pre-vote changes no term");
    assert!(c.timers(f).contains(&Timer::Election));
    // The follower asked its leader to heartbeat again: no election follows.
    c.run_for(secs(3));
    assert_eq!(c.leader(), Some(leader));
    assert!(c.ids().iter().all(|&id| c.node(id).unwrap().current_term() == term));
    assert!(c.run_until(secs(2), all_quiet));
}

#[test]
fn a_woken_leader_confirms_leadership_before_a_lease_read() {
    let (mut c, leader, _) = quiet_cluster(7);
    c.run_for(secs(2));
    // Cut the quiet leader off. Its lease ended on its clock while quiet, so a lease read must go
    // through a heartbeat round – which nobody can acknowledge.
    c.isolate(leader);
    let answer = c.read(leader, ReadConsistency::Lease, ());
    assert!(
        !matches!(answer, Some(RaftResponse::Output(_))),
        "a woken leader served a lease read without confirming leadership: {answer:?}"
    );
    c.assert_safe();
}

#[test]
fn a_woken_leader_serves_lease_reads_once_it_confirmed_leadership() {
    let (mut c, leader, _) = quiet_cluster(8);
    c.run_for(secs(2));
    let answer = c.read(leader, ReadConsistency::Lease, ());
    assert!(matches!(answer, Some(RaftResponse::Output(ListOutput::Items(ref v))) if v == &vec![1]));
}

#[test]
fn followers_woken_for_a_silent_leader_elect_a_new_one() {
    let (mut c, leader, term) = quiet_cluster(9);
    c.crash(leader);
    c.run_for(secs(3));
    assert!(c.leader().is_none(), "quiet followers cannot notice a dead leader by themselves");
    // The driver saw the leader's node silent for an election timeout and wakes them.
    for f in followers(&c, leader) {
        c.wake(f, None);
    }
    let new = c.await_leader().expect("a new leader");
    assert_ne!(new, leader);
    assert!(c.node(new).unwrap().current_term() > term);
    assert_eq!(appended(c.propose(2)), 2);
    c.assert_safe();
}

//! Raft over a *durable* state machine (one that keeps its own state on disk and is checkpointed,
//! not serialised, at snapshot points – the real database's redb store). `tests/durable_faults.rs`
//! runs such machines under random faults; these tests aim at the one window the design has to get
//! right: a crash after the machine's checkpoint is durable and before Raft's own
//! snapshot record is.

use concord_core::{ClientId, NodeId};
use concord_raft::{RaftConfig, RaftRequest, RaftResponse, Session};
use concord_raft_harness::{Cluster, ListMachine, ListOutput};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(5);

fn one_durable_node() -> Cluster<ListMachine> {
    let config = RaftConfig { snapshot_threshold_entries: 10, ..RaftConfig::default() };
    let mut c = Cluster::durable_lists(1, config, 7);
    // Syncs take a while, so a crash can land between the checkpoint and Raft's record of it.
    c.sync_latency = (Duration::from_millis(5), Duration::from_millis(5));
    c.await_leader().expect("a single node elects itself");
    c
}

fn propose(c: &mut Cluster<ListMachine>, session: Option<Session>, value: i64) -> RaftResponse<ListOutput> {
    c.call(NodeId(1), RaftRequest::Propose { session, command: value }, LIMIT).expect("answered")
}

#[test]
fn a_crash_between_the_machine_checkpoint_and_the_raft_snapshot_record_loses_nothing() {
    let mut c = one_durable_node();
    let session = Some(Session { client: ClientId(7), seq: 1 });
    let first = propose(&mut c, session, 100);
    assert_eq!(first, RaftResponse::Output(ListOutput::Appended { len: 1 }));
    // Write until the node snapshots (checkpoints), and crash it at once: the checkpoint is on the
    // machine's disk, Raft's snapshot record and the log compaction are not synced yet.
    let mut value = 0;
    while c.node(NodeId(1)).unwrap().snapshot_index() == 0 {
        value += 1;
        c.request(NodeId(1), RaftRequest::Propose { session: None, command: value });
        c.run_until(LIMIT, |c| {
            c.node(NodeId(1)).unwrap().snapshot_index() > 0 || c.replies.len() > value as usize
        });
    }
    let checkpointed = c.node(NodeId(1)).unwrap().snapshot_index();
    c.crash(NodeId(1));
    c.restart(NodeId(1));
    let node = c.node(NodeId(1)).unwrap();
    assert_eq!(node.snapshot_index(), checkpointed, "the machine's checkpoint became Raft's snapshot");
    assert_eq!(node.applied_index(), checkpointed);
    c.await_leader().expect("leader again");
    // The checkpoint carried the session table: a retry of the first write is not applied again.
    let retry = propose(&mut c, session, 100);
    assert_eq!(retry, RaftResponse::Output(ListOutput::Appended { len: 1 }));
    let items = c.items(NodeId(1));
    assert_eq!(items.iter().filter(|&&v| v == 100).count(), 1, "{items:?}");
    // And the adopted snapshot was written to Raft's disk: a second restart boots from it too.
    c.run_for(Duration::from_millis(50));
    c.crash(NodeId(1));
    c.restart(NodeId(1));
    assert!(c.node(NodeId(1)).unwrap().snapshot_index() >= checkpointed);
}

#[test]
fn a_machine_that_lost_its_checkpoint_refuses_to_boot_instead_of_serving_an_empty_state() {
    let mut c = one_durable_node();
    for v in 1..=12 {
        propose(&mut c, None, v);
    }
    c.run_for(Duration::from_millis(50));
    assert!(c.node(NodeId(1)).unwrap().snapshot_index() > 0);
    // Wipe the machine's disk (as if its file were deleted), keep Raft's.
    let disk = c.node(NodeId(1)).unwrap().state_machine().disk.clone().expect("durable");
    c.crash(NodeId(1));
    *disk.lock().unwrap() = None;
    let err = c.try_restart(NodeId(1)).unwrap_err().to_string();
    assert!(err.contains("the state machine has no checkpoint"), "{err}");
}

/// A data directory written before the machine was durable: Raft's snapshot record holds the
/// machine's bytes, and the machine's own storage is empty. The node loads the bytes into the
/// machine, checkpoints it, rewrites its record without them, and carries on.
#[test]
fn a_snapshot_taken_before_the_machine_was_durable_is_moved_into_it_at_boot() {
    let config = RaftConfig { snapshot_threshold_entries: 10, ..RaftConfig::default() };
    let mut old = Cluster::lists(1, config.clone(), 7);
    old.await_leader().unwrap();
    for v in 1..=15 {
        propose(&mut old, None, v);
    }
    old.run_for(Duration::from_millis(50));
    let snapshot_index = old.node(NodeId(1)).unwrap().snapshot_index();
    assert!(snapshot_index >= 10);
    let old_disk = old.durable(NodeId(1)).clone();
    let data_key = concord_raft::storage::snapshot_data_key(snapshot_index);
    let old_record = old_disk.get(&data_key).expect("a snapshot record").len();

    let mut new = Cluster::durable_lists(1, config, 7);
    new.replace_disk(NodeId(1), old_disk);
    let node = new.node(NodeId(1)).unwrap();
    assert_eq!(node.snapshot_index(), snapshot_index);
    assert!(
        concord_core::StateMachine::checkpoint_sidecar(node.state_machine()).is_some(),
        "checkpointed at boot"
    );
    new.await_leader().unwrap();
    new.run_for(Duration::from_millis(50));
    assert_eq!(new.items(NodeId(1)), (1..=15).collect::<Vec<i64>>());
    // Raft's record no longer carries the machine's bytes, and a restart boots from the checkpoint.
    let new_record = new.durable(NodeId(1)).get(&data_key).expect("the record rewritten").len();
    assert!(
        new_record < old_record,
        "the record still holds the machine ({new_record} of {old_record} bytes)"
    );
    new.crash(NodeId(1));
    new.restart(NodeId(1));
    new.await_leader().unwrap();
    new.run_for(Duration::from_millis(50));
    assert_eq!(new.items(NodeId(1)), (1..=15).collect::<Vec<i64>>());
}

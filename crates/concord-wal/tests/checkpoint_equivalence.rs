//! Property: whatever the sequence of writes, syncs, crashes and checkpoints, recovery gives the
//! state `Durable::apply` gives – and the same state with checkpoints and tiny segments as without.

mod common;

use common::*;
use concord_core::{Durable, StorageOp};
use concord_wal::{SyncMode, Wal, WalOptions};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Append(Vec<StorageOp>),
    Sync,
    /// Drop the WAL without syncing (a process crash) and open it again.
    Crash,
    Checkpoint,
}

fn key() -> impl Strategy<Value = String> {
    (0u8..16).prop_map(|k| format!("k{k:02}"))
}

fn op() -> impl Strategy<Value = StorageOp> {
    prop_oneof![
        5 => (key(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(key, value)| StorageOp::Put { key, value }),
        2 => key().prop_map(|key| StorageOp::Delete { key }),
        1 => (key(), key()).prop_map(|(start, end)| StorageOp::DeleteRange { start, end }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => proptest::collection::vec(op(), 0..6).prop_map(Step::Append),
        4 => Just(Step::Sync),
        1 => Just(Step::Crash),
        1 => Just(Step::Checkpoint),
    ]
}

/// Run `steps` against a WAL in a fresh directory; returns the final recovered state.
fn run(steps: &[Step], opts: &WalOptions) -> Result<Durable, TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, durable, _) = Wal::open(tmp.path(), opts.clone()).unwrap();
    prop_assert!(durable.is_empty());
    // The state after each batch appended since the last sync; the first is the synced state.
    // A crash may keep any of them (what reached the OS survives a process crash), never less.
    let mut since_sync = vec![Durable::new()];
    for step in steps {
        match step {
            Step::Append(ops) => {
                wal.append(ops).unwrap();
                let next = apply_all(since_sync.last().unwrap().clone(), ops);
                prop_assert_eq!(wal.state(), &next);
                since_sync.push(next);
            }
            Step::Sync | Step::Checkpoint => {
                if matches!(step, Step::Sync) {
                    wal.sync().unwrap();
                } else {
                    wal.checkpoint().unwrap();
                }
                let synced = since_sync.pop().unwrap();
                since_sync = vec![synced];
            }
            Step::Crash => {
                drop(wal);
                let (reopened, durable, _) = Wal::open(tmp.path(), opts.clone()).unwrap();
                let kept = since_sync.iter().position(|s| *s == durable);
                prop_assert!(
                    kept.is_some(),
                    "recovered a state that is no prefix of the batches since the last sync"
                );
                since_sync = vec![durable];
                wal = reopened;
            }
        }
    }
    wal.sync().unwrap();
    let expected = since_sync.pop().unwrap();
    drop(wal);
    let (_, durable, _) = Wal::open(tmp.path(), opts.clone()).unwrap();
    prop_assert_eq!(&durable, &expected);
    Ok(durable)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_and_replay_equals_plain_replay(steps in proptest::collection::vec(step(), 0..80)) {
        // SyncMode::None: the same files and code paths, minus the wait for the disk.
        let plain = WalOptions { checkpoint_bytes: u64::MAX, sync: SyncMode::None, ..WalOptions::default() };
        let compacting = tiny(SyncMode::None);
        // With crashes, each run must recover an admissible state (checked inside `run`); which
        // unsynced batches survive a crash may differ (a segment roll hands them to the OS early).
        run(&steps, &plain)?;
        run(&steps, &compacting)?;
        // Without crashes everything is synced in the end: both equal the model, every op applied
        // in order.
        let calm: Vec<Step> = steps.iter().filter(|s| !matches!(s, Step::Crash)).cloned().collect();
        let model = calm.iter().fold(Durable::new(), |state, s| match s {
            Step::Append(ops) => apply_all(state, ops),
            _ => state,
        });
        prop_assert_eq!(&run(&calm, &plain)?, &model);
        prop_assert_eq!(&run(&calm, &compacting)?, &model);
    }
}

//! Properties over random command sequences: replicas agree, snapshots are faithful, refused and
//! no-op commands change nothing, corrupt snapshots are refused without panics.
//!
//! A "run" is what Raft does: a leader's clock advances, clients propose commands, and now and then
//! the leader's housekeeping proposes expiries; every command is applied, in the same order, to every
//! replica.

use concord_core::{StateMachine, Time};
use concord_kv::{
    Cas, Command, Compare, CompareOp, CompareTarget, KeyRange, KvLimits, KvStore, Put, RangeRequest,
    Response, Txn, TxnOp, Write,
};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

/// What happens at one step of a run.
#[derive(Clone, Debug)]
enum Action {
    Client(Write),
    /// The leader asks its state machine for expiries and proposes them.
    Housekeeping,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // A small key space, so commands collide; "" is there to exercise the refusal path.
    prop_oneof![
        10 => prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(|k| k.as_bytes().to_vec()),
        1 => Just(Vec::new()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-5i64..5).prop_map(|i| i.to_string().into_bytes()),
        Just(i64::MAX.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..6),
        // Over the test limit of 32 bytes: refused.
        Just(vec![b'x'; 40]),
    ]
}

fn ttl_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![3 => Just(None), 3 => (1u64..40).prop_map(Some), 1 => Just(Some(0))]
}

fn key_range() -> impl Strategy<Value = KeyRange> {
    (key(), prop::option::of(key())).prop_map(|(start, end)| KeyRange { start, end })
}

fn target() -> impl Strategy<Value = CompareTarget> {
    prop_oneof![
        prop::option::of(value()).prop_map(CompareTarget::Value),
        (0u64..4).prop_map(CompareTarget::Version),
        (0u64..10).prop_map(CompareTarget::CreateRevision),
        (0u64..10).prop_map(CompareTarget::ModRevision),
    ]
}

fn compare() -> impl Strategy<Value = Compare> {
    let op = prop::sample::select(vec![
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::Less,
    ]);
    (key(), op, target()).prop_map(|(key, op, target)| Compare { key, op, target })
}

fn put() -> impl Strategy<Value = Put> {
    (key(), value(), ttl_ms()).prop_map(|(key, value, ttl_ms)| Put { key, value, ttl_ms })
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        key().prop_map(|key| TxnOp::Get { key }),
        (key_range(), 0usize..6).prop_map(|(range, limit)| TxnOp::Range(RangeRequest { range, limit })),
        put().prop_map(TxnOp::Put),
        key().prop_map(|key| TxnOp::Delete { key }),
        key_range().prop_map(TxnOp::DeleteRange),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    let ops = || prop::collection::vec(txn_op(), 0..4);
    prop_oneof![
        4 => put().prop_map(Write::Put),
        2 => key().prop_map(|key| Write::Delete { key }),
        1 => key_range().prop_map(Write::DeleteRange),
        3 => (key(), target(), value(), ttl_ms())
            .prop_map(|(key, expect, value, ttl_ms)| Write::Cas(Cas { key, expect, value, ttl_ms })),
        2 => (key(), prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)])
            .prop_map(|(key, delta)| Write::Increment { key, delta }),
        3 => (prop::collection::vec(compare(), 0..3), ops(), ops())
            .prop_map(|(compares, success, failure)| Write::Txn(Txn { compares, success, failure })),
    ]
}

/// `(clock advance in ms, action)` steps.
fn run() -> impl Strategy<Value = Vec<(u64, Action)>> {
    let action = prop_oneof![5 => write().prop_map(Action::Client), 1 => Just(Action::Housekeeping)];
    prop::collection::vec((0u64..15, action), 1..60)
}

fn limits() -> KvLimits {
    KvLimits {
        max_key_bytes: 8,
        max_value_bytes: 32,
        max_txn_ops: 8,
        max_range_limit: 5,
        max_range_bytes: 64,
        max_expire_keys: 2,
        max_command_bytes: 100,
    }
}

/// The commands a run proposes, in log order, computed by `leader` (which applies them as it goes,
/// since its housekeeping depends on its state).
fn propose_and_apply(leader: &mut KvStore, steps: &[(u64, Action)]) -> Vec<(Command, concord_kv::KvResult)> {
    let mut now = Time(0);
    let mut log = Vec::new();
    for (advance_ms, action) in steps {
        now = Time(now.0 + advance_ms * MS);
        let commands = match action {
            Action::Client(write) => vec![Command::new(now, write.clone())],
            Action::Housekeeping => leader.housekeeping(now),
        };
        for command in commands {
            let out = leader.apply(log.len() as u64 + 1, &command);
            log.push((command, out));
        }
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two replicas applying the same log give the same outputs, states and snapshot bytes; and
    /// a replica that round-trips itself through a snapshot at random points cannot tell.
    #[test]
    fn replicas_applying_the_same_log_are_identical(
        steps in run(),
        restore_at in prop::collection::vec(any::<bool>(), 60),
    ) {
        let mut leader = KvStore::new(limits());
        let log = propose_and_apply(&mut leader, &steps);
        let mut follower = KvStore::new(limits());
        for (i, (command, leader_out)) in log.iter().enumerate() {
            if restore_at[i % restore_at.len()] {
                let bytes = follower.snapshot();
                let mut fresh = KvStore::new(limits());
                fresh.restore(&bytes).unwrap();
                prop_assert_eq!(fresh.snapshot(), bytes);
                follower = fresh;
            }
            let out = follower.apply(i as u64 + 1, command);
            prop_assert_eq!(&out, leader_out, "command {} {:?}", i, command);
            follower.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(&follower, &leader);
        prop_assert_eq!(follower.snapshot(), leader.snapshot());
        prop_assert_eq!(follower.housekeeping(Time(u64::MAX)), leader.housekeeping(Time(u64::MAX)));
    }

    /// Snapshot → restore equals the original, and both continue identically.
    #[test]
    fn restored_snapshot_continues_identically(prefix in run(), suffix in run()) {
        let mut original = KvStore::new(limits());
        propose_and_apply(&mut original, &prefix);
        let bytes = original.snapshot();
        let mut restored = KvStore::new(limits());
        restored.restore(&bytes).unwrap();
        prop_assert_eq!(&restored, &original);
        prop_assert_eq!(restored.snapshot(), bytes.clone());

        let mut leader = original.clone();
        let log = propose_and_apply(&mut leader, &suffix);
        for (i, (command, out)) in log.iter().enumerate() {
            prop_assert_eq!(&restored.apply(i as u64, command), out);
        }
        restored.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(restored.snapshot(), leader.snapshot());
        prop_assert_eq!(restored.housekeeping(Time(u64::MAX)), leader.housekeeping(Time(u64::MAX)));
    }

    /// A refused command changes nothing; a command that leaves the revision alone changes nothing;
    /// a command that changes anything moves the revision by exactly one.
    #[test]
    fn only_successful_writes_change_state_and_each_by_one_revision(steps in run()) {
        let mut store = KvStore::new(limits());
        let mut now = Time(0);
        for (advance_ms, action) in &steps {
            now = Time(now.0 + advance_ms * MS);
            let commands = match action {
                Action::Client(write) => vec![Command::new(now, write.clone())],
                Action::Housekeeping => store.housekeeping(now),
            };
            for command in commands {
                let (revision, bytes) = (store.revision(), store.snapshot());
                let out = store.apply(0, &command);
                let changed = store.snapshot() != bytes;
                match out {
                    Err(_) => prop_assert!(!changed, "refused {:?} changed the state", command),
                    Ok(_) if changed => prop_assert_eq!(store.revision(), revision + 1),
                    Ok(_) => prop_assert_eq!(store.revision(), revision),
                }
                // A transaction whose compares failed with an empty failure branch is a pure read.
                let failed_txn = matches!(out, Ok(Response::Txn { succeeded: false, .. }));
                if let (Write::Txn(txn), true) = (&command.write, failed_txn) {
                    if txn.failure.is_empty() {
                        prop_assert!(!changed);
                    }
                }
            }
        }
    }

    /// Every one-byte corruption and every truncation of a snapshot is refused, and the refusing
    /// store keeps its state; arbitrary bytes never panic.
    #[test]
    fn corrupt_snapshots_are_refused(
        steps in run(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut source = KvStore::new(limits());
        propose_and_apply(&mut source, &steps);
        let good = source.snapshot();

        let mut target = KvStore::new(limits());
        target.apply(1, &Command::put(Time(0), "keep", "me")).unwrap();
        let before = target.snapshot();

        let mut flipped = good.clone();
        flipped[at.index(good.len())] ^= xor;
        prop_assert!(target.restore(&flipped).is_err());
        let cut = at.index(good.len());
        prop_assert!(target.restore(&good[..cut]).is_err());
        // Random bytes: a checksum match is a 1 in 2^32 event, so this is refused too.
        prop_assert!(target.restore(&noise).is_err());
        prop_assert_eq!(target.snapshot(), before);

        target.restore(&good).unwrap();
        prop_assert_eq!(&target, &source);
    }
}

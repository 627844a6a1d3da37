//! WAL throughput: append + sync for batches of 1, 16 and 256 ops, the effect of group commit (many
//! batches, one sync), and the same with fsync off to show what the disk's flush costs.
//!
//! `cargo bench -p concord-wal --bench wal`. The data directory is a temporary directory on the
//! filesystem of `TMPDIR` (set it to put the benchmark on the disk you care about).

use concord_core::StorageOp;
use concord_wal::{SyncMode, Wal, WalOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// A Raft-log-like write: 20-digit index key, 100-byte entry. Keys wrap so the state stays bounded.
fn op(i: u64) -> StorageOp {
    StorageOp::Put { key: format!("raft/log/{:020}", i % 4096), value: vec![(i % 251) as u8; 100] }
}

fn batch(next: &mut u64, ops: usize) -> Vec<StorageOp> {
    (0..ops)
        .map(|_| {
            *next += 1;
            op(*next)
        })
        .collect()
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (mode, sync) in [("fsync", SyncMode::Fsync), ("nofsync", SyncMode::None)] {
        for ops in [1usize, 16, 256] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _, _) =
                Wal::open(dir.path(), WalOptions { sync, ..WalOptions::default() }).unwrap();
            let mut next = 0;
            group.throughput(Throughput::Elements(ops as u64));
            group.bench_with_input(BenchmarkId::new(mode, ops), &ops, |b, &ops| {
                b.iter(|| {
                    wal.append(&batch(&mut next, ops)).unwrap();
                    wal.sync().unwrap();
                })
            });
        }
    }
    group.finish();
}

/// Many batches of 16 ops, one sync: what a server gains by syncing once per round of inputs.
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit_16_ops_per_batch");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for batches_per_sync in [1usize, 8, 64] {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let mut next = 0;
        group.throughput(Throughput::Elements((batches_per_sync * 16) as u64));
        group.bench_with_input(
            BenchmarkId::new("batches_per_sync", batches_per_sync),
            &batches_per_sync,
            |b, &n| {
                b.iter(|| {
                    for _ in 0..n {
                        wal.append(&batch(&mut next, 16)).unwrap();
                    }
                    wal.sync().unwrap();
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append_sync, group_commit);
criterion_main!(benches);

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use concord_core::{Durable, StorageOp};
use concord_wal::{SyncMode, WalOptions};
use std::path::{Path, PathBuf};

pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> StorageOp {
    StorageOp::Put { key: key.into(), value: value.into() }
}

pub fn delete(key: impl Into<String>) -> StorageOp {
    StorageOp::Delete { key: key.into() }
}

pub fn delete_range(start: impl Into<String>, end: impl Into<String>) -> StorageOp {
    StorageOp::DeleteRange { start: start.into(), end: end.into() }
}

/// Options for tests: real fsyncs, checkpoints only when asked.
pub fn no_checkpoints() -> WalOptions {
    WalOptions { checkpoint_bytes: u64::MAX, ..WalOptions::default() }
}

/// Tiny segments and frequent checkpoints, so that rolling and compaction happen constantly.
pub fn tiny(sync: SyncMode) -> WalOptions {
    WalOptions { segment_bytes: 256, checkpoint_bytes: 1024, sync }
}

pub fn apply_all<'a>(mut state: Durable, ops: impl IntoIterator<Item = &'a StorageOp>) -> Durable {
    for op in ops {
        state.apply(op);
    }
    state
}

pub fn segment_file(dir: &Path, seq: u64) -> PathBuf {
    concord_wal::layout::segment_path(&dir.join(concord_wal::layout::WAL_SUBDIR), seq)
}

/// Copy a data directory (one level of subdirectories is enough), without its lock file.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != concord_wal::layout::LOCK_FILE {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

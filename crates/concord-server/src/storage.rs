//! The node's disk: where `Persist` effects go and what `Sync` waits for.
//!
//! The driver sees storage through the small [`Disk`] trait – append a batch of writes (buffered,
//! not yet durable), then sync (durable once it returns) – so the event loop reads the same whether
//! the disk is the real write-ahead log ([`concord_wal::Wal`], opened by [`open_wal`]) or an
//! in-memory disk in unit tests.
//!
//! ## Group commit
//! A `Sync` effect does not cost one `fdatasync`. The driver hands each batch's writes to a WAL
//! thread and keeps stepping Raft; the thread appends every batch it finds queued and syncs once
//! for all of them, and only then are the held messages and replies that depend on it released
//! (see [`crate::driver`]). Under load, one `fdatasync` thus covers many client writes, and the
//! next group forms while the current sync is in progress.
//!
//! ## Failure
//! A full disk is not a failure: the WAL cuts a short write back off and keeps the records in
//! memory ([`DiskError::NoSpace`]); the driver's WAL thread retries the sync with back-off, holds
//! everything that depends on it meanwhile, and marks the disk full so that the front doors refuse
//! new writes (see [`crate::disk_space`]). Any other failed append or sync is fatal for the node:
//! after a failed `fdatasync` the kernel may have dropped the dirty pages, so the only trustworthy
//! state is what a restart reads back. The driver stops with the error; nothing that depended on
//! the failed sync was sent.

use crate::config::WalSettings;
use crate::Error;
use concord_core::{Durable, StorageOp};
use std::path::Path;
use std::time::Duration;

/// Why a disk did not take a write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// The disk is full; nothing was lost and the same call may be retried later.
    #[error("{0}")]
    NoSpace(String),
    /// Anything else: the node must stop.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for DiskError {
    fn from(why: String) -> DiskError {
        DiskError::Failed(why)
    }
}

impl From<concord_wal::WalError> for DiskError {
    fn from(e: concord_wal::WalError) -> DiskError {
        if e.is_no_space() {
            DiskError::NoSpace(e.to_string())
        } else {
            DiskError::Failed(e.to_string())
        }
    }
}

/// A disk for Raft's durable state.
pub trait Disk: Send + 'static {
    /// Buffer a batch of writes; they are durable only after the next successful [`Disk::sync`].
    fn append(&mut self, ops: &[StorageOp]) -> Result<(), DiskError>;
    /// Make every appended write durable. Returns how long it took. After
    /// [`DiskError::NoSpace`], every earlier append is still pending and the sync may be retried.
    fn sync(&mut self) -> Result<Duration, DiskError>;
}

impl Disk for concord_wal::Wal {
    fn append(&mut self, ops: &[StorageOp]) -> Result<(), DiskError> {
        Ok(concord_wal::Wal::append(self, ops)?)
    }

    fn sync(&mut self) -> Result<Duration, DiskError> {
        Ok(concord_wal::Wal::sync(self)?)
    }
}

/// Open the write-ahead log in `dir`: the disk, and the durable state to boot Raft from.
pub fn open_wal(dir: &Path, settings: &WalSettings) -> Result<(Box<dyn Disk>, Durable), Error> {
    let opts = concord_wal::WalOptions {
        sync: if settings.fsync { concord_wal::SyncMode::Fsync } else { concord_wal::SyncMode::None },
        ..concord_wal::WalOptions::default()
    };
    let (wal, durable, recovery) =
        concord_wal::Wal::open(dir, opts).map_err(|e| Error::Storage(e.to_string()))?;
    // Say what the numbers count: the WAL holds the protocol's durable records (Raft's log
    // entries, its vote and term, snapshot records; Dynamo's objects), not the database's keys,
    // which live in the state database – "N keys recovered" read as the latter.
    tracing::info!(
        "opened the WAL in {}: {} durable protocol records recovered (log entries, vote, snapshot records – \
         not the database's keys) by replaying {} WAL records in {} segments (checkpoint: {}) in {:?}",
        dir.display(),
        recovery.keys,
        recovery.records_replayed,
        recovery.segments_replayed.len(),
        if recovery.checkpoint.is_some() { "yes" } else { "no" },
        recovery.duration
    );
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!("the WAL ended in a torn write (a crash mid-append), cut off: {torn:?}");
    }
    Ok((Box::new(wal), durable))
}

/// A disk in memory: appends are "durable" once synced, in this value only. For unit tests of the
/// driver; never used by a running node.
#[derive(Default)]
pub struct MemoryDisk {
    pub synced: Durable,
    pending: Vec<StorageOp>,
    pub syncs: u64,
}

impl Disk for MemoryDisk {
    fn append(&mut self, ops: &[StorageOp]) -> Result<(), DiskError> {
        self.pending.extend_from_slice(ops);
        Ok(())
    }

    fn sync(&mut self) -> Result<Duration, DiskError> {
        for op in self.pending.drain(..) {
            self.synced.apply_owned(op);
        }
        self.syncs += 1;
        Ok(Duration::ZERO)
    }
}

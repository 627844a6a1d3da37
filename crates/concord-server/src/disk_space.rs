//! A full disk refuses writes and keeps serving reads; it does not stop the node.
//!
//! Two signals say "the data disk is full", and either makes the front doors refuse writes with
//! [`crate::ClientError::NoSpace`] (HTTP 507 Insufficient Storage, RESP `-MISCONF`), while reads
//! go on:
//!
//! * **the reserve** (etcd's NOSPACE alarm, earlier): every second, `statvfs` on the data
//!   directory; when the space left to unprivileged writers falls below `[wal] reserve_mb`
//!   (default 64 MiB), new writes are refused *before* they are proposed. The reserve leaves room
//!   for what must still be written when clients stop – Raft's votes and terms, the entries
//!   already in flight, a snapshot – and for the state database, which lives on the same disk.
//! * **the WAL itself** ([`concord_wal::WalError::NoSpace`]): if the disk fills anyway (a reserve
//!   of 0, another process writing), the WAL cuts the short write back off, keeps the records in
//!   memory, and the driver's WAL thread retries the sync with back-off; nothing that waited for it
//!   is released meanwhile, so nothing unsynced is acknowledged. The driver marks the disk full
//!   here until a sync succeeds.
//!
//! When space returns, the next check (at most a second later) or the next successful sync clears
//! the refusal. Each change is logged once, and `concord_disk_writes_refused` (a gauge, 1 while
//! writes are refused) and `concord_disk_free_bytes` show it in `/metrics`.

use crate::metrics::Metrics;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the free space is measured.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The default `[wal] reserve_mb`.
pub const DEFAULT_RESERVE_MB: u64 = 64;

/// The data disk's state, shared by the driver, the space checker and the front doors.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve_bytes: u64,
    /// Space left below the reserve at the last check.
    below_reserve: AtomicBool,
    /// The WAL's last sync failed for want of space (cleared by the next successful one).
    wal_full: AtomicBool,
    free_bytes: AtomicU64,
}

impl DiskSpace {
    pub fn new(dir: &Path, reserve_bytes: u64) -> DiskSpace {
        DiskSpace {
            dir: dir.to_path_buf(),
            reserve_bytes,
            below_reserve: AtomicBool::new(false),
            wal_full: AtomicBool::new(false),
            free_bytes: AtomicU64::new(u64::MAX),
        }
    }

    /// A disk that is never full (nodes on an in-memory disk).
    pub fn unlimited() -> DiskSpace {
        DiskSpace::new(Path::new("."), 0)
    }

    /// Why a write must be refused now, if it must.
    pub fn refusal(&self) -> Option<String> {
        let free = self.free_bytes.load(Ordering::Relaxed);
        if self.wal_full.load(Ordering::Relaxed) {
            Some(format!(
                "no space left on the data disk ({}): the write-ahead log cannot be written; writes are refused \
                 and reads still served until disk space is freed",
                self.dir.display()
            ))
        } else if self.below_reserve.load(Ordering::Relaxed) {
            Some(format!(
                "the data disk ({}) is nearly full: {} MiB free, below the reserve of {} MiB ([wal] reserve_mb); \
                 writes are refused and reads still served until disk space is freed",
                self.dir.display(),
                free >> 20,
                self.reserve_bytes >> 20
            ))
        } else {
            None
        }
    }

    /// Measure the free space now and update the reserve's verdict. Returns the free bytes.
    pub fn check(&self) -> std::io::Result<u64> {
        let stat = nix::sys::statvfs::statvfs(self.dir.as_path()).map_err(std::io::Error::from)?;
        // What an unprivileged writer may still use (root's reserved blocks do not count).
        let free = (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64);
        self.free_bytes.store(free, Ordering::Relaxed);
        let below = free < self.reserve_bytes;
        if self.below_reserve.swap(below, Ordering::Relaxed) != below {
            if below {
                tracing::error!("{}", self.refusal().unwrap_or_default());
            } else {
                tracing::info!(
                    "the data disk ({}) has {} MiB free again: writes are accepted",
                    self.dir.display(),
                    free >> 20
                );
            }
        }
        Ok(free)
    }

    /// The WAL found the disk full (`true`), or synced again (`false`).
    pub fn set_wal_full(&self, full: bool) {
        if self.wal_full.swap(full, Ordering::Relaxed) != full {
            if full {
                tracing::error!("{}", self.refusal().unwrap_or_default());
            } else {
                tracing::info!("the write-ahead log syncs again: writes are accepted");
            }
        }
    }

    /// Check every [`CHECK_INTERVAL`] until shutdown, and publish the state as metrics.
    pub async fn watch(self: Arc<Self>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
        let mut warned = false;
        loop {
            match self.check() {
                Ok(free) => {
                    metrics.disk_free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
                    warned = false;
                }
                Err(e) if !warned => {
                    tracing::warn!("cannot measure the free space of {}: {e}", self.dir.display());
                    warned = true;
                }
                Err(_) => {}
            }
            metrics.disk_writes_refused.set(i64::from(self.refusal().is_some()));
            tokio::select! {
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_writes_and_the_wal_flag_does_too() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path(), 0);
        space.check().unwrap();
        assert_eq!(space.refusal(), None);
        space.set_wal_full(true);
        assert!(space.refusal().unwrap().contains("no space left"), "{:?}", space.refusal());
        space.set_wal_full(false);
        assert_eq!(space.refusal(), None);

        let huge = DiskSpace::new(dir.path(), u64::MAX);
        huge.check().unwrap();
        let why = huge.refusal().expect("below the reserve");
        assert!(why.contains("reserve") && why.contains("reads still served"), "{why}");
    }
}

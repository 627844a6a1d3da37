//! The write path: append batches, sync them, roll segments, write checkpoints.
//!
//! ## A full disk
//! A write that fails with `ENOSPC` (or a quota) is not fatal and leaves no damage: the part of
//! the buffer the kernel did take is cut back off the segment (`set_len` to the last record
//! boundary written), the records stay buffered in memory, and [`Wal::sync`] returns
//! [`WalError::NoSpace`] – try it again later. Nothing of what failed was acknowledged, so if the
//! process dies before space returns, recovery sees the log as it was at the last good write (at
//! worst, if it died between the short write and the cut, a torn tail of never-synced bytes).
//! A roll or a checkpoint that finds the disk full is postponed the same way. A failed `fdatasync`
//! is different and still poisons the log, whatever its error code: the kernel may have dropped
//! the dirty pages, so only a restart knows what is on disk.

use crate::error::WalError;
use crate::format::{
    self, SyncedSegment, MAX_RECORD_PAYLOAD_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::layout;
use crate::recovery::{self, Recovery};
use concord_core::{Durable, StorageOp};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether [`Wal::sync`] really asks the disk to persist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` the segment on every sync, `fsync` directories after creating, renaming or
    /// deleting files. Survives power loss.
    #[default]
    Fsync,
    /// Write to the OS but never wait for the disk ("fsync off"). Survives a process crash, not a
    /// power loss or kernel crash. For benchmarks only.
    None,
}

/// How the log is cut into files and when it is compacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is closed and a new one started when the next record would take it past this size
    /// (a segment always holds at least one record, so one huge batch can exceed it). Default 64 MiB.
    pub segment_bytes: u64,
    /// Record bytes appended since the last checkpoint that make the next [`Wal::sync`] write a new
    /// checkpoint. Default 256 MiB.
    pub checkpoint_bytes: u64,
    pub sync: SyncMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 64 << 20, checkpoint_bytes: 256 << 20, sync: SyncMode::Fsync }
    }
}

/// What the last checkpoint written by this process cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint holds the state after every record of segments `1..=seq`.
    pub seq: u64,
    pub path: PathBuf,
    pub entries: usize,
    pub bytes: u64,
    /// From the start of the checkpoint to the deletion of the segments it replaced.
    pub duration: Duration,
}

/// Counters for metrics. Cheap to take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Segment files on disk now (including the one being written).
    pub segments: u64,
    /// The sequence number of the segment being written.
    pub current_segment: u64,
    /// Bytes in all live segment files, including appended bytes not yet written to the file.
    pub wal_bytes: u64,
    /// Record bytes appended since the last checkpoint (what `checkpoint_bytes` is compared with).
    pub bytes_since_checkpoint: u64,
    /// Bytes appended but not yet synced.
    pub pending_bytes: u64,
    /// Records (batches) and ops appended since open.
    pub records_appended: u64,
    pub ops_appended: u64,
    /// Record bytes appended since open.
    pub bytes_appended: u64,
    /// Syncs that had something to make durable, and the time they took in total.
    pub syncs: u64,
    /// `fsync`/`fdatasync` calls this `Wal` made since open (files and directories, the ones at
    /// open included). In steady state one per sync; rolling a segment and checkpoints add a few.
    pub fsyncs: u64,
    pub sync_time_total: Duration,
    pub last_sync_time: Option<Duration>,
    /// Checkpoints written since open, and the newest one on disk (`None` before the first).
    pub checkpoints_written: u64,
    pub checkpoint_seq: Option<u64>,
    pub last_checkpoint: Option<CheckpointStats>,
    /// Size of the in-memory mirror of the durable state.
    pub state_keys: usize,
    pub state_bytes: usize,
}

/// Writes buffered in memory are handed to the OS once they reach this size, so that a long run of
/// appends without a sync does not hold unbounded memory. (Durability still waits for `sync`.)
const WRITE_BUFFER_FLUSH_BYTES: usize = 1 << 20;

/// The segment being appended to.
struct ActiveSegment {
    seq: u64,
    path: PathBuf,
    file: File,
    /// Bytes in the file (header included), not counting the write buffer.
    written: u64,
}

/// A node's write-ahead log: the real disk behind `StorageOp` effects. See the crate docs.
pub struct Wal {
    dir: PathBuf,
    wal_dir: PathBuf,
    opts: WalOptions,
    /// Held for the life of the `Wal`: the OS releases the lock when the file is closed.
    _lock: File,
    /// Everything appended so far, applied: after a sync, exactly the durable state.
    mirror: Durable,
    segment: ActiveSegment,
    /// Records appended but not yet written to the segment file.
    buffer: Vec<u8>,
    /// Bytes written to the segment file since its last `fdatasync`.
    unsynced_written: u64,
    /// A file was created, renamed or deleted since the directories were last fsynced.
    dirs_dirty: bool,
    /// The oldest live segment; segments `first_segment..=segment.seq` are on disk.
    first_segment: u64,
    /// Bytes in the live segments before the current one.
    closed_segments_bytes: u64,
    /// The live segments before the current one, with their final lengths (for the watermark).
    sealed: Vec<SyncedSegment>,
    /// `wal/WATERMARK`, rewritten in place after every sync (see [`crate::recovery`]).
    watermark: File,
    /// Bytes of the watermark's current content.
    watermark_len: u64,
    checkpoint_seq: Option<u64>,
    stats: WalStats,
    /// Set when a write or sync failed: after a failed fsync the page cache cannot be trusted, so
    /// the only safe way on is a restart that reads what is really on disk.
    poisoned: Option<String>,
    /// A checkpoint found the disk full: do not try again before this instant.
    checkpoint_retry_at: Option<Instant>,
    /// Tests: while set, every segment write stores at most this many bytes, then fails with
    /// `ENOSPC` – a disk that fills up mid-write.
    #[cfg(test)]
    fail_writes_after: Option<usize>,
}

/// How long a checkpoint that found the disk full waits before the next try.
const CHECKPOINT_RETRY_AFTER_NO_SPACE: Duration = Duration::from_secs(10);

impl Wal {
    /// Open (or create) the data directory, take an exclusive lock on it (a second process on the
    /// same directory gets [`WalError::Locked`]), and recover: the newest valid checkpoint plus the
    /// segments after it. Returns the durable state to boot from and a report of what was found.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Durable, Recovery), WalError> {
        let dir = dir.to_path_buf();
        match std::fs::metadata(&dir) {
            Ok(meta) if !meta.is_dir() => return Err(WalError::NotADirectory { path: dir }),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir).map_err(|e| dir_error("create", &dir, e))?;
            }
            Err(e) => return Err(WalError::io("inspect", &dir, e)),
        }
        let lock = lock_dir(&dir)?;
        let wal_dir = dir.join(layout::WAL_SUBDIR);
        if !wal_dir.is_dir() {
            std::fs::create_dir(&wal_dir).map_err(|e| dir_error("create", &wal_dir, e))?;
            if opts.sync == SyncMode::Fsync {
                fsync_dir(&dir)?;
            }
        }

        let found = recovery::recover(&dir, &wal_dir, opts.sync)?;
        let mut stats = WalStats { checkpoint_seq: found.checkpoint_seq, ..WalStats::default() };
        let (segment, first_segment, closed_segments_bytes, mut dirs_dirty) = match found.last_segment {
            Some((seq, len)) => {
                let path = layout::segment_path(&wal_dir, seq);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| WalError::io("open for appending", &path, e))?;
                let first = found.first_segment.unwrap_or(seq);
                (ActiveSegment { seq, path, file, written: len }, first, found.segments_bytes - len, false)
            }
            None => {
                let seq = found.checkpoint_seq.unwrap_or(0) + 1;
                (create_segment(&wal_dir, seq)?, seq, 0, true)
            }
        };
        let watermark_path = wal_dir.join(layout::WATERMARK_FILE);
        let watermark_existed = watermark_path.exists();
        let watermark = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&watermark_path)
            .map_err(|e| WalError::io("open", &watermark_path, e))?;
        if opts.sync == SyncMode::Fsync {
            // What recovery replayed may still sit in the page cache only (the process died, the
            // machine did not): make it durable before the watermark claims it.
            segment.file.sync_data().map_err(|e| WalError::io("fdatasync", &segment.path, e))?;
            stats.fsyncs += 1;
            if dirs_dirty || !watermark_existed {
                fsync_dir(&wal_dir)?;
                stats.fsyncs += 1;
                dirs_dirty = false;
            }
        }
        stats.bytes_since_checkpoint = found.record_bytes;
        let state = found.state.clone();
        let wal = Wal {
            dir,
            wal_dir,
            opts,
            _lock: lock,
            mirror: found.state,
            segment,
            buffer: Vec::new(),
            unsynced_written: 0,
            dirs_dirty,
            first_segment,
            closed_segments_bytes,
            sealed: found.sealed,
            watermark,
            watermark_len: 0,
            checkpoint_seq: found.checkpoint_seq,
            stats,
            poisoned: None,
            checkpoint_retry_at: None,
            #[cfg(test)]
            fail_writes_after: None,
        };
        let mut wal = wal;
        let current = wal.current_mark();
        wal.write_watermark(Some(current), true)?;
        Ok((wal, state, found.report))
    }

    /// Append one batch of writes as one checksummed record: on recovery the batch is applied
    /// entirely or not at all. Buffered: NOT durable until [`Wal::sync`]. An empty batch is a
    /// no-op.
    pub fn append(&mut self, ops: &[StorageOp]) -> Result<(), WalError> {
        self.check_poisoned()?;
        if ops.is_empty() {
            return Ok(());
        }
        let payload = format::payload_len(ops);
        if payload > MAX_RECORD_PAYLOAD_BYTES {
            return Err(WalError::RecordTooLarge { bytes: payload, max: MAX_RECORD_PAYLOAD_BYTES });
        }
        let record_bytes = RECORD_HEADER_BYTES + payload;
        let segment_len = self.segment.written + self.buffer.len() as u64;
        if segment_len > SEGMENT_HEADER_BYTES && segment_len + record_bytes > self.opts.segment_bytes {
            match self.roll() {
                Ok(()) => {}
                // A full disk: the record goes on the current segment, which may then exceed
                // `segment_bytes`; the next sync reports the full disk.
                Err(e) if e.is_no_space() => {}
                Err(e) => return Err(e),
            }
        }
        format::encode_record(ops, &mut self.buffer);
        for op in ops {
            self.mirror.apply(op);
        }
        self.stats.records_appended += 1;
        self.stats.ops_appended += ops.len() as u64;
        self.stats.bytes_appended += record_bytes;
        self.stats.bytes_since_checkpoint += record_bytes;
        if self.buffer.len() >= WRITE_BUFFER_FLUSH_BYTES {
            match self.write_buffer() {
                Ok(()) => {}
                Err(e) if e.is_no_space() => {} // kept in memory; the sync reports it
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Make every earlier append durable: write the buffer, `fdatasync` the segment, and `fsync`
    /// the directories if files were created or removed since the last sync. Group commit is the
    /// caller appending many batches and syncing once.
    ///
    /// When the bytes appended since the last checkpoint reach `checkpoint_bytes`, the sync also
    /// writes a checkpoint (see [`Wal::checkpoint`]). Returns how long the whole call took.
    pub fn sync(&mut self) -> Result<Duration, WalError> {
        let start = Instant::now();
        self.check_poisoned()?;
        self.sync_segment()?;
        let retry_due = self.checkpoint_retry_at.is_none_or(|at| Instant::now() >= at);
        if self.stats.bytes_since_checkpoint >= self.opts.checkpoint_bytes && retry_due {
            match self.write_checkpoint() {
                Ok(()) => self.checkpoint_retry_at = None,
                // The appends are durable; only the compaction waits for space.
                Err(e) if e.is_no_space() => {
                    tracing::warn!(
                        "checkpoint postponed by {CHECKPOINT_RETRY_AFTER_NO_SPACE:?}: {e}; the log keeps growing until it can be written"
                    );
                    self.checkpoint_retry_at = Some(Instant::now() + CHECKPOINT_RETRY_AFTER_NO_SPACE);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(start.elapsed())
    }

    /// Sync, then write the whole state as a checkpoint and delete the segments it replaces.
    ///
    /// Steps, each safe to crash after: (1) start a new segment `n + 1`; (2) write
    /// `checkpoint-n.bin.tmp`, fsync it, rename it to `checkpoint-n.bin`, fsync the directory;
    /// (3) delete segments `..=n` and the previous checkpoint, fsync the directories. Recovery
    /// reads the newest valid checkpoint and ignores (then deletes) segments it already covers.
    pub fn checkpoint(&mut self) -> Result<Duration, WalError> {
        let start = Instant::now();
        self.check_poisoned()?;
        self.sync_segment()?;
        self.write_checkpoint()?;
        Ok(start.elapsed())
    }

    pub fn stats(&self) -> WalStats {
        let mut stats = self.stats.clone();
        stats.segments = self.segment.seq - self.first_segment + 1;
        stats.current_segment = self.segment.seq;
        stats.wal_bytes = self.closed_segments_bytes + self.segment.written + self.buffer.len() as u64;
        stats.pending_bytes = self.unsynced_written + self.buffer.len() as u64;
        stats.checkpoint_seq = self.checkpoint_seq;
        stats.state_keys = self.mirror.len();
        stats.state_bytes = self.mirror.bytes();
        stats
    }

    /// The state after every append so far (durable once synced).
    pub fn state(&self) -> &Durable {
        &self.mirror
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(reason) => Err(WalError::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Record a failure that leaves the on-disk state unknown, and return it. (A poisoned log is
    /// never reported as [`WalError::NoSpace`], which would invite a retry.)
    fn poison(&mut self, error: WalError) -> WalError {
        let error = match error {
            WalError::NoSpace { action, path, source } => WalError::Io { action, path, source },
            other => other,
        };
        self.poisoned = Some(error.to_string());
        error
    }

    /// Write the whole buffer to the segment file.
    fn write_segment_file(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(keep) = self.fail_writes_after {
            let keep = keep.min(self.buffer.len());
            self.segment.file.write_all(&self.buffer[..keep])?;
            return Err(std::io::Error::from(ErrorKind::StorageFull));
        }
        self.segment.file.write_all(&self.buffer)
    }

    /// Hand the buffered records to the OS (no durability).
    fn write_buffer(&mut self) -> Result<(), WalError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write_segment_file() {
            let error = WalError::io("write", &self.segment.path, e);
            if error.is_no_space() {
                // The kernel may have taken part of the buffer: cut the file back to the last
                // record boundary, so it never holds half a record that reads as damage later.
                // The buffer is kept for the next try.
                if let Err(e) = self.segment.file.set_len(self.segment.written) {
                    let cut = WalError::io("cut a short write off", &self.segment.path, e);
                    return Err(self.poison(cut));
                }
                return Err(error);
            }
            return Err(self.poison(error));
        }
        self.segment.written += self.buffer.len() as u64;
        self.unsynced_written += self.buffer.len() as u64;
        self.buffer.clear();
        if self.buffer.capacity() > 4 * WRITE_BUFFER_FLUSH_BYTES {
            self.buffer = Vec::new(); // one huge batch should not pin its memory forever
        }
        Ok(())
    }

    /// Write the buffer and make the current segment and the directories durable.
    fn sync_segment(&mut self) -> Result<(), WalError> {
        self.write_buffer()?;
        if self.unsynced_written == 0 && !self.dirs_dirty {
            return Ok(());
        }
        let start = Instant::now();
        if self.opts.sync == SyncMode::Fsync {
            if let Err(e) = self.segment.file.sync_data() {
                let error = WalError::io("fdatasync", &self.segment.path, e);
                return Err(self.poison(error));
            }
            self.stats.fsyncs += 1;
            if self.dirs_dirty {
                self.fsync_dirs()?;
            }
        }
        self.dirs_dirty = false;
        self.unsynced_written = 0;
        // Only now, after the fdatasync returned: the watermark never claims more than is durable.
        let current = self.current_mark();
        self.write_watermark(Some(current), false)?;
        let took = start.elapsed();
        self.stats.syncs += 1;
        self.stats.sync_time_total += took;
        self.stats.last_sync_time = Some(took);
        Ok(())
    }

    /// The current segment as the watermark records it after a sync: everything written.
    fn current_mark(&self) -> SyncedSegment {
        SyncedSegment { seq: self.segment.seq, synced_len: self.segment.written, sealed: false }
    }

    /// Rewrite the watermark in place: the sealed segments, then `current`. `fsync` it only when
    /// asked (a seal, or open): after an ordinary sync a stale watermark is still a true one.
    fn write_watermark(&mut self, current: Option<SyncedSegment>, fsync: bool) -> Result<(), WalError> {
        let marks: Vec<SyncedSegment> = self.sealed.iter().copied().chain(current).collect();
        let bytes = format::encode_watermark(&marks);
        let path = || self.wal_dir.join(layout::WATERMARK_FILE);
        if let Err(e) = self.watermark.write_all_at(&bytes, 0) {
            let error = WalError::io("write", path(), e);
            return Err(self.poison(error));
        }
        if (bytes.len() as u64) < self.watermark_len {
            // Not needed for correctness (recovery ignores bytes after the checksum): tidiness.
            if let Err(e) = self.watermark.set_len(bytes.len() as u64) {
                let error = WalError::io("truncate", path(), e);
                return Err(self.poison(error));
            }
        }
        self.watermark_len = bytes.len() as u64;
        if fsync && self.opts.sync == SyncMode::Fsync {
            if let Err(e) = self.watermark.sync_data() {
                let error = WalError::io("fdatasync", path(), e);
                return Err(self.poison(error));
            }
            self.stats.fsyncs += 1;
        }
        Ok(())
    }

    fn fsync_dirs(&mut self) -> Result<(), WalError> {
        self.stats.fsyncs += 2;
        match fsync_dir(&self.wal_dir).and_then(|()| fsync_dir(&self.dir)) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Close the current segment (complete and synced, so that only the last segment can ever
    /// have a torn tail) and start the next.
    fn roll(&mut self) -> Result<(), WalError> {
        self.write_buffer()?;
        if self.opts.sync == SyncMode::Fsync {
            if let Err(e) = self.segment.file.sync_data() {
                let error = WalError::io("fdatasync", &self.segment.path, e);
                return Err(self.poison(error));
            }
            self.stats.fsyncs += 1;
            if self.dirs_dirty {
                // The closed segment's own creation must be durable before its successor exists.
                self.fsync_dirs()?;
                self.dirs_dirty = false;
            }
        }
        self.unsynced_written = 0;
        // Seal it: its final length is durable in the watermark before the next segment exists, so
        // recovery can tell a cut anywhere in it – even at a record boundary – from a torn write.
        self.sealed.push(SyncedSegment {
            seq: self.segment.seq,
            synced_len: self.segment.written,
            sealed: true,
        });
        self.write_watermark(None, true)?;
        let next = match create_segment(&self.wal_dir, self.segment.seq + 1) {
            Ok(next) => next,
            // Nothing changed: the current segment stays the one appended to.
            Err(e) if e.is_no_space() => return Err(e),
            Err(e) => return Err(self.poison(e)),
        };
        self.closed_segments_bytes += self.segment.written;
        // The new header is not synced yet: a crash can leave it torn, which recovery accepts for
        // the last segment. The next sync makes it (and its directory entry) durable.
        self.unsynced_written = next.written;
        self.segment = next;
        self.dirs_dirty = true;
        Ok(())
    }

    /// Everything is synced: write the mirror as checkpoint `n` (the current segment), move on to
    /// segment `n + 1`, then delete what the checkpoint replaces.
    fn write_checkpoint(&mut self) -> Result<(), WalError> {
        let start = Instant::now();
        let covered = self.segment.seq;
        self.roll()?;
        let fsync = self.opts.sync == SyncMode::Fsync;
        let path = layout::checkpoint_path(&self.dir, covered);
        let tmp = layout::tmp_path(&path);
        let written = (|| -> Result<u64, WalError> {
            let file = File::create(&tmp).map_err(|e| WalError::io("create", &tmp, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let bytes = format::write_checkpoint(&mut out, covered, &self.mirror)
                .map_err(|e| WalError::io("write", &tmp, e))?;
            let file = out.into_inner().map_err(|e| WalError::io("write", &tmp, e.into_error()))?;
            if fsync {
                file.sync_all().map_err(|e| WalError::io("fsync", &tmp, e))?;
                self.stats.fsyncs += 2; // the file, then its directory below
            }
            std::fs::rename(&tmp, &path).map_err(|e| WalError::io("rename into place", &tmp, e))?;
            if fsync {
                fsync_dir(&self.dir)?;
            }
            Ok(bytes)
        })();
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(e) if e.is_no_space() => {
                // The segments are intact and synced; only the compaction failed.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            Err(e) => return Err(self.poison(e)),
        };

        // The checkpoint is durable: what it replaces may go.
        let previous = self.checkpoint_seq.replace(covered);
        let mut doomed: Vec<PathBuf> =
            (self.first_segment..=covered).map(|seq| layout::segment_path(&self.wal_dir, seq)).collect();
        if let Some(old) = previous {
            doomed.push(layout::checkpoint_path(&self.dir, old));
        }
        for file in doomed {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.poison(WalError::io("delete", &file, e))),
            }
        }
        self.first_segment = covered + 1;
        self.sealed.retain(|s| s.seq > covered);
        self.closed_segments_bytes = 0;
        self.dirs_dirty = true;
        // Persist the deletions and the new segment's header now rather than at the next sync, so
        // that the checkpoint's cost is paid here.
        self.sync_segment()?;
        self.stats.bytes_since_checkpoint = 0;
        self.stats.checkpoints_written += 1;
        self.stats.last_checkpoint = Some(CheckpointStats {
            seq: covered,
            path,
            entries: self.mirror.len(),
            bytes,
            duration: start.elapsed(),
        });
        Ok(())
    }
}

/// Create segment `seq` and write its header (not synced).
fn create_segment(wal_dir: &Path, seq: u64) -> Result<ActiveSegment, WalError> {
    let path = layout::segment_path(wal_dir, seq);
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("create", &path, e))?;
    if let Err(e) = file.write_all(&format::segment_header(seq)) {
        // Leave no headerless file behind (the next try creates it anew).
        let _ = std::fs::remove_file(&path);
        return Err(WalError::io("write", &path, e));
    }
    Ok(ActiveSegment { seq, path, file, written: SEGMENT_HEADER_BYTES })
}

/// `fsync` a directory, so that files created, renamed or deleted in it stay so after a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| WalError::io("fsync directory", dir, e))
}

fn dir_error(action: &'static str, path: &Path, e: std::io::Error) -> WalError {
    if e.kind() == ErrorKind::PermissionDenied || e.kind() == ErrorKind::ReadOnlyFilesystem {
        WalError::NotWritable { path: path.to_path_buf(), source: e }
    } else {
        WalError::io(action, path, e)
    }
}

/// Take the exclusive lock on `dir/LOCK` and write our process id into it (for the error message
/// the next process will see).
fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let path = dir.join(layout::LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| dir_error("open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                text => format!(" ({text})"),
            };
            return Err(WalError::Locked { dir: dir.to_path_buf(), lock: path, holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(WalError::io("lock", &path, e)),
    }
    let note = format!("pid {}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(note.as_bytes()))
        .map_err(|e| dir_error("write the lock file", &path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> StorageOp {
        StorageOp::Put { key: key.into(), value: value.as_bytes().to_vec() }
    }

    fn segment_len(wal: &Wal) -> u64 {
        std::fs::metadata(&wal.segment.path).unwrap().len()
    }

    /// A disk that fills up mid-write: the sync fails with `NoSpace` and leaves the file as it was,
    /// the log is not poisoned, and once space is back the same sync succeeds with every write.
    #[test]
    fn a_full_disk_fails_the_sync_without_damage_and_the_retry_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.append(&[put("a", "1")]).unwrap();
        wal.sync().unwrap();
        let good = segment_len(&wal);

        wal.fail_writes_after = Some(5); // half a record header reaches the file, then ENOSPC
        wal.append(&[put("b", "2")]).unwrap();
        let err = wal.sync().unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert!(err.to_string().contains("free disk space"), "{err}");
        assert_eq!(segment_len(&wal), good, "the short write was cut back off");
        assert!(wal.sync().unwrap_err().is_no_space(), "still full: still refused, not poisoned");
        wal.append(&[put("c", "3")]).unwrap();

        wal.fail_writes_after = None; // space is back
        wal.sync().unwrap();
        drop(wal);
        let (_, state, recovery) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(recovery.torn_tail, None);
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(state.get(k), Some(v.as_bytes()), "{k}");
        }
    }

    /// A node that dies while its disk is full loses only what was never acknowledged, and its log
    /// reads back clean.
    #[test]
    fn a_crash_while_the_disk_is_full_recovers_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.append(&[put("a", "1")]).unwrap();
        wal.sync().unwrap();
        wal.fail_writes_after = Some(7);
        wal.append(&[put("b", "2")]).unwrap();
        assert!(wal.sync().unwrap_err().is_no_space());
        drop(wal);
        let (_, state, recovery) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(recovery.torn_tail, None, "no half record was left behind");
        assert_eq!(state.get("a"), Some(&b"1"[..]));
        assert_eq!(state.get("b"), None);
    }

    /// Appends beyond the write buffer and segment rolls keep going on a full disk (in memory),
    /// so the caller sees one kind of failure – the sync's – and can retry it.
    #[test]
    fn appends_never_fail_for_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { segment_bytes: 4096, ..WalOptions::default() };
        let (mut wal, _, _) = Wal::open(dir.path(), opts.clone()).unwrap();
        wal.fail_writes_after = Some(0);
        let big = "x".repeat(300_000);
        for i in 0..8 {
            wal.append(&[put(&format!("k{i}"), &big)]).unwrap();
        }
        assert!(wal.sync().unwrap_err().is_no_space());
        wal.fail_writes_after = None;
        wal.sync().unwrap();
        drop(wal);
        let (_, state, _) = Wal::open(dir.path(), opts).unwrap();
        assert_eq!(state.len(), 8);
    }
}

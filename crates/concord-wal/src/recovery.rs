//! Reading a data directory back: newest valid checkpoint + replay of the segments after it.
//!
//! ## Torn or corrupt?
//! A record that fails its checksum (or is cut short) is either **torn** – the process or machine
//! died while it was being written, so it was never synced and never acknowledged: safe to drop – or
//! **corrupt** – it was synced and later damaged: dropping it would silently lose acknowledged
//! writes. For a Raft node that is worse than lost data: it forgets entries it promised the leader
//! it held, and a quorum counted on that promise. Recovery tells the two apart with two witnesses.
//!
//! **The watermark** (`wal/WATERMARK`, format in [`crate::format`]) says how many bytes of every
//! live segment were synced:
//!
//! * when a segment is closed (rolled), it is synced, then the watermark records its final length as
//!   **sealed** and is itself fsynced, and only then is the next segment created. A sealed segment
//!   that is shorter or longer than its recorded length, or has any bad record, is corruption,
//!   wherever it is cut – even exactly at a record boundary, which no checksum can see;
//! * after every sync the watermark is rewritten in place with the synced length of the current
//!   segment – **without an fsync of its own**. It is written only after the segment's
//!   `fdatasync` returned, so whatever version of it survives a crash or a power loss claims no more
//!   than was durable; a power loss may leave it behind (stale), never ahead. The steady-state write
//!   path therefore costs one small `pwrite` per sync and no extra fsync; rolling a segment costs one
//!   extra fsync (of a file of a few dozen bytes) per segment;
//! * a live segment ending below its watermark, a bad record below it, or a segment the watermark
//!   lists that is gone, is corruption: synced records were lost (the file was truncated, a sector
//!   was zeroed, a file was deleted).
//!
//! **Position** decides above the watermark, where writes may really be unsynced:
//!
//! * a bad record in a segment that is **not the last** is corruption: a segment is synced in full
//!   before its successor is created;
//! * a bad record in the last segment is a torn tail **only if no valid record follows it** anywhere
//!   in the file (every later byte offset is tried). The tail is truncated, logged with
//!   `tracing::warn!` and reported in [`Recovery::torn_tail`];
//! * a checkpoint is written to a temporary file, synced and renamed, so a checkpoint with a proper
//!   name is complete. A damaged one is skipped (and renamed `*.damaged`) only if an older valid
//!   checkpoint plus the segments after it still describe the whole state; otherwise it is an error;
//! * the segments after the checkpoint must be contiguous: a missing one is an error.
//!
//! A missing watermark (a data directory written before it existed) or a damaged one (a power loss
//! in the middle of its rewrite) leaves only the position rules; recovery says so
//! ([`Recovery::watermark`]) and writes a fresh one. Deleting the whole data directory is not
//! something a WAL can see at all: that is the node's identity check (issue #23, finding 6).
//!
//! A wrong magic number or an unknown format version is always an error: that file was not written
//! by this build of Concord.

use crate::error::WalError;
use crate::format::{
    self, CheckpointProblem, HeaderProblem, RecordRead, SyncedSegment, SEGMENT_HEADER_BYTES,
};
use crate::layout;
use crate::wal::{fsync_dir, SyncMode};
use concord_core::Durable;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`crate::Wal::open`] found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The checkpoint recovery started from (`None`: from an empty state).
    pub checkpoint: Option<RecoveredCheckpoint>,
    /// Newer checkpoints that were damaged and could be done without (renamed `*.damaged`).
    pub damaged_checkpoints: Vec<DamagedCheckpoint>,
    /// Sequence numbers of the segments replayed after the checkpoint, in order.
    pub segments_replayed: Vec<u64>,
    pub records_replayed: u64,
    pub ops_replayed: u64,
    /// Record bytes replayed (headers and payloads).
    pub bytes_replayed: u64,
    /// The unsynced end of the last segment that was cut off, if the process died mid-write.
    pub torn_tail: Option<TornTail>,
    /// Left-overs of an interrupted checkpoint that were deleted: segments a checkpoint already
    /// covers, superseded checkpoints, temporary files.
    pub stale_files_removed: Vec<PathBuf>,
    /// What the synced-length watermark allowed recovery to check.
    pub watermark: WatermarkCheck,
    /// Keys in the recovered state.
    pub keys: usize,
    pub duration: Duration,
}

/// Whether the synced lengths of the segments could be checked (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatermarkCheck {
    /// Every live segment the watermark lists was at least as long as its synced length.
    Checked { segments: usize },
    /// No watermark file: only the position rules applied.
    #[default]
    Missing,
    /// The watermark file was damaged (`reason`): only the position rules applied.
    Damaged { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredCheckpoint {
    pub seq: u64,
    pub path: PathBuf,
    pub entries: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedCheckpoint {
    pub path: PathBuf,
    pub reason: String,
    pub moved_to: PathBuf,
}

/// An incomplete or checksum-failing end of the last segment, removed by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where the first bad record started: the file now ends here.
    pub offset: u64,
    pub bytes_dropped: u64,
    /// Why the record at `offset` was not accepted.
    pub reason: String,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recovered {} keys", self.keys)?;
        match &self.checkpoint {
            Some(c) => write!(f, " from checkpoint {} ({} bytes)", c.seq, c.bytes)?,
            None => write!(f, " from an empty state")?,
        }
        write!(
            f,
            " + {} segment{} ({} records, {} ops, {} bytes) in {:?}",
            self.segments_replayed.len(),
            if self.segments_replayed.len() == 1 { "" } else { "s" },
            self.records_replayed,
            self.ops_replayed,
            self.bytes_replayed,
            self.duration
        )?;
        if let Some(t) = &self.torn_tail {
            write!(
                f,
                "; torn tail of {} bytes cut at {} offset {}",
                t.bytes_dropped,
                t.segment.display(),
                t.offset
            )?;
        }
        if !self.damaged_checkpoints.is_empty() {
            write!(f, "; {} damaged checkpoints set aside", self.damaged_checkpoints.len())?;
        }
        match &self.watermark {
            WatermarkCheck::Checked { .. } => {}
            WatermarkCheck::Missing => write!(f, "; no synced-length watermark to check against")?,
            WatermarkCheck::Damaged { reason } => {
                write!(f, "; the synced-length watermark was damaged ({reason})")?
            }
        }
        Ok(())
    }
}

/// Recovery's result, for `Wal::open`.
pub(crate) struct Found {
    pub state: Durable,
    pub checkpoint_seq: Option<u64>,
    /// The first and last live segments and the length of the last (after truncation).
    pub first_segment: Option<u64>,
    pub last_segment: Option<(u64, u64)>,
    /// File bytes of all live segments.
    pub segments_bytes: u64,
    /// Every live segment but the last, with its length: all of them sealed.
    pub sealed: Vec<SyncedSegment>,
    /// Record bytes replayed: what counts towards the next checkpoint.
    pub record_bytes: u64,
    pub report: Recovery,
}

fn read_file(path: &Path) -> Result<Vec<u8>, WalError> {
    std::fs::read(path).map_err(|e| WalError::io("read", path, e))
}

/// Names in `dir` that `parse` recognises, sorted by number; temporary files are deleted.
fn list(
    dir: &Path,
    parse: fn(&str) -> Option<u64>,
    removed: &mut Vec<PathBuf>,
) -> Result<Vec<u64>, WalError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse(name) {
            found.push(seq);
        } else if name.ends_with(layout::TMP_SUFFIX) {
            // A checkpoint that was being written: it was never renamed into place, so never used.
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| WalError::io("delete", &path, e))?;
            removed.push(path);
        }
    }
    found.sort_unstable();
    Ok(found)
}

pub(crate) fn recover(dir: &Path, wal_dir: &Path, sync: SyncMode) -> Result<Found, WalError> {
    let start = Instant::now();
    let mut report = Recovery::default();
    let checkpoints = list(dir, layout::parse_checkpoint_name, &mut report.stale_files_removed)?;
    let segments = list(wal_dir, layout::parse_segment_name, &mut report.stale_files_removed)?;

    // 1. The newest valid checkpoint; damaged newer ones are remembered.
    let mut damaged: Vec<(u64, PathBuf, String)> = Vec::new();
    let mut base: Option<(u64, Durable)> = None;
    for &seq in checkpoints.iter().rev() {
        let path = layout::checkpoint_path(dir, seq);
        let bytes = read_file(&path)?;
        match format::decode_checkpoint(&bytes, seq) {
            Ok(state) => {
                report.checkpoint =
                    Some(RecoveredCheckpoint { seq, path, entries: state.len(), bytes: bytes.len() as u64 });
                base = Some((seq, state));
                break;
            }
            Err(CheckpointProblem::UnknownVersion(found)) => {
                return Err(WalError::UnsupportedVersion { path, found, supported: format::FORMAT_VERSION })
            }
            Err(CheckpointProblem::BadMagic) => damaged.push((seq, path, "wrong magic bytes".into())),
            Err(CheckpointProblem::Damaged(reason)) => damaged.push((seq, path, reason)),
        }
    }
    let (base_seq, mut state) = base.map_or((0, Durable::new()), |(seq, state)| (seq, state));
    for (_, path, reason) in &damaged {
        tracing::warn!(checkpoint = %path.display(), %reason, "skipping a damaged checkpoint");
    }

    // 2. The segments after it must run contiguously from base_seq + 1, and must reach past every
    //    damaged checkpoint (whose contents they then replace).
    let live: Vec<u64> = segments.iter().copied().filter(|&s| s > base_seq).collect();
    let gap = live.iter().zip(base_seq + 1..).find(|(found, expected)| *found != expected).map(|(_, e)| e);
    let newest_damaged = damaged.first().map(|(seq, _, _)| *seq);
    let reaches = |through: u64| live.last().is_some_and(|&last| last >= through);
    let missing = match (gap, newest_damaged) {
        (Some(expected), _) => Some(expected),
        (None, Some(through)) if !reaches(through) => Some(live.last().map_or(base_seq + 1, |l| l + 1)),
        _ => None,
    };
    if let Some(expected) = missing {
        let missing_path = layout::segment_path(wal_dir, expected);
        if let Some((_, path, reason)) = damaged.into_iter().next() {
            let fallback = match &report.checkpoint {
                Some(c) => format!(
                    "the older checkpoint {} cannot replace it because segment {} is gone",
                    c.path.display(),
                    missing_path.display()
                ),
                None => format!(
                    "there is no older valid checkpoint, and the log cannot replace it because segment {} is gone",
                    missing_path.display()
                ),
            };
            return Err(WalError::CorruptCheckpoint { path, reason, fallback });
        }
        let context = match (&report.checkpoint, live.first()) {
            (Some(c), _) => format!(
                "checkpoint {} covers segments up to {}, so the log must continue with segment {expected}; found {:?}",
                c.path.display(),
                c.seq,
                live
            ),
            (None, _) => format!("there is no checkpoint, so the log must start at segment 1; found {live:?}"),
        };
        return Err(WalError::MissingSegment { missing: missing_path, context });
    }

    // 3. Every segment the watermark says was synced must still be there.
    let marks = read_watermark(wal_dir, &mut report)?;
    if let Some(mark) =
        marks.values().rev().find(|m| m.seq > base_seq && live.last().is_none_or(|&l| m.seq > l))
    {
        let expected = live.last().map_or(base_seq + 1, |l| l + 1);
        return Err(WalError::MissingSegment {
            missing: layout::segment_path(wal_dir, expected),
            context: format!(
                "{} records segment {} as synced ({} bytes), but the log ends with {:?}: synced \
                 segments were deleted",
                wal_dir.join(layout::WATERMARK_FILE).display(),
                mark.seq,
                mark.synced_len,
                live
            ),
        });
    }

    // 4. Replay.
    let mut segments_bytes = 0;
    let mut last_segment = None;
    let mut sealed = Vec::new();
    for (i, &seq) in live.iter().enumerate() {
        let is_last = i + 1 == live.len();
        let path = layout::segment_path(wal_dir, seq);
        let bytes = read_file(&path)?;
        let mark = marks.get(&seq).copied();
        let len = replay_segment(&path, seq, &bytes, is_last, mark, sync, &mut state, &mut report)?;
        report.segments_replayed.push(seq);
        segments_bytes += len;
        if let Some((seq, len)) = last_segment {
            sealed.push(SyncedSegment { seq, synced_len: len, sealed: true });
        }
        last_segment = Some((seq, len));
    }

    // 5. Tidy up what an interrupted checkpoint left behind, and set damaged checkpoints aside.
    let mut dirs_changed = !report.stale_files_removed.is_empty();
    for seq in segments.iter().copied().filter(|&s| s <= base_seq) {
        remove(layout::segment_path(wal_dir, seq), &mut report)?;
        dirs_changed = true;
    }
    for seq in checkpoints.iter().copied().filter(|&s| s < base_seq) {
        remove(layout::checkpoint_path(dir, seq), &mut report)?;
        dirs_changed = true;
    }
    for (_, path, reason) in damaged {
        let mut moved_to = path.clone().into_os_string();
        moved_to.push(layout::DAMAGED_SUFFIX);
        let moved_to = PathBuf::from(moved_to);
        std::fs::rename(&path, &moved_to).map_err(|e| WalError::io("rename aside", &path, e))?;
        report.damaged_checkpoints.push(DamagedCheckpoint { path, reason, moved_to });
        dirs_changed = true;
    }
    if dirs_changed && sync == SyncMode::Fsync {
        fsync_dir(wal_dir)?;
        fsync_dir(dir)?;
    }

    report.keys = state.len();
    report.duration = start.elapsed();
    Ok(Found {
        state,
        checkpoint_seq: report.checkpoint.as_ref().map(|c| c.seq),
        first_segment: live.first().copied(),
        last_segment,
        segments_bytes,
        sealed,
        record_bytes: report.bytes_replayed,
        report,
    })
}

/// The watermark's entries by segment; a missing or damaged file gives none (and says so in the
/// report).
fn read_watermark(wal_dir: &Path, report: &mut Recovery) -> Result<BTreeMap<u64, SyncedSegment>, WalError> {
    let path = wal_dir.join(layout::WATERMARK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            report.watermark = WatermarkCheck::Missing;
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(WalError::io("read", &path, e)),
    };
    match format::decode_watermark(&bytes) {
        Ok(marks) => {
            report.watermark = WatermarkCheck::Checked { segments: marks.len() };
            Ok(marks.into_iter().map(|m| (m.seq, m)).collect())
        }
        Err(reason) => {
            tracing::warn!(
                watermark = %path.display(),
                %reason,
                "the WAL's synced-length watermark is damaged; recovering by the position rules alone"
            );
            report.watermark = WatermarkCheck::Damaged { reason };
            Ok(BTreeMap::new())
        }
    }
}

/// Why a problem at `offset` of a segment cannot be a torn write, if the watermark says so.
fn below_watermark(mark: Option<SyncedSegment>, offset: u64) -> Option<String> {
    let mark = mark?;
    if mark.sealed {
        Some(format!(
            "The watermark records this segment as sealed at {} bytes: it was synced in full before \
             the next one was started, so this cannot be a torn write.",
            mark.synced_len
        ))
    } else if offset < mark.synced_len {
        Some(format!(
            "The watermark records the first {} bytes of this segment as synced, so this is damage \
             to synced data, not a torn write.",
            mark.synced_len
        ))
    } else {
        None
    }
}

fn remove(path: PathBuf, report: &mut Recovery) -> Result<(), WalError> {
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(WalError::io("delete", &path, e)),
    }
    report.stale_files_removed.push(path);
    Ok(())
}

/// Apply every record of one segment to `state`; returns the segment's length after recovery (a
/// torn tail of the last segment is truncated).
#[allow(clippy::too_many_arguments)] // each is one fact about the segment; a struct would only rename them
fn replay_segment(
    path: &Path,
    seq: u64,
    bytes: &[u8],
    is_last: bool,
    mark: Option<SyncedSegment>,
    sync: SyncMode,
    state: &mut Durable,
    report: &mut Recovery,
) -> Result<u64, WalError> {
    let not_last = || {
        format!(
            "Segment {seq} is not the last one, and a segment is synced in full before the next one is \
             started, so this cannot be a torn write."
        )
    };
    let header_check = format::check_segment_header(bytes, seq);
    if let (Err(HeaderProblem::Short), Some(why_not_torn)) = (&header_check, below_watermark(mark, 0)) {
        return Err(WalError::Truncated {
            path: path.to_path_buf(),
            length: bytes.len() as u64,
            synced: mark.map_or(0, |m| m.synced_len),
            why_not_torn,
        });
    }
    match header_check {
        Ok(()) => {}
        Err(HeaderProblem::Short) if is_last => {
            // The segment was being created when the process died: start it again.
            let reason =
                format!("segment header cut short at {} of {SEGMENT_HEADER_BYTES} bytes", bytes.len());
            warn_torn(path, 0, bytes.len() as u64, &reason);
            rewrite_header(path, seq, sync)?;
            report.torn_tail = Some(TornTail {
                segment: path.to_path_buf(),
                offset: 0,
                bytes_dropped: bytes.len() as u64,
                reason,
            });
            return Ok(SEGMENT_HEADER_BYTES);
        }
        Err(HeaderProblem::BadMagic) => {
            return Err(WalError::BadMagic { path: path.to_path_buf(), kind: "WAL segment" })
        }
        Err(HeaderProblem::UnknownVersion(found)) => {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: format::FORMAT_VERSION,
            })
        }
        Err(problem) => {
            let reason = match problem {
                HeaderProblem::Short => format!("segment header cut short at {} bytes", bytes.len()),
                HeaderProblem::BadChecksum => "segment header checksum mismatch".into(),
                HeaderProblem::WrongSeq(found) => {
                    format!("the header says segment {found}, the file name says {seq}")
                }
                HeaderProblem::BadMagic | HeaderProblem::UnknownVersion(_) => unreachable!("handled above"),
            };
            let why_not_torn = if is_last {
                "A segment header is synced before records follow it.".into()
            } else {
                not_last()
            };
            return Err(WalError::Corrupt { path: path.to_path_buf(), offset: 0, reason, why_not_torn });
        }
    }

    let mut offset = SEGMENT_HEADER_BYTES;
    let end = bytes.len() as u64;
    while offset < end {
        let reason = match format::read_record(bytes, offset) {
            RecordRead::Valid { ops, bytes: record_bytes } => {
                report.records_replayed += 1;
                report.ops_replayed += ops.len() as u64;
                report.bytes_replayed += record_bytes;
                for op in ops {
                    state.apply_owned(op);
                }
                offset += record_bytes;
                continue;
            }
            RecordRead::Incomplete { reason } | RecordRead::Bad { reason } => reason,
        };
        // A file cut below what was synced says so plainly, whatever else is true.
        if let Some(mark) = mark.filter(|m| end < m.synced_len) {
            return Err(WalError::Truncated {
                path: path.to_path_buf(),
                length: end,
                synced: mark.synced_len,
                why_not_torn: below_watermark(Some(mark), offset).unwrap_or_default(),
            });
        }
        if !is_last {
            return Err(WalError::Corrupt {
                path: path.to_path_buf(),
                offset,
                reason,
                why_not_torn: not_last(),
            });
        }
        if let Some(valid_at) = find_valid_record(bytes, offset + 1) {
            let why_not_torn = format!(
                "A valid record follows at byte offset {valid_at}, so this is damage to synced data, not a torn write."
            );
            return Err(WalError::Corrupt { path: path.to_path_buf(), offset, reason, why_not_torn });
        }
        if let Some(why_not_torn) = below_watermark(mark, offset) {
            return Err(WalError::Corrupt { path: path.to_path_buf(), offset, reason, why_not_torn });
        }
        // Nothing valid after it: the unsynced end of the log, cut by a crash.
        let dropped = end - offset;
        warn_torn(path, offset, dropped, &reason);
        truncate(path, offset, sync)?;
        report.torn_tail =
            Some(TornTail { segment: path.to_path_buf(), offset, bytes_dropped: dropped, reason });
        return Ok(offset);
    }
    // Every record is whole: the file may still have been cut at a record boundary, or grown.
    if let Some(mark) = mark {
        if end < mark.synced_len {
            let why_not_torn = below_watermark(Some(mark), end).unwrap_or_default();
            return Err(WalError::Truncated {
                path: path.to_path_buf(),
                length: end,
                synced: mark.synced_len,
                why_not_torn,
            });
        }
        if mark.sealed && end > mark.synced_len {
            return Err(WalError::Corrupt {
                path: path.to_path_buf(),
                offset: mark.synced_len,
                reason: format!("{} bytes follow the end of the sealed segment", end - mark.synced_len),
                why_not_torn: "Nothing is written to a segment after it is sealed.".into(),
            });
        }
    }
    Ok(end)
}

/// The first offset at or after `from` where a whole valid record starts.
fn find_valid_record(bytes: &[u8], from: u64) -> Option<u64> {
    let end = bytes.len() as u64;
    (from..end.saturating_sub(format::RECORD_HEADER_BYTES - 1))
        .find(|&at| matches!(format::read_record(bytes, at), RecordRead::Valid { .. }))
}

fn warn_torn(path: &Path, offset: u64, bytes: u64, reason: &str) {
    tracing::warn!(
        segment = %path.display(),
        offset,
        bytes_dropped = bytes,
        %reason,
        "truncating the torn tail of the WAL (writes that were never synced)"
    );
}

fn truncate(path: &Path, len: u64, sync: SyncMode) -> Result<(), WalError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| WalError::io("open", path, e))?;
    file.set_len(len).map_err(|e| WalError::io("truncate", path, e))?;
    if sync == SyncMode::Fsync {
        file.sync_all().map_err(|e| WalError::io("fsync", path, e))?;
    }
    Ok(())
}

fn rewrite_header(path: &Path, seq: u64, sync: SyncMode) -> Result<(), WalError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io("open", path, e))?;
    file.write_all(&format::segment_header(seq)).map_err(|e| WalError::io("write", path, e))?;
    if sync == SyncMode::Fsync {
        file.sync_all().map_err(|e| WalError::io("fsync", path, e))?;
    }
    Ok(())
}

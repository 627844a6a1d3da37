//! Everything that can go wrong, each with the file, the byte offset and what an operator can do.

use std::path::PathBuf;

/// What an operator does when a node's synced data is damaged or gone. Wiping the directory and
/// restarting under the same id is NOT it: a node that forgot its term and vote may vote twice in
/// one term and help elect a leader that misses committed entries.
pub const REPAIR_ADVICE: &str = "restore this node's data directory from a backup, or rebuild the \
     node from its peers: stop it, then run `concord member rebuild --via <HTTP address of another \
     member>` with the flags this node is served with (it runs `concord member remove` for this \
     node, moves the data directory aside and adds the node back fresh; docs/operations.md, \
     \"Repair\"). Do not wipe the directory and restart it under the same id: a node that forgot its \
     vote may vote twice in one term (its peers refuse it)";

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("data directory {path} exists but is not a directory; point the node at a directory")]
    NotADirectory { path: PathBuf },

    #[error(
        "data directory {path} is not writable ({source}); fix its permissions or choose another data directory"
    )]
    NotWritable { path: PathBuf, source: std::io::Error },

    #[error(
        "data directory {dir} is locked by another process{holder} (lock file {lock}); stop that node \
         or give this one its own data directory"
    )]
    Locked { dir: PathBuf, lock: PathBuf, holder: String },

    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    #[error("{path} is not a Concord {kind} file (wrong magic bytes); move it out of the data directory")]
    BadMagic { path: PathBuf, kind: &'static str },

    #[error(
        "{path} has format version {found}, but this build reads only version {supported}; \
         run the Concord version that wrote it"
    )]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },

    /// A record (or segment header) that must have been synced is damaged: it is not at the very
    /// end of the log, so it cannot be a torn write from a crash.
    #[error(
        "corrupt WAL data in {path} at byte offset {offset}: {reason}. {why_not_torn} The node \
         refuses to start from partial state: {advice}",
        advice = REPAIR_ADVICE
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String, why_not_torn: String },

    /// A segment is shorter than what the watermark says was synced: synced records were lost.
    #[error(
        "WAL segment {path} is {length} bytes long, but {synced} bytes of it were synced: synced \
         records were lost (the file was truncated), this is not a torn tail. {why_not_torn} The \
         node refuses to start from partial state: {advice}",
        advice = REPAIR_ADVICE
    )]
    Truncated { path: PathBuf, length: u64, synced: u64, why_not_torn: String },

    #[error(
        "checkpoint {path} is damaged ({reason}) and {fallback}; the node refuses to start from \
         partial state: {advice}",
        advice = REPAIR_ADVICE
    )]
    CorruptCheckpoint { path: PathBuf, reason: String, fallback: String },

    #[error(
        "WAL segment {missing} is missing ({context}); the log must be contiguous. Restore the file, \
         or {advice}",
        advice = REPAIR_ADVICE
    )]
    MissingSegment { missing: PathBuf, context: String },

    #[error("one append of {bytes} bytes exceeds the {max}-byte record limit; split the batch")]
    RecordTooLarge { bytes: u64, max: u64 },

    #[error(
        "the WAL refuses further writes because an earlier write or sync failed ({reason}); after a \
         failed fsync the kernel may have dropped unsynced pages, so restart the node to recover from \
         what is really on disk"
    )]
    Poisoned { reason: String },

    /// The disk is full (`ENOSPC`, or a quota). Nothing is lost and nothing is poisoned: the
    /// failed write was cut back off the file, every record appended since the last sync is still
    /// held in memory, and the next [`crate::Wal::sync`] tries again.
    #[error(
        "no space left to {action} {path} ({source}); the WAL keeps the unsynced writes in memory          and retries: free disk space"
    )]
    NoSpace { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl WalError {
    /// An I/O error; [`WalError::NoSpace`] when the disk or a quota is full.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> WalError {
        if is_no_space(&source) {
            return WalError::NoSpace { action, path: path.into(), source };
        }
        WalError::Io { action, path: path.into(), source }
    }

    /// The disk was full: retry once space is back (see [`WalError::NoSpace`]).
    pub fn is_no_space(&self) -> bool {
        matches!(self, WalError::NoSpace { .. })
    }
}

/// `ENOSPC` or `EDQUOT`.
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

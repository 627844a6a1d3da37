//! File names inside a data directory.
//!
//! ```text
//! <dir>/LOCK                                   exclusive lock while a process has the WAL open
//! <dir>/checkpoint-00000000000000000007.bin    state after segments 1..=7
//! <dir>/wal/00000000000000000008.log           segments after the checkpoint, contiguous
//! <dir>/wal/00000000000000000009.log           (the last one is being appended to)
//! <dir>/wal/WATERMARK                          how many bytes of each live segment were synced
//! ```
//!
//! Numbers are zero-padded to 20 digits so that names sort like their numbers.

use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "LOCK";
pub const WAL_SUBDIR: &str = "wal";
/// Inside [`WAL_SUBDIR`]: the synced length of every live segment (see [`crate::recovery`]).
pub const WATERMARK_FILE: &str = "WATERMARK";
const CHECKPOINT_PREFIX: &str = "checkpoint-";
const CHECKPOINT_SUFFIX: &str = ".bin";
const SEGMENT_SUFFIX: &str = ".log";
pub const TMP_SUFFIX: &str = ".tmp";
/// A damaged checkpoint that recovery could do without is renamed with this suffix, not deleted,
/// so that an operator can look at it.
pub const DAMAGED_SUFFIX: &str = ".damaged";

pub fn segment_path(wal_dir: &Path, seq: u64) -> PathBuf {
    wal_dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

pub fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{seq:020}{CHECKPOINT_SUFFIX}"))
}

pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

fn parse_seq(digits: &str) -> Option<u64> {
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The sequence number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_seq(name.strip_suffix(SEGMENT_SUFFIX)?)
}

/// The sequence number of a checkpoint file name, if it is one.
pub fn parse_checkpoint_name(name: &str) -> Option<u64> {
    parse_seq(name.strip_prefix(CHECKPOINT_PREFIX)?.strip_suffix(CHECKPOINT_SUFFIX)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/data");
        let seg = segment_path(&dir.join(WAL_SUBDIR), 42);
        assert_eq!(seg, Path::new("/data/wal/00000000000000000042.log"));
        assert_eq!(parse_segment_name(seg.file_name().unwrap().to_str().unwrap()), Some(42));
        let ckpt = checkpoint_path(dir, 7);
        assert_eq!(parse_checkpoint_name(ckpt.file_name().unwrap().to_str().unwrap()), Some(7));
        assert_eq!(parse_checkpoint_name("checkpoint-7.bin"), None);
        assert_eq!(parse_segment_name("00000000000000000042.log.tmp"), None);
        assert_eq!(tmp_path(&ckpt), Path::new("/data/checkpoint-00000000000000000007.bin.tmp"));
    }
}

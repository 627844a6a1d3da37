//! The WAL knows what was synced (issue #23, finding 6): a loss of synced records is corruption,
//! never a torn tail. Before the watermark, a segment cut to half was "a torn tail of writes that
//! were never synced" and the node came back with a quarter of its log missing.

mod common;

use common::*;
use concord_wal::recovery::WatermarkCheck;
use concord_wal::{layout, SyncMode, Wal, WalError, WalOptions};
use std::path::{Path, PathBuf};

fn watermark_file(dir: &Path) -> PathBuf {
    dir.join(layout::WAL_SUBDIR).join(layout::WATERMARK_FILE)
}

/// Small segments, so that a few records roll several of them; each record synced.
fn several_segments(dir: &Path) -> (WalOptions, u64) {
    let opts = WalOptions { segment_bytes: 400, ..no_checkpoints() };
    let (mut wal, _, _) = Wal::open(dir, opts.clone()).unwrap();
    for i in 0..20 {
        wal.append(&[put(format!("key-{i:03}"), vec![b'v'; 60])]).unwrap();
        wal.sync().unwrap();
    }
    let last = wal.stats().current_segment;
    assert!(last >= 4, "only {last} segments");
    (opts, last)
}

/// The offsets where records start in a segment file (after its header).
fn record_starts(bytes: &[u8]) -> Vec<u64> {
    let mut at = concord_wal::format::SEGMENT_HEADER_BYTES;
    let mut starts = Vec::new();
    while at < bytes.len() as u64 {
        starts.push(at);
        match concord_wal::format::read_record(bytes, at) {
            concord_wal::format::RecordRead::Valid { bytes, .. } => at += bytes,
            other => panic!("unexpected {other:?}"),
        }
    }
    starts
}

#[test]
fn a_sealed_segment_cut_anywhere_is_corruption_even_at_a_record_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let (opts, _) = several_segments(tmp.path());
    let sealed = segment_file(tmp.path(), 2);
    let full = std::fs::read(&sealed).unwrap();
    let starts = record_starts(&full);
    assert!(starts.len() >= 2);
    // At a record boundary (no checksum can see it), in the middle (the "cut to half"),
    // and inside the header.
    for cut in [*starts.last().unwrap(), full.len() as u64 / 2, 10] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(tmp.path(), copy.path());
        let segment = segment_file(copy.path(), 2);
        std::fs::write(&segment, &full[..cut as usize]).unwrap();
        let err = Wal::open(copy.path(), opts.clone()).err().expect("a cut sealed segment must not open");
        match &err {
            WalError::Truncated { path, length, synced, .. } => {
                assert_eq!((path, *length, *synced), (&segment, cut, full.len() as u64), "{err}");
            }
            other => panic!("cut at {cut}: expected Truncated, got {other}"),
        }
        let message = err.to_string();
        assert!(message.contains("sealed"), "{message}");
        assert!(message.contains("not a torn tail"), "{message}");
        assert!(message.contains("concord member remove"), "{message}");
        assert_eq!(std::fs::read(&segment).unwrap(), &full[..cut as usize], "nothing was 'repaired'");
    }
}

#[test]
fn the_last_segment_cut_below_its_watermark_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (opts, last) = several_segments(tmp.path());
    let segment = segment_file(tmp.path(), last);
    let full = std::fs::read(&segment).unwrap();
    let starts = record_starts(&full);
    assert!(!starts.is_empty());
    // The last record's start is a boundary: before the watermark this opened as a shorter log.
    for cut in [*starts.last().unwrap(), *starts.last().unwrap() + 3, full.len() as u64 - 1] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(tmp.path(), copy.path());
        let copied = segment_file(copy.path(), last);
        std::fs::write(&copied, &full[..cut as usize]).unwrap();
        let err = Wal::open(copy.path(), opts.clone()).err().expect("lost synced records must not open");
        assert!(
            matches!(&err, WalError::Truncated { length, synced, .. } if (*length, *synced) == (cut, full.len() as u64)),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("were synced"), "{err}");
    }
    // A synced segment deleted outright is missing, not a shorter log.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(tmp.path(), copy.path());
    std::fs::remove_file(segment_file(copy.path(), last)).unwrap();
    let err = Wal::open(copy.path(), opts).err().expect("a deleted synced segment must not open");
    assert!(matches!(err, WalError::MissingSegment { .. }), "{err}");
    assert!(err.to_string().contains("synced segments were deleted"), "{err}");
}

#[test]
fn a_true_torn_tail_is_still_cut_and_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = no_checkpoints();
    let (mut wal, _, _) = Wal::open(tmp.path(), opts.clone()).unwrap();
    wal.append(&[put("synced", "yes")]).unwrap();
    wal.sync().unwrap();
    let synced_len = wal.stats().wal_bytes;
    // Big enough to reach the file without a sync: on disk, never synced, never acknowledged.
    wal.append(&[put("big", vec![7u8; 3 << 19])]).unwrap();
    drop(wal);
    let segment = segment_file(tmp.path(), 1);
    let full = std::fs::read(&segment).unwrap();
    assert!(full.len() as u64 > synced_len + 1000);
    std::fs::write(&segment, &full[..full.len() - 1000]).unwrap();
    let (_, durable, recovery) = Wal::open(tmp.path(), opts).unwrap();
    assert_eq!(durable.get("synced"), Some(&b"yes"[..]));
    assert_eq!(durable.get("big"), None);
    let torn = recovery.torn_tail.expect("a torn tail");
    assert_eq!(torn.offset, synced_len);
    assert_eq!(recovery.watermark, WatermarkCheck::Checked { segments: 1 });
}

#[test]
fn a_directory_without_a_watermark_opens_by_position_and_gets_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (opts, last) = several_segments(tmp.path());
    std::fs::remove_file(watermark_file(tmp.path())).unwrap();
    let (wal, durable, recovery) = Wal::open(tmp.path(), opts.clone()).unwrap();
    assert_eq!(recovery.watermark, WatermarkCheck::Missing);
    assert!(recovery.to_string().contains("no synced-length watermark"), "{recovery}");
    assert_eq!(durable.len(), 20);
    drop(wal);
    // Written again at open: now a cut at a record boundary of a closed segment is seen.
    let (_, _, recovery) = Wal::open(tmp.path(), opts.clone()).unwrap();
    assert_eq!(recovery.watermark, WatermarkCheck::Checked { segments: last as usize });
    // A damaged watermark (a power loss mid-rewrite) is reported, not fatal.
    let mut bytes = std::fs::read(watermark_file(tmp.path())).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(watermark_file(tmp.path()), &bytes).unwrap();
    let (_, _, recovery) = Wal::open(tmp.path(), opts).unwrap();
    assert!(matches!(recovery.watermark, WatermarkCheck::Damaged { .. }), "{:?}", recovery.watermark);
}

#[test]
fn the_steady_state_write_path_gains_no_fsync() {
    // Measured, not assumed: each sync of the current segment is one fdatasync, as before the
    // watermark (which is rewritten after it, without an fsync of its own).
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::open(tmp.path(), no_checkpoints()).unwrap();
    let before = wal.stats();
    for i in 0..100 {
        wal.append(&[put(format!("k{i}"), "v")]).unwrap();
        wal.sync().unwrap();
    }
    let after = wal.stats();
    assert_eq!(after.current_segment, before.current_segment, "no roll in this measurement");
    assert_eq!(after.syncs - before.syncs, 100);
    assert_eq!(after.fsyncs - before.fsyncs, 100, "one fsync per sync");
    // Rolling costs one more: the seal.
    let opts = WalOptions { segment_bytes: 400, sync: SyncMode::Fsync, ..no_checkpoints() };
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::open(tmp.path(), opts).unwrap();
    let before = wal.stats();
    for i in 0..20 {
        wal.append(&[put(format!("key-{i:03}"), vec![b'v'; 60])]).unwrap();
        wal.sync().unwrap();
    }
    let after = wal.stats();
    let rolls = after.current_segment - before.current_segment;
    assert!(rolls >= 3);
    // Per roll: fdatasync of the closed segment, the seal, and the two directories at the next
    // sync (the new file's entry) – as before the watermark, plus the seal.
    assert_eq!(after.fsyncs - before.fsyncs, 20 + rolls * 4, "{rolls} rolls");
}

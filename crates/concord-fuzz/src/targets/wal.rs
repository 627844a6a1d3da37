//! `wal`: recovery of damaged write-ahead logs, and the WAL's record and checkpoint decoders.
//!
//! The first input byte picks the mode:
//! * **directory** (most inputs): the rest describes a history – WAL options, batches of puts and
//!   deletes, which batches are followed by a sync, whether the log is closed cleanly – and then
//!   damage to the files it left: flipped bytes, truncations, zeroed ranges, appended garbage,
//!   deleted files. The directory is opened again. Properties:
//!   - recovery never returns records that were not written: the recovered state is the state
//!     after some prefix of the batches, or recovery fails with an error;
//!   - with no damage nothing synced is lost: the state is that after the last synced batch (or a
//!     later one);
//!   - a recovered log works: a new batch, synced, is there on the next open.
//! * **record** / **checkpoint**: the rest is a segment record or a checkpoint file, decoded; a
//!   valid record re-encodes to the same bytes. With the top bit of the mode byte set, the harness
//!   first fixes the record's checksum, so that mutations reach the decoding behind it.

use super::label;
use crate::driver::Target;
use crate::input::Cursor;
use concord_core::{Durable, StorageOp};
use concord_wal::format::{self, RecordRead};
use concord_wal::{SyncMode, Wal, WalOptions};
use std::path::{Path, PathBuf};

pub const TARGET: Target = Target {
    name: "wal",
    about: "WAL recovery of damaged directories; record and checkpoint decoding",
    seeds,
    dictionary: &[&[0, 0, 0, 0], &[0xff, 0xff, 0xff, 0xff], &[1, 0, 0, 0], &[0x80]],
    max_len: 4096,
    max_alloc_bytes: 16 << 20,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        // Directory mode: a few batches, no damage; then with damage.
        vec![0, 1, 1, 6, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0],
        vec![
            0, 0, 0, 8, 5, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3, 0,
            200, 1, 7,
        ],
        vec![
            0, 2, 2, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 2, 1, 1,
            9, 9,
        ],
    ];
    let ops = vec![
        StorageOp::Put { key: "raft/log/1".into(), value: b"hello".to_vec() },
        StorageOp::Delete { key: "k".into() },
        StorageOp::DeleteRange { start: "a".into(), end: "z".into() },
    ];
    let mut record = vec![1];
    format::encode_record(&ops, &mut record);
    seeds.push(record.clone());
    record[0] = 0x81;
    seeds.push(record);
    let mut state = Durable::new();
    state.apply(&ops[0]);
    let mut checkpoint = vec![2];
    checkpoint.extend(format::encode_checkpoint(3, &state));
    seeds.push(checkpoint);
    seeds
}

fn run(input: &[u8]) -> String {
    let Some((&mode, rest)) = input.split_first() else { return "empty".into() };
    match mode & 0x7f {
        1 => record(rest, mode & 0x80 != 0),
        2 => checkpoint(rest),
        _ => directory(rest),
    }
}

/// Decode one record; a valid one must re-encode to exactly its bytes.
fn record(bytes: &[u8], fix_checksum: bool) -> String {
    let mut bytes = bytes.to_vec();
    if fix_checksum && bytes.len() >= 8 {
        // The header: payload length (u32 LE), CRC-32 of the length and the payload (u32 LE).
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[0..4]);
        let declared = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        hasher.update(&bytes[8..(8 + declared).min(bytes.len()).max(8)]);
        let crc = hasher.finalize().to_le_bytes();
        bytes[4..8].copy_from_slice(&crc);
    }
    match format::read_record(&bytes, 0) {
        RecordRead::Valid { ops, bytes: len } => {
            assert!(len as usize <= bytes.len(), "a record longer than the file");
            let mut again = Vec::new();
            format::encode_record(&ops, &mut again);
            assert_eq!(again, bytes[..len as usize], "a valid record re-encodes differently: {ops:?}");
            format!("record: valid, {} ops", ops.len().min(4))
        }
        RecordRead::Incomplete { reason } => label("record: incomplete", &reason),
        RecordRead::Bad { reason } => label("record: bad", &reason),
    }
}

fn checkpoint(bytes: &[u8]) -> String {
    match format::decode_checkpoint(bytes, 3) {
        Ok(state) => {
            let again = format::encode_checkpoint(3, &state);
            assert_eq!(
                format::decode_checkpoint(&again, 3).as_ref(),
                Ok(&state),
                "a checkpoint does not round-trip"
            );
            "checkpoint: valid".into()
        }
        Err(problem) => label("checkpoint", &format!("{problem:?}")),
    }
}

const KEYS: &[&str] = &["a", "b", "c", "raft/log/1", "raft/log/2", "raft/meta", "z"];

fn batch(c: &mut Cursor<'_>) -> Vec<StorageOp> {
    let n = 1 + c.below(4);
    (0..n)
        .map(|_| match c.below(10) {
            0..=6 => {
                let key = c.pick(KEYS).to_string();
                let value = c.bytes(40).to_vec();
                StorageOp::Put { key, value }
            }
            7 | 8 => StorageOp::Delete { key: c.pick(KEYS).to_string() },
            _ => StorageOp::DeleteRange { start: c.pick(KEYS).to_string(), end: c.pick(KEYS).to_string() },
        })
        .collect()
}

fn apply(mut state: Durable, ops: &[StorageOp]) -> Durable {
    for op in ops {
        state.apply(op);
    }
    state
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "LOCK") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Damage one file; returns whether anything changed.
fn damage(c: &mut Cursor<'_>, dir: &Path) -> bool {
    let all = files(dir);
    if all.is_empty() {
        return false;
    }
    let path = c.pick(&all).clone();
    let mut bytes = std::fs::read(&path).expect("read a WAL file");
    let at = if bytes.is_empty() { 0 } else { c.below(bytes.len()) };
    match c.below(6) {
        0 if !bytes.is_empty() => bytes[at] ^= 1 << (c.byte() % 8),
        1 => bytes.truncate(at),
        2 => {
            let end = (at + 1 + c.below(64)).min(bytes.len());
            bytes[at..end].fill(0);
        }
        3 => bytes.extend_from_slice(c.bytes(64)),
        4 => {
            std::fs::remove_file(&path).expect("remove a WAL file");
            return true;
        }
        _ => {
            let byte = c.byte();
            if !bytes.is_empty() {
                bytes[at] = byte;
            }
        }
    }
    std::fs::write(&path, &bytes).expect("write a WAL file");
    true
}

fn directory(bytes: &[u8]) -> String {
    let mut c = Cursor::new(bytes);
    let opts = WalOptions {
        segment_bytes: *c.pick(&[128, 256, 1024, 64 << 10]),
        checkpoint_bytes: *c.pick(&[300, 2048, u64::MAX]),
        sync: SyncMode::None,
    };
    let batches = 1 + c.below(12);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("data");

    // `states[i]`: the state after the first i batches; `synced`: how many batches are durable.
    let mut states = vec![Durable::new()];
    let mut synced = 0;
    {
        let (mut wal, state, _) = Wal::open(&dir, opts.clone()).expect("open a new WAL");
        assert!(state.is_empty());
        for i in 0..batches {
            let ops = batch(&mut c);
            wal.append(&ops).expect("append");
            states.push(apply(states[i].clone(), &ops));
            if c.chance(70) {
                wal.sync().expect("sync");
                synced = i + 1;
            }
        }
        if c.chance(50) {
            wal.sync().expect("sync");
            synced = batches;
        }
    }
    let damages = c.below(4);
    let damaged = (0..damages).filter(|_| damage(&mut c, &dir)).count() > 0;

    let (mut wal, recovered, report) = match Wal::open(&dir, opts.clone()) {
        Ok(opened) => opened,
        Err(e) => {
            assert!(damaged, "an undamaged WAL failed to open: {e}");
            return label("refused", &error_kind(&e.to_string()));
        }
    };
    let prefix = states.iter().rposition(|s| *s == recovered).unwrap_or_else(|| {
        panic!("recovery returned a state no prefix of the written batches had: {recovered:?}; report {report:?}")
    });
    if !damaged {
        assert!(
            prefix >= synced,
            "an undamaged WAL lost synced batches: recovered {prefix} of {synced} synced"
        );
    }
    // The recovered log takes new writes, and keeps them.
    let extra = StorageOp::Put { key: "after-recovery".into(), value: b"x".to_vec() };
    wal.append(std::slice::from_ref(&extra)).expect("append after recovery");
    wal.sync().expect("sync after recovery");
    drop(wal);
    let (_, again, _) = Wal::open(&dir, opts).expect("reopen after recovery");
    assert_eq!(again, apply(recovered, &[extra]), "a write after recovery was lost");
    format!(
        "recovered {} batches{}{}",
        if prefix == batches { "all".to_string() } else { "some".to_string() },
        if damaged { ", damaged" } else { "" },
        if report.torn_tail.is_some() { ", torn tail" } else { "" }
    )
}

/// The kind of a recovery error, without file names (temporary paths differ every run).
fn error_kind(message: &str) -> String {
    message.split(['/', ':']).next().unwrap_or_default().to_string()
}

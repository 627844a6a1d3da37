//! What Raft keeps on disk, how each record is protected, and how a node recovers (Figure 2
//! "Persistent state on all servers", §5.6, §7).
//!
//! ## Key layout (readable and ordered; numbers zero-padded to 20 digits)
//!
//! | key | record |
//! |---|---|
//! | `raft/hard-state/a`, `raft/hard-state/b` | `{version, term, voted_for}` – written alternately |
//! | `raft/log/00000000000000000042` | the log entry at index 42 |
//! | `raft/snapshot/00000000000000000040/data` | snapshot bytes (state machine + session table, binary: see `snapshot.rs`) |
//! | `raft/snapshot/00000000000000000040/meta` | `{index, term, membership, data_crc, data_bytes}` |
//!
//! ## Records
//! Every value is `crc32 (4 bytes, little endian) ‖ JSON`. A record whose checksum fails is either
//! **torn** (the last write before a crash, never synced, so never acknowledged – safe to drop) or
//! **corrupt** (it was synced and later damaged – recovery must refuse to guess). Recovery tells them
//! apart by position, since only the newest write can be torn:
//! * hard state: two slots written alternately, so a torn write never destroys the last synced value;
//!   the valid slot with the highest version wins; if neither slot is valid the disk is corrupt;
//! * log: a bad or missing record ends the log there *only* if nothing valid follows it (a torn
//!   tail, truncated); a bad record followed by valid ones is corruption;
//! * snapshots: written under a new key, synced, and only then are the old snapshot and the
//!   compacted log deleted; an incomplete newest snapshot is ignored in favour of the previous one.
//!
//! Every write is followed by a `Sync` before the node sends anything that depends on it (see
//! `RaftNode::send` in `node.rs`).

use crate::log::Entry;
use crate::message::SnapshotMeta;
use concord_core::{Durable, NodeId, StorageOp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const HARD_STATE_KEYS: [&str; 2] = ["raft/hard-state/a", "raft/hard-state/b"];
pub const LOG_PREFIX: &str = "raft/log/";
pub const SNAPSHOT_PREFIX: &str = "raft/snapshot/";

/// The key of the log entry at `index`.
pub fn log_key(index: u64) -> String {
    format!("{LOG_PREFIX}{index:020}")
}

pub fn snapshot_meta_key(index: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{index:020}/meta")
}

pub fn snapshot_data_key(index: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{index:020}/data")
}

/// Delete log records in `[from, to)`.
pub fn delete_log_range(from: u64, to: u64) -> StorageOp {
    StorageOp::DeleteRange { start: log_key(from), end: log_key(to) }
}

/// Delete the snapshot whose last index is `index`.
pub fn delete_snapshot(index: u64) -> StorageOp {
    StorageOp::DeleteRange {
        start: format!("{SNAPSHOT_PREFIX}{index:020}/"),
        end: format!("{SNAPSHOT_PREFIX}{index:020}0"),
    }
}

/// CRC-32 (IEEE 802.3, reflected, the zlib/Ethernet polynomial), as `crc32fast` computes it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Frame a payload: checksum, then bytes.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Frame a value as JSON with a checksum.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    seal(&serde_json::to_vec(value).expect("raft records serialise"))
}

/// Check a framed record; returns the payload.
pub fn unseal(record: &[u8]) -> Result<&[u8], String> {
    if record.len() < 4 {
        return Err(format!("record of {} bytes is shorter than its checksum", record.len()));
    }
    let (sum, payload) = record.split_at(4);
    let want = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    let got = crc32(payload);
    if want != got {
        return Err(format!("checksum mismatch (stored {want:08x}, computed {got:08x})"));
    }
    Ok(payload)
}

/// Check and parse a record.
pub fn decode<T: DeserializeOwned>(record: &[u8]) -> Result<T, String> {
    let payload = unseal(record)?;
    serde_json::from_slice(payload).map_err(|e| format!("checksum ok but undecodable: {e}"))
}

/// Term and vote: what a node must never forget (Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Increases with every write; picks the newer of the two slots.
    pub version: u64,
    pub term: u64,
    pub voted_for: Option<NodeId>,
}

impl HardState {
    /// The key this version is written to.
    pub fn key(&self) -> &'static str {
        HARD_STATE_KEYS[(self.version % 2) as usize]
    }
}

/// The stored description of a snapshot (its data lives under a sibling key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub meta: SnapshotMeta,
    pub data_crc: u32,
    pub data_bytes: u64,
}

/// Why a node could not boot from its disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryError {
    /// A record that must have been synced fails its checksum or does not parse.
    Corrupt { key: String, reason: String },
    /// The records are individually fine but do not fit together (e.g. a gap between the snapshot
    /// and the log).
    Inconsistent(String),
    /// The state machine refused the snapshot.
    StateMachine(String),
    /// The configuration is invalid.
    Config(String),
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Corrupt { key, reason } => write!(f, "corrupt record `{key}`: {reason}"),
            RecoveryError::Inconsistent(why) => write!(f, "inconsistent raft state on disk: {why}"),
            RecoveryError::StateMachine(why) => write!(f, "state machine cannot restore snapshot: {why}"),
            RecoveryError::Config(why) => write!(f, "invalid raft config: {why}"),
        }
    }
}

impl std::error::Error for RecoveryError {}

/// Everything read back from the disk.
#[derive(Debug)]
pub struct Recovered<C> {
    pub hard_state: HardState,
    /// The newest complete snapshot and its data.
    pub snapshot: Option<(SnapshotRecord, Vec<u8>)>,
    /// Log entries after the snapshot, contiguous.
    pub entries: Vec<Entry<C>>,
    /// Deletes that tidy up what recovery discarded (a torn tail, superseded snapshots, log records
    /// already covered by the snapshot). Emitted at start; harmless if lost.
    pub cleanup: Vec<StorageOp>,
}

fn corrupt(key: &str, reason: String) -> RecoveryError {
    RecoveryError::Corrupt { key: key.to_string(), reason }
}

fn parse_index(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.get(..20)?.parse().ok()
}

/// Read the Raft state from `durable`.
pub fn recover<C: DeserializeOwned>(durable: &Durable) -> Result<Recovered<C>, RecoveryError> {
    let mut cleanup = Vec::new();

    // Hard state: the valid slot with the highest version.
    let mut hard_state = HardState::default();
    let mut present = 0;
    let mut valid = 0;
    let mut errors = Vec::new();
    for key in HARD_STATE_KEYS {
        if let Some(bytes) = durable.get(key) {
            present += 1;
            match decode::<HardState>(bytes) {
                Ok(hs) => {
                    valid += 1;
                    if hs.version >= hard_state.version {
                        hard_state = hs;
                    }
                }
                Err(e) => errors.push((key, e)),
            }
        }
    }
    match (present, valid) {
        // The very first hard-state write was torn: it was never synced, so nothing depended on it.
        (1, 0) => cleanup.extend(errors.iter().map(|(key, _)| StorageOp::Delete { key: key.to_string() })),
        // Two slots and neither valid: at most one write can be torn, so the other was damaged.
        (2, 0) => {
            let (key, reason) = errors.remove(0);
            return Err(corrupt(key, format!("no valid hard-state slot: {reason}")));
        }
        _ => {}
    }

    // Snapshots: newest complete one wins; an incomplete newest one was torn.
    let mut snapshot_indexes: Vec<u64> =
        durable.scan_prefix(SNAPSHOT_PREFIX).filter_map(|(k, _)| parse_index(k, SNAPSHOT_PREFIX)).collect();
    snapshot_indexes.dedup();
    let mut snapshot: Option<(SnapshotRecord, Vec<u8>)> = None;
    for (rank, &index) in snapshot_indexes.iter().rev().enumerate() {
        let meta_key = snapshot_meta_key(index);
        let data_key = snapshot_data_key(index);
        let loaded = (|| -> Result<(SnapshotRecord, Vec<u8>), String> {
            let meta: SnapshotRecord = decode(durable.get(&meta_key).ok_or("meta record missing")?)?;
            let data = durable.get(&data_key).ok_or("data record missing")?;
            if meta.meta.index != index {
                return Err(format!("meta says index {}, key says {index}", meta.meta.index));
            }
            if data.len() as u64 != meta.data_bytes || crc32(data) != meta.data_crc {
                return Err("data does not match the checksum in meta".into());
            }
            Ok((meta, data.to_vec()))
        })();
        match (snapshot.is_some(), loaded) {
            (false, Ok(found)) => snapshot = Some(found),
            (false, Err(reason)) if rank == 0 => {
                // The newest snapshot is incomplete: it was being written when the node crashed.
                let _ = reason;
                cleanup.push(delete_snapshot(index));
            }
            (false, Err(reason)) => return Err(corrupt(&meta_key, reason)),
            (true, _) => cleanup.push(delete_snapshot(index)),
        }
    }
    let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |(r, _)| (r.meta.index, r.meta.term));

    // Log: contiguous from snap_index + 1; a bad or missing record ends it only at the tail.
    let mut entries: Vec<Entry<C>> = Vec::new();
    let mut covered_by_snapshot = 0usize;
    let records: Vec<(u64, &str, &[u8])> = durable
        .scan_prefix(LOG_PREFIX)
        .filter_map(|(k, v)| parse_index(k, LOG_PREFIX).map(|i| (i, k, v)))
        .collect();
    let mut expected = snap_index + 1;
    let mut tail_from: Option<usize> = None;
    for (pos, &(index, key, bytes)) in records.iter().enumerate() {
        if index <= snap_index {
            covered_by_snapshot += 1;
            continue;
        }
        if index != expected {
            if entries.is_empty() && snap_index > 0 && index > expected {
                return Err(RecoveryError::Inconsistent(format!(
                    "the log resumes at {index} but the snapshot ends at {snap_index}"
                )));
            }
            if entries.is_empty() && snap_index == 0 {
                return Err(RecoveryError::Inconsistent(format!("the log starts at {index}, not 1")));
            }
            // A gap after valid entries: everything from here on was never synced.
            tail_from = Some(pos);
            break;
        }
        match decode::<Entry<C>>(bytes) {
            Ok(entry) if entry.index == index => {
                let prev_term = entries.last().map_or(snap_term, |e: &Entry<C>| e.term);
                if entry.term < prev_term {
                    return Err(RecoveryError::Inconsistent(format!(
                        "log term decreases at {index} ({} after {prev_term})",
                        entry.term
                    )));
                }
                entries.push(entry);
                expected += 1;
            }
            Ok(entry) => {
                return Err(corrupt(key, format!("record holds index {}", entry.index)));
            }
            Err(reason) => {
                // Torn only if it is the last record on disk.
                if pos + 1 == records.len() {
                    tail_from = Some(pos);
                    break;
                }
                return Err(corrupt(key, reason));
            }
        }
    }
    if covered_by_snapshot > 0 {
        cleanup.push(delete_log_range(0, snap_index + 1));
    }
    if let Some(pos) = tail_from {
        cleanup.push(delete_log_range(records[pos].0, u64::MAX));
    }
    if hard_state.term < entries.last().map_or(snap_term, |e| e.term) {
        return Err(RecoveryError::Inconsistent(format!(
            "hard state term {} is below the log's last term",
            hard_state.term
        )));
    }
    Ok(Recovered { hard_state, snapshot, entries, cleanup })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Payload;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn put(d: &mut Durable, key: String, value: Vec<u8>) {
        d.apply(&StorageOp::Put { key, value });
    }

    fn entry(term: u64, index: u64) -> Entry<u64> {
        Entry { term, index, payload: Payload::Command { session: None, command: index } }
    }

    fn disk(entries: u64) -> Durable {
        let mut d = Durable::new();
        let hs = HardState { version: 1, term: 2, voted_for: Some(NodeId(1)) };
        put(&mut d, hs.key().into(), encode(&hs));
        for i in 1..=entries {
            put(&mut d, log_key(i), encode(&entry(2, i)));
        }
        d
    }

    #[test]
    fn a_torn_tail_is_truncated() {
        let mut d = disk(5);
        let mut torn = encode(&entry(2, 5));
        torn.truncate(torn.len() / 2);
        put(&mut d, log_key(5), torn);
        let r = recover::<u64>(&d).unwrap();
        assert_eq!(r.entries.len(), 4);
        assert_eq!(r.hard_state.term, 2);
        assert!(!r.cleanup.is_empty());
    }

    #[test]
    fn a_corrupt_middle_record_is_an_error() {
        let mut d = disk(5);
        let mut bad = encode(&entry(2, 3));
        let last = bad.len() - 1;
        bad[last] ^= 0x20;
        put(&mut d, log_key(3), bad);
        let err = recover::<u64>(&d).unwrap_err();
        assert!(matches!(err, RecoveryError::Corrupt { ref key, .. } if key == &log_key(3)), "{err}");
    }

    #[test]
    fn a_torn_hard_state_falls_back_to_the_other_slot() {
        let mut d = disk(1);
        let newer = HardState { version: 2, term: 3, voted_for: None };
        let mut torn = encode(&newer);
        torn.truncate(5);
        put(&mut d, newer.key().into(), torn);
        let r = recover::<u64>(&d).unwrap();
        assert_eq!((r.hard_state.version, r.hard_state.term), (1, 2));
        // Both slots bad: corrupt.
        let mut bad = encode(&HardState::default());
        bad[0] ^= 1;
        put(&mut d, HARD_STATE_KEYS[1].into(), bad);
        assert!(matches!(recover::<u64>(&d), Err(RecoveryError::Corrupt { .. })));
    }
}

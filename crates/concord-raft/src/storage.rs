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
//!
//! ```text
//!   +--------------------------+----------------+------------------------------+
//!   | crc32 (4 bytes, LE)      | format (1 byte)| postcard(value)              |
//!   +--------------------------+----------------+------------------------------+
//!                               \______________ checksummed _________________/
//! ```
//! The value is binary ([postcard]: varint integers, bytes as bytes), because every SET writes a
//! log entry: JSON spelled a key and value of *n* bytes as up to 4*n* characters of decimal numbers
//! and commas, to be encoded, checksummed, written and synced. The format byte
//! ([`RECORD_FORMAT`]) says how the rest is encoded, so a record this code cannot read – one written
//! as JSON by an older Concord (its first byte is `{`, 123), or garbage that happens to pass the
//! checksum – is reported as "of an unknown format version N" or "undecodable", never mis-read.
//!
//! A record whose checksum fails is either
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
//! A record whose checksum *holds* but which does not decode was not torn (a torn write is a prefix,
//! and fails its checksum): it is always an error, wherever it is – an unknown format version
//! ([`RecoveryError::UnknownFormat`], e.g. a data directory of an older Concord) or a bug
//! ([`RecoveryError::Corrupt`]). Dropping it as a torn tail would silently lose a synced write.
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
    // `format!("{LOG_PREFIX}{index:020}")` without the formatting machinery: every appended entry
    // names its key, and the formatter was 3 % of a pipelined SET's time.
    let mut digits = [b'0'; 20]; // u64::MAX has 20 digits
    let mut rest = index;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut key = String::with_capacity(LOG_PREFIX.len() + digits.len());
    key.push_str(LOG_PREFIX);
    key.push_str(std::str::from_utf8(&digits).expect("ASCII digits"));
    key
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

/// Write a snapshot: its data, then its meta record (which carries the data's checksum).
pub fn put_snapshot(meta: &SnapshotMeta, data: Vec<u8>) -> [StorageOp; 2] {
    let record = SnapshotRecord { meta: meta.clone(), data_crc: crc32(&data), data_bytes: data.len() as u64 };
    [
        StorageOp::Put { key: snapshot_data_key(meta.index), value: data },
        StorageOp::Put { key: snapshot_meta_key(meta.index), value: encode(&record) },
    ]
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

/// The format byte that starts every record's payload: 1 = postcard. (Records of the JSON era had
/// no format byte; their payload starts with `{`, which reads as the unknown version 123.)
pub const RECORD_FORMAT: u8 = 1;

/// A record's payload (what the checksum covers): the format byte, then the postcard encoding.
/// Its length is what the log counts against `max_bytes_per_append`.
pub fn payload<T: Serialize>(value: &T) -> Vec<u8> {
    // Sized first (a walk that writes nothing): postcard writes byte by byte, and a buffer grown
    // from empty reallocated several times per log entry – 5 % of the simulator's Raft benchmark.
    let size = postcard::experimental::serialized_size(value).expect("raft records serialise");
    let mut buf = Vec::with_capacity(1 + size);
    buf.push(RECORD_FORMAT);
    postcard::to_extend(value, buf).expect("raft records serialise")
}

/// Frame a value: checksum, format byte, postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    seal(&payload(value))
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The checksum fails (or the record is shorter than one): a torn write or damage.
    Checksum(ChecksumError),
    /// The checksum holds, but the payload starts with a format byte this code does not know.
    UnknownFormat(u8),
    /// The checksum holds and the format is known, but the payload does not decode as expected.
    Undecodable(String),
}

impl RecordError {
    /// Whether a torn write (a prefix of a record, cut by a crash) can explain this error. Only a
    /// failed checksum can: a record that passes its checksum was written whole.
    pub fn may_be_torn(&self) -> bool {
        matches!(self, RecordError::Checksum(_))
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Checksum(why) => write!(f, "{why}"),
            RecordError::UnknownFormat(b'{') => write!(
                f,
                "record of an unknown format version {} (it starts with `{{`: a JSON record, as written \
                 by Concord before version {RECORD_FORMAT} of the record format; this build cannot read it)",
                b'{'
            ),
            RecordError::UnknownFormat(version) => write!(
                f,
                "record of an unknown format version {version} (this build reads version {RECORD_FORMAT})"
            ),
            RecordError::Undecodable(why) => write!(f, "checksum ok but undecodable: {why}"),
        }
    }
}

/// Why a framed record fails its checksum: a torn write or damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("record of {0} bytes is shorter than its checksum")]
    TooShort(usize),
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Mismatch { stored: u32, computed: u32 },
}

/// Check a framed record; returns the payload.
pub fn unseal(record: &[u8]) -> Result<&[u8], ChecksumError> {
    if record.len() < 4 {
        return Err(ChecksumError::TooShort(record.len()));
    }
    let (sum, payload) = record.split_at(4);
    let want = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    let got = crc32(payload);
    if want != got {
        return Err(ChecksumError::Mismatch { stored: want, computed: got });
    }
    Ok(payload)
}

/// Check and parse a record: the checksum, the format byte, then the whole rest as one value
/// (trailing bytes are an error too – a record is exactly one value).
pub fn decode<T: DeserializeOwned>(record: &[u8]) -> Result<T, RecordError> {
    let payload = unseal(record).map_err(RecordError::Checksum)?;
    match payload.split_first() {
        None => Err(RecordError::Undecodable("the record is empty (no format byte)".into())),
        Some((&RECORD_FORMAT, body)) => {
            let (value, rest) =
                postcard::take_from_bytes(body).map_err(|e| RecordError::Undecodable(e.to_string()))?;
            if rest.is_empty() {
                Ok(value)
            } else {
                Err(RecordError::Undecodable(format!("{} bytes follow the value", rest.len())))
            }
        }
        Some((&version, _)) => Err(RecordError::UnknownFormat(version)),
    }
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
    /// A whole record (its checksum holds) in a format this build does not read: `version` is its
    /// first payload byte (123, `{`, for the JSON records of older Concord versions). Not damage,
    /// but not something to guess at either.
    UnknownFormat { key: String, version: u8 },
    /// The records are individually fine but do not fit together (e.g. a gap between the snapshot
    /// and the log).
    Inconsistent(String),
    /// The state machine refused the snapshot.
    StateMachine(concord_core::StateMachineError),
    /// The configuration is invalid.
    Config(crate::config::ConfigError),
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Corrupt { key, reason } => write!(f, "corrupt record `{key}`: {reason}"),
            RecoveryError::UnknownFormat { key, version } => {
                write!(f, "`{key}`: {}", RecordError::UnknownFormat(*version))
            }
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

/// A snapshot's machine data or checkpoint record that does not decode.
pub(crate) fn corrupt_machine(reason: String) -> RecoveryError {
    RecoveryError::StateMachine(concord_core::StateMachineError::Corrupt(reason))
}

fn corrupt(key: &str, reason: String) -> RecoveryError {
    RecoveryError::Corrupt { key: key.to_string(), reason }
}

/// The recovery error for a record that could not be read and is not a droppable torn write.
fn unreadable(key: &str, error: RecordError) -> RecoveryError {
    match error {
        RecordError::UnknownFormat(version) => RecoveryError::UnknownFormat { key: key.to_string(), version },
        other => corrupt(key, other.to_string()),
    }
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
                // A whole record we cannot read might be the newer slot: never fall back past it.
                Err(e) if !e.may_be_torn() => return Err(unreadable(key, e)),
                Err(e) => errors.push((key, e)),
            }
        }
    }
    match (present, valid) {
        // The very first hard-state write was torn: it was never synced, so nothing depended on it.
        (1, 0) => cleanup.extend(errors.iter().map(|(key, _)| StorageOp::Delete { key: key.to_string() })),
        // Two slots and neither valid: at most one write can be torn, so the other was damaged.
        (2, 0) => {
            let (key, error) = errors.remove(0);
            return Err(corrupt(key, format!("no valid hard-state slot: {error}")));
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
        // A whole meta record that does not decode is an error even for the newest snapshot (it was
        // written completely, so it is not an interrupted snapshot to skip), unless a newer snapshot
        // already supersedes it.
        let meta = match durable.get(&meta_key).map(decode::<SnapshotRecord>) {
            Some(Err(e)) if snapshot.is_none() && !e.may_be_torn() => return Err(unreadable(&meta_key, e)),
            meta => meta,
        };
        let loaded = (|| -> Result<(SnapshotRecord, Vec<u8>), String> {
            let meta = meta.ok_or("meta record missing")?.map_err(|e| e.to_string())?;
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
            Err(error) => {
                // Torn only if it is the last record on disk, and only if its checksum failed.
                if pos + 1 == records.len() && error.may_be_torn() {
                    tail_from = Some(pos);
                    break;
                }
                return Err(unreadable(key, error));
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
    use std::sync::Arc;

    #[test]
    fn log_keys_are_the_zero_padded_index_as_formatted() {
        let mut indexes = vec![0, 1, 9, 10, 99, 100, 12_345, u64::MAX - 1, u64::MAX];
        indexes.extend((0..20).map(|p| 10u64.pow(p)));
        indexes.extend((1..20).map(|p| 10u64.pow(p) - 1));
        for index in indexes {
            assert_eq!(log_key(index), format!("{LOG_PREFIX}{index:020}"), "index {index}");
        }
        // Their order is the indexes' order: recovery lists the log by key.
        assert!(log_key(9) < log_key(10) && log_key(u64::MAX - 1) < log_key(u64::MAX));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn put(d: &mut Durable, key: String, value: Vec<u8>) {
        d.apply(&StorageOp::Put { key, value });
    }

    fn entry(term: u64, index: u64) -> Entry<u64> {
        Entry { term, index, payload: Payload::Command { session: None, command: Arc::new(index) } }
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

    /// A record sealed as the JSON era did: checksum, then JSON, no format byte.
    fn json_record<T: Serialize>(value: &T) -> Vec<u8> {
        seal(&serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn records_round_trip_with_a_format_byte() {
        let e = Entry {
            term: 7,
            index: 300,
            payload: Payload::Command {
                session: Some(crate::message::Session { client: concord_core::ClientId(9), seq: 2 }),
                command: Arc::new(-5),
            },
        };
        let record = encode(&e);
        assert_eq!(record[4], RECORD_FORMAT);
        assert_eq!(decode::<Entry<i64>>(&record), Ok(e));
        let hs = HardState { version: 3, term: 4, voted_for: Some(NodeId(2)) };
        assert_eq!(decode::<HardState>(&encode(&hs)), Ok(hs));
        // Binary: an entry carrying 100 bytes costs a little over 100 bytes (JSON: about 370).
        let big = Entry {
            term: 1,
            index: 1,
            payload: Payload::Command { session: None, command: Arc::new(vec![200u8; 100]) },
        };
        assert!(encode(&big).len() < 115, "{} bytes", encode(&big).len());
        assert!(json_record(&big).len() > 300);
    }

    #[test]
    fn a_json_record_is_of_an_unknown_format_not_misread() {
        let err = decode::<Entry<u64>>(&json_record(&entry(2, 1))).unwrap_err();
        assert_eq!(err, RecordError::UnknownFormat(b'{'));
        assert!(!err.may_be_torn());
        let text = err.to_string();
        assert!(text.contains("unknown format version 123") && text.contains("JSON"), "{text}");
        let err = decode::<HardState>(&seal(&[9, 1, 2, 3])).unwrap_err();
        assert_eq!(err.to_string(), "record of an unknown format version 9 (this build reads version 1)");
    }

    #[test]
    fn garbage_that_passes_the_checksum_is_undecodable() {
        // Format 1, then bytes that are not an entry (an invalid payload variant).
        let err = decode::<Entry<u64>>(&seal(&[RECORD_FORMAT, 1, 1, 0xee])).unwrap_err();
        assert!(matches!(err, RecordError::Undecodable(_)) && !err.may_be_torn(), "{err}");
        assert!(err.to_string().starts_with("checksum ok but undecodable"), "{err}");
        // A whole value with bytes after it.
        let mut payload = payload(&entry(2, 1));
        payload.push(0);
        let err = decode::<Entry<u64>>(&seal(&payload)).unwrap_err();
        assert_eq!(err, RecordError::Undecodable("1 bytes follow the value".into()));
        // An empty payload whose checksum (0) holds.
        assert!(matches!(decode::<HardState>(&[0, 0, 0, 0]), Err(RecordError::Undecodable(_))));
        // A cut record fails its checksum: that, and only that, may be a torn write.
        let record = encode(&entry(2, 1));
        let err = decode::<Entry<u64>>(&record[..record.len() - 1]).unwrap_err();
        assert!(err.may_be_torn(), "{err}");
    }

    #[test]
    fn an_old_format_tail_record_is_an_error_not_a_torn_write() {
        // The last log record is whole but JSON: truncating it would drop a synced entry.
        let mut d = disk(3);
        put(&mut d, log_key(4), json_record(&entry(2, 4)));
        let err = recover::<u64>(&d).unwrap_err();
        assert_eq!(err, RecoveryError::UnknownFormat { key: log_key(4), version: b'{' });
        assert!(err.to_string().contains("unknown format version 123"), "{err}");
        // Valid checksum and format, undecodable body, at the tail: corrupt, not torn.
        let mut d = disk(3);
        put(&mut d, log_key(4), seal(&[RECORD_FORMAT, 0xff]));
        assert!(
            matches!(recover::<u64>(&d), Err(RecoveryError::Corrupt { ref key, .. }) if key == &log_key(4))
        );
    }

    #[test]
    fn an_old_format_hard_state_is_an_error_even_beside_a_valid_slot() {
        // The JSON slot may be the newer one: falling back to the other would forget a vote.
        let mut d = disk(1);
        let newer = HardState { version: 2, term: 3, voted_for: None };
        put(&mut d, newer.key().into(), json_record(&newer));
        let err = recover::<u64>(&d).unwrap_err();
        assert_eq!(err, RecoveryError::UnknownFormat { key: newer.key().into(), version: b'{' });
        // The only slot, in JSON: not a torn first write to delete.
        let mut d = Durable::new();
        let hs = HardState { version: 1, term: 1, voted_for: None };
        put(&mut d, hs.key().into(), json_record(&hs));
        assert!(matches!(recover::<u64>(&d), Err(RecoveryError::UnknownFormat { .. })));
    }

    #[test]
    fn an_old_format_snapshot_meta_is_an_error_not_an_interrupted_snapshot() {
        let mut d = disk(0);
        let record = SnapshotRecord {
            meta: SnapshotMeta { index: 5, term: 2, membership: Default::default() },
            data_crc: crc32(b"data"),
            data_bytes: 4,
        };
        put(&mut d, snapshot_data_key(5), b"data".to_vec());
        put(&mut d, snapshot_meta_key(5), encode(&record));
        assert_eq!(recover::<u64>(&d).unwrap().snapshot.unwrap().0, record);
        put(&mut d, snapshot_meta_key(5), json_record(&record));
        let err = recover::<u64>(&d).unwrap_err();
        assert_eq!(err, RecoveryError::UnknownFormat { key: snapshot_meta_key(5), version: b'{' });
    }
}

//! The bytes on disk: segment headers, records, checkpoints. Pure functions, no I/O.
//!
//! All integers are little endian. `crc` is CRC-32 (IEEE 802.3 polynomial, as computed by the
//! `crc32fast` crate, hardware-accelerated where the CPU allows).
//!
//! ## Segment file `wal/<seq:020>.log`
//!
//! ```text
//! header (24 bytes):  magic "CNCDWAL\0" (8) | version u32 | seq u64 | crc u32 of the 20 bytes before
//! then records, back to back:
//! record:             len u32 | crc u32 of (len ‖ payload) | payload (len bytes)
//! payload:            op_count u32 | op × op_count
//! op:                 tag u8, then
//!                       1 Put          key_len u32 | key (UTF-8) | value_len u32 | value
//!                       2 Delete       key_len u32 | key
//!                       3 DeleteRange  start_len u32 | start | end_len u32 | end
//! ```
//!
//! One record is one [`crate::Wal::append`] call, so a batch of writes is applied entirely or not
//! at all on recovery. The checksum covers the length too: a damaged length that still points
//! inside the file is caught rather than trusted. The `seq` in the header must match the file name,
//! so a segment copied or renamed by hand is detected.
//!
//! ## Checkpoint file `checkpoint-<seq:020>.bin`
//!
//! ```text
//! magic "CNCDCKPT" (8) | version u32 | seq u64 | entry_count u64
//! entry × entry_count: key_len u32 | key (UTF-8) | value_len u32 | value   (in key order)
//! crc u32 of everything before it
//! ```
//!
//! A checkpoint holds the whole durable state after every record of segments `1..=seq`.
//!
//! ## Watermark file `wal/WATERMARK`
//!
//! ```text
//! magic "CNCDMARK" (8) | version u32 | count u32
//! entry × count:      seq u64 | synced_len u64 | sealed u8      (in seq order)
//! crc u32 of everything before it; any bytes after the crc are ignored
//! ```
//!
//! `synced_len` bytes of segment `seq` (header included) were synced before this file was
//! written. `sealed` = 1: the segment is closed and `synced_len` is its final length. The file is
//! overwritten in place after every sync; a shorter new content may leave old bytes after its crc,
//! which is why they are ignored. What it is for: [`crate::recovery`].

use concord_core::{Durable, StorageOp};
use std::io::Write;

pub const SEGMENT_MAGIC: [u8; 8] = *b"CNCDWAL\0";
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"CNCDCKPT";
pub const WATERMARK_MAGIC: [u8; 8] = *b"CNCDMARK";
/// The one format version this build reads and writes (segments and checkpoints).
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: u64 = 24;
/// `len` and `crc` in front of every record payload.
pub const RECORD_HEADER_BYTES: u64 = 8;
/// The largest payload one record may carry. Bounds what recovery will believe a length field and
/// how much memory one batch can take.
pub const MAX_RECORD_PAYLOAD_BYTES: u64 = 1 << 30;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_DELETE_RANGE: u8 = 3;

pub fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The 24-byte header that opens segment `seq`.
pub fn segment_header(seq: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    let sum = crc(&h[..20]);
    h[20..24].copy_from_slice(&sum.to_le_bytes());
    h
}

/// What is wrong with a segment header.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer bytes than a header: the file was being created when the process died.
    Short,
    BadMagic,
    UnknownVersion(u32),
    BadChecksum,
    /// The header names another segment than the file name does.
    WrongSeq(u64),
}

pub fn check_segment_header(bytes: &[u8], expected_seq: u64) -> Result<(), HeaderProblem> {
    if (bytes.len() as u64) < SEGMENT_HEADER_BYTES {
        return Err(HeaderProblem::Short);
    }
    if bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    if crc(&bytes[..20]) != u32_at(bytes, 20) {
        return Err(HeaderProblem::BadChecksum);
    }
    let seq = u64_at(bytes, 12);
    if seq != expected_seq {
        return Err(HeaderProblem::WrongSeq(seq));
    }
    Ok(())
}

/// Bytes one op takes in a payload.
fn op_encoded_len(op: &StorageOp) -> usize {
    match op {
        StorageOp::Put { key, value } => 1 + 4 + key.len() + 4 + value.len(),
        StorageOp::Delete { key } => 1 + 4 + key.len(),
        StorageOp::DeleteRange { start, end } => 1 + 4 + start.len() + 4 + end.len(),
    }
}

/// The payload length of a batch, without encoding it.
pub fn payload_len(ops: &[StorageOp]) -> u64 {
    4 + ops.iter().map(|op| op_encoded_len(op) as u64).sum::<u64>()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Append one framed record holding `ops` to `out`. The caller has checked
/// `payload_len(ops) <= MAX_RECORD_PAYLOAD_BYTES`, so every length fits in a `u32`.
pub fn encode_record(ops: &[StorageOp], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        match op {
            StorageOp::Put { key, value } => {
                out.push(TAG_PUT);
                put_bytes(out, key.as_bytes());
                put_bytes(out, value);
            }
            StorageOp::Delete { key } => {
                out.push(TAG_DELETE);
                put_bytes(out, key.as_bytes());
            }
            StorageOp::DeleteRange { start, end } => {
                out.push(TAG_DELETE_RANGE);
                put_bytes(out, start.as_bytes());
                put_bytes(out, end.as_bytes());
            }
        }
    }
    let payload_len = (out.len() - start) as u64 - RECORD_HEADER_BYTES;
    debug_assert!(payload_len <= MAX_RECORD_PAYLOAD_BYTES);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    // The checksum covers the length and the payload, skipping its own four bytes.
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 4]);
    hasher.update(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&hasher.finalize().to_le_bytes());
}

/// What reading one record at an offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordRead {
    /// A whole, valid record `bytes` long (header included).
    Valid { ops: Vec<StorageOp>, bytes: u64 },
    /// The file ends inside the record (or inside its header).
    Incomplete { reason: String },
    /// The record is whole but its checksum fails, its length is absurd, or its payload does not
    /// decode.
    Bad { reason: String },
}

/// Read the record that starts at `offset` of `file`.
pub fn read_record(file: &[u8], offset: u64) -> RecordRead {
    let rest = &file[offset as usize..];
    if (rest.len() as u64) < RECORD_HEADER_BYTES {
        return RecordRead::Incomplete {
            reason: format!("only {} of the {RECORD_HEADER_BYTES} record header bytes", rest.len()),
        };
    }
    let len = u64::from(u32_at(rest, 0));
    let stored_crc = u32_at(rest, 4);
    if len > MAX_RECORD_PAYLOAD_BYTES {
        return RecordRead::Bad {
            reason: format!("length field says {len} bytes, above the {MAX_RECORD_PAYLOAD_BYTES}-byte limit"),
        };
    }
    let available = rest.len() as u64 - RECORD_HEADER_BYTES;
    if len > available {
        return RecordRead::Incomplete {
            reason: format!("length field says {len} payload bytes but only {available} remain in the file"),
        };
    }
    let payload = &rest[RECORD_HEADER_BYTES as usize..(RECORD_HEADER_BYTES + len) as usize];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&rest[..4]);
    hasher.update(payload);
    let computed = hasher.finalize();
    if computed != stored_crc {
        return RecordRead::Bad {
            reason: format!("checksum mismatch (stored {stored_crc:08x}, computed {computed:08x})"),
        };
    }
    match decode_payload(payload) {
        Ok(ops) => RecordRead::Valid { ops, bytes: RECORD_HEADER_BYTES + len },
        Err(e) => RecordRead::Bad { reason: format!("checksum ok but the payload does not decode: {e}") },
    }
}

/// A cursor over a byte slice that reports where it ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() - self.pos < n {
            return Err(format!(
                "{what} needs {n} bytes at payload offset {}, {} left",
                self.pos,
                self.bytes.len() - self.pos
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32_at(self.take(4, what)?, 0))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64_at(self.take(8, what)?, 0))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let at = self.pos;
        let raw = self.bytes(what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{what} at payload offset {at} is not UTF-8"))
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn decode_payload(payload: &[u8]) -> Result<Vec<StorageOp>, String> {
    let mut r = Reader { bytes: payload, pos: 0 };
    let count = r.u32("op count")?;
    // Every op takes at least 5 bytes: do not let a damaged count allocate gigabytes.
    let mut ops = Vec::with_capacity((count as usize).min(payload.len() / 5));
    for _ in 0..count {
        let at = r.pos;
        let op = match r.u8("op tag")? {
            TAG_PUT => StorageOp::Put { key: r.string("key")?, value: r.bytes("value")?.to_vec() },
            TAG_DELETE => StorageOp::Delete { key: r.string("key")? },
            TAG_DELETE_RANGE => {
                StorageOp::DeleteRange { start: r.string("range start")?, end: r.string("range end")? }
            }
            other => return Err(format!("unknown op tag {other} at payload offset {at}")),
        };
        ops.push(op);
    }
    if !r.done() {
        return Err(format!("{} bytes left over after {count} ops", payload.len() - r.pos));
    }
    Ok(ops)
}

/// Write the whole of `state` as checkpoint `seq` to `out`, streaming (no second copy of the state
/// in memory). Returns the bytes written.
pub fn write_checkpoint(out: &mut impl Write, seq: u64, state: &Durable) -> std::io::Result<u64> {
    let mut out = HashingWriter { inner: out, hasher: crc32fast::Hasher::new(), bytes: 0 };
    out.write_all(&CHECKPOINT_MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    out.write_all(&seq.to_le_bytes())?;
    out.write_all(&(state.len() as u64).to_le_bytes())?;
    for (key, value) in state.scan_prefix("") {
        out.write_all(&(key.len() as u32).to_le_bytes())?;
        out.write_all(key.as_bytes())?;
        out.write_all(&(value.len() as u32).to_le_bytes())?;
        out.write_all(value)?;
    }
    let sum = out.hasher.clone().finalize();
    out.write_all(&sum.to_le_bytes())?;
    Ok(out.bytes)
}

/// Checkpoint `seq` of `state` as bytes (tests and small states).
pub fn encode_checkpoint(seq: u64, state: &Durable) -> Vec<u8> {
    let mut out = Vec::new();
    write_checkpoint(&mut out, seq, state).expect("writing to a Vec cannot fail");
    out
}

/// Checksums what passes through it.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What is wrong with a checkpoint file.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckpointProblem {
    BadMagic,
    UnknownVersion(u32),
    /// Anything else: checksum, truncation, undecodable entries, a wrong seq.
    Damaged(String),
}

/// Decode checkpoint `expected_seq`.
pub fn decode_checkpoint(bytes: &[u8], expected_seq: u64) -> Result<Durable, CheckpointProblem> {
    if bytes.len() < 8 + 4 + 8 + 8 + 4 {
        return Err(CheckpointProblem::Damaged(format!(
            "only {} bytes, shorter than an empty checkpoint",
            bytes.len()
        )));
    }
    if bytes[..8] != CHECKPOINT_MAGIC {
        return Err(CheckpointProblem::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(CheckpointProblem::UnknownVersion(version));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    let (stored, computed) = (u32_at(sum, 0), crc(body));
    if stored != computed {
        return Err(CheckpointProblem::Damaged(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let mut r = Reader { bytes: body, pos: 12 };
    let seq = r.u64("seq").map_err(CheckpointProblem::Damaged)?;
    if seq != expected_seq {
        return Err(CheckpointProblem::Damaged(format!(
            "the file says it is checkpoint {seq}, its name says {expected_seq}"
        )));
    }
    let count = r.u64("entry count").map_err(CheckpointProblem::Damaged)?;
    let mut state = Durable::new();
    let mut previous: Option<String> = None;
    for _ in 0..count {
        let key = r.string("key").map_err(CheckpointProblem::Damaged)?;
        let value = r.bytes("value").map_err(CheckpointProblem::Damaged)?.to_vec();
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(CheckpointProblem::Damaged(format!("keys out of order at `{key}`")));
        }
        previous = Some(key.clone());
        state.apply_owned(StorageOp::Put { key, value });
    }
    if !r.done() {
        return Err(CheckpointProblem::Damaged(format!(
            "{} bytes left over after {count} entries",
            body.len() - r.pos
        )));
    }
    Ok(state)
}

/// How much of one segment is known to be durable (one entry of the watermark file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncedSegment {
    pub seq: u64,
    /// Bytes from the start of the file (header included) that were synced.
    pub synced_len: u64,
    /// The segment was closed: `synced_len` is its final length and nothing follows.
    pub sealed: bool,
}

const WATERMARK_ENTRY_BYTES: usize = 17;

/// The watermark file's bytes for `segments`.
pub fn encode_watermark(segments: &[SyncedSegment]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + segments.len() * WATERMARK_ENTRY_BYTES + 4);
    out.extend_from_slice(&WATERMARK_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for s in segments {
        out.extend_from_slice(&s.seq.to_le_bytes());
        out.extend_from_slice(&s.synced_len.to_le_bytes());
        out.push(u8::from(s.sealed));
    }
    let sum = crc(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decode a watermark file; the error says what is wrong with it.
pub fn decode_watermark(bytes: &[u8]) -> Result<Vec<SyncedSegment>, String> {
    if bytes.len() < 16 + 4 {
        return Err(format!("only {} bytes, shorter than an empty watermark", bytes.len()));
    }
    if bytes[..8] != WATERMARK_MAGIC {
        return Err("wrong magic bytes".into());
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!("unknown format version {version}"));
    }
    let count = u32_at(bytes, 12) as usize;
    let body_len = count
        .checked_mul(WATERMARK_ENTRY_BYTES)
        .and_then(|n| n.checked_add(16))
        .filter(|&n| n + 4 <= bytes.len())
        .ok_or_else(|| format!("{count} entries do not fit in {} bytes", bytes.len()))?;
    let (stored, computed) = (u32_at(bytes, body_len), crc(&bytes[..body_len]));
    if stored != computed {
        return Err(format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})"));
    }
    let entries: Vec<SyncedSegment> = bytes[16..body_len]
        .chunks_exact(WATERMARK_ENTRY_BYTES)
        .map(|e| SyncedSegment { seq: u64_at(e, 0), synced_len: u64_at(e, 8), sealed: e[16] != 0 })
        .collect();
    if entries.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err("segments out of order".into());
    }
    Ok(entries)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<StorageOp> {
        vec![
            StorageOp::Put { key: "raft/log/00000000000000000001".into(), value: b"entry".to_vec() },
            StorageOp::Delete { key: "gone".into() },
            StorageOp::DeleteRange { start: "a".into(), end: "b".into() },
            StorageOp::Put { key: String::new(), value: Vec::new() },
        ]
    }

    #[test]
    fn a_record_round_trips_and_its_length_is_predicted() {
        let mut buf = vec![0xAA; 3]; // records need not start at offset 0
        encode_record(&ops(), &mut buf);
        assert_eq!(buf.len() as u64 - 3, RECORD_HEADER_BYTES + payload_len(&ops()));
        assert_eq!(read_record(&buf, 3), RecordRead::Valid { ops: ops(), bytes: buf.len() as u64 - 3 });
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flip_is_caught() {
        let mut buf = Vec::new();
        encode_record(&ops(), &mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(read_record(&buf[..cut], 0), RecordRead::Incomplete { .. }), "cut at {cut}");
        }
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert!(!matches!(read_record(&bad, 0), RecordRead::Valid { .. }), "flip at {at}");
        }
    }

    #[test]
    fn segment_headers_are_checked() {
        let h = segment_header(7);
        assert_eq!(check_segment_header(&h, 7), Ok(()));
        assert_eq!(check_segment_header(&h, 8), Err(HeaderProblem::WrongSeq(7)));
        assert_eq!(check_segment_header(&h[..10], 7), Err(HeaderProblem::Short));
        let mut v2 = h;
        v2[8] = 2;
        assert_eq!(check_segment_header(&v2, 7), Err(HeaderProblem::UnknownVersion(2)));
        let mut junk = h;
        junk[0] = b'X';
        assert_eq!(check_segment_header(&junk, 7), Err(HeaderProblem::BadMagic));
        let mut flipped = h;
        flipped[14] ^= 1;
        assert_eq!(check_segment_header(&flipped, 7), Err(HeaderProblem::BadChecksum));
    }

    #[test]
    fn watermarks_round_trip_ignore_trailing_bytes_and_detect_damage() {
        let marks = vec![
            SyncedSegment { seq: 7, synced_len: 4096, sealed: true },
            SyncedSegment { seq: 8, synced_len: 100, sealed: false },
        ];
        let bytes = encode_watermark(&marks);
        assert_eq!(decode_watermark(&bytes), Ok(marks.clone()));
        // A longer previous content left behind the crc.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xEE; 40]);
        assert_eq!(decode_watermark(&longer), Ok(marks));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x02;
            assert!(decode_watermark(&bad).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(decode_watermark(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode_watermark(&encode_watermark(&[])), Ok(vec![]));
    }

    #[test]
    fn checkpoints_round_trip_and_detect_damage() {
        let mut state = Durable::new();
        for op in ops() {
            state.apply(&op);
        }
        state.apply(&StorageOp::Put { key: "z".into(), value: vec![1, 2, 3] });
        let bytes = encode_checkpoint(9, &state);
        assert_eq!(decode_checkpoint(&bytes, 9), Ok(state));
        assert!(matches!(decode_checkpoint(&bytes, 10), Err(CheckpointProblem::Damaged(_))));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(decode_checkpoint(&bad, 9).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(decode_checkpoint(&bytes[..cut], 9).is_err(), "cut at {cut}");
        }
    }
}

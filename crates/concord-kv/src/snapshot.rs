//! The snapshot format: the whole replicated state as compact, deterministic bytes.
//!
//! ```text
//! +---------+------------------------------------------+-------------+
//! | version | postcard(revision, entries)              | crc32       |
//! | 1 byte  | varint-encoded, keys in ascending order  | 4 bytes, LE |
//! +---------+------------------------------------------+-------------+
//! ```
//!
//! * **Deterministic**: entries live in a `BTreeMap`, which serialises in key order, and postcard has
//!   exactly one encoding per value – so equal states give byte-identical snapshots, and replicas can
//!   be compared by hashing their snapshots.
//! * **Versioned**: the first byte names the format; a reader refuses a version it does not know
//!   instead of misreading it.
//! * **Checked**: a CRC-32 (IEEE) over the version byte and payload catches torn or flipped bytes
//!   before decoding; after decoding, the metadata invariants are checked as well.
//! * The derived deadline index and the configured limits are not stored.

use crate::engine::EngineRead;
use crate::store::{check_entries, check_entry, Entry};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The format version this build writes (the first byte of every snapshot).
pub const FORMAT_VERSION: u8 = 1;

const CRC_BYTES: usize = 4;

/// Why a snapshot was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes; even an empty one has 7 (version, payload, checksum)")]
    TooShort(usize),
    #[error(
        "snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupt or torn)"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u8 },
    #[error("snapshot payload does not decode: {0}")]
    Decode(String),
    #[error("snapshot payload has {0} unexpected trailing bytes")]
    Trailing(usize),
    #[error("snapshot is inconsistent: {0}")]
    Invariant(String),
}

/// Same serde shape as the encoding [`encode_engine`] writes, owned.
#[derive(Deserialize)]
struct Body {
    revision: u64,
    entries: BTreeMap<Vec<u8>, Entry>,
}

#[cfg(test)]
pub(crate) fn encode(revision: u64, entries: &BTreeMap<Vec<u8>, Entry>) -> Vec<u8> {
    let mut engine = crate::engine::MemEngine::default();
    crate::engine::Engine::replace_all(&mut engine, revision, entries.clone());
    encode_engine(&engine)
}

/// Encode the engine's state, one entry at a time in key order. The bytes are exactly postcard's
/// encoding of `(revision, BTreeMap<key, entry>)` – a varint length, then each key and entry – so
/// [`decode`] reads them as one map, whichever engine wrote them.
pub(crate) fn encode_engine(engine: &(impl EngineRead + ?Sized)) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_engine(engine, &mut bytes).expect("writing to memory does not fail");
    bytes
}

/// Write the engine's state in the snapshot format to `out`, one entry at a time (memory: one
/// entry), byte for byte what [`encode_engine`] returns. Returns how many bytes were written.
pub fn write_engine(engine: &(impl EngineRead + ?Sized), out: &mut dyn Write) -> std::io::Result<u64> {
    let mut out = Checksummed { inner: out, crc: crc32fast::Hasher::new(), bytes: 0 };
    out.write_all(&[FORMAT_VERSION])?;
    out.write_all(&postcard::to_allocvec(&(engine.revision(), engine.len())).expect("integers serialise"))?;
    let (mut count, mut failed) = (0u64, None);
    engine.scan(&[], None, &mut |key, entry| {
        let pair = postcard::to_allocvec(&(key, entry)).expect("entries serialise");
        match out.write_all(&pair) {
            Ok(()) => {
                count += 1;
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    assert_eq!(count, engine.len(), "the engine's key count disagrees with its contents");
    let crc = std::mem::take(&mut out.crc).finalize();
    out.write_all(&crc.to_le_bytes())?;
    Ok(out.bytes)
}

/// Read snapshot bytes from `input` one entry at a time, handing each to `visit` in key order,
/// without holding more than one entry (and a read buffer) in memory. Checks each entry's
/// metadata, that keys ascend, and the checksum at the end – so `visit` may see entries of a
/// snapshot that then turns out corrupt: read it once to validate, then again to load. Returns the
/// revision and the number of entries.
pub fn read_entries(
    input: &mut dyn Read,
    visit: &mut dyn FnMut(Vec<u8>, Entry) -> Result<(), String>,
) -> Result<(u64, u64), SnapshotError> {
    let mut reader =
        StreamReader { input, buf: Vec::new(), pos: 0, eof: false, crc: crc32fast::Hasher::new() };
    let version: u8 = reader.take()?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    let (revision, count): (u64, u64) = reader.take()?;
    let mut previous: Option<Vec<u8>> = None;
    for _ in 0..count {
        let (key, entry): (Vec<u8>, Entry) = reader.take()?;
        check_entry(revision, &key, &entry).map_err(SnapshotError::Invariant)?;
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(SnapshotError::Invariant(format!(
                "key {} is out of order",
                crate::error::excerpt(&key)
            )));
        }
        previous = Some(key.clone());
        visit(key, entry).map_err(SnapshotError::Invariant)?;
    }
    let computed = std::mem::take(&mut reader.crc).finalize();
    let rest = reader.rest()?;
    if rest.len() < CRC_BYTES {
        return Err(SnapshotError::TooShort(rest.len()));
    }
    if rest.len() > CRC_BYTES {
        return Err(SnapshotError::Trailing(rest.len() - CRC_BYTES));
    }
    let stored = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    Ok((revision, count))
}

/// A writer that checksums and counts what passes through it.
struct Checksummed<'a> {
    inner: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl Checksummed<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.crc.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Postcard values taken one by one from a byte stream, through a buffer that grows only to the
/// largest single value.
struct StreamReader<'a> {
    input: &'a mut dyn Read,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Over every byte taken so far.
    crc: crc32fast::Hasher,
}

impl StreamReader<'_> {
    const READ: usize = 64 * 1024;

    fn take<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, SnapshotError> {
        loop {
            match postcard::take_from_bytes::<T>(&self.buf[self.pos..]) {
                Ok((value, rest)) => {
                    let used = self.buf.len() - self.pos - rest.len();
                    self.crc.update(&self.buf[self.pos..self.pos + used]);
                    self.pos += used;
                    return Ok(value);
                }
                Err(postcard::Error::DeserializeUnexpectedEnd) if !self.eof => self.fill()?,
                Err(e) => return Err(SnapshotError::Decode(e.to_string())),
            }
        }
    }

    /// Read more input, dropping what was already taken.
    fn fill(&mut self) -> Result<(), SnapshotError> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let start = self.buf.len();
        self.buf.resize(start + Self::READ, 0);
        let n = loop {
            match self.input.read(&mut self.buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SnapshotError::Decode(format!("reading the snapshot failed: {e}"))),
            }
        };
        self.buf.truncate(start + n);
        self.eof = n == 0;
        Ok(())
    }

    /// Everything not taken yet, to the end of the input.
    fn rest(&mut self) -> Result<Vec<u8>, SnapshotError> {
        while !self.eof {
            self.fill()?;
            if self.buf.len() - self.pos > CRC_BYTES {
                break;
            }
        }
        Ok(self.buf[self.pos..].to_vec())
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, BTreeMap<Vec<u8>, Entry>), SnapshotError> {
    // Smallest: version byte, revision 0 and 0 entries (one varint byte each), checksum.
    if bytes.len() < 1 + 2 + CRC_BYTES {
        return Err(SnapshotError::TooShort(bytes.len()));
    }
    let (covered, stored) = bytes.split_at(bytes.len() - CRC_BYTES);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = crc32(covered);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    if covered[0] != FORMAT_VERSION {
        return Err(SnapshotError::Version { found: covered[0] });
    }
    let (body, rest) =
        postcard::take_from_bytes::<Body>(&covered[1..]).map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SnapshotError::Trailing(rest.len()));
    }
    check_entries(body.revision, &body.entries).map_err(SnapshotError::Invariant)?;
    Ok((body.revision, body.entries))
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) – the checksum of zip, gzip and PNG, as
/// the WAL and Raft's records compute it (`crc32fast`, hardware-accelerated where it can be).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::Time;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn sample() -> BTreeMap<Vec<u8>, Entry> {
        let mut entries = BTreeMap::new();
        let e = |v: &[u8], c, m, ver, t: Option<u64>| Entry {
            value: v.to_vec(),
            create_revision: c,
            mod_revision: m,
            version: ver,
            expires_at: t.map(Time),
        };
        entries.insert(b"a".to_vec(), e(b"1", 1, 3, 2, None));
        entries.insert(b"b".to_vec(), e(b"xyz", 2, 2, 1, Some(5_000_000)));
        entries
    }

    /// A reader that hands out one byte per call: the stream reader must refill mid-value.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn stream(bytes: &[u8]) -> Result<(u64, BTreeMap<Vec<u8>, Entry>), SnapshotError> {
        let mut out = BTreeMap::new();
        let (revision, count) = read_entries(&mut Trickle(bytes), &mut |k, e| {
            out.insert(k, e);
            Ok(())
        })?;
        assert_eq!(count as usize, out.len());
        Ok((revision, out))
    }

    #[test]
    fn streamed_writes_and_reads_match_the_in_memory_format() {
        let bytes = encode(3, &sample());
        let mut engine = crate::engine::MemEngine::default();
        crate::engine::Engine::replace_all(&mut engine, 3, sample());
        let mut written = Vec::new();
        assert_eq!(write_engine(&engine, &mut written).unwrap(), bytes.len() as u64);
        assert_eq!(written, bytes);
        assert_eq!(stream(&bytes).unwrap(), (3, sample()));
        assert_eq!(stream(&encode(0, &BTreeMap::new())).unwrap(), (0, BTreeMap::new()));
    }

    #[test]
    fn streamed_reads_refuse_every_truncation_bit_flip_and_trailing_byte() {
        let bytes = encode(3, &sample());
        for len in 0..bytes.len() {
            assert!(stream(&bytes[..len]).is_err(), "truncation to {len} bytes accepted");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(stream(&bad).is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(stream(&trailing).is_err());
        // Keys out of order are refused even with a valid checksum.
        let mut covered = bytes[..bytes.len() - CRC_BYTES].to_vec();
        let (a, b) = (
            covered.iter().position(|&c| c == b'a').unwrap(),
            covered.iter().position(|&c| c == b'b').unwrap(),
        );
        covered.swap(a, b);
        assert!(matches!(stream(&seal(&covered)), Err(SnapshotError::Invariant(_))));
    }

    #[test]
    fn empty_state_is_seven_bytes_and_round_trips() {
        let bytes = encode(0, &BTreeMap::new());
        assert_eq!(bytes.len(), 7);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes).unwrap(), (0, BTreeMap::new()));
    }

    #[test]
    fn state_round_trips_exactly() {
        let bytes = encode(3, &sample());
        assert_eq!(decode(&bytes).unwrap(), (3, sample()));
    }

    /// The exact bytes of a small state. If this changes, snapshots written by older builds no
    /// longer read the same: bump `FORMAT_VERSION` (and keep a reader for the old one).
    #[test]
    fn format_version_1_layout_is_pinned() {
        let bytes = encode(3, &sample());
        #[rustfmt::skip]
        let covered = [
            FORMAT_VERSION,
            0x03, // revision 3
            0x02, // 2 entries
            // key "a", value "1", create 1, mod 3, version 2, no deadline
            0x01, b'a', 0x01, b'1', 0x01, 0x03, 0x02, 0x00,
            // key "b", value "xyz", create 2, mod 2, version 1, deadline Some(5_000_000 ns)
            0x01, b'b', 0x03, b'x', b'y', b'z', 0x02, 0x02, 0x01, 0x01, 0xc0, 0x96, 0xb1, 0x02,
        ];
        assert_eq!(&bytes[..bytes.len() - CRC_BYTES], &covered[..]);
        assert_eq!(bytes[bytes.len() - CRC_BYTES..], crc32(&covered).to_le_bytes());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = encode(3, &sample());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    matches!(decode(&bad), Err(SnapshotError::Checksum { .. })),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = encode(3, &sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncation to {len} bytes accepted");
        }
        assert_eq!(decode(&[]), Err(SnapshotError::TooShort(0)));
    }

    /// Rewrite `covered` (version + payload) with a valid checksum, to test the checks behind it.
    fn seal(covered: &[u8]) -> Vec<u8> {
        let mut bytes = covered.to_vec();
        bytes.extend_from_slice(&crc32(covered).to_le_bytes());
        bytes
    }

    #[test]
    fn unknown_version_trailing_bytes_and_garbage_are_refused() {
        let bytes = encode(3, &sample());
        let covered = &bytes[..bytes.len() - CRC_BYTES];

        let mut v2 = covered.to_vec();
        v2[0] = 2;
        assert_eq!(decode(&seal(&v2)), Err(SnapshotError::Version { found: 2 }));

        let mut trailing = covered.to_vec();
        trailing.push(0);
        assert_eq!(decode(&seal(&trailing)), Err(SnapshotError::Trailing(1)));

        // A correctly checksummed payload that claims 2^63 entries must fail, not allocate.
        let garbage = seal(&[FORMAT_VERSION, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(decode(&garbage), Err(SnapshotError::Decode(_))));
    }

    #[test]
    fn impossible_metadata_is_refused() {
        // Revision 2, but key "a" claims mod revision 3.
        let bytes = encode(2, &sample());
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "snapshot is inconsistent: key \"a\" has impossible metadata: create revision 1, mod revision 3, \
             version 2 (store revision 2)"
        );
    }
}

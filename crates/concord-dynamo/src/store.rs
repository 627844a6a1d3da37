//! # What a replica stores, and how it lies on disk
//!
//! Each key holds one [`Object`]: a register (its [`Versions`]), a PN-counter, an OR-set or a map
//! of LWW registers (see [`crate::crdt`]). Objects are merged, never overwritten, so a replica can
//! take in any other replica's copy at any time.
//!
//! Disk layout (keys of the node's [`concord_core::Durable`]):
//!
//! ```text
//! dynamo/meta                       incarnation and the reserved dot counter
//! dynamo/data/<key>                 an object this node holds as a home replica
//! dynamo/hint/<owner:10>/<key>      an object held for `owner` (hinted handoff)
//! ```
//!
//! Every record is `format version (1 byte) | postcard body | FNV-1a checksum (8 bytes)` – binary,
//! because JSON spelled a 32-byte value as a 100-odd-byte array of numbers. The checksum covers the
//! version byte and the body. At boot a record that fails its checksum is a torn write (a crash
//! cut it off) and is skipped; a record whose checksum holds but whose version is unknown or whose
//! body does not decode was written by other code (another format version, or a bug) and fails the
//! boot with the key named – skipping it would silently drop data this replica acknowledged.
//! [`FORMAT_VERSION`] must change with any change to how records are encoded. **Limitation:** a record is overwritten in place, so a write torn by a crash
//! destroys the previous (synced, possibly acknowledged) version of that key on this replica too.
//! Other replicas still hold it (W ≥ 2, or anti-entropy has run), but with W = 1 it can be lost.
//! The simulator's lab therefore uses `on_crash = "lose"`; append-only records with compaction
//! (as `concord-gossip` does) would lift this.

use crate::crdt::{LwwMap, OrSet, PnCounter};
use crate::ring::hash64;
use crate::version::{Resolution, Versions};
use concord_core::NodeId;
use serde::{Deserialize, Serialize};

/// One key's replicated state. New kinds go last: the variant's index is its tag on disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Object {
    Register(Versions),
    Counter(PnCounter),
    /// A set of members (a Redis set).
    Set(OrSet<Vec<u8>>),
    /// Fields with last-writer-wins values (a Redis hash).
    Map(LwwMap),
}

impl Object {
    /// Join another replica's copy into this one. A coordinator never changes a key's kind, so two
    /// kinds under one key come only from two kinds written concurrently to a new key on different
    /// replicas (a client misuse); they resolve deterministically – register, then counter, then
    /// map, then set – and the losing kind's writes are gone.
    pub fn merge(&mut self, resolution: Resolution, other: &Object) {
        let other_wins = other.rank() > self.rank();
        match (&mut *self, other) {
            (Object::Register(a), Object::Register(b)) => a.merge(resolution, b),
            (Object::Counter(a), Object::Counter(b)) => a.merge(b),
            (Object::Set(a), Object::Set(b)) => a.merge(b),
            (Object::Map(a), Object::Map(b)) => a.merge(b),
            _ if other_wins => *self = other.clone(),
            _ => {}
        }
    }

    /// Which kind wins a clash of kinds (see [`Object::merge`]).
    fn rank(&self) -> u8 {
        match self {
            Object::Register(_) => 3,
            Object::Counter(_) => 2,
            Object::Map(_) => 1,
            Object::Set(_) => 0,
        }
    }

    /// The kind's name, as errors say it (`"k" holds a set, not a hash`).
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Register(_) => "register",
            Object::Counter(_) => "counter",
            Object::Set(_) => "set",
            Object::Map(_) => "hash",
        }
    }

    /// A digest of the whole state: equal digests ⇔ (with overwhelming probability) equal objects.
    /// Replicas compare digests, so every node must compute them from the same encoding.
    pub fn digest(&self) -> u64 {
        hash64(&postcard::to_allocvec(self).expect("objects serialise"))
    }

    /// Bytes of the object's binary (postcard) encoding, as on disk without the record's version
    /// byte and checksum; used for anti-entropy's byte accounting.
    pub fn size(&self) -> u64 {
        postcard::to_allocvec(self).map_or(0, |v| v.len() as u64)
    }

    /// A register whose every sibling is a delete.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Object::Register(v) if v.is_tombstone())
    }
}

pub const META_KEY: &str = "dynamo/meta";
pub const DATA_PREFIX: &str = "dynamo/data/";
pub const HINT_PREFIX: &str = "dynamo/hint/";

pub fn data_key(key: &str) -> String {
    format!("{DATA_PREFIX}{key}")
}

pub fn hint_key(owner: NodeId, key: &str) -> String {
    format!("{HINT_PREFIX}{:010}/{key}", owner.0)
}

pub fn parse_hint_key(disk_key: &str) -> Option<(NodeId, &str)> {
    let (owner, key) = disk_key.strip_prefix(HINT_PREFIX)?.split_once('/')?;
    Some((NodeId(owner.parse().ok()?), key))
}

/// Durable per-node metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub incarnation: u64,
    /// Dots up to here may have been issued: after a restart, counting resumes above it.
    pub dots_reserved: u64,
}

/// The record format written by [`encode`]: 1 = postcard. (Records before it were JSON, whose
/// first byte is `{` or `[`, so they are told apart and refused, not misread.)
pub const FORMAT_VERSION: u8 = 1;

fn checksum(bytes: &[u8]) -> u64 {
    hash64(bytes)
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Too short or the checksum does not match: a write torn by a crash.
    Torn,
    /// The checksum holds but the format version is not one this code reads.
    UnknownVersion(u8),
    /// The checksum and version hold but the body does not decode as the expected type.
    Corrupt(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Torn => write!(f, "the record is torn (its checksum does not match)"),
            DecodeError::UnknownVersion(v) => write!(
                f,
                "the record has format version {v}, but this build reads only version {FORMAT_VERSION}"
            ),
            DecodeError::Corrupt(e) => write!(f, "the record does not decode: {e}"),
        }
    }
}

/// `version | postcard | checksum`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    bytes.extend_from_slice(&postcard::to_allocvec(value).expect("records serialise"));
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// Read a record written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let split = bytes.len().checked_sub(8).ok_or(DecodeError::Torn)?;
    let (checked, sum) = bytes.split_at(split);
    let sum = u64::from_le_bytes(sum.try_into().expect("eight bytes"));
    if checked.is_empty() || checksum(checked) != sum {
        return Err(DecodeError::Torn);
    }
    match checked[0] {
        FORMAT_VERSION => {
            let (value, rest) =
                postcard::take_from_bytes(&checked[1..]).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            if !rest.is_empty() {
                return Err(DecodeError::Corrupt(format!("{} bytes follow the value", rest.len())));
            }
            Ok(value)
        }
        other => Err(DecodeError::UnknownVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Dot, Sibling, VersionVector};

    #[test]
    fn records_round_trip_and_torn_ones_are_rejected() {
        let meta = Meta { incarnation: 3, dots_reserved: 1024 };
        let bytes = encode(&meta);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Meta>(&bytes), Ok(meta));
        for cut in 0..bytes.len() {
            assert_eq!(decode::<Meta>(&bytes[..cut]), Err(DecodeError::Torn), "cut at {cut}");
        }
    }

    /// A record with a valid checksum around an unknown version or a wrong body is not torn: it
    /// is reported as such, so boot can refuse it instead of skipping it.
    fn resealed(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }

    #[test]
    fn unknown_versions_and_undecodable_bodies_are_not_mistaken_for_torn_writes() {
        let json = serde_json::to_vec(&Meta { incarnation: 3, dots_reserved: 1024 }).unwrap();
        assert_eq!(decode::<Meta>(&resealed(&json)), Err(DecodeError::UnknownVersion(b'{')));
        // Version 1, but the body is one byte too short for a Meta (two varints).
        assert!(matches!(decode::<Meta>(&resealed(&[FORMAT_VERSION, 3])), Err(DecodeError::Corrupt(_))));
        let mut trailing = encode(&Meta::default());
        trailing.truncate(trailing.len() - 8);
        trailing.push(0);
        assert!(matches!(decode::<Meta>(&resealed(&trailing)), Err(DecodeError::Corrupt(_))));
    }

    #[test]
    fn objects_are_smaller_in_binary_than_in_json() {
        let sibling =
            Sibling { dot: Dot { node: NodeId(1), counter: 7 }, timestamp: 1, value: Some(vec![200; 32]) };
        let mut versions = Versions::default();
        versions.write(Resolution::Dvv, &VersionVector::default(), sibling);
        let object = Object::Register(versions);
        let bytes = encode(&object);
        assert_eq!(decode::<Object>(&bytes), Ok(object.clone()));
        assert_eq!(bytes.len() as u64, 1 + object.size() + 8);
        assert!(object.size() * 3 < serde_json::to_vec(&object).unwrap().len() as u64);
    }

    #[test]
    fn hint_keys_name_the_owner() {
        let k = hint_key(NodeId(7), "a/b");
        assert_eq!(parse_hint_key(&k), Some((NodeId(7), "a/b")));
    }
}

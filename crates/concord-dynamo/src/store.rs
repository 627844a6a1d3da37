//! # What a replica stores, and how it lies on disk
//!
//! Each key holds one [`Object`]: a register (its [`Versions`]) or a PN-counter. Objects are merged,
//! never overwritten, so a replica can take in any other replica's copy at any time.
//!
//! Disk layout (keys of the node's [`concord_core::Durable`]):
//!
//! ```text
//! dynamo/meta                       incarnation and the reserved dot counter
//! dynamo/data/<key>                 an object this node holds as a home replica
//! dynamo/hint/<owner:10>/<key>      an object held for `owner` (hinted handoff)
//! ```
//!
//! Every record is `JSON | FNV-1a checksum (8 bytes)`: a torn write fails its checksum and is
//! skipped at boot. **Limitation:** a record is overwritten in place, so a write torn by a crash
//! destroys the previous (synced, possibly acknowledged) version of that key on this replica too.
//! Other replicas still hold it (W ≥ 2, or anti-entropy has run), but with W = 1 it can be lost.
//! The simulator's lab therefore uses `on_crash = "lose"`; append-only records with compaction
//! (as `concord-gossip` does) would lift this.

use crate::crdt::PnCounter;
use crate::ring::hash64;
use crate::version::{Resolution, Versions};
use concord_core::NodeId;
use serde::{Deserialize, Serialize};

/// One key's replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Object {
    Register(Versions),
    Counter(PnCounter),
}

impl Object {
    /// Join another replica's copy into this one. Objects of different kinds under one key (a
    /// client misuse) resolve deterministically: the register wins.
    pub fn merge(&mut self, resolution: Resolution, other: &Object) {
        match (&mut *self, other) {
            (Object::Register(a), Object::Register(b)) => a.merge(resolution, b),
            (Object::Counter(a), Object::Counter(b)) => a.merge(b),
            (Object::Counter(_), Object::Register(_)) => *self = other.clone(),
            (Object::Register(_), Object::Counter(_)) => {}
        }
    }

    /// A digest of the whole state: equal digests ⇔ (with overwhelming probability) equal objects.
    pub fn digest(&self) -> u64 {
        hash64(&serde_json::to_vec(self).expect("objects serialise"))
    }

    /// Bytes on the wire / disk (for anti-entropy accounting).
    pub fn size(&self) -> u64 {
        serde_json::to_vec(self).map_or(0, |v| v.len() as u64)
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

fn checksum(bytes: &[u8]) -> u64 {
    hash64(bytes)
}

/// `JSON | checksum`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("records serialise");
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// `None` for a torn or corrupt record.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    let body = bytes.get(..bytes.len().checked_sub(8)?)?;
    let sum = u64::from_le_bytes(bytes[body.len()..].try_into().ok()?);
    if checksum(body) != sum {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_rejected() {
        let meta = Meta { incarnation: 3, dots_reserved: 1024 };
        let bytes = encode(&meta);
        assert_eq!(decode::<Meta>(&bytes), Some(meta));
        assert_eq!(decode::<Meta>(&bytes[..bytes.len() - 1]), None);
    }

    #[test]
    fn hint_keys_name_the_owner() {
        let k = hint_key(NodeId(7), "a/b");
        assert_eq!(parse_hint_key(&k), Some((NodeId(7), "a/b")));
    }
}

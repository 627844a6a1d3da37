//! Hash slots, exactly as Redis Cluster computes them, so that a cluster-aware client and Concord
//! agree on where every key lives.
//!
//! The key space is cut into [`SLOTS`] = 16 384 slots. A key's slot is `CRC16(key) mod 16384`,
//! where CRC16 is the XMODEM variant (polynomial `0x1021`, initial value 0, no reflection – Redis's
//! `crc16.c`). The **hash tag** rule lets a client keep related keys together: if the key contains
//! a `{` followed later by a `}` with at least one byte between them, only the bytes between the
//! *first* `{` and the first `}` after it are hashed. So `{user1000}.following` and
//! `{user1000}.followers` share a slot, while `foo{}{bar}` hashes whole (the first braces are empty).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How many hash slots the key space has (Redis Cluster's number).
pub const SLOTS: u16 = 16_384;

/// One of the [`SLOTS`] hash slots; always `< 16384`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot(u16);

impl Slot {
    /// The slot numbered `n`, or `None` when `n` is out of range (Redis: "Invalid or out of range slot").
    pub fn new(n: i64) -> Option<Slot> {
        (0..SLOTS as i64).contains(&n).then_some(Slot(n as u16))
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Every slot, in order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOTS).map(Slot)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The slots `start..=end` (inclusive, as `CLUSTER SLOTS` prints them). Never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotRange {
    pub start: Slot,
    pub end: Slot,
}

impl SlotRange {
    /// `start..=end`, or `None` if `end < start`.
    pub fn new(start: Slot, end: Slot) -> Option<SlotRange> {
        (start <= end).then_some(SlotRange { start, end })
    }

    pub fn single(slot: Slot) -> SlotRange {
        SlotRange { start: slot, end: slot }
    }

    /// Every slot.
    pub fn everything() -> SlotRange {
        SlotRange { start: Slot(0), end: Slot(SLOTS - 1) }
    }

    pub fn len(self) -> usize {
        (self.end.0 - self.start.0) as usize + 1
    }

    pub fn is_empty(self) -> bool {
        false // a range always holds at least its start
    }

    pub fn contains(self, slot: Slot) -> bool {
        self.start <= slot && slot <= self.end
    }

    pub fn overlaps(self, other: SlotRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn slots(self) -> impl Iterator<Item = Slot> {
        (self.start.0..=self.end.0).map(Slot)
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// CRC16/XMODEM, one table lookup per byte. The table is computed at compile time from the
/// polynomial, so there is no 512-byte literal to get wrong.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC16/XMODEM of `bytes` (Redis's `crc16`).
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16_TABLE[((crc >> 8) as u8 ^ b) as usize])
}

/// The part of `key` that is hashed: the hash tag if it has a non-empty one, else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot of `key` (Redis's `keyHashSlot`). A record of a hash, list, set or sorted set (see
/// `concord_kv::redis`) lives in its key's slot, so it moves with the key between shards.
pub fn key_slot(key: &[u8]) -> Slot {
    let key = concord_kv::redis::owner_key(key).unwrap_or(key);
    Slot(crc16(hash_tag(key)) & (SLOTS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, and the one Redis's crc16.c states in its header.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values printed by redis-server 7's `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"somekey").get(), 11058);
        assert_eq!(key_slot(b"foo").get(), 12182);
        assert_eq!(key_slot(b"bar").get(), 5061);
        assert_eq!(key_slot(b"hello").get(), 866);
        assert_eq!(key_slot(b"").get(), 0);
    }

    #[test]
    fn a_collections_records_hash_to_its_keys_slot() {
        let record = concord_kv::redis::record_prefix(b"somekey");
        assert_eq!(key_slot(&[record.as_slice(), b"\x01field"].concat()), key_slot(b"somekey"));
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}", "an empty first tag hashes the whole key");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar", "the first {{ and the first }} after it");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar", "only the first tag counts");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar", "no closing brace: the whole key");
        assert_eq!(hash_tag(b"}{x}"), b"x");
    }

    #[test]
    fn slot_numbers_and_ranges() {
        assert_eq!(Slot::new(16383).map(Slot::get), Some(16383));
        assert_eq!(Slot::new(16384), None);
        assert_eq!(Slot::new(-1), None);
        let r = SlotRange::new(Slot(10), Slot(20)).unwrap();
        assert_eq!(r.len(), 11);
        assert!(r.contains(Slot(10)) && r.contains(Slot(20)) && !r.contains(Slot(21)));
        assert!(r.overlaps(SlotRange::single(Slot(20))) && !r.overlaps(SlotRange::single(Slot(21))));
        assert_eq!(SlotRange::new(Slot(5), Slot(4)), None);
        assert_eq!(SlotRange::everything().len(), 16384);
        assert_eq!(r.to_string(), "10-20");
    }
}

//! The decoded entries of recently used keys, in front of the redb engine.
//!
//! A profile of `redis-benchmark` against one node (docs/bench/redis-door.md) found the redb
//! lookup – open the table, walk the B-tree, decode the entry – to be the largest single cost of a
//! `GET`, and of a `SET` too (a write reads the old entry first, for its revisions and type). Hot
//! keys are read over and over; this cache answers them from memory.
//!
//! **Direct-mapped.** A key's hash picks one slot; a newer key takes the slot over. So there is no
//! eviction policy to get wrong, every operation is O(1), and memory is bounded by the slot count
//! times the largest entry kept ([`MAX_CACHED_BYTES`]; bigger entries are never cached).
//!
//! **Coherent by construction.** The engine is the only writer of its state, and it tells the
//! cache of every change: a put stores the new entry, a remove stores "absent" (absence is cached
//! too: a `SET` of a new key reads nothing first), and anything that replaces the state wholesale
//! – a snapshot install, dropping the applies since the checkpoint – clears it. The cache holds
//! exactly what the open write transaction holds for its keys, so reads from it are the reads the
//! engine would have answered.

use concord_core::Time;
use concord_kv::Entry;
use std::hash::{BuildHasher, Hasher};

/// Slots in the cache.
pub const SLOTS: usize = 1 << 15;
/// Key plus value bytes above which an entry is not cached: `SLOTS × MAX_CACHED_BYTES` = 32 MiB
/// at most (plus a slot's fixed overhead).
pub const MAX_CACHED_BYTES: usize = 1024;

/// What a put learns of the entry it replaces ([`EntryCache::known`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Absent,
    Present { expires_at: Option<Time> },
}

impl Known {
    pub fn of(entry: Option<&Entry>) -> Known {
        entry.map_or(Known::Absent, |e| Known::Present { expires_at: e.expires_at })
    }
}

/// What a slot knows of its key: its entry, or that it has none.
type Slot = Option<(Box<[u8]>, Option<Entry>)>;

pub struct EntryCache {
    slots: Vec<Slot>,
    hasher: std::hash::RandomState,
}

impl Default for EntryCache {
    fn default() -> Self {
        EntryCache { slots: vec![None; SLOTS], hasher: std::hash::RandomState::new() }
    }
}

impl EntryCache {
    fn slot(&self, key: &[u8]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        (h.finish() as usize) % SLOTS
    }

    /// What the slot of `key` holds for it, if it holds that key.
    fn lookup(&self, key: &[u8]) -> Option<&Option<Entry>> {
        match &self.slots[self.slot(key)] {
            Some((k, entry)) if **k == *key => Some(entry),
            _ => None,
        }
    }

    /// `Some(entry or None)` if the cache knows the key; `None` if the engine must look.
    pub fn get(&self, key: &[u8]) -> Option<Option<Entry>> {
        self.lookup(key).cloned()
    }

    /// What the cache knows of `key`'s entry, without copying it: what a put needs of the entry
    /// it replaces (whether there is one, and its deadline). `None` if the engine must look.
    pub fn known(&self, key: &[u8]) -> Option<Known> {
        self.lookup(key).map(|entry| Known::of(entry.as_ref()))
    }

    /// The engine's entry for `key` is now `entry` (`None`: absent).
    pub fn set(&mut self, key: &[u8], entry: Option<&Entry>) {
        let slot = self.slot(key);
        let size = key.len() + entry.map_or(0, |e| e.value.len());
        // Too large to keep: the slot is emptied all the same, as it may hold this key's older
        // entry, which must not answer again.
        self.slots[slot] = (size <= MAX_CACHED_BYTES).then(|| (key.into(), entry.cloned()));
    }

    /// Forget everything (the state was replaced).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &[u8]) -> Entry {
        Entry { value: value.to_vec(), create_revision: 1, mod_revision: 1, version: 1, expires_at: None }
    }

    #[test]
    fn answers_what_it_was_told_and_nothing_else() {
        let mut cache = EntryCache::default();
        assert_eq!(cache.get(b"a"), None, "unknown until told");
        cache.set(b"a", Some(&entry(b"1")));
        assert_eq!(cache.get(b"a"), Some(Some(entry(b"1"))));
        assert_eq!(cache.known(b"a"), Some(Known::Present { expires_at: None }));
        cache.set(b"a", None);
        assert_eq!(cache.get(b"a"), Some(None), "absence is known too");
        assert_eq!(cache.known(b"a"), Some(Known::Absent));
        assert_eq!(cache.known(b"z"), None);
        cache.set(b"a", Some(&entry(&[7; MAX_CACHED_BYTES])));
        assert_eq!(cache.get(b"a"), None, "a large entry replaces the small one by nothing");
        cache.set(b"b", Some(&entry(b"2")));
        cache.clear();
        assert_eq!(cache.get(b"b"), None);
    }

    #[test]
    fn a_key_sharing_a_slot_never_answers_for_another() {
        let mut cache = EntryCache::default();
        // More keys than slots: every slot is taken over many times.
        for i in 0..(SLOTS as u32 * 3) {
            let key = i.to_be_bytes();
            cache.set(&key, Some(&entry(&key)));
        }
        let mut answered = 0;
        for i in 0..(SLOTS as u32 * 3) {
            let key = i.to_be_bytes();
            if let Some(found) = cache.get(&key) {
                assert_eq!(found, Some(entry(&key)));
                answered += 1;
            }
        }
        // Each slot answers for the last key stored in it: 3 keys per slot on average leave about
        // 95 % of the slots taken (1 - e^-3), so a cache that answered nothing would fail here.
        assert!(answered > SLOTS / 2, "only {answered} of {SLOTS} slots answered");
    }
}

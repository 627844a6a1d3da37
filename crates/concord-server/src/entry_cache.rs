//! The decoded entries of recently used keys, in front of the redb engine.
//!
//! A profile of `redis-benchmark` against one node (docs/bench/redis-door.md) found the redb
//! lookup – open the table, walk the B-tree, decode the entry – to be the largest single cost of a
//! `GET`, and of a `SET` too (a write reads the old entry first, for its revisions and type). Hot
//! keys are read over and over; this cache answers them from memory.
//!
//! **Four-way set-associative.** A key's hash picks a set of four slots; the key may sit in any
//! of them, and a newcomer to a full set takes the place of the set's oldest arrival (FIFO). Every
//! operation is O(1) and memory is bounded by the slot count times the largest entry kept
//! ([`MAX_CACHED_BYTES`]; bigger entries are never cached). Each slot has a 16-bit tag from the
//! hash, kept apart from the slots, so a lookup reads one small line of tags and compares a key
//! only where a tag matches. (The cache was direct-mapped before: with 10 000 hot keys in 32 768
//! slots a quarter of the keys shared a slot with another and the two evicted each other, so a
//! pipelined `GET` went to redb about one time in six – 5 % of its time in a profile,
//! docs/bench/redis-door.md.)
//!
//! The hash is rustc-hash's (Fx) with a per-process seed: several times cheaper than SipHash on
//! short keys. Keys are the clients' to choose, so they can be made to collide; the cost of that
//! is only misses (answered from redb), never a longer search: a set has four slots whatever
//! happens.
//!
//! **Coherent by construction.** The engine is the only writer of its state, and it tells the
//! cache of every change: a put stores the new entry, a remove stores "absent" (absence is cached
//! too: a `SET` of a new key reads nothing first), and anything that replaces the state wholesale
//! – a snapshot install, dropping the applies since the checkpoint – clears it. The cache holds
//! exactly what the open write transaction holds for its keys, so reads from it are the reads the
//! engine would have answered.

use concord_core::Time;
use concord_kv::Entry;
use std::hash::Hasher;

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

/// Slots per set.
const WAYS: usize = 4;
const SETS: usize = SLOTS / WAYS;
/// The tag of an empty slot (a key's tag is never 0).
const EMPTY: u16 = 0;

pub struct EntryCache {
    slots: Vec<Slot>,
    /// Each slot's tag (`EMPTY` if the slot is): checked before the slot's key is.
    tags: Vec<u16>,
    /// Per set, the way the next newcomer replaces when the set is full.
    next_victim: Vec<u8>,
    seed: usize,
}

impl Default for EntryCache {
    fn default() -> Self {
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u64) as usize;
        EntryCache { slots: vec![None; SLOTS], tags: vec![EMPTY; SLOTS], next_victim: vec![0; SETS], seed }
    }
}

impl EntryCache {
    #[cfg(test)]
    fn with_seed(seed: usize) -> EntryCache {
        EntryCache { seed, ..EntryCache::default() }
    }

    /// The set of `key` (its first slot's index) and its tag.
    fn place(&self, key: &[u8]) -> (usize, u16) {
        let mut h = rustc_hash::FxHasher::with_seed(self.seed);
        h.write(key);
        let hash = h.finish();
        let set = (hash as usize) % SETS;
        let tag = ((hash >> 48) as u16).max(1);
        (set * WAYS, tag)
    }

    /// The slot holding `key`, if one does.
    fn find(&self, first: usize, tag: u16, key: &[u8]) -> Option<usize> {
        (first..first + WAYS)
            .find(|&i| self.tags[i] == tag && matches!(&self.slots[i], Some((k, _)) if **k == *key))
    }

    /// What the cache holds for `key`, if it holds that key.
    fn lookup(&self, key: &[u8]) -> Option<&Option<Entry>> {
        let (first, tag) = self.place(key);
        let i = self.find(first, tag, key)?;
        self.slots[i].as_ref().map(|(_, entry)| entry)
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
        let (first, tag) = self.place(key);
        let size = key.len() + entry.map_or(0, |e| e.value.len());
        let held = self.find(first, tag, key);
        if size > MAX_CACHED_BYTES {
            // Too large to keep: the key's slot is emptied all the same, as it holds this key's
            // older entry, which must not answer again.
            if let Some(i) = held {
                self.slots[i] = None;
                self.tags[i] = EMPTY;
            }
            return;
        }
        let i =
            held.or_else(|| (first..first + WAYS).find(|&i| self.tags[i] == EMPTY)).unwrap_or_else(|| {
                let set = first / WAYS;
                let way = usize::from(self.next_victim[set]);
                self.next_victim[set] = ((way + 1) % WAYS) as u8;
                first + way
            });
        match &mut self.slots[i] {
            // The same key: only the entry changes (no new allocation for the key).
            Some((_, old)) if held.is_some() => *old = entry.cloned(),
            slot => *slot = Some((key.into(), entry.cloned())),
        }
        self.tags[i] = tag;
    }

    /// Forget everything (the state was replaced).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.tags.iter_mut().for_each(|tag| *tag = EMPTY);
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

    #[test]
    fn a_working_set_a_third_of_the_slots_stays_whole() {
        // 10 000 hot keys (the benchmark's `-r 10000`) in 32 768 slots: a direct-mapped table
        // keeps only about 86 % of them (the rest share a slot and evict each other); four ways
        // keep all but the overflow of the rare set drawn five or more keys (about 0.8 %).
        let mut cache = EntryCache::default();
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| format!("key:{i:012}").into_bytes()).collect();
        for key in &keys {
            cache.set(key, Some(&entry(key)));
        }
        let answered = keys.iter().filter(|key| cache.get(key) == Some(Some(entry(key)))).count();
        assert!(answered >= 9_850, "only {answered} of 10 000 keys answered");
    }

    #[test]
    fn a_full_set_replaces_its_oldest_arrival_and_an_update_keeps_one_slot() {
        let mut cache = EntryCache::with_seed(7);
        // Five keys of one set.
        let first = cache.place(b"k0").0;
        let keys: Vec<Vec<u8>> = (0..u32::MAX)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|key| cache.place(key).0 == first)
            .take(WAYS + 1)
            .collect();
        for key in &keys[..WAYS] {
            cache.set(key, Some(&entry(b"old")));
        }
        // An update in place: the set still holds four keys, the first with its new entry.
        cache.set(&keys[0], Some(&entry(b"new")));
        assert_eq!(cache.get(&keys[0]), Some(Some(entry(b"new"))));
        let held = (first..first + WAYS).filter(|&i| cache.tags[i] != EMPTY).count();
        assert_eq!(held, WAYS);
        // A fifth key takes the place of the first to arrive.
        cache.set(&keys[WAYS], None);
        assert_eq!(cache.get(&keys[WAYS]), Some(None));
        assert_eq!(cache.get(&keys[0]), None, "evicted: the engine must look");
        for key in &keys[1..WAYS] {
            assert_eq!(cache.get(key), Some(Some(entry(b"old"))));
        }
        // A large entry for a cached key empties its slot: its older entry must not answer.
        cache.set(&keys[1], Some(&entry(&[1; MAX_CACHED_BYTES])));
        assert_eq!(cache.get(&keys[1]), None);
    }
}

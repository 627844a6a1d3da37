//! # A byte-bounded key-value store with eviction and TTLs
//!
//! The memory of one cache node. It holds at most [`StoreConfig::budget_bytes`], counting each
//! entry as
//!
//! ```text
//! charge = key.len() + value.len() + ENTRY_OVERHEAD_BYTES
//! ```
//!
//! The fixed overhead ([`ENTRY_OVERHEAD_BYTES`] = 64) stands for what an entry costs beyond its
//! bytes: the key's shared allocation header (the slab and the lookup table share one copy of the
//! key), the value's `Vec` header, the slab slot with its expiry and version, the lookup table's
//! bucket and the policy's links – so a cache full of tiny entries is still bounded in real
//! memory, as memcached's per-item header is. The number is an estimate, documented, not measured
//! by the allocator: what is *guaranteed* is the accounting rule.
//!
//! ## Guarantees
//! - **The budget is never exceeded**, not even briefly: an insert first evicts until the new
//!   entry fits, then inserts ("evict before insert"). `bytes_used() <= budget_bytes()` holds
//!   after every call.
//! - An entry whose charge exceeds [`StoreConfig::item_limit_bytes`] is refused with
//!   [`StoreError::ItemTooLarge`] (memcached's 1 MiB item limit plays the same role: one huge
//!   value must not flush the whole cache). A budget below the item limit is a configuration
//!   error ([`ConfigError::BudgetBelowItemLimit`]): every accepted item must fit in an empty store.
//! - **Expired entries are never returned.** Expiry is lazy (a lookup of an expired entry removes
//!   it and answers a miss) plus an active sweep, [`Store::expire`], that examines a bounded number
//!   of slots per call – the deterministic cousin of Redis's sampled active expiry: a cursor walks
//!   the slab, so a full pass takes `slots / max_examined` calls and no call is long.
//! - **Deterministic**: the lookup table is a `HashMap`, but nothing iterates it; eviction order is
//!   the policy's lists, the sweep order is slab order.
//!
//! Each operation is `O(1)` amortised (hash lookup, policy step, slab slot reuse).

use crate::policy::{EvictionPolicy, PolicyKind, Slot};
use concord_core::Time;
use std::collections::HashMap;
use std::sync::Arc;

/// The fixed per-entry charge on top of key and value bytes (see the module docs).
pub const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// The budget charge of an entry with these key and value lengths.
pub fn charge(key_len: usize, value_len: usize) -> u64 {
    key_len as u64 + value_len as u64 + ENTRY_OVERHEAD_BYTES
}

/// How a store is sized and which policy it evicts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The most bytes (charges, see [`charge`]) the store ever holds.
    pub budget_bytes: u64,
    /// The largest charge one entry may have.
    pub item_limit_bytes: u64,
    pub policy: PolicyKind,
}

impl Default for StoreConfig {
    /// 64 MiB (memcached's default memory limit), 1 MiB items, S3-FIFO.
    fn default() -> Self {
        StoreConfig { budget_bytes: 64 << 20, item_limit_bytes: 1 << 20, policy: PolicyKind::default() }
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the budget of {budget_bytes} bytes is below the item limit of {item_limit_bytes} bytes: \
         an item at the limit could never be stored"
    )]
    BudgetBelowItemLimit { budget_bytes: u64, item_limit_bytes: u64 },
    #[error(
        "the item limit of {item_limit_bytes} bytes is below the per-entry overhead of \
         {ENTRY_OVERHEAD_BYTES} bytes: no item could be stored"
    )]
    ItemLimitBelowOverhead { item_limit_bytes: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// An operation the store refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "item of {charge_bytes} bytes (key + value + {ENTRY_OVERHEAD_BYTES} overhead) exceeds \
         the item limit of {item_limit_bytes} bytes"
    )]
    ItemTooLarge { charge_bytes: u64, item_limit_bytes: u64 },
}

/// One stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Shared with the store's lookup table, so a key's bytes are held once.
    pub key: Arc<[u8]>,
    pub value: Vec<u8>,
    /// The entry is not returned at or after this instant.
    pub expires_at: Option<Time>,
    /// The database version the value was read at (see [`crate::cache`]); 0 if unknown.
    pub version: u64,
    /// A value kept after an invalidation, to be served only as "stale" (memcache's recently
    /// deleted items, see [`crate::cache`]). Plain store users leave it `false`.
    pub stale: bool,
}

impl Entry {
    pub fn charge(&self) -> u64 {
        charge(self.key.len(), self.value.len())
    }

    pub fn is_expired(&self, now: Time) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// What to store alongside a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOptions {
    pub expires_at: Option<Time>,
    pub version: u64,
    pub stale: bool,
}

/// Counters of one store since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// [`Store::get`] calls that found a live entry.
    pub hits: u64,
    /// [`Store::get`] calls that found nothing (or an expired entry).
    pub misses: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Entries removed because they expired (lazily or by the sweep).
    pub expirations: u64,
    /// Current charge of all entries.
    pub bytes_used: u64,
    /// Current number of entries.
    pub entries: u64,
}

/// The store. See the module docs.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    policy: Box<dyn EvictionPolicy>,
    /// The slab: entries by slot; `None` slots are on `free`.
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    /// Lookup only; never iterated (iteration order would be random).
    index: HashMap<Arc<[u8]>, Slot>,
    /// Where the next [`Store::expire`] call continues its walk over the slab.
    sweep_cursor: usize,
    stats: StoreStats,
}

impl Store {
    pub fn new(config: StoreConfig) -> Result<Store, ConfigError> {
        if config.item_limit_bytes < ENTRY_OVERHEAD_BYTES {
            return Err(ConfigError::ItemLimitBelowOverhead { item_limit_bytes: config.item_limit_bytes });
        }
        if config.budget_bytes < config.item_limit_bytes {
            return Err(ConfigError::BudgetBelowItemLimit {
                budget_bytes: config.budget_bytes,
                item_limit_bytes: config.item_limit_bytes,
            });
        }
        Ok(Store {
            config,
            policy: config.policy.build(config.budget_bytes),
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            sweep_cursor: 0,
            stats: StoreStats::default(),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn budget_bytes(&self) -> u64 {
        self.config.budget_bytes
    }

    pub fn bytes_used(&self) -> u64 {
        self.stats.bytes_used
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// The live entry for `key`, removing it first if it has expired. Touches nothing else.
    fn live_slot(&mut self, key: &[u8], now: Time) -> Option<Slot> {
        let slot = *self.index.get(key)?;
        if self.entry(slot).is_expired(now) {
            self.policy.on_remove(slot);
            self.remove_slot(slot);
            self.stats.expirations += 1;
            return None;
        }
        Some(slot)
    }

    fn entry(&self, slot: Slot) -> &Entry {
        self.slots[slot as usize].as_ref().expect("indexed slot holds an entry")
    }

    /// Look `key` up as a cache read: counts a hit or a miss and tells the policy of the hit.
    pub fn get(&mut self, key: &[u8], now: Time) -> Option<&Entry> {
        match self.live_slot(key, now) {
            Some(slot) => {
                self.stats.hits += 1;
                self.policy.on_access(slot);
                Some(self.entry(slot))
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Look `key` up without counting or touching it (expired entries are still removed and never
    /// returned). For callers that decide afterwards whether the lookup was a hit.
    pub fn peek(&mut self, key: &[u8], now: Time) -> Option<&Entry> {
        let slot = self.live_slot(key, now)?;
        Some(self.entry(slot))
    }

    /// Store `value` under `key`, replacing any previous entry, evicting others first if needed.
    /// Returns how many entries were evicted to make room.
    pub fn insert(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        options: InsertOptions,
    ) -> Result<u64, StoreError> {
        let charge_bytes = charge(key.len(), value.len());
        if charge_bytes > self.config.item_limit_bytes {
            return Err(StoreError::ItemTooLarge {
                charge_bytes,
                item_limit_bytes: self.config.item_limit_bytes,
            });
        }
        // An overwrite is a remove and a fresh insert: the old bytes are freed before making room.
        if let Some(&slot) = self.index.get(key.as_slice()) {
            self.policy.on_remove(slot);
            self.remove_slot(slot);
        }
        let mut evicted = 0;
        while self.stats.bytes_used + charge_bytes > self.config.budget_bytes {
            let victim = self
                .policy
                .evict()
                .expect("the policy has a victim while bytes are in use (charge <= budget)");
            self.remove_slot(victim);
            self.stats.evictions += 1;
            evicted += 1;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                Slot::try_from(self.slots.len() - 1).expect("fewer than 2^32 entries")
            }
        };
        self.policy.on_insert(slot, crate::placement::key_hash(&key), charge_bytes);
        let key: Arc<[u8]> = key.into();
        self.index.insert(Arc::clone(&key), slot);
        self.slots[slot as usize] = Some(Entry {
            key,
            value,
            expires_at: options.expires_at,
            version: options.version,
            stale: options.stale,
        });
        self.stats.bytes_used += charge_bytes;
        self.stats.entries += 1;
        debug_assert!(self.stats.bytes_used <= self.config.budget_bytes);
        Ok(evicted)
    }

    /// Change an entry's metadata in place (same bytes, same place in the policy). Returns whether
    /// a live entry was found.
    pub fn update_meta(&mut self, key: &[u8], now: Time, options: InsertOptions) -> bool {
        let Some(slot) = self.live_slot(key, now) else { return false };
        let entry = self.slots[slot as usize].as_mut().expect("live slot");
        entry.expires_at = options.expires_at;
        entry.version = options.version;
        entry.stale = options.stale;
        true
    }

    /// Remove `key`; returns the entry if it was present (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let slot = *self.index.get(key)?;
        self.policy.on_remove(slot);
        Some(self.remove_slot(slot))
    }

    /// Drop every entry (and the policy's history: a fresh policy).
    pub fn clear(&mut self) {
        self.policy = self.config.policy.build(self.config.budget_bytes);
        self.slots.clear();
        self.free.clear();
        self.index.clear();
        self.sweep_cursor = 0;
        self.stats.bytes_used = 0;
        self.stats.entries = 0;
    }

    /// Active expiry: examine at most `max_examined` slab slots from where the last call stopped,
    /// removing the expired entries among them. Returns how many expired.
    pub fn expire(&mut self, now: Time, max_examined: usize) -> usize {
        let mut expired = 0;
        for _ in 0..max_examined.min(self.slots.len()) {
            if self.sweep_cursor >= self.slots.len() {
                self.sweep_cursor = 0;
            }
            let slot = self.sweep_cursor as Slot;
            self.sweep_cursor += 1;
            if self.slots[slot as usize].as_ref().is_some_and(|e| e.is_expired(now)) {
                self.policy.on_remove(slot);
                self.remove_slot(slot);
                self.stats.expirations += 1;
                expired += 1;
            }
        }
        expired
    }

    /// Whether a live entry for `key` exists (does not count, touch or expire anything).
    pub fn contains(&self, key: &[u8], now: Time) -> bool {
        self.index.get(key).is_some_and(|&slot| !self.entry(slot).is_expired(now))
    }

    /// Every stored key, sorted (for tests and debugging; `O(n log n)`).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.slots.iter().flatten().map(|e| e.key.to_vec()).collect();
        keys.sort();
        keys
    }

    /// Take the entry out of the slab and the index (the policy has already forgotten it).
    fn remove_slot(&mut self, slot: Slot) -> Entry {
        let entry = self.slots[slot as usize].take().expect("removing a vacant slot");
        self.index.remove(&*entry.key);
        self.free.push(slot);
        self.stats.bytes_used -= entry.charge();
        self.stats.entries -= 1;
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(budget_bytes: u64, policy: PolicyKind) -> Store {
        Store::new(StoreConfig { budget_bytes, item_limit_bytes: budget_bytes.min(1024), policy }).unwrap()
    }

    #[test]
    fn configuration_errors_are_reported() {
        let err =
            Store::new(StoreConfig { budget_bytes: 100, item_limit_bytes: 200, policy: PolicyKind::Lru })
                .unwrap_err();
        assert_eq!(err, ConfigError::BudgetBelowItemLimit { budget_bytes: 100, item_limit_bytes: 200 });
        let err =
            Store::new(StoreConfig { budget_bytes: 100, item_limit_bytes: 10, policy: PolicyKind::Lru })
                .unwrap_err();
        assert!(err.to_string().contains("overhead"), "{err}");
    }

    #[test]
    fn an_item_over_the_limit_is_refused_and_changes_nothing() {
        let mut s = store(10_000, PolicyKind::Lru);
        s.insert(b"a".to_vec(), vec![0; 10], InsertOptions::default()).unwrap();
        let err = s.insert(b"big".to_vec(), vec![0; 2000], InsertOptions::default()).unwrap_err();
        assert_eq!(err, StoreError::ItemTooLarge { charge_bytes: 2000 + 3 + 64, item_limit_bytes: 1024 });
        assert!(err.to_string().contains("exceeds the item limit"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_before_inserting() {
        // Each entry: 1-byte key + 36-byte value + 64 = 101 bytes; the budget holds three.
        let mut s = store(303, PolicyKind::Lru);
        let t = Time::ZERO;
        for k in [b"a", b"b", b"c"] {
            assert_eq!(s.insert(k.to_vec(), vec![0; 36], InsertOptions::default()).unwrap(), 0);
        }
        assert_eq!(s.bytes_used(), 303);
        assert!(s.get(b"a", t).is_some());
        assert_eq!(s.insert(b"d".to_vec(), vec![0; 36], InsertOptions::default()).unwrap(), 1);
        assert_eq!(s.keys(), vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(s.stats().evictions, 1);
        assert!(s.bytes_used() <= 303);
    }

    #[test]
    fn expired_entries_are_never_returned_and_the_sweep_is_bounded() {
        let mut s = store(100_000, PolicyKind::S3Fifo);
        for i in 0..100u32 {
            let expires_at = Some(Time(if i % 2 == 0 { 10 } else { 1000 }));
            let options = InsertOptions { expires_at, ..InsertOptions::default() };
            s.insert(i.to_le_bytes().to_vec(), vec![1; 8], options).unwrap();
        }
        assert!(s.get(&0u32.to_le_bytes(), Time(9)).is_some());
        assert!(s.get(&0u32.to_le_bytes(), Time(10)).is_none(), "lazy expiry at the instant");
        assert!(s.peek(&2u32.to_le_bytes(), Time(10)).is_none());
        assert_eq!(s.stats().expirations, 2);
        // Slots 0..30 examined: the even ones from 4 to 28 (0 and 2 are gone already).
        let swept = s.expire(Time(10), 30);
        assert_eq!(swept, 13);
        let mut total = swept;
        for _ in 0..10 {
            total += s.expire(Time(10), 30);
        }
        assert_eq!(total, 48, "every remaining even entry expires within a few passes");
        assert_eq!(s.len(), 50);
        assert_eq!(s.stats().expirations, 50);
    }

    #[test]
    fn a_lazily_expired_entry_leaves_the_policy_too() {
        // Found by the property test: lazy expiry freed the slot but left it in the policy's
        // list, so a later eviction picked a vacant (or reused) slot.
        for policy in PolicyKind::ALL {
            let mut s = store(303, policy);
            let soon = InsertOptions { expires_at: Some(Time(5)), ..InsertOptions::default() };
            s.insert(b"a".to_vec(), vec![0; 36], soon).unwrap();
            s.insert(b"b".to_vec(), vec![0; 36], InsertOptions::default()).unwrap();
            assert!(s.get(b"a", Time(5)).is_none());
            for k in [b"c", b"d", b"e", b"f"] {
                s.insert(k.to_vec(), vec![0; 36], InsertOptions::default()).unwrap();
            }
            assert_eq!(s.len(), 3, "{policy:?}");
            assert_eq!(s.bytes_used(), 303);
        }
    }

    #[test]
    fn overwrite_replaces_and_recounts_bytes() {
        let mut s = store(10_000, PolicyKind::S3Fifo);
        s.insert(b"k".to_vec(), vec![0; 100], InsertOptions::default()).unwrap();
        s.insert(b"k".to_vec(), vec![0; 10], InsertOptions::default()).unwrap();
        assert_eq!(s.bytes_used(), charge(1, 10));
        assert_eq!(s.get(b"k", Time::ZERO).unwrap().value.len(), 10);
        s.clear();
        assert_eq!((s.len(), s.bytes_used()), (0, 0));
    }
}

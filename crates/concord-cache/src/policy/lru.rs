//! Least recently used: evict the entry whose last access is the oldest.
//!
//! One list: an insert or a hit moves the entry to the front, eviction takes the back. Every
//! operation is `O(1)`. LRU is the default of memcached and most caches because it adapts to
//! changing popularity at once – and that is also its weakness: a burst of one-time keys (a scan,
//! a crawler) pushes the whole working set out, since LRU keeps no memory of how *often* a key
//! was used, only of how *recently*.

use super::list::{Links, List};
use super::{EvictionPolicy, Slot};

/// The LRU policy.
#[derive(Clone, Debug, Default)]
pub struct Lru {
    links: Links,
    /// Front: most recently used; back: the next victim.
    recency: List,
}

impl Lru {
    pub fn new() -> Lru {
        Lru::default()
    }

    /// Resident slots from most to least recently used (for tests).
    pub fn order(&self) -> Vec<Slot> {
        self.links.iter_front_to_back(&self.recency)
    }
}

impl EvictionPolicy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn on_insert(&mut self, slot: Slot, _key_hash: u64, _charge: u64) {
        self.links.push_front(&mut self.recency, slot);
    }

    fn on_access(&mut self, slot: Slot) {
        self.links.unlink(&mut self.recency, slot);
        self.links.push_front(&mut self.recency, slot);
    }

    fn on_remove(&mut self, slot: Slot) {
        self.links.unlink(&mut self.recency, slot);
    }

    fn evict(&mut self) -> Option<Slot> {
        self.links.pop_back(&mut self.recency)
    }
}

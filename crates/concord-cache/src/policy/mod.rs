//! # Eviction policies
//!
//! When a byte-bounded cache is full, something must go. The *policy* decides what; the
//! [`Store`](crate::Store) owns the entries, the byte accounting and the keys, and tells the policy
//! only what happened to which [`Slot`] (a small integer naming a resident entry):
//!
//! ```text
//!   store                         policy
//!   insert(k, v) ── make room ──▶ evict() → slot to drop   (repeat while over budget)
//!                ── inserted ──▶ on_insert(slot, hash(k), charge)
//!   get(k) hit   ─────────────▶ on_access(slot)
//!   remove / expire ──────────▶ on_remove(slot)
//! ```
//!
//! Two policies:
//! - [`Lru`]: recency only. Simple, adapts at once, but every one-time key travels the whole list
//!   and pushes a popular key out.
//! - [`S3Fifo`] (SOSP 2023): a small probation FIFO, a main FIFO with CLOCK-like second chances
//!   and a ghost queue. It keeps the popular head of a skewed (Zipf) distribution that LRU churns.
//!
//! ## Why frequency-aware policies beat LRU on skewed traces
//! Under the *independent reference model* (each request picks key `i` with a fixed probability
//! `p_i`, which is what a Zipf trace is), the best a cache of `C` items can do in the long run is
//! to hold the `C` most probable keys (LFU). LRU instead holds the `C` most *recently* requested
//! keys, which includes every cold key that was just requested once – under Zipf a large share of
//! requests goes to the long tail, so a good part of an LRU cache is always occupied by tail keys
//! that will not come back before they are evicted. S3-FIFO's probation queue holds them for only
//! a tenth of the cache and the 2-bit counters make popular keys survive; the measured difference
//! is in `examples/hit_ratio.rs` and the crate's tests.
//!
//! All policies are deterministic and `O(1)` (amortised) per operation; hash maps are used only
//! for lookups, never iterated, so eviction order depends only on the sequence of operations.

mod list;
mod lru;
mod s3fifo;

pub use lru::Lru;
pub use s3fifo::S3Fifo;

/// A resident entry's slot in the store's slab: stable while the entry is resident, reused after.
pub type Slot = u32;

/// What a policy must do. The store calls it; a policy never sees keys or values, only slots, the
/// key's stable hash (for ghost/frequency structures that outlive an entry) and its charge.
pub trait EvictionPolicy: std::fmt::Debug + Send {
    /// A short name for reports (`"lru"`, `"s3-fifo"`).
    fn name(&self) -> &'static str;
    /// A new entry now occupies `slot` (room was made before). `charge` is its size in budget bytes.
    fn on_insert(&mut self, slot: Slot, key_hash: u64, charge: u64);
    /// The entry in `slot` was read (a hit).
    fn on_access(&mut self, slot: Slot);
    /// The entry in `slot` left for another reason than eviction (delete, expiry, overwrite).
    fn on_remove(&mut self, slot: Slot);
    /// Choose a resident entry to evict, forget it, and return its slot; `None` only when no entry
    /// is resident.
    fn evict(&mut self) -> Option<Slot>;
}

/// Which policy a store uses.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// [`Lru`].
    Lru,
    /// [`S3Fifo`]: the default, for its better hit ratio on skewed workloads.
    #[default]
    S3Fifo,
}

impl PolicyKind {
    /// Both policies, for comparisons.
    pub const ALL: [PolicyKind; 2] = [PolicyKind::Lru, PolicyKind::S3Fifo];

    /// A fresh policy of this kind for a store of `budget_bytes`.
    pub fn build(self, budget_bytes: u64) -> Box<dyn EvictionPolicy> {
        match self {
            PolicyKind::Lru => Box::new(Lru::new()),
            PolicyKind::S3Fifo => Box::new(S3Fifo::new(budget_bytes)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::S3Fifo => "s3-fifo",
        }
    }
}

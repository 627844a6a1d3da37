//! # concord-cache – the distributed cache tier's logic, sans-IO
//!
//! A database answers a read in a millisecond or so; a cache in memory answers it in microseconds
//! and takes the load of popular keys off the database. This crate holds everything a cache node
//! *decides* – where a key lives, what to keep within a memory budget, when a value may be served,
//! installed or must go – and nothing it *does*: no sockets, no threads, no clock. A tokio cache
//! process (speaking RESP) and the deterministic simulator drive the same code, passing the
//! current [`Time`](concord_core::Time) into every call, as `concord-raft` and `concord-dynamo`
//! are driven.
//!
//! ## Map
//!
//! | module | what | source |
//! |---|---|---|
//! | [`placement`] | which node holds a key: ketama ring, jump hash, rendezvous; balance and movement measurements | Karger 1997; Lamping & Veach 2014; Thaler & Ravishankar 1998 |
//! | [`store`] | one node's memory: byte budget, evict-before-insert, item limit, TTLs, counters | memcached |
//! | [`policy`] | what to evict: LRU and S3-FIFO behind one trait | Yang et al., SOSP 2023 |
//! | [`cache`] | one node's rules: leases, versioned invalidation, stale values, flush | Nishtala et al., NSDI 2013, §3.2 |
//! | [`trace`] | Zipf traces and hit-ratio replays | Breslau et al. 1999 |
//!
//! ## Look-aside versus read-through
//!
//! A **read-through** cache sits *in front of* the database: the client asks the cache, and on a
//! miss the cache itself reads the database, stores the value and answers. The cache must then
//! know how to talk to the database, and it sees every write path it needs to invalidate.
//!
//! A **look-aside** (cache-aside) cache sits *beside* it: the client asks the cache; on a miss the
//! *client* reads the database and then puts the value into the cache; on a write the client (or,
//! as here, a stream of the database's commits) deletes the key from the cache. The cache is a
//! dumb, fast key-value store that knows nothing of the database – this is memcached at Facebook,
//! and Concord's design. Its price is a race: the client's fill and a concurrent write's
//! invalidation travel separately and may arrive in either order. [`cache`] explains how **leases**
//! and **versions** close that race and how leases also stop a *thundering herd* of misses on one
//! hot key.
//!
//! ```text
//!   client ── get k ──────────────▶ cache node (placement::node_for(k))
//!          ◀─ Miss{lease: t} ─────
//!          ── read k ─────────────▶ database           writer ── put k ──▶ database
//!          ◀─ v @ version 41 ─────                                          │ commit index 42
//!          ── set k v (t, 41) ───▶ cache  ◀── invalidate(k, 42) ── invalidation stream
//!   whichever arrives first, the cache ends without v: the invalidation voids t and marks k@42.
//! ```
//!
//! ## The API in one example
//!
//! ```
//! use concord_cache::{Cache, CacheConfig, Fill, Lookup, Placement, PlacementKind, SetOutcome};
//! use concord_core::{NodeId, Time};
//!
//! // The client picks the node that owns the key ...
//! let ring = PlacementKind::Rendezvous.build(&[NodeId(1), NodeId(2), NodeId(3)]);
//! let _owner = ring.node_for(b"user:1");
//!
//! // ... and that node runs a `Cache`, driven with the caller's clock.
//! let mut cache = Cache::new(CacheConfig::default()).unwrap();
//! let now = Time::ZERO;
//! let Lookup::Miss { lease: Some(token) } = cache.get(b"user:1", now) else { unreachable!() };
//! // The client reads the database: "ada" at commit index 41. Meanwhile a write commits at 42 and
//! // its invalidation arrives first: the late fill is refused, the old value never lands.
//! cache.invalidate(b"user:1", 42, now);
//! let stale_fill = Fill { lease: Some(token), version: 41, ttl: None };
//! assert_eq!(cache.set(b"user:1", b"ada".to_vec(), stale_fill, now), Ok(SetOutcome::LeaseInvalid));
//!
//! // The next reader gets a new lease and fills with the new value.
//! let Lookup::Miss { lease: Some(token) } = cache.get(b"user:1", now) else { unreachable!() };
//! let fill = Fill { lease: Some(token), version: 42, ttl: None };
//! assert_eq!(cache.set(b"user:1", b"ada lovelace".to_vec(), fill, now), Ok(SetOutcome::Stored));
//! assert_eq!(cache.get(b"user:1", now), Lookup::Hit(b"ada lovelace".to_vec()));
//! ```
//!
//! ## Reading order
//! 1. [`cache`]: the protocol and its guarantees, then [`cache::Cache::get`] and `set`.
//! 2. [`store`] and [`policy`]: the memory bound and the eviction algorithms.
//! 3. [`placement`]: how clients spread keys over nodes.
//! 4. [`trace`] and `examples/hit_ratio.rs`: the numbers that justify S3-FIFO.
//!
//! ## Determinism
//! Every result depends only on the calls made and their `now` arguments: hash maps are used for
//! lookups and never iterated, hashes are [`concord_core::hash`]'s stable FNV-1a + splitmix64, and
//! the trace generator is seeded.

pub mod cache;
pub mod placement;
pub mod policy;
pub mod store;
pub mod trace;

pub use cache::{Cache, CacheConfig, CacheStats, Fill, LeaseToken, Lookup, SetOutcome};
pub use placement::{
    key_hash, measure, placement_report, JumpHash, KetamaRing, Placement, PlacementKind, PlacementStats,
    Rendezvous,
};
pub use policy::{EvictionPolicy, Lru, PolicyKind, S3Fifo};
pub use store::{
    ConfigError, Entry, InsertOptions, Store, StoreConfig, StoreError, StoreStats, ENTRY_OVERHEAD_BYTES,
};
pub use trace::{
    che_lru_hit_ratio, hit_ratio_table, run_look_aside, run_look_aside_sized, top_keys_hit_ratio,
    varied_value_bytes, zipf_trace, HitRatio, HitRatioRow, Zipf,
};

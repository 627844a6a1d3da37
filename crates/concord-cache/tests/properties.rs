//! Property tests against simple models.
//!
//! - the store never exceeds its budget, its byte count is exact, and what it returns is the
//!   last value written and not expired (both policies);
//! - LRU evicts exactly the least recently used entry (a `Vec` model);
//! - a cache `get` never returns an expired value or one older than the last invalidation seen,
//!   under racing fills, invalidations, deletes, flushes and lagging database reads;
//! - leases: at most one valid token per key at any time, and a key gets a second token within one
//!   lease period only after its first was used or voided.

use concord_cache::{
    Cache, CacheConfig, Fill, InsertOptions, LeaseToken, Lookup, PolicyKind, SetOutcome, Store, StoreConfig,
};
use concord_core::Time;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug)]
enum StoreOp {
    Insert { key: u8, len: u16, ttl_secs: Option<u8> },
    Get { key: u8 },
    Remove { key: u8 },
    Expire { max: u8 },
    Advance { secs: u8 },
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    prop_oneof![
        4 => (0u8..24, 0u16..400, proptest::option::of(1u8..20))
            .prop_map(|(key, len, ttl_secs)| StoreOp::Insert { key, len, ttl_secs }),
        3 => (0u8..24).prop_map(|key| StoreOp::Get { key }),
        1 => (0u8..24).prop_map(|key| StoreOp::Remove { key }),
        1 => (0u8..50).prop_map(|max| StoreOp::Expire { max }),
        1 => (0u8..5).prop_map(|secs| StoreOp::Advance { secs }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Budget, exact accounting, and returned values agree with a map of last writes.
    #[test]
    fn the_store_never_exceeds_its_budget(
        policy in prop_oneof![Just(PolicyKind::Lru), Just(PolicyKind::S3Fifo)],
        budget in 500u64..3000,
        ops in proptest::collection::vec(store_op(), 1..200),
    ) {
        let mut store = Store::new(StoreConfig { budget_bytes: budget, item_limit_bytes: 500, policy }).unwrap();
        // The model: last written (value, expiry) per key; entries may vanish (evicted) but never
        // come back or change.
        let mut written: BTreeMap<u8, (Vec<u8>, Option<Time>)> = BTreeMap::new();
        let mut now = Time::ZERO;
        let mut seq = 0u32;
        for op in ops {
            match op {
                StoreOp::Insert { key, len, ttl_secs } => {
                    seq += 1;
                    let mut value = seq.to_le_bytes().to_vec();
                    value.resize(usize::from(len).max(4), 0);
                    let expires_at = ttl_secs.map(|s| now + Duration::from_secs(u64::from(s)));
                    let result = store.insert(vec![key], value.clone(), InsertOptions { expires_at, ..Default::default() });
                    if concord_cache::store::charge(1, value.len()) > 500 {
                        prop_assert!(result.is_err());
                        // A refused overwrite leaves the old value (the insert checks first).
                    } else {
                        prop_assert!(result.is_ok());
                        written.insert(key, (value, expires_at));
                    }
                }
                StoreOp::Get { key } => {
                    if let Some(entry) = store.get(&[key], now) {
                        let (value, expires_at) = written.get(&key).expect("a value that was written");
                        prop_assert_eq!(&entry.value, value);
                        prop_assert!(expires_at.is_none_or(|at| now < at), "expired value returned");
                    }
                }
                StoreOp::Remove { key } => {
                    store.remove(&[key]);
                    written.remove(&key);
                }
                StoreOp::Expire { max } => {
                    store.expire(now, usize::from(max));
                }
                StoreOp::Advance { secs } => now = now + Duration::from_secs(u64::from(secs)),
            }
            prop_assert!(store.bytes_used() <= budget, "{} > {}", store.bytes_used(), budget);
            let keys = store.keys();
            let charged: u64 = keys.iter().map(|k| {
                let (value, _) = &written[&k[0]];
                concord_cache::store::charge(1, value.len())
            }).sum();
            prop_assert_eq!(charged, store.bytes_used(), "byte count is exact");
            prop_assert_eq!(keys.len() as u64, store.stats().entries);
        }
    }

    /// With equal-sized entries and room for `capacity`, the resident set is always exactly the
    /// `capacity` most recently used keys (inserts and hits count as uses).
    #[test]
    fn lru_evicts_exactly_the_least_recently_used(
        capacity in 1u64..8,
        ops in proptest::collection::vec((0u8..3, 0u8..16), 1..300),
    ) {
        let per_entry = concord_cache::store::charge(1, 16);
        let mut store = Store::new(StoreConfig {
            budget_bytes: capacity * per_entry,
            item_limit_bytes: per_entry,
            policy: PolicyKind::Lru,
        }).unwrap();
        let mut recency: Vec<u8> = Vec::new(); // front = least recently used
        for (kind, key) in ops {
            match kind {
                0 => {
                    store.insert(vec![key], vec![0; 16], InsertOptions::default()).unwrap();
                    recency.retain(|&k| k != key);
                    recency.push(key);
                    if recency.len() as u64 > capacity {
                        recency.remove(0);
                    }
                }
                1 => {
                    let hit = store.get(&[key], Time::ZERO).is_some();
                    prop_assert_eq!(hit, recency.contains(&key));
                    if hit {
                        recency.retain(|&k| k != key);
                        recency.push(key);
                    }
                }
                _ => {
                    store.remove(&[key]);
                    recency.retain(|&k| k != key);
                }
            }
            let mut model: Vec<Vec<u8>> = recency.iter().map(|&k| vec![k]).collect();
            model.sort();
            prop_assert_eq!(store.keys(), model);
        }
    }
}

#[derive(Clone, Debug)]
enum CacheOp {
    /// A reader: `get`; on `Miss` with a lease, remember a pending fill that reads the database
    /// `lag` versions behind (a lagging replica; 0 = linearizable).
    Read {
        key: u8,
        lag: u8,
    },
    /// A pending fill lands (index into the pending list, modulo its length).
    Fill {
        which: u8,
        ttl_secs: u8,
    },
    /// A writer commits to the database; the invalidation arrives now.
    Write {
        key: u8,
    },
    Delete {
        key: u8,
    },
    Flush,
    Expire,
    Advance {
        millis: u16,
    },
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        10 => (0u8..6, prop_oneof![3 => Just(0u8), 1 => 0u8..3]).prop_map(|(key, lag)| CacheOp::Read { key, lag }),
        6 => (any::<u8>(), 1u8..30).prop_map(|(which, ttl_secs)| CacheOp::Fill { which, ttl_secs }),
        3 => (0u8..6).prop_map(|key| CacheOp::Write { key }),
        1 => (0u8..6).prop_map(|key| CacheOp::Delete { key }),
        1 => Just(CacheOp::Flush),
        2 => Just(CacheOp::Expire),
        6 => (0u16..2000).prop_map(|millis| CacheOp::Advance { millis }),
    ]
}

/// The value a fill installs: the version it was read at, and a unique number.
fn value_of(version: u64, nonce: u64) -> Vec<u8> {
    let mut v = version.to_le_bytes().to_vec();
    v.extend_from_slice(&nonce.to_le_bytes());
    v
}

fn version_of(value: &[u8]) -> u64 {
    u64::from_le_bytes(value[..8].try_into().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn gets_never_return_expired_or_invalidated_values_and_leases_are_exclusive(
        ops in proptest::collection::vec(cache_op(), 1..150),
        stale_keep_secs in 0u64..4,
    ) {
        let lease_period = Duration::from_secs(3);
        let config = CacheConfig {
            store: StoreConfig { budget_bytes: 400, item_limit_bytes: 200, policy: PolicyKind::S3Fifo },
            lease_period,
            stale_keep: Duration::from_secs(stale_keep_secs),
            // Longer than any run (150 ops × ≤ 2 s): no mark is forgotten in this test.
            invalidation_memory: Duration::from_secs(1_000),
            max_invalidation_marks: 100,
            max_leases: 100,
            max_ttl: Duration::from_secs(20),
        };
        let mut cache = Cache::new(config).unwrap();
        let mut now = Time::ZERO;
        let mut db_version: BTreeMap<u8, u64> = BTreeMap::new(); // the database: version per key
        let mut invalidated: BTreeMap<u8, u64> = BTreeMap::new(); // highest invalidation seen
        // What a Hit may return: the stored fills, (value → expiry), cleared as the cache must.
        let mut stored: BTreeMap<u8, (Vec<u8>, Time)> = BTreeMap::new();
        let mut pending: Vec<(u8, LeaseToken, u64)> = Vec::new(); // (key, token, read version)
        // Per key: tokens issued, with the time, since the last use/void of the key's lease.
        let mut tokens: BTreeMap<u8, Vec<(LeaseToken, Time)>> = BTreeMap::new();
        let mut nonce = 0u64;
        let mut ever_stored: BTreeMap<Vec<u8>, (u8, Time)> = BTreeMap::new();

        for op in ops {
            match op {
                CacheOp::Read { key, lag } => match cache.get(&[key], now) {
                    Lookup::Hit(value) => {
                        let (expected, expires_at) = stored.get(&key).expect("a hit on a stored fill");
                        prop_assert_eq!(&value, expected);
                        prop_assert!(now < *expires_at, "expired value returned");
                        let seen = invalidated.get(&key).copied().unwrap_or(0);
                        prop_assert!(version_of(&value) >= seen,
                            "value at {} after invalidation at {}", version_of(&value), seen);
                    }
                    Lookup::Miss { lease: Some(token) } => {
                        let issued = tokens.entry(key).or_default();
                        // A second token within one period is allowed only if the earlier one is
                        // gone (used, voided, or lapsed) – i.e. never two at once.
                        for &(earlier, _) in issued.iter() {
                            prop_assert!(
                                !cache.lease_is_valid(&[key], earlier, now) || earlier == token,
                                "two valid tokens for one key"
                            );
                        }
                        if let Some(&(_, at)) = issued.last() {
                            prop_assert!(now.saturating_since(at) >= lease_period,
                                "a second token for key {} within the lease period without a use or void", key);
                        }
                        issued.push((token, now));
                        let version = db_version.get(&key).copied().unwrap_or(0).saturating_sub(u64::from(lag));
                        pending.push((key, token, version));
                    }
                    Lookup::Miss { lease: None } => prop_assert!(false, "lease table cannot be full here"),
                    Lookup::MissWait { lease_expires_at } => prop_assert!(now < lease_expires_at),
                    Lookup::Stale(value) => {
                        // Old, and marked as such – but once stored for this key, and not past
                        // the expiry it was stored with.
                        prop_assert!(stale_keep_secs > 0);
                        let (stored_key, expires_at) = ever_stored.get(&value).expect("a stored value");
                        prop_assert_eq!(*stored_key, key);
                        prop_assert!(now < *expires_at, "expired stale value returned");
                    }
                },
                CacheOp::Fill { which, ttl_secs } => {
                    if pending.is_empty() { continue; }
                    let (key, token, version) = pending.remove(usize::from(which) % pending.len());
                    nonce += 1;
                    let value = value_of(version, nonce);
                    let fill = Fill { lease: Some(token), version, ttl: Some(Duration::from_secs(u64::from(ttl_secs))) };
                    let outcome = cache.set(&[key], value.clone(), fill, now).unwrap();
                    if outcome == SetOutcome::Stored {
                        prop_assert!(version >= invalidated.get(&key).copied().unwrap_or(0));
                        let expires_at = now + Duration::from_secs(u64::from(ttl_secs));
                        ever_stored.insert(value.clone(), (key, expires_at));
                        stored.insert(key, (value, expires_at));
                    }
                    if outcome != SetOutcome::LeaseInvalid {
                        tokens.remove(&key); // the lease was spent, stored or refused
                    }
                }
                CacheOp::Write { key } => {
                    let v = db_version.entry(key).or_insert(0);
                    *v += 1;
                    let v = *v;
                    cache.invalidate(&[key], v, now);
                    let mark = invalidated.entry(key).or_insert(0);
                    *mark = (*mark).max(v);
                    if stored.get(&key).is_some_and(|(value, _)| version_of(value) < v) {
                        stored.remove(&key);
                    }
                    tokens.remove(&key); // the lease was voided
                }
                CacheOp::Delete { key } => {
                    cache.delete(&[key], now);
                    stored.remove(&key);
                    tokens.remove(&key);
                }
                CacheOp::Flush => {
                    cache.flush_all(now);
                    stored.clear();
                    tokens.clear();
                }
                CacheOp::Expire => { cache.expire(now, 10); }
                CacheOp::Advance { millis } => now = now + Duration::from_millis(u64::from(millis)),
            }
            prop_assert!(cache.stats().store.bytes_used <= 400);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Consistency, for any membership change: when a node joins, a key either stays or moves to
    /// the new node; when a node leaves, only its keys move (ketama and rendezvous; jump hash
    /// only when the newest node leaves, see `placement`'s docs).
    #[test]
    fn a_membership_change_moves_only_the_keys_it_must(
        members in proptest::collection::btree_set(1u32..40, 2..12),
        newcomer in 40u32..50,
        leaver_index in any::<prop::sample::Index>(),
    ) {
        use concord_cache::PlacementKind;
        use concord_core::NodeId;
        let ids: Vec<NodeId> = members.iter().copied().map(NodeId).collect();
        let leaver = ids[leaver_index.index(ids.len())];
        for kind in PlacementKind::ALL {
            let before = kind.build(&ids);
            let mut joined = kind.build(&ids);
            joined.add_node(NodeId(newcomer));
            let mut left = kind.build(&ids);
            prop_assert!(left.remove_node(leaver));
            let mut newest_left = kind.build(&ids);
            newest_left.add_node(NodeId(newcomer));
            newest_left.remove_node(NodeId(newcomer));
            for i in 0..2000u32 {
                let key = i.to_le_bytes();
                let owner = before.node_for(&key);
                let after_join = joined.node_for(&key);
                prop_assert!(after_join == owner || after_join == NodeId(newcomer), "{kind:?}");
                prop_assert_eq!(newest_left.node_for(&key), owner, "{:?}: join then leave restores", kind);
                if kind != PlacementKind::Jump {
                    let after_leave = left.node_for(&key);
                    prop_assert!(after_leave == owner || owner == leaver, "{kind:?}");
                }
            }
        }
    }
}

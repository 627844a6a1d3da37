//! One cache node's rules, scenario by scenario, following Nishtala et al., "Scaling Memcache at
//! Facebook" (NSDI 2013), §3.2.1 "Reducing Load: Leases", and the versioned invalidations of
//! `concord_cache::cache`.

use concord_cache::{
    Cache, CacheConfig, ConfigError, Fill, LeaseToken, Lookup, SetOutcome, StoreConfig, StoreError,
};
use concord_core::Time;
use std::time::Duration;

const SEC: u64 = 1_000_000_000;

fn t(seconds: u64) -> Time {
    Time(seconds * SEC)
}

fn config() -> CacheConfig {
    CacheConfig {
        store: StoreConfig { budget_bytes: 1 << 20, item_limit_bytes: 4096, ..StoreConfig::default() },
        lease_period: Duration::from_secs(10),
        stale_keep: Duration::from_secs(5),
        invalidation_memory: Duration::from_secs(60),
        max_invalidation_marks: 1000,
        max_leases: 1000,
        max_ttl: Duration::from_secs(300),
    }
}

fn cache() -> Cache {
    Cache::new(config()).unwrap()
}

fn lease(lookup: Lookup) -> LeaseToken {
    match lookup {
        Lookup::Miss { lease: Some(token) } => token,
        other => panic!("expected a miss with a lease, got {other:?}"),
    }
}

fn fill(token: LeaseToken, version: u64) -> Fill {
    Fill { lease: Some(token), version, ttl: None }
}

#[test]
fn a_miss_hands_out_a_lease_and_the_fill_turns_misses_into_hits() {
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    assert_eq!(c.set(b"k", b"v1".to_vec(), fill(token, 7), t(0)).unwrap(), SetOutcome::Stored);
    assert_eq!(c.get(b"k", t(1)), Lookup::Hit(b"v1".to_vec()));
    // The token was used: a second fill with it is refused.
    assert_eq!(c.set(b"k", b"v2".to_vec(), fill(token, 8), t(1)).unwrap(), SetOutcome::LeaseInvalid);
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses, stats.leases_issued), (1, 1, 1));
    assert_eq!((stats.fills_stored, stats.fills_refused), (1, 1));
}

#[test]
fn stale_set_an_invalidation_voids_the_lease_of_an_in_flight_fill() {
    // §3.2.1: A misses and reads v1; a writer commits v2 and invalidates; A's set must not land.
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    c.invalidate(b"k", 42, t(1));
    assert!(!c.lease_is_valid(b"k", token, t(1)));
    assert_eq!(c.set(b"k", b"v1".to_vec(), fill(token, 41), t(2)).unwrap(), SetOutcome::LeaseInvalid);
    // The next reader gets a fresh lease at once (the key changed: a refill is warranted).
    let fresh = lease(c.get(b"k", t(2)));
    assert!(fresh > token);
    assert_eq!(c.set(b"k", b"v2".to_vec(), fill(fresh, 42), t(3)).unwrap(), SetOutcome::Stored);
    assert_eq!(c.get(b"k", t(3)), Lookup::Hit(b"v2".to_vec()));
}

#[test]
fn thundering_herd_one_token_per_key_per_lease_period() {
    let mut c = cache();
    let token = lease(c.get(b"hot", t(0)));
    for i in 1..100 {
        assert_eq!(
            c.get(b"hot", Time(i * SEC / 20)),
            Lookup::MissWait { lease_expires_at: t(10) },
            "reader {i} must wait, not go to the database"
        );
    }
    assert_eq!(c.stats().leases_issued, 1);
    assert_eq!(c.stats().waits, 99);
    c.set(b"hot", b"v".to_vec(), fill(token, 1), t(5)).unwrap();
    assert_eq!(c.get(b"hot", t(5)), Lookup::Hit(b"v".to_vec()));
}

#[test]
fn a_lease_lapses_after_the_period_so_a_crashed_holder_does_not_block_the_key() {
    let mut c = cache();
    let first = lease(c.get(b"k", t(0)));
    assert!(matches!(c.get(b"k", Time(10 * SEC - 1)), Lookup::MissWait { .. }));
    let second = lease(c.get(b"k", t(10)));
    assert_ne!(first, second);
    assert_eq!(c.set(b"k", b"late".to_vec(), fill(first, 1), t(11)).unwrap(), SetOutcome::LeaseInvalid);
    assert_eq!(c.set(b"k", b"v".to_vec(), fill(second, 1), t(11)).unwrap(), SetOutcome::Stored);
}

#[test]
fn recently_invalidated_values_are_served_marked_stale_while_someone_refills() {
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    c.set(b"k", b"v1".to_vec(), fill(token, 1), t(0)).unwrap();
    c.invalidate(b"k", 2, t(10));
    // The first reader after the invalidation gets the lease (and must refill) ...
    let refill = lease(c.get(b"k", t(10)));
    // ... the others get the old value, marked stale, instead of waiting or hitting the database.
    assert_eq!(c.get(b"k", t(11)), Lookup::Stale(b"v1".to_vec()));
    assert_eq!(c.stats().stale_served, 1);
    // The stale copy is kept only `stale_keep` (5 s).
    assert!(matches!(c.get(b"k", t(15)), Lookup::MissWait { .. }));
    c.set(b"k", b"v2".to_vec(), fill(refill, 2), t(16)).unwrap();
    assert_eq!(c.get(b"k", t(16)), Lookup::Hit(b"v2".to_vec()));
}

#[test]
fn a_fill_read_before_an_invalidation_is_refused_even_with_a_valid_lease() {
    // The token was issued *after* the invalidation, but the database read behind the fill was
    // served at an older version (a lagging replica): the high-water mark catches it.
    let mut c = cache();
    c.invalidate(b"k", 50, t(0));
    assert_eq!(c.invalidation_mark(b"k", t(0)), Some(50));
    let token = lease(c.get(b"k", t(1)));
    assert_eq!(
        c.set(b"k", b"old".to_vec(), fill(token, 49), t(2)).unwrap(),
        SetOutcome::OlderThanInvalidation { version: 49, invalidated_at: 50 }
    );
    // The refusal spent the lease: the next reader gets a fresh token at once, not a wait.
    assert!(!c.lease_is_valid(b"k", token, t(2)));
    let retry = lease(c.get(b"k", t(2)));
    assert_eq!(c.set(b"k", b"new".to_vec(), fill(retry, 50), t(2)).unwrap(), SetOutcome::Stored);
}

#[test]
fn out_of_order_invalidations_keep_the_highest_mark_and_spare_newer_values() {
    let mut c = cache();
    c.invalidate(b"k", 30, t(0));
    c.invalidate(b"k", 20, t(0));
    assert_eq!(c.invalidation_mark(b"k", t(0)), Some(30));
    let token = lease(c.get(b"k", t(0)));
    c.set(b"k", b"v35".to_vec(), fill(token, 35), t(0)).unwrap();
    // A late invalidation at a version the value already includes leaves it alone.
    c.invalidate(b"k", 33, t(1));
    assert_eq!(c.get(b"k", t(1)), Lookup::Hit(b"v35".to_vec()));
    // An unleased set of an older value does not overwrite a newer one.
    let unleased = Fill { lease: None, version: 34, ttl: None };
    assert_eq!(
        c.set(b"k", b"v34".to_vec(), unleased, t(1)).unwrap(),
        SetOutcome::OlderThanCached { version: 34, cached: 35 }
    );
}

#[test]
fn marks_are_forgotten_after_the_invalidation_memory() {
    let mut c = cache();
    c.invalidate(b"k", 50, t(0));
    assert_eq!(c.invalidation_mark(b"k", Time(60 * SEC - 1)), Some(50));
    assert_eq!(c.invalidation_mark(b"k", t(60)), None);
    c.expire(t(60), 100);
    // After that, an old fill would be accepted: the documented gap (see the module docs).
    let token = lease(c.get(b"k", t(61)));
    assert_eq!(c.set(b"k", b"old".to_vec(), fill(token, 49), t(61)).unwrap(), SetOutcome::Stored);
}

#[test]
fn the_number_of_marks_is_bounded_oldest_forgotten_first() {
    let mut c = Cache::new(CacheConfig { max_invalidation_marks: 3, ..config() }).unwrap();
    for (i, key) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
        c.invalidate(*key, 10 + i as u64, t(0));
    }
    assert_eq!(c.invalidation_mark(b"a", t(0)), None);
    assert_eq!(c.invalidation_mark(b"d", t(0)), Some(13));
    assert_eq!(c.stats().marks_forgotten_early, 1);
}

#[test]
fn flush_all_drops_values_and_voids_every_lease() {
    // After a partition from the invalidation stream the process flushes: any fill based on a
    // read from before the flush must not land after it.
    let mut c = cache();
    let a = lease(c.get(b"a", t(0)));
    c.set(b"a", b"va".to_vec(), fill(a, 1), t(0)).unwrap();
    let b = lease(c.get(b"b", t(0)));
    c.flush_all(t(1));
    assert_eq!(c.set(b"b", b"vb".to_vec(), fill(b, 1), t(1)).unwrap(), SetOutcome::LeaseInvalid);
    assert!(matches!(c.get(b"a", t(1)), Lookup::Miss { lease: Some(_) }));
    assert_eq!(c.stats().store.entries, 0);
    assert_eq!(c.stats().flushes, 1);
}

#[test]
fn a_lost_invalidation_costs_at_most_max_ttl() {
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    let forever = Fill { lease: Some(token), version: 1, ttl: Some(Duration::from_secs(86_400)) };
    c.set(b"k", b"v1".to_vec(), forever, t(0)).unwrap();
    // The invalidation for version 2 is lost. The old value is served ... until max_ttl (300 s).
    assert_eq!(c.get(b"k", Time(300 * SEC - 1)), Lookup::Hit(b"v1".to_vec()));
    assert!(matches!(c.get(b"k", t(300)), Lookup::Miss { lease: Some(_) }));
}

#[test]
fn a_full_lease_table_answers_miss_without_a_lease() {
    let mut c = Cache::new(CacheConfig { max_leases: 2, ..config() }).unwrap();
    lease(c.get(b"a", t(0)));
    lease(c.get(b"b", t(0)));
    assert_eq!(c.get(b"c", t(0)), Lookup::Miss { lease: None });
    assert_eq!(c.stats().leases_refused_full, 1);
    // Once the leases lapse, there is room again.
    lease(c.get(b"c", t(10)));
}

#[test]
fn delete_voids_the_lease_without_a_mark() {
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    assert!(!c.delete(b"k", t(0)));
    assert_eq!(c.set(b"k", b"v".to_vec(), fill(token, 1), t(0)).unwrap(), SetOutcome::LeaseInvalid);
    assert_eq!(c.invalidation_mark(b"k", t(0)), None);
}

#[test]
fn an_oversized_value_is_an_error_and_bad_configurations_are_refused() {
    let mut c = cache();
    let token = lease(c.get(b"k", t(0)));
    let err = c.set(b"k", vec![0; 5000], fill(token, 1), t(0)).unwrap_err();
    assert!(matches!(err, StoreError::ItemTooLarge { item_limit_bytes: 4096, .. }), "{err}");
    let bad = CacheConfig { invalidation_memory: Duration::from_secs(1), ..config() };
    assert!(matches!(Cache::new(bad), Err(ConfigError::Invalid(_))));
    let tiny = CacheConfig {
        store: StoreConfig { budget_bytes: 100, item_limit_bytes: 4096, ..StoreConfig::default() },
        ..config()
    };
    assert!(matches!(Cache::new(tiny), Err(ConfigError::BudgetBelowItemLimit { .. })));
}

#[test]
fn upkeep_does_bounded_work_per_call() {
    let mut c = cache();
    for i in 0..100u32 {
        lease(c.get(&i.to_le_bytes(), t(0)));
        c.invalidate(&(1000 + i).to_le_bytes(), 1, t(0));
    }
    assert_eq!(c.leases_outstanding(), 100);
    // All leases have lapsed at 10 s; each call sweeps at most 10 of them.
    c.expire(t(10), 10);
    assert_eq!(c.leases_outstanding(), 90);
    for _ in 0..9 {
        c.expire(t(10), 10);
    }
    assert_eq!(c.leases_outstanding(), 0);
    // Marks lapse at 60 s (lazily already: the query says so before the sweep removes them).
    assert_eq!(c.invalidation_mark(&1000u32.to_le_bytes(), t(60)), None);
}

/// `get_with` is `get` without the copy: the same answers, counters and leases, two caches driven
/// side by side through hits, a miss with a lease, a wait, a stale value and an expiry.
#[test]
fn get_with_answers_as_get_does() {
    let (mut a, mut b) = (cache(), cache());
    let get_with = |c: &mut Cache, key: &[u8], now: Time| match c.get_with(key, now, <[u8]>::to_vec) {
        Ok(value) => Lookup::Hit(value),
        Err(lookup) => {
            assert!(!matches!(lookup, Lookup::Hit(_)), "a hit came back as Err");
            lookup
        }
    };
    let fill = |c: &mut Cache, token: Option<LeaseToken>, version: u64, now: Time| {
        c.set(b"k", b"v".to_vec(), Fill { lease: token, version, ttl: Some(Duration::from_secs(20)) }, now)
    };
    type Step<'a> = &'a dyn Fn(&mut Cache, Time);
    let steps: [(u64, Step); 4] = [
        (0, &|_, _| {}),
        (1, &|c, now| {
            let Lookup::Miss { lease } = c.get(b"other", now) else { panic!() };
            let _ = lease;
        }),
        (2, &|c, now| c.invalidate(b"k", 9, now)),
        (40, &|_, _| {}),
    ];
    for (at, step) in steps {
        let now = t(at);
        step(&mut a, now);
        step(&mut b, now);
        let (x, y) = (a.get(b"k", now), get_with(&mut b, b"k", now));
        match (&x, &y) {
            (Lookup::Miss { lease: Some(ta) }, Lookup::Miss { lease: Some(tb) }) => {
                assert_eq!(ta, tb);
                // Filled at the start and at the end (refused then: older than the invalidation);
                // after the invalidation the lease stays out, so the next reader sees the stale value.
                if at != 2 {
                    assert_eq!(fill(&mut a, Some(*ta), 5, now), fill(&mut b, Some(*tb), 5, now));
                }
            }
            _ => assert_eq!(x, y, "at {at}s"),
        }
        // A second reader right after: a hit, a wait or a stale value, the same for both.
        assert_eq!(a.get(b"k", now), get_with(&mut b, b"k", now), "at {at}s");
        assert_eq!(a.stats(), b.stats(), "at {at}s");
    }
    assert!(a.stats().hits > 0 && a.stats().misses > 0 && a.stats().stale_served > 0);
}

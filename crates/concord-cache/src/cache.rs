//! # One cache node: leases and versioned invalidation over a bounded store
//!
//! [`Cache`] is what a cache process (or a simulated one) runs per node: a [`Store`] plus the two
//! mechanisms that keep a look-aside cache from serving stale data forever and from melting the
//! database, both from Nishtala et al., "Scaling Memcache at Facebook" (NSDI 2013, §3.2.1).
//! It does no I/O and reads no clock: every call takes `now`, the caller's [`Time`].
//!
//! ## The protocol a client follows (look-aside)
//! ```text
//! read k:   match cache.get(k, now)
//!             Hit(v)              → use v
//!             Miss{lease: Some(t)}→ v, ver = db.read(k); cache.set(k, v, Fill{lease: Some(t), version: ver, ..}, now)
//!             Miss{lease: None}   → read the db, do not fill (lease table full)
//!             MissWait{..}        → someone else is filling: wait a little, retry the get
//!             Stale(v)            → v is known to be outdated; use it if the caller tolerates that
//! write k:  db.write(k) at commit index i; then the invalidation stream calls invalidate(k, i)
//! ```
//!
//! ## Leases: thundering herds and stale sets
//! Two problems of a plain look-aside cache, and how one mechanism solves both:
//! - **Stale set.** Reader A misses, reads v1 from the database; a writer commits v2 and deletes
//!   the key from the cache; then A's delayed `set(v1)` lands: the cache now holds v1 *after* the
//!   invalidation, until its TTL. With leases a miss hands out a **token**; an invalidation of the
//!   key voids it, so A's set is refused ([`SetOutcome::LeaseInvalid`]).
//! - **Thundering herd.** A hot key is invalidated and a thousand readers miss at once, all
//!   hitting the database. With leases only **one token per key per lease period** is handed out;
//!   the other readers get [`Lookup::MissWait`] (retry shortly: the holder will have filled it) or,
//!   if the invalidated value was kept, [`Lookup::Stale`] – memcache keeps recently deleted items
//!   for exactly this, for readers that can live with a slightly old value.
//!
//! A token is valid until it is used, the key is invalidated or deleted, the cache is flushed, or
//! [`CacheConfig::lease_period`] passes (a holder that crashed must not block the key forever:
//! after the period the next miss gets a new token).
//!
//! ## Versions: invalidations that win against slow fills
//! Leases alone are not enough when invalidations and fills race through different paths (a fill
//! whose database read was served by a lagging replica, a token issued *after* the invalidation
//! but filled with data read *before* it). So every value carries a **version** and every
//! invalidation one too: the **commit index** of the database shard that owns the key (a plain
//! `u64`). A key belongs to one shard, so versions of the same key are comparable; different keys'
//! versions are never compared. (Resharding that moves a key to another shard must
//! [`Cache::flush_all`].)
//!
//! - `invalidate(k, i)` records a *high-water mark* `mark(k) = max(mark(k), i)`, voids k's lease
//!   and removes a cached value with version `< i` (keeping it as a stale value if
//!   [`CacheConfig::stale_keep`] allows). A cached value at version `>= i` already includes the
//!   change and stays.
//! - `set(k, v, Fill{version: w, ..})` is refused if `w < mark(k)`
//!   ([`SetOutcome::OlderThanInvalidation`]) or `w <` the cached version
//!   ([`SetOutcome::OlderThanCached`]): the cache never goes backwards.
//!
//! Marks are memory, so they are kept for a bounded time ([`CacheConfig::invalidation_memory`],
//! at least the lease period) and a bounded number ([`CacheConfig::max_invalidation_marks`],
//! oldest forgotten first). Once a mark is forgotten, a fill older than it is refused only if its
//! lease was voided – a fill whose token was issued later, but whose data is older still (a
//! replica lagging by more than `invalidation_memory`), would be accepted. Fill paths should read
//! the database linearizably (at the leader) to rule that out.
//!
//! ## What a lost invalidation costs
//! If an invalidation never arrives (a partition between the invalidation stream and this node,
//! a crash of the stream), the cache keeps serving the old value **until the entry's TTL**. Every
//! entry gets one: at most [`CacheConfig::max_ttl`], so staleness from lost invalidations is bounded
//! by `max_ttl`. To do better, the process that drives the cache must notice the gap (the stream's
//! sequence numbers skip, or the connection drops) and call [`Cache::flush_all`] before serving
//! again: a flush drops every value and voids every outstanding lease, so no fill based on a read
//! from before the flush can land after it.
//!
//! ## Bounds
//! Values: the store's byte budget. Leases: at most [`CacheConfig::max_leases`] outstanding (a miss
//! beyond that gets `Miss { lease: None }`). Marks: [`CacheConfig::max_invalidation_marks`]. Each
//! [`Cache::expire`] call does a bounded amount of work.

use crate::store::{ConfigError, InsertOptions, Store, StoreConfig, StoreError, StoreStats};
use concord_core::Time;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// A lease: the right to fill one key once. Tokens increase over the life of a [`Cache`], so a
/// token also says *when* it was issued relative to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseToken(pub u64);

/// The answer to [`Cache::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh value.
    Hit(Vec<u8>),
    /// No value. With a token, the caller is expected to read the database and fill with
    /// [`Cache::set`]; without one (the lease table is full) it reads the database and does not fill.
    Miss { lease: Option<LeaseToken> },
    /// No value, and another client holds the lease: retry the `get` shortly (the holder is
    /// filling). The lease lapses at `lease_expires_at` at the latest.
    MissWait { lease_expires_at: Time },
    /// A value that has been invalidated, kept for [`CacheConfig::stale_keep`]; another client
    /// holds the lease. Good enough for readers that tolerate staleness, wrong for the others.
    Stale(Vec<u8>),
}

/// How a [`Cache::set`] came about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    /// The token from the miss that led to this fill; `None` for an unleased set (allowed, and
    /// still checked against versions, but not protected against the stale-set race).
    pub lease: Option<LeaseToken>,
    /// The database version (shard commit index) the value was read at.
    pub version: u64,
    /// Time to live; `None` means [`CacheConfig::max_ttl`], and longer TTLs are capped to it.
    pub ttl: Option<Duration>,
}

/// The result of a [`Cache::set`] that was not an error. Every outcome but `LeaseInvalid` spends
/// the fill's lease (stored or refused, the holder is done); a holder that wants to retry asks
/// [`Cache::get`] for a new token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value is cached.
    Stored,
    /// The token is not (or no longer) this key's valid lease: voided by an invalidation, delete or
    /// flush, used already, or expired. The value may predate an invalidation.
    LeaseInvalid,
    /// The value was read at a version older than an invalidation this cache has seen.
    OlderThanInvalidation { version: u64, invalidated_at: u64 },
    /// A newer value is already cached.
    OlderThanCached { version: u64, cached: u64 },
}

/// Configuration of one cache node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub store: StoreConfig,
    /// How long a lease token is valid, and the shortest gap between two tokens for one key
    /// unless the first is used or voided (memcache: 10 s).
    pub lease_period: Duration,
    /// How long an invalidated value is kept to answer [`Lookup::Stale`]; zero keeps none.
    pub stale_keep: Duration,
    /// How long an invalidation's high-water mark is remembered; at least `lease_period`.
    pub invalidation_memory: Duration,
    /// The most marks remembered at once (oldest forgotten first).
    pub max_invalidation_marks: usize,
    /// The most leases outstanding at once.
    pub max_leases: usize,
    /// The longest an entry lives: the bound on staleness after a lost invalidation.
    pub max_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            store: StoreConfig::default(),
            lease_period: Duration::from_secs(10),
            stale_keep: Duration::from_secs(10),
            invalidation_memory: Duration::from_secs(60),
            max_invalidation_marks: 100_000,
            max_leases: 100_000,
            max_ttl: Duration::from_secs(3600),
        }
    }
}

/// Counters of one cache node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// `get`s answered [`Lookup::Hit`].
    pub hits: u64,
    /// `get`s answered `Miss`, `MissWait` or `Stale`.
    pub misses: u64,
    /// Of the misses: answered [`Lookup::Stale`].
    pub stale_served: u64,
    /// Of the misses: answered [`Lookup::MissWait`].
    pub waits: u64,
    pub leases_issued: u64,
    /// Misses that got no token because `max_leases` were outstanding.
    pub leases_refused_full: u64,
    pub fills_stored: u64,
    pub fills_refused: u64,
    pub invalidations: u64,
    /// Marks dropped because `max_invalidation_marks` was reached before their time was up.
    pub marks_forgotten_early: u64,
    pub flushes: u64,
    /// Evictions, expirations, bytes and entries of the underlying store. (Its `hits`/`misses`
    /// count only the store-level reads the cache made; use the fields above.)
    pub store: StoreStats,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    token: LeaseToken,
    expires_at: Time,
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    version: u64,
    forget_at: Time,
}

/// One cache node's logic. See the module docs.
#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    store: Store,
    /// Outstanding leases by key (lookup only, never iterated).
    leases: HashMap<Vec<u8>, Lease>,
    /// `(expires_at, key, token)` in issue order, for a bounded sweep; records whose token is no
    /// longer the key's lease are skipped.
    lease_queue: VecDeque<(Time, Vec<u8>, LeaseToken)>,
    next_token: u64,
    /// Invalidation high-water marks by key (lookup only, never iterated).
    marks: HashMap<Vec<u8>, Mark>,
    /// `(forget_at, key)` in recording order; a record is acted on only if the key's mark has that
    /// same `forget_at` (a later invalidation re-records the key).
    mark_queue: VecDeque<(Time, Vec<u8>)>,
    stats: CacheStats,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Result<Cache, ConfigError> {
        if config.lease_period.is_zero() {
            return Err(ConfigError::Invalid("lease_period must be positive".into()));
        }
        if config.invalidation_memory < config.lease_period {
            return Err(ConfigError::Invalid(format!(
                "invalidation_memory ({:?}) must be at least lease_period ({:?}): a lease may be \
                 filled until it lapses, and its fill must still meet the marks",
                config.invalidation_memory, config.lease_period
            )));
        }
        if config.max_leases == 0 || config.max_invalidation_marks == 0 {
            return Err(ConfigError::Invalid(
                "max_leases and max_invalidation_marks must be positive".into(),
            ));
        }
        if config.max_ttl.is_zero() {
            return Err(ConfigError::Invalid("max_ttl must be positive".into()));
        }
        Ok(Cache {
            store: Store::new(config.store)?,
            config,
            leases: HashMap::new(),
            lease_queue: VecDeque::new(),
            next_token: 1,
            marks: HashMap::new(),
            mark_queue: VecDeque::new(),
            stats: CacheStats::default(),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats { store: self.store.stats(), ..self.stats }
    }

    /// The underlying store (read-only: writes go through the cache's rules).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Read `key`. See [`Lookup`] for the answers and the module docs for the protocol.
    pub fn get(&mut self, key: &[u8], now: Time) -> Lookup {
        match self.get_with(key, now, <[u8]>::to_vec) {
            Ok(value) => Lookup::Hit(value),
            Err(lookup) => lookup,
        }
    }

    /// [`Cache::get`] without copying a hit: `on_hit` borrows the fresh value (a server writes it
    /// straight into its reply buffer), and its result comes back as `Ok`. Anything but a hit is
    /// `Err` with the same [`Lookup`] `get` would answer (never `Lookup::Hit`). Same counters,
    /// same policy updates, same leases as `get`.
    pub fn get_with<R>(
        &mut self,
        key: &[u8],
        now: Time,
        on_hit: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Lookup> {
        let stale_value = match self.store.peek(key, now) {
            Some(entry) if !entry.stale => None,
            Some(entry) => Some(Some(entry.value.clone())),
            None => Some(None),
        };
        let Some(stale_value) = stale_value else {
            // Fresh: `Store::get` counts the hit and tells the policy.
            let entry = self.store.get(key, now).expect("peeked a live entry");
            self.stats.hits += 1;
            return Ok(on_hit(&entry.value));
        };
        self.stats.misses += 1;
        if let Some(lease) = self.live_lease(key, now) {
            return Err(match stale_value {
                Some(value) => {
                    self.stats.stale_served += 1;
                    Lookup::Stale(value)
                }
                None => {
                    self.stats.waits += 1;
                    Lookup::MissWait { lease_expires_at: lease.expires_at }
                }
            });
        }
        Err(Lookup::Miss { lease: self.issue_lease(key, now) })
    }

    /// Install `value` for `key` after a miss (see [`Fill`] and [`SetOutcome`]). An error only for
    /// a value over the item limit; a refusal by the cache's rules is an `Ok` outcome.
    pub fn set(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        fill: Fill,
        now: Time,
    ) -> Result<SetOutcome, StoreError> {
        let outcome = self.check_fill(key, &fill, now);
        if outcome != SetOutcome::Stored {
            self.stats.fills_refused += 1;
            if fill.lease.is_some() && outcome != SetOutcome::LeaseInvalid {
                // The holder's token was valid but its data too old: the lease is spent, so the
                // next reader gets a fresh token at once instead of waiting out the period for a
                // holder that has given up.
                self.leases.remove(key);
            }
            return Ok(outcome);
        }
        let ttl = fill.ttl.unwrap_or(self.config.max_ttl).min(self.config.max_ttl);
        let options = InsertOptions { expires_at: Some(now + ttl), version: fill.version, stale: false };
        self.store.insert(key.to_vec(), value, options)?;
        if fill.lease.is_some() {
            // The lease did its job; the next miss (after an eviction) may get a new one.
            self.leases.remove(key);
        }
        self.stats.fills_stored += 1;
        Ok(SetOutcome::Stored)
    }

    fn check_fill(&mut self, key: &[u8], fill: &Fill, now: Time) -> SetOutcome {
        if let Some(token) = fill.lease {
            if self.live_lease(key, now).map(|l| l.token) != Some(token) {
                return SetOutcome::LeaseInvalid;
            }
        }
        if let Some(mark) = self.live_mark(key, now) {
            if fill.version < mark {
                return SetOutcome::OlderThanInvalidation { version: fill.version, invalidated_at: mark };
            }
        }
        if let Some(entry) = self.store.peek(key, now) {
            if !entry.stale && fill.version < entry.version {
                return SetOutcome::OlderThanCached { version: fill.version, cached: entry.version };
            }
        }
        SetOutcome::Stored
    }

    /// The database committed a change to `key` at `version` (its shard's commit index): values
    /// read before it must go, and fills read before it must not land. Idempotent; invalidations
    /// may arrive out of order (the mark keeps the maximum).
    pub fn invalidate(&mut self, key: &[u8], version: u64, now: Time) {
        self.stats.invalidations += 1;
        let mark = self.live_mark(key, now).unwrap_or(0).max(version);
        self.record_mark(key, mark, now);
        // Memcache: a delete voids the key's lease, so an in-flight fill cannot land.
        self.leases.remove(key);
        let Some(entry) = self.store.peek(key, now) else { return };
        if entry.stale || entry.version >= version {
            return; // already stale, or already includes this change
        }
        let (expires_at, entry_version) = (entry.expires_at, entry.version);
        if self.config.stale_keep.is_zero() {
            self.store.remove(key);
        } else {
            let keep_until = now + self.config.stale_keep;
            let expires_at = Some(expires_at.map_or(keep_until, |at| at.min(keep_until)));
            self.store.update_meta(
                key,
                now,
                InsertOptions { expires_at, version: entry_version, stale: true },
            );
        }
    }

    /// Remove `key` without a version (an operator's delete, or a client that has none): the value
    /// goes, no stale copy is kept, and the lease is voided, but no mark is recorded.
    pub fn delete(&mut self, key: &[u8], _now: Time) -> bool {
        self.leases.remove(key);
        self.store.remove(key).is_some()
    }

    /// Drop every value and void every lease: what a cache must do when it may have missed
    /// invalidations (after a partition from the invalidation stream, a reconnect, a restart of the
    /// stream). Marks are kept: they are still true.
    pub fn flush_all(&mut self, _now: Time) {
        self.stats.flushes += 1;
        self.store.clear();
        self.leases.clear();
        self.lease_queue.clear();
    }

    /// Background upkeep, bounded: sweep at most `max_work` store slots, lapsed leases and
    /// forgotten marks each. Call it periodically; correctness never depends on it (everything is
    /// also checked lazily), only memory does. Returns the number of entries expired.
    pub fn expire(&mut self, now: Time, max_work: usize) -> usize {
        for _ in 0..max_work {
            match self.lease_queue.front() {
                Some((expires_at, _, _)) if *expires_at <= now => {
                    let (_, key, token) = self.lease_queue.pop_front().expect("front exists");
                    if self.leases.get(&key).is_some_and(|l| l.token == token) {
                        self.leases.remove(&key);
                    }
                }
                _ => break,
            }
        }
        for _ in 0..max_work {
            match self.mark_queue.front() {
                Some((forget_at, _)) if *forget_at <= now => self.pop_mark_record(),
                _ => break,
            }
        }
        self.store.expire(now, max_work)
    }

    /// Whether `token` is `key`'s valid lease at `now` (for tests and assertions; no side effects).
    pub fn lease_is_valid(&self, key: &[u8], token: LeaseToken, now: Time) -> bool {
        self.leases.get(key).is_some_and(|l| l.token == token && now < l.expires_at)
    }

    /// The invalidation high-water mark remembered for `key`, if any (no side effects).
    pub fn invalidation_mark(&self, key: &[u8], now: Time) -> Option<u64> {
        self.marks.get(key).filter(|m| now < m.forget_at).map(|m| m.version)
    }

    /// Outstanding (possibly lapsed, not yet swept) leases.
    pub fn leases_outstanding(&self) -> usize {
        self.leases.len()
    }

    fn live_lease(&mut self, key: &[u8], now: Time) -> Option<Lease> {
        let lease = *self.leases.get(key)?;
        if now >= lease.expires_at {
            self.leases.remove(key);
            return None;
        }
        Some(lease)
    }

    fn issue_lease(&mut self, key: &[u8], now: Time) -> Option<LeaseToken> {
        if self.leases.len() >= self.config.max_leases {
            self.expire_leases_only(now);
            if self.leases.len() >= self.config.max_leases {
                self.stats.leases_refused_full += 1;
                return None;
            }
        }
        let token = LeaseToken(self.next_token);
        self.next_token += 1;
        let expires_at = now + self.config.lease_period;
        self.leases.insert(key.to_vec(), Lease { token, expires_at });
        self.lease_queue.push_back((expires_at, key.to_vec(), token));
        // Records of leases already used or voided stay until their time; bound the queue anyway.
        while self.lease_queue.len() > 2 * self.config.max_leases {
            let (_, key, token) = self.lease_queue.pop_front().expect("queue is long");
            if self.leases.get(&key).is_some_and(|l| l.token == token) {
                self.leases.remove(&key);
            }
        }
        self.stats.leases_issued += 1;
        Some(token)
    }

    fn expire_leases_only(&mut self, now: Time) {
        while let Some((expires_at, _, _)) = self.lease_queue.front() {
            if *expires_at > now {
                break;
            }
            let (_, key, token) = self.lease_queue.pop_front().expect("front exists");
            if self.leases.get(&key).is_some_and(|l| l.token == token) {
                self.leases.remove(&key);
            }
        }
    }

    fn live_mark(&mut self, key: &[u8], now: Time) -> Option<u64> {
        let mark = *self.marks.get(key)?;
        if now >= mark.forget_at {
            self.marks.remove(key);
            return None;
        }
        Some(mark.version)
    }

    fn record_mark(&mut self, key: &[u8], version: u64, now: Time) {
        let forget_at = now + self.config.invalidation_memory;
        self.marks.insert(key.to_vec(), Mark { version, forget_at });
        self.mark_queue.push_back((forget_at, key.to_vec()));
        // Over the bound: forget the oldest. Dead records (re-recorded keys) are dropped for free,
        // and the queue is also bounded so that re-recording one hot key cannot grow it.
        while self.marks.len() > self.config.max_invalidation_marks
            || self.mark_queue.len() > 2 * self.config.max_invalidation_marks
        {
            let live_before = self.marks.len();
            self.pop_mark_record();
            if self.marks.len() < live_before {
                self.stats.marks_forgotten_early += 1;
            }
        }
    }

    /// Pop the oldest mark record; forget the key's mark if the record is its current one.
    fn pop_mark_record(&mut self) {
        let Some((forget_at, key)) = self.mark_queue.pop_front() else { return };
        if self.marks.get(&key).is_some_and(|m| m.forget_at == forget_at) {
            self.marks.remove(&key);
        }
    }
}

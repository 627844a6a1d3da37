//! # Hit-ratio measurement on Zipf traces
//!
//! Real key popularity is skewed: a few keys get most requests. The standard model is **Zipf**:
//! the key of rank `r` (1 = most popular) is requested with probability proportional to `1/r^s`.
//! Web and social-network caches measure `s` between about 0.6 and 1.2 (Breslau et al. 1999;
//! the memcache and CacheLib papers); `s = 0.99` is YCSB's default.
//!
//! [`Zipf`] samples ranks by inverting a precomputed cumulative distribution (`O(n)` memory, one
//! binary search per sample – exact, simple, and fast enough for the million-key traces a lab
//! needs). [`zipf_trace`] is seeded with [`SplitMix64`]: the same `(keys, skew, requests, seed)`
//! always yields the same trace on a given platform (the CDF uses `f64::powf`, whose last bit may
//! differ between math libraries, so traces are reproducible per platform, and hit ratios agree
//! to many digits across platforms).
//!
//! [`run_look_aside`] replays a trace against a [`Store`] the way a look-aside client does (get;
//! on a miss, set) and counts hits; [`hit_ratio_table`] does it for several skews, cache sizes and
//! both policies – the table `cargo run --release -p concord-cache --example hit_ratio` prints.

use crate::policy::PolicyKind;
use crate::store::{charge, InsertOptions, Store, StoreConfig};
use concord_core::hash::SplitMix64;
use concord_core::Time;

/// A Zipf distribution over ranks `0..keys` (rank 0 the most popular), `P(r) ∝ 1/(r+1)^skew`.
#[derive(Clone, Debug)]
pub struct Zipf {
    /// `cdf[r]` = P(rank <= r); the last is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// Panics if `keys` is 0 or `skew` is negative or not finite.
    pub fn new(keys: u64, skew: f64) -> Zipf {
        assert!(keys > 0, "a Zipf distribution needs at least one key");
        assert!(skew.is_finite() && skew >= 0.0, "skew must be finite and >= 0, got {skew}");
        let weights: Vec<f64> = (1..=keys).map(|r| (r as f64).powf(-skew)).collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                running += w;
                running / total
            })
            .collect();
        *cdf.last_mut().expect("keys > 0") = 1.0;
        Zipf { cdf }
    }

    pub fn keys(&self) -> u64 {
        self.cdf.len() as u64
    }

    /// The probability of rank `r`.
    pub fn probability(&self, r: u64) -> f64 {
        let r = r as usize;
        self.cdf[r] - if r == 0 { 0.0 } else { self.cdf[r - 1] }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = uniform01(rng);
        // First rank whose cumulative probability exceeds u.
        (self.cdf.partition_point(|&c| c <= u) as u64).min(self.keys() - 1)
    }
}

/// A uniform `f64` in `[0, 1)`: a uniform integer below 2^53, scaled (exact in an `f64`).
fn uniform01(rng: &mut SplitMix64) -> f64 {
    rng.below(1 << 53) as f64 / (1u64 << 53) as f64
}

/// `requests` ranks drawn from Zipf(`keys`, `skew`) with `seed`.
pub fn zipf_trace(keys: u64, skew: f64, requests: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, skew);
    let mut rng = SplitMix64(seed);
    (0..requests).map(|_| zipf.sample(&mut rng)).collect()
}

/// The outcome of one replay.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HitRatio {
    pub policy: PolicyKind,
    pub budget_bytes: u64,
    pub requests: u64,
    pub hits: u64,
    /// Evictions during the replay.
    pub evictions: u64,
}

impl HitRatio {
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.hits as f64 / self.requests as f64
        }
    }
}

/// The key bytes of rank `r` in replays (8 bytes).
pub fn trace_key(rank: u64) -> [u8; 8] {
    rank.to_le_bytes()
}

/// The budget charge of one trace entry with `value_bytes`-byte values.
pub fn trace_entry_charge(value_bytes: usize) -> u64 {
    charge(8, value_bytes)
}

/// Replay `trace` as a look-aside client would – `get`; on a miss, `set` – against a fresh store
/// with `policy` and `budget_bytes`, every value `value_bytes` long, no TTLs. Counts hits over the
/// whole trace (cold misses included, the same for every policy).
///
/// Panics if the budget cannot hold one entry.
pub fn run_look_aside(policy: PolicyKind, budget_bytes: u64, value_bytes: usize, trace: &[u64]) -> HitRatio {
    run_look_aside_sized(policy, budget_bytes, value_bytes, trace, |_| value_bytes)
}

/// A value size for rank `r` between 16 and 4096 bytes, log-uniform and fixed per key (a hash of
/// the rank): a crude stand-in for real object sizes, which span orders of magnitude.
pub fn varied_value_bytes(rank: u64) -> usize {
    let exponent = (concord_core::hash::mix64(rank) % 1024) as f64 / 1024.0 * 8.0; // 2^4..2^12
    (16.0 * exponent.exp2()) as usize
}

/// [`run_look_aside`] with a value size per key (`value_bytes(rank)`, at most `max_value_bytes`),
/// so policies are compared at equal *bytes*, not equal entry counts.
pub fn run_look_aside_sized(
    policy: PolicyKind,
    budget_bytes: u64,
    max_value_bytes: usize,
    trace: &[u64],
    value_bytes: impl Fn(u64) -> usize,
) -> HitRatio {
    let config = StoreConfig { budget_bytes, item_limit_bytes: trace_entry_charge(max_value_bytes), policy };
    let mut store = Store::new(config).expect("the budget holds at least one entry");
    let now = Time::ZERO;
    let mut hits = 0;
    for &rank in trace {
        let key = trace_key(rank);
        if store.get(&key, now).is_some() {
            hits += 1;
        } else {
            store
                .insert(key.to_vec(), vec![0; value_bytes(rank)], InsertOptions::default())
                .expect("an entry within the item limit");
        }
    }
    HitRatio { policy, budget_bytes, requests: trace.len() as u64, hits, evictions: store.stats().evictions }
}

/// One row of a hit-ratio table.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HitRatioRow {
    pub skew: f64,
    /// Cache size as a fraction of the distinct keys (the budget is this many entries' charges).
    pub cache_fraction: f64,
    pub lru: HitRatio,
    pub s3fifo: HitRatio,
}

/// Replay one Zipf trace per skew (seeded with `seed`) at every cache fraction with both policies.
pub fn hit_ratio_table(
    skews: &[f64],
    cache_fractions: &[f64],
    keys: u64,
    requests: usize,
    value_bytes: usize,
    seed: u64,
) -> Vec<HitRatioRow> {
    let mut rows = Vec::new();
    for &skew in skews {
        let trace = zipf_trace(keys, skew, requests, seed);
        for &cache_fraction in cache_fractions {
            let entries = ((keys as f64 * cache_fraction).round() as u64).max(1);
            let budget = entries * trace_entry_charge(value_bytes);
            rows.push(HitRatioRow {
                skew,
                cache_fraction,
                lru: run_look_aside(PolicyKind::Lru, budget, value_bytes, &trace),
                s3fifo: run_look_aside(PolicyKind::S3Fifo, budget, value_bytes, &trace),
            });
        }
    }
    rows
}

/// The LRU hit ratio of a cache of `entries` equal-sized items under independent requests drawn
/// from `zipf`, by Che's approximation (Che, Tung, Wang 2002; accurate to about a percent for
/// Zipf): LRU behaves as if every key stayed for a fixed "characteristic time" `T` after its last
/// request, where `T` solves `Σ_i (1 − e^(−p_i·T)) = entries`; key `i` then hits with probability
/// `1 − e^(−p_i·T)`. An independent check of the LRU implementation, and a theory line for plots.
pub fn che_lru_hit_ratio(zipf: &Zipf, entries: u64) -> f64 {
    let n = zipf.keys();
    if entries >= n {
        return 1.0;
    }
    let probabilities: Vec<f64> = (0..n).map(|r| zipf.probability(r)).collect();
    let occupancy = |t: f64| -> f64 { probabilities.iter().map(|p| 1.0 - (-p * t).exp()).sum::<f64>() };
    // Occupancy grows with T from 0 towards n: bisect on a bracket that doubles until it holds.
    let (mut lo, mut hi) = (0.0, 1.0);
    while occupancy(hi) < entries as f64 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if occupancy(mid) < entries as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = (lo + hi) / 2.0;
    probabilities.iter().map(|p| p * (1.0 - (-p * t).exp())).sum()
}

/// The hit ratio of an oracle that always holds the `entries` most popular keys: the best any
/// policy can do in the long run under independent requests (LFU's limit).
pub fn top_keys_hit_ratio(zipf: &Zipf, entries: u64) -> f64 {
    (0..entries.min(zipf.keys())).map(|r| zipf.probability(r)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_frequencies_match_the_distribution() {
        let zipf = Zipf::new(1000, 0.99);
        let trace = zipf_trace(1000, 0.99, 200_000, 7);
        let mut counts = [0u64; 3];
        for &r in &trace {
            if r < 3 {
                counts[r as usize] += 1;
            }
        }
        for (r, &count) in counts.iter().enumerate() {
            let expected = zipf.probability(r as u64) * 200_000.0;
            // Binomial noise: a few standard deviations (sqrt(expected) ≈ 100..200).
            assert!(
                (count as f64 - expected).abs() < 5.0 * expected.sqrt(),
                "rank {r}: {count} vs {expected}"
            );
        }
        // Rank 0 vs rank 1: ratio 2^0.99.
        assert!((counts[0] as f64 / counts[1] as f64 - 2f64.powf(0.99)).abs() < 0.1);
        assert!(trace.iter().all(|&r| r < 1000));
    }

    #[test]
    fn traces_are_deterministic_per_seed() {
        assert_eq!(zipf_trace(500, 1.2, 1000, 3), zipf_trace(500, 1.2, 1000, 3));
        assert_ne!(zipf_trace(500, 1.2, 1000, 3), zipf_trace(500, 1.2, 1000, 4));
    }

    #[test]
    fn a_cache_holding_every_key_misses_only_cold() {
        let trace = zipf_trace(100, 0.9, 10_000, 1);
        let distinct = {
            let mut t = trace.clone();
            t.sort_unstable();
            t.dedup();
            t.len() as u64
        };
        for policy in PolicyKind::ALL {
            let run = run_look_aside(policy, 100 * trace_entry_charge(16), 16, &trace);
            assert_eq!(run.hits, 10_000 - distinct, "{policy:?}");
            assert_eq!(run.evictions, 0);
        }
    }
}

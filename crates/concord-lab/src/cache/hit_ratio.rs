//! Part 1: hit ratio against cache size, per eviction policy and Zipf skew.
//!
//! One Zipf trace per skew is replayed as a look-aside client would (get; on a miss, set) against
//! a fresh [`Store`](concord_cache::Store) of a given byte budget, once with LRU and once with
//! S3-FIFO – the same trace, the same budget, so the two numbers differ only by the policy. The
//! budget is a fraction of the *working set*: the bytes all keys of the trace would take. Two
//! sizings:
//!
//! * **equal values** (100 bytes each): the budget is then also a fraction of the keys, and two
//!   references apply – Che's approximation of LRU (an independent calculation that the LRU
//!   replay must agree with) and the hit ratio of holding the most popular keys (the best any
//!   policy can do in the long run under independent requests);
//! * **varied values** (16–4096 bytes, log-uniform, fixed per key): a popular large value competes
//!   with many small ones for the same bytes. Che's approximation generalises ([`che_lru_sized`]):
//!   every key stays for the characteristic time `T` after its last request, and `T` fills the
//!   *bytes* of the budget.
//!
//! The replay counts every request, the cold misses of the first requests included (the same for
//! both policies; at most one per distinct key).

use concord_cache::policy::PolicyKind;
use concord_cache::trace::{
    che_lru_hit_ratio, run_look_aside_sized, top_keys_hit_ratio, trace_entry_charge, varied_value_bytes,
    zipf_trace, Zipf,
};
use serde::Serialize;

/// The value size of every key in the equal-values sizing.
pub const EQUAL_VALUE_BYTES: usize = 100;
/// The largest value of the varied sizing ([`varied_value_bytes`]).
pub const MAX_VARIED_VALUE_BYTES: usize = 4096;

/// How big the values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sizing {
    /// Every value [`EQUAL_VALUE_BYTES`] long.
    Equal,
    /// 16–4096 bytes per key ([`varied_value_bytes`]).
    Varied,
}

impl Sizing {
    pub const ALL: [Sizing; 2] = [Sizing::Equal, Sizing::Varied];

    pub fn value_bytes(self, rank: u64) -> usize {
        match self {
            Sizing::Equal => EQUAL_VALUE_BYTES,
            Sizing::Varied => varied_value_bytes(rank),
        }
    }
    fn max_value_bytes(self) -> usize {
        match self {
            Sizing::Equal => EQUAL_VALUE_BYTES,
            Sizing::Varied => MAX_VARIED_VALUE_BYTES,
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Sizing::Equal => "equal values (100 B)",
            Sizing::Varied => "varied values (16–4096 B)",
        }
    }
}

/// The measurements at one cache size.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// The budget as a fraction of the working set's bytes.
    pub fraction: f64,
    pub budget_bytes: u64,
    pub lru: f64,
    pub s3fifo: f64,
    pub lru_evictions: u64,
    pub s3fifo_evictions: u64,
    /// Che's approximation of LRU at this budget.
    pub che_lru: f64,
    /// Holding the most popular keys that fit (equal values only).
    pub top_keys: Option<f64>,
}

/// One skew and sizing, every cache size.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    pub skew: f64,
    pub sizing: Sizing,
    pub keys: u64,
    pub requests: usize,
    /// The bytes all keys take in a store (key + value + per-entry overhead).
    pub working_set_bytes: u64,
    pub points: Vec<Point>,
}

/// Che's approximation for a byte budget and a charge per key: LRU keeps key `i` for a
/// characteristic time `T` after its last request, `T` solving `Σ_i c_i·(1 − e^(−p_i·T)) = budget`
/// (the expected bytes resident); key `i` hits with probability `1 − e^(−p_i·T)`. With equal
/// charges this is [`che_lru_hit_ratio`].
pub fn che_lru_sized(zipf: &Zipf, charges: &[u64], budget_bytes: u64) -> f64 {
    let n = zipf.keys() as usize;
    assert_eq!(charges.len(), n, "one charge per key");
    if charges.iter().sum::<u64>() <= budget_bytes {
        return 1.0;
    }
    let probabilities: Vec<f64> = (0..n as u64).map(|r| zipf.probability(r)).collect();
    let resident = |t: f64| -> f64 {
        probabilities.iter().zip(charges).map(|(p, &c)| c as f64 * (1.0 - (-p * t).exp())).sum()
    };
    // Resident bytes grow with T: bisect on a bracket that doubles until it holds the budget.
    let budget = budget_bytes as f64;
    let (mut lo, mut hi) = (0.0, 1.0);
    while resident(hi) < budget {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if resident(mid) < budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = (lo + hi) / 2.0;
    probabilities.iter().map(|p| p * (1.0 - (-p * t).exp())).sum()
}

/// Measure one curve: the trace of `(keys, skew, requests, seed)` at every budget fraction.
pub fn measure(skew: f64, sizing: Sizing, keys: u64, requests: usize, fractions: &[f64], seed: u64) -> Curve {
    let trace = zipf_trace(keys, skew, requests, seed);
    let zipf = Zipf::new(keys, skew);
    let charges: Vec<u64> = (0..keys).map(|r| trace_entry_charge(sizing.value_bytes(r))).collect();
    let working_set_bytes: u64 = charges.iter().sum();
    let points = fractions
        .iter()
        .map(|&fraction| {
            // Never below one largest entry, so the store can hold anything the trace asks for.
            let budget_bytes = ((working_set_bytes as f64 * fraction).round() as u64)
                .max(trace_entry_charge(sizing.max_value_bytes()));
            let run = |policy| {
                run_look_aside_sized(policy, budget_bytes, sizing.max_value_bytes(), &trace, |r| {
                    sizing.value_bytes(r)
                })
            };
            let (lru, s3) = (run(PolicyKind::Lru), run(PolicyKind::S3Fifo));
            let (che_lru, top_keys) = match sizing {
                Sizing::Equal => {
                    let entries = budget_bytes / trace_entry_charge(EQUAL_VALUE_BYTES);
                    (che_lru_hit_ratio(&zipf, entries), Some(top_keys_hit_ratio(&zipf, entries)))
                }
                Sizing::Varied => (che_lru_sized(&zipf, &charges, budget_bytes), None),
            };
            Point {
                fraction,
                budget_bytes,
                lru: lru.ratio(),
                s3fifo: s3.ratio(),
                lru_evictions: lru.evictions,
                s3fifo_evictions: s3.evictions,
                che_lru,
                top_keys,
            }
        })
        .collect();
    Curve { skew, sizing, keys, requests, working_set_bytes, points }
}

/// A size at which S3-FIFO hit less often than LRU.
#[derive(Clone, Debug, Serialize)]
pub struct Shortfall {
    pub skew: f64,
    pub sizing: Sizing,
    pub fraction: f64,
    pub lru: f64,
    pub s3fifo: f64,
}

/// Every measured size at which S3-FIFO is below LRU (the criterion is that there is none).
pub fn shortfalls(curves: &[Curve]) -> Vec<Shortfall> {
    curves
        .iter()
        .flat_map(|c| {
            c.points.iter().filter(|p| p.s3fifo < p.lru).map(move |p| Shortfall {
                skew: c.skew,
                sizing: c.sizing,
                fraction: p.fraction,
                lru: p.lru,
                s3fifo: p.s3fifo,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_che_with_equal_charges_is_ches_approximation() {
        let zipf = Zipf::new(2000, 0.99);
        let charges = vec![trace_entry_charge(100); 2000];
        for entries in [20, 200, 1000] {
            let a = che_lru_sized(&zipf, &charges, entries * trace_entry_charge(100));
            let b = che_lru_hit_ratio(&zipf, entries);
            assert!((a - b).abs() < 1e-9, "{entries}: {a} vs {b}");
        }
        assert_eq!(che_lru_sized(&zipf, &charges, 2000 * trace_entry_charge(100)), 1.0);
    }

    #[test]
    fn a_curve_rises_with_the_budget_and_lru_follows_che() {
        let c = measure(0.99, Sizing::Varied, 2000, 40_000, &[0.02, 0.1, 0.3], 5);
        assert_eq!(c.points.len(), 3);
        for w in c.points.windows(2) {
            assert!(w[0].lru < w[1].lru && w[0].s3fifo < w[1].s3fifo, "{:?}", c.points);
        }
        for p in &c.points {
            assert!((p.lru - p.che_lru).abs() < 0.04, "{p:?}");
        }
    }
}

//! Zipf arithmetic for key spaces too large to list: the hottest key's share and Che's
//! approximation of an LRU cache's hit ratio.
//!
//! `concord_cache::trace::che_lru_hit_ratio` solves Che's equation over every key, which needs one
//! `f64` per key – fine for the cache lab's 100 000 keys, not for the two billion keys of a 2 TB
//! store. Here the same equation is solved over ranks grouped into buckets: the first
//! [`EXACT_RANKS`] ranks one by one, the rest in geometric buckets (each 1 % wider than the last),
//! every key of a bucket given the bucket's mean probability. Zipf's probabilities change by less
//! than 1 % · s across a bucket, so the grouping moves the hit ratio by far less than Che's own
//! error (about a percent); a test checks it against the cache crate's exact sum.

/// Ranks summed one by one before the buckets start.
pub const EXACT_RANKS: u64 = 10_000;

/// A Zipf popularity over `keys` ranks, `P(r) ∝ r^-s` (r from 1), as (keys in the group,
/// probability of each of them) groups.
#[derive(Clone, Debug)]
pub struct ZipfGroups {
    pub keys: u64,
    pub skew: f64,
    /// (count, probability of each key), hottest first.
    groups: Vec<(f64, f64)>,
}

/// ∫ x^-s dx from a to b.
fn integral(a: f64, b: f64, s: f64) -> f64 {
    if (s - 1.0).abs() < 1e-12 {
        (b / a).ln()
    } else {
        (b.powf(1.0 - s) - a.powf(1.0 - s)) / (1.0 - s)
    }
}

impl ZipfGroups {
    pub fn new(keys: u64, skew: f64) -> ZipfGroups {
        assert!(keys > 0 && skew.is_finite() && skew >= 0.0);
        let mut weights: Vec<(f64, f64)> = Vec::new(); // (count, total weight of the group)
        let exact = keys.min(EXACT_RANKS);
        for r in 1..=exact {
            weights.push((1.0, (r as f64).powf(-skew)));
        }
        let mut a = exact + 1;
        while a <= keys {
            let b = ((a as f64 * 1.01).ceil() as u64).max(a + 1).min(keys + 1); // [a, b)
                                                                                // The midpoint rule for the sum of r^-s over [a, b): the integral from a − ½ to b − ½.
            let w = integral(a as f64 - 0.5, b as f64 - 0.5, skew);
            weights.push(((b - a) as f64, w));
            a = b;
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let groups = weights.into_iter().map(|(c, w)| (c, w / total / c)).collect();
        ZipfGroups { keys, skew, groups }
    }

    /// The hottest key's share of the requests.
    pub fn hottest(&self) -> f64 {
        self.groups[0].1
    }

    /// The share of the requests that go to the `k` hottest keys.
    pub fn top_share(&self, k: f64) -> f64 {
        let mut left = k;
        let mut share = 0.0;
        for &(c, p) in &self.groups {
            if left <= 0.0 {
                break;
            }
            let take = c.min(left);
            share += take * p;
            left -= take;
        }
        share.min(1.0)
    }

    /// Che's approximation of the hit ratio of an LRU cache holding `entries` keys: the
    /// characteristic time `T` solves `Σ_i (1 − e^(−p_i·T)) = entries`, and key `i` hits with
    /// probability `1 − e^(−p_i·T)`.
    pub fn che_lru_hit_ratio(&self, entries: f64) -> f64 {
        if entries >= self.keys as f64 {
            return 1.0;
        }
        if entries <= 0.0 {
            return 0.0;
        }
        let occupancy =
            |t: f64| -> f64 { self.groups.iter().map(|&(c, p)| c * -(-p * t).exp_m1()).sum::<f64>() };
        let (mut lo, mut hi) = (0.0, 1.0);
        while occupancy(hi) < entries {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if occupancy(mid) < entries {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let t = 0.5 * (lo + hi);
        self.groups.iter().map(|&(c, p)| c * p * -(-p * t).exp_m1()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_cache::trace::{che_lru_hit_ratio, top_keys_hit_ratio, Zipf};

    /// The buckets agree with the cache crate's exact sums over every key (200 000 keys: 10 000
    /// exact ranks, then ~300 buckets).
    #[test]
    fn grouped_che_matches_the_exact_sum() {
        for skew in [0.7, 0.99, 1.2] {
            let exact = Zipf::new(200_000, skew);
            let grouped = ZipfGroups::new(200_000, skew);
            assert!((grouped.hottest() - exact.probability(0)).abs() < 1e-4 * exact.probability(0).max(1e-3));
            for entries in [200u64, 2_000, 20_000] {
                let a = che_lru_hit_ratio(&exact, entries);
                let b = grouped.che_lru_hit_ratio(entries as f64);
                assert!((a - b).abs() < 2e-3, "skew {skew}, {entries} entries: exact {a}, grouped {b}");
                let top_a = top_keys_hit_ratio(&exact, entries);
                let top_b = grouped.top_share(entries as f64);
                assert!((top_a - top_b).abs() < 2e-3, "top {entries}: {top_a} vs {top_b}");
            }
        }
    }

    /// Uniform popularity (s = 0): a cache of a fraction f of the keys hits f of the time.
    #[test]
    fn uniform_keys_hit_in_proportion_to_the_cache() {
        let z = ZipfGroups::new(1_000_000_000, 0.0);
        assert!((z.che_lru_hit_ratio(1e7) - 0.01).abs() < 1e-4);
        assert!((z.hottest() - 1e-9).abs() < 1e-12);
    }
}

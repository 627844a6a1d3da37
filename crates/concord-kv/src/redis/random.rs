//! Deterministic randomness for `SPOP`, `SRANDMEMBER` and `HRANDFIELD`.
//!
//! Every replica must pick the same members, so the interpreter cannot use a thread RNG or the
//! clock. A command's generator is seeded from what every replica agrees on:
//! * writes (`SPOP`): the command's time (the proposer's clock, carried in the log entry), the
//!   revision the command gets, and the key – so each pop is a fresh draw, the same everywhere;
//! * `RANDOMKEY`: the store's revision (and, in a `MULTI`, the command's time);
//! * reads (`SRANDMEMBER`, `HRANDFIELD`): the key and its entry's mod revision and version, so a
//!   read answers the same on every replica and at every retry until the collection changes
//!   (Redis would draw anew each time; a client asking twice of an unchanged collection here
//!   gets the same members).
//!
//! The generator is SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and good enough to pick
//! members; seeds are mixed with FNV-1a. This is not cryptographic randomness – nor is Redis's.

use super::{Tx, View};

pub(crate) struct Rng(u64);

impl Rng {
    fn from_parts(parts: &[&[u8]]) -> Rng {
        // FNV-1a over the parts, each length-prefixed so ("ab", "c") and ("a", "bc") differ.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Rng(hash)
    }

    /// The generator of a write command on `key`.
    pub fn for_write(tx: &Tx, key: &[u8]) -> Rng {
        Rng::from_parts(&[&tx.now.0.to_le_bytes(), &tx.revision().to_le_bytes(), key])
    }

    /// The generator of a read command on `key` (the same until the key changes).
    pub fn for_read(view: &View, key: &[u8]) -> Rng {
        let entry = view.entry(key);
        let (rev, version) = entry.map_or((0, 0), |e| (e.mod_revision, e.version));
        Rng::from_parts(&[&rev.to_le_bytes(), &version.to_le_bytes(), key])
    }

    /// The generator of `RANDOMKEY`: the store's revision (a query: the same until the next write)
    /// and, inside a `MULTI`, the command's time.
    pub fn for_keyspace(view: &View) -> Rng {
        let now = view.now.map_or(0, |t| t.0);
        Rng::from_parts(&[&view.revision().to_le_bytes(), &now.to_le_bytes(), b"randomkey"])
    }

    /// SplitMix64's next output.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-and-shift (the bias, under 2^-32 for
    /// any collection that fits in memory, does not matter for picking members).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// `k` distinct indices of `0..n` (`k <= n`), in the order drawn: a partial Fisher–Yates
    /// shuffle of `0..n`.
    pub fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below((n - i) as u64) as usize;
            indices.swap(i, j);
        }
        indices.truncate(k);
        indices
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_draws_the_same_numbers_and_another_seed_others() {
        let draw = |seed: &[u8]| {
            let mut rng = Rng::from_parts(&[seed]);
            (0..32).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(b"a"), draw(b"a"));
        assert_ne!(draw(b"a"), draw(b"b"));
        assert!(draw(b"a").iter().all(|&x| x < 1000));
    }

    #[test]
    fn distinct_indices_are_distinct_and_in_range() {
        let mut rng = Rng::from_parts(&[b"k"]);
        let mut picked = rng.distinct(10, 7);
        assert_eq!(picked.len(), 7);
        picked.sort();
        picked.dedup();
        assert_eq!(picked.len(), 7);
        assert!(picked.iter().all(|&i| i < 10));
        assert_eq!(rng.distinct(3, 3).len(), 3);
    }
}

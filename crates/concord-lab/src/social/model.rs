//! The users: who follows whom, who is a celebrity, and how busy the day is.
//!
//! A simulated platform does not run 100 000 user processes. It keeps a *model* of the users – the
//! follow graph and how active each user is – and draws requests from it, the way a load
//! generator replays a population. Everything is drawn from the run's seed.
//!
//! **The follow graph is a power law.** Each user follows `following_min..=following_max`
//! accounts, each chosen by a Zipf draw over popularity ranks (rank 1 most popular). The
//! in-degrees (follower counts) then follow the same Zipf law: most users have a handful of
//! followers, a few have a large share of the whole platform – the celebrities. This is how
//! Twitter's and Instagram's graphs look (Kwak et al., WWW 2010: a power-law tail of followers).
//!
//! **The load is diurnal.** The request rate follows one compressed day over the run:
//! `rate(t) = base × (1 + swing × sin(2π t / day − π/2))`, quiet at the start, peak at mid-run.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use std::collections::BTreeSet;

/// A user id: `0..users`. Id `i` has popularity rank `i + 1` (0 is the most followed).
pub type UserId = u32;

/// The follow graph and the users' roles.
#[derive(Clone, Debug)]
pub struct Users {
    /// `following[u]`: the accounts `u` follows, sorted.
    pub following: Vec<Vec<UserId>>,
    /// `followers[u]`: the accounts that follow `u`, sorted.
    pub followers: Vec<Vec<UserId>>,
}

impl Users {
    /// Draw `users` users, each following `following` accounts (a range), popularity Zipf(`skew`).
    pub fn generate(
        users: u32,
        following: (u32, u32),
        skew: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Users, String> {
        if users < 2 {
            return Err(format!("users = {users}: a platform needs at least 2 users"));
        }
        if following.0 > following.1 || following.1 >= users {
            return Err(format!(
                "following = {}..={}: the range must be ordered and below the number of users ({users})",
                following.0, following.1
            ));
        }
        let zipf = Zipf::new(u64::from(users), skew).map_err(|e| format!("zipf skew {skew}: {e}"))?;
        let mut out = vec![Vec::new(); users as usize];
        let mut ins = vec![Vec::new(); users as usize];
        for u in 0..users {
            let want = rng.gen_range(following.0..=following.1) as usize;
            let mut chosen = BTreeSet::new();
            // Bounded: a user whose draws keep hitting itself or repeats gives up after 8× tries.
            let mut tries = 0;
            while chosen.len() < want && tries < 8 * want {
                tries += 1;
                let v = zipf.sample(rng) as u32 - 1;
                if v != u {
                    chosen.insert(v);
                }
            }
            for &v in &chosen {
                ins[v as usize].push(u);
            }
            out[u as usize] = chosen.into_iter().collect();
        }
        // `ins` was filled in increasing `u`: already sorted.
        Ok(Users { following: out, followers: ins })
    }

    pub fn len(&self) -> u32 {
        self.following.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.following.is_empty()
    }

    /// The `n` most followed users, most followed first.
    pub fn top(&self, n: usize) -> Vec<UserId> {
        let mut ids: Vec<UserId> = (0..self.len()).collect();
        ids.sort_by_key(|&u| (std::cmp::Reverse(self.followers[u as usize].len()), u));
        ids.truncate(n);
        ids
    }

    /// Follower counts, sorted descending (the degree distribution's plot).
    pub fn follower_counts(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.followers.iter().map(Vec::len).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// Record that `u` now follows `v` (a follow during the run). Returns false if it already did.
    pub fn follow(&mut self, u: UserId, v: UserId) -> bool {
        let list = &mut self.following[u as usize];
        match list.binary_search(&v) {
            Ok(_) => false,
            Err(at) => {
                list.insert(at, v);
                let f = &mut self.followers[v as usize];
                let at = f.binary_search(&u).unwrap_or_else(|at| at);
                f.insert(at, u);
                true
            }
        }
    }
}

/// The request rate at virtual time `t_s` of a run whose compressed day lasts `day_s`.
pub fn diurnal_rate(base_per_s: f64, swing: f64, t_s: f64, day_s: f64) -> f64 {
    let phase = 2.0 * std::f64::consts::PI * t_s / day_s - std::f64::consts::FRAC_PI_2;
    (base_per_s * (1.0 + swing * phase.sin())).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn followers_follow_a_power_law_with_a_few_celebrities() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let users = Users::generate(5_000, (5, 30), 1.0, &mut rng).unwrap();
        let counts = users.follower_counts();
        let total: usize = counts.iter().sum();
        // The top 1 % hold a large share; the median user has a handful.
        let top: usize = counts[..50].iter().sum();
        assert!(top * 4 > total, "top 1 % hold {top} of {total}");
        assert!(counts[2_500] < 10, "median {}", counts[2_500]);
        assert!(counts[0] > 1_000, "the top account has {}", counts[0]);
    }

    #[test]
    fn the_day_is_quiet_at_the_start_and_busy_at_noon() {
        assert!((diurnal_rate(100.0, 0.5, 0.0, 60.0) - 50.0).abs() < 1e-9);
        assert!((diurnal_rate(100.0, 0.5, 30.0, 60.0) - 150.0).abs() < 1e-9);
    }
}

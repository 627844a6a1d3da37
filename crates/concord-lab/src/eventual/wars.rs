//! The WARS model of PBS (Bailis et al., VLDB 2012, §5) and the latency distributions it was fed.
//!
//! A write goes to all `N` replicas; replica `i` stores it after a delay `W_i` and its
//! acknowledgement takes `A_i` to come back. The write *commits* when the `W`-th fastest `W_i + A_i`
//! arrives. A read starts `t` after the commit; its request reaches replica `i` after `R_i` and the
//! answer comes back after `S_i`. The coordinator uses the first `R` answers (smallest `R_i + S_i`).
//! The read is consistent if one of those `R` replicas had stored the write when the request
//! reached it: `W_i <= commit + t + R_i`. Everything else – anti-entropy, read repair, failures – is
//! left out, as in the paper. [`consistency`] runs this model by Monte Carlo.
//!
//! The distributions are the paper's fits to production latencies (its table "Distribution fits for
//! production latency distributions", Table 3: LinkedIn's Voldemort on SSDs and on spinning disks,
//! Yammer's Riak), each a mixture of a Pareto and an exponential, in milliseconds; and synthetic
//! exponentials with a slower `W` (the paper varies the `W : A=R=S` mean ratio). Every weight, x_m,
//! α and λ below was checked against the authors' LaTeX source of that table
//! (github.com/pbailis/pbs-vldb-historical-paper-material, `writeup/ernst.tex`, label
//! `table:fits`) and their simulator (`nrw_solver/src/Simulator.java`). The one disagreement
//! between those two – YMMR's write α, 3.35 in the table, 3.5 in the simulator – is explained at
//! [`YMMR`] and in `docs/labs/eventual.md`.

use rand::Rng;
use serde::Serialize;
use std::fmt::Write as _;

/// A latency distribution in milliseconds: with probability `pareto_weight` a Pareto draw
/// (minimum `pareto_xm`, shape `pareto_alpha`), otherwise an exponential draw with rate `exp_lambda`
/// (per millisecond; mean `1 / exp_lambda`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Mixture {
    pub pareto_weight: f64,
    pub pareto_xm: f64,
    pub pareto_alpha: f64,
    pub exp_lambda: f64,
}

impl Mixture {
    pub const fn exponential(mean_ms: f64) -> Self {
        Mixture { pareto_weight: 0.0, pareto_xm: 1.0, pareto_alpha: 1.0, exp_lambda: 1.0 / mean_ms }
    }

    /// One draw, in milliseconds.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let u: f64 = rng.gen();
        let v: f64 = 1.0 - rng.gen::<f64>(); // in (0, 1]
        if u < self.pareto_weight {
            self.pareto_xm / v.powf(1.0 / self.pareto_alpha)
        } else {
            -v.ln() / self.exp_lambda
        }
    }

    /// The cumulative distribution at `x` milliseconds.
    pub fn cdf(&self, x: f64) -> f64 {
        let pareto =
            if x < self.pareto_xm { 0.0 } else { 1.0 - (self.pareto_xm / x).powf(self.pareto_alpha) };
        let exp = 1.0 - (-self.exp_lambda * x.max(0.0)).exp();
        self.pareto_weight * pareto + (1.0 - self.pareto_weight) * exp
    }

    pub fn mean_ms(&self) -> f64 {
        let pareto = if self.pareto_alpha > 1.0 {
            self.pareto_alpha * self.pareto_xm / (self.pareto_alpha - 1.0)
        } else {
            f64::INFINITY
        };
        let pareto_part = if self.pareto_weight > 0.0 { self.pareto_weight * pareto } else { 0.0 };
        pareto_part + (1.0 - self.pareto_weight) / self.exp_lambda
    }

    /// The CDF as `latency_ms,cumulative_probability` lines (the simulator's `empirical`
    /// latency format): a dense grid up to the 99.999th percentile, then 1.
    pub fn cdf_file(&self) -> String {
        let mut hi = 1e-3;
        while self.cdf(hi) < 0.99999 && hi < 3.6e6 {
            hi *= 1.05;
        }
        let mut out = String::from("# latency_ms,cumulative_probability\n0,0\n");
        let (lo, steps) = (1e-3f64, 600);
        let mut last_p = 0.0;
        for i in 0..=steps {
            let x = lo * (hi / lo).powf(i as f64 / steps as f64);
            let p = self.cdf(x).clamp(last_p, 1.0);
            last_p = p;
            let _ = writeln!(out, "{x:.6},{p:.9}");
        }
        let _ = writeln!(out, "{:.6},1", hi * 1.0001);
        out
    }
}

/// The WARS delays of one environment.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyModel {
    /// Short name, as in the paper (`LNKD-SSD`, …).
    pub name: &'static str,
    pub what: &'static str,
    pub w: Mixture,
    /// A, R and S (the paper fits one distribution to all three).
    pub ars: Mixture,
}

/// PBS Table 3, LNKD-SSD `W = A = R = S`: 91.22 % Pareto (x_m = .235, α = 10), 8.78 % exponential
/// (λ = 1.66). The Pareto part is the 91.22 %: the table says so, and the authors' simulator draws
/// the exponential with probability .0878.
const LNKD_ARS: Mixture =
    Mixture { pareto_weight: 0.9122, pareto_xm: 0.235, pareto_alpha: 10.0, exp_lambda: 1.66 };

/// LinkedIn's Voldemort on SSDs: one distribution for W, A, R and S.
pub const LNKD_SSD: LatencyModel = LatencyModel {
    name: "LNKD-SSD",
    what: "LinkedIn Voldemort, SSDs (PBS Table 3)",
    w: LNKD_ARS,
    ars: LNKD_ARS,
};
/// LinkedIn's Voldemort on spinning disks: slow, heavy-tailed writes. PBS Table 3, LNKD-DISK `W`:
/// 38 % Pareto (x_m = 1.05, α = 1.51), 62 % exponential (λ = .183); `A = R = S` as LNKD-SSD.
pub const LNKD_DISK: LatencyModel = LatencyModel {
    name: "LNKD-DISK",
    what: "LinkedIn Voldemort, disks (PBS Table 3)",
    w: Mixture { pareto_weight: 0.38, pareto_xm: 1.05, pareto_alpha: 1.51, exp_lambda: 0.183 },
    ars: LNKD_ARS,
};
/// Yammer's Riak. PBS Table 3, YMMR `W`: 93.9 % Pareto (x_m = 3, α = 3.35), 6.1 % exponential
/// (λ = .0028); `A = R = S`: 98.2 % Pareto (x_m = 1.5, α = 3.8), 1.8 % exponential (λ = .0217).
///
/// We keep the table's α = 3.35, but the authors' simulator draws the write Pareto with α = 3.5,
/// and the paper's YMMR numbers come from that: P(consistent) at t = 0, N=3 R=W=1 is 89.3 % in the
/// paper, 89.3 % here with α = 3.5 and 88.7 % with α = 3.35 (10⁶ trials; from t ≈ 10 ms on the two
/// differ by less than 0.1 point, because the exponential tail decides the rest).
pub const YMMR: LatencyModel = LatencyModel {
    name: "YMMR",
    what: "Yammer Riak (PBS Table 3)",
    w: Mixture { pareto_weight: 0.939, pareto_xm: 3.0, pareto_alpha: 3.35, exp_lambda: 0.0028 },
    ars: Mixture { pareto_weight: 0.982, pareto_xm: 1.5, pareto_alpha: 3.8, exp_lambda: 0.0217 },
};
/// Synthetic: everything exponential with mean 1 ms.
pub const EXP_1_1: LatencyModel = LatencyModel {
    name: "EXP 1:1",
    what: "synthetic exponential, W and A=R=S mean 1 ms",
    w: Mixture::exponential(1.0),
    ars: Mixture::exponential(1.0),
};
/// Synthetic: writes ten times slower than A, R, S (mean 10 ms vs 1 ms).
pub const EXP_10_1: LatencyModel = LatencyModel {
    name: "EXP 10:1",
    what: "synthetic exponential, W mean 10 ms, A=R=S mean 1 ms",
    w: Mixture::exponential(10.0),
    ars: Mixture::exponential(1.0),
};

pub const MODELS: [&LatencyModel; 5] = [&LNKD_SSD, &LNKD_DISK, &YMMR, &EXP_1_1, &EXP_10_1];

/// A partial-quorum configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Quorum {
    pub n: usize,
    pub r: usize,
    pub w: usize,
}

impl Quorum {
    pub const fn new(n: usize, r: usize, w: usize) -> Self {
        Quorum { n, r, w }
    }
    pub fn label(&self) -> String {
        format!("N={} R={} W={}", self.n, self.r, self.w)
    }
    /// Every read quorum meets every write quorum.
    pub fn is_strict(&self) -> bool {
        self.r + self.w > self.n
    }
}

/// The lab's quorums: N = 3 with R, W in {1, 2}.
pub const QUORUMS: [Quorum; 4] =
    [Quorum::new(3, 1, 1), Quorum::new(3, 1, 2), Quorum::new(3, 2, 1), Quorum::new(3, 2, 2)];

/// P(consistent read) at each `t` (milliseconds after commit), by Monte Carlo over `trials` writes
/// (each trial is reused for every `t`, so the curve is monotone in `t` by construction of the
/// model, not by luck).
pub fn consistency<R: Rng + ?Sized>(
    model: &LatencyModel,
    quorum: Quorum,
    ts_ms: &[f64],
    trials: usize,
    rng: &mut R,
) -> Vec<f64> {
    let n = quorum.n;
    let mut consistent = vec![0usize; ts_ms.len()];
    let mut w = vec![0.0; n];
    let mut wa = vec![0.0; n];
    let mut reads: Vec<(f64, f64)> = vec![(0.0, 0.0); n]; // (R_i + S_i, R_i)
    for _ in 0..trials {
        for i in 0..n {
            w[i] = model.w.sample(rng);
            wa[i] = w[i] + model.ars.sample(rng);
            let r = model.ars.sample(rng);
            reads[i] = (r + model.ars.sample(rng), r);
        }
        let mut sorted = wa.clone();
        sorted.sort_by(f64::total_cmp);
        let commit = sorted[quorum.w - 1];
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| reads[a].0.total_cmp(&reads[b].0));
        for (k, &t) in ts_ms.iter().enumerate() {
            if order[..quorum.r].iter().any(|&i| w[i] <= commit + t + reads[i].1) {
                consistent[k] += 1;
            }
        }
    }
    consistent.into_iter().map(|c| c as f64 / trials.max(1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn mixture_means_match_their_formula() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for m in [LNKD_ARS, Mixture::exponential(2.0), YMMR.ars] {
            let n = 200_000;
            let mean = (0..n).map(|_| m.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((mean - m.mean_ms()).abs() < 0.05 * m.mean_ms(), "{mean} vs {}", m.mean_ms());
        }
    }

    #[test]
    fn strict_quorums_are_always_consistent_and_partial_ones_converge() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let ts = [0.0, 1.0, 10.0, 100.0];
        let strict = consistency(&EXP_10_1, Quorum::new(3, 2, 2), &ts, 5_000, &mut rng);
        assert!(strict.iter().all(|&p| p == 1.0), "{strict:?}");
        let partial = consistency(&EXP_10_1, Quorum::new(3, 1, 1), &ts, 5_000, &mut rng);
        assert!(
            partial[0] < 0.9 && partial.windows(2).all(|w| w[0] <= w[1]) && partial[3] > 0.999,
            "{partial:?}"
        );
    }

    /// The paper's own t-visibility numbers for N=3, R=W=1 (VLDB 2012 §5, "Observed t-visibility"):
    /// at t = 0 LNKD-SSD 97.5 %, LNKD-DISK 43.9 %, YMMR 89.3 %; at t = 10 ms LNKD-DISK 92.5 %,
    /// YMMR 93.9 %. Our model with the Table 3 parameters must land within a point of each (YMMR at
    /// t = 0 sits 0.6 below, see [`YMMR`]). Reading a mixture's weights the wrong way round moves
    /// these by several points.
    #[test]
    fn the_paper_parameters_reproduce_the_papers_t_visibility() {
        let q = Quorum::new(3, 1, 1);
        let cases: [(&LatencyModel, f64, f64); 5] = [
            (&LNKD_SSD, 0.0, 0.975),
            (&LNKD_DISK, 0.0, 0.439),
            (&LNKD_DISK, 10.0, 0.925),
            (&YMMR, 0.0, 0.893),
            (&YMMR, 10.0, 0.939),
        ];
        for (model, t, paper) in cases {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let p = consistency(model, q, &[t], 100_000, &mut rng)[0];
            assert!((p - paper).abs() < 0.01, "{} at t = {t} ms: {p:.4}, the paper says {paper}", model.name);
        }
    }

    #[test]
    fn cdf_files_end_at_one_and_never_decrease() {
        let text = YMMR.w.cdf_file();
        let points: Vec<(f64, f64)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once(',').map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())).unwrap())
            .collect();
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.last().unwrap().1, 1.0);
    }
}

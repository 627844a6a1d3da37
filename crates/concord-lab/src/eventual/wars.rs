//! The WARS model of PBS (Bailis et al., VLDB 2012, §5) and the latency distributions it was fed.
//!
//! A write goes to all `N` replicas; replica `i` stores it after a delay `W_i` and its
//! acknowledgement takes `A_i` to come back. The write *commits* when the `W`-th fastest `W_i + A_i`
//! arrives. A read starts `t` after the commit; its request reaches replica `i` after `R_i` and the
//! answer comes back after `S_i`. The coordinator uses the first `R` answers (smallest `R_i + S_i`).
//! The read is consistent if one of those `R` replicas had stored the write when the request
//! reached it: `W_i <= commit + t + R_i`. Everything else – anti-entropy, read repair, failures – is
//! left out, as in the paper.
//!
//! [`Thresholds`] runs this model by Monte Carlo, exactly: each trial yields the threshold `t*`
//! from which its read is consistent ([`trial_threshold`]), so P(consistent at t) is the empirical
//! CDF of `t*` and the time to 99.9 % its 0.999 quantile – no grid, no axis limit.
//! [`authors_time_to`] is the authors' own estimator of that time (fresh trials per `t`), which
//! explains why the paper's Table 4 sits a few percent earlier; [`PAPER`] holds the paper's
//! numbers; [`WAN`] is the paper's fourth environment.
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
    /// WAN only: every replica is in its own datacenter; a write (and, independently, a read)
    /// starts in a random one, and every message to or from the other replicas takes this much
    /// longer, one way (the paper: 75 ms). 0 for a single datacenter.
    pub remote_extra_ms: f64,
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
    remote_extra_ms: 0.0,
};
/// LinkedIn's Voldemort on spinning disks: slow, heavy-tailed writes. PBS Table 3, LNKD-DISK `W`:
/// 38 % Pareto (x_m = 1.05, α = 1.51), 62 % exponential (λ = .183); `A = R = S` as LNKD-SSD.
pub const LNKD_DISK: LatencyModel = LatencyModel {
    name: "LNKD-DISK",
    what: "LinkedIn Voldemort, disks (PBS Table 3)",
    w: LNKD_DISK_W,
    ars: LNKD_ARS,
    remote_extra_ms: 0.0,
};
const LNKD_DISK_W: Mixture =
    Mixture { pareto_weight: 0.38, pareto_xm: 1.05, pareto_alpha: 1.51, exp_lambda: 0.183 };

/// The paper's `WAN`: "Reads and writes are routed to random data centers, and, accordingly, one
/// replica operation commits quickly while the others are routed remotely. We delay remote
/// operations and responses by 75ms and apply LNKD-DISK delays once the operation reaches its
/// target data center." One replica per datacenter; the write's and the read's datacenters are
/// drawn independently, so with N = 3 a read right after the commit is consistent about one time in
/// three (the paper: 33 %).
pub const WAN: LatencyModel = LatencyModel {
    name: "WAN",
    what: "LNKD-DISK in N datacenters, +75 ms one way to the remote ones (PBS)",
    w: LNKD_DISK_W,
    ars: LNKD_ARS,
    remote_extra_ms: 75.0,
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
    remote_extra_ms: 0.0,
};
/// Synthetic: everything exponential with mean 1 ms.
pub const EXP_1_1: LatencyModel = LatencyModel {
    name: "EXP 1:1",
    what: "synthetic exponential, W and A=R=S mean 1 ms",
    w: Mixture::exponential(1.0),
    ars: Mixture::exponential(1.0),
    remote_extra_ms: 0.0,
};
/// Synthetic: writes ten times slower than A, R, S (mean 10 ms vs 1 ms).
pub const EXP_10_1: LatencyModel = LatencyModel {
    name: "EXP 10:1",
    what: "synthetic exponential, W mean 10 ms, A=R=S mean 1 ms",
    w: Mixture::exponential(10.0),
    ars: Mixture::exponential(1.0),
    remote_extra_ms: 0.0,
};

/// The environments the simulator runs too (WAN is model-only: see [`WAN`]).
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

/// One WARS trial: a write, then a read. Returns the trial's *threshold* `t*` (ms after the
/// commit): the read is consistent exactly when it starts at `t >= t*`. A negative `t*` means the
/// read is consistent even if it starts before the commit.
///
/// Why one number suffices: the coordinator's read quorum – the `R` replicas with the smallest
/// `R_i + S_i` – does not depend on `t`, and replica `i` of that quorum has the write when the
/// read request reaches it iff `W_i <= commit + t + R_i`, i.e. `t >= W_i - commit - R_i`. So
/// `t* = min over the read quorum of (W_i - commit - R_i)`, and P(consistent at `t`) is the
/// fraction of trials with `t* <= t` – for every `t` at once, with no grid.
pub fn trial_threshold<R: Rng + ?Sized>(
    model: &LatencyModel,
    quorum: Quorum,
    rng: &mut R,
    s: &mut Scratch,
) -> f64 {
    let n = quorum.n;
    s.resize(n);
    let far = model.remote_extra_ms;
    // WAN: the write's and the read's local datacenters (drawn only for WAN, so the other
    // environments' random streams are what they were before WAN existed).
    let (write_home, read_home) = if far > 0.0 { (rng.gen_range(0..n), rng.gen_range(0..n)) } else { (0, 0) };
    for i in 0..n {
        let dw = if far > 0.0 && i != write_home { far } else { 0.0 };
        let dr = if far > 0.0 && i != read_home { far } else { 0.0 };
        s.w[i] = model.w.sample(rng) + dw;
        s.wa[i] = s.w[i] + model.ars.sample(rng) + dw;
        let r = model.ars.sample(rng) + dr;
        s.reads[i] = (r + model.ars.sample(rng) + dr, r);
    }
    s.sorted.clone_from(&s.wa);
    s.sorted.sort_by(f64::total_cmp);
    let commit = s.sorted[quorum.w - 1];
    s.order.clear();
    s.order.extend(0..n);
    let reads = &s.reads;
    s.order.sort_by(|&a, &b| reads[a].0.total_cmp(&reads[b].0));
    s.order[..quorum.r].iter().map(|&i| s.w[i] - commit - s.reads[i].1).fold(f64::INFINITY, f64::min)
}

/// Buffers reused across trials.
#[derive(Default)]
pub struct Scratch {
    w: Vec<f64>,
    wa: Vec<f64>,
    sorted: Vec<f64>,
    reads: Vec<(f64, f64)>, // (R_i + S_i, R_i)
    order: Vec<usize>,
}

impl Scratch {
    fn resize(&mut self, n: usize) {
        self.w.resize(n, 0.0);
        self.wa.resize(n, 0.0);
        self.reads.resize(n, (0.0, 0.0));
    }
}

/// The thresholds `t*` of many trials, sorted: the whole t-visibility curve of one environment and
/// quorum, exact for these trials.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    sorted: Vec<f64>,
}

impl Thresholds {
    pub fn run<R: Rng + ?Sized>(model: &LatencyModel, quorum: Quorum, trials: usize, rng: &mut R) -> Self {
        let mut scratch = Scratch::default();
        let mut sorted: Vec<f64> =
            (0..trials).map(|_| trial_threshold(model, quorum, rng, &mut scratch)).collect();
        sorted.sort_by(f64::total_cmp);
        Thresholds { sorted }
    }

    pub fn trials(&self) -> usize {
        self.sorted.len()
    }

    /// P(consistent) for a read starting `t_ms` after the commit: the fraction of trials with
    /// `t* <= t_ms`.
    pub fn p_consistent(&self, t_ms: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        self.sorted.partition_point(|&x| x <= t_ms) as f64 / self.sorted.len() as f64
    }

    /// The smallest `t >= 0` with P(consistent at t) >= `p`: the `p`-quantile of `t*`, clipped at 0
    /// (0 means "consistent right at the commit", as the paper's Table 4 writes it). Exact for
    /// these trials: no grid, no axis limit.
    pub fn time_to(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let k = ((p * self.sorted.len() as f64).ceil() as usize).clamp(1, self.sorted.len());
        self.sorted[k - 1].max(0.0)
    }
}

/// P(consistent read) at each `t` (milliseconds after commit), by Monte Carlo over `trials` writes
/// (each trial serves every `t`, so the curve is monotone in `t` by construction of the model, not
/// by luck).
pub fn consistency<R: Rng + ?Sized>(
    model: &LatencyModel,
    quorum: Quorum,
    ts_ms: &[f64],
    trials: usize,
    rng: &mut R,
) -> Vec<f64> {
    let th = Thresholds::run(model, quorum, trials, rng);
    ts_ms.iter().map(|&t| th.p_consistent(t)).collect()
}

/// The time to 99.9 % as the paper's authors estimated it (their `nrw_solver` simulator, as the
/// VLDB paper's Table 4 caption describes it: "99.9 % probability of consistency for 50,000 reads
/// and writes"): step `t` up a grid; at every `t`, draw `trials_per_t` *fresh* trials and estimate
/// P(consistent at t); report the first `t` whose estimate reaches `target`.
///
/// Each estimate is noisy (± √(p(1−p)/n) ≈ ±0.014 points at n = 50 000), and the first crossing of
/// many noisy estimates comes early: the estimator is biased towards smaller times, which is why the
/// paper's times sit a few percent below the model's exact quantile ([`Thresholds::time_to`]).
///
/// To save time the walk starts at `start_ms` (the caller passes a time where the exact curve is
/// still far below the target, e.g. its 99.6 % quantile; an estimate there crosses 99.9 % with
/// probability far below 10⁻⁶, so the result is what a walk from 0 would give). The grid step is
/// `step_ms`.
pub fn authors_time_to<R: Rng + ?Sized>(
    model: &LatencyModel,
    quorum: Quorum,
    target: f64,
    trials_per_t: usize,
    start_ms: f64,
    step_ms: f64,
    rng: &mut R,
) -> f64 {
    let mut scratch = Scratch::default();
    let need = (target * trials_per_t as f64).ceil() as usize;
    let mut t = start_ms.max(0.0);
    // Far beyond any environment's tail: stop rather than loop forever.
    for _ in 0..1_000_000 {
        let consistent =
            (0..trials_per_t).filter(|_| trial_threshold(model, quorum, rng, &mut scratch) <= t).count();
        if consistent >= need {
            return t;
        }
        t += step_ms;
    }
    f64::NAN
}

/// The authors' estimator's grid step, as a fraction of the exact time to 99.9 %. The paper does not
/// give its step; a finer grid gives the noisy estimate more chances to cross early (more bias).
pub const AUTHORS_STEP_FRACTION: f64 = 0.01;

/// What the paper reports, to set next to the lab's numbers.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PaperNumber {
    pub model: &'static str,
    pub quorum: Quorum,
    /// `Some(t)`: P(consistent) at `t` ms after commit; `None`: the time (ms) to 99.9 %.
    pub at_ms: Option<f64>,
    pub value: f64,
    /// Where in the paper (VLDB 2012 camera-ready unless said otherwise).
    pub source: &'static str,
}

const fn p_at(model: &'static str, quorum: Quorum, t: f64, value: f64, source: &'static str) -> PaperNumber {
    PaperNumber { model, quorum, at_ms: Some(t), value, source }
}
const fn t999(model: &'static str, quorum: Quorum, value: f64, source: &'static str) -> PaperNumber {
    PaperNumber { model, quorum, at_ms: None, value, source }
}

const Q311: Quorum = Quorum::new(3, 1, 1);
const Q312: Quorum = Quorum::new(3, 1, 2);
const Q321: Quorum = Quorum::new(3, 2, 1);
const S_OBS: &str = "text, \"Observed t-visibility\"";
const S_T4: &str = "Table 4 (50 000 writes, first t whose estimate reaches 99.9 %)";
const S_N: &str = "text, \"Replica size\" (the N sweep)";

/// The paper's numbers (VLDB 2012 camera-ready): P(consistent) right after and 10 ms after the
/// commit (section "Observed t-visibility"), the times to 99.9 % of Table 4, and the N sweep
/// (section "Replica size"). Table 4's R=W=2 entries (0: a
/// strict quorum) are implied by [`Quorum::is_strict`] and not repeated; its R=2 W=1 LNKD-SSD entry
/// is 0 too ("we never observed message reordering").
pub const PAPER: [PaperNumber; 21] = [
    p_at("LNKD-SSD", Q311, 0.0, 0.974, S_OBS),
    p_at("LNKD-DISK", Q311, 0.0, 0.439, S_OBS),
    p_at("LNKD-DISK", Q311, 10.0, 0.925, S_OBS),
    p_at("YMMR", Q311, 0.0, 0.893, S_OBS),
    p_at("YMMR", Q311, 10.0, 0.939, S_OBS),
    p_at("WAN", Q311, 0.0, 0.33, S_OBS),
    t999("LNKD-SSD", Q311, 1.85, S_T4),
    t999("LNKD-SSD", Q312, 1.79, S_T4),
    t999("LNKD-SSD", Q321, 0.0, S_T4),
    t999("LNKD-DISK", Q311, 45.5, S_T4),
    t999("LNKD-DISK", Q312, 43.3, S_T4),
    t999("LNKD-DISK", Q321, 13.6, S_T4),
    t999("YMMR", Q311, 1364.0, S_T4),
    t999("YMMR", Q312, 1352.0, S_T4),
    t999("YMMR", Q321, 202.0, S_T4),
    t999("WAN", Q311, 113.0, S_T4),
    t999("WAN", Q312, 0.0, S_T4),
    t999("WAN", Q321, 30.2, S_T4),
    t999("LNKD-DISK", Quorum::new(2, 1, 1), 45.3, S_N),
    t999("LNKD-DISK", Quorum::new(10, 1, 1), 53.7, S_N),
    // The exponential sweep: W mean 10 ms against A=R=S mean 1 ms.
    p_at("EXP 10:1", Q311, 0.0, 0.41, "text, \"Latency tail effects\" (rounded to whole percent)"),
];

/// The paper's number for this environment, quorum and measure, if it gives one.
pub fn paper(model: &str, quorum: Quorum, at_ms: Option<f64>) -> Option<&'static PaperNumber> {
    PAPER.iter().find(|p| p.model == model && p.quorum == quorum && p.at_ms == at_ms)
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

    /// Times to 99.9 % against the paper's Table 4 (N=3). The exact 0.999 quantile of the model's
    /// thresholds comes out 0–20 % *later* than the paper (200 000 trials; measured +2 to +17 %
    /// with 10⁶, see `docs/labs/eventual.md`); the authors' estimator – fresh 50 000 trials per t,
    /// the first t whose estimate reaches 99.9 % – comes out earlier than the exact time and within
    /// 10 % of the paper. That is the whole explanation of the gap: the estimator, not the model.
    #[test]
    fn times_to_999_reproduce_table_4_through_the_authors_estimator() {
        let cases: [(&LatencyModel, Quorum, f64); 4] = [
            (&LNKD_SSD, Quorum::new(3, 1, 1), 1.85),
            (&LNKD_DISK, Quorum::new(3, 1, 1), 45.5),
            (&WAN, Quorum::new(3, 1, 1), 113.0),
            (&WAN, Quorum::new(3, 2, 1), 30.2),
        ];
        for (model, q, paper) in cases {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let th = Thresholds::run(model, q, 200_000, &mut rng);
            let exact = th.time_to(0.999);
            let rel_exact = (exact - paper) / paper;
            assert!(
                (0.0..0.20).contains(&rel_exact),
                "{} {}: exact {exact:.2} ms vs paper {paper}",
                model.name,
                q.label()
            );
            let start = th.time_to(0.999 - 8.0 * (0.999f64 * 0.001 / 50_000.0).sqrt());
            let authors =
                authors_time_to(model, q, 0.999, 50_000, start, exact * AUTHORS_STEP_FRACTION, &mut rng);
            assert!(
                authors <= exact * 1.01,
                "{}: authors' {authors:.2} later than exact {exact:.2}",
                model.name
            );
            assert!(
                ((authors - paper) / paper).abs() < 0.10,
                "{} {}: authors' {authors:.2} ms vs paper {paper}",
                model.name,
                q.label()
            );
        }
    }

    #[test]
    fn thresholds_give_the_curve_and_its_quantiles_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let th = Thresholds::run(&LNKD_DISK, Quorum::new(3, 1, 1), 20_000, &mut rng);
        for p in [0.5, 0.9, 0.99, 0.999] {
            let t = th.time_to(p);
            // The quantile is the first t at which the curve reaches p: just before it, it has not.
            assert!(th.p_consistent(t) >= p && th.p_consistent(t - 1e-9) < p, "p = {p}, t = {t}");
        }
        // Strict quorums are consistent at t = 0 (and before).
        let strict = Thresholds::run(&YMMR, Quorum::new(3, 2, 2), 20_000, &mut rng);
        assert_eq!((strict.p_consistent(0.0), strict.time_to(0.999)), (1.0, 0.0));
    }

    /// The paper's own t-visibility numbers for N=3, R=W=1 (VLDB 2012 §5, "Observed t-visibility"):
    /// at t = 0 LNKD-SSD 97.4 % (97.5 % in the tech-report draft), LNKD-DISK 43.9 %, YMMR 89.3 %; at t = 10 ms LNKD-DISK 92.5 %,
    /// YMMR 93.9 %. Our model with the Table 3 parameters must land within a point of each (YMMR at
    /// t = 0 sits 0.6 below, see [`YMMR`]). Reading a mixture's weights the wrong way round moves
    /// these by several points.
    #[test]
    fn the_paper_parameters_reproduce_the_papers_t_visibility() {
        let q = Quorum::new(3, 1, 1);
        let cases: [(&LatencyModel, f64, f64); 7] = [
            (&WAN, 0.0, 0.33),
            // The paper gives this one in whole percent ("41 %"), so half a point more slack.
            (&EXP_10_1, 0.0, 0.415),
            (&LNKD_SSD, 0.0, 0.974),
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

#[cfg(test)]
mod measure {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Prints every model number next to the paper's (a measurement, not a check):
    /// `cargo test -p concord-lab --release --lib measure -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_model_against_paper() {
        let trials: usize =
            std::env::var("WARS_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let per_t: usize =
            std::env::var("AUTHORS_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
        for p in PAPER {
            let model = [&LNKD_SSD, &LNKD_DISK, &YMMR, &WAN, &EXP_1_1, &EXP_10_1]
                .into_iter()
                .find(|m| m.name == p.model)
                .unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let th = Thresholds::run(model, p.quorum, trials, &mut rng);
            match p.at_ms {
                Some(t) => println!(
                    "{} {} P({t}) model {:.4} paper {}",
                    p.model,
                    p.quorum.label(),
                    th.p_consistent(t),
                    p.value
                ),
                None => {
                    let exact = th.time_to(0.999);
                    let se = (0.999f64 * 0.001 / per_t as f64).sqrt();
                    let start = th.time_to(0.999 - 8.0 * se);
                    let frac: f64 = std::env::var("STEP_FRAC")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(AUTHORS_STEP_FRACTION);
                    let authors = authors_time_to(
                        model,
                        p.quorum,
                        0.999,
                        per_t,
                        start,
                        (exact * frac).max(1e-3),
                        &mut rng,
                    );
                    println!(
                        "{} {} t999 exact {exact:.2} ({:+.1} %) authors {authors:.2} ({:+.1} %) paper {}",
                        p.model,
                        p.quorum.label(),
                        100.0 * (exact - p.value) / p.value,
                        100.0 * (authors - p.value) / p.value,
                        p.value
                    );
                }
            }
        }
    }
}

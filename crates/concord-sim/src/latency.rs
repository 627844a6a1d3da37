//! Latency distributions for network links and disks.
//!
//! Written in scenario files as inline tables tagged by `dist`:
//!
//! | dist          | fields                       | meaning                                        |
//! |---------------|------------------------------|------------------------------------------------|
//! | `constant`    | `value`                      | always `value`                                 |
//! | `uniform`     | `min`, `max`                 | uniform in `[min, max]`                        |
//! | `normal`      | `mean`, `stddev`             | Gaussian, cut at zero                          |
//! | `exponential` | `mean`                       | memoryless; the PBS paper's model of disk/network delay |
//! | `pareto`      | `scale`, `shape`             | heavy tail: `scale` is the minimum, `shape` α  |
//! | `lognormal`   | `median`, `sigma`            | `ln(latency)` is normal with mean `ln(median)` |
//! | `empirical`   | `file`                       | a CDF measured elsewhere, one `latency_ms,cumulative_probability` per line |
//!
//! The empirical file is read when the scenario loads (relative to the scenario's folder), so a
//! sweep never touches the disk; lines starting with `#` are comments.

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Pareto};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use concord_core::time::serde_duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    Constant {
        #[serde(with = "serde_duration")]
        value: Duration,
    },
    Uniform {
        #[serde(with = "serde_duration")]
        min: Duration,
        #[serde(with = "serde_duration")]
        max: Duration,
    },
    Normal {
        #[serde(with = "serde_duration")]
        mean: Duration,
        #[serde(with = "serde_duration")]
        stddev: Duration,
    },
    Exponential {
        #[serde(with = "serde_duration")]
        mean: Duration,
    },
    Pareto {
        #[serde(with = "serde_duration")]
        scale: Duration,
        shape: f64,
    },
    Lognormal {
        #[serde(with = "serde_duration")]
        median: Duration,
        sigma: f64,
    },
    Empirical {
        file: PathBuf,
        /// `(latency in ns, cumulative probability)`, increasing in both; filled by [`Latency::load`].
        #[serde(skip)]
        cdf: Vec<(f64, f64)>,
    },
}

impl Latency {
    /// Check parameters that the types allow but the distribution does not.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Latency::Uniform { min, max } if min > max => {
                Err(format!("uniform: min ({min:?}) is more than max ({max:?})"))
            }
            Latency::Exponential { mean } if mean.is_zero() => Err("exponential: mean must be > 0".into()),
            Latency::Pareto { scale, shape } if scale.is_zero() || !(*shape > 0.0 && shape.is_finite()) => {
                Err(format!("pareto: scale must be > 0 and shape a positive number (got {shape})"))
            }
            Latency::Lognormal { median, sigma }
                if median.is_zero() || !(*sigma >= 0.0 && sigma.is_finite()) =>
            {
                Err(format!("lognormal: median must be > 0 and sigma a non-negative number (got {sigma})"))
            }
            _ => Ok(()),
        }
    }

    /// Read the file of an empirical distribution (relative paths against `base`).
    pub fn load(&mut self, base: &Path) -> Result<(), String> {
        if let Latency::Empirical { file, cdf } = self {
            let path = if file.is_absolute() { file.clone() } else { base.join(&*file) };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read latency CDF {}: {e}", path.display()))?;
            *cdf = parse_cdf(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Draw one latency.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let nanos = |d: &Duration| d.as_nanos() as f64;
        let ns: f64 = match self {
            Latency::Constant { value } => return *value,
            Latency::Uniform { min, max } => {
                let (lo, hi) = (min.as_nanos() as u64, max.as_nanos() as u64);
                return Duration::from_nanos(if hi > lo { rng.gen_range(lo..=hi) } else { lo });
            }
            Latency::Normal { mean, stddev } => {
                Normal::new(nanos(mean), nanos(stddev)).map(|d| d.sample(rng)).unwrap_or(nanos(mean))
            }
            Latency::Exponential { mean } => {
                Exp::new(1.0 / nanos(mean)).map(|d| d.sample(rng)).unwrap_or(0.0)
            }
            Latency::Pareto { scale, shape } => {
                Pareto::new(nanos(scale), *shape).map(|d| d.sample(rng)).unwrap_or(nanos(scale))
            }
            Latency::Lognormal { median, sigma } => {
                LogNormal::new(nanos(median).ln(), *sigma).map(|d| d.sample(rng)).unwrap_or(nanos(median))
            }
            Latency::Empirical { cdf, .. } => inverse_cdf(cdf, rng.gen::<f64>()),
        };
        // Heavy tails are capped at an hour so that one sample cannot stall a run forever.
        Duration::from_nanos(ns.clamp(0.0, 3.6e12) as u64)
    }
}

/// Parse `latency_ms,cumulative_probability` lines into a CDF.
fn parse_cdf(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut cdf: Vec<(f64, f64)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why} (expected `latency_ms,cumulative_probability`)", i + 1);
        let (ms, p) = line.split_once(',').ok_or_else(|| bad("no comma"))?;
        let ms: f64 = ms.trim().parse().map_err(|_| bad("latency is not a number"))?;
        let p: f64 = p.trim().parse().map_err(|_| bad("probability is not a number"))?;
        if !(ms >= 0.0 && ms.is_finite() && (0.0..=1.0).contains(&p)) {
            return Err(bad("latency must be >= 0 and probability in [0, 1]"));
        }
        if let Some(&(last_ns, last_p)) = cdf.last() {
            if ms * 1e6 < last_ns || p < last_p {
                return Err(bad("latencies and probabilities must not decrease"));
            }
        }
        cdf.push((ms * 1e6, p));
    }
    match cdf.last() {
        None => Err("no data points".into()),
        Some(&(_, p)) if (p - 1.0).abs() > 1e-9 => Err(format!("the last probability is {p}, not 1")),
        _ => Ok(cdf),
    }
}

/// The latency at cumulative probability `u`, interpolating linearly between points.
fn inverse_cdf(cdf: &[(f64, f64)], u: f64) -> f64 {
    let i = cdf.partition_point(|&(_, p)| p < u);
    match (i.checked_sub(1).and_then(|j| cdf.get(j)), cdf.get(i)) {
        (_, None) => cdf.last().map_or(0.0, |&(ns, _)| ns),
        (None, Some(&(ns, _))) => ns,
        (Some(&(ns0, p0)), Some(&(ns1, p1))) => {
            if p1 > p0 {
                ns0 + (ns1 - ns0) * (u - p0) / (p1 - p0)
            } else {
                ns1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn mean_ms(l: &Latency) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        (0..n).map(|_| l.sample(&mut rng).as_secs_f64() * 1e3).sum::<f64>() / n as f64
    }

    #[test]
    fn each_distribution_has_the_mean_it_promises() {
        let ms = Duration::from_millis;
        let close =
            |got: f64, want: f64| assert!((got - want).abs() < want * 0.05, "mean {got}, want {want}");
        close(mean_ms(&Latency::Constant { value: ms(3) }), 3.0);
        close(mean_ms(&Latency::Uniform { min: ms(2), max: ms(4) }), 3.0);
        close(mean_ms(&Latency::Normal { mean: ms(10), stddev: ms(1) }), 10.0);
        close(mean_ms(&Latency::Exponential { mean: ms(5) }), 5.0);
        // Pareto mean = scale * shape / (shape - 1).
        close(mean_ms(&Latency::Pareto { scale: ms(2), shape: 3.0 }), 3.0);
        // Log-normal mean = median * exp(sigma² / 2).
        close(mean_ms(&Latency::Lognormal { median: ms(4), sigma: 0.5 }), 4.0 * (0.125f64).exp());
    }

    #[test]
    fn empirical_cdf_is_sampled_by_inversion() {
        let cdf = parse_cdf("# ms,p\n0,0\n1,0.5\n3,1\n").unwrap();
        assert_eq!(inverse_cdf(&cdf, 0.25), 0.5e6);
        assert_eq!(inverse_cdf(&cdf, 0.75), 2e6);
        assert_eq!(inverse_cdf(&cdf, 1.0), 3e6);
        let l = Latency::Empirical { file: "x".into(), cdf };
        assert!((mean_ms(&l) - 1.25).abs() < 0.05);
    }

    #[test]
    fn bad_cdf_files_name_the_line() {
        assert_eq!(
            parse_cdf("1,0.5\n0.5,0.6\n").unwrap_err(),
            "line 2: latencies and probabilities must not decrease (expected `latency_ms,cumulative_probability`)"
        );
        assert!(parse_cdf("1;0.5\n").unwrap_err().starts_with("line 1: no comma"));
        assert_eq!(parse_cdf("1,0.5\n").unwrap_err(), "the last probability is 0.5, not 1");
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let ms = Duration::from_millis;
        assert!(Latency::Uniform { min: ms(5), max: ms(1) }.validate().is_err());
        assert!(Latency::Pareto { scale: ms(1), shape: -1.0 }.validate().is_err());
        assert!(Latency::Exponential { mean: ms(0) }.validate().is_err());
    }
}

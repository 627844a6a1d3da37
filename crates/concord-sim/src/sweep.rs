//! Sweeps: one scenario over many seeds, on every core.
//!
//! Each seed is an independent, deterministic run, so a sweep parallelises trivially: worker
//! threads take the next seed from a shared counter and report results as they finish. Results are
//! returned in seed order, so a sweep's output does not depend on how many threads ran it (a test
//! checks exactly that, comparing trace hashes).

use crate::protocols::LoadedScenario;
use crate::sim::RunOptions;
use crate::summary::Summary;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct SeedResult {
    pub seed: u64,
    pub violations: Vec<String>,
    pub trace_hash: Option<u64>,
    pub summary: Summary,
}

impl SeedResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Options of a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// Worker threads (0: one per core).
    pub jobs: usize,
    pub until: Option<Duration>,
    /// Hash every run's trace (slower; for determinism checks).
    pub hash_trace: bool,
}

/// Run `scenario` once per seed in `seeds`; `on_result` is called (from worker threads) as each
/// seed finishes. Returns the results in seed order.
pub fn sweep(
    scenario: &LoadedScenario,
    seeds: RangeInclusive<u64>,
    options: &SweepOptions,
    on_result: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (first, last) = (*seeds.start(), *seeds.end());
    if first > last {
        return Vec::new();
    }
    let next = AtomicU64::new(first);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > last || seed < first {
                    break;
                }
                let report = scenario.run(RunOptions {
                    seed,
                    until: options.until,
                    trace: None,
                    hash_trace: options.hash_trace,
                });
                let result = SeedResult {
                    seed,
                    violations: report.violations,
                    trace_hash: report.trace_hash,
                    summary: report.summary,
                };
                on_result(&result);
                results.lock().expect("no worker panics while holding the lock").push(result);
            });
        }
    });
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|r| r.seed);
    results
}

/// Parse `A..B` or `A..=B` (both ends included) or a single seed `A`.
pub fn parse_seed_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| format!("`{s}` is not a seed number (write e.g. 1..1000)"))
    };
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => {
            let a = number(text)?;
            (a, a)
        }
    };
    if a > b {
        return Err(format!("empty seed range {text}: the first seed is after the last"));
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_include_both_ends() {
        assert_eq!(parse_seed_range("1..10000").unwrap(), 1..=10000);
        assert_eq!(parse_seed_range("5..=7").unwrap(), 5..=7);
        assert_eq!(parse_seed_range("42").unwrap(), 42..=42);
        assert!(parse_seed_range("9..3").unwrap_err().contains("empty"));
        assert!(parse_seed_range("x..3").unwrap_err().contains("not a seed"));
    }
}

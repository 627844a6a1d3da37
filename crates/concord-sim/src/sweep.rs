//! Sweeps: one scenario over many seeds, on every core.
//!
//! Each seed is an independent, deterministic run, so a sweep parallelises trivially: worker
//! threads take the next seed from a shared counter and report results as they finish. Results are
//! returned in seed order, so a sweep's output does not depend on how many threads ran it (a test
//! checks exactly that, comparing trace hashes).

use crate::explore::{Drawn, ScenarioFile};
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
    /// What the seed drew, when the scenario explores a configuration space.
    pub drawn: Option<Drawn>,
}

impl SeedResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The lowest seed in `seeds` whose run of `scenario` `fails`, with its violations; `None` if
/// every seed passes. Seeds run on every core, and every seed below the answer is run, so the
/// answer does not depend on the number of threads (the search for a deliberate bug's first
/// catching seed in the mutation tests).
pub fn first_failure<P: crate::SimProtocol>(
    scenario: &std::sync::Arc<crate::Scenario<P::Config>>,
    seeds: std::ops::Range<u64>,
    fails: impl Fn(&crate::sim::RunReport) -> bool + Sync,
) -> Option<(u64, Vec<String>)> {
    let next = AtomicU64::new(seeds.start);
    let best: Mutex<Option<(u64, Vec<String>)>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                let done = best.lock().expect("no worker panics").as_ref().is_some_and(|(b, _)| *b < seed);
                if seed >= seeds.end || done {
                    return;
                }
                let options = RunOptions { seed, ..Default::default() };
                let report = crate::sim::Simulation::<P>::new(std::sync::Arc::clone(scenario), options).run();
                if fails(&report) {
                    let mut b = best.lock().expect("no worker panics");
                    if b.as_ref().is_none_or(|(old, _)| seed < *old) {
                        *b = Some((seed, report.violations));
                    }
                }
            });
        }
    });
    best.into_inner().expect("no worker panics")
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
    sweep_file(&ScenarioFile::Fixed(scenario.clone()), seeds, options, on_result)
}

/// [`sweep`] over a scenario file that may explore: each seed runs the configuration it draws. A
/// seed whose draw fails (ranges that give an invalid scenario) fails with that reason.
pub fn sweep_file(
    file: &ScenarioFile,
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
    let run_seed = |seed: u64| -> SeedResult {
        let (scenario, drawn) = match file.for_seed(seed) {
            Ok(drawn) => drawn,
            Err(e) => {
                let violations = vec![format!("configuration: {e}")];
                return SeedResult {
                    seed,
                    violations,
                    trace_hash: None,
                    summary: Summary::default(),
                    drawn: None,
                };
            }
        };
        let report = scenario.run(RunOptions {
            seed,
            until: options.until,
            trace: None,
            hash_trace: options.hash_trace,
        });
        SeedResult {
            seed,
            violations: report.violations,
            trace_hash: report.trace_hash,
            summary: report.summary,
            drawn,
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > last || seed < first {
                    break;
                }
                let result = run_seed(seed);
                on_result(&result);
                results.lock().expect("no worker panics while holding the lock").push(result);
            });
        }
    });
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|r| r.seed);
    results
}

/// A `--seeds` argument that is not a range of seeds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedRangeError {
    #[error("`{0}` is not a seed number (write e.g. 1..1000)")]
    NotANumber(String),
    #[error("empty seed range {0}: the first seed is after the last")]
    Empty(String),
}

/// Parse `A..B` or `A..=B` (both ends included) or a single seed `A`.
pub fn parse_seed_range(text: &str) -> Result<RangeInclusive<u64>, SeedRangeError> {
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| SeedRangeError::NotANumber(s.to_string()));
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => {
            let a = number(text)?;
            (a, a)
        }
    };
    if a > b {
        return Err(SeedRangeError::Empty(text.to_string()));
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
        assert_eq!(parse_seed_range("9..3").unwrap_err(), SeedRangeError::Empty("9..3".into()));
        assert_eq!(parse_seed_range("x..3").unwrap_err(), SeedRangeError::NotANumber("x".into()));
        assert!(parse_seed_range("x..3").unwrap_err().to_string().contains("not a seed"));
    }
}

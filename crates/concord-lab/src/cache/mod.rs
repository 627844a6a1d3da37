//! # The cache lab: what a look-aside cache tier buys, and what it costs
//!
//! `concord lab cache` measures Concord's cache tier (`concord-cache`) in four parts:
//!
//! 1. [`hit_ratio`]: hit ratio against cache size for LRU and S3-FIFO on Zipf traces (skews 0.7,
//!    0.99, 1.2), equal and varied value sizes at the same byte budget, with Che's approximation
//!    of LRU and the most-popular-keys bound as references.
//!
//! Every job is deterministic with its own seed, so the jobs run on all cores and the numbers do
//! not depend on how many there are. The guide is `docs/labs/cache.md`.

pub mod hit_ratio;
pub mod report;

use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use report::write_report;

/// The Zipf skews of part 1 (the issue's).
pub const SKEWS: [f64; 3] = [0.7, 0.99, 1.2];

/// The number of parts.
pub const PARTS: usize = 1;

/// What to run.
#[derive(Clone, Debug)]
pub struct CacheLabOptions {
    pub seed: u64,
    /// A small version (for tests and a first look).
    pub quick: bool,
    /// Worker threads (default: all cores).
    pub threads: usize,
    /// Which parts to run (index 0 is part 1); all by default.
    pub parts: [bool; PARTS],
}

impl CacheLabOptions {
    pub fn full(seed: u64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        CacheLabOptions { seed, quick: false, threads, parts: [true; PARTS] }
    }
    pub fn quick(seed: u64) -> Self {
        CacheLabOptions { quick: true, ..Self::full(seed) }
    }
    /// Run only part `part` (1-based).
    pub fn only_part(mut self, part: usize) -> Self {
        self.parts = std::array::from_fn(|i| i + 1 == part);
        self
    }

    /// Part 1: distinct keys and requests per trace.
    pub fn trace_size(&self) -> (u64, usize) {
        if self.quick {
            (10_000, 200_000)
        } else {
            (100_000, 2_000_000)
        }
    }
    /// Part 1: cache sizes as fractions of the working set's bytes.
    pub fn fractions(&self) -> Vec<f64> {
        if self.quick {
            vec![0.01, 0.02, 0.05, 0.1, 0.2]
        } else {
            vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4]
        }
    }

    /// Number of jobs; the progress callback is called once per job.
    pub fn jobs(&self) -> usize {
        self.job_list().len()
    }

    fn job_list(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        if self.parts[0] {
            for skew in 0..SKEWS.len() {
                for sizing in hit_ratio::Sizing::ALL {
                    jobs.push(Job::HitRatio { skew, sizing });
                }
            }
        }
        jobs
    }
}

#[derive(Clone, Copy, Debug)]
enum Job {
    HitRatio { skew: usize, sizing: hit_ratio::Sizing },
}

impl Job {
    fn describe(&self) -> String {
        match *self {
            Job::HitRatio { skew, sizing } => {
                format!("hit ratio, Zipf {}, {}", SKEWS[skew], sizing.describe())
            }
        }
    }
}

enum Output {
    HitRatio(hit_ratio::Curve),
}

/// Everything the lab measured.
#[derive(Clone, Debug, Serialize)]
pub struct CacheLabReport {
    pub seed: u64,
    pub quick: bool,
    pub parts: [bool; PARTS],
    /// Part 1: one curve per skew and sizing, in [`SKEWS`] order, equal values first.
    pub hit_ratio: Vec<hit_ratio::Curve>,
    /// Part 1: every measured size where S3-FIFO hit less often than LRU.
    pub shortfalls: Vec<hit_ratio::Shortfall>,
}

impl CacheLabReport {
    /// Part 1's curve for `skew` and `sizing`.
    pub fn curve(&self, skew: f64, sizing: hit_ratio::Sizing) -> Option<&hit_ratio::Curve> {
        self.hit_ratio.iter().find(|c| c.skew == skew && c.sizing == sizing)
    }
}

/// Run the lab; `progress` is called after each job with its description.
pub fn run_cache(
    options: &CacheLabOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<CacheLabReport> {
    let jobs = options.job_list();
    let (keys, requests) = options.trace_size();
    let fractions = options.fractions();
    let run_job = |job: Job| -> anyhow::Result<Output> {
        Ok(match job {
            // The same trace seed for both sizings and policies: they differ only in what they vary.
            Job::HitRatio { skew, sizing } => Output::HitRatio(hit_ratio::measure(
                SKEWS[skew],
                sizing,
                keys,
                requests,
                &fractions,
                options.seed ^ (skew as u64 + 1).wrapping_mul(0x9e37_79b9),
            )),
        })
    };
    let next = AtomicUsize::new(0);
    let outputs: Mutex<Vec<Option<anyhow::Result<Output>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = jobs.get(i) else { break };
                let out = run_job(job).map_err(|e| e.context(job.describe()));
                outputs.lock().expect("not poisoned")[i] = Some(out);
                progress(&job.describe());
            });
        }
    });
    // Assemble in job order (deterministic whatever the thread count).
    let mut hit_ratio = Vec::new();
    for out in outputs.into_inner().expect("not poisoned") {
        match out.expect("every job ran")? {
            Output::HitRatio(c) => hit_ratio.push(c),
        }
    }
    let shortfalls = hit_ratio::shortfalls(&hit_ratio);
    Ok(CacheLabReport {
        seed: options.seed,
        quick: options.quick,
        parts: options.parts,
        hit_ratio,
        shortfalls,
    })
}

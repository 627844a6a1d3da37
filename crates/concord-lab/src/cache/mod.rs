//! # The cache lab: what a look-aside cache tier buys, and what it costs
//!
//! `concord lab cache` measures Concord's cache tier (`concord-cache`) in four parts:
//!
//! 1. [`hit_ratio`]: hit ratio against cache size for LRU and S3-FIFO on Zipf traces (skews 0.7,
//!    0.99, 1.2), equal and varied value sizes at the same byte budget, with Che's approximation
//!    of LRU and the most-popular-keys bound as references.
//! 2. [`tier`]: the database's read load and the clients' read latency (p50, p99) with no tier
//!    and with tiers of C cache nodes, the same open-loop workload, in the simulator.
//! 3. [`herd`]: a hot key dropped under many readers – database reads per 2 ms around the event,
//!    with and without leases.
//! 4. [`staleness`]: the age of stale reads with invalidation, with TTLs only, and through a
//!    partition between the cache nodes and the database (with and without the flush on
//!    reconnect).
//!
//! Parts 2–4 run the cache tier in Concord's deterministic simulator (`[protocol.cached]` of
//! `concord-sim`: a Raft database, cache nodes running `concord-cache`, leases, invalidation
//! streams).
//!
//! Every job is deterministic with its own seed, so the jobs run on all cores and the numbers do
//! not depend on how many there are. The guide is `docs/labs/cache.md`.

pub mod herd;
pub mod hit_ratio;
pub mod report;
pub mod staleness;
pub mod tier;

use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use report::write_report;

/// The Zipf skews of part 1 (the issue's).
pub const SKEWS: [f64; 3] = [0.7, 0.99, 1.2];

/// Parts 2 and 3: when the clients start. Until then the database elects its first leader and
/// every replica's invalidation stream reaches the cache nodes; requests sent before that wait for
/// it (up to the election timeout) – a start-up effect, not the tier's, so it is left out.
pub const WORKLOAD_START: std::time::Duration = std::time::Duration::from_millis(500);

/// `text` (a scenario file from `CacheExperiment::scenario_toml`) with the workload sending from
/// `start` until `stop`.
pub fn with_workload_window(text: &str, start: std::time::Duration, stop: std::time::Duration) -> String {
    assert!(text.contains("[workload]\n") && !text.contains("\nstart ="), "a workload table without start");
    text.replacen(
        "[workload]\n",
        &format!("[workload]\nstart = \"{}us\"\nstop = \"{}us\"\n", start.as_micros(), stop.as_micros()),
        1,
    )
}

/// The number of parts.
pub const PARTS: usize = 4;

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

    /// Part 2: the tiers measured (cache nodes; 0 is no tier).
    pub fn tier_sizes(&self) -> Vec<u32> {
        if self.quick {
            vec![0, 2]
        } else {
            vec![0, 1, 2, 4]
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
        if self.parts[1] {
            for caches in self.tier_sizes() {
                jobs.push(Job::Tier { caches });
            }
        }
        if self.parts[2] {
            for leases in [false, true] {
                jobs.push(Job::Herd { leases });
            }
        }
        if self.parts[3] {
            for setup in staleness::Setup::ALL {
                jobs.push(Job::Staleness { setup });
            }
        }
        jobs
    }
}

#[derive(Clone, Copy, Debug)]
enum Job {
    HitRatio { skew: usize, sizing: hit_ratio::Sizing },
    Tier { caches: u32 },
    Herd { leases: bool },
    Staleness { setup: staleness::Setup },
}

impl Job {
    fn describe(&self) -> String {
        match *self {
            Job::HitRatio { skew, sizing } => {
                format!("hit ratio, Zipf {}, {}", SKEWS[skew], sizing.describe())
            }
            Job::Tier { caches: 0 } => "database alone (no tier)".into(),
            Job::Tier { caches } => format!("tier of {caches} cache node(s)"),
            Job::Herd { leases } => format!("hot-key expiry, leases {}", if leases { "on" } else { "off" }),
            Job::Staleness { setup } => format!("staleness, {}", setup.describe()),
        }
    }
}

enum Output {
    HitRatio(hit_ratio::Curve),
    Tier(tier::TierRow),
    Herd(herd::HerdRun),
    Staleness(staleness::StalenessRun),
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
    /// Part 2: no tier first, then the tiers by size.
    pub tier: Vec<tier::TierRow>,
    /// Part 3: leases off, then on.
    pub herd: Vec<herd::HerdRun>,
    /// Part 4: one run per [`staleness::Setup`], in order.
    pub staleness: Vec<staleness::StalenessRun>,
}

impl CacheLabReport {
    /// Part 1's curve for `skew` and `sizing`.
    pub fn curve(&self, skew: f64, sizing: hit_ratio::Sizing) -> Option<&hit_ratio::Curve> {
        self.hit_ratio.iter().find(|c| c.skew == skew && c.sizing == sizing)
    }
    /// Part 3's run with or without leases.
    pub fn herd_run(&self, leases: bool) -> Option<&herd::HerdRun> {
        self.herd.iter().find(|h| h.leases == leases)
    }
    /// Part 4's run of `setup`.
    pub fn staleness_run(&self, setup: staleness::Setup) -> Option<&staleness::StalenessRun> {
        self.staleness.iter().find(|r| r.setup == setup)
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
            // Parts 2–4: every configuration of a part with the same seed, so they differ only
            // in what the part varies.
            Job::Tier { caches: 0 } => {
                Output::Tier(tier::run_no_tier(&tier::experiment(options.seed, options.quick, 0))?)
            }
            Job::Tier { caches } => {
                Output::Tier(tier::run_tier(&tier::experiment(options.seed, options.quick, caches))?)
            }
            Job::Herd { leases } => Output::Herd(herd::run(options.seed, options.quick, leases)?),
            Job::Staleness { setup } => {
                Output::Staleness(staleness::run(options.seed, options.quick, setup)?)
            }
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
    let mut report = CacheLabReport {
        seed: options.seed,
        quick: options.quick,
        parts: options.parts,
        hit_ratio: Vec::new(),
        shortfalls: Vec::new(),
        tier: Vec::new(),
        herd: Vec::new(),
        staleness: Vec::new(),
    };
    for out in outputs.into_inner().expect("not poisoned") {
        match out.expect("every job ran")? {
            Output::HitRatio(c) => report.hit_ratio.push(c),
            Output::Tier(r) => report.tier.push(r),
            Output::Herd(h) => report.herd.push(h),
            Output::Staleness(s) => report.staleness.push(s),
        }
    }
    report.shortfalls = hit_ratio::shortfalls(&report.hit_ratio);
    Ok(report)
}

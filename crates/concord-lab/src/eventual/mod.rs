//! `concord lab eventual` – eventual consistency, measured.
//!
//! Five parts on Concord's Dynamo (`concord-dynamo`) in the simulator, one report (each part can
//! be run alone: [`EventualOptions::parts`], `concord lab eventual --part N`):
//!
//! 1. [`propagation`] – which version every replica of a key holds over time, through a partition
//!    and its healing (`scenarios/eventual-propagation.toml`);
//! 2. [`wars`] – Probabilistically Bounded Staleness (Bailis et al., VLDB 2012): the probability
//!    that a read returns the latest acknowledged write, against the time since it was
//!    acknowledged, for N=3 and R, W ∈ {1, 2}, under the paper's production latency fits and WAN,
//!    plus the N sweep – by the paper's WARS Monte Carlo, next to the paper's own numbers;
//! 3. [`pbs`] – the same curves from the real code in the simulator, bin by bin against the model
//!    at the same `t`, with W put in two ways ([`pbs::SimMode`]);
//! 4. [`anomalies`] – stale reads, read-your-writes and monotonic-read violations, siblings and
//!    lost updates, counted by `concord-check`, for partial and strict quorums, LWW and DVV, sticky
//!    sessions, and CRDT counters;
//! 5. [`compare`] – the same workload on Raft: latency, availability on each side of a partition,
//!    anomalies.
//!
//! Every simulation is its own deterministic run with its own seed, so the jobs run on all cores
//! and the result does not depend on how many there are. The guide is `docs/labs/eventual.md`.

pub mod anomalies;
pub mod compare;
pub mod pbs;
pub mod propagation;
pub mod report;
pub mod stale;
pub mod wars;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use report::write_report;

/// What to run.
#[derive(Clone, Debug)]
pub struct EventualOptions {
    /// The first seed; seed `seed + i` is the i-th repetition of each simulation.
    pub seed: u64,
    /// Repetitions (seeds) of every simulation, pooled.
    pub seeds: u64,
    /// A small version (for tests and a first look): fewer environments and shorter runs.
    pub quick: bool,
    /// Monte Carlo trials per WARS curve.
    pub wars_trials: usize,
    /// Worker threads (default: all cores).
    pub threads: usize,
    /// Also estimate the times to 99.9 % as the paper's authors did (fresh trials per `t`).
    pub authors: Option<pbs::AuthorsEstimator>,
    /// Which parts to run (index 0 is part 1); all by default.
    pub parts: [bool; 5],
}

/// The N sweep of the paper (section "Replica size", R=W=1, LNKD-DISK): N = 3 is among the main curves.
pub const SWEEP_N: [usize; 3] = [2, 5, 10];

impl EventualOptions {
    pub fn full(seed: u64, seeds: u64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        EventualOptions {
            seed,
            seeds: seeds.max(1),
            quick: false,
            wars_trials: 200_000,
            threads,
            authors: None,
            parts: [true; 5],
        }
    }
    pub fn quick(seed: u64) -> Self {
        EventualOptions { quick: true, wars_trials: 20_000, seeds: 1, ..Self::full(seed, 1) }
    }

    /// Run only part `part` (1–5).
    pub fn only_part(mut self, part: usize) -> Self {
        self.parts = std::array::from_fn(|i| i + 1 == part);
        self
    }

    /// The latency environments the simulator runs (part 3) – and the model, with WAN besides.
    pub fn models(&self) -> Vec<&'static wars::LatencyModel> {
        if self.quick {
            vec![&wars::LNKD_SSD, &wars::EXP_10_1]
        } else {
            wars::MODELS.to_vec()
        }
    }

    /// The environments of the model (part 2): the simulator's and WAN.
    pub fn model_envs(&self) -> Vec<&'static wars::LatencyModel> {
        let mut envs = self.models();
        if self.parts[1] {
            envs.push(&wars::WAN);
        }
        envs
    }

    /// How many write intervals (horizons) each PBS simulation spans.
    fn pbs_spans(&self) -> f64 {
        if self.quick {
            12.0
        } else {
            40.0
        }
    }

    fn anomaly_seeds(&self) -> u64 {
        self.seeds
    }

    /// Number of jobs; the progress callback is called once per job.
    pub fn jobs(&self) -> usize {
        self.job_list().len()
    }

    fn job_list(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        if self.parts[0] {
            jobs.push(Job::Propagation);
        }
        let sims = self.models().len();
        for (m, model) in self.model_envs().iter().enumerate() {
            for q in 0..wars::QUORUMS.len() {
                if self.parts[1] || self.parts[2] {
                    jobs.push(Job::Model { model: m, quorum: q });
                }
                if !self.parts[2] || m >= sims {
                    continue;
                }
                for (k, _) in pbs::SimMode::for_model(model).iter().enumerate() {
                    for s in 0..self.seeds {
                        jobs.push(Job::PbsSim { model: m, quorum: q, mode: k, seed: self.seed + s });
                    }
                }
            }
        }
        if self.parts[1] {
            for n in 0..SWEEP_N.len() {
                jobs.push(Job::Sweep { n });
            }
        }
        if self.parts[3] {
            for a in 0..anomalies::SETUPS.len() {
                for s in 0..self.anomaly_seeds() {
                    jobs.push(Job::Anomaly { setup: a, seed: self.seed + s });
                }
            }
        }
        if self.parts[4] {
            for c in 0..compare::SYSTEMS.len() {
                for s in 0..self.seeds {
                    jobs.push(Job::Compare { system: c, seed: self.seed + s });
                }
            }
        }
        jobs
    }

    fn mode(&self, model: usize, mode: usize) -> pbs::SimMode {
        pbs::SimMode::for_model(self.model_envs()[model])[mode]
    }
}

#[derive(Clone, Copy, Debug)]
enum Job {
    Propagation,
    Model { model: usize, quorum: usize },
    Sweep { n: usize },
    PbsSim { model: usize, quorum: usize, mode: usize, seed: u64 },
    Anomaly { setup: usize, seed: u64 },
    Compare { system: usize, seed: u64 },
}

impl Job {
    fn describe(&self, options: &EventualOptions) -> String {
        let models = options.model_envs();
        match *self {
            Job::Propagation => "propagation".into(),
            Job::Model { model, quorum } => {
                format!("WARS model {} {}", models[model].name, wars::QUORUMS[quorum].label())
            }
            Job::Sweep { n } => format!("WARS model LNKD-DISK N={} R=1 W=1", SWEEP_N[n]),
            Job::PbsSim { model, quorum, mode, seed } => format!(
                "PBS {} {} {} seed {seed}",
                options.mode(model, mode).describe(),
                models[model].name,
                wars::QUORUMS[quorum].label()
            ),
            Job::Anomaly { setup, seed } => {
                format!("anomalies {} seed {seed}", anomalies::SETUPS[setup].name)
            }
            Job::Compare { system, seed } => {
                format!("comparison {} seed {seed}", compare::SYSTEMS[system].name)
            }
        }
    }
}

enum Output {
    Propagation(Box<propagation::Propagation>),
    Curve(Box<(pbs::Curve, wars::Thresholds)>),
    PbsReads(Vec<(f64, bool)>),
    Anomaly(anomalies::Counts),
    Compare(compare::Sample),
}

/// One row of part 4 (anomalies).
#[derive(Clone, Debug, Serialize)]
pub struct AnomalyRow {
    pub setup: anomalies::Setup,
    pub counts: anomalies::Counts,
}

/// One row of part 5 (the Raft contrast).
#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    pub system: String,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    /// Fraction of requests sent to the minority / majority side during the partition answered ok.
    pub minority_served: f64,
    pub majority_served: f64,
    pub minority_requests: usize,
    pub majority_requests: usize,
    pub reads: usize,
    pub stale_reads: usize,
    /// Verdict per seed.
    pub linearizable: Vec<String>,
}

/// Everything the lab measured.
#[derive(Clone, Debug, Serialize)]
pub struct EventualReport {
    pub seed: u64,
    pub seeds: u64,
    pub quick: bool,
    pub wars_trials: usize,
    /// Fresh trials per `t` of the authors' estimator, if it ran.
    pub authors_trials_per_t: Option<usize>,
    /// The parts that ran (index 0 is part 1).
    pub parts: [bool; 5],
    /// The environments of the model (the simulator's first, WAN last when part 2 ran).
    pub models: Vec<wars::LatencyModel>,
    /// How many of `models` the simulator ran.
    pub simulated_models: usize,
    pub propagation: Option<propagation::Propagation>,
    /// Model curves, simulator curves, and the model's N sweep (LNKD-DISK, R=W=1).
    pub curves: Vec<pbs::Curve>,
    /// The paper's numbers.
    pub paper: Vec<wars::PaperNumber>,
    pub anomalies: Vec<AnomalyRow>,
    pub comparison: Vec<CompareRow>,
}

impl EventualReport {
    /// The curve of one environment, quorum and method.
    pub fn curve(&self, model: &str, quorum: wars::Quorum, method: &str) -> Option<&pbs::Curve> {
        self.curves.iter().find(|c| c.model == model && c.quorum == quorum && c.method == method)
    }
    pub fn anomaly(&self, name: &str) -> Option<&anomalies::Counts> {
        self.anomalies.iter().find(|a| a.setup.name == name).map(|a| &a.counts)
    }
}

/// Run the lab. Latency CDF files for the simulator are written under `dir/latency/`.
/// `progress` is called after each job with its description.
pub fn run_eventual(
    options: &EventualOptions,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<EventualReport> {
    let models = options.model_envs();
    let mut files = Vec::new();
    for m in &models {
        files.push(pbs::write_latency_files(&dir.join("latency"), m)?);
    }
    let jobs = options.job_list();
    let next = AtomicUsize::new(0);
    let outputs: Mutex<Vec<Option<anyhow::Result<Output>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let run_job = |job: Job| -> anyhow::Result<Output> {
        Ok(match job {
            Job::Propagation => Output::Propagation(Box::new(propagation::run(options.seed)?)),
            Job::Model { model, quorum } => Output::Curve(Box::new(pbs::model_curve(
                models[model],
                wars::QUORUMS[quorum],
                options.wars_trials,
                options.seed ^ (model as u64 * 31 + quorum as u64),
                options.authors,
            ))),
            Job::Sweep { n } => Output::Curve(Box::new(pbs::model_curve(
                &wars::LNKD_DISK,
                wars::Quorum::new(SWEEP_N[n], 1, 1),
                options.wars_trials,
                options.seed ^ (1000 + n as u64),
                options.authors,
            ))),
            Job::PbsSim { model, quorum, mode, seed } => Output::PbsReads(pbs::simulate(
                models[model],
                wars::QUORUMS[quorum],
                &files[model],
                options.pbs_spans(),
                options.mode(model, mode),
                seed,
            )?),
            Job::Anomaly { setup, seed } => Output::Anomaly(anomalies::run(&anomalies::SETUPS[setup], seed)?),
            Job::Compare { system, seed } => Output::Compare(compare::run(&compare::SYSTEMS[system], seed)?),
        })
    };
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = jobs.get(i) else { break };
                let out = run_job(job).map_err(|e| e.context(job.describe(options)));
                outputs.lock().expect("not poisoned")[i] = Some(out);
                progress(&job.describe(options));
            });
        }
    });
    let outputs = outputs.into_inner().expect("not poisoned");
    // Assemble, in job order (deterministic).
    let mut propagation = None;
    let mut curves = Vec::new();
    let mut thresholds: BTreeMap<(usize, usize), wars::Thresholds> = BTreeMap::new();
    // (model, quorum, mode) → the reads of every seed, pooled.
    let mut pbs_reads: BTreeMap<(usize, usize, usize), Vec<(f64, bool)>> = BTreeMap::new();
    let mut anomaly_counts = vec![anomalies::Counts::default(); anomalies::SETUPS.len()];
    let mut samples = vec![Vec::new(); compare::SYSTEMS.len()];
    for (job, out) in jobs.iter().zip(outputs) {
        let out = out.expect("every job ran")?;
        match (job, out) {
            (Job::Propagation, Output::Propagation(p)) => propagation = Some(*p),
            (Job::Model { model, quorum }, Output::Curve(c)) => {
                let (curve, th) = *c;
                if options.parts[1] || *model < options.models().len() {
                    curves.push(curve);
                }
                thresholds.insert((*model, *quorum), th);
            }
            (Job::Sweep { .. }, Output::Curve(c)) => curves.push(c.0),
            (Job::PbsSim { model, quorum, mode, .. }, Output::PbsReads(r)) => {
                pbs_reads.entry((*model, *quorum, *mode)).or_default().extend(r)
            }
            (Job::Anomaly { setup, .. }, Output::Anomaly(c)) => anomaly_counts[*setup].add(&c),
            (Job::Compare { system, .. }, Output::Compare(c)) => samples[*system].push(c),
            _ => unreachable!("each job has its own kind of output"),
        }
    }
    for ((m, q, k), reads) in &pbs_reads {
        let mode = options.mode(*m, *k);
        curves.push(pbs::sim_curve(models[*m], wars::QUORUMS[*q], mode, reads, thresholds.get(&(*m, *q))));
    }
    let anomalies = if options.parts[3] {
        anomalies::SETUPS
            .iter()
            .zip(anomaly_counts)
            .map(|(setup, counts)| AnomalyRow { setup: *setup, counts })
            .collect()
    } else {
        Vec::new()
    };
    let comparison = if options.parts[4] {
        compare::SYSTEMS.iter().zip(samples).map(|(system, s)| compare_row(system, &s)).collect()
    } else {
        Vec::new()
    };
    Ok(EventualReport {
        seed: options.seed,
        seeds: options.seeds,
        quick: options.quick,
        wars_trials: options.wars_trials,
        authors_trials_per_t: options.authors.map(|a| a.trials_per_t),
        parts: options.parts,
        models: models.iter().map(|m| (*m).clone()).collect(),
        simulated_models: if options.parts[2] { options.models().len() } else { 0 },
        propagation,
        curves,
        paper: wars::PAPER.to_vec(),
        anomalies,
        comparison,
    })
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn compare_row(system: &compare::System, samples: &[compare::Sample]) -> CompareRow {
    let pool = |f: fn(&compare::Sample) -> &Vec<f64>| -> Vec<f64> {
        samples.iter().flat_map(|s| f(s).iter().copied()).collect()
    };
    let reads = pool(|s| &s.read_latency_ms);
    let writes = pool(|s| &s.write_latency_ms);
    let sum = |f: fn(&compare::Sample) -> (usize, usize)| {
        samples.iter().map(f).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    };
    let minority = sum(|s| s.minority);
    let majority = sum(|s| s.majority);
    let frac = |(n, ok): (usize, usize)| if n == 0 { f64::NAN } else { ok as f64 / n as f64 };
    CompareRow {
        system: system.name.into(),
        read_p50_ms: percentile(&reads, 0.5),
        read_p99_ms: percentile(&reads, 0.99),
        write_p50_ms: percentile(&writes, 0.5),
        write_p99_ms: percentile(&writes, 0.99),
        minority_served: frac(minority),
        majority_served: frac(majority),
        minority_requests: minority.0,
        majority_requests: majority.0,
        reads: samples.iter().map(|s| s.reads).sum(),
        stale_reads: samples.iter().map(|s| s.stale_reads).sum(),
        linearizable: samples.iter().map(|s| s.linearizable.clone()).collect(),
    }
}

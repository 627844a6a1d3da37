//! `concord design SCENARIO.toml` – from requirements to a design, explained by arithmetic, then
//! validated by simulation (Lab 2; the guide is `docs/labs/design.md`).
//!
//! * [`requirements`] – the requirements file (TOML): data size and growth, rates, value sizes,
//!   key skew, regions and their RTT matrix, zones, availability, durability, p99 objectives, and
//!   per kind of data the consistency it needs;
//! * [`plan`] – the designer: shards, replicas and placement, Raft or Dynamo N/R/W per kind, cache,
//!   availability, PBS staleness – each choice with its arithmetic and the alternatives it rejected;
//! * [`zipf`] – Zipf arithmetic for key spaces too large to list (hottest key, Che's approximation);
//! * [`validate`] – the design at a scaled-down size in the simulator, with a node, a zone and a
//!   region lost and a partition between regions;
//! * [`report`] – the verdicts (every requirement met or missed, measured beside the target), the
//!   text, the HTML page and its plots.

pub mod plan;
pub mod report;
pub mod requirements;
pub mod validate;
pub mod zipf;

use plan::{Design, PlanOptions, Protocol};
use requirements::{Consistency, Requirements};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use validate::{Fault, Run, SimSize};

pub use report::write_report;

/// What to run.
#[derive(Clone, Debug)]
pub struct DesignOptions {
    pub seed: u64,
    pub quick: bool,
    /// Skip the simulations: the design and its arithmetic only.
    pub validate: bool,
    pub threads: usize,
}

impl DesignOptions {
    pub fn new(seed: u64, quick: bool, validate: bool) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        DesignOptions { seed, quick, validate, threads }
    }
    fn pbs_trials(&self) -> usize {
        if self.quick {
            20_000
        } else {
            100_000
        }
    }
    pub fn sim_size(&self) -> SimSize {
        if self.quick {
            SimSize::quick(self.seed)
        } else {
            SimSize::full(self.seed)
        }
    }
}

/// Met, missed, or for information (a failure the requirements did not ask to survive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Met,
    Missed,
    Info,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Missed => "MISSED",
            Status::Info => "info",
        }
    }
}

/// One requirement, judged.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub requirement: String,
    pub target: String,
    pub estimate: String,
    /// The simulator's number ("–" without validation).
    pub measured: String,
    pub status: Status,
    /// Why it was missed, and what would fix it (empty when met).
    pub why: String,
    pub fix: String,
}

/// A PBS curve for an eventual kind: the model, and the simulator's reads binned.
#[derive(Clone, Debug, Serialize)]
pub struct PbsCurve {
    pub kind: String,
    pub bound_ms: f64,
    pub model: Vec<(f64, f64)>,
    /// (bin start ms, P(consistent), reads).
    pub sim: Vec<(f64, f64, usize)>,
}

/// Everything `concord design` produced.
#[derive(Clone, Debug, Serialize)]
pub struct DesignReport {
    pub requirements: Requirements,
    pub design: Design,
    pub runs: Vec<Run>,
    pub checks: Vec<Check>,
    pub pbs: Vec<PbsCurve>,
    pub seed: u64,
    pub quick: bool,
    pub validated: bool,
    pub sim: SimSize,
}

impl DesignReport {
    /// Every requirement met?
    pub fn all_met(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Missed)
    }
    pub fn missed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Missed)
    }
}

/// The simulations to run: (kind index, fault).
pub fn jobs(req: &Requirements, design: &Design) -> Vec<(usize, Fault)> {
    let mut v = Vec::new();
    for (i, k) in design.kinds.iter().enumerate() {
        for f in validate::faults(req, k) {
            v.push((i, f));
        }
    }
    v
}

/// Design, then (unless `options.validate` is false) validate. `progress` is called after each
/// simulation with its description.
pub fn run_design(
    req: &Requirements,
    options: &DesignOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<DesignReport> {
    let design = plan::design(req, PlanOptions { pbs_trials: options.pbs_trials(), seed: options.seed });
    let size = options.sim_size();
    let jobs = if options.validate { jobs(req, &design) } else { Vec::new() };
    let next = AtomicUsize::new(0);
    let outputs: Mutex<Vec<Option<anyhow::Result<Run>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((k, fault)) = jobs.get(i) else { break };
                let kind = &design.kinds[*k];
                let out = validate::run(req, kind, fault.clone(), size);
                outputs.lock().expect("not poisoned")[i] = Some(out);
                progress(&format!("{}: {}", kind.name, fault.name()));
            });
        }
    });
    let mut runs = Vec::new();
    for out in outputs.into_inner().expect("not poisoned") {
        runs.push(out.expect("every job ran")?);
    }
    let pbs = pbs_curves(req, &design, &runs, options);
    let checks = report::judge(req, &design, &runs, options.validate);
    Ok(DesignReport {
        requirements: req.clone(),
        design,
        runs,
        checks,
        pbs,
        seed: options.seed,
        quick: options.quick,
        validated: options.validate,
        sim: size,
    })
}

/// The PBS curves of the eventual kinds: the model for the chosen quorum, and the no-fault run's
/// reads binned by the time since the write they should see.
fn pbs_curves(req: &Requirements, design: &Design, runs: &[Run], options: &DesignOptions) -> Vec<PbsCurve> {
    let mut out = Vec::new();
    for (i, (k, kd)) in req.kinds.iter().zip(&design.kinds).enumerate() {
        let (Consistency::Eventual, Protocol::Dynamo { r, w }) = (k.consistency, kd.protocol) else {
            continue;
        };
        let bound = k.staleness_ms.unwrap_or(0.0);
        let model = plan::pbs_model(req, &kd.placement);
        let q = crate::eventual::wars::Quorum::new(kd.placement.len(), r as usize, w as usize);
        let mut rng =
            <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(options.seed ^ (i as u64 + 7));
        let th = crate::eventual::wars::Thresholds::run(&model, q, options.pbs_trials(), &mut rng);
        let x_max = (2.0 * bound).max(1.2 * th.time_to(0.999)).max(1.0);
        let model_pts =
            (0..=200).map(|j| x_max * j as f64 / 200.0).map(|t| (t, th.p_consistent(t))).collect();
        let mut sim = Vec::new();
        if let Some(run) = runs.iter().find(|r| r.kind == kd.name && r.fault == Fault::None) {
            let bins = 20usize;
            let width = x_max / bins as f64;
            let mut counts = vec![(0usize, 0usize); bins];
            for &(t, ok) in &run.visibility {
                if let Some(c) = counts.get_mut((t / width) as usize) {
                    c.0 += 1;
                    c.1 += usize::from(ok);
                }
            }
            sim = counts
                .iter()
                .enumerate()
                .filter(|(_, c)| c.0 >= 5)
                .map(|(j, c)| ((j as f64 + 0.5) * width, c.1 as f64 / c.0 as f64, c.0))
                .collect();
        }
        out.push(PbsCurve { kind: kd.name.clone(), bound_ms: bound, model: model_pts, sim });
    }
    out
}

//! The election-timeout experiment of the Raft paper (§9.3, Figure 16), in the simulator.
//!
//! The paper crashed the leader of a five-server cluster over and over and measured how long the
//! cluster went without a leader, for several ranges of the randomised election timeout. Its two
//! findings: a little randomness (a few milliseconds) is enough to avoid most split votes, and
//! shorter timeouts shorten the downtime – as long as they stay well above the network's broadcast
//! time.
//!
//! Here, for each timeout range and seed, one long simulation of five Concord Raft nodes runs
//! `trials` rounds of:
//!
//! 1. wait until the cluster is stable: all five up, one leader, everyone following it (if it is
//!    not within the limit, the trial is counted as *not settled*; the run goes on);
//! 2. wait a further `election_timeout_max`; with `differing_logs`, step to the leader's next
//!    heartbeat broadcast and give the followers logs of four different lengths with it
//!    (`diverge_logs`: the paper's "two of the four servers were not eligible");
//! 3. crash the leader a uniformly random fraction of the heartbeat interval later (the paper
//!    crashed it "uniformly randomly within its heartbeat interval", half the minimum timeout);
//! 4. step the simulator event by event until every live node follows a new leader: the virtual
//!    time since the crash is the trial's *downtime*; the number of terms it took is the number of
//!    elections (more than one means split votes or failed candidacies). A trial past the limit is
//!    recorded at the limit, as *above the limit*;
//! 5. restart the crashed node.
//!
//! The network's one-way latency is uniform in `latency_min..latency_max`: a fixed delay plus
//! jitter. [`ElectionOptions::paper`] uses 3.0–3.5 ms, which reproduces the paper's numbers with
//! equal logs (the guide, `docs/labs/raft-elections.md`, shows the calibration and explains why
//! different logs slow Concord's Raft down more than the paper's). Pre-vote is off by default
//! because the paper's algorithm has none (it adds a round trip to every election); check-quorum
//! and leases are off too, as irrelevant here. [`export_worst`] replays a range's worst trial with
//! tracing on and writes it as a trace for `concord view`.
//!
//! A zero-width range such as 150–150 ms cannot be configured (the timeout is drawn from a
//! half-open range `min..max`), so "150–150" runs as 150 ms to 150 ms + 1 µs: randomness a thousand
//! times smaller than the network jitter, i.e. none that matters.

use crate::plot::{self, CdfChart, Curve};
use concord_core::{ClientId, NodeId, Op, Process, Time};
use concord_sim::protocols::raft::{RaftKv, RaftScenario};
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One election-timeout range, in milliseconds (`min == max` means 1 µs of randomness, see the
/// module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TimeoutRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl TimeoutRange {
    pub const fn new(min_ms: u64, max_ms: u64) -> Self {
        TimeoutRange { min_ms, max_ms }
    }
    pub fn label(&self) -> String {
        format!("{}–{} ms", self.min_ms, self.max_ms)
    }
}

/// The paper's top graph: 150 ms plus increasing randomness.
pub const PAPER_TOP: [TimeoutRange; 6] = [
    TimeoutRange::new(150, 150),
    TimeoutRange::new(150, 151),
    TimeoutRange::new(150, 155),
    TimeoutRange::new(150, 175),
    TimeoutRange::new(150, 200),
    TimeoutRange::new(150, 300),
];

/// The paper's bottom graph: shorter timeouts, randomness equal to the minimum.
pub const PAPER_BOTTOM: [TimeoutRange; 5] = [
    TimeoutRange::new(12, 24),
    TimeoutRange::new(25, 50),
    TimeoutRange::new(50, 100),
    TimeoutRange::new(100, 200),
    TimeoutRange::new(150, 300),
];

/// What to run.
#[derive(Clone, Debug)]
pub struct ElectionOptions {
    /// Leader crashes per range and seed (the paper: 1 000, and 100 for 150–150 ms).
    pub trials: usize,
    /// Trials for a zero-width range (slow: its split votes can go on for seconds).
    pub trials_zero_width: usize,
    /// The first seed; seed `k` of range `i` runs the simulation seeded `seed + 1000 k + i`.
    pub seed: u64,
    /// Independent simulations per range (each with its own seed), for the spread across seeds.
    pub seeds: u64,
    /// Ranges to run (a range in both of the paper's graphs is run once).
    pub ranges: Vec<TimeoutRange>,
    /// One-way network latency: a fixed delay (`latency_min`) plus jitter uniform in
    /// `0..latency_max - latency_min`.
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// How long each disk sync takes (0: instantaneous disks, the default). The paper's "broadcast
    /// time" of about 15 ms was a round trip plus a disk write: with the default network
    /// (a 6.5 ms round trip), `disk_sync` ≈ 8.5 ms makes that broadcast time.
    pub disk_sync: Duration,
    pub pre_vote: bool,
    /// The paper's worst case: the four followers have logs of different lengths, so the two
    /// shortest cannot win (§9.3).
    pub differing_logs: bool,
    /// A trial without a new leader after this long is recorded as *above the limit* (counted at
    /// the limit in the statistics) and the run goes on; so is a cluster that does not settle.
    pub give_up_after: Duration,
}

impl Default for ElectionOptions {
    fn default() -> Self {
        let mut ranges = PAPER_TOP.to_vec();
        ranges.extend(PAPER_BOTTOM.iter().filter(|r| !PAPER_TOP.contains(r)));
        ElectionOptions {
            trials: 1000,
            trials_zero_width: 100,
            seed: 1,
            seeds: 1,
            ranges,
            latency_min: Duration::from_millis(5),
            latency_max: Duration::from_millis(10),
            disk_sync: Duration::ZERO,
            pre_vote: false,
            differing_logs: false,
            give_up_after: Duration::from_secs(60),
        }
    }
}

impl ElectionOptions {
    /// The paper's benchmark as this lab models it (see the guide, "Modelling the paper's
    /// cluster"): a fixed one-way delay plus a little jitter, and servers with different logs.
    pub fn paper() -> Self {
        ElectionOptions {
            latency_min: PAPER_LATENCY.0,
            latency_max: PAPER_LATENCY.1,
            differing_logs: true,
            ..ElectionOptions::default()
        }
    }

    /// The network's mean round trip.
    pub fn round_trip(&self) -> Duration {
        self.latency_min + self.latency_max
    }
}

/// One-way latency of [`ElectionOptions::paper`]: fixed delay, fixed delay + jitter.
pub const PAPER_LATENCY: (Duration, Duration) = (Duration::from_micros(3000), Duration::from_micros(3500));

/// The trials of one range with one seed.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    /// Downtime of each trial (crash → every live server follows a new leader), in milliseconds,
    /// in trial order. A trial above the limit is counted at the limit.
    pub downtime_ms: Vec<f64>,
    /// Terms each trial took (1: the first election won; more: split votes or failed elections);
    /// for a trial above the limit, the terms used up to the limit.
    pub terms: Vec<u64>,
    /// Trials without a new leader within the limit (in `downtime_ms` at the limit).
    pub above_limit: usize,
    /// Trials that never started: the cluster did not settle (five up, one leader followed by
    /// all) within the limit.
    pub unsettled: usize,
    /// Virtual time simulated.
    pub virtual_secs: f64,
}

/// The trials of one range, over all seeds.
#[derive(Clone, Debug, Serialize)]
pub struct RangeResult {
    pub range: TimeoutRange,
    pub seeds: Vec<SeedResult>,
    /// The limit, in milliseconds (the value trials above it are counted at).
    pub limit_ms: f64,
}

/// Order statistics of a sample.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: q(1.0),
        }
    }
}

impl RangeResult {
    /// One row of the results, formatted once for the text table and the HTML report: range,
    /// trials, mean, p50, p90, p99 and max downtime (ms), split-vote percentage, terms per election.
    fn cells(&self) -> [String; 9] {
        let s = self.stats();
        let above = |v: f64| if self.above_limit() > 0 && v >= self.limit_ms { "≥" } else { "" };
        [
            self.range.label(),
            self.downtime_ms().len().to_string(),
            format!("{}{:.1}", if self.above_limit() > 0 { "≥" } else { "" }, s.mean),
            format!("{}{:.1}", above(s.p50), s.p50),
            format!("{}{:.1}", above(s.p90), s.p90),
            format!("{}{:.1}", above(s.p99), s.p99),
            format!("{}{:.1}", above(s.max), s.max),
            format!("{:.1}", 100.0 * self.split_fraction()),
            format!("{:.2}", self.mean_terms()),
        ]
    }

    /// Every trial's downtime, all seeds pooled.
    pub fn downtime_ms(&self) -> Vec<f64> {
        self.seeds.iter().flat_map(|s| s.downtime_ms.iter().copied()).collect()
    }
    fn terms(&self) -> impl Iterator<Item = u64> + '_ {
        self.seeds.iter().flat_map(|s| s.terms.iter().copied())
    }
    pub fn above_limit(&self) -> usize {
        self.seeds.iter().map(|s| s.above_limit).sum()
    }
    pub fn unsettled(&self) -> usize {
        self.seeds.iter().map(|s| s.unsettled).sum()
    }
    pub fn virtual_secs(&self) -> f64 {
        self.seeds.iter().map(|s| s.virtual_secs).sum()
    }
    pub fn stats(&self) -> Stats {
        Stats::of(&self.downtime_ms())
    }
    /// Fraction of trials that needed more than one term.
    pub fn split_fraction(&self) -> f64 {
        let n = self.terms().count();
        if n == 0 {
            return 0.0;
        }
        self.terms().filter(|&t| t > 1).count() as f64 / n as f64
    }
    pub fn mean_terms(&self) -> f64 {
        let n = self.terms().count();
        if n == 0 {
            return 0.0;
        }
        self.terms().sum::<u64>() as f64 / n as f64
    }
    /// The worst trial: (seed, trial number, downtime in ms).
    pub fn worst(&self) -> Option<(u64, usize, f64)> {
        self.seeds
            .iter()
            .flat_map(|s| s.downtime_ms.iter().enumerate().map(move |(i, &d)| (s.seed, i, d)))
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }
}

/// Which statistic of a range the paper reports.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Measure {
    Median,
    Mean,
    Max,
}

/// One of the paper's four headline numbers (§9.3).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PaperNumber {
    pub range: TimeoutRange,
    pub measure: Measure,
    /// In milliseconds.
    pub paper_ms: f64,
    /// The paper gives a lower bound ("consistently took longer than 10 seconds").
    pub at_least: bool,
    /// What the paper says, for the report.
    pub quote: &'static str,
}

/// The paper's numbers, in the order the text gives them.
pub const PAPER_NUMBERS: [PaperNumber; 5] = [
    PaperNumber {
        range: TimeoutRange::new(150, 150),
        measure: Measure::Median,
        paper_ms: 10_000.0,
        at_least: true,
        quote: "no randomness: elections consistently took longer than 10 s",
    },
    PaperNumber {
        range: TimeoutRange::new(150, 155),
        measure: Measure::Median,
        paper_ms: 287.0,
        at_least: false,
        quote: "5 ms of randomness: median downtime 287 ms",
    },
    PaperNumber {
        range: TimeoutRange::new(150, 200),
        measure: Measure::Max,
        paper_ms: 513.0,
        at_least: false,
        quote: "50 ms of randomness: worst of 1 000 trials 513 ms",
    },
    PaperNumber {
        range: TimeoutRange::new(12, 24),
        measure: Measure::Mean,
        paper_ms: 35.0,
        at_least: false,
        quote: "12–24 ms: 35 ms on average",
    },
    PaperNumber {
        range: TimeoutRange::new(12, 24),
        measure: Measure::Max,
        paper_ms: 152.0,
        at_least: false,
        quote: "12–24 ms: the longest trial 152 ms",
    },
];

/// A paper number beside ours.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub paper: PaperNumber,
    /// Ours, all seeds pooled (0 when no trial settled: see `settled`).
    pub pooled_ms: f64,
    /// Ours, per seed that had a settled trial.
    pub per_seed_ms: Vec<f64>,
    /// Trials that reached a new leader within the limit: the number stands on these.
    pub settled: usize,
}

impl Comparison {
    /// Ours relative to the paper's, pooled (`0.05`: 5 % above).
    pub fn relative_error(&self) -> f64 {
        self.pooled_ms / self.paper.paper_ms - 1.0
    }
    /// Ours and the difference to the paper, as the tables print them: a range where no trial
    /// settled has no number to compare (not "0 ms, −100 %").
    pub fn ours_and_difference(&self) -> (String, String, String) {
        if self.settled == 0 {
            return ("no trial".into(), "settled".into(), "–".into());
        }
        let (lo, hi) = self.spread();
        (
            format!("{:.1}", self.pooled_ms),
            format!("{:+.0}%", 100.0 * self.relative_error()),
            format!("{lo:.1}–{hi:.1}"),
        )
    }

    pub fn spread(&self) -> (f64, f64) {
        let lo = self.per_seed_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.per_seed_ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }
}

fn measure(values: &[f64], m: Measure) -> f64 {
    let s = Stats::of(values);
    match m {
        Measure::Median => s.p50,
        Measure::Mean => s.mean,
        Measure::Max => s.max,
    }
}

/// Everything the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct ElectionReport {
    pub seed: u64,
    pub latency_ms: (f64, f64),
    /// Each disk sync, in milliseconds (0: instantaneous).
    pub disk_sync_ms: f64,
    pub differing_logs: bool,
    pub pre_vote: bool,
    pub ranges: Vec<RangeResult>,
}

impl ElectionReport {
    pub fn range(&self, min_ms: u64, max_ms: u64) -> Option<&RangeResult> {
        self.ranges.iter().find(|r| r.range == TimeoutRange::new(min_ms, max_ms))
    }

    /// The paper's headline numbers beside ours, for the ranges that were run.
    pub fn comparisons(&self) -> Vec<Comparison> {
        PAPER_NUMBERS
            .iter()
            .filter_map(|p| {
                let r = self.range(p.range.min_ms, p.range.max_ms)?;
                Some(Comparison {
                    paper: *p,
                    pooled_ms: measure(&r.downtime_ms(), p.measure),
                    per_seed_ms: r
                        .seeds
                        .iter()
                        .filter(|s| !s.downtime_ms.is_empty())
                        .map(|s| measure(&s.downtime_ms, p.measure))
                        .collect(),
                    settled: r.downtime_ms().len(),
                })
            })
            .collect()
    }

    /// The distribution per range, as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7}",
            "timeout", "trials", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "split%", "terms"
        );
        for r in &self.ranges {
            let [label, cells @ ..] = r.cells();
            let _ = write!(out, "{label:<14}");
            for (cell, width) in cells.iter().zip([6, 8, 8, 8, 8, 9, 7, 7]) {
                let _ = write!(out, " {cell:>width$}");
            }
            if r.above_limit() > 0 {
                let _ = write!(out, "  ({} above the {:.0} s limit)", r.above_limit(), r.limit_ms / 1e3);
            }
            if r.unsettled() > 0 {
                let _ = write!(out, "  ({} not run: the cluster did not settle)", r.unsettled());
            }
            out.push('\n');
        }
        out
    }

    /// The paper's numbers beside ours, as a text table.
    pub fn comparison_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:<7} {:>10} {:>10} {:>7} {:>21}",
            "timeout", "what", "paper ms", "ours ms", "diff", "per seed (min–max)"
        );
        for c in self.comparisons() {
            let (ours, difference, spread) = c.ours_and_difference();
            let _ = writeln!(
                out,
                "{:<12} {:<7} {:>10} {:>10} {:>7} {:>21}",
                format!("{}–{}", c.paper.range.min_ms, c.paper.range.max_ms),
                format!("{:?}", c.paper.measure).to_lowercase(),
                format!("{}{:.0}", if c.paper.at_least { ">" } else { "" }, c.paper.paper_ms),
                ours,
                difference,
                spread,
            );
        }
        out
    }
}

/// Run the experiment: every (range, seed) on its own thread (each is its own deterministic
/// simulation, so the result does not depend on the number of threads).
pub fn run_raft_elections(options: &ElectionOptions) -> anyhow::Result<ElectionReport> {
    anyhow::ensure!(options.seeds >= 1, "need at least one seed");
    let results: Vec<Vec<anyhow::Result<SeedResult>>> = std::thread::scope(|s| {
        let handles: Vec<Vec<_>> = options
            .ranges
            .iter()
            .enumerate()
            .map(|(i, &range)| {
                (0..options.seeds)
                    .map(|k| {
                        let seed = range_seed(options.seed, k, i);
                        s.spawn(move || run_range(options, range, seed, None).map(|(r, _)| r))
                    })
                    .collect()
            })
            .collect();
        handles
            .into_iter()
            .map(|hs| hs.into_iter().map(|h| h.join().expect("a range's thread panicked")).collect())
            .collect()
    });
    let ranges = options
        .ranges
        .iter()
        .zip(results)
        .map(|(&range, seeds)| {
            Ok(RangeResult {
                range,
                seeds: seeds.into_iter().collect::<anyhow::Result<_>>()?,
                limit_ms: options.give_up_after.as_secs_f64() * 1e3,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(ElectionReport {
        seed: options.seed,
        latency_ms: (ms(options.latency_min), ms(options.latency_max)),
        disk_sync_ms: ms(options.disk_sync),
        differing_logs: options.differing_logs,
        pre_vote: options.pre_vote,
        ranges,
    })
}

/// The seed of simulation `k` of the `i`-th range.
fn range_seed(seed: u64, k: u64, i: usize) -> u64 {
    seed.wrapping_add(k.wrapping_mul(1000)).wrapping_add(i as u64)
}

fn micros(d: Duration) -> String {
    format!("{}us", d.as_micros())
}

fn scenario(options: &ElectionOptions, range: TimeoutRange) -> anyhow::Result<Scenario<RaftScenario>> {
    let min = Duration::from_millis(range.min_ms);
    let max = if range.max_ms > range.min_ms {
        Duration::from_millis(range.max_ms)
    } else {
        min + Duration::from_micros(1)
    };
    let text = format!(
        r#"
[run]
nodes = 5
duration = "100000000s"
max_events = 100000000000

[network]
latency = {{ dist = "uniform", min = "{lmin}", max = "{lmax}" }}

[disk]
sync_latency = {{ dist = "constant", value = "{disk}" }}

[protocol.raft]
election_timeout_min = "{min}"
election_timeout_max = "{max}"
heartbeat_interval = "{hb}"
clock_drift_bound = "{drift}"
pre_vote = {pre_vote}
check_quorum = false
lease_reads = false
"#,
        lmin = micros(options.latency_min),
        lmax = micros(options.latency_max),
        disk = micros(options.disk_sync),
        min = micros(min),
        max = micros(max),
        hb = micros(min / 2),
        drift = micros(min / 10),
        pre_vote = options.pre_vote,
    );
    Scenario::parse(Path::new("raft-elections.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The up node that is leader with the highest term, if any.
fn leader(sim: &Simulation<RaftKv>, ids: &[NodeId]) -> Option<(NodeId, u64)> {
    ids.iter()
        .filter_map(|&id| sim.node(id).filter(|n| n.is_leader()).map(|n| (id, n.current_term())))
        .max_by_key(|&(_, term)| term)
}

/// A leader that every up node follows in its term.
fn followed(sim: &Simulation<RaftKv>, ids: &[NodeId]) -> Option<(NodeId, u64)> {
    let (l, term) = leader(sim, ids)?;
    ids.iter()
        .filter_map(|&id| sim.node(id))
        .all(|n| n.current_term() == term && n.leader_id() == Some(l))
        .then_some((l, term))
}

/// All nodes up, one leader, everyone following it in its term.
fn stable(sim: &Simulation<RaftKv>, ids: &[NodeId]) -> Option<(NodeId, u64)> {
    ids.iter().all(|&id| sim.node(id).is_some()).then(|| followed(sim, ids))?
}

/// The highest term any up node has reached.
fn highest_term(sim: &Simulation<RaftKv>, ids: &[NodeId]) -> u64 {
    ids.iter().filter_map(|&id| sim.node(id)).map(|n| n.current_term()).max().unwrap_or(0)
}

/// The simulation's trace, tapped: it remembers the last heartbeat tick of each node (to crash a
/// leader a known time after its heartbeat broadcast), and keeps the lines written while `keep`
/// is on (the one trial `--export-worst` writes out).
#[derive(Clone, Default)]
struct TraceTap(Arc<Mutex<TapState>>);

#[derive(Default)]
struct TapState {
    keep: bool,
    kept: Vec<u8>,
    /// Node → true time (ns) its heartbeat timer last fired.
    heartbeat: BTreeMap<u32, u64>,
}

impl TraceTap {
    fn state(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.0.lock().expect("the tap is never poisoned")
    }
    fn keep(&self, on: bool) {
        self.state().keep = on;
    }
    fn push_line(&self, line: &serde_json::Value) {
        let mut state = self.state();
        serde_json::to_writer(&mut state.kept, line).expect("JSON values serialise");
        state.kept.push(b'\n');
    }
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.state().kept)
    }
    fn last_heartbeat(&self, node: NodeId) -> Option<Time> {
        self.state().heartbeat.get(&node.0).map(|&t| Time(t))
    }
}

impl std::io::Write for TraceTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut state = self.state();
        if state.keep {
            state.kept.extend_from_slice(buf);
        }
        // The simulator writes one whole line per call; only heartbeat ticks are parsed.
        if buf.windows(21).any(|w| w == br#""timer":"Heartbeat"}"#) {
            if let Ok(line) = serde_json::from_slice::<serde_json::Value>(buf) {
                if let (Some(node), Some(t)) = (line["node"].as_u64(), line["t"].as_u64()) {
                    if line["ev"] == "timer" {
                        state.heartbeat.insert(node as u32, t);
                    }
                }
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run one range with one seed. With `record = Some((k, window))`, trial `k`'s trace – from the
/// moment the cluster is stable before it until the new leader is followed – goes into `window`,
/// after a `boot` and `state` line per up node (so a viewer starting there knows each node's
/// role, term and log).
fn run_range(
    options: &ElectionOptions,
    range: TimeoutRange,
    seed: u64,
    record: Option<usize>,
) -> anyhow::Result<(SeedResult, Vec<u8>)> {
    let scenario = Arc::new(scenario(options, range)?);
    // Tracing costs time: only when the trial timing needs heartbeat ticks or a trial is exported.
    let tap = TraceTap::default();
    let traced = options.differing_logs || record.is_some();
    let trace = traced.then(|| Box::new(tap.clone()) as Box<dyn std::io::Write + Send>);
    let mut sim =
        Simulation::<RaftKv>::new(Arc::clone(&scenario), RunOptions { seed, trace, ..Default::default() });
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e1ec);
    sim.start();
    let ids: Vec<NodeId> = (1..=5).map(NodeId).collect();
    let step = Duration::from_millis(range.min_ms.max(2) / 2);
    let heartbeat = Duration::from_millis(range.min_ms) / 2;
    let trials = if range.max_ms == range.min_ms { options.trials_zero_width } else { options.trials };
    let mut result = SeedResult {
        seed,
        downtime_ms: Vec::new(),
        terms: Vec::new(),
        above_limit: 0,
        unsettled: 0,
        virtual_secs: 0.0,
    };
    let limit = options.give_up_after;
    for trial in 0..trials {
        let recording = (record == Some(trial)).then_some(&tap);
        // 1. A stable cluster (within the limit; otherwise the trial is not run).
        let settle_deadline = sim.now() + limit;
        while stable(&sim, &ids).is_none() && sim.now() < settle_deadline {
            let until = sim.now() + step;
            sim.run_until(until);
        }
        if stable(&sim, &ids).is_none() {
            result.unsettled += 1;
            continue;
        }
        if let Some(w) = recording {
            for &id in &ids {
                if let Some(node) = sim.node(id) {
                    let t = sim.now().0;
                    w.push_line(&json!({"t": t, "ev": "boot", "node": id.0}));
                    w.push_line(&json!({"t": t, "ev": "state", "node": id.0, "state": node.inspect()}));
                }
            }
            w.keep(true);
        }
        // 2. Wait a full election timeout; the crash comes a uniformly random time within a
        //    heartbeat interval after a heartbeat broadcast (the paper's "crashed uniformly randomly
        //    within its heartbeat interval"; heartbeats go to all followers at once).
        let until = sim.now() + Duration::from_millis(range.max_ms);
        sim.run_until(until);
        let Some((old, term)) = stable(&sim, &ids) else {
            result.unsettled += 1;
            if let Some(w) = recording {
                w.keep(false);
            }
            continue;
        };
        let crash_fraction = rng.gen::<f64>();
        let mut broadcast_at = sim.now();
        if options.differing_logs {
            // Step to the leader's next heartbeat tick, so that the entry below leaves with it.
            let seen = tap.last_heartbeat(old);
            let deadline = sim.now() + 2 * heartbeat;
            while tap.last_heartbeat(old) == seen && sim.now() < deadline && sim.step() {}
            // The heartbeats leave in later events at the same instant (after any owed sync).
            sim.run_until(sim.now());
            broadcast_at = sim.now();
            // 3. The paper's worst case: with that broadcast, the followers' logs diverge in length,
            //    so that two of them cannot win the next election.
            diverge_logs(&mut sim, &scenario, &ids, old, &mut rng);
        }
        let crash_at = broadcast_at + heartbeat.mul_f64(crash_fraction);
        sim.run_until(crash_at.max(sim.now()));
        // 4. Crash the leader; step event by event until every live node follows a new one.
        sim.crash(old);
        let crashed_at = sim.now();
        let deadline = crashed_at + limit;
        let found = loop {
            if let Some(found) = followed(&sim, &ids) {
                break Some(found);
            }
            if sim.now() >= deadline || !sim.step() {
                break None;
            }
        };
        if let Some(w) = recording {
            w.keep(false);
        }
        match found {
            Some((_, new_term)) => {
                result.downtime_ms.push((sim.now() - crashed_at).as_secs_f64() * 1e3);
                result.terms.push(new_term - term);
            }
            None => {
                // Recorded as what it is: downtime above the limit.
                result.above_limit += 1;
                result.downtime_ms.push(limit.as_secs_f64() * 1e3);
                result.terms.push(highest_term(&sim, &ids).saturating_sub(term));
            }
        }
        // 5. Bring the old leader back.
        sim.restart(old);
    }
    result.virtual_secs = (sim.now() - Time::ZERO).as_secs_f64();
    drop(sim);
    Ok((result, tap.take()))
}

/// Give the four followers logs of four different lengths, as in the paper's benchmark ("two of
/// the four servers were not eligible to become leader"): the leader replicates three new entries,
/// the first to three followers, the second to two, the third to one (a one-way cut drops the
/// others' copies). Of the survivors, the longest log wins every vote and the second longest can
/// still win (its own vote and the two shorter logs' make three of five); the two shortest cannot.
/// The appends leave with the heartbeat broadcast, and the cuts are healed before the heartbeats
/// arrive (a cut also drops messages in flight). The shorter logs stay short until the crash:
/// heartbeats carry no entries, and the leader retries the lost appends only at its next tick.
fn diverge_logs(
    sim: &mut Simulation<RaftKv>,
    scenario: &Scenario<RaftScenario>,
    ids: &[NodeId],
    leader: NodeId,
    rng: &mut ChaCha8Rng,
) {
    let mut order: Vec<NodeId> = ids.iter().copied().filter(|&id| id != leader).collect();
    // A random order, longest log first.
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let (_, config) = scenario.protocol();
    for shorter in (1..order.len()).rev() {
        let cut: Vec<u32> = order[shorter..].iter().map(|n| n.0).collect();
        sim.cut_one_way(&[leader.0], &cut);
        let index = sim.node(leader).map_or(0, |n| n.last_log_index()) + 1;
        let request =
            RaftKv::workload_request(config, ClientId(0), index, &Op::write("elections", index as i64));
        sim.inject(leader, request);
        // The leader appends, syncs (instantly: the lab's disks take no time) and sends, all at
        // this instant; the cut followers' copies are dropped.
        let until = sim.now();
        sim.run_until(until);
        sim.heal();
    }
}

/// Re-run the worst trial of each range with tracing on and write it as a trace the viewer opens
/// (`concord view DIR/worst-150-155.jsonl`). Returns the files written.
pub fn export_worst(
    options: &ElectionOptions,
    report: &ElectionReport,
    dir: &Path,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for r in &report.ranges {
        let Some((seed, trial, downtime)) = r.worst() else { continue };
        let (replay, trace) = run_range(options, r.range, seed, Some(trial))?;
        // The replay is the same simulation, only traced: it must measure the same downtime.
        let again = replay.downtime_ms.get(trial).copied();
        anyhow::ensure!(
            again == Some(downtime),
            "{}: replaying trial {trial} (seed {seed}) measured {again:?} ms, not {downtime} ms",
            r.range.label()
        );
        let path = dir.join(format!("worst-{}-{}.jsonl", r.range.min_ms, r.range.max_ms));
        std::fs::write(&path, trace)?;
        written.push(path);
    }
    Ok(written)
}

/// Write `report.json`, the two CDF plots (SVG and PNG) and `index.html` into `dir`.
pub fn write_report(report: &ElectionReport, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);

    // The paper's top graph: 150 ms plus randomness; the bottom one: randomness equal to the
    // minimum. A range of neither kind (from `--ranges`) goes in the bottom one.
    let curves = |top: bool| -> Vec<Curve> {
        report
            .ranges
            .iter()
            .filter(|r| {
                let in_top = r.range.min_ms == 150;
                let in_bottom = r.range.max_ms == 2 * r.range.min_ms || r.range.min_ms != 150;
                if top {
                    in_top
                } else {
                    in_bottom
                }
            })
            .map(|r| Curve { label: r.range.label(), values: r.downtime_ms() })
            .collect()
    };
    let top = curves(true);
    let bottom = curves(false);
    let max_of = |c: &[Curve]| c.iter().flat_map(|c| c.values.iter().copied()).fold(1.0, f64::max);
    if !top.is_empty() {
        let chart = CdfChart {
            title: "Time without a leader: 150 ms plus randomness (cf. Raft paper, Figure 16 top)",
            x_label: "time without leader (ms, log scale)",
            log_x: true,
            x_range: (100.0, (max_of(&top) * 1.2).max(1000.0)),
        };
        plot::cdf(&dir.join("elections-randomness"), &chart, &top)?;
        written.push(dir.join("elections-randomness.svg"));
        written.push(dir.join("elections-randomness.png"));
    }
    if !bottom.is_empty() {
        let chart = CdfChart {
            title: "Time without a leader: shorter timeouts (cf. Raft paper, Figure 16 bottom)",
            x_label: "time without leader (ms)",
            log_x: false,
            x_range: (0.0, max_of(&bottom) * 1.05),
        };
        plot::cdf(&dir.join("elections-timeouts"), &chart, &bottom)?;
        written.push(dir.join("elections-timeouts.svg"));
        written.push(dir.join("elections-timeouts.png"));
    }
    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
}

fn html_report(report: &ElectionReport) -> String {
    let mut rows = String::new();
    for r in &report.ranges {
        let cells: String = r.cells().iter().map(|c| format!("<td>{c}</td>")).collect();
        let _ = writeln!(rows, "<tr>{cells}<td>{}</td><td>{}</td></tr>", r.above_limit(), r.unsettled());
    }
    let mut paper = String::new();
    for c in report.comparisons() {
        let (ours, difference, spread) = c.ours_and_difference();
        let _ = writeln!(
            paper,
            "<tr><td>{}</td><td>{}{:.0}</td><td>{ours}</td><td>{difference}</td><td>{spread}</td></tr>",
            c.paper.quote,
            if c.paper.at_least { "&gt; " } else { "" },
            c.paper.paper_ms,
        );
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Raft elections – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body>
<h1>The election-timeout experiment (Raft paper, Figure 16)</h1>
<p>Five Concord Raft nodes in the simulator; the leader is crashed at a random moment within its heartbeat
interval, and the time until every live server follows a new leader is measured. One-way latency uniform
{lmin:.2}–{lmax:.2} ms; logs {logs}; pre-vote {pre}; first seed {seed},
{seeds} seed(s) per range.</p>
<h2>The paper's numbers beside ours</h2>
<table><tr><th>the paper (§9.3)</th><th>paper ms</th><th>ours ms (all seeds)</th><th>difference</th><th>per seed, min–max</th></tr>
{paper}</table>
<h2>All ranges</h2>
<table><tr><th>timeout</th><th>trials</th><th>mean ms</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>split votes %</th><th>terms/election</th><th>above limit</th><th>not settled</th></tr>
{rows}</table>
<p>Trials above the limit ({limit:.0} s) are counted at the limit (≥).</p>
<h2>Randomness</h2><img src="elections-randomness.svg" alt="CDF of downtime for 150 ms plus randomness">
<h2>Shorter timeouts</h2><img src="elections-timeouts.svg" alt="CDF of downtime for shorter timeouts">
<p>See <code>docs/labs/raft-elections.md</code> for how these compare with the paper.</p>
</body></html>
"#,
        lmin = report.latency_ms.0,
        lmax = report.latency_ms.1,
        pre = if report.pre_vote { "on" } else { "off" },
        seed = report.seed,
        logs = if report.differing_logs {
            "of four different lengths (the two shortest cannot win)"
        } else {
            "equal"
        },
        seeds = report.ranges.first().map_or(0, |r| r.seeds.len()),
        limit = report.ranges.first().map_or(0.0, |r| r.limit_ms / 1e3),
    )
}

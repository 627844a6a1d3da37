//! The election-timeout experiment of the Raft paper (§9.3, Figure 16), in the simulator.
//!
//! The paper crashed the leader of a five-server cluster over and over and measured how long the
//! cluster went without a leader, for several ranges of the randomised election timeout. Its two
//! findings: a little randomness (a few milliseconds) is enough to avoid most split votes, and
//! shorter timeouts shorten the downtime – as long as they stay well above the network's broadcast
//! time.
//!
//! Here, for each timeout range, one long simulation of five Concord Raft nodes runs `trials`
//! rounds of:
//!
//! 1. wait until the cluster is stable: all five up, one leader, everyone following it;
//! 2. wait a further `election_timeout_max` plus a uniformly random fraction of the heartbeat
//!    interval (the paper crashed the leader "uniformly randomly within its heartbeat interval",
//!    which was half the minimum election timeout; we do the same);
//! 3. crash the leader, then step the simulator event by event until some node becomes leader: the
//!    virtual time since the crash is the trial's *downtime*; the number of terms it took is the
//!    number of elections (more than one means split votes or failed candidacies);
//! 4. restart the crashed node.
//!
//! The network's one-way latency is drawn from `latency_min..latency_max` (default 5–10 ms, a
//! broadcast time – one round trip – of about 15 ms, as in the paper's cluster). Pre-vote is off by
//! default because the paper's algorithm has none (it adds a round trip to every election);
//! check-quorum and leases are off too, as irrelevant here.
//!
//! A zero-width range such as 150–150 ms cannot be configured (the timeout is drawn from a
//! half-open range `min..max`), so "150–150" runs as 150 ms to 150 ms + 1 µs: randomness a thousand
//! times smaller than the network jitter, i.e. none that matters.

use crate::plot::{self, CdfChart, Curve};
use concord_core::{NodeId, Time};
use concord_sim::protocols::raft::{RaftKv, RaftScenario};
use concord_sim::{RunOptions, Scenario, Simulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
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
    /// Leader crashes per range (the paper: 1 000, and 100 for 150–150 ms).
    pub trials: usize,
    /// Trials for a zero-width range (slow: its split votes can go on for seconds).
    pub trials_zero_width: usize,
    pub seed: u64,
    /// Ranges to run (a range in both of the paper's graphs is run once).
    pub ranges: Vec<TimeoutRange>,
    /// One-way network latency, drawn uniformly from this range.
    pub latency_min: Duration,
    pub latency_max: Duration,
    pub pre_vote: bool,
    /// A trial without a leader after this long is recorded as "no leader" (and stops the range).
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
            ranges,
            latency_min: Duration::from_millis(5),
            latency_max: Duration::from_millis(10),
            pre_vote: false,
            give_up_after: Duration::from_secs(60),
        }
    }
}

/// The trials of one range.
#[derive(Clone, Debug, Serialize)]
pub struct RangeResult {
    pub range: TimeoutRange,
    /// Downtime of each trial (crash → a new leader), in milliseconds, in trial order.
    pub downtime_ms: Vec<f64>,
    /// Terms each trial took (1: the first election won; more: split votes or failed elections).
    pub terms: Vec<u64>,
    /// Trials that found no leader within `give_up_after` (not in `downtime_ms`).
    pub no_leader: usize,
    /// Virtual time simulated for this range.
    pub virtual_secs: f64,
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
        [
            self.range.label(),
            self.downtime_ms.len().to_string(),
            format!("{:.1}", s.mean),
            format!("{:.1}", s.p50),
            format!("{:.1}", s.p90),
            format!("{:.1}", s.p99),
            format!("{:.1}", s.max),
            format!("{:.1}", 100.0 * self.split_fraction()),
            format!("{:.2}", self.mean_terms()),
        ]
    }

    pub fn stats(&self) -> Stats {
        Stats::of(&self.downtime_ms)
    }
    /// Fraction of trials that needed more than one term.
    pub fn split_fraction(&self) -> f64 {
        if self.terms.is_empty() {
            return 0.0;
        }
        self.terms.iter().filter(|&&t| t > 1).count() as f64 / self.terms.len() as f64
    }
    pub fn mean_terms(&self) -> f64 {
        if self.terms.is_empty() {
            return 0.0;
        }
        self.terms.iter().sum::<u64>() as f64 / self.terms.len() as f64
    }
}

/// Everything the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct ElectionReport {
    pub seed: u64,
    pub latency_ms: (f64, f64),
    pub pre_vote: bool,
    pub ranges: Vec<RangeResult>,
}

impl ElectionReport {
    pub fn range(&self, min_ms: u64, max_ms: u64) -> Option<&RangeResult> {
        self.ranges.iter().find(|r| r.range == TimeoutRange::new(min_ms, max_ms))
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
            if r.no_leader > 0 {
                let _ = write!(out, "  ({} trials: no leader)", r.no_leader);
            }
            out.push('\n');
        }
        out
    }
}

/// Run the experiment: every range on its own thread (each range is its own deterministic
/// simulation, so the result does not depend on the number of threads).
pub fn run_raft_elections(options: &ElectionOptions) -> anyhow::Result<ElectionReport> {
    let results: Vec<anyhow::Result<RangeResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = options
            .ranges
            .iter()
            .enumerate()
            .map(|(i, &range)| {
                s.spawn(move || run_range(options, range, options.seed.wrapping_add(i as u64)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a range's thread panicked")).collect()
    });
    Ok(ElectionReport {
        seed: options.seed,
        latency_ms: (options.latency_min.as_secs_f64() * 1e3, options.latency_max.as_secs_f64() * 1e3),
        pre_vote: options.pre_vote,
        ranges: results.into_iter().collect::<anyhow::Result<_>>()?,
    })
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
duration = "100000s"
max_events = 1000000000

[network]
latency = {{ dist = "uniform", min = "{lmin}", max = "{lmax}" }}

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

/// All nodes up, one leader, everyone following it in its term.
fn stable(sim: &Simulation<RaftKv>, ids: &[NodeId]) -> Option<(NodeId, u64)> {
    let (l, term) = leader(sim, ids)?;
    ids.iter()
        .all(|&id| sim.node(id).is_some_and(|n| n.current_term() == term && n.leader_id() == Some(l)))
        .then_some((l, term))
}

fn run_range(options: &ElectionOptions, range: TimeoutRange, seed: u64) -> anyhow::Result<RangeResult> {
    let scenario = Arc::new(scenario(options, range)?);
    let mut sim = Simulation::<RaftKv>::new(scenario, RunOptions { seed, ..Default::default() });
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e1ec);
    sim.start();
    let ids: Vec<NodeId> = (1..=5).map(NodeId).collect();
    let step = Duration::from_millis(range.min_ms.max(2) / 2);
    let heartbeat = Duration::from_millis(range.min_ms) / 2;
    let trials = if range.max_ms == range.min_ms { options.trials_zero_width } else { options.trials };
    let mut result =
        RangeResult { range, downtime_ms: Vec::new(), terms: Vec::new(), no_leader: 0, virtual_secs: 0.0 };
    let give_up = options.give_up_after;
    for _ in 0..trials {
        // 1. A stable cluster.
        let settle_deadline = sim.now() + give_up;
        while stable(&sim, &ids).is_none() {
            anyhow::ensure!(sim.now() < settle_deadline, "{}: the cluster did not settle", range.label());
            let until = sim.now() + step;
            sim.run_until(until);
        }
        // 2. A random moment within a heartbeat interval, after a full election timeout.
        let wait = Duration::from_millis(range.max_ms) + heartbeat.mul_f64(rng.gen::<f64>());
        let until = sim.now() + wait;
        sim.run_until(until);
        let Some((old, term)) = stable(&sim, &ids) else { continue };
        // 3. Crash it; step event by event until a new leader appears.
        sim.crash(old);
        let crashed_at = sim.now();
        let deadline = crashed_at + give_up;
        let found = loop {
            if let Some((_, new_term)) = leader(&sim, &ids) {
                break Some(new_term);
            }
            if sim.now() >= deadline || !sim.step() {
                break None;
            }
        };
        match found {
            Some(new_term) => {
                result.downtime_ms.push((sim.now() - crashed_at).as_secs_f64() * 1e3);
                result.terms.push(new_term - term);
            }
            None => {
                result.no_leader += 1;
                break;
            }
        }
        // 4. Bring the old leader back.
        sim.restart(old);
    }
    result.virtual_secs = (sim.now() - Time::ZERO).as_secs_f64();
    Ok(result)
}

/// Write `report.json`, the two CDF plots (SVG and PNG) and `index.html` into `dir`.
pub fn write_report(report: &ElectionReport, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);

    let curves = |ranges: &[TimeoutRange]| -> Vec<Curve> {
        ranges
            .iter()
            .filter_map(|r| report.range(r.min_ms, r.max_ms))
            .map(|r| Curve { label: r.range.label(), values: r.downtime_ms.clone() })
            .collect()
    };
    let top = curves(&PAPER_TOP);
    let bottom = curves(&PAPER_BOTTOM);
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
        let _ = writeln!(rows, "<tr>{cells}<td>{}</td></tr>", r.no_leader);
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Raft elections – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body>
<h1>The election-timeout experiment (Raft paper, Figure 16)</h1>
<p>Five Concord Raft nodes in the simulator; the leader is crashed at a random moment within its heartbeat
interval, and the time until some node becomes leader is measured. One-way latency uniform
{lmin:.1}–{lmax:.1} ms; pre-vote {pre}; seed {seed}.</p>
<table><tr><th>timeout</th><th>trials</th><th>mean ms</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>split votes %</th><th>terms/election</th><th>no leader</th></tr>
{rows}</table>
<h2>Randomness</h2><img src="elections-randomness.svg" alt="CDF of downtime for 150 ms plus randomness">
<h2>Shorter timeouts</h2><img src="elections-timeouts.svg" alt="CDF of downtime for shorter timeouts">
<p>See <code>docs/labs/raft-elections.md</code> for how these compare with the paper.</p>
</body></html>
"#,
        lmin = report.latency_ms.0,
        lmax = report.latency_ms.1,
        pre = if report.pre_vote { "on" } else { "off" },
        seed = report.seed,
    )
}

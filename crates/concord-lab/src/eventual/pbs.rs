//! Part 2 – PBS staleness curves: the WARS Monte Carlo next to the real Dynamo code.
//!
//! For each latency environment and each (N, R, W):
//!
//! * **model** – [`wars::consistency`] at the same `t` grid;
//! * **simulator** – Concord's Dynamo on 8 simulated nodes, every network message delayed by the
//!   environment's A=R=S distribution (an `empirical` CDF file written from the paper's mixture),
//!   and each replica's disk sync by its W distribution when W differs from A=R=S (LNKD-DISK,
//!   YMMR, EXP 10:1: in those systems the slow part of a write *is* the replica's disk). Clients
//!   are open-loop with many more reads than writes, read repair, anti-entropy and hinted handoff
//!   are off (the model has none), and the client↔node hop is 1 µs, so that the client history's
//!   times are the coordinator's. A read is consistent if it returned the newest write acknowledged
//!   before it started (or a newer one), and is binned by the time since that acknowledgement –
//!   PBS's t-visibility ([`read_visibility`]: `concord_check::staleness`'s conventions, minus the
//!   reads that follow overlapping writes).

use super::wars::{self, LatencyModel, Quorum};
use concord_core::history::{EventType, History, OpFn, Value};
use concord_dynamo::DynamoNode;
use concord_sim::{RunOptions, Scenario, Simulation};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How far (ms) each environment's curves are drawn: a little beyond where R=W=1 reaches ~99.9 %.
pub fn horizon_ms(model: &LatencyModel) -> f64 {
    match model.name {
        "LNKD-SSD" => 4.0,
        "LNKD-DISK" => 60.0,
        "YMMR" => 1500.0,
        "EXP 1:1" => 8.0,
        _ => 50.0,
    }
}

/// Bins of the simulator's curve over `[0, horizon)`.
pub const BINS: usize = 20;

/// One curve.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    pub model: String,
    pub quorum: Quorum,
    /// "model" (WARS Monte Carlo) or "simulator".
    pub method: String,
    /// (t in ms, P(consistent), reads in the bin – 0 for the model).
    pub points: Vec<(f64, f64, usize)>,
}

/// Write the environment's W and A=R=S distributions as CDF files the simulator can read.
pub fn write_latency_files(dir: &Path, model: &LatencyModel) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let slug = model.name.to_lowercase().replace([' ', ':'], "-");
    let ars = dir.join(format!("{slug}-ars.csv"));
    let w = dir.join(format!("{slug}-w.csv"));
    std::fs::write(&ars, model.ars.cdf_file())?;
    std::fs::write(&w, model.w.cdf_file())?;
    Ok((ars, w))
}

/// The WARS Monte Carlo curve on a fine grid.
pub fn model_curve(model: &LatencyModel, quorum: Quorum, trials: usize, seed: u64) -> Curve {
    let h = horizon_ms(model);
    let ts: Vec<f64> = (0..=60).map(|i| h * i as f64 / 60.0).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ps = wars::consistency(model, quorum, &ts, trials, &mut rng);
    Curve {
        model: model.name.into(),
        quorum,
        method: "model".into(),
        points: ts.into_iter().zip(ps).map(|(t, p)| (t, p, 0)).collect(),
    }
}

fn scenario_text(model: &LatencyModel, quorum: Quorum, files: &(PathBuf, PathBuf), spans: f64) -> String {
    let h = horizon_ms(model);
    const KEYS: f64 = 4.0;
    const READS_PER_WRITE: f64 = 60.0;
    // Each key is written on average once per horizon, and read READS_PER_WRITE times as often.
    let rate_per_s = KEYS * (READS_PER_WRITE + 1.0) / (h / 1e3);
    let start_ms = 500.0;
    let stop_ms = start_ms + spans * h;
    let duration_ms = stop_ms + 4.0 * h + 500.0;
    let path = |p: &PathBuf| p.display().to_string().replace('\\', "/");
    let sync = if model.w == model.ars {
        r#"{ dist = "constant", value = "0ms" }"#.to_string()
    } else {
        format!(r#"{{ dist = "empirical", file = "{}" }}"#, path(&files.1))
    };
    format!(
        r#"
description = "PBS in the simulator: {name}, {label}"
[run]
nodes = 8
duration = "{duration_us}us"
[network]
latency = {{ dist = "empirical", file = "{ars}" }}
client_latency = {{ dist = "constant", value = "1us" }}
[disk]
sync_latency = {sync}
[workload]
clients = 8
mode = "open"
rate_per_s = {rate_per_s}
keys = {KEYS}
mix = {{ read = {READS_PER_WRITE}, write = 1.0 }}
timeout = "120s"
start = "{start_us}us"
stop = "{stop_us}us"
[protocol.dynamo]
n = {n}
r = {r}
w = {w}
resolution = "lww"
read_repair = false
anti_entropy = false
hinted_handoff = false
request_timeout = "120s"
replica_timeout = "120s"
"#,
        name = model.name,
        label = quorum.label(),
        duration_us = (duration_ms * 1e3) as u64,
        ars = path(&files.0),
        start_us = (start_ms * 1e3) as u64,
        stop_us = (stop_ms * 1e3) as u64,
        n = quorum.n,
        r = quorum.r,
        w = quorum.w,
    )
}

/// Counts per bin from one simulator run: (reads, consistent).
pub fn simulate(
    model: &LatencyModel,
    quorum: Quorum,
    files: &(PathBuf, PathBuf),
    spans: f64,
    seed: u64,
) -> anyhow::Result<Vec<(usize, usize)>> {
    let text = scenario_text(model, quorum, files, spans);
    let scenario: Scenario<concord_dynamo::DynamoConfig> =
        Scenario::parse(Path::new("pbs.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report =
        Simulation::<DynamoNode>::new(Arc::new(scenario), RunOptions { seed, ..Default::default() }).run();
    let width_ms = horizon_ms(model) / BINS as f64;
    let mut counts = vec![(0usize, 0usize); BINS];
    for (since_ms, consistent) in read_visibility(&report.history) {
        let bin = (since_ms / width_ms) as usize;
        if let Some(slot) = counts.get_mut(bin) {
            slot.0 += 1;
            slot.1 += usize::from(consistent);
        }
    }
    Ok(counts)
}

/// For each `ok` read: (ms since the latest write of its key acknowledged before the read began,
/// whether the read returned that write or a newer one).
///
/// As in `concord_check::staleness`, versions are ordered by acknowledgement – but reads after a
/// write that *overlapped* another write of the same key are left out: the store may order
/// overlapping writes either way, and PBS's t-visibility is about a write followed by reads, not
/// about races between writers. Reads of values no acknowledged write wrote are left out too.
pub fn read_visibility(history: &History) -> Vec<(f64, bool)> {
    struct W<'h> {
        key: &'h str,
        value: &'h Value,
        invoke: usize,
        ack: usize, // usize::MAX: unknown outcome
        ack_ns: u64,
        overlaps: bool,
    }
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut writes: Vec<W> = Vec::new();
    let mut reads: Vec<(&str, usize, u64, &Value)> = Vec::new(); // key, invoke index, invoke ns, value
    for (i, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, i);
            continue;
        }
        let Some(inv) = open.remove(&e.process) else { continue };
        let op = &history.events[inv].op;
        let Some(key) = op.key.as_deref() else { continue };
        match (op.f, e.kind) {
            (OpFn::Write, EventType::Ok | EventType::Info) => writes.push(W {
                key,
                value: &op.value,
                invoke: inv,
                ack: if e.kind == EventType::Ok { i } else { usize::MAX },
                ack_ns: e.time.0,
                overlaps: false,
            }),
            (OpFn::Read, EventType::Ok) => reads.push((key, inv, history.events[inv].time.0, &e.op.value)),
            _ => {}
        }
    }
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        by_key.entry(w.key).or_default().push(i);
    }
    for ids in by_key.values() {
        for &a in ids {
            let overlaps = ids
                .iter()
                .any(|&b| b != a && writes[b].invoke < writes[a].ack && writes[a].invoke < writes[b].ack);
            writes[a].overlaps = overlaps;
        }
    }
    let mut out = Vec::new();
    for (key, r_invoke, r_ns, value) in reads {
        let Some(ids) = by_key.get(key) else { continue };
        let Some(&latest) = ids.iter().filter(|&&i| writes[i].ack < r_invoke).max_by_key(|&&i| writes[i].ack)
        else {
            continue;
        };
        let y = &writes[latest];
        if y.overlaps {
            continue;
        }
        let returned = ids.iter().find(|&&i| writes[i].value == value);
        let consistent = match returned {
            Some(&x) => writes[x].invoke >= y.invoke,
            None if *value == Value::Nil => false,
            None => continue,
        };
        out.push(((r_ns.saturating_sub(y.ack_ns)) as f64 / 1e6, consistent));
    }
    out
}

/// The simulator's curve from the counts of several seeds (bins with too few reads are left out).
pub fn sim_curve(model: &LatencyModel, quorum: Quorum, counts: &[Vec<(usize, usize)>]) -> Curve {
    let h = horizon_ms(model);
    let mut points = Vec::new();
    for bin in 0..BINS {
        let (reads, consistent) =
            counts.iter().filter_map(|c| c.get(bin)).fold((0, 0), |(r, c), &(r2, c2)| (r + r2, c + c2));
        if reads >= 10 {
            let t = h * (bin as f64 + 0.5) / BINS as f64;
            points.push((t, consistent as f64 / reads as f64, reads));
        }
    }
    Curve { model: model.name.into(), quorum, method: "simulator".into(), points }
}

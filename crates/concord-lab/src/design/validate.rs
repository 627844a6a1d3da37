//! Validation: the design at a scaled-down size in the simulator.
//!
//! Every shard of a kind is alike (the same replicas in the same places, the same protocol), so
//! one replication group stands for all of them: one simulated node per replica, placed in its
//! region and zone by the scenario's `[topology]` (the simulator's model of zones and regions,
//! `concord_sim::topology`), whose latencies come from the RTT matrix (one way = RTT / 2, within a
//! zone and between zones too, each delay scaled by a factor uniform in [0.9, 1.1]:
//! [`plan::JITTER`]). The workload is the kind's read/write mix on a few hundred Zipf keys at
//! a rate a debug build simulates in seconds; the hardware's throughput is *not* simulated (the
//! simulator has no CPU model), so capacity stays a matter of the designer's arithmetic.
//!
//! For each kind, one run without faults (latency, consistency) and one per failure that applies
//! to the topology, each fault at a quarter of the run and never healed:
//! * **node** – the Raft leader (or one Dynamo replica) crashes;
//! * **zone** / **region** – every replica in the worst zone / region crashes (the simulator's
//!   `crash-zone` / `crash-region` faults);
//! * **partition** – the worst region is cut off from the rest (`partition-region`).
//!
//! Measured: p99 of ok reads and writes (no-fault run); the fraction of requests served once a
//! failover had time to happen ([`Run::served_after_failover`]); the time from the fault to the
//! first request served after it; the checkers' verdicts – linearizability (`concord-check`, every
//! run of a linearizable kind), read-your-writes (session guarantees), PBS t-visibility at the
//! staleness bound (the eventual lab's `read_visibility`).
//!
//! **What the simulator does not show**: its clients stand next to the node they talk to, so for
//! Raft the client's hop to the leader's region is not in the measured latency; the report adds
//! the designer's figure for that hop beside the measurement and says so.

use super::plan::{self, KindDesign, Protocol, Slot};
use super::requirements::{Consistency, Domain, Requirements};
use crate::eventual::pbs::read_visibility;
use concord_check::{guarantees, linearizability, Model, Verdict};
use concord_core::history::{EventType, OpFn};
use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How big and how long the simulations are.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SimSize {
    pub rate_per_s: f64,
    pub keys: u32,
    pub duration_s: f64,
    pub seed: u64,
}

impl SimSize {
    pub fn quick(seed: u64) -> Self {
        SimSize { rate_per_s: 120.0, keys: 50, duration_s: 6.0, seed }
    }
    pub fn full(seed: u64) -> Self {
        SimSize { rate_per_s: 300.0, keys: 200, duration_s: 16.0, seed }
    }
}

/// A failure injected in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    None,
    Node,
    Zone,
    Region,
    Partition,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::None => "no fault",
            Fault::Node => "node",
            Fault::Zone => "zone",
            Fault::Region => "region",
            Fault::Partition => "partition",
        }
    }
}

/// One simulated run and what it measured.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub kind: String,
    pub fault: Fault,
    /// What was hit ("node 1", "zone eu-1: nodes 1, 4", …).
    pub target: String,
    pub scenario_toml: String,
    pub fault_at_s: f64,
    pub ops: usize,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    /// ok / all, for requests invoked from the failover budget (the clients' timeout, Raft's
    /// election, 200 ms) after the fault to the end.
    pub served_after_failover: f64,
    /// ok / all, for requests invoked from the fault to the end.
    pub served_during_fault: f64,
    /// From the fault to the first request invoked after it that was served (ms).
    pub recovery_ms: Option<f64>,
    /// Raft: requests answered "not the leader" (left out of the served fractions).
    pub redirects: usize,
    /// "linearizable", "NOT linearizable", "unknown", or "–" (not checked).
    pub linearizable: String,
    pub ryw_violations: Option<usize>,
    /// Eventual: reads at least the staleness bound after the write they should see, and how many
    /// of them were consistent.
    pub reads_past_bound: Option<(usize, usize)>,
    /// Every read judged, and the consistent ones (t-visibility at any t).
    pub reads_judged: Option<(usize, usize)>,
    /// Latency of every ok op (for plots): (invoke s, ms, is_write).
    #[serde(skip)]
    pub samples: Vec<(f64, f64, bool)>,
    /// Every request (redirects left out): (invoked at, s; served?).
    #[serde(skip)]
    pub outcomes: Vec<(f64, bool)>,
    /// Eventual: every judged read, (ms since the write it should see, consistent?).
    #[serde(skip)]
    pub visibility: Vec<(f64, bool)>,
    pub violations: Vec<String>,
}

/// The duration `ms` as a scenario string in microseconds.
fn us(ms: f64) -> String {
    format!("{}us", (ms * 1e3).round().max(0.0) as u64)
}

fn uniform(one_way_ms: f64) -> String {
    format!(r#"{{ dist = "uniform", min = "{}", max = "{}" }}"#, us(one_way_ms * 0.9), us(one_way_ms * 1.1))
}

/// A constant one-way delay (the topology's `jitter` spreads it).
fn constant(one_way_ms: f64) -> String {
    format!(r#"{{ dist = "constant", value = "{}" }}"#, us(one_way_ms))
}

/// The name of zone `z` (0-based) of region `r`: the simulator's default, `REGION-1`, … – the
/// names the report uses too.
fn zone_name(req: &Requirements, r: usize, z: u32) -> String {
    format!("{}-{}", req.regions[r].name, z + 1)
}

/// The scenario's `[topology]`: every region of the requirements with its zones, each replica
/// (node `i + 1` is `placement[i]`) in its zone, and the RTT matrix halved as one-way latencies.
fn topology_text(req: &Requirements, placement: &[Slot]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n[topology]");
    let _ = writeln!(s, "zone_latency = {}", constant(req.network.local_rtt_ms / 2.0));
    let _ = writeln!(s, "cross_zone_latency = {}", constant(req.network.zone_rtt_ms / 2.0));
    let _ = writeln!(s, "jitter = {:.6}", plan::JITTER - 1.0);
    for (r, region) in req.regions.iter().enumerate() {
        let lists: Vec<String> = (0..region.zones)
            .map(|z| {
                let ids: Vec<String> = placement
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| slot.region == r && slot.zone == z)
                    .map(|(i, _)| (i + 1).to_string())
                    .collect();
                format!("[{}]", ids.join(", "))
            })
            .collect();
        let _ = writeln!(
            s,
            "[[topology.region]]\nname = {:?}\nzones = {}\nnodes = [{}]",
            region.name,
            region.zones,
            lists.join(", ")
        );
    }
    if req.regions.len() > 1 {
        let _ = writeln!(s, "[topology.region_latency]");
        for a in 0..req.regions.len() {
            for b in a + 1..req.regions.len() {
                let (x, y) = (&req.regions[a].name, &req.regions[b].name);
                let _ = writeln!(s, "{x:?}.{y:?} = {}", constant(req.region_rtt_ms(a, b) / 2.0));
            }
        }
    }
    s
}

/// The zone or region a fault hits, named as in the scenario's `[topology]` (the worst one, as
/// [`fault_nodes`] picks it).
fn fault_place(req: &Requirements, placement: &[Slot], fault: &Fault) -> Option<String> {
    let (hit, _) = fault_nodes(req, placement, fault);
    let first = placement[*hit.first()? as usize - 1];
    match fault {
        Fault::Zone => Some(zone_name(req, first.region, first.zone)),
        Fault::Region | Fault::Partition => Some(req.regions[first.region].name.clone()),
        Fault::None | Fault::Node => None,
    }
}

/// The nodes (1-based) hit by each fault.
pub fn fault_nodes(req: &Requirements, placement: &[Slot], fault: &Fault) -> (Vec<u32>, String) {
    let nodes_where = |f: &dyn Fn(&Slot) -> bool| -> Vec<u32> {
        placement.iter().enumerate().filter(|(_, s)| f(s)).map(|(i, _)| i as u32 + 1).collect()
    };
    let list = |v: &[u32]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
    match fault {
        Fault::None => (Vec::new(), "–".into()),
        Fault::Node => (vec![1], "node 1".into()),
        Fault::Zone => {
            let mut best: Option<(usize, u32, Vec<u32>)> = None;
            let mut zones: Vec<Slot> = placement.to_vec();
            zones.sort_by_key(|s| (s.region, s.zone));
            for s in &zones {
                let v = nodes_where(&|t: &Slot| t.region == s.region && t.zone == s.zone);
                if best.as_ref().is_none_or(|b| v.len() > b.2.len()) {
                    best = Some((s.region, s.zone, v));
                }
            }
            let (r, z, v) = best.expect("replicas");
            let what = format!("zone {}-{} (nodes {})", req.regions[r].name, z + 1, list(&v));
            (v, what)
        }
        Fault::Region | Fault::Partition => {
            let mut best: Option<(usize, Vec<u32>)> = None;
            for r in 0..req.regions.len() {
                let v = nodes_where(&|t: &Slot| t.region == r);
                if best.as_ref().is_none_or(|b| v.len() > b.1.len()) {
                    best = Some((r, v));
                }
            }
            let (r, v) = best.expect("regions");
            let verb = if *fault == Fault::Region { "lost" } else { "cut off" };
            let what = format!("region {} {verb} (nodes {})", req.regions[r].name, list(&v));
            (v, what)
        }
    }
}

/// Think time of a simulated client between an answer and its next request.
pub const THINK_S: f64 = 0.05;

/// The smallest share of writes in a simulated workload.
pub const MIN_WRITE_SHARE: f64 = 0.05;

/// The faults that apply to this topology.
pub fn faults(req: &Requirements, kind: &KindDesign) -> Vec<Fault> {
    let mut v = vec![Fault::None, Fault::Node];
    let zones: std::collections::BTreeSet<(usize, u32)> =
        kind.placement.iter().map(|s| (s.region, s.zone)).collect();
    let regions: std::collections::BTreeSet<usize> = kind.placement.iter().map(|s| s.region).collect();
    if zones.len() > 1 {
        v.push(Fault::Zone);
    }
    if regions.len() > 1 || req.regions.len() > 1 {
        v.push(Fault::Region);
        v.push(Fault::Partition);
    }
    v
}

/// How long a simulated client waits before it gives up on a request and tries another node:
/// three times the slower p99 estimate, at least four of the longest round trips and 200 ms. (A
/// crashed node in the simulator never answers, so this is how clients notice it.)
pub fn client_timeout_ms(kind: &KindDesign, max_rtt_ms: f64) -> f64 {
    (3.0 * kind.read_p99_ms.max(kind.write_p99_ms)).max(4.0 * max_rtt_ms).max(200.0)
}

/// The scenario file of one run.
pub fn scenario_text(
    req: &Requirements,
    kind: &KindDesign,
    fault: &Fault,
    size: SimSize,
) -> (String, String, f64) {
    let p = &kind.placement;
    let n = p.len();
    let (heartbeat, emin, emax) = kind.raft_timing_ms;
    let max_rtt = p
        .iter()
        .flat_map(|&a| p.iter().map(move |&b| plan::slot_rtt_ms(req, a, b)))
        .fold(req.network.local_rtt_ms, f64::max);
    // Clients start once a leader can have been elected (two maximal election timeouts), send
    // for `duration_s`, and every request has its timeout to be answered before the end.
    let start_ms = 2.0 * emax + 200.0;
    let stop_ms = start_ms + size.duration_s * 1e3;
    let fault_ms = start_ms + size.duration_s * 1e3 / 4.0;
    let timeout_ms = client_timeout_ms(kind, max_rtt);
    let duration_ms = stop_ms + timeout_ms + 100.0;
    let mut s = String::new();
    let _ = writeln!(s, "description = \"concord design: {}, {}, {}\"", req.name, kind.name, fault.name());
    let _ = writeln!(s, "[run]\nnodes = {n}\nduration = \"{}\"", us(duration_ms));
    let checks = if kind.consistency == Consistency::Linearizable { "[\"invariants\"]" } else { "[]" };
    let _ = writeln!(s, "checks = {checks}");
    // FIFO links, as TCP gives: with ±10 % jitter and no FIFO, a Raft append sent half a
    // millisecond after another overtakes it on a 160 ms link, is rejected, and costs a round trip.
    let _ = writeln!(s, "\n[network]\nfifo = true");
    let _ = writeln!(s, "client_latency = {}", uniform(req.network.local_rtt_ms / 2.0));
    s.push_str(&topology_text(req, p));
    let _ = writeln!(
        s,
        "\n[disk]\nsync_latency = {{ dist = \"constant\", value = \"{}\" }}",
        us(req.hardware.disk_sync_ms)
    );
    // Writes are at least 5 % of the simulated requests, so that their latency and the reads'
    // staleness can be measured even for read-mostly data.
    let write_share = (kind.writes_per_s / (kind.reads_per_s + kind.writes_per_s)).max(MIN_WRITE_SHARE);
    let (mix_r, mix_w) = (1.0 - write_share, write_share);
    // Closed-loop clients, each one request at a time, 50 ms of think time between them; as many
    // as give about `rate_per_s` at the estimated latencies (Little's law again: clients =
    // rate × (latency + think)). A client is also a session (read-your-writes is checked per
    // client), and it notices a dead node by one timeout, then tries another. (Open-loop clients
    // keep sending to a dead node until the first timeout fires, and the late timeouts of those
    // requests send them back to it: a client artefact, not the design's.)
    let mean_s = 0.5 * (kind.read_p99_ms + kind.write_p99_ms) / plan::JITTER / 1e3;
    let clients = ((size.rate_per_s * (mean_s + THINK_S)).ceil() as u32).clamp(4, 400);
    let _ = writeln!(s, "\n[workload]");
    let _ = writeln!(s, "clients = {clients}\nmode = \"closed\"\nthink = \"{}\"", us(THINK_S * 1e3));
    let _ = writeln!(s, "keys = {}", size.keys);
    if req.load.zipf_s > 0.0 {
        let _ = writeln!(s, "key_distribution = \"zipfian\"\nzipf_theta = {}", req.load.zipf_s);
    }
    let _ = writeln!(
        s,
        "mix = {{ read = {:.6}, write = {:.6} }}\ntimeout = \"{}\"\nstart = \"{}\"\nstop = \"{}\"",
        mix_r / (mix_r + mix_w),
        mix_w / (mix_r + mix_w),
        us(timeout_ms),
        us(start_ms),
        us(stop_ms)
    );
    let (hit, what) = fault_nodes(req, p, fault);
    // The faults by topology: the whole zone or region at once, by the name the topology gives it.
    let at = us(fault_ms);
    match (fault, fault_place(req, p, fault)) {
        (Fault::None, _) => {}
        (Fault::Node, _) => {
            let target = if matches!(kind.protocol, Protocol::Raft { .. }) {
                "\"leader\"".to_string()
            } else {
                hit[0].to_string()
            };
            let _ = writeln!(s, "\n[[nemesis.schedule]]\nat = \"{at}\"\naction = \"crash\"\nnode = {target}");
        }
        (Fault::Zone, Some(zone)) => {
            let _ = writeln!(
                s,
                "\n[[nemesis.schedule]]\nat = \"{at}\"\naction = \"crash-zone\"\nzone = {zone:?}"
            );
        }
        (Fault::Region, Some(region)) => {
            let _ = writeln!(
                s,
                "\n[[nemesis.schedule]]\nat = \"{at}\"\naction = \"crash-region\"\nregion = {region:?}"
            );
        }
        (Fault::Partition, Some(region)) => {
            let _ = writeln!(
                s,
                "\n[[nemesis.schedule]]\nat = \"{at}\"\naction = \"partition-region\"\nregion = {region:?}"
            );
        }
        (Fault::Zone | Fault::Region | Fault::Partition, None) => {} // no replica to hit
    }
    let what = if *fault == Fault::Node && matches!(kind.protocol, Protocol::Raft { .. }) {
        "the leader".to_string()
    } else {
        what
    };
    match kind.protocol {
        Protocol::Raft { .. } => {
            let _ = writeln!(
                s,
                "\n[protocol.raft]\nelection_timeout_min = \"{}\"\nelection_timeout_max = \"{}\"\nheartbeat_interval = \"{}\"\npre_vote = true\ncheck_quorum = true\nreads = \"linearizable\"",
                us(emin),
                us(emax),
                us(heartbeat)
            );
        }
        Protocol::Dynamo { r, w } => {
            let probe = (1.5 * max_rtt + 20.0).max(60.0);
            let _ = writeln!(
                s,
                "\n[protocol.dynamo]\nn = {n}\nr = {r}\nw = {w}\nresolution = \"lww\"\nread_repair = true\nanti_entropy = true\nhinted_handoff = false\nrequest_timeout = \"{}\"\nreplica_timeout = \"{}\"\nswim = {{ period = \"{}\", probe_timeout = \"{}\", indirect_probes = 2, suspicion_timeout = \"{}\", piggyback = 6 }}",
                us((4.0 * max_rtt + 400.0).min(timeout_ms - 1.0)),
                us(2.0 * max_rtt + 100.0),
                us((3.0 * probe).max(200.0)),
                us(probe),
                us((10.0 * probe).max(1000.0)),
            );
        }
    }
    (s, what, fault_ms / 1e3)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Run one scenario and measure it.
pub fn run(req: &Requirements, kind: &KindDesign, fault: Fault, size: SimSize) -> anyhow::Result<Run> {
    let (text, target, fault_at_s) = scenario_text(req, kind, &fault, size);
    let scenario =
        LoadedScenario::parse(Path::new("design.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = scenario.run(RunOptions { seed: size.seed, ..Default::default() });
    let history = &report.history;
    let fault_ns = (fault_at_s * 1e9) as u64;
    // Failover: the clients' timeout (to notice a dead node), Raft's election, and a margin.
    let max_rtt = kind
        .placement
        .iter()
        .flat_map(|&a| kind.placement.iter().map(move |&b| plan::slot_rtt_ms(req, a, b)))
        .fold(req.network.local_rtt_ms, f64::max);
    let election = match kind.protocol {
        Protocol::Raft { .. } => kind.failover_ms,
        Protocol::Dynamo { .. } => 0.0,
    };
    let budget_ns = ((client_timeout_ms(kind, max_rtt) + election + 200.0) * 1e6) as u64;
    // Pair invocations with completions.
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut samples = Vec::new();
    let (mut after, mut after_ok, mut during, mut during_ok) = (0usize, 0usize, 0usize, 0usize);
    let mut first_ok_after: Option<u64> = None;
    let mut ops = 0;
    let mut redirects = 0;
    let mut outcomes = Vec::new();
    let mut pending_at_end = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, i);
            pending_at_end.insert(e.process, e.time.0);
            continue;
        }
        let Some(inv) = open.remove(&e.process) else { continue };
        pending_at_end.remove(&e.process);
        let t0 = history.events[inv].time.0;
        ops += 1;
        // Raft answers a request at a follower that cannot serve it with "not the leader, try
        // node N" – recorded by the simulated client as `fail`. A real client follows the
        // redirect (one more hop), so these are neither served nor lost requests: left out.
        if e.kind == EventType::Fail && matches!(kind.protocol, Protocol::Raft { .. }) {
            redirects += 1;
            continue;
        }
        let ok = e.kind == EventType::Ok;
        outcomes.push((t0 as f64 / 1e9, ok));
        if ok {
            let is_write = matches!(history.events[inv].op.f, OpFn::Write | OpFn::Cas);
            samples.push((t0 as f64 / 1e9, (e.time.0 - t0) as f64 / 1e6, is_write));
        }
        if fault != Fault::None && t0 >= fault_ns {
            during += 1;
            during_ok += usize::from(ok);
            if ok && first_ok_after.is_none_or(|t| e.time.0 < t) {
                first_ok_after = Some(e.time.0);
            }
            if t0 >= fault_ns + budget_ns {
                after += 1;
                after_ok += usize::from(ok);
            }
        }
    }
    // Requests never answered count as not served.
    for &t0 in pending_at_end.values() {
        outcomes.push((t0 as f64 / 1e9, false));
        if fault != Fault::None && t0 >= fault_ns {
            during += 1;
            if t0 >= fault_ns + budget_ns {
                after += 1;
            }
        }
    }
    let mut reads: Vec<f64> = samples.iter().filter(|s| !s.2).map(|s| s.1).collect();
    let mut writes: Vec<f64> = samples.iter().filter(|s| s.2).map(|s| s.1).collect();
    let linearizable = if kind.consistency == Consistency::Linearizable {
        match linearizability::check(history, Model::Kv, Duration::from_secs(20)) {
            Verdict::Linearizable => "linearizable".to_string(),
            Verdict::NotLinearizable(_) => "NOT linearizable".to_string(),
            _ => "unknown (checker timed out)".to_string(),
        }
    } else {
        "–".to_string()
    };
    let ryw_violations = (kind.consistency == Consistency::ReadYourWrites)
        .then(|| guarantees::check(history).count(guarantees::Guarantee::ReadYourWrites));
    let vis = if kind.consistency == Consistency::Eventual { read_visibility(history) } else { Vec::new() };
    let (reads_past_bound, reads_judged) = if kind.consistency == Consistency::Eventual {
        let bound =
            req.kinds.iter().find(|k| k.name == kind.name).and_then(|k| k.staleness_ms).unwrap_or(0.0);
        let past: Vec<&(f64, bool)> = vis.iter().filter(|(t, _)| *t >= bound).collect();
        (
            Some((past.len(), past.iter().filter(|(_, ok)| *ok).count())),
            Some((vis.len(), vis.iter().filter(|(_, ok)| *ok).count())),
        )
    } else {
        (None, None)
    };
    let frac = |ok: usize, all: usize| if all == 0 { f64::NAN } else { ok as f64 / all as f64 };
    Ok(Run {
        kind: kind.name.clone(),
        fault,
        target,
        scenario_toml: text,
        fault_at_s,
        ops,
        read_p50_ms: percentile(&mut reads, 0.5),
        read_p99_ms: percentile(&mut reads, 0.99),
        write_p50_ms: percentile(&mut writes, 0.5),
        write_p99_ms: percentile(&mut writes, 0.99),
        served_after_failover: frac(after_ok, after),
        served_during_fault: frac(during_ok, during),
        recovery_ms: first_ok_after.map(|t| (t.saturating_sub(fault_ns)) as f64 / 1e6),
        redirects,
        linearizable,
        ryw_violations,
        reads_past_bound,
        reads_judged,
        samples,
        visibility: vis,
        outcomes,
        violations: report.violations,
    })
}

/// A failure is survived if at least this fraction of requests is served once failover is over.
pub const SERVED_TO_SURVIVE: f64 = 0.99;

/// Whether a domain was required to be survived.
pub fn required(req: &Requirements, fault: &Fault) -> bool {
    let d = req.availability.survive;
    match fault {
        Fault::None => true,
        Fault::Node => true,
        Fault::Zone => d >= Domain::Zone,
        Fault::Region | Fault::Partition => d >= Domain::Region,
    }
}

//! Part 5 – a similar workload on Raft, for comparison.
//!
//! Five nodes, a workload like part 4's (8 clients, 3 keys, 40 % writes), and a partition from 2 s
//! to 4 s that cuts two nodes off from the other three. For Raft the two are the leader of the
//! moment and the next node – the hard case, where every client is talking to a leader that is
//! about to lose its majority; for Dynamo they are nodes 1 and 2. Measured per system: latency
//! percentiles of successful reads and writes; availability during the partition – of the
//! requests *sent to* a node on each side, the fraction answered `ok` (simulated clients are never
//! cut off from nodes; the partition is between servers, so a client may move across it after a
//! timeout or a redirect); and anomalies: the linearizability verdict
//! (`concord_check::linearizability`) and the stale reads ([`super::stale`]).
//!
//! Which node a request went to is not in the client history, so the run's trace is recorded
//! in memory and its `invoke` / `complete` lines are read back.

use concord_check::{linearizability, Model, Verdict};
use concord_core::history::{EventType, History, OpFn};
use concord_core::{NodeId, Time};
use concord_sim::protocols::raft::RaftKv;
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct System {
    pub name: &'static str,
    /// The `[protocol.…]` table.
    pub protocol: &'static str,
}

pub const SYSTEMS: [System; 3] = [
    System {
        name: "Raft (linearizable reads)",
        protocol: "[protocol.raft]\nelection_timeout_min = \"150ms\"\nelection_timeout_max = \"300ms\"\nheartbeat_interval = \"50ms\"\nreads = \"linearizable\"\n",
    },
    System { name: "Dynamo R=2 W=2", protocol: "[protocol.dynamo]\nn = 3\nr = 2\nw = 2\n" },
    System { name: "Dynamo R=1 W=1", protocol: "[protocol.dynamo]\nn = 3\nr = 1\nw = 1\n" },
];

pub const PARTITION_MS: (u64, u64) = (2000, 4000);

/// Raw samples of one run (several seeds are pooled by the caller).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    pub read_latency_ms: Vec<f64>,
    pub write_latency_ms: Vec<f64>,
    /// During the partition: (requests sent, answered ok) to the minority and majority side.
    pub minority: (usize, usize),
    pub majority: (usize, usize),
    pub reads: usize,
    pub stale_reads: usize,
    /// "linearizable", "NOT linearizable" or "unknown".
    pub linearizable: String,
}

fn scenario_text(system: &System) -> String {
    format!(
        r#"
description = "eventual lab, comparison: {name}"
[run]
nodes = 5
duration = "7s"
[network]
latency = {{ dist = "lognormal", median = "1ms", sigma = 1.0 }}
[workload]
clients = 8
think = "2ms"
keys = 3
mix = {{ write = 0.4, read = 0.6 }}
timeout = "500ms"
stop = "6s"
{protocol}"#,
        name = system.name,
        protocol = system.protocol,
    )
}

/// A trace writer the caller can read afterwards.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run with the partition `minority(sim)` | the rest during [`PARTITION_MS`]; returns the history,
/// the trace and the minority.
fn run_protocol<P: SimProtocol>(
    text: &str,
    seed: u64,
    minority: fn(&Simulation<P>) -> [u32; 2],
) -> anyhow::Result<(History, Vec<u8>, [u32; 2])> {
    let scenario: Scenario<P::Config> =
        Scenario::parse(Path::new("compare.toml"), text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let end = Time::from_duration(scenario.run.duration);
    let buffer = SharedBuffer::default();
    let options = RunOptions { seed, trace: Some(Box::new(buffer.clone())), ..Default::default() };
    let mut sim = Simulation::<P>::new(Arc::new(scenario), options);
    sim.start();
    sim.run_until(Time::from_duration(Duration::from_millis(PARTITION_MS.0)));
    let cut = minority(&sim);
    let rest: Vec<u32> = (1..=5).filter(|n| !cut.contains(n)).collect();
    sim.partition(&[cut.to_vec(), rest]);
    sim.run_until(Time::from_duration(Duration::from_millis(PARTITION_MS.1)));
    sim.heal();
    sim.run_until(end);
    let history = sim.history().clone();
    drop(sim); // flushes the trace
    let bytes = std::mem::take(&mut *buffer.0.lock().expect("not poisoned"));
    Ok((history, bytes, cut))
}

/// The Raft leader of the moment (node 1 if there is none) and the next node.
fn leader_side(sim: &Simulation<RaftKv>) -> [u32; 2] {
    let leader = (1..=5).find(|&n| sim.node(NodeId(n)).is_some_and(|p| p.is_leader())).unwrap_or(1);
    [leader, leader % 5 + 1]
}

fn first_two<P: SimProtocol>(_: &Simulation<P>) -> [u32; 2] {
    [1, 2]
}

pub fn run(system: &System, seed: u64) -> anyhow::Result<Sample> {
    let text = scenario_text(system);
    let (history, trace, minority) = if system.protocol.starts_with("[protocol.raft]") {
        run_protocol::<RaftKv>(&text, seed, leader_side)?
    } else {
        run_protocol::<concord_dynamo::DynamoNode>(&text, seed, first_two)?
    };
    let mut sample = Sample::default();
    // Latencies of ok operations.
    let mut invoked: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &history.events {
        match e.kind {
            EventType::Invoke => {
                invoked.insert(e.process, e.time.0);
            }
            EventType::Ok => {
                if let Some(t0) = invoked.remove(&e.process) {
                    let ms = (e.time.0 - t0) as f64 / 1e6;
                    match e.op.f {
                        OpFn::Read => sample.read_latency_ms.push(ms),
                        _ => sample.write_latency_ms.push(ms),
                    }
                }
            }
            _ => {
                invoked.remove(&e.process);
            }
        }
    }
    // Availability by side, from the trace.
    let (from, to) = (PARTITION_MS.0 * 1_000_000, PARTITION_MS.1 * 1_000_000);
    let mut sent: BTreeMap<String, u32> = BTreeMap::new();
    for line in trace.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // Only the two kinds of lines needed are parsed.
        if !(contains(line, b"\"invoke\"") || contains(line, b"\"complete\"")) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)?;
        let request = v["request"].as_str().unwrap_or_default().to_string();
        match v["ev"].as_str() {
            Some("invoke") => {
                let t = v["t"].as_u64().unwrap_or(0);
                if (from..to).contains(&t) {
                    sent.insert(request, v["node"].as_u64().unwrap_or(0) as u32);
                }
            }
            Some("complete") => {
                if let Some(node) = sent.remove(&request) {
                    let ok = v["type"].as_str() == Some("ok");
                    let side =
                        if minority.contains(&node) { &mut sample.minority } else { &mut sample.majority };
                    side.0 += 1;
                    side.1 += usize::from(ok);
                }
            }
            _ => {}
        }
    }
    // Requests still without an answer at the end count as not served.
    for node in sent.into_values() {
        let side = if minority.contains(&node) { &mut sample.minority } else { &mut sample.majority };
        side.0 += 1;
    }
    (sample.stale_reads, sample.reads) = super::stale::stale_reads(&history);
    sample.linearizable = match linearizability::check(&history, Model::Kv, Duration::from_secs(20)) {
        Verdict::Linearizable => "linearizable".into(),
        Verdict::NotLinearizable(_) => "NOT linearizable".into(),
        _ => "unknown".into(),
    };
    Ok(sample)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

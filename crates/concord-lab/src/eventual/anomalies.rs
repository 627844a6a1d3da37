//! Part 4 – anomalies, counted by the checkers, and what removes them.
//!
//! The same closed-loop workload (10 clients, 2 keys, 40 % writes, no faults; node clocks up to
//! 10 ms apart, as NTP keeps them – only last-write-wins looks at clocks) runs against several
//! Dynamo configurations; the client history and the replicas are judged by:
//!
//! * **stale reads** – [`super::stale`]: a read that missed a write acknowledged before it started
//!   and newer, in real time, than everything it returned (for counters: a read below the sum of
//!   increments acknowledged before it started);
//! * **read-your-writes / monotonic-read violations** – `concord_check::guarantees` (a session is a
//!   client process);
//! * **reads with siblings** – a read that returned several concurrent values (DVV keeps both
//!   writes; the application must merge them);
//! * **lost updates** – acknowledged writes that, after the run quiesced, no replica holds and no
//!   replica has seen overwritten by a write that saw them (the simulator's `AckLedger`); for
//!   counters, acknowledged increments missing from the converged value.

use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::NodeId;
use concord_dynamo::store::Object;
use concord_dynamo::DynamoNode;
use concord_sim::protocols::dynamo::AckLedger;
use concord_sim::{RunOptions, Scenario, Simulation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The workload of every row: closed-loop clients, keys, and the share of writes.
pub const CLIENTS: usize = 10;
pub const KEYS: usize = 2;
pub const WRITE_SHARE: f64 = 0.4;

/// One configuration of the experiment.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Setup {
    pub name: &'static str,
    pub nodes: u32,
    pub r: usize,
    pub w: usize,
    pub resolution: &'static str,
    /// Clients increment PN-counters instead of writing registers.
    pub counters: bool,
}

pub const SETUPS: [Setup; 6] = [
    Setup { name: "R=1 W=1, DVV", nodes: 5, r: 1, w: 1, resolution: "dvv", counters: false },
    Setup { name: "R=1 W=1, LWW", nodes: 5, r: 1, w: 1, resolution: "lww", counters: false },
    Setup { name: "R=2 W=2, DVV", nodes: 5, r: 2, w: 2, resolution: "dvv", counters: false },
    Setup { name: "R=2 W=2, LWW", nodes: 5, r: 2, w: 2, resolution: "lww", counters: false },
    Setup { name: "R=1 W=1, DVV, sticky session", nodes: 3, r: 1, w: 1, resolution: "dvv", counters: false },
    Setup { name: "R=1 W=1, PN-counter", nodes: 5, r: 1, w: 1, resolution: "dvv", counters: true },
];

/// What the checkers counted in one run (summed over seeds by [`Counts::add`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub reads: usize,
    pub stale_reads: usize,
    pub read_your_writes: usize,
    pub monotonic_reads: usize,
    pub reads_with_siblings: usize,
    pub writes_acked: usize,
    pub lost_updates: usize,
    pub violations: Vec<String>,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.reads += other.reads;
        self.stale_reads += other.stale_reads;
        self.read_your_writes += other.read_your_writes;
        self.monotonic_reads += other.monotonic_reads;
        self.reads_with_siblings += other.reads_with_siblings;
        self.writes_acked += other.writes_acked;
        self.lost_updates += other.lost_updates;
        self.violations.extend(other.violations.iter().cloned());
    }
}

fn scenario_text(setup: &Setup) -> String {
    let (w, r) = (WRITE_SHARE, 1.0 - WRITE_SHARE);
    let mix = if setup.counters {
        format!("{{ incr = {w}, read = {r} }}")
    } else {
        format!("{{ write = {w}, read = {r} }}")
    };
    format!(
        r#"
description = "eventual lab, anomalies: {name}"
[run]
nodes = {nodes}
duration = "7s"
[network]
latency = {{ dist = "lognormal", median = "1ms", sigma = 1.2 }}
[clock]
max_offset = "10ms"
[workload]
clients = {CLIENTS}
think = "1ms"
keys = {KEYS}
mix = {mix}
timeout = "1s"
stop = "4s"
[protocol.dynamo]
n = 3
r = {r}
w = {w}
resolution = "{res}"
"#,
        name = setup.name,
        nodes = setup.nodes,
        r = setup.r,
        w = setup.w,
        res = setup.resolution,
    )
}

pub fn run(setup: &Setup, seed: u64) -> anyhow::Result<Counts> {
    let scenario: Scenario<concord_dynamo::DynamoConfig> =
        Scenario::parse(Path::new("anomalies.toml"), &scenario_text(setup))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sim =
        Simulation::<DynamoNode>::new(Arc::new(scenario), RunOptions { seed, ..Default::default() });
    let mut ledger = AckLedger::default();
    sim.start();
    while sim.step() {
        ledger.collect(&sim.nodes()).map_err(|e| anyhow::anyhow!(e))?;
    }
    let history = sim.history();
    let mut counts = Counts::default();
    let guarantees = concord_check::guarantees::check(history);
    counts.read_your_writes = guarantees.count(concord_check::guarantees::Guarantee::ReadYourWrites);
    counts.monotonic_reads = guarantees.count(concord_check::guarantees::Guarantee::MonotonicReads);
    for e in &history.events {
        if e.kind == EventType::Ok && e.op.f == OpFn::Read {
            counts.reads += 1;
            if matches!(e.op.value, Value::List(_)) {
                counts.reads_with_siblings += 1;
            }
        }
    }
    if setup.counters {
        let (stale, acked, lost) = counter_anomalies(history, &sim.nodes());
        counts.stale_reads = stale;
        counts.writes_acked = acked;
        counts.lost_updates = lost;
    } else {
        counts.stale_reads = super::stale::stale_reads(history).0;
        ledger.acknowledge_from(history);
        counts.writes_acked = ledger.acknowledged();
        counts.lost_updates = ledger.lost(&sim.nodes()).len();
    }
    Ok(counts)
}

/// Counters: (stale reads, acknowledged increments, increments missing from the converged value).
fn counter_anomalies(history: &History, nodes: &[(NodeId, Option<&DynamoNode>)]) -> (usize, usize, usize) {
    let mut open: BTreeMap<u64, (String, usize)> = BTreeMap::new(); // process → (key, acked-before)
    let mut acked: BTreeMap<String, usize> = BTreeMap::new();
    let mut stale = 0;
    for e in &history.events {
        let Some(key) = e.op.key.clone() else { continue };
        match e.kind {
            EventType::Invoke => {
                let before = acked.get(&key).copied().unwrap_or(0);
                open.insert(e.process, (key, before));
            }
            EventType::Ok => {
                let Some((key, before)) = open.remove(&e.process) else { continue };
                match e.op.f {
                    OpFn::Add => *acked.entry(key).or_insert(0) += 1,
                    OpFn::Read => {
                        let value = e.op.value.as_int().unwrap_or(0).max(0) as usize;
                        if value < before {
                            stale += 1;
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                open.remove(&e.process);
            }
        }
    }
    let total: usize = acked.values().sum();
    let mut lost = 0;
    for (key, &n) in &acked {
        // The converged value: the largest any replica holds (they agree once converged).
        let value = nodes
            .iter()
            .filter_map(|(_, node)| match (*node)?.store().get(key) {
                Some(Object::Counter(c)) => Some(c.value()),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        lost += n.saturating_sub(value);
    }
    (stale, total, lost)
}

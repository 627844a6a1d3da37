//! How fast the simulator runs Raft replicating the key-value store: committed client operations
//! per wall-clock second, and simulated (virtual) time per wall-clock second, for 5 nodes and 64
//! closed-loop clients on a LAN-like network without faults.
//!
//! Run: `cargo bench -p concord-sim --bench raft`. The lines printed first give, for single runs,
//! the committed operations, events, virtual time and wall time; criterion then reports the time per
//! run and the throughput in committed operations (elements) per second. Two variants: without
//! checks (the simulator and the protocol alone) and with the online invariants and the
//! linearizability check of the history (what a sweep pays).

use concord_sim::protocols::raft::{RaftKv, RaftScenario};
use concord_sim::{RunOptions, Scenario, Simulation};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;

fn scenario(checks: &str) -> Arc<Scenario<RaftScenario>> {
    let text = format!(
        r#"
description = "Raft, 5 nodes, 64 closed-loop clients, no faults"
[run]
nodes = 5
duration = "10s"
checks = [{checks}]

[network]
latency = {{ dist = "uniform", min = "500us", max = "2ms" }}

[disk]
sync_latency = {{ dist = "uniform", min = "100us", max = "1ms" }}

[workload]
clients = 64
keys = 64
mix = {{ read = 0.5, write = 0.4, cas = 0.1 }}
timeout = "1s"

[protocol.raft]
"#
    );
    Arc::new(Scenario::parse(Path::new("raft-64.toml"), &text).expect("the bench scenario parses"))
}

fn raft_64_clients(c: &mut Criterion) {
    for (name, checks) in [
        ("raft-5-nodes-64-clients", ""),
        ("raft-5-nodes-64-clients-checked", r#""invariants", "linearizability""#),
    ] {
        let scenario = scenario(checks);
        let run = || {
            Simulation::<RaftKv>::new(Arc::clone(&scenario), RunOptions { seed: 1, ..Default::default() })
                .run()
        };
        let probe = run();
        assert!(probe.passed(), "{name}: {:?}", probe.violations);
        let s = &probe.summary;
        let wall = s.wall_time.as_secs_f64();
        println!(
            "{name}: {} ops ok ({} invoked), {} events, {:.1} s virtual in {:.3} s wall: \
             {:.0} committed ops/s, {:.0} events/s, {:.1}x real time",
            s.ops.ok,
            s.ops.invoked,
            s.events,
            s.virtual_time.as_secs_f64(),
            wall,
            s.ops.ok as f64 / wall,
            s.events as f64 / wall,
            s.virtual_time.as_secs_f64() / wall,
        );
        let mut group = c.benchmark_group("raft");
        group.sample_size(10);
        group.throughput(Throughput::Elements(s.ops.ok));
        group.bench_function(name, |b| b.iter(run));
        group.finish();
    }
}

criterion_group!(benches, raft_64_clients);
criterion_main!(benches);

//! How fast the simulator runs: simulated events per wall-clock second, and how many times faster
//! than real time, for a 25-node gossip cluster (`bench/gossip-25.toml`).
//!
//! Run: `cargo bench -p concord-sim --bench simulator`. Criterion reports the time per run and the
//! throughput in events (elements) per second; the lines printed first give the event count and the
//! virtual-to-wall ratio of single runs.

use concord_sim::protocols::LoadedScenario;
use concord_sim::RunOptions;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn scenario(name: &str) -> LoadedScenario {
    LoadedScenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench").join(name)).unwrap()
}

fn gossip_25(c: &mut Criterion) {
    for name in ["gossip-25.toml", "gossip-25-quiet.toml"] {
        let scenario = scenario(name);
        let probe = scenario.run(RunOptions { seed: 1, ..Default::default() });
        assert!(probe.passed(), "{name}: {:?}", probe.violations);
        println!("{name}: {}", probe.summary.speed());
        let mut group = c.benchmark_group("simulator");
        group.sample_size(10);
        group.throughput(Throughput::Elements(probe.summary.events));
        group.bench_function(name.trim_end_matches(".toml"), |b| {
            b.iter(|| scenario.run(RunOptions { seed: 1, ..Default::default() }))
        });
        group.finish();
    }
}

criterion_group!(benches, gossip_25);
criterion_main!(benches);

//! The speed targets of the linearizability checker, on histories generated from fixed seeds.
//!
//! Run: `cargo bench -p concord-check --bench check`
//! (results are recorded in `docs/bench/check.md`).
//!
//! * `kv_5_clients_10000_ops_100_keys` – target under 100 ms: 5 clients, 10 000 read/write/cas
//!   operations over 100 keys, values from 0..10, 1% unknown outcomes.
//! * `register_5_clients_1000_ops_cas` – target under 1 s: one register, 5 clients, 1 000
//!   operations of which 20% CAS, values from 0..5, 2% unknown outcomes.
//! * `register_5_clients_1000_ops_cas_fresh_values` – the same with every write a fresh value (no
//!   two states alike, so memoisation helps least).
//! * `..._not_linearizable` – the same histories with one read corrupted: the checker must explore
//!   until it has proved no order exists.

use concord_check::gen;
use concord_check::{linearizability, Model};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let timeout = Duration::from_secs(60);
    let mut group = c.benchmark_group("linearizability");
    group.sample_size(20);

    let (kv_config, kv_corrupt) = gen::bench_kv();
    let kv = gen::history(&kv_config);
    assert!(linearizability::check(&kv, Model::Kv, timeout).is_linearizable());
    group.bench_function("kv_5_clients_10000_ops_100_keys", |b| {
        b.iter(|| linearizability::check(black_box(&kv), Model::Kv, timeout))
    });
    let mut kv_bad = kv.clone();
    gen::corrupt_read_never_written(&mut kv_bad, kv_corrupt).expect("the history has reads");
    assert!(linearizability::check(&kv_bad, Model::Kv, timeout).is_not_linearizable());
    group.bench_function("kv_5_clients_10000_ops_100_keys_not_linearizable", |b| {
        b.iter(|| linearizability::check(black_box(&kv_bad), Model::Kv, timeout))
    });

    for (name, values) in
        [("register_5_clients_1000_ops_cas", 5), ("register_5_clients_1000_ops_cas_fresh_values", 0)]
    {
        let (config, corrupt) = gen::bench_register(values);
        let register = gen::history(&config);
        assert!(linearizability::check(&register, Model::Register, timeout).is_linearizable());
        group.bench_function(name, |b| {
            b.iter(|| linearizability::check(black_box(&register), Model::Register, timeout))
        });
        let mut bad = register.clone();
        gen::corrupt_read_never_written(&mut bad, corrupt).expect("the history has reads");
        assert!(linearizability::check(&bad, Model::Register, timeout).is_not_linearizable());
        group.bench_function(format!("{name}_not_linearizable"), |b| {
            b.iter(|| linearizability::check(black_box(&bad), Model::Register, timeout))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

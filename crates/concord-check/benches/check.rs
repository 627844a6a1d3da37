//! The speed targets of the linearizability checker, on histories generated from fixed seeds.
//!
//! Run: `cargo bench -p concord-check --bench check`
//! (results are recorded in `BENCHMARKS.md` and `docs/bench/check.md`; one case:
//! `cargo bench -p concord-check --bench check -- kv_hard`).
//!
//! * `kv_5_clients_10000_ops_100_keys` – target under 100 ms: 5 clients, 10 000 read/write/cas
//!   operations over 100 keys, values from 0..10, 1% unknown outcomes.
//! * `register_5_clients_1000_ops_cas` – target under 1 s: one register, 5 clients, 1 000
//!   operations of which 20% CAS, values from 0..5, 2% unknown outcomes.
//! * `register_5_clients_1000_ops_cas_fresh_values` – the same with every write a fresh value (no
//!   two states alike, so memoisation helps least).
//! * `..._not_linearizable` – the same histories with one read corrupted: the checker must explore
//!   until it has proved no order exists.
//! * `kv_hard_12_clients_12000_ops_6pct_info` – the shape of the Raft runs that used to end
//!   undecided (issue 24, `scenarios/raft-hard.toml`): 12 clients, 10 keys, fresh values, 6 % unknown
//!   outcomes (see `gen::bench_hard`); target: decided, well under 5 s. Before the just-in-time
//!   handling of unknown operations it was undecided at 60 s.
//! * `raft_hard_seed33_k1` – one key of a real raft-hard run (`tests/data/`), undecided at 60 s
//!   before.
//! * `kv_hard_…_jobs_2` – the hard history with two threads.

use concord_check::gen;
use concord_check::{formats, linearizability, Model};
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

    let (hard_config, hard_corrupt) = gen::bench_hard(12_000, 6);
    let hard = gen::history(&hard_config);
    assert!(linearizability::check(&hard, Model::Kv, timeout).is_linearizable());
    group.bench_function("kv_hard_12_clients_12000_ops_6pct_info", |b| {
        b.iter(|| linearizability::check(black_box(&hard), Model::Kv, timeout))
    });
    let two_threads = linearizability::Options { jobs: 2, ..linearizability::Options::new(timeout) };
    group.bench_function("kv_hard_12_clients_12000_ops_6pct_info_jobs_2", |b| {
        b.iter(|| linearizability::check_history_with(black_box(&hard), Model::Kv, &two_threads))
    });
    let mut hard_bad = hard.clone();
    gen::corrupt_read_never_written(&mut hard_bad, hard_corrupt).expect("the history has reads");
    assert!(linearizability::check(&hard_bad, Model::Kv, timeout).is_not_linearizable());
    group.bench_function("kv_hard_12_clients_12000_ops_6pct_info_not_linearizable", |b| {
        b.iter(|| linearizability::check(black_box(&hard_bad), Model::Kv, timeout))
    });
    let raft =
        formats::parse(include_str!("../tests/data/raft-hard-seed33-k1.log"), formats::Format::JepsenLog)
            .expect("the fixture parses");
    assert!(linearizability::check(&raft, Model::Register, timeout).is_linearizable());
    group.bench_function("raft_hard_seed33_k1", |b| {
        b.iter(|| linearizability::check(black_box(&raft), Model::Register, timeout))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! `concord lab eventual --quick`, end to end into a temporary directory: every file is written,
//! and the numbers have the shape the theory predicts.

use concord_lab::eventual::wars::{Quorum, EXP_10_1, LNKD_SSD};
use concord_lab::eventual::write_report;
use concord_lab::{run_eventual, EventualOptions};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn quick_lab_runs_end_to_end_with_sane_numbers() {
    let dir = std::env::temp_dir().join(format!("concord-eventual-test-{}", std::process::id()));
    let options = EventualOptions::quick(1);
    let done = AtomicUsize::new(0);
    let report = run_eventual(&options, &dir, &|_| {
        done.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    println!("{}", report.summary());
    assert_eq!(done.load(Ordering::Relaxed), options.jobs());

    // 1. Propagation: replicas diverge during the partition and agree again after the heal.
    let p = &report.propagation;
    assert!(p.violations.is_empty(), "{:?}", p.violations);
    for k in &p.keys {
        assert_eq!(k.homes.len(), 3);
        assert!(!k.writes_acked.is_empty());
        let converged = k.converged_at_ms.expect("home replicas agree at the end");
        assert!(converged >= p.partition_ms.0 && converged < p.end_ms, "{converged}");
    }
    assert!(p.keys.iter().any(|k| k.divergent_ms > 0.0));

    // 2. PBS: the model rises with t to ~1; strict quorums are always consistent (model and simulator).
    for model in [&LNKD_SSD, &EXP_10_1] {
        let partial = report.curve(model.name, Quorum::new(3, 1, 1), "model").unwrap();
        let ps: Vec<f64> = partial.points.iter().map(|p| p.1).collect();
        assert!(ps.windows(2).all(|w| w[0] <= w[1] + 1e-9), "{ps:?}");
        assert!(*ps.last().unwrap() > 0.99 && ps[0] < 0.99, "{ps:?}");
        for method in ["model", "simulator"] {
            let strict = report.curve(model.name, Quorum::new(3, 2, 2), method).unwrap();
            assert!(!strict.points.is_empty());
            assert!(strict.points.iter().all(|p| p.1 == 1.0), "{method}: {:?}", strict.points);
        }
        let sim = report.curve(model.name, Quorum::new(3, 1, 1), "simulator").unwrap();
        assert!(sim.points.len() >= 10, "{:?}", sim.points);
        // Late reads are (nearly) always consistent; the first ones are not.
        assert!(sim.points.last().unwrap().1 > 0.95 && sim.points[0].1 < 1.0, "{:?}", sim.points);
    }

    // 3. Anomalies: R+W>N (DVV) has no stale reads; LWW loses updates; counters lose nothing.
    let strict = report.anomaly("R=2 W=2, DVV").unwrap();
    assert!(strict.reads > 1000 && strict.stale_reads == 0, "{strict:?}");
    let partial = report.anomaly("R=1 W=1, DVV").unwrap();
    assert!(partial.stale_reads > 0 && partial.reads_with_siblings > 0 && partial.lost_updates == 0);
    let lww_lost: usize =
        ["R=1 W=1, LWW", "R=2 W=2, LWW"].iter().map(|n| report.anomaly(n).unwrap().lost_updates).sum();
    assert!(lww_lost > 0, "LWW lost no update");
    let sticky = report.anomaly("R=1 W=1, DVV, sticky session").unwrap();
    assert_eq!((sticky.read_your_writes, sticky.monotonic_reads), (0, 0), "{sticky:?}");
    let counter = report.anomaly("R=1 W=1, PN-counter").unwrap();
    assert!(counter.writes_acked > 100 && counter.lost_updates == 0 && counter.reads_with_siblings == 0);

    // 4. Raft: linearizable, no stale reads, the minority side serves nothing.
    let raft = &report.comparison[0];
    assert!(raft.system.starts_with("Raft"));
    assert!(raft.linearizable.iter().all(|v| v == "linearizable"), "{:?}", raft.linearizable);
    assert_eq!(raft.stale_reads, 0);
    assert!(raft.minority_served < 0.05 && raft.majority_served > 0.5, "{raft:?}");
    let dynamo = &report.comparison[2];
    assert!(dynamo.minority_served > 0.9 && dynamo.read_p50_ms < raft.read_p50_ms, "{dynamo:?}");

    // The report: JSON, plots in both formats, HTML.
    let written = write_report(&report, &dir).unwrap();
    for name in [
        "report.json",
        "index.html",
        "propagation-k0.png",
        "propagation-k0.svg",
        "pbs-lnkd-ssd.png",
        "pbs-exp-10-1.svg",
    ] {
        let path = dir.join(name);
        assert!(written.contains(&path), "{name} not written");
        assert!(std::fs::metadata(&path).unwrap().len() > 500, "{name} is nearly empty");
    }
    assert!(dir.join("latency/lnkd-ssd-ars.csv").exists());
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("concord sim scenarios/eventual-propagation.toml --seed 1"));
    std::fs::remove_dir_all(&dir).unwrap();
}

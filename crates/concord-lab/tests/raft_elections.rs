//! A small version of the election-timeout experiment, checked for the shape the Raft paper found
//! (§9.3, Figure 16): randomness in the election timeout avoids split votes, so 150–300 ms elects a
//! leader with fewer terms and a much shorter tail than 150–150 ms; and shorter timeouts (12–24 ms)
//! cut the downtime further.

use concord_lab::raft_elections::{write_report, TimeoutRange};
use concord_lab::{run_raft_elections, ElectionOptions};

#[test]
fn randomness_and_shorter_timeouts_shorten_elections() {
    let options = ElectionOptions {
        trials: 60,
        trials_zero_width: 40,
        seed: 7,
        ranges: vec![TimeoutRange::new(150, 150), TimeoutRange::new(150, 300), TimeoutRange::new(12, 24)],
        ..ElectionOptions::default()
    };
    let report = run_raft_elections(&options).unwrap();
    println!("{}", report.table());
    let zero = report.range(150, 150).unwrap();
    let wide = report.range(150, 300).unwrap();
    let fast = report.range(12, 24).unwrap();
    assert_eq!(zero.downtime_ms.len() + zero.no_leader, 40);
    assert!(wide.downtime_ms.len() >= 55 && fast.downtime_ms.len() >= 55);

    // Nothing faster than physics: at least half the minimum timeout passes before anyone notices.
    assert!(wide.stats().p50 >= 75.0 && fast.stats().p50 >= 6.0);
    // Randomness avoids split votes and the long tail they cause.
    assert!(wide.mean_terms() < zero.mean_terms(), "{} vs {}", wide.mean_terms(), zero.mean_terms());
    assert!(wide.split_fraction() < 0.5 * zero.split_fraction().max(0.02));
    assert!(wide.stats().max < zero.stats().max, "{:?} vs {:?}", wide.stats(), zero.stats());
    // With the randomness, the worst case stays within a few timeouts.
    assert!(wide.stats().max < 1_000.0, "{:?}", wide.stats());
    // Shorter timeouts: shorter downtime.
    assert!(fast.stats().mean < wide.stats().mean / 2.0, "{:?} vs {:?}", fast.stats(), wide.stats());

    // The report: JSON, both plots in both formats, HTML.
    let dir = std::env::temp_dir().join(format!("concord-lab-test-{}", std::process::id()));
    let written = write_report(&report, &dir).unwrap();
    for path in &written {
        let size = std::fs::metadata(path).unwrap().len();
        assert!(size > 100, "{} is only {size} bytes", path.display());
    }
    assert!(written.iter().any(|p| p.extension().is_some_and(|e| e == "png")));
    let svg = std::fs::read_to_string(dir.join("elections-randomness.svg")).unwrap();
    assert!(svg.contains("150–300 ms"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_experiment_is_deterministic() {
    let options = ElectionOptions {
        trials: 10,
        ranges: vec![TimeoutRange::new(150, 175)],
        ..ElectionOptions::default()
    };
    let a = run_raft_elections(&options).unwrap();
    let b = run_raft_elections(&options).unwrap();
    assert_eq!(a.ranges[0].downtime_ms, b.ranges[0].downtime_ms);
    assert_eq!(a.ranges[0].terms, b.ranges[0].terms);
}

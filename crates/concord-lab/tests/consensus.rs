//! `concord lab consensus --quick`: the report's shape and the numbers' sanity. The full run is
//! `concord lab consensus --out out/consensus` (its numbers are in docs/labs/answers/consensus.md).

use concord_lab::consensus::{write_report, ConsensusOptions, PARTS};
use concord_lab::run_consensus;

#[test]
fn the_quick_lab_writes_every_part_with_sane_numbers() {
    let options = ConsensusOptions::quick(1);
    let report = run_consensus(&options, &|_| {}).unwrap();
    println!("{}", report.summary());

    // Every part has a table with rows.
    let tables = report.tables();
    assert_eq!(tables.len(), PARTS);
    for (title, header, rows) in &tables {
        assert!(!rows.is_empty(), "{title}: no rows");
        assert!(rows.iter().all(|r| r.len() == header.len()), "{title}: ragged rows");
    }

    // Part 1: both protocols committed commands, with a few messages each, of plausible sizes;
    // latencies are above a round trip (2 × 2 ms) and below the client timeout.
    assert_eq!(report.steady.len(), 2);
    for r in &report.steady {
        assert!(r.committed > 100, "{}: {} committed", r.variant, r.committed);
        let m = r.messages_per_command();
        assert!((2.0..50.0).contains(&m), "{}: {m} messages per command", r.variant);
        let size = r.bytes as f64 / r.messages as f64;
        assert!((4.0..2_000.0).contains(&size), "{}: {size} bytes per message", r.variant);
        assert!(r.latency_p50_ms >= 4.0 && r.latency_p99_ms < 300.0, "{}: {r:?}", r.variant);
        assert!(r.latency_p50_ms <= r.latency_p99_ms);
    }

    // Part 2: every crash was followed by a new leader and a commit, after at least the minimum
    // leader timeout (150 ms) – a new leader cannot be elected before anyone suspects the old one.
    assert_eq!(report.failover.len(), 2);
    for r in &report.failover {
        assert!(r.crashes >= 2, "{}: {} crashes", r.variant, r.crashes);
        assert_eq!(r.above_limit, 0, "{}: {:?}", r.variant, r.commit_ms);
        for (&leader, &commit) in r.new_leader_ms.iter().zip(&r.commit_ms) {
            assert!(
                leader >= 100.0 && commit >= leader,
                "{}: leader {leader} ms, commit {commit} ms",
                r.variant
            );
        }
    }

    // Part 3: every variant ran on every seed and committed while the link flapped.
    assert_eq!(report.flapping.len(), 3 * options.seeds as usize);
    assert!(report.flapping.iter().all(|r| r.committed > 0 && !r.throughput.is_empty()));

    // Part 4: Paxos without back-off completes fewer operations and campaigns more than with it.
    let duel = |name: &str| report.duel.iter().find(|r| r.variant.starts_with(name)).unwrap();
    let without = duel("Multi-Paxos, no back-off");
    let with = duel("Multi-Paxos, back-off");
    assert!(without.committed < with.committed, "{without:?} vs {with:?}");
    assert!(without.campaigns > with.campaigns, "{without:?} vs {with:?}");
    assert_eq!(report.duel.len(), 5);

    // Part 5: Raft's new leaders have no gaps; the measurement saw failovers on both sides.
    let raft = report.holes.iter().find(|r| r.variant == "Raft").unwrap();
    let paxos = report.holes.iter().find(|r| r.variant == "Multi-Paxos").unwrap();
    assert!(raft.failovers >= 2 && paxos.failovers >= 2);
    assert_eq!(raft.total_holes(), 0, "a Raft log is a prefix: {:?}", raft.holes);

    // The report files.
    let dir = std::env::temp_dir().join(format!("concord-lab-consensus-{}", std::process::id()));
    let written = write_report(&report, &dir).unwrap();
    for stem in ["part1-latency", "part2-failover", "part3-flapping", "part4-duel", "part5-holes"] {
        for ext in ["svg", "png"] {
            let path = dir.join(format!("{stem}.{ext}"));
            assert!(written.contains(&path), "{} not written", path.display());
            assert!(std::fs::metadata(&path).unwrap().len() > 0);
        }
    }
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("Part 5") && html.contains("part4-duel.svg"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["steady"].as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One part alone runs only that part.
#[test]
fn one_part_runs_alone() {
    let report = run_consensus(&ConsensusOptions::quick(3).only_part(4), &|_| {}).unwrap();
    assert!(report.steady.is_empty() && report.failover.is_empty() && report.holes.is_empty());
    assert_eq!(report.tables().len(), 1);
    assert_eq!(report.duel.len(), 5);
}

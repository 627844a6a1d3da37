//! Clock faults on real containers: `concord chaos --nemesis clock-skew,clock-jump,
//! clock-jump-leader,clock-strobe` moves nodes' clocks through libfaketime (preloaded into every
//! node; the offset file rewritten inside the container) while five clients run the register
//! workload, and the history must stay linearizable – the workload's reads are ReadIndex reads,
//! which do not trust clocks.
//!
//! Valid verdicts prove little if the clocks never moved, so the test asserts what the nodes
//! themselves said (each fault's `observed` lines in timeline.json):
//!
//! * the wall clock: each moved node's Redis `TIME`, set against the host's clock, is off by the
//!   planned offset (schedule.json) – a strobing node its offset, and nothing outside true time
//!   and its offset;
//! * the monotonic clock, the one tokio's timers and Raft run on: the moved node's
//!   `uptime_in_seconds` (an `Instant`'s `elapsed()`) is off its peers' by the offset – seed 1
//!   sets the leader's clock back by 6.8 s and another node's forward by 9.3 s.
//!
//! The compose project is on the subnet 10.66.0.0/24 (the other docker tests use 10.57–10.65);
//! 36 s of clients, four faults of 4 s. Needs what chaos_docker.rs needs, and libfaketime on the
//! host (Debian: libfaketime, or faketime which depends on it) for deploy/build-image.sh to copy
//! into the image; where one is missing the test prints why and passes – unless `CI` is set,
//! where that is a failure.

mod chaos_common;

use chaos_common::{chaos, docker_available, Image};
use serde_json::Value;

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One observed node line, `"<when>: node N: clock X s[ to Y s over K reads], uptime U s, term T,
/// ROLE"` (a node that did not answer – `clock unread`, `uptime ?` – gives none).
#[derive(Debug)]
struct Seen {
    when: String,
    node: usize,
    /// The lowest and highest wall-clock offset read (seconds).
    lo: f64,
    hi: f64,
    uptime: i64,
}

fn parse(line: &str) -> Option<Seen> {
    let (when, rest) = line.split_once(": node ")?;
    let (node, rest) = rest.split_once(": clock ")?;
    let (clock, rest) = rest.split_once(", uptime ")?;
    let (uptime, rest) = rest.split_once(" s, term ")?;
    let (_term, _role) = rest.split_once(", ")?;
    let numbers: Vec<f64> =
        clock.split_whitespace().filter_map(|w| w.trim_start_matches('+').parse().ok()).collect();
    let (lo, hi) = match numbers[..] {
        [x] => (x, x),
        [lo, hi, _reads] => (lo, hi),
        _ => return None,
    };
    let (when, node, uptime) = (when.to_string(), node.parse().ok()?, uptime.parse().ok()?);
    Some(Seen { when, node, lo, hi, uptime })
}

fn observed(fault: &Value) -> Vec<Seen> {
    let lines = fault["observed"].as_array().unwrap_or_else(|| panic!("{fault}"));
    lines.iter().filter_map(|l| parse(l.as_str()?)).collect()
}

/// `node`'s monotonic offset as its uptime shows it: its uptime minus the median of the other
/// nodes' read in the same observation (before the reset if the node was read then, else when the
/// fault started; whole seconds, and the nodes started within a second or so of each other).
fn uptime_offset(lines: &[Seen], node: usize) -> i64 {
    let mine =
        lines.iter().rev().find(|l| l.node == node).unwrap_or_else(|| panic!("node {node}: {lines:?}"));
    let mut others: Vec<i64> =
        lines.iter().filter(|l| l.when == mine.when && l.node != node).map(|l| l.uptime).collect();
    assert!(!others.is_empty(), "other nodes read {}: {lines:?}", mine.when);
    others.sort();
    mine.uptime - others[others.len() / 2]
}

#[test]
fn clock_faults_move_the_nodes_clocks_and_the_register_history_stays_linearizable() {
    if !docker_available() {
        return;
    }
    if !std::path::Path::new(FAKETIME).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but there is no {FAKETIME} (apt-get install faketime)"
        );
        eprintln!("skipping the clock chaos test: no {FAKETIME} to build into the image");
        return;
    }
    let image = Image::new("clock-test");
    let dir = tempfile::tempdir().unwrap();
    let run = chaos(
        "docker, clock faults",
        &[
            &image.docker_args("10.66.0")[..],
            &["--time-limit", "36", "--interval", "4", "--clients", "5", "--op-timeout", "3"],
            &["--nemesis", "clock-skew,clock-jump,clock-jump-leader,clock-strobe", "--seed", "1"],
        ]
        .concat(),
        &dir.path().join("run"),
    );
    assert_eq!(run.results["recovered"], true, "{}", run.results);
    let timeline = &run.timeline;
    let mut kinds: Vec<&str> = timeline.iter().map(|f| f["nemesis"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["clock-jump", "clock-jump-leader", "clock-skew", "clock-strobe"], "{timeline:?}");
    for f in timeline {
        assert!(f.get("errors").is_none(), "the fault and its undoing worked: {f}");
    }
    let schedule: Vec<Value> = serde_json::from_str(&run.read("schedule.json")).unwrap();
    let planned =
        |kind: &str| schedule.iter().find(|p| p["nemesis"] == kind).unwrap_or_else(|| panic!("{kind}"));
    let fault = |kind: &str| timeline.iter().find(|f| f["nemesis"] == kind).unwrap();
    let near = |seen: f64, ms: i64| (seen - ms as f64 / 1000.0).abs() < 0.4;

    // Skew and jump: every moved node's clock reads its planned offset while the fault lasts. A
    // node whose clock is behind can be slow to answer (its timers wait for its clock to catch
    // up): an observation may find it unread ("clock unread"), but not both.
    for kind in ["clock-skew", "clock-jump"] {
        let lines = observed(fault(kind));
        for o in planned(kind)["offsets_ms"].as_array().unwrap() {
            let (node, ms) = (o[0].as_u64().unwrap() as usize + 1, o[1].as_i64().unwrap());
            let seen: Vec<&Seen> = lines.iter().filter(|l| l.node == node).collect();
            assert!(!seen.is_empty(), "{kind}: node {node} read at least once: {lines:?}");
            for s in seen {
                assert!(near(s.lo, ms) && near(s.hi, ms), "{kind}: {s:?}, planned {ms} ms");
            }
        }
    }

    // The monotonic clock moved too: 9.3 s forward for clock-jump's node, 6.8 s back for the
    // leader's (the uptimes are whole seconds, the nodes' starts a second or so apart).
    let jump = &planned("clock-jump")["offsets_ms"][0];
    let (node, ms) = (jump[0].as_u64().unwrap() as usize + 1, jump[1].as_i64().unwrap());
    assert_eq!(ms, 9_309, "seed 1's jump");
    let moved = uptime_offset(&observed(fault("clock-jump")), node);
    assert!((7..=11).contains(&moved), "node {node}'s uptime is {moved} s off its peers', its clock +9.3 s");

    let ms = planned("clock-jump-leader")["offset_ms"].as_i64().unwrap();
    assert_eq!(ms, -6_773, "seed 1 sets the leader's clock back");
    // Which node led is in `what`: "clock-jump-leader: node N -6.773 s".
    let f = fault("clock-jump-leader");
    let what = f["what"].as_str().unwrap();
    let led: usize =
        what.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{what}"));
    let lines = observed(f);
    let seen: Vec<&Seen> = lines.iter().filter(|l| l.node == led).collect();
    assert!(!seen.is_empty(), "the leader read at least once: {lines:?}");
    for s in seen {
        assert!(near(s.lo, ms) && near(s.hi, ms), "the leader's wall clock moved: {s:?}, planned {ms} ms");
    }
    let moved = uptime_offset(&lines, led);
    assert!((-9..=-5).contains(&moved), "the leader's uptime is {moved} s off its peers', its clock -6.8 s");

    // Strobe: the clock read at its offset, and never outside true time and the offset. (Both
    // values need not show: after each step back the node is slow to answer, so it answers mostly
    // while its clock is at the later of the two.)
    let strobe = planned("clock-strobe");
    let (node, ms) = (strobe["node"].as_u64().unwrap() as usize + 1, strobe["offset_ms"].as_i64().unwrap());
    let (want_lo, want_hi) = (ms.min(0), ms.max(0));
    let lines: Vec<Seen> = observed(fault("clock-strobe")).into_iter().filter(|l| l.node == node).collect();
    assert!(lines.iter().any(|l| near(l.lo, ms) || near(l.hi, ms)), "strobe {ms} ms: {lines:?}");
    for l in &lines {
        let within = |x: f64| x > want_lo as f64 / 1000.0 - 0.4 && x < want_hi as f64 / 1000.0 + 0.4;
        assert!(within(l.lo) && within(l.hi), "strobe {ms} ms: {l:?}");
    }
}

/// The local backend has no container to rewrite a node's offset file in: it refuses clock faults
/// before it starts anything, and says what to use instead.
#[test]
fn the_local_backend_refuses_clock_faults_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["chaos", "--backend", "local", "--nodes", "3", "--nemesis", "kill,clock-strobe"])
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot make clock faults (clock-strobe)") && stderr.contains("--backend docker"),
        "{stderr}"
    );
}

//! The replay viewer on a Multi-Paxos trace, in headless Chromium (docs/paxos.md, "Viewing a
//! Paxos trace").
//!
//! Simulates `scenarios/paxos.toml` with a seed whose run has the leader crash and, later, a new
//! leader fill a hole in the log with a no-op; starts `concord view --port 0`; and drives the page
//! with Python Selenium (`tests/viewer_paxos_e2e.py`): seek to the crash, step, jump to the fill
//! and on until the slot is chosen, then read the slot grid, the ring and the side panel.
//! Screenshots go to `target/test-output/viewer/` (or `$CONCORD_VIEWER_SCREENSHOTS`).
//!
//! Needs `chromium`, `chromedriver` and Python's `selenium`. Without them the test prints why and
//! passes – unless `CI=true`, where a missing browser is a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod browser;

use browser::{browser_available, repo_root};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

/// A run of `scenarios/paxos.toml` whose leader crashes before a later leader fills a hole with a
/// no-op, and how much of it to simulate (found by scanning seeds for the events: see
/// `leader_crash_then_noop_fill`).
const SEED: u64 = 79;
const UNTIL: &str = "7.3s";

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("CONCORD_VIEWER_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/test-output/viewer"),
    }
}

/// A running `concord view`, killed when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn start(trace: &Path) -> Viewer {
        let mut child = Command::new(CONCORD)
            .arg("view")
            .arg(trace)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("concord view: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from concord view: {line:?}"))
            .to_string();
        Viewer { child, url }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The slot of the first `noop-filled` event after a crash of a node that was leading (elected
/// and not preempted since), if any.
fn leader_crash_then_noop_fill(trace: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut leading = std::collections::BTreeSet::new();
    let mut leader_crashed = false;
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let node = e["node"].as_u64();
        match (e["ev"].as_str(), e["name"].as_str()) {
            (Some("protocol"), Some("elected")) => {
                leading.insert(node);
            }
            (Some("protocol"), Some("preempted")) => {
                leading.remove(&node);
            }
            (Some("crash"), _) => leader_crashed |= leading.remove(&node),
            (Some("protocol"), Some("noop-filled")) if leader_crashed => return e["detail"]["slot"].as_u64(),
            _ => {}
        }
    }
    None
}

#[test]
fn the_page_replays_a_paxos_run_with_a_noop_filled_hole() {
    // The trace is checked even without a browser: the seed must still show what the page is
    // tested on.
    let dir = std::env::temp_dir().join(format!("concord-viewer-paxos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("paxos.jsonl");
    let out = Command::new(CONCORD)
        .arg("sim")
        .arg(repo_root().join("scenarios/paxos.toml"))
        .args(["--seed", &SEED.to_string(), "--until", UNTIL, "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    // Exit status 1 is a run whose checks failed (a cut-short run may fail the progress check):
    // still a trace worth viewing. 2 is an error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && trace.exists(),
        "concord sim failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let slot = leader_crash_then_noop_fill(&trace);
    assert!(
        slot.is_some(),
        "seed {SEED} no longer has a leader crash followed by a no-op fill: pick another"
    );

    if !browser_available("the_page_replays_a_paxos_run_with_a_noop_filled_hole") {
        return;
    }
    let viewer = Viewer::start(&trace);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer_paxos_e2e.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&viewer.url)
        .arg(screenshot_dir())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "viewer_paxos_e2e.py failed:\n{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("bad result line {last:?}: {e}"));
    println!("paxos: {result}");
    assert_eq!(result["fill"]["slot"].as_u64(), slot, "the page found the same filled slot");
    assert!(!result["grid"]["chosen"].as_array().unwrap().is_empty());
    for shot in ["viewer-paxos.png", "viewer-paxos-phone.png"] {
        assert!(screenshot_dir().join(shot).exists(), "{shot} was saved");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! End-to-end tests of `concord view` in headless Chromium.
//!
//! Each test simulates a run (`concord sim --trace`), starts `concord view --port 0`, reads the
//! port it prints, and drives the page with Python Selenium (`tests/viewer_e2e.py`), which asserts
//! on what the page shows and saves screenshots under `target/test-output/viewer/` (or
//! `$CONCORD_VIEWER_SCREENSHOTS`).
//!
//! Needs `chromium`, `chromedriver` and Python's `selenium`. Without them the tests print why and
//! pass – unless `CI=true`, where a missing browser is a failure (CI must run them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod browser;

use browser::{browser_available, repo_root};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("CONCORD_VIEWER_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/test-output/viewer"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-viewer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `concord sim` and return (trace, history).
fn simulate(dir: &Path, scenario: &str, seed: u64, until: Option<&str>) -> (PathBuf, PathBuf) {
    let trace = dir.join("run.jsonl");
    let history = dir.join("h.jsonl");
    let mut cmd = Command::new(CONCORD);
    cmd.arg("sim").arg(repo_root().join(scenario)).args(["--seed", &seed.to_string()]);
    cmd.arg("--trace").arg(&trace).arg("--history").arg(&history);
    if let Some(until) = until {
        cmd.args(["--until", until]);
    }
    let out = cmd.output().unwrap();
    // Exit status 1 is a run whose checks failed (a short `--until` fails the progress check):
    // still a trace worth viewing. 2 is an error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && trace.exists(),
        "concord sim failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (trace, history)
}

/// A running `concord view`, killed when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn start(trace: &Path, history: Option<&Path>) -> Viewer {
        let mut cmd = Command::new(CONCORD);
        cmd.arg("view").arg(trace).args(["--port", "0"]);
        if let Some(history) = history {
            cmd.arg("--history").arg(history);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
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

/// A running `concord sim --interactive`, killed when dropped.
struct LiveSession {
    child: Child,
    url: String,
}

impl LiveSession {
    fn start(scenario: &str, extra: &[&str]) -> LiveSession {
        let mut child = Command::new(CONCORD)
            .arg("sim")
            .arg(repo_root().join(scenario))
            .args(["--interactive", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("concord sim: interactive on ")
            .unwrap_or_else(|| panic!("unexpected first line from concord sim --interactive: {line:?}"))
            .to_string();
        LiveSession { child, url }
    }

    /// GET a path of the session's server.
    fn get(&self, path: &str) -> Vec<u8> {
        let addr: std::net::SocketAddr =
            self.url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answer = runtime
            .block_on(concord_server::testkit::http(
                addr,
                "GET",
                path,
                b"",
                std::time::Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
        answer.body
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run one scenario of the Selenium script; returns its JSON result line.
fn drive(scenario: &str, url: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer_e2e.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(url)
        .arg(screenshot_dir())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "viewer_e2e.py {scenario} failed:\n{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad result line {last:?}: {e}"))
}

#[test]
fn the_page_replays_a_raft_run() {
    if !browser_available("the_page_replays_a_raft_run") {
        return;
    }
    let dir = temp_dir("replay");
    let (trace, _) = simulate(&dir, "scenarios/raft-faults.toml", 3, Some("3s"));
    let viewer = Viewer::start(&trace, None);
    let result = drive("replay", &viewer.url);
    println!("replay: {result}");
    assert!(result["committed_cells"].as_u64().unwrap() > 0);
    for shot in ["viewer.png", "viewer-phone.png"] {
        assert!(screenshot_dir().join(shot).exists(), "{shot} was saved");
    }
}

/// The elections lab's worst trial, exported, is a trace the viewer steps through: from the
/// leader's crash, event by event, to the next leader's election (docs/labs/raft-elections.md,
/// "Step through one election").
#[test]
fn an_exported_election_steps_from_the_crash_to_the_new_leader() {
    if !browser_available("an_exported_election_steps_from_the_crash_to_the_new_leader") {
        return;
    }
    let dir = temp_dir("election");
    let out = Command::new(CONCORD)
        .args(["lab", "raft-elections", "--ranges", "150-155", "--trials", "20", "--out"])
        .arg(dir.join("report"))
        .arg("--export-worst")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "the lab failed: {}", String::from_utf8_lossy(&out.stderr));
    let trace = dir.join("worst-150-155.jsonl");
    assert!(trace.exists(), "the lab wrote {}", trace.display());
    let viewer = Viewer::start(&trace, None);
    let result = drive("election", &viewer.url);
    println!("election: {result}");
    assert!(result["steps"].as_u64().unwrap() > 0);
}

#[test]
fn offending_operations_are_highlighted_and_clicking_one_jumps_to_it() {
    if !browser_available("offending_operations_are_highlighted_and_clicking_one_jumps_to_it") {
        return;
    }
    let dir = temp_dir("offending");
    let (trace, history) = simulate(&dir, "scenarios/raft-faults.toml", 3, Some("3s"));
    // Corrupt one read of a written key so the history cannot be linearizable: the value 987654321
    // was never written.
    let text = std::fs::read_to_string(&history).unwrap();
    let mut corrupted = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if !corrupted && v["type"] == "ok" && v["f"] == "read" && v["value"].is_i64() {
                v["value"] = serde_json::json!(987_654_321);
                corrupted = true;
            }
            v.to_string()
        })
        .collect();
    assert!(corrupted, "the run has a successful read of a written value");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let viewer = Viewer::start(&trace, Some(&bad));
    let result = drive("offending", &viewer.url);
    println!("offending: {result}");
}

#[test]
fn bad_traces_are_refused_with_the_line_number() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, "{\"t\":1,\"ev\":\"boot\",\"node\":1}\nnot json\n").unwrap();
    let out = Command::new(CONCORD).arg("view").arg(&path).args(["--port", "0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:2"), "the error names the line: {stderr}");
}

/// The interactive mode in the browser: crash the leader from the page and see another elected,
/// restart it, cut and heal a link, send a write and see it committed, drop a message, step, fork.
/// Then the session the page steered, saved as an action log, replays to the very same trace.
#[test]
fn the_page_steers_a_live_simulation_and_the_session_replays_exactly() {
    if !browser_available("the_page_steers_a_live_simulation_and_the_session_replays_exactly") {
        return;
    }
    let live = LiveSession::start("scenarios/raft-faults.toml", &["--seed", "4", "--clients", "1"]);
    let result = drive("live", &live.url);
    println!("live: {result}");
    assert_ne!(result["first_leader"], result["second_leader"]);
    assert!(screenshot_dir().join("viewer-live.png").exists());

    // The session is paused after the fork: save it as the page's links do, and replay it.
    let dir = temp_dir("live");
    let session = live.get("/api/live/session.json");
    let trace = live.get("/api/live/trace.jsonl");
    std::fs::write(dir.join("session.json"), &session).unwrap();
    std::fs::write(dir.join("live.jsonl"), &trace).unwrap();
    let log: serde_json::Value = serde_json::from_slice(&session).unwrap();
    let actions: Vec<&str> =
        log["actions"].as_array().unwrap().iter().map(|a| a["do"].as_str().unwrap()).collect();
    for wanted in ["crash", "restart", "cut", "heal-link", "write", "drop", "fork"] {
        assert!(actions.contains(&wanted), "the log has a {wanted}: {actions:?}");
    }
    let replayed = dir.join("replayed.jsonl");
    let out = Command::new(CONCORD)
        .arg("sim")
        .arg(repo_root().join("scenarios/raft-faults.toml"))
        .arg("--actions")
        .arg(dir.join("session.json"))
        .arg("--trace")
        .arg(&replayed)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the same run as the saved session"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&replayed).unwrap() == trace, "the replayed trace is the live one, byte for byte");
    // And `concord view` shows the saved trace.
    let viewer = Viewer::start(&dir.join("live.jsonl"), None);
    assert!(viewer.url.starts_with("http://127.0.0.1:"));
}

/// The load time of a 100 000-event trace, measured by the page itself (performance.now() around
/// fetch, JSON.parse, the replay pass that builds the snapshots, and the first render).
/// `cargo test -p concord --test viewer -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: simulates ~110 000 events and measures the browser's load time"]
fn load_time_of_a_100k_event_trace() {
    if !browser_available("load_time_of_a_100k_event_trace") {
        return;
    }
    let dir = temp_dir("load");
    let (trace, _) = simulate(&dir, "scenarios/raft-faults.toml", 3, None);
    let viewer = Viewer::start(&trace, None);
    let result = drive("load", &viewer.url);
    println!("load time: {result}");
    let events = result["events"].as_u64().unwrap();
    assert!(events >= 100_000, "the trace has {events} events");
    let ms = result["load_ms"]["total"].as_f64().unwrap();
    assert!(ms < 2000.0, "loading {events} events took {ms:.0} ms (budget 2000 ms)");
    let seek_ms = result["worst_seek_ms"].as_f64().unwrap();
    assert!(seek_ms < 100.0, "the slowest seek took {seek_ms:.0} ms (budget 100 ms)");
}

//! `concord design` end to end (`--quick`): a design that meets its requirements exits 0 and
//! writes its report; a deliberately under-provisioned one exits 1 and names what it missed.

use std::path::PathBuf;
use std::process::Command;

fn scenario(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "..", "..", "labs", "design", name].iter().collect()
}

fn design(name: &str, out: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("design")
        .arg(scenario(name))
        .arg("--quick")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("concord runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&output.stderr))
}

#[test]
fn a_design_that_meets_its_requirements_exits_0_with_a_report() {
    let out = std::env::temp_dir().join(format!("concord-design-ok-{}", std::process::id()));
    let (code, text) = design("session-store.toml", &out, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Every requirement met"), "{text}");
    assert!(text.contains("Dynamo, N = 3, R = 2, W = 2"), "{text}");
    for file in
        ["index.html", "report.json", "latency-sessions.svg", "latency-sessions.png", "served-sessions.svg"]
    {
        assert!(out.join(file).exists(), "{file} missing");
    }
    // Every simulation's scenario replays with `concord sim`.
    let replay = Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("sim")
        .arg(out.join("scenario-sessions-zone.toml"))
        .output()
        .expect("concord runs");
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn an_under_provisioned_design_exits_1_and_says_what_it_missed() {
    let out = std::env::temp_dir().join(format!("concord-design-under-{}", std::process::id()));
    let (code, text) = design("under-provisioned.toml", &out, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("[MISSED] capacity"), "{text}");
    assert!(text.contains("[MISSED] sessions: survive losing a zone"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn no_validate_prints_the_arithmetic_only() {
    let out = std::env::temp_dir().join(format!("concord-design-nv-{}", std::process::id()));
    let (code, text) = design("social-3-regions.toml", &out, &["--no-validate"]);
    assert!(code == 0 || code == 1, "{text}");
    assert!(
        text.contains("replicas and placement") && !text.contains("Validation in the simulator"),
        "{text}"
    );
    assert!(text.contains("(--no-validate)"), "{text}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_bad_requirements_file_is_an_error_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("concord-design-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        std::fs::read_to_string(scenario("session-store.toml")).unwrap().replace("zones = 3", "zones = 9");
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_concord")).arg("design").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("zones must be between 1 and 5"));
    std::fs::remove_dir_all(&dir).ok();
}

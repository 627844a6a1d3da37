//! The differential test against redis-server, at a size the default suite can afford: three
//! seeds of 300 steps, each in RESP2 and in RESP3 (`concord difftest`'s defaults). It runs the
//! command itself – the same binary, the same code path a long run uses – so a failure here prints
//! the replay command that reproduces it. Longer runs: `concord difftest --seeds 1..200 --ops 5000`
//! (docs/redis.md, "Differential tests").

use std::process::Command;

/// Whether redis-server can run here. CI installs it (`.ci/run`), so there its absence fails the
/// test; elsewhere the test says why it is skipped.
fn have_redis_server() -> bool {
    let ok = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not usable but CI is set: .ci/run installs it"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-server is not installed (apt-get install redis-server)"
        );
    }
    ok
}

#[test]
fn random_command_sequences_get_the_same_replies_as_from_redis_server() {
    if !have_redis_server() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["difftest", "--seeds", "1..3", "--ops", "300"])
        .output()
        .expect("run concord difftest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "concord difftest failed ({}):\n{stdout}\n{stderr}", out.status);
    // It compared something: each of the six runs reports its steps.
    assert_eq!(stdout.matches(": 300 steps,").count(), 6, "{stdout}");
}

//! A short fuzzing run of every target, as part of `cargo test`: a few seconds each, with a fixed
//! seed, so the default suite stays fast and gives the same inputs every time. `.ci/run` runs the
//! longer budget (`cargo run -p concord-fuzz -- --all`), and `docs/security.md` the long one.
//!
//! A failure saves the minimised input under `regressions/<target>/`, where
//! `tests/regressions.rs` replays it from then on.

use concord_fuzz::driver::{fuzz, Budget, Options};
use concord_fuzz::targets;
use std::time::Duration;

/// Seconds per target; `CONCORD_FUZZ_SECONDS` overrides it.
fn seconds() -> f64 {
    std::env::var("CONCORD_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

fn short_run(name: &str) {
    let target = targets::by_name(name).expect("a target");
    let options = Options {
        seed: 1,
        budget: Budget::seconds(seconds()),
        hang_limit: Duration::from_secs(30),
        save: true,
    };
    let report = fuzz(target, &options, &mut |_| {});
    println!("{}", report.summary());
    if let Some(f) = report.failure {
        panic!(
            "{name}: run {} failed: {}\ninput ({} bytes): {}\nsaved: {:?}",
            f.run,
            f.message,
            f.input.len(),
            concord_fuzz::driver::hex_excerpt(&f.input),
            f.saved
        );
    }
    // Seeds alone are several outcomes: a target that reports one outcome for everything has lost
    // its feedback (or its inputs never get past the first check).
    assert!(report.outcomes.len() >= 2, "{name}: only {:?}", report.outcomes);
}

#[test]
fn resp() {
    short_run("resp");
}

#[test]
fn http() {
    short_run("http");
}

#[test]
fn peer() {
    short_run("peer");
}

#[test]
fn handshake() {
    short_run("handshake");
}

#[test]
fn wal() {
    short_run("wal");
}

#[test]
fn snapshot() {
    short_run("snapshot");
}

#[test]
fn scenario() {
    short_run("scenario");
}

#[test]
fn history() {
    short_run("history");
}

#[test]
fn cache_resp() {
    short_run("cache-resp");
}

#[test]
fn every_target_has_a_short_run() {
    let source = include_str!("short.rs");
    for t in targets::ALL {
        assert!(source.contains(&format!("short_run(\"{}\")", t.name)), "add a short run of {}", t.name);
    }
}

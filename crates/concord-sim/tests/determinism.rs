//! Same scenario + same seed ⇒ byte-identical trace; a different seed ⇒ a different trace; and a
//! sweep's results do not depend on how many threads ran it.

use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::{sweep, SweepOptions};
use concord_sim::RunOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn scenario() -> LoadedScenario {
    LoadedScenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/gossip.toml")).unwrap()
}

/// A `Write` into shared memory, so a test can read the trace back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn trace(seed: u64) -> (Vec<u8>, u64) {
    let out = Shared::default();
    let report =
        scenario().run(RunOptions { seed, trace: Some(Box::new(out.clone())), ..Default::default() });
    let bytes = out.0.lock().unwrap().clone();
    (bytes, report.trace_hash.unwrap())
}

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    let (a, hash_a) = trace(7);
    let (b, hash_b) = trace(7);
    assert!(a.len() > 100_000, "a real trace ({} bytes)", a.len());
    assert!(a == b, "traces differ");
    assert_eq!(hash_a, hash_b);
}

#[test]
fn a_different_seed_gives_a_different_trace() {
    assert_ne!(trace(7).1, trace(8).1);
}

#[test]
fn the_trace_hash_is_the_same_whatever_the_number_of_sweep_threads() {
    let options = |jobs| SweepOptions { jobs, hash_trace: true, ..Default::default() };
    let hashes = |jobs| -> Vec<(u64, u64)> {
        sweep(&scenario(), 1..=12, &options(jobs), &|_| {})
            .iter()
            .map(|r| (r.seed, r.trace_hash.unwrap()))
            .collect()
    };
    let one = hashes(1);
    assert_eq!(one, hashes(2));
    assert_eq!(one, hashes(3));
    let distinct: std::collections::BTreeSet<u64> = one.iter().map(|(_, h)| *h).collect();
    assert_eq!(distinct.len(), 12, "every seed has its own trace");
}

#[test]
fn trace_lines_are_json_with_time_and_event() {
    let (bytes, _) = trace(3);
    let text = String::from_utf8(bytes).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    let mut last_t = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["t"].as_u64().unwrap();
        assert!(t >= last_t, "time never goes backwards in a trace");
        last_t = t;
        kinds.insert(v["ev"].as_str().unwrap().to_string());
    }
    for kind in [
        "send",
        "deliver",
        "drop",
        "timer",
        "crash",
        "restart",
        "partition",
        "heal",
        "protocol",
        "invoke",
        "complete",
    ] {
        assert!(kinds.contains(kind), "trace has {kind} events: {kinds:?}");
    }
}

#[test]
fn dynamo_the_same_seed_gives_the_same_trace_hash() {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/dynamo.toml");
    let scenario = LoadedScenario::load(&lab).unwrap();
    let hash =
        |seed| scenario.run(RunOptions { seed, hash_trace: true, ..Default::default() }).trace_hash.unwrap();
    assert_eq!(hash(7), hash(7));
    assert_ne!(hash(7), hash(8));
}

//! The command line as a person meets it: what happens around the output, not in it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

#[test]
fn a_closed_pipe_ends_output_quietly() {
    // `concord sim … --trace /dev/stdout | head -1`: the reader goes away after the first of
    // thousands of trace lines; no panic, no error message.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sim = Command::new(CONCORD)
        .args(["sim", "scenarios/gossip.toml", "--seed", "1", "--trace", "/dev/stdout"])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    sim.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(sim.stdout.take());
    let mut stderr = String::new();
    sim.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    sim.wait().unwrap();
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}

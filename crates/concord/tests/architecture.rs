//! The architecture of `docs/architecture.md`, checked: which crate may depend on which.
//!
//! `cargo metadata` lists every workspace crate with its dependencies; each crate has a layer, and
//! a layer says which workspace crates and which I/O crates it may depend on. A new crate without
//! a layer, or a dependency that points the wrong way, fails here with the rule it broke.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Foundation,
    /// Sans-IO protocols and logic: state machines that take messages and return effects.
    Protocol,
    /// Sans-IO compositions of protocols (sharding: many Raft groups of key-value stores).
    Composed,
    RealDisk,
    VirtualWorld,
    RealWorld,
    TestsOnly,
    Application,
}

fn layer(krate: &str) -> Option<Layer> {
    use Layer::*;
    Some(match krate {
        "concord-core" => Foundation,
        "concord-raft" | "concord-dynamo" | "concord-gossip" | "concord-kv" | "concord-check"
        | "concord-cache" => Protocol,
        // Multi-Paxos reuses Raft's exactly-once sessions and record framing, so it sits on Raft.
        "concord-shard" | "concord-paxos" => Composed,
        "concord-wal" => RealDisk,
        "concord-sim" => VirtualWorld,
        "concord-resp" | "concord-server" | "concord-cache-node" => RealWorld,
        "concord-raft-harness" | "concord-fuzz" => TestsOnly,
        "concord-lab" | "concord" => Application,
        _ => return None,
    })
}

/// May a crate of layer `from` have a normal dependency on a workspace crate of layer `to`?
fn may_depend(from: Layer, to: Layer, to_name: &str) -> bool {
    use Layer::*;
    match from {
        Foundation => false,
        Protocol | RealDisk => to == Foundation,
        Composed => matches!(to, Foundation | Protocol) && to_name != "concord-check",
        VirtualWorld => matches!(to, Foundation | Protocol | Composed),
        RealWorld => {
            matches!(to, Foundation | RealDisk | RealWorld | Composed)
                || (to == Protocol && to_name != "concord-check")
        }
        TestsOnly => !matches!(to, Application | TestsOnly),
        Application => to != TestsOnly && to_name != "concord",
    }
}

/// External crates that mean I/O: sockets, threads of a runtime, files of a database, signals.
const IO_CRATES: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "mio",
    "socket2",
    "redb",
    "rustls",
    "tokio-rustls",
    "nix",
    "tracing-subscriber",
];

struct Workspace {
    /// crate name → its normal (non-dev, non-build) dependencies' names.
    deps: BTreeMap<String, Vec<String>>,
}

fn workspace() -> Workspace {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let mut deps = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_string();
        let normal = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null()) // null = normal; "dev" and "build" are not linked into the crate
            .map(|d| d["name"].as_str().expect("dependency name").to_string())
            .collect();
        deps.insert(name, normal);
    }
    Workspace { deps }
}

#[test]
fn every_workspace_crate_has_a_layer() {
    let ws = workspace();
    let unplaced: Vec<&String> = ws.deps.keys().filter(|k| layer(k).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "crates without a layer: {unplaced:?} – place them in docs/architecture.md and in this test"
    );
}

#[test]
fn workspace_dependencies_point_down_the_layers() {
    let ws = workspace();
    let mut broken = Vec::new();
    for (name, deps) in &ws.deps {
        let Some(from) = layer(name) else { continue };
        for dep in deps {
            let Some(to) = layer(dep) else { continue }; // not a workspace crate
            if !may_depend(from, to, dep) {
                broken.push(format!("{name} ({from:?}) → {dep} ({to:?})"));
            }
        }
    }
    assert!(broken.is_empty(), "dependencies against docs/architecture.md's rules:\n{}", broken.join("\n"));
}

#[test]
fn protocol_code_and_the_simulator_do_no_io() {
    let ws = workspace();
    let mut broken = Vec::new();
    for (name, deps) in &ws.deps {
        let Some(from) = layer(name) else { continue };
        if !matches!(from, Layer::Foundation | Layer::Protocol | Layer::Composed | Layer::VirtualWorld) {
            continue;
        }
        for dep in deps.iter().filter(|d| IO_CRATES.contains(&d.as_str())) {
            broken.push(format!("{name} ({from:?}) depends on {dep}"));
        }
    }
    assert!(broken.is_empty(), "sans-IO crates with I/O dependencies:\n{}", broken.join("\n"));
}

#[test]
fn the_server_build_has_no_deliberate_bugs() {
    // Cargo's resolver computes features for what is built: the server alone must not turn on
    // concord-raft's `mutations` (the binary does, through the simulator – see the doc, rule 4).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", "concord-server", "-e", "features,normal", "--offline", "-i", "concord-raft"])
        .current_dir(&root)
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("concord-raft"), "cargo tree printed no concord-raft: {tree}");
    assert!(!tree.contains("\"mutations\""), "concord-server's build enables Raft's mutations:\n{tree}");
}

#[test]
fn only_the_binary_parses_arguments() {
    // One rule for every command: clap in `crates/concord/src/cmd/`, logic in libraries that take
    // option structs (docs/architecture.md, "Why the binary holds the CLI").
    let ws = workspace();
    let parsing: Vec<&String> = ws
        .deps
        .iter()
        .filter(|(name, deps)| *name != "concord" && deps.iter().any(|d| d == "clap"))
        .map(|(n, _)| n)
        .collect();
    assert!(parsing.is_empty(), "libraries that depend on clap: {parsing:?}");
}

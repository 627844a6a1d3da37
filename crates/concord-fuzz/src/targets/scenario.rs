//! `scenario`: scenario TOML, as `concord sim FILE` (and concord-lab) read it.
//!
//! The input is TOML text (invalid UTF-8 is replaced), started from every file in `scenarios/`.
//! Properties, beyond no panic:
//! * parsing is deterministic (the same text gives the same verdict twice);
//! * **a scenario that validates runs**: validation is the only gate between a file and the
//!   simulator, so whatever it accepts must start and simulate without panicking. Each accepted
//!   scenario runs its first 200 ms of virtual time (at most 20 000 events); an `[explore]`
//!   scenario runs its first drawn configuration.

use super::label;
use crate::driver::Target;
use concord_core::time::Time;
use concord_sim::protocols::{LoadedScenario, ProtocolVisitor};
use concord_sim::{RunOptions, Scenario, ScenarioFile, SimProtocol, Simulation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const TARGET: Target = Target {
    name: "scenario",
    about: "scenario TOML: parse, validate, and run what validates",
    seeds,
    dictionary: &[
        b"[run]\n",
        b"nodes = ",
        b"duration = \"",
        b"heal_at",
        b"[network]\n",
        b"latency = { dist = \"",
        b"uniform",
        b"normal",
        b"pareto",
        b"empirical",
        b"fixed",
        b"loss = ",
        b"duplicate",
        b"reorder",
        b"[workload]\n",
        b"clients = ",
        b"rate_per_s",
        b"mode = \"open\"",
        b"keys = ",
        b"mix = { ",
        b"[[nemesis.schedule]]\n",
        b"at = \"",
        b"action = \"",
        b"partition",
        b"crash",
        b"restart",
        b"heal",
        b"pause",
        b"groups = [[1, 2], [3]]",
        b"[nemesis.random]\n",
        b"[protocol.raft]\n",
        b"[protocol.gossip]\n",
        b"[protocol.dynamo]\n",
        b"[explore]\n",
        b"[disk]\n",
        b"[clock]\n",
        b"0ms",
        b"1ms",
        b"1s",
        b"-1",
        b"0.0",
        b"1e9",
        b"nan",
        b"inf",
        b"\"",
        b"\n",
        b"[",
        b"]",
        b"{",
        b"}",
        b"=",
        b",",
    ],
    max_len: 8 * 1024,
    max_alloc_bytes: 64 << 20,
    run,
};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn seeds() -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("the scenarios directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).expect("read a scenario")).collect()
}

/// Runs the first moments of a scenario, whatever its protocol.
struct FirstMoments;

impl ProtocolVisitor for FirstMoments {
    type Output = u64;
    fn visit<P: SimProtocol>(self, scenario: &Arc<Scenario<P::Config>>) -> u64 {
        let mut scenario = Scenario::clone(scenario);
        scenario.run.max_events = scenario.run.max_events.min(20_000);
        let options = RunOptions { seed: 1, until: None, trace: None, hash_trace: false };
        let mut sim = Simulation::<P>::new(Arc::new(scenario), options);
        sim.start();
        sim.run_until(Time::from_duration(Duration::from_millis(200)));
        sim.now().as_nanos()
    }
}

fn run(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    // Relative files (empirical latency CDFs) resolve next to the real scenarios.
    let path = scenarios_dir().join("fuzz.toml");
    let parsed = ScenarioFile::parse(&path, &text);
    let again = ScenarioFile::parse(&path, &text);
    assert_eq!(parsed.is_ok(), again.is_ok(), "parsing the same text twice gave different verdicts");
    let loaded: LoadedScenario = match parsed {
        Err(e) => {
            let message = e.to_string();
            // The message starts with the path; the rest says what is wrong.
            let what = message.split_once(": ").map_or(message.as_str(), |(_, m)| m);
            return label("invalid", what.lines().last().unwrap_or(what));
        }
        Ok(ScenarioFile::Fixed(loaded)) => loaded,
        Ok(ScenarioFile::Explore(explorer)) => match explorer.draw(1) {
            Ok((loaded, _)) => loaded,
            Err(e) => panic!("an [explore] scenario that parsed cannot draw its first configuration: {e}"),
        },
    };
    loaded.visit(FirstMoments);
    let protocol = match &loaded {
        LoadedScenario::Gossip(_) => "gossip",
        LoadedScenario::Raft(_) => "raft",
        LoadedScenario::Dynamo(_) => "dynamo",
        LoadedScenario::Sharded(_) => "sharded",
        LoadedScenario::Cached(_) => "cached",
        LoadedScenario::Paxos(_) => "paxos",
    };
    format!("ran {protocol}")
}

//! Malformed scenarios are rejected with the file, the line and what was expected – never a panic.

use concord_sim::protocols::LoadedScenario;
use proptest::prelude::*;
use std::path::Path;

fn error(text: &str) -> String {
    match LoadedScenario::parse(Path::new("scenarios/bad.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const OK_TAIL: &str = "\n[protocol.gossip]\n";

#[test]
fn a_valid_minimal_scenario_loads() {
    LoadedScenario::parse(Path::new("x.toml"), OK_TAIL).unwrap();
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let e = error("[run]\nnodes = 3\nnodez = 4\n[protocol.gossip]\n");
    assert!(e.starts_with("scenarios/bad.toml: TOML parse error at line 3"), "{e}");
    assert!(e.contains("unknown field `nodez`"), "{e}");
}

#[test]
fn unknown_protocol_settings_are_rejected() {
    let e = error("[protocol.gossip]\nfanout = 2\nfanot = 3\n");
    assert!(e.contains("line 3") && e.contains("unknown field `fanot`"), "{e}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let e = error("[network]\nloss = 1.5\n[protocol.gossip]\n");
    assert!(e.contains("line 2") && e.contains("a probability must be between 0 and 1, not 1.5"), "{e}");
    let e = error("[run]\nduration = \"soon\"\n[protocol.gossip]\n");
    assert!(e.contains("line 2") && e.contains("not a duration"), "{e}");
    let e = error("[network]\nlatency = { dist = \"gaussian\", mean = \"1ms\" }\n[protocol.gossip]\n");
    assert!(e.contains("unknown variant `gaussian`"), "{e}");
    let e = error("[run]\nnodes = 0\n[protocol.gossip]\n");
    assert!(e.contains("nodes must be between 1 and 1000"), "{e}");
}

#[test]
fn faults_must_name_existing_nodes() {
    let e = error("[run]\nnodes = 3\n[[nemesis.schedule]]\nat = \"1s\"\naction = \"crash\"\nnode = 7\n[protocol.gossip]\n");
    assert!(e.contains("node 7 does not exist (nodes are 1..=3)"), "{e}");
    let e = error("[[nemesis.schedule]]\nat = \"1s\"\naction = \"explode\"\n[protocol.gossip]\n");
    assert!(e.contains("line 3") && e.contains("unknown variant `explode`"), "{e}");
    let e =
        error("[[nemesis.schedule]]\nat = \"1s\"\naction = \"crash\"\nnode = \"boss\"\n[protocol.gossip]\n");
    assert!(e.contains("\"leader\" or \"random\""), "{e}");
}

#[test]
fn the_protocol_must_be_named_once_and_known() {
    assert!(error("[run]\nnodes = 3\n").contains("no protocol"));
    assert!(error("[protocol.chord]\n").contains("unknown protocol \"chord\"; known protocols: gossip, raft"));
    assert!(error("[protocol.gossip]\n[protocol.raft]\n").contains("one protocol per scenario"));
}

#[test]
fn distribution_parameters_are_checked() {
    let e = error(
        "[network]\nlatency = { dist = \"uniform\", min = \"5ms\", max = \"1ms\" }\n[protocol.gossip]\n",
    );
    assert!(e.contains("[network] latency: uniform: min (5ms) is more than max (1ms)"), "{e}");
    let e =
        error("[network]\nlatency = { dist = \"empirical\", file = \"no-such.csv\" }\n[protocol.gossip]\n");
    assert!(e.contains("cannot read latency CDF") && e.contains("no-such.csv"), "{e}");
}

#[test]
fn broken_toml_syntax_is_reported() {
    let e = error("[run\nnodes = 3\n");
    assert!(e.contains("TOML parse error at line 1"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Whatever the bytes, parsing answers Ok or Err – it never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = LoadedScenario::parse(Path::new("fuzz.toml"), &text);
    }

    /// Mutations of a real scenario never panic either.
    #[test]
    fn mutated_scenarios_never_panic(cut in 0usize..2000, insert in "[\\[\\]=\"a-z0-9., \\n-]{0,12}") {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/gossip.toml")).unwrap();
        let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..cut], insert, &text[cut..]);
        let _ = LoadedScenario::parse(Path::new("fuzz.toml"), &mutated);
    }
}

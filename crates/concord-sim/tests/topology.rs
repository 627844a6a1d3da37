//! Zones and regions (`[topology]`): the latency each link gets from where its nodes stand, the
//! precise errors of a topology that does not hold together, the faults that hit a zone or a
//! region, and `scenarios/regions.toml` – Raft over three regions – doing what it says.

use concord_core::{NodeId, Time};
use concord_sim::network::{Fate, Network};
use concord_sim::protocols::LoadedScenario;
use concord_sim::{RunOptions, Scenario};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::IgnoredAny;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn parse(text: &str) -> Result<Scenario<IgnoredAny>, String> {
    Scenario::<IgnoredAny>::parse(Path::new("topo.toml"), &format!("{text}\n[protocol.any]\n"))
        .map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Two regions: eu with zones eu-1 (nodes 1, 2) and eu-2 (node 3), us with one zone (node 4).
const TWO_REGIONS: &str = r#"
[run]
nodes = 4
[topology]
zone_latency = { dist = "constant", value = "1ms" }
cross_zone_latency = { dist = "constant", value = "3ms" }
[[topology.region]]
name = "eu"
zones = 2
nodes = [[1, 2], [3]]
[[topology.region]]
name = "us"
zones = ["us-east-1a"]
nodes = [[4]]
[topology.region_latency]
eu.us = { dist = "constant", value = "40ms" }
"#;

/// When a message sent at 0 on `from → to` arrives.
fn arrival(net: &mut Network, from: u32, to: u32) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    match net.send(NodeId(from), NodeId(to), "ping", Time::ZERO, &mut rng) {
        Fate::Arrives(t, None) => t.0 / 1_000_000,
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_link_takes_the_latency_of_where_its_nodes_stand() {
    let s = parse(TWO_REGIONS).unwrap();
    let mut net = Network::new(&s.network, s.topology.as_ref(), 4);
    assert_eq!(arrival(&mut net, 1, 2), 1, "same zone");
    assert_eq!(arrival(&mut net, 1, 3), 3, "zones of one region");
    assert_eq!(arrival(&mut net, 3, 4), 40, "regions, one way");
    assert_eq!(arrival(&mut net, 4, 2), 40, "a pair given once applies both ways");
    let p = &s.topology.as_ref().unwrap().placement;
    assert_eq!(p.zones[p.zone(4)].0, "us-east-1a");
    assert_eq!(p.region_nodes(0), vec![1, 2, 3]);
}

#[test]
fn link_overrides_still_apply_on_top_of_the_topology() {
    let text = format!(
        "{TWO_REGIONS}[[network.link]]\nfrom = 1\nto = 4\nlatency = {{ dist = \"constant\", value = \"7ms\" }}\n"
    );
    let s = parse(&text).unwrap();
    let mut net = Network::new(&s.network, s.topology.as_ref(), 4);
    assert_eq!(arrival(&mut net, 1, 4), 7);
    assert_eq!(arrival(&mut net, 4, 1), 40, "the override was one way");
}

#[test]
fn jitter_scales_each_delay_within_its_bounds() {
    let text = TWO_REGIONS
        .replace("[[topology.region]]\nname = \"eu\"", "jitter = 0.1\n[[topology.region]]\nname = \"eu\"");
    let s = parse(&text).unwrap();
    let mut net = Network::new(&s.network, s.topology.as_ref(), 4);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let delays: Vec<u64> = (0..500)
        .map(|_| match net.send(NodeId(1), NodeId(4), "ping", Time::ZERO, &mut rng) {
            Fate::Arrives(t, None) => t.0,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(delays.iter().all(|&d| (36_000_000..=44_000_000).contains(&d)), "within 40 ms ± 10 %");
    assert!(delays.iter().any(|&d| d < 38_000_000) && delays.iter().any(|&d| d > 42_000_000), "spread");
}

#[test]
fn nodes_per_zone_fills_the_zones_in_order() {
    let s = parse(
        r#"
[run]
nodes = 6
[topology]
nodes_per_zone = 2
zone_latency = { dist = "constant", value = "1ms" }
cross_zone_latency = { dist = "constant", value = "2ms" }
[[topology.region]]
name = "eu"
zones = 2
[[topology.region]]
name = "us"
zones = 1
[topology.region_latency]
us.eu = { dist = "constant", value = "40ms" }
"#,
    )
    .unwrap();
    let p = &s.topology.unwrap().placement;
    let zones: Vec<&str> = (1..=6).map(|id| p.zones[p.zone(id)].0.as_str()).collect();
    assert_eq!(zones, ["eu-1", "eu-1", "eu-2", "eu-2", "us-1", "us-1"]);
}

#[test]
fn a_topology_that_does_not_hold_together_is_an_error_that_says_why() {
    let cases: &[(&str, &str, &str)] = &[
        ("nodes = [[1, 2], [3]]", "nodes = [[1, 2], [2, 3]]", "node 2 is placed twice: in zone \"eu-1\" and in zone \"eu-2\""),
        ("nodes = [[1, 2], [3]]", "nodes = [[1], [3]]", "node 2 is placed in no zone of the [topology]"),
        ("nodes = [[1, 2], [3]]", "nodes = [[1, 2], [3, 9]]", "zone \"eu-2\": node 9 does not exist (nodes are 1..=4)"),
        ("nodes = [[1, 2], [3]]", "nodes = [[1, 2, 3]]", "region \"eu\" has 2 zones but 1 lists of nodes"),
        ("eu.us = ", "eu.mars = ", "[topology.region_latency] eu.mars: no region \"mars\" in the [topology]"),
        ("eu.us = { dist = \"constant\", value = \"40ms\" }", "eu.us = { dist = \"constant\", value = \"40ms\" }\nus.eu = { dist = \"constant\", value = \"40ms\" }", "eu.us and us.eu are both given: give each pair once"),
        ("eu.us = { dist = \"constant\", value = \"40ms\" }", "", "no latency between regions \"eu\" and \"us\""),
        ("cross_zone_latency = { dist = \"constant\", value = \"3ms\" }", "", "cross_zone_latency is missing: region \"eu\" has nodes in several zones"),
        ("zones = [\"us-east-1a\"]", "zones = [\"eu-1\"]", "zone \"eu-1\" is in two regions (\"eu\" and \"us\")"),
        ("name = \"us\"", "name = \"eu\"", "[[topology.region]] \"eu\" is defined twice"),
        ("[[topology.region]]\nname = \"eu\"", "nodes_per_zone = 1\n[[topology.region]]\nname = \"eu\"", "either nodes_per_zone or each region's nodes, not both"),
        ("value = \"40ms\"", "value = \"40ms\", extra = 1", "unknown field `extra`"),
        ("zones = 2", "zones = 0", "zones must be between 1 and 100, not 0"),
    ];
    for (from, to, want) in cases {
        assert!(TWO_REGIONS.contains(from), "{from}");
        let e = error(&TWO_REGIONS.replacen(from, to, 1));
        assert!(e.contains(want), "{from} → {to}:\n  got  {e}\n  want {want}");
    }
    let e = error(&TWO_REGIONS.replace("nodes = 4", "nodes = 5"));
    assert!(e.contains("node 5 is placed in no zone"), "{e}");
    let e = error("[run]\nnodes = 5\n[topology]\nnodes_per_zone = 2\nzone_latency = { dist = \"constant\", value = \"1ms\" }\n[[topology.region]]\nname = \"eu\"\nzones = 2\n");
    assert!(e.contains("nodes_per_zone = 2 over 2 zones places 4 nodes, but [run] nodes = 5"), "{e}");
}

#[test]
fn zone_and_region_faults_must_name_places_that_exist() {
    let fault = |action: &str, key: &str, place: &str| {
        format!(
            "{TWO_REGIONS}[[nemesis.schedule]]\nat = \"1s\"\naction = \"{action}\"\n{key} = \"{place}\"\n"
        )
    };
    let e = error(&fault("crash-region", "region", "mars"));
    assert!(e.contains("no region \"mars\" in the [topology] (it has eu, us)"), "{e}");
    let e = error(&fault("crash-zone", "zone", "eu-3"));
    assert!(e.contains("no zone \"eu-3\" in the [topology] (it has eu-1, eu-2, us-east-1a)"), "{e}");
    parse(&fault("partition-region", "region", "leader")).unwrap();
    let e = error("[[nemesis.schedule]]\nat = \"1s\"\naction = \"crash-zone\"\nzone = \"a\"\n");
    assert!(e.contains("a zone fault needs a [topology]"), "{e}");
    let e = error("[nemesis.random]\nkinds = [\"crash-region\"]\n");
    assert!(e.contains("need a [topology]"), "{e}");
}

// ----- scenarios/regions.toml ----------------------------------------------------------------

fn regions() -> LoadedScenario {
    LoadedScenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/regions.toml")).unwrap()
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

fn traced(scenario: &LoadedScenario, seed: u64) -> (concord_sim::RunReport, Vec<serde_json::Value>, Vec<u8>) {
    let out = Shared::default();
    let report = scenario.run(RunOptions { seed, trace: Some(Box::new(out.clone())), ..Default::default() });
    let bytes = out.0.lock().unwrap().clone();
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (report, lines, bytes)
}

#[test]
fn the_regions_scenario_is_deterministic() {
    let scenario = regions();
    let (a, _, bytes_a) = traced(&scenario, 3);
    let (b, _, bytes_b) = traced(&scenario, 3);
    assert!(bytes_a == bytes_b, "same seed, different traces");
    assert_eq!(a.trace_hash, b.trace_hash);
    let (c, _, _) = traced(&scenario, 4);
    assert_ne!(a.trace_hash, c.trace_hash);
}

/// Commits wait for a majority: the leader, a node of its own region and one of the nearest other
/// region – so a write takes about one round trip to the second-closest region (80 ms between eu
/// and us, 110 between us and asia), never the farthest (160 ms). After each fault a new leader
/// is elected in another region, and every check passes.
#[test]
fn the_regions_scenario_shows_wan_commits_and_elections_after_a_region_is_lost() {
    let scenario = regions();
    for seed in 1..=3 {
        let (report, trace, _) = traced(&scenario, seed);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        let l = report.summary.latency;
        assert!(l.updates > 50, "seed {seed}: {l:?}");
        assert!((78.0..125.0).contains(&l.update_p50_ms), "seed {seed}: write p50 {} ms", l.update_p50_ms);
        // The topology line comes first, so a viewer can label the nodes.
        assert_eq!(trace[0]["ev"], "topology");
        assert_eq!(trace[0]["nodes"]["5"]["region"], "asia");
        let at = |ev: &str| trace.iter().find(|e| e["ev"] == ev).map(|e| e["t"].as_u64().unwrap());
        let cut = at("partition-region").expect("the leader's region was cut off");
        let crash = at("crash-region").expect("the leader's region crashed");
        let elected_after = |t0: u64| {
            trace
                .iter()
                .any(|e| e["ev"] == "protocol" && e["name"] == "elected" && e["t"].as_u64().unwrap() > t0)
        };
        assert!(elected_after(cut) && elected_after(crash), "seed {seed}: a new leader after each fault");
        let crashed: Vec<u64> = trace
            .iter()
            .filter(|e| e["ev"] == "crash" && e["t"].as_u64() == Some(crash))
            .map(|e| e["node"].as_u64().unwrap())
            .collect();
        let region = trace.iter().find(|e| e["ev"] == "crash-region").unwrap();
        let want: Vec<u64> =
            region["nodes"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert_eq!(crashed, want, "seed {seed}: every node of the region crashed at once");
    }
}

#[test]
fn random_zone_and_region_faults_keep_raft_safe() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/regions.toml"))
        .unwrap()
        .replace(
            "[protocol.raft]",
            "[nemesis.random]\ninterval = \"1500ms\"\nfault_duration = \"2s\"\nkinds = [\"crash-zone\", \"crash-region\", \"partition-region\"]\n\n[protocol.raft]",
        );
    let scenario = LoadedScenario::parse(Path::new("scenarios/regions.toml"), &text).unwrap();
    let mut crashes = 0;
    for seed in 1..=3 {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        crashes += report.summary.crashes;
    }
    assert!(crashes > 3, "the random nemesis crashed zones and regions ({crashes} crashes)");
}

//! Multi-Paxos in the simulator: tests named after *Paxos Made Simple* (Lamport 2001, "PMS") and
//! *Paxos Made Moderately Complex* (van Renesse and Altinbuken 2015, "PMMC"), a seed sweep of the
//! fault scenario, the deliberate bugs caught, and Flexible Paxos's quorum condition.
//!
//! Every run has the online invariants on (`concord_paxos::SafetyMonitor`: one value chosen per
//! slot and never changed, P2b, no acceptance below a promise).
//!
//! ```sh
//! # the default suite (200 seeds of the fault scenario, each mutation caught, the scenario tests):
//! cargo test -p concord-sim --test paxos
//! # the long sweep, 2 000 seeds (release mode is much faster):
//! CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
//!   cargo test --release -p concord-sim --test paxos -- --ignored --nocapture
//! ```

use concord_sim::protocols::paxos::{PaxosKv, PaxosScenario};
use concord_sim::protocols::LoadedScenario;
use concord_sim::sweep::first_failure;
use concord_sim::{RunOptions, RunReport, Scenario, Simulation};
use std::path::Path;
use std::sync::Arc;
use toml::{Table, Value};

const PAXOS_TOML: &str = include_str!("../../../scenarios/paxos.toml");

/// "Caught within 1 000 seeds" means a seed in `1..=1000`.
const SEARCH_LIMIT: u64 = 1000;

// ----- scenarios ---------------------------------------------------------------------------------

/// Set a dotted key, creating tables on the way.
fn set(t: &mut Table, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap();
    let mut table = t;
    for p in parts {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{p} is not a table"));
    }
    table.insert(last.to_string(), value);
}

/// `scenarios/paxos.toml`, shortened to `secs` seconds (healed 1.5 s before the end); `edit`
/// tunes it.
fn variant(secs: u64, edit: impl FnOnce(&mut Table)) -> Table {
    let mut t: Table = toml::from_str(PAXOS_TOML).expect("scenarios/paxos.toml parses");
    set(&mut t, "run.duration", format!("{secs}s").into());
    set(&mut t, "run.heal_at", format!("{}ms", secs * 1000 - 1500).into());
    edit(&mut t);
    t
}

fn parse(t: &Table) -> Arc<Scenario<PaxosScenario>> {
    let text = toml::to_string(t).expect("a table serialises");
    Arc::new(Scenario::parse(Path::new("paxos-test.toml"), &text).unwrap_or_else(|e| panic!("{e}")))
}

fn run(scenario: &Arc<Scenario<PaxosScenario>>, seed: u64) -> RunReport {
    Simulation::<PaxosKv>::new(Arc::clone(scenario), RunOptions { seed, ..Default::default() }).run()
}

fn events(report: &RunReport, name: &str) -> u64 {
    report.summary.protocol_events.get(name).copied().unwrap_or(0)
}

/// A quiet 3- or 5-node cluster on a LAN, with a write-heavy workload; `extra` goes into
/// `[protocol.paxos]` (last in the text).
fn quiet(nodes: u32, secs: u64, extra: &str) -> Arc<Scenario<PaxosScenario>> {
    let text = format!(
        r#"
[run]
nodes = {nodes}
duration = "{secs}s"
checks = ["invariants", "linearizability"]

[network]
latency = {{ dist = "uniform", min = "1ms", max = "5ms" }}

[workload]
clients = 3
keys = 3
mix = {{ read = 0.3, write = 0.5, cas = 0.2 }}
timeout = "300ms"
think = "5ms"

[protocol.paxos]
{extra}
"#
    );
    Arc::new(Scenario::parse(Path::new("paxos-quiet.toml"), &text).unwrap_or_else(|e| panic!("{e}")))
}

// ----- PMS §3: a distinguished proposer ------------------------------------------------------------

/// PMS §3 ("the leader … is the distinguished proposer"), PMMC §4 (failure detection): on a quiet
/// network one node is elected within a second, every other node follows it, and with nothing
/// failing it stays leader – no second ballot is started – while clients' operations complete.
#[test]
fn a_distinguished_proposer_is_elected() {
    for seed in 1..=5 {
        let scenario = quiet(3, 3, "");
        let mut sim =
            Simulation::<PaxosKv>::new(Arc::clone(&scenario), RunOptions { seed, ..Default::default() });
        sim.start();
        sim.run_until(concord_core::Time::from_duration(std::time::Duration::from_secs(1)));
        let leaders: Vec<_> =
            (1..=3).map(concord_core::NodeId).filter(|&id| sim.node(id).unwrap().is_leader()).collect();
        assert_eq!(leaders.len(), 1, "seed {seed}: leaders {leaders:?}");
        let leader = leaders[0];
        let ballot = sim.node(leader).unwrap().ballot();
        for id in (1..=3).map(concord_core::NodeId).filter(|&id| id != leader) {
            assert_eq!(sim.node(id).unwrap().leader(), Some(leader), "seed {seed}: {id} does not follow");
        }
        let report = {
            sim.run_until(concord_core::Time::from_duration(std::time::Duration::from_secs(3)));
            assert!(sim.node(leader).unwrap().is_leader(), "seed {seed}: the leader changed without a fault");
            assert_eq!(sim.node(leader).unwrap().ballot(), ballot);
            assert!(sim.violations().is_empty(), "seed {seed}: {:?}", sim.violations());
            sim.history().events.iter().filter(|e| e.kind == concord_core::history::EventType::Ok).count()
        };
        assert!(report > 100, "seed {seed}: only {report} operations completed");
    }
}

// ----- PMS §2: agreement despite failures ----------------------------------------------------------

/// PMS §2.1 (safety: only a single value is chosen) and §2.2 (acceptors that fail and restart
/// remember): under crashes with torn writes, partitions, pauses, loss and duplication, the
/// invariants hold after every step, the history is linearizable, and once healed the cluster
/// makes progress; new leaders adopt accepted values (some `elected` events adopt slots).
#[test]
fn agreement_despite_failures() {
    let scenario = parse(&variant(6, |_| {}));
    let (mut faults, mut elections) = (0, 0);
    for seed in 1..=10 {
        let report = run(&scenario, seed);
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        faults += report.summary.crashes + report.summary.partitions + report.summary.pauses;
        elections += events(&report, "elected");
    }
    assert!(faults >= 20, "only {faults} faults in 10 seeds");
    assert!(elections >= 20, "only {elections} leaders elected in 10 seeds: new leaders are not exercised");
}

// ----- PMMC §4: garbage collection, a node far behind ------------------------------------------------

/// PMMC §4 (garbage collection) and PMS §3 (a server that missed commands learns them): node 3 is
/// cut off while the others choose hundreds of slots and compact them into snapshots; when it
/// rejoins it cannot get the compacted slots one by one, so it installs a snapshot, then catches
/// up, and ends with the same data as the others.
#[test]
fn a_node_far_behind_recovers_via_snapshot() {
    let text = r#"
[run]
nodes = 3
duration = "6s"
heal_at = "4s"
checks = ["invariants", "linearizability", "progress"]

[network]
latency = { dist = "uniform", min = "1ms", max = "5ms" }

[workload]
clients = 3
keys = 3
mix = { read = 0.2, write = 0.8 }
timeout = "300ms"
think = "2ms"
stop = "5s"

[[nemesis.schedule]]
at = "500ms"
action = "crash"
node = 3

[[nemesis.schedule]]
at = "3500ms"
action = "restart"
node = 3

[protocol.paxos]
snapshot_threshold_slots = 50
"#;
    for seed in 1..=3 {
        let scenario: Arc<Scenario<PaxosScenario>> =
            Arc::new(Scenario::parse(Path::new("paxos-behind.toml"), text).unwrap_or_else(|e| panic!("{e}")));
        let mut sim =
            Simulation::<PaxosKv>::new(Arc::clone(&scenario), RunOptions { seed, ..Default::default() });
        sim.start();
        let at = |ms| concord_core::Time::from_duration(std::time::Duration::from_millis(ms));
        sim.run_until(at(3400));
        let ahead =
            (1..=2).map(|i| sim.node(concord_core::NodeId(i)).unwrap().snapshot_slot()).min().unwrap();
        assert!(ahead >= 100, "seed {seed}: the others compacted only up to slot {ahead}");
        sim.run_until(at(6000));
        assert!(sim.violations().is_empty(), "seed {seed}: {:?}", sim.violations());
        let ids = [1, 2, 3].map(concord_core::NodeId);
        let applied: Vec<u64> = ids.iter().map(|&id| sim.node(id).unwrap().applied()).collect();
        assert!(applied.iter().all(|&a| a == applied[0]), "seed {seed}: applied {applied:?}");
        let data: Vec<_> =
            ids.iter().map(|&id| concord_sim::SimProtocol::observe(sim.node(id).unwrap())).collect();
        assert!(data.iter().all(|d| *d == data[0]), "seed {seed}: replicas differ");
        drop(sim);
        let report = run(&scenario, seed);
        assert!(
            events(&report, "snapshot-installed") >= 1,
            "seed {seed}: node 3 caught up without a snapshot"
        );
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}

// ----- PMS §3 / PMMC §4: duelling proposers ----------------------------------------------------------

/// Five nodes whose leader timeouts all fire within the same millisecond, on a network slower
/// than that: several proposers start phase 1 at once.
fn duel(backoff: bool) -> Arc<Scenario<PaxosScenario>> {
    quiet(
        5,
        3,
        &format!(
            "backoff = {backoff}\nleader_timeout_min = \"100ms\"\nleader_timeout_max = \"101ms\"\nheartbeat_interval = \"40ms\""
        ),
    )
}

/// PMS §3 ("it's easy to construct a scenario in which two proposers each keep issuing a sequence
/// of proposals with increasing numbers, none of which are ever chosen"), PMMC §4 (randomised
/// back-off): proposers that retry at once when preempted keep preempting each other – ballots
/// climb and few operations complete; with back-off the duel ends and clients make progress.
#[test]
fn duelling_proposers_livelock_without_backoff_and_progress_with_it() {
    let (mut ok_with, mut ok_without, mut ballots_with, mut ballots_without) = (0, 0, 0, 0);
    for seed in 1..=4 {
        let with = run(&duel(true), seed);
        let without = run(&duel(false), seed);
        assert!(with.passed(), "seed {seed}, back-off: {:?}", with.violations);
        assert!(
            !without
                .violations
                .iter()
                .any(|v| v.starts_with("invariant") || v.starts_with("linearizability:")),
            "seed {seed}: a livelock is not a safety violation: {:?}",
            without.violations
        );
        println!(
            "seed {seed}: back-off: {} ok, {} campaigns; no back-off: {} ok, {} campaigns",
            with.summary.ops.ok,
            events(&with, "campaign"),
            without.summary.ops.ok,
            events(&without, "campaign")
        );
        ok_with += with.summary.ops.ok;
        ok_without += without.summary.ops.ok;
        ballots_with += events(&with, "campaign");
        ballots_without += events(&without, "campaign");
    }
    assert!(
        ballots_without > 20 * ballots_with,
        "campaigns: {ballots_without} without back-off, {ballots_with} with"
    );
    assert!(ok_without * 20 < ok_with, "completed operations: {ok_without} without back-off, {ok_with} with");
}

// ----- the sweep ---------------------------------------------------------------------------------

/// The fault scenario as swept: 8 s (healed at 6.5 s) to keep 200 seeds cheap in debug builds.
fn sweep_scenario() -> LoadedScenario {
    let text = toml::to_string(&variant(8, |_| {})).unwrap();
    LoadedScenario::parse(Path::new("scenarios/paxos.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn sweep(seeds: std::ops::RangeInclusive<u64>) {
    let scenario = sweep_scenario();
    let options = concord_sim::sweep::SweepOptions::default();
    let results = concord_sim::sweep::sweep(&scenario, seeds, &options, &|_| {});
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("seed {}: {}", r.seed, r.violations.join("; ")))
        .collect();
    assert!(failed.is_empty(), "{} of {} seeds failed:\n{}", failed.len(), results.len(), failed.join("\n"));
}

/// 200 seeds of the fault scenario pass every check (invariants, linearizability, progress).
#[test]
fn sweep_200_seeds() {
    sweep(1..=200);
}

/// 2 000 seeds (slow: run in release mode, see the module docs).
#[test]
#[ignore]
fn sweep_2000_seeds() {
    sweep(1..=2000);
}

/// The whole scenario file, as `concord sim scenarios/paxos.toml` runs it, passes a few seeds.
#[test]
fn the_scenario_file_passes() {
    let scenario = LoadedScenario::parse(Path::new("scenarios/paxos.toml"), PAXOS_TOML).unwrap();
    for seed in 1..=2 {
        let report = scenario.run(RunOptions { seed, ..Default::default() });
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
    }
}

// ----- deliberate bugs -----------------------------------------------------------------------------

fn with_mutation(mut t: Table, flag: &str) -> Table {
    set(&mut t, &format!("protocol.paxos.mutations.{flag}"), Value::Boolean(true));
    t
}

/// The scenario (without the mutation) used to catch each flag.
fn scenario_for(flag: &str) -> Table {
    match flag {
        // The promise leaves before it is durable: a crash inside the sync window forgets it, and
        // the restarted acceptor may then accept a lower ballot. That matters only while the
        // leader of the lower ballot still runs after a new candidate's phase 1 – which needs the
        // two proposers to miss each other's messages while both reach the acceptor in between:
        // three nodes, a lossy link between nodes 1 and 3. Slow syncs widen the window and a
        // trigger aims a crash right after an acceptor promises another node.
        "promise_before_sync" => variant(4, |t| {
            set(t, "run.nodes", 3.into());
            let mut link = Table::new();
            link.insert("from".into(), 1.into());
            link.insert("to".into(), 3.into());
            link.insert("both_ways".into(), true.into());
            link.insert("loss".into(), 0.7.into());
            set(t, "network.link", Value::Array(vec![Value::Table(link)]));
            let mut own = Table::new();
            own.insert("own".into(), false.into());
            let mut sync = Table::new();
            sync.insert("dist".into(), "uniform".into());
            sync.insert("min".into(), "5ms".into());
            sync.insert("max".into(), "30ms".into());
            set(t, "disk.sync_latency", Value::Table(sync));
            let mut trigger = Table::new();
            trigger.insert("on".into(), "promise".into());
            trigger.insert("where".into(), Value::Table(own));
            trigger.insert("action".into(), "crash".into());
            trigger.insert("probability".into(), 0.5.into());
            trigger.insert("within".into(), "5ms".into());
            trigger.insert("lasts".into(), "30ms".into());
            set(t, "nemesis.trigger", Value::Array(vec![Value::Table(trigger)]));
        }),
        _ => variant(4, |_| {}),
    }
}

/// Sweep `flag`'s scenario from seed 1 to the first safety violation: it must come within
/// `SEARCH_LIMIT` seeds, the mutation must have fired, and the same seed must pass without it.
fn assert_caught(flag: &str) -> u64 {
    let scenario = parse(&with_mutation(scenario_for(flag), flag));
    let (seed, violations) =
        first_failure::<PaxosKv>(&scenario, 1..SEARCH_LIMIT + 1, RunReport::safety_violated)
            .unwrap_or_else(|| panic!("{flag}: not caught within {SEARCH_LIMIT} seeds"));
    println!("{flag}: caught at seed {seed}: {}", violations.join("; "));
    let report = run(&scenario, seed);
    assert!(events(&report, "mutation-fired") > 0, "{flag}: seed {seed} failed without the mutation firing");
    let clean = run(&parse(&scenario_for(flag)), seed);
    assert!(clean.passed(), "{flag}: seed {seed} fails without the mutation: {:?}", clean.violations);
    seed
}

#[test]
fn accept_without_promise_quorum_is_caught() {
    assert_caught("accept_without_promise_quorum");
}

#[test]
fn ignore_highest_accepted_is_caught() {
    assert_caught("ignore_highest_accepted");
}

#[test]
fn promise_before_sync_is_caught() {
    assert_caught("promise_before_sync");
}

/// The tuned scenarios pass without any mutation over a few seeds.
#[test]
fn correct_paxos_passes_every_tuned_scenario() {
    for flag in concord_paxos::Mutations::NAMES {
        if let Some((seed, v)) =
            first_failure::<PaxosKv>(&parse(&scenario_for(flag)), 1..4, |r: &RunReport| !r.passed())
        {
            panic!("the scenario for {flag} fails at seed {seed} without any mutation: {v:?}");
        }
    }
}

// ----- Flexible Paxos ----------------------------------------------------------------------------

fn flexible(q1: u64, q2: u64, unsafe_quorums: bool) -> Table {
    variant(4, |t| {
        set(t, "protocol.paxos.q1", (q1 as i64).into());
        set(t, "protocol.paxos.q2", (q2 as i64).into());
        set(t, "protocol.paxos.unsafe_quorums", unsafe_quorums.into());
    })
}

/// Flexible Paxos: q1 = 4, q2 = 2 of 5 (4 + 2 > 5) is safe under the fault scenario.
#[test]
fn flexible_quorums_that_intersect_are_safe() {
    let scenario = parse(&flexible(4, 2, false));
    if let Some((seed, v)) = first_failure::<PaxosKv>(&scenario, 1..11, RunReport::safety_violated) {
        panic!("q1 = 4, q2 = 2 of 5 breaks at seed {seed}: {v:?}");
    }
}

/// Flexible Paxos's condition is necessary: q1 = 2, q2 = 3 of 5 (2 + 3 ≤ 5) is refused unless
/// `unsafe_quorums = true`, and then a phase-1 quorum misses a chosen value and the checker
/// catches two values chosen for one slot (or a P2b violation, or a non-linearizable history).
#[test]
fn flexible_quorums_that_do_not_intersect_are_refused_and_caught() {
    let text = toml::to_string(&flexible(2, 3, false)).unwrap();
    let err = LoadedScenario::parse(Path::new("flexible.toml"), &text).err().expect("refused");
    assert!(err.to_string().contains("q1 + q2 must exceed n"), "{err}");
    let scenario = parse(&flexible(2, 3, true));
    let (seed, v) = first_failure::<PaxosKv>(&scenario, 1..SEARCH_LIMIT + 1, RunReport::safety_violated)
        .expect("q1 + q2 <= n never broke safety in 1 000 seeds");
    println!("q1 = 2, q2 = 3 of 5: caught at seed {seed}: {}", v.join("; "));
}

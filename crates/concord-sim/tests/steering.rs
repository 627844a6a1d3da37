//! Steered runs replay exactly: a run steered by hand – in many small slices of time, as a
//! live driver does, with crashes, cuts, a dropped message, client requests and a fork – and the
//! replay of its action log on a fresh simulation give the same trace hash.

use concord_core::{NodeId, Process, Time};
use concord_sim::protocols::raft::RaftKv;
use concord_sim::protocols::LoadedScenario;
use concord_sim::steering::{self, Action, LoggedAction, SteeringError, SteeringSettings};
use concord_sim::{RunOptions, Scenario, Simulation};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type RaftScenario = Scenario<concord_sim::protocols::raft::RaftScenario>;

fn raft_faults(settings: &SteeringSettings) -> Arc<RaftScenario> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/raft-faults.toml");
    let LoadedScenario::Raft(scenario) = LoadedScenario::load(&path).unwrap() else {
        panic!("raft-faults.toml is a Raft scenario")
    };
    Arc::new(settings.apply(&scenario))
}

fn settings(nemesis: bool) -> SteeringSettings {
    SteeringSettings { nemesis, clients: Some(2), duration_ns: 10_000_000_000 }
}

fn simulation(scenario: &Arc<RaftScenario>, seed: u64) -> Simulation<RaftKv> {
    let mut sim =
        Simulation::new(Arc::clone(scenario), RunOptions { seed, hash_trace: true, ..Default::default() });
    sim.start();
    sim
}

fn leader(sim: &Simulation<RaftKv>) -> Option<u32> {
    sim.nodes().into_iter().find(|(_, p)| p.and_then(|p| p.role()) == Some("leader")).map(|(id, _)| id.0)
}

/// What a person at the viewer does, driven like the live server drives it: time advances in
/// 7 ms slices, sometimes one event at a time, and each action is logged where it happened.
struct Driver {
    sim: Simulation<RaftKv>,
    log: Vec<LoggedAction>,
}

impl Driver {
    fn act(&mut self, action: Action) {
        let logged = LoggedAction { events: self.sim.events_processed(), t: self.sim.now().0, action };
        steering::perform(&mut self.sim, &logged.action).unwrap();
        self.log.push(logged);
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.sim.now() + d;
        while self.sim.now() < until {
            let slice = (self.sim.now() + Duration::from_millis(7)).min(until);
            self.sim.advance_to(slice);
        }
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            assert!(self.sim.step_one());
        }
    }
}

fn steer(nemesis: bool) -> (Driver, Arc<RaftScenario>) {
    let scenario = raft_faults(&settings(nemesis));
    let mut d = Driver { sim: simulation(&scenario, 5), log: Vec::new() };
    d.run_for(Duration::from_millis(800));
    let first = leader(&d.sim).expect("a leader within 800 ms");
    d.act(Action::Write { node: first, key: "x".into(), value: 42 });
    d.steps(3); // an action in the middle of a burst of events at one instant
    d.act(Action::Crash { node: first });
    d.run_for(Duration::from_millis(600));
    let second = leader(&d.sim).expect("a new leader after the crash");
    assert_ne!(second, first);
    let other = (1..=5).find(|&n| n != first && n != second).unwrap();
    d.act(Action::Cut { a: second, b: other });
    d.steps(17);
    while d.sim.in_flight().is_empty() {
        d.steps(1); // a loopback or a timer: the next message is a few events on
    }
    let victim = d.sim.in_flight().first().expect("something is in flight").id;
    d.act(Action::Drop { message: victim });
    assert!(d.sim.in_flight().iter().all(|m| m.id != victim), "the dropped message is gone");
    d.run_for(Duration::from_millis(100));
    d.act(Action::Fork { seed: 99 });
    d.act(Action::Restart { node: first });
    d.act(Action::Read { node: second, key: "x".into() });
    d.run_for(Duration::from_millis(300));
    d.act(Action::HealLink { a: second, b: other });
    d.act(Action::Isolate { node: other });
    d.run_for(Duration::from_millis(200));
    d.act(Action::Heal);
    d.run_for(Duration::from_millis(300));
    (d, scenario)
}

#[test]
fn a_session_replays_to_the_same_trace_hash() {
    for nemesis in [false, true] {
        let (live, scenario) = steer(nemesis);
        let end = live.sim.now();
        let live_hash = live.sim.trace_hash().unwrap();

        let mut replayed = simulation(&scenario, 5);
        steering::replay(&mut replayed, &live.log).unwrap();
        replayed.advance_to(end);
        assert_eq!(replayed.events_processed(), live.sim.events_processed());
        assert_eq!(replayed.trace_hash().unwrap(), live_hash, "nemesis {nemesis}: the replay differs");

        // The log survives a round trip through its file format.
        let log = steering::SteeringLog {
            format: steering::SteeringLog::FORMAT.into(),
            scenario: "scenarios/raft-faults.toml".into(),
            seed: 5,
            settings: settings(nemesis),
            actions: live.log.clone(),
            saved_at: Some(steering::Place { events: live.sim.events_processed(), t: end.0 }),
            trace_hash: Some(format!("{live_hash:016x}")),
        };
        let text = serde_json::to_string_pretty(&log).unwrap();
        assert_eq!(steering::SteeringLog::parse(&text).unwrap(), log);
        assert!(text.contains(r#""do": "heal-link""#), "actions are tagged by name: {text}");
    }
}

#[test]
fn the_fork_changes_what_follows_and_nothing_before() {
    let (live, scenario) = steer(false);
    let fork = live.log.iter().position(|a| matches!(a.action, Action::Fork { .. })).unwrap();
    // The same actions with another fork seed: identical up to the fork, different after it.
    let mut other = live.log.clone();
    other[fork].action = Action::Fork { seed: 100 };
    let mut a = simulation(&scenario, 5);
    let mut b = simulation(&scenario, 5);
    steering::replay(&mut a, &live.log[..fork]).unwrap();
    steering::replay(&mut b, &other[..fork]).unwrap();
    assert_eq!(a.trace_hash(), b.trace_hash());
    // Past the fork the runs diverge, so the rest of the original log no longer fits the other
    // seed's run: it either fails to replay or ends with another trace.
    steering::replay_one(&mut a, &live.log[fork]).unwrap();
    steering::replay_one(&mut b, &other[fork]).unwrap();
    let end = Time::from_duration(Duration::from_millis(1500));
    a.advance_to(end);
    b.advance_to(end);
    assert_ne!(a.trace_hash(), b.trace_hash(), "a fork with another seed is another run");
}

#[test]
fn a_log_from_another_seed_is_refused_with_the_place_it_diverged() {
    let (live, scenario) = steer(false);
    let mut wrong = simulation(&scenario, 6);
    let error = steering::replay(&mut wrong, &live.log).unwrap_err();
    let SteeringError::Replay { error: inner, .. } = &error else { panic!("names the action: {error}") };
    assert!(
        matches!(
            **inner,
            SteeringError::NotInFlight(_)
                | SteeringError::Seek { .. }
                | SteeringError::Mismatch { .. }
                | SteeringError::RunEnded { .. }
        ),
        "a precise error: {error}"
    );
    let error = error.to_string();
    assert!(
        error.contains("does not match") || error.contains("not in flight") || error.contains("ended"),
        "a precise error: {error}"
    );
    assert!(error.starts_with("action "), "names the action: {error}");
}

#[test]
fn actions_on_nodes_that_do_not_exist_are_refused() {
    let scenario = raft_faults(&settings(false));
    let mut sim = simulation(&scenario, 1);
    let error = steering::perform(&mut sim, &Action::Crash { node: 9 }).unwrap_err();
    assert!(matches!(error, SteeringError::NoSuchNode { node: 9, nodes: 5 }));
    assert_eq!(error.to_string(), "no node 9: nodes are 1..=5");
    let error = steering::perform(&mut sim, &Action::Cut { a: 2, b: 2 }).unwrap_err();
    assert!(matches!(error, SteeringError::SelfLink(2)));
    assert_eq!(error.to_string(), "a link joins two different nodes (got 2 and 2)");
    let error = steering::perform(&mut sim, &Action::Drop { message: 123_456 }).unwrap_err();
    assert!(matches!(error, SteeringError::NotInFlight(123_456)));
    assert_eq!(error.to_string(), "message 123456 is not in flight");
    assert!(sim.node(NodeId(1)).is_none(), "nothing ran: the nodes boot at the first event");
}

#[test]
fn slicing_time_differently_gives_the_same_run() {
    let scenario = raft_faults(&settings(true));
    let mut coarse = simulation(&scenario, 3);
    coarse.advance_to(Time::from_duration(Duration::from_secs(2)));
    let mut fine = simulation(&scenario, 3);
    let mut t = Time::ZERO;
    while t < Time::from_duration(Duration::from_secs(2)) {
        t = t + Duration::from_micros(1_700);
        fine.advance_to(t.min(Time::from_duration(Duration::from_secs(2))));
        let due = fine.next_event_at().is_some_and(|at| at <= Time::from_duration(Duration::from_secs(2)));
        if due && fine.events_processed().is_multiple_of(5) {
            fine.step_one();
        }
    }
    fine.advance_to(Time::from_duration(Duration::from_secs(2)));
    assert_eq!(coarse.events_processed(), fine.events_processed());
    assert_eq!(coarse.trace_hash(), fine.trace_hash());
}

//! Steering: a run steered by hand, saved as a log of actions that replays exactly.
//!
//! (Named *steering*, not *session*: in Concord "session" means only Raft's exactly-once client
//! sessions, and the checker's Terry-style guarantees live in `concord_check::guarantees`. The log's
//! `format` string stays `concord-session/1` so that logs saved before the rename still load.)
//!
//! `concord sim --interactive` lets a person act on a live simulation – crash a node, cut a link,
//! drop a message, send a request, fork. Each action is logged with *where* it happened:
//!
//! ```json
//! {"events": 18211, "t": 2430000000, "do": "crash", "node": 3}
//! ```
//!
//! `events` is how many events the simulator had processed and `t` the virtual time (ns). The
//! simulator is deterministic, so the scenario, the seed and this log are the whole steered run:
//! [`replay`] processes events one by one until `events` is reached, moves the clock to `t`, and
//! performs the action – the same state, the same trace, byte for byte (the trace hash says so).
//!
//! A **fork** is an action too: `{"do": "fork", "seed": 7}` keeps everything that happened so far
//! and draws every later random choice (latencies, losses, election timeouts, the workload) from
//! seed 7 instead (see [`Simulation::reseed`]). A forked run is therefore reproducible from the
//! original seed plus its log, like any other.
//!
//! The log file ([`SteeringLog`]) also carries what the interactive mode changed in the scenario
//! (the nemesis switched off, a different number of clients, a longer run), so that
//! `concord sim SCENARIO --actions session.json --trace run.jsonl` rebuilds the same run.

use crate::scenario::{Check, NemesisConfig, Scenario};
use crate::sim::Simulation;
use crate::SimProtocol;
use concord_core::{NodeId, Op, Time};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One thing a person did to the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    Crash {
        node: u32,
    },
    Restart {
        node: u32,
    },
    Pause {
        node: u32,
    },
    Resume {
        node: u32,
    },
    /// Cut `node` off from every other node.
    Isolate {
        node: u32,
    },
    /// Cut the link between `a` and `b`, both ways.
    Cut {
        a: u32,
        b: u32,
    },
    /// Reconnect `a` and `b`, whatever cut them.
    HealLink {
        a: u32,
        b: u32,
    },
    /// Remove every cut.
    Heal,
    /// Drop message `message` (every copy still on its way).
    Drop {
        message: u64,
    },
    /// A client write of `key = value`, sent to `node`.
    Write {
        node: u32,
        key: String,
        value: i64,
    },
    /// A client read of `key`, sent to `node`.
    Read {
        node: u32,
        key: String,
    },
    /// Draw every later random choice from `seed`.
    Fork {
        seed: u64,
    },
}

/// An action and where in the run it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedAction {
    /// Events processed before the action.
    pub events: u64,
    /// Virtual time of the action, in nanoseconds.
    pub t: u64,
    #[serde(flatten)]
    pub action: Action,
}

/// The settings an interactive session changes in its scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringSettings {
    /// Keep the scenario's nemesis (scheduled, random and triggered faults) and its `heal_at`.
    /// Off by default in interactive mode: the person is the nemesis. Off also drops the
    /// `progress` check, which judges the time after `heal_at`.
    pub nemesis: bool,
    /// The number of workload clients, if changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
    /// The run's length (`run.duration`), in nanoseconds of virtual time.
    pub duration_ns: u64,
}

impl SteeringSettings {
    /// The scenario the session runs: `scenario` with these settings applied.
    pub fn apply<C: Clone>(&self, scenario: &Scenario<C>) -> Scenario<C> {
        let mut s = scenario.clone();
        if !self.nemesis {
            s.nemesis = NemesisConfig::default();
            s.run.heal_at = None;
            // "Progress after the faults healed" needs a heal: without one it always fails.
            s.run.checks.retain(|c| *c != Check::Progress);
        }
        if let Some(clients) = self.clients {
            s.workload.clients = clients;
        }
        s.run.duration = Duration::from_nanos(self.duration_ns);
        s
    }
}

/// Why a steering log could not be read, an action was refused, or a replay went astray. The
/// messages are the ones users saw before the type existed; match on the variants, not the text.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    #[error("not a session log: {0}")]
    NotALog(serde_json::Error),
    #[error("unknown session format {found:?} (expected {expected:?})")]
    UnknownFormat { found: String, expected: &'static str },
    #[error("no node {node}: nodes are 1..={nodes}")]
    NoSuchNode { node: u32, nodes: u32 },
    #[error("a link joins two different nodes (got {0} and {0})")]
    SelfLink(u32),
    #[error("message {0} is not in flight")]
    NotInFlight(u64),
    /// The run ended before the place a log names.
    #[error("the run ended after {processed} events, before event {wanted}")]
    RunEnded { processed: u64, wanted: u64 },
    /// The replay passed the place's event count at another time (another scenario or seed).
    #[error(
        "the run does not match the log: expected {} events at t={} ns, the replay is at {} events, t={} ns (another scenario or seed?)",
        expected.events, expected.t, actual.events, actual.t
    )]
    Mismatch { expected: Place, actual: Place },
    /// Reaching the place of `action` failed.
    #[error("{action:?}: {error}")]
    Seek { action: Action, error: Box<SteeringError> },
    /// Action number `number` (from 1) of `of` failed.
    #[error("action {number} of {of}: {error}")]
    Replay { number: usize, of: usize, error: Box<SteeringError> },
}

/// A place in a run: after `events` events, at virtual time `t` (ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub events: u64,
    pub t: u64,
}

/// A saved session: scenario file, seed, settings and actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringLog {
    /// Always [`SteeringLog::FORMAT`].
    pub format: String,
    /// The scenario file, as given on the command line (informational).
    pub scenario: String,
    pub seed: u64,
    #[serde(flatten)]
    pub settings: SteeringSettings,
    pub actions: Vec<LoggedAction>,
    /// Where the session was when it was saved: a replay stops here, so its trace is the saved
    /// trace. Without it, a replay runs on to the end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<Place>,
    /// The hash of the session's trace when it was saved (FNV-1a of the bytes, hex), so a replay
    /// can say whether it came out the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_hash: Option<String>,
}

impl SteeringLog {
    pub const FORMAT: &'static str = "concord-session/1";

    pub fn parse(text: &str) -> Result<SteeringLog, SteeringError> {
        let log: SteeringLog = serde_json::from_str(text).map_err(SteeringError::NotALog)?;
        if log.format != Self::FORMAT {
            return Err(SteeringError::UnknownFormat { found: log.format, expected: Self::FORMAT });
        }
        Ok(log)
    }
}

/// Check that an action names nodes that exist (the simulator indexes nodes directly).
pub fn validate(action: &Action, nodes: u32) -> Result<(), SteeringError> {
    let check = |node: u32| {
        if (1..=nodes).contains(&node) {
            Ok(())
        } else {
            Err(SteeringError::NoSuchNode { node, nodes })
        }
    };
    match action {
        Action::Crash { node }
        | Action::Restart { node }
        | Action::Pause { node }
        | Action::Resume { node }
        | Action::Isolate { node }
        | Action::Write { node, .. }
        | Action::Read { node, .. } => check(*node),
        Action::Cut { a, b } | Action::HealLink { a, b } => {
            check(*a)?;
            check(*b)?;
            if a == b {
                return Err(SteeringError::SelfLink(*a));
            }
            Ok(())
        }
        Action::Heal | Action::Drop { .. } | Action::Fork { .. } => Ok(()),
    }
}

/// Perform `action` now. Errors (an unknown node, a message no longer in flight) leave the run
/// untouched, so a refused action is not logged.
pub fn perform<P: SimProtocol>(sim: &mut Simulation<P>, action: &Action) -> Result<(), SteeringError> {
    validate(action, sim.node_count())?;
    match action {
        Action::Crash { node } => sim.crash(NodeId(*node)),
        Action::Restart { node } => sim.restart(NodeId(*node)),
        Action::Pause { node } => sim.pause(NodeId(*node)),
        Action::Resume { node } => sim.resume(NodeId(*node)),
        Action::Isolate { node } => sim.isolate(NodeId(*node)),
        Action::Cut { a, b } => sim.cut_link(NodeId(*a), NodeId(*b)),
        Action::HealLink { a, b } => sim.heal_link(NodeId(*a), NodeId(*b)),
        Action::Heal => sim.heal(),
        Action::Drop { message } => {
            if sim.drop_message(*message) == 0 {
                return Err(SteeringError::NotInFlight(*message));
            }
        }
        Action::Write { node, key, value } => {
            sim.client_request(NodeId(*node), &Op::write(key.clone(), *value))
        }
        Action::Read { node, key } => sim.client_request(NodeId(*node), &Op::read(key.clone())),
        Action::Fork { seed } => sim.reseed(*seed),
    }
    Ok(())
}

/// Bring a simulation forward to `place`: process events one by one until `place.events` have
/// been, then move the clock to `place.t`. Fails if the run does not pass through that place
/// (another scenario or seed, or a place already behind).
pub fn seek<P: SimProtocol>(sim: &mut Simulation<P>, place: Place) -> Result<(), SteeringError> {
    while sim.events_processed() < place.events {
        if !sim.step_one() {
            return Err(SteeringError::RunEnded { processed: sim.events_processed(), wanted: place.events });
        }
    }
    let at = Time(place.t);
    if sim.now() < at {
        sim.advance_to(at);
    }
    if sim.events_processed() != place.events || sim.now() != at {
        let actual = Place { events: sim.events_processed(), t: sim.now().0 };
        return Err(SteeringError::Mismatch { expected: place, actual });
    }
    Ok(())
}

/// Bring a fresh, started simulation to the place of `logged` and perform it.
pub fn replay_one<P: SimProtocol>(
    sim: &mut Simulation<P>,
    logged: &LoggedAction,
) -> Result<(), SteeringError> {
    seek(sim, Place { events: logged.events, t: logged.t })
        .map_err(|e| SteeringError::Seek { action: logged.action.clone(), error: Box::new(e) })?;
    perform(sim, &logged.action)
}

/// Replay every action of `actions` on a fresh simulation (call [`Simulation::start`] first).
/// The caller then runs it on to its end (or wherever it likes).
pub fn replay<P: SimProtocol>(
    sim: &mut Simulation<P>,
    actions: &[LoggedAction],
) -> Result<(), SteeringError> {
    for (i, logged) in actions.iter().enumerate() {
        replay_one(sim, logged).map_err(|e| SteeringError::Replay {
            number: i + 1,
            of: actions.len(),
            error: Box::new(e),
        })?;
    }
    Ok(())
}

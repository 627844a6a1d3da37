//! The simulation thread of `concord sim --interactive`: it owns the
//! [`Simulation`], advances virtual time by `speed` × the wall time that passed (within a work
//! budget per tick, so commands are served promptly even when the simulator cannot keep up),
//! performs the page's [`Command`]s, logs every action with its place in the run, and posts new
//! trace lines and its status to the [`Board`]. It knows nothing of HTTP: requests arrive on a
//! channel, answers leave on each request's oneshot.

use super::{Board, Command, LiveArgs, Request};
use concord_sim::protocols::ProtocolVisitor;
use concord_sim::steering::{self, Action, LoggedAction, Place, SteeringLog};
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use serde_json::json;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a running simulation advances (and posts what happened).
const TICK: Duration = Duration::from_millis(15);
/// How long a paused simulation waits for a command before looking again.
const IDLE: Duration = Duration::from_millis(200);
/// Wall time of simulation work per tick, at most; beyond it the run falls behind its speed.
const TICK_BUDGET: Duration = Duration::from_millis(40);
/// Virtual time advanced per call while catching up, so the wall budget is checked often.
const SLICE: Duration = Duration::from_millis(2);
/// The run pauses when the trace reaches this many lines (the page holds them all in memory).
const TRACE_LINES_MAX: usize = 3_000_000;
/// Speeds the page may ask for, in virtual seconds per wall second.
const SPEED_MIN: f64 = 1e-6;
const SPEED_MAX: f64 = 1e3;
/// The speed a session starts at: 3 % of real time, so 3 ms messages can be seen flying.
const SPEED_DEFAULT: f64 = 0.03;

/// Starts the simulation thread for the scenario's protocol.
pub(super) struct Spawn {
    pub(super) args: LiveArgs,
    pub(super) board: Arc<Mutex<Board>>,
    pub(super) inbox: mpsc::Receiver<Request>,
    pub(super) ready: mpsc::Sender<Result<(), String>>,
}

impl ProtocolVisitor for Spawn {
    type Output = std::thread::JoinHandle<()>;

    fn visit<P: SimProtocol>(self, scenario: &Arc<Scenario<P::Config>>) -> Self::Output {
        let scenario = Arc::new(self.args.settings.apply(scenario));
        let Spawn { args, board, inbox, ready } = self;
        std::thread::Builder::new()
            .name("simulation".into())
            .spawn(move || {
                let mut live = match Live::<P>::start(scenario, args) {
                    Ok(live) => live,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                live.publish(&board);
                let _ = ready.send(Ok(()));
                live.serve(&inbox, &board);
            })
            .expect("the simulation thread starts")
    }
}

/// A `Write` that collects the trace for the simulation thread to hand on.
#[derive(Clone, Default)]
struct TraceBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for TraceBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("trace buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TraceBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("trace buffer"))
    }
}

/// The live session: the simulation and everything needed to replay it.
struct Live<P: SimProtocol> {
    scenario: Arc<Scenario<P::Config>>,
    args: LiveArgs,
    sim: Simulation<P>,
    trace: TraceBuffer,
    actions: Vec<LoggedAction>,
    running: bool,
    speed: f64,
    forks: u32,
    /// Why the run is not going on (its end, an invariant violated, the trace full), if it is not.
    message: Option<String>,
    /// Lines taken from the trace buffer but not yet posted.
    pending: Vec<u8>,
}

impl<P: SimProtocol> Live<P> {
    fn new_simulation(scenario: &Arc<Scenario<P::Config>>, seed: u64) -> (Simulation<P>, TraceBuffer) {
        let trace = TraceBuffer::default();
        let options = RunOptions { seed, trace: Some(Box::new(trace.clone())), ..Default::default() };
        let mut sim = Simulation::new(Arc::clone(scenario), options);
        sim.start();
        (sim, trace)
    }

    fn start(scenario: Arc<Scenario<P::Config>>, args: LiveArgs) -> Result<Self, String> {
        let (mut sim, trace) = Self::new_simulation(&scenario, args.seed);
        let mut actions = Vec::new();
        if let Some(log) = &args.resume {
            steering::replay(&mut sim, &log.actions).map_err(|e| e.to_string())?;
            if let Some(place) = log.saved_at {
                steering::seek(&mut sim, place).map_err(|e| format!("the end of the saved session: {e}"))?;
            }
            actions = log.actions.clone();
        }
        let forks = actions.iter().filter(|a| matches!(a.action, Action::Fork { .. })).count() as u32;
        Ok(Live {
            scenario,
            args,
            sim,
            trace,
            actions,
            running: false,
            speed: SPEED_DEFAULT,
            forks,
            message: None,
            pending: Vec::new(),
        })
    }

    /// Serve commands and advance the run until the HTTP side goes away.
    fn serve(&mut self, inbox: &mpsc::Receiver<Request>, board: &Mutex<Board>) {
        let mut last = Instant::now();
        loop {
            match inbox.recv_timeout(if self.running { TICK } else { IDLE }) {
                Ok(Request { command, reply }) => {
                    let answer = self.command(command);
                    self.publish(board);
                    let _ = reply.send(answer);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            let elapsed = now - last;
            last = now;
            if self.running {
                // A long gap (the machine was busy) is not made up for: at most 100 ms at a time.
                self.advance(elapsed.min(Duration::from_millis(100)));
                self.publish(board);
            }
        }
    }

    /// Advance virtual time by `wall × speed`, within the tick's work budget.
    fn advance(&mut self, wall: Duration) {
        let deadline = Instant::now() + TICK_BUDGET;
        let target =
            (self.sim.now() + Duration::from_secs_f64(wall.as_secs_f64() * self.speed)).min(self.sim.end());
        while self.sim.now() < target && Instant::now() < deadline {
            let slice = (self.sim.now() + SLICE).min(target);
            self.sim.advance_to(slice);
            if self.sim.is_stopped() {
                break;
            }
        }
        self.check_over();
    }

    /// Stop running at the end of the run, after a violation, or when the trace is full.
    fn check_over(&mut self) {
        let why = if self.sim.is_stopped() {
            Some(format!("the run stopped: {}", self.sim.violations().join("; ")))
        } else if self.sim.now() >= self.sim.end()
            && self.sim.next_event_at().is_none_or(|t| t > self.sim.end())
        {
            Some(format!(
                "the run reached its end at {} (start with --until for a longer one)",
                self.sim.end()
            ))
        } else {
            None
        };
        if why.is_some() {
            self.running = false;
            self.message = why;
        }
    }

    fn command(&mut self, command: Command) -> Result<serde_json::Value, String> {
        match command {
            Command::Run { speed } => {
                if let Some(speed) = speed {
                    self.speed = check_speed(speed)?;
                }
                self.check_over();
                if self.message.is_some() && (self.sim.is_stopped() || self.sim.now() >= self.sim.end()) {
                    return Err(self.message.clone().unwrap_or_default());
                }
                self.running = true;
                Ok(json!({"running": true, "speed": self.speed}))
            }
            Command::Pause => {
                self.running = false;
                Ok(json!({"running": false}))
            }
            Command::Speed { speed } => {
                self.speed = check_speed(speed)?;
                Ok(json!({"speed": self.speed}))
            }
            Command::Step => {
                self.running = false;
                if !self.sim.step_one() {
                    self.check_over();
                    return Err(self.message.clone().unwrap_or_else(|| "no event left to process".into()));
                }
                Ok(json!({"events": self.sim.events_processed(), "t": self.sim.now().0}))
            }
            Command::Act { action } => {
                if matches!(action, Action::Fork { .. }) {
                    return Err("fork with {\"cmd\": \"fork\"}: it rebuilds the run first".into());
                }
                self.act(action)
            }
            Command::Fork { seed } => self.fork(seed),
        }
    }

    /// Perform an action now and log it with its place in the run.
    fn act(&mut self, action: Action) -> Result<serde_json::Value, String> {
        if self.sim.is_stopped() {
            return Err("the run has stopped; fork is not possible either: the trace ends here".into());
        }
        let place = self.place();
        steering::perform(&mut self.sim, &action).map_err(|e| e.to_string())?;
        self.actions.push(LoggedAction { events: place.events, t: place.t, action });
        Ok(json!({"logged": self.actions.len(), "events": place.events, "t": place.t}))
    }

    /// Rebuild the run from the seed and the action log, check it is the same run, and reseed.
    fn fork(&mut self, seed: Option<u64>) -> Result<serde_json::Value, String> {
        let place = self.place();
        let seed = seed.unwrap_or_else(|| fork_seed(self.args.seed, place, self.forks));
        let started = Instant::now();
        let (mut rebuilt, trace) = Self::new_simulation(&self.scenario, self.args.seed);
        steering::replay(&mut rebuilt, &self.actions).map_err(|e| e.to_string())?;
        steering::seek(&mut rebuilt, place).map_err(|e| e.to_string())?;
        let (live_hash, rebuilt_hash) = (self.sim.trace_hash(), rebuilt.trace_hash());
        if live_hash != rebuilt_hash {
            return Err(format!(
                "the run rebuilt from its action log differs from the live run (trace hash {:016x} vs {:016x}): a determinism bug, please report the seed and the saved session",
                live_hash.unwrap_or(0),
                rebuilt_hash.unwrap_or(0)
            ));
        }
        // Keep the lines not yet posted; the rebuilt run's copy of the trace is the same bytes.
        self.pending.extend(self.trace.take());
        drop(trace.take());
        self.sim = rebuilt;
        self.trace = trace;
        self.forks += 1;
        let answer = self.act(Action::Fork { seed })?;
        Ok(
            json!({"seed": seed, "rebuilt_ms": started.elapsed().as_millis() as u64, "logged": answer["logged"]}),
        )
    }

    fn place(&self) -> Place {
        Place { events: self.sim.events_processed(), t: self.sim.now().0 }
    }

    /// The session as a log that replays to the current place.
    fn session_log(&self) -> SteeringLog {
        SteeringLog {
            format: SteeringLog::FORMAT.into(),
            scenario: self.args.scenario_path.clone(),
            seed: self.args.seed,
            settings: self.args.settings.clone(),
            actions: self.actions.clone(),
            saved_at: Some(self.place()),
            trace_hash: self.sim.trace_hash().map(|h| format!("{h:016x}")),
        }
    }

    fn status(&self) -> serde_json::Value {
        let in_flight: Vec<serde_json::Value> =
            self.sim.in_flight().iter().map(|m| json!({"id": m.id, "at": m.at.0})).collect();
        json!({
            "scenario": self.args.scenario_path,
            "seed": self.args.seed,
            "nodes": self.sim.node_count(),
            "settings": self.args.settings,
            "now": self.sim.now().0,
            "end": self.sim.end().0,
            "events_processed": self.sim.events_processed(),
            "running": self.running,
            "speed": self.speed,
            "forks": self.forks,
            "message": self.message,
            "stopped": self.sim.is_stopped(),
            "trace_hash": self.sim.trace_hash().map(|h| format!("{h:016x}")),
            "in_flight": in_flight,
            "actions": self.actions,
        })
    }

    /// Post new trace lines and the status to the board.
    fn publish(&mut self, board: &Mutex<Board>) {
        self.pending.extend(self.trace.take());
        let complete = self.pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let fresh: Vec<u8> = self.pending.drain(..complete).collect();
        let text = String::from_utf8(fresh).expect("trace lines are JSON, hence UTF-8");
        let mut board = board.lock().expect("board");
        board.lines.extend(text.lines().map(str::to_owned));
        if board.lines.len() >= TRACE_LINES_MAX && self.running {
            self.running = false;
            self.message = Some(format!(
                "paused: the trace has {} lines, the most the page holds; save the session",
                board.lines.len()
            ));
        }
        board.status = self.status();
        board.session = Some(self.session_log());
    }
}

fn check_speed(speed: f64) -> Result<f64, String> {
    if speed.is_finite() && (SPEED_MIN..=SPEED_MAX).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!(
            "speed must be between {SPEED_MIN} and {SPEED_MAX} virtual seconds per second, not {speed}"
        ))
    }
}

/// A new seed for a fork nobody chose a seed for: derived from the session (not the wall clock),
/// and written to the log like any other.
fn fork_seed(seed: u64, place: Place, forks: u32) -> u64 {
    let mut h = concord_sim::trace::Fnv64::default();
    for part in [seed, place.events, place.t, u64::from(forks)] {
        h.update(&part.to_le_bytes());
    }
    h.finish() >> 1
}

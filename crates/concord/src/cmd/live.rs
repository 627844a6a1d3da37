//! `concord sim SCENARIO --interactive`: run a simulation live and steer it from the browser.
//!
//! ```text
//!   browser (web/viewer, live mode)            this process
//!   ───────────────────────────────            ───────────────────────────────────────────────
//!   GET  /api/live?from=N   ──────────────▶    HTTP task: reads the board (trace lines N.., status)
//!   POST /api/live/command  ──────────────▶    HTTP task ──channel──▶ simulation thread
//!        {"cmd":"act","action":{"do":"crash","node":3}}      (owns the Simulation; runs it at
//!                                              ◀── reply ──            `speed` × wall time, performs
//!                                                                      commands, logs actions, and
//!                                                                      posts new trace lines and its
//!                                                                      status to the board)
//! ```
//!
//! One thread owns the [`Simulation`]: it advances virtual time by `speed` × the wall time that
//! passed (at most [`TICK_BUDGET`] of work per tick, so commands are served promptly even when the
//! simulator cannot keep up), performs the commands the page sends, and records every action the
//! person takes with its place in the run (events processed, virtual time). The page reuses the
//! replay viewer: it polls for new trace lines and feeds them to the same rendering code.
//!
//! The session is deterministic: the scenario, the seed and the action log are the whole run, and
//! `concord sim SCENARIO --actions session.json --trace run.jsonl` rebuilds its trace byte for byte
//! (see [`concord_sim::steering`]). **Fork** rebuilds the run from that log – checking that the
//! rebuilt run has the live run's trace hash – then reseeds every random stream, so what follows is
//! a new run that is itself reproducible from the seed and the log.
//!
//! Security: the server listens on 127.0.0.1 only; anyone on this machine can steer the run.

use crate::cmd::view;
use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use concord_sim::protocols::{LoadedScenario, ProtocolVisitor};
use concord_sim::steering::{self, Action, LoggedAction, Place, SteeringLog, SteeringSettings};
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use serde::Deserialize;
use serde_json::json;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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

/// What `concord sim --interactive` was asked to do.
pub struct LiveArgs {
    /// The scenario file, as given (recorded in the session log).
    pub scenario_path: String,
    pub seed: u64,
    pub settings: SteeringSettings,
    /// A saved session to continue from (`--actions`).
    pub resume: Option<SteeringLog>,
    pub port: u16,
    pub open: bool,
}

pub fn run(loaded: &LoadedScenario, args: LiveArgs) -> anyhow::Result<ExitCode> {
    let board = Arc::new(Mutex::new(Board::default()));
    let (commands, inbox) = mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let port = args.port;
    let open = args.open;
    let simulation_thread = loaded.visit(Spawn { args, board: Arc::clone(&board), inbox, ready: ready_tx });
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("{e}"),
        Err(_) => anyhow::bail!("the simulation thread stopped before it was ready"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(port, open, board, commands));
    drop(simulation_thread); // detached: the process ends with the server
    served?;
    Ok(ExitCode::SUCCESS)
}

// ----- what the simulation thread shows the HTTP side ---------------------------------------------

/// Shared between the simulation thread (writer) and the HTTP handlers (readers).
#[derive(Default)]
struct Board {
    /// Every trace line so far (JSON objects, without the newline).
    lines: Vec<String>,
    /// The session's status as JSON (see [`Live::status`]).
    status: serde_json::Value,
    /// The session log as of the last update.
    session: Option<SteeringLog>,
}

/// A command from the page and where to send the answer.
struct Request {
    command: Command,
    reply: oneshot::Sender<Result<serde_json::Value, String>>,
}

/// What the page can ask for (`POST /api/live/command`).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
enum Command {
    /// Run at `speed` (virtual seconds per wall second; default: the current speed).
    Run {
        #[serde(default)]
        speed: Option<f64>,
    },
    Pause,
    Speed {
        speed: f64,
    },
    /// Pause and process exactly one event.
    Step,
    /// Do something to the run (logged).
    Act {
        action: Action,
    },
    /// Keep what happened, draw what follows from another seed (logged as a `fork` action).
    Fork {
        #[serde(default)]
        seed: Option<u64>,
    },
}

// ----- the simulation thread -------------------------------------------------------------------

/// Starts the simulation thread for the scenario's protocol.
struct Spawn {
    args: LiveArgs,
    board: Arc<Mutex<Board>>,
    inbox: mpsc::Receiver<Request>,
    ready: mpsc::Sender<Result<(), String>>,
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

// ----- the HTTP side ----------------------------------------------------------------------------

#[derive(Clone)]
struct AppState {
    board: Arc<Mutex<Board>>,
    commands: mpsc::Sender<Request>,
}

async fn serve(
    port: u16,
    open: bool,
    board: Arc<Mutex<Board>>,
    commands: mpsc::Sender<Request>,
) -> anyhow::Result<()> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (is another session running? try --port 0)"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    println!("concord sim: interactive on {url}");
    std::io::stdout().flush()?;
    if open {
        view::open_browser(&url);
    }
    // The same page as `concord view`, told to take its events from the live session.
    let live_page = view::INDEX_HTML.replacen("<body>", "<body data-live=\"1\">", 1);
    let app = Router::new()
        .route("/", get(move || async move { view::asset("text/html; charset=utf-8", live_page.clone()) }))
        .route("/viewer.css", get(|| async { view::asset("text/css; charset=utf-8", view::VIEWER_CSS) }))
        .route("/viewer.js", get(|| async { view::asset("text/javascript; charset=utf-8", view::VIEWER_JS) }))
        .route("/favicon.svg", get(|| async { view::asset("image/svg+xml", view::FAVICON_SVG) }))
        .route("/api/live", get(live_state))
        .route("/api/live/command", post(command))
        .route("/api/live/trace.jsonl", get(download_trace))
        .route("/api/live/session.json", get(download_session))
        .with_state(AppState { board, commands });
    axum::serve(listener, app).await.context("the HTTP server failed")
}

#[derive(Deserialize)]
struct From {
    #[serde(default)]
    from: usize,
}

/// `{"from": N, "events": [trace lines N..], "status": {...}}`.
async fn live_state(State(app): State<AppState>, Query(q): Query<From>) -> Response {
    let board = app.board.lock().expect("board");
    let from = q.from.min(board.lines.len());
    let new = &board.lines[from..];
    let mut body = String::with_capacity(64 + new.iter().map(|l| l.len() + 1).sum::<usize>());
    body.push_str(&format!("{{\"from\":{from},\"events\":["));
    for (i, line) in new.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(line);
    }
    body.push_str("],\"status\":");
    body.push_str(&board.status.to_string());
    body.push('}');
    view::asset("application/json", body)
}

async fn command(State(app): State<AppState>, body: String) -> Response {
    let command: Command = match serde_json::from_str(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad command {body:?}: {e}")),
    };
    let (reply, answer) = oneshot::channel();
    if app.commands.send(Request { command, reply }).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the simulation thread has stopped".into());
    }
    match answer.await {
        Ok(Ok(value)) => (StatusCode::OK, axum::Json(json!({"ok": true, "result": value}))).into_response(),
        Ok(Err(message)) => error(StatusCode::CONFLICT, message),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the simulation thread has stopped".into()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"ok": false, "error": message}))).into_response()
}

fn attachment(content_type: &'static str, filename: String, body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// The trace so far, as `concord sim --trace` writes it (pause first for a trace that matches the
/// session log taken at the same moment).
async fn download_trace(State(app): State<AppState>) -> Response {
    let board = app.board.lock().expect("board");
    let seed = board.session.as_ref().map_or(0, |s| s.seed);
    let mut body = String::with_capacity(board.lines.iter().map(|l| l.len() + 1).sum());
    for line in &board.lines {
        body.push_str(line);
        body.push('\n');
    }
    attachment("application/x-ndjson", format!("concord-live-seed{seed}.jsonl"), body)
}

/// The session log: seed, settings, actions and the place it was saved at.
async fn download_session(State(app): State<AppState>) -> Response {
    let board = app.board.lock().expect("board");
    let Some(session) = &board.session else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the session has not started".into());
    };
    let body = serde_json::to_string_pretty(session).expect("session logs serialise");
    attachment("application/json", format!("concord-session-seed{}.json", session.seed), body)
}

/// `concord sim SCENARIO --actions session.json`: rebuild a saved session (to the place it was
/// saved at, or to the end of the run) and judge it.
pub struct Replay {
    pub log: SteeringLog,
    pub trace: Option<Box<dyn Write + Send>>,
    pub hash_trace: bool,
}

impl ProtocolVisitor for Replay {
    type Output = Result<concord_sim::RunReport, String>;

    fn visit<P: SimProtocol>(self, scenario: &Arc<Scenario<P::Config>>) -> Self::Output {
        let scenario = Arc::new(self.log.settings.apply(scenario));
        let options = RunOptions {
            seed: self.log.seed,
            trace: self.trace,
            hash_trace: self.hash_trace,
            ..Default::default()
        };
        let started = Instant::now();
        let mut sim = Simulation::<P>::new(scenario, options);
        sim.start();
        steering::replay(&mut sim, &self.log.actions).map_err(|e| e.to_string())?;
        Ok(match self.log.saved_at {
            Some(place) => {
                steering::seek(&mut sim, place)
                    .map_err(|e| format!("the place the session was saved at: {e}"))?;
                sim.stop_here(started)
            }
            None => sim.run_to_end(started),
        })
    }
}

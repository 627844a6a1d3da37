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
//!
//! The two sides live in their own files and meet only in this one: [`driver`] is the simulation
//! thread (the [`Simulation`](concord_sim::Simulation), its speed, the commands, the action log),
//! [`http`] is the axum server the page talks to; they share the [`Board`] (what the thread last
//! posted) and a channel of [`Request`]s. [`replay`] rebuilds a saved session without a browser.

mod driver;
mod http;
mod replay;

pub use replay::Replay;

use anyhow::Context;
use concord_sim::protocols::LoadedScenario;
use concord_sim::steering::{Action, SteeringLog, SteeringSettings};
use serde::Deserialize;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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
    let simulation_thread =
        loaded.visit(driver::Spawn { args, board: Arc::clone(&board), inbox, ready: ready_tx });
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
    let served = runtime.block_on(http::serve(port, open, board, commands));
    drop(simulation_thread); // detached: the process ends with the server
    served?;
    Ok(ExitCode::SUCCESS)
}

// ----- what the simulation thread and the HTTP side share ------------------------------------------

/// Shared between the simulation thread (writer) and the HTTP handlers (readers).
#[derive(Default)]
struct Board {
    /// Every trace line so far (JSON objects, without the newline).
    lines: Vec<String>,
    /// The session's status as JSON (see `driver::Live::status`).
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

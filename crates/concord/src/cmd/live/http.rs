//! The HTTP side of `concord sim --interactive`: the axum server the page talks to. It serves the
//! replay viewer's page in live mode, reads the [`Board`] for new trace lines and the status
//! (`GET /api/live?from=N`), hands commands to the simulation thread and waits for its answer
//! (`POST /api/live/command`), and offers the trace and the session log as downloads. It never
//! touches the simulation itself.

use super::{Board, Command, Request};
use crate::cmd::view;
use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

#[derive(Clone)]
struct AppState {
    board: Arc<Mutex<Board>>,
    commands: mpsc::Sender<Request>,
}

pub(super) async fn serve(
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

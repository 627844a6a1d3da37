//! `concord view <trace>`: replay a simulation trace in the browser.
//!
//! A small HTTP server on the loopback interface serves two things:
//!
//! * the viewer page – plain HTML, CSS and JavaScript from `web/viewer/` at the repository root,
//!   compiled into the binary (no build step, no CDN: it works offline and from one file);
//! * `/api/trace` – the trace (and, with `--history`, the checker's verdict on the client history)
//!   as one JSON document, which the page turns into a replay.
//!
//! All the replay logic – reconstructing each node's role, term, log and in-flight messages, state
//! snapshots for scrubbing – runs in the page; the server only validates and serves. The trace is
//! checked line by line when loaded, so a damaged file fails here with its line number instead of
//! as a blank page.
//!
//! The listening address is printed as `concord view: listening on http://127.0.0.1:PORT/`; with
//! `--port 0` the operating system picks a free port (tests use this).

use anyhow::{bail, Context};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use concord_check::formats::{self, Format};
use concord_check::linearizability::{check_operations, Verdict};
use concord_check::ops::Operation;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ViewArgs {
    /// The trace (JSON Lines) written by `concord sim ... --trace run.jsonl`.
    pub trace: PathBuf,
    /// A client history (`concord sim ... --history h.jsonl`): checked for linearizability, and the
    /// operations that cannot be placed are highlighted.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Open the page in the default browser.
    #[arg(long)]
    pub open: bool,
    /// How long the linearizability checker may take before answering "unknown".
    #[arg(long, default_value = "20s", value_parser = concord_core::time::parse_duration)]
    pub check_timeout: Duration,
}

/// The page and its assets, compiled in.
pub(crate) const INDEX_HTML: &str = include_str!("../../../../web/viewer/index.html");
pub(crate) const VIEWER_CSS: &str = include_str!("../../../../web/viewer/viewer.css");
pub(crate) const VIEWER_JS: &str = include_str!("../../../../web/viewer/viewer.js");
pub(crate) const FAVICON_SVG: &str = include_str!("../../../../web/viewer/favicon.svg");

/// Refuse traces above this size: the page holds every event in memory.
const TRACE_BYTES_MAX: u64 = 1 << 30;

pub fn run(args: &ViewArgs) -> anyhow::Result<ExitCode> {
    let body = Arc::new(build_document(args)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, body))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: &ViewArgs, document: Arc<String>) -> anyhow::Result<()> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (is another viewer running? try --port 0)"))?;
    let bound = listener.local_addr()?;
    let url = format!("http://{bound}/");
    println!("concord view: listening on {url}");
    std::io::stdout().flush()?;
    if args.open {
        open_browser(&url);
    }
    let app = Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/viewer.css", get(|| async { asset("text/css; charset=utf-8", VIEWER_CSS) }))
        .route("/viewer.js", get(|| async { asset("text/javascript; charset=utf-8", VIEWER_JS) }))
        .route("/favicon.svg", get(|| async { asset("image/svg+xml", FAVICON_SVG) }))
        .route(
            "/api/trace",
            get(move || {
                let document = document.clone();
                async move { asset("application/json", document.as_str().to_owned()) }
            }),
        );
    axum::serve(listener, app).await.context("the HTTP server failed")
}

pub(crate) fn asset(content_type: &'static str, body: impl Into<String>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body.into())
        .into_response()
}

/// Best effort: a missing browser is not an error, the URL is printed anyway.
pub(crate) fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    if let Err(e) = std::process::Command::new(opener).arg(url).spawn() {
        eprintln!("concord view: cannot run {opener} ({e}); open {url} yourself");
    }
}

/// `{"trace": "...", "events": [...], "check": {...} | null}`, built once at start-up.
///
/// Trace lines are copied verbatim (after validation) rather than parsed and re-serialised: a
/// 100 000-event trace is ~15 MB, and copying keeps start-up fast.
fn build_document(args: &ViewArgs) -> anyhow::Result<String> {
    let text = read_text(&args.trace, "trace")?;
    let mut document = String::with_capacity(text.len() + 4096);
    document.push_str("{\"trace\":");
    document.push_str(&serde_json::to_string(&args.trace.display().to_string())?);
    document.push_str(",\"events\":[");
    let mut events = 0usize;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON trace line", args.trace.display(), number + 1))?;
        let well_formed =
            value.get("t").is_some_and(|t| t.is_u64()) && value.get("ev").is_some_and(|e| e.is_string());
        if !well_formed {
            bail!(
                "{}:{}: a trace event needs a numeric \"t\" and a string \"ev\" (is this a `concord sim --trace` file?)",
                args.trace.display(),
                number + 1
            );
        }
        if events > 0 {
            document.push(',');
        }
        document.push_str(line);
        events += 1;
    }
    if events == 0 {
        bail!("{}: the trace has no events", args.trace.display());
    }
    document.push_str("],\"check\":");
    let check = match &args.history {
        Some(path) => check_history(path, args.check_timeout)?,
        None => serde_json::Value::Null,
    };
    document.push_str(&serde_json::to_string(&check)?);
    document.push('}');
    eprintln!("concord view: {} ({events} events)", args.trace.display());
    Ok(document)
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let size =
        std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?.len();
    if size > TRACE_BYTES_MAX {
        bail!("{what} {} is {size} bytes; the viewer takes at most {TRACE_BYTES_MAX}", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Run the linearizability checker on the history; report the verdict and, for a violation, the
/// operations of the explanation (the page matches them to trace events by client and time).
fn check_history(path: &Path, timeout: Duration) -> anyhow::Result<serde_json::Value> {
    let text = read_text(path, "history")?;
    let format = formats::detect(&text, Format::Auto);
    let parsed = formats::parse_with_lines(&text, format).map_err(|errors| {
        let first = errors.first().map(|e| format!("line {}: {}", e.line, e.message)).unwrap_or_default();
        anyhow::anyhow!(
            "{} is not a valid history ({} malformed lines; {first})",
            path.display(),
            errors.len()
        )
    })?;
    let ops = concord_check::ops::prepare(&parsed.history).map_err(|errors| {
        let first = errors.first().map(|e| e.message.clone()).unwrap_or_default();
        anyhow::anyhow!(
            "{} is not a well-formed history ({} problems; {first})",
            path.display(),
            errors.len()
        )
    })?;
    let model = concord_check::cli::guess_model(&ops);
    let verdict = check_operations(&ops, model, timeout);
    let summary = verdict.to_string();
    Ok(match verdict {
        Verdict::Linearizable => {
            serde_json::json!({ "verdict": "linearizable", "model": model.to_string(), "text": summary })
        }
        Verdict::Unknown(why) => {
            serde_json::json!({ "verdict": "unknown", "model": model.to_string(), "text": why })
        }
        Verdict::NotLinearizable(explanation) => {
            let reasons: std::collections::BTreeMap<usize, &str> =
                explanation.unplaceable.iter().map(|(i, why)| (*i, why.as_str())).collect();
            let mut offending: Vec<serde_json::Value> = reasons
                .iter()
                .map(|(&i, why)| op_json(&explanation.ops[i], Some(why), i == explanation.blocking))
                .collect();
            if !reasons.contains_key(&explanation.blocking) {
                offending.push(op_json(&explanation.ops[explanation.blocking], None, true));
            }
            serde_json::json!({
                "verdict": "not-linearizable",
                "model": model.to_string(),
                "key": explanation.key,
                "text": summary,
                "offending": offending,
            })
        }
    })
}

fn op_json(op: &Operation, why: Option<&str>, blocking: bool) -> serde_json::Value {
    serde_json::json!({
        "process": op.process,
        "f": format!("{:?}", op.f),
        "key": op.key,
        "input": format!("{:?}", op.input),
        "output": op.output.as_ref().map(|v| format!("{v:?}")),
        "call_time": op.call_time.0,
        "return_time": op.return_time.map(|t| t.0),
        "blocking": blocking,
        "why": why,
    })
}

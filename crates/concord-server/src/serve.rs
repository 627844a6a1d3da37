//! Running one node in the foreground: `concord serve`.
//!
//! [`run`] takes a finished [`NodeConfig`] (the binary builds it from a file and flags), sets up
//! logging and the async runtime, starts the [`Node`] and keeps it running until SIGINT/SIGTERM or
//! until it stops by itself. `concord join` ([`crate::membership::join`]) runs a node the same way.

use crate::config::NodeConfig;
use crate::node::Node;
use anyhow::{anyhow, Context};

/// Log to stderr through `tracing`, filtered by `filter` (`info` when it does not parse).
pub(crate) fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The runtime of `concord serve`: half the cores as async workers (at least one), unless
/// `TOKIO_WORKER_THREADS` says otherwise. The Raft driver is one task and the WAL syncs on its own
/// thread, so more workers mostly add cross-thread wake-ups: on 2 cores, one worker served 43k
/// GET/s where two served 33k (BENCHMARKS.md).
pub(crate) fn serve_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads((cores / 2).max(1));
    }
    builder.build()
}

/// Wait for SIGINT or SIGTERM.
pub(crate) async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the node `config` describes until SIGINT/SIGTERM (then shut it down cleanly) or until it
/// stops by itself (a disk failure: its error). This is `concord serve`.
///
/// A non-empty environment variable `CONCORD_UNSAFE_MUTATION` names a deliberate Raft bug to run
/// with ([`NodeConfig::unsafe_mutation`]: only for `concord chaos --unsafe-mutation`; refused
/// unless the bugs are compiled in and this is a debug build).
pub fn run(mut config: NodeConfig) -> anyhow::Result<()> {
    init_logging(&config.log);
    if let Some(name) = std::env::var_os(crate::config::UNSAFE_MUTATION_ENV).filter(|v| !v.is_empty()) {
        config.unsafe_mutation = Some(name.to_string_lossy().into_owned());
    }
    let runtime = serve_runtime().context("starting the async runtime")?;
    runtime
        .block_on(async move { run_until_stopped(Node::start(config).await.map_err(|e| anyhow!(e))?).await })
}

/// Run a started node until SIGINT/SIGTERM (then shut it down cleanly) or until it stops by
/// itself (a disk failure: its error).
pub(crate) async fn run_until_stopped(mut node: Node) -> anyhow::Result<()> {
    tokio::select! {
        _ = termination() => {
            tracing::info!("shutting down (signal)");
            node.shutdown().await.map_err(|e| anyhow!(e))
        }
        r = node.wait() => r.map_err(|e| anyhow!(e)),
    }
}

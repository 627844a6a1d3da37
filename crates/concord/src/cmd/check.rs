//! `concord check <history>`: judge a recorded history.
//!
//! Reads Concord's JSON Lines histories, Jepsen/Knossos text logs and EDN op maps (detected by
//! content, or `--format`), checks linearizability against a model (guessed, or `--model`) within a
//! time limit (keys on all cores, `--jobs`; a progress bar on a terminal; an undecided verdict names
//! the keys and operations that were hard), and optionally writes an HTML explanation of a failure
//! and reports session-guarantee violations and staleness. The logic lives in `concord_check::cli`;
//! this file only maps flags.
//!
//! Transactional histories (Jepsen's Elle histories, `:f :txn`) are judged by the Elle checker
//! instead: `--model list-append` / `--model rw-register` (or detected), `--isolation` for the level.
//! Jepsen's own checkers – `--model set | set-full | bank | long-fork` – judge their workloads'
//! histories, and `--convert edn` writes any history as Jepsen EDN instead of checking it.
//!
//! Exit status: 0 linearizable (no anomaly), 1 not linearizable (anomalies), 2 unknown (time limit)
//! or bad input.

use clap::Args;
use concord_check::cli::{self, CheckOptions, Isolation, ModelChoice};
use concord_check::formats::Format;
use concord_check::linearizability::PartitionStatus;
use concord_core::time::parse_duration;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file: JSON Lines (Concord), a Jepsen/Knossos log, EDN op maps (one per line,
    /// or in one vector or list, `;` comments allowed), a JSON array of op maps, or Porcupine's
    /// operations as JSON.
    pub history: PathBuf,
    /// What to check against (default: guessed from the ops). Linearizability: register
    /// (cas-register), kv, counter, linearizable-set, queue, mutex, porcupine-kv. Transactions
    /// (Elle): list-append, rw-register (a history without transactions: a register). Jepsen's
    /// checkers: set (final read), set-full, bank, long-fork.
    #[arg(long, value_parser = parse_model)]
    pub model: Option<ModelChoice>,
    /// For `--model bank`: the total the balances must sum to (default: the first read's sum).
    #[arg(long)]
    pub bank_total: Option<i64>,
    /// For `--model bank`: negative balances are allowed.
    #[arg(long)]
    pub bank_negative_balances: bool,
    /// Check nothing; write the history to stdout as Jepsen EDN: `edn` (keys as `:key`) or
    /// `edn-independent` (keys in Jepsen's independent tuples `[:k v]`, for Knossos).
    #[arg(long, value_name = "edn|edn-independent", value_parser = cli::parse_convert)]
    pub convert: Option<concord_check::formats::edn::KeyStyle>,
    /// For transactional histories: the isolation level to check – serializable,
    /// strong-session-serializable or strict-serializable.
    #[arg(long, default_value = "serializable", value_parser = parse_isolation)]
    pub isolation: Isolation,
    /// The input format: auto, jsonl, json (an array; Porcupine's operations too), jepsen or edn.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// Write an HTML page explaining a failure (per-process timelines) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Give up after this long and answer "unknown" (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keys (partitions) checked at once, one thread each (default: one per core). The verdict
    /// does not depend on it.
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Bound on the memory of the search's caches, in MiB; reaching it answers "unknown" and says so.
    #[arg(long, default_value_t = 4096)]
    pub cache_mb: usize,
    /// Also count session-guarantee violations (read-your-writes, monotonic reads/writes,
    /// writes-follow-reads). `--sessions` is the old name, still accepted.
    #[arg(long, alias = "sessions")]
    pub guarantees: bool,
    /// Also report staleness (versions behind per read).
    #[arg(long)]
    pub staleness: bool,
}

fn parse_model(text: &str) -> Result<ModelChoice, String> {
    text.parse()
}

fn parse_isolation(text: &str) -> Result<Isolation, String> {
    text.parse()
}

fn parse_format(text: &str) -> Result<Format, concord_check::formats::FormatError> {
    text.parse()
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = CheckOptions {
        history: args.history.clone(),
        model: match args.model {
            Some(ModelChoice::Linear(model)) => Some(model),
            _ => None,
        },
        transactional: match args.model {
            Some(ModelChoice::Transactional(workload)) => Some(workload),
            _ => None,
        },
        jepsen: match args.model {
            Some(ModelChoice::Jepsen(checker)) => Some(checker),
            _ => None,
        },
        bank: concord_check::jepsen::bank::Options {
            total: args.bank_total,
            negative_balances_allowed: args.bank_negative_balances,
        },
        convert: args.convert,
        isolation: args.isolation,
        format: args.format,
        html: args.html.clone(),
        timeout: args.timeout,
        jobs: args.jobs,
        cache_mb: args.cache_mb,
        guarantees: args.guarantees,
        staleness: args.staleness,
    };
    // Progress on stderr (indicatif draws nothing when stderr is not a terminal): partitions (keys)
    // decided, and for each one being searched, how far it got and how much it has cached.
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} keys checked {msg}")
            .expect("the template is valid"),
    );
    let on_progress = |partitions: &[PartitionStatus], finished: bool| {
        if finished {
            bar.finish_and_clear();
            return;
        }
        let searching: Vec<String> = partitions
            .iter()
            .filter(|p| p.searching)
            .map(|p| {
                format!(
                    "{}: {}/{} placed, {} cached",
                    p.key.as_deref().unwrap_or("(no key)"),
                    p.deepest.max(p.linearized),
                    p.ops,
                    p.cached
                )
            })
            .collect();
        bar.set_length(partitions.len() as u64);
        bar.set_position(partitions.iter().filter(|p| p.done).count() as u64);
        bar.set_message(searching.join("; "));
    };
    let status = cli::run_with_progress(&options, &mut std::io::stdout().lock(), &on_progress)?;
    Ok(ExitCode::from(status))
}

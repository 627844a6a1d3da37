//! `concord check <history>`: the command's logic, kept here so that it is tested with the checkers.
//! The `concord` binary's `cmd/check.rs` only parses flags into [`CheckOptions`] and calls [`run`].
//!
//! Exit status: 0 linearizable, 1 not linearizable, 2 unknown (time limit) or bad input (unreadable
//! file, malformed lines, a history that does not fit the model).
//!
//! Transactional histories (`--model list-append` or `--model rw-register`, or detected by their
//! `:f :txn` ops) go to the Elle checker ([`crate::elle`]) instead, for the isolation level chosen
//! with [`CheckOptions::isolation`]: exit status 0 no anomaly found, 1 anomalies, 2 bad input.
//!
//! # Model names
//!
//! `--model` takes Concord's names and the field's ([`ModelChoice`]):
//!
//! | name | checker |
//! |------|---------|
//! | `register`, `cas-register` (Knossos) | linearizability, [`Model::Register`] |
//! | `kv` | linearizability, a register per key with delete and append |
//! | `counter` | linearizability, [`Model::Counter`] (Jepsen's `counter` checker is a weaker bound check; this is exact) |
//! | `linearizable-set` | linearizability, [`Model::Set`] |
//! | `queue` | linearizability, [`Model::Queue`] |
//! | `mutex` (Knossos) | linearizability, [`Model::Mutex`] |
//! | `porcupine-kv` (Porcupine) | linearizability, [`Model::PorcupineKv`] |
//! | `list-append`, `rw-register` (Elle) | transactional isolation, [`crate::elle`] |
//! | `set`, `set-full`, `bank`, `long-fork` (Jepsen) | [`crate::jepsen`] |
//!
//! `rw-register` is Elle's transactional workload; given a history that is not transactional (no
//! `:f :txn`), it means the register of single reads and writes, checked for linearizability –
//! what Knossos's `register` model does.
//!
//! `--convert edn` ([`CheckOptions::convert`]) checks nothing: it writes the history as Jepsen EDN
//! ([`crate::formats::edn::write_history`]), for Knossos or Jepsen's checkers.

use crate::elle::history::{self as txn_history, TxnHistory, Workload};
use crate::formats::edn::KeyStyle;
use crate::formats::{self, Format};
use crate::jepsen;
use crate::linearizability::{check_operations_with, Options, PartitionStatus, Progress, Verdict};
use crate::model::Model;
use crate::ops::{prepare, Operation};
use crate::{elle, guarantees, html, staleness};
use concord_core::history::{OpFn, Value};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What `concord check` was asked to do.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub history: PathBuf,
    /// `None`: guess from the operations (see [`guess_model`]).
    pub model: Option<Model>,
    pub format: Format,
    /// Where to write the HTML explanation when the history is not linearizable.
    pub html: Option<PathBuf>,
    pub timeout: Duration,
    /// Partitions (keys) searched at once; `0`: one per core.
    pub jobs: usize,
    /// Bound on the memory of the search's caches, in MiB.
    pub cache_mb: usize,
    /// Also report session-guarantee violations and staleness (they do not change the exit status).
    pub guarantees: bool,
    pub staleness: bool,
    /// Check a transactional history with Elle instead (`None`: only if the history looks
    /// transactional, see [`txn_history::guess_workload`]).
    pub transactional: Option<Workload>,
    /// What Elle checks for.
    pub isolation: Isolation,
    /// Judge with one of Jepsen's own checkers instead (`set`, `set-full`, `bank`, `long-fork`).
    pub jepsen: Option<jepsen::Checker>,
    /// For the bank checker: the total, and whether balances may go negative.
    pub bank: jepsen::bank::Options,
    /// Check nothing: write the history as Jepsen EDN, keys in this style.
    pub convert: Option<KeyStyle>,
}

impl CheckOptions {
    /// The options `concord check FILE` runs with when no flag is given.
    pub fn new(history: PathBuf) -> CheckOptions {
        CheckOptions {
            history,
            model: None,
            format: Format::Auto,
            html: None,
            timeout: Duration::from_secs(30),
            jobs: 0,
            cache_mb: 4096,
            guarantees: false,
            staleness: false,
            transactional: None,
            isolation: Isolation::Serializable,
            jepsen: None,
            bank: jepsen::bank::Options::default(),
            convert: None,
        }
    }
}

/// `--model`: a sequential model for linearizability, a transactional workload for Elle, or one of
/// Jepsen's own checkers (see the table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    Linear(Model),
    Transactional(Workload),
    Jepsen(jepsen::Checker),
}

/// Every name `--model` takes, for `--help` and error messages.
pub const MODEL_NAMES: &str = "register (cas-register), kv, counter, linearizable-set, queue, mutex, \
     porcupine-kv (linearizability); list-append, rw-register (transactions, Elle); set, set-full, \
     bank, long-fork (Jepsen's checkers)";

impl std::str::FromStr for ModelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<ModelChoice, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "list-append" | "append" | "elle-list-append" => {
                Ok(ModelChoice::Transactional(Workload::ListAppend))
            }
            "rw-register" | "elle-rw-register" => Ok(ModelChoice::Transactional(Workload::RwRegister)),
            // Jepsen's `set` is its final-read checker; the linearizable set is `linearizable-set`.
            "set" => Ok(ModelChoice::Jepsen(jepsen::Checker::Set)),
            "set-full" => Ok(ModelChoice::Jepsen(jepsen::Checker::SetFull)),
            "bank" => Ok(ModelChoice::Jepsen(jepsen::Checker::Bank)),
            "long-fork" => Ok(ModelChoice::Jepsen(jepsen::Checker::LongFork)),
            "multi-register" => Err("not supported yet: Knossos's multi-register (several registers \
                 read and written together in one op); for one register per key use kv, for \
                 transactions over registers rw-register"
                .into()),
            "unordered-queue" | "total-queue" => Err(format!(
                "not supported yet: Jepsen's {s} checker (queue contents without order); \
                 `queue` checks a FIFO queue for linearizability"
            )),
            _ => s.parse().map(ModelChoice::Linear).map_err(|_: crate::model::UnknownModel| {
                format!("unknown model `{s}`; expected {MODEL_NAMES}")
            }),
        }
    }
}

/// The isolation level Elle checks (the orders it adds to the data dependencies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Data dependencies only.
    #[default]
    Serializable,
    /// And each process's transactions in order.
    StrongSessionSerializable,
    /// And real time (and real-time version orders for registers).
    StrictSerializable,
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Isolation, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "serializable" => Ok(Isolation::Serializable),
            "strong-session-serializable" | "session" => Ok(Isolation::StrongSessionSerializable),
            "strict-serializable" | "strict" => Ok(Isolation::StrictSerializable),
            other => Err(format!(
                "unknown isolation level `{other}`; expected serializable, strong-session-serializable or strict-serializable"
            )),
        }
    }
}

impl Isolation {
    pub fn options(self) -> elle::Options {
        match self {
            Isolation::Serializable => elle::Options::serializable(),
            Isolation::StrongSessionSerializable => {
                elle::Options { realtime: false, process: true, realtime_version_order: false }
            }
            Isolation::StrictSerializable => elle::Options::strict_serializable(),
        }
    }
}

/// The exit statuses.
pub const EXIT_LINEARIZABLE: u8 = 0;
pub const EXIT_NOT_LINEARIZABLE: u8 = 1;
pub const EXIT_UNKNOWN: u8 = 2;

/// Malformed lines shown before "... and N more".
const ERRORS_SHOWN_MAX: usize = 50;

/// How often [`run_with_progress`] reports progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Run the check, writing the report to `out`; returns the exit status.
pub fn run(options: &CheckOptions, out: &mut dyn Write) -> io::Result<u8> {
    run_with_progress(options, out, &|_, _| {})
}

/// [`run`], calling `on_progress` every [`PROGRESS_INTERVAL`] while the linearizability search runs,
/// with each partition's status (in the order partitions are checked) and `false`, and once more
/// when the search has ended (`true`), before the verdict is written.
pub fn run_with_progress(
    options: &CheckOptions,
    out: &mut dyn Write,
    on_progress: &(dyn Fn(&[PartitionStatus], bool) + Sync),
) -> io::Result<u8> {
    let path = options.history.display();
    let bytes = match std::fs::read(&options.history) {
        Ok(bytes) => bytes,
        Err(e) => {
            writeln!(out, "error: cannot read {path}: {e}")?;
            return Ok(EXIT_UNKNOWN);
        }
    };
    // Invalid UTF-8 is replaced, not fatal: the damaged lines then fail to parse, with their numbers.
    let text = String::from_utf8_lossy(&bytes);
    let format = formats::detect(&text, options.format);
    if let Some(keys) = options.convert {
        return convert(options, keys, &text, format, out);
    }
    if let Some(checker) = options.jepsen {
        return run_jepsen(options, checker, &text, format, out);
    }
    let guessed_workload = txn_history::guess_workload(&text);
    let mut model_choice = options.model;
    let workload = match (options.transactional, options.model) {
        // `rw-register` on single reads and writes: the register (see the module docs).
        // (Concord's own transactional JSON Lines may omit `"f":"txn"`; those do not parse as
        // single operations, and stay with Elle.)
        (Some(Workload::RwRegister), _)
            if guessed_workload.is_none() && formats::parse_with_lines(&text, format).is_ok() =>
        {
            writeln!(out, "model: register (rw-register without transactions: a linearizable register)")?;
            model_choice = Some(Model::Register);
            None
        }
        (Some(workload), _) => Some(workload),
        (None, None) => guessed_workload,
        (None, Some(_)) => None,
    };
    if let Some(workload) = workload {
        return run_elle(options, workload, &text, format, out);
    }
    let parsed = match formats::parse_with_lines(&text, format) {
        Ok(parsed) => parsed,
        Err(errors) => {
            writeln!(
                out,
                "error: {path} is not a valid {format:?} history ({} malformed lines):",
                errors.len()
            )?;
            for e in errors.iter().take(ERRORS_SHOWN_MAX) {
                writeln!(out, "  {path}:{}: {}", e.line, e.message)?;
            }
            if errors.len() > ERRORS_SHOWN_MAX {
                writeln!(out, "  ... and {} more", errors.len() - ERRORS_SHOWN_MAX)?;
            }
            return Ok(EXIT_UNKNOWN);
        }
    };
    let ops = match prepare(&parsed.history) {
        Ok(ops) => ops,
        Err(errors) => {
            writeln!(out, "error: {path} is not a well-formed history ({} problems):", errors.len())?;
            for e in errors.iter().take(ERRORS_SHOWN_MAX) {
                let line = parsed.lines.get(e.event_index).copied().unwrap_or(0);
                writeln!(out, "  {path}:{line}: {}", e.message)?;
            }
            return Ok(EXIT_UNKNOWN);
        }
    };
    if parsed.history.is_empty() {
        // "Linearizable" would be true and useless: an empty file is more likely a mistake.
        writeln!(out, "error: {path} holds no operations: there is nothing to check")?;
        return Ok(EXIT_UNKNOWN);
    }
    let model = match model_choice {
        Some(model) => model,
        None if parsed.porcupine => {
            writeln!(out, "model: porcupine-kv (Porcupine's operations; choose with --model)")?;
            Model::PorcupineKv
        }
        None => {
            let model = guess_model(&ops);
            writeln!(out, "model: {model} (guessed from the operations; choose with --model)")?;
            model
        }
    };
    writeln!(
        out,
        "history: {path} ({format:?}, {} events, {} operations after dropping failed ones{})",
        parsed.history.len(),
        ops.len(),
        if parsed.skipped_lines > 0 {
            format!(", {} lines skipped", parsed.skipped_lines)
        } else {
            String::new()
        }
    )?;

    let started = Instant::now();
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        jobs => jobs,
    };
    let progress = Progress::default();
    let check_options = Options {
        timeout: options.timeout,
        jobs,
        cache_bytes_max: options.cache_mb.saturating_mul(1 << 20),
        progress: Some(&progress),
    };
    let verdict = std::thread::scope(|scope| {
        let search = scope.spawn(|| check_operations_with(&ops, model, &check_options));
        // Look often (a quick check should not wait for the interval), report every interval.
        let mut reported = Instant::now();
        while !search.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
            if reported.elapsed() >= PROGRESS_INTERVAL {
                on_progress(&progress.snapshot(), false);
                reported = Instant::now();
            }
        }
        on_progress(&progress.snapshot(), true);
        search.join().unwrap_or_else(|_| Verdict::Unknown("internal error: the search panicked".into()))
    });
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    writeln!(out, "{verdict}")?;
    writeln!(out, "checked in {elapsed_ms:.1} ms")?;

    if options.guarantees {
        writeln!(out, "{}", guarantees::check(&parsed.history))?;
    }
    if options.staleness {
        let report = staleness::analyze(&parsed.history);
        writeln!(
            out,
            "staleness: {} reads ({} unresolved); fraction returning the latest version: {:.3}",
            report.reads.len(),
            report.unresolved_reads,
            report.probability_within_versions(1)
        )?;
        for (k, n) in report.versions_behind_histogram() {
            writeln!(out, "  {k} versions behind: {n} reads")?;
        }
    }

    Ok(match verdict {
        Verdict::Linearizable => EXIT_LINEARIZABLE,
        Verdict::NotLinearizable(explanation) => {
            if let Some(html_path) = &options.html {
                match std::fs::write(html_path, html::render(&explanation)) {
                    Ok(()) => writeln!(out, "explanation written to {}", html_path.display())?,
                    Err(e) => writeln!(out, "error: cannot write {}: {e}", html_path.display())?,
                }
            }
            EXIT_NOT_LINEARIZABLE
        }
        Verdict::Unknown(_) => EXIT_UNKNOWN,
    })
}

/// The transactional check: parse, pair, run Elle, print the report (and the HTML page).
fn run_elle(
    options: &CheckOptions,
    workload: Workload,
    text: &str,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<u8> {
    let path = options.history.display();
    let parsed = match format {
        Format::JsonLines if !text.trim_start().starts_with('[') => txn_history::parse_jsonl(text, workload),
        Format::JsonLines | Format::JsonArray | Format::Edn => {
            txn_history::parse_op_maps(text, format, workload)
        }
        Format::JepsenLog | Format::Auto => {
            writeln!(
                out,
                "error: {path}: transactional histories are read from EDN op maps, JSON arrays or JSON Lines"
            )?;
            return Ok(EXIT_UNKNOWN);
        }
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(errors) => {
            writeln!(
                out,
                "error: {path} is not a valid {workload} history ({} malformed lines):",
                errors.len()
            )?;
            for e in errors.iter().take(ERRORS_SHOWN_MAX) {
                writeln!(out, "  {path}:{}: {}", e.line, e.message)?;
            }
            return Ok(EXIT_UNKNOWN);
        }
    };
    let history = match TxnHistory::from_events(workload, &parsed.events) {
        Ok(history) => history,
        Err(errors) => {
            writeln!(out, "error: {path} is not a well-formed history ({} problems):", errors.len())?;
            for e in errors.iter().take(ERRORS_SHOWN_MAX) {
                let line = parsed.lines.get(e.event_index).copied().unwrap_or(0);
                writeln!(out, "  {path}:{line}: {}", e.message)?;
            }
            return Ok(EXIT_UNKNOWN);
        }
    };
    if history.txns.is_empty() {
        writeln!(out, "error: {path} holds no transactions: there is nothing to check")?;
        return Ok(EXIT_UNKNOWN);
    }
    writeln!(out, "model: {workload} (Elle; choose with --model)")?;
    let started = Instant::now();
    let report = match elle::check(&history, &options.isolation.options()) {
        Ok(report) => report,
        Err(e) => {
            writeln!(out, "error: {path}: {e}")?;
            return Ok(EXIT_UNKNOWN);
        }
    };
    write!(out, "{report}")?;
    writeln!(out, "checked in {:.1} ms", started.elapsed().as_secs_f64() * 1e3)?;
    if let Some(html_path) = &options.html {
        match std::fs::write(html_path, elle::html::render(&report)) {
            Ok(()) => writeln!(out, "report written to {}", html_path.display())?,
            Err(e) => writeln!(out, "error: cannot write {}: {e}", html_path.display())?,
        }
    }
    Ok(if report.is_valid() { EXIT_LINEARIZABLE } else { EXIT_NOT_LINEARIZABLE })
}

/// Print malformed lines, at most [`ERRORS_SHOWN_MAX`].
fn write_errors(out: &mut dyn Write, path: &str, errors: &[formats::ParseError]) -> io::Result<()> {
    for e in errors.iter().take(ERRORS_SHOWN_MAX) {
        writeln!(out, "  {path}:{}: {}", e.line, e.message)?;
    }
    if errors.len() > ERRORS_SHOWN_MAX {
        writeln!(out, "  ... and {} more", errors.len() - ERRORS_SHOWN_MAX)?;
    }
    Ok(())
}

/// `--model set | set-full | bank | long-fork`: one of Jepsen's checkers ([`crate::jepsen`]).
fn run_jepsen(
    options: &CheckOptions,
    checker: jepsen::Checker,
    text: &str,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<u8> {
    let path = options.history.display().to_string();
    let ops = match jepsen::read_ops(text, format) {
        Ok(ops) => ops,
        Err(errors) => {
            writeln!(out, "error: {path} is not a valid {checker} history ({} problems):", errors.len())?;
            write_errors(out, &path, &errors)?;
            return Ok(EXIT_UNKNOWN);
        }
    };
    if ops.is_empty() {
        writeln!(out, "error: {path} holds no operations: there is nothing to check")?;
        return Ok(EXIT_UNKNOWN);
    }
    writeln!(out, "model: {checker} (Jepsen's checker)")?;
    let started = Instant::now();
    let valid = match checker {
        jepsen::Checker::Set => jepsen::set::check(&ops).map(|r| (r.to_string(), r.is_valid())),
        jepsen::Checker::SetFull => jepsen::set_full::check(&ops).map(|r| (r.to_string(), r.is_valid())),
        jepsen::Checker::Bank => {
            jepsen::bank::check(&ops, &options.bank).map(|r| (r.to_string(), r.is_valid()))
        }
        jepsen::Checker::LongFork => jepsen::long_fork::check(&ops).map(|r| (r.to_string(), r.is_valid())),
    };
    match valid {
        Ok((report, valid)) => {
            write!(out, "{report}")?;
            writeln!(out, "checked in {:.1} ms", started.elapsed().as_secs_f64() * 1e3)?;
            Ok(if valid { EXIT_LINEARIZABLE } else { EXIT_NOT_LINEARIZABLE })
        }
        Err(e) => {
            writeln!(out, "unknown: {path}: {e}")?;
            Ok(EXIT_UNKNOWN)
        }
    }
}

/// `--convert edn`: write the history as Jepsen EDN to `out` (nothing else), exit 0; bad input as
/// for a check, exit 2.
fn convert(
    options: &CheckOptions,
    keys: KeyStyle,
    text: &str,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<u8> {
    let path = options.history.display().to_string();
    match formats::parse_with_lines(text, format) {
        Ok(parsed) => {
            out.write_all(formats::edn::write_history(&parsed.history, keys).as_bytes())?;
            Ok(EXIT_LINEARIZABLE)
        }
        Err(errors) => {
            writeln!(
                out,
                "error: {path} is not a valid {format:?} history ({} malformed lines):",
                errors.len()
            )?;
            write_errors(out, &path, &errors)?;
            Ok(EXIT_UNKNOWN)
        }
    }
}

/// `--convert`'s values.
pub fn parse_convert(s: &str) -> Result<KeyStyle, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "edn" => Ok(KeyStyle::Field),
        "edn-independent" => Ok(KeyStyle::Independent),
        other => Err(format!("cannot convert to `{other}`; expected edn or edn-independent")),
    }
}

/// Guess the model from the functions used: only acquire/release is a mutex; appends of strings
/// with string reads are Porcupine's KV; queues enqueue/dequeue; `add` with integer reads is a
/// counter, with list reads a set; `delete`/`append` or keys make a KV map; otherwise a register.
pub fn guess_model(ops: &[Operation]) -> Model {
    let has = |f: OpFn| ops.iter().any(|op| op.f == f);
    let is_string = |v: &Value| matches!(v, Value::Str(_));
    let mutex = crate::model::MutexModel;
    if !ops.is_empty() && ops.iter().all(|op| crate::model::Sequential::validate(&mutex, op).is_ok()) {
        Model::Mutex
    } else if has(OpFn::Append)
        && ops.iter().filter(|op| op.f == OpFn::Append).all(|op| is_string(&op.input))
        && ops.iter().filter(|op| op.f == OpFn::Read).filter_map(|op| op.output.as_ref()).any(is_string)
    {
        // Appending strings and reading strings back: the course KV service, not a list.
        Model::PorcupineKv
    } else if has(OpFn::Enqueue) || has(OpFn::Dequeue) {
        Model::Queue
    } else if has(OpFn::Add) {
        let list_read = ops.iter().any(|op| op.f == OpFn::Read && matches!(op.output, Some(Value::List(_))));
        if list_read {
            Model::Set
        } else {
            Model::Counter
        }
    } else if has(OpFn::Delete) || has(OpFn::Append) || ops.iter().any(|op| op.key.is_some()) {
        Model::Kv
    } else {
        Model::Register
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(path: PathBuf) -> CheckOptions {
        CheckOptions {
            timeout: Duration::from_secs(5),
            jobs: 2,
            cache_mb: 1024,
            guarantees: true,
            staleness: true,
            ..CheckOptions::new(path)
        }
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("concord-check-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn exit_statuses() {
        let good =
            temp("good.log", "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read 1\n");
        let mut out = Vec::new();
        assert_eq!(run(&options(good), &mut out).unwrap(), EXIT_LINEARIZABLE);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("model: register"), "{text}");

        let bad = temp("bad.log", "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read 2\n");
        let html_path = bad.with_extension("html");
        let mut out = Vec::new();
        let mut opts = options(bad);
        opts.html = Some(html_path.clone());
        assert_eq!(run(&opts, &mut out).unwrap(), EXIT_NOT_LINEARIZABLE);
        assert!(std::fs::read_to_string(&html_path).unwrap().contains("<svg"));

        let malformed = temp("malformed.log", "0 :invoke :write 1\nthis is not an op\n");
        let mut out = Vec::new();
        assert_eq!(run(&options(malformed.clone()), &mut out).unwrap(), EXIT_UNKNOWN);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("malformed.log:2:"), "{text}");

        let unpaired = temp("unpaired.log", "0 :invoke :write 1\n0 :invoke :write 2\n");
        let mut out = Vec::new();
        assert_eq!(run(&options(unpaired), &mut out).unwrap(), EXIT_UNKNOWN);
        assert!(String::from_utf8(out).unwrap().contains("unpaired.log:2:"));

        let mut out = Vec::new();
        assert_eq!(run(&options(PathBuf::from("/nonexistent/history")), &mut out).unwrap(), EXIT_UNKNOWN);

        let mut out = Vec::new();
        assert_eq!(run(&options(temp("empty.log", "")), &mut out).unwrap(), EXIT_UNKNOWN);
        assert!(String::from_utf8(out).unwrap().contains("nothing to check"));

        // The same value written twice: no polynomial shortcut applies, so the search runs and the
        // zero time limit bites.
        let mut timeout = options(temp(
            "t.log",
            "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :write 1\n1 :ok :write 1\n",
        ));
        timeout.timeout = Duration::ZERO;
        assert_eq!(run(&timeout, &mut Vec::new()).unwrap(), EXIT_UNKNOWN);
    }

    #[test]
    fn transactional_histories_go_to_elle() {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        // Detected by `:f :txn`: a read skew, G-single.
        let skew = data.join("elle-list-append-g-single.edn");
        let html_path = std::env::temp_dir().join(format!("concord-elle-{}.html", std::process::id()));
        let mut opts = options(skew.clone());
        opts.html = Some(html_path.clone());
        let mut out = Vec::new();
        assert_eq!(run(&opts, &mut out).unwrap(), EXIT_NOT_LINEARIZABLE);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("model: list-append") && text.contains("G-single"), "{text}");
        assert!(std::fs::read_to_string(&html_path).unwrap().contains("<svg"));
        let _ = std::fs::remove_file(html_path);

        // The same transactions, serially: valid for strict serializability.
        let mut opts = options(data.join("elle-list-append-valid.edn"));
        opts.transactional = Some(Workload::ListAppend);
        opts.isolation = "strict-serializable".parse().unwrap();
        let mut out = Vec::new();
        assert_eq!(run(&opts, &mut out).unwrap(), EXIT_LINEARIZABLE, "{}", String::from_utf8_lossy(&out));

        // `--model` parses both kinds.
        assert_eq!(
            "rw-register".parse::<ModelChoice>(),
            Ok(ModelChoice::Transactional(Workload::RwRegister))
        );
        assert_eq!("kv".parse::<ModelChoice>(), Ok(ModelChoice::Linear(Model::Kv)));
        assert!("graph".parse::<ModelChoice>().unwrap_err().contains("list-append"));
        assert_eq!("cas-register".parse::<ModelChoice>(), Ok(ModelChoice::Linear(Model::Register)));
        assert_eq!("set".parse::<ModelChoice>(), Ok(ModelChoice::Jepsen(jepsen::Checker::Set)));
        assert_eq!("linearizable-set".parse::<ModelChoice>(), Ok(ModelChoice::Linear(Model::Set)));
        assert!("multi-register".parse::<ModelChoice>().unwrap_err().starts_with("not supported yet"));
    }
}

//! `concord-fuzz`: run the fuzz targets (see the crate docs, and `docs/security.md`, *Fuzzing*).
//!
//! ```text
//! cargo run -p concord-fuzz -- --all --seconds 15               # CI: every target, 15 s each
//! cargo run -p concord-fuzz --release -- --target resp --seconds 3600   # long, with a progress bar
//! cargo run -p concord-fuzz -- --replay crates/concord-fuzz/regressions/resp/crash-….bin
//! cargo run -p concord-fuzz -- --list
//! ```

use concord_fuzz::driver::{self, Budget, Options};
use concord_fuzz::targets;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str =
    "concord-fuzz: fuzz Concord's parsers of untrusted input (stable toolchain, seeded, reproducible)

  --all                 fuzz every target, one after the other
  --target, -t NAME     fuzz this target (repeatable); --list names them
  --seconds S           seconds per target (default 10)
  --runs N              stop each target after N inputs (with --seed: replays a run exactly)
  --seed N              the generator's seed (default: drawn from the clock; always printed)
  --hang-seconds S      one input running longer than this is a hang (default 20)
  --no-save             do not save failing inputs under crates/concord-fuzz/regressions/
  --replay PATH         run stored inputs (files, or directories of them) once each (repeatable);
                        the target is the file's directory name (regressions/<target>/), or --target
  --list                list the targets
";

/// The command line. (Parsed by hand: this is a developer's tool, and the workspace keeps clap to
/// the `concord` binary – crates/concord/tests/architecture.rs.)
#[derive(Debug)]
struct Args {
    all: bool,
    target: Vec<String>,
    seconds: f64,
    runs: Option<u64>,
    seed: Option<u64>,
    hang_seconds: f64,
    no_save: bool,
    replay: Vec<PathBuf>,
    list: bool,
}

impl Args {
    fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            all: false,
            target: Vec::new(),
            seconds: 10.0,
            runs: None,
            seed: None,
            hang_seconds: 20.0,
            no_save: false,
            replay: Vec::new(),
            list: false,
        };
        fn value<T: std::str::FromStr>(flag: &str, word: Option<String>) -> Result<T, String> {
            let word = word.ok_or_else(|| format!("{flag} needs a value"))?;
            word.parse().map_err(|_| format!("{flag}: {word:?} is not a valid value"))
        }
        while let Some(word) = words.next() {
            match word.as_str() {
                "--all" => args.all = true,
                "--target" | "-t" => args.target.push(value("--target", words.next())?),
                "--seconds" => args.seconds = value("--seconds", words.next())?,
                "--runs" => args.runs = Some(value("--runs", words.next())?),
                "--seed" => args.seed = Some(value("--seed", words.next())?),
                "--hang-seconds" => args.hang_seconds = value("--hang-seconds", words.next())?,
                "--no-save" => args.no_save = true,
                "--replay" => args.replay.push(value("--replay", words.next())?),
                "--list" => args.list = true,
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if args.all && !args.target.is_empty() {
            return Err("--all or --target, not both".into());
        }
        if !(args.seconds >= 0.0 && args.hang_seconds > 0.0) {
            return Err("--seconds and --hang-seconds must be positive".into());
        }
        Ok(args)
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            if problem.is_empty() {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{problem}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for t in targets::ALL {
            println!("{:<10} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    if !args.replay.is_empty() {
        return replay(&args);
    }
    let chosen: Vec<&'static driver::Target> = if args.all {
        targets::ALL.to_vec()
    } else if args.target.is_empty() {
        eprintln!("say --all or --target NAME (--list names them)");
        return ExitCode::from(2);
    } else {
        let mut chosen = Vec::new();
        for name in &args.target {
            match targets::by_name(name) {
                Some(t) => chosen.push(t),
                None => {
                    eprintln!("no target {name:?}; --list names them");
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let options = Options {
        seed,
        budget: Budget { time: Some(Duration::from_secs_f64(args.seconds)), runs: args.runs },
        hang_limit: Duration::from_secs_f64(args.hang_seconds),
        save: !args.no_save,
    };
    println!("fuzzing {} target(s), {} s each, seed {seed}", chosen.len(), args.seconds);
    let mut failed = 0;
    for target in chosen {
        let bar = ProgressBar::new((args.seconds * 1000.0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {elapsed}/{duration} {msg}")
                .expect("a progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(target.name);
        // The bar draws only on a terminal: CI logs get the summary lines alone.
        let report = driver::fuzz(target, &options, &mut |p| {
            bar.set_position(p.elapsed.as_millis() as u64);
            bar.set_message(format!("{} runs, {} outcomes, corpus {}", p.runs, p.outcomes, p.corpus));
        });
        bar.finish_and_clear();
        println!("{}", report.summary());
        if let Some(f) = &report.failure {
            failed += 1;
            println!("  after run {}: {}", f.run, f.message.replace('\n', "\n  "));
            println!("  input ({} bytes, minimised): {}", f.input.len(), driver::hex_excerpt(&f.input));
            match &f.saved {
                Some(path) => {
                    println!("  saved as {} – commit it with the fix: cargo test replays it", path.display());
                    println!("  replay: {}", driver::replay_command(path));
                }
                None => println!(
                    "  replay the run: cargo run -p concord-fuzz -- --target {} --seed {} --runs {}",
                    target.name, seed, f.run
                ),
            }
        }
    }
    if failed > 0 {
        println!("fuzz: {failed} target(s) FAILED");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(args: &Args) -> ExitCode {
    let mut files = Vec::new();
    for path in &args.replay {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
                .unwrap_or_default();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut failed = 0;
    for file in &files {
        let name =
            args.target.first().cloned().or_else(|| {
                file.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned())
            });
        let Some(target) = name.as_deref().and_then(targets::by_name) else {
            eprintln!("{}: which target? (put it in regressions/<target>/ or say --target)", file.display());
            return ExitCode::from(2);
        };
        let input = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        match driver::execute(target, &input, Duration::from_secs_f64(args.hang_seconds), false) {
            Ok(label) => println!("{} ({}): ok – {label}", file.display(), target.name),
            Err(message) => {
                failed += 1;
                println!("{} ({}): FAILED – {message}", file.display(), target.name);
            }
        }
    }
    println!("{} passed, {} failed", files.len() - failed, failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(words: &[&str]) -> Result<Args, String> {
        Args::parse(words.iter().map(|w| w.to_string()))
    }

    #[test]
    fn the_ci_command_line_parses() {
        let args = parse(&["--all", "--seconds", "15", "--seed", "20261205"]).unwrap();
        assert!(args.all && args.seconds == 15.0 && args.seed == Some(20261205) && !args.no_save);
        let args = parse(&["-t", "resp", "--target", "wal", "--runs", "9", "--no-save"]).unwrap();
        assert_eq!(args.target, ["resp", "wal"]);
        assert_eq!(args.runs, Some(9));
        assert!(parse(&["--all", "--target", "resp"]).is_err());
        assert!(parse(&["--seconds"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--seed", "x"]).unwrap_err().contains("not a valid value"));
        assert!(parse(&["--frobnicate"]).is_err());
    }
}

//! Every command in the guides runs (issue #17): the fenced shell blocks of README.md and of every
//! Markdown file under `docs/` and `deploy/` are extracted and run with bash, with this test's
//! `concord` binary on `PATH`. A guide whose commands stopped working fails this test.
//!
//! The marking convention (docs/README.md says the same, for writers):
//!
//! * ```` ```sh ```` (or `bash`, `shell`) runs by default. Anything else (`text`, `toml`, …) is not
//!   a command: transcripts, prompts and program output are ```` ```text ````.
//! * ```` ```sh long ```` runs only in the long run (more than ~60 s, Docker, release builds):
//!   `cargo test -p concord --test docs_commands -- --ignored` runs every block, long ones too.
//! * ```` ```sh long cargo ```` builds this workspace with cargo (a fuzz run, a benchmark, a debug
//!   build for an image): it runs in the long run only, from the repository's root (cargo needs the
//!   workspace) with `CARGO_TARGET_DIR` set to a directory of its own, `docs-cargo/` beside this
//!   test's target directory – the `cargo test` running this test holds its own build directory's
//!   lock until it ends, so a block building there would wait forever.
//! * ```` ```sh needs=WHAT ```` is never run and is listed as not run, "needs WHAT": for what no
//!   test machine has (a Kubernetes cluster, `perf` rights, a second machine, hours), and for the
//!   commands that run this very test (the test suite itself, the long run).
//! * ```` ```sh server ports=6379-6381,8080-8082 ```` starts in the background (a cluster, a
//!   viewer): the test waits until every listed port accepts connections (without `ports=`: 1 s),
//!   then runs the blocks after it against it. It is stopped like Ctrl-C (SIGINT to its process
//!   group, SIGKILL after 20 s) when the file ends, or when a later server block of the file needs
//!   one of its ports (with the servers started after it: its clients); its ports must be free
//!   again afterwards. A server block that exits before it is ready, or fails by itself later,
//!   fails.
//! * ```` ```sh status=1 ```` runs, a command exiting with 1 counting as success too (a `concord
//!   design` whose requirements are missed on purpose); any other status fails.
//! * `ports=` on any block says the ports it uses. From its first block that uses ports (or is a
//!   server) to its end, a file runs alone among such files: the guides use the default ports. A
//!   block's ports must be free when it starts – a server block of the file holding one is stopped
//!   first, as a reader stops a cluster before starting another on its ports – and every declared
//!   port must be free again when the file ends (a `docker-compose up -d` block may leave them
//!   taken for the blocks after it, until one of them runs `down`).
//!
//! How a block runs: as one bash script with `set -e -o pipefail` semantics (an ERR trap), so the first failing command
//! fails the block, and the first failing block ends its file (later blocks build on it). Each
//! block is a fresh shell (no `cd` or variable carries over), in its own process group, killed
//! when the block ends (a `cmd &` left behind dies with it) or when its time limit passes. Each
//! file runs in its own scratch directory that sees the repository's directories through symbolic
//! links (`scenarios/`, `labs/`, `docs/`, …), so `concord sim scenarios/paxos.toml` works and the
//! files a command writes (`concord-data/`, `out/`, `run.jsonl`) land in the scratch directory.
//! `open` and `xdg-open` are replaced by a script that prints the URL: no browser is started.
//!
//! `CONCORD_DOCS_ONLY=docs/sharding.md` (any part of a path; several, comma-separated) runs only
//! the matching guides;
//! `CONCORD_DOCS_KEEP=1` keeps the scratch directories (each block's script and log);
//! `CONCORD_DOCS_BIN=target/release/concord` runs the guides with that binary instead of this
//! test's debug build (for the long run). Either way the blocks see it as `CONCORD_BIN` too, so
//! `deploy/build-image.sh` puts the binary under test in the image instead of building a release. `redis-cli` runs with `-e`: an error reply fails the block.
//! Files run two at a time on a machine with two cores or more. Under `CI=true` a missing tool
//! (bash, redis-cli, curl) fails the test; elsewhere the test says what is missing and passes.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The repository's directories a guide's commands may read, linked into each scratch directory.
/// Only these: the repository's own `concord-data/` or `out/` (left by hand-run commands) must not
/// be seen, nor written through a link.
const LINKED_DIRS: &[&str] = &["bench", "crates", "deploy", "docs", "labs", "scenarios", "tools", "web"];

/// The time limit of one default block: the convention is "over ~60 s: long", in release builds;
/// debug builds are several times slower.
const BLOCK_LIMIT: Duration = Duration::from_secs(120);
/// The time limit of one long block (a release build of the workspace takes ~15 minutes here).
const LONG_BLOCK_LIMIT: Duration = Duration::from_secs(3600);
/// How long a server block may take to listen on its ports.
const SERVER_READY_LIMIT: Duration = Duration::from_secs(90);
/// How long a stopped server's process group may take to exit after SIGINT before SIGKILL.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(20);
/// Lines of a failed block's output shown in the failure.
const TAIL_LINES: usize = 25;

#[test]
fn every_default_shell_block_of_the_guides_runs() {
    run_guides(Run::Default);
}

#[test]
#[ignore = "the long blocks too (Docker, release builds, minutes each): \
            cargo test -p concord --test docs_commands -- --ignored"]
fn every_shell_block_of_the_guides_runs_long_ones_too() {
    run_guides(Run::Long);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    Default,
    Long,
}

/// One fenced shell block of a guide, with its marks.
#[derive(Debug, PartialEq)]
struct Block {
    /// The line of the opening fence (1-based).
    fence_line: usize,
    /// The block's lines, the fence's indentation removed; line `i` is at `fence_line + 1 + i`.
    lines: Vec<String>,
    long: bool,
    server: bool,
    /// `cargo` (with `long`): runs from the repository's root with a target directory of its own.
    cargo: bool,
    /// `needs=WHAT`: never run.
    needs: Option<String>,
    ports: Vec<u16>,
    /// `status=1,2`: exit statuses besides 0 that a command of the block may end with.
    statuses: Vec<u8>,
}

/// The fenced shell blocks of a Markdown text, or the lines that break the convention.
fn shell_blocks(text: &str) -> Result<Vec<Block>, Vec<String>> {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(fence) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) else { continue };
        let fence_len = trimmed.len() - trimmed.trim_start_matches(fence.chars().next().unwrap()).len();
        let info = &trimmed[fence_len..];
        let mut body = Vec::new();
        for (_, inner) in lines.by_ref() {
            let inner_trimmed = inner.trim_start();
            let marker = &fence[..1];
            if inner_trimmed.starts_with(&marker.repeat(fence_len))
                && inner_trimmed.trim_start_matches(marker).trim().is_empty()
            {
                break;
            }
            // Remove at most the fence's indentation, as CommonMark does.
            let strip = inner.len() - inner.trim_start_matches(' ').len();
            body.push(inner[strip.min(indent)..].to_string());
        }
        let fence_line = index + 1;
        let mut words = info.split_whitespace();
        if !matches!(words.next(), Some("sh" | "bash" | "shell")) {
            continue;
        }
        let mut block = Block {
            fence_line,
            lines: body,
            long: false,
            server: false,
            cargo: false,
            needs: None,
            ports: Vec::new(),
            statuses: Vec::new(),
        };
        for word in words {
            match word.split_once('=') {
                None if word == "long" => block.long = true,
                None if word == "server" => block.server = true,
                None if word == "cargo" => block.cargo = true,
                Some(("needs", what)) if !what.is_empty() => block.needs = Some(what.to_string()),
                Some(("ports", list)) => match parse_ports(list) {
                    Ok(ports) => block.ports = ports,
                    Err(e) => errors.push(format!("line {fence_line}: ports={list}: {e}")),
                },
                Some(("status", list)) => {
                    match list.split(',').map(str::parse::<u8>).collect::<Result<Vec<_>, _>>() {
                        Ok(statuses) => block.statuses = statuses,
                        Err(_) => errors
                            .push(format!("line {fence_line}: status={list}: not a list of exit statuses")),
                    }
                }
                _ => errors.push(format!(
                    "line {fence_line}: unknown mark `{word}` after ```{}; the marks are long, server, \
                     cargo, ports=6379-6381,8080, status=1 and needs=WHAT (docs/README.md)",
                    info.split_whitespace().next().unwrap_or_default()
                )),
            }
        }
        if block.cargo && (!block.long || block.server) {
            errors.push(format!(
                "line {fence_line}: a `cargo` block builds for minutes: mark it `long` too (and not `server`)"
            ));
        }
        for (i, line) in block.lines.iter().enumerate() {
            if looks_like_a_transcript(line) {
                errors.push(format!(
                    "line {}: `{}` is a prompt or output, not a command: write the block as ```text",
                    fence_line + 1 + i,
                    line.trim()
                ));
            }
        }
        blocks.push(block);
    }
    if errors.is_empty() {
        Ok(blocks)
    } else {
        Err(errors)
    }
}

/// `127.0.0.1:6379> GET k` (redis-cli's prompt), `$ concord up` (a shell prompt), `-> invalidate`.
fn looks_like_a_transcript(line: &str) -> bool {
    let line = line.trim_start();
    if line.starts_with("$ ") || line.starts_with("-> ") {
        return true;
    }
    match line.split_once("> ") {
        Some((prompt, _)) => prompt.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(' ')
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
        }),
        None => false,
    }
}

/// `6379-6381,8080` → [6379, 6380, 6381, 8080].
fn parse_ports(list: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in list.split(',') {
        let number = |s: &str| s.parse::<u16>().map_err(|_| format!("`{s}` is not a port number"));
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if from > to {
                    return Err(format!("`{part}`: an empty range"));
                }
                ports.extend(from..=to);
            }
            None => ports.push(number(part)?),
        }
    }
    Ok(ports)
}

/// README.md, then every Markdown file under docs/ and deploy/, in path order.
fn guides(repo: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo.join("docs"), &mut found);
    walk(&repo.join("deploy"), &mut found);
    found.sort();
    let mut all = vec![repo.join("README.md")];
    all.extend(found);
    all.into_iter().map(|p| p.strip_prefix(repo).unwrap().to_path_buf()).collect()
}

/// What happened to one guide.
struct FileReport {
    file: PathBuf,
    ran: usize,
    long_skipped: usize,
    not_run: Vec<String>,
    failure: Option<String>,
    elapsed: Duration,
    /// The line of the slowest block run, and its time: the one to mark long if the file is slow.
    slowest: Option<(usize, Duration)>,
}

fn run_guides(run: Run) {
    let missing: Vec<&str> =
        ["bash", "redis-cli", "curl"].into_iter().filter(|tool| !on_path(tool)).collect();
    if !missing.is_empty() {
        let message = format!("the guides' commands need {} on PATH", missing.join(", "));
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message} (CI=true: install them; .ci/run does)");
        }
        eprintln!("skipped: {message}");
        return;
    }
    let repo = Path::new(REPO).canonicalize().unwrap();
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    // CONCORD_DOCS_ONLY=docs/sharding.md (a part of the path; several, comma-separated) runs only
    // the matching guides.
    let only = std::env::var("CONCORD_DOCS_ONLY").unwrap_or_default();
    let wanted = |file: &Path| only.split(',').any(|part| file.to_string_lossy().contains(part));
    for file in guides(&repo).into_iter().filter(|f| wanted(f)) {
        let text = std::fs::read_to_string(repo.join(&file)).unwrap();
        match shell_blocks(&text) {
            Ok(blocks) => parsed.push((file, blocks)),
            Err(e) => errors.extend(e.into_iter().map(|e| format!("{}: {e}", file.display()))),
        }
    }
    assert!(errors.is_empty(), "guides that break the marking convention:\n{}", errors.join("\n"));

    let started = Instant::now();
    let queue = Mutex::new(parsed.into_iter().enumerate().collect::<VecDeque<_>>());
    let reports = Mutex::new(Vec::new());
    // The guides use the default ports: one port-using file at a time.
    let ports_lock = Mutex::new(());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some((index, (file, blocks))) = queue.lock().unwrap().pop_front() else { break };
                let report = run_file(&repo, &file, &blocks, run, &ports_lock);
                reports.lock().unwrap().push((index, report));
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|(index, _)| *index);

    let mut summary = String::new();
    let mut failures = Vec::new();
    for (_, report) in &reports {
        let verdict = if report.failure.is_some() { "FAILED" } else { "ok" };
        let slowest = report
            .slowest
            .map(|(line, took)| format!("; slowest: line {line}, {:.1} s", took.as_secs_f64()))
            .unwrap_or_default();
        let _ = writeln!(
            summary,
            "{}: {verdict}: {} run, {} long skipped, {} not run ({:.1} s{slowest})",
            report.file.display(),
            report.ran,
            report.long_skipped,
            report.not_run.len(),
            report.elapsed.as_secs_f64()
        );
        for reason in &report.not_run {
            let _ = writeln!(summary, "    {reason}");
        }
        failures.extend(report.failure.clone());
    }
    let _ = writeln!(summary, "{} guides in {:.1} s", reports.len(), started.elapsed().as_secs_f64());
    println!("{summary}");
    assert!(failures.is_empty(), "{summary}\n{}", failures.join("\n\n"));
}

fn runs(block: &Block, run: Run) -> bool {
    block.needs.is_none() && (!block.long || run == Run::Long)
}

fn on_path(tool: &str) -> bool {
    find_on_path(tool).is_some()
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|file| file.is_file())
}

/// The `concord` the guides run: this test's build, or `CONCORD_DOCS_BIN` (a release build, for
/// the long run: the social lab's full-size runs and the chaos runs take hours in a debug build).
fn concord_binary() -> PathBuf {
    match std::env::var_os("CONCORD_DOCS_BIN") {
        Some(bin) => {
            let bin = PathBuf::from(bin);
            assert!(bin.is_file(), "CONCORD_DOCS_BIN={} is not a file", bin.display());
            bin.canonicalize().unwrap()
        }
        None => PathBuf::from(CONCORD),
    }
}

/// Where `cargo` blocks build: `docs-cargo/` in this test's target directory (the test binary is
/// `<target>/debug/deps/docs_commands-…`). Not the target directory itself: the `cargo test`
/// running this test holds its lock until the test ends. Kept between runs, so the next long run
/// builds only what changed.
fn docs_cargo_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("the test binary lives in <target>/<profile>/deps/");
    target.join("docs-cargo")
}

/// A background block of a file, running.
struct Server {
    child: Child,
    ports: Vec<u16>,
    fence_line: usize,
}

/// The scratch directory of one guide: links to the repository's directories, a `bin/` put first
/// on PATH (concord, and `open`/`xdg-open` that print the URL), the blocks' scripts and logs.
struct Scratch {
    dir: tempfile::TempDir,
    path_var: std::ffi::OsString,
}

impl Scratch {
    fn new(repo: &Path, file: &Path) -> Scratch {
        let name = file.to_string_lossy().replace('/', "-");
        let mut dir = tempfile::Builder::new().prefix(&format!("concord-docs-{name}-")).tempdir().unwrap();
        // CONCORD_DOCS_KEEP=1 keeps the scratch directories: each block's script and log are in
        // .docs-test/, beside what the commands wrote.
        if std::env::var_os("CONCORD_DOCS_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("{}: scratch directory {}", file.display(), dir.path().display());
        }
        for linked in LINKED_DIRS {
            if repo.join(linked).is_dir() {
                std::os::unix::fs::symlink(repo.join(linked), dir.path().join(linked)).unwrap();
            }
        }
        let tools = dir.path().join(".docs-test/bin");
        std::fs::create_dir_all(&tools).unwrap();
        std::os::unix::fs::symlink(concord_binary(), tools.join("concord")).unwrap();
        let script = |name: &str, text: String| {
            use std::os::unix::fs::PermissionsExt;
            let path = tools.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        for opener in ["open", "xdg-open"] {
            script(opener, "#!/bin/sh\necho \"docs test: no browser; would open $*\" >&2\n".into());
        }
        // redis-cli exits 0 after an error reply: a guide's `redis-cli SET …` answered `ERR …` would
        // pass. Its `-e` makes an error reply exit 1, so it fails the block like any failing command
        // (a block that shows an error on purpose says `status=1`).
        if let Some(real) = find_on_path("redis-cli") {
            script("redis-cli", format!("#!/bin/sh\nexec '{}' -e \"$@\"\n", real.display()));
        }
        let mut paths = vec![tools];
        paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        let path_var = std::env::join_paths(paths).unwrap();
        Scratch { dir, path_var }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Start block `number` as `bash` in its own process group, its output in a log file.
    fn spawn(&self, number: usize, block: &Block) -> (Child, PathBuf, PathBuf) {
        let state = self.path().join(".docs-test");
        let script = state.join(format!("block-{number}.sh"));
        let log = state.join(format!("block-{number}.log"));
        let failed = state.join(format!("block-{number}.failed"));
        // `set -e`, by hand: the ERR trap fires where `set -e` would stop, and ends the block
        // unless the status is one the block allows; it records the failing command's status and
        // line. The DEBUG trap records the line running now, for a block that runs out of time.
        let allowed: String = block.statuses.iter().map(|s| format!("{s}|")).collect();
        let mut text = format!(
            "set -o pipefail\n\
             trap 'docs_status=$?; case $docs_status in {allowed}0) ;; *) printf \"%s %s\\n\" \"$docs_status\" \"$LINENO\" > {failed}; exit $docs_status;; esac' ERR\n\
             trap 'printf \"%s\\n\" \"$LINENO\" > {failed}.now' DEBUG\n",
            failed = failed.display()
        );
        for line in &block.lines {
            text.push_str(line);
            text.push('\n');
        }
        // The trap has ended the block at any failure not allowed; the last command's allowed
        // failure is no failure of the block.
        text.push_str("exit 0\n");
        std::fs::write(&script, text).unwrap();
        let out = File::create(&log).unwrap();
        let mut command = Command::new("bash");
        if block.cargo {
            let target = docs_cargo_target_dir();
            command
                .current_dir(Path::new(REPO).canonicalize().unwrap())
                .env("CARGO_TARGET_DIR", &target)
                .env("CARGO_INSTALL_ROOT", state.join("cargo-install"));
        } else {
            command.current_dir(self.path());
        }
        // deploy/build-image.sh puts the concord under test in the image too (its CONCORD_BIN)
        // instead of building a release of its own: 15 minutes, and not the binary being tested.
        command.env("CONCORD_BIN", concord_binary());
        let child = command
            .arg(&script)
            .env("PATH", &self.path_var)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        (child, log, failed)
    }
}

/// The number of lines `Scratch::spawn` puts before a block's first line.
const PROLOGUE_LINES: usize = 3;

/// Run one guide's blocks in order. From its first block that uses ports to its end, the file
/// holds `ports_lock`: its later blocks talk to the servers it started.
fn run_file(repo: &Path, file: &Path, blocks: &[Block], run: Run, ports_lock: &Mutex<()>) -> FileReport {
    let mut started = Instant::now();
    let mut report = FileReport {
        file: file.to_path_buf(),
        ran: 0,
        long_skipped: 0,
        not_run: Vec::new(),
        failure: None,
        elapsed: Duration::ZERO,
        slowest: None,
    };
    for block in blocks {
        if let Some(what) = &block.needs {
            report.not_run.push(format!("{}:{}: not run: needs {what}", file.display(), block.fence_line));
        } else if block.long && run == Run::Default {
            report.long_skipped += 1;
        }
    }
    if !blocks.iter().any(|b| runs(b, run)) {
        report.elapsed = started.elapsed();
        return report;
    }
    let scratch = Scratch::new(repo, file);
    let mut servers: Vec<Server> = Vec::new();
    let mut ports_turn = None;
    let where_ =
        |block: &Block, offset: usize| format!("{}:{}", file.display(), block.fence_line + 1 + offset);
    for (number, block) in blocks.iter().enumerate() {
        if !runs(block, run) {
            continue;
        }
        report.ran += 1;
        if (block.server || !block.ports.is_empty()) && ports_turn.is_none() {
            let waiting = Instant::now();
            ports_turn = Some(ports_lock.lock().unwrap_or_else(|e| e.into_inner()));
            // The file's time is its blocks' time, not its wait for the ports.
            started += waiting.elapsed();
        }
        let block_started = Instant::now();
        let result = make_room(block, &mut servers, &where_).and_then(|()| {
            if block.server {
                start_server(&scratch, number, block, &mut servers, &where_)
            } else {
                run_block(&scratch, number, block, run, &where_)
            }
        });
        let took = block_started.elapsed();
        if report.slowest.is_none_or(|(_, slowest)| took > slowest) {
            report.slowest = Some((block.fence_line, took));
        }
        if let Err(failure) = result {
            report.failure = Some(failure);
            break;
        }
    }
    if let Err(e) = stop_servers(servers, file) {
        report.failure.get_or_insert(e);
    }
    if report.failure.is_none() {
        if let Err(e) = ports_left_free(file, blocks, run) {
            report.failure = Some(e);
        }
    }
    drop(ports_turn);
    report.elapsed = started.elapsed();
    report
}

fn run_block(
    scratch: &Scratch,
    number: usize,
    block: &Block,
    run: Run,
    where_: &dyn Fn(&Block, usize) -> String,
) -> Result<(), String> {
    let limit = if block.long { LONG_BLOCK_LIMIT } else { BLOCK_LIMIT };
    if let Some(busy) = block.ports.iter().find(|&&p| listening(p)) {
        return Err(format!(
            "{}: port {busy} is in use before the block starts (another redis-server or cluster?)",
            where_(block, 0)
        ));
    }
    let (mut child, log, failed) = scratch.spawn(number, block);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the block left running in the background ends with it.
    stop_group(&mut child, Signal::SIGTERM, Duration::from_secs(5));
    let _ = run;
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => {
            let (line, what) = match failed_line(&failed, block) {
                Some((code, offset)) => (offset, format!("exited with status {code}")),
                None => (0, format!("ended: {status}")),
            };
            Err(failure(block, line, &what, &log, where_))
        }
        None => {
            let line = std::fs::read_to_string(format!("{}.now", failed.display()))
                .ok()
                .and_then(|l| l.trim().parse::<usize>().ok())
                .map_or(0, |l| l.saturating_sub(PROLOGUE_LINES + 1));
            Err(failure(
                block,
                line,
                &format!("was still running after {} s (the time limit)", limit.as_secs()),
                &log,
                where_,
            ))
        }
    }
}

/// The status and the block line (0-based) the ERR trap recorded.
fn failed_line(failed: &Path, block: &Block) -> Option<(i32, usize)> {
    let text = std::fs::read_to_string(failed).ok()?;
    let (code, line) = text.trim().split_once(' ')?;
    let line = line.parse::<usize>().ok()?.checked_sub(PROLOGUE_LINES + 1)?;
    Some((code.parse().ok()?, line.min(block.lines.len().saturating_sub(1))))
}

fn failure(
    block: &Block,
    line: usize,
    what: &str,
    log: &Path,
    where_: &dyn Fn(&Block, usize) -> String,
) -> String {
    let command = block.lines.get(line).map_or("", |l| l.trim());
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    format!(
        "{} (the block at line {}): `{command}` {what}\n--- the last {} lines of the block's output ---\n{tail}",
        where_(block, line),
        block.fence_line,
        TAIL_LINES.min(lines.len())
    )
}

fn start_server(
    scratch: &Scratch,
    number: usize,
    block: &Block,
    servers: &mut Vec<Server>,
    where_: &dyn Fn(&Block, usize) -> String,
) -> Result<(), String> {
    if let Some(busy) = block.ports.iter().find(|&&p| listening(p)) {
        return Err(format!(
            "{}: port {busy} is in use before the server starts (another redis-server or cluster?)",
            where_(block, 0)
        ));
    }
    let (mut child, log, _) = scratch.spawn(number, block);
    let deadline =
        Instant::now() + if block.ports.is_empty() { Duration::from_secs(1) } else { SERVER_READY_LIMIT };
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            stop_group(&mut child, Signal::SIGKILL, Duration::from_secs(5));
            return Err(failure(
                block,
                0,
                &format!("(a server block) exited before it was ready: {status}"),
                &log,
                where_,
            ));
        }
        let waiting: Vec<u16> = block.ports.iter().copied().filter(|&p| !listening(p)).collect();
        if Instant::now() > deadline {
            if waiting.is_empty() {
                break;
            }
            stop_group(&mut child, Signal::SIGKILL, Duration::from_secs(5));
            return Err(failure(
                block,
                0,
                &format!(
                    "(a server block) does not listen on {waiting:?} after {} s",
                    SERVER_READY_LIMIT.as_secs()
                ),
                &log,
                where_,
            ));
        }
        if waiting.is_empty() && !block.ports.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    servers.push(Server { child, ports: block.ports.clone(), fence_line: block.fence_line });
    Ok(())
}

/// A block (or server) on a running server's ports replaces it, as a reader stops a cluster before
/// starting another on its ports (`concord up`, then `docker-compose up`): the server is stopped,
/// with the servers started after it, which may be its clients (a `redis-cli SUBSCRIBE`).
fn make_room(
    block: &Block,
    servers: &mut Vec<Server>,
    where_: &dyn Fn(&Block, usize) -> String,
) -> Result<(), String> {
    match servers.iter().position(|s| s.ports.iter().any(|p| block.ports.contains(p))) {
        Some(first) => stop_servers(servers.split_off(first), Path::new(&where_(block, 0))),
        None => Ok(()),
    }
}

/// A file may leave its ports taken from one block to the next (`docker-compose up -d` in one
/// block, `down` in a later one), but not past its end: every port its blocks declared must be
/// free once its servers are stopped, or the next file would find them taken.
fn ports_left_free(file: &Path, blocks: &[Block], run: Run) -> Result<(), String> {
    let declared: Vec<u16> = blocks.iter().filter(|b| runs(b, run)).flat_map(|b| b.ports.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(held) = declared.iter().find(|&&p| listening(p)) {
        if Instant::now() > deadline {
            return Err(format!(
                "{}: port {held} is still in use after the file's last block: a block started \
                 something on it (`docker-compose up -d`?) that no later block stopped",
                file.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Ctrl-C for server blocks' process groups, the last started first (a node `concord member
/// rebuild` runs may use a port of the `concord up` before it); then every port must be free.
fn stop_servers(mut servers: Vec<Server>, file: &Path) -> Result<(), String> {
    let mut failed = None;
    for server in &mut servers {
        // A server that was ready and then failed by itself (not by our Ctrl-C) is a failure too.
        if let Some(status) = server.child.try_wait().unwrap().filter(|status| !status.success()) {
            failed.get_or_insert(format!(
                "{}:{}: the server block ended by itself before the file's end: {status}",
                file.display(),
                server.fence_line
            ));
        }
    }
    for server in servers.iter_mut().rev() {
        stop_group(&mut server.child, Signal::SIGINT, SERVER_STOP_GRACE);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for server in &servers {
        loop {
            let held: Vec<u16> = server.ports.iter().copied().filter(|&p| listening(p)).collect();
            if held.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}:{}: the server block was stopped, but ports {held:?} are still held",
                    file.display(),
                    server.fence_line
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Signal a block's process group, wait up to `grace` for every member to exit, then SIGKILL it.
fn stop_group(leader: &mut Child, signal: Signal, grace: Duration) {
    let group = Pid::from_raw(leader.id() as i32);
    let _ = killpg(group, signal);
    let deadline = Instant::now() + grace;
    loop {
        let _ = leader.try_wait();
        if group_members(group) == 0 {
            break;
        }
        if Instant::now() > deadline {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = leader.wait();
            let deadline = Instant::now() + Duration::from_secs(5);
            while group_members(group) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = leader.wait();
}

/// The live (not zombie) processes of a process group: orphans reparented to a PID 1 that does
/// not reap them would otherwise look alive to `kill(-group, 0)` forever.
fn group_members(group: Pid) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return usize::from(killpg(group, None).is_ok());
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(") ") else { return false };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == group.as_raw().to_string()
        })
        .count()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(200))
        .is_ok()
}

#[test]
fn the_convention_is_parsed_and_enforced() {
    let text = "text\n```sh\nconcord sim a.toml\n```\n  ```sh server ports=6379-6380,8080\n  concord up\n  ```\n\
                ```toml\n[run]\n```\n```sh long\ncargo build\n```\n```bash needs=kubectl\nkubectl apply\n```\n";
    let blocks = shell_blocks(text).unwrap();
    assert_eq!(blocks.len(), 4);
    assert_eq!((blocks[0].fence_line, blocks[0].lines.clone()), (2, vec!["concord sim a.toml".to_string()]));
    assert!(blocks[1].server && blocks[1].ports == [6379, 6380, 8080] && blocks[1].lines == ["concord up"]);
    assert!(blocks[2].long && !blocks[2].server);
    assert_eq!(blocks[3].needs.as_deref(), Some("kubectl"));

    let errors =
        shell_blocks("```sh lng\nx\n```\n```sh\n127.0.0.1:6379> GET k\n$ concord up\n```\n").unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("line 1: unknown mark `lng`"), "{errors:?}");
    assert!(errors[1].starts_with("line 5: `127.0.0.1:6379> GET k` is a prompt"), "{errors:?}");
    assert!(shell_blocks("```sh ports=80-70\n```\n").is_err());
    // A command line with `>` in it is not a prompt.
    assert!(!looks_like_a_transcript("echo a > b.txt"));
    assert!(!looks_like_a_transcript("curl http://127.0.0.1:8080/x > out.json"));
}

#[test]
fn a_failing_command_is_reported_with_its_line_status_and_output() {
    let text = "# x\n\n```sh\necho before\necho oops >&2; false\necho never\n```\n\
                ```sh status=1\ngrep -q absent /dev/null\n```\n";
    let blocks = shell_blocks(text).unwrap();
    let report = run_file(Path::new(REPO), Path::new("x.md"), &blocks, Run::Default, &Mutex::new(()));
    let failure = report.failure.expect("`false` fails the block");
    assert!(
        failure.starts_with("x.md:5 (the block at line 3): `echo oops >&2; false` exited with status 1"),
        "{failure}"
    );
    assert!(failure.contains("before\noops") && !failure.contains("never"), "{failure}");

    // status=1 allows the 1 of a grep that finds nothing; the file stops at its first failure.
    let report = run_file(Path::new(REPO), Path::new("y.md"), &blocks[1..], Run::Default, &Mutex::new(()));
    assert!(report.failure.is_none() && report.ran == 1, "{:?}", report.failure);
}

/// A listener on `port` that accepts (and closes) connections for `seconds`, in Python (every test
/// machine has it). It accepts: the test's probes are connections, and a listener that never
/// accepts looks closed once its backlog is full.
fn listen_script(port: u16, seconds: u32) -> String {
    format!(
        "python3 -c \"import signal, socket; signal.alarm({seconds}); s = socket.socket(); \
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); \
         s.listen()\nwhile True: s.accept()[0].close()\""
    )
}

#[test]
fn a_block_on_a_servers_ports_stops_it_first_and_a_file_must_leave_its_ports_free() {
    // The ports are below Linux's ephemeral range (32768–60999): a port in it can be taken by
    // any outgoing connection of the tests running beside this one (the likely cause of one CI run's listener never coming up).
    // A block that starts something on a running server's port (compose after `concord up`):
    // the server is stopped first, as a reader would stop it (else the bind fails).
    let server = listen_script(29311, 600);
    let bind = "python3 -c \"import socket; s = socket.socket(); \
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 29311))\"";
    let text = format!("```sh server ports=29311\nexec {server}\n```\n```sh ports=29311\n{bind}\n```\n");
    let blocks = shell_blocks(&text).unwrap();
    let report = run_file(Path::new(REPO), Path::new("p.md"), &blocks, Run::Default, &Mutex::new(()));
    assert!(report.failure.is_none() && report.ran == 2, "{:?}", report.failure);

    // A block may leave its port taken for the blocks after it, not past the file's end. (The
    // detached listener outlives the block's process group, and ends a few seconds after the
    // check gives up.)
    let detached = listen_script(29312, 12);
    // Bounded: a listener that never comes up fails the assertion below, not the 120 s limit.
    let listens =
        "for _ in $(seq 300); do (: > /dev/tcp/127.0.0.1/29312) 2>/dev/null && break; sleep 0.1; done";
    let text = format!("```sh ports=29312\nsetsid {detached} </dev/null >/dev/null 2>&1 &\n{listens}\n```\n");
    let blocks = shell_blocks(&text).unwrap();
    let report = run_file(Path::new(REPO), Path::new("q.md"), &blocks, Run::Default, &Mutex::new(()));
    let failure = report.failure.expect("the file ended with its port taken");
    assert!(failure.starts_with("q.md: port 29312 is still in use after the file's last block"), "{failure}");
}

#[test]
fn a_cargo_block_runs_in_the_long_run_only_from_the_workspace_with_a_target_of_its_own() {
    let text = "```sh long cargo\ntest -f Cargo.toml && test -d crates/concord\n\
                case \"$CARGO_TARGET_DIR\" in */docs-cargo) ;; *) exit 3;; esac\n```\n";
    let blocks = shell_blocks(text).unwrap();
    assert!(blocks[0].cargo && blocks[0].long);
    let report = run_file(Path::new(REPO), Path::new("c.md"), &blocks, Run::Default, &Mutex::new(()));
    assert_eq!((report.ran, report.long_skipped), (0, 1));
    let report = run_file(Path::new(REPO), Path::new("c.md"), &blocks, Run::Long, &Mutex::new(()));
    assert!(report.failure.is_none() && report.ran == 1, "{:?}", report.failure);

    let errors = shell_blocks("```sh cargo\ncargo build\n```\n").unwrap_err();
    assert!(errors[0].contains("mark it `long` too"), "{errors:?}");
}

//! The driver: seeded mutation of a corpus, every input run under watch.
//!
//! ```text
//!  seeds + stored regressions ──> corpus ──pick──> mutate (1–8 edits) ──> run the target
//!                                   ^                                        │
//!                                   └──── kept if its outcome label is new ──┤
//!                                                                            └─ panic, hang or huge
//!                                                                               allocation: minimise,
//!                                                                               save, report
//! ```
//!
//! **Why this driver.** Only the stable toolchain is available, so libFuzzer (cargo-fuzz) and its
//! coverage instrumentation are out. Without coverage the next best guide is cheap: every target
//! returns an *outcome label* for each input (which error, how many requests…), and an input that
//! produced a label never seen before joins the corpus – a coarse stand-in for "reached new code".
//! The mutations are libFuzzer's classics (bit flips, interesting bytes and integers, inserted and
//! deleted ranges, splices of two inputs, dictionary tokens) plus one for text formats: a decimal
//! number replaced by an edge value (`-1`, `0`, `2^31`, `2^63-1`, …), which is what length
//! prefixes, counts and durations break on.
//!
//! **Deterministic.** All choices come from one ChaCha generator seeded with `seed`; the targets
//! are deterministic and so are their labels, so `--seed S --runs N` replays a run exactly.
//!
//! **What fails an input.** A panic (every property a target checks is an assertion), a run longer
//! than the hang limit (a watchdog thread sees it), or a single allocation above the target's budget
//! ([`crate::alloc`]). The input is minimised (chunks removed while the same failure remains) and
//! saved under `regressions/<target>/`, where the regression test replays it from then on.

use crate::alloc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// One fuzz target: a thin harness over a public entry point (see `crate::targets`).
pub struct Target {
    /// Also the directory name under `regressions/`.
    pub name: &'static str,
    /// One line: what is fuzzed and what is checked.
    pub about: &'static str,
    /// Valid (and interesting) inputs to start mutating from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens worth inserting (keywords, delimiters, field names).
    pub dictionary: &'static [&'static [u8]],
    /// Inputs are cut to this length.
    pub max_len: usize,
    /// The largest single allocation an input may cause.
    pub max_alloc_bytes: usize,
    /// Run one input; panic if a property fails. Returns the outcome label (see the module docs):
    /// it must depend on the input only, never on time or randomness.
    pub run: fn(&[u8]) -> String,
}

/// When a fuzzing run stops: whichever limit comes first.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub time: Option<Duration>,
    pub runs: Option<u64>,
}

impl Budget {
    pub fn seconds(s: f64) -> Budget {
        Budget { time: Some(Duration::from_secs_f64(s)), runs: None }
    }
}

/// Where a run stands, for progress displays.
#[derive(Clone, Debug)]
pub struct Progress {
    pub runs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    pub outcomes: usize,
}

/// A failing input.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Which run found it (1-based): `--seed S --runs N` finds it again.
    pub run: u64,
    pub message: String,
    /// Minimised.
    pub input: Vec<u8>,
    /// Where it was saved, if saving was asked for.
    pub saved: Option<PathBuf>,
}

/// What a fuzzing run did.
#[derive(Clone, Debug)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub runs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    /// How many inputs gave each outcome label.
    pub outcomes: BTreeMap<String, u64>,
    pub failure: Option<Failure>,
}

impl Report {
    /// The one-line summary `concord-fuzz` prints per target.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "fuzz {:<10} {:<6} {} runs in {:.1} s ({:.0}/s), {} distinct outcomes, corpus {}, seed {}",
            self.target,
            if self.failure.is_some() { "FAILED" } else { "ok" },
            self.runs,
            secs,
            self.runs as f64 / secs.max(1e-9),
            self.outcomes.len(),
            self.corpus,
            self.seed
        )
    }
}

/// Options of a fuzzing run.
pub struct Options {
    pub seed: u64,
    pub budget: Budget,
    /// A single input running longer than this is a hang.
    pub hang_limit: Duration,
    /// Save failing inputs under `regressions/<target>/`.
    pub save: bool,
}

/// The directory of stored regression inputs, `crates/concord-fuzz/regressions`.
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// The stored regression inputs of `target`, sorted by name.
pub fn regression_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(regressions_dir().join(target)) else { return Vec::new() };
    let mut found: Vec<(PathBuf, Vec<u8>)> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    found.sort();
    found
}

/// The command that replays one stored input.
pub fn replay_command(path: &Path) -> String {
    // Relative to the workspace root, where cargo commands run.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    let shown = root.and_then(|r| path.strip_prefix(r).ok()).unwrap_or(path).display().to_string();
    format!("cargo run -p concord-fuzz -- --replay {shown}")
}

thread_local! {
    /// Set while this thread runs an input: its panics are recorded, not printed.
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What each thread is running now, for the watchdog and the allocator's last words.
struct Running {
    target: &'static str,
    input: Vec<u8>,
    started: Instant,
    hang_limit: Duration,
    save: bool,
}

static RUNNING: Mutex<Option<HashMap<ThreadId, Running>>> = Mutex::new(None);

fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_RUN.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
        std::thread::Builder::new()
            .name("fuzz-watchdog".into())
            .spawn(watchdog)
            .expect("spawn the fuzz watchdog");
    });
}

/// Ends the process when an input has run past its hang limit, after saving it: a hung thread
/// cannot be stopped from outside.
fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let hung = {
            let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            running.as_ref().and_then(|r| {
                r.values()
                    .find(|r| r.started.elapsed() > r.hang_limit)
                    .map(|r| (r.target, r.input.clone(), r.hang_limit, r.save))
            })
        };
        if let Some((target, input, limit, save)) = hung {
            let message = format!("one input ran for more than {limit:?} (a hang)");
            report_fatal(target, &input, save, &message);
            std::process::exit(70);
        }
    }
}

/// Save and report every input being run now (the allocator calls this before aborting).
pub fn save_running_inputs(why: &str) {
    let Ok(running) = RUNNING.try_lock() else { return };
    if let Some(running) = running.as_ref() {
        for r in running.values() {
            report_fatal(r.target, &r.input, r.save, why);
        }
    }
}

fn report_fatal(target: &str, input: &[u8], save: bool, message: &str) {
    eprintln!("fuzz {target}: FAILED: {message}");
    if save {
        match save_input(target, input) {
            Ok(path) => eprintln!("  input saved to {}\n  replay: {}", path.display(), replay_command(&path)),
            Err(e) => eprintln!("  could not save the input: {e}"),
        }
    }
    eprintln!("  input ({} bytes): {}", input.len(), hex_excerpt(input));
}

/// `input` as hex (the first 4 KiB), so that a failure in a CI log can be rebuilt by hand.
pub fn hex_excerpt(input: &[u8]) -> String {
    let shown: String = input.iter().take(4096).map(|b| format!("{b:02x}")).collect();
    if input.len() > 4096 {
        format!("{shown}…")
    } else {
        shown
    }
}

/// Store a failing input as `regressions/<target>/crash-<hash>.bin`.
pub fn save_input(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = regressions_dir().join(target);
    std::fs::create_dir_all(&dir)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let path = dir.join(format!("crash-{:016x}.bin", hasher.finish()));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// Run one input under watch: `Ok(label)`, or the failure's message.
pub fn execute(target: &Target, input: &[u8], hang_limit: Duration, save: bool) -> Result<String, String> {
    install_hooks();
    let me = std::thread::current().id();
    let running =
        Running { target: target.name, input: input.to_vec(), started: Instant::now(), hang_limit, save };
    RUNNING.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(me, running);
    IN_RUN.with(|r| r.set(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    alloc::start();
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let largest = alloc::stop();
    IN_RUN.with(|r| r.set(false));
    if let Some(running) = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        running.remove(&me);
    }
    match outcome {
        Err(payload) => Err(LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into())
        })),
        Ok(_) if largest > target.max_alloc_bytes => Err(format!(
            "one allocation of {largest} bytes, above the target's budget of {} bytes, for a {}-byte input",
            target.max_alloc_bytes,
            input.len()
        )),
        Ok(label) => Ok(label),
    }
}

/// Fuzz `target` within `options.budget`, calling `progress` about four times a second.
pub fn fuzz(target: &Target, options: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut runs = 0u64;
    let mut last_progress = Instant::now();
    // The seeds and stored regressions first, unchanged; then mutations of the corpus.
    let mut queue: Vec<Vec<u8>> = (target.seeds)();
    queue.extend(regression_inputs(target.name).into_iter().map(|(_, bytes)| bytes));
    queue.reverse();
    // The seeds and regressions always run, however short the time budget (a target's first input
    // may be slow: the http target starts a node).
    let out_of_budget = |runs: u64, seeding: bool| {
        options.budget.runs.is_some_and(|max| runs >= max)
            || (!seeding && options.budget.time.is_some_and(|max| start.elapsed() >= max))
    };
    while !out_of_budget(runs, !queue.is_empty()) {
        let mut input = match queue.pop() {
            Some(input) => input,
            None if corpus.is_empty() => Vec::new(),
            None => {
                let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
                mutate(&mut rng, &mut input, &corpus, target.dictionary);
                input
            }
        };
        input.truncate(target.max_len);
        runs += 1;
        match execute(target, &input, options.hang_limit, options.save) {
            Ok(label) => {
                let count = outcomes.entry(label).or_insert(0);
                *count += 1;
                if *count == 1 && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(message) => {
                let (input, message) = minimise(target, input, message, options.hang_limit);
                let saved = if options.save { save_input(target.name, &input).ok() } else { None };
                let failure = Failure { run: runs, message, input, saved };
                return Report {
                    target: target.name,
                    seed: options.seed,
                    runs,
                    elapsed: start.elapsed(),
                    corpus: corpus.len(),
                    outcomes,
                    failure: Some(failure),
                };
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            progress(&Progress {
                runs,
                elapsed: start.elapsed(),
                corpus: corpus.len(),
                outcomes: outcomes.len(),
            });
        }
    }
    Report {
        target: target.name,
        seed: options.seed,
        runs,
        elapsed: start.elapsed(),
        corpus: corpus.len(),
        outcomes,
        failure: None,
    }
}

const MAX_CORPUS: usize = 2048;

/// The panic's location (`file:line:col`), to tell one failure from another while minimising.
fn location(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// Remove chunks of `input` (halves, quarters, … single bytes) while it still fails at the same
/// place; at most a few seconds' and a thousand runs' worth.
fn minimise(
    target: &Target,
    mut input: Vec<u8>,
    mut message: String,
    hang_limit: Duration,
) -> (Vec<u8>, String) {
    let start = Instant::now();
    let mut tries = 0;
    let mut chunk = input.len() / 2;
    while chunk >= 1 {
        let mut at = 0;
        while at < input.len() {
            if tries >= 1000 || start.elapsed() > Duration::from_secs(5) {
                return (input, message);
            }
            tries += 1;
            let mut candidate = input.clone();
            candidate.drain(at..(at + chunk).min(input.len()));
            match execute(target, &candidate, hang_limit, false) {
                Err(m) if location(&m) == location(&message) => {
                    input = candidate;
                    message = m;
                }
                _ => at += chunk,
            }
        }
        chunk /= 2;
    }
    (input, message)
}

const INTERESTING_BYTES: &[u8] =
    &[0, 1, 0x7f, 0x80, 0xff, b'\r', b'\n', b' ', b'"', b'\\', b'0', b'9', b'-', b'{', b'['];
const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    // Lengths a budget should refuse: 1 MiB, 16 MiB, 256 MiB, 1 GiB.
    1 << 20,
    1 << 24,
    1 << 28,
    1 << 30,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "-2",
    "255",
    "256",
    "65536",
    "2147483647",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999",
    "1e308",
    "1.5",
    "nan",
];

/// Apply 1–8 random edits to `data`.
fn mutate(rng: &mut ChaCha8Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[&[u8]]) {
    let edits = if rng.gen_bool(0.8) { rng.gen_range(1..=2) } else { rng.gen_range(3..=8) };
    for _ in 0..edits {
        let len = data.len();
        let at = |rng: &mut ChaCha8Rng| if len == 0 { 0 } else { rng.gen_range(0..len) };
        let span = |rng: &mut ChaCha8Rng, from: usize| {
            let left = len - from;
            if left == 0 {
                0
            } else if rng.gen_bool(0.8) {
                rng.gen_range(1..=left.min(16))
            } else {
                rng.gen_range(1..=left)
            }
        };
        match rng.gen_range(0..13) {
            0 if len > 0 => {
                let i = at(rng);
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = at(rng);
                data[i] = rng.gen();
            }
            2 if len > 0 => {
                let i = at(rng);
                data[i] = INTERESTING_BYTES[rng.gen_range(0..INTERESTING_BYTES.len())];
            }
            3 => {
                let i = if len == 0 { 0 } else { rng.gen_range(0..=len) };
                let n = rng.gen_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                data.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = at(rng);
                let n = span(rng, i);
                data.drain(i..i + n);
            }
            5 if len > 0 => {
                let i = at(rng);
                let n = span(rng, i);
                let chunk = data[i..i + n].to_vec();
                let j = rng.gen_range(0..=len);
                data.splice(j..j, chunk);
            }
            6 | 7 if !dictionary.is_empty() => {
                let token = dictionary[rng.gen_range(0..dictionary.len())];
                let i = if len == 0 { 0 } else { rng.gen_range(0..=len) };
                if rng.gen_bool(0.5) || i + token.len() > len {
                    data.splice(i..i, token.iter().copied());
                } else {
                    data[i..i + token.len()].copy_from_slice(token);
                }
            }
            8 if !corpus.is_empty() => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                if !other.is_empty() {
                    let from = rng.gen_range(0..other.len());
                    let n = rng.gen_range(1..=(other.len() - from));
                    let i = if len == 0 { 0 } else { rng.gen_range(0..=len) };
                    let chunk = other[from..from + n].to_vec();
                    if rng.gen_bool(0.5) {
                        data.splice(i..i, chunk);
                    } else {
                        data.truncate(i);
                        data.extend_from_slice(&chunk);
                    }
                }
            }
            9 => replace_number(rng, data),
            10 if len > 0 => data.truncate(at(rng)),
            11 if len > 0 => {
                let width = [1usize, 2, 4, 8][rng.gen_range(0..4)];
                let i = at(rng);
                let mut value = INTERESTING_INTS[rng.gen_range(0..INTERESTING_INTS.len())];
                if rng.gen_bool(0.3) {
                    value = value.wrapping_add(rng.gen_range(0..3)).wrapping_sub(1);
                }
                // The low `width` bytes, little- or big-endian.
                let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
                let bytes = if rng.gen_bool(0.5) { &le[..width] } else { &be[8 - width..] };
                let end = (i + width).min(len);
                data[i..end].copy_from_slice(&bytes[..end - i]);
            }
            _ => {
                // Arithmetic on one byte: off-by-one lengths and counts.
                if len > 0 {
                    let i = at(rng);
                    data[i] = data[i].wrapping_add(rng.gen_range(1..=4)).wrapping_sub(2);
                }
            }
        }
    }
}

/// Replace one run of ASCII digits (with its sign) by an edge value.
fn replace_number(rng: &mut ChaCha8Rng, data: &mut Vec<u8>) {
    let digits: Vec<usize> = (0..data.len()).filter(|&i| data[i].is_ascii_digit()).collect();
    let number = INTERESTING_NUMBERS[rng.gen_range(0..INTERESTING_NUMBERS.len())].as_bytes();
    let Some(&some) = (!digits.is_empty()).then(|| &digits[rng.gen_range(0..digits.len())]) else {
        let i = if data.is_empty() { 0 } else { rng.gen_range(0..=data.len()) };
        data.splice(i..i, number.iter().copied());
        return;
    };
    let mut start = some;
    while start > 0 && (data[start - 1].is_ascii_digit() || data[start - 1] == b'-') {
        start -= 1;
    }
    let mut end = some;
    while end < data.len() && data[end].is_ascii_digit() {
        end += 1;
    }
    data.splice(start..end, number.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_of_first_byte(input: &[u8]) -> String {
        format!("{:?}", input.first())
    }

    fn panics_on_magic(input: &[u8]) -> String {
        // A two-byte condition that random bytes rarely meet but a corpus walk finds.
        if input.windows(2).any(|w| w == b"!!") {
            panic!("found the magic");
        }
        label_of_first_byte(input)
    }

    const MAGIC: Target = Target {
        name: "driver-selftest",
        about: "",
        seeds: || vec![b"hello".to_vec()],
        dictionary: &[b"!"],
        max_len: 64,
        max_alloc_bytes: 1 << 20,
        run: panics_on_magic,
    };

    #[test]
    fn the_driver_finds_a_planted_bug_and_minimises_it() {
        let options = Options {
            seed: 7,
            budget: Budget::seconds(10.0),
            hang_limit: Duration::from_secs(10),
            save: false,
        };
        let report = fuzz(&MAGIC, &options, &mut |_| {});
        let failure = report.failure.expect("the planted bug is found");
        assert!(failure.message.contains("found the magic"), "{}", failure.message);
        assert_eq!(failure.input, b"!!", "minimised to the two bytes that matter");
        // The same seed finds it at the same run.
        let again = fuzz(&MAGIC, &options, &mut |_| {});
        assert_eq!(again.failure.unwrap().run, failure.run);
    }

    #[test]
    fn an_allocation_above_the_budget_fails_the_input() {
        let hungry = Target {
            run: |input| {
                let v = vec![0u8; input.len() << 20];
                v.len().to_string()
            },
            ..MAGIC
        };
        assert!(execute(&hungry, b"", Duration::from_secs(10), false).is_ok());
        let err = execute(&hungry, b"xx", Duration::from_secs(10), false).unwrap_err();
        assert!(err.contains("one allocation of 2097152 bytes"), "{err}");
    }

    #[test]
    fn mutations_stay_within_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let corpus = vec![b"*1\r\n$4\r\nPING\r\n".to_vec(), Vec::new()];
        for i in 0..20_000 {
            let mut data = corpus[i % 2].clone();
            mutate(&mut rng, &mut data, &corpus, &[b"\r\n", b"$"]);
        }
    }
}

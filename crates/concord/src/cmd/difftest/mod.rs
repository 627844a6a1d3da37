//! `concord difftest`: differential tests of Concord's Redis front door against redis-server.
//!
//! A seeded generator draws random sequences of commands from a table (`table.rs`: one row per
//! command, arguments from a deliberately tiny key and value space so that commands collide on
//! keys and types). Every command goes to a redis-server and to a Concord node over raw RESP
//! (`resp.rs`: the exact bytes of each reply are kept), and the two replies must be equal byte
//! for byte, or equal under the few rules `compare.rs` documents (no order in a set, clock skew in
//! a TTL, random replies by shape). Each seed runs once in RESP2 and once in RESP3 (after
//! `HELLO 3`).
//!
//! By default the harness starts both servers itself: a redis-server with no persistence, and
//! this very binary's `concord serve` as a single-node Raft group – the real server a user runs,
//! not an in-process stand-in – each on free loopback ports, each killed when the run ends or
//! fails. `--redis ADDR` / `--concord ADDR` compare servers that already run instead.
//!
//! Which commands are drawn depends on the Concord under test: at start the harness asks it
//! `COMMAND INFO` for every row and skips (and lists) the commands it does not know, so rows for
//! commands still being written cost nothing and start counting the day they land.
//!
//! A mismatch prints the seed, the protocol, the step, the command, both replies, the sequence
//! so far, and the one command that replays it: the sequence of a seed depends only on the seed
//! (and on the set of commands compared), so `concord difftest --seed S --ops N --resp P` sends
//! exactly the same commands again.
//!
//! The default test suite runs a few short seeds (`crates/concord/tests/difftest.rs`); longer
//! runs are this command, e.g. `concord difftest --seeds 1..200 --ops 5000`.

mod compare;
mod resp;
mod servers;
mod table;

use clap::{Args, ValueEnum};
use compare::{agree, known, Rule};
use resp::{encode_value, show, show_argv, Client, Reply, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use table::{Gen, Op, Plan, Row, KEYS};

#[derive(Args, Debug)]
pub struct DifftestArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run seeds A..B (both included), e.g. 1..100 (default: 1..3).
    #[arg(long, value_parser = concord_sim::sweep::parse_seed_range)]
    pub seeds: Option<std::ops::RangeInclusive<u64>>,
    /// Steps per seed and protocol (a step is one command, or a MULTI … EXEC transaction).
    #[arg(long, default_value_t = 300)]
    pub ops: usize,
    /// The protocol of each run: 2, 3, or both (each seed once per protocol).
    #[arg(long, value_enum, default_value_t = Protocols::Both)]
    pub resp: Protocols,
    /// After a mismatch, delete the test's keys on both servers and go on (instead of ending the
    /// seed there); the end prints each distinct difference once, with how often it was seen.
    #[arg(long)]
    pub keep_going: bool,
    /// Only these commands (comma-separated, e.g. `--only incrbyfloat,get`); the others are not
    /// drawn. Transactions are drawn if `multi` is listed.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Never draw these commands (comma-separated, e.g. `--skip multi,keys`).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Compare against a redis-server already running at this address (its data is deleted).
    #[arg(long)]
    pub redis: Option<SocketAddr>,
    /// The redis-server program to start (when `--redis` is not given).
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Compare a Concord node already running at this address (its data is deleted) instead of
    /// starting `concord serve`.
    #[arg(long)]
    pub concord: Option<SocketAddr>,
    /// Print every command with both replies.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocols {
    #[value(name = "2")]
    Two,
    #[value(name = "3")]
    Three,
    Both,
}

/// How long one reply may take (the slowest command blocks for 10 ms).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// A cursor iteration that has not returned to 0 after this many calls is a failure.
const MAX_SCAN_CALLS: usize = 10_000;
/// The sequence printed with a mismatch ends with at most this many commands.
const SHOWN_HISTORY: usize = 60;

pub fn run(args: &DifftestArgs) -> anyhow::Result<ExitCode> {
    let scratch = servers::Scratch::new()?;
    let redis = match args.redis {
        Some(addr) => servers::external("redis-server", addr),
        None => servers::start_redis(&args.redis_server, &scratch.0)?,
    };
    let concord = match args.concord {
        Some(addr) => servers::external("concord", addr),
        None => servers::start_concord(&std::env::current_exe()?, &scratch.0)?,
    };
    let rows = table::rows();
    let (used, skipped) = supported(&rows, args, redis.addr, concord.addr)?;
    println!("redis-server at {}, concord at {}", redis.addr, concord.addr);
    println!(
        "comparing {} commands: {}",
        used.len(),
        used.iter().map(|r| r.name).collect::<Vec<_>>().join(" ")
    );
    if !skipped.is_empty() {
        println!("skipped (not known to the server under test): {}", skipped.join(" "));
    }
    let plan = Plan::new(used);
    let seeds = match (args.seed, &args.seeds) {
        (Some(seed), _) => seed..=seed,
        (None, Some(range)) => range.clone(),
        (None, None) => 1..=3,
    };
    let protocols: &[u8] = match args.resp {
        Protocols::Two => &[2],
        Protocols::Three => &[3],
        Protocols::Both => &[2, 3],
    };
    let mut tally = Tally::default();
    let started = Instant::now();
    for seed in seeds {
        for &protocol in protocols {
            let pass = Pass { args, plan: &plan, seed, protocol, redis: redis.addr, concord: concord.addr };
            let t = Instant::now();
            let outcome = pass.run(&mut tally)?;
            println!(
                "seed {seed} RESP{protocol}: {} steps, {} commands, {} mismatches ({:.1} s)",
                outcome.steps,
                outcome.commands,
                outcome.mismatches,
                t.elapsed().as_secs_f64()
            );
        }
    }
    println!("{} commands compared in {:.1} s", tally.commands, started.elapsed().as_secs_f64());
    for (why, n) in &tally.known {
        println!("documented difference seen {n} times: {why}");
    }
    if tally.distinct.is_empty() {
        println!("no differences");
        return Ok(ExitCode::SUCCESS);
    }
    println!("\n{} distinct differences:", tally.distinct.len());
    for (class, (n, example)) in &tally.distinct {
        println!("  {n:>5} × {class}\n          e.g. {example}");
    }
    Ok(ExitCode::FAILURE)
}

/// The rows both servers know (and `--only` names), and the names of those the server under test
/// does not know.
fn supported<'a>(
    rows: &'a [Row],
    args: &DifftestArgs,
    redis: SocketAddr,
    concord: SocketAddr,
) -> anyhow::Result<(Vec<&'a Row>, Vec<&'static str>)> {
    let known = |addr: SocketAddr| -> anyhow::Result<Vec<bool>> {
        let mut client = Client::connect(addr, REPLY_TIMEOUT)?;
        let mut argv = vec![b"COMMAND".to_vec(), b"INFO".to_vec()];
        argv.extend(rows.iter().map(|r| r.name.as_bytes().to_vec()));
        let reply = client.call(&argv)?;
        let Some(infos) = reply.value.elements() else {
            anyhow::bail!("COMMAND INFO at {addr} answered {}", show(&reply.raw))
        };
        anyhow::ensure!(
            infos.len() == rows.len(),
            "COMMAND INFO at {addr}: {} answers for {}",
            infos.len(),
            rows.len()
        );
        Ok(infos.iter().map(|i| matches!(i, Value::Array(Some(_)))).collect())
    };
    let (in_redis, in_concord) = (known(redis)?, known(concord)?);
    let mut used = Vec::new();
    let mut skipped = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let named = |list: &[String]| list.iter().any(|o| o.eq_ignore_ascii_case(row.name));
        if (!args.only.is_empty() && !named(&args.only)) || named(&args.skip) {
            continue;
        }
        if !in_redis[i] {
            println!("redis-server does not know {}: not compared", row.name);
        } else if in_concord[i] {
            used.push(row);
        } else {
            skipped.push(row.name);
        }
    }
    anyhow::ensure!(!used.is_empty(), "no command to compare (--only, --skip)");
    Ok((used, skipped))
}

/// What all passes found.
#[derive(Default)]
struct Tally {
    commands: u64,
    /// Documented differences seen: why → how often.
    known: BTreeMap<&'static str, u64>,
    /// Undocumented differences by class (command and the two replies' kinds): how often, and
    /// the replay command of the first.
    distinct: BTreeMap<String, (u64, String)>,
}

struct Outcome {
    steps: usize,
    commands: u64,
    mismatches: u64,
}

/// One seed in one protocol.
struct Pass<'a> {
    args: &'a DifftestArgs,
    plan: &'a Plan<'a>,
    seed: u64,
    protocol: u8,
    redis: SocketAddr,
    concord: SocketAddr,
}

impl Pass<'_> {
    fn run(&self, tally: &mut Tally) -> anyhow::Result<Outcome> {
        let mut redis = Client::connect(self.redis, REPLY_TIMEOUT)?;
        let mut concord = Client::connect(self.concord, REPLY_TIMEOUT)?;
        if self.protocol == 3 {
            // HELLO's reply names the server, its version and the connection id: not compared.
            for (name, client) in [("redis-server", &mut redis), ("concord", &mut concord)] {
                let reply = client.call(&[b"HELLO".to_vec(), b"3".to_vec()])?;
                anyhow::ensure!(
                    !matches!(reply.value, Value::Error(_)),
                    "HELLO 3 to {name}: {}",
                    show(&reply.raw)
                );
            }
        }
        reset(&mut redis, &mut concord)?;
        let mut g = Gen::new(self.seed);
        let mut history: Vec<String> = Vec::new();
        let mut outcome = Outcome { steps: 0, commands: 0, mismatches: 0 };
        let mut resynced = false;
        for step in 0..self.args.ops {
            outcome.steps = step + 1;
            let ops = self.plan.step(&mut g);
            let mut failed = false;
            // Which of a transaction's commands were queued (answered `+QUEUED`): a command
            // refused at once (`WATCH` inside `MULTI`) is not, and EXEC has no reply for it.
            let mut queued = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let (r, c) = exchange_both(&mut redis, &mut concord, op)?;
                if i > 0 && i + 1 < ops.len() {
                    queued.push((r.raw.as_slice() == b"+QUEUED\r\n").then_some(op));
                }
                let op = &queued_only(op, &queued);
                outcome.commands += 1;
                tally.commands += 1;
                history.push(show_argv(&shortened(&op.argv)));
                if self.args.verbose {
                    println!(
                        "{:>6} {}\n         redis:   {}\n         concord: {}",
                        step,
                        show_argv(&op.argv),
                        show(&r.raw),
                        show(&c.raw)
                    );
                }
                if failed {
                    continue; // the rest of a broken transaction is sent, not judged
                }
                if r.raw != c.raw && !agree(&op.rule, &r.value, &c.value) {
                    let names: Vec<&[u8]> = queued.iter().flatten().map(|o| o.argv[0].as_slice()).collect();
                    if let Some(whys) = explained(op, &names, &r, &c) {
                        for why in whys {
                            *tally.known.entry(why).or_default() += 1;
                        }
                    } else {
                        failed = true;
                        outcome.mismatches += 1;
                        self.report(tally, step, op, &r, &c, &history, resynced);
                    }
                }
                if op.resync && !failed {
                    resync(&mut redis, &mut concord, &op.argv)?;
                }
            }
            if failed {
                if !self.args.keep_going {
                    break;
                }
                reset(&mut redis, &mut concord)?;
                resynced = true;
            }
        }
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        tally: &mut Tally,
        step: usize,
        op: &Op,
        r: &Reply,
        c: &Reply,
        history: &[String],
        resynced: bool,
    ) {
        let mut replay =
            format!("concord difftest --seed {} --ops {} --resp {}", self.seed, step + 1, self.protocol);
        if !self.args.only.is_empty() {
            replay.push_str(&format!(" --only {}", self.args.only.join(",")));
        }
        if !self.args.skip.is_empty() {
            replay.push_str(&format!(" --skip {}", self.args.skip.join(",")));
        }
        if resynced {
            // Earlier mismatches reset the keys; without --keep-going the run would stop there.
            replay.push_str(" --keep-going");
        }
        let name = String::from_utf8_lossy(&op.argv[0]).to_ascii_lowercase();
        let class = format!("{name}: redis {} / concord {}", class_of(&r.value), class_of(&c.value));
        let first_of_class = !tally.distinct.contains_key(&class);
        let entry = tally.distinct.entry(class).or_insert((0, replay.clone()));
        entry.0 += 1;
        if self.args.keep_going && !first_of_class {
            return; // each class is shown in full once
        }
        let skip = history.len().saturating_sub(SHOWN_HISTORY);
        let mut text = format!(
            "\nMISMATCH seed {} RESP{} step {} (command {} of the run)\n  command: {}\n  rule:    {:?}\n  redis:   {}\n  concord: {}\n  sequence so far",
            self.seed,
            self.protocol,
            step,
            history.len(),
            show_argv(&op.argv),
            op.rule,
            show(&r.raw),
            show(&c.raw),
        );
        if skip > 0 {
            text.push_str(&format!(" (the last {SHOWN_HISTORY}; {skip} before them):\n"));
        } else {
            text.push_str(":\n");
        }
        for (i, line) in history.iter().enumerate().skip(skip) {
            text.push_str(&format!("    {:>6}  {line}\n", i + 1));
        }
        text.push_str(&format!("  replay:  {replay}\n"));
        println!("{text}");
    }
}

/// `op` as judged: an `EXEC`'s rules only for the commands that were queued (`queued` has the
/// transaction's commands, `None` for one refused at once).
fn queued_only(op: &Op, queued: &[Option<&Op>]) -> Op {
    let Rule::Exec(rules) = &op.rule else { return op.clone() };
    let rules = rules.iter().zip(queued).filter(|(_, q)| q.is_some()).map(|(r, _)| r.clone()).collect();
    Op { rule: Rule::Exec(rules), ..op.clone() }
}

/// The documented differences ([`known`]) that explain why `r` and `c` disagree, if they do: the
/// reply's own, or – for `EXEC` – each queued command's reply that differs, judged by its own
/// rule or by a documented difference of that command (`queued` names them).
fn explained(op: &Op, queued: &[&[u8]], r: &Reply, c: &Reply) -> Option<Vec<&'static str>> {
    if let Some(k) = known(&op.argv[0], &r.raw, &c.raw) {
        return Some(vec![k.why]);
    }
    let Rule::Exec(rules) = &op.rule else { return None };
    let (Some(a), Some(b)) = (r.value.elements(), c.value.elements()) else { return None };
    if r.value.kind() != c.value.kind()
        || a.len() != b.len()
        || a.len() != rules.len()
        || a.len() != queued.len()
    {
        return None;
    }
    let mut whys = Vec::new();
    for (((a, b), rule), name) in a.iter().zip(b).zip(rules).zip(queued) {
        if a == b || agree(rule, a, b) {
            continue;
        }
        whys.push(known(name, &encode_value(a), &encode_value(b))?.why);
    }
    Some(whys)
}

/// Long arguments cut for the sequence shown with a mismatch (the replay command has them whole).
fn shortened(argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    argv.iter()
        .map(|a| {
            if a.len() > 40 {
                format!("{}...({} bytes)", show(&a[..20]), a.len()).into_bytes()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// A reply's class for grouping differences: its type, and an error's code.
fn class_of(value: &Value) -> String {
    match value {
        Value::Error(text) => {
            let text = String::from_utf8_lossy(text);
            format!("-{}", text.chars().take(60).collect::<String>())
        }
        other => (other.kind() as char).to_string(),
    }
}

/// Send `op` to both servers and read their replies. A plain command is written to both before
/// either reply is read, so the two servers work – and a blocking pop waits out its timeout – at
/// the same time; the iterations and `RANDOMKEY`'s follow-up run one server after the other.
fn exchange_both(redis: &mut Client, concord: &mut Client, op: &Op) -> anyhow::Result<(Reply, Reply)> {
    if op.rule == Rule::ExistingKey || matches!(op.rule, Rule::ScanAll { .. }) {
        return Ok((exchange(redis, op)?, exchange(concord, op)?));
    }
    redis.send(&op.argv)?;
    concord.send(&op.argv)?;
    Ok((redis.read_reply()?, concord.read_reply()?))
}

/// Send `op` to one server and read its reply; a cursor iteration (SCAN …) is run to its end and
/// its results returned as one sorted, de-duplicated array.
fn exchange(client: &mut Client, op: &Op) -> anyhow::Result<Reply> {
    if op.rule == Rule::ExistingKey {
        return existing_key(client, op);
    }
    let Rule::ScanAll { cursor_at, pairs } = op.rule else { return client.call(&op.argv) };
    let mut argv = op.argv.clone();
    let mut found: Vec<Vec<Value>> = Vec::new();
    for _ in 0..MAX_SCAN_CALLS {
        let reply = client.call(&argv)?;
        let parts = match reply.value.elements() {
            Some([cursor, Value::Array(Some(items))]) if cursor.bytes().is_some() => {
                (cursor.bytes().unwrap().to_vec(), items.clone())
            }
            _ => return Ok(reply), // an error, or not a SCAN reply: compared as it is
        };
        let group = if pairs { 2 } else { 1 };
        found.extend(parts.1.chunks(group).map(|c| c.to_vec()));
        if parts.0 == b"0" {
            found.sort_by_key(|g| format!("{g:?}"));
            found.dedup();
            let value = Value::Array(Some(found.into_iter().flatten().collect()));
            return Ok(Reply { raw: encode_value(&value), value });
        }
        argv[cursor_at] = parts.0;
    }
    anyhow::bail!("{} did not return to cursor 0 within {MAX_SCAN_CALLS} calls", show_argv(&op.argv))
}

/// `RANDOMKEY`: the reply, made an error if the key it names does not exist on the same server
/// (asked at once with `EXISTS`; nothing else runs on the connection in between).
fn existing_key(client: &mut Client, op: &Op) -> anyhow::Result<Reply> {
    let reply = client.call(&op.argv)?;
    let Value::Bulk(Some(key)) = &reply.value else { return Ok(reply) };
    let exists = client.call(&[b"EXISTS".to_vec(), key.clone()])?;
    if exists.raw.as_slice() == b":1\r\n" {
        return Ok(reply);
    }
    let value =
        Value::Error(format!("the answer {} is not a key that exists", show(&reply.raw)).into_bytes());
    Ok(Reply { raw: encode_value(&value), value })
}

/// Delete every key of the test's key space on both servers.
fn reset(redis: &mut Client, concord: &mut Client) -> anyhow::Result<()> {
    let mut argv = vec![b"DEL".to_vec()];
    argv.extend(KEYS.iter().map(|k| k.as_bytes().to_vec()));
    for (name, client) in [("redis-server", redis), ("concord", concord)] {
        let reply = client.call(&argv)?;
        anyhow::ensure!(reply.raw.starts_with(b":"), "resetting the keys on {name}: {}", show(&reply.raw));
    }
    Ok(())
}

/// After a command with a random effect, delete the keys it names on both servers.
fn resync(redis: &mut Client, concord: &mut Client, argv: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut del = vec![b"DEL".to_vec()];
    del.extend(argv.iter().filter(|a| KEYS.iter().any(|k| k.as_bytes() == a.as_slice())).cloned());
    if del.len() > 1 {
        redis.call(&del)?;
        concord.call(&del)?;
    }
    Ok(())
}

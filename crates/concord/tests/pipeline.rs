//! Pipelining keeps Redis's semantics (issue #14): what a client that writes many commands in one
//! `write` and then reads the replies must see, against real `concord serve` processes started as
//! `concord up` starts them ([`LocalCluster`]).
//!
//! The tests speak raw RESP over TCP: each pipeline is encoded whole and handed to the socket in
//! **one** `write_all`, while the replies are read concurrently (a client that only reads after
//! writing everything would deadlock against the server's back-pressure once both socket buffers
//! fill). Every pipeline ends with an `ECHO` of a unique marker, and its reply must come exactly
//! where the marker was sent: a missing reply shifts it earlier, an extra one later, either fails.
//! (Only a pipeline that leaves a `MULTI` open goes without: there the `ECHO` would be queued.)
//!
//! 1. **Pipelined MULTI/EXEC** – one pipeline mixing plain commands, transactions, a runtime error
//!    inside `EXEC`, a doomed transaction (`EXECABORT`), `DISCARD`, and `WATCH` invalidated by the
//!    same connection; then `WATCH` invalidated by another connection between two pipelines. Exact
//!    replies (error replies by their code and first words), on one node and on three nodes
//!    through the leader and through a follower. When `redis-server` is installed the same
//!    script runs against it too, proving the expectations are Redis's.
//! 2. **Mixed pipelines keep their order** – thousands of SET/INCR/GET/MGET/APPEND/DEL/LPUSH/LRANGE
//!    on a few keys, in a few big writes; the replies must equal a sequential model's (computed
//!    here), and – when installed – redis-server's.
//! 3. **A pipeline cut by a leader change answers every command exactly once** – two clients
//!    pipeline thousands of `INCR` and `RPUSH` (unique elements), one through a follower, one
//!    through the leader, which is killed with SIGKILL mid-pipeline. The follower's client gets
//!    exactly one reply per command; the leader's may lose its connection (the rest count as
//!    unknown). The counter ends between the acknowledged increments and those plus the failed
//!    and unknown ones; no element is in the list twice, and every acknowledged one is there.
//! 4. **Pipelined load under kill -9 is linearizable** – clients pipeline 16 SET/GET/INCR at a
//!    time on a few keys while the leader is killed and restarted; the history (each pipelined
//!    op invoked when its pipeline was written, completed when its reply was read; a write
//!    refused with `TRYAGAIN`/`READONLY` failed, any other error or a cut connection leaves it
//!    unknown) is checked with `concord_check`'s linearizability checker (registers: the
//!    key-value model; counters: the counter model).
//! 5. **The eventual mode** keeps a mixed pipeline's order too (SET/GET/INCR/MGET/DEL, through
//!    two nodes at once), less one known difference of that mode (see [`mixed_commands`]).
//!
//! When `redis-server` is missing its comparisons are skipped with a printed reason (under `CI`,
//! whose `.ci/run` installs it, they fail instead); the model comparisons always run. The whole
//! file takes about 10 s (two tests at a time, on two cores).

use concord_check::{linearizability, Model};
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::Time;
use concord_server::Mode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

mod local_cluster;
use local_cluster::LocalCluster;

// ---------------------------------------------------------------------------------------------
// A small RESP2 client that pipelines.
// ---------------------------------------------------------------------------------------------

/// A RESP2 reply, exactly: a null bulk string and a null array (an aborted `EXEC`) differ.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Reply>>),
}

use Reply::{Array, Bulk, Int, Status};

fn ok() -> Reply {
    Status("OK".into())
}

fn queued() -> Reply {
    Status("QUEUED".into())
}

fn bulk(s: &str) -> Reply {
    Bulk(Some(s.into()))
}

fn nil() -> Reply {
    Bulk(None)
}

fn array(items: Vec<Reply>) -> Reply {
    Array(Some(items))
}

/// An expected error: matched by prefix (the code and the first words), since the rest of a
/// message may name a key or a command.
fn error(prefix: &str) -> Reply {
    Reply::Error(prefix.into())
}

/// Whether `got` is what `want` describes (errors by prefix, arrays item by item).
fn matches(want: &Reply, got: &Reply) -> bool {
    match (want, got) {
        (Reply::Error(prefix), Reply::Error(message)) => message.starts_with(prefix.as_str()),
        (Array(Some(w)), Array(Some(g))) => w.len() == g.len() && w.iter().zip(g).all(|(w, g)| matches(w, g)),
        _ => want == got,
    }
}

/// Words to a command.
fn cmd(words: &str) -> Vec<String> {
    words.split(' ').map(String::from).collect()
}

/// Commands as one RESP buffer (arrays of bulk strings).
fn encode(commands: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in commands {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// One connection, split so that a pipeline's write and the reading of its replies overlap.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// How long any one pipeline may take. Generous: the tests run debug builds on two shared cores,
/// and a node's own request timeout (5 s) answers anything stuck well before this.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(60);

static MARKERS: AtomicU64 = AtomicU64::new(0);

impl Conn {
    async fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Conn { reader: BufReader::with_capacity(64 * 1024, r), writer: w })
    }

    /// Connect, retrying for up to 30 s (a node just started may not listen yet).
    async fn connect_retrying(port: u16) -> Conn {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Conn::connect(port).await {
                Ok(c) => return c,
                Err(e) => assert!(Instant::now() < deadline, "connect to {port}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Write `batches` – each in one `write_all`, back to back: a batch does not wait for the
    /// previous one's replies – and read their replies as they come, handing each to
    /// `each(index, reply)`. An `ECHO` of a unique marker follows the last command: its reply must
    /// be the one after the last command's (else a reply was missing or extra, and this fails). On
    /// a connection error or a timeout, returns the error after the replies read so far.
    ///
    /// Without `end_marker` (for a pipeline that leaves a `MULTI` open, where the `ECHO` would be
    /// queued), exactly the commands' replies are read.
    async fn exchange_batches(
        &mut self,
        batches: &[&[Vec<String>]],
        end_marker: bool,
        mut each: impl FnMut(usize, Reply),
    ) -> Result<(), String> {
        let marker = format!("end-of-pipeline-{}", MARKERS.fetch_add(1, Ordering::Relaxed));
        let mut buffers: Vec<Vec<u8>> = batches.iter().map(|b| encode(b)).collect();
        if buffers.is_empty() {
            buffers.push(Vec::new());
        }
        if end_marker {
            buffers.last_mut().unwrap().extend_from_slice(&encode(&[vec!["ECHO".into(), marker.clone()]]));
        }
        let n: usize = batches.iter().map(|b| b.len()).sum();
        let Conn { reader, writer } = self;
        let read = async {
            for i in 0..n {
                let reply = read_reply(reader).await?;
                if reply == bulk(&marker) {
                    return Err(format!(
                        "the end marker came as the reply to command {i} of {n}: replies missing"
                    ));
                }
                each(i, reply);
            }
            if !end_marker {
                return Ok(());
            }
            match read_reply(reader).await? {
                r if r == bulk(&marker) => Ok(()),
                r => Err(format!("after {n} replies came {r:?}, not the end marker: a reply too many")),
            }
        };
        let write = async {
            for b in &buffers {
                writer.write_all(b).await.map_err(|e| format!("write: {e}"))?;
            }
            Ok::<(), String>(())
        };
        // The first error ends both: a write blocked on a server that no longer reads must not
        // hide the read's error until the timeout.
        let both = async { tokio::try_join!(write, read).map(|_| ()) };
        tokio::time::timeout(PIPELINE_TIMEOUT, both)
            .await
            .unwrap_or_else(|_| Err(format!("no complete answer within {PIPELINE_TIMEOUT:?}")))
    }

    /// One pipeline in one write: [`Conn::exchange_batches`] of one batch.
    async fn exchange(
        &mut self,
        commands: &[Vec<String>],
        each: impl FnMut(usize, Reply),
    ) -> Result<(), String> {
        self.exchange_batches(&[commands], true, each).await
    }

    /// [`Conn::exchange`], collecting the replies; panics on any error.
    async fn pipeline(&mut self, commands: &[Vec<String>]) -> Vec<Reply> {
        self.pipeline_checked(commands, true).await
    }

    /// A pipeline that leaves a `MULTI` open: no end marker (it would be queued).
    async fn pipeline_into_multi(&mut self, commands: &[Vec<String>]) -> Vec<Reply> {
        self.pipeline_checked(commands, false).await
    }

    async fn pipeline_checked(&mut self, commands: &[Vec<String>], end_marker: bool) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(commands.len());
        if let Err(e) = self.exchange_batches(&[commands], end_marker, |_, r| replies.push(r)).await {
            panic!("pipeline of {} commands: {e}; replies so far: {:?}", commands.len(), tail(&replies));
        }
        replies
    }
}

/// Read one reply.
fn read_reply(
    reader: &mut BufReader<OwnedReadHalf>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + '_>> {
    Box::pin(async move {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if !line.ends_with(b"\r\n") {
            return Err(format!("a reply line cut short: {:?}", String::from_utf8_lossy(&line)));
        }
        let line = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || rest.parse::<i64>().map_err(|_| format!("bad number in {line:?}"));
        Ok(match kind {
            "+" => Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Int(number()?),
            "$" => match number()? {
                -1 => Bulk(None),
                len => {
                    let mut bytes = vec![0; len as usize + 2];
                    reader.read_exact(&mut bytes).await.map_err(|e| e.to_string())?;
                    bytes.truncate(len as usize);
                    Bulk(Some(String::from_utf8_lossy(&bytes).into_owned()))
                }
            },
            "*" => match number()? {
                -1 => Array(None),
                len => {
                    let mut items = Vec::with_capacity(len as usize);
                    for _ in 0..len {
                        items.push(read_reply(reader).await?);
                    }
                    Array(Some(items))
                }
            },
            _ => return Err(format!("unexpected reply line {line:?}")),
        })
    })
}

fn tail(replies: &[Reply]) -> &[Reply] {
    &replies[replies.len().saturating_sub(5)..]
}

/// Compare replies with expectations, naming the first command that differs.
fn assert_replies(what: &str, commands: &[Vec<String>], want: &[Reply], got: &[Reply]) {
    assert_eq!(want.len(), got.len(), "{what}: {} replies expected, {} came", want.len(), got.len());
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert!(
            matches(w, g),
            "{what}: command {i} {:?}: expected {w:?}, got {g:?}\n(commands before it: {:?})",
            commands[i],
            &commands[i.saturating_sub(5)..i]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// redis-server, when installed: the same pipelines against the real thing.
// ---------------------------------------------------------------------------------------------

/// A throwaway `redis-server` on a free loopback port, killed when dropped.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start one, or say why not: under `CI` it must be installed (`.ci/run` installs it).
    async fn start() -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let port = concord_server::testkit::free_port_run(1);
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "redis-server is needed under CI: {e}");
                eprintln!("SKIPPED the comparison with redis-server: it cannot be started ({e})");
                return None;
            }
        };
        let server = RedisServer { child, port, _dir: dir };
        let mut conn = Conn::connect_retrying(port).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        // Until it has loaded (an empty) dataset it answers -LOADING.
        while conn.pipeline(&[cmd("PING")]).await != [Status("PONG".into())] {
            assert!(Instant::now() < deadline, "redis-server did not answer PING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Pipelined MULTI/EXEC.
// ---------------------------------------------------------------------------------------------

/// The transaction script: pipelines on connection `a` (and one command on `b`, between two of
/// them), each checked reply by reply. Keys are prefixed with `p` so that runs can share a node.
async fn transactions(what: &str, a: &mut Conn, b: &mut Conn, p: &str) {
    let c = |words: &str| cmd(&words.replace('@', p));
    let script: Vec<(Vec<String>, Reply)> = vec![
        (c("SET @a 1"), ok()),
        (c("MULTI"), ok()),
        (c("INCR @a"), queued()),
        (c("GET @a"), queued()),
        (c("LPUSH @l x"), queued()),
        (c("EXEC"), array(vec![Int(2), bulk("2"), Int(1)])),
        (c("GET @a"), bulk("2")),
        // A command that fails when EXEC runs is that command's reply; the others still apply.
        (c("MULTI"), ok()),
        (c("INCR @l"), queued()),
        (c("INCR @a"), queued()),
        (c("LPUSH @l y"), queued()),
        (c("EXEC"), array(vec![error("WRONGTYPE"), Int(3), Int(2)])),
        // An unknown command while queuing dooms the transaction: nothing of it applies.
        (c("MULTI"), ok()),
        (c("SET @a 10"), queued()),
        (c("NOSUCHCOMMAND @a"), error("ERR unknown command")),
        (c("EXEC"), error("EXECABORT")),
        (c("GET @a"), bulk("3")),
        (c("MULTI"), ok()),
        (c("SET @a 5"), queued()),
        (c("DISCARD"), ok()),
        (c("GET @a"), bulk("3")),
        // A key WATCHed and then changed – by this very connection, later in the same pipeline –
        // makes EXEC answer a null array, and the transaction does not apply.
        (c("WATCH @a"), ok()),
        (c("SET @a 4"), ok()),
        (c("MULTI"), ok()),
        (c("INCR @a"), queued()),
        (c("EXEC"), Array(None)),
        (c("GET @a"), bulk("4")),
        // An untouched watch: EXEC applies.
        (c("WATCH @a @other"), ok()),
        (c("MULTI"), ok()),
        (c("INCR @a"), queued()),
        (c("GET @other"), queued()),
        (c("EXEC"), array(vec![Int(5), nil()])),
        (c("EXEC"), error("ERR EXEC without MULTI")),
        (c("DISCARD"), error("ERR DISCARD without MULTI")),
        (c("LRANGE @l 0 -1"), array(vec![bulk("y"), bulk("x")])),
        (c("GET @a"), bulk("5")),
    ];
    let (commands, want): (Vec<_>, Vec<_>) = script.into_iter().unzip();
    let got = a.pipeline(&commands).await;
    assert_replies(&format!("{what}: the transaction pipeline"), &commands, &want, &got);

    // WATCH, then another connection changes the key, then the transaction: a null EXEC, and
    // the other connection's value stays.
    let first = [c("WATCH @w"), c("GET @w")];
    assert_replies(&format!("{what}: WATCH"), &first, &[ok(), nil()], &a.pipeline(&first).await);
    let other = [c("SET @w theirs")];
    assert_replies(&format!("{what}: the other connection"), &other, &[ok()], &b.pipeline(&other).await);
    let second = [c("MULTI"), c("SET @w mine"), c("INCR @a"), c("EXEC"), c("GET @w"), c("GET @a")];
    let want = [ok(), queued(), queued(), Array(None), bulk("theirs"), bulk("5")];
    assert_replies(
        &format!("{what}: EXEC after the other's write"),
        &second,
        &want,
        &a.pipeline(&second).await,
    );

    // The same, with the other connection's write pipelined before the transaction is sent.
    let first = [c("SET @v 1"), c("WATCH @v"), c("MULTI"), c("INCR @v")];
    let want = [ok(), ok(), ok(), queued()];
    assert_replies(&format!("{what}: WATCH, MULTI"), &first, &want, &a.pipeline_into_multi(&first).await);
    let other = [c("INCR @v"), c("INCR @v")];
    assert_replies(
        &format!("{what}: the other's INCRs"),
        &other,
        &[Int(2), Int(3)],
        &b.pipeline(&other).await,
    );
    let second = [c("EXEC"), c("GET @v")];
    let want = [Array(None), bulk("3")];
    assert_replies(
        &format!("{what}: EXEC after the other's INCRs"),
        &second,
        &want,
        &a.pipeline(&second).await,
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Mixed pipelines, against a sequential model.
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (the load need not be random, only varied).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Which commands a mixed pipeline may hold.
#[derive(Clone, Copy, PartialEq)]
enum Kinds {
    /// Every kind: strings, counters, appends and lists (the strong mode).
    All,
    /// What the eventual mode serves: SET, GET, DEL, MGET on registers; INCR, GET, MGET on counters.
    Eventual,
}

/// `n` commands on a few keys under `p`.
fn mixed_commands(seed: u64, n: usize, p: &str, kinds: Kinds) -> Vec<Vec<String>> {
    let mut rng = Lcg(seed);
    let strings = [0, 1, 2].map(|i| format!("{p}s{i}"));
    let lists = [0, 1].map(|i| format!("{p}l{i}"));
    let counters = [0, 1].map(|i| format!("{p}c{i}"));
    let mut out = Vec::with_capacity(n);
    let mut deleted_in_run = BTreeSet::new();
    while out.len() < n {
        let s = strings[rng.below(3) as usize].clone();
        let s2 = strings[rng.below(3) as usize].clone();
        let l = lists[rng.below(2) as usize].clone();
        let k = counters[rng.below(2) as usize].clone();
        let words: Vec<String> = match (kinds, rng.below(12)) {
            (Kinds::All, 0 | 1) => {
                vec!["SET".into(), s, rng.pick(&["1", "42", "-5", "7", "x", "hello"]).into()]
            }
            (Kinds::All, 2 | 3) => vec!["INCR".into(), s],
            (Kinds::All, 4) => vec!["GET".into(), s],
            (Kinds::All, 5) => vec!["APPEND".into(), s, rng.pick(&["1", "x", "7"]).into()],
            (Kinds::All, 6) => vec!["MGET".into(), s, s2, l],
            (Kinds::All, 7) => match rng.below(3) {
                0 => vec!["DEL".into(), s],
                1 => vec!["DEL".into(), l],
                _ => vec!["DEL".into(), s, l],
            },
            (Kinds::All, 8 | 9) => {
                vec!["LPUSH".into(), l, rng.pick(&["a", "b"]).into(), rng.pick(&["c", "d"]).into()]
            }
            (Kinds::All, _) => {
                let (start, stop) = (rng.below(5) as i64 - 2, rng.below(7) as i64 - 3);
                vec!["LRANGE".into(), l, start.to_string(), stop.to_string()]
            }
            (Kinds::Eventual, 0..=2) => vec!["SET".into(), s, format!("v{}", rng.below(1000))],
            (Kinds::Eventual, 3..=5) => vec!["GET".into(), s],
            (Kinds::Eventual, 6 | 7) => vec!["INCR".into(), k],
            (Kinds::Eventual, 8) => vec!["GET".into(), k],
            (Kinds::Eventual, 9 | 10) => vec!["MGET".into(), s, k, s2],
            // Not a second DEL of a key in one run of writes (see below): a read of it instead.
            (Kinds::Eventual, _) if deleted_in_run.contains(&s) => vec!["GET".into(), s],
            (Kinds::Eventual, _) => vec!["DEL".into(), s],
        };
        // In the eventual mode a DEL reads the key and then writes a tombstone of what it read, and
        // the writes of one run (no read between them) run concurrently: a second DEL of the key
        // in the same run reads it before the first one's tombstone and answers 1 again, where
        // Redis answers 0. A known difference of that mode, not of pipelining: the load leaves
        // it out. A read ends a run.
        match words[0].as_str() {
            "DEL" => {
                deleted_in_run.insert(words[1].clone());
            }
            "GET" | "MGET" => deleted_in_run.clear(),
            _ => {}
        }
        out.push(words);
    }
    out
}

/// Redis run one command at a time, for the commands [`mixed_commands`] makes: strings (keys
/// named `…s<i>` or `…c<i>`) and lists (`…l<i>`).
#[derive(Default)]
struct Sequential {
    strings: BTreeMap<String, String>,
    lists: BTreeMap<String, VecDeque<String>>,
}

/// Redis's integer grammar (`string2ll`): an optional `-`, then `0` or digits without a leading
/// zero; no `-0`, no `+`, within i64.
fn redis_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = match digits.as_bytes() {
        [b'0'] => digits.len() == s.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    canonical.then(|| s.parse().ok()).flatten()
}

impl Sequential {
    fn apply(&mut self, args: &[String]) -> Reply {
        let key = &args[1];
        match args[0].as_str() {
            "SET" => {
                self.strings.insert(key.clone(), args[2].clone());
                ok()
            }
            "GET" => Bulk(self.strings.get(key).cloned()),
            "INCR" => match self.strings.get(key).map(|v| redis_integer(v)) {
                Some(None) => error("ERR value is not an integer or out of range"),
                current => match current.flatten().unwrap_or(0).checked_add(1) {
                    None => error("ERR increment or decrement would overflow"),
                    Some(v) => {
                        self.strings.insert(key.clone(), v.to_string());
                        Int(v)
                    }
                },
            },
            "APPEND" => {
                let v = self.strings.entry(key.clone()).or_default();
                v.push_str(&args[2]);
                Int(v.len() as i64)
            }
            // A list reads as nil in MGET, as on Redis.
            "MGET" => array(args[1..].iter().map(|k| Bulk(self.strings.get(k).cloned())).collect()),
            "DEL" => Int(args[1..]
                .iter()
                .filter(|k| self.strings.remove(*k).is_some() | self.lists.remove(*k).is_some())
                .count() as i64),
            "LPUSH" => {
                let list = self.lists.entry(key.clone()).or_default();
                for item in &args[2..] {
                    list.push_front(item.clone());
                }
                Int(list.len() as i64)
            }
            "LRANGE" => {
                let list = self.lists.get(key).cloned().unwrap_or_default();
                let len = list.len() as i64;
                // Redis's `lrange`: a negative index counts from the end; the start is clamped
                // to 0, the stop to the last element; an empty range is an empty array.
                let from_end = |i: &String| {
                    let i: i64 = i.parse().unwrap();
                    if i < 0 {
                        len + i
                    } else {
                        i
                    }
                };
                let (start, stop) = (from_end(&args[2]).max(0), from_end(&args[3]).min(len - 1));
                let items = if start > stop || start >= len {
                    Vec::new()
                } else {
                    list.range(start as usize..=stop as usize).map(|s| bulk(s)).collect()
                };
                array(items)
            }
            other => panic!("the model has no {other}"),
        }
    }
}

/// The model's replies to `commands`, one batch after the other.
fn model_replies(batches: &[Vec<Vec<String>>]) -> Vec<Reply> {
    let mut model = Sequential::default();
    batches.iter().flatten().map(|c| model.apply(c)).collect()
}

/// Mixed pipelines on one connection to `port`: three batches of `per_batch` commands, written
/// back to back; every reply must be the sequential model's.
async fn mixed(what: &str, port: u16, p: &str, kinds: Kinds, seed: u64, per_batch: usize) {
    let batches: Vec<Vec<Vec<String>>> =
        (0..3).map(|b| mixed_commands(seed * 10 + b, per_batch, p, kinds)).collect();
    let want = model_replies(&batches);
    // The load must be able to show a misordering: the model's replies vary.
    let distinct: BTreeSet<String> = want.iter().map(|r| format!("{r:?}")).collect();
    assert!(distinct.len() > 20, "{what}: the model's replies hardly vary: {distinct:?}");
    if kinds == Kinds::All {
        assert!(want.iter().any(|r| matches!(r, Reply::Error(_))), "{what}: no INCR of a non-integer");
    }
    let refs: Vec<&[Vec<String>]> = batches.iter().map(|b| b.as_slice()).collect();
    let mut conn = Conn::connect_retrying(port).await;
    let mut got = Vec::with_capacity(want.len());
    if let Err(e) = conn.exchange_batches(&refs, true, |_, r| got.push(r)).await {
        panic!("{what}: {e} after {} of {} replies; the last: {:?}", got.len(), want.len(), tail(&got));
    }
    assert_replies(&format!("{what}: mixed pipelines"), &batches.concat(), &want, &got);
}

/// Wait until `port` takes a write (a node just started, or a cluster still electing, says
/// TRYAGAIN or is not listening yet).
async fn wait_writable(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::connect(port).await {
            let mut reply = None;
            match conn.exchange(&[cmd("SET pipeline-probe 1")], |_, r| reply = Some(r)).await {
                Ok(()) if reply == Some(ok()) => return,
                Ok(()) => last = format!("{reply:?}"),
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} took no write within 60 s; last answer {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_on_one_node_answer_as_redis_does() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(dir.path(), 1, |o| o.no_fsync = true);
    let port = cluster.redis_port(0);
    wait_writable(port).await;
    let (mut a, mut b) = (Conn::connect_retrying(port).await, Conn::connect_retrying(port).await);
    transactions("one node", &mut a, &mut b, "t:").await;
    mixed("one node", port, "m:", Kinds::All, 1, 1500).await;

    // The same expectations hold on Redis itself.
    if let Some(redis) = RedisServer::start().await {
        let (mut a, mut b) =
            (Conn::connect_retrying(redis.port).await, Conn::connect_retrying(redis.port).await);
        transactions("redis-server", &mut a, &mut b, "t:").await;
        mixed("redis-server", redis.port, "m:", Kinds::All, 1, 1500).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_on_three_nodes_answer_as_redis_does_through_the_leader_and_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(dir.path(), 3, |o| o.no_fsync = true);
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let port = |i: usize| cluster.redis_port(i);
    wait_writable(port(follower)).await;
    wait_writable(port(leader)).await;

    let (mut a, mut b) =
        (Conn::connect_retrying(port(leader)).await, Conn::connect_retrying(port(follower)).await);
    transactions("through the leader", &mut a, &mut b, "tl:").await;
    let (mut a, mut b) =
        (Conn::connect_retrying(port(follower)).await, Conn::connect_retrying(port(other)).await);
    transactions("through a follower", &mut a, &mut b, "tf:").await;

    // Two connections at once, on keys of their own: each sees its own pipeline in order.
    tokio::join!(
        mixed("through a follower", port(follower), "mf:", Kinds::All, 2, 1200),
        mixed("through the leader", port(leader), "ml:", Kinds::All, 3, 1200),
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A pipeline cut by a leader change.
// ---------------------------------------------------------------------------------------------

/// What one client's cut pipeline got.
#[derive(Default, Debug)]
struct Tally {
    incr_ok: u64,
    incr_err: u64,
    incr_unknown: u64,
    /// Elements whose RPUSH was acknowledged.
    pushed: BTreeSet<String>,
    /// Every element sent.
    sent: BTreeSet<String>,
}

/// `n` commands: `INCR counter`, every tenth an `RPUSH list <tag><i>` of a unique element.
fn incr_and_push(tag: &str, n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| if i % 10 == 9 { cmd(&format!("RPUSH list {tag}{i}")) } else { cmd("INCR counter") })
        .collect()
}

/// Send `commands` to `port` in one write; count what came back. `progress` is how many replies
/// have been read. Returns the tally and whether every reply came (the connection stayed up).
async fn cut_pipeline(
    port: u16,
    commands: Vec<Vec<String>>,
    progress: Arc<AtomicUsize>,
) -> (Tally, Result<(), String>) {
    let mut conn = Conn::connect_retrying(port).await;
    let mut tally = Tally::default();
    let mut answered = 0;
    let result = conn
        .exchange(&commands, |i, reply| {
            answered = i + 1;
            progress.store(answered, Ordering::SeqCst);
            match (commands[i][0].as_str(), reply) {
                ("INCR", Int(_)) => tally.incr_ok += 1,
                ("RPUSH", Int(_)) => {
                    tally.pushed.insert(commands[i][2].clone());
                }
                ("INCR", Reply::Error(_)) => tally.incr_err += 1,
                ("RPUSH", Reply::Error(_)) => {}
                (_, other) => panic!("command {i} {:?}: unexpected reply {other:?}", commands[i]),
            }
        })
        .await;
    for (i, c) in commands.iter().enumerate() {
        if c[0] == "RPUSH" {
            tally.sent.insert(c[2].clone());
        } else if i >= answered {
            tally.incr_unknown += 1;
        }
    }
    (tally, result)
}

/// Send one command to whichever running node answers it without "try again"; its reply.
async fn settled(ports: &[u16], args: &str) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        for port in ports {
            let Ok(mut conn) = Conn::connect(*port).await else { continue };
            let mut reply = None;
            match conn.exchange(&[cmd(args)], |_, r| reply = Some(r)).await {
                Ok(()) => match reply.unwrap() {
                    Reply::Error(e) => last = e,
                    r => return r,
                },
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{args}: no node answered within 60 s; last: {last}");
}

/// A three-node cluster for the pipeline-cut tests, both ends writable: the cluster, its leader,
/// the follower the surviving pipeline goes through, and every node's Redis port.
async fn cut_cluster(dir: &std::path::Path) -> (LocalCluster, usize, usize, Vec<u16>) {
    let cluster = LocalCluster::start(dir, 3, |_| {});
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let ports: Vec<u16> = (0..3).map(|i| cluster.redis_port(i)).collect();
    wait_writable(ports[follower]).await;
    wait_writable(ports[leader]).await;
    (cluster, leader, follower, ports)
}

/// The killed leader's connection may close: what it did not answer is unknown. An error other
/// than a closed connection is not allowed there either.
fn assert_cut_by_the_kill<T>(result: &Result<T, String>) {
    if let Err(e) = result {
        assert!(
            e.contains("closed") || e.contains("reset") || e.contains("write"),
            "through the killed leader: {e}"
        );
    }
}

/// Commands per client, and how many replies the follower's client reads before the kill.
const CUT_COMMANDS: usize = 20_000;
const KILL_AFTER: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_cut_by_a_leader_kill_answers_every_command_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, follower, ports) = cut_cluster(dir.path()).await;

    let (through_follower, through_leader) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let f = tokio::spawn(cut_pipeline(
        ports[follower],
        incr_and_push("f", CUT_COMMANDS),
        through_follower.clone(),
    ));
    let l =
        tokio::spawn(cut_pipeline(ports[leader], incr_and_push("l", CUT_COMMANDS), through_leader.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while through_follower.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the follower's pipeline made no progress\n{}", cluster.logs(20));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill9(leader);
    let at_kill = through_follower.load(Ordering::SeqCst);
    assert!(at_kill < CUT_COMMANDS, "the pipeline ended before the kill: nothing was cut");

    let (f, f_result) = f.await.unwrap();
    let (l, l_result) = l.await.unwrap();
    // The follower's connection stays up: one reply per command, neither missing nor extra.
    if let Err(e) = f_result {
        panic!("through the follower: {e} ({f:?} replies counted)\n{}", cluster.logs(20));
    }
    assert_eq!(f.incr_unknown, 0);
    assert_cut_by_the_kill(&l_result);
    eprintln!(
        "follower: {} ok, {} errors of {CUT_COMMANDS} (kill after {at_kill}); leader: {} ok, {} errors, {} unknown ({l_result:?})",
        f.incr_ok + f.pushed.len() as u64,
        f.incr_err,
        l.incr_ok + l.pushed.len() as u64,
        l.incr_err,
        l.incr_unknown
    );
    assert!(f.incr_ok > 0 && f.pushed.len() > 10, "the follower's client saw acknowledgements: {f:?}");

    let running: Vec<u16> = (0..3).filter(|i| *i != leader).map(|i| ports[i]).collect();
    let counter = match settled(&running, "GET counter").await {
        Bulk(Some(v)) => v.parse::<u64>().unwrap(),
        other => panic!("GET counter: {other:?}"),
    };
    let ok = f.incr_ok + l.incr_ok;
    let doubtful = f.incr_err + l.incr_err + l.incr_unknown;
    assert!(
        (ok..=ok + doubtful).contains(&counter),
        "counter {counter}: {ok} INCRs were acknowledged and {doubtful} failed or are unknown"
    );
    let list = match settled(&running, "LRANGE list 0 -1").await {
        Array(Some(items)) => items
            .into_iter()
            .map(|i| match i {
                Bulk(Some(s)) => s,
                other => panic!("a list element {other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("LRANGE list: {other:?}"),
    };
    let unique: BTreeSet<&String> = list.iter().collect();
    assert_eq!(unique.len(), list.len(), "an element was pushed twice: {list:?}");
    for e in &list {
        assert!(f.sent.contains(e) || l.sent.contains(e), "{e} was never sent");
    }
    for e in f.pushed.iter().chain(&l.pushed) {
        assert!(unique.contains(e), "{e} was acknowledged and is not in the list");
    }
}

/// `n` commands: `SET <tag><i> v<i>` of unique keys, every fourth a `GET` of the key set just
/// before it – the plain SETs and GETs a connection sends to the node as batches.
fn set_and_get(tag: &str, n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                cmd(&format!("GET {tag}{}", i - 1))
            } else {
                cmd(&format!("SET {tag}{i} v{i}"))
            }
        })
        .collect()
}

/// What one client of [`a_pipeline_of_sets_and_gets_cut_by_a_leader_kill_answers_each_once`] saw.
#[derive(Debug, Default)]
struct SetTally {
    /// Keys whose SET was acknowledged.
    acked: BTreeSet<String>,
    set_errors: u64,
    get_errors: u64,
    /// Replies read (the connection may close after a kill).
    answered: usize,
}

/// Send `commands` ([`set_and_get`]) in one write and check each reply as it comes: a GET after
/// an acknowledged SET of its key in the same pipeline must see it.
async fn cut_set_pipeline(
    port: u16,
    commands: Vec<Vec<String>>,
    progress: Arc<AtomicUsize>,
) -> (SetTally, Result<(), String>) {
    let mut conn = Conn::connect_retrying(port).await;
    let mut tally = SetTally::default();
    let result = conn
        .exchange(&commands, |i, reply| {
            tally.answered = i + 1;
            progress.store(i + 1, Ordering::SeqCst);
            let key = &commands[i][1];
            match (commands[i][0].as_str(), reply) {
                ("SET", Status(s)) if s == "OK" => {
                    tally.acked.insert(key.clone());
                }
                ("SET", Reply::Error(_)) => tally.set_errors += 1,
                ("GET", Bulk(value)) => {
                    if tally.acked.contains(key) {
                        let want = format!("v{}", &key[1..]);
                        assert_eq!(
                            value.as_deref(),
                            Some(want.as_str()),
                            "GET {key} after its SET was acknowledged"
                        );
                    }
                }
                ("GET", Reply::Error(_)) => tally.get_errors += 1,
                (_, other) => panic!("command {i} {:?}: unexpected reply {other:?}", commands[i]),
            }
        })
        .await;
    (tally, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_sets_and_gets_cut_by_a_leader_kill_answers_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, follower, ports) = cut_cluster(dir.path()).await;

    let (through_follower, through_leader) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let f = tokio::spawn(cut_set_pipeline(
        ports[follower],
        set_and_get("f", CUT_COMMANDS),
        through_follower.clone(),
    ));
    let l =
        tokio::spawn(cut_set_pipeline(ports[leader], set_and_get("l", CUT_COMMANDS), through_leader.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while through_leader.load(Ordering::SeqCst) < KILL_AFTER
        || through_follower.load(Ordering::SeqCst) < KILL_AFTER
    {
        assert!(Instant::now() < deadline, "the pipelines made no progress\n{}", cluster.logs(20));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill9(leader);
    let at_kill = through_follower.load(Ordering::SeqCst);
    assert!(at_kill < CUT_COMMANDS, "the pipeline ended before the kill: nothing was cut");

    let (f, f_result) = f.await.unwrap();
    let (l, l_result) = l.await.unwrap();
    // The follower's connection stays up: one reply per command, neither missing nor extra.
    if let Err(e) = f_result {
        panic!("through the follower: {e} ({} replies)\n{}", f.answered, cluster.logs(20));
    }
    assert_eq!(f.answered, CUT_COMMANDS);
    assert_cut_by_the_kill(&l_result);
    eprintln!(
        "follower: {} SETs acknowledged, {} SET and {} GET errors of {CUT_COMMANDS} (kill after {at_kill}); \
         leader: {} acknowledged, {} answered",
        f.acked.len(),
        f.set_errors,
        f.get_errors,
        l.acked.len(),
        l.answered
    );
    assert!(f.acked.len() > KILL_AFTER / 2, "the follower's client saw acknowledgements");

    // Every acknowledged SET survives the kill.
    let running: Vec<u16> = (0..3).filter(|i| *i != leader).map(|i| ports[i]).collect();
    let acked: Vec<&String> = f.acked.iter().chain(&l.acked).collect();
    for chunk in acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
        match settled(&running, &format!("MGET {}", keys.join(" "))).await {
            Array(Some(values)) => {
                for (key, value) in keys.iter().zip(values) {
                    assert_eq!(value, Bulk(Some(format!("v{}", &key[1..]))), "{key} was acknowledged");
                }
            }
            other => panic!("MGET: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Pipelined load under kill -9: a linearizable history.
// ---------------------------------------------------------------------------------------------

const LIN_CLIENTS: u64 = 4;
const LIN_PIPELINE: usize = 16;
const LIN_KEYS: u64 = 5;

/// The history the clients share; each pipelined op is its own process (a Jepsen process has
/// one op open at a time, and a pipeline has sixteen).
struct Recorder {
    start: Instant,
    history: Mutex<History>,
    next_process: AtomicU64,
    ok: AtomicU64,
}

impl Recorder {
    /// Record events under one lock, timestamped there: the history's order is real time.
    fn record(&self, events: impl IntoIterator<Item = (u64, EventType, Op)>) {
        let mut h = self.history.lock().unwrap();
        for (process, kind, op) in events {
            let t = Time::from_duration(self.start.elapsed());
            h.push(process, kind, op, t);
        }
    }
}

/// Whether an error reply says the command certainly did not take effect: refused before it was
/// proposed (no leader, not the leader). Anything else (a timeout, "unknown") may have.
fn refused(e: &str) -> bool {
    e.starts_with("TRYAGAIN") || e.starts_with("READONLY")
}

/// How a reply completes its op.
fn completion(op: &Op, reply: Reply) -> (EventType, Op) {
    let counter = op.key.as_deref().is_some_and(|k| k.starts_with('c'));
    match (op.f, reply) {
        (OpFn::Write, Status(s)) if s == "OK" => (EventType::Ok, op.clone()),
        (OpFn::Add, Int(_)) => (EventType::Ok, op.clone()),
        (OpFn::Write | OpFn::Add, Reply::Error(e)) if refused(&e) => (EventType::Fail, op.clone()),
        (OpFn::Write | OpFn::Add, Reply::Error(_)) => (EventType::Info, op.clone()),
        (OpFn::Read, Bulk(Some(v))) => {
            let v = v.parse().unwrap_or_else(|_| panic!("{op}: read a non-integer {v:?}"));
            (EventType::Ok, Op { value: Value::Int(v), ..op.clone() })
        }
        (OpFn::Read, Bulk(None)) => {
            (EventType::Ok, Op { value: if counter { Value::Int(0) } else { Value::Nil }, ..op.clone() })
        }
        // A read that did not complete changed nothing.
        (OpFn::Read, Reply::Error(_)) => (EventType::Fail, op.clone()),
        (_, reply) => panic!("{op}: unexpected reply {reply:?}"),
    }
}

/// One client: pipelines of [`LIN_PIPELINE`] SET/GET/INCR on a few keys, until `stop`.
async fn lin_client(c: u64, ports: Vec<u16>, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut rng = Lcg(c + 7);
    let mut node = c as usize % ports.len();
    let mut conn: Option<Conn> = None;
    let mut n: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            match tokio::time::timeout(Duration::from_secs(2), Conn::connect(ports[node])).await {
                Ok(Ok(fresh)) => conn = Some(fresh),
                _ => {
                    node = (node + 1) % ports.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let mut commands = Vec::with_capacity(LIN_PIPELINE);
        let mut ops = Vec::with_capacity(LIN_PIPELINE);
        for _ in 0..LIN_PIPELINE {
            n += 1;
            let k = rng.below(LIN_KEYS);
            let process = rec.next_process.fetch_add(1, Ordering::SeqCst);
            let (words, op) = match rng.below(4) {
                0 => {
                    let value = c as i64 * 1_000_000 + n;
                    (format!("SET r{k} {value}"), Op::write(format!("r{k}"), value))
                }
                1 => (format!("GET r{k}"), Op::read(format!("r{k}"))),
                2 => (
                    format!("INCR c{k}"),
                    Op { f: OpFn::Add, key: Some(format!("c{k}")), value: Value::Int(1) },
                ),
                _ => (format!("GET c{k}"), Op::read(format!("c{k}"))),
            };
            commands.push(cmd(&words));
            ops.push((process, op));
        }
        // Invoked when the pipeline is written; each completed when its reply is read.
        rec.record(ops.iter().map(|(p, op)| (*p, EventType::Invoke, op.clone())));
        let mut answered = 0;
        let mut refusals = 0;
        let result = conn
            .as_mut()
            .unwrap()
            .exchange(&commands, |i, reply| {
                answered = i + 1;
                let (p, op) = &ops[i];
                if matches!(&reply, Reply::Error(e) if refused(e)) {
                    refusals += 1;
                }
                let (kind, done) = completion(op, reply);
                if kind == EventType::Ok {
                    rec.ok.fetch_add(1, Ordering::Relaxed);
                }
                rec.record([(*p, kind, done)]);
            })
            .await;
        if result.is_err() {
            // The connection broke (its node was killed): what it did not answer is unknown if it
            // writes, and nothing if it reads.
            rec.record(ops[answered..].iter().map(|(p, op)| {
                (*p, if op.f == OpFn::Read { EventType::Fail } else { EventType::Info }, op.clone())
            }));
            conn = None;
            node = (node + 1) % ports.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else if refusals > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The events of `history` on keys starting with `prefix` (process ids are unique per op, so the
/// events pair up within it).
fn keys_starting(history: &History, prefix: char) -> History {
    History {
        events: history
            .events
            .iter()
            .filter(|e| e.op.key.as_deref().is_some_and(|k| k.starts_with(prefix)))
            .cloned()
            .collect(),
    }
}

fn assert_linearizable(history: &History, model: Model, name: &str) {
    let started = Instant::now();
    let verdict = linearizability::check(history, model, Duration::from_secs(60));
    if !verdict.is_linearizable() {
        let path = std::env::temp_dir().join(format!("concord-pipeline-{name}-history.jsonl"));
        std::fs::write(&path, history.to_jsonl()).unwrap();
        panic!(
            "{name}: {} events are not linearizable: {verdict:?}; saved to {}",
            history.len(),
            path.display()
        );
    }
    eprintln!("{name}: {} events linearizable ({:?} to check)", history.len(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_load_under_kill_9_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, |_| {});
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let ports: Vec<u16> = (0..3).map(|i| cluster.redis_port(i)).collect();
    for port in &ports {
        wait_writable(*port).await;
    }
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        next_process: AtomicU64::new(0),
        ok: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..LIN_CLIENTS)
        .map(|c| tokio::spawn(lin_client(c, ports.clone(), rec.clone(), stop.clone())))
        .collect();

    tokio::time::sleep(Duration::from_millis(2000)).await;
    let before_kill = rec.ok.load(Ordering::SeqCst);
    cluster.kill9(leader);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    cluster.restart(leader);
    let after_restart = rec.ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let total = rec.ok.load(Ordering::SeqCst);
    assert!(before_kill > 100, "the load ran before the kill: {before_kill} ok ops");
    assert!(
        total > after_restart + 100,
        "the load went on after the restart: {total} ok ops, {after_restart} before"
    );

    let history = rec.history.lock().unwrap().clone();
    let count = |kind: EventType| history.events.iter().filter(|e| e.kind == kind).count();
    eprintln!(
        "{} ops: {} ok, {} failed, {} unknown",
        count(EventType::Invoke),
        count(EventType::Ok),
        count(EventType::Fail),
        count(EventType::Info)
    );
    assert_linearizable(&keys_starting(&history, 'r'), Model::Kv, "registers");
    assert_linearizable(&keys_starting(&history, 'c'), Model::Counter, "counters");
}

// ---------------------------------------------------------------------------------------------
// 5. The eventual mode.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_mode_pipelines_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(dir.path(), 3, |o| {
        o.mode = Mode::Eventual;
        o.no_fsync = true;
    });
    let port = cluster.redis_port(0);
    wait_writable(port).await;
    tokio::join!(
        mixed("eventual, node 1", port, "e1:", Kinds::Eventual, 4, 600),
        mixed("eventual, node 2", cluster.redis_port(1), "e2:", Kinds::Eventual, 5, 600),
    );
}

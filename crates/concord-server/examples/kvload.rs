//! A small key-value load generator for comparing Concord with etcd (bench/raft-vs-etcd.sh,
//! bench/latency-vs-etcd.sh) and Concord with itself over the Redis protocol
//! (bench/redis-vs-concord.sh).
//!
//! Each client holds one keep-alive connection (HTTP/1.1, or RESP for `--target redis`) and has at
//! most one request outstanding. Clients are spread over the endpoints in turn. Two modes:
//!
//! - **Closed loop** (the default): each client sends its next request as soon as the previous
//!   one is answered (clients are tasks on one tokio runtime). This measures the most a system
//!   does with that many clients, but its latencies hide stalls: a client that waits 200 ms sends
//!   nothing in that time, so the 200 ms is counted once instead of for every request that would
//!   have been sent meanwhile ("coordinated omission").
//! - **Open loop** (`--rate N`): the N requests per second are split evenly over the clients and
//!   each request has an *intended* send time on a fixed schedule (client c sends at
//!   `start + c / N + i * clients / N`, so the clients interleave). A request is sent at its
//!   intended time, or at once if the client is still busy with an earlier one, and its latency
//!   is measured from the intended time, not from when it went out – the way wrk2 and
//!   HdrHistogram's "corrected" mode measure, so a stall costs every request scheduled during it.
//!   It also reports how many requests went out late (more than `--late-ms` after their intended
//!   time: the client was still waiting for an earlier reply, or the machine did not run it in
//!   time) and how many scheduled requests never went out before the run ended (`unsent`). Each
//!   client is an OS thread that sleeps with `std::thread::sleep` (tokio's timer ticks in whole
//!   milliseconds, which would add up to 1 ms of the generator's own lag to every latency);
//!   `send_lag_p99_ms` shows how late requests went out. If that is large while `late` is not
//!   caused by slow replies, the machine (or too many clients for its cores) is the bottleneck,
//!   not the server.
//!
//! Output: one JSON line (ops/s, p50/p99/p99.9/max in ms, errors; open loop: offered rate, late,
//! unsent) on stdout, a human summary on stderr. Latencies are exact: every sample is kept and
//! sorted at the end (20 k/s for a minute is 1.2 M `u64`s, small enough not to need a histogram).
//!
//! ```text
//! cargo run --release -p concord-server --example kvload -- \
//!     --target concord --endpoints 127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082 --clients 32 --duration 10s
//! cargo run --release -p concord-server --example kvload -- \
//!     --target etcd --endpoints 127.0.0.1:2379 --clients 64 --duration 10s --rate 20000
//! cargo run --release -p concord-server --example kvload -- \
//!     --target redis --endpoints 127.0.0.1:6379 --op get --clients 64 --rate 20000
//! ```
//!
//! Concord: `PUT /v1/kv/{key}` with the raw value, `GET /v1/kv/{key}`. etcd: `POST /v3/kv/put`
//! with `{"key": base64, "value": base64}`, `POST /v3/kv/range` with `{"key": base64}` (the v3 JSON
//! gateway; both reads are linearizable by default). Redis: `SET key value`, `GET key`. A read of
//! a key that does not exist (404, a nil reply) counts as a success.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// `concord` (HTTP), `etcd` (the v3 JSON gateway) or `redis` (RESP, to Concord or redis-server).
    #[arg(long)]
    target: String,
    /// Comma-separated host:port list of endpoints (HTTP, or RESP for --target redis).
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<SocketAddr>,
    /// Concurrent clients (one connection each, one request outstanding each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = concord_core::time::parse_duration)]
    duration: Duration,
    /// `put` (write) or `get` (read).
    #[arg(long, default_value = "put")]
    op: String,
    /// Open loop: offered load in requests per second over all clients (closed loop if absent).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: a request sent more than this many milliseconds after its intended time is late.
    #[arg(long, default_value_t = 2.0)]
    late_ms: f64,
    /// A request unanswered after this long counts as an error (its connection is dropped).
    #[arg(long, default_value = "10s", value_parser = concord_core::time::parse_duration)]
    timeout: Duration,
    /// Bytes per value.
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Distinct keys used (round-robin).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Concord,
    Etcd,
    Redis,
}

/// One keep-alive connection, reconnected after an error.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// One operation; Ok(true) if the server did it (or found no such key), Ok(false) if it
    /// answered with an error.
    async fn op(&mut self, target: Target, put: bool, key: &str, value: &[u8]) -> Result<bool, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            s.set_nodelay(true).ok();
            self.stream = Some(BufReader::new(s));
        }
        let r = match (target, put) {
            (Target::Concord, true) => {
                self.http("PUT", &format!("/v1/kv/{key}"), value).await.map(|s| s == 200)
            }
            (Target::Concord, false) => {
                self.http("GET", &format!("/v1/kv/{key}"), b"").await.map(|s| s == 200 || s == 404)
            }
            (Target::Etcd, true) => {
                let body = format!(r#"{{"key":"{}","value":"{}"}}"#, base64(key.as_bytes()), base64(value));
                self.http("POST", "/v3/kv/put", body.as_bytes()).await.map(|s| s == 200)
            }
            (Target::Etcd, false) => {
                let body = format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes()));
                self.http("POST", "/v3/kv/range", body.as_bytes()).await.map(|s| s == 200)
            }
            (Target::Redis, true) => self.resp(&[b"SET", key.as_bytes(), value]).await,
            (Target::Redis, false) => self.resp(&[b"GET", key.as_bytes()]).await,
        };
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    /// One HTTP/1.1 exchange; the status code. The body is read and dropped.
    async fn http(&mut self, method: &str, path: &str, body: &[u8]) -> Result<u16, String> {
        let s = self.stream.as_mut().expect("connected");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        s.get_mut().write_all(&req).await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        s.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|x| x.parse().ok()).ok_or("bad status line")?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            s.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = value.parse().map_err(|_| "bad content-length")?,
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => close = value == "close",
                _ => {}
            }
        }
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line).await.map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
                let mut skip = vec![0u8; n + 2];
                s.read_exact(&mut skip).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut skip = vec![0u8; length];
            s.read_exact(&mut skip).await.map_err(|e| e.to_string())?;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }

    /// One RESP command; true unless the reply is an error. Only the replies SET and GET give
    /// are understood: a simple string, an error, a bulk string (or nil).
    async fn resp(&mut self, argv: &[&[u8]]) -> Result<bool, String> {
        let s = self.stream.as_mut().expect("connected");
        let mut req = format!("*{}\r\n", argv.len()).into_bytes();
        for a in argv {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        s.get_mut().write_all(&req).await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        s.read_line(&mut line).await.map_err(|e| e.to_string())?;
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => Ok(true),
            Some(b'-') => Ok(false),
            Some(b'$') => {
                let n: i64 = line[1..].trim().parse().map_err(|_| "bad bulk length")?;
                if n >= 0 {
                    let mut skip = vec![0u8; n as usize + 2];
                    s.read_exact(&mut skip).await.map_err(|e| e.to_string())?;
                }
                Ok(true)
            }
            _ => Err(format!("unexpected reply {line:?}")),
        }
    }
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    /// Latency of every successful request, µs (open loop: from its intended send time).
    latencies_us: Vec<u64>,
    /// Open loop: how long after its intended time each request went out, µs.
    send_lag_us: Vec<u64>,
    late: u64,
    unsent: u64,
    errors: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.send_lag_us.extend(other.send_lag_us);
        self.late += other.late;
        self.unsent += other.unsent;
        self.errors += other.errors;
    }
}

/// Everything a client needs.
struct Job {
    target: Target,
    put: bool,
    keys: u64,
    value: Vec<u8>,
    timeout: Duration,
    late: Duration,
}

impl Job {
    async fn one(&self, conn: &mut Conn, n: u64) -> bool {
        let key = format!("bench-{}", n % self.keys);
        match tokio::time::timeout(self.timeout, conn.op(self.target, self.put, &key, &self.value)).await {
            Ok(Ok(true)) => true,
            Ok(_) => false,
            Err(_) => {
                conn.stream = None;
                false
            }
        }
    }
}

/// Closed loop: requests back to back until `stop`.
async fn closed_loop(job: Arc<Job>, mut conn: Conn, first: u64, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        if job.one(&mut conn, n).await {
            t.latencies_us.push(start.elapsed().as_micros() as u64);
        } else {
            t.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n += 1;
    }
    t
}

/// Open loop, one client on its own OS thread: connect, report ready, learn the start time, then
/// request i at `start + offset + i * interval` until `end`; latency from that intended time.
///
/// Why a thread (with its own single-threaded tokio runtime for the socket) rather than a task:
/// tokio's timer ticks in whole milliseconds, so a task that sleeps until its intended time wakes
/// up to 1 ms late, and that lag – the generator's, not the server's – would be counted in every
/// latency. `std::thread::sleep` wakes within tens of microseconds.
fn open_loop(job: Arc<Job>, addr: SocketAddr, first: u64, schedule: Schedule) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut conn = Conn { addr, stream: None };
    rt.block_on(async {
        if let Ok(s) = TcpStream::connect(addr).await {
            s.set_nodelay(true).ok();
            conn.stream = Some(BufReader::new(s));
        } // else: counted as errors when used
    });
    schedule.ready.send(()).ok();
    let Ok(start) = schedule.start.recv() else { return Tally::default() };
    let (first_at, interval, end) = (start + schedule.offset, schedule.interval, start + schedule.duration);
    let mut t = Tally::default();
    let mut i: u32 = 0;
    loop {
        let intended = first_at + interval * i;
        if intended >= end {
            break;
        }
        let now = Instant::now();
        if now >= end {
            // Still behind when the run ends: what is left of the schedule never went out.
            t.unsent += ((end - intended).as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
            break;
        }
        if now < intended {
            std::thread::sleep(intended - now);
        }
        let lag = Instant::now().saturating_duration_since(intended);
        t.send_lag_us.push(lag.as_micros() as u64);
        if lag > job.late {
            t.late += 1;
        }
        if rt.block_on(job.one(&mut conn, first + u64::from(i))) {
            t.latencies_us.push(intended.elapsed().as_micros() as u64);
        } else {
            t.errors += 1;
        }
        i += 1;
    }
    t
}

/// An open-loop client's place in the common schedule.
struct Schedule {
    /// Tells the main thread this client is connected.
    ready: std::sync::mpsc::Sender<()>,
    /// The start time, sent once every client is connected.
    start: std::sync::mpsc::Receiver<Instant>,
    offset: Duration,
    interval: Duration,
    duration: Duration,
}

/// Open loop: every client on its thread; the start time is set once all are connected, so that
/// connection setup is not measured.
fn run_open(args: &Args, job: Arc<Job>, rate: f64) -> Tally {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut starts = Vec::new();
    let mut threads = Vec::new();
    for c in 0..args.clients {
        let (start_tx, start_rx) = std::sync::mpsc::channel();
        starts.push(start_tx);
        let schedule = Schedule {
            ready: ready_tx.clone(),
            start: start_rx,
            // Each client sends every `clients / rate` seconds; client c starts c / rate in, so
            // that together they send one request every 1 / rate seconds.
            offset: Duration::from_secs_f64(c as f64 / rate),
            interval: Duration::from_secs_f64(args.clients as f64 / rate),
            duration: args.duration,
        };
        let (job, addr) = (job.clone(), args.endpoints[c % args.endpoints.len()]);
        let first = c as u64 * 1_000_003; // clients start at different keys
        threads.push(std::thread::spawn(move || open_loop(job, addr, first, schedule)));
    }
    for _ in 0..args.clients {
        ready_rx.recv().expect("a client thread died before connecting");
    }
    let start = Instant::now() + Duration::from_millis(10);
    for tx in starts {
        tx.send(start).ok();
    }
    let mut all = Tally::default();
    for t in threads {
        all.merge(t.join().expect("client thread"));
    }
    all
}

/// Closed loop: every client a task on one runtime, until DURATION has passed; and the time the
/// clients ran.
fn run_closed(args: &Args, job: Arc<Job>) -> (Tally, f64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // Connect every client before the clock starts, so that connection setup is not measured.
        let mut conns = Vec::new();
        for c in 0..args.clients {
            let addr = args.endpoints[c % args.endpoints.len()];
            let stream = match TcpStream::connect(addr).await {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    Some(BufReader::new(s))
                }
                Err(_) => None, // counted as errors when used
            };
            conns.push(Conn { addr, stream });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(c, conn)| tokio::spawn(closed_loop(job.clone(), conn, c as u64 * 1_000_003, stop.clone())))
            .collect();
        tokio::time::sleep(args.duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in tasks {
            all.merge(t.await.expect("client task"));
        }
        (all, start.elapsed().as_secs_f64())
    })
}

/// The `p` quantile of sorted samples (0 if none).
fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    assert!(!args.endpoints.is_empty(), "give --endpoints");
    let target = match args.target.as_str() {
        "concord" => Target::Concord,
        "etcd" => Target::Etcd,
        "redis" => Target::Redis,
        other => panic!("--target is concord, etcd or redis, not {other:?}"),
    };
    assert!(args.op == "put" || args.op == "get", "--op is put or get");
    assert!(args.clients > 0, "--clients must be at least 1");
    if let Some(rate) = args.rate {
        assert!(rate > 0.0, "--rate must be positive");
    }
    let job = Arc::new(Job {
        target,
        put: args.op == "put",
        keys: args.keys,
        value: vec![b'x'; args.value_bytes],
        timeout: args.timeout,
        late: Duration::from_secs_f64(args.late_ms / 1000.0),
    });

    // Open loop: the schedule's length (an answer that arrives after it still belongs to a
    // request scheduled within it). Closed loop: the time the clients ran.
    let (mut all, elapsed) = match args.rate {
        Some(rate) => (run_open(&args, job, rate), args.duration.as_secs_f64()),
        None => run_closed(&args, job),
    };
    all.latencies_us.sort_unstable();
    all.send_lag_us.sort_unstable();
    let lat = &all.latencies_us;
    let ms = |us: u64| us as f64 / 1000.0;
    let ops_per_s = lat.len() as f64 / elapsed;
    let (p50, p99, p999, max) =
        (ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), ms(pct(lat, 0.999)), ms(lat.last().copied().unwrap_or(0)));
    let mode = if args.rate.is_some() { "open" } else { "closed" };
    let offered = args
        .rate
        .map(|r| format!(", offered {r:.0}/s, {} late, {} unsent", all.late, all.unsent))
        .unwrap_or_default();
    eprintln!(
        "{} {} ({mode} loop{offered}): {} ok in {elapsed:.1}s = {ops_per_s:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms, {} errors ({} clients)",
        args.target,
        args.op,
        lat.len(),
        all.errors,
        args.clients
    );
    println!(
        "{}",
        serde_json::json!({
            "target": args.target, "op": args.op, "mode": mode, "clients": args.clients,
            "ok": lat.len(), "seconds": elapsed, "ops_per_s": ops_per_s,
            // The name bench/raft-vs-etcd.sh reads (it runs puts).
            "writes_per_s": ops_per_s,
            "p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "max_ms": max, "errors": all.errors,
            "offered_per_s": args.rate, "late": all.late, "unsent": all.unsent,
            "send_lag_p99_ms": ms(pct(&all.send_lag_us, 0.99)),
        })
    );
}

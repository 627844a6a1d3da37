//! What the front door knows about itself: its clients, its slow log, its counters, and the
//! process's memory – the material of `INFO`, `CLIENT LIST`/`KILL`, `SLOWLOG` and `ROLE`.
//!
//! Everything here is shared by all connections of one [`crate::serve`] and is bounded: the
//! registry holds one small record per connected client (at most `max_clients`), the slow log at
//! most `slowlog-max-len` entries of at most [`SLOWLOG_MAX_ARGS`] arguments of at most
//! [`SLOWLOG_MAX_ARG_BYTES`] bytes each, as redis-server bounds them.
//!
//! # Clients
//! Each connection registers a [`ClientHandle`] and publishes a [`ClientSnapshot`] of itself
//! (name, user, last command, pending replies…) after every command, so that another connection's
//! `CLIENT LIST` reads a consistent line without reaching into the connection's task. `CLIENT
//! KILL` marks a handle killed and wakes its reader, which closes the connection.
//!
//! # The slow log
//! A command's time is measured from its dispatch until its reply is ready – for a write that
//! includes replication (the Raft round trip), since that is what a client waits for; for a
//! connection command it is the time to compute the reply. `slowlog-log-slower-than` (µs; negative:
//! off, 0: every command) and `slowlog-max-len` change at runtime with `CONFIG SET`.
//!
//! # Counters
//! `keyspace_hits` and `keyspace_misses` count the lookups of `GET` and `MGET` (a key found, a
//! key missing); `instantaneous_ops_per_sec` is the commands per second over the last 1.6 s,
//! sampled every 100 ms as redis-server does; `total_net_input_bytes` / `total_net_output_bytes`
//! count the bytes read from and written to clients.

use crate::backend::RequestConsistency;
use crate::command::{ClientFilter, Request};
use crate::frame::Frame;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Arguments a slow log entry keeps (the last one then says how many more there were).
pub const SLOWLOG_MAX_ARGS: usize = 32;
/// Bytes of one argument a slow log entry keeps.
pub const SLOWLOG_MAX_ARG_BYTES: usize = 128;
/// redis-server's defaults for `slowlog-log-slower-than` (µs) and `slowlog-max-len`.
pub const SLOWLOG_DEFAULT_SLOWER_THAN_US: i64 = 10_000;
pub const SLOWLOG_DEFAULT_MAX_LEN: usize = 128;

/// Samples `instantaneous_ops_per_sec` averages over (redis-server's `STATS_METRIC_SAMPLES`).
const OPS_SAMPLES: usize = 16;
/// How often the commands counter is sampled.
pub const OPS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding one of these locks leaves plain data: keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shared state of one server (see the module docs).
pub struct Monitor {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    pub slowlog: Slowlog,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Clients waiting in a blocking command (none of Concord's commands block yet).
    pub blocked_clients: AtomicUsize,
    /// `(when, total_commands_processed)`, every [`OPS_SAMPLE_INTERVAL`].
    ops_samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Random per start, as redis-server's `run_id`: tells a restarted server from the old one.
    pub run_id: String,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            clients: Mutex::default(),
            slowlog: Slowlog::default(),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            blocked_clients: AtomicUsize::new(0),
            ops_samples: Mutex::default(),
            run_id: run_id(),
        }
    }
}

/// 40 hex digits that differ from one start to the next (not a secret; only an identity).
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::new();
    for i in 0..3u64 {
        // RandomState is seeded randomly per process (and per instance).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
        id.push_str(&format!("{:016x}", h.finish()));
    }
    id.truncate(40);
    id
}

impl Monitor {
    pub fn register(&self, handle: Arc<ClientHandle>) {
        lock(&self.clients).insert(handle.id, handle);
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.clients).remove(&id);
    }

    /// Every client's latest snapshot, in id order.
    pub fn clients(&self) -> Vec<Arc<ClientHandle>> {
        lock(&self.clients).values().cloned().collect()
    }

    /// Record one sample of the commands counter (called every [`OPS_SAMPLE_INTERVAL`]).
    pub fn sample_ops(&self, total_commands: u64) {
        let mut samples = lock(&self.ops_samples);
        if samples.len() == OPS_SAMPLES + 1 {
            samples.pop_front();
        }
        samples.push_back((Instant::now(), total_commands));
    }

    /// Commands per second over the samples held.
    pub fn ops_per_sec(&self) -> u64 {
        let samples = lock(&self.ops_samples);
        match (samples.front(), samples.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                let secs = t1.duration_since(*t0).as_secs_f64();
                (n1.saturating_sub(*n0) as f64 / secs).round() as u64
            }
            _ => 0,
        }
    }

    /// Count the lookups `request` made, from its reply (see the module docs).
    pub fn count_lookups(&self, lookups: Lookups, reply: &Frame) {
        let (hits, misses) = match (lookups, reply) {
            (Lookups::One, Frame::Null) => (0, 1),
            (Lookups::One, Frame::Error(_)) => (0, 0),
            (Lookups::One, _) => (1, 0),
            (Lookups::Many, Frame::Array(items)) => {
                let misses = items.iter().filter(|f| matches!(f, Frame::Null)).count() as u64;
                (items.len() as u64 - misses, misses)
            }
            (Lookups::Many, _) => (0, 0),
        };
        self.keyspace_hits.fetch_add(hits, Ordering::Relaxed);
        self.keyspace_misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// `CONFIG RESETSTAT`: the counters this module keeps, back to zero.
    pub fn reset_stats(&self) {
        for counter in
            [&self.keyspace_hits, &self.keyspace_misses, &self.net_input_bytes, &self.net_output_bytes]
        {
            counter.store(0, Ordering::Relaxed);
        }
        lock(&self.ops_samples).clear();
    }
}

/// What kind of key lookups a request makes, for `keyspace_hits` and `keyspace_misses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookups {
    /// One key: a nil reply is a miss, any other (but an error) a hit.
    One,
    /// An array reply, one element per key.
    Many,
}

impl Lookups {
    pub fn of(request: &Request) -> Option<Lookups> {
        match request {
            Request::Get(_) => Some(Lookups::One),
            Request::MGet(_) => Some(Lookups::Many),
            _ => None,
        }
    }
}

/// One connection, as the others see it.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: Option<SocketAddr>,
    pub created: Instant,
    snapshot: Mutex<ClientSnapshot>,
    killed: AtomicBool,
    kill: tokio::sync::Notify,
}

/// A connection's state as of its last command.
#[derive(Clone, Debug)]
pub struct ClientSnapshot {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_version: Option<Bytes>,
    pub user: Option<String>,
    /// The last command, Redis's way (`client|list`, `get`).
    pub last_command: String,
    pub last_active: Instant,
    pub resp: i64,
    /// Commands queued in MULTI (`None`: not in a transaction).
    pub multi: Option<usize>,
    /// `READONLY` is on (Redis Cluster).
    pub readonly: bool,
    pub consistency: RequestConsistency,
    /// Bytes received and not yet parsed (`qbuf`).
    pub input_buffered: usize,
    /// Bytes of replies computed and not yet written (`omem`).
    pub output_pending: usize,
}

impl ClientHandle {
    pub fn new(
        id: u64,
        addr: SocketAddr,
        laddr: Option<SocketAddr>,
        snapshot: ClientSnapshot,
    ) -> ClientHandle {
        ClientHandle {
            id,
            addr,
            laddr,
            created: snapshot.last_active,
            snapshot: Mutex::new(snapshot),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        }
    }

    pub fn publish(&self, snapshot: ClientSnapshot) {
        *lock(&self.snapshot) = snapshot;
    }

    pub fn snapshot(&self) -> ClientSnapshot {
        lock(&self.snapshot).clone()
    }

    /// `CLIENT KILL`: the connection closes as soon as its reader notices.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Resolves once the client is killed.
    pub async fn killed(&self) {
        if !self.is_killed() {
            self.kill.notified().await;
        }
    }

    /// Whether `filter` selects this client; `me` is the id of the client asking.
    pub fn matches(&self, filter: &ClientFilter, me: u64) -> bool {
        let snapshot = self.snapshot();
        let same =
            |want: &Option<Bytes>, have: String| want.as_ref().is_none_or(|w| w.as_ref() == have.as_bytes());
        (filter.ids.is_empty() || filter.ids.contains(&self.id))
            && same(&filter.addr, self.addr.to_string())
            && same(&filter.laddr, self.laddr.map(|a| a.to_string()).unwrap_or_default())
            && same(&filter.user, snapshot.user.unwrap_or_default())
            // Every Concord client is a normal one: no replicas, masters or subscribers connect here.
            && filter.kind.as_deref().is_none_or(|k| k == "normal")
            && filter.max_age_secs.is_none_or(|age| self.created.elapsed().as_secs() >= age)
            && !(filter.skip_me && self.id == me)
    }

    /// The `CLIENT LIST` / `CLIENT INFO` line, in redis-server 7's field order (fields Concord has
    /// no equivalent of – file descriptors, allocator sizes – are left out), then `lib-name`,
    /// `lib-ver` (Redis 7.2) and Concord's `consistency`. `consistency` is the connection's
    /// `CONSISTENCY` text; the caller renders it (it depends on the backend).
    pub fn line(&self, consistency: &str) -> String {
        let s = self.snapshot();
        let text =
            |b: &Option<Bytes>| b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
        let mut flags = String::new();
        if s.multi.is_some() {
            flags.push('x');
        }
        if s.readonly {
            flags.push('r');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} name={} age={} idle={} flags={flags} db=0 sub=0 psub=0 ssub=0 \
             multi={} qbuf={} obl=0 oll=0 omem={} cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={} \
             consistency={consistency}\n",
            self.id,
            self.addr,
            self.laddr.map(|a| a.to_string()).unwrap_or_default(),
            text(&s.name),
            self.created.elapsed().as_secs(),
            s.last_active.elapsed().as_secs(),
            s.multi.map_or(-1, |n| n as i64),
            s.input_buffered,
            s.output_pending,
            s.last_command,
            s.user.as_deref().unwrap_or(""),
            s.resp,
            text(&s.lib_name),
            text(&s.lib_version),
        )
    }
}

/// Commands slower than a threshold, newest first (see the module docs).
pub struct Slowlog {
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
    /// µs; negative: off.
    pub slower_than_us: AtomicI64,
    pub max_len: AtomicUsize,
}

impl Default for Slowlog {
    fn default() -> Self {
        Slowlog {
            entries: Mutex::default(),
            next_id: AtomicU64::new(0),
            slower_than_us: AtomicI64::new(SLOWLOG_DEFAULT_SLOWER_THAN_US),
            max_len: AtomicUsize::new(SLOWLOG_DEFAULT_MAX_LEN),
        }
    }
}

#[derive(Clone, Debug)]
struct SlowEntry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

impl Slowlog {
    /// Whether commands are being logged at all (if not, their arguments need not be kept).
    pub fn enabled(&self) -> bool {
        self.slower_than_us.load(Ordering::Relaxed) >= 0 && self.max_len.load(Ordering::Relaxed) > 0
    }

    /// Log a command that took `took`, if that is at least the threshold.
    pub fn record(&self, args: &[Bytes], took: Duration, addr: SocketAddr, name: Option<&Bytes>) {
        let threshold = self.slower_than_us.load(Ordering::Relaxed);
        let micros = took.as_micros().min(u64::MAX as u128) as u64;
        if threshold < 0 || micros < threshold as u64 {
            return;
        }
        let max_len = self.max_len.load(Ordering::Relaxed);
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            micros,
            args: shorten(args),
            addr: addr.to_string(),
            name: name.cloned().unwrap_or_default(),
        };
        let mut entries = lock(&self.entries);
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        lock(&self.entries).clear();
    }

    /// Apply a lowered `slowlog-max-len` at once, as redis-server does.
    pub fn trim(&self) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        lock(&self.entries).truncate(max_len);
    }

    /// `SLOWLOG GET`: at most `count` newest entries (`None`: all), each
    /// `[id, unix time, µs, [args…], "ip:port", name]`.
    pub fn get(&self, count: Option<usize>) -> Frame {
        let entries = lock(&self.entries);
        Frame::Array(
            entries
                .iter()
                .take(count.unwrap_or(usize::MAX))
                .map(|e| {
                    Frame::Array(vec![
                        Frame::Integer(e.id as i64),
                        Frame::Integer(e.unix_secs as i64),
                        Frame::Integer(e.micros as i64),
                        Frame::Array(e.args.iter().cloned().map(Frame::Bulk).collect()),
                        Frame::bulk(e.addr.clone()),
                        Frame::Bulk(e.name.clone()),
                    ])
                })
                .collect(),
        )
    }
}

/// redis-server's bounds on a logged command: 32 arguments (the last saying how many more),
/// 128 bytes each (the rest said in words).
fn shorten(args: &[Bytes]) -> Vec<Bytes> {
    let keep = if args.len() > SLOWLOG_MAX_ARGS { SLOWLOG_MAX_ARGS - 1 } else { args.len() };
    let mut out: Vec<Bytes> = args[..keep]
        .iter()
        .map(|a| {
            if a.len() > SLOWLOG_MAX_ARG_BYTES {
                let mut s = a.slice(..SLOWLOG_MAX_ARG_BYTES).to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(s)
            } else {
                a.clone()
            }
        })
        .collect();
    if keep < args.len() {
        out.push(Bytes::from(format!("... ({} more arguments)", args.len() - keep)));
    }
    out
}

/// The process's memory, for `INFO memory`: resident set size and its peak from
/// `/proc/self/status`, the machine's memory from `/proc/meminfo` (Linux; elsewhere `None`).
/// Concord does not count its allocations, so `used_memory` is the resident set size too.
pub fn process_memory() -> Option<ProcessMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |text: &str, field: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Some(ProcessMemory {
        rss: kib(&status, "VmRSS:")?,
        peak_rss: kib(&status, "VmHWM:").unwrap_or(0),
        system_total: kib(&meminfo, "MemTotal:").unwrap_or(0),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessMemory {
    pub rss: u64,
    pub peak_rss: u64,
    pub system_total: u64,
}

/// Bytes as redis-server writes them for people: `937B`, `1.02K`, `12.50M`, `1.00G`.
pub fn human_bytes(n: u64) -> String {
    let n_f = n as f64;
    const K: f64 = 1024.0;
    if n_f < K {
        format!("{n}B")
    } else if n_f < K * K {
        format!("{:.2}K", n_f / K)
    } else if n_f < K * K * K {
        format!("{:.2}M", n_f / (K * K))
    } else if n_f < K * K * K * K {
        format!("{:.2}G", n_f / (K * K * K))
    } else {
        format!("{:.2}T", n_f / (K * K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowlog_keeps_the_newest_bounded_entries() {
        let log = Slowlog::default();
        log.slower_than_us.store(100, Ordering::Relaxed);
        log.max_len.store(2, Ordering::Relaxed);
        let addr: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let args = |s: &str| s.split(' ').map(|w| Bytes::from(w.to_string())).collect::<Vec<_>>();
        log.record(&args("GET fast"), Duration::from_micros(99), addr, None);
        assert_eq!(log.len(), 0, "faster than the threshold");
        for i in 0..3 {
            log.record(&args(&format!("SET k{i} v")), Duration::from_micros(100 + i), addr, None);
        }
        assert_eq!(log.len(), 2);
        let Frame::Array(entries) = log.get(None) else { panic!() };
        let Frame::Array(newest) = &entries[0] else { panic!() };
        assert_eq!(newest[0], Frame::Integer(2));
        assert_eq!(newest[2], Frame::Integer(102));
        assert_eq!(newest[3], Frame::Array(args("SET k2 v").into_iter().map(Frame::Bulk).collect()));
        assert_eq!(newest[4], Frame::bulk("127.0.0.1:5"));
        let Frame::Array(one) = log.get(Some(1)) else { panic!() };
        assert_eq!(one.len(), 1);
        log.slower_than_us.store(-1, Ordering::Relaxed);
        log.record(&args("SET slow v"), Duration::from_secs(1), addr, None);
        assert_eq!(log.len(), 2, "negative: off");
        log.reset();
        assert!(log.is_empty());
    }

    #[test]
    fn long_commands_are_shortened_as_redis_does() {
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        let short = shorten(&many);
        assert_eq!(short.len(), 32);
        assert_eq!(short[31], Bytes::from("... (9 more arguments)"));
        let long = shorten(&[Bytes::from(vec![b'x'; 200])]);
        assert_eq!(long[0].len(), 128 + "... (72 more bytes)".len());
        assert!(long[0].ends_with(b"... (72 more bytes)"));
    }

    #[test]
    fn memory_is_read_from_the_process() {
        if cfg!(target_os = "linux") {
            let m = process_memory().expect("/proc/self/status");
            assert!(m.rss > 0 && m.peak_rss >= m.rss && m.system_total >= m.rss, "{m:?}");
        }
        assert_eq!(human_bytes(937), "937B");
        assert_eq!(human_bytes(1044), "1.02K");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.50M");
    }

    #[test]
    fn lookups_count_hits_and_misses() {
        let m = Monitor::default();
        m.count_lookups(Lookups::One, &Frame::Null);
        m.count_lookups(Lookups::One, &Frame::bulk("v"));
        m.count_lookups(Lookups::Many, &Frame::Array(vec![Frame::Null, Frame::bulk("a"), Frame::bulk("b")]));
        assert_eq!(m.keyspace_hits.load(Ordering::Relaxed), 3);
        assert_eq!(m.keyspace_misses.load(Ordering::Relaxed), 2);
        assert_eq!(m.run_id.len(), 40);
    }
}

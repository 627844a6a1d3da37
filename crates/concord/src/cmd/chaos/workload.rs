//! The `register` workload: single-key registers read, written and compare-and-set over HTTP by
//! concurrent clients, each operation recorded Jepsen-style (invoke, then ok / fail / info).
//!
//! Keys are used a few at a time and then retired, as Jepsen's `independent` generator does: the
//! ops are numbered as they are issued, op `n` goes to one of the `keys` keys of window
//! `n / (keys · ops_per_key)`, so every key sees about `ops_per_key` operations. The checker takes
//! each key as its own register (linearizability is local), and short per-key histories keep its
//! search small. Values are small integers, so writes collide and CASes succeed and fail.
//!
//! How answers are read (docs/http.md): 200 is `ok` (a CAS with `succeeded: false` is a `fail` –
//! its comparison failed, nothing changed); 503 and 400 are `fail` (refused before it took effect),
//! and so is a connection refused (the request was never sent);
//! anything else for a write or CAS – 500 (outcome unknown), 504, a timeout, a connection cut – is
//! `info`, and the client continues as a new process, as Jepsen's clients do. A read that did not
//! complete changed nothing: `fail`.

use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::Time;
use concord_server::testkit::{http, HttpAnswer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the clients share: the clock, the history, the op counter.
pub struct Recorder {
    pub start: Instant,
    pub history: Mutex<History>,
    next_process: AtomicU64,
    next_op: AtomicU64,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            history: Mutex::new(History::default()),
            next_process: AtomicU64::new(0),
            next_op: AtomicU64::new(0),
        }
    }

    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::SeqCst)
    }

    pub fn record(&self, process: u64, kind: EventType, op: Op) {
        // The timestamp is taken under the lock: the history's order is its real-time order.
        let mut h = self.history.lock().unwrap();
        let t = Time::from_duration(self.start.elapsed());
        h.push(process, kind, op, t);
    }

    /// Number the next operation (unique in the run).
    pub fn next_op(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::SeqCst)
    }

    pub fn ops_issued(&self) -> u64 {
        self.next_op.load(Ordering::SeqCst)
    }
}

/// The register workload's shape.
#[derive(Clone, Copy, Debug)]
pub struct Register {
    pub keys: u64,
    pub ops_per_key: u64,
    pub timeout: Duration,
}

impl Register {
    /// The key of the `n`-th operation issued (`pick` chooses within the window).
    pub fn key(&self, n: u64, pick: u64) -> String {
        let window = n / (self.keys * self.ops_per_key).max(1);
        format!("r{}", window * self.keys + pick % self.keys)
    }
}

/// What a client learned from one call.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Ok(Value),
    Fail,
    Info,
}

/// How the answer to `op` reads (see the module's documentation).
pub fn outcome(op: &Op, answer: Result<HttpAnswer, String>) -> Outcome {
    match (op.f, answer) {
        (OpFn::Read, Ok(a)) if a.status == 200 => match a.text().trim().parse::<i64>() {
            Ok(v) => Outcome::Ok(Value::Int(v)),
            Err(_) => Outcome::Ok(Value::Str(a.text())),
        },
        (OpFn::Read, Ok(a)) if a.status == 404 => Outcome::Ok(Value::Nil),
        (OpFn::Read, _) => Outcome::Fail,
        (OpFn::Write, Ok(a)) if a.status == 200 => Outcome::Ok(op.value.clone()),
        (OpFn::Cas, Ok(a)) if a.status == 200 => match a.json().ok().and_then(|v| v["succeeded"].as_bool()) {
            Some(true) => Outcome::Ok(op.value.clone()),
            Some(false) => Outcome::Fail,
            None => Outcome::Info,
        },
        (_, Ok(a)) if a.status == 503 || a.status == 400 => Outcome::Fail,
        // No connection (a killed node): the request was never sent.
        (_, Err(e)) if e.starts_with("connect ") => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// Perform `op` through the node at `addr`.
pub async fn perform(addr: SocketAddr, op: &Op, timeout: Duration) -> Outcome {
    let key = op.key.as_deref().expect("register ops have a key");
    let answer = match op.f {
        OpFn::Read => {
            http(addr, "GET", &format!("/v1/kv/{key}?consistency=linearizable"), b"", timeout).await
        }
        OpFn::Write => {
            let body = op.value.to_string();
            http(addr, "PUT", &format!("/v1/kv/{key}"), body.as_bytes(), timeout).await
        }
        OpFn::Cas => {
            let (expected, new) = op.value.as_pair().expect("a CAS carries [expected, new]");
            let body =
                serde_json::json!({"expect": {"value": expected.to_string()}, "value": new.to_string()});
            http(addr, "POST", &format!("/v1/kv/{key}/cas"), body.to_string().as_bytes(), timeout).await
        }
        other => unreachable!("the register workload does not issue {other}"),
    };
    outcome(op, answer)
}

/// One client: random reads, writes and CASes through its node, until `stop`.
///
/// Each client is bound to one node (`c mod nodes`), as Jepsen binds each client to one node: a
/// frozen or cut-off node then holds up only its own clients, and the others keep the throughput
/// up. A client whose operation is in doubt continues as a new process (Jepsen's rule: that
/// process's operation stays open forever), on the same node.
pub async fn client(
    c: usize,
    nodes: Vec<SocketAddr>,
    workload: Register,
    seed: u64,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
    let mut process = rec.process();
    let node = c % nodes.len();
    while !stop.load(Ordering::SeqCst) {
        let n = rec.next_op();
        let key = workload.key(n, rng.gen());
        let op = match rng.gen_range(0..3) {
            0 => Op::read(key),
            1 => Op::write(key, rng.gen_range(0..5)),
            _ => Op::cas(key, rng.gen_range(0..5), rng.gen_range(0..5)),
        };
        rec.record(process, EventType::Invoke, op.clone());
        match perform(nodes[node], &op, workload.timeout).await {
            Outcome::Ok(v) => rec.record(process, EventType::Ok, Op { value: v, ..op }),
            Outcome::Fail => {
                rec.record(process, EventType::Fail, op);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Outcome::Info => {
                rec.record(process, EventType::Info, op);
                // A process with an operation in doubt never invokes again.
                process = rec.process();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The keys the history touched, in order.
pub fn keys(history: &History) -> Vec<String> {
    let set: std::collections::BTreeSet<String> =
        history.events.iter().filter_map(|e| e.op.key.clone()).collect();
    set.into_iter().collect()
}

/// After the faults: read every key through every node until each read succeeds (or `within`
/// passes), recording the reads in the history – they are the run's final reads, and a write
/// acknowledged during the run but lost must show up in them. Returns the reads that never
/// succeeded.
pub async fn final_reads(
    nodes: &[SocketAddr],
    keys: &[String],
    rec: &Recorder,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut missing = Vec::new();
    for (i, &addr) in nodes.iter().enumerate() {
        let process = rec.process();
        for key in keys {
            loop {
                let op = Op::read(key.clone());
                rec.record(process, EventType::Invoke, op.clone());
                match perform(addr, &op, Duration::from_secs(5)).await {
                    Outcome::Ok(v) => {
                        rec.record(process, EventType::Ok, Op { value: v, ..op });
                        break;
                    }
                    _ => {
                        rec.record(process, EventType::Fail, op);
                        if Instant::now() >= deadline {
                            missing.push(format!("node {}: {key}", i + 1));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        }
    }
    missing
}

//! kill -9 against real `concord serve` processes, under a concurrent write load.
//!
//! Three separate OS processes of this very binary form a cluster on loopback. Several client
//! tasks write and read over HTTP, each recording a Jepsen-style history (invoke, then ok / fail /
//! info). Then:
//!
//! 1. the leader gets SIGKILL: a new leader must be elected, clients continue after retrying, and
//!    the killed node restarts from its WAL and catches up;
//! 2. the whole cluster gets SIGKILL at once and restarts from disk.
//!
//! Nodes snapshot every 100 entries (`--snapshot-count 100`), so the run crosses many checkpoints of
//! the state's redb database: restarts resume from a checkpoint and replay the log after it, and a
//! node that was down while the leader compacted its log is sent the checkpoint's state.
//!
//! Afterwards, **every acknowledged write is counted on every node** (each client also writes keys
//! of its own that are never overwritten, so "present with this value" is exact), and the complete
//! history must be linearizable under the key-value model (`concord_check`).

use concord_check::{linearizability, Model, Verdict};
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::Time;
use concord_server::testkit::{http, HttpAnswer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: u32 = 3;
const CLIENTS: u64 = 4;
/// Keys shared by all clients (overwritten, read back: what the linearizability check bites on).
const SHARED_KEYS: u64 = 16;
/// A client gives up on one HTTP call after this long (the node's own request timeout is 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(7);

mod local_cluster;
use local_cluster::LocalCluster as Cluster;

/// What the clients share: the history, the acknowledged unique writes, the clock.
struct Recorder {
    start: Instant,
    history: Mutex<History>,
    acked: Mutex<Vec<(String, i64)>>,
    next_process: AtomicU64,
}

impl Recorder {
    fn now(&self) -> Time {
        Time::from_duration(self.start.elapsed())
    }

    fn record(&self, process: u64, kind: EventType, op: Op) {
        // Timestamps are taken under the lock, so the history's order is its real-time order.
        let mut h = self.history.lock().unwrap();
        let t = self.now();
        h.push(process, kind, op, t);
    }
}

enum Outcome {
    Ok(Value),
    Fail,
    Info,
}

/// Perform one op over HTTP on node `node` and say what the client learned.
async fn perform(http_addr: SocketAddr, op: &Op) -> Outcome {
    let key = op.key.as_deref().unwrap();
    let answer: Result<HttpAnswer, String> = match op.f {
        OpFn::Write => {
            let body = op.value.as_int().unwrap().to_string();
            http(http_addr, "PUT", &format!("/v1/kv/{key}"), body.as_bytes(), CALL_TIMEOUT).await
        }
        OpFn::Read => http(http_addr, "GET", &format!("/v1/kv/{key}"), b"", CALL_TIMEOUT).await,
        _ => unreachable!(),
    };
    match (op.f, answer) {
        (OpFn::Write, Ok(a)) if a.status == 200 => Outcome::Ok(op.value.clone()),
        // 503: refused before it took effect (no leader, back-pressure): certainly not applied.
        (OpFn::Write, Ok(a)) if a.status == 503 || a.status == 400 => Outcome::Fail,
        // 504 timeout, 500 unknown outcome, a connection cut by kill -9: may or may not have happened.
        (OpFn::Write, _) => Outcome::Info,
        (OpFn::Read, Ok(a)) if a.status == 200 => match a.text().parse::<i64>() {
            Ok(v) => Outcome::Ok(Value::Int(v)),
            Err(_) => panic!("read a non-integer value {:?}", a.text()),
        },
        (OpFn::Read, Ok(a)) if a.status == 404 => Outcome::Ok(Value::Nil),
        // A read that did not complete changed nothing: recording it as failed is exact.
        (OpFn::Read, _) => Outcome::Fail,
        _ => unreachable!(),
    }
}

/// One client: alternate shared-key writes and reads with a unique-key write, until `stop`.
async fn client(c: u64, http_addrs: Vec<SocketAddr>, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut process = rec.next_process.fetch_add(1, Ordering::SeqCst);
    let mut node = c as usize % http_addrs.len();
    let mut n: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let value = (c as i64) * 1_000_000 + n;
        let op = match n % 3 {
            0 => Op::write(format!("own-{c}-{n}"), value),
            1 => Op::write(format!("shared-{}", (n as u64 * 7 + c) % SHARED_KEYS), value),
            _ => Op::read(format!("shared-{}", (n as u64 * 5 + 3 * c) % SHARED_KEYS)),
        };
        rec.record(process, EventType::Invoke, op.clone());
        match perform(http_addrs[node], &op).await {
            Outcome::Ok(v) => {
                if op.f == OpFn::Write && op.key.as_deref().unwrap().starts_with("own-") {
                    rec.acked.lock().unwrap().push((op.key.clone().unwrap(), value));
                }
                rec.record(process, EventType::Ok, Op { value: v, ..op });
            }
            Outcome::Fail => {
                rec.record(process, EventType::Fail, op);
                node = (node + 1) % http_addrs.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Outcome::Info => {
                rec.record(process, EventType::Info, op);
                // Jepsen's rule: a process with an op in doubt never invokes again.
                process = rec.next_process.fetch_add(1, Ordering::SeqCst);
                node = (node + 1) % http_addrs.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Start the client tasks; they run until `stop`.
fn run_clients(
    cluster: &Cluster,
    rec: &Arc<Recorder>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS).map(|c| tokio::spawn(client(c, cluster.http.clone(), rec.clone(), stop.clone()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leader_and_whole_cluster_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), NODES, |o| o.snapshot_count = Some(100));
    let first_leader = cluster.leader(Duration::from_secs(20)).await;

    let rec = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        acked: Mutex::new(Vec::new()),
        next_process: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));

    // Phase 1: kill -9 the leader under load; a new leader takes over; the old one restarts.
    let clients = run_clients(&cluster, &rec, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked_before_kill = rec.acked.lock().unwrap().len();
    cluster.kill9(first_leader);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let new_leader = cluster.leader(Duration::from_secs(20)).await;
    assert_ne!(new_leader, first_leader);
    let acked_after_failover = rec.acked.lock().unwrap().len();
    cluster.restart(first_leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Phase 2: kill -9 every node at once, restart them all from disk.
    for i in 0..NODES as usize {
        cluster.kill9(i);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..NODES as usize {
        cluster.restart(i);
    }
    cluster.leader(Duration::from_secs(20)).await;
    let acked_before_restart_phase = rec.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = rec.acked.lock().unwrap().clone();
    assert!(acked_before_kill > 10, "the load ran before the kill: {acked_before_kill} acked writes");
    assert!(acked_after_failover > acked_before_kill, "clients continued after the leader was killed");
    assert!(acked.len() > acked_before_restart_phase, "clients continued after the whole cluster restarted");

    // Every acknowledged write, on every node (the restarted ones included), counted.
    cluster.caught_up(Duration::from_secs(20)).await;
    for addr in &cluster.http {
        let view = http(*addr, "GET", "/v1/cluster", b"", CALL_TIMEOUT).await.unwrap().json().unwrap();
        let snapshot = view["snapshot_index"].as_u64().unwrap_or(0);
        assert!(snapshot >= 100, "{addr} took snapshots (checkpoints) during the run: {view}");
    }
    // The first leader was down while the others compacted their logs past its own: it was sent the
    // new leader's checkpoint, streamed from the state's database (info-level events in its log).
    let logs = cluster.logs(100_000);
    // The follower's own event (the leader logs "snapshot-installed-on"), as tracing writes it.
    assert!(
        logs.contains("event=\"snapshot-installed\""),
        "no node installed a snapshot\n{}",
        cluster.logs(40)
    );
    for (i, addr) in cluster.http.iter().enumerate() {
        let mut missing = Vec::new();
        for (key, value) in &acked {
            let a = http(*addr, "GET", &format!("/v1/kv/{key}?consistency=stale"), b"", CALL_TIMEOUT)
                .await
                .unwrap();
            if a.status != 200 || a.text() != value.to_string() {
                missing.push((key.clone(), a.status, a.text()));
            }
        }
        assert!(
            missing.is_empty(),
            "node {}: {} of {} acknowledged writes missing, e.g. {:?}\n{}",
            i + 1,
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)],
            cluster.logs(30)
        );
    }

    // The whole history, failures and all, must be linearizable.
    let history = rec.history.lock().unwrap().clone();
    let verdict = linearizability::check(&history, Model::Kv, Duration::from_secs(60));
    if !verdict.is_linearizable() {
        let path = std::env::temp_dir().join("concord-server-kill-history.jsonl");
        std::fs::write(&path, history.to_jsonl()).unwrap();
        panic!(
            "history of {} events is not linearizable ({verdict:?}); saved to {}",
            history.len(),
            path.display()
        );
    }
    eprintln!(
        "{} history events, {} acknowledged unique writes present on all {NODES} nodes; linearizable",
        history.len(),
        acked.len()
    );
    assert!(matches!(verdict, Verdict::Linearizable));
}

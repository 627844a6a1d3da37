//! `concord lab consensus` – Raft and Multi-Paxos side by side, same workload, same faults.
//!
//! Five parts, each a table, a plot and a section of `index.html` (run one with `--part N`):
//!
//! 1. **Steady state**: five nodes, the same closed-loop workload (clients, keys, a write/CAS mix –
//!    every operation goes through the log in both protocols). Messages and bytes per committed
//!    command, by message kind, and commit latency p50/p99. Messages are counted from the
//!    simulator's trace (every `send` line once the workload has started); bytes are each
//!    message's size in **postcard**, the encoding Concord's server puts on the wire between peers
//!    (without the 4-byte frame length), measured by decoding the traced message and encoding it.
//! 2. **Leader crash**: the leader (Raft) or distinguished proposer (Paxos) is crashed repeatedly
//!    under load; per crash, the time until another node leads, and until a leader commits beyond
//!    what had been committed at the crash (the time the cluster could not commit anything).
//! 3. **A flapping link**: the link between the first leader and one follower is cut and restored
//!    over and over; throughput over time and the leaderships won and terms / ballot rounds
//!    advanced, for Raft with and without pre-vote and for Multi-Paxos.
//! 4. **Duelling proposers**: almost equal timeouts (100–101 ms) so that two nodes campaign at the
//!    same moment: Multi-Paxos without and with randomised back-off, and Raft with the same
//!    near-fixed timeout, with a randomised one, and with randomised timeouts and pre-vote.
//! 5. **Log holes after failover**: under a pipelined load on a lossy, jittery network the leader
//!    is cut off from everyone (its messages in flight are lost); how many slots each new Paxos
//!    leader fills with no-ops (read from its `elected` event in the trace), against
//!    Raft, whose new leader's log is measured for gaps (it has none: a Raft log is a prefix) and
//!    for the tail of earlier terms' entries it must commit with its own no-op.
//!
//! Every (variant, seed) is its own deterministic simulation; the jobs run on all cores and the
//! numbers do not depend on how many there are. The guide is `docs/labs/consensus.md`.

use crate::plot::{self, CdfChart, Curve, LineStyle, StyledSeries, XyChart};
use concord_core::history::{EventType, History};
use concord_core::{NodeId, Process, Time};
use concord_sim::protocols::paxos::PaxosKv;
use concord_sim::protocols::raft::RaftKv;
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The number of parts.
pub const PARTS: usize = 5;

/// What to run.
#[derive(Clone, Debug)]
pub struct ConsensusOptions {
    /// The first seed; repetition `k` of a simulation runs with seed `seed + k`.
    pub seed: u64,
    /// Simulations per variant (each with its own seed), pooled.
    pub seeds: u64,
    /// A small version: shorter runs and fewer crashes.
    pub quick: bool,
    /// Worker threads (default: all cores).
    pub threads: usize,
    /// Which parts to run (index 0 is part 1).
    pub parts: [bool; PARTS],
}

impl ConsensusOptions {
    pub fn full(seed: u64, seeds: u64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ConsensusOptions { seed, seeds: seeds.max(1), quick: false, threads, parts: [true; PARTS] }
    }
    pub fn quick(seed: u64) -> Self {
        ConsensusOptions { quick: true, ..Self::full(seed, 2) }
    }
    /// Run only part `part` (1-based).
    pub fn only_part(mut self, part: usize) -> Self {
        self.parts = std::array::from_fn(|i| i + 1 == part);
        self
    }
    /// Part 1: how long the workload is measured.
    fn steady(&self) -> Duration {
        Duration::from_millis(if self.quick { 1_500 } else { 10_000 })
    }
    /// Parts 2 and 5: leader crashes per simulation.
    fn crashes(&self) -> usize {
        if self.quick {
            4
        } else {
            50
        }
    }
    /// Part 3: how long the link flaps.
    fn flapping(&self) -> Duration {
        Duration::from_millis(if self.quick { 2_400 } else { 10_000 })
    }
    /// Part 4: how long the duel runs.
    fn duel(&self) -> Duration {
        Duration::from_millis(if self.quick { 1_500 } else { 5_000 })
    }
}

// ----- the two protocols ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    Raft,
    Paxos,
}

/// One configuration of one protocol.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    pub label: String,
    pub kind: Kind,
    /// The body of `[protocol.raft]` or `[protocol.paxos]`.
    pub config: String,
}

impl Variant {
    fn raft(label: &str, timeout: (u64, u64), heartbeat: u64, pre_vote: bool) -> Variant {
        Variant {
            label: label.into(),
            kind: Kind::Raft,
            config: format!(
                "election_timeout_min = \"{}ms\"\nelection_timeout_max = \"{}ms\"\nheartbeat_interval = \"{heartbeat}ms\"\npre_vote = {pre_vote}\ncheck_quorum = {pre_vote}\n",
                timeout.0, timeout.1
            ),
        }
    }
    fn paxos(label: &str, timeout: (u64, u64), heartbeat: u64, backoff: bool) -> Variant {
        Variant {
            label: label.into(),
            kind: Kind::Paxos,
            config: format!(
                "leader_timeout_min = \"{}ms\"\nleader_timeout_max = \"{}ms\"\nheartbeat_interval = \"{heartbeat}ms\"\nbackoff = {backoff}\n",
                timeout.0, timeout.1
            ),
        }
    }
    /// The defaults of parts 1, 2 and 5: 150–300 ms timeouts, 50 ms heartbeats, Raft with
    /// pre-vote and check-quorum (Concord's defaults), Paxos with back-off.
    fn standard() -> Vec<Variant> {
        vec![Variant::raft("Raft", (150, 300), 50, true), Variant::paxos("Multi-Paxos", (150, 300), 50, true)]
    }
    fn flapping() -> Vec<Variant> {
        vec![
            Variant::raft("Raft (pre-vote, check-quorum)", (150, 300), 50, true),
            Variant::raft("Raft (no pre-vote)", (150, 300), 50, false),
            Variant::paxos("Multi-Paxos (back-off)", (150, 300), 50, true),
        ]
    }
    fn duel() -> Vec<Variant> {
        vec![
            Variant::paxos("Multi-Paxos, no back-off, 100–101 ms", (100, 101), 40, false),
            Variant::paxos("Multi-Paxos, back-off, 100–101 ms", (100, 101), 40, true),
            Variant::raft("Raft, 100–101 ms", (100, 101), 40, false),
            Variant::raft("Raft, 100–200 ms", (100, 200), 40, false),
            Variant::raft("Raft, 100–200 ms, pre-vote", (100, 200), 40, true),
        ]
    }
}

/// The network, disks and workload of one simulation.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub clients: u32,
    pub keys: u32,
    /// Milliseconds a client waits between operations.
    pub think_ms: u64,
    pub loss: f64,
    /// One-way latency, uniform, in ms.
    pub latency_ms: (f64, f64),
    pub disk_sync_us: u64,
}

impl Setup {
    /// Parts 1–4.
    pub fn standard() -> Setup {
        Setup { clients: 5, keys: 8, think_ms: 2, loss: 0.0, latency_ms: (2.0, 4.0), disk_sync_us: 500 }
    }
    /// Part 5: more operations in flight, more jitter (messages overtake each other), and a lossy
    /// network.
    pub fn pipelined() -> Setup {
        Setup { clients: 20, think_ms: 0, loss: 0.05, latency_ms: (1.0, 6.0), ..Setup::standard() }
    }
}

fn scenario_text(variant: &Variant, setup: &Setup, start: Duration) -> String {
    format!(
        r#"
[run]
nodes = 5
duration = "100000s"
max_events = 100000000000
checks = []

[network]
latency = {{ dist = "uniform", min = "{lmin}us", max = "{lmax}us" }}
loss = {loss}

[disk]
sync_latency = {{ dist = "constant", value = "{disk}us" }}

[workload]
clients = {clients}
keys = {keys}
mix = {{ write = 0.8, cas = 0.2 }}
timeout = "300ms"
think = "{think}ms"
start = "{start}us"

[protocol.{proto}]
{config}"#,
        lmin = (setup.latency_ms.0 * 1e3) as u64,
        lmax = (setup.latency_ms.1 * 1e3) as u64,
        loss = setup.loss,
        disk = setup.disk_sync_us,
        clients = setup.clients,
        keys = setup.keys,
        think = setup.think_ms,
        start = start.as_micros(),
        proto = match variant.kind {
            Kind::Raft => "raft",
            Kind::Paxos => "paxos",
        },
        config = variant.config,
    )
}

/// What the lab reads from a node of either protocol.
trait Consensus: SimProtocol + Sized {
    const IS_RAFT: bool;
    /// `Some(leadership)` while this node leads: its term, or its ballot (round × 1000 + node).
    fn leading(&self) -> Option<u64>;
    /// Highest log position known committed (Raft) or applied in order (Paxos).
    fn committed(&self) -> u64;
    /// The term, or the highest ballot round promised.
    fn round(&self) -> u64;
    /// Raft only: (entries above the commit index, gaps in the log).
    fn log_shape(&self) -> Option<(u64, u64)>;
}

impl Consensus for RaftKv {
    const IS_RAFT: bool = true;
    fn leading(&self) -> Option<u64> {
        self.is_leader().then(|| self.current_term())
    }
    fn committed(&self) -> u64 {
        self.commit_index()
    }
    fn round(&self) -> u64 {
        self.current_term()
    }
    fn log_shape(&self) -> Option<(u64, u64)> {
        let last = self.last_log_index();
        let gaps = (self.snapshot_index() + 1..=last).filter(|&i| self.log_term_at(i).is_none()).count();
        Some((last.saturating_sub(self.commit_index()), gaps as u64))
    }
}

impl Consensus for PaxosKv {
    const IS_RAFT: bool = false;
    fn leading(&self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        self.ballot().map(|b| b.round * 1000 + u64::from(b.leader.0))
    }
    fn committed(&self) -> u64 {
        self.applied()
    }
    fn round(&self) -> u64 {
        self.promised().round
    }
    fn log_shape(&self) -> Option<(u64, u64)> {
        None
    }
}

fn build<P: Consensus>(
    variant: &Variant,
    setup: &Setup,
    start: Duration,
    seed: u64,
    tap: Option<&Tap<P>>,
) -> anyhow::Result<Simulation<P>> {
    let text = scenario_text(variant, setup, start);
    let scenario =
        Scenario::parse(Path::new("consensus-lab.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let trace = tap.map(|t| Box::new(t.clone()) as Box<dyn std::io::Write + Send>);
    let mut sim = Simulation::<P>::new(Arc::new(scenario), RunOptions { seed, trace, ..Default::default() });
    sim.start();
    Ok(sim)
}

/// The up node that leads with the highest leadership.
fn leader<P: Consensus>(sim: &Simulation<P>) -> Option<(NodeId, u64)> {
    sim.nodes().into_iter().filter_map(|(id, n)| n?.leading().map(|l| (id, l))).max_by_key(|&(_, l)| l)
}

/// The leader with the highest leadership among the up nodes other than `old`.
fn leader_except<P: Consensus>(sim: &Simulation<P>, old: NodeId) -> Option<(NodeId, u64)> {
    sim.nodes()
        .into_iter()
        .filter(|&(id, _)| id != old)
        .filter_map(|(id, n)| n?.leading().map(|l| (id, l)))
        .max_by_key(|&(_, l)| l)
}

fn max_committed<P: Consensus>(sim: &Simulation<P>) -> u64 {
    sim.nodes().into_iter().filter_map(|(_, n)| n.map(|n| n.committed())).max().unwrap_or(0)
}

fn max_round<P: Consensus>(sim: &Simulation<P>) -> u64 {
    sim.nodes().into_iter().filter_map(|(_, n)| n.map(|n| n.round())).max().unwrap_or(0)
}

// ----- the trace tap -------------------------------------------------------------------------------

/// The simulator's trace, read as it is written: every message sent from `from_ns` on (count and
/// postcard bytes per kind), and every `elected` protocol event.
struct Tap<P: Process>(Arc<Mutex<TapState>>, PhantomData<fn() -> P>);

impl<P: Process> Clone for Tap<P> {
    fn clone(&self) -> Self {
        Tap(Arc::clone(&self.0), PhantomData)
    }
}

#[derive(Default)]
struct TapState {
    from_ns: u64,
    /// kind → (messages, bytes).
    sends: BTreeMap<String, (u64, u64)>,
    /// (time ns, node, detail) of each `elected` event.
    elected: Vec<(u64, u32, serde_json::Value)>,
    error: Option<String>,
}

impl<P: Process> Tap<P> {
    fn new() -> Self {
        Tap(Arc::default(), PhantomData)
    }
    fn state(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.0.lock().expect("the tap is never poisoned")
    }
}

impl<P: Process> std::io::Write for Tap<P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let contains = |pattern: &[u8]| buf.windows(pattern.len()).any(|w| w == pattern);
        let send = contains(br#""ev":"send""#);
        let elected = !send && contains(br#""name":"elected""#);
        if !send && !elected {
            return Ok(buf.len());
        }
        let mut state = self.state();
        let Ok(mut line) = serde_json::from_slice::<serde_json::Value>(buf) else {
            return Ok(buf.len());
        };
        let t = line["t"].as_u64().unwrap_or(0);
        if send && t >= state.from_ns {
            let kind = line["kind"].as_str().unwrap_or("?").to_string();
            let bytes = serde_json::from_value::<P::Message>(line["msg"].take())
                .map_err(|e| e.to_string())
                .and_then(|m| postcard::to_allocvec(&m).map_err(|e| e.to_string()));
            match bytes {
                Ok(b) => {
                    let e = state.sends.entry(kind).or_default();
                    e.0 += 1;
                    e.1 += b.len() as u64;
                }
                Err(e) => state.error = Some(format!("a {kind} message: {e}")),
            }
        } else if elected && line["ev"] == "protocol" {
            let node = line["node"].as_u64().unwrap_or(0) as u32;
            state.elected.push((t, node, line["detail"].take()));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ----- measurements from the history -------------------------------------------------------------

/// Latencies (ms) of operations completed ok, and completion times (s).
fn completions(history: &History) -> (Vec<f64>, Vec<f64>) {
    let mut open: BTreeMap<u64, Time> = BTreeMap::new();
    let (mut latencies, mut times) = (Vec::new(), Vec::new());
    for e in &history.events {
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, e.time);
            }
            EventType::Ok => {
                if let Some(t0) = open.remove(&e.process) {
                    latencies.push((e.time - t0).as_secs_f64() * 1e3);
                }
                times.push(e.time.0 as f64 / 1e9);
            }
            EventType::Fail | EventType::Info => {
                open.remove(&e.process);
            }
        }
    }
    (latencies, times)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Completions per second in bins of `bin` seconds from `from` to `to`.
fn throughput(times: &[f64], from: f64, to: f64, bin: f64) -> Vec<(f64, f64)> {
    let n = ((to - from) / bin).round().max(1.0) as usize;
    let mut counts = vec![0u64; n];
    for &t in times {
        if t >= from && t < to {
            counts[(((t - from) / bin) as usize).min(n - 1)] += 1;
        }
    }
    counts.iter().enumerate().map(|(i, &c)| (from + (i as f64 + 0.5) * bin, c as f64 / bin)).collect()
}

// ----- part 1: steady state ------------------------------------------------------------------------

/// Part 1, one variant, all seeds pooled.
#[derive(Clone, Debug, Serialize)]
pub struct SteadyRow {
    pub variant: String,
    pub committed: u64,
    pub messages: u64,
    pub bytes: u64,
    /// kind → (messages, bytes), over the measured window.
    pub by_kind: BTreeMap<String, (u64, u64)>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

impl SteadyRow {
    pub fn messages_per_command(&self) -> f64 {
        self.messages as f64 / self.committed.max(1) as f64
    }
    pub fn bytes_per_command(&self) -> f64 {
        self.bytes as f64 / self.committed.max(1) as f64
    }
}

/// The first election happens before the workload starts.
const WARMUP: Duration = Duration::from_millis(1_000);

struct SteadySample {
    committed: u64,
    sends: BTreeMap<String, (u64, u64)>,
    latencies: Vec<f64>,
}

fn steady<P: Consensus>(variant: &Variant, seed: u64, window: Duration) -> anyhow::Result<SteadySample> {
    let tap = Tap::<P>::new();
    tap.state().from_ns = Time::from_duration(WARMUP).0;
    let mut sim = build::<P>(variant, &Setup::standard(), WARMUP, seed, Some(&tap))?;
    sim.run_until(Time::from_duration(WARMUP + window));
    let (latencies, _) = completions(sim.history());
    drop(sim);
    let mut state = tap.state();
    if let Some(e) = state.error.take() {
        anyhow::bail!("{}: measuring message sizes: {e}", variant.label);
    }
    Ok(SteadySample { committed: latencies.len() as u64, sends: std::mem::take(&mut state.sends), latencies })
}

// ----- parts 2 and 5: leader crashes -------------------------------------------------------------

/// One leader crash.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Crash {
    /// Crash → another node leads (ms); `None`: not within the limit.
    pub new_leader_ms: Option<f64>,
    /// Crash → a leader commits beyond everything committed at the crash (ms).
    pub commit_ms: Option<f64>,
    /// Paxos: slots the new leaders filled with no-ops (sum over the `elected` events in the
    /// trial); Raft: gaps in the new leader's log (measured).
    pub holes: u64,
    /// Paxos: slots re-proposed with a value some acceptor reported; Raft: entries above the new
    /// leader's commit index when it was elected (earlier terms' entries it commits with its no-op).
    pub carried: u64,
    /// Leaderships won during the trial.
    pub elections: u64,
}

/// How long a trial waits for a new leader and a commit.
const CRASH_LIMIT: Duration = Duration::from_secs(5);

/// How a trial of parts 2 and 5 removes the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// Crash it (part 2); messages it already sent are still delivered. Restarted after the trial.
    Crash,
    /// Cut it off from every other node (part 5): its messages in flight are lost, as when a
    /// machine's network dies mid-broadcast. Healed after the trial.
    Isolate,
}

fn crashes<P: Consensus>(
    variant: &Variant,
    setup: &Setup,
    seed: u64,
    trials: usize,
    fault: Fault,
) -> anyhow::Result<Vec<Crash>> {
    let traced = fault == Fault::Isolate;
    let tap = Tap::<P>::new();
    tap.state().from_ns = u64::MAX;
    let mut sim = build::<P>(variant, setup, Duration::ZERO, seed, traced.then_some(&tap))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0c4a_54ed);
    let mut out = Vec::new();
    for _ in 0..trials {
        // Let the cluster settle under load, then crash the leader at a random moment.
        let settle = Duration::from_millis(800 + rng.gen_range(0..100));
        sim.run_until(sim.now() + settle);
        let deadline = sim.now() + CRASH_LIMIT;
        while leader(&sim).is_none() && sim.now() < deadline {
            sim.run_until(sim.now() + Duration::from_millis(10));
        }
        let Some((old, _)) = leader(&sim) else { continue };
        let committed_at_crash = max_committed(&sim);
        match fault {
            Fault::Crash => sim.crash(old),
            Fault::Isolate => sim.isolate(old),
        }
        let t0 = sim.now();
        let mut trial = Crash::default();
        let mut seen: BTreeSet<(NodeId, u64)> = BTreeSet::new();
        let deadline = t0 + CRASH_LIMIT;
        while sim.now() < deadline && sim.step() {
            let Some((id, l)) = leader_except(&sim, old) else { continue };
            if seen.insert((id, l)) {
                trial.elections += 1;
                if let Some((tail, gaps)) = sim.node(id).and_then(|n| n.log_shape()) {
                    trial.carried += tail;
                    trial.holes += gaps;
                }
            }
            if trial.new_leader_ms.is_none() {
                trial.new_leader_ms = Some((sim.now() - t0).as_secs_f64() * 1e3);
            }
            if sim.node(id).is_some_and(|n| n.committed() > committed_at_crash) {
                trial.commit_ms = Some((sim.now() - t0).as_secs_f64() * 1e3);
                break;
            }
        }
        if traced && !P::IS_RAFT {
            // Paxos: the new leaders' `elected` events in this trial.
            let mut state = tap.state();
            for (t, _, detail) in state.elected.drain(..) {
                if t >= t0.0 {
                    trial.holes += detail["noops"].as_u64().unwrap_or(0);
                    trial.carried += detail["adopted"].as_u64().unwrap_or(0);
                }
            }
        }
        out.push(trial);
        match fault {
            Fault::Crash => sim.restart(old),
            Fault::Isolate => sim.heal(),
        }
    }
    Ok(out)
}

/// Part 2, one variant.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverRow {
    pub variant: String,
    pub crashes: usize,
    /// Crashes without a commit within the limit (counted at the limit).
    pub above_limit: usize,
    pub new_leader_ms: Vec<f64>,
    pub commit_ms: Vec<f64>,
    pub elections_per_crash: f64,
}

/// Part 5, one variant.
#[derive(Clone, Debug, Serialize)]
pub struct HolesRow {
    pub variant: String,
    pub failovers: usize,
    /// Per failover: no-op slots (Paxos) or log gaps (Raft).
    pub holes: Vec<u64>,
    /// Per failover: adopted slots (Paxos) or uncommitted tail carried over (Raft).
    pub carried: Vec<u64>,
}

impl HolesRow {
    pub fn total_holes(&self) -> u64 {
        self.holes.iter().sum()
    }
    pub fn failovers_with_holes(&self) -> usize {
        self.holes.iter().filter(|&&h| h > 0).count()
    }
}

// ----- part 3: a flapping link -------------------------------------------------------------------

/// Part 3, one variant and seed.
#[derive(Clone, Debug, Serialize)]
pub struct FlapRow {
    pub variant: String,
    pub seed: u64,
    /// The link that flapped (the first leader, a follower).
    pub link: (u32, u32),
    pub committed: usize,
    /// Leaderships won while the link flapped.
    pub elections: u64,
    /// Terms (Raft) or ballot rounds (Paxos) the cluster advanced while the link flapped.
    pub rounds: u64,
    /// (time s, completions per second).
    pub throughput: Vec<(f64, f64)>,
}

/// Part 3: cut for `DOWN`, restore for `UP`, repeat.
pub const FLAP_DOWN: Duration = Duration::from_millis(400);
pub const FLAP_UP: Duration = Duration::from_millis(400);

fn flapping<P: Consensus>(variant: &Variant, seed: u64, span: Duration) -> anyhow::Result<FlapRow> {
    let mut sim = build::<P>(variant, &Setup::standard(), Duration::ZERO, seed, None)?;
    sim.run_until(Time::from_duration(WARMUP));
    let (l, _) = leader(&sim).ok_or_else(|| anyhow::anyhow!("{}: no leader after 1 s", variant.label))?;
    let f = NodeId(if l.0 == 1 { 2 } else { 1 });
    let rounds_before = max_round(&sim);
    let end = Time::from_duration(WARMUP + span);
    let mut seen: BTreeSet<(NodeId, u64)> = leader(&sim).into_iter().collect();
    let mut cut = false;
    let mut next_toggle = sim.now();
    while sim.now() < end {
        if sim.now() >= next_toggle {
            if cut {
                sim.heal_link(l, f);
            } else {
                sim.cut_link(l, f);
            }
            cut = !cut;
            next_toggle = sim.now() + if cut { FLAP_DOWN } else { FLAP_UP };
        }
        if !sim.step() {
            break;
        }
        if let Some(now) = leader(&sim) {
            seen.insert(now);
        }
    }
    let (_, times) = completions(sim.history());
    let from = WARMUP.as_secs_f64();
    let to = from + span.as_secs_f64();
    Ok(FlapRow {
        variant: variant.label.clone(),
        seed,
        link: (l.0, f.0),
        committed: times.iter().filter(|&&t| t >= from && t < to).count(),
        elections: seen.len() as u64 - 1,
        rounds: max_round(&sim) - rounds_before,
        throughput: throughput(&times, from, to, 0.1),
    })
}

// ----- part 4: duelling proposers ----------------------------------------------------------------

/// Part 4, one variant, all seeds pooled.
#[derive(Clone, Debug, Serialize)]
pub struct DuelRow {
    pub variant: String,
    pub committed: u64,
    /// Paxos: `campaign` events (phase 1 started); Raft: terms started (pre-votes that fail do not
    /// start one).
    pub campaigns: u64,
    /// Leaderships won (`elected` events).
    pub elections: u64,
    /// (time s, completions per second), the first seed.
    pub throughput: Vec<(f64, f64)>,
}

fn duel<P: Consensus>(variant: &Variant, seed: u64, span: Duration) -> anyhow::Result<DuelRow> {
    let setup = Setup { latency_ms: (1.0, 5.0), ..Setup::standard() };
    let sim = build::<P>(variant, &setup, Duration::ZERO, seed, None)?;
    let mut sim = sim;
    sim.run_until(Time::from_duration(span));
    let terms = max_round(&sim);
    let report = sim.stop_here(std::time::Instant::now());
    let events = |name: &str| report.summary.protocol_events.get(name).copied().unwrap_or(0);
    let (_, times) = completions(&report.history);
    Ok(DuelRow {
        variant: variant.label.clone(),
        committed: times.len() as u64,
        campaigns: match variant.kind {
            Kind::Paxos => events("campaign"),
            Kind::Raft => terms,
        },
        elections: events("elected"),
        throughput: throughput(&times, 0.0, span.as_secs_f64(), 0.1),
    })
}

// ----- running ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Job {
    Steady { variant: usize, seed: u64 },
    Failover { variant: usize, seed: u64 },
    Flap { variant: usize, seed: u64 },
    Duel { variant: usize, seed: u64 },
    Holes { variant: usize, seed: u64 },
}

enum Output {
    Steady(SteadySample),
    Crashes(Vec<Crash>),
    Flap(FlapRow),
    Duel(DuelRow),
}

impl ConsensusOptions {
    fn job_list(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let seeds = self.seed..self.seed + self.seeds;
        for (part, n) in [(0, 2), (1, 2), (2, 3), (3, 5), (4, 2)] {
            if !self.parts[part] {
                continue;
            }
            for variant in 0..n {
                for seed in seeds.clone() {
                    jobs.push(match part {
                        0 => Job::Steady { variant, seed },
                        1 => Job::Failover { variant, seed },
                        2 => Job::Flap { variant, seed },
                        3 => Job::Duel { variant, seed },
                        _ => Job::Holes { variant, seed },
                    });
                }
            }
        }
        jobs
    }

    /// Number of simulations; the progress callback is called once per simulation.
    pub fn jobs(&self) -> usize {
        self.job_list().len()
    }
}

fn describe(job: Job) -> String {
    match job {
        Job::Steady { variant, seed } => {
            format!("steady state {} seed {seed}", Variant::standard()[variant].label)
        }
        Job::Failover { variant, seed } => {
            format!("leader crash {} seed {seed}", Variant::standard()[variant].label)
        }
        Job::Flap { variant, seed } => {
            format!("flapping link {} seed {seed}", Variant::flapping()[variant].label)
        }
        Job::Duel { variant, seed } => format!("duel {} seed {seed}", Variant::duel()[variant].label),
        Job::Holes { variant, seed } => {
            format!("log holes {} seed {seed}", Variant::standard()[variant].label)
        }
    }
}

fn run_job(options: &ConsensusOptions, job: Job) -> anyhow::Result<Output> {
    macro_rules! dispatch {
        ($v:expr, $f:ident, $($arg:expr),*) => {
            match $v.kind {
                Kind::Raft => $f::<RaftKv>(&$v, $($arg),*),
                Kind::Paxos => $f::<PaxosKv>(&$v, $($arg),*),
            }
        };
    }
    Ok(match job {
        Job::Steady { variant, seed } => {
            let v = &Variant::standard()[variant];
            Output::Steady(dispatch!(v, steady, seed, options.steady())?)
        }
        Job::Failover { variant, seed } => {
            let v = &Variant::standard()[variant];
            Output::Crashes(dispatch!(v, crashes, &Setup::standard(), seed, options.crashes(), Fault::Crash)?)
        }
        Job::Holes { variant, seed } => {
            let v = &Variant::standard()[variant];
            Output::Crashes(dispatch!(
                v,
                crashes,
                &Setup::pipelined(),
                seed,
                options.crashes(),
                Fault::Isolate
            )?)
        }
        Job::Flap { variant, seed } => {
            let v = &Variant::flapping()[variant];
            Output::Flap(dispatch!(v, flapping, seed, options.flapping())?)
        }
        Job::Duel { variant, seed } => {
            let v = &Variant::duel()[variant];
            Output::Duel(dispatch!(v, duel, seed, options.duel())?)
        }
    })
}

/// Everything the lab measured.
#[derive(Clone, Debug, Serialize)]
pub struct ConsensusReport {
    pub seed: u64,
    pub seeds: u64,
    pub quick: bool,
    pub parts: [bool; PARTS],
    pub setup: Setup,
    pub pipelined: Setup,
    pub steady: Vec<SteadyRow>,
    pub failover: Vec<FailoverRow>,
    pub flapping: Vec<FlapRow>,
    pub duel: Vec<DuelRow>,
    pub holes: Vec<HolesRow>,
}

/// Run the lab; `progress` is called after each simulation with its description.
pub fn run_consensus(
    options: &ConsensusOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<ConsensusReport> {
    let jobs = options.job_list();
    let next = AtomicUsize::new(0);
    let outputs: Mutex<Vec<Option<anyhow::Result<Output>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = jobs.get(i) else { break };
                let out = run_job(options, job).map_err(|e| e.context(describe(job)));
                outputs.lock().expect("not poisoned")[i] = Some(out);
                progress(&describe(job));
            });
        }
    });
    let outputs = outputs.into_inner().expect("not poisoned");
    let mut steady: BTreeMap<usize, Vec<SteadySample>> = BTreeMap::new();
    let mut failover: BTreeMap<usize, Vec<Crash>> = BTreeMap::new();
    let mut holes: BTreeMap<usize, Vec<Crash>> = BTreeMap::new();
    let mut flaps = Vec::new();
    let mut duels: BTreeMap<usize, Vec<DuelRow>> = BTreeMap::new();
    for (job, out) in jobs.iter().zip(outputs) {
        match (*job, out.expect("every job ran")?) {
            (Job::Steady { variant, .. }, Output::Steady(s)) => steady.entry(variant).or_default().push(s),
            (Job::Failover { variant, .. }, Output::Crashes(c)) => {
                failover.entry(variant).or_default().extend(c)
            }
            (Job::Holes { variant, .. }, Output::Crashes(c)) => holes.entry(variant).or_default().extend(c),
            (Job::Flap { .. }, Output::Flap(f)) => flaps.push(f),
            (Job::Duel { variant, .. }, Output::Duel(d)) => duels.entry(variant).or_default().push(d),
            _ => unreachable!("each job has its own kind of output"),
        }
    }
    let standard = Variant::standard();
    let steady = steady
        .into_iter()
        .map(|(v, samples)| {
            let mut by_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for s in &samples {
                for (k, (m, b)) in &s.sends {
                    let e = by_kind.entry(k.clone()).or_default();
                    e.0 += m;
                    e.1 += b;
                }
            }
            let latencies: Vec<f64> = samples.iter().flat_map(|s| s.latencies.iter().copied()).collect();
            SteadyRow {
                variant: standard[v].label.clone(),
                committed: samples.iter().map(|s| s.committed).sum(),
                messages: by_kind.values().map(|x| x.0).sum(),
                bytes: by_kind.values().map(|x| x.1).sum(),
                by_kind,
                latency_p50_ms: percentile(&latencies, 0.5),
                latency_p99_ms: percentile(&latencies, 0.99),
                latencies_ms: latencies,
            }
        })
        .collect();
    let limit_ms = CRASH_LIMIT.as_secs_f64() * 1e3;
    let failover = failover
        .into_iter()
        .map(|(v, c)| FailoverRow {
            variant: standard[v].label.clone(),
            crashes: c.len(),
            above_limit: c.iter().filter(|t| t.commit_ms.is_none()).count(),
            new_leader_ms: c.iter().map(|t| t.new_leader_ms.unwrap_or(limit_ms)).collect(),
            commit_ms: c.iter().map(|t| t.commit_ms.unwrap_or(limit_ms)).collect(),
            elections_per_crash: mean(&c.iter().map(|t| t.elections as f64).collect::<Vec<_>>()),
        })
        .collect();
    let holes = holes
        .into_iter()
        .map(|(v, c)| HolesRow {
            variant: standard[v].label.clone(),
            failovers: c.len(),
            holes: c.iter().map(|t| t.holes).collect(),
            carried: c.iter().map(|t| t.carried).collect(),
        })
        .collect();
    let duel = duels
        .into_values()
        .map(|rows| DuelRow {
            variant: rows[0].variant.clone(),
            committed: rows.iter().map(|r| r.committed).sum(),
            campaigns: rows.iter().map(|r| r.campaigns).sum(),
            elections: rows.iter().map(|r| r.elections).sum(),
            throughput: rows[0].throughput.clone(),
        })
        .collect();
    Ok(ConsensusReport {
        seed: options.seed,
        seeds: options.seeds,
        quick: options.quick,
        parts: options.parts,
        setup: Setup::standard(),
        pipelined: Setup::pipelined(),
        steady,
        failover,
        flapping: flaps,
        duel,
        holes,
    })
}

// ----- the report -------------------------------------------------------------------------------

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.1}")
    }
}

impl ConsensusReport {
    /// Each part's table: (title, header, rows).
    pub fn tables(&self) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
        let mut out = Vec::new();
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if self.parts[0] {
            let mut rows = Vec::new();
            for r in &self.steady {
                let kinds = r
                    .by_kind
                    .iter()
                    .map(|(k, (m, b))| {
                        format!(
                            "{k} {:.2} ({:.0} B)",
                            *m as f64 / r.committed.max(1) as f64,
                            *b as f64 / (*m).max(1) as f64
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                rows.push(vec![
                    r.variant.clone(),
                    r.committed.to_string(),
                    format!("{:.2}", r.messages_per_command()),
                    format!("{:.0}", r.bytes_per_command()),
                    fmt_ms(r.latency_p50_ms),
                    fmt_ms(r.latency_p99_ms),
                    kinds,
                ]);
            }
            out.push((
                "Part 1 – steady state (5 nodes, same workload)".into(),
                h(&[
                    "protocol",
                    "committed",
                    "msgs/cmd",
                    "bytes/cmd",
                    "p50 ms",
                    "p99 ms",
                    "per kind: msgs/cmd (mean size)",
                ]),
                rows,
            ));
        }
        if self.parts[1] {
            let rows = self
                .failover
                .iter()
                .map(|r| {
                    vec![
                        r.variant.clone(),
                        r.crashes.to_string(),
                        fmt_ms(percentile(&r.new_leader_ms, 0.5)),
                        fmt_ms(percentile(&r.commit_ms, 0.5)),
                        fmt_ms(percentile(&r.commit_ms, 0.9)),
                        fmt_ms(percentile(&r.commit_ms, 1.0)),
                        format!("{:.2}", r.elections_per_crash),
                        r.above_limit.to_string(),
                    ]
                })
                .collect();
            out.push((
                "Part 2 – leader crash: time without a leader".into(),
                h(&[
                    "protocol",
                    "crashes",
                    "new leader p50 ms",
                    "commit p50 ms",
                    "commit p90 ms",
                    "commit max ms",
                    "leaderships/crash",
                    "above 5 s",
                ]),
                rows,
            ));
        }
        if self.parts[2] {
            let mut pooled: BTreeMap<String, (usize, u64, u64, usize)> = BTreeMap::new();
            let order: Vec<String> = Variant::flapping().into_iter().map(|v| v.label).collect();
            for r in &self.flapping {
                let e = pooled.entry(r.variant.clone()).or_default();
                e.0 += r.committed;
                e.1 += r.elections;
                e.2 += r.rounds;
                e.3 += 1;
            }
            let rows = order
                .iter()
                .filter_map(|v| pooled.get(v).map(|p| (v, p)))
                .map(|(v, &(c, e, r, n))| {
                    vec![
                        v.clone(),
                        n.to_string(),
                        format!("{:.0}", c as f64 / n as f64),
                        format!("{:.1}", e as f64 / n as f64),
                        format!("{:.1}", r as f64 / n as f64),
                    ]
                })
                .collect();
            out.push((
                "Part 3 – a flapping link (leader ↔ one follower, 400 ms cut / 400 ms up)".into(),
                h(&[
                    "protocol",
                    "runs",
                    "committed/run",
                    "leaderships won/run",
                    "terms or ballot rounds/run",
                ]),
                rows,
            ));
        }
        if self.parts[3] {
            let rows = self
                .duel
                .iter()
                .map(|r| {
                    vec![
                        r.variant.clone(),
                        r.committed.to_string(),
                        r.campaigns.to_string(),
                        r.elections.to_string(),
                    ]
                })
                .collect();
            out.push((
                "Part 4 – duelling proposers (near-equal timeouts), all seeds".into(),
                h(&["variant", "ops committed", "campaigns (Raft: terms)", "leaderships won"]),
                rows,
            ));
        }
        if self.parts[4] {
            let rows = self
                .holes
                .iter()
                .map(|r| {
                    vec![
                        r.variant.clone(),
                        r.failovers.to_string(),
                        r.total_holes().to_string(),
                        r.failovers_with_holes().to_string(),
                        r.holes.iter().max().copied().unwrap_or(0).to_string(),
                        r.carried.iter().sum::<u64>().to_string(),
                    ]
                })
                .collect();
            out.push((
                "Part 5 – log holes after failover (leader isolated under pipelined load, 5 % loss)".into(),
                h(&[
                    "protocol",
                    "failovers",
                    "holes filled (no-ops)",
                    "failovers with holes",
                    "max per failover",
                    "carried over (Paxos: adopted; Raft: uncommitted tail)",
                ]),
                rows,
            ));
        }
        out
    }

    /// Every table as text.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (title, header, rows) in self.tables() {
            let _ = writeln!(out, "\n{title}");
            let width: Vec<usize> = (0..header.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([header[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&width)
                    .enumerate()
                    .map(|(i, (c, &w))| {
                        let pad = w - c.chars().count();
                        if i == 0 || i + 1 == cells.len() && i > 4 {
                            format!("{c}{}", " ".repeat(pad))
                        } else {
                            format!("{}{c}", " ".repeat(pad))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let _ = writeln!(out, "{}", line(&header).trim_end());
            for r in &rows {
                let _ = writeln!(out, "{}", line(r).trim_end());
            }
        }
        out
    }
}

/// Write `report.json`, one plot per part (SVG and PNG) and `index.html` into `dir`.
pub fn write_report(report: &ConsensusReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);
    let mut plots: Vec<(&str, &str)> = Vec::new();
    let push = |stem: &str, written: &mut Vec<PathBuf>| {
        written.push(dir.join(format!("{stem}.svg")));
        written.push(dir.join(format!("{stem}.png")));
    };
    let max_of = |c: &[Curve]| c.iter().flat_map(|c| c.values.iter().copied()).fold(1.0, f64::max);
    if report.parts[0] && !report.steady.is_empty() {
        let curves: Vec<Curve> = report
            .steady
            .iter()
            .map(|r| Curve { label: r.variant.clone(), values: r.latencies_ms.clone() })
            .collect();
        let chart = CdfChart {
            title: "Part 1: commit latency, same workload",
            x_label: "latency (ms)",
            log_x: false,
            x_range: (0.0, max_of(&curves) * 1.05),
        };
        plot::cdf(&dir.join("part1-latency"), &chart, &curves)?;
        push("part1-latency", &mut written);
        plots.push(("part1-latency.svg", "Part 1: commit latency CDF"));
    }
    if report.parts[1] && !report.failover.is_empty() {
        let curves: Vec<Curve> = report
            .failover
            .iter()
            .map(|r| Curve { label: r.variant.clone(), values: r.commit_ms.clone() })
            .collect();
        let chart = CdfChart {
            title: "Part 2: leader crash → first commit by a new leader",
            x_label: "time without a committing leader (ms)",
            log_x: false,
            x_range: (0.0, max_of(&curves) * 1.05),
        };
        plot::cdf(&dir.join("part2-failover"), &chart, &curves)?;
        push("part2-failover", &mut written);
        plots.push(("part2-failover.svg", "Part 2: downtime CDF"));
    }
    if report.parts[2] && !report.flapping.is_empty() {
        let first = report.flapping.iter().map(|r| r.seed).min().unwrap_or(report.seed);
        let series: Vec<StyledSeries> = report
            .flapping
            .iter()
            .filter(|r| r.seed == first)
            .enumerate()
            .map(|(i, r)| StyledSeries {
                label: r.variant.clone(),
                points: r.throughput.clone(),
                style: [LineStyle::Solid, LineStyle::Dashed, LineStyle::Dotted][i % 3],
                color: i,
            })
            .collect();
        xy(
            &dir.join("part3-flapping"),
            "Part 3: throughput while a leader's link flaps (first seed)",
            &series,
        )?;
        push("part3-flapping", &mut written);
        plots.push(("part3-flapping.svg", "Part 3: throughput over time"));
    }
    if report.parts[3] && !report.duel.is_empty() {
        let series: Vec<StyledSeries> = report
            .duel
            .iter()
            .enumerate()
            .map(|(i, r)| StyledSeries {
                label: r.variant.clone(),
                points: r.throughput.clone(),
                style: [LineStyle::Solid, LineStyle::Dashed, LineStyle::Dotted][i % 3],
                color: i,
            })
            .collect();
        xy(&dir.join("part4-duel"), "Part 4: throughput with near-equal timeouts (first seed)", &series)?;
        push("part4-duel", &mut written);
        plots.push(("part4-duel.svg", "Part 4: throughput over time"));
    }
    if report.parts[4] && !report.holes.is_empty() {
        let curves: Vec<Curve> = report
            .holes
            .iter()
            .map(|r| Curve { label: r.variant.clone(), values: r.holes.iter().map(|&h| h as f64).collect() })
            .collect();
        let chart = CdfChart {
            title: "Part 5: holes a new leader fills with no-ops, per failover",
            x_label: "slots filled with no-ops (Raft: gaps in the log)",
            log_x: false,
            x_range: (-0.5, max_of(&curves) + 1.0),
        };
        plot::cdf(&dir.join("part5-holes"), &chart, &curves)?;
        push("part5-holes", &mut written);
        plots.push(("part5-holes.svg", "Part 5: holes per failover"));
    }
    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report, &plots))?;
    written.push(html);
    Ok(written)
}

fn xy(stem: &Path, title: &str, series: &[StyledSeries]) -> anyhow::Result<()> {
    let x_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.1, f64::max);
    let x_min = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(x_max, f64::min);
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0, f64::max);
    let chart = XyChart {
        title,
        x_label: "virtual time (s)",
        y_label: "commands committed per second",
        log_x: false,
        x_range: (x_min, x_max),
        y_range: (0.0, y_max * 1.1),
    };
    plot::xy_marked(stem, &chart, false, series, &[])
}

fn html_report(report: &ConsensusReport, plots: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (title, header, rows) in report.tables() {
        let _ = writeln!(body, "<h2>{}</h2>\n<table><tr>", crate::html_escape(&title));
        for h in &header {
            let _ = write!(body, "<th>{}</th>", crate::html_escape(h));
        }
        body.push_str("</tr>\n");
        for r in &rows {
            body.push_str("<tr>");
            for c in r {
                let _ = write!(body, "<td>{}</td>", crate::html_escape(c));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
    }
    for (file, alt) in plots {
        let _ = writeln!(body, "<h3>{alt}</h3><img src=\"{file}\" alt=\"{alt}\">");
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Raft and Multi-Paxos – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:last-child{{text-align:left}}
img{{max-width:100%}}</style></head>
<body>
<h1>Raft and Multi-Paxos side by side</h1>
<p>Five nodes in Concord's simulator; one-way latency uniform {lmin}–{lmax} ms, disk sync {disk} µs,
{clients} closed-loop clients on {keys} keys (80 % writes, 20 % CAS; part 4 uses 1–5 ms latency);
first seed {seed}, {seeds} seed(s) per variant{quick}. Bytes are postcard-encoded message sizes (the
peer wire encoding of Concord's server, without the frame length).</p>
{body}
<p>See <code>docs/labs/consensus.md</code> for the guide.</p>
</body></html>
"#,
        lmin = report.setup.latency_ms.0,
        lmax = report.setup.latency_ms.1,
        disk = report.setup.disk_sync_us,
        clients = report.setup.clients,
        keys = report.setup.keys,
        seed = report.seed,
        seeds = report.seeds,
        quick = if report.quick { " (--quick)" } else { "" },
    )
}

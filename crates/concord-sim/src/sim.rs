//! The discrete-event simulator: one thread, one event queue, seeded randomness.
//!
//! ```text
//!   queue: (true time, sequence number) → event        nodes: process + disk + clock + timers
//!   loop: pop the earliest event; advance time to it; hand it to its node (or client);
//!         carry out the effects the node returns (sends become future deliveries, timers
//!         future firings, syncs future completions); check invariants.
//! ```
//!
//! Determinism: every random choice comes from ChaCha generators seeded from the run's seed (one
//! stream each for the network, the protocols, the workload and the nemesis, so that changing the
//! workload does not reshuffle the network); ties in time are broken by insertion order; nothing
//! iterates a `HashMap`. The same scenario and seed therefore give a byte-identical trace.
//!
//! Faults (the nemesis) are in `sim/nemesis.rs`: this file is the loop that runs them.
//!
//! Time: the queue runs on *true* virtual time; each node sees its own local clock (offset and
//! drift, see [`crate::clock`]), and its timers are set in local time.

use crate::clock::Clock;
use crate::disk::SimDisk;
use crate::network::{client_latency, Fate, Network};
use crate::protocol::{Invariant, ReplicaState, SimProtocol};
use crate::scenario::{Check, LoopMode, Scenario};
use crate::summary::Summary;
use crate::trace::Trace;
use crate::workload::Workload;
use concord_core::history::{EventType, History, OpFn};
use concord_core::{Completion, Effect, Io, Message, NodeId, Process, RequestId, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An application as the client: requests it submits, answers it collects (the labs' apps).
pub mod driven;
/// Driving a run by hand (`concord sim --interactive`): step, drop a message, cut a link, reseed.
pub mod interactive;
/// The faults: the fixed schedule, the random nemesis, triggers, and the primitives they use.
mod nemesis;

use nemesis::Undo;

/// How to run one simulation.
#[derive(Default)]
pub struct RunOptions {
    pub seed: u64,
    /// Stop at this virtual time instead of the scenario's `run.duration`.
    pub until: Option<Duration>,
    /// Write the trace (JSON Lines) here.
    pub trace: Option<Box<dyn Write + Send>>,
    /// Build trace lines even without a writer, to hash them (determinism checks).
    pub hash_trace: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub summary: Summary,
    /// Every check that failed, one line each. Empty: the run passed.
    pub violations: Vec<String>,
    pub history: History,
    /// Hash of the trace bytes (when tracing or hashing).
    pub trace_hash: Option<u64>,
    /// Each live replica's data at the end (for protocols that expose it).
    pub replicas: Vec<(NodeId, ReplicaState)>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A safety violation: a broken online invariant or a history that is not linearizable. A run
    /// that only stalled (a "progress" failure) or whose check was undecided has none – the verdict
    /// a deliberate bug must earn to count as caught.
    pub fn safety_violated(&self) -> bool {
        self.violations.iter().any(|v| {
            v.starts_with("invariant violated")
                || (v.starts_with("linearizability") && !v.starts_with("linearizability: undecided"))
        })
    }
}

enum Event<P: Process> {
    Start,
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: P::Message,
        id: u64,
    },
    Timer {
        node: NodeId,
        timer: P::Timer,
        generation: u64,
    },
    Request {
        node: NodeId,
        request: RequestId,
        req: P::Request,
    },
    Reply {
        node: NodeId,
        request: RequestId,
        response: P::Response,
    },
    ClientTimeout {
        request: RequestId,
    },
    ClientNext {
        client: u32,
    },
    OpenArrival,
    SyncDone {
        node: NodeId,
        incarnation: u64,
        upto: u64,
    },
    /// A node's message to itself (see `concord_core::Effect::Send`), for this incarnation only.
    Loopback {
        node: NodeId,
        incarnation: u64,
        msg: P::Message,
    },
    Fault(usize),
    RandomFault,
    /// `[[nemesis.trigger]]` number `trigger` fires at `node`.
    Triggered {
        trigger: usize,
        node: NodeId,
    },
    Undo(Undo),
    HealAll,
}

impl<P: Process> Event<P> {
    /// The node an event is handled by (held while that node is paused).
    fn node(&self) -> Option<NodeId> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::Timer { node, .. }
            | Event::Request { node, .. }
            | Event::SyncDone { node, .. }
            | Event::Loopback { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Node<P: Process> {
    id: NodeId,
    /// `None` while crashed.
    process: Option<P>,
    /// Bumped at every crash: completions from an earlier life are ignored.
    incarnation: u64,
    paused: bool,
    /// Events that arrived while paused, replayed in order on resume.
    held: Vec<Event<P>>,
    disk: SimDisk,
    clock: Clock,
    /// Each armed timer (see [`Armed`]).
    timers: BTreeMap<P::Timer, Armed>,
    /// A sync is in flight: I/O effects wait in `backlog`, in the order the node emitted them.
    syncing: bool,
    backlog: VecDeque<Effect<P>>,
}

/// An armed timer: its firing, and the queue entry that stands for it.
///
/// Protocols re-arm timers far more often than they let them fire – a follower resets its
/// election timer at every append – and the queue cannot take an entry out. So a re-arming whose
/// firing is no earlier than the entry already queued for the timer queues nothing: when that
/// entry comes up, it is found to stand for an older arming and queues the current one, under
/// the time and sequence number the current one got when it was armed. The order in which timers
/// fire is therefore exactly what one entry per arming would give, with a queue a fraction of the
/// size (stale entries made up a quarter of the events of a Raft run under load).
#[derive(Clone, Copy, Debug)]
struct Armed {
    generation: u64,
    fire: Time,
    seq: u64,
    /// The generation and time of the entry queued for this timer (at or before `fire`).
    queued: (u64, Time),
}

/// One simulation run of protocol `P`.
pub struct Simulation<P: SimProtocol> {
    scenario: Arc<Scenario<P::Config>>,
    seed: u64,
    end: Time,
    now: Time,
    queue: BinaryHeap<Reverse<(Time, u64, u32)>>,
    slab: Vec<Option<Event<P>>>,
    free: Vec<u32>,
    next_seq: u64,
    nodes: Vec<Node<P>>,
    cluster: Vec<NodeId>,
    network: Network,
    workload: Workload,
    history: History,
    trace: Option<Trace>,
    /// Protocols emit their detailed events: a trace is recorded or a nemesis trigger watches.
    events_wanted: bool,
    summary: Summary,
    violations: Vec<String>,
    invariant: Option<Box<dyn Invariant<P>>>,
    effects: Vec<Effect<P>>,
    next_msg_id: u64,
    next_timer_generation: u64,
    healed: bool,
    stopped: bool,
    rng_net: ChaCha8Rng,
    rng_proto: ChaCha8Rng,
    rng_work: ChaCha8Rng,
    rng_nemesis: ChaCha8Rng,
    /// Answers to requests an application submitted ([`driven`]), not yet taken.
    answers: Vec<driven::Answer<P::Response>>,
    /// Per workload client, its requests' timeouts (request, deadline, sequence number), oldest
    /// first; the oldest has a queue entry (see `client_invoke`).
    client_timeouts: Vec<VecDeque<(RequestId, Time, u64)>>,
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl<P: SimProtocol> Simulation<P> {
    pub fn new(scenario: Arc<Scenario<P::Config>>, options: RunOptions) -> Self {
        let seed = options.seed;
        let n = scenario.run.nodes.0;
        let mut rng_nemesis = stream(seed, 4);
        let mut rng_work = stream(seed, 3);
        let nodes = (1..=n)
            .map(|id| {
                let c = &scenario.clock;
                let offset = Duration::from_nanos(rng_nemesis.gen_range(0..=c.max_offset.as_nanos() as u64));
                let drift = if c.max_drift_ppm > 0.0 {
                    rng_nemesis.gen_range(-c.max_drift_ppm..=c.max_drift_ppm)
                } else {
                    0.0
                };
                Node {
                    id: NodeId(id),
                    process: None,
                    incarnation: 0,
                    paused: false,
                    held: Vec::new(),
                    disk: if scenario.disk.lying_fsync { SimDisk::lying() } else { SimDisk::default() },
                    clock: Clock::new(offset, drift),
                    timers: BTreeMap::new(),
                    syncing: false,
                    backlog: VecDeque::new(),
                }
            })
            .collect();
        let duration = options.until.unwrap_or(scenario.run.duration);
        let trace = (options.trace.is_some() || options.hash_trace).then(|| Trace::new(options.trace));
        let events_wanted = trace.is_some() || !scenario.nemesis.trigger.is_empty();
        let (_, config) = scenario.protocol();
        let invariant =
            if scenario.run.checks.contains(&Check::Invariants) { P::invariants(config) } else { None };
        let workload = Workload::new(&scenario.workload, n, &mut rng_work);
        let client_timeouts = (0..workload.clients()).map(|_| VecDeque::new()).collect();
        Simulation {
            network: Network::new(&scenario.network, scenario.topology.as_ref(), n),
            workload,
            cluster: (1..=n).map(NodeId).collect(),
            scenario,
            seed,
            end: Time::from_duration(duration),
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            nodes,
            history: History::default(),
            events_wanted,
            trace,
            summary: Summary::default(),
            violations: Vec::new(),
            invariant,
            effects: Vec::new(),
            next_msg_id: 0,
            next_timer_generation: 0,
            healed: false,
            stopped: false,
            rng_net: stream(seed, 1),
            rng_proto: stream(seed, 2),
            rng_work,
            rng_nemesis,
            answers: Vec::new(),
            client_timeouts,
        }
    }

    // ----- the queue -------------------------------------------------------------------------

    fn schedule(&mut self, at: Time, event: Event<P>) {
        let seq = self.take_seq();
        self.enqueue(at, seq, event);
    }

    /// The next sequence number: an event's place among those queued for the same time.
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Queue `event` under a sequence number taken earlier (ties in time go by sequence number).
    fn enqueue(&mut self, at: Time, seq: u64, event: Event<P>) {
        // Virtual time never runs backwards: an event in the past would be processed out of order.
        debug_assert!(at >= self.now, "event scheduled at {at}, before now ({})", self.now);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slab.push(Some(event));
                (self.slab.len() - 1) as u32
            }
        };
        self.queue.push(Reverse((at, seq, slot)));
    }

    /// The current true (virtual) time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Node `id`'s process, if it is up.
    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.nodes.get((id.0 as usize).wrapping_sub(1))?.process.as_ref()
    }

    /// Every node, `None` for crashed ones.
    pub fn nodes(&self) -> Vec<(NodeId, Option<&P>)> {
        self.nodes.iter().map(|n| (n.id, n.process.as_ref())).collect()
    }

    /// Hand `node` a request now, from outside any workload (tests and interactive tools).
    /// The reply is discarded; look at the node's state with [`Simulation::node`].
    pub fn inject(&mut self, node: NodeId, req: P::Request) {
        let request = RequestId { client: concord_core::ClientId(u32::MAX), seq: self.next_seq };
        self.schedule(self.now, Event::Request { node, request, req });
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Add a line to the trace; `event` gets the current time in nanoseconds (only called when
    /// tracing, so building the JSON costs nothing otherwise).
    fn record(&mut self, event: impl FnOnce(u64) -> serde_json::Value) {
        if let Some(trace) = &mut self.trace {
            trace.record(&event(self.now.0));
        }
    }

    /// Process one event. Returns false when the run is over.
    pub fn step(&mut self) -> bool {
        if self.stopped {
            return false;
        }
        let Some(Reverse((at, seq, slot))) = self.queue.pop() else { return false };
        if at > self.end {
            // Put it back, in its place: a later `run_until` may extend the run.
            self.queue.push(Reverse((at, seq, slot)));
            return false;
        }
        let event = self.slab[slot as usize].take().expect("queued events are present");
        self.free.push(slot);
        self.now = at;
        self.summary.events += 1;
        if self.summary.events >= self.scenario.run.max_events {
            self.violations.push(format!("stopped after {} events (run.max_events)", self.summary.events));
            self.stopped = true;
        }
        let touched = self.handle(event);
        if touched {
            self.check_invariants();
        }
        true
    }

    /// Run until virtual time `until` (at most the scenario's end).
    pub fn run_until(&mut self, until: Time) {
        let end = self.end;
        self.end = until.min(end);
        while self.step() {}
        self.end = end;
        self.now = self.now.max(until.min(end));
    }

    /// Schedule the run's opening events. Called by [`Simulation::run`]; tests that drive a
    /// simulation step by step call it once first.
    pub fn start(&mut self) {
        if let Some(topology) = &self.scenario.topology {
            // Where each node stands, first, so that a trace reader can label the nodes.
            let nodes = topology.describe();
            self.record(|t| json!({"t": t, "ev": "topology", "nodes": nodes}));
        }
        self.schedule(Time::ZERO, Event::Start);
        self.schedule_nemesis();
        let scenario = Arc::clone(&self.scenario);
        if self.workload.clients() > 0 {
            let start = Time::from_duration(scenario.workload.start);
            match self.workload.mode() {
                LoopMode::Closed => {
                    for client in 0..self.workload.clients() {
                        // A little jitter so clients do not move in lockstep.
                        let jitter = Duration::from_micros(self.rng_work.gen_range(0..1_000));
                        self.schedule(start + jitter, Event::ClientNext { client });
                    }
                }
                LoopMode::Open => {
                    let first = start + self.arrival_gap();
                    self.schedule(first, Event::OpenArrival);
                }
            }
        }
    }

    /// Run the whole scenario and judge it.
    pub fn run(self) -> RunReport {
        self.run_observed(|_| {})
    }

    /// [`Simulation::run`], calling `observe` after every step: measurements that look at the
    /// nodes as the run goes (a crashed node's counters are gone by the end).
    pub fn run_observed(mut self, mut observe: impl FnMut(&Self)) -> RunReport {
        let wall = Instant::now();
        self.start();
        while self.step() {
            observe(&self);
        }
        self.now = self.now.max(self.end);
        self.finish(wall.elapsed())
    }

    fn arrival_gap(&mut self) -> Duration {
        let rate = self.scenario.workload.rate_per_s;
        Duration::from_secs_f64(Exp::new(rate).map(|d| d.sample(&mut self.rng_work)).unwrap_or(1.0))
    }

    // ----- events ----------------------------------------------------------------------------

    /// Handle one event; returns whether a node's state may have changed.
    fn handle(&mut self, event: Event<P>) -> bool {
        if let Event::Timer { node, timer, generation } = &event {
            if !self.timer_is_due(*node, timer, *generation) {
                return false;
            }
        }
        if let Some(node) = event.node() {
            let slot = &mut self.nodes[node.0 as usize - 1];
            if slot.paused && slot.process.is_some() {
                slot.held.push(event);
                return false;
            }
        }
        match event {
            Event::Start => {
                for id in self.cluster.clone() {
                    self.boot(id);
                }
                true
            }
            Event::Deliver { from, to, msg, id } => self.deliver(from, to, msg, id),
            Event::Timer { node, timer, .. } => {
                // Due (checked above), and the node is up: a crash clears its timers.
                self.nodes[node.0 as usize - 1].timers.remove(&timer);
                self.record(
                    |t| json!({"t": t, "ev": "timer", "node": node.0, "timer": format!("{timer:?}")}),
                );
                self.with_process(node, |p, io| p.on_timer(io, timer))
            }
            Event::Request { node, request, req } => {
                if self.nodes[node.0 as usize - 1].process.is_none() {
                    self.record(|t| json!({"t": t, "ev": "request-lost", "node": node.0, "request": request.to_string()}));
                    return false;
                }
                self.record(|t| json!({"t": t, "ev": "request", "node": node.0, "request": request.to_string(), "req": req}));
                self.with_process(node, |p, io| p.on_request(io, request, req))
            }
            Event::Reply { node, request, response } => {
                self.client_reply(node, request, response);
                false
            }
            Event::ClientTimeout { request } => {
                self.client_timeout(request);
                false
            }
            Event::ClientNext { client } => {
                self.client_invoke(client);
                false
            }
            Event::OpenArrival => {
                if self.now < Time::from_duration(self.scenario.workload_stop()) {
                    let client = self.rng_work.gen_range(0..self.workload.clients());
                    self.client_invoke(client);
                    let next = self.now + self.arrival_gap();
                    self.schedule(next, Event::OpenArrival);
                }
                false
            }
            Event::SyncDone { node, incarnation, upto } => {
                let slot = &mut self.nodes[node.0 as usize - 1];
                if slot.incarnation != incarnation || slot.process.is_none() {
                    return false; // the node crashed while the sync was in flight
                }
                slot.disk.complete_sync(upto);
                slot.syncing = false;
                self.record(|t| json!({"t": t, "ev": "synced", "node": node.0}));
                self.drain_backlog(node);
                true
            }
            Event::Loopback { node, incarnation, msg } => {
                if self.nodes[node.0 as usize - 1].incarnation != incarnation {
                    return false; // written to itself before a crash: that life is gone
                }
                self.with_process(node, |p, io| p.on_message(io, node, msg))
            }
            Event::Fault(i) => {
                self.scheduled_fault(i);
                true
            }
            Event::RandomFault => {
                self.random_fault();
                true
            }
            Event::Triggered { trigger, node } => {
                self.triggered_fault(trigger, node);
                true
            }
            Event::Undo(undo) => {
                if !self.healed {
                    self.undo(undo);
                }
                true
            }
            Event::HealAll => {
                self.heal_all();
                true
            }
        }
    }

    /// Whether a timer's queue entry that came up is its current arming's firing. An entry for
    /// an earlier arming queues the current one instead (see [`Armed`]); one for a cancelled or
    /// crashed timer is dropped.
    fn timer_is_due(&mut self, node: NodeId, timer: &P::Timer, generation: u64) -> bool {
        let slot = &mut self.nodes[node.0 as usize - 1];
        let Some(armed) = slot.timers.get_mut(timer) else { return false };
        if armed.queued.0 != generation {
            return false; // superseded by an earlier entry queued since
        }
        if armed.generation == generation {
            return true;
        }
        armed.queued = (armed.generation, armed.fire);
        let (at, seq, generation) = (armed.fire, armed.seq, armed.generation);
        self.enqueue(at, seq, Event::Timer { node, timer: *timer, generation });
        false
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: P::Message, id: u64) -> bool {
        let kind = msg.kind();
        let why = if self.nodes[to.0 as usize - 1].process.is_none() {
            Some("down")
        } else if self.network.is_blocked(from, to) {
            Some("partition")
        } else {
            None
        };
        if let Some(why) = why {
            self.summary.message(kind).dropped += 1;
            *self.summary.drops.entry(why).or_default() += 1;
            self.record(|t| json!({"t": t, "ev": "drop", "from": from.0, "to": to.0, "kind": kind, "id": id, "why": why}));
            return false;
        }
        self.summary.message(kind).delivered += 1;
        self.record(|t| json!({"t": t, "ev": "deliver", "from": from.0, "to": to.0, "kind": kind, "id": id}));
        self.with_process(to, |p, io| p.on_message(io, from, msg))
    }

    /// Call the node's process with a fresh `Io`, then carry out its effects.
    fn with_process(&mut self, node: NodeId, f: impl FnOnce(&mut P, &mut Io<'_, P>)) -> bool {
        let mut effects = std::mem::take(&mut self.effects);
        let slot = &mut self.nodes[node.0 as usize - 1];
        let Some(process) = slot.process.as_mut() else {
            self.effects = effects;
            return false;
        };
        let local = slot.clock.local(self.now);
        let mut io = Io::new(node, local, self.events_wanted, &mut self.rng_proto, &mut effects);
        f(process, &mut io);
        self.carry_out(node, &mut effects);
        // Keep the buffer's allocation for the next step (this is the simulator's hot path).
        self.effects = effects;
        true
    }

    /// Carry out a step's effects, leaving `batch` empty.
    ///
    /// Timers and protocol events take effect at once: they are the node's own bookkeeping. I/O –
    /// sends, writes, syncs, replies – forms one ordered pipeline per node, as in a real driver's
    /// event loop: while a sync is in flight, every later I/O effect waits behind it, *including
    /// those of later steps*. So "persist, sync, then send" holds across steps, and writes reach
    /// the disk in the order the node issued them.
    fn carry_out(&mut self, node: NodeId, batch: &mut Vec<Effect<P>>) {
        for effect in batch.drain(..) {
            match effect {
                Effect::SetTimer { timer, after } => {
                    let generation = self.next_timer_generation;
                    self.next_timer_generation += 1;
                    let seq = self.take_seq();
                    let slot = &mut self.nodes[node.0 as usize - 1];
                    let fire = self.now + slot.clock.true_duration(after);
                    let queued = match slot.timers.get(&timer) {
                        Some(armed) if armed.queued.1 <= fire => armed.queued,
                        _ => (generation, fire),
                    };
                    let queue_now = queued.0 == generation;
                    slot.timers.insert(timer, Armed { generation, fire, seq, queued });
                    if queue_now {
                        self.enqueue(fire, seq, Event::Timer { node, timer, generation });
                    }
                    // The deadline in true time, so a viewer can draw a timer's progress.
                    self.record(|t| json!({"t": t, "ev": "timer-set", "node": node.0, "timer": format!("{timer:?}"), "at": fire.0}));
                }
                Effect::CancelTimer { timer } => {
                    self.nodes[node.0 as usize - 1].timers.remove(&timer);
                }
                Effect::Event(event) => {
                    *self.summary.protocol_events.entry(event.name).or_default() += 1;
                    self.arm_triggers(node, &event);
                    self.record(|t| json!({"t": t, "ev": "protocol", "node": node.0, "name": event.name, "detail": event.detail}));
                }
                // Depends on nothing unsynced: out at once, past the syncs in flight.
                now @ (Effect::SendNow { .. } | Effect::ReplyNow { .. }) => self.do_io(node, now),
                io => {
                    let slot = &mut self.nodes[node.0 as usize - 1];
                    if slot.syncing {
                        slot.backlog.push_back(io);
                    } else {
                        self.do_io(node, io);
                    }
                }
            }
        }
    }

    /// Carry out queued I/O after a sync completed, until the queue is empty or another sync
    /// blocks it.
    fn drain_backlog(&mut self, node: NodeId) {
        loop {
            let slot = &mut self.nodes[node.0 as usize - 1];
            if slot.syncing {
                return;
            }
            let Some(io) = slot.backlog.pop_front() else { return };
            self.do_io(node, io);
        }
    }

    /// One I/O effect, now. A sync with latency blocks the node's pipeline until it completes.
    fn do_io(&mut self, node: NodeId, effect: Effect<P>) {
        match effect {
            Effect::Send { to, msg } if to == node => {
                let incarnation = self.nodes[node.0 as usize - 1].incarnation;
                self.schedule(self.now, Event::Loopback { node, incarnation, msg });
            }
            Effect::Send { to, msg } | Effect::SendNow { to, msg } => self.send(node, to, msg),
            Effect::Persist(op) => self.nodes[node.0 as usize - 1].disk.write(op),
            Effect::Sync => {
                let latency = self.scenario.disk.sync_latency.sample(&mut self.rng_net);
                let slot = &mut self.nodes[node.0 as usize - 1];
                let upto = slot.disk.begin_sync();
                if latency.is_zero() {
                    slot.disk.complete_sync(upto);
                } else {
                    slot.syncing = true;
                    let incarnation = slot.incarnation;
                    self.schedule(self.now + latency, Event::SyncDone { node, incarnation, upto });
                }
            }
            Effect::Reply { request, response } | Effect::ReplyNow { request, response } => {
                if let Some(invariant) = self.invariant.as_mut() {
                    invariant.on_reply(node, &response);
                }
                let latency = client_latency(&self.scenario.network, &mut self.rng_net);
                self.schedule(self.now + latency, Event::Reply { node, request, response });
            }
            Effect::SetTimer { .. } | Effect::CancelTimer { .. } | Effect::Event(_) => {
                unreachable!("not I/O: handled in carry_out")
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Message) {
        let kind = msg.kind();
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        self.summary.message(kind).sent += 1;
        if self.trace.is_some() {
            let body = serde_json::to_value(&msg).unwrap_or(serde_json::Value::Null);
            self.record(|t| json!({"t": t, "ev": "send", "from": from.0, "to": to.0, "kind": kind, "id": id, "msg": body}));
        }
        match self.network.send(from, to, kind, self.now, &mut self.rng_net) {
            Fate::Dropped(why) => {
                self.summary.message(kind).dropped += 1;
                *self.summary.drops.entry(why).or_default() += 1;
                self.record(|t| json!({"t": t, "ev": "drop", "from": from.0, "to": to.0, "kind": kind, "id": id, "why": why}));
            }
            Fate::Arrives(first, copy) => {
                if let Some(second) = copy {
                    self.summary.message(kind).duplicated += 1;
                    self.record(|t| json!({"t": t, "ev": "duplicate", "from": from.0, "to": to.0, "kind": kind, "id": id}));
                    self.schedule(second, Event::Deliver { from, to, msg: msg.clone(), id });
                }
                self.schedule(first, Event::Deliver { from, to, msg, id });
            }
        }
    }

    // ----- clients ---------------------------------------------------------------------------

    fn client_invoke(&mut self, client: u32) {
        if self.now >= Time::from_duration(self.scenario.workload_stop()) {
            return;
        }
        let (node, request, op) =
            self.workload.invoke(client, self.now, &mut self.history, &mut self.rng_work);
        self.summary.ops.invoked += 1;
        let (_, config) = self.scenario.protocol();
        let node = P::route(config, request, node, &op);
        let req = P::workload_request(config, request.client, request.seq, &op);
        let latency = client_latency(&self.scenario.network, &mut self.rng_net);
        self.record(|t| json!({"t": t, "ev": "invoke", "client": client, "node": node.0, "request": request.to_string(), "op": op.to_string()}));
        self.schedule(self.now + latency, Event::Request { node, request, req });
        // One queue entry per client, for its oldest request. Every request waits the same
        // timeout, so a client's requests time out in the order it sent them; most are answered
        // first, and their entries were a tenth of a Raft run's events. When the oldest's entry
        // comes up, the next one's is queued under the sequence number it gets here: the same
        // order as one entry per request.
        let timeout = self.now + self.scenario.workload.timeout;
        let seq = self.take_seq();
        let timeouts = &mut self.client_timeouts[client as usize];
        timeouts.push_back((request, timeout, seq));
        if timeouts.len() == 1 {
            self.enqueue(timeout, seq, Event::ClientTimeout { request });
        }
    }

    /// A client's oldest request timed out (or was answered before): queue the entry of its next
    /// request still waiting for an answer (see `client_invoke`).
    fn queue_next_timeout(&mut self, timed_out: RequestId) {
        let timeouts = &mut self.client_timeouts[timed_out.client.0 as usize];
        let oldest = timeouts.pop_front();
        debug_assert_eq!(oldest.map(|(request, ..)| request), Some(timed_out), "the oldest comes up first");
        while let Some(&(request, at, seq)) = timeouts.front() {
            if self.workload.pending(&request).is_some() {
                self.enqueue(at, seq, Event::ClientTimeout { request });
                return;
            }
            timeouts.pop_front(); // answered in time
        }
    }

    fn client_reply(&mut self, node: NodeId, request: RequestId, response: P::Response) {
        if request.client == driven::APP_CLIENT {
            self.answers.push(driven::Answer { request, node, response, at: self.now });
            return;
        }
        let Some(pending) = self.workload.pending(&request) else { return }; // timed out already
        let client = pending.client;
        let mut op = pending.op.clone();
        let mut witness = None;
        let kind = match P::completion(&op, &response) {
            Completion::Ok(value) => {
                witness = P::witness(&op, &response);
                if matches!(op.f, OpFn::Read | OpFn::Dequeue) {
                    op.value = value;
                }
                EventType::Ok
            }
            Completion::Fail(_) => EventType::Fail,
            Completion::Redirect(hint) => {
                match hint {
                    Some(leader) if leader != node => self.workload.retarget(client, leader),
                    _ => self.workload.retarget_random(client, &mut self.rng_work),
                }
                EventType::Fail
            }
            Completion::Unknown(_) => {
                self.workload.retarget_random(client, &mut self.rng_work);
                EventType::Info
            }
        };
        self.complete(request, kind, op, witness);
        if self.workload.mode() == LoopMode::Closed {
            let next = self.now + self.scenario.workload.think;
            self.schedule(next, Event::ClientNext { client });
        }
    }

    fn client_timeout(&mut self, request: RequestId) {
        self.queue_next_timeout(request);
        let Some(pending) = self.workload.pending(&request) else { return }; // answered in time
        let (client, op) = (pending.client, pending.op.clone());
        self.complete(request, EventType::Info, op, None);
        self.workload.retarget_random(client, &mut self.rng_work);
        if self.workload.mode() == LoopMode::Closed {
            self.schedule(self.now, Event::ClientNext { client });
        }
    }

    fn complete(&mut self, request: RequestId, kind: EventType, op: concord_core::Op, witness: Option<u64>) {
        match kind {
            EventType::Ok => self.summary.ops.ok += 1,
            EventType::Fail => self.summary.ops.fail += 1,
            EventType::Info => self.summary.ops.info += 1,
            EventType::Invoke => {}
        }
        if self.healed && kind == EventType::Ok {
            self.summary.ops.ok_after_heal += 1;
        }
        self.record(|t| json!({"t": t, "ev": "complete", "request": request.to_string(), "type": kind, "op": op.to_string()}));
        self.workload.complete(request, kind, op, self.now, witness, &mut self.history);
    }

    // ----- nodes: boot (crash, restart, pause and the other faults live in `nemesis`) -----------

    fn boot(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0 as usize - 1];
        if slot.process.is_some() {
            return;
        }
        if slot.disk.lost_synced() && !self.scenario.disk.boot_after_lost_synced {
            // The node's own checks see the loss (the WAL's watermark, the identity check) and it
            // refuses to start: it may have forgotten entries it acknowledged and votes it gave.
            // The operator's way back – remove it, add a new member – is not modelled: it stays down.
            self.summary.boots_refused += 1;
            self.record(|t| json!({"t": t, "ev": "boot-refused", "node": id.0, "why": "synced writes lost"}));
            return;
        }
        let (_, config) = self.scenario.protocol();
        match P::boot(id, &self.cluster, config, slot.disk.durable()) {
            Ok(process) => {
                slot.process = Some(process);
                slot.paused = false;
                self.record(|t| json!({"t": t, "ev": "boot", "node": id.0}));
                if self.trace.is_some() {
                    // What the node recovered from its disk: trace readers cannot know it otherwise.
                    let state = self.nodes[id.0 as usize - 1].process.as_ref().map(|p| p.inspect());
                    self.record(|t| json!({"t": t, "ev": "state", "node": id.0, "state": state}));
                }
                self.with_process(id, |p, io| p.on_start(io));
            }
            Err(e) => {
                self.violations.push(format!("{id} failed to boot from its disk at {}: {e}", self.now));
                self.record(|t| json!({"t": t, "ev": "boot-failed", "node": id.0, "error": e}));
            }
        }
    }

    // ----- checks ----------------------------------------------------------------------------

    fn check_invariants(&mut self) {
        let Some(mut invariant) = self.invariant.take() else { return };
        let nodes: Vec<(NodeId, Option<&P>)> =
            self.nodes.iter().map(|n| (n.id, n.process.as_ref())).collect();
        if let Err(e) = invariant.check(self.now, &nodes) {
            self.violations.push(format!("invariant violated at {}: {e}", self.now));
            self.record(|t| json!({"t": t, "ev": "violation", "what": e.0}));
            self.stopped = true;
        }
        self.invariant = Some(invariant);
    }

    fn finish(mut self, wall: Duration) -> RunReport {
        // Operations still open have an unknown outcome.
        let open: Vec<(RequestId, concord_core::Op)> =
            self.workload.outstanding().map(|(r, p)| (*r, p.op.clone())).collect();
        for (request, op) in open {
            self.complete(request, EventType::Info, op, None);
        }
        let replicas: Vec<(NodeId, ReplicaState)> =
            self.nodes.iter().filter_map(|n| Some((n.id, n.process.as_ref()?.observe()?))).collect();
        for check in self.scenario.run.checks.clone() {
            match check {
                Check::Convergence => {
                    for problem in P::check_convergence(&replicas, &self.history) {
                        self.violations.push(format!("convergence: {problem}"));
                    }
                }
                Check::Progress => {
                    if self.summary.ops.ok_after_heal == 0 {
                        self.violations
                            .push("progress: no operation succeeded after the faults healed".into());
                    }
                }
                Check::Linearizability => {
                    if let Err(e) =
                        crate::checks::linearizable(&self.history, self.scenario.run.check_timeout)
                    {
                        self.violations.push(format!("linearizability: {e}"));
                    }
                }
                Check::Invariants => {} // checked online
            }
        }
        for problem in P::check_history(&self.scenario, &self.history) {
            self.violations.push(problem);
        }
        self.summary.latency = crate::summary::OpLatency::of(&self.history);
        self.summary.virtual_time = self.now - Time::ZERO;
        self.summary.wall_time = wall;
        for node in &self.nodes {
            self.summary.disk.add(&node.disk.stats);
        }
        let trace_hash = self.trace.as_mut().map(|t| {
            if let Err(e) = t.finish() {
                self.violations.push(format!("trace: could not write: {e}"));
            }
            self.summary.trace_lines = t.lines;
            t.hash()
        });
        RunReport {
            seed: self.seed,
            summary: self.summary,
            violations: self.violations,
            history: self.history,
            trace_hash,
            replicas,
        }
    }
}

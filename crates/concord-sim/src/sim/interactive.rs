//! Driving a simulation by hand: what `concord sim --interactive` needs beyond the nemesis.
//!
//! A person at the viewer plays the nemesis: they advance time, step one event, drop a message
//! that is on its way, cut one link, send a client request, or fork the run with new randomness.
//! Everything here keeps the simulator deterministic: the outcome of a steered run depends only on
//! the scenario, the seed and *where* each action happened – the number of events processed
//! before it, and its virtual time – never on how often or how fast the driver called in.
//!
//! That is why [`Simulation::advance_to`] and [`Simulation::step_one`] exist next to
//! [`Simulation::run_until`]: `run_until` puts an event beyond its limit back into the queue with
//! a fresh sequence number, so calling it 60 times a second (a live driver) and calling it once
//! (a replay) would number later events differently. These two only look at the next event and
//! take it when it is due, so any way of cutting time into slices gives the same run.
//!
//! See [`crate::steering`] for the log of actions that replays a steered run.

use super::{Event, RunReport, Simulation};
use crate::SimProtocol;
use concord_core::{ClientId, Message, NodeId, Op, Time};
use serde_json::json;
use std::cmp::Reverse;
use std::time::Instant;

/// The client id of requests sent by hand (the workload's clients are numbered from 0).
pub const USER_CLIENT: ClientId = ClientId(u32::MAX);

/// A message queued for delivery (one entry per copy: a duplicated message has two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub kind: &'static str,
    /// When it arrives, in true virtual time.
    pub at: Time,
}

impl<P: SimProtocol> Simulation<P> {
    /// How many events have been processed: with [`Simulation::now`], the exact place of an
    /// action in the run.
    pub fn events_processed(&self) -> u64 {
        self.summary.events
    }

    /// The virtual time at which the run ends.
    pub fn end(&self) -> Time {
        self.end
    }

    /// Number of server nodes (ids `1..=n`).
    pub fn node_count(&self) -> u32 {
        self.cluster.len() as u32
    }

    /// Whether node `id` is paused (held events wait for it to resume).
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.slot(id).is_some_and(|n| n.paused)
    }

    /// Whether the run stopped early: an invariant was violated or `run.max_events` was reached.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The time of the next queued event, if any.
    pub fn next_event_at(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The running hash of the trace so far (when tracing or hashing).
    pub fn trace_hash(&self) -> Option<u64> {
        self.trace.as_ref().map(|t| t.hash())
    }

    /// Process the next event if it is due before the end of the run. Returns whether one was.
    pub fn step_one(&mut self) -> bool {
        if self.stopped || self.next_event_at().is_none_or(|at| at > self.end) {
            return false;
        }
        self.step()
    }

    /// Process every event due at or before `until` (at most the end of the run), then set the
    /// clock to `until`. Unlike [`Simulation::run_until`], cutting a stretch of time into more or
    /// fewer calls does not change the run.
    pub fn advance_to(&mut self, until: Time) {
        let until = until.min(self.end);
        while self.next_event_at().is_some_and(|at| at <= until) {
            if !self.step() {
                break; // stopped
            }
        }
        if !self.stopped {
            self.now = self.now.max(until);
        }
    }

    /// Every message on its way, by arrival time (messages held by a paused node are not listed:
    /// they have arrived, the node has not looked yet).
    pub fn in_flight(&self) -> Vec<InFlight> {
        let mut list: Vec<(Time, u64, InFlight)> = self
            .queue
            .iter()
            .filter_map(|Reverse((at, seq, slot))| match self.slab[*slot as usize].as_ref() {
                Some(Event::Deliver { from, to, msg, id }) => {
                    Some((*at, *seq, InFlight { id: *id, from: *from, to: *to, kind: msg.kind(), at: *at }))
                }
                _ => None,
            })
            .collect();
        list.sort_by_key(|(at, seq, _)| (*at, *seq));
        list.into_iter().map(|(_, _, m)| m).collect()
    }

    /// Drop message `id` on its way (every queued copy of it). Recorded as a `drop` with
    /// `"why": "user"`. Returns how many copies were dropped (0: it is not in flight).
    pub fn drop_message(&mut self, id: u64) -> usize {
        let is_target =
            |event: &Option<Event<P>>| matches!(event, Some(Event::Deliver { id: m, .. }) if *m == id);
        let mut doomed: Vec<(Time, u64, u32)> = self
            .queue
            .iter()
            .filter(|Reverse((_, _, slot))| is_target(&self.slab[*slot as usize]))
            .map(|Reverse(entry)| *entry)
            .collect();
        if doomed.is_empty() {
            return 0;
        }
        doomed.sort();
        self.queue.retain(|Reverse(entry)| !doomed.contains(entry));
        for (_, _, slot) in &doomed {
            let Some(Event::Deliver { from, to, msg, id }) = self.slab[*slot as usize].take() else {
                unreachable!("selected above");
            };
            self.free.push(*slot);
            let kind = msg.kind();
            self.summary.message(kind).dropped += 1;
            *self.summary.drops.entry("user").or_default() += 1;
            self.record(|t| json!({"t": t, "ev": "drop", "from": from.0, "to": to.0, "kind": kind, "id": id, "why": "user"}));
        }
        doomed.len()
    }

    /// Cut the link between `a` and `b`, both ways (adds to existing cuts).
    pub fn cut_link(&mut self, a: NodeId, b: NodeId) {
        self.network.cut(a, b);
        self.network.cut(b, a);
        self.summary.partitions += 1;
        self.record(|t| json!({"t": t, "ev": "cut", "a": a.0, "b": b.0}));
    }

    /// Reconnect `a` and `b`, both ways, whatever cut them (a partition, an isolation, a cut).
    pub fn heal_link(&mut self, a: NodeId, b: NodeId) {
        self.network.uncut(a, b);
        self.network.uncut(b, a);
        self.record(|t| json!({"t": t, "ev": "heal-link", "a": a.0, "b": b.0}));
    }

    /// Send `op` to `node` now as a client request from [`USER_CLIENT`]. The request reaches the
    /// node at once (no client latency); its reply is not recorded in the history (look at the
    /// node's state, or the trace's protocol events, to see what became of it).
    pub fn client_request(&mut self, node: NodeId, op: &Op) {
        let (_, config) = self.scenario.protocol();
        // The session sequence number must grow per client: the queue's sequence counter does.
        let req = P::workload_request(config, USER_CLIENT, self.next_seq, op);
        self.record(|t| json!({"t": t, "ev": "user-request", "node": node.0, "op": op.to_string()}));
        self.inject(node, req);
    }

    /// From now on, draw every random choice (network, protocols, workload, nemesis) from `seed`
    /// instead: what happened so far stays, what follows is a different run. Used to fork.
    pub fn reseed(&mut self, seed: u64) {
        self.rng_net = super::stream(seed, 1);
        self.rng_proto = super::stream(seed, 2);
        self.rng_work = super::stream(seed, 3);
        self.rng_nemesis = super::stream(seed, 4);
        self.record(|t| json!({"t": t, "ev": "reseed", "seed": seed}));
    }

    /// Run on to the end of the run and judge it, like [`Simulation::run`] does for a run
    /// started from scratch (a replayed steered run continues with this). `started`: when the run
    /// began on this machine, for the summary's wall time.
    pub fn run_to_end(mut self, started: Instant) -> RunReport {
        while self.step() {}
        self.now = self.now.max(self.end);
        self.finish(started.elapsed())
    }

    /// End the run here and judge it. Client operations still open are closed as unknown in the
    /// history, but not in the trace: the trace ends exactly here, as the live run showed it.
    pub fn stop_here(mut self, started: Instant) -> RunReport {
        let mut trace = self.trace.take();
        let flushed = trace.as_mut().map(|t| (t.finish(), t.lines, t.hash()));
        let mut report = self.finish(started.elapsed());
        if let Some((written, lines, hash)) = flushed {
            report.trace_hash = Some(hash);
            report.summary.trace_lines = lines;
            if let Err(e) = written {
                report.violations.push(format!("trace: could not write: {e}"));
            }
        }
        report
    }

    fn slot(&self, id: NodeId) -> Option<&super::Node<P>> {
        self.nodes.get((id.0 as usize).wrapping_sub(1))
    }
}

//! The nemesis: every fault the simulator can inject, and the three ways faults are chosen.
//!
//! ```text
//!   [[nemesis.schedule]]  fixed faults at fixed times         → Event::Fault(i)   → apply_fault
//!   [nemesis.random]      a fault every ~interval (Poisson)    → Event::RandomFault → random_fault
//!   [[nemesis.trigger]]   a fault when a protocol event fires  → Event::Triggered → triggered_fault
//!   run.heal_at           the end of the fault phase           → Event::HealAll   → heal_all
//! ```
//!
//! Faults that end by themselves (random and triggered ones) schedule their own [`Undo`]. The
//! primitives – [`Simulation::crash`], [`Simulation::restart`], [`Simulation::pause`],
//! [`Simulation::partition`], … – are public: the interactive driver and tests use them too.
//!
//! Determinism: every choice made here draws from the run's nemesis stream (`rng_nemesis`), and
//! only here (plus the clocks' initial offsets drawn in [`Simulation::new`]). The order of draws is
//! part of the golden traces: reordering a `gen_range` below changes every trace with faults.
//!
//! Zone and region faults (`crash-zone`, `partition-region`, …) resolve their place through the
//! scenario's `[topology]` to a list of nodes, record one line naming the place, then use the
//! node primitives – so a trace reader that knows only `crash` and `partition` still follows them.
//!
//! This lives apart from the event loop in `sim.rs` because it is a concern of its own – *what goes
//! wrong* – while the loop is *how a run advances*; the two meet only at the `Event` variants above.

use super::{Event, Simulation};
use crate::protocol::SimProtocol;
use crate::scenario::{RandomFaultKind, ScheduledFault, Target, TriggerAction};
use crate::topology::Place;
use concord_core::{NodeId, Time};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A fault that ends by itself (random nemesis).
#[derive(Clone, Copy, Debug)]
pub(super) enum Undo {
    Restart(NodeId),
    Resume(NodeId),
    Heal,
    Unskew(NodeId),
    /// Restart the nodes of a zone or region (an index into the topology's zones or regions).
    RestartPlace(Level, usize),
}

/// A level of the `[topology]` a fault aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Zone,
    Region,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Zone => "zone",
            Level::Region => "region",
        }
    }
}

/// Something the nemesis does to one node (crash, restart, pause, …).
type NodeAction<P> = fn(&mut Simulation<P>, NodeId);

impl<P: SimProtocol> Simulation<P> {
    /// Schedule the nemesis's opening events: the fixed schedule, the first random fault and the
    /// end of the fault phase. Called by [`Simulation::start`] right after `Start`, so the sequence
    /// numbers (and thus tie-breaking) are the same as when this code lived inline there.
    pub(super) fn schedule_nemesis(&mut self) {
        let scenario = Arc::clone(&self.scenario);
        for (i, fault) in scenario.nemesis.schedule.iter().enumerate() {
            self.schedule(Time::from_duration(fault.at()), Event::Fault(i));
        }
        if let Some(random) = &scenario.nemesis.random {
            let first = Time::from_duration(random.start) + self.exp(random.interval);
            self.schedule(first, Event::RandomFault);
        }
        if let Some(heal) = scenario.run.heal_at {
            self.schedule(Time::from_duration(heal), Event::HealAll);
        }
    }

    /// An exponentially distributed gap with the given mean, drawn from the nemesis stream.
    fn exp(&mut self, mean: Duration) -> Duration {
        let rate = 1.0 / mean.as_secs_f64().max(1e-9);
        Duration::from_secs_f64(Exp::new(rate).map(|d| d.sample(&mut self.rng_nemesis)).unwrap_or(0.0))
    }

    /// `[[nemesis.schedule]]` entry number `i` is due.
    pub(super) fn scheduled_fault(&mut self, i: usize) {
        let scenario = Arc::clone(&self.scenario);
        self.apply_fault(&scenario.nemesis.schedule[i]);
    }

    /// Crash a node: its process and timers are gone, its unsynced writes lost or torn.
    pub fn crash(&mut self, id: NodeId) {
        let mode = self.scenario.disk.on_crash;
        let slot = &mut self.nodes[id.0 as usize - 1];
        if slot.process.is_none() {
            return;
        }
        slot.process = None;
        slot.incarnation += 1;
        slot.paused = false;
        slot.held.clear();
        slot.timers.clear();
        slot.syncing = false;
        slot.backlog.clear(); // I/O the process issued but the machine never carried out
        slot.disk.crash(mode, &mut self.rng_nemesis);
        self.summary.crashes += 1;
        self.record(|t| json!({"t": t, "ev": "crash", "node": id.0}));
    }

    /// Crash a node and lose synced writes from its disk: a suffix (`truncate-log`) or all of
    /// them (`wipe`). Its next boot is refused (see `boot`).
    pub fn lose_synced(&mut self, id: NodeId, wipe: bool) {
        self.crash(id);
        let lost = self.nodes[id.0 as usize - 1].disk.lose_synced(wipe, &mut self.rng_nemesis);
        let ev = if wipe { "wipe" } else { "truncate-log" };
        self.record(|t| json!({"t": t, "ev": ev, "node": id.0, "synced_writes_lost": lost}));
    }

    fn truncate_log(&mut self, id: NodeId) {
        self.lose_synced(id, false);
    }

    fn wipe(&mut self, id: NodeId) {
        self.lose_synced(id, true);
    }

    /// Restart a crashed node from its durable state.
    pub fn restart(&mut self, id: NodeId) {
        if self.nodes[id.0 as usize - 1].process.is_some() {
            return;
        }
        self.summary.restarts += 1;
        self.record(|t| json!({"t": t, "ev": "restart", "node": id.0}));
        self.boot(id);
    }

    pub fn pause(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0 as usize - 1];
        if slot.process.is_some() && !slot.paused {
            slot.paused = true;
            self.summary.pauses += 1;
            self.record(|t| json!({"t": t, "ev": "pause", "node": id.0}));
        }
    }

    pub fn resume(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0 as usize - 1];
        if !slot.paused {
            return;
        }
        slot.paused = false;
        let held = std::mem::take(&mut slot.held);
        self.record(|t| json!({"t": t, "ev": "resume", "node": id.0, "held": held.len()}));
        for event in held {
            self.schedule(self.now, event);
        }
    }

    pub fn partition(&mut self, groups: &[Vec<u32>]) {
        self.network.partition(groups);
        self.summary.partitions += 1;
        self.record(|t| json!({"t": t, "ev": "partition", "groups": groups}));
    }

    pub fn heal(&mut self) {
        self.network.heal();
        self.record(|t| json!({"t": t, "ev": "heal"}));
    }

    fn skew(&mut self, id: NodeId, jump: Duration, drift_ppm: f64) {
        let now = self.now;
        self.nodes[id.0 as usize - 1].clock.adjust(now, jump, drift_ppm);
        self.record(|t| json!({"t": t, "ev": "skew", "node": id.0, "jump_ns": jump.as_nanos() as u64, "drift_ppm": drift_ppm}));
    }

    /// The node a fault aims at, if there is one.
    fn resolve(&mut self, target: Target) -> Option<NodeId> {
        match target {
            Target::Node(id) => Some(NodeId(id)),
            Target::Random => Some(NodeId(self.rng_nemesis.gen_range(1..=self.cluster.len() as u32))),
            Target::Leader => self
                .nodes
                .iter()
                .find(|n| n.process.as_ref().and_then(|p| p.role()) == Some("leader"))
                .map(|n| n.id),
        }
    }

    /// Cut `node` off from every other node.
    pub fn isolate(&mut self, id: NodeId) {
        self.network.isolate(id);
        self.summary.partitions += 1;
        self.record(|t| json!({"t": t, "ev": "isolate", "node": id.0}));
    }

    /// Drop everything sent from the `from` nodes to the `to` nodes (adds to existing cuts).
    pub fn cut_one_way(&mut self, from: &[u32], to: &[u32]) {
        for f in from {
            for t in to {
                self.network.cut(NodeId(*f), NodeId(*t));
            }
        }
        self.summary.partitions += 1;
        self.record(|t| json!({"t": t, "ev": "one-way", "from": from, "to": to}));
    }

    fn apply_fault(&mut self, fault: &ScheduledFault) {
        // Faults aimed at one node: find it (the leader may not exist right now), then act.
        let aimed: Option<(Target, NodeAction<P>)> = match fault {
            ScheduledFault::Crash { node, .. } => Some((*node, Self::crash)),
            ScheduledFault::Restart { node, .. } => Some((*node, Self::restart)),
            ScheduledFault::TruncateLog { node, .. } => Some((*node, Self::truncate_log)),
            ScheduledFault::Wipe { node, .. } => Some((*node, Self::wipe)),
            ScheduledFault::Pause { node, .. } => Some((*node, Self::pause)),
            ScheduledFault::Resume { node, .. } => Some((*node, Self::resume)),
            ScheduledFault::Isolate { node, .. } => Some((*node, Self::isolate)),
            _ => None,
        };
        if let Some((target, act)) = aimed {
            match self.resolve(target) {
                Some(id) => act(self, id),
                None => self.record(|t| json!({"t": t, "ev": "nemesis-skip", "why": "no leader"})),
            }
            return;
        }
        match fault {
            ScheduledFault::Partition { groups, .. } => self.partition(groups),
            ScheduledFault::OneWay { from, to, .. } => self.cut_one_way(from, to),
            ScheduledFault::Heal { .. } => self.heal(),
            ScheduledFault::Skew { node, offset, drift_ppm, .. } => match self.resolve(*node) {
                Some(id) => self.skew(id, *offset, *drift_ppm),
                None => self.record(|t| json!({"t": t, "ev": "nemesis-skip", "why": "no leader"})),
            },
            ScheduledFault::Loss { probability, .. } => {
                self.network.set_loss(probability.0);
                self.record(|t| json!({"t": t, "ev": "loss", "probability": probability.0}));
            }
            ScheduledFault::CrashZone { zone, .. } => self.at_place(Level::Zone, zone, Self::crash_place),
            ScheduledFault::CrashRegion { region, .. } => {
                self.at_place(Level::Region, region, Self::crash_place)
            }
            ScheduledFault::RestartZone { zone, .. } => self.at_place(Level::Zone, zone, Self::restart_place),
            ScheduledFault::RestartRegion { region, .. } => {
                self.at_place(Level::Region, region, Self::restart_place)
            }
            ScheduledFault::PartitionZone { zone, .. } => {
                self.at_place(Level::Zone, zone, Self::partition_place)
            }
            ScheduledFault::PartitionRegion { region, .. } => {
                self.at_place(Level::Region, region, Self::partition_place)
            }
            _ => unreachable!("node-aimed faults are handled above"),
        }
    }

    // ----- zones and regions ------------------------------------------------------------------

    /// The index (into the topology's zones or regions) of `place`; `None` when it is the
    /// leader's and there is no leader. Validation made sure named places exist.
    fn place_index(&mut self, level: Level, place: &Place) -> Option<usize> {
        let topology = self.scenario.topology.as_ref().expect("validated: zone faults need a topology");
        let p = &topology.placement;
        match place {
            Place::Named(name) => match level {
                Level::Zone => p.zone_index(name),
                Level::Region => p.region_index(name),
            },
            Place::Leader => {
                let leader = self.resolve(Target::Leader)?;
                let p = &self.scenario.topology.as_ref()?.placement;
                Some(match level {
                    Level::Zone => p.zone(leader.0),
                    Level::Region => p.region(leader.0),
                })
            }
        }
    }

    /// The name and the nodes of zone or region `index`.
    fn place_nodes(&self, level: Level, index: usize) -> (String, Vec<u32>) {
        let p = &self.scenario.topology.as_ref().expect("a topology").placement;
        match level {
            Level::Zone => (p.zones[index].0.clone(), p.zone_nodes(index)),
            Level::Region => (p.regions[index].clone(), p.region_nodes(index)),
        }
    }

    /// Find `place`, then act on it (or record why not: no leader to aim at).
    fn at_place(&mut self, level: Level, place: &Place, act: fn(&mut Self, Level, usize)) {
        match self.place_index(level, place) {
            Some(index) => act(self, level, index),
            None => self.record(|t| json!({"t": t, "ev": "nemesis-skip", "why": "no leader"})),
        }
    }

    /// Crash every node of a zone or region (`crash-zone`, `crash-region`).
    fn crash_place(&mut self, level: Level, index: usize) {
        let (name, nodes) = self.place_nodes(level, index);
        let ev = format!("crash-{}", level.name());
        self.record(|t| json!({"t": t, "ev": ev, level.name(): name, "nodes": nodes}));
        for id in nodes {
            self.crash(NodeId(id));
        }
    }

    /// Restart the crashed nodes of a zone or region.
    fn restart_place(&mut self, level: Level, index: usize) {
        let (name, nodes) = self.place_nodes(level, index);
        let ev = format!("restart-{}", level.name());
        self.record(|t| json!({"t": t, "ev": ev, level.name(): name, "nodes": nodes}));
        for id in nodes {
            self.restart(NodeId(id));
        }
    }

    /// Partition a zone or region from every other node.
    fn partition_place(&mut self, level: Level, index: usize) {
        let (name, nodes) = self.place_nodes(level, index);
        let rest: Vec<u32> = (1..=self.cluster.len() as u32).filter(|id| !nodes.contains(id)).collect();
        let ev = format!("partition-{}", level.name());
        self.record(|t| json!({"t": t, "ev": ev, level.name(): name, "nodes": nodes}));
        self.partition(&[nodes, rest]);
    }

    /// A random zone or region that holds nodes, drawn from the nemesis stream.
    fn random_place(&mut self, level: Level) -> usize {
        let p = &self.scenario.topology.as_ref().expect("validated: these kinds need a topology").placement;
        let occupied: Vec<usize> = match level {
            Level::Zone => (0..p.zones.len()).filter(|&z| !p.zone_nodes(z).is_empty()).collect(),
            Level::Region => (0..p.regions.len()).filter(|&r| !p.region_nodes(r).is_empty()).collect(),
        };
        occupied[self.rng_nemesis.gen_range(0..occupied.len())]
    }

    /// Crashing every node of `nodes` that is up would leave a majority of the cluster up.
    fn may_crash_all(&self, nodes: &[u32]) -> bool {
        let n = self.cluster.len();
        let down = self.nodes.iter().filter(|s| s.process.is_none()).count();
        let more = nodes.iter().filter(|&&id| self.nodes[id as usize - 1].process.is_some()).count();
        more > 0 && (down + more) * 2 <= n
    }

    pub(super) fn random_fault(&mut self) {
        let scenario = Arc::clone(&self.scenario);
        let Some(random) = &scenario.nemesis.random else { return };
        if !self.fault_phase(random.stop) {
            return;
        }
        let next = self.now + self.exp(random.interval);
        self.schedule(next, Event::RandomFault);
        let n = self.cluster.len() as u32;
        let kind = random.kinds[self.rng_nemesis.gen_range(0..random.kinds.len())];
        let lasts = random.fault_duration.mul_f64(self.rng_nemesis.gen_range(0.5..1.5));
        let random_node = |rng: &mut ChaCha8Rng| NodeId(rng.gen_range(1..=n));
        let undo = match kind {
            RandomFaultKind::Crash => {
                // Never crash a majority: the run should stay live enough to be interesting.
                let id = random_node(&mut self.rng_nemesis);
                if !self.may_crash(id) {
                    return;
                }
                self.crash(id);
                Undo::Restart(id)
            }
            RandomFaultKind::TruncateLog | RandomFaultKind::Wipe => {
                let id = random_node(&mut self.rng_nemesis);
                if !self.may_crash(id) {
                    return;
                }
                self.lose_synced(id, kind == RandomFaultKind::Wipe);
                Undo::Restart(id)
            }
            RandomFaultKind::Partition | RandomFaultKind::OneWay => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for id in 1..=n {
                    if self.rng_nemesis.gen::<bool>() {
                        a.push(id)
                    } else {
                        b.push(id)
                    }
                }
                if kind == RandomFaultKind::Partition {
                    self.partition(&[a, b]);
                } else {
                    self.cut_one_way(&a, &b);
                }
                Undo::Heal
            }
            RandomFaultKind::Isolate => {
                let id = random_node(&mut self.rng_nemesis);
                self.isolate(id);
                Undo::Heal
            }
            RandomFaultKind::Pause => {
                let id = random_node(&mut self.rng_nemesis);
                self.pause(id);
                Undo::Resume(id)
            }
            RandomFaultKind::Skew => {
                let id = random_node(&mut self.rng_nemesis);
                let jump = Duration::from_nanos(
                    self.rng_nemesis.gen_range(0..=random.max_clock_jump.as_nanos() as u64),
                );
                let max = random.max_drift_ppm;
                let drift = if max > 0.0 { self.rng_nemesis.gen_range(-max..=max) } else { 0.0 };
                self.skew(id, jump, drift);
                Undo::Unskew(id)
            }
            RandomFaultKind::CrashZone | RandomFaultKind::CrashRegion => {
                let level = if kind == RandomFaultKind::CrashZone { Level::Zone } else { Level::Region };
                let index = self.random_place(level);
                if !self.may_crash_all(&self.place_nodes(level, index).1) {
                    return;
                }
                self.crash_place(level, index);
                Undo::RestartPlace(level, index)
            }
            RandomFaultKind::PartitionRegion => {
                let index = self.random_place(Level::Region);
                self.partition_place(Level::Region, index);
                Undo::Heal
            }
        };
        self.schedule(self.now + lasts, Event::Undo(undo));
    }

    /// Whether faults may still be injected (the fault phase: before `heal_at` or `stop`).
    fn fault_phase(&self, stop: Option<Duration>) -> bool {
        let stop = stop.or(self.scenario.run.heal_at).map_or(self.end, Time::from_duration);
        !self.healed && self.now < stop
    }

    /// Crashing `id` would leave a majority of the cluster up (and `id` is up).
    fn may_crash(&self, id: NodeId) -> bool {
        let n = self.cluster.len() as u32;
        let down = self.nodes.iter().filter(|s| s.process.is_none()).count() as u32;
        (down + 1) * 2 <= n && self.nodes[id.0 as usize - 1].process.is_some()
    }

    /// A protocol event: schedule the faults of the `[[nemesis.trigger]]`s it matches. Draws from
    /// the nemesis randomness only when a trigger matches, so scenarios without triggers are
    /// unaffected.
    pub(super) fn arm_triggers(&mut self, node: NodeId, event: &concord_core::ProtocolEvent) {
        if self.scenario.nemesis.trigger.is_empty() || !self.fault_phase(None) {
            return;
        }
        let scenario = Arc::clone(&self.scenario);
        let role = self.nodes[node.0 as usize - 1].process.as_ref().and_then(|p| p.role());
        for (i, trigger) in scenario.nemesis.trigger.iter().enumerate() {
            if !trigger.matches(event.name, &event.detail, role) {
                continue;
            }
            if self.rng_nemesis.gen::<f64>() >= trigger.probability.0 {
                continue;
            }
            let delay =
                Duration::from_nanos(self.rng_nemesis.gen_range(0..=trigger.within.as_nanos() as u64));
            self.schedule(self.now + delay, Event::Triggered { trigger: i, node });
        }
    }

    pub(super) fn triggered_fault(&mut self, i: usize, node: NodeId) {
        if !self.fault_phase(None) {
            return;
        }
        let scenario = Arc::clone(&self.scenario);
        let trigger = &scenario.nemesis.trigger[i];
        self.record(|t| json!({"t": t, "ev": "nemesis-trigger", "on": trigger.on, "node": node.0}));
        let undo = match trigger.action {
            TriggerAction::Crash => {
                if !self.may_crash(node) {
                    return;
                }
                self.crash(node);
                Undo::Restart(node)
            }
            TriggerAction::Pause => {
                if self.nodes[node.0 as usize - 1].paused {
                    return;
                }
                self.pause(node);
                Undo::Resume(node)
            }
            TriggerAction::Isolate => {
                self.isolate(node);
                Undo::Heal
            }
        };
        // Like random faults, a triggered one lasts between half and one and a half times `lasts`.
        let lasts = trigger.lasts.mul_f64(self.rng_nemesis.gen_range(0.5..1.5));
        self.schedule(self.now + lasts, Event::Undo(undo));
    }

    pub(super) fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Restart(id) => self.restart(id),
            Undo::Resume(id) => self.resume(id),
            Undo::Heal => self.heal(),
            Undo::Unskew(id) => self.skew(id, Duration::ZERO, 0.0),
            Undo::RestartPlace(level, index) => self.restart_place(level, index),
        }
    }

    /// The end of the safety phase: every fault is repaired.
    pub(super) fn heal_all(&mut self) {
        self.healed = true;
        self.record(|t| json!({"t": t, "ev": "heal-all"}));
        self.network.heal();
        self.network.restore_loss();
        for id in self.cluster.clone() {
            self.resume(id);
            self.restart(id);
            if self.nodes[id.0 as usize - 1].clock.drift_ppm() != 0.0 {
                self.skew(id, Duration::ZERO, 0.0);
            }
        }
    }
}

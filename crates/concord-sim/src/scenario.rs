//! Scenario files: what to simulate, in TOML.
//!
//! A scenario names the cluster, the network, the disks, the clocks, the workload, the faults and
//! the checks. Every field has a default except the protocol, so a scenario says only what matters
//! to it. Unknown keys and bad values are rejected with the file, the line and what was expected –
//! a typo must never silently fall back to a default.
//!
//! ```toml
//! [run]
//! nodes = 5
//! duration = "30s"          # virtual time to simulate
//! heal_at = "20s"           # faults stop, partitions heal, crashed nodes restart
//! checks = ["convergence"]
//!
//! [network]
//! latency = { dist = "uniform", min = "1ms", max = "5ms" }
//! loss = 0.2
//!
//! [workload]
//! clients = 4
//! mix = { write = 0.5, read = 0.5 }
//!
//! [[nemesis.schedule]]
//! at = "5s"
//! action = "partition"
//! groups = [[1, 2], [3, 4, 5]]
//!
//! [protocol.gossip]
//! fanout = 2
//! ```
//!
//! Nodes may also be placed in zones and regions (`[topology]`, see [`crate::topology`]): their
//! links then take their latencies from where they stand, and faults can hit a whole zone or
//! region, or cut a region off.

use crate::latency::Latency;
use crate::topology::{Place, Topology};
use concord_core::time::serde_duration;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A whole scenario; `C` is the protocol's own configuration (the `[protocol.NAME]` table).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario<C> {
    /// A one-line description, shown in reports.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    /// Zones and regions (optional): where each node stands, and the latencies that follow.
    #[serde(default)]
    pub topology: Option<Topology>,
    #[serde(default)]
    pub disk: DiskConfig,
    #[serde(default)]
    pub clock: ClockConfig,
    #[serde(default)]
    pub workload: WorkloadConfig,
    #[serde(default)]
    pub nemesis: NemesisConfig,
    /// Exactly one entry: the protocol's name and its configuration.
    pub protocol: BTreeMap<String, C>,
}

impl<C> Scenario<C> {
    /// The protocol's name and configuration.
    pub fn protocol(&self) -> (&str, &C) {
        let (name, config) = self.protocol.iter().next().expect("validated: one protocol");
        (name, config)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Number of server nodes, with ids `1..=nodes`.
    pub nodes: NodeCount,
    /// Virtual time to simulate.
    #[serde(with = "serde_duration")]
    pub duration: Duration,
    /// When the safety phase ends: every fault is healed, crashed nodes restart, paused nodes
    /// resume, clocks stop drifting apart. What follows is the liveness phase (TigerBeetle's VOPR
    /// does the same): the protocol must then converge / make progress by `duration`.
    #[serde(with = "serde_duration::option")]
    pub heal_at: Option<Duration>,
    /// Checks to run on the result: `convergence`, `linearizability`, `invariants`, `progress`.
    pub checks: Vec<Check>,
    /// Stop early once this many events have been processed (a guard against runaway protocols).
    pub max_events: u64,
    /// How long the linearizability checker may search before answering "unknown" (a failure).
    #[serde(with = "serde_duration")]
    pub check_timeout: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            nodes: NodeCount(3),
            duration: Duration::from_secs(10),
            heal_at: None,
            checks: Vec::new(),
            max_events: 50_000_000,
            check_timeout: Duration::from_secs(30),
        }
    }
}

/// The checks a run can be judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// After the run, every live replica holds the same state, containing every acknowledged write.
    Convergence,
    /// The client history is linearizable (checked by `concord-check`).
    Linearizability,
    /// The protocol's own online invariants hold after every step.
    Invariants,
    /// At least one operation completed successfully after `heal_at`.
    Progress,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Check::Convergence => "convergence",
            Check::Linearizability => "linearizability",
            Check::Invariants => "invariants",
            Check::Progress => "progress",
        };
        f.write_str(name)
    }
}

/// A node count between 1 and 1000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCount(pub u32);

impl<'de> Deserialize<'de> for NodeCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if (1..=1000).contains(&n) {
            Ok(NodeCount(n))
        } else {
            Err(de::Error::custom(format!("nodes must be between 1 and 1000, not {n}")))
        }
    }
}

/// A probability in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Probability(pub f64);

impl Probability {
    pub fn certain() -> Self {
        Probability(1.0)
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(de::Error::custom(format!("a probability must be between 0 and 1, not {p}")))
        }
    }
}

/// How messages between nodes behave.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// One-way latency of a message.
    pub latency: Latency,
    /// Probability that a message is lost.
    pub loss: Probability,
    /// Probability that a message is delivered twice (the copy with its own latency).
    pub duplicate: Probability,
    /// Deliver messages on each link in the order they were sent (as TCP does). When false, the
    /// latency distribution reorders them freely (as UDP may).
    pub fifo: bool,
    /// Latency between clients and nodes (clients are never partitioned and never lose messages;
    /// a crashed node simply never answers).
    pub client_latency: Option<Latency>,
    /// Per-link overrides.
    #[serde(rename = "link")]
    pub links: Vec<LinkOverride>,
    /// Latency by message kind (the protocol's `Message::kind`, e.g. `replicate`), replacing the
    /// link's latency for those messages: `[network.kind_latency] replicate = { dist = … }`.
    /// Empty by default. Models where one kind of message is slower than the rest – e.g. the PBS
    /// paper's WARS model, whose write delay `W` differs from the `A`, `R`, `S` delays.
    pub kind_latency: BTreeMap<String, Latency>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency: Latency::Uniform { min: Duration::from_millis(1), max: Duration::from_millis(5) },
            loss: Probability(0.0),
            duplicate: Probability(0.0),
            fifo: false,
            client_latency: None,
            links: Vec::new(),
            kind_latency: BTreeMap::new(),
        }
    }
}

/// Settings for the links `from → to` (either may be omitted: all nodes).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    pub from: Option<u32>,
    pub to: Option<u32>,
    /// Apply in both directions.
    #[serde(default)]
    pub both_ways: bool,
    pub latency: Option<Latency>,
    pub loss: Option<Probability>,
    pub duplicate: Option<Probability>,
    pub fifo: Option<bool>,
}

/// How each node's disk behaves.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// How long a sync takes.
    pub sync_latency: Latency,
    /// What a crash does to writes that were not yet synced.
    pub on_crash: CrashMode,
    /// A fault: syncs return before the writes are stable, which they become only at the next
    /// sync; a crash loses the last completed sync's writes too (see `disk.rs`).
    pub lying_fsync: bool,
    /// A deliberate bug, what nodes did before issue #23: boot a node whose disk lost synced
    /// writes (`truncate-log`, `wipe`) as if nothing happened – it forgot entries it acknowledged
    /// and votes it gave, and votes again. Off: such a node does not boot.
    pub boot_after_lost_synced: bool,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            sync_latency: Latency::Constant { value: Duration::ZERO },
            on_crash: CrashMode::Lose,
            lying_fsync: false,
            boot_after_lost_synced: false,
        }
    }
}

/// The fate of unsynced writes at a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashMode {
    /// All unsynced writes are lost.
    Lose,
    /// A random prefix of the unsynced writes reached the disk, and the write after it was torn
    /// (cut at a random byte). Protocols must detect torn records (checksums).
    Torn,
}

/// Each node's clock, relative to true (virtual) time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// Each node's initial offset is drawn uniformly from `[0, max_offset]`.
    #[serde(with = "serde_duration")]
    pub max_offset: Duration,
    /// Each node's drift is drawn uniformly from `[-max_drift_ppm, +max_drift_ppm]` parts per
    /// million (a node at +1000 ppm sees 1.001 s pass per true second).
    pub max_drift_ppm: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig { max_offset: Duration::ZERO, max_drift_ppm: 0.0 }
    }
}

/// The most simulated clients a scenario may ask for.
pub const MAX_CLIENTS: u32 = 10_000;

/// The most distinct keys a workload may draw from.
pub const MAX_KEYS: u32 = 1_000_000;

/// The simulated clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Number of clients (0: no workload).
    pub clients: u32,
    /// Closed loop: each client waits for its answer (and `think` time) before the next request.
    /// Open loop: requests arrive at `rate_per_s` (Poisson) whatever the answers.
    pub mode: LoopMode,
    /// Open-loop arrival rate, requests per second over all clients.
    pub rate_per_s: f64,
    /// Closed-loop pause between an answer and the next request.
    #[serde(with = "serde_duration")]
    pub think: Duration,
    /// Number of distinct keys (`k0`, `k1`, …).
    pub keys: u32,
    /// How keys are chosen.
    pub key_distribution: KeyDistribution,
    /// Zipfian skew (only for `key_distribution = "zipfian"`); YCSB uses 0.99.
    pub zipf_theta: f64,
    /// Relative weights of operations.
    pub mix: OpMix,
    /// The fraction of reads a client sends to a node drawn at random (any node, leader or not)
    /// instead of its usual target, which follows redirects to the leader. Exercises reads served
    /// by followers (Raft's follower reads by ReadIndex). 0 (the default) draws nothing, so
    /// scenarios without it run exactly as before it existed.
    pub read_anywhere: f64,
    /// A request without an answer after this long is recorded as `info` (outcome unknown).
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    #[serde(with = "serde_duration")]
    pub start: Duration,
    /// No new requests after this time (default: `run.heal_at` plus half of what remains, so the
    /// liveness phase sees traffic and then quiet).
    #[serde(with = "serde_duration::option")]
    pub stop: Option<Duration>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 0,
            mode: LoopMode::Closed,
            rate_per_s: 100.0,
            think: Duration::ZERO,
            keys: 5,
            key_distribution: KeyDistribution::Uniform,
            zipf_theta: 0.99,
            mix: OpMix::default(),
            read_anywhere: 0.0,
            timeout: Duration::from_secs(1),
            start: Duration::ZERO,
            stop: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoopMode {
    Closed,
    Open,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    Uniform,
    Zipfian,
}

/// Relative weights of reads, writes, compare-and-sets and counter increments. A weight left out of
/// a written `mix` is zero (`mix = { write = 1.0 }` means only writes); without `mix`, half reads,
/// half writes. `incr` issues `add 1` (a CRDT counter increment, for protocols that have counters);
/// mix it with reads, not with writes, on the same keys: a key is a counter or a register.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpMix {
    #[serde(default)]
    pub read: f64,
    #[serde(default)]
    pub write: f64,
    #[serde(default)]
    pub cas: f64,
    #[serde(default)]
    pub incr: f64,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix { read: 0.5, write: 0.5, cas: 0.0, incr: 0.0 }
    }
}

/// Faults: a scripted schedule, random faults, or both.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NemesisConfig {
    pub schedule: Vec<ScheduledFault>,
    pub random: Option<RandomFaults>,
    pub trigger: Vec<Trigger>,
}

/// `[[nemesis.trigger]]`: a fault aimed at a moment the protocol itself announces.
///
/// Random faults rarely land inside the few milliseconds where a bug matters – between a vote and
/// its sync, between an election and the new leader's first commit. A trigger watches the protocol
/// events nodes emit ([`concord_core::Io::event`]) and, when one matches, hits the node that emitted
/// it, as Jepsen's targeted nemeses do:
///
/// ```toml
/// [[nemesis.trigger]]
/// on = "vote"                 # the protocol event
/// where = { granted = true }  # only events whose detail has these fields (optional)
/// role = "leader"             # only events from a node in this role (optional)
/// action = "crash"            # crash | pause | isolate
/// probability = 0.3           # of acting on a matching event (default 1)
/// within = "10ms"             # the fault hits uniformly within this delay (default at once)
/// lasts = "40ms"              # then the node restarts, resumes or rejoins (0.5–1.5 × this)
/// ```
///
/// Triggers act only during the fault phase (before `run.heal_at`), and never crash a majority.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub on: String,
    #[serde(default, rename = "where")]
    pub when: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub role: Option<String>,
    pub action: TriggerAction,
    #[serde(default = "Probability::certain")]
    pub probability: Probability,
    #[serde(default, with = "serde_duration")]
    pub within: Duration,
    #[serde(with = "serde_duration")]
    pub lasts: Duration,
}

impl Trigger {
    /// Whether a protocol event `name` with `detail`, from a node in `role`, arms this trigger.
    pub fn matches(&self, name: &str, detail: &serde_json::Value, role: Option<&str>) -> bool {
        name == self.on
            && self.when.iter().all(|(field, want)| detail.get(field) == Some(want))
            && self.role.as_deref().is_none_or(|want| role == Some(want))
    }
}

/// What a [`Trigger`] does to the node that emitted the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerAction {
    Crash,
    Pause,
    Isolate,
}

/// Which node a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Node(u32),
    /// A node that currently reports the role `leader` (the first, if several claim it).
    Leader,
    /// A node chosen at random (from the seed).
    Random,
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u32),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Id(id) => Ok(Target::Node(id)),
            Raw::Name(name) if name == "leader" => Ok(Target::Leader),
            Raw::Name(name) if name == "random" => Ok(Target::Random),
            Raw::Name(name) => Err(de::Error::custom(format!(
                "node must be a node id, \"leader\" or \"random\", not {name:?}"
            ))),
        }
    }
}

/// One entry of `[[nemesis.schedule]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduledFault {
    /// Crash a node: volatile state is gone, unsynced writes are lost (or torn).
    Crash {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Restart a crashed node from its durable state.
    Restart {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Crash a node and cut a random suffix of its *synced* writes (a truncated WAL segment). It
    /// stays down: its boot is refused (see `disk.rs`), unless `[disk] boot_after_lost_synced`.
    TruncateLog {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Crash a node and lose its whole disk (a wiped data directory). Refused like `truncate-log`.
    Wipe {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Freeze a node (a long GC pause, SIGSTOP): it keeps its state but handles nothing.
    Pause {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    Resume {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Cut the network between groups (both ways); nodes in no group are cut from all groups.
    Partition {
        #[serde(with = "serde_duration")]
        at: Duration,
        groups: Vec<Vec<u32>>,
    },
    /// Cut one node off from every other node.
    Isolate {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
    },
    /// Drop everything sent from the `from` nodes to the `to` nodes (not the other way).
    OneWay {
        #[serde(with = "serde_duration")]
        at: Duration,
        from: Vec<u32>,
        to: Vec<u32>,
    },
    /// Remove all partitions.
    Heal {
        #[serde(with = "serde_duration")]
        at: Duration,
    },
    /// Set a node's clock: jump it by `offset` (forward only: monotonic clocks never go back)
    /// and let it run at `drift_ppm`.
    Skew {
        #[serde(with = "serde_duration")]
        at: Duration,
        node: Target,
        #[serde(default, with = "serde_duration")]
        offset: Duration,
        #[serde(default)]
        drift_ppm: f64,
    },
    /// Change the loss probability of every link.
    Loss {
        #[serde(with = "serde_duration")]
        at: Duration,
        probability: Probability,
    },
    /// Crash every node of a `[topology]` zone (a zone's power or network is gone).
    CrashZone {
        #[serde(with = "serde_duration")]
        at: Duration,
        zone: Place,
    },
    /// Crash every node of a region.
    CrashRegion {
        #[serde(with = "serde_duration")]
        at: Duration,
        region: Place,
    },
    /// Restart the crashed nodes of a zone.
    RestartZone {
        #[serde(with = "serde_duration")]
        at: Duration,
        zone: Place,
    },
    /// Restart the crashed nodes of a region.
    RestartRegion {
        #[serde(with = "serde_duration")]
        at: Duration,
        region: Place,
    },
    /// Partition a zone from every other node: `partition` with two groups, the zone and the rest
    /// (replacing existing cuts, as `partition` does; `heal` ends it).
    PartitionZone {
        #[serde(with = "serde_duration")]
        at: Duration,
        zone: Place,
    },
    /// Partition a region from the rest, as `partition-zone` does a zone.
    PartitionRegion {
        #[serde(with = "serde_duration")]
        at: Duration,
        region: Place,
    },
}

impl ScheduledFault {
    pub fn at(&self) -> Duration {
        match self {
            ScheduledFault::Crash { at, .. }
            | ScheduledFault::Restart { at, .. }
            | ScheduledFault::TruncateLog { at, .. }
            | ScheduledFault::Wipe { at, .. }
            | ScheduledFault::Pause { at, .. }
            | ScheduledFault::Resume { at, .. }
            | ScheduledFault::Partition { at, .. }
            | ScheduledFault::Isolate { at, .. }
            | ScheduledFault::OneWay { at, .. }
            | ScheduledFault::Heal { at }
            | ScheduledFault::Skew { at, .. }
            | ScheduledFault::Loss { at, .. }
            | ScheduledFault::CrashZone { at, .. }
            | ScheduledFault::CrashRegion { at, .. }
            | ScheduledFault::RestartZone { at, .. }
            | ScheduledFault::RestartRegion { at, .. }
            | ScheduledFault::PartitionZone { at, .. }
            | ScheduledFault::PartitionRegion { at, .. } => *at,
        }
    }
}

/// `[nemesis.random]`: faults injected at random moments, each healed after a while.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomFaults {
    /// Mean time between two faults (exponentially distributed).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// How long a fault lasts, on average (uniform between half and one and a half times this).
    #[serde(with = "serde_duration")]
    pub fault_duration: Duration,
    /// The kinds of fault to draw from.
    pub kinds: Vec<RandomFaultKind>,
    #[serde(with = "serde_duration")]
    pub start: Duration,
    /// No new faults after this (default: `run.heal_at`).
    #[serde(with = "serde_duration::option")]
    pub stop: Option<Duration>,
    /// The largest drift a `skew` fault gives a clock, in parts per million.
    pub max_drift_ppm: f64,
    /// The largest forward jump a `skew` fault gives a clock.
    #[serde(with = "serde_duration")]
    pub max_clock_jump: Duration,
}

impl Default for RandomFaults {
    fn default() -> Self {
        RandomFaults {
            interval: Duration::from_secs(2),
            fault_duration: Duration::from_secs(1),
            kinds: vec![RandomFaultKind::Crash, RandomFaultKind::Partition],
            start: Duration::ZERO,
            stop: None,
            max_drift_ppm: 1_000.0,
            max_clock_jump: Duration::from_millis(100),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RandomFaultKind {
    /// Crash a node, restart it after the fault's duration.
    Crash,
    /// Split the nodes in two random groups, heal after the fault's duration.
    Partition,
    /// Cut one random node off, heal after the fault's duration.
    Isolate,
    /// A one-way cut between two random groups.
    OneWay,
    /// Pause a node, resume it after the fault's duration.
    Pause,
    /// Jump a clock forward and make it drift.
    Skew,
    /// Crash a node and cut a random suffix of its synced writes; try to restart it after the
    /// fault's duration (refused, unless `[disk] boot_after_lost_synced`).
    TruncateLog,
    /// Crash a node and lose its whole disk; restart as for `truncate-log`.
    Wipe,
    /// Crash every node of a random `[topology]` zone (if a majority stays up), restart them
    /// after the fault's duration.
    CrashZone,
    /// Crash every node of a random region (if a majority stays up), restart them afterwards.
    CrashRegion,
    /// Partition a random region from the rest, heal after the fault's duration.
    PartitionRegion,
}

impl RandomFaultKind {
    /// Whether the kind needs a `[topology]` to aim at.
    pub fn needs_topology(self) -> bool {
        matches!(
            self,
            RandomFaultKind::CrashZone | RandomFaultKind::CrashRegion | RandomFaultKind::PartitionRegion
        )
    }
}

/// A scenario file failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// `message` already carries the line, column and a snippet (from the TOML parser).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// What every scenario has before its protocol is known: used to pick the protocol.
#[derive(Deserialize)]
struct ProtocolPeek {
    protocol: Option<BTreeMap<String, de::IgnoredAny>>,
}

/// The name of the scenario's protocol (the one key of its `[protocol]` table).
pub fn protocol_name(path: &Path, text: &str) -> Result<String, ScenarioError> {
    let invalid = |message: String| ScenarioError::Invalid { path: path.to_owned(), message };
    let peek: ProtocolPeek = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let names: Vec<String> = peek.protocol.unwrap_or_default().into_keys().collect();
    match names.as_slice() {
        [name] => Ok(name.clone()),
        [] => Err(invalid("no protocol: add a table such as [protocol.gossip] or [protocol.raft]".into())),
        _ => Err(invalid(format!("one protocol per scenario, found {}", names.join(", ")))),
    }
}

impl<C: de::DeserializeOwned> Scenario<C> {
    /// Parse and validate a scenario. `path` is used in messages and to resolve relative files
    /// (empirical latency CDFs).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid { path: path.to_owned(), message };
        let mut scenario: Scenario<C> = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let nodes = scenario.run.nodes.0;
        if let Some(topology) = &mut scenario.topology {
            topology.resolve(nodes).map_err(invalid)?;
        }
        scenario.validate().map_err(invalid)?;
        let base = path.parent().unwrap_or(Path::new("."));
        scenario.load_files(base).map_err(invalid)?;
        Ok(scenario)
    }

    /// Read a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Cross-field checks the TOML types cannot express.
    fn validate(&self) -> Result<(), String> {
        if self.protocol.len() != 1 {
            return Err("exactly one [protocol.NAME] table is required".into());
        }
        let n = self.run.nodes.0;
        let check_node = |what: &str, id: u32| {
            if (1..=n).contains(&id) {
                Ok(())
            } else {
                Err(format!("{what}: node {id} does not exist (nodes are 1..={n})"))
            }
        };
        for link in &self.network.links {
            if let Some(id) = link.from {
                check_node("[[network.link]] from", id)?;
            }
            if let Some(id) = link.to {
                check_node("[[network.link]] to", id)?;
            }
        }
        for fault in &self.nemesis.schedule {
            let what = format!("[[nemesis.schedule]] at {:?}", fault.at());
            match fault {
                ScheduledFault::Crash { node, .. }
                | ScheduledFault::Restart { node, .. }
                | ScheduledFault::TruncateLog { node, .. }
                | ScheduledFault::Wipe { node, .. }
                | ScheduledFault::Pause { node, .. }
                | ScheduledFault::Resume { node, .. }
                | ScheduledFault::Isolate { node, .. }
                | ScheduledFault::Skew { node, .. } => {
                    if let Target::Node(id) = node {
                        check_node(&what, *id)?;
                    }
                }
                ScheduledFault::Partition { groups, .. } => {
                    let mut seen = std::collections::BTreeSet::new();
                    for id in groups.iter().flatten() {
                        check_node(&what, *id)?;
                        if !seen.insert(*id) {
                            return Err(format!("{what}: node {id} is in two partition groups"));
                        }
                    }
                }
                ScheduledFault::OneWay { from, to, .. } => {
                    for id in from.iter().chain(to) {
                        check_node(&what, *id)?;
                    }
                }
                ScheduledFault::Heal { .. } | ScheduledFault::Loss { .. } => {}
                ScheduledFault::CrashZone { zone, .. }
                | ScheduledFault::RestartZone { zone, .. }
                | ScheduledFault::PartitionZone { zone, .. } => self.check_place(&what, "zone", zone)?,
                ScheduledFault::CrashRegion { region, .. }
                | ScheduledFault::RestartRegion { region, .. }
                | ScheduledFault::PartitionRegion { region, .. } => {
                    self.check_place(&what, "region", region)?
                }
            }
            if fault.at() > self.run.duration {
                return Err(format!("{what}: after the end of the run ({:?})", self.run.duration));
            }
        }
        if let Some(random) = &self.nemesis.random {
            if random.interval.is_zero() {
                return Err("[nemesis.random] interval must be more than zero".into());
            }
            if random.kinds.is_empty() {
                return Err("[nemesis.random] kinds is empty: name at least one kind of fault".into());
            }
            if self.topology.is_none() && random.kinds.iter().any(|k| k.needs_topology()) {
                return Err("[nemesis.random] kinds: crash-zone, crash-region and partition-region need a [topology] (zones and regions to aim at)".into());
            }
        }
        for trigger in &self.nemesis.trigger {
            if trigger.lasts.is_zero() {
                return Err(format!("[[nemesis.trigger]] on {:?}: lasts must be more than zero", trigger.on));
            }
        }
        let w = &self.workload;
        let mix = w.mix;
        if [mix.read, mix.write, mix.cas, mix.incr].iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err("[workload] mix weights must be zero or positive numbers".into());
        }
        if w.clients > 0 && mix.read + mix.write + mix.cas + mix.incr <= 0.0 {
            return Err("[workload] mix: at least one weight must be positive".into());
        }
        if !(0.0..=1.0).contains(&w.read_anywhere) {
            return Err("[workload] read_anywhere must be a fraction between 0 and 1".into());
        }
        if w.clients > 0 && w.keys == 0 {
            return Err("[workload] keys must be at least 1".into());
        }
        // Each client and each key holds state for the whole run: an unbounded count is an
        // unbounded allocation (4 294 967 296 clients, found by the scenario fuzz target).
        if w.clients > MAX_CLIENTS {
            return Err(format!("[workload] clients is {}; at most {MAX_CLIENTS}", w.clients));
        }
        if w.keys > MAX_KEYS {
            return Err(format!("[workload] keys is {}; at most {MAX_KEYS}", w.keys));
        }
        if w.mode == LoopMode::Open && !(w.rate_per_s > 0.0 && w.rate_per_s.is_finite()) {
            return Err("[workload] rate_per_s must be a positive number for mode = \"open\"".into());
        }
        if w.key_distribution == KeyDistribution::Zipfian && !(w.zipf_theta > 0.0 && w.zipf_theta.is_finite())
        {
            return Err("[workload] zipf_theta must be a positive number".into());
        }
        if w.timeout.is_zero() {
            return Err("[workload] timeout must be more than zero".into());
        }
        if let Some(heal) = self.run.heal_at {
            if heal > self.run.duration {
                return Err(format!("[run] heal_at ({heal:?}) is after the end ({:?})", self.run.duration));
            }
        }
        self.network.latency.validate().map_err(|e| format!("[network] latency: {e}"))?;
        if let Some(l) = &self.network.client_latency {
            l.validate().map_err(|e| format!("[network] client_latency: {e}"))?;
        }
        self.disk.sync_latency.validate().map_err(|e| format!("[disk] sync_latency: {e}"))?;
        for link in &self.network.links {
            if let Some(l) = &link.latency {
                l.validate().map_err(|e| format!("[[network.link]] latency: {e}"))?;
            }
        }
        for (kind, l) in &self.network.kind_latency {
            l.validate().map_err(|e| format!("[network.kind_latency] {kind}: {e}"))?;
        }
        if !(self.clock.max_drift_ppm.is_finite() && (0.0..500_000.0).contains(&self.clock.max_drift_ppm)) {
            return Err("[clock] max_drift_ppm must be between 0 and 500000".into());
        }
        Ok(())
    }

    /// A fault's zone or region exists in the `[topology]`.
    fn check_place(&self, what: &str, level: &str, place: &Place) -> Result<(), String> {
        let Some(topology) = &self.topology else {
            return Err(format!("{what}: a {level} fault needs a [topology] (zones and regions)"));
        };
        let Place::Named(name) = place else { return Ok(()) };
        let p = &topology.placement;
        let known = if level == "zone" { p.zone_index(name) } else { p.region_index(name) };
        if known.is_none() {
            let names: Vec<&str> = if level == "zone" {
                p.zones.iter().map(|(z, _)| z.as_str()).collect()
            } else {
                p.regions.iter().map(String::as_str).collect()
            };
            return Err(format!(
                "{what}: no {level} {name:?} in the [topology] (it has {})",
                names.join(", ")
            ));
        }
        Ok(())
    }

    /// Load files named by the scenario (empirical latency distributions).
    fn load_files(&mut self, base: &Path) -> Result<(), String> {
        self.network.latency.load(base)?;
        if let Some(topology) = &mut self.topology {
            topology.load(base)?;
        }
        if let Some(l) = &mut self.network.client_latency {
            l.load(base)?;
        }
        self.disk.sync_latency.load(base)?;
        for link in &mut self.network.links {
            if let Some(l) = &mut link.latency {
                l.load(base)?;
            }
        }
        for l in self.network.kind_latency.values_mut() {
            l.load(base)?;
        }
        Ok(())
    }

    /// When the workload stops issuing requests.
    pub fn workload_stop(&self) -> Duration {
        self.workload.stop.unwrap_or_else(|| match self.run.heal_at {
            Some(heal) => heal + (self.run.duration.saturating_sub(heal)) / 2,
            None => self.run.duration.mul_f64(0.9),
        })
    }
}

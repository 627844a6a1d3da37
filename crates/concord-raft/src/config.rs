//! Configuration of one Raft node: timing, limits, features, and deliberate bugs.
//!
//! Every duration is written as a string in scenario files (`"150ms"`), every limit names its unit.
//! The defaults suit a LAN-like simulated network with a few milliseconds of latency: the paper's
//! rule of thumb `broadcastTime ≪ electionTimeout ≪ MTBF` (§5.6) with a 10× margin each way.

use concord_core::time::serde_duration;
use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Configuration of a Raft node. All nodes of a cluster share one; there is no per-node field (a
/// node learns its own id from `RaftNode::boot`). Missing fields take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// The initial voting members, used until the log or a snapshot carries a membership entry.
    /// A node booted with an id outside this list (and no durable state) waits as a non-member
    /// until a leader adds it as a learner.
    pub voters: Vec<NodeId>,
    /// Lower bound of the randomised election timeout (§5.2). Also the "leader stickiness"
    /// window: a node that heard from a leader more recently than this refuses to vote (§4.2.3 of
    /// the dissertation), and the base of the leader lease.
    #[serde(with = "serde_duration")]
    pub election_timeout_min: Duration,
    /// Upper bound (exclusive) of the randomised election timeout.
    #[serde(with = "serde_duration")]
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats (and retries stalled replication).
    #[serde(with = "serde_duration")]
    pub heartbeat_interval: Duration,
    /// Pre-vote (dissertation §9.6): ask "would you vote for me?" before bumping the term, so a
    /// partitioned node cannot disrupt a healthy cluster when it rejoins.
    pub pre_vote: bool,
    /// Check-quorum (dissertation §6.2): a leader that has not heard from a majority within an
    /// election timeout steps down.
    pub check_quorum: bool,
    /// Allow `ReadConsistency::Lease` reads to skip the ReadIndex round trip (§6.4.1).
    pub lease_reads: bool,
    /// The most a node's clock may gain or lose relative to another's over one
    /// `election_timeout_min`. The lease ends `election_timeout_min - clock_drift_bound` after the
    /// heartbeat round that a majority acknowledged was *sent*. Lease reads are linearizable only if
    /// real clocks respect this bound.
    #[serde(with = "serde_duration")]
    pub clock_drift_bound: Duration,
    /// Take a snapshot once this many applied entries sit in the log above the last snapshot
    /// (0 disables snapshots).
    pub snapshot_threshold_entries: u64,
    /// A leader sending a follower a snapshot takes no new one (and so compacts nothing) until the
    /// transfer ends or four times the threshold piled up, as etcd pauses compaction while
    /// snapshots are in flight: a new snapshot would compact away the entries right after the one
    /// being sent, the follower would need another, and under steady writes a large state might
    /// never finish. Off by default (the simulator's scenarios were tuned without it); the real
    /// server turns it on.
    pub defer_snapshots_while_sending: bool,
    /// Entries kept in the log below a new snapshot, so a follower a little behind when the leader
    /// compacts catches up from the log instead of needing the whole snapshot (etcd's
    /// `SnapshotCatchUpEntries`). 0 (the default): compact right up to the snapshot.
    pub snapshot_catchup_entries: u64,
    /// Size of one InstallSnapshot chunk (§7).
    pub snapshot_chunk_bytes: usize,
    /// Append requests in flight to one follower while it is replicating (pipelining, §10.2.1).
    pub max_inflight_appends: usize,
    /// Entries in one append request (batching).
    pub max_entries_per_append: usize,
    /// Encoded entry bytes in one append request (at least one entry is always sent).
    pub max_bytes_per_append: usize,
    /// Proposals a leader accepts before it has committed them (back-pressure for clients).
    pub max_uncommitted_entries: u64,
    /// Quiescence (`quiesce.rs`): an idle leader whose followers are all caught up stops
    /// heartbeating, and they stop their election timers, until a message or a request wakes the
    /// group. Off by default. **Needs a driver that watches node liveness** (the multi-Raft host of
    /// `concord-shard`): a quiesced follower cannot notice on its own that its leader died.
    /// Not written when off, so configurations (and traces) from before it read the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quiesce: bool,
    /// Deliberate bugs, for showing that the simulator catches them. All off by default. Only
    /// with the `mutations` cargo feature (see [`Mutations`]); read it through
    /// [`RaftConfig::mutations`].
    #[cfg(feature = "mutations")]
    pub mutations: Mutations,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(50),
            pre_vote: true,
            check_quorum: true,
            lease_reads: true,
            clock_drift_bound: Duration::from_millis(15),
            snapshot_threshold_entries: 1_000,
            defer_snapshots_while_sending: false,
            snapshot_catchup_entries: 0,
            snapshot_chunk_bytes: 64 * 1024,
            max_inflight_appends: 8,
            max_entries_per_append: 64,
            max_bytes_per_append: 256 * 1024,
            max_uncommitted_entries: 10_000,
            quiesce: false,
            #[cfg(feature = "mutations")]
            mutations: Mutations::default(),
        }
    }
}

impl RaftConfig {
    /// The default configuration with the given initial voters.
    pub fn with_voters(voters: impl IntoIterator<Item = u32>) -> Self {
        RaftConfig { voters: voters.into_iter().map(NodeId).collect(), ..RaftConfig::default() }
    }

    /// The deliberate bugs switched on. Without the `mutations` feature this is always
    /// [`Mutations::NONE`], a constant: every `MUTATION(<flag>)` branch reads a constant `false` and
    /// is compiled out.
    #[inline(always)]
    pub fn mutations(&self) -> &Mutations {
        #[cfg(feature = "mutations")]
        {
            &self.mutations
        }
        #[cfg(not(feature = "mutations"))]
        {
            &Mutations::NONE
        }
    }

    /// Switch the deliberate bug `name` on – for `concord chaos --unsafe-mutation` only (a node
    /// that demonstrably breaks, so that the chaos test can show it catches it). Refused, with the
    /// reason, in a build without the `mutations` feature: there the bugs are not compiled in.
    pub fn enable_mutation(&mut self, name: &str) -> Result<(), String> {
        #[cfg(feature = "mutations")]
        {
            self.mutations.enable(name).map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "mutations"))]
        {
            Err(format!(
                "mutation `{name}`: this build has no deliberate bugs compiled in (concord-raft's \
                 `mutations` feature is off)"
            ))
        }
    }

    /// Check the relations between settings that the protocol relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.election_timeout_min.is_zero() || self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::ElectionTimeouts);
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.election_timeout_min {
            return Err(ConfigError::HeartbeatInterval);
        }
        if self.clock_drift_bound >= self.election_timeout_min {
            return Err(ConfigError::ClockDriftBound);
        }
        if self.max_inflight_appends == 0
            || self.max_entries_per_append == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }
}

/// Why [`RaftConfig::validate`] refused a configuration: a relation between settings that the
/// protocol relies on does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("need 0 < election_timeout_min < election_timeout_max")]
    ElectionTimeouts,
    #[error("need 0 < heartbeat_interval < election_timeout_min")]
    HeartbeatInterval,
    #[error("clock_drift_bound must be below election_timeout_min (the lease would be empty)")]
    ClockDriftBound,
    #[error("max_inflight_appends, max_entries_per_append and snapshot_chunk_bytes must be > 0")]
    ZeroLimit,
}

/// [`Mutations::enable`] was given a name that is not one of [`Mutations::NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutation `{name}`; known: {:?}", Mutations::NAMES)]
pub struct UnknownMutation {
    pub name: String,
}

impl RaftConfig {}

/// Deliberate bugs. Each flag changes exactly one spot in the code, marked `MUTATION(<flag>)`, so
/// that a seed sweep can show it is caught. Whenever a flag actually changes what the node does, it
/// emits a `mutation-fired` event (so a sweep can tell "never triggered" from "triggered but not
/// caught").
///
/// ## Behind the `mutations` cargo feature
/// Only the simulator (`concord-sim`), the test harness (`concord-raft-harness`) and tests enable
/// it. Without it, [`RaftConfig`] has no `mutations` field (a `[raft]` table naming one fails to
/// parse as an unknown field) and [`RaftConfig::mutations`] is the constant [`Mutations::NONE`], so
/// the bugs are not compiled into the node.
///
/// Cargo unifies features across a build: the `concord` binary links the simulator, so in *that*
/// build the feature is on for the server too. A node therefore must not rely on the feature being
/// off: `concord-server`'s config refuses a `[raft]` table that names `mutations` by looking at the
/// raw TOML table itself, whether or not the feature is on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mutations {
    /// Grant votes to candidates of an older term (skip `term < currentTerm → reject`, §5.1).
    pub vote_without_term_check: bool,
    /// Commit an entry of an earlier term by counting replicas (the Figure 8 bug, §5.4.2).
    pub commit_old_term_by_counting: bool,
    /// Send the vote before the vote is durable (no sync).
    pub skip_vote_sync: bool,
    /// Serve ReadIndex and lease reads without confirming leadership.
    pub read_from_deposed_leader: bool,
    /// Accept appends without checking the term of the previous entry (§5.3).
    pub skip_log_matching_check: bool,
    /// A follower serves a linearizable read at once from its own state machine, without asking
    /// the leader for a read index (`read.rs`, follower reads).
    pub follower_read_without_index: bool,
    /// The leader counts its whole log in the commit quorum while it still streams entries ahead
    /// of its own sync (`replication.rs`, "The leader's own disk").
    pub count_unsynced_self: bool,
}

impl Mutations {
    /// Whether this build has the deliberate bugs compiled in (the `mutations` feature).
    pub const COMPILED: bool = cfg!(feature = "mutations");

    /// Every flag off: what a node without the `mutations` feature always runs.
    pub const NONE: Mutations = Mutations {
        vote_without_term_check: false,
        commit_old_term_by_counting: false,
        skip_vote_sync: false,
        read_from_deposed_leader: false,
        skip_log_matching_check: false,
        follower_read_without_index: false,
        count_unsynced_self: false,
    };

    /// The names of the flags, as written in scenario files.
    pub const NAMES: [&'static str; 7] = [
        "vote_without_term_check",
        "commit_old_term_by_counting",
        "skip_vote_sync",
        "read_from_deposed_leader",
        "skip_log_matching_check",
        "follower_read_without_index",
        "count_unsynced_self",
    ];

    /// Turn one flag on by name.
    pub fn enable(&mut self, name: &str) -> Result<(), UnknownMutation> {
        match name {
            "vote_without_term_check" => self.vote_without_term_check = true,
            "commit_old_term_by_counting" => self.commit_old_term_by_counting = true,
            "skip_vote_sync" => self.skip_vote_sync = true,
            "read_from_deposed_leader" => self.read_from_deposed_leader = true,
            "skip_log_matching_check" => self.skip_log_matching_check = true,
            "follower_read_without_index" => self.follower_read_without_index = true,
            "count_unsynced_self" => self.count_unsynced_self = true,
            other => return Err(UnknownMutation { name: other.to_string() }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml_like_json() {
        let c = RaftConfig::default();
        c.validate().unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"150ms\""), "{text}");
        let back: RaftConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn broken_relations_are_named_by_variant() {
        let c = RaftConfig { heartbeat_interval: Duration::from_millis(200), ..RaftConfig::default() };
        assert_eq!(c.validate(), Err(ConfigError::HeartbeatInterval));
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "need 0 < heartbeat_interval < election_timeout_min"
        );
        let err = Mutations::default().enable("nope").unwrap_err();
        assert_eq!(err.name, "nope");
        assert!(err.to_string().starts_with("unknown mutation `nope`; known: ["), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_rejected() {
        assert!(serde_json::from_str::<RaftConfig>(r#"{"heartbeat":"1s"}"#).is_err());
        assert!(serde_json::from_str::<RaftConfig>(r#"{"heartbeat_interval":"soon"}"#).is_err());
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn with_the_feature_mutations_are_read_from_the_config() {
        let c: RaftConfig = serde_json::from_str(r#"{"mutations":{"skip_vote_sync":true}}"#).unwrap();
        assert!(c.mutations().skip_vote_sync && !c.mutations().vote_without_term_check);
    }

    #[cfg(not(feature = "mutations"))]
    #[test]
    fn without_the_feature_a_config_cannot_name_mutations() {
        let err = serde_json::from_str::<RaftConfig>(r#"{"mutations":{"skip_vote_sync":true}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `mutations`"), "{err}");
        assert_eq!(RaftConfig::default().mutations(), &Mutations::NONE);
    }
}

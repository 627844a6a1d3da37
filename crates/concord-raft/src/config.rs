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
    /// Deliberate bugs, for showing that the simulator catches them. All off by default.
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
            mutations: Mutations::default(),
        }
    }
}

impl RaftConfig {
    /// The default configuration with the given initial voters.
    pub fn with_voters(voters: impl IntoIterator<Item = u32>) -> Self {
        RaftConfig { voters: voters.into_iter().map(NodeId).collect(), ..RaftConfig::default() }
    }

    /// Check the relations between settings that the protocol relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.election_timeout_min.is_zero() || self.election_timeout_max <= self.election_timeout_min {
            return Err("need 0 < election_timeout_min < election_timeout_max".into());
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.election_timeout_min {
            return Err("need 0 < heartbeat_interval < election_timeout_min".into());
        }
        if self.clock_drift_bound >= self.election_timeout_min {
            return Err(
                "clock_drift_bound must be below election_timeout_min (the lease would be empty)".into()
            );
        }
        if self.max_inflight_appends == 0
            || self.max_entries_per_append == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err(
                "max_inflight_appends, max_entries_per_append and snapshot_chunk_bytes must be > 0".into()
            );
        }
        Ok(())
    }
}

/// Deliberate bugs. Each flag changes exactly one spot in the code, marked `MUTATION(<flag>)`, so
/// that a seed sweep can show it is caught. Whenever a flag actually changes what the node does, it
/// emits a `mutation-fired` event (so a sweep can tell "never triggered" from "triggered but not
/// caught").
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
}

impl Mutations {
    /// The names of the flags, as written in scenario files.
    pub const NAMES: [&'static str; 5] = [
        "vote_without_term_check",
        "commit_old_term_by_counting",
        "skip_vote_sync",
        "read_from_deposed_leader",
        "skip_log_matching_check",
    ];

    /// Turn one flag on by name.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "vote_without_term_check" => self.vote_without_term_check = true,
            "commit_old_term_by_counting" => self.commit_old_term_by_counting = true,
            "skip_vote_sync" => self.skip_vote_sync = true,
            "read_from_deposed_leader" => self.read_from_deposed_leader = true,
            "skip_log_matching_check" => self.skip_log_matching_check = true,
            other => return Err(format!("unknown mutation `{other}`; known: {:?}", Self::NAMES)),
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
    fn unknown_fields_and_bad_durations_are_rejected() {
        assert!(serde_json::from_str::<RaftConfig>(r#"{"heartbeat":"1s"}"#).is_err());
        assert!(serde_json::from_str::<RaftConfig>(r#"{"heartbeat_interval":"soon"}"#).is_err());
        let c: RaftConfig = serde_json::from_str(r#"{"mutations":{"skip_vote_sync":true}}"#).unwrap();
        assert!(c.mutations.skip_vote_sync && !c.mutations.vote_without_term_check);
    }
}

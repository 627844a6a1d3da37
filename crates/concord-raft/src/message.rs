//! Every message Raft nodes exchange, and the client-facing request and response types.
//!
//! | kind | paper | purpose |
//! |---|---|---|
//! | `pre-vote` / `pre-vote-resp` | dissertation §9.6 | "would you vote for me?" without bumping terms |
//! | `vote` / `vote-resp` | §5.2, Figure 2 RequestVote | elect a leader |
//! | `append` / `append-resp` | §5.3, Figure 2 AppendEntries | replicate entries, with conflict hints (§5.3 end) |
//! | `heartbeat` / `heartbeat-resp` | §5.2 | keep followers quiet, carry the commit index, confirm leadership for reads (§6.4) |
//! | `snapshot` / `snapshot-resp` | §7, Figure 13 InstallSnapshot | send a snapshot in chunks |
//! | `timeout-now` | dissertation §3.10 | leadership transfer: "start an election now" |
//! | `quiesce` | CockroachDB's quiescence | an idle leader asks its caught-up followers to stop their election timers (`quiesce.rs`) |
//! | `wake` | – | a quiesced follower woken by something else asks its leader to heartbeat again (`quiesce.rs`) |
//! | `read-index` / `read-index-resp` | dissertation §6.4 (follower reads) | a follower asks the leader for a read index, served once leadership is confirmed (`read.rs`) |
//!
//! Every message carries the sender's term; [`Message::term`] gives it to the one place that applies
//! the term rules (`node.rs`, `step`).

use crate::log::Entry;
use crate::membership::Membership;
use concord_core::{ClientId, NodeId};
use serde::{Deserialize, Serialize};

/// A Raft message between nodes. `C` is the state machine's command type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message<C> {
    PreVote(VoteRequest),
    PreVoteResp(VoteResponse),
    Vote(VoteRequest),
    VoteResp(VoteResponse),
    Append(AppendRequest<C>),
    AppendResp(AppendResponse),
    Heartbeat(Heartbeat),
    HeartbeatResp(HeartbeatResponse),
    Snapshot(SnapshotChunk),
    SnapshotResp(SnapshotResponse),
    TimeoutNow {
        term: u64,
    },
    /// Quiescence (`quiesce.rs`); sent only when `RaftConfig::quiesce` is on. Last in the enum:
    /// postcard encodes variants by index, so earlier variants keep theirs.
    Quiesce(QuiesceNotice),
    /// A woken quiesced follower asks its leader to resume heartbeats (`quiesce.rs`).
    Wake {
        term: u64,
    },
    /// A follower asks its leader for a read index (`read.rs`, follower reads).
    ReadIndex(ReadIndexRequest),
    /// The leader's answer, once a heartbeat round started after the request was acknowledged by
    /// a majority; or a refusal (`index: None`) from a node that is not (or no longer) leader.
    ReadIndexResp(ReadIndexResponse),
    /// A loopback (never on the wire): the leader of `term` sent it to itself behind the sync of
    /// its log up to `index`, so receiving it means those entries are on its disk
    /// (`replication.rs`, "The leader's own disk").
    Synced {
        term: u64,
        index: u64,
    },
}

impl<C> Message<C> {
    /// The sender's term (for a pre-vote request: the term it *would* campaign in).
    pub fn term(&self) -> u64 {
        match self {
            Message::PreVote(m) | Message::Vote(m) => m.term,
            Message::PreVoteResp(m) | Message::VoteResp(m) => m.term,
            Message::Append(m) => m.term,
            Message::AppendResp(m) => m.term,
            Message::Heartbeat(m) => m.term,
            Message::HeartbeatResp(m) => m.term,
            Message::Snapshot(m) => m.term,
            Message::SnapshotResp(m) => m.term,
            Message::TimeoutNow { term } => *term,
            Message::Quiesce(m) => m.term,
            Message::Wake { term } => *term,
            Message::ReadIndex(m) => m.term,
            Message::ReadIndexResp(m) => m.term,
            Message::Synced { term, .. } => *term,
        }
    }

    /// Whether only a leader sends this message (so its sender is the leader of `term()`).
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            Message::Append(_)
                | Message::Heartbeat(_)
                | Message::Snapshot(_)
                | Message::TimeoutNow { .. }
                | Message::Quiesce(_)
        )
    }
}

impl<C> concord_core::Message for Message<C>
where
    C: Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    fn kind(&self) -> &'static str {
        match self {
            Message::PreVote(_) => "pre-vote",
            Message::PreVoteResp(_) => "pre-vote-resp",
            Message::Vote(_) => "vote",
            Message::VoteResp(_) => "vote-resp",
            Message::Append(_) => "append",
            Message::AppendResp(_) => "append-resp",
            Message::Heartbeat(_) => "heartbeat",
            Message::HeartbeatResp(_) => "heartbeat-resp",
            Message::Snapshot(_) => "snapshot",
            Message::SnapshotResp(_) => "snapshot-resp",
            Message::TimeoutNow { .. } => "timeout-now",
            Message::Quiesce(_) => "quiesce",
            Message::Wake { .. } => "wake",
            Message::ReadIndex(_) => "read-index",
            Message::ReadIndexResp(_) => "read-index-resp",
            Message::Synced { .. } => "synced",
        }
    }
}

/// RequestVote (§5.2) and its pre-vote twin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    pub term: u64,
    pub last_log_index: u64,
    pub last_log_term: u64,
    /// Set when the election was started by a leadership transfer: voters then ignore the
    /// "I heard from a leader recently" rule (dissertation §3.10, §4.2.3).
    pub transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    pub term: u64,
    pub granted: bool,
}

/// AppendEntries (§5.3). `round` is the leader's heartbeat round, echoed back to confirm
/// leadership for ReadIndex and leases (§6.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppendRequest<C> {
    pub term: u64,
    pub prev_log_index: u64,
    pub prev_log_term: u64,
    pub entries: Vec<Entry<C>>,
    pub leader_commit: u64,
    pub round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    pub term: u64,
    pub success: bool,
    /// On success: the follower's log matches the leader's up to here.
    pub match_index: u64,
    /// On failure: the `prev_log_index` that was rejected (lets the leader drop stale rejections).
    pub rejected_prev_index: u64,
    /// On failure, the fast back-off hints (end of §5.3): the term of the follower's conflicting
    /// entry, if it has one at `prev_log_index`…
    pub conflict_term: Option<u64>,
    /// …and the first index the follower holds for that term (or its last index + 1 when its log
    /// is too short).
    pub conflict_index: u64,
    pub round: u64,
}

/// A heartbeat: an append without entries and without a consistency check. `leader_commit` is
/// capped at what the follower is known to hold, so it never commits an entry it might not match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub term: u64,
    pub leader_commit: u64,
    pub round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub term: u64,
    pub round: u64,
    /// The follower's last log index (a hint that it needs entries).
    pub last_log_index: u64,
}

/// "Everything is replicated and committed; stop your election timer" (`quiesce.rs`). Sent in
/// place of a heartbeat, as heartbeat round `round`, and answered with a [`HeartbeatResponse`]. A
/// follower agrees only if its log ends exactly where the leader's does (`last_log_index`,
/// `last_log_term`: by Log Matching the two logs are then identical), and then commits
/// `leader_commit` (which equals `last_log_index`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiesceNotice {
    pub term: u64,
    pub leader_commit: u64,
    pub last_log_index: u64,
    pub last_log_term: u64,
    pub round: u64,
}

/// A follower's request for a read index (`read.rs`). `id` is the follower's own number for the
/// read, echoed in the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    pub term: u64,
    pub id: u64,
}

/// The answer to a [`ReadIndexRequest`]. `index: Some(i)`: the sender was leader of `term` after the
/// request arrived, and every write acknowledged before then is at or below `i`; the follower may
/// serve the read once it has applied `i`. `None`: the sender cannot give a read index (it is not
/// the leader, or lost leadership before confirming it); the follower fails the read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    pub term: u64,
    pub id: u64,
    pub index: Option<u64>,
}

/// What a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes, and its term.
    pub index: u64,
    pub term: u64,
    /// The membership as of `index`.
    pub membership: Membership,
}

/// One chunk of InstallSnapshot (§7, Figure 13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub term: u64,
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub data: Vec<u8>,
    pub total_bytes: u64,
    pub done: bool,
    pub round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    pub term: u64,
    /// The snapshot this answers.
    pub snapshot_index: u64,
    /// Bytes received so far: where the next chunk should start.
    pub next_offset: u64,
    /// The snapshot is installed (the follower now holds everything up to `snapshot_index`).
    pub installed: bool,
    pub round: u64,
}

/// A client session: a client and the sequence number of its request. A command carrying a session
/// is applied at most once, however often it is retried (dissertation §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Session {
    pub client: ClientId,
    pub seq: u64,
}

/// How a read is served (dissertation §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// ReadIndex: the leader confirms it is still leader with a heartbeat round, then answers once
    /// it has applied up to the commit index it saw when the read arrived. Linearizable.
    Linearizable,
    /// Leader lease: no round trip while the lease holds. Linearizable only if clocks drift less
    /// than `clock_drift_bound`; falls back to ReadIndex when the lease has expired.
    Lease,
    /// Answer from the local state of any node, leader or not. May be arbitrarily stale.
    Stale,
}

/// A membership or leadership request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Add a non-voting member that receives the log (dissertation §4.2.1).
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Remove a voter or a learner – possibly the leader itself (§4.2.2).
    Remove(NodeId),
    /// Hand leadership to a voter (§3.10).
    TransferLeadership(NodeId),
}

/// A client request (`Process::Request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RaftRequest<C, Q> {
    /// Replicate a command. With a session it is applied once however often it is retried.
    Propose {
        session: Option<Session>,
        command: C,
    },
    /// Answer a query from the state machine.
    Read {
        consistency: ReadConsistency,
        query: Q,
    },
    Admin(AdminRequest),
}

/// The answer to a client request (`Process::Response`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RaftResponse<O> {
    /// The command was committed and applied, or the read was served: the state machine's output.
    Output(O),
    /// A membership change was committed; the membership now in force.
    MembershipChanged { index: u64, membership: Membership },
    /// Leadership moved to `to`.
    LeadershipTransferred { to: NodeId },
    /// Not the leader (or no longer); the request certainly did not take effect here.
    NotLeader { hint: Option<NodeId> },
    /// The request was refused before it took effect (a membership change already in flight, a
    /// transfer in progress, back-pressure, …).
    Rejected { reason: String },
    /// The outcome is unknown: e.g. the leader lost leadership with the proposal in its log.
    Unknown { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Payload;
    use concord_core::Message as _;
    use std::sync::Arc;

    #[test]
    fn messages_round_trip_and_name_their_kind() {
        let append: Message<i64> = Message::Append(AppendRequest {
            term: 3,
            prev_log_index: 4,
            prev_log_term: 2,
            entries: vec![Entry {
                term: 3,
                index: 5,
                payload: Payload::Command { session: None, command: Arc::new(9) },
            }],
            leader_commit: 4,
            round: 7,
        });
        let text = serde_json::to_string(&append).unwrap();
        assert_eq!(serde_json::from_str::<Message<i64>>(&text).unwrap(), append);
        assert_eq!(append.kind(), "append");
        assert_eq!(append.term(), 3);
        assert!(append.is_from_leader());
        let vote: Message<i64> =
            Message::PreVote(VoteRequest { term: 2, last_log_index: 0, last_log_term: 0, transfer: false });
        assert_eq!(vote.kind(), "pre-vote");
        assert_eq!(Message::<i64>::TimeoutNow { term: 1 }.kind(), "timeout-now");
    }
}

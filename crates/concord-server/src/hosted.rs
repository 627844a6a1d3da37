//! What the driver needs to know about a protocol beyond [`Process`]: how its messages travel,
//! what it publishes after every batch, and how it is measured.
//!
//! The [`crate::driver`] loop is generic: it runs any sans-IO [`Process`] against a real clock,
//! disk and network. The two consistency modes plug in here:
//!
//! | | strong mode ([`RaftKv`]) | eventual mode ([`DynamoNode`]) |
//! |---|---|---|
//! | peer frame | [`Frame::Raft`] | [`Frame::Dynamo`] |
//! | forwarded client requests | a follower forwards to its leader ([`Frame::ForwardReply`]) | inside the protocol (`DynamoMessage::Forward`) |
//! | status | [`Status`]: role, term, indexes, followers' match index | [`EventualStatus`]: SWIM members, keys, hints, anti-entropy |
//! | metrics | `concord_raft_*` gauges | `concord_dynamo_*` gauges |

use crate::metrics::Metrics;
use crate::wire::Frame;
use crate::RaftKv;
use concord_core::{NodeId, Process};
use concord_dynamo::{DynamoMessage, DynamoNode, DynamoResponse};
use concord_kv::Changes;
use concord_raft::RaftResponse;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A protocol node the driver can host.
pub trait Hosted: Process + Send {
    /// What the node publishes after every batch, or after a pause ([`Hosted::status_interval`])
    /// (HTTP, INFO, dashboards read it from a `watch`).
    type Status: Clone + Default + PartialEq + Send + Sync + 'static;
    /// The driver's own notes about the node, kept between batches.
    type Tracker: Default + Send;

    fn id(&self) -> NodeId;

    /// A message to a peer, as a wire frame.
    fn frame(msg: Self::Message) -> Frame;

    /// The answer to a request the driver refuses before the node sees it (overload, a full disk).
    fn refused(reason: String) -> Self::Response;

    /// Whether `request` writes (refused while the data disk is full; reads go on).
    fn is_write(request: &Self::Request) -> bool;

    /// The answer to a request a peer forwarded, as a frame back to it (`None`: the protocol never
    /// has requests forwarded by the driver).
    fn forward_reply(id: u64, response: Self::Response) -> Option<Frame>;

    /// A message is about to be delivered: note what the status should show.
    fn observe(&self, _tracker: &mut Self::Tracker, _from: NodeId, _msg: &Self::Message) {}

    /// The status after a batch.
    fn status(&self, tracker: &mut Self::Tracker, wal_syncs: u64) -> Self::Status;

    /// At most how often the driver builds and publishes [`Hosted::status`]: `None` (the default)
    /// after every batch. A node whose status costs time in proportion to its size (a sharded
    /// node with thousands of groups) asks for a pause between two, so that an idle node does not
    /// spend its time describing itself; a batch within the pause leaves the status owed, and the
    /// driver publishes it when the pause ends.
    fn status_interval(&self) -> Option<Duration> {
        None
    }

    /// Set the protocol's gauges.
    fn export(status: &Self::Status, metrics: &Metrics);

    /// Start recording which keys applied writes change (the change feed that `CLIENT TRACKING`
    /// invalidates from; see `concord_kv::changes`). Default: the protocol has no such feed.
    fn record_changes(&mut self) {}

    /// The keys changed since the last call (asked after every batch once recording is on).
    fn take_changes(&mut self) -> Changes {
        Changes::default()
    }
}

/// A Raft node's state after its last batch, for HTTP, INFO and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    pub id: u32,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u32>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u32>,
    pub learners: Vec<u32>,
    /// As the leader sees it: the highest log index each follower is known to hold (the leader's
    /// own progress tracking, so it drops to 0 when a follower's log went backwards). Empty on
    /// followers.
    pub match_index: BTreeMap<u32, u64>,
    /// How often this node, while leading, found a follower that no longer held entries it had
    /// acknowledged (a wiped or truncated disk) and reset its progress. Since start.
    pub follower_log_regressions: u64,
    pub wal_syncs: u64,
    /// Keys in this node's applied state, and how many of them have a TTL (`INFO keyspace`).
    pub keys: u64,
    pub expiring_keys: u64,
}

impl Hosted for RaftKv {
    type Status = Status;
    /// Nothing: the node reports its followers' progress itself.
    type Tracker = ();

    fn id(&self) -> NodeId {
        RaftKv::id(self)
    }

    fn frame(msg: Self::Message) -> Frame {
        Frame::Raft(msg)
    }

    fn refused(reason: String) -> Self::Response {
        RaftResponse::Rejected { reason }
    }

    /// Proposals. Membership changes (admin requests) stay possible: removing the full node may
    /// be the way out.
    fn is_write(request: &Self::Request) -> bool {
        matches!(request, concord_raft::RaftRequest::Propose { .. })
    }

    fn forward_reply(id: u64, response: Self::Response) -> Option<Frame> {
        Some(Frame::ForwardReply { id, response })
    }

    fn status(&self, _: &mut (), wal_syncs: u64) -> Status {
        let m = self.current_membership();
        Status {
            id: self.id().0,
            role: self.role_name(),
            term: self.current_term(),
            leader: self.leader_id().map(|l| l.0),
            commit_index: self.commit_index(),
            applied_index: self.applied_index(),
            last_log_index: self.last_log_index(),
            snapshot_index: self.snapshot_index(),
            voters: m.voters.iter().map(|v| v.0).collect(),
            learners: m.learners.iter().map(|v| v.0).collect(),
            match_index: self
                .follower_progress()
                .into_iter()
                .map(|(id, (matched, _))| (id.0, matched))
                .collect(),
            follower_log_regressions: self.follower_log_regressions(),
            wal_syncs,
            // Both are kept counts in redb (no scan), so asking after every batch is cheap.
            keys: self.state_machine().len(),
            expiring_keys: self.state_machine().expiring_len(),
        }
    }

    fn record_changes(&mut self) {
        self.state_machine_mut().record_changes(concord_kv::DEFAULT_CHANGE_LIMIT);
    }

    fn take_changes(&mut self) -> Changes {
        self.state_machine_mut().take_changes()
    }

    fn export(status: &Status, metrics: &Metrics) {
        metrics.raft_term.set(status.term as i64);
        metrics.raft_commit_index.set(status.commit_index as i64);
        metrics.raft_applied_index.set(status.applied_index as i64);
        metrics.raft_last_log_index.set(status.last_log_index as i64);
        metrics.raft_follower_log_regressions.set(status.follower_log_regressions as i64);
        metrics.set_role(status.role);
    }
}

/// How one member looks to an eventual-mode node (its SWIM view).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberView {
    pub id: u32,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: &'static str,
    pub incarnation: u64,
}

/// A Dynamo node's state after its last batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventualStatus {
    pub id: u32,
    /// Every member but this node, as SWIM sees it.
    pub members: Vec<MemberView>,
    /// The ring (members that have not left, this node included).
    pub ring: Vec<u32>,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    /// Keys this node holds as a replica (tombstones included).
    pub keys: usize,
    /// Objects held for members believed down, waiting for hinted handoff.
    pub hints: usize,
    /// Writes acknowledged with this node as coordinator since it started.
    pub writes_acknowledged: u64,
    pub anti_entropy_exchanges: u64,
    pub anti_entropy_in_sync: u64,
    pub anti_entropy_objects_sent: u64,
    pub anti_entropy_bytes_sent: u64,
    pub anti_entropy_full_sync_bytes: u64,
    pub tombstones_purged: u64,
    pub wal_syncs: u64,
}

impl Hosted for DynamoNode {
    type Status = EventualStatus;
    type Tracker = ();

    fn id(&self) -> NodeId {
        DynamoNode::id(self)
    }

    fn frame(msg: DynamoMessage) -> Frame {
        Frame::Dynamo(msg)
    }

    fn refused(reason: String) -> DynamoResponse {
        DynamoResponse::Fail(reason)
    }

    fn is_write(request: &concord_dynamo::DynamoRequest) -> bool {
        request.is_write()
    }

    fn forward_reply(_id: u64, _response: DynamoResponse) -> Option<Frame> {
        None // a Dynamo node forwards writes itself, with `DynamoMessage::Forward`
    }

    fn status(&self, _: &mut (), wal_syncs: u64) -> EventualStatus {
        use concord_dynamo::swim::MemberState;
        let config = self.config();
        let ae = self.anti_entropy_stats();
        EventualStatus {
            id: self.id().0,
            members: self
                .swim()
                .members()
                .iter()
                .map(|(id, m)| MemberView {
                    id: id.0,
                    state: match m.state {
                        MemberState::Alive => "alive",
                        MemberState::Suspect => "suspect",
                        MemberState::Dead => "dead",
                        MemberState::Left => "left",
                    },
                    incarnation: m.incarnation,
                })
                .collect(),
            ring: self.swim().ring_members().iter().map(|n| n.0).collect(),
            n: config.n,
            r: config.r,
            w: config.w,
            keys: self.store().len(),
            hints: self.hints().len(),
            writes_acknowledged: self.acks_total(),
            anti_entropy_exchanges: ae.exchanges,
            anti_entropy_in_sync: ae.in_sync,
            anti_entropy_objects_sent: ae.objects_sent,
            anti_entropy_bytes_sent: ae.bytes_sent,
            anti_entropy_full_sync_bytes: ae.full_sync_bytes,
            tombstones_purged: self.purged(),
            wal_syncs,
        }
    }

    fn export(status: &EventualStatus, metrics: &Metrics) {
        metrics.dynamo_keys.set(status.keys as i64);
        metrics.dynamo_hints.set(status.hints as i64);
        metrics.dynamo_anti_entropy_bytes.set(status.anti_entropy_bytes_sent as i64);
        let alive = status.members.iter().filter(|m| m.state == "alive").count() + 1;
        metrics.dynamo_members_alive.set(alive as i64);
    }
}

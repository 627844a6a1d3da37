//! The Raft node: its state (Figure 2), boot and recovery, the one `step` that applies the term
//! rules, dispatch to a step function per role, client requests, and applying committed entries.
//!
//! Where things live:
//! * term rules and role dispatch – here ([`RaftNode::step`]);
//! * elections, votes, pre-vote, leadership transfer – `election.rs`;
//! * appends, back-off, commit rule, flow control, heartbeats, check-quorum – `replication.rs`;
//! * snapshots – `snapshot.rs`; reads – `read.rs`; membership rules – `membership.rs`.
//!
//! ## Persistence discipline
//! Every durable write goes through [`RaftNode::persist`], which only *records* that a sync is
//! owed. Every outgoing message and client reply goes through [`RaftNode::send`] / [`RaftNode::reply`],
//! which first emit the owed `Sync`. Since the driver holds back every effect after a `Sync` until
//! the writes before it are durable, **nothing leaves the node before the state it depends on is on
//! disk** – the vote before the vote response, the entries before the append acknowledgement (§5.6,
//! Figure 2 "updated on stable storage before responding to RPCs").
//!
//! Two kinds of output depend on nothing unsynced and need not wait: a leader's appends and
//! heartbeats once its term is known durable (`replication.rs`, "The leader's own disk": the leader
//! writes its log *while* followers write theirs, dissertation §10.2.1), and answers decided by
//! committed entries alone ([`RaftNode::reply_committed`]).

use crate::config::RaftConfig;
use crate::log::{Entry, Payload, RaftLog};
use crate::membership::{ConfigHistory, Membership, MembershipChange};
use crate::message::{AdminRequest, Message, RaftRequest, RaftResponse, ReadConsistency, Session};
use crate::read::{FollowerRead, PendingRead, ReadFor};
use crate::replication::LeaderState;
use crate::session::{SessionCheck, Sessions};
use crate::snapshot::{DurableBoot, IncomingSnapshot, SnapshotData, StoredSnapshot};
use crate::storage::{self, corrupt_machine, HardState, RecoveryError};
use concord_core::{Io, NodeId, Process, RequestId, StateMachine, StorageOp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The node's timers (one deadline per name; re-arming replaces it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Followers and candidates: no leader heard for a randomised timeout → campaign (§5.2).
    Election,
    /// Leader: send heartbeats, retry stalled replication.
    Heartbeat,
    /// Leader: every `election_timeout_min`, step down unless a majority was heard (check-quorum);
    /// also ends a leadership transfer that takes too long.
    CheckQuorum,
}

/// The role a node plays, with the state only that role needs.
#[derive(Debug)]
pub(crate) enum Role {
    Follower,
    /// Collecting pre-votes for `term + 1` without having bumped its term (§9.6).
    PreCandidate {
        votes: BTreeMap<NodeId, bool>,
    },
    Candidate {
        votes: BTreeMap<NodeId, bool>,
    },
    Leader(Box<LeaderState>),
}

/// A proposal waiting for its entry to be applied.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Proposal {
    pub request: RequestId,
    pub term: u64,
}

/// One Raft server, generic over the replicated state machine.
pub struct RaftNode<S: StateMachine> {
    pub(crate) id: NodeId,
    pub(crate) config: RaftConfig,
    pub(crate) sm: S,
    pub(crate) sessions: Sessions<S::Output>,

    // Persistent state (Figure 2), mirrored on disk.
    pub(crate) term: u64,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) hard_state_version: u64,
    pub(crate) log: RaftLog<S::Command>,
    /// The latest snapshot (present whenever `log.snapshot_index() > 0`).
    pub(crate) snapshot: Option<StoredSnapshot>,
    pub(crate) configs: ConfigHistory,

    // Volatile state.
    pub(crate) commit_index: u64,
    pub(crate) applied_index: u64,
    pub(crate) role: Role,
    pub(crate) leader_id: Option<NodeId>,
    /// Local time we last heard from a leader of our term (or booted): the stickiness window.
    pub(crate) leader_contact: Option<concord_core::Time>,
    /// A `Persist` was emitted and no `Sync` since.
    pub(crate) needs_sync: bool,
    pub(crate) proposals: BTreeMap<u64, Proposal>,
    /// Leader: reads (its clients' and followers' read-index requests) waiting (`read.rs`).
    pub(crate) reads: Vec<PendingRead<S::Query>>,
    /// Follower: reads waiting for the leader's read index or for our state machine, in arrival
    /// order (`read.rs`).
    pub(crate) follower_reads: std::collections::VecDeque<FollowerRead<S::Query>>,
    /// Follower: the number of the last read-index request sent (`read.rs`, batched follower
    /// requests), and whether its answer is still awaited.
    pub(crate) follower_read_sent: u64,
    pub(crate) follower_read_in_flight: bool,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// A leadership-transfer request waiting to learn who won.
    pub(crate) pending_transfer: Option<(RequestId, NodeId)>,
    /// Deletes from recovery, emitted at start.
    pub(crate) startup_cleanup: Vec<StorageOp>,
    /// Times this node, as leader, found a follower without entries it had acknowledged (its log
    /// went backwards: a wiped or truncated disk). See `replication.rs`.
    pub(crate) follower_log_regressions: u64,
    /// Quiesced (`quiesce.rs`): as leader, no heartbeats; as follower, no election timer.
    pub(crate) quiesced: bool,
}

impl<S: StateMachine> RaftNode<S> {
    /// Build a node from its configuration, an empty state machine and whatever it finds on disk.
    ///
    /// Recovers term, vote, log and the newest complete snapshot (restoring `state_machine` from it).
    /// A torn tail (the last unsynced write) is dropped; a damaged record that must have been synced
    /// is a [`RecoveryError`], never a panic.
    pub fn boot(
        id: NodeId,
        config: RaftConfig,
        mut state_machine: S,
        durable: &concord_core::Durable,
    ) -> Result<Self, RecoveryError> {
        config.validate().map_err(RecoveryError::Config)?;
        let recovered = storage::recover::<S::Command>(durable)?;
        let initial = Membership::new(config.voters.iter().copied());
        let mut cleanup = recovered.cleanup;
        // A durable machine holds its own state: Raft's snapshot record only bounds the log (and
        // carries the machine's bytes only if written before the machine was durable).
        let mut wal_machine = Vec::new();
        let (mut log, mut configs, mut sessions, mut snapshot) = match recovered.snapshot {
            Some((record, data)) => {
                let decoded = SnapshotData::<S::Output>::decode(&data).map_err(corrupt_machine)?;
                if state_machine.is_durable() {
                    wal_machine = decoded.machine;
                } else {
                    state_machine.restore(&decoded.machine).map_err(RecoveryError::StateMachine)?;
                }
                let meta = record.meta;
                (
                    RaftLog::new(meta.index, meta.term),
                    ConfigHistory::new(meta.index, meta.membership.clone()),
                    decoded.sessions,
                    Some(StoredSnapshot::new(meta, data)),
                )
            }
            None => (RaftLog::new(0, 0), ConfigHistory::new(0, initial), Sessions::default(), None),
        };
        for entry in recovered.entries {
            if let Payload::Config(m) = &entry.payload {
                configs.push(entry.index, m.clone());
            }
            log.append(entry);
        }
        if state_machine.is_durable() {
            let booting = DurableBoot {
                log: &mut log,
                configs: &mut configs,
                sessions: &mut sessions,
                snapshot: &mut snapshot,
                cleanup: &mut cleanup,
            };
            booting.reconcile(&mut state_machine, wal_machine)?;
        }
        let hs = recovered.hard_state;
        let base = log.snapshot_index();
        Ok(RaftNode {
            id,
            config,
            sm: state_machine,
            sessions,
            term: hs.term,
            voted_for: hs.voted_for,
            hard_state_version: hs.version,
            log,
            snapshot,
            configs,
            commit_index: base,
            applied_index: base,
            role: Role::Follower,
            leader_id: None,
            leader_contact: None,
            needs_sync: false,
            proposals: BTreeMap::new(),
            reads: Vec::new(),
            follower_reads: Default::default(),
            follower_read_sent: 0,
            follower_read_in_flight: false,
            incoming_snapshot: None,
            pending_transfer: None,
            startup_cleanup: cleanup,
            follower_log_regressions: 0,
            quiesced: false,
        })
    }

    // ----- persistence and output, in the only order allowed -----

    /// Emit a durable write; a `Sync` is now owed before the next message or reply.
    pub(crate) fn persist(&mut self, io: &mut Io<'_, Self>, op: StorageOp) {
        io.persist(op);
        self.needs_sync = true;
    }

    /// Write term and vote (to the slot not holding the last version).
    pub(crate) fn persist_hard_state(&mut self, io: &mut Io<'_, Self>) {
        self.hard_state_version += 1;
        let hs = HardState { version: self.hard_state_version, term: self.term, voted_for: self.voted_for };
        self.persist(io, StorageOp::Put { key: hs.key().to_string(), value: storage::encode(&hs) });
    }

    /// Emit the owed `Sync`, if any.
    pub(crate) fn flush(&mut self, io: &mut Io<'_, Self>) {
        if self.needs_sync {
            io.sync();
            self.needs_sync = false;
        }
    }

    /// Send a message after everything it may depend on is durable.
    pub(crate) fn send(&mut self, io: &mut Io<'_, Self>, to: NodeId, msg: Message<S::Command>) {
        debug_assert_ne!(to, self.id, "no messages to self");
        self.flush(io);
        io.send(to, msg);
    }

    /// Reply to a client after everything it may depend on is durable.
    pub(crate) fn reply(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        response: RaftResponse<S::Output>,
    ) {
        self.flush(io);
        io.reply(request, response);
    }

    /// Reply with what only committed entries decide – a command's result, a read of applied
    /// state: at once, without waiting for this node's syncs in flight. Committed means durable on
    /// a majority's disks (the leader counts its own copy only once it is synced: `maybe_commit`),
    /// so nothing this node has not synced can be lost from under the answer.
    pub(crate) fn reply_committed(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        response: RaftResponse<S::Output>,
    ) {
        io.reply_now(request, response);
    }

    /// Append an entry to the log and persist it (no sync yet).
    pub(crate) fn append_to_log(&mut self, io: &mut Io<'_, Self>, entry: Entry<S::Command>) {
        let index = entry.index;
        if let Payload::Config(m) = &entry.payload {
            self.configs.push(index, m.clone());
        }
        if io.tracing() {
            // For trace readers (the replay viewer draws each node's log from these).
            io.event("append", json!({ "index": index, "term": entry.term, "payload": entry.payload }));
        }
        let encoded = self.log.append(entry);
        self.persist(io, StorageOp::Put { key: storage::log_key(index), value: storage::seal(&encoded) });
    }

    /// Remove the log suffix from `index` on (a conflict with the leader, §5.3).
    pub(crate) fn truncate_log(&mut self, io: &mut Io<'_, Self>, index: u64) {
        assert!(index > self.commit_index, "committed entries are never truncated (§5.4)");
        if io.tracing() {
            io.event("truncate", json!({ "from": index }));
        }
        self.log.truncate_from(index);
        self.configs.truncate_from(index);
        self.persist(io, storage::delete_log_range(index, u64::MAX));
    }

    pub(crate) fn membership(&self) -> &Membership {
        self.configs.current()
    }

    pub(crate) fn set_role(&mut self, io: &mut Io<'_, Self>, role: Role) {
        let before = self.role_name();
        self.role = role;
        // A new role starts awake (its timers are armed by whoever changed it).
        self.quiesced = false;
        let after = self.role_name();
        if before != after {
            io.event("role", json!({ "from": before, "to": after, "term": self.term }));
        }
    }

    // ----- the term rules and dispatch -----

    /// Handle one message; a message that arrives while quiesced wakes the node once it is handled
    /// (`quiesce.rs`).
    pub(crate) fn step(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        // A loopback is the node's own bookkeeping, not traffic: it never wakes a quiet node.
        if !self.quiesced || matches!(msg, Message::Synced { .. }) {
            return self.step_awake(io, from, msg);
        }
        let from_leader = msg.is_from_leader() && msg.term() == self.term && self.leader_id == Some(from);
        let notice = from_leader && matches!(msg, Message::Quiesce(_));
        self.step_awake(io, from, msg);
        if !notice {
            self.wake_after_message(io, from_leader);
        }
    }

    /// The rules every role shares (§5.1, Figure 2 "All Servers"), then the role's own step
    /// function.
    fn step_awake(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        let term = msg.term();
        if term > self.term {
            match &msg {
                // A pre-vote never changes terms: that is its whole point (§9.6).
                Message::PreVote(_) => {}
                // A granted pre-vote echoes the term we would campaign in.
                Message::PreVoteResp(r) if r.granted => {}
                // Leader stickiness (dissertation §4.2.3): while we hear from a leader, a vote request
                // is ignored *without* adopting its term, so a disruptive server cannot depose a
                // healthy leader. A transfer's election is exempt (§3.10).
                Message::Vote(r) if !r.transfer && self.heard_from_leader_recently(io.now()) => {
                    if io.tracing() {
                        io.event("vote-ignored", json!({ "from": from.0, "term": term }));
                    }
                    return;
                }
                _ => {
                    let leader = msg.is_from_leader().then_some(from);
                    self.become_follower(io, term, leader);
                }
            }
        } else if term < self.term {
            self.answer_stale(io, from, msg);
            return;
        }
        match self.role {
            Role::Follower => self.step_follower(io, from, msg),
            Role::PreCandidate { .. } | Role::Candidate { .. } => self.step_candidate(io, from, msg),
            Role::Leader(_) => self.step_leader(io, from, msg),
        }
    }

    /// A message from an older term. Answer leader messages with our term so a deposed leader learns
    /// it (and, when we are the one who moved on, the current leader steps down and lets us rejoin);
    /// answer votes with a refusal; drop the rest.
    fn answer_stale(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        use crate::message::*;
        let term = self.term;
        let reply = match msg {
            Message::Vote(r) => return self.handle_vote_request(io, from, r, false),
            Message::PreVote(r) => return self.handle_vote_request(io, from, r, true),
            Message::Append(r) => Message::AppendResp(AppendResponse {
                term,
                success: false,
                match_index: 0,
                rejected_prev_index: r.prev_log_index,
                conflict_term: None,
                conflict_index: 0,
                round: r.round,
            }),
            Message::Heartbeat(h) => Message::HeartbeatResp(HeartbeatResponse {
                term,
                round: h.round,
                last_log_index: self.log.last_index(),
            }),
            Message::Snapshot(c) => Message::SnapshotResp(SnapshotResponse {
                term,
                snapshot_index: c.meta.index,
                next_offset: 0,
                installed: false,
                round: c.round,
            }),
            Message::Quiesce(n) => Message::HeartbeatResp(HeartbeatResponse {
                term,
                round: n.round,
                last_log_index: self.log.last_index(),
            }),
            // A follower of an older term asks for a read index: refuse, and it learns our term.
            Message::ReadIndex(r) => {
                Message::ReadIndexResp(ReadIndexResponse { term, id: r.id, index: None })
            }
            _ => return,
        };
        self.send(io, from, reply);
    }

    fn step_follower(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        match msg {
            Message::Append(r) => self.handle_append(io, from, r),
            Message::Heartbeat(h) => self.handle_heartbeat(io, from, h),
            Message::Snapshot(c) => self.handle_snapshot_chunk(io, from, c),
            Message::Vote(r) => self.handle_vote_request(io, from, r, false),
            Message::PreVote(r) => self.handle_vote_request(io, from, r, true),
            Message::TimeoutNow { .. } => self.handle_timeout_now(io, from),
            Message::Quiesce(n) => self.handle_quiesce(io, from, n),
            Message::ReadIndex(r) => self.refuse_read_index(io, from, r.id),
            Message::ReadIndexResp(r) => self.handle_read_index_response(io, from, r),
            // Responses to a role we no longer have; `Wake` is for leaders.
            _ => {}
        }
    }

    fn step_candidate(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        match msg {
            // A leader exists in our term: it won (§5.2).
            m @ (Message::Append(_) | Message::Heartbeat(_) | Message::Snapshot(_) | Message::Quiesce(_)) => {
                self.become_follower(io, self.term, Some(from));
                self.step_follower(io, from, m);
            }
            Message::Vote(r) => self.handle_vote_request(io, from, r, false),
            Message::PreVote(r) => self.handle_vote_request(io, from, r, true),
            Message::VoteResp(r) if matches!(self.role, Role::Candidate { .. }) => {
                self.handle_vote_response(io, from, r.granted)
            }
            Message::PreVoteResp(r) if matches!(self.role, Role::PreCandidate { .. }) => {
                self.handle_vote_response(io, from, r.granted)
            }
            Message::ReadIndex(r) => self.refuse_read_index(io, from, r.id),
            _ => {}
        }
    }

    fn step_leader(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Message<S::Command>) {
        match msg {
            Message::AppendResp(r) => self.handle_append_response(io, from, r),
            Message::HeartbeatResp(r) => self.handle_heartbeat_response(io, from, r),
            Message::SnapshotResp(r) => self.handle_snapshot_response(io, from, r),
            Message::Vote(r) => self.handle_vote_request(io, from, r, false),
            Message::PreVote(r) => self.handle_vote_request(io, from, r, true),
            Message::ReadIndex(r) => self.handle_read_index_request(io, from, r),
            Message::Synced { index, .. } if from == self.id => self.handle_synced(io, index),
            m @ (Message::Append(_) | Message::Heartbeat(_) | Message::Snapshot(_) | Message::Quiesce(_)) => {
                // Two leaders in one term: Election Safety is broken (only a mutation can do this).
                let kind = concord_core::Message::kind(&m);
                io.event("second-leader-in-term", json!({ "from": from.0, "term": self.term, "kind": kind }));
            }
            _ => {}
        }
    }

    // ----- client requests -----

    fn handle_request(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        req: RaftRequest<S::Command, S::Query>,
    ) {
        // A quiesced leader wakes for anything but a stale read (a follower answers without
        // Raft traffic, so it stays quiet: `quiesce.rs`).
        let stale = matches!(req, RaftRequest::Read { consistency: ReadConsistency::Stale, .. });
        if self.quiesced && self.is_leader() && !stale {
            self.wake(io, None);
        }
        match req {
            RaftRequest::Propose { session, command } => self.propose(io, request, session, command),
            RaftRequest::Read { consistency, query } => self.handle_read(io, request, consistency, query),
            RaftRequest::Admin(AdminRequest::TransferLeadership(target)) => {
                self.handle_transfer_request(io, request, target)
            }
            RaftRequest::Admin(AdminRequest::AddLearner(id)) => {
                self.propose_membership(io, request, MembershipChange::AddLearner(id))
            }
            RaftRequest::Admin(AdminRequest::Promote(id)) => {
                self.propose_membership(io, request, MembershipChange::Promote(id))
            }
            RaftRequest::Admin(AdminRequest::Remove(id)) => {
                self.propose_membership(io, request, MembershipChange::Remove(id))
            }
        }
    }

    /// Why this node cannot take a proposal now, if it cannot.
    fn refuse_proposal(&self) -> Option<RaftResponse<S::Output>> {
        let Role::Leader(ls) = &self.role else {
            return Some(RaftResponse::NotLeader { hint: self.leader_id });
        };
        if ls.transfer.is_some() {
            return Some(RaftResponse::Rejected { reason: "leadership transfer in progress".into() });
        }
        if self.log.last_index() - self.commit_index >= self.config.max_uncommitted_entries {
            return Some(RaftResponse::Rejected { reason: "too many uncommitted entries".into() });
        }
        None
    }

    fn propose(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        session: Option<Session>,
        command: S::Command,
    ) {
        if let Some(refusal) = self.refuse_proposal() {
            return self.reply(io, request, refusal);
        }
        if let Some(s) = session {
            match self.sessions.check(s) {
                SessionCheck::Apply => {}
                SessionCheck::Duplicate(output) => {
                    return self.reply(io, request, RaftResponse::Output(output))
                }
                SessionCheck::Stale => {
                    let reason = format!("{} already moved past request {}", s.client, s.seq);
                    return self.reply(io, request, RaftResponse::Unknown { reason });
                }
            }
        }
        self.append_as_leader(io, Payload::Command { session, command: Arc::new(command) }, Some(request));
    }

    fn propose_membership(&mut self, io: &mut Io<'_, Self>, request: RequestId, change: MembershipChange) {
        if let Some(refusal) = self.refuse_proposal() {
            return self.reply(io, request, refusal);
        }
        let Role::Leader(ls) = &self.role else { unreachable!("refuse_proposal checked leadership") };
        // One change at a time, and only once this leader committed an entry of its term (§4.1).
        let reason = if self.configs.current_index() > self.commit_index {
            Some("a membership change is still uncommitted".to_string())
        } else if self.commit_index < ls.term_start_index {
            Some("the leader has not committed an entry of its term yet".to_string())
        } else if let MembershipChange::Promote(id) = change {
            let matched = ls.progress.get(&id).map_or(0, |p| p.match_index);
            (matched < self.commit_index)
                .then(|| format!("learner {id} is not caught up ({matched} < commit {})", self.commit_index))
        } else {
            None
        };
        if let Some(reason) = reason {
            return self.reply(io, request, RaftResponse::Rejected { reason });
        }
        match self.membership().apply_change(&change) {
            Ok(next) => {
                self.append_as_leader(io, Payload::Config(next), Some(request));
            }
            Err(reason) => self.reply(io, request, RaftResponse::Rejected { reason: reason.to_string() }),
        }
    }

    /// Reply `Unknown` to every proposal and `NotLeader` to every read (a refused read index to
    /// every follower waiting for one): called when leadership is lost. The proposals' entries may
    /// still commit under the next leader, or be overwritten.
    pub(crate) fn abandon_client_requests(&mut self, io: &mut Io<'_, Self>) {
        for (_, p) in std::mem::take(&mut self.proposals) {
            let reason = format!("leadership lost in term {} before the entry was applied", p.term);
            self.reply(io, p.request, RaftResponse::Unknown { reason });
        }
        for r in std::mem::take(&mut self.reads) {
            match r.read_for {
                ReadFor::Client { request, .. } => {
                    self.reply(io, request, RaftResponse::NotLeader { hint: self.leader_id })
                }
                ReadFor::Follower { node, id } => self.refuse_read_index(io, node, id),
            }
        }
    }

    // ----- applying committed entries (§5.3 "apply log[lastApplied] to state machine") -----

    /// Advance the commit index (never backwards) and apply.
    pub(crate) fn commit_to(&mut self, io: &mut Io<'_, Self>, index: u64) {
        if index <= self.commit_index {
            return;
        }
        assert!(index <= self.log.last_index(), "cannot commit entries we do not hold");
        self.commit_index = index;
        if io.tracing() {
            io.event("commit", json!({ "index": index, "term": self.log.term_at(index) }));
        }
        self.apply_committed(io);
    }

    pub(crate) fn apply_committed(&mut self, io: &mut Io<'_, Self>) {
        while self.applied_index < self.commit_index {
            let index = self.applied_index + 1;
            let entry =
                self.log.entry(index).cloned().expect("committed entries above the snapshot are held");
            self.applied_index = index;
            let response = match entry.payload {
                Payload::Noop => None,
                Payload::Command { session, command } => Some(match session {
                    None => RaftResponse::Output(self.sm.apply(index, &command)),
                    Some(s) => match self.sessions.check(s) {
                        SessionCheck::Apply => {
                            let output = self.sm.apply(index, &command);
                            self.sessions.record(s, output.clone());
                            RaftResponse::Output(output)
                        }
                        SessionCheck::Duplicate(output) => RaftResponse::Output(output),
                        SessionCheck::Stale => RaftResponse::Unknown {
                            reason: format!("{} moved past request {}", s.client, s.seq),
                        },
                    },
                }),
                Payload::Config(membership) => Some(RaftResponse::MembershipChanged { index, membership }),
            };
            if let Some(p) = self.proposals.remove(&index) {
                let response = if p.term == entry.term {
                    response.expect("proposals are commands or memberships")
                } else {
                    RaftResponse::Unknown { reason: "the proposal's entry was overwritten".into() }
                };
                self.reply_committed(io, p.request, response);
            }
        }
        self.serve_reads(io);
        self.maybe_snapshot(io);
        self.maybe_step_down_after_removal(io);
    }

    // ----- read accessors: invariant hooks for the simulator -----

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn current_term(&self) -> u64 {
        self.term
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// `"leader"`, `"follower"`, `"candidate"`, `"pre-candidate"` or `"learner"`.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Leader(_) => "leader",
            Role::Candidate { .. } => "candidate",
            Role::PreCandidate { .. } => "pre-candidate",
            Role::Follower if self.membership().learners.contains(&self.id) => "learner",
            Role::Follower => "follower",
        }
    }
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }
    /// The leader this node believes in (itself when leader).
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    pub fn last_log_index(&self) -> u64 {
        self.log.last_index()
    }
    /// The last index the latest snapshot covers. The log may still hold entries below it (a
    /// catch-up tail, see `snapshot_catchup_entries`).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(self.log.snapshot_index(), |s| s.meta.index)
    }
    /// The term of the entry at `index` (known for held entries and the snapshot boundary).
    pub fn log_term_at(&self, index: u64) -> Option<u64> {
        self.log.term_at(index)
    }
    /// A stable hash of the encoded entry at `index`, if held.
    pub fn log_hash_at(&self, index: u64) -> Option<u64> {
        self.log.hash_at(index)
    }
    /// Held entries in `[lo, hi]`.
    pub fn entries(&self, lo: u64, hi: u64) -> Vec<Entry<S::Command>> {
        self.log.entries_in(lo, hi)
    }
    /// The membership in force (the latest in the log).
    pub fn current_membership(&self) -> &Membership {
        self.membership()
    }
    pub fn state_machine(&self) -> &S {
        &self.sm
    }
    /// The state machine, mutably – only to drain what it records for observers (a store's
    /// change feed, see `concord_kv::changes`). Changing replicated state through it would make
    /// this replica diverge from the others.
    pub fn state_machine_mut(&mut self) -> &mut S {
        &mut self.sm
    }
    pub fn config(&self) -> &RaftConfig {
        &self.config
    }
    /// As leader: each follower's `(match_index, next_index)`. Empty on other roles.
    pub fn follower_progress(&self) -> BTreeMap<NodeId, (u64, u64)> {
        match &self.role {
            Role::Leader(ls) => {
                ls.progress.iter().map(|(&id, p)| (id, (p.match_index, p.next_index))).collect()
            }
            _ => BTreeMap::new(),
        }
    }
    /// How often, since boot, this node as leader found a follower whose log went backwards (it
    /// no longer held entries it had acknowledged) and reset that follower's progress.
    pub fn follower_log_regressions(&self) -> u64 {
        self.follower_log_regressions
    }
}

impl<S: StateMachine> Process for RaftNode<S> {
    type Message = Message<S::Command>;
    type Timer = Timer;
    type Request = RaftRequest<S::Command, S::Query>;
    type Response = RaftResponse<S::Output>;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        for op in std::mem::take(&mut self.startup_cleanup) {
            self.persist(io, op);
        }
        self.flush(io);
        // With leases, a restarted node may have acknowledged a leader's heartbeat just before it
        // crashed, and that leader may be counting on it not to vote for anyone else for an
        // election timeout. It cannot know, so it behaves as if it had just heard from a leader.
        // (Without leases nothing relies on this, so votes are granted at once.)
        self.leader_contact = self.config.lease_reads.then(|| io.now());
        self.reset_election_timer(io);
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Self::Message) {
        self.step(io, from, msg);
        if !self.follower_reads.is_empty() {
            self.expire_follower_reads(io);
        }
        self.debug_check();
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: Timer) {
        if !self.follower_reads.is_empty() {
            self.expire_follower_reads(io);
        }
        match timer {
            Timer::Election => self.on_election_timeout(io),
            Timer::Heartbeat => self.on_heartbeat_tick(io),
            Timer::CheckQuorum => self.on_check_quorum_tick(io),
        }
        self.debug_check();
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: Self::Request) {
        self.handle_request(io, request, req);
        self.debug_check();
    }

    fn role(&self) -> Option<&'static str> {
        Some(self.role_name())
    }

    fn inspect(&self) -> serde_json::Value {
        let m = self.membership();
        let mut view = json!({
            "id": self.id.0,
            "role": self.role_name(),
            "term": self.term,
            "voted_for": self.voted_for.map(|n| n.0),
            "leader": self.leader_id.map(|n| n.0),
            "commit_index": self.commit_index,
            "applied_index": self.applied_index,
            "last_log_index": self.log.last_index(),
            "last_log_term": self.log.last_term(),
            "snapshot_index": self.snapshot_index(),
            "config": {
                "voters": m.voters.iter().map(|n| n.0).collect::<Vec<_>>(),
                "learners": m.learners.iter().map(|n| n.0).collect::<Vec<_>>(),
            },
        });
        // Only with quiescence on: the view of a node without it stays as it was.
        if self.config.quiesce {
            view["quiesced"] = self.quiesced.into();
        }
        view
    }
}

impl<S: StateMachine> RaftNode<S> {
    /// Internal invariants, checked after every input in debug builds.
    fn debug_check(&self) {
        debug_assert!(self.applied_index <= self.commit_index, "applied ≤ commit");
        debug_assert!(self.commit_index <= self.log.last_index(), "commit ≤ last log index");
        debug_assert!(self.log.snapshot_index() <= self.applied_index, "snapshot ≤ applied");
        debug_assert!(
            self.log.snapshot_index() == 0 || self.snapshot.is_some(),
            "a compacted log has a snapshot"
        );
        if let Role::Leader(ls) = &self.role {
            debug_assert_eq!(self.leader_id, Some(self.id));
            debug_assert!(ls.term_start_index <= self.log.last_index());
        }
        if self.quiesced && self.is_leader() {
            debug_assert!(self.proposals.is_empty() && self.reads.is_empty(), "a quiet leader has no work");
        }
        debug_assert!(self.is_leader() || self.reads.is_empty(), "only a leader holds ReadIndex reads");
        debug_assert!(
            matches!(self.role, Role::Follower) || self.follower_reads.is_empty(),
            "only a follower waits for read indexes"
        );
    }
}

/// Lets the simulator's key-value workloads drive a Raft cluster.
///
/// Writes become proposals with a session `(client, seq)` (exactly-once on retry); reads are
/// ReadIndex reads. `Service::request` has no clock, so `KvStateMachine::access` is called with
/// `Time::ZERO`; workload operations carry no timestamps, so this loses nothing today.
impl<S: concord_core::KvStateMachine> concord_core::Service for RaftNode<S> {
    fn request(client: concord_core::ClientId, seq: u64, op: &concord_core::Op) -> Self::Request {
        match S::access(op, concord_core::Time::ZERO) {
            concord_core::Access::Write(command) => {
                RaftRequest::Propose { session: Some(Session { client, seq }), command }
            }
            concord_core::Access::Read(query) => {
                RaftRequest::Read { consistency: ReadConsistency::Linearizable, query }
            }
        }
    }

    fn completion(op: &concord_core::Op, response: &Self::Response) -> concord_core::Completion {
        use concord_core::Completion;
        match response {
            RaftResponse::Output(output) => S::completion(op, output),
            RaftResponse::NotLeader { hint } => Completion::Redirect(*hint),
            RaftResponse::Rejected { reason } => Completion::Fail(reason.clone()),
            RaftResponse::Unknown { reason } => Completion::Unknown(reason.clone()),
            RaftResponse::MembershipChanged { .. } | RaftResponse::LeadershipTransferred { .. } => {
                Completion::Fail(format!("unexpected admin response to {op}"))
            }
        }
    }

    fn witness(op: &concord_core::Op, response: &Self::Response) -> Option<u64> {
        match response {
            RaftResponse::Output(output) => S::witness(op, output),
            _ => None,
        }
    }
}

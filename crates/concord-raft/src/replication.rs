//! Log replication (§5.3), the commit rule (§5.4.2), flow control, heartbeats and check-quorum.
//!
//! ## Leader side: one [`Progress`] per follower (etcd-raft's design)
//! * **Probe**: we do not know where the follower's log matches ours. Send one append at a time
//!   (from `next_index`) and wait for the answer or the next heartbeat tick.
//! * **Replicate**: the follower matched; stream entries optimistically – advance `next_index` as we
//!   send, up to `max_inflight_appends` requests in flight (**pipelining**), each carrying at most
//!   `max_entries_per_append` entries and `max_bytes_per_append` bytes (**batching**, **flow
//!   control**). If the window stays full and nothing is acknowledged for a whole heartbeat
//!   interval, we assume messages were lost and fall back to Probe.
//! * **Snapshot**: the entries the follower needs were compacted: send the snapshot (`snapshot.rs`).
//!
//! ## Fast back-off (end of §5.3)
//! A follower that rejects an append says what it has at `prev_log_index`: the conflicting term and
//! the first index of that term (or, if its log is too short, its last index + 1). The leader then
//! skips a whole term per round trip instead of one entry: if it holds entries of the conflicting
//! term it resumes after its last one, otherwise at the follower's first index of that term.
//!
//! ## Commit rule (§5.4.2, Figure 8)
//! The leader commits index N when a majority of voters hold it **and** the entry at N has the
//! leader's current term. Counting replicas of an older term's entry is not enough: Figure 8 shows
//! such an entry overwritten after being stored on a majority. Older entries commit indirectly.
//!
//! ## A follower whose log went backwards
//! `match_index` only grows while a follower keeps what it acknowledged – Raft assumes stable
//! storage. A follower whose disk was wiped or truncated breaks that: it rejects every append at
//! `prev_log_index = match_index`, and the back-off above, floored at `match_index + 1`, would
//! probe the same index forever (a wiped node sat at commit index 0 for 45 s, issue #23). A
//! rejection of exactly `match_index` – the entry it said it held – is therefore proof of
//! regression, if the rejected request was sent after the acknowledgement arrived: causality then
//! orders the follower's answer after the append it acknowledged. Requests carry the leader's
//! heartbeat round, so "sent after" is "of a later round than the one the acknowledgement arrived
//! in". (A request sent *before* can overtake the acknowledged one in the network and be rejected
//! first: the simulator found exactly that false alarm.) The leader forgets the match (`match_index = 0`), probes from where the follower
//! says its log ends, counts it (`follower_log_regressions`, in the server's status and metrics)
//! and emits one `follower-log-regressed` event. Lowering a `match_index` never un-commits anything
//! (the commit index only grows). Whether such a node may still *vote* is a
//! separate question: see `docs/operations.md`, "Repair".
//!
//! ## The leader's own disk (dissertation §10.2.1)
//! A follower acknowledges entries only once they are durable. The leader need not write its log
//! *before* sending it: it sends appends at once ([`concord_core::Io::send_now`]) and syncs its own
//! copy in parallel, so a commit costs one disk sync plus a round trip instead of two syncs in
//! series. Behind that sync it sends itself a `Synced` loopback; receiving it means its log is on
//! disk up to that index, and only that much of its own log counts in the commit quorum
//! (`LeaderState::synced`). Counting the whole log at once would let a majority "hold" an entry
//! only in the leader's memory – a crash then loses an entry followers were told is committed (the
//! `count_unsynced_self` mutation; the simulator finds it). Until the term's first `Synced`
//! arrives, the leader's messages wait for its syncs like every other: its term may be fresh on
//! disk (a single voter elects itself in one step), and a message of a term the node could forget
//! would let it lead that term twice.
//!
//! ## Follower side
//! The consistency check: accept entries after `prev_log_index` only if our entry there has
//! `prev_log_term` (Log Matching, §5.3); delete a conflicting suffix, never a committed entry;
//! acknowledge only once the entries are durable.

use crate::log::{Entry, Payload};
use crate::message::{AppendRequest, AppendResponse, Heartbeat, HeartbeatResponse, Message};
use crate::node::{RaftNode, Role, Timer};
use concord_core::{Io, NodeId, StateMachine, Time};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// How the leader is replicating to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    Probe,
    Replicate,
    /// Sending the snapshot ending at `index`; `next_offset` bytes acknowledged so far;
    /// `idle_ticks` heartbeat ticks without an answer (resend after two).
    Snapshot {
        index: u64,
        next_offset: u64,
        idle_ticks: u32,
    },
}

/// What the leader knows about one follower (Figure 2 `nextIndex[]`, `matchIndex[]`, plus flow
/// control).
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log.
    pub match_index: u64,
    /// Next index to send.
    pub next_index: u64,
    /// The leader's heartbeat round when the acknowledgement that last raised `match_index`
    /// arrived: requests of later rounds were sent after it, so the follower answers them with
    /// that entry in its log (unless it lost it).
    pub match_round: u64,
    pub state: ProgressState,
    /// Probe: an append is outstanding (wait for the answer or the next tick).
    pub probe_sent: bool,
    /// Replicate: the last index of each append in flight, oldest first.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum tick.
    pub recent_active: bool,
    /// The highest heartbeat round the follower acknowledged (ReadIndex, lease).
    pub acked_round: u64,
    /// `match_index` at the previous heartbeat tick (detects a stalled window).
    pub match_at_last_tick: u64,
}

impl Progress {
    fn new(next_index: u64) -> Self {
        Progress {
            match_index: 0,
            next_index,
            match_round: 0,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
            acked_round: 0,
            match_at_last_tick: 0,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot { .. } => true,
        }
    }
}

/// Leader-only state.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub progress: BTreeMap<NodeId, Progress>,
    /// Heartbeat round counter (§6.4): a follower acknowledging round r accepted us as leader after
    /// we started round r.
    pub round: u64,
    /// Local send time of recent rounds (for the lease), pruned below the quorum round.
    pub round_sent_at: BTreeMap<u64, Time>,
    /// The last round started for reads (`read.rs`, batching): outstanding while a majority has
    /// not acknowledged it.
    pub read_round: u64,
    /// Reads arrived while `read_round` was outstanding and wait for this round (or a later one).
    pub read_wanted: Option<u64>,
    /// Index of this term's no-op entry: reads wait for it to commit (§6.4 step 1).
    pub term_start_index: u64,
    /// Leadership transfer target and deadline (§3.10).
    pub transfer: Option<(NodeId, Time)>,
    /// Set once a `TimeoutNow` went out: another leader may appear before our lease would end.
    pub lease_disabled: bool,
    /// Housekeeping commands are proposed only once the previous batch committed.
    pub housekeeping_until: u64,
    /// An attempt to quiesce under way (`quiesce.rs`): the notice's round and who agreed.
    pub quiesce: Option<crate::quiesce::QuiesceAttempt>,
    /// Our own log is on disk up to here (the highest `Synced` loopback of this term); `None`
    /// until the first arrives (see "The leader's own disk").
    pub synced: Option<u64>,
    /// A `Synced` loopback is on its way (at most one: see `sync_own_log`).
    pub loopback_in_flight: bool,
}

impl LeaderState {
    pub(crate) fn new(others: Vec<NodeId>, next_index: u64, now: Time) -> Self {
        LeaderState {
            progress: others.into_iter().map(|id| (id, Progress::new(next_index))).collect(),
            round: 0,
            round_sent_at: BTreeMap::from([(0, now)]),
            read_round: 0,
            read_wanted: None,
            term_start_index: next_index,
            transfer: None,
            lease_disabled: false,
            housekeeping_until: 0,
            quiesce: None,
            synced: None,
            loopback_in_flight: false,
        }
    }

    /// The highest round a majority of voters acknowledged (the leader counts itself as having
    /// acknowledged every round it started).
    pub(crate) fn quorum_round(&self, me: NodeId, membership: &crate::membership::Membership) -> u64 {
        membership.quorum_value(|id| {
            if id == me {
                self.round
            } else {
                self.progress.get(&id).map_or(0, |p| p.acked_round)
            }
        })
    }
}

impl<S: StateMachine> RaftNode<S> {
    // ----- leader: proposing and sending -----

    /// Append a new entry of the current term and start replicating it. Returns its index.
    /// `request` is registered before anything can commit (a single voter commits as soon as its
    /// own sync's loopback arrives – in the driver's same batch, if the sync was quick).
    pub(crate) fn append_as_leader(
        &mut self,
        io: &mut Io<'_, Self>,
        payload: Payload<S::Command>,
        request: Option<concord_core::RequestId>,
    ) -> u64 {
        assert!(self.is_leader(), "only leaders append new entries");
        debug_assert!(!self.quiesced, "a quiet leader wakes before it appends");
        let index = self.log.last_index() + 1;
        let is_config = matches!(payload, Payload::Config(_));
        self.append_to_log(io, Entry { term: self.term, index, payload });
        if let Some(request) = request {
            self.proposals.insert(index, crate::node::Proposal { request, term: self.term });
        }
        if is_config {
            self.sync_progress_with_membership();
        }
        self.broadcast_append(io);
        self.sync_own_log(io);
        index
    }

    /// Sync what was just appended and ask for a `Synced` loopback behind it: the leader counts
    /// itself as holding these entries when it arrives ([`RaftNode::handle_synced`]). Every append's
    /// sync is asked for at once (the driver runs them back to back, or as one), but one loopback
    /// is in flight at a time: when it arrives, the next one goes behind the syncs asked for
    /// meanwhile – a burst of proposals costs one loopback per sync round, not one each.
    fn sync_own_log(&mut self, io: &mut Io<'_, Self>) {
        // MUTATION(count_unsynced_self): count the leader's unsynced log in the quorum at once.
        if self.config.mutations().count_unsynced_self {
            self.maybe_commit(io);
        }
        self.flush(io);
        let Role::Leader(ls) = &mut self.role else { return };
        if ls.loopback_in_flight {
            return;
        }
        ls.loopback_in_flight = true;
        io.send(self.id, Message::Synced { term: self.term, index: self.log.last_index() });
    }

    /// The `Synced` loopback: our log is durable up to `index`.
    pub(crate) fn handle_synced(&mut self, io: &mut Io<'_, Self>, index: u64) {
        let Role::Leader(ls) = &mut self.role else { return };
        // A leader never truncates its log in its term, so `index` is still ours.
        ls.synced = Some(ls.synced.map_or(index, |s| s.max(index)));
        ls.loopback_in_flight = false;
        if self.log.last_index() > index {
            self.sync_own_log(io); // what was appended meanwhile
        }
        self.maybe_commit(io);
    }

    /// Send an append or a heartbeat: at once when this term's first sync is done, else after the
    /// syncs before it. They carry the term (durable then), entries (which followers may store
    /// before we do) and a commit index (durable on a majority) – nothing the leader could lose.
    fn send_as_leader(&mut self, io: &mut Io<'_, Self>, to: NodeId, msg: Message<S::Command>) {
        match &self.role {
            Role::Leader(ls) if ls.synced.is_some() => io.send_now(to, msg),
            _ => self.send(io, to, msg),
        }
    }

    /// Add progress for new members, drop it for removed ones.
    fn sync_progress_with_membership(&mut self) {
        let members: Vec<NodeId> = self.membership().others(self.id).collect();
        let next = self.log.last_index();
        let Role::Leader(ls) = &mut self.role else { return };
        ls.progress.retain(|id, _| members.contains(id));
        for id in members {
            ls.progress.entry(id).or_insert_with(|| Progress::new(next));
        }
    }

    pub(crate) fn broadcast_append(&mut self, io: &mut Io<'_, Self>) {
        let peers: Vec<NodeId> = match &self.role {
            Role::Leader(ls) => ls.progress.keys().copied().collect(),
            _ => return,
        };
        for peer in peers {
            self.maybe_send(io, peer);
        }
    }

    /// Send `peer` as much as flow control allows.
    pub(crate) fn maybe_send(&mut self, io: &mut Io<'_, Self>, peer: NodeId) {
        // Bounded: each send either pauses the peer or fills one more window slot.
        for _ in 0..=self.config.max_inflight_appends {
            if !self.send_append(io, peer) {
                break;
            }
        }
    }

    /// Send one append (or start a snapshot) to `peer`, unless paused. Returns whether it sent.
    fn send_append(&mut self, io: &mut Io<'_, Self>, peer: NodeId) -> bool {
        let (term, commit, round) = (self.term, self.commit_index, self.current_round());
        let max_inflight = self.config.max_inflight_appends;
        let Role::Leader(ls) = &mut self.role else { return false };
        let Some(pr) = ls.progress.get_mut(&peer) else { return false };
        if pr.is_paused(max_inflight) {
            return false;
        }
        if pr.next_index <= self.log.snapshot_index() {
            // The entries it needs are compacted (§7): send the snapshot (at or past the log's start).
            let index = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
            pr.state = ProgressState::Snapshot { index, next_offset: 0, idle_ticks: 0 };
            pr.inflight.clear();
            io.event("snapshot-send", json!({ "to": peer.0, "index": index }));
            self.send_snapshot_chunk(io, peer);
            return false;
        }
        let prev_log_index = pr.next_index - 1;
        let prev_log_term = self.log.term_at(prev_log_index).expect("prev is at or above the snapshot");
        let entries = self.log.entries_from(
            pr.next_index,
            self.config.max_entries_per_append,
            self.config.max_bytes_per_append,
        );
        match pr.state {
            ProgressState::Replicate => {
                let Some(last) = entries.last().map(|e| e.index) else { return false };
                pr.next_index = last + 1;
                pr.inflight.push_back(last);
            }
            ProgressState::Probe => pr.probe_sent = true,
            ProgressState::Snapshot { .. } => unreachable!("paused"),
        }
        let msg =
            AppendRequest { term, prev_log_index, prev_log_term, entries, leader_commit: commit, round };
        self.send_as_leader(io, peer, Message::Append(msg));
        true
    }

    /// The round to stamp on outgoing leader messages.
    pub(crate) fn current_round(&self) -> u64 {
        match &self.role {
            Role::Leader(ls) => ls.round,
            _ => 0,
        }
    }

    /// Start a new heartbeat round and send a heartbeat to every follower.
    pub(crate) fn broadcast_heartbeat(&mut self, io: &mut Io<'_, Self>) -> u64 {
        let round = self.start_round(io);
        // A single-voter cluster confirms rounds by itself.
        self.serve_reads(io);
        round
    }

    /// Start a new heartbeat round: send a heartbeat stamped with it to every follower. Whoever
    /// acknowledges it accepted us as leader after this moment (§6.4).
    pub(crate) fn start_round(&mut self, io: &mut Io<'_, Self>) -> u64 {
        let (term, commit, now) = (self.term, self.commit_index, io.now());
        let Role::Leader(ls) = &mut self.role else { return 0 };
        ls.round += 1;
        let round = ls.round;
        ls.round_sent_at.insert(round, now);
        let beats: Vec<(NodeId, Heartbeat)> = ls
            .progress
            .iter()
            .map(|(&id, p)| (id, Heartbeat { term, leader_commit: commit.min(p.match_index), round }))
            .collect();
        for (peer, hb) in beats {
            self.send_as_leader(io, peer, Message::Heartbeat(hb));
        }
        round
    }

    pub(crate) fn on_heartbeat_tick(&mut self, io: &mut Io<'_, Self>) {
        if !self.is_leader() || self.quiesced {
            return;
        }
        if self.config.quiesce && self.quiesce_tick(io) {
            return;
        }
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.broadcast_heartbeat(io);
        // Retry what may have been lost: a probe without answer, a window without progress, a
        // snapshot chunk without answer.
        let mut resend_chunk = Vec::new();
        if let Role::Leader(ls) = &mut self.role {
            for (&id, pr) in ls.progress.iter_mut() {
                match &mut pr.state {
                    ProgressState::Probe => pr.probe_sent = false,
                    ProgressState::Replicate => {
                        if !pr.inflight.is_empty() && pr.match_index == pr.match_at_last_tick {
                            pr.become_probe();
                        }
                    }
                    ProgressState::Snapshot { idle_ticks, .. } => {
                        *idle_ticks += 1;
                        if *idle_ticks >= 2 {
                            *idle_ticks = 0;
                            resend_chunk.push(id);
                        }
                    }
                }
                pr.match_at_last_tick = pr.match_index;
            }
        }
        for peer in resend_chunk {
            self.send_snapshot_chunk(io, peer);
        }
        self.broadcast_append(io);
        self.propose_housekeeping(io);
    }

    /// Let the state machine propose time-driven commands (e.g. TTL expiry) through the log.
    fn propose_housekeeping(&mut self, io: &mut Io<'_, Self>) {
        let Role::Leader(ls) = &self.role else { return };
        if ls.transfer.is_some() || self.commit_index < ls.housekeeping_until {
            return;
        }
        let commands = self.sm.housekeeping(io.now());
        let mut last = 0;
        for command in commands {
            last = self.append_as_leader(
                io,
                Payload::Command { session: None, command: Arc::new(command) },
                None,
            );
        }
        if let Role::Leader(ls) = &mut self.role {
            ls.housekeeping_until = ls.housekeeping_until.max(last);
        }
    }

    /// Check-quorum (dissertation §6.2): step down unless a majority of voters was heard during the
    /// last election timeout. Without it a leader cut off from the majority would keep serving
    /// (stale reads with leases, proposals that can never commit).
    pub(crate) fn on_check_quorum_tick(&mut self, io: &mut Io<'_, Self>) {
        if !self.is_leader() || self.quiesced {
            return;
        }
        io.set_timer(Timer::CheckQuorum, self.config.election_timeout_min);
        self.expire_transfer(io);
        let me = self.id;
        let Role::Leader(ls) = &mut self.role else { return };
        let mut active: Vec<NodeId> =
            ls.progress.iter().filter(|(_, p)| p.recent_active).map(|(&id, _)| id).collect();
        active.push(me);
        for pr in ls.progress.values_mut() {
            pr.recent_active = false;
        }
        if self.config.check_quorum && !self.membership().has_quorum(active) {
            io.event("step-down", json!({ "reason": "check-quorum", "term": self.term }));
            self.become_follower(io, self.term, None);
        }
    }

    /// The commit rule (§5.4.2): the highest index stored on a majority of voters, if its entry is of
    /// the current term.
    pub(crate) fn maybe_commit(&mut self, io: &mut Io<'_, Self>) {
        let Role::Leader(ls) = &self.role else { return };
        let me = self.id;
        // Our own copy counts as far as it is on disk ("The leader's own disk").
        let stored_on_majority = |own: u64| {
            self.membership().quorum_value(|id| {
                if id == me {
                    own
                } else {
                    ls.progress.get(&id).map_or(0, |p| p.match_index)
                }
            })
        };
        let mut n = stored_on_majority(ls.synced.unwrap_or(0));
        // MUTATION(count_unsynced_self): count the whole log, synced or not.
        if self.config.mutations().count_unsynced_self {
            let counted = stored_on_majority(self.log.last_index());
            if counted > n.max(self.commit_index) && self.log.term_at(counted) == Some(self.term) {
                io.event("mutation-fired", json!({ "mutation": "count_unsynced_self", "index": counted }));
            }
            n = counted;
        }
        if n <= self.commit_index {
            return;
        }
        let current_term = self.log.term_at(n) == Some(self.term);
        // MUTATION(commit_old_term_by_counting): commit whatever a majority stores (Figure 8 bug).
        if current_term || self.config.mutations().commit_old_term_by_counting {
            if !current_term {
                io.event("mutation-fired", json!({ "mutation": "commit_old_term_by_counting", "index": n }));
            }
            self.commit_to(io, n);
        }
    }

    // ----- leader: answers -----

    pub(crate) fn handle_append_response(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        resp: AppendResponse,
    ) {
        let Role::Leader(ls) = &mut self.role else { return };
        let round_now = ls.round;
        let Some(pr) = ls.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(resp.round);
        if resp.success {
            if resp.match_index > pr.match_index {
                pr.match_index = resp.match_index;
                pr.match_round = round_now;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
            let matched = pr.match_index;
            pr.inflight.retain(|&last| last > matched);
            match pr.state {
                ProgressState::Probe => {
                    pr.state = ProgressState::Replicate;
                    pr.probe_sent = false;
                    pr.inflight.clear();
                    pr.next_index = pr.match_index + 1;
                }
                ProgressState::Snapshot { index, .. } if pr.match_index >= index => pr.become_probe(),
                _ => {}
            }
            self.maybe_commit(io);
        } else {
            // Drop stale rejections: of an append we already know matched, or, while probing, of an
            // append other than the outstanding one.
            let stale = resp.rejected_prev_index < pr.match_index
                || (pr.state == ProgressState::Probe && resp.rejected_prev_index + 1 != pr.next_index)
                || matches!(pr.state, ProgressState::Snapshot { .. });
            if !stale {
                let mut next = resp.conflict_index;
                if let Some(term) = resp.conflict_term {
                    if let Some(last_of_term) = self.log.last_index_of_term(term, resp.rejected_prev_index) {
                        next = last_of_term + 1;
                    }
                }
                // It does not hold the entry it acknowledged: its log went backwards. Only a request
                // sent after the acknowledgement arrived counts (a later round): an earlier one may
                // have overtaken the acknowledged request and been answered before it.
                if pr.match_index > 0
                    && resp.rejected_prev_index == pr.match_index
                    && resp.round > pr.match_round
                {
                    io.event(
                        "follower-log-regressed",
                        json!({
                            "to": from.0,
                            "match_index": pr.match_index,
                            "follower_log_ends_before": resp.conflict_index,
                        }),
                    );
                    self.follower_log_regressions += 1;
                    pr.match_index = 0;
                    pr.match_at_last_tick = 0;
                }
                pr.become_probe();
                pr.next_index = next.min(resp.rejected_prev_index).max(pr.match_index + 1);
                if io.tracing() {
                    io.event("back-off", json!({ "to": from.0, "next_index": pr.next_index }));
                }
            }
        }
        self.serve_reads(io);
        if self.is_leader() {
            self.maybe_send(io, from);
            self.maybe_send_timeout_now(io, from);
        }
    }

    pub(crate) fn handle_heartbeat_response(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        resp: HeartbeatResponse,
    ) {
        self.note_quiesce_ack(from, &resp);
        let Role::Leader(ls) = &mut self.role else { return };
        let Some(pr) = ls.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(resp.round);
        if pr.state == ProgressState::Probe && pr.match_index < self.log.last_index() {
            pr.probe_sent = false;
        }
        self.serve_reads(io);
        self.maybe_send(io, from);
    }

    // ----- follower -----

    /// AppendEntries, receiver side (Figure 2).
    pub(crate) fn handle_append(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        req: AppendRequest<S::Command>,
    ) {
        self.note_leader(io, from);
        let AppendRequest {
            mut prev_log_index, mut prev_log_term, mut entries, leader_commit, round, ..
        } = req;
        let sent_prev = prev_log_index;
        let reject = move |node: &Self, conflict_term: Option<u64>, conflict_index: u64| {
            Message::AppendResp(AppendResponse {
                term: node.term,
                success: false,
                match_index: 0,
                rejected_prev_index: sent_prev,
                conflict_term,
                conflict_index,
                round,
            })
        };
        // Entries up to our commit index are committed, hence identical to the leader's (§5.4):
        // skip them, so the check below never looks into our snapshot.
        if prev_log_index < self.commit_index {
            let skip = ((self.commit_index - prev_log_index) as usize).min(entries.len());
            entries.drain(..skip);
            prev_log_index = self.commit_index;
            prev_log_term = self.log.term_at(prev_log_index).expect("commit index is held or the snapshot");
            if let Some(first) = entries.first() {
                debug_assert_eq!(first.index, prev_log_index + 1);
            }
        }
        if prev_log_index > self.log.last_index() {
            let msg = reject(self, None, self.log.last_index() + 1);
            return self.send(io, from, msg);
        }
        let our_term = self.log.term_at(prev_log_index).expect("prev is between snapshot and last index");
        // The consistency check (§5.3, Log Matching).
        // MUTATION(skip_log_matching_check): accept whatever follows, whatever precedes it.
        if our_term != prev_log_term {
            if !self.config.mutations().skip_log_matching_check {
                let first = self.log.first_index_of_term_at(prev_log_index);
                let msg = reject(self, Some(our_term), first);
                return self.send(io, from, msg);
            }
            io.event(
                "mutation-fired",
                json!({ "mutation": "skip_log_matching_check", "prev": prev_log_index }),
            );
        }
        let last_new = prev_log_index + entries.len() as u64;
        for entry in entries {
            match self.log.term_at(entry.index) {
                Some(t) if t == entry.term => continue,
                Some(_) => self.truncate_log(io, entry.index),
                None => {}
            }
            self.append_to_log(io, entry);
        }
        // Never beyond what this request showed to match the leader.
        let new_commit = leader_commit.min(last_new);
        if new_commit > self.commit_index {
            self.commit_to(io, new_commit);
        }
        let ack = AppendResponse {
            term: self.term,
            success: true,
            match_index: last_new,
            rejected_prev_index: 0,
            conflict_term: None,
            conflict_index: 0,
            round,
        };
        self.send(io, from, Message::AppendResp(ack));
    }

    pub(crate) fn handle_heartbeat(&mut self, io: &mut Io<'_, Self>, from: NodeId, hb: Heartbeat) {
        self.note_leader(io, from);
        // The leader caps `leader_commit` at our known match, so these entries are the leader's.
        let new_commit = hb.leader_commit.min(self.log.last_index());
        if new_commit > self.commit_index {
            self.commit_to(io, new_commit);
        }
        let resp =
            HeartbeatResponse { term: self.term, round: hb.round, last_log_index: self.log.last_index() };
        self.send(io, from, Message::HeartbeatResp(resp));
    }
}

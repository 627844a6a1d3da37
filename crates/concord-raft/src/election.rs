//! Leader election: randomised timeouts, pre-vote, votes, and leadership transfer – all of it here.
//!
//! ```text
//!               timeout (pre_vote)          majority of pre-votes
//!   Follower ─────────────────────▶ PreCandidate ──────────────────▶ Candidate ──majority──▶ Leader
//!      ▲  ▲        timeout (no pre_vote) / TimeoutNow (transfer) ───────▲   │                  │
//!      │  └──────────── discovers a leader or a higher term ────────────────┘                  │
//!      └─────────────── higher term, lost check-quorum, removed and committed ────────────────┘
//! ```
//!
//! * **Randomised timeouts** (§5.2): each follower waits a random time in
//!   `[election_timeout_min, election_timeout_max)` without hearing a leader before campaigning, so
//!   split votes are rare and resolve quickly (§9.3 measures this).
//! * **Votes** (§5.2, §5.4.1): one vote per term, first come first served, and only for a candidate
//!   whose log is at least as up to date (last term, then length). The vote is durable before it is
//!   sent.
//! * **Pre-vote** (dissertation §9.6): a would-be candidate first asks whether it *could* win,
//!   without incrementing its term. A node cut off by a partition therefore keeps its term, and when
//!   it rejoins it cannot force the healthy leader to step down.
//! * **Leader stickiness** (§4.2.3): a node that heard from a leader within `election_timeout_min`
//!   ignores vote and pre-vote requests (it does not even adopt their term). This stops removed or
//!   partitioned servers from disrupting the cluster, and is what makes the leader lease sound.
//! * **Leadership transfer** (§3.10): the leader stops taking proposals, brings the target's log up
//!   to date, then sends it `TimeoutNow`; the target campaigns at once, its requests flagged
//!   `transfer` so voters skip the stickiness rule.

use crate::log::Payload;
use crate::message::{Message, RaftResponse, VoteRequest, VoteResponse};
use crate::node::{RaftNode, Role, Timer};
use crate::replication::LeaderState;
use concord_core::{Io, NodeId, RequestId, StateMachine, Time};
use serde_json::json;
use std::collections::BTreeMap;

impl<S: StateMachine> RaftNode<S> {
    /// Arm the election timer with a fresh random timeout (§5.2).
    pub(crate) fn reset_election_timer(&mut self, io: &mut Io<'_, Self>) {
        let timeout = io.random_duration(self.config.election_timeout_min, self.config.election_timeout_max);
        io.set_timer(Timer::Election, timeout);
    }

    /// Whether a leader was heard (or the node booted) within `election_timeout_min`; a leader
    /// counts itself.
    pub(crate) fn heard_from_leader_recently(&self, now: Time) -> bool {
        // A quiesced follower still follows its leader: refusing a vote is always safe, and the
        // message that asked wakes it (`quiesce.rs`).
        self.is_leader()
            || self.quiesced
            || self.leader_contact.is_some_and(|t| now.saturating_since(t) < self.config.election_timeout_min)
    }

    pub(crate) fn on_election_timeout(&mut self, io: &mut Io<'_, Self>) {
        if self.is_leader() || self.quiesced {
            return;
        }
        // Learners and removed servers never campaign (§4.2.1).
        if !self.membership().is_voter(self.id) {
            self.reset_election_timer(io);
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate(io);
        } else {
            self.become_candidate(io, false);
        }
    }

    /// Step down to follower of `term` (adopting it if newer), believing in `leader` if known.
    pub(crate) fn become_follower(&mut self, io: &mut Io<'_, Self>, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never go backwards");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state(io);
            // A read index from the old term's leader must not be used any more.
            self.fail_follower_reads(io);
        }
        let was_leader = self.is_leader();
        self.set_role(io, Role::Follower);
        self.leader_id = None;
        if was_leader {
            io.cancel_timer(Timer::Heartbeat);
            io.cancel_timer(Timer::CheckQuorum);
            self.abandon_client_requests(io);
        }
        if let Some(leader) = leader {
            self.note_leader(io, leader);
        } else {
            self.reset_election_timer(io);
        }
    }

    /// A leader of our term spoke: remember it, restart the election timeout.
    pub(crate) fn note_leader(&mut self, io: &mut Io<'_, Self>, leader: NodeId) {
        debug_assert!(!self.is_leader());
        if self.leader_id != Some(leader) {
            self.leader_id = Some(leader);
            if io.tracing() {
                io.event("leader", json!({ "leader": leader.0, "term": self.term }));
            }
            if let Some((request, target)) = self.pending_transfer.take() {
                let response = if target == leader {
                    RaftResponse::LeadershipTransferred { to: leader }
                } else {
                    RaftResponse::Rejected { reason: format!("leadership went to {leader}, not {target}") }
                };
                self.reply(io, request, response);
            }
        }
        self.leader_contact = Some(io.now());
        self.reset_election_timer(io);
    }

    fn become_pre_candidate(&mut self, io: &mut Io<'_, Self>) {
        // No leader to ask for read indexes any more (`read.rs`).
        self.fail_follower_reads(io);
        self.set_role(io, Role::PreCandidate { votes: BTreeMap::from([(self.id, true)]) });
        self.leader_id = None;
        self.reset_election_timer(io);
        if self.membership().quorum() <= 1 {
            return self.become_candidate(io, false);
        }
        let req = self.vote_request(self.term + 1, false);
        let voters: Vec<NodeId> =
            self.membership().voters.iter().copied().filter(|&v| v != self.id).collect();
        for v in voters {
            self.send(io, v, Message::PreVote(req.clone()));
        }
    }

    /// Start an election (§5.2): new term, vote for self, ask every voter.
    pub(crate) fn become_candidate(&mut self, io: &mut Io<'_, Self>, transfer: bool) {
        debug_assert!(self.membership().is_voter(self.id));
        self.fail_follower_reads(io);
        self.term += 1;
        self.voted_for = Some(self.id);
        self.persist_hard_state(io);
        self.set_role(io, Role::Candidate { votes: BTreeMap::from([(self.id, true)]) });
        self.leader_id = None;
        self.reset_election_timer(io);
        if self.membership().quorum() <= 1 {
            return self.become_leader(io);
        }
        let req = self.vote_request(self.term, transfer);
        let voters: Vec<NodeId> =
            self.membership().voters.iter().copied().filter(|&v| v != self.id).collect();
        for v in voters {
            self.send(io, v, Message::Vote(req.clone()));
        }
    }

    fn vote_request(&self, term: u64, transfer: bool) -> VoteRequest {
        VoteRequest {
            term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            transfer,
        }
    }

    /// Won the election: take over (§5.2), and append a no-op so that an entry of this term can
    /// commit, which commits everything before it (§5.4.2, §8).
    fn become_leader(&mut self, io: &mut Io<'_, Self>) {
        debug_assert!(matches!(self.role, Role::Candidate { .. }));
        let others: Vec<NodeId> = self.membership().others(self.id).collect();
        let leader = LeaderState::new(others, self.log.last_index() + 1, io.now());
        self.set_role(io, Role::Leader(Box::new(leader)));
        self.leader_id = Some(self.id);
        if let Some((request, target)) = self.pending_transfer.take() {
            let reason = format!("{} became leader instead of {target}", self.id);
            self.reply(io, request, RaftResponse::Rejected { reason });
        }
        io.cancel_timer(Timer::Election);
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        io.set_timer(Timer::CheckQuorum, self.config.election_timeout_min);
        io.event("elected", json!({ "term": self.term, "last_log_index": self.log.last_index() }));
        let index = self.append_as_leader(io, Payload::Noop, None);
        if let Role::Leader(ls) = &mut self.role {
            ls.term_start_index = index;
        }
    }

    /// RequestVote and pre-vote, receiver side (Figure 2, §5.2, §5.4.1, §9.6).
    pub(crate) fn handle_vote_request(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        req: VoteRequest,
        pre: bool,
    ) {
        let up_to_date = self.log.is_up_to_date(req.last_log_index, req.last_log_term);
        if pre {
            // Would we vote in `req.term` (our term + 1 for the asker)? Not if we hear a leader.
            let granted = req.term > self.term
                && up_to_date
                && (req.transfer || !self.heard_from_leader_recently(io.now()));
            let term = if granted { req.term } else { self.term };
            return self.send(io, from, Message::PreVoteResp(VoteResponse { term, granted }));
        }
        // §5.1: a candidate from an older term gets no vote.
        // MUTATION(vote_without_term_check): skip this check, and vote as if we were in its term.
        let old_term_vote = req.term < self.term;
        if old_term_vote && !self.config.mutations().vote_without_term_check {
            return self.send(io, from, Message::VoteResp(VoteResponse { term: self.term, granted: false }));
        }
        if old_term_vote {
            io.event("mutation-fired", json!({ "mutation": "vote_without_term_check", "term": req.term }));
        }
        let free = old_term_vote || self.voted_for.is_none() || self.voted_for == Some(from);
        let granted = free && up_to_date;
        if granted && !old_term_vote {
            self.voted_for = Some(from);
            self.persist_hard_state(io);
            self.reset_election_timer(io);
        }
        let term = if old_term_vote { req.term } else { self.term };
        let resp = Message::VoteResp(VoteResponse { term, granted });
        if io.tracing() {
            io.event("vote", json!({ "for": from.0, "term": req.term, "granted": granted }));
        }
        // MUTATION(skip_vote_sync): the response leaves before the vote is durable.
        if granted && self.config.mutations().skip_vote_sync {
            if self.needs_sync {
                io.event("mutation-fired", json!({ "mutation": "skip_vote_sync", "term": self.term }));
            }
            io.send(from, resp);
        } else {
            self.send(io, from, resp);
        }
    }

    /// Count a (pre-)vote. A majority of voters wins; a majority against loses.
    pub(crate) fn handle_vote_response(&mut self, io: &mut Io<'_, Self>, from: NodeId, granted: bool) {
        if !self.membership().is_voter(from) {
            return;
        }
        let (votes, pre) = match &mut self.role {
            Role::PreCandidate { votes } => (votes, true),
            Role::Candidate { votes } => (votes, false),
            _ => return,
        };
        votes.insert(from, granted);
        let yes: Vec<NodeId> = votes.iter().filter(|(_, &g)| g).map(|(&id, _)| id).collect();
        let no: Vec<NodeId> = votes.iter().filter(|(_, &g)| !g).map(|(&id, _)| id).collect();
        if self.membership().has_quorum(yes) {
            if pre {
                self.become_candidate(io, false);
            } else {
                self.become_leader(io);
            }
        } else if self.membership().has_quorum(no) {
            self.become_follower(io, self.term, None);
        }
    }

    /// The leader asked us to campaign at once (leadership transfer, §3.10).
    pub(crate) fn handle_timeout_now(&mut self, io: &mut Io<'_, Self>, from: NodeId) {
        if !self.membership().is_voter(self.id) {
            return;
        }
        io.event("timeout-now", json!({ "from": from.0, "term": self.term }));
        self.become_candidate(io, true);
    }

    /// Admin request: hand leadership to `target` (§3.10).
    pub(crate) fn handle_transfer_request(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        target: NodeId,
    ) {
        let reason = match &self.role {
            Role::Leader(_) if target == self.id => Some(format!("{target} is already the leader")),
            Role::Leader(_) if !self.membership().is_voter(target) => {
                Some(format!("{target} is not a voter"))
            }
            Role::Leader(ls) if ls.transfer.is_some() || self.pending_transfer.is_some() => {
                Some("a transfer is already in progress".to_string())
            }
            Role::Leader(_) => None,
            _ => return self.reply(io, request, RaftResponse::NotLeader { hint: self.leader_id }),
        };
        if let Some(reason) = reason {
            return self.reply(io, request, RaftResponse::Rejected { reason });
        }
        let deadline = io.now() + self.config.election_timeout_min;
        if let Role::Leader(ls) = &mut self.role {
            ls.transfer = Some((target, deadline));
        }
        self.pending_transfer = Some((request, target));
        io.event("transfer-start", json!({ "to": target.0, "term": self.term }));
        self.maybe_send_timeout_now(io, target);
        self.maybe_send(io, target);
    }

    /// If a transfer to `peer` is under way and its log is complete, tell it to campaign.
    pub(crate) fn maybe_send_timeout_now(&mut self, io: &mut Io<'_, Self>, peer: NodeId) {
        let last = self.log.last_index();
        let Role::Leader(ls) = &mut self.role else { return };
        let Some((target, _)) = ls.transfer else { return };
        let caught_up = ls.progress.get(&peer).is_some_and(|p| p.match_index == last);
        if target == peer && caught_up {
            // From now on a new leader may appear at any moment: no more lease reads this term.
            ls.lease_disabled = true;
            let term = self.term;
            self.send(io, peer, Message::TimeoutNow { term });
        }
    }

    /// Give up a transfer that did not finish within an election timeout.
    pub(crate) fn expire_transfer(&mut self, io: &mut Io<'_, Self>) {
        let now = io.now();
        let Role::Leader(ls) = &mut self.role else { return };
        if ls.transfer.is_some_and(|(_, deadline)| now >= deadline) {
            ls.transfer = None;
            if let Some((request, target)) = self.pending_transfer.take() {
                let reason = format!("transfer to {target} timed out");
                self.reply(io, request, RaftResponse::Rejected { reason });
            }
        }
    }
}

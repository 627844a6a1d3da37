//! Quiescence: an idle group stops heartbeating (CockroachDB's "quiesced ranges").
//!
//! A leader heartbeats every `heartbeat_interval` and each follower runs an election timer, even
//! when nothing happens. For one group that is nothing; for the ten thousand groups of a sharded
//! node it is most of its idle CPU. With [`RaftConfig::quiesce`](crate::RaftConfig) on, an idle
//! group goes silent and costs nothing until something happens to it.
//!
//! ## Going quiet: two heartbeat ticks
//! 1. **Notice.** On a heartbeat tick, a leader that is *quiescable* – every voter and learner
//!    holds its whole log (`match_index == last index`, nothing in flight, no snapshot under way),
//!    `commit == applied == last index`, no proposal, read, leadership transfer or membership
//!    change pending, no housekeeping due (a TTL to expire), and every follower acknowledged its
//!    last heartbeat round – sends [`QuiesceNotice`] instead of a heartbeat, as a new heartbeat
//!    round. A follower **agrees** if the notice is of its term, from the leader it follows, and
//!    its log ends exactly where the leader's does (same last index and term – by Log Matching the
//!    logs are then identical); it commits the announced commit index, stops its election timer
//!    and acknowledges the round. A follower that disagrees acknowledges it like a heartbeat (its
//!    `last_log_index` says it disagreed) and keeps its timer.
//! 2. **Quiet.** On the next tick, if the leader is still quiescable, nothing changed, and every
//!    follower acknowledged the notice's round agreeing, it cancels its `Heartbeat` and
//!    `CheckQuorum` timers: the group has no timer left anywhere. Otherwise it heartbeats as usual
//!    (which wakes the followers that agreed) and tries again later.
//!
//! Waiting for the acknowledgements before going quiet matters: a follower whose notice was lost
//! is still counting down its election timer, and a silent leader would let it campaign.
//!
//! ## Waking
//! * A quiesced **leader** wakes on any message and on any client request other than a stale read.
//!   It re-arms both timers, forgets who was heard recently (`recent_active`) so that its first
//!   check-quorum judges a full election timeout *after* the wake – the followers' silence while
//!   quiesced is not a lost quorum – and at once starts a heartbeat round, which wakes every
//!   follower.
//! * A quiesced **follower** wakes on any message. One from its leader simply resumes the usual
//!   life (it restarts the election timer as every leader message does). Anything else – a
//!   pre-vote, a vote, a higher term – is a sign that some replica is not quiet: the follower
//!   re-arms a full randomised election timeout and sends its leader [`Message::Wake`], so that
//!   the leader heartbeats again before that timeout ends. A client request to a follower does not
//!   wake it: it is answered (`NotLeader`, or a stale read) without any Raft traffic.
//! * A quiesced follower cannot tell that its leader died: nobody would ever wake it. The driver
//!   watches **node liveness** instead (the multi-Raft host in `concord-shard` exchanges one small
//!   beat per node pair per heartbeat interval, whatever the number of groups) and calls
//!   [`RaftNode::wake`] on a quiesced follower whose leader's node went silent for an election
//!   timeout. The follower then campaigns normally, with pre-vote, when its timer fires.
//!
//! ## The lease, and why waking never shortens stickiness
//! A leader's lease (`read.rs`) rests on followers refusing to vote for `election_timeout_min`
//! after they last heard it (leader stickiness, `election.rs`). Quiescence never lowers a
//! follower's `leader_contact`: the notice counts as contact like any heartbeat (and its round's
//! acknowledgements as a lease round, sound for the same reason), and a wake only ever *raises*
//! it. When the host wakes a follower because some other node spoke, it passes the time it last
//! heard the leader's node, and the follower counts that as contact – refusing votes longer is
//! always safe, and it is what keeps a stray pre-vote (say, from a replica that restarted and lost
//! its quiesced state) from electing a new leader while the old one is alive. A wake for a
//! silent leader node passes nothing: the follower's last real contact stands, and since its
//! leader's node was silent for an election timeout, that contact is at least that old and the
//! follower may vote at once. A quiesced leader's lease simply expires on its clock: the round a
//! majority acknowledged is the notice's, long past, so after waking its first lease read falls
//! back to ReadIndex and confirms leadership with a fresh round. The one extra safety rule: while
//! quiesced, a follower counts itself as having heard its leader recently (it refuses votes) –
//! refusing is always safe, and the message that brought the request wakes it anyway.
//!
//! ## Why a message of its own, not a flag on the heartbeat
//! The notice could have been a field of [`Heartbeat`](crate::message::Heartbeat), or a note the
//! host adds to its `Batch`. A new variant, last in [`Message`], changes nothing for a node that
//! never quiesces: the heartbeat's postcard encoding and every pinned simulator trace stay byte for
//! byte the same. And it keeps quiescence a Raft decision, made where the log and the progress of
//! every follower are known, instead of a host guessing from the outside.

use crate::message::{HeartbeatResponse, Message, QuiesceNotice};
use crate::node::{RaftNode, Role, Timer};
use concord_core::{Io, NodeId, StateMachine, Time};
use serde_json::json;
use std::collections::BTreeSet;

/// A leader's attempt to quiesce: the notice's round and what it announced.
#[derive(Debug)]
pub(crate) struct QuiesceAttempt {
    pub round: u64,
    pub last_index: u64,
    /// Followers that acknowledged the round with a log ending at `last_index`.
    pub agreed: BTreeSet<NodeId>,
}

impl<S: StateMachine> RaftNode<S> {
    /// Whether this node is quiesced (a leader that stopped heartbeating, or a follower that
    /// stopped its election timer).
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    /// A quiesced follower's leader: the node whose silence should wake it (see the module docs).
    pub fn quiesced_leader(&self) -> Option<NodeId> {
        if self.quiesced && !self.is_leader() {
            self.leader_id
        } else {
            None
        }
    }

    /// Wake a quiesced node (nothing if it is not quiesced). For drivers that watch node liveness:
    /// `leader_heard_at` is when the leader's node was last heard from (`None` if it went silent),
    /// and counts as leader contact – see the module docs for why that is sound.
    pub fn wake(&mut self, io: &mut Io<'_, Self>, leader_heard_at: Option<Time>) {
        if !self.quiesced {
            return;
        }
        if self.is_leader() {
            self.wake_leader(io, "host");
        } else {
            if let Some(at) = leader_heard_at {
                self.leader_contact = Some(self.leader_contact.map_or(at, |c| c.max(at)));
            }
            let reason = if leader_heard_at.is_some() { "host" } else { "leader-silent" };
            self.wake_follower(io, true, reason);
        }
    }

    /// Called by `step` after it handled a message that arrived while quiesced (handled first, so
    /// that a quiesced follower refuses the (pre-)vote that woke it, see the module docs).
    pub(crate) fn wake_after_message(&mut self, io: &mut Io<'_, Self>, from_leader: bool) {
        if !self.quiesced {
            return; // the message changed the role, or was a fresh notice that decided anew
        }
        if self.is_leader() {
            return self.wake_leader(io, "message");
        }
        // From our leader: it is awake. Anything else: ask the leader to heartbeat again.
        self.wake_follower(io, !from_leader, "message");
    }

    fn wake_leader(&mut self, io: &mut Io<'_, Self>, reason: &str) {
        self.quiesced = false;
        let Role::Leader(ls) = &mut self.role else { return };
        ls.quiesce = None;
        // Nobody spoke while quiet, and nobody had to: judge the quorum from now on.
        for pr in ls.progress.values_mut() {
            pr.recent_active = false;
        }
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        io.set_timer(Timer::CheckQuorum, self.config.election_timeout_min);
        io.event("woke", json!({ "term": self.term, "role": "leader", "reason": reason }));
        self.broadcast_heartbeat(io);
    }

    fn wake_follower(&mut self, io: &mut Io<'_, Self>, tell_leader: bool, reason: &str) {
        self.quiesced = false;
        self.reset_election_timer(io);
        io.event("woke", json!({ "term": self.term, "role": "follower", "reason": reason }));
        if let (true, Some(leader)) = (tell_leader, self.leader_id) {
            let term = self.term;
            self.send(io, leader, Message::Wake { term });
        }
    }

    /// Leader, on a heartbeat tick: take a step towards quiescence. Returns whether the tick was
    /// used for it (a notice sent, or the group went quiet); `false` means "heartbeat as usual".
    pub(crate) fn quiesce_tick(&mut self, io: &mut Io<'_, Self>) -> bool {
        let quiescable = self.quiescable();
        let (term, commit, last, last_term, now) =
            (self.term, self.commit_index, self.log.last_index(), self.log.last_term(), io.now());
        let Role::Leader(ls) = &mut self.role else { return false };
        let attempt = ls.quiesce.take();
        if !quiescable {
            return false;
        }
        if let Some(a) = attempt {
            let all_agreed = ls.progress.keys().all(|id| a.agreed.contains(id));
            if !(a.last_index == last && a.round == ls.round && all_agreed) {
                // Someone did not agree (or its answer was lost): heartbeat, try again next tick.
                return false;
            }
            self.quiesced = true;
            io.cancel_timer(Timer::Heartbeat);
            io.cancel_timer(Timer::CheckQuorum);
            io.event("quiesced", json!({ "term": term, "role": "leader", "index": last }));
            return true;
        }
        // Phase 1: the notice, as a new heartbeat round.
        ls.round += 1;
        let round = ls.round;
        ls.round_sent_at.insert(round, now);
        ls.quiesce = Some(QuiesceAttempt { round, last_index: last, agreed: BTreeSet::new() });
        let peers: Vec<NodeId> = ls.progress.keys().copied().collect();
        io.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        let notice = QuiesceNotice {
            term,
            leader_commit: commit,
            last_log_index: last,
            last_log_term: last_term,
            round,
        };
        for peer in peers {
            self.send(io, peer, Message::Quiesce(notice.clone()));
        }
        true
    }

    /// Everything replicated, committed and applied, nothing pending, every follower answered the
    /// last round (see the module docs).
    fn quiescable(&self) -> bool {
        let Role::Leader(ls) = &self.role else { return false };
        let last = self.log.last_index();
        self.config.quiesce
            && self.commit_index == last
            && self.applied_index == last
            && self.proposals.is_empty()
            && self.reads.is_empty()
            && ls.transfer.is_none()
            && self.pending_transfer.is_none()
            && ls.progress.values().all(|p| {
                p.match_index == last
                    && p.inflight.is_empty()
                    && p.acked_round >= ls.round
                    && p.state == crate::replication::ProgressState::Replicate
            })
            // A TTL to expire needs the leader's housekeeping tick: stay awake while keys have one.
            && self.sm.housekeeping(Time(u64::MAX)).is_empty()
    }

    /// Leader: a heartbeat acknowledgement; counts towards the quiesce attempt of its round.
    pub(crate) fn note_quiesce_ack(&mut self, from: NodeId, resp: &HeartbeatResponse) {
        let Role::Leader(ls) = &mut self.role else { return };
        if let Some(a) = &mut ls.quiesce {
            if resp.round == a.round && resp.last_log_index == a.last_index {
                a.agreed.insert(from);
            }
        }
    }

    /// Follower: the leader's notice (see the module docs).
    pub(crate) fn handle_quiesce(&mut self, io: &mut Io<'_, Self>, from: NodeId, n: QuiesceNotice) {
        // A repeated notice decides anew (`note_leader` re-arms the election timer).
        self.quiesced = false;
        self.note_leader(io, from);
        let agrees = self.log.last_index() == n.last_log_index && self.log.last_term() == n.last_log_term;
        if agrees {
            // The logs are identical, so the leader's commit index is ours to take.
            if n.leader_commit > self.commit_index {
                self.commit_to(io, n.leader_commit.min(n.last_log_index));
            }
            if self.commit_index == n.last_log_index && self.config.quiesce {
                self.quiesced = true;
                io.cancel_timer(Timer::Election);
                if io.tracing() {
                    io.event("quiesced", json!({ "term": self.term, "role": "follower", "leader": from.0 }));
                }
            }
        }
        // Our last index tells the leader whether we agreed. (A log of the same length but another
        // last term – possible only if this node lost acknowledged entries – looks like agreement:
        // the leader then goes quiet while this follower's timer runs, and the pre-vote it sends
        // when the timer fires wakes the group again. Live, if not quiet.)
        let resp =
            HeartbeatResponse { term: self.term, round: n.round, last_log_index: self.log.last_index() };
        self.send(io, from, Message::HeartbeatResp(resp));
    }
}

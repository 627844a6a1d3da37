//! Reads: ReadIndex, leader lease, and stale reads (dissertation §6.4).
//!
//! A read must not go through the log to be linearizable, but it must not be answered by a leader
//! that was deposed without knowing it either. Three ways, chosen per request:
//!
//! * **ReadIndex** (`ReadConsistency::Linearizable`, §6.4):
//!   1. the leader must have committed an entry of its term (its no-op), so its commit index is at
//!      least that of any earlier leader; the read index is `max(commit, term_start_index)`;
//!   2. it starts a new heartbeat round and waits until a majority acknowledges a round at least that
//!      new – proof that it was still leader *after* the read arrived;
//!   3. it waits until `applied_index ≥ read index`, then queries the state machine.
//! * **Lease** (`ReadConsistency::Lease`, §6.4.1): followers refuse to elect anyone for
//!   `election_timeout_min` after hearing the leader (see `election.rs`, leader stickiness). So when
//!   a majority acknowledged a round the leader *sent* at local time `t`, no other leader can exist
//!   before `t + election_timeout_min` – measured on the followers' clocks. The leader, measuring on
//!   its own clock, serves reads without a round trip until `t + election_timeout_min -
//!   clock_drift_bound`. If clocks drift more than the bound (the simulator can make them), a new
//!   leader may already exist and the read may be stale: the lease trades a clock assumption for
//!   latency. The lease is also given up for the rest of the term once a leadership transfer sends
//!   `TimeoutNow`. Expired lease → the read falls back to ReadIndex.
//! * **Stale** (`ReadConsistency::Stale`): any node answers from what it has applied, immediately.
//!   Named and explicit because it is not linearizable: a follower may be arbitrarily behind.

use crate::message::{RaftResponse, ReadConsistency};
use crate::node::{RaftNode, Role};
use concord_core::{Io, RequestId, StateMachine, Time};

/// A read waiting for leadership confirmation and/or for the state machine to catch up.
#[derive(Debug)]
pub(crate) struct PendingRead<Q> {
    pub request: RequestId,
    pub query: Q,
    /// Serve once `applied_index` reaches this.
    pub read_index: u64,
    /// The heartbeat round a majority must acknowledge; `None` once leadership is confirmed.
    pub round: Option<u64>,
}

impl<S: StateMachine> RaftNode<S> {
    pub(crate) fn handle_read(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        consistency: ReadConsistency,
        query: S::Query,
    ) {
        if consistency == ReadConsistency::Stale {
            let output = self.sm.query(&query);
            return self.reply(io, request, crate::message::RaftResponse::Output(output));
        }
        let Role::Leader(ls) = &self.role else {
            return self.reply(io, request, RaftResponse::NotLeader { hint: self.leader_id });
        };
        let read_index = self.commit_index.max(ls.term_start_index);
        let lease = consistency == ReadConsistency::Lease && self.lease_valid(io.now());
        // MUTATION(read_from_deposed_leader): serve without confirming leadership (no round, no lease).
        let round = if lease || self.config.mutations().read_from_deposed_leader {
            if !lease {
                io.event("mutation-fired", serde_json::json!({ "mutation": "read_from_deposed_leader" }));
            }
            None
        } else {
            Some(self.broadcast_heartbeat(io))
        };
        self.reads.push(PendingRead { request, query, read_index, round });
        self.serve_reads(io);
    }

    /// Whether the leader lease holds at local time `now`.
    pub(crate) fn lease_valid(&self, now: Time) -> bool {
        let Role::Leader(ls) = &self.role else { return false };
        if !self.config.lease_reads || ls.lease_disabled || ls.transfer.is_some() {
            return false;
        }
        let round = ls.quorum_round(self.id, self.membership());
        let Some(&sent_at) = ls.round_sent_at.get(&round) else { return false };
        let lease = self.config.election_timeout_min.saturating_sub(self.config.clock_drift_bound);
        now < sent_at + lease
    }

    /// Confirm reads whose round a majority acknowledged, then answer those the state machine has
    /// caught up with.
    pub(crate) fn serve_reads(&mut self, io: &mut Io<'_, Self>) {
        let Role::Leader(ls) = &mut self.role else { return };
        let confirmed = ls.quorum_round(self.id, self.configs.current());
        // Forget send times of rounds that can no longer be the quorum round (bounded memory).
        while ls.round_sent_at.len() > 1 && ls.round_sent_at.keys().next().is_some_and(|&r| r < confirmed) {
            ls.round_sent_at.pop_first();
        }
        if self.reads.is_empty() {
            return;
        }
        for read in &mut self.reads {
            if read.round.is_some_and(|r| r <= confirmed) {
                read.round = None;
            }
        }
        let applied = self.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads)
            .into_iter()
            .partition(|r| r.round.is_none() && r.read_index <= applied);
        self.reads = waiting;
        for read in ready {
            let output = self.sm.query(&read.query);
            self.reply(io, read.request, RaftResponse::Output(output));
        }
    }
}

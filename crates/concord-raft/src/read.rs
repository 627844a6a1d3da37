//! Reads: ReadIndex (batched), follower reads, leader lease, and stale reads (dissertation §6.4).
//!
//! A read must not go through the log to be linearizable, but it must not be answered by a leader
//! that was deposed without knowing it either. Four ways, chosen per request and per role:
//!
//! * **ReadIndex** (`ReadConsistency::Linearizable` at the leader, §6.4):
//!   1. the leader must have committed an entry of its term (its no-op), so its commit index is at
//!      least that of any earlier leader; the read index is `max(commit, term_start_index)`;
//!   2. it waits until a majority acknowledges a heartbeat round *started after the read arrived*
//!      – proof that it was still leader after the read arrived (see batching below);
//!   3. it waits until `applied_index ≥ read index`, then queries the state machine.
//! * **Batched rounds** (the dissertation's §6.4 remark that one round can serve many reads; etcd's
//!   `linearizableReadLoop` does the same). Starting a round per read costs a heartbeat to every
//!   follower and an answer back, per read. Instead, at most one *read round* is outstanding:
//!   - a read arriving when none is outstanding starts one at once and waits for it;
//!   - a read arriving while one is outstanding may **not** join it – that round was started
//!     before the read arrived, and a majority acknowledging it proves nothing about leadership
//!     after the read arrived. It waits for the *next* round (`round + 1`, not yet started);
//!   - when the outstanding round is confirmed, the next one starts at once if reads wait for it,
//!     so every read that arrived meanwhile shares that single round.
//!
//!   Rounds are numbered, and any round started after the read arrived will do: a heartbeat tick
//!   starting round `round + 1` in the meantime serves the waiting reads as well, and a lost round
//!   is simply overtaken by the next tick's. A leader that steps down answers `NotLeader` to every
//!   waiting read (`abandon_client_requests`).
//! * **Follower reads** (§6.4, "followers could help with read-only queries"; etcd's followers
//!   send the leader a `MsgReadIndex`). A follower receiving a linearizable read – or a lease read:
//!   a follower has no lease, and never serves weaker than asked – sends its leader a
//!   [`ReadIndexRequest`](crate::message::ReadIndexRequest). The leader treats it exactly as one of
//!   its own reads (same read index, same batched round started after the request arrived) and,
//!   once the round is confirmed, answers the index at once (it does not wait for its *own*
//!   state machine). The follower serves the query from **its own state machine** once its
//!   `applied_index` reaches that index: everything acknowledged before the read arrived is then
//!   applied locally. This spreads the query work over the replicas; the leader only counts.
//! * **Batched follower requests**, by the leader's rule turned around: at most one read-index
//!   request is in flight from a follower. A read arriving when none is in flight sends one at
//!   once; reads arriving while one is in flight may not ride it (the leader may have fixed its
//!   index before they arrived) and share the *next* request, sent when the answer comes back (or
//!   when the one in flight is given up at its reads' deadline). A pipeline of 16 reads on a
//!   follower costs the leader one request, not 16.
//!
//!   What may go wrong, and the bounded answer to each: no known leader → `NotLeader` at once; the
//!   leader refuses (it is not leader any more) or loses leadership before confirming → it answers
//!   `index: None`, and the follower answers `NotLeader`; the term changes, or the follower starts
//!   campaigning → every pending follower read fails with `NotLeader` (the index may come from a
//!   deposed leader's stale view and the query has nobody to wait for); a lost request or answer →
//!   the read fails with `NotLeader` after `election_timeout_max` (checked whenever a message or
//!   timer arrives – a follower hears its leader every heartbeat interval). So a follower read is
//!   never served without a read index from a leader confirmed after it arrived, and never waits
//!   longer than an election timeout for it.
//! * **Lease** (`ReadConsistency::Lease` at the leader, §6.4.1): followers refuse to elect anyone
//!   for `election_timeout_min` after hearing the leader (see `election.rs`, leader stickiness). So
//!   when a majority acknowledged a round the leader *sent* at local time `t`, no other leader can
//!   exist before `t + election_timeout_min` – measured on the followers' clocks. The leader,
//!   measuring on its own clock, serves reads without a round trip until `t + election_timeout_min
//!   - clock_drift_bound`. If clocks drift more than the bound (the simulator can make them), a new
//!   leader may already exist and the read may be stale: the lease trades a clock assumption for
//!   latency. The lease is also given up for the rest of the term once a leadership transfer sends
//!   `TimeoutNow`. Expired lease → the read falls back to ReadIndex.
//! * **Stale** (`ReadConsistency::Stale`): any node answers from what it has applied, immediately.
//!   Named and explicit because it is not linearizable: a follower may be arbitrarily behind.

use crate::message::{Message, RaftResponse, ReadConsistency, ReadIndexRequest, ReadIndexResponse};
use crate::node::{RaftNode, Role};
use concord_core::{Io, NodeId, RequestId, StateMachine, Time};

/// Who a leader's pending read is for.
#[derive(Debug)]
pub(crate) enum ReadFor<Q> {
    /// A client of this node: answer with the state machine's output.
    Client { request: RequestId, query: Q },
    /// A follower's [`ReadIndexRequest`]: answer with the read index once leadership is confirmed.
    Follower { node: NodeId, id: u64 },
}

/// A read at the leader waiting for leadership confirmation and/or for the state machine to catch up.
#[derive(Debug)]
pub(crate) struct PendingRead<Q> {
    pub read_for: ReadFor<Q>,
    /// Serve once `applied_index` reaches this.
    pub read_index: u64,
    /// The heartbeat round a majority must acknowledge; `None` once leadership is confirmed.
    pub round: Option<u64>,
}

/// A follower's read waiting for its leader's read index, then for its own state machine.
#[derive(Debug)]
pub(crate) struct FollowerRead<Q> {
    pub request: RequestId,
    pub query: Q,
    /// The read-index request the read rides (echoed by the leader). Reads share a request; one
    /// numbered `follower_read_sent + 1` waits for a request not sent yet.
    pub id: u64,
    /// The leader asked (an answer from anyone else is ignored).
    pub leader: NodeId,
    /// Local time after which the read fails (a lost request or answer).
    pub deadline: Time,
    /// The leader's answer; serve once `applied_index` reaches it.
    pub read_index: Option<u64>,
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
            return self.reply_committed(io, request, crate::message::RaftResponse::Output(output));
        }
        let Role::Leader(ls) = &self.role else {
            return self.follower_read(io, request, query);
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
            Some(self.read_round(io))
        };
        self.reads.push(PendingRead { read_for: ReadFor::Client { request, query }, read_index, round });
        self.serve_reads(io);
    }

    /// The heartbeat round a read arriving now must see acknowledged: a new round if no read round
    /// is outstanding (started at once), otherwise the next one (started when the outstanding one
    /// is confirmed, see [`RaftNode::serve_reads`]).
    fn read_round(&mut self, io: &mut Io<'_, Self>) -> u64 {
        let Role::Leader(ls) = &mut self.role else { unreachable!("only leaders count rounds") };
        let membership = self.configs.current();
        let confirmed = ls.quorum_round(self.id, membership);
        if membership.voters.len() == 1 && membership.is_voter(self.id) {
            // The only voter: nobody else can be elected without our vote, which we do not give
            // while we lead, so leading *now* is confirmation enough – no new round per read.
            return confirmed;
        }
        if ls.read_round > confirmed {
            // Joining `ls.read_round` would be unsafe: it was started before this read arrived.
            let next = ls.round + 1;
            ls.read_wanted = Some(next);
            return next;
        }
        let round = self.start_round(io);
        if let Role::Leader(ls) = &mut self.role {
            ls.read_round = round;
        }
        round
    }

    /// Leader: a follower asks for a read index. Treated as one of our own reads (same index, same
    /// batched round); answered as soon as the round is confirmed.
    pub(crate) fn handle_read_index_request(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        req: ReadIndexRequest,
    ) {
        let Role::Leader(ls) = &self.role else {
            return self.refuse_read_index(io, from, req.id);
        };
        let read_index = self.commit_index.max(ls.term_start_index);
        let round = Some(self.read_round(io));
        self.reads.push(PendingRead {
            read_for: ReadFor::Follower { node: from, id: req.id },
            read_index,
            round,
        });
        self.serve_reads(io);
    }

    /// Tell `to` that we give no read index for its read `id` (not leader, or no longer).
    pub(crate) fn refuse_read_index(&mut self, io: &mut Io<'_, Self>, to: NodeId, id: u64) {
        let term = self.term;
        self.send(io, to, Message::ReadIndexResp(ReadIndexResponse { term, id, index: None }));
    }

    /// Follower (or candidate, learner…): a linearizable or lease read. Ask the leader for a read
    /// index, or refuse at once if there is no leader to ask.
    fn follower_read(&mut self, io: &mut Io<'_, Self>, request: RequestId, query: S::Query) {
        let leader = match (&self.role, self.leader_id) {
            (Role::Follower, Some(leader)) if leader != self.id => leader,
            _ => return self.reply(io, request, RaftResponse::NotLeader { hint: self.leader_id }),
        };
        // MUTATION(follower_read_without_index): answer from our own state, however far behind.
        if self.config.mutations().follower_read_without_index {
            io.event("mutation-fired", serde_json::json!({ "mutation": "follower_read_without_index" }));
            let output = self.sm.query(&query);
            return self.reply(io, request, RaftResponse::Output(output));
        }
        let deadline = io.now() + self.config.election_timeout_max;
        // The request in flight was sent before this read arrived: the read waits for the next.
        let id = self.follower_read_sent + 1;
        self.follower_reads.push_back(FollowerRead {
            request,
            query,
            id,
            leader,
            deadline,
            read_index: None,
        });
        if !self.follower_read_in_flight {
            self.send_follower_read_request(io);
        }
    }

    /// Send the read-index request the reads numbered `follower_read_sent + 1` wait for.
    fn send_follower_read_request(&mut self, io: &mut Io<'_, Self>) {
        let id = self.follower_read_sent + 1;
        let Some(leader) = self.follower_reads.iter().find(|r| r.id == id).map(|r| r.leader) else {
            return; // nobody waits for it
        };
        self.follower_read_sent = id;
        self.follower_read_in_flight = true;
        let term = self.term;
        self.send(io, leader, Message::ReadIndex(ReadIndexRequest { term, id }));
    }

    /// Follower: the leader's answer to one of our read-index requests.
    pub(crate) fn handle_read_index_response(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        resp: ReadIndexResponse,
    ) {
        if resp.id != self.follower_read_sent || !self.follower_read_in_flight {
            return; // an answer to a request given up on (timeout, term change) or a duplicate
        }
        let rides = |r: &FollowerRead<S::Query>| r.id == resp.id && r.leader == from;
        if !self.follower_reads.iter().any(rides) {
            return; // not from the leader we asked
        }
        self.follower_read_in_flight = false;
        match resp.index {
            Some(index) => {
                for read in self.follower_reads.iter_mut().filter(|r| rides(r)) {
                    read.read_index = Some(index);
                }
            }
            None => {
                let (refused, others): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.follower_reads).into_iter().partition(rides);
                self.follower_reads = others.into();
                for read in refused {
                    self.reply(io, read.request, RaftResponse::NotLeader { hint: None });
                }
            }
        }
        // The reads that arrived while this request was in flight share the next one.
        self.send_follower_read_request(io);
        self.serve_follower_reads(io);
    }

    /// Fail every pending follower read with `NotLeader`: the term changed, or this node stopped
    /// following (it campaigns). An index from the old leader must not be used any more.
    pub(crate) fn fail_follower_reads(&mut self, io: &mut Io<'_, Self>) {
        self.follower_read_in_flight = false;
        for read in std::mem::take(&mut self.follower_reads) {
            self.reply(io, read.request, RaftResponse::NotLeader { hint: None });
        }
    }

    /// Fail the follower reads whose deadline passed (their request or answer was lost).
    pub(crate) fn expire_follower_reads(&mut self, io: &mut Io<'_, Self>) {
        let now = io.now();
        // Deadlines are `arrival + election_timeout_max`: in arrival order, so the expired are first.
        while self.follower_reads.front().is_some_and(|r| r.deadline <= now) {
            let read = self.follower_reads.pop_front().expect("checked");
            if read.read_index.is_some_and(|i| i <= self.applied_index) {
                // Servable (cannot normally stay here, but serving it is correct).
                let output = self.sm.query(&read.query);
                self.reply(io, read.request, RaftResponse::Output(output));
            } else {
                self.reply(io, read.request, RaftResponse::NotLeader { hint: self.leader_id });
            }
        }
        // The request in flight was lost with the reads that rode it: give it up, and send the
        // next one for the reads that wait (they arrived later, so their deadlines are later).
        let sent = self.follower_read_sent;
        if self.follower_read_in_flight && !self.follower_reads.iter().any(|r| r.id == sent) {
            self.follower_read_in_flight = false;
            self.send_follower_read_request(io);
        }
    }

    /// Answer the follower reads whose read index we have applied.
    fn serve_follower_reads(&mut self, io: &mut Io<'_, Self>) {
        let applied = self.applied_index;
        if !self.follower_reads.iter().any(|r| r.read_index.is_some_and(|i| i <= applied)) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.follower_reads)
            .into_iter()
            .partition(|r| r.read_index.is_some_and(|i| i <= applied));
        self.follower_reads = waiting.into();
        for read in ready {
            let output = self.sm.query(&read.query);
            self.reply_committed(io, read.request, RaftResponse::Output(output));
        }
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

    /// Confirm reads whose round a majority acknowledged (starting the next read round if reads
    /// wait for one), answer confirmed follower requests, then answer the reads the state machine
    /// has caught up with – the leader's, or, on a follower, those the leader gave an index for.
    pub(crate) fn serve_reads(&mut self, io: &mut Io<'_, Self>) {
        if !self.is_leader() {
            return self.serve_follower_reads(io);
        }
        let confirmed = loop {
            let Role::Leader(ls) = &mut self.role else { return };
            let confirmed = ls.quorum_round(self.id, self.configs.current());
            // Forget send times of rounds that can no longer be the quorum round (bounded memory).
            while ls.round_sent_at.len() > 1 && ls.round_sent_at.keys().next().is_some_and(|&r| r < confirmed)
            {
                ls.round_sent_at.pop_first();
            }
            match ls.read_wanted {
                // The outstanding read round is confirmed and reads wait for the next one.
                Some(wanted) if ls.read_round <= confirmed => {
                    ls.read_wanted = None;
                    if wanted <= ls.round {
                        // A heartbeat tick already started a round after they arrived: share it.
                        ls.read_round = ls.round;
                    } else {
                        let round = self.start_round(io);
                        if let Role::Leader(ls) = &mut self.role {
                            ls.read_round = round;
                        }
                        // A single voter confirms its round at once: look again.
                        continue;
                    }
                }
                _ => {}
            }
            break confirmed;
        };
        if self.reads.is_empty() {
            return;
        }
        for read in &mut self.reads {
            if read.round.is_some_and(|r| r <= confirmed) {
                read.round = None;
            }
        }
        let applied = self.applied_index;
        let ready = |r: &PendingRead<S::Query>| {
            r.round.is_none() && (r.read_index <= applied || matches!(r.read_for, ReadFor::Follower { .. }))
        };
        if !self.reads.iter().any(ready) {
            return;
        }
        // `self.reads` keeps its capacity: a leader serving a pipeline calls this once per read.
        let ready: Vec<_> = self.reads.extract_if(.., |r| ready(r)).collect();
        let term = self.term;
        for read in ready {
            match read.read_for {
                ReadFor::Client { request, query } => {
                    let output = self.sm.query(&query);
                    self.reply_committed(io, request, RaftResponse::Output(output));
                }
                ReadFor::Follower { node, id } => {
                    let resp = ReadIndexResponse { term, id, index: Some(read.read_index) };
                    self.send(io, node, Message::ReadIndexResp(resp));
                }
            }
        }
    }
}

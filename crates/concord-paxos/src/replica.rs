//! The replica and learner (PMMC §3, "Replicas"; *Paxos Made Simple* §2.3 and §3).
//!
//! * **Client requests**: only the leader proposes. A command becomes a [`LogValue::Command`]
//!   carrying the client's session; a read becomes a [`LogValue::Read`] – reads are ordered through
//!   the log like commands, so they are linearizable without leases. Other nodes answer
//!   `NotLeader` with the leader they know.
//! * **Learning** (§2.3): a slot is learned when the leader counts `q2` acceptances (`leader.rs`),
//!   from the leader's `decide`, or from a catch-up answer. Learned slots are written to disk (so a
//!   restarted replica need not fetch them again) and applied in slot order (PMMC's `perform`).
//! * **Exactly once**: applying a command goes through Raft's session table
//!   ([`concord_raft::session`], dissertation §6.3) – the same table, not a copy, in the snapshot too.
//! * **Catching up** (§3, "a new leader … learns the commands it is missing"): a replica that learns
//!   of slots beyond its applied prefix – a heartbeat's `decided_upto`, a `decide` with a gap –
//!   asks for the chosen slots (`catch-up`), at most once per heartbeat interval. The answer is the
//!   decided slots, or the snapshot when they were compacted.
//! * **Snapshots** (PMMC §4, "garbage collection"): every `snapshot_threshold_slots` applied slots,
//!   the machine and the session table are written as a snapshot; decided and accepted records of
//!   slots it covers are dropped. A node far behind installs a snapshot it is sent.

use crate::ballot::Ballot;
use crate::message::{LogValue, Message, PaxosRequest, PaxosResponse};
use crate::node::{value_hash, LearnRecord, PaxosNode, Role, Value};
use crate::storage;
use concord_core::{Io, NodeId, RequestId, StateMachine};
use concord_raft::session::{SessionCheck, Sessions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a snapshot holds: the session table and the machine's own bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotData<O> {
    pub sessions: Sessions<O>,
    pub machine: Vec<u8>,
}

impl<O: Serialize + DeserializeOwned> SnapshotData<O> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("snapshots serialise")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("snapshot does not decode: {e}"))
    }
}

impl<S: StateMachine> PaxosNode<S> {
    // ----- client requests -----

    pub(crate) fn handle_request(
        &mut self,
        io: &mut Io<'_, Self>,
        request: RequestId,
        req: PaxosRequest<S::Command, S::Query>,
    ) {
        let Role::Leader(ls) = &self.role else {
            let hint = self.leader.filter(|&l| l != self.id);
            return self.reply(io, request, PaxosResponse::NotLeader { hint });
        };
        if ls.proposals.len() as u64 >= self.config.max_inflight_slots {
            let reason = "too many slots in flight".to_string();
            return self.reply(io, request, PaxosResponse::Rejected { reason });
        }
        let origin = (self.id, io.random_u64());
        let value = match req {
            PaxosRequest::Propose { session, command } => {
                if let Some(s) = session {
                    match self.sessions.check(s) {
                        SessionCheck::Apply => {}
                        SessionCheck::Duplicate(output) => {
                            return self.reply(io, request, PaxosResponse::Output(output))
                        }
                        SessionCheck::Stale => {
                            let reason = format!("{} already moved past request {}", s.client, s.seq);
                            return self.reply(io, request, PaxosResponse::Unknown { reason });
                        }
                    }
                }
                LogValue::Command { session, command, origin }
            }
            PaxosRequest::Read { query } => LogValue::Read { query, origin },
        };
        let slot = self.propose(io, value);
        self.pending.insert(slot, (request, origin));
    }

    // ----- learning -----

    /// `value` was chosen in `slot` by `ballot`.
    pub(crate) fn learn(&mut self, io: &mut Io<'_, Self>, slot: u64, ballot: Ballot, value: Value<S>) {
        if let Role::Leader(ls) = &mut self.role {
            ls.proposals.remove(&slot);
        }
        if slot <= self.applied || self.decided.contains_key(&slot) {
            return;
        }
        self.persist(io, [storage::put_decided(slot, ballot, &value)]);
        self.learn_journal.push(LearnRecord { slot, ballot, value_hash: value_hash(&value) });
        if io.tracing() {
            io.event(
                "learned",
                json!({ "slot": slot, "ballot": ballot.to_string(), "value": value.kind_name() }),
            );
        }
        self.decided.insert(slot, (ballot, value));
        self.apply_decided(io);
    }

    pub(crate) fn handle_decide(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        ballot: Ballot,
        slot: u64,
        value: Value<S>,
    ) {
        self.note_ballot(ballot);
        self.learn(io, slot, ballot, value);
        if slot > self.applied + 1 && !self.decided.contains_key(&(self.applied + 1)) {
            self.ask_catch_up(io, from, false);
        }
    }

    /// Apply every learned slot right after `applied` (PMMC's `perform`).
    fn apply_decided(&mut self, io: &mut Io<'_, Self>) {
        while let Some((_, value)) = self.decided.get(&(self.applied + 1)).cloned() {
            self.applied += 1;
            let slot = self.applied;
            let response = self.apply_value(slot, &value);
            if let Some((request, origin)) = self.pending.remove(&slot) {
                let response = match response {
                    Some(r) if value.origin() == Some(origin) => r,
                    _ => PaxosResponse::Unknown { reason: format!("slot {slot} went to another value") },
                };
                self.reply(io, request, response);
            }
        }
        self.maybe_snapshot(io);
    }

    /// Apply one chosen value to the state machine; the response its proposer should get.
    fn apply_value(&mut self, slot: u64, value: &Value<S>) -> Option<PaxosResponse<S::Output>> {
        match value {
            LogValue::Noop => None,
            LogValue::Read { query, .. } => Some(PaxosResponse::Output(self.sm.query(query))),
            LogValue::Command { session: None, command, .. } => {
                Some(PaxosResponse::Output(self.sm.apply(slot, command)))
            }
            LogValue::Command { session: Some(s), command, .. } => Some(match self.sessions.check(*s) {
                SessionCheck::Apply => {
                    let output = self.sm.apply(slot, command);
                    self.sessions.record(*s, output.clone());
                    PaxosResponse::Output(output)
                }
                SessionCheck::Duplicate(output) => PaxosResponse::Output(output),
                SessionCheck::Stale => {
                    PaxosResponse::Unknown { reason: format!("{} moved past request {}", s.client, s.seq) }
                }
            }),
        }
    }

    /// At boot: apply the learned slots found on disk (no client is waiting for them).
    pub(crate) fn apply_recovered(&mut self) {
        while let Some((_, value)) = self.decided.get(&(self.applied + 1)).cloned() {
            self.applied += 1;
            self.apply_value(self.applied, &value);
        }
    }

    // ----- catching up -----

    /// Ask `peer` for the chosen slots after `applied`, unless asked within a heartbeat interval
    /// (`force`: ask anyway).
    pub(crate) fn ask_catch_up(&mut self, io: &mut Io<'_, Self>, peer: NodeId, force: bool) {
        let now = io.now();
        let recent =
            self.catch_up_asked.is_some_and(|t| now.saturating_since(t) < self.config.heartbeat_interval);
        if (recent && !force) || peer == self.id {
            return;
        }
        self.catch_up_asked = Some(now);
        let from_slot = self.applied + 1;
        self.send(io, peer, Message::CatchUp { from_slot });
    }

    pub(crate) fn handle_catch_up(&mut self, io: &mut Io<'_, Self>, from: NodeId, from_slot: u64) {
        if from_slot <= self.snapshot_slot {
            if let Some(data) = self.snapshot_data.clone() {
                let slot = self.snapshot_slot;
                io.event("snapshot-send", json!({ "to": from.0, "slot": slot }));
                return self.send(io, from, Message::Snapshot { slot, data });
            }
        }
        let mut decided = Vec::new();
        let mut slot = from_slot;
        while let Some((ballot, value)) = self.decided.get(&slot) {
            if decided.len() >= self.config.max_catchup_slots {
                break;
            }
            decided.push((slot, *ballot, value.clone()));
            slot += 1;
        }
        if !decided.is_empty() {
            self.send(io, from, Message::CatchUpResp { decided });
        }
    }

    pub(crate) fn handle_catch_up_resp(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        decided: Vec<(u64, Ballot, Value<S>)>,
    ) {
        let full = decided.len() >= self.config.max_catchup_slots;
        for (slot, ballot, value) in decided {
            self.learn(io, slot, ballot, value);
        }
        // A full batch: there may be more.
        if full {
            self.ask_catch_up(io, from, true);
        }
    }

    // ----- snapshots -----

    fn maybe_snapshot(&mut self, io: &mut Io<'_, Self>) {
        let threshold = self.config.snapshot_threshold_slots;
        if threshold == 0 || self.applied < self.snapshot_slot + threshold {
            return;
        }
        let slot = self.applied;
        let data = SnapshotData { sessions: self.sessions.clone(), machine: self.sm.snapshot() }.encode();
        self.persist(io, storage::put_snapshot(slot, &data));
        self.compact(slot, data);
        io.event("snapshot", json!({ "slot": slot }));
    }

    /// Forget what the snapshot at `slot` covers.
    fn compact(&mut self, slot: u64, data: Vec<u8>) {
        self.decided = self.decided.split_off(&(slot + 1));
        self.accepted = self.accepted.split_off(&(slot + 1));
        self.snapshot_slot = slot;
        self.snapshot_data = Some(data);
    }

    /// Install a snapshot from a node that is ahead.
    pub(crate) fn handle_snapshot(&mut self, io: &mut Io<'_, Self>, slot: u64, data: Vec<u8>) {
        if slot <= self.applied {
            return;
        }
        let decoded = match SnapshotData::<S::Output>::decode(&data) {
            Ok(d) => d,
            Err(e) => {
                io.event("snapshot-rejected", json!({ "slot": slot, "reason": e }));
                return;
            }
        };
        if let Err(e) = self.sm.restore(&decoded.machine) {
            io.event("snapshot-rejected", json!({ "slot": slot, "reason": e.to_string() }));
            return;
        }
        self.sessions = decoded.sessions;
        self.applied = slot;
        self.persist(io, storage::put_snapshot(slot, &data));
        self.compact(slot, data);
        io.event("snapshot-installed", json!({ "slot": slot }));
        // Requests proposed in slots the snapshot covers: their outcome is not known here.
        let covered: Vec<u64> = self.pending.range(..=slot).map(|(&s, _)| s).collect();
        for s in covered {
            let (request, _) = self.pending.remove(&s).expect("present");
            let reason = format!("slot {s} was learned from a snapshot");
            self.reply(io, request, PaxosResponse::Unknown { reason });
        }
        if let Role::Leader(ls) = &mut self.role {
            ls.proposals = ls.proposals.split_off(&(slot + 1));
            ls.next_slot = ls.next_slot.max(slot + 1);
        }
        self.catch_up_asked = None;
        self.apply_decided(io);
    }
}

//! The acceptor (*Paxos Made Simple* §2.2; PMMC §3, "Acceptors"), for every slot at once.
//!
//! PMMC's acceptor state is one ballot number – the highest it promised, shared by all slots –
//! and a set of accepted pvalues ⟨ballot, slot, value⟩, of which only the highest-ballot one per
//! slot matters. It is [`crate::single::Acceptor`] with the promise hoisted out of the slots:
//!
//! * **phase 1b** (`prepare(b, from_slot)`): if `b` is not below the promise, promise it (durably)
//!   and report every value accepted in a slot `>= from_slot`; otherwise `nack` with the promise;
//! * **phase 2b** (`accept(b, slot, v)`): if `b` is not below the promise, accept (durably, which
//!   also raises the promise to `b`) and answer `accepted`; otherwise `nack`.
//!
//! Both answers leave only after the state they report is on disk (`PaxosNode::send` syncs first)
//! – except under the deliberate bug `promise_before_sync`.
//!
//! Slots at or below the node's snapshot were chosen and applied; their accepted values are
//! dropped (PMMC §4 garbage collection), and a promise says so (`compacted_upto`), so a new leader
//! never proposes there and learns them instead.

use crate::ballot::Ballot;
use crate::message::{Message, PValue};
use crate::node::{value_hash, AcceptRecord, PaxosNode, Value};
use crate::storage;
use concord_core::{Io, NodeId, StateMachine};
use serde_json::json;

impl<S: StateMachine> PaxosNode<S> {
    /// Phase 1b.
    pub(crate) fn handle_prepare(&mut self, io: &mut Io<'_, Self>, from: NodeId, ballot: Ballot, from_slot: u64) {
        self.note_ballot(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            return self.send(io, from, Message::Nack { ballot, promised });
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.persist(io, storage::put_promise(ballot));
            // A higher ballot is campaigning: our own leadership (of a lower ballot) is over.
            self.step_down_below(io, ballot);
        }
        io.event("promise", json!({ "ballot": ballot.to_string(), "to": from.0, "from_slot": from_slot }));
        let accepted = self
            .accepted
            .range(from_slot..)
            .map(|(&slot, (b, v))| PValue { slot, ballot: *b, value: v.clone() })
            .collect();
        let msg = Message::Promise { ballot, accepted, compacted_upto: self.snapshot_slot };
        // MUTATION(promise_before_sync): the promise leaves before it is durable.
        if self.config.mutations().promise_before_sync && from != self.id {
            if self.needs_sync {
                io.event("mutation-fired", json!({ "mutation": "promise_before_sync", "ballot": ballot.to_string() }));
            }
            io.send(from, msg);
            return;
        }
        self.send(io, from, msg);
    }

    /// Phase 2b.
    pub(crate) fn handle_accept(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        ballot: Ballot,
        slot: u64,
        value: Value<S>,
    ) {
        self.note_ballot(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            return self.send(io, from, Message::Nack { ballot, promised });
        }
        if slot <= self.applied {
            // Already chosen here: tell the proposer what was chosen instead of voting again.
            return self.tell_chosen(io, from, slot);
        }
        let promised_before = self.promised;
        if ballot > self.promised {
            self.promised = ballot;
            self.step_down_below(io, ballot);
        }
        let pv = PValue { slot, ballot, value };
        self.persist(io, storage::put_accepted(&pv));
        self.accept_journal.push(AcceptRecord {
            slot,
            ballot,
            value_hash: value_hash(&pv.value),
            promised_before,
        });
        if io.tracing() {
            io.event("accept", json!({ "slot": slot, "ballot": ballot.to_string() }));
        }
        self.accepted.insert(slot, (ballot, pv.value));
        self.send(io, from, Message::Accepted { ballot, slot });
    }

    /// `from` proposes in a slot we already applied: send it the decision, or the snapshot if the
    /// slot was compacted.
    fn tell_chosen(&mut self, io: &mut Io<'_, Self>, to: NodeId, slot: u64) {
        if let Some((ballot, value)) = self.decided.get(&slot).cloned() {
            self.send(io, to, Message::Decide { ballot, slot, value });
        } else if let Some(data) = self.snapshot_data.clone() {
            let slot = self.snapshot_slot;
            self.send(io, to, Message::Snapshot { slot, data });
        }
    }
}

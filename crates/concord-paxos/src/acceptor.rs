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
    pub(crate) fn handle_prepare(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        ballot: Ballot,
        from_slot: u64,
    ) {
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
        let own = from == self.id;
        io.event(
            "promise",
            json!({ "ballot": ballot.to_string(), "to": from.0, "own": own, "from_slot": from_slot }),
        );
        let accepted = self
            .accepted
            .range(from_slot..)
            .map(|(&slot, (b, v))| PValue { slot, ballot: *b, value: v.clone() })
            .collect();
        let msg = Message::Promise { ballot, accepted, compacted_upto: self.snapshot_slot };
        // MUTATION(promise_before_sync): the promise leaves before it is durable.
        if self.config.mutations().promise_before_sync && from != self.id {
            if self.needs_sync {
                io.event(
                    "mutation-fired",
                    json!({ "mutation": "promise_before_sync", "ballot": ballot.to_string() }),
                );
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
        if self.accepted.get(&slot).is_some_and(|(b, _)| *b == ballot) {
            // A retransmission (or duplicate) of what we accepted: the record is already written.
            // Writing it again would overwrite a synced record in place, and a torn crash could
            // then destroy it – the simulator found exactly that (the acceptor forgot a value
            // chosen in that slot, and the next leader proposed another).
            return self.send(io, from, Message::Accepted { ballot, slot });
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
            io.event(
                "accept",
                json!({ "slot": slot, "ballot": ballot.to_string(), "value": pv.value.kind_name() }),
            );
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

#[cfg(test)]
mod tests {
    use crate::ballot::Ballot;
    use crate::config::PaxosConfig;
    use crate::message::{LogValue, Message};
    use crate::node::PaxosNode;
    use concord_core::{Durable, Effect, Io, NodeId, Process};
    use concord_kv::{KvLimits, KvStore};

    /// A counter standing in for the driver's seeded generator.
    struct Counter(u64);
    impl rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 += 1;
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(7)
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(7);
            Ok(())
        }
    }

    type Node = PaxosNode<KvStore>;

    fn node() -> Node {
        let nodes = vec![NodeId(1), NodeId(2), NodeId(3)];
        PaxosNode::boot(
            NodeId(2),
            nodes,
            PaxosConfig::default(),
            KvStore::new(KvLimits::default()),
            &Durable::new(),
        )
        .unwrap()
    }

    /// Feed one message to node 2 (from node 1); the effects it emitted, as short names.
    fn step(n: &mut Node, msg: Message<crate::node::Value<KvStore>>) -> Vec<String> {
        let (mut rng, mut effects) = (Counter(0), Vec::new());
        let mut io: Io<'_, Node> =
            Io::new(NodeId(2), concord_core::Time::ZERO, false, &mut rng, &mut effects);
        n.on_message(&mut io, NodeId(1), msg);
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Persist(_) => Some("persist".to_string()),
                Effect::Sync => Some("sync".to_string()),
                Effect::Send { msg, .. } => Some(concord_core::Message::kind(msg).to_string()),
                _ => None,
            })
            .collect()
    }

    /// PMS §2.2: an acceptor's promise and acceptance are on stable storage before it answers.
    #[test]
    fn promises_and_acceptances_are_synced_before_they_are_sent() {
        let mut n = node();
        let b = Ballot::new(1, NodeId(1));
        let promise = step(&mut n, Message::Prepare { ballot: b, from_slot: 1 });
        assert_eq!(promise, ["persist", "persist", "sync", "promise"]);
        let accept = Message::Accept { ballot: b, slot: 1, value: LogValue::Noop };
        assert_eq!(step(&mut n, accept.clone()), ["persist", "persist", "sync", "accepted"]);
        // A duplicate is answered without rewriting the record: a rewrite in place could be torn
        // by a crash and destroy the synced acceptance.
        assert_eq!(step(&mut n, accept), ["accepted"]);
        // A lower ballot is refused, with the promise.
        let low = Message::Prepare { ballot: Ballot::new(0, NodeId(3)), from_slot: 1 };
        assert_eq!(step(&mut n, low), ["nack"]);
        assert_eq!(n.promised(), b);
    }
}

//! Every message Paxos nodes exchange, and the client-facing request and response types.
//!
//! | kind | Paxos Made Simple | PMMC | purpose |
//! |---|---|---|---|
//! | `prepare` | phase 1a | `p1a` (scout) | "promise me ballot b, for every slot from `from_slot` on" |
//! | `promise` | phase 1b | `p1b` | the promise, with every value accepted from `from_slot` on |
//! | `accept` | phase 2a | `p2a` (commander) | "accept `value` in `slot` at ballot b" |
//! | `accepted` | phase 2b | `p2b` | it did (sent to the proposer, which is also the learner that counts) |
//! | `nack` | §2.2 "optimisation" | `preempted` | refused: I promised a higher ballot – tells the proposer to stop |
//! | `decide` | §2.3 learning | `decision` | the leader tells every replica what was chosen |
//! | `heartbeat` | §3 "distinguished proposer" | failure detector | the leader is alive; how far it decided |
//! | `catch-up` / `catch-up-resp` | §3 "learn the commands it is missing" | – | a lagging replica asks for chosen slots |
//! | `snapshot` | – | §4 "garbage collection" | a replica far behind gets the state instead of compacted slots |

use crate::ballot::Ballot;
use concord_core::NodeId;
use concord_raft::message::Session;
use serde::{Deserialize, Serialize};

/// What a slot of the replicated log holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogValue<C, Q> {
    /// Fills a gap a new leader found below its highest reported slot (PMMC §3, Multi-Paxos in
    /// *Paxos Made Simple* §3: "no-op").
    Noop,
    /// A client command. `origin` (proposing node, random tag) tells the proposer whether *its*
    /// proposal won the slot.
    Command { session: Option<Session>, command: C, origin: (NodeId, u64) },
    /// A read, ordered through the log like a command (linearizable without leases).
    Read { query: Q, origin: (NodeId, u64) },
}

impl<C, Q> LogValue<C, Q> {
    pub fn origin(&self) -> Option<(NodeId, u64)> {
        match self {
            LogValue::Noop => None,
            LogValue::Command { origin, .. } | LogValue::Read { origin, .. } => Some(*origin),
        }
    }

    /// `"noop"`, `"command"` or `"read"`: what trace events say a slot holds (for viewers).
    pub fn kind_name(&self) -> &'static str {
        match self {
            LogValue::Noop => "noop",
            LogValue::Command { .. } => "command",
            LogValue::Read { .. } => "read",
        }
    }
}

/// A proposal an acceptor accepted: PMMC's "pvalue" ⟨ballot, slot, command⟩.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PValue<V> {
    pub slot: u64,
    pub ballot: Ballot,
    pub value: V,
}

/// A Paxos message between nodes. `V` is the log value type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message<V> {
    Prepare {
        ballot: Ballot,
        from_slot: u64,
    },
    /// `accepted`: every value the acceptor holds for slots `>= from_slot`; `compacted_upto`: the
    /// acceptor's snapshot slot – slots up to it were chosen and their values dropped.
    Promise {
        ballot: Ballot,
        accepted: Vec<PValue<V>>,
        compacted_upto: u64,
    },
    Accept {
        ballot: Ballot,
        slot: u64,
        value: V,
    },
    Accepted {
        ballot: Ballot,
        slot: u64,
    },
    /// `ballot` was refused because the acceptor promised `promised`.
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    /// `value` was chosen in `slot` (by ballot `ballot`).
    Decide {
        ballot: Ballot,
        slot: u64,
        value: V,
    },
    /// `decided_upto`: the leader's contiguous prefix of chosen slots.
    Heartbeat {
        ballot: Ballot,
        decided_upto: u64,
    },
    CatchUp {
        from_slot: u64,
    },
    /// Chosen slots `from_slot..` (each with the ballot that chose it), contiguous.
    CatchUpResp {
        decided: Vec<(u64, Ballot, V)>,
    },
    /// The sender's state after applying every slot up to `slot` (machine and sessions).
    Snapshot {
        slot: u64,
        data: Vec<u8>,
    },
}

impl<V> concord_core::Message for Message<V>
where
    V: Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Nack { .. } => "nack",
            Message::Decide { .. } => "decide",
            Message::Heartbeat { .. } => "heartbeat",
            Message::CatchUp { .. } => "catch-up",
            Message::CatchUpResp { .. } => "catch-up-resp",
            Message::Snapshot { .. } => "snapshot",
        }
    }
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PaxosRequest<C, Q> {
    /// Replicate a command; with a session it is applied once however often it is retried.
    Propose { session: Option<Session>, command: C },
    /// A read, ordered through the log.
    Read { query: Q },
}

/// The answer to a client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PaxosResponse<O> {
    /// Chosen and applied (or, for a read, answered at its slot): the state machine's output.
    Output(O),
    /// Not the leader; the request certainly did not take effect here.
    NotLeader { hint: Option<NodeId> },
    /// Refused before being proposed (back-pressure).
    Rejected { reason: String },
    /// Proposed, but the outcome is unknown (leadership lost, or the slot went to another value).
    Unknown { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::Message as _;

    #[test]
    fn messages_round_trip_and_name_their_kind() {
        let m: Message<LogValue<i64, ()>> = Message::Accept {
            ballot: Ballot::new(3, NodeId(2)),
            slot: 7,
            value: LogValue::Command { session: None, command: 5, origin: (NodeId(2), 9) },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message<LogValue<i64, ()>>>(&text).unwrap(), m);
        assert_eq!(m.kind(), "accept");
    }
}

//! # concord-paxos – Multi-Paxos, sans-IO, written to be read
//!
//! Paxos as Lamport explains it in *Paxos Made Simple* (2001, "PMS", sections §N) and as van
//! Renesse and Altinbuken build it into a replicated state machine in *Paxos Made Moderately
//! Complex* (ACM Computing Surveys 2015, "PMMC"), with Howard, Malkhi and Spiegelman's *Flexible
//! Paxos* (2016) quorums as an option. A [`PaxosNode`] is a plain value implementing
//! [`concord_core::Process`], like `concord-raft`'s node: messages, timers and client requests
//! go in; effects (send, persist, sync, reply, set timer, trace event) come out. It replicates
//! any [`concord_core::StateMachine`] – in the simulator, the same key-value store as Raft.
//!
//! ## Map: one role, one place
//!
//! | file | what | paper |
//! |---|---|---|
//! | [`ballot`] | ballot numbers `(round, leader)` | PMS §2.2, PMMC §3 |
//! | [`single`] | **single-decree Paxos**: acceptor, proposer, learner, the P2c rule, quorums | PMS §2 |
//! | `acceptor.rs` | the **acceptor** for all slots: one promise, accepted values per slot | PMS §2.2, PMMC "Acceptors" |
//! | `leader.rs` | the **leader** (distinguished proposer): phase 1 once (scout), phase 2 per slot (commanders), adoption, no-op gaps, heartbeats, preemption and back-off | PMS §2.4, §3; PMMC "Leaders", §4 liveness |
//! | `replica.rs` | the **replica / learner**: client requests, learning, applying in slot order, sessions, catch-up, snapshots | PMS §2.3, §3; PMMC "Replicas", §4 garbage collection |
//! | `node.rs` | [`PaxosNode`]: state of every role, boot, the persist-then-send rule, dispatch | – |
//! | [`message`] | every message, client requests and responses | PMMC's message names |
//! | [`storage`] | durable layout, torn-write-safe records, recovery | PMS §2.2 "stable storage" |
//! | [`config`] | timing, quorums (`q1`, `q2`), back-off switch, deliberate bugs ([`Mutations`]) | Flexible Paxos |
//! | [`invariants`] | one value chosen per slot, P2b, P1a – checked over a cluster | PMS §2.1 |
//!
//! ## Reading order for a newcomer
//! 1. [`single`]: the whole of single-decree Paxos, in a hundred lines, with tests named after
//!    PMS's clauses.
//! 2. `acceptor.rs`: the same acceptor with the promise shared by every slot.
//! 3. `leader.rs`: how one phase 1 serves all future slots, and what a new leader must adopt.
//! 4. `replica.rs`: how chosen slots become a state machine, and how a lagging node catches up.
//!
//! ## How it differs from Raft (same crate layout, different core)
//! Raft elects a leader whose *log* is up to date, and the log flows only from leader to
//! followers. Here any node may lead; the new leader instead *learns* from a phase-1 quorum what
//! may have been chosen (the highest-ballot accepted value per slot) and re-proposes it, filling
//! slots nobody reported with no-ops. Slots are chosen independently and may be chosen out of
//! order; replicas apply them in order.
//!
//! ## Deliberate bugs
//! [`Mutations`] holds three flags (`accept_without_promise_quorum`, `ignore_highest_accepted`,
//! `promise_before_sync`), each changing one spot marked `MUTATION(<flag>)` and emitting a
//! `mutation-fired` event. They exist only with the `mutations` cargo feature.
//! `concord-sim/tests/paxos.rs` shows each caught by a seed sweep.
//!
//! ## Guarantees and their assumptions
//! * Safety holds under any message loss, duplication, reordering, delay, crash and restart,
//!   provided synced writes survive crashes and `q1 + q2 > n`. Torn unsynced writes are detected
//!   by CRC-32 and skipped.
//! * Liveness needs a phase-1 and a phase-2 quorum up and connected, timing within the leader
//!   timeout, and `backoff = true` (without it duelling proposers can preempt each other forever).
//!
//! ## Not implemented
//! Membership changes (PMMC's reconfiguration via the log), leases and local reads, batching
//! several slots per message, chunked snapshot transfer (a snapshot is one message), and expiry
//! of client sessions.

pub mod ballot;
pub mod config;
pub mod invariants;
pub mod message;
pub mod single;
pub mod storage;

mod acceptor;
mod leader;
mod node;
mod replica;

pub use ballot::Ballot;
pub use config::{ConfigError, Mutations, PaxosConfig, UnknownMutation};
pub use invariants::{InvariantViolation, SafetyMonitor};
pub use message::{LogValue, Message, PValue, PaxosRequest, PaxosResponse};
pub use node::{AcceptRecord, Journal, LearnRecord, PaxosNode, Timer, Value};

//! # concord-raft – Raft, sans-IO, written to be read
//!
//! An implementation of Raft as described in Ongaro and Ousterhout, *In Search of an Understandable
//! Consensus Algorithm* (USENIX ATC 2014, "the paper", sections §N) and Ongaro's dissertation
//! *Consensus: Bridging Theory and Practice* (2014, "the dissertation"). A [`RaftNode`] is a plain
//! value implementing [`concord_core::Process`]: messages, timers and client requests go in, effects
//! (send, persist, sync, reply, set timer) come out. The same code runs in the deterministic
//! simulator and in the real server.
//!
//! ## Map
//!
//! | file | what | paper |
//! |---|---|---|
//! | [`config`] | timeouts, limits, features, deliberate bugs ([`Mutations`]) | §5.6, §9 |
//! | [`message`] | every message; client requests and responses | Figure 2 |
//! | `node.rs` | [`RaftNode`]: state, boot, the term rules, dispatch per role, applying entries | Figure 2 |
//! | `election.rs` | timeouts, pre-vote, votes, becoming leader, leadership transfer | §5.2, §5.4.1, diss. §3.10, §9.6 |
//! | `replication.rs` | append, back-off, commit rule, flow control, heartbeats, check-quorum | §5.3, §5.4.2, diss. §6.2 |
//! | [`log`] | the in-memory log and its snapshot boundary | §5.3, §7 |
//! | [`storage`] | durable key layout, checksums, recovery | §5.6, Figure 2 |
//! | `snapshot.rs` | snapshots, compaction, chunked InstallSnapshot | §7, Figure 13 |
//! | [`membership`] | single-server changes, learners, removing the leader | diss. §4 |
//! | `read.rs` | ReadIndex (batched), follower reads, leader lease, stale reads | diss. §6.4 |
//! | [`session`] | client sessions: exactly-once commands | diss. §6.3 |
//! | [`invariants`] | Figure 3's safety properties, checked over a cluster | Figure 3 |
//!
//! ## Reading order for a newcomer
//! 1. `node.rs` – [`RaftNode::boot`] and `step`: every message first meets the term rules (§5.1),
//!    then the step function of the node's role (follower, candidate/pre-candidate, leader), as in
//!    etcd-raft. There are no scattered "if leader" checks: role-specific state lives inside the
//!    role (`Role::Leader(LeaderState)`), so a follower cannot even reach a leader's progress map.
//! 2. `election.rs`, then `replication.rs`: the two halves of the paper's core.
//! 3. `storage.rs`: what must be on disk before a node speaks. The rule is enforced in one place:
//!    every message and reply goes through `RaftNode::send`/`reply`, which sync pending writes first.
//! 4. The rest as needed.
//!
//! ## Where the tests are
//! This crate holds the protocol and its unit tests only; nothing test-only ships in a server
//! build. The fine-grained deterministic cluster and the message-level tests named after the
//! paper are in the test-only crate `concord-raft-harness` (as raft-rs keeps `harness/`); the
//! scenario-level course tests and the seed sweeps run in the simulator (`concord-sim/tests/`).
//!
//! ## Deliberate bugs
//! [`Mutations`] holds six flags, each changing one spot marked `MUTATION(<flag>)` in the code and
//! emitting a `mutation-fired` event whenever it changes behaviour. They exist only with the
//! `mutations` cargo feature, which the simulator and the harness enable and a production build
//! does not. `concord-sim/tests/raft_mutations.rs` shows each being caught by a seed sweep, and the
//! harness's `tests/paper.rs` catches Figure 8's deterministically.
//!
//! ## Guarantees and their assumptions
//! * Safety (Figure 3) holds under any message loss, duplication, reordering, delay, crash and
//!   restart, provided synced writes survive crashes. Torn unsynced writes are detected by CRC-32.
//! * Lease reads additionally assume clocks drift less than `clock_drift_bound` (see `read.rs`).
//! * Liveness needs a majority of voters up and connected, and timing within `election_timeout_min`.

pub mod config;
mod election;
pub mod invariants;
pub mod log;
pub mod membership;
pub mod message;
mod node;
mod quiesce;
mod read;
mod replication;
pub mod session;
mod snapshot;
pub mod storage;

pub use config::{ConfigError, Mutations, RaftConfig, UnknownMutation};
pub use invariants::{CommitRecord, ElectionRecord, InvariantViolation, SafetyMonitor};
pub use log::{Entry, Payload};
pub use membership::{Membership, MembershipError};
pub use message::{
    AdminRequest, Message, QuiesceNotice, RaftRequest, RaftResponse, ReadConsistency, ReadIndexRequest,
    ReadIndexResponse, Session, SnapshotMeta,
};
pub use node::{RaftNode, Timer};
pub use storage::{ChecksumError, RecoveryError};

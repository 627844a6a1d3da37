//! # concord-raft-harness – the fine-grained Raft test harness
//!
//! Test-only (`publish = false`), as raft-rs keeps its `harness/`: no production crate depends on
//! it, so none of this ships in a server build. It holds
//!
//! | file | what |
//! |---|---|
//! | [`cluster`] | [`Cluster`]: a deterministic in-process cluster that a test drives message by message (drop, delay, partition, crash, torn writes, slow syncs, clock rates) |
//! | [`list`] | [`ListMachine`]: an append-only list, in memory or durable (checkpointed, as the redb store) |
//! | `tests/paper.rs` | message-level tests named after the paper's sections: vote synced before it is sent, pre-vote, check-quorum, chunked snapshots, membership, transfer, ReadIndex, lease reads, exactly-once, torn-tail recovery, the scripted Figure 8 |
//! | `tests/durable.rs` | Raft over a durable state machine: the crash windows around a checkpoint, and random faults |
//!
//! Scenario-level behaviour (elections, agreement, persistence across crashes of all nodes, churn)
//! and the seed sweeps that catch each deliberate bug live in the simulator (`concord-sim/tests/`),
//! once. The disk model is the simulator's too (`concord_sim::disk`).
//!
//! The harness enables concord-raft's `mutations` feature: its tests switch deliberate bugs on.

pub mod cluster;
pub mod list;

pub use cluster::{disk_with_log, Cluster, Host, TraceEvent};
pub use concord_core::hash::SplitMix64;
pub use list::{ListDisk, ListMachine, ListOutput};

//! # concord-core – the vocabulary every other Concord crate speaks
//!
//! Concord runs one protocol code base in two worlds: a deterministic simulator and a real tokio
//! server. What makes that possible is the **sans-IO process interface** defined here:
//!
//! * a protocol node is a plain value implementing [`Process`];
//! * the driver calls it with *inputs* – a start-up, a message, a timer, a client request – and an
//!   [`Io`] context that carries the current (node-local) time and a source of randomness;
//! * the node answers only with *effects* pushed into that context – send a message, arm a timer,
//!   persist a write, sync the disk, reply to a client, note a protocol event for the trace.
//!
//! The node never touches a socket, a thread, a clock or a file. The driver carries the effects out,
//! **in order**: a [`Effect::Sync`] holds back every effect after it until the writes before it are
//! durable, so "persist, sync, then acknowledge" is simply the order in which a protocol pushes
//! effects (the same contract as etcd-raft's `Ready`).
//!
//! Modules:
//! * [`id`] – node, client and request identifiers;
//! * [`time`] – virtual/real instants in nanoseconds, and duration parsing (`"150ms"`);
//! * [`process`] – the [`Process`] trait, [`Io`] and [`Effect`];
//! * [`storage`] – durable writes ([`StorageOp`]) and the durable state a node boots from
//!   ([`Durable`]);
//! * [`state_machine`] – what a consensus protocol replicates ([`StateMachine`]);
//! * [`history`] – client operations as a Jepsen-style history (invoke → ok | fail | info), the
//!   input of every checker, and the [`Service`] adapter that lets a workload talk to a protocol.

pub mod hash;
pub mod history;
pub mod id;
pub mod process;
pub mod state_machine;
pub mod storage;
pub mod time;

pub use history::{Completion, Op, OpFn, Service, Value};
pub use id::{ClientId, NodeId, RequestId};
pub use process::{Effect, Io, Message, Process, ProtocolEvent};
pub use state_machine::{Access, KvStateMachine, StateMachine, StateMachineError};
pub use storage::{Durable, StorageOp};
pub use time::Time;

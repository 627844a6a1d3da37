//! Replicated state machines: what a consensus protocol replicates.
//!
//! Raft (in `concord-raft`) orders commands in a log; once an entry is committed every replica
//! applies it to its own copy of a [`StateMachine`]. Because `apply` is deterministic, replicas that
//! applied the same prefix of the log hold the same state (the Raft paper's State Machine Safety).
//!
//! The state machine knows nothing of Raft, and Raft knows nothing of keys and values: the key-value
//! store (`concord-kv`) implements this trait, Raft is generic over it.

use crate::history::{Completion, Op};
use crate::time::Time;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// Why a state machine could not restore, checkpoint, export or import its state.
///
/// `From<String>` and `From<&str>` make an implementation's own messages [`StateMachineError::Failed`],
/// so `?` works over helpers that still speak strings; the variants a caller may act on are
/// [`StateMachineError::NotDurable`] (asked for a durable machine's operation) and
/// [`StateMachineError::Corrupt`] (bytes that do not decode: the state is unchanged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateMachineError {
    /// A durable machine's operation asked of one that lives in memory.
    #[error("this state machine lives in memory: it has no checkpoints to export or import")]
    NotDurable,
    /// A snapshot or export that does not decode; the state is unchanged.
    #[error("{0}")]
    Corrupt(String),
    /// Anything else, typically the machine's disk failing (the node must stop).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for StateMachineError {
    fn from(message: String) -> Self {
        StateMachineError::Failed(message)
    }
}

impl From<&str> for StateMachineError {
    fn from(message: &str) -> Self {
        StateMachineError::Failed(message.to_string())
    }
}

/// A deterministic state machine fed by a replicated log.
pub trait StateMachine: 'static {
    /// A state-changing command, replicated through the log.
    type Command: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// A read-only query, answered from local state once the replica is known to be up to date.
    type Query: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;
    /// The answer to a command or a query.
    type Output: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;

    /// Apply the committed command at log position `index`. Must be deterministic: the same
    /// sequence of commands yields the same state and outputs on every replica.
    fn apply(&mut self, index: u64, command: &Self::Command) -> Self::Output;

    /// Answer a query from the current state (never changes state).
    fn query(&self, query: &Self::Query) -> Self::Output;

    /// Serialise the whole state (for snapshots and log compaction). A [durable](Self::is_durable)
    /// machine serialises the state of its last [checkpoint](Self::checkpoint) instead.
    fn snapshot(&self) -> Vec<u8>;

    /// Replace the whole state with a snapshot taken by [`StateMachine::snapshot`].
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError>;

    /// Whether the machine keeps its state on disk itself (in an embedded storage engine) rather
    /// than in memory. Raft then never serialises it to compact its log: at a snapshot point it
    /// [checkpoints](Self::checkpoint) the machine, and after a restart it resumes from the
    /// machine's last checkpoint instead of restoring a snapshot – so the state may be larger than
    /// memory. Default: in memory.
    ///
    /// A durable machine's applies between checkpoints are volatile: after a crash it reopens in
    /// exactly the state of its last checkpoint, and Raft replays its log from there.
    fn is_durable(&self) -> bool {
        false
    }

    /// Durable machines: make everything applied so far durable, atomically with `sidecar` (the
    /// consensus layer's own state at this point: for Raft, the snapshot's index, term,
    /// membership and session table). Until the next checkpoint, [`StateMachine::snapshot`]
    /// exports exactly this state. An error means the disk failed: the node must stop.
    fn checkpoint(&mut self, _sidecar: Vec<u8>) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable machines: the sidecar of the last checkpoint (`None`: never checkpointed).
    fn checkpoint_sidecar(&self) -> Option<Vec<u8>> {
        None
    }

    /// Durable machines: prepare the *export* of the last checkpoint – its state and sidecar, what
    /// a lagging follower is sent – and say how many bytes it has; `None` while it is still being
    /// prepared (ask again later). A new checkpoint starts a new export. The export is read in
    /// pieces, so the state never has to fit in memory.
    fn export_len(&mut self) -> Result<Option<u64>, StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable machines: at most `max` bytes of the export, from `offset`.
    fn export_read(&mut self, _offset: u64, _max: usize) -> Result<Vec<u8>, StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable machines: the next piece of an export received from another replica (`offset` 0
    /// starts a new one; pieces arrive in order).
    fn import_chunk(&mut self, _offset: u64, _bytes: &[u8]) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable machines: replace the state with the received export and make it the checkpoint,
    /// with the export's sidecar, durably. On error (a corrupt export) the state is unchanged.
    fn import_finish(&mut self) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Commands the leader should propose now, given its clock – e.g. deleting keys whose TTL has
    /// passed, so that expiry goes through the log and every replica agrees on it.
    fn housekeeping(&self, _now: Time) -> Vec<Self::Command> {
        Vec::new()
    }
}

/// Whether a workload operation changes state (goes through the log) or only reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access<C, Q> {
    Write(C),
    Read(Q),
}

/// A state machine that serves the simulator's key-value workloads (read/write/CAS histories).
/// A consensus protocol generic over `S: KvStateMachine` can then implement [`crate::Service`].
pub trait KvStateMachine: StateMachine {
    /// The command or query that performs `op`. `now` is the proposer's clock, for commands that
    /// need a timestamp (TTL).
    fn access(op: &Op, now: Time) -> Access<Self::Command, Self::Query>;

    /// What an output means for `op`.
    fn completion(op: &Op, output: &Self::Output) -> Completion;

    /// Where `op` took effect in the machine's order of commands (see
    /// [`crate::Service::witness`]), if the output says.
    fn witness(_op: &Op, _output: &Self::Output) -> Option<u64> {
        None
    }
}

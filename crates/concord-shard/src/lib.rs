//! # concord-shard – the key space cut into shards, sans-IO
//!
//! Concord's strong mode is one Raft group until it is sharded. This crate holds what sharding
//! *decides*, with no sockets, clocks or threads – the simulator and the server drive it alike:
//!
//! * [`slot`] – Redis Cluster's 16 384 hash slots: `CRC16(key) mod 16384` with `{hash tags}`, so a
//!   cluster-aware Redis client computes the same slot as Concord;
//! * [`map`] – the shard map: slot → shard → replicas, an epoch, moves under way, and the only
//!   changes allowed, each validated (a refused change leaves the map untouched);
//! * [`machine`] – the map as a replicated state machine, for the metadata Raft group;
//! * [`kv`] – a shard's state machine: the key-value store, serving only the slots it holds;
//! * [`host`] – many Raft groups in one node: one process, one connection per node pair with
//!   batched messages, one disk with a prefix per group;
//! * [`mover`] – the tasks that carry a move through the source's, the target's and the map's logs;
//! * [`node`] – a sharded node: the metadata group, its shard groups, routing, forwarding, the mover;
//! * [`router`] – where a key's request goes: here, elsewhere (`-MOVED`), later (`-TRYAGAIN`);
//! * [`replicas`] – replica moves between nodes: learner → catch up → promote → remove, each step
//!   committed in the map first, the group's Raft membership following one change at a time;
//! * [`rebalance`] – the next step towards even slots, replicas and leaders.
//!
//! ## The move protocol
//! Moving a slot range from shard A to shard B must lose no acknowledged write and keep every key
//! linearizable while clients write. Each step is committed in a Raft log before the next begins,
//! so a crash anywhere resumes from the last committed step:
//!
//! 1. **Start** (metadata group): `StartMove{range, to: B}` – the map records the move; A still
//!    owns and serves the range.
//! 2. **Fence** (A's group): A commits a fence entry for the range at its log index `f`. Every
//!    write to the range that A applies after `f` is refused (`-TRYAGAIN`); writes before `f` are
//!    in A's state at `f`. The metadata group then commits `Fenced{f}`.
//! 3. **Copy** (B's group): B reads A's state of the range as of `f` (a snapshot of the range at
//!    the fence, from any replica of A that applied `f`) and commits it into its own log at index
//!    `c`; B does not serve the range yet. The metadata group commits `Copied{c}`.
//! 4. **Flip** (metadata group): `FinishMove` – B owns the range at the new epoch. Clients that ask
//!    A are answered `-MOVED <slot> B`. B's group then commits `Activate` and serves the range
//!    from its state at `c` on (until then B answers `-TRYAGAIN`).
//! 5. **Clean up** (A's group): A commits `Release`, deletes the range's keys and never serves them
//!    again.
//!
//! (Moving a *replica* between nodes is a different protocol, in [`replicas`]: the data does not
//! change shards, only the set of nodes replicating a shard changes, through the group's own Raft.)
//!
//! The group side of each step – which slots a group serves, checked when a command is applied –
//! is [`kv::ShardKv`]; its module docs give the slot states each step moves between.
//!
//! Why this is safe: between the fence and the flip nobody accepts a write to the range (A refuses
//! after `f`, B before the flip), so the state B copied at `f` is the range's last state; after the
//! flip only B accepts writes. The two classic bugs are each one missing condition, and the map
//! refuses them: flipping before B holds the data (`FinishMove` before `Copied`), and A serving a
//! write after the hand-off (a write applied after `f`). The price is a short window of
//! `-TRYAGAIN` for the moving range only – Redis Cluster's `-ASK` keeps new keys writable during a
//! migration, at the cost of a migration that can lose writes on failover.

pub mod host;
pub mod kv;
pub mod machine;
pub mod map;
pub mod mover;
pub mod node;
pub mod rebalance;
pub mod replicas;
pub mod router;
pub mod slot;

pub use host::{Batch, GroupId, GroupRequest, GroupResponse, Host, Quiescent};
pub use kv::{
    ShardBug, ShardCommand, ShardError, ShardKv, ShardQuery, ShardResponse, ShardResult, SlotState, SlotTable,
};
pub use machine::{MapMachine, MapOutput, MapQuery};
pub use map::{
    Applied, Change, Ending, MapError, MapViolation, Move, Outcome, Phase, Proposal, Replacement, Shard,
    ShardId, ShardMap, Stage,
};
pub use mover::{MoverBug, Task};
pub use node::{ShardedConfig, ShardedNode};
pub use rebalance::next_step;
pub use replicas::{GroupStatus, ReplicaBug, ReplicaTask};
pub use router::{route, Route};
pub use slot::{crc16, hash_tag, key_slot, Slot, SlotRange, SLOTS};

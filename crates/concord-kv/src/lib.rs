//! # concord-kv – the replicated key-value state machine
//!
//! Raft (`concord-raft`) orders client commands in a log; every replica applies the committed
//! commands, in log order, to its own [`KvStore`]. Because applying is a pure function of the state
//! and the command, replicas that applied the same prefix of the log hold byte-identical state. This
//! crate is that function: it knows nothing of Raft, networks or disks.
//!
//! ```
//! use concord_core::{StateMachine, Time};
//! use concord_kv::{Command, KvStore, Query, Response};
//!
//! let mut store = KvStore::default();
//! let t = Time(0);
//! assert_eq!(store.apply(1, &Command::put(t, "x", "1")), Ok(Response::Put { revision: 1 }));
//! assert_eq!(
//!     store.apply(2, &Command::increment(t, "x", 41)),
//!     Ok(Response::Increment { value: 42, revision: 2 })
//! );
//! let Ok(Response::Get(Some(kv))) = store.query(&Query::get("x")) else { panic!() };
//! assert_eq!(kv.value, b"42");
//! assert_eq!((kv.version, kv.create_revision, kv.mod_revision), (2, 1, 2));
//! ```
//!
//! ## Operations
//! Commands ([`Write`]): put (optionally with a TTL), delete, delete-range, compare-and-set,
//! increment, transaction, and expire (proposed by housekeeping). Queries ([`Query`]): get and range.
//! Keys and values are bytes; keys are ordered bytewise, so a range scan returns keys in order.
//!
//! ## Revisions: a logical clock for the whole store
//! The store has one counter, the **revision** (as in etcd). Every command that *writes* moves it up
//! by exactly one: a put (always), a successful CAS, an increment, a delete or delete-range or expiry
//! that finds at least one key, a transaction whose executed branch does one of these (even if its
//! writes cancel out, like putting and then deleting a new key). A command that writes nothing (a
//! failed CAS, deleting an absent key, a read-only transaction, any refused command) leaves it
//! alone. All keys written by one command – a transaction, a delete-range – share that command's
//! revision. Every key carries:
//! * `create_revision` – the revision at which the key was created (since it was last absent);
//! * `mod_revision` – the revision of its last write;
//! * `version` – how many times it was written since creation (1 after the creating put).
//!
//! Revisions give clients optimistic concurrency that values alone cannot: "write only if nobody
//! wrote since I read at mod revision 17" ([`CompareTarget::ModRevision`]) is immune to ABA – a key
//! changed from 1 to 2 and back to 1 has the same value but a new mod revision. An absent key has
//! version and revisions 0, so `Version(0)` compares mean "does not exist".
//!
//! ## Transactions
//! A [`Txn`] is etcd's `If(compares).Then(success).Else(failure)`: all compares are evaluated on the
//! state before the transaction; if all hold, the `success` ops run, else the `failure` ops, in
//! order, each seeing the effects of the previous ones. Because every op of both branches is
//! validated before anything runs, and no txn op can fail on state, a transaction is atomic: the
//! branch runs entirely, and the other branch not at all.
//!
//! ## TTL, and why expiry goes through the log
//! A put may carry `ttl_ms`. The state machine has no clock – if each replica deleted keys when *its
//! own* clock passed the deadline, replicas with skewed clocks would disagree about whether a key
//! exists, and a CAS could succeed on one replica and fail on another: their states would diverge.
//! So time enters only through the log:
//! 1. every [`Command`] carries `now`, the proposer's clock; a TTL put records the absolute deadline
//!    `now + ttl_ms` in the key (`expires_at`) – the same deadline on every replica;
//! 2. the leader periodically calls [`StateMachine::housekeeping`](concord_core::StateMachine) with
//!    its clock, which returns an [`Write::Expire`] command naming the overdue keys (earliest first,
//!    at most `max_expire_keys`) with the mod revision each had;
//! 3. that command is committed and applied like any other write: each replica removes a named key
//!    only if it still has that mod revision (it was not rewritten meanwhile) and its deadline is not
//!    after the command's `now`. Proposing the same expiry twice is harmless: the second finds
//!    nothing to do.
//!
//! ### Reading a key whose deadline passed but whose expiry is not yet applied
//! **Such a key is still there**: gets, ranges, compares, CAS and increment all see it, until the
//! `Expire` command is applied. Every answer depends only on the applied state, so all replicas give
//! the same answer at the same log position, reads are linearizable like any other, and a CAS can
//! never see a key that a read a moment before said was gone. The cost is **lateness**: a key
//! outlives its deadline by up to the housekeeping interval plus one commit round trip. Deadlines
//! are also only as good as the clocks that stamped them: the proposer of the put set the deadline,
//! the leader of the day decides it passed, so clock skew between the two (e.g. after a leader
//! change) makes a key live longer or shorter by that skew – but every replica still agrees on
//! when it went. The alternative – hiding overdue keys at read time by comparing the deadline
//! to the reader's clock – makes answers depend on which replica's clock you ask, so two reads could
//! see a key vanish and reappear; we choose agreement over punctuality. A client that needs a tight
//! bound can compare `expires_at` itself.
//!
//! ## Bounded everything
//! [`KvLimits`] bounds key and value sizes, transaction size, the total bytes of one command (a log
//! entry), range page size (in keys and bytes) and the expiry batch. [`validate`] checks a command
//! before it is proposed (fast, clear errors for the client), and `apply` checks again, returning
//! the error as the command's output (a command validated under an older configuration must not
//! crash or diverge a replica). Range scans are paged: a page holds at most `limit` keys and names
//! the `next_key` to continue from.
//!
//! ## Snapshots
//! [`StateMachine::snapshot`](concord_core::StateMachine::snapshot) encodes the revision and all
//! entries: a version byte, a postcard payload, a CRC-32. Equal states give equal bytes; `restore`
//! refuses corrupt, truncated or inconsistent bytes with an error and leaves the store unchanged.
//! See [`snapshot`].
//!
//! ## Not here
//! Exactly-once client sessions (deduplicating retried commands) belong to the Raft layer, which
//! sees client ids and sequence numbers; this crate applies whatever the log says.
//!
//! ## Modules
//! * [`command`] – commands and queries (what clients ask);
//! * [`response`] – responses and key-value metadata (what they are told);
//! * [`error`] – [`KvError`];
//! * [`limits`] – [`KvLimits`] and [`validate`];
//! * [`store`] – [`KvStore`] and the [`StateMachine`](concord_core::StateMachine) implementation;
//! * [`engine`] – [`Engine`], where a store keeps its bytes, and [`MemEngine`], the in-memory one;
//! * [`snapshot`] – the snapshot format;
//! * [`workload`] – the [`KvStateMachine`](concord_core::KvStateMachine) mapping from workload ops.

pub mod changes;
pub mod command;
pub mod cursor;
pub mod engine;
pub mod error;
pub mod glob;
pub mod limits;
pub mod redis;
pub mod response;
pub mod snapshot;
pub mod store;
pub mod workload;

pub use changes::{ChangeLog, Changes, DEFAULT_CHANGE_LIMIT};
pub use command::{
    Cas, Command, Compare, CompareOp, CompareTarget, ExpireKey, KeyRange, Put, Query, RangeRequest, Txn,
    TxnOp, Write,
};
pub use engine::{Engine, EngineRead, MemEngine};
pub use error::KvError;
pub use limits::{command_bytes, validate, validate_query, KvLimits, ZeroLimit};
pub use redis::{RedisCall, RedisExec, Reply};
pub use response::{KeyValue, KvResult, PageBudget, RangePage, Response};
pub use snapshot::SnapshotError;
pub use store::{key_value, Entry, KvStore, StoreInvariantViolation};
pub use workload::REGISTER_KEY;

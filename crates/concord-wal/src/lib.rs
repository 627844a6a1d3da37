//! # concord-wal – the durable disk of a real Concord node
//!
//! Protocols never touch files. They emit [`concord_core::StorageOp`] effects (put, delete, delete
//! a key range) followed by a sync effect, and they boot from a [`concord_core::Durable`]: the
//! ordered map of everything that was synced. The simulator models that disk in memory; this crate
//! is the real one, built the way databases build theirs: a **write-ahead log** of checksummed
//! records, cut into **segments**, compacted by **checkpoints**.
//!
//! ```text
//!  append(ops) ─> encode one record ─> buffer ─┐          sync() ─> write + fdatasync
//!                 apply to the mirror          └─> wal/00000000000000000008.log  (current segment)
//!                                                  wal/00000000000000000007.log  (closed, synced)
//!  every `checkpoint_bytes`: mirror ─> checkpoint-00000000000000000008.bin, delete segments ..=8
//!  open(): newest valid checkpoint + replay of the segments after it = the Durable to boot from
//! ```
//!
//! ## Using it
//! ```no_run
//! # use concord_core::StorageOp;
//! # use concord_wal::{Wal, WalOptions};
//! let (mut wal, durable, recovery) = Wal::open("data/node-1".as_ref(), WalOptions::default())?;
//! println!("{recovery}"); // what was found: checkpoint, segments, torn tail
//! // ... boot the protocol from `durable`; then for every batch of Persist effects:
//! wal.append(&[StorageOp::Put { key: "raft/log/00000000000000000001".into(), value: b"..".to_vec() }])?;
//! wal.sync()?; // only now may effects after the Sync be carried out
//! # Ok::<(), concord_wal::WalError>(())
//! ```
//! Group commit: append the batches of many inputs, then sync once; every one of them is durable
//! when `sync` returns.
//!
//! ## Guarantees
//! * Whatever was appended before a successful [`Wal::sync`] is recovered by the next
//!   [`Wal::open`], after a process crash or (with [`SyncMode::Fsync`]) a power loss.
//! * Each [`Wal::append`] is one record: recovered whole or not at all.
//! * Recovery never serves partial state silently. A torn tail (the unsynced end of the last
//!   segment) is cut and reported; anything else that fails a checksum is an error naming the file
//!   and byte offset (see [`recovery`] for how the two are told apart).
//! * One process at a time: the data directory is locked (`LOCK`, via `flock`) while open.
//! * After a failed write or fsync the `Wal` refuses further use ([`WalError::Poisoned`]): the
//!   kernel may have dropped the unsynced pages, so only a restart knows what is on disk.
//!
//! ## Files
//! [`layout`] names the files; [`format`] documents every byte of them.
//!
//! ## Costs (back of the envelope)
//! A sync is one `write` plus one `fdatasync` (≈ 0.1–10 ms, the disk's flush latency), whatever the
//! batch size – hence group commit. A checkpoint writes the whole state once per `checkpoint_bytes`
//! of log; Raft keeps the state small by compacting its log into snapshots, so that is cheap. The
//! WAL keeps a mirror of the state in memory (the same size as the `Durable` the node booted from).

pub mod error;
pub mod format;
pub mod layout;
pub mod recovery;
mod wal;

pub use error::WalError;
pub use recovery::{DamagedCheckpoint, RecoveredCheckpoint, Recovery, TornTail};
pub use wal::{CheckpointStats, SyncMode, Wal, WalOptions, WalStats};

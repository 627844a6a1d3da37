//! # concord-fuzz – fuzz targets for everything that reads untrusted bytes
//!
//! Each target feeds generated and mutated inputs to one public entry point and checks the
//! properties that matter there – not only "does not panic":
//!
//! | target      | entry point                                                         | beyond "no panic, no hang, no huge allocation" |
//! |-------------|---------------------------------------------------------------------|------------------------------------------------|
//! | `resp`      | `concord_resp::RequestDecoder`, `decode_frame`, `command::parse`    | same requests however the bytes are split; decode → encode → decode is the same value; work linear in the bytes; tighter limits only refuse more |
//! | `http`      | the node's axum `Router`, in-process (`tower::ServiceExt::oneshot`) | every error is `{"error": …}` JSON; no 500 but "outcome unknown"; an acknowledged PUT reads back |
//! | `peer`      | `wire::read_frame` (data frames after the handshake)                | decode → encode → decode is a fixed point |
//! | `handshake` | `transport::accept_handshake` and `transport::dial`                 | garbage never authenticates, on either side |
//! | `wal`       | `concord_wal::Wal::open` on damaged directories; `format::read_record`, `decode_checkpoint` | recovery returns a state that was written (a prefix of the batches), or an error; an intact log loses nothing synced; the recovered log takes new writes |
//! | `snapshot`  | `KvStore::restore` (Raft snapshots), `RedbEngine` import, `backup::decode` (restore) | a refused snapshot changes nothing; an accepted one re-encodes to itself |
//! | `scenario`  | `concord_sim::explore::ScenarioFile::parse`                         | a scenario that validates also runs (its first virtual second) |
//! | `history`   | `concord_check::formats::parse` (JSON Lines, Jepsen logs, EDN)      | errors name real lines; a parsed history survives JSON Lines unchanged; the checker answers |
//!
//! ## Layout
//! * [`driver`] – the engine: seeded mutations, outcome-label feedback, the watchdog, minimisation;
//! * [`alloc`] – the allocator that catches oversized allocations;
//! * [`input`] – [`input::Cursor`], structure read from bytes;
//! * [`targets`] – one module per target, all listed in [`targets::ALL`];
//! * `src/main.rs` – the command line (`cargo run -p concord-fuzz -- --help`);
//! * `regressions/<target>/*.bin` – every input that ever failed, replayed by `cargo test`;
//! * `tests/` – a short run of each target, and the regression replay.
//!
//! `docs/security.md` (section *Fuzzing*) says how to run it and how to add a target.

pub mod alloc;
pub mod driver;
pub mod input;
pub mod targets;

pub use driver::{Budget, Options, Report, Target};

/// Every binary and test that links this crate checks its allocations (see [`alloc`]).
#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

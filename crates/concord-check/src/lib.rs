//! # concord-check – the judges
//!
//! Concord proves its consistency claims by checking *histories*: what every client asked and what
//! it was told (see `concord_core::history`). The checkers here are used by every simulation sweep,
//! by the real-cluster tests, and on histories recorded by other systems (Jepsen/Knossos formats).
//!
//! * [`linearizability`] – is there one order of the operations, consistent with real time, that a
//!   sequential [`Model`] explains? The Wing & Gong / Lowe search with memoisation, per-key
//!   partitions searched in parallel, and unknown outcomes linearized just in time. Answers yes, no (with an [`Explanation`], also as an HTML page: [`html::render`]),
//!   or unknown – never a wrong verdict.
//! * [`convergence`] – after faults heal and the system quiesces, do all replicas hold the same value
//!   for every key, and was that value ever written?
//! * [`staleness`] – for eventually consistent systems: how many versions behind each read was
//!   (k-staleness), how long after a write it became visible (t-visibility), and the PBS curve of the
//!   probability of a consistent read against time since the write.
//! * [`siblings`] – for stores that keep concurrent writes as siblings: no acknowledged write lost
//!   (present, or superseded through a causal context), every node's sibling sets converged, and
//!   PBS t-visibility measured on a real cluster's reads.
//! * [`guarantees`] – the session guarantees of Terry et al.: read-your-writes, monotonic reads,
//!   monotonic writes, writes-follow-reads.
//! * [`elle`] – transactional isolation (Elle, VLDB 2020): G0, G1a/b/c, G-single and G2 from list-append and rw-register histories.
//! * [`jepsen`] – Jepsen's checkers that are not linearizability: `set`, `set-full`, `bank`,
//!   `long-fork`.
//! * [`formats`] – reading histories: Concord's JSON Lines, Jepsen/Knossos text logs, EDN op maps
//!   (one per line, or in a top-level vector or list), JSON arrays, Porcupine's operations; and
//!   writing them as EDN ([`formats::edn::write_history`]).
//! * [`ops`] – the common first step: pairing each invocation with its completion.
//! * [`gen`] – deterministic generators of linearizable histories, for tests and benchmarks.
//! * [`cli`] – the `concord check` command's logic (the clap wrapper lives in the `concord` crate).
//!
//! ```
//! use concord_check::{linearizability, Model, Verdict};
//! use concord_core::history::{EventType, History, Op};
//! use concord_core::time::Time;
//! use std::time::Duration;
//!
//! // A write of 1 completes, then a read returns the initial nil: a stale read.
//! let mut h = History::default();
//! h.push(0, EventType::Invoke, Op::write("x", 1), Time(0));
//! h.push(0, EventType::Ok, Op::write("x", 1), Time(1));
//! h.push(1, EventType::Invoke, Op::read("x"), Time(2));
//! h.push(1, EventType::Ok, Op::read("x"), Time(3));
//! let verdict = linearizability::check(&h, Model::Kv, Duration::from_secs(1));
//! assert!(matches!(verdict, Verdict::NotLinearizable(_)));
//! ```

pub mod cli;
pub mod convergence;
pub mod elle;
pub mod formats;
pub mod gen;
pub mod guarantees;
pub mod html;
pub mod jepsen;
pub mod linearizability;
pub mod model;
pub mod ops;
pub mod siblings;
pub mod staleness;
pub mod witness;
pub mod zones;

pub use formats::FormatError;
pub use linearizability::{Explanation, Verdict};
pub use model::{Model, UnknownModel};

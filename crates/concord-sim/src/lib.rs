//! # concord-sim – the deterministic simulator
//!
//! The simulator runs Concord's real protocol code (anything implementing
//! [`concord_core::Process`]) on a simulated network, disk and clock, under virtual time, with every
//! random choice drawn from one seed. Same scenario + same seed ⇒ byte-identical trace; a failing
//! seed is a bug you can replay as often as you like.
//!
//! Map of the crate:
//! * [`scenario`] – the TOML scenario format and its validation;
//! * [`explore`] – scenarios whose seeds draw their configurations from ranges (`[explore]`);
//! * [`sim`] – the event loop: [`Simulation`], [`RunOptions`], [`RunReport`];
//! * [`network`], [`latency`], [`topology`], [`disk`], [`clock`] – the models of the world (zones
//!   and regions in `topology`);
//! * [`workload`] – simulated clients recording Jepsen-style histories;
//! * [`protocol`] – what a protocol must offer the simulator ([`SimProtocol`], [`Invariant`]);
//! * [`protocols`] – the adapters for Concord's protocols, and running a scenario by name;
//! * [`sweep`] – many seeds on all cores;
//! * [`steering`] – runs steered by hand (`concord sim --interactive`), saved as a log that replays;
//! * [`trace`], [`summary`] – what a run leaves behind.

pub mod checks;
pub mod clock;
pub mod disk;
pub mod explore;
pub mod latency;
pub mod network;
pub mod protocol;
pub mod protocols;
pub mod scenario;
pub mod sim;
pub mod steering;
pub mod summary;
pub mod sweep;
pub mod topology;
pub mod trace;
pub mod workload;

pub use explore::{Drawn, ScenarioFile};
pub use protocol::{Invariant, InvariantViolation, ReplicaState, SimProtocol};
pub use scenario::{Scenario, ScenarioError};
pub use sim::{RunOptions, RunReport, Simulation};
pub use summary::Summary;

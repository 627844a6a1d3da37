//! # concord-lab – experiments run in the simulator
//!
//! Each lab is a library function that drives Concord's deterministic simulator, gathers numbers,
//! and writes a report (plots as SVG and PNG, an HTML page). The `concord lab …` command is a thin
//! shell over these functions, so tests can run a small version of every experiment.
//!
//! | module | lab | reproduces |
//! |---|---|---|
//! | [`raft_elections`] | `concord lab raft-elections` | the Raft paper's election-timeout experiment (Figure 16) |
//! | [`plot`] | – | cumulative-distribution plots shared by the labs |

pub mod plot;
pub mod raft_elections;

pub use raft_elections::{run_raft_elections, ElectionOptions, ElectionReport, RangeResult};

//! # concord-lab – experiments run in the simulator
//!
//! Each lab is a library function that drives Concord's deterministic simulator, gathers numbers,
//! and writes a report (plots as SVG and PNG, an HTML page). The `concord lab …` command is a thin
//! shell over these functions, so tests can run a small version of every experiment.
//!
//! | module | lab | reproduces |
//! |---|---|---|
//! | [`raft_elections`] | `concord lab raft-elections` | the Raft paper's election-timeout experiment (Figure 16) |
//! | [`eventual`] | `concord lab eventual` | eventual consistency: propagation, PBS staleness curves (Bailis et al., VLDB 2012), anomalies, Raft for comparison |
//! | [`cache`] | `concord lab cache` | the cache tier: hit ratio per eviction policy on Zipf traces (Che's approximation as reference) |
//! | [`consensus`] | `concord lab consensus` | Raft and Multi-Paxos side by side: cost per command, failover, a flapping link, duelling proposers, log holes |
//! | [`design`] | `concord design SCENARIO.toml` | Lab 2: requirements → a design (shards, replicas, placement, quorums, cache) explained by arithmetic, validated in the simulator |
//! | [`social`] | `concord lab social` | Lab 1: a social platform (posts, follows, hybrid timelines, CRDT likes, a cache tier) at 100 000 users, its challenges and benefits measured |
//! | [`plot`] | – | CDF, line and timeline plots shared by the labs |

pub mod cache;
pub mod consensus;
pub mod design;
pub mod eventual;
pub mod plot;
pub mod raft_elections;
pub mod social;

pub use cache::{run_cache, CacheLabOptions, CacheLabReport};
pub use consensus::{run_consensus, ConsensusOptions, ConsensusReport};
pub use eventual::{run_eventual, EventualOptions, EventualReport};
pub use raft_elections::{run_raft_elections, ElectionOptions, ElectionReport, RangeResult};
pub use social::{run_social, SocialOptions, SocialReport};

/// Text for an HTML page: `&`, `<` and `>` escaped (the labs' reports).
pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

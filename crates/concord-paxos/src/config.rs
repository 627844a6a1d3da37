//! Configuration of one Paxos node: timing, quorums, limits, deliberate bugs.
//!
//! Durations are strings in scenario files (`"150ms"`); limits name their unit.

use concord_core::time::serde_duration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Configuration shared by every node of a cluster. Missing fields take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaxosConfig {
    /// How often the leader sends heartbeats (and retransmits unanswered accepts).
    #[serde(with = "serde_duration")]
    pub heartbeat_interval: Duration,
    /// Failure detection: a node that hears no leader for a random time in
    /// `[leader_timeout_min, leader_timeout_max]` starts phase 1 with a higher ballot.
    #[serde(with = "serde_duration")]
    pub leader_timeout_min: Duration,
    #[serde(with = "serde_duration")]
    pub leader_timeout_max: Duration,
    /// Randomised back-off for duelling proposers (PMMC §4 "liveness"). On: a proposer preempted
    /// by a higher ballot defers to it and waits a random leader timeout (its window widened
    /// exponentially with each consecutive failed attempt) before trying again. Off: it retries at once with a
    /// higher ballot, as PMMC's leader does – two such proposers can preempt each other forever.
    pub backoff: bool,
    /// Phase-1 quorum size (`None`: a majority of the nodes).
    pub q1: Option<usize>,
    /// Phase-2 quorum size (`None`: a majority of the nodes).
    pub q2: Option<usize>,
    /// Allow `q1 + q2 <= n`, which Flexible Paxos proves unsafe; only to show what breaks.
    pub unsafe_quorums: bool,
    /// Take a snapshot (and compact the decided log and the acceptor's accepted values) once this
    /// many slots were applied since the last one (0: never).
    pub snapshot_threshold_slots: u64,
    /// Decided slots sent in one catch-up answer.
    pub max_catchup_slots: usize,
    /// Slots a leader has proposed and not yet seen chosen; further client requests are refused.
    pub max_inflight_slots: u64,
    /// Deliberate bugs (only with the `mutations` cargo feature); read through
    /// [`PaxosConfig::mutations`].
    #[cfg(feature = "mutations")]
    pub mutations: Mutations,
}

impl Default for PaxosConfig {
    fn default() -> Self {
        PaxosConfig {
            heartbeat_interval: Duration::from_millis(50),
            leader_timeout_min: Duration::from_millis(150),
            leader_timeout_max: Duration::from_millis(300),
            backoff: true,
            q1: None,
            q2: None,
            unsafe_quorums: false,
            snapshot_threshold_slots: 1_000,
            max_catchup_slots: 64,
            max_inflight_slots: 1_000,
            #[cfg(feature = "mutations")]
            mutations: Mutations::default(),
        }
    }
}

impl PaxosConfig {
    /// Phase-1 and phase-2 quorum sizes for `n` nodes.
    pub fn quorums(&self, n: usize) -> (usize, usize) {
        let majority = n / 2 + 1;
        (self.q1.unwrap_or(majority), self.q2.unwrap_or(majority))
    }

    /// The deliberate bugs switched on ([`Mutations::NONE`] without the `mutations` feature).
    #[inline(always)]
    pub fn mutations(&self) -> &Mutations {
        #[cfg(feature = "mutations")]
        {
            &self.mutations
        }
        #[cfg(not(feature = "mutations"))]
        {
            &Mutations::NONE
        }
    }

    /// Check the settings for a cluster of `n` nodes.
    pub fn validate(&self, n: usize) -> Result<(), ConfigError> {
        if self.leader_timeout_min.is_zero() || self.leader_timeout_max < self.leader_timeout_min {
            return Err(ConfigError::LeaderTimeouts);
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.leader_timeout_min {
            return Err(ConfigError::HeartbeatInterval);
        }
        let (q1, q2) = self.quorums(n);
        if q1 == 0 || q2 == 0 || q1 > n || q2 > n {
            return Err(ConfigError::QuorumSize { q1, q2, n });
        }
        if q1 + q2 <= n && !self.unsafe_quorums {
            return Err(ConfigError::QuorumsDoNotIntersect { q1, q2, n });
        }
        if self.max_catchup_slots == 0 || self.max_inflight_slots == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }
}

/// Why [`PaxosConfig::validate`] refused a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("need 0 < leader_timeout_min <= leader_timeout_max")]
    LeaderTimeouts,
    #[error("need 0 < heartbeat_interval < leader_timeout_min")]
    HeartbeatInterval,
    #[error("quorum sizes must be between 1 and the number of nodes (q1 = {q1}, q2 = {q2}, n = {n})")]
    QuorumSize { q1: usize, q2: usize, n: usize },
    #[error(
        "q1 + q2 must exceed n (q1 = {q1}, q2 = {q2}, n = {n}): a phase-1 quorum could miss a value \
         chosen by a phase-2 quorum (Flexible Paxos); set unsafe_quorums = true to run it anyway"
    )]
    QuorumsDoNotIntersect { q1: usize, q2: usize, n: usize },
    #[error("max_catchup_slots and max_inflight_slots must be > 0")]
    ZeroLimit,
}

/// [`Mutations::enable`] was given an unknown name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutation `{name}`; known: {:?}", Mutations::NAMES)]
pub struct UnknownMutation {
    pub name: String,
}

/// Deliberate bugs, each changing one spot marked `MUTATION(<flag>)` and emitting a
/// `mutation-fired` event when it changes behaviour. Like Raft's, they exist in the config only
/// with the `mutations` cargo feature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mutations {
    /// A proposer starts phase 2 as soon as *one* acceptor (itself) promised, not a phase-1 quorum.
    pub accept_without_promise_quorum: bool,
    /// A new leader ignores the accepted values its promises report and proposes no-ops there
    /// (breaking P2c).
    pub ignore_highest_accepted: bool,
    /// An acceptor sends its promise before the promise is durable.
    pub promise_before_sync: bool,
}

impl Mutations {
    pub const NONE: Mutations = Mutations {
        accept_without_promise_quorum: false,
        ignore_highest_accepted: false,
        promise_before_sync: false,
    };

    pub const NAMES: [&'static str; 3] =
        ["accept_without_promise_quorum", "ignore_highest_accepted", "promise_before_sync"];

    pub fn enable(&mut self, name: &str) -> Result<(), UnknownMutation> {
        match name {
            "accept_without_promise_quorum" => self.accept_without_promise_quorum = true,
            "ignore_highest_accepted" => self.ignore_highest_accepted = true,
            "promise_before_sync" => self.promise_before_sync = true,
            other => return Err(UnknownMutation { name: other.to_string() }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majorities_by_default_and_flexible_quorums_must_intersect() {
        let c = PaxosConfig::default();
        assert_eq!(c.quorums(5), (3, 3));
        c.validate(5).unwrap();
        let flexible = PaxosConfig { q1: Some(4), q2: Some(2), ..PaxosConfig::default() };
        flexible.validate(5).unwrap();
        let broken = PaxosConfig { q1: Some(2), q2: Some(3), ..PaxosConfig::default() };
        let err = broken.validate(5).unwrap_err();
        assert_eq!(err, ConfigError::QuorumsDoNotIntersect { q1: 2, q2: 3, n: 5 });
        assert!(err.to_string().contains("unsafe_quorums"), "{err}");
        PaxosConfig { unsafe_quorums: true, ..broken }.validate(5).unwrap();
        let too_big = PaxosConfig { q1: Some(6), ..PaxosConfig::default() };
        assert!(matches!(too_big.validate(5), Err(ConfigError::QuorumSize { .. })));
    }

    #[test]
    fn timing_relations_are_checked() {
        let c = PaxosConfig { heartbeat_interval: Duration::from_millis(200), ..PaxosConfig::default() };
        assert_eq!(c.validate(3), Err(ConfigError::HeartbeatInterval));
        assert!(Mutations::default().enable("nope").is_err());
    }
}

//! The errors of concord-dynamo's public functions: a configuration that cannot work and a broken
//! invariant. (`DynamoNode::boot` still returns a `String`: see there.)
//!
//! They are types, not strings, so that callers (the simulator, the server, tests) match variants;
//! their `Display` is the message users read, kept word for word from when these were strings.

/// A [`crate::DynamoConfig`] that cannot work ([`crate::DynamoConfig::validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("n must be at least 1")]
    NoReplicas,
    #[error("r ({r}) and w ({w}) must be between 1 and n ({n})")]
    Quorum { r: usize, w: usize, n: usize },
    #[error("merkle_depth {0} is too large (at most 16)")]
    MerkleTooDeep(u32),
    #[error("vnodes {0} is too large (at most {max} tokens per node)", max = crate::MAX_VNODES)]
    TooManyVnodes(u32),
}

/// A broken invariant of a node's state ([`crate::DynamoNode::check_invariants`],
/// [`crate::version::Versions::check`]): a bug, found by the simulator after the step that
/// caused it. The message says which node, key and values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvariantViolation(pub String);

//! Checks on a finished run that need the history checkers (`concord-check`).

use concord_check::linearizability::{self, Verdict};
use concord_check::model::Model;
use concord_core::history::History;
use std::time::Duration;

/// Why a run's history did not pass the linearizability check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinearizabilityError {
    /// The checker found no linearization (its verdict, printed).
    #[error("{0}")]
    NotLinearizable(String),
    /// Time ran out before a verdict (the checker's reason).
    #[error("undecided ({0})")]
    Undecided(String),
}

/// Whether `history` is linearizable as a key-value map (each key a register). An undecided
/// check (time ran out) counts as a failure: a sweep must never pass on a history nobody judged.
pub fn linearizable(history: &History, timeout: Duration) -> Result<(), LinearizabilityError> {
    match linearizability::check(history, Model::Kv, timeout) {
        Verdict::Linearizable => Ok(()),
        verdict @ Verdict::NotLinearizable(_) => {
            Err(LinearizabilityError::NotLinearizable(verdict.to_string()))
        }
        Verdict::Unknown(reason) => Err(LinearizabilityError::Undecided(reason.to_string())),
    }
}

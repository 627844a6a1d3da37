//! Checks on a finished run that need the history checkers (`concord-check`).

use concord_check::linearizability::{self, Verdict};
use concord_check::model::Model;
use concord_core::history::History;
use std::time::Duration;

/// Whether `history` is linearizable as a key-value map (each key a register). An undecided
/// check (time ran out) counts as a failure: a sweep must never pass on a history nobody judged.
pub fn linearizable(history: &History, timeout: Duration) -> Result<(), String> {
    match linearizability::check(history, Model::Kv, timeout) {
        Verdict::Linearizable => Ok(()),
        verdict @ Verdict::NotLinearizable(_) => Err(verdict.to_string()),
        Verdict::Unknown(reason) => Err(format!("undecided ({reason})")),
    }
}

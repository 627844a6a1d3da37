//! Client sessions: apply a retried command once (dissertation §6.3).
//!
//! A client tags each command with `(client, seq)`, `seq` increasing per client. The session table
//! remembers, per client, the highest `seq` applied and its output. It is part of the replicated
//! state – every replica updates it when it applies an entry – and of snapshots, so every replica,
//! including one restored from a snapshot, makes the same decision:
//!
//! * `seq` above the last applied one: apply, remember the output;
//! * `seq` equal to it: a retry of the last command: do not apply, return the remembered output;
//! * `seq` below it: the client already moved on, and the output is no longer kept: answer
//!   "unknown" (the command was applied once or never, but we cannot say which here).
//!
//! Limitation (stated, not hidden): the table keeps one entry per client forever; the dissertation
//! expires sessions with a replicated clock (§6.3), which is not implemented.

use crate::message::Session;
use concord_core::ClientId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the table says about a command.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionCheck<O> {
    /// New: apply it.
    Apply,
    /// Already applied: here is its output.
    Duplicate(O),
    /// Older than the last applied command of this client: its output is gone.
    Stale,
}

/// The exactly-once table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sessions<O> {
    last: BTreeMap<ClientId, (u64, O)>,
}

impl<O> Default for Sessions<O> {
    fn default() -> Self {
        Sessions { last: BTreeMap::new() }
    }
}

impl<O: Clone> Sessions<O> {
    pub fn check(&self, session: Session) -> SessionCheck<O> {
        match self.last.get(&session.client) {
            Some((seq, out)) if *seq == session.seq => SessionCheck::Duplicate(out.clone()),
            Some((seq, _)) if *seq > session.seq => SessionCheck::Stale,
            _ => SessionCheck::Apply,
        }
    }

    /// Record the output of a newly applied command.
    pub fn record(&mut self, session: Session, output: O) {
        debug_assert!(!matches!(self.last.get(&session.client), Some((seq, _)) if *seq >= session.seq));
        self.last.insert(session.client, (session.seq, output));
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_return_the_first_output() {
        let mut t: Sessions<&str> = Sessions::default();
        let s = |seq| Session { client: ClientId(7), seq };
        assert_eq!(t.check(s(1)), SessionCheck::Apply);
        t.record(s(1), "one");
        assert_eq!(t.check(s(1)), SessionCheck::Duplicate("one"));
        assert_eq!(t.check(s(2)), SessionCheck::Apply);
        t.record(s(2), "two");
        assert_eq!(t.check(s(1)), SessionCheck::Stale);
    }
}

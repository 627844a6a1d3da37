//! Judging a cached run's history: how stale the reads were, the staleness bound, and the
//! linearizability of what went straight to the database.
//!
//! Staleness here is measured (by [`concord_check::staleness::read_ages_by_revision`]) against the
//! **committed history by revision**, not by the order of
//! acknowledgements (which is what `concord_check::staleness` must use for stores without a total
//! order): every `ok` write carries its store revision as its witness (`2r`), every `ok` read the
//! revision of the value it returned (`2m + 1`, see `concord_kv`'s `KvStateMachine::witness`). A
//! read of revision `m` invoked at `t` **missed** every write of its key with a revision above `m`
//! acknowledged before `t`; it is `versions_behind` = their number, and as old as the time since
//! the *first* of them was acknowledged (`since_missed`: how long the newer value had been
//! acknowledged when the read began). Writes with an unknown outcome are never counted as missed.

use super::CachedScenario;
use crate::Scenario;
pub use concord_check::staleness::{read_ages_by_revision as read_ages, ReadAge};
use concord_core::history::{History, OpFn};
use std::fmt;
use std::time::Duration;

/// A cached read staler than the bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundViolation {
    pub read: ReadAge,
    pub bound: Duration,
}

impl fmt::Display for BoundViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.read;
        let (missed, acked) = r.first_missed.expect("a violation missed a write");
        write!(
            f,
            "staleness bound: a read of {} (process {}) invoked at {} and answered at {} returned \
             revision {}, missing the write at revision {} acknowledged at {} ({:?} before the read \
             began, {} newer version(s) missed) – more than the bound of {:?}",
            r.key,
            r.process,
            r.invoked,
            r.completed,
            r.revision,
            missed,
            acked,
            r.since_missed().unwrap_or_default(),
            r.versions_behind,
            self.bound
        )
    }
}

/// The reads of the processes of clients that read through the cache (closed loop: process
/// `p` is client `p mod clients`).
pub fn cached_reads<'a>(
    scenario: &'a Scenario<CachedScenario>,
    ages: &'a [ReadAge],
) -> impl Iterator<Item = &'a ReadAge> + 'a {
    let (_, config) = scenario.protocol();
    let clients = u64::from(scenario.workload.clients.max(1));
    ages.iter().filter(move |r| !config.is_direct((r.process % clients) as u32))
}

/// Reads staler than the configured bound.
pub fn bound_violations(scenario: &Scenario<CachedScenario>, ages: &[ReadAge]) -> Vec<BoundViolation> {
    let bound = scenario.protocol().1.staleness_bound();
    cached_reads(scenario, ages)
        .filter(|r| r.since_missed().is_some_and(|since| since > bound))
        .map(|r| BoundViolation { read: r.clone(), bound })
        .collect()
}

/// The database's share of the history: every operation but the reads of clients that read
/// through the cache.
pub fn database_history(scenario: &Scenario<CachedScenario>, history: &History) -> History {
    let (_, config) = scenario.protocol();
    let clients = u64::from(scenario.workload.clients.max(1));
    History {
        events: history
            .events
            .iter()
            .filter(|e| e.op.f != OpFn::Read || config.is_direct((e.process % clients) as u32))
            .cloned()
            .collect(),
    }
}

/// The checks `[protocol.cached]` adds to every run (see the module docs of `cached`).
pub fn check_history(scenario: &Scenario<CachedScenario>, history: &History) -> Vec<String> {
    let mut problems = Vec::new();
    let ages = read_ages(history);
    let violations = bound_violations(scenario, &ages);
    if let Some(first) = violations.first() {
        problems.push(first.to_string());
        if violations.len() > 1 {
            problems.push(format!("staleness bound: {} more read(s) over the bound", violations.len() - 1));
        }
    }
    let (_, config) = scenario.protocol();
    if config.direct_clients > 0 {
        if let Err(e) =
            crate::checks::linearizable(&database_history(scenario, history), scenario.run.check_timeout)
        {
            problems.push(format!("linearizability of the database's reads and writes: {e}"));
        }
    }
    problems
}

//! Judging a cached run's history: how stale the reads were, the staleness bound, and the
//! linearizability of what went straight to the database.
//!
//! Staleness here is measured against the **committed history by revision**, not by the order of
//! acknowledgements (which is what `concord_check::staleness` must use for stores without a total
//! order): every `ok` write carries its store revision as its witness (`2r`), every `ok` read the
//! revision of the value it returned (`2m + 1`, see `concord_kv`'s `KvStateMachine::witness`). A
//! read of revision `m` invoked at `t` **missed** every write of its key with a revision above `m`
//! acknowledged before `t`; it is `versions_behind` = their number, and as old as the time since
//! the *first* of them was acknowledged (`since_missed`: how long the newer value had been
//! acknowledged when the read began). Writes with an unknown outcome are never counted as missed.

use super::CachedScenario;
use crate::Scenario;
use concord_core::history::{EventType, History, OpFn};
use concord_core::Time;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One `ok` read, placed against the writes of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadAge {
    pub key: String,
    pub process: u64,
    pub invoked: Time,
    pub completed: Time,
    /// The revision of the value it returned (0: the key was absent).
    pub revision: u64,
    /// Acknowledged writes of the key, newer than `revision`, acknowledged before the read began.
    pub versions_behind: u64,
    /// The oldest of those: `(revision, acknowledged at)`.
    pub first_missed: Option<(u64, Time)>,
}

impl ReadAge {
    /// How long the first missed write had been acknowledged when the read began.
    pub fn since_missed(&self) -> Option<Duration> {
        self.first_missed.map(|(_, acked)| self.invoked.saturating_since(acked))
    }

    pub fn is_stale(&self) -> bool {
        self.versions_behind > 0
    }
}

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

/// Every `ok` read of the history with its age (in the order the reads completed); reads without
/// a witness (none in this protocol) are left out.
pub fn read_ages(history: &History) -> Vec<ReadAge> {
    let mut open: BTreeMap<u64, Time> = BTreeMap::new();
    let mut reads: Vec<ReadAge> = Vec::new();
    // Per key: (acknowledged at, revision) of every ok write, in acknowledgement order.
    let mut writes: BTreeMap<String, Vec<(Time, u64)>> = BTreeMap::new();
    for event in &history.events {
        match event.kind {
            EventType::Invoke => {
                open.insert(event.process, event.time);
            }
            EventType::Ok => {
                let invoked = open.remove(&event.process).unwrap_or(event.time);
                let (Some(key), Some(witness)) = (&event.op.key, event.witness) else { continue };
                match event.op.f {
                    OpFn::Read if witness % 2 == 1 => reads.push(ReadAge {
                        key: key.clone(),
                        process: event.process,
                        invoked,
                        completed: event.time,
                        revision: witness / 2,
                        versions_behind: 0,
                        first_missed: None,
                    }),
                    OpFn::Write | OpFn::Cas | OpFn::Add if witness % 2 == 0 => {
                        writes.entry(key.clone()).or_default().push((event.time, witness / 2))
                    }
                    _ => {}
                }
            }
            EventType::Fail | EventType::Info => {
                open.remove(&event.process);
            }
        }
    }
    // Sweep each key's reads by invocation time, adding writes as they become acknowledged.
    let mut order: Vec<usize> = (0..reads.len()).collect();
    order.sort_by_key(|&i| (reads[i].key.clone(), reads[i].invoked, i));
    let mut current_key: Option<String> = None;
    let mut acked: BTreeMap<u64, Time> = BTreeMap::new();
    let mut next_write = 0;
    for i in order {
        if current_key.as_deref() != Some(reads[i].key.as_str()) {
            current_key = Some(reads[i].key.clone());
            acked.clear();
            next_write = 0;
        }
        let key_writes = writes.get(&reads[i].key).map(Vec::as_slice).unwrap_or(&[]);
        while next_write < key_writes.len() && key_writes[next_write].0 < reads[i].invoked {
            let (at, revision) = key_writes[next_write];
            acked.entry(revision).or_insert(at);
            next_write += 1;
        }
        let read = &mut reads[i];
        for (&revision, &at) in acked.range(read.revision + 1..) {
            read.versions_behind += 1;
            if read.first_missed.is_none_or(|(_, first)| at < first) {
                read.first_missed = Some((revision, at));
            }
        }
    }
    reads
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

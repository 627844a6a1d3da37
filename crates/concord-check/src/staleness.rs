//! Staleness: how far behind an eventually consistent read is, in versions and in time.
//!
//! Bailis et al., *Probabilistically Bounded Staleness for Practical Partial Quorums* (PBS, VLDB
//! 2012), measure two things about a Dynamo-style store:
//!
//! * **k-staleness** – a read is *k versions behind* if `k` newer versions of the key had been
//!   acknowledged before the read began. PBS asks for the probability that a read returns one of the
//!   last `k` versions ([`StalenessReport::probability_within_versions`]).
//! * **t-visibility** – how long after a write is acknowledged it takes until reads reliably see it.
//!   PBS plots the probability of a *consistent* read (one that returns the latest acknowledged
//!   version, or newer) against the time `t` between that write's acknowledgement and the read's
//!   start ([`StalenessReport::consistency_curve`]). With partial quorums (R + W ≤ N) the curve starts
//!   low and climbs towards 1 as anti-entropy catches up; with R + W > N it is 1 everywhere.
//!
//! # Conventions (the assumptions behind the numbers)
//!
//! Everything is per key, over `ok` operations:
//!
//! * **Versions.** The versions of a key are its acknowledged writes – `write`s and successful
//!   `cas`es (the new value) that completed `ok` – numbered **in the order of their
//!   acknowledgement** (completion events), from 1. Version 0 is the initial `nil`. For a store that
//!   orders writes by commit (Raft) this is the commit order; for last-writer-wins stores it is the
//!   order clients learned of them, which is what a client can observe.
//! * **Which version a read returned** is found by its value, so workloads should write **unique
//!   values per key** (Concord's do). If a value was written several times, the read is attributed to
//!   the newest such version acknowledged before the read completed. A read of `nil` is version 0
//!   unless the key was deleted (then it is not attributed). Reads of a value that no acknowledged
//!   write wrote – from a write still in flight, or with an unknown outcome – are counted as
//!   `unresolved_reads` and left out of the statistics (an in-flight value is at least as new as
//!   anything acknowledged, so leaving it out can only make the store look slightly staler).
//! * **Real time** is event order for "before" (as everywhere in this crate); **durations** use the
//!   events' `time` (nanoseconds, the simulator's true time).
//! * A read's **latest version** is the newest version acknowledged before the read was invoked. The
//!   read is *consistent* if it returned that version or a newer one; `versions_behind` is how many
//!   versions it missed; `since_write` is the time from that latest acknowledgement to the read's
//!   invocation (`None` before the first acknowledged write).
//! * A write's **invisibility window** is the time from its acknowledgement to the start of the last
//!   read that still missed it (returned an older version); zero if no read after the
//!   acknowledgement missed it; unknown (`None`) if no read of the key started after it.

use concord_core::history::{EventType, History, OpFn, Value};
use concord_core::time::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// One read's staleness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadStaleness {
    pub key: String,
    pub process: u64,
    /// Index of the read's completion event.
    pub event_index: usize,
    /// Number of newer versions acknowledged before the read started.
    pub versions_behind: u64,
    /// From the latest acknowledgement before the read to the read's start.
    pub since_write: Option<Duration>,
}

impl ReadStaleness {
    pub fn is_consistent(&self) -> bool {
        self.versions_behind == 0
    }
}

// ----- staleness by revision (stores with a total order of writes) -----------------------------
//
// The analysis above attributes reads by value and orders versions by acknowledgement: all it can
// do for a store without a total order. A store that reports where each operation took effect –
// Concord's key-value store gives every `ok` write its revision as its witness (`2r`) and every
// `ok` read the revision of the value it returned (`2m + 1`) – can be measured against the
// committed history itself: a read of revision `m` invoked at `t` *missed* every write of its key
// with a revision above `m` acknowledged before `t`. It is `versions_behind` = their number, and as
// old as the time since the *first* of them was acknowledged. Writes with an unknown outcome are
// never counted as missed. (A cache tier is measured this way: `concord-sim`'s `cached` protocol.)

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

/// Every `ok` read of the history with its age (in the order the reads completed); reads without
/// a witness (none in this protocol) are left out.
pub fn read_ages_by_revision(history: &History) -> Vec<ReadAge> {
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

/// One acknowledged write's visibility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteVisibility {
    pub key: String,
    pub version: u64,
    pub value: Value,
    pub acked_at: Time,
    /// How long after the acknowledgement a read could still miss it (see the module docs).
    pub invisible_for: Option<Duration>,
}

/// A point of the PBS curve: reads that started within `[t_from, t_to)` of the latest write.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    pub t_from: Duration,
    pub t_to: Duration,
    pub reads: usize,
    pub consistent: usize,
    /// `consistent / reads` (NaN-free: 1.0 when there are no reads in the bin).
    pub probability: f64,
}

/// The result of [`analyze`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StalenessReport {
    /// Every attributed read, in completion order.
    pub reads: Vec<ReadStaleness>,
    /// Every acknowledged write, by key then version.
    pub writes: Vec<WriteVisibility>,
    /// `ok` reads whose value could not be attributed to an acknowledged version.
    pub unresolved_reads: usize,
}

impl StalenessReport {
    /// How many reads were `k` versions behind, for each `k` seen.
    pub fn versions_behind_histogram(&self) -> BTreeMap<u64, usize> {
        let mut histogram = BTreeMap::new();
        for read in &self.reads {
            *histogram.entry(read.versions_behind).or_insert(0) += 1;
        }
        histogram
    }

    /// PBS's k-staleness: the fraction of reads that returned one of the latest `k` versions
    /// (`k = 1`: the latest; so this is the fraction with fewer than `k` versions missed).
    pub fn probability_within_versions(&self, k: u64) -> f64 {
        fraction(self.reads.iter().filter(|r| r.versions_behind < k).count(), self.reads.len())
    }

    /// PBS's t-visibility curve: reads binned by time since the latest write (`bins` bins of
    /// `bin_width`; later reads go in the last bin), each with the fraction that was consistent.
    /// Reads before the first write of their key are left out.
    pub fn consistency_curve(&self, bin_width: Duration, bins: usize) -> Vec<CurvePoint> {
        let bins = bins.max(1);
        let width_ns = bin_width.as_nanos().max(1);
        let mut counts = vec![(0usize, 0usize); bins];
        for read in &self.reads {
            let Some(since) = read.since_write else { continue };
            let bin = ((since.as_nanos() / width_ns) as usize).min(bins - 1);
            counts[bin].0 += 1;
            if read.is_consistent() {
                counts[bin].1 += 1;
            }
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, (reads, consistent))| CurvePoint {
                t_from: bin_width * i as u32,
                t_to: if i + 1 == bins { Duration::MAX } else { bin_width * (i as u32 + 1) },
                reads,
                consistent,
                probability: if reads == 0 { 1.0 } else { consistent as f64 / reads as f64 },
            })
            .collect()
    }
}

fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// An acknowledged write as staleness sees it.
struct Version {
    value: Value,
    ack_index: usize,
    ack_time: Time,
}

/// Measure the staleness of every read in `history` (see the module docs for the conventions).
pub fn analyze(history: &History) -> StalenessReport {
    // Pair invocations with completions by process. Malformed parts are skipped, not fatal: this is a
    // measurement, and the linearizability check reports malformed histories.
    struct Open {
        index: usize,
        time: Time,
    }
    let mut open: BTreeMap<u64, Open> = BTreeMap::new();
    // Per key: versions in acknowledgement order, and whether it was ever deleted.
    let mut versions: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
    let mut deleted: BTreeMap<&str, bool> = BTreeMap::new();
    // Reads: (key, process, invoke index, invoke time, completion index, value).
    let mut reads: Vec<(&str, u64, usize, Time, usize, &Value)> = Vec::new();

    for (index, event) in history.events.iter().enumerate() {
        if event.kind == EventType::Invoke {
            open.insert(event.process, Open { index, time: event.time });
            continue;
        }
        let Some(invoke) = open.remove(&event.process) else { continue };
        let Some(key) = event.op.key.as_deref().or(history.events[invoke.index].op.key.as_deref()) else {
            continue;
        };
        if event.op.f == OpFn::Delete && event.kind != EventType::Fail {
            deleted.insert(key, true);
        }
        if event.kind != EventType::Ok {
            continue;
        }
        let invoked = &history.events[invoke.index].op;
        let written = match event.op.f {
            OpFn::Write => Some(invoked.value.clone()),
            OpFn::Cas => invoked.value.as_pair().map(|(_, new)| new.clone()),
            OpFn::Read => {
                reads.push((key, event.process, invoke.index, invoke.time, index, &event.op.value));
                None
            }
            _ => None,
        };
        if let Some(value) = written {
            versions.entry(key).or_default().push(Version { value, ack_index: index, ack_time: event.time });
        }
    }

    let mut report = StalenessReport::default();
    // Per key and version: the latest start of a read that missed it.
    let mut missed_until: BTreeMap<(&str, usize), Time> = BTreeMap::new();
    // Per key: the latest read start, to tell "never missed" from "never read".
    let mut last_read_start: BTreeMap<&str, usize> = BTreeMap::new();
    let empty: Vec<Version> = Vec::new();
    for &(key, process, invoke_index, invoke_time, done_index, value) in &reads {
        let key_versions = versions.get(key).unwrap_or(&empty);
        // Versions acknowledged before the read started: a prefix, as versions are in ack order.
        let latest = key_versions.partition_point(|v| v.ack_index < invoke_index);
        let returned = if *value == Value::Nil {
            (!deleted.get(key).copied().unwrap_or(false)).then_some(0)
        } else {
            // The newest version with this value acknowledged before the read completed.
            let acked_by_then = key_versions.partition_point(|v| v.ack_index < done_index);
            key_versions[..acked_by_then].iter().rposition(|v| v.value == *value).map(|i| i + 1)
        };
        let Some(returned) = returned else {
            report.unresolved_reads += 1;
            continue;
        };
        let entry = last_read_start.entry(key).or_insert(invoke_index);
        *entry = (*entry).max(invoke_index);
        for missed in returned + 1..=latest {
            let until = missed_until.entry((key, missed)).or_insert(invoke_time);
            *until = (*until).max(invoke_time);
        }
        report.reads.push(ReadStaleness {
            key: key.to_string(),
            process,
            event_index: done_index,
            versions_behind: latest.saturating_sub(returned) as u64,
            since_write: (latest > 0).then(|| invoke_time - key_versions[latest - 1].ack_time),
        });
    }
    for (key, key_versions) in &versions {
        for (i, v) in key_versions.iter().enumerate() {
            let version = i + 1;
            let read_after = last_read_start.get(key).is_some_and(|&start| start > v.ack_index);
            let invisible_for = match missed_until.get(&(*key, version)) {
                Some(&until) => Some(until - v.ack_time),
                None if read_after => Some(Duration::ZERO),
                None => None,
            };
            report.writes.push(WriteVisibility {
                key: key.to_string(),
                version: version as u64,
                value: v.value.clone(),
                acked_at: v.ack_time,
                invisible_for,
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;

    const MS: u64 = 1_000_000;

    /// By revision: writes at revisions 3 and 5 acked at 10 and 20 ms (but the one at 5 acked
    /// first, at 8 ms, would not change the order: revisions decide). A read of revision 3 invoked
    /// at 25 ms missed revision 5 (acked 20 ms): 1 behind, 5 ms old. A read of revision 5 is fresh;
    /// a read of revision 0 (absent) at 30 ms missed both, aged from the first ack.
    #[test]
    fn reads_are_aged_against_revisions() {
        let mut h = History::default();
        let mut ev = |p, kind, op, ms, w| h.push_witnessed(p, kind, op, Time(ms * MS), w);
        ev(0, EventType::Invoke, Op::write("x", 1), 5, None);
        ev(0, EventType::Ok, Op::write("x", 1), 10, Some(6));
        ev(1, EventType::Invoke, Op::write("x", 2), 15, None);
        ev(1, EventType::Ok, Op::write("x", 2), 20, Some(10));
        ev(2, EventType::Invoke, Op::read("x"), 25, None);
        ev(2, EventType::Ok, Op { value: Value::Int(1), ..Op::read("x") }, 26, Some(7));
        ev(3, EventType::Invoke, Op::read("x"), 27, None);
        ev(3, EventType::Ok, Op { value: Value::Int(2), ..Op::read("x") }, 28, Some(11));
        ev(4, EventType::Invoke, Op::read("x"), 30, None);
        ev(4, EventType::Ok, Op::read("x"), 31, Some(1));
        let ages = read_ages_by_revision(&h);
        let summary: Vec<(u64, u64, Option<Duration>)> =
            ages.iter().map(|r| (r.revision, r.versions_behind, r.since_missed())).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(summary, vec![(3, 1, ms(5)), (5, 0, None), (0, 2, ms(20))]);
    }

    /// x: write 1 acked at 10 ms, write 2 acked at 20 ms; reads at 25 ms (sees 1: 1 behind),
    /// 30 ms (sees 2), 40 ms (sees 1 again: 1 behind), 50 ms (sees 2).
    fn history() -> History {
        let mut h = History::default();
        let mut op = |p, kind, op, ms| h.push(p, kind, op, Time(ms * MS));
        op(0, EventType::Invoke, Op::write("x", 1), 5);
        op(0, EventType::Ok, Op::write("x", 1), 10);
        op(0, EventType::Invoke, Op::write("x", 2), 15);
        op(0, EventType::Ok, Op::write("x", 2), 20);
        for (start, seen) in [(25, 1), (30, 2), (40, 1), (50, 2)] {
            op(1, EventType::Invoke, Op::read("x"), start);
            op(
                1,
                EventType::Ok,
                Op { f: OpFn::Read, key: Some("x".into()), value: Value::Int(seen) },
                start + 1,
            );
        }
        // A read of a value nobody wrote is unresolved.
        op(2, EventType::Invoke, Op::read("x"), 60);
        op(2, EventType::Ok, Op { f: OpFn::Read, key: Some("x".into()), value: Value::Int(9) }, 61);
        h
    }

    #[test]
    fn versions_behind_and_time_since_write() {
        let report = analyze(&history());
        let behind: Vec<u64> = report.reads.iter().map(|r| r.versions_behind).collect();
        assert_eq!(behind, vec![1, 0, 1, 0]);
        assert_eq!(report.reads[0].since_write, Some(Duration::from_millis(5)));
        assert_eq!(report.unresolved_reads, 1);
        assert_eq!(report.versions_behind_histogram(), BTreeMap::from([(0, 2), (1, 2)]));
        assert_eq!(report.probability_within_versions(1), 0.5);
        assert_eq!(report.probability_within_versions(2), 1.0);
    }

    #[test]
    fn invisibility_windows_and_the_pbs_curve() {
        let report = analyze(&history());
        // Version 2 (acked at 20 ms) was missed by the read that started at 40 ms: 20 ms.
        assert_eq!(report.writes[1].invisible_for, Some(Duration::from_millis(20)));
        // Version 1 was never missed after its ack.
        assert_eq!(report.writes[0].invisible_for, Some(Duration::ZERO));
        let curve = report.consistency_curve(Duration::from_millis(10), 4);
        // since_write: 5 ms (stale), 10 ms (ok), 20 ms (stale), 30 ms (ok).
        let points: Vec<(usize, usize)> = curve.iter().map(|p| (p.reads, p.consistent)).collect();
        assert_eq!(points, vec![(1, 0), (1, 1), (1, 0), (1, 1)]);
        assert_eq!(curve[0].probability, 0.0);
    }
}

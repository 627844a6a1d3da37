//! Session guarantees (Terry et al., *Session Guarantees for Weakly Consistent Replicated Data*,
//! 1994): what one client can count on even when the store as a whole is only eventually consistent.
//!
//! * **Read your writes** – a read sees the session's own earlier writes (to that key).
//! * **Monotonic reads** – a session never reads an older version of a key than it read before.
//! * **Monotonic writes** – a session's writes become visible in the order it made them: whoever has
//!   seen its second write also sees (at least) its first.
//! * **Writes follow reads** – a write made after reading something is ordered after what was read:
//!   whoever sees the write also sees (at least) what the writer had read.
//!
//! # Conventions (stated, because they decide what counts as a violation)
//!
//! * **Session = process.** A Concord or Jepsen process is one client thread doing one operation at a
//!   time; its operations in invocation order are the session order. (After an `info` the client
//!   continues as a new process, so a session ends with its first unknown outcome.)
//! * **Writes** are `write`s and `cas`es that did not `fail`; the value written identifies the write,
//!   so workloads should write **unique values per key**. A read is attributed to the write of the
//!   value it returned; a read of `nil` to the initial state (unless the key was ever deleted). A read
//!   that cannot be attributed (unknown or ambiguous value) is counted as unresolved and checks
//!   nothing.
//! * **"Older than"** is real time, never a guess about concurrent writes: write `a` is older than
//!   write `b` when `a` was acknowledged before `b` was invoked (event order); the initial state is
//!   older than every write; a write with an unknown outcome is older than nothing. Two concurrent
//!   writes are never "older" than each other, so a store may order them either way without being
//!   blamed.
//! * Monotonic writes and writes-follow-reads are checked **across keys**, by observers other than
//!   the writer (the writer's own reads are covered by read-your-writes and monotonic reads): after
//!   an observer reads write `w2`, every later read of another key `x` by that observer must not
//!   return something older than the writes to `x` that `w2` depends on – the writer's earlier writes
//!   to `x` (monotonic writes) and the writes to `x` the writer had read before `w2` (writes follow
//!   reads).

use concord_core::history::{EventType, History, OpFn, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The four guarantees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guarantee {
    ReadYourWrites,
    MonotonicReads,
    MonotonicWrites,
    WritesFollowReads,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::ReadYourWrites => "read-your-writes",
            Guarantee::MonotonicReads => "monotonic-reads",
            Guarantee::MonotonicWrites => "monotonic-writes",
            Guarantee::WritesFollowReads => "writes-follow-reads",
        })
    }
}

/// One violation: a read that returned something older than a write it was owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub guarantee: Guarantee,
    /// The reading session.
    pub process: u64,
    pub key: String,
    /// Completion event of the offending read, and what it returned.
    pub read_event: usize,
    pub read_value: Value,
    /// The write the read should have seen (or something newer): its invocation event and value.
    pub owed_event: usize,
    pub owed_value: Value,
    /// The event that created the obligation (the session's write, its earlier read, or the
    /// observer's read of the dependent write).
    pub because_event: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: p{} read {:?} = {} (event {}), older than {} written at event {} (owed since event {})",
            self.guarantee,
            self.process,
            self.key,
            self.read_value,
            self.read_event,
            self.owed_value,
            self.owed_event,
            self.because_event
        )
    }
}

/// The result of [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    pub reads_checked: usize,
    pub unresolved_reads: usize,
    /// All violations, ordered by read event, then guarantee.
    pub violations: Vec<Violation>,
}

impl SessionReport {
    pub fn count(&self, guarantee: Guarantee) -> usize {
        self.violations.iter().filter(|v| v.guarantee == guarantee).count()
    }

    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for SessionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "session guarantees over {} reads ({} unresolved):",
            self.reads_checked, self.unresolved_reads
        )?;
        for g in [
            Guarantee::ReadYourWrites,
            Guarantee::MonotonicReads,
            Guarantee::MonotonicWrites,
            Guarantee::WritesFollowReads,
        ] {
            writeln!(f, "  {g}: {} violations", self.count(g))?;
        }
        const SHOWN_MAX: usize = 20;
        for v in self.violations.iter().take(SHOWN_MAX) {
            writeln!(f, "  - {v}")?;
        }
        if self.violations.len() > SHOWN_MAX {
            writeln!(f, "  ... and {} more", self.violations.len() - SHOWN_MAX)?;
        }
        Ok(())
    }
}

/// A write, as the session checker sees it.
struct Write<'h> {
    key: &'h str,
    value: &'h Value,
    process: u64,
    invoke_index: usize,
    /// `usize::MAX` for an unknown outcome: older than nothing.
    ack_index: usize,
}

/// What a read returned: the initial state or a write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Initial,
    Write(usize),
}

/// A session's operation, in session order.
enum Step<'h> {
    Write(usize),
    Read { key: &'h str, seen: Option<Seen>, read_event: usize, invoke_index: usize, value: &'h Value },
}

/// What a reader is owed on one key: the newest invocation among the writes it must not read
/// something older than (a write is older than `w` iff it was acknowledged before `w`'s invocation).
#[derive(Clone, Copy)]
struct Owed {
    write: usize,
    because_event: usize,
}

/// Check the four session guarantees over `history` (see the module docs for the conventions).
pub fn check(history: &History) -> SessionReport {
    let (writes, sessions) = collect(history);
    let mut report = SessionReport::default();
    // Index of writes by (key, value) for attributing reads.
    let mut by_value: BTreeMap<(&str, &Value), Vec<usize>> = BTreeMap::new();
    let mut deleted: BTreeMap<&str, bool> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        by_value.entry((w.key, w.value)).or_default().push(i);
    }
    for event in &history.events {
        if event.op.f == OpFn::Delete && event.kind == EventType::Invoke {
            if let Some(key) = event.op.key.as_deref() {
                deleted.insert(key, true);
            }
        }
    }
    let older = |seen: Seen, than: usize| match seen {
        Seen::Initial => true,
        Seen::Write(w) => writes[w].ack_index < writes[than].invoke_index,
    };

    // Resolve reads, and compute every write's cross-key dependencies (per key, the newest write it
    // depends on), walking each session in order.
    let mut deps_mw: Vec<BTreeMap<&str, Owed>> = (0..writes.len()).map(|_| BTreeMap::new()).collect();
    let mut deps_wfr: Vec<BTreeMap<&str, Owed>> = (0..writes.len()).map(|_| BTreeMap::new()).collect();
    let mut sessions = sessions;
    for steps in sessions.values_mut() {
        let mut own: BTreeMap<&str, Owed> = BTreeMap::new();
        let mut read_so_far: BTreeMap<&str, Owed> = BTreeMap::new();
        for step in steps.iter_mut() {
            match step {
                Step::Write(w) => {
                    deps_mw[*w] = own.clone();
                    deps_wfr[*w] = read_so_far.clone();
                    let invoke = writes[*w].invoke_index;
                    own.insert(writes[*w].key, Owed { write: *w, because_event: invoke });
                }
                Step::Read { key, seen, read_event, value, .. } => {
                    *seen = if **value == Value::Nil {
                        (!deleted.contains_key(key)).then_some(Seen::Initial)
                    } else {
                        match by_value.get(&(*key, *value)).map(Vec::as_slice) {
                            Some([only]) => Some(Seen::Write(*only)),
                            _ => None,
                        }
                    };
                    if let Some(Seen::Write(w)) = *seen {
                        raise(&mut read_so_far, key, Owed { write: w, because_event: *read_event }, &writes);
                    }
                }
            }
        }
    }

    for (&process, steps) in &sessions {
        // Obligations of this session as a reader, per key and guarantee.
        let mut owed: BTreeMap<(Guarantee, &str), Owed> = BTreeMap::new();
        for step in steps {
            match *step {
                Step::Write(w) => {
                    if writes[w].ack_index != usize::MAX {
                        let o = Owed { write: w, because_event: writes[w].ack_index };
                        raise_g(&mut owed, Guarantee::ReadYourWrites, writes[w].key, o, &writes);
                    }
                }
                Step::Read { key, seen, read_event, invoke_index, value } => {
                    let Some(seen) = seen else {
                        report.unresolved_reads += 1;
                        continue;
                    };
                    report.reads_checked += 1;
                    for g in [
                        Guarantee::ReadYourWrites,
                        Guarantee::MonotonicReads,
                        Guarantee::MonotonicWrites,
                        Guarantee::WritesFollowReads,
                    ] {
                        let Some(o) = owed.get(&(g, key)) else { continue };
                        // Read-your-writes is owed only for writes acknowledged before the read began.
                        if g == Guarantee::ReadYourWrites && o.because_event > invoke_index {
                            continue;
                        }
                        if older(seen, o.write) {
                            report.violations.push(Violation {
                                guarantee: g,
                                process,
                                key: key.to_string(),
                                read_event,
                                read_value: value.clone(),
                                owed_event: writes[o.write].invoke_index,
                                owed_value: writes[o.write].value.clone(),
                                because_event: o.because_event,
                            });
                        }
                    }
                    if let Seen::Write(w) = seen {
                        let o = Owed { write: w, because_event: read_event };
                        raise_g(&mut owed, Guarantee::MonotonicReads, key, o, &writes);
                        if writes[w].process != process {
                            for (dep_key, dep) in &deps_mw[w] {
                                let o = Owed { write: dep.write, because_event: read_event };
                                raise_g(&mut owed, Guarantee::MonotonicWrites, dep_key, o, &writes);
                            }
                            for (dep_key, dep) in &deps_wfr[w] {
                                let o = Owed { write: dep.write, because_event: read_event };
                                raise_g(&mut owed, Guarantee::WritesFollowReads, dep_key, o, &writes);
                            }
                        }
                    }
                }
            }
        }
    }
    report.violations.sort_by_key(|v| (v.read_event, v.guarantee));
    report
}

/// Keep, per key, the owed write with the newest invocation: it subsumes the others (anything older
/// than an earlier-invoked write is older than a later-invoked one).
fn raise<'h>(map: &mut BTreeMap<&'h str, Owed>, key: &'h str, o: Owed, writes: &[Write]) {
    match map.get(key) {
        Some(current) if writes[current.write].invoke_index >= writes[o.write].invoke_index => {}
        _ => {
            map.insert(key, o);
        }
    }
}

fn raise_g<'h>(
    map: &mut BTreeMap<(Guarantee, &'h str), Owed>,
    g: Guarantee,
    key: &'h str,
    o: Owed,
    writes: &[Write],
) {
    match map.get(&(g, key)) {
        Some(current) if writes[current.write].invoke_index >= writes[o.write].invoke_index => {}
        _ => {
            map.insert((g, key), o);
        }
    }
}

/// Writes, and each session's steps in order. Malformed parts are skipped.
fn collect(history: &History) -> (Vec<Write<'_>>, BTreeMap<u64, Vec<Step<'_>>>) {
    let mut writes: Vec<Write> = Vec::new();
    let mut sessions: BTreeMap<u64, Vec<Step>> = BTreeMap::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    // Writes are registered at their completion (to know if they failed); unknown ones at the end.
    let mut pending_writes: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, event) in history.events.iter().enumerate() {
        if event.kind == EventType::Invoke {
            open.insert(event.process, index);
            if matches!(event.op.f, OpFn::Write | OpFn::Cas) && event.op.key.is_some() {
                pending_writes.insert(event.process, index);
            }
            continue;
        }
        let Some(invoke) = open.remove(&event.process) else { continue };
        let invoked = &history.events[invoke];
        let Some(key) = invoked.op.key.as_deref() else { continue };
        match (invoked.op.f, event.kind) {
            (OpFn::Write | OpFn::Cas, EventType::Fail) => {
                pending_writes.remove(&event.process);
            }
            (OpFn::Write | OpFn::Cas, kind) => {
                pending_writes.remove(&event.process);
                let value = match invoked.op.f {
                    OpFn::Cas => invoked.op.value.as_pair().map(|(_, new)| new),
                    _ => Some(&invoked.op.value),
                };
                if let Some(value) = value {
                    let ack_index = if kind == EventType::Ok { index } else { usize::MAX };
                    sessions.entry(event.process).or_default().push(Step::Write(writes.len()));
                    writes.push(Write {
                        key,
                        value,
                        process: event.process,
                        invoke_index: invoke,
                        ack_index,
                    });
                }
            }
            (OpFn::Read, EventType::Ok) => {
                sessions.entry(event.process).or_default().push(Step::Read {
                    key,
                    seen: None,
                    read_event: index,
                    invoke_index: invoke,
                    value: &event.op.value,
                });
            }
            _ => {}
        }
    }
    // Writes still open when the history ended: unknown outcome.
    for (process, invoke) in pending_writes {
        let invoked = &history.events[invoke];
        let (Some(key), Some(value)) = (
            invoked.op.key.as_deref(),
            match invoked.op.f {
                OpFn::Cas => invoked.op.value.as_pair().map(|(_, new)| new),
                _ => Some(&invoked.op.value),
            },
        ) else {
            continue;
        };
        sessions.entry(process).or_default().push(Step::Write(writes.len()));
        writes.push(Write { key, value, process, invoke_index: invoke, ack_index: usize::MAX });
    }
    (writes, sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;
    use concord_core::time::Time;

    struct H(History);
    impl H {
        fn new() -> H {
            H(History::default())
        }
        fn write(&mut self, p: u64, key: &str, v: i64) -> &mut H {
            let t = Time(self.0.len() as u64);
            self.0.push(p, EventType::Invoke, Op::write(key, v), t);
            self.0.push(p, EventType::Ok, Op::write(key, v), t);
            self
        }
        fn read(&mut self, p: u64, key: &str, v: Option<i64>) -> &mut H {
            let t = Time(self.0.len() as u64);
            self.0.push(p, EventType::Invoke, Op::read(key), t);
            let value = v.map_or(Value::Nil, Value::Int);
            self.0.push(p, EventType::Ok, Op { f: OpFn::Read, key: Some(key.into()), value }, t);
            self
        }
    }

    #[test]
    fn read_your_writes() {
        let mut h = H::new();
        h.write(0, "x", 1).write(0, "x", 2).read(0, "x", Some(1));
        let r = check(&h.0);
        assert_eq!(r.count(Guarantee::ReadYourWrites), 1, "{r}");
        let mut ok = H::new();
        ok.write(0, "x", 1).write(1, "x", 2).read(0, "x", Some(2)).read(1, "x", Some(2));
        assert!(check(&ok.0).is_ok());
    }

    #[test]
    fn monotonic_reads() {
        let mut h = H::new();
        h.write(0, "x", 1).write(0, "x", 2).read(1, "x", Some(2)).read(1, "x", Some(1));
        let r = check(&h.0);
        assert_eq!(r.count(Guarantee::MonotonicReads), 1, "{r}");
        assert_eq!(r.count(Guarantee::ReadYourWrites), 0);
        // Reading 1 then 2 then nil: nil is older than both.
        let mut h2 = H::new();
        h2.write(0, "x", 1).read(1, "x", Some(1)).read(1, "x", None);
        assert_eq!(check(&h2.0).count(Guarantee::MonotonicReads), 1);
    }

    #[test]
    fn concurrent_writes_may_be_seen_in_either_order() {
        // Writes of 1 and 2 overlap; reading 2 then 1 is not a monotonic-reads violation.
        let mut h = History::default();
        h.push(0, EventType::Invoke, Op::write("x", 1), Time(0));
        h.push(1, EventType::Invoke, Op::write("x", 2), Time(1));
        h.push(0, EventType::Ok, Op::write("x", 1), Time(2));
        h.push(1, EventType::Ok, Op::write("x", 2), Time(3));
        for v in [2, 1] {
            h.push(2, EventType::Invoke, Op::read("x"), Time(4));
            h.push(
                2,
                EventType::Ok,
                Op { f: OpFn::Read, key: Some("x".into()), value: Value::Int(v) },
                Time(5),
            );
        }
        assert!(check(&h).is_ok());
    }

    #[test]
    fn monotonic_writes_across_keys() {
        // p0 writes x=1 then y=1; p1 sees y=1 but then x as nil: it saw the second write without the
        // first.
        let mut h = H::new();
        h.write(0, "x", 1).write(0, "y", 1).read(1, "y", Some(1)).read(1, "x", None);
        let r = check(&h.0);
        assert_eq!(r.count(Guarantee::MonotonicWrites), 1, "{r}");
        let mut ok = H::new();
        ok.write(0, "x", 1).write(0, "y", 1).read(1, "y", Some(1)).read(1, "x", Some(1));
        assert!(check(&ok.0).is_ok());
    }

    #[test]
    fn writes_follow_reads() {
        // p0 writes x=1; p1 reads x=1 and then writes y=5; p2 sees y=5 but x as nil.
        let mut h = H::new();
        h.write(0, "x", 1).read(1, "x", Some(1)).write(1, "y", 5).read(2, "y", Some(5)).read(2, "x", None);
        let r = check(&h.0);
        assert_eq!(r.count(Guarantee::WritesFollowReads), 1, "{r}");
        assert_eq!(r.count(Guarantee::MonotonicWrites), 0);
        assert!(r.to_string().contains("writes-follow-reads: 1 violations"));
    }
}

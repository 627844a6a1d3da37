//! Linearizability: the Wing & Gong / Lowe search, memoised, per key.
//!
//! # What is checked
//!
//! A history is *linearizable* (Herlihy & Wing, 1990) when every operation can be given a single
//! instant – its *linearization point* – between its invocation and its completion, such that the
//! operations, run one at a time in the order of those instants, produce exactly the results the
//! clients saw, according to a sequential [`Model`]. Equivalently: there is a total order of the
//! operations that (1) extends the real-time order (if `a` completed before `b` was invoked, `a` comes
//! first) and (2) is a legal sequential run of the model.
//!
//! # How the search works (WGL, with Lowe's improvements)
//!
//! Wing and Gong (1993) search for that order directly. Lay the history out as a list of *call* and
//! *return* entries in event order. Repeatedly look at the entries from the front:
//!
//! * a **call** entry is a *candidate*: its operation may be linearized now, if the model accepts it
//!   in the current state. Try it: apply it, remove ("lift") its call and return entries from the
//!   list, push it on a stack and start again from the front;
//! * a **return** entry means the operation it belongs to *had* to be linearized before this point
//!   (it returned), and was not: the current partial order is a dead end. Pop the last linearized
//!   operation, put its entries back ("unlift"), restore the state, and try the next candidate after
//!   it.
//!
//! When every operation is linearized the history is linearizable; when the stack is empty and the
//! front is a return entry, no order exists. The first candidates tried are only those whose call
//! precedes the first return – exactly the operations that could be "first" in real time.
//!
//! The plain search is exponential. Lowe (2017) added **memoisation**: the future of the search
//! depends only on *which* operations are linearized (a bit set) and the model state, not on the
//! order they were linearized in. So every (bit set, state) configuration reached is cached, and a
//! configuration seen before is never explored twice. For a register with few distinct values this
//! collapses the search from factorial to (roughly) polynomial in the concurrency. This is what
//! Knossos's "linear" and Porcupine do too.
//!
//! # Per-key partitioning (P-compositionality)
//!
//! Linearizability is *local* (Herlihy & Wing's Theorem 1): a history of several independent
//! objects is linearizable if and only if each object's sub-history is. Intuitively, the
//! linearization points chosen for key `a` never constrain key `b`'s, because no operation touches
//! both; the per-key orders can be merged into one total order by sorting all points by their
//! instants. Horn & Kroening (2015) call models with this property *P-compositional*. So a KV history
//! over 100 keys is 100 small searches instead of one huge one – the difference between milliseconds
//! and never. Every model here is per key (operations without a key form one object).
//!
//! # Operations with an unknown outcome
//!
//! An `info` operation (a timeout) may have taken effect at any instant after its invocation –
//! possibly long after the client gave up, even after the history ends – or never. The checker gives
//! it a return entry "at infinity" (after every other entry), so it can be linearized anywhere after
//! its call; and the search succeeds as soon as every *`ok`* operation is linearized, which is the
//! same as linearizing the unknown ones that never happened at the very end, where nothing observes
//! them. Unknown reads change nothing and are dropped before the search.
//!
//! # Three speed-ups that do not change the answer
//!
//! * **Candidate order.** At each configuration, `ok` operations (and unknown ones whose written value
//!   some `ok` operation observed) are tried before the other unknown ones. The same candidates are
//!   tried, only in another order, so the verdict is unchanged; but a timed-out write that never took
//!   effect is no longer placed first and refuted only much later.
//! * **Interchangeable unknown operations.** Two unknown operations with the same function and
//!   argument, both invoked, can swap places in any linearization (neither has a return to respect).
//!   So the earlier-invoked one is always placed first; without this, k identical timeouts would be
//!   explored in all 2^k subsets.
//! * **Anonymous queue elements** (see [`crate::model::QueueModel`]): elements no `ok` dequeue
//!   returns are stored as "some element", so that states differing only in their order merge.
//!
//! # Time limit
//!
//! The search checks the clock every few thousand steps; when the deadline passes the verdict is
//! [`Verdict::Unknown`]. A partition that ran out of time never hides a failure found in another
//! (not linearizable is definite), and never becomes a "linearizable".
//!
//! # When the answer is "no"
//!
//! The [`Explanation`] names the smallest failing partition (partitions are checked smallest first,
//! and checking stops at the first failure), the longest linearizable prefix the search reached, the
//! model state after it, and the operations that could not be placed next – the one whose return
//! forced the search back, and the concurrent candidates, each with the reason the model rejected
//! it. [`crate::html::render`] draws it as per-process timelines.

use crate::model::{CounterModel, Model, QueueModel, RegisterModel, Sequential, SetModel};
use crate::ops::{prepare, Operation};
use concord_core::history::{History, OpFn, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// The answer of a linearizability check.
#[derive(Clone, Debug)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Explanation),
    /// The checker could not decide: time ran out, or the history is malformed or does not fit the
    /// model. Never a guess.
    Unknown(String),
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    pub fn is_not_linearizable(&self) -> bool {
        matches!(self, Verdict::NotLinearizable(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown(_))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("linearizable"),
            Verdict::NotLinearizable(explanation) => write!(f, "NOT linearizable\n{explanation}"),
            Verdict::Unknown(reason) => write!(f, "unknown: {reason}"),
        }
    }
}

/// Why a history is not linearizable: the smallest failing partition and where the search got stuck.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub model: Model,
    /// The key of the failing partition (`None`: operations without a key).
    pub key: Option<String>,
    /// Partitions in the history, and how many were checked before this failure was found.
    pub partitions_total: usize,
    pub partitions_checked: usize,
    /// The failing partition's operations, by invocation order. Indices below point into this.
    pub ops: Vec<Operation>,
    /// The longest linearizable prefix the search found, in linearization order.
    pub longest_prefix: Vec<usize>,
    /// The model state after that prefix.
    pub state_after_prefix: String,
    /// The operation that returned without a place in the order after the prefix: it had to take
    /// effect before its return, and could not.
    pub blocking: usize,
    /// The operations that could not be placed next (the candidates at that point, `blocking`
    /// included), each with the model's reason.
    pub unplaceable: Vec<(usize, String)>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            Some(key) => format!("key {key:?}"),
            None => "the single object".to_string(),
        };
        writeln!(
            f,
            "model {}: {key} is not linearizable ({} operations; smallest failing partition, found after \
             checking {} of {} partitions)",
            self.model,
            self.ops.len(),
            self.partitions_checked,
            self.partitions_total
        )?;
        writeln!(f, "longest linearizable prefix ({} operations):", self.longest_prefix.len())?;
        // Long prefixes are summarised: the last few operations are what the reader needs.
        const SHOWN_MAX: usize = 12;
        let skip = self.longest_prefix.len().saturating_sub(SHOWN_MAX);
        if skip > 0 {
            writeln!(f, "  ... {skip} earlier operations")?;
        }
        for (position, &op) in self.longest_prefix.iter().enumerate().skip(skip) {
            writeln!(f, "  {:>4}. {}", position + 1, describe_op(&self.ops[op]))?;
        }
        writeln!(f, "state after the prefix: {}", self.state_after_prefix)?;
        writeln!(
            f,
            "stuck: {} returned, but cannot take effect next:",
            describe_op(&self.ops[self.blocking])
        )?;
        for (op, why) in &self.unplaceable {
            writeln!(f, "  - {}: {why}", describe_op(&self.ops[*op]))?;
        }
        Ok(())
    }
}

fn describe_op(op: &Operation) -> String {
    let returned = match op.return_index {
        Some(r) => format!("events {}..{}", op.call_index, r),
        None => format!("events {}..(unknown outcome)", op.call_index),
    };
    format!("{op} [{returned}]")
}

/// Check `history` against `model` within `timeout`.
pub fn check(history: &History, model: Model, timeout: Duration) -> Verdict {
    match prepare(history) {
        Ok(ops) => check_operations(&ops, model, timeout),
        Err(errors) => {
            let shown: Vec<String> = errors.iter().take(5).map(|e| e.to_string()).collect();
            Verdict::Unknown(format!("malformed history ({} errors): {}", errors.len(), shown.join("; ")))
        }
    }
}

/// Check already-paired operations (see [`crate::ops::prepare`]).
pub fn check_operations(ops: &[Operation], model: Model, timeout: Duration) -> Verdict {
    match model {
        Model::Register => check_with(&RegisterModel { with_delete_and_append: false }, model, ops, timeout),
        Model::Kv => check_with(&RegisterModel { with_delete_and_append: true }, model, ops, timeout),
        Model::Counter => check_with(&CounterModel, model, ops, timeout),
        Model::Set => check_with(&SetModel, model, ops, timeout),
        Model::Queue => check_with(&QueueModel::for_operations(ops), model, ops, timeout),
    }
}

/// Check against any sequential model; `name` is only used in the explanation.
pub fn check_with<M: Sequential>(m: &M, name: Model, ops: &[Operation], timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    for op in ops {
        if let Err(message) = m.validate(op) {
            return Verdict::Unknown(format!(
                "history does not fit the {name} model: event {} ({op}): {message}",
                op.call_index
            ));
        }
    }

    // Partition by key; a BTreeMap so that the order of partitions (and so of reports) is fixed.
    let mut partitions: BTreeMap<Option<&str>, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        // An unknown read changes nothing and constrains nothing.
        if !op.is_ok() && op.is_read_only() {
            continue;
        }
        partitions.entry(op.key.as_deref()).or_default().push(op);
    }
    let total = partitions.len();
    let mut partitions: Vec<(Option<&str>, Vec<&Operation>)> = partitions.into_iter().collect();
    // Smallest first: the first failure found is then the smallest failing partition, the easiest to
    // read. The sort is stable, so equal sizes stay in key order.
    partitions.sort_by_key(|(_, ops)| ops.len());

    let mut timed_out: Vec<String> = Vec::new();
    for (checked, (key, part)) in partitions.iter().enumerate() {
        match search(m, part, deadline) {
            Search::Linearizable => {}
            Search::Timeout => timed_out.push(key.unwrap_or("(no key)").to_string()),
            Search::Stuck(stuck) => {
                let blocking = stuck.blocking;
                let mut unplaceable: Vec<(usize, String)> =
                    stuck.candidates.iter().map(|&c| (c, reason(m, &stuck.state, part[c]))).collect();
                if !stuck.candidates.contains(&blocking) {
                    unplaceable.insert(0, (blocking, reason(m, &stuck.state, part[blocking])));
                }
                return Verdict::NotLinearizable(Explanation {
                    model: name,
                    key: key.map(str::to_string),
                    partitions_total: total,
                    partitions_checked: checked + 1,
                    ops: part.iter().map(|&op| op.clone()).collect(),
                    longest_prefix: stuck.prefix,
                    state_after_prefix: m.describe(&stuck.state),
                    blocking,
                    unplaceable,
                });
            }
            Search::Internal(message) => return Verdict::Unknown(format!("internal error: {message}")),
        }
        if Instant::now() > deadline && checked + 1 < partitions.len() {
            return Verdict::Unknown(format!(
                "time limit of {} ms reached after {} of {} partitions",
                timeout.as_millis(),
                checked + 1,
                total
            ));
        }
    }
    if timed_out.is_empty() {
        Verdict::Linearizable
    } else {
        Verdict::Unknown(format!(
            "time limit of {} ms reached while checking {} (of {total} partitions)",
            timeout.as_millis(),
            timed_out.join(", ")
        ))
    }
}

/// Why `op` cannot be the next operation after the longest prefix.
fn reason<M: Sequential>(m: &M, state: &M::State, op: &Operation) -> String {
    if m.step(state, op).is_some() {
        // The model accepts it here, but the search explored every continuation and each one led
        // to an operation that returned without a possible place.
        "possible next, but every order continuing with it fails later".to_string()
    } else {
        m.why_not(state, op)
    }
}

/// Where a failed search got stuck, in indices into the partition's operations.
struct Stuck<S> {
    prefix: Vec<usize>,
    state: S,
    blocking: usize,
    candidates: Vec<usize>,
}

enum Search<S> {
    Linearizable,
    Stuck(Stuck<S>),
    Timeout,
    Internal(&'static str),
}

const NIL: u32 = u32::MAX;

/// One entry of the doubly linked call/return list. Index 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Entry {
    /// Index of the operation in the partition.
    op: u32,
    is_call: bool,
    /// For a call, the index of its return entry.
    matching: u32,
    prev: u32,
    next: u32,
}

/// The call/return list, in event order, supporting O(1) removal and re-insertion of an operation
/// (its call and return entries together), as in Lowe's and Porcupine's implementations.
struct Entries {
    list: Vec<Entry>,
}

impl Entries {
    fn new(ops: &[&Operation]) -> Entries {
        // (position, is_call, op). Unknown returns go after every real event, in operation order.
        let mut points: Vec<(usize, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            points.push((op.call_index, true, i as u32));
            let ret = op.return_index.unwrap_or(usize::MAX / 2 + i);
            points.push((ret, false, i as u32));
        }
        points.sort_unstable();
        let mut list = Vec::with_capacity(points.len() + 1);
        list.push(Entry { op: NIL, is_call: false, matching: NIL, prev: NIL, next: 1 });
        let mut return_entry = vec![NIL; ops.len()];
        for (k, &(_, is_call, op)) in points.iter().enumerate() {
            let index = k as u32 + 1;
            let next = if k + 1 == points.len() { NIL } else { index + 1 };
            list.push(Entry { op, is_call, matching: NIL, prev: index - 1, next });
            if !is_call {
                return_entry[op as usize] = index;
            }
        }
        if points.is_empty() {
            list[0].next = NIL;
        }
        for entry in list.iter_mut().skip(1) {
            if entry.is_call {
                entry.matching = return_entry[entry.op as usize];
            }
        }
        Entries { list }
    }

    fn head(&self) -> u32 {
        self.list[0].next
    }

    /// Remove a call entry and its return entry.
    fn lift(&mut self, call: u32) {
        let Entry { prev, next, matching, .. } = self.list[call as usize];
        self.list[prev as usize].next = next;
        if next != NIL {
            self.list[next as usize].prev = prev;
        }
        let Entry { prev, next, .. } = self.list[matching as usize];
        self.list[prev as usize].next = next;
        if next != NIL {
            self.list[next as usize].prev = prev;
        }
    }

    /// Undo [`Entries::lift`]. Lifts are undone in reverse order, so the neighbours recorded in the
    /// removed entries are exactly the ones to splice back between.
    fn unlift(&mut self, call: u32) {
        let matching = self.list[call as usize].matching;
        let Entry { prev, next, .. } = self.list[matching as usize];
        self.list[prev as usize].next = matching;
        if next != NIL {
            self.list[next as usize].prev = matching;
        }
        let Entry { prev, next, .. } = self.list[call as usize];
        self.list[prev as usize].next = call;
        if next != NIL {
            self.list[next as usize].prev = call;
        }
    }
}

/// A fixed-size bit set of linearized operations. Small partitions (the common case: a key in a KV
/// history) fit in one or two words, so cloning it for the cache is cheap.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The Fx hash (from rustc): much faster than SipHash for small keys; the cache is never iterated,
/// so its order cannot leak into output, and its inputs are not adversarial.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;

/// How many search steps between two looks at the clock (a look costs ~20 ns; a step ~50 ns). A
/// power of two, so the test is a mask.
const STEPS_PER_CLOCK_CHECK: u64 = 4096;

/// The WGL/Lowe search over one partition.
fn search<M: Sequential>(m: &M, ops: &[&Operation], deadline: Instant) -> Search<M::State> {
    let ok_total = ops.iter().filter(|op| op.is_ok()).count();
    if ok_total == 0 {
        return Search::Linearizable;
    }
    let mut entries = Entries::new(ops);
    let mut state = m.init();
    let mut linearized = Bits::new(ops.len());
    let mut ok_linearized = 0usize;
    let mut cache: FxSet<(Bits, M::State)> = FxSet::default();
    // The linearized calls, in order, with the state before each and the phase they were tried in.
    let mut calls: Vec<(u32, M::State, bool)> = Vec::with_capacity(ops.len());
    let mut best: Option<Stuck<M::State>> = None;
    let mut steps = 0u64;
    let mut entry = entries.head();
    // Candidates are tried in two phases: first the `ok` operations and the unknown ones whose effect
    // some `ok` operation observed (a read returned the value they wrote, or a successful CAS
    // expected it), then the other unknown
    // ones. Both phases together try exactly the candidates plain WGL tries, so the answer is the
    // same; the order matters for speed. An unknown operation that never took effect would otherwise
    // be placed as early as possible, and the mistake found only much later, after exploring
    // everything in between; tried last, it is placed only where it is needed. One whose value was
    // seen most likely did take effect, and is best tried in its natural place.
    let mut trying_unknown = false;
    let eager: Vec<bool> = {
        let mut observed: HashSet<&Value, BuildHasherDefault<FxHasher>> = HashSet::default();
        for op in ops.iter().filter(|op| op.is_ok()) {
            // A successful CAS observed its expected value just as a read would have.
            if let (OpFn::Cas, Some((expected, _))) = (op.f, op.input.as_pair()) {
                observed.insert(expected);
            }
            if let Some(output) = &op.output {
                observed.insert(output);
                if let Value::List(items) = output {
                    observed.extend(items.iter());
                }
            }
        }
        ops.iter()
            .map(|op| {
                let written =
                    op.input.as_pair().filter(|_| op.f == OpFn::Cas).map_or(&op.input, |(_, new)| new);
                op.is_ok() || observed.contains(written)
            })
            .collect()
    };
    // Interchangeable unknown operations: two unknown operations with the same function and argument
    // that have both been invoked can swap places in any linearization (neither has a return to
    // respect, and the model sees the same thing). So of such twins, the earlier-invoked one is
    // always placed first: an unknown operation is a candidate only once its previous twin is
    // linearized. Without this, k interchangeable timeouts would be explored in 2^k subsets.
    let previous_twin: Vec<Option<usize>> = {
        let mut last: HashMap<(OpFn, &Value), usize, BuildHasherDefault<FxHasher>> = HashMap::default();
        ops.iter()
            .enumerate()
            .map(|(i, op)| if op.is_ok() { None } else { last.insert((op.f, &op.input), i) })
            .collect()
    };

    loop {
        if ok_linearized == ok_total {
            return Search::Linearizable;
        }
        // Looks at the clock on the first step too, so an expired deadline is noticed at once.
        if steps & (STEPS_PER_CLOCK_CHECK - 1) == 0 && Instant::now() >= deadline {
            return Search::Timeout;
        }
        steps += 1;
        if entry == NIL {
            // Unreachable: an `ok` operation not yet linearized still has its return entry in the
            // list, and the scan stops there. Say so rather than guess a verdict.
            return Search::Internal("search ran past the end of the history");
        }
        let e = entries.list[entry as usize];
        if e.is_call {
            let op = ops[e.op as usize];
            let twin_first = previous_twin[e.op as usize].is_some_and(|twin| !linearized.get(twin));
            if eager[e.op as usize] != trying_unknown && !twin_first {
                if let Some(next_state) = m.step(&state, op) {
                    linearized.set(e.op as usize);
                    if cache.insert((linearized.clone(), next_state.clone())) {
                        calls.push((entry, std::mem::replace(&mut state, next_state), trying_unknown));
                        if op.is_ok() {
                            ok_linearized += 1;
                        }
                        entries.lift(entry);
                        entry = entries.head();
                        trying_unknown = false;
                        continue;
                    }
                    // Seen before: everything reachable from there has been explored.
                    linearized.clear(e.op as usize);
                }
            }
            entry = e.next;
        } else if !trying_unknown {
            // The `ok` candidates are exhausted; now the unknown ones, from the front again.
            trying_unknown = true;
            entry = entries.head();
        } else {
            // `e.op` returned but is not linearized, and no candidate helps: a dead end.
            if best.as_ref().is_none() || best.as_ref().is_some_and(|b| calls.len() > b.prefix.len()) {
                best = Some(stuck_here(&entries, entry, &calls, &state));
            }
            let Some((call, previous, phase)) = calls.pop() else {
                return match best {
                    Some(stuck) => Search::Stuck(stuck),
                    None => Search::Internal("failed without a stuck point"),
                };
            };
            state = previous;
            trying_unknown = phase;
            let op = entries.list[call as usize].op as usize;
            linearized.clear(op);
            if ops[op].is_ok() {
                ok_linearized -= 1;
            }
            entries.unlift(call);
            entry = entries.list[call as usize].next;
        }
    }
}

/// Record a dead end: the prefix, the state, the returning operation and the candidates before it.
fn stuck_here<S: Clone>(entries: &Entries, ret: u32, calls: &[(u32, S, bool)], state: &S) -> Stuck<S> {
    let prefix = calls.iter().map(|(call, _, _)| entries.list[*call as usize].op as usize).collect();
    let mut candidates = Vec::new();
    let mut cursor = entries.head();
    while cursor != NIL && cursor != ret {
        let e = entries.list[cursor as usize];
        if e.is_call {
            candidates.push(e.op as usize);
        }
        cursor = e.next;
    }
    Stuck { prefix, state: state.clone(), blocking: entries.list[ret as usize].op as usize, candidates }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::{EventType, Op, OpFn, Value};
    use concord_core::time::Time;

    fn reg(f: OpFn, v: Value) -> Op {
        Op { f, key: None, value: v }
    }

    #[test]
    fn entries_lift_and_unlift_restore_the_list() {
        let mut h = History::default();
        h.push(0, EventType::Invoke, reg(OpFn::Write, Value::Int(1)), Time(0));
        h.push(1, EventType::Invoke, reg(OpFn::Read, Value::Nil), Time(1));
        h.push(0, EventType::Ok, reg(OpFn::Write, Value::Int(1)), Time(2));
        h.push(1, EventType::Ok, reg(OpFn::Read, Value::Int(1)), Time(3));
        let ops = prepare(&h).unwrap();
        let refs: Vec<&Operation> = ops.iter().collect();
        let mut entries = Entries::new(&refs);
        let walk = |e: &Entries| {
            let mut out = Vec::new();
            let mut c = e.head();
            while c != NIL {
                out.push((e.list[c as usize].op, e.list[c as usize].is_call));
                c = e.list[c as usize].next;
            }
            out
        };
        let before = walk(&entries);
        assert_eq!(before, vec![(0, true), (1, true), (0, false), (1, false)]);
        entries.lift(2); // the read's call
        assert_eq!(walk(&entries), vec![(0, true), (0, false)]);
        entries.lift(1);
        assert!(walk(&entries).is_empty());
        entries.unlift(1);
        entries.unlift(2);
        assert_eq!(walk(&entries), before);
    }
}

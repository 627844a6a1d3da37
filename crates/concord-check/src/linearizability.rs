//! Linearizability: the Wing & Gong / Lowe search, memoised, per key, with unknown operations
//! linearized just in time.
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
//! its call; and the search succeeds as soon as every *required* operation is linearized (the `ok`
//! ones, and those below), which is the same as linearizing the unknown ones that never happened at
//! the very end, where nothing observes them. Unknown reads change nothing and are dropped before the
//! search.
//!
//! # Unknown operations, just in time
//!
//! Unknown operations are what makes real histories hard: each one with a return at infinity stays a
//! candidate at every later point of the search, so k of them multiply the configurations by up to
//! 2^k – a Raft run with 12 clients and 30 timeouts on one key was undecided after a minute. Lowe
//! (2017) linearizes such operations *just in time*: not where they could go, but only when a later
//! observation needs them. The model says what the partition's observations imply
//! ([`Sequential::unknown_fates`]), and the search uses only facts that hold in **every**
//! linearization, so the set of linearizations – and the verdict – is unchanged:
//!
//! * **Irrelevant** ([`UnknownFate::Irrelevant`]): if removing the operation from any linearization
//!   leaves a linearization, it is dropped before the search. For a register: an unknown write
//!   whose value no other operation reads or expects (the next operation after it must then be a
//!   blind write, which does not care). Most timeouts of a real run are of this kind – the write
//!   never happened, or was overwritten unseen – and they cost nothing now.
//! * **Required before a point** ([`UnknownFate::Before`]): when every write carries a unique value
//!   – as in Concord's workloads and Jepsen's – a read names the write it saw. That is Gibbons &
//!   Korach's (1997) observation, which makes registers with unique writes checkable in polynomial
//!   time while the general problem is NP-complete. If an `ok` read returned `v`, the only write of
//!   `v` took effect before that read returned, even if its client timed out. The unknown write then
//!   gets the read's return as its own: it becomes an ordinary operation with a deadline, no longer a
//!   candidate forever. The fact propagates along chains of unknown compare-and-sets.
//!
//! Both are argued in full on [`RegisterModel::unknown_fates`](crate::model::RegisterModel); the
//! other models claim nothing (the default). What remains – `ok` operations and the few unknown ones
//! that some other unknown operation observes – is searched as before.
//!
//! # Deciding a key without a search
//!
//! Before searching a key, two checks may show it linearizable in O(n log n), and one may show it
//! is not:
//!
//! * **A witness** ([`crate::witness`]): the order the system under test says it applied the
//!   operations in (Concord's KV store reports revisions), verified against real time and the model
//!   – a proposal, never trusted.
//! * **Zones** ([`crate::zones`]): for a read/write register whose writes carry unique values,
//!   Gibbons & Korach's polynomial decision (forward and backward zones of write clusters).
//! * **An impossible operation** ([`Sequential::impossible`]): an `ok` read of a value that no
//!   operation of the key writes (a "garbage read", in Elle's words) fits no order at all. It is
//!   refuted at once, and the explanation says so instead of showing a prefix; a search would
//!   first explore every order of what came before it, which in a long concurrent history can take
//!   longer than any time limit. Every other violation is found, and explained, by the search.
//!
//! # Three more speed-ups that do not change the answer
//!
//! * **Candidate order.** At each configuration, required operations (and unknown ones whose written
//!   value some `ok` operation observed) are tried before the other unknown ones. The same candidates
//!   are tried, only in another order, so the verdict is unchanged; but a timed-out write that never
//!   took effect is no longer placed first and refuted only much later.
//! * **Interchangeable unknown operations.** Two unknown operations with the same function and
//!   argument, both invoked, neither with a deadline, can swap places in any linearization (neither
//!   has a return to respect). So the earlier-invoked one is always placed first; without this, k
//!   identical timeouts would be explored in all 2^k subsets.
//! * **Anonymous queue elements** (see [`crate::model::QueueModel`]): elements no `ok` dequeue
//!   returns are stored as "some element", so that states differing only in their order merge.
//!
//! # The cache, and its bound
//!
//! Each visited (linearized set, state) configuration is kept. States are *interned*: each distinct
//! state is stored once and the cache key is the bit set plus the state's number, so a key costs the
//! bit set's words and four bytes whatever the state (a queue, a set) holds. The keys are exact, never
//! hashes alone: a hash collision taken for "seen" would prune a configuration never explored, and
//! could turn a linearizable history into "not". The caches alive at once (one per partition being
//! searched) are bounded together ([`Options::cache_bytes_max`], an estimate of keys and table
//! slots, taken off again when a partition's search ends); when the bound is reached
//! the verdict is [`Verdict::Unknown`], saying which partition hit it.
//!
//! # Partitions in parallel
//!
//! Partitions are independent searches, so [`Options::jobs`] threads take them in order (smallest
//! first). The report must not depend on which thread was faster: a failing partition cancels only
//! the partitions *after* it in that order, the earlier ones still finish, and the verdict is read
//! in partition order – so the failure reported is always the first in order, exactly the one the
//! sequential check reports.
//!
//! # Time limit, progress, and hard operations
//!
//! The search checks the clock every few thousand steps; when the deadline passes the verdict is
//! [`Verdict::Unknown`]. A partition that ran out of time never hides a failure found in another
//! (not linearizable is definite), and never becomes a "linearizable". The message names each
//! undecided partition, how many of its operations the search placed at best, how many
//! configurations it cached, and the *hard operations*: those concurrent at the deepest point the
//! search reached – the window of the history to cut out and study. While it runs, a caller can poll
//! a [`Progress`] (operations placed and configurations cached, per partition); `concord check`
//! draws it as a progress bar.
//!
//! # When the answer is "no"
//!
//! The [`Explanation`] names the smallest failing partition (partitions are checked smallest first,
//! and checking stops at the first failure), the longest linearizable prefix the search reached, the
//! model state after it, and the operations that could not be placed next – the one whose return
//! forced the search back, and the concurrent candidates, each with the reason the model rejected
//! it. [`crate::html::render`] draws it as per-process timelines. The operations listed are the ones
//! the search kept: irrelevant unknown operations are left out.

use crate::model::{
    CounterModel, Model, MutexModel, QueueModel, RegisterModel, Sequential, SetModel, StringKvModel,
    UnknownFate,
};
use crate::ops::{prepare, Operation};
use concord_core::history::{History, OpFn, Value};
use rustc_hash::{FxBuildHasher, FxHashMap as FxMap, FxHashSet as FxSet};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
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
    /// Set when `blocking` can take effect in *no* order, as the model showed without a search
    /// ([`Sequential::impossible`]): why. The prefix is then empty (none was searched for).
    pub impossible: Option<String>,
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
        if let Some(why) = &self.impossible {
            return writeln!(
                f,
                "{} returned, but can take effect in no order: {why}",
                describe_op(&self.ops[self.blocking])
            );
        }
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
    check_history_with(history, model, &Options::new(timeout))
}

/// Check `history` against `model` with explicit [`Options`] (threads, memory, progress).
pub fn check_history_with(history: &History, model: Model, options: &Options<'_>) -> Verdict {
    match prepare(history) {
        Ok(ops) => check_operations_with(&ops, model, options),
        Err(errors) => {
            let shown: Vec<String> = errors.iter().take(5).map(|e| e.to_string()).collect();
            Verdict::Unknown(format!("malformed history ({} errors): {}", errors.len(), shown.join("; ")))
        }
    }
}

/// Check already-paired operations (see [`crate::ops::prepare`]).
pub fn check_operations(ops: &[Operation], model: Model, timeout: Duration) -> Verdict {
    check_operations_with(ops, model, &Options::new(timeout))
}

/// [`check_operations`] with explicit [`Options`].
pub fn check_operations_with(ops: &[Operation], model: Model, options: &Options<'_>) -> Verdict {
    match model {
        Model::Register => {
            check_with_options(&RegisterModel { with_delete_and_append: false }, model, ops, options)
        }
        Model::Kv => check_with_options(&RegisterModel { with_delete_and_append: true }, model, ops, options),
        Model::Counter => check_with_options(&CounterModel, model, ops, options),
        Model::Set => check_with_options(&SetModel, model, ops, options),
        Model::Queue => check_with_options(&QueueModel::for_operations(ops), model, ops, options),
        Model::Mutex => check_with_options(&MutexModel, model, ops, options),
        Model::PorcupineKv => check_with_options(&StringKvModel, model, ops, options),
    }
}

/// Check against any sequential model; `name` is only used in the explanation.
pub fn check_with<M>(m: &M, name: Model, ops: &[Operation], timeout: Duration) -> Verdict
where
    M: Sequential + Sync,
    M::State: Send,
{
    check_with_options(m, name, ops, &Options::new(timeout))
}

/// How a check may run: its time limit and the resources the search may use.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub timeout: Duration,
    /// Partitions searched at once, each on its own thread (`1`: all on the calling thread). The
    /// verdict and its explanation do not depend on it (see "Partitions in parallel").
    pub jobs: usize,
    /// A bound on the memory of the caches of visited configurations, of all the partitions being
    /// searched at once (an estimate: the cache's keys and the hash table's slots). When it is
    /// reached the verdict is [`Verdict::Unknown`], saying so.
    pub cache_bytes_max: usize,
    /// Filled in while the search runs, for a caller that shows progress (poll it from another
    /// thread, see [`Progress::snapshot`]).
    pub progress: Option<&'a Progress>,
}

/// The default bound on the caches' memory: 4 GiB.
pub const CACHE_BYTES_MAX_DEFAULT: usize = 4 << 30;

impl Options<'_> {
    /// One thread, the default memory bound, no progress.
    pub fn new(timeout: Duration) -> Options<'static> {
        Options { timeout, jobs: 1, cache_bytes_max: CACHE_BYTES_MAX_DEFAULT, progress: None }
    }
}

/// What the search is doing, per partition; shared with a caller that shows progress.
#[derive(Default)]
pub struct Progress {
    partitions: OnceLock<Vec<PartitionProgress>>,
}

/// One partition's counters, updated every few thousand search steps.
#[derive(Default)]
struct PartitionProgress {
    key: Option<String>,
    ops: usize,
    /// 0 waiting, 1 searching, 2 done.
    phase: AtomicU8,
    linearized: AtomicUsize,
    deepest: AtomicUsize,
    cached: AtomicUsize,
}

/// A partition's progress, as [`Progress::snapshot`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The key (`None`: operations without a key).
    pub key: Option<String>,
    /// Operations the search has to place (after dropping those that cannot matter).
    pub ops: usize,
    pub searching: bool,
    pub done: bool,
    /// Operations in the current partial linearization, and in the longest one so far.
    pub linearized: usize,
    pub deepest: usize,
    /// (set of linearized operations, state) configurations in the cache.
    pub cached: usize,
}

impl Progress {
    /// Every partition's status, in the order they are checked (smallest first); empty before the
    /// check has split the history.
    pub fn snapshot(&self) -> Vec<PartitionStatus> {
        let Some(partitions) = self.partitions.get() else { return Vec::new() };
        partitions
            .iter()
            .map(|p| {
                let phase = p.phase.load(Ordering::Relaxed);
                PartitionStatus {
                    key: p.key.clone(),
                    ops: p.ops,
                    searching: phase == 1,
                    done: phase == 2,
                    linearized: p.linearized.load(Ordering::Relaxed),
                    deepest: p.deepest.load(Ordering::Relaxed),
                    cached: p.cached.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// One partition, ready for the search: the operations that matter, and where each must be
/// linearized by.
struct Part<'a> {
    key: Option<&'a str>,
    ops: Vec<&'a Operation>,
    /// The event index before which each operation takes effect: its return, or an inherited one
    /// (see [`UnknownFate::Before`]); `None`: "at infinity" (an unknown operation that may never
    /// happen).
    deadlines: Vec<Option<usize>>,
}

impl<'a> Part<'a> {
    fn new<M: Sequential>(m: &M, key: Option<&'a str>, all: Vec<&'a Operation>) -> Part<'a> {
        let fates = m.unknown_fates(&all);
        let mut ops = Vec::with_capacity(all.len());
        let mut deadlines = Vec::with_capacity(all.len());
        for (op, fate) in all.into_iter().zip(fates) {
            let deadline = match (op.return_index, fate) {
                (Some(r), _) => Some(r),
                (None, UnknownFate::Irrelevant) => continue,
                (None, UnknownFate::Before(d)) => Some(d),
                (None, UnknownFate::Free) => None,
            };
            ops.push(op);
            deadlines.push(deadline);
        }
        Part { key, ops, deadlines }
    }
}

/// Check against any sequential model with explicit [`Options`].
pub fn check_with_options<M>(m: &M, name: Model, ops: &[Operation], options: &Options<'_>) -> Verdict
where
    M: Sequential + Sync,
    M::State: Send,
{
    let deadline = Instant::now() + options.timeout;
    for op in ops {
        if let Err(message) = m.validate(op) {
            return Verdict::Unknown(format!(
                "history does not fit the {name} model: event {} ({op}): {message}",
                op.call_index
            ));
        }
    }

    // Partition by key; a BTreeMap so that the order of partitions (and so of reports) is fixed.
    let mut by_key: BTreeMap<Option<&str>, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        // An unknown read changes nothing and constrains nothing.
        if !op.is_ok() && op.is_read_only() {
            continue;
        }
        by_key.entry(op.key.as_deref()).or_default().push(op);
    }
    let total = by_key.len();
    let mut partitions: Vec<Part<'_>> =
        by_key.into_iter().map(|(key, part)| Part::new(m, key, part)).collect();
    // Smallest first: the first failure found is then the smallest failing partition, the easiest to
    // read. The sort is stable, so equal sizes stay in key order.
    partitions.sort_by_key(|part| part.ops.len());
    let progress: &[PartitionProgress] = match options.progress {
        Some(progress) => progress.partitions.get_or_init(|| {
            partitions
                .iter()
                .map(|p| PartitionProgress {
                    key: p.key.map(str::to_string),
                    ops: p.ops.len(),
                    ..PartitionProgress::default()
                })
                .collect()
        }),
        None => &[],
    };

    let results = search_all(m, &partitions, deadline, options, progress);

    // The verdict, read in partition order whatever order the threads finished in.
    let mut undecided: Vec<String> = Vec::new();
    let mut not_started = 0usize;
    let (mut out_of_time, mut out_of_memory) = (false, false);
    for (index, (part, result)) in partitions.iter().zip(results).enumerate() {
        let key_name = part.key.unwrap_or("(no key)");
        match result {
            None | Some(Search::Cancelled) => not_started += 1,
            Some(Search::Linearizable) => {}
            Some(Search::Stuck(stuck)) => {
                let ops = &part.ops;
                let blocking = stuck.blocking;
                let mut unplaceable: Vec<(usize, String)> = match &stuck.impossible {
                    Some(why) => vec![(blocking, why.clone())],
                    None => stuck.candidates.iter().map(|&c| (c, reason(m, &stuck.state, ops[c]))).collect(),
                };
                if !unplaceable.iter().any(|&(op, _)| op == blocking) {
                    unplaceable.insert(0, (blocking, reason(m, &stuck.state, ops[blocking])));
                }
                return Verdict::NotLinearizable(Explanation {
                    model: name,
                    key: part.key.map(str::to_string),
                    partitions_total: total,
                    partitions_checked: index + 1,
                    ops: ops.iter().map(|&op| op.clone()).collect(),
                    longest_prefix: stuck.prefix,
                    state_after_prefix: m.describe(&stuck.state),
                    blocking,
                    unplaceable,
                    impossible: stuck.impossible,
                });
            }
            Some(Search::Internal(message)) => return Verdict::Unknown(format!("internal error: {message}")),
            Some(Search::Timeout(hard)) => {
                out_of_time = true;
                undecided.push(describe_hard(key_name, part, &hard, "time ran out"));
            }
            Some(Search::OutOfMemory(hard)) => {
                out_of_memory = true;
                undecided.push(describe_hard(key_name, part, &hard, "the caches reached their bound"));
            }
        }
    }
    if undecided.is_empty() && not_started == 0 {
        return Verdict::Linearizable;
    }
    let mut causes = Vec::new();
    if out_of_time || Instant::now() >= deadline {
        causes.push(format!("time limit of {} ms", options.timeout.as_millis()));
    }
    if out_of_memory || !out_of_time {
        causes.push(format!("cache bound of {} MiB", options.cache_bytes_max >> 20));
    }
    let mut message = format!(
        "{} reached: {} of {total} partitions undecided",
        causes.join(" and "),
        undecided.len() + not_started
    );
    if not_started > 0 {
        message.push_str(&format!(" ({not_started} not searched)"));
    }
    for hard in undecided {
        message.push_str("\n  ");
        message.push_str(&hard);
    }
    Verdict::Unknown(message)
}

/// Search every partition, on `options.jobs` threads. Partitions are taken in order; once one fails,
/// later ones are skipped (or abandoned), earlier ones still finish, so the first failure in
/// partition order – the one reported – is the same whatever the thread timing.
fn search_all<M>(
    m: &M,
    partitions: &[Part<'_>],
    deadline: Instant,
    options: &Options<'_>,
    progress: &[PartitionProgress],
) -> Vec<Option<Search<M::State>>>
where
    M: Sequential + Sync,
    M::State: Send,
{
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let cache_bytes = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Search<M::State>>>> = partitions.iter().map(|_| Mutex::new(None)).collect();
    let worker = || loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= partitions.len() || index > first_failure.load(Ordering::Relaxed) {
            return;
        }
        let limits = Limits {
            deadline,
            cancelled: &|| first_failure.load(Ordering::Relaxed) < index,
            cache_bytes: &cache_bytes,
            cache_bytes_max: options.cache_bytes_max,
            progress: progress.get(index),
        };
        if let Some(p) = limits.progress {
            p.phase.store(1, Ordering::Relaxed);
        }
        let result = search(m, &partitions[index], &limits);
        if let Some(p) = limits.progress {
            p.phase.store(2, Ordering::Relaxed);
        }
        if matches!(result, Search::Stuck(_) | Search::Internal(_)) {
            first_failure.fetch_min(index, Ordering::Relaxed);
        }
        *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };
    let jobs = options.jobs.clamp(1, partitions.len().max(1));
    if jobs == 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(worker);
            }
        });
    }
    results.into_iter().map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

/// One line about an undecided partition: where the search got to, and the operations around its
/// deepest point – the window a user can cut the history down to.
fn describe_hard(key: &str, part: &Part<'_>, hard: &Hard, why: &str) -> String {
    let unknown = part.deadlines.iter().filter(|d| d.is_none()).count();
    let mut text = format!(
        "key {key}: {why} with {} operations ({unknown} unknown, free to take effect late or never); \
         at best {} placed, {} configurations cached",
        part.ops.len(),
        hard.deepest,
        hard.cached
    );
    if !hard.frontier.is_empty() {
        let first = hard.frontier.iter().map(|&i| part.ops[i].call_index).min().unwrap_or(0);
        text.push_str(&format!(
            "; the hard operations (concurrent at the deepest point, from event {first}):"
        ));
        const SHOWN_MAX: usize = 12;
        for &i in hard.frontier.iter().take(SHOWN_MAX) {
            text.push_str(&format!("\n    {}", describe_op(part.ops[i])));
        }
        if hard.frontier.len() > SHOWN_MAX {
            text.push_str(&format!("\n    ... and {} more", hard.frontier.len() - SHOWN_MAX));
        }
    }
    text
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
    /// `blocking` fits no order at all ([`Sequential::impossible`]), and why.
    impossible: Option<String>,
}

/// Where an abandoned search had got to.
struct Hard {
    deepest: usize,
    cached: usize,
    /// The operations that could go next at the deepest point (the candidates before the return
    /// that stopped the search there).
    frontier: Vec<usize>,
}

enum Search<S> {
    Linearizable,
    Stuck(Stuck<S>),
    Timeout(Hard),
    OutOfMemory(Hard),
    /// Not searched to the end for a reason that is not this partition's: one earlier in the order
    /// failed (this one no longer matters), or the time or memory was used up before it began.
    Cancelled,
    Internal(&'static str),
}

/// What bounds one partition's search.
struct Limits<'a> {
    deadline: Instant,
    cancelled: &'a (dyn Fn() -> bool + Sync),
    /// Bytes held by every partition's cache (an estimate), against `cache_bytes_max`.
    cache_bytes: &'a AtomicUsize,
    cache_bytes_max: usize,
    progress: Option<&'a PartitionProgress>,
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
    /// `deadlines[i]`: the event index of operation `i`'s return entry (`None`: at infinity).
    fn new(ops: &[&Operation], deadlines: &[Option<usize>]) -> Entries {
        // (position, is_call, op). Unknown returns go after every real event, in operation order. An
        // inherited deadline shares its position with the return it came from; the tie is broken by
        // operation index, and either order means the same: both must be placed before that point.
        let mut points: Vec<(usize, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            points.push((op.call_index, true, i as u32));
            let ret = deadlines[i].unwrap_or(usize::MAX / 2 + i);
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

/// How many search steps between two looks at the clock, the cancellation flag, the memory bound
/// and the progress counters (a look costs ~20 ns; a step ~50 ns). A power of two, so the test is a
/// mask.
const STEPS_PER_CLOCK_CHECK: u64 = 4096;

/// The cache of visited configurations: (linearized set, model state). States are interned – each
/// distinct state is stored once, and the cache holds its number – so a key is the bit set and four
/// bytes, whatever the state's size. Its estimated size is added to the counter shared by all
/// partitions as it grows, and taken off again when the cache is dropped, so the bound is on the
/// caches alive at once.
struct Cache<'a, S> {
    seen: FxSet<(Bits, u32)>,
    states: FxMap<S, u32>,
    /// Estimated bytes not yet added to `shared`, and added.
    bytes_unreported: usize,
    bytes_reported: usize,
    bytes_per_entry: usize,
    shared: &'a AtomicUsize,
}

impl<'a, S: Clone + Eq + Hash> Cache<'a, S> {
    fn new(ops: usize, shared: &'a AtomicUsize) -> Cache<'a, S> {
        // A table slot (the key and a control byte; the table is at most 7/8 full and doubles, so
        // about 1.5 slots per entry on average), plus the bit set's words on the heap with the
        // allocator's header.
        let slot = std::mem::size_of::<(Bits, u32)>() + 1;
        let words = ops.div_ceil(64) * 8 + 16;
        Cache {
            seen: FxSet::default(),
            states: FxMap::default(),
            bytes_unreported: 0,
            bytes_reported: 0,
            bytes_per_entry: slot * 3 / 2 + words,
            shared,
        }
    }

    /// Add the bytes grown since the last call to the shared counter; returns the new total.
    fn report(&mut self) -> usize {
        let bytes = std::mem::take(&mut self.bytes_unreported);
        self.bytes_reported += bytes;
        self.shared.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// Record a configuration; false if it was there already.
    fn insert(&mut self, linearized: &Bits, state: &S) -> bool {
        let next_id = self.states.len() as u32;
        let id = match self.states.get(state) {
            Some(&id) => id,
            None => {
                self.states.insert(state.clone(), next_id);
                self.bytes_unreported += std::mem::size_of::<S>() * 2 + 16;
                next_id
            }
        };
        let inserted = self.seen.insert((linearized.clone(), id));
        if inserted {
            self.bytes_unreported += self.bytes_per_entry;
        }
        inserted
    }
}

impl<S> Drop for Cache<'_, S> {
    fn drop(&mut self) {
        self.shared.fetch_sub(self.bytes_reported, Ordering::Relaxed);
    }
}

/// The WGL/Lowe search over one partition.
fn search<M: Sequential>(m: &M, part: &Part<'_>, limits: &Limits<'_>) -> Search<M::State> {
    let ops = &part.ops;
    // Operations that are in every linearization: the `ok` ones, and unknown ones with an inherited
    // deadline. The search succeeds when all of them are placed.
    let required: Vec<bool> = part.deadlines.iter().map(Option::is_some).collect();
    let required_total = required.iter().filter(|&&r| r).count();
    if required_total == 0 {
        return Search::Linearizable;
    }
    // The order the system says it used, verified (never trusted): when it holds, no search.
    if crate::witness::verifies(m, ops) {
        return Search::Linearizable;
    }
    // An operation no order can place (a read of a value nobody wrote): refuted without a search,
    // which would first explore every order of what came before it.
    if let Some((blocking, why)) = m.impossible(ops) {
        let (state, candidates) = (m.init(), vec![blocking]);
        return Search::Stuck(Stuck {
            prefix: Vec::new(),
            state,
            blocking,
            candidates,
            impossible: Some(why),
        });
    }
    // A register whose writes carry unique values: decided in polynomial time when linearizable
    // (a violation is left to the search, which explains it).
    if m.is_register() && crate::zones::decide(ops) == Some(true) {
        return Search::Linearizable;
    }
    let mut entries = Entries::new(&part.ops, &part.deadlines);
    let mut state = m.init();
    let mut linearized = Bits::new(ops.len());
    let mut required_linearized = 0usize;
    let mut cache: Cache<M::State> = Cache::new(ops.len(), limits.cache_bytes);
    // The linearized calls, in order, with the state before each and the phase they were tried in.
    let mut calls: Vec<(u32, M::State, bool)> = Vec::with_capacity(ops.len());
    let mut best: Option<Stuck<M::State>> = None;
    let mut deepest = Hard { deepest: 0, cached: 0, frontier: Vec::new() };
    let mut steps = 0u64;
    let mut entry = entries.head();
    // Candidates are tried in two phases: first the required operations and the unknown ones whose
    // effect some `ok` operation observed (a read returned the value they wrote, or a successful CAS
    // expected it), then the other unknown ones. Both phases together try exactly the candidates
    // plain WGL tries, so the answer is the same; the order matters for speed. An unknown operation
    // that never took effect would otherwise be placed as early as possible, and the mistake found
    // only much later, after exploring everything in between; tried last, it is placed only where it
    // is needed. One whose value was seen most likely did take effect, and is best tried in its
    // natural place.
    let mut trying_unknown = false;
    let eager: Vec<bool> = {
        let mut observed: HashSet<&Value, FxBuildHasher> = HashSet::default();
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
            .zip(&required)
            .map(|(op, &required)| {
                let written =
                    op.input.as_pair().filter(|_| op.f == OpFn::Cas).map_or(&op.input, |(_, new)| new);
                required || observed.contains(written)
            })
            .collect()
    };
    // Interchangeable unknown operations: two unknown operations with the same function and argument
    // that have both been invoked, and neither has a deadline, can swap places in any linearization
    // (neither has a return to respect, and the model sees the same thing). So of such twins, the
    // earlier-invoked one is always placed first: an unknown operation is a candidate only once its
    // previous twin is linearized. Without this, k interchangeable timeouts would be explored in 2^k
    // subsets.
    let previous_twin: Vec<Option<usize>> = {
        let mut last: HashMap<(OpFn, &Value), usize, FxBuildHasher> = HashMap::default();
        ops.iter()
            .zip(&required)
            .enumerate()
            .map(|(i, (op, &required))| if required { None } else { last.insert((op.f, &op.input), i) })
            .collect()
    };

    loop {
        if required_linearized == required_total {
            if let Some(p) = limits.progress {
                p.linearized.store(calls.len(), Ordering::Relaxed);
                p.deepest.store(calls.len().max(deepest.deepest), Ordering::Relaxed);
                p.cached.store(cache.seen.len(), Ordering::Relaxed);
            }
            return Search::Linearizable;
        }
        // Looks at the clock on the first step too, so an expired deadline is noticed at once.
        if steps & (STEPS_PER_CLOCK_CHECK - 1) == 0 {
            let total_bytes = cache.report();
            if let Some(p) = limits.progress {
                p.linearized.store(calls.len(), Ordering::Relaxed);
                p.deepest.store(deepest.deepest, Ordering::Relaxed);
                p.cached.store(cache.seen.len(), Ordering::Relaxed);
            }
            if (limits.cancelled)() {
                return Search::Cancelled;
            }
            let out_of_time = Instant::now() >= limits.deadline;
            if (out_of_time || total_bytes > limits.cache_bytes_max) && steps == 0 {
                // The limit was reached before this partition began: it was not searched at all.
                return Search::Cancelled;
            }
            if out_of_time || total_bytes > limits.cache_bytes_max {
                deepest.cached = cache.seen.len();
                if deepest.frontier.is_empty() {
                    // No dead end met yet: the operations around the current point are the hard ones.
                    let mut first_return = entries.head();
                    while first_return != NIL && entries.list[first_return as usize].is_call {
                        first_return = entries.list[first_return as usize].next;
                    }
                    if first_return != NIL {
                        deepest.deepest = calls.len();
                        deepest.frontier = frontier(&entries, first_return);
                    }
                }
                return if out_of_time { Search::Timeout(deepest) } else { Search::OutOfMemory(deepest) };
            }
        }
        steps += 1;
        if entry == NIL {
            // Unreachable: a required operation not yet linearized still has its return entry in the
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
                    if cache.insert(&linearized, &next_state) {
                        calls.push((entry, std::mem::replace(&mut state, next_state), trying_unknown));
                        if required[e.op as usize] {
                            required_linearized += 1;
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
            // The eager candidates are exhausted; now the unknown ones, from the front again.
            trying_unknown = true;
            entry = entries.head();
        } else {
            // `e.op` must have taken effect by now but is not linearized, and no candidate helps: a
            // dead end.
            if best.as_ref().is_none_or(|b| calls.len() > b.prefix.len()) {
                best = Some(stuck_here(&entries, entry, &calls, &state));
            }
            if calls.len() > deepest.deepest || deepest.frontier.is_empty() {
                deepest.deepest = calls.len();
                deepest.frontier = frontier(&entries, entry);
            }
            let Some((call, previous, phase)) = calls.pop() else {
                return match best {
                    Some(stuck) => {
                        if let Some(p) = limits.progress {
                            p.deepest.store(deepest.deepest, Ordering::Relaxed);
                            p.cached.store(cache.seen.len(), Ordering::Relaxed);
                        }
                        Search::Stuck(stuck)
                    }
                    None => Search::Internal("failed without a stuck point"),
                };
            };
            state = previous;
            trying_unknown = phase;
            let op = entries.list[call as usize].op as usize;
            linearized.clear(op);
            if required[op] {
                required_linearized -= 1;
            }
            entries.unlift(call);
            entry = entries.list[call as usize].next;
        }
    }
}

/// The candidates before the return entry `ret` (its own operation among them: its call comes
/// first).
fn frontier(entries: &Entries, ret: u32) -> Vec<usize> {
    let mut ops = Vec::new();
    let mut cursor = entries.head();
    while cursor != NIL && cursor != ret {
        let e = entries.list[cursor as usize];
        if e.is_call {
            ops.push(e.op as usize);
        }
        cursor = e.next;
    }
    ops
}

/// Record a dead end: the prefix, the state, the returning operation and the candidates before it.
fn stuck_here<S: Clone>(entries: &Entries, ret: u32, calls: &[(u32, S, bool)], state: &S) -> Stuck<S> {
    let prefix = calls.iter().map(|(call, _, _)| entries.list[*call as usize].op as usize).collect();
    let candidates = frontier(entries, ret);
    Stuck {
        prefix,
        state: state.clone(),
        blocking: entries.list[ret as usize].op as usize,
        candidates,
        impossible: None,
    }
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
        let returns: Vec<Option<usize>> = ops.iter().map(|op| op.return_index).collect();
        let mut entries = Entries::new(&refs, &returns);
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

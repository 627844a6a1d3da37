//! Sequential models: what each object would do if operations ran one at a time.
//!
//! Linearizability is defined *relative to a sequential specification*: a history is linearizable
//! if its operations can be put in one order, consistent with real time, in which the specification
//! explains every result. A [`Sequential`] model is that specification as code – an initial state
//! and a `step` that applies one operation and says whether the operation's recorded result is
//! possible in that state.
//!
//! Conventions shared by all models (they follow Jepsen's, see `concord_core::history::OpFn`):
//!
//! * `step` receives an [`Operation`]; `output` is `None` when the outcome is unknown (`info`). An
//!   unknown-outcome operation that is placed in the order *did* take effect – so an unknown `cas` can
//!   only be placed where its comparison succeeds, an unknown `dequeue` only where the queue is not
//!   empty. (A comparison that fails has no effect, which is the same as never having happened, and
//!   the checker already allows unknown operations to never happen.)
//! * Absent is `nil`: a register or a key starts as `nil`, `delete` sets it back to `nil`.
//! * States implement `Eq + Hash` because the checker memoises (set of placed operations, state).
//!
//! | model      | functions                               | state            |
//! |------------|-----------------------------------------|------------------|
//! | `register` | read, write, cas                        | a value          |
//! | `kv`       | read (get), write (put), cas, delete, append | a value per key |
//! | `counter`  | add, read                               | an integer (starts at 0) |
//! | `set`      | add, read (returns all elements)        | a set of values  |
//! | `queue`    | enqueue, dequeue (`nil`: empty)          | a FIFO sequence  |
//! | `mutex`    | acquire, release (read as compare-and-sets of a lock) | held or free |
//! | `porcupine-kv` | get, put, append on strings (missing: `""`) | a string per key |
//!
//! `set` here is the linearizable set (named `linearizable-set` on the command line, where `set`
//! is Jepsen's final-read set checker, [`crate::jepsen::set`]). `mutex` is Knossos's mutex model;
//! `porcupine-kv` is Porcupine's KV model, the semantics of the classic course KV service (MIT
//! 6.5840's lab): values are strings, `append` concatenates, and a key never written reads as
//! the empty string – unlike `kv`, where it reads `nil` and `append` builds a list.
//!
//! **Cost.** For registers, counters and sets, memoisation keeps the search fast: states repeat, or
//! (for sets and counters) concurrent updates commute. For registers whose writes carry unique
//! values, [`Sequential::unknown_fates`] also turns most timed-out operations into either nothing
//! or ordinary operations with a deadline (see [`RegisterModel`]'s implementation). A **queue** is
//! the hard case, as it is for Knossos and Porcupine: the order of two concurrent enqueues shows
//! only when the elements are dequeued, possibly much later, and each wrong guess is explored
//! through all the states in between. Queue histories of a few dozen operations check in
//! milliseconds; long, highly concurrent ones may reach the time limit (the verdict is then
//! "unknown", never wrong).
//!
//! Every model is *per key*: when operations carry keys, each key is an independent object with its
//! own state, which is what lets the checker split the history by key (see
//! [`crate::linearizability`]). The `kv` model is therefore "a register with delete and append",
//! checked key by key.

use crate::ops::Operation;
use concord_core::history::{OpFn, Value};
use rustc_hash::{FxHashMap as FxMap, FxHashSet as FxSet};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

/// The models the checkers know, by name. This is the plain entry point; the generic search works on
/// any [`Sequential`] implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// A read/write/compare-and-set register.
    Register,
    /// A key-value map: get, put, delete, compare-and-set, append – each key a register.
    Kv,
    /// An integer counter: add (any increment, also negative), read.
    Counter,
    /// A grow-only set: add an element, read the whole set.
    Set,
    /// A FIFO queue: enqueue, dequeue.
    Queue,
    /// A lock: acquire, release (Knossos's `mutex`).
    Mutex,
    /// Porcupine's KV model: get, put, append on strings; a missing key reads `""`.
    PorcupineKv,
}

impl Model {
    pub const ALL: [Model; 7] = [
        Model::Register,
        Model::Kv,
        Model::Counter,
        Model::Set,
        Model::Queue,
        Model::Mutex,
        Model::PorcupineKv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::Kv => "kv",
            Model::Counter => "counter",
            Model::Set => "linearizable-set",
            Model::Queue => "queue",
            Model::Mutex => "mutex",
            Model::PorcupineKv => "porcupine-kv",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model name that is none of [`Model::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown model `{0}`; expected one of register (cas-register), kv, counter, linearizable-set (set), queue, mutex, porcupine-kv"
)]
pub struct UnknownModel(pub String);

impl FromStr for Model {
    type Err = UnknownModel;
    /// A model's name, or Knossos's name for it (`cas-register`); `set` is the linearizable set.
    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        let name = s.trim().to_ascii_lowercase();
        match name.as_str() {
            "cas-register" => return Ok(Model::Register),
            "set" => return Ok(Model::Set),
            _ => {}
        }
        Model::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| UnknownModel(s.to_string()))
    }
}

/// A sequential specification.
pub trait Sequential {
    type State: Clone + Eq + Hash + fmt::Debug;

    fn init(&self) -> Self::State;

    /// Whether this model can interpret `op` at all (right function, well-formed arguments). Called
    /// once per operation before the search, so that `step` can assume well-formed input.
    fn validate(&self, op: &Operation) -> Result<(), String>;

    /// The state after `op`, if `op` (with its recorded output, when known) can happen in `state`.
    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State>;

    /// The state, for humans.
    fn describe(&self, state: &Self::State) -> String;

    /// Why `op` cannot happen in `state`, for humans (called only when `step` returned `None`).
    fn why_not(&self, state: &Self::State, _op: &Operation) -> String {
        format!("not possible when the state is {}", self.describe(state))
    }

    /// What the search may assume about each unknown-outcome operation of one partition (`ops`, by
    /// invocation order; the entries for `ok` operations are ignored). The default assumes nothing:
    /// every unknown operation is [`UnknownFate::Free`]. A model may only return facts that hold in
    /// *every* linearization, so that the verdict cannot change (see "Unknown operations, just in
    /// time" in [`crate::linearizability`]).
    fn unknown_fates(&self, ops: &[&Operation]) -> Vec<UnknownFate> {
        vec![UnknownFate::Free; ops.len()]
    }

    /// An operation of one partition (`ops`, by invocation order) that no order of the operations
    /// can place, found without searching, and why: its index into `ops`. A model may only return
    /// an operation that is `ok` (it must be placed) and that fails in *every* state reachable by
    /// any subset and order of the partition's operations. The default finds none. Such a history
    /// is refuted at once instead of by exploring every order before the operation's return –
    /// which, for a read returning garbage late in a long concurrent history, can take longer than
    /// any time limit (Elle calls these "garbage reads").
    fn impossible(&self, _ops: &[&Operation]) -> Option<(usize, String)> {
        None
    }

    /// Whether a partition made only of reads and writes is a read/write register under this model
    /// (`nil` initially), so that [`crate::zones`] may decide it in polynomial time when its written
    /// values are unique.
    fn is_register(&self) -> bool {
        false
    }
}

/// What an unknown-outcome (`info`) operation may do, as far as the model can tell from the whole
/// partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownFate {
    /// Anything: it may take effect at any point after its invocation, or never.
    Free,
    /// If it is in some linearization, it can be removed from it and what remains is still one: the
    /// search may leave it out.
    Irrelevant,
    /// It is in every linearization, before the return of the operation at this event index (an `ok`
    /// operation observed what only it could have done). The search treats that return as its own.
    Before(usize),
}

/// The register and KV models: one value per key, `nil` when absent.
#[derive(Clone, Copy, Debug)]
pub struct RegisterModel {
    /// `kv` adds `delete` and `append` to `register`'s read/write/cas.
    pub with_delete_and_append: bool,
}

impl Sequential for RegisterModel {
    type State = Value;

    fn is_register(&self) -> bool {
        true
    }

    fn init(&self) -> Value {
        Value::Nil
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match op.f {
            OpFn::Read | OpFn::Write => Ok(()),
            OpFn::Cas if op.input.as_pair().is_some() => Ok(()),
            OpFn::Cas => Err(format!("cas needs a pair [expected new], got {}", op.input)),
            OpFn::Delete | OpFn::Append if self.with_delete_and_append => Ok(()),
            f => Err(format!(
                "the {} model has no `{f}`",
                if self.with_delete_and_append { "kv" } else { "register" }
            )),
        }
    }

    fn step(&self, state: &Value, op: &Operation) -> Option<Value> {
        match op.f {
            OpFn::Read => match &op.output {
                Some(read) if read == state => Some(state.clone()),
                Some(_) => None,
                // Unknown reads are dropped before the search; accepting them is still correct.
                None => Some(state.clone()),
            },
            OpFn::Write => Some(op.input.clone()),
            OpFn::Cas => {
                let (expected, new) = op.input.as_pair()?;
                (expected == state).then(|| new.clone())
            }
            OpFn::Delete => Some(Value::Nil),
            OpFn::Append => match state {
                Value::Nil => Some(Value::List(vec![op.input.clone()])),
                Value::List(items) => {
                    let mut items = items.clone();
                    items.push(op.input.clone());
                    Some(Value::List(items))
                }
                // Appending to a scalar is an error in the store, so it cannot have succeeded.
                _ => None,
            },
            _ => None,
        }
    }

    fn describe(&self, state: &Value) -> String {
        state.to_string()
    }

    /// Two facts about unknown writes, compare-and-sets and deletes of a register (without
    /// `append`, whose effect depends on the state in a way these arguments do not cover):
    ///
    /// * **Unobserved means irrelevant.** Let `u` write `v`, and let no other operation of the
    ///   partition observe `v` – no `ok` read returned it, no compare-and-set (of any outcome)
    ///   expects it. In a linearization containing `u`, the operation right after `u` runs in state
    ///   `v`, so it is not a read (it would return `v`) nor a compare-and-set (it would expect `v`):
    ///   it is a write or a delete, whose effect does not depend on the state. Removing `u` leaves
    ///   every later state unchanged and the real-time order respected, so the rest is still a
    ///   linearization; and an unknown operation may be left out. Repeated to a fixed point, since a
    ///   removed compare-and-set no longer observes its expected value.
    /// * **A unique value that was seen was written, in time** (the observation behind Gibbons &
    ///   Korach's polynomial check of registers with unique writes). Let `u` be the only operation of
    ///   the partition that writes `v`, `v` not `nil` (the initial value, also written by deletes),
    ///   and let an operation `x` that is in every linearization observe `v` (an `ok` read of `v`, an
    ///   `ok` compare-and-set expecting it, or such an unknown one already known to be in every
    ///   linearization). Then in every linearization the state is `v` just before `x`, so `u` comes
    ///   earlier: `u` is in it, before `x`'s (possibly inherited) return.
    fn unknown_fates(&self, ops: &[&Operation]) -> Vec<UnknownFate> {
        let mut fates = vec![UnknownFate::Free; ops.len()];
        if ops.iter().all(|op| op.is_ok()) || ops.iter().any(|op| op.f == OpFn::Append) {
            return fates;
        }
        const NIL: &Value = &Value::Nil;
        fn written(op: &Operation) -> Option<&Value> {
            match op.f {
                OpFn::Write => Some(&op.input),
                OpFn::Cas => op.input.as_pair().map(|(_, new)| new),
                OpFn::Delete => Some(NIL),
                _ => None,
            }
        }
        // What each operation observes: the value an `ok` read returned, the value a CAS expects.
        fn observes(op: &Operation) -> Option<&Value> {
            match op.f {
                OpFn::Read if op.is_ok() => op.output.as_ref(),
                OpFn::Cas => op.input.as_pair().map(|(expected, _)| expected),
                _ => None,
            }
        }
        let mut observers: FxMap<&Value, usize> = FxMap::default();
        for op in ops {
            if let Some(v) = observes(op) {
                *observers.entry(v).or_default() += 1;
            }
        }
        // Irrelevant: a worklist over the unknown writers, until nothing more is removed.
        let mut irrelevant = vec![false; ops.len()];
        loop {
            let mut changed = false;
            for (i, op) in ops.iter().enumerate() {
                if op.is_ok() || irrelevant[i] {
                    continue;
                }
                let Some(v) = written(op) else { continue };
                // An operation observing its own write (`cas [v v]`) counts as an observer: staying
                // conservative there costs nothing.
                if observers.get(v).copied().unwrap_or(0) == 0 {
                    irrelevant[i] = true;
                    changed = true;
                    if let Some(expected) = observes(op) {
                        if let Some(n) = observers.get_mut(expected) {
                            *n -= 1;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        // Before: the unique writer of each value, among the operations kept.
        let mut writer: FxMap<&Value, Option<usize>> = FxMap::default();
        for (i, op) in ops.iter().enumerate() {
            if irrelevant[i] {
                continue;
            }
            if let Some(v) = written(op) {
                writer.entry(v).and_modify(|w| *w = None).or_insert(Some(i));
            }
        }
        // `deadline[i]`: the event before which `i` takes effect in every linearization.
        let mut deadline: Vec<Option<usize>> = ops.iter().map(|op| op.return_index).collect();
        loop {
            let mut changed = false;
            for (x, op) in ops.iter().enumerate() {
                let (Some(d), false) = (deadline[x], irrelevant[x]) else { continue };
                let Some(v) = observes(op).filter(|&v| v != NIL) else { continue };
                let Some(&Some(u)) = writer.get(v) else { continue };
                if u != x && !ops[u].is_ok() && deadline[u].is_none_or(|old| d < old) {
                    deadline[u] = Some(d);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for (i, op) in ops.iter().enumerate() {
            if op.is_ok() {
                continue;
            }
            fates[i] = match (irrelevant[i], deadline[i]) {
                (true, _) => UnknownFate::Irrelevant,
                (false, Some(d)) => UnknownFate::Before(d),
                (false, None) => UnknownFate::Free,
            };
        }
        fates
    }

    /// An `ok` read returning, or an `ok` compare-and-set expecting, a value that is neither the
    /// initial `nil` nor written by any operation of the key (whatever its outcome): every state
    /// a register can reach is one of those values. Not with `append`, which builds new values.
    fn impossible(&self, ops: &[&Operation]) -> Option<(usize, String)> {
        if ops.iter().any(|op| op.f == OpFn::Append) {
            return None;
        }
        let mut possible: FxSet<&Value> = FxSet::default();
        possible.insert(&Value::Nil);
        for op in ops {
            match op.f {
                OpFn::Write => possible.insert(&op.input),
                OpFn::Cas => op.input.as_pair().is_some_and(|(_, new)| possible.insert(new)),
                _ => false,
            };
        }
        ops.iter().enumerate().filter(|(_, op)| op.is_ok()).find_map(|(i, op)| {
            let (what, value) = match op.f {
                OpFn::Read => ("read", op.output.as_ref()?),
                OpFn::Cas => ("expects", op.input.as_pair()?.0),
                _ => return None,
            };
            (!possible.contains(value)).then(|| {
                (i, format!("{what} {value}, a value no operation of this key writes (nor the initial nil)"))
            })
        })
    }

    fn why_not(&self, state: &Value, op: &Operation) -> String {
        match (op.f, &op.output, op.input.as_pair()) {
            (OpFn::Read, Some(read), _) => format!("read {read}, but the value is {state}"),
            (OpFn::Cas, _, Some((expected, _))) => format!("expects {expected}, but the value is {state}"),
            (OpFn::Append, _, _) => format!("cannot append to the scalar {state}"),
            _ => format!("not possible when the value is {state}"),
        }
    }
}

/// A counter starting at 0.
#[derive(Clone, Copy, Debug)]
pub struct CounterModel;

impl Sequential for CounterModel {
    type State = i64;

    fn init(&self) -> i64 {
        0
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match op.f {
            OpFn::Add if op.input.as_int().is_some() => Ok(()),
            OpFn::Add => Err(format!("add needs an integer, got {}", op.input)),
            OpFn::Read => match &op.output {
                None | Some(Value::Int(_)) => Ok(()),
                Some(v) => Err(format!("a counter read returns an integer, got {v}")),
            },
            f => Err(format!("the counter model has no `{f}`")),
        }
    }

    fn step(&self, state: &i64, op: &Operation) -> Option<i64> {
        match op.f {
            OpFn::Add => state.checked_add(op.input.as_int()?),
            OpFn::Read => match &op.output {
                Some(Value::Int(read)) => (read == state).then_some(*state),
                Some(_) => None,
                None => Some(*state),
            },
            _ => None,
        }
    }

    fn describe(&self, state: &i64) -> String {
        state.to_string()
    }

    fn why_not(&self, state: &i64, op: &Operation) -> String {
        match &op.output {
            Some(read) if op.f == OpFn::Read => format!("read {read}, but the counter is {state}"),
            _ => format!("not possible when the counter is {state}"),
        }
    }
}

/// A grow-only set: `add x`, and `read` returning all elements (a list, in any order).
#[derive(Clone, Copy, Debug)]
pub struct SetModel;

impl Sequential for SetModel {
    type State = BTreeSet<Value>;

    fn init(&self) -> BTreeSet<Value> {
        BTreeSet::new()
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match (op.f, &op.output) {
            (OpFn::Add, _) | (OpFn::Read, None | Some(Value::List(_)) | Some(Value::Nil)) => Ok(()),
            (OpFn::Read, Some(v)) => Err(format!("a set read returns a list, got {v}")),
            (f, _) => Err(format!("the set model has no `{f}`")),
        }
    }

    fn step(&self, state: &BTreeSet<Value>, op: &Operation) -> Option<BTreeSet<Value>> {
        match op.f {
            OpFn::Add => {
                let mut next = state.clone();
                next.insert(op.input.clone());
                Some(next)
            }
            OpFn::Read => match &op.output {
                None => Some(state.clone()),
                Some(Value::Nil) => state.is_empty().then(|| state.clone()),
                Some(Value::List(items)) => {
                    // Cheap length test first; then compare as sets, so that a read listing one
                    // element twice (and missing another) is not mistaken for the whole set.
                    let same = items.len() == state.len() && {
                        let read: BTreeSet<&Value> = items.iter().collect();
                        read.len() == state.len() && read.into_iter().eq(state.iter())
                    };
                    same.then(|| state.clone())
                }
                Some(_) => None,
            },
            _ => None,
        }
    }

    fn describe(&self, state: &BTreeSet<Value>) -> String {
        Value::List(state.iter().cloned().collect()).to_string()
    }
}

/// The value a held lock has in the compare-and-sets that stand for Jepsen's `:acquire`
/// (`cas [nil "locked"]`) and `:release` (`cas ["locked" nil]`); see [`crate::formats`].
pub const LOCKED: &str = "locked";

/// Knossos's mutex: `acquire` succeeds only when the lock is free, `release` only when it is held.
///
/// The readers turn Jepsen's `:acquire`/`:release` into the compare-and-sets they are (see
/// [`LOCKED`]), so that the operations fit Concord's history type; this model accepts only those two
/// and explains failures in the mutex's words. An acquire whose outcome is unknown may have taken the
/// lock, exactly as Knossos assumes.
#[derive(Clone, Copy, Debug)]
pub struct MutexModel;

impl MutexModel {
    /// `Some(true)` for an acquire, `Some(false)` for a release.
    fn is_acquire(op: &Operation) -> Option<bool> {
        let locked = Value::Str(LOCKED.to_string());
        match op.input.as_pair()? {
            (Value::Nil, new) if op.f == OpFn::Cas && *new == locked => Some(true),
            (expected, Value::Nil) if op.f == OpFn::Cas && *expected == locked => Some(false),
            _ => None,
        }
    }
}

impl Sequential for MutexModel {
    /// Whether the lock is held.
    type State = bool;

    fn init(&self) -> bool {
        false
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match Self::is_acquire(op) {
            Some(_) => Ok(()),
            None => Err(format!("the mutex model has only acquire and release, not `{op}`")),
        }
    }

    fn step(&self, held: &bool, op: &Operation) -> Option<bool> {
        let acquire = Self::is_acquire(op)?;
        (acquire != *held).then_some(acquire)
    }

    fn describe(&self, held: &bool) -> String {
        if *held { "held" } else { "free" }.to_string()
    }

    fn why_not(&self, held: &bool, op: &Operation) -> String {
        match (Self::is_acquire(op), held) {
            (Some(true), true) => "acquires the lock, but it is already held".into(),
            (Some(false), false) => "releases the lock, but it is not held".into(),
            _ => format!("not possible when the lock is {}", self.describe(held)),
        }
    }
}

/// Porcupine's KV model (the classic course KV service): per key a string, `""` until written;
/// `get` returns it, `put` replaces it, `append` concatenates to it.
#[derive(Clone, Copy, Debug)]
pub struct StringKvModel;

impl Sequential for StringKvModel {
    type State = String;

    fn init(&self) -> String {
        String::new()
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match (op.f, &op.input, &op.output) {
            (OpFn::Read, _, None | Some(Value::Str(_))) => Ok(()),
            (OpFn::Read, _, Some(other)) => {
                Err(format!("porcupine-kv gets return strings (\"\" for a missing key), got {other}"))
            }
            (OpFn::Write | OpFn::Append, Value::Str(_), _) => Ok(()),
            (OpFn::Write | OpFn::Append, other, _) => {
                Err(format!("porcupine-kv values are strings, got {other} in `{op}`"))
            }
            (f, _, _) => Err(format!("the porcupine-kv model has only get, put and append, not `{f}`")),
        }
    }

    fn step(&self, state: &String, op: &Operation) -> Option<String> {
        match (op.f, &op.input) {
            (OpFn::Read, _) => match &op.output {
                Some(Value::Str(read)) => (read == state).then(|| state.clone()),
                Some(_) => None,
                None => Some(state.clone()),
            },
            (OpFn::Write, Value::Str(value)) => Some(value.clone()),
            (OpFn::Append, Value::Str(suffix)) => Some(format!("{state}{suffix}")),
            _ => None,
        }
    }

    fn describe(&self, state: &String) -> String {
        format!("{state:?}")
    }

    fn why_not(&self, state: &String, op: &Operation) -> String {
        match &op.output {
            Some(read) if op.f == OpFn::Read => format!("got {read}, but the value is {state:?}"),
            _ => format!("not possible when the value is {state:?}"),
        }
    }
}

/// A FIFO queue: `enqueue x`; `dequeue` returns the oldest element, or `nil` when empty.
///
/// **Anonymous elements.** An element that no `ok` dequeue ever returns can only matter as "something
/// in the way" (an `ok` dequeue of another value cannot happen while it is at the front; an unknown
/// dequeue may remove it). So such elements are stored as `None`, all alike. This is exact – the model
/// never compares them with anything but an `ok` dequeue's output, which they never equal – and it
/// lets memoisation merge the states that differ only in the order of elements nobody observed,
/// which is most of the search for a long history.
#[derive(Clone, Debug, Default)]
pub struct QueueModel {
    /// Values returned by `ok` dequeues; `None`: keep every element (no anonymisation).
    pub observed: Option<BTreeSet<Value>>,
}

impl QueueModel {
    /// A queue model that anonymises the elements no `ok` dequeue in `ops` returns.
    pub fn for_operations(ops: &[Operation]) -> QueueModel {
        let observed =
            ops.iter().filter(|op| op.f == OpFn::Dequeue).filter_map(|op| op.output.clone()).collect();
        QueueModel { observed: Some(observed) }
    }
}

impl Sequential for QueueModel {
    type State = VecDeque<Option<Value>>;

    fn init(&self) -> Self::State {
        VecDeque::new()
    }

    fn validate(&self, op: &Operation) -> Result<(), String> {
        match op.f {
            OpFn::Enqueue | OpFn::Dequeue => Ok(()),
            f => Err(format!("the queue model has no `{f}`")),
        }
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f {
            OpFn::Enqueue => {
                let mut next = state.clone();
                let seen = match &self.observed {
                    Some(observed) => observed.contains(&op.input),
                    None => true,
                };
                next.push_back(seen.then(|| op.input.clone()));
                Some(next)
            }
            OpFn::Dequeue => match (&op.output, state.front()) {
                (Some(Value::Nil), None) => Some(state.clone()),
                (Some(got), Some(Some(front))) if got == front => {
                    Some(state.iter().skip(1).cloned().collect())
                }
                // Unknown outcome: if it took effect it removed the front element, whatever it was.
                (None, Some(_)) => Some(state.iter().skip(1).cloned().collect()),
                _ => None,
            },
            _ => None,
        }
    }

    fn describe(&self, state: &Self::State) -> String {
        let items: Vec<String> =
            state.iter().map(|v| v.as_ref().map_or("_".to_string(), |v| v.to_string())).collect();
        format!("[{}] (front first; _: an element no dequeue returned)", items.join(" "))
    }

    fn why_not(&self, state: &Self::State, op: &Operation) -> String {
        match (&op.output, state.front()) {
            (Some(got), Some(Some(front))) => format!("dequeued {got}, but the head of the queue is {front}"),
            (Some(got), Some(None)) => format!("dequeued {got}, but the head is an element never dequeued"),
            (Some(got), None) => format!("dequeued {got}, but the queue is empty"),
            _ => format!("not possible when the queue is {}", self.describe(state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Outcome;
    use concord_core::time::Time;

    fn op(f: OpFn, input: Value, output: Option<Value>) -> Operation {
        Operation {
            process: 0,
            f,
            key: None,
            input,
            outcome: if output.is_some() { Outcome::Ok } else { Outcome::Info },
            output,
            call_index: 0,
            return_index: None,
            call_time: Time(0),
            return_time: None,
            witness: None,
        }
    }

    #[test]
    fn register_cas_only_succeeds_on_match() {
        let m = RegisterModel { with_delete_and_append: false };
        let cas = op(OpFn::Cas, Value::pair(Value::Int(1), Value::Int(2)), Some(Value::Nil));
        assert_eq!(m.step(&Value::Int(1), &cas), Some(Value::Int(2)));
        assert_eq!(m.step(&Value::Int(3), &cas), None);
        assert!(m.validate(&op(OpFn::Delete, Value::Nil, None)).is_err());
    }

    #[test]
    fn queue_is_fifo() {
        let m = QueueModel::default();
        let q: VecDeque<Option<Value>> = [Some(Value::Int(1)), Some(Value::Int(2))].into_iter().collect();
        assert!(m.step(&q, &op(OpFn::Dequeue, Value::Nil, Some(Value::Int(2)))).is_none());
        let after = m.step(&q, &op(OpFn::Dequeue, Value::Nil, Some(Value::Int(1)))).unwrap();
        assert_eq!(after.front(), Some(&Some(Value::Int(2))));
    }

    #[test]
    fn set_read_must_match_exactly() {
        let m = SetModel;
        let s: BTreeSet<Value> = [Value::Int(1), Value::Int(2)].into_iter().collect();
        let read = |items: Vec<i64>| {
            op(OpFn::Read, Value::Nil, Some(Value::List(items.into_iter().map(Value::Int).collect())))
        };
        assert!(m.step(&s, &read(vec![2, 1])).is_some());
        assert!(m.step(&s, &read(vec![1])).is_none());
        assert!(m.step(&s, &read(vec![1, 1])).is_none());
    }
}

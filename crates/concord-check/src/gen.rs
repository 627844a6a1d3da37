//! Deterministic generators of linearizable histories, and mutations that break them.
//!
//! Used by the property tests and the benchmarks – and by anyone who wants to see what the checker
//! does with a given shape of history. A generated history is linearizable **by construction**: the
//! generator runs a correct sequential object and gives every operation a linearization point
//! between its invocation and its completion:
//!
//! 1. a random client is picked at each step (this random interleaving is the concurrency);
//! 2. an idle client invokes a new operation; a client whose operation is pending applies it to the
//!    object (its linearization point) and, at a later step, completes it with the true result;
//! 3. some operations time out (`info`): either after they took effect, or before – and then they
//!    take effect later ("late"), or never. A client that saw `info` continues as a new process, as
//!    Jepsen's do.
//!
//! Everything is drawn from one seeded [`Rng`], so a seed names a history exactly.

use concord_core::hash::SplitMix64;
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::time::Time;
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// SplitMix64 ([`concord_core::hash::SplitMix64`]): tiny, fast, and good enough for choosing
/// interleavings (not for cryptography).
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// What the generated clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// read / write / cas on registers; `keys == 0` means one register without a key.
    Register { keys: usize },
    /// `add` of small increments and `read` of one counter.
    Counter,
    /// `add` of unique elements and `read` of the whole set.
    Set,
    /// `enqueue` of unique elements and `dequeue`.
    Queue,
}

/// The seed of the benchmark histories (`benches/check.rs`, `examples/gen_history.rs`).
pub const BENCH_SEED: u64 = 20_240_601;

/// The benchmark's KV history: 5 clients, 10 000 read/write/cas operations over 100 keys, values
/// 0..10, 1% unknown outcomes. Returns the shape and which read the "not linearizable" variant
/// corrupts.
pub fn bench_kv() -> (GenConfig, usize) {
    let config = GenConfig {
        seed: BENCH_SEED,
        workload: Workload::Register { keys: 100 },
        clients: 5,
        ops: 10_000,
        values: 10,
        info_percent: 1,
        cas_percent: 20,
    };
    (config, 4_321)
}

/// The benchmark's single-register history: 5 clients, 1 000 operations, 20% CAS, 2% unknown
/// outcomes, values `0..values` (`0`: every write a fresh value). Same return as [`bench_kv`].
pub fn bench_register(values: i64) -> (GenConfig, usize) {
    let config = GenConfig {
        seed: BENCH_SEED,
        workload: Workload::Register { keys: 0 },
        clients: 5,
        ops: 1_000,
        values,
        info_percent: 2,
        cas_percent: 20,
    };
    (config, 321)
}

/// The benchmark's hard KV history, shaped like the Raft runs that used to end undecided (issue 24,
/// `scenarios/raft-hard.toml`): 12 clients over 10 keys, every write a fresh value, 20% CAS, and `info`
/// outcomes at `info_percent` – far more than the plain KV benchmark, each one a write that took
/// effect before the timeout, later, or never. Same return as [`bench_kv`].
pub fn bench_hard(ops: usize, info_percent: u32) -> (GenConfig, usize) {
    let config = GenConfig {
        seed: BENCH_SEED,
        workload: Workload::Register { keys: 10 },
        clients: 12,
        ops,
        values: 0,
        info_percent,
        cas_percent: 20,
    };
    (config, ops / 3)
}

/// The shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub workload: Workload,
    /// Concurrent clients (each one operation at a time).
    pub clients: usize,
    /// Operations to invoke in total.
    pub ops: usize,
    /// Register values are drawn from `0..values`; `0` means every write writes a fresh value
    /// (which makes stale reads detectable by construction).
    pub values: i64,
    /// Percentage of operations that time out (`info`).
    pub info_percent: u32,
    /// Percentage of register operations that are `cas` (the rest are split between read and write).
    pub cas_percent: u32,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            seed: 0,
            workload: Workload::Register { keys: 0 },
            clients: 5,
            ops: 100,
            values: 5,
            info_percent: 2,
            cas_percent: 20,
        }
    }
}

/// How a pending operation is going to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Ok,
    /// Takes effect, then the client times out.
    InfoAfterEffect,
    /// The client times out first; the operation takes effect later, or never.
    InfoLate,
    InfoNever,
}

struct Pending {
    process: u64,
    op: Op,
    fate: Fate,
    /// `Some((completion kind, completion value))` once applied.
    result: Option<(EventType, Value)>,
}

/// The true object the clients talk to.
enum Object {
    Registers(BTreeMap<Option<String>, Value>),
    Counter(i64),
    Set(BTreeSet<Value>),
    Queue(VecDeque<Value>),
}

impl Object {
    /// Apply `op` at its linearization point; the completion it earns.
    fn apply(&mut self, op: &Op) -> (EventType, Value) {
        match self {
            Object::Registers(map) => {
                let current = map.entry(op.key.clone()).or_default();
                match op.f {
                    OpFn::Read => (EventType::Ok, current.clone()),
                    OpFn::Write => {
                        *current = op.value.clone();
                        (EventType::Ok, op.value.clone())
                    }
                    OpFn::Cas => match op.value.as_pair() {
                        Some((expected, new)) if expected == current => {
                            *current = new.clone();
                            (EventType::Ok, op.value.clone())
                        }
                        _ => (EventType::Fail, op.value.clone()),
                    },
                    _ => (EventType::Fail, op.value.clone()),
                }
            }
            Object::Counter(n) => match op.f {
                OpFn::Add => {
                    *n += op.value.as_int().unwrap_or(0);
                    (EventType::Ok, op.value.clone())
                }
                _ => (EventType::Ok, Value::Int(*n)),
            },
            Object::Set(set) => match op.f {
                OpFn::Add => {
                    set.insert(op.value.clone());
                    (EventType::Ok, op.value.clone())
                }
                _ => (EventType::Ok, Value::List(set.iter().cloned().collect())),
            },
            Object::Queue(queue) => match op.f {
                OpFn::Enqueue => {
                    queue.push_back(op.value.clone());
                    (EventType::Ok, op.value.clone())
                }
                _ => (EventType::Ok, queue.pop_front().unwrap_or(Value::Nil)),
            },
        }
    }

    fn current(&self, key: &Option<String>) -> Value {
        match self {
            Object::Registers(map) => map.get(key).cloned().unwrap_or_default(),
            _ => Value::Nil,
        }
    }
}

/// Generate a linearizable history (see the module docs).
pub fn history(config: &GenConfig) -> History {
    let mut rng = Rng::new(config.seed);
    let clients = config.clients.max(1);
    let mut object = match config.workload {
        Workload::Register { .. } => Object::Registers(BTreeMap::new()),
        Workload::Counter => Object::Counter(0),
        Workload::Set => Object::Set(BTreeSet::new()),
        Workload::Queue => Object::Queue(VecDeque::new()),
    };
    let mut history = History::default();
    history.events.reserve(config.ops * 2);
    let mut pending: Vec<Option<Pending>> = (0..clients).map(|_| None).collect();
    let mut process_of: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut late: Vec<Op> = Vec::new();
    let mut fresh = 0i64; // last unique value handed out
    let mut invoked = 0usize;
    let mut time_ns = 0u64;

    loop {
        let all_idle = pending.iter().all(Option::is_none);
        if invoked >= config.ops && all_idle {
            break;
        }
        time_ns += 1_000 + rng.below(1_000);
        // Now and then an operation that timed out earlier takes effect.
        if !late.is_empty() && rng.chance(10) {
            let op = late.swap_remove(rng.below(late.len() as u64) as usize);
            object.apply(&op);
            continue;
        }
        let client = rng.below(clients as u64) as usize;
        match pending[client].take() {
            None if invoked < config.ops => {
                let op = random_op(config, &mut rng, &object, &mut fresh);
                let fate = if rng.chance(config.info_percent) {
                    match rng.below(3) {
                        0 => Fate::InfoAfterEffect,
                        1 => Fate::InfoLate,
                        _ => Fate::InfoNever,
                    }
                } else {
                    Fate::Ok
                };
                history.push(process_of[client], EventType::Invoke, invoke_form(&op), Time(time_ns));
                pending[client] = Some(Pending { process: process_of[client], op, fate, result: None });
                invoked += 1;
            }
            None => {}
            Some(mut p) => match (p.fate, &p.result) {
                (Fate::Ok | Fate::InfoAfterEffect, None) => {
                    p.result = Some(object.apply(&p.op));
                    pending[client] = Some(p);
                }
                (Fate::Ok, Some((kind, value))) => {
                    let op = Op { f: p.op.f, key: p.op.key.clone(), value: value.clone() };
                    history.push(p.process, *kind, op, Time(time_ns));
                }
                (Fate::InfoAfterEffect, Some(_)) | (Fate::InfoLate | Fate::InfoNever, _) => {
                    if p.fate == Fate::InfoLate {
                        late.push(p.op.clone());
                    }
                    history.push(p.process, EventType::Info, invoke_form(&p.op), Time(time_ns));
                    // As in Jepsen: a client that lost track of an operation gets a new identity.
                    process_of[client] = next_process;
                    next_process += 1;
                }
            },
        }
    }
    history
}

/// The invocation's form of `op`: reads and dequeues carry no value until they complete.
fn invoke_form(op: &Op) -> Op {
    match op.f {
        OpFn::Read | OpFn::Dequeue => Op { f: op.f, key: op.key.clone(), value: Value::Nil },
        _ => op.clone(),
    }
}

fn random_op(config: &GenConfig, rng: &mut Rng, object: &Object, fresh: &mut i64) -> Op {
    let value = |rng: &mut Rng, fresh: &mut i64| {
        if config.values <= 0 {
            *fresh += 1;
            *fresh
        } else {
            rng.below(config.values as u64) as i64
        }
    };
    match config.workload {
        Workload::Register { keys } => {
            let key = (keys > 0).then(|| format!("k{}", rng.below(keys as u64)));
            let roll = rng.below(100) as u32;
            if roll < config.cas_percent {
                // Half the time the client expects the current value, so that many CASes succeed.
                let expected = match object.current(&key) {
                    Value::Int(current) if rng.chance(50) => current,
                    _ if config.values <= 0 => rng.below((*fresh + 1) as u64) as i64,
                    _ => value(rng, fresh),
                };
                let new = value(rng, fresh);
                Op { f: OpFn::Cas, key, value: Value::pair(Value::Int(expected), Value::Int(new)) }
            } else if roll < config.cas_percent + (100 - config.cas_percent) / 2 {
                Op { f: OpFn::Read, key, value: Value::Nil }
            } else {
                Op { f: OpFn::Write, key, value: Value::Int(value(rng, fresh)) }
            }
        }
        Workload::Counter => {
            if rng.chance(50) {
                Op { f: OpFn::Add, key: None, value: Value::Int(1 + rng.below(5) as i64) }
            } else {
                Op { f: OpFn::Read, key: None, value: Value::Nil }
            }
        }
        Workload::Set => {
            if rng.chance(60) {
                *fresh += 1;
                Op { f: OpFn::Add, key: None, value: Value::Int(*fresh) }
            } else {
                Op { f: OpFn::Read, key: None, value: Value::Nil }
            }
        }
        Workload::Queue => {
            if rng.chance(55) {
                *fresh += 1;
                Op { f: OpFn::Enqueue, key: None, value: Value::Int(*fresh) }
            } else {
                Op { f: OpFn::Dequeue, key: None, value: Value::Nil }
            }
        }
    }
}

/// A value no generated history ever contains.
pub const NEVER_WRITTEN: i64 = -777_777;

/// Make the `nth` (modulo their number) `ok` read return a value that was never written. Returns the
/// event index changed, or `None` if the history has no `ok` read. The result is never linearizable.
pub fn corrupt_read_never_written(history: &mut History, nth: usize) -> Option<usize> {
    let reads: Vec<usize> = ok_reads(history);
    let index = *reads.get(nth % reads.len().max(1))?;
    history.events[index].op.value = Value::Int(NEVER_WRITTEN);
    Some(index)
}

/// Make an `ok` read return a *stale* value: the value of a write that completed, and was
/// overwritten by another write that also completed, before the read was invoked. With fresh values
/// (`values: 0`, so no value is written twice) and no CAS or unknown-outcome writes on that key, the
/// result is never linearizable. Picks the `nth` (modulo) read for which such a write exists;
/// returns the event index changed.
pub fn corrupt_read_stale(history: &mut History, nth: usize) -> Option<usize> {
    let ops = crate::ops::prepare(history).ok()?;
    // Keys on which every write is a plain write that completed `ok`.
    let mut clean: BTreeMap<Option<&str>, bool> = BTreeMap::new();
    for op in &ops {
        let entry = clean.entry(op.key.as_deref()).or_insert(true);
        if op.f != OpFn::Read && (op.f != OpFn::Write || !op.is_ok()) {
            *entry = false;
        }
    }
    let mut candidates: Vec<(usize, Value)> = Vec::new();
    for read in ops.iter().filter(|op| op.f == OpFn::Read && op.is_ok()) {
        if !clean.get(&read.key.as_deref()).copied().unwrap_or(false) {
            continue;
        }
        let writes = || ops.iter().filter(|w| w.f == OpFn::Write && w.key == read.key);
        // An old write followed (in real time) by a newer one, both before the read.
        let stale = writes().find(|old| {
            old.precedes(read) && writes().any(|newer| old.precedes(newer) && newer.precedes(read))
        });
        if let (Some(old), Some(r)) = (stale, read.return_index) {
            candidates.push((r, old.input.clone()));
        }
    }
    let (index, value) = candidates.get(nth % candidates.len().max(1))?.clone();
    history.events[index].op.value = value;
    Some(index)
}

fn ok_reads(history: &History) -> Vec<usize> {
    history
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventType::Ok && e.op.f == OpFn::Read)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_history() {
        let config = GenConfig { seed: 42, ops: 200, info_percent: 10, ..GenConfig::default() };
        assert_eq!(history(&config), history(&config));
        let other = GenConfig { seed: 43, ..config };
        assert_ne!(history(&config), history(&other));
    }

    #[test]
    fn histories_are_well_formed_and_complete() {
        let config = GenConfig { seed: 7, ops: 500, info_percent: 10, ..GenConfig::default() };
        let h = history(&config);
        let ops = crate::ops::prepare(&h).unwrap();
        let invokes = h.events.iter().filter(|e| e.kind == EventType::Invoke).count();
        assert_eq!(invokes, 500);
        assert!(ops.iter().any(|op| !op.is_ok()), "10% info should give some unknown outcomes");
    }
}

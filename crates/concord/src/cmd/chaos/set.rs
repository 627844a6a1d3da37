//! The `set` workload: clients add unique integers to sets over the Redis door (`SADD`) and read
//! whole sets (`SMEMBERS`, at linearizable consistency); after the faults every set is read
//! through every node. Checked like Jepsen's set checkers ([`check`]).
//!
//! Sets are used a few at a time and then retired, like the register workload's keys: op `n`
//! goes to one of the `keys` sets of window `n / (keys · ops_per_key)`. Every element is the op's
//! own number, so it is added once in the whole run and a read names exactly the adds it saw.
//!
//! The history is an ordinary [`History`]: an add is `{"f": "add", "key": set, "value": e}`, a
//! read `{"f": "read", "key": set, "value": [e, …]}` (sorted), so `concord check
//! OUT/history.jsonl --model set` also checks it for linearizability.

use super::resp::{cmd, Answer, Conn};
use super::workload::{Recorder, Register};
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::Time;
use concord_server::testkit::Reply;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The set of op `n` (`pick` chooses within the window): the register workload's windows.
pub fn key(shape: &Register, n: u64, pick: u64) -> String {
    let window = n / (shape.keys * shape.ops_per_key).max(1);
    format!("s{}", window * shape.keys + pick % shape.keys)
}

fn add(key: &str, element: i64) -> Op {
    Op { f: OpFn::Add, key: Some(key.to_string()), value: Value::Int(element) }
}

/// `SMEMBERS`' elements, sorted; `None` if the reply is not a list of integers.
fn members(reply: &Reply) -> Option<Vec<i64>> {
    let mut elements =
        reply.texts().ok()?.iter().map(|t| t.parse::<i64>().ok()).collect::<Option<Vec<_>>>()?;
    elements.sort_unstable();
    Some(elements)
}

fn list(elements: &[i64]) -> Value {
    Value::List(elements.iter().map(|&e| Value::Int(e)).collect())
}

/// Read one set: `Some(elements)` or `None` (refused, unknown, or not a set's answer).
async fn read(conn: &mut Conn, key: &str) -> Option<Vec<i64>> {
    match conn.run(&[cmd(&["SMEMBERS", key])], false).await {
        Answer::Reply(reply) => members(&reply),
        _ => None,
    }
}

/// One client, bound to node `c mod nodes`: 4 adds for every read, until `stop`.
pub async fn client(
    c: usize,
    nodes: Vec<SocketAddr>,
    shape: Register,
    seed: u64,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
    let mut process = rec.process();
    let mut conn = Conn::new(nodes[c % nodes.len()], shape.timeout);
    while !stop.load(Ordering::SeqCst) {
        let n = rec.next_op();
        let key = key(&shape, n, rng.gen());
        if rng.gen_range(0..5) == 0 {
            let op = Op::read(key.clone());
            rec.record(process, EventType::Invoke, op.clone());
            match read(&mut conn, &key).await {
                Some(elements) => rec.record(process, EventType::Ok, Op { value: list(&elements), ..op }),
                None => {
                    rec.record(process, EventType::Fail, op);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        } else {
            let op = add(&key, n as i64);
            rec.record(process, EventType::Invoke, op.clone());
            match conn.run(&[cmd(&["SADD", &key, &n.to_string()])], true).await {
                // 1 (added) – or 0 (already there), which a unique element can only be after a
                // retry inside the cluster: either way the element is in the set.
                Answer::Reply(Reply::Text(t)) if t == "1" || t == "0" => {
                    rec.record(process, EventType::Ok, op)
                }
                Answer::Refused(_) => {
                    rec.record(process, EventType::Fail, op);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    rec.record(process, EventType::Info, op);
                    // A process with an operation in doubt never invokes again.
                    process = rec.process();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// One final read: which node, which set, what it held.
#[derive(Clone, Debug, Serialize)]
pub struct FinalRead {
    pub node: usize,
    pub key: String,
    pub elements: Vec<i64>,
}

/// After the faults: read every set through every node until each read succeeds (or `within`
/// passes), recording the reads. Returns the reads, and the ones that never succeeded.
pub async fn final_reads(
    nodes: &[SocketAddr],
    keys: &[String],
    rec: &Recorder,
    within: Duration,
) -> (Vec<FinalRead>, Vec<String>) {
    let deadline = Instant::now() + within;
    let (mut reads, mut missing) = (Vec::new(), Vec::new());
    for (i, &addr) in nodes.iter().enumerate() {
        let process = rec.process();
        let mut conn = Conn::new(addr, Duration::from_secs(5));
        for key in keys {
            loop {
                let op = Op::read(key.clone());
                rec.record(process, EventType::Invoke, op.clone());
                if let Some(elements) = read(&mut conn, key).await {
                    rec.record(process, EventType::Ok, Op { value: list(&elements), ..op });
                    reads.push(FinalRead { node: i + 1, key: key.clone(), elements });
                    break;
                }
                rec.record(process, EventType::Fail, op);
                if Instant::now() >= deadline {
                    missing.push(format!("node {}: {key}", i + 1));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    (reads, missing)
}

/// What the set checker found, per run (every set together).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SetResult {
    /// Adds invoked, acknowledged (ok), refused (fail), in doubt (info).
    pub attempted: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    /// Acknowledged adds missing from a final read: lost writes. `"set/element (node n)"`.
    pub lost: Vec<String>,
    /// Elements in a read that no one tried to add.
    pub unexpected: Vec<String>,
    /// Elements in a read whose add was refused (`fail`: it certainly did not happen).
    pub failed_but_present: Vec<String>,
    /// Indeterminate adds that the final reads show: they did happen.
    pub recovered: usize,
    /// Indeterminate adds the final reads do not show: they did not (or are lost: no telling).
    pub not_recovered: usize,
    /// Reads (during the run or final) missing an element whose add had been acknowledged, or
    /// that an earlier read had returned, before the read began: stale or lost. Linearizable
    /// reads must not miss them.
    pub stale: Vec<String>,
}

impl SetResult {
    pub fn valid(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.failed_but_present.is_empty()
            && self.stale.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} adds: {} acknowledged, {} failed, {} indeterminate ({} recovered, {} not); {} lost, {} unexpected, {} failed but present, {} stale reads",
            self.attempted,
            self.acknowledged,
            self.failed,
            self.indeterminate,
            self.recovered,
            self.not_recovered,
            self.lost.len(),
            self.unexpected.len(),
            self.failed_but_present.len(),
            self.stale.len()
        );
        for (name, items) in [
            ("lost", &self.lost),
            ("unexpected", &self.unexpected),
            ("failed but present", &self.failed_but_present),
            ("stale", &self.stale),
        ] {
            if !items.is_empty() {
                let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
                s.push_str(&format!(
                    "\n{name}: {}{}",
                    shown.join("; "),
                    if items.len() > 10 { "; …" } else { "" }
                ));
            }
        }
        s
    }
}

/// Jepsen's set checker, per set, with set-full's read-by-read check added:
///
/// * every acknowledged add is in every final read of its set (else **lost**);
/// * no read holds an element nobody tried to add (**unexpected**) or one whose add was refused
///   (**failed but present**);
/// * indeterminate adds the final reads show are **recovered** (counted, not an error);
/// * every read (reads are linearizable) holds each element that was acknowledged – or returned
///   by a read that completed – before the read was invoked (else a **stale** read).
pub fn check(history: &History, finals: &[FinalRead]) -> SetResult {
    #[derive(Default)]
    struct Adds {
        outcome: BTreeMap<i64, EventType>,
        /// When each element was first known to be in: its add's ok, or the end of a read that
        /// returned it.
        known: BTreeMap<i64, Time>,
    }
    let mut sets: BTreeMap<String, Adds> = BTreeMap::new();
    // (set, invoke time, elements, completion time) of each ok read.
    let mut reads: Vec<(String, Time, Vec<i64>, Time)> = Vec::new();
    let mut open: BTreeMap<u64, (Op, Time)> = BTreeMap::new();
    for e in &history.events {
        match e.kind {
            EventType::Invoke => {
                if e.op.f == OpFn::Add {
                    let key = e.op.key.clone().unwrap_or_default();
                    if let Some(x) = e.op.value.as_int() {
                        sets.entry(key).or_default().outcome.insert(x, EventType::Info);
                    }
                }
                open.insert(e.process, (e.op.clone(), e.time));
            }
            kind => {
                let Some((op, invoked)) = open.remove(&e.process) else { continue };
                let key = op.key.clone().unwrap_or_default();
                match (op.f, kind) {
                    (OpFn::Add, EventType::Ok | EventType::Fail) => {
                        if let Some(x) = op.value.as_int() {
                            let adds = sets.entry(key).or_default();
                            adds.outcome.insert(x, kind);
                            if kind == EventType::Ok {
                                adds.known.entry(x).or_insert(e.time);
                            }
                        }
                    }
                    (OpFn::Read, EventType::Ok) => {
                        let elements: Vec<i64> = match &e.op.value {
                            Value::List(items) => items.iter().filter_map(Value::as_int).collect(),
                            _ => vec![],
                        };
                        reads.push((key, invoked, elements, e.time));
                    }
                    _ => {}
                }
            }
        }
    }
    for (key, _, elements, done) in &reads {
        let adds = sets.entry(key.clone()).or_default();
        for &x in elements {
            let t = adds.known.entry(x).or_insert(*done);
            *t = (*t).min(*done);
        }
    }

    let mut r = SetResult::default();
    for adds in sets.values() {
        r.attempted += adds.outcome.len();
        r.acknowledged += adds.outcome.values().filter(|k| **k == EventType::Ok).count();
        r.failed += adds.outcome.values().filter(|k| **k == EventType::Fail).count();
        r.indeterminate += adds.outcome.values().filter(|k| **k == EventType::Info).count();
    }
    // Elements nobody added, or whose add failed, in any read – of the run or final (the final
    // reads are in the history too when `concord chaos` records them; not necessarily in tests).
    let mut seen_unexpected = BTreeSet::new();
    let all_reads = reads
        .iter()
        .map(|(key, _, elements, _)| (key, elements))
        .chain(finals.iter().map(|f| (&f.key, &f.elements)));
    for (key, elements) in all_reads {
        for &x in elements {
            match sets.get(key).and_then(|adds| adds.outcome.get(&x)) {
                None if seen_unexpected.insert((key.clone(), x)) => r.unexpected.push(format!("{key}/{x}")),
                Some(EventType::Fail) if seen_unexpected.insert((key.clone(), x)) => {
                    r.failed_but_present.push(format!("{key}/{x}"))
                }
                _ => {}
            }
        }
    }
    for (key, invoked, elements, _) in &reads {
        let adds = &sets[key];
        let present: BTreeSet<i64> = elements.iter().copied().collect();
        let missed: Vec<i64> = adds
            .known
            .iter()
            .filter(|(x, t)| **t < *invoked && !present.contains(*x))
            .map(|(x, _)| *x)
            .collect();
        if !missed.is_empty() {
            let t = invoked.0 as f64 / 1e9;
            r.stale.push(format!("read of {key} at {t:.3} s misses {missed:?}"));
        }
    }
    let mut in_final: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for f in finals {
        let present: BTreeSet<i64> = f.elements.iter().copied().collect();
        in_final.entry(&f.key).or_default().extend(&present);
        if let Some(adds) = sets.get(&f.key) {
            for (x, kind) in &adds.outcome {
                if *kind == EventType::Ok && !present.contains(x) {
                    r.lost.push(format!("{}/{x} (node {})", f.key, f.node));
                }
            }
        }
    }
    for (key, adds) in &sets {
        let present = in_final.get(key.as_str());
        for (x, kind) in &adds.outcome {
            if *kind == EventType::Info {
                if present.is_some_and(|p| p.contains(x)) {
                    r.recovered += 1;
                } else {
                    r.not_recovered += 1;
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time(n * 1_000_000)
    }

    fn read_ok(h: &mut History, p: u64, key: &str, at: u64, elements: &[i64]) {
        h.push(p, EventType::Invoke, Op::read(key), ms(at));
        h.push(p, EventType::Ok, Op { value: list(elements), ..Op::read(key) }, ms(at + 1));
    }

    /// Adds 1 (ok), 2 (info), 3 (fail); one read during the run.
    fn base() -> History {
        let mut h = History::default();
        h.push(0, EventType::Invoke, add("s0", 1), ms(0));
        h.push(0, EventType::Ok, add("s0", 1), ms(2));
        h.push(1, EventType::Invoke, add("s0", 2), ms(3));
        h.push(1, EventType::Info, add("s0", 2), ms(9));
        h.push(2, EventType::Invoke, add("s0", 3), ms(4));
        h.push(2, EventType::Fail, add("s0", 3), ms(5));
        read_ok(&mut h, 3, "s0", 10, &[1, 2]);
        h
    }

    fn finals(elements: &[i64]) -> Vec<FinalRead> {
        (1..=3).map(|node| FinalRead { node, key: "s0".into(), elements: elements.to_vec() }).collect()
    }

    #[test]
    fn a_clean_history_is_valid_and_counts_the_recovered_add() {
        let r = check(&base(), &finals(&[1, 2]));
        assert!(r.valid(), "{}", r.summary());
        assert_eq!((r.attempted, r.acknowledged, r.failed, r.indeterminate), (3, 1, 1, 1));
        assert_eq!((r.recovered, r.not_recovered), (1, 0));
    }

    #[test]
    fn a_lost_add_is_invalid() {
        let mut f = finals(&[1, 2]);
        f[1].elements = vec![2]; // node 2 lost the acknowledged 1
        let r = check(&base(), &f);
        assert!(!r.valid());
        assert_eq!(r.lost, vec!["s0/1 (node 2)"]);
    }

    #[test]
    fn unexpected_and_failed_elements_are_invalid() {
        let r = check(&base(), &finals(&[1, 2, 3, 99]));
        assert!(!r.valid());
        assert_eq!(r.unexpected, vec!["s0/99"]);
        assert_eq!(r.failed_but_present, vec!["s0/3"]);
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_or_seen_element_is_stale() {
        // 1 was acknowledged at 2 ms; a read from 20 ms does not hold it.
        let mut h = base();
        read_ok(&mut h, 4, "s0", 20, &[2]);
        let r = check(&h, &finals(&[1, 2]));
        assert_eq!(r.stale.len(), 1, "{}", r.summary());
        assert!(r.stale[0].ends_with("misses [1]"), "{:?}", r.stale);
        // A read concurrent with the add (invoked before its ok) may miss it.
        let mut h = History::default();
        h.push(0, EventType::Invoke, add("s0", 1), ms(0));
        read_ok(&mut h, 1, "s0", 1, &[]);
        h.push(0, EventType::Ok, add("s0", 1), ms(5));
        assert!(check(&h, &finals(&[1])).valid());
    }
}

//! The classic cases, written by hand: each one a small story with a known answer.
//!
//! Every "not linearizable" case here has a twin that differs in one detail and *is* linearizable,
//! so each test shows both that the checker can fail and that it does not fail for the wrong reason.

use concord_check::linearizability::{check, Verdict};
use concord_check::Model;
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::time::Time;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A tiny history builder: `h.invoke(p, op)` / `h.ok(p, op)` ... with increasing times.
#[derive(Default)]
struct H(History);

impl H {
    fn at(&mut self, process: u64, kind: EventType, op: Op) -> &mut H {
        let t = Time(self.0.events.len() as u64 * 1_000);
        self.0.push(process, kind, op, t);
        self
    }
    fn invoke(&mut self, p: u64, op: Op) -> &mut H {
        self.at(p, EventType::Invoke, op)
    }
    fn ok(&mut self, p: u64, op: Op) -> &mut H {
        self.at(p, EventType::Ok, op)
    }
    fn info(&mut self, p: u64, op: Op) -> &mut H {
        self.at(p, EventType::Info, op)
    }
    fn fail(&mut self, p: u64, op: Op) -> &mut H {
        self.at(p, EventType::Fail, op)
    }
}

fn read(v: Option<i64>) -> Op {
    Op { f: OpFn::Read, key: None, value: v.map_or(Value::Nil, Value::Int) }
}
fn write(v: i64) -> Op {
    Op { f: OpFn::Write, key: None, value: Value::Int(v) }
}
fn cas(from: i64, to: i64) -> Op {
    Op { f: OpFn::Cas, key: None, value: Value::pair(Value::Int(from), Value::Int(to)) }
}

fn verdict(h: &H) -> Verdict {
    check(&h.0, Model::Register, TIMEOUT)
}

#[test]
fn stale_read_after_a_completed_write() {
    let mut h = H::default();
    h.invoke(0, write(1)).ok(0, write(1)).invoke(0, write(2)).ok(0, write(2));
    h.invoke(1, read(None)).ok(1, read(Some(1)));
    let v = verdict(&h);
    let Verdict::NotLinearizable(e) = &v else { panic!("expected a failure, got {v}") };
    // The explanation points at the stale read, and the longest prefix is the two writes.
    assert_eq!(e.ops[e.blocking].f, OpFn::Read);
    assert_eq!(e.longest_prefix.len(), 2);
    assert_eq!(e.state_after_prefix, "2");
    let text = e.to_string();
    assert!(text.contains("read 1, but the value is 2"), "{text}");

    // Twin: the read overlaps the second write, so it may be ordered before it.
    let mut twin = H::default();
    twin.invoke(0, write(1)).ok(0, write(1)).invoke(0, write(2));
    twin.invoke(1, read(None)).ok(1, read(Some(1))).ok(0, write(2));
    assert!(verdict(&twin).is_linearizable());
}

#[test]
fn lost_update_via_cas() {
    // Two clients both CAS 0 -> something and both are told ok: one update is lost.
    let mut h = H::default();
    h.invoke(0, write(0)).ok(0, write(0));
    h.invoke(1, cas(0, 1)).invoke(2, cas(0, 2)).ok(1, cas(0, 1)).ok(2, cas(0, 2));
    h.invoke(0, read(None)).ok(0, read(Some(2)));
    let v = verdict(&h);
    assert!(v.is_not_linearizable(), "{v}");

    // Twin: the second CAS failed (the store said so): fine.
    let mut twin = H::default();
    twin.invoke(0, write(0)).ok(0, write(0));
    twin.invoke(1, cas(0, 1)).invoke(2, cas(0, 2)).ok(1, cas(0, 1)).fail(2, cas(0, 2));
    twin.invoke(0, read(None)).ok(0, read(Some(1)));
    assert!(verdict(&twin).is_linearizable());

    // Twin: the second CAS expected the first one's result: a chain, fine.
    let mut chain = H::default();
    chain.invoke(0, write(0)).ok(0, write(0));
    chain.invoke(1, cas(0, 1)).invoke(2, cas(1, 2)).ok(1, cas(0, 1)).ok(2, cas(1, 2));
    chain.invoke(0, read(None)).ok(0, read(Some(2)));
    assert!(verdict(&chain).is_linearizable());
}

#[test]
fn read_of_a_value_never_written() {
    let mut h = H::default();
    h.invoke(0, write(1)).invoke(1, read(None)).ok(1, read(Some(3))).ok(0, write(1));
    let v = verdict(&h);
    let Verdict::NotLinearizable(e) = &v else { panic!("expected a failure, got {v}") };
    assert!(e.longest_prefix.is_empty() || e.longest_prefix.len() == 1);

    // Twin: the read saw the concurrent write.
    let mut twin = H::default();
    twin.invoke(0, write(1)).invoke(1, read(None)).ok(1, read(Some(1))).ok(0, write(1));
    assert!(verdict(&twin).is_linearizable());
}

#[test]
fn info_write_that_took_effect_late() {
    // p0's write of 1 timed out; long after the timeout, a read sees 1. The write may have taken
    // effect at any time after its invocation – even after the client gave up.
    let mut h = H::default();
    h.invoke(0, write(1)).info(0, write(1));
    h.invoke(1, write(2)).ok(1, write(2));
    h.invoke(2, read(None)).ok(2, read(Some(2)));
    h.invoke(2, read(None)).ok(2, read(Some(1)));
    assert!(verdict(&h).is_linearizable());

    // Twin: the same write, but failed (it certainly did not happen): reading 1 is impossible.
    let mut twin = H::default();
    twin.invoke(0, write(1)).fail(0, write(1));
    twin.invoke(1, write(2)).ok(1, write(2));
    twin.invoke(2, read(None)).ok(2, read(Some(2)));
    twin.invoke(2, read(None)).ok(2, read(Some(1)));
    assert!(verdict(&twin).is_not_linearizable());

    // Twin: with an ok write it is impossible too (it would have to take effect before its return,
    // so before the write of 2, and 2 was read first).
    let mut okw = H::default();
    okw.invoke(0, write(1)).ok(0, write(1));
    okw.invoke(1, write(2)).ok(1, write(2));
    okw.invoke(2, read(None)).ok(2, read(Some(2)));
    okw.invoke(2, read(None)).ok(2, read(Some(1)));
    assert!(verdict(&okw).is_not_linearizable());
}

#[test]
fn info_write_that_never_took_effect() {
    let mut h = H::default();
    h.invoke(0, write(1)).ok(0, write(1));
    h.invoke(1, write(2)).info(1, write(2));
    h.invoke(2, read(None)).ok(2, read(Some(1)));
    h.invoke(2, read(None)).ok(2, read(Some(1)));
    assert!(verdict(&h).is_linearizable());

    // But an info write cannot take effect *before* its invocation.
    let mut early = H::default();
    early.invoke(0, write(1)).ok(0, write(1));
    early.invoke(2, read(None)).ok(2, read(Some(2)));
    early.invoke(1, write(2)).info(1, write(2));
    assert!(verdict(&early).is_not_linearizable());

    // And it takes effect at most once: 1, 2, 1, 2 needs two writes of 2.
    let mut twice = H::default();
    twice.invoke(0, write(1)).ok(0, write(1));
    twice.invoke(1, write(2)).info(1, write(2));
    twice.invoke(2, read(None)).ok(2, read(Some(2)));
    twice.invoke(0, write(1)).ok(0, write(1));
    twice.invoke(2, read(None)).ok(2, read(Some(2)));
    assert!(verdict(&twice).is_not_linearizable());
}

#[test]
fn info_cas_takes_effect_only_when_it_matches() {
    // An unknown CAS 1 -> 5 while the value is 0 cannot have produced 5.
    let mut h = H::default();
    h.invoke(0, write(0)).ok(0, write(0));
    h.invoke(1, cas(1, 5)).info(1, cas(1, 5));
    h.invoke(0, read(None)).ok(0, read(Some(5)));
    assert!(verdict(&h).is_not_linearizable());
    // ... but after a write of 1, it can.
    let mut twin = H::default();
    twin.invoke(0, write(0)).ok(0, write(0));
    twin.invoke(1, cas(1, 5)).info(1, cas(1, 5));
    twin.invoke(0, write(1)).ok(0, write(1));
    twin.invoke(0, read(None)).ok(0, read(Some(5)));
    assert!(verdict(&twin).is_linearizable());
}

#[test]
fn keys_are_independent_and_the_failing_key_is_named() {
    let mut h = History::default();
    let mut t = 0;
    let mut push = |p, kind, op| {
        t += 1;
        h.push(p, kind, op, Time(t));
    };
    push(0, EventType::Invoke, Op::write("a", 1));
    push(0, EventType::Ok, Op::write("a", 1));
    push(1, EventType::Invoke, Op::write("b", 7));
    push(1, EventType::Ok, Op::write("b", 7));
    // Reading b's value under key a: fine if keys were one register, wrong per key.
    push(2, EventType::Invoke, Op::read("a"));
    push(2, EventType::Ok, Op { f: OpFn::Read, key: Some("a".into()), value: Value::Int(7) });
    let v = check(&h, Model::Kv, TIMEOUT);
    let Verdict::NotLinearizable(e) = &v else { panic!("expected a failure, got {v}") };
    assert_eq!(e.key.as_deref(), Some("a"));
    assert_eq!(e.partitions_total, 2);
    let html = concord_check::html::render(e);
    assert!(html.contains("<svg"));
    assert!(html.contains("read 7, a value no operation of this key writes"), "{html}");
}

#[test]
fn timeout_gives_unknown_never_a_verdict() {
    // A large, highly concurrent register history with many distinct values; a zero time limit
    // must give Unknown.
    let config =
        concord_check::gen::GenConfig { seed: 1, clients: 20, ops: 2_000, values: 0, ..Default::default() };
    let h = concord_check::gen::history(&config);
    let v = check(&h, Model::Register, Duration::ZERO);
    assert!(v.is_unknown(), "{v}");
}

#[test]
fn other_models() {
    // Counter: two adds of 1, a read of 3 is impossible; of 2 fine; a concurrent read of 1 fine.
    let add = |n| Op { f: OpFn::Add, key: None, value: Value::Int(n) };
    let mut h = H::default();
    h.invoke(0, add(1)).invoke(1, add(1)).invoke(2, read(None)).ok(2, read(Some(1)));
    h.ok(0, add(1)).ok(1, add(1)).invoke(2, read(None)).ok(2, read(Some(2)));
    assert!(check(&h.0, Model::Counter, TIMEOUT).is_linearizable());
    let mut bad = H::default();
    bad.invoke(0, add(1)).ok(0, add(1)).invoke(1, add(1)).ok(1, add(1));
    bad.invoke(2, read(None)).ok(2, read(Some(3)));
    assert!(check(&bad.0, Model::Counter, TIMEOUT).is_not_linearizable());

    // Queue: FIFO order violated.
    let enq = |n| Op { f: OpFn::Enqueue, key: None, value: Value::Int(n) };
    let deq = |n: Option<i64>| Op { f: OpFn::Dequeue, key: None, value: n.map_or(Value::Nil, Value::Int) };
    let mut q = H::default();
    q.invoke(0, enq(1)).ok(0, enq(1)).invoke(0, enq(2)).ok(0, enq(2));
    q.invoke(1, deq(None)).ok(1, deq(Some(2)));
    assert!(check(&q.0, Model::Queue, TIMEOUT).is_not_linearizable());
    let mut q2 = H::default();
    q2.invoke(0, enq(1)).invoke(1, enq(2)).ok(0, enq(1)).ok(1, enq(2));
    q2.invoke(2, deq(None)).ok(2, deq(Some(2)));
    assert!(check(&q2.0, Model::Queue, TIMEOUT).is_linearizable());

    // Set: a read missing an element added (and acknowledged) before it.
    let sadd = |n| Op { f: OpFn::Add, key: None, value: Value::Int(n) };
    let sread = |items: &[i64]| Op {
        f: OpFn::Read,
        key: None,
        value: Value::List(items.iter().map(|&i| Value::Int(i)).collect()),
    };
    let mut s = H::default();
    s.invoke(0, sadd(1)).ok(0, sadd(1)).invoke(0, sadd(2)).ok(0, sadd(2));
    s.invoke(1, read(None)).ok(1, sread(&[2]));
    assert!(check(&s.0, Model::Set, TIMEOUT).is_not_linearizable());
    let mut s2 = H::default();
    s2.invoke(0, sadd(1)).ok(0, sadd(1)).invoke(0, sadd(2));
    s2.invoke(1, read(None)).ok(1, sread(&[1])).ok(0, sadd(2));
    assert!(check(&s2.0, Model::Set, TIMEOUT).is_linearizable());
}

#[test]
fn a_history_that_does_not_fit_the_model_is_unknown() {
    let mut h = H::default();
    h.invoke(0, Op { f: OpFn::Enqueue, key: None, value: Value::Int(1) });
    let v = check(&h.0, Model::Register, TIMEOUT);
    assert!(matches!(&v, Verdict::Unknown(reason) if reason.contains("no `enqueue`")), "{v}");
    let mut m = H::default();
    m.ok(0, write(1));
    assert!(matches!(check(&m.0, Model::Register, TIMEOUT), Verdict::Unknown(r) if r.contains("malformed")));
}

#[test]
fn chains_of_unknown_compare_and_sets() {
    // Two timed-out CASes 1 -> 2 -> 3, and a read of 3: both must have taken effect, in order,
    // before the read returned (each value is written by one operation only).
    let mut h = H::default();
    h.invoke(0, write(1)).ok(0, write(1));
    h.invoke(1, cas(1, 2)).info(1, cas(1, 2));
    h.invoke(2, cas(2, 3)).info(2, cas(2, 3));
    h.invoke(3, read(None)).ok(3, read(Some(3)));
    assert!(verdict(&h).is_linearizable());

    // Twin: the read of 3 returned before the second CAS was invoked.
    let mut early = H::default();
    early.invoke(0, write(1)).ok(0, write(1));
    early.invoke(1, cas(1, 2)).info(1, cas(1, 2));
    early.invoke(3, read(None)).ok(3, read(Some(3)));
    early.invoke(2, cas(2, 3)).info(2, cas(2, 3));
    assert!(verdict(&early).is_not_linearizable());

    // Nobody reads 3: neither CAS need have happened, so reading 1 afterwards is fine...
    let mut unseen = H::default();
    unseen.invoke(0, write(1)).ok(0, write(1));
    unseen.invoke(1, cas(1, 2)).info(1, cas(1, 2));
    unseen.invoke(2, cas(2, 3)).info(2, cas(2, 3));
    unseen.invoke(3, read(None)).ok(3, read(Some(1)));
    assert!(verdict(&unseen).is_linearizable());

    // ... but after a read of 2, the value can no longer be 1.
    let mut back = H::default();
    back.invoke(0, write(1)).ok(0, write(1));
    back.invoke(1, cas(1, 2)).info(1, cas(1, 2));
    back.invoke(2, cas(2, 3)).info(2, cas(2, 3));
    back.invoke(3, read(None)).ok(3, read(Some(2)));
    back.invoke(3, read(None)).ok(3, read(Some(1)));
    assert!(verdict(&back).is_not_linearizable());
}

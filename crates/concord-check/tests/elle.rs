//! Validation of the Elle-style checker (`concord_check::elle`).
//!
//! 1. Hand-built histories, one per anomaly of the paper's taxonomy, for both workloads: each must
//!    be reported, by name, with a cycle that chains up; and the valid neighbours of each must pass.
//! 2. A generator of random *serial* executions (transactions applied one at a time, at an instant
//!    between invocation and completion, with failures and unknown outcomes) – valid by
//!    construction, even for strict serializability – must always pass.
//! 3. The same histories with one anomaly injected (G0, G1a, G1c, G-single, G2, on keys the random
//!    part also uses; both workloads) must always be caught, with that anomaly's name.
//! 4. Scale: 10 000 transactions are analysed (this is not a timed test; it prints the time).

use concord_check::elle::history::{
    append, read_list, read_register, write, Builder, Mop, TxnHistory, Workload,
};
use concord_check::elle::{self, Anomaly, Options, Report};
use concord_core::history::EventType;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn check(history: &TxnHistory, options: Options) -> Report {
    let report = elle::check(history, &options).expect("a well-formed history");
    // Every cycle reported must be a real cycle of consecutive edges.
    for anomaly in &report.anomalies {
        if let Anomaly::Cycle(cycle) = anomaly {
            let n = cycle.steps.len();
            assert!(n >= 2);
            for i in 0..n {
                assert_eq!(cycle.steps[i].to, cycle.steps[(i + 1) % n].from, "{report}");
            }
        }
    }
    report
}

fn names(report: &Report) -> Vec<String> {
    report.anomaly_names()
}

fn ser() -> Options {
    Options::serializable()
}

fn strict() -> Options {
    Options::strict_serializable()
}

/// Two transactions invoked together and completed together: concurrent, so real time orders
/// neither.
fn concurrent(b: &mut Builder, p: u64, a: Vec<Mop>, q: u64, c: Vec<Mop>) {
    b.invoke(p, a.clone());
    b.invoke(q, c.clone());
    b.complete(p, EventType::Ok, a);
    b.complete(q, EventType::Ok, c);
}

// ---------------------------------------------------------------------------------------------
// 1. Hand-built histories: list-append.

#[test]
fn list_append_serial_history_is_valid() {
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1), read_list("x", &[1])]);
    b.ok(1, vec![read_list("x", &[1]), append("x", 2), append("y", 1)]);
    b.ok(0, vec![read_list("x", &[1, 2]), read_list("y", &[1])]);
    let h = b.build();
    assert!(check(&h, ser()).is_valid());
    let report = check(&h, strict());
    assert!(report.is_valid(), "{report}");
    assert!(report.to_string().contains("no anomalies"));
}

#[test]
fn g0_write_cycle() {
    // T0 and T1 both append to x and y; the final reads show x ordered T0 then T1, y the reverse.
    let mut b = Builder::new(Workload::ListAppend);
    concurrent(&mut b, 0, vec![append("x", 1), append("y", 1)], 1, vec![append("x", 2), append("y", 2)]);
    b.ok(2, vec![read_list("x", &[1, 2]), read_list("y", &[2, 1])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G0"], "{report}");
    let text = report.to_string();
    assert!(text.contains("T1 appended 2 to key x right after T0's 1"), "{text}");
    assert!(text.contains("violates read uncommitted"), "{text}");
}

#[test]
fn g1a_aborted_read() {
    let mut b = Builder::new(Workload::ListAppend);
    b.fail(0, vec![append("x", 1)]);
    b.ok(1, vec![read_list("x", &[1])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G1a"]);
    assert!(report.to_string().contains("written by T0, which failed"), "{report}");
}

#[test]
fn g1b_intermediate_read() {
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1), append("x", 2)]);
    b.ok(1, vec![read_list("x", &[1])]);
    b.ok(2, vec![read_list("x", &[1, 2])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G1b"], "{report}");
}

#[test]
fn g1c_circular_information_flow() {
    let mut b = Builder::new(Workload::ListAppend);
    concurrent(
        &mut b,
        0,
        vec![append("x", 1), read_list("y", &[1])],
        1,
        vec![append("y", 1), read_list("x", &[1])],
    );
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G1c"], "{report}");
}

#[test]
fn g_single_read_skew() {
    // T1 sees T0's append to x but not its append to y.
    let mut b = Builder::new(Workload::ListAppend);
    concurrent(
        &mut b,
        0,
        vec![append("x", 1), append("y", 1)],
        1,
        vec![read_list("x", &[1]), read_list("y", &[])],
    );
    b.ok(2, vec![read_list("y", &[1])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G-single"], "{report}");
    let text = report.to_string();
    assert!(text.contains("T1 read key y as empty, and T0 appended 1, its first element"), "{text}");
    assert!(text.contains("(rw)") && text.contains("(wr)"), "{text}");
}

#[test]
fn g2_write_skew() {
    let mut b = Builder::new(Workload::ListAppend);
    concurrent(
        &mut b,
        0,
        vec![read_list("x", &[]), append("y", 1)],
        1,
        vec![read_list("y", &[]), append("x", 1)],
    );
    b.ok(2, vec![read_list("x", &[1]), read_list("y", &[1])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G2"], "{report}");
    // Without the last read, nobody saw the appends' order against the reads – but the empty reads
    // still precede the appends: the anomaly does not depend on the final reader.
    let mut b = Builder::new(Workload::ListAppend);
    concurrent(
        &mut b,
        0,
        vec![read_list("x", &[]), append("y", 1)],
        1,
        vec![read_list("y", &[]), append("x", 1)],
    );
    let report = check(&b.build(), ser());
    assert!(report.is_valid(), "appends nobody read leave no version order: {report}");
}

#[test]
fn incompatible_order_and_duplicates() {
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(1, vec![append("x", 2)]);
    b.ok(2, vec![read_list("x", &[1, 2])]);
    b.ok(3, vec![read_list("x", &[2])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["incompatible-order"], "{report}");
    assert!(report.to_string().contains("T2 read key x = [1 2] and T3 read [2]"), "{report}");

    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(1, vec![read_list("x", &[1, 1])]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["duplicate-elements"]);

    let mut b = Builder::new(Workload::ListAppend);
    b.ok(1, vec![read_list("x", &[7])]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["garbage-read"]);
}

#[test]
fn internal_inconsistency() {
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(1, vec![read_list("x", &[1]), append("x", 2), read_list("x", &[1])]);
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["internal"], "{report}");
    assert!(report.to_string().contains("own earlier reads and writes say [1 2]"), "{report}");
    // A read after blind appends must end with them.
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1), read_list("x", &[])]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["internal"]);
}

#[test]
fn realtime_and_process_orders() {
    // A stale read: T1 begins after T0 committed, yet does not see its append. Serializable (T1
    // first), not strictly serializable.
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(1, vec![read_list("x", &[])]);
    b.ok(2, vec![read_list("x", &[1])]);
    let h = b.build();
    assert!(check(&h, ser()).is_valid());
    let report = check(&h, strict());
    assert_eq!(names(&report), vec!["G-single-realtime"], "{report}");
    assert!(report.to_string().contains("completed (event 1) before T1 was invoked (event 2)"), "{report}");
    // Process order alone catches it when one client did both.
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(0, vec![read_list("x", &[])]);
    b.ok(2, vec![read_list("x", &[1])]);
    let options = Options { realtime: false, process: true, realtime_version_order: false };
    assert_eq!(names(&check(&b.build(), options)), vec!["G-single-process"]);
}

#[test]
fn info_transactions_count_only_when_observed() {
    // An unknown append nobody saw: no edges, nothing to report.
    let mut b = Builder::new(Workload::ListAppend);
    b.info(0, vec![append("x", 1), read_list("y", &[])]);
    b.ok(1, vec![append("y", 1), read_list("x", &[])]);
    assert!(check(&b.build(), strict()).is_valid());
    // Seen: it committed, and the read skew it takes part in is found.
    let mut b = Builder::new(Workload::ListAppend);
    b.invoke(0, vec![append("x", 1), append("y", 1)]);
    b.ok(1, vec![read_list("x", &[1]), read_list("y", &[])]);
    b.ok(2, vec![read_list("y", &[1])]);
    b.complete(0, EventType::Info, vec![]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["G-single"]);
}

#[test]
fn duplicate_writes_are_refused() {
    let mut b = Builder::new(Workload::ListAppend);
    b.ok(0, vec![append("x", 1)]);
    b.ok(1, vec![append("x", 1)]);
    let error = elle::check(&b.build(), &ser()).unwrap_err();
    assert!(error.to_string().contains("written to key x twice"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// 1b. Hand-built histories: rw-register.

#[test]
fn rw_register_anomalies() {
    // Valid: read-then-write chains.
    let mut b = Builder::new(Workload::RwRegister);
    b.ok(0, vec![read_register("x", None), write("x", 1)]);
    b.ok(1, vec![read_register("x", Some(1)), write("x", 2), read_register("x", Some(2))]);
    b.ok(2, vec![read_register("x", Some(2))]);
    assert!(check(&b.build(), strict()).is_valid());

    // G1a, G1b.
    let mut b = Builder::new(Workload::RwRegister);
    b.fail(0, vec![write("x", 1)]);
    b.ok(1, vec![write("y", 1), write("y", 2)]);
    b.ok(2, vec![read_register("x", Some(1)), read_register("y", Some(1))]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["G1a", "G1b"]);

    // G1c: each reads the other's write.
    let mut b = Builder::new(Workload::RwRegister);
    concurrent(
        &mut b,
        0,
        vec![write("x", 1), read_register("y", Some(1))],
        1,
        vec![write("y", 1), read_register("x", Some(1))],
    );
    assert_eq!(names(&check(&b.build(), ser())), vec!["G1c"]);

    // G-single: T1 sees T0's x but the initial y.
    let mut b = Builder::new(Workload::RwRegister);
    concurrent(
        &mut b,
        0,
        vec![write("x", 1), write("y", 1)],
        1,
        vec![read_register("x", Some(1)), read_register("y", None)],
    );
    let report = check(&b.build(), ser());
    assert_eq!(names(&report), vec!["G-single"], "{report}");
    assert!(report.to_string().contains("known because every key starts at nil"), "{report}");

    // G2: write skew.
    let mut b = Builder::new(Workload::RwRegister);
    concurrent(
        &mut b,
        0,
        vec![read_register("x", None), write("y", 1)],
        1,
        vec![read_register("y", None), write("x", 1)],
    );
    assert_eq!(names(&check(&b.build(), ser())), vec!["G2"]);

    // Internal: a read after the transaction's own write must see it.
    let mut b = Builder::new(Workload::RwRegister);
    b.ok(0, vec![write("x", 1), read_register("x", None)]);
    assert_eq!(names(&check(&b.build(), ser())), vec!["internal"]);

    // Real-time version order: T1 wrote 2 after T0's 1 had committed, then T2 read 1 after both:
    // a stale read, visible only when real time orders the versions.
    let mut b = Builder::new(Workload::RwRegister);
    b.ok(0, vec![write("x", 1)]);
    b.ok(1, vec![write("x", 2)]);
    b.ok(2, vec![read_register("x", Some(1))]);
    let h = b.build();
    assert!(check(&h, ser()).is_valid());
    assert_eq!(names(&check(&h, strict())), vec!["G-single-realtime"]);
}

#[test]
fn reads_jepsen_edn_and_renders_html() {
    let text = r#"[{:type :invoke, :f :txn, :value [[:append 1 1] [:append 2 1]], :process 0, :time 1}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]], :process 1, :time 2}
{:type :ok, :f :txn, :value [[:append 1 1] [:append 2 1]], :process 0, :time 3}
{:type :ok, :f :txn, :value [[:r 1 [1]] [:r 2 nil]], :process 1, :time 4}
{:type :invoke, :f :txn, :value [[:r 2 nil]], :process 1, :time 5}
{:type :ok, :f :txn, :value [[:r 2 [1]]], :process 1, :time 6}]"#;
    let parsed = elle::history::parse_edn(text, Workload::ListAppend).unwrap();
    let h = TxnHistory::from_events(Workload::ListAppend, &parsed.events).unwrap();
    let report = check(&h, ser());
    assert_eq!(names(&report), vec!["G-single"]);
    let page = elle::html::render(&report);
    assert!(page.contains("<svg") && page.contains("G-single") && page.contains(">rw<"), "{page}");
}

// ---------------------------------------------------------------------------------------------
// 2. Random serial executions.

/// A deterministic xorshift generator (the tests must not depend on the platform's randomness).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

enum Client {
    Idle,
    /// Invoked; not yet applied.
    Invoked(Vec<Mop>),
    /// Applied to the state, with the values read; completes next.
    Applied(Vec<Mop>),
}

/// Random transactions on `keys` keys by `clients` clients, each applied atomically at some
/// instant between its invocation and completion – a strictly serializable execution. Failed
/// transactions are never applied; some applied ones complete as `info`; some stay open.
struct Serial {
    builder: Builder,
    lists: BTreeMap<String, Vec<i64>>,
    registers: BTreeMap<String, i64>,
    next_value: i64,
}

impl Serial {
    fn run(workload: Workload, seed: u64, clients: usize, txns: usize, keys: u64) -> Serial {
        let mut rng = Rng(seed | 1);
        let mut s = Serial {
            builder: Builder::new(workload),
            lists: BTreeMap::new(),
            registers: BTreeMap::new(),
            next_value: 1,
        };
        let mut state: Vec<Client> = (0..clients).map(|_| Client::Idle).collect();
        let mut process: Vec<u64> = (0..clients as u64).collect();
        let mut invoked = 0;
        while invoked < txns || state.iter().any(|c| !matches!(c, Client::Idle)) {
            let c = rng.below(clients as u64) as usize;
            let p = process[c];
            state[c] = match std::mem::replace(&mut state[c], Client::Idle) {
                Client::Idle if invoked < txns => {
                    invoked += 1;
                    let mops = s.random_txn(workload, &mut rng, keys);
                    s.builder.invoke(p, mops.clone());
                    Client::Invoked(mops)
                }
                Client::Idle => Client::Idle,
                Client::Invoked(mops) if rng.percent(5) => {
                    s.builder.complete(p, EventType::Fail, mops);
                    Client::Idle
                }
                Client::Invoked(mops) => Client::Applied(s.apply(&mops)),
                Client::Applied(mops) => {
                    if rng.percent(5) {
                        s.builder.complete(p, EventType::Info, mops);
                        // Jepsen retires a process after an unknown outcome.
                        process[c] += clients as u64;
                    } else {
                        s.builder.complete(p, EventType::Ok, mops);
                    }
                    Client::Idle
                }
            };
        }
        s
    }

    fn random_txn(&mut self, workload: Workload, rng: &mut Rng, keys: u64) -> Vec<Mop> {
        (0..1 + rng.below(4))
            .map(|_| {
                let key = rng.below(keys).to_string();
                let is_read = rng.percent(50);
                match (workload, is_read) {
                    (Workload::ListAppend, true) => Mop::ReadList { key, value: None },
                    (Workload::RwRegister, true) => Mop::ReadRegister { key, value: None },
                    (w, false) => {
                        self.next_value += 1;
                        let value = self.next_value;
                        if w == Workload::ListAppend {
                            append(key, value)
                        } else {
                            write(key, value)
                        }
                    }
                }
            })
            .collect()
    }

    /// Apply a transaction to the state, filling in its reads.
    fn apply(&mut self, mops: &[Mop]) -> Vec<Mop> {
        mops.iter()
            .map(|mop| match mop {
                Mop::Append { key, value } => {
                    self.lists.entry(key.clone()).or_default().push(*value);
                    mop.clone()
                }
                Mop::Write { key, value } => {
                    self.registers.insert(key.clone(), *value);
                    mop.clone()
                }
                Mop::ReadList { key, .. } => {
                    read_list(key.clone(), self.lists.get(key).map_or(&[][..], |l| l))
                }
                Mop::ReadRegister { key, .. } => read_register(key.clone(), self.registers.get(key).copied()),
            })
            .collect()
    }

    fn fresh(&mut self) -> i64 {
        self.next_value += 1;
        self.next_value
    }

    /// Append one anomaly on keys `x`, `y` (which the random part may use too) and return its name.
    fn inject(&mut self, which: u8) -> &'static str {
        let (x, y) = ("0".to_string(), "1".to_string());
        let list = |s: &Serial, k: &str| s.lists.get(k).cloned().unwrap_or_default();
        let with = |mut l: Vec<i64>, more: &[i64]| {
            l.extend_from_slice(more);
            l
        };
        let (p, q, r) = (1_000_000, 1_000_001, 1_000_002);
        match which {
            0 => {
                let (a1, a2, b1, b2) = (self.fresh(), self.fresh(), self.fresh(), self.fresh());
                let (lx, ly) = (list(self, &x), list(self, &y));
                concurrent(
                    &mut self.builder,
                    p,
                    vec![append(&*x, a1), append(&*y, b1)],
                    q,
                    vec![append(&*x, a2), append(&*y, b2)],
                );
                self.builder
                    .ok(r, vec![read_list(&*x, &with(lx, &[a1, a2])), read_list(&*y, &with(ly, &[b2, b1]))]);
                "G0"
            }
            1 => {
                let a = self.fresh();
                let lx = list(self, &x);
                self.builder.fail(p, vec![append(&*x, a)]);
                self.builder.ok(q, vec![read_list(&*x, &with(lx, &[a]))]);
                "G1a"
            }
            2 => {
                let (a, b) = (self.fresh(), self.fresh());
                let (lx, ly) = (list(self, &x), list(self, &y));
                concurrent(
                    &mut self.builder,
                    p,
                    vec![append(&*x, a), read_list(&*y, &with(ly, &[b]))],
                    q,
                    vec![append(&*y, b), read_list(&*x, &with(lx, &[a]))],
                );
                "G1c"
            }
            3 => {
                let (a, b) = (self.fresh(), self.fresh());
                let (lx, ly) = (list(self, &x), list(self, &y));
                concurrent(
                    &mut self.builder,
                    p,
                    vec![append(&*x, a), append(&*y, b)],
                    q,
                    vec![read_list(&*x, &with(lx, &[a])), read_list(&*y, &ly)],
                );
                self.builder.ok(r, vec![read_list(&*y, &with(list(self, &y), &[b]))]);
                "G-single"
            }
            _ => {
                let (a, b) = (self.fresh(), self.fresh());
                let (lx, ly) = (list(self, &x), list(self, &y));
                concurrent(
                    &mut self.builder,
                    p,
                    vec![read_list(&*x, &lx), append(&*y, b)],
                    q,
                    vec![read_list(&*y, &ly), append(&*x, a)],
                );
                self.builder.ok(
                    r,
                    vec![read_list(&*x, &with(lx.clone(), &[a])), read_list(&*y, &with(ly.clone(), &[b]))],
                );
                "G2"
            }
        }
    }
}

impl Serial {
    /// The rw-register counterpart of [`Serial::inject`]. Register reads reveal no history, so each
    /// pattern makes its version order visible the way a real test would: by reading before writing.
    fn inject_register(&mut self, which: u8) -> &'static str {
        let (x, y) = ("0".to_string(), "1".to_string());
        let (ox, oy) = (self.registers.get(&x).copied(), self.registers.get(&y).copied());
        let (a, b) = (self.fresh(), self.fresh());
        let (p, q) = (1_000_000, 1_000_001);
        match which {
            0 => {
                self.builder.fail(p, vec![write(&*x, a)]);
                self.builder.ok(q, vec![read_register(&*x, Some(a))]);
                "G1a"
            }
            1 => {
                concurrent(
                    &mut self.builder,
                    p,
                    vec![write(&*x, a), read_register(&*y, Some(b))],
                    q,
                    vec![write(&*y, b), read_register(&*x, Some(a))],
                );
                "G1c"
            }
            2 => {
                concurrent(
                    &mut self.builder,
                    p,
                    vec![read_register(&*y, oy), write(&*x, a), write(&*y, b)],
                    q,
                    vec![read_register(&*x, Some(a)), read_register(&*y, oy)],
                );
                "G-single"
            }
            _ => {
                concurrent(
                    &mut self.builder,
                    p,
                    vec![read_register(&*x, ox), read_register(&*y, oy), write(&*y, b)],
                    q,
                    vec![read_register(&*y, oy), read_register(&*x, ox), write(&*x, a)],
                );
                "G2"
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn serial_list_append_histories_pass(seed in any::<u64>(), clients in 1usize..6, txns in 1usize..120, keys in 1u64..6) {
        let h = Serial::run(Workload::ListAppend, seed, clients, txns, keys).builder.build();
        let report = check(&h, strict());
        prop_assert!(report.is_valid(), "{}", report);
    }

    #[test]
    fn serial_rw_register_histories_pass(seed in any::<u64>(), clients in 1usize..6, txns in 1usize..120, keys in 1u64..6) {
        let h = Serial::run(Workload::RwRegister, seed, clients, txns, keys).builder.build();
        let report = check(&h, strict());
        prop_assert!(report.is_valid(), "{}", report);
    }

    #[test]
    fn injected_anomalies_are_caught(seed in any::<u64>(), clients in 1usize..5, txns in 0usize..80, keys in 1u64..4, which in 0u8..5) {
        let mut serial = Serial::run(Workload::ListAppend, seed, clients, txns, keys);
        let name = serial.inject(which);
        let h = serial.builder.build();
        for options in [ser(), strict()] {
            let report = check(&h, options);
            prop_assert!(report.anomaly_names().iter().any(|n| n == name), "expected {}: {}", name, report);
        }
    }

    #[test]
    fn injected_register_anomalies_are_caught(seed in any::<u64>(), clients in 1usize..5, txns in 0usize..80, keys in 1u64..4, which in 0u8..4) {
        let mut serial = Serial::run(Workload::RwRegister, seed, clients, txns, keys);
        let name = serial.inject_register(which);
        let h = serial.builder.build();
        for options in [ser(), strict()] {
            let report = check(&h, options);
            prop_assert!(report.anomaly_names().iter().any(|n| n == name), "expected {}: {}", name, report);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Scale.

#[test]
fn ten_thousand_transactions() {
    for workload in [Workload::ListAppend, Workload::RwRegister] {
        let h = Serial::run(workload, 42, 10, 10_000, 20).builder.build();
        let started = std::time::Instant::now();
        let report = check(&h, strict());
        eprintln!(
            "{workload}: {} transactions, {} edges, checked in {:?}",
            h.txns.len(),
            report.edges,
            started.elapsed()
        );
        assert!(report.is_valid(), "{report}");
    }
    // One read skew among 10 000 transactions: under strict serializability real time links much
    // of the history into one large component, and the cycle must still be found and named.
    let mut serial = Serial::run(Workload::ListAppend, 7, 10, 10_000, 20);
    let name = serial.inject(3);
    let h = serial.builder.build();
    let started = std::time::Instant::now();
    for options in [ser(), strict()] {
        let report = check(&h, options);
        assert!(report.anomaly_names().iter().any(|n| n == name), "{report}");
        assert!(report.unexplained_components.is_empty(), "{report}");
    }
    eprintln!("10 000 transactions with a read skew, both models: {:?}", started.elapsed());
}

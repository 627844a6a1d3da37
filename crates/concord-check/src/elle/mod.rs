//! # Elle – checking transactional isolation by finding cycles
//!
//! An Elle-style checker for transactional histories, after Kingsbury and Alvaro, *Elle: Inferring
//! Isolation Anomalies from Experimental Observations* (VLDB 2020). Where [`crate::linearizability`]
//! searches every order of single-key operations (exponential in the worst case), Elle judges
//! *transactions* over many keys in linear time plus a cycle search – by being clever about what
//! the test writes, so that the history itself reveals the order the database chose.
//!
//! ## 1. Adya's formalism: isolation levels as forbidden cycles (paper §2)
//!
//! Adya defines isolation levels by a *direct serialization graph* over committed transactions, with
//! an edge `T1 → T2` when T2 depends on T1:
//!
//! * **ww** (write dependency): T2 installed the next version of a key after T1's;
//! * **wr** (read dependency): T2 read a version T1 installed;
//! * **rw** (anti-dependency): T1 read a version, and T2 installed the next one.
//!
//! A serial execution can have no cycle in this graph. Each isolation level forbids some cycles:
//!
//! | anomaly  | the cycle has…                       | first level that forbids it              |
//! |----------|--------------------------------------|------------------------------------------|
//! | G0       | ww edges only (dirty write)          | read uncommitted (PL-1)                  |
//! | G1c      | ww and wr, at least one wr           | read committed (PL-2)                    |
//! | G-single | exactly one rw (read skew)           | snapshot isolation / consistent view     |
//! | G2       | one or more rw (here: two or more, since one is G-single) | serializable (PL-3) |
//!
//! plus two anomalies that are not cycles: **G1a** (aborted read: a committed transaction saw a
//! write of a transaction that failed) and **G1b** (intermediate read: it saw a version that its
//! writer overwrote within the same transaction). Read committed forbids both.
//!
//! Adding *real-time* edges (T1 completed before T2 began) checks strict serializability; adding
//! *process* edges (one client's transactions in order) checks strong session serializability. A
//! cycle that needs such an edge is reported with the suffix `-realtime` or `-process`
//! (`G-single-realtime`: serializable, perhaps, but not strictly).
//!
//! ## 2. The problem: the graph is over versions the client never sees (§3)
//!
//! Adya's edges need the *version order* of every key, which lives inside the database. A black-box
//! test sees only what reads returned. Elle's insight is to choose the workload so that reads reveal
//! versions:
//!
//! * **recoverability** – every write is unique, so a read names the exact write it observed
//!   (wr edges, G1a, G1b for free);
//! * **traceability** – in the *list-append* workload a read returns the whole list, i.e. the whole
//!   version history of the key up to that point, so the version order is read directly off the
//!   longest read ([`list_append`]). In the *rw-register* workload it is only partly inferable
//!   ([`rw_register`]).
//!
//! ## 3. Inferring the graph (§4)
//!
//! Each analysis turns the history into edges with their evidence ([`graph::Why`]), and reports the
//! anomalies that need no cycle: G1a, G1b, reads of values nobody wrote, *internal* inconsistency (a
//! transaction's read contradicts its own earlier reads and writes – forbidden at every level), and
//! for lists, two reads that are not prefixes of one order (`incompatible-order`) or a list holding
//! an element twice.
//!
//! Transactions whose outcome is unknown (`info`) are the hard part of any black-box checker. Here
//! they are easy: an `info` transaction's writes join the graph only where some read observed them –
//! then it certainly committed – and otherwise add no edges.
//!
//! ## 4. Finding and explaining cycles (§5)
//!
//! Tarjan's algorithm splits the graph into strongly connected components in linear time; a valid
//! history has only single-transaction components and the check ends there. In each larger
//! component, a breadth-first search restricted to the edge kinds each anomaly allows finds a
//! shortest cycle of each kind ([`graph::shortest_cycle`]). Every anomaly comes with its proof: the
//! transactions of the cycle and, for each edge, why it exists – in plain text ([`Report`]'s
//! `Display`) and as an HTML page ([`html::render`]).
//!
//! ## 5. What this checker does not do
//!
//! * It is *sound* but not *complete*: every anomaly reported is real (given unique writes), but a
//!   history can hide anomalies that no read revealed. Longer, denser histories reveal more.
//! * It reports the anomalies it finds, not the strongest level the history satisfies; the absence
//!   of G2 with real-time edges is the evidence for strict serializability that the test found.
//! * Elle's finer classes (G-nonadjacent, lost update, cyclic version orders as their own anomaly)
//!   are not separated here: they show up as the cycles above.
//!
//! ```
//! use concord_check::elle::{self, history::{append, read_list, Builder, Workload}};
//!
//! // Two transactions each read the other's key as empty and append to their own: write skew.
//! let mut b = Builder::new(Workload::ListAppend);
//! b.invoke(0, vec![read_list("x", &[]), append("y", 1)]);
//! b.invoke(1, vec![read_list("y", &[]), append("x", 1)]);
//! b.complete(0, concord_core::history::EventType::Ok, vec![read_list("x", &[]), append("y", 1)]);
//! b.complete(1, concord_core::history::EventType::Ok, vec![read_list("y", &[]), append("x", 1)]);
//! b.ok(2, vec![read_list("x", &[1]), read_list("y", &[1])]);
//! let report = elle::check(&b.build(), &elle::Options::serializable()).unwrap();
//! assert_eq!(report.anomaly_names(), vec!["G2"]);
//! ```

pub mod graph;
pub mod history;
pub mod html;
pub mod list_append;
pub mod rw_register;

use graph::{CycleSpec, Edge, EdgeKind, Graph, VersionSource, Why};
use history::{Key, ListDisplay, RegDisplay, Txn, TxnHistory, Workload};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

/// Which orders besides the data dependencies the checked model imposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Real-time edges: strict serializability.
    pub realtime: bool,
    /// Process-order edges: strong session serializability.
    pub process: bool,
    /// Rw-register only: infer version orders from real time (sound only for strict
    /// serializability; see [`rw_register`]).
    pub realtime_version_order: bool,
}

impl Options {
    /// Serializability: data dependencies only.
    pub fn serializable() -> Options {
        Options { realtime: false, process: false, realtime_version_order: false }
    }

    /// Strict serializability: real time and process order too.
    pub fn strict_serializable() -> Options {
        Options { realtime: true, process: true, realtime_version_order: true }
    }
}

/// Histories that break Elle's assumptions, so that nothing sound can be said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "value {value} was written to key {key} twice (T{first} and T{second}); Elle needs unique writes"
    )]
    DuplicateWrite { key: Key, value: i64, first: usize, second: usize },
    #[error("T{txn} has micro-op {mop}, which does not belong to a {workload} history")]
    WrongMicroOp { txn: usize, mop: String, workload: Workload },
}

/// A cycle in the dependency graph: the proof of a G0, G1c, G-single or G2 anomaly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The edges in order; each one's `to` is the next one's `from`, and the last returns to the first.
    pub steps: Vec<Edge>,
    /// How many transactions the strongly connected component holding the cycle has.
    pub component_size: usize,
}

impl Cycle {
    /// `G0`, `G1c`, `G-single` or `G2`, with `-realtime` / `-process` if the cycle needs such an edge.
    pub fn class(&self) -> String {
        let count = |kind: EdgeKind| self.steps.iter().filter(|e| e.kind == kind).count();
        let base = match (count(EdgeKind::Rw), count(EdgeKind::Wr)) {
            (0, 0) => "G0",
            (0, _) => "G1c",
            (1, _) => "G-single",
            _ => "G2",
        };
        if count(EdgeKind::Realtime) > 0 {
            format!("{base}-realtime")
        } else if count(EdgeKind::Process) > 0 {
            format!("{base}-process")
        } else {
            base.to_string()
        }
    }
}

/// One anomaly, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Aborted read: `reader` (committed) saw `value`, written by `writer`, which failed.
    G1a { reader: usize, writer: usize, key: Key, value: i64 },
    /// Intermediate read: `reader` saw `value`, which `writer` overwrote (or appended after) in the
    /// same transaction.
    G1b { reader: usize, writer: usize, key: Key, value: i64 },
    /// A read contradicts the transaction's own earlier reads and writes of the key.
    Internal { txn: usize, key: Key, expected: String, read: String },
    /// Two reads of a list that are not prefixes of one order: `a` (the longest read) and `b`.
    IncompatibleOrder { key: Key, a: (usize, Vec<i64>), b: (usize, Vec<i64>) },
    /// A list read holding an element twice.
    DuplicateElements { txn: usize, key: Key, read: Vec<i64> },
    /// A read of a value that no transaction wrote.
    GarbageRead { txn: usize, key: Key, value: i64 },
    /// A dependency cycle.
    Cycle(Cycle),
}

impl Anomaly {
    pub fn name(&self) -> String {
        match self {
            Anomaly::G1a { .. } => "G1a".into(),
            Anomaly::G1b { .. } => "G1b".into(),
            Anomaly::Internal { .. } => "internal".into(),
            Anomaly::IncompatibleOrder { .. } => "incompatible-order".into(),
            Anomaly::DuplicateElements { .. } => "duplicate-elements".into(),
            Anomaly::GarbageRead { .. } => "garbage-read".into(),
            Anomaly::Cycle(cycle) => cycle.class(),
        }
    }

    /// The weakest consistency model the anomaly rules out (and with it every stronger one).
    pub fn violates(&self) -> &'static str {
        let name = self.name();
        if name.ends_with("-realtime") {
            return "strict serializability";
        }
        if name.ends_with("-process") {
            return "strong session serializability";
        }
        match name.as_str() {
            "G0" => "read uncommitted (PL-1)",
            "G1a" | "G1b" | "G1c" => "read committed (PL-2)",
            "G-single" => "snapshot isolation and consistent view (PL-2+)",
            "G2" => "serializability (PL-3)",
            _ => "every isolation level",
        }
    }

    /// The transactions the explanation mentions.
    fn txns(&self) -> Vec<usize> {
        match self {
            Anomaly::G1a { reader, writer, .. } | Anomaly::G1b { reader, writer, .. } => {
                vec![*reader, *writer]
            }
            Anomaly::Internal { txn, .. }
            | Anomaly::DuplicateElements { txn, .. }
            | Anomaly::GarbageRead { txn, .. } => {
                vec![*txn]
            }
            Anomaly::IncompatibleOrder { a, b, .. } => vec![a.0, b.0],
            Anomaly::Cycle(cycle) => cycle.steps.iter().map(|e| e.from).collect(),
        }
    }
}

/// The verdict: the anomalies found, explained.
#[derive(Clone, Debug)]
pub struct Report {
    pub workload: Workload,
    pub options: Options,
    pub txns_checked: usize,
    pub edges: usize,
    pub anomalies: Vec<Anomaly>,
    /// Sizes of cyclic components in which the search found no cycle within its budget (each is
    /// still proof that no serial order exists for the model checked).
    pub unexplained_components: Vec<usize>,
    /// The transactions the anomalies mention, for the explanations.
    pub txns: BTreeMap<usize, Txn>,
}

impl Report {
    /// No anomaly found (which is evidence, not proof, of the checked model: see the module docs).
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty() && self.unexplained_components.is_empty()
    }

    /// The distinct anomaly names, sorted.
    pub fn anomaly_names(&self) -> Vec<String> {
        let names: BTreeSet<String> = self.anomalies.iter().map(Anomaly::name).collect();
        names.into_iter().collect()
    }

    /// The model checked, in words.
    pub fn model(&self) -> &'static str {
        match (self.options.realtime, self.options.process) {
            (true, _) => "strict serializability",
            (false, true) => "strong session serializability",
            (false, false) => "serializability",
        }
    }

    /// The plain-text explanation of one anomaly.
    pub fn explain(&self, anomaly: &Anomaly) -> String {
        let mut out = String::new();
        let t = |id: &usize| match self.txns.get(id) {
            Some(txn) => txn.to_string(),
            None => format!("T{id}"),
        };
        let _ = writeln!(out, "{} (violates {}):", anomaly.name(), anomaly.violates());
        match anomaly {
            Anomaly::G1a { reader, writer, key, value } => {
                let _ = writeln!(
                    out,
                    "  T{reader} read key {key} and saw {value}, written by T{writer}, which failed."
                );
            }
            Anomaly::G1b { reader, writer, key, value } => {
                let _ = writeln!(
                    out,
                    "  T{reader} read key {key} and saw {value}, an intermediate write: T{writer} wrote {key} again afterwards."
                );
            }
            Anomaly::Internal { txn, key, expected, read } => {
                let _ = writeln!(
                    out,
                    "  T{txn} read key {key} = {read}, but its own earlier reads and writes say {expected}."
                );
            }
            Anomaly::IncompatibleOrder { key, a, b } => {
                let _ = writeln!(
                    out,
                    "  T{} read key {key} = {} and T{} read {}: neither is a prefix of the other, so no single order of appends explains both.",
                    a.0,
                    ListDisplay(&a.1),
                    b.0,
                    ListDisplay(&b.1)
                );
            }
            Anomaly::DuplicateElements { txn, key, read } => {
                let _ = writeln!(
                    out,
                    "  T{txn} read key {key} = {}, which holds an element twice.",
                    ListDisplay(read)
                );
            }
            Anomaly::GarbageRead { txn, key, value } => {
                let _ = writeln!(out, "  T{txn} read key {key} and saw {value}, which no transaction wrote.");
            }
            Anomaly::Cycle(cycle) => {
                let _ = writeln!(
                    out,
                    "  a cycle of {} transactions (in a strongly connected component of {}):",
                    cycle.steps.len(),
                    cycle.component_size
                );
                for step in &cycle.steps {
                    let _ = writeln!(
                        out,
                        "  - T{} < T{} ({}): {}",
                        step.from,
                        step.to,
                        step.kind.name(),
                        explain_edge(step)
                    );
                }
                let first = cycle.steps.first().map_or(0, |e| e.from);
                let _ = writeln!(
                    out,
                    "  so T{first} must come before itself: no order of these transactions is possible."
                );
            }
        }
        let mut ids = anomaly.txns();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let _ = writeln!(out, "    {}", t(&id));
        }
        out
    }
}

/// Why one edge exists, in words.
pub fn explain_edge(edge: &Edge) -> String {
    let (a, b) = (edge.from, edge.to);
    let source = |source: &VersionSource| match source {
        VersionSource::Initial => "every key starts at nil".to_string(),
        VersionSource::ReadThenWrite { txn } => format!("T{txn} read the one and then wrote the other"),
        VersionSource::Realtime => {
            "the first writer completed before the second began (real-time version order)".into()
        }
    };
    match &edge.why {
        Why::AppendAfter { key, prev, next } => {
            format!("T{b} appended {next} to key {key} right after T{a}'s {prev}")
        }
        Why::ReadAppended { key, last, len } => {
            format!("T{b} read key {key} (length {len}) ending in {last}, which T{a} appended")
        }
        Why::ReadBeforeAppend { key, last, next } => match last {
            Some(last) => {
                format!("T{a} read key {key} ending in {last}, and T{b} appended {next}, the next version")
            }
            None => format!("T{a} read key {key} as empty, and T{b} appended {next}, its first element"),
        },
        Why::Overwrite { key, prev, next, source: s } => {
            format!("T{b} wrote {key} = {next} over T{a}'s {prev} (known because {})", source(s))
        }
        Why::ReadWritten { key, value } => format!("T{b} read {key} = {value}, which T{a} wrote"),
        Why::ReadBeforeWrite { key, read, next, source: s } => format!(
            "T{a} read {key} = {}, and T{b} wrote {next}, a later version (known because {})",
            RegDisplay(*read),
            source(s)
        ),
        Why::Realtime { completed, invoked } => {
            format!("T{a} completed (event {completed}) before T{b} was invoked (event {invoked})")
        }
        Why::Process { process } => format!("process {process} ran T{a}, then T{b}"),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} history: {} transactions, {} dependency edges; checked for {}",
            self.workload,
            self.txns_checked,
            self.edges,
            self.model()
        )?;
        if self.is_valid() {
            return writeln!(f, "no anomalies found");
        }
        writeln!(f, "anomalies: {}", self.anomaly_names().join(", "))?;
        for anomaly in &self.anomalies {
            writeln!(f)?;
            f.write_str(&self.explain(anomaly))?;
        }
        for size in &self.unexplained_components {
            writeln!(
                f,
                "\na strongly connected component of {size} transactions: there is a cycle, but the search budget ran out before one was found"
            )?;
        }
        Ok(())
    }
}

/// Pairs `(a, b)` of transactions (ids) where `a` completed before `b` was invoked – enough of them
/// that every such pair is implied by a path, but not all (which would be quadratic). Events are
/// walked in order keeping a *frontier*: the completed transactions not yet followed by a later
/// completed one. A new invocation links from the whole frontier; a completion removes from the
/// frontier the transactions it was linked from (they are reachable through it).
pub(crate) fn realtime_pairs(txns: &[&Txn]) -> Vec<(usize, usize)> {
    // (event index, is completion, txn)
    let mut events: Vec<(usize, bool, usize)> = Vec::with_capacity(txns.len() * 2);
    for txn in txns {
        events.push((txn.invoke_index, false, txn.id));
        if let (true, Some(done)) = (txn.is_ok(), txn.complete_index) {
            events.push((done, true, txn.id));
        }
    }
    events.sort_unstable();
    let mut frontier: BTreeSet<usize> = BTreeSet::new();
    let mut linked_from: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut pairs = Vec::new();
    for (_, completion, txn) in events {
        if completion {
            for a in linked_from.remove(&txn).unwrap_or_default() {
                frontier.remove(&a);
            }
            frontier.insert(txn);
        } else {
            let from: Vec<usize> = frontier.iter().copied().collect();
            pairs.extend(from.iter().map(|&a| (a, txn)));
            linked_from.insert(txn, from);
        }
    }
    pairs
}

/// Check a transactional history. `Err` only when the history breaks Elle's assumptions (a value
/// written twice, a micro-op of the other workload).
pub fn check(history: &TxnHistory, options: &Options) -> Result<Report, InputError> {
    let mut graph = Graph::new(history.txns.len());
    let mut anomalies = Vec::new();
    match history.workload {
        Workload::ListAppend => list_append::analyse(history, &mut graph, &mut anomalies)?,
        Workload::RwRegister => rw_register::analyse(history, options, &mut graph, &mut anomalies)?,
    }
    let live: Vec<&Txn> = history.txns.iter().filter(|t| t.outcome != history::TxnOutcome::Fail).collect();
    if options.realtime {
        for (a, b) in realtime_pairs(&live) {
            let completed = history.txns[a].complete_index.unwrap_or(0);
            graph.add(
                a,
                b,
                EdgeKind::Realtime,
                Why::Realtime { completed, invoked: history.txns[b].invoke_index },
            );
        }
    }
    if options.process {
        // A process's transactions in invocation order; after an `info` the client is gone (Jepsen
        // gives its successor a new process id), so only a committed transaction links onwards.
        let mut last: BTreeMap<u64, usize> = BTreeMap::new();
        for txn in &live {
            if let Some(&previous) = last.get(&txn.process) {
                if history.txns[previous].is_ok() {
                    graph.add(previous, txn.id, EdgeKind::Process, Why::Process { process: txn.process });
                }
            }
            last.insert(txn.process, txn.id);
        }
    }

    let mut unexplained = Vec::new();
    let with_order = options.realtime || options.process;
    for component in graph.cyclic_components() {
        let mut found: BTreeMap<String, Cycle> = BTreeMap::new();
        for spec in
            [CycleSpec::WwOnly, CycleSpec::AtLeastOneWr, CycleSpec::ExactlyOneRw, CycleSpec::AtLeastOneRw]
        {
            let cycle = graph::shortest_cycle(&graph, &component, spec, false).or_else(|| {
                with_order.then(|| graph::shortest_cycle(&graph, &component, spec, true)).flatten()
            });
            if let Some(edges) = cycle {
                let cycle = Cycle {
                    steps: edges.iter().map(|&e| graph.edges[e as usize].clone()).collect(),
                    component_size: component.len(),
                };
                found.entry(cycle.class()).or_insert(cycle);
            }
        }
        if found.is_empty() {
            unexplained.push(component.len());
        }
        anomalies.extend(found.into_values().map(Anomaly::Cycle));
    }

    let mut txns = BTreeMap::new();
    for anomaly in &anomalies {
        for id in anomaly.txns() {
            txns.entry(id).or_insert_with(|| history.txns[id].clone());
        }
    }
    Ok(Report {
        workload: history.workload,
        options: *options,
        txns_checked: history.txns.len(),
        edges: graph.edges.len(),
        anomalies,
        unexplained_components: unexplained,
        txns,
    })
}

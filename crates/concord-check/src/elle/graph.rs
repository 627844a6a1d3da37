//! The dependency graph among transactions, its strongly connected components, and the search for
//! a short cycle made of chosen kinds of edge.
//!
//! Nodes are transaction ids. Every edge `a → b` means "`a` must come before `b` in any serial order
//! the database could claim", and carries the evidence for it ([`Why`]). A cycle is therefore a proof
//! that no such order exists; which kinds of edge the cycle needs says which isolation level fell.
//!
//! * Strongly connected components by Tarjan's algorithm (iterative, so that a chain of 100 000
//!   transactions cannot overflow the stack): linear in nodes + edges. Only a component with more
//!   than one node can hold a cycle (there are no self-edges), and in a valid history every
//!   component is a single node – so the expensive part below never runs.
//! * Inside a component, [`shortest_cycle`] runs a breadth-first search from each node that is the
//!   source of an edge of the kind the anomaly requires (a wr for G1c, an rw for G-single and G2) over
//!   *states* `(node, counter)`, where the counter tracks what the anomaly needs (has a `wr` edge
//!   been taken? how many `rw` edges?). Breadth-first means the first cycle back to the start is a
//!   shortest one through that start; the best over starts is kept, within a work budget.

use super::history::Key;
use rustc_hash::FxHashMap;

/// The kinds of dependency (Adya's, plus the orders a stronger model adds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// Write-write: `b` overwrote (or appended right after) `a`'s write.
    Ww,
    /// Write-read: `b` read what `a` wrote.
    Wr,
    /// Read-write (anti-dependency): `a` read a version that `b` overwrote.
    Rw,
    /// Real time: `a` completed before `b` was invoked (strict serializability).
    Realtime,
    /// Process order: the same process ran `a`, then `b`.
    Process,
}

impl EdgeKind {
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Realtime => "realtime",
            EdgeKind::Process => "process",
        }
    }

    /// The orders that come from the consistency model rather than from the data.
    pub fn is_order(self) -> bool {
        matches!(self, EdgeKind::Realtime | EdgeKind::Process)
    }
}

/// Why the register version `prev` is known to come before `next` (rw-register only; list-append
/// versions are ordered by the lists themselves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// Every key starts at nil, before any write.
    Initial,
    /// Transaction `txn` read `prev` and then wrote `next`.
    ReadThenWrite { txn: usize },
    /// `prev`'s writer completed before `next`'s writer was invoked (an assumption that holds only
    /// for strict serializability / linearizable registers).
    Realtime,
}

/// The evidence for one edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// ww, list-append: `prev` (appended by the edge's source) comes right before `next` (appended
    /// by its target) in `key`'s version order.
    AppendAfter { key: Key, prev: i64, next: i64 },
    /// wr, list-append: the target read `key` as a list whose last element, `last`, the source
    /// appended.
    ReadAppended { key: Key, last: i64, len: usize },
    /// rw, list-append: the source read `key` ending at `last` (`None`: the empty list), and the
    /// target appended `next`, the first element after it appended by another transaction.
    ReadBeforeAppend { key: Key, last: Option<i64>, next: i64 },
    /// ww, rw-register: the target's write `next` followed the source's write `prev`.
    Overwrite { key: Key, prev: i64, next: i64, source: VersionSource },
    /// wr, rw-register: the target read `value`, written by the source.
    ReadWritten { key: Key, value: i64 },
    /// rw, rw-register: the source read `read`, and the target wrote `next`, a later version.
    ReadBeforeWrite { key: Key, read: Option<i64>, next: i64, source: VersionSource },
    /// realtime: the source's completion (event `completed`) came before the target's invocation
    /// (event `invoked`).
    Realtime { completed: usize, invoked: usize },
    /// process: both ran on `process`, the source first.
    Process { process: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    pub why: Why,
}

/// A directed multigraph over transaction ids `0..nodes`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub edges: Vec<Edge>,
    /// `out[n]`: indices into `edges` of the edges leaving `n`.
    out: Vec<Vec<u32>>,
}

impl Graph {
    pub fn new(nodes: usize) -> Graph {
        Graph { edges: Vec::new(), out: vec![Vec::new(); nodes] }
    }

    pub fn nodes(&self) -> usize {
        self.out.len()
    }

    /// Add `from → to`; self-edges are dropped (a transaction is not ordered against itself).
    pub fn add(&mut self, from: usize, to: usize, kind: EdgeKind, why: Why) {
        if from == to {
            return;
        }
        self.out[from].push(self.edges.len() as u32);
        self.edges.push(Edge { from, to, kind, why });
    }

    /// The strongly connected components with more than one node, each sorted, in order of their
    /// smallest node.
    pub fn cyclic_components(&self) -> Vec<Vec<usize>> {
        const UNSEEN: u32 = u32::MAX;
        let n = self.nodes();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut components = Vec::new();
        let mut next_index = 0u32;
        // The call stack of the recursive formulation: (node, position in its out-list).
        let mut calls: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            calls.push((root, 0));
            index[root] = next_index;
            low[root] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (node, ref mut position)) = calls.last_mut() {
                if let Some(&edge) = self.out[node].get(*position) {
                    *position += 1;
                    let to = self.edges[edge as usize].to;
                    if index[to] == UNSEEN {
                        index[to] = next_index;
                        low[to] = next_index;
                        next_index += 1;
                        stack.push(to);
                        on_stack[to] = true;
                        calls.push((to, 0));
                    } else if on_stack[to] {
                        low[node] = low[node].min(index[to]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[node]);
                }
                if low[node] == index[node] {
                    let mut component = Vec::new();
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_unstable();
                        components.push(component);
                    }
                }
            }
        }
        components.sort();
        components
    }
}

/// What a cycle must contain, as a small automaton over a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleSpec {
    /// Only ww (and order) edges: G0.
    WwOnly,
    /// ww and wr (and order) edges, at least one wr: G1c.
    AtLeastOneWr,
    /// Any data edges, exactly one rw: G-single.
    ExactlyOneRw,
    /// Any edges, at least one rw: G2.
    AtLeastOneRw,
}

impl CycleSpec {
    fn allows(self, kind: EdgeKind, with_order: bool) -> bool {
        match kind {
            EdgeKind::Realtime | EdgeKind::Process => with_order,
            EdgeKind::Ww => true,
            EdgeKind::Wr => self != CycleSpec::WwOnly,
            EdgeKind::Rw => matches!(self, CycleSpec::ExactlyOneRw | CycleSpec::AtLeastOneRw),
        }
    }

    /// The counter after taking an edge of `kind`; `None` if that breaks the spec.
    fn step(self, counter: u8, kind: EdgeKind) -> Option<u8> {
        match (self, kind) {
            (CycleSpec::AtLeastOneWr, EdgeKind::Wr) => Some(1),
            (CycleSpec::ExactlyOneRw, EdgeKind::Rw) if counter == 1 => None,
            (CycleSpec::ExactlyOneRw | CycleSpec::AtLeastOneRw, EdgeKind::Rw) => Some(1),
            _ => Some(counter),
        }
    }

    fn accepts(self, counter: u8) -> bool {
        self == CycleSpec::WwOnly || counter == 1
    }
}

/// Edge visits allowed to one search; a component too large to search fully still yields the
/// shortest cycle found within it (or none – and the component is reported without a cycle).
pub const SEARCH_BUDGET_EDGES: usize = 2_000_000;

/// A shortest cycle (as edge indices, in order) inside `component` that satisfies `spec`, using
/// order edges only if `with_order`.
pub fn shortest_cycle(
    graph: &Graph,
    component: &[usize],
    spec: CycleSpec,
    with_order: bool,
) -> Option<Vec<u32>> {
    // Local numbering of the component's nodes; states are `local * 2 + counter`.
    let local: FxHashMap<usize, usize> = component.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let states = component.len() * 2;
    let mut seen_stamp = vec![u32::MAX; states];
    let mut parent_edge = vec![0u32; states];
    let mut parent_state = vec![0u32; states];
    let mut budget = SEARCH_BUDGET_EDGES;
    let mut best: Option<Vec<u32>> = None;
    let mut queue: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    // A satisfying cycle contains an edge of the kind the spec requires (wr or rw); starting only
    // from the sources of such edges finds it without searching from every node of a large
    // component.
    let required = match spec {
        CycleSpec::WwOnly => None,
        CycleSpec::AtLeastOneWr => Some(EdgeKind::Wr),
        CycleSpec::ExactlyOneRw | CycleSpec::AtLeastOneRw => Some(EdgeKind::Rw),
    };
    let starts: Vec<usize> = component
        .iter()
        .copied()
        .filter(|&node| {
            required.is_none_or(|kind| {
                graph.out[node].iter().any(|&e| {
                    let edge = &graph.edges[e as usize];
                    edge.kind == kind && local.contains_key(&edge.to)
                })
            })
        })
        .collect();
    for (stamp, &start) in starts.iter().enumerate() {
        let stamp = stamp as u32;
        if budget == 0 || best.as_ref().is_some_and(|cycle| cycle.len() <= 2) {
            break;
        }
        queue.clear();
        let start_state = local[&start] * 2;
        seen_stamp[start_state] = stamp;
        queue.push_back(start_state);
        let mut found: Option<(usize, u32)> = None; // (state before the closing edge, closing edge)
        'bfs: while let Some(state) = queue.pop_front() {
            let (node, counter) = (component[state / 2], (state % 2) as u8);
            for &edge_index in &graph.out[node] {
                if budget == 0 {
                    break 'bfs;
                }
                budget -= 1;
                let edge = &graph.edges[edge_index as usize];
                if !spec.allows(edge.kind, with_order) {
                    continue;
                }
                let Some(&to_local) = local.get(&edge.to) else { continue };
                let Some(next_counter) = spec.step(counter, edge.kind) else { continue };
                if edge.to == start && spec.accepts(next_counter) {
                    found = Some((state, edge_index));
                    break 'bfs;
                }
                let next = to_local * 2 + next_counter as usize;
                if seen_stamp[next] != stamp {
                    seen_stamp[next] = stamp;
                    parent_edge[next] = edge_index;
                    parent_state[next] = state as u32;
                    queue.push_back(next);
                }
            }
        }
        if let Some((mut state, closing)) = found {
            let mut cycle = vec![closing];
            while state != start_state {
                let edge_index = parent_edge[state];
                cycle.push(edge_index);
                state = parent_state[state] as usize;
            }
            cycle.reverse();
            if best.as_ref().is_none_or(|b| cycle.len() < b.len()) {
                best = Some(cycle);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why() -> Why {
        Why::Process { process: 0 }
    }

    #[test]
    fn components_and_cycles() {
        let mut g = Graph::new(5);
        g.add(0, 1, EdgeKind::Ww, why());
        g.add(1, 2, EdgeKind::Wr, why());
        g.add(2, 0, EdgeKind::Rw, why());
        g.add(3, 4, EdgeKind::Ww, why());
        let components = g.cyclic_components();
        assert_eq!(components, vec![vec![0, 1, 2]]);
        assert!(shortest_cycle(&g, &components[0], CycleSpec::WwOnly, false).is_none());
        assert!(shortest_cycle(&g, &components[0], CycleSpec::AtLeastOneWr, false).is_none());
        let cycle = shortest_cycle(&g, &components[0], CycleSpec::ExactlyOneRw, false).unwrap();
        assert_eq!(cycle.len(), 3);
        // The edges chain up.
        for pair in cycle.windows(2) {
            assert_eq!(g.edges[pair[0] as usize].to, g.edges[pair[1] as usize].from);
        }
        assert_eq!(g.edges[cycle[2] as usize].to, g.edges[cycle[0] as usize].from);
    }

    #[test]
    fn exactly_one_rw_rejects_two() {
        let mut g = Graph::new(2);
        g.add(0, 1, EdgeKind::Rw, why());
        g.add(1, 0, EdgeKind::Rw, why());
        let c = g.cyclic_components();
        assert!(shortest_cycle(&g, &c[0], CycleSpec::ExactlyOneRw, false).is_none());
        assert_eq!(shortest_cycle(&g, &c[0], CycleSpec::AtLeastOneRw, false).unwrap().len(), 2);
    }

    #[test]
    fn tarjan_survives_long_chains() {
        let n = 200_000;
        let mut g = Graph::new(n);
        for i in 0..n - 1 {
            g.add(i, i + 1, EdgeKind::Ww, why());
        }
        g.add(n - 1, 0, EdgeKind::Ww, why());
        assert_eq!(g.cyclic_components()[0].len(), n);
    }
}

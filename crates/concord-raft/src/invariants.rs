//! Raft's safety properties (Figure 3), checked across a whole cluster after every step.
//!
//! The simulator calls [`check_cluster`] with every node (`None` for a crashed one) and two records
//! it keeps for the whole run, because the properties are about *all time*, not one instant:
//!
//! * **Election Safety**: at most one leader per term, ever ([`ElectionRecord`]).
//! * **Log Matching**: if two logs hold an entry with the same index and term, the entries are
//!   identical, and so are all entries before them (checked pairwise through each entry's hash and
//!   its predecessor's term).
//! * **Leader Completeness**: a leader holds every entry committed in an earlier term. An entry is
//!   recorded as committed together with the lowest term of a node that saw it committed; a leader
//!   of a *higher* term must hold it.
//! * **State Machine Safety**: no two nodes ever commit (hence apply) different entries at one index
//!   ([`CommitRecord`]).
//!
//! Plus per-node sanity: `snapshot ≤ applied ≤ commit ≤ last`, and terms never decrease along a log.

use crate::node::RaftNode;
use concord_core::{NodeId, StateMachine};
use std::collections::BTreeMap;

/// Who led each term, across the whole run.
#[derive(Clone, Debug, Default)]
pub struct ElectionRecord {
    pub leaders: BTreeMap<u64, NodeId>,
}

/// What was committed at each index, across the whole run.
#[derive(Clone, Debug, Default)]
pub struct CommitRecord {
    /// index → (term, entry hash, lowest term of a node that saw it committed).
    pub committed: BTreeMap<u64, (u64, u64, u64)>,
    /// Per node: commit index up to which its entries were recorded.
    checked: BTreeMap<NodeId, u64>,
}

/// Check the cluster's safety properties; the first violation found is returned as a message.
pub fn check_cluster<S: StateMachine>(
    nodes: &[(NodeId, Option<&RaftNode<S>>)],
    elections: &mut ElectionRecord,
    commits: &mut CommitRecord,
) -> Result<(), String> {
    let alive: Vec<(NodeId, &RaftNode<S>)> = nodes.iter().filter_map(|(id, n)| n.map(|n| (*id, n))).collect();

    for &(id, n) in &alive {
        let (snap, applied, commit, last) =
            (n.snapshot_index(), n.applied_index(), n.commit_index(), n.last_log_index());
        if !(snap <= applied && applied <= commit && commit <= last) {
            return Err(format!(
                "{id}: need snapshot {snap} ≤ applied {applied} ≤ commit {commit} ≤ last {last}"
            ));
        }
        let mut prev = n.log_term_at(snap).unwrap_or(0);
        for i in snap + 1..=last {
            let t = n.log_term_at(i).ok_or_else(|| format!("{id}: hole in the log at {i}"))?;
            if t < prev {
                return Err(format!("{id}: log term decreases at index {i} ({t} after {prev})"));
            }
            prev = t;
        }
    }

    // Election Safety.
    for &(id, n) in &alive {
        if n.is_leader() {
            let term = n.current_term();
            match elections.leaders.get(&term) {
                Some(&other) if other != id => {
                    return Err(format!("election safety: {other} and {id} both led term {term}"));
                }
                _ => {
                    elections.leaders.insert(term, id);
                }
            }
        }
    }

    // Log Matching: same (index, term) ⇒ same entry and same predecessor term.
    let mut seen: BTreeMap<(u64, u64), (NodeId, u64, Option<u64>)> = BTreeMap::new();
    for &(id, n) in &alive {
        for i in n.snapshot_index() + 1..=n.last_log_index() {
            let term = n.log_term_at(i).expect("held");
            let hash = n.log_hash_at(i).expect("held");
            let prev_term = if i - 1 > n.snapshot_index() || n.snapshot_index() == i - 1 {
                n.log_term_at(i - 1)
            } else {
                None
            };
            match seen.get(&(i, term)) {
                Some(&(other, h, p)) => {
                    if h != hash {
                        return Err(format!(
                            "log matching: {other} and {id} hold different entries at {i} (term {term})"
                        ));
                    }
                    if let (Some(a), Some(b)) = (p, prev_term) {
                        if a != b {
                            return Err(format!(
                                "log matching: {other} and {id} agree at {i} (term {term}) but not at {} ({a} vs {b})",
                                i - 1
                            ));
                        }
                    }
                }
                None => {
                    seen.insert((i, term), (id, hash, prev_term));
                }
            }
        }
    }

    // State Machine Safety: record committed entries, compare with earlier records.
    for &(id, n) in &alive {
        let from =
            commits.checked.get(&id).copied().unwrap_or(0).min(n.commit_index()).max(n.snapshot_index());
        for i in from + 1..=n.commit_index() {
            let term = n.log_term_at(i).expect("committed entries above the snapshot are held");
            let hash = n.log_hash_at(i).expect("held");
            match commits.committed.get_mut(&i) {
                Some((t, h, seen_in)) => {
                    if *t != term || *h != hash {
                        return Err(format!(
                            "state machine safety: {id} committed (term {term}) at {i}, but term {t} was committed there before"
                        ));
                    }
                    *seen_in = (*seen_in).min(n.current_term());
                }
                None => {
                    commits.committed.insert(i, (term, hash, n.current_term()));
                }
            }
        }
        commits.checked.insert(id, n.commit_index());
    }

    // Leader Completeness.
    for &(id, n) in &alive {
        if !n.is_leader() {
            continue;
        }
        let term = n.current_term();
        for (&i, &(t, h, seen_in)) in commits.committed.range(n.snapshot_index() + 1..) {
            if seen_in >= term {
                continue;
            }
            if n.log_term_at(i) != Some(t) || n.log_hash_at(i) != Some(h) {
                return Err(format!(
                    "leader completeness: leader {id} of term {term} lacks entry {i} (term {t}) committed by term {seen_in}"
                ));
            }
        }
    }
    Ok(())
}

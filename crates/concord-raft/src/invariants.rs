//! Raft's safety properties (Figure 3), checked across a whole cluster after every step.
//!
//! The simulator keeps one [`SafetyMonitor`] per run and calls [`SafetyMonitor::check`] with every
//! node (`None` for a crashed one) after each step. The monitor remembers the whole run, because the
//! properties are about *all time*, not one instant:
//!
//! * **Election Safety**: at most one leader per term, ever ([`ElectionRecord`]).
//! * **Log Matching**: an `(index, term)` pair names one entry for the whole run – only the leader
//!   of `term` creates entries of that term, once per index – so any two logs, at any two moments,
//!   that hold an entry at the same index and term hold the same entry with the same predecessor
//!   term. Checked through each entry's hash and its predecessor's term against everything seen
//!   before; by induction on the index this gives the paper's "identical up to there".
//! * **Leader Completeness**: a leader holds every entry committed in an earlier term. An entry is
//!   recorded as committed together with the lowest term of a node that saw it committed; a leader
//!   of a *higher* term must hold it.
//! * **State Machine Safety**: no two nodes ever commit (hence apply) different entries at one index
//!   ([`CommitRecord`]).
//!
//! Plus per-node sanity: `snapshot ≤ applied ≤ commit ≤ last`, and terms never decrease along a log.
//!
//! The checks are incremental, so that checking after every one of millions of steps stays cheap:
//! the monitor remembers what each node's log looked like when last checked and examines only the
//! part that changed (an append, or a truncation and what replaced it).

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
}

/// What the monitor saw of one node's log when it last checked it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LogView {
    snapshot: u64,
    /// `(term, hash)` of entries `snapshot + 1 ..`, as last checked.
    entries: Vec<(u64, u64)>,
    commit: u64,
    applied: u64,
    /// The term it led in, if it was leader.
    led: Option<u64>,
}

/// Every safety property, checked incrementally over a whole run.
#[derive(Clone, Debug, Default)]
pub struct SafetyMonitor {
    pub elections: ElectionRecord,
    pub commits: CommitRecord,
    /// Every entry ever seen in any log: `(index, term)` → `(hash, predecessor's term)`.
    entries: BTreeMap<(u64, u64), (u64, Option<u64>)>,
    views: BTreeMap<NodeId, LogView>,
    /// Indexes whose commit record was created or lowered during the current check: every leader
    /// must hold them if they were committed before its term.
    fresh_commits: Vec<u64>,
}

impl SafetyMonitor {
    /// Check the cluster; the first violation found is returned.
    pub fn check<S: StateMachine>(
        &mut self,
        nodes: &[(NodeId, Option<&RaftNode<S>>)],
    ) -> Result<(), InvariantViolation> {
        for &(id, node) in nodes {
            let Some(n) = node else {
                self.views.remove(&id); // a restarted node is checked from scratch
                continue;
            };
            self.check_node(id, n)?;
        }
        // Entries recorded as committed just now may predate a leader elected earlier.
        let fresh = std::mem::take(&mut self.fresh_commits);
        for &(id, node) in nodes {
            if let Some(n) = node.filter(|n| n.is_leader()) {
                self.check_leader_holds(id, n, fresh.iter().copied())?;
            }
        }
        Ok(())
    }

    fn check_node<S: StateMachine>(&mut self, id: NodeId, n: &RaftNode<S>) -> Result<(), InvariantViolation> {
        let (snap, applied, commit, last) =
            (n.snapshot_index(), n.applied_index(), n.commit_index(), n.last_log_index());
        if !(snap <= applied && applied <= commit && commit <= last) {
            return Err(InvariantViolation::IndexOrder { node: id, snapshot: snap, applied, commit, last });
        }
        let leading = n.is_leader().then(|| n.current_term());

        // Which part of the log is new since the last check? Walk back from the newest entry to
        // the first one that is unchanged (usually: nothing changed, or a few were appended).
        let view = self.views.remove(&id).unwrap_or_default();
        let held = |i: u64| -> Option<(u64, u64)> { Some((n.log_term_at(i)?, n.log_hash_at(i)?)) };
        let viewed = |i: u64| -> Option<(u64, u64)> {
            i.checked_sub(view.snapshot + 1).and_then(|k| view.entries.get(k as usize)).copied()
        };
        let same_snapshot = view.snapshot == snap;
        let mut first_new = last + 1;
        while first_new > snap + 1 {
            let i = first_new - 1;
            if same_snapshot && viewed(i).is_some() && viewed(i) == held(i) {
                break;
            }
            first_new = i;
        }
        let viewed_last = view.snapshot + view.entries.len() as u64;
        let unchanged = same_snapshot
            && first_new == last + 1
            && viewed_last == last
            && view.commit == commit
            && view.applied == applied
            && view.led == leading;
        if !unchanged {
            self.check_new_entries(id, n, first_new, last)?;
            self.check_election(id, leading)?;
            self.check_commits(id, n, if same_snapshot { view.commit } else { 0 })?;
            // A new leader, or a leader whose log was cut back, must hold everything committed.
            if leading.is_some() && (view.led != leading || first_new <= viewed_last) {
                self.check_leader_completeness(id, n)?;
            }
        }
        let mut entries = view.entries;
        if same_snapshot {
            entries.truncate(first_new.saturating_sub(snap + 1) as usize);
            entries.extend((first_new..=last).filter_map(held));
        } else {
            entries = (snap + 1..=last).filter_map(held).collect();
        }
        self.views.insert(id, LogView { snapshot: snap, entries, commit, applied, led: leading });
        Ok(())
    }

    /// Log Matching and non-decreasing terms, for entries `from..=last`.
    fn check_new_entries<S: StateMachine>(
        &mut self,
        id: NodeId,
        n: &RaftNode<S>,
        from: u64,
        last: u64,
    ) -> Result<(), InvariantViolation> {
        let snap = n.snapshot_index();
        let mut prev = n.log_term_at(from - 1).unwrap_or(0);
        for i in from..=last {
            let hole = || InvariantViolation::Hole { node: id, index: i };
            let term = n.log_term_at(i).ok_or_else(hole)?;
            let hash = n.log_hash_at(i).ok_or_else(hole)?;
            if term < prev {
                return Err(InvariantViolation::TermDecreases { node: id, index: i, term, prev });
            }
            prev = term;
            let prev_term = if i > snap { n.log_term_at(i - 1) } else { None };
            match self.entries.get(&(i, term)) {
                Some(&(h, p)) => {
                    if h != hash {
                        return Err(InvariantViolation::LogMatchingEntry { node: id, index: i, term });
                    }
                    if let (Some(a), Some(b)) = (p, prev_term) {
                        if a != b {
                            return Err(InvariantViolation::LogMatchingPrevious {
                                node: id,
                                index: i,
                                term,
                                ours: b,
                                theirs: a,
                            });
                        }
                    }
                }
                None => {
                    self.entries.insert((i, term), (hash, prev_term));
                }
            }
        }
        Ok(())
    }

    /// Election Safety.
    fn check_election(&mut self, id: NodeId, leading: Option<u64>) -> Result<(), InvariantViolation> {
        let Some(term) = leading else { return Ok(()) };
        match self.elections.leaders.get(&term) {
            Some(&other) if other != id => {
                Err(InvariantViolation::ElectionSafety { term, first: other, second: id })
            }
            _ => {
                self.elections.leaders.insert(term, id);
                Ok(())
            }
        }
    }

    /// State Machine Safety: record entries committed since `checked`, compare with earlier records.
    fn check_commits<S: StateMachine>(
        &mut self,
        id: NodeId,
        n: &RaftNode<S>,
        checked: u64,
    ) -> Result<(), InvariantViolation> {
        let from = checked.min(n.commit_index()).max(n.snapshot_index());
        for i in from + 1..=n.commit_index() {
            let term = n.log_term_at(i).expect("committed entries above the snapshot are held");
            let hash = n.log_hash_at(i).expect("held");
            match self.commits.committed.get_mut(&i) {
                Some((t, h, seen_in)) => {
                    if *t != term || *h != hash {
                        return Err(InvariantViolation::StateMachineSafety {
                            node: id,
                            index: i,
                            term,
                            before: *t,
                        });
                    }
                    if n.current_term() < *seen_in {
                        *seen_in = n.current_term();
                        self.fresh_commits.push(i);
                    }
                }
                None => {
                    self.commits.committed.insert(i, (term, hash, n.current_term()));
                    self.fresh_commits.push(i);
                }
            }
        }
        Ok(())
    }

    /// Leader Completeness, over every committed entry the leader's log still covers.
    fn check_leader_completeness<S: StateMachine>(
        &self,
        id: NodeId,
        n: &RaftNode<S>,
    ) -> Result<(), InvariantViolation> {
        let indexes = self.commits.committed.range(n.snapshot_index() + 1..).map(|(&i, _)| i);
        self.check_leader_holds(id, n, indexes)
    }

    /// Leader Completeness for the committed entries at `indexes`.
    fn check_leader_holds<S: StateMachine>(
        &self,
        id: NodeId,
        n: &RaftNode<S>,
        indexes: impl Iterator<Item = u64>,
    ) -> Result<(), InvariantViolation> {
        let term = n.current_term();
        for i in indexes {
            let Some(&(t, h, seen_in)) = self.commits.committed.get(&i) else { continue };
            if seen_in >= term || i <= n.snapshot_index() {
                continue;
            }
            if n.log_term_at(i) != Some(t) || n.log_hash_at(i) != Some(h) {
                return Err(InvariantViolation::LeaderCompleteness {
                    leader: id,
                    term,
                    index: i,
                    entry_term: t,
                    committed_by: seen_in,
                });
            }
        }
        Ok(())
    }
}

/// A broken safety property (Figure 3), as [`SafetyMonitor::check`] reports it. Each variant says
/// which property and where; `Display` gives the one-line message the simulator prints.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// A node's indexes out of order: snapshot ≤ applied ≤ commit ≤ last must hold.
    #[error("{node}: need snapshot {snapshot} ≤ applied {applied} ≤ commit {commit} ≤ last {last}")]
    IndexOrder { node: NodeId, snapshot: u64, applied: u64, commit: u64, last: u64 },
    /// A node's log lacks an entry below its last index.
    #[error("{node}: hole in the log at {index}")]
    Hole { node: NodeId, index: u64 },
    /// Terms in a node's log decrease.
    #[error("{node}: log term decreases at index {index} ({term} after {prev})")]
    TermDecreases { node: NodeId, index: u64, term: u64, prev: u64 },
    /// Log Matching: two logs hold different entries at one index and term.
    #[error("log matching: {node} holds a different entry at {index} (term {term}) than another log held")]
    LogMatchingEntry { node: NodeId, index: u64, term: u64 },
    /// Log Matching: two logs agree at an index and term but not on the entry before it.
    #[error(
        "log matching: {node} agrees with another log at {index} (term {term}) but not at {} ({ours} vs {theirs})",
        index - 1
    )]
    LogMatchingPrevious { node: NodeId, index: u64, term: u64, ours: u64, theirs: u64 },
    /// Election Safety: two leaders in one term.
    #[error("election safety: {first} and {second} both led term {term}")]
    ElectionSafety { term: u64, first: NodeId, second: NodeId },
    /// State Machine Safety: two different entries committed at one index.
    #[error("state machine safety: {node} committed (term {term}) at {index}, but term {before} was committed there before")]
    StateMachineSafety { node: NodeId, index: u64, term: u64, before: u64 },
    /// Leader Completeness: a leader lacks an entry committed before its term.
    #[error("leader completeness: leader {leader} of term {term} lacks entry {index} (term {entry_term}) committed by term {committed_by}")]
    LeaderCompleteness { leader: NodeId, term: u64, index: u64, entry_term: u64, committed_by: u64 },
}

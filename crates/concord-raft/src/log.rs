//! The in-memory Raft log and its snapshot boundary (§5.3, §7).
//!
//! ```text
//!   snapshot (index s, term t)        entries[0]      entries[1]  …  entries[n-1]
//!   ────────────────────────────┐  ┌─────────────┐ ┌──────────┐    ┌──────────────┐
//!     compacted: only (s, t)    │  │ index s + 1 │ │ s + 2    │ …  │ s + n = last │
//!   ────────────────────────────┘  └─────────────┘ └──────────┘    └──────────────┘
//! ```
//!
//! Indexes start at 1; index 0 with term 0 is the empty log's "previous entry". Entries at or below
//! the snapshot index are gone, but the term of the snapshot's last entry is kept so that the
//! AppendEntries consistency check (§5.3) still works for the first entry after it.
//!
//! Each entry keeps its encoded size (for `max_bytes_per_append`) and a hash of its encoding (for the
//! invariant checker, which compares entries across nodes). The encoding is the record payload that
//! `storage.rs` stores (format byte and postcard), so the size counted is the size written.

use crate::membership::Membership;
use crate::message::Session;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry<C> {
    pub term: u64,
    pub index: u64,
    pub payload: Payload<C>,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload<C> {
    /// The entry a new leader appends at the start of its term, so it can commit something of its
    /// own term and learn the commit index (§5.4.2, §8).
    Noop,
    /// A client command, optionally with a session for exactly-once application. Shared, not
    /// copied: the leader sends each entry to every follower (and the simulator hands the same
    /// message to the follower's log), so a per-follower copy of every command was the largest
    /// single cost of replicating a write (a callgrind profile of the simulator's Raft benchmark,
    /// BENCHMARKS.md). On the wire it is the command itself (serde's `rc` feature).
    Command { session: Option<Session>, command: Arc<C> },
    /// A new membership (in force as soon as it is appended, see `membership.rs`).
    Config(Membership),
}

#[derive(Clone, Debug)]
struct Slot<C> {
    entry: Entry<C>,
    bytes: usize,
    hash: u64,
}

/// The log: a snapshot boundary followed by contiguous entries.
#[derive(Clone, Debug)]
pub struct RaftLog<C> {
    snapshot_index: u64,
    snapshot_term: u64,
    slots: Vec<Slot<C>>,
}

impl<C: Clone + Serialize + DeserializeOwned> RaftLog<C> {
    /// An empty log whose compacted prefix ends at `(snapshot_index, snapshot_term)`.
    pub fn new(snapshot_index: u64, snapshot_term: u64) -> Self {
        RaftLog { snapshot_index, snapshot_term, slots: Vec::new() }
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    pub fn snapshot_term(&self) -> u64 {
        self.snapshot_term
    }

    /// The first index still held as an entry.
    pub fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.slots.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.slots.last().map_or(self.snapshot_term, |s| s.entry.term)
    }

    fn pos(&self, index: u64) -> Option<usize> {
        if index <= self.snapshot_index || index > self.last_index() {
            None
        } else {
            Some((index - self.snapshot_index - 1) as usize)
        }
    }

    /// The term of the entry at `index`: known for held entries and for the snapshot boundary.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.pos(index).map(|p| self.slots[p].entry.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry<C>> {
        self.pos(index).map(|p| &self.slots[p].entry)
    }

    /// The hash of the encoded entry at `index`.
    pub fn hash_at(&self, index: u64) -> Option<u64> {
        self.pos(index).map(|p| self.slots[p].hash)
    }

    /// Entries from `from` on, at most `max_count` of them and – after the first – at most
    /// `max_bytes` encoded bytes.
    pub fn entries_from(&self, from: u64, max_count: usize, max_bytes: usize) -> Vec<Entry<C>> {
        let Some(start) = self.pos(from) else { return Vec::new() };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for slot in self.slots[start..].iter().take(max_count) {
            if !out.is_empty() && bytes + slot.bytes > max_bytes {
                break;
            }
            bytes += slot.bytes;
            out.push(slot.entry.clone());
        }
        out
    }

    /// Entries in `[lo, hi]` that are still held (for inspection and the invariant checker).
    pub fn entries_in(&self, lo: u64, hi: u64) -> Vec<Entry<C>> {
        (lo.max(self.first_index())..=hi.min(self.last_index()))
            .filter_map(|i| self.entry(i).cloned())
            .collect()
    }

    /// Append one entry at `last_index() + 1`; returns its encoding (the record payload that gets
    /// persisted: `storage::seal` adds the checksum).
    pub fn append(&mut self, entry: Entry<C>) -> Vec<u8> {
        assert_eq!(entry.index, self.last_index() + 1, "log entries are contiguous");
        // Terms never decrease along a correct log; not asserted here because the
        // `skip_log_matching_check` mutation breaks it on purpose (the invariant checker reports it).
        let encoded = crate::storage::payload(&entry);
        self.slots.push(Slot { bytes: encoded.len(), hash: concord_core::hash::fnv1a64(&encoded), entry });
        encoded
    }

    /// Remove every entry at `index` and above (a conflicting suffix, §5.3).
    pub fn truncate_from(&mut self, index: u64) {
        assert!(index > self.snapshot_index, "never truncate into the snapshot");
        if let Some(p) = self.pos(index) {
            self.slots.truncate(p);
        }
    }

    /// Drop entries up to and including `index` (now covered by a snapshot whose last term is
    /// `term`), keeping any later entries.
    pub fn compact_to(&mut self, index: u64, term: u64) {
        if index <= self.snapshot_index {
            return;
        }
        if index >= self.last_index() {
            self.slots.clear();
        } else {
            let p = self.pos(index).expect("index inside the log");
            debug_assert_eq!(self.slots[p].entry.term, term, "snapshot term matches the log");
            self.slots.drain(..=p);
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Discard everything and restart from a snapshot (an InstallSnapshot that does not match).
    pub fn reset_to(&mut self, index: u64, term: u64) {
        self.slots.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// The first index of the run of entries with `term` that contains `index` (fast back-off hint).
    pub fn first_index_of_term_at(&self, index: u64) -> u64 {
        let Some(term) = self.term_at(index) else { return index };
        let mut i = index;
        while i > self.first_index() && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index at or below `upto` whose entry has `term`, if the log holds one.
    pub fn last_index_of_term(&self, term: u64, upto: u64) -> Option<u64> {
        let mut i = upto.min(self.last_index());
        while i >= self.first_index() {
            match self.term_at(i) {
                Some(t) if t == term => return Some(i),
                Some(t) if t < term => return None,
                _ => {}
            }
            i -= 1;
        }
        None
    }

    /// Whether a log ending at `(last_term, last_index)` is at least as up to date as this one
    /// (§5.4.1: compare last terms, then lengths).
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64) -> Entry<u64> {
        Entry { term, index, payload: Payload::Command { session: None, command: Arc::new(index) } }
    }

    fn log_with(terms: &[u64]) -> RaftLog<u64> {
        let mut log = RaftLog::new(0, 0);
        for (i, &t) in terms.iter().enumerate() {
            log.append(entry(t, i as u64 + 1));
        }
        log
    }

    #[test]
    fn terms_and_boundaries() {
        let mut log = log_with(&[1, 1, 2, 3, 3]);
        assert_eq!((log.last_index(), log.last_term()), (5, 3));
        assert_eq!(log.term_at(0), Some(0));
        assert_eq!(log.term_at(6), None);
        log.compact_to(2, 1);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.term_at(1), None);
        assert_eq!(log.first_index(), 3);
        log.truncate_from(4);
        assert_eq!(log.last_index(), 3);
    }

    #[test]
    fn conflict_hints() {
        let log = log_with(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.last_index_of_term(2, 6), Some(5));
        assert_eq!(log.last_index_of_term(3, 6), None);
    }

    #[test]
    fn batches_respect_count_and_bytes_but_send_at_least_one() {
        let log = log_with(&[1; 10]);
        assert_eq!(log.entries_from(3, 4, usize::MAX).len(), 4);
        assert_eq!(log.entries_from(3, 100, 1).len(), 1);
        assert_eq!(log.entries_from(11, 4, 100).len(), 0);
    }
}

//! [`Engine`]: where a [`KvStore`](crate::KvStore) keeps its entries.
//!
//! The store's *logic* – revisions, CAS, transactions, TTL – is the same whatever holds the bytes,
//! so it is written once, against this small trait, and the bytes live in one of two engines:
//!
//! | engine | where | used by |
//! |---|---|---|
//! | [`MemEngine`] | a `BTreeMap` in memory | the simulator, tests, anything that snapshots whole states |
//! | `RedbEngine` (in `concord-server`) | a [redb](https://docs.rs/redb) file on disk | the real database: data larger than memory |
//!
//! An engine holds three things: the entries in key order, the store's revision, and an index of
//! `(deadline, key)` for keys with a TTL. The index is derived – the engine keeps it in step with
//! the entries on every [`Engine::put`] and [`Engine::remove`] – so the store never has to.
//!
//! Engines are infallible by signature. An engine on a disk that fails mid-apply cannot return
//! the failure as the command's output (the other replicas applied the same command and succeeded:
//! the states would diverge), so it stops the node instead, as a failed WAL sync does.

use crate::store::Entry;
use concord_core::{StateMachineError, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Reading an engine's state (also the read-only view of a durable engine's last checkpoint).
pub trait EngineRead {
    /// The entry stored under `key`.
    fn get(&self, key: &[u8]) -> Option<Entry>;

    /// Visit the entries with keys in `[start, end)` (`end` `None`: to the last key) in key order,
    /// until `visit` returns `false`.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &Entry) -> bool);

    /// At most `max` keys whose deadline is at or before `now`, earliest deadline first.
    fn overdue(&self, now: Time, max: usize) -> Vec<(Time, Vec<u8>)>;

    /// Visit the whole deadline index in order (for invariant checks).
    fn scan_deadlines(&self, visit: &mut dyn FnMut(Time, &[u8]));

    /// How many keys are stored.
    fn len(&self) -> u64;

    /// How many keys have a deadline (a TTL): `INFO keyspace`'s `expires`. The default counts the
    /// deadline index; engines that know the number cheaply should say so (it is asked after
    /// every batch the node applies).
    fn deadlines_len(&self) -> u64 {
        let mut n = 0;
        self.scan_deadlines(&mut |_, _| n += 1);
        n
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store's revision.
    fn revision(&self) -> u64;
}

/// Storage for a key-value store's entries, revision and deadline index.
pub trait Engine: EngineRead {
    /// Store `entry` under `key`, replacing any previous one (and its deadline in the index).
    fn put(&mut self, key: &[u8], entry: Entry);

    /// Remove `key` (and its deadline); the entry it held.
    fn remove(&mut self, key: &[u8]) -> Option<Entry>;

    fn set_revision(&mut self, revision: u64);

    /// Replace everything with `revision` and `entries` (restoring a snapshot).
    fn replace_all(&mut self, revision: u64, entries: BTreeMap<Vec<u8>, Entry>);

    /// Whether the engine keeps the state on disk, checkpointed (see
    /// [`StateMachine::is_durable`](concord_core::StateMachine::is_durable)).
    fn is_durable(&self) -> bool {
        false
    }

    /// Durable engines: commit the state durably, with the consensus layer's `sidecar`.
    fn checkpoint(&mut self, _sidecar: Vec<u8>) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable engines: the sidecar of the last checkpoint.
    fn checkpoint_sidecar(&self) -> Option<Vec<u8>> {
        None
    }

    /// Durable engines: the state as of the last checkpoint, read-only (what a snapshot exports).
    fn at_checkpoint(&self) -> Option<Box<dyn EngineRead + '_>> {
        None
    }

    /// Durable engines: see [`StateMachine::export_len`](concord_core::StateMachine::export_len).
    fn export_len(&mut self) -> Result<Option<u64>, StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable engines: see [`StateMachine::export_read`](concord_core::StateMachine::export_read).
    fn export_read(&mut self, _offset: u64, _max: usize) -> Result<Vec<u8>, StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable engines: see [`StateMachine::import_chunk`](concord_core::StateMachine::import_chunk).
    fn import_chunk(&mut self, _offset: u64, _bytes: &[u8]) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }

    /// Durable engines: see [`StateMachine::import_finish`](concord_core::StateMachine::import_finish).
    fn import_finish(&mut self) -> Result<(), StateMachineError> {
        Err(StateMachineError::NotDurable)
    }
}

/// The in-memory engine: an ordered map and an ordered set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemEngine {
    revision: u64,
    entries: BTreeMap<Vec<u8>, Entry>,
    /// `(expires_at, key)` for every entry with a deadline: derived from `entries`.
    deadlines: BTreeSet<(Time, Vec<u8>)>,
}

impl EngineRead for MemEngine {
    fn get(&self, key: &[u8]) -> Option<Entry> {
        self.entries.get(key).cloned()
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &Entry) -> bool) {
        let end = match end {
            // BTreeMap::range panics on start > end: such a range is simply empty.
            Some(end) if start > end => return,
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        for (key, entry) in self.entries.range::<[u8], _>((Bound::Included(start), end)) {
            if !visit(key, entry) {
                return;
            }
        }
    }

    fn overdue(&self, now: Time, max: usize) -> Vec<(Time, Vec<u8>)> {
        self.deadlines.iter().take_while(|(at, _)| *at <= now).take(max).cloned().collect()
    }

    fn scan_deadlines(&self, visit: &mut dyn FnMut(Time, &[u8])) {
        for (at, key) in &self.deadlines {
            visit(*at, key);
        }
    }

    fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    fn deadlines_len(&self) -> u64 {
        self.deadlines.len() as u64
    }

    fn revision(&self) -> u64 {
        self.revision
    }
}

impl Engine for MemEngine {
    fn put(&mut self, key: &[u8], entry: Entry) {
        if let Some(at) = entry.expires_at {
            self.deadlines.insert((at, key.to_vec()));
        }
        if let Some(old) = self.entries.insert(key.to_vec(), entry) {
            let replaced = old.expires_at.filter(|at| Some(*at) != self.entries[key].expires_at);
            if let Some(at) = replaced {
                self.deadlines.remove(&(at, key.to_vec()));
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(at) = entry.expires_at {
            self.deadlines.remove(&(at, key.to_vec()));
        }
        Some(entry)
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    fn replace_all(&mut self, revision: u64, entries: BTreeMap<Vec<u8>, Entry>) {
        self.deadlines = entries.iter().filter_map(|(k, e)| e.expires_at.map(|at| (at, k.clone()))).collect();
        self.entries = entries;
        self.revision = revision;
    }
}

/// Every `(key, entry)` of `engine` in key order. For checks and small stores: it holds them all.
pub fn collect_entries(engine: &(impl EngineRead + ?Sized)) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    engine.scan(&[], None, &mut |key, entry| {
        out.insert(key.to_vec(), entry.clone());
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, expires_at: Option<u64>) -> Entry {
        Entry {
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            expires_at: expires_at.map(Time),
        }
    }

    fn deadlines(engine: &MemEngine) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        engine.scan_deadlines(&mut |at, key| out.push((at.0, key.to_vec())));
        out
    }

    #[test]
    fn the_deadline_index_follows_puts_and_removes() {
        let mut e = MemEngine::default();
        e.put(b"a", entry("1", Some(10)));
        e.put(b"b", entry("1", Some(5)));
        assert_eq!(deadlines(&e), vec![(5, b"b".to_vec()), (10, b"a".to_vec())]);
        // Same deadline again, then a new one, then none.
        e.put(b"a", entry("2", Some(10)));
        assert_eq!(deadlines(&e), vec![(5, b"b".to_vec()), (10, b"a".to_vec())]);
        e.put(b"a", entry("3", Some(20)));
        assert_eq!(deadlines(&e), vec![(5, b"b".to_vec()), (20, b"a".to_vec())]);
        e.put(b"a", entry("4", None));
        assert_eq!(deadlines(&e), vec![(5, b"b".to_vec())]);
        assert_eq!(e.overdue(Time(5), 10), vec![(Time(5), b"b".to_vec())]);
        assert_eq!(e.overdue(Time(4), 10), vec![]);
        e.remove(b"b");
        assert_eq!(deadlines(&e), vec![]);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn scans_are_ordered_bounded_and_stoppable() {
        let mut e = MemEngine::default();
        for k in ["a", "b", "c", "d"] {
            e.put(k.as_bytes(), entry(k, None));
        }
        let keys = |start: &[u8], end: Option<&[u8]>, max: usize| {
            let mut out = Vec::new();
            e.scan(start, end, &mut |k, _| {
                out.push(String::from_utf8(k.to_vec()).unwrap());
                out.len() < max
            });
            out
        };
        assert_eq!(keys(b"b", Some(b"d"), 10), ["b", "c"]);
        assert_eq!(keys(b"", None, 3), ["a", "b", "c"]);
        assert_eq!(keys(b"d", Some(b"a"), 10), Vec::<String>::new());
    }
}

//! The change feed: which user keys the applied commands changed, for whoever caches them.
//!
//! A cache in front of the store – a Redis client's own cache under `CLIENT TRACKING`, or a
//! cache tier – stays correct only if it hears of every write to a key it holds. The store is the
//! one place that knows exactly which keys a command changed: a Lua script may write keys it did
//! not declare, `FLUSHALL` removes everything, a snapshot replaces the whole state. So the store
//! records them while it applies, and the node that hosts it drains the record after every batch
//! and hands it to the caches ([`KvStore::take_changes`](crate::KvStore::take_changes)).
//!
//! Recording is off until [`KvStore::record_changes`](crate::KvStore::record_changes) turns it on
//! (the simulator and most tests never pay for it). It is node-local observation, not replicated
//! state: replicas record the same keys because they apply the same commands, but nothing of it
//! reaches a snapshot or the log.
//!
//! # What is recorded
//! Every user key whose entry or collection records were written or removed, with the store
//! revision of the command that did it (a collection's internal records count as their owner key,
//! see [`crate::redis`]). A command that rewrites a key to the same bytes still counts: a cache
//! must not have to compare values. Keys come in apply order, one per command and key.
//!
//! Past [`ChangeLog::limit`] keys between two drains – a `FLUSHALL` of a large store, a burst –
//! the list is dropped and [`Changes::everything`] set instead: "forget all you cached". A
//! restored snapshot sets it too. That is always correct, only less precise; what the log must
//! never do is lose a key silently.

/// What changed since the last drain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `(user key, store revision of the change)`, in apply order. Empty when `everything`.
    pub keys: Vec<(Vec<u8>, u64)>,
    /// Any key may have changed: invalidate every cached key.
    pub everything: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.everything
    }
}

/// The store's recorder (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeLog {
    changes: Changes,
    /// The revision the command being applied writes at.
    revision: u64,
    /// How many keys are kept between two drains before the log gives up and says "everything".
    pub limit: usize,
}

/// Keys kept between two drains by default. A node drains after every batch of at most a few
/// thousand commands, so only bulk removals (`FLUSHALL`, `DEL` of a range) reach it.
pub const DEFAULT_CHANGE_LIMIT: usize = 16_384;

impl ChangeLog {
    pub fn new(limit: usize) -> ChangeLog {
        ChangeLog { changes: Changes::default(), revision: 0, limit }
    }

    /// The next records belong to a command writing at `revision`.
    pub(crate) fn begin(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// An engine key was written or removed.
    pub(crate) fn record(&mut self, engine_key: &[u8]) {
        if self.changes.everything {
            return;
        }
        let key = crate::redis::owner_key(engine_key).unwrap_or(engine_key);
        // A collection command touches its key's entry, header and member records in a row:
        // one change, not three.
        if let Some((last, revision)) = self.changes.keys.last() {
            if *revision == self.revision && last == key {
                return;
            }
        }
        if self.changes.keys.len() >= self.limit {
            self.everything();
            return;
        }
        self.changes.keys.push((key.to_vec(), self.revision));
    }

    /// Every key may have changed.
    pub(crate) fn everything(&mut self) {
        self.changes.keys = Vec::new();
        self.changes.everything = true;
    }

    /// What was recorded since the last call; the log starts empty again.
    pub fn take(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }
}

/// An engine that tells a [`ChangeLog`] about every key it writes or removes (used while the store
/// applies a command, see the module docs).
pub(crate) struct Recording<'a> {
    pub inner: &'a mut dyn crate::Engine,
    pub log: &'a mut ChangeLog,
}

impl crate::EngineRead for Recording<'_> {
    fn get(&self, key: &[u8]) -> Option<crate::Entry> {
        self.inner.get(key)
    }
    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &crate::Entry) -> bool) {
        self.inner.scan(start, end, visit)
    }
    fn overdue(&self, now: concord_core::Time, max: usize) -> Vec<(concord_core::Time, Vec<u8>)> {
        self.inner.overdue(now, max)
    }
    fn scan_deadlines(&self, visit: &mut dyn FnMut(concord_core::Time, &[u8])) {
        self.inner.scan_deadlines(visit)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn deadlines_len(&self) -> u64 {
        self.inner.deadlines_len()
    }
    fn revision(&self) -> u64 {
        self.inner.revision()
    }
}

impl crate::Engine for Recording<'_> {
    fn put(&mut self, key: &[u8], entry: crate::Entry) {
        self.log.record(key);
        self.inner.put(key, entry)
    }
    fn remove(&mut self, key: &[u8]) -> Option<crate::Entry> {
        let removed = self.inner.remove(key);
        if removed.is_some() {
            self.log.record(key);
        }
        removed
    }
    fn set_revision(&mut self, revision: u64) {
        self.inner.set_revision(revision)
    }
    fn replace_all(&mut self, revision: u64, entries: std::collections::BTreeMap<Vec<u8>, crate::Entry>) {
        self.log.everything();
        self.inner.replace_all(revision, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, KvLimits, KvStore, RedisCall, RedisExec, Write};
    use concord_core::{StateMachine, Time};

    fn redis(store: &mut KvStore, words: &[&str]) {
        let call = RedisCall::new(words.iter().map(|w| w.as_bytes().to_vec()).collect());
        store
            .execute(&Command::new(
                Time(1),
                Write::Redis(RedisExec { keys: vec![], watch: vec![], calls: vec![call] }),
            ))
            .unwrap();
    }

    fn keys(changes: &Changes) -> Vec<(&str, u64)> {
        changes.keys.iter().map(|(k, r)| (std::str::from_utf8(k).unwrap(), *r)).collect()
    }

    #[test]
    fn nothing_is_recorded_until_asked() {
        let mut store = KvStore::new(KvLimits::default());
        store.execute(&Command::put(Time(1), "a", "1")).unwrap();
        store.record_changes(DEFAULT_CHANGE_LIMIT);
        assert!(store.take_changes().is_empty());
    }

    #[test]
    fn every_kind_of_write_names_its_user_keys_with_their_revision() {
        let mut store = KvStore::new(KvLimits::default());
        store.record_changes(DEFAULT_CHANGE_LIMIT);
        store.execute(&Command::put(Time(1), "a", "1")).unwrap(); // rev 1
        store.execute(&Command::delete(Time(1), "missing")).unwrap(); // nothing changes
        store.execute(&Command::increment(Time(1), "n", 5)).unwrap(); // rev 2
        redis(&mut store, &["HSET", "h", "f1", "v", "f2", "v"]); // rev 3: one change for h
        redis(&mut store, &["SET", "a", "1", "NX"]); // nothing: a exists
        redis(&mut store, &["DEL", "h", "a"]); // rev 4
        assert_eq!(keys(&store.take_changes()), [("a", 1), ("n", 2), ("h", 3), ("h", 4), ("a", 4)]);
        assert!(store.take_changes().is_empty(), "a drain empties the log");
    }

    #[test]
    fn a_script_reports_the_keys_it_did_not_declare() {
        let mut store = KvStore::new(KvLimits::default());
        store.record_changes(DEFAULT_CHANGE_LIMIT);
        redis(&mut store, &["EVAL", "redis.call('SET', 'undeclared', 'x') return 1", "0"]);
        assert_eq!(keys(&store.take_changes()), [("undeclared", 1)]);
    }

    #[test]
    fn too_many_keys_or_a_restored_snapshot_mean_everything() {
        let mut store = KvStore::new(KvLimits::default());
        store.record_changes(3);
        for k in ["a", "b", "c"] {
            store.execute(&Command::put(Time(1), k, "1")).unwrap();
        }
        let snapshot = store.snapshot();
        assert_eq!(store.take_changes().keys.len(), 3);
        redis(&mut store, &["SET", "d", "1"]);
        redis(&mut store, &["FLUSHALL"]); // four keys: past the limit
        let changes = store.take_changes();
        assert!(changes.everything && changes.keys.is_empty(), "{changes:?}");
        store.restore(&snapshot).unwrap();
        assert!(store.take_changes().everything);
    }
}

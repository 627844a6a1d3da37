//! [`MemoryBackend`]: one [`KvStore`] behind a mutex – a single-node database without Raft.
//!
//! Every write is applied at once (a one-node "log" where each entry commits as it is appended),
//! every read is answered from the same store, so all three read consistencies are trivially
//! linearizable. Its model is [`crate::backend::ConsistencyModel::Strong`] (the default): with
//! one copy of the data there are no quorums to tune. Expiry works as the replicated store's does, with this process as the leader:
//! before each operation the backend applies the store's own `Expire` command for the keys whose
//! deadline passed ([`KvStore::expiry_due`]), so a key is gone as soon as anyone looks after its
//! deadline.
//!
//! It is honest about what it is: `INFO` reports `backend:memory` and `replicated:no`, and its
//! `# Raft` section describes that one-node log (role leader, term 0, commit index = applied index
//! = writes applied). Useful for tests, and for trying Redis clients against Concord's command
//! mapping (`cargo run -p concord-resp --example resp_memory`).
//!
//! [`MemoryBackend::with_topology`] makes it report a Redis Cluster topology (normally one node
//! owning all 16 384 slots), so that the front door speaks Redis Cluster's protocol over it:
//! `CLUSTER …`, `-CROSSSLOT`, `READONLY`, and `redis-cli -c`. It still serves every key itself;
//! `CLUSTER COUNTKEYSINSLOT` and `GETKEYSINSLOT` are answered from its store.
//!
//! A `std::sync::Mutex` (not an async one) is right here: the critical section is a short,
//! CPU-only `execute` that never awaits.

use crate::backend::{Backend, BackendError, BoxFuture, RequestConsistency};
use crate::cluster::Topology;
use concord_core::Time;
use concord_kv::{Command, KvLimits, KvStore, Query, Response};
use concord_shard::slot::key_slot;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// A clock in milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A single-process backend (see the module docs).
pub struct MemoryBackend {
    state: Mutex<State>,
    clock: Clock,
    /// What it reports as its Redis Cluster view (`None`: not a cluster). It serves every key
    /// whatever the topology says (it never answers `-MOVED`): a topology of one node owning
    /// every slot is the honest one.
    topology: Option<Topology>,
}

struct State {
    store: KvStore,
    /// Log positions handed to `apply`: one per write (including expiry commands).
    applied_index: u64,
}

impl MemoryBackend {
    /// An empty store with `limits`, on the system clock.
    pub fn new(limits: KvLimits) -> MemoryBackend {
        MemoryBackend::with_clock(limits, Arc::new(system_clock_ms))
    }

    /// An empty store with `limits`, on `clock` (tests move time by hand).
    pub fn with_clock(limits: KvLimits, clock: Clock) -> MemoryBackend {
        MemoryBackend {
            state: Mutex::new(State { store: KvStore::new(limits), applied_index: 0 }),
            clock,
            topology: None,
        }
    }

    /// The same backend, reporting `topology` as its Redis Cluster view: the front door then
    /// answers `CLUSTER …` from it and refuses cross-slot requests (see [`crate::cluster`]).
    pub fn with_topology(self, topology: Topology) -> MemoryBackend {
        MemoryBackend { topology: Some(topology), ..self }
    }

    /// A copy of the store (for tests and dashboards).
    pub fn snapshot(&self) -> KvStore {
        self.lock().store.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the store half-changed (`execute` either
        // applies a whole command or returns an error before changing anything), so a poisoned
        // lock is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Apply the expiry commands due at `now` (what a leader's housekeeping would propose).
    fn expire_due(state: &mut State, now: Time) {
        while let Some(expire) = state.store.expiry_due(now) {
            state.applied_index += 1;
            if state.store.execute(&expire).is_err() {
                break;
            }
        }
    }

    fn now(&self) -> Time {
        Time(self.now_ms().saturating_mul(1_000_000))
    }
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn system_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Backend for MemoryBackend {
    fn write(
        &self,
        command: Command,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let mut state = self.lock();
        Self::expire_due(&mut state, self.now());
        state.applied_index += 1;
        let result = state.store.execute(&command).map_err(BackendError::Kv);
        Box::pin(std::future::ready(result))
    }

    fn read(
        &self,
        query: Query,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let mut state = self.lock();
        Self::expire_due(&mut state, self.now());
        let result = state.store.read(&query).map_err(BackendError::Kv);
        Box::pin(std::future::ready(result))
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        let state = self.lock();
        let pairs = |items: &[(&str, String)]| -> Vec<(String, String)> {
            items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let applied = state.applied_index.to_string();
        vec![
            (
                "Raft".into(),
                pairs(&[
                    ("raft_role", "leader".into()),
                    ("raft_term", "0".into()),
                    ("raft_leader_id", "local".into()),
                    ("raft_commit_index", applied.clone()),
                    ("raft_applied_index", applied),
                ]),
            ),
            (
                "Backend".into(),
                pairs(&[
                    ("backend", "memory".into()),
                    ("replicated", "no".into()),
                    ("kv_revision", state.store.revision().to_string()),
                    ("kv_keys", state.store.len().to_string()),
                ]),
            ),
        ]
    }

    fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    fn limits(&self) -> KvLimits {
        self.lock().store.limits().clone()
    }

    fn topology(&self) -> Option<Topology> {
        self.topology.clone()
    }

    fn is_cluster(&self) -> bool {
        self.topology.is_some()
    }

    /// Counted from the store itself (one pass, no copies kept).
    fn count_keys_in_slot(
        self: Arc<Self>,
        slot: u16,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<u64, BackendError>> {
        let mut state = self.lock();
        Self::expire_due(&mut state, self.now());
        let count = state.store.iter().filter(|kv| key_slot(&kv.key).get() == slot).count() as u64;
        Box::pin(std::future::ready(Ok(count)))
    }

    fn keys_in_slot(
        self: Arc<Self>,
        slot: u16,
        count: usize,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Vec<Vec<u8>>, BackendError>> {
        let mut state = self.lock();
        Self::expire_due(&mut state, self.now());
        let keys = state
            .store
            .iter()
            .filter(|kv| key_slot(&kv.key).get() == slot)
            .take(count)
            .map(|kv| kv.key)
            .collect();
        Box::pin(std::future::ready(Ok(keys)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_raft::ReadConsistency;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn block<T>(future: BoxFuture<T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn keys_disappear_once_their_deadline_passes() {
        let now = Arc::new(AtomicU64::new(1_000));
        let clock = now.clone();
        let backend =
            MemoryBackend::with_clock(KvLimits::default(), Arc::new(move || clock.load(Ordering::SeqCst)));
        let t = Time(1_000 * 1_000_000);
        let stale = RequestConsistency::strong(ReadConsistency::Stale);
        block(backend.write(Command::put_with_ttl(t, "k", "v", 500), stale)).unwrap();
        let get = || block(backend.read(Query::get("k"), stale)).unwrap();
        assert!(matches!(get(), Response::Get(Some(_))));
        now.store(1_499, Ordering::SeqCst);
        assert!(matches!(get(), Response::Get(Some(_))));
        now.store(1_500, Ordering::SeqCst);
        assert_eq!(get(), Response::Get(None));
        // The put and the expiry are both entries of the one-node log.
        let info = backend.info();
        assert!(info[0].1.contains(&("raft_applied_index".into(), "2".into())));
    }
}

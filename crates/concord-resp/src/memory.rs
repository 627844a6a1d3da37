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
//! [`MemoryBackend::with_topology`] makes it a node of a Redis Cluster topology, so that the front
//! door speaks Redis Cluster's protocol over it (`CLUSTER …`, `-CROSSSLOT`, `READONLY`,
//! `redis-cli -c`). It then routes each request by its first key's slot (the front door already
//! refused requests whose keys span slots), as a sharded node would:
//!
//! * the slot's shard is led by this node, or – a stale read (`READONLY`) – replicated on it:
//!   served from its store;
//! * the slot is in the shard's `moving_out`: [`BackendError::Moving`] (`-TRYAGAIN`);
//! * the shard is led by another node: [`BackendError::Moved`] to that node's address;
//! * no shard owns the slot, or its shard has no leader: [`BackendError::ClusterDown`]
//!   (`-CLUSTERDOWN Hash slot not served`, Redis's words).
//!
//! Range reads (`KEYS`, `SCAN`, `DBSIZE`) see this node's own store. Two `MemoryBackend`s whose
//! topologies split the slots are a two-node cluster that cluster clients follow with `-MOVED`.
//!
//! A `std::sync::Mutex` (not an async one) is right here: the critical section is a short,
//! CPU-only `execute` that never awaits.

use crate::backend::{Backend, BackendError, BoxFuture, RequestConsistency};
use crate::cluster::Topology;
use concord_core::Time;
use concord_kv::{Changes, Command, KvLimits, KvStore, Query, Response};
use concord_raft::ReadConsistency;
use concord_shard::slot::key_slot;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// A clock in milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A single-process backend (see the module docs).
pub struct MemoryBackend {
    state: Mutex<State>,
    clock: Clock,
    /// Its Redis Cluster view (`None`: not a cluster): what `CLUSTER …` reports, and how requests
    /// are routed (see the module docs). Changed with [`MemoryBackend::set_topology`].
    topology: Mutex<Option<Topology>>,
    /// The keys each write changed, for `CLIENT TRACKING` (see [`crate::tracking`]).
    changes: broadcast::Sender<Arc<Changes>>,
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
        let mut store = KvStore::new(limits);
        store.record_changes(concord_kv::DEFAULT_CHANGE_LIMIT);
        MemoryBackend {
            state: Mutex::new(State { store, applied_index: 0 }),
            clock,
            topology: Mutex::new(None),
            changes: broadcast::channel(1024).0,
        }
    }

    /// The same backend, reporting `topology` as its Redis Cluster view: the front door then
    /// answers `CLUSTER …` from it and refuses cross-slot requests (see [`crate::cluster`]).
    pub fn with_topology(self, topology: Topology) -> MemoryBackend {
        self.set_topology(Some(topology));
        self
    }

    /// Replace its Redis Cluster view (`None`: no longer a cluster) – e.g. once the other nodes'
    /// addresses are known, or to make a slot move elsewhere.
    pub fn set_topology(&self, topology: Option<Topology>) {
        *self.topology.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = topology;
    }

    fn current_topology(&self) -> Option<Topology> {
        self.topology.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
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
    fn expire_due(&self, state: &mut State, now: Time) {
        while let Some(expire) = state.store.expiry_due(now) {
            state.applied_index += 1;
            if state.store.execute(&expire).is_err() {
                break;
            }
        }
        self.publish_changes(state);
    }

    /// Send what the last commands changed to `CLIENT TRACKING` (under the state lock, so in
    /// apply order).
    fn publish_changes(&self, state: &mut State) {
        let changes = state.store.take_changes();
        if !changes.is_empty() && self.changes.receiver_count() > 0 {
            let _ = self.changes.send(Arc::new(changes));
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

impl MemoryBackend {
    /// Whether this node serves `key` (see "cluster" in the module docs); always without a
    /// topology, or for requests without a key.
    fn route(&self, key: Option<&[u8]>, stale_read: bool) -> Result<(), BackendError> {
        let Some(key) = key else { return Ok(()) };
        let guard = self.topology.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(topology) = guard.as_ref() else { return Ok(()) };
        let slot = key_slot(key).get();
        let not_served = || BackendError::ClusterDown("Hash slot not served".into());
        let shard = topology
            .shards
            .iter()
            .find(|s| s.slots.iter().any(|&(first, last)| (first..=last).contains(&slot)))
            .ok_or_else(not_served)?;
        if shard.moving_out.iter().any(|&(first, last)| (first..=last).contains(&slot)) {
            return Err(BackendError::Moving { slot });
        }
        let primary = shard.primary.as_deref().ok_or_else(not_served)?;
        if primary == topology.myself || (stale_read && shard.replicas.contains(&topology.myself)) {
            return Ok(());
        }
        let node = topology.nodes.iter().find(|n| n.id == primary).ok_or_else(not_served)?;
        Err(BackendError::Moved { slot, addr: format!("{}:{}", node.host, node.port) })
    }
}

impl Backend for MemoryBackend {
    fn write(
        &self,
        command: Command,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        if let Err(e) = self.route(command.write.route_key(), false) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let mut state = self.lock();
        self.expire_due(&mut state, self.now());
        state.applied_index += 1;
        let result = state.store.execute(&command).map_err(BackendError::Kv);
        self.publish_changes(&mut state);
        Box::pin(std::future::ready(result))
    }

    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        if let Err(e) = self.route(query.route_key(), consistency.read == ReadConsistency::Stale) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let mut state = self.lock();
        self.expire_due(&mut state, self.now());
        let result = state.store.read(&query).map_err(BackendError::Kv);
        Box::pin(std::future::ready(result))
    }

    fn key_changes(&self) -> Option<broadcast::Receiver<Arc<Changes>>> {
        Some(self.changes.subscribe())
    }

    fn keyspace(&self) -> Option<crate::backend::KeyspaceInfo> {
        let state = self.lock();
        Some(crate::backend::KeyspaceInfo { keys: state.store.len(), expires: state.store.expiring_len() })
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
        self.current_topology()
    }

    fn is_cluster(&self) -> bool {
        self.topology.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
    }

    /// Counted from the store itself (one pass, no copies kept).
    fn count_keys_in_slot(
        self: Arc<Self>,
        slot: u16,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<u64, BackendError>> {
        let mut state = self.lock();
        self.expire_due(&mut state, self.now());
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
        self.expire_due(&mut state, self.now());
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

    #[test]
    fn a_cluster_node_serves_its_slots_and_redirects_the_others() {
        use crate::cluster::{TopologyNode, TopologyShard};
        let node = |n: u16| TopologyNode {
            id: format!("{n:040x}"),
            host: "10.0.0.1".into(),
            port: 6000 + n,
            cluster_port: 16000 + n,
            connected: true,
        };
        let shard =
            |slots: Vec<(u16, u16)>, primary: Option<u16>, replicas: Vec<u16>, moving_out| TopologyShard {
                id: "0".repeat(40),
                slots,
                primary: primary.map(|n| format!("{n:040x}")),
                replicas: replicas.into_iter().map(|n| format!("{n:040x}")).collect(),
                config_epoch: 1,
                moving_out,
            };
        let backend = MemoryBackend::new(KvLimits::default()).with_topology(Topology {
            myself: format!("{:040x}", 1),
            current_epoch: 1,
            state_ok: false,
            nodes: vec![node(1), node(2)],
            shards: vec![
                // foo is in slot 12182, bar in 5061, baz in 4813, {a} in 15495, abc in 7638.
                shard(vec![(0, 4999)], None, vec![1, 2], vec![]),
                shard(vec![(5000, 9999)], Some(1), vec![2], vec![(5061, 5061)]),
                shard(vec![(10000, 14999)], Some(2), vec![1], vec![]),
            ],
        });
        let t = Time(0);
        let linearizable = RequestConsistency::strong(ReadConsistency::Linearizable);
        let stale = RequestConsistency::strong(ReadConsistency::Stale);
        let write =
            |key: &str| {
                block(backend.write(
                    Command::new(t, concord_kv::Write::Put(concord_kv::Put::new(key, "v"))),
                    linearizable,
                ))
            };
        let read = |key: &str, c| block(backend.read(Query::get(key), c));
        assert_eq!(write("foo"), Err(BackendError::Moved { slot: 12182, addr: "10.0.0.1:6002".into() }));
        assert_eq!(
            read("foo", linearizable),
            Err(BackendError::Moved { slot: 12182, addr: "10.0.0.1:6002".into() })
        );
        // READONLY's stale reads are served by a replica.
        assert_eq!(read("foo", stale), Ok(Response::Get(None)));
        assert_eq!(write("bar"), Err(BackendError::Moving { slot: 5061 }));
        assert_eq!(write("baz"), Err(BackendError::ClusterDown("Hash slot not served".into())));
        assert_eq!(write("{a}"), Err(BackendError::ClusterDown("Hash slot not served".into())));
        assert!(write("{bar}x").is_err(), "the hash tag routes it with bar");
        // abc is in slot 7638, this node's.
        assert!(write("abc").is_ok());
        assert_eq!(
            read("abc", linearizable),
            Ok(Response::Get(Some(backend.snapshot().get(b"abc").unwrap())))
        );
        // Without a topology every key is served.
        backend.set_topology(None);
        assert!(write("foo").is_ok());
    }
}

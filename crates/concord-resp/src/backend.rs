//! The seam between the Redis front door and whatever holds the data.
//!
//! The RESP server knows nothing of Raft, nodes or disks: it turns Redis commands into
//! `concord_kv` [`Command`]s and [`Query`]s and hands them to a [`Backend`], together with the
//! [`RequestConsistency`] the client asked for. The real server (`concord-server`) implements it
//! by proposing writes to its Raft node and serving reads with the requested
//! [`ReadConsistency`], or, in its eventual mode, by coordinating quorum reads and writes;
//! [`crate::MemoryBackend`] implements it with a store behind a mutex, for tests and the
//! single-process example.
//!
//! # Two consistency families
//! A backend says which one it implements with [`Backend::model`], and that decides what a
//! client may ask for with the `CONSISTENCY` command:
//!
//! * [`ConsistencyModel::Strong`] (Raft, the default): every request carries a
//!   [`RequestConsistency::read`] level – linearizable, lease or stale – and `r` and `w` are
//!   always `None`. Quorum settings are refused before they reach the backend.
//! * [`ConsistencyModel::Eventual`] (Dynamo-style): each key lives on `n` replicas; a read waits
//!   for `r` replies and a write for `w` acknowledgements. A client may override `r` and `w` for
//!   its connection (`CONSISTENCY ONE|QUORUM|ALL`, `CONSISTENCY R 1 W 3`); the server only
//!   passes values in `1..=n` of the model the backend reported. `None` means "the cluster's
//!   default". The `read` field means nothing here (Raft read levels are refused on such a
//!   backend) and is left at the configured default.
//!
//! # What a backend must guarantee
//! * `write` resolves once the command is committed and applied, with the state machine's output
//!   (an `Err(KvError)` output becomes [`BackendError::Kv`]).
//! * `write` and `read` **return at once** (hand the request to the node, e.g. over a channel) and
//!   do their waiting in the returned future: the connection calls them from its reading loop.
//! * **Writes called in order are applied in order.** A connection pipelines consecutive writes
//!   (`SET a 1`, `SET a 2`, …) by calling `write` for each before the first resolves; a single
//!   leader that appends proposals in arrival order satisfies this. An eventual backend must
//!   order them too – e.g. by stamping each write's version when `write` is called – so that the
//!   pipeline leaves `a` at 2, as it would on Redis.
//! * Strong: `read` with [`ReadConsistency::Linearizable`] observes every write that resolved
//!   before the read was called.
//! * Eventual: **the backend must honour `r` and `w`** (or its defaults when they are `None`): a
//!   read resolves only once `r` replicas answered, a write only once `w` acknowledged, and a
//!   request that cannot gather its quorum fails ([`BackendError::Unavailable`] if it did not
//!   take effect, [`BackendError::Timeout`] or [`BackendError::Unknown`] if a write may have) –
//!   never resolves with fewer. That is what makes `R + W > N` mean "a read sees the last
//!   acknowledged write" to the client that chose it.
//! * `now_ms` is the node's clock in milliseconds since the Unix epoch. The front door stamps each
//!   [`Command`] with `now = now_ms × 1 000 000` ns (so a `concord_core::Time` in the KV store is
//!   nanoseconds since the Unix epoch), and computes TTLs against it. The leader's housekeeping
//!   must use the same clock for expiry to agree with what `TTL` reports.
//!
//! # Sharded backends (Redis Cluster)
//! A sharded backend reports its [`crate::cluster::Topology`] ([`Backend::topology`]); the front
//! door then answers `CLUSTER …` from it and refuses requests whose keys span slots
//! (`-CROSSSLOT`) before they reach the backend, so every request a sharded backend sees names
//! keys of one slot. The backend routes by that slot: it serves the keys of shards this node
//! leads (and, for stale reads – a connection's `READONLY` – of shards it replicates), and answers
//! [`BackendError::Moved`] for a slot led elsewhere, [`BackendError::Moving`] for a slot being
//! moved (Concord's moves answer `-TRYAGAIN`, never `-ASK`: see [`crate::cluster`]) and
//! [`BackendError::ClusterDown`] for a slot no shard serves. It should override
//! [`Backend::is_cluster`] cheaply, and [`Backend::count_keys_in_slot`] /
//! [`Backend::keys_in_slot`] to ask the group of the slot's shard rather than scan everything.
//! [`crate::MemoryBackend::with_topology`] is a small, complete example.
//!
//! # How errors look to Redis clients
//! Redis has no notion of "not the leader" outside Redis Cluster, and the cluster redirect
//! (`-MOVED slot host:port`) would send non-cluster clients into confusion (redis-py raises an
//! error that suggests enabling cluster mode). So [`BackendError::to_reply`] uses error codes that
//! ordinary clients already treat as "try elsewhere or later":
//!
//! | error                              | reply                                                   |
//! |------------------------------------|---------------------------------------------------------|
//! | `NotLeader { leader: Some(addr) }` | `-READONLY this node is not the leader; the leader is at addr` (redis-py: `ReadOnlyError`) |
//! | `NotLeader { leader: None }`       | `-TRYAGAIN no leader is known (an election may be in progress); retry shortly` |
//! | `Unavailable(why)`                 | `-TRYAGAIN unavailable: why`                            |
//! | `Timeout`                          | `-TIMEOUT … a write may or may not have taken effect`   |
//! | `Unknown(why)`                     | `-UNKNOWN outcome unknown: why …`                       |
//! | `Conflict(why)`                    | `-CONFLICT why` (eventual mode: concurrent values, siblings, that one reply cannot show) |
//! | `Rejected(why)`                    | `-ERR rejected: why`                                    |
//! | `Kv(NotAnInteger)`                 | `-ERR value is not an integer or out of range` (Redis's) |
//! | `Kv(IncrementOverflow)`            | `-ERR increment or decrement would overflow` (Redis's)  |
//! | `NoSpace(why)`                      | `-MISCONF why` (the data disk is full: writes refused, reads served; Redis's word for "cannot persist") |
//! | `Kv(other)`                        | `-ERR ` and the KV error's message, e.g. `value is 2000000 bytes; the limit is 1048576` |
//! | `Moved { slot, addr }`             | `-MOVED slot addr` (sharded: Redis Cluster's redirect; cluster clients follow it) |
//! | `Moving { slot }`                  | `-TRYAGAIN slot … is being moved between shards; retry shortly` |
//! | `ClusterDown(why)`                 | `-CLUSTERDOWN why`                                       |

use crate::frame::Frame;
use concord_kv::{Command, KeyRange, KvError, KvLimits, Query, RangeRequest, Response};
use concord_raft::ReadConsistency;
use concord_shard::slot::key_slot;

pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// The consistency one request asks for: the connection's `CONSISTENCY` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestConsistency {
    /// Strong (Raft) mode: how reads are served.
    pub read: ReadConsistency,
    /// Eventual mode: replies a read waits for; `None`: the cluster's default R.
    pub r: Option<usize>,
    /// Eventual mode: acknowledgements a write waits for; `None`: the cluster's default W.
    pub w: Option<usize>,
}

impl RequestConsistency {
    /// A strong-mode request: reads served at `read`, no quorum overrides.
    pub fn strong(read: ReadConsistency) -> Self {
        RequestConsistency { read, r: None, w: None }
    }
}

/// `db0:keys=…,expires=…` in `INFO keyspace`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyspaceInfo {
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
}

/// Redis's replication vocabulary over the backend's own (what `ROLE` and `INFO replication`
/// say):
///
/// | backend                  | role      | replicas / master                    | offsets |
/// |--------------------------|-----------|--------------------------------------|---------|
/// | Raft leader              | `master`  | its followers and learners           | the leader's last log index; each replica's match index |
/// | Raft follower, candidate | `slave`   | the leader's RESP address (if known) | the node's last log index |
/// | eventual mode            | `master`  | none: every node takes writes, each key on N replicas | 0 |
/// | standalone (memory)      | `master`  | none                                 | 0 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationInfo {
    pub role: ReplicationRole,
    /// Redis's `master_repl_offset`: how far this node's copy of the replicated stream reaches.
    pub offset: u64,
    /// The replicas a master knows of (empty on a replica).
    pub replicas: Vec<ReplicaInfo>,
    /// What replicates underneath: `raft`, `eventual`, `sharded`, `standalone` (shown in INFO as
    /// `concord_replication`).
    pub model: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationRole {
    Master,
    /// A replica of `master` (host and RESP port; `None` while no leader is known).
    Replica {
        master: Option<(String, u16)>,
    },
}

/// One replica of a master, as `ROLE` and `INFO replication` list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The replica's RESP address (`None` if the master does not know it).
    pub addr: Option<(String, u16)>,
    /// How far its copy reaches (Raft: the leader's match index for it).
    pub offset: u64,
    /// The backend's name for it (the Raft node id).
    pub id: String,
}

impl ReplicationInfo {
    /// A master with no replicas: a standalone server.
    pub fn standalone() -> ReplicationInfo {
        ReplicationInfo { role: ReplicationRole::Master, offset: 0, replicas: vec![], model: "standalone" }
    }
}

/// Which consistency family the backend implements; decides what `CONSISTENCY` accepts and shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsistencyModel {
    /// Raft: linearizable, lease or stale reads.
    Strong,
    /// Dynamo-style quorums: `n` replicas per key, default `r` and `w`.
    Eventual { n: usize, r: usize, w: usize },
}

/// What the RESP server needs from the database behind it. See the module docs for the contract.
pub trait Backend: Send + Sync + 'static {
    /// Replicate a write; resolves once committed and applied (or failed). An eventual backend
    /// waits for `consistency.w` acknowledgements (its default W when `None`).
    fn write(
        &self,
        command: Command,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>>;

    /// Answer a query: at `consistency.read` on a strong backend; from `consistency.r` replies
    /// (its default R when `None`) on an eventual one.
    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>>;

    /// Many queries at one consistency – a connection's pipeline of reads – answered in their
    /// order. Like [`Backend::read`], it **submits before returning**. A backend that can hand the
    /// whole batch to its node in one step (one channel send, one deadline, one reply) should
    /// override it; the default reads each query on its own. Each query gets exactly one answer,
    /// as it would alone.
    fn read_batch(
        &self,
        queries: Vec<Query>,
        consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        // Each submitted here, in order; join_all answers in the same order.
        let reads: Vec<_> = queries.into_iter().map(|query| self.read(query, consistency)).collect();
        Box::pin(futures::future::join_all(reads))
    }

    /// Many writes – a connection's pipeline of writes – applied in their order and answered in
    /// it, each with exactly one answer. Like [`Backend::write`], it **submits before returning**.
    /// A backend that can propose the batch in one step (one log append, one fsync) should
    /// override it; the default writes each command on its own, in order.
    fn write_batch(
        &self,
        commands: Vec<Command>,
        consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        let writes: Vec<_> = commands.into_iter().map(|command| self.write(command, consistency)).collect();
        Box::pin(futures::future::join_all(writes))
    }

    /// The consistency family this backend implements (Raft unless it says otherwise).
    /// The keys every applied write changes, in apply order, for `CLIENT TRACKING` (see
    /// [`crate::tracking`]); each call is a new subscription. `None` (the default): this backend
    /// cannot say, and tracking is refused.
    fn key_changes(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<concord_kv::Changes>>> {
        None
    }

    fn model(&self) -> ConsistencyModel {
        ConsistencyModel::Strong
    }

    /// The cluster this node belongs to (`INFO server`'s `concord_cluster_id`): a cache tier
    /// checks it, so it never serves values of a database it was not started for.
    fn cluster_id(&self) -> Option<String> {
        None
    }

    /// INFO sections, e.g. `("Raft", vec![("raft_role".into(), "leader".into()), ...])`.
    fn info(&self) -> Vec<(String, Vec<(String, String)>)>;

    /// The node's clock in ms since the Unix epoch (TTL deadlines); a method so tests can fake time.
    fn now_ms(&self) -> u64;

    /// `INFO keyspace`: the keys this node holds and how many of them have a TTL, if it knows
    /// cheaply (`None`, the default: the section lists no database).
    fn keyspace(&self) -> Option<KeyspaceInfo> {
        None
    }

    /// `ROLE` and `INFO replication`, mapped from the backend's replication (see
    /// [`ReplicationInfo`]). The default: a lone master, as a standalone redis-server.
    fn replication(&self) -> ReplicationInfo {
        ReplicationInfo::standalone()
    }

    /// The KV limits the cluster enforces: the server sizes its page requests (`SCAN`, `KEYS`,
    /// `DBSIZE`) and its bulk-string limit from them.
    fn limits(&self) -> KvLimits {
        KvLimits::default()
    }

    /// Redis Cluster's view of this backend when it is sharded; `None` (the default): not a
    /// cluster, and `CLUSTER` commands are answered as by a redis-server without `cluster-enabled`.
    fn topology(&self) -> Option<crate::cluster::Topology> {
        None
    }

    /// Whether this backend is sharded (a cluster). Asked on every multi-key command (for
    /// `-CROSSSLOT`), so the default – `topology().is_some()` – is worth overriding with a cheap
    /// answer when building the topology costs something.
    fn is_cluster(&self) -> bool {
        self.topology().is_some()
    }

    /// `CLUSTER COUNTKEYSINSLOT`: how many keys of `slot` this node holds.
    ///
    /// The default counts by scanning every key ([`Query::Range`] pages, at `consistency`) and
    /// hashing each – correct for any backend whose range reads see all the keys this node holds,
    /// but O(keys). A sharded server should override it: ask the group of the shard that owns
    /// `slot` (if this node hosts a replica of it; 0 otherwise, as Redis answers for a slot it does
    /// not serve) and have the group's store count the slot – e.g. a scan of that group's store
    /// filtered by `concord_shard::slot::key_slot`, or a per-slot key index.
    fn count_keys_in_slot(
        self: std::sync::Arc<Self>,
        slot: u16,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<u64, BackendError>> {
        Box::pin(async move {
            let mut count = 0;
            scan_slot(&*self, slot, usize::MAX, consistency, |_| count += 1).await?;
            Ok(count)
        })
    }

    /// `CLUSTER GETKEYSINSLOT`: at most `count` keys of `slot` this node holds, in key order
    /// (Redis lists them in its own, unspecified order). The default scans, as
    /// [`Backend::count_keys_in_slot`] does, and stops once it has `count`; a sharded server should
    /// override both the same way.
    fn keys_in_slot(
        self: std::sync::Arc<Self>,
        slot: u16,
        count: usize,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Vec<Vec<u8>>, BackendError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            scan_slot(&*self, slot, count, consistency, |key| keys.push(key)).await?;
            Ok(keys)
        })
    }
}

/// Every key of `slot` (at most `max`), in key order, through [`Query::Range`] pages of
/// `max_range_limit` keys: what the default [`Backend::count_keys_in_slot`] and
/// [`Backend::keys_in_slot`] do.
async fn scan_slot<B: Backend + ?Sized>(
    backend: &B,
    slot: u16,
    max: usize,
    consistency: RequestConsistency,
    mut found: impl FnMut(Vec<u8>),
) -> Result<(), BackendError> {
    let limit = backend.limits().max_range_limit.max(1);
    let mut taken = 0;
    let mut next = Some(Vec::new());
    while let Some(start) = next.take() {
        if taken >= max {
            break;
        }
        let query = Query::Range(RangeRequest::new(KeyRange::from(start), limit));
        let page = match backend.read(query, consistency).await? {
            Response::Range(page) => page,
            other => return Err(BackendError::Unavailable(format!("a range read answered {other:?}"))),
        };
        for kv in page.kvs {
            if taken < max && key_slot(&kv.key).get() == slot {
                taken += 1;
                found(kv.key);
            }
        }
        next = page.next_key;
    }
    Ok(())
}

/// Why a backend could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// This node is not the leader; `leader` is the leader's client address, if known.
    #[error("not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// The cluster cannot serve now (no quorum, shutting down…). The request did not take effect.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No answer in time; a write may or may not have taken effect.
    #[error("timed out")]
    Timeout,
    /// Refused before it took effect (back-pressure, a conflicting operation…).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The outcome is unknown (e.g. leadership lost with the proposal in the log).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The key holds concurrent values (siblings) and the reply can carry only one.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The state machine refused the command (limits, non-integer increment…).
    #[error("{0}")]
    Kv(KvError),
    /// The node's data disk is full: writes are refused (before taking effect), reads served.
    #[error("{0}")]
    NoSpace(String),
    /// Sharded: the key's slot is served by another node (`-MOVED <slot> <addr>`).
    #[error("slot {slot} is served at {addr}")]
    Moved { slot: u16, addr: String },
    /// Sharded: the key's slot is being moved between shards; retry shortly (`-TRYAGAIN`).
    #[error("slot {slot} is being moved")]
    Moving { slot: u16 },
    /// Sharded: the key's slot has no serving shard now (`-CLUSTERDOWN`).
    #[error("cluster down: {0}")]
    ClusterDown(String),
}

impl From<KvError> for BackendError {
    fn from(e: KvError) -> Self {
        BackendError::Kv(e)
    }
}

impl BackendError {
    /// The Redis error reply for this error (see the table in the module docs).
    pub fn to_reply(&self) -> Frame {
        Frame::Error(match self {
            BackendError::NotLeader { leader: Some(addr) } => {
                format!("READONLY this node is not the leader; the leader is at {addr}")
            }
            BackendError::NotLeader { leader: None } => {
                "TRYAGAIN no leader is known (an election may be in progress); retry shortly".into()
            }
            BackendError::Unavailable(why) => format!("TRYAGAIN unavailable: {why}"),
            BackendError::Timeout => {
                "TIMEOUT the cluster did not answer in time; a write may or may not have taken effect".into()
            }
            BackendError::Unknown(why) => {
                format!("UNKNOWN outcome unknown: {why}; a write may or may not have taken effect")
            }
            BackendError::Rejected(why) => format!("ERR rejected: {why}"),
            BackendError::Conflict(why) => format!("CONFLICT {why}"),
            // Redis says MISCONF when it cannot persist and refuses writes: the same situation.
            BackendError::NoSpace(why) => format!("MISCONF {why}"),
            BackendError::Kv(KvError::NotAnInteger { .. }) => {
                "ERR value is not an integer or out of range".into()
            }
            BackendError::Kv(KvError::IncrementOverflow { .. }) => {
                "ERR increment or decrement would overflow".into()
            }
            BackendError::Kv(e) => format!("ERR {e}"),
            // Redis Cluster's own wording, which cluster-aware clients parse.
            BackendError::Moved { slot, addr } => format!("MOVED {slot} {addr}"),
            BackendError::Moving { slot } => {
                format!("TRYAGAIN slot {slot} is being moved between shards; retry shortly")
            }
            BackendError::ClusterDown(why) => format!("CLUSTERDOWN {why}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_redis_replies() {
        let reply = |e: BackendError| match e.to_reply() {
            Frame::Error(text) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reply(BackendError::NotLeader { leader: Some("10.0.0.2:6379".into()) }),
            "READONLY this node is not the leader; the leader is at 10.0.0.2:6379"
        );
        assert!(reply(BackendError::NotLeader { leader: None }).starts_with("TRYAGAIN "));
        assert_eq!(
            reply(BackendError::Kv(KvError::NotAnInteger { key: "\"k\"".into(), value: "\"x\"".into() })),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            reply(BackendError::Kv(KvError::ValueTooLarge {
                value_bytes: 2_000_000,
                max_value_bytes: 1_048_576
            })),
            "ERR value is 2000000 bytes; the limit is 1048576"
        );
    }

    #[test]
    fn cluster_errors_are_redis_clusters() {
        let reply = |e: BackendError| match e.to_reply() {
            Frame::Error(text) => text,
            other => panic!("{other:?}"),
        };
        // Cluster clients parse these: `MOVED <slot> <host:port>`, and TRYAGAIN's code word.
        assert_eq!(
            reply(BackendError::Moved { slot: 3999, addr: "127.0.0.1:6381".into() }),
            "MOVED 3999 127.0.0.1:6381"
        );
        let moving = reply(BackendError::Moving { slot: 12182 });
        assert!(moving.starts_with("TRYAGAIN ") && moving.contains("12182"), "{moving}");
        assert_eq!(
            reply(BackendError::ClusterDown("Hash slot not served".into())),
            "CLUSTERDOWN Hash slot not served"
        );
    }
}

//! The RESP (Redis protocol) front door: `concord-resp`'s server on top of a [`NodeHandle`].
//!
//! `concord-resp` turns Redis commands into KV commands and queries and hands them to a
//! [`Backend`]; this module is that backend for a real node. Its contract (see
//! `concord_resp::backend`) and how this node meets it:
//!
//! * writes resolve once committed and applied – [`NodeHandle::write`], forwarded to the leader
//!   when this node follows, with a Raft session so retries apply once;
//! * pipelined writes are applied in order – `write` submits its first attempt before returning
//!   (FIFO queues all the way to the leader's log);
//! * linearizable reads see every write that resolved before – ReadIndex: the leader confirms
//!   its leadership with one heartbeat round per batch of reads, and a follower asks the leader
//!   for the read index and serves the read itself once it has applied that far;
//! * `now_ms` is the node clock, the same clock Raft's housekeeping uses for TTL expiry.
//!
//! Errors keep their meaning: a timeout or an unknown outcome is never reported as `OK`.

use super::handle::NodeHandle;
use crate::front::{self, ClientError};
use concord_kv::{Changes, Command, KvLimits, Query, Response};
use concord_resp::{
    Backend, BackendError, BoxFuture, KeyspaceInfo, ReplicaInfo, ReplicationInfo, ReplicationRole,
    RequestConsistency,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

/// A [`Backend`] over a running node.
pub struct NodeBackend {
    handle: NodeHandle,
    cluster_id: String,
    /// The keys the driver's batches changed (`CLIENT TRACKING`), when the node has the feed.
    changes: Option<broadcast::Sender<Arc<Changes>>>,
}

impl NodeBackend {
    pub fn new(handle: NodeHandle, cluster_id: String) -> NodeBackend {
        NodeBackend { handle, cluster_id, changes: None }
    }

    /// The same backend, offering `CLIENT TRACKING` from `changes`.
    pub fn with_changes(mut self, changes: broadcast::Sender<Arc<Changes>>) -> NodeBackend {
        self.changes = Some(changes);
        self
    }
}

fn backend_error(handle: &NodeHandle, e: ClientError) -> BackendError {
    front::resp::backend_error(e, |leader| BackendError::NotLeader {
        leader: leader.and_then(|l| handle.peer(l)).and_then(|p| p.redis_addr).map(|a| a.to_string()),
    })
}

impl Backend for NodeBackend {
    fn key_changes(&self) -> Option<broadcast::Receiver<Arc<Changes>>> {
        self.changes.as_ref().map(broadcast::Sender::subscribe)
    }

    // The Raft backend's model is the default, `Strong`: the RESP server never lets a client set R
    // or W here, so `consistency` only carries the read level.
    fn write(
        &self,
        command: Command,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let kind = front::resp::kind_of(&command.write);
        let start = Instant::now();
        // `write` submits now (ordering); the future only waits.
        let pending = self.handle.write(command);
        let handle = self.handle.clone();
        Box::pin(async move {
            let r = pending.await;
            handle.metrics().request(kind, ClientError::label_of(&r), start.elapsed());
            r.map_err(|e| backend_error(&handle, e))
        })
    }

    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let handle = self.handle.clone();
        let start = Instant::now();
        // `read` submits now, like `write`: a pipeline's reads run concurrently.
        let pending = self.handle.read(query, consistency.read);
        Box::pin(async move {
            let r = pending.await;
            handle.metrics().request("resp_read", ClientError::label_of(&r), start.elapsed());
            r.map_err(|e| backend_error(&handle, e))
        })
    }

    fn read_batch(
        &self,
        queries: Vec<Query>,
        consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        let handle = self.handle.clone();
        let start = Instant::now();
        // One driver input for the whole batch, submitted now.
        let pending = self.handle.read_batch(queries, consistency.read);
        Box::pin(async move {
            let results = pending.await;
            let labels: Vec<&'static str> = results.iter().map(ClientError::label_of).collect();
            handle.metrics().requests("resp_read", &labels, start.elapsed());
            results.into_iter().map(|r| r.map_err(|e| backend_error(&handle, e))).collect()
        })
    }

    fn write_batch(
        &self,
        commands: Vec<Command>,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Vec<Result<Response, BackendError>>> {
        let kinds: Vec<&'static str> = commands.iter().map(|c| front::resp::kind_of(&c.write)).collect();
        let start = Instant::now();
        // One driver input (one log append) for the whole batch, submitted now.
        let pending = self.handle.write_batch(commands);
        let handle = self.handle.clone();
        Box::pin(async move {
            let results = pending.await;
            let took = start.elapsed();
            // Counted per kind (a batch is usually of one).
            let mut i = 0;
            while i < results.len() {
                let kind = kinds[i];
                let same = kinds[i..].iter().take_while(|k| **k == kind).count();
                let labels: Vec<&'static str> =
                    results[i..i + same].iter().map(ClientError::label_of).collect();
                handle.metrics().requests(kind, &labels, took);
                i += same;
            }
            results.into_iter().map(|r| r.map_err(|e| backend_error(&handle, e))).collect()
        })
    }

    fn cluster_id(&self) -> Option<String> {
        Some(self.cluster_id.clone())
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        let s = self.handle.status();
        let raft = vec![
            ("raft_node_id".to_string(), s.id.to_string()),
            ("raft_role".to_string(), s.role.to_string()),
            ("raft_term".to_string(), s.term.to_string()),
            ("raft_leader_id".to_string(), s.leader.map_or("none".into(), |l| l.to_string())),
            ("raft_commit_index".to_string(), s.commit_index.to_string()),
            ("raft_applied_index".to_string(), s.applied_index.to_string()),
            ("raft_last_log_index".to_string(), s.last_log_index.to_string()),
            ("raft_snapshot_index".to_string(), s.snapshot_index.to_string()),
            ("raft_voters".to_string(), s.voters.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            ("raft_follower_log_regressions".to_string(), s.follower_log_regressions.to_string()),
            ("wal_syncs".to_string(), s.wal_syncs.to_string()),
        ];
        vec![("Raft".to_string(), raft)]
    }

    fn now_ms(&self) -> u64 {
        front::resp::millis(self.handle.now())
    }

    fn keyspace(&self) -> Option<KeyspaceInfo> {
        let s = self.handle.status();
        Some(KeyspaceInfo { keys: s.keys, expires: s.expiring_keys })
    }

    /// The leader is the master, with its followers and learners as replicas at their match
    /// indexes; any other node is a replica of the leader it knows (see
    /// `concord_resp::ReplicationInfo`). Offsets are log indexes.
    fn replication(&self) -> ReplicationInfo {
        let s = self.handle.status();
        let redis_addr =
            |id: u32| self.handle.peer(id).and_then(|p| p.redis_addr).map(|a| (a.ip().to_string(), a.port()));
        let role = if s.role == "leader" {
            ReplicationRole::Master
        } else {
            ReplicationRole::Replica { master: s.leader.and_then(redis_addr) }
        };
        let replicas = if s.role == "leader" {
            s.voters
                .iter()
                .chain(&s.learners)
                .filter(|&&id| id != s.id)
                .map(|&id| ReplicaInfo {
                    addr: redis_addr(id),
                    offset: s.match_index.get(&id).copied().unwrap_or(0),
                    id: id.to_string(),
                })
                .collect()
        } else {
            vec![]
        };
        ReplicationInfo { role, offset: s.last_log_index, replicas, model: "raft" }
    }

    fn limits(&self) -> KvLimits {
        self.handle.limits().clone()
    }
}

//! The RESP backend of a sharded node: Redis Cluster's routing on top of [`ShardedHandle`].
//!
//! A cluster-aware client (`redis-cli -c`, redis-py's `RedisCluster`) computes a key's slot itself
//! and sends the command to the node it believes serves it. This backend answers as a Redis
//! Cluster node does:
//!
//! | the key's slot | answer |
//! |---|---|
//! | owned by a shard this node leads | served |
//! | owned by a shard led by node `n`, replicated here, on a `READONLY` connection (a read) | served here, stale (a follower read) |
//! | owned by a shard led by node `n` | `-MOVED <slot> <n's RESP host:port>` |
//! | owned by a shard whose leader this node does not know | served (the node forwards it one hop) |
//! | between its move's fence and flip | `-TRYAGAIN` |
//! | no shard map yet, or the shard lost its leader | `-CLUSTERDOWN` |
//!
//! A node knows the leaders of the shards it does not replicate from its leader probes
//! ([`super::process`]), so the third row is rare: just after a start or a leader change.
//!
//! The decision reads the status the driver published after its last batch; the node checks the
//! slot again when it applies the command (`concord_shard::kv`), so a decision made on a map that
//! has just moved on is refused there and tried again, never applied to the wrong shard.
//! Multi-key commands route by their first key (the RESP layer refuses keys of different slots).
//!
//! `READONLY` (the RESP layer then passes reads at [`ReadConsistency::Stale`]) lets a connection
//! read the keys of shards this node only replicates, as Redis Cluster's replicas serve a
//! `READONLY` client: the shard's local replica answers from what it has applied, no `-MOVED`.
//! Writes are redirected to the leader all the same; `READWRITE` restores the redirects.
//!
//! `FLUSHALL` and `FLUSHDB` empty **every shard of the cluster** (Redis Cluster's flush empties one
//! node, and cluster clients send it to every primary; sent to any Concord node it does the whole
//! job, and sent to each it is merely repeated): a range delete of every key asked of each group
//! ([`super::scan`]), `OK` once all applied it. `RANDOMKEY` picks among this node's keys, as
//! `KEYS` does: each served shard's keys are counted, one is drawn in proportion.
//!
//! `KEYS`, `SCAN`, `DBSIZE`, `CLUSTER COUNTKEYSINSLOT` and `CLUSTER GETKEYSINSLOT` answer, as on a
//! Redis Cluster node, for this node's keys: those of the shards it serves the connection – leads,
//! or replicates on a `READONLY` connection ([`super::served_here`]) – each shard read through its
//! Raft read path ([`super::scan`]). The RESP layer turns the first three into range-read pages
//! ([`concord_resp::Backend::read`] with `Query::Range`), which this backend gathers over those
//! shards; the `CLUSTER` two ask the slot's shard alone.
//!
//! [`ShardedBackend::topology`] is what `CLUSTER SLOTS`, `CLUSTER SHARDS` and `CLUSTER NODES`
//! show: node and shard ids are 40 hex characters derived from the cluster id and the number, so
//! every node names every node alike, across restarts. A member is `connected` while this node's
//! peer connection to it is up ([`crate::transport::Transport::is_connected`]).

use super::scan::Scope;
use super::{KeyError, ShardedHandle};
use crate::front::{self, ClientError};
use concord_kv::{Command, KeyRange, KvLimits, Query, Reply, Response, Write};
use concord_raft::ReadConsistency;
use concord_resp::cluster::{Topology, TopologyNode, TopologyShard};
use concord_resp::{Backend, BackendError, BoxFuture, RequestConsistency};
use concord_shard::map::ShardId;
use concord_shard::Slot;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

/// A [`Backend`] over a running sharded node.
pub struct ShardedBackend {
    handle: ShardedHandle,
    /// The keys the shard groups here changed (`CLIENT TRACKING`).
    changes: Option<tokio::sync::broadcast::Sender<Arc<concord_kv::Changes>>>,
}

impl ShardedBackend {
    pub fn new(handle: ShardedHandle) -> ShardedBackend {
        ShardedBackend { handle, changes: None }
    }

    /// The same backend, offering `CLIENT TRACKING` from `changes`.
    pub fn with_changes(mut self, changes: tokio::sync::broadcast::Sender<Arc<concord_kv::Changes>>) -> Self {
        self.changes = Some(changes);
        self
    }
}

/// A 40-hex id for `what` in cluster `cluster_id` (`node/3`, `shard/2`): stable and the same on
/// every node.
pub fn hex_id(cluster_id: &str, what: &str) -> String {
    let digest = Sha256::digest(format!("concord-cluster/{cluster_id}/{what}").as_bytes());
    digest[..20].iter().map(|b| format!("{b:02x}")).collect()
}

fn backend_error(e: KeyError) -> BackendError {
    match e {
        KeyError::Client(e) => front::resp::backend_error(e, |_| {
            BackendError::ClusterDown("the key's shard has no leader now".into())
        }),
        KeyError::Moving { slot } => BackendError::Moving { slot },
        KeyError::ClusterDown(why) => BackendError::ClusterDown(why),
        KeyError::Moved { slot, addr, .. } => BackendError::Moved { slot, addr },
        // RESP refuses keys of two slots itself (`-CROSSSLOT`) before a request gets here.
        e @ KeyError::CrossShard { .. } => BackendError::Rejected(e.to_string()),
    }
}

fn refused(e: KeyError) -> BoxFuture<Result<Response, BackendError>> {
    let e = backend_error(e);
    Box::pin(async move { Err(e) })
}

impl Backend for ShardedBackend {
    fn key_changes(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<concord_kv::Changes>>> {
        self.changes.as_ref().map(tokio::sync::broadcast::Sender::subscribe)
    }

    fn write(
        &self,
        command: Command,
        _consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        if let Some(flush) = whole_store_write(&command.write) {
            return self.flush(flush);
        }
        // Writes go to the leader, READONLY or not.
        if let Some(redirect) = command.write.route_key().and_then(|key| self.handle.redirect(key, false)) {
            return refused(redirect);
        }
        let kind = front::resp::kind_of(&command.write);
        let start = Instant::now();
        // `write` submits now (ordering); the future only waits.
        let pending = self.handle.write(command);
        let handle = self.handle.clone();
        Box::pin(async move {
            let r = pending.await;
            let label = match &r {
                Ok(_) => "ok",
                Err(KeyError::Client(e)) => ClientError::label_of::<()>(&Err(e.clone())),
                Err(_) => "unavailable",
            };
            handle.metrics().request(kind, label, start.elapsed());
            r.map_err(backend_error)
        })
    }

    fn read(
        &self,
        query: Query,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Response, BackendError>> {
        let stale = consistency.read == ReadConsistency::Stale;
        if let Some(redirect) = query.route_key().and_then(|key| self.handle.redirect(key, stale)) {
            return refused(redirect);
        }
        let handle = self.handle.clone();
        let start = Instant::now();
        if let Query::Redis(exec) = &query {
            if exec.calls.len() == 1 && exec.calls[0].name() == "randomkey" {
                return Box::pin(async move {
                    let key = handle.random_key(consistency.read).await.map_err(backend_error)?;
                    Ok(Response::Redis { revision: 0, replies: Some(vec![Reply::bulk_or_nil(key)]) })
                });
            }
        }
        // `KEYS`, `SCAN` and `DBSIZE` pages: the keys of the shards this node serves (see `scan`).
        if let Query::Range(request) = query {
            return Box::pin(async move {
                let r = handle.scan(Scope::Node, request, consistency.read).await.map(Response::Range);
                handle.metrics().request(
                    "resp_range",
                    if r.is_ok() { "ok" } else { "failed" },
                    start.elapsed(),
                );
                r.map_err(backend_error)
            });
        }
        let pending = self.handle.read(query, consistency.read);
        Box::pin(async move {
            let r = pending.await;
            handle.metrics().request("resp_read", if r.is_ok() { "ok" } else { "failed" }, start.elapsed());
            r.map_err(backend_error)
        })
    }

    fn cluster_id(&self) -> Option<String> {
        Some(self.handle.cluster_id().to_string())
    }

    fn info(&self) -> Vec<(String, Vec<(String, String)>)> {
        let s = self.handle.status();
        let led: Vec<String> = s
            .groups
            .iter()
            .filter(|g| g.group != 0 && g.leader == Some(s.id))
            .map(|g| g.group.to_string())
            .collect();
        let hosted: Vec<String> =
            s.groups.iter().filter(|g| g.group != 0).map(|g| g.group.to_string()).collect();
        let section = vec![
            ("mode".to_string(), "sharded".to_string()),
            ("shard_node_id".to_string(), s.id.to_string()),
            ("shard_map_epoch".to_string(), s.map.epoch.to_string()),
            ("shard_count".to_string(), s.map.shards.len().to_string()),
            ("shard_moves_in_progress".to_string(), s.map.moves.len().to_string()),
            ("shards_replicated_here".to_string(), hosted.join(",")),
            ("shards_led_here".to_string(), led.join(",")),
            ("shard_map_role".to_string(), s.role.to_string()),
            ("wal_syncs".to_string(), s.wal_syncs.to_string()),
        ];
        // Not "Cluster": the front door writes that section itself (`cluster_enabled`, as Redis).
        vec![("Sharding".to_string(), section)]
    }

    fn now_ms(&self) -> u64 {
        front::resp::millis(self.handle.now())
    }

    /// Each shard is a Raft group of its own: the node is a master (Redis Cluster's view, where
    /// `CLUSTER SHARDS` lists each shard's replicas); `concord_replication` says so.
    fn replication(&self) -> concord_resp::ReplicationInfo {
        concord_resp::ReplicationInfo { model: "sharded", ..concord_resp::ReplicationInfo::standalone() }
    }

    fn limits(&self) -> KvLimits {
        self.handle.limits().clone()
    }

    fn topology(&self) -> Option<Topology> {
        Some(topology(&self.handle))
    }

    /// Always a cluster; answered without building the topology (asked on every multi-key command).
    fn is_cluster(&self) -> bool {
        true
    }

    /// Asked of the slot's shard's group – if this node serves it to the connection (leads it, or
    /// replicates it and the connection is `READONLY`) – through its Raft read path; 0 otherwise.
    fn count_keys_in_slot(
        self: Arc<Self>,
        slot: u16,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<u64, BackendError>> {
        Box::pin(async move {
            let slot = Slot::new(slot.into()).ok_or_else(|| BackendError::Rejected("Invalid slot".into()))?;
            self.handle.count_slot(slot, consistency.read).await.map_err(backend_error)
        })
    }

    /// As [`ShardedBackend::count_keys_in_slot`], the keys themselves, in key order.
    fn keys_in_slot(
        self: Arc<Self>,
        slot: u16,
        count: usize,
        consistency: RequestConsistency,
    ) -> BoxFuture<Result<Vec<Vec<u8>>, BackendError>> {
        Box::pin(async move {
            let slot = Slot::new(slot.into()).ok_or_else(|| BackendError::Rejected("Invalid slot".into()))?;
            self.handle.keys_in_slot(slot, count, consistency.read).await.map_err(backend_error)
        })
    }
}

/// A write that spans the whole store (see [`concord_kv::redis::spans_store`]): `Ok` the
/// arguments of a `FLUSHALL` or `FLUSHDB` sent alone, `Err` why it cannot run (with other
/// commands in a `MULTI`, with `WATCH`, or a `RANDOMKEY` in a `MULTI`: a transaction runs on one
/// shard).
fn whole_store_write(write: &Write) -> Option<Result<&[Vec<u8>], String>> {
    let Write::Redis(exec) = write else { return None };
    let name = exec.calls.iter().map(|call| call.name()).find(|name| concord_kv::redis::spans_store(name))?;
    Some(match exec.calls.as_slice() {
        [call] if exec.watch.is_empty() && (name == "flushall" || name == "flushdb") => Ok(&call.argv[1..]),
        _ => Err(format!(
            "{} inside MULTI or after WATCH is not supported in the sharded mode: a transaction runs on \
             one shard, and {0} acts on every shard; send it on its own",
            name.to_uppercase()
        )),
    })
}

impl ShardedBackend {
    /// `FLUSHALL` / `FLUSHDB` on a sharded node: one range delete of every key, fanned out to every
    /// shard of the cluster as `DELETE /v1/kv?prefix=` is ([`super::scan`]'s "Range deletes"); `OK`
    /// once every shard applied it. Each shard empties at its own revision: not one atomic step of
    /// the cluster, and a write sent during the flush (even pipelined behind it on the same
    /// connection) may land before it on its shard and be deleted.
    fn flush(&self, flush: Result<&[Vec<u8>], String>) -> BoxFuture<Result<Response, BackendError>> {
        let answer = |reply: Reply| Ok(Response::Redis { revision: 0, replies: Some(vec![reply]) });
        let checked = flush.map_err(BackendError::Rejected).map(concord_kv::redis::keyspace::flush_args);
        let handle = self.handle.clone();
        Box::pin(async move {
            if let Err(reply) = checked? {
                return answer(reply);
            }
            let start = Instant::now();
            let r = handle.delete_range(KeyRange::from(Vec::new())).await;
            handle.metrics().request("resp_flush", if r.is_ok() { "ok" } else { "failed" }, start.elapsed());
            match r {
                Ok(_) => answer(Reply::Ok),
                Err((e, deleted)) => Err(BackendError::Unknown(format!(
                    "FLUSHALL did not reach every shard ({deleted} keys deleted so far): {}; run it again",
                    backend_error(e)
                ))),
            }
        })
    }
}

/// Redis Cluster's view of the cluster as this node knows it.
pub fn topology(handle: &ShardedHandle) -> Topology {
    let s = handle.status();
    let cluster = handle.cluster_id();
    let node_id = |n: u32| hex_id(cluster, &format!("node/{n}"));
    let nodes = handle
        .peers()
        .iter()
        .map(|p| {
            let client = p.redis_addr;
            TopologyNode {
                id: node_id(p.id),
                host: client.map_or_else(|| p.addr.ip().to_string(), |a| a.ip().to_string()),
                port: client.map_or(0, |a| a.port()),
                cluster_port: p.addr.port(),
                // This node's own connection to the member (the transport's view).
                connected: handle.connected(p.id),
            }
        })
        .collect();
    let mut state_ok = s.map.bootstrapped;
    let shards = s
        .map
        .shards
        .iter()
        .map(|(&shard, replicas)| {
            let slots: Vec<(u16, u16)> = s
                .map
                .ranges
                .iter()
                .filter(|(_, owner)| *owner == shard)
                .map(|(range, _)| (range.start.get(), range.end.get()))
                .collect();
            let leader =
                s.leaders.get(&shard.0).copied().filter(|l| replicas.voters.iter().any(|v| v.0 == *l));
            if leader.is_none() && !slots.is_empty() {
                state_ok = false;
            }
            let moving_out = s
                .map
                .moves
                .iter()
                .filter(|m| m.from == shard)
                .map(|m| (m.range.start.get(), m.range.end.get()))
                .collect();
            TopologyShard {
                id: shard_id(cluster, shard),
                slots,
                primary: leader.map(node_id),
                replicas: replicas
                    .voters
                    .iter()
                    .filter(|v| Some(v.0) != leader)
                    .map(|v| node_id(v.0))
                    .collect(),
                config_epoch: s.map.epoch,
                moving_out,
            }
        })
        .collect();
    Topology { myself: node_id(s.id), current_epoch: s.map.epoch, state_ok, nodes, shards }
}

fn shard_id(cluster: &str, shard: ShardId) -> String {
    hex_id(cluster, &format!("shard/{}", shard.0))
}

#[cfg(test)]
mod tests {
    use super::hex_id;

    #[test]
    fn ids_are_40_hex_and_stable_per_cluster_and_number() {
        let a = hex_id("c1", "node/1");
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a, hex_id("c1", "node/1"));
        assert_ne!(a, hex_id("c1", "node/2"));
        assert_ne!(a, hex_id("c2", "node/1"));
    }
}

#[cfg(test)]
mod topology_tests {
    use super::*;
    use crate::sharded::tests::{handle_with, two_shards};
    use concord_shard::map::Phase;

    /// Redis Cluster's view: every member with its RESP address, each shard's slots, primary (the
    /// leader this node knows), replicas and the ranges moving out.
    #[test]
    fn the_topology_is_the_map_with_its_leaders() {
        let t = topology(&handle_with(1, two_shards(Phase::Fenced { source_index: 9 })));
        let node = |n: u32| hex_id("c1", &format!("node/{n}"));
        assert_eq!(t.myself, node(1));
        assert_eq!(t.current_epoch, 5);
        assert!(t.state_ok);
        assert_eq!(t.nodes.len(), 3);
        assert_eq!((t.nodes[2].id.clone(), t.nodes[2].port, t.nodes[2].cluster_port), (node(3), 6003, 7003));
        assert_eq!(t.shards[0].slots, vec![(0, 8191)]);
        assert_eq!(t.shards[0].primary, Some(node(1)));
        assert_eq!(t.shards[0].replicas, vec![node(2)]);
        assert_eq!(t.shards[0].moving_out, vec![(100, 199)]);
        assert_eq!(t.shards[1].primary, Some(node(3)));
        assert_eq!(t.shards[1].replicas, vec![node(2)]);
        assert_ne!(t.shards[0].id, t.shards[1].id);
        // A shard owning slots without a known leader: the cluster is not ok.
        let mut status = two_shards(Phase::Started);
        std::sync::Arc::make_mut(&mut status.leaders).remove(&2);
        assert!(!topology(&handle_with(1, status)).state_ok);
    }
}

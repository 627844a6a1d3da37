//! The sharded mode: the key space cut into shards, each its own Raft group, on real machines.
//!
//! `concord serve --mode sharded --shards S --replicas R` (or `concord up --nodes N --shards S`)
//! runs a [`concord_shard::ShardedNode`] – the very value the simulator runs under
//! `[protocol.sharded]` – in the generic [`crate::driver`], wrapped in [`process::ShardServer`]
//! so that an operator's map changes reach the metadata group. The same WAL, group commit,
//! authenticated peer transport and listeners serve it as the other two modes:
//!
//! ```text
//!   HTTP /v1/kv/{key} ─┐                                   ┌─ route by slot (the map applied here)
//!                      ├─> ShardedHandle ─Input─> Driver ──┤   led here   → the shard's RaftNode
//!   RESP (led here) ───┘   (deadline, retry   ShardServer  │   led elsewhere → Forward (one hop)
//!   RESP (led elsewhere) ── -MOVED slot host:port          └─ map changes → the metadata leader
//! ```
//!
//! * [`ShardedHandle`] – the client side: submits key requests and retries the answers that say
//!   "certainly not done, try again" (no leader yet, a slot between fence and flip, a request routed
//!   on a map that moved on) until the request deadline;
//! * [`http`] – `/v1/kv/{key}` (and `/cas`), `POST /v1/txn`, `GET` and `DELETE /v1/kv?prefix=`
//!   (every shard's keys), `GET /v1/backup`, `GET /v1/cluster`
//!   (the shard map), `GET /v1/status`, and the admin map changes `POST /v1/cluster/moves`
//!   (slots), `/v1/cluster/replicas` (a replica to another node), `/v1/cluster/rebalance`
//!   (the rebalancer's switch) and `/v1/cluster/decommission` (a node leaving);
//! * [`resp`] – the RESP backend: keys of shards led here are served, others answered `-MOVED`
//!   (Redis Cluster's redirect), a moving slot `-TRYAGAIN`, no map or no leader `-CLUSTERDOWN`;
//!   a `READONLY` connection's reads of shards replicated here are served here (stale);
//!   [`concord_resp::Backend::topology`] gives `CLUSTER SLOTS` and friends their answer;
//! * [`scan`] – range reads across shards: one page from each shard's group, the slots they
//!   served checked, merged in key order (`GET /v1/kv?prefix=`, and per node `KEYS`, `SCAN`,
//!   `DBSIZE`, `CLUSTER COUNTKEYSINSLOT`/`GETKEYSINSLOT`).
//!
//! ## Placement
//! Shard `k` of `S` is replicated by `R` consecutive nodes from the `k`-th, in node-id order
//! (`ShardedConfig::placement`); every node runs the metadata group. Every node computes the same
//! placement from the same `--shards`/`--replicas` and peer list, so the layout is recorded in
//! the data directory's identity ([`crate::identity`]) and a restart with another is refused.
//! That formula is only the *first* map's: from then on the applied map decides which groups a
//! node runs (`concord_shard::node`), and replicas move between nodes by hand
//! (`concord shard move-replica`) or by the rebalancer (`concord shard rebalance`), each step
//! committed in the metadata group first (`concord_shard::replicas`).
//!
//! ## Durability: in-memory shards rebuilt from the WAL
//! Each group's Raft state – term, vote, log entries, snapshots – goes through the node's one WAL
//! under the group's prefix `g/<group>/` (`concord_shard::host`), with the driver's group commit:
//! one `fdatasync` per batch covers every group's writes, and no reply or message that depends on
//! a write leaves before it (so an acknowledged write survives `kill -9`). A shard's key-value
//! state (`ShardKv`) lives **in memory** and is rebuilt at start from its last Raft snapshot plus
//! the log after it – the simulator's choice, kept on purpose:
//!
//! * one fsync per batch for all groups, instead of a WAL fsync plus a state-database checkpoint
//!   per group (the strong mode's redb state pays one checkpoint per snapshot, which for hundreds
//!   of groups means hundreds of files and checkpoints);
//! * the price is recovery time and memory: a restart replays each group's snapshot and log tail
//!   (bounded by `snapshot_threshold_entries`, 20 000 by default), and the state must fit in RAM.
//!   A snapshot is the whole shard's state written into the WAL, so snapshots of large shards cost
//!   WAL bandwidth; a durable per-shard engine is the way out when shards grow to gigabytes.
//!
//! ## Range reads
//! `GET /v1/kv?prefix=` on any node reads every shard (each through its Raft read path, forwarded
//! to its leader like a key's request) and merges the pages in key order; the slots the shards
//! served must cover the key space exactly once, or the page is read again – so no key is missed
//! or listed twice while slots move ([`scan`]). Each shard is read linearizably; the page as a
//! whole is not one snapshot of the cluster (shards are read at slightly different moments).
//! Over RESP the range commands are **per node**, as in Redis Cluster: `KEYS`, `SCAN`, `DBSIZE`,
//! `CLUSTER COUNTKEYSINSLOT` and `GETKEYSINSLOT` answer for the shards this node leads (and, on a
//! `READONLY` connection, those it replicates) – `redis-cli --cluster` and cluster clients fan them
//! out to every primary. A slot between a move's fence and its activation is served by no shard:
//! the per-node commands leave it out, the cluster-wide read waits for it.
//!
//! ## CAS, transactions, range deletes, backups
//! A CAS is one command in its key's shard. A transaction runs atomically in the one shard holding
//! all its keys ([`ShardedHandle::transaction`]); keys of several shards are refused before it is
//! tried ([`KeyError::CrossShard`], HTTP 400 `CROSSSLOT`), and the shard checks every key against
//! its slot table when it applies it. `DELETE /v1/kv?prefix=` is proposed to every shard and asked
//! again for the slots no shard served (moving), and a backup walks every shard's keys page by
//! page ([`scan`]): neither is one atomic step of the cluster.
//!
//! ## What the sharded mode does not do (yet)
//! Transactions across shards (an atomic commit over several groups) and reads, deletes or
//! backups that are one snapshot across shards. Keys of one slot (`{hash tags}`) may be combined
//! in one RESP command.
//!
//! ## Joining and leaving
//! Nodes join with `concord join` (the metadata group adds the node as a learner and promotes it,
//! then the map's placement takes it, see [`crate::membership`]) and leave with `concord shard
//! decommission` (`POST /v1/cluster/decommission`, [`http`]): the map takes the node out of the
//! placement, the metadata leader drains its replicas, and once it holds none the node is removed
//! from the metadata group's membership (its leadership handed over first).
//!
//! A joining node is given the cluster's peers and layout; its [`concord_shard::ShardedConfig`]
//! lists the cluster *without* it ([`crate::config::NodeConfig::sharded_config`]), so its metadata
//! replica starts as a non-voter and it starts no group of the first map. The transport learns
//! peers at run time (`POST /v1/members/addresses` on every member, as in the strong mode, kept in
//! `DATA/peers.json`), so nothing else changes for the members; [`ShardedHandle::learn_peer`] also
//! adds the node to the addresses `-MOVED` and `GET /v1/cluster` give.

pub mod http;
pub mod process;
pub mod resp;
pub mod scan;

pub use process::{ServerRequest, ServerResponse, ShardServer};

use crate::config::PeerConfig;
use crate::driver::{Clock, Input, ReplyTo};
use crate::fault_injection::FaultTarget as _;
use crate::front::ClientError;
use crate::hosted::Hosted;
use crate::metrics::Metrics;
use crate::node::{DoorParts, Front, FrontDoors, ModeParts, Served};
use crate::transport::Inbound;
use crate::wire::{wrong_mode, Frame};
use concord_core::{NodeId, Time};
use concord_kv::{Command, Query};
use concord_raft::{RaftRequest, RaftResponse, ReadConsistency};
use concord_shard::kv::{ShardError, ShardQuery, ShardResponse, ShardResult};
use concord_shard::machine::MapOutput;
use concord_shard::map::{Change, Move, Phase, Proposal, Shard, ShardId};
use concord_shard::node::{NodeMessage, ShardRequest, META};
use concord_shard::{GroupId, ShardCommand, Slot, SlotRange};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

// ----- the status the driver publishes -------------------------------------------------------

/// The shard map as this node applied it, in the form the front doors read (rebuilt only when
/// the epoch changes: every map change bumps it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapView {
    pub epoch: u64,
    pub bootstrapped: bool,
    /// Maximal runs of slots with one owner, in slot order.
    pub ranges: Vec<(SlotRange, ShardId)>,
    pub shards: BTreeMap<ShardId, Shard>,
    /// Moves under way.
    pub moves: Vec<Move>,
    /// Moves that ended in the map and wait for their groups' last steps.
    pub settling: usize,
    /// The nodes replicas may be placed on.
    pub nodes: Vec<NodeId>,
    /// Whether the rebalancer is on (`concord shard rebalance`).
    pub rebalancing: bool,
    /// The rebalancer's next step on this map (`None`: nothing to even out).
    pub next_step: Option<Change>,
}

impl MapView {
    /// The view of `map`, with the rebalancer's plan for `replicas` replicas per shard.
    fn of(map: &concord_shard::ShardMap, replicas: usize) -> MapView {
        MapView {
            epoch: map.epoch(),
            bootstrapped: map.is_bootstrapped(),
            ranges: map.ranges(),
            shards: map.shards().clone(),
            moves: map.moves().copied().collect(),
            settling: map.endings().count(),
            nodes: map.nodes(),
            rebalancing: map.rebalancing(),
            next_step: concord_shard::next_step(map, &map.nodes(), replicas).map(|p| p.change),
        }
    }

    /// Whether nothing is left to even out or under way: no rebalancer step, no slot move, no
    /// replica move (learner or leaving replica).
    pub fn balanced(&self) -> bool {
        self.bootstrapped
            && self.next_step.is_none()
            && self.moves.is_empty()
            && self.settling == 0
            && self.shards.values().all(|s| s.learners.is_empty() && s.leaving.is_empty())
    }

    /// The shard owning `slot` (`None` before bootstrap).
    pub fn owner(&self, slot: Slot) -> Option<ShardId> {
        let i = self.ranges.partition_point(|(range, _)| range.end < slot);
        self.ranges.get(i).filter(|(range, _)| range.contains(slot)).map(|&(_, shard)| shard)
    }

    /// The move `slot` takes part in, if any.
    pub fn moving(&self, slot: Slot) -> Option<&Move> {
        self.moves.iter().find(|m| m.range.contains(slot))
    }
}

/// One Raft group this node replicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// 0: the metadata group; k: shard k.
    pub group: u32,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u32>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u32>,
    pub learners: Vec<u32>,
    /// Shards only: keys held, and the slot table (`serving`, `moving out (move m)`, …).
    pub keys: Option<u64>,
    pub slots: Vec<(SlotRange, String)>,
    /// Quiesced: an idle group that stopped heartbeating (`concord-raft/src/quiesce.rs`).
    pub quiesced: bool,
}

/// A sharded node's state after its last batch, for HTTP, RESP and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardedStatus {
    pub id: u32,
    /// `map leader` (this node leads the metadata group) or `node`.
    pub role: &'static str,
    pub map: Arc<MapView>,
    /// Every group's leader as this node knows it (its own view of groups it replicates; for
    /// others what the last leader probe heard, else the last forwarding hint – see
    /// [`process`]), by group (0: the metadata group).
    pub leaders: Arc<BTreeMap<u32, u32>>,
    /// The groups this node replicates (shared with the previous status while none changed).
    pub groups: Arc<Vec<GroupView>>,
    /// Requests the node made and waits for (clients', forwards', the mover's).
    pub pending: usize,
    pub admin_pending: usize,
    pub wal_syncs: u64,
}

/// A node with more groups than this publishes its status at most every
/// [`STATUS_PAUSE_PER_GROUP`] × its groups (at most [`STATUS_PAUSE_MAX`]); one with fewer, after
/// every batch. Building the status visits every group (its role, indexes, slot table), about
/// 0.5 µs a group: after every batch – and group timers make a batch every 10 ms even when idle –
/// that was ~45% of an idle 1 000-shard node's CPU (perf); with a 20 µs pause per group still 38%;
/// at 100 µs a group about 0.5% of a core. The status is what the front doors read (redirects, `INFO`,
/// `/v1/status`); the node itself routes on its own map, so a status a few milliseconds old sends
/// a client one redirect too many at worst, never to a wrong answer.
pub const STATUS_EVERY_BATCH_UP_TO: usize = 64;
pub const STATUS_PAUSE_PER_GROUP: Duration = Duration::from_micros(100);
pub const STATUS_PAUSE_MAX: Duration = Duration::from_millis(500);

/// The pause between two status publications of a node running `groups` groups (`None`: none).
pub fn status_pause(groups: usize) -> Option<Duration> {
    (groups > STATUS_EVERY_BATCH_UP_TO)
        .then(|| (STATUS_PAUSE_PER_GROUP * groups as u32).min(STATUS_PAUSE_MAX))
}

/// The driver's notes between batches: the map view of the last epoch seen, and the views of the
/// groups and leaders with the [`ShardServer::leaders_stamp`] they were built at – rebuilt only
/// when it moved, so that an idle node (quiet groups: no group steps) describes its thousands of
/// groups once, not at every pause.
#[derive(Default)]
pub struct MapCache(Option<Arc<MapView>>, Option<GroupsView>);

/// The groups' and leaders' views, with the stamp they were built at.
type GroupsView = ([u64; 4], Arc<BTreeMap<u32, u32>>, Arc<Vec<GroupView>>);

impl Hosted for ShardServer {
    type Status = ShardedStatus;
    type Tracker = MapCache;

    fn id(&self) -> NodeId {
        self.node().id()
    }

    fn frame(msg: NodeMessage) -> Frame {
        Frame::Sharded(msg)
    }

    fn refused(reason: String) -> ServerResponse {
        // Also the answer to a refused map change: the handle reads `Rejected` in either variant.
        ServerResponse::Kv(RaftResponse::Rejected { reason })
    }

    /// Key writes; map changes stay possible on a full disk (moving slots away may be the way out).
    fn is_write(request: &ServerRequest) -> bool {
        matches!(
            request,
            ServerRequest::Kv(RaftRequest::Propose { .. })
                | ServerRequest::Shard { request: RaftRequest::Propose { .. }, .. }
        )
    }

    fn forward_reply(_id: u64, _response: ServerResponse) -> Option<Frame> {
        None // the sharded node forwards inside its protocol (`NodeMessage::Forward`)
    }

    fn record_changes(&mut self) {
        ShardServer::record_changes(self);
    }

    fn take_changes(&mut self) -> concord_kv::Changes {
        ShardServer::take_changes(self)
    }

    fn status(&self, cache: &mut MapCache, wal_syncs: u64) -> ShardedStatus {
        let node = self.node();
        let map = node.map();
        let view = match &cache.0 {
            Some(view) if view.epoch == map.epoch() && view.bootstrapped == map.is_bootstrapped() => {
                view.clone()
            }
            _ => {
                let view = Arc::new(MapView::of(map, node.config().replicas));
                cache.0 = Some(view.clone());
                view
            }
        };
        let stamp = self.leaders_stamp();
        let (leaders, hosted) = match &cache.1 {
            Some((at, leaders, hosted)) if *at == stamp => (leaders.clone(), hosted.clone()),
            _ => {
                let mut leaders = BTreeMap::new();
                let groups = std::iter::once(META).chain(view.shards.keys().map(|s| GroupId(s.0)));
                for group in groups {
                    if let Some(leader) = self.known_leader(group) {
                        leaders.insert(group.0, leader.0);
                    }
                }
                let mut hosted = Vec::new();
                hosted.push(group_view(0, node.metadata(), None, Vec::new()));
                for (shard, raft) in node.shards() {
                    let machine = raft.state_machine();
                    let slots = machine
                        .slots()
                        .runs()
                        .iter()
                        .map(|(range, state)| (*range, state.to_string()))
                        .collect();
                    hosted.push(group_view(shard.0, raft, Some(machine.store().len()), slots));
                }
                let (leaders, hosted) = (Arc::new(leaders), Arc::new(hosted));
                cache.1 = Some((stamp, leaders.clone(), hosted.clone()));
                (leaders, hosted)
            }
        };
        let meta = node.metadata();
        ShardedStatus {
            id: node.id().0,
            role: if meta.is_leader() { "map leader" } else { "node" },
            map: view,
            leaders,
            groups: hosted,
            pending: node.pending_requests(),
            admin_pending: self.admin_pending(),
            wal_syncs,
        }
    }

    fn status_interval(&self) -> Option<Duration> {
        status_pause(self.node().host().len())
    }

    fn export(status: &ShardedStatus, metrics: &Metrics) {
        if let Some(meta) = status.groups.first() {
            metrics.raft_term.set(meta.term as i64);
            metrics.raft_commit_index.set(meta.commit_index as i64);
            metrics.raft_applied_index.set(meta.applied_index as i64);
            metrics.raft_last_log_index.set(meta.last_log_index as i64);
        }
        metrics.set_role(if status.role == "map leader" { "leader" } else { "follower" });
    }
}

fn group_view<M: concord_core::StateMachine>(
    group: u32,
    raft: &concord_raft::RaftNode<M>,
    keys: Option<u64>,
    slots: Vec<(SlotRange, String)>,
) -> GroupView {
    GroupView {
        group,
        role: raft.role_name(),
        term: raft.current_term(),
        leader: raft.leader_id().map(|l| l.0),
        commit_index: raft.commit_index(),
        applied_index: raft.applied_index(),
        last_log_index: raft.last_log_index(),
        snapshot_index: raft.snapshot_index(),
        voters: raft.current_membership().voters.iter().map(|v| v.0).collect(),
        learners: raft.current_membership().learners.iter().map(|v| v.0).collect(),
        keys,
        slots,
        quiesced: raft.is_quiesced(),
    }
}

// ----- the client side -----------------------------------------------------------------------

/// Why a key request failed, beyond [`ClientError`]: what Redis Cluster has words for.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyError {
    Client(ClientError),
    /// The key's slot is between its move's fence and its flip (certainly not applied): retry.
    Moving {
        slot: u16,
    },
    /// The key's shard has no leader now, or the cluster has no shard map yet (not applied).
    ClusterDown(String),
    /// The key's shard is led by `node`, whose RESP door is `addr` (Redis Cluster's `-MOVED`).
    Moved {
        slot: u16,
        node: u32,
        addr: String,
    },
    /// The keys of one transaction live in more than one shard: each slot with its shard, in slot
    /// order. Nothing was done; the request cannot succeed as it is (Redis Cluster's `-CROSSSLOT`).
    CrossShard {
        slots: Vec<(u16, u32)>,
    },
}

impl From<ClientError> for KeyError {
    fn from(e: ClientError) -> KeyError {
        KeyError::Client(e)
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Client(e) => e.fmt(f),
            KeyError::Moving { slot } => {
                write!(f, "slot {slot} is being moved between shards; nothing was done, retry shortly")
            }
            KeyError::ClusterDown(why) => write!(f, "cluster down: {why}; nothing was done, retry shortly"),
            KeyError::Moved { slot, node, addr } => {
                write!(f, "slot {slot} is served by node {node} at {addr}")
            }
            KeyError::CrossShard { slots } => {
                let shards: BTreeSet<u32> = slots.iter().map(|&(_, shard)| shard).collect();
                let shown: Vec<String> = slots
                    .iter()
                    .take(8)
                    .map(|(slot, shard)| format!("slot {slot} on shard {shard}"))
                    .collect();
                let more = slots.len().saturating_sub(shown.len());
                write!(
                    f,
                    "CROSSSLOT the transaction's keys live in {} shards ({}{}): a transaction runs in one \
                     shard's Raft group, and cross-shard transactions are not supported; give its keys one \
                     {{hash tag}} (as in {{user:1}}:name, {{user:1}}:email) so that they share a slot; \
                     nothing was done",
                    shards.len(),
                    shown.join(", "),
                    if more > 0 { format!(" and {more} more slots") } else { String::new() },
                )
            }
        }
    }
}

/// How one answer to a key request reads.
enum Verdict {
    Done(ShardResponse),
    Failed(KeyError),
    /// Certainly not applied; worth another try until the deadline, else this error.
    Retry(KeyError),
}

/// The client side of a sharded node (cheap to clone).
#[derive(Clone)]
pub struct ShardedHandle {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeId,
    tx: mpsc::Sender<Input<ShardServer>>,
    status: watch::Receiver<ShardedStatus>,
    clock: Clock,
    timeout: Duration,
    read_default: ReadConsistency,
    limits: concord_kv::KvLimits,
    metrics: Arc<Metrics>,
    /// Every member's addresses by id, this node's own included; grows when a node joins
    /// ([`ShardedHandle::learn_peer`]).
    peers: std::sync::RwLock<BTreeMap<u32, PeerConfig>>,
    /// The peer transport (`None` without a cluster secret, or a test's handle): it learns joining
    /// nodes' addresses, and says which peers are connected.
    transport: Option<crate::transport::Transport>,
    /// Where learned addresses are kept across restarts ([`crate::peer_file`]).
    peer_file: Option<crate::peer_file::PeerFile>,
    /// The layout the node was started with (`--shards`, `--replicas`): a joining node must match it.
    layout: Option<crate::config::ShardSettings>,
    disk_space: Arc<crate::disk_space::DiskSpace>,
    cluster_id: String,
}

/// The first wait between two tries of a key request, doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_millis(200);

impl ShardedHandle {
    pub fn id(&self) -> NodeId {
        self.inner.me
    }

    pub fn now(&self) -> Time {
        self.inner.clock.now()
    }

    pub fn status(&self) -> ShardedStatus {
        self.inner.status.borrow().clone()
    }

    /// The status as it changes (see [`ShardedStatus`]).
    pub fn watch_status(&self) -> watch::Receiver<ShardedStatus> {
        self.inner.status.clone()
    }

    pub fn limits(&self) -> &concord_kv::KvLimits {
        &self.inner.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn default_read(&self) -> ReadConsistency {
        self.inner.read_default
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// Every member's addresses, this node's own included, by id.
    pub fn peers(&self) -> Vec<PeerConfig> {
        self.inner.peers.read().expect("peers lock").values().cloned().collect()
    }

    pub fn peer(&self, id: u32) -> Option<PeerConfig> {
        self.inner.peers.read().expect("peers lock").get(&id).cloned()
    }

    /// The layout this node was started with.
    pub fn layout(&self) -> Option<crate::config::ShardSettings> {
        self.inner.layout
    }

    /// Learn the addresses of a node about to join ([`crate::peer_file::learn_peer`]).
    pub fn learn_peer(&self, peer: PeerConfig) -> Result<(), ClientError> {
        let inner = &self.inner;
        crate::peer_file::learn_peer(inner.transport.as_ref(), &inner.peers, inner.peer_file.as_ref(), peer)
    }

    /// Change the metadata group's membership (a joining node: add it as a learner, then promote
    /// it once caught up), through the metadata group's leader.
    pub async fn change_members(
        &self,
        request: concord_raft::AdminRequest,
    ) -> Result<RaftResponse<MapOutput>, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        match self.submit(ServerRequest::Members(request), deadline).await? {
            ServerResponse::Map(RaftResponse::NotLeader { .. }) => {
                Err(ClientError::Unavailable("the metadata group has no leader now".into()))
            }
            ServerResponse::Map(RaftResponse::Unknown { reason }) => Err(ClientError::Unknown(reason)),
            ServerResponse::Map(RaftResponse::Rejected { reason })
            | ServerResponse::Kv(RaftResponse::Rejected { reason }) => Err(ClientError::Rejected(reason)),
            ServerResponse::Map(answer) => Ok(answer),
            other => {
                Err(ClientError::Unknown(format!("unexpected answer to a membership change: {other:?}")))
            }
        }
    }

    /// Whether this node's connection to member `id` is up (itself: always; without a transport
    /// – a test's handle – every member counts as connected).
    pub fn connected(&self, id: u32) -> bool {
        id == self.inner.me.0 || self.inner.transport.as_ref().is_none_or(|t| t.is_connected(NodeId(id)))
    }

    /// A message from a peer: queued for the driver, or dropped (and counted) when the queue is
    /// full – Raft tolerates loss, and a peer must never block on a slow node.
    pub fn deliver_message(&self, from: NodeId, msg: NodeMessage) {
        if self.inner.tx.try_send(Input::Message { from, msg }).is_err() {
            self.inner.metrics.inbound_dropped.inc();
        }
    }

    /// Hand `request` to the driver now (requests handed over in order reach the node in order)
    /// and return a future for its answer, waiting at most until `deadline`.
    fn submit(
        &self,
        request: ServerRequest,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<ServerResponse, ClientError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let refusal = self.inner.disk_space.refusal().filter(|_| ShardServer::is_write(&request));
        let sent = match refusal {
            Some(why) => Err(ClientError::NoSpace(why)),
            None => match self.inner.tx.try_send(Input::Request { request, reply: ReplyTo::Local(tx) }) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(ClientError::Rejected(
                    "node overloaded: its input queue is full; retry shortly".into(),
                )),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(ClientError::Unavailable("the node is shutting down".into()))
                }
            },
        };
        async move {
            sent?;
            match tokio::time::timeout_at(deadline.into(), rx).await {
                Err(_) => Err(ClientError::Timeout),
                Ok(Err(_)) => Err(ClientError::Unavailable("the node stopped before answering".into())),
                Ok(Ok(answer)) => Ok(answer),
            }
        }
    }

    /// Serve a key request: submitted now (so pipelined writes keep their order), tried again
    /// while the answers say it certainly did not take effect, until the request deadline.
    pub fn key_request(
        &self,
        request: ShardRequest,
    ) -> impl std::future::Future<Output = Result<concord_kv::Response, KeyError>> + Send + 'static {
        let deadline = Instant::now() + self.inner.timeout;
        let answer = self.request_until(ServerRequest::Kv(request), deadline);
        async move {
            match answer.await? {
                ShardResponse::Kv(response) => Ok(response),
                other => Err(ClientError::Unknown(format!("unexpected answer {other:?}")).into()),
            }
        }
    }

    /// Serve `request` (a key's, or one shard's): submitted now, tried again while the answers say
    /// it certainly did not take effect, until `deadline`.
    fn request_until(
        &self,
        request: ServerRequest,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<ShardResponse, KeyError>> + Send + 'static {
        self.request_checked(request, deadline, |_| Ok(()))
    }

    /// [`ShardedHandle::request_until`], with `check` asked of the map before every try: its error
    /// is the answer (a transaction whose keys the map has put in two shards is not tried again).
    fn request_checked(
        &self,
        request: ServerRequest,
        deadline: Instant,
        check: impl Fn(&ShardedStatus) -> Result<(), KeyError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<ShardResponse, KeyError>> + Send + 'static {
        let is_read = matches!(
            request,
            ServerRequest::Kv(RaftRequest::Read { .. })
                | ServerRequest::Shard { request: RaftRequest::Read { .. }, .. }
        );
        let checked = check(&self.inner.status.borrow());
        let first = checked.is_ok().then(|| self.submit(request.clone(), deadline));
        let handle = self.clone();
        async move {
            checked?;
            let mut answer = first.expect("submitted when checked").await;
            let mut wait = RETRY_MIN;
            loop {
                let verdict = match answer {
                    Ok(ServerResponse::Kv(response)) => verdict(response, is_read),
                    Ok(ServerResponse::Map(_)) => Verdict::Failed(KeyError::Client(ClientError::Unknown(
                        "a map answer to a key request".into(),
                    ))),
                    Err(ClientError::Timeout) if is_read => Verdict::Failed(ClientError::ReadTimeout.into()),
                    Err(e) => Verdict::Failed(e.into()),
                };
                match verdict {
                    Verdict::Done(response) => return Ok(response),
                    Verdict::Failed(e) => return Err(e),
                    Verdict::Retry(e) if Instant::now() + wait >= deadline => return Err(e),
                    Verdict::Retry(_) => {}
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                check(&handle.inner.status.borrow())?;
                answer = handle.submit(request.clone(), deadline).await;
            }
        }
    }

    /// Read `query` of shard `shard`'s group at `consistency` (see [`ShardedHandle::request_until`]).
    pub fn shard_read(
        &self,
        shard: ShardId,
        query: ShardQuery,
        consistency: ReadConsistency,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<ShardResponse, KeyError>> + Send + 'static {
        let request = RaftRequest::Read { consistency, query };
        self.request_until(ServerRequest::Shard { shard, request }, deadline)
    }

    /// Propose `command` to shard `shard`'s group by name (a range delete, asked of every shard),
    /// tried again as [`ShardedHandle::request_until`] says.
    pub fn shard_write(
        &self,
        shard: ShardId,
        command: ShardCommand,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<ShardResponse, KeyError>> + Send + 'static {
        let request = RaftRequest::Propose { session: None, command };
        self.request_until(ServerRequest::Shard { shard, request }, deadline)
    }

    /// Apply a transaction in the one shard holding all its keys, atomically there; refused with
    /// [`KeyError::CrossShard`] – before any try, and before each retry, on the map as it is then –
    /// if its keys live in several shards. The shard checks every key against its slot table
    /// when it applies the transaction, so one routed on a map that has moved on is refused
    /// whole and tried again.
    pub fn transaction(
        &self,
        command: Command,
    ) -> impl std::future::Future<Output = Result<concord_kv::Response, KeyError>> + Send + 'static {
        let keys: Vec<Vec<u8>> = command.write.keys().into_iter().map(<[u8]>::to_vec).collect();
        let deadline = Instant::now() + self.inner.timeout;
        let request =
            ServerRequest::Kv(RaftRequest::Propose { session: None, command: ShardCommand::Kv(command) });
        let answer = self.request_checked(request, deadline, move |status| one_shard(&status.map, &keys));
        async move {
            match answer.await? {
                ShardResponse::Kv(response) => Ok(response),
                other => Err(ClientError::Unknown(format!("unexpected answer {other:?}")).into()),
            }
        }
    }

    /// When a request made now must be answered (the node's request timeout).
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.inner.timeout
    }

    /// Read `query` (one key, or keys of one slot) at `consistency`.
    pub fn read(
        &self,
        query: Query,
        consistency: ReadConsistency,
    ) -> impl std::future::Future<Output = Result<concord_kv::Response, KeyError>> + Send + 'static {
        self.key_request(RaftRequest::Read { consistency, query: ShardQuery::Kv(query) })
    }

    /// Apply a write command (submitted now; see [`ShardedHandle::key_request`]).
    pub fn write(
        &self,
        command: Command,
    ) -> impl std::future::Future<Output = Result<concord_kv::Response, KeyError>> + Send + 'static {
        self.key_request(RaftRequest::Propose { session: None, command: ShardCommand::Kv(command) })
    }

    /// Commit a change of the shard map through the metadata group's leader.
    pub async fn change_map(&self, proposal: Proposal) -> Result<MapOutput, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        match self.submit(ServerRequest::Map(proposal), deadline).await? {
            ServerResponse::Map(RaftResponse::Output(output)) => Ok(output),
            ServerResponse::Map(RaftResponse::NotLeader { .. }) => {
                Err(ClientError::Unavailable("the metadata group has no leader now".into()))
            }
            ServerResponse::Map(RaftResponse::Unknown { reason }) => Err(ClientError::Unknown(reason)),
            ServerResponse::Map(RaftResponse::Rejected { reason })
            | ServerResponse::Kv(RaftResponse::Rejected { reason }) => Err(ClientError::Rejected(reason)),
            other => Err(ClientError::Unknown(format!("unexpected answer to a map change: {other:?}"))),
        }
    }

    /// Where a RESP client should send a request for `key`: `None` to serve it here (this node
    /// leads the key's shard, or nobody is known to: the node then forwards; or, for a read at
    /// stale consistency – `stale_read`, a `READONLY` connection's –, this node replicates the
    /// shard), else the redirect. Writes and other reads go to the leader, as in Redis Cluster.
    ///
    /// Before the map is bootstrapped (a cluster's first second) the request is served here too:
    /// the node answers it `CLUSTERDOWN`, certainly not applied, and [`ShardedHandle::write`]
    /// tries it again until the map exists or the request's deadline – as a strong node holds a
    /// request until a leader is elected. Answering `-CLUSTERDOWN` at once would fail the first
    /// `redis-cli -c SET` typed after `concord up` (redis-cli does not retry it).
    pub fn redirect(&self, key: &[u8], stale_read: bool) -> Option<KeyError> {
        let status = self.inner.status.borrow();
        let slot = concord_shard::key_slot(key);
        let shard = status.map.owner(slot)?;
        if let Some(m) = status.map.moving(slot) {
            if matches!(m.phase, Phase::Fenced { .. } | Phase::Copied { .. }) {
                return Some(KeyError::Moving { slot: slot.get() });
            }
        }
        if stale_read && status.groups.iter().any(|g| g.group == shard.0) {
            return None;
        }
        match status.leaders.get(&shard.0) {
            Some(&leader) if leader != self.inner.me.0 => {
                let addr = self.peer(leader).and_then(|p| p.redis_addr)?;
                Some(KeyError::Moved { slot: slot.get(), node: leader, addr: addr.to_string() })
            }
            _ => None,
        }
    }
}

/// The shards whose keys a node serves to a RESP connection – what Redis Cluster's per-node
/// commands (`KEYS`, `SCAN`, `DBSIZE`, `CLUSTER COUNTKEYSINSLOT`) answer for: those it leads, and,
/// for reads at stale consistency (`READONLY`), those it replicates. Exactly the shards whose keys
/// a `GET` on the connection is served for rather than redirected.
pub fn served_here(status: &ShardedStatus, stale_read: bool) -> Vec<ShardId> {
    status
        .groups
        .iter()
        .filter(|g| g.group != META.0 && (stale_read || g.leader == Some(status.id)))
        .map(|g| ShardId(g.group))
        .collect()
}

/// Read one answer of the sharded node to a key request.
fn verdict(response: RaftResponse<ShardResult>, is_read: bool) -> Verdict {
    match response {
        RaftResponse::Output(Ok(response)) => Verdict::Done(response),
        RaftResponse::Output(Err(ShardError::Kv(e))) => Verdict::Failed(ClientError::Kv(e).into()),
        // Refused when applied (routed on a map that moved on, or frozen by a move): not done.
        RaftResponse::Output(Err(ShardError::NotServing { slot, state })) => match state {
            Some(_) => Verdict::Retry(KeyError::Moving { slot: slot.get() }),
            None => Verdict::Retry(KeyError::ClusterDown(format!(
                "slot {slot} changed shards while the request was on its way"
            ))),
        },
        RaftResponse::Output(Err(e)) => Verdict::Failed(ClientError::Rejected(e.to_string()).into()),
        RaftResponse::NotLeader { .. } => {
            Verdict::Retry(KeyError::ClusterDown("the key's shard has no leader now".into()))
        }
        RaftResponse::Rejected { reason } => {
            if let Some(rest) = reason.strip_prefix("TRYAGAIN slot ") {
                let slot = rest.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or_default();
                Verdict::Retry(KeyError::Moving { slot })
            } else if let Some(why) = reason.strip_prefix("CLUSTERDOWN ") {
                Verdict::Retry(KeyError::ClusterDown(why.to_string()))
            } else {
                Verdict::Failed(ClientError::Rejected(reason).into())
            }
        }
        // A read changes nothing: trying it again is safe. A write may have been applied.
        RaftResponse::Unknown { reason } if is_read => {
            Verdict::Retry(KeyError::Client(ClientError::Unavailable(reason)))
        }
        RaftResponse::Unknown { reason } => Verdict::Failed(ClientError::Unknown(reason).into()),
        other => Verdict::Failed(ClientError::Unknown(format!("unexpected answer {other:?}")).into()),
    }
}

/// Whether `keys` all live in one shard of `map`; else every slot they name with its shard.
pub fn one_shard(map: &MapView, keys: &[Vec<u8>]) -> Result<(), KeyError> {
    if !map.bootstrapped {
        return Err(KeyError::ClusterDown("the shard map is not bootstrapped yet".into()));
    }
    let slots: BTreeMap<u16, u32> = keys
        .iter()
        .map(|key| concord_shard::key_slot(key))
        .filter_map(|slot| map.owner(slot).map(|shard| (slot.get(), shard.0)))
        .collect();
    let shards: BTreeSet<u32> = slots.values().copied().collect();
    match shards.len() {
        0 | 1 => Ok(()),
        _ => Err(KeyError::CrossShard { slots: slots.into_iter().collect() }),
    }
}

// ----- peers and the mode's plumbing ---------------------------------------------------------

/// Routes frames from authenticated peers to a sharded node.
pub struct ShardedInbox {
    handle: ShardedHandle,
}

impl Inbound for ShardedInbox {
    fn deliver(&self, from: NodeId, frame: Frame) {
        if self.handle.isolated() {
            return; // fault injection: a partition drops inbound frames too (see `crate::fault_injection`)
        }
        match frame {
            Frame::Sharded(msg) => self.handle.deliver_message(from, msg),
            frame => wrong_mode(from, &frame, "sharded"),
        }
    }
}

impl Served for ShardServer {
    type Handle = ShardedHandle;

    fn handle(parts: ModeParts<'_, Self>) -> ShardedHandle {
        let config = parts.config;
        let peers = parts.members.into_iter().map(|p| (p.id, p)).collect();
        ShardedHandle {
            inner: Arc::new(Inner {
                me: parts.me,
                tx: parts.tx,
                status: parts.status,
                clock: parts.clock,
                timeout: config.request_timeout,
                read_default: config.read_consistency.consistency(),
                limits: config.kv.clone(),
                metrics: parts.metrics,
                peers: std::sync::RwLock::new(peers),
                transport: parts.transport,
                peer_file: Some(parts.peer_file),
                layout: config.shard,
                disk_space: parts.disk_space,
                cluster_id: config.cluster_id.clone(),
            }),
        }
    }

    /// The mode's doors, with the fault-injection endpoints (partition, heal, stop; off unless
    /// `--allow-fault-injection`) but no dashboard buttons.
    fn front_doors(handle: &ShardedHandle, parts: &DoorParts<'_>) -> Result<FrontDoors, crate::Error> {
        let peer_http = crate::dashboard::PeerHttp::new(parts.config)?;
        let faults = crate::fault_injection::doors(Arc::new(handle.clone()), peer_http, parts);
        Ok(FrontDoors {
            inbox: Arc::new(ShardedInbox { handle: handle.clone() }),
            http: http::router(handle.clone(), parts.config).merge(faults),
            resp: Arc::new(resp::ShardedBackend::new(handle.clone()).with_changes(parts.changes.clone())),
        })
    }

    fn front(handle: ShardedHandle) -> Front {
        Front::Sharded(handle)
    }
}

impl crate::fault_injection::FaultTarget for ShardedHandle {
    fn node_id(&self) -> u32 {
        self.id().0
    }

    fn transport(&self) -> Option<&crate::transport::Transport> {
        self.inner.transport.as_ref()
    }

    fn peer_http(&self, id: u32) -> Option<std::net::SocketAddr> {
        self.peer(id).and_then(|p| p.http_addr)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use concord_kv::{TxnOp, Write};
    use concord_shard::map::{Move, Phase};

    /// A handle whose node publishes `status`, with members 1..=3 on loopback (RESP ports 6001..).
    pub(crate) fn handle_with(me: u32, status: ShardedStatus) -> ShardedHandle {
        let (tx, _rx) = mpsc::channel(1);
        let (_status_tx, status_rx) = watch::channel(status);
        let peers = (1..=3)
            .map(|id| {
                let addr = ([127, 0, 0, 1], 7000 + id as u16).into();
                let redis_addr = Some(([127, 0, 0, 1], 6000 + id as u16).into());
                (id, PeerConfig { id, addr, http_addr: None, redis_addr })
            })
            .collect();
        ShardedHandle {
            inner: Arc::new(Inner {
                me: NodeId(me),
                tx,
                status: status_rx,
                clock: Clock::new(),
                timeout: Duration::from_secs(1),
                read_default: ReadConsistency::Linearizable,
                limits: concord_kv::KvLimits::default(),
                metrics: Arc::new(Metrics::new()),
                peers: std::sync::RwLock::new(peers),
                transport: None,
                peer_file: None,
                layout: None,
                disk_space: Arc::new(crate::disk_space::DiskSpace::unlimited()),
                cluster_id: "c1".into(),
            }),
        }
    }

    /// Two shards: slots 0-8191 on nodes 1, 2 (led by 1), 8192-16383 on nodes 2, 3 (led by 3);
    /// slots 100-199 moving from shard 1 to shard 2 in `phase`.
    pub(crate) fn two_shards(phase: Phase) -> ShardedStatus {
        let slot = |n: i64| Slot::new(n).unwrap();
        let shard = |voters: &[u32]| Shard {
            voters: voters.iter().map(|&v| NodeId(v)).collect(),
            learners: vec![],
            leaving: vec![],
        };
        let map = MapView {
            epoch: 5,
            bootstrapped: true,
            ranges: vec![
                (SlotRange::new(slot(0), slot(8191)).unwrap(), ShardId(1)),
                (SlotRange::new(slot(8192), slot(16383)).unwrap(), ShardId(2)),
            ],
            shards: [(ShardId(1), shard(&[1, 2])), (ShardId(2), shard(&[2, 3]))].into(),
            moves: vec![Move {
                id: 7,
                range: SlotRange::new(slot(100), slot(199)).unwrap(),
                from: ShardId(1),
                to: ShardId(2),
                phase,
            }],
            settling: 0,
            ..MapView::default()
        };
        ShardedStatus {
            id: 1,
            role: "node",
            map: Arc::new(map),
            leaders: Arc::new([(0, 2), (1, 1), (2, 3)].into()),
            ..ShardedStatus::default()
        }
    }

    /// A key of a shard led here is served; of a shard led elsewhere, redirected to that leader's
    /// RESP door; a slot between fence and flip waits; no map: the cluster is down.
    #[test]
    fn redis_clients_are_sent_where_the_key_is_served() {
        let handle = handle_with(1, two_shards(Phase::Fenced { source_index: 9 }));
        // "foo" is slot 12182 (shard 2, led by node 3); "bar" 5061 (shard 1, led here).
        assert_eq!(
            handle.redirect(b"foo", false),
            Some(KeyError::Moved { slot: 12182, node: 3, addr: "127.0.0.1:6003".into() })
        );
        assert_eq!(handle.redirect(b"bar", false), None);
        let moving = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| (100..200).contains(&concord_shard::key_slot(k.as_bytes()).get()))
            .unwrap();
        let slot = concord_shard::key_slot(moving.as_bytes()).get();
        assert_eq!(handle.redirect(moving.as_bytes(), false), Some(KeyError::Moving { slot }));
        // A move only started: the source still serves.
        let started = handle_with(1, two_shards(Phase::Started));
        assert_eq!(started.redirect(moving.as_bytes(), false), None);
        // No map yet: served here, where the request waits for the map (see `redirect`).
        let empty = handle_with(1, ShardedStatus::default());
        assert_eq!(empty.redirect(b"foo", false), None);
    }

    /// A stale read (`READONLY`) of a shard replicated here is served here; of a shard not
    /// replicated here it is redirected to the leader as any request is; the per-node commands
    /// answer for the shards led here, and at stale consistency for those replicated here too.
    #[test]
    fn stale_reads_are_served_by_a_replica() {
        let mut status = two_shards(Phase::Started);
        status.id = 2; // node 2 replicates both shards, leads neither
        status.groups =
            [1, 2].iter().map(|&g| group(g, if g == 1 { 1 } else { 3 })).collect::<Vec<_>>().into();
        let handle = handle_with(2, status.clone());
        assert!(matches!(handle.redirect(b"foo", false), Some(KeyError::Moved { node: 3, .. })));
        assert_eq!(handle.redirect(b"foo", true), None);
        assert_eq!(handle.redirect(b"bar", true), None);
        assert_eq!(served_here(&status, false), vec![]);
        assert_eq!(served_here(&status, true), vec![ShardId(1), ShardId(2)]);
        // Node 1 replicates shard 1 only (and leads it): shard 2's keys are redirected even stale.
        let mut status = two_shards(Phase::Started);
        status.groups = Arc::new(vec![group(1, 1)]);
        let handle = handle_with(1, status.clone());
        assert!(matches!(handle.redirect(b"foo", true), Some(KeyError::Moved { node: 3, .. })));
        assert_eq!(served_here(&status, false), vec![ShardId(1)]);
    }

    fn group(group: u32, leader: u32) -> GroupView {
        GroupView {
            group,
            role: "follower",
            term: 1,
            leader: Some(leader),
            commit_index: 0,
            applied_index: 0,
            last_log_index: 0,
            snapshot_index: 0,
            voters: vec![],
            learners: vec![],
            keys: Some(0),
            slots: vec![],
            quiesced: false,
        }
    }

    /// A node of a few groups publishes its status after every batch; one of thousands pauses in
    /// proportion, up to a bound.
    #[test]
    fn large_nodes_pause_between_status_publications() {
        assert_eq!(status_pause(1), None);
        assert_eq!(status_pause(STATUS_EVERY_BATCH_UP_TO), None);
        assert_eq!(status_pause(1_000), Some(Duration::from_millis(100)));
        assert_eq!(status_pause(10_000), Some(STATUS_PAUSE_MAX));
        // What the driver asks the node: its groups, the metadata group included.
        let config = concord_shard::ShardedConfig { shards: 100, ..Default::default() };
        let node = concord_shard::ShardedNode::boot(NodeId(1), config, &Default::default()).unwrap();
        let server = ShardServer::new(node);
        assert_eq!(server.status_interval(), Some(STATUS_PAUSE_PER_GROUP * 101));
    }

    /// A transaction's keys – compares and both branches – must share a shard; keys of two
    /// shards are named slot by slot with their shards. Keys of two slots of one shard are fine.
    #[test]
    fn a_transaction_across_shards_is_refused_with_its_slots_and_shards() {
        let map = two_shards(Phase::Started).map;
        // "bar" is slot 5061 (shard 1), "foo" 12182 (shard 2), "{foo}x" 12182 too.
        let txn = |keys: [&str; 3]| concord_kv::Txn {
            compares: vec![concord_kv::Compare::new(
                keys[0].as_bytes().to_vec(),
                concord_kv::CompareOp::Equal,
                concord_kv::CompareTarget::Version(0),
            )],
            success: vec![TxnOp::Put(concord_kv::Put::new(keys[1], "v"))],
            failure: vec![TxnOp::Delete { key: keys[2].into() }],
        };
        let keys = |t: concord_kv::Txn| -> Vec<Vec<u8>> {
            Write::Txn(t).keys().into_iter().map(<[u8]>::to_vec).collect()
        };
        assert_eq!(keys(txn(["a", "b", "c"])), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(one_shard(&map, &keys(txn(["foo", "{foo}x", "foo"]))), Ok(()));
        let other_slot_same_shard = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| {
                let slot = concord_shard::key_slot(k.as_bytes());
                slot.get() != 12182 && map.owner(slot) == Some(ShardId(2))
            })
            .unwrap();
        assert_eq!(one_shard(&map, &keys(txn(["foo", &other_slot_same_shard, "foo"]))), Ok(()));
        let refused = one_shard(&map, &keys(txn(["foo", "{foo}x", "bar"]))).unwrap_err();
        assert_eq!(refused, KeyError::CrossShard { slots: vec![(5061, 1), (12182, 2)] });
        let text = refused.to_string();
        assert!(
            text.starts_with("CROSSSLOT") && text.contains("slot 5061 on shard 1, slot 12182 on shard 2"),
            "{text}"
        );
        assert!(matches!(one_shard(&MapView::default(), &[b"a".to_vec()]), Err(KeyError::ClusterDown(_))));
    }

    #[test]
    fn answers_that_certainly_did_nothing_are_tried_again() {
        let moving = RaftResponse::Output(Err(ShardError::NotServing {
            slot: Slot::new(5).unwrap(),
            state: Some(concord_shard::SlotState::Outgoing(3)),
        }));
        assert!(matches!(verdict(moving, false), Verdict::Retry(KeyError::Moving { slot: 5 })));
        assert!(matches!(verdict(RaftResponse::NotLeader { hint: None }, false), Verdict::Retry(_)));
        let tryagain = RaftResponse::Rejected { reason: "TRYAGAIN slot 42 is moving (move 1)".into() };
        assert!(matches!(verdict(tryagain, false), Verdict::Retry(KeyError::Moving { slot: 42 })));
        // A write whose outcome is unknown is never sent again; a read is.
        let unknown = || RaftResponse::Unknown { reason: "no answer".into() };
        assert!(matches!(
            verdict(unknown(), false),
            Verdict::Failed(KeyError::Client(ClientError::Unknown(_)))
        ));
        assert!(matches!(verdict(unknown(), true), Verdict::Retry(_)));
    }
}

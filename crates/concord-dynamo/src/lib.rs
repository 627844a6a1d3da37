//! # concord-dynamo – leaderless replication in the style of Amazon's Dynamo
//!
//! DeCandia et al., "Dynamo: Amazon's Highly Available Key-value Store" (SOSP 2007), built from the
//! same parts as the paper, each in its own module:
//!
//! | module            | what it does                                                           |
//! |-------------------|------------------------------------------------------------------------|
//! | [`ring`]          | consistent hashing with virtual nodes; preference lists (§4.2, §4.3)     |
//! | [`version`]       | dotted version vectors, siblings; last-write-wins as an option (§4.4)   |
//! | [`crdt`]          | G/PN-counters, OR-set, map of LWW registers, with merge laws tested      |
//! | [`coordinator`]   | N/R/W quorums, sloppy quorum + hinted handoff, read repair, timeouts (§4.5, §4.6) |
//! | [`anti_entropy`]  | Merkle trees per vnode range; exchange only differing subtrees (§4.7)   |
//! | [`swim`]          | membership and failure detection, gossip piggybacked (§4.8, via SWIM)  |
//! | [`store`]         | objects, on-disk records, tombstones                                    |
//!
//! The node is **sans-IO** ([`concord_core::Process`]): the simulator and the tokio server drive the
//! same code. Any node accepts any request. Reads are coordinated by the node that received them;
//! writes are forwarded to a *home replica* of the key (the first one believed up), because the
//! dot that names a new version must be issued by a node that holds every earlier version it issued
//! for that key (see [`version`]). Riak coordinates writes at a home vnode for the same reason.
//!
//! ## Data types: registers, counters, sets and maps
//!
//! A key holds one kind of [`store::Object`], fixed by its first write; a write of another kind is
//! refused (`"k" holds a set, not a hash`), never merged over it. All four kinds are merged, not
//! overwritten, by replication, read repair, hinted handoff and anti-entropy alike:
//!
//! | kind      | requests                         | concurrent writes                                      |
//! |-----------|----------------------------------|--------------------------------------------------------|
//! | register  | `Put`, `Delete`                  | siblings (DVV), or last-write-wins if configured        |
//! | counter   | `Increment`                      | PN-counter: every increment counts                      |
//! | set       | `SetAdd`, `SetRemove`            | OR-set: both adds kept; an add beats a remove it was not seen by |
//! | map       | `MapSet`, `MapRemove`            | fields as an OR-set; a field's concurrent values: the greatest (timestamp, dot) is read |
//!
//! Set and map writes are coordinated at a home replica, like register writes: the coordinator
//! tags the write with one fresh dot from its durable counter, applies it to its own copy and ships
//! the whole object. A remove removes what *that copy* holds – the adds it has seen – so an add
//! that has not reached it (in flight, or across a partition) survives the remove: an acknowledged
//! add is never lost to a concurrent remove, only to a remove that saw it. A map field's value is a
//! last-writer-wins register whose timestamp is the coordinator's clock at the write, but only
//! *concurrent* writes are compared by it: a write replaces the values it has seen, so a causally
//! later write wins whatever the clocks say (see [`crdt::LwwMap`]). Reads answer the whole set or
//! map ([`DynamoResponse::Members`], [`DynamoResponse::Fields`]); writes answer what changed at the
//! coordinator ([`DynamoResponse::Updated`]). An emptied set or map stays as an empty object with
//! its causal context (tombstone GC purges only registers), and keeps its kind.
//!
//! ## Durability
//!
//! A replica persists the merged object and **syncs before it acknowledges** (a coordinator before it
//! counts itself or forwards the object). The sans-IO pipeline makes "sync, then send" a matter of
//! effect order – also for the reply: a coordinator *decides* to acknowledge as soon as it counts
//! `w` copies, its own unsynced one among them, but the reply leaves only after that sync. The
//! per-node dot counter is durable too, reserved in blocks: a block's reservation is synced with
//! the first write that uses it, before that write's object or reply leaves the node. So a crash
//! can make a restarted node issue a dot again only if every version that used it died unsynced
//! in the crash, unseen by anyone – which the simulator's ledger checks.
//!
//! ## Tombstones and their garbage collection
//!
//! A delete writes a tombstone sibling: it must *replace* the versions it saw, on every replica,
//! and keep doing so against stale copies arriving late (hints, repairs, anti-entropy). Dropping it
//! too early resurrects the deleted value. The GC rule: the key's first home replica may purge a
//! tombstone-only object once (1) it is older than `tombstone_grace` (longer than any message
//! delay), and (2) **every ring member** answered that it holds exactly this object or nothing for
//! the key, and **no hint** for it. Only then it tells every member to purge that exact object
//! (by digest; a member whose copy changed meanwhile keeps it). Because new dots are always above
//! every dot a node issued before, a later write is never hidden by a forgotten tombstone.
//!
//! ## Switches (for experiments and mutation tests)
//!
//! `read_repair = false`, `anti_entropy = false`, `hinted_handoff = false`, and
//! `resolution = "lww"` (instead of `"dvv"`).

pub mod anti_entropy;
pub mod coordinator;
pub mod crdt;
pub mod error;
pub mod ring;
pub mod store;
pub mod swim;
pub mod version;

pub use crate::error::{ConfigError, InvariantViolation};

use crate::anti_entropy::AntiEntropyStats;
use crate::coordinator::Pending;
use crate::ring::Ring;
use crate::store::{Meta, Object};
use crate::swim::{Swim, SwimConfig, SwimMessage};
use crate::version::{Dot, Resolution, VersionVector};
use concord_core::history::{Completion, Op, OpFn, Service, Value};
use concord_core::time::serde_duration;
use concord_core::{ClientId, Durable, Io, Message, NodeId, Process, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// `[protocol.dynamo]` in a scenario; the server's `--mode eventual` settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoConfig {
    /// Replicas per key.
    pub n: usize,
    /// Replies a read waits for (default; a request may override).
    pub r: usize,
    /// Acknowledgements a write waits for, the coordinator's own included.
    pub w: usize,
    /// Tokens per physical node.
    pub vnodes: u32,
    pub resolution: Resolution,
    pub read_repair: bool,
    pub anti_entropy: bool,
    pub hinted_handoff: bool,
    /// A request without its quorum after this long is answered fail (reads, unsent writes) or
    /// unknown (writes that may have been stored).
    #[serde(with = "serde_duration")]
    pub request_timeout: Duration,
    /// A replica that has not acknowledged after this long is replaced by a fallback (with a hint).
    #[serde(with = "serde_duration")]
    pub replica_timeout: Duration,
    #[serde(with = "serde_duration")]
    pub anti_entropy_interval: Duration,
    /// Merkle trees have 2^depth leaves per range.
    pub merkle_depth: u32,
    #[serde(with = "serde_duration")]
    pub handoff_interval: Duration,
    #[serde(with = "serde_duration")]
    pub tombstone_grace: Duration,
    pub swim: SwimConfig,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            n: 3,
            r: 2,
            w: 2,
            vnodes: 8,
            resolution: Resolution::Dvv,
            read_repair: true,
            anti_entropy: true,
            hinted_handoff: true,
            request_timeout: Duration::from_millis(400),
            replica_timeout: Duration::from_millis(100),
            anti_entropy_interval: Duration::from_millis(200),
            merkle_depth: 3,
            handoff_interval: Duration::from_millis(300),
            tombstone_grace: Duration::from_secs(5),
            swim: SwimConfig::default(),
        }
    }
}

/// The most tokens a node may place on the ring: every member's tokens are held in memory and
/// walked on each lookup, so a few thousand is plenty (Cassandra's default was 256) and 2^31
/// would ask for tens of gigabytes.
pub const MAX_VNODES: u32 = 4096;

impl DynamoConfig {
    /// Reject settings that cannot work, with a precise message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.n == 0 {
            return Err(ConfigError::NoReplicas);
        }
        if !(1..=self.n).contains(&self.r) || !(1..=self.n).contains(&self.w) {
            return Err(ConfigError::Quorum { r: self.r, w: self.w, n: self.n });
        }
        if self.merkle_depth > 16 {
            return Err(ConfigError::MerkleTooDeep(self.merkle_depth));
        }
        if self.vnodes > MAX_VNODES {
            return Err(ConfigError::TooManyVnodes(self.vnodes));
        }
        Ok(())
    }
}

/// A client request. `r`/`w` override the cluster's quorum for this request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DynamoRequest {
    Get {
        key: String,
        r: Option<usize>,
    },
    /// `context: None` is a blind write: it supersedes what the coordinating replica holds.
    Put {
        key: String,
        value: Vec<u8>,
        context: Option<VersionVector>,
        w: Option<usize>,
    },
    Delete {
        key: String,
        context: Option<VersionVector>,
        w: Option<usize>,
    },
    /// Add to a PN-counter object.
    Increment {
        key: String,
        delta: i64,
        w: Option<usize>,
    },
    Unsupported {
        what: String,
    },
    /// Add members to an OR-set object (one new dot tags them all).
    SetAdd {
        key: String,
        members: Vec<Vec<u8>>,
        w: Option<usize>,
    },
    /// Remove members from an OR-set object: the adds the coordinating home replica has seen. An
    /// add it has not seen yet (concurrent, or across a partition) survives – add wins.
    SetRemove {
        key: String,
        members: Vec<Vec<u8>>,
        w: Option<usize>,
    },
    /// Write fields of a map of LWW registers (one new dot, one timestamp for them all).
    MapSet {
        key: String,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        w: Option<usize>,
    },
    /// Remove fields of a map: the values of them the coordinating home replica has seen.
    MapRemove {
        key: String,
        fields: Vec<Vec<u8>>,
        w: Option<usize>,
    },
}

impl DynamoRequest {
    pub fn key(&self) -> Option<&str> {
        match self {
            DynamoRequest::Get { key, .. }
            | DynamoRequest::Put { key, .. }
            | DynamoRequest::Delete { key, .. }
            | DynamoRequest::Increment { key, .. }
            | DynamoRequest::SetAdd { key, .. }
            | DynamoRequest::SetRemove { key, .. }
            | DynamoRequest::MapSet { key, .. }
            | DynamoRequest::MapRemove { key, .. } => Some(key),
            DynamoRequest::Unsupported { .. } => None,
        }
    }

    /// The write quorum a write asks for (`None`: the cluster's W, or not a write).
    pub fn w(&self) -> Option<usize> {
        match self {
            DynamoRequest::Put { w, .. }
            | DynamoRequest::Delete { w, .. }
            | DynamoRequest::Increment { w, .. }
            | DynamoRequest::SetAdd { w, .. }
            | DynamoRequest::SetRemove { w, .. }
            | DynamoRequest::MapSet { w, .. }
            | DynamoRequest::MapRemove { w, .. } => *w,
            DynamoRequest::Get { .. } | DynamoRequest::Unsupported { .. } => None,
        }
    }

    /// Does it change what is stored?
    pub fn is_write(&self) -> bool {
        !matches!(self, DynamoRequest::Get { .. } | DynamoRequest::Unsupported { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DynamoResponse {
    /// A read: the live siblings (several if concurrent writes are unresolved), the context to
    /// write back with, and the value if the key is a counter.
    Found { values: Vec<Vec<u8>>, context: VersionVector, counter: Option<i64> },
    /// A write reached its `w` acknowledgements. `dot`: the version a register write created;
    /// `counter`: for an increment, the counter's value at the coordinating replica right after it
    /// (what `INCR` answers – other replicas may not have every increment yet).
    Written { dot: Option<Dot>, counter: Option<i64> },
    /// Certainly not applied.
    Fail(String),
    /// May or may not have been applied.
    Unknown(String),
    /// A read of a set: its members, in byte order.
    Members(Vec<Vec<u8>>),
    /// A read of a map: each live field with its value, by field.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// A set or map write reached its `w` acknowledgements. `changed`: the members or fields it
    /// added (`SetAdd`, `MapSet`) or removed (`SetRemove`, `MapRemove`) at the coordinating
    /// replica – what `SADD`, `HSET`, `SREM` and `HDEL` answer (other replicas may differ).
    Updated { changed: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DynamoMessage {
    Swim(SwimMessage),
    /// A write handed to a home replica to coordinate.
    Forward {
        token: u64,
        request: DynamoRequest,
    },
    ForwardReply {
        token: u64,
        response: DynamoResponse,
    },
    /// Store (merge) this object; `hint`: I am a fallback holding it for that owner. Token 0: a
    /// repair, not acknowledged.
    Replicate {
        token: u64,
        key: String,
        object: Object,
        hint: Option<NodeId>,
    },
    ReplicateAck {
        token: u64,
    },
    Read {
        token: u64,
        key: String,
    },
    ReadReply {
        token: u64,
        object: Option<Object>,
    },
    Handoff {
        items: Vec<(String, Object)>,
    },
    HandoffAck {
        items: Vec<(String, u64)>,
    },
    AeCompare {
        range: u32,
        nodes: Vec<(u32, u64)>,
    },
    AeObjects {
        range: u32,
        leaves: Vec<u32>,
        items: Vec<(String, Object)>,
        reply: bool,
    },
    GcQuery {
        key: String,
        digest: u64,
    },
    GcVote {
        key: String,
        digest: u64,
        ok: bool,
    },
    Purge {
        key: String,
        digest: u64,
    },
}

impl Message for DynamoMessage {
    fn kind(&self) -> &'static str {
        match self {
            DynamoMessage::Swim(SwimMessage::Ping { .. }) => "ping",
            DynamoMessage::Swim(SwimMessage::PingReq { .. }) => "ping-req",
            DynamoMessage::Swim(SwimMessage::Ack { .. }) => "ack",
            DynamoMessage::Forward { .. } => "forward",
            DynamoMessage::ForwardReply { .. } => "forward-reply",
            DynamoMessage::Replicate { token: 0, .. } => "repair",
            DynamoMessage::Replicate { .. } => "replicate",
            DynamoMessage::ReplicateAck { .. } => "replicate-ack",
            DynamoMessage::Read { .. } => "read",
            DynamoMessage::ReadReply { .. } => "read-reply",
            DynamoMessage::Handoff { .. } => "handoff",
            DynamoMessage::HandoffAck { .. } => "handoff-ack",
            DynamoMessage::AeCompare { .. } => "ae-compare",
            DynamoMessage::AeObjects { .. } => "ae-objects",
            DynamoMessage::GcQuery { .. } => "gc-query",
            DynamoMessage::GcVote { .. } => "gc-vote",
            DynamoMessage::Purge { .. } => "purge",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum DynamoTimer {
    /// SWIM protocol period.
    Probe,
    /// SWIM: direct probe unanswered, go indirect.
    ProbeTimeout,
    AntiEntropy,
    Handoff,
    /// A request's deadline.
    Request(u64),
    /// Replace replicas that have not acknowledged by fallbacks.
    Retry(u64),
}

/// A write this node acknowledged as coordinator (kept for observers: viewers, the simulator's
/// "no acknowledged write lost" invariant). Bounded: the last [`RECENT_ACKS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AckRecord {
    pub key: String,
    pub dot: Dot,
    pub value: Option<Vec<u8>>,
}

pub const RECENT_ACKS: usize = 256;
const DOT_BLOCK: u64 = 1024;

/// One Dynamo node.
pub struct DynamoNode {
    me: NodeId,
    config: DynamoConfig,
    swim: Swim,
    ring: Ring,
    /// Ranges this node is a home replica of (recomputed when the ring changes).
    my_ranges: Vec<u32>,
    store: BTreeMap<String, Object>,
    hints: BTreeMap<(NodeId, String), Object>,
    meta: Meta,
    next_dot: u64,
    pending: BTreeMap<u64, Pending>,
    next_token: u64,
    ae: AntiEntropyStats,
    /// Tombstone GC rounds in progress: key → (digest, members that voted yes).
    gc_votes: BTreeMap<String, (u64, BTreeSet<NodeId>)>,
    recent_acks: VecDeque<AckRecord>,
    acks_total: u64,
    /// Bumped whenever `store` or `hints` change (observers rescan only changed nodes).
    changes: u64,
    purged: u64,
    /// Anti-entropy's per-range trees, kept between messages (see [`anti_entropy`]): a range's entry
    /// is dropped whenever a key of it changes in `store`, all of them when the ring changes.
    ae_cache: BTreeMap<u32, anti_entropy::RangeSummary>,
}

/// Low bits of a request token that count requests; the high bits are the node's incarnation.
const TOKEN_BITS: u32 = 40;

/// The first request token of a life. Replies name the token of their request; tokens that
/// restarted at 1 after a reboot let an acknowledgement sent to the node's *previous* life count
/// towards a request of this one – from a replica that may not hold this write (found in review,
/// issue #15). The incarnation is durable before the node sends anything, so every life has its
/// own block of 2^40 tokens, and token 0 (read repair) is never issued.
fn first_token(incarnation: u64) -> u64 {
    (incarnation << TOKEN_BITS) | 1
}

impl DynamoNode {
    /// Build a node from its disk. Fails on a torn or corrupt metadata record (dots could be
    /// reused), and on an object or hint record that is intact (its checksum holds) but cannot be
    /// read – another format version or a bug; skipping it would drop data this replica may have
    /// acknowledged. Torn object and hint records (a write cut off by a crash) are skipped: they were
    /// never synced, or other replicas hold them (see [`store`]).
    pub fn boot(
        me: NodeId,
        cluster: &[NodeId],
        config: DynamoConfig,
        durable: &Durable,
    ) -> Result<DynamoNode, String> {
        // Still a `String` (unlike `validate` and `check_invariants`): its production caller,
        // concord-server's node start, formats it; typing it is a one-line change there.
        config.validate().map_err(|e| e.to_string())?;
        let meta = match durable.get(store::META_KEY) {
            Some(bytes) => store::decode::<Meta>(bytes)
                .map_err(|e| format!("The metadata record {:?} cannot be read: {e}.", store::META_KEY))?,
            None => Meta::default(),
        };
        // `Ok(None)`: torn, skip it.
        let read_object = |disk_key: &str, bytes: &[u8]| match store::decode::<Object>(bytes) {
            Ok(object) => Ok(Some(object)),
            Err(store::DecodeError::Torn) => Ok(None),
            Err(e) => Err(format!("The record {disk_key:?} cannot be read: {e}.")),
        };
        let mut store = BTreeMap::new();
        for (disk_key, bytes) in durable.scan_prefix(store::DATA_PREFIX) {
            if let Some(object) = read_object(disk_key, bytes)? {
                store.insert(disk_key[store::DATA_PREFIX.len()..].to_string(), object);
            }
        }
        let mut hints = BTreeMap::new();
        for (disk_key, bytes) in durable.scan_prefix(store::HINT_PREFIX) {
            let Some((owner, key)) = store::parse_hint_key(disk_key) else { continue };
            if let Some(object) = read_object(disk_key, bytes)? {
                hints.insert((owner, key.to_string()), object);
            }
        }
        let incarnation = meta.incarnation + 1;
        let swim = Swim::new(me, cluster, config.swim.clone(), incarnation, concord_core::Time::ZERO);
        let ring = Ring::new(&swim.ring_members(), config.vnodes);
        let my_ranges = ring.ranges_of(me, config.n);
        Ok(DynamoNode {
            me,
            swim,
            ring,
            my_ranges,
            store,
            hints,
            meta: Meta { incarnation, dots_reserved: meta.dots_reserved },
            next_dot: meta.dots_reserved + 1,
            pending: BTreeMap::new(),
            next_token: first_token(incarnation),
            ae: AntiEntropyStats::default(),
            gc_votes: BTreeMap::new(),
            recent_acks: VecDeque::new(),
            acks_total: 0,
            changes: 0,
            purged: 0,
            ae_cache: BTreeMap::new(),
            config,
        })
    }

    pub fn id(&self) -> NodeId {
        self.me
    }

    pub fn config(&self) -> &DynamoConfig {
        &self.config
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn swim(&self) -> &Swim {
        &self.swim
    }

    /// Objects held as a home replica.
    pub fn store(&self) -> &BTreeMap<String, Object> {
        &self.store
    }

    /// Objects held for other nodes (hinted handoff).
    pub fn hints(&self) -> &BTreeMap<(NodeId, String), Object> {
        &self.hints
    }

    /// Is this node one of the key's `n` home replicas (in its current ring)?
    pub fn is_home(&self, key: &str) -> bool {
        self.ring.preference_list(key, self.config.n).contains(&self.me)
    }

    pub fn recent_acks(&self) -> &VecDeque<AckRecord> {
        &self.recent_acks
    }

    /// Writes acknowledged by this node as coordinator since it booted.
    pub fn acks_total(&self) -> u64 {
        self.acks_total
    }

    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn anti_entropy_stats(&self) -> AntiEntropyStats {
        self.ae
    }

    /// Tombstones purged by this node.
    pub fn purged(&self) -> u64 {
        self.purged
    }

    /// The node's own invariants, checked by the simulator after every step (as Raft's safety
    /// monitor and the KV store's are):
    /// - every object's versions are well formed ([`version::Versions::check`]), and every set's
    ///   and map's live dots are covered by its context ([`crdt::DotMap::check`]);
    /// - no hint is held for this node itself (its own copies live in `store`);
    /// - dots: every dot of mine that any context has seen was issued in this life or an earlier
    ///   one (`< next_dot`), and `next_dot` never runs past the durable reservation by more than
    ///   the block being used – the reservation is what keeps dots unique across crashes.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let broken = |message: String| Err(InvariantViolation(message));
        let objects = self
            .store
            .iter()
            .map(|(k, o)| (k.as_str(), None, o))
            .chain(self.hints.iter().map(|((owner, k), o)| (k.as_str(), Some(*owner), o)));
        for (key, owner, object) in objects {
            if owner == Some(self.me) {
                return broken(format!("{} holds a hint for itself for {key:?}", self.me));
            }
            let in_key = |e: String| InvariantViolation(format!("{}: key {key:?}: {e}", self.me));
            let context = match object {
                Object::Register(versions) => {
                    versions.check().map_err(|e| in_key(e.to_string()))?;
                    &versions.context
                }
                Object::Set(set) => {
                    set.check().map_err(in_key)?;
                    set.context()
                }
                Object::Map(map) => {
                    map.check().map_err(in_key)?;
                    map.context()
                }
                Object::Counter(_) => continue,
            };
            if let Some(&seen) = context.0.get(&self.me) {
                if seen >= self.next_dot {
                    return broken(format!(
                        "{}: key {key:?} has seen my dot {seen}, but I have issued only up to {}",
                        self.me,
                        self.next_dot - 1
                    ));
                }
            }
        }
        if self.next_dot > self.meta.dots_reserved + 1 {
            return broken(format!(
                "{}: next dot {} is past the reservation {}",
                self.me, self.next_dot, self.meta.dots_reserved
            ));
        }
        Ok(())
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        debug_assert_eq!(t >> TOKEN_BITS, self.meta.incarnation, "a life's tokens stay in its block");
        t
    }

    /// A fresh dot. The counter is reserved on disk in blocks; the reservation is persisted here
    /// and synced with the write that uses the dot, before anyone learns the dot.
    fn issue_dot(&mut self, io: &mut Io<'_, Self>) -> Dot {
        if self.next_dot > self.meta.dots_reserved {
            self.meta.dots_reserved = self.next_dot + DOT_BLOCK;
            io.put(store::META_KEY, store::encode(&self.meta));
        }
        let dot = Dot { node: self.me, counter: self.next_dot };
        self.next_dot += 1;
        dot
    }

    /// Merge `object` into my copy of `key` (or my hint for `owner`); persist if it changed.
    /// Returns whether anything changed. The caller syncs.
    fn absorb(&mut self, io: &mut Io<'_, Self>, key: &str, object: &Object, hint: Option<NodeId>) -> bool {
        let resolution = self.config.resolution;
        let (map_slot, disk_key) = match hint {
            Some(owner) if owner != self.me => {
                (self.hints.get_mut(&(owner, key.to_string())), store::hint_key(owner, key))
            }
            _ => (self.store.get_mut(key), store::data_key(key)),
        };
        let merged = match map_slot {
            Some(slot) => {
                let before = slot.clone();
                slot.merge(resolution, object);
                (*slot != before).then(|| slot.clone())
            }
            None => Some(object.clone()),
        };
        let Some(merged) = merged else { return false };
        io.put(disk_key, store::encode(&merged));
        match hint {
            Some(owner) if owner != self.me => {
                self.hints.insert((owner, key.to_string()), merged);
                self.changes += 1;
            }
            _ => {
                self.store.insert(key.to_string(), merged);
                self.store_changed(key);
            }
        };
        true
    }

    /// What I can tell a reader about `key`: my copy merged with every hint I hold for it.
    fn local_read(&self, key: &str) -> Option<Object> {
        let mut out = self.store.get(key).cloned();
        for ((_, k), object) in &self.hints {
            if k == key {
                match &mut out {
                    Some(o) => o.merge(self.config.resolution, object),
                    None => out = Some(object.clone()),
                }
            }
        }
        out
    }

    /// Every change to `store` goes through here: observers and anti-entropy's cached tree of the
    /// key's range must learn of it.
    fn store_changed(&mut self, key: &str) {
        self.changes += 1;
        self.ae_cache.remove(&self.ring.range_of(key));
    }

    fn ring_changed(&mut self) {
        self.ring = Ring::new(&self.swim.ring_members(), self.config.vnodes);
        self.my_ranges = self.ring.ranges_of(self.me, self.config.n);
        // Ranges are renumbered and reshaped: no cached tree describes a range of the new ring.
        self.ae_cache.clear();
    }

    fn send_swim(&mut self, io: &mut Io<'_, Self>, out: Vec<(NodeId, SwimMessage)>) {
        for (to, msg) in out {
            io.send(to, DynamoMessage::Swim(msg));
        }
    }

    /// Leave the cluster: key ranges move to the remaining nodes (which pull the data by
    /// anti-entropy from the other home replicas).
    pub fn leave(&mut self) {
        self.swim.leave();
        self.ring_changed();
    }

    fn record_ack(&mut self, record: AckRecord) {
        self.acks_total += 1;
        if self.recent_acks.len() == RECENT_ACKS {
            self.recent_acks.pop_front();
        }
        self.recent_acks.push_back(record);
    }
}

impl Process for DynamoNode {
    type Message = DynamoMessage;
    type Timer = DynamoTimer;
    type Request = DynamoRequest;
    type Response = DynamoResponse;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        // The new incarnation must be durable before anyone hears of it.
        io.put(store::META_KEY, store::encode(&self.meta));
        io.sync();
        let first = io.random_duration(Duration::ZERO, self.config.swim.period);
        io.set_timer(DynamoTimer::Probe, first);
        if self.config.anti_entropy {
            let first = io.random_duration(Duration::ZERO, self.config.anti_entropy_interval);
            io.set_timer(DynamoTimer::AntiEntropy, first);
        }
        if self.config.hinted_handoff {
            io.set_timer(DynamoTimer::Handoff, self.config.handoff_interval);
        }
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: DynamoMessage) {
        match msg {
            DynamoMessage::Swim(m) => {
                let (out, ring_changed) = self.swim.on_message(from, m, io.now());
                if ring_changed {
                    self.ring_changed();
                }
                self.send_swim(io, out);
            }
            DynamoMessage::Forward { token, request } => self.on_forward(io, from, token, request),
            DynamoMessage::ForwardReply { token, response } => self.on_forward_reply(io, token, response),
            DynamoMessage::Replicate { token, key, object, hint } => {
                self.absorb(io, &key, &object, hint);
                if token != 0 {
                    // Durable before acknowledged.
                    io.sync();
                    io.send(from, DynamoMessage::ReplicateAck { token });
                } else {
                    io.sync();
                }
            }
            DynamoMessage::ReplicateAck { token } => self.on_replicate_ack(io, from, token),
            DynamoMessage::Read { token, key } => {
                let object = self.local_read(&key);
                io.send(from, DynamoMessage::ReadReply { token, object });
            }
            DynamoMessage::ReadReply { token, object } => self.on_read_reply(io, from, token, object),
            DynamoMessage::Handoff { items } => {
                let mut acked = Vec::with_capacity(items.len());
                for (key, object) in items {
                    self.absorb(io, &key, &object, None);
                    acked.push((key, object.digest()));
                }
                io.sync();
                io.send(from, DynamoMessage::HandoffAck { items: acked });
            }
            DynamoMessage::HandoffAck { items } => {
                for (key, digest) in items {
                    let slot = (from, key);
                    // Delete only what was delivered: a hint that grew meanwhile is sent again.
                    if self.hints.get(&slot).is_some_and(|o| o.digest() == digest) {
                        self.hints.remove(&slot);
                        self.changes += 1;
                        io.persist(concord_core::StorageOp::Delete { key: store::hint_key(from, &slot.1) });
                    }
                }
            }
            DynamoMessage::AeCompare { range, nodes } => self.on_ae_compare(io, from, range, nodes),
            DynamoMessage::AeObjects { range, leaves, items, reply } => {
                self.on_ae_objects(io, from, range, leaves, items, reply)
            }
            DynamoMessage::GcQuery { key, digest } => {
                let mine_ok = self.store.get(&key).is_none_or(|o| o.digest() == digest);
                let no_hints = !self.hints.keys().any(|(_, k)| *k == key);
                io.send(from, DynamoMessage::GcVote { key, digest, ok: mine_ok && no_hints });
            }
            DynamoMessage::GcVote { key, digest, ok } => self.on_gc_vote(io, from, key, digest, ok),
            DynamoMessage::Purge { key, digest } => self.purge(io, &key, digest),
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: DynamoTimer) {
        match timer {
            DynamoTimer::Probe => {
                let now = io.now();
                let before = self.swim.ring_members();
                let out = self.swim.tick(now, &mut |n| io.random_below(0, n));
                if self.swim.ring_members() != before {
                    self.ring_changed();
                }
                self.send_swim(io, out);
                io.set_timer(DynamoTimer::ProbeTimeout, self.config.swim.probe_timeout);
                io.set_timer(DynamoTimer::Probe, self.config.swim.period);
            }
            DynamoTimer::ProbeTimeout => {
                let out = self.swim.probe_timeout(&mut |n| io.random_below(0, n));
                self.send_swim(io, out);
            }
            DynamoTimer::AntiEntropy => {
                self.start_anti_entropy(io);
                self.start_tombstone_gc(io);
                io.set_timer(DynamoTimer::AntiEntropy, self.config.anti_entropy_interval);
            }
            DynamoTimer::Handoff => {
                self.hand_off(io);
                io.set_timer(DynamoTimer::Handoff, self.config.handoff_interval);
            }
            DynamoTimer::Request(token) => self.on_request_timeout(io, token),
            DynamoTimer::Retry(token) => self.on_retry(io, token),
        }
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: DynamoRequest) {
        self.accept(io, coordinator::Client::Local(request), req);
    }

    fn inspect(&self) -> serde_json::Value {
        let members: BTreeMap<String, String> = self
            .swim
            .members()
            .iter()
            .map(|(id, m)| (id.to_string(), format!("{:?}/{}", m.state, m.incarnation)))
            .collect();
        serde_json::json!({
            "keys": self.store.len(),
            "hints": self.hints.len(),
            "pending": self.pending.len(),
            "incarnation": self.swim.incarnation(),
            "members": members,
            "ring_members": self.swim.ring_members().len(),
            "anti_entropy": self.ae,
            "acks": self.acks_total,
            "purged": self.purged,
        })
    }
}

/// Integers are stored as their decimal text (the simulator's workload writes unique integers).
pub fn int_value(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    text.parse::<i64>().map(Value::Int).unwrap_or_else(|_| Value::Str(text.into_owned()))
}

impl Service for DynamoNode {
    fn request(_client: ClientId, _seq: u64, op: &Op) -> DynamoRequest {
        let key = op.key.clone().unwrap_or_default();
        match (op.f, &op.value) {
            (OpFn::Read, _) => DynamoRequest::Get { key, r: None },
            (OpFn::Write, Value::Int(v)) => {
                DynamoRequest::Put { key, value: v.to_string().into_bytes(), context: None, w: None }
            }
            (OpFn::Delete, _) => DynamoRequest::Delete { key, context: None, w: None },
            (OpFn::Add, Value::Int(delta)) => DynamoRequest::Increment { key, delta: *delta, w: None },
            (f, _) => DynamoRequest::Unsupported { what: f.to_string() },
        }
    }

    fn completion(_op: &Op, response: &DynamoResponse) -> Completion {
        match response {
            DynamoResponse::Written { .. } => Completion::Ok(Value::Nil),
            DynamoResponse::Found { counter: Some(c), .. } => Completion::Ok(Value::Int(*c)),
            DynamoResponse::Found { values, .. } => {
                let mut vs: Vec<Value> = values.iter().map(|v| int_value(v)).collect();
                vs.sort();
                Completion::Ok(match vs.len() {
                    0 => Value::Nil,
                    1 => vs.pop().expect("one value"),
                    _ => Value::List(vs),
                })
            }
            DynamoResponse::Fail(e) => Completion::Fail(e.clone()),
            DynamoResponse::Unknown(e) => Completion::Unknown(e.clone()),
            // The simulator's workloads do not issue set and map requests (see `request`).
            DynamoResponse::Members(members) => {
                Completion::Ok(Value::List(members.iter().map(|m| int_value(m)).collect()))
            }
            DynamoResponse::Fields(fields) => Completion::Ok(Value::List(
                fields.iter().map(|(f, v)| Value::List(vec![int_value(f), int_value(v)])).collect(),
            )),
            DynamoResponse::Updated { changed } => Completion::Ok(Value::Int(*changed as i64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::StorageOp;

    fn boot(durable: &Durable) -> Result<DynamoNode, String> {
        DynamoNode::boot(NodeId(1), &[NodeId(1), NodeId(2), NodeId(3)], DynamoConfig::default(), durable)
    }

    fn put(durable: &mut Durable, key: String, value: Vec<u8>) {
        durable.apply(&StorageOp::Put { key, value });
    }

    #[test]
    fn impossible_configs_are_refused_with_a_variant_and_the_old_message() {
        let config = DynamoConfig { n: 3, r: 4, ..DynamoConfig::default() };
        let error = config.validate().unwrap_err();
        assert_eq!(error, ConfigError::Quorum { r: 4, w: config.w, n: 3 });
        assert_eq!(error.to_string(), format!("r (4) and w ({}) must be between 1 and n (3)", config.w));
        assert_eq!(DynamoConfig { n: 0, ..DynamoConfig::default() }.validate(), Err(ConfigError::NoReplicas));
    }

    #[test]
    fn the_invariants_notice_a_dot_seen_above_the_reservation() {
        // A disk that kept an object but lost the reservation its dot came from: the node would
        // issue that dot again. The invariant check names it.
        let mut durable = Durable::new();
        let mut versions = version::Versions::default();
        let dot = Dot { node: NodeId(1), counter: 500 };
        versions.write(
            Resolution::Dvv,
            &VersionVector::default(),
            version::Sibling { dot, timestamp: 1, value: None },
        );
        put(&mut durable, store::data_key("k"), store::encode(&Object::Register(versions)));
        let node = boot(&durable).unwrap();
        let err = node.check_invariants().unwrap_err();
        assert!(err.0.contains("has seen my dot 500"), "{err}");
        assert!(boot(&Durable::new()).unwrap().check_invariants().is_ok());
    }

    #[test]
    fn boot_skips_torn_object_records_and_refuses_unreadable_ones() {
        let mut durable = Durable::new();
        let object = Object::Counter(Default::default());
        put(&mut durable, store::data_key("kept"), store::encode(&object));
        let mut torn = store::encode(&object);
        torn.pop();
        put(&mut durable, store::data_key("torn"), torn);
        let node = boot(&durable).expect("a torn record is skipped");
        assert_eq!(node.store().keys().collect::<Vec<_>>(), ["kept"]);

        // An intact record in a format this build does not read (here: a JSON record with its
        // checksum, as written before the binary format) must not be dropped silently.
        let mut json = serde_json::to_vec(&object).unwrap();
        json.extend_from_slice(&crate::ring::hash64(&json).to_le_bytes());
        put(&mut durable, store::hint_key(NodeId(2), "old"), json);
        let err = boot(&durable).err().expect("an unreadable record fails the boot");
        assert!(err.contains("dynamo/hint/0000000002/old") && err.contains("format version"), "{err}");
    }

    #[test]
    fn request_tokens_are_never_reused_across_reboots() {
        // Regression (found in review, issue #15): tokens restarted at 1 after a reboot, so an
        // acknowledgement addressed to the node's previous life could count towards a write of
        // this one. Each life now draws from its own block, keyed by the durable incarnation.
        let mut durable = Durable::new();
        let mut tokens = Vec::new();
        for _life in 0..3 {
            let mut node = boot(&durable).unwrap();
            // on_start makes the new incarnation durable before anything is sent.
            durable.apply(&StorageOp::Put { key: store::META_KEY.into(), value: store::encode(&node.meta) });
            tokens.push(node.token());
            tokens.push(node.token());
        }
        let mut unique = tokens.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), tokens.len(), "a token was issued twice: {tokens:?}");
        assert!(tokens.iter().all(|&t| t != 0), "token 0 means read repair");
    }
}

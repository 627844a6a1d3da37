//! # concord-gossip – epidemic broadcast, the simplest eventually consistent protocol
//!
//! Every node keeps a grow-only set of `(key, value)` items. A client *broadcasts* an item to any
//! node; the protocol must make every node eventually hold every broadcast item – despite lost
//! messages, partitions and crashes. Two mechanisms do it, as in Demers et al., "Epidemic Algorithms
//! for Replicated Database Maintenance" (PODC 1987):
//!
//! * **Rumour mongering** (fast, unreliable): a node that learns a new item pushes it at once to
//!   `fanout` random peers, which do the same. Most nodes learn quickly; some may never hear it.
//! * **Anti-entropy** (slow, reliable): every `interval` a node sends a random peer a *digest* of
//!   what it holds, and the two exchange exactly what the other lacks (push-pull). Because every
//!   pair of live, connected nodes keeps doing this, every item eventually reaches everyone – which is
//!   what makes the protocol *converge*.
//!
//! The digest is a version vector, as in Scuttlebutt (van Renesse et al., "Efficient Reconciliation
//! and Flow Control for Anti-Entropy Protocols", 2008): the node that first accepts an item (its
//! *origin*) numbers it `1, 2, 3, …`, and a digest says, for every origin, up to which number the
//! node holds *all* of that origin's items. A digest is `n` numbers whatever the data size, and the
//! reply carries only the items above them.
//!
//! Durability: a node persists each item it learns (with a checksum, so a torn write is detected)
//! and syncs before acknowledging a client's broadcast or spreading it, so an acknowledged item
//! survives a crash of the node that accepted it, and an origin never reuses a number it has
//! already told anyone about.
//!
//! Switching anti-entropy off (`anti_entropy = false`) leaves only the unreliable rumours: the
//! simulator's convergence check then catches lost items – the deliberately broken variant that
//! shows the check can fail.

use concord_core::history::{Completion, Op, OpFn, Service, Value};
use concord_core::time::serde_duration;
use concord_core::{ClientId, Durable, Io, Message, NodeId, Process, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// `[protocol.gossip]` in a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipConfig {
    /// Peers a new item is pushed to at once.
    pub fanout: usize,
    /// Period of anti-entropy exchanges.
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Run anti-entropy at all (switch off to see the check fail).
    pub anti_entropy: bool,
    /// At most this many items in one message (larger differences take several rounds).
    pub max_items_per_message: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            fanout: 2,
            interval: Duration::from_millis(100),
            anti_entropy: true,
            max_items_per_message: 1024,
        }
    }
}

/// One broadcast item, named by the node that accepted it and its number there.
///
/// The key is shared (`Arc<str>`): an item is copied into many messages and logs, and cloning a
/// reference count is much cheaper than cloning a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub origin: NodeId,
    pub seq: u64,
    pub key: Arc<str>,
    pub value: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GossipMessage {
    /// New items, pushed eagerly.
    Rumour { items: Vec<Item> },
    /// For each origin (in cluster order), the number up to which the sender holds every item.
    Digest { have: Vec<u64> },
    /// Items the receiver lacks; with `have`, the sender lacks some too and asks for them.
    Exchange { items: Vec<Item>, have: Option<Vec<u64>> },
}

impl Message for GossipMessage {
    fn kind(&self) -> &'static str {
        match self {
            GossipMessage::Rumour { .. } => "rumour",
            GossipMessage::Digest { .. } => "digest",
            GossipMessage::Exchange { .. } => "exchange",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GossipRequest {
    Broadcast {
        key: String,
        value: i64,
    },
    Read {
        key: String,
    },
    /// An operation this protocol does not serve (e.g. CAS): answered with an error.
    Unsupported {
        what: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GossipResponse {
    Ack,
    Values(Vec<i64>),
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum GossipTimer {
    AntiEntropy,
}

/// What a node holds of one origin's items.
#[derive(Clone, Debug, Default)]
struct OriginLog {
    /// Every item numbered `1..=contiguous` is held.
    contiguous: u64,
    /// Items by number (including any above `contiguous`, which arrived out of order).
    items: BTreeMap<u64, (Arc<str>, i64)>,
}

impl OriginLog {
    fn insert(&mut self, seq: u64, key: Arc<str>, value: i64) -> bool {
        assert!(seq >= 1, "gossip items are numbered from 1");
        if seq <= self.contiguous || self.items.contains_key(&seq) {
            return false;
        }
        self.items.insert(seq, (key, value));
        while self.items.contains_key(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        // The prefix is held and maximal: what digests and anti-entropy rely on.
        debug_assert!(self.contiguous == 0 || self.items.contains_key(&self.contiguous));
        debug_assert!(!self.items.contains_key(&(self.contiguous + 1)));
        true
    }
}

/// One gossip node.
pub struct GossipNode {
    me: NodeId,
    /// The whole cluster, in id order; digests are indexed by position here.
    cluster: Vec<NodeId>,
    config: GossipConfig,
    /// Everyone but me; shuffled in place to pick rumour targets without allocating.
    peers: Vec<NodeId>,
    origins: Vec<OriginLog>,
    /// Values by key, for reads.
    by_key: BTreeMap<Arc<str>, BTreeSet<i64>>,
    /// The number the next item accepted here gets.
    next_seq: u64,
}

const DISK_PREFIX: &str = "gossip/";

/// `gossip/<origin, 10 digits>/<seq, 20 digits>`: zero-padded so disk order is numeric order.
/// Written by hand because it runs for every item every node learns.
fn disk_key(origin: NodeId, seq: u64) -> String {
    fn digits(out: &mut String, mut n: u64, width: usize) {
        let mut buf = [b'0'; 20];
        for slot in buf[20 - width..].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend(buf[20 - width..].iter().map(|b| *b as char));
    }
    let mut key = String::with_capacity(DISK_PREFIX.len() + 32);
    key.push_str(DISK_PREFIX);
    digits(&mut key, u64::from(origin.0), 10);
    key.push('/');
    digits(&mut key, seq, 20);
    key
}

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a: enough to tell a torn record from a whole one.
    concord_core::hash::fnv1a64(bytes)
}

/// `value (8 bytes LE) | key bytes | checksum of both (8 bytes LE)`.
fn encode(key: &str, value: i64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + key.len());
    bytes.extend_from_slice(&value.to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<(String, i64)> {
    let body = bytes.get(..bytes.len().checked_sub(8)?)?;
    let sum = u64::from_le_bytes(bytes[body.len()..].try_into().ok()?);
    if body.len() < 8 || checksum(body) != sum {
        return None;
    }
    let value = i64::from_le_bytes(body[..8].try_into().ok()?);
    Some((String::from_utf8(body[8..].to_vec()).ok()?, value))
}

fn parse_disk_key(key: &str) -> Option<(NodeId, u64)> {
    let (origin, seq) = key.strip_prefix(DISK_PREFIX)?.split_once('/')?;
    Some((NodeId(origin.parse().ok()?), seq.parse().ok()?))
}

impl GossipNode {
    /// Build a node from what its disk holds. Torn records fail their checksum and are skipped:
    /// such an item was never acknowledged or spread from this disk, and anti-entropy brings back
    /// anything other nodes have.
    pub fn boot(me: NodeId, cluster: &[NodeId], config: GossipConfig, durable: &Durable) -> Self {
        let mut cluster = cluster.to_vec();
        cluster.sort();
        let mut node = GossipNode {
            me,
            peers: cluster.iter().copied().filter(|&id| id != me).collect(),
            origins: vec![OriginLog::default(); cluster.len()],
            cluster,
            config,
            by_key: BTreeMap::new(),
            next_seq: 1,
        };
        for (disk_key, bytes) in durable.scan_prefix(DISK_PREFIX) {
            let (Some((origin, seq)), Some((key, value))) = (parse_disk_key(disk_key), decode(bytes)) else {
                continue;
            };
            if origin == me {
                node.next_seq = node.next_seq.max(seq + 1);
            }
            node.insert(&Item { origin, seq, key: key.into(), value });
        }
        node
    }

    fn position(&self, id: NodeId) -> Option<usize> {
        self.cluster.binary_search(&id).ok()
    }

    fn insert(&mut self, item: &Item) -> bool {
        let Some(i) = self.position(item.origin) else { return false };
        let fresh = self.origins[i].insert(item.seq, item.key.clone(), item.value);
        if fresh {
            match self.by_key.get_mut(&*item.key) {
                Some(values) => {
                    values.insert(item.value);
                }
                None => {
                    self.by_key.insert(item.key.clone(), BTreeSet::from([item.value]));
                }
            }
        }
        fresh
    }

    /// Learn items; persist the new ones and return them.
    fn learn(&mut self, io: &mut Io<'_, Self>, items: Vec<Item>) -> Vec<Item> {
        let mut fresh = Vec::new();
        for item in items {
            if self.insert(&item) {
                io.put(disk_key(item.origin, item.seq), encode(&item.key, item.value));
                fresh.push(item);
            }
        }
        fresh
    }

    fn digest(&self) -> Vec<u64> {
        self.origins.iter().map(|o| o.contiguous).collect()
    }

    /// Items the holder of digest `have` lacks (at most `max_items_per_message`).
    fn missing_from(&self, have: &[u64]) -> Vec<Item> {
        let limit = self.config.max_items_per_message.max(1);
        let mut items = Vec::new();
        for (i, log) in self.origins.iter().enumerate() {
            let above = have.get(i).copied().unwrap_or(0);
            for (seq, (key, value)) in log.items.range(above + 1..) {
                if items.len() == limit {
                    return items;
                }
                items.push(Item { origin: self.cluster[i], seq: *seq, key: key.clone(), value: *value });
            }
        }
        items
    }

    /// Push fresh items to `fanout` distinct random peers.
    fn spread(&mut self, io: &mut Io<'_, Self>, fresh: &[Item]) {
        if fresh.is_empty() {
            return;
        }
        // A partial Fisher-Yates shuffle: the first `fanout` peers become a uniform random choice.
        let n = self.peers.len();
        for i in 0..self.config.fanout.min(n) {
            let j = io.random_below(i as u64, n as u64) as usize;
            self.peers.swap(i, j);
            for chunk in fresh.chunks(self.config.max_items_per_message.max(1)) {
                io.send(self.peers[i], GossipMessage::Rumour { items: chunk.to_vec() });
            }
        }
    }

    /// Learn, make it durable, then tell others.
    fn learn_and_spread(&mut self, io: &mut Io<'_, Self>, from: NodeId, items: Vec<Item>) {
        let fresh = self.learn(io, items);
        if fresh.is_empty() {
            return;
        }
        io.sync();
        if io.tracing() {
            io.event("learned", serde_json::json!({ "items": fresh.len(), "from": from.0 }));
        }
        self.spread(io, &fresh);
    }

    /// All values held for `key`, in order.
    pub fn values(&self, key: &str) -> Vec<i64> {
        self.by_key.get(key).map_or_else(Vec::new, |vs| vs.iter().copied().collect())
    }

    /// Number of items held.
    pub fn len(&self) -> usize {
        self.origins.iter().map(|o| o.items.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value, grouped by key.
    pub fn by_key(&self) -> &BTreeMap<Arc<str>, BTreeSet<i64>> {
        &self.by_key
    }
}

impl Process for GossipNode {
    type Message = GossipMessage;
    type Timer = GossipTimer;
    type Request = GossipRequest;
    type Response = GossipResponse;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        if self.config.anti_entropy {
            // A random first delay, so nodes booted together do not gossip in lockstep.
            let first = io.random_duration(Duration::ZERO, self.config.interval);
            io.set_timer(GossipTimer::AntiEntropy, first);
        }
    }

    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: GossipMessage) {
        match msg {
            GossipMessage::Rumour { items } => self.learn_and_spread(io, from, items),
            GossipMessage::Digest { have } => {
                let items = self.missing_from(&have);
                // Ask back only if the peer holds something we lack.
                let mine = self.digest();
                let lacking = have.iter().zip(&mine).any(|(theirs, ours)| theirs > ours);
                if !items.is_empty() || lacking {
                    io.send(from, GossipMessage::Exchange { items, have: lacking.then_some(mine) });
                }
            }
            GossipMessage::Exchange { items, have } => {
                self.learn_and_spread(io, from, items);
                if let Some(have) = have {
                    let items = self.missing_from(&have);
                    if !items.is_empty() {
                        io.send(from, GossipMessage::Exchange { items, have: None });
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: GossipTimer) {
        match timer {
            GossipTimer::AntiEntropy => {
                let peers = self.cluster.len() as u64;
                if peers > 1 {
                    // A random peer other than me.
                    let mut i = io.random_below(0, peers - 1) as usize;
                    if self.cluster[i] >= self.me {
                        i += 1;
                    }
                    io.send(self.cluster[i], GossipMessage::Digest { have: self.digest() });
                }
                io.set_timer(GossipTimer::AntiEntropy, self.config.interval);
            }
        }
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: GossipRequest) {
        match req {
            GossipRequest::Broadcast { key, value } => {
                let item = Item { origin: self.me, seq: self.next_seq, key: key.into(), value };
                self.next_seq += 1;
                let fresh = self.learn(io, vec![item]);
                // Durable before acknowledged or spread: the ack promises the item survives a
                // crash, and the number must never be reused for another item.
                io.sync();
                io.reply(request, GossipResponse::Ack);
                self.spread(io, &fresh);
            }
            GossipRequest::Read { key } => io.reply(request, GossipResponse::Values(self.values(&key))),
            GossipRequest::Unsupported { what } => {
                io.reply(request, GossipResponse::Error(format!("gossip does not support {what}")))
            }
        }
    }

    fn inspect(&self) -> serde_json::Value {
        serde_json::json!({ "items": self.len(), "digest": self.digest() })
    }
}

impl Service for GossipNode {
    fn request(_client: ClientId, _seq: u64, op: &Op) -> GossipRequest {
        let key = op.key.clone().unwrap_or_default();
        match (op.f, &op.value) {
            (OpFn::Write | OpFn::Add | OpFn::Append, Value::Int(value)) => {
                GossipRequest::Broadcast { key, value: *value }
            }
            (OpFn::Read, _) => GossipRequest::Read { key },
            (f, _) => GossipRequest::Unsupported { what: f.to_string() },
        }
    }

    fn completion(_op: &Op, response: &GossipResponse) -> Completion {
        match response {
            GossipResponse::Ack => Completion::Ok(Value::Nil),
            GossipResponse::Values(values) => {
                Completion::Ok(Value::List(values.iter().map(|v| Value::Int(*v)).collect()))
            }
            GossipResponse::Error(e) => Completion::Fail(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::{Effect, StorageOp};
    use rand_core::{impls, RngCore};

    /// A fixed "random" source, enough for unit tests of single steps.
    struct Counter(u64);
    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            impls::fill_bytes_via_next(self, dest)
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    fn cluster() -> Vec<NodeId> {
        (1..=3).map(NodeId).collect()
    }

    fn node(id: u32) -> GossipNode {
        GossipNode::boot(NodeId(id), &cluster(), GossipConfig::default(), &Durable::new())
    }

    fn item(origin: u32, seq: u64, value: i64) -> Item {
        Item { origin: NodeId(origin), seq, key: "k".into(), value }
    }

    fn step(
        node: &mut GossipNode,
        f: impl FnOnce(&mut GossipNode, &mut Io<'_, GossipNode>),
    ) -> Vec<Effect<GossipNode>> {
        let mut rng = Counter(1);
        let mut effects = Vec::new();
        let mut io = Io::new(node.me, concord_core::Time::ZERO, false, &mut rng, &mut effects);
        f(node, &mut io);
        effects
    }

    #[test]
    fn a_broadcast_is_synced_before_it_is_acknowledged_or_spread() {
        let mut n = node(1);
        let request = RequestId { client: ClientId(0), seq: 0 };
        let effects = step(&mut n, |n, io| {
            n.on_request(io, request, GossipRequest::Broadcast { key: "k".into(), value: 7 })
        });
        let at = |p: fn(&Effect<GossipNode>) -> bool| effects.iter().position(p).unwrap();
        let persist = at(|e| matches!(e, Effect::Persist(_)));
        let sync = at(|e| matches!(e, Effect::Sync));
        let reply = at(|e| matches!(e, Effect::Reply { .. }));
        let first_send = at(|e| matches!(e, Effect::Send { .. }));
        assert!(persist < sync && sync < reply && sync < first_send, "{effects:?}");
        let rumours = effects.iter().filter(|e| matches!(e, Effect::Send { .. })).count();
        assert_eq!(rumours, 2, "fanout 2 in a 3-node cluster");
    }

    #[test]
    fn disk_keys_are_zero_padded_in_numeric_order() {
        assert_eq!(disk_key(NodeId(7), 42), "gossip/0000000007/00000000000000000042");
        assert_eq!(parse_disk_key(&disk_key(NodeId(7), 42)), Some((NodeId(7), 42)));
        assert!(disk_key(NodeId(2), 9) < disk_key(NodeId(2), 10));
    }

    #[test]
    fn boot_recovers_items_and_skips_torn_records() {
        let mut disk = Durable::new();
        disk.apply(&StorageOp::Put { key: disk_key(NodeId(1), 1), value: encode("k", 5) });
        let mut torn = encode("k", 6);
        torn.truncate(torn.len() - 3);
        disk.apply(&StorageOp::Put { key: disk_key(NodeId(1), 2), value: torn });
        let n = GossipNode::boot(NodeId(1), &cluster(), GossipConfig::default(), &disk);
        assert_eq!(n.values("k"), vec![5]);
        assert_eq!(n.next_seq, 2, "the torn item's number was never used outside this node");
    }

    #[test]
    fn digests_count_only_contiguous_items() {
        let mut n = node(1);
        assert!(n.insert(&item(2, 1, 10)));
        assert!(n.insert(&item(2, 3, 30)));
        assert!(!n.insert(&item(2, 1, 10)), "duplicates are not fresh");
        assert_eq!(n.digest(), vec![0, 1, 0]);
        n.insert(&item(2, 2, 20));
        assert_eq!(n.digest(), vec![0, 3, 0]);
    }

    #[test]
    fn a_digest_is_answered_with_exactly_what_the_peer_lacks() {
        let mut a = node(1);
        for seq in 1..=3 {
            a.insert(&item(2, seq, seq as i64));
        }
        // The peer has origin 2's items up to 1, and one item of origin 3 that `a` lacks.
        let effects =
            step(&mut a, |n, io| n.on_message(io, NodeId(3), GossipMessage::Digest { have: vec![0, 1, 1] }));
        match &effects[..] {
            [Effect::Send { to: NodeId(3), msg: GossipMessage::Exchange { items, have: Some(have) } }] => {
                assert_eq!(items.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![2, 3]);
                assert_eq!(have, &vec![0, 3, 0]);
            }
            other => panic!("unexpected effects {other:?}"),
        }
        // Equal digests: silence.
        let effects =
            step(&mut a, |n, io| n.on_message(io, NodeId(3), GossipMessage::Digest { have: vec![0, 3, 0] }));
        assert!(effects.is_empty(), "{effects:?}");
    }
}

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
//!   its whole set (a count and an order-independent hash). If the digests differ, the two exchange
//!   what the other lacks (push-pull). Because every pair of live, connected nodes keeps doing this,
//!   every item eventually reaches everyone – which is what makes the protocol *converge*.
//!
//! Durability: a node persists each item it learns and syncs before acknowledging a client's
//! broadcast, so an acknowledged item survives a crash of the node that accepted it.
//!
//! Switching anti-entropy off (`anti_entropy = false`) leaves only the unreliable rumours: the
//! simulator's convergence check then catches lost items – the deliberately broken variant that
//! shows the check can fail.

use concord_core::history::{Completion, Op, OpFn, Service, Value};
use concord_core::time::serde_duration;
use concord_core::{ClientId, Durable, Io, Message, NodeId, Process, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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

/// One broadcast item.
pub type Item = (String, i64);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GossipMessage {
    /// New items, pushed eagerly.
    Rumour { items: Vec<Item> },
    /// "This is what I hold": a count and an order-independent hash of the whole set.
    Digest { count: u64, hash: u64 },
    /// The receiver of a digest that differs answers with (up to a bound of) its items; the
    /// original sender merges them and sends back what the receiver lacked.
    Exchange { items: Vec<Item>, reply: bool },
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

/// One gossip node.
pub struct GossipNode {
    peers: Vec<NodeId>,
    config: GossipConfig,
    items: BTreeSet<Item>,
    /// Sum of item hashes: equal sets have equal digests whatever the order they were learned in.
    hash: u64,
}

const DISK_PREFIX: &str = "gossip/";

fn item_hash((key, value): &Item) -> u64 {
    // FNV-1a over key bytes then value bytes; any fixed, well-mixed function would do.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes().iter().chain(&value.to_le_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn disk_key((key, value): &Item) -> String {
    format!("{DISK_PREFIX}{key}/{value:020}")
}

impl GossipNode {
    /// Build a node from what its disk holds. Torn records (a value cut short) are skipped: the
    /// item was never acknowledged from this node's disk, and anti-entropy brings it back.
    pub fn boot(me: NodeId, cluster: &[NodeId], config: GossipConfig, durable: &Durable) -> Self {
        let mut node = GossipNode {
            peers: cluster.iter().copied().filter(|&id| id != me).collect(),
            config,
            items: BTreeSet::new(),
            hash: 0,
        };
        for (disk_key, bytes) in durable.scan_prefix(DISK_PREFIX) {
            let Ok(bytes) = <[u8; 8]>::try_from(bytes) else { continue };
            let value = i64::from_le_bytes(bytes);
            let rest = &disk_key[DISK_PREFIX.len()..];
            if let Some((key, _)) = rest.rsplit_once('/') {
                node.insert((key.to_string(), value));
            }
        }
        node
    }

    fn insert(&mut self, item: Item) -> bool {
        let h = item_hash(&item);
        let new = self.items.insert(item);
        if new {
            self.hash = self.hash.wrapping_add(h);
        }
        new
    }

    /// Learn items; persist and return the new ones.
    fn learn(&mut self, io: &mut Io<'_, Self>, items: Vec<Item>) -> Vec<Item> {
        let mut fresh = Vec::new();
        for item in items {
            if self.insert(item.clone()) {
                io.put(disk_key(&item), item.1.to_le_bytes().to_vec());
                fresh.push(item);
            }
        }
        fresh
    }

    fn random_peer(&self, io: &mut Io<'_, Self>) -> Option<NodeId> {
        (!self.peers.is_empty()).then(|| self.peers[io.random_below(0, self.peers.len() as u64) as usize])
    }

    /// Push fresh items to `fanout` distinct random peers.
    fn spread(&self, io: &mut Io<'_, Self>, fresh: &[Item]) {
        if fresh.is_empty() {
            return;
        }
        let mut candidates = self.peers.clone();
        for _ in 0..self.config.fanout.min(candidates.len()) {
            let i = io.random_below(0, candidates.len() as u64) as usize;
            let peer = candidates.swap_remove(i);
            for chunk in fresh.chunks(self.config.max_items_per_message.max(1)) {
                io.send(peer, GossipMessage::Rumour { items: chunk.to_vec() });
            }
        }
    }

    fn some_items(&self, except: Option<&BTreeSet<Item>>) -> Vec<Item> {
        self.items
            .iter()
            .filter(|item| except.is_none_or(|s| !s.contains(*item)))
            .take(self.config.max_items_per_message.max(1))
            .cloned()
            .collect()
    }

    /// All values held for `key`.
    pub fn values(&self, key: &str) -> Vec<i64> {
        self.items.iter().filter(|(k, _)| k == key).map(|(_, v)| *v).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item, grouped by key.
    pub fn by_key(&self) -> BTreeMap<String, Vec<i64>> {
        let mut map: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (k, v) in &self.items {
            map.entry(k.clone()).or_default().push(*v);
        }
        map
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
            GossipMessage::Rumour { items } => {
                let fresh = self.learn(io, items);
                if !fresh.is_empty() {
                    io.sync();
                    if io.tracing() {
                        io.event("learned", serde_json::json!({ "items": fresh.len(), "from": from.0 }));
                    }
                }
                self.spread(io, &fresh);
            }
            GossipMessage::Digest { count, hash } => {
                if count != self.items.len() as u64 || hash != self.hash {
                    io.send(from, GossipMessage::Exchange { items: self.some_items(None), reply: true });
                }
            }
            GossipMessage::Exchange { items, reply } => {
                let theirs: BTreeSet<Item> = items.iter().cloned().collect();
                let fresh = self.learn(io, items);
                if !fresh.is_empty() {
                    io.sync();
                    if io.tracing() {
                        io.event("learned", serde_json::json!({ "items": fresh.len(), "from": from.0 }));
                    }
                }
                if reply {
                    let missing = self.some_items(Some(&theirs));
                    if !missing.is_empty() {
                        io.send(from, GossipMessage::Exchange { items: missing, reply: false });
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: GossipTimer) {
        match timer {
            GossipTimer::AntiEntropy => {
                if let Some(peer) = self.random_peer(io) {
                    io.send(peer, GossipMessage::Digest { count: self.items.len() as u64, hash: self.hash });
                }
                io.set_timer(GossipTimer::AntiEntropy, self.config.interval);
            }
        }
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: GossipRequest) {
        match req {
            GossipRequest::Broadcast { key, value } => {
                let fresh = self.learn(io, vec![(key, value)]);
                // Durable before acknowledged: the ack promises the item survives a crash.
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
        serde_json::json!({ "items": self.items.len(), "digest": format!("{:016x}", self.hash) })
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

    fn node(id: u32) -> GossipNode {
        let cluster: Vec<NodeId> = (1..=3).map(NodeId).collect();
        GossipNode::boot(NodeId(id), &cluster, GossipConfig::default(), &Durable::new())
    }

    fn step(
        node: &mut GossipNode,
        f: impl FnOnce(&mut GossipNode, &mut Io<'_, GossipNode>),
    ) -> Vec<Effect<GossipNode>> {
        let mut rng = Counter(1);
        let mut effects = Vec::new();
        let mut io = Io::new(NodeId(1), concord_core::Time::ZERO, false, &mut rng, &mut effects);
        f(node, &mut io);
        effects
    }

    #[test]
    fn a_broadcast_is_synced_before_it_is_acknowledged() {
        let mut n = node(1);
        let request = RequestId { client: ClientId(0), seq: 0 };
        let effects = step(&mut n, |n, io| {
            n.on_request(io, request, GossipRequest::Broadcast { key: "k".into(), value: 7 })
        });
        let persist = effects.iter().position(|e| matches!(e, Effect::Persist(_))).unwrap();
        let sync = effects.iter().position(|e| matches!(e, Effect::Sync)).unwrap();
        let reply = effects.iter().position(|e| matches!(e, Effect::Reply { .. })).unwrap();
        assert!(persist < sync && sync < reply, "{effects:?}");
        let rumours = effects.iter().filter(|e| matches!(e, Effect::Send { .. })).count();
        assert_eq!(rumours, 2, "fanout 2 in a 3-node cluster");
    }

    #[test]
    fn boot_recovers_items_and_skips_torn_records() {
        let mut disk = Durable::new();
        disk.apply(&StorageOp::Put { key: disk_key(&("k".into(), 5)), value: 5i64.to_le_bytes().to_vec() });
        disk.apply(&StorageOp::Put { key: disk_key(&("k".into(), 6)), value: vec![6, 0, 0] }); // torn
        let n = GossipNode::boot(NodeId(1), &[NodeId(1), NodeId(2)], GossipConfig::default(), &disk);
        assert_eq!(n.values("k"), vec![5]);
    }

    #[test]
    fn equal_sets_have_equal_digests_whatever_the_order() {
        let (mut a, mut b) = (node(1), node(2));
        for v in [1, 2, 3] {
            a.insert(("k".into(), v));
        }
        for v in [3, 1, 2] {
            b.insert(("k".into(), v));
        }
        assert_eq!(a.hash, b.hash);
        b.insert(("k".into(), 4));
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn a_differing_digest_starts_a_push_pull_exchange() {
        let mut a = node(1);
        a.insert(("k".into(), 1));
        let effects =
            step(&mut a, |n, io| n.on_message(io, NodeId(2), GossipMessage::Digest { count: 0, hash: 0 }));
        assert!(
            matches!(&effects[..], [Effect::Send { to: NodeId(2), msg: GossipMessage::Exchange { reply: true, items } }] if items.len() == 1)
        );
        // The peer answers with what `a` lacked; `a` learns it and sends back nothing more.
        let effects = step(&mut a, |n, io| {
            n.on_message(
                io,
                NodeId(2),
                GossipMessage::Exchange { items: vec![("k".into(), 2)], reply: false },
            )
        });
        assert_eq!(a.values("k"), vec![1, 2]);
        assert!(effects.iter().all(|e| !matches!(e, Effect::Send { .. })));
    }
}

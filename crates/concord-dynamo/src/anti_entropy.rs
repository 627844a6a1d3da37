//! # Anti-entropy with Merkle trees
//!
//! Read repair fixes only keys that are read, and hinted handoff only writes that a fallback
//! caught. Anti-entropy is the background process that repairs everything else (Dynamo §4.7): every
//! `interval` a node picks one of its ranges and another home replica of that range, and the two
//! compare what they hold **without sending it**:
//!
//! ```text
//!              root                 each replica hashes every key of the range into one of
//!            /      \               2^depth leaves (by a hash of the key), hashes each leaf's
//!          h01       h23            (key, object digest) pairs in key order, and each inner node
//!         /   \     /   \           from its two children.
//!       h0    h1  h2    h3          Equal roots: done, one hash exchanged. Different: descend
//! ```                               only into the children that differ.
//!
//! The exchange is symmetric and message-driven: `Compare { nodes }` carries hashes of some tree
//! nodes; the receiver answers with the children of those that differ, or – at a differing leaf –
//! with its objects in that leaf (`Objects`), and the other side merges them and sends back its own
//! objects for the leaf. Merges are CRDT joins, so receiving more than needed is harmless.
//!
//! The cost is counted: bytes of hashes and objects actually sent, against the bytes a naive full
//! sync of the range would have sent. `inspect()` and the `anti-entropy` trace event show both.
//!
//! Building a range's tree scans the whole store (keys are ordered by name, not by range) and
//! digests every object of the range, so each node caches its trees per range ([`RangeSummary`],
//! with the range's full-sync size): an exchange of 17 levels then builds a tree once, not once per
//! message. The cache is plain memoisation – a cached tree is exactly what a rebuild would give –
//! kept so by dropping a range's entry whenever a key of it changes in the store (all writes go
//! through `DynamoNode::store_changed`) and every entry when the ring changes. Debug builds check
//! each cached tree against a rebuild. Under a steady write load the trees of written ranges are
//! rebuilt at their next exchange; updating a tree in place per write would avoid even that.

use crate::ring::{hash64, mix64};

/// A Merkle tree over one range, in heap order: node 0 is the root, node `i` has children
/// `2i+1` and `2i+2`, the last `2^depth` nodes are the leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    depth: u32,
    nodes: Vec<u64>,
}

impl MerkleTree {
    /// Build from `(key, object digest)` pairs given in key order.
    pub fn build<'a>(depth: u32, entries: impl IntoIterator<Item = (&'a str, u64)>) -> MerkleTree {
        let leaves = 1usize << depth;
        let mut nodes = vec![0u64; 2 * leaves - 1];
        let first_leaf = leaves - 1;
        for (key, digest) in entries {
            let leaf = first_leaf + leaf_of(depth, key);
            // Order-dependent fold: entries arrive in key order, so equal contents give equal hashes.
            nodes[leaf] = mix64(nodes[leaf].rotate_left(5) ^ hash64(key.as_bytes()) ^ digest);
        }
        for i in (0..first_leaf).rev() {
            let (l, r) = (nodes[2 * i + 1], nodes[2 * i + 2]);
            nodes[i] = if l == 0 && r == 0 { 0 } else { mix64(l ^ r.rotate_left(17) ^ 0x9e37_79b9) };
        }
        MerkleTree { depth, nodes }
    }

    pub fn root(&self) -> u64 {
        self.nodes[0]
    }

    pub fn hash(&self, node: u32) -> u64 {
        self.nodes.get(node as usize).copied().unwrap_or(0)
    }

    pub fn is_leaf(&self, node: u32) -> bool {
        node as usize >= (1usize << self.depth) - 1
    }

    /// The leaf number (0-based) of a leaf node.
    pub fn leaf_index(&self, node: u32) -> usize {
        node as usize + 1 - (1usize << self.depth)
    }

    pub fn children(node: u32) -> [u32; 2] {
        [2 * node + 1, 2 * node + 2]
    }
}

/// Which leaf a key falls in. Keys of one range share a narrow band of ring positions, so the
/// leaf uses a *different* hash of the key than the ring does.
pub fn leaf_of(depth: u32, key: &str) -> usize {
    if depth == 0 {
        return 0;
    }
    (mix64(hash64(key.as_bytes()) ^ 0x5851_f42d_4c95_7f2d) >> (64 - depth)) as usize
}

/// What anti-entropy caches per range: its Merkle tree and what a full sync of it would send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeSummary {
    tree: MerkleTree,
    /// Keys and binary objects of the range (see [`Object::size`]).
    bytes: u64,
}

/// Bytes of one `(node, hash)` pair on the wire.
pub const HASH_ENTRY_BYTES: u64 = 12;

/// Counters of anti-entropy's cost, per node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AntiEntropyStats {
    /// Exchanges started by this node.
    pub exchanges: u64,
    /// Exchanges that found the two replicas' roots equal (one hash sent, nothing else).
    pub in_sync: u64,
    /// Bytes this node sent for anti-entropy (hashes and objects).
    pub bytes_sent: u64,
    /// Bytes a full sync would have sent instead (all objects of the range, both ways).
    pub full_sync_bytes: u64,
    /// Objects sent because their leaf differed.
    pub objects_sent: u64,
}

use crate::store::{self, Object};
use crate::{DynamoMessage, DynamoNode};
use concord_core::{Io, NodeId, StorageOp};

impl DynamoNode {
    /// `(key, object)` of my home data in `range`, in key order.
    fn range_entries(&self, range: u32) -> impl Iterator<Item = (&String, &Object)> {
        self.store.iter().filter(move |(k, _)| self.ring.range_of(k) == range)
    }

    fn build_summary(&self, range: u32) -> RangeSummary {
        let mut bytes = 0;
        let tree = MerkleTree::build(
            self.config.merkle_depth,
            self.range_entries(range).map(|(k, o)| {
                bytes += k.len() as u64 + o.size();
                (k.as_str(), o.digest())
            }),
        );
        RangeSummary { tree, bytes }
    }

    /// Make sure `ae_cache` holds the summary of `range`; read it as `self.ae_cache[&range]`.
    fn cache_summary(&mut self, range: u32) {
        match self.ae_cache.get(&range) {
            Some(cached) => debug_assert_eq!(
                *cached,
                self.build_summary(range),
                "the cached tree of range {range} is stale: a change to the store missed store_changed"
            ),
            None => {
                let summary = self.build_summary(range);
                self.ae_cache.insert(range, summary);
            }
        }
    }

    /// Start exchanges with one peer (round-robin over the nodes I share ranges with): one root
    /// per shared range. Every pair of replicas is compared every few intervals, so a lost
    /// replication is repaired within a bounded time after the heal.
    pub(crate) fn start_anti_entropy(&mut self, io: &mut Io<'_, Self>) {
        let n = self.config.n;
        let mut peers: Vec<NodeId> = self
            .my_ranges
            .iter()
            .flat_map(|&r| self.ring.walk(r).into_iter().take(n))
            // Not filtered by SWIM's view: a stale "down" must not stop repairs; a message to a
            // node that really is down is merely lost.
            .filter(|&p| p != self.me)
            .collect();
        peers.sort();
        peers.dedup();
        if peers.is_empty() {
            return;
        }
        let pick = io.random_below(0, peers.len() as u64) as usize;
        let peer = peers[pick];
        let shared: Vec<u32> = self
            .my_ranges
            .iter()
            .copied()
            .filter(|&r| self.ring.walk(r).iter().take(n).any(|&p| p == peer))
            .collect();
        for range in shared {
            self.cache_summary(range);
            let summary = &self.ae_cache[&range];
            let root = summary.tree.root();
            self.ae.exchanges += 1;
            self.ae.bytes_sent += HASH_ENTRY_BYTES;
            self.ae.full_sync_bytes += summary.bytes;
            io.send(peer, DynamoMessage::AeCompare { range, nodes: vec![(0, root)] });
        }
    }

    /// Compare the peer's hashes with mine: descend where they differ; at leaves, send objects.
    pub(crate) fn on_ae_compare(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        range: u32,
        nodes: Vec<(u32, u64)>,
    ) {
        self.cache_summary(range);
        let RangeSummary { tree, bytes } = &self.ae_cache[&range];
        if nodes.iter().any(|(i, _)| *i == 0) {
            // The start of an exchange: a full sync would have had me send my whole range.
            self.ae.full_sync_bytes += bytes;
        }
        let mut deeper = Vec::new();
        let mut leaves = Vec::new();
        for (node, hash) in nodes {
            if tree.hash(node) == hash {
                if node == 0 {
                    self.ae.in_sync += 1;
                }
                continue;
            }
            if tree.is_leaf(node) {
                leaves.push(node);
            } else {
                deeper.extend(MerkleTree::children(node).map(|c| (c, tree.hash(c))));
            }
        }
        if !deeper.is_empty() {
            self.ae.bytes_sent += HASH_ENTRY_BYTES * deeper.len() as u64;
            io.send(from, DynamoMessage::AeCompare { range, nodes: deeper });
        }
        if !leaves.is_empty() {
            let items = self.leaf_items(range, &leaves);
            io.send(from, DynamoMessage::AeObjects { range, leaves, items, reply: true });
        }
    }

    /// My objects in the given leaves (tree node numbers) of `range`.
    fn leaf_items(&mut self, range: u32, leaves: &[u32]) -> Vec<(String, Object)> {
        let depth = self.config.merkle_depth;
        let first_leaf = (1usize << depth) - 1;
        // A bitmap, not a list: at high divergence thousands of leaves are wanted at once.
        let mut wanted = vec![false; 1 << depth];
        for &node in leaves {
            if let Some(slot) = (node as usize).checked_sub(first_leaf).and_then(|i| wanted.get_mut(i)) {
                *slot = true;
            }
        }
        let items: Vec<(String, Object)> = self
            .range_entries(range)
            .filter(|(k, _)| wanted[leaf_of(depth, k)])
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        self.ae.objects_sent += items.len() as u64;
        self.ae.bytes_sent +=
            4 * leaves.len() as u64 + items.iter().map(|(k, o)| k.len() as u64 + o.size()).sum::<u64>();
        items
    }

    pub(crate) fn on_ae_objects(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        range: u32,
        leaves: Vec<u32>,
        items: Vec<(String, Object)>,
        reply: bool,
    ) {
        let mut changed = false;
        for (key, object) in &items {
            if self.is_home(key) {
                changed |= self.absorb(io, key, object, None);
            }
        }
        if changed {
            io.sync();
        }
        if reply {
            let items = self.leaf_items(range, &leaves);
            io.send(from, DynamoMessage::AeObjects { range, leaves, items, reply: false });
        }
        if io.tracing() {
            io.event(
                "anti-entropy",
                serde_json::json!({
                    "range": range, "from": from.0, "objects": items.len(),
                    "bytes_sent": self.ae.bytes_sent, "full_sync_bytes": self.ae.full_sync_bytes,
                }),
            );
        }
    }

    /// Tombstone GC, step 1: for tombstones older than the grace period of which I am the first
    /// home replica, ask every ring member whether it holds exactly this tombstone (or nothing) and
    /// no hint for the key.
    pub(crate) fn start_tombstone_gc(&mut self, io: &mut Io<'_, Self>) {
        self.gc_votes.clear();
        let now = io.now().as_nanos();
        let grace = self.config.tombstone_grace.as_nanos() as u64;
        let candidates: Vec<(String, u64)> = self
            .store
            .iter()
            .filter(|(k, o)| {
                let old = matches!(o, Object::Register(v) if v.is_tombstone() && now.saturating_sub(v.newest_timestamp()) > grace);
                old && self.ring.preference_list(k, 1).first() == Some(&self.me)
            })
            .map(|(k, o)| (k.clone(), o.digest()))
            .take(16)
            .collect();
        let members: Vec<NodeId> = self.swim.ring_members().into_iter().filter(|&m| m != self.me).collect();
        for (key, digest) in candidates {
            for &m in &members {
                io.send(m, DynamoMessage::GcQuery { key: key.clone(), digest });
            }
            self.gc_votes.insert(key, (digest, Default::default()));
        }
    }

    /// Step 2: once every other member voted yes, everyone purges that exact tombstone.
    pub(crate) fn on_gc_vote(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        key: String,
        digest: u64,
        ok: bool,
    ) {
        let Some((d, votes)) = self.gc_votes.get_mut(&key) else { return };
        if *d != digest || !ok {
            self.gc_votes.remove(&key);
            return;
        }
        votes.insert(from);
        let members: Vec<NodeId> = self.swim.ring_members().into_iter().filter(|&m| m != self.me).collect();
        if members.iter().all(|m| votes.contains(m)) {
            self.gc_votes.remove(&key);
            for m in members {
                io.send(m, DynamoMessage::Purge { key: key.clone(), digest });
            }
            self.purge(io, &key, digest);
        }
    }

    /// Drop the key if (and only if) I still hold exactly the tombstone everyone agreed on.
    pub(crate) fn purge(&mut self, io: &mut Io<'_, Self>, key: &str, digest: u64) {
        if self.store.get(key).is_some_and(|o| o.is_tombstone() && o.digest() == digest) {
            self.store.remove(key);
            self.store_changed(key);
            self.purged += 1;
            io.persist(StorageOp::Delete { key: store::data_key(key) });
            io.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, u64)]) -> MerkleTree {
        let mut sorted = entries.to_vec();
        sorted.sort();
        MerkleTree::build(3, sorted)
    }

    #[test]
    fn equal_contents_give_equal_roots_and_one_change_differs_on_one_path() {
        let a = tree(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        let b = tree(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        assert_eq!(a, b);
        let c = tree(&[("a", 1), ("b", 2), ("c", 99), ("d", 4)]);
        assert_ne!(a.root(), c.root());
        let differing_leaves =
            (0..15u32).filter(|&i| a.is_leaf(i) && a.hash(i) != c.hash(i)).collect::<Vec<_>>();
        assert_eq!(differing_leaves.len(), 1, "only the leaf of key c differs");
        assert_eq!(a.leaf_index(differing_leaves[0]), leaf_of(3, "c"));
    }

    #[test]
    fn a_missing_key_changes_the_root() {
        let a = tree(&[("a", 1), ("b", 2)]);
        let b = tree(&[("a", 1)]);
        assert_ne!(a.root(), b.root());
        assert_eq!(tree(&[]).root(), 0, "an empty range hashes to zero");
    }
}

//! # Consistent hashing with virtual nodes
//!
//! Keys and nodes are placed on one circle of 2^64 positions. Every physical node owns `vnodes`
//! *tokens* (positions derived from its id by hashing), so its share of the circle is split into
//! many small arcs spread around – when a node joins or leaves, the keys that move come from (or go
//! to) every other node a little, instead of from one neighbour (Dynamo paper, §4.2 "strategy 1").
//!
//! A key lives on the circle at `hash(key)`. Walking clockwise from there, the first token belongs
//! to the key's *coordinator*; continuing the walk and skipping tokens of nodes already chosen
//! gives the **preference list**: the first `n` *distinct physical* nodes are the key's home
//! replicas; the nodes after them are the fallbacks a sloppy quorum may use (§4.6).
//!
//! The arc that ends at a token is a **range** (a "vnode range"): every key in it has the same
//! preference list, so ranges are the unit of anti-entropy (one Merkle tree per range).
//!
//! Everything here is deterministic: tokens are sorted in a `Vec`, ties broken by node id; no
//! `HashMap` iteration order is involved anywhere.

use concord_core::hash::fnv1a64;
pub use concord_core::hash::mix64;
use concord_core::NodeId;
use serde::{Deserialize, Serialize};

/// FNV-1a over bytes followed by a 64-bit finaliser (splitmix64), so that similar keys (`k1`,
/// `k2`) land far apart on the circle. Stable across platforms and releases: the ring's layout is
/// part of the on-disk contract (hinted data names its range).
pub fn hash64(bytes: &[u8]) -> u64 {
    mix64(fnv1a64(bytes))
}

/// A token: a position on the circle owned by a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Token {
    pub position: u64,
    pub node: NodeId,
}

/// The ring of one membership view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by position (then node): the circle, read clockwise.
    tokens: Vec<Token>,
    nodes: Vec<NodeId>,
    vnodes: u32,
}

/// A range (vnode range) is named by the index of the token that ends it.
pub type RangeId = u32;

impl Ring {
    /// The ring of `members` with `vnodes` tokens each (at least one).
    pub fn new(members: &[NodeId], vnodes: u32) -> Ring {
        let vnodes = vnodes.max(1);
        let mut nodes = members.to_vec();
        nodes.sort();
        nodes.dedup();
        let mut tokens: Vec<Token> = nodes
            .iter()
            .flat_map(|&node| {
                (0..vnodes).map(move |i| {
                    let seed = (u64::from(node.0) << 32) | u64::from(i);
                    Token { position: mix64(seed ^ 0x6a09_e667_f3bc_c908), node }
                })
            })
            .collect();
        tokens.sort();
        Ring { tokens, nodes, vnodes }
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Number of ranges (= tokens).
    pub fn ranges(&self) -> u32 {
        self.tokens.len() as u32
    }

    /// The range a key falls in: the first token clockwise from its hash (wrapping around).
    pub fn range_of(&self, key: &str) -> RangeId {
        self.range_of_hash(hash64(key.as_bytes()))
    }

    pub fn range_of_hash(&self, h: u64) -> RangeId {
        if self.tokens.is_empty() {
            return 0;
        }
        let i = self.tokens.partition_point(|t| t.position < h);
        (i % self.tokens.len()) as RangeId
    }

    /// Every distinct physical node in clockwise order starting at range `range`: the first `n` are
    /// the home replicas, the rest fallbacks in the order a sloppy quorum tries them.
    pub fn walk(&self, range: RangeId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
        let len = self.tokens.len();
        for step in 0..len {
            let node = self.tokens[(range as usize + step) % len].node;
            if !out.contains(&node) {
                out.push(node);
                if out.len() == self.nodes.len() {
                    break;
                }
            }
        }
        out
    }

    /// The key's home replicas: the first `n` distinct nodes clockwise (fewer if the ring is small).
    pub fn preference_list(&self, key: &str, n: usize) -> Vec<NodeId> {
        let mut walk = self.walk(self.range_of(key));
        walk.truncate(n);
        walk
    }

    /// The ranges `node` is a home replica of (for anti-entropy).
    pub fn ranges_of(&self, node: NodeId, n: usize) -> Vec<RangeId> {
        (0..self.ranges()).filter(|&r| self.walk(r).iter().take(n).any(|&x| x == node)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    #[test]
    fn preference_lists_hold_n_distinct_nodes() {
        let ring = Ring::new(&ids(5), 8);
        for k in 0..200 {
            let list = ring.preference_list(&format!("k{k}"), 3);
            assert_eq!(list.len(), 3);
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3, "{list:?}");
        }
        assert_eq!(ring.preference_list("x", 9).len(), 5, "never more nodes than exist");
    }

    #[test]
    fn the_ring_is_deterministic_and_independent_of_member_order() {
        let a = Ring::new(&ids(5), 16);
        let b = Ring::new(&[NodeId(3), NodeId(1), NodeId(5), NodeId(2), NodeId(4)], 16);
        assert_eq!(a, b);
        assert_eq!(a.preference_list("hello", 3), b.preference_list("hello", 3));
    }

    #[test]
    fn removing_a_node_moves_only_its_keys() {
        // Consistent hashing's promise: a key's home list changes only if the removed node was in it.
        let before = Ring::new(&ids(6), 16);
        let after = Ring::new(&ids(5), 16);
        let mut moved = 0;
        for k in 0..500 {
            let key = format!("key{k}");
            let (b, a) = (before.preference_list(&key, 1), after.preference_list(&key, 1));
            if b != a {
                assert_eq!(b, vec![NodeId(6)], "{key} moved although its owner stayed");
                moved += 1;
            }
        }
        assert!(moved > 30 && moved < 170, "about a sixth of the keys move, not {moved}");
    }

    #[test]
    fn virtual_nodes_spread_load() {
        let ring = Ring::new(&ids(5), 64);
        let mut counts = [0u32; 5];
        for k in 0..5000 {
            counts[ring.preference_list(&format!("k{k}"), 1)[0].0 as usize - 1] += 1;
        }
        assert!(counts.iter().all(|&c| (600..1400).contains(&c)), "{counts:?}");
    }
}

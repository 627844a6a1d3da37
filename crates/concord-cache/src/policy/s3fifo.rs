//! S3-FIFO: three FIFO queues that beat LRU on skewed workloads.
//!
//! Yang, Zhang, Qiu, Yue, Vinayak, "FIFO queues are all you need for cache eviction" (SOSP 2023).
//!
//! ## The observation
//! In production traces most objects are *one-hit wonders*: requested once, never again within a
//! cache lifetime (the paper finds 26–72% of objects in a short window). LRU gives each of them a
//! full trip from the front of its list to the back, displacing keys that will be asked for again.
//! Under a Zipf workload the popular head of the distribution is what matters; a policy that
//! notices *frequency* keeps it, while LRU lets every cold miss push some of it out.
//!
//! ## The algorithm (paper's Algorithm 1, with sizes in bytes)
//! - **S**, a small FIFO (10% of the budget): every new object enters here, unless the ghost queue
//!   remembers it. It acts as a probation area that filters out one-hit wonders quickly.
//! - **M**, the main FIFO (the other 90%).
//! - **G**, a ghost FIFO of *key hashes only* (no values), as many bytes' worth as M holds: the keys
//!   recently evicted from S. A miss on a key in G means S was too small to see it come back, so
//!   the key goes straight into M.
//! - Each resident object has a 2-bit frequency counter, incremented on a hit (capped at 3).
//!   A hit does **not** move anything: no list manipulation and no lock on the read path, which is
//!   the paper's other selling point (scalability).
//! - Eviction: if S holds at least 10% of the budget, take S's oldest object: if it was hit while
//!   in S, move it to M (freq reset to 0), else evict it and remember its hash in G. Otherwise take
//!   M's oldest object: if its frequency is above 0, decrement it and reinsert it at M's head
//!   (a second chance, as in CLOCK), else evict it.
//!
//! Details follow libCacheSim's `S3FIFO.c` (the authors' simulator): an object is promoted from S
//! when hit at least `move-to-main-threshold` times while there (we use 1: hit at all), its
//! counter restarts at 0 in M, and a second chance in M costs one unit of the counter. New objects
//! always enter S, as in the paper's original version (libCacheSim's current one sends them to M
//! while the cache is still filling up).
//!
//! Every step is `O(1)`; an eviction may move objects (S→M at most once per insertion, M→M once per
//! counted hit), so the cost is `O(1)` amortised. The ghost lookup uses a `HashMap` from key hash
//! to (sequence number, charge), never iterated: the order lives in a `VecDeque`. A hash
//! collision in G only makes one admission decision wrong, never correctness.

use super::list::{Links, List};
use super::{EvictionPolicy, Slot};
use crate::store::ENTRY_OVERHEAD_BYTES;
use std::collections::{HashMap, VecDeque};

/// Which queue a resident slot is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Vacant,
    Small,
    Main,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    queue: Queue,
    /// Hits since insertion (or since the last second chance), saturating at [`MAX_FREQ`].
    freq: u8,
    key_hash: u64,
    charge: u64,
}

const MAX_FREQ: u8 = 3;
const VACANT: Meta = Meta { queue: Queue::Vacant, freq: 0, key_hash: 0, charge: 0 };

/// The S3-FIFO policy for a store of a given byte budget.
#[derive(Clone, Debug)]
pub struct S3Fifo {
    links: Links,
    meta: Vec<Meta>,
    small: List,
    main: List,
    small_bytes: u64,
    main_bytes: u64,
    /// S's share: 10% of the budget (the paper's default).
    small_target_bytes: u64,
    /// Ghost queue, oldest at the front: `(key hash, sequence)`.
    ghost: VecDeque<(u64, u64)>,
    /// Key hash → (sequence, charge) of its live ghost record; records whose sequence differs are
    /// dead (the key came back) and are skipped when popped.
    ghost_live: HashMap<u64, (u64, u64)>,
    ghost_bytes: u64,
    ghost_limit_bytes: u64,
    next_ghost_seq: u64,
}

impl S3Fifo {
    /// The fraction of the budget given to the small queue S, in percent (paper: 10%).
    pub const SMALL_PERCENT: u64 = 10;

    /// A policy for a store whose budget is `budget_bytes`.
    pub fn new(budget_bytes: u64) -> S3Fifo {
        // In u128: a budget near u64::MAX ("unlimited") must not overflow (the fuzzer found it).
        let small = u128::from(budget_bytes) * u128::from(Self::SMALL_PERCENT) / 100;
        let small_target_bytes = (small as u64).max(1);
        S3Fifo {
            links: Links::default(),
            meta: Vec::new(),
            small: List::default(),
            main: List::default(),
            small_bytes: 0,
            main_bytes: 0,
            small_target_bytes,
            ghost: VecDeque::new(),
            ghost_live: HashMap::new(),
            ghost_bytes: 0,
            ghost_limit_bytes: budget_bytes - small_target_bytes.min(budget_bytes),
            next_ghost_seq: 0,
        }
    }

    /// Bytes in S and in M (for tests and reports).
    pub fn queue_bytes(&self) -> (u64, u64) {
        (self.small_bytes, self.main_bytes)
    }

    /// Remember `key_hash` in G, forgetting the oldest ghosts beyond G's budget. Dead records
    /// count against a length bound too, so the deque stays bounded even if keys keep coming back.
    fn ghost_insert(&mut self, key_hash: u64, charge: u64) {
        // Already a ghost (a hash collision): the new record replaces the old, which becomes dead.
        self.ghost_take(key_hash);
        let seq = self.next_ghost_seq;
        self.next_ghost_seq += 1;
        self.ghost.push_back((key_hash, seq));
        self.ghost_live.insert(key_hash, (seq, charge));
        self.ghost_bytes += charge;
        let max_records = 2 * (self.ghost_limit_bytes / ENTRY_OVERHEAD_BYTES) as usize + 1;
        while self.ghost_bytes > self.ghost_limit_bytes || self.ghost.len() > max_records {
            let Some((hash, seq)) = self.ghost.pop_front() else { break };
            if let Some(&(live_seq, charge)) = self.ghost_live.get(&hash) {
                if live_seq == seq {
                    self.ghost_live.remove(&hash);
                    self.ghost_bytes -= charge;
                }
            }
        }
    }

    /// Whether `key_hash` is a live ghost; if so, forget it (it is about to become resident).
    fn ghost_take(&mut self, key_hash: u64) -> bool {
        match self.ghost_live.remove(&key_hash) {
            Some((_seq, charge)) => {
                self.ghost_bytes -= charge;
                true
            }
            None => false,
        }
    }

    fn meta_mut(&mut self, slot: Slot) -> &mut Meta {
        let i = slot as usize;
        if self.meta.len() <= i {
            self.meta.resize(i + 1, VACANT);
        }
        &mut self.meta[i]
    }
}

impl EvictionPolicy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3-fifo"
    }

    fn on_insert(&mut self, slot: Slot, key_hash: u64, charge: u64) {
        let to_main = self.ghost_take(key_hash);
        *self.meta_mut(slot) =
            Meta { queue: if to_main { Queue::Main } else { Queue::Small }, freq: 0, key_hash, charge };
        if to_main {
            self.links.push_front(&mut self.main, slot);
            self.main_bytes += charge;
        } else {
            self.links.push_front(&mut self.small, slot);
            self.small_bytes += charge;
        }
    }

    fn on_access(&mut self, slot: Slot) {
        let meta = self.meta_mut(slot);
        meta.freq = (meta.freq + 1).min(MAX_FREQ);
    }

    fn on_remove(&mut self, slot: Slot) {
        let meta = std::mem::replace(self.meta_mut(slot), VACANT);
        match meta.queue {
            Queue::Small => {
                self.links.unlink(&mut self.small, slot);
                self.small_bytes -= meta.charge;
            }
            Queue::Main => {
                self.links.unlink(&mut self.main, slot);
                self.main_bytes -= meta.charge;
            }
            Queue::Vacant => panic!("on_remove of slot {slot}, which is not resident"),
        }
    }

    fn evict(&mut self) -> Option<Slot> {
        loop {
            let small_over = self.small_bytes >= self.small_target_bytes || self.main.is_empty();
            if !self.small.is_empty() && small_over {
                let slot = self.links.pop_back(&mut self.small).expect("small is not empty");
                let meta = self.meta[slot as usize];
                self.small_bytes -= meta.charge;
                if meta.freq >= 1 {
                    // Proved itself in probation: promote to M with a fresh counter.
                    self.meta[slot as usize].queue = Queue::Main;
                    self.meta[slot as usize].freq = 0;
                    self.links.push_front(&mut self.main, slot);
                    self.main_bytes += meta.charge;
                    continue;
                }
                self.meta[slot as usize] = VACANT;
                self.ghost_insert(meta.key_hash, meta.charge);
                return Some(slot);
            }
            let slot = self.main.back()?;
            let meta = &mut self.meta[slot as usize];
            if meta.freq > 0 {
                // Second chance: one hit buys one more trip through M.
                meta.freq -= 1;
                self.links.unlink(&mut self.main, slot);
                self.links.push_front(&mut self.main, slot);
                continue;
            }
            let charge = meta.charge;
            *meta = VACANT;
            self.links.unlink(&mut self.main, slot);
            self.main_bytes -= charge;
            return Some(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_hit_wonder_leaves_from_small_and_a_ghost_hit_enters_main() {
        // Budget 1000: S gets 100 bytes; charges of 60 mean S holds one entry before evicting.
        let mut p = S3Fifo::new(1000);
        p.on_insert(0, 0xA, 60);
        p.on_insert(1, 0xB, 60);
        assert_eq!(p.queue_bytes(), (120, 0));
        // S is over its 10%: its oldest (slot 0, never hit) is evicted and becomes a ghost.
        assert_eq!(p.evict(), Some(0));
        assert_eq!(p.queue_bytes(), (60, 0));
        // Key A comes back: the ghost sends it to M directly.
        p.on_insert(0, 0xA, 60);
        assert_eq!(p.queue_bytes(), (60, 60));
        // B was hit in S: when C arrives and S is over its share, B is promoted to M instead of
        // evicted; S is then under its share, so M's oldest unhit object, A, is the victim.
        p.on_access(1);
        p.on_insert(2, 0xC, 60);
        assert_eq!(p.evict(), Some(0));
        assert_eq!(p.queue_bytes(), (60, 60));
    }

    #[test]
    fn main_gives_a_second_chance_per_hit() {
        let mut p = S3Fifo::new(1000);
        // Fill M via ghosts: insert, evict (ghost), re-insert.
        for (slot, hash) in [(0, 1), (1, 2)] {
            p.on_insert(slot, hash, 200);
            assert_eq!(p.evict(), Some(slot));
            p.on_insert(slot, hash, 200);
        }
        assert_eq!(p.queue_bytes(), (0, 400));
        p.on_access(0);
        // Slot 0 is M's oldest but was hit: it goes around once, slot 1 is evicted.
        assert_eq!(p.evict(), Some(1));
        assert_eq!(p.evict(), Some(0));
        assert_eq!(p.evict(), None);
    }
}

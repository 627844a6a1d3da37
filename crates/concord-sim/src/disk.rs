//! Simulated disks: writes are volatile until synced, and a crash decides their fate.
//!
//! Each node has one [`SimDisk`]. A `Persist` effect appends a write to the *pending* list; a
//! `Sync` effect, when it completes, moves every write issued before it into the *durable*
//! [`Durable`] state. A crash then either loses every pending write ([`CrashMode::Lose`]) or lets a
//! random prefix of them reach the disk with the next one torn ([`CrashMode::Torn`]) – the two
//! things a real disk without a completed `fsync` may do. A protocol that acknowledges before it
//! syncs therefore loses acknowledged data here exactly as it would on a real machine.
//!
//! A disk may also *lie* (`[disk] lying_fsync = true`): its sync returns as soon as the writes sit
//! in a volatile cache, and they reach stable storage only with the next sync – a consumer drive
//! without power-loss protection, or a write cache nobody switched off. A crash then loses the
//! writes of the last completed sync too. No protocol can keep a promise its disk breaks: this
//! fault exists to show what a single durable copy (Dynamo's W=1, a one-node Raft) is worth, and
//! to prove that the "no acknowledged write lost" checks can fail.
//!
//! And a disk may lose what *was* synced ([`SimDisk::lose_synced`], the nemesis's `truncate-log`
//! and `wipe` faults): an operator truncating a segment, deleting files or wiping the directory.
//! The disk keeps a journal of its synced writes, so a truncation is exactly "the state after an
//! earlier sync", and remembers that it happened ([`SimDisk::lost_synced`]) – what the real node
//! learns from its WAL's synced-length watermark and its identity check (issue #23). A node whose
//! disk lost synced writes does not boot (`sim.rs`), unless the deliberate bug
//! `[disk] boot_after_lost_synced` lets it come back with a shorter memory and vote again.

use crate::scenario::CrashMode;
use concord_core::{Durable, StorageOp};
use rand::Rng;

#[derive(Debug, Default)]
pub struct SimDisk {
    /// The durable state as of `journal[..applied]`: brought up to date only when someone looks
    /// (a boot), because applying every synced write as it completed – a copy of each into a
    /// map nobody reads while the node runs – was a tenth of the simulator's time under load.
    durable: Durable,
    applied: usize,
    /// Writes not yet synced, with their sequence numbers.
    pending: Vec<(u64, StorageOp)>,
    next_seq: u64,
    /// A lying disk's cache: the last completed sync's writes, durable only at the next one.
    lies: bool,
    cached_upto: u64,
    /// Every write that became durable, in order: a synced-log truncation replays a prefix.
    journal: Vec<StorageOp>,
    /// Synced writes were lost since this disk was created.
    lost_synced: bool,
    pub stats: DiskStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    /// Writes lost or torn by crashes.
    pub writes_lost: u64,
    /// Synced writes lost by `truncate-log` and `wipe` faults.
    pub synced_writes_lost: u64,
}

impl SimDisk {
    /// A disk whose syncs return before the writes are stable (see the module doc).
    pub fn lying() -> SimDisk {
        SimDisk { lies: true, ..SimDisk::default() }
    }

    /// What the node would find on its disk if it booted now.
    pub fn durable(&mut self) -> &Durable {
        for op in &self.journal[self.applied..] {
            self.durable.apply(op);
        }
        self.applied = self.journal.len();
        &self.durable
    }

    pub fn write(&mut self, op: StorageOp) {
        self.stats.writes += 1;
        self.stats.bytes_written += op.size() as u64;
        self.pending.push((self.next_seq, op));
        self.next_seq += 1;
    }

    /// Start a sync: returns the sequence number it covers (every write issued so far).
    pub fn begin_sync(&mut self) -> u64 {
        self.stats.syncs += 1;
        self.next_seq
    }

    /// A sync that began at `upto` completed: writes before it are durable (on a lying disk, the
    /// writes of the sync before it).
    pub fn complete_sync(&mut self, upto: u64) {
        let upto = if self.lies { std::mem::replace(&mut self.cached_upto, upto) } else { upto };
        let done = self.pending.partition_point(|(seq, _)| *seq < upto);
        self.journal.extend(self.pending.drain(..done).map(|(_, op)| op));
    }

    /// Lose synced writes (the node is down: call after [`SimDisk::crash`]). `wipe`: all of them;
    /// otherwise a random suffix of at least one write (the state falls back to what it was after
    /// an earlier write). Returns how many were lost.
    pub fn lose_synced<R: Rng + ?Sized>(&mut self, wipe: bool, rng: &mut R) -> u64 {
        debug_assert!(self.pending.is_empty(), "crash the node first");
        if self.journal.is_empty() {
            return 0;
        }
        let keep = if wipe { 0 } else { rng.gen_range(0..self.journal.len()) };
        let lost = (self.journal.len() - keep) as u64;
        self.journal.truncate(keep);
        self.durable = Durable::new();
        self.applied = 0;
        self.lost_synced = true;
        self.stats.synced_writes_lost += lost;
        lost
    }

    /// Whether synced writes were ever lost: what the node's own checks would find at boot.
    pub fn lost_synced(&self) -> bool {
        self.lost_synced
    }

    /// Whether every write so far is durable.
    pub fn is_synced(&self) -> bool {
        self.pending.is_empty()
    }

    /// The machine lost power: decide what happens to the pending writes.
    pub fn crash<R: Rng + ?Sized>(&mut self, mode: CrashMode, rng: &mut R) {
        let pending = std::mem::take(&mut self.pending);
        match mode {
            CrashMode::Lose => self.stats.writes_lost += pending.len() as u64,
            CrashMode::Torn => {
                let survivors = rng.gen_range(0..=pending.len());
                let lost = pending.len() - survivors;
                self.stats.writes_lost += lost as u64;
                let mut ops = pending.into_iter().map(|(_, op)| op);
                self.journal.extend(ops.by_ref().take(survivors));
                // The next write was in flight: it reached the disk cut at a random byte.
                if let Some(StorageOp::Put { key, mut value }) = ops.next() {
                    if !value.is_empty() {
                        value.truncate(rng.gen_range(0..value.len()));
                        self.journal.push(StorageOp::Put { key, value });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn put(k: &str, v: &[u8]) -> StorageOp {
        StorageOp::Put { key: k.into(), value: v.to_vec() }
    }

    #[test]
    fn a_crash_keeps_synced_writes_and_loses_unsynced_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut disk = SimDisk::default();
        disk.write(put("a", b"1"));
        let sync = disk.begin_sync();
        disk.write(put("b", b"2")); // issued after the sync began: not covered by it
        disk.complete_sync(sync);
        assert!(!disk.is_synced());
        disk.crash(CrashMode::Lose, &mut rng);
        assert_eq!(disk.durable().get("a"), Some(&b"1"[..]));
        assert_eq!(disk.durable().get("b"), None);
        assert_eq!(disk.stats.writes_lost, 1);
    }

    #[test]
    fn a_lying_disk_loses_the_last_completed_sync_at_a_crash() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut disk = SimDisk::lying();
        disk.write(put("a", b"1"));
        let first = disk.begin_sync();
        disk.complete_sync(first);
        assert_eq!(disk.durable().get("a"), None, "still in the cache");
        disk.write(put("b", b"2"));
        let second = disk.begin_sync();
        disk.complete_sync(second);
        disk.crash(CrashMode::Lose, &mut rng);
        assert_eq!(disk.durable().get("a"), Some(&b"1"[..]), "flushed by the second sync");
        assert_eq!(disk.durable().get("b"), None, "its sync returned, but it was only cached");
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_and_tears_the_next_write() {
        // Over many seeds, torn crashes keep prefixes only: "c" never survives without "b".
        let mut torn_seen = false;
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut disk = SimDisk::default();
            for (k, v) in [("a", &b"aaaa"[..]), ("b", b"bbbb"), ("c", b"cccc")] {
                disk.write(put(k, v));
            }
            disk.crash(CrashMode::Torn, &mut rng);
            let d = disk.durable();
            let full = |k: &str, v: &[u8]| d.get(k) == Some(v);
            if d.get("c").is_some() {
                assert!(full("a", b"aaaa") && full("b", b"bbbb"));
            }
            if d.get("b").is_some() {
                assert!(full("a", b"aaaa"));
            }
            torn_seen |= ["a", "b", "c"].iter().any(|k| d.get(k).is_some_and(|v| v.len() < 4));
        }
        assert!(torn_seen, "some crash should tear a write");
    }
}

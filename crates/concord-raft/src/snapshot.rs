//! Snapshots and log compaction (§7, dissertation chapter 5).
//!
//! * **Taking one**: once `snapshot_threshold_entries` applied entries sit above the last snapshot,
//!   the node serialises its state machine *and its session table* (so exactly-once survives
//!   compaction) at `applied_index`, writes it under a new key, syncs, and only then deletes the
//!   compacted log records and the previous snapshot. A crash at any point leaves either the old
//!   snapshot with its log, or the new one.
//! * **Sending one** (InstallSnapshot, Figure 13): a follower that needs compacted entries gets the
//!   snapshot in `snapshot_chunk_bytes` chunks, one at a time (stop-and-wait: the follower says
//!   which offset it expects next, so a lost or duplicated chunk costs one retry at the next
//!   heartbeat tick). A newer snapshot taken meanwhile restarts the transfer.
//! * **Installing one**: if the follower's log already holds the snapshot's last entry (same index
//!   and term) it keeps the entries after it; otherwise it discards its log (Figure 13 steps 6–7).
//!   The snapshot is durable before the old log is deleted and before it is acknowledged.
//!
//! ## Durable state machines
//! A machine that keeps its state on disk itself ([`StateMachine::is_durable`], the real database's
//! redb store) is never serialised to compact the log. At a snapshot point Raft *checkpoints* it
//! instead – the machine commits its state durably, together with a [`CheckpointRecord`] (the
//! snapshot's index, term, membership and session table) – and only then writes its own snapshot
//! record, whose data holds the session table and no machine bytes. After a restart the machine's
//! checkpoint is the snapshot (see `RaftNode::boot`). A lagging follower is sent the machine's
//! *export* of its checkpoint (state plus that record), read piece by piece as chunks go out; the
//! follower's machine imports the pieces as they arrive and, at the last one, installs them as its
//! own checkpoint. Neither side holds the whole state in memory.

use crate::membership::ConfigHistory;
use crate::message::{Message, SnapshotChunk, SnapshotMeta, SnapshotResponse};
use crate::node::{RaftNode, Role};
use crate::replication::ProgressState;
use crate::session::Sessions;
use crate::storage::{self, corrupt_machine, RecoveryError};
use concord_core::{Io, NodeId, StateMachine, StorageOp};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a snapshot's data holds: the state machine's own bytes and the session table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotData<O> {
    pub sessions: Sessions<O>,
    pub machine: Vec<u8>,
}

/// The first bytes of an encoded [`SnapshotData`]: a name and a format version.
///
/// ```text
///   +----------------------+-----------------------------------------------+
///   | "concord-snap" 0x01  | postcard(SnapshotData { sessions, machine })  |
///   +----------------------+-----------------------------------------------+
/// ```
/// Postcard keeps `machine` as raw bytes behind a varint length (JSON spelled each byte as a
/// decimal number and a comma: 3–4× the size, on disk and in every InstallSnapshot chunk). The
/// checksum lives in the snapshot's meta record (`storage::SnapshotRecord::data_crc`).
const SNAPSHOT_MAGIC: &[u8] = b"concord-snap\x01";

impl<O: Serialize + serde::de::DeserializeOwned> SnapshotData<O> {
    /// The data of a snapshot whose machine keeps its own state (a durable machine): the session
    /// table only.
    pub(crate) fn sessions_only(sessions: Sessions<O>) -> Vec<u8> {
        SnapshotData { sessions, machine: Vec::new() }.encode()
    }

    /// The bytes stored under the snapshot's data key and sent in chunks.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let out = SNAPSHOT_MAGIC.to_vec();
        postcard::to_extend(self, out).expect("snapshots serialise")
    }

    /// Read snapshot bytes back. Snapshots written before the binary format (JSON objects, which
    /// start with `{`) are still read, so an upgraded node boots from its old data directory.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        if let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
            postcard::from_bytes(body).map_err(|e| format!("snapshot does not decode: {e}"))
        } else if bytes.first() == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(|e| format!("snapshot (JSON format) does not decode: {e}"))
        } else {
            Err(format!(
                "snapshot does not decode: {} bytes that start with neither the snapshot header nor JSON",
                bytes.len()
            ))
        }
    }
}

/// What Raft stores inside a durable machine's checkpoint, atomically with the machine's state: the
/// snapshot this checkpoint is, and the session table at that point.
///
/// ```text
///   +----------------------+------------------------------------------+
///   | "concord-ckpt" 0x01  | postcard(CheckpointRecord { meta, sessions }) |
///   +----------------------+------------------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckpointRecord<O> {
    pub meta: SnapshotMeta,
    pub sessions: Sessions<O>,
}

const CHECKPOINT_MAGIC: &[u8] = b"concord-ckpt\x01";

impl<O: Serialize + serde::de::DeserializeOwned> CheckpointRecord<O> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, CHECKPOINT_MAGIC.to_vec()).expect("checkpoint records serialise")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes.strip_prefix(CHECKPOINT_MAGIC).ok_or_else(|| {
            format!(
                "the state machine's checkpoint record ({} bytes) lacks the Raft checkpoint header",
                bytes.len()
            )
        })?;
        postcard::from_bytes(body)
            .map_err(|e| format!("the state machine's checkpoint record does not decode: {e}"))
    }
}

/// The latest snapshot.
#[derive(Clone, Debug)]
pub(crate) struct StoredSnapshot {
    pub meta: SnapshotMeta,
    /// The encoded [`SnapshotData`] stored under the snapshot's data key, and sent to followers.
    /// For a durable machine its `machine` part is empty: the machine holds its state itself, and
    /// followers are sent the machine's export instead.
    pub data: Vec<u8>,
}

impl StoredSnapshot {
    pub(crate) fn new(meta: SnapshotMeta, data: Vec<u8>) -> StoredSnapshot {
        StoredSnapshot { meta, data }
    }
}

/// A snapshot being received, chunk by chunk.
#[derive(Clone, Debug)]
pub(crate) struct IncomingSnapshot {
    pub meta: SnapshotMeta,
    /// The bytes so far – for an in-memory machine; a durable machine imports them as they come.
    pub data: Vec<u8>,
    pub received: u64,
}

/// What `RaftNode::boot` recovered from Raft's own disk, to reconcile with a durable machine.
pub(crate) struct DurableBoot<'a, C, O> {
    pub log: &'a mut crate::log::RaftLog<C>,
    pub configs: &'a mut ConfigHistory,
    pub sessions: &'a mut Sessions<O>,
    pub snapshot: &'a mut Option<StoredSnapshot>,
    /// Writes to emit at start.
    pub cleanup: &'a mut Vec<StorageOp>,
}

impl<C, O> DurableBoot<'_, C, O>
where
    C: Clone + Serialize + serde::de::DeserializeOwned,
    O: Clone + Serialize + serde::de::DeserializeOwned,
{
    /// The machine reopened in its last checkpoint, which is at or past Raft's snapshot: make it the
    /// snapshot. `wal_machine` is the machine part of Raft's snapshot record (empty unless the
    /// record predates the durable machine).
    pub(crate) fn reconcile<S>(self, machine: &mut S, wal_machine: Vec<u8>) -> Result<(), RecoveryError>
    where
        S: StateMachine<Command = C, Output = O>,
    {
        let checkpoint = match machine.checkpoint_sidecar() {
            Some(bytes) => Some(CheckpointRecord::<O>::decode(&bytes).map_err(corrupt_machine)?),
            None => None,
        };
        let raft_index = self.log.snapshot_index();
        match checkpoint {
            None if raft_index > 0 && !wal_machine.is_empty() => self.upgrade(machine, &wal_machine),
            None if raft_index > 0 => Err(RecoveryError::StateMachine(
                format!(
                    "the Raft log is compacted up to index {raft_index}, but the state machine has no \
                 checkpoint: its storage is missing or belongs to another node"
                )
                .into(),
            )),
            None => Ok(()),
            Some(c) if c.meta.index < raft_index => Err(RecoveryError::StateMachine(
                format!(
                "the state machine's checkpoint is at index {}, older than Raft's snapshot at {raft_index}: \
                 the entries between were compacted away (was its storage replaced by an older copy?)",
                c.meta.index
            )
                .into(),
            )),
            Some(c) => {
                let data = SnapshotData::sessions_only(c.sessions.clone());
                if c.meta.index > raft_index {
                    let ops = resume_from_checkpoint(self.log, self.configs, &c.meta, &data, raft_index);
                    self.cleanup.extend(ops);
                }
                *self.sessions = c.sessions;
                *self.snapshot = Some(StoredSnapshot::new(c.meta, data));
                Ok(())
            }
        }
    }

    /// A data directory from before the machine was durable: Raft's snapshot holds the machine's
    /// bytes and the machine is empty. Load them into the machine and checkpoint it there, then
    /// rewrite Raft's record without them – as if the snapshot had been taken by this build.
    fn upgrade<S>(self, machine: &mut S, wal_machine: &[u8]) -> Result<(), RecoveryError>
    where
        S: StateMachine<Command = C, Output = O>,
    {
        let stored = self.snapshot.as_mut().expect("a compacted log has a snapshot");
        machine.restore(wal_machine).map_err(RecoveryError::StateMachine)?;
        let record = CheckpointRecord { meta: stored.meta.clone(), sessions: self.sessions.clone() };
        machine.checkpoint(record.encode()).map_err(RecoveryError::StateMachine)?;
        let data = SnapshotData::sessions_only(self.sessions.clone());
        self.cleanup.extend(storage::put_snapshot(&stored.meta, data.clone()));
        stored.data = data;
        Ok(())
    }
}

/// Boot with a durable machine whose checkpoint (`meta`) is past Raft's snapshot at `raft_index`: a
/// crash came between the machine's checkpoint and Raft's record of it. Make the checkpoint the
/// snapshot – in memory now, and on disk through the returned writes, emitted at start – exactly as
/// taking (or installing) it would have: keep the log after it if the log holds its last entry,
/// else drop the log (an install that replaced a conflicting log).
fn resume_from_checkpoint<C: Clone + Serialize + serde::de::DeserializeOwned>(
    log: &mut crate::log::RaftLog<C>,
    configs: &mut ConfigHistory,
    meta: &SnapshotMeta,
    data: &[u8],
    raft_index: u64,
) -> Vec<StorageOp> {
    let mut ops = Vec::new();
    if log.term_at(meta.index) == Some(meta.term) {
        log.compact_to(meta.index, meta.term);
        configs.compact_to(meta.index);
    } else {
        log.reset_to(meta.index, meta.term);
        *configs = ConfigHistory::new(meta.index, meta.membership.clone());
        ops.push(storage::delete_log_range(meta.index + 1, u64::MAX));
    }
    ops.extend(storage::put_snapshot(meta, data.to_vec()));
    ops.push(storage::delete_log_range(0, meta.index + 1));
    if raft_index > 0 {
        ops.push(storage::delete_snapshot(raft_index));
    }
    ops
}

impl<S: StateMachine> RaftNode<S> {
    /// Take a snapshot at `applied_index` if enough entries accumulated.
    pub(crate) fn maybe_snapshot(&mut self, io: &mut Io<'_, Self>) {
        let threshold = self.config.snapshot_threshold_entries;
        let pending = self.applied_index - self.snapshot_index();
        if threshold == 0 || pending < threshold {
            return;
        }
        if self.config.defer_snapshots_while_sending
            && self.sending_snapshot()
            && pending < threshold.saturating_mul(4)
        {
            return;
        }
        let index = self.applied_index;
        let term = self.log.term_at(index).expect("applied entries are held");
        let meta = SnapshotMeta { index, term, membership: self.configs.at(index).clone() };
        let data = if self.sm.is_durable() {
            self.checkpoint_machine(&meta);
            SnapshotData::sessions_only(self.sessions.clone())
        } else {
            SnapshotData { sessions: self.sessions.clone(), machine: self.sm.snapshot() }.encode()
        };
        // The log keeps a catch-up tail below the snapshot (never less than it already holds).
        let keep = index.saturating_sub(self.config.snapshot_catchup_entries).max(self.log.snapshot_index());
        let keep_term = self.log.term_at(keep).expect("the log holds everything from its start");
        self.write_snapshot(io, meta.clone(), data.clone(), false, keep);
        self.log.compact_to(keep, keep_term);
        self.configs.compact_to(keep);
        io.event("snapshot-taken", json!({ "index": index, "term": term, "bytes": data.len() }));
        self.snapshot = Some(StoredSnapshot::new(meta, data));
    }

    /// Leader: is some follower being sent a snapshot?
    fn sending_snapshot(&self) -> bool {
        let Role::Leader(ls) = &self.role else { return false };
        ls.progress.values().any(|pr| matches!(pr.state, ProgressState::Snapshot { .. }))
    }

    /// Durable machine: commit its state at `meta.index` with the session table. It must be durable
    /// before Raft's own snapshot record, which lets the log below it go.
    fn checkpoint_machine(&mut self, meta: &SnapshotMeta) {
        let record = CheckpointRecord { meta: meta.clone(), sessions: self.sessions.clone() };
        if let Err(why) = self.sm.checkpoint(record.encode()) {
            // Like a failed WAL sync: what is on disk is unknown, so the only safe state is the one a
            // restart reads back. Nothing that depends on this checkpoint was written or sent.
            panic!(
                "the state machine failed to checkpoint at index {}: {why}; stopping the node",
                meta.index
            );
        }
    }

    /// Write a snapshot durably, then delete what it replaces: the previous snapshot, and the log
    /// up to `keep` (at most the snapshot's index). With `discard_log`, the log records above it are
    /// stale and are deleted first (they are not committed, see `install_snapshot`).
    fn write_snapshot(
        &mut self,
        io: &mut Io<'_, Self>,
        meta: SnapshotMeta,
        data: Vec<u8>,
        discard_log: bool,
        keep: u64,
    ) {
        let index = meta.index;
        if discard_log {
            self.persist(io, storage::delete_log_range(index + 1, u64::MAX));
        }
        for op in storage::put_snapshot(&meta, data) {
            self.persist(io, op);
        }
        self.flush(io);
        // Only now may the replaced state go.
        self.persist(io, storage::delete_log_range(0, keep.min(index) + 1));
        if let Some(old) = &self.snapshot {
            if old.meta.index != index {
                let op = storage::delete_snapshot(old.meta.index);
                self.persist(io, op);
            }
        }
    }

    /// Leader: send the chunk `peer` expects next.
    pub(crate) fn send_snapshot_chunk(&mut self, io: &mut Io<'_, Self>, peer: NodeId) {
        let (term, round) = (self.term, self.current_round());
        let Some(snapshot) = &self.snapshot else { return };
        let meta = snapshot.meta.clone();
        let Role::Leader(ls) = &mut self.role else { return };
        let Some(pr) = ls.progress.get_mut(&peer) else { return };
        let ProgressState::Snapshot { index, next_offset, .. } = &mut pr.state else { return };
        if *index != meta.index {
            // A newer snapshot replaced the one being sent: start over with it.
            *index = meta.index;
            *next_offset = 0;
        }
        let next_offset = *next_offset;
        let Some((offset, data, total_bytes)) = self.snapshot_bytes(next_offset) else {
            // A durable machine is still writing its export: the next heartbeat tick asks again.
            return;
        };
        let done = offset + data.len() as u64 == total_bytes;
        let chunk = SnapshotChunk { term, meta, offset, data, total_bytes, done, round };
        self.send(io, peer, Message::Snapshot(chunk));
    }

    /// The piece of the current snapshot's transfer bytes from `offset` (at most a chunk), its
    /// offset and the total: from memory, or from a durable machine's export (`None` while the
    /// machine prepares it).
    fn snapshot_bytes(&mut self, offset: u64) -> Option<(u64, Vec<u8>, u64)> {
        let chunk = self.config.snapshot_chunk_bytes as u64;
        if !self.sm.is_durable() {
            let bytes = &self.snapshot.as_ref()?.data;
            let total = bytes.len() as u64;
            let start = offset.min(total);
            let end = (start + chunk).min(total);
            return Some((start, bytes[start as usize..end as usize].to_vec(), total));
        }
        // A read error of the export file is a disk failure, like a failed WAL sync: stop.
        let fatal =
            |why: String| -> ! { panic!("the state machine's export failed: {why}; stopping the node") };
        let total = self.sm.export_len().unwrap_or_else(|e| fatal(e.to_string()))?;
        let start = offset.min(total);
        let len = (total - start).min(chunk) as usize;
        let data = self.sm.export_read(start, len).unwrap_or_else(|e| fatal(e.to_string()));
        if data.len() != len {
            fatal(format!("asked for {len} bytes at offset {start} of {total}, got {}", data.len()));
        }
        Some((start, data, total))
    }

    /// Leader: a follower answered a chunk.
    pub(crate) fn handle_snapshot_response(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        resp: SnapshotResponse,
    ) {
        let Role::Leader(ls) = &mut self.role else { return };
        let Some(pr) = ls.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(resp.round);
        if resp.installed {
            pr.match_index = pr.match_index.max(resp.snapshot_index);
            if matches!(pr.state, ProgressState::Snapshot { .. }) {
                pr.become_probe();
            }
            io.event("snapshot-installed-on", json!({ "peer": from.0, "index": resp.snapshot_index }));
            self.maybe_commit(io);
            self.serve_reads(io);
            if self.is_leader() {
                self.maybe_send(io, from);
            }
            return;
        }
        let mut resend = false;
        if let ProgressState::Snapshot { index, next_offset, idle_ticks } = &mut pr.state {
            if *index == resp.snapshot_index {
                *next_offset = resp.next_offset;
                *idle_ticks = 0;
                resend = true;
            }
        }
        self.serve_reads(io);
        if resend {
            self.send_snapshot_chunk(io, from);
        }
    }

    /// Follower: one chunk of InstallSnapshot (Figure 13).
    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        chunk: SnapshotChunk,
    ) {
        self.note_leader(io, from);
        let reply = |node: &Self, next_offset: u64, installed: bool| {
            Message::SnapshotResp(SnapshotResponse {
                term: node.term,
                snapshot_index: chunk.meta.index,
                next_offset,
                installed,
                round: chunk.round,
            })
        };
        if chunk.meta.index <= self.commit_index {
            // We already hold everything it covers (committed entries match the leader's).
            let msg = reply(self, chunk.total_bytes, true);
            return self.send(io, from, msg);
        }
        if chunk.offset == 0 {
            let meta = chunk.meta.clone();
            self.incoming_snapshot = Some(IncomingSnapshot { meta, data: Vec::new(), received: 0 });
        }
        let expected = match &self.incoming_snapshot {
            Some(inc) if inc.meta == chunk.meta => inc.received,
            _ => 0,
        };
        if chunk.offset != expected || chunk.offset + chunk.data.len() as u64 > chunk.total_bytes {
            let msg = reply(self, expected, false);
            return self.send(io, from, msg);
        }
        // A durable machine keeps the pieces itself; an in-memory one's are collected here.
        let durable = self.sm.is_durable();
        if durable {
            if let Err(why) = self.sm.import_chunk(chunk.offset, &chunk.data) {
                // The machine could not spool it (a disk error): start over later.
                io.event("snapshot-rejected", json!({ "reason": why.to_string() }));
                self.incoming_snapshot = None;
                let msg = reply(self, 0, false);
                return self.send(io, from, msg);
            }
        }
        let inc = self.incoming_snapshot.as_mut().expect("set above when offset is 0, else matched");
        if !durable {
            inc.data.extend_from_slice(&chunk.data);
        }
        inc.received += chunk.data.len() as u64;
        if !chunk.done {
            let received = inc.received;
            let msg = reply(self, received, false);
            return self.send(io, from, msg);
        }
        let inc = self.incoming_snapshot.take().expect("present");
        match self.install_snapshot(io, inc.meta, inc.data) {
            Ok(()) => {
                let msg = reply(self, chunk.total_bytes, true);
                self.send(io, from, msg);
                // Follower reads may wait for an index the snapshot covers.
                self.serve_reads(io);
            }
            Err(why) => {
                io.event("snapshot-rejected", json!({ "reason": why }));
                let msg = reply(self, 0, false);
                self.send(io, from, msg);
            }
        }
    }

    /// Replace our state with a received snapshot (Figure 13 steps 5–8).
    fn install_snapshot(
        &mut self,
        io: &mut Io<'_, Self>,
        meta: SnapshotMeta,
        data: Vec<u8>,
    ) -> Result<(), String> {
        assert!(meta.index > self.commit_index);
        let data = if self.sm.is_durable() {
            // The machine received its export piece by piece; installing it checkpoints it with the
            // sender's record (this snapshot's meta and session table). Raft's own record keeps
            // only the sessions.
            self.sm.import_finish().map_err(|e| e.to_string())?;
            let sidecar = self
                .sm
                .checkpoint_sidecar()
                .ok_or("the machine imported a snapshot without a checkpoint record")?;
            let record = CheckpointRecord::<S::Output>::decode(&sidecar)?;
            if record.meta != meta {
                // The machine now holds another snapshot than the one announced: nothing can be
                // trusted about its state.
                panic!(
                    "installed a snapshot export of index {} announced as index {}",
                    record.meta.index, meta.index
                );
            }
            self.sessions = record.sessions;
            SnapshotData::sessions_only(self.sessions.clone())
        } else {
            let decoded = SnapshotData::<S::Output>::decode(&data)?;
            self.sm.restore(&decoded.machine).map_err(|e| e.to_string())?;
            self.sessions = decoded.sessions;
            data
        };
        let keep_suffix = self.log.term_at(meta.index) == Some(meta.term);
        self.write_snapshot(io, meta.clone(), data.clone(), !keep_suffix, meta.index);
        if keep_suffix {
            self.log.compact_to(meta.index, meta.term);
            self.configs.compact_to(meta.index);
        } else {
            self.log.reset_to(meta.index, meta.term);
            self.configs = ConfigHistory::new(meta.index, meta.membership.clone());
        }
        self.commit_index = meta.index;
        self.applied_index = meta.index;
        io.event("snapshot-installed", json!({ "index": meta.index, "term": meta.term }));
        self.snapshot = Some(StoredSnapshot::new(meta, data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Session;
    use concord_core::ClientId;

    fn sample() -> SnapshotData<String> {
        let mut sessions = Sessions::default();
        sessions.record(Session { client: ClientId(9), seq: 4 }, "ok".to_string());
        SnapshotData { sessions, machine: (0..=255u8).cycle().take(4096).collect() }
    }

    #[test]
    fn snapshot_data_round_trips_and_keeps_bytes_as_bytes() {
        let data = sample();
        let encoded = data.encode();
        assert_eq!(SnapshotData::<String>::decode(&encoded).unwrap(), data);
        // Header + varint length + the machine's bytes + a small session table: no inflation.
        assert!(encoded.len() < data.machine.len() + 64, "{} bytes", encoded.len());
        let json = serde_json::to_vec(&data).unwrap();
        assert!(json.len() > 3 * data.machine.len(), "JSON spells bytes as numbers ({} bytes)", json.len());
    }

    #[test]
    fn snapshots_in_the_old_json_format_still_decode() {
        let data = sample();
        let json = serde_json::to_vec(&data).unwrap();
        assert_eq!(SnapshotData::<String>::decode(&json).unwrap(), data);
    }

    #[test]
    fn damaged_snapshot_bytes_are_a_precise_error() {
        let err = SnapshotData::<String>::decode(b"\x00\x01garbage").unwrap_err();
        assert!(err.contains("neither the snapshot header nor JSON"), "{err}");
        let mut truncated = sample().encode();
        truncated.truncate(truncated.len() - 10);
        let err = SnapshotData::<String>::decode(&truncated).unwrap_err();
        assert!(err.starts_with("snapshot does not decode"), "{err}");
    }
}

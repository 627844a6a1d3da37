//! What a Paxos node keeps on disk, and how it recovers.
//!
//! *Paxos Made Simple* §2.2: "an acceptor must remember [its promise and the proposal it
//! accepted] even if it fails and then restarts" – and it must remember them *before* it answers,
//! so every promise and acceptance is synced before its message leaves (`node.rs`, `send`).
//!
//! ## Key layout (numbers zero-padded, so keys sort as ballots and slots do)
//!
//! | key | record | written by |
//! |---|---|---|
//! | `paxos/promised/<round>.<leader>` | the promised ballot | acceptor, phase 1b |
//! | `paxos/accepted/<slot>/<round>.<leader>` | a pvalue ⟨slot, ballot, value⟩ | acceptor, phase 2b |
//! | `paxos/decided/<slot>` | ⟨ballot, value⟩ chosen in the slot | learner |
//! | `paxos/snapshot/<slot>` | machine + sessions after applying every slot up to `slot` | replica |
//!
//! Records are framed as Raft's are (CRC-32, format byte, postcard: `concord_raft::storage`).
//! **Nothing durable is overwritten in place.** A new promise or acceptance goes under a new key
//! (its ballot is in the key), and only *after* it are the older keys deleted, in the same ordered
//! batch. A crash with torn writes keeps a prefix of the unsynced writes: either the new record is
//! whole (and the older ones may be gone), or it is torn and the older ones are all still there. A
//! torn record fails its checksum and is skipped – it was never synced, so never acknowledged.
//! (Overwriting `promised` in place would let a torn write destroy a promise already sent.)

use crate::ballot::Ballot;
use crate::message::PValue;
use concord_core::{Durable, StorageOp};
use concord_raft::storage::{decode, encode, RecordError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

pub const PROMISED_PREFIX: &str = "paxos/promised/";
pub const ACCEPTED_PREFIX: &str = "paxos/accepted/";
pub const DECIDED_PREFIX: &str = "paxos/decided/";
pub const SNAPSHOT_PREFIX: &str = "paxos/snapshot/";

fn ballot_part(b: Ballot) -> String {
    format!("{:020}.{:010}", b.round, b.leader.0)
}

pub fn promised_key(b: Ballot) -> String {
    format!("{PROMISED_PREFIX}{}", ballot_part(b))
}

pub fn accepted_key(slot: u64, b: Ballot) -> String {
    format!("{ACCEPTED_PREFIX}{slot:020}/{}", ballot_part(b))
}

pub fn decided_key(slot: u64) -> String {
    format!("{DECIDED_PREFIX}{slot:020}")
}

pub fn snapshot_key(slot: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{slot:020}")
}

/// Promise `b`: the new record, then the older promises.
pub fn put_promise(b: Ballot) -> [StorageOp; 2] {
    [
        StorageOp::Put { key: promised_key(b), value: encode(&b) },
        StorageOp::DeleteRange { start: PROMISED_PREFIX.to_string(), end: promised_key(b) },
    ]
}

/// Accept a pvalue: the new record, then older ballots' records for the same slot.
pub fn put_accepted<V: Serialize>(pv: &PValue<V>) -> [StorageOp; 2] {
    [
        StorageOp::Put { key: accepted_key(pv.slot, pv.ballot), value: encode(pv) },
        StorageOp::DeleteRange {
            start: accepted_key(pv.slot, Ballot::ZERO),
            end: accepted_key(pv.slot, pv.ballot),
        },
    ]
}

pub fn put_decided<V: Serialize>(slot: u64, ballot: Ballot, value: &V) -> StorageOp {
    StorageOp::Put { key: decided_key(slot), value: encode(&(ballot, value)) }
}

/// Write a snapshot at `slot`, then drop what it replaces: older snapshots, decided and accepted
/// records of slots up to `slot`.
pub fn put_snapshot(slot: u64, data: &[u8]) -> [StorageOp; 4] {
    [
        StorageOp::Put { key: snapshot_key(slot), value: encode(&(slot, data)) },
        StorageOp::DeleteRange { start: SNAPSHOT_PREFIX.to_string(), end: snapshot_key(slot) },
        StorageOp::DeleteRange { start: DECIDED_PREFIX.to_string(), end: decided_key(slot + 1) },
        StorageOp::DeleteRange {
            start: ACCEPTED_PREFIX.to_string(),
            end: accepted_key(slot + 1, Ballot::ZERO),
        },
    ]
}

/// What a node finds on its disk.
#[derive(Debug)]
pub struct Recovered<V> {
    pub promised: Ballot,
    /// slot → the highest-ballot accepted value (slots above the snapshot).
    pub accepted: BTreeMap<u64, (Ballot, V)>,
    /// slot → (ballot, value) chosen (slots above the snapshot).
    pub decided: BTreeMap<u64, (Ballot, V)>,
    /// The newest whole snapshot: its slot and data.
    pub snapshot: Option<(u64, Vec<u8>)>,
}

/// A record that is whole but unreadable: never a torn write, so never silently dropped.
fn read<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<Option<T>, String> {
    match decode::<T>(bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.may_be_torn() => Ok(None),
        Err(RecordError::UnknownFormat(f)) => Err(format!("{key}: unknown record format {f}")),
        Err(e) => Err(format!("{key}: {e}")),
    }
}

/// Read the disk back. Torn records are skipped (see the module docs); whole records that do not
/// decode are an error.
pub fn recover<V: DeserializeOwned>(durable: &Durable) -> Result<Recovered<V>, String> {
    let mut snapshot: Option<(u64, Vec<u8>)> = None;
    for (key, bytes) in durable.scan_prefix(SNAPSHOT_PREFIX) {
        if let Some((slot, data)) = read::<(u64, Vec<u8>)>(key, bytes)? {
            if snapshot.as_ref().is_none_or(|(s, _)| slot > *s) {
                snapshot = Some((slot, data));
            }
        }
    }
    let base = snapshot.as_ref().map_or(0, |(s, _)| *s);
    let mut promised = Ballot::ZERO;
    for (key, bytes) in durable.scan_prefix(PROMISED_PREFIX) {
        if let Some(b) = read::<Ballot>(key, bytes)? {
            promised = promised.max(b);
        }
    }
    let mut accepted: BTreeMap<u64, (Ballot, V)> = BTreeMap::new();
    for (key, bytes) in durable.scan_prefix(ACCEPTED_PREFIX) {
        if let Some(pv) = read::<PValue<V>>(key, bytes)? {
            promised = promised.max(pv.ballot);
            if pv.slot > base && accepted.get(&pv.slot).is_none_or(|(b, _)| pv.ballot > *b) {
                accepted.insert(pv.slot, (pv.ballot, pv.value));
            }
        }
    }
    let mut decided = BTreeMap::new();
    for (key, bytes) in durable.scan_prefix(DECIDED_PREFIX) {
        let slot: u64 = key[DECIDED_PREFIX.len()..].parse().map_err(|_| format!("bad key {key}"))?;
        if slot > base {
            if let Some(entry) = read::<(Ballot, V)>(key, bytes)? {
                decided.insert(slot, entry);
            }
        }
    }
    Ok(Recovered { promised, accepted, decided, snapshot })
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::NodeId;

    fn apply(d: &mut Durable, ops: impl IntoIterator<Item = StorageOp>) {
        for op in ops {
            d.apply(&op);
        }
    }

    #[test]
    fn newer_records_replace_older_ones_and_torn_ones_are_skipped() {
        let b = |r| Ballot::new(r, NodeId(1));
        let mut d = Durable::new();
        apply(&mut d, put_promise(b(2)));
        apply(&mut d, put_promise(b(5)));
        apply(&mut d, put_accepted(&PValue { slot: 3, ballot: b(4), value: "x".to_string() }));
        apply(&mut d, put_accepted(&PValue { slot: 3, ballot: b(5), value: "y".to_string() }));
        apply(&mut d, [put_decided(1, b(1), &"a".to_string())]);
        assert_eq!(d.scan_prefix(PROMISED_PREFIX).count(), 1);
        assert_eq!(d.scan_prefix(ACCEPTED_PREFIX).count(), 1);
        // A torn promise of 9: the whole promise of 5 still counts.
        let mut torn = encode(&b(9));
        torn.truncate(3);
        d.apply(&StorageOp::Put { key: promised_key(b(9)), value: torn });
        let r = recover::<String>(&d).unwrap();
        assert_eq!(r.promised, b(5));
        assert_eq!(r.accepted[&3], (b(5), "y".to_string()));
        assert_eq!(r.decided[&1], (b(1), "a".to_string()));
        // A snapshot at 3 drops what it covers.
        apply(&mut d, put_snapshot(3, b"state"));
        let r = recover::<String>(&d).unwrap();
        assert_eq!(r.snapshot, Some((3, b"state".to_vec())));
        assert!(r.accepted.is_empty() && r.decided.is_empty());
        assert_eq!(r.promised, b(5), "the promise outlives compaction");
    }
}

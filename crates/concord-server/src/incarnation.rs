//! Incarnations: telling a node from a node that lost everything and came back under its old id.
//!
//! Raft's safety assumes a node never forgets what it synced – its term, its vote, the entries it
//! acknowledged. A data directory wiped *whole* (identity file included) and started again under
//! its old `--id` boots as a brand-new node: term 0, no vote, an empty log. It would grant its vote
//! to any candidate, and so help elect a leader that misses committed writes, or vote twice in one
//! term. Nothing in the directory can show this – it is gone – so the node's **peers** remember:
//!
//! * every data directory has an **incarnation**, 128 random bits created with `identity.json`
//!   and kept in it ([`crate::identity`]): a directory made again gets a new one;
//! * the peer handshake carries each side's incarnation, inside what the HMAC proofs cover
//!   ([`crate::transport`], wire version 3), so it cannot be forged without the cluster secret;
//! * every node keeps, in `DATA/peer-incarnations.json`, the incarnation it has seen for each peer
//!   id ([`PeerBook`]), trusting the first one it sees (TOFU) and syncing the file before it relies
//!   on it;
//! * a peer that presents **another incarnation for an id that is a voter here** is refused, on
//!   both sides of the handshake: it can neither vote, nor ask for votes, nor append. The refusing
//!   node logs (rate-limited) which node and what to do – `concord member rebuild` – and the
//!   refused node logs that its peers know its id under another incarnation;
//! * an id that is **not a voter here** (removed, or re-added as a learner) may come back under a
//!   new incarnation, which replaces the old record: that is how `concord member remove` followed
//!   by a re-add (or `concord member rebuild`, which does both) brings a wiped node back. A learner
//!   has no vote and is promoted only once it holds everything committed. Removed ids are also
//!   forgotten as soon as the removal is seen ([`PeerBook::set_membership`]).
//!
//! **The wiped node's own side.** Its own book is gone with the rest, so it trusts whoever it meets
//! first; it cannot prove it is the same incarnation, because it is not. So a node takes part in
//! elections – grants votes, counts vote answers – only once a **majority of the voters** (itself
//! included, if it is one) has accepted its incarnation in a handshake this life
//! ([`PeerBook::may_vote`], enforced by [`VoteGate`]). Peers that knew the old incarnation refuse
//! it, so a wiped node never reaches that majority, even when it meets a peer that never knew it
//! (one that joined while it was down). A new cluster, a restarted node, a node added by
//! `concord join`: their peers accept them at first contact, and they vote as before.
//!
//! **Limits.** Trust on first use: a peer that never saw the old incarnation accepts the new one
//! (the majority rule above keeps that from electing anyone). A peer that was down while an id was
//! removed, re-added *and* promoted, and catches up all three at once, still holds the old record
//! for a voter and refuses the new node: `concord member rebuild` run again (it removes and
//! re-adds the id) clears it. The eventual mode has no votes: it records incarnations but never
//! refuses one. The sharded mode is guarded like the strong mode: its voters are the metadata
//! group's (every node that may hold a replica), and [`VoteGate`] drops the election messages
//! inside a sharded frame's batch – any group's – while the node may not vote.

use crate::error::Error;
use crate::transport::Inbound;
use crate::wire::Frame;
use concord_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file, in the data directory, that remembers each peer's incarnation.
pub const FILE: &str = "peer-incarnations.json";

/// One life of a data directory: 128 random bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub [u8; 16]);

impl Incarnation {
    /// A fresh one from the OS's random source.
    pub fn random() -> Incarnation {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the OS random source works");
        Incarnation(bytes)
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Read 32 hex digits back; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Incarnation> {
        let text = text.trim();
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Incarnation(bytes))
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A peer presented another incarnation than the one recorded for a voter: the refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub peer: NodeId,
    pub known: Incarnation,
    pub presented: Incarnation,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.peer.0;
        write!(
            f,
            "{peer} presented incarnation {presented}, but this node knows {peer}, a voter, as incarnation \
             {known}: {peer}'s data directory was wiped or replaced, so it forgot its term, its vote and the \
             entries it acknowledged. It is refused (it can neither vote, nor ask for votes, nor append) \
             until it is rebuilt from its peers: stop it, then on its machine run `concord member rebuild \
             --via <HTTP address of another member>` with the flags node {id} is served with (its --id {id}, \
             --data, addresses, --peer list and cluster secret) – see docs/operations.md, \"Repair\"",
            peer = self.peer,
            presented = self.presented,
            known = self.known,
        )
    }
}

/// What this node knows of its peers' incarnations, and who has accepted its own (see the module
/// docs). Shared by the transport (both sides of every handshake) and the [`VoteGate`].
#[derive(Debug)]
pub struct PeerBook {
    /// `None`: not persisted (tests, in-memory nodes).
    path: Option<PathBuf>,
    me: NodeId,
    /// Whether a mismatch is refused at all (the strong mode: Raft has votes to protect).
    enforce: bool,
    state: Mutex<BookState>,
}

#[derive(Debug, Default)]
struct BookState {
    known: BTreeMap<u32, Incarnation>,
    voters: BTreeSet<NodeId>,
    members: BTreeSet<NodeId>,
    /// Peers whose acceptor accepted this node's incarnation (a dial that was welcomed), this life.
    accepted_us: BTreeSet<NodeId>,
}

impl PeerBook {
    /// Open (or start) the book in `dir`. `enforce` refuses mismatched voters (the strong mode).
    pub fn open(dir: &Path, me: NodeId, enforce: bool) -> Result<PeerBook, Error> {
        let path = dir.join(FILE);
        let known = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|why| {
                Error::Storage(format!(
                    "{} is damaged ({why}): it holds the incarnation this node has seen for each peer. \
                     Move it aside to start over (every peer is then trusted again on first contact)",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::Storage(format!("cannot read {}: {e}", path.display()))),
        };
        let state = Mutex::new(BookState { known, ..BookState::default() });
        Ok(PeerBook { path: Some(path), me, enforce, state })
    }

    /// A book that lives in memory only (tests; nodes without a data directory of their own).
    pub fn in_memory(me: NodeId, enforce: bool) -> PeerBook {
        PeerBook { path: None, me, enforce, state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The membership as this node sees it now. Ids that left it are forgotten, so they may come
    /// back under a new incarnation.
    pub fn set_membership(
        &self,
        voters: &BTreeSet<NodeId>,
        learners: &BTreeSet<NodeId>,
    ) -> Result<(), Error> {
        let mut state = self.lock();
        let members: BTreeSet<NodeId> = voters.union(learners).copied().collect();
        let gone: Vec<NodeId> = state.members.difference(&members).copied().collect();
        state.voters = voters.clone();
        state.members = members;
        let mut changed = false;
        for id in gone {
            if state.known.remove(&id.0).is_some() {
                tracing::info!("{id} left the membership: its recorded incarnation is forgotten");
                changed = true;
            }
        }
        if changed {
            self.save(&state.known)?;
        }
        Ok(())
    }

    /// `peer` presents `presented` in an authenticated handshake: accept it (recording it, durably,
    /// when it is new) or refuse it (another incarnation for a voter, when enforcing).
    pub fn check(&self, peer: NodeId, presented: Incarnation) -> Result<(), CheckError> {
        let mut state = self.lock();
        match state.known.get(&peer.0).copied() {
            Some(known) if known == presented => return Ok(()),
            Some(known) if self.enforce && state.voters.contains(&peer) => {
                return Err(CheckError::Stale(Stale { peer, known, presented }))
            }
            Some(known) => {
                tracing::info!(
                    "{peer} (not a voter here) comes back as incarnation {presented} (was {known}): recorded"
                );
            }
            None => tracing::info!("{peer} is incarnation {presented}: recorded (first contact)"),
        }
        let mut next = state.known.clone();
        next.insert(peer.0, presented);
        // Durable before relied on: a restart must not forget whom it has seen.
        self.save(&next).map_err(|e| CheckError::Storage(e.to_string()))?;
        state.known = next;
        Ok(())
    }

    /// The incarnation recorded for `peer`, if any.
    pub fn known(&self, peer: NodeId) -> Option<Incarnation> {
        self.lock().known.get(&peer.0).copied()
    }

    /// `peer` welcomed this node's dial: it accepted this node's incarnation.
    pub fn accepted_us(&self, peer: NodeId) {
        self.lock().accepted_us.insert(peer);
    }

    /// Whether this node may take part in elections: a majority of the voters it knows (itself
    /// included, if it is one) has accepted its incarnation (see the module docs).
    pub fn may_vote(&self) -> bool {
        let state = self.lock();
        let quorum = state.voters.len() / 2 + 1;
        let me = usize::from(state.voters.contains(&self.me));
        let accepted = state.accepted_us.iter().filter(|p| state.voters.contains(p)).count();
        me + accepted >= quorum
    }

    /// How many of the voters have accepted this node, and how many are needed (for messages).
    pub fn vote_standing(&self) -> (usize, usize) {
        let state = self.lock();
        let me = usize::from(state.voters.contains(&self.me));
        let accepted = state.accepted_us.iter().filter(|p| state.voters.contains(p)).count();
        (me + accepted, state.voters.len() / 2 + 1)
    }

    /// Write the book: a temporary file, synced, renamed over the old one, the directory synced.
    fn save(&self, known: &BTreeMap<u32, Incarnation>) -> Result<(), Error> {
        let Some(path) = &self.path else { return Ok(()) };
        use std::io::Write;
        let storage = |e: std::io::Error| Error::Storage(format!("cannot write {}: {e}", path.display()));
        let text: BTreeMap<String, String> =
            known.iter().map(|(id, i)| (id.to_string(), i.to_hex())).collect();
        let bytes = serde_json::to_vec_pretty(&text).expect("a map of strings serialises");
        let temporary = path.with_extension("json.new");
        let mut file = std::fs::File::create(&temporary).map_err(storage)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(storage)?;
        std::fs::rename(&temporary, path).map_err(storage)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(storage)?;
        }
        Ok(())
    }
}

/// Why [`PeerBook::check`] did not accept a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// Another incarnation for a voter.
    Stale(Stale),
    /// The new record could not be made durable: nothing is relied on.
    Storage(String),
}

fn parse(bytes: &[u8]) -> Result<BTreeMap<u32, Incarnation>, String> {
    let text: BTreeMap<String, String> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    text.into_iter()
        .map(|(id, inc)| {
            let id: u32 = id.parse().map_err(|_| format!("{id:?} is not a node id"))?;
            let inc = Incarnation::from_hex(&inc).ok_or_else(|| format!("{inc:?} is not an incarnation"))?;
            Ok((id, inc))
        })
        .collect()
}

/// Drops Raft's election messages – vote and pre-vote requests and their answers – while this
/// node may not vote ([`PeerBook::may_vote`]); everything else (appends, snapshots, heartbeats:
/// how it catches up) passes. Said once in the log, and again when the node may vote.
pub struct VoteGate {
    pub inner: Arc<dyn Inbound>,
    pub book: Arc<PeerBook>,
    warned: std::sync::atomic::AtomicBool,
}

impl VoteGate {
    pub fn new(inner: Arc<dyn Inbound>, book: Arc<PeerBook>) -> VoteGate {
        VoteGate { inner, book, warned: Default::default() }
    }
}

/// Whether a Raft message is part of an election (any group's, any command type).
fn is_election<C>(message: &concord_raft::Message<C>) -> bool {
    use concord_raft::Message;
    matches!(message, Message::PreVote(_) | Message::Vote(_) | Message::PreVoteResp(_) | Message::VoteResp(_))
}

impl VoteGate {
    /// Whether this node may take part in elections now; says so in the log when that changes.
    fn may_vote(&self) -> bool {
        use std::sync::atomic::Ordering;
        if !self.book.may_vote() {
            if !self.warned.swap(true, Ordering::SeqCst) {
                let (have, need) = self.book.vote_standing();
                tracing::warn!(
                    "not taking part in elections yet: {have} of the {need} voters needed have accepted this \
                     node's incarnation (a data directory its peers do not know, if this lasts: see the \
                     peers' logs, and docs/operations.md, \"Repair\")"
                );
            }
            return false;
        }
        if self.warned.swap(false, Ordering::SeqCst) {
            tracing::info!(
                "a majority of the voters accepted this node's incarnation: it takes part in elections"
            );
        }
        true
    }
}

impl Inbound for VoteGate {
    fn deliver(&self, from: NodeId, frame: Frame) {
        use concord_shard::node::{GroupMessage, NodeMessage};
        match frame {
            Frame::Raft(ref message) if is_election(message) && !self.may_vote() => {}
            // The sharded mode: one frame carries many groups' messages; the elections among
            // them are dropped, every group's appends and snapshots still pass.
            Frame::Sharded(NodeMessage::Groups(mut batch)) => {
                let election = |(_, m): &(concord_shard::GroupId, GroupMessage)| match m {
                    GroupMessage::Meta(m) => is_election(m),
                    GroupMessage::Data(m) => is_election(m),
                };
                if batch.messages.iter().any(election) && !self.may_vote() {
                    batch.messages.retain(|m| !election(m));
                    if batch.messages.is_empty() {
                        return; // nothing left to deliver
                    }
                }
                // An empty batch that arrived empty is a liveness beat (quiescence: the host
                // counts every batch as proof its sender is up) and is delivered as it is.
                self.inner.deliver(from, Frame::Sharded(NodeMessage::Groups(batch)));
            }
            frame => self.inner.deliver(from, frame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u32]) -> BTreeSet<NodeId> {
        list.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn incarnations_print_and_parse_as_hex() {
        let i = Incarnation::random();
        assert_eq!(i.to_hex().len(), 32);
        assert_eq!(Incarnation::from_hex(&i.to_hex()), Some(i));
        assert_ne!(Incarnation::random(), i, "128 random bits do not repeat");
        for bad in ["", "xyz", &"0".repeat(31), &"g".repeat(32), &"é".repeat(16)] {
            assert_eq!(Incarnation::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_contact_is_recorded_durably_and_another_incarnation_of_a_voter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Incarnation([1; 16]), Incarnation([2; 16]));
        let book = PeerBook::open(dir.path(), NodeId(1), true).unwrap();
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        book.check(NodeId(3), old).unwrap();
        book.check(NodeId(3), old).unwrap();
        // A restart remembers it: the record was on disk before it was relied on.
        drop(book);
        let book = PeerBook::open(dir.path(), NodeId(1), true).unwrap();
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        assert_eq!(book.known(NodeId(3)), Some(old));
        let err = book.check(NodeId(3), new).unwrap_err();
        let CheckError::Stale(stale) = err else { panic!("{err:?}") };
        assert_eq!(stale, Stale { peer: NodeId(3), known: old, presented: new });
        let text = stale.to_string();
        assert!(text.contains(&old.to_hex()) && text.contains(&new.to_hex()), "{text}");
        assert!(text.contains("concord member rebuild") && text.contains("--id 3"), "{text}");
        assert_eq!(book.known(NodeId(3)), Some(old), "a refusal changes nothing");
    }

    #[test]
    fn a_removed_id_is_forgotten_and_may_come_back_as_a_learner_under_a_new_incarnation() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, newer) = (Incarnation([1; 16]), Incarnation([2; 16]), Incarnation([3; 16]));
        let book = PeerBook::open(dir.path(), NodeId(1), true).unwrap();
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        book.check(NodeId(3), old).unwrap();
        // Removed: forgotten, on disk too.
        book.set_membership(&ids(&[1, 2]), &ids(&[])).unwrap();
        assert_eq!(book.known(NodeId(3)), None);
        assert_eq!(PeerBook::open(dir.path(), NodeId(1), true).unwrap().known(NodeId(3)), None);
        // Re-added as a learner: the new incarnation is recorded; a learner may even change again
        // (a rebuild that was run twice), a voter may not.
        book.set_membership(&ids(&[1, 2]), &ids(&[3])).unwrap();
        book.check(NodeId(3), new).unwrap();
        book.check(NodeId(3), newer).unwrap();
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        book.check(NodeId(3), newer).unwrap();
        assert!(matches!(book.check(NodeId(3), new), Err(CheckError::Stale(_))));
    }

    #[test]
    fn the_eventual_mode_records_but_never_refuses() {
        let book = PeerBook::in_memory(NodeId(1), false);
        book.set_membership(&ids(&[1, 2]), &ids(&[])).unwrap();
        book.check(NodeId(2), Incarnation([1; 16])).unwrap();
        book.check(NodeId(2), Incarnation([2; 16])).unwrap();
        assert_eq!(book.known(NodeId(2)), Some(Incarnation([2; 16])));
    }

    #[test]
    fn a_damaged_book_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{\"3\": \"nonsense\"}").unwrap();
        let err = PeerBook::open(dir.path(), NodeId(1), true).unwrap_err().to_string();
        assert!(err.contains("is damaged") && err.contains("Move it aside"), "{err}");
    }

    /// The sharded mode's frames carry many groups' messages: the gate drops the elections among
    /// them (the metadata group's and every shard's) and passes the rest, until the node may vote.
    #[test]
    fn the_gate_drops_elections_inside_a_sharded_batch_until_the_node_may_vote() {
        use concord_raft::message::{Heartbeat, VoteRequest};
        use concord_raft::Message;
        use concord_shard::node::{GroupMessage, NodeMessage};
        use concord_shard::{Batch, GroupId};
        // Frames are compared by their debug form (a frame is not `PartialEq`).
        #[derive(Default)]
        struct Seen(Mutex<Vec<String>>);
        impl Inbound for Seen {
            fn deliver(&self, _: NodeId, frame: Frame) {
                self.0.lock().unwrap().push(format!("{frame:?}"));
            }
        }
        let vote = VoteRequest { term: 2, last_log_index: 0, last_log_term: 0, transfer: false };
        let beat = Heartbeat { term: 2, leader_commit: 0, round: 1 };
        let batch = |messages: Vec<(u32, GroupMessage)>| {
            Frame::Sharded(NodeMessage::Groups(Batch {
                messages: messages.into_iter().map(|(g, m)| (GroupId(g), m)).collect(),
            }))
        };
        let debug = |frame: Frame| format!("{frame:?}");
        let mixed = || {
            batch(vec![
                (0, GroupMessage::Meta(Message::PreVote(vote.clone()))),
                (1, GroupMessage::Data(Message::Heartbeat(beat.clone()))),
                (2, GroupMessage::Data(Message::Vote(vote.clone()))),
            ])
        };
        let book = Arc::new(PeerBook::in_memory(NodeId(3), true));
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        let seen = Arc::new(Seen::default());
        let gate = VoteGate::new(seen.clone(), book.clone());
        gate.deliver(NodeId(1), mixed());
        gate.deliver(NodeId(1), batch(vec![(2, GroupMessage::Data(Message::Vote(vote.clone())))]));
        let expected = batch(vec![(1, GroupMessage::Data(Message::Heartbeat(beat.clone())))]);
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![debug(expected)],
            "only the heartbeat passes; an all-election batch vanishes"
        );
        book.accepted_us(NodeId(1));
        gate.deliver(NodeId(1), mixed());
        assert_eq!(
            seen.0.lock().unwrap().last(),
            Some(&debug(mixed())),
            "once a majority accepted it, everything passes"
        );
    }

    #[test]
    fn a_node_votes_only_once_a_majority_of_voters_accepted_its_incarnation() {
        let book = PeerBook::in_memory(NodeId(3), true);
        book.set_membership(&ids(&[1, 2, 3]), &ids(&[])).unwrap();
        assert!(!book.may_vote(), "itself alone is not a majority of three");
        assert_eq!(book.vote_standing(), (1, 2));
        book.accepted_us(NodeId(7)); // not a voter: does not count
        assert!(!book.may_vote());
        book.accepted_us(NodeId(1));
        assert!(book.may_vote());
        // Five voters, one of which never knew it (a newcomer): not enough.
        let book = PeerBook::in_memory(NodeId(3), true);
        book.set_membership(&ids(&[1, 2, 3, 4, 5]), &ids(&[])).unwrap();
        book.accepted_us(NodeId(5));
        assert!(!book.may_vote());
        // A single-node cluster votes for itself; a learner never needs to.
        let alone = PeerBook::in_memory(NodeId(1), true);
        alone.set_membership(&ids(&[1]), &ids(&[])).unwrap();
        assert!(alone.may_vote());
    }
}

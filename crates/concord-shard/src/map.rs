//! The shard map: which shard owns each slot, which nodes replicate each shard, which moves are
//! under way – and the only ways it may change.
//!
//! The map lives in the metadata Raft group ([`crate::machine`]); every change is a [`Change`]
//! committed there first, so all nodes see the same sequence of maps. Each change that takes
//! effect increases the **epoch** by exactly one; a change may name the epoch it was planned
//! against (`if_epoch`) and is refused if the map moved on – a rebalancer that planned on an old
//! map cannot undo a newer decision. (Redis Cluster bumps epochs without agreement and can lose
//! writes when two nodes claim a slot; here no epoch exists that the group did not commit.)
//!
//! # Invariants ([`ShardMap::check`])
//! * once bootstrapped, every slot has exactly one owner, and the owner exists;
//! * every shard has at least one voting replica, and no node twice (voters, learners and
//!   leaving replicas together);
//! * a move's range is owned, wholly, by its source; moves never overlap; source ≠ target;
//! * a replacement ([`Change::MoveReplica`]) names a learner of its shard and a voter of it.

use crate::slot::{Slot, SlotRange, SLOTS};
use concord_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A shard: a set of slots replicated by one Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// One shard's replicas. `voters[0]` is where the rebalancer would like the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub voters: Vec<NodeId>,
    /// Replicas catching up before they vote (a replica move: learner → catch up → promote → remove).
    pub learners: Vec<NodeId>,
    /// Replicas the map removed whose removal from the group's own Raft membership is not
    /// confirmed yet ([`Change::ReplicaGone`] forgets them). Their nodes keep the group until then.
    #[serde(default)]
    pub leaving: Vec<NodeId>,
}

impl Shard {
    /// Whether `node` is a voter or a learner of the shard (not a leaving replica).
    pub fn has(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.learners.contains(&node)
    }

    /// Whether `node` must keep running the shard's group: a voter, a learner or leaving.
    pub fn hosts(&self, node: NodeId) -> bool {
        self.has(node) || self.leaving.contains(&node)
    }
}

/// Where a slot range's move stands. The phases only go forward; see the crate docs for the
/// protocol each one belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Decided; the source still serves the range.
    Started,
    /// The source committed a fence at `source_index`: from there on it refuses writes to the range.
    Fenced { source_index: u64 },
    /// The target applied a copy of the range as of the fence, at `target_index`.
    Copied { source_index: u64, target_index: u64 },
}

/// How a move ended in the map, before its groups took their last steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Flipped: the target activates the range, the source releases it.
    Finished,
    /// Given up: the source serves the range again, the target drops what it copied.
    Aborted,
}

/// A move that ended in the map and waits for its groups' last steps ([`Change::Settled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub moved: Move,
    pub outcome: Outcome,
}

/// A slot range on its way from one shard to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub id: u64,
    pub range: SlotRange,
    pub from: ShardId,
    pub to: ShardId,
    pub phase: Phase,
}

/// A change to the map, committed in the metadata group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The first map: one shard per replica set, the slots split evenly in order. Only on an empty map.
    Bootstrap { shards: Vec<Vec<NodeId>> },
    /// A new shard with these voters and no slots.
    AddShard { voters: Vec<NodeId> },
    /// `node` joins `shard` as a learner (it creates the group empty and catches up).
    AddLearner { shard: ShardId, node: NodeId },
    /// A learner of `shard` becomes a voter: recorded once the group's own Raft promoted it (which
    /// it does only for a caught-up learner).
    Promote { shard: ShardId, node: NodeId },
    /// `node` leaves `shard` (a voter or a learner); the last voter cannot leave. The replica
    /// becomes *leaving* until the group's Raft removed it too ([`Change::ReplicaGone`]).
    RemoveReplica { shard: ShardId, node: NodeId },
    /// The group's Raft no longer counts `node`, a leaving replica: the map forgets it, and the
    /// node drops the group and its durable state.
    ReplicaGone { shard: ShardId, node: NodeId },
    /// Ask for `shard`'s leader on `node`, a voter (it becomes `voters[0]`).
    PreferLeader { shard: ShardId, node: NodeId },
    /// `node` joins the cluster's placement: the rebalancer may put replicas on it.
    AddNode { node: NodeId },
    /// Decommission `node`: no new replica goes there, and the rebalancer moves its replicas off.
    RemoveNode { node: NodeId },
    /// Move `shard`'s replica on voter `from` to `to` (an operator's by-hand replica move): `to`
    /// joins as a learner, and the [`Change::Promote`] that makes it a voter also makes `from`
    /// leaving – one change, so the shard keeps its number of voters. Refused while any shard has
    /// a replica move under way (a learner or a leaving replica): one group between
    /// configurations at a time, as the rebalancer keeps it.
    MoveReplica { shard: ShardId, from: NodeId, to: NodeId },
    /// Turn the rebalancer on or off: while on, the metadata leader takes a [`crate::rebalance`]
    /// step every so often (and moves each group's leadership to its preferred voter).
    Rebalance { on: bool },
    /// Start moving `range` to shard `to`.
    StartMove { range: SlotRange, to: ShardId },
    /// The move's source committed its fence.
    Fenced { id: u64, source_index: u64 },
    /// The move's target holds the range as of the fence.
    Copied { id: u64, target_index: u64 },
    /// Flip ownership to the target: only after [`Change::Copied`].
    FinishMove { id: u64 },
    /// Give up a move before it finished: the source serves the range again.
    AbortMove { id: u64 },
    /// Both groups took a finished or aborted move's last step (the target activated or dropped
    /// the range, the source released or thawed it): the map forgets the move.
    Settled { id: u64 },
    /// Remove a shard that owns no slots and takes part in no move (after its slots moved away).
    RemoveShard { shard: ShardId },
}

/// A change with the epoch it was planned against (`None`: whatever the map is now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub if_epoch: Option<u64>,
    pub change: Change,
}

/// Why a change was refused. Nothing in the map changes when one is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MapError {
    #[error("the shard map is at epoch {current}, the change was planned at epoch {planned}")]
    StaleEpoch { planned: u64, current: u64 },
    #[error("the shard map is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("the shard map is not bootstrapped yet")]
    NotBootstrapped,
    #[error("a shard needs at least one replica")]
    NoReplicas,
    #[error("node {0} is named twice")]
    DuplicateNode(NodeId),
    #[error("there are more shards than slots")]
    TooManyShards,
    #[error("no such shard: {0}")]
    NoSuchShard(ShardId),
    #[error("no such move: {0}")]
    NoSuchMove(u64),
    #[error("node {node} already replicates {shard}")]
    AlreadyReplica { shard: ShardId, node: NodeId },
    #[error("node {node} is not a learner of {shard}")]
    NotALearner { shard: ShardId, node: NodeId },
    #[error("node {node} does not replicate {shard}")]
    NotAReplica { shard: ShardId, node: NodeId },
    #[error("node {node} is not leaving {shard}")]
    NotLeaving { shard: ShardId, node: NodeId },
    #[error("node {node} is not a voter of {shard}")]
    NotAVoter { shard: ShardId, node: NodeId },
    #[error("node {node} is still leaving {shard}")]
    StillLeaving { shard: ShardId, node: NodeId },
    #[error("node {0} is already in the placement")]
    AlreadyNode(NodeId),
    #[error("node {0} is not in the placement")]
    NoSuchNode(NodeId),
    #[error("a replica move is already under way in {shard}; wait for it to finish")]
    ReplicaMoveBusy { shard: ShardId },
    #[error("node {node} is the last voter of {shard}")]
    LastVoter { shard: ShardId, node: NodeId },
    #[error("slots {range} are not owned by a single shard")]
    SplitOwnership { range: SlotRange },
    #[error("slots {range} already belong to {shard}")]
    MoveToItself { range: SlotRange, shard: ShardId },
    #[error("slot {slot} is already moving (move {id})")]
    AlreadyMoving { slot: Slot, id: u64 },
    #[error("{shard} still takes part in move {id}")]
    ShardBusy { shard: ShardId, id: u64 },
    #[error("{shard} still owns {slots} slots")]
    ShardNotEmpty { shard: ShardId, slots: usize },
    #[error("move {id} is {phase}, not {wanted}")]
    WrongPhase { id: u64, phase: Stage, wanted: Stage },
    /// [`Change::RemoveNode`] of a node already decommissioned whose replicas are still moving off.
    #[error("node {0} is already leaving: its replicas are being moved off")]
    AlreadyLeaving(NodeId),
}

/// A broken invariant of the shard map (a bug: validated changes never cause one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shard map invariant broken: {0}")]
pub struct MapViolation(pub String);

/// What a committed change did: the new epoch, and the id of what it created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub epoch: u64,
    pub shard: Option<ShardId>,
    pub move_id: Option<u64>,
}

/// The shard map (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    epoch: u64,
    shards: BTreeMap<ShardId, Shard>,
    /// Owner of each slot, by slot number; empty until bootstrapped, then [`SLOTS`] long.
    owners: Vec<ShardId>,
    moves: BTreeMap<u64, Move>,
    /// Moves that ended here but not yet in their groups (see [`Ending`]).
    #[serde(default)]
    endings: BTreeMap<u64, Ending>,
    next_shard: u32,
    next_move: u64,
    /// The nodes replicas may be placed on (the bootstrap's, then [`Change::AddNode`] and
    /// [`Change::RemoveNode`]); replicas on other nodes are moved off by the rebalancer.
    #[serde(default)]
    nodes: std::collections::BTreeSet<NodeId>,
    /// By-hand replica moves under way: the learner that replaces a voter once promoted.
    #[serde(default)]
    replacing: BTreeMap<ShardId, Replacement>,
    /// Whether the rebalancer runs ([`Change::Rebalance`]).
    #[serde(default)]
    rebalance: bool,
}

/// A by-hand replica move ([`Change::MoveReplica`]): `learner` replaces `voter` once promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    pub learner: NodeId,
    pub voter: NodeId,
}

impl Default for ShardMap {
    fn default() -> Self {
        ShardMap {
            epoch: 0,
            shards: BTreeMap::new(),
            owners: Vec::new(),
            moves: BTreeMap::new(),
            endings: BTreeMap::new(),
            next_shard: 1,
            next_move: 1,
            nodes: Default::default(),
            replacing: BTreeMap::new(),
            rebalance: false,
        }
    }
}

/// A [`Phase`] without its indexes, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Started,
    Fenced,
    Copied,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Started => "started",
            Stage::Fenced => "fenced",
            Stage::Copied => "copied",
        })
    }
}

impl Phase {
    pub fn stage(self) -> Stage {
        match self {
            Phase::Started => Stage::Started,
            Phase::Fenced { .. } => Stage::Fenced,
            Phase::Copied { .. } => Stage::Copied,
        }
    }
}

impl ShardMap {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn is_bootstrapped(&self) -> bool {
        !self.owners.is_empty()
    }

    pub fn shards(&self) -> &BTreeMap<ShardId, Shard> {
        &self.shards
    }

    pub fn shard(&self, id: ShardId) -> Option<&Shard> {
        self.shards.get(&id)
    }

    /// The nodes replicas may be placed on, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.iter().copied().collect()
    }

    /// The shards whose group `node` must run (it is a voter, a learner or leaving).
    pub fn hosted_by(&self, node: NodeId) -> Vec<ShardId> {
        self.shards.iter().filter(|(_, s)| s.hosts(node)).map(|(&id, _)| id).collect()
    }

    /// Whether `node` was decommissioned (or never placed) and holds no replica any more.
    pub fn drained(&self, node: NodeId) -> bool {
        !self.nodes.contains(&node) && self.hosted_by(node).is_empty()
    }

    /// Nodes outside the placement that still host a replica (voter, learner or leaving): the
    /// ones being decommissioned, in id order.
    pub fn leaving_nodes(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .shards
            .values()
            .flat_map(|s| s.voters.iter().chain(&s.learners).chain(&s.leaving))
            .copied()
            .filter(|n| !self.nodes.contains(n))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn moves(&self) -> impl Iterator<Item = &Move> {
        self.moves.values()
    }

    /// Whether the rebalancer is on ([`Change::Rebalance`]).
    pub fn rebalancing(&self) -> bool {
        self.rebalance
    }

    /// The by-hand replica move under way in `shard`, if any ([`Change::MoveReplica`]).
    pub fn replacing(&self, shard: ShardId) -> Option<Replacement> {
        self.replacing.get(&shard).copied()
    }

    /// The first shard with a replica move under way (a learner or a leaving replica).
    pub fn replica_move(&self) -> Option<ShardId> {
        self.shards.iter().find(|(_, s)| !s.learners.is_empty() || !s.leaving.is_empty()).map(|(&id, _)| id)
    }

    /// The shard that owns `slot` (`None` before bootstrap: Redis's CLUSTERDOWN).
    pub fn owner(&self, slot: Slot) -> Option<ShardId> {
        self.owners.get(slot.index()).copied()
    }

    /// Moves that ended in the map and wait for their groups' last steps.
    pub fn endings(&self) -> impl Iterator<Item = &Ending> {
        self.endings.values()
    }

    /// The move `slot` is part of, if any.
    pub fn moving(&self, slot: Slot) -> Option<&Move> {
        self.moves.values().find(|m| m.range.contains(slot))
    }

    /// The map as maximal runs of slots with one owner, in slot order (what `CLUSTER SLOTS` lists).
    pub fn ranges(&self) -> Vec<(SlotRange, ShardId)> {
        let mut out: Vec<(SlotRange, ShardId)> = Vec::new();
        for (n, &owner) in self.owners.iter().enumerate() {
            let slot = Slot::new(n as i64).expect("owners has SLOTS entries");
            match out.last_mut() {
                Some((range, last)) if *last == owner => range.end = slot,
                _ => out.push((SlotRange::single(slot), owner)),
            }
        }
        out
    }

    /// How many slots each shard owns (shards without slots included, with 0).
    pub fn slot_counts(&self) -> BTreeMap<ShardId, usize> {
        let mut counts: BTreeMap<ShardId, usize> = self.shards.keys().map(|&s| (s, 0)).collect();
        for owner in &self.owners {
            *counts.entry(*owner).or_default() += 1;
        }
        counts
    }

    /// Apply a proposal: the map after it, or why it was refused (the map is then unchanged).
    pub fn apply(&mut self, proposal: &Proposal) -> Result<Applied, MapError> {
        if let Some(planned) = proposal.if_epoch {
            if planned != self.epoch {
                return Err(MapError::StaleEpoch { planned, current: self.epoch });
            }
        }
        // Each arm validates everything before it mutates anything: a refused change leaves the
        // map as it was (a test applies random changes and compares).
        let mut applied = Applied { epoch: self.epoch + 1, shard: None, move_id: None };
        match &proposal.change {
            Change::Bootstrap { shards } => {
                if self.is_bootstrapped() || !self.shards.is_empty() {
                    return Err(MapError::AlreadyBootstrapped);
                }
                if shards.is_empty() {
                    return Err(MapError::NoReplicas);
                }
                if shards.len() > SLOTS as usize {
                    return Err(MapError::TooManyShards);
                }
                for voters in shards {
                    validate_voters(voters)?;
                }
                let count = shards.len();
                for voters in shards {
                    let id = self.new_shard(voters.clone());
                    applied.shard.get_or_insert(id);
                    self.nodes.extend(voters.iter().copied());
                }
                // Shard k of n owns slots [k·16384/n, (k+1)·16384/n): sizes differ by at most one.
                let ids: Vec<ShardId> = self.shards.keys().copied().collect();
                self.owners = (0..SLOTS as usize).map(|slot| ids[slot * count / SLOTS as usize]).collect();
            }
            Change::AddShard { voters } => {
                self.require_bootstrapped()?;
                validate_voters(voters)?;
                applied.shard = Some(self.new_shard(voters.clone()));
            }
            Change::AddLearner { shard, node } => {
                let s = self.shard_mut(*shard)?;
                if s.has(*node) {
                    return Err(MapError::AlreadyReplica { shard: *shard, node: *node });
                }
                if s.leaving.contains(node) {
                    return Err(MapError::StillLeaving { shard: *shard, node: *node });
                }
                s.learners.push(*node);
            }
            Change::Promote { shard, node } => {
                let s = self.shard_mut(*shard)?;
                let Some(i) = s.learners.iter().position(|n| n == node) else {
                    return Err(MapError::NotALearner { shard: *shard, node: *node });
                };
                s.learners.remove(i);
                s.voters.push(*node);
                // A by-hand move: the voter it replaces leaves in the same change.
                if let Some(r) = self.replacing.get(shard).copied().filter(|r| r.learner == *node) {
                    self.replacing.remove(shard);
                    let s = self.shards.get_mut(shard).expect("looked up above");
                    if let Some(i) = s.voters.iter().position(|n| *n == r.voter) {
                        s.voters.remove(i);
                        s.leaving.push(r.voter);
                    }
                }
            }
            Change::RemoveReplica { shard, node } => {
                let s = self.shard_mut(*shard)?;
                if let Some(i) = s.learners.iter().position(|n| n == node) {
                    s.learners.remove(i);
                } else if let Some(i) = s.voters.iter().position(|n| n == node) {
                    if s.voters.len() == 1 {
                        return Err(MapError::LastVoter { shard: *shard, node: *node });
                    }
                    s.voters.remove(i);
                } else {
                    return Err(MapError::NotAReplica { shard: *shard, node: *node });
                }
                s.leaving.push(*node);
                // Either side of a by-hand move leaving ends the move: a learner promoted later is
                // an extra voter (the rebalancer trims it), no voter leaves on its account.
                if self.replacing.get(shard).is_some_and(|r| r.learner == *node || r.voter == *node) {
                    self.replacing.remove(shard);
                }
            }
            Change::ReplicaGone { shard, node } => {
                let s = self.shard_mut(*shard)?;
                let Some(i) = s.leaving.iter().position(|n| n == node) else {
                    return Err(MapError::NotLeaving { shard: *shard, node: *node });
                };
                s.leaving.remove(i);
            }
            Change::PreferLeader { shard, node } => {
                let s = self.shard_mut(*shard)?;
                let Some(i) = s.voters.iter().position(|n| n == node) else {
                    return Err(MapError::NotAVoter { shard: *shard, node: *node });
                };
                let preferred = s.voters.remove(i);
                s.voters.insert(0, preferred);
            }
            Change::AddNode { node } => {
                self.require_bootstrapped()?;
                if !self.nodes.insert(*node) {
                    return Err(MapError::AlreadyNode(*node));
                }
            }
            Change::RemoveNode { node } => {
                if !self.nodes.contains(node) {
                    if !self.hosted_by(*node).is_empty() {
                        return Err(MapError::AlreadyLeaving(*node));
                    }
                    return Err(MapError::NoSuchNode(*node));
                }
                self.nodes.remove(node);
            }
            Change::MoveReplica { shard, from, to } => {
                let s = self.shards.get(shard).ok_or(MapError::NoSuchShard(*shard))?;
                if !s.voters.contains(from) {
                    return Err(MapError::NotAVoter { shard: *shard, node: *from });
                }
                if s.has(*to) {
                    return Err(MapError::AlreadyReplica { shard: *shard, node: *to });
                }
                if s.leaving.contains(to) {
                    return Err(MapError::StillLeaving { shard: *shard, node: *to });
                }
                if !self.nodes.contains(to) {
                    return Err(MapError::NoSuchNode(*to));
                }
                if let Some(busy) = self.replica_move() {
                    return Err(MapError::ReplicaMoveBusy { shard: busy });
                }
                self.shard_mut(*shard)?.learners.push(*to);
                self.replacing.insert(*shard, Replacement { learner: *to, voter: *from });
            }
            Change::Rebalance { on } => self.rebalance = *on,
            Change::StartMove { range, to } => {
                self.require_bootstrapped()?;
                if !self.shards.contains_key(to) {
                    return Err(MapError::NoSuchShard(*to));
                }
                let from = self.owner(range.start).expect("bootstrapped");
                if range.slots().any(|s| self.owner(s) != Some(from)) {
                    return Err(MapError::SplitOwnership { range: *range });
                }
                if from == *to {
                    return Err(MapError::MoveToItself { range: *range, shard: from });
                }
                if let Some(m) = self.moves.values().find(|m| m.range.overlaps(*range)) {
                    let slot = range.slots().find(|s| m.range.contains(*s)).expect("overlap");
                    return Err(MapError::AlreadyMoving { slot, id: m.id });
                }
                let id = self.next_move;
                self.next_move += 1;
                self.moves.insert(id, Move { id, range: *range, from, to: *to, phase: Phase::Started });
                applied.move_id = Some(id);
            }
            Change::Fenced { id, source_index } => {
                let m = self.move_mut(*id)?;
                if m.phase != Phase::Started {
                    return Err(MapError::WrongPhase {
                        id: *id,
                        phase: m.phase.stage(),
                        wanted: Stage::Started,
                    });
                }
                m.phase = Phase::Fenced { source_index: *source_index };
            }
            Change::Copied { id, target_index } => {
                let m = self.move_mut(*id)?;
                let Phase::Fenced { source_index } = m.phase else {
                    return Err(MapError::WrongPhase {
                        id: *id,
                        phase: m.phase.stage(),
                        wanted: Stage::Fenced,
                    });
                };
                m.phase = Phase::Copied { source_index, target_index: *target_index };
            }
            Change::FinishMove { id } => {
                let m = *self.move_mut(*id)?;
                if !matches!(m.phase, Phase::Copied { .. }) {
                    return Err(MapError::WrongPhase {
                        id: *id,
                        phase: m.phase.stage(),
                        wanted: Stage::Copied,
                    });
                }
                for slot in m.range.slots() {
                    self.owners[slot.index()] = m.to;
                }
                self.moves.remove(id);
                self.endings.insert(*id, Ending { moved: m, outcome: Outcome::Finished });
            }
            Change::AbortMove { id } => {
                let m = *self.move_mut(*id)?;
                self.moves.remove(id);
                self.endings.insert(*id, Ending { moved: m, outcome: Outcome::Aborted });
            }
            Change::Settled { id } => {
                if self.endings.remove(id).is_none() {
                    return Err(MapError::NoSuchMove(*id));
                }
            }
            Change::RemoveShard { shard } => {
                self.shard_mut(*shard)?;
                let slots = self.owners.iter().filter(|&o| o == shard).count();
                if slots > 0 {
                    return Err(MapError::ShardNotEmpty { shard: *shard, slots });
                }
                let ended = self.endings.values().map(|e| &e.moved);
                if let Some(m) = self.moves.values().chain(ended).find(|m| m.from == *shard || m.to == *shard)
                {
                    return Err(MapError::ShardBusy { shard: *shard, id: m.id });
                }
                self.shards.remove(shard);
                self.replacing.remove(shard);
                applied.shard = Some(*shard);
            }
        }
        self.epoch = applied.epoch;
        debug_assert_eq!(self.check(), Ok(()), "a change that passed validation broke the map");
        Ok(applied)
    }

    /// The invariants of the module docs; the simulator checks them after every step.
    pub fn check(&self) -> Result<(), MapViolation> {
        self.check_text().map_err(MapViolation)
    }

    fn check_text(&self) -> Result<(), String> {
        if self.is_bootstrapped() {
            if self.owners.len() != SLOTS as usize {
                return Err(format!("{} slot owners, not {SLOTS}", self.owners.len()));
            }
            if let Some((n, o)) = self.owners.iter().enumerate().find(|(_, o)| !self.shards.contains_key(o)) {
                return Err(format!("slot {n} is owned by {o}, which does not exist"));
            }
        } else if !self.moves.is_empty() {
            return Err("moves before bootstrap".into());
        }
        for (id, shard) in &self.shards {
            if shard.voters.is_empty() {
                return Err(format!("{id} has no voter"));
            }
            let mut all: Vec<NodeId> =
                shard.voters.iter().chain(&shard.learners).chain(&shard.leaving).copied().collect();
            all.sort();
            if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("{id} names node {} twice", w[0]));
            }
        }
        for (id, r) in &self.replacing {
            let Some(shard) = self.shards.get(id) else {
                return Err(format!("a replica move in {id}, which does not exist"));
            };
            if !shard.learners.contains(&r.learner) || !shard.voters.contains(&r.voter) {
                return Err(format!(
                    "{id}'s replica move from node {} to node {} names no such voter or learner",
                    r.voter, r.learner
                ));
            }
        }
        let moves: Vec<&Move> = self.moves.values().collect();
        for (i, m) in moves.iter().enumerate() {
            if m.from == m.to {
                return Err(format!("move {} goes from {} to itself", m.id, m.from));
            }
            if !self.shards.contains_key(&m.to) || !self.shards.contains_key(&m.from) {
                return Err(format!("move {} names a shard that does not exist", m.id));
            }
            if let Some(s) = m.range.slots().find(|s| self.owner(*s) != Some(m.from)) {
                return Err(format!("move {} takes slot {s} from {}, which does not own it", m.id, m.from));
            }
            if let Some(o) = moves[i + 1..].iter().find(|o| o.range.overlaps(m.range)) {
                return Err(format!("moves {} and {} overlap", m.id, o.id));
            }
        }
        Ok(())
    }

    fn new_shard(&mut self, voters: Vec<NodeId>) -> ShardId {
        let id = ShardId(self.next_shard);
        self.next_shard += 1;
        self.shards.insert(id, Shard { voters, learners: Vec::new(), leaving: Vec::new() });
        id
    }

    fn require_bootstrapped(&self) -> Result<(), MapError> {
        if self.is_bootstrapped() {
            Ok(())
        } else {
            Err(MapError::NotBootstrapped)
        }
    }

    fn shard_mut(&mut self, id: ShardId) -> Result<&mut Shard, MapError> {
        self.shards.get_mut(&id).ok_or(MapError::NoSuchShard(id))
    }

    fn move_mut(&mut self, id: u64) -> Result<&mut Move, MapError> {
        self.moves.get_mut(&id).ok_or(MapError::NoSuchMove(id))
    }
}

fn validate_voters(voters: &[NodeId]) -> Result<(), MapError> {
    if voters.is_empty() {
        return Err(MapError::NoReplicas);
    }
    let mut sorted = voters.to_vec();
    sorted.sort();
    match sorted.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(MapError::DuplicateNode(w[0])),
        None => Ok(()),
    }
}

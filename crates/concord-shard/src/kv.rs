//! A shard's state machine: the key-value store, serving only the slots its group holds.
//!
//! Every shard's Raft group runs a [`ShardKv`]: the ordinary [`KvStore`] plus a **slot table** –
//! which slots this group serves, and which are moving in or out. The table changes only through
//! commands in the group's own log, so every replica of the group agrees, at every log index, on
//! what the group serves. That is where the move protocol's safety lives: a client command is
//! checked against the table *when it is applied*, not when a front door routed it, so a write
//! routed on a stale map is refused rather than applied to a slot that has moved on.
//!
//! # Slot states and the steps that change them
//! A slot is absent (not here), [`SlotState::Serving`], [`SlotState::Outgoing`] (frozen for a
//! move out) or [`SlotState::Incoming`] (holding copied data, not yet serving):
//!
//! | step ([`ShardCommand`]) | group | slots before | slots after |
//! |---|---|---|---|
//! | `Adopt` (bootstrap) | owner | absent | serving |
//! | `Fence` (2. in the crate docs) | source | serving | outgoing(m) |
//! | `Install` (3., in chunks) | target | absent or incoming(m) | incoming(m), data written |
//! | `Activate` (after the flip) | target | incoming(m) | serving |
//! | `Release` (5., clean up) | source | outgoing(m) | absent, data deleted |
//! | `Abort` | either | outgoing(m) / incoming(m) | serving / absent, data deleted |
//!
//! Client commands and reads are served only on serving slots: an outgoing slot is frozen from the
//! fence on (the state the target copies is its final state), an incoming one serves nothing until
//! the map's flip is committed and the target activates it. So at no log index do two groups both
//! serve a slot, and the data of a slot moves in exactly one state: the one at the fence.
//!
//! Every step names its move, and a step of a move this group already finished is a no-op: the
//! mover may retry a step whose answer it lost, and a late retry never undoes a later step.
//!
//! # Range reads and deletes: per group, gathered by the caller
//! Key *ranges* span slots, which hash keys apart, so no one group holds a range: a client's
//! range read routed by key (`ShardQuery::Kv(Query::Range)`) and a `Write::DeleteRange` are
//! refused with a clear error. A range read is instead asked of each group by name ([`ShardQuery::Range`],
//! [`ShardQuery::Count`]): the group answers for the keys of the slots it **serves** at the read's
//! point in its log – never a frozen outgoing slot nor an incoming one, whose keys another group
//! may serve or be about to – and says which slots those were. A caller that gathers the pages of
//! every group checks that the served slots cover the key space exactly once: then each slot was
//! read where it was served, no key is missed or seen twice, even while slots move (a gather that
//! straddles a move's hand-off sees a gap or an overlap, and is read again).
//!
//! A range delete is asked of each group the same way ([`ShardCommand::DeleteRange`]): a group
//! deletes the keys of the range in the slots it serves when the command is applied – all of
//! them, at one revision – and says which slots those were. A slot moving in or out is not
//! touched at all (never half-deleted: a frozen slot's state is the one its target copies); the
//! caller asks again, for the slots nobody served, until every slot was served by some group. A
//! key of the range present throughout the request is then deleted wherever its slot went.
//!
//! Revisions are per shard: a moved key gets the target's revision for the move, keeping its
//! version and TTL.

use crate::slot::{key_slot, Slot, SlotRange};
use concord_core::{Access, Completion, KvStateMachine, Op, StateMachine, StateMachineError, Time};
use concord_kv::{
    key_value, validate, validate_query, Command, Engine, EngineRead, Entry, ExpireKey, KeyRange, KeyValue,
    KvError, KvLimits, KvStore, PageBudget, Query, RangePage, RangeRequest, Response, TxnOp, Write,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// What this group does with a slot (absent: the slot is not here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotState {
    Serving,
    /// Frozen for move `m` out of this group: nothing is served.
    Outgoing(u64),
    /// Moving in with move `m`: data arrives, nothing is served until activated.
    Incoming(u64),
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotState::Serving => f.write_str("serving"),
            SlotState::Outgoing(m) => write!(f, "moving out (move {m})"),
            SlotState::Incoming(m) => write!(f, "moving in (move {m})"),
        }
    }
}

/// The slots a group holds: disjoint ranges in slot order, adjacent runs of one state merged – a
/// few entries for a group however many slots it owns (so idle groups stay small).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTable {
    runs: Vec<(SlotRange, SlotState)>,
}

impl SlotTable {
    pub fn get(&self, slot: Slot) -> Option<SlotState> {
        let i = self.runs.partition_point(|(range, _)| range.end < slot);
        self.runs.get(i).filter(|(range, _)| range.contains(slot)).map(|&(_, state)| state)
    }

    /// The runs of the table, in slot order.
    pub fn runs(&self) -> &[(SlotRange, SlotState)] {
        &self.runs
    }

    /// Whether the runs are in order, disjoint and merged (a table read from a snapshot must be).
    pub fn is_sound(&self) -> bool {
        self.runs.windows(2).all(|w| {
            let ((a, sa), (b, sb)) = (w[0], w[1]);
            a.end < b.start && !(sa == sb && a.end.get() + 1 == b.start.get())
        })
    }

    /// Whether every slot of `range` satisfies `ok` (absent slots are passed as `None`).
    fn all(&self, range: SlotRange, ok: impl Fn(Option<SlotState>) -> bool) -> bool {
        // Per slot, so absent gaps are seen; at most 16 384 lookups for a whole-space step.
        range.slots().all(|slot| ok(self.get(slot)))
    }

    /// Give every slot of `range` the state `to` (`None`: remove it).
    fn set(&mut self, range: SlotRange, to: Option<SlotState>) {
        let mut runs = Vec::with_capacity(self.runs.len() + 2);
        for &(run, state) in &self.runs {
            if !run.overlaps(range) {
                runs.push((run, state));
                continue;
            }
            // Keep the parts of `run` outside `range`.
            if run.start < range.start {
                let end = Slot::new(range.start.get() as i64 - 1).expect("above a slot");
                runs.push((SlotRange { start: run.start, end }, state));
            }
            if run.end > range.end {
                let start = Slot::new(range.end.get() as i64 + 1).expect("below a slot");
                runs.push((SlotRange { start, end: run.end }, state));
            }
        }
        if let Some(state) = to {
            runs.push((range, state));
        }
        runs.sort_by_key(|(range, _)| range.start);
        // Merge touching runs of one state.
        let mut merged: Vec<(SlotRange, SlotState)> = Vec::with_capacity(runs.len());
        for (range, state) in runs {
            match merged.last_mut() {
                Some((last, s)) if *s == state && last.end.get() + 1 == range.start.get() => {
                    last.end = range.end
                }
                _ => merged.push((range, state)),
            }
        }
        self.runs = merged;
    }
}

/// A command in a shard group's log: a client's, or a step of the move protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// A client command, served only if every key it touches is in a serving slot.
    Kv(Command),
    /// Bootstrap: start serving `ranges` (slots no group served before).
    Adopt { ranges: Vec<SlotRange> },
    /// Source: freeze `range` for move `id`.
    Fence { id: u64, range: SlotRange },
    /// Target: write a chunk of `range`'s data as of the source's fence.
    Install { id: u64, range: SlotRange, entries: Vec<KeyValue> },
    /// Target: serve `range` (the map's flip to this shard is committed).
    Activate { id: u64, range: SlotRange },
    /// Source: forget `range` and delete its keys (the target serves it now).
    Release { id: u64, range: SlotRange },
    /// Either side: the move was aborted – the source serves `range` again, the target drops it.
    Abort { id: u64, range: SlotRange },
    // New variants go last: commands are in logs and snapshots, and cross the peer wire.
    /// A client's range delete, asked of each group by name: delete the keys of `range` whose slot
    /// lies in `slots` **and** is served here at this point of the log. Slots moving in or out
    /// are left whole (a frozen slot's state is what its target copies; an incoming one is not
    /// this group's yet); the answer says which slots were served ([`ShardResponse::Deleted`]), so
    /// that a caller deleting over every group can ask again for the slots nobody served.
    DeleteRange { range: KeyRange, slots: Vec<SlotRange> },
}

/// A read of a shard group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// A client read, served only on a serving slot.
    Kv(Query),
    /// One page of the frozen `range` for move `id` (the copy step): keys after `after`, at most
    /// `limit` of them and half the command-size limit in bytes (at least one key), in key order.
    Export { id: u64, range: SlotRange, after: Option<Vec<u8>>, limit: usize },
    /// The slot table.
    Slots,
    // New variants go last: queries cross the peer wire between nodes of different versions.
    /// A client's range read of this group: one page of `request` (key order, at most
    /// `request.limit` keys and `max_range_bytes`), of the keys whose slot this group **serves**
    /// and lies in `slots` (`None`: any slot). Keys of slots moving in or out are left out, and the
    /// answer says which slots were served, so that a read gathered from several groups can check
    /// that it saw every slot exactly once (see [`ShardResponse::Range`]).
    Range { slots: Option<SlotRange>, request: RangeRequest },
    /// How many keys of slots in `slots` (`None`: all) this group serves, and which slots those were.
    Count { slots: Option<SlotRange> },
}

/// A shard group's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardResponse {
    Kv(Response),
    /// A move step took effect at log index `index` (or had already: `index` is then this entry's).
    Step {
        index: u64,
    },
    /// A page of an export; `next` is the `after` of the next page, `None` at the end.
    Export {
        entries: Vec<KeyValue>,
        next: Option<Vec<u8>>,
    },
    Slots(SlotTable),
    /// A page of a [`ShardQuery::Range`]: `page.next_key` starts the next page (`None`: the range
    /// is exhausted here). `served`: the slots of the query this group served at the read's point
    /// in its log, as ordered disjoint runs.
    Range {
        page: RangePage,
        served: Vec<SlotRange>,
    },
    /// The answer to a [`ShardQuery::Count`].
    Count {
        keys: u64,
        served: Vec<SlotRange>,
    },
    /// The answer to a [`ShardCommand::DeleteRange`]: how many keys it deleted, the group's
    /// revision after it, and the slots of the command this group served (ordered disjoint runs).
    Deleted {
        deleted: u64,
        revision: u64,
        served: Vec<SlotRange>,
    },
}

/// A client range's end, never past the collections' records (`concord_kv::redis`).
fn user_end(end: Option<&[u8]>) -> &[u8] {
    let internal = concord_kv::redis::user_range_end();
    match end {
        Some(end) if end < internal => end,
        _ => internal,
    }
}

/// Refuse a Redis command that spans the whole store (`FLUSHALL`, `RANDOMKEY`): a group holds
/// only its slots – and, for a moment, frozen ones it no longer serves – so the sharded node runs
/// those across every group itself (a range delete, counted range reads); one sent here inside a
/// transaction is refused.
fn whole_store(exec: &concord_kv::RedisExec) -> Result<(), ShardError> {
    match exec.calls.iter().map(|call| call.name()).find(|name| concord_kv::redis::spans_store(name)) {
        Some(name) => {
            Err(ShardError::RangeUnsupported(format!("{} inside a transaction", name.to_uppercase())))
        }
        None => Ok(()),
    }
}

/// Why a shard group refused a command or a read. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ShardError {
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The key's slot is not served here: absent (ask the map: `-MOVED`) or moving (`-TRYAGAIN`).
    #[error("slot {slot} is {}", state.map_or("not served by this shard".to_string(), |s| s.to_string()))]
    NotServing { slot: Slot, state: Option<SlotState> },
    #[error("{0} is not supported in a sharded cluster: keys of a range hash to different slots")]
    RangeUnsupported(String),
    /// A move step found slots in a state it does not start from (a bug in the mover, or a stale
    /// step of another move).
    #[error("move {id}: slots {range} are not all {expected}")]
    WrongState { id: u64, range: SlotRange, expected: String },
    #[error("move {id}: key {key:?} of the copy is outside slots {range}")]
    KeyOutsideRange { id: u64, range: SlotRange, key: String },
}

pub type ShardResult = Result<ShardResponse, ShardError>;

/// A deliberate bug in the move protocol, for showing that the checkers catch it (never on outside
/// tests and the simulator's mutation runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardBug {
    #[default]
    None,
    /// The source keeps serving writes to a slot after its fence: the writes are lost in the move.
    WritesAfterFence,
}

/// A shard's replicated state (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ShardKv {
    kv: KvStore,
    slots: SlotTable,
    /// Moves whose last step here was applied: later steps of them are no-ops.
    finished: BTreeSet<u64>,
    /// Whether the group took its bootstrap slots (`Adopt` runs once in a group's life).
    adopted: bool,
    bug: ShardBug,
}

impl ShardKv {
    pub fn new(limits: KvLimits) -> ShardKv {
        ShardKv { kv: KvStore::new(limits), ..ShardKv::default() }
    }

    /// The same store with a deliberate bug (see [`ShardBug`]).
    pub fn with_bug(mut self, bug: ShardBug) -> ShardKv {
        self.bug = bug;
        self
    }

    pub fn store(&self) -> &KvStore {
        &self.kv
    }

    /// Record which keys applied commands change (see `concord_kv::changes`).
    pub fn record_changes(&mut self, limit: usize) {
        self.kv.record_changes(limit);
    }

    /// The keys changed since the last call.
    pub fn take_changes(&mut self) -> concord_kv::Changes {
        self.kv.take_changes()
    }

    pub fn slots(&self) -> &SlotTable {
        &self.slots
    }

    /// Whether the group took its bootstrap slots yet.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Apply one command at log index `index`: an error changes nothing.
    pub fn execute(&mut self, index: u64, command: &ShardCommand) -> ShardResult {
        let step = |index| Ok(ShardResponse::Step { index });
        match command {
            ShardCommand::Kv(command) => self.client_write(command),
            ShardCommand::Adopt { ranges } => {
                // Once in a group's life: a leader that proposes it again after a crash changes
                // nothing (the slots may have moved on since).
                if self.adopted {
                    return step(index);
                }
                for &range in ranges {
                    if !self.slots.all(range, |s| s.is_none() || s == Some(SlotState::Serving)) {
                        return Err(ShardError::WrongState { id: 0, range, expected: "absent".into() });
                    }
                }
                for &range in ranges {
                    self.slots.set(range, Some(SlotState::Serving));
                }
                self.adopted = true;
                step(index)
            }
            ShardCommand::Fence { id, range } => {
                if self.finished.contains(id) {
                    return step(index);
                }
                let (id, range) = (*id, *range);
                let ok = |s| s == Some(SlotState::Serving) || s == Some(SlotState::Outgoing(id));
                self.require(id, range, "served here", ok)?;
                self.slots.set(range, Some(SlotState::Outgoing(id)));
                step(index)
            }
            ShardCommand::Install { id, range, entries } => {
                if self.finished.contains(id) {
                    return step(index);
                }
                let (id, range) = (*id, *range);
                self.require(id, range, "absent or moving in", |s| {
                    s.is_none() || s == Some(SlotState::Incoming(id))
                })?;
                if let Some(outside) = entries.iter().find(|kv| !range.contains(key_slot(&kv.key))) {
                    let key = String::from_utf8_lossy(&outside.key).into_owned();
                    return Err(ShardError::KeyOutsideRange { id, range, key });
                }
                self.slots.set(range, Some(SlotState::Incoming(id)));
                self.install(entries)?;
                step(index)
            }
            ShardCommand::Activate { id, range } => {
                if self.finished.contains(id) {
                    return step(index);
                }
                self.require(*id, *range, "moving in", |s| s == Some(SlotState::Incoming(*id)))?;
                self.slots.set(*range, Some(SlotState::Serving));
                self.finished.insert(*id);
                step(index)
            }
            ShardCommand::Release { id, range } => {
                if self.finished.contains(id) {
                    return step(index);
                }
                self.require(*id, *range, "moving out", |s| s == Some(SlotState::Outgoing(*id)))?;
                self.delete_slots(*range);
                self.slots.set(*range, None);
                self.finished.insert(*id);
                step(index)
            }
            ShardCommand::Abort { id, range } => {
                if self.finished.contains(id) {
                    return step(index);
                }
                let (id, range) = (*id, *range);
                // The source thaws its slots; the target drops what it copied. Slots the move
                // never reached here (an abort before the fence or the first chunk) are left alone.
                let mine = |s| s == Some(SlotState::Outgoing(id)) || s == Some(SlotState::Incoming(id));
                let other = |s: Option<SlotState>| !mine(s);
                for slot in range.slots() {
                    match self.slots.get(slot) {
                        Some(SlotState::Outgoing(m)) if m == id => {
                            self.slots.set(SlotRange::single(slot), Some(SlotState::Serving))
                        }
                        Some(SlotState::Incoming(m)) if m == id => {
                            self.delete_slots(SlotRange::single(slot));
                            self.slots.set(SlotRange::single(slot), None);
                        }
                        _ => {}
                    }
                }
                debug_assert!(self.slots.all(range, other));
                self.finished.insert(id);
                step(index)
            }
            ShardCommand::DeleteRange { range, slots } => self.delete_range(range, slots),
        }
    }

    /// A client's range delete ([`ShardCommand::DeleteRange`]): the keys of `range` in the served
    /// slots of `slots`, deleted at one new revision (none if nothing was deleted).
    fn delete_range(&mut self, range: &KeyRange, slots: &[SlotRange]) -> ShardResult {
        validate(&Command::delete_range(Time(0), range.clone()), self.kv.limits())?;
        let served = merged(slots.iter().flat_map(|&within| self.served(Some(within))).collect());
        let mut doomed = Vec::new();
        self.kv.engine().scan(&range.start, range.end.as_deref(), &mut |key, _| {
            if in_runs(&served, key_slot(key)) {
                doomed.push(key.to_vec());
            }
            true
        });
        if !doomed.is_empty() {
            let rev = self.kv.revision().checked_add(1).ok_or(KvError::RevisionsExhausted)?;
            let engine = self.kv.engine_mut();
            for key in &doomed {
                engine.remove(key);
            }
            engine.set_revision(rev);
        }
        let (deleted, revision) = (doomed.len() as u64, self.kv.revision());
        Ok(ShardResponse::Deleted { deleted, revision, served })
    }

    /// Answer a read from applied state.
    pub fn read(&self, query: &ShardQuery) -> ShardResult {
        match query {
            ShardQuery::Kv(query) => {
                match query {
                    Query::Get { key } => self.serving(key)?,
                    Query::GetMany { keys } => {
                        for key in keys {
                            self.serving(key)?;
                        }
                    }
                    Query::Range(_) => return Err(ShardError::RangeUnsupported("a range read".into())),
                    Query::Export => {
                        return Err(ShardError::RangeUnsupported("an export of every key".into()))
                    }
                    Query::Redis(exec) => {
                        whole_store(exec)?;
                        for key in &exec.keys {
                            self.serving(key)?;
                        }
                    }
                    Query::Unsupported { .. } => {}
                }
                let served = Served { slots: &self.slots, bug: self.bug };
                Ok(ShardResponse::Kv(self.kv.read_in(query, Some(&served))?))
            }
            ShardQuery::Export { id, range, after, limit } => {
                let (id, range) = (*id, *range);
                self.require(id, range, "moving out", |s| s == Some(SlotState::Outgoing(id)))?;
                let mut entries = Vec::new();
                let mut next = None;
                // A page becomes one `Install` command in the target's log, so it stays within
                // half the command-size limit however large the values are (always one entry,
                // which alone fits: a value is bounded by that limit too).
                let mut budget = PageBudget::new((*limit).max(1), self.kv.limits().max_command_bytes / 2);
                let start = after.as_ref().map(|k| successor(k)).unwrap_or_default();
                self.kv.engine().scan(&start, None, &mut |key, entry| {
                    if !range.contains(key_slot(key)) {
                        return true;
                    }
                    if !budget.take(key.len() + entry.value.len()) {
                        next = entries.last().map(|kv: &KeyValue| kv.key.clone());
                        return false;
                    }
                    entries.push(key_value(key, entry));
                    true
                });
                Ok(ShardResponse::Export { entries, next })
            }
            ShardQuery::Slots => Ok(ShardResponse::Slots(self.slots.clone())),
            ShardQuery::Range { slots, request } => {
                validate_query(&Query::Range(request.clone()), self.kv.limits())?;
                let served = self.served(*slots);
                let page = self.page(&served, request);
                Ok(ShardResponse::Range { page, served })
            }
            ShardQuery::Count { slots } => {
                let served = self.served(*slots);
                // User keys only: the store's length would count collections' records too.
                let mut keys = 0;
                self.kv.engine().scan(&[], Some(user_end(None)), &mut |key, _| {
                    keys += u64::from(in_runs(&served, key_slot(key)));
                    true
                });
                Ok(ShardResponse::Count { keys, served })
            }
        }
    }

    /// The slots of `within` (`None`: all) this group serves, as ordered disjoint runs.
    fn served(&self, within: Option<SlotRange>) -> Vec<SlotRange> {
        let within = within.unwrap_or_else(SlotRange::everything);
        self.slots
            .runs
            .iter()
            .filter(|(run, state)| *state == SlotState::Serving && run.overlaps(within))
            .map(|(run, _)| SlotRange { start: run.start.max(within.start), end: run.end.min(within.end) })
            .collect()
    }

    /// How many slots the table holds, in any state.
    /// One page of `request` over the keys of `served` slots: as [`KvStore`]'s own pages (at most
    /// `limit` keys, ending early past `max_range_bytes` but holding at least one key), skipping the
    /// keys of other slots. Costs a scan of the group's keys in the range, whichever slots they
    /// hash to: there is no per-slot index (`GETKEYSINSLOT` on a large shard is O(its keys)).
    fn page(&self, served: &[SlotRange], request: &RangeRequest) -> RangePage {
        let mut page = RangePage::default();
        if served.is_empty() {
            return page;
        }
        let mut budget = PageBudget::new(request.limit, self.kv.limits().max_range_bytes);
        let range = &request.range;
        // Clients' pages stop before the collections' records (`KEYS`, `SCAN`, `DBSIZE` must not
        // list them), as the store's own range reads do.
        let end = user_end(range.end.as_deref());
        self.kv.engine().scan(&range.start, Some(end), &mut |key, entry| {
            if !in_runs(served, key_slot(key)) {
                return true;
            }
            if !budget.take(key.len() + entry.value.len()) {
                page.next_key = Some(key.to_vec());
                return false;
            }
            page.kvs.push(key_value(key, entry));
            true
        });
        page
    }

    /// The `Expire` a leader should propose now, for keys of serving slots only (an outgoing
    /// slot is frozen; its keys expire at the target).
    pub fn expiry_due(&self, now: Time) -> Option<ShardCommand> {
        let mut command = self.kv.expiry_due(now)?;
        if let Write::Expire { keys } = &mut command.write {
            keys.retain(|k| self.slots.get(key_slot(&k.key)) == Some(SlotState::Serving));
            if keys.is_empty() {
                return None;
            }
        }
        Some(ShardCommand::Kv(command))
    }

    fn require(
        &self,
        id: u64,
        range: SlotRange,
        expected: &'static str,
        ok: impl Fn(Option<SlotState>) -> bool,
    ) -> Result<(), ShardError> {
        match self.slots.all(range, ok) {
            true => Ok(()),
            false => Err(ShardError::WrongState { id, range, expected: expected.into() }),
        }
    }

    fn serving(&self, key: &[u8]) -> Result<(), ShardError> {
        let slot = key_slot(key);
        match self.slots.get(slot) {
            Some(state) if serves(state, self.bug) => Ok(()),
            state => Err(ShardError::NotServing { slot, state }),
        }
    }

    fn client_write(&mut self, command: &Command) -> ShardResult {
        let mut checked = command.clone();
        match &mut checked.write {
            Write::Put(put) => self.serving(&put.key)?,
            Write::Delete { key } | Write::Increment { key, .. } => self.serving(key)?,
            Write::Cas(cas) => self.serving(&cas.key)?,
            // Not by key: a range delete is asked of each group (`ShardCommand::DeleteRange`).
            Write::DeleteRange(_) => return Err(ShardError::RangeUnsupported("DeleteRange".into())),
            // Every key a transaction compares, reads or writes – either branch – must be served
            // here: a transaction routed by its first key on a stale map is refused whole.
            Write::Txn(txn) => {
                for compare in &txn.compares {
                    self.serving(&compare.key)?;
                }
                for op in txn.success.iter().chain(&txn.failure) {
                    match op {
                        TxnOp::Get { key } | TxnOp::Delete { key } => self.serving(key)?,
                        TxnOp::Put(put) => self.serving(&put.key)?,
                        TxnOp::Range(_) => return Err(ShardError::RangeUnsupported("a range read".into())),
                        TxnOp::DeleteRange(_) => {
                            return Err(ShardError::RangeUnsupported("DeleteRange".into()))
                        }
                    }
                }
            }
            // A leader proposed this expiry before a fence froze some of its keys: expire the rest.
            Write::Expire { keys } => {
                keys.retain(|k: &ExpireKey| self.serving(&k.key).is_ok());
            }
            // Every key the commands name (and every watched one): the front door lists them.
            Write::Redis(exec) => {
                whole_store(exec)?;
                for key in exec.keys.iter().chain(exec.watch.iter().map(|(key, _)| key)) {
                    self.serving(key)?;
                }
            }
        }
        let served = Served { slots: &self.slots, bug: self.bug };
        Ok(ShardResponse::Kv(self.kv.execute_in(&checked, Some(&served))?))
    }

    /// Write copied entries at one new revision, keeping each key's version and TTL.
    fn install(&mut self, entries: &[KeyValue]) -> Result<(), ShardError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rev = self.kv.revision().checked_add(1).ok_or(KvError::RevisionsExhausted)?;
        let engine = self.kv.engine_mut();
        for kv in entries {
            let entry = Entry {
                value: kv.value.clone(),
                create_revision: rev,
                mod_revision: rev,
                version: kv.version,
                expires_at: kv.expires_at,
            };
            engine.put(&kv.key, entry);
        }
        engine.set_revision(rev);
        Ok(())
    }

    fn delete_slots(&mut self, range: SlotRange) {
        let mut doomed = Vec::new();
        self.kv.engine().scan(&[], None, &mut |key, _| {
            if range.contains(key_slot(key)) {
                doomed.push(key.to_vec());
            }
            true
        });
        let engine = self.kv.engine_mut();
        for key in doomed {
            engine.remove(&key);
        }
    }
}

/// Whether `slot` lies in one of `runs` (ordered, disjoint).
fn in_runs(runs: &[SlotRange], slot: Slot) -> bool {
    let i = runs.partition_point(|run| run.end < slot);
    runs.get(i).is_some_and(|run| run.contains(slot))
}

/// `runs` sorted, with overlapping or touching runs joined.
fn merged(mut runs: Vec<SlotRange>) -> Vec<SlotRange> {
    runs.sort();
    let mut out: Vec<SlotRange> = Vec::with_capacity(runs.len());
    for run in runs {
        match out.last_mut() {
            Some(last) if u32::from(run.start.get()) <= u32::from(last.end.get()) + 1 => {
                last.end = last.end.max(run.end)
            }
            _ => out.push(run),
        }
    }
    out
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// A snapshot: the slot table and finished moves as JSON (small), then the store's own snapshot.
#[derive(Serialize, Deserialize)]
struct Header {
    slots: SlotTable,
    finished: BTreeSet<u64>,
    adopted: bool,
}

impl StateMachine for ShardKv {
    type Command = ShardCommand;
    type Query = ShardQuery;
    type Output = ShardResult;

    fn apply(&mut self, index: u64, command: &ShardCommand) -> ShardResult {
        self.execute(index, command)
    }

    fn query(&self, query: &ShardQuery) -> ShardResult {
        self.read(query)
    }

    fn snapshot(&self) -> Vec<u8> {
        let header =
            Header { slots: self.slots.clone(), finished: self.finished.clone(), adopted: self.adopted };
        let header = serde_json::to_vec(&header).expect("a slot table serialises");
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.kv.snapshot());
        out
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateMachineError> {
        let corrupt = |e: String| StateMachineError::Corrupt(format!("shard snapshot: {e}"));
        let len = bytes.get(..8).ok_or_else(|| corrupt("shorter than its header length".into()))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let rest = &bytes[8..];
        let header = rest.get(..len).ok_or_else(|| corrupt(format!("header of {len} bytes is cut short")))?;
        let header: Header = serde_json::from_slice(header).map_err(|e| corrupt(e.to_string()))?;
        if !header.slots.is_sound() {
            return Err(corrupt("its slot table has overlapping or unordered runs".into()));
        }
        // Restore into a copy first: on error `self` is unchanged.
        let mut kv = self.kv.clone();
        kv.restore(&rest[len..])?;
        self.kv = kv;
        self.slots = header.slots;
        self.finished = header.finished;
        self.adopted = header.adopted;
        Ok(())
    }

    fn housekeeping(&self, now: Time) -> Vec<ShardCommand> {
        self.expiry_due(now).into_iter().collect()
    }
}

/// Workload operations on a shard: the store's own, wrapped. No witness: revisions are per shard
/// (and a moved key takes the target's), so they do not order operations across the cluster.
impl KvStateMachine for ShardKv {
    fn access(op: &Op, now: Time) -> Access<ShardCommand, ShardQuery> {
        match KvStore::access(op, now) {
            Access::Write(command) => Access::Write(ShardCommand::Kv(command)),
            Access::Read(query) => Access::Read(ShardQuery::Kv(query)),
        }
    }

    fn completion(op: &Op, output: &ShardResult) -> Completion {
        match output {
            Ok(ShardResponse::Kv(response)) => KvStore::completion(op, &Ok(response.clone())),
            Err(ShardError::Kv(e)) => KvStore::completion(op, &Err(e.clone())),
            // Refused when applied: it certainly did not take effect.
            Err(e) => Completion::Fail(e.to_string()),
            Ok(other) => Completion::Fail(format!("unexpected answer to {op}: {other:?}")),
        }
    }
}

/// Whether a slot in `state` takes client commands (a frozen outgoing slot does not, unless the
/// injected bug lets it).
fn serves(state: SlotState, bug: ShardBug) -> bool {
    match state {
        SlotState::Serving => true,
        SlotState::Outgoing(_) => bug == ShardBug::WritesAfterFence,
        SlotState::Incoming(_) => false,
    }
}

/// The slot table as the interpreter sees it: a script's `redis.call` may only touch keys of
/// slots served here (Redis Cluster's "non local key" refusal, see `concord_kv::redis::script`),
/// decided by the table at the command's point in the log – the same on every replica.
struct Served<'a> {
    slots: &'a SlotTable,
    bug: ShardBug,
}

impl concord_kv::redis::Slots for Served<'_> {
    fn slot(&self, key: &[u8]) -> u16 {
        key_slot(key).get()
    }

    fn serves(&self, slot: u16) -> bool {
        let slot = Slot::new(i64::from(slot)).expect("a slot from key_slot");
        self.slots.get(slot).is_some_and(|state| serves(state, self.bug))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(start: u16, end: u16) -> SlotRange {
        SlotRange::new(Slot::new(start as i64).unwrap(), Slot::new(end as i64).unwrap()).unwrap()
    }

    fn put(key: &str, value: &str) -> ShardCommand {
        ShardCommand::Kv(Command::put(Time(0), key, value))
    }

    fn get(kv: &ShardKv, key: &str) -> Result<Option<Vec<u8>>, ShardError> {
        match kv.read(&ShardQuery::Kv(Query::get(key)))? {
            ShardResponse::Kv(Response::Get(found)) => Ok(found.map(|kv| kv.value)),
            other => panic!("a get answered {other:?}"),
        }
    }

    /// A key whose slot lies in `range` (keys are found by trying, as a client would).
    fn key_in(range: SlotRange, n: usize) -> String {
        (0..).map(|i| format!("k{i}")).filter(|k| range.contains(key_slot(k.as_bytes()))).nth(n).unwrap()
    }

    proptest! {
        /// The run-length table answers like a plain array of 16 384 states, and stays sound.
        #[test]
        fn slot_table_matches_an_array(ops in proptest::collection::vec((0u16..400, 0u16..400, 0u8..4), 1..40)) {
            let mut table = SlotTable::default();
            let mut array = vec![None; 400];
            for (a, b, s) in ops {
                let (a, b) = (a.min(b), a.max(b));
                let state = match s { 0 => None, 1 => Some(SlotState::Serving), 2 => Some(SlotState::Outgoing(7)), _ => Some(SlotState::Incoming(7)) };
                table.set(range(a, b), state);
                for slot in a..=b { array[slot as usize] = state; }
                prop_assert!(table.is_sound(), "{table:?}");
            }
            for (slot, want) in array.iter().enumerate() {
                prop_assert_eq!(table.get(Slot::new(slot as i64).unwrap()), *want);
            }
        }
    }

    #[test]
    fn only_serving_slots_take_writes_and_reads() {
        let mut kv = ShardKv::default();
        let here = range(0, 99);
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![here] }).unwrap();
        let (inside, outside) = (key_in(here, 0), key_in(range(100, 16383), 0));
        kv.execute(2, &put(&inside, "v")).unwrap();
        let refused = kv.execute(3, &put(&outside, "v")).unwrap_err();
        assert!(matches!(refused, ShardError::NotServing { state: None, .. }), "{refused}");
        assert_eq!(get(&kv, &inside).unwrap(), Some(b"v".to_vec()));
        assert!(get(&kv, &outside).is_err());
        // A transaction touching one foreign key is refused whole.
        let txn = concord_kv::Txn {
            success: vec![
                TxnOp::Put(concord_kv::Put::new(inside.clone(), "w")),
                TxnOp::Delete { key: outside.into() },
            ],
            ..Default::default()
        };
        assert!(kv.execute(4, &ShardCommand::Kv(Command::txn(Time(0), txn))).is_err());
        assert_eq!(get(&kv, &inside).unwrap(), Some(b"v".to_vec()));
        let range_read = Query::Range(concord_kv::RangeRequest::new(concord_kv::KeyRange::prefix(""), 10));
        assert!(matches!(kv.read(&ShardQuery::Kv(range_read)), Err(ShardError::RangeUnsupported(_))));
    }

    /// A script may touch undeclared keys of slots served here, never a key of another group's
    /// slot (Redis Cluster's "non local key"), nor one of a slot frozen for a move: the state
    /// machine refuses the call itself, so the key is never written where it does not live.
    #[test]
    fn scripts_touch_only_keys_of_slots_served_here() {
        use concord_kv::{RedisCall, RedisExec, Reply};
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 99), range(200, 299)] }).unwrap();
        let (declared, other_here) = (key_in(range(0, 99), 0), key_in(range(200, 299), 0));
        let elsewhere = key_in(range(100, 199), 0);
        let eval = |body: String, key: &str| {
            let argv = ["EVAL", body.as_str(), "1", key].iter().map(|w| w.as_bytes().to_vec()).collect();
            let exec = RedisExec { keys: vec![key.into()], watch: vec![], calls: vec![RedisCall::new(argv)] };
            ShardCommand::Kv(Command::new(Time(0), concord_kv::Write::Redis(exec)))
        };
        let reply = |kv: &mut ShardKv, index, command| match kv.execute(index, &command) {
            Ok(ShardResponse::Kv(Response::Redis { replies: Some(mut r), .. })) => r.pop().unwrap(),
            other => panic!("{other:?}"),
        };
        let set = |key: &str| format!("return redis.call('set', '{key}', 'v')");
        assert_eq!(reply(&mut kv, 2, eval(set(&other_here), &declared)), Reply::Ok);
        let refused = reply(&mut kv, 3, eval(set(&elsewhere), &declared));
        let Reply::Error(e) = refused else { panic!("{refused:?}") };
        assert!(
            e.starts_with("ERR Script attempted to access a non local key in a cluster node script: "),
            "{e}"
        );
        assert!(get(&kv, &elsewhere).is_err());
        assert!(kv.store().get(elsewhere.as_bytes()).is_none(), "never written");
        // Frozen for a move out: no longer served, so no longer local.
        kv.execute(4, &ShardCommand::Fence { id: 9, range: range(200, 299) }).unwrap();
        let Reply::Error(e) = reply(&mut kv, 5, eval(set(&other_here), &declared)) else { panic!() };
        assert!(e.contains("non local key"), "{e}");
        // Read-only scripts, through the read path.
        let argv = ["EVAL_RO", &format!("return redis.call('get', '{elsewhere}')"), "1", declared.as_str()]
            .iter()
            .map(|w| w.as_bytes().to_vec())
            .collect();
        let exec = RedisExec {
            keys: vec![declared.clone().into()],
            watch: vec![],
            calls: vec![RedisCall::new(argv)],
        };
        match kv.read(&ShardQuery::Kv(Query::Redis(exec))) {
            Ok(ShardResponse::Kv(Response::Redis { replies: Some(r), .. })) => {
                assert!(matches!(&r[0], Reply::Error(e) if e.contains("non local key")), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// The whole protocol on two groups' machines: fence, copy in pages, activate, release.
    #[test]
    fn a_move_hands_over_the_frozen_state_and_nothing_else() {
        let (mut a, mut b) = (ShardKv::default(), ShardKv::default());
        let moving = range(0, 8191);
        a.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 16383)] }).unwrap();
        b.execute(1, &ShardCommand::Adopt { ranges: vec![] }).unwrap();
        let keys: Vec<String> = (0..25).map(|n| key_in(moving, n)).collect();
        let stay = key_in(range(8192, 16383), 0);
        for (i, k) in keys.iter().enumerate() {
            a.execute(2 + i as u64, &put(k, &format!("v{i}"))).unwrap();
        }
        a.execute(40, &put(&stay, "stays")).unwrap();

        let fence = ShardCommand::Fence { id: 9, range: moving };
        assert_eq!(a.execute(41, &fence).unwrap(), ShardResponse::Step { index: 41 });
        // Frozen: writes and reads of the range are refused at the source, others go on.
        let refused = a.execute(42, &put(&keys[0], "late")).unwrap_err();
        assert!(matches!(refused, ShardError::NotServing { state: Some(SlotState::Outgoing(9)), .. }));
        assert!(get(&a, &keys[1]).is_err());
        a.execute(43, &put(&stay, "still served")).unwrap();

        // Copy in pages of 10.
        let mut after = None;
        let mut index = 2;
        loop {
            let page = a
                .read(&ShardQuery::Export { id: 9, range: moving, after: after.clone(), limit: 10 })
                .unwrap();
            let ShardResponse::Export { entries, next } = page else { panic!() };
            assert!(entries.len() <= 10);
            b.execute(index, &ShardCommand::Install { id: 9, range: moving, entries }).unwrap();
            index += 1;
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        // Incoming: nothing served before the activation.
        assert!(matches!(
            get(&b, &keys[0]),
            Err(ShardError::NotServing { state: Some(SlotState::Incoming(9)), .. })
        ));
        b.execute(index, &ShardCommand::Activate { id: 9, range: moving }).unwrap();
        a.execute(44, &ShardCommand::Release { id: 9, range: moving }).unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get(&b, k).unwrap(), Some(format!("v{i}").into_bytes()), "{k} moved");
            assert!(matches!(get(&a, k), Err(ShardError::NotServing { state: None, .. })));
        }
        assert_eq!(a.store().len(), 1, "the source kept only the slot that stays");
        assert_eq!(b.store().len(), keys.len() as u64);

        // Late retries of finished steps change nothing.
        let before = (a.snapshot(), b.snapshot());
        a.execute(45, &fence).unwrap();
        b.execute(index + 1, &ShardCommand::Install { id: 9, range: moving, entries: vec![] }).unwrap();
        b.execute(index + 2, &ShardCommand::Abort { id: 9, range: moving }).unwrap();
        assert_eq!((a.snapshot(), b.snapshot()), before);
        assert_eq!(b.execute(index + 3, &put(&keys[0], "new")).map(|_| ()), Ok(()));
    }

    /// A page of large values stays within half the command-size limit, so that its `Install`
    /// can be proposed at all: 256 values near the value limit would be a 256 MiB command.
    #[test]
    fn an_export_page_of_large_values_fits_one_command() {
        let limits = KvLimits::default();
        let mut a = ShardKv::new(limits.clone());
        let moving = range(0, 8191);
        a.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 16383)] }).unwrap();
        let big = "x".repeat(limits.max_value_bytes - 64);
        let keys: Vec<String> = (0..7).map(|n| key_in(moving, n)).collect();
        for (i, k) in keys.iter().enumerate() {
            a.execute(2 + i as u64, &put(k, &big)).unwrap();
        }
        a.execute(20, &ShardCommand::Fence { id: 3, range: moving }).unwrap();
        let (mut after, mut copied) = (None, 0);
        loop {
            let query = ShardQuery::Export {
                id: 3,
                range: moving,
                after: after.clone(),
                limit: crate::mover::COPY_PAGE,
            };
            let ShardResponse::Export { entries, next } = a.read(&query).unwrap() else { panic!() };
            let bytes: usize = entries.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
            assert!(!entries.is_empty() && bytes <= limits.max_command_bytes / 2, "{bytes} bytes");
            copied += entries.len();
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        assert_eq!(copied, keys.len(), "every key copied once, in pages of at most one command");
    }

    #[test]
    fn an_abort_thaws_the_source_and_empties_the_target() {
        let (mut a, mut b) = (ShardKv::default(), ShardKv::default());
        let moving = range(0, 99);
        let key = key_in(moving, 0);
        a.execute(1, &ShardCommand::Adopt { ranges: vec![moving] }).unwrap();
        a.execute(2, &put(&key, "v")).unwrap();
        a.execute(3, &ShardCommand::Fence { id: 4, range: moving }).unwrap();
        let ShardResponse::Export { entries, .. } =
            a.read(&ShardQuery::Export { id: 4, range: moving, after: None, limit: 100 }).unwrap()
        else {
            panic!()
        };
        b.execute(1, &ShardCommand::Install { id: 4, range: moving, entries }).unwrap();
        a.execute(4, &ShardCommand::Abort { id: 4, range: moving }).unwrap();
        b.execute(2, &ShardCommand::Abort { id: 4, range: moving }).unwrap();
        assert_eq!(get(&a, &key).unwrap(), Some(b"v".to_vec()));
        assert!(b.store().is_empty() && b.slots().runs().is_empty());
        // The aborted move cannot be resumed by a late step.
        b.execute(3, &ShardCommand::Activate { id: 4, range: moving }).unwrap();
        assert!(get(&b, &key).is_err());
    }

    #[test]
    fn steps_from_the_wrong_state_are_refused_and_change_nothing() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 99)] }).unwrap();
        let before = kv.snapshot();
        // Fencing slots this group does not fully serve, activating or releasing what is not moving,
        // installing keys outside the range, adopting slots twice under another state.
        for bad in [
            ShardCommand::Fence { id: 1, range: range(50, 150) },
            ShardCommand::Activate { id: 1, range: range(0, 10) },
            ShardCommand::Release { id: 1, range: range(0, 10) },
            ShardCommand::Install { id: 1, range: range(0, 10), entries: vec![] },
            ShardCommand::Install {
                id: 2,
                range: range(200, 300),
                entries: vec![KeyValue {
                    key: key_in(range(0, 99), 0).into_bytes(),
                    value: vec![],
                    create_revision: 1,
                    mod_revision: 1,
                    version: 1,
                    expires_at: None,
                }],
            },
        ] {
            assert!(kv.execute(2, &bad).is_err(), "{bad:?} was accepted");
            assert_eq!(kv.snapshot(), before, "{bad:?} changed the state");
        }
    }

    fn range_page(
        kv: &ShardKv,
        slots: Option<SlotRange>,
        start: &str,
        limit: usize,
    ) -> (Vec<String>, Option<String>, Vec<SlotRange>) {
        let request = concord_kv::RangeRequest::new(concord_kv::KeyRange::from(start.as_bytes()), limit);
        match kv.read(&ShardQuery::Range { slots, request }).unwrap() {
            ShardResponse::Range { page, served } => (
                page.kvs.iter().map(|kv| String::from_utf8(kv.key.clone()).unwrap()).collect(),
                page.next_key.map(|k| String::from_utf8(k).unwrap()),
                served,
            ),
            other => panic!("a range read answered {other:?}"),
        }
    }

    fn count(kv: &ShardKv, slots: Option<SlotRange>) -> (u64, Vec<SlotRange>) {
        match kv.read(&ShardQuery::Count { slots }).unwrap() {
            ShardResponse::Count { keys, served } => (keys, served),
            other => panic!("a count answered {other:?}"),
        }
    }

    /// Range reads and counts list user keys, never a collection's records (`FF FF …`): `KEYS`,
    /// `DBSIZE` and `RANDOMKEY` on a sharded node are built on them. Whole-store commands are
    /// refused inside a transaction sent to one group.
    #[test]
    fn range_reads_and_counts_skip_collection_records() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 16383)] }).unwrap();
        kv.execute(2, &put("s", "v")).unwrap();
        let redis = |words: &[&str]| {
            let argv: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            let exec = concord_kv::RedisExec {
                keys: argv.get(1).cloned().into_iter().collect(),
                watch: vec![],
                calls: vec![concord_kv::RedisCall::new(argv)],
            };
            ShardCommand::Kv(Command::new(Time(0), Write::Redis(exec)))
        };
        kv.execute(3, &redis(&["HSET", "h", "f", "1", "g", "2"])).unwrap();
        kv.execute(4, &redis(&["SADD", "set", "m"])).unwrap();
        let (page, next, _) = range_page(&kv, None, "", 100);
        assert_eq!((page, next), (vec!["h".to_string(), "s".into(), "set".into()], None));
        assert_eq!(count(&kv, None).0, 3);
        let flush = kv.execute(5, &redis(&["FLUSHALL"]));
        assert!(format!("{flush:?}").contains("FLUSHALL inside a transaction"), "{flush:?}");
        assert_eq!(count(&kv, None).0, 3, "nothing was flushed");
    }

    /// A group's range read answers for the keys of the slots it serves – in key order, a page at a
    /// time – and says which slots those were; a frozen (outgoing) slot is left out and not
    /// reported served, so a gatherer sees the gap instead of a key that may be served elsewhere.
    #[test]
    fn range_reads_serve_the_served_slots_and_say_which() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 999)] }).unwrap();
        let mut keys: Vec<String> = (0..30).map(|n| key_in(range(0, 999), n)).collect();
        for (i, k) in keys.iter().enumerate() {
            kv.execute(2 + i as u64, &put(k, "v")).unwrap();
        }
        keys.sort();
        // Pages of 7 from the start: every key once, in order.
        let mut seen = Vec::new();
        let mut start = String::new();
        loop {
            let (page, next, served) = range_page(&kv, None, &start, 7);
            assert!(page.len() <= 7);
            assert_eq!(served, vec![range(0, 999)]);
            seen.extend(page);
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        assert_eq!(seen, keys);
        assert_eq!(count(&kv, None), (30, vec![range(0, 999)]));
        // One slot: only its keys, and only it reported.
        let slot = key_slot(keys[3].as_bytes());
        let (page, next, served) = range_page(&kv, Some(SlotRange::single(slot)), "", 100);
        let want: Vec<String> = keys.iter().filter(|k| key_slot(k.as_bytes()) == slot).cloned().collect();
        assert_eq!((page, next, served), (want.clone(), None, vec![SlotRange::single(slot)]));
        assert_eq!(count(&kv, Some(SlotRange::single(slot))).0, want.len() as u64);
        // A slot range outside the group's: nothing served.
        assert_eq!(range_page(&kv, Some(range(5000, 6000)), "", 100), (vec![], None, vec![]));

        // Fence slots 0-499: their keys leave the answer, and the served runs say so.
        kv.execute(40, &ShardCommand::Fence { id: 3, range: range(0, 499) }).unwrap();
        let (page, _, served) = range_page(&kv, None, "", 1000);
        let staying: Vec<String> =
            keys.iter().filter(|k| range(500, 999).contains(key_slot(k.as_bytes()))).cloned().collect();
        assert_eq!((page, served.clone()), (staying.clone(), vec![range(500, 999)]));
        assert_eq!(count(&kv, None), (staying.len() as u64, served));
        // A limit past the store's is refused, as the store refuses it.
        let request = concord_kv::RangeRequest::new(concord_kv::KeyRange::from(Vec::new()), 1_000_000);
        assert!(matches!(
            kv.read(&ShardQuery::Range { slots: None, request }),
            Err(ShardError::Kv(KvError::RangeLimitTooLarge { .. }))
        ));
    }

    fn delete_range(
        kv: &mut ShardKv,
        index: u64,
        prefix: &str,
        slots: Vec<SlotRange>,
    ) -> (u64, u64, Vec<SlotRange>) {
        let command = ShardCommand::DeleteRange { range: concord_kv::KeyRange::prefix(prefix), slots };
        match kv.execute(index, &command).unwrap() {
            ShardResponse::Deleted { deleted, revision, served } => (deleted, revision, served),
            other => panic!("a range delete answered {other:?}"),
        }
    }

    /// A range delete takes the keys of the range in the slots it is asked for *and* serves, at
    /// one revision, and says which slots it served; a slot moving out (frozen) or in is left
    /// whole, keys outside the range too.
    #[test]
    fn range_deletes_take_the_served_slots_whole_and_say_which() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 999)] }).unwrap();
        let keys: Vec<String> = (0..40).map(|n| key_in(range(0, 999), n)).collect();
        for (i, k) in keys.iter().enumerate() {
            kv.execute(2 + i as u64, &put(k, "v")).unwrap();
        }
        let other = (0..)
            .map(|i| format!("x{i}"))
            .find(|k| range(500, 999).contains(key_slot(k.as_bytes())))
            .unwrap();
        kv.execute(50, &put(&other, "stays")).unwrap();
        kv.execute(51, &ShardCommand::Fence { id: 3, range: range(0, 499) }).unwrap();
        let frozen = keys.iter().filter(|k| range(0, 499).contains(key_slot(k.as_bytes()))).count() as u64;
        assert!(frozen > 0 && frozen < 40, "{frozen} keys in the fenced slots");
        let revision = kv.store().revision();

        // Asked for slots 600-16383 only: the keys of 600-999.
        let in_600s = keys.iter().filter(|k| range(600, 999).contains(key_slot(k.as_bytes()))).count() as u64;
        let (deleted, rev, served) = delete_range(&mut kv, 52, "k", vec![range(600, 16383)]);
        assert_eq!((deleted, rev, served), (in_600s, revision + 1, vec![range(600, 999)]));
        // Asked for everything: the rest of the served slots; the frozen ones are not touched.
        let (deleted, rev, served) = delete_range(&mut kv, 53, "k", vec![SlotRange::everything()]);
        assert_eq!((deleted, rev, served), (40 - frozen - in_600s, revision + 2, vec![range(500, 999)]));
        assert_eq!(kv.store().len(), frozen + 1, "the frozen keys and the key outside the range stay");
        assert_eq!(kv.store().get(other.as_bytes()).unwrap().value, b"stays");
        // Nothing left to delete: no new revision.
        assert_eq!(
            delete_range(&mut kv, 54, "k", vec![SlotRange::everything()]),
            (0, revision + 2, vec![range(500, 999)])
        );
        // A group serving nothing of the asked slots says so.
        assert_eq!(delete_range(&mut kv, 55, "k", vec![range(0, 499)]), (0, revision + 2, vec![]));
        // Overlapping asks are served once.
        assert_eq!(
            delete_range(&mut kv, 56, "", vec![range(700, 800), range(500, 750)]).2,
            vec![range(500, 800)]
        );

        // Incoming slots are not served either: a copy being installed is not deleted from.
        let mut target = ShardKv::default();
        target.execute(1, &ShardCommand::Adopt { ranges: vec![range(1000, 1999)] }).unwrap();
        let ShardResponse::Export { entries, .. } =
            kv.read(&ShardQuery::Export { id: 3, range: range(0, 499), after: None, limit: 100 }).unwrap()
        else {
            panic!()
        };
        target.execute(2, &ShardCommand::Install { id: 3, range: range(0, 499), entries }).unwrap();
        let (deleted, _, served) = delete_range(&mut target, 3, "", vec![SlotRange::everything()]);
        assert_eq!((deleted, served), (0, vec![range(1000, 1999)]));
        assert_eq!(target.store().len(), frozen);
        // A range the store refuses (a key bound past the key limit) is refused, nothing deleted.
        let long = "k".repeat(KvLimits::default().max_key_bytes + 1);
        let command = ShardCommand::DeleteRange { range: concord_kv::KeyRange::prefix(long), slots: vec![] };
        assert!(matches!(target.execute(4, &command), Err(ShardError::Kv(_))));
    }

    /// Every key of a transaction – compared, read or written, in either branch – is checked
    /// against the slot table when applied: one key of another shard refuses the whole.
    #[test]
    fn a_transaction_is_refused_whole_for_any_key_not_served() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 99)] }).unwrap();
        let (here, there) = (key_in(range(0, 99), 0), key_in(range(100, 16383), 0));
        kv.execute(2, &put(&here, "v")).unwrap();
        let compare = |key: &str| {
            concord_kv::Compare::new(
                key.as_bytes().to_vec(),
                concord_kv::CompareOp::Equal,
                concord_kv::CompareTarget::Version(0),
            )
        };
        let write_here = TxnOp::Put(concord_kv::Put::new(here.clone(), "w"));
        let txns = [
            concord_kv::Txn {
                compares: vec![compare(&there)],
                success: vec![write_here.clone()],
                failure: vec![],
            },
            concord_kv::Txn {
                compares: vec![],
                success: vec![write_here.clone()],
                failure: vec![TxnOp::Get { key: there.clone().into() }],
            },
            concord_kv::Txn {
                compares: vec![compare(&here)],
                success: vec![],
                failure: vec![write_here.clone(), TxnOp::Delete { key: there.clone().into() }],
            },
        ];
        for txn in txns {
            let refused = kv.execute(3, &ShardCommand::Kv(Command::txn(Time(0), txn.clone()))).unwrap_err();
            assert!(matches!(refused, ShardError::NotServing { state: None, .. }), "{txn:?}: {refused}");
            assert_eq!(get(&kv, &here).unwrap(), Some(b"v".to_vec()));
        }
        let fine =
            concord_kv::Txn { compares: vec![compare(&here)], success: vec![], failure: vec![write_here] };
        assert!(kv.execute(4, &ShardCommand::Kv(Command::txn(Time(0), fine))).is_ok());
        assert_eq!(get(&kv, &here).unwrap(), Some(b"w".to_vec()));
    }

    #[test]
    fn the_deliberate_bug_serves_writes_after_the_fence() {
        let mut kv = ShardKv::default().with_bug(ShardBug::WritesAfterFence);
        let key = key_in(range(0, 99), 0);
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 99)] }).unwrap();
        kv.execute(2, &ShardCommand::Fence { id: 1, range: range(0, 99) }).unwrap();
        assert!(kv.execute(3, &put(&key, "lost in the move")).is_ok());
    }

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_refused() {
        let mut kv = ShardKv::default();
        kv.execute(1, &ShardCommand::Adopt { ranges: vec![range(0, 99), range(200, 299)] }).unwrap();
        kv.execute(2, &put(&key_in(range(0, 99), 3), "v")).unwrap();
        kv.execute(3, &ShardCommand::Fence { id: 5, range: range(200, 250) }).unwrap();
        let mut copy = ShardKv::default();
        copy.restore(&kv.snapshot()).unwrap();
        assert_eq!(copy.snapshot(), kv.snapshot());
        assert_eq!(copy.slots(), kv.slots());
        let before = copy.snapshot();
        for bad in [&kv.snapshot()[..5], &kv.snapshot()[..20], b"\x02\0\0\0\0\0\0\0{}".as_slice()] {
            assert!(copy.restore(bad).is_err());
            assert_eq!(copy.snapshot(), before);
        }
    }
}

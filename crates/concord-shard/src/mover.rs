//! The mover: the steps that carry a slot move through the groups, sans-IO.
//!
//! A move is decided in the metadata group ([`Change::StartMove`]) and then needs work in three
//! logs – the source's, the target's and the map's again – in a fixed order (the crate docs list
//! the protocol). The mover turns the map into that work, one [`Task`] at a time per move:
//!
//! ```text
//! map phase     task                                 its answer leads to
//! Started       propose Fence to the source          propose Fenced{index} to the map
//! Fenced        read an Export page from the source  propose Install(page) to the target
//!               (after Install: next page, or)       propose Copied{index} to the map
//! Copied        propose FinishMove to the map        – (the map changed: start again)
//! Finished      propose Activate to the target       propose Release to the source, then Settled
//! Aborted       propose Abort to the source          propose Abort to the target, then Settled
//! ```
//!
//! Whoever leads the metadata group runs the mover (the simulator's and the server's node alike):
//! [`start`] gives the first task of every move in a map, [`follow`] the next one from a task's
//! answer. Nothing is remembered between tasks but the task itself, so a mover that crashes, loses
//! an answer or is replaced by a new leader just calls [`start`] on the map it has: every step is
//! idempotent in the groups ([`crate::kv`]) and checked against the phase in the map, so running a
//! step twice, or late, changes nothing.

use crate::kv::{ShardCommand, ShardError, ShardQuery, ShardResponse};
use crate::map::{Change, Move, Outcome, Phase, Proposal, ShardId, ShardMap};

/// Keys per copied page at most: one `Install` entry in the target's log, large enough that
/// 100 000 keys take a few hundred entries. A page also stays within half the store's command-size
/// limit (`ShardQuery::Export`): 256 values near the 1 MiB value limit would be a 256 MiB entry,
/// beyond any peer frame, and the move would retry it forever.
pub const COPY_PAGE: usize = 256;

/// One step of one move, for the driver to carry out and answer with [`follow`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Propose `command` in `shard`'s group (answered with the command's output).
    Group { id: u64, shard: ShardId, command: ShardCommand },
    /// A linearizable read of `shard`'s group (answered with the query's output).
    Read { id: u64, shard: ShardId, query: ShardQuery },
    /// Propose a change to the map (the map's next state starts the move's next task).
    Map(Proposal),
}

/// A deliberate bug in the mover, for showing that the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MoverBug {
    #[default]
    None,
    /// Flip the map before the target holds the data: the copy installs nothing.
    FlipBeforeCopy,
}

/// The first task of every move and ending in `map`, by move id.
pub fn start(map: &ShardMap, bug: MoverBug) -> Vec<Task> {
    let mut tasks = Vec::new();
    for m in map.moves() {
        let (id, range) = (m.id, m.range);
        tasks.push(match m.phase {
            Phase::Started => Task::Group { id, shard: m.from, command: ShardCommand::Fence { id, range } },
            Phase::Fenced { .. } if bug == MoverBug::FlipBeforeCopy => {
                Task::Group { id, shard: m.to, command: ShardCommand::Install { id, range, entries: vec![] } }
            }
            Phase::Fenced { .. } => export(m, None),
            Phase::Copied { .. } => map_change(Change::FinishMove { id }),
        });
    }
    for ending in map.endings() {
        let m = ending.moved;
        let (id, range) = (m.id, m.range);
        tasks.push(match ending.outcome {
            Outcome::Finished => {
                Task::Group { id, shard: m.to, command: ShardCommand::Activate { id, range } }
            }
            Outcome::Aborted => Task::Group { id, shard: m.from, command: ShardCommand::Abort { id, range } },
        });
    }
    tasks
}

/// The task after `task`, given its answer and the map now (`None`: the move waits for the map to
/// change, or for a fresh [`start`] after a refusal).
pub fn follow(
    map: &ShardMap,
    task: &Task,
    answer: &Result<ShardResponse, ShardError>,
    bug: MoverBug,
) -> Option<Task> {
    let Ok(answer) = answer else { return None }; // refused: start over from the map
    let (id, shard) = match task {
        Task::Group { id, shard, .. } | Task::Read { id, shard, .. } => (*id, *shard),
        Task::Map(_) => return None,
    };
    let current = map.moves().find(|m| m.id == id);
    let ending = map.endings().find(|e| e.moved.id == id);
    match (task, answer, current, ending) {
        (
            Task::Group { command: ShardCommand::Fence { .. }, .. },
            ShardResponse::Step { index },
            Some(_),
            _,
        ) => Some(map_change(Change::Fenced { id, source_index: *index })),
        // The Install's answer asks for the next page: a full page's last key is the cursor.
        (Task::Read { .. }, ShardResponse::Export { entries, .. }, Some(m), _) => {
            let page = ShardCommand::Install { id, range: m.range, entries: entries.clone() };
            Some(Task::Group { id, shard: m.to, command: page })
        }
        (
            Task::Group { command: ShardCommand::Install { entries, .. }, .. },
            ShardResponse::Step { index },
            Some(m),
            _,
        ) => {
            // The copy ends with the first empty page: a page may be short because its values
            // are large (pages stay within half the command-size limit), so only an empty one
            // says that nothing is left after the cursor.
            let cursor = entries.last().map(|kv| kv.key.clone());
            if entries.is_empty() || bug == MoverBug::FlipBeforeCopy {
                Some(map_change(Change::Copied { id, target_index: *index }))
            } else {
                Some(export(m, cursor))
            }
        }
        (
            Task::Group { command: ShardCommand::Activate { .. }, .. },
            ShardResponse::Step { .. },
            _,
            Some(e),
        ) => {
            let (from, range) = (e.moved.from, e.moved.range);
            Some(Task::Group { id, shard: from, command: ShardCommand::Release { id, range } })
        }
        (Task::Group { command: ShardCommand::Abort { .. }, .. }, ShardResponse::Step { .. }, _, Some(e))
            if shard == e.moved.from =>
        {
            let (to, range) = (e.moved.to, e.moved.range);
            Some(Task::Group { id, shard: to, command: ShardCommand::Abort { id, range } })
        }
        (
            Task::Group { command: ShardCommand::Release { .. } | ShardCommand::Abort { .. }, .. },
            _,
            _,
            Some(_),
        ) => Some(map_change(Change::Settled { id })),
        _ => None,
    }
}

fn export(m: &Move, after: Option<Vec<u8>>) -> Task {
    let query = ShardQuery::Export { id: m.id, range: m.range, after, limit: COPY_PAGE };
    Task::Read { id: m.id, shard: m.from, query }
}

fn map_change(change: Change) -> Task {
    Task::Map(Proposal { if_epoch: None, change })
}

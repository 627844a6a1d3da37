//! The metadata group's state machine: the [`ShardMap`] replicated by Raft.
//!
//! A dedicated Raft group (the same `RaftNode` as every shard, over this machine instead of the
//! key-value store) orders every [`Proposal`]. Replicas apply the same proposals in the same order,
//! so they hold the same map at every log index – the shard map is as strongly consistent as the
//! data. Refused proposals are committed too (so the proposer learns why) but change nothing.

use crate::map::{Applied, MapError, Proposal, ShardId, ShardMap};
use crate::slot::Slot;
use concord_core::{StateMachine, StateMachineError};
use serde::{Deserialize, Serialize};

/// What a reader asks of the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapQuery {
    /// The whole map.
    Map,
    /// The owner of one slot.
    Owner(Slot),
}

/// The machine's answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapOutput {
    Applied(Result<Applied, MapError>),
    Map(Box<ShardMap>),
    Owner(Option<ShardId>),
}

/// The shard map as a replicated state machine (in memory: the map is small – 16 384 slot owners
/// and a few hundred shards – so a snapshot is the map itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapMachine {
    map: ShardMap,
}

impl MapMachine {
    pub fn map(&self) -> &ShardMap {
        &self.map
    }
}

impl StateMachine for MapMachine {
    type Command = Proposal;
    type Query = MapQuery;
    type Output = MapOutput;

    fn apply(&mut self, _index: u64, proposal: &Proposal) -> MapOutput {
        MapOutput::Applied(self.map.apply(proposal))
    }

    fn query(&self, query: &MapQuery) -> MapOutput {
        match query {
            MapQuery::Map => MapOutput::Map(Box::new(self.map.clone())),
            MapQuery::Owner(slot) => MapOutput::Owner(self.map.owner(*slot)),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).expect("a shard map serialises")
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let corrupt = |e: String| StateMachineError::Corrupt(e);
        let map: ShardMap =
            serde_json::from_slice(snapshot).map_err(|e| corrupt(format!("shard map snapshot: {e}")))?;
        map.check().map_err(|e| corrupt(format!("shard map snapshot breaks an invariant: {e}")))?;
        self.map = map;
        Ok(())
    }
}

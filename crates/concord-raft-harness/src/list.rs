//! [`ListMachine`]: the harness's state machine, an append-only list of integers.
//!
//! Small enough that a test can say what every node must hold (`vec![1, 2, 3]`), and complete
//! enough to exercise everything Raft asks of a state machine: snapshots, and – with
//! [`ListMachine::durable`] – a *durable* machine that checkpoints into a disk of its own and is
//! exported in chunks, as the real database's redb store is. It is also a `KvStateMachine`, so a
//! `RaftNode<ListMachine>` can be driven through the generic `Service` adapter.

use concord_core::{
    Access, Completion, KvStateMachine, Op, OpFn, StateMachine, StateMachineError, Time, Value,
};
use serde::{Deserialize, Serialize};

/// An append-only list of integers: commands append, the query reads the whole list.
///
/// In memory by default. [`ListMachine::durable`] makes it a *durable* machine (as the real
/// database's redb store is): it checkpoints into a [`ListDisk`] that outlives crashes, loses the
/// applies after its last checkpoint in a crash, and reopens in that checkpoint.
#[derive(Clone, Debug, Default)]
pub struct ListMachine {
    pub items: Vec<i64>,
    pub disk: Option<ListDisk>,
    /// A durable list: an export being received.
    pub incoming: Vec<u8>,
}

/// A durable [`ListMachine`]'s disk: its last checkpoint, `(items, sidecar)`.
pub type ListDisk = std::sync::Arc<std::sync::Mutex<Option<(Vec<i64>, Vec<u8>)>>>;

impl ListMachine {
    /// A durable list, reopened in the last checkpoint on `disk` (empty if none).
    pub fn durable(disk: ListDisk) -> ListMachine {
        let items = disk.lock().expect("disk").as_ref().map(|(items, _)| items.clone()).unwrap_or_default();
        ListMachine { items, disk: Some(disk), incoming: Vec::new() }
    }
}

/// What [`ListMachine`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListOutput {
    /// The command appended its element; the list now has `len` items.
    Appended {
        len: usize,
    },
    Items(Vec<i64>),
}

impl StateMachine for ListMachine {
    type Command = i64;
    type Query = ();
    type Output = ListOutput;

    fn apply(&mut self, _index: u64, command: &i64) -> ListOutput {
        self.items.push(*command);
        ListOutput::Appended { len: self.items.len() }
    }
    fn query(&self, _query: &()) -> ListOutput {
        ListOutput::Items(self.items.clone())
    }
    fn snapshot(&self) -> Vec<u8> {
        match &self.disk {
            // A durable machine exports its checkpoint.
            Some(disk) => {
                let checkpoint = disk.lock().expect("disk");
                let items = checkpoint.as_ref().map(|(items, _)| items.as_slice()).unwrap_or_default();
                serde_json::to_vec(items).expect("serialises")
            }
            None => serde_json::to_vec(&self.items).expect("serialises"),
        }
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        self.items =
            serde_json::from_slice(snapshot).map_err(|e| StateMachineError::Corrupt(e.to_string()))?;
        Ok(())
    }
    fn is_durable(&self) -> bool {
        self.disk.is_some()
    }
    fn checkpoint(&mut self, sidecar: Vec<u8>) -> Result<(), StateMachineError> {
        let disk = self.disk.as_ref().ok_or("an in-memory list has no checkpoints")?;
        *disk.lock().expect("disk") = Some((self.items.clone(), sidecar));
        Ok(())
    }
    fn checkpoint_sidecar(&self) -> Option<Vec<u8>> {
        self.disk.as_ref()?.lock().expect("disk").as_ref().map(|(_, sidecar)| sidecar.clone())
    }
    /// The export: the checkpoint's items and sidecar, as JSON.
    fn export_len(&mut self) -> Result<Option<u64>, StateMachineError> {
        Ok(Some(self.export()?.len() as u64))
    }
    fn export_read(&mut self, offset: u64, max: usize) -> Result<Vec<u8>, StateMachineError> {
        let bytes = self.export()?;
        let start = (offset as usize).min(bytes.len());
        Ok(bytes[start..(start + max).min(bytes.len())].to_vec())
    }
    fn import_chunk(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StateMachineError> {
        if offset == 0 {
            self.incoming.clear();
        }
        if offset != self.incoming.len() as u64 {
            return Err(format!("import out of order: offset {offset}, have {}", self.incoming.len()).into());
        }
        self.incoming.extend_from_slice(bytes);
        Ok(())
    }
    fn import_finish(&mut self) -> Result<(), StateMachineError> {
        let disk = self.disk.as_ref().ok_or("an in-memory list has no checkpoints")?;
        let (items, sidecar): (Vec<i64>, Vec<u8>) =
            serde_json::from_slice(&std::mem::take(&mut self.incoming))
                .map_err(|e| StateMachineError::Corrupt(e.to_string()))?;
        *disk.lock().expect("disk") = Some((items.clone(), sidecar));
        self.items = items;
        Ok(())
    }
}

impl ListMachine {
    fn export(&self) -> Result<Vec<u8>, StateMachineError> {
        let disk = self.disk.as_ref().ok_or("an in-memory list has no checkpoints")?;
        let checkpoint = disk.lock().expect("disk");
        let (items, sidecar) = checkpoint.as_ref().ok_or("no checkpoint to export")?;
        Ok(serde_json::to_vec(&(items, sidecar)).expect("serialises"))
    }
}

impl KvStateMachine for ListMachine {
    fn access(op: &Op, _now: Time) -> Access<i64, ()> {
        match op.f {
            OpFn::Read => Access::Read(()),
            _ => Access::Write(op.value.as_int().unwrap_or(0)),
        }
    }
    fn completion(op: &Op, output: &ListOutput) -> Completion {
        match output {
            ListOutput::Appended { .. } => Completion::Ok(op.value.clone()),
            ListOutput::Items(items) => {
                Completion::Ok(Value::List(items.iter().map(|&i| Value::Int(i)).collect()))
            }
        }
    }
}

//! A connection's pipeline of plain reads or plain writes, handed to the backend as **one** batch.
//!
//! While the reader works through requests it already has in its buffer (a pipelined client),
//! consecutive `GET`s – or consecutive plain `SET`s – are collected into one [`Collecting`] batch
//! instead of each going to the backend on its own. The batch is sent with
//! [`Backend::read_batch`] or [`Backend::write_batch`] (one driver input, one deadline, one reply
//! channel on a Raft node; one log append and one fsync for writes) when it is **flushed**:
//!
//! * before any request that does not join it (another kind of request, another consistency) is
//!   dispatched – so writes keep their order with every other write of the connection, and a read
//!   after a write in the same pipeline is started only once the write is answered (the server's
//!   "switch between reads and writes" rule waits for it as before);
//! * when the reader has decoded everything it had, before it goes back to the socket;
//! * before the reader waits for room in the writer's queue (the writer may be waiting for one
//!   of the batch's answers);
//! * once it holds [`MAX_BATCH`] requests.
//!
//! So a batch is always sent before anything could wait for it. Each request keeps its own
//! [`Pending`](crate::server) reply in the writer's queue, in request order: a future that waits
//! for the batch's answers and takes its own ([`Collecting::slot`]). If the connection ends
//! before a batch is sent, its requests answer an error (nobody is left to read them).

use crate::backend::{Backend, BackendError, BoxFuture, RequestConsistency};
use crate::exec::Access;
use concord_kv::{Command, Query, Response};
use futures::future::{FutureExt, Shared};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most requests in one batch.
pub(crate) const MAX_BATCH: usize = 64;

type Answer = Result<Response, BackendError>;
type Answers = Arc<Vec<Mutex<Option<Answer>>>>;

/// The batch being collected (see the module docs).
pub(crate) struct Collecting {
    /// [`Access::Read`]: `queries`; [`Access::Write`]: `commands`.
    access: Access,
    consistency: RequestConsistency,
    queries: Vec<Query>,
    commands: Vec<Command>,
    submit: oneshot::Sender<BoxFuture<Vec<Answer>>>,
    answers: Shared<BoxFuture<Answers>>,
}

impl Collecting {
    pub(crate) fn new(access: Access, consistency: RequestConsistency) -> Collecting {
        let (submit, submitted) = oneshot::channel::<BoxFuture<Vec<Answer>>>();
        let answers: BoxFuture<Answers> = Box::pin(async move {
            match submitted.await {
                Ok(batch) => Arc::new(batch.await.into_iter().map(|a| Mutex::new(Some(a))).collect()),
                // Dropped unsent: the connection ended.
                Err(_) => Arc::new(Vec::new()),
            }
        });
        Collecting {
            access,
            consistency,
            queries: Vec::new(),
            commands: Vec::new(),
            submit,
            answers: answers.shared(),
        }
    }

    /// Whether a request of `access` at `consistency` may join this batch.
    pub(crate) fn accepts(&self, access: Access, consistency: RequestConsistency) -> bool {
        self.access == access && self.consistency == consistency && self.len() < MAX_BATCH
    }

    pub(crate) fn len(&self) -> usize {
        self.queries.len() + self.commands.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= MAX_BATCH
    }

    /// Add a read; its answer, once the batch is sent and answered.
    pub(crate) fn read(&mut self, query: Query) -> BoxFuture<Answer> {
        debug_assert_eq!(self.access, Access::Read);
        self.queries.push(query);
        self.slot(self.len() - 1)
    }

    /// Add a write; its answer, once the batch is sent and answered.
    pub(crate) fn write(&mut self, command: Command) -> BoxFuture<Answer> {
        debug_assert_eq!(self.access, Access::Write);
        self.commands.push(command);
        self.slot(self.len() - 1)
    }

    fn slot(&self, index: usize) -> BoxFuture<Answer> {
        let answers = self.answers.clone();
        Box::pin(async move {
            let answers = answers.await;
            answers.get(index).and_then(|slot| slot.lock().expect("batch slot lock").take()).unwrap_or_else(
                || {
                    Err(BackendError::Unavailable(
                        "the connection closed before its pipeline was sent".into(),
                    ))
                },
            )
        })
    }

    /// Send the batch to `backend` now (in request order). Whichever of its requests' replies is
    /// polled first drives it (the writer polls them in order; a [`Shared`] future wakes them all).
    pub(crate) fn send(self, backend: &dyn Backend) {
        let batch = match self.access {
            Access::Write => backend.write_batch(self.commands, self.consistency),
            _ => backend.read_batch(self.queries, self.consistency),
        };
        // The receiver lives in `answers`, which every reply of the batch holds.
        let _ = self.submit.send(batch);
    }
}

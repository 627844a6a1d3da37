//! A connection's pipeline of plain reads or plain writes, handed to the backend as **one** batch,
//! and answered to the writer as **one** pending entry.
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
//! * before the reader waits for room in the writer's queue (the writer may be waiting for the
//!   batch's answers);
//! * once it holds [`MAX_BATCH`] requests.
//!
//! So a batch is always sent before anything could wait for it.
//!
//! **One entry in the writer's queue per batch.** The batch's first request puts the batch's
//! replies future ([`Collecting::new`]) in the writer's queue, in that request's place; the
//! requests that join it put nothing there, since nothing can come between them (whatever does not
//! join flushes the batch first). Once the batch is answered the future yields every request's
//! reply, in request order, and the writer encodes them one after the other. So a pipelined
//! request costs no future, box or channel message of its own – the profile's per-request
//! machinery between reader and writer (docs/bench/redis-door.md). If the connection ends before
//! a batch is sent, its replies future yields nothing: nobody is left to read them.

use crate::backend::{Backend, BackendError, BoxFuture, RequestConsistency};
use crate::exec::Access;
use crate::frame::Frame;
use crate::pipeline::ready_now;
use concord_kv::{Command, Query, Response};
use tokio::sync::oneshot;

/// Most requests in one batch.
pub(crate) const MAX_BATCH: usize = 64;

/// One request's answer from the backend.
pub(crate) type Answer = Result<Response, BackendError>;
/// Every reply of a batch, in request order, each with its size as counted in the connection's
/// output buffer.
pub(crate) type Replies = Vec<(Frame, usize)>;

/// The batch being collected (see the module docs). `R`: what each request's reply needs besides
/// its answer (its key, its timing), kept in request order.
pub(crate) struct Collecting<R> {
    /// [`Access::Read`]: `queries`; [`Access::Write`]: `commands`.
    access: Access,
    consistency: RequestConsistency,
    queries: Vec<Query>,
    commands: Vec<Command>,
    requests: Vec<R>,
    submit: oneshot::Sender<BoxFuture<Replies>>,
}

impl<R: Send + 'static> Collecting<R> {
    /// A new batch, and the future of all its replies: the writer's entry for the whole batch,
    /// queued in its first request's place.
    pub(crate) fn new(
        access: Access,
        consistency: RequestConsistency,
    ) -> (Collecting<R>, BoxFuture<Replies>) {
        let (submit, submitted) = oneshot::channel::<BoxFuture<Replies>>();
        let replies: BoxFuture<Replies> = Box::pin(async move {
            match submitted.await {
                Ok(replies) => replies.await,
                // Dropped unsent: the connection ended.
                Err(_) => Vec::new(),
            }
        });
        let batch = Collecting {
            access,
            consistency,
            queries: Vec::new(),
            commands: Vec::new(),
            requests: Vec::new(),
            submit,
        };
        (batch, replies)
    }

    /// Whether a request of `access` at `consistency` may join this batch.
    pub(crate) fn accepts(&self, access: Access, consistency: RequestConsistency) -> bool {
        self.access == access && self.consistency == consistency && !self.is_full()
    }

    pub(crate) fn len(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= MAX_BATCH
    }

    /// Add a read, with what its reply needs.
    pub(crate) fn read(&mut self, query: Query, request: R) {
        debug_assert_eq!(self.access, Access::Read);
        self.queries.push(query);
        self.requests.push(request);
    }

    /// Add a write, with what its reply needs.
    pub(crate) fn write(&mut self, command: Command, request: R) {
        debug_assert_eq!(self.access, Access::Write);
        self.commands.push(command);
        self.requests.push(request);
    }

    /// Send the batch to `backend` now (in request order). `reply` makes the batch's replies of
    /// its answers and its requests, in order, once the backend has answered.
    pub(crate) fn send<F>(self, backend: &dyn Backend, reply: F)
    where
        F: FnOnce(Vec<Answer>, Vec<R>) -> BoxFuture<Replies> + Send + 'static,
    {
        let answers = match self.access {
            Access::Write => backend.write_batch(self.commands, self.consistency),
            _ => backend.read_batch(self.queries, self.consistency),
        };
        let requests = self.requests;
        let mut replies: BoxFuture<Replies> = Box::pin(async move { reply(answers.await, requests).await });
        // Polled once now, so that a backend whose future submits lazily still submits in
        // request order (the writer may come to it later); an answer ready at once is kept.
        if let Some(ready) = ready_now(&mut replies) {
            replies = Box::pin(std::future::ready(ready));
        }
        // The receiver lives in the writer's entry for this batch.
        let _ = self.submit.send(replies);
    }
}

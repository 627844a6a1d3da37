//! What the reader and the writer of one connection share about its pipeline.
//!
//! A connection is two tasks (see [`crate::server`]): the reader decodes requests and submits
//! them to the backend; the writer waits for their answers in request order and writes them.
//! They coordinate through one [`Pipeline`], and through nothing else per request – no task, no
//! channel and no lock per command, which is what lets a pipelined client go at the speed of its
//! batches rather than of its commands:
//!
//! * **Unanswered requests.** The reader counts each backend request it starts
//!   ([`Pipeline::started`] hands out an [`Unanswered`] guard that travels with the request's
//!   future); the count falls when the writer has the answer (or drops the future). The reader
//!   waits for zero when the pipeline switches between reads and writes, and before `EXEC` reads
//!   the revisions it watched – the only places where one request must see the previous one's
//!   effect before it is submitted.
//! * **Is the reader still decoding?** While the reader is working through bytes it already has,
//!   more replies are on their way, so the writer holds what it has encoded rather than write a
//!   partial batch; once the reader goes back to the socket (or waits), it says so
//!   ([`Pipeline::decoding_done`]) and the writer writes. So a pipeline of 16 commands is answered
//!   with one `write`, as Redis answers it from one event-loop turn, while a lone command is
//!   written the moment its answer arrives.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// See the module docs.
#[derive(Default)]
pub(crate) struct Pipeline {
    unanswered: AtomicUsize,
    all_answered: Notify,
    decoding: AtomicBool,
    decoding_done: Notify,
}

impl Pipeline {
    /// A backend request starts; it counts as unanswered until the guard is dropped.
    pub(crate) fn started(self: &Arc<Self>) -> Unanswered {
        self.unanswered.fetch_add(1, Ordering::SeqCst);
        Unanswered(self.clone())
    }

    pub(crate) fn unanswered(&self) -> usize {
        self.unanswered.load(Ordering::SeqCst)
    }

    /// Wait until every request started so far has its answer.
    pub(crate) async fn all_answered(&self) {
        loop {
            let notified = self.all_answered.notified();
            tokio::pin!(notified);
            // Registered before the check, so a last answer between the two is not missed.
            notified.as_mut().enable();
            if self.unanswered() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The reader has bytes to decode: replies will follow each other closely.
    pub(crate) fn decoding(&self) {
        self.decoding.store(true, Ordering::SeqCst);
    }

    /// The reader has decoded everything it had, or is about to wait: the writer should not hold
    /// replies back any longer.
    pub(crate) fn decoding_done(&self) {
        if self.decoding.swap(false, Ordering::SeqCst) {
            self.decoding_done.notify_one();
        }
    }

    pub(crate) fn is_decoding(&self) -> bool {
        self.decoding.load(Ordering::SeqCst)
    }

    /// Resolves when the reader stops decoding (at once if it already has: a stored permit may
    /// also wake it early, which only costs a smaller write).
    pub(crate) async fn wait_decoding_done(&self) {
        if self.is_decoding() {
            self.decoding_done.notified().await;
        }
    }
}

/// One started request, counted in its [`Pipeline`] until dropped.
pub(crate) struct Unanswered(Arc<Pipeline>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.0.unanswered.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_answered.notify_waiters();
        }
    }
}

/// Poll `future` once without a waker: its output if it is ready now. (A later `.await`
/// registers the real waker.)
pub(crate) fn ready_now<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::Pin::new(future).poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

//! What the two consistency modes' front doors share: the client-facing error, the metrics hook,
//! and (in [`http`] and [`resp`]) the HTTP and RESP plumbing.
//!
//! The strong mode ([`crate::strong`]) and the eventual mode ([`crate::eventual`]) each have an
//! HTTP API and a RESP backend of their own, because what a request *means* differs (a Raft
//! command with revisions, or a Dynamo write with a context and siblings). How a request is
//! *carried* does not: the same [`ClientError`], the same `{"error": …}` answers and statuses, the
//! same body limit and `/metrics` page (who may call what is [`crate::auth`]'s, for both), the
//! same RESP listener and error mapping. That part lives here, once, so the two front doors cannot
//! drift apart. So do the limits that keep clients from exhausting the node: the descriptor budget
//! ([`budget`]) and the accept loops with their caps and timeouts ([`listen`]).

pub mod budget;
pub mod cas_txn;
pub mod http;
pub mod listen;
pub mod pubsub;
pub mod resp;

use crate::metrics::Metrics;
use concord_kv::KvError;
use std::future::Future;
use std::time::Instant;

/// Why a request did not succeed. Mirrors `concord_resp::BackendError`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// No leader could be reached (only for requests that are not forwarded).
    #[error("not the leader{}", leader.map(|l| format!("; the leader is node {l}")).unwrap_or_default())]
    NotLeader { leader: Option<u32> },
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed without an answer; a write may or may not have taken effect.
    #[error("timed out; the outcome is unknown")]
    Timeout,
    /// A read's deadline passed: nothing was changed, so retrying is safe (unlike [`Self::Timeout`]).
    #[error("the read timed out (it changed nothing: retry)")]
    ReadTimeout,
    /// Refused before taking effect (back-pressure, a transfer in progress, …).
    #[error("rejected: {0}")]
    Rejected(String),
    /// Raft could not tell whether the write took effect.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The store refused the command or query (it certainly did not take effect).
    #[error("{0}")]
    Kv(KvError),
    /// The data disk is full: the write was refused before it took effect; reads still work
    /// (see [`crate::disk_space`]).
    #[error("{0}")]
    NoSpace(String),
}

impl ClientError {
    /// The same error, for a read: a timeout then changed nothing, and says so.
    pub fn of_read(self) -> ClientError {
        match self {
            ClientError::Timeout => ClientError::ReadTimeout,
            other => other,
        }
    }

    /// The `result` label of a request's metrics: `"ok"` for a success, else the kind of failure.
    pub fn label_of<T>(result: &Result<T, ClientError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(ClientError::NotLeader { .. }) => "not_leader",
            Err(ClientError::Unavailable(_)) => "unavailable",
            Err(ClientError::Timeout | ClientError::ReadTimeout) => "timeout",
            Err(ClientError::Rejected(_)) => "rejected",
            Err(ClientError::Unknown(_)) => "unknown",
            Err(ClientError::Kv(_)) => "invalid",
            Err(ClientError::NoSpace(_)) => "no_space",
        }
    }
}

/// Run a request, counting it and its latency in `metrics` under `kind` (the metrics hook of every
/// front door).
pub async fn timed<T>(
    metrics: &Metrics,
    kind: &'static str,
    f: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let start = Instant::now();
    let r = f.await;
    metrics.request(kind, ClientError::label_of(&r), start.elapsed());
    r
}

#[cfg(test)]
mod tests {
    use super::ClientError;

    #[test]
    fn a_read_that_times_out_says_it_changed_nothing() {
        // Issue #20: a read's timeout said "the outcome is unknown", as a write's does.
        assert_eq!(
            ClientError::Timeout.of_read().to_string(),
            "the read timed out (it changed nothing: retry)"
        );
        assert_eq!(ClientError::Timeout.to_string(), "timed out; the outcome is unknown");
        use axum::response::IntoResponse;
        let read = crate::front::http::ApiError::from_error(ClientError::ReadTimeout).into_response();
        assert_eq!(read.status(), axum::http::StatusCode::GATEWAY_TIMEOUT);
    }
}

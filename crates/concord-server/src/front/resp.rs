//! The RESP plumbing both modes' backends share: the listener ([`spawn`]), the mapping from a
//! [`ClientError`] to `concord-resp`'s [`BackendError`] ([`backend_error`]), and the metrics
//! labels of RESP writes ([`kind_of`]).
//!
//! Each mode has its own [`concord_resp::Backend`] (`crate::strong::resp::NodeBackend`,
//! `crate::eventual::resp::EventualBackend`), because a Redis command becomes a different request
//! in each; how the connection is served – `requirepass`, the default consistency, TLS, the limits
//! of the store – is the same, and is here.

use super::listen::Door;
use super::ClientError;
use crate::config::NodeConfig;
use concord_core::Time;
use concord_kv::Write;
use concord_resp::{Backend, BackendError, RespConfig};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A client error as `concord-resp` reports it. Only "not the leader" differs between the modes,
/// so the caller says what it becomes (`not_leader` gets the leader hint, if any).
pub fn backend_error(e: ClientError, not_leader: impl FnOnce(Option<u32>) -> BackendError) -> BackendError {
    match e {
        ClientError::NotLeader { leader } => not_leader(leader),
        ClientError::Unavailable(why) => BackendError::Unavailable(why),
        ClientError::Timeout | ClientError::ReadTimeout => BackendError::Timeout,
        ClientError::Rejected(why) => BackendError::Rejected(why),
        ClientError::Unknown(why) => BackendError::Unknown(why),
        ClientError::Kv(e) => BackendError::Kv(e),
        ClientError::NoSpace(why) => BackendError::NoSpace(why),
    }
}

/// The `kind` label of a RESP write's metrics.
pub fn kind_of(write: &Write) -> &'static str {
    match write {
        Write::Put(_) => "resp_put",
        Write::Delete { .. } | Write::DeleteRange(_) => "resp_delete",
        Write::Cas(_) => "resp_cas",
        Write::Increment { .. } => "resp_incr",
        Write::Txn(_) => "resp_txn",
        Write::Expire { .. } => "resp_expire",
        Write::Redis(_) => "resp_redis",
    }
}

/// A node's clock in milliseconds (`Backend::now_ms`: the clock TTLs expire by).
pub fn millis(now: Time) -> u64 {
    now.as_nanos() / 1_000_000
}

/// Serve RESP clients on `listener` until shutdown, over TLS when `tls` is given: the strong mode's
/// backend or the eventual mode's. At most `max_clients` connections (the configured `maxclients`
/// lowered to the descriptor budget); refusals, disconnections and accept errors are counted and
/// logged through `door`.
pub fn spawn(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    config: &NodeConfig,
    acl: Arc<concord_resp::Acl>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    door: Arc<Door>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rc: RespConfig = config.resp_config();
    rc.max_clients = door.max_connections;
    rc.events = door;
    // The node's users, shared with its HTTP door (`crate::auth`).
    rc.acl = Some(acl);
    let stopped = async move {
        let _ = shutdown.changed().await;
    };
    match tls {
        None => tokio::spawn(concord_resp::serve(listener, backend, rc, stopped)),
        Some(acceptor) => {
            let acceptor = crate::tls::RespTls { acceptor };
            tokio::spawn(concord_resp::serve_with_acceptor(listener, acceptor, backend, rc, stopped))
        }
    };
}

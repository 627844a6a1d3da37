//! The RESP (Redis protocol) front door: `concord-resp`'s server on top of a [`NodeHandle`].
//!
//! Not wired yet: `concord-resp`'s server is being built in parallel. Until it lands, a node
//! configured with `redis_addr` logs that RESP is unavailable and serves HTTP only.

use crate::config::NodeConfig;
use crate::handle::NodeHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serve RESP clients on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    _handle: NodeHandle,
    _config: &NodeConfig,
    _shutdown: watch::Receiver<bool>,
) {
    tracing::error!(
        "RESP is not available in this build; {} is bound but not served",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
}

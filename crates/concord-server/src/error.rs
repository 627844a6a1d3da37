//! [`Error`]: what concord-server's public functions return when a node cannot start or run.
//!
//! One enum for the crate, as raft-rs has one `Error`: a caller (the CLI, a test, an embedding
//! program) matches the *kind* of failure – a port in use, a bad configuration, a TLS file that
//! does not fit, a disk that failed – instead of searching the message for a substring. The
//! message itself is unchanged: every variant displays the complete sentence the node has always
//! printed, naming the file, address or setting at fault.
//!
//! Client-request failures are not here: they are [`crate::ClientError`], which the front doors
//! turn into HTTP statuses and RESP errors.

use concord_core::NodeId;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot run: a bad value, a missing or contradictory setting, a file it
    /// names that cannot be read. Found before any data file or socket is touched.
    #[error("{0}")]
    Config(String),
    /// A TLS certificate, key or CA file is missing, malformed, or does not fit the others.
    #[error("{0}")]
    Tls(String),
    /// The data directory: creating it, the write-ahead log, the state database, the peer file.
    #[error("{0}")]
    Storage(String),
    /// The protocol cannot boot from the durable state it recovered.
    #[error("node {node} cannot boot from {}: {reason}", dir.display())]
    Boot { node: NodeId, dir: PathBuf, reason: String },
    /// A port this node should listen on is taken (`culprit` guesses by whom).
    #[error("{addr} ({what}) is already in use ({culprit})")]
    AddrInUse { addr: SocketAddr, what: String, culprit: String },
    /// An address this node should listen on is not one of this machine's.
    #[error("{addr} ({what}) is not an address of this machine: {source}")]
    AddrNotAvailable { addr: SocketAddr, what: String, source: std::io::Error },
    /// Any other failure to listen.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen { addr: SocketAddr, what: String, source: std::io::Error },
    /// The peer transport: dialing a peer, the handshake, adding a peer at run time.
    #[error("{0}")]
    Peer(String),
    /// The driver stopped: its disk failed (the message says how), or its task failed.
    #[error("{0}")]
    Driver(String),
}

/// For callers still speaking `Result<_, String>` (and `?` into them): the message.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}

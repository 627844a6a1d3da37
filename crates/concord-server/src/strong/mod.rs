//! The strong mode: Raft replicating the key-value store, behind its front doors.
//!
//! `concord serve` (the default `mode = "strong"`) runs a [`crate::RaftKv`] in the generic
//! [`crate::driver`]. This folder holds what is the strong mode's own, in the same shape as
//! [`crate::eventual`]:
//!
//! * [`handle`] – [`NodeHandle`], the client side: leader routing, forwarding, Raft sessions,
//!   deadlines;
//! * [`http`] – the HTTP API (revisions, CAS, transactions, membership);
//! * [`resp`] – the RESP backend;
//! * [`StrongInbox`] – where frames from authenticated peers go.
//!
//! What both modes' front doors share (errors, the HTTP and RESP plumbing) is in
//! [`crate::front`]; what is not about a mode at all (driver, transport, storage, TLS, metrics,
//! dashboard) sits at the top of the crate.

pub mod handle;
pub mod http;
pub mod resp;

pub use handle::{HandleParts, NodeHandle};

use crate::fault_injection::FaultTarget as _;
use crate::node::{DoorParts, Front, FrontDoors, ModeParts, Served};
use crate::transport::Inbound;
use crate::wire::{wrong_mode, Frame};
use crate::RaftKv;
use concord_core::NodeId;
use std::sync::Arc;

/// Routes frames from authenticated peers to a strong-mode node: Raft messages and forwarded
/// requests to the driver, forward replies to the waiting client.
pub struct StrongInbox {
    handle: NodeHandle,
}

impl Inbound for StrongInbox {
    fn deliver(&self, from: NodeId, frame: Frame) {
        if self.handle.isolated() {
            return; // fault injection: a partition drops inbound frames too (see `crate::fault_injection`)
        }
        match frame {
            Frame::Raft(msg) => self.handle.deliver_message(from, msg),
            Frame::Forward { id, request } => self.handle.submit_forwarded(from, id, request),
            Frame::ForwardReply { id, response } => self.handle.complete_forward(id, response),
            frame @ (Frame::Dynamo(_) | Frame::Sharded(_)) => wrong_mode(from, &frame, "strong"),
            // Taken by `crate::front::pubsub::PubSubInbox` before it reaches a mode's inbox.
            Frame::Publish(_) => {}
        }
    }
}

impl Served for RaftKv {
    type Handle = NodeHandle;

    fn handle(parts: ModeParts<'_, Self>) -> NodeHandle {
        let config = parts.config;
        NodeHandle::new(HandleParts {
            me: parts.me,
            tx: parts.tx,
            status: parts.status,
            transport: parts.transport,
            clock: parts.clock,
            timeout: config.request_timeout,
            read_default: config.read_consistency,
            peers: parts.members,
            peer_file: parts.peer_file,
            limits: config.kv.clone(),
            metrics: parts.metrics,
            disk_space: parts.disk_space,
        })
    }

    fn front_doors(handle: &NodeHandle, parts: &DoorParts<'_>) -> Result<FrontDoors, crate::Error> {
        let config = parts.config;
        let peer_http = crate::dashboard::PeerHttp::new(config)?;
        let dashboard = crate::dashboard::Dashboard::start(
            handle.clone(),
            peer_http.clone(),
            config.allow_fault_injection,
            config.allow_fault_injection && config.supervisor.is_some(),
            parts.shutdown_rx.clone(),
        );
        let faults = crate::fault_injection::doors(Arc::new(handle.clone()), peer_http, parts);
        Ok(FrontDoors {
            inbox: Arc::new(StrongInbox { handle: handle.clone() }),
            http: http::router(handle.clone(), config)
                .merge(crate::dashboard::routes(dashboard))
                .merge(faults),
            resp: Arc::new(
                resp::NodeBackend::new(handle.clone(), config.cluster_id.clone())
                    .with_changes(parts.changes.clone()),
            ),
        })
    }

    fn front(handle: NodeHandle) -> Front {
        Front::Strong(handle)
    }
}

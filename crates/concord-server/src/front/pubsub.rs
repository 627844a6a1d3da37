//! Pub/Sub between the nodes of a cluster: the peer half of `concord_resp::pubsub`.
//!
//! Every mode – strong, sharded, eventual – carries Pub/Sub the same way, outside its protocol: a
//! `PUBLISH` on one node is delivered to that node's subscribers and sent, once, to every peer
//! as a [`Frame::Publish`] over the authenticated peer transport ([`PeerRelay`]); each peer
//! delivers it to its own subscribers ([`PubSubInbox`]) and sends it no further. Nothing goes
//! through the Raft log or the Dynamo replicas: a message is not data, nothing is stored.
//!
//! Delivery is **at most once**, as in Redis: a peer whose queue is full or whose connection is
//! down misses the message (the transport drops rather than buffers, and counts the drop in
//! `concord_peer_frames_dropped_total`), and nothing is retried. Messages from one node to one
//! subscriber keep their order (one FIFO connection per direction). A node isolated by fault
//! injection neither sends nor receives them, as for every other frame.

use crate::transport::{Inbound, Transport};
use crate::wire::{Frame, PublishFrame};
use concord_core::NodeId;
use concord_resp::pubsub::{Hub, Publication, Relay};
use std::sync::Arc;

/// Sends this node's publications to every known peer.
pub struct PeerRelay {
    pub transport: Transport,
}

impl Relay for PeerRelay {
    fn relay(&self, p: &Publication) {
        for peer in self.transport.peer_ids() {
            // `send` drops (and counts) what a full queue or an unknown peer cannot take.
            self.transport.send(
                peer,
                Frame::Publish(PublishFrame {
                    shard: p.shard,
                    channel: p.channel.to_vec(),
                    message: p.message.to_vec(),
                }),
            );
        }
    }
}

/// Takes the publications peers relay and delivers them to this node's subscribers; every other
/// frame goes on to the mode's own inbox.
pub struct PubSubInbox {
    pub inner: Arc<dyn Inbound>,
    pub hub: Arc<Hub>,
    pub transport: Option<Transport>,
}

impl Inbound for PubSubInbox {
    fn deliver(&self, from: NodeId, frame: Frame) {
        match frame {
            Frame::Publish(p) => {
                if self.transport.as_ref().is_some_and(Transport::is_isolated) {
                    return; // fault injection: a partition drops inbound frames too
                }
                self.hub.deliver(&Publication {
                    shard: p.shard,
                    channel: p.channel.into(),
                    message: p.message.into(),
                });
            }
            frame => self.inner.deliver(from, frame),
        }
    }
}

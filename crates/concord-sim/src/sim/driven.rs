//! An application as the client: it submits requests and collects their answers in virtual time.
//!
//! The workload ([`crate::workload`]) draws single-key operations and records a history for the
//! checkers. A lab that runs an *application* on the simulated cluster (the social platform of
//! `concord lab social`) needs more: it decides what to send from what earlier answers said (a
//! timeline read merges lists it fetched), and it sends many requests at once (a post fanned out to
//! thousands of timelines). So the application drives the loop itself:
//!
//! ```text
//!   loop { submit(node, request)…; advance_to(t); for answer in take_answers() { … } }
//! ```
//!
//! A submitted request crosses the client link (the scenario's `client_latency`) both ways, as a
//! workload request does; answers are kept, in arrival order, until taken. A request to a crashed
//! node is lost and never answered: the application keeps its own timeouts. Nothing here draws
//! from the workload's random stream, so an application run is as deterministic as any other.

use super::{Event, Simulation};
use crate::network::client_latency;
use crate::SimProtocol;
use concord_core::{ClientId, NodeId, RequestId, Time};

/// The client id of the application's requests (the workload's clients are numbered from 0, the
/// interactive user is `u32::MAX`).
pub const APP_CLIENT: ClientId = ClientId(u32::MAX - 1);

/// The answer to a submitted request.
#[derive(Clone, Debug)]
pub struct Answer<R> {
    pub request: RequestId,
    /// The node that answered.
    pub node: NodeId,
    pub response: R,
    /// When the answer reached the application (true virtual time).
    pub at: Time,
}

impl<P: SimProtocol> Simulation<P> {
    /// Send `request` to `node` from the application; it arrives after one client-link delay.
    /// Returns the id its answer will carry (unique within the run).
    pub fn submit(&mut self, node: NodeId, request: P::Request) -> RequestId {
        let id = RequestId { client: APP_CLIENT, seq: self.next_seq };
        let latency = client_latency(&self.scenario.network, &mut self.rng_net);
        self.schedule(self.now + latency, Event::Request { node, request: id, req: request });
        id
    }

    /// The answers that arrived since the last call, in arrival order.
    pub fn take_answers(&mut self) -> Vec<Answer<P::Response>> {
        std::mem::take(&mut self.answers)
    }
}

//! The eventual mode: `concord-dynamo`'s leaderless replication behind the same front doors.
//!
//! `concord up --mode eventual` (or `mode = "eventual"` in a node's TOML) runs a [`DynamoNode`] –
//! the very value the simulator and `concord lab eventual` run – in the same generic
//! [`crate::driver`] as Raft: same WAL and group commit, same authenticated peer transport, same
//! RESP and HTTP listeners. What differs is what a client request becomes:
//!
//! ```text
//!   RESP ─┐                         ┌─ GET k      → DynamoRequest::Get { r }      (quorum read, read repair)
//!         ├─> EventualHandle ─Input─┤  SET/DEL k  → Put / Delete { context, w }    (forwarded to a home replica)
//!   HTTP ─┘   (deadline,            ├─ INCR k     → Increment { w }               (a PN-counter)
//!              error mapping)       ├─ SADD/SREM  → SetAdd / SetRemove { w }      (an OR-set)
//!                                   └─ HSET/HDEL  → MapSet / MapRemove { w }      (a map of LWW registers)
//! ```
//!
//! Sets and hashes – the Redis data types a store without an order of writes can keep, as CRDTs –
//! and the reasons the others are refused are in [`redis`].
//!
//! Any node serves any request: there is no leader to find. Each request may override the
//! cluster's R and W: Redis clients with `CONSISTENCY ONE|QUORUM|ALL|R r W w` on the connection
//! ([`resp`]), HTTP clients with `?r=` and `?w=` ([`http`]).
//!
//! ## What the eventual mode does not do (the strong mode does)
//! Conditional writes (`SET NX|XX`, `GETSET`, `WATCH`/`MULTI` compares, CAS), TTLs (`EX`, `EXPIRE`),
//! range scans (`KEYS`, `SCAN`, `DBSIZE`) and atomic multi-key writes: a Dynamo store has no single
//! order of writes to compare against, and keys live on different replicas. They are refused with
//! a message that says so; `MSET` and multi-key `DEL` run key by key (not atomically).
//!
//! ## Siblings
//! Concurrent writes to one key (during a partition, or from two coordinators) are both kept, as
//! siblings (dotted version vectors, `concord_dynamo::version`). A plain `GET` over RESP cannot
//! show two values, so it answers `-CONFLICT` naming the count; HTTP `GET /v1/kv/{key}` answers
//! `300 Multiple Choices` with every sibling and the context, and a `PUT` with that context
//! replaces them all (as Riak does). A `SET` without context supersedes what the coordinating
//! replica holds.

pub mod http;
pub mod redis;
pub mod resp;

use crate::config::PeerConfig;
use crate::driver::{Clock, Input, ReplyTo};
use crate::fault_injection::FaultTarget as _;
use crate::front::ClientError;
use crate::hosted::EventualStatus;
use crate::metrics::Metrics;
use crate::node::{DoorParts, Front, FrontDoors, ModeParts, Served};
use crate::transport::{Inbound, Transport};
use crate::wire::{wrong_mode, Frame};
use concord_core::{NodeId, Time};
use concord_dynamo::version::VersionVector;
use concord_dynamo::{DynamoConfig, DynamoNode, DynamoRequest, DynamoResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The client side of an eventual-mode node: hands requests to its driver and waits for the answer.
#[derive(Clone)]
pub struct EventualHandle {
    inner: Arc<EventualParts>,
}

/// What [`EventualHandle::new`] needs: what the handle holds.
pub struct EventualParts {
    pub me: NodeId,
    pub tx: mpsc::Sender<Input<DynamoNode>>,
    pub status: watch::Receiver<EventualStatus>,
    pub clock: Clock,
    /// A safety net above the node's own `request_timeout` (which answers every request).
    pub timeout: Duration,
    pub config: DynamoConfig,
    pub limits: concord_kv::KvLimits,
    pub metrics: Arc<Metrics>,
    /// Every member's addresses, this node's own included.
    pub peers: Vec<PeerConfig>,
    /// Whether the data disk is full (writes are then refused here).
    pub disk_space: Arc<crate::disk_space::DiskSpace>,
    /// The peer transport (none without a cluster secret): what fault injection cuts.
    pub transport: Option<Transport>,
}

/// A read's answer: the live siblings, the context to write back with, the counter if it is one,
/// the set or hash if it is one ([`redis`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub values: Vec<Vec<u8>>,
    pub context: VersionVector,
    pub counter: Option<i64>,
    pub collection: Option<Collection>,
}

/// A set's members or a hash's fields, as a read of the key found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collection {
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
}

impl EventualHandle {
    pub fn new(parts: EventualParts) -> EventualHandle {
        EventualHandle { inner: Arc::new(parts) }
    }

    pub fn id(&self) -> NodeId {
        self.inner.me
    }

    pub fn now(&self) -> Time {
        self.inner.clock.now()
    }

    pub fn status(&self) -> EventualStatus {
        self.inner.status.borrow().clone()
    }

    pub fn config(&self) -> &DynamoConfig {
        &self.inner.config
    }

    pub fn limits(&self) -> &concord_kv::KvLimits {
        &self.inner.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn peers(&self) -> &[PeerConfig] {
        &self.inner.peers
    }

    /// A message from a peer: queued for the driver, or dropped (and counted) when the queue is
    /// full – the protocol tolerates loss, and a peer must never block on a slow node.
    pub fn deliver_message(&self, from: NodeId, msg: concord_dynamo::DynamoMessage) {
        if self.inner.tx.try_send(Input::Message { from, msg }).is_err() {
            self.inner.metrics.inbound_dropped.inc();
        }
    }

    /// Check a quorum override against N (the node would clamp it silently; a client deserves to
    /// hear that `r = 5` with three replicas is not what it thinks).
    pub fn check_quorum(&self, what: &str, k: Option<usize>) -> Result<Option<usize>, ClientError> {
        let n = self.inner.config.n;
        match k {
            Some(k) if k == 0 || k > n => {
                Err(ClientError::Rejected(format!("{what} = {k} is out of range: it must be 1 to N = {n}")))
            }
            k => Ok(k),
        }
    }

    /// Submit a request now (so requests submitted in order reach the node in order) and return a
    /// future that waits for its answer.
    pub fn submit(
        &self,
        request: DynamoRequest,
    ) -> impl std::future::Future<Output = Result<DynamoResponse, ClientError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let refusal = self
            .inner
            .disk_space
            .refusal()
            .filter(|_| <DynamoNode as crate::hosted::Hosted>::is_write(&request));
        let sent = match refusal {
            Some(why) => Err(ClientError::NoSpace(why)),
            None => self.send(request, tx),
        };
        let timeout = self.inner.timeout;
        async move {
            sent?;
            match tokio::time::timeout(timeout, rx).await {
                Err(_) => Err(ClientError::Timeout),
                Ok(Err(_)) => Err(ClientError::Unavailable("the node stopped before answering".into())),
                Ok(Ok(answer)) => interpret(answer),
            }
        }
    }

    fn send(&self, request: DynamoRequest, tx: oneshot::Sender<DynamoResponse>) -> Result<(), ClientError> {
        match self.inner.tx.try_send(Input::Request { request, reply: ReplyTo::Local(tx) }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(ClientError::Rejected("node overloaded: its input queue is full; retry shortly".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(ClientError::Unavailable("the node is shutting down".into()))
            }
        }
    }

    /// Read `key` with `r` replies (default: the cluster's R). Submitted before this returns, as
    /// writes are: the reads a pipeline starts one after the other are all in flight before the
    /// first is awaited (the RESP front door awaits a pipeline's answers in order).
    pub fn get(
        &self,
        key: String,
        r: Option<usize>,
    ) -> impl std::future::Future<Output = Result<Found, ClientError>> + Send + 'static {
        let submitted = self.check_quorum("r", r).map(|r| self.submit(DynamoRequest::Get { key, r }));
        async move {
            match submitted?.await.map_err(ClientError::of_read)? {
                DynamoResponse::Found { values, context, counter } => {
                    Ok(Found { values, context, counter, collection: None })
                }
                DynamoResponse::Members(members) => {
                    Ok(Found { collection: Some(Collection::Set(members)), ..empty() })
                }
                DynamoResponse::Fields(fields) => {
                    Ok(Found { collection: Some(Collection::Hash(fields)), ..empty() })
                }
                other => Err(unexpected(other)),
            }
        }
    }

    /// Write a register value; `context` names the versions it replaces (`None`: whatever the
    /// coordinating replica holds).
    pub fn put(
        &self,
        key: String,
        value: Vec<u8>,
        context: Option<VersionVector>,
        w: Option<usize>,
    ) -> impl std::future::Future<Output = Result<(), ClientError>> + Send + 'static {
        let checked = self.check_value(&key, value.len()).and_then(|()| self.check_quorum("w", w));
        let submitted = checked.map(|w| self.submit(DynamoRequest::Put { key, value, context, w }));
        async move { written(submitted?.await?).map(|_| ()) }
    }

    /// Delete (a tombstone replacing the versions in `context`).
    pub fn delete(
        &self,
        key: String,
        context: Option<VersionVector>,
        w: Option<usize>,
    ) -> impl std::future::Future<Output = Result<(), ClientError>> + Send + 'static {
        let submitted =
            self.check_quorum("w", w).map(|w| self.submit(DynamoRequest::Delete { key, context, w }));
        async move { written(submitted?.await?).map(|_| ()) }
    }

    /// Add `delta` to the PN-counter at `key`; answers the counter as the coordinator holds it.
    pub fn increment(
        &self,
        key: String,
        delta: i64,
        w: Option<usize>,
    ) -> impl std::future::Future<Output = Result<i64, ClientError>> + Send + 'static {
        let submitted = self
            .check_quorum("w", w)
            .map(|w| self.submit(DynamoRequest::Increment { key: key.clone(), delta, w }));
        async move {
            match written(submitted?.await?)? {
                Some(value) => Ok(value),
                None => Err(ClientError::Unknown(format!(
                    "the increment of {key:?} was acknowledged without a value"
                ))),
            }
        }
    }

    fn check_value(&self, key: &str, value_bytes: usize) -> Result<(), ClientError> {
        let limits = &self.inner.limits;
        if key.is_empty() {
            return Err(ClientError::Kv(concord_kv::KvError::EmptyKey));
        }
        if key.len() > limits.max_key_bytes {
            let e = concord_kv::KvError::KeyTooLarge {
                key_bytes: key.len(),
                max_key_bytes: limits.max_key_bytes,
            };
            return Err(ClientError::Kv(e));
        }
        if value_bytes > limits.max_value_bytes {
            let e =
                concord_kv::KvError::ValueTooLarge { value_bytes, max_value_bytes: limits.max_value_bytes };
            return Err(ClientError::Kv(e));
        }
        Ok(())
    }
}

/// The node's failures as client errors. `Fail` means the write certainly did not happen;
/// a type clash (`INCR` on a register) is the client's mistake, not the cluster's.
fn interpret(answer: DynamoResponse) -> Result<DynamoResponse, ClientError> {
    match answer {
        DynamoResponse::Fail(why) if why.contains(" holds a ") => Err(ClientError::Rejected(why)),
        DynamoResponse::Fail(why) => Err(ClientError::Unavailable(why)),
        DynamoResponse::Unknown(why) => Err(ClientError::Unknown(why)),
        ok => Ok(ok),
    }
}

/// A write's answer: the counter value for increments.
fn written(answer: DynamoResponse) -> Result<Option<i64>, ClientError> {
    match answer {
        DynamoResponse::Written { counter, .. } => Ok(counter),
        other => Err(unexpected(other)),
    }
}

fn empty() -> Found {
    Found { values: Vec::new(), context: VersionVector::default(), counter: None, collection: None }
}

fn unexpected(answer: DynamoResponse) -> ClientError {
    ClientError::Unknown(format!("unexpected answer from the node: {answer:?}"))
}

/// A version vector as text, for clients to hand back: `1:5,2:3` (node:counter, by node); the
/// empty context is the empty string. Readable on purpose: students can watch contexts grow.
pub fn format_context(context: &VersionVector) -> String {
    context.0.iter().map(|(node, counter)| format!("{}:{counter}", node.0)).collect::<Vec<_>>().join(",")
}

/// A context a client sent that is not [`format_context`]'s text (the message says why).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadContext(pub String);

/// Parse [`format_context`]'s text.
pub fn parse_context(text: &str) -> Result<VersionVector, BadContext> {
    let mut vv = VersionVector::default();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let parsed = part
            .split_once(':')
            .and_then(|(n, c)| Some((n.trim().parse::<u32>().ok()?, c.trim().parse::<u64>().ok()?)));
        let Some((node, counter)) = parsed else {
            return Err(BadContext(format!(
                "context {text:?}: `{part}` is not node:counter (a context looks like 1:5,2:3)"
            )));
        };
        if vv.0.insert(NodeId(node), counter).is_some() {
            return Err(BadContext(format!("context {text:?} names node {node} twice")));
        }
    }
    Ok(vv)
}

/// Routes frames from authenticated peers to an eventual-mode node: Dynamo messages to the driver.
pub struct EventualInbox {
    handle: EventualHandle,
}

impl Inbound for EventualInbox {
    fn deliver(&self, from: NodeId, frame: Frame) {
        if self.handle.isolated() {
            return; // fault injection: a partition drops inbound frames too (see `crate::fault_injection`)
        }
        match frame {
            Frame::Dynamo(msg) => self.handle.deliver_message(from, msg),
            frame => wrong_mode(from, &frame, "eventual"),
        }
    }
}

impl Served for DynamoNode {
    type Handle = EventualHandle;

    fn handle(parts: ModeParts<'_, Self>) -> EventualHandle {
        let config = parts.config;
        EventualHandle::new(EventualParts {
            me: parts.me,
            tx: parts.tx,
            status: parts.status,
            clock: parts.clock,
            timeout: config.request_timeout,
            config: config.dynamo_config(),
            limits: config.kv.clone(),
            metrics: parts.metrics,
            peers: parts.members,
            disk_space: parts.disk_space,
            transport: parts.transport,
        })
    }

    /// The mode's doors, with the fault-injection endpoints (partition, heal, stop; off unless
    /// `--allow-fault-injection`) but not the strong mode's dashboard buttons.
    fn front_doors(handle: &EventualHandle, parts: &DoorParts<'_>) -> Result<FrontDoors, crate::Error> {
        let config = parts.config;
        let peer_http = crate::dashboard::PeerHttp::new(config)?;
        let faults = crate::fault_injection::doors(Arc::new(handle.clone()), peer_http, parts);
        Ok(FrontDoors {
            inbox: Arc::new(EventualInbox { handle: handle.clone() }),
            http: http::router(handle.clone()).merge(faults),
            resp: Arc::new(resp::EventualBackend::new(handle.clone())),
        })
    }

    fn front(handle: EventualHandle) -> Front {
        Front::Eventual(handle)
    }
}

impl crate::fault_injection::FaultTarget for EventualHandle {
    fn node_id(&self) -> u32 {
        self.id().0
    }

    fn transport(&self) -> Option<&crate::transport::Transport> {
        self.inner.transport.as_ref()
    }

    fn peer_http(&self, id: u32) -> Option<std::net::SocketAddr> {
        self.peers().iter().find(|p| p.id == id).and_then(|p| p.http_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_as_text() {
        let vv = parse_context("1:5,3:2").unwrap();
        assert_eq!(vv.0.get(&NodeId(3)), Some(&2));
        assert_eq!(format_context(&vv), "1:5,3:2");
        assert_eq!(format_context(&parse_context("").unwrap()), "");
        assert!(parse_context("1:x").unwrap_err().0.contains("not node:counter"));
        assert!(parse_context("1:2,1:3").unwrap_err().0.contains("twice"));
    }
}

//! The sans-IO process interface.
//!
//! ```text
//!   inputs (with local time)                     effects (carried out in order by the driver)
//!   on_start ─────────┐                      ┌──> Send { to, msg }
//!   on_message ───────┤   +-------------+    ├──> SetTimer / CancelTimer
//!   on_timer ─────────┼──>|   Process   |────┼──> Persist(StorageOp)   (volatile until Sync)
//!   on_request ───────┘   +-------------+    ├──> Sync                 (later effects wait for it)
//!                                            ├──> Reply { request, response }
//!                                            ├──> SendNow / ReplyNow   (need not wait for syncs)
//!                                            └──> Event(ProtocolEvent) (for traces and viewers)
//! ```
//!
//! A `Send` to the node itself is a *loopback*: the driver hands the message back to the node
//! (`on_message` from itself) when it carries the effect out – after every `Sync` before it. That is
//! how a node learns that its writes are durable without the driver growing a callback: Raft's
//! leader persists its entries in parallel with sending them, and counts itself in the commit
//! quorum when the loopback behind its sync arrives.
//!
//! A process is built by its driver from its configuration and the durable state it finds on its
//! "disk" ([`crate::Durable`]); a crash simply drops the value and builds a new one from whatever was
//! synced. There is no other way for state to survive – which is the point: the simulator can then
//! prove that a protocol syncs what it must.

use crate::id::{NodeId, RequestId};
use crate::storage::StorageOp;
use crate::time::Time;
use rand_core::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::{self, Debug};
use std::time::Duration;

/// A message between nodes of one protocol. Messages must be serialisable (the server sends them
/// over TCP; the simulator writes them to traces) and cheap to clone (the network may duplicate).
pub trait Message: Clone + Debug + Serialize + DeserializeOwned + Send + 'static {
    /// A short name for the kind of message (`"append"`, `"vote"`), used in traces and summaries.
    fn kind(&self) -> &'static str;
}

/// A protocol node: a deterministic state machine driven by inputs, answering with effects.
///
/// All methods take `&mut Io`, through which the node reads its local time and randomness and emits
/// effects. Implementations must be deterministic given the inputs and the `Io` randomness: no
/// `HashMap` iteration order, no wall clock, no threads.
pub trait Process: Sized + 'static {
    type Message: Message;
    /// Names of timers. Arming a timer that is already armed re-arms it (one deadline per name).
    type Timer: Copy + Ord + Debug + Serialize + Send + 'static;
    type Request: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;
    type Response: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;

    /// Called once after the process is built (at boot and after every restart).
    fn on_start(&mut self, io: &mut Io<'_, Self>);

    /// A message from another node arrived.
    fn on_message(&mut self, io: &mut Io<'_, Self>, from: NodeId, msg: Self::Message);

    /// A timer armed with [`Io::set_timer`] fired.
    fn on_timer(&mut self, io: &mut Io<'_, Self>, timer: Self::Timer);

    /// A client request arrived; answer it (now or later) with [`Io::reply`].
    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, req: Self::Request);

    /// The role the node plays now, for protocols with roles (`"leader"`, `"follower"`, …).
    /// The simulator's nemesis uses it to aim at "the leader"; viewers colour nodes with it.
    fn role(&self) -> Option<&'static str> {
        None
    }

    /// A JSON snapshot of the node's state, for traces, viewers and dashboards.
    fn inspect(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Something a node noticed about itself that a trace or a viewer should show: an election won, an
/// entry committed, a value learned. `detail` is free-form JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtocolEvent {
    pub name: &'static str,
    pub detail: serde_json::Value,
}

/// One effect, for the driver to carry out.
pub enum Effect<P: Process> {
    /// Send `msg` to `to` once every earlier `Sync` completed. To the node itself: a loopback,
    /// never lost, delivered to this incarnation only (a crash drops it).
    Send {
        to: NodeId,
        msg: P::Message,
    },
    /// Send `msg` at once, even while earlier syncs are in flight: the message depends on nothing
    /// this node has not made durable yet (Raft's leader streaming entries it is still syncing).
    /// Never to the node itself.
    SendNow {
        to: NodeId,
        msg: P::Message,
    },
    SetTimer {
        timer: P::Timer,
        after: Duration,
    },
    CancelTimer {
        timer: P::Timer,
    },
    /// A write to durable storage. It is *not* durable until a later [`Effect::Sync`] completes.
    Persist(StorageOp),
    /// Make every earlier `Persist` durable. The node's later I/O effects (sends, writes, replies –
    /// from this input and later ones) are carried out only once it is done; timers are not held.
    Sync,
    Reply {
        request: RequestId,
        response: P::Response,
    },
    /// Reply at once, even while earlier syncs are in flight: the answer depends only on what is
    /// durable elsewhere already (a Raft result of a committed entry: on a majority's disks).
    ReplyNow {
        request: RequestId,
        response: P::Response,
    },
    Event(ProtocolEvent),
}

impl<P: Process> Debug for Effect<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Send { to, msg } => write!(f, "Send({to}, {msg:?})"),
            Effect::SendNow { to, msg } => write!(f, "SendNow({to}, {msg:?})"),
            Effect::SetTimer { timer, after } => write!(f, "SetTimer({timer:?}, {after:?})"),
            Effect::CancelTimer { timer } => write!(f, "CancelTimer({timer:?})"),
            Effect::Persist(op) => write!(f, "Persist({op:?})"),
            Effect::Sync => write!(f, "Sync"),
            Effect::Reply { request, response } => write!(f, "Reply({request}, {response:?})"),
            Effect::ReplyNow { request, response } => write!(f, "ReplyNow({request}, {response:?})"),
            Effect::Event(e) => write!(f, "Event({}, {})", e.name, e.detail),
        }
    }
}

/// The context of one input: the node's local time, its randomness, and the effect buffer.
///
/// Effects are appended in the order the node emits them and carried out in that order.
pub struct Io<'a, P: Process> {
    me: NodeId,
    now: Time,
    tracing: bool,
    rng: &'a mut dyn RngCore,
    effects: &'a mut Vec<Effect<P>>,
}

impl<'a, P: Process> Io<'a, P> {
    /// Build a context. Drivers call this; protocol code only receives it.
    pub fn new(
        me: NodeId,
        now: Time,
        tracing: bool,
        rng: &'a mut dyn RngCore,
        effects: &'a mut Vec<Effect<P>>,
    ) -> Self {
        Io { me, now, tracing, rng, effects }
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The node's local clock. Monotonic for one incarnation, but possibly skewed or drifting
    /// relative to other nodes' clocks.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Whether the driver wants detailed [`ProtocolEvent`]s (a trace is recorded, or a simulator
    /// nemesis watches for them); when false, protocols may skip building costly ones.
    pub fn tracing(&self) -> bool {
        self.tracing
    }

    /// A uniformly random `u64` from the driver's generator (seeded in the simulator).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniformly random integer in `[low, high)`; `low` when the range is empty.
    pub fn random_below(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        // Lemire's multiply-shift: unbiased enough for protocol jitter and cheap.
        let span = high - low;
        low + ((u128::from(self.rng.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// A uniformly random duration in `[low, high]` (nanosecond resolution).
    pub fn random_duration(&mut self, low: Duration, high: Duration) -> Duration {
        let (lo, hi) = (low.as_nanos() as u64, high.as_nanos() as u64);
        Duration::from_nanos(self.random_below(lo, hi.saturating_add(1)))
    }

    /// Send `msg` after every earlier `Sync` (to `self.me()`: a loopback, see [`Effect::Send`]).
    pub fn send(&mut self, to: NodeId, msg: P::Message) {
        self.effects.push(Effect::Send { to, msg });
    }

    /// Send `msg` without waiting for earlier syncs (see [`Effect::SendNow`]).
    pub fn send_now(&mut self, to: NodeId, msg: P::Message) {
        debug_assert_ne!(to, self.me, "a loopback waits for its syncs: use send");
        self.effects.push(Effect::SendNow { to, msg });
    }

    pub fn set_timer(&mut self, timer: P::Timer, after: Duration) {
        self.effects.push(Effect::SetTimer { timer, after });
    }

    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.effects.push(Effect::CancelTimer { timer });
    }

    pub fn persist(&mut self, op: StorageOp) {
        self.effects.push(Effect::Persist(op));
    }

    /// Shorthand for `persist(StorageOp::Put { .. })`.
    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) {
        self.persist(StorageOp::Put { key: key.into(), value });
    }

    pub fn sync(&mut self) {
        self.effects.push(Effect::Sync);
    }

    pub fn reply(&mut self, request: RequestId, response: P::Response) {
        self.effects.push(Effect::Reply { request, response });
    }

    /// Reply without waiting for earlier syncs (see [`Effect::ReplyNow`]).
    pub fn reply_now(&mut self, request: RequestId, response: P::Response) {
        self.effects.push(Effect::ReplyNow { request, response });
    }

    /// Record a protocol event in the trace (cheap to call; see [`Io::tracing`]).
    pub fn event(&mut self, name: &'static str, detail: serde_json::Value) {
        self.effects.push(Effect::Event(ProtocolEvent { name, detail }));
    }

    /// Effects emitted so far in this input (for tests).
    pub fn effects(&self) -> &[Effect<P>] {
        self.effects
    }

    /// Run `f` as process `Q`, with this input's node, time and randomness, and return what it
    /// returned and the effects it emitted – for a process that hosts others (a node running many
    /// Raft groups gives each its own `Io`, then translates their effects into its own).
    pub fn nested<Q: Process, R>(&mut self, f: impl FnOnce(&mut Io<'_, Q>) -> R) -> (R, Vec<Effect<Q>>) {
        let mut effects = Vec::new();
        let mut inner = Io::new(self.me, self.now, self.tracing, &mut *self.rng, &mut effects);
        let result = f(&mut inner);
        (result, effects)
    }
}

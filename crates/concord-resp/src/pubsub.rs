//! Pub/Sub: `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, their `UNSUBSCRIBE`s, `PUBLISH`, `SPUBLISH`
//! and `PUBSUB`, on one node and across a cluster.
//!
//! Pub/Sub is not data: nothing is stored, nothing goes through the Raft log or the Dynamo
//! replicas. A message is handed to whoever listens at the moment it arrives, and forgotten.
//!
//! # Pieces, inner to outer
//! * [`PubSubRequest`] – the commands, parsed ([`parse`]).
//! * [`Registry`] – who listens to what on this node: channels, glob patterns ([`crate::glob`],
//!   the same matcher as `KEYS`) and shard channels, indexed both ways (channel → clients for a
//!   publish, client → channels for its replies and its disconnection). Sans-IO: plain maps, no
//!   locks, no tasks, so it is unit-tested directly. `BTreeMap`s, so every listing (`PUBSUB
//!   CHANNELS`, `UNSUBSCRIBE` with no argument) comes out in byte order, the same on every run.
//! * [`Mailbox`] – one connection's queue of pushes (messages), with its byte count and limit.
//! * [`Hub`] – the node's registry behind a mutex, the mailboxes, and the [`Relay`] to the other
//!   nodes. Every RESP connection of a node shares one hub ([`crate::RespConfig::pubsub`]).
//!
//! # Across the cluster
//! ```text
//!  node 2: PUBLISH news hi ─▶ Hub::publish ─┬─▶ local subscribers' mailboxes (counted: the reply)
//!                                           └─▶ Relay::relay ──peer transport──▶ node 1, node 3
//!  node 1/3: Hub::deliver ─▶ local subscribers' mailboxes
//! ```
//! The node gives its hub a [`Relay`] (`concord-server` sends a `Publish` frame to every peer over
//! its authenticated peer transport, whatever the mode: strong, sharded or eventual) and calls
//! [`Hub::deliver`] with every publication a peer relays to it. A relayed publication is never
//! relayed again: every node sends its own publications to every other node, one hop.
//!
//! # Delivery: at most once, like Redis
//! A message reaches the subscribers that are connected and subscribed when it arrives at their
//! node, once; it is never stored, retried or replayed. It is lost if a peer's queue is full or
//! its connection down (the transport drops rather than buffers), if the subscriber is being
//! disconnected, or if it subscribes on a node the message reached before the subscription.
//! Messages of one publisher to one subscriber arrive in the order published (one peer
//! connection per direction, FIFO queues); messages of different publishers have no common order.
//!
//! # `PUBLISH`'s reply: this node's receivers
//! Like Redis Cluster, `PUBLISH` answers how many subscriptions *on the node it was sent to*
//! received the message (a client subscribed to the channel and to a matching pattern counts
//! twice, as in Redis). Receivers on other nodes are not counted: counting them would make every
//! `PUBLISH` wait for a round trip to every node, and a node that is down or slow would leave the
//! count wrong or the publisher waiting – for a number whose only common use is "did anyone
//! listen?". `PUBSUB CHANNELS`, `NUMSUB` and `NUMPAT` are likewise this node's, as in Redis Cluster.
//!
//! # Shard channels
//! `SSUBSCRIBE`/`SPUBLISH` are a second namespace (a `PUBLISH` does not reach an `SSUBSCRIBE`r
//! of the same name). Redis Cluster keeps a shard channel's messages inside the shard that owns
//! its slot; Concord relays them to every node like other messages, so a client may subscribe on
//! any node. On a sharded node a shard command's channels must share a slot (`-CROSSSLOT`, as in
//! Redis), which keeps cluster clients' routing valid.
//!
//! # Slow subscribers
//! A mailbox counts the bytes of messages queued for its connection and not yet written. Past
//! [`crate::RespConfig::max_pubsub_output_bytes`] (Redis's `client-output-buffer-limit pubsub`,
//! hard limit, default 32 MiB) the connection is closed, as Redis does: a subscriber that does
//! not read cannot make the node hold unbounded memory. Messages to it are dropped from then on.

use crate::command::{ReplyError, COMMANDS};
use crate::frame::Frame;
use crate::glob;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// A connection's id (`CLIENT ID`), which the registry files subscriptions under.
pub type ClientId = u64;

/// Redis's default `client-output-buffer-limit pubsub` hard limit: 32 MiB.
pub const DEFAULT_MAX_PUBSUB_OUTPUT_BYTES: usize = 32 * 1024 * 1024;

/// The three namespaces a connection can subscribe in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Space {
    /// `SUBSCRIBE`: exact channel names.
    Channel,
    /// `PSUBSCRIBE`: glob patterns over channel names.
    Pattern,
    /// `SSUBSCRIBE`: shard channels (a namespace of their own).
    Shard,
}

impl Space {
    /// The confirmation words Redis sends: (`subscribe`, `unsubscribe`) and so on.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Space::Channel => ("subscribe", "unsubscribe"),
            Space::Pattern => ("psubscribe", "punsubscribe"),
            Space::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

/// A parsed Pub/Sub command.
#[derive(Clone, Debug, PartialEq)]
pub enum PubSubRequest {
    /// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE` (at least one name).
    Subscribe(Space, Vec<Bytes>),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE` (no names: all of that space).
    Unsubscribe(Space, Vec<Bytes>),
    /// `PUBLISH` (`shard: false`) and `SPUBLISH`.
    Publish(Publication),
    /// `PUBSUB CHANNELS [pattern]` and `PUBSUB SHARDCHANNELS [pattern]`.
    Channels { shard: bool, pattern: Option<Bytes> },
    /// `PUBSUB NUMSUB [channel …]` and `PUBSUB SHARDNUMSUB [channel …]`.
    NumSub { shard: bool, channels: Vec<Bytes> },
    /// `PUBSUB NUMPAT`.
    NumPat,
    /// `PUBSUB HELP`.
    Help,
}

impl PubSubRequest {
    /// Whether a RESP2 connection in subscribe mode may send it (with `PING`, `QUIT`, `RESET`).
    pub fn allowed_when_subscribed(&self) -> bool {
        matches!(self, PubSubRequest::Subscribe(..) | PubSubRequest::Unsubscribe(..))
    }

    /// The names a cluster client routes this command by: shard channels are keys of their slot.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            PubSubRequest::Subscribe(Space::Shard, names)
            | PubSubRequest::Unsubscribe(Space::Shard, names) => names.iter().map(|n| n.as_ref()).collect(),
            PubSubRequest::Publish(p) if p.shard => vec![&p.channel],
            _ => vec![],
        }
    }
}

/// One message, as published and as relayed between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// `SPUBLISH` (shard channel) rather than `PUBLISH`.
    pub shard: bool,
    pub channel: Bytes,
    pub message: Bytes,
}

/// Parse a Pub/Sub command whose name (`spec_name`, lowercase) and arity the table checked.
pub fn parse(spec_name: &str, rest: Vec<Bytes>) -> Result<PubSubRequest, ReplyError> {
    Ok(match spec_name {
        "subscribe" => PubSubRequest::Subscribe(Space::Channel, rest),
        "psubscribe" => PubSubRequest::Subscribe(Space::Pattern, rest),
        "ssubscribe" => PubSubRequest::Subscribe(Space::Shard, rest),
        "unsubscribe" => PubSubRequest::Unsubscribe(Space::Channel, rest),
        "punsubscribe" => PubSubRequest::Unsubscribe(Space::Pattern, rest),
        "sunsubscribe" => PubSubRequest::Unsubscribe(Space::Shard, rest),
        "publish" | "spublish" => {
            let mut rest = rest.into_iter();
            let (Some(channel), Some(message)) = (rest.next(), rest.next()) else {
                return Err(ReplyError::wrong_arity(spec_name));
            };
            PubSubRequest::Publish(Publication { shard: spec_name == "spublish", channel, message })
        }
        "pubsub" => parse_pubsub(rest)?,
        other => return Err(ReplyError(format!("ERR internal error: {other} is not a Pub/Sub command"))),
    })
}

/// `PUBSUB <subcommand> …`, with the subcommand arities of the table.
fn parse_pubsub(rest: Vec<Bytes>) -> Result<PubSubRequest, ReplyError> {
    let container = COMMANDS.iter().find(|c| c.name == "pubsub").expect("PUBSUB is in the table");
    let Some(spec) = container.subcommand(&rest[0]) else {
        return Err(ReplyError::unknown_subcommand("pubsub", &rest[0]));
    };
    let n = rest.len() as i64 + 1;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(ReplyError::wrong_arity(spec.name));
    }
    let mut args = rest.into_iter().skip(1);
    Ok(match spec.name {
        "pubsub|channels" | "pubsub|shardchannels" => {
            let pattern = args.next();
            // Redis: at most one pattern.
            if args.next().is_some() {
                return Err(ReplyError::wrong_arity(spec.name));
            }
            PubSubRequest::Channels { shard: spec.name == "pubsub|shardchannels", pattern }
        }
        "pubsub|numsub" => PubSubRequest::NumSub { shard: false, channels: args.collect() },
        "pubsub|shardnumsub" => PubSubRequest::NumSub { shard: true, channels: args.collect() },
        "pubsub|numpat" => PubSubRequest::NumPat,
        _ => PubSubRequest::Help,
    })
}

/// The `PUBSUB HELP` text, redis-server 7's lines.
const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// What one subscriber receives for one publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To a `SUBSCRIBE`r: `message channel payload`.
    Message,
    /// To a `PSUBSCRIBE`r of this pattern: `pmessage pattern channel payload`.
    PMessage(Bytes),
    /// To an `SSUBSCRIBE`r: `smessage channel payload`.
    SMessage,
}

impl Delivery {
    /// The push frame (RESP3 `>`; an array in RESP2, where the encoder downgrades it).
    pub fn frame(&self, p: &Publication) -> Frame {
        let (channel, message) = (Frame::Bulk(p.channel.clone()), Frame::Bulk(p.message.clone()));
        Frame::Push(match self {
            Delivery::Message => vec![Frame::bulk("message"), channel, message],
            Delivery::PMessage(pattern) => {
                vec![Frame::bulk("pmessage"), Frame::Bulk(pattern.clone()), channel, message]
            }
            Delivery::SMessage => vec![Frame::bulk("smessage"), channel, message],
        })
    }
}

/// One client's subscriptions in each space.
#[derive(Clone, Debug, Default)]
struct Subscriptions {
    spaces: [BTreeSet<Bytes>; 3],
}

fn index(space: Space) -> usize {
    match space {
        Space::Channel => 0,
        Space::Pattern => 1,
        Space::Shard => 2,
    }
}

/// Who listens to what on one node (see the module docs). Sans-IO.
#[derive(Debug, Default)]
pub struct Registry {
    /// Per space: name → subscribed clients.
    by_name: [BTreeMap<Bytes, BTreeSet<ClientId>>; 3],
    /// Client → its names, for replies and for dropping a client at once.
    by_client: BTreeMap<ClientId, Subscriptions>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Subscribe `client` to `name` in `space`; `false` if it already was.
    pub fn subscribe(&mut self, client: ClientId, space: Space, name: &Bytes) -> bool {
        let added = self.by_client.entry(client).or_default().spaces[index(space)].insert(name.clone());
        if added {
            self.by_name[index(space)].entry(name.clone()).or_default().insert(client);
        }
        added
    }

    /// Unsubscribe `client` from `name` in `space`; `false` if it was not subscribed.
    pub fn unsubscribe(&mut self, client: ClientId, space: Space, name: &[u8]) -> bool {
        let Some(subs) = self.by_client.get_mut(&client) else { return false };
        if !subs.spaces[index(space)].remove(name) {
            return false;
        }
        if subs.spaces.iter().all(BTreeSet::is_empty) {
            self.by_client.remove(&client);
        }
        let names = &mut self.by_name[index(space)];
        if let Some(clients) = names.get_mut(name) {
            clients.remove(&client);
            if clients.is_empty() {
                names.remove(name);
            }
        }
        true
    }

    /// `client`'s names in `space`, in byte order.
    pub fn subscriptions(&self, client: ClientId, space: Space) -> Vec<Bytes> {
        self.by_client
            .get(&client)
            .map_or_else(Vec::new, |s| s.spaces[index(space)].iter().cloned().collect())
    }

    /// How many names `client` is subscribed to in `space`.
    pub fn count(&self, client: ClientId, space: Space) -> usize {
        self.by_client.get(&client).map_or(0, |s| s.spaces[index(space)].len())
    }

    /// The count Redis puts in a confirmation: channels and patterns together for (P)SUBSCRIBE,
    /// shard channels alone for SSUBSCRIBE.
    pub fn reply_count(&self, client: ClientId, space: Space) -> usize {
        match space {
            Space::Shard => self.count(client, Space::Shard),
            _ => self.count(client, Space::Channel) + self.count(client, Space::Pattern),
        }
    }

    /// Forget every subscription of `client` (its connection ended).
    pub fn remove_client(&mut self, client: ClientId) {
        let Some(subs) = self.by_client.remove(&client) else { return };
        for (i, names) in subs.spaces.iter().enumerate() {
            for name in names {
                if let Some(clients) = self.by_name[i].get_mut(name) {
                    clients.remove(&client);
                    if clients.is_empty() {
                        self.by_name[i].remove(name);
                    }
                }
            }
        }
    }

    /// Who receives `p`, and as what: channel subscribers, then every matching pattern's (in
    /// pattern order), or shard-channel subscribers for an `SPUBLISH`. O(patterns), as in Redis.
    pub fn recipients(&self, p: &Publication) -> Vec<(ClientId, Delivery)> {
        let mut out = Vec::new();
        if p.shard {
            if let Some(clients) = self.by_name[index(Space::Shard)].get(&p.channel) {
                out.extend(clients.iter().map(|&c| (c, Delivery::SMessage)));
            }
            return out;
        }
        if let Some(clients) = self.by_name[index(Space::Channel)].get(&p.channel) {
            out.extend(clients.iter().map(|&c| (c, Delivery::Message)));
        }
        for (pattern, clients) in &self.by_name[index(Space::Pattern)] {
            if glob::matches(pattern, &p.channel) {
                out.extend(clients.iter().map(|&c| (c, Delivery::PMessage(pattern.clone()))));
            }
        }
        out
    }

    /// `PUBSUB CHANNELS`/`SHARDCHANNELS`: the names with at least one subscriber, matching
    /// `pattern` if given, in byte order.
    pub fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let space = if shard { Space::Shard } else { Space::Channel };
        self.by_name[index(space)]
            .keys()
            .filter(|name| pattern.is_none_or(|p| glob::matches(p, name)))
            .cloned()
            .collect()
    }

    /// `PUBSUB NUMSUB`/`SHARDNUMSUB`: subscribers of one name (patterns not counted, as in Redis).
    pub fn numsub(&self, shard: bool, channel: &[u8]) -> usize {
        let space = if shard { Space::Shard } else { Space::Channel };
        self.by_name[index(space)].get(channel).map_or(0, BTreeSet::len)
    }

    /// `PUBSUB NUMPAT`: distinct patterns with a subscriber.
    pub fn numpat(&self) -> usize {
        self.by_name[index(Space::Pattern)].len()
    }
}

/// One connection's queue of pushes, with the bytes queued and not yet written (see "Slow
/// subscribers" in the module docs).
#[derive(Debug)]
pub struct Mailbox {
    tx: mpsc::UnboundedSender<Frame>,
    bytes: AtomicUsize,
    limit: usize,
    over: AtomicBool,
    exceeded: Notify,
    /// SUBSCRIBEs whose confirmation is not written yet: while any is, the connection's writer
    /// holds messages back, so that a channel's first message cannot overtake its confirmation.
    held: AtomicUsize,
}

impl Mailbox {
    /// A mailbox holding at most `limit` bytes of pushes, and the receiving end the connection's
    /// writer reads.
    pub fn new(limit: usize) -> (Arc<Mailbox>, mpsc::UnboundedReceiver<Frame>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mailbox = Mailbox {
            tx,
            bytes: AtomicUsize::new(0),
            limit,
            over: AtomicBool::new(false),
            exceeded: Notify::new(),
            held: AtomicUsize::new(0),
        };
        (Arc::new(mailbox), rx)
    }

    /// Queue `frame`; `false` if it was not (the limit was passed – the connection is being closed
    /// – or the connection is gone). The channel is unbounded in messages, bounded here in bytes.
    pub fn push(&self, frame: Frame) -> bool {
        if self.over.load(Ordering::Relaxed) {
            return false;
        }
        let size = frame.size_estimate();
        let total = self.bytes.fetch_add(size, Ordering::Relaxed).saturating_add(size);
        if total > self.limit {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            if !self.over.swap(true, Ordering::Relaxed) {
                self.exceeded.notify_one();
            }
            return false;
        }
        if self.tx.send(frame).is_err() {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A SUBSCRIBE is about to register: hold messages back until [`Mailbox::release`].
    pub fn hold(&self) {
        self.held.fetch_add(1, Ordering::SeqCst);
    }

    /// That SUBSCRIBE's confirmation was written.
    pub fn release(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether messages are held back now.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst) > 0
    }

    /// `n` bytes of pushes were written to the client.
    pub fn written(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Resolves once the limit was passed: the connection is to be closed.
    pub async fn wait_exceeded(&self) {
        let notified = self.exceeded.notified();
        if !self.over.load(Ordering::Relaxed) {
            notified.await;
        }
    }
}

/// Hands this node's publications to the other nodes of the cluster (see the module docs).
pub trait Relay: Send + Sync + 'static {
    /// Send `publication` to every other node, without waiting (at most once: a peer that cannot
    /// take it now misses it).
    fn relay(&self, publication: &Publication);
}

/// The node's Pub/Sub: registry, mailboxes and relay (see the module docs). One per node.
pub struct Hub {
    state: Mutex<HubState>,
    relay: Option<Arc<dyn Relay>>,
}

#[derive(Default)]
struct HubState {
    registry: Registry,
    mailboxes: BTreeMap<ClientId, Arc<Mailbox>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("relay", &self.relay.is_some()).finish()
    }
}

impl Hub {
    /// A hub that relays publications through `relay` (`None`: a single node).
    pub fn new(relay: Option<Arc<dyn Relay>>) -> Hub {
        Hub { state: Mutex::default(), relay }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves maps that are still consistent enough to serve.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribe `client` (whose pushes go to `mailbox`) to `names`: the confirmations, one per
    /// name, with the count after each, as Redis sends them.
    pub fn subscribe(
        &self,
        client: ClientId,
        mailbox: &Arc<Mailbox>,
        space: Space,
        names: &[Bytes],
    ) -> Vec<Frame> {
        let mut state = self.state();
        state.mailboxes.entry(client).or_insert_with(|| mailbox.clone());
        let word = space.words().0;
        names
            .iter()
            .map(|name| {
                state.registry.subscribe(client, space, name);
                confirmation(word, Frame::Bulk(name.clone()), state.registry.reply_count(client, space))
            })
            .collect()
    }

    /// Unsubscribe `client` from `names` (none: from all of `space`, in byte order): one
    /// confirmation per name, or one with a null name if there was nothing to leave.
    pub fn unsubscribe(&self, client: ClientId, space: Space, names: &[Bytes]) -> Vec<Frame> {
        let mut state = self.state();
        let word = space.words().1;
        let names =
            if names.is_empty() { state.registry.subscriptions(client, space) } else { names.to_vec() };
        let mut frames: Vec<Frame> = names
            .iter()
            .map(|name| {
                state.registry.unsubscribe(client, space, name);
                confirmation(word, Frame::Bulk(name.clone()), state.registry.reply_count(client, space))
            })
            .collect();
        if frames.is_empty() {
            frames.push(confirmation(word, Frame::Null, state.registry.reply_count(client, space)));
        }
        if !state.registry.by_client.contains_key(&client) {
            state.mailboxes.remove(&client);
        }
        frames
    }

    /// How many names `client` is subscribed to, all spaces together (0: not in subscribe mode).
    pub fn subscribed(&self, client: ClientId) -> usize {
        let state = self.state();
        [Space::Channel, Space::Pattern, Space::Shard].iter().map(|&s| state.registry.count(client, s)).sum()
    }

    /// Forget `client` (its connection ended).
    pub fn remove(&self, client: ClientId) {
        let mut state = self.state();
        state.registry.remove_client(client);
        state.mailboxes.remove(&client);
    }

    /// `PUBLISH`/`SPUBLISH` on this node: deliver to local subscribers and relay to the other
    /// nodes. Returns how many local subscriptions received it (see the module docs).
    pub fn publish(&self, publication: &Publication) -> usize {
        let received = self.deliver(publication);
        if let Some(relay) = &self.relay {
            relay.relay(publication);
        }
        received
    }

    /// A publication from another node (or this one): deliver it to this node's subscribers only.
    pub fn deliver(&self, publication: &Publication) -> usize {
        let state = self.state();
        let mut received = 0;
        for (client, delivery) in state.registry.recipients(publication) {
            if let Some(mailbox) = state.mailboxes.get(&client) {
                received += usize::from(mailbox.push(delivery.frame(publication)));
            }
        }
        received
    }

    /// `PUBSUB …`'s reply (this node's subscriptions).
    pub fn introspect(&self, request: &PubSubRequest) -> Frame {
        let state = self.state();
        let r = &state.registry;
        match request {
            PubSubRequest::Channels { shard, pattern } => {
                Frame::Array(r.channels(*shard, pattern.as_deref()).into_iter().map(Frame::Bulk).collect())
            }
            PubSubRequest::NumSub { shard, channels } => Frame::Array(
                channels
                    .iter()
                    .flat_map(|c| [Frame::Bulk(c.clone()), Frame::Integer(r.numsub(*shard, c) as i64)])
                    .collect(),
            ),
            PubSubRequest::NumPat => Frame::Integer(r.numpat() as i64),
            PubSubRequest::Help => Frame::Array(HELP.iter().map(|line| Frame::simple(*line)).collect()),
            other => Frame::error(format!("ERR internal error: {other:?} is not a PUBSUB subcommand")),
        }
    }
}

/// `[subscribe, name, count]` and its kin, as a push (an array in RESP2).
fn confirmation(word: &str, name: Frame, count: usize) -> Frame {
    Frame::Push(vec![Frame::bulk(word.to_string()), name, Frame::Integer(count as i64)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn publication(channel: &str) -> Publication {
        Publication { shard: false, channel: b(channel), message: b("hi") }
    }

    #[test]
    fn channels_patterns_and_shard_channels_are_separate_spaces() {
        let mut r = Registry::new();
        assert!(r.subscribe(1, Space::Channel, &b("news")));
        assert!(!r.subscribe(1, Space::Channel, &b("news")), "a second subscribe changes nothing");
        assert!(r.subscribe(2, Space::Pattern, &b("n*")));
        assert!(r.subscribe(3, Space::Shard, &b("news")));
        assert_eq!(
            r.recipients(&publication("news")),
            vec![(1, Delivery::Message), (2, Delivery::PMessage(b("n*")))]
        );
        let shard = Publication { shard: true, ..publication("news") };
        assert_eq!(r.recipients(&shard), vec![(3, Delivery::SMessage)]);
        assert_eq!(r.recipients(&publication("sports")), vec![]);
        // A client on both a channel and a matching pattern receives (and counts) twice.
        r.subscribe(1, Space::Pattern, &b("ne?s"));
        assert_eq!(r.recipients(&publication("news")).len(), 3);
    }

    #[test]
    fn counts_follow_redis() {
        let mut r = Registry::new();
        r.subscribe(1, Space::Channel, &b("a"));
        r.subscribe(1, Space::Pattern, &b("p*"));
        r.subscribe(1, Space::Shard, &b("s"));
        // (P)SUBSCRIBE confirmations count channels and patterns; SSUBSCRIBE's shard channels.
        assert_eq!(r.reply_count(1, Space::Channel), 2);
        assert_eq!(r.reply_count(1, Space::Pattern), 2);
        assert_eq!(r.reply_count(1, Space::Shard), 1);
        r.subscribe(2, Space::Channel, &b("a"));
        r.subscribe(2, Space::Pattern, &b("p*"));
        assert_eq!(r.numsub(false, b"a"), 2);
        assert_eq!(r.numsub(false, b"p*"), 0, "NUMSUB does not count patterns");
        assert_eq!(r.numsub(true, b"s"), 1);
        assert_eq!(r.numpat(), 1, "NUMPAT counts distinct patterns");
    }

    #[test]
    fn unsubscribe_and_disconnect_leave_no_trace() {
        let mut r = Registry::new();
        r.subscribe(1, Space::Channel, &b("b"));
        r.subscribe(1, Space::Channel, &b("a"));
        r.subscribe(2, Space::Channel, &b("a"));
        r.subscribe(1, Space::Pattern, &b("*"));
        assert_eq!(r.subscriptions(1, Space::Channel), vec![b("a"), b("b")], "byte order");
        assert!(r.unsubscribe(1, Space::Channel, b"b"));
        assert!(!r.unsubscribe(1, Space::Channel, b"b"));
        assert!(!r.unsubscribe(9, Space::Channel, b"a"));
        assert_eq!(r.channels(false, None), vec![b("a")]);
        r.remove_client(1);
        assert_eq!(r.numpat(), 0);
        assert_eq!(r.recipients(&publication("a")), vec![(2, Delivery::Message)]);
        r.unsubscribe(2, Space::Channel, b"a");
        assert!(r.by_client.is_empty() && r.by_name.iter().all(BTreeMap::is_empty));
    }

    #[test]
    fn pubsub_channels_filters_by_glob() {
        let mut r = Registry::new();
        for (client, name) in [(1, "news.uk"), (2, "news.fr"), (3, "sport")] {
            r.subscribe(client, Space::Channel, &b(name));
        }
        assert_eq!(r.channels(false, Some(b"news.*")), vec![b("news.fr"), b("news.uk")]);
        assert_eq!(r.channels(false, Some(b"x*")), Vec::<Bytes>::new());
        assert_eq!(r.channels(true, None), Vec::<Bytes>::new());
    }

    #[test]
    fn parse_checks_subcommands_and_arity() {
        let words = |s: &str| s.split(' ').map(b).collect::<Vec<_>>();
        assert_eq!(
            parse("pubsub", words("NUMSUB a b")),
            Ok(PubSubRequest::NumSub { shard: false, channels: vec![b("a"), b("b")] })
        );
        assert_eq!(
            parse("pubsub", words("channels")),
            Ok(PubSubRequest::Channels { shard: false, pattern: None })
        );
        assert_eq!(
            parse("pubsub", words("numpat x")),
            Err(ReplyError("ERR wrong number of arguments for 'pubsub|numpat' command".into()))
        );
        assert_eq!(
            parse("pubsub", words("FOO")),
            Err(ReplyError("ERR unknown subcommand 'FOO'. Try PUBSUB HELP.".into()))
        );
        let p = parse("spublish", words("c m")).unwrap();
        assert_eq!(p.keys(), vec![b"c".as_slice()]);
    }

    #[test]
    fn hub_delivers_to_mailboxes_and_disconnects_a_subscriber_past_its_limit() {
        let hub = Hub::new(None);
        let (fast, mut fast_rx) = Mailbox::new(1 << 20);
        let (slow, _slow_rx) = Mailbox::new(200);
        let confirmations = hub.subscribe(1, &fast, Space::Channel, &[b("c"), b("d")]);
        assert_eq!(confirmations[1], confirmation("subscribe", Frame::bulk("d"), 2));
        hub.subscribe(2, &slow, Space::Pattern, &[b("*")]);
        assert_eq!(hub.publish(&publication("c")), 2);
        assert_eq!(fast_rx.try_recv().unwrap(), Delivery::Message.frame(&publication("c")));
        // The slow one never reads: past 200 bytes its mailbox refuses and asks for a close.
        let big = Publication { message: Bytes::from(vec![b'x'; 150]), ..publication("c") };
        assert_eq!(hub.publish(&big), 1, "the fast subscriber still receives");
        assert!(slow.over.load(Ordering::Relaxed));
        // Leaving everything takes the client out of subscribe mode; then nothing arrives.
        let left = hub.unsubscribe(1, Space::Channel, &[]);
        assert_eq!(left.len(), 2);
        assert_eq!(left[1], confirmation("unsubscribe", Frame::bulk("d"), 0));
        assert_eq!(hub.subscribed(1), 0);
        assert_eq!(
            hub.unsubscribe(1, Space::Channel, &[]),
            vec![confirmation("unsubscribe", Frame::Null, 0)]
        );
        hub.remove(2);
        assert_eq!(hub.publish(&publication("c")), 0);
    }
}

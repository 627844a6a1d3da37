//! Server-assisted client-side caching: `CLIENT TRACKING`, `CLIENT CACHING`, `CLIENT GETREDIR`,
//! `CLIENT TRACKINGINFO`, and the invalidation messages (Redis 6's protocol, so the client-side
//! caches of Redis client libraries work unmodified).
//!
//! A client that caches what it read must hear when it changes. With tracking on, the node
//! remembers which keys the client read (the *default* mode) or which key prefixes it cares about
//! (*broadcasting*, `BCAST`), and when a write changes such a key it sends an `invalidate` message
//! with the key: as a RESP3 push (`>2 invalidate [key …]`) on the client's own connection, or –
//! with `REDIRECT id`, for RESP2 clients – as a Pub/Sub `message` on the channel
//! `__redis__:invalidate` to the connection `id`, which subscribed to it. `FLUSHALL` (or anything
//! that may have changed every key) sends a null key list: "drop everything".
//!
//! # Where the changes come from
//! Not from the writes this node's clients send: every node of a cluster applies every write of
//! the Raft log, and a client reading on a follower must hear of a write sent to the leader. The
//! node's state machine records the keys each applied command changed (`concord_kv::changes`: a
//! Lua script's undeclared keys included), the node hands them over after every batch
//! ([`crate::Backend::key_changes`]), and one task per node turns them into messages here
//! ([`Tracker`], while any client tracks). If that task falls behind the feed, it cannot know what
//! it missed and sends every tracking client a null list.
//!
//! # Reads are remembered before they run
//! A key is filed under the client when the read is *dispatched*, not answered: a write applied
//! between the read's evaluation and its reply must still invalidate. So the client may receive
//! an invalidation for a key before the reply that read it – Redis clients expect that race (it
//! exists in Redis too) and do not cache a reply an invalidation overtook.
//!
//! # Modes
//! * default: a key is remembered per client until it is invalidated once (one message per read),
//!   as Redis's tracking table. The table holds at most [`MAX_TRACKED_KEYS`] keys (Redis's
//!   `tracking-table-max-keys`); past it, the smallest key is invalidated for its clients and
//!   forgotten – the clients just miss a cached value.
//! * `OPTIN`: only reads right after `CLIENT CACHING yes` are remembered; `OPTOUT`: all but those
//!   right after `CLIENT CACHING no`.
//! * `BCAST [PREFIX p …]`: nothing is remembered; every change to a key with one of the prefixes
//!   (no prefix: every key) is sent.
//! * `NOLOOP`: accepted and shown by `CLIENT TRACKINGINFO`, but Concord still sends a client the
//!   invalidations of its own writes. A change comes from the applied log, which does not say
//!   which connection proposed it, and guessing by key and timing could drop another client's
//!   write to the same key – a stale cache. An extra invalidation only costs a cache miss.
//! * `REVISIONS` (Concord only, with `BCAST`): each message carries, after the keys, the store
//!   revision of each key's latest change in the batch: `>3 invalidate [key …] [revision …]`. A
//!   cache tier versions what it holds by revision (`GETREV`), so an invalidation can refuse a
//!   fill read before it and keep a newer value – see `concord-cache`. A sharded node's revisions
//!   are its shard's: comparable for one key, not across keys.
//!
//! # What is not offered
//! The eventual mode has no change feed yet (a write lands on the key's replicas, which need not
//! include the node the client reads through): `CLIENT TRACKING ON` answers an error there, rather
//! than accepting and never invalidating. The strong and sharded modes have it (a sharded node
//! feeds the changes of every shard group it hosts).

use crate::frame::Frame;
use crate::pubsub::{ClientId, Hub, Mailbox};
use bytes::Bytes;
use concord_kv::Changes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The Pub/Sub channel RESP2 clients subscribe to for redirected invalidations.
pub const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// Keys the default mode remembers at most (Redis's `tracking-table-max-keys` default).
pub const MAX_TRACKED_KEYS: usize = 1_000_000;

/// One client's tracking settings: the options of `CLIENT TRACKING ON [REDIRECT id] [BCAST]
/// [PREFIX p …] [OPTIN] [OPTOUT] [NOLOOP]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Where its invalidations go (`None`: its own connection, RESP3 pushes).
    pub redirect: Option<ClientId>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// Concord's `REVISIONS`: messages carry each key's revision (see the module docs).
    pub revisions: bool,
}

/// What one client is to be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Keys with the revision of their latest change (0: no change, the tracking table forgot
    /// the key).
    Keys(Vec<(Bytes, u64)>),
    /// Every key: a null list.
    All,
}

/// Who tracks what on one node. Sans-IO: maps, no locks, no tasks.
#[derive(Debug, Default)]
pub struct TrackingTable {
    clients: BTreeMap<ClientId, Settings>,
    /// Default mode: the clients that read each key since its last invalidation. Entries of
    /// clients that left or turned tracking off are dropped lazily, when the key changes.
    keys: BTreeMap<Bytes, BTreeSet<ClientId>>,
    /// `BCAST`: the clients of each prefix.
    prefixes: BTreeMap<Bytes, BTreeSet<ClientId>>,
    max_keys: usize,
}

impl TrackingTable {
    pub fn new(max_keys: usize) -> TrackingTable {
        TrackingTable { max_keys: max_keys.max(1), ..TrackingTable::default() }
    }

    pub fn settings(&self, client: ClientId) -> Option<&Settings> {
        self.clients.get(&client)
    }

    /// How many keys the default mode remembers (`INFO`'s `tracking_total_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    pub fn tracking_clients(&self) -> usize {
        self.clients.len()
    }

    pub fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// `CLIENT TRACKING ON …` for `client`, with Redis's checks and error words. `exists` says
    /// whether a redirect target is connected.
    pub fn turn_on(
        &mut self,
        client: ClientId,
        request: &Settings,
        exists: impl Fn(ClientId) -> bool,
    ) -> Result<(), String> {
        if !request.bcast && !request.prefixes.is_empty() {
            return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
        }
        if request.revisions && !request.bcast {
            return Err(
                "ERR REVISIONS requires BCAST mode (Concord: a revision comes with a change, not a read)"
                    .into(),
            );
        }
        if request.bcast && (request.optin || request.optout) {
            return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
        }
        if request.optin && request.optout {
            return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
        }
        if let Some(target) = request.redirect {
            if !exists(target) {
                return Err("ERR The client ID you want redirect to does not exist".into());
            }
        }
        let old = self.clients.get(&client);
        if let Some(old) = old {
            if old.bcast != request.bcast {
                return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this \
                            client, and then re-enabling it with a different mode."
                    .into());
            }
            if (old.optin, old.optout) != (request.optin, request.optout) && !request.bcast {
                return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this \
                            client, and then re-enabling it with a different mode."
                    .into());
            }
        }
        let mut prefixes: Vec<Bytes> = old.map(|o| o.prefixes.clone()).unwrap_or_default();
        if request.bcast && request.prefixes.is_empty() && prefixes.is_empty() {
            prefixes.push(Bytes::new()); // every key
        }
        check_prefixes(&prefixes, &request.prefixes)?;
        for p in &request.prefixes {
            if !prefixes.contains(p) {
                prefixes.push(p.clone());
            }
        }
        prefixes.sort(); // `CLIENT TRACKINGINFO` lists them in byte order, as Redis
        for p in &prefixes {
            self.prefixes.entry(p.clone()).or_default().insert(client);
        }
        self.clients.insert(client, Settings { prefixes, ..request.clone() });
        Ok(())
    }

    /// `CLIENT TRACKING OFF`, or the client left.
    pub fn turn_off(&mut self, client: ClientId) {
        if let Some(settings) = self.clients.remove(&client) {
            for p in &settings.prefixes {
                if let Some(set) = self.prefixes.get_mut(p) {
                    set.remove(&client);
                    if set.is_empty() {
                        self.prefixes.remove(p);
                    }
                }
            }
        }
    }

    /// `client` is about to read `keys` (default mode; the caller applied OPTIN/OPTOUT). Returns
    /// what must be sent because the table overflowed.
    pub fn remember(&mut self, client: ClientId, keys: &[Bytes]) -> Vec<(ClientId, Invalidation)> {
        match self.clients.get(&client) {
            Some(s) if !s.bcast => {}
            _ => return Vec::new(),
        }
        for key in keys {
            self.keys.entry(key.clone()).or_default().insert(client);
        }
        let mut evicted = Vec::new();
        while self.keys.len() > self.max_keys {
            if let Some((key, clients)) = self.keys.pop_first() {
                evicted.extend(clients.into_iter().map(|c| (c, Invalidation::Keys(vec![(key.clone(), 0)]))));
            }
        }
        evicted
    }

    /// Keys changed: who must be told what. Each default-mode key is forgotten once sent.
    pub fn changed(&mut self, changes: &Changes) -> Vec<(ClientId, Invalidation)> {
        if changes.everything {
            self.keys.clear();
            return self.clients.keys().map(|&c| (c, Invalidation::All)).collect();
        }
        // Default mode: one message per key, as Redis sends them.
        let mut out: Vec<(ClientId, Invalidation)> = Vec::new();
        let mut broadcast: Vec<(ClientId, Bytes, u64)> = Vec::new();
        for (key, revision) in &changes.keys {
            if let Some(clients) = self.keys.remove(key.as_slice()) {
                let key = Bytes::copy_from_slice(key);
                out.extend(
                    clients
                        .into_iter()
                        .filter(|c| self.clients.get(c).is_some_and(|s| !s.bcast))
                        .map(|c| (c, Invalidation::Keys(vec![(key.clone(), *revision)]))),
                );
            }
            for (prefix, clients) in &self.prefixes {
                if key.starts_with(prefix) {
                    let key = Bytes::copy_from_slice(key);
                    broadcast.extend(clients.iter().map(|&c| (c, key.clone(), *revision)));
                }
            }
        }
        // Broadcasting: one message per client for the batch, as Redis sends them per event loop.
        out.extend(self.group(broadcast));
        out
    }

    /// One message per client, keys in the order they first changed (a key once per message,
    /// with its latest revision).
    fn group(&self, changes: Vec<(ClientId, Bytes, u64)>) -> Vec<(ClientId, Invalidation)> {
        let mut by_client: BTreeMap<ClientId, Vec<(Bytes, u64)>> = BTreeMap::new();
        for (client, key, revision) in changes {
            let keys = by_client.entry(client).or_default();
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, latest)) => *latest = (*latest).max(revision),
                None => keys.push((key, revision)),
            }
        }
        by_client.into_iter().map(|(c, keys)| (c, Invalidation::Keys(keys))).collect()
    }
}

/// Redis's prefix rule: no two prefixes of one client may be prefixes of each other.
fn check_prefixes(existing: &[Bytes], new: &[Bytes]) -> Result<(), String> {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        for q in &new[i + 1..] {
            if p != q && (p.starts_with(q) || q.starts_with(p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single \
                     client must not overlap.",
                    text(p),
                    text(q)
                ));
            }
        }
        for q in existing {
            if p != q && (p.starts_with(q) || q.starts_with(p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client \
                     must not overlap.",
                    text(p),
                    text(q)
                ));
            }
        }
    }
    Ok(())
}

/// A connection as an invalidation target.
struct Endpoint {
    mailbox: Arc<Mailbox>,
    resp3: Arc<AtomicBool>,
}

#[derive(Default)]
struct TrackerState {
    table: TrackingTable,
    endpoints: BTreeMap<ClientId, Endpoint>,
    /// The task following the change feed, while any client tracks (see [`Tracker`]).
    follower: Option<tokio::task::AbortHandle>,
}

/// Where the change feed comes from: each call subscribes anew (`None`: the backend has none).
pub type FeedSource = Box<dyn Fn() -> Option<broadcast::Receiver<Arc<Changes>>> + Send + Sync>;

/// The node's tracking: the table, the connections it can send to, and the change feed. One per
/// node, shared by every connection.
///
/// The feed is followed only while at least one client tracks: with nobody subscribed the node
/// sends nothing after its batches, so a node whose clients do not cache pays nothing for it.
/// Following starts when the first client turns tracking on – before its first read is
/// remembered, so no change it must hear of can be missed.
pub struct Tracker {
    state: Mutex<TrackerState>,
    feed: FeedSource,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").field("following", &self.state().follower.is_some()).finish()
    }
}

impl Tracker {
    /// A tracker that subscribes to `feed` when needed and delivers through `hub`'s mailboxes.
    pub fn new(feed: FeedSource, hub: Arc<Hub>) -> Tracker {
        Tracker {
            state: Mutex::new(TrackerState {
                table: TrackingTable::new(MAX_TRACKED_KEYS),
                ..Default::default()
            }),
            feed,
            hub,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection opened: it may become a tracking client or a redirect target.
    pub fn connect(&self, client: ClientId, mailbox: Arc<Mailbox>, resp3: Arc<AtomicBool>) {
        self.state().endpoints.insert(client, Endpoint { mailbox, resp3 });
    }

    /// A connection closed.
    pub fn disconnect(&self, client: ClientId) {
        let mut state = self.state();
        state.endpoints.remove(&client);
        state.table.turn_off(client);
        state.stop_following_if_idle();
    }

    /// `CLIENT TRACKING ON …` (a tokio task follows the feed from the first tracking client on).
    pub fn turn_on(self: &Arc<Self>, client: ClientId, request: &Settings) -> Result<(), String> {
        let mut state = self.state();
        if state.follower.is_none() {
            let Some(feed) = (self.feed)() else {
                return Err(
                    "ERR CLIENT TRACKING needs a change feed of applied writes, which this node's mode \
                            does not offer (the eventual mode has none yet)"
                        .into(),
                );
            };
            state.follower = Some(tokio::spawn(self.clone().follow(feed)).abort_handle());
        }
        let TrackerState { table, endpoints, .. } = &mut *state;
        let result = table.turn_on(client, request, |target| endpoints.contains_key(&target));
        state.stop_following_if_idle();
        result
    }

    pub fn turn_off(&self, client: ClientId) {
        let mut state = self.state();
        state.table.turn_off(client);
        state.stop_following_if_idle();
    }

    /// Stop following the feed (the server is stopping).
    pub fn stop(&self) {
        if let Some(follower) = self.state().follower.take() {
            follower.abort();
        }
    }

    pub fn settings(&self, client: ClientId) -> Option<Settings> {
        self.state().table.settings(client).cloned()
    }

    /// `(clients tracking, keys remembered, prefixes)` for `INFO`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let state = self.state();
        (state.table.tracking_clients(), state.table.tracked_keys(), state.table.prefix_count())
    }

    /// Whether connection `client` is open.
    pub fn is_connected(&self, client: ClientId) -> bool {
        self.state().endpoints.contains_key(&client)
    }

    /// A tracking client is about to read `keys` (see the module docs).
    pub fn remember(&self, client: ClientId, keys: &[Bytes]) {
        let mut state = self.state();
        let sends = state.table.remember(client, keys);
        state.send(sends, &self.hub);
    }

    /// Keys changed: send the invalidations.
    pub fn changed(&self, changes: &Changes) {
        let mut state = self.state();
        let sends = state.table.changed(changes);
        state.send(sends, &self.hub);
    }

    async fn follow(self: Arc<Self>, mut feed: broadcast::Receiver<Arc<Changes>>) {
        loop {
            match feed.recv().await {
                Ok(changes) => self.changed(&changes),
                // What was missed is unknown: every client drops its whole cache.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.changed(&Changes { keys: Vec::new(), everything: true });
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

impl TrackerState {
    /// No client tracks any more: stop following the feed, so the node stops sending it.
    fn stop_following_if_idle(&mut self) {
        if self.table.tracking_clients() == 0 {
            if let Some(follower) = self.follower.take() {
                follower.abort();
            }
        }
    }

    /// Deliver each client's invalidation where its settings say (see the module docs).
    fn send(&self, sends: Vec<(ClientId, Invalidation)>, hub: &Hub) {
        for (client, invalidation) in sends {
            let Some(settings) = self.table.settings(client) else { continue };
            let mut revisions = None;
            let keys = match invalidation {
                Invalidation::Keys(keys) => {
                    if settings.revisions {
                        revisions = Some(Frame::Array(
                            keys.iter().map(|(_, revision)| Frame::Integer(*revision as i64)).collect(),
                        ));
                    }
                    Frame::Array(keys.into_iter().map(|(key, _)| Frame::Bulk(key)).collect())
                }
                Invalidation::All => Frame::Null,
            };
            let target = settings.redirect.unwrap_or(client);
            let Some(endpoint) = self.endpoints.get(&target) else {
                // The redirect target left: a RESP3 client is told, as Redis does.
                if let Some(own) = self.endpoints.get(&client) {
                    if own.resp3.load(Ordering::Relaxed) {
                        own.mailbox.push(Frame::Push(vec![
                            Frame::bulk("tracking-redir-broken"),
                            Frame::Integer(target as i64),
                        ]));
                    }
                }
                continue;
            };
            if endpoint.resp3.load(Ordering::Relaxed) {
                let mut push = vec![Frame::bulk("invalidate"), keys];
                push.extend(revisions);
                endpoint.mailbox.push(Frame::Push(push));
            } else if settings.redirect.is_some() && hub.subscribed(target) > 0 {
                endpoint.mailbox.push(Frame::Push(vec![
                    Frame::bulk("message"),
                    Frame::bulk(INVALIDATE_CHANNEL),
                    keys,
                ]));
            }
            // A RESP2 client without a redirect cannot receive pushes: nothing is sent (Redis's rule).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(table: &mut TrackingTable, client: ClientId, request: Settings) -> Result<(), String> {
        table.turn_on(client, &request, |_| true)
    }

    fn changes(keys: &[&str]) -> Changes {
        Changes {
            keys: keys.iter().enumerate().map(|(i, k)| (k.as_bytes().to_vec(), i as u64 + 1)).collect(),
            everything: false,
        }
    }

    fn keys(list: &[(&str, u64)]) -> Invalidation {
        Invalidation::Keys(list.iter().map(|(k, r)| (Bytes::copy_from_slice(k.as_bytes()), *r)).collect())
    }

    #[test]
    fn a_read_key_is_invalidated_once_for_each_reader() {
        let mut table = TrackingTable::new(100);
        on(&mut table, 1, Settings::default()).unwrap();
        on(&mut table, 2, Settings::default()).unwrap();
        table.remember(1, &[Bytes::from("a"), Bytes::from("b")]);
        table.remember(2, &[Bytes::from("a")]);
        assert_eq!(
            table.changed(&changes(&["a", "c", "b"])),
            vec![(1, keys(&[("a", 1)])), (2, keys(&[("a", 1)])), (1, keys(&[("b", 3)]))]
        );
        assert!(table.changed(&changes(&["a"])).is_empty(), "sent once: the client must read again");
        table.remember(1, &[Bytes::from("d")]);
        table.turn_off(1);
        assert!(
            table.changed(&changes(&["d"])).is_empty(),
            "a client that turned tracking off hears nothing"
        );
    }

    #[test]
    fn broadcasting_sends_every_key_of_the_prefixes() {
        let mut table = TrackingTable::new(100);
        on(
            &mut table,
            1,
            Settings { bcast: true, prefixes: vec!["user:".into(), "post:".into()], ..Default::default() },
        )
        .unwrap();
        on(&mut table, 2, Settings { bcast: true, ..Default::default() }).unwrap();
        assert_eq!(
            table.changed(&changes(&["user:1", "x", "post:9"])),
            vec![
                (1, keys(&[("user:1", 1), ("post:9", 3)])),
                (2, keys(&[("user:1", 1), ("x", 2), ("post:9", 3)]))
            ],
            "one message per client for the batch"
        );
    }

    #[test]
    fn a_key_changed_twice_in_a_batch_is_sent_once_with_its_latest_revision() {
        let mut table = TrackingTable::new(100);
        on(&mut table, 1, Settings { bcast: true, revisions: true, ..Default::default() }).unwrap();
        assert_eq!(table.changed(&changes(&["a", "b", "a"])), vec![(1, keys(&[("a", 3), ("b", 2)]))]);
        assert_eq!(
            on(&mut table, 2, Settings { revisions: true, ..Default::default() }).unwrap_err(),
            "ERR REVISIONS requires BCAST mode (Concord: a revision comes with a change, not a read)"
        );
    }

    #[test]
    fn everything_tells_every_tracking_client_and_forgets_all_keys() {
        let mut table = TrackingTable::new(100);
        on(&mut table, 1, Settings::default()).unwrap();
        on(&mut table, 2, Settings { bcast: true, ..Default::default() }).unwrap();
        table.remember(1, &[Bytes::from("a")]);
        let all = Changes { keys: vec![], everything: true };
        assert_eq!(table.changed(&all), vec![(1, Invalidation::All), (2, Invalidation::All)]);
        assert_eq!(table.tracked_keys(), 0);
    }

    #[test]
    fn a_full_table_invalidates_what_it_forgets() {
        let mut table = TrackingTable::new(2);
        on(&mut table, 1, Settings::default()).unwrap();
        assert!(table.remember(1, &[Bytes::from("b"), Bytes::from("c")]).is_empty());
        assert_eq!(table.remember(1, &[Bytes::from("d")]), vec![(1, keys(&[("b", 0)]))]);
        assert_eq!(table.tracked_keys(), 2);
    }

    #[tokio::test]
    async fn the_feed_is_followed_only_while_a_client_tracks() {
        let (feed, _) = broadcast::channel::<Arc<Changes>>(8);
        let source = feed.clone();
        let tracker =
            Arc::new(Tracker::new(Box::new(move || Some(source.subscribe())), Arc::new(Hub::new(None))));
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        assert_eq!(feed.receiver_count(), 0, "nobody tracks: the node sends nothing");
        tracker.turn_on(1, &Settings::default()).unwrap();
        tracker.turn_on(2, &Settings { bcast: true, ..Default::default() }).unwrap();
        assert_eq!(feed.receiver_count(), 1, "one subscription for every tracking client");
        tracker.turn_off(1);
        settle().await;
        assert_eq!(feed.receiver_count(), 1);
        tracker.disconnect(2);
        settle().await;
        assert_eq!(feed.receiver_count(), 0, "the last client left: the subscription is dropped");
        let none = Arc::new(Tracker::new(Box::new(|| None), Arc::new(Hub::new(None))));
        let refused = none.turn_on(1, &Settings::default()).unwrap_err();
        assert!(refused.starts_with("ERR CLIENT TRACKING needs a change feed"), "{refused}");
    }

    #[test]
    fn redis_refusals_in_redis_words() {
        let mut table = TrackingTable::new(100);
        let err = |t: &mut TrackingTable, r| on(t, 1, r).unwrap_err();
        assert_eq!(
            err(&mut table, Settings { prefixes: vec!["a".into()], ..Default::default() }),
            "ERR PREFIX option requires BCAST mode to be enabled"
        );
        assert_eq!(
            err(&mut table, Settings { bcast: true, optin: true, ..Default::default() }),
            "ERR OPTIN and OPTOUT are not compatible with BCAST"
        );
        assert_eq!(
            err(&mut table, Settings { optin: true, optout: true, ..Default::default() }),
            "ERR You can't specify both OPTIN mode and OPTOUT mode"
        );
        assert!(err(
            &mut table,
            Settings { bcast: true, prefixes: vec!["ab".into(), "abc".into()], ..Default::default() }
        )
        .starts_with("ERR Prefix 'ab' overlaps with another provided prefix 'abc'"));
        on(&mut table, 1, Settings { bcast: true, ..Default::default() }).unwrap();
        assert!(err(&mut table, Settings::default()).starts_with("ERR You can't switch BCAST mode"));
        assert!(err(&mut table, Settings { bcast: true, prefixes: vec!["a".into()], ..Default::default() })
            .starts_with("ERR Prefix 'a' overlaps with an existing prefix ''"));
        table.turn_off(1);
        on(&mut table, 1, Settings { optin: true, ..Default::default() }).unwrap();
        assert!(err(&mut table, Settings { optout: true, ..Default::default() })
            .starts_with("ERR You can't switch OPTIN/OPTOUT mode"));
        assert_eq!(
            table
                .turn_on(2, &Settings { redirect: Some(99), ..Default::default() }, |_| { false })
                .unwrap_err(),
            "ERR The client ID you want redirect to does not exist"
        );
    }
}

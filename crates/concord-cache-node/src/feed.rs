//! The invalidation feed: one RESP3 connection per database node, subscribed with
//! `CLIENT TRACKING ON BCAST REVISIONS`.
//!
//! Every push `>3 invalidate [k1 k2 …] [r1 r2 …]` calls `Cache::invalidate(ki, ri)`: values older
//! than `ri` go and fills read before it are refused. A null push (`>2 invalidate null`: FLUSHALL,
//! a snapshot install, a feed that overflowed) flushes everything. A database node's feed covers
//! the shards it hosts, so the node subscribes to every database node it was given; the same
//! change heard from several nodes is applied once: a revision at or below the key's remembered
//! invalidation mark is skipped (applying it again would be harmless to correctness, but would
//! void a lease taken since, and so refuse a fill of the very value it announced).
//!
//! The connection's life drives [`crate::Inner::set_feed`]: the subscription's `+OK` makes the
//! feed live (a flush first, then serving resumes once every feed is live); a drop, a timeout or
//! a refusal makes it not live (a flush, and the node serves nothing from memory until it is
//! back). Reconnects back off from 100 ms to 2 s.
//!
//! **Slot moves.** Revisions are per shard, so a key that moves to another shard (a sharded
//! database's slot move) continues at another shard's revisions, which cannot be compared with
//! the ones cached or remembered. Every second the feed connection is pinged with `CLUSTER INFO`
//! (an error outside the sharded mode, which is fine: any answer is a pong), and when a database
//! node reports a shard-map epoch higher than any seen, the node flushes. Between a move's flip
//! and that flush (about a second) a moved key's cached value may miss an invalidation; and
//! invalidation marks are kept across the flush, so fills of a moved key may be refused (a miss,
//! never a stale value) until the marks are forgotten (a minute).

use crate::conn::Conn;
use crate::db::DbError;
use crate::{FeedState, Shared};
use concord_resp::Frame;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(shared: Arc<Shared>, index: usize) {
    let addr = shared.options.db[index];
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe(&shared, addr).await {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                shared.counters.feed_reconnects.fetch_add(1, Ordering::Relaxed);
                let now = shared.now();
                shared.lock().set_feed(index, FeedState::Live, now);
                let why = listen(&shared, &mut conn).await;
                let now = shared.now();
                shared.lock().set_feed(
                    index,
                    FeedState::Unreachable(format!("{addr}: feed lost: {why}")),
                    now,
                );
            }
            Err(state) => {
                let now = shared.now();
                shared.lock().set_feed(index, state, now);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Connect, check the cluster, say `HELLO 3` and subscribe.
async fn subscribe(shared: &Shared, addr: std::net::SocketAddr) -> Result<Conn, FeedState> {
    let mut conn = shared.db.open(addr).await.map_err(|e| match e {
        DbError::Unreachable(why) => FeedState::Unreachable(why),
        DbError::WrongCluster { .. } => FeedState::WrongCluster(e.reply()),
        DbError::Unexpected(why) => FeedState::Refused(why),
    })?;
    let io = |e: std::io::Error| FeedState::Unreachable(format!("{addr}: {e}"));
    if let Frame::Error(e) = conn.call1(&[b"HELLO", b"3"]).await.map_err(io)? {
        return Err(FeedState::Refused(format!("{addr} refused HELLO 3: {e}")));
    }
    let reply = conn.call1(&[b"CLUSTER", b"INFO"]).await.map_err(io)?;
    observe_shard_epoch(shared, &reply);
    let reply = conn.call1(&[b"CLIENT", b"TRACKING", b"ON", b"BCAST", b"REVISIONS"]).await.map_err(io)?;
    match reply {
        Frame::Simple(ok) if ok == "OK" => Ok(conn),
        other => Err(FeedState::Refused(format!(
            "{addr} refused CLIENT TRACKING ON BCAST REVISIONS: {other:?} (a Concord database with the cache \
             tier's feed is needed)"
        ))),
    }
}

/// How often the feed connection is pinged (with `CLUSTER INFO`, see the module docs), and how
/// long a ping may go unanswered before the feed counts as lost (a database node that stopped
/// without closing its sockets).
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_LIMIT: Duration = Duration::from_secs(3);

/// Apply pushes until the connection ends; why it ended.
async fn listen(shared: &Shared, conn: &mut Conn) -> String {
    let mut tick = tokio::time::interval(PING_EVERY);
    let mut unanswered: Option<tokio::time::Instant> = None;
    loop {
        enum Event {
            Frame(std::io::Result<Frame>),
            Tick,
        }
        // `next_frame` is cancel-safe: bytes read stay in the connection's buffer.
        let event = tokio::select! {
            frame = conn.next_frame() => Event::Frame(frame),
            _ = tick.tick() => Event::Tick,
        };
        let frame = match event {
            Event::Tick => {
                if let Some(since) = unanswered {
                    if since.elapsed() > PING_LIMIT {
                        return format!("no answer to PING for {PING_LIMIT:?}");
                    }
                    continue;
                }
                if let Err(e) = conn.send(&[b"CLUSTER", b"INFO"]).await {
                    return e.to_string();
                }
                unanswered = Some(tokio::time::Instant::now());
                continue;
            }
            Event::Frame(Ok(frame)) => frame,
            Event::Frame(Err(e)) => return e.to_string(),
        };
        let Frame::Push(items) = frame else {
            unanswered = None; // the answer to CLUSTER INFO (an error outside the sharded mode)
            observe_shard_epoch(shared, &frame);
            continue;
        };
        if !matches!(items.first(), Some(Frame::Bulk(b)) if b.eq_ignore_ascii_case(b"invalidate")) {
            continue;
        }
        shared.counters.feed_pushes.fetch_add(1, Ordering::Relaxed);
        let now = shared.now();
        match (items.get(1), items.get(2)) {
            (Some(Frame::Array(keys)), Some(Frame::Array(revs))) if keys.len() == revs.len() => {
                let mut inner = shared.lock();
                for (key, rev) in keys.iter().zip(revs) {
                    let (Frame::Bulk(key), Frame::Integer(rev)) = (key, rev) else { continue };
                    let rev = (*rev).max(0) as u64;
                    // The same change heard again from another database node says nothing new;
                    // applied, it would void a lease taken since – a fill of this very value.
                    if inner.cache.invalidation_mark(key, now).is_some_and(|mark| mark >= rev) {
                        continue;
                    }
                    inner.cache.invalidate(key, rev, now);
                }
            }
            (Some(Frame::Array(keys)), None) => {
                // Without revisions (should not happen: we asked for them) a key can only be
                // dropped, with no mark; fills racing it are not refused – so flush instead.
                let _ = keys;
                shared.counters.feed_flushes.fetch_add(1, Ordering::Relaxed);
                let mut inner = shared.lock();
                inner.cache.flush_all(now);
                inner.epoch += 1;
            }
            _ => {
                // `invalidate null`: the database could not say what changed.
                shared.counters.feed_flushes.fetch_add(1, Ordering::Relaxed);
                let mut inner = shared.lock();
                inner.cache.flush_all(now);
                inner.epoch += 1;
            }
        }
    }
}

/// A sharded database's `CLUSTER INFO` names its shard map's epoch; a higher one than any seen
/// means slots may have moved between shards, and revisions of different shards are not
/// comparable: flush (module docs). Outside the sharded mode the answer is an error: nothing.
fn observe_shard_epoch(shared: &Shared, reply: &Frame) {
    let Some(info) = crate::conn::text(reply) else { return };
    let Some(epoch) = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("cluster_current_epoch:"))
        .and_then(|e| e.parse::<u64>().ok())
    else {
        return;
    };
    let now = shared.now();
    let mut inner = shared.lock();
    match inner.shard_epoch {
        Some(seen) if epoch > seen => {
            shared.counters.feed_flushes.fetch_add(1, Ordering::Relaxed);
            inner.cache.flush_all(now);
            inner.epoch += 1;
            inner.shard_epoch = Some(epoch);
        }
        Some(_) => {}
        None => inner.shard_epoch = Some(epoch),
    }
}

//! `CLIENT TRACKING` on real nodes: a client caching on a follower hears of a write sent to the
//! leader, because every node invalidates from its own apply stream (the state machine's change
//! feed), not from the writes its own clients send; a sharded node, from every shard group it
//! hosts. The eventual mode, without a change feed, refuses tracking.

use concord_server::config::ShardSettings;
use concord_server::testkit::{agreed_leader, loopback_configs, Reply, Resp};
use concord_server::{Mode, Node};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn invalidation(keys: &[&str]) -> Reply {
    Reply::Array(vec![
        Reply::Text("message".into()),
        Reply::Text("__redis__:invalidate".into()),
        Reply::Array(keys.iter().map(|k| Reply::Text(k.to_string())).collect()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_invalidates_a_write_committed_through_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let configs = loopback_configs(dir.path(), 3);
    let redis: Vec<_> = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    let leader = agreed_leader(&nodes, T).await;
    let follower = (leader + 1) % 3;
    // A RESP2 client caches on the follower; its invalidations go to a second connection there.
    let mut inbox = Resp::connect(redis[follower]).await.unwrap();
    inbox.request(&["SUBSCRIBE", "__redis__:invalidate"]).await.unwrap();
    let id = subscriber_id(redis[follower]).await;
    let mut cache = Resp::connect(redis[follower]).await.unwrap();
    assert_eq!(cache.call(&["CLIENT", "TRACKING", "on", "REDIRECT", &id]).await.unwrap(), "OK");
    assert_eq!(cache.call(&["GET", "k"]).await.unwrap(), "(nil)");
    let mut writer = Resp::connect(redis[leader]).await.unwrap();
    assert_eq!(writer.call(&["SET", "k", "v1"]).await.unwrap(), "OK");
    assert_eq!(inbox.receive(T).await.unwrap(), Some(invalidation(&["k"])));
    // Once per read: the next write is not sent until the client reads again.
    assert_eq!(writer.call(&["SET", "k", "v2"]).await.unwrap(), "OK");
    assert_eq!(inbox.receive(Duration::from_millis(500)).await.unwrap(), None);
    assert_eq!(cache.call(&["GET", "k"]).await.unwrap(), "v2");
    // A delete is a change too (the engine reports what it removed).
    assert_eq!(writer.call(&["DEL", "k"]).await.unwrap(), "1");
    assert_eq!(inbox.receive(T).await.unwrap(), Some(invalidation(&["k"])));
    // A Lua script's undeclared key, a collection member, then FLUSHALL's null list.
    assert_eq!(cache.call(&["CLIENT", "TRACKING", "off"]).await.unwrap(), "OK");
    assert_eq!(cache.call(&["CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id]).await.unwrap(), "OK");
    writer.call(&["EVAL", "redis.call('SET', 'hidden', '1') return 1", "0"]).await.unwrap();
    assert_eq!(inbox.receive(T).await.unwrap(), Some(invalidation(&["hidden"])));
    writer.call(&["HSET", "h", "f", "v"]).await.unwrap();
    assert_eq!(inbox.receive(T).await.unwrap(), Some(invalidation(&["h"])));
    assert_eq!(writer.call(&["FLUSHALL"]).await.unwrap(), "OK");
    let flushed = Reply::Array(vec![
        Reply::Text("message".into()),
        Reply::Text("__redis__:invalidate".into()),
        Reply::Text("(nil)".into()),
    ]);
    assert_eq!(inbox.receive(T).await.unwrap(), Some(flushed));
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// The `CLIENT ID` of the node's subscriber (a subscribed RESP2 connection may not ask itself).
/// What a cache tier builds on: a RESP3 connection with `BCAST REVISIONS` hears each change with
/// its revision, `GETREV` answers the value with the same revision, and `INFO` names the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_tier_hears_revisions_and_reads_them_with_getrev() {
    let dir = tempfile::tempdir().unwrap();
    let configs = loopback_configs(dir.path(), 3);
    let redis: Vec<_> = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    let leader = agreed_leader(&nodes, T).await;
    let follower = (leader + 1) % 3;
    let mut feed = Resp::connect(redis[follower]).await.unwrap();
    feed.request(&["HELLO", "3"]).await.unwrap();
    let refused = feed.call(&["CLIENT", "TRACKING", "on", "REVISIONS"]).await.unwrap();
    assert!(refused.starts_with("-ERR REVISIONS requires BCAST"), "{refused}");
    assert_eq!(feed.call(&["CLIENT", "TRACKING", "on", "BCAST", "REVISIONS"]).await.unwrap(), "OK");
    let mut writer = Resp::connect(redis[leader]).await.unwrap();
    assert_eq!(writer.call(&["SET", "k", "v1"]).await.unwrap(), "OK");
    let Some(Reply::Array(push)) = feed.receive(T).await.unwrap() else { panic!("no invalidation") };
    let [kind, keys, revisions] = &push[..] else { panic!("not a push with revisions: {push:?}") };
    assert_eq!(kind, &Reply::Text("invalidate".into()));
    assert_eq!(keys.texts().unwrap(), vec!["k"]);
    let revision = revisions.texts().unwrap()[0].parse::<u64>().unwrap();
    assert!(revision > 0);
    let mut reader = Resp::connect(redis[follower]).await.unwrap();
    let read = reader.request(&["GETREV", "k"]).await.unwrap();
    assert_eq!(read, Reply::Array(vec![Reply::Text("v1".into()), Reply::Text(revision.to_string())]));
    let absent = reader.request(&["GETREV", "nothing"]).await.unwrap();
    assert_eq!(absent, Reply::Array(vec![Reply::Text("(nil)".into()), Reply::Text("0".into())]));
    writer.call(&["HSET", "h", "f", "v"]).await.unwrap();
    assert!(reader.call(&["GETREV", "h"]).await.unwrap().starts_with("-WRONGTYPE"));
    let info = reader.call(&["INFO", "server"]).await.unwrap();
    assert!(info.contains("concord_cluster_id:test-cluster\r\n"), "{info}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

async fn subscriber_id(addr: std::net::SocketAddr) -> String {
    let mut other = Resp::connect(addr).await.unwrap();
    let list = other.call(&["CLIENT", "LIST"]).await.unwrap();
    let line = list.lines().find(|l| l.contains("cmd=subscribe")).expect("the subscriber in CLIENT LIST");
    line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_node_invalidates_from_every_shard_group_it_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = loopback_configs(dir.path(), 3);
    for c in &mut configs {
        c.mode = Mode::Sharded;
        // Every node hosts every shard, so node 1 hears of every write (Redis Cluster's rule:
        // a node tracks the keys it serves).
        c.shard = Some(ShardSettings { shards: 3, replicas: 3 });
    }
    let redis: Vec<_> = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    let mut inbox = Resp::connect(redis[0]).await.unwrap();
    inbox.request(&["SUBSCRIBE", "__redis__:invalidate"]).await.unwrap();
    let id = subscriber_id(redis[0]).await;
    let mut cache = Resp::connect(redis[0]).await.unwrap();
    let on =
        cache.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "REDIRECT", &id]).await.unwrap();
    assert_eq!(on, "OK");
    for key in ["user:1", "user:2", "user:3", "user:4"] {
        set_following_moved(&redis[0], key).await;
        assert_eq!(inbox.receive(T).await.unwrap(), Some(invalidation(&[key])), "{key}");
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// `SET key v` on the node that leads the key's shard, found by following `-MOVED` (and retrying
/// while the cluster settles).
async fn set_following_moved(first: &std::net::SocketAddr, key: &str) {
    let deadline = std::time::Instant::now() + T;
    let mut addr = *first;
    loop {
        let mut conn = Resp::connect(addr).await.unwrap();
        let reply = conn.call(&["SET", key, "v"]).await.unwrap();
        if reply == "OK" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "SET {key} never succeeded: {reply}");
        match reply.strip_prefix("-MOVED ").and_then(|r| r.split(' ').nth(1)) {
            Some(to) => addr = to.parse().unwrap(),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eventual_mode_refuses_tracking() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = loopback_configs(dir.path(), 3);
    for c in &mut configs {
        c.mode = Mode::Eventual;
    }
    let addr = configs[0].redis_addr.unwrap();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    let mut conn = Resp::connect(addr).await.unwrap();
    let reply = conn.call(&["CLIENT", "TRACKING", "on"]).await.unwrap();
    assert!(reply.starts_with("-ERR CLIENT TRACKING needs a change feed"), "{reply}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

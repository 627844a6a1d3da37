//! Pub/Sub across real nodes in one process (loopback sockets), in each mode: a message
//! published on one node reaches subscribers on the others over the peer transport
//! (`concord_server::front::pubsub`), and `PUBLISH` answers this node's receivers only.
//!
//! Delivery is at most once: a message published before a peer connection is up is lost, so each
//! test first publishes warm-up messages until every subscriber got one, then checks the message
//! that matters (see "Delivery" in `concord_resp::pubsub`).

use concord_server::config::ShardSettings;
use concord_server::testkit::{loopback_configs, Reply, Resp};
use concord_server::{Mode, Node};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Start `n` nodes of `mode`; their RESP addresses. Pub/Sub needs no leader or membership view,
/// only peer connections, which the warm-up below waits for.
async fn start(dir: &std::path::Path, n: usize, mode: Mode) -> (Vec<Node>, Vec<SocketAddr>) {
    let mut configs = loopback_configs(dir, n);
    for c in &mut configs {
        c.mode = mode;
        if mode == Mode::Sharded {
            c.shard = Some(ShardSettings { shards: 3, replicas: 2 });
        }
    }
    let redis = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    (nodes, redis)
}

fn array(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::Text(s.to_string())).collect())
}

/// The message a subscriber receives for `payload`, skipping warm-up messages.
async fn next_message(sub: &mut Resp, payload: &str) -> Reply {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(reply) = sub.receive(left).await.unwrap() else { panic!("no {payload:?} within {T:?}") };
        match &reply {
            Reply::Array(items) if items.last() == Some(&Reply::Text("warm-up".into())) => continue,
            _ => return reply,
        }
    }
}

/// Publish warm-up messages on `publisher` (`command` is PUBLISH or SPUBLISH) until every
/// subscriber received one: then every peer connection they need is up.
async fn warm_up(publisher: &mut Resp, command: &str, channel: &str, subscribers: &mut [&mut Resp]) {
    let deadline = Instant::now() + T;
    let mut got = vec![false; subscribers.len()];
    while !got.iter().all(|g| *g) {
        assert!(Instant::now() < deadline, "warm-up messages did not reach every subscriber: {got:?}");
        publisher.call(&[command, channel, "warm-up"]).await.unwrap();
        for (i, sub) in subscribers.iter_mut().enumerate() {
            // Drain what arrived; one is enough.
            while let Some(reply) = sub.receive(Duration::from_millis(100)).await.unwrap() {
                assert!(
                    matches!(&reply, Reply::Array(items) if items.last() == Some(&Reply::Text("warm-up".into())))
                );
                got[i] = true;
            }
        }
    }
}

/// Node 1 subscribes to `news`, node 3 to the pattern `n*`; node 2 publishes.
async fn across_three_nodes(redis: &[SocketAddr]) {
    let mut sub = Resp::connect(redis[0]).await.unwrap();
    let mut psub = Resp::connect(redis[2]).await.unwrap();
    let mut publisher = Resp::connect(redis[1]).await.unwrap();
    assert_eq!(sub.request(&["SUBSCRIBE", "news"]).await.unwrap(), array(&["subscribe", "news", "1"]));
    assert_eq!(psub.request(&["PSUBSCRIBE", "n*"]).await.unwrap(), array(&["psubscribe", "n*", "1"]));
    warm_up(&mut publisher, "PUBLISH", "news", &mut [&mut sub, &mut psub]).await;

    // No subscriber on node 2 itself: the reply counts this node's receivers (Redis Cluster's).
    assert_eq!(publisher.call(&["PUBLISH", "news", "hello"]).await.unwrap(), "0");
    assert_eq!(next_message(&mut sub, "hello").await, array(&["message", "news", "hello"]));
    assert_eq!(next_message(&mut psub, "hello").await, array(&["pmessage", "n*", "news", "hello"]));
    // One publisher's messages arrive in order.
    for i in 0..20 {
        publisher.call(&["PUBLISH", "news", &format!("m{i}")]).await.unwrap();
    }
    for i in 0..20 {
        let m = format!("m{i}");
        assert_eq!(next_message(&mut sub, &m).await, array(&["message", "news", &m]));
        assert_eq!(next_message(&mut psub, &m).await, array(&["pmessage", "n*", "news", &m]));
    }
    // A channel nobody listens to reaches nobody; introspection is per node.
    assert_eq!(publisher.call(&["PUBLISH", "sport", "x"]).await.unwrap(), "0");
    assert_eq!(sub.receive(Duration::from_millis(300)).await.unwrap(), None);
    let mut local = Resp::connect(redis[0]).await.unwrap();
    assert_eq!(local.request(&["PUBSUB", "NUMSUB", "news"]).await.unwrap(), array(&["news", "1"]));
    assert_eq!(publisher.request(&["PUBSUB", "NUMSUB", "news"]).await.unwrap(), array(&["news", "0"]));
    // A subscriber on the publishing node is counted.
    assert_eq!(local.call(&["PUBLISH", "news", "local"]).await.unwrap(), "1");
    assert_eq!(next_message(&mut sub, "local").await, array(&["message", "news", "local"]));
    assert_eq!(next_message(&mut psub, "local").await, array(&["pmessage", "n*", "news", "local"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_mode_delivers_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, redis) = start(dir.path(), 3, Mode::Strong).await;
    across_three_nodes(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_mode_delivers_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, redis) = start(dir.path(), 3, Mode::Eventual).await;
    across_three_nodes(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_mode_delivers_messages_and_shard_messages_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, redis) = start(dir.path(), 3, Mode::Sharded).await;
    across_three_nodes(&redis).await;
    // Shard channels: SSUBSCRIBE on node 3, SPUBLISH on node 1 (any node: Concord relays them all).
    let mut ssub = Resp::connect(redis[2]).await.unwrap();
    let mut publisher = Resp::connect(redis[0]).await.unwrap();
    assert_eq!(ssub.request(&["SSUBSCRIBE", "orders"]).await.unwrap(), array(&["ssubscribe", "orders", "1"]));
    warm_up(&mut publisher, "SPUBLISH", "orders", &mut [&mut ssub]).await;
    assert_eq!(publisher.call(&["SPUBLISH", "orders", "o1"]).await.unwrap(), "0");
    assert_eq!(next_message(&mut ssub, "o1").await, array(&["smessage", "orders", "o1"]));
    // A shard command's channels share a slot, as in Redis Cluster.
    assert_eq!(
        ssub.call(&["SSUBSCRIBE", "a", "b"]).await.unwrap(),
        "-CROSSSLOT Keys in request don't hash to the same slot"
    );
}

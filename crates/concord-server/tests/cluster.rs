//! Real nodes in one process: loopback sockets, real WALs in temporary directories.
//!
//! * a 3-node cluster elects a leader, serves HTTP on every node, forwards followers' writes;
//! * garbage, a wrong secret and a wrong cluster id on the peer port are refused with clear errors
//!   while the cluster keeps serving;
//! * a torn WAL tail is cut off at restart and the node serves everything that was synced;
//! * a node added at run time is still reached by an original member after that member restarts
//!   with its original `--peer` list (the address was kept in `DATA/peers.json`).
//!
//! Killing processes (kill -9) needs separate OS processes: see `crates/concord/tests/server_kill.rs`.

use concord_core::NodeId;
use concord_server::testkit::{agreed_leader, free_addrs, http, loopback_configs, HttpAnswer};
use concord_server::transport::{dial, Identity};
use concord_server::{Error, Node, NodeConfig, PeerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(10);

struct Cluster {
    nodes: Vec<Node>,
    http: Vec<SocketAddr>,
    peer: Vec<SocketAddr>,
    redis: Vec<SocketAddr>,
}

fn configs(dir: &Path, n: usize) -> Vec<NodeConfig> {
    loopback_configs(dir, n)
}

async fn start(dir: &Path, n: usize) -> Cluster {
    let configs = configs(dir, n);
    let http = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let peer = configs.iter().map(|c| c.peer_addr).collect();
    let redis = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for c in configs {
        nodes.push(Node::start(c).await.unwrap());
    }
    Cluster { nodes, http, peer, redis }
}

async fn leader(c: &Cluster) -> usize {
    agreed_leader(&c.nodes, T).await
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> HttpAnswer {
    http(addr, method, path, body, T).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_serve_and_forward() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    let f = (l + 1) % 3;

    let a = call(c.http[l], "PUT", "/v1/kv/greeting", b"hello").await;
    assert_eq!(a.status, 200, "{}", a.text());
    // A follower serves the linearizable read itself, with a read index from the leader.
    let a = call(c.http[f], "GET", "/v1/kv/greeting", b"").await;
    assert_eq!((a.status, a.text().as_str()), (200, "hello"));
    // A follower forwards the write.
    let a = call(c.http[f], "PUT", "/v1/kv/from-follower", b"42").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = call(c.http[l], "GET", "/v1/kv/from-follower?consistency=lease", b"").await;
    assert_eq!((a.status, a.text().as_str()), (200, "42"));

    // CAS and txn.
    let a = call(c.http[f], "POST", "/v1/kv/greeting/cas", br#"{"expect":{"value":"hello"},"value":"bye"}"#)
        .await;
    assert_eq!(a.json().unwrap()["succeeded"], true, "{}", a.text());
    let a =
        call(c.http[l], "POST", "/v1/kv/greeting/cas", br#"{"expect":{"value":"hello"},"value":"x"}"#).await;
    assert_eq!(a.json().unwrap()["succeeded"], false, "{}", a.text());
    let txn = br#"{"compares":[{"key":"greeting","op":"equal","target":{"value":"bye"}}],
                   "success":[{"put":{"key":"t","value":"1"}},{"get":{"key":"greeting"}}]}"#;
    let a = call(c.http[l], "POST", "/v1/txn", txn).await;
    assert_eq!(a.json().unwrap()["succeeded"], true, "{}", a.text());

    // Errors: missing key, bad input, too large.
    let a = call(c.http[l], "GET", "/v1/kv/nothing-here", b"").await;
    assert_eq!(a.status, 404);
    assert!(a.json().unwrap()["error"].as_str().unwrap().contains("not found"));
    let a = call(c.http[l], "GET", "/v1/kv/x?consistency=psychic", b"").await;
    assert_eq!(a.status, 400, "{}", a.text());
    let a = call(c.http[l], "POST", "/v1/kv/x/cas", b"{not json").await;
    assert_eq!(a.status, 400, "{}", a.text());
    let big = vec![b'v'; 2 << 20];
    let a = call(c.http[l], "PUT", "/v1/kv/big", &big).await;
    assert_eq!(a.status, 413, "{}", a.text());

    // The stale read on the follower catches up.
    let deadline = Instant::now() + T;
    loop {
        let a = call(c.http[f], "GET", "/v1/kv/t?consistency=stale", b"").await;
        if a.status == 200 {
            assert_eq!(a.text(), "1");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Cluster view and metrics.
    // (On a starved CPU an election may have moved leadership meanwhile: ask the leader of now.)
    let deadline = Instant::now() + T;
    loop {
        let now_leader = leader(&c).await;
        let view = call(c.http[now_leader], "GET", "/v1/cluster", b"").await.json().unwrap();
        let members = view["members"].as_array().unwrap().clone();
        assert_eq!(members.len(), 3, "{view}");
        if view["role"] == "leader" && members.iter().any(|m| m["match_index"].as_u64().unwrap_or(0) > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never reported follower progress: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = call(c.http[l], "GET", "/metrics", b"").await;
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "OpenMetrics text under its own content type (issue #20)"
    );
    let metrics = answer.text();
    assert!(metrics.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    assert!(metrics.contains("# TYPE concord_requests counter"), "counters keep their type:\n{metrics}");
    for needle in [
        "concord_wal_sync_seconds",
        "concord_requests_total{kind=\"put\",result=\"ok\"}",
        "concord_raft_term",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    assert_eq!(call(c.http[f], "GET", "/healthz", b"").await.status, 200);

    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_input_is_refused_and_the_cluster_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    let target = c.peer[l];

    // Garbage: an HTTP request on the peer port.
    let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut sink)).await.expect("the node closes the connection");

    // Random bytes with a plausible length.
    let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
    s.write_all(&[0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5]).await.unwrap();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut sink)).await.expect("the node closes the connection");

    // A node that knows the id but not the secret, and one from another cluster.
    let me = NodeId(((l + 1) % 3) as u32 + 1);
    let peers = [(NodeId(l as u32 + 1), target)].into_iter().collect();
    let wrong_secret = Identity::new(me, "test-cluster".into(), b"guess".to_vec(), peers);
    let Err(Error::Peer(err)) = dial(&wrong_secret, NodeId(l as u32 + 1), target).await else {
        panic!("a peer error")
    };
    assert!(err.contains("refused us"), "{err}");
    let peers = [(NodeId(l as u32 + 1), target)].into_iter().collect();
    let other_cluster = Identity::new(me, "other".into(), b"test-secret".to_vec(), peers);
    let Err(Error::Peer(err)) = dial(&other_cluster, NodeId(l as u32 + 1), target).await else {
        panic!("a peer error")
    };
    // Refused with the same words: before the dialer proves it knows the secret, the acceptor
    // does not say which cluster it belongs to (issue #23).
    assert!(err.contains("refused us") && !err.contains("test-cluster"), "{err}");

    // Still serving (through any node).
    let a = call(c.http[(l + 1) % 3], "PUT", "/v1/kv/after", b"ok").await;
    assert_eq!(a.status, 200, "{}", a.text());
    // The node attacked counted every refused handshake.
    let metrics = call(c.http[l], "GET", "/metrics", b"").await.text();
    let failures = metrics
        .lines()
        .find(|line| line.starts_with("concord_peer_handshake_failures_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failures >= 4.0, "handshake failures counted: {failures}\n{metrics}");
    for reason in ["malformed", "secret", "cluster_id"] {
        let needle = format!("concord_peer_handshake_rejected_total{{reason=\"{reason}\"}} ");
        assert!(metrics.contains(&needle), "missing {needle} in\n{metrics}");
    }
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_is_cut_off_and_the_node_serves_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let http_addr = free_addrs(1)[0];
    let mut config = NodeConfig::new(1, dir.path().join("node1"));
    config.http_addr = Some(http_addr);
    let node = Node::start(config.clone()).await.unwrap();
    for i in 0..20 {
        let a = call(http_addr, "PUT", &format!("/v1/kv/k{i}"), format!("{i}").as_bytes()).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    node.shutdown().await.unwrap();

    // A crash in the middle of a write: half a record at the end of the last segment.
    let wal = dir.path().join("node1").join("wal");
    // (wal/ also holds the synced-length WATERMARK: only segments count here.)
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, &[0x13, 0, 0, 0, 0xab, 0xcd, 0xef]).unwrap();
    drop(f);

    let node = Node::start(config).await.unwrap();
    for i in 0..20 {
        let a = call(http_addr, "GET", &format!("/v1/kv/k{i}"), b"").await;
        assert_eq!((a.status, a.text()), (200, format!("{i}")));
    }
    let a = call(http_addr, "PUT", "/v1/kv/after-restart", b"yes").await;
    assert_eq!(a.status, 200, "{}", a.text());
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = NodeConfig::new(1, dir.path().join("n"));
    config.http_addr = Some(taken.local_addr().unwrap());
    let err = Node::start(config.clone()).await.err().unwrap();
    assert!(matches!(err, Error::AddrInUse { .. }), "{err}");
    assert!(err.to_string().contains("is already in use"), "{err}");

    // A data directory that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut bad = NodeConfig::new(1, &file);
    bad.http_addr = None;
    let Some(Error::Storage(err)) = Node::start(bad).await.err() else { panic!("a storage error") };
    assert!(err.contains(&file.display().to_string()), "{err}");

    // Peers but no secret.
    let mut no_secret = NodeConfig::new(1, dir.path().join("m"));
    no_secret.peers = vec![PeerConfig::parse("2=127.0.0.1:1").unwrap()];
    let Some(Error::Config(err)) = Node::start(no_secret).await.err() else {
        panic!("a configuration error")
    };
    assert!(err.contains("cluster_secret"), "{err}");
}

/// Send one RESP command (as an array of bulk strings) and read one reply.
async fn resp(addr: SocketAddr, args: &[&str]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Run a command-line tool, if installed; `None` when it is not.
fn tool(name: &str, args: &[String]) -> Option<std::process::Output> {
    match std::process::Command::new(name).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // In CI (.ci/run installs redis-tools) a missing tool is a failure, not a skip.
            assert!(std::env::var_os("CI").is_none(), "{name} is not installed (Debian: redis-tools)");
            eprintln!("{name} is not installed (Debian: redis-tools); skipping that part");
            None
        }
        Err(e) => panic!("cannot run {name}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_on_a_three_node_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);

    // Raw RESP: a write on one follower, a linearizable read on the other.
    assert_eq!(resp(c.redis[f1], &["SET", "rk", "rv"]).await, "+OK\r\n");
    assert_eq!(resp(c.redis[f2], &["GET", "rk"]).await, "$2\r\nrv\r\n");
    assert_eq!(resp(c.redis[l], &["INCR", "counter"]).await, ":1\r\n");
    let info = resp(c.redis[f1], &["INFO", "raft"]).await;
    assert!(
        info.contains("raft_role:follower") && info.contains(&format!("raft_leader_id:{}", l + 1)),
        "{info}"
    );

    // Raft as Redis replication: the leader is the master, its followers replicas at their match
    // indexes; a follower is a replica of the leader's RESP address. Statuses follow the log, so
    // wait for the leader to have heard from both followers.
    let port = |i: usize| c.redis[i].port().to_string();
    let role = resp(c.redis[f1], &["ROLE"]).await;
    let slave = format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{}\r\n$9\r\nconnected\r\n:", port(l));
    assert!(role.starts_with(&slave), "{role}");
    let deadline = std::time::Instant::now() + T;
    loop {
        let role = resp(c.redis[l], &["ROLE"]).await;
        let info = resp(c.redis[l], &["INFO", "replication", "keyspace"]).await;
        let listed =
            |i: usize| role.contains(&format!("$9\r\n127.0.0.1\r\n${}\r\n{}\r\n", port(i).len(), port(i)));
        if role.starts_with("*3\r\n$6\r\nmaster\r\n:")
            && listed(f1)
            && listed(f2)
            && info.contains("role:master\r\nconnected_slaves:2\r\n")
            && info.contains("concord_replication:raft")
            && info.contains("db0:keys=2,expires=0,avg_ttl=0")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ROLE {role} INFO {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // redis-cli and redis-benchmark, when installed.
    let port = |i: usize| c.redis[i].port().to_string();
    let cli = |i: usize, args: &[&str]| {
        let mut argv = vec!["-p".to_string(), port(i)];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    };
    let leader_port = c.redis[l].port();
    let set = tokio::task::spawn_blocking(move || {
        tool("redis-cli", &["-p".into(), leader_port.to_string(), "SET".into(), "cli".into(), "hello".into()])
    });
    if let Some(out) = set.await.unwrap() {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
        let args = cli(f2, &["GET", "cli"]);
        let out = tokio::task::spawn_blocking(move || tool("redis-cli", &args).unwrap()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
        let args = cli(f1, &["-t", "set,get", "-n", "10000", "-q"]);
        let out = tokio::task::spawn_blocking(move || tool("redis-benchmark", &args).unwrap()).await.unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("redis-benchmark against follower n{}:\n{text}", f1 + 1);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
        assert!(!text.to_lowercase().contains("error"), "{text}");
    }
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

/// A node `id` outside the cluster `c` (its own ports and data directory) that knows the members:
/// its configuration, and its peer and HTTP addresses.
fn newcomer(dir: &Path, c: &Cluster, id: u32) -> (NodeConfig, Vec<SocketAddr>) {
    let addrs = free_addrs(2);
    let mut config = configs(dir, 3).remove(0);
    config.id = id;
    config.data_dir = dir.join(format!("node{id}"));
    config.peer_addr = addrs[0];
    config.http_addr = Some(addrs[1]);
    config.redis_addr = None;
    config.peers = (0..3)
        .map(|i| PeerConfig {
            id: i as u32 + 1,
            addr: c.peer[i],
            http_addr: Some(c.http[i]),
            redis_addr: None,
        })
        .collect();
    (config, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_through_the_admin_api() {
    use concord_server::membership::{member_add, MemberTarget};
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    assert_eq!(call(c.http[l], "PUT", "/v1/kv/before-join", b"1").await.status, 200);

    // Admin endpoints are closed without a credential (401: none was given).
    let a = call(c.http[l], "POST", "/v1/members", br#"{"op":"remove","id":3}"#).await;
    assert_eq!(a.status, 401, "{}", a.text());

    // Node 4 starts in join mode, knowing the three members.
    let (mut config, addrs) = newcomer(dir.path(), &c, 4);
    config.join = true;
    let n4 = Node::start(config).await.unwrap();
    assert_eq!(n4.handle().status().voters, vec![1, 2, 3], "a joining node is not a voter yet");

    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test-secret\n").unwrap();
    let target =
        MemberTarget { http: c.http[(l + 1) % 3], secret_file: Some(secret), secret: None, tls_ca: None };
    let peer = PeerConfig { id: 4, addr: addrs[0], http_addr: Some(addrs[1]), redis_addr: None };
    let answer = member_add(&target, peer, false).await.unwrap();
    assert_eq!(answer["voters"], serde_json::json!([1, 2, 3, 4]), "{answer}");

    // Node 4 holds the data and serves through the cluster.
    let deadline = Instant::now() + T;
    loop {
        let a = call(addrs[1], "GET", "/v1/kv/before-join?consistency=stale", b"").await;
        if a.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "node 4 never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = call(addrs[1], "PUT", "/v1/kv/from-node-4", b"4").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = call(c.http[l], "GET", "/v1/kv/from-node-4", b"").await;
    assert_eq!((a.status, a.text().as_str()), (200, "4"));
    n4.shutdown().await.unwrap();
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

/// `concord join`: the new node starts and the cluster adds it, in one step, with the secret from
/// the node's own configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concord_join_starts_a_node_and_has_the_cluster_add_it() {
    use concord_server::membership::join_cluster;
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    assert_eq!(call(c.http[l], "PUT", "/v1/kv/before-join", b"1").await.status, 200);
    // Refused before the cluster changes (issue #20): another cluster's id, or no secret at all.
    let (mut other, _) = newcomer(dir.path(), &c, 6);
    other.cluster_id = "someone-else".into();
    let err = join_cluster(other, c.http[l], false).await.err().expect("refused").to_string();
    assert!(
        err.contains("configured for cluster someone-else but the cluster at")
            && err.contains("is test-cluster"),
        "{err}"
    );
    let (mut anonymous, _) = newcomer(dir.path(), &c, 7);
    anonymous.cluster_secret = None;
    anonymous.cluster_secret_file = None;
    let err = join_cluster(anonymous, c.http[l], false).await.err().expect("refused").to_string();
    assert!(err.contains("needs the cluster secret"), "{err}");
    let view = call(c.http[l], "GET", "/v1/cluster", b"").await.json().unwrap();
    assert_eq!(view["members"].as_array().unwrap().len(), 3, "nothing changed: {view}");
    // Without --cluster-id, the newcomer learns the cluster's through --via (as its help example).
    let (mut config, addrs) = newcomer(dir.path(), &c, 4);
    config.cluster_id = concord_server::config::default_cluster_id();
    let (n4, answer) = join_cluster(config.clone(), c.http[(l + 2) % 3], false).await.unwrap();
    assert_eq!(answer["voters"], serde_json::json!([1, 2, 3, 4]), "{answer}");
    let deadline = Instant::now() + T;
    while call(addrs[1], "GET", "/v1/kv/before-join?consistency=stale", b"").await.status != 200 {
        assert!(Instant::now() < deadline, "node 4 never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n4.shutdown().await.unwrap();
    // A wrong secret: the cluster refuses, the node is stopped, the error says where it failed.
    let (mut wrong, _) = newcomer(dir.path(), &c, 5);
    wrong.cluster_secret = Some("not-the-secret".into());
    let err = join_cluster(wrong, c.http[l], false).await.err().expect("refused").to_string();
    assert!(err.contains("did not add this node"), "{err}");
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_catches_up_from_a_snapshot_over_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = configs(dir.path(), 3);
    for c in &mut configs {
        // Compact after 50 entries, so that a node that missed 200 writes needs a snapshot.
        c.raft = Some(concord_raft::RaftConfig { snapshot_threshold_entries: 50, ..Default::default() });
    }
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for c in configs.clone() {
        nodes.push(Some(Node::start(c).await.unwrap()));
    }
    let http: Vec<SocketAddr> = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let deadline = Instant::now() + T;
    let l = loop {
        let leader = nodes[0].as_ref().unwrap().handle().status().leader;
        if let Some(l) = leader {
            break l as usize - 1;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lagging = (l + 1) % 3;
    nodes[lagging].take().unwrap().shutdown().await.unwrap();
    for i in 0..200 {
        let a = call(http[l], "PUT", &format!("/v1/kv/s{i}"), format!("{i}").as_bytes()).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let leader_status = nodes[l].as_ref().unwrap().handle().status();
    assert!(leader_status.snapshot_index > 0, "the leader compacted its log: {leader_status:?}");

    nodes[lagging] = Some(Node::start(configs[lagging].clone()).await.unwrap());
    let deadline = Instant::now() + T;
    loop {
        let s = nodes[lagging].as_ref().unwrap().handle().status();
        if s.applied_index >= leader_status.commit_index {
            assert!(s.snapshot_index > 0, "caught up through a snapshot: {s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the lagging node did not catch up: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in [0, 77, 199] {
        let a = call(http[lagging], "GET", &format!("/v1/kv/s{i}?consistency=stale"), b"").await;
        assert_eq!((a.status, a.text()), (200, format!("{i}")));
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.unwrap();
    }
}

/// The `/v1/cluster` document of the node at `addr`.
async fn cluster_view(addr: SocketAddr) -> serde_json::Value {
    call(addr, "GET", "/v1/cluster", b"").await.json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_still_reaches_a_node_added_at_run_time() {
    use concord_server::membership::{member_add, MemberTarget};
    let dir = tempfile::tempdir().unwrap();
    let configs = configs(dir.path(), 3);
    let mut nodes = Vec::new();
    for c in configs.clone() {
        nodes.push(Node::start(c).await.unwrap());
    }
    let http: Vec<SocketAddr> = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let l = agreed_leader(&nodes, T).await;

    // Node 4 joins, and `concord member add` makes it a voter (every member learns its address).
    let addrs = free_addrs(2);
    let mut config4 = configs[0].clone();
    config4.id = 4;
    config4.data_dir = dir.path().join("node4");
    config4.peer_addr = addrs[0];
    config4.http_addr = Some(addrs[1]);
    config4.redis_addr = None;
    config4.join = true;
    let n4 = Node::start(config4).await.unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test-secret\n").unwrap();
    let target = MemberTarget { http: http[l], secret_file: Some(secret), secret: None, tls_ca: None };
    let peer4 = PeerConfig { id: 4, addr: addrs[0], http_addr: Some(addrs[1]), redis_addr: None };
    let answer = member_add(&target, peer4, false).await.unwrap();
    assert_eq!(answer["voters"], serde_json::json!([1, 2, 3, 4]), "{answer}");

    // Restart a follower `r` on its data directory with its original configuration: peers 1-3.
    let r = (l + 1) % 3;
    assert!(dir.path().join(format!("node{}", r + 1)).join("peers.json").exists());
    nodes.remove(r).shutdown().await.unwrap();
    assert!(configs[r].peers.iter().all(|p| p.id != 4), "the configuration does not name node 4");
    nodes.insert(r, Node::start(configs[r].clone()).await.unwrap());
    let view = cluster_view(http[r]).await;
    let m4 = view["members"].as_array().unwrap().iter().find(|m| m["id"] == 4).cloned();
    assert_eq!(
        m4.as_ref().map(|m| m["peer_addr"].clone()),
        Some(serde_json::json!(addrs[0].to_string())),
        "the restarted node knows where node 4 is: {view}"
    );

    // Make the restarted node the leader: as leader it must replicate to node 4 itself. Only with
    // node 4's address does its progress for node 4 reach the leader's log.
    let deadline = Instant::now() + Duration::from_secs(30);
    let http_of = |id: u64| if id == 4 { addrs[1] } else { http[id as usize - 1] };
    loop {
        let view = cluster_view(http[r]).await;
        if view["role"] == "leader" {
            break;
        }
        // Ask whoever leads now to hand over (ignored while an election or transfer is running).
        if let Some(at) = view["leader"].as_u64().map(http_of) {
            let body = serde_json::json!({ "op": "transfer_leader", "id": r + 1 });
            let _ = concord_server::testkit::http_with_headers(
                at,
                "POST",
                "/v1/members",
                &[("authorization", "Bearer test-secret")],
                body.to_string().as_bytes(),
                T,
            )
            .await;
        }
        assert!(Instant::now() < deadline, "node {} never became the leader: {view}", r + 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = call(http[r], "PUT", "/v1/kv/after-restart", b"yes").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = cluster_view(http[r]).await;
        let m4 = view["members"].as_array().unwrap().iter().find(|m| m["id"] == 4).cloned().unwrap();
        let commit = view["commit_index"].as_u64().unwrap();
        if view["role"] == "leader" && m4["match_index"].as_u64().is_some_and(|mi| mi >= commit) {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted leader never replicated to node 4: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And node 4 applies it (it learns the commit index with the next heartbeat).
    let deadline = Instant::now() + T;
    loop {
        let a = call(addrs[1], "GET", "/v1/kv/after-restart?consistency=stale", b"").await;
        if a.status == 200 {
            assert_eq!(a.text(), "yes");
            break;
        }
        assert!(Instant::now() < deadline, "node 4 never applied the write: {}", a.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    n4.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_by_prefix_and_range_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    let f = (l + 1) % 3;
    for (key, value) in [("a:1", &b"one"[..]), ("a:2", b"two"), ("ab", b"x"), ("b:1", &[0xff, 0x00][..])] {
        assert_eq!(call(c.http[l], "PUT", &format!("/v1/kv/{key}"), value).await.status, 200);
    }
    let keys = |a: &HttpAnswer| -> Vec<String> {
        let v = a.json().unwrap();
        v["kvs"].as_array().unwrap().iter().map(|kv| kv["key"].as_str().unwrap().to_string()).collect()
    };
    // A prefix, from a follower (a linearizable read by ReadIndex).
    let a = call(c.http[f], "GET", "/v1/kv?prefix=a:", b"").await;
    assert_eq!(keys(&a), ["a:1", "a:2"], "{}", a.text());
    assert_eq!(a.json().unwrap()["kvs"][0]["value"], "one");
    assert_eq!(a.json().unwrap()["next"], serde_json::Value::Null);
    // A range [start, end), and everything from a key on; a value that is not UTF-8 is base64.
    let a = call(c.http[l], "GET", "/v1/kv?start=a:2&end=b:1", b"").await;
    assert_eq!(keys(&a), ["a:2", "ab"], "{}", a.text());
    let a = call(c.http[l], "GET", "/v1/kv?start=ab", b"").await;
    assert_eq!(keys(&a), ["ab", "b:1"], "{}", a.text());
    assert_eq!(a.json().unwrap()["kvs"][1]["value_base64"], "/wA=");
    // Pages: `next` is where the following page starts.
    let a = call(c.http[l], "GET", "/v1/kv?limit=3", b"").await;
    assert_eq!(keys(&a), ["a:1", "a:2", "ab"]);
    assert_eq!(a.json().unwrap()["next"], "b:1");
    // Bad input: a clear 400 in the API's JSON.
    for bad in ["/v1/kv?limit=0", "/v1/kv?limit=20000", "/v1/kv?prefix=a&start=b", "/v1/kv?colour=red"] {
        let a = call(c.http[l], "GET", bad, b"").await;
        assert_eq!(a.status, 400, "{bad}: {}", a.text());
    }
    let a = call(c.http[l], "GET", "/v1/kv?limit=20000", b"").await;
    assert!(a.json().unwrap()["error"].as_str().unwrap().contains("the limit is 1000"), "{}", a.text());

    // Range deletes, from a follower (forwarded to the leader): the keys of the range, counted;
    // a request naming no range deletes nothing.
    for bad in ["/v1/kv", "/v1/kv?limit=3", "/v1/kv?prefix=a&end=b", "/v1/kv?start=b&end=a"] {
        let a = call(c.http[f], "DELETE", bad, b"").await;
        assert_eq!(a.status, 400, "DELETE {bad}: {}", a.text());
    }
    let a = call(c.http[f], "DELETE", "/v1/kv?prefix=a:", b"").await;
    assert_eq!((a.status, &a.json().unwrap()["deleted"]), (200, &serde_json::json!(2)), "{}", a.text());
    let a = call(c.http[f], "DELETE", "/v1/kv?start=ab&end=b:1", b"").await;
    assert_eq!(a.json().unwrap()["deleted"], 1, "{}", a.text());
    assert_eq!(keys(&call(c.http[l], "GET", "/v1/kv", b"").await), ["b:1"]);
}

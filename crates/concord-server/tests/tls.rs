//! TLS on every port, with real nodes in one process and certificates made by rcgen in the test:
//!
//! * a 3-node cluster whose peers speak mutual TLS elects a leader and serves writes and reads over
//!   HTTPS and RESP-over-TLS (a raw rustls client, and `redis-cli --tls --cacert` when installed);
//! * a peer whose certificate comes from another CA is refused (logged, counted) and the cluster
//!   keeps serving; plaintext on the TLS ports (HTTP, RESP, peer) is refused cleanly;
//! * bad TLS files stop the node at startup with a message that names the file and the problem;
//! * `concord member list|add --tls-ca` manages a TLS cluster over HTTPS (and says what is missing
//!   when called without it).

use concord_core::NodeId;
use concord_server::certgen::{node_files, Ca};
use concord_server::config::TlsSettings;
use concord_server::membership::{member_command, MemberCommand, MemberTarget};
use concord_server::testkit::{
    agreed_leader, free_addrs, http, https_with_headers, loopback_configs, HttpAnswer,
};
use concord_server::tls::{client_config, NodeTls};
use concord_server::transport::{dial, Identity};
use concord_server::{Error, Node, NodeConfig, PeerConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Everything the nodes log, for the tests that check what an operator would read.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .with_env_filter("concord_server=info")
            .try_init();
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_contain(needle: &str) -> bool {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).contains(needle)
}

/// A CA and `n` node certificates (valid for 127.0.0.1 and localhost) written under `dir/tls`.
fn write_certs(dir: &Path, n: u32) -> std::path::PathBuf {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = Ca::new("test CA").unwrap();
    std::fs::write(tls.join("ca.pem"), ca.cert_pem()).unwrap();
    for id in 1..=n {
        let issued = ca.issue(&format!("node {id}"), &[LOOPBACK], &["localhost"]).unwrap();
        let files = node_files(&tls, id);
        std::fs::write(files.cert, issued.cert_pem).unwrap();
        std::fs::write(files.key, issued.key_pem).unwrap();
    }
    tls
}

struct Cluster {
    nodes: Vec<Node>,
    http: Vec<SocketAddr>,
    peer: Vec<SocketAddr>,
    redis: Vec<SocketAddr>,
    ca: std::path::PathBuf,
}

async fn start(dir: &Path, n: usize) -> Cluster {
    start_certified(dir, n, n as u32).await
}

/// [`start`] with certificates for nodes `1..=certs` (more than `n` for nodes that join later).
async fn start_certified(dir: &Path, n: usize, certs: u32) -> Cluster {
    let tls_dir = write_certs(dir, certs);
    let configs = loopback_configs(dir, n);
    let http = configs.iter().map(|c| c.http_addr.unwrap()).collect();
    let peer = configs.iter().map(|c| c.peer_addr).collect();
    let redis = configs.iter().map(|c| c.redis_addr.unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, mut c) in configs.into_iter().enumerate() {
        c.tls = Some(node_files(&tls_dir, i as u32 + 1));
        nodes.push(Node::start(c).await.unwrap());
    }
    Cluster { nodes, http, peer, redis, ca: tls_dir.join("ca.pem") }
}

async fn leader(c: &Cluster) -> usize {
    agreed_leader(&c.nodes, T).await
}

async fn https(c: &Cluster, i: usize, method: &str, path: &str, body: &[u8]) -> HttpAnswer {
    let tls = client_config(&c.ca).unwrap();
    https_with_headers(c.http[i], tls, method, path, &[], body, T).await.unwrap()
}

/// One RESP command over a fresh TLS connection; the raw reply.
async fn resp_tls(c: &Cluster, i: usize, args: &[&str]) -> String {
    let tcp = TcpStream::connect(c.redis[i]).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&c.ca).unwrap());
    let s = connector.connect(concord_server::tls::server_name(c.redis[i]), tcp).await.unwrap();
    resp_on(s, args).await
}

async fn resp_on<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Send `bytes` in plaintext to a TLS port; return what came back before the node closed it.
async fn plaintext(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut back = Vec::new();
    // Closed (or reset) within the deadline; a hung connection fails the test.
    let _ = tokio::time::timeout(T, s.read_to_end(&mut back)).await.expect("the node closes the connection");
    back
}

fn handshake_failures(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with("concord_peer_handshake_failures_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `redis-cli --tls`, when installed (CI installs redis-tools: there a missing one fails).
fn redis_cli(args: &[String]) -> Option<std::process::Output> {
    match std::process::Command::new("redis-cli").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(std::env::var_os("CI").is_none(), "redis-cli is not installed (Debian: redis-tools)");
            eprintln!("redis-cli is not installed (Debian: redis-tools); skipping that part");
            None
        }
        Err(e) => panic!("cannot run redis-cli: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_https_and_resp_and_refuses_strangers() {
    captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    let l = leader(&c).await;
    let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);

    // HTTPS: a write on a follower (forwarded to the leader over the TLS peer links), a
    // linearizable read on the other follower.
    let a = https(&c, f1, "PUT", "/v1/kv/secure", b"yes").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = https(&c, f2, "GET", "/v1/kv/secure", b"").await;
    assert_eq!((a.status, a.text().as_str()), (200, "yes"));

    // RESP over TLS, raw.
    assert_eq!(resp_tls(&c, f2, &["SET", "rk", "rv"]).await, "+OK\r\n");
    assert_eq!(resp_tls(&c, f1, &["GET", "rk"]).await, "$2\r\nrv\r\n");
    assert_eq!(resp_tls(&c, l, &["GET", "secure"]).await, "$3\r\nyes\r\n");

    // redis-cli --tls --cacert: the client people will use.
    let cli = |i: usize, args: &[&str]| -> Vec<String> {
        let mut argv: Vec<String> = ["--tls", "--cacert", &c.ca.display().to_string(), "-h", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(["-p".to_string(), c.redis[i].port().to_string()]);
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    };
    let set = cli(f1, &["SET", "cli", "over-tls"]);
    if let Some(out) = tokio::task::spawn_blocking(move || redis_cli(&set)).await.unwrap() {
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(text.trim(), "OK", "redis-cli --tls SET: {text}");
        let get = cli(f2, &["GET", "cli"]);
        let out = tokio::task::spawn_blocking(move || redis_cli(&get).unwrap()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over-tls");
        // Without --tls, redis-cli gets no answer from the TLS port.
        let plain = vec!["-p".to_string(), c.redis[f2].port().to_string(), "PING".into()];
        let out = tokio::task::spawn_blocking(move || redis_cli(&plain).unwrap()).await.unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("PONG"), "plaintext PING answered");
    }

    // Plaintext on each TLS port is refused: no HTTP answer, no RESP reply, no peer handshake.
    let back = plaintext(c.http[f1], b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!String::from_utf8_lossy(&back).contains("HTTP/1.1 200"), "{back:?}");
    let back = plaintext(c.redis[f1], b"*1\r\n$4\r\nPING\r\n").await;
    assert!(!String::from_utf8_lossy(&back).contains("PONG"), "{back:?}");
    let target = c.peer[l];
    let leader_id = NodeId(l as u32 + 1);
    let me = NodeId(f1 as u32 + 1);
    let plain_peer =
        Identity::new(me, "test-cluster".into(), b"test-secret".to_vec(), [(leader_id, target)].into());
    let Err(Error::Peer(err)) = dial(&plain_peer, leader_id, target).await else { panic!("a peer error") };
    assert!(err.contains("one side uses TLS"), "{err}");
    let deadline = Instant::now() + T;
    while !(logs_contain("RESP connection from") && logs_contain("does not speak TLS")) {
        assert!(Instant::now() < deadline, "no log line about the plaintext client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A would-be peer with the right secret and a certificate from another CA. It trusts the
    // cluster's CA (so it gets as far as it can): the node refuses its certificate.
    let before = handshake_failures(&https(&c, l, "GET", "/metrics", b"").await.text());
    let rogue_ca = Ca::new("rogue CA").unwrap();
    let rogue = rogue_ca.issue("rogue", &[LOOPBACK], &[]).unwrap();
    let rogue_dir = dir.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    std::fs::write(rogue_dir.join("cert.pem"), &rogue.cert_pem).unwrap();
    std::fs::write(rogue_dir.join("key.pem"), &rogue.key_pem).unwrap();
    let cluster_ca = std::fs::read(&c.ca).unwrap();
    let names =
        TlsSettings { cert: rogue_dir.join("cert.pem"), key: rogue_dir.join("key.pem"), ca: c.ca.clone() };
    // (Its own files do not pass the startup check – the node would refuse to start with them…)
    let Some(Error::Tls(err)) = NodeTls::load(&names).err() else { panic!("a TLS error") };
    assert!(err.contains("is not accepted by the CA"), "{err}");
    // …so build its TLS by hand, trusting the cluster's CA, to knock on the door anyway.
    let rogue_tls = rogue_tls(&rogue.cert_pem, &rogue.key_pem, &cluster_ca);
    let rogue_peer =
        Identity::new(me, "test-cluster".into(), b"test-secret".to_vec(), [(leader_id, target)].into())
            .with_tls(Arc::new(rogue_tls));
    let Err(Error::Peer(err)) = dial(&rogue_peer, leader_id, target).await else { panic!("a peer error") };
    assert!(err.contains("does not accept our certificate"), "{err}");
    let deadline = Instant::now() + T;
    while !(logs_contain("peer connection from") && logs_contain("not signed by this node's CA")) {
        assert!(Instant::now() < deadline, "no log line about the peer from another CA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = handshake_failures(&https(&c, l, "GET", "/metrics", b"").await.text());
    assert!(after > before, "the refused handshake is counted: {before} -> {after}");

    // The cluster still serves, through any node.
    let a = https(&c, f2, "PUT", "/v1/kv/after", b"still").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(resp_tls(&c, f1, &["GET", "after"]).await, "$5\r\nstill\r\n");
    if std::env::var_os("CONCORD_SHOW_LOGS").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&captured_logs().lock().unwrap()));
    }
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

/// A peer TLS setup that skips the startup check (which would refuse these files).
fn rogue_tls(cert_pem: &str, key_pem: &str, trusted_ca: &[u8]) -> NodeTls {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(trusted_ca).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain.clone(), key.clone_key())
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let server = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    NodeTls {
        peer_acceptor: server.clone(),
        peer_connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        client_acceptor: server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_stop_the_node_at_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let tls = write_certs(dir.path(), 2);
    let start = |files: TlsSettings| {
        let mut c = NodeConfig::new(1, dir.path().join("node1"));
        c.http_addr = Some(free_addrs(1)[0]);
        c.tls = Some(files);
        async move {
            match Node::start(c).await.err().expect("the node refuses to start") {
                Error::Tls(message) => message,
                other => panic!("not a TLS error: {other}"),
            }
        }
    };
    let good = node_files(&tls, 1);

    // A file that does not exist.
    let missing = TlsSettings { cert: tls.join("nope.pem"), ..good.clone() };
    let err = start(missing).await;
    assert!(err.contains("cannot read TLS certificate") && err.contains("nope.pem"), "{err}");

    // A file that is not PEM, or PEM of the wrong kind.
    std::fs::write(tls.join("garbage.pem"), "hello, I am not a certificate\n").unwrap();
    let err = start(TlsSettings { cert: tls.join("garbage.pem"), ..good.clone() }).await;
    assert!(err.contains("holds no certificate") && err.contains("garbage.pem"), "{err}");
    let err = start(TlsSettings { key: good.cert.clone(), ..good.clone() }).await;
    assert!(err.contains("holds no usable private key"), "{err}");
    let err = start(TlsSettings { ca: tls.join("garbage.pem"), ..good.clone() }).await;
    assert!(err.contains("CA certificate") && err.contains("holds no certificate"), "{err}");

    // Node 2's key with node 1's certificate.
    let err = start(TlsSettings { key: node_files(&tls, 2).key, ..good.clone() }).await;
    assert!(err.contains("does not belong to the certificate"), "{err}");

    // A certificate the CA did not sign.
    let other = Ca::new("other CA").unwrap().issue("stranger", &[LOOPBACK], &[]).unwrap();
    std::fs::write(tls.join("stranger.pem"), other.cert_pem).unwrap();
    std::fs::write(tls.join("stranger.key"), other.key_pem).unwrap();
    let err =
        start(TlsSettings { cert: tls.join("stranger.pem"), key: tls.join("stranger.key"), ..good.clone() })
            .await;
    assert!(err.contains("is not accepted by the CA"), "{err}");

    // The flags: all three or none.
    let Err(Error::Config(err)) =
        TlsSettings::from_flags(Some(good.cert.clone()), Some(good.key.clone()), None)
    else {
        panic!("a configuration error")
    };
    assert!(err.contains("missing --tls-ca"), "{err}");

    // And the good files do start (single node, HTTPS answers).
    let mut c = NodeConfig::new(1, dir.path().join("node1"));
    let addr = free_addrs(1)[0];
    c.http_addr = Some(addr);
    c.tls = Some(good);
    let node = Node::start(c).await.unwrap();
    let config = client_config(&tls.join("ca.pem")).unwrap();
    let a = https_with_headers(addr, config, "GET", "/healthz", &[], b"", T).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    // Plain HTTP to it gets no answer.
    assert!(http(addr, "GET", "/healthz", b"", T).await.is_err());
    node.shutdown().await.unwrap();
}

/// What `concord member … --http HTTP [--tls-ca CA] [--secret-file S]` targets (the flags are
/// parsed by the `concord` binary; this runs the library call behind them).
fn member_target(http: &str, tls_ca: Option<&str>, secret_file: Option<&str>) -> MemberTarget {
    MemberTarget {
        http: http.parse().unwrap(),
        secret_file: secret_file.map(Into::into),
        secret: None,
        tls_ca: tls_ca.map(Into::into),
    }
}

/// `concord member list` against `target`; its answer.
async fn member_list(target: MemberTarget) -> anyhow::Result<serde_json::Value> {
    member_command(&MemberCommand::List(target)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concord_member_manages_a_tls_cluster_with_tls_ca() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_certified(dir.path(), 3, 4).await;
    let l = leader(&c).await;
    let ca = c.ca.display().to_string();
    let follower = c.http[(l + 1) % 3].to_string();
    let a = https(&c, l, "PUT", "/v1/kv/before-join", b"1").await;
    assert_eq!(a.status, 200, "{}", a.text());

    // list over HTTPS.
    let view = member_list(member_target(&follower, Some(&ca), None)).await.unwrap();
    assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");
    assert_eq!(view["leader"], serde_json::json!(l + 1), "{view}");

    // Without --tls-ca the answer says what to do; with another CA the handshake is refused.
    let err = member_list(member_target(&follower, None, None)).await.unwrap_err().to_string();
    assert!(err.contains("pass --tls-ca"), "{err}");
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, Ca::new("other CA").unwrap().cert_pem()).unwrap();
    let other = other.display().to_string();
    let err = member_list(member_target(&follower, Some(&other), None)).await.unwrap_err().to_string();
    assert!(err.contains("TLS handshake") && err.contains("not signed by"), "{err}");

    // add: node 4 (TLS, join mode) becomes a voter; every member was told its address over HTTPS.
    let addrs = free_addrs(2);
    let mut config = NodeConfig::new(4, dir.path().join("node4"));
    config.peer_addr = addrs[0];
    config.http_addr = Some(addrs[1]);
    config.cluster_id = "test-cluster".into();
    config.cluster_secret = Some("test-secret".into());
    config.join = true;
    config.peers = (0..3)
        .map(|j| PeerConfig {
            id: j as u32 + 1,
            addr: c.peer[j],
            http_addr: Some(c.http[j]),
            redis_addr: None,
        })
        .collect();
    config.tls = Some(node_files(&dir.path().join("tls"), 4));
    let n4 = Node::start(config).await.unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test-secret\n").unwrap();
    let (secret, http4) = (secret.display().to_string(), addrs[1].to_string());
    let add = MemberCommand::Add {
        target: member_target(&follower, Some(&ca), Some(&secret)),
        peer: PeerConfig { id: 4, addr: addrs[0], http_addr: Some(addrs[1]), redis_addr: None },
        learner_only: false,
    };
    let answer = member_command(&add).await.unwrap();
    assert_eq!(answer["voters"], serde_json::json!([1, 2, 3, 4]), "{answer}");
    let view = member_list(member_target(&http4, Some(&ca), None)).await.unwrap();
    assert_eq!(view["members"].as_array().map(Vec::len), Some(4), "{view}");

    // Node 4 caught up over the mutual-TLS peer links and serves over HTTPS.
    let tls = client_config(&c.ca).unwrap();
    let deadline = Instant::now() + T;
    loop {
        let a = https_with_headers(
            addrs[1],
            tls.clone(),
            "GET",
            "/v1/kv/before-join?consistency=stale",
            &[],
            b"",
            T,
        )
        .await
        .unwrap();
        if a.status == 200 {
            assert_eq!(a.text(), "1");
            break;
        }
        assert!(Instant::now() < deadline, "node 4 never caught up: {}", a.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n4.shutdown().await.unwrap();
    for n in c.nodes {
        n.shutdown().await.unwrap();
    }
}

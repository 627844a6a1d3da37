//! The live cluster dashboard, end to end: real `concord serve` processes, a real browser.
//!
//! * `the_dashboard_follows_a_cluster_through_faults`: three nodes with `--allow-fault-injection`;
//!   headless Chromium (driven by `tests/dashboard_e2e.py`) opens a follower's dashboard, sees the
//!   leader, partitions it from the page and sees another elected, heals it, stops the leader's
//!   process from the page and sees another elected with the old one unreachable, then stops the
//!   node serving the page – the page says so – and, once this test restarts that node, reconnects
//!   by itself. Screenshots go to `target/test-output/dashboard/` (or `$CONCORD_DASHBOARD_SCREENSHOTS`).
//!   It follows the page's own "open" link to another member's dashboard when the node it is on is
//!   the one to stop: that page's buttons work with the cookie of the first (a bug until the
//!   cookie's token, not its port, counted – and the 401's Basic challenge held the click's fetch
//!   for a login prompt, so the click hung; see `a_members_dashboard_opened_from_anothers_page_…`
//!   in concord-server's tests/auth.rs). To see what the browser did with its requests, set
//!   `CONCORD_NETLOG=/tmp/netlog`: Chromium writes its net log to `/tmp/netlog-<width>.json`.
//! * `fault_injection_is_off_without_the_flag`: every fault-injection endpoint answers 403 with a sentence that
//!   names the flag, and the page shows no fault-injection buttons.
//! * `the_eventual_mode_partitions_only_with_the_flag`: an eventual-mode node answers 403 without
//!   `--allow-fault-injection`; with it, a partition request (with the cluster's proof) isolates the
//!   node and a heal request ends it.
//! * `concord_up_keeps_running_when_fault_injection_stops_a_node`: `concord up --allow-fault-injection`
//!   reports a node stopped through fault injection with the command that restarts it; a request
//!   without a credential – from loopback – is refused (issue #23: any web page could send it).
//!
//! Browser tests need `chromium`, `chromedriver` and Python's `selenium`; without them they print
//! why and pass – unless `CI=true`, where a missing browser is a failure.

mod browser;
mod local_cluster;

use browser::{browser_available, repo_root};
use concord_server::testkit::{free_port_run, http, http_with_headers, HttpAnswer};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("CONCORD_DASHBOARD_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/test-output/dashboard"),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn call(addr: SocketAddr, method: &str, path: &str) -> Result<HttpAnswer, String> {
    block_on(http(addr, method, path, b"", Duration::from_secs(3)))
}

/// `call` with the dashboard's token (what the page's cookie carries).
fn call_as_dashboard(addr: SocketAddr, data: &Path, method: &str, path: &str) -> Result<HttpAnswer, String> {
    let token = concord_server::cluster::dashboard_token(data).unwrap();
    let bearer = format!("Bearer {token}");
    block_on(http_with_headers(
        addr,
        method,
        path,
        &[("authorization", &bearer)],
        b"",
        Duration::from_secs(3),
    ))
}

use local_cluster::LocalCluster as Cluster;

/// Start a cluster the way these tests want it: no fsync (speed), fault-injection endpoints when asked.
fn start(dir: &Path, nodes: u32, fault_injection: bool) -> Cluster {
    Cluster::start(dir, nodes, |o| {
        o.no_fsync = true;
        o.allow_fault_injection = fault_injection;
    })
}

/// Start node `id` again (it stopped itself through the fault-injection endpoint).
fn restart(cluster: &mut Cluster, id: u32) {
    let i = id as usize - 1;
    let status = cluster.children[i].take().expect("started").wait().unwrap();
    assert!(status.success(), "node {id} stopped cleanly: {status}");
    cluster.restart(i);
}

/// The index of a node that is not the leader, once every node agrees on one.
fn follower(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leaders: Vec<Option<u64>> = cluster
            .http
            .iter()
            .map(|a| call(*a, "GET", "/v1/cluster").ok().and_then(|r| r.json().ok()?["leader"].as_u64()))
            .collect();
        if let Some(Some(l)) = leaders.first() {
            if leaders.iter().all(|x| *x == Some(*l)) {
                return (0..cluster.http.len()).find(|i| *i as u64 + 1 != *l).unwrap_or(0);
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}\n{}", cluster.logs(15));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a scenario of `dashboard_e2e.py`, acting on its requests (`{"restart": id}`) as they come;
/// returns its result.
fn drive(scenario: &str, url: &str, cluster: &mut Cluster) -> serde_json::Value {
    drive_with(scenario, url, cluster, |_, _| panic!("an unexpected request from dashboard_e2e.py"))
}

/// [`drive`], with `other` acting on the requests it does not know (`{"restart": id}` it does).
fn drive_with(
    scenario: &str,
    url: &str,
    cluster: &mut Cluster,
    mut other: impl FnMut(&mut Cluster, &serde_json::Value),
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_e2e.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(url)
        .arg(screenshot_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut result = None;
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        lines.push(line.clone());
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if let Some(id) = message["restart"].as_u64() {
            restart(cluster, id as u32);
        } else if message.get("result").is_some() {
            result = Some(message["result"].clone());
        } else {
            other(cluster, &message);
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard_e2e.py {scenario} failed:\n{stderr}\n{}\n{}",
        lines.join("\n"),
        cluster.logs(15)
    );
    result.unwrap_or_else(|| panic!("no result line from dashboard_e2e.py: {lines:?}"))
}

#[test]
fn the_dashboard_follows_a_cluster_through_faults() {
    if !browser_available("the_dashboard_follows_a_cluster_through_faults") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path(), 3, true);
    let follower = follower(&cluster);
    let token = concord_server::cluster::dashboard_token(dir.path()).unwrap();
    let url = format!("http://{}/?token={token}", cluster.http[follower]);
    let result = drive("faults", &url, &mut cluster);
    println!("faults: {result}");
    assert_ne!(result["first_leader"], result["after_partition"]);
    assert_ne!(result["stopped"], result["second_leader"]);
    for shot in ["dashboard.png", "dashboard-phone.png", "dashboard-disconnected.png"] {
        assert!(screenshot_dir().join(shot).exists(), "{shot} was saved");
    }
}

#[test]
fn fault_injection_is_off_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path(), 1, false);
    let addr = cluster.http[0];
    follower(&cluster); // waits for the node to answer and lead
    let secret = std::fs::read_to_string(&cluster.secret).unwrap();
    let proof_for = |path: &str| concord_server::auth::proof(secret.trim().as_bytes(), "POST", path, b"");
    for path in ["/v1/faults/partition", "/v1/faults/heal", "/v1/faults/stop", "/v1/faults/nodes/1/stop"] {
        // Refused from loopback without a credential (401), and with one: the flag is what is missing.
        let plain = call(addr, "POST", path).unwrap();
        assert_eq!(plain.status, 401, "POST {path}: {}", plain.text());
        let with_proof = block_on(http_with_headers(
            addr,
            "POST",
            path,
            &[("authorization", &proof_for(path))],
            b"",
            Duration::from_secs(3),
        ))
        .unwrap();
        assert_eq!(with_proof.status, 403, "POST {path}: {}", with_proof.text());
        let error = with_proof.json().unwrap()["error"].as_str().unwrap().to_string();
        assert!(error.contains("--allow-fault-injection"), "POST {path}: {error}");
    }
    let faults = call(addr, "GET", "/v1/faults").unwrap().json().unwrap();
    assert_eq!(faults["fault_injection"], false);
    assert_eq!(faults["isolated"], false);
    // The node is still there, and the page's data says there is nothing to show buttons for.
    let overview = call(addr, "GET", "/v1/overview").unwrap().json().unwrap();
    assert_eq!(overview["fault_injection"], false);
    assert_eq!(overview["members"][0]["status"]["role"], "leader");

    if browser_available("fault_injection_is_off_without_the_flag") {
        let token = concord_server::cluster::dashboard_token(dir.path()).unwrap();
        let result = drive("nofaults", &format!("http://{addr}/dashboard?token={token}"), &mut cluster);
        assert_eq!(result["leader"], 1);
    }
}

#[test]
fn the_eventual_mode_partitions_only_with_the_flag() {
    for allowed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path(), 1, |o| {
            o.mode = concord_server::Mode::Eventual;
            o.no_fsync = true;
            o.allow_fault_injection = allowed;
        });
        let addr = cluster.http[0];
        let deadline = Instant::now() + Duration::from_secs(30);
        let faults = loop {
            if let Ok(answer) = call(addr, "GET", "/v1/faults") {
                break answer.json().unwrap();
            }
            assert!(Instant::now() < deadline, "the eventual node never answered GET /v1/faults");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(faults["fault_injection"], allowed, "{faults}");
        assert_eq!(faults["isolated"], false, "{faults}");
        let secret = std::fs::read_to_string(&cluster.secret).unwrap();
        let post = |path: &str| {
            let proof = concord_server::auth::proof(secret.trim().as_bytes(), "POST", path, b"");
            block_on(http_with_headers(
                addr,
                "POST",
                path,
                &[("authorization", &proof)],
                b"",
                Duration::from_secs(3),
            ))
            .unwrap()
        };
        let cut = post("/v1/faults/partition");
        if !allowed {
            assert_eq!(cut.status, 403, "{}", cut.text());
            assert!(cut.text().contains("--allow-fault-injection"), "{}", cut.text());
            continue;
        }
        assert_eq!(cut.status, 200, "{}", cut.text());
        assert_eq!(call(addr, "GET", "/v1/faults").unwrap().json().unwrap()["isolated"], true);
        assert_eq!(post("/v1/faults/heal").status, 200);
        assert_eq!(call(addr, "GET", "/v1/faults").unwrap().json().unwrap()["isolated"], false);
    }
}

#[test]
fn concord_up_keeps_running_when_fault_injection_stops_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(6);
    let mut up = Command::new(CONCORD)
        .args(["up", "--nodes", "2", "--no-fsync", "--allow-fault-injection", "--data"])
        .arg(dir.path())
        .args(["--redis-port", &base.to_string()])
        .args(["--http-port", &(base + 2).to_string()])
        .args(["--peer-port", &(base + 4).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http: Vec<SocketAddr> = (0..2).map(|i| SocketAddr::from(([127, 0, 0, 1], base + 2 + i))).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.iter().any(|a| call(*a, "GET", "/healthz").is_err()) {
        assert!(Instant::now() < deadline, "the nodes of concord up did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Issue #23: loopback is no credential (any page in a browser here can send this request).
    for path in ["/v1/faults/nodes/2/stop", "/v1/faults/stop", "/v1/faults/partition"] {
        let refused = call(http[0], "POST", path).unwrap();
        assert_eq!(refused.status, 401, "POST {path} without a credential: {}", refused.text());
        assert!(refused.text().contains("need a credential"), "{}", refused.text());
    }
    assert_eq!(call(http[0], "GET", "/v1/faults").unwrap().json().unwrap()["isolated"], false);
    // Stop node 2 through node 1 (the forwarding path, with a proof); node 1 keeps running.
    let stop = call_as_dashboard(http[0], dir.path(), "POST", "/v1/faults/nodes/2/stop").unwrap();
    assert_eq!(stop.status, 200, "{}", stop.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(http[1], "GET", "/healthz").is_ok() {
        assert!(Instant::now() < deadline, "node 2 did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300)); // `up` polls its children every 100 ms
    assert!(up.try_wait().unwrap().is_none(), "concord up is still running");
    assert!(call(http[0], "GET", "/healthz").is_ok(), "node 1 is still serving");
    // Stopping the last node ends `up` cleanly.
    assert_eq!(call_as_dashboard(http[0], dir.path(), "POST", "/v1/faults/stop").unwrap().status, 200);
    let status = up.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut up.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "concord up exited with {status}: {stdout}");
    assert!(stdout.contains("node 2 stopped; the others keep running. Restart it with:"), "{stdout}");
    assert!(stdout.contains("--id 2 "), "the restart command is node 2's: {stdout}");
    assert!(stdout.contains("dashboard: http://127.0.0.1:"), "{stdout}");
    let token = concord_server::cluster::dashboard_token(dir.path()).unwrap();
    assert!(
        stdout.contains(&format!("/?token={token} ")),
        "up prints the dashboard's URL with its token: {stdout}"
    );
}

/// Keys in one slot (`{tag}` hash tags), written in pipelined batches through the RESP door of the
/// slot's shard leader (`addr`).
fn load_slot(addr: SocketAddr, tag: &str, keys: usize, value_bytes: usize) {
    use std::io::Write;
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let value = "v".repeat(value_bytes);
    for batch in (0..keys).collect::<Vec<_>>().chunks(500) {
        let mut out = Vec::new();
        for i in batch {
            let key = format!("{{{tag}}}{i}");
            write!(out, "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n", key.len(), value.len())
                .unwrap();
        }
        writer.write_all(&out).unwrap();
        for _ in batch {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "+OK\r\n", "SET through {addr}");
        }
    }
}

/// The sharded mode's dashboard in a real browser: 3 nodes, 4 shards of 2 replicas (so the page's
/// node lacks some shard). The page shows every shard with its leader – also those its node does
/// not replicate – the slot strip, the epoch, and, once this test starts a move of a slot holding
/// thousands of keys (so that the copy lasts), the move highlighted in the strip and listed with
/// its phase; afterwards the strip shows the slot in its new shard. Screenshot `dashboard-sharded.png`.
#[test]
fn the_sharded_dashboard_shows_every_shard_its_leader_and_a_move() {
    if !browser_available("the_sharded_dashboard_shows_every_shard_its_leader_and_a_move") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, |o| {
        o.mode = concord_server::Mode::Sharded;
        o.shards = Some(4);
        o.shard_replicas = Some(2);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let map = loop {
        let map = call(cluster.http[0], "GET", "/v1/cluster").ok().and_then(|a| a.json().ok());
        if let Some(map) = map.filter(|m| {
            m["bootstrapped"] == true
                && m["shards"].as_array().is_some_and(|s| s.iter().all(|s| s["leader"].is_u64()))
        }) {
            break map;
        }
        assert!(Instant::now() < deadline, "no shard map with leaders:\n{}", cluster.logs(20));
        std::thread::sleep(Duration::from_millis(100));
    };
    let shards = map["shards"].as_array().unwrap().clone();
    let replicas = |s: &serde_json::Value| -> Vec<u64> {
        s["replicas"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect()
    };
    // The page is served by a node that does not replicate some shard.
    let page_node = (1..=3u64).find(|n| shards.iter().any(|s| !replicas(s).contains(n))).unwrap();

    let tag = "dash";
    let slot = concord_shard::key_slot(format!("{{{tag}}}").as_bytes()).get();
    let owner = map["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["start"].as_u64().unwrap() <= u64::from(slot) && u64::from(slot) <= r["end"].as_u64().unwrap()
        })
        .unwrap()["shard"]
        .as_u64()
        .unwrap();
    let leader = shards.iter().find(|s| s["shard"] == owner).unwrap()["leader"].as_u64().unwrap();
    load_slot(
        SocketAddr::from(([127, 0, 0, 1], cluster.redis_port(leader as usize - 1))),
        tag,
        KEYS_TO_MOVE,
        1000,
    );
    let to = shards.iter().map(|s| s["shard"].as_u64().unwrap()).find(|&s| s != owner).unwrap();

    let token = concord_server::cluster::dashboard_token(dir.path()).unwrap();
    let url = format!("http://{}/?token={token}", cluster.http[page_node as usize - 1]);
    let result = drive_with("sharded", &url, &mut cluster, |c, message| {
        assert_eq!(message["move"], true, "{message}");
        let body = serde_json::json!({ "slots": slot.to_string(), "to": to }).to_string();
        let bearer = format!("Bearer {token}");
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let answer = block_on(http_with_headers(
            c.http[0],
            "POST",
            "/v1/cluster/moves",
            &headers,
            body.as_bytes(),
            Duration::from_secs(10),
        ))
        .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    });
    println!("sharded: {result}");
    assert_eq!(result["node"], page_node);
    assert_eq!(result["shards"], 4, "every shard is a row: {result}");
    assert_eq!(result["leaders_shown"], 4, "every shard's leader is shown: {result}");
    assert!(result["leaders_not_replicated_here"].as_u64().unwrap() >= 1, "{result}");
    let seen = &result["move"];
    assert_eq!(seen["slots"], slot.to_string(), "{result}");
    assert_eq!(seen["from"], owner.to_string(), "{result}");
    assert_eq!(seen["to"], to.to_string(), "{result}");
    assert!(["started", "fenced", "copied"].contains(&seen["phase"].as_str().unwrap()), "{result}");
    assert_eq!(seen["highlighted"], true, "the strip marks the moving slots: {result}");
    assert_eq!(result["owner_after"], to, "the strip shows the slot in its new shard: {result}");
    assert!(screenshot_dir().join("dashboard-sharded.png").exists());
}

/// Keys in the slot the sharded dashboard test moves: enough that copying them takes a few polls
/// of the page (the copy goes in pages of 256 keys, each a Raft entry fsynced on two replicas).
const KEYS_TO_MOVE: usize = 20_000;

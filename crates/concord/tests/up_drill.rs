//! README's drill, run through `concord up` itself (issue #20): the tests that spawn nodes directly
//! passed while `concord up` stopped the whole cluster when one node died.
//!
//! `concord up` starts three nodes; the leader's process gets `kill -9` (its pid from
//! `DATA/node<i>.pid`, as README shows); the supervisor reports it and keeps the others running;
//! they elect a new leader and keep taking writes; `concord restart N` brings the node back, it
//! catches up, and every acknowledged write is there; Ctrl-C (SIGINT) ends it all cleanly.

mod browser;

use browser::browser_available;
use concord_server::testkit::{free_port_run, http, HttpAnswer};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
}

fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<HttpAnswer, String> {
    RUNTIME.with(|rt| rt.block_on(http(addr, method, path, body, Duration::from_secs(3))))
}

/// A running `concord up`. Dropped while it still runs – a test that failed half-way – it gets
/// Ctrl-C (and stops its nodes), so a failed test leaves no cluster holding ports behind.
struct Up(Child);

impl std::ops::Deref for Up {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Up {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let deadline = Instant::now() + Duration::from_secs(15);
            while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The leader every answering node agrees on (1-based), waiting for one other than `not`.
fn leader(http: &[SocketAddr], up: &mut Child, not: Option<u64>, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        assert!(up.try_wait().unwrap().is_none(), "concord up exited");
        let seen: Vec<Option<u64>> = http
            .iter()
            .filter_map(|a| call(*a, "GET", "/v1/cluster", b"").ok())
            .map(|answer| answer.json().ok().and_then(|v| v["leader"].as_u64()))
            .collect();
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|x| *x == Some(*l)) && Some(*l) != not {
                return *l;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PUT `key`, retried on other nodes until one acknowledges (a node may be down or electing).
fn put(http: &[SocketAddr], key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for addr in http {
            if let Ok(answer) = call(*addr, "PUT", &format!("/v1/kv/{key}"), value.as_bytes()) {
                if answer.status == 200 {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "no node acknowledged PUT {key}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn concord(data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(CONCORD).args(args).arg("--data").arg(data).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn kill_9_of_the_leader_under_concord_up_then_concord_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (mut up, http) = start_up(data, &[]);
    let old = leader(&http, &mut up, None, Duration::from_secs(30));
    for i in 0..20 {
        put(&http, &format!("before-{i}"), &format!("v{i}"));
    }

    // kill -9 the leader, by the pid `concord up` keeps for it.
    let pid_file = data.join(format!("node{old}.pid"));
    kill9(data, old);
    let survivors: Vec<SocketAddr> =
        http.iter().enumerate().filter(|(i, _)| *i as u64 + 1 != old).map(|(_, a)| *a).collect();
    // The survivors notice, and elect a new leader among themselves.
    leader(&survivors, &mut up, Some(old), Duration::from_secs(30));
    for i in 0..20 {
        put(&survivors, &format!("after-{i}"), &format!("w{i}"));
    }
    assert!(up.try_wait().unwrap().is_none(), "concord up outlives its killed node");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_file.exists() {
        assert!(Instant::now() < deadline, "the dead node's pid file stays");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, status) = concord(data, &["restart", "--status"]);
    assert!(ok && status.contains(&format!("node {old}: down")), "{status}");

    // concord restart brings it back; it catches up with every write, old and new.
    let (ok, text) = concord(data, &["restart", &old.to_string()]);
    assert!(ok, "concord restart {old}: {text}");
    assert!(text.contains(&format!("node {old} restarted (pid")), "{text}");
    let back = http[old as usize - 1];
    let deadline = Instant::now() + Duration::from_secs(30);
    for key in (0..20).map(|i| format!("before-{i}")).chain((0..20).map(|i| format!("after-{i}"))) {
        let want = if key.starts_with("before") { "v" } else { "w" };
        loop {
            let got = call(back, "GET", &format!("/v1/kv/{key}?consistency=stale"), b"");
            if got.as_ref().is_ok_and(|a| a.status == 200 && a.text().starts_with(want)) {
                break;
            }
            assert!(Instant::now() < deadline, "node {old} did not catch up on {key}: {got:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (ok, status) = concord(data, &["restart", "--status"]);
    assert!(ok && !status.contains("down"), "{status}");
    // `concord member list` reads as a table: a row per member, every one of them known.
    let list =
        Command::new(CONCORD).args(["member", "list", "--http", &http[0].to_string()]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.lines().nth(1).is_some_and(|l| l.starts_with("ID  ROLE")), "{list}");
    assert_eq!(list.lines().filter(|l| l.contains("127.0.0.1:")).count(), 3, "{list}");
    let (ok, text) = concord(data, &["restart", "9"]);
    assert!(!ok && text.contains("no node 9 in this 3-node cluster"), "{text}");

    // Ctrl-C ends `up` and every node cleanly.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let status = up.wait().unwrap();
    let mut stdout = String::new();
    up.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "concord up: {status}\n{stdout}");
    assert!(stdout.contains(&format!("node {old} exited (signal: 9 (SIGKILL))")), "{stdout}");
    assert!(stdout.contains("the others keep running"), "{stdout}");
    assert!(stdout.contains(&format!("concord restart {old} --data")), "{stdout}");
    assert!(stdout.contains("concord: cluster stopped"), "{stdout}");
    assert!(!data.join("up.sock").exists() && !data.join("node1.pid").exists(), "up cleans up after itself");
}

/// Run a scenario of `tests/dashboard_e2e.py` in headless Chromium against node `addr`'s dashboard,
/// opened as a person would: with the token `concord up` printed (and wrote under `data`).
fn dashboard_scenario(scenario: &str, addr: SocketAddr, data: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_e2e.py");
    let token = concord_server::cluster::dashboard_token(data).unwrap();
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(format!("http://{addr}/dashboard?token={token}"))
        .arg(browser::repo_root().join("target/test-output/dashboard"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dashboard_e2e.py {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn start_up(data: &Path, extra: &[&str]) -> (Up, Vec<SocketAddr>) {
    let base = free_port_run(9);
    let up = Command::new(CONCORD)
        .args(["up", "--nodes", "3", "--data"])
        .arg(data)
        .args(["--redis-port", &base.to_string()])
        .args(["--http-port", &(base + 3).to_string()])
        .args(["--peer-port", &(base + 6).to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (Up(up), (0..3).map(|i| SocketAddr::from(([127, 0, 0, 1], base + 3 + i))).collect())
}

fn kill9(data: &Path, node: u64) {
    let pid: i32 =
        std::fs::read_to_string(data.join(format!("node{node}.pid"))).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
}

#[test]
fn the_dashboards_restart_button_has_concord_up_start_a_killed_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (mut up, http) = start_up(data, &["--allow-fault-injection"]);
    leader(&http, &mut up, None, Duration::from_secs(30));
    kill9(data, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(http[2], "GET", "/healthz", b"").is_ok() {
        assert!(Instant::now() < deadline, "node 3 did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
    let overview = call(http[0], "GET", "/v1/overview", b"").unwrap().json().unwrap();
    assert_eq!(overview["restart"], true, "the dashboard offers Restart under concord up: {overview}");
    if browser_available("the_dashboards_restart_button_has_concord_up_start_a_killed_node") {
        dashboard_scenario("restart", http[0], data);
    } else {
        // Without a browser, the request the button sends (with the token its cookie holds).
        let token = concord_server::cluster::dashboard_token(data).unwrap();
        let bearer = format!("Bearer {token}");
        let answer = RUNTIME
            .with(|rt| {
                rt.block_on(concord_server::testkit::http_with_headers(
                    http[0],
                    "POST",
                    "/v1/faults/nodes/3/restart",
                    &[("authorization", &bearer)],
                    b"",
                    Duration::from_secs(3),
                ))
            })
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(http[2], "GET", "/healthz", b"").is_err() {
        assert!(Instant::now() < deadline, "node 3 did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let status = up.wait().unwrap();
    assert!(status.success(), "concord up: {status}");
}

fn sigint_and_wait(up: &mut Child) -> (bool, String) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    finished(up)
}

/// Wait for `up` to end; whether it succeeded, and what it printed.
fn finished(up: &mut Child) -> (bool, String) {
    let status = up.wait().unwrap();
    let mut text = String::new();
    up.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    up.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    (status.success(), text)
}

#[test]
fn a_data_directory_resumes_its_cluster_and_refuses_another_cluster_or_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    // Re-running `concord up` on the same directory resumes the same cluster.
    let (mut up, http) = start_up(&data, &[]);
    leader(&http, &mut up, None, Duration::from_secs(30));
    put(&http, "resumed", "yes");
    assert!(sigint_and_wait(&mut up).0);
    let (mut up, http) = start_up(&data, &[]);
    leader(&http, &mut up, None, Duration::from_secs(30));
    let got = call(http[1], "GET", "/v1/kv/resumed", b"").unwrap();
    assert_eq!((got.status, got.text()), (200, "yes".to_string()));
    assert!(sigint_and_wait(&mut up).0);
    let cluster_id = std::fs::read_to_string(data.join("cluster.id")).unwrap().trim().to_string();

    // The same directory in the other mode: refused, saying whose it is.
    let (mut up, _) = start_up(&data, &["--mode", "eventual"]);
    let (ok, text) = finished(&mut up);
    assert!(!ok, "concord up --mode eventual on a strong cluster's directory must fail:\n{text}");
    assert!(text.contains("a node of the strong mode (its write-ahead log says so)"), "{text}");

    // A node directory copied into another cluster: refused, naming the cluster it belongs to.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let copied =
        Command::new("cp").arg("-r").arg(data.join("node1")).arg(other.join("node1")).status().unwrap();
    assert!(copied.success());
    let (mut up, _) = start_up(&other, &[]);
    let (ok, text) = finished(&mut up);
    assert!(!ok, "a copied node directory must not join another cluster:\n{text}");
    assert!(
        text.contains(&format!("belongs to node 1 of cluster {cluster_id} in the strong mode")),
        "{text}"
    );
}

#[test]
fn a_rolling_restart_under_load_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (mut up, http) = start_up(data, &[]);
    leader(&http, &mut up, None, Duration::from_secs(30));
    let running = Arc::new(AtomicBool::new(true));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let gave_up = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (running, acked, gave_up, http) =
                (running.clone(), acked.clone(), gave_up.clone(), http.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while running.load(Ordering::SeqCst) {
                    let key = format!("w{w}-{n}");
                    // A client's retries: every node in turn, for up to 15 s.
                    let deadline = Instant::now() + Duration::from_secs(15);
                    let mut attempt = 0;
                    loop {
                        let addr = http[(w + attempt) % http.len()];
                        match call(addr, "PUT", &format!("/v1/kv/{key}"), key.as_bytes()) {
                            Ok(answer) if answer.status == 200 => {
                                acked.lock().unwrap().push(key.clone());
                                break;
                            }
                            _ if Instant::now() > deadline => {
                                gave_up.lock().unwrap().push(key.clone());
                                break;
                            }
                            _ => std::thread::sleep(Duration::from_millis(50)),
                        }
                        attempt += 1;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (ok, text) = concord(data, &["restart", "--all"]);
    assert!(ok, "concord restart --all: {text}");
    for id in 1..=3 {
        assert!(text.contains(&format!("node {id}: back, leader")), "{text}");
    }
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        gave_up.lock().unwrap().is_empty(),
        "writes that failed beyond retries: {:?}",
        gave_up.lock().unwrap()
    );
    assert!(acked.len() > 30, "the clients kept writing: {} writes", acked.len());
    // Every acknowledged write is there, read linearizably.
    for key in &acked {
        let got = call(http[0], "GET", &format!("/v1/kv/{key}"), b"").unwrap();
        assert_eq!((got.status, got.text()), (200, key.clone()), "acknowledged write {key}");
    }
    assert!(sigint_and_wait(&mut up).0);
}

#[test]
fn restart_on_failure_brings_a_killed_node_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (mut up, http) = start_up(data, &["--restart", "on-failure"]);
    leader(&http, &mut up, None, Duration::from_secs(30));
    let pid_file = data.join("node2.pid");
    let before = std::fs::read_to_string(&pid_file).unwrap();
    kill9(data, 2);
    // Back after the first back-off (1 s), under a new pid, serving.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if !now.is_empty()
            && now != before
            && call(http[1], "GET", "/healthz", b"").is_ok_and(|a| a.status == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "node 2 was not started again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = sigint_and_wait(&mut up);
    assert!(ok, "{text}");
    assert!(text.contains("starting node 2 again in 1s (--restart on-failure)"), "{text}");
    assert!(text.contains("node 2 started again (pid"), "{text}");
}

#[test]
fn the_tour_runs_from_start_to_end() {
    // README's first command (on free ports here): every step it announces happens, measured.
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(9);
    let out = Command::new(CONCORD)
        .args(["tour", "--writes", "20", "--data"])
        .arg(dir.path())
        .args(["--redis-port", &base.to_string()])
        .args(["--http-port", &(base + 3).to_string()])
        .args(["--peer-port", &(base + 6).to_string()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for step in [
        "1. `concord up`",
        "2. 20 writes through node",
        "3. kill -9",
        "elected node",
        "5. `concord restart",
        "6. all 40 acknowledged writes are on node",
        "cluster stopped",
    ] {
        assert!(text.contains(step), "missing {step:?} in:\n{text}");
    }
    assert!(!dir.path().join("up.sock").exists(), "the tour's cluster is stopped");
}

#[test]
fn a_backup_of_a_cluster_under_writes_restores_into_a_new_cluster_key_for_key() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (dir.path().join("a"), dir.path().join("b"));
    let (mut a, a_http) = start_up(&a_data, &[]);
    leader(&a_http, &mut a, None, Duration::from_secs(30));
    for i in 0..200 {
        put(&a_http, &format!("k-{i}"), &format!("v{i}"));
    }
    assert_eq!(call(a_http[0], "PUT", "/v1/kv/binary", &[0xff, 0x00, 0x7f]).unwrap().status, 200);
    // A key that is not a plain path segment: restore must encode it (it once wrote "odd" instead).
    let odd = concord_server::client::path_segment("odd/key? #%");
    assert_eq!(call(a_http[0], "PUT", &format!("/v1/kv/{odd}"), b"odd").unwrap().status, 200);
    // One client keeps writing live-0, live-1, … while the backup is taken.
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (running, http) = (running.clone(), a_http.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                put(&http, &format!("live-{n}"), &n.to_string());
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let file = dir.path().join("backup.jsonl");
    let secret = a_data.join("cluster.secret");
    let out = Command::new(CONCORD)
        .args(["backup", "--to"])
        .arg(&file)
        .args(["--http", &a_http[1].to_string(), "--secret-file"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "concord backup: {}", String::from_utf8_lossy(&out.stderr));
    running.store(false, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let backup = concord_server::backup::decode(&std::fs::read(&file).unwrap()).unwrap();
    // Consistent: one point in the log, so the live writes in it are exactly a prefix of the writer's.
    let live: std::collections::BTreeSet<u64> =
        backup.entries.iter().filter_map(|(k, _)| k.strip_prefix("live-")?.parse().ok()).collect();
    let prefix = live.len() as u64;
    assert!(live.iter().copied().eq(0..prefix) && prefix <= written, "live writes in the backup: {live:?}");
    assert_eq!(backup.entries.iter().filter(|(k, _)| k.starts_with("k-")).count(), 200);
    assert!(sigint_and_wait(&mut a).0);

    // A new cluster gets every key back, byte for byte.
    let (mut b, b_http) = start_up(&b_data, &[]);
    leader(&b_http, &mut b, None, Duration::from_secs(30));
    let restore = |file: &Path| {
        Command::new(CONCORD)
            .arg("restore")
            .arg(file)
            .args(["--http", &b_http[0].to_string(), "--secret-file"])
            .arg(b_data.join("cluster.secret"))
            .output()
            .unwrap()
    };
    let out = restore(&file);
    assert!(out.status.success(), "concord restore: {}", String::from_utf8_lossy(&out.stderr));
    for (key, value) in &backup.entries {
        let path = format!("/v1/kv/{}", concord_server::client::path_segment(key));
        let got = call(b_http[2], "GET", &path, b"").unwrap();
        assert_eq!((got.status, &got.body), (200, value), "{key}");
    }
    // Not into a cluster that holds keys; not from a damaged file.
    let again = restore(&file);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already holds keys"));
    let damaged = dir.path().join("damaged.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    let i = bytes.iter().position(|&c| c == b'v').unwrap();
    bytes[i] = b'w';
    std::fs::write(&damaged, bytes).unwrap();
    let refused = restore(&damaged);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the checksum does not match"), "{refused:?}");
    assert!(sigint_and_wait(&mut b).0);
}

#[test]
fn an_eventual_cluster_serves_a_dashboard_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, http) = start_up(dir.path(), &["--mode", "eventual"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in &http {
        loop {
            let page = call(*addr, "GET", "/dashboard", b"");
            if page.as_ref().is_ok_and(|p| p.status == 200 && p.text().contains("eventual mode")) {
                break;
            }
            assert!(Instant::now() < deadline, "no dashboard on {addr}: {page:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if browser_available("an_eventual_cluster_serves_a_dashboard_on_every_node") {
        dashboard_scenario("eventual", http[0], dir.path());
    }
    let (ok, text) = sigint_and_wait(&mut up);
    assert!(ok && text.contains("dashboard: http://127.0.0.1:"), "{text}");
}

//! What the process-level tests share (`server_kill.rs`, `eventual_cluster.rs`, `dashboard.rs`): a
//! local cluster of `concord serve` processes of this very binary, laid out exactly as `concord up`
//! lays them out (same flags, same `spawn_node`), on a run of free loopback ports; killed when
//! dropped.
#![allow(dead_code)] // each test file uses its own part of it

use concord_server::cluster::{cluster_identity, spawn_node, UpOptions};
use concord_server::testkit::{free_port_run, http};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub struct LocalCluster {
    pub args: UpOptions,
    pub cluster_id: String,
    /// The cluster secret's file.
    pub secret: PathBuf,
    /// Node `i + 1`'s process; `None` while it is down.
    pub children: Vec<Option<Child>>,
    /// Node `i + 1`'s HTTP address.
    pub http: Vec<SocketAddr>,
}

impl LocalCluster {
    /// Start `nodes` nodes with data under `dir`. `configure` sets further `concord up` options
    /// (the eventual mode, no fsync, …) on top of the command's defaults ([`UpOptions::default`],
    /// which a unit test of the binary keeps equal to `concord up`'s flag defaults).
    pub fn start(dir: &Path, nodes: u32, configure: impl FnOnce(&mut UpOptions)) -> LocalCluster {
        let base = free_port_run(3 * nodes as u16);
        let mut args = UpOptions {
            nodes,
            data: dir.to_path_buf(),
            redis_port: base,
            http_port: base + nodes as u16,
            peer_port: base + 2 * nodes as u16,
            ..UpOptions::default()
        };
        configure(&mut args);
        let (cluster_id, secret) = cluster_identity(dir).unwrap();
        let http =
            (0..nodes).map(|i| SocketAddr::from(([127, 0, 0, 1], args.http_port + i as u16))).collect();
        let mut c = LocalCluster { args, cluster_id, secret, children: Vec::new(), http };
        for i in 0..nodes {
            let child = c.spawn(i);
            c.children.push(Some(child));
        }
        c
    }

    /// Start node `i + 1` (0-based `i`), as `concord up` does.
    pub fn spawn(&self, i: u32) -> Child {
        spawn_node(&self.args, i, Path::new(env!("CARGO_BIN_EXE_concord")), &self.cluster_id, &self.secret)
            .unwrap()
            .0
    }

    /// SIGKILL node `i + 1` and reap it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Start node `i + 1` again on its data directory (it must be down).
    pub fn restart(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "node {} is still running", i + 1);
        self.children[i] = Some(self.spawn(i as u32));
    }

    pub fn running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    pub fn redis_port(&self, i: usize) -> u16 {
        self.args.redis_port + i as u16
    }

    /// The index of the node every running node agrees leads (strong mode).
    pub async fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for (i, addr) in self.http.iter().enumerate() {
                if self.children[i].is_none() {
                    continue;
                }
                let view = http(*addr, "GET", "/v1/cluster", b"", Duration::from_secs(1)).await;
                seen.push(view.ok().and_then(|a| a.json().ok()).and_then(|v| v["leader"].as_u64()));
            }
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|x| *x == Some(*l)) {
                    return *l as usize - 1;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}\n{}", self.logs(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every node has applied at least the leader's commit index (strong mode).
    pub async fn caught_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let l = self.leader(timeout).await;
            let view = |i: usize| http(self.http[i], "GET", "/v1/cluster", b"", Duration::from_secs(1));
            let commit =
                view(l).await.ok().and_then(|a| a.json().ok()).and_then(|v| v["commit_index"].as_u64());
            let mut behind = Vec::new();
            for i in 0..self.http.len() {
                let applied =
                    view(i).await.ok().and_then(|a| a.json().ok()).and_then(|v| v["applied_index"].as_u64());
                if applied.zip(commit).is_none_or(|(a, c)| a < c) {
                    behind.push((i + 1, applied, commit));
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "nodes not caught up: {behind:?}\n{}", self.logs(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run a Python client script (`tests/NAME.py`) as `python3 NAME.py 127.0.0.1 LEADER_PORT
    /// FOLLOWER_PORT…` (Redis ports) once the nodes agree on a leader; it must print `ok`.
    pub fn run_python(&self, name: &str) {
        let leader = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.leader(Duration::from_secs(30)));
        let followers =
            (0..self.args.nodes as usize).filter(|i| *i != leader).map(|i| self.redis_port(i).to_string());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name);
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(["127.0.0.1".to_string(), self.redis_port(leader).to_string()])
            .args(followers)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim().starts_with("ok"),
            "{name} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs(30)
        );
    }

    /// The last `lines` lines of every node's log, for assertion messages.
    pub fn logs(&self, lines: usize) -> String {
        (1..=self.args.nodes)
            .map(|i| {
                let text =
                    std::fs::read_to_string(self.args.data.join(format!("node{i}.log"))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                format!("--- node{i}.log ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Whether python3 with redis-py is here: under `CI` it must be (`.ci/run` installs it); elsewhere
/// the test prints why it is skipped.
pub fn redis_py_available() -> bool {
    let python = std::process::Command::new("python3").args(["-c", "import redis"]).output();
    if python.is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "python3 with redis-py is needed (pip install redis)");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: python3 with redis-py is not usable");
    false
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

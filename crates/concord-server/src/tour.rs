//! `concord tour`: what Concord is, in one bounded command – a cluster of real processes, writes,
//! the leader killed with SIGKILL, the failover, the node restarted and caught up.
//!
//! The tour runs `concord up` as a child process (so it shows exactly what a person would run),
//! talks to the nodes over HTTP, kills the leader by the pid `up` keeps in `DATA/node<i>.pid`, and
//! restarts it through `up`'s control socket (what `concord restart` does). Every number it prints
//! is measured in this run. With `keep`, the cluster stays up for the dashboard afterwards.

use crate::cluster::{control, pid_file};
use anyhow::{anyhow, bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `concord tour` runs.
#[derive(Debug, Clone)]
pub struct TourOptions {
    /// The cluster's data directory (a tour run again resumes its cluster).
    pub data: PathBuf,
    pub redis_port: u16,
    pub http_port: u16,
    pub peer_port: u16,
    /// Writes before and after the failover.
    pub writes: u32,
    /// Leave the cluster running at the end (Ctrl-C stops it).
    pub keep: bool,
}

impl Default for TourOptions {
    fn default() -> TourOptions {
        TourOptions {
            data: PathBuf::from("./concord-tour"),
            redis_port: 6379,
            http_port: 8080,
            peer_port: 7379,
            writes: 100,
            keep: false,
        }
    }
}

const NODES: u32 = 3;
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Run the tour, printing each step through `say`.
pub fn run(options: &TourOptions, mut say: impl FnMut(&str)) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the concord executable")?;
    std::fs::create_dir_all(&options.data)
        .with_context(|| format!("cannot create {}", options.data.display()))?;
    let log = options.data.join("up.log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let started = Instant::now();
    let mut up = Command::new(&exe)
        .args(["up", "--nodes", &NODES.to_string(), "--data"])
        .arg(&options.data)
        .args(["--redis-port", &options.redis_port.to_string()])
        .args(["--http-port", &options.http_port.to_string()])
        .args(["--peer-port", &options.peer_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("starting concord up")?;
    let result = steps(options, &mut up, started, &mut say);
    if result.is_err() || !options.keep {
        stop(&mut up);
        if result.is_ok() {
            say(&format!(
                "cluster stopped. Its data stays in {}: `concord up --data {}` resumes it",
                options.data.display(),
                options.data.display()
            ));
        }
    } else {
        say("the cluster keeps running: explore the dashboard, `redis-cli`, `concord member list`; Ctrl-C stops it");
        let _ = up.wait();
    }
    result.with_context(|| format!("the tour stopped (concord up's output: {})", log.display()))
}

fn http_of(options: &TourOptions, node: u32) -> SocketAddr {
    SocketAddr::new(LOOPBACK, options.http_port + node as u16 - 1)
}

thread_local! {
    /// One runtime for every call the tour makes (hundreds of them), not one per call.
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
}

fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<crate::client::HttpAnswer> {
    RUNTIME.with(|rt| rt.block_on(crate::client::http(addr, method, path, body, Duration::from_secs(3)))).ok()
}

/// The leader the given nodes agree on, and its term; waits up to `limit` for one not in `not`.
fn agreed_leader(
    options: &TourOptions,
    nodes: &[u32],
    not: Option<u32>,
    limit: Duration,
) -> anyhow::Result<(u32, u64)> {
    let deadline = Instant::now() + limit;
    loop {
        let views: Vec<serde_json::Value> = nodes
            .iter()
            .filter_map(|&n| call(http_of(options, n), "GET", "/v1/cluster", b""))
            .filter_map(|a| a.json().ok())
            .collect();
        let leaders: Vec<Option<u64>> = views.iter().map(|v| v["leader"].as_u64()).collect();
        if views.len() == nodes.len() {
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) && Some(*l as u32) != not {
                    return Ok((*l as u32, views[0]["term"].as_u64().unwrap_or(0)));
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no leader agreed on within {}s (seen: {leaders:?})", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_keys(options: &TourOptions, via: u32, prefix: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for i in 0..options.writes {
        let key = format!("/v1/kv/{prefix}-{i}");
        let answer = call(http_of(options, via), "PUT", &key, format!("value-{i}").as_bytes());
        if answer.as_ref().map(|a| a.status) != Some(200) {
            bail!("PUT {key} through node {via} was not acknowledged: {answer:?}");
        }
    }
    Ok(start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn steps(
    options: &TourOptions,
    up: &mut Child,
    started: Instant,
    say: &mut impl FnMut(&str),
) -> anyhow::Result<()> {
    let all: Vec<u32> = (1..=NODES).collect();
    say(&format!(
        "1. `concord up`: {NODES} nodes, each its own process with a write-ahead log in {}",
        options.data.display()
    ));
    let (leader, term) = agreed_leader(options, &all, None, Duration::from_secs(30))?;
    if let Some(status) = up.try_wait()? {
        bail!("concord up exited ({status})");
    }
    say(&format!(
        "   node {leader} was elected leader (term {term}) {} after the start. Dashboard: http://{}/",
        ms(started.elapsed()),
        http_of(options, 1)
    ));
    let follower = all.iter().copied().find(|&n| n != leader).expect("3 nodes");
    let took = write_keys(options, follower, "before")?;
    say(&format!(
        "2. {} writes through node {follower}, a follower: it forwards them to the leader, which acknowledges \
         each once a majority has it on disk ({} in all)",
        options.writes,
        ms(took)
    ));
    let pid: i32 = std::fs::read_to_string(pid_file(&options.data, leader))
        .context("the leader's pid file")?
        .trim()
        .parse()
        .map_err(|e| anyhow!("the leader's pid file: {e}"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| anyhow!("kill -9 {pid}: {e}"))?;
    let killed = Instant::now();
    say(&format!("3. kill -9 {pid}: node {leader}, the leader, is gone without a word"));
    let survivors: Vec<u32> = all.iter().copied().filter(|&n| n != leader).collect();
    let (new_leader, new_term) = agreed_leader(options, &survivors, Some(leader), Duration::from_secs(30))?;
    say(&format!(
        "   the survivors noticed the silence and elected node {new_leader} (term {new_term}) {} later",
        ms(killed.elapsed())
    ));
    let took = write_keys(options, new_leader, "after")?;
    say(&format!("4. {} more writes, acknowledged by two nodes of three ({})", options.writes, ms(took)));
    let restarted = Instant::now();
    control::request(&options.data, &format!("restart {leader}"))?;
    let back = http_of(options, leader);
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = format!("/v1/kv/after-{}?consistency=stale", options.writes - 1);
    while call(back, "GET", &last, b"").map(|a| a.status) != Some(200) {
        if Instant::now() > deadline {
            bail!("node {leader} did not catch up within 30s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    say(&format!(
        "5. `concord restart {leader}`: node {leader} replayed its log from disk and caught up on what it missed in {}",
        ms(restarted.elapsed())
    ));
    for prefix in ["before", "after"] {
        for i in 0..options.writes {
            let answer = call(back, "GET", &format!("/v1/kv/{prefix}-{i}?consistency=stale"), b"");
            let expected = format!("value-{i}");
            if answer.as_ref().map(|a| (a.status, a.text())) != Some((200, expected)) {
                bail!("node {leader} is missing {prefix}-{i}: {answer:?}");
            }
        }
    }
    say(&format!(
        "6. all {} acknowledged writes are on node {leader}, read from its own copy: none was lost",
        2 * options.writes
    ));
    Ok(())
}

fn stop(up: &mut Child) {
    let _ =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT);
    let _ = up.wait();
}

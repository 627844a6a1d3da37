//! The two servers under comparison: a throwaway redis-server and a throwaway single Concord node
//! (this very binary's `concord serve`, as a user runs it), each on free loopback ports with its
//! files in a temporary directory. Dropping a [`Server`] kills its process and waits for it, so a
//! run that fails – or panics – leaves nothing running; the directory is removed by [`Scratch`].

use super::resp::Client;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first command (a Raft node elects itself first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process started by the harness (killed when dropped), or one it was pointed at.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Option<Child>,
    /// Where the process's output goes (shown when it fails to start).
    pub log: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let dir = std::env::temp_dir().join(format!("concord-difftest-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server already running at `addr` (not stopped by the harness).
pub fn external(name: &'static str, addr: SocketAddr) -> Server {
    Server { name, addr, child: None, log: None }
}

fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    log: PathBuf,
    addr: SocketAddr,
) -> anyhow::Result<Server> {
    let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {} ({})", name, program.display()))?;
    Ok(Server { name, addr, child: Some(child), log: Some(log) })
}

/// redis-server on a free port: no persistence (`--save ''`, `--appendonly no`), a 500 Hz clock
/// tick (`--hz 500`), files in `dir`.
pub fn start_redis(program: &str, dir: &Path) -> anyhow::Result<Server> {
    let addr = concord_server::testkit::free_addrs(1)[0];
    let args: Vec<String> = [
        "--port",
        &addr.port().to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        // Blocking pops time out on the server's clock tick: at the default 10 Hz a pop with the
        // table's 10 ms timeout waits ~90 ms, which made a long run mostly waiting (500 is the
        // highest rate Redis accepts).
        "--hz",
        "500",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = spawn("redis-server", Path::new(program), &args, dir.join("redis.log"), addr)?;
    wait_ready(server)
}

/// One Concord node (`exe serve`, a single-member Raft group) on free ports, data in `dir`.
pub fn start_concord(exe: &Path, dir: &Path) -> anyhow::Result<Server> {
    let addrs = concord_server::testkit::free_addrs(3);
    let args: Vec<String> = vec![
        "serve".into(),
        "--id".into(),
        "1".into(),
        "--data".into(),
        dir.join("concord").display().to_string(),
        "--redis-addr".into(),
        addrs[0].to_string(),
        "--http-addr".into(),
        addrs[1].to_string(),
        "--peer-addr".into(),
        addrs[2].to_string(),
        // The comparison is about replies, not durability; fsync would only slow it down.
        "--no-fsync".into(),
    ];
    let server = spawn("concord", exe, &args, dir.join("concord.log"), addrs[0])?;
    wait_ready(server)
}

/// Wait until the server answers a write (a Raft node answers PING before it has a leader). The
/// probe deletes a key of the test's key space, which every run clears first anyway.
pub fn wait_ready(mut server: Server) -> anyhow::Result<Server> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Some(child) = &mut server.child {
            if let Some(status) = child.try_wait()? {
                bail!("{} exited at start ({status}){}", server.name, log_tail(&server));
            }
        }
        match Client::connect(server.addr, Duration::from_secs(2))
            .and_then(|mut c| c.call(&[b"DEL".to_vec(), b"k0".to_vec()]))
        {
            Ok(reply) if reply.raw.starts_with(b":") => return Ok(server),
            Ok(reply) => last = super::resp::show(&reply.raw),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{} at {} not ready within {:?}: {last}{}",
        server.name,
        server.addr,
        START_TIMEOUT,
        log_tail(&server)
    )
}

fn log_tail(server: &Server) -> String {
    let Some(log) = &server.log else { return String::new() };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    format!(
        "\n--- last lines of {} ---\n{}",
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

//! The clusters `concord chaos` runs against, and how each one suffers a fault:
//!
//! * [`Docker`]: `deploy/compose.yaml` (plus the mode's override file) as a compose project of its
//!   own, on a subnet of its own; faults through [`super::docker`] – `docker kill`/`start`,
//!   `docker pause`/`unpause`, and links cut with iptables in a container's network namespace.
//! * [`Local`]: `concord serve` processes on loopback, laid out as `concord up` lays them out;
//!   only SIGKILL (then started again) and SIGSTOP/SIGCONT – loopback processes share one network
//!   namespace, so no link between them can be cut.
//!
//! Clock faults (docker only) go through libfaketime, preloaded into every node of a run that asks
//! for one ([`faketime_env`]): it answers the node's `clock_gettime` – the wall clock and the
//! monotonic clock that tokio's timers, `Instant` and so Raft's timeouts and leases run on – with
//! true time plus the offset written in a file of the container's `/tmp`, read again on every call.
//! A fault rewrites that file with the image's busybox ([`Cluster::set_clock`]).

use super::disk::{Edit, WalFiles};
use super::docker;
use anyhow::{anyhow, bail, Context};
use concord_server::cluster::{cluster_identity, spawn_node_with_env, UpOptions};
use concord_server::config::Mode;
use concord_server::testkit::{free_port_run, http};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Where a container keeps its data (deploy/config/*.toml: `data = "/data"`, a named volume).
const CONTAINER_DATA: &str = "/data";

/// The regular files of a tar stream (what `docker cp … -` writes), by base name: ustar headers,
/// PAX extended headers skipped.
fn untar(tar: &[u8]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let header = &tar[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            let f = &header[r];
            String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]).into_owned()
        };
        let size_text = field(124..136);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| anyhow!("tar: bad size field {size_text:?}"))? as usize;
        let body = at + 512;
        if body + size > tar.len() {
            bail!("tar: {} cut short", field(0..100));
        }
        if matches!(header[156], b'0' | 0) {
            let name = field(0..100);
            let base = name.rsplit('/').next().unwrap_or(&name).to_string();
            files.push((base, tar[body..body + size].to_vec()));
        }
        at = body + size.div_ceil(512) * 512;
    }
    Ok(files)
}

/// The compose project name prefix; the pid follows (leftovers of dead runs are recognised by it).
pub const PROJECT_PREFIX: &str = "concord-chaos-";

/// libfaketime where Debian's `libfaketime` puts it – and where deploy/build-image.sh copies it
/// into the image when the host has it.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The offset file each node's libfaketime reads: in the container's `/tmp` (mode 1777), so the
/// node's user (uid 10001), which `docker exec` runs as, may write it. Absent: true time.
const FAKETIME_FILE: &str = "/tmp/concord-faketime";
/// While this file exists, a strobe's loop runs (in the container, beside the node).
const STROBE_MARK: &str = "/tmp/concord-strobe";

/// The environment that puts a node's clocks under libfaketime. `FAKETIME_NO_CACHE`: the file is
/// read on every clock read (about 5 µs a call instead of 0.1 µs, measured), because by default
/// libfaketime looks at it again only every few seconds – a strobe would not be seen at all. No
/// `FAKETIME` variable: it would take precedence over the file.
pub fn faketime_env() -> Vec<(String, String)> {
    [("LD_PRELOAD", FAKETIME_LIB), ("FAKETIME_TIMESTAMP_FILE", FAKETIME_FILE), ("FAKETIME_NO_CACHE", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// libfaketime's spelling of an offset of `ms` milliseconds: `+1.500s`, `-2.250s`, `+0` (it reads
/// `ms` as minutes, so seconds with a fraction it is).
pub fn faketime_offset(ms: i64) -> String {
    if ms == 0 {
        return "+0".into();
    }
    let sign = if ms > 0 { '+' } else { '-' };
    format!("{sign}{}.{:03}s", ms.abs() / 1000, ms.abs() % 1000)
}

/// A shell command writing `spec` to the offset file *atomically* (a rename): libfaketime reads the
/// file on every clock read and ends the process when it cannot parse it, so no read may ever
/// find it half-written.
fn write_offset(spec: &str) -> String {
    format!("echo {spec} > {FAKETIME_FILE}.new && mv -f {FAKETIME_FILE}.new {FAKETIME_FILE}")
}

/// Why `image` cannot make clock faults, if it cannot: it lacks libfaketime (a missing preload is
/// only a warning of the loader, and the clocks would silently stay true).
pub fn image_lacks_faketime(image: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--entrypoint", "/bin/busybox", image, "test", "-f"])
        .arg(FAKETIME_LIB)
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some(format!(
            "the image {image} has no {FAKETIME_LIB}: deploy/build-image.sh copies it in when the host has it \
             (Debian: apt-get install libfaketime), then rebuild the image (docker rmi {image})"
        )),
        Err(e) => Some(format!("cannot run docker to look into {image}: {e}")),
    }
}

pub enum Cluster {
    Docker(Docker),
    Local(Local),
}

impl Cluster {
    pub fn nodes(&self) -> usize {
        self.http().len()
    }

    /// The cluster secret's file (admin calls carry a proof of it).
    pub fn secret_file(&self) -> &Path {
        match self {
            Cluster::Docker(d) => &d.secret,
            Cluster::Local(l) => &l.secret,
        }
    }

    /// Each node's HTTP address, as the host reaches it.
    pub fn http(&self) -> Vec<SocketAddr> {
        match self {
            Cluster::Docker(d) => d.http.iter().map(|&p| SocketAddr::from(([127, 0, 0, 1], p))).collect(),
            Cluster::Local(l) => l.http.clone(),
        }
    }

    /// Each node's Redis (RESP) address, as the host reaches it.
    pub fn redis(&self) -> Vec<SocketAddr> {
        match self {
            Cluster::Docker(d) => d.redis.iter().map(|&p| SocketAddr::from(([127, 0, 0, 1], p))).collect(),
            Cluster::Local(l) => (0..l.http.len() as u16)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], l.options.redis_port + i)))
                .collect(),
        }
    }

    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => docker::kill(&d.containers[i]),
            Cluster::Local(l) => {
                if let Some(mut child) = l.children[i].take() {
                    let _ = signal(&child, nix::sys::signal::Signal::SIGCONT);
                    child.kill()?;
                    child.wait()?;
                }
                Ok(())
            }
        }
    }

    /// Start a killed node again (on its data: a volume, or its directory).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => docker::start(&d.containers[i]),
            Cluster::Local(l) => {
                if l.children[i].is_none() {
                    l.children[i] = Some(l.spawn(i)?);
                }
                Ok(())
            }
        }
    }

    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => docker::pause(&d.containers[i]),
            Cluster::Local(l) => match &l.children[i] {
                Some(child) => signal(child, nix::sys::signal::Signal::SIGSTOP),
                None => bail!("node {} is not running", i + 1),
            },
        }
    }

    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => docker::unpause(&d.containers[i]),
            Cluster::Local(l) => match &l.children[i] {
                Some(child) => signal(child, nix::sys::signal::Signal::SIGCONT),
                None => Ok(()),
            },
        }
    }

    /// Cut the link between nodes `a` and `b` (both ways; in `a`'s namespace).
    pub fn cut(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => docker::cut(&d.containers[a], d.ip(b)),
            Cluster::Local(_) => bail!("the local backend cannot cut links"),
        }
    }

    /// Set node `i`'s clock `offset_ms` milliseconds from true time (0: true time again).
    pub fn set_clock(&mut self, i: usize, offset_ms: i64) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => {
                docker::exec_sh(&d.containers[i], &write_offset(&faketime_offset(offset_ms))).map(drop)
            }
            Cluster::Local(_) => bail!("the local backend has no clock faults"),
        }
    }

    /// Flip node `i`'s clock between `offset_ms` and true time every `period_ms`, until
    /// [`Cluster::stop_strobe`]: a loop of the image's busybox in the container, beside the node.
    pub fn start_strobe(&mut self, i: usize, offset_ms: i64, period_ms: u64) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => {
                let (on, off) = (write_offset(&faketime_offset(offset_ms)), write_offset("+0"));
                let us = period_ms * 1000;
                docker::exec_sh(&d.containers[i], &format!("touch {STROBE_MARK}"))?;
                docker::exec_sh_detached(
                    &d.containers[i],
                    &format!(
                        "while [ -e {STROBE_MARK} ]; do {on}; usleep {us}; {off}; usleep {us}; done; {off}"
                    ),
                )
            }
            Cluster::Local(_) => bail!("the local backend has no clock faults"),
        }
    }

    /// End node `i`'s strobe: its loop ends within two periods and leaves true time; it is set
    /// again here after that, whatever the loop did.
    pub fn stop_strobe(&mut self, i: usize, period_ms: u64) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => {
                docker::exec_sh(&d.containers[i], &format!("rm -f {STROBE_MARK}"))?;
                std::thread::sleep(Duration::from_millis(2 * period_ms + 50));
                self.set_clock(i, 0)
            }
            Cluster::Local(_) => bail!("the local backend has no clock faults"),
        }
    }

    /// Thaw every frozen node (and nothing else).
    pub fn thaw_all(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for i in 0..self.nodes() {
            let result = match self {
                Cluster::Docker(d) => {
                    let state = Command::new("docker")
                        .args(["inspect", "--format", "{{.State.Status}}", &d.containers[i]])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    if state == "paused" {
                        docker::unpause(&d.containers[i])
                    } else {
                        Ok(())
                    }
                }
                Cluster::Local(_) => self.resume(i),
            };
            if let Err(e) = result {
                errors.push(format!("node {}: {e:#}", i + 1));
            }
        }
        errors
    }

    /// Undo every fault still in effect: start what is down, thaw what is frozen, heal every link,
    /// and (in a run with clock faults) set every clock true again.
    pub fn heal_everything(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for i in 0..self.nodes() {
            match self {
                Cluster::Docker(d) => {
                    let c = d.containers[i].clone();
                    let state = Command::new("docker")
                        .args(["inspect", "--format", "{{.State.Status}}", &c])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    let result = match state.as_str() {
                        "paused" => docker::unpause(&c),
                        "exited" | "created" => docker::start(&c),
                        _ => Ok(()),
                    }
                    .and_then(|()| docker::heal_all(&c))
                    .and_then(|()| match d.clock_faults {
                        true => docker::exec_sh(&c, &format!("rm -f {STROBE_MARK}; {}", write_offset("+0")))
                            .map(drop),
                        false => Ok(()),
                    });
                    if let Err(e) = result {
                        errors.push(format!("node {}: {e:#}", i + 1));
                    }
                }
                Cluster::Local(_) => {
                    let r = self.resume(i).and_then(|()| self.restart(i));
                    if let Err(e) = r {
                        errors.push(format!("node {}: {e:#}", i + 1));
                    }
                }
            }
        }
        errors
    }

    /// Node `i`'s write-ahead log (`DATA/wal/`), read while the node is stopped.
    pub fn read_wal(&self, i: usize) -> anyhow::Result<WalFiles> {
        match self {
            Cluster::Docker(d) => {
                // `docker cp` reads a stopped container's volume; it writes a tar stream.
                let from =
                    format!("{}:{CONTAINER_DATA}/{}", d.containers[i], concord_wal::layout::WAL_SUBDIR);
                let out = Command::new("docker").args(["cp", &from, "-"]).output()?;
                if !out.status.success() {
                    bail!("docker cp {from} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
                }
                Ok(WalFiles::from_files(untar(&out.stdout)?))
            }
            Cluster::Local(l) => {
                let dir = l.node_dir(i).join(concord_wal::layout::WAL_SUBDIR);
                let mut files = Vec::new();
                for entry in
                    std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
                {
                    let entry = entry?;
                    files.push((
                        entry.file_name().to_string_lossy().into_owned(),
                        std::fs::read(entry.path())?,
                    ));
                }
                Ok(WalFiles::from_files(files))
            }
        }
    }

    /// Change one file of node `i`'s `wal/` (the node is stopped). Containers: a throw-away
    /// container of the node's image on the node's volume (`--volumes-from`), as the image's user
    /// – the volume's owner – with the image's busybox (`truncate`, `dd`).
    pub fn edit_wal(&self, i: usize, edit: &Edit) -> anyhow::Result<()> {
        let (Edit::Truncate { file, .. } | Edit::WriteAt { file, .. }) = edit;
        match self {
            Cluster::Docker(d) => {
                let path = format!("{CONTAINER_DATA}/{file}");
                match edit {
                    Edit::Truncate { len, .. } => {
                        d.helper(i, &["truncate", "-s", &len.to_string(), &path], &[]).map(drop)
                    }
                    Edit::WriteAt { offset, bytes, .. } => d
                        .helper(
                            i,
                            &["dd", &format!("of={path}"), "bs=1", &format!("seek={offset}"), "conv=notrunc"],
                            bytes,
                        )
                        .map(drop),
                }
            }
            Cluster::Local(l) => {
                let path = l.node_dir(i).join(file);
                let mut bytes =
                    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                super::disk::apply(&mut bytes, edit);
                std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }

    /// Wipe node `i`'s data directory (the node is stopped): a rebuild's fresh start. Locally the
    /// old one is moved aside (`node<i>.wiped-<n>`), for a look afterwards.
    pub fn wipe(&self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Docker(d) => d
                .helper(i, &["sh", "-c", &format!("rm -rf {CONTAINER_DATA}/* {CONTAINER_DATA}/.[!.]*")], &[])
                .map(drop),
            Cluster::Local(l) => {
                let dir = l.node_dir(i);
                let aside = (1..).map(|n| dir.with_extension(format!("wiped-{n}"))).find(|p| !p.exists());
                let aside = aside.expect("some name is free");
                std::fs::rename(&dir, &aside).with_context(|| format!("cannot move {} aside", dir.display()))
            }
        }
    }

    /// Wait up to `within` for node `i` to exit on its own (a node refusing its data); how it
    /// exited, or `None` if it still runs.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> anyhow::Result<Option<String>> {
        let deadline = Instant::now() + within;
        loop {
            let exited = match self {
                Cluster::Docker(d) => {
                    let state = Command::new("docker")
                        .args([
                            "inspect",
                            "--format",
                            "{{.State.Running}} {{.State.ExitCode}}",
                            &d.containers[i],
                        ])
                        .output()?;
                    let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
                    state.strip_prefix("false ").map(|code| format!("exit status {code}"))
                }
                Cluster::Local(l) => match l.children[i].as_mut().map(|c| c.try_wait()).transpose()? {
                    Some(Some(status)) => {
                        l.children[i] = None; // so that a restart spawns it again
                        Some(status.to_string())
                    }
                    Some(None) => None,
                    None => Some("not running".into()),
                },
            };
            if exited.is_some() || Instant::now() >= deadline {
                return Ok(exited);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node `i`'s log so far (every life of the node: a container's `docker logs`, or the
    /// process's appended log file).
    pub fn log(&self, i: usize) -> String {
        match self {
            Cluster::Docker(d) => {
                let out = Command::new("docker").args(["logs", &d.containers[i]]).output();
                out.map(|o| {
                    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
                })
                .unwrap_or_else(|e| format!("docker logs failed: {e}"))
            }
            Cluster::Local(l) => {
                std::fs::read_to_string(l.options.data.join(format!("node{}.log", i + 1))).unwrap_or_default()
            }
        }
    }

    /// Each node's log: `(file name, text)`.
    pub fn logs(&self) -> Vec<(String, String)> {
        match self {
            Cluster::Docker(_) | Cluster::Local(_) => {
                (0..self.nodes()).map(|i| (format!("node{}.log", i + 1), self.log(i))).collect()
            }
        }
    }

    /// The leader every answering node names (1-based ids in `/healthz`), as a 0-based index.
    pub async fn leader(&self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            let mut named = Vec::new();
            for addr in self.http() {
                let answer = http(addr, "GET", "/healthz", b"", Duration::from_secs(1)).await;
                if let Some(l) = answer.ok().and_then(|a| a.json().ok()).and_then(|v| v["leader"].as_u64()) {
                    named.push(l);
                }
            }
            if let Some(&l) = named.first() {
                if named.len() * 2 > self.nodes() && named.iter().all(|&x| x == l) && l >= 1 {
                    return Some(l as usize - 1);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until a write through every node succeeds (the cluster elected its leaders and
    /// serves): the moment the clients may start.
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for (i, addr) in self.http().into_iter().enumerate() {
            loop {
                let answer = http(addr, "PUT", "/v1/kv/chaos-ready", b"1", Duration::from_secs(3)).await;
                match answer {
                    Ok(a) if a.status == 200 => break,
                    other if Instant::now() >= deadline => bail!(
                        "node {} does not take a write within {within:?}: {:?}",
                        i + 1,
                        other.map(|a| (a.status, a.text()))
                    ),
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        }
        Ok(())
    }

    /// Stop everything and delete what the run created (containers, network, volumes; or the
    /// processes). Idempotent.
    pub fn teardown(&mut self) {
        match self {
            Cluster::Docker(d) => d.down(),
            Cluster::Local(l) => l.stop(),
        }
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
    use nix::unistd::Pid;
    nix::sys::signal::kill(Pid::from_raw(child.id() as i32), sig).map_err(|e| anyhow!("{sig}: {e}"))
}

/// `concord serve` processes of this binary on loopback.
pub struct Local {
    pub options: UpOptions,
    cluster_id: String,
    secret: PathBuf,
    exe: PathBuf,
    /// Set for every node process (`--unsafe-mutation`).
    env: Vec<(String, String)>,
    children: Vec<Option<Child>>,
    http: Vec<SocketAddr>,
}

impl Local {
    /// Start `nodes` nodes with their data under `dir` (created; it must not hold another
    /// cluster's data), `env` set for each process.
    pub fn start(dir: &Path, nodes: u32, mode: Mode, env: &[(String, String)]) -> anyhow::Result<Local> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let base = free_port_run(3 * nodes as u16);
        let mut options = UpOptions {
            nodes,
            data: dir.to_path_buf(),
            redis_port: base,
            http_port: base + nodes as u16,
            peer_port: base + 2 * nodes as u16,
            mode,
            ..UpOptions::default()
        };
        if mode == Mode::Sharded {
            options.shards = Some(nodes.min(3));
        }
        let (cluster_id, secret) = cluster_identity(dir)?;
        let http =
            (0..nodes).map(|i| SocketAddr::from(([127, 0, 0, 1], options.http_port + i as u16))).collect();
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let mut l = Local { options, cluster_id, secret, exe, env: env.to_vec(), children: Vec::new(), http };
        for i in 0..nodes as usize {
            let child = l.spawn(i)?;
            l.children.push(Some(child));
        }
        Ok(l)
    }

    /// Node `i`'s data directory (as `concord up` lays them out).
    fn node_dir(&self, i: usize) -> PathBuf {
        self.options.data.join(format!("node{}", i + 1))
    }

    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        Ok(spawn_node_with_env(
            &self.options,
            i as u32,
            &self.exe,
            &self.cluster_id,
            &self.secret,
            &self.env,
        )?
        .0)
    }

    fn stop(&mut self) {
        for child in self.children.iter_mut() {
            if let Some(mut c) = child.take() {
                let _ = signal(&c, nix::sys::signal::Signal::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A compose project of `deploy/compose.yaml`.
pub struct Docker {
    pub project: String,
    deploy: PathBuf,
    overrides: Vec<String>,
    image: String,
    /// Three octets: the nodes are PREFIX.11 … PREFIX.15.
    subnet_prefix: String,
    config_dir: PathBuf,
    secret: PathBuf,
    http: Vec<u16>,
    redis: Vec<u16>,
    pub containers: Vec<String>,
    up: bool,
    /// The nodes run with libfaketime ([`faketime_env`] is in `env`): clocks to reset on a heal.
    clock_faults: bool,
}

/// The compose command: `docker-compose` where installed, else `docker compose`.
fn compose_program() -> (String, Vec<String>) {
    let works = Command::new("docker-compose").arg("version").output().map(|o| o.status.success());
    if works.unwrap_or(false) {
        ("docker-compose".into(), vec![])
    } else {
        ("docker".into(), vec!["compose".into()])
    }
}

impl Docker {
    fn compose(&self) -> Command {
        let (program, first) = compose_program();
        let mut c = Command::new(program);
        c.args(first)
            .current_dir(self.deploy.parent().unwrap_or(Path::new(".")))
            .args(["-p", &self.project, "-f"])
            .arg(self.deploy.join("compose.yaml"));
        for o in &self.overrides {
            c.arg("-f").arg(self.deploy.join(o));
        }
        c.env("CONCORD_IMAGE", &self.image)
            .env("CONCORD_SECRET_FILE", &self.secret)
            .env("CONCORD_SUBNET_PREFIX", &self.subnet_prefix)
            .env("CONCORD_CONFIG_DIR", &self.config_dir);
        for i in 0..5 {
            c.env(format!("CONCORD_REDIS_PORT_{}", i + 1), self.redis[i].to_string());
            c.env(format!("CONCORD_HTTP_PORT_{}", i + 1), self.http[i].to_string());
        }
        c
    }

    /// Run busybox `args` in a throw-away container of the image with node `i`'s volumes
    /// (`--volumes-from`: works on a stopped container), no network, `stdin` fed to it.
    fn helper(&self, i: usize, args: &[&str], stdin: &[u8]) -> anyhow::Result<String> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("docker")
            .args(["run", "--rm", "-i", "--network", "none", "--volumes-from", &self.containers[i]])
            .args(["--entrypoint", "/bin/busybox", &self.image])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run docker")?;
        child.stdin.take().expect("piped").write_all(stdin)?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "busybox {} in a helper container on node {}'s volume failed: {}",
                args.join(" "),
                i + 1,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ip(&self, i: usize) -> IpAddr {
        format!("{}.{}", self.subnet_prefix, 11 + i).parse().expect("a valid prefix makes a valid address")
    }

    /// Start the five nodes of `mode` from `image`, on `subnet_prefix`.0/24, with `env` in each
    /// container's environment. `work` holds the secret, the rewritten configuration and (when
    /// `env` is not empty) the compose override file that sets it while the run lasts.
    pub fn start(
        deploy: &Path,
        mode: Mode,
        image: &str,
        subnet_prefix: &str,
        work: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Docker> {
        remove_leftovers(deploy);
        let octets: Vec<&str> = subnet_prefix.split('.').collect();
        if octets.len() != 3 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
            bail!("--subnet-prefix wants three octets such as 10.58.0, not {subnet_prefix:?}");
        }
        let (file, mut overrides) = match mode {
            Mode::Strong => ("strong.toml", vec![]),
            Mode::Eventual => ("eventual.toml", vec!["compose.eventual.yaml".to_string()]),
            Mode::Sharded => ("sharded.toml", vec!["compose.sharded.yaml".to_string()]),
        };
        std::fs::create_dir_all(work)?;
        if !env.is_empty() {
            // One more override file: the variables in every node's `environment`.
            let mut text = String::from("version: \"3.7\"\nservices:\n");
            for i in 1..=5 {
                text.push_str(&format!("  node{i}:\n    environment:\n"));
                for (k, v) in env {
                    text.push_str(&format!("      {k}: {}\n", serde_json::Value::String(v.clone())));
                }
            }
            let path = work.join("compose.env.yaml");
            std::fs::write(&path, text)?;
            overrides.push(path.to_string_lossy().into_owned());
        }
        // The shipped configuration, its peer addresses moved to this run's subnet.
        let config_dir = work.join("config");
        std::fs::create_dir_all(&config_dir)?;
        let text = std::fs::read_to_string(deploy.join("config").join(file))
            .with_context(|| format!("cannot read {}", deploy.join("config").join(file).display()))?;
        let path = config_dir.join(file);
        std::fs::write(&path, text.replace("10.57.0.", &format!("{subnet_prefix}.")))?;
        set_mode(&path, 0o644)?;
        set_mode(&config_dir, 0o755)?;
        set_mode(work, 0o755)?;
        let secret = work.join("cluster.secret");
        let out = Command::new(deploy.join("make-secret.sh")).arg(&secret).output()?;
        if !out.status.success() {
            bail!("deploy/make-secret.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let base = free_port_run(10);
        let mut d = Docker {
            project: format!("{PROJECT_PREFIX}{}", std::process::id()),
            deploy: deploy.to_path_buf(),
            overrides,
            image: image.to_string(),
            subnet_prefix: subnet_prefix.to_string(),
            config_dir,
            secret,
            redis: (0..5).map(|i| base + i).collect(),
            http: (5..10).map(|i| base + i).collect(),
            containers: Vec::new(),
            up: true,
            clock_faults: env.iter().any(|(k, _)| k == "FAKETIME_TIMESTAMP_FILE"),
        };
        let up = d.compose().args(["up", "-d"]).output().context("cannot run docker-compose")?;
        if !up.status.success() {
            let err = String::from_utf8_lossy(&up.stderr);
            let hint = if err.contains("overlap") || err.contains("Pool") {
                format!(" (the subnet {subnet_prefix}.0/24 is taken: pick another with --subnet-prefix)")
            } else {
                String::new()
            };
            bail!("docker-compose up failed{hint}:\n{err}");
        }
        for i in 1..=5 {
            let out = d.compose().args(["ps", "-q", &format!("node{i}")]).output()?;
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if id.is_empty() {
                bail!("no container for node{i}");
            }
            d.containers.push(id);
        }
        Ok(d)
    }

    /// Wait until `docker inspect` calls every container healthy (the image's HEALTHCHECK).
    pub fn wait_healthy(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let out = Command::new("docker")
                .args(["inspect", "--format", "{{.State.Health.Status}}"])
                .args(&self.containers)
                .output()?;
            let states: Vec<String> =
                String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
            if states.len() == self.containers.len() && states.iter().all(|s| s == "healthy") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("containers not healthy within {within:?}: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn down(&mut self) {
        if !std::mem::take(&mut self.up) {
            return;
        }
        match self.compose().args(["down", "-v", "--timeout", "2"]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("docker-compose down -v failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run docker-compose down -v: {e}"),
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.down();
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Take down the compose projects of earlier runs whose process is gone (killed before its
/// clean-up): their networks would hold a subnet.
pub fn remove_leftovers(deploy: &Path) {
    let Ok(out) = Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]).output() else {
        return;
    };
    for network in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(project) = network.strip_suffix("_concord") else { continue };
        let Some(pid) = project.strip_prefix(PROJECT_PREFIX) else { continue };
        if Path::new("/proc").join(pid).exists() {
            continue; // a run still going (perhaps this one)
        }
        eprintln!("removing the leftover compose project {project}");
        let (program, first) = compose_program();
        let _ = Command::new(program)
            .args(first)
            .current_dir(deploy.parent().unwrap_or(Path::new(".")))
            .args(["-p", project, "-f"])
            .arg(deploy.join("compose.yaml"))
            .args(["down", "-v", "--timeout", "1"])
            .env("CONCORD_SECRET_FILE", "/dev/null")
            .output();
    }
}

/// Make sure `image` exists: build it with `deploy/build-image.sh` around this very binary if it
/// does not (or say how to).
pub fn ensure_image(deploy: &Path, image: &str) -> anyhow::Result<()> {
    let exists = Command::new("docker").args(["image", "inspect", image]).output()?.status.success();
    if exists {
        return Ok(());
    }
    let script = deploy.join("build-image.sh");
    let exe = std::env::current_exe()?;
    eprintln!("image {image} missing: building it with {} around {}", script.display(), exe.display());
    let status = Command::new(&script)
        .env("CONCORD_BIN", &exe)
        .env("CONCORD_IMAGE", image)
        .stdout(std::io::stderr()) // standard output is the verdict's alone
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "building the image failed; build it yourself: CONCORD_IMAGE={image} CONCORD_BIN={} {}",
            exe.display(),
            script.display()
        );
    }
    Ok(())
}

/// Why docker runs cannot cut links here, if they cannot.
pub fn cannot_cut_links() -> Option<String> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
    };
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !uid.unwrap_or(false) {
        return Some("partitions need root (nsenter into a container's network namespace)".into());
    }
    if !works("nsenter", &["--version"]) || !works("iptables", &["--version"]) {
        return Some("partitions need nsenter (util-linux) and iptables on the host".into());
    }
    None
}

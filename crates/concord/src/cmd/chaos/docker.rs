//! Faults on Docker containers – the nodes of `deploy/compose.yaml`, or any others – through the
//! `docker` command and, for cutting one link, `iptables` run by `nsenter` inside a container's
//! network namespace:
//!
//! * [`kill`] (SIGKILL, as `kill -9`), [`start`] again, [`stop`] (SIGTERM, then SIGKILL);
//! * [`pause`] / [`unpause`]: every process of the container frozen (cgroup freezer): its sockets
//!   stay open and the kernel still completes TCP handshakes, but nothing answers – a stalled
//!   node, not a dead one;
//! * [`disconnect`] / [`connect`]: the container off a network altogether (isolated), then back
//!   on it at the same address;
//! * [`cut`] / [`heal`] / [`heal_all`]: one link. In the container's own network namespace every
//!   packet from or to the peer's address is dropped, both ways; the container's other links are
//!   untouched. The rules live in a chain of their own, `CONCORD-CHAOS`, jumped to from `INPUT`
//!   and `OUTPUT`, so [`heal_all`] removes exactly what was added. They last as long as the
//!   namespace: a container that restarts comes back with every link whole.
//!
//! Cutting needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) on the Docker host and the host's
//! `nsenter` (util-linux) and `iptables` (Debian: iptables): nothing is needed in the image, which
//! for Concord's has no shell at all. Everything else needs only the `docker` command.
//!
//! Not used by the binary yet: `concord chaos` is to call it; the test below drives it.
#![cfg_attr(not(test), allow(dead_code))]

use anyhow::{anyhow, bail, Context};
use std::net::IpAddr;
use std::process::Command;

/// The chain that holds the cut links' rules in a container's network namespace.
pub const CHAIN: &str = "CONCORD-CHAOS";

/// Run `program args`, failing with its standard error; its standard output, trimmed.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    run("docker", args)
}

/// SIGKILL every process of the container (`docker kill`): the node gets no chance to sync.
pub fn kill(container: &str) -> anyhow::Result<()> {
    docker(&["kill", "--signal", "KILL", container]).map(drop)
}

/// Start a stopped or killed container again.
pub fn start(container: &str) -> anyhow::Result<()> {
    docker(&["start", container]).map(drop)
}

/// SIGTERM, and SIGKILL after `grace_seconds` if it is still running (`docker stop`).
pub fn stop(container: &str, grace_seconds: u32) -> anyhow::Result<()> {
    docker(&["stop", "--time", &grace_seconds.to_string(), container]).map(drop)
}

/// Freeze every process of the container (`docker pause`).
pub fn pause(container: &str) -> anyhow::Result<()> {
    docker(&["pause", container]).map(drop)
}

/// Thaw a paused container.
pub fn unpause(container: &str) -> anyhow::Result<()> {
    docker(&["unpause", container]).map(drop)
}

/// Take the container off `network`: it reaches nobody there, and nobody reaches it.
pub fn disconnect(container: &str, network: &str) -> anyhow::Result<()> {
    docker(&["network", "disconnect", "--force", network, container]).map(drop)
}

/// Put the container back on `network`, at `ip` if given – the address its peers know it by (a
/// Concord node's peers are IP literals: reconnected elsewhere, it would stay unreachable).
pub fn connect(container: &str, network: &str, ip: Option<IpAddr>) -> anyhow::Result<()> {
    let ip = ip.map(|ip| ip.to_string());
    let mut args = vec!["network", "connect"];
    if let Some(ip) = &ip {
        args.extend([if ip.contains(':') { "--ip6" } else { "--ip" }, ip.as_str()]);
    }
    args.extend([network, container]);
    docker(&args).map(drop)
}

/// Whether the container runs (paused counts as running, as Docker says).
pub fn running(container: &str) -> anyhow::Result<bool> {
    Ok(docker(&["inspect", "--format", "{{.State.Running}}", container])? == "true")
}

/// The host pid of the container's first process (0 when it does not run).
pub fn pid(container: &str) -> anyhow::Result<u32> {
    let text = docker(&["inspect", "--format", "{{.State.Pid}}", container])?;
    text.parse().with_context(|| format!("docker inspect gave pid {text:?}"))
}

/// The container's address on `network`.
pub fn address(container: &str, network: &str) -> anyhow::Result<IpAddr> {
    let format =
        format!("{{{{with index .NetworkSettings.Networks {network:?}}}}}{{{{.IPAddress}}}}{{{{end}}}}");
    let text = docker(&["inspect", "--format", &format, container])?;
    text.parse().map_err(|_| anyhow!("{container} has no address on network {network} ({text:?})"))
}

/// `iptables args` inside the network namespace of the container's first process.
fn iptables(container: &str, args: &[&str]) -> anyhow::Result<String> {
    let pid = pid(container)?;
    if pid == 0 {
        bail!("{container} does not run: it has no network namespace to cut links in");
    }
    let target = pid.to_string();
    let mut full = vec!["-t", target.as_str(), "-n", "iptables", "-w"];
    full.extend(args);
    run("nsenter", &full)
}

/// Whether `iptables -C …` finds the rule (its exit status, without an error).
fn has_rule(container: &str, rule: &[&str]) -> anyhow::Result<bool> {
    let mut args = vec!["-C"];
    args.extend(rule);
    match iptables(container, &args) {
        Ok(_) => Ok(true),
        Err(e)
            if format!("{e:#}").contains("exit status: 1")
                || format!("{e:#}").contains("does a matching rule exist") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether the container's namespace has the chain yet.
fn has_chain(container: &str) -> anyhow::Result<bool> {
    pid(container)?; // a missing container is an error, not "no chain"
    Ok(iptables(container, &["-n", "-L", CHAIN]).is_ok())
}

/// The chain, and the jumps to it from INPUT and OUTPUT, in the container's namespace.
fn ensure_chain(container: &str) -> anyhow::Result<()> {
    if !has_chain(container)? {
        iptables(container, &["-N", CHAIN])?;
    }
    for builtin in ["INPUT", "OUTPUT"] {
        if !has_rule(container, &[builtin, "-j", CHAIN])? {
            iptables(container, &["-I", builtin, "1", "-j", CHAIN])?;
        }
    }
    Ok(())
}

/// The two rules of a cut link to `peer`.
fn link_rules(peer: &str) -> [[&str; 5]; 2] {
    [[CHAIN, "-s", peer, "-j", "DROP"], [CHAIN, "-d", peer, "-j", "DROP"]]
}

/// Cut the link between the container and `peer`: every packet from or to that address is dropped
/// in the container's network namespace, both ways. Cutting a cut link changes nothing.
pub fn cut(container: &str, peer: IpAddr) -> anyhow::Result<()> {
    ensure_chain(container)?;
    let peer = peer.to_string();
    for rule in link_rules(&peer) {
        if !has_rule(container, &rule)? {
            let mut args = vec!["-A"];
            args.extend(rule);
            iptables(container, &args)?;
        }
    }
    Ok(())
}

/// Cut the link between containers `a` and `b` on `network` (in `a`'s namespace).
pub fn cut_link(a: &str, b: &str, network: &str) -> anyhow::Result<()> {
    cut(a, address(b, network)?)
}

/// Heal the link to `peer` that [`cut`] cut (no error if it was whole).
pub fn heal(container: &str, peer: IpAddr) -> anyhow::Result<()> {
    if !has_chain(container)? {
        return Ok(());
    }
    let peer = peer.to_string();
    for rule in link_rules(&peer) {
        while has_rule(container, &rule)? {
            let mut args = vec!["-D"];
            args.extend(rule);
            iptables(container, &args)?;
        }
    }
    Ok(())
}

/// Heal the link between `a` and `b` on `network`.
pub fn heal_link(a: &str, b: &str, network: &str) -> anyhow::Result<()> {
    heal(a, address(b, network)?)
}

/// Heal every link cut in the container: empty the chain (if there is one).
pub fn heal_all(container: &str) -> anyhow::Result<()> {
    if has_chain(container)? {
        iptables(container, &["-F", CHAIN])?;
    }
    Ok(())
}

/// The peers whose links are cut in the container, in the order they were cut.
pub fn cut_peers(container: &str) -> anyhow::Result<Vec<IpAddr>> {
    if !has_chain(container)? {
        return Ok(Vec::new());
    }
    let rules = iptables(container, &["-S", CHAIN])?;
    let mut peers: Vec<IpAddr> = Vec::new();
    for line in rules.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "-s") {
            let addr = words[at + 1].trim_end_matches("/32").trim_end_matches("/128");
            peers.push(addr.parse().map_err(|_| anyhow!("unexpected rule in {CHAIN}: {line}"))?);
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    //! On the machine's Docker: three containers of a tiny image (a static busybox, built from
    //! scratch here) on a network of their own; `a` serves HTTP, `b` and `c` ask it. Each fault
    //! must stop exactly the traffic it is meant to, and its undoing must bring it back. Needs
    //! Docker, root, nsenter, iptables and /bin/busybox (Debian: busybox-static); without them it
    //! prints why and passes, unless `CI` is set.

    use super::*;
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    fn missing_tools() -> Option<String> {
        let works = |program: &str, args: &[&str]| {
            Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
        };
        if !works("docker", &["info"]) {
            return Some("docker does not answer (`docker info` failed)".into());
        }
        if !works("id", &["-u"]) || run("id", &["-u"]).ok().as_deref() != Some("0") {
            return Some("cutting links needs root (nsenter into a container's network namespace)".into());
        }
        if !works("nsenter", &["--version"]) || !works("iptables", &["--version"]) {
            return Some("nsenter (util-linux) and iptables (Debian: iptables) are needed".into());
        }
        if !std::path::Path::new("/bin/busybox").exists() {
            return Some("no static busybox at /bin/busybox (Debian: busybox-static)".into());
        }
        None
    }

    /// The image, network and containers of the test; removed on drop.
    struct Lab {
        image: String,
        network: String,
        containers: Vec<String>,
        _dir: tempfile::TempDir,
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for c in &self.containers {
                let _ = docker(&["rm", "-f", c]);
            }
            let _ = docker(&["network", "rm", &self.network]);
            let _ = docker(&["rmi", "-f", &self.image]);
        }
    }

    /// Whether `from` gets an HTTP answer from port 8000 of `to` within 2 s.
    fn reaches(from: &str, to: IpAddr) -> bool {
        let mut child = Command::new("docker")
            .args(["exec", "-i", from, "/bin/busybox", "nc", "-w", "2", &to.to_string(), "8000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n");
        let deadline = Instant::now() + Duration::from_secs(4);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.")
    }

    /// Wait (up to 10 s) until `from` reaches `to` – after a start, a server takes a moment.
    fn reaches_soon(from: &str, to: IpAddr) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if reaches(from, to) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    #[test]
    fn each_fault_stops_the_traffic_it_targets_and_undoing_it_brings_it_back() {
        if let Some(why) = missing_tools() {
            assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
            eprintln!("skipping the container fault test: {why}");
            return;
        }
        let tag = std::process::id();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("bin/busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/busybox\"]\n",
        )
        .unwrap();
        let mut lab = Lab {
            image: format!("concord-chaos-probe:{tag}"),
            network: format!("concord-chaos-{tag}"),
            containers: Vec::new(),
            _dir: dir,
        };
        docker(&["build", "-q", "-t", &lab.image, &lab._dir.path().to_string_lossy()]).unwrap();
        // A subnet of its own: only then does Docker take a container back at a given address.
        let subnet = format!("10.58.{}.0/24", tag % 256);
        docker(&["network", "create", "--subnet", &subnet, &lab.network]).unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|n| format!("concord-chaos-{tag}-{n}"));
        lab.containers = vec![a.clone(), b.clone(), c.clone()];
        let net = lab.network.clone();
        docker(&[
            "run",
            "-d",
            "--name",
            &a,
            "--network",
            &net,
            &lab.image,
            "httpd",
            "-f",
            "-p",
            "8000",
            "-h",
            "/bin",
        ])
        .unwrap();
        for client in [&b, &c] {
            docker(&["run", "-d", "--name", client, "--network", &net, &lab.image, "sleep", "3600"]).unwrap();
        }
        let a_ip = address(&a, &net).unwrap();
        assert!(reaches_soon(&b, a_ip) && reaches_soon(&c, a_ip), "a serves b and c before any fault");

        // One link: b–a cut, c–a whole.
        cut_link(&a, &b, &net).unwrap();
        cut_link(&a, &b, &net).unwrap(); // twice is once
        assert_eq!(cut_peers(&a).unwrap(), vec![address(&b, &net).unwrap()]);
        assert!(!reaches(&b, a_ip), "the cut link b–a still carries traffic");
        assert!(reaches(&c, a_ip), "cutting b–a cut c–a too");
        heal_link(&a, &b, &net).unwrap();
        assert!(cut_peers(&a).unwrap().is_empty());
        assert!(reaches(&b, a_ip), "the healed link b–a carries nothing");
        cut_link(&a, &c, &net).unwrap();
        assert!(!reaches(&c, a_ip));
        heal_all(&a).unwrap();
        assert!(reaches(&c, a_ip), "heal_all left c–a cut");

        // Paused: connected, but nothing answers.
        pause(&a).unwrap();
        assert!(running(&a).unwrap());
        assert!(!reaches(&b, a_ip), "a paused container answered");
        unpause(&a).unwrap();
        assert!(reaches_soon(&b, a_ip), "a unpaused container does not answer");

        // Isolated, then back at the same address.
        disconnect(&a, &net).unwrap();
        assert!(address(&a, &net).is_err());
        assert!(!reaches(&b, a_ip), "a disconnected container answered");
        connect(&a, &net, Some(a_ip)).unwrap();
        assert_eq!(address(&a, &net).unwrap(), a_ip);
        assert!(reaches_soon(&b, a_ip), "a reconnected container does not answer");

        // Killed, then started: a fresh network namespace, no cut left over.
        cut_link(&a, &b, &net).unwrap();
        kill(&a).unwrap();
        assert!(!running(&a).unwrap());
        assert!(cut(&a, a_ip).is_err(), "cut a link of a stopped container");
        start(&a).unwrap();
        let a_ip = address(&a, &net).unwrap(); // perhaps another one
        assert!(reaches_soon(&b, a_ip), "a restarted container does not answer b");
        assert!(cut_peers(&a).unwrap().is_empty());
        stop(&a, 1).unwrap();
        assert!(!running(&a).unwrap());
    }
}

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
//! * [`exec_sh`] / [`exec_sh_detached`]: a script in the container's own busybox shell (the
//!   clock faults write libfaketime's offset file with it);
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
//! Not used by the binary yet: `concord chaos` is to call it. Its tests are
//! `crates/concord/tests/deploy_chaos.rs` (each fault on a small lab of busybox containers) and
//! `deploy_compose.rs` (a partition of the compose cluster's leader), which include this file.
#![allow(dead_code)]

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

/// Run `script` with the image's static busybox shell inside the running container, as the
/// container's user (`docker exec`); its standard output.
pub fn exec_sh(container: &str, script: &str) -> anyhow::Result<String> {
    docker(&["exec", container, "/bin/busybox", "sh", "-c", script])
}

/// Start `script` in the container's busybox shell and leave it running there (`docker exec -d`).
pub fn exec_sh_detached(container: &str, script: &str) -> anyhow::Result<()> {
    docker(&["exec", "-d", container, "/bin/busybox", "sh", "-c", script]).map(drop)
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

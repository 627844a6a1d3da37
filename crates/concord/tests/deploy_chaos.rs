//! On the machine's Docker: three containers of a tiny image (a static busybox, built from
//! scratch here) on a network of their own; `a` serves HTTP, `b` and `c` ask it. Each fault
//! must stop exactly the traffic it is meant to, and its undoing must bring it back. Needs
//! Docker, root, nsenter, iptables and /bin/busybox (Debian: busybox-static); without them it
//! prints why and passes, unless `CI` is set.
//!
//! The functions are `concord::cmd::chaos::docker`'s, included from the binary's source.

#[path = "../src/cmd/chaos/docker.rs"]
mod docker;

use docker::*;
use std::net::IpAddr;
use std::process::Command;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `program args`: its standard output, trimmed, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn docker(args: &[&str]) -> Result<String, String> {
    run("docker", args)
}

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

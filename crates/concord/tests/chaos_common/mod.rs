//! What the `concord chaos` tests share: running the command as a user does, checking that it
//! ended with a valid verdict, reading its run directory, and – for the docker backend – the
//! tools it needs and the image it builds.

#![allow(dead_code)] // each test binary uses its own part of this module

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A finished `concord chaos` run whose verdict was valid.
pub struct Run {
    pub out: PathBuf,
    pub results: Value,
    pub timeline: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A file of the run's directory, as text.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// The files must exist and not be empty.
    pub fn assert_written(&self, files: &[&str]) {
        for file in files {
            let len = std::fs::metadata(self.out.join(file)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0, "{file} written");
        }
    }

    /// The history's events (history.jsonl).
    pub fn history(&self) -> Vec<Value> {
        self.read("history.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// Run `concord chaos ARGS --out OUT` from the repository's root; it must exit 0, print
/// `valid: …` and write a valid results.json and a timeline.
pub fn chaos(what: &str, args: &[&str], out: &Path) -> Run {
    let started = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = Command::new(env!("CARGO_BIN_EXE_concord"))
        .current_dir(&repo)
        .arg("chaos")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "concord chaos ({what}) failed ({}):\n{stdout}\n{stderr}", run.status);
    assert!(stdout.starts_with("valid: "), "{stdout}");
    let mut run = Run { out: out.to_path_buf(), results: Value::Null, timeline: Vec::new(), stdout, stderr };
    run.results = serde_json::from_str(&run.read("results.json")).unwrap();
    run.timeline = serde_json::from_str(&run.read("timeline.json")).unwrap();
    assert_eq!(run.results["valid"], true, "{}", run.results);
    eprintln!("chaos run ({what}) in {:?}:\n{}", started.elapsed(), run.stderr);
    run
}

/// Why the docker backend cannot run here, if it cannot: Docker with docker-compose, a static
/// busybox (the image's shell and health check), and root with nsenter and iptables (partitions).
pub fn missing_docker_tools() -> Option<String> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
    };
    if !works("docker", &["info"]) {
        return Some("docker does not answer (`docker info` failed: no engine, or no permission)".into());
    }
    if !works("docker-compose", &["version"]) && !works("docker", &["compose", "version"]) {
        return Some("neither docker-compose nor `docker compose` is installed".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no static busybox at /bin/busybox (Debian: busybox-static)".into());
    }
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !uid.unwrap_or(false) {
        return Some("partitions need root (nsenter into a container's network namespace)".into());
    }
    if !works("nsenter", &["--version"]) || !works("iptables", &["--version"]) {
        return Some("partitions need nsenter (util-linux) and iptables".into());
    }
    None
}

/// Whether a docker test may run: where a tool is missing it says why and the test passes –
/// unless `CI` is set, where that is a failure.
pub fn docker_available() -> bool {
    match missing_docker_tools() {
        None => true,
        Some(why) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
            eprintln!("skipping the docker chaos test: {why}");
            false
        }
    }
}

/// A test's image tag, removed at the end (also when the test fails).
pub struct Image(pub String);

impl Image {
    pub fn new(name: &str) -> Image {
        Image(format!("concord:chaos-{name}-{}", std::process::id()))
    }
}

impl Image {
    /// `--backend docker --image TAG --subnet-prefix SUBNET`: a run of this image on the test's own
    /// subnet (each docker test file has one, so two files never share a network).
    pub fn docker_args<'a>(&'a self, subnet: &'a str) -> [&'a str; 6] {
        ["--backend", "docker", "--image", &self.0, "--subnet-prefix", subnet]
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

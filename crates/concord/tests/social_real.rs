//! Lab 1 on real clusters, as docs/labs/social.md runs it: `concord lab social --real --crash`
//! (the built binary, ports from `free_port_run`, a temporary data directory) starts a sharded
//! `concord up` with a cache tier and an eventual one for the likes, runs the same app as the
//! simulated lab, reads back what it wrote, and stops its clusters. Checked from its report:
//! most actions succeeded, fanned-out posts are in their followers' timelines on the real
//! cluster, every like counter lies between the likes acknowledged and those plus the ones of
//! unknown outcome (and no like counter is empty), the cache served hits, both shards took
//! requests, the crash run killed a leader and came back; and afterwards no process of the lab's
//! clusters is left. A second test runs `--faults cache-node,partition,single-node`: reads
//! still succeed while a cache node is dead (and miss), likes are acknowledged on both sides of
//! the likes cluster's partition and every node answers the acknowledged count after the heal,
//! the sharded cluster's node 1, cut off in the same window, serves no linearizable timeline read
//! while posts are still acknowledged, and after the heal every one of those posts is in its
//! author's list and its followers' timelines (none lost), and the single node serves nothing while killed. A third sends the command SIGINT while it
//! runs: the clusters go too.

use concord_server::testkit::free_port_run;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

/// The lab's cluster processes: those whose command line mentions its data directory (`up`, the
/// nodes) or the first node's RESP address (the cache nodes' `--db`).
fn lab_processes(data: &Path, base: u16) -> Vec<String> {
    let mut found = processes_mentioning(data.to_str().unwrap());
    found.extend(processes_mentioning(&format!("127.0.0.1:{base},")));
    found
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

fn ratio(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The ports the lab's clusters take from `--port-base`.
const PORTS: u16 = 90;

/// Run `concord lab social --real` with `args` in a temporary directory; check that its clusters
/// and their ports are gone afterwards; the report and the output directory.
fn run_lab(args: &[&str]) -> (Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let base = free_port_run(PORTS);
    let started = Instant::now();
    let output = Command::new(CONCORD)
        .args(["lab", "social", "--real"])
        .args(args)
        .args(["--port-base", &base.to_string()])
        .args(["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs = || {
        ["strong.log", "likes.log", "single.log"]
            .iter()
            .map(|l| format!("{l}:\n{}", std::fs::read_to_string(data.join(l)).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}\n{}", output.status, logs());
    println!("{stdout}\n{stderr}\n({:.1} s)", started.elapsed().as_secs_f64());

    // The clusters are gone, and so are their ports.
    let left = lab_processes(&data, base);
    assert!(left.is_empty(), "processes of the lab's clusters left running:\n{}", left.join("\n"));
    for port in base..base + PORTS {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still taken");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (report, dir)
}

/// What was read back after every run: the posts are in the timelines, the likes are counted.
fn check_read_back(report: &Value) {
    for back in report["readback"].as_array().unwrap() {
        let n = |f: &str| back[f].as_u64().unwrap_or_else(|| panic!("{f}: {back:#}"));
        assert!(n("posts_checked") > 0 && n("timelines_checked") > 0, "nothing read back: {back:#}");
        assert!(back["missing"].as_array().unwrap().is_empty(), "posts missing from timelines: {back:#}");
        assert!(back["read_errors"].as_array().unwrap().is_empty(), "{back:#}");
        assert_eq!(n("timelines_with_post") + n("timelines_trimmed"), n("timelines_checked"), "{back:#}");
        assert!(n("timelines_with_post") > 0, "{back:#}");
        assert!(n("counters_checked") > 0, "{back:#}");
        assert_eq!(n("counters_exact"), n("counters_checked"), "like counters off: {back:#}");
        let (acked, read) = (back["likes_acked"].as_i64().unwrap(), back["likes_read"].as_i64().unwrap());
        assert!(acked > 0 && read >= acked, "{back:#}");
    }
}

fn fault_words(run: &Value) -> Vec<String> {
    run["faults"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_social_lab_runs_on_real_clusters_and_leaves_nothing_behind() {
    let (report, dir) = run_lab(&["--crash", "--duration", "6"]);
    let out = dir.path().join("out");
    for file in ["report.json", "index.html", "baseline.svg", "baseline.png", "leader-crash.svg"] {
        assert!(std::fs::metadata(out.join(file)).is_ok_and(|m| m.len() > 200), "{file} missing or empty");
    }
    let summaries = report["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 2, "{report:#}");
    let base_run = &summaries[0];
    assert_eq!(base_run["name"], "baseline");

    // Every kind of action ran and succeeded mostly; all but a few actions succeeded (a loaded test
    // machine may push a few past the 1.5 s deadline).
    for k in base_run["latency"].as_array().unwrap() {
        let count = k["count"].as_u64().unwrap();
        assert!(count > 0, "no {} action ran: {base_run:#}", k["kind"]);
        assert!(ratio(&k["ok_fraction"]) >= 0.5, "{}: only {} ok: {base_run:#}", k["kind"], k["ok_fraction"]);
    }
    let actions = base_run["actions"].as_u64().unwrap();
    assert!(actions > 100, "{base_run:#}");
    assert!(base_run["actions_failed"].as_u64().unwrap() * 20 <= actions, "over 5 % failed: {base_run:#}");

    // Both shards took requests; the cache served hits.
    let shards: Vec<u64> =
        base_run["shard_requests"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(shards.len(), 2, "{base_run:#}");
    assert!(shards.iter().all(|&n| n > 10), "{shards:?}");
    assert!(base_run["cache_hits"].as_u64().unwrap() > 0, "the cache served no hit: {base_run:#}");
    assert!(base_run["cache_misses"].as_u64().unwrap() > 0, "{base_run:#}");

    // Follows ran; some crossed the two shards (two writes, no transaction between them).
    let n = |f: &str| base_run[f].as_u64().unwrap_or_else(|| panic!("{f}: {base_run:#}"));
    assert!(n("follows") > 0 && n("cross_shard_follows") <= n("follows"), "{base_run:#}");

    // Read back from the real clusters: the posts are in the timelines, the likes are counted.
    check_read_back(&report);

    // The crash run killed one shard's leader and restarted it; most actions still succeeded.
    let crash = &summaries[1];
    let faults = fault_words(crash);
    assert!(faults.first().is_some_and(|f| f.starts_with("kill -9 node")), "{faults:?}");
    assert!(
        faults.get(1).is_some_and(|f| f.starts_with("restart node") && !f.contains("failed")),
        "{faults:?}"
    );
    let actions = crash["actions"].as_u64().unwrap() as f64;
    let failed = crash["actions_failed"].as_u64().unwrap() as f64;
    assert!(failed / actions < 0.25, "{failed} of {actions} actions failed in the crash run: {crash:#}");
}

/// `--faults cache-node,partition,single-node`: each run measured as the guide's Part 8 says.
#[test]
fn the_real_lab_kills_a_cache_node_partitions_the_likes_and_compares_one_node() {
    let (report, _dir) = run_lab(&["--faults", "cache-node,partition,single-node", "--duration", "5"]);
    let summaries = report["summaries"].as_array().unwrap();
    let names: Vec<&str> = summaries.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "cache node dies", "partition", "single node", "single node crash"]);
    check_read_back(&report);

    // The dead cache node: its reads miss and fall through to the shards – they still succeed.
    let cache = &summaries[1];
    let faults = fault_words(cache);
    assert!(faults.iter().any(|f| f.starts_with("kill -9 cache node 1")), "{faults:?}");
    assert!(faults.iter().any(|f| f.starts_with("cache node 1 serves again")), "{faults:?}");
    let windows = cache["cache_windows"].as_array().unwrap();
    let window = |name: &str| windows.iter().find(|w| w["name"] == name).unwrap_or_else(|| panic!("{name}"));
    let (before, during) = (window("before"), window("during"));
    assert!(before["hits"].as_u64().unwrap() > 0, "{windows:#?}");
    assert!(during["misses"].as_u64().unwrap() > 0, "{windows:#?}");
    assert!(during["timeline_reads"].as_u64().unwrap() > 0, "{windows:#?}");
    assert!(
        ratio(&during["timeline_reads_ok"]) >= 0.9,
        "reads failed with the cache node dead: {windows:#?}"
    );

    // The partition: likes acknowledged on both sides; the nodes' answers diverged; after the heal
    // every node answers the same count, every acknowledged like in it.
    let p = &summaries[2]["partition"];
    assert!(p.is_object(), "no partition measured: {:#}", summaries[2]);
    assert!(p["likes_minority_side"].as_u64().unwrap() > 0, "{p:#}");
    assert!(p["likes_majority_side"].as_u64().unwrap() > 0, "{p:#}");
    assert!(p["max_divergence"].as_i64().unwrap() > 0, "the likes nodes never disagreed: {p:#}");
    assert_eq!(p["final_values"].as_array().unwrap().len(), 3, "{p:#}");
    assert_eq!(p["converged"], true, "{p:#}");

    // The sharded cluster, cut the same way: node 1 read straight at linearizable consistency
    // served nothing (every read redirected, refused or timed out); posts were acknowledged on the
    // other side meanwhile, and after the heal every one of them is in its author's list and in
    // the timelines of its followers – none lost.
    let sp = &summaries[2]["sharded_partition"];
    assert!(sp.is_object(), "the sharded cluster was not cut: {:#}", summaries[2]);
    let n = |f: &str| sp[f].as_u64().unwrap_or_else(|| panic!("{f}: {sp:#}"));
    assert_eq!(n("node"), 1, "{sp:#}");
    assert_eq!(sp["read_consistency"], "linearizable", "{sp:#}");
    assert!(n("minority_reads") > 0, "no read went to the cut-off node: {sp:#}");
    assert_eq!(n("minority_served"), 0, "the cut-off node served a linearizable read: {sp:#}");
    assert_eq!(
        n("minority_redirected") + n("minority_refused") + n("minority_timed_out"),
        n("minority_reads"),
        "{sp:#}"
    );
    let by_kind: u64 =
        sp["minority_answers"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_kind, n("minority_reads"), "{sp:#}");
    assert!(n("timeline_reads") > 0, "{sp:#}");
    assert!(n("posts_acked") > 0, "no post acknowledged during the partition: {sp:#}");
    assert!(n("posts_fanned_out") <= n("posts_acked"), "{sp:#}");
    assert_eq!(
        n("posts_in_author_list"),
        n("posts_acked"),
        "an acknowledged post is not in its author's list: {sp:#}"
    );
    assert!(n("timelines_checked") > 0, "no fan-out of the partition checked: {sp:#}");
    assert_eq!(n("timelines_with_post") + n("timelines_trimmed"), n("timelines_checked"), "{sp:#}");
    assert!(sp["lost"].as_array().unwrap().is_empty(), "acknowledged posts lost: {sp:#}");
    assert!(sp["read_errors"].as_array().unwrap().is_empty(), "{sp:#}");

    // One machine: it serves the same workload, and nothing at all while it is dead.
    let b = &report["benefits"];
    assert!(ratio(&b["single_ok_per_s"]) > 0.0 && ratio(&b["sharded_ok_per_s"]) > 0.0, "{b:#}");
    assert!(ratio(&b["single_p99_ms"]) > 0.0, "{b:#}");
    // Dead, it serves nothing: no action started after the kill succeeded before the restart
    // (those that succeeded were retried until the node was back, within the 1.5 s deadline).
    assert_eq!(b["single_ok_while_down"], 0, "the single node served while killed: {b:#}");
    assert!(ratio(&b["single_failed_in_crash"]) > 0.5, "{b:#}");
    let crash = fault_words(&summaries[4]);
    assert!(crash.first().is_some_and(|f| f == "kill -9 node 1"), "{crash:?}");
    assert!(
        crash.get(1).is_some_and(|f| f.starts_with("restart node 1") && !f.contains("failed")),
        "{crash:?}"
    );
}

#[test]
fn ctrl_c_stops_the_labs_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = free_port_run(PORTS);
    let mut lab = Command::new(CONCORD)
        .args(["lab", "social", "--real", "--duration", "30"])
        .args(["--port-base", &base.to_string()])
        .args(["--data", data.to_str().unwrap(), "--out", dir.path().join("out").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the sharded cluster's first node answers (its nodes are running).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", base)).is_err() {
        assert!(lab.try_wait().unwrap().is_none(), "the lab exited early");
        assert!(Instant::now() < deadline, "the lab's cluster never listened on {base}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(lab_processes(&data, base).len() >= 3, "{:?}", lab_processes(&data, base));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(lab.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = lab.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the lab did not exit within 30 s of SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    let left = lab_processes(&data, base);
    assert!(left.is_empty(), "processes left after SIGINT:\n{}", left.join("\n"));
    assert!(!Path::new(&dir.path().join("out/report.json")).exists(), "an interrupted run wrote a report");
}

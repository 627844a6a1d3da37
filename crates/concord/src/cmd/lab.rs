//! `concord lab`: the labs – experiments run in the simulator, each writing a report.
//!
//! `concord lab raft-elections` repeats the Raft paper's election-timeout experiment (Figure 16):
//! it crashes the leader of a five-node cluster over and over, for several ranges of the election
//! timeout, prints the distribution of the time without a leader per range and the paper's numbers
//! beside ours, and writes CDF plots (SVG and PNG), `report.json` and `index.html` into the output
//! directory; `--export-worst DIR` writes each range's worst trial as a trace for `concord view`.
//! Guide: docs/labs/raft-elections.md.
//!
//! `concord lab eventual` measures eventual consistency on Concord's Dynamo (replica timelines,
//! PBS staleness curves, anomalies, Raft for comparison) and writes the same kind of report.
//!
//! `concord lab cache` measures the cache tier – hit ratio per eviction policy on Zipf traces,
//! database load and latency with and without the tier, the thundering herd with and without
//! leases, staleness with and without invalidation and through a partition – and writes the same
//! kind of report. Guide: docs/labs/cache.md.
//!
//! `concord lab consensus` runs Raft and Multi-Paxos side by side on the same workload and faults
//! (cost per command, leader crash, a flapping link, duelling proposers, log holes) and writes the
//! same kind of report. Guide: docs/labs/consensus.md.
//!
//! `concord lab social` (Lab 1) runs a small social platform – posts, follows, hybrid timelines,
//! CRDT likes, a cache tier – on the simulated sharded store at 100 000 users and measures what
//! its distribution costs (a celebrity's post, a leader crash, a partition, a dead cache node,
//! cross-shard follows) and buys (throughput and availability against one machine). Guide:
//! docs/labs/social.md. With `--real` it runs the same app, smaller, against real local clusters
//! it starts (`concord up`): [`social_real`].

use clap::{Args, Subcommand};
use concord_lab::raft_elections::{export_worst, write_report, TimeoutRange};
use concord_lab::{run_raft_elections, ElectionOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub mod social_real;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub lab: Lab,
}

#[derive(Subcommand, Debug)]
pub enum Lab {
    /// The election-timeout experiment of the Raft paper (Figure 16).
    ///
    /// Example: concord lab raft-elections --trials 1000 --out out/raft-elections
    RaftElections(RaftElectionsArgs),
    /// Eventual consistency on Concord's Dynamo: replica timelines through a partition, PBS
    /// staleness curves (WARS model vs the real code), anomalies counted by the checkers, and the
    /// same workload on Raft. Guide: docs/labs/eventual.md.
    ///
    /// Example: concord lab eventual --out out/eventual --seeds 3
    /// One part: concord lab eventual --part 2 --authors-estimator   (1 propagation, 2 PBS model
    /// vs the paper, 3 simulator vs model, 4 anomalies, 5 Raft contrast)
    Eventual(EventualArgs),
    /// The cache tier: hit ratio vs cache size per eviction policy (LRU, S3-FIFO) on Zipf traces;
    /// the database's load and read latency with and without the tier; the thundering herd with
    /// and without leases; staleness with and without invalidation and through a cache–database
    /// partition. Guide: docs/labs/cache.md.
    ///
    /// Example: concord lab cache --out out/cache
    ///
    /// One part: concord lab cache --part 3   (1 hit ratio vs cache size, 2 database load and
    /// latency, 3 the herd, 4 staleness)
    Cache(CacheArgs),
    /// Raft and Multi-Paxos side by side on the same workload and faults: messages, bytes and
    /// latency per command; time without a leader after a crash; a flapping link; duelling
    /// proposers with and without back-off; log holes after failover. Guide: docs/labs/consensus.md.
    ///
    /// Example: concord lab consensus --out out/consensus --seeds 5
    ///
    /// One part: concord lab consensus --part 4   (1 steady state, 2 leader crash, 3 flapping
    /// link, 4 duelling proposers, 5 log holes)
    Consensus(ConsensusArgs),
    /// Lab 1: a social platform on Concord – posts and the follow graph on the sharded store,
    /// home timelines fanned out on write except for celebrities (merged on read, through the
    /// cache tier), likes as CRDT counters on the eventual store – at 100 000 users in the
    /// simulator: a celebrity's post, a shard leader's crash, a partition, a dead cache node,
    /// cross-shard follows, and the same app on one machine. Guide: docs/labs/social.md.
    ///
    /// Example: concord lab social --out out/social
    ///
    /// Change one design decision: --fanout-threshold 100000, --no-cache, --shards 2
    ///
    /// On real local clusters, the same app code (it starts and stops them itself):
    /// concord lab social --real --out out/social-real
    Social(SocialArgs),
}

#[derive(Args, Debug)]
pub struct SocialArgs {
    /// Where to write the plots (SVG, PNG), report.json and index.html.
    #[arg(long, default_value = "out/social")]
    pub out: PathBuf,
    /// The seed of the users and every simulation (same seed, same numbers).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A small version: 2 000 users, 8 s runs (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Users on the platform [default: 100000, --quick 2000].
    #[arg(long)]
    pub users: Option<u32>,
    /// Accounts with more followers than this are merged on read instead of fanned out on write
    /// [default: 2000, --quick 100]. A value above every follower count fans out all posts.
    #[arg(long)]
    pub fanout_threshold: Option<usize>,
    /// Timeline writes per fan-out request: the fan-out service groups a post's writes by shard
    /// and pipelines them, this many per request [default: 500]. 1: one request per follower.
    #[arg(long)]
    pub fanout_batch: Option<usize>,
    /// No cache tier: celebrities' post lists are read from their shards.
    #[arg(long)]
    pub no_cache: bool,
    /// Shards of the strong store [default: 4].
    #[arg(long)]
    pub shards: Option<u32>,
    /// Machines of the sharded deployment [default: 5].
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Virtual seconds per run [default: 30, --quick 8].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Mean user actions per second [default: 300, --quick 120, --real 40].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Run the baseline on real local clusters instead of the simulator: `concord up --shards`
    /// with a cache tier and `concord up --mode eventual` for the likes, started (and stopped) by
    /// this command as child processes, with the same app code and users model. Smaller: 300
    /// users, 6 s of wall-clock time, 3 machines, 2 shards, 2 cache nodes by default.
    #[arg(long)]
    pub real: bool,
    /// --real: also kill -9 the leader of one shard at a third of a second run and restart it
    /// (`concord restart`) at two thirds (the same as --faults crash).
    #[arg(long, requires = "real")]
    pub crash: bool,
    /// --real: more runs after the baseline, each with its fault (comma-separated): crash (a
    /// shard leader killed and restarted), cache-node (cache node 1 killed at half time;
    /// `concord up` starts it again, empty), partition (likes node 1 and sharded node 1 each cut
    /// from their nodes 2 and 3 for the middle third; both clusters then run with
    /// --allow-fault-injection), single-node (the baseline on a one-node `concord up`
    /// beside the sharded one, then that node killed and restarted).
    #[arg(long, value_delimiter = ',', value_enum, requires = "real")]
    pub faults: Vec<RealFault>,
    /// --real: the lab's clusters use the 90 ports from this one (none of `concord up`'s defaults).
    #[arg(long, default_value_t = 17300, requires = "real")]
    pub port_base: u16,
    /// --real: where the lab's clusters keep their data [default: a temporary directory, removed
    /// afterwards].
    #[arg(long, requires = "real")]
    pub data: Option<PathBuf>,
    /// --real against clusters you started: the HTTP address of a node of the sharded cluster
    /// (its shard map), with --strong, --likes and optionally --cache-addrs.
    #[arg(long, requires_all = ["real", "strong", "likes"])]
    pub strong_http: Option<SocketAddr>,
    /// The RESP addresses of the sharded cluster's nodes, node 1 first (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "strong_http")]
    pub strong: Vec<SocketAddr>,
    /// The RESP addresses of the cache nodes in front of it (comma-separated; none: cached reads
    /// go to the shards).
    #[arg(long, value_delimiter = ',', requires = "strong_http")]
    pub cache_addrs: Vec<SocketAddr>,
    /// The RESP addresses of the eventual cluster's nodes, for the likes (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "strong_http")]
    pub likes: Vec<SocketAddr>,
}

/// A fault of `concord lab social --real --faults`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealFault {
    Crash,
    CacheNode,
    Partition,
    SingleNode,
}

#[derive(Args, Debug)]
pub struct ConsensusArgs {
    /// Where to write the plots (SVG, PNG), report.json and index.html.
    #[arg(long, default_value = "out/consensus")]
    pub out: PathBuf,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulations per variant, each with its own seed (pooled) [default: 5, --quick 2].
    #[arg(long)]
    pub seeds: Option<u64>,
    /// A small version: shorter runs, fewer crashes (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Run one part only: 1 steady state, 2 leader crash, 3 flapping link, 4 duelling proposers,
    /// 5 log holes after failover.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=concord_lab::consensus::PARTS as i64))]
    pub part: Option<u8>,
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Where to write the plots (SVG, PNG), report.json and index.html.
    #[arg(long, default_value = "out/cache")]
    pub out: PathBuf,
    /// The seed of every trace and simulation (same seed, same numbers).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A small version: smaller traces, fewer sizes, shorter simulations (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Run one part only: 1 hit ratio vs cache size, 2 database load and latency with and without
    /// the tier, 3 the thundering herd, 4 staleness.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=concord_lab::cache::PARTS as i64))]
    pub part: Option<u8>,
}

#[derive(Args, Debug)]
pub struct EventualArgs {
    /// Where to write the plots (SVG, PNG), report.json, index.html and the latency CDF files.
    #[arg(long, default_value = "out/eventual")]
    pub out: PathBuf,
    /// Seeds per simulation (pooled); the first is --seed.
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A small version: two latency environments, shorter runs, one seed (seconds, not minutes).
    #[arg(long)]
    pub quick: bool,
    /// Run one part only: 1 propagation, 2 PBS model vs the paper, 3 simulator vs model,
    /// 4 anomalies, 5 Raft contrast.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub part: Option<u8>,
    /// WARS Monte Carlo trials per model curve (default: 200000, --quick 20000).
    #[arg(long)]
    pub wars_trials: Option<usize>,
    /// Also estimate the times to 99.9 % as the paper's authors did: fresh trials at every t,
    /// the first t whose estimate reaches 99.9 % (slow: seconds per curve in a release build).
    #[arg(long)]
    pub authors_estimator: bool,
    /// Fresh trials per t for --authors-estimator (the paper's Table 4: 50000).
    #[arg(long, default_value_t = 50_000)]
    pub authors_trials: usize,
}

#[derive(Args, Debug)]
pub struct RaftElectionsArgs {
    /// Where to write the plots (SVG, PNG), report.json and index.html.
    #[arg(long, default_value = "out/raft-elections")]
    pub out: PathBuf,
    /// Leader crashes per timeout range and seed (the paper: 1000).
    #[arg(long, default_value_t = 1000)]
    pub trials: usize,
    /// Leader crashes for the zero-width range 150–150 ms (the paper: 100; its split votes are slow).
    #[arg(long, default_value_t = 100)]
    pub trials_zero_width: usize,
    /// The first seed; each range runs its own simulations seeded from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulations per range, each with its own seed (the report gives the spread across them).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Timeout ranges to run, in milliseconds, e.g. `150-155,150-200` (default: all of the paper's).
    #[arg(long, value_delimiter = ',', value_parser = parse_range)]
    pub ranges: Vec<TimeoutRange>,
    /// Lowest one-way network latency (the fixed delay), in milliseconds [default: the paper model's].
    #[arg(long)]
    pub latency_min_ms: Option<f64>,
    /// Highest one-way network latency (fixed delay plus the largest jitter), in milliseconds.
    #[arg(long)]
    pub latency_max_ms: Option<f64>,
    /// Each disk sync, in milliseconds (default 0: instantaneous disks). The paper's 15 ms
    /// "broadcast time" was a round trip plus a disk write: 8.5 ms here with the default network.
    #[arg(long, default_value_t = 0.0)]
    pub disk_sync_ms: f64,
    /// All servers with equal logs (the paper gave two of the four survivors a shorter log).
    #[arg(long)]
    pub same_logs: bool,
    /// Campaign with pre-vote (dissertation §9.6; the paper's experiment had none).
    #[arg(long)]
    pub pre_vote: bool,
    /// A trial without a new leader after this many seconds is recorded as above the limit.
    #[arg(long, default_value_t = 60.0)]
    pub limit_secs: f64,
    /// Write each range's worst trial as a trace `concord view` opens (DIR/worst-MIN-MAX.jsonl).
    #[arg(long, value_name = "DIR")]
    pub export_worst: Option<PathBuf>,
}

/// `150-155` → 150–155 ms.
fn parse_range(text: &str) -> Result<TimeoutRange, String> {
    let (min, max) =
        text.split_once('-').ok_or_else(|| format!("{text:?}: expected MIN-MAX in ms, e.g. 150-155"))?;
    let ms =
        |s: &str| s.trim().parse::<u64>().map_err(|_| format!("{text:?}: {s:?} is not a whole number of ms"));
    let (min, max) = (ms(min)?, ms(max)?);
    if min == 0 || max < min {
        return Err(format!("{text:?}: need 0 < MIN <= MAX"));
    }
    Ok(TimeoutRange::new(min, max))
}

pub fn run(args: &LabArgs) -> anyhow::Result<ExitCode> {
    match &args.lab {
        Lab::RaftElections(a) => raft_elections(a),
        Lab::Eventual(a) => eventual(a),
        Lab::Cache(a) => cache(a),
        Lab::Consensus(a) => consensus(a),
        Lab::Social(a) => social(a),
    }
}

fn social(args: &SocialArgs) -> anyhow::Result<ExitCode> {
    if args.real {
        return social_on_real_clusters(args);
    }
    let mut o = if args.quick {
        concord_lab::SocialOptions::quick(args.seed)
    } else {
        concord_lab::SocialOptions::full(args.seed)
    };
    if let Some(users) = args.users {
        o.users = users;
    }
    if let Some(t) = args.fanout_threshold {
        o.fanout_threshold = t;
    }
    if let Some(b) = args.fanout_batch {
        o.fanout_batch = b;
    }
    o.cache = !args.no_cache;
    if let Some(shards) = args.shards {
        o.shards = shards;
    }
    if let Some(nodes) = args.nodes {
        o.nodes = nodes;
    }
    if let Some(d) = args.duration {
        o.duration_s = d;
    }
    if let Some(rate) = args.rate {
        o.rate_per_s = rate;
    }
    let wall = Instant::now();
    let report = concord_lab::run_social(&o, &|line: &str| eprintln!("{line}"))?;
    print!("{}", concord_lab::social::report::text_summary(&report));
    println!("ran {} simulations in {:.1} s", report.runs.len(), wall.elapsed().as_secs_f64());
    for path in concord_lab::social::write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `concord lab social --real`.
fn social_on_real_clusters(args: &SocialArgs) -> anyhow::Result<ExitCode> {
    use concord_lab::social::live::{text_summary, write_live_report, LiveRun};
    let mut o = concord_lab::SocialOptions {
        users: args.users.unwrap_or(300),
        following: (3, 20),
        duration_s: args.duration.unwrap_or(6.0),
        rate_per_s: args.rate.unwrap_or(40.0),
        nodes: args.nodes.unwrap_or(3),
        shards: args.shards.unwrap_or(2),
        replicas: 3,
        cache_nodes: 2,
        fanout_threshold: args.fanout_threshold.unwrap_or(25),
        cache: !args.no_cache,
        quick: true,
        ..concord_lab::SocialOptions::quick(args.seed)
    };
    o.replicas = o.replicas.min(o.nodes as usize);
    o.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(o.nodes <= 9 && o.shards <= 64, "--real: at most 9 nodes (the port layout)");
    let mut faults = args.faults.clone();
    if args.crash {
        faults.push(RealFault::Crash);
    }
    anyhow::ensure!(
        !(faults.contains(&RealFault::SingleNode) && args.strong_http.is_some()),
        "--faults single-node: the lab starts the single-node deployment itself (not with --strong-http)"
    );
    anyhow::ensure!(
        !(faults.contains(&RealFault::Partition) && args.strong_http.is_some()),
        "--faults partition: the lab cuts its own clusters (not with --strong-http)"
    );
    anyhow::ensure!(
        !(faults.contains(&RealFault::CacheNode) && (args.no_cache || args.strong_http.is_some())),
        "--faults cache-node: needs the lab's own cache tier (not --no-cache, not --strong-http)"
    );
    // In a fixed order, whatever the order given: the crash, the cache node, the single node.
    let mut runs = vec![LiveRun::Baseline];
    for (fault, added) in [
        (RealFault::Crash, &[LiveRun::LeaderCrash][..]),
        (RealFault::CacheNode, &[LiveRun::CacheNodeDies][..]),
        (RealFault::Partition, &[LiveRun::Partition][..]),
        (RealFault::SingleNode, &[LiveRun::SingleNode, LiveRun::SingleNodeCrash][..]),
    ] {
        if faults.contains(&fault) {
            runs.extend_from_slice(added);
        }
    }
    let existing = args.strong_http.map(|http| social_real::Endpoints {
        strong: args.strong.clone(),
        strong_http: http,
        cache: if o.cache { args.cache_addrs.clone() } else { Vec::new() },
        likes: args.likes.clone(),
        likes_http: Vec::new(),
        likes_data: None,
        strong_nodes_http: Vec::new(),
        strong_data: None,
    });
    let plan = social_real::RealPlan {
        layout: social_real::Layout {
            nodes: o.nodes,
            shards: o.shards,
            replicas: o.replicas,
            cache_nodes: if o.cache { o.cache_nodes } else { 0 },
            likes_nodes: 3,
            port_base: args.port_base,
            single: faults.contains(&RealFault::SingleNode),
            likes_faults: faults.contains(&RealFault::Partition),
            strong_faults: faults.contains(&RealFault::Partition),
        },
        options: o,
        existing,
        data: args.data.clone(),
        runs,
    };
    let wall = Instant::now();
    let report = social_real::run(&plan, &|line: &str| eprintln!("{line}"))?;
    print!("{}", text_summary(&report));
    println!(
        "ran {} run(s) on real clusters in {:.1} s",
        report.summaries.len(),
        wall.elapsed().as_secs_f64()
    );
    for path in write_live_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn consensus(args: &ConsensusArgs) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    let mut options = if args.quick {
        concord_lab::ConsensusOptions::quick(args.seed)
    } else {
        concord_lab::ConsensusOptions::full(args.seed, 5)
    };
    if let Some(seeds) = args.seeds {
        anyhow::ensure!(seeds >= 1, "--seeds must be at least 1");
        options.seeds = seeds;
    }
    if let Some(part) = args.part {
        options = options.only_part(part as usize);
    }
    let bar = ProgressBar::new(options.jobs() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} simulations, {elapsed} – {msg}")
            .expect("a valid template"),
    );
    let wall = Instant::now();
    let report = concord_lab::run_consensus(&options, &|done: &str| {
        bar.set_message(done.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print!("{}", report.summary());
    println!("ran {} simulations in {:.1} s", options.jobs(), wall.elapsed().as_secs_f64());
    for path in concord_lab::consensus::write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn cache(args: &CacheArgs) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    let mut options = if args.quick {
        concord_lab::CacheLabOptions::quick(args.seed)
    } else {
        concord_lab::CacheLabOptions::full(args.seed)
    };
    if let Some(part) = args.part {
        options = options.only_part(part as usize);
    }
    let bar = ProgressBar::new(options.jobs() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs, {elapsed} – {msg}")
            .expect("a valid template"),
    );
    let wall = Instant::now();
    let report = concord_lab::run_cache(&options, &|done: &str| {
        bar.set_message(done.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print!("{}", report.summary());
    println!("ran {} jobs in {:.1} s", options.jobs(), wall.elapsed().as_secs_f64());
    for path in concord_lab::cache::write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn eventual(args: &EventualArgs) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let mut options = if args.quick {
        concord_lab::EventualOptions::quick(args.seed)
    } else {
        concord_lab::EventualOptions::full(args.seed, args.seeds)
    };
    if let Some(part) = args.part {
        options = options.only_part(part as usize);
    }
    if let Some(trials) = args.wars_trials {
        anyhow::ensure!(trials >= 1000, "--wars-trials must be at least 1000");
        options.wars_trials = trials;
    }
    if args.authors_estimator {
        anyhow::ensure!(args.authors_trials >= 1000, "--authors-trials must be at least 1000");
        options.authors =
            Some(concord_lab::eventual::pbs::AuthorsEstimator { trials_per_t: args.authors_trials });
    }
    let bar = ProgressBar::new(options.jobs() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} simulations, {elapsed} – {msg}")
            .expect("a valid template"),
    );
    let wall = Instant::now();
    let report = concord_lab::run_eventual(&options, &args.out, &|done: &str| {
        bar.set_message(done.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print!("{}", report.summary());
    println!(
        "ran {} jobs (simulations and model runs) in {:.1} s",
        options.jobs(),
        wall.elapsed().as_secs_f64()
    );
    for path in concord_lab::eventual::write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn raft_elections(args: &RaftElectionsArgs) -> anyhow::Result<ExitCode> {
    let paper = ElectionOptions::paper();
    let ms = |v: Option<f64>, default: Duration| v.map_or(default, |v| Duration::from_secs_f64(v / 1e3));
    let latency_min = ms(args.latency_min_ms, paper.latency_min);
    let latency_max = ms(args.latency_max_ms, paper.latency_max);
    anyhow::ensure!(
        !latency_min.is_zero() && latency_min <= latency_max,
        "need 0 < --latency-min-ms <= --latency-max-ms"
    );
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    anyhow::ensure!(args.limit_secs > 0.0, "--limit-secs must be positive");
    let options = ElectionOptions {
        trials: args.trials,
        trials_zero_width: args.trials_zero_width,
        seed: args.seed,
        seeds: args.seeds,
        ranges: if args.ranges.is_empty() { paper.ranges.clone() } else { args.ranges.clone() },
        pre_vote: args.pre_vote,
        latency_min,
        latency_max,
        disk_sync: Duration::from_secs_f64(args.disk_sync_ms.max(0.0) / 1e3),
        differing_logs: !args.same_logs,
        give_up_after: Duration::from_secs_f64(args.limit_secs),
    };
    let wall = Instant::now();
    let report = run_raft_elections(&options)?;
    println!(
        "Raft elections: 5 nodes, one-way latency {:.2}–{:.2} ms (round trip ≈ {:.1} ms), disk sync {}, {} logs, pre-vote {}, seed {}, {} seed(s)",
        report.latency_ms.0,
        report.latency_ms.1,
        options.round_trip().as_secs_f64() * 1e3,
        if options.disk_sync.is_zero() {
            "none".to_string()
        } else {
            format!("{:.1} ms", options.disk_sync.as_secs_f64() * 1e3)
        },
        if report.differing_logs { "different" } else { "equal" },
        if report.pre_vote { "on" } else { "off" },
        report.seed,
        options.seeds,
    );
    print!("{}", report.table());
    if !report.comparisons().is_empty() {
        println!("\nThe paper's numbers (§9.3) beside ours:");
        print!("{}", report.comparison_table());
    }
    let virtual_secs: f64 = report.ranges.iter().map(|r| r.virtual_secs()).sum();
    println!("simulated {virtual_secs:.0} s of virtual time in {:.1} s", wall.elapsed().as_secs_f64());
    for path in write_report(&report, &args.out)? {
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.export_worst {
        for path in export_worst(&options, &report, dir)? {
            println!("wrote {} (open it with: concord view {})", path.display(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

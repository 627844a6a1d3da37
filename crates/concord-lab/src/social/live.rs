//! The lab on another store than the simulator: the same users, arrival process and app code
//! ([`super::run_on`]), a smaller report.
//!
//! `concord lab social --real` (the `concord` crate: it starts real `concord up` clusters and
//! implements [`LabStore`] over their Redis doors) runs the **baseline** here, and optionally
//! ([`LiveRun`]) the **leader crash**, a **dead cache node**, a **partition** (of the likes cluster
//! and of the sharded cluster holding posts and timelines), and the **single node** (the baseline on a one-node deployment, then that node killed). What
//! differs from a simulated run: time is wall-clock time (the run lasts as long as it says), the
//! machines' CPU is real (and shared by every process on the computer, the lab's client
//! included), nothing is deterministic, and only the faults the store can inject exist. The report
//! therefore states what a client can measure: latency and success per action, requests and keys
//! per shard, the cache's hits before, during and after a cache node's death, each likes node's
//! answer during and after a partition, what the cut-off node of the sharded cluster answered and
//! whether the posts acknowledged during the partition are all in the timelines after the heal
//! ([`ShardedPartition`]), the errors by message, timelines that missed a post, and the sharded
//! deployment beside the single node ([`LiveBenefits`]).

use super::app::Kind;
use super::model::Users;
use super::report::{self, KindStats, STALE_AFTER_MS};
use super::store::SimConfig;
use super::{baseline_spec, run_on, Fault, LabStore, RunResult, SocialOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The runs a live lab can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveRun {
    Baseline,
    /// The leader of one shard is killed at a third of the run and restarted at two thirds.
    LeaderCrash,
    /// Cache node 1 is killed (`kill -9`) at half time; `concord up` starts it again, empty.
    CacheNodeDies,
    /// Likes node 1 is cut from nodes 2 and 3 for the middle third (half the likes on the hot
    /// post), then healed; node 1 of the sharded cluster in the same window.
    Partition,
    /// The baseline on the single-node deployment (one machine, one shard, one replica, no
    /// cache; the likes on it too).
    SingleNode,
    /// That machine killed at a third of the run and restarted at two thirds.
    SingleNodeCrash,
}

impl LiveRun {
    pub fn name(self) -> &'static str {
        match self {
            LiveRun::Baseline => "baseline",
            LiveRun::LeaderCrash => "leader crash",
            LiveRun::CacheNodeDies => "cache node dies",
            LiveRun::Partition => "partition",
            LiveRun::SingleNode => "single node",
            LiveRun::SingleNodeCrash => "single node crash",
        }
    }

    /// Whether the run goes to the single-node deployment.
    pub fn single_node(self) -> bool {
        matches!(self, LiveRun::SingleNode | LiveRun::SingleNodeCrash)
    }

    fn faults(self, duration_s: f64) -> Vec<(f64, Fault)> {
        let d = duration_s;
        match self {
            LiveRun::Baseline | LiveRun::SingleNode => Vec::new(),
            LiveRun::LeaderCrash => vec![(d / 3.0, Fault::CrashShardLeader), (2.0 * d / 3.0, Fault::Restart)],
            LiveRun::CacheNodeDies => vec![(d / 2.0, Fault::KillCacheNode(0))],
            LiveRun::Partition => vec![
                (d / 3.0, Fault::Partition(vec![PARTITION_MINORITY.to_vec(), vec![2, 3]])),
                (2.0 * d / 3.0, Fault::Heal),
            ],
            LiveRun::SingleNodeCrash => vec![(d / 3.0, Fault::CrashNode(1)), (2.0 * d / 3.0, Fault::Restart)],
        }
    }
}

/// The likes node the partition run cuts off (the others stay together).
const PARTITION_MINORITY: [u32; 1] = [1];
/// After a partition run's workload and drain: how long the likes nodes' answers are still
/// sampled (anti-entropy runs every second).
const PARTITION_SETTLE_MS: f64 = 3_000.0;

/// The partition run: likes on both sides of a cut likes cluster, and how the counters merge.
#[derive(Clone, Debug, Serialize)]
pub struct LivePartition {
    pub partition_ms: f64,
    pub heal_ms: f64,
    /// Like actions that succeeded during the partition, by users whose session is pinned to the
    /// cut-off node and by the others.
    pub likes_minority_side: usize,
    pub likes_majority_side: usize,
    /// The hot post's counter as each likes node answers it alone (`CONSISTENCY ONE`), sampled
    /// every 250 ms: the largest difference between two nodes during the partition, and the
    /// last sample before the heal.
    pub max_divergence: i64,
    pub values_before_heal: Vec<(u32, i64)>,
    /// The last sample, after the workload stopped and anti-entropy had 3 s; the hot post's likes
    /// acknowledged (and of unknown outcome).
    pub final_values: Vec<(u32, i64)>,
    pub hot_likes_acked: i64,
    pub hot_likes_unknown: i64,
    /// Every node answers the same value, between the acknowledged likes and those plus the
    /// unknown ones (no acknowledged like lost: the PN-counters merged).
    pub converged: bool,
}

/// The partition run's sharded cluster: node [`ShardedPartition::node`] cut from the others in
/// the likes' window. Filled in two steps: the app's side from the run ([`sharded_partition`]),
/// then by the store – the cut-off node's answers and the read-back after the heal.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShardedPartition {
    pub node: u32,
    pub partition_ms: f64,
    pub heal_ms: f64,
    /// Reads of a timeline of each shard sent straight to the cut-off node every 250 ms during the
    /// partition, on a connection switched to the consistency the app reads at (`read_consistency`),
    /// redirects not followed – what a client that reaches only that node sees: answered with
    /// data (`served`: at linearizable consistency it must not be), sent to another node
    /// (`-MOVED`), refused (an error), or no answer within 500 ms.
    pub read_consistency: String,
    pub minority_reads: usize,
    pub minority_served: usize,
    pub minority_redirected: usize,
    pub minority_refused: usize,
    pub minority_timed_out: usize,
    /// Those answers by kind (`-MOVED to node 2`, the error's first word, `timed out`).
    pub minority_answers: BTreeMap<String, u64>,
    /// The app's timeline reads started during the partition (its client reaches every node and
    /// follows redirects to the majority side): how many, the fraction that succeeded, and the
    /// fraction of those missing a post acknowledged more than [`STALE_AFTER_MS`] before.
    pub timeline_reads: usize,
    pub timeline_reads_ok: f64,
    pub timeline_reads_stale: f64,
    /// Posts acknowledged during the partition; of them, those fanned out with every timeline
    /// write acknowledged, and the timeline writes that failed (the app saw those fail).
    pub posts_acked: usize,
    pub posts_fanned_out: usize,
    pub fanout_writes_failed: usize,
    /// Read back after the heal (linearizable, through the shard leaders): the acknowledged posts
    /// found in their author's `posts:` list (or trimmed past), and the timelines of their
    /// followers (at most 40 a post) holding the post, trimmed past it, or missing it.
    pub posts_in_author_list: usize,
    pub timelines_checked: usize,
    pub timelines_with_post: usize,
    pub timelines_trimmed: usize,
    /// Acknowledged writes not found after the heal: `(key, post)`. Empty: none lost.
    pub lost: Vec<(String, u64)>,
    pub read_errors: Vec<String>,
}

impl ShardedPartition {
    /// Every acknowledged post in its author's list and in every checked timeline, all read.
    pub fn none_lost(&self) -> bool {
        self.lost.is_empty()
            && self.read_errors.is_empty()
            && self.posts_in_author_list == self.posts_acked
            && self.timelines_with_post + self.timelines_trimmed == self.timelines_checked
    }

    fn minority_words(&self) -> String {
        let kinds: Vec<String> = self.minority_answers.iter().map(|(k, n)| format!("{n}× {k}")).collect();
        format!(
            "{} {} reads straight to node {}: {} served, {} redirected, {} refused, {} timed out ({})",
            self.minority_reads,
            self.read_consistency,
            self.node,
            self.minority_served,
            self.minority_redirected,
            self.minority_refused,
            self.minority_timed_out,
            kinds.join(", ")
        )
    }

    fn words(&self) -> String {
        format!(
            "sharded node {} cut ({:.1}–{:.1} s): {}; the app's timeline reads {} ok {:.1} %, stale {:.2} %; \
             posts acknowledged {} ({} fanned out in full, {} timeline writes failed); after the heal {} of them \
             in their author's list, {} follower timelines: {} hold the post, {} trimmed past it, {} lost{}: {}",
            self.node,
            self.partition_ms / 1e3,
            self.heal_ms / 1e3,
            self.minority_words(),
            self.timeline_reads,
            100.0 * self.timeline_reads_ok,
            100.0 * self.timeline_reads_stale,
            self.posts_acked,
            self.posts_fanned_out,
            self.fanout_writes_failed,
            self.posts_in_author_list,
            self.timelines_checked,
            self.timelines_with_post,
            self.timelines_trimmed,
            self.lost.len(),
            if self.read_errors.is_empty() {
                String::new()
            } else {
                format!(" (read errors: {:?})", self.read_errors)
            },
            if self.none_lost() { "no acknowledged post lost" } else { "POSTS LOST OR UNREAD" }
        )
    }
}

/// The app's side of the sharded cluster's partition in run `r` (`None` if no partition was made).
/// The store fills in the rest.
pub fn sharded_partition(r: &RunResult) -> Option<ShardedPartition> {
    let (cut, heal) = (report::fault_at(r, "partition {"), report::fault_at(r, "heal"));
    if cut.is_nan() || heal.is_nan() {
        return None;
    }
    let reads: Vec<_> = r
        .records
        .iter()
        .filter(|a| a.kind == Kind::ReadTimeline && a.start_ms >= cut && a.start_ms < heal)
        .collect();
    let ok: Vec<_> = reads.iter().filter(|a| a.ok).collect();
    let stale = ok.iter().filter(|a| a.missing > 0 && a.oldest_missing_ms > STALE_AFTER_MS).count();
    let posts: Vec<_> = r.fanouts.iter().filter(|f| f.acked_ms >= cut && f.acked_ms < heal).collect();
    Some(ShardedPartition {
        node: PARTITION_MINORITY[0],
        partition_ms: cut,
        heal_ms: heal,
        timeline_reads: reads.len(),
        timeline_reads_ok: report::frac(ok.len(), reads.len()),
        timeline_reads_stale: report::frac(stale, ok.len()),
        posts_acked: posts.len(),
        posts_fanned_out: posts
            .iter()
            .filter(|f| f.writes > 0 && f.failed == 0 && f.done_ms.is_some())
            .count(),
        fanout_writes_failed: posts.iter().map(|f| f.failed).sum(),
        ..ShardedPartition::default()
    })
}

/// The cached reads and timeline reads of a time window of the "cache node dies" run.
#[derive(Clone, Debug, Serialize)]
pub struct CacheWindow {
    /// "before" the kill, "during" (until the node answers again), "after".
    pub name: &'static str,
    pub from_ms: f64,
    pub to_ms: f64,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    /// Timeline reads started in the window: how many, the fraction that succeeded, latency.
    pub timeline_reads: usize,
    pub timeline_reads_ok: f64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
}

impl CacheWindow {
    /// The window's figures as the report prints them, in the order of the text's line and the
    /// HTML table's columns: window, hits, misses, hit ratio, timeline reads, ok, p50, p99.
    fn cells(&self) -> [String; 8] {
        [
            format!("{} ({:.1}–{:.1} s)", self.name, self.from_ms / 1e3, self.to_ms / 1e3),
            self.hits.to_string(),
            self.misses.to_string(),
            format!("{:.1} %", 100.0 * self.hit_ratio),
            self.timeline_reads.to_string(),
            format!("{:.1} %", 100.0 * self.timeline_reads_ok),
            report::ms(self.read_p50_ms),
            report::ms(self.read_p99_ms),
        ]
    }
}

/// The sharded deployment against the single machine (runs "baseline" and "single node", and
/// the two crash runs when they ran).
#[derive(Clone, Debug, Serialize)]
pub struct LiveBenefits {
    pub offered_per_s: f64,
    /// Successful actions per second completed within the run, and p99 of all actions (ms).
    pub sharded_ok_per_s: f64,
    pub single_ok_per_s: f64,
    pub sharded_p99_ms: f64,
    pub single_p99_ms: f64,
    /// Fraction of actions started between the kill and the restart that failed.
    pub sharded_failed_in_crash: Option<f64>,
    pub single_failed_in_crash: Option<f64>,
    /// Actions that started and succeeded between the kill and the restart (the others of that
    /// window that succeeded finished after the restart, within the client's deadline).
    pub sharded_ok_while_down: Option<usize>,
    pub single_ok_while_down: Option<usize>,
}

/// What one live run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LiveSummary {
    pub name: String,
    pub actions: usize,
    pub latency: Vec<KindStats>,
    /// Actions that failed (any of their storage operations did), and storage operations that did.
    pub actions_failed: usize,
    pub ops_failed: usize,
    /// Storage operations' errors by message (as the store words them).
    pub errors: BTreeMap<String, u64>,
    /// Successful timeline reads missing a post acknowledged more than [`STALE_AFTER_MS`] before.
    pub stale_timelines: f64,
    /// Strong requests per shard (cache hits not counted), and the busiest shard over the mean.
    pub shard_requests: BTreeMap<u32, u64>,
    pub hot_shard_ratio: f64,
    /// Keys those requests touched per shard, and keys/s on a shard in the busiest 250 ms of
    /// the busiest shard and on average ([`report::shard_burst`]).
    pub shard_keys: BTreeMap<u32, u64>,
    pub shard_keys_peak_per_s: f64,
    pub shard_keys_mean_per_s: f64,
    /// Successful actions per second within the run, and p99 of all successful actions (ms).
    pub ok_per_s: f64,
    pub p99_ms: f64,
    /// Follows that succeeded, those whose two writes went to two shards (no transaction joins
    /// them), and follows left half-done (one write failed: a one-sided graph).
    pub follows: usize,
    pub cross_shard_follows: usize,
    pub half_done_follows: usize,
    /// The "cache node dies" run: before, during and after the dead node's absence.
    pub cache_windows: Vec<CacheWindow>,
    /// The partition run's likes.
    pub partition: Option<LivePartition>,
    /// The partition run's sharded cluster, if the store cut it (filled by the store's caller).
    pub sharded_partition: Option<ShardedPartition>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_hit_ratio: f64,
    /// Likes acknowledged per post, and those whose outcome is unknown (timed out).
    pub likes_acked: BTreeMap<u64, i64>,
    pub likes_unknown: BTreeMap<u64, i64>,
    /// Posts fanned out on write, and the p99 time until in every follower's timeline (ms).
    pub fanned_out_posts: usize,
    pub fanout_p99_ms: f64,
    pub faults: Vec<(f64, String)>,
    pub wall_s: f64,
}

/// What was read back from the real clusters after a run: the posts in their followers'
/// timelines, the like counters against the likes given.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Readback {
    pub run: String,
    /// Fanned-out posts whose every timeline write succeeded, checked in the timelines of the
    /// author's followers at the start of the run (follows only add to them).
    pub posts_checked: usize,
    pub timelines_checked: usize,
    /// Timelines that hold the post, and those trimmed past it (more than `KEEP` newer posts).
    pub timelines_with_post: usize,
    pub timelines_trimmed: usize,
    /// Timelines without the post (each one a lost write): `(follower, post)`.
    pub missing: Vec<(u32, u64)>,
    /// Like counters read with every replica answering (`CONSISTENCY ALL`): posts checked, and
    /// those whose count lies between the likes acknowledged and those plus the unknown ones.
    pub counters_checked: usize,
    pub counters_exact: usize,
    pub likes_acked: i64,
    pub likes_unknown: i64,
    pub likes_read: i64,
    /// `(post, acknowledged, unknown, read)` of the counters outside that range.
    pub counter_mismatches: Vec<(u64, i64, i64, i64)>,
    /// What could not be read (an error reading back is not a missing post).
    pub read_errors: Vec<String>,
}

/// A live lab: the runs, their summaries, and what was read back.
#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    pub options: SocialOptions,
    /// The deployment, in words (`concord up` flags, addresses).
    pub deployment: String,
    pub celebrities: usize,
    pub summaries: Vec<LiveSummary>,
    pub readback: Vec<Readback>,
    /// Against one machine, when the single-node runs ran ([`benefits`]).
    pub benefits: Option<LiveBenefits>,
    #[serde(skip)]
    pub runs: Vec<RunResult>,
}

/// The users of `options` (the simulated runs' users, same seed).
pub fn users_of(options: &SocialOptions) -> anyhow::Result<Users> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    Users::generate(options.users, options.following, options.skew, &mut rng)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Run `run` of the lab on `store`, whose deployment is `deployment` (its shape, for the report:
/// the service time and network fields mean nothing for a real cluster and are 0). The summary's
/// `errors` are left for the caller to fill (the store words them).
pub fn run_live(
    options: &SocialOptions,
    users: &Users,
    deployment: &SimConfig,
    run: LiveRun,
    store: &mut dyn LabStore,
) -> (RunResult, LiveSummary) {
    let mut spec = baseline_spec(options, deployment.clone());
    spec.name = run.name();
    // A real cluster has no anti-entropy to wait for in the report.
    spec.settle_ms = 0.0;
    spec.faults = run.faults(options.duration_s);
    if run == LiveRun::Partition {
        // As the simulated partition: half the likes on the hot post, so both sides count it.
        spec.hot_like_share = 0.5;
        spec.settle_ms = PARTITION_SETTLE_MS;
    }
    let result = run_on(&spec, users, store);
    let summary = summarize(&result, store);
    (result, summary)
}

fn summarize(r: &RunResult, store: &dyn LabStore) -> LiveSummary {
    let timelines: Vec<_> = r.records.iter().filter(|a| a.kind == Kind::ReadTimeline && a.ok).collect();
    let (_, hot) = report::shard_loads(r);
    let burst = report::shard_burst(r);
    let (hits, misses) = store.cache_counts();
    let fanned: Vec<f64> =
        r.fanouts.iter().filter(|f| f.writes > 0).filter_map(|f| f.done_ms.map(|d| d - f.acked_ms)).collect();
    LiveSummary {
        name: r.name.clone(),
        actions: r.records.len(),
        latency: Kind::ALL.iter().map(|&k| report::latency(r, k)).collect(),
        actions_failed: r.records.iter().filter(|a| !a.ok).count(),
        ops_failed: r.ops.iter().filter(|o| !o.ok).count(),
        errors: BTreeMap::new(),
        stale_timelines: report::frac(
            timelines.iter().filter(|a| a.missing > 0 && a.oldest_missing_ms > STALE_AFTER_MS).count(),
            timelines.len(),
        ),
        shard_requests: r.requests_per_shard.clone(),
        hot_shard_ratio: hot,
        shard_keys: r.keys_per_shard.clone(),
        shard_keys_peak_per_s: burst.peak_per_s,
        shard_keys_mean_per_s: burst.mean_per_s,
        ok_per_s: report::ok_rate(r),
        p99_ms: report::p99_between(r, 0.0, r.duration_ms),
        follows: r.records.iter().filter(|a| a.kind == Kind::Follow && a.ok).count(),
        cross_shard_follows: r
            .records
            .iter()
            .filter(|a| a.kind == Kind::Follow && a.ok && a.shards.len() > 1)
            .count(),
        half_done_follows: r.records.iter().filter(|a| a.half_done).count(),
        cache_windows: cache_windows(r),
        partition: partition(r),
        sharded_partition: None,
        cache_hits: hits,
        cache_misses: misses,
        cache_hit_ratio: report::frac(hits as usize, (hits + misses) as usize),
        likes_acked: r.likes_acked.clone(),
        likes_unknown: r.likes_unknown.clone(),
        fanned_out_posts: fanned.len(),
        fanout_p99_ms: report::percentile(&fanned, 0.99),
        faults: r.faults.clone(),
        wall_s: r.wall_s,
    }
}

/// The "cache node dies" run cut at the kill and at the node's return (empty for other runs).
fn cache_windows(r: &RunResult) -> Vec<CacheWindow> {
    let killed = report::fault_at(r, "kill -9 cache node");
    if killed.is_nan() {
        return Vec::new();
    }
    // `concord up` starts a dead cache node again after a second; the store saw it answer (NaN,
    // never within the run: `min` takes the run's end).
    let back = report::fault_at(r, "cache node").min(r.duration_ms);
    let window = |name, from: f64, to: f64| {
        // A 250 ms sample counts in the window its end falls in.
        let (hits, misses) = r
            .cache_timeline
            .iter()
            .filter(|(t, _, _)| *t > from && *t <= to)
            .fold((0, 0), |(h, m), (_, dh, dm)| (h + dh, m + dm));
        let reads: Vec<_> = r
            .records
            .iter()
            .filter(|a| a.kind == Kind::ReadTimeline && a.start_ms >= from && a.start_ms < to)
            .collect();
        let ok: Vec<f64> = reads.iter().filter(|a| a.ok).map(|a| a.end_ms - a.start_ms).collect();
        CacheWindow {
            name,
            from_ms: from,
            to_ms: to,
            hits,
            misses,
            hit_ratio: report::frac(hits as usize, (hits + misses) as usize),
            timeline_reads: reads.len(),
            timeline_reads_ok: report::frac(ok.len(), reads.len()),
            read_p50_ms: report::percentile(&ok, 0.5),
            read_p99_ms: report::percentile(&ok, 0.99),
        }
    };
    vec![window("before", 0.0, killed), window("during", killed, back), window("after", back, r.duration_ms)]
}

/// The partition run's likes (`None` for other runs, or if the partition was not made).
fn partition(r: &RunResult) -> Option<LivePartition> {
    let (cut, heal) = (report::fault_at(r, "partition {"), report::fault_at(r, "heal"));
    if cut.is_nan() || heal.is_nan() {
        return None;
    }
    // Sessions are pinned to likes node `user % nodes + 1` (the store's and the simulator's rule).
    let nodes = r.hot_counter.iter().flat_map(|(_, v)| v.iter().map(|(n, _)| *n)).max().unwrap_or(1);
    let likes =
        r.records.iter().filter(|a| a.kind == Kind::Like && a.ok && a.start_ms >= cut && a.start_ms < heal);
    let (minority, majority): (Vec<_>, Vec<_>) =
        likes.partition(|a| PARTITION_MINORITY.contains(&(a.user % nodes + 1)));
    let spread = |v: &[(u32, i64)]| {
        let values = v.iter().map(|(_, x)| *x);
        values.clone().max().unwrap_or(0) - values.min().unwrap_or(0)
    };
    let during: Vec<_> = r.hot_counter.iter().filter(|(t, _)| *t > cut && *t <= heal).collect();
    let final_values = r.hot_counter.last().map(|(_, v)| v.clone()).unwrap_or_default();
    let (acked, unknown) = (r.hot_likes_acked, r.hot_likes_unknown);
    Some(LivePartition {
        partition_ms: cut,
        heal_ms: heal,
        likes_minority_side: minority.len(),
        likes_majority_side: majority.len(),
        max_divergence: during.iter().map(|(_, v)| spread(v)).max().unwrap_or(0),
        values_before_heal: during.last().map(|(_, v)| v.clone()).unwrap_or_default(),
        converged: final_values.len() as u32 == nodes
            && spread(&final_values) == 0
            && final_values.first().is_some_and(|(_, v)| (acked..=acked + unknown).contains(v)),
        final_values,
        hot_likes_acked: acked,
        hot_likes_unknown: unknown,
    })
}

/// The sharded deployment against one machine, if both ran the baseline's workload.
pub fn benefits(runs: &[RunResult]) -> Option<LiveBenefits> {
    let find = |name: &str| runs.iter().find(|r| r.name == name);
    let (sharded, single) = (find("baseline")?, find("single node")?);
    let p99 = |r: &RunResult| report::p99_between(r, 0.0, r.duration_ms);
    let crash_failed = |r: &RunResult| {
        report::failed_between(r, report::fault_at(r, "kill -9"), report::fault_at(r, "restart"))
    };
    let ok_while_down = |r: &RunResult| {
        let (kill, restart) = (report::fault_at(r, "kill -9"), report::fault_at(r, "restart"));
        r.records.iter().filter(|a| a.ok && a.start_ms >= kill && a.end_ms < restart).count()
    };
    Some(LiveBenefits {
        offered_per_s: sharded.records.len() as f64 / (sharded.duration_ms / 1e3),
        sharded_ok_per_s: report::ok_rate(sharded),
        single_ok_per_s: report::ok_rate(single),
        sharded_p99_ms: p99(sharded),
        single_p99_ms: p99(single),
        sharded_failed_in_crash: find("leader crash").map(crash_failed),
        single_failed_in_crash: find("single node crash").map(crash_failed),
        sharded_ok_while_down: find("leader crash").map(ok_while_down),
        single_ok_while_down: find("single node crash").map(ok_while_down),
    })
}

/// The lab's report as text for the terminal.
pub fn text_summary(report: &LiveReport) -> String {
    let mut out = String::new();
    let o = &report.options;
    let _ = writeln!(
        out,
        "concord lab social --real: {} users, {} accounts merged on read, {} s at {} actions/s\n  {}",
        o.users, report.celebrities, o.duration_s, o.rate_per_s, report.deployment
    );
    for s in &report.summaries {
        let _ = writeln!(out, "run: {} ({} actions, {:.1} s)", s.name, s.actions, s.wall_s);
        for k in &s.latency {
            let _ = writeln!(
                out,
                "  {:<19} {:>6} actions  ok {:>6.2} %  p50 {:>7} ms  p99 {:>7} ms",
                k.kind.name(),
                k.count,
                100.0 * k.ok_fraction,
                report::ms(k.p50_ms),
                report::ms(k.p99_ms)
            );
        }
        let _ = writeln!(
            out,
            "  requests per shard {:?} (busiest/mean {:.2}), keys {:?} ({:.0}/s on a shard in the busiest 250 ms, {:.0}/s mean); \
             cache hits {} misses {} ({:.1} %); fan-out p99 {} ms over {} posts",
            s.shard_requests.values().collect::<Vec<_>>(),
            s.hot_shard_ratio,
            s.shard_keys.values().collect::<Vec<_>>(),
            s.shard_keys_peak_per_s,
            s.shard_keys_mean_per_s,
            s.cache_hits,
            s.cache_misses,
            100.0 * s.cache_hit_ratio,
            report::ms(s.fanout_p99_ms),
            s.fanned_out_posts
        );
        let _ = writeln!(
            out,
            "  failed: {} actions, {} storage operations{}; stale timelines {:.2} %; follows {} ({} across two shards, {} half-done)",
            s.actions_failed,
            s.ops_failed,
            if s.errors.is_empty() { String::new() } else { format!(" {:?}", s.errors) },
            100.0 * s.stale_timelines,
            s.follows,
            s.cross_shard_follows,
            s.half_done_follows
        );
        for (t, f) in &s.faults {
            let _ = writeln!(out, "  at {:.1} s: {f}", t / 1e3);
        }
        for w in &s.cache_windows {
            let [window, hits, misses, ratio, reads, ok, p50, p99] = w.cells();
            let _ = writeln!(
                out,
                "  {window:<20}: cache hits {hits} misses {misses} ({ratio}); timeline reads {reads} ok {ok}, p50 {p50} ms p99 {p99} ms"
            );
        }
    }
    for p in report.summaries.iter().filter_map(|s| s.partition.as_ref()) {
        let _ = writeln!(
            out,
            "partition ({:.1}–{:.1} s): likes acknowledged on the cut-off side {}, on the other {}; the hot post's \
             counter differed by up to {} between nodes (last before the heal: {:?}); finally {:?} for {} acknowledged \
             (+{} unknown): {}",
            p.partition_ms / 1e3,
            p.heal_ms / 1e3,
            p.likes_minority_side,
            p.likes_majority_side,
            p.max_divergence,
            p.values_before_heal,
            p.final_values,
            p.hot_likes_acked,
            p.hot_likes_unknown,
            if p.converged { "converged, no like lost" } else { "NOT converged" }
        );
    }
    for p in report.summaries.iter().filter_map(|s| s.sharded_partition.as_ref()) {
        let _ = writeln!(out, "partition, {}", p.words());
    }
    if let Some(b) = &report.benefits {
        let crash = |f: Option<f64>| f.map_or("not run".to_string(), |f| format!("{:.1} %", 100.0 * f));
        let served = |n: Option<usize>| n.map_or("not run".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "sharded vs single node at {:.0} actions/s: {:.1} vs {:.1} ok/s, p99 {} vs {} ms; \
             actions failed between kill -9 and restart: {} vs {} (started and served in that window: {} vs {})",
            b.offered_per_s,
            b.sharded_ok_per_s,
            b.single_ok_per_s,
            report::ms(b.sharded_p99_ms),
            report::ms(b.single_p99_ms),
            crash(b.sharded_failed_in_crash),
            crash(b.single_failed_in_crash),
            served(b.sharded_ok_while_down),
            served(b.single_ok_while_down)
        );
    }
    for b in &report.readback {
        let _ = writeln!(
            out,
            "read back ({}): {} posts in {} follower timelines: {} hold them, {} trimmed past them, {} missing; \
             {} like counters: {} within [acknowledged, + unknown] ({} likes acknowledged, {} read){}",
            b.run,
            b.posts_checked,
            b.timelines_checked,
            b.timelines_with_post,
            b.timelines_trimmed,
            b.missing.len(),
            b.counters_checked,
            b.counters_exact,
            b.likes_acked,
            b.likes_read,
            if b.read_errors.is_empty() { String::new() } else { format!("; read errors: {:?}", b.read_errors) }
        );
    }
    out
}

/// Write `report.json`, one plot per run (`<run>.svg`/`.png`: actions per second and p99) and
/// `index.html` into `dir`; returns the files written.
pub fn write_live_report(report: &LiveReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);
    let mut body = String::new();
    let o = &report.options;
    let _ = writeln!(
        body,
        "<p>A real cluster: {}. {} users (following {}–{} each), fan-out threshold {} followers \
         ({} accounts merged on read), {} s per run at {} actions/s mean, seed {}. Wall-clock time, \
         real CPUs; see docs/labs/social.md for what differs from the simulated runs.</p>",
        crate::html_escape(&report.deployment),
        o.users,
        o.following.0,
        o.following.1,
        o.fanout_threshold,
        report.celebrities,
        o.duration_s,
        o.rate_per_s,
        o.seed
    );
    for (s, r) in report.summaries.iter().zip(&report.runs) {
        let stem = dir.join(r.name.replace(' ', "-"));
        report::rate_and_p99_plot(r, "Actions per second and their p99 latency (wall-clock time)", &stem)?;
        written.push(stem.with_extension("svg"));
        written.push(stem.with_extension("png"));
        let name = stem.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let _ = writeln!(body, "<h2>{}</h2><img src=\"{name}.svg\" width=\"800\">", s.name);
        report::latency_table(&mut body, &s.latency);
        let errors: Vec<String> =
            s.errors.iter().map(|(e, n)| format!("{n}× {}", crate::html_escape(e))).collect();
        let faults: Vec<String> =
            s.faults.iter().map(|(t, f)| format!("{:.1} s: {}", t / 1e3, crate::html_escape(f))).collect();
        let _ = writeln!(
            body,
            "</table><p>Requests per shard: {:?} (busiest / mean {:.2}); keys per shard: {:?} ({:.0}/s on a \
             shard in the busiest 250 ms, {:.0}/s mean). Cache: {} hits, {} misses \
             ({:.1} %). Fan-out: {} posts, p99 {} ms until in every follower's timeline. Failed: {} actions, \
             {} storage operations{}. Timeline reads missing a post older than {} s: {:.2} %. Follows: {} ({} across \
             two shards, {} half-done).{}</p>",
            s.shard_requests,
            s.hot_shard_ratio,
            s.shard_keys,
            s.shard_keys_peak_per_s,
            s.shard_keys_mean_per_s,
            s.cache_hits,
            s.cache_misses,
            100.0 * s.cache_hit_ratio,
            s.fanned_out_posts,
            report::ms(s.fanout_p99_ms),
            s.actions_failed,
            s.ops_failed,
            if errors.is_empty() { String::new() } else { format!(" ({})", errors.join("; ")) },
            STALE_AFTER_MS / 1e3,
            100.0 * s.stale_timelines,
            s.follows,
            s.cross_shard_follows,
            s.half_done_follows,
            if faults.is_empty() { String::new() } else { format!(" Faults: {}.", faults.join("; ")) }
        );
        if let Some(p) = &s.partition {
            let _ = writeln!(
                body,
                "<p>Partition of the likes cluster ({:.1}–{:.1} s): like actions acknowledged on the cut-off side {}, \
                 on the other {}. The hot post's counter, as each node answers alone: up to {} apart during the \
                 partition (last sample before the heal {:?}); at the end {:?} for {} likes acknowledged (+{} of \
                 unknown outcome): {}.</p>",
                p.partition_ms / 1e3,
                p.heal_ms / 1e3,
                p.likes_minority_side,
                p.likes_majority_side,
                p.max_divergence,
                p.values_before_heal,
                p.final_values,
                p.hot_likes_acked,
                p.hot_likes_unknown,
                if p.converged { "converged, no like lost" } else { "not converged" }
            );
        }
        if let Some(p) = &s.sharded_partition {
            let kinds: Vec<String> =
                p.minority_answers.iter().map(|(k, n)| format!("{n}× {}", crate::html_escape(k))).collect();
            let lost: Vec<String> =
                p.lost.iter().map(|(k, post)| format!("{} in {}", post, crate::html_escape(k))).collect();
            let _ = writeln!(
                body,
                "<p>Partition of the sharded cluster (posts, follow graph, timelines), node {} cut from the \
                 others ({:.1}–{:.1} s):</p><table><tr><th>measured</th><th>value</th></tr>\
                 <tr><td>{} {} timeline reads straight to node {} (not following redirects)</td><td>{} served, {} \
                 redirected, {} refused, {} timed out ({})</td></tr>\
                 <tr><td>the app's timeline reads during the partition</td><td>{}: {:.1} % ok, {:.2} % stale</td></tr>\
                 <tr><td>posts acknowledged during the partition</td><td>{} ({} fanned out in full, {} timeline \
                 writes failed)</td></tr>\
                 <tr><td>after the heal: in their author's list</td><td>{} of {}</td></tr>\
                 <tr><td>after the heal: follower timelines checked</td><td>{}: {} hold the post, {} trimmed past \
                 it, {} lost{}</td></tr>\
                 <tr><td>verdict</td><td>{}</td></tr></table>",
                p.node,
                p.partition_ms / 1e3,
                p.heal_ms / 1e3,
                p.minority_reads,
                p.read_consistency,
                p.node,
                p.minority_served,
                p.minority_redirected,
                p.minority_refused,
                p.minority_timed_out,
                kinds.join(", "),
                p.timeline_reads,
                100.0 * p.timeline_reads_ok,
                100.0 * p.timeline_reads_stale,
                p.posts_acked,
                p.posts_fanned_out,
                p.fanout_writes_failed,
                p.posts_in_author_list,
                p.posts_acked,
                p.timelines_checked,
                p.timelines_with_post,
                p.timelines_trimmed,
                p.lost.len(),
                if lost.is_empty() { String::new() } else { format!(": {}", lost.join(", ")) },
                if p.none_lost() {
                    "no acknowledged post lost".to_string()
                } else {
                    format!("posts lost or unread ({} read errors)", p.read_errors.len())
                }
            );
        }
        if !s.cache_windows.is_empty() {
            let _ = writeln!(
                body,
                "<table><tr><th>window</th><th>cache hits</th><th>misses</th><th>hit ratio</th>\
                 <th>timeline reads</th><th>ok</th><th>p50 (ms)</th><th>p99 (ms)</th></tr>"
            );
            for w in &s.cache_windows {
                let cells: String = w.cells().iter().map(|c| format!("<td>{c}</td>")).collect();
                let _ = writeln!(body, "<tr>{cells}</tr>");
            }
            let _ = writeln!(body, "</table>");
        }
    }
    if let Some(b) = &report.benefits {
        let crash = |f: Option<f64>| f.map_or("not run".to_string(), |f| format!("{:.1} %", 100.0 * f));
        let served = |n: Option<usize>| n.map_or("not run".to_string(), |n| n.to_string());
        let _ = writeln!(
            body,
            "<h2>Against one machine</h2><table><tr><th></th><th>sharded</th><th>single node</th></tr>\
             <tr><td>successful actions/s at {:.0} offered/s</td><td>{:.1}</td><td>{:.1}</td></tr>\
             <tr><td>p99 of all actions (ms)</td><td>{}</td><td>{}</td></tr>\
             <tr><td>actions failed between kill -9 and restart</td><td>{}</td><td>{}</td></tr>\
             <tr><td>actions started and served in that window</td><td>{}</td><td>{}</td></tr></table>",
            b.offered_per_s,
            b.sharded_ok_per_s,
            b.single_ok_per_s,
            report::ms(b.sharded_p99_ms),
            report::ms(b.single_p99_ms),
            crash(b.sharded_failed_in_crash),
            crash(b.single_failed_in_crash),
            served(b.sharded_ok_while_down),
            served(b.single_ok_while_down)
        );
    }
    let html = dir.join("index.html");
    std::fs::write(
        &html,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>concord lab social --real</title><style>\
             body{{font-family:sans-serif;max-width:980px;margin:2em auto}} table{{border-collapse:collapse}} \
             td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}\
             </style></head><body><h1>Lab 1 on a real cluster</h1>{body}\
             <p>Guide: docs/labs/social.md. Numbers: report.json.</p></body></html>\n"
        ),
    )?;
    written.push(html);
    Ok(written)
}

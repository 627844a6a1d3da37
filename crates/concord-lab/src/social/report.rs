//! The numbers the lab reports, and its pages: `report.json`, `index.html`, plots (SVG and PNG).
//!
//! [`summarize`] turns the runs into the measurements the guide asks students to predict; each is
//! defined next to its field, so a number in the report can be traced to its computation.

use super::app::{ActionRecord, Kind};
use super::{RunResult, SocialOptions, SocialReport};
use crate::plot::{self, Curve, LineStyle, Marker, StyledSeries, XyChart};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A storage operation slower than this counts as disrupted (normal ones take a few ms).
pub const DISRUPTED_MS: f64 = 250.0;
/// A timeline read missing a post acknowledged this long before it is a stale timeline (a
/// fanned-out post normally lands within a few ms, a cached celebrity post within the TTL).
pub const STALE_AFTER_MS: f64 = 2_000.0;

/// Latency and success of one kind of action.
#[derive(Clone, Debug, Serialize)]
pub struct KindStats {
    pub kind: Kind,
    pub count: usize,
    pub ok_fraction: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Storage requests per action (mean).
    pub requests: f64,
}

/// The hybrid design against fan-out for all (runs "baseline" and "push-all").
#[derive(Clone, Debug, Serialize)]
pub struct FanOutSummary {
    pub celebrity_followers: usize,
    /// Accounts merged on read (more followers than the threshold).
    pub merged_on_read_accounts: usize,
    /// The most followed account's post: timeline writes, and time from its acknowledgement to
    /// the last write (ms), per design.
    pub hybrid_celebrity_writes: usize,
    pub push_celebrity_writes: usize,
    pub push_celebrity_fanout_ms: Option<f64>,
    /// Of those writes, how many failed (push-all).
    pub push_celebrity_failed: usize,
    /// The fan-out service's pipeline: timeline writes per request (grouped by shard).
    pub fanout_batch: usize,
    /// Ordinary posts (fanned out in both): p99 time until in every follower's timeline (ms).
    pub hybrid_fanout_p99_ms: f64,
    /// Timeline writes per post, mean.
    pub hybrid_writes_per_post: f64,
    pub push_writes_per_post: f64,
    /// Storage requests per timeline read, mean.
    pub hybrid_requests_per_read: f64,
    pub push_requests_per_read: f64,
    /// p99 latency of all actions started in the second after the celebrity's post (ms).
    pub hybrid_p99_after_post_ms: f64,
    pub push_p99_after_post_ms: f64,
    /// Requests per shard, and the busiest shard's share over the mean.
    pub hybrid_shard_requests: Vec<u64>,
    pub push_shard_requests: Vec<u64>,
    pub hybrid_hot_shard_ratio: f64,
    pub push_hot_shard_ratio: f64,
    /// Keys the shards' requests touched (a pipelined fan-out part counts its keys, not one), per
    /// shard – the work a fan-out gives the shard leaders, which a count of requests hides.
    pub hybrid_shard_keys: Vec<u64>,
    pub push_shard_keys: Vec<u64>,
    /// Keys per second on a shard: in the busiest 250 ms of the busiest shard, and a shard's mean
    /// over the run ([`shard_burst`]). The celebrity's post is the peak with fan-out for all.
    pub hybrid_shard_keys_peak_per_s: f64,
    pub push_shard_keys_peak_per_s: f64,
    pub hybrid_shard_keys_mean_per_s: f64,
    pub push_shard_keys_mean_per_s: f64,
}

/// A shard leader's crash (run "leader crash").
#[derive(Clone, Debug, Serialize)]
pub struct CrashSummary {
    pub node: Option<u32>,
    pub crashed_shards: Vec<u32>,
    pub crash_ms: f64,
    pub restart_ms: f64,
    /// Per shard: from the crash to the first operation sent after it that was served within
    /// [`DISRUPTED_MS`] (ms; the restart ends the window at the latest).
    pub unavailable_ms: BTreeMap<u32, f64>,
    /// Per shard: operations sent between crash and restart that failed, and that succeeded
    /// but took longer than [`DISRUPTED_MS`] (an attempt went to the dead machine first).
    pub failed: BTreeMap<u32, usize>,
    pub slow: BTreeMap<u32, usize>,
    /// Actions started between crash and restart that failed, and timeline reads among them.
    pub actions_failed_fraction: f64,
    pub timeline_reads_failed: usize,
    /// Follows left one-sided (one write done, the other failed) in this run.
    pub half_done_follows: usize,
}

/// The partition and the like counters (run "partition").
#[derive(Clone, Debug, Serialize)]
pub struct PartitionSummary {
    pub partition_ms: f64,
    pub heal_ms: f64,
    /// Largest difference between two replicas' values of the hot counter during the partition.
    pub max_divergence: i64,
    /// Likes acknowledged to users, and likes whose outcome they never learned.
    pub likes_acked: i64,
    pub likes_unknown: i64,
    /// Likes acknowledged during the partition (both sides accepted them).
    pub likes_during_partition: usize,
    /// The counter on each replica at the end.
    pub final_values: Vec<(u32, i64)>,
    /// Every replica ends within [acked, acked + unknown] and all agree.
    pub converged: bool,
    /// From the heal until every replica agreed (ms).
    pub converged_after_heal_ms: Option<f64>,
    /// Like-count reads that returned fewer likes than were acknowledged before they began,
    /// during the partition and outside it (fractions).
    pub stale_reads_during: f64,
    pub stale_reads_outside: f64,
    /// Timeline reads that failed during the partition (the strong store's price).
    pub timeline_reads_failed_during: f64,
}

/// A cache node's death (run "cache node dies").
#[derive(Clone, Debug, Serialize)]
pub struct CacheSummary {
    pub death_ms: f64,
    /// Hit ratio in the 2 s before the death and the first 500 ms after it.
    pub hit_ratio_before: f64,
    pub hit_ratio_after: f64,
    /// Misses per second (reads the shards take for the cache), same windows.
    pub misses_per_s_before: f64,
    pub misses_per_s_after: f64,
}

/// Follows, the cross-shard operation (every run pooled, except the single node's).
#[derive(Clone, Debug, Serialize)]
pub struct CrossShardSummary {
    pub follows: usize,
    pub cross_shard: usize,
    pub p50_same_shard_ms: f64,
    pub p50_cross_shard_ms: f64,
}

/// The sharded deployment against one machine.
#[derive(Clone, Debug, Serialize)]
pub struct BenefitSummary {
    pub offered_per_s: f64,
    /// Actions completed successfully per second, within the window, under the same overload.
    pub sharded_ok_per_s: f64,
    pub single_ok_per_s: f64,
    pub sharded_p99_ms: f64,
    pub single_p99_ms: f64,
    /// Fraction of actions that failed between crash and restart.
    pub sharded_failed_in_crash: f64,
    pub single_failed_in_crash: f64,
}

/// Everything the report states.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub latency: Vec<KindStats>,
    /// Timeline reads of the baseline missing a post older than [`STALE_AFTER_MS`] (fraction).
    pub stale_timelines: f64,
    pub fanout: FanOutSummary,
    pub crash: CrashSummary,
    pub partition: PartitionSummary,
    pub cache: Option<CacheSummary>,
    pub cross_shard: CrossShardSummary,
    pub benefits: BenefitSummary,
}

pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

pub(crate) fn frac(part: usize, all: usize) -> f64 {
    if all == 0 {
        0.0
    } else {
        part as f64 / all as f64
    }
}

fn run<'a>(runs: &'a [RunResult], name: &str) -> &'a RunResult {
    runs.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("the lab ran {name}"))
}

/// When the run's first fault whose words start with `prefix` happened (ms; NaN if none did).
pub(crate) fn fault_at(r: &RunResult, prefix: &str) -> f64 {
    r.faults.iter().find(|(_, f)| f.starts_with(prefix)).map_or(f64::NAN, |(t, _)| *t)
}

pub(crate) fn latency(r: &RunResult, kind: Kind) -> KindStats {
    let rs: Vec<&ActionRecord> = r.records.iter().filter(|a| a.kind == kind).collect();
    let ok: Vec<f64> = rs.iter().filter(|a| a.ok).map(|a| a.end_ms - a.start_ms).collect();
    KindStats {
        kind,
        count: rs.len(),
        ok_fraction: frac(ok.len(), rs.len()),
        p50_ms: percentile(&ok, 0.5),
        p99_ms: percentile(&ok, 0.99),
        requests: if rs.is_empty() {
            0.0
        } else {
            rs.iter().map(|a| a.requests).sum::<usize>() as f64 / rs.len() as f64
        },
    }
}

pub(crate) fn shard_loads(r: &RunResult) -> (Vec<u64>, f64) {
    let v: Vec<u64> = r.requests_per_shard.values().copied().collect();
    let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let max = v.iter().copied().max().unwrap_or(0) as f64;
    (v, if mean > 0.0 { max / mean } else { 0.0 })
}

/// A shard's keys over a run.
pub struct ShardBurst {
    pub keys: Vec<u64>,
    /// Keys per second in the busiest sample (250 ms) of the busiest shard, and a shard's mean.
    pub peak_per_s: f64,
    pub mean_per_s: f64,
}

/// The keys per shard of a run, and its burst. A celebrity's fan-out lands on every shard at once
/// (followers' timelines are spread by hash): a burst on each shard, not one hot shard.
pub(crate) fn shard_burst(r: &RunResult) -> ShardBurst {
    let windows = r.shard_keys_timeline.len() * r.keys_per_shard.len().max(1);
    let total: u64 = r.shard_keys_timeline.iter().flat_map(|(_, k)| k.values()).sum();
    let peak = r.shard_keys_timeline.iter().flat_map(|(_, k)| k.values()).copied().max().unwrap_or(0);
    let per_s = 1e3 / super::SAMPLE_MS;
    ShardBurst {
        keys: r.keys_per_shard.values().copied().collect(),
        peak_per_s: peak as f64 * per_s,
        mean_per_s: frac(total as usize, windows) * per_s,
    }
}

/// p99 of actions started in `[from, to)`.
pub(crate) fn p99_between(r: &RunResult, from: f64, to: f64) -> f64 {
    let v: Vec<f64> = r
        .records
        .iter()
        .filter(|a| a.ok && a.start_ms >= from && a.start_ms < to)
        .map(|a| a.end_ms - a.start_ms)
        .collect();
    percentile(&v, 0.99)
}

pub(crate) fn failed_between(r: &RunResult, from: f64, to: f64) -> f64 {
    let v: Vec<&ActionRecord> = r.records.iter().filter(|a| a.start_ms >= from && a.start_ms < to).collect();
    frac(v.iter().filter(|a| !a.ok).count(), v.len())
}

fn fanout_summary(o: &SocialOptions, runs: &[RunResult], merged: usize) -> FanOutSummary {
    let (hy, push) = (run(runs, "baseline"), run(runs, "push-all"));
    fn celebrity(r: &RunResult) -> Option<&super::app::FanOut> {
        r.celebrity_post.and_then(|p| r.fanouts.iter().find(|f| f.post == p))
    }
    let writes_per_post =
        |r: &RunResult| frac(r.fanouts.iter().map(|f| f.writes).sum::<usize>(), r.fanouts.len().max(1));
    let ordinary: Vec<f64> = hy
        .fanouts
        .iter()
        .filter(|f| f.writes > 0)
        .filter_map(|f| f.done_ms.map(|d| d - f.acked_ms))
        .collect();
    let at = o.duration_s * 1e3 / 4.0;
    let (hs, hr) = shard_loads(hy);
    let (ps, pr) = shard_loads(push);
    let (hb, pb) = (shard_burst(hy), shard_burst(push));
    FanOutSummary {
        celebrity_followers: hy.celebrity_followers,
        merged_on_read_accounts: merged,
        hybrid_celebrity_writes: celebrity(hy).map_or(0, |f| f.writes),
        push_celebrity_writes: celebrity(push).map_or(0, |f| f.writes),
        push_celebrity_fanout_ms: celebrity(push).and_then(|f| f.done_ms.map(|d| d - f.acked_ms)),
        push_celebrity_failed: celebrity(push).map_or(0, |f| f.failed),
        fanout_batch: o.fanout_batch,
        hybrid_fanout_p99_ms: percentile(&ordinary, 0.99),
        hybrid_writes_per_post: writes_per_post(hy),
        push_writes_per_post: writes_per_post(push),
        hybrid_requests_per_read: latency(hy, Kind::ReadTimeline).requests,
        push_requests_per_read: latency(push, Kind::ReadTimeline).requests,
        hybrid_p99_after_post_ms: p99_between(hy, at, at + 1_000.0),
        push_p99_after_post_ms: p99_between(push, at, at + 1_000.0),
        hybrid_shard_requests: hs,
        push_shard_requests: ps,
        hybrid_hot_shard_ratio: hr,
        push_hot_shard_ratio: pr,
        hybrid_shard_keys: hb.keys,
        push_shard_keys: pb.keys,
        hybrid_shard_keys_peak_per_s: hb.peak_per_s,
        push_shard_keys_peak_per_s: pb.peak_per_s,
        hybrid_shard_keys_mean_per_s: hb.mean_per_s,
        push_shard_keys_mean_per_s: pb.mean_per_s,
    }
}

fn crash_summary(runs: &[RunResult]) -> CrashSummary {
    let r = run(runs, "leader crash");
    let (crash, restart) = (fault_at(r, "crash"), fault_at(r, "restart"));
    let mut unavailable = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut slow = BTreeMap::new();
    for &s in r.requests_per_shard.keys() {
        let hit: Vec<_> = r
            .ops
            .iter()
            .filter(|o| o.shard == s && o.sent_ms >= crash && o.sent_ms < restart)
            .filter(|o| !o.ok || o.done_ms - o.sent_ms > DISRUPTED_MS)
            .collect();
        // Available again from the first operation sent after the crash that was served
        // promptly; the restart ends the window at the latest.
        let back = r
            .ops
            .iter()
            .filter(|o| o.shard == s && o.sent_ms >= crash && o.sent_ms < restart)
            .filter(|o| o.ok && o.done_ms - o.sent_ms <= DISRUPTED_MS)
            .map(|o| o.sent_ms)
            .reduce(f64::min)
            .unwrap_or(restart);
        unavailable.insert(s, back - crash);
        failed.insert(s, hit.iter().filter(|o| !o.ok).count());
        slow.insert(s, hit.iter().filter(|o| o.ok).count());
    }
    CrashSummary {
        node: r.crashed_nodes.first().copied(),
        crashed_shards: r.crashed_shards.clone(),
        crash_ms: crash,
        restart_ms: restart,
        unavailable_ms: unavailable,
        failed,
        slow,
        actions_failed_fraction: failed_between(r, crash, restart),
        timeline_reads_failed: r
            .records
            .iter()
            .filter(|a| a.kind == Kind::ReadTimeline && !a.ok && a.start_ms >= crash && a.start_ms < restart)
            .count(),
        half_done_follows: r.records.iter().filter(|a| a.half_done).count(),
    }
}

fn partition_summary(runs: &[RunResult]) -> PartitionSummary {
    let r = run(runs, "partition");
    let (cut, heal) = (fault_at(r, "partition"), fault_at(r, "heal"));
    let spread = |vals: &[(u32, i64)]| {
        let lo = vals.iter().map(|v| v.1).min().unwrap_or(0);
        let hi = vals.iter().map(|v| v.1).max().unwrap_or(0);
        hi - lo
    };
    let max_divergence = r
        .hot_counter
        .iter()
        .filter(|(t, _)| *t >= cut && *t <= heal)
        .map(|(_, v)| spread(v))
        .max()
        .unwrap_or(0);
    let final_values = r.hot_counter.last().map(|(_, v)| v.clone()).unwrap_or_default();
    let (acked, unknown) = (r.hot_likes_acked, r.hot_likes_unknown);
    let agree = |v: &[(u32, i64)]| !v.is_empty() && spread(v) == 0;
    let converged =
        agree(&final_values) && final_values.iter().all(|(_, c)| *c >= acked && *c <= acked + unknown);
    let converged_after = r
        .hot_counter
        .iter()
        .filter(|(t, _)| *t >= heal)
        .find(|(_, v)| agree(v) && v.first().is_some_and(|(_, c)| *c >= acked))
        .map(|(t, _)| t - heal);
    let stale = |during: bool| {
        let reads: Vec<&ActionRecord> = r
            .records
            .iter()
            .filter(|a| a.kind == Kind::ReadLikes && a.ok)
            .filter(|a| (a.start_ms >= cut && a.start_ms < heal) == during)
            .collect();
        frac(reads.iter().filter(|a| a.count.is_some_and(|(got, acked)| got < acked)).count(), reads.len())
    };
    let likes_during = r
        .records
        .iter()
        .filter(|a| a.kind == Kind::Like && a.ok && a.start_ms >= cut && a.start_ms < heal)
        .count();
    let timelines: Vec<&ActionRecord> = r
        .records
        .iter()
        .filter(|a| a.kind == Kind::ReadTimeline && a.start_ms >= cut && a.start_ms < heal)
        .collect();
    PartitionSummary {
        partition_ms: cut,
        heal_ms: heal,
        max_divergence,
        likes_acked: acked,
        likes_unknown: unknown,
        likes_during_partition: likes_during,
        final_values,
        converged,
        converged_after_heal_ms: converged_after,
        stale_reads_during: stale(true),
        stale_reads_outside: stale(false),
        timeline_reads_failed_during: frac(timelines.iter().filter(|a| !a.ok).count(), timelines.len()),
    }
}

fn cache_summary(runs: &[RunResult]) -> Option<CacheSummary> {
    let r = runs.iter().find(|r| r.name == "cache node dies")?;
    let death = fault_at(r, "cache node");
    let window = |from: f64, to: f64| {
        let (h, m) = r
            .cache_timeline
            .iter()
            .filter(|(t, _, _)| *t > from && *t <= to)
            .fold((0u64, 0u64), |(h, m), (_, dh, dm)| (h + dh, m + dm));
        (frac(h as usize, (h + m) as usize), m as f64 / ((to - from) / 1e3))
    };
    let (hb, mb) = window(death - 2_000.0, death);
    let (ha, ma) = window(death, death + 500.0);
    Some(CacheSummary {
        death_ms: death,
        hit_ratio_before: hb,
        hit_ratio_after: ha,
        misses_per_s_before: mb,
        misses_per_s_after: ma,
    })
}

fn cross_shard_summary(runs: &[RunResult]) -> CrossShardSummary {
    let follows: Vec<&ActionRecord> = runs
        .iter()
        .filter(|r| r.sim.shards > 1)
        .flat_map(|r| r.records.iter())
        .filter(|a| a.kind == Kind::Follow && a.ok)
        .collect();
    let lat = |cross: bool| {
        let v: Vec<f64> =
            follows.iter().filter(|a| (a.shards.len() > 1) == cross).map(|a| a.end_ms - a.start_ms).collect();
        percentile(&v, 0.5)
    };
    CrossShardSummary {
        follows: follows.len(),
        cross_shard: follows.iter().filter(|a| a.shards.len() > 1).count(),
        p50_same_shard_ms: lat(false),
        p50_cross_shard_ms: lat(true),
    }
}

/// Actions per second that succeeded and completed within the run's workload window: a machine
/// that cannot keep up builds a queue, and what waits in it at the end was not served in the
/// window (it is served late, or times out).
pub(crate) fn ok_rate(r: &RunResult) -> f64 {
    let ok = r.records.iter().filter(|a| a.ok && a.end_ms < r.duration_ms).count();
    ok as f64 / (r.duration_ms / 1e3)
}

fn benefit_summary(runs: &[RunResult]) -> BenefitSummary {
    let p99 = |r: &RunResult| p99_between(r, 0.0, r.duration_ms);
    let (sh, si) = (run(runs, "sharded, overload"), run(runs, "single node, overload"));
    let offered = sh.records.len() as f64 / (sh.duration_ms / 1e3);
    let crash_failed = |r: &RunResult| failed_between(r, fault_at(r, "crash"), fault_at(r, "restart"));
    BenefitSummary {
        offered_per_s: offered,
        sharded_ok_per_s: ok_rate(sh),
        single_ok_per_s: ok_rate(si),
        sharded_p99_ms: p99(sh),
        single_p99_ms: p99(si),
        sharded_failed_in_crash: crash_failed(run(runs, "leader crash")),
        single_failed_in_crash: crash_failed(run(runs, "single node crash")),
    }
}

/// Every measurement of the report.
/// `merged`: the accounts merged on read.
pub fn summarize(o: &SocialOptions, runs: &[RunResult], merged: usize) -> Summary {
    let base = run(runs, "baseline");
    let timelines: Vec<&ActionRecord> =
        base.records.iter().filter(|a| a.kind == Kind::ReadTimeline && a.ok).collect();
    Summary {
        latency: Kind::ALL.iter().map(|&k| latency(base, k)).collect(),
        stale_timelines: frac(
            timelines.iter().filter(|a| a.missing > 0 && a.oldest_missing_ms > STALE_AFTER_MS).count(),
            timelines.len(),
        ),
        fanout: fanout_summary(o, runs, merged),
        crash: crash_summary(runs),
        partition: partition_summary(runs),
        cache: cache_summary(runs),
        cross_shard: cross_shard_summary(runs),
        benefits: benefit_summary(runs),
    }
}

// ----- the pages --------------------------------------------------------------------------------

/// Write `report.json`, the plots and `index.html` into `dir`; returns the files written.
pub fn write_report(report: &SocialReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);
    let mut stem = |name: &str| {
        let p = dir.join(name);
        written.push(p.with_extension("svg"));
        written.push(p.with_extension("png"));
        p
    };
    followers_plot(report, &stem("followers"))?;
    day_plot(report, &stem("day"))?;
    celebrity_plot(report, &stem("celebrity"))?;
    crash_plot(report, &stem("crash"))?;
    likes_plot(report, &stem("likes"))?;
    if report.summary.cache.is_some() {
        cache_plot(report, &stem("cache"))?;
    }
    throughput_plot(report, &stem("throughput"))?;
    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
}

pub(crate) fn series(label: &str, points: Vec<(f64, f64)>, color: usize, style: LineStyle) -> StyledSeries {
    StyledSeries { label: label.to_string(), points, style, color }
}

pub(crate) fn range(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

fn followers_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = report
        .follower_counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| ((i + 1) as f64, c as f64))
        .collect();
    let (_, hi) = range(points.iter().map(|p| p.1));
    let threshold = report.options.fanout_threshold as f64;
    let n = points.len().max(2) as f64;
    plot::xy_marked(
        stem,
        &XyChart {
            title: "Followers by popularity rank (power law): above the line, merged on read",
            x_label: "rank (1 = most followed), log",
            y_label: "followers, log",
            log_x: true,
            x_range: (1.0, n * 1.2),
            y_range: (0.8, hi * 1.5),
        },
        true,
        &[
            series("followers", points, 0, LineStyle::Solid),
            series("fan-out threshold", vec![(1.0, threshold), (n * 1.2, threshold)], 3, LineStyle::Dashed),
        ],
        &[],
    )
}

/// Points of a line: (x, y).
pub(crate) type Line = Vec<(f64, f64)>;

/// Actions per second and p99 latency per second over a run.
pub(crate) fn per_second(r: &RunResult) -> (Line, Line) {
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for a in &r.records {
        if a.start_ms >= 0.0 && a.start_ms < r.duration_ms {
            buckets.entry((a.start_ms / 1e3) as u64).or_default().push(if a.ok {
                a.end_ms - a.start_ms
            } else {
                f64::NAN
            });
        }
    }
    let rate = buckets.iter().map(|(s, v)| (*s as f64 + 0.5, v.len() as f64)).collect();
    let p99 = buckets
        .iter()
        .map(|(s, v)| {
            let ok: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            (*s as f64 + 0.5, percentile(&ok, 0.99))
        })
        .filter(|(_, p)| p.is_finite())
        .collect();
    (rate, p99)
}

/// An HTML table of latency per kind of action, left open (`</table>` is the caller's).
pub(crate) fn latency_table(body: &mut String, latency: &[KindStats]) {
    body.push_str("<table><tr><th>action</th><th>count</th><th>ok</th><th>p50 ms</th><th>p99 ms</th><th>requests each</th></tr>\n");
    for k in latency {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{:.2} %</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            k.kind.name(),
            k.count,
            100.0 * k.ok_fraction,
            ms(k.p50_ms),
            ms(k.p99_ms),
            k.requests
        );
    }
}

fn day_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let title = "One compressed day (baseline): actions per second and their p99 latency";
    rate_and_p99_plot(run(&report.runs, "baseline"), title, stem)
}

/// A run's actions per second and their p99 latency, per second of the run.
pub(crate) fn rate_and_p99_plot(r: &RunResult, title: &str, stem: &Path) -> anyhow::Result<()> {
    let (rate, p99) = per_second(r);
    let (_, hi) = range(rate.iter().map(|p| p.1).chain(p99.iter().map(|p| p.1)));
    plot::xy_marked(
        stem,
        &XyChart {
            title,
            x_label: "time (s)",
            y_label: "actions/s  |  p99 ms",
            log_x: false,
            x_range: (0.0, r.duration_ms / 1e3),
            y_range: (0.0, hi * 1.1),
        },
        false,
        &[
            series("actions/s", rate, 0, LineStyle::Solid),
            series("p99 latency (ms)", p99, 3, LineStyle::Dashed),
        ],
        &[],
    )
}

fn celebrity_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    let mut hi = 1.0f64;
    for (i, name) in ["baseline", "push-all"].iter().enumerate() {
        let r = run(&report.runs, name);
        let (_, p99) = per_second(r);
        hi = hi.max(p99.iter().map(|p| p.1).fold(0.0, f64::max));
        let label = if i == 0 {
            "hybrid: p99 of all actions (ms)"
        } else {
            "fan-out for all: p99 of all actions (ms)"
        };
        lines.push(series(label, p99, i * 3, if i == 0 { LineStyle::Solid } else { LineStyle::Dashed }));
    }
    let at = report.options.duration_s / 4.0;
    lines.push(series("the celebrity posts", vec![(at, 0.0), (at, hi * 1.1)], 2, LineStyle::Dotted));
    plot::xy_marked(
        stem,
        &XyChart {
            title: "A celebrity's post: fan-out on write for all vs the hybrid",
            x_label: "time (s)",
            y_label: "p99 latency (ms), log",
            log_x: false,
            x_range: (0.0, report.options.duration_s),
            y_range: (0.5, hi * 1.5),
        },
        true,
        &lines,
        &[],
    )
}

fn crash_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let r = run(&report.runs, "leader crash");
    let bucket_ms = 100.0;
    let mut lines = Vec::new();
    let mut hi = 1.0f64;
    for (i, &s) in r.requests_per_shard.keys().enumerate() {
        let mut counts: BTreeMap<u64, f64> = BTreeMap::new();
        let last = (r.duration_ms / bucket_ms) as u64;
        for b in 0..=last {
            counts.insert(b, 0.0);
        }
        for o in
            r.ops.iter().filter(|o| o.shard == s && o.ok && o.done_ms < r.duration_ms && o.done_ms >= 0.0)
        {
            *counts.entry((o.done_ms / bucket_ms) as u64).or_default() += 1000.0 / bucket_ms;
        }
        let points: Vec<(f64, f64)> =
            counts.into_iter().map(|(b, c)| (b as f64 * bucket_ms / 1e3, c)).collect();
        hi = hi.max(points.iter().map(|p| p.1).fold(0.0, f64::max));
        let crashed = if r.crashed_shards.contains(&s) { " (leader crashed)" } else { "" };
        lines.push(series(&format!("shard {s}{crashed}"), points, i, LineStyle::Solid));
    }
    let markers: Vec<Marker> = r
        .faults
        .iter()
        .map(|(t, _)| Marker { x: t / 1e3, y: hi * 1.05, color: 7, legend: "crash, restart".into() })
        .collect();
    plot::xy_marked(
        stem,
        &XyChart {
            title: "A shard leader crashes: successful operations per second, per shard",
            x_label: "time (s)",
            y_label: "ok operations/s",
            log_x: false,
            x_range: (0.0, r.duration_ms / 1e3),
            y_range: (0.0, hi * 1.15),
        },
        false,
        &lines,
        &markers,
    )
}

fn likes_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let r = run(&report.runs, "partition");
    let mut per_node: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for (t, vals) in &r.hot_counter {
        for (node, v) in vals {
            per_node.entry(*node).or_default().push((t / 1e3, *v as f64));
        }
    }
    let hi = r.hot_counter.iter().flat_map(|(_, v)| v.iter().map(|x| x.1 as f64)).fold(1.0, f64::max);
    let x_hi = r.hot_counter.last().map_or(1.0, |(t, _)| t / 1e3);
    let mut lines: Vec<StyledSeries> = per_node
        .into_iter()
        .enumerate()
        .map(|(i, (node, pts))| series(&format!("replica on machine {node}"), pts, i, LineStyle::Solid))
        .collect();
    for (t, f) in &r.faults {
        lines.push(series(f, vec![(t / 1e3, 0.0), (t / 1e3, hi * 1.05)], 7, LineStyle::Dotted));
    }
    plot::xy_marked(
        stem,
        &XyChart {
            title: "The hot post's like counter on each replica: diverges in the partition, merges after",
            x_label: "time (s)",
            y_label: "likes",
            log_x: false,
            x_range: (0.0, x_hi),
            y_range: (0.0, hi * 1.1),
        },
        false,
        &lines,
        &[],
    )
}

fn cache_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let r = run(&report.runs, "cache node dies");
    let points: Vec<(f64, f64)> = r
        .cache_timeline
        .iter()
        .filter(|(t, h, m)| *t <= r.duration_ms && h + m > 0)
        .map(|(t, h, m)| (t / 1e3, 100.0 * *h as f64 / (h + m) as f64))
        .collect();
    let misses: Vec<(f64, f64)> = r
        .cache_timeline
        .iter()
        .filter(|(t, _, _)| *t <= r.duration_ms)
        .map(|(t, _, m)| (t / 1e3, *m as f64 / 0.25 / 10.0))
        .collect();
    let hi = misses.iter().map(|p| p.1).fold(100.0, f64::max);
    let death = fault_at(r, "cache node") / 1e3;
    plot::xy_marked(
        stem,
        &XyChart {
            title: "A cache node dies: hit ratio, and the misses the shards take",
            x_label: "time (s)",
            y_label: "hit ratio (%)  |  misses/s ÷ 10",
            log_x: false,
            x_range: (0.0, r.duration_ms / 1e3),
            y_range: (0.0, hi * 1.1),
        },
        false,
        &[
            series("hit ratio (%)", points, 0, LineStyle::Solid),
            series("misses per second ÷ 10", misses, 3, LineStyle::Dashed),
            series("cache node 1 dies", vec![(death, 0.0), (death, hi * 1.05)], 7, LineStyle::Dotted),
        ],
        &[],
    )
}

fn throughput_plot(report: &SocialReport, stem: &Path) -> anyhow::Result<()> {
    let lat = |name: &str| -> Vec<f64> {
        let r = run(&report.runs, name);
        r.records
            .iter()
            .filter(|a| a.ok && a.start_ms < r.duration_ms)
            .map(|a| (a.end_ms - a.start_ms).max(0.01))
            .collect()
    };
    let curves = [
        Curve {
            label: format!("sharded ({} machines)", report.options.nodes),
            values: lat("sharded, overload"),
        },
        Curve { label: "single node".into(), values: lat("single node, overload") },
    ];
    let hi = curves.iter().flat_map(|c| c.values.iter().copied()).fold(1.0, f64::max);
    plot::cdf(
        stem,
        &plot::CdfChart {
            title: "The same overload on the sharded deployment and on one machine: action latency",
            x_label: "latency (ms), log",
            log_x: true,
            x_range: (0.1, hi * 1.5),
        },
        &curves,
    )
}

pub(crate) fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

fn html_report(report: &SocialReport) -> String {
    let s = &report.summary;
    let o = &report.options;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p>{} users (following {}–{} each, Zipf {}), {} machines, {} shards × {} replicas, {} cache nodes{}, \
         fan-out threshold {} followers ({} accounts merged on read), {} s per run at {} actions/s mean. Seed {}.</p>",
        o.users, o.following.0, o.following.1, o.skew, o.nodes, o.shards, o.replicas,
        if o.cache { o.cache_nodes } else { 0 },
        if o.cache { "" } else { " (--no-cache)" },
        o.fanout_threshold, report.celebrities, o.duration_s, o.rate_per_s, o.seed
    );
    body.push_str("<h2>The users</h2><img src=\"followers.svg\" width=\"800\">\n");
    body.push_str(
        "<h2>1. Baseline: the hybrid design through a day</h2><img src=\"day.svg\" width=\"800\">\n",
    );
    latency_table(&mut body, &s.latency);
    let _ = writeln!(
        body,
        "</table><p>Timeline reads missing a post acknowledged more than {} s before: {:.2} %.</p>",
        STALE_AFTER_MS / 1e3,
        100.0 * s.stale_timelines
    );
    let f = &s.fanout;
    let _ = writeln!(
        body,
        "<h2>2. A celebrity's post (the hot shard, the fan-out cost)</h2><img src=\"celebrity.svg\" width=\"800\">\
         <table><tr><th></th><th>hybrid</th><th>fan-out for all</th></tr>\
         <tr><td>timeline writes for the post of the most followed account ({} followers)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>time until in every follower's timeline (ms)</td><td>0 (merged on read)</td><td>{}</td></tr>\
         <tr><td>of those writes, failed</td><td>–</td><td>{}</td></tr>\
         <tr><td>timeline writes per post, mean</td><td>{:.1}</td><td>{:.1}</td></tr>\
         <tr><td>storage requests per timeline read, mean</td><td>{:.2}</td><td>{:.2}</td></tr>\
         <tr><td>p99 of all actions in the second after the post (ms)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>requests per shard</td><td>{:?}</td><td>{:?}</td></tr>\
         <tr><td>busiest shard / mean (requests)</td><td>{:.2}</td><td>{:.2}</td></tr>\
         <tr><td>keys per shard (a pipelined part counts its keys)</td><td>{:?}</td><td>{:?}</td></tr>\
         <tr><td>keys/s on a shard: busiest 250 ms; mean</td><td>{:.0}; {:.0}</td><td>{:.0}; {:.0}</td></tr></table>\
         <p>Ordinary posts (fanned out in both): p99 {} ms until in every follower's timeline. The fan-out \
         service groups a post's timeline writes by shard and pipelines them, at most {} per request.</p>",
        f.celebrity_followers, f.hybrid_celebrity_writes, f.push_celebrity_writes,
        f.push_celebrity_fanout_ms.map_or("did not finish".into(), ms),
        f.push_celebrity_failed,
        f.hybrid_writes_per_post, f.push_writes_per_post, f.hybrid_requests_per_read, f.push_requests_per_read,
        ms(f.hybrid_p99_after_post_ms), ms(f.push_p99_after_post_ms),
        f.hybrid_shard_requests, f.push_shard_requests, f.hybrid_hot_shard_ratio, f.push_hot_shard_ratio,
        f.hybrid_shard_keys, f.push_shard_keys, f.hybrid_shard_keys_peak_per_s, f.hybrid_shard_keys_mean_per_s,
        f.push_shard_keys_peak_per_s, f.push_shard_keys_mean_per_s,
        ms(f.hybrid_fanout_p99_ms),
        f.fanout_batch
    );
    let c = &s.crash;
    let mut rows = String::new();
    for (shard, w) in &c.unavailable_ms {
        let _ = write!(
            rows,
            "<tr><td>{shard}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if c.crashed_shards.contains(shard) { " (its leader crashed)" } else { "" },
            ms(*w),
            c.failed.get(shard).copied().unwrap_or(0),
            c.slow.get(shard).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        body,
        "<h2>3. A shard leader crashes</h2><img src=\"crash.svg\" width=\"800\">\
         <p>Machine {} crashed at {:.1} s, restarted at {:.1} s.</p>\
         <table><tr><th>shard</th><th>unavailable window (ms)</th><th>failed operations</th><th>slow operations (&gt; {DISRUPTED_MS} ms)</th></tr>{rows}</table>\
         <p>What users saw: {:.2} % of actions between crash and restart failed; {} timeline reads failed; \
         {} follows were left one-sided.</p>",
        c.node.map_or("–".into(), |n| n.to_string()), c.crash_ms / 1e3, c.restart_ms / 1e3,
        100.0 * c.actions_failed_fraction, c.timeline_reads_failed, c.half_done_follows
    );
    let p = &s.partition;
    let _ = writeln!(
        body,
        "<h2>4. A network partition: likes</h2><img src=\"likes.svg\" width=\"800\">\
         <p>Partition at {:.1} s, healed at {:.1} s. The hot post's counter differed by up to <b>{}</b> likes \
         between replicas; {} likes were accepted during the partition. Like-count reads that showed fewer likes \
         than already acknowledged: {:.1} % during the partition, {:.1} % outside it.</p>\
         <p>Acknowledged likes: {}, unknown outcome: {}. Final value per replica: {:?}. \
         <b>{}</b>{}</p><p>Timeline reads that failed during the partition: {:.2} %.</p>",
        p.partition_ms / 1e3, p.heal_ms / 1e3, p.max_divergence, p.likes_during_partition,
        100.0 * p.stale_reads_during, 100.0 * p.stale_reads_outside, p.likes_acked, p.likes_unknown,
        p.final_values,
        if p.converged { "Converged: no like lost, none counted twice." } else { "NOT converged." },
        p.converged_after_heal_ms.map_or(String::new(), |t| format!(" (all replicas agreed {t:.0} ms after the heal)")),
        100.0 * p.timeline_reads_failed_during
    );
    if let Some(c) = &s.cache {
        let _ = writeln!(
            body,
            "<h2>5. A cache node dies</h2><img src=\"cache.svg\" width=\"800\">\
             <p>At {:.1} s. Hit ratio {:.1} % before, {:.1} % in the next 500 ms; misses sent to the shards \
             {:.0}/s before, {:.0}/s after.</p>",
            c.death_ms / 1e3,
            100.0 * c.hit_ratio_before,
            100.0 * c.hit_ratio_after,
            c.misses_per_s_before,
            c.misses_per_s_after
        );
    }
    let x = &s.cross_shard;
    let _ = writeln!(
        body,
        "<h2>Cross-shard operations: follows</h2><p>{} follows, {} of them on two shards ({:.0} %). \
         p50 {} ms on one shard, {} ms across two. They are two independent writes: a fault between them \
         leaves the graph one-sided (see 3).</p>",
        x.follows,
        x.cross_shard,
        100.0 * frac(x.cross_shard, x.follows),
        ms(x.p50_same_shard_ms),
        ms(x.p50_cross_shard_ms)
    );
    let b = &s.benefits;
    let _ = writeln!(
        body,
        "<h2>6. The benefits: against one machine</h2><img src=\"throughput.svg\" width=\"800\">\
         <table><tr><th></th><th>sharded</th><th>single node</th></tr>\
         <tr><td>successful actions/s at {:.0} offered/s</td><td>{:.0}</td><td>{:.0}</td></tr>\
         <tr><td>p99 latency under that load (ms)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>actions failed between a crash and the restart</td><td>{:.2} %</td><td>{:.2} %</td></tr></table>",
        b.offered_per_s, b.sharded_ok_per_s, b.single_ok_per_s, ms(b.sharded_p99_ms), ms(b.single_p99_ms),
        100.0 * b.sharded_failed_in_crash, 100.0 * b.single_failed_in_crash
    );
    let mut runs = String::new();
    for r in &report.runs {
        let faults: Vec<String> = r.faults.iter().map(|(t, f)| format!("{:.1} s {f}", t / 1e3)).collect();
        let _ = write!(
            runs,
            "<tr><td>{}</td><td>{}</td><td>{}×{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            r.name,
            r.sim.nodes,
            r.sim.shards,
            r.sim.replicas,
            r.records.len(),
            faults.join("; "),
            r.wall_s
        );
    }
    let _ = writeln!(
        body,
        "<h2>The runs</h2><table><tr><th>run</th><th>machines</th><th>shards × replicas</th><th>actions</th>\
         <th>faults</th><th>wall s</th></tr>{runs}</table>"
    );
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>concord lab social</title><style>\
         body{{font-family:sans-serif;max-width:980px;margin:2em auto}} table{{border-collapse:collapse}} \
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}\
         </style></head><body><h1>Lab 1: a distributed social platform on Concord</h1>{body}\
         <p>Guide: docs/labs/social.md. Numbers: report.json.</p></body></html>\n"
    )
}

/// The headline numbers, as text for the terminal.
pub fn text_summary(report: &SocialReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "concord lab social: {} users, {} accounts merged on read",
        report.options.users, report.celebrities
    );
    for k in &s.latency {
        let _ = writeln!(
            out,
            "  {:<19} {:>6} actions  ok {:>6.2} %  p50 {:>7} ms  p99 {:>7} ms",
            k.kind.name(),
            k.count,
            100.0 * k.ok_fraction,
            ms(k.p50_ms),
            ms(k.p99_ms)
        );
    }
    let f = &s.fanout;
    let _ =
        writeln!(
        out,
        "celebrity post ({} followers): {} timeline writes (hybrid) vs {} (fan-out for all, {} per request, \
         done in {} ms, {} failed); keys/s on a shard, busiest 250 ms (mean): {:.0} ({:.0}) hybrid vs {:.0} ({:.0})",
        f.celebrity_followers, f.hybrid_celebrity_writes, f.push_celebrity_writes, f.fanout_batch,
        f.push_celebrity_fanout_ms.map_or("–".into(), ms), f.push_celebrity_failed,
        f.hybrid_shard_keys_peak_per_s, f.hybrid_shard_keys_mean_per_s,
        f.push_shard_keys_peak_per_s, f.push_shard_keys_mean_per_s
    );
    let c = &s.crash;
    let windows: Vec<String> =
        c.unavailable_ms.iter().map(|(s, w)| format!("shard {s}: {w:.0} ms")).collect();
    let _ = writeln!(out, "leader crash (shard {:?}): unavailable {}", c.crashed_shards, windows.join(", "));
    let p = &s.partition;
    let _ = writeln!(
        out,
        "partition: replicas differed by up to {} likes; after the heal {:?} ({})",
        p.max_divergence,
        p.final_values,
        if p.converged { "converged" } else { "NOT converged" }
    );
    if let Some(c) = &s.cache {
        let _ = writeln!(
            out,
            "cache node dies: hit ratio {:.1} % → {:.1} %",
            100.0 * c.hit_ratio_before,
            100.0 * c.hit_ratio_after
        );
    }
    let b = &s.benefits;
    let _ = writeln!(
        out,
        "overload {:.0} actions/s: sharded {:.0} ok/s, single node {:.0} ok/s",
        b.offered_per_s, b.sharded_ok_per_s, b.single_ok_per_s
    );
    out
}

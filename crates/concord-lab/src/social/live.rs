//! The lab on another store than the simulator: the same users, arrival process and app code
//! ([`super::run_on`]), a smaller report.
//!
//! `concord lab social --real` (the `concord` crate: it starts real `concord up` clusters and
//! implements [`LabStore`] over their Redis doors) runs the **baseline** here, and optionally the
//! **leader crash**. What differs from a simulated run: time is wall-clock time (the run lasts as
//! long as it says), the machines' CPU is real (and shared by every process on the computer, the
//! lab's client included), nothing is deterministic, and only the faults the store can inject
//! exist. The report therefore states what a client can measure: latency and success per action,
//! requests per shard, the cache's hits, the errors by message, timelines that missed a post.

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
}

impl LiveRun {
    pub fn name(self) -> &'static str {
        match self {
            LiveRun::Baseline => "baseline",
            LiveRun::LeaderCrash => "leader crash",
        }
    }
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
    if run == LiveRun::LeaderCrash {
        let d = options.duration_s;
        spec.faults = vec![(d / 3.0, Fault::CrashShardLeader), (2.0 * d / 3.0, Fault::Restart)];
    }
    let result = run_on(&spec, users, store);
    let summary = summarize(&result, store);
    (result, summary)
}

fn summarize(r: &RunResult, store: &dyn LabStore) -> LiveSummary {
    let timelines: Vec<_> = r.records.iter().filter(|a| a.kind == Kind::ReadTimeline && a.ok).collect();
    let (_, hot) = report::shard_loads(r);
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
            "  requests per shard {:?} (busiest/mean {:.2}); cache hits {} misses {} ({:.1} %); \
             fan-out p99 {} ms over {} posts",
            s.shard_requests.values().collect::<Vec<_>>(),
            s.hot_shard_ratio,
            s.cache_hits,
            s.cache_misses,
            100.0 * s.cache_hit_ratio,
            report::ms(s.fanout_p99_ms),
            s.fanned_out_posts
        );
        let _ = writeln!(
            out,
            "  failed: {} actions, {} storage operations{}; stale timelines {:.2} %",
            s.actions_failed,
            s.ops_failed,
            if s.errors.is_empty() { String::new() } else { format!(" {:?}", s.errors) },
            100.0 * s.stale_timelines
        );
        for (t, f) in &s.faults {
            let _ = writeln!(out, "  at {:.1} s: {f}", t / 1e3);
        }
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
            "</table><p>Requests per shard: {:?} (busiest / mean {:.2}). Cache: {} hits, {} misses \
             ({:.1} %). Fan-out: {} posts, p99 {} ms until in every follower's timeline. Failed: {} actions, \
             {} storage operations{}. Timeline reads missing a post older than {} s: {:.2} %.{}</p>",
            s.shard_requests,
            s.hot_shard_ratio,
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
            if faults.is_empty() { String::new() } else { format!(" Faults: {}.", faults.join("; ")) }
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

//! The cache lab's report: `report.json`, plots (SVG and PNG), `index.html`, and a text summary.
//!
//! Each plot answers one question of the guide (`docs/labs/cache.md`); its caption in the HTML
//! page says which.

use super::hit_ratio::{Curve, Sizing};
use super::staleness::{Setup, PARTITION};
use super::{herd, CacheLabReport, SKEWS};
use crate::plot::{self, CdfChart, LineStyle, StyledSeries, XyChart};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `0.99` → `099`: a file-name part without a dot (a dot would be taken for an extension).
fn skew_slug(skew: f64) -> String {
    format!("{:03.0}", skew * 100.0)
}

fn pct_size(fraction: f64) -> String {
    let p = 100.0 * fraction;
    if p < 1.0 {
        format!("{p:.2} %")
    } else if p.fract().abs() > 1e-9 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

impl CacheLabReport {
    /// The results as text (what `concord lab cache` prints).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if self.parts[0] {
            if let Some(c) = self.hit_ratio.first() {
                let _ = writeln!(
                    out,
                    "1. Hit ratio vs cache size: look-aside replay of {} Zipf requests over {} keys (seed {}); size = % of the working set's bytes",
                    c.requests, c.keys, self.seed
                );
            }
            let _ = writeln!(
                out,
                "   {:<5} {:<26} {:>8} {:>7} {:>7} {:>8} {:>7} {:>7}",
                "skew", "values", "size", "LRU", "S3-FIFO", "S3−LRU", "Che", "top-k"
            );
            for c in &self.hit_ratio {
                for p in &c.points {
                    let _ = writeln!(
                        out,
                        "   {:<5} {:<26} {:>8} {:>7.4} {:>7.4} {:>+8.4} {:>7.4} {:>7}",
                        c.skew,
                        c.sizing.describe(),
                        pct_size(p.fraction),
                        p.lru,
                        p.s3fifo,
                        p.s3fifo - p.lru,
                        p.che_lru,
                        p.top_keys.map_or("–".to_string(), |t| format!("{t:.4}"))
                    );
                }
            }
            let measured: usize = self.hit_ratio.iter().map(|c| c.points.len()).sum();
            if self.shortfalls.is_empty() {
                let _ = writeln!(
                    out,
                    "   S3-FIFO ≥ LRU at all {measured} measured sizes (every skew, both sizings)."
                );
            } else {
                let _ = writeln!(
                    out,
                    "   S3-FIFO < LRU at {} of {measured} measured sizes:",
                    self.shortfalls.len()
                );
                for s in &self.shortfalls {
                    let _ = writeln!(
                        out,
                        "     skew {}, {}, {}: S3-FIFO {:.4} < LRU {:.4} ({:+.4})",
                        s.skew,
                        s.sizing.describe(),
                        pct_size(s.fraction),
                        s.s3fifo,
                        s.lru,
                        s.s3fifo - s.lru
                    );
                }
            }
        }
        if !self.tier.is_empty() {
            let _ = writeln!(
                out,
                "2. The database with and without the tier (the same open-loop workload; seed {})",
                self.seed
            );
            let _ = writeln!(
                out,
                "   {:<22} {:>8} {:>9} {:>14} {:>8} {:>8} {:>8}",
                "setup", "reads", "hit ratio", "db reads/s", "p50 ms", "p99 ms", "max ms"
            );
            for r in &self.tier {
                let _ = writeln!(
                    out,
                    "   {:<22} {:>8} {:>9} {:>14.0} {:>8.2} {:>8.2} {:>8.2}{}",
                    tier_label(r.caches),
                    r.reads,
                    if r.caches == 0 { "–".to_string() } else { format!("{:.3}", r.hit_ratio) },
                    r.db_reads_per_s,
                    r.read_p50_ms,
                    r.read_p99_ms,
                    r.read_max_ms,
                    checks_note(&r.violations)
                );
            }
        }
        if !self.herd.is_empty() {
            let _ = writeln!(
                out,
                "3. The hot key dropped at {:.0} ms under many readers: database reads in the {:.0} ms after it (per {:.0} ms bucket)",
                herd::HERD_AT.as_secs_f64() * 1e3,
                herd::WINDOW.as_secs_f64() * 1e3,
                herd::BUCKET.as_secs_f64() * 1e3
            );
            for h in &self.herd {
                let _ = writeln!(
                    out,
                    "   leases {:<3}: peak {:>4} per bucket, total {:>5} (the same window before: {:>4}); lease waits {}, read p99 {:.2} ms, max {:.2} ms{}",
                    if h.leases { "on" } else { "off" },
                    h.peak,
                    h.total,
                    h.before,
                    h.lease_waits,
                    h.read_p99_ms,
                    h.read_max_ms,
                    checks_note(&h.violations)
                );
            }
        }
        if !self.staleness.is_empty() {
            let _ = writeln!(
                out,
                "4. Staleness of cached reads (partition of the cache nodes from the database {:.0}–{:.0} ms in the partition setups)",
                PARTITION.0.as_secs_f64() * 1e3,
                PARTITION.1.as_secs_f64() * 1e3
            );
            for r in &self.staleness {
                let _ = writeln!(
                    out,
                    "   {:<32} stale {:>5} of {:>6} reads ({:.3} %), age p50 {}, p99 {}, max {:>8.1} ms; bound {:.0} ms (TTL {:.0} ms): {} over it",
                    r.setup.describe(),
                    r.stale_reads,
                    r.reads,
                    100.0 * r.stale_reads as f64 / r.reads.max(1) as f64,
                    age_quantile(&r.ages_ms, 0.5),
                    age_quantile(&r.ages_ms, 0.99),
                    r.max_age_ms,
                    r.bound_ms,
                    r.ttl_ms,
                    r.bound_violations
                );
            }
        }
        out
    }
}

fn tier_label(caches: u32) -> String {
    match caches {
        0 => "no tier (Raft alone)".to_string(),
        1 => "tier of 1 cache node".to_string(),
        c => format!("tier of {c} cache nodes"),
    }
}

fn checks_note(violations: &[String]) -> String {
    if violations.is_empty() {
        String::new()
    } else {
        format!(" [{} failed check(s): {}]", violations.len(), violations[0])
    }
}

/// The `p` quantile of sorted ages, as text.
fn age_quantile(sorted_ms: &[f64], p: f64) -> String {
    if sorted_ms.is_empty() {
        return "–".into();
    }
    let i = ((p * sorted_ms.len() as f64).ceil() as usize).clamp(1, sorted_ms.len()) - 1;
    format!("{:.1} ms", sorted_ms[i])
}

fn html_checks(violations: &[String]) -> String {
    if violations.is_empty() {
        "passed".into()
    } else {
        format!(
            "<span class=\"bad\">{} failed: {}</span>",
            violations.len(),
            crate::html_escape(&violations[0])
        )
    }
}

fn written_pair(written: &mut Vec<PathBuf>, stem: &Path) {
    written.push(stem.with_extension("svg"));
    written.push(stem.with_extension("png"));
}

/// Write `report.json`, every plot (SVG and PNG) and `index.html` into `dir`.
pub fn write_report(report: &CacheLabReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);

    if report.parts[0] && !report.hit_ratio.is_empty() {
        hit_ratio_plots(report, dir, &mut written)?;
    }
    if !report.tier.is_empty() {
        tier_plots(report, dir, &mut written)?;
    }
    if !report.herd.is_empty() {
        herd_plot(report, dir, &mut written)?;
    }
    if !report.staleness.is_empty() {
        staleness_plot(report, dir, &mut written)?;
    }

    // Every simulation's scenario file, to replay and step through with `concord sim` / `view`.
    for (name, text) in scenario_files(report) {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }

    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
}

/// `(file name, scenario text)` of every simulation of parts 2–4.
fn scenario_files(report: &CacheLabReport) -> Vec<(String, &str)> {
    let mut files = Vec::new();
    for r in &report.tier {
        files.push((format!("scenario-tier-{}.toml", r.caches), r.scenario_toml.as_str()));
    }
    for h in &report.herd {
        let leases = if h.leases { "on" } else { "off" };
        files.push((format!("scenario-herd-leases-{leases}.toml"), h.scenario_toml.as_str()));
    }
    for r in &report.staleness {
        files.push((format!("scenario-staleness-{}.toml", r.setup.slug()), r.scenario_toml.as_str()));
    }
    files
}

/// The x range of part 1's charts (percent of the working set, log scale), a little beyond the
/// measured sizes.
fn size_range(report: &CacheLabReport) -> (f64, f64) {
    let fractions = report.hit_ratio.iter().flat_map(|c| c.points.iter().map(|p| p.fraction));
    let (lo, hi) = fractions.fold((f64::MAX, 0.0f64), |(lo, hi), f| (lo.min(f), hi.max(f)));
    (100.0 * lo / 1.25, 100.0 * hi * 1.25)
}

fn hit_ratio_plots(report: &CacheLabReport, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let x_range = size_range(report);
    let line = |c: &Curve, f: fn(&super::hit_ratio::Point) -> Option<f64>| -> Vec<(f64, f64)> {
        c.points.iter().filter_map(|p| f(p).map(|y| (100.0 * p.fraction, y))).collect()
    };
    // Q1.1/Q1.2: one chart per skew, both policies and both sizings, with the references.
    for skew in SKEWS {
        let (Some(eq), varied) = (report.curve(skew, Sizing::Equal), report.curve(skew, Sizing::Varied))
        else {
            continue;
        };
        let mut series = vec![
            StyledSeries {
                label: "LRU, equal values".into(),
                points: line(eq, |p| Some(p.lru)),
                style: LineStyle::Solid,
                color: 0,
            },
            StyledSeries {
                label: "S3-FIFO, equal values".into(),
                points: line(eq, |p| Some(p.s3fifo)),
                style: LineStyle::Solid,
                color: 1,
            },
            StyledSeries {
                label: "Che's approximation of LRU".into(),
                points: line(eq, |p| Some(p.che_lru)),
                style: LineStyle::Dashed,
                color: 0,
            },
            StyledSeries {
                label: "most popular keys (static optimum)".into(),
                points: line(eq, |p| p.top_keys),
                style: LineStyle::Dashed,
                color: 2,
            },
        ];
        if let Some(v) = varied {
            series.push(StyledSeries {
                label: "LRU, varied values".into(),
                points: line(v, |p| Some(p.lru)),
                style: LineStyle::Dotted,
                color: 0,
            });
            series.push(StyledSeries {
                label: "S3-FIFO, varied values".into(),
                points: line(v, |p| Some(p.s3fifo)),
                style: LineStyle::Dotted,
                color: 1,
            });
        }
        let title = format!(
            "Hit ratio vs cache size, Zipf {skew} ({} keys, {} requests, seed {})",
            eq.keys, eq.requests, report.seed
        );
        let chart = XyChart {
            title: &title,
            x_label: "cache size (% of the working set's bytes, log scale)",
            y_label: "hit ratio",
            log_x: true,
            x_range,
            y_range: (0.0, 1.0),
        };
        let stem = dir.join(format!("hit-ratio-zipf-{}", skew_slug(skew)));
        plot::xy_marked(&stem, &chart, false, &series, &[])?;
        written_pair(written, &stem);
    }

    // Q1.3: the gap S3-FIFO − LRU, every skew and sizing, with the zero line.
    let mut series = Vec::new();
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (i, skew) in SKEWS.iter().enumerate() {
        for sizing in Sizing::ALL {
            let Some(c) = report.curve(*skew, sizing) else { continue };
            let points: Vec<(f64, f64)> =
                c.points.iter().map(|p| (100.0 * p.fraction, p.s3fifo - p.lru)).collect();
            for &(_, y) in &points {
                lo = lo.min(y);
                hi = hi.max(y);
            }
            series.push(StyledSeries {
                label: format!("Zipf {skew}, {}", sizing.describe()),
                points,
                style: if sizing == Sizing::Equal { LineStyle::Solid } else { LineStyle::Dotted },
                color: 3 + i,
            });
        }
    }
    series.push(StyledSeries {
        label: "0: S3-FIFO = LRU".into(),
        points: vec![(x_range.0, 0.0), (x_range.1, 0.0)],
        style: LineStyle::Dashed,
        color: 5 + SKEWS.len(),
    });
    let title = "S3-FIFO − LRU hit ratio at the same byte budget (above 0: S3-FIFO hits more)";
    let chart = XyChart {
        title,
        x_label: "cache size (% of the working set's bytes, log scale)",
        y_label: "hit ratio difference",
        log_x: true,
        x_range,
        // Room below the curves for the legend (drawn lower right).
        y_range: (lo - 0.3 * (hi - lo) - 0.01, hi + 0.01),
    };
    let stem = dir.join("hit-ratio-gap");
    plot::xy_marked(&stem, &chart, false, &series, &[])?;
    written_pair(written, &stem);
    Ok(())
}

fn tier_plots(report: &CacheLabReport, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    // Q2.1: the database's read load over time.
    let mut y_max = 1.0f64;
    let series: Vec<StyledSeries> = report
        .tier
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let per_s = 1e3 / r.bucket_ms;
            let points: Vec<(f64, f64)> = r
                .db_reads_per_bucket
                .iter()
                .enumerate()
                .map(|(b, &n)| ((b as f64 + 0.5) * r.bucket_ms / 1e3, n as f64 * per_s))
                .collect();
            y_max = points.iter().fold(y_max, |m, p| m.max(p.1));
            StyledSeries {
                label: tier_label(r.caches),
                points,
                style: if r.caches == 0 { LineStyle::Dashed } else { LineStyle::Solid },
                color: i,
            }
        })
        .collect();
    let x_max = series.iter().flat_map(|s| s.points.last()).fold(0.1f64, |m, p| m.max(p.0));
    let chart = XyChart {
        title: "Reads reaching the database, same offered load (per second, per bucket)",
        x_label: "virtual time (s)",
        y_label: "database reads per second",
        log_x: false,
        x_range: (0.0, x_max),
        y_range: (0.0, y_max * 1.1),
    };
    let stem = dir.join("tier-db-load");
    plot::xy_marked(&stem, &chart, false, &series, &[])?;
    written_pair(written, &stem);

    // Q2.2: read latency against the number of cache nodes.
    let points = |f: fn(&super::tier::TierRow) -> f64| -> Vec<(f64, f64)> {
        report.tier.iter().map(|r| (r.caches as f64, f(r))).collect()
    };
    let y_max = report.tier.iter().map(|r| r.read_p99_ms).fold(1.0f64, f64::max) * 1.15;
    let x_max = report.tier.iter().map(|r| r.caches).max().unwrap_or(1).max(1) as f64;
    let series = vec![
        StyledSeries {
            label: "read p50".into(),
            points: points(|r| r.read_p50_ms),
            style: LineStyle::Solid,
            color: 0,
        },
        StyledSeries {
            label: "read p99".into(),
            points: points(|r| r.read_p99_ms),
            style: LineStyle::Solid,
            color: 3,
        },
    ];
    let chart = XyChart {
        title: "Client read latency with no tier (0) and with C cache nodes",
        x_label: "cache nodes (0: the database alone)",
        y_label: "read latency (ms)",
        log_x: false,
        x_range: (-0.2, x_max + 0.2),
        y_range: (0.0, y_max),
    };
    let stem = dir.join("tier-latency");
    plot::xy_marked(&stem, &chart, false, &series, &[])?;
    written_pair(written, &stem);
    Ok(())
}

fn herd_plot(report: &CacheLabReport, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    // Q3: database reads per bucket around the event, leases off and on.
    let at = herd::HERD_AT.as_secs_f64() * 1e3;
    let (from, to) = (at - 30.0, at + herd::WINDOW.as_secs_f64() * 1e3 + 20.0);
    let mut y_max = 1.0f64;
    let series: Vec<StyledSeries> = report
        .herd
        .iter()
        .map(|h| {
            let points: Vec<(f64, f64)> = h
                .db_reads_per_bucket
                .iter()
                .enumerate()
                .map(|(b, &n)| (b as f64 * h.bucket_ms - at, n as f64))
                .filter(|&(x, _)| x + at >= from && x + at <= to)
                .collect();
            y_max = points.iter().fold(y_max, |m, p| m.max(p.1));
            StyledSeries {
                label: format!(
                    "leases {} (peak {}, total {})",
                    if h.leases { "on" } else { "off" },
                    h.peak,
                    h.total
                ),
                points,
                style: LineStyle::Solid,
                color: if h.leases { 2 } else { 3 },
            }
        })
        .collect();
    let bucket = report.herd[0].bucket_ms;
    let title = format!("The hot key dropped at 0 ms under many readers: database reads per {bucket:.0} ms");
    let chart = XyChart {
        title: &title,
        x_label: "time since the hot key was dropped (ms)",
        y_label: "database reads per bucket",
        log_x: false,
        x_range: (from - at, to - at),
        y_range: (0.0, y_max * 1.15),
    };
    let stem = dir.join("herd");
    plot::xy_marked(&stem, &chart, false, &series, &[])?;
    written_pair(written, &stem);
    Ok(())
}

fn staleness_plot(report: &CacheLabReport, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    // Q4: the distribution of stale reads' ages per setup, on a log axis (ms to a TTL).
    let lo = 0.1;
    let hi = report
        .staleness
        .iter()
        .flat_map(|r| r.ages_ms.last().copied())
        .fold(report.staleness.iter().map(|r| r.ttl_ms).fold(1.0, f64::max), f64::max)
        * 1.5;
    let curves: Vec<plot::Curve> = report
        .staleness
        .iter()
        .map(|r| plot::Curve {
            label: format!("{} (n = {}, max {:.1} ms)", r.setup.describe(), r.stale_reads, r.max_age_ms),
            values: r.ages_ms.iter().map(|&a| a.max(lo)).collect(),
        })
        .collect();
    let chart = CdfChart {
        title: "How stale are the stale reads? Age = time since the missed write was acknowledged",
        x_label: "age of a stale read (ms, log scale)",
        log_x: true,
        x_range: (lo, hi),
    };
    let stem = dir.join("staleness-cdf");
    plot::cdf(&stem, &chart, &curves)?;
    written_pair(written, &stem);

    // Q4.3: what the cache nodes serve through the partition, and what the flush costs after it.
    let (from, to) = (PARTITION.0.as_secs_f64() - 0.5, PARTITION.1.as_secs_f64() + 1.0);
    let mut series = Vec::new();
    let mut y_max = 1.0f64;
    for r in
        report.staleness.iter().filter(|r| matches!(r.setup, Setup::PartitionFlush | Setup::PartitionNoFlush))
    {
        let per_s = 1e3 / r.bucket_ms;
        let color = if r.setup == Setup::PartitionFlush { 2 } else { 3 };
        for (what, values, style) in [
            ("cache hits", &r.hits_per_bucket, LineStyle::Solid),
            ("database reads", &r.db_reads_per_bucket, LineStyle::Dashed),
        ] {
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .map(|(b, &n)| ((b as f64 + 0.5) * r.bucket_ms / 1e3, n as f64 * per_s))
                .filter(|&(t, _)| t >= from && t <= to)
                .collect();
            y_max = points.iter().fold(y_max, |m, p| m.max(p.1));
            series.push(StyledSeries {
                label: format!("{}: {what}", r.setup.describe()),
                points,
                style,
                color,
            });
        }
    }
    if !series.is_empty() {
        let title = format!(
            "Cache nodes cut off from the database {:.1}–{:.1} s: hits and database reads per second",
            PARTITION.0.as_secs_f64(),
            PARTITION.1.as_secs_f64()
        );
        let chart = XyChart {
            title: &title,
            x_label: "virtual time (s)",
            y_label: "per second (50 ms buckets)",
            log_x: false,
            x_range: (from, to),
            y_range: (0.0, y_max * 1.35),
        };
        let stem = dir.join("partition-timeline");
        plot::xy_marked(&stem, &chart, false, &series, &[])?;
        written_pair(written, &stem);
    }
    Ok(())
}

fn html_report(report: &CacheLabReport) -> String {
    let mut body = String::new();
    if report.parts[0] && !report.hit_ratio.is_empty() {
        let c0 = &report.hit_ratio[0];
        let mut rows = String::new();
        for c in &report.hit_ratio {
            for p in &c.points {
                let class = if p.s3fifo < p.lru { " class=\"short\"" } else { "" };
                let _ = writeln!(
                    rows,
                    "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:+.4}</td><td>{:.4}</td><td>{}</td></tr>",
                    c.skew,
                    c.sizing.describe(),
                    pct_size(p.fraction),
                    p.budget_bytes,
                    p.lru,
                    p.s3fifo,
                    p.s3fifo - p.lru,
                    p.che_lru,
                    p.top_keys.map_or("–".to_string(), |t| format!("{t:.4}")),
                );
            }
        }
        let measured: usize = report.hit_ratio.iter().map(|c| c.points.len()).sum();
        let verdict = if report.shortfalls.is_empty() {
            format!("<p class=\"ok\"><b>S3-FIFO ≥ LRU at all {measured} measured sizes</b>, every skew, both sizings.</p>")
        } else {
            let list: String = report
                .shortfalls
                .iter()
                .map(|s| {
                    format!(
                        "<li>Zipf {}, {}, {}: S3-FIFO {:.4} &lt; LRU {:.4}</li>",
                        s.skew,
                        s.sizing.describe(),
                        pct_size(s.fraction),
                        s.s3fifo,
                        s.lru
                    )
                })
                .collect();
            format!(
                "<p class=\"bad\"><b>S3-FIFO &lt; LRU at {} of {measured} measured sizes</b> (highlighted below):</p><ul>{list}</ul>",
                report.shortfalls.len()
            )
        };
        let imgs: String = SKEWS
            .iter()
            .map(|s| {
                format!(
                    "<img src=\"hit-ratio-zipf-{}.svg\" alt=\"hit ratio vs cache size, Zipf {s}\">\n",
                    skew_slug(*s)
                )
            })
            .collect();
        let _ = writeln!(
            body,
            r#"<h2>Part 1. Hit ratio vs cache size</h2>
<p>A look-aside replay (get; on a miss, set) of {requests} Zipf requests over {keys} keys per skew, the same trace for
both policies and both sizings. The cache size is a fraction of the working set's bytes (every key's key + value + 64 bytes
of overhead). Equal values: 100 bytes each; varied: 16–4096 bytes per key, log-uniform. References (equal values): Che's
approximation of LRU, and holding the most popular keys – the best any policy can do in the long run under independent
requests. For varied values, Che's approximation fills the budget's bytes.</p>
{verdict}
<p><b>Q1.1, Q1.2</b> – how the hit ratio grows with the cache, and how skew changes it (solid: equal values; dotted: varied;
dashed: references):</p>
{imgs}
<p><b>Q1.3</b> – where S3-FIFO's advantage over LRU is largest, and whether it is ever behind:</p>
<img src="hit-ratio-gap.svg" alt="S3-FIFO minus LRU">
<details><summary>Every measured point</summary>
<table><tr><th>skew</th><th>values</th><th>size</th><th>budget (bytes)</th><th>LRU</th><th>S3-FIFO</th><th>S3-FIFO − LRU</th><th>Che (LRU)</th><th>most popular keys</th></tr>
{rows}</table></details>"#,
            requests = c0.requests,
            keys = c0.keys,
        );
    }
    if !report.tier.is_empty() {
        let rows: String = report
            .tier
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>\n",
                    tier_label(r.caches),
                    if r.caches == 0 { "–".to_string() } else { r.budget_bytes.to_string() },
                    r.reads,
                    if r.caches == 0 { "–".to_string() } else { format!("{:.3}", r.hit_ratio) },
                    r.db_reads_per_s,
                    r.read_p50_ms,
                    r.read_p99_ms,
                    r.read_max_ms,
                    html_checks(&r.violations),
                )
            })
            .collect();
        let _ = writeln!(
            body,
            r#"<h2>Part 2. The database with and without the tier</h2>
<p>The same open-loop workload (Poisson arrivals at a fixed rate) against the Raft database alone (reads by ReadIndex) and
against tiers of cache nodes in front of it (look-aside, leases, invalidation). The simulator has no CPU model: the
database's load does not slow it down, so the latency column shows what the network hops cost and save.</p>
<table><tr><th>setup</th><th>budget per node (bytes)</th><th>reads</th><th>hit ratio</th><th>database reads/s</th><th>read p50 (ms)</th><th>read p99 (ms)</th><th>max (ms)</th><th>checks</th></tr>
{rows}</table>
<p><b>Q2.1</b> – how much read load the tier takes off the database:</p>
<img src="tier-db-load.svg" alt="database reads per second over time">
<p><b>Q2.2</b> – what it does to the median and the tail of read latency:</p>
<img src="tier-latency.svg" alt="read latency vs cache nodes">"#
        );
    }
    if !report.herd.is_empty() {
        let rows: String = report
            .herd
            .iter()
            .map(|h| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>\n",
                    if h.leases { "on" } else { "off" },
                    h.peak,
                    h.total,
                    h.before,
                    h.leases_issued,
                    h.lease_waits,
                    h.read_p99_ms,
                    h.read_max_ms,
                    html_checks(&h.violations),
                )
            })
            .collect();
        let _ = writeln!(
            body,
            r#"<h2>Part 3. The thundering herd, with and without leases</h2>
<p>A read-only open-loop workload on 100 keys (Zipf 0.99: the hottest key gets about a fifth of the reads). At {at:.0} ms every
cache node drops the hot key. Peak and total are counted over the {w:.0} ms after the event, in {b:.0} ms buckets; "before"
is the same window just before it.</p>
<table><tr><th>leases</th><th>peak database reads per bucket</th><th>total in the window</th><th>before</th><th>leases issued</th><th>lease waits</th><th>read p99 (ms)</th><th>max (ms)</th><th>checks</th></tr>
{rows}</table>
<p><b>Q3</b> – what one expiry of a hot key does to the database, and what leases change:</p>
<img src="herd.svg" alt="database reads per bucket around the hot key's expiry">"#,
            at = herd::HERD_AT.as_secs_f64() * 1e3,
            w = herd::WINDOW.as_secs_f64() * 1e3,
            b = herd::BUCKET.as_secs_f64() * 1e3,
        );
    }
    if !report.staleness.is_empty() {
        let rows: String = report
            .staleness
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3} %</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    r.setup.describe(),
                    r.reads,
                    r.stale_reads,
                    100.0 * r.stale_reads as f64 / r.reads.max(1) as f64,
                    age_quantile(&r.ages_ms, 0.5),
                    age_quantile(&r.ages_ms, 0.99),
                    r.max_age_ms,
                    r.max_versions_behind,
                    r.bound_ms,
                    r.ttl_ms,
                    r.bound_violations,
                    r.flushes,
                    html_checks(&r.violations),
                )
            })
            .collect();
        let _ = writeln!(
            body,
            r#"<h2>Part 4. Staleness: invalidation, TTLs, and a partition</h2>
<p>Closed-loop clients, 20 % writes, Zipf keys. A read is stale when it returns an older version than a write acknowledged
before the read began; its age is the time since that write's acknowledgement. In the partition setups the cache nodes are
cut off from the database from {pf:.0} to {pt:.0} ms (clients reach both). The bound is the one the simulator checks:
min(TTL, stream timeout + delay bound) with invalidation, the TTL without.</p>
<table><tr><th>setup</th><th>reads</th><th>stale</th><th>stale share</th><th>age p50</th><th>age p99</th><th>max age (ms)</th><th>max versions behind</th><th>bound (ms)</th><th>TTL (ms)</th><th>over the bound</th><th>flushes</th><th>checks</th></tr>
{rows}</table>
<p><b>Q4.1–Q4.3</b> – how old a stale read can be with each mechanism, and what the flush on reconnect buys:</p>
<img src="staleness-cdf.svg" alt="CDF of stale reads' ages">
<p><b>Q4.3</b> – what the cache nodes serve during the partition, and what the flush costs after it (solid: hits; dashed:
reads reaching the database):</p>
<img src="partition-timeline.svg" alt="hits and database reads through the partition">"#,
            pf = PARTITION.0.as_secs_f64() * 1e3,
            pt = PARTITION.1.as_secs_f64() * 1e3,
        );
    }
    let files = scenario_files(report);
    if !files.is_empty() {
        let list: String = files.iter().map(|(name, _)| format!("<a href=\"{name}\">{name}</a> ")).collect();
        let _ = writeln!(
            body,
            r#"<h2>Replaying a run</h2>
<p>Every simulation above is a scenario file in this directory; replay one with the same seed (and trace every
event): <code>concord sim DIR/FILE --seed {seed} --trace run.jsonl</code>.
Files: {list}</p>"#,
            seed = report.seed
        );
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>The cache tier – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}
code{{background:#f4f4f4}}tr.short td{{background:#fdd}}.ok{{color:#060}}.bad{{color:#a00}}</style></head>
<body>
<h1>The cache tier, measured</h1>
<p>Seed {seed}{quick}. Guide and questions: <code>docs/labs/cache.md</code>. Raw numbers: <a href="report.json">report.json</a>.</p>
{body}
</body></html>
"#,
        seed = report.seed,
        quick = if report.quick { " (quick)" } else { "" },
    )
}

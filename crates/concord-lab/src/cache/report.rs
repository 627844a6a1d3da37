//! The cache lab's report: `report.json`, plots (SVG and PNG), `index.html`, and a text summary.
//!
//! Each plot answers one question of the guide (`docs/labs/cache.md`); its caption in the HTML
//! page says which.

use super::hit_ratio::{Curve, Sizing};
use super::{CacheLabReport, SKEWS};
use crate::plot::{self, LineStyle, StyledSeries, XyChart};
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
        out
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

    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
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
        y_range: (lo - 0.01, hi + 0.01),
    };
    let stem = dir.join("hit-ratio-gap");
    plot::xy_marked(&stem, &chart, false, &series, &[])?;
    written_pair(written, &stem);
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

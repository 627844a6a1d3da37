//! The eventual lab's report: `report.json`, plots (SVG and PNG), `index.html`, and a text summary.
//!
//! Every number printed carries its label and, where it has one, its sample size; the paper's
//! numbers stand next to ours ([`wars::PAPER`]); a simulator estimate of 99.9 % is printed only
//! from a bin with enough reads to tell ([`pbs::READS_TO_RESOLVE_999`]).

use super::{anomalies, pbs, wars, EventualReport};
use crate::plot::{self, LineStyle, Mark, Marker, Span, StyledSeries, XyChart};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn slug(name: &str) -> String {
    name.to_lowercase().replace([' ', ':'], "-")
}

/// Values as the propagation charts show them, in numeric order where they are numbers.
fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| s.split('|').next().and_then(|v| v.trim().parse::<i64>().ok());
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn pct(p: f64) -> String {
    if p.is_nan() {
        "–".into()
    } else {
        format!("{:.2} %", 100.0 * p)
    }
}

fn ms(t: Option<f64>) -> String {
    match t {
        Some(t) if t.is_finite() => format!("{t:.2} ms"),
        _ => "–".into(),
    }
}

/// `ours` against `paper`, as a signed relative difference.
fn rel(ours: Option<f64>, paper: Option<f64>) -> String {
    match (ours, paper) {
        (Some(o), Some(p)) if p > 0.0 && o.is_finite() => format!("{:+.1} %", 100.0 * (o - p) / p),
        (Some(o), Some(p)) if p == 0.0 && o.is_finite() => format!("{:+.2} ms", o - p),
        _ => "–".into(),
    }
}

/// The simulator's time to 99.9 %, in words.
fn sim_t999_text(curve: &pbs::Curve) -> String {
    match pbs::sim_t999(curve) {
        pbs::SimT999::At(t) => format!("{t:.2} ms"),
        pbs::SimT999::TooFewReads(t, n) => format!(
            "n too small (first bin at ≥ 99.9 %, from {t:.2} ms: n = {n} < {} reads)",
            pbs::READS_TO_RESOLVE_999
        ),
        pbs::SimT999::NotReached => "not reached within the chart".into(),
    }
}

impl EventualReport {
    fn paper_p0(&self, model: &str, q: wars::Quorum) -> Option<f64> {
        wars::paper(model, q, Some(0.0)).map(|p| p.value)
    }
    fn paper_t999(&self, model: &str, q: wars::Quorum) -> Option<f64> {
        wars::paper(model, q, None).map(|p| p.value).or(if q.is_strict() { Some(0.0) } else { None })
    }
    /// Model rows: the main quorums of every environment, then the N sweep.
    fn model_rows(&self) -> Vec<&pbs::Curve> {
        let mut rows: Vec<&pbs::Curve> = Vec::new();
        for m in &self.models {
            for q in wars::QUORUMS {
                rows.extend(self.curve(m.name, q, "model"));
            }
        }
        rows.extend(self.curves.iter().filter(|c| c.method == "model" && c.quorum.n != 3));
        rows
    }

    /// The results as text (what `concord lab eventual` prints).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if let Some(p) = &self.propagation {
            let _ = writeln!(
                out,
                "1. Propagation ({}, seed {}; partition {:.0}–{:.0} ms)",
                p.scenario, p.seed, p.partition_ms.0, p.partition_ms.1
            );
            for k in &p.keys {
                let conv = k.converged_at_ms.map_or("never".to_string(), |t| format!("{t:.0} ms"));
                let _ = writeln!(
                    out,
                    "   {}: homes {:?}, writes acked {}, home replicas diverged {:.0} ms in total, last agreed at {conv}",
                    k.key,
                    k.homes,
                    k.writes_acked.len(),
                    k.divergent_ms
                );
            }
            let _ = writeln!(out, "   replay: {}", p.replay);
        }
        if self.parts[1] {
            let authors = self
                .authors_trials_per_t
                .map_or(String::new(), |n| format!("; authors' estimator: {n} fresh trials per t"));
            let _ = writeln!(
                out,
                "2. WARS model ({} trials per curve{authors}) against the paper (VLDB 2012)",
                self.wars_trials
            );
            let _ = writeln!(
                out,
                "   {:<10} {:<14} {:>9} {:>9} {:>12} {:>12} {:>12} {:>9}",
                "env", "quorum", "P(t=0)", "paper", "t99.9 exact", "authors'", "paper", "exact vs paper"
            );
            for c in self.model_rows() {
                let t_auth = c.t999_authors_ms.map_or("–".to_string(), |t| format!("{t:.2}"));
                let paper_t = self.paper_t999(&c.model, c.quorum);
                let _ = writeln!(
                    out,
                    "   {:<10} {:<14} {:>9} {:>9} {:>12} {:>12} {:>12} {:>9}",
                    c.model,
                    c.quorum.label(),
                    pct(c.p_at_0.unwrap_or(f64::NAN)),
                    self.paper_p0(&c.model, c.quorum).map_or("–".into(), pct),
                    c.t999_ms.map_or("–".into(), |t| format!("{t:.2}")),
                    t_auth,
                    paper_t.map_or("–".into(), |t| format!("{t:.2}")),
                    rel(c.t999_ms, paper_t)
                );
            }
        }
        if self.simulated_models > 0 {
            let _ = writeln!(
                out,
                "3. Simulator vs model at the same t (first bin; model = its P averaged over the bin's own reads)"
            );
            for m in self.models.iter().take(self.simulated_models) {
                for q in wars::QUORUMS {
                    for mode in pbs::SimMode::for_model(m) {
                        let Some(c) = self.curve(m.name, q, mode.method()) else { continue };
                        let Some(b) = c.bins.first() else { continue };
                        let _ = writeln!(
                            out,
                            "   {:<10} {:<14} {:<9} t in [0, {:.2}) ms, mean t {:.3} ms: simulator {} [95 % CI {}–{}] of n = {}, model {}; t to 99.9 %: {}",
                            m.name,
                            q.label(),
                            if *mode == pbs::SimMode::DiskSync { "W=sync" } else { "W=delay" },
                            b.to_ms,
                            b.mean_t_ms,
                            pct(b.p),
                            pct(b.p_low),
                            pct(b.p_high),
                            b.reads,
                            pct(b.model_p),
                            sim_t999_text(c)
                        );
                    }
                }
            }
        }
        if self.parts[3] {
            let _ = writeln!(
                out,
                "4. Anomalies ({} clients, {} keys, {:.0} % writes; summed over {} seed(s))",
                anomalies::CLIENTS,
                anomalies::KEYS,
                100.0 * anomalies::WRITE_SHARE,
                self.seeds
            );
            let _ = writeln!(
                out,
                "   {:<32} {:>6} {:>6} {:>5} {:>5} {:>8} {:>6} {:>5}",
                "setup", "reads", "stale", "RYW", "MR", "siblings", "acked", "lost"
            );
            for a in &self.anomalies {
                let c = &a.counts;
                let _ = writeln!(
                    out,
                    "   {:<32} {:>6} {:>6} {:>5} {:>5} {:>8} {:>6} {:>5}",
                    a.setup.name,
                    c.reads,
                    c.stale_reads,
                    c.read_your_writes,
                    c.monotonic_reads,
                    c.reads_with_siblings,
                    c.writes_acked,
                    c.lost_updates
                );
            }
        }
        if self.parts[4] {
            let _ =
                writeln!(out, "5. Comparison: two nodes (Raft: the leader and the next) cut off from three");
            for c in &self.comparison {
                let _ = writeln!(
                    out,
                    "   {:<26} read p50 {:>6.2} ms, p99 {:>7.2} ms; write p50 {:>6.2} ms, p99 {:>7.2} ms; served: minority {:>5.1} % of {}, majority {:>5.1} % of {}; stale reads {} of {}; {}",
                    c.system,
                    c.read_p50_ms,
                    c.read_p99_ms,
                    c.write_p50_ms,
                    c.write_p99_ms,
                    100.0 * c.minority_served,
                    c.minority_requests,
                    100.0 * c.majority_served,
                    c.majority_requests,
                    c.stale_reads,
                    c.reads,
                    c.linearizable.join(", ")
                );
            }
        }
        out
    }
}

/// Write `report.json`, every plot (SVG and PNG) and `index.html` into `dir`.
pub fn write_report(report: &EventualReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);

    // 1. Propagation timelines.
    if let Some(p) = &report.propagation {
        for k in &p.keys {
            let lanes: Vec<String> = std::iter::once("writes acked".to_string())
                .chain((1..=5).map(|n| {
                    let role = if k.homes.contains(&n) { "home" } else { "other" };
                    format!("n{n} ({role})")
                }))
                .collect();
            // The same value, the same colour on every lane; colours in value order, none repeated
            // (siblings get their own colour).
            let mut values: Vec<String> = k.holdings.iter().map(|h| h.values.join("|")).collect();
            values.sort_by(|a, b| numeric_order(a, b));
            values.dedup();
            let colors: BTreeMap<&str, usize> =
                values.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
            let mut spans = Vec::new();
            for h in &k.holdings {
                let label = format!("{}{}", h.values.join("|"), if h.hint { " (hint)" } else { "" });
                let color = colors[h.values.join("|").as_str()];
                spans.push(Span { lane: h.node as usize, from: h.from_ms, to: h.to_ms, label, color });
            }
            let mut marks = vec![
                Mark { x: p.partition_ms.0, label: "partition".into(), lane: None },
                Mark { x: p.partition_ms.1, label: "heal".into(), lane: None },
            ];
            for (t, _) in &k.writes_acked {
                marks.push(Mark { x: *t, label: String::new(), lane: Some(0) });
            }
            let stem = dir.join(format!("propagation-{}", k.key));
            let title = format!(
                "Key {}: the value each replica holds (homes {:?}; N=3 R=1 W=1, seed {})",
                k.key, k.homes, p.seed
            );
            plot::timeline(&stem, &title, "virtual time (ms)", &lanes, (0.0, p.end_ms), &spans, &marks)?;
            written.push(stem.with_extension("svg"));
            written.push(stem.with_extension("png"));
        }
    }

    // 2 and 3. PBS curves, two charts per environment: P on a linear axis, and 1 − P on a log axis
    // (where the curves crowd the 1.0 line: the tail, and the times to 99.9 %).
    for m in &report.models {
        if report.curves.iter().all(|c| c.model != m.name || c.quorum.n != 3) {
            continue;
        }
        let mut series = Vec::new();
        let mut markers = Vec::new();
        let mut x_max = pbs::horizon_ms(m);
        for (i, q) in wars::QUORUMS.iter().enumerate() {
            let methods = [
                ("model", "WARS model", LineStyle::Dashed),
                ("simulator", "simulator, W = disk sync", LineStyle::Solid),
                ("simulator-wars", "simulator, W = replication delay", LineStyle::Dotted),
            ];
            for (method, name, style) in methods {
                let Some(c) = report.curve(m.name, *q, method) else { continue };
                if c.points.is_empty() {
                    continue;
                }
                series.push((
                    format!("{} – {name}", q.label()),
                    c.points.iter().map(|&(t, p, _)| (t, p)).collect::<Vec<_>>(),
                    style,
                    i,
                ));
                if let Some(t) = c.t999_ms {
                    x_max = x_max.max(1.1 * t);
                }
            }
            if let Some(p) = wars::paper(m.name, *q, Some(0.0)) {
                markers.push((0.0, p.value, i));
            }
            if let Some(p) = wars::paper(m.name, *q, Some(10.0)) {
                markers.push((10.0, p.value, i));
            }
            if let Some(p) = wars::paper(m.name, *q, None) {
                if p.value > 0.0 {
                    markers.push((p.value, 0.999, i));
                    x_max = x_max.max(1.1 * p.value);
                }
            }
        }
        let lowest = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(1.0, f64::min);
        let y0 = (((lowest - 0.05) * 10.0).floor() / 10.0).clamp(0.0, 0.9);
        let title = format!("PBS t-visibility, {} ({})", m.name, m.what);
        let legend = "the paper (× at P or at 99.9 %)".to_string();
        let linear: Vec<StyledSeries> = series
            .iter()
            .map(|(label, pts, style, color)| StyledSeries {
                label: label.clone(),
                points: pts.clone(),
                style: *style,
                color: *color,
            })
            .collect();
        let marks: Vec<Marker> =
            markers.iter().map(|&(x, y, color)| Marker { x, y, color, legend: legend.clone() }).collect();
        let chart = XyChart {
            title: &title,
            x_label: "t: time since the write was acknowledged (ms)",
            y_label: "P(read returns the latest write)",
            log_x: false,
            x_range: (0.0, x_max),
            y_range: (y0, 1.005),
        };
        let stem = dir.join(format!("pbs-{}", slug(m.name)));
        plot::xy_marked(&stem, &chart, false, &linear, &marks)?;
        written.push(stem.with_extension("svg"));
        written.push(stem.with_extension("png"));

        // The tail: 1 − P on a log axis, floored at 10⁻⁵ (a point there means "no stale read seen").
        const FLOOR: f64 = 1e-5;
        let tail: Vec<StyledSeries> = series
            .iter()
            .map(|(label, pts, style, color)| StyledSeries {
                label: label.clone(),
                points: pts.iter().map(|&(t, p)| (t, (1.0 - p).max(FLOOR))).collect(),
                style: *style,
                color: *color,
            })
            .collect();
        let tail_marks: Vec<Marker> = markers
            .iter()
            .map(|&(x, y, color)| Marker { x, y: (1.0 - y).max(FLOOR), color, legend: legend.clone() })
            .collect();
        let tail_title = format!("PBS tail, {}: 1 − P(consistent), log scale (0.1 % line = 99.9 %)", m.name);
        let chart = XyChart {
            title: &tail_title,
            x_label: "t: time since the write was acknowledged (ms)",
            y_label: "1 − P(read returns the latest write)",
            log_x: false,
            x_range: (0.0, x_max),
            y_range: (FLOOR, 1.0),
        };
        let stem = dir.join(format!("pbs-{}-tail", slug(m.name)));
        plot::xy_marked(&stem, &chart, true, &tail, &tail_marks)?;
        written.push(stem.with_extension("svg"));
        written.push(stem.with_extension("png"));
    }

    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
}

fn html_report(report: &EventualReport) -> String {
    let mut body = String::new();
    if let Some(p) = &report.propagation {
        let _ = writeln!(
            body,
            "<h2>Part 1. Propagation</h2>\n<p>Scenario <code>{}</code>. Replay it and step through it in the viewer:<br><code>{}</code></p>",
            p.scenario, p.replay
        );
        for k in &p.keys {
            let conv = k.converged_at_ms.map_or("never".to_string(), |t| format!("{t:.0} ms"));
            let _ = writeln!(
                body,
                "<h3>Key {key}</h3><p>Home replicas {homes:?}; writes acknowledged: {n}; the homes held different versions for {div:.0} ms in total and last came to agree at {conv}.</p>\
                 <img src=\"propagation-{key}.svg\" alt=\"replica timeline of {key}\">",
                key = k.key,
                homes = k.homes,
                n = k.writes_acked.len(),
                div = k.divergent_ms,
            );
            let _ = writeln!(body, "<details><summary>When each replica first held each value (ms), values in numeric order</summary><table><tr><th>value</th>{}</tr>", (1..=5).map(|n| format!("<th>n{n}</th>")).collect::<String>());
            let mut values: Vec<(&String, &BTreeMap<u32, f64>)> = k.first_seen_ms.iter().collect();
            values.sort_by(|a, b| numeric_order(a.0, b.0));
            for (value, nodes) in values {
                let cells: String = (1..=5)
                    .map(|n| nodes.get(&n).map_or("<td>–</td>".to_string(), |t| format!("<td>{t:.1}</td>")))
                    .collect();
                let _ = writeln!(body, "<tr><td>{value}</td>{cells}</tr>");
            }
            body.push_str("</table></details>\n");
        }
    }
    if report.parts[1] {
        let mut rows = String::new();
        for c in report.model_rows() {
            let paper_t = report.paper_t999(&c.model, c.quorum);
            let p10 = wars::paper(&c.model, c.quorum, Some(10.0));
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c.model,
                c.quorum.label(),
                pct(c.p_at_0.unwrap_or(f64::NAN)),
                report.paper_p0(&c.model, c.quorum).map_or("–".into(), pct),
                p10.map_or("–".to_string(), |p| {
                    format!("model {} / paper {}", pct(c.p_at_10.unwrap_or(f64::NAN)), pct(p.value))
                }),
                ms(c.t999_ms),
                ms(c.t999_authors_ms),
                ms(paper_t),
                rel(c.t999_ms, paper_t),
                rel(c.t999_authors_ms, paper_t),
            );
        }
        let authors = report
            .authors_trials_per_t
            .map_or("not run (<code>--authors-estimator</code>)".to_string(), |n| {
                format!("{n} fresh trials per t")
            });
        let _ = writeln!(
            body,
            r#"<h2>Part 2. The WARS model against the paper</h2>
<p>Bailis et al., <em>Probabilistically Bounded Staleness for Practical Partial Quorums</em>, VLDB 2012 (camera-ready):
P(consistent) from the text, times to 99.9 % from Table 4 (N=3) and the text's N sweep (LNKD-DISK, R=W=1). The model: {trials} trials per
row; "exact" is the 0.999 quantile of the trials' consistency thresholds t* (no grid); the authors' estimator draws fresh
trials at every t and reports the first t whose estimate reaches 99.9 % ({authors}). Strict quorums (R+W&gt;N) are 0 ms.</p>
<table><tr><th>environment</th><th>quorum</th><th>P(consistent) at t=0, model</th><th>paper</th><th>at t=10 ms</th>
<th>t to 99.9 %, model exact</th><th>authors' estimator</th><th>paper</th><th>exact vs paper</th><th>authors' vs paper</th></tr>
{rows}</table>"#,
            trials = report.wars_trials
        );
    }
    if report.simulated_models > 0 {
        let mut rows = String::new();
        for m in report.models.iter().take(report.simulated_models) {
            for q in wars::QUORUMS {
                for mode in pbs::SimMode::for_model(m) {
                    let Some(c) = report.curve(m.name, q, mode.method()) else { continue };
                    let model_t999 = report.curve(m.name, q, "model").and_then(|c| c.t999_ms);
                    for (i, b) in c.bins.iter().enumerate().filter(|(i, b)| *i < 2 && b.reads > 0) {
                        let _ = writeln!(
                            rows,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}–{:.2}</td><td>{:.3}</td><td>{}</td><td>{} [{}, {}]</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            m.name,
                            q.label(),
                            mode.describe(),
                            b.from_ms,
                            b.to_ms,
                            b.mean_t_ms,
                            b.reads,
                            pct(b.p),
                            pct(b.p_low),
                            pct(b.p_high),
                            pct(b.model_p),
                            if i == 0 { sim_t999_text(c) } else { String::new() },
                            if i == 0 { ms(model_t999) } else { String::new() },
                        );
                    }
                }
            }
        }
        // Every bin of every simulator curve, folded away.
        let mut all_bins = String::new();
        for c in report.curves.iter().filter(|c| c.method.starts_with("simulator")) {
            let mode = if c.method == "simulator" { "W = disk sync" } else { "W = replication delay" };
            let _ = write!(
                all_bins,
                "<details><summary>{} {} ({mode}): all {} bins</summary><table><tr><th>t bin (ms)</th><th>mean t (ms)</th><th>reads n</th><th>consistent</th><th>simulator P [95 % Wilson]</th><th>model P, same reads</th></tr>",
                c.model,
                c.quorum.label(),
                c.bins.len()
            );
            for b in &c.bins {
                let _ = write!(
                    all_bins,
                    "<tr><td>{:.2}–{:.2}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{} [{}, {}]</td><td>{}</td></tr>",
                    b.from_ms, b.to_ms, b.mean_t_ms, b.reads, b.consistent, pct(b.p), pct(b.p_low), pct(b.p_high), pct(b.model_p)
                );
            }
            all_bins.push_str("</table></details>\n");
        }
        let imgs: String = report
            .models
            .iter()
            .map(|m| {
                format!(
                    "<img src=\"pbs-{s}.svg\" alt=\"PBS curves for {n}\">\n<img src=\"pbs-{s}-tail.svg\" alt=\"PBS tail for {n}\">\n",
                    s = slug(m.name),
                    n = m.name
                )
            })
            .collect();
        let _ = writeln!(
            body,
            r#"<h2>Part 3. The simulator against the model, at the same t</h2>
<p>Concord's Dynamo on 8 simulated nodes with the same latency distributions. W enters in two ways: as each replica's
<b>disk sync</b> (the write is visible when it arrives; W delays only the acknowledgement) and as the <b>delay of the
replication message</b> (visible only after W, as WARS assumes). Each row is one bin of reads by t; the model column is the
model's P(consistent) averaged over exactly those reads, each at its own t. Intervals: 95 % Wilson. A simulator time to
99.9 % is given only from a bin with at least {need} reads (fewer cannot resolve 0.1 %).</p>
<table><tr><th>environment</th><th>quorum</th><th>simulator mode</th><th>t bin (ms)</th><th>mean t (ms)</th><th>reads n</th>
<th>simulator P [95 % CI]</th><th>model P, same reads</th><th>simulator t to 99.9 %</th><th>model t to 99.9 %</th></tr>
{rows}</table>
{all_bins}
<p>Charts: dashed – WARS model; solid – simulator, W = disk sync; dotted – simulator, W = replication delay; × – the paper.
Each environment has a linear chart and a tail chart (1 − P on a log scale: the 0.1 % line is 99.9 %).</p>
{imgs}"#,
            need = pbs::READS_TO_RESOLVE_999
        );
    } else if report.parts[1] {
        let imgs: String = report
            .models
            .iter()
            .filter(|m| report.curves.iter().any(|c| c.model == m.name))
            .map(|m| format!("<img src=\"pbs-{s}.svg\" alt=\"PBS curves for {n}\">\n<img src=\"pbs-{s}-tail.svg\" alt=\"PBS tail for {n}\">\n", s = slug(m.name), n = m.name))
            .collect();
        body.push_str(&imgs);
    }
    if report.parts[3] {
        let mut rows = String::new();
        for a in &report.anomalies {
            let c = &a.counts;
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.setup.name, c.reads, c.stale_reads, c.read_your_writes, c.monotonic_reads, c.reads_with_siblings, c.writes_acked, c.lost_updates
            );
        }
        let _ = writeln!(
            body,
            r#"<h2>Part 4. Anomalies</h2>
<p>Same workload for every row ({clients} closed-loop clients, {keys} keys, {w:.0} % writes, no faults; summed over {seeds} seed(s)).
<em>stale</em>: reads that missed a write acknowledged before they began; <em>RYW</em>, <em>MR</em>: read-your-writes and
monotonic-read violations; <em>siblings</em>: reads that returned concurrent values; <em>lost</em>: acknowledged writes
(increments) that no replica kept or saw overwritten.</p>
<table><tr><th>setup</th><th>reads</th><th>stale reads</th><th>RYW violations</th><th>MR violations</th><th>reads with siblings</th><th>acked writes</th><th>lost updates</th></tr>
{rows}</table>"#,
            clients = anomalies::CLIENTS,
            keys = anomalies::KEYS,
            w = 100.0 * anomalies::WRITE_SHARE,
            seeds = report.seeds,
        );
    }
    if report.parts[4] {
        let mut rows = String::new();
        for c in &report.comparison {
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1} % of {}</td><td>{:.1} % of {}</td><td>{} of {}</td><td>{}</td></tr>",
                c.system,
                c.read_p50_ms,
                c.read_p99_ms,
                c.write_p50_ms,
                c.write_p99_ms,
                100.0 * c.minority_served,
                c.minority_requests,
                100.0 * c.majority_served,
                c.majority_requests,
                c.stale_reads,
                c.reads,
                c.linearizable.join(", ")
            );
        }
        let _ = writeln!(
            body,
            r#"<h2>Part 5. The same workload on Raft</h2>
<p>8 clients, 3 keys, 40 % writes. From {pf} to {pt} ms two nodes are cut off from the other three (Raft: the leader of the moment and the next node; Dynamo: nodes 1 and 2). Availability: of the requests sent to a node on each side during
the partition, the fraction answered ok.</p>
<table><tr><th>system</th><th>read p50 (ms)</th><th>read p99 (ms)</th><th>write p50 (ms)</th><th>write p99 (ms)</th><th>minority side served</th><th>majority side served</th><th>stale reads</th><th>linearizability</th></tr>
{rows}</table>"#,
            pf = super::compare::PARTITION_MS.0,
            pt = super::compare::PARTITION_MS.1,
        );
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Eventual consistency – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}code{{background:#f4f4f4}}</style></head>
<body>
<h1>Eventual consistency, measured</h1>
<p>Concord's Dynamo in the simulator; seed {seed}, {seeds} seed(s) per simulation{quick}. Guide and questions:
<code>docs/labs/eventual.md</code>. Raw numbers: <a href="report.json">report.json</a>.</p>
{body}
</body></html>
"#,
        seed = report.seed,
        seeds = report.seeds,
        quick = if report.quick { " (quick)" } else { "" },
    )
}

//! The eventual lab's report: `report.json`, plots (SVG and PNG), `index.html`, and a text summary.

use super::{pbs, wars, EventualReport};
use crate::plot::{self, Mark, Series, Span, XyChart};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn slug(name: &str) -> String {
    name.to_lowercase().replace([' ', ':'], "-")
}

impl EventualReport {
    /// The results as text (what `concord lab eventual` prints).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let p = &self.propagation;
        let _ = writeln!(
            out,
            "1. Propagation ({}, seed {}; partition {:.0}–{:.0} ms)",
            p.scenario, p.seed, p.partition_ms.0, p.partition_ms.1
        );
        for k in &p.keys {
            let conv = k.converged_at_ms.map_or("never".to_string(), |t| format!("{t:.0} ms"));
            let _ = writeln!(
                out,
                "   {}: homes {:?}, {} writes acked, home replicas diverged {:.0} ms in total, last agreed at {conv}",
                k.key,
                k.homes,
                k.writes_acked.len(),
                k.divergent_ms
            );
        }
        let _ = writeln!(out, "   replay: {}", p.replay);
        let _ = writeln!(out, "2. PBS: P(consistent read) at t = 0 / at the first bin (model vs simulator)");
        for m in &self.models {
            for q in wars::QUORUMS {
                let model =
                    self.curve(m.name, q, "model").and_then(|c| c.points.first()).map_or(f64::NAN, |p| p.1);
                let sim = self
                    .curve(m.name, q, "simulator")
                    .and_then(|c| c.points.first())
                    .map_or(f64::NAN, |p| p.1);
                let _ = writeln!(
                    out,
                    "   {:<10} {:<14} model {:>6.3}   simulator {:>6.3}",
                    m.name,
                    q.label(),
                    model,
                    sim
                );
            }
        }
        let _ = writeln!(out, "3. Anomalies (summed over {} seed(s))", self.seeds);
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
        let _ = writeln!(out, "4. Comparison: two nodes (Raft: the leader and the next) cut off from three");
        for c in &self.comparison {
            let _ = writeln!(
                out,
                "   {:<26} read p50 {:>6.2} p99 {:>7.2} ms, write p50 {:>6.2} p99 {:>7.2} ms; served minority {:>5.1} %, majority {:>5.1} %; stale reads {}/{}; {}",
                c.system,
                c.read_p50_ms,
                c.read_p99_ms,
                c.write_p50_ms,
                c.write_p99_ms,
                100.0 * c.minority_served,
                100.0 * c.majority_served,
                c.stale_reads,
                c.reads,
                c.linearizable.join(", ")
            );
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
    let p = &report.propagation;
    for k in &p.keys {
        let lanes: Vec<String> = std::iter::once("writes acked".to_string())
            .chain((1..=5).map(|n| {
                let role = if k.homes.contains(&n) { "home" } else { "other" };
                format!("n{n} ({role})")
            }))
            .collect();
        // The same value, the same colour on every lane (siblings get their own colour).
        let mut colors: BTreeMap<String, usize> = BTreeMap::new();
        let mut spans = Vec::new();
        for h in &k.holdings {
            let label = format!("{}{}", h.values.join("|"), if h.hint { " (hint)" } else { "" });
            let key = h.values.join("|");
            let next = colors.len();
            let color = *colors.entry(key).or_insert(next);
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

    // 2. PBS curves, one chart per environment.
    for m in &report.models {
        let mut series = Vec::new();
        for (i, q) in wars::QUORUMS.iter().enumerate() {
            for (method, dashed) in [("model", true), ("simulator", false)] {
                if let Some(c) = report.curve(m.name, *q, method) {
                    if c.points.is_empty() {
                        continue;
                    }
                    series.push(Series {
                        label: format!("{} – {}", q.label(), if dashed { "WARS model" } else { "simulator" }),
                        points: c.points.iter().map(|&(t, p, _)| (t, p)).collect(),
                        dashed,
                        color: i,
                    });
                }
            }
        }
        let lowest = report
            .curves
            .iter()
            .filter(|c| c.model == m.name)
            .flat_map(|c| c.points.iter().map(|p| p.1))
            .fold(1.0, f64::min);
        let y0 = ((lowest - 0.05) * 10.0).floor() / 10.0;
        let title = format!("PBS t-visibility, {} ({})", m.name, m.what);
        let chart = XyChart {
            title: &title,
            x_label: "t: time since the write was acknowledged (ms)",
            y_label: "P(read returns the latest write)",
            log_x: false,
            x_range: (0.0, pbs::horizon_ms(m)),
            y_range: (y0.clamp(0.0, 0.9), 1.005),
        };
        let stem = dir.join(format!("pbs-{}", slug(m.name)));
        plot::xy(&stem, &chart, &series)?;
        written.push(stem.with_extension("svg"));
        written.push(stem.with_extension("png"));
    }

    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report))?;
    written.push(html);
    Ok(written)
}

fn html_report(report: &EventualReport) -> String {
    let p = &report.propagation;
    let mut prop = String::new();
    for k in &p.keys {
        let conv = k.converged_at_ms.map_or("never".to_string(), |t| format!("{t:.0} ms"));
        let _ = writeln!(
            prop,
            "<h3>Key {key}</h3><p>Home replicas {homes:?}; {n} writes acknowledged; the homes held different versions for {div:.0} ms in total and last came to agree at {conv}.</p>\
             <img src=\"propagation-{key}.svg\" alt=\"replica timeline of {key}\">",
            key = k.key,
            homes = k.homes,
            n = k.writes_acked.len(),
            div = k.divergent_ms,
        );
        let _ = writeln!(prop, "<details><summary>When each replica first held each value (ms)</summary><table><tr><th>value</th>{}</tr>", (1..=5).map(|n| format!("<th>n{n}</th>")).collect::<String>());
        for (value, nodes) in &k.first_seen_ms {
            let cells: String = (1..=5)
                .map(|n| nodes.get(&n).map_or("<td>–</td>".to_string(), |t| format!("<td>{t:.1}</td>")))
                .collect();
            let _ = writeln!(prop, "<tr><td>{value}</td>{cells}</tr>");
        }
        prop.push_str("</table></details>\n");
    }
    let mut pbs_rows = String::new();
    for m in &report.models {
        for q in wars::QUORUMS {
            let at = |method: &str| -> (f64, f64) {
                let c = report.curve(m.name, q, method);
                let first = c.and_then(|c| c.points.first()).map_or(f64::NAN, |p| p.1);
                let t999 = c.and_then(|c| c.points.iter().find(|p| p.1 >= 0.999)).map_or(f64::NAN, |p| p.0);
                (first, t999)
            };
            let (m0, m999) = at("model");
            let (s0, s999) = at("simulator");
            let _ = writeln!(
                pbs_rows,
                "<tr><td>{}</td><td>{}</td><td>{m0:.3}</td><td>{s0:.3}</td><td>{m999:.2}</td><td>{s999:.2}</td></tr>",
                m.name,
                q.label()
            );
        }
    }
    let pbs_imgs: String = report
        .models
        .iter()
        .map(|m| format!("<img src=\"pbs-{}.svg\" alt=\"PBS curves for {}\">\n", slug(m.name), m.name))
        .collect();
    let mut anomaly_rows = String::new();
    for a in &report.anomalies {
        let c = &a.counts;
        let _ = writeln!(
            anomaly_rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.setup.name, c.reads, c.stale_reads, c.read_your_writes, c.monotonic_reads, c.reads_with_siblings, c.writes_acked, c.lost_updates
        );
    }
    let mut compare_rows = String::new();
    for c in &report.comparison {
        let _ = writeln!(
            compare_rows,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1} % of {}</td><td>{:.1} % of {}</td><td>{} / {}</td><td>{}</td></tr>",
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
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Eventual consistency – Concord lab</title>
<style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}code{{background:#f4f4f4}}</style></head>
<body>
<h1>Eventual consistency, measured</h1>
<p>Concord's Dynamo in the simulator; seed {seed}, {seeds} seed(s) per simulation{quick}. Guide and questions:
<code>docs/labs/eventual.md</code>. Raw numbers: <a href="report.json">report.json</a>.</p>
<h2>1. Propagation</h2>
<p>Scenario <code>{scenario}</code>. Replay it and step through it in the viewer:<br><code>{replay}</code></p>
{prop}
<h2>2. Staleness (PBS)</h2>
<p>Probability that a read returns the latest acknowledged write, against the time since that acknowledgement.
Dashed: the WARS Monte Carlo model ({trials} trials per curve); solid: Concord's Dynamo in the simulator with the
same latency distributions. Latency fits: Bailis et al., VLDB 2012, Table 3 (see the guide for their caveats).</p>
<table><tr><th>environment</th><th>quorum</th><th>P(consistent) at t≈0, model</th><th>simulator</th><th>t for 99.9 % (ms), model</th><th>simulator</th></tr>
{pbs_rows}</table>
{pbs_imgs}
<h2>3. Anomalies</h2>
<p>Same workload for every row (8 clients, 3 keys, 40 % writes, no faults). <em>stale</em>: reads that missed a write
acknowledged before they began; <em>RYW</em>, <em>MR</em>: read-your-writes and monotonic-read violations;
<em>siblings</em>: reads that returned concurrent values; <em>lost</em>: acknowledged writes (increments) that no replica
kept or saw overwritten.</p>
<table><tr><th>setup</th><th>reads</th><th>stale</th><th>RYW</th><th>MR</th><th>siblings</th><th>acked writes</th><th>lost</th></tr>
{anomaly_rows}</table>
<h2>4. The same workload on Raft</h2>
<p>From {pf} to {pt} ms two nodes are cut off from the other three (Raft: the leader of the moment and the next node; Dynamo: nodes 1 and 2). Availability: of the requests sent to a node on each side during
the partition, the fraction answered ok.</p>
<table><tr><th>system</th><th>read p50 ms</th><th>read p99</th><th>write p50</th><th>write p99</th><th>minority side served</th><th>majority side served</th><th>stale reads</th><th>linearizability</th></tr>
{compare_rows}</table>
</body></html>
"#,
        seed = report.seed,
        seeds = report.seeds,
        quick = if report.quick { " (quick)" } else { "" },
        scenario = p.scenario,
        replay = p.replay,
        trials = report.wars_trials,
        pf = super::compare::PARTITION_MS.0,
        pt = super::compare::PARTITION_MS.1,
    )
}

//! An Elle report as a standalone HTML page: a summary, then one section per anomaly with its
//! explanation and, for a cycle, a drawing of it – the transactions on a circle, an arrow per edge
//! labelled with its kind (ww, wr, rw, realtime, process) and coloured by it.
//!
//! Self-contained like [`crate::html`]: inline SVG and CSS, no script.

use super::{Anomaly, Cycle, Report};
use std::fmt::Write;

const RADIUS_PX: f64 = 120.0;
const NODE_RADIUS_PX: f64 = 22.0;

/// Render the report as a page.
pub fn render(report: &Report) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p>{} history, {} transactions, {} dependency edges, checked for <b>{}</b>.</p>",
        report.workload,
        report.txns_checked,
        report.edges,
        escape(report.model())
    );
    if report.is_valid() {
        body.push_str("<p class=\"ok\">No anomalies found.</p>\n");
    } else {
        let _ =
            writeln!(body, "<p class=\"bad\">Anomalies: {}</p>", escape(&report.anomaly_names().join(", ")));
        body.push_str("<ol>\n");
        for (i, anomaly) in report.anomalies.iter().enumerate() {
            let _ = writeln!(
                body,
                "<li><a href=\"#a{i}\">{}</a> – violates {}</li>",
                escape(&anomaly.name()),
                escape(anomaly.violates())
            );
        }
        body.push_str("</ol>\n");
        for (i, anomaly) in report.anomalies.iter().enumerate() {
            let _ = writeln!(body, "<section id=\"a{i}\"><h2>{}</h2>", escape(&anomaly.name()));
            if let Anomaly::Cycle(cycle) = anomaly {
                body.push_str(&svg(cycle));
            }
            let _ = writeln!(body, "<pre>{}</pre></section>", escape(&report.explain(anomaly)));
        }
        for size in &report.unexplained_components {
            let _ = writeln!(
                body,
                "<p>A strongly connected component of {size} transactions holds a cycle the search budget did not reach.</p>"
            );
        }
    }
    format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Elle: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 70em; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
.ok {{ color: #2e7d32; font-weight: bold; }}
.bad {{ color: #c62828; font-weight: bold; }}
section {{ border-top: 1px solid #ddd; margin-top: 1.5em; }}
</style></head><body>
<h1>Transactional check ({workload})</h1>
{body}</body></html>
"#,
        title =
            if report.is_valid() { "valid".to_string() } else { escape(&report.anomaly_names().join(", ")) },
        workload = report.workload,
    )
}

fn colour(kind: super::graph::EdgeKind) -> &'static str {
    use super::graph::EdgeKind::*;
    match kind {
        Ww => "#1565c0",
        Wr => "#2e7d32",
        Rw => "#c62828",
        Realtime => "#6a1b9a",
        Process => "#ef6c00",
    }
}

/// The cycle's transactions on a circle, in order, with an arrow per edge.
fn svg(cycle: &Cycle) -> String {
    let n = cycle.steps.len().max(1);
    let size = 2.0 * (RADIUS_PX + NODE_RADIUS_PX + 40.0);
    let centre = size / 2.0;
    let position = |i: usize| {
        let angle = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (centre + RADIUS_PX * angle.cos(), centre + RADIUS_PX * angle.sin())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{size:.0}" height="{size:.0}" font-family="monospace" font-size="12">"#
    );
    out.push_str("<defs>");
    for kind in ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00"] {
        let _ = write!(
            out,
            r#"<marker id="m{}" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="{kind}"/></marker>"#,
            &kind[1..]
        );
    }
    out.push_str("</defs>\n");
    for (i, step) in cycle.steps.iter().enumerate() {
        let (x0, y0) = position(i);
        let (x1, y1) = position((i + 1) % n);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let length = (dx * dx + dy * dy).sqrt().max(1.0);
        // Stop the line at the circles' rims.
        let (ux, uy) = (dx / length, dy / length);
        let (sx, sy) = (x0 + ux * NODE_RADIUS_PX, y0 + uy * NODE_RADIUS_PX);
        let (ex, ey) = (x1 - ux * NODE_RADIUS_PX, y1 - uy * NODE_RADIUS_PX);
        let c = colour(step.kind);
        let _ = writeln!(
            out,
            r#"<g><title>{}</title><line x1="{sx:.1}" y1="{sy:.1}" x2="{ex:.1}" y2="{ey:.1}" stroke="{c}" stroke-width="2" marker-end="url(#m{})"/><text x="{:.1}" y="{:.1}" fill="{c}">{}</text></g>"#,
            escape(&super::explain_edge(step)),
            &c[1..],
            (sx + ex) / 2.0 + 4.0,
            (sy + ey) / 2.0 - 4.0,
            step.kind.name()
        );
    }
    for (i, step) in cycle.steps.iter().enumerate() {
        let (x, y) = position(i);
        let _ = writeln!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{NODE_RADIUS_PX}" fill="#fff" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">T{}</text>"##,
            y + 4.0,
            step.from
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

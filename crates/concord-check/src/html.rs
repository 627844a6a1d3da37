//! A failed linearizability check as a picture: one timeline per process, one bar per operation.
//!
//! Like Knossos's and Porcupine's visualisations: the x axis is the order of events in the history
//! (not wall-clock time, which may be coarse or absent; the exact times are in each bar's tooltip),
//! a bar runs from an operation's invocation to its completion, and an operation whose outcome is
//! unknown runs to the right edge with a dashed outline. Colours:
//!
//! * green, numbered – in the longest linearizable prefix, numbered in linearization order;
//! * red – the operation that returned without a possible place (the search's dead end);
//! * orange – the other operations that could not be placed next;
//! * grey – the rest.
//!
//! The page is self-contained (inline SVG and CSS, no script), so it can be attached to a bug report.

use crate::linearizability::Explanation;
use crate::ops::Operation;
use std::collections::BTreeMap;
use std::fmt::Write;

const ROW_HEIGHT_PX: usize = 34;
const BAR_HEIGHT_PX: usize = 22;
const LABEL_WIDTH_PX: usize = 70;
const UNIT_WIDTH_PX: usize = 14;
const PLOT_WIDTH_MAX_PX: usize = 6000;

/// Render the explanation as a standalone HTML page.
pub fn render(explanation: &Explanation) -> String {
    let ops = &explanation.ops;
    // Compress event positions to ranks, so that the gaps left by other partitions' events vanish.
    let mut positions: Vec<usize> = ops.iter().map(|op| op.call_index).collect();
    positions.extend(ops.iter().filter_map(|op| op.return_index));
    positions.sort_unstable();
    positions.dedup();
    let rank = |position: usize| positions.binary_search(&position).unwrap_or(0);
    let end_rank = positions.len() + 1;
    let unit_px = (PLOT_WIDTH_MAX_PX / (end_rank + 1)).clamp(2, UNIT_WIDTH_PX);

    let mut processes: BTreeMap<u64, usize> = BTreeMap::new();
    for op in ops {
        let next = processes.len();
        processes.entry(op.process).or_insert(next);
    }
    // Row order by process id, not first appearance.
    for (row, slot) in processes.values_mut().enumerate() {
        *slot = row;
    }

    let order: BTreeMap<usize, usize> =
        explanation.longest_prefix.iter().enumerate().map(|(n, &op)| (op, n + 1)).collect();
    let unplaceable: BTreeMap<usize, &str> =
        explanation.unplaceable.iter().map(|(op, why)| (*op, why.as_str())).collect();

    let width_px = LABEL_WIDTH_PX + (end_rank + 1) * unit_px;
    let height_px = processes.len() * ROW_HEIGHT_PX + 30;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}" font-family="monospace" font-size="11">"#
    );
    for (process, row) in &processes {
        let y = row * ROW_HEIGHT_PX + 20;
        let _ = writeln!(
            svg,
            r##"<text x="4" y="{}" fill="#333">p{process}</text><line x1="{LABEL_WIDTH_PX}" x2="{width_px}" y1="{}" y2="{}" stroke="#eee"/>"##,
            y + BAR_HEIGHT_PX / 2 + 4,
            y + BAR_HEIGHT_PX / 2,
            y + BAR_HEIGHT_PX / 2
        );
    }
    for (index, op) in ops.iter().enumerate() {
        let row = processes[&op.process];
        let x0 = LABEL_WIDTH_PX + rank(op.call_index) * unit_px;
        let x1 = LABEL_WIDTH_PX + op.return_index.map_or(end_rank, rank) * unit_px + unit_px / 2;
        let y = row * ROW_HEIGHT_PX + 20;
        let (fill, label) = if index == explanation.blocking {
            ("#e5534b", "!".to_string())
        } else if let Some(n) = order.get(&index) {
            ("#57ab5a", n.to_string())
        } else if unplaceable.contains_key(&index) {
            ("#f69d50", "?".to_string())
        } else {
            ("#aaaaaa", String::new())
        };
        let dash = if op.return_index.is_none() { r#" stroke-dasharray="4 3""# } else { "" };
        let mut title = format!("{}\ninvoked at {} (event {})", op, op.call_time, op.call_index);
        match (op.return_index, op.return_time) {
            (Some(r), Some(t)) => {
                let _ = write!(title, "\nreturned at {t} (event {r})");
            }
            (None, Some(t)) => {
                let _ = write!(title, "\noutcome unknown (info at {t})");
            }
            _ => title.push_str("\nnever completed"),
        }
        if let Some(n) = order.get(&index) {
            let _ = write!(title, "\nlinearized #{n}");
        }
        if let Some(why) = unplaceable.get(&index) {
            let _ = write!(title, "\ncannot be placed next: {why}");
        }
        let _ = writeln!(
            svg,
            r##"<g><title>{}</title><rect x="{x0}" y="{y}" width="{}" height="{BAR_HEIGHT_PX}" rx="3" fill="{fill}" fill-opacity="0.85" stroke="#333"{dash}/><text x="{}" y="{}" fill="#000">{} {}</text></g>"##,
            escape(&title),
            (x1 - x0).max(3),
            x0 + 3,
            y + 15,
            escape(&label),
            escape(&short(op)),
        );
    }
    svg.push_str("</svg>\n");

    let mut page = String::new();
    let key = explanation.key.as_deref().unwrap_or("(no key)");
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Not linearizable: {key_html}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
.legend span {{ display: inline-block; padding: 2px 8px; margin-right: 8px; border: 1px solid #333; border-radius: 3px; }}
.plot {{ overflow-x: auto; border: 1px solid #ddd; }}
</style></head><body>
<h1>Not linearizable – {model} model, key {key_html}</h1>
<p class="legend"><span style="background:#57ab5a">linearized (order)</span><span style="background:#e5534b">returned without a place</span><span style="background:#f69d50">cannot be placed next</span><span style="background:#aaaaaa">other</span> dashed outline: outcome unknown. Hover a bar for details.</p>
<div class="plot">
{svg}</div>
<h2>Explanation</h2>
<pre>{text}</pre>
</body></html>
"#,
        key_html = escape(key),
        model = explanation.model,
        text = escape(&explanation.to_string()),
    );
    page
}

/// The bar label: the operation without its process (the row says that).
fn short(op: &Operation) -> String {
    let full = op.to_string();
    match full.split_once(' ') {
        Some((_, rest)) => rest.to_string(),
        None => full,
    }
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

//! The verdict, and the run's directory: the plot of throughput and latency over time with the
//! faults shaded, results.json, and index.html.

use concord_check::{linearizability, Model, Verdict};
use concord_core::history::{EventType, History};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One fault as it happened (seconds since the clients started).
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub nemesis: String,
    pub start: f64,
    pub end: f64,
    /// What was done, in words (which nodes, which links).
    pub what: String,
    /// Errors of the injection or its undoing, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What the nodes showed: clock faults – each node's clock offset, term and role, read when
    /// the fault started and just before it was undone; disk faults – the log line of a cut torn
    /// tail, the refusal of a corrupt log, the rebuild.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<String>,
}

/// The linearizability checker's verdict on a register history, in the words of results.json.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub checker: &'static str,
    /// `true`, `false`, or `null` (unknown: the search ran out of time or memory).
    pub valid: Option<bool>,
    pub summary: String,
    /// When not linearizable: the failing key (the smallest failing partition) and its operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing_ops: Vec<String>,
    /// The checker's counts and findings (set, bank), as results.json shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Check a register history: every key its own register (linearizability is local).
pub fn check_registers(history: &History, timeout: Duration) -> CheckResult {
    check_linearizable(history, Model::Register, "linearizability (register per key)", timeout)
}

/// Check a history for linearizability under `model`, every key its own object.
pub fn check_linearizable(
    history: &History,
    model: Model,
    checker: &'static str,
    timeout: Duration,
) -> CheckResult {
    let verdict = linearizability::check(history, model, timeout);
    match verdict {
        Verdict::Linearizable => CheckResult {
            checker,
            valid: Some(true),
            summary: "linearizable".into(),
            failing_key: None,
            failing_ops: vec![],
            details: None,
        },
        Verdict::NotLinearizable(e) => CheckResult {
            checker,
            valid: Some(false),
            summary: e.to_string(),
            failing_key: e.key.clone(),
            failing_ops: e.ops.iter().map(|o| format!("{o:?}")).collect(),
            details: None,
        },
        Verdict::Unknown(why) => CheckResult {
            checker,
            valid: None,
            summary: format!("unknown: {why}"),
            failing_key: None,
            failing_ops: vec![],
            details: None,
        },
    }
}

/// Per-second counts and latencies drawn from a history.
pub struct Series {
    /// (second, completions per second) for ok, fail and info.
    pub ok: Vec<(f64, f64)>,
    pub fail: Vec<(f64, f64)>,
    pub info: Vec<(f64, f64)>,
    /// (completion time s, latency ms, kind).
    pub latency: Vec<(f64, f64, EventType)>,
    pub end: f64,
}

/// The series of a history given as its events' `(process, kind, time)`.
pub fn series_of(events: impl IntoIterator<Item = (u64, EventType, concord_core::Time)>) -> Series {
    let mut open: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    let mut latency = Vec::new();
    let mut end: f64 = 1.0;
    for (process, kind, time) in events {
        let t = time.0 as f64 / 1e9;
        end = end.max(t);
        match kind {
            EventType::Invoke => {
                open.insert(process, t);
            }
            kind => {
                if let Some(t0) = open.remove(&process) {
                    latency.push((t, (t - t0) * 1e3, kind));
                }
            }
        }
    }
    let buckets = end.ceil() as usize + 1;
    let mut counts = vec![[0u32; 3]; buckets];
    for &(t, _, kind) in &latency {
        let slot = match kind {
            EventType::Ok => 0,
            EventType::Fail => 1,
            _ => 2,
        };
        counts[t as usize][slot] += 1;
    }
    let line =
        |slot: usize| counts.iter().enumerate().map(|(s, c)| (s as f64 + 0.5, c[slot] as f64)).collect();
    Series { ok: line(0), fail: line(1), info: line(2), latency, end }
}

/// Throughput (top) and latency (bottom) over time, faults shaded, as `<stem>.svg` and `.png`.
pub fn plot(stem: &Path, s: &Series, faults: &[Fault]) -> anyhow::Result<()> {
    let size = (1100, 700);
    let svg = stem.with_extension("svg");
    draw(SVGBackend::new(&svg, size).into_drawing_area(), s, faults)?;
    let png = stem.with_extension("png");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), s, faults)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &Series, faults: &[Fault]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plotting: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(350);
    let x1 = s.end.ceil().max(1.0);
    let shade = RGBColor(255, 200, 200).mix(0.5);
    let ok_color = RGBColor(44, 160, 44);
    let fail_color = RGBColor(214, 39, 40);
    let info_color = RGBColor(255, 127, 14);

    let y_max = s.ok.iter().chain(&s.fail).chain(&s.info).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut ctx = ChartBuilder::on(&top)
        .caption("throughput (completions per second); faults shaded", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x1, 0.0..y_max)
        .map_err(err)?;
    ctx.configure_mesh().x_desc("seconds").y_desc("ops/s").draw().map_err(err)?;
    for f in faults {
        ctx.draw_series(std::iter::once(Rectangle::new([(f.start, 0.0), (f.end, y_max)], shade.filled())))
            .map_err(err)?;
        ctx.draw_series(std::iter::once(Text::new(
            f.nemesis.clone(),
            (f.start + 0.1, y_max * 0.97),
            ("sans-serif", 12).into_font().color(&RGBColor(150, 0, 0)),
        )))
        .map_err(err)?;
    }
    for (name, points, color) in
        [("ok", &s.ok, ok_color), ("fail", &s.fail, fail_color), ("info", &s.info, info_color)]
    {
        ctx.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    ctx.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw().map_err(err)?;

    let l_max = s.latency.iter().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let mut ctx = ChartBuilder::on(&bottom)
        .caption("latency of each operation (ms, log scale) at its completion", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x1, (0.1..l_max).log_scale())
        .map_err(err)?;
    ctx.configure_mesh().x_desc("seconds").y_desc("ms").draw().map_err(err)?;
    for f in faults {
        ctx.draw_series(std::iter::once(Rectangle::new([(f.start, 0.1), (f.end, l_max)], shade.filled())))
            .map_err(err)?;
    }
    ctx.draw_series(s.latency.iter().map(|&(t, ms, kind)| {
        let color = match kind {
            EventType::Ok => ok_color,
            EventType::Fail => fail_color,
            _ => info_color,
        };
        Circle::new((t, ms.max(0.1)), 2, color.mix(0.6).filled())
    }))
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// index.html: the verdict, the run's parameters, the plot, the faults, the files.
pub fn index_html(
    results: &serde_json::Value,
    faults: &[Fault],
    checks: &[CheckResult],
    files: &[String],
) -> String {
    let valid = results["valid"].as_bool() == Some(true);
    let mut html = String::from("<!doctype html><meta charset=utf-8><title>concord chaos</title>\n");
    html.push_str("<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto}td,th{padding:2px 8px;text-align:left}pre{background:#f4f4f4;padding:8px;overflow:auto}</style>\n");
    html.push_str(&format!(
        "<h1>concord chaos: <span style=\"color:{}\">{}</span></h1>\n",
        if valid { "green" } else { "#b00" },
        if valid {
            "valid"
        } else if results["valid"].is_null() {
            "unknown"
        } else {
            "INVALID"
        }
    ));
    html.push_str(&format!(
        "<pre>{}</pre>\n",
        escape(&serde_json::to_string_pretty(&results["run"]).unwrap_or_default())
    ));
    html.push_str("<h2>Checkers</h2><table><tr><th>checker</th><th>valid</th><th>summary</th></tr>\n");
    for c in checks {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>\n",
            c.checker,
            c.valid.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into()),
            escape(&c.summary)
        ));
        if !c.failing_ops.is_empty() {
            html.push_str(&format!(
                "<tr><td colspan=3>operations of key {}:<pre>{}</pre></td></tr>\n",
                escape(c.failing_key.as_deref().unwrap_or("-")),
                escape(&c.failing_ops.join("\n"))
            ));
        }
    }
    html.push_str("</table>\n<h2>Throughput and latency</h2><img src=\"latency.svg\" width=1100>\n");
    html.push_str("<h2>Faults</h2><table><tr><th>nemesis</th><th>from (s)</th><th>to (s)</th><th>what</th><th>errors</th></tr>\n");
    for f in faults {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>\n",
            f.nemesis,
            f.start,
            f.end,
            escape(&f.what),
            escape(&f.errors.join("; "))
        ));
    }
    html.push_str("</table>\n<h2>Files</h2><ul>\n");
    for f in files {
        html.push_str(&format!("<li><a href=\"{f}\">{f}</a></li>\n"));
    }
    html.push_str("</ul>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::history::Op;
    use concord_core::Time;

    fn ms(n: u64) -> Time {
        Time(n * 1_000_000)
    }

    /// A write acknowledged, then a later read that does not see it: a lost write, caught; the
    /// same history with the read seeing it is valid.
    #[test]
    fn a_lost_write_is_invalid_and_names_its_key() {
        let mut h = History::default();
        // Key r1 is fine; key r0 loses its acknowledged write of 3.
        h.push(0, EventType::Invoke, Op::write("r1", 1), ms(0));
        h.push(0, EventType::Ok, Op::write("r1", 1), ms(5));
        h.push(1, EventType::Invoke, Op::write("r0", 3), ms(10));
        h.push(1, EventType::Ok, Op::write("r0", 3), ms(20));
        h.push(2, EventType::Invoke, Op::cas("r0", 3, 4), ms(21));
        h.push(2, EventType::Fail, Op::cas("r0", 3, 4), ms(25));
        h.push(0, EventType::Invoke, Op::read("r1"), ms(30));
        h.push(
            0,
            EventType::Ok,
            Op { value: concord_core::history::Value::Int(1), ..Op::read("r1") },
            ms(31),
        );
        let mut lost = h.clone();
        lost.push(3, EventType::Invoke, Op::read("r0"), ms(40));
        lost.push(3, EventType::Ok, Op::read("r0"), ms(45)); // nil: the write is gone
        let result = check_registers(&lost, Duration::from_secs(10));
        assert_eq!(result.valid, Some(false), "{result:?}");
        assert_eq!(result.failing_key.as_deref(), Some("r0"));
        assert!(result.failing_ops.len() >= 2, "{result:?}");

        let mut kept = h;
        kept.push(3, EventType::Invoke, Op::read("r0"), ms(40));
        kept.push(
            3,
            EventType::Ok,
            Op { value: concord_core::history::Value::Int(3), ..Op::read("r0") },
            ms(45),
        );
        assert_eq!(check_registers(&kept, Duration::from_secs(10)).valid, Some(true));
    }

    #[test]
    fn series_counts_completions_per_second() {
        let mut h = History::default();
        h.push(0, EventType::Invoke, Op::read("r0"), ms(100));
        h.push(0, EventType::Ok, Op::read("r0"), ms(300));
        h.push(1, EventType::Invoke, Op::write("r0", 1), ms(900));
        h.push(1, EventType::Info, Op::write("r0", 1), ms(1_400));
        let s = series_of(h.events.iter().map(|e| (e.process, e.kind, e.time)));
        assert_eq!(s.ok[0].1, 1.0);
        assert_eq!(s.info[1].1, 1.0);
        assert_eq!(s.latency.len(), 2);
        assert!((s.latency[1].1 - 500.0).abs() < 1e-6);
    }
}

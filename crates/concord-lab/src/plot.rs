//! Plots (SVG and PNG) with `plotters`, shared by the labs.
//!
//! * [`cdf`] draws several samples as step curves on one chart: x is the measured value (linear or
//!   logarithmic), y the percentage of trials at or below it – the shape of the Raft paper's
//!   Figure 16.
//! * [`xy_marked`] draws lines (solid, dashed or dotted) and marked points, optionally on a log y
//!   axis – e.g. PBS consistency curves, model next to measurement, the paper's numbers as crosses.
//! * [`timeline`] draws lanes of coloured spans over time – which value each replica holds.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One curve: a label and its sample (any order).
pub struct Curve {
    pub label: String,
    pub values: Vec<f64>,
}

/// How to draw a CDF chart.
pub struct CdfChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    /// Logarithmic x axis (for samples spanning decades).
    pub log_x: bool,
    pub x_range: (f64, f64),
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The points of a CDF step curve: (value, percent of the sample at or below it).
pub fn cdf_points(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mut points = Vec::with_capacity(2 * sorted.len());
    for (i, &v) in sorted.iter().enumerate() {
        points.push((v, 100.0 * i as f64 / n));
        points.push((v, 100.0 * (i + 1) as f64 / n));
    }
    points
}

/// Write the chart as `<stem>.svg` and `<stem>.png`.
pub fn cdf(stem: &Path, chart: &CdfChart<'_>, curves: &[Curve]) -> anyhow::Result<()> {
    let size = (900, 560);
    let svg = stem.with_extension("svg");
    draw(SVGBackend::new(&svg, size).into_drawing_area(), chart, curves)?;
    let png = stem.with_extension("png");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), chart, curves)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &CdfChart<'_>,
    curves: &[Curve],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plotting: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (lo, hi) = chart.x_range;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, ("sans-serif", 22)).margin(15).x_label_area_size(45).y_label_area_size(55);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc("cumulative percent of trials")
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            for (i, curve) in curves.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let points: Vec<(f64, f64)> =
                    cdf_points(&curve.values).into_iter().map(|(x, y)| (x.clamp(lo, hi), y)).collect();
                ctx.draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(err)?
                    .label(curve.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            ctx.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if chart.log_x {
        body!(builder.build_cartesian_2d((lo..hi).log_scale(), 0.0..100.0).map_err(err)?);
    } else {
        body!(builder.build_cartesian_2d(lo..hi, 0.0..100.0).map_err(err)?);
    }
    root.present().map_err(err)?;
    Ok(())
}

/// How to draw an [`xy_marked`] chart.
pub struct XyChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
}

/// One bar of a [`timeline`]: lane `lane` holds `label` from `from` to `to` (x units).
pub struct Span {
    pub lane: usize,
    pub from: f64,
    pub to: f64,
    pub label: String,
    /// Palette index (the same value gets the same colour on every lane).
    pub color: usize,
}

/// A vertical marker across all lanes (a partition, a heal) or a tick on one lane (a write).
pub struct Mark {
    pub x: f64,
    pub label: String,
    /// `None`: a line across the chart; `Some(lane)`: a small triangle above that lane.
    pub lane: Option<usize>,
}

/// Lanes of coloured spans over time (which value each replica holds), `<stem>.svg` and `.png`.
pub fn timeline(
    stem: &Path,
    title: &str,
    x_label: &str,
    lanes: &[String],
    x_range: (f64, f64),
    spans: &[Span],
    marks: &[Mark],
) -> anyhow::Result<()> {
    let size = (1000, 120 + 60 * lanes.len() as u32);
    let svg = stem.with_extension("svg");
    let args = (title, x_label, lanes, x_range, spans, marks);
    draw_timeline(SVGBackend::new(&svg, size).into_drawing_area(), args)?;
    let png = stem.with_extension("png");
    draw_timeline(BitMapBackend::new(&png, size).into_drawing_area(), args)?;
    Ok(())
}

type TimelineArgs<'a> = (&'a str, &'a str, &'a [String], (f64, f64), &'a [Span], &'a [Mark]);

fn draw_timeline<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    args: TimelineArgs<'_>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (title, x_label, lanes, (x0, x1), spans, marks) = args;
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plotting: {e}");
    root.fill(&WHITE).map_err(err)?;
    let n = lanes.len() as f64;
    let mut ctx = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(x0..x1, -0.6..n - 0.2)
        .map_err(err)?;
    let lane_names = lanes.to_vec();
    ctx.configure_mesh()
        .x_desc(x_label)
        .disable_y_mesh()
        .y_labels(lanes.len() * 4 + 1)
        .y_label_formatter(&move |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < lane_names.len() {
                lane_names[lane_names.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    // Lane 0 is drawn at the top.
    let y_of = |lane: usize| n - 1.0 - lane as f64;
    for s in spans {
        let color = distinct_color(s.color);
        let y = y_of(s.lane);
        let (a, b) = (s.from.max(x0), s.to.min(x1));
        ctx.draw_series(std::iter::once(Rectangle::new(
            [(a, y - 0.3), (b, y + 0.3)],
            color.mix(0.75).filled(),
        )))
        .map_err(err)?;
        // Label spans wide enough to hold it.
        if (b - a) / (x1 - x0) > 0.006 * s.label.len() as f64 + 0.01 {
            ctx.draw_series(std::iter::once(Text::new(
                s.label.clone(),
                (a + (x1 - x0) * 0.003, y + 0.12),
                ("sans-serif", 12).into_font().color(&BLACK),
            )))
            .map_err(err)?;
        }
    }
    for m in marks {
        match m.lane {
            None => {
                ctx.draw_series(std::iter::once(PathElement::new(
                    vec![(m.x, -0.6), (m.x, n - 0.2)],
                    RGBColor(200, 0, 0).stroke_width(2),
                )))
                .map_err(err)?;
                ctx.draw_series(std::iter::once(Text::new(
                    m.label.clone(),
                    (m.x + (x1 - x0) * 0.004, -0.45),
                    ("sans-serif", 13).into_font().color(&RGBColor(200, 0, 0)),
                )))
                .map_err(err)?;
            }
            Some(lane) => {
                let y = y_of(lane) + 0.38;
                ctx.draw_series(std::iter::once(TriangleMarker::new((m.x, y), 5, BLACK.filled())))
                    .map_err(err)?;
            }
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Colour `i`: the palette's eight first, then hues spaced by the golden angle – never the same
/// colour twice (for charts with more categories than the palette, e.g. many values on a timeline).
pub fn distinct_color(i: usize) -> RGBColor {
    if let Some(&c) = PALETTE.get(i) {
        return c;
    }
    let hue = ((i - PALETTE.len()) as f64 * 137.507_764 + 15.0) % 360.0;
    // Alternate lightness so that neighbouring hues also differ in brightness.
    let light = if i.is_multiple_of(2) { 0.45 } else { 0.62 };
    hsl(hue, 0.65, light)
}

fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m).clamp(0.0, 1.0) * 255.0).round() as u8;
    RGBColor(byte(r), byte(g), byte(b))
}

/// How a [`StyledSeries`] is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineStyle {
    Solid,
    Dashed,
    Dotted,
}

/// A line of an [`xy_marked`] chart.
pub struct StyledSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: LineStyle,
    pub color: usize,
}

/// A labelled point (e.g. a number from a paper) on an [`xy_marked`] chart. Markers with the same
/// `legend` share one legend entry.
pub struct Marker {
    pub x: f64,
    pub y: f64,
    pub color: usize,
    pub legend: String,
}

/// A line chart of several series with line styles, point markers, and optionally a logarithmic y
/// axis (for `1 − P` near 0, where a linear axis crowds the curves against the top), written as
/// `<stem>.svg` and `<stem>.png`.
pub fn xy_marked(
    stem: &Path,
    chart: &XyChart<'_>,
    log_y: bool,
    series: &[StyledSeries],
    markers: &[Marker],
) -> anyhow::Result<()> {
    let size = (900, 600);
    let svg = stem.with_extension("svg");
    draw_xy_marked(SVGBackend::new(&svg, size).into_drawing_area(), chart, log_y, series, markers)?;
    let png = stem.with_extension("png");
    draw_xy_marked(BitMapBackend::new(&png, size).into_drawing_area(), chart, log_y, series, markers)?;
    Ok(())
}

fn draw_xy_marked<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &XyChart<'_>,
    log_y: bool,
    series: &[StyledSeries],
    markers: &[Marker],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plotting: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1) = chart.x_range;
    let (y0, y1) = chart.y_range;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, ("sans-serif", 18)).margin(15).x_label_area_size(45).y_label_area_size(70);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            for s in series {
                let color = distinct_color(s.color);
                let points: Vec<(f64, f64)> =
                    s.points.iter().map(|&(x, y)| (x.clamp(x0, x1), y.clamp(y0, y1))).collect();
                let style = color.stroke_width(2);
                let anno = match s.style {
                    LineStyle::Solid => ctx.draw_series(LineSeries::new(points, style)).map_err(err)?,
                    LineStyle::Dashed => {
                        ctx.draw_series(DashedLineSeries::new(points, 8, 5, style)).map_err(err)?
                    }
                    LineStyle::Dotted => {
                        ctx.draw_series(DashedLineSeries::new(points, 2, 4, style)).map_err(err)?
                    }
                };
                let line = s.style;
                anno.label(s.label.clone()).legend(move |(x, y)| match line {
                    LineStyle::Solid => PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)),
                    LineStyle::Dashed => PathElement::new(vec![(x, y), (x + 8, y)], color.stroke_width(2)),
                    LineStyle::Dotted => PathElement::new(vec![(x, y), (x + 3, y)], color.stroke_width(2)),
                });
            }
            let mut legends: Vec<&str> = Vec::new();
            for m in markers {
                let color = distinct_color(m.color);
                let point = (m.x.clamp(x0, x1), m.y.clamp(y0, y1));
                ctx.draw_series(std::iter::once(Cross::new(point, 7, BLACK.stroke_width(3)))).map_err(err)?;
                let anno = ctx
                    .draw_series(std::iter::once(Cross::new(point, 6, color.stroke_width(2))))
                    .map_err(err)?;
                if !legends.contains(&m.legend.as_str()) {
                    legends.push(&m.legend);
                    anno.label(m.legend.clone())
                        .legend(move |(x, y)| Cross::new((x + 8, y), 5, BLACK.stroke_width(2)));
                }
            }
            ctx.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(err)?;
        }};
    }
    match (chart.log_x, log_y) {
        (false, false) => body!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (true, false) => body!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?),
        (false, true) => body!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(err)?),
        (true, true) => {
            body!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(err)?)
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_climb_to_100_percent() {
        let p = cdf_points(&[3.0, 1.0, 2.0]);
        assert_eq!(p.first(), Some(&(1.0, 0.0)));
        assert_eq!(p.last(), Some(&(3.0, 100.0)));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn distinct_colors_do_not_repeat() {
        let colors: Vec<(u8, u8, u8)> = (0..40)
            .map(|i| {
                let c = distinct_color(i);
                (c.0, c.1, c.2)
            })
            .collect();
        for (i, a) in colors.iter().enumerate() {
            assert!(!colors[..i].contains(a), "colour {i} repeats: {a:?}");
        }
    }
}

//! Cumulative-distribution plots (SVG and PNG) with `plotters`.
//!
//! One function, [`cdf`], draws several samples as step curves on one chart: x is the measured
//! value (linear or logarithmic), y the percentage of trials at or below it – the shape of the Raft
//! paper's Figure 16.

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
}

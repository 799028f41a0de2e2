//! The picture of an analysis: rate-quality curves per resolution, the convex hull and the
//! chosen rungs, as SVG or PNG (`plotters`).

use crate::{Analysis, LadderError};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Fonts tried for labels (Debian's `fonts-dejavu-core`, then other common places).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> Result<(), LadderError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no font for the plot's labels (looked for {}; install fonts-dejavu-core)",
                    FONTS.join(", ")
                )
            })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the DejaVu font file is not a font".to_string())
    })
    .clone()
    .map_err(LadderError::Plot)
}

const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Draws `analysis` to `path`: SVG when it ends in `.svg`, PNG when in `.png`. Written to a
/// temporary name and renamed, so a failed plot leaves no file.
pub fn plot(analysis: &Analysis, path: &Path) -> Result<(), LadderError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("plot"),
        ext.as_deref().unwrap_or("")
    ));
    register_font()?;
    let size = (1000, 640);
    let drawn = match ext.as_deref() {
        Some("svg") => draw(SVGBackend::new(&tmp, size).into_drawing_area(), analysis),
        Some("png") => draw(BitMapBackend::new(&tmp, size).into_drawing_area(), analysis),
        _ => {
            return Err(LadderError::Plot(format!(
                "{}: the plot's name must end in .svg or .png",
                path.display()
            )))
        }
    };
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(LadderError::Plot(format!("{}: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LadderError::Plot(format!("{}: {e}", path.display()))
    })
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    a: &Analysis,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let name = a
        .source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = match (&a.fallback, &a.prediction_error) {
        (None, None) => format!("{name}: per-title ladder ({} rungs)", a.rungs.len()),
        (None, Some(e)) => format!(
            "{name}: per-title ladder ({} rungs; prediction error: mean {:.1}, largest {:+.1})",
            a.rungs.len(),
            e.mean_absolute,
            e.largest
        ),
        (Some(why), _) => format!("{name}: fixed ladder used ({why})"),
    };
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let measured_rates = a
        .rungs
        .iter()
        .filter_map(|r| r.measured.as_ref())
        .map(|m| m.bitrate);
    for rate in a.trials.iter().map(|t| t.bitrate).chain(measured_rates) {
        lo = lo.min(rate);
        hi = hi.max(rate);
    }
    if lo > hi {
        lo = 100.0;
        hi = 10_000.0;
    }
    let x_range = (lo / 1.3).max(1.0)..(hi * 1.3);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range.log_scale(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| bitrate_label(*v))
        .x_desc("bitrate (kbit/s, log scale)")
        .y_desc("VMAF (mean, vmaf_v0.6.1)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let mut heights: Vec<u32> = a.trials.iter().map(|t| t.height).collect();
    heights.sort_unstable_by(|x, y| y.cmp(x));
    heights.dedup();
    for (i, h) in heights.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(f64, f64)> = a
            .trials
            .iter()
            .filter(|t| t.height == *h)
            .map(|t| (t.bitrate, t.vmaf.mean))
            .collect();
        pts.sort_by(|p, q| p.0.total_cmp(&q.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(format!("{h}p"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    let hull: Vec<(f64, f64)> = a.hull.iter().map(|p| (p.bitrate, p.score)).collect();
    chart
        .draw_series(LineSeries::new(hull, BLACK.stroke_width(3)))?
        .label("convex hull")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(a.rungs.iter().map(|r| {
            Circle::new(
                (r.predicted_bitrate, r.predicted_vmaf),
                8,
                red.stroke_width(3),
            )
        }))?
        .label("chosen rungs")
        .legend(move |(x, y)| Circle::new((x + 10, y), 6, red.stroke_width(3)));
    for r in &a.rungs {
        chart.draw_series(std::iter::once(Text::new(
            format!("{}p {:.0}k", r.height, r.predicted_bitrate),
            (
                r.predicted_bitrate * 1.06,
                (r.predicted_vmaf - 4.0).max(1.0),
            ),
            ("sans-serif", 13).into_font().color(&red),
        )))?;
    }
    draw_measured(&mut chart, a)?;
    let ceiling = a.options.constraints.quality_ceiling;
    chart
        .draw_series(LineSeries::new(
            vec![((lo / 1.3).max(1.0), ceiling), (hi * 1.3, ceiling)],
            RGBColor(150, 150, 150).stroke_width(1),
        ))?
        .label(format!("quality ceiling {ceiling}"))
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                RGBColor(150, 150, 150).stroke_width(1),
            )
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The label of a bitrate grid line: only 1, 2 and 5 times a power of ten are labelled (a log
/// axis draws a line at every multiple, and 700, 800, 900 and 1000 kbit/s would overlap).
fn bitrate_label(kbps: f64) -> String {
    if kbps <= 0.0 {
        return String::new();
    }
    let decade = 10f64.powf(kbps.log10().floor());
    let mantissa = (kbps / decade).round();
    let on_grid = ((kbps / decade) - mantissa).abs() < 1e-6;
    if on_grid && [1.0, 2.0, 5.0].contains(&mantissa) {
        format!("{kbps:.0}")
    } else {
        String::new()
    }
}

/// The rungs as encoded and measured over the whole title (filled squares), each joined to its
/// prediction by a thin line; nothing when no rung has been measured.
fn draw_measured<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<LogCoord<f64>, plotters::coord::types::RangedCoordf64>,
    >,
    a: &Analysis,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let measured: Vec<_> = a
        .rungs
        .iter()
        .filter_map(|r| r.measured.as_ref().map(|m| (r, m)))
        .collect();
    if measured.is_empty() {
        return Ok(());
    }
    let green = RGBColor(0, 128, 0);
    for (r, m) in &measured {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (r.predicted_bitrate, r.predicted_vmaf),
                (m.bitrate, m.vmaf.mean),
            ],
            green.stroke_width(1),
        )))?;
    }
    chart
        .draw_series(measured.iter().map(|(_, m)| {
            EmptyElement::at((m.bitrate, m.vmaf.mean))
                + Rectangle::new([(-5, -5), (5, 5)], green.filled())
        }))?
        .label("encoded rungs, measured (whole title)")
        .legend(move |(x, y)| Rectangle::new([(x + 5, y - 5), (x + 15, y + 5)], green.filled()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bitrate_label;

    #[test]
    fn only_one_two_and_five_are_labelled() {
        let labels: Vec<String> = [
            100.0, 200.0, 300.0, 500.0, 700.0, 800.0, 900.0, 1000.0, 2000.0, 5000.0, 6000.0,
        ]
        .iter()
        .map(|&v| bitrate_label(v))
        .collect();
        assert_eq!(
            labels,
            ["100", "200", "", "500", "", "", "", "1000", "2000", "5000", ""]
        );
        assert_eq!(bitrate_label(1234.0), "");
    }
}

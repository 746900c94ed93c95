//! The accuracy chart: test accuracy per round, one line per run, drawn
//! with plotters' SVG backend (text is written as SVG text elements, so no
//! system font is needed).

use std::error::Error;
use std::path::Path;

use nodeflow::learning::RunReport;
use plotters::prelude::*;

/// Colours of the lines, in run order (then repeated).
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Draws test accuracy against the round of every run in `runs` into an
/// SVG file at `path`, axes labelled, with a legend naming each run and
/// its final accuracy.
pub fn accuracy_chart(path: &Path, runs: &[RunReport]) -> Result<(), Box<dyn Error>> {
    let last_round = runs
        .iter()
        .flat_map(|r| r.rounds.last())
        .map(|r| r.round)
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Test accuracy per round", ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..last_round as f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("test accuracy")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = run
            .rounds
            .iter()
            .filter(|r| r.accuracy.is_finite())
            .map(|r| (r.round as f64, r.accuracy.clamp(0.0, 1.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(format!(
                "{} ({} node{}): {:.3}",
                run.algo,
                run.nodes,
                if run.nodes == 1 { "" } else { "s" },
                run.final_accuracy
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

//! The charts, drawn with plotters as SVG: load over time for the issue-4 fleet (the
//! naive herd against Kaipiao's policy), and one chart per capacity of the issue-13 sweep
//! (today's recovery plan against the authority's pacing). Labels are SVG text: no font
//! files, so `make fleet` draws the same picture on any machine.

use crate::paced::PacedMeasured;
use crate::Measured;
use plotters::prelude::*;

/// Naive client, offered / accepted.
const RED: RGBColor = RGBColor(214, 39, 40);
const PINK: RGBColor = RGBColor(245, 150, 150);
/// Kaipiao (today's plan), offered / accepted.
const BLUE: RGBColor = RGBColor(31, 119, 180);
const LIGHT_BLUE: RGBColor = RGBColor(140, 190, 230);
/// Paced by the authority, offered / accepted.
const GREEN: RGBColor = RGBColor(44, 160, 44);
const LIGHT_GREEN: RGBColor = RGBColor(150, 215, 150);

type Series<'a> = (&'a str, RGBColor, u32, Vec<(f64, f64)>);

fn points(values: &[u64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 + 0.5, *v as f64))
        .collect()
}

/// One panel: `series` over time with the capacity as a dashed level.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_max: f64,
    y_max: f64,
    capacity: f64,
    series: Vec<Series<'_>>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds after the authority came back")
        .y_desc("invoices per second")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, capacity), (x_max, capacity)],
            8,
            6,
            BLACK.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("capacity ({capacity:.0}/s)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(2)));
    for (name, color, width, data) in series {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(width)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The issue-4 chart: offered load (top) and accepted load (bottom) of the naive herd and
/// of Kaipiao's policy, as SVG text.
pub fn chart(naive: &Measured, policy: &Measured) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 900)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let s = &policy.scenario;
        let root = root
            .titled(
                &format!(
                    "{} clients x {} invoices, capacity {:.0} invoices/s, ideal drain {:.0} s",
                    s.clients,
                    s.backlog,
                    s.capacity,
                    s.ideal_drain()
                ),
                ("sans-serif", 24),
            )
            .map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(450);
        let seconds = naive.seconds.len().max(policy.seconds.len()) as f64;
        let x_max = (seconds / 10.0).ceil() * 10.0;
        let of = |m: &Measured, f: fn(&crate::Second) -> u32| {
            points(
                &m.seconds
                    .iter()
                    .map(|x| u64::from(f(x)))
                    .collect::<Vec<_>>(),
            )
        };
        let peak = naive.seconds.iter().map(|x| x.offered).max().unwrap_or(0);
        panel(
            &top,
            "offered load: naive herd against Kaipiao's policy",
            x_max,
            (f64::from(peak) * 1.1).max(s.capacity * 2.0),
            s.capacity,
            vec![
                (
                    "naive: offered (fixed 1 s retry)",
                    RED,
                    2,
                    of(naive, |x| x.offered),
                ),
                ("Kaipiao: offered", BLUE, 2, of(policy, |x| x.offered)),
            ],
        )?;
        panel(
            &bottom,
            "accepted load",
            x_max,
            s.capacity * 1.6,
            s.capacity,
            vec![
                ("naive: accepted", PINK, 2, of(naive, |x| x.accepted)),
                ("Kaipiao: accepted", GREEN, 2, of(policy, |x| x.accepted)),
            ],
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One capacity of the issue-13 sweep: offered and accepted load over time for today's
/// recovery plan and for the authority's pacing, as SVG text.
pub fn capacity_chart(
    title: &str,
    capacity: f64,
    plan: &Measured,
    paced: &PacedMeasured,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let offered: Vec<u64> = plan.seconds.iter().map(|x| u64::from(x.offered)).collect();
        let accepted: Vec<u64> = plan.seconds.iter().map(|x| u64::from(x.accepted)).collect();
        let seconds = offered.len().max(paced.offered.len()) as f64;
        let x_max = (seconds / 10.0).ceil() * 10.0;
        let peak = offered
            .iter()
            .chain(&paced.offered)
            .copied()
            .max()
            .unwrap_or(0) as f64;
        panel(
            &root,
            title,
            x_max.max(10.0),
            (peak * 1.1).max(capacity * 1.5),
            capacity,
            vec![
                ("recovery plan: offered", BLUE, 2, points(&offered)),
                ("recovery plan: accepted", LIGHT_BLUE, 2, points(&accepted)),
                ("paced: offered", GREEN, 2, points(&paced.offered)),
                ("paced: accepted", LIGHT_GREEN, 2, points(&paced.accepted)),
            ],
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

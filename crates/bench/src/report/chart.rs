//! The PNG chart: one column per workload; throughput on top, p99 latency below, both
//! on log scales; one line per system over the client counts.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate through
//! plotters' `ab_glyph` backend), so the chart renders on a machine with no fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::Report;
use crate::drivers::Target;
use crate::workload::Workload;

const WIDTH: u32 = 1500;
const HEIGHT: u32 = 900;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail for a well-formed TTF; if it ever did, text would be missing,
        // which the chart test would notice.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn color(t: Target) -> RGBColor {
    match t {
        Target::Raftkv => RGBColor(214, 39, 40),
        Target::Etcd => RGBColor(31, 119, 180),
        Target::Redis => RGBColor(44, 160, 44),
        Target::RaftkvTls => RGBColor(148, 103, 189),
    }
}

#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    P99,
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("chart: {e}")
}

pub fn render(report: &Report, path: &Path) -> Result<(), String> {
    register_font();
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (title, body) = root.split_vertically(50);
    let mode = report.params.label().to_lowercase();
    title
        .titled(
            &format!(
                "kvbench ({mode} run): throughput and p99 latency by concurrent clients \
                 ({} s measured per point)",
                report.params.duration_s
            ),
            ("sans-serif", 24),
        )
        .map_err(err)?;

    let workloads = &report.params.workloads;
    let cols = workloads.len().max(1);
    let panels = body.split_evenly((2, cols));
    for (j, &w) in workloads.iter().enumerate() {
        panel(report, &panels[j], w, Metric::Throughput)?;
        panel(report, &panels[cols + j], w, Metric::P99)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

fn panel(
    report: &Report,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    w: Workload,
    metric: Metric,
) -> Result<(), String> {
    let clients = &report.params.clients;
    let n = clients.len().max(1) as i32;
    let systems = report.measured_systems();
    let value = |t: Target, c: usize| {
        report.sample(t, w, c).map(|s| match metric {
            Metric::Throughput => s.throughput,
            Metric::P99 => s.p99_us / 1000.0,
        })
    };
    let all: Vec<f64> = systems
        .iter()
        .flat_map(|&t| clients.iter().filter_map(move |&c| value(t, c)))
        .filter(|v| *v > 0.0)
        .collect();
    let hi = all.iter().cloned().fold(0.0f64, f64::max);
    let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);

    let (caption, y_desc) = match metric {
        Metric::Throughput => (format!("{}: throughput", w.title()), "ops/s (log)"),
        Metric::P99 => (format!("{}: p99 latency", w.title()), "p99 ms (log)"),
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70);
    // Client counts sit evenly spaced (1, 16, 64, 256 are close to a geometric series) at
    // x = 2 × index, with a half-step margin each side; odd x values get no label.
    let x_fmt = |v: &i32| {
        if *v < 0 || v % 2 != 0 {
            return String::new();
        }
        clients
            .get((*v / 2) as usize)
            .map(|c| c.to_string())
            .unwrap_or_default()
    };

    let y_fmt = |v: &f64| match metric {
        Metric::Throughput => super::markdown::ops(*v),
        Metric::P99 => super::markdown::ms(*v * 1000.0),
    };

    // The y axis is log-scaled for both metrics: Redis and a replicated store differ by
    // orders of magnitude, and on a log axis equal ratios are equal distances, which is
    // what the table reports.
    let (lo, hi) = if all.is_empty() {
        (1.0, 10.0)
    } else {
        (lo, hi)
    };
    let mut chart = builder
        .build_cartesian_2d(-1..2 * n - 1, (lo / 2.0..hi * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients")
        .y_desc(y_desc)
        .x_labels((2 * n + 1) as usize)
        .x_label_formatter(&x_fmt)
        .disable_x_mesh()
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for &t in &systems {
        let pts: Vec<(i32, f64)> = clients
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| value(t, c).map(|v| (2 * i as i32, v)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let col = color(t);
        chart
            .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
            .map_err(err)?
            .label(t.title())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, col.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    Ok(())
}

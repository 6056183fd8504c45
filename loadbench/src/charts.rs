//! The report's charts: horizontal bar charts in SVG, drawn from the report's own
//! Markdown tables (so an earlier report can be drawn again with `--render`) and
//! written beside it, one set per section; and line charts over time (`lines`).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod lines;

/// A Markdown table of the report, under its section's title.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub section: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One chart: a bar per target and series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The file name's end: `{report stem}-{name}.svg`.
    pub name: &'static str,
    pub title: &'static str,
    /// The value axis's label.
    pub axis: &'static str,
    /// The series, one bar each per row: one name, or several (percentiles).
    pub series: Vec<&'static str>,
    pub rows: Vec<Row>,
    /// Every row is the gateway's (the logins): none is a peer's.
    pub gateway_only: bool,
    /// A line per series over time (each row's label is its time), not bars.
    pub lines: bool,
}

/// A target's values, one per series (`None`: the cell was not a number), and
/// the text written at the end of each bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub values: Vec<Option<f64>>,
    pub texts: Vec<String>,
}

/// Which charts each section's table gives.
struct Spec {
    section: &'static str,
    name: &'static str,
    title: &'static str,
    axis: &'static str,
    /// (column head, series name).
    columns: &'static [(&'static str, &'static str)],
    /// Columns whose cells follow the value at the bar's end, each with its
    /// suffix (a cell that is not a number, as "—", is left out).
    notes: &'static [(&'static str, &'static str)],
    /// Every row is the gateway's, whatever its name.
    gateway_only: bool,
}

const PERCENTILES: &[(&str, &str)] = &[("p50 ms", "p50"), ("p99 ms", "p99"), ("p99.9 ms", "p99.9")];

const SPECS: &[Spec] = &[
    Spec {
        section: "Throughput",
        name: "throughput-rps",
        title: "Throughput: requests per second (higher is better)",
        axis: "requests/s (median of the rounds)",
        columns: &[("requests/s", "requests/s")],
        notes: &[("× nginx", " nginx"), ("× floor", " floor")],
        gateway_only: false,
    },
    Spec {
        section: "Throughput",
        name: "throughput-cpu",
        title: "Throughput: the proxy's CPU per request (lower is better)",
        axis: "CPU µs per request (user + system)",
        columns: &[("CPU µs/req", "CPU µs/req")],
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Throughput",
        name: "throughput-cpu-split",
        title: "Throughput: the proxy's CPU per request, user and system (lower is better)",
        axis: "CPU µs per request",
        columns: &[("user µs/req", "user"), ("sys µs/req", "system")],
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Throughput",
        name: "throughput-latency",
        title: "Throughput: latency at full load (lower is better)",
        axis: "latency, ms",
        columns: PERCENTILES,
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Latency at half load",
        name: "half-load-latency",
        title: "Latency at half the gateway's peak rate (lower is better)",
        axis: "latency, ms",
        columns: PERCENTILES,
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Logins",
        name: "logins-rate",
        title: "Logins per second against the gateway (higher is better)",
        axis: "logins/s",
        columns: &[("logins/s", "logins/s")],
        notes: &[],
        gateway_only: true,
    },
    Spec {
        section: "Logins",
        name: "logins-cpu",
        title: "The gateway's CPU per login (lower is better)",
        axis: "gateway CPU µs per login",
        columns: &[("gateway CPU µs/login", "CPU µs/login")],
        notes: &[],
        gateway_only: true,
    },
    Spec {
        section: "Capacity",
        name: "capacity-rps",
        title: "Capacity: requests per second over many sessions (higher is better)",
        axis: "requests/s",
        columns: &[("requests/s", "requests/s")],
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Capacity",
        name: "capacity-latency",
        title: "Capacity: p99 latency (lower is better)",
        axis: "p99 latency, ms",
        columns: &[("p99 ms", "p99")],
        notes: &[],
        gateway_only: false,
    },
    Spec {
        section: "Capacity",
        name: "capacity-memory",
        title: "Capacity: the gateway's peak RSS (lower is better)",
        axis: "peak RSS, MiB",
        columns: &[("peak RSS MiB", "peak RSS MiB")],
        notes: &[],
        gateway_only: false,
    },
];

/// The heading of the section that links the charts.
const CHARTS_HEADING: &str = "## Charts";

/// Every Markdown table of `md`, each under the last `## ` heading before it.
pub fn tables(md: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = md.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let head = cells(line);
        // The separator line (`|---|---:|`), then the rows.
        if lines.next_if(|l| l.starts_with("|-")).is_none() {
            continue;
        }
        let mut rows = Vec::new();
        while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
            rows.push(cells(row));
        }
        out.push(Table {
            section: section.clone(),
            head,
            rows,
        });
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// A cell's number: `37353`, `0.62×`, `55%`, `+9.29`.
fn number(cell: &str) -> Option<f64> {
    cell.trim()
        .trim_end_matches(['×', '%'])
        .trim_start_matches('+')
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// The charts that the report's tables give, in the report's order.
pub fn charts(md: &str) -> Vec<Chart> {
    let tables = tables(md);
    let mut out = Vec::new();
    for table in &tables {
        for spec in SPECS.iter().filter(|s| s.section == table.section) {
            if let Some(chart) = chart(spec, table) {
                out.push(chart);
            }
        }
        out.extend(lines::chart(table));
    }
    out
}

fn chart(spec: &Spec, table: &Table) -> Option<Chart> {
    let col = |name: &str| table.head.iter().position(|h| h == name);
    let columns = spec
        .columns
        .iter()
        .map(|(c, _)| col(c))
        .collect::<Option<Vec<usize>>>()?;
    let notes: Vec<(usize, &str)> = spec
        .notes
        .iter()
        .filter_map(|(c, suffix)| Some((col(c)?, *suffix)))
        .collect();
    let rows: Vec<Row> = table
        .rows
        .iter()
        .map(|r| {
            let cell = |i: usize| r.get(i).map_or("", String::as_str);
            let noted: Vec<String> = notes
                .iter()
                .filter(|(n, _)| number(cell(*n)).is_some())
                .map(|(n, suffix)| format!("{}{suffix}", cell(*n)))
                .collect();
            let texts = columns
                .iter()
                .map(|&i| {
                    if noted.is_empty() {
                        cell(i).to_string()
                    } else {
                        format!("{} ({})", cell(i), noted.join(", "))
                    }
                })
                .collect();
            Row {
                label: cell(0).to_string(),
                values: columns.iter().map(|&i| number(cell(i))).collect(),
                texts,
            }
        })
        .collect();
    if rows.iter().all(|r| r.values.iter().all(Option::is_none)) {
        return None;
    }
    Some(Chart {
        name: spec.name,
        title: spec.title,
        axis: spec.axis,
        series: spec.columns.iter().map(|(_, s)| *s).collect(),
        rows,
        gateway_only: spec.gateway_only,
        lines: false,
    })
}

/// Pixels: the chart's width, a bar's height, the heights of the title (and
/// legend) above the plot and of the value axis below it.
const WIDTH: u32 = 960;
const BAR: u32 = 22;
const TITLE: u32 = 44;
const LEGEND: u32 = 26;
const AXIS: u32 = 48;
const FONT: &str = "sans-serif";
/// Font sizes as plotters takes them (it writes 1/1.24 of them into the SVG).
const TITLE_SIZE: f64 = 22.0;
const LABEL_SIZE: f64 = 15.0;
const FIGURE_SIZE: f64 = 14.0;

/// One series' bars: the gateway's rows stand out from the peers' when there is
/// one series; several series (percentiles) get one colour each.
const GATEWAY: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const PEER: RGBColor = RGBColor(0x9a, 0xa4, 0xae);
const SERIES: [RGBColor; 3] = [
    RGBColor(0x9e, 0xca, 0xe1),
    RGBColor(0x42, 0x92, 0xc6),
    RGBColor(0x08, 0x45, 0x94),
];
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);

/// The colour of series `s` of a row labelled `label`.
fn colour(chart: &Chart, s: usize, label: &str) -> RGBColor {
    if chart.series.len() > 1 {
        SERIES[s % SERIES.len()]
    } else if chart.gateway_only || label.starts_with("gateway") {
        GATEWAY
    } else {
        PEER
    }
}

/// The legend, centred under the title: for each series a `swatch` (width,
/// height) in its `colour` and its name, `step` pixels apart.
fn legend(
    top: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[&str],
    step: i32,
    swatch: (i32, i32),
    colour: impl Fn(usize) -> RGBColor,
) -> Result<(), String> {
    let (w, h) = swatch;
    let mut x = (WIDTH as i32 - step * series.len() as i32) / 2;
    let y = TITLE as i32 + LEGEND as i32 / 2 - 4;
    for (s, name) in series.iter().enumerate() {
        top.draw(&Rectangle::new(
            [(x, y - h / 2), (x + w, y + h / 2)],
            colour(s).filled(),
        ))
        .map_err(draw_error)?;
        top.draw(&Text::new(
            name.to_string(),
            (x + w + 6, y),
            text_style(LABEL_SIZE, HPos::Left),
        ))
        .map_err(draw_error)?;
        x += step;
    }
    Ok(())
}

fn text_style(size: f64, h: HPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
        .color(&TEXT)
        .pos(Pos::new(h, VPos::Center))
}

/// The chart as an SVG document (a line chart is drawn by [`lines`]): a title,
/// a legend when there are several series, then a horizontal bar per target and
/// series, its figure at its end.
pub fn svg(chart: &Chart) -> Result<String, String> {
    if chart.lines {
        return lines::svg(chart);
    }
    let n = chart.rows.len().max(1);
    let series = chart.series.len().max(1);
    let header = TITLE + if series > 1 { LEGEND } else { 0 };
    let per_row = BAR * series as u32 + 14;
    let height = header + per_row * n as u32 + AXIS;
    // No font is read: the longest label's width is estimated (Chromium's
    // sans-serif at this size averages under 7 px a character).
    let longest = chart
        .rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = (longest as u32 * 7 + 16).clamp(60, WIDTH / 2);
    let max = chart
        .rows
        .iter()
        .flat_map(|r| r.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    // Room at the bars' end for their figures.
    let x_end = if max > 0.0 { max * 1.3 } else { 1.0 };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (top, plot) = root.split_vertically(header);
        top.draw(&Text::new(
            chart.title,
            (WIDTH as i32 / 2, TITLE as i32 / 2),
            TextStyle::from((FONT, TITLE_SIZE).into_font())
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(draw_error)?;
        if series > 1 {
            legend(&top, &chart.series, 100, (14, 14), |s| {
                SERIES[s % SERIES.len()]
            })?;
        }

        let mut ctx = ChartBuilder::on(&plot)
            .margin_right(20)
            .margin_left(10)
            .x_label_area_size(AXIS)
            .y_label_area_size(label_area)
            .build_cartesian_2d(0.0..x_end, 0.0..n as f64)
            .map_err(draw_error)?;
        ctx.configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(chart.axis)
            .x_label_formatter(&|x| axis_number(*x, x_end >= 10_000.0))
            .label_style((FONT, LABEL_SIZE - 1.0))
            .axis_desc_style((FONT, LABEL_SIZE))
            .max_light_lines(0)
            .bold_line_style(RGBColor(0xe4, 0xe7, 0xeb))
            .draw()
            .map_err(draw_error)?;

        let band = 0.72 / series as f64;
        for (k, row) in chart.rows.iter().enumerate() {
            // The first row on top.
            let base = (n - 1 - k) as f64;
            // The target's name, left of its bars. Drawn here rather than as the
            // axis's labels: plotters places those where it likes.
            let (x, y) = ctx.backend_coord(&(0.0, base + 0.5));
            root.draw(&Text::new(
                row.label.clone(),
                (x - 8, y),
                text_style(LABEL_SIZE, HPos::Right),
            ))
            .map_err(draw_error)?;
            for (s, value) in row.values.iter().enumerate() {
                let Some(v) = *value else { continue };
                // Series top to bottom within the row.
                let y1 = base + 0.86 - band * s as f64;
                let y0 = y1 - band * 0.9;
                ctx.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y0), (v, y1)],
                    colour(chart, s, &row.label).filled(),
                )))
                .map_err(draw_error)?;
                let figure = row.texts.get(s).cloned().unwrap_or_default();
                ctx.draw_series(std::iter::once(
                    EmptyElement::at((v, (y0 + y1) / 2.0))
                        + Text::new(figure, (5, 0), text_style(FIGURE_SIZE, HPos::Left)),
                ))
                .map_err(draw_error)?;
            }
        }
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    format!("drawing a chart: {e}")
}

/// An axis figure: in thousands on an axis that reaches 10,000 (`30k`, `7.5k`),
/// else with the decimals it needs.
fn axis_number(x: f64, thousands: bool) -> String {
    if thousands && x != 0.0 {
        let k = x / 1000.0;
        if k == k.round() {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else if x >= 100.0 || x == x.round() {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// The charts' files beside `report`: `bench-results/latest.md` gives
/// `bench-results/latest-throughput-rps.svg` and so on.
pub fn path_beside(report: &Path, chart: &Chart) -> PathBuf {
    let stem = report
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    report.with_file_name(format!("{stem}-{}.svg", chart.name))
}

/// Writes each chart beside `report`; returns the files written.
pub fn write_beside(report: &Path, charts: &[Chart]) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for chart in charts {
        let path = path_beside(report, chart);
        std::fs::write(&path, svg(chart)?).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The Markdown section that shows the charts, linked relative to the report.
pub fn section(report: &Path, charts: &[Chart]) -> String {
    let mut out = format!("{CHARTS_HEADING}\n\n");
    for chart in charts {
        let file = path_beside(report, chart);
        let name = file
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        out.push_str(&format!("![{}]({name})\n\n", chart.title));
    }
    out
}

/// The report without its charts section (to draw them again).
pub fn without_section(md: &str) -> String {
    let Some(start) = md
        .find(&format!("\n{CHARTS_HEADING}\n"))
        .map(|i| i + 1)
        .or_else(|| md.starts_with(CHARTS_HEADING).then_some(0))
    else {
        return md.to_string();
    };
    let rest = &md[start + CHARTS_HEADING.len()..];
    let end = rest
        .find("\n## ")
        .map_or(md.len(), |i| start + CHARTS_HEADING.len() + i + 1);
    format!("{}{}", &md[..start], &md[end..])
}

/// `--render FROM`: draws the charts of an earlier report beside it and links
/// them from it, in place of any charts section it had.
pub fn render(report: &Path) -> Result<Vec<PathBuf>, String> {
    let md = std::fs::read_to_string(report).map_err(|e| format!("{}: {e}", report.display()))?;
    let md = without_section(&md);
    let charts = charts(&md);
    if charts.is_empty() {
        return Err(format!(
            "{}: no table of the load benchmark's report to draw",
            report.display()
        ));
    }
    let written = write_beside(report, &charts)?;
    let mut md = md.trim_end().to_string();
    md.push_str("\n\n");
    md.push_str(&section(report, &charts));
    let md = md.trim_end().to_string() + "\n";
    std::fs::write(report, md).map_err(|e| format!("{}: {e}", report.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests;

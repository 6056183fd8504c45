//! Line charts: a value over time, one line per series (the soak's RSS of each
//! gateway), drawn from a report table whose first column is seconds.

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{
    draw_error, legend, number, text_style, Chart, Row, Table, FONT, LABEL_SIZE, LEGEND, SERIES,
    TEXT, TITLE, TITLE_SIZE, WIDTH,
};

/// Which line charts a section's table gives.
struct LineSpec {
    section: &'static str,
    /// The head of the table's first column, the time.
    time: &'static str,
    name: &'static str,
    title: &'static str,
    axis: &'static str,
    /// (column head, series name).
    columns: &'static [(&'static str, &'static str)],
}

const LINE_SPECS: &[LineSpec] = &[LineSpec {
    section: "Soak",
    time: "s",
    name: "soak-rss",
    title: "Soak: each gateway's RSS over time (flat is better)",
    axis: "RSS, MiB",
    columns: &[
        ("gateway, cookie sessions MiB", "cookie sessions"),
        ("gateway, Redis sessions MiB", "Redis sessions"),
    ],
}];

const HEIGHT: u32 = 420;
const X_AXIS: &str = "seconds since the soak's start";

/// The line chart of `table`, if a spec names its section and columns.
pub(super) fn chart(table: &Table) -> Option<Chart> {
    let spec = LINE_SPECS
        .iter()
        .find(|s| s.section == table.section && table.head.first().is_some_and(|h| h == s.time))?;
    let col = |name: &str| table.head.iter().position(|h| h == name);
    let columns = spec
        .columns
        .iter()
        .map(|(c, _)| col(c))
        .collect::<Option<Vec<usize>>>()?;
    let rows: Vec<Row> = table
        .rows
        .iter()
        .filter(|r| r.first().and_then(|t| number(t)).is_some())
        .map(|r| {
            let cell = |i: usize| r.get(i).map_or("", String::as_str);
            Row {
                label: cell(0).to_string(),
                values: columns.iter().map(|&i| number(cell(i))).collect(),
                texts: columns.iter().map(|&i| cell(i).to_string()).collect(),
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
        gateway_only: true,
        lines: true,
    })
}

/// The chart as an SVG document: a title, a legend, then a line per series over
/// the rows' times (the row labels), the value axis from 0.
pub(super) fn svg(chart: &Chart) -> Result<String, String> {
    let points = |s: usize| -> Vec<(f64, f64)> {
        chart
            .rows
            .iter()
            .filter_map(|r| Some((number(&r.label)?, (*r.values.get(s)?)?)))
            .collect()
    };
    let t_end = chart
        .rows
        .iter()
        .filter_map(|r| number(&r.label))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let max = chart
        .rows
        .iter()
        .flat_map(|r| r.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let y_end = if max > 0.0 { max * 1.15 } else { 1.0 };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (top, plot) = root.split_vertically(TITLE + LEGEND);
        top.draw(&Text::new(
            chart.title,
            (WIDTH as i32 / 2, TITLE as i32 / 2),
            text_style(TITLE_SIZE, HPos::Center),
        ))
        .map_err(draw_error)?;
        legend(&top, &chart.series, 160, (20, 4), colour)?;

        let mut ctx = ChartBuilder::on(&plot)
            .margin_right(24)
            .margin_left(10)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..t_end, 0.0..y_end)
            .map_err(draw_error)?;
        ctx.configure_mesh()
            .x_desc(X_AXIS)
            .y_desc(chart.axis)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, LABEL_SIZE - 1.0))
            .axis_desc_style((FONT, LABEL_SIZE))
            .max_light_lines(0)
            .bold_line_style(RGBColor(0xe4, 0xe7, 0xeb))
            .draw()
            .map_err(draw_error)?;
        for s in 0..chart.series.len() {
            ctx.draw_series(LineSeries::new(points(s), colour(s).stroke_width(2)))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

/// Series `s`'s colour: the darker blues of the bar charts' series, then text.
fn colour(s: usize) -> RGBColor {
    match s {
        0 => SERIES[1],
        1 => SERIES[2],
        _ => TEXT,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables;
    use super::*;

    const REPORT: &str = "## Soak\n\nText.\n\n\
| target | RSS at start MiB |\n|---|---:|\n| gateway, cookie sessions | 20.0 |\n\n\
| s | gateway, cookie sessions MiB | gateway, Redis sessions MiB |\n|---|---:|---:|\n\
| 0 | 20.5 | 19.0 |\n| 5 | 22.0 | 21.5 |\n| 10 | 22.1 | 21.4 |\n";

    #[test]
    fn the_soaks_rss_table_gives_a_line_chart() {
        let charts: Vec<Chart> = tables(REPORT).iter().filter_map(chart).collect();
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!(c.name, "soak-rss");
        assert!(c.lines);
        assert_eq!(c.rows.len(), 3);
        assert_eq!(c.rows[1].values, vec![Some(22.0), Some(21.5)]);
        let svg = svg(c).unwrap();
        assert!(svg.starts_with("<svg "), "{svg:.100}");
        // One line per series, in its colour (the axes are polylines too).
        for s in 0..2 {
            let stroke = format!(
                "<polyline fill=\"none\" opacity=\"1\" stroke=\"{}",
                hex(colour(s))
            );
            assert_eq!(svg.matches(&stroke).count(), 1, "{stroke} in {svg}");
        }
        assert!(svg.contains("Redis sessions"));
        // The same through the report's charts, and its drawing dispatches here.
        let all = super::super::charts(REPORT);
        assert_eq!(all.iter().filter(|c| c.lines).count(), 1);
        assert!(super::super::svg(&all[0]).unwrap().contains("<polyline"));
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }
}

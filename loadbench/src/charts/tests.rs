use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use super::*;

/// A small report, as `Report::write` writes it: two sections with tables, one
/// target name that XML must escape, and a cell that is not a number.
const REPORT: &str = "# Load benchmark

Command: `oneaccess-loadbench --quick`

## Throughput

wrk, 64 connections.

| target | requests/s | × nginx | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | peak MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| nginx proxy_pass, no auth | 37353 | 1.00× | 1.49 | 5.84 | 13.57 | 0 | 24.6 | 10.8 |
| Apache <event> & mod_auth_openidc | 6788 | 0.18× | 9.05 | 20.77 | 38.11 | 0 | 242.5 | 37.2 |
| gateway, OIDC session cookie, 3 headers | 21312 | 0.57× | 2.77 | 7.68 | 12.27 | 0 | ? | 18.8 |

## Logins

32 concurrent users.

| mode | logins/s | ok | failed | gateway CPU | simulator CPU | client CPU | gateway CPU µs/login |
|---|---:|---:|---:|---:|---:|---:|---:|
| whole logins | 1770 | 17740 | 0 | 55% | 97% | 35% | 311 |
| callbacks only | 1835 | 17703 | 0 | 52% | 109% | 20% | 282 |

JWKS fetches by the gateway after the warm-up: 0.
";

const THROUGHPUT_TARGETS: [&str; 3] = [
    "nginx proxy_pass, no auth",
    "Apache <event> & mod_auth_openidc",
    "gateway, OIDC session cookie, 3 headers",
];

/// What the SVG holds, read with an XML parser: it fails on a document that is
/// not well formed (a tag left open, closed twice, or text not escaped).
struct Svg {
    root: String,
    texts: Vec<String>,
    /// `rect` fills (upper case) and how many rects have each.
    fills: HashMap<String, usize>,
}

fn read_svg(doc: &str) -> Svg {
    let mut reader = Reader::from_str(doc);
    let mut depth = 0usize;
    let mut roots = Vec::new();
    let mut texts = Vec::new();
    let mut fills: HashMap<String, usize> = HashMap::new();
    // The text of the <text> element being read.
    let mut text: Option<String> = None;
    loop {
        let event = reader.read_event().expect("well-formed XML");
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                if depth == 0 {
                    roots.push(name.clone());
                }
                if name == "rect" {
                    let fill = e
                        .try_get_attribute("fill")
                        .unwrap()
                        .map(|a| {
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .unwrap()
                                .to_uppercase()
                        })
                        .unwrap_or_default();
                    *fills.entry(fill).or_default() += 1;
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    if name == "text" {
                        text = Some(String::new());
                    }
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).expect("an end tag too many");
                if let Some(t) = text.take() {
                    texts.push(t.trim().to_string());
                }
            }
            Event::Text(t) => match text.as_mut() {
                Some(text) => text.push_str(&t.xml10_content()),
                // Outside a <text>: only the layout's whitespace.
                None => assert!(t.xml10_content().trim().is_empty(), "{t:?}"),
            },
            // quick-xml hands `&amp;` and the like apart from the text around them.
            Event::GeneralRef(r) => {
                let c = match r.as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => panic!("unexpected entity {other}"),
                };
                text.as_mut().expect("an entity outside a <text>").push(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "a tag left open");
    assert_eq!(roots.len(), 1, "one root element: {roots:?}");
    Svg {
        root: roots.remove(0),
        texts,
        fills,
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

#[test]
fn reads_the_reports_tables_under_their_sections() {
    let t = tables(REPORT);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].section, "Throughput");
    assert_eq!(t[0].head[0], "target");
    assert_eq!(t[0].head[7], "CPU µs/req");
    assert_eq!(t[0].rows.len(), 3);
    assert_eq!(t[0].rows[1][0], "Apache <event> & mod_auth_openidc");
    assert_eq!(t[1].section, "Logins");
    assert_eq!(
        t[1].rows[1],
        [
            "callbacks only",
            "1835",
            "17703",
            "0",
            "52%",
            "109%",
            "20%",
            "282"
        ]
    );
}

#[test]
fn reads_the_cells_numbers() {
    assert_eq!(number("37353"), Some(37353.0));
    assert_eq!(number("0.62×"), Some(0.62));
    assert_eq!(number("55%"), Some(55.0));
    assert_eq!(number("+9.29"), Some(9.29));
    assert_eq!(number("-1.5"), Some(-1.5));
    assert_eq!(number("?"), None);
    assert_eq!(number(""), None);
    assert_eq!(number("NaN"), None);
}

#[test]
fn each_section_gives_its_charts() {
    let c = charts(REPORT);
    let names: Vec<&str> = c.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "throughput-rps",
            "throughput-cpu",
            "throughput-latency",
            "logins-rate",
            "logins-cpu"
        ]
    );
    let rps = &c[0];
    assert_eq!(rps.series, ["requests/s"]);
    assert_eq!(rps.rows[2].label, THROUGHPUT_TARGETS[2]);
    assert_eq!(rps.rows[2].values, [Some(21312.0)]);
    assert_eq!(rps.rows[2].texts, ["21312 (0.57× nginx)"]);
    // A cell that is not a number draws no bar, and keeps its row.
    let cpu = &c[1];
    assert_eq!(cpu.rows.len(), 3);
    assert_eq!(cpu.rows[2].values, [None]);
    let latency = &c[2];
    assert_eq!(latency.series, ["p50", "p99", "p99.9"]);
    assert_eq!(
        latency.rows[0].values,
        [Some(1.49), Some(5.84), Some(13.57)]
    );
    assert_eq!(c[4].rows[0].values, [Some(311.0)]);
}

#[test]
fn axis_figures_are_short() {
    assert_eq!(axis_number(0.0, true), "0");
    assert_eq!(axis_number(8000.0, true), "8k");
    assert_eq!(axis_number(12500.0, true), "12.5k");
    assert_eq!(axis_number(1500.0, false), "1500");
    assert_eq!(axis_number(2.5, false), "2.5");
    assert_eq!(axis_number(0.25, false), "0.25");
    assert_eq!(axis_number(5.0, false), "5");
}

#[test]
fn a_table_without_the_columns_gives_no_chart() {
    let md = "## Throughput\n\n| target | other |\n|---|---:|\n| a | 1 |\n";
    assert!(charts(md).is_empty());
    assert!(charts("# Load benchmark\n\nNo tables.\n").is_empty());
}

#[test]
fn a_bar_chart_is_an_svg_with_a_bar_and_a_label_per_target() {
    let c = charts(REPORT);
    let rps = read_svg(&svg(&c[0]).unwrap());
    assert_eq!(rps.root, "svg");
    for target in THROUGHPUT_TARGETS {
        assert!(
            rps.texts.iter().any(|t| t == target),
            "no label {target:?} in {:?}",
            rps.texts
        );
    }
    assert!(rps.texts.iter().any(|t| t == c[0].title), "{:?}", rps.texts);
    assert!(rps.texts.iter().any(|t| t == c[0].axis), "{:?}", rps.texts);
    assert!(
        rps.texts.iter().any(|t| t == "21312 (0.57× nginx)"),
        "{:?}",
        rps.texts
    );
    // Axis figures: 0 and some thousands.
    assert!(rps.texts.iter().any(|t| t == "0"), "{:?}", rps.texts);
    assert!(
        rps.texts.iter().any(|t| t.ends_with('k')),
        "{:?}",
        rps.texts
    );
    // One bar per target: the gateway's stands out, the two peers' alike.
    assert_eq!(rps.fills.get(&hex(GATEWAY)), Some(&1), "{:?}", rps.fills);
    assert_eq!(rps.fills.get(&hex(PEER)), Some(&2), "{:?}", rps.fills);

    // The gateway's CPU cell was not a number: no bar for it, its label stays.
    let cpu = read_svg(&svg(&c[1]).unwrap());
    assert_eq!(cpu.fills.get(&hex(GATEWAY)), None, "{:?}", cpu.fills);
    assert_eq!(cpu.fills.get(&hex(PEER)), Some(&2), "{:?}", cpu.fills);
    assert!(cpu.texts.iter().any(|t| t == THROUGHPUT_TARGETS[2]));
    assert!(cpu
        .texts
        .iter()
        .any(|t| t == "CPU µs per request (user + system)"));

    // The logins are all the gateway's, whatever their rows are called.
    let logins = read_svg(&svg(&c[3]).unwrap());
    assert_eq!(
        logins.fills.get(&hex(GATEWAY)),
        Some(&2),
        "{:?}",
        logins.fills
    );
    assert_eq!(logins.fills.get(&hex(PEER)), None, "{:?}", logins.fills);
    assert!(logins.texts.iter().any(|t| t == "whole logins"));
}

#[test]
fn a_percentile_chart_has_a_bar_per_target_and_percentile_and_a_legend() {
    let c = charts(REPORT);
    let latency = read_svg(&svg(&c[2]).unwrap());
    for (s, name) in ["p50", "p99", "p99.9"].iter().enumerate() {
        // Three targets' bars and the legend's swatch.
        assert_eq!(
            latency.fills.get(&hex(SERIES[s])),
            Some(&4),
            "{name}: {:?}",
            latency.fills
        );
        assert!(
            latency.texts.iter().any(|t| t == name),
            "{:?}",
            latency.texts
        );
    }
    for target in THROUGHPUT_TARGETS {
        assert!(latency.texts.iter().any(|t| t == target));
    }
    assert!(latency.texts.iter().any(|t| t == "latency, ms"));
    assert!(
        latency.texts.iter().any(|t| t == "38.11"),
        "{:?}",
        latency.texts
    );
}

#[test]
fn the_charts_go_beside_the_report_and_render_again_in_place() {
    let dir = std::env::temp_dir().join(format!("loadbench-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("latest.md");
    std::fs::write(&report, REPORT).unwrap();

    let written = render(&report).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "latest-throughput-rps.svg",
            "latest-throughput-cpu.svg",
            "latest-throughput-latency.svg",
            "latest-logins-rate.svg",
            "latest-logins-cpu.svg"
        ]
    );
    for p in &written {
        read_svg(&std::fs::read_to_string(p).unwrap());
    }
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with(REPORT.trim_end()), "{md}");
    assert!(md.contains("\n## Charts\n\n![Throughput: requests per second (higher is better)](latest-throughput-rps.svg)\n"), "{md}");
    // Again: the same report, one charts section.
    render(&report).unwrap();
    assert_eq!(std::fs::read_to_string(&report).unwrap(), md);
    assert_eq!(md.matches("## Charts").count(), 1);

    // A section after the charts (a report written by an older harness, say) stays.
    let with_after = format!("{md}\n## Problems\n\n- one\n");
    assert_eq!(
        without_section(&with_after),
        format!("{}\n\n## Problems\n\n- one\n", REPORT.trim_end())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The throughput table as the harness writes it now: the floor's row, "× floor"
/// on the gateway's rows only, and the CPU split.
const REPORT_WITH_FLOOR: &str = "## Throughput

| target | requests/s | × nginx | × floor | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | user µs/req | sys µs/req | ctx switches/req | peak MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| nginx proxy_pass, no auth | 37353 | 1.00× | — | 1.49 | 5.84 | 13.57 | 0 | 24.6 | 8.6 | 16.0 | 0.41 | 10.8 |
| Pingora floor: one ProxyHttp, peer only | 25000 | 0.67× | — | 2.10 | 7.00 | 12.00 | 0 | 45.0 | 20.0 | 25.0 | 0.52 | 15.0 |
| gateway, OIDC session cookie, 3 headers | 21312 | 0.57× | 0.85× | 2.77 | 7.68 | 12.27 | 0 | 58.1 | 30.1 | 28.0 | 0.60 | 18.8 |
";

#[test]
fn the_floor_ratio_and_the_cpu_split_are_drawn() {
    let c = charts(REPORT_WITH_FLOOR);
    let names: Vec<&str> = c.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "throughput-rps",
            "throughput-cpu",
            "throughput-cpu-split",
            "throughput-latency"
        ]
    );
    let rps = &c[0];
    // A "—" is left out of the bar's text; the gateway's bar has both ratios.
    assert_eq!(rps.rows[0].texts, ["37353 (1.00× nginx)"]);
    assert_eq!(rps.rows[1].texts, ["25000 (0.67× nginx)"]);
    assert_eq!(rps.rows[2].texts, ["21312 (0.57× nginx, 0.85× floor)"]);
    let split = &c[2];
    assert_eq!(split.series, ["user", "system"]);
    assert_eq!(
        split.rows[1].label,
        "Pingora floor: one ProxyHttp, peer only"
    );
    assert_eq!(split.rows[1].values, [Some(20.0), Some(25.0)]);
    assert_eq!(split.rows[2].values, [Some(30.1), Some(28.0)]);
    let svg = svg(split).unwrap();
    assert!(svg.contains("Pingora floor"), "{svg:.300}");
}
